//! actix's own extractor failures (malformed JSON, wrong types, unknown fields, bad
//! query strings, oversized bodies) turned into problem+json instead of plain text.

use actix_web::error::{JsonPayloadError, PathError, QueryPayloadError, UrlencodedError};
use actix_web::{web, HttpRequest};

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
        other => ApiError::bad_request(format!("the request body could not be read: {other}")),
    }
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
