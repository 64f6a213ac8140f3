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

use crate::config::Settings;
use crate::db::Db;
use crate::http::{extractors, fallback, metrics, request_id};
use crate::openapi::ApiDoc;

/// What every handler can reach. Holds no per-request state: instances are interchangeable.
pub struct AppState {
    pub db: Db,
    pub settings: Arc<Settings>,
}

impl AppState {
    pub fn new(settings: Settings) -> Self {
        let db = Db::new(&settings.database_url, &settings.pool);
        Self {
            db,
            settings: Arc::new(settings),
        }
    }
}

/// Every documented route, capability by capability.
fn register_routes(cfg: &mut ServiceConfig) {
    cfg.configure(crate::health::configure)
        .configure(metrics::configure);
}

/// The OpenAPI document, generated from the registered routes.
pub fn api_document() -> utoipa::openapi::OpenApi {
    App::new()
        .into_utoipa_app()
        .openapi(ApiDoc::openapi())
        .configure(register_routes)
        .split_for_parts()
        .1
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

/// Starts serving on `listener`; the returned future runs until SIGTERM/SIGINT or a stop.
pub fn start(
    state: AppState,
    listener: TcpListener,
    options: ServerOptions,
) -> std::io::Result<Server> {
    let metrics = metrics::build().map_err(std::io::Error::other)?;
    let state = web::Data::new(state);
    let mut server = HttpServer::new(move || build_app(state.clone(), metrics.clone()))
        .shutdown_timeout(options.shutdown_timeout_s);
    if let Some(workers) = options.workers {
        server = server.workers(workers);
    }
    Ok(server.listen(listener)?.run())
}
