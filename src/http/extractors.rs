//! actix's own extractor failures (malformed JSON, wrong types, unknown fields, bad
//! query strings, oversized bodies) turned into problem+json instead of plain text.

use actix_web::error::{JsonPayloadError, PathError, QueryPayloadError, UrlencodedError};
use actix_web::{web, HttpRequest};

use super::body_deadline;
use crate::error::{ApiError, ErrorCode};

/// Largest request body accepted, in bytes. No call of this API needs more.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

pub fn json_config() -> web::JsonConfig {
    web::JsonConfig::default()
        .limit(MAX_BODY_BYTES)
        .error_handler(|err, _req: &HttpRequest| json_error(err).into())
}

pub fn form_config() -> web::FormConfig {
    web::FormConfig::default()
        .limit(MAX_BODY_BYTES)
        .error_handler(|err, _req: &HttpRequest| form_error(err).into())
}

pub fn query_config() -> web::QueryConfig {
    web::QueryConfig::default().error_handler(|err, _req: &HttpRequest| query_error(err).into())
}

pub fn path_config() -> web::PathConfig {
    web::PathConfig::default().error_handler(|err, _req: &HttpRequest| path_error(err).into())
}

pub fn payload_config() -> web::PayloadConfig {
    web::PayloadConfig::new(MAX_BODY_BYTES)
}

fn too_large() -> ApiError {
    ApiError::new(
        ErrorCode::PayloadTooLarge,
        format!("the request body exceeds {MAX_BODY_BYTES} bytes"),
    )
}

fn json_error(err: JsonPayloadError) -> ApiError {
    match err {
        JsonPayloadError::Overflow { .. } | JsonPayloadError::OverflowKnownLength { .. } => {
            too_large()
        }
        JsonPayloadError::ContentType => ApiError::new(
            ErrorCode::UnsupportedMediaType,
            "the request body must be JSON, sent with `Content-Type: application/json`",
        ),
        JsonPayloadError::Deserialize(e) if e.is_data() => {
            ApiError::bad_request(format!("the JSON body does not fit this operation: {e}"))
        }
        JsonPayloadError::Deserialize(e) => {
            ApiError::bad_request(format!("the request body is not valid JSON: {e}"))
        }
        JsonPayloadError::Payload(e) if body_deadline::timed_out(&e) => too_slow(),
        other => ApiError::bad_request(format!("the request body could not be read: {other}")),
    }
}

fn too_slow() -> ApiError {
    body_deadline::request_timeout()
}

/// Reads a whole request body of at most `limit` bytes (`413` problem+json beyond), for
/// handlers that need the raw bytes (webhook signatures, optional bodies).
pub async fn read_body(payload: web::Payload, limit: usize) -> Result<web::Bytes, ApiError> {
    match payload.to_bytes_limited(limit).await {
        Ok(Ok(bytes)) => Ok(bytes),
        Ok(Err(e)) if body_deadline::timed_out_error(&e) => Err(too_slow()),
        Ok(Err(e)) => Err(ApiError::bad_request(format!(
            "the request body could not be read: {e}"
        ))),
        Err(_) => Err(ApiError::new(
            ErrorCode::PayloadTooLarge,
            format!("the request body exceeds {limit} bytes"),
        )),
    }
}

/// An optional JSON body: none at all is `None`; anything else must be JSON of `T`
/// (sent as `application/json`), refused like any other malformed body.
pub fn optional_json<T: serde::de::DeserializeOwned>(
    req: &HttpRequest,
    body: &[u8],
) -> Result<Option<T>, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    let is_json = req
        .headers()
        .get(actix_web::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(';')
                .next()
                .is_some_and(|m| m.trim().eq_ignore_ascii_case("application/json"))
        });
    if !is_json {
        return Err(json_error(JsonPayloadError::ContentType));
    }
    serde_json::from_slice(body)
        .map(Some)
        .map_err(|e| json_error(JsonPayloadError::Deserialize(e)))
}

fn form_error(err: UrlencodedError) -> ApiError {
    match err {
        UrlencodedError::Overflow { .. } => too_large(),
        UrlencodedError::ContentType => ApiError::new(
            ErrorCode::UnsupportedMediaType,
            "the request body must be `application/x-www-form-urlencoded`",
        ),
        UrlencodedError::Parse(e) => {
            ApiError::bad_request(format!("the form body does not fit this operation: {e}"))
        }
        UrlencodedError::Payload(e) if body_deadline::timed_out(&e) => too_slow(),
        other => ApiError::bad_request(format!("the form body could not be read: {other}")),
    }
}

fn query_error(err: QueryPayloadError) -> ApiError {
    match err {
        QueryPayloadError::Deserialize(e) => {
            ApiError::bad_request(format!("invalid query string: {e}"))
        }
        other => ApiError::bad_request(format!("invalid query string: {other}")),
    }
}

/// A path segment of the wrong shape (an id that is not a UUID) names nothing that exists.
fn path_error(err: PathError) -> ApiError {
    ApiError::not_found(format!("no such resource: {err}"))
}
