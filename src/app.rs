//! Wiring: the shared state, the route table, and the actix application used by
//! `serve` and by the tests alike.

use std::net::TcpListener;
use std::sync::Arc;

use actix_web::body::MessageBody;
use actix_web::dev::{Server, ServiceFactory, ServiceRequest, ServiceResponse};
use actix_web::middleware::from_fn;
use actix_web::{web, App, HttpServer};
use actix_web_prom::PrometheusMetrics;
use utoipa::OpenApi;
use utoipa_actix_web::service_config::ServiceConfig;
use utoipa_actix_web::AppExt;
use utoipa_swagger_ui::SwaggerUi;

use crate::auth::keys::KeyRing;
use crate::auth::rate_limit::TokenRateLimits;
use crate::auth::tokens::{TokenPolicy, TokenService};
use crate::auth::{secrets, Authenticator};
use crate::config::Settings;
use crate::db::Db;
use crate::http::{extractors, fallback, metrics, request_id};
use crate::openapi::ApiDoc;

/// What every handler can reach. Holds no per-request state: instances are interchangeable.
pub struct AppState {
    pub db: Db,
    pub settings: Arc<Settings>,
    pub auth: Authenticator,
    pub catalog: crate::catalog::CatalogCache,
    pub payments: crate::payments::Payments,
}

impl AppState {
    /// Prepares everything a request may need. Blocking: it may read or create the
    /// token signing key in the database, so the schema must be migrated first.
    pub fn load(settings: Settings, db: Db) -> Result<Self, String> {
        let auth = &settings.auth;
        let keys = db
            .run_blocking(|conn| KeyRing::load(auth.algorithm, &auth.key_source, conn))
            .map_err(|e| format!("token signing keys: {e}"))?;
        let tokens = TokenService::new(
            keys,
            TokenPolicy {
                issuer: auth.issuer.clone(),
                audience: auth.audience.clone(),
                lifetime: auth.token_lifetime,
            },
        );
        let limits = TokenRateLimits::new(auth.token_rate_per_client, auth.token_rate_per_address);
        let authenticator = Authenticator::new(tokens, limits, auth.credential_check_interval);
        secrets::warm_up();
        let payments = build_payments(&settings.payments)?;
        Ok(Self {
            db,
            settings: Arc::new(settings),
            auth: authenticator,
            catalog: crate::catalog::CatalogCache::default(),
            payments,
        })
    }
}

fn build_payments(
    settings: &crate::config::PaymentSettings,
) -> Result<crate::payments::Payments, String> {
    use crate::config::ProviderKind;
    use crate::payments::{sandbox::Sandbox, stripe::Stripe, Payments, Provider};
    let methods_of = |kind: ProviderKind| -> Vec<_> {
        settings
            .routes
            .iter()
            .filter(|(_, p)| *p == kind)
            .map(|(m, _)| *m)
            .collect()
    };
    let mut payments = Payments::new(settings.order_ttl);
    if let Some(config) = &settings.stripe {
        payments = payments.with(
            Provider::Stripe(Stripe::new(config.clone())?),
            &methods_of(ProviderKind::Stripe),
        );
    }
    let sandboxed = methods_of(ProviderKind::Sandbox);
    if !sandboxed.is_empty() {
        payments = payments.with(Provider::Sandbox(Sandbox), &sandboxed);
    }
    Ok(payments)
}

/// Every documented route, capability by capability; the sandbox's only when enabled.
fn register_routes(cfg: &mut ServiceConfig, sandbox: bool) {
    if sandbox {
        cfg.configure(crate::payments::routes::configure_sandbox);
    }
    cfg.configure(crate::health::configure)
        .configure(metrics::configure)
        .configure(crate::auth::routes::configure)
        .configure(crate::partners::routes::configure)
        .configure(crate::catalog::routes::configure)
        .configure(crate::catalog::devices::configure)
        .configure(crate::cards::routes::configure)
        .configure(crate::usage::routes::configure)
        .configure(crate::orders::routes::configure)
        .configure(crate::wallet::routes::configure)
        .configure(crate::activation::routes::configure)
        .configure(crate::payments::routes::configure);
}

/// The OpenAPI document, generated from the registered routes (the sandbox's included,
/// tagged `sandbox`: a deployment serves them only when the sandbox is enabled).
pub fn api_document() -> utoipa::openapi::OpenApi {
    let (_, doc) = App::new()
        .into_utoipa_app()
        .openapi(ApiDoc::openapi())
        .configure(|cfg| register_routes(cfg, true))
        .split_for_parts();
    crate::openapi::finish(doc)
}

pub fn build_app(
    state: web::Data<AppState>,
    metrics: PrometheusMetrics,
) -> App<
    impl ServiceFactory<
        ServiceRequest,
        Config = (),
        Response = ServiceResponse<impl MessageBody>,
        Error = actix_web::Error,
        InitError = (),
    >,
> {
    let sandbox = state.payments.sandbox_enabled();
    let (app, _) = App::new()
        .into_utoipa_app()
        .openapi(ApiDoc::openapi())
        .configure(|cfg| register_routes(cfg, sandbox))
        .split_for_parts();
    let doc = api_document();
    let route_table = web::Data::new(fallback::RouteTable::from_openapi(&doc));
    app.app_data(state)
        .app_data(web::Data::new(metrics.registry.clone()))
        .app_data(route_table)
        .app_data(extractors::json_config())
        .app_data(extractors::form_config())
        .app_data(extractors::query_config())
        .app_data(extractors::path_config())
        .app_data(extractors::payload_config())
        .service(web::redirect("/docs", "/docs/"))
        .service(SwaggerUi::new("/docs/{_:.*}").url("/openapi.json", doc))
        .default_service(web::to(fallback::not_matched))
        .wrap(metrics)
        .wrap(from_fn(request_id::middleware))
}

/// How many worker threads, and how long a graceful shutdown may take.
#[derive(Debug, Clone, Copy)]
pub struct ServerOptions {
    pub workers: Option<usize>,
    pub shutdown_timeout_s: u64,
}

/// How often unpaid orders are expired and owed refunds retried; expired idempotency
/// keys are purged every tenth time. Any instance may do it: each step is a conditional
/// update or an idempotent delete, so instances running it together do not collide.
const HOUSEKEEPING_INTERVAL: std::time::Duration = std::time::Duration::from_secs(60);

fn spawn_housekeeping(state: web::Data<AppState>) {
    use crate::payments::settle;
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(HOUSEKEEPING_INTERVAL);
        for round in 0_u64.. {
            tick.tick().await;
            match settle::expire_unpaid(&state.db, state.payments.order_ttl).await {
                Ok(0) => {}
                Ok(expired) => tracing::info!(expired, "unpaid orders expired"),
                Err(e) => tracing::warn!(error = %e, "order expiry failed; will retry"),
            }
            if let Ok(refunded) = settle::refund_owed(&state.db, &state.payments).await {
                if refunded > 0 {
                    tracing::info!(refunded, "owed refunds made");
                }
            }
            if round % 10 == 0 {
                match crate::idempotency::purge_expired(&state.db).await {
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

/// Starts serving on `listener`; the returned future runs until SIGTERM/SIGINT or a stop.
/// Call it inside a tokio runtime: background housekeeping is spawned on it.
pub fn start(
    state: AppState,
    listener: TcpListener,
    options: ServerOptions,
) -> std::io::Result<Server> {
    let metrics = metrics::build().map_err(std::io::Error::other)?;
    let state = web::Data::new(state);
    spawn_housekeeping(state.clone());
    let mut server = HttpServer::new(move || build_app(state.clone(), metrics.clone()))
        .shutdown_timeout(options.shutdown_timeout_s);
    if let Some(workers) = options.workers {
        server = server.workers(workers);
    }
    Ok(server.listen(listener)?.run())
}
