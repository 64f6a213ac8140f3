//! Liveness and readiness, for load balancers and orchestrators.

use std::time::Duration;

use actix_web::{get, web, HttpResponse};
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_actix_web::service_config::ServiceConfig;

use crate::clock::Clock;
use crate::db::Db;
use crate::error::{ApiError, Problem};

/// A readiness check that takes longer than this counts as a failure: a probe must get
/// its answer well within an orchestrator's probe timeout, even while the database hangs.
const READINESS_TIMEOUT: Duration = Duration::from_millis(1000);

pub fn configure(cfg: &mut ServiceConfig) {
    cfg.service(liveness).service(readiness);
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Liveness {
    /// Always `ok` when the process answers.
    #[schema(example = "ok")]
    pub status: &'static str,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Readiness {
    #[schema(example = "ready")]
    pub status: &'static str,
    /// The database backend in use: `postgres` or `sqlite`.
    #[schema(example = "postgres")]
    pub database: &'static str,
}

/// Is the process alive?
#[utoipa::path(
    operation_id = "get_liveness",
    tag = "operations",
    security(()),
    responses((status = 200, description = "The process is serving requests.", body = Liveness))
)]
#[get("/healthz")]
async fn liveness() -> HttpResponse {
    HttpResponse::Ok().json(Liveness { status: "ok" })
}

/// Can the service do its work (can it write to the database)?
#[utoipa::path(
    operation_id = "get_readiness",
    tag = "operations",
    security(()),
    responses(
        (status = 200, description = "Ready: the database takes a write.", body = Readiness),
        (status = 503, description = "Not ready: the database does not answer, or cannot write (full disk).", body = Problem,
         content_type = "application/problem+json"),
    )
)]
#[get("/readyz")]
async fn readiness(db: web::Data<Db>, clock: web::Data<Clock>) -> Result<HttpResponse, ApiError> {
    match tokio::time::timeout(READINESS_TIMEOUT, db.ping(clock.now_db())).await {
        Ok(Ok(())) => Ok(HttpResponse::Ok().json(Readiness {
            status: "ready",
            database: match db.backend() {
                crate::db::Backend::Postgres => "postgres",
                crate::db::Backend::Sqlite => "sqlite",
            },
        })),
        Ok(Err(e)) => Err(ApiError::Unavailable(e.to_string())),
        Err(_) => Err(ApiError::Unavailable(format!(
            "no answer within {READINESS_TIMEOUT:?}"
        ))),
    }
}
