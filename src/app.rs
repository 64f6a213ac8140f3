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
        Ok(Self {
            db,
            settings: Arc::new(settings),
            auth: authenticator,
            catalog: crate::catalog::CatalogCache::default(),
        })
    }
}

/// Every documented route, capability by capability.
fn register_routes(cfg: &mut ServiceConfig) {
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
        .configure(crate::activation::routes::configure);
}

/// The OpenAPI document, generated from the registered routes.
pub fn api_document() -> utoipa::openapi::OpenApi {
    let (_, doc) = App::new()
        .into_utoipa_app()
        .openapi(ApiDoc::openapi())
        .configure(register_routes)
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
    let (app, doc) = App::new()
        .into_utoipa_app()
        .openapi(ApiDoc::openapi())
        .configure(register_routes)
        .split_for_parts();
    let doc = crate::openapi::finish(doc);
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

/// How often expired idempotency keys are removed. Any instance may do it; deleting
/// what another instance already deleted is harmless.
const HOUSEKEEPING_INTERVAL: std::time::Duration = std::time::Duration::from_secs(600);

fn spawn_housekeeping(state: web::Data<AppState>) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(HOUSEKEEPING_INTERVAL);
        loop {
            tick.tick().await;
            match crate::idempotency::purge_expired(&state.db).await {
                Ok(0) => {}
                Ok(removed) => tracing::info!(removed, "expired idempotency keys removed"),
                Err(e) => tracing::warn!(error = %e, "idempotency key purge failed; will retry"),
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
