//! A local Stripe that behaves as Stripe's API reference says it does, for the cases the
//! adapter relies on. Each behaviour cites the page it follows:
//!
//! - Idempotency (https://docs.stripe.com/idempotency): the status and body of the first
//!   request under a key are saved and replayed for later requests with that key,
//!   "including 500 errors"; a request that collides with a concurrent one under the
//!   same key gets `409 idempotency_key_in_use` and is not saved.
//! - Checkout Sessions (https://docs.stripe.com/api/checkout/sessions): created `open`
//!   with `payment_status: unpaid` and no PaymentIntent (API versions since 2022-08-01);
//!   `expires_at` must be 30 minutes to 24 hours after creation; a declined card leaves
//!   the session open; `POST …/{id}/expire` works only on an `open` session.
//! - PaymentIntents (https://docs.stripe.com/api/payment_intents): Alipay answers
//!   `next_action.alipay_handle_redirect.url`, WeChat Pay
//!   `next_action.wechat_pay_display_qr_code`; `POST …/{id}/cancel` works from the
//!   `requires_*` states, not once `succeeded`.
//! - Refunds (https://docs.stripe.com/api/refunds/object): a refund has a `status`;
//!   Alipay and WeChat Pay refunds are asynchronous (`pending`, then an event).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use serde_json::{json, Value};

/// One request as the fake received it.
#[derive(Debug, Clone)]
pub struct Received {
    pub path: String,
    pub idempotency_key: String,
    pub authorization: String,
    pub stripe_version: String,
    pub form: String,
}

impl Received {
    pub fn field(&self, name: &str) -> Option<String> {
        serde_urlencoded::from_str::<Vec<(String, String)>>(&self.form)
            .unwrap_or_default()
            .into_iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v)
    }
}

#[derive(Default)]
pub struct State {
    pub requests: Vec<Received>,
    /// Saved answers by idempotency key.
    saved: HashMap<String, (u16, Value)>,
    /// The next this-many requests fail with a 500 (saved under their key, as Stripe does).
    pub fail_next: u32,
    /// The next this-many requests collide with a concurrent one under their key (409).
    pub in_use_next: u32,
    /// Answer after 3 s (beyond the adapter's timeout).
    pub slow: bool,
    /// The status new refunds get: `succeeded`, or `pending` (asynchronous methods).
    pub refund_status: Option<&'static str>,
    /// Refuse refunds with this message (400), e.g. the charge is too old.
    pub refuse_refunds: Option<&'static str>,
    pub sessions: HashMap<String, Value>,
    pub intents: HashMap<String, Value>,
    /// `enabled_events` of the account's webhook endpoints.
    pub webhook_endpoints: Vec<Vec<&'static str>>,
    counter: u32,
}

pub struct FakeStripe {
    pub url: String,
    pub state: Arc<Mutex<State>>,
}

fn error(status: u16, kind: &str, code: &str, message: &str) -> (u16, Value) {
    (
        status,
        json!({"error": {"type": kind, "code": code, "message": message}}),
    )
}

fn answer(state: &mut State, path: &str, form: &HashMap<String, String>) -> (u16, Value) {
    let now = chrono::Utc::now().timestamp();
    state.counter += 1;
    let n = state.counter;
    let field = |name: &str| form.get(name).cloned().unwrap_or_default();
    let amount = |name: &str| field(name).parse::<i64>().unwrap_or(0);
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    match segments.as_slice() {
        ["v1", "checkout", "sessions"] => {
            let expires_at = field("expires_at").parse::<i64>().unwrap_or(now + 86_400);
            if expires_at < now + 30 * 60 - 5 || expires_at > now + 24 * 3600 {
                return error(
                    400,
                    "invalid_request_error",
                    "parameter_invalid_integer",
                    "expires_at must be between 30 minutes and 24 hours from now",
                );
            }
            let id = format!("cs_test_{n}");
            let session = json!({
                "id": id, "object": "checkout.session", "status": "open",
                "payment_status": "unpaid", "payment_intent": null,
                "amount_total": amount("line_items[0][price_data][unit_amount]"),
                "currency": field("line_items[0][price_data][currency]"),
                "client_reference_id": field("client_reference_id"),
                "metadata": {"order_id": field("metadata[order_id]")},
                "expires_at": expires_at,
                "url": format!("https://checkout.stripe.test/c/pay/{id}"),
            });
            state.sessions.insert(id, session.clone());
            (200, session)
        }
        ["v1", "checkout", "sessions", id, "expire"] => match state.sessions.get_mut(*id) {
            Some(session) if session["status"] == "open" => {
                session["status"] = json!("expired");
                (200, session.clone())
            }
            Some(_) => error(
                400,
                "invalid_request_error",
                "checkout_session_not_expirable",
                "This Checkout Session is not in an expirable state.",
            ),
            None => error(
                404,
                "invalid_request_error",
                "resource_missing",
                "No such checkout.session",
            ),
        },
        ["v1", "payment_intents"] => {
            let id = format!("pi_test_{n}");
            let method = field("payment_method_types[0]");
            let next_action = if method == "wechat_pay" {
                json!({"type": "wechat_pay_display_qr_code", "wechat_pay_display_qr_code": {
                    "data": "weixin://wxpay/bizpayurl?pr=abc",
                    "image_url_png": "https://qr.stripe.test/abc.png"}})
            } else {
                json!({"type": "alipay_handle_redirect", "alipay_handle_redirect": {
                    "url": "https://alipay.stripe.test/pay", "native_url": null,
                    "return_url": field("return_url")}})
            };
            let intent = json!({
                "id": id, "object": "payment_intent", "status": "requires_action",
                "amount": amount("amount"), "currency": field("currency"),
                "metadata": {"order_id": field("metadata[order_id]")},
                "next_action": next_action,
            });
            state.intents.insert(id, intent.clone());
            (200, intent)
        }
        ["v1", "payment_intents", id, "cancel"] => {
            match state.intents.get_mut(*id) {
                Some(intent)
                    if intent["status"]
                        .as_str()
                        .is_some_and(|s| s.starts_with("requires_")) =>
                {
                    intent["status"] = json!("canceled");
                    (200, intent.clone())
                }
                Some(intent) => {
                    let status = intent["status"].as_str().unwrap_or("").to_owned();
                    error(
                    400,
                    "invalid_request_error",
                    "payment_intent_unexpected_state",
                    &format!("You cannot cancel this PaymentIntent because it has a status of {status}."),
                )
                }
                None => error(
                    404,
                    "invalid_request_error",
                    "resource_missing",
                    "No such payment_intent",
                ),
            }
        }
        ["v1", "refunds"] => {
            if let Some(message) = state.refuse_refunds {
                return error(
                    400,
                    "invalid_request_error",
                    "charge_expired_for_refund",
                    message,
                );
            }
            (
                200,
                json!({
                    "id": format!("re_test_{n}"), "object": "refund",
                    "status": state.refund_status.unwrap_or("succeeded"),
                    "amount": amount("amount"), "payment_intent": field("payment_intent"),
                    "metadata": {"order_id": field("metadata[order_id]")},
                }),
            )
        }
        _ => error(
            404,
            "invalid_request_error",
            "resource_missing",
            "Unrecognized request URL",
        ),
    }
}

async fn handle(
    req: HttpRequest,
    body: web::Bytes,
    state: web::Data<Arc<Mutex<State>>>,
) -> HttpResponse {
    let header = |name: &str| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    let received = Received {
        path: req.path().to_owned(),
        idempotency_key: header("idempotency-key"),
        authorization: header("authorization"),
        stripe_version: header("stripe-version"),
        form: String::from_utf8_lossy(&body).into_owned(),
    };
    let form: HashMap<String, String> = serde_urlencoded::from_bytes(&body).unwrap_or_default();
    if req.method() == actix_web::http::Method::GET && req.path() == "/v1/webhook_endpoints" {
        // https://docs.stripe.com/api/webhook_endpoints/list
        let state = state.lock().unwrap();
        let data: Vec<Value> = state
            .webhook_endpoints
            .iter()
            .enumerate()
            .map(|(n, events)| {
                json!({"id": format!("we_{n}"), "object": "webhook_endpoint",
                "status": "enabled", "enabled_events": events})
            })
            .collect();
        return HttpResponse::Ok().json(json!({"object": "list", "data": data, "has_more": false}));
    }
    let (slow, (status, body)) = {
        let mut state = state.lock().unwrap();
        state.requests.push(received.clone());
        let key = received.idempotency_key.clone();
        let outcome = if let Some(saved) = state.saved.get(&key) {
            saved.clone()
        } else if state.in_use_next > 0 {
            state.in_use_next -= 1;
            error(
                409,
                "idempotency_error",
                "idempotency_key_in_use",
                "There is currently another in-progress request using this Idempotency Key.",
            )
        } else {
            let outcome = if state.fail_next > 0 {
                state.fail_next -= 1;
                error(500, "api_error", "", "An unknown error occurred")
            } else {
                answer(&mut state, &received.path, &form)
            };
            if !key.is_empty() {
                state.saved.insert(key, outcome.clone());
            }
            outcome
        };
        (state.slow, outcome)
    };
    if slow {
        tokio::time::sleep(Duration::from_secs(3)).await;
    }
    HttpResponse::build(actix_web::http::StatusCode::from_u16(status).unwrap()).json(body)
}

impl FakeStripe {
    pub async fn start() -> Self {
        let state = Arc::new(Mutex::new(State::default()));
        let data = web::Data::new(state.clone());
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = HttpServer::new(move || {
            App::new()
                .app_data(data.clone())
                .default_service(web::to(handle))
        })
        .workers(1)
        .listen(listener)
        .unwrap()
        .run();
        tokio::spawn(server);
        Self {
            url: format!("http://127.0.0.1:{port}"),
            state,
        }
    }

    pub fn requests(&self) -> Vec<Received> {
        self.state.lock().unwrap().requests.clone()
    }

    /// The payer completes a Checkout Session: a PaymentIntent now exists behind it.
    /// Returns the `checkout.session.completed` event Stripe would send.
    pub fn complete_session(&self, session_id: &str, event_id: &str) -> Value {
        let mut state = self.state.lock().unwrap();
        let intent_id = format!("pi_test_for_{session_id}");
        let session = state
            .sessions
            .get_mut(session_id)
            .expect("a session of ours");
        session["status"] = json!("complete");
        session["payment_status"] = json!("paid");
        session["payment_intent"] = json!(intent_id);
        let object = session.clone();
        state.intents.insert(
            intent_id.clone(),
            json!({"id": intent_id, "status": "succeeded", "amount": object["amount_total"]}),
        );
        json!({"id": event_id, "type": "checkout.session.completed", "data": {"object": object}})
    }

    /// The payer pays a PaymentIntent; returns `payment_intent.succeeded`.
    pub fn pay_intent(&self, intent_id: &str, event_id: &str) -> Value {
        let mut state = self.state.lock().unwrap();
        let intent = state.intents.get_mut(intent_id).expect("an intent of ours");
        intent["status"] = json!("succeeded");
        intent["amount_received"] = intent["amount"].clone();
        let object = intent.clone();
        json!({"id": event_id, "type": "payment_intent.succeeded", "data": {"object": object}})
    }

    /// A card is declined inside an open session: the session stays open, and the
    /// PaymentIntent behind it reports `payment_intent.payment_failed`.
    pub fn decline(&self, order_id: &str, event_id: &str) -> Value {
        json!({"id": event_id, "type": "payment_intent.payment_failed", "data": {"object": {
            "id": format!("pi_declined_{event_id}"), "status": "requires_payment_method",
            "metadata": {"order_id": order_id},
            "last_payment_error": {"type": "card_error", "code": "card_declined",
                "message": "Your card was declined."}}}})
    }
}
