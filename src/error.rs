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
/// title (English, then Chinese), what it means in Chinese, and whether a retry of the
/// same request may succeed. Everything else (serialization, the lookup functions, `ALL`) derives from it.
macro_rules! error_codes {
    ($( $(#[doc = $doc:literal])* $variant:ident => ($status:ident, $code:literal, $title:literal, $title_zh:literal, $explained_zh:literal, $retryable:literal), )+) => {
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

            /// The title in `lang`.
            pub fn title_in(self, lang: crate::i18n::Lang) -> &'static str {
                match (lang, self) {
                    $((crate::i18n::Lang::ZhCn, Self::$variant) => $title_zh,)+
                    _ => self.title(),
                }
            }

            /// What the code means, in Chinese: it leads a problem's `detail` in `zh-CN`.
            pub fn explained_zh(self) -> &'static str {
                match self {
                    $(Self::$variant => $explained_zh,)+
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
    InvalidRequest => (BAD_REQUEST, "invalid_request", "Invalid request", "请求无效", "请求格式有误", false),
    /// The request is well-formed but some fields are invalid; see `errors`.
    ValidationFailed => (UNPROCESSABLE_ENTITY, "validation_failed", "Validation failed", "校验失败", "部分字段无效，见 errors", false),
    /// No valid bearer token was presented.
    Unauthorized => (UNAUTHORIZED, "unauthorized", "Unauthorized", "未认证", "未提供有效的访问令牌", false),
    /// The token is valid but lacks the scope this operation requires.
    Forbidden => (FORBIDDEN, "forbidden", "Forbidden", "无权限", "令牌缺少此操作所需的权限范围", false),
    /// The resource does not exist, or belongs to another partner.
    NotFound => (NOT_FOUND, "not_found", "Not found", "未找到", "资源不存在，或属于其他合作方", false),
    /// The path exists but not with this HTTP method.
    MethodNotAllowed => (METHOD_NOT_ALLOWED, "method_not_allowed", "Method not allowed", "方法不允许", "该路径不支持此 HTTP 方法", false),
    /// The request body exceeds the size limit.
    PayloadTooLarge => (PAYLOAD_TOO_LARGE, "payload_too_large", "Payload too large", "请求体过大", "请求体超过大小限制", false),
    /// The request body did not arrive within the read deadline; the connection is closed.
    RequestTimeout => (REQUEST_TIMEOUT, "request_timeout", "Request timeout", "请求超时", "请求体未在时限内到达，连接已关闭", true),
    /// The request body is not in a media type this operation accepts.
    UnsupportedMediaType => (UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type", "Unsupported media type", "不支持的媒体类型", "此操作不接受该请求体类型", false),
    /// The request conflicts with the current state of the resource.
    Conflict => (CONFLICT, "conflict", "Conflict", "冲突", "请求与资源的当前状态冲突", false),
    /// Too many requests; retry after the time in `Retry-After`.
    RateLimited => (TOO_MANY_REQUESTS, "rate_limited", "Too many requests", "请求过多", "请求过于频繁，请在 Retry-After 所示时间后重试", true),
    /// The database cannot be reached; retrying later is safe.
    ServiceUnavailable => (SERVICE_UNAVAILABLE, "service_unavailable", "Service unavailable", "服务暂不可用", "数据库暂不可用，稍后重试是安全的", true),
    /// An unexpected failure on our side; it is logged with the request id.
    InternalError => (INTERNAL_SERVER_ERROR, "internal_error", "Internal server error", "内部错误", "发生意外错误；联系支持时请提供请求 ID", false),
    /// The wallet holds less than the order costs; nothing was charged.
    InsufficientFunds => (PAYMENT_REQUIRED, "insufficient_funds", "Insufficient funds", "余额不足", "钱包余额不足以支付订单，未扣款", false),
    /// The plan is retired, unknown, or not made for this card type.
    PlanNotAvailableForCard => (UNPROCESSABLE_ENTITY, "plan_not_available_for_card", "Plan not available for this card", "套餐不适用于此卡", "该套餐已下架、不存在或不适用于此卡类型", false),
    /// The plan has no price in the requested currency.
    CurrencyNotOffered => (UNPROCESSABLE_ENTITY, "currency_not_offered", "Currency not offered", "不支持该币种", "该套餐没有此币种的价格", false),
    /// The card is suspended and cannot be renewed until an operator resumes it.
    CardSuspended => (CONFLICT, "card_suspended", "Card suspended", "卡已停用", "此卡已被停用，恢复前无法续费", false),
    /// This payment method is not enabled on this deployment.
    PaymentMethodUnavailable => (UNPROCESSABLE_ENTITY, "payment_method_unavailable", "Payment method unavailable", "支付方式不可用", "本部署未启用此支付方式", false),
    /// The order's current state does not allow this action.
    InvalidStateTransition => (CONFLICT, "invalid_state_transition", "Invalid state transition", "状态不允许此操作", "当前状态不允许此操作", false),
    /// This operation requires an `Idempotency-Key` header.
    IdempotencyKeyMissing => (BAD_REQUEST, "idempotency_key_missing", "Idempotency-Key missing", "缺少 Idempotency-Key", "此操作需要 Idempotency-Key 请求头", false),
    /// The key was used before with a different request.
    IdempotencyKeyReused => (UNPROCESSABLE_ENTITY, "idempotency_key_reused", "Idempotency-Key reused", "Idempotency-Key 已被使用", "该键已用于另一个不同的请求", false),
    /// A request with this key is still being processed; retry shortly.
    IdempotencyRequestInProgress => (CONFLICT, "idempotency_request_in_progress", "Request in progress", "请求处理中", "使用此键的请求仍在处理中，请稍后重试", true),
    /// The eSIM is bound to another EID than the one given.
    EidMismatch => (CONFLICT, "eid_mismatch", "EID mismatch", "EID 不匹配", "此 eSIM 已绑定到另一个 EID", false),
    /// The payment provider is down or slow; retry with the same Idempotency-Key.
    PaymentProviderUnavailable => (SERVICE_UNAVAILABLE, "payment_provider_unavailable", "Payment provider unavailable", "支付服务暂不可用", "支付服务商不可用或响应过慢，请使用同一 Idempotency-Key 重试", true),
    /// The payment provider refused the payment; retrying will not help.
    PaymentProviderRejected => (BAD_GATEWAY, "payment_provider_rejected", "Payment provider refused", "支付被拒绝", "支付服务商拒绝了此笔支付，重试无效", false),
    /// A webhook's signature is missing, wrong or too old.
    InvalidSignature => (BAD_REQUEST, "invalid_signature", "Invalid signature", "签名无效", "Webhook 签名缺失、错误或已过期", false),
    /// The eSIM's activation code is withheld until the subscriber confirms an SMS code.
    VerificationRequired => (CONFLICT, "verification_required", "Subscriber verification required", "需要用户验证", "用户需先确认短信验证码，激活码才会发放", false),
    /// The SMS code is wrong; `attempts_left` says how many more tries this code takes.
    VerificationCodeInvalid => (UNPROCESSABLE_ENTITY, "verification_code_invalid", "Verification code invalid", "验证码错误", "验证码不正确，attempts_left 为剩余尝试次数", false),
    /// The SMS code expired (10 minutes); send a new one.
    VerificationCodeExpired => (UNPROCESSABLE_ENTITY, "verification_code_expired", "Verification code expired", "验证码已过期", "验证码已过期（10 分钟），请重新发送", false),
    /// Five wrong tries locked this SMS code; send a new one.
    VerificationCodeLocked => (UNPROCESSABLE_ENTITY, "verification_code_locked", "Verification code locked", "验证码已锁定", "错误次数过多，此验证码已锁定，请重新发送", false),
    /// Too many codes sent to this number or for this order; retry after `Retry-After`.
    VerificationRateLimited => (TOO_MANY_REQUESTS, "verification_rate_limited", "Too many verification codes", "验证码发送过于频繁", "此号码或订单发送的验证码过多，请在 Retry-After 所示时间后重试", true),
    /// The SMS provider is down, slow, or not configured for this number; retry later.
    SmsProviderUnavailable => (SERVICE_UNAVAILABLE, "sms_provider_unavailable", "SMS provider unavailable", "短信服务暂不可用", "短信服务商不可用、响应过慢或未配置此号码，请稍后重试", true),
    /// The SMS provider refused the message (e.g. the number cannot receive it).
    SmsProviderRejected => (BAD_GATEWAY, "sms_provider_rejected", "SMS provider refused", "短信被拒绝", "短信服务商拒绝了此消息（例如号码无法接收）", false),
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
    /// `verification_code_invalid`: how many more tries this SMS code takes.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false, minimum = 0, maximum = 5)]
    pub attempts_left: Option<u32>,
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
        /// The problem's `attempts_left` member (a wrong SMS code).
        attempts_left: Option<u32>,
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
            attempts_left: None,
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
            attempts_left: None,
        }
    }

    pub fn internal(cause: impl std::fmt::Display) -> Self {
        Self::Internal(cause.to_string())
    }

    /// Adds the `attempts_left` member (only to client-facing problems).
    pub fn with_attempts_left(mut self, left: u32) -> Self {
        if let Self::Problem { attempts_left, .. } = &mut self {
            *attempts_left = Some(left);
        }
        self
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
            DbError::Connect(cause) => Self::Unavailable(cause.to_string()),
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
        let attempts_left = match self {
            Self::Problem { attempts_left, .. } => *attempts_left,
            _ => None,
        };
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
        // In Chinese the detail leads with what the code means; the specifics (ids,
        // amounts, field names) follow as they were written.
        let lang = crate::request_scope::current_lang();
        let detail = match lang {
            crate::i18n::Lang::En => detail,
            crate::i18n::Lang::ZhCn => format!("{}（{detail}）", code.explained_zh()),
        };
        let problem = Problem {
            type_uri: format!("{PROBLEM_TYPE_BASE}{}", code.as_str()),
            title: code.title_in(lang).to_owned(),
            status: code.status().as_u16(),
            detail,
            code,
            retryable: code.retryable(),
            errors,
            request_id: crate::request_scope::current_request_id(),
            attempts_left,
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
