//! The one error language of the API: every failure becomes an RFC 9457
//! `application/problem+json` body here, and only here are statuses chosen.

use actix_web::http::header::{self, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;
use utoipa::ToSchema;

use crate::db::{DbError, UnknownValue};

/// Where problem type URIs live; `type` is this plus the code.
pub const PROBLEM_TYPE_BASE: &str = "https://simrenew.dev/problems/";

/// Declares every error code once: its variant, HTTP status, stable `code` string,
/// title, and whether a retry of the same request may succeed. Everything else (serialization, the lookup functions, `ALL`) derives from it.
macro_rules! error_codes {
    ($( $(#[doc = $doc:literal])* $variant:ident => ($status:ident, $code:literal, $title:literal, $retryable:literal), )+) => {
        /// Stable machine-readable error codes. Once published a code never changes meaning.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
        #[serde(rename_all = "snake_case")]
        pub enum ErrorCode {
            $( $(#[doc = $doc])* $variant, )+
        }

        impl ErrorCode {
            pub const ALL: &'static [ErrorCode] = &[$(ErrorCode::$variant),+];

            pub fn status(self) -> StatusCode {
                match self {
                    $(Self::$variant => StatusCode::$status,)+
                }
            }

            pub fn title(self) -> &'static str {
                match self {
                    $(Self::$variant => $title,)+
                }
            }

            pub fn as_str(self) -> &'static str {
                match self {
                    $(Self::$variant => $code,)+
                }
            }

            /// Whether the same request may succeed if sent again later.
            pub fn retryable(self) -> bool {
                match self {
                    $(Self::$variant => $retryable,)+
                }
            }
        }
    };
}

error_codes! {
    /// The request is malformed: unparsable JSON, wrong types, unknown fields.
    InvalidRequest => (BAD_REQUEST, "invalid_request", "Invalid request", false),
    /// The request is well-formed but some fields are invalid; see `errors`.
    ValidationFailed => (UNPROCESSABLE_ENTITY, "validation_failed", "Validation failed", false),
    /// No valid bearer token was presented.
    Unauthorized => (UNAUTHORIZED, "unauthorized", "Unauthorized", false),
    /// The token is valid but lacks the scope this operation requires.
    Forbidden => (FORBIDDEN, "forbidden", "Forbidden", false),
    /// The resource does not exist, or belongs to another partner.
    NotFound => (NOT_FOUND, "not_found", "Not found", false),
    /// The path exists but not with this HTTP method.
    MethodNotAllowed => (METHOD_NOT_ALLOWED, "method_not_allowed", "Method not allowed", false),
    /// The request body exceeds the size limit.
    PayloadTooLarge => (PAYLOAD_TOO_LARGE, "payload_too_large", "Payload too large", false),
    /// The request body did not arrive within the read deadline; the connection is closed.
    RequestTimeout => (REQUEST_TIMEOUT, "request_timeout", "Request timeout", true),
    /// The request body is not in a media type this operation accepts.
    UnsupportedMediaType => (UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type", "Unsupported media type", false),
    /// The request conflicts with the current state of the resource.
    Conflict => (CONFLICT, "conflict", "Conflict", false),
    /// Too many requests; retry after the time in `Retry-After`.
    RateLimited => (TOO_MANY_REQUESTS, "rate_limited", "Too many requests", true),
    /// The database cannot be reached; retrying later is safe.
    ServiceUnavailable => (SERVICE_UNAVAILABLE, "service_unavailable", "Service unavailable", true),
    /// An unexpected failure on our side; it is logged with the request id.
    InternalError => (INTERNAL_SERVER_ERROR, "internal_error", "Internal server error", false),
    /// The wallet holds less than the order costs; nothing was charged.
    InsufficientFunds => (PAYMENT_REQUIRED, "insufficient_funds", "Insufficient funds", false),
    /// The plan is retired, unknown, or not made for this card type.
    PlanNotAvailableForCard => (UNPROCESSABLE_ENTITY, "plan_not_available_for_card", "Plan not available for this card", false),
    /// The plan has no price in the requested currency.
    CurrencyNotOffered => (UNPROCESSABLE_ENTITY, "currency_not_offered", "Currency not offered", false),
    /// The card is suspended and cannot be renewed until an operator resumes it.
    CardSuspended => (CONFLICT, "card_suspended", "Card suspended", false),
    /// This payment method is not enabled on this deployment.
    PaymentMethodUnavailable => (UNPROCESSABLE_ENTITY, "payment_method_unavailable", "Payment method unavailable", false),
    /// The order's current state does not allow this action.
    InvalidStateTransition => (CONFLICT, "invalid_state_transition", "Invalid state transition", false),
    /// This operation requires an `Idempotency-Key` header.
    IdempotencyKeyMissing => (BAD_REQUEST, "idempotency_key_missing", "Idempotency-Key missing", false),
    /// The key was used before with a different request.
    IdempotencyKeyReused => (UNPROCESSABLE_ENTITY, "idempotency_key_reused", "Idempotency-Key reused", false),
    /// A request with this key is still being processed; retry shortly.
    IdempotencyRequestInProgress => (CONFLICT, "idempotency_request_in_progress", "Request in progress", true),
    /// The eSIM is bound to another EID than the one given.
    EidMismatch => (CONFLICT, "eid_mismatch", "EID mismatch", false),
    /// The payment provider is down or slow; retry with the same Idempotency-Key.
    PaymentProviderUnavailable => (SERVICE_UNAVAILABLE, "payment_provider_unavailable", "Payment provider unavailable", true),
    /// The payment provider refused the payment; retrying will not help.
    PaymentProviderRejected => (BAD_GATEWAY, "payment_provider_rejected", "Payment provider refused", false),
    /// A webhook's signature is missing, wrong or too old.
    InvalidSignature => (BAD_REQUEST, "invalid_signature", "Invalid signature", false),
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
    "detail": "no card with ICCID 89860012345678901238 is visible to this partner",
    "code": "not_found",
    "retryable": false,
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
    /// `true` when the same request may succeed later (after `Retry-After` if given):
    /// rate limits, an unavailable database or provider, a request still in progress.
    pub retryable: bool,
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
    /// The database is unreachable, restarting or full: the client may retry.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// Every pooled connection stayed busy (e.g. waiting on row locks) past the wait.
    #[error("database busy: {0}")]
    Busy(String),
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
            Self::Unavailable(_) | Self::Busy(_) => ErrorCode::ServiceUnavailable,
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
            // r2d2 names the last connection error when connecting failed; a bare
            // timeout means every connection stayed busy.
            DbError::Unavailable(cause) if cause.to_string().contains(": ") => {
                Self::Unavailable(cause.to_string())
            }
            DbError::Unavailable(cause) => Self::Busy(cause.to_string()),
            DbError::Query(cause) => cause.into(),
            DbError::Cancelled => Self::Internal("database task cancelled".into()),
        }
    }
}

/// Whether a query failed because the database could not serve it at all (the
/// connection was cut, the server is shutting down, the disk is full), rather than
/// because of the query: the same request may succeed later.
pub fn is_transient(e: &diesel::result::Error) -> bool {
    use diesel::result::{DatabaseErrorKind, Error};
    match e {
        Error::DatabaseError(
            DatabaseErrorKind::ClosedConnection | DatabaseErrorKind::SerializationFailure,
            _,
        ) => true,
        Error::DatabaseError(_, info) => {
            let message = info.message().to_ascii_lowercase();
            [
                "terminating connection",
                "server closed the connection",
                "connection to server",
                "the database system is shutting down",
                "the database system is starting up",
                "database or disk is full",
                "database is locked",
                "deadlock detected",
                "disk i/o error",
                "no space left on device",
                "could not extend file",
            ]
            .iter()
            .any(|needle| message.contains(needle))
        }
        _ => false,
    }
}

/// A stored value no type can hold: the data is corrupt, which is ours to fix.
impl From<UnknownValue> for ApiError {
    fn from(e: UnknownValue) -> Self {
        Self::Internal(format!("unreadable stored value: {e}"))
    }
}

impl From<diesel::result::Error> for ApiError {
    fn from(e: diesel::result::Error) -> Self {
        if is_transient(&e) {
            Self::Unavailable(e.to_string())
        } else {
            Self::Internal(e.to_string())
        }
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
                    "the database cannot be used right now (unreachable, restarting, or out \
                     of space); nothing was changed: retry later"
                        .to_owned(),
                    Vec::new(),
                    vec![(header::RETRY_AFTER, HeaderValue::from_static("5"))],
                )
            }
            Self::Busy(cause) => {
                tracing::warn!(error = %cause, "no database connection free in time");
                (
                    "every database connection is busy; nothing was changed: retry shortly"
                        .to_owned(),
                    Vec::new(),
                    vec![(header::RETRY_AFTER, HeaderValue::from_static("1"))],
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
            retryable: code.retryable(),
            errors,
            request_id: crate::request_scope::current_request_id(),
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
        for &code in ErrorCode::ALL {
            assert_eq!(
                serde_json::to_value(code).unwrap(),
                serde_json::Value::String(code.as_str().to_owned())
            );
        }
    }

    #[test]
    fn codes_and_titles_are_unique() {
        let codes: std::collections::HashSet<_> =
            ErrorCode::ALL.iter().map(|c| c.as_str()).collect();
        let titles: std::collections::HashSet<_> =
            ErrorCode::ALL.iter().map(|c| c.title()).collect();
        assert_eq!(codes.len(), ErrorCode::ALL.len());
        assert_eq!(titles.len(), ErrorCode::ALL.len());
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
    fn a_cut_connection_or_a_full_disk_is_a_retryable_503() {
        use diesel::result::{DatabaseErrorKind, Error};
        let cases = [
            Error::DatabaseError(
                DatabaseErrorKind::Unknown,
                Box::new("terminating connection due to administrator command".to_owned()),
            ),
            Error::DatabaseError(
                DatabaseErrorKind::Unknown,
                Box::new("database or disk is full".to_owned()),
            ),
            Error::DatabaseError(
                DatabaseErrorKind::ClosedConnection,
                Box::new("server closed the connection unexpectedly".to_owned()),
            ),
        ];
        for cause in cases {
            let response = ApiError::from(cause).error_response();
            assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
            assert!(response.headers().contains_key(header::RETRY_AFTER));
        }
        let bug = ApiError::from(Error::DatabaseError(
            DatabaseErrorKind::Unknown,
            Box::new("syntax error at or near".to_owned()),
        ));
        assert_eq!(bug.code(), ErrorCode::InternalError);
        assert!(ErrorCode::ServiceUnavailable.retryable());
        assert!(!ErrorCode::InternalError.retryable());
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
