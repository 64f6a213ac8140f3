//! Prometheus HTTP metrics: request count and latency histogram by route pattern and
//! status. `/metrics` itself is served by `operations::metrics`.

use actix_web_prom::{PrometheusMetrics, PrometheusMetricsBuilder};

/// One registry per process (or per test server), shared by every worker.
pub fn build() -> Result<PrometheusMetrics, String> {
    PrometheusMetricsBuilder::new("simrenew")
        // Unmatched paths are whatever a scanner sends: one label, not one per path.
        .mask_unmatched_patterns("UNMATCHED")
        .exclude("/metrics")
        .build()
        .map_err(|e| format!("cannot set up metrics: {e}"))
}
