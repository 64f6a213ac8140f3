//! The routes whose work crosses capabilities: placing and cancelling orders,
//! confirming or failing activations, and the payment webhooks (with the sandbox's
//! stand-in for a payer).

use actix_web::http::header::HeaderMap;
use actix_web::{get, post, web, HttpRequest, HttpResponse};
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_actix_web::service_config::ServiceConfig;

use super::profile_events::{self, ProfileEventOutcome};
use super::receipts::{self, Receipt};
use super::settlement;
use super::{cancellation, checkout, confirmation, refunds};
use crate::activation::profile::ProfileEventBatch;
use crate::activation::{Activation, Caller, Confirmation, Failure};
use crate::auth::principal::{require, Authorized};
use crate::auth::scopes::Scope;
use crate::business_metrics::Fact;
use crate::clock::Clock;
use crate::config::Settings;
use crate::db::Db;
use crate::domain::PaymentMethod;
use crate::error::{ApiError, ErrorCode, Problem};
use crate::http::extractors::{optional_json, read_body, MAX_BODY_BYTES};
use crate::idempotency;
use crate::orders::model::{NewOrder, Order};
use crate::orders::{self, store as order_store};
use crate::payments::refunds::{Refund, RefundList};
use crate::payments::{EventKind, PaymentEvent, Payments, Provider, WebhookError};

pub fn configure(cfg: &mut ServiceConfig) {
    cfg.service(create_order)
        .service(cancel_order)
        .service(list_order_refunds)
        .service(confirm_activation)
        .service(fail_activation)
        .service(report_profile_events)
        .service(get_receipt)
        .service(get_receipt_html)
        .service(webhook);
}

/// A paid order's receipt (交易凭证): seller, buyer, card, plan, period, amount,
/// payment and refund.
#[utoipa::path(
    operation_id = "get_receipt",
    tag = "orders",
    params(("id" = uuid::Uuid, Path, description = "Order id")),
    responses(
        (status = 200, body = Receipt),
        (status = 404, description = "No such order among yours.", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`invalid_state_transition`: not paid (no receipt yet).", body = Problem,
         content_type = "application/problem+json"),
    ),
    security(("oauth2" = ["orders:read"]), ("bearer" = ["orders:read"]))
)]
#[get("/v1/orders/{id}/receipt")]
async fn get_receipt(
    auth: Authorized<require::OrdersRead>,
    db: web::Data<Db>,
    settings: web::Data<Settings>,
    id: web::Path<uuid::Uuid>,
) -> Result<web::Json<Receipt>, ApiError> {
    Ok(web::Json(
        receipts::receipt(
            &db,
            settings.seller_name.clone(),
            auth.principal.partner_id,
            id.into_inner().to_string(),
            crate::request_scope::current_lang(),
        )
        .await?,
    ))
}

/// The receipt as a printable page, in the language of `Accept-Language` (`zh-CN` or
/// `en`): UTF-8, inline styles, no external assets.
#[utoipa::path(
    operation_id = "get_receipt_html",
    tag = "orders",
    params(("id" = uuid::Uuid, Path, description = "Order id")),
    responses(
        (status = 200, description = "The page.", body = String, content_type = "text/html"),
        (status = 404, description = "No such order among yours.", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`invalid_state_transition`: not paid (no receipt yet).", body = Problem,
         content_type = "application/problem+json"),
    ),
    security(("oauth2" = ["orders:read"]), ("bearer" = ["orders:read"]))
)]
#[get("/v1/orders/{id}/receipt.html")]
async fn get_receipt_html(
    auth: Authorized<require::OrdersRead>,
    db: web::Data<Db>,
    settings: web::Data<Settings>,
    id: web::Path<uuid::Uuid>,
) -> Result<HttpResponse, ApiError> {
    let lang = crate::request_scope::current_lang();
    let receipt = receipts::receipt(
        &db,
        settings.seller_name.clone(),
        auth.principal.partner_id,
        id.into_inner().to_string(),
        lang,
    )
    .await?;
    let page = receipts::html(&receipt, lang);
    Ok(HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .insert_header((
            actix_web::http::header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; style-src 'unsafe-inline'",
        ))
        .body(page))
}

/// Largest profile event report: 500 events whose every text field is at its longest,
/// escaped as `\uXXXX` at worst, fit in it.
pub const MAX_PROFILE_EVENTS_BODY_BYTES: usize = 4 * 1024 * 1024;

/// Report eSIM profile events from the SM-DP+.
///
/// The normalised form of SGP.22 ES2+ `HandleDownloadProgressInfo`. Each event is applied
/// once per `id` (a repeated id counts as a duplicate), in its own transaction: it joins
/// the history of the activation whose `matching_id` it names, and the latest event by
/// `occurred_at` sets the card's `profile_state` (the partner is told
/// `profile.state_changed`). An `installed` or `enabled` event naming a pending
/// activation confirms it, as `POST /v1/orders/{id}/activation/confirm` would (with the
/// event's EID). Unknown cards, FM cards, another EID or a matching id of no activation
/// of the card are rejected, event by event.
#[utoipa::path(
    operation_id = "report_profile_events",
    tag = "network",
    request_body = ProfileEventBatch,
    responses(
        (status = 200, description = "What was applied, what was a duplicate, what was rejected and why.", body = ProfileEventOutcome),
        (status = 422, description = "An empty or oversized report, or a malformed field (`events[i].<field>`): nothing applied.",
         body = Problem, content_type = "application/problem+json"),
    ),
    security(("oauth2" = ["network"]), ("bearer" = ["network"]))
)]
#[post("/v1/network/profile-events")]
async fn report_profile_events(
    _auth: Authorized<require::Network>,
    db: web::Data<Db>,
    clock: web::Data<Clock>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<web::Json<ProfileEventOutcome>, ApiError> {
    // Read here rather than by `web::Json`: a full report is larger than the 64 KiB
    // every other body is held to.
    let body = read_body(payload, MAX_PROFILE_EVENTS_BODY_BYTES).await?;
    let batch: ProfileEventBatch = optional_json(&req, &body)?
        .ok_or_else(|| ApiError::bad_request("send the events as a JSON body"))?;
    Ok(web::Json(
        profile_events::apply_batch(&db, batch, clock.now_db()).await?,
    ))
}

/// Only mounted when the sandbox provider is enabled.
pub fn configure_sandbox(cfg: &mut ServiceConfig) {
    cfg.service(sandbox_succeed).service(sandbox_fail);
}

/// Buy a plan for a card.
///
/// Requires an `Idempotency-Key`: a retry with the same key and body replays the first
/// answer (status, body and `Location`, errors included) and never charges twice; the
/// same key with another body is `422 idempotency_key_reused`; while the first request
/// runs, `409 idempotency_request_in_progress`. Keys live 24 hours, per partner.
/// Paid from the wallet, the order is `paid` at once with a receipt number.
#[utoipa::path(
    operation_id = "create_order",
    tag = "orders",
    params(("Idempotency-Key" = String, Header, description = "Unique per purchase, e.g. a UUID; reuse it only to retry. 1–255 visible ASCII characters", min_length = 1, max_length = 255, pattern = r"^[!-~]{1,255}$")),
    request_body = NewOrder,
    responses(
        (status = 201, description = "Placed; `Location` names the order.", body = Order,
         headers(("Location" = String))),
        (status = 400, description = "Malformed body, unknown field, or no `Idempotency-Key`.", body = Problem,
         content_type = "application/problem+json"),
        (status = 402, description = "`insufficient_funds`: nothing was charged or written.", body = Problem,
         content_type = "application/problem+json"),
        (status = 404, description = "No such card among yours.", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`card_suspended`, or `idempotency_request_in_progress`.", body = Problem,
         content_type = "application/problem+json"),
        (status = 422, description = "`plan_not_available_for_card`, `currency_not_offered`, `payment_method_unavailable`, \
`idempotency_key_reused` or invalid fields.", body = Problem, content_type = "application/problem+json"),
        (status = 502, description = "`payment_provider_rejected`: the provider refused the payment; retrying will not help.",
         body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "`payment_provider_unavailable`: nothing was charged; retry with the same Idempotency-Key.",
         body = Problem, content_type = "application/problem+json"),
    ),
    security(("oauth2" = ["orders:write"]), ("bearer" = ["orders:write"]))
)]
#[post("/v1/orders")]
async fn create_order(
    auth: Authorized<require::OrdersWrite>,
    req: HttpRequest,
    db: web::Data<Db>,
    clock: web::Data<Clock>,
    settings: web::Data<Settings>,
    payments: web::Data<Payments>,
    body: web::Json<NewOrder>,
) -> Result<HttpResponse, ApiError> {
    let input = body.into_inner();
    let partner_id = auth.principal.partner_id;
    let scope = idempotency::Scope::from_request(&req, &partner_id, &input, true)?;
    let request = input.parse(clock.now_db())?;
    if request.payment_method == PaymentMethod::Wallet {
        let smdp_address = settings.smdp_address.clone();
        return checkout::place_wallet_order(&db, &clock, partner_id, request, smdp_address, scope)
            .await;
    }
    let scope =
        scope.ok_or_else(|| ApiError::internal("an order always has an idempotency scope"))?;
    checkout::place_external_order(&db, &payments, &clock, partner_id, request, scope).await
}

/// Cancel an order that is `pending_payment` or `paid` and not yet activated.
///
/// A wallet payment is refunded by a ledger entry in the same transaction; the order
/// shows `cancelled` and its refund. An external payment is refunded through its
/// provider (`GET /v1/orders/{id}/refunds` follows it: Alipay and WeChat Pay refunds
/// are asynchronous); an unpaid one is closed at the provider so nobody pays it late.
#[utoipa::path(
    operation_id = "cancel_order",
    tag = "orders",
    params(("id" = uuid::Uuid, Path, description = "Order id")),
    responses(
        (status = 200, body = Order),
        (status = 404, description = "No such order among yours.", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`invalid_state_transition`: it can no longer be cancelled.", body = Problem,
         content_type = "application/problem+json"),
    ),
    security(("oauth2" = ["orders:write"]), ("bearer" = ["orders:write"]))
)]
#[post("/v1/orders/{id}/cancel")]
async fn cancel_order(
    auth: Authorized<require::OrdersWrite>,
    db: web::Data<Db>,
    clock: web::Data<Clock>,
    payments: web::Data<Payments>,
    id: web::Path<uuid::Uuid>,
) -> Result<web::Json<Order>, ApiError> {
    let order_id = id.into_inner().to_string();
    let partner_id = auth.principal.partner_id;
    let order = cancellation::cancel(&db, &payments, &clock, partner_id, order_id).await?;
    Ok(web::Json(Order::try_from(&order)?))
}

/// The refunds of an order's external payment, oldest first: each `requested` (decided,
/// not yet accepted by the provider; retried while it is down, at most 6 times),
/// `pending` (accepted; the provider tells the outcome later), `succeeded` or `failed`
/// (final, with `failure_reason`). Refunds made at the provider are listed too
/// (`origin: provider`). Wallet refunds are ledger entries, not listed here.
#[utoipa::path(
    operation_id = "list_order_refunds",
    tag = "orders",
    params(("id" = uuid::Uuid, Path, description = "Order id")),
    responses(
        (status = 200, body = RefundList),
        (status = 404, description = "No such order among yours.", body = Problem, content_type = "application/problem+json"),
    ),
    security(("oauth2" = ["orders:read"]), ("bearer" = ["orders:read"]))
)]
#[get("/v1/orders/{id}/refunds")]
async fn list_order_refunds(
    auth: Authorized<require::OrdersRead>,
    db: web::Data<Db>,
    id: web::Path<uuid::Uuid>,
) -> Result<web::Json<RefundList>, ApiError> {
    let order_id = id.into_inner().to_string();
    let partner_id = auth.principal.partner_id;
    let rows = refunds::refunds_of(&db, partner_id, order_id).await?;
    Ok(web::Json(RefundList {
        data: rows
            .iter()
            .map(Refund::try_from)
            .collect::<Result<_, _>>()?,
    }))
}

/// Confirm the renewal took effect, and learn the new validity.
///
/// Creates the term: an FM card's starts where its service ends (or now), an eSIM's starts
/// now and replaces the current one. Days are `validity_days × 24 h` in UTC. The answer
/// carries `effective_from`, `valid_until` and `previous_valid_until`; the order becomes
/// `completed`. Confirming again answers `200` with the same body and changes nothing.
#[utoipa::path(
    operation_id = "confirm_activation",
    tag = "activation",
    params(("id" = uuid::Uuid, Path, description = "Order id")),
    request_body(content = Option<Confirmation>, description = "Optional: the EID of the device (eSIM)"),
    responses(
        (status = 200, description = "Confirmed (now or before).", body = Activation),
        (status = 404, description = "No such order among yours.", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`eid_mismatch`, or `invalid_state_transition` (not paid, or failed).", body = Problem,
         content_type = "application/problem+json"),
        (status = 422, description = "Invalid EID.", body = Problem, content_type = "application/problem+json"),
    ),
    security(("oauth2" = ["orders:write", "network"]), ("bearer" = ["orders:write", "network"]))
)]
#[post("/v1/orders/{id}/activation/confirm")]
async fn confirm_activation(
    auth: Authorized<require::OrdersWriteOrNetwork>,
    db: web::Data<Db>,
    clock: web::Data<Clock>,
    id: web::Path<uuid::Uuid>,
    req: actix_web::HttpRequest,
    payload: web::Payload,
) -> Result<web::Json<Activation>, ApiError> {
    let body = read_body(payload, MAX_BODY_BYTES).await?;
    let confirmation: Confirmation = optional_json(&req, &body)?.unwrap_or_default();
    let caller = if auth.principal.scopes.contains(Scope::Network) {
        Caller::Network
    } else {
        Caller::Partner(auth.principal.partner_id)
    };
    let order_id = id.into_inner().to_string();
    let shown = confirmation::confirm(&db, caller, order_id, confirmation, clock.now_db()).await?;
    Ok(web::Json(shown))
}

/// Report that the renewal could not be applied: the order fails and a wallet payment
/// is refunded, once.
#[utoipa::path(
    operation_id = "fail_activation",
    tag = "network",
    params(("id" = uuid::Uuid, Path, description = "Order id")),
    request_body = Failure,
    responses(
        (status = 200, body = Activation),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The activation is no longer pending.", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Missing or overlong reason.", body = Problem, content_type = "application/problem+json"),
    ),
    security(("oauth2" = ["network"]), ("bearer" = ["network"]))
)]
#[post("/v1/orders/{id}/activation/fail")]
async fn fail_activation(
    _auth: Authorized<require::Network>,
    settling: Settling,
    id: web::Path<uuid::Uuid>,
    body: web::Json<Failure>,
) -> Result<web::Json<Activation>, ApiError> {
    let failure = body.into_inner();
    let reason = failure.reason()?.to_owned();
    let order_id = id.into_inner().to_string();
    let shown = confirmation::fail(
        &settling.db,
        &settling.payments,
        &settling.clock,
        order_id,
        reason,
    )
    .await?;
    Ok(web::Json(shown))
}

/// What became of a delivered event.
#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookReceipt {
    pub received: bool,
    /// `paid`, `failed`, `duplicate`, `no_change`, `refund` or `ignored`.
    #[schema(example = "paid")]
    pub outcome: &'static str,
}

/// What a settlement needs from the application, taken from it as one extractor.
struct Settling {
    db: web::Data<Db>,
    payments: web::Data<Payments>,
    clock: web::Data<Clock>,
    settings: web::Data<Settings>,
}

impl actix_web::FromRequest for Settling {
    type Error = ApiError;
    type Future = std::future::Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut actix_web::dev::Payload) -> Self::Future {
        let part = |missing: &str| ApiError::internal(format!("{missing} is not registered"));
        std::future::ready((|| {
            Ok(Self {
                db: req
                    .app_data::<web::Data<Db>>()
                    .cloned()
                    .ok_or_else(|| part("Db"))?,
                payments: req
                    .app_data::<web::Data<Payments>>()
                    .cloned()
                    .ok_or_else(|| part("Payments"))?,
                clock: req
                    .app_data::<web::Data<Clock>>()
                    .cloned()
                    .ok_or_else(|| part("Clock"))?,
                settings: req
                    .app_data::<web::Data<Settings>>()
                    .cloned()
                    .ok_or_else(|| part("Settings"))?,
            })
        })())
    }
}

impl Settling {
    async fn settle(
        &self,
        provider: &'static str,
        event: PaymentEvent,
    ) -> Result<WebhookReceipt, ApiError> {
        let settled = settlement::settle(
            &self.db,
            &self.payments,
            &self.clock,
            provider,
            event,
            self.settings.smdp_address.clone(),
        )
        .await;
        let outcome = match &settled {
            Ok(settled) => settled.label(),
            Err(_) => "error",
        };
        self.db.metrics().count(Fact::PaymentWebhook { outcome });
        let settled = settled?;
        Ok(WebhookReceipt {
            received: true,
            outcome: settled.label(),
        })
    }

    /// A webhook refused before it was applied, counted by why.
    fn refuse(&self, e: WebhookError) -> ApiError {
        let (outcome, error) = match e {
            WebhookError::BadSignature(why) => (
                "invalid_signature",
                ApiError::new(
                    ErrorCode::InvalidSignature,
                    format!("webhook refused: {why}"),
                ),
            ),
            WebhookError::Malformed(why) => (
                "unreadable",
                ApiError::bad_request(format!("webhook event unreadable: {why}")),
            ),
        };
        self.db.metrics().count(Fact::PaymentWebhook { outcome });
        error
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
    params(("provider" = String, Path, description = "The provider that signed the event: `stripe` (configured providers only; others are `404`)", pattern = "^stripe$")),
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
    settling: Settling,
    provider: web::Path<String>,
    req: actix_web::HttpRequest,
    payload: web::Payload,
) -> Result<web::Json<WebhookReceipt>, ApiError> {
    // Refused before the body is read: an unconfigured provider holds no connection open.
    let provider = provider.into_inner();
    let Some(Provider::Stripe(stripe)) = settling.payments.by_name(&provider) else {
        return Err(ApiError::not_found(format!(
            "no webhook for provider `{provider}` here"
        )));
    };
    let body = read_body(payload, MAX_BODY_BYTES).await?;
    let headers: &HeaderMap = req.headers();
    let signature = headers
        .get("stripe-signature")
        .and_then(|v| v.to_str().ok());
    let event = stripe
        .parse_webhook(signature, &body, settling.clock.now().timestamp())
        .map_err(|e| settling.refuse(e))?;
    Ok(web::Json(settling.settle("stripe", event).await?))
}

/// What the sandbox's payer does.
enum Outcome {
    Succeeded,
    Failed,
}

async fn sandbox_event(
    settling: Settling,
    partner_id: String,
    order_id: uuid::Uuid,
    outcome: Outcome,
) -> Result<WebhookReceipt, ApiError> {
    if !settling.payments.sandbox_enabled() {
        return Err(ApiError::not_found("the sandbox is not enabled"));
    }
    let id = order_id.to_string();
    let order = settling
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
    // The sandbox pays exactly what the order asks, as a well-behaved provider would.
    let kind = match outcome {
        Outcome::Succeeded => EventKind::Succeeded {
            amount: order.amount,
            currency: Some(order.currency),
        },
        Outcome::Failed => EventKind::Failed,
    };
    let event = PaymentEvent {
        event_id: format!("sbx_evt_{}", uuid::Uuid::now_v7().simple()),
        kind,
        payment_id: Some(order.provider_payment_id.clone().ok_or_else(|| {
            ApiError::conflict("this order has no sandbox payment yet; retry the order first")
        })?),
        session_id: None,
        order_id: Some(order.id),
    };
    settling.settle("sandbox", event).await
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
    settling: Settling,
    id: web::Path<uuid::Uuid>,
) -> Result<web::Json<WebhookReceipt>, ApiError> {
    Ok(web::Json(
        sandbox_event(
            settling,
            auth.principal.partner_id,
            id.into_inner(),
            Outcome::Succeeded,
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
    settling: Settling,
    id: web::Path<uuid::Uuid>,
) -> Result<web::Json<WebhookReceipt>, ApiError> {
    Ok(web::Json(
        sandbox_event(
            settling,
            auth.principal.partner_id,
            id.into_inner(),
            Outcome::Failed,
        )
        .await?,
    ))
}
