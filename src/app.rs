//! Wiring: the route table, the background sweeps, and the actix application used by
//! `serve` and by the tests alike. Each part of the state is registered on its own, so
//! that a handler (or extractor) takes exactly the parts it needs.

use actix_web::body::MessageBody;
use actix_web::dev::{Server, ServiceFactory, ServiceRequest, ServiceResponse};
use actix_web::middleware::from_fn;
use actix_web::{web, App, HttpServer};
use actix_web_prom::PrometheusMetrics;
use std::net::TcpListener;
use utoipa::OpenApi;
use utoipa_actix_web::service_config::ServiceConfig;
use utoipa_actix_web::AppExt;
use utoipa_swagger_ui::SwaggerUi;

use crate::business_metrics::Fact;
use crate::http::{
    body_deadline, extractors, fallback, language, metrics, rate_limit_headers, request_id,
};
use crate::openapi::ApiDoc;
use crate::openapi::Sandboxes;
use crate::state::AppState;

/// Every documented route, capability by capability; the sandbox's only when enabled.
fn register_routes(cfg: &mut ServiceConfig, sandboxes: Sandboxes) {
    if sandboxes.payments {
        cfg.configure(crate::fulfilment::routes::configure_sandbox);
    }
    if sandboxes.sms {
        cfg.configure(crate::verification::routes::configure_sandbox);
    }
    cfg.configure(crate::health::configure)
        .configure(crate::operations::metrics::configure)
        .configure(crate::auth::routes::configure)
        .configure(crate::partners::routes::configure)
        .configure(crate::catalog::routes::configure)
        .configure(crate::catalog::devices::configure)
        .configure(crate::cards::routes::configure)
        .configure(crate::usage::routes::configure)
        .configure(crate::orders::routes::configure)
        .configure(crate::wallet::routes::configure)
        .configure(crate::activation::routes::configure)
        .configure(crate::events::routes::configure)
        .configure(crate::events::webhook_routes::configure)
        .configure(crate::notifications::routes::configure)
        .configure(crate::subscriptions::routes::configure)
        .configure(crate::verification::routes::configure)
        .configure(crate::fulfilment::routes::configure);
}

/// The OpenAPI document, generated from the registered routes (the sandbox's included,
/// tagged `sandbox`: a deployment serves them only when the sandbox is enabled) and
/// completed by `openapi::finish`.
pub fn document() -> serde_json::Value {
    let (_, doc) = App::new()
        .into_utoipa_app()
        .openapi(ApiDoc::openapi())
        .configure(|cfg| {
            register_routes(
                cfg,
                Sandboxes {
                    payments: true,
                    sms: true,
                },
            )
        })
        .split_for_parts();
    crate::openapi::finish(doc)
}

/// The committed form: pretty JSON with a trailing newline.
pub fn document_json() -> String {
    pretty(&document())
}

fn pretty(doc: &serde_json::Value) -> String {
    let mut text =
        serde_json::to_string_pretty(doc).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"));
    text.push('\n');
    text
}

/// The document as this server serves it at `/openapi.json`.
struct ServedDocument(web::Bytes);

async fn served_document(doc: web::Data<ServedDocument>) -> actix_web::HttpResponse {
    actix_web::HttpResponse::Ok()
        .content_type("application/json")
        .body(doc.0.clone())
}

/// What every worker serves of the document, made once per process (not per worker).
#[derive(Clone)]
pub struct ServedParts {
    route_table: web::Data<fallback::RouteTable>,
    document: web::Data<ServedDocument>,
}

impl ServedParts {
    pub fn new(state: &AppState) -> Self {
        let doc = crate::openapi::served(document(), sandboxes_of(state));
        Self {
            route_table: web::Data::new(fallback::RouteTable::from_openapi(&doc)),
            document: web::Data::new(ServedDocument(web::Bytes::from(pretty(&doc)))),
        }
    }
}

fn sandboxes_of(state: &AppState) -> Sandboxes {
    Sandboxes {
        payments: state.payments.sandbox_enabled(),
        sms: state.verification.sms.sandbox_enabled(),
    }
}

pub fn build_app(
    state: &AppState,
    served: &ServedParts,
    metrics: PrometheusMetrics,
    body_read_timeout: std::time::Duration,
) -> App<
    impl ServiceFactory<
        ServiceRequest,
        Config = (),
        Response = ServiceResponse<impl MessageBody>,
        Error = actix_web::Error,
        InitError = (),
    >,
> {
    let sandboxes = sandboxes_of(state);
    let (app, _) = App::new()
        .into_utoipa_app()
        .openapi(ApiDoc::openapi())
        .configure(|cfg| register_routes(cfg, sandboxes))
        .split_for_parts();
    app.app_data(web::Data::new(state.db.clone()))
        .app_data(web::Data::new(state.clock.clone()))
        .app_data(web::Data::from(state.settings.clone()))
        .app_data(web::Data::from(state.auth.clone()))
        .app_data(web::Data::from(state.catalog.clone()))
        .app_data(web::Data::from(state.cards.clone()))
        .app_data(web::Data::from(state.payments.clone()))
        .app_data(web::Data::from(state.webhooks.clone()))
        .app_data(web::Data::from(state.verification.clone()))
        .app_data(web::Data::new(metrics.registry.clone()))
        .app_data(web::Data::new(body_deadline::BodyReadTimeout(
            body_read_timeout,
        )))
        .app_data(served.route_table.clone())
        .app_data(extractors::json_config())
        .app_data(extractors::form_config())
        .app_data(extractors::query_config())
        .app_data(extractors::path_config())
        .app_data(extractors::payload_config())
        .service(web::redirect("/docs", "/docs/"))
        .app_data(served.document.clone())
        .route("/openapi.json", web::get().to(served_document))
        .service(
            SwaggerUi::new("/docs/{_:.*}").config(utoipa_swagger_ui::Config::from("/openapi.json")),
        )
        .default_service(web::to(fallback::not_matched))
        .wrap(from_fn(rate_limit_headers::middleware))
        .wrap(from_fn(body_deadline::middleware))
        .wrap(metrics)
        .wrap(from_fn(language::middleware))
        .wrap(from_fn(request_id::middleware))
}

/// How many worker threads, how long a graceful shutdown may take, and the deadlines
/// for a client's request head, its body, and an idle keep-alive connection.
#[derive(Debug, Clone, Copy)]
pub struct ServerOptions {
    pub workers: Option<usize>,
    pub shutdown_timeout_s: u64,
    pub header_read_timeout: std::time::Duration,
    pub body_read_timeout: std::time::Duration,
    pub keep_alive: std::time::Duration,
}

impl Default for ServerOptions {
    fn default() -> Self {
        Self {
            workers: None,
            shutdown_timeout_s: 10,
            header_read_timeout: std::time::Duration::from_secs(5),
            body_read_timeout: std::time::Duration::from_secs(10),
            keep_alive: std::time::Duration::from_secs(5),
        }
    }
}

/// Every `SIMRENEW_SWEEP_INTERVAL_S`: due subscriptions are renewed, scheduled orders
/// started, expiry notices told, unpaid orders expired and owed refunds retried; old
/// events and expired idempotency keys are purged every tenth time. Any instance may do
/// it: each step is a conditional update, a unique insert or an idempotent delete, so
/// instances running it together do not collide.
fn spawn_housekeeping(state: AppState) {
    use crate::fulfilment::{cancellation, refunds, settlement};
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(state.settings.sweep_interval);
        for round in 0_u64.. {
            tick.tick().await;
            let (db, payments, clock) = (&state.db, &state.payments, &state.clock);
            let metrics = db.metrics();
            match metrics.sweep(
                "expire_unpaid",
                settlement::expire_unpaid(db, payments, clock, payments.order_ttl).await,
            ) {
                Ok(0) => {}
                Ok(expired) => tracing::info!(expired, "unpaid orders expired"),
                Err(e) => tracing::warn!(error = %e, "order expiry failed; will retry"),
            }
            match metrics.sweep(
                "refunds_due",
                refunds::refunds_due(db, payments, clock).await,
            ) {
                Ok(0) => {}
                Ok(made) => tracing::info!(made, "due refunds made"),
                Err(e) => tracing::warn!(error = %e, "refund sweep failed; will retry"),
            }
            if let Err(e) = metrics.sweep(
                "close_provider_payments",
                cancellation::close_unclosed(db, payments, clock).await,
            ) {
                tracing::warn!(error = %e, "closing provider payments failed; will retry");
            }
            let smdp_address = &state.settings.smdp_address;
            match metrics.sweep(
                "renewals",
                crate::fulfilment::renewals::renew_due(db, clock, smdp_address).await,
            ) {
                Ok(tally) if tally == Default::default() => {}
                Ok(tally) => {
                    for (result, count) in [
                        ("renewed", tally.renewed),
                        ("failed", tally.failed),
                        ("lapsed", tally.lapsed),
                    ] {
                        let count = u64::try_from(count).unwrap_or(u64::MAX);
                        metrics.count(Fact::Renewals { result, count });
                    }
                    tracing::info!(
                        renewed = tally.renewed,
                        failed = tally.failed,
                        lapsed = tally.lapsed,
                        "subscription renewals"
                    )
                }
                Err(e) => tracing::warn!(error = %e, "subscription renewals failed; will retry"),
            }
            match metrics.sweep(
                "scheduled_orders",
                crate::fulfilment::scheduled::start_due(db, clock, smdp_address).await,
            ) {
                Ok(0) => {}
                Ok(started) => tracing::info!(started, "scheduled orders started"),
                Err(e) => {
                    tracing::warn!(error = %e, "starting scheduled orders failed; will retry")
                }
            }
            match metrics.sweep(
                "expiry_notices",
                crate::notifications::expiry::sweep(db, clock).await,
            ) {
                Ok(0) => {}
                Ok(told) => tracing::info!(told, "expiry notices told"),
                Err(e) => tracing::warn!(error = %e, "expiry notice sweep failed; will retry"),
            }
            if round % 10 == 0 {
                match metrics.sweep(
                    "event_purge",
                    crate::events::purge_expired(&state.db, &state.clock).await,
                ) {
                    Ok(0) => {}
                    Ok(removed) => tracing::info!(removed, "events past retention removed"),
                    Err(e) => tracing::warn!(error = %e, "event purge failed; will retry"),
                }
                match metrics.sweep(
                    "idempotency_purge",
                    crate::idempotency::purge_expired(&state.db, &state.clock).await,
                ) {
                    Ok(0) => {}
                    Ok(removed) => tracing::info!(removed, "expired idempotency keys removed"),
                    Err(e) => {
                        tracing::warn!(error = %e, "idempotency key purge failed; will retry")
                    }
                }
            }
        }
    });
}

/// How long an idle instance waits before looking for due webhook deliveries again
/// (the lag from commit to delivery is about half of it).
const DELIVERY_INTERVAL: std::time::Duration = std::time::Duration::from_millis(250);

/// Sends due webhook deliveries, on every instance (claims keep them apart), never on a
/// request's path: batch after batch while there is a backlog, then every interval.
fn spawn_deliveries(state: AppState) {
    use crate::events::delivery;
    tokio::spawn(async move {
        loop {
            let webhooks = &state.webhooks;
            let sent = delivery::deliver_due(
                &state.db,
                &webhooks.client,
                &webhooks.settings,
                &state.clock,
            )
            .await;
            match sent {
                Ok(sent) if sent >= delivery::BATCH => continue,
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "webhook delivery failed; will retry"),
            }
            tokio::time::sleep(DELIVERY_INTERVAL).await;
        }
    });
}

/// Tells the operator, once at start, which provider webhook events are not enabled
/// (an order paid by such an event would wait until it expires).
fn spawn_provider_checks(state: AppState) {
    tokio::spawn(async move {
        let Some(crate::payments::Provider::Stripe(stripe)) = state.payments.by_name("stripe")
        else {
            return;
        };
        match stripe.missing_webhook_events().await {
            Ok(missing) if missing.is_empty() => {
                tracing::info!("Stripe webhook endpoint receives every event used")
            }
            Ok(missing) => tracing::warn!(
                missing = %missing.join(","),
                "no enabled Stripe webhook endpoint receives these events; enable them"
            ),
            Err(e) => tracing::warn!(error = %e, "could not check Stripe's webhook endpoints"),
        }
    });
}

/// Starts serving on `listener`; the returned future runs until SIGTERM/SIGINT or a stop.
/// Call it inside a tokio runtime: background housekeeping is spawned on it.
pub fn start(
    state: AppState,
    listener: TcpListener,
    options: ServerOptions,
) -> std::io::Result<Server> {
    let metrics = metrics::build().map_err(std::io::Error::other)?;
    state
        .db
        .metrics()
        .register(&metrics.registry)
        .map_err(std::io::Error::other)?;
    crate::catalog::version::spawn_watcher(state.db.clone(), state.catalog.version.clone());
    spawn_housekeeping(state.clone());
    spawn_deliveries(state.clone());
    spawn_provider_checks(state.clone());
    let body_read_timeout = options.body_read_timeout;
    let served = ServedParts::new(&state);
    let mut server =
        HttpServer::new(move || build_app(&state, &served, metrics.clone(), body_read_timeout))
            .shutdown_timeout(options.shutdown_timeout_s)
            .client_request_timeout(options.header_read_timeout)
            .keep_alive(options.keep_alive);
    if let Some(workers) = options.workers {
        server = server.workers(workers);
    }
    Ok(server.listen(listener)?.run())
}
