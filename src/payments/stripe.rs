//! Stripe, as its API reference documents it: Checkout Sessions for bank cards, settled
//! by `checkout.session.completed` with `payment_status = paid`; PaymentIntents for
//! Alipay (a redirect) and WeChat Pay (a QR code), settled by `payment_intent.succeeded`;
//! refunds as objects with a status that events move on; Stripe's webhook signatures.
//!
//! Every call names the API version it was written against (`STRIPE_API_VERSION`) and
//! carries an idempotency key derived from the order (or refund) and the attempt: Stripe
//! replays the saved answer of a key for 24 h, failures included
//! (https://docs.stripe.com/idempotency), so a retry after a Stripe 5xx needs a new key,
//! while a 409 (the same key in use by a concurrent request) is retried as is, as
//! Stripe's own libraries do (stripe-python `_http_client.py`, `_should_retry`).

use std::time::Duration;

use hmac::{Hmac, Mac};
use serde::Deserialize;
use sha2::Sha256;
use subtle::ConstantTimeEq;

use super::{
    CloseRequest, CreatedPayment, EventKind, PaymentEvent, PaymentRequest, ProviderError,
    ProviderRefund, ProviderRefundStatus, RefundRequest, WebhookError,
};
pub use crate::config::StripeConfig;
use crate::domain::{Currency, MinorUnits, NextAction, PaymentMethod};

/// The Stripe API version every request is made with (the `Stripe-Version` header). The
/// webhook endpoint must be created with the same `api_version`, since event payloads
/// follow the endpoint's version, not the request's (https://docs.stripe.com/api/versioning).
pub const STRIPE_API_VERSION: &str = "2026-06-24.dahlia";

/// The events an operator must enable on the webhook endpoint.
pub const WEBHOOK_EVENTS: &[&str] = &[
    "checkout.session.completed",
    "checkout.session.async_payment_succeeded",
    "checkout.session.async_payment_failed",
    "checkout.session.expired",
    "payment_intent.succeeded",
    "payment_intent.payment_failed",
    "payment_intent.canceled",
    "refund.created",
    "refund.updated",
    "refund.failed",
    "charge.refund.updated",
];

/// Signatures older (or newer) than this are refused: a replayed delivery fails.
pub const SIGNATURE_TOLERANCE_S: i64 = 300;

/// How often a request is retried when Stripe says the key is in use (409) or that it
/// should be retried (`Stripe-Should-Retry: true`), as stripe-python does by default.
const MAX_IN_PLACE_RETRIES: u32 = 2;

pub struct Stripe {
    config: StripeConfig,
    http: reqwest::Client,
}

#[derive(Debug, Deserialize)]
struct StripeObject {
    id: String,
    url: Option<String>,
    next_action: Option<serde_json::Value>,
    status: Option<String>,
    failure_reason: Option<String>,
}

#[derive(Debug, Deserialize)]
struct StripeErrorBody {
    error: Option<StripeErrorDetail>,
}

#[derive(Debug, Deserialize)]
struct StripeErrorDetail {
    message: Option<String>,
}

impl Stripe {
    pub fn new(config: StripeConfig) -> Result<Self, String> {
        let http = crate::http::outbound::client_builder()
            .timeout(config.timeout)
            .connect_timeout(config.timeout)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| format!("cannot build the Stripe client: {e}"))?;
        Ok(Self { config, http })
    }

    async fn post(
        &self,
        path: &str,
        idempotency_key: &str,
        form: &[(String, String)],
    ) -> Result<StripeObject, ProviderError> {
        let mut retries = 0;
        loop {
            let response = self
                .http
                .post(format!(
                    "{}{path}",
                    self.config.api_base.trim_end_matches('/')
                ))
                .basic_auth(&self.config.secret_key, None::<&str>)
                .header("Stripe-Version", STRIPE_API_VERSION)
                .header("Idempotency-Key", idempotency_key)
                .form(form)
                .send()
                .await
                .map_err(|e| {
                    // The cause names our configuration (the URL): logged, not answered.
                    tracing::warn!(error = %e, "Stripe request failed");
                    if e.is_timeout() {
                        ProviderError::Unanswered("Stripe did not answer in time".into())
                    } else {
                        ProviderError::Unanswered("Stripe could not be reached".into())
                    }
                })?;
            let status = response.status();
            let should_retry = response
                .headers()
                .get("stripe-should-retry")
                .and_then(|v| v.to_str().ok())
                .map(|v| v == "true");
            let retry_here = should_retry.unwrap_or(status.as_u16() == 409);
            if retry_here && retries < MAX_IN_PLACE_RETRIES {
                retries += 1;
                tokio::time::sleep(Duration::from_millis(250 << retries)).await;
                continue;
            }
            if status.as_u16() == 409 {
                // The key is still in use by a request Stripe may yet apply.
                return Err(ProviderError::Unanswered(format!(
                    "Stripe answered {status}"
                )));
            }
            if status.is_server_error() || status.as_u16() == 429 {
                return Err(ProviderError::Unavailable(format!(
                    "Stripe answered {status}"
                )));
            }
            if status.as_u16() == 401 || status.as_u16() == 403 {
                // Our key is wrong or lacks a permission: an operator's problem, and
                // Stripe's message quotes part of the key, so it goes to the log only.
                let body = response.text().await.unwrap_or_default();
                tracing::error!(%status, stripe_message = %body.chars().take(300).collect::<String>(), "Stripe refused our credentials");
                return Err(ProviderError::Unavailable(
                    "the payment provider is misconfigured".into(),
                ));
            }
            if !status.is_success() {
                let message = response
                    .json::<StripeErrorBody>()
                    .await
                    .ok()
                    .and_then(|b| b.error)
                    .and_then(|e| e.message)
                    .unwrap_or_else(|| status.to_string());
                return Err(ProviderError::Rejected(message));
            }
            return response
                .json::<StripeObject>()
                .await
                .map_err(|e| ProviderError::Unanswered(format!("unreadable Stripe answer: {e}")));
        }
    }

    pub async fn create_payment(
        &self,
        order: &PaymentRequest<'_>,
    ) -> Result<CreatedPayment, ProviderError> {
        let currency = order.currency.code().to_ascii_lowercase();
        let key = format!("simrenew-order-{}-create-{}", order.order_id, order.attempt);
        let pair = |k: &str, v: &str| (k.to_owned(), v.to_owned());
        match order.method {
            PaymentMethod::Card => {
                let form = vec![
                    pair("mode", "payment"),
                    pair("payment_method_types[0]", "card"),
                    pair("line_items[0][quantity]", "1"),
                    pair("line_items[0][price_data][currency]", &currency),
                    pair(
                        "line_items[0][price_data][unit_amount]",
                        &order.amount.to_string(),
                    ),
                    pair(
                        "line_items[0][price_data][product_data][name]",
                        &format!("SIM renewal {}", order.iccid),
                    ),
                    pair("client_reference_id", order.order_id),
                    pair("metadata[order_id]", order.order_id),
                    pair("payment_intent_data[metadata][order_id]", order.order_id),
                    // Stripe's default is 24 h; the page must close with the order.
                    pair("expires_at", &order.expires_at.timestamp().to_string()),
                    pair("success_url", &self.config.return_url),
                    pair("cancel_url", &self.config.return_url),
                ];
                let session = self.post("/v1/checkout/sessions", &key, &form).await?;
                let url = session.url.ok_or_else(|| {
                    ProviderError::Rejected("Stripe returned no checkout URL".into())
                })?;
                Ok(CreatedPayment {
                    payment_id: None,
                    session_id: Some(session.id),
                    next_action: NextAction::RedirectToUrl { url },
                })
            }
            method => {
                let kind = method.as_str();
                let mut form = vec![
                    pair("amount", &order.amount.to_string()),
                    pair("currency", &currency),
                    pair("payment_method_types[0]", kind),
                    pair("payment_method_data[type]", kind),
                    pair("confirm", "true"),
                    pair("return_url", &self.config.return_url),
                    pair("metadata[order_id]", order.order_id),
                ];
                if method == PaymentMethod::WechatPay {
                    form.push(pair("payment_method_options[wechat_pay][client]", "web"));
                }
                let intent = self.post("/v1/payment_intents", &key, &form).await?;
                let action = intent.next_action.unwrap_or_default();
                let next_action = if let Some(qr) = action.get("wechat_pay_display_qr_code") {
                    let data = qr["data"].as_str().ok_or_else(|| {
                        ProviderError::Rejected("Stripe returned a QR code without data".into())
                    })?;
                    NextAction::DisplayQrCode {
                        data: data.to_owned(),
                        image_url: qr["image_url_png"].as_str().map(str::to_owned),
                    }
                } else if let Some(url) = action["alipay_handle_redirect"]["url"].as_str() {
                    // "a URL to redirect the customer to" (PaymentIntent.next_action
                    // .alipay_handle_redirect.url): Alipay's page, not a code to show.
                    NextAction::RedirectToUrl {
                        url: url.to_owned(),
                    }
                } else if let Some(url) = action["redirect_to_url"]["url"].as_str() {
                    NextAction::RedirectToUrl {
                        url: url.to_owned(),
                    }
                } else {
                    return Err(ProviderError::Rejected(
                        "Stripe returned no next action".into(),
                    ));
                };
                Ok(CreatedPayment {
                    payment_id: Some(intent.id),
                    session_id: None,
                    next_action,
                })
            }
        }
    }

    /// Closes an unpaid payment: expires its Checkout Session
    /// (`POST /v1/checkout/sessions/{id}/expire`, open sessions only) or cancels its
    /// PaymentIntent (`POST /v1/payment_intents/{id}/cancel`, not once it succeeded).
    /// Stripe refusing (it completed meanwhile) is `Ok(false)`.
    pub async fn close(&self, payment: &CloseRequest<'_>) -> Result<bool, ProviderError> {
        // Closing is idempotent by nature (an expired session stays expired), so each try
        // gets its own key: a saved failure must not be replayed to the next one.
        let attempt = uuid::Uuid::new_v4().simple();
        let (path, key) = match (payment.session_id, payment.payment_id) {
            (Some(session), _) => (
                format!("/v1/checkout/sessions/{session}/expire"),
                format!("simrenew-order-{}-expire-{attempt}", payment.order_id),
            ),
            (None, Some(intent)) => (
                format!("/v1/payment_intents/{intent}/cancel"),
                format!("simrenew-order-{}-cancel-{attempt}", payment.order_id),
            ),
            (None, None) => return Ok(true),
        };
        let form = if payment.session_id.is_some() {
            Vec::new()
        } else {
            vec![("cancellation_reason".to_owned(), "abandoned".to_owned())]
        };
        match self.post(&path, &key, &form).await {
            Ok(_) => Ok(true),
            Err(ProviderError::Rejected(why)) => {
                tracing::info!(order_id = %payment.order_id, reason = %why, "Stripe would not close the payment");
                Ok(false)
            }
            Err(unavailable) => Err(unavailable),
        }
    }

    /// Asks for a refund of `amount` of one PaymentIntent. Alipay and WeChat Pay refunds
    /// are asynchronous: `pending` until a refund event says how it ended.
    pub async fn refund(
        &self,
        refund: &RefundRequest<'_>,
    ) -> Result<ProviderRefund, ProviderError> {
        if !refund.payment_id.starts_with("pi_") {
            return Err(ProviderError::Rejected(
                "no PaymentIntent recorded for this payment".into(),
            ));
        }
        let form = vec![
            ("payment_intent".to_owned(), refund.payment_id.to_owned()),
            ("amount".to_owned(), refund.amount.to_string()),
            ("metadata[order_id]".to_owned(), refund.order_id.to_owned()),
            (
                "metadata[refund_id]".to_owned(),
                refund.refund_id.to_owned(),
            ),
        ];
        let made = self
            .post(
                "/v1/refunds",
                &format!("simrenew-refund-{}-{}", refund.refund_id, refund.attempt),
                &form,
            )
            .await?;
        Ok(ProviderRefund {
            refund_id: made.id,
            status: refund_status(made.status.as_deref()),
            failure_reason: made.failure_reason,
        })
    }

    /// The events of [`WEBHOOK_EVENTS`] that no enabled webhook endpoint of the account
    /// receives (`GET /v1/webhook_endpoints`; an endpoint with `*` receives all), so that
    /// a start can say what an operator forgot to enable.
    pub async fn missing_webhook_events(&self) -> Result<Vec<&'static str>, ProviderError> {
        let response = self
            .http
            .get(format!(
                "{}/v1/webhook_endpoints?limit=100",
                self.config.api_base.trim_end_matches('/')
            ))
            .basic_auth(&self.config.secret_key, None::<&str>)
            .header("Stripe-Version", STRIPE_API_VERSION)
            .send()
            .await
            .map_err(|_| ProviderError::Unavailable("Stripe could not be reached".into()))?;
        if !response.status().is_success() {
            return Err(ProviderError::Unavailable(format!(
                "Stripe answered {}",
                response.status()
            )));
        }
        let list: serde_json::Value = response
            .json()
            .await
            .map_err(|e| ProviderError::Unavailable(format!("unreadable Stripe answer: {e}")))?;
        let enabled: Vec<&str> = list["data"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|endpoint| endpoint["status"].as_str() != Some("disabled"))
            .flat_map(|endpoint| endpoint["enabled_events"].as_array().into_iter().flatten())
            .filter_map(|event| event.as_str())
            .collect();
        if enabled.contains(&"*") {
            return Ok(Vec::new());
        }
        Ok(WEBHOOK_EVENTS
            .iter()
            .copied()
            .filter(|event| !enabled.contains(event))
            .collect())
    }

    /// Checks `Stripe-Signature` and reads the event.
    pub fn parse_webhook(
        &self,
        signature: Option<&str>,
        body: &[u8],
        now: i64,
    ) -> Result<PaymentEvent, WebhookError> {
        verify_signature(&self.config.webhook_secret, signature, body, now)?;
        parse_event(body)
    }
}

/// Refund.status: `pending`, `requires_action`, `succeeded`, `failed`, `canceled`
/// (https://docs.stripe.com/api/refunds/object#refund_object-status).
fn refund_status(status: Option<&str>) -> ProviderRefundStatus {
    match status {
        Some("succeeded") => ProviderRefundStatus::Succeeded,
        Some("failed") | Some("canceled") => ProviderRefundStatus::Failed,
        _ => ProviderRefundStatus::Pending,
    }
}

/// Stripe's scheme: `t=<unix time>,v1=<hex HMAC-SHA256 of "{t}.{body}">` (several `v1`
/// may be present during a secret rotation), within the tolerance, compared in constant time.
pub fn verify_signature(
    secret: &str,
    header: Option<&str>,
    body: &[u8],
    now: i64,
) -> Result<(), WebhookError> {
    let header = header.ok_or(WebhookError::BadSignature("no Stripe-Signature header"))?;
    let mut timestamp = None;
    let mut candidates = Vec::new();
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", value)) => timestamp = value.parse::<i64>().ok(),
            Some(("v1", value)) => candidates.push(value.to_owned()),
            _ => {}
        }
    }
    let timestamp = timestamp.ok_or(WebhookError::BadSignature("no timestamp"))?;
    // abs_diff: a timestamp near i64::MIN must not wrap into the tolerance.
    if now.abs_diff(timestamp) > SIGNATURE_TOLERANCE_S.unsigned_abs() {
        return Err(WebhookError::BadSignature(
            "timestamp outside the tolerance",
        ));
    }
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes())
        .map_err(|_| WebhookError::BadSignature("bad secret"))?;
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    let expected = hex::encode(mac.finalize().into_bytes());
    let matches = candidates
        .iter()
        .any(|candidate| bool::from(candidate.as_bytes().ct_eq(expected.as_bytes())));
    if matches {
        Ok(())
    } else {
        Err(WebhookError::BadSignature("no signature matches"))
    }
}

/// The signature header Stripe would send for `body` at `timestamp` (tests, tools).
pub fn sign(secret: &str, body: &[u8], timestamp: i64) -> String {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap_or_else(|_| unreachable_mac());
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!(
        "t={timestamp},v1={}",
        hex::encode(mac.finalize().into_bytes())
    )
}

fn unreachable_mac() -> Hmac<Sha256> {
    // HMAC accepts keys of any length; this cannot be reached.
    Hmac::<Sha256>::new_from_slice(b"-").unwrap_or_else(|_| unreachable!())
}

#[derive(Debug, Deserialize)]
struct Event {
    id: String,
    #[serde(rename = "type")]
    kind: String,
    data: EventData,
}

#[derive(Debug, Deserialize)]
struct EventData {
    object: serde_json::Value,
}

/// `metadata[order_id]` of an object; `metadata` may be absent or null.
fn order_id_of(object: &serde_json::Value) -> Option<String> {
    object["metadata"]["order_id"]
        .as_str()
        .or_else(|| object["client_reference_id"].as_str())
        .map(str::to_owned)
}

/// An id field that may hold the id or the expanded object.
fn id_of(value: &serde_json::Value) -> Option<String> {
    value
        .as_str()
        .or_else(|| value["id"].as_str())
        .map(str::to_owned)
}

fn amount_of(value: &serde_json::Value) -> MinorUnits {
    MinorUnits::new(value.as_i64().unwrap_or(0))
}

/// Stripe names currencies in lower case.
fn currency_of(value: &serde_json::Value) -> Option<Currency> {
    value
        .as_str()
        .and_then(|code| code.to_ascii_uppercase().parse().ok())
}

/// Reads the events Stripe documents for each flow. Only an event without an id or a
/// type is unreadable; an object missing a field this service does not need is not
/// (Stripe would retry a refused delivery for days).
fn parse_event(body: &[u8]) -> Result<PaymentEvent, WebhookError> {
    let event: Event =
        serde_json::from_slice(body).map_err(|e| WebhookError::Malformed(e.to_string()))?;
    let object = &event.data.object;
    let mut parsed = PaymentEvent {
        event_id: event.id,
        kind: EventKind::Other(event.kind.clone()),
        payment_id: None,
        session_id: None,
        order_id: order_id_of(object),
    };
    match event.kind.as_str() {
        // A Checkout Session: paid when complete with payment_status "paid"; a delayed
        // method reports later through async_payment_succeeded/failed.
        "checkout.session.completed" | "checkout.session.async_payment_succeeded" => {
            parsed.session_id = id_of(&object["id"]);
            parsed.payment_id = id_of(&object["payment_intent"]);
            if object["payment_status"].as_str() == Some("paid") {
                parsed.kind = EventKind::Succeeded {
                    amount: amount_of(&object["amount_total"]),
                    currency: currency_of(&object["currency"]),
                };
            }
        }
        "checkout.session.async_payment_failed" | "checkout.session.expired" => {
            parsed.session_id = id_of(&object["id"]);
            parsed.kind = EventKind::Failed;
        }
        "payment_intent.succeeded" => {
            parsed.payment_id = id_of(&object["id"]);
            parsed.kind = EventKind::Succeeded {
                amount: amount_of(&object["amount_received"]),
                currency: currency_of(&object["currency"]),
            };
        }
        // Not final: the intent returns to requires_payment_method and the payer can
        // try again (https://docs.stripe.com/payments/paymentintents/lifecycle).
        "payment_intent.payment_failed" => {
            parsed.payment_id = id_of(&object["id"]);
            parsed.kind = EventKind::AttemptFailed {
                reason: object["last_payment_error"]["message"]
                    .as_str()
                    .unwrap_or("the payment attempt was declined")
                    .to_owned(),
            };
        }
        "payment_intent.canceled" => {
            parsed.payment_id = id_of(&object["id"]);
            parsed.kind = EventKind::Failed;
        }
        // Refund objects, ours or made in the Dashboard (refund.* covers every refund
        // from API version 2024-10-28 on).
        "refund.created" | "refund.updated" | "refund.failed" | "charge.refund.updated" => {
            parsed.payment_id = id_of(&object["payment_intent"]);
            if let Some(refund_id) = id_of(&object["id"]) {
                parsed.kind = EventKind::Refund {
                    refund_id,
                    our_refund_id: object["metadata"]["refund_id"].as_str().map(str::to_owned),
                    status: refund_status(object["status"].as_str()),
                    amount: amount_of(&object["amount"]),
                    failure_reason: object["failure_reason"].as_str().map(str::to_owned),
                };
            }
        }
        _ => {}
    }
    Ok(parsed)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "whsec_test_secret";

    #[test]
    fn a_valid_signature_within_tolerance_passes() {
        let body = br#"{"id":"evt_1"}"#;
        let header = sign(SECRET, body, 1_000_000);
        assert!(verify_signature(SECRET, Some(&header), body, 1_000_000 + 299).is_ok());
        assert!(
            verify_signature(SECRET, Some(&header), body, 1_000_000 + 301).is_err(),
            "stale"
        );
        assert!(
            verify_signature(SECRET, Some(&header), b"{}", 1_000_000).is_err(),
            "other body"
        );
        assert!(
            verify_signature("whsec_other", Some(&header), body, 1_000_000).is_err(),
            "other secret"
        );
        assert!(verify_signature(SECRET, None, body, 1_000_000).is_err());
        let ancient = sign(SECRET, body, i64::MIN + 5);
        assert!(
            verify_signature(SECRET, Some(&ancient), body, 1_000_000).is_err(),
            "a timestamp 2^63 s away does not wrap into the tolerance"
        );
    }

    #[test]
    fn any_of_several_v1_signatures_may_match() {
        let body = b"{}";
        let good = sign(SECRET, body, 42);
        let v1 = good.split("v1=").nth(1).unwrap();
        let header = format!("t=42,v1={},v1={v1},v0=ignored", "0".repeat(64));
        assert!(verify_signature(SECRET, Some(&header), body, 42).is_ok());
    }

    #[test]
    fn events_carry_the_order_from_metadata() {
        let body = br#"{"id":"evt_9","type":"payment_intent.succeeded","data":{"object":{"id":"pi_1","amount_received":6900,"currency":"cny","metadata":{"order_id":"o-1"}}}}"#;
        let event = parse_event(body).unwrap();
        assert_eq!(
            (event.event_id.as_str(), event.payment_id.as_deref()),
            ("evt_9", Some("pi_1"))
        );
        assert_eq!(event.order_id.as_deref(), Some("o-1"));
        assert_eq!(
            event.kind,
            EventKind::Succeeded {
                amount: MinorUnits::new(6900),
                currency: Some("CNY".parse().unwrap())
            }
        );
    }

    #[test]
    fn a_completed_session_pays_only_when_its_payment_status_is_paid() {
        let event = |status: &str| {
            format!(
                r#"{{"id":"evt_1","type":"checkout.session.completed","data":{{"object":{{"id":"cs_1","payment_status":"{status}","payment_intent":"pi_1","amount_total":5900,"currency":"cny","metadata":null,"client_reference_id":"o-1"}}}}}}"#
            )
        };
        let paid = parse_event(event("paid").as_bytes()).unwrap();
        assert!(matches!(paid.kind, EventKind::Succeeded { .. }));
        assert_eq!(paid.session_id.as_deref(), Some("cs_1"));
        assert_eq!(paid.payment_id.as_deref(), Some("pi_1"));
        assert_eq!(
            paid.order_id.as_deref(),
            Some("o-1"),
            "from client_reference_id"
        );
        let unpaid = parse_event(event("unpaid").as_bytes()).unwrap();
        assert!(matches!(unpaid.kind, EventKind::Other(_)));
    }

    #[test]
    fn a_declined_attempt_is_not_a_final_failure() {
        let body = br#"{"id":"evt_2","type":"payment_intent.payment_failed","data":{"object":{"id":"pi_1","last_payment_error":{"message":"Your card was declined."}}}}"#;
        let event = parse_event(body).unwrap();
        assert_eq!(
            event.kind,
            EventKind::AttemptFailed {
                reason: "Your card was declined.".into()
            }
        );
    }

    #[test]
    fn objects_without_metadata_or_an_id_are_readable() {
        for body in [
            br#"{"id":"evt_3","type":"customer.created","data":{"object":{"metadata":null}}}"#
                .as_slice(),
            br#"{"id":"evt_4","type":"balance.available","data":{"object":{"available":[]}}}"#
                .as_slice(),
            br#"{"id":"evt_5","type":"refund.updated","data":{"object":{"status":"succeeded"}}}"#
                .as_slice(),
        ] {
            let event = parse_event(body).unwrap();
            assert!(matches!(event.kind, EventKind::Other(_)), "{event:?}");
            assert_eq!(event.order_id, None);
        }
        assert!(
            parse_event(br#"{"type":"x","data":{"object":{}}}"#).is_err(),
            "no event id"
        );
    }
}
