//! Subscriber verification (the order's owner, `orders:write`), the partner's and the
//! operators' switch for it, and the sandbox's SMS outbox.

use actix_web::{get, post, put, web, HttpResponse};
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa_actix_web::service_config::ServiceConfig;

use super::sms::SandboxMessage;
use super::{CodeCheck, CodeRequest, CodeSent, Verification, VerificationSettings};
use crate::activation::Activation;
use crate::auth::principal::{require, Authorized};
use crate::clock::Clock;
use crate::db::Db;
use crate::error::{ApiError, FieldError, Problem};

pub fn configure(cfg: &mut ServiceConfig) {
    cfg.service(send_verification_code)
        .service(check_verification_code)
        .service(get_verification_settings)
        .service(put_verification_settings)
        .service(put_partner_verification_settings);
}

/// Only mounted when the sandbox is on.
pub fn configure_sandbox(cfg: &mut ServiceConfig) {
    cfg.service(sandbox_sms);
}

/// Send the subscriber a verification code by SMS.
///
/// While the activation answers `status: verification_required`, its code, QR and
/// install link are withheld. This sends a 6-digit code to the subscriber's number (the
/// provider is chosen by the number's prefix); the code works for 10 minutes and takes
/// 5 tries. One code a minute per order, and at most 5 an hour per order and per
/// number (`429 verification_rate_limited` with `Retry-After`). A new code replaces the
/// previous one.
#[utoipa::path(
    operation_id = "send_verification_code",
    tag = "activation",
    params(("id" = uuid::Uuid, Path, description = "Order id")),
    request_body = CodeRequest,
    responses(
        (status = 202, description = "Sent.", body = CodeSent),
        (status = 404, description = "No such order among yours.", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`invalid_state_transition`: no verification is due (not required, done, not paid).", body = Problem,
         content_type = "application/problem+json"),
        (status = 422, description = "Not an E.164 number.", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "`verification_rate_limited`.", body = Problem, content_type = "application/problem+json"),
        (status = 502, description = "`sms_provider_rejected`: the provider refused the message.", body = Problem,
         content_type = "application/problem+json"),
        (status = 503, description = "`sms_provider_unavailable`: not sent; ask again later.", body = Problem,
         content_type = "application/problem+json"),
    ),
    security(("oauth2" = ["orders:write"]), ("bearer" = ["orders:write"]))
)]
#[post("/v1/orders/{id}/activation/verification")]
async fn send_verification_code(
    auth: Authorized<require::OrdersWrite>,
    db: web::Data<Db>,
    clock: web::Data<Clock>,
    verification: web::Data<Verification>,
    id: web::Path<uuid::Uuid>,
    body: web::Json<CodeRequest>,
) -> Result<HttpResponse, ApiError> {
    let sent = super::send_code(
        &db,
        &verification,
        clock.now_db(),
        auth.principal.partner_id,
        id.into_inner().to_string(),
        body.into_inner(),
    )
    .await?;
    Ok(HttpResponse::Accepted().json(sent))
}

/// Check the code the subscriber received; right, the activation code is released.
///
/// Answers the activation with its code, QR and install link. A wrong code is
/// `422 verification_code_invalid` with `attempts_left`; after 5 wrong tries the code is
/// locked (`verification_code_locked`), after 10 minutes expired
/// (`verification_code_expired`): send a new one.
#[utoipa::path(
    operation_id = "check_verification_code",
    tag = "activation",
    params(("id" = uuid::Uuid, Path, description = "Order id")),
    request_body = CodeCheck,
    responses(
        (status = 200, description = "Verified: the code is released.", body = Activation),
        (status = 404, description = "No such order among yours.", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`invalid_state_transition`: no verification is due, or no code was sent.", body = Problem,
         content_type = "application/problem+json"),
        (status = 422, description = "`verification_code_invalid` (with `attempts_left`), `verification_code_expired`, `verification_code_locked`, or not 6 digits.",
         body = Problem, content_type = "application/problem+json"),
    ),
    security(("oauth2" = ["orders:write"]), ("bearer" = ["orders:write"]))
)]
#[post("/v1/orders/{id}/activation/verification/check")]
async fn check_verification_code(
    auth: Authorized<require::OrdersWrite>,
    db: web::Data<Db>,
    clock: web::Data<Clock>,
    verification: web::Data<Verification>,
    id: web::Path<uuid::Uuid>,
    body: web::Json<CodeCheck>,
) -> Result<web::Json<Activation>, ApiError> {
    Ok(web::Json(
        super::check_code(
            &db,
            &verification,
            clock.now_db(),
            auth.principal.partner_id,
            id.into_inner().to_string(),
            body.into_inner(),
        )
        .await?,
    ))
}

/// Whether your new eSIM activation codes wait for the subscriber's SMS verification.
#[utoipa::path(
    operation_id = "get_verification_settings",
    tag = "activation",
    responses((status = 200, body = VerificationSettings)),
    security(("oauth2" = ["orders:read"]), ("bearer" = ["orders:read"]))
)]
#[get("/v1/verification-settings")]
async fn get_verification_settings(
    auth: Authorized<require::OrdersRead>,
    db: web::Data<Db>,
) -> Result<web::Json<VerificationSettings>, ApiError> {
    Ok(web::Json(
        super::settings_of(&db, auth.principal.partner_id).await?,
    ))
}

/// Turn subscriber verification on (the default) or off for new eSIM activation codes.
#[utoipa::path(
    operation_id = "put_verification_settings",
    tag = "activation",
    request_body = VerificationSettings,
    responses((status = 200, body = VerificationSettings)),
    security(("oauth2" = ["orders:write"]), ("bearer" = ["orders:write"]))
)]
#[put("/v1/verification-settings")]
async fn put_verification_settings(
    auth: Authorized<require::OrdersWrite>,
    db: web::Data<Db>,
    clock: web::Data<Clock>,
    body: web::Json<VerificationSettings>,
) -> Result<web::Json<VerificationSettings>, ApiError> {
    Ok(web::Json(
        super::set_settings(
            &db,
            auth.principal.partner_id,
            body.into_inner(),
            clock.now_db(),
        )
        .await?,
    ))
}

/// Turn a partner's subscriber verification on or off (operators).
#[utoipa::path(
    operation_id = "put_partner_verification_settings",
    tag = "admin",
    params(("id" = uuid::Uuid, Path, description = "Partner id")),
    request_body = VerificationSettings,
    responses(
        (status = 200, body = VerificationSettings),
        (status = 404, description = "No such partner.", body = Problem, content_type = "application/problem+json"),
    ),
    security(("oauth2" = ["admin"]), ("bearer" = ["admin"]))
)]
#[put("/v1/admin/partners/{id}/verification-settings")]
async fn put_partner_verification_settings(
    _auth: Authorized<require::Admin>,
    db: web::Data<Db>,
    clock: web::Data<Clock>,
    id: web::Path<uuid::Uuid>,
    body: web::Json<VerificationSettings>,
) -> Result<web::Json<VerificationSettings>, ApiError> {
    Ok(web::Json(
        super::set_settings(
            &db,
            id.into_inner().to_string(),
            body.into_inner(),
            clock.now_db(),
        )
        .await?,
    ))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct SandboxSmsQuery {
    /// The number the sandbox "sent" to, E.164.
    #[param(value_type = crate::domain::Msisdn)]
    msisdn: String,
}

/// The sandbox's last SMS to a number, with its code (development only).
#[utoipa::path(
    operation_id = "get_sandbox_sms",
    tag = "sandbox",
    params(SandboxSmsQuery),
    responses(
        (status = 200, body = SandboxMessage),
        (status = 404, description = "Nothing was sent to this number.", body = Problem, content_type = "application/problem+json"),
    ),
    security(("oauth2" = ["orders:write"]), ("bearer" = ["orders:write"]))
)]
#[get("/v1/sandbox/sms")]
async fn sandbox_sms(
    _auth: Authorized<require::OrdersWrite>,
    verification: web::Data<Verification>,
    query: web::Query<SandboxSmsQuery>,
) -> Result<web::Json<SandboxMessage>, ApiError> {
    let msisdn = query
        .msisdn
        .parse::<crate::domain::Msisdn>()
        .map_err(|e| ApiError::validation(vec![FieldError::new("msisdn", e)]))?
        .to_string();
    verification
        .sms
        .sandbox_message(&msisdn)
        .map(web::Json)
        .ok_or_else(|| ApiError::not_found("the sandbox sent nothing to this number"))
}
