//! The one error language of the API: every failure becomes an RFC 9457
//! `application/problem+json` body here, and only here are statuses chosen.

use actix_web::http::header::{self, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;
use utoipa::ToSchema;

use crate::db::DbError;

/// Where problem type URIs live; `type` is this plus the code.
pub const PROBLEM_TYPE_BASE: &str = "https://simrenew.dev/problems/";

/// Stable machine-readable error codes. Once published a code never changes meaning.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The request is malformed: unparsable JSON, wrong types, unknown fields.
    InvalidRequest,
    /// The request is well-formed but some fields are invalid; see `errors`.
    ValidationFailed,
    /// No valid bearer token was presented.
    Unauthorized,
    /// The token is valid but lacks the scope this operation requires.
    Forbidden,
    /// The resource does not exist, or belongs to another partner.
    NotFound,
    /// The path exists but not with this HTTP method.
    MethodNotAllowed,
    /// The request body exceeds the size limit.
    PayloadTooLarge,
    /// The request body is not in a media type this operation accepts.
    UnsupportedMediaType,
    /// The request conflicts with the current state of the resource.
    Conflict,
    /// Too many requests; retry after the time in `Retry-After`.
    RateLimited,
    /// The database cannot be reached; retrying later is safe.
    ServiceUnavailable,
    /// An unexpected failure on our side; it is logged with the request id.
    InternalError,
    /// The wallet holds less than the order costs; nothing was charged.
    InsufficientFunds,
    /// The plan is retired, unknown, or not made for this card type.
    PlanNotAvailableForCard,
    /// The plan has no price in the requested currency.
    CurrencyNotOffered,
    /// The card is suspended and cannot be renewed until an operator resumes it.
    CardSuspended,
    /// This payment method is not enabled on this deployment.
    PaymentMethodUnavailable,
    /// The order's current state does not allow this action.
    InvalidStateTransition,
    /// This operation requires an `Idempotency-Key` header.
    IdempotencyKeyMissing,
    /// The key was used before with a different request.
    IdempotencyKeyReused,
    /// A request with this key is still being processed; retry shortly.
    IdempotencyRequestInProgress,
    /// The eSIM is bound to another EID than the one given.
    EidMismatch,
    /// The payment provider is down or slow; retry with the same Idempotency-Key.
    PaymentProviderUnavailable,
    /// The payment provider refused the payment; retrying will not help.
    PaymentProviderRejected,
    /// A webhook's signature is missing, wrong or too old.
    InvalidSignature,
}

impl ErrorCode {
    pub fn status(self) -> StatusCode {
        match self {
            Self::InvalidRequest => StatusCode::BAD_REQUEST,
            Self::ValidationFailed => StatusCode::UNPROCESSABLE_ENTITY,
            Self::Unauthorized => StatusCode::UNAUTHORIZED,
            Self::Forbidden => StatusCode::FORBIDDEN,
            Self::NotFound => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::Conflict => StatusCode::CONFLICT,
            Self::RateLimited => StatusCode::TOO_MANY_REQUESTS,
            Self::ServiceUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            Self::InternalError => StatusCode::INTERNAL_SERVER_ERROR,
            Self::InsufficientFunds => StatusCode::PAYMENT_REQUIRED,
            Self::PlanNotAvailableForCard => StatusCode::UNPROCESSABLE_ENTITY,
            Self::CurrencyNotOffered => StatusCode::UNPROCESSABLE_ENTITY,
            Self::CardSuspended => StatusCode::CONFLICT,
            Self::PaymentMethodUnavailable => StatusCode::UNPROCESSABLE_ENTITY,
            Self::InvalidStateTransition => StatusCode::CONFLICT,
            Self::IdempotencyKeyMissing => StatusCode::BAD_REQUEST,
            Self::IdempotencyKeyReused => StatusCode::UNPROCESSABLE_ENTITY,
            Self::IdempotencyRequestInProgress => StatusCode::CONFLICT,
            Self::EidMismatch => StatusCode::CONFLICT,
            Self::PaymentProviderUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            Self::PaymentProviderRejected => StatusCode::BAD_GATEWAY,
            Self::InvalidSignature => StatusCode::BAD_REQUEST,
        }
    }

    pub fn title(self) -> &'static str {
        match self {
            Self::InvalidRequest => "Invalid request",
            Self::ValidationFailed => "Validation failed",
            Self::Unauthorized => "Unauthorized",
            Self::Forbidden => "Forbidden",
            Self::NotFound => "Not found",
            Self::MethodNotAllowed => "Method not allowed",
            Self::PayloadTooLarge => "Payload too large",
            Self::UnsupportedMediaType => "Unsupported media type",
            Self::Conflict => "Conflict",
            Self::RateLimited => "Too many requests",
            Self::ServiceUnavailable => "Service unavailable",
            Self::InternalError => "Internal server error",
            Self::InsufficientFunds => "Insufficient funds",
            Self::PlanNotAvailableForCard => "Plan not available for this card",
            Self::CurrencyNotOffered => "Currency not offered",
            Self::CardSuspended => "Card suspended",
            Self::PaymentMethodUnavailable => "Payment method unavailable",
            Self::InvalidStateTransition => "Invalid state transition",
            Self::IdempotencyKeyMissing => "Idempotency-Key missing",
            Self::IdempotencyKeyReused => "Idempotency-Key reused",
            Self::IdempotencyRequestInProgress => "Request in progress",
            Self::EidMismatch => "EID mismatch",
            Self::PaymentProviderUnavailable => "Payment provider unavailable",
            Self::PaymentProviderRejected => "Payment provider refused",
            Self::InvalidSignature => "Invalid signature",
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::InvalidRequest => "invalid_request",
            Self::ValidationFailed => "validation_failed",
            Self::Unauthorized => "unauthorized",
            Self::Forbidden => "forbidden",
            Self::NotFound => "not_found",
            Self::MethodNotAllowed => "method_not_allowed",
            Self::PayloadTooLarge => "payload_too_large",
            Self::UnsupportedMediaType => "unsupported_media_type",
            Self::Conflict => "conflict",
            Self::RateLimited => "rate_limited",
            Self::ServiceUnavailable => "service_unavailable",
            Self::InternalError => "internal_error",
            Self::InsufficientFunds => "insufficient_funds",
            Self::PlanNotAvailableForCard => "plan_not_available_for_card",
            Self::CurrencyNotOffered => "currency_not_offered",
            Self::CardSuspended => "card_suspended",
            Self::PaymentMethodUnavailable => "payment_method_unavailable",
            Self::InvalidStateTransition => "invalid_state_transition",
            Self::IdempotencyKeyMissing => "idempotency_key_missing",
            Self::IdempotencyKeyReused => "idempotency_key_reused",
            Self::IdempotencyRequestInProgress => "idempotency_request_in_progress",
            Self::EidMismatch => "eid_mismatch",
            Self::PaymentProviderUnavailable => "payment_provider_unavailable",
            Self::PaymentProviderRejected => "payment_provider_rejected",
            Self::InvalidSignature => "invalid_signature",
        }
    }
}

/// One invalid field of a request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct FieldError {
    /// The field, as a JSON path into the request (`prices[1].currency`) or a query parameter name.
    pub field: String,
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// RFC 9457 problem details, the body of every error response.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "type": "https://simrenew.dev/problems/not_found",
    "title": "Not found",
    "status": 404,
    "detail": "no card with ICCID 8986012345678901234 is visible to this partner",
    "code": "not_found",
    "request_id": "01936f3e-8a1c-7cc2-9a57-6d1f0a4b2c11"
}))]
pub struct Problem {
    /// A URI identifying the problem type; one per `code`.
    #[serde(rename = "type")]
    pub type_uri: String,
    pub title: String,
    pub status: u16,
    /// A human-readable explanation of this occurrence.
    pub detail: String,
    pub code: ErrorCode,
    /// Present on validation failures: every invalid field, not only the first.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    #[schema(nullable = false)]
    pub errors: Vec<FieldError>,
    /// The `X-Request-Id` of the failed request, to quote when asking for support.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub request_id: Option<String>,
}

/// RFC 6749 §5.2 error codes, used only by the token endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum OAuthErrorCode {
    InvalidRequest,
    InvalidClient,
    UnsupportedGrantType,
    InvalidScope,
}

/// The token endpoint's error body, as RFC 6749 §5.2 requires (not problem+json).
#[derive(Debug, Serialize, ToSchema)]
pub struct OAuthError {
    pub error: OAuthErrorCode,
    pub error_description: String,
}

/// Every failure a request can meet.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// A failure the client can act on, described to them as it is.
    #[error("{code:?}: {detail}")]
    Problem {
        code: ErrorCode,
        detail: String,
        errors: Vec<FieldError>,
        /// `Allow`, `WWW-Authenticate`, `Retry-After` and the like.
        headers: Vec<(header::HeaderName, HeaderValue)>,
    },
    /// A token endpoint failure, answered in RFC 6749's format.
    #[error("oauth {error:?}: {description}")]
    OAuth {
        error: OAuthErrorCode,
        description: String,
        /// The client authenticated with HTTP Basic: a 401 then carries a Basic challenge.
        basic_challenge: bool,
    },
    /// The database is unreachable: the client may retry.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// Anything else. The cause is logged, never sent.
    #[error("internal error: {0}")]
    Internal(String),
}

impl ApiError {
    pub fn new(code: ErrorCode, detail: impl Into<String>) -> Self {
        Self::Problem {
            code,
            detail: detail.into(),
            errors: Vec::new(),
            headers: Vec::new(),
        }
    }

    pub fn bad_request(detail: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidRequest, detail)
    }

    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::new(ErrorCode::NotFound, detail)
    }

    pub fn conflict(detail: impl Into<String>) -> Self {
        Self::new(ErrorCode::Conflict, detail)
    }

    /// A `422` listing every invalid field.
    pub fn validation(errors: Vec<FieldError>) -> Self {
        let detail = match errors.as_slice() {
            [one] => format!("`{}` {}", one.field, one.message),
            many => format!("{} fields are invalid", many.len()),
        };
        Self::Problem {
            code: ErrorCode::ValidationFailed,
            detail,
            errors,
            headers: Vec::new(),
        }
    }

    pub fn internal(cause: impl std::fmt::Display) -> Self {
        Self::Internal(cause.to_string())
    }

    /// Adds a response header (only to client-facing problems).
    pub fn with_header(mut self, name: header::HeaderName, value: HeaderValue) -> Self {
        if let Self::Problem { headers, .. } = &mut self {
            headers.push((name, value));
        }
        self
    }

    pub fn oauth(error: OAuthErrorCode, description: impl Into<String>) -> Self {
        Self::OAuth {
            error,
            description: description.into(),
            basic_challenge: false,
        }
    }

    pub fn code(&self) -> ErrorCode {
        match self {
            Self::Problem { code, .. } => *code,
            Self::OAuth { error, .. } => match error {
                OAuthErrorCode::InvalidClient => ErrorCode::Unauthorized,
                _ => ErrorCode::InvalidRequest,
            },
            Self::Unavailable(_) => ErrorCode::ServiceUnavailable,
            Self::Internal(_) => ErrorCode::InternalError,
        }
    }
}

/// How a write transaction failed when a unique-key conflict has a meaning of its own:
/// another request (or instance) did the same first — a duplicate, a lost race.
#[derive(Debug)]
pub enum TxError {
    Conflict,
    Failed(ApiError),
}

impl From<diesel::result::Error> for TxError {
    fn from(e: diesel::result::Error) -> Self {
        if crate::db::is_unique_violation(&e) {
            TxError::Conflict
        } else {
            TxError::Failed(e.into())
        }
    }
}

impl From<DbError> for TxError {
    fn from(e: DbError) -> Self {
        TxError::Failed(e.into())
    }
}

impl From<ApiError> for TxError {
    fn from(e: ApiError) -> Self {
        TxError::Failed(e)
    }
}

impl From<DbError> for ApiError {
    fn from(e: DbError) -> Self {
        match e {
            DbError::Unavailable(cause) => Self::Unavailable(cause.to_string()),
            DbError::Query(cause) => Self::Internal(cause.to_string()),
            DbError::Cancelled => Self::Internal("database task cancelled".into()),
        }
    }
}

impl From<diesel::result::Error> for ApiError {
    fn from(e: diesel::result::Error) -> Self {
        Self::Internal(e.to_string())
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.code().status()
    }

    fn error_response(&self) -> HttpResponse {
        if let Self::OAuth {
            error,
            description,
            basic_challenge,
        } = self
        {
            return oauth_response(self.code().status(), *error, description, *basic_challenge);
        }
        let code = self.code();
        let (detail, errors, headers) = match self {
            Self::Problem {
                detail,
                errors,
                headers,
                ..
            } => (detail.clone(), errors.clone(), headers.clone()),
            Self::OAuth { .. } => (String::new(), Vec::new(), Vec::new()),
            Self::Unavailable(cause) => {
                tracing::warn!(error = %cause, "database unavailable");
                (
                    "the database is unreachable; retry later".to_owned(),
                    Vec::new(),
                    vec![(header::RETRY_AFTER, HeaderValue::from_static("5"))],
                )
            }
            Self::Internal(cause) => {
                tracing::error!(error = %cause, "internal error");
                (
                    "an unexpected error occurred; quote the request id when contacting support"
                        .to_owned(),
                    Vec::new(),
                    Vec::new(),
                )
            }
        };
        let problem = Problem {
            type_uri: format!("{PROBLEM_TYPE_BASE}{}", code.as_str()),
            title: code.title().to_owned(),
            status: code.status().as_u16(),
            detail,
            code,
            errors,
            request_id: crate::http::request_id::current(),
        };
        let mut response = HttpResponse::build(code.status());
        response.content_type("application/problem+json");
        for (name, value) in headers {
            response.insert_header((name, value));
        }
        response.json(problem)
    }
}

fn oauth_response(
    status: StatusCode,
    error: OAuthErrorCode,
    description: &str,
    basic_challenge: bool,
) -> HttpResponse {
    let mut response = HttpResponse::build(status);
    response
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header((header::PRAGMA, "no-cache"));
    if basic_challenge && status == StatusCode::UNAUTHORIZED {
        response.insert_header((header::WWW_AUTHENTICATE, r#"Basic realm="simrenew""#));
    }
    response.json(OAuthError {
        error,
        error_description: description.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_serializes_to_its_documented_string() {
        let all = [
            ErrorCode::InvalidRequest,
            ErrorCode::ValidationFailed,
            ErrorCode::Unauthorized,
            ErrorCode::Forbidden,
            ErrorCode::NotFound,
            ErrorCode::MethodNotAllowed,
            ErrorCode::PayloadTooLarge,
            ErrorCode::UnsupportedMediaType,
            ErrorCode::Conflict,
            ErrorCode::RateLimited,
            ErrorCode::ServiceUnavailable,
            ErrorCode::InternalError,
            ErrorCode::InsufficientFunds,
            ErrorCode::PlanNotAvailableForCard,
            ErrorCode::CurrencyNotOffered,
            ErrorCode::CardSuspended,
            ErrorCode::PaymentMethodUnavailable,
            ErrorCode::InvalidStateTransition,
            ErrorCode::IdempotencyKeyMissing,
            ErrorCode::IdempotencyKeyReused,
            ErrorCode::IdempotencyRequestInProgress,
            ErrorCode::EidMismatch,
            ErrorCode::PaymentProviderUnavailable,
            ErrorCode::PaymentProviderRejected,
            ErrorCode::InvalidSignature,
        ];
        for code in all {
            assert_eq!(
                serde_json::to_value(code).unwrap(),
                serde_json::Value::String(code.as_str().to_owned())
            );
        }
    }

    #[test]
    fn internal_errors_never_reveal_their_cause() {
        let err = ApiError::internal("relation \"partners\" does not exist at SELECT * FROM");
        let response = err.error_response();
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let body = actix_web::body::to_bytes(response.into_body());
        let body = futures_util::FutureExt::now_or_never(body)
            .unwrap()
            .unwrap();
        let text = String::from_utf8(body.to_vec()).unwrap();
        assert!(!text.contains("partners"), "{text}");
        assert!(text.contains("\"code\":\"internal_error\""), "{text}");
    }

    #[test]
    fn a_single_invalid_field_is_named_in_the_detail() {
        let err =
            ApiError::validation(vec![FieldError::new("currency", "is not an ISO 4217 code")]);
        assert_eq!(err.code(), ErrorCode::ValidationFailed);
        assert!(err
            .to_string()
            .contains("`currency` is not an ISO 4217 code"));
    }
}
