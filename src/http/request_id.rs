//! `X-Request-Id`: echoed when the caller sent a sane one, generated otherwise, put on
//! every response and on every log line written while the request is served.

use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::Error;
use tracing::Instrument;

pub const HEADER: HeaderName = HeaderName::from_static("x-request-id");
const MAX_LEN: usize = 128;

pub use crate::request_scope::current_request_id as current;

/// A caller's id is kept only if it is 1–128 visible ASCII characters, so it cannot
/// forge log lines or smuggle headers.
fn sane(value: &HeaderValue) -> Option<String> {
    let bytes = value.as_bytes();
    let visible = |b: &u8| (0x21..=0x7e).contains(b);
    (!bytes.is_empty() && bytes.len() <= MAX_LEN && bytes.iter().all(visible))
        .then(|| String::from_utf8_lossy(bytes).into_owned())
}

pub async fn middleware(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    let id = req
        .headers()
        .get(&HEADER)
        .and_then(sane)
        .unwrap_or_else(|| uuid::Uuid::now_v7().to_string());
    let span = tracing::info_span!(
        "request",
        request_id = %id,
        method = %req.method(),
        path = %req.path(),
        // For the OpenTelemetry export (`telemetry::otlp`): a server span, with the
        // status recorded when the response is known.
        otel.kind = "server",
        http.response.status_code = tracing::field::Empty,
    );
    let started = Instant::now();
    // Handlers' errors arrive here already turned into responses; an `Err` can only come
    // from actix itself, and is passed on as it is.
    let mut response = crate::request_scope::with_request_id(id.clone(), next.call(req))
        .instrument(span.clone())
        .await?;
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(HEADER, value);
    }
    // Every answer, errors and documents included: browsers must not guess a type.
    response.headers_mut().insert(
        actix_web::http::header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    span.record(
        "http.response.status_code",
        i64::from(response.status().as_u16()),
    );
    span.in_scope(|| {
        tracing::info!(
            status = response.status().as_u16(),
            elapsed_ms = started.elapsed().as_secs_f64() * 1000.0,
            "request served"
        )
    });
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_visible_ascii_up_to_128_characters() {
        assert_eq!(
            sane(&HeaderValue::from_static("abc-123_XYZ.:/")),
            Some("abc-123_XYZ.:/".to_owned())
        );
        let longest = "a".repeat(128);
        assert!(sane(&HeaderValue::from_str(&longest).unwrap()).is_some());
    }

    #[test]
    fn refuses_empty_long_or_spaced_ids() {
        assert_eq!(sane(&HeaderValue::from_static("")), None);
        assert_eq!(
            sane(&HeaderValue::from_str(&"a".repeat(129)).unwrap()),
            None
        );
        assert_eq!(sane(&HeaderValue::from_static("two words")), None);
        assert_eq!(
            sane(&HeaderValue::from_bytes(b"caf\xc3\xa9").unwrap()),
            None
        );
    }
}
