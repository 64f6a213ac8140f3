//! Prometheus metrics: request count and latency histogram by route pattern and status.

use actix_web::{get, web, HttpResponse};
use actix_web_prom::{PrometheusMetrics, PrometheusMetricsBuilder};
use prometheus::{Encoder, TextEncoder};
use utoipa_actix_web::service_config::ServiceConfig;

use crate::error::ApiError;

/// One registry per process (or per test server), shared by every worker.
pub fn build() -> Result<PrometheusMetrics, String> {
    PrometheusMetricsBuilder::new("simrenew")
        // Unmatched paths are whatever a scanner sends: one label, not one per path.
        .mask_unmatched_patterns("UNMATCHED")
        .exclude("/metrics")
        .build()
        .map_err(|e| format!("cannot set up metrics: {e}"))
}

pub fn configure(cfg: &mut ServiceConfig) {
    cfg.service(metrics);
}

/// Prometheus metrics in the text exposition format.
#[utoipa::path(
    operation_id = "get_metrics",
    tag = "operations",
    security(()),
    responses((status = 200, description = "Prometheus text format 0.0.4.", body = String,
               content_type = "text/plain; version=0.0.4"))
)]
#[get("/metrics")]
async fn metrics(registry: web::Data<prometheus::Registry>) -> Result<HttpResponse, ApiError> {
    let mut buffer = Vec::new();
    TextEncoder::new()
        .encode(&registry.gather(), &mut buffer)
        .map_err(ApiError::internal)?;
    Ok(HttpResponse::Ok()
        .content_type(TextEncoder::new().format_type())
        .body(buffer))
}
