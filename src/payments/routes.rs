//! `POST /v1/payments/webhooks/{provider}` (signed by the provider) and the sandbox's
//! `POST /v1/sandbox/payments/{order_id}/succeed|fail`.

use actix_web::http::header::HeaderMap;
use actix_web::{post, web};
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_actix_web::service_config::ServiceConfig;

use super::settle::{self, Settled};
use super::{EventKind, PaymentEvent, Provider, WebhookError};
use crate::app::AppState;
use crate::auth::principal::{require, Authorized};
use crate::error::{ApiError, ErrorCode, Problem};
use crate::orders::{self, store as order_store};

pub fn configure(cfg: &mut ServiceConfig) {
    cfg.service(webhook);
}

/// Only mounted when the sandbox provider is enabled.
pub fn configure_sandbox(cfg: &mut ServiceConfig) {
    cfg.service(sandbox_succeed).service(sandbox_fail);
}

/// What became of a delivered event.
#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookReceipt {
    pub received: bool,
    /// `paid`, `failed`, `duplicate`, `no_change`, `refund` or `ignored`.
    #[schema(example = "paid")]
    pub outcome: &'static str,
}

async fn settle_and_refund(
    state: &AppState,
    provider: &'static str,
    event: PaymentEvent,
) -> Result<WebhookReceipt, ApiError> {
    let settled = settle::apply_event(
        &state.db,
        provider,
        event,
        state.settings.smdp_address.clone(),
    )
    .await?;
    let outcome = settled.label();
    if let Settled::NeedsRefund(order) = settled {
        // Recorded as owed in the settlement; if the provider is down the sweep retries.
        let _ = settle::refund_external(&state.db, &state.payments, *order).await;
    }
    Ok(WebhookReceipt {
        received: true,
        outcome,
    })
}

fn signature_error(e: WebhookError) -> ApiError {
    match e {
        WebhookError::BadSignature(why) => ApiError::new(
            ErrorCode::InvalidSignature,
            format!("webhook refused: {why}"),
        ),
        WebhookError::Malformed(why) => {
            ApiError::bad_request(format!("webhook event unreadable: {why}"))
        }
    }
}

/// Receive a payment provider's event.
///
/// The signature is checked first (`Stripe-Signature`: HMAC-SHA256 over `{t}.{body}`,
/// 300 s tolerance): a bad or stale one is `400` and changes nothing. Each event id is
/// applied once; a success settles the order (`paid`, activation created), a failure
/// fails it; a success for an expired or cancelled order is refunded through the
/// provider; a failure after a success changes nothing.
#[utoipa::path(
    operation_id = "receive_payment_webhook",
    tag = "payments",
    params(("provider" = String, Path, description = "`stripe`")),
    request_body(content = String, description = "The provider's event, as sent", content_type = "application/json"),
    responses(
        (status = 200, description = "Received (also for duplicates and ignored events).", body = WebhookReceipt),
        (status = 400, description = "`invalid_signature`, or an unreadable event: nothing changed.", body = Problem,
         content_type = "application/problem+json"),
        (status = 404, description = "No such provider configured.", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The order changed while the event was applied (e.g. it expired that instant): \
nothing was recorded, the provider's retry applies it.", body = Problem, content_type = "application/problem+json"),
    ),
    security(())
)]
#[post("/v1/payments/webhooks/{provider}")]
async fn webhook(
    state: web::Data<AppState>,
    provider: web::Path<String>,
    req: actix_web::HttpRequest,
    payload: web::Payload,
) -> Result<web::Json<WebhookReceipt>, ApiError> {
    let body = crate::http::extractors::read_body(payload, crate::http::extractors::MAX_BODY_BYTES)
        .await?;
    let provider = provider.into_inner();
    let Some(Provider::Stripe(stripe)) = state.payments.by_name(&provider) else {
        return Err(ApiError::not_found(format!(
            "no webhook for provider `{provider}` here"
        )));
    };
    let headers: &HeaderMap = req.headers();
    let signature = headers
        .get("stripe-signature")
        .and_then(|v| v.to_str().ok());
    let event = stripe
        .parse_webhook(signature, &body, chrono::Utc::now().timestamp())
        .map_err(signature_error)?;
    Ok(web::Json(settle_and_refund(&state, "stripe", event).await?))
}

async fn sandbox_event(
    state: &AppState,
    partner_id: String,
    order_id: uuid::Uuid,
    kind: EventKind,
) -> Result<WebhookReceipt, ApiError> {
    if !state.payments.sandbox_enabled() {
        return Err(ApiError::not_found("the sandbox is not enabled"));
    }
    let id = order_id.to_string();
    let order = state
        .db
        .run(move |conn| {
            order_store::find_for_partner(conn, &partner_id, &id)?
                .ok_or_else(|| orders::no_order(&id))
        })
        .await?;
    if order.provider.as_deref() != Some("sandbox") {
        return Err(ApiError::conflict(
            "this order is not paid through the sandbox",
        ));
    }
    let event = PaymentEvent {
        event_id: format!("sbx_evt_{}", uuid::Uuid::now_v7().simple()),
        kind,
        provider_payment_id: order.provider_payment_id.clone().unwrap_or_default(),
        order_id: Some(order.id),
    };
    settle_and_refund(state, "sandbox", event).await
}

/// Sandbox: the payer pays (settles the order as a provider's success event would).
#[utoipa::path(
    operation_id = "sandbox_payment_succeed",
    tag = "sandbox",
    params(("id" = uuid::Uuid, Path, description = "Order id")),
    responses(
        (status = 200, body = WebhookReceipt),
        (status = 404, description = "No such order among yours, or no sandbox.", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Not a sandbox payment.", body = Problem, content_type = "application/problem+json"),
    ),
    security(("oauth2" = ["orders:write"]), ("bearer" = ["orders:write"]))
)]
#[post("/v1/sandbox/payments/{id}/succeed")]
async fn sandbox_succeed(
    auth: Authorized<require::OrdersWrite>,
    state: web::Data<AppState>,
    id: web::Path<uuid::Uuid>,
) -> Result<web::Json<WebhookReceipt>, ApiError> {
    Ok(web::Json(
        sandbox_event(
            &state,
            auth.principal.partner_id,
            id.into_inner(),
            EventKind::Succeeded,
        )
        .await?,
    ))
}

/// Sandbox: the payment fails.
#[utoipa::path(
    operation_id = "sandbox_payment_fail",
    tag = "sandbox",
    params(("id" = uuid::Uuid, Path, description = "Order id")),
    responses(
        (status = 200, body = WebhookReceipt),
        (status = 404, description = "No such order among yours, or no sandbox.", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Not a sandbox payment.", body = Problem, content_type = "application/problem+json"),
    ),
    security(("oauth2" = ["orders:write"]), ("bearer" = ["orders:write"]))
)]
#[post("/v1/sandbox/payments/{id}/fail")]
async fn sandbox_fail(
    auth: Authorized<require::OrdersWrite>,
    state: web::Data<AppState>,
    id: web::Path<uuid::Uuid>,
) -> Result<web::Json<WebhookReceipt>, ApiError> {
    Ok(web::Json(
        sandbox_event(
            &state,
            auth.principal.partner_id,
            id.into_inner(),
            EventKind::Failed,
        )
        .await?,
    ))
}
