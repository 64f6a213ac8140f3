//! Stripe: PaymentIntents (Alipay, WeChat Pay), Checkout Sessions (bank cards),
//! refunds, and Stripe's webhook signatures. Every call carries an idempotency key
//! derived from the order, so a retried call never makes a second payment or refund.

use hmac::{Hmac, Mac};
use serde::Deserialize;
use sha2::Sha256;
use subtle::ConstantTimeEq;

use super::{
    CreatedPayment, EventKind, PaymentEvent, PaymentRequest, ProviderError, RefundRequest,
    WebhookError,
};
pub use crate::config::StripeConfig;
use crate::domain::{NextAction, PaymentMethod};

/// Signatures older (or newer) than this are refused: a replayed delivery fails.
pub const SIGNATURE_TOLERANCE_S: i64 = 300;

pub struct Stripe {
    config: StripeConfig,
    http: reqwest::Client,
}

#[derive(Debug, Deserialize)]
struct StripeObject {
    id: String,
    url: Option<String>,
    next_action: Option<serde_json::Value>,
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
        let http = reqwest::Client::builder()
            .timeout(config.timeout)
            .connect_timeout(config.timeout)
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
        let response = self
            .http
            .post(format!(
                "{}{path}",
                self.config.api_base.trim_end_matches('/')
            ))
            .basic_auth(&self.config.secret_key, None::<&str>)
            .header("Idempotency-Key", idempotency_key)
            .form(form)
            .send()
            .await
            .map_err(|e| {
                if e.is_timeout() {
                    ProviderError::Unavailable("Stripe did not answer in time".into())
                } else {
                    ProviderError::Unavailable(format!("Stripe unreachable: {e}"))
                }
            })?;
        let status = response.status();
        if status.is_server_error() || status.as_u16() == 429 {
            return Err(ProviderError::Unavailable(format!(
                "Stripe answered {status}"
            )));
        }
        if status.as_u16() == 401 || status.as_u16() == 403 {
            // Our key is wrong or lacks a permission: an operator's problem, and Stripe's
            // message quotes part of the key, so it goes to the log, not to the client.
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
        response
            .json::<StripeObject>()
            .await
            .map_err(|e| ProviderError::Unavailable(format!("unreadable Stripe answer: {e}")))
    }

    pub async fn create_payment(
        &self,
        order: &PaymentRequest<'_>,
    ) -> Result<CreatedPayment, ProviderError> {
        let currency = order.currency.code().to_ascii_lowercase();
        let key = format!("simrenew-order-{}-create", order.order_id);
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
                    pair("success_url", &self.config.return_url),
                    pair("cancel_url", &self.config.return_url),
                ];
                let session = self.post("/v1/checkout/sessions", &key, &form).await?;
                let url = session.url.ok_or_else(|| {
                    ProviderError::Rejected("Stripe returned no checkout URL".into())
                })?;
                Ok(CreatedPayment {
                    provider_payment_id: session.id,
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
                    NextAction::DisplayQrCode {
                        data: qr["data"].as_str().unwrap_or_default().to_owned(),
                        image_url: qr["image_url_png"].as_str().map(str::to_owned),
                    }
                } else if let Some(url) = action["alipay_handle_redirect"]["url"].as_str() {
                    // Alipay's page shows the code to scan on desktop and opens the app on mobile.
                    NextAction::DisplayQrCode {
                        data: url.to_owned(),
                        image_url: None,
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
                    provider_payment_id: intent.id,
                    next_action,
                })
            }
        }
    }

    /// Refunds the whole payment of `order` (its PaymentIntent).
    pub async fn refund(&self, order: &RefundRequest<'_>) -> Result<String, ProviderError> {
        let intent = order
            .provider_payment_id
            .filter(|id| id.starts_with("pi_"))
            .ok_or_else(|| {
                ProviderError::Rejected("no PaymentIntent recorded for this order".into())
            })?;
        let form = vec![
            ("payment_intent".to_owned(), intent.to_owned()),
            ("metadata[order_id]".to_owned(), order.order_id.to_owned()),
        ];
        let refund = self
            .post(
                "/v1/refunds",
                &format!("simrenew-order-{}-refund", order.order_id),
                &form,
            )
            .await?;
        Ok(refund.id)
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
    if (now - timestamp).abs() > SIGNATURE_TOLERANCE_S {
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
    object: EventObject,
}

#[derive(Debug, Deserialize)]
struct EventObject {
    id: String,
    #[serde(default)]
    metadata: std::collections::HashMap<String, String>,
}

fn parse_event(body: &[u8]) -> Result<PaymentEvent, WebhookError> {
    let event: Event =
        serde_json::from_slice(body).map_err(|e| WebhookError::Malformed(e.to_string()))?;
    let kind = match event.kind.as_str() {
        "payment_intent.succeeded" => EventKind::Succeeded,
        "payment_intent.payment_failed" => EventKind::Failed,
        _ => EventKind::Other(event.kind.clone()),
    };
    Ok(PaymentEvent {
        event_id: event.id,
        kind,
        provider_payment_id: event.data.object.id,
        order_id: event.data.object.metadata.get("order_id").cloned(),
    })
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
        let body = br#"{"id":"evt_9","type":"payment_intent.succeeded","data":{"object":{"id":"pi_1","metadata":{"order_id":"o-1"}}}}"#;
        let event = parse_event(body).unwrap();
        assert_eq!(
            (event.event_id.as_str(), event.provider_payment_id.as_str()),
            ("evt_9", "pi_1")
        );
        assert_eq!(event.order_id.as_deref(), Some("o-1"));
        assert!(matches!(event.kind, EventKind::Succeeded));
    }
}
