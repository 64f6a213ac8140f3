//! OpenTelemetry traces over OTLP/HTTP, off unless `OTEL_EXPORTER_OTLP_ENDPOINT` is set.
//! Every `tracing` span (the request span carries `request_id`, method, path and the
//! response status) becomes an OpenTelemetry span, batched and exported from the SDK's
//! own thread, so a slow or absent collector never holds a request.

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{Protocol, WithExportConfig};
use opentelemetry_sdk::trace::SdkTracerProvider;
use opentelemetry_sdk::Resource;
use tracing::Level;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::{Layer, Registry};

/// The trace pipeline, if any. Dropping it flushes and stops the exporter.
pub struct Traces {
    provider: Option<SdkTracerProvider>,
}

/// How long one export may take before it is abandoned (the spans are dropped).
const EXPORT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

impl Traces {
    pub fn off() -> Self {
        Self { provider: None }
    }

    /// Exports to `<endpoint>/v1/traces`, the OTLP/HTTP path for traces.
    pub fn export_to(endpoint: &str) -> Result<Self, String> {
        let parsed = url::Url::parse(endpoint)
            .ok()
            .filter(|url| matches!(url.scheme(), "http" | "https"))
            .ok_or_else(|| {
                format!("OTEL_EXPORTER_OTLP_ENDPOINT must be an http(s) URL, not `{endpoint}`")
            })?;
        crate::http::outbound::install_tls_provider();
        let traces_url = format!("{}/v1/traces", parsed.as_str().trim_end_matches('/'));
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_protocol(Protocol::HttpBinary)
            .with_endpoint(traces_url)
            .with_timeout(EXPORT_TIMEOUT)
            .build()
            .map_err(|e| format!("cannot set up the OTLP trace exporter: {e}"))?;
        // The resource reads OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES; without a
        // name it would be `unknown_service`.
        let mut resource = Resource::builder();
        if std::env::var_os("OTEL_SERVICE_NAME").is_none() {
            resource = resource.with_service_name("simrenew");
        }
        let resource = resource.build();
        let provider = SdkTracerProvider::builder()
            .with_batch_exporter(exporter)
            .with_resource(resource)
            .build();
        Ok(Self {
            provider: Some(provider),
        })
    }

    /// The `tracing` layer that turns spans into OpenTelemetry spans (none when off).
    pub fn layer(&self) -> Option<Box<dyn Layer<Registry> + Send + Sync>> {
        self.provider.as_ref().map(|provider| {
            let tracer = provider.tracer("simrenew");
            // The service's own spans at info and above: not the HTTP clients' debug
            // spans, which include the exporter's own requests.
            let ours = Targets::new().with_target("simrenew", Level::INFO);
            Box::new(
                tracing_opentelemetry::layer()
                    .with_tracer(tracer)
                    .with_filter(ours),
            ) as Box<dyn Layer<Registry> + Send + Sync>
        })
    }
}

impl Drop for Traces {
    fn drop(&mut self) {
        if let Some(provider) = self.provider.take() {
            if let Err(e) = provider.shutdown() {
                eprintln!("simrenew: traces not all exported at exit: {e}");
            }
        }
    }
}
