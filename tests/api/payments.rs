//! External payments: the sandbox and a Stripe adapter against a local fake of Stripe's
//! API, signed webhooks, expiry and refunds.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::fake_stripe::FakeStripe;
use crate::helpers::{assert_problem, iccid, plan_id, Backend, TestApp};
use simrenew::config::{ProviderKind, Settings};
use simrenew::domain::PaymentMethod;
use simrenew::payments::stripe::{sign, StripeConfig, STRIPE_API_VERSION};

const WEBHOOK_SECRET: &str = "whsec_test_simrenew";

// Each scenario starts its own server: the sandbox everywhere, or Stripe at a fake.
on_both_backends!(
    backend:
    sandbox_methods_settle_through_the_same_path,
    expiry_cancel_and_late_success_refund,
    stripe_creates_payments_and_documented_events_settle_them_once,
    forged_stale_and_unknown_webhooks_change_nothing,
    a_failing_provider_leaves_a_consistent_order_and_a_retry_resumes,
    a_payment_that_does_not_match_its_order_pays_nothing_and_goes_back,
    an_order_that_ends_unpaid_closes_its_provider_payment,
    refunds_are_tracked_to_a_final_state,
    a_method_is_refused_in_a_currency_it_does_not_take,
    the_webhook_events_to_enable_are_checked,
    an_unreachable_provider_is_not_described_to_clients,
    a_refund_reported_before_its_request_returns_is_recorded_once,
    a_refunded_order_cannot_take_effect,
);

fn with_stripe(settings: &mut Settings, api_base: &str) {
    settings.payments.routes = vec![
        (PaymentMethod::Card, ProviderKind::Stripe),
        (PaymentMethod::Alipay, ProviderKind::Stripe),
        (PaymentMethod::WechatPay, ProviderKind::Stripe),
    ];
    settings.payments.stripe = Some(StripeConfig {
        api_base: api_base.to_owned(),
        secret_key: "sk_test_simrenew".into(),
        webhook_secret: WEBHOOK_SECRET.into(),
        return_url: "https://app.example/return".into(),
        timeout: Duration::from_millis(800),
    });
}

async fn stripe_app(backend: Backend) -> (TestApp, FakeStripe) {
    let fake = FakeStripe::start().await;
    let app = TestApp::spawn_configured(backend, |s| with_stripe(s, &fake.url)).await;
    (app, fake)
}

struct Buyer {
    token: String,
    card: String,
    plan: String,
}

async fn buyer(app: &TestApp) -> Buyer {
    app.import_demo_plans().await;
    let admin = app.admin_token().await;
    let (partner, token) = app.partner_with_token("Acme").await;
    let card = iccid(50, 1);
    app.import_cards(
        &admin,
        &partner.id,
        json!([{"iccid": card, "card_type": "esim"}]),
    )
    .await;
    let plan = plan_id(&app.store, "JP-ESIM-M-5G").await;
    Buyer { token, card, plan }
}

async fn place(app: &TestApp, b: &Buyer, method: &str, key: &str) -> reqwest::Response {
    app.client
        .post(app.url("/v1/orders"))
        .bearer_auth(&b.token)
        .header("Idempotency-Key", key)
        .json(&json!({"iccid": b.card, "plan_id": b.plan, "currency": "CNY", "payment_method": method}))
        .send()
        .await
        .unwrap()
}

/// Plays the payer in the sandbox: `succeed` or `fail`; returns the settlement receipt.
async fn sandbox(app: &TestApp, b: &Buyer, order_id: &str, outcome: &str) -> Value {
    app.post_json(
        &format!("/v1/sandbox/payments/{order_id}/{outcome}"),
        &b.token,
        &json!({}),
    )
    .await
    .json()
    .await
    .unwrap()
}

async fn order_of(app: &TestApp, b: &Buyer, id: &str) -> Value {
    app.get_with(&format!("/v1/orders/{id}"), &b.token)
        .await
        .json()
        .await
        .unwrap()
}

async fn sandbox_methods_settle_through_the_same_path(backend: Backend) {
    let app = TestApp::spawn_configured(backend, |s| s.payments.sandbox_everywhere()).await;
    let b = buyer(&app).await;
    for (method, action) in [
        ("card", "redirect_to_url"),
        ("alipay", "display_qr_code"),
        ("wechat_pay", "display_qr_code"),
    ] {
        let response = place(&app, &b, method, &format!("sbx-{method}")).await;
        assert_eq!(response.status(), StatusCode::CREATED, "{method}");
        let order: Value = response.json().await.unwrap();
        assert_eq!(order["status"], "pending_payment");
        assert_eq!(order["payment"]["provider"], "sandbox");
        assert_eq!(order["payment"]["next_action"]["type"], action, "{method}");
        let id = order["id"].as_str().unwrap();
        let stored = order_of(&app, &b, id).await;
        assert_eq!(
            stored["payment"]["next_action"], order["payment"]["next_action"],
            "kept for a later GET"
        );
        let no_activation = app
            .get_with(&format!("/v1/orders/{id}/activation"), &b.token)
            .await;
        assert_problem(
            no_activation,
            StatusCode::CONFLICT,
            "invalid_state_transition",
        )
        .await;

        let settled: Value = sandbox(&app, &b, id, "succeed").await;
        assert_eq!(settled["outcome"], "paid");
        let paid = order_of(&app, &b, id).await;
        assert_eq!(paid["status"], "paid");
        assert_eq!(paid["payment"]["status"], "succeeded");
        assert_eq!(paid["payment"]["next_action"], Value::Null);
        assert!(paid["receipt_number"].as_str().unwrap().starts_with("R-"));
        let activation = app
            .get_with(&format!("/v1/orders/{id}/activation"), &b.token)
            .await;
        assert_eq!(activation.status(), StatusCode::OK);
        // A failure after the success changes nothing.
        let late: Value = sandbox(&app, &b, id, "fail").await;
        assert_eq!(late["outcome"], "no_change");
        assert_eq!(order_of(&app, &b, id).await["status"], "paid");
    }
    let failing: Value = place(&app, &b, "alipay", "sbx-fail")
        .await
        .json()
        .await
        .unwrap();
    let id = failing["id"].as_str().unwrap();
    sandbox(&app, &b, id, "fail").await;
    assert_eq!(order_of(&app, &b, id).await["status"], "failed");
    let wallet: Value = app
        .get_with("/v1/wallet", &b.token)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        wallet["balances"],
        json!([]),
        "external payments never touch the wallet"
    );
}

async fn expiry_cancel_and_late_success_refund(backend: Backend) {
    let app = TestApp::spawn_configured(backend, |s| s.payments.sandbox_everywhere()).await;
    let b = buyer(&app).await;
    let first: Value = place(&app, &b, "card", "exp-1").await.json().await.unwrap();
    let first_id = first["id"].as_str().unwrap().to_owned();
    let ttl = Duration::from_secs(30 * 60);
    let expire = || {
        simrenew::fulfilment::settlement::expire_unpaid(&app.store, &app.payments, &app.clock, ttl)
    };
    assert_eq!(expire().await.unwrap(), 0, "not before the TTL");
    app.clock.advance(chrono::TimeDelta::minutes(31));
    let expired = expire().await.unwrap();
    assert_eq!(expired, 1);
    assert_eq!(order_of(&app, &b, &first_id).await["status"], "expired");
    assert_eq!(expire().await.unwrap(), 0, "once");
    // The payer pays anyway: the money goes back through the provider, recorded on the order.
    let late: Value = sandbox(&app, &b, &first_id, "succeed").await;
    assert_eq!(late["outcome"], "refund_owed");
    let refunded = order_of(&app, &b, &first_id).await;
    assert_eq!(refunded["status"], "expired");
    assert_eq!(refunded["payment"]["status"], "refunded");
    assert_eq!(refunded["refund"]["amount"], refunded["amount"]);

    let pending: Value = place(&app, &b, "alipay", "cancel-pending")
        .await
        .json()
        .await
        .unwrap();
    let cancelled: Value = app
        .post_json(
            &format!("/v1/orders/{}/cancel", pending["id"].as_str().unwrap()),
            &b.token,
            &json!({}),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        (cancelled["status"].as_str(), cancelled["refund"].clone()),
        (Some("cancelled"), Value::Null)
    );

    let paid: Value = place(&app, &b, "wechat_pay", "cancel-paid")
        .await
        .json()
        .await
        .unwrap();
    let id = paid["id"].as_str().unwrap();
    sandbox(&app, &b, id, "succeed").await;
    let cancelled: Value = app
        .post_json(&format!("/v1/orders/{id}/cancel"), &b.token, &json!({}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(cancelled["status"], "cancelled");
    assert_eq!(cancelled["payment"]["status"], "refunded");
    assert_eq!(cancelled["refund"]["amount"], paid["amount"]);
}

async fn deliver(app: &TestApp, body: &str, signature: Option<String>) -> reqwest::Response {
    let mut request = app
        .client
        .post(app.url("/v1/payments/webhooks/stripe"))
        .header("content-type", "application/json")
        .body(body.to_owned());
    if let Some(signature) = signature {
        request = request.header("Stripe-Signature", signature);
    }
    request.send().await.unwrap()
}

/// Signed as Stripe would sign it now (the service's now: tests move its clock).
fn signed_at(app: &TestApp, body: &str) -> Option<String> {
    Some(sign(
        WEBHOOK_SECRET,
        body.as_bytes(),
        app.clock.now().timestamp(),
    ))
}

fn signed(body: &str) -> Option<String> {
    Some(sign(
        WEBHOOK_SECRET,
        body.as_bytes(),
        chrono::Utc::now().timestamp(),
    ))
}

/// Delivers a signed event; returns what became of it.
async fn outcome(app: &TestApp, event: &Value) -> String {
    let body = event.to_string();
    let response = deliver(app, &body, signed_at(app, &body)).await;
    assert_eq!(response.status(), StatusCode::OK, "{body}");
    response.json::<Value>().await.unwrap()["outcome"]
        .as_str()
        .unwrap()
        .to_owned()
}

async fn refunds_of(app: &TestApp, b: &Buyer, id: &str) -> Vec<Value> {
    let list: Value = app
        .get_with(&format!("/v1/orders/{id}/refunds"), &b.token)
        .await
        .json()
        .await
        .unwrap();
    list["data"].as_array().unwrap().clone()
}

/// The PaymentIntent the fake made for an order (Alipay, WeChat Pay).
fn intent_of(fake: &FakeStripe, order_id: &str) -> String {
    let state = fake.state.lock().unwrap();
    state
        .intents
        .values()
        .find(|i| i["metadata"]["order_id"] == order_id)
        .map(|i| i["id"].as_str().unwrap().to_owned())
        .expect("an intent for the order")
}

fn session_of(fake: &FakeStripe, order_id: &str) -> String {
    let state = fake.state.lock().unwrap();
    state
        .sessions
        .values()
        .find(|s| s["client_reference_id"] == order_id)
        .map(|s| s["id"].as_str().unwrap().to_owned())
        .expect("a session for the order")
}

fn refund_event(event_id: &str, kind: &str, refund: &Value) -> Value {
    json!({"id": event_id, "type": kind, "data": {"object": refund}})
}

async fn placed(app: &TestApp, b: &Buyer, method: &str, key: &str) -> Value {
    let response = place(app, b, method, key).await;
    assert_eq!(response.status(), StatusCode::CREATED, "{method}");
    response.json().await.unwrap()
}

async fn stripe_creates_payments_and_documented_events_settle_them_once(backend: Backend) {
    let (app, fake) = stripe_app(backend).await;
    let b = buyer(&app).await;

    let card = placed(&app, &b, "card", "stripe-card").await;
    let card_id = card["id"].as_str().unwrap();
    let session = session_of(&fake, card_id);
    assert_eq!(
        card["payment"]["next_action"],
        json!({"type": "redirect_to_url", "url": format!("https://checkout.stripe.test/c/pay/{session}")})
    );
    let wechat = placed(&app, &b, "wechat_pay", "stripe-wechat").await;
    assert_eq!(wechat["payment"]["next_action"]["type"], "display_qr_code");
    assert_eq!(
        wechat["payment"]["next_action"]["data"],
        "weixin://wxpay/bizpayurl?pr=abc"
    );
    // Alipay's next action is a page to send the payer to, as Stripe documents it.
    let alipay = placed(&app, &b, "alipay", "stripe-alipay").await;
    assert_eq!(
        alipay["payment"]["next_action"],
        json!({"type": "redirect_to_url", "url": "https://alipay.stripe.test/pay"})
    );
    let requests = fake.requests();
    assert_eq!(requests.len(), 3);
    for request in &requests {
        assert_eq!(
            request.stripe_version, STRIPE_API_VERSION,
            "pinned on every call"
        );
        assert!(
            request.authorization.starts_with("Basic "),
            "the secret key as Basic user"
        );
    }
    assert_eq!(requests[0].path, "/v1/checkout/sessions");
    assert_eq!(
        requests[0].idempotency_key,
        format!("simrenew-order-{card_id}-create-0")
    );
    assert_eq!(
        requests[0]
            .field("line_items[0][price_data][unit_amount]")
            .as_deref(),
        Some("5900")
    );
    let expires_at: i64 = requests[0].field("expires_at").unwrap().parse().unwrap();
    let lifetime = expires_at - chrono::Utc::now().timestamp();
    assert!(
        (30 * 60..=40 * 60).contains(&lifetime),
        "the session closes with the order, not after Stripe's 24 h: {lifetime} s"
    );
    assert_eq!(requests[1].path, "/v1/payment_intents");
    assert_eq!(requests[1].field("confirm").as_deref(), Some("true"));

    // WeChat Pay: the intent's success pays the order, once.
    let wechat_id = wechat["id"].as_str().unwrap();
    let paid_event = fake.pay_intent(&intent_of(&fake, wechat_id), "evt_1");
    assert_eq!(outcome(&app, &paid_event).await, "paid");
    assert_eq!(outcome(&app, &paid_event).await, "duplicate");
    let paid = order_of(&app, &b, wechat_id).await;
    assert_eq!(paid["status"], "paid");
    let receipt = paid["receipt_number"].clone();
    let mut again = paid_event.clone();
    again["id"] = json!("evt_2");
    assert_eq!(outcome(&app, &again).await, "no_change", "a provider retry");
    let mut failed_late = paid_event.clone();
    failed_late["id"] = json!("evt_3");
    failed_late["type"] = json!("payment_intent.canceled");
    assert_eq!(outcome(&app, &failed_late).await, "no_change");
    assert_eq!(
        order_of(&app, &b, wechat_id).await["receipt_number"],
        receipt
    );

    // A card declined inside the open session is not a failure: the payer tries another
    // card, and the session's completion pays the order.
    assert_eq!(
        outcome(&app, &fake.decline(card_id, "evt_4")).await,
        "ignored"
    );
    assert_eq!(
        order_of(&app, &b, card_id).await["status"],
        "pending_payment"
    );
    let completed = fake.complete_session(&session, "evt_5");
    assert_eq!(outcome(&app, &completed).await, "paid");
    let settled = order_of(&app, &b, card_id).await;
    assert_eq!(
        (
            settled["status"].as_str(),
            settled["payment"]["status"].as_str()
        ),
        (Some("paid"), Some("succeeded"))
    );
    // The PaymentIntent behind the session reports too; it is not a second payment.
    let behind = json!({"id": "evt_6", "type": "payment_intent.succeeded", "data": {"object": {
        "id": format!("pi_test_for_{session}"), "amount_received": 5900, "currency": "cny",
        "metadata": {"order_id": card_id}}}});
    assert_eq!(outcome(&app, &behind).await, "ignored");

    // Alipay: a declined attempt is written on the order, which the payer can still pay.
    let alipay_id = alipay["id"].as_str().unwrap();
    let intent = intent_of(&fake, alipay_id);
    let declined = json!({"id": "evt_7", "type": "payment_intent.payment_failed", "data": {"object": {
        "id": intent, "status": "requires_payment_method", "metadata": {"order_id": alipay_id},
        "last_payment_error": {"message": "The payment was declined by Alipay."}}}});
    assert_eq!(outcome(&app, &declined).await, "attempt_failed");
    let pending = order_of(&app, &b, alipay_id).await;
    assert_eq!(pending["status"], "pending_payment");
    assert!(
        pending["payment"]["issue"]
            .as_str()
            .unwrap()
            .contains("declined"),
        "{pending}"
    );
    assert_eq!(
        outcome(&app, &fake.pay_intent(&intent, "evt_8")).await,
        "paid"
    );

    // Cancelling the paid WeChat order refunds it through Stripe: asynchronously.
    fake.state.lock().unwrap().refund_status = Some("pending");
    let cancelled: Value = app
        .post_json(
            &format!("/v1/orders/{wechat_id}/cancel"),
            &b.token,
            &json!({}),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(cancelled["status"], "cancelled");
    assert_eq!(cancelled["payment"]["status"], "succeeded", "not back yet");
    let refunds = refunds_of(&app, &b, wechat_id).await;
    assert_eq!(refunds.len(), 1);
    assert_eq!(refunds[0]["status"], "pending");
    let request = fake.requests().last().unwrap().clone();
    assert_eq!(request.path, "/v1/refunds");
    assert_eq!(
        request.idempotency_key,
        format!("simrenew-refund-{}-0", refunds[0]["id"].as_str().unwrap())
    );
    assert_eq!(
        request.field("payment_intent"),
        Some(intent_of(&fake, wechat_id))
    );
    let stripe_refund = json!({"id": refunds[0]["provider_refund_id"], "object": "refund",
        "status": "succeeded", "amount": 5900, "payment_intent": intent_of(&fake, wechat_id),
        "metadata": {}});
    assert_eq!(
        outcome(
            &app,
            &refund_event("evt_9", "refund.updated", &stripe_refund)
        )
        .await,
        "refund"
    );
    let refunded = order_of(&app, &b, wechat_id).await;
    assert_eq!(refunded["payment"]["status"], "refunded");
    assert_eq!(refunded["refund"]["amount"], 5900);
    assert_eq!(
        refunds_of(&app, &b, wechat_id).await[0]["status"],
        "succeeded"
    );
}

async fn forged_stale_and_unknown_webhooks_change_nothing(backend: Backend) {
    let (app, fake) = stripe_app(backend).await;
    let b = buyer(&app).await;
    let order = placed(&app, &b, "alipay", "forged").await;
    let id = order["id"].as_str().unwrap();
    let body = fake
        .pay_intent(&intent_of(&fake, id), "evt_forged")
        .to_string();
    let stale = Some(sign(
        WEBHOOK_SECRET,
        body.as_bytes(),
        chrono::Utc::now().timestamp() - 600,
    ));
    let ancient = Some(sign(WEBHOOK_SECRET, body.as_bytes(), i64::MIN + 10));
    let forged = Some(sign(
        "whsec_not_ours",
        body.as_bytes(),
        chrono::Utc::now().timestamp(),
    ));
    let tampered = signed(&body.replace("succeeded", "payment_failed"));
    for (what, signature) in [
        ("stale", stale),
        ("2^63 s ago", ancient),
        ("forged", forged),
        ("tampered", tampered),
        ("missing", None),
    ] {
        let response = deliver(&app, &body, signature).await;
        let problem = assert_problem(response, StatusCode::BAD_REQUEST, "invalid_signature").await;
        assert!(problem["detail"].is_string(), "{what}");
    }
    assert_eq!(
        order_of(&app, &b, id).await["status"],
        "pending_payment",
        "nothing changed"
    );
    // After all that, the genuine event still applies: the refused ones were not recorded.
    assert_eq!(
        deliver(&app, &body, signed(&body))
            .await
            .json::<Value>()
            .await
            .unwrap()["outcome"],
        "paid"
    );

    let unknown = json!({"id": "evt_unknown", "type": "payment_intent.succeeded", "data": {"object": {
        "id": "pi_nobody", "amount_received": 100, "currency": "usd",
        "metadata": {"order_id": uuid::Uuid::now_v7().to_string()}}}});
    assert_eq!(outcome(&app, &unknown).await, "ignored");
    // Stripe's objects may carry `metadata: null`, or no id: acknowledged, not refused
    // (a refused delivery is retried for days).
    for (n, object) in [
        json!({"id": "ch_1", "metadata": null}),
        json!({"available": []}),
        json!({"id": "cs_unknown", "payment_status": "paid", "metadata": null, "payment_intent": null}),
    ]
    .into_iter()
    .enumerate()
    {
        for kind in ["charge.updated", "balance.available", "checkout.session.completed"] {
            let event = json!({"id": format!("evt_x_{n}_{kind}"), "type": kind, "data": {"object": object}});
            assert_eq!(outcome(&app, &event).await, "ignored", "{event}");
        }
    }
    let huge = "x".repeat(70_000);
    let too_large = deliver(&app, &huge, signed(&huge)).await;
    assert_problem(
        too_large,
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
    )
    .await;
    let nowhere = app
        .client
        .post(app.url("/v1/payments/webhooks/paypal"))
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_problem(nowhere, StatusCode::NOT_FOUND, "not_found").await;
}

/// Stripe keeps the answer to a key for 24 h, failures included: after a Stripe 5xx the
/// retry reaches Stripe under a new key (the order and our own key stay the same), and a
/// 409 (the key in use by a concurrent request) is retried in place.
async fn a_failing_provider_leaves_a_consistent_order_and_a_retry_resumes(backend: Backend) {
    let (app, fake) = stripe_app(backend).await;
    let b = buyer(&app).await;
    fake.state.lock().unwrap().fail_next = 1;
    let refused = place(&app, &b, "alipay", "flaky").await;
    assert_eq!(refused.headers()["retry-after"], "5");
    let problem = assert_problem(
        refused,
        StatusCode::SERVICE_UNAVAILABLE,
        "payment_provider_unavailable",
    )
    .await;
    assert!(problem["detail"].as_str().unwrap().contains("retry"));
    assert!(
        !problem["detail"].as_str().unwrap().contains("127.0.0.1"),
        "the provider's address is configuration, not an answer: {problem}"
    );
    let orders: Value = app
        .get_with("/v1/orders", &b.token)
        .await
        .json()
        .await
        .unwrap();
    let pending = &orders["data"][0];
    assert_eq!(
        pending["status"], "pending_payment",
        "the order exists, unpaid, with no payment at the provider"
    );
    assert_eq!(pending["payment"]["next_action"], Value::Null);

    fake.state.lock().unwrap().slow = true;
    let timed_out = place(&app, &b, "alipay", "flaky").await;
    assert_problem(
        timed_out,
        StatusCode::SERVICE_UNAVAILABLE,
        "payment_provider_unavailable",
    )
    .await;

    fake.state.lock().unwrap().slow = false;
    let resumed = place(&app, &b, "alipay", "flaky").await;
    assert_eq!(resumed.status(), StatusCode::CREATED);
    let resumed: Value = resumed.json().await.unwrap();
    assert_eq!(
        resumed["id"], pending["id"],
        "the retry resumed the same order"
    );
    assert_eq!(resumed["payment"]["next_action"]["type"], "redirect_to_url");
    let orders: Value = app
        .get_with("/v1/orders", &b.token)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        orders["data"].as_array().unwrap().len(),
        1,
        "one order, however many attempts"
    );
    let id = pending["id"].as_str().unwrap();
    let keys: Vec<String> = fake
        .requests()
        .iter()
        .map(|r| r.idempotency_key.clone())
        .collect();
    assert_eq!(
        keys,
        [0, 1, 1].map(|n| format!("simrenew-order-{id}-create-{n}")),
        "a new Stripe key after Stripe answered a failure (it would replay the 500), \
         the same one after no answer (the payment may exist)"
    );
    let replay = place(&app, &b, "alipay", "flaky").await;
    assert_eq!(replay.headers()["idempotent-replayed"], "true");

    // 409: Stripe's "key in use by a concurrent request"; retried as is, and it works.
    fake.state.lock().unwrap().in_use_next = 1;
    let second = placed(&app, &b, "wechat_pay", "busy").await;
    let second_key = format!("simrenew-order-{}-create-0", second["id"].as_str().unwrap());
    let tries = fake
        .requests()
        .iter()
        .filter(|r| r.idempotency_key == second_key)
        .count();
    assert_eq!(tries, 2, "the 409 was retried under the same key");
}

/// A success that does not match the order (another payment, amount or currency) pays
/// nothing: it is written on the order and the money goes back.
async fn a_payment_that_does_not_match_its_order_pays_nothing_and_goes_back(backend: Backend) {
    let (app, fake) = stripe_app(backend).await;
    let b = buyer(&app).await;
    let order = placed(&app, &b, "alipay", "mismatch").await;
    let id = order["id"].as_str().unwrap();
    let intent = intent_of(&fake, id);
    let cases = [
        ("another intent, 1 USD", "pi_someone_else", 100, "usd"),
        ("the right intent, 1 USD", intent.as_str(), 100, "usd"),
        ("the right intent, too little", intent.as_str(), 5800, "cny"),
    ];
    for (n, (what, paid_intent, amount, currency)) in cases.into_iter().enumerate() {
        let event = json!({"id": format!("evt_mismatch_{n}"), "type": "payment_intent.succeeded",
            "data": {"object": {"id": paid_intent, "amount_received": amount,
                "currency": currency, "metadata": {"order_id": id}}}});
        assert_eq!(outcome(&app, &event).await, "mismatch", "{what}");
        let still = order_of(&app, &b, id).await;
        assert_eq!(still["status"], "pending_payment", "{what}");
        assert_eq!(still["receipt_number"], Value::Null, "{what}");
        assert!(
            still["payment"]["issue"]
                .as_str()
                .unwrap()
                .contains("refunded"),
            "{what}: {still}"
        );
    }
    let refunds = refunds_of(&app, &b, id).await;
    assert_eq!(refunds.len(), 3, "each payment that came goes back");
    assert_eq!(
        (
            refunds[0]["amount"].as_i64(),
            refunds[0]["currency"].as_str()
        ),
        (Some(100), Some("USD"))
    );
    let still = order_of(&app, &b, id).await;
    assert_eq!(
        (still["payment"]["status"].as_str(), &still["refund"]),
        (Some("pending"), &Value::Null),
        "refunds of payments that were not the order's are not the order's refunds"
    );
    let refunded_intents: Vec<String> = fake
        .requests()
        .iter()
        .filter(|r| r.path == "/v1/refunds")
        .filter_map(|r| r.field("payment_intent"))
        .collect();
    assert_eq!(
        refunded_intents,
        ["pi_someone_else", intent.as_str(), intent.as_str()]
    );
    // The payment made for the order still pays it.
    let right = fake.pay_intent(&intent, "evt_right");
    assert_eq!(outcome(&app, &right).await, "paid");
}

/// An order that ends unpaid closes its payment at Stripe (the session expired, the
/// intent cancelled), so that a late payer is not charged; one that was paid at that
/// very moment is refunded when its success arrives.
async fn an_order_that_ends_unpaid_closes_its_provider_payment(backend: Backend) {
    let (app, fake) = stripe_app(backend).await;
    let b = buyer(&app).await;
    let card = placed(&app, &b, "card", "close-card").await;
    let alipay = placed(&app, &b, "alipay", "close-alipay").await;
    let raced = placed(&app, &b, "wechat_pay", "close-raced").await;
    let cancel_me = placed(&app, &b, "alipay", "close-cancel").await;
    let (card_id, alipay_id, raced_id) = (
        card["id"].as_str().unwrap(),
        alipay["id"].as_str().unwrap(),
        raced["id"].as_str().unwrap(),
    );
    let session = session_of(&fake, card_id);
    // The payer of one order pays just as it expires; Stripe's event is still on its way.
    let raced_intent = intent_of(&fake, raced_id);
    let late_success = fake.pay_intent(&raced_intent, "evt_late");

    let cancelled: Value = app
        .post_json(
            &format!("/v1/orders/{}/cancel", cancel_me["id"].as_str().unwrap()),
            &b.token,
            &json!({}),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(cancelled["status"], "cancelled");
    let cancel_intent = intent_of(&fake, cancel_me["id"].as_str().unwrap());
    assert!(fake
        .requests()
        .iter()
        .any(|r| r.path == format!("/v1/payment_intents/{cancel_intent}/cancel")));

    app.clock.advance(chrono::TimeDelta::minutes(31));
    let expired = simrenew::fulfilment::settlement::expire_unpaid(
        &app.store,
        &app.payments,
        &app.clock,
        Duration::from_secs(30 * 60),
    )
    .await
    .unwrap();
    assert_eq!(expired, 3);
    let paths: Vec<String> = fake.requests().iter().map(|r| r.path.clone()).collect();
    assert!(
        paths.contains(&format!("/v1/checkout/sessions/{session}/expire")),
        "{paths:?}"
    );
    let alipay_intent = intent_of(&fake, alipay_id);
    assert!(paths.contains(&format!("/v1/payment_intents/{alipay_intent}/cancel")));
    assert_eq!(
        fake.state.lock().unwrap().sessions[&session]["status"],
        "expired",
        "nobody can pay it now"
    );
    // Stripe would not cancel the intent that was paid; its success is refunded.
    assert_eq!(outcome(&app, &late_success).await, "refund_owed");
    let raced_now = order_of(&app, &b, raced_id).await;
    assert_eq!(raced_now["status"], "expired");
    assert_eq!(raced_now["payment"]["status"], "refunded");
    assert_eq!(
        refunds_of(&app, &b, raced_id).await[0]["status"],
        "succeeded"
    );
}

/// Refunds end in a final state: refused by Stripe (failed, with its reason, not
/// retried); Stripe unreachable (retried on a schedule, a new key each time, then failed
/// after the last attempt); outside the method's refund window (failed without asking);
/// made in Stripe's dashboard (recorded from the events, partial ones too).
async fn refunds_are_tracked_to_a_final_state(backend: Backend) {
    let (app, fake) = stripe_app(backend).await;
    let b = buyer(&app).await;
    let mut paid = Vec::new();
    for n in 0..4 {
        let order = placed(&app, &b, "alipay", &format!("refund-{n}")).await;
        let id = order["id"].as_str().unwrap().to_owned();
        let event = fake.pay_intent(&intent_of(&fake, &id), &format!("evt_pay_{n}"));
        assert_eq!(outcome(&app, &event).await, "paid");
        paid.push(id);
    }
    let cancel = |id: String| {
        let app = &app;
        let token = b.token.clone();
        async move {
            let response = app
                .post_json(&format!("/v1/orders/{id}/cancel"), &token, &json!({}))
                .await;
            assert_eq!(response.status(), StatusCode::OK);
        }
    };
    let sweep =
        || simrenew::fulfilment::refunds::refunds_due(&app.store, &app.payments, &app.clock);

    // Refused by Stripe: final at once.
    fake.state.lock().unwrap().refuse_refunds = Some("This charge is too old to be refunded.");
    cancel(paid[0].clone()).await;
    let refused = refunds_of(&app, &b, &paid[0]).await;
    assert_eq!(refused[0]["status"], "failed");
    assert!(refused[0]["failure_reason"]
        .as_str()
        .unwrap()
        .contains("too old"));
    assert_eq!(
        order_of(&app, &b, &paid[0]).await["payment"]["status"],
        "succeeded"
    );
    fake.state.lock().unwrap().refuse_refunds = None;

    // Stripe down: retried on the schedule, each time under a new key, then final.
    fake.state.lock().unwrap().fail_next = 100;
    cancel(paid[1].clone()).await;
    let first = refunds_of(&app, &b, &paid[1]).await;
    assert_eq!(first[0]["status"], "requested");
    for _ in 0..10 {
        app.clock.advance(chrono::TimeDelta::hours(7));
        sweep().await.unwrap();
    }
    let gave_up = refunds_of(&app, &b, &paid[1]).await;
    assert_eq!(gave_up[0]["status"], "failed");
    assert!(
        gave_up[0]["failure_reason"]
            .as_str()
            .unwrap()
            .contains("6 attempts"),
        "{gave_up:?}"
    );
    let refund_id = gave_up[0]["id"].as_str().unwrap();
    let keys: Vec<String> = fake
        .requests()
        .iter()
        .filter(|r| r.path == "/v1/refunds")
        .map(|r| r.idempotency_key.clone())
        .filter(|k| k.contains(refund_id))
        .collect();
    assert_eq!(
        keys,
        (0..6)
            .map(|n| format!("simrenew-refund-{refund_id}-{n}"))
            .collect::<Vec<_>>()
    );
    fake.state.lock().unwrap().fail_next = 0;

    // A partial refund made in Stripe's dashboard is recorded from its event.
    let intent = intent_of(&fake, &paid[3]);
    let dashboard = json!({"id": "re_dashboard_1", "object": "refund", "status": "succeeded",
        "amount": 2000, "payment_intent": intent, "metadata": {}});
    assert_eq!(
        outcome(
            &app,
            &refund_event("evt_dash", "refund.created", &dashboard)
        )
        .await,
        "refund"
    );
    let partly = order_of(&app, &b, &paid[3]).await;
    assert_eq!(partly["refund"]["amount"], 2000);
    assert_eq!(partly["payment"]["status"], "succeeded", "partly refunded");
    let listed = refunds_of(&app, &b, &paid[3]).await;
    assert_eq!(
        (listed[0]["origin"].as_str(), listed[0]["status"].as_str()),
        (Some("provider"), Some("succeeded"))
    );
    // The same refund reported again (charge.refund.updated) changes nothing.
    assert_eq!(
        outcome(
            &app,
            &refund_event("evt_dash_2", "charge.refund.updated", &dashboard)
        )
        .await,
        "refund"
    );
    assert_eq!(refunds_of(&app, &b, &paid[3]).await.len(), 1);
    assert_eq!(order_of(&app, &b, &paid[3]).await["refund"]["amount"], 2000);
    // Cancelling it gives back the rest, not the whole (Stripe would refuse the whole).
    cancel(paid[3].clone()).await;
    let rest = refunds_of(&app, &b, &paid[3]).await;
    assert_eq!(rest.len(), 2);
    assert_eq!(rest[1]["amount"], 5900 - 2000);
    assert_eq!(
        order_of(&app, &b, &paid[3]).await["payment"]["status"],
        "refunded"
    );
    // Alipay refunds stop 90 days after the payment.
    app.clock.advance(chrono::TimeDelta::days(91));
    let asked_before = fake.requests().len();
    cancel(paid[2].clone()).await;
    let too_late = refunds_of(&app, &b, &paid[2]).await;
    assert_eq!(too_late[0]["status"], "failed");
    assert!(too_late[0]["failure_reason"]
        .as_str()
        .unwrap()
        .contains("90 days"));
    assert_eq!(fake.requests().len(), asked_before, "Stripe was not asked");
}

/// A method offered in a currency it does not take here is refused at order time with
/// the reason, not sent to Stripe to be refused there.
async fn a_method_is_refused_in_a_currency_it_does_not_take(backend: Backend) {
    let fake = FakeStripe::start().await;
    let app = TestApp::spawn_configured(backend, |s| {
        with_stripe(s, &fake.url);
        s.payments
            .currencies
            .insert(PaymentMethod::Alipay, vec!["USD".parse().unwrap()]);
    })
    .await;
    let b = buyer(&app).await;
    let problem = assert_problem(
        place(&app, &b, "alipay", "cny-alipay").await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "payment_method_unavailable",
    )
    .await;
    assert!(
        problem["detail"].as_str().unwrap().contains("CNY"),
        "{problem}"
    );
    assert!(fake.requests().is_empty(), "Stripe was not asked");
    let orders: Value = app
        .get_with("/v1/orders", &b.token)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(orders["data"], json!([]), "nothing written");
    assert_eq!(
        place(&app, &b, "wechat_pay", "cny-wechat").await.status(),
        StatusCode::CREATED,
        "WeChat Pay takes CNY"
    );
}

/// The events the settlement needs are named, and an account that does not send them is
/// found out at start (the check `serve` runs and logs).
async fn the_webhook_events_to_enable_are_checked(backend: Backend) {
    let (app, fake) = stripe_app(backend).await;
    let Some(simrenew::payments::Provider::Stripe(stripe)) = app.payments.by_name("stripe") else {
        panic!("Stripe is configured");
    };
    assert_eq!(
        stripe.missing_webhook_events().await.unwrap(),
        simrenew::payments::stripe::WEBHOOK_EVENTS,
        "no endpoint at all"
    );
    fake.state.lock().unwrap().webhook_endpoints = vec![vec![
        "payment_intent.succeeded",
        "checkout.session.completed",
    ]];
    let missing = stripe.missing_webhook_events().await.unwrap();
    assert!(missing.contains(&"refund.updated") && !missing.contains(&"payment_intent.succeeded"));
    fake.state.lock().unwrap().webhook_endpoints = vec![vec!["*"]];
    assert!(stripe.missing_webhook_events().await.unwrap().is_empty());
}

/// The kill -9 drill: a process dies while it holds an order's `Idempotency-Key` (in the
/// provider call). A retry with the same key on another process is told the truth
/// (`409` with a `Retry-After` within the claim's short lease) and, obeying it, gets its
/// order within 5 s of the crash: one order, one payment.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crashed_holder_of_a_key_delays_a_retry_by_seconds_only() {
    use crate::helpers::{cli, cli_create_partner, fetch_token, Process};
    let fake = FakeStripe::start().await;
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("drill.db").display());
    let acme = cli_create_partner(&url, "Acme", "catalog:read orders:write orders:read");
    cli(
        &url,
        &[
            "plans",
            "import",
            concat!(env!("CARGO_MANIFEST_DIR"), "/src/catalog/demo_plans.json"),
        ],
    );
    let card = iccid(51, 1);
    let csv = dir.path().join("cards.csv");
    std::fs::write(&csv, format!("iccid,card_type,msisdn,eid\n{card},esim,,\n")).unwrap();
    cli(
        &url,
        &[
            "cards",
            "import",
            csv.to_str().unwrap(),
            "--partner",
            &acme.id,
        ],
    );
    let env = [
        ("SIMRENEW_PAYMENT_METHODS", "alipay=stripe"),
        ("STRIPE_SECRET_KEY", "sk_test_drill"),
        ("STRIPE_WEBHOOK_SECRET", WEBHOOK_SECRET),
        ("SIMRENEW_STRIPE_API_BASE", fake.url.as_str()),
        ("SIMRENEW_PAYMENT_TIMEOUT_MS", "10000"),
    ];
    let first = Process::serve(&url, &env).await;
    let client = crate::helpers::http_client();
    let token = fetch_token(
        &client,
        &first.base_url,
        &acme.client_id,
        &acme.client_secret,
    )
    .await;
    let plan = {
        let plans: Value = client
            .get(format!(
                "{}/v1/plans?card_type=esim&currency=CNY",
                first.base_url
            ))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        plans["data"][0]["id"].as_str().unwrap().to_owned()
    };
    let body =
        json!({"iccid": card, "plan_id": plan, "currency": "CNY", "payment_method": "alipay"});
    let place_at = |base: String| {
        let (client, token, body) = (client.clone(), token.clone(), body.clone());
        async move {
            client
                .post(format!("{base}/v1/orders"))
                .bearer_auth(token)
                .header("Idempotency-Key", "drill-1")
                .json(&body)
                .send()
                .await
        }
    };
    // The first process takes the key and hangs in the provider call; then it is killed.
    fake.state.lock().unwrap().slow = true;
    let in_flight = tokio::spawn(place_at(first.base_url.clone()));
    while fake.requests().is_empty() {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    drop(first);
    let crashed_at = std::time::Instant::now();
    assert!(
        in_flight.await.unwrap().is_err(),
        "the connection died with the process"
    );
    fake.state.lock().unwrap().slow = false;

    let second = Process::serve(&url, &env).await;
    let order = loop {
        let response = place_at(second.base_url.clone()).await.unwrap();
        match response.status() {
            StatusCode::CREATED => break response.json::<Value>().await.unwrap(),
            StatusCode::CONFLICT => {
                let wait: u64 = response.headers()["retry-after"]
                    .to_str()
                    .unwrap()
                    .parse()
                    .unwrap();
                assert!((1..=3).contains(&wait), "Retry-After {wait}");
                tokio::time::sleep(Duration::from_secs(wait)).await;
            }
            other => panic!("unexpected {other}"),
        }
        assert!(
            crashed_at.elapsed() < Duration::from_secs(10),
            "still waiting"
        );
    };
    let waited = crashed_at.elapsed();
    println!("kill -9 drill: the retry got its order {waited:?} after the crash");
    assert!(waited < Duration::from_secs(5), "waited {waited:?}");
    assert_eq!(order["status"], "pending_payment");
    let orders: Value = client
        .get(format!("{}/v1/orders", second.base_url))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(orders["data"].as_array().unwrap().len(), 1, "one order");
}

/// A provider that cannot be reached is a 503 that says so, without the address or the
/// transport's error text (configuration, logged for operators only).
async fn an_unreachable_provider_is_not_described_to_clients(backend: Backend) {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let app = TestApp::spawn_configured(backend, |s| with_stripe(s, &address)).await;
    let b = buyer(&app).await;
    let problem = assert_problem(
        place(&app, &b, "alipay", "unreachable").await,
        StatusCode::SERVICE_UNAVAILABLE,
        "payment_provider_unavailable",
    )
    .await;
    let detail = problem["detail"].as_str().unwrap();
    assert!(
        !detail.contains("127.0.0.1") && !detail.contains("http"),
        "{detail}"
    );
    assert!(detail.contains("could not be reached"), "{detail}");
    assert_eq!(problem["retryable"], true);
}

/// Stripe may report our refund (its metadata names it) before our request for it comes
/// back, or while we still think it is due: it is the same refund, recorded once, and
/// not asked for again.
async fn a_refund_reported_before_its_request_returns_is_recorded_once(backend: Backend) {
    let (app, fake) = stripe_app(backend).await;
    let b = buyer(&app).await;
    let order = placed(&app, &b, "alipay", "early-event").await;
    let id = order["id"].as_str().unwrap().to_owned();
    let intent = intent_of(&fake, &id);
    assert_eq!(
        outcome(&app, &fake.pay_intent(&intent, "evt_p")).await,
        "paid"
    );
    fake.state.lock().unwrap().fail_next = 1;
    let cancelled = app
        .post_json(&format!("/v1/orders/{id}/cancel"), &b.token, &json!({}))
        .await;
    assert_eq!(cancelled.status(), StatusCode::OK);
    let ours = refunds_of(&app, &b, &id).await;
    assert_eq!(ours[0]["status"], "requested");
    let our_id = ours[0]["id"].as_str().unwrap();
    let reported = json!({"id": "re_early", "object": "refund", "status": "succeeded",
        "amount": 5900, "payment_intent": intent, "metadata": {"refund_id": our_id}});
    assert_eq!(
        outcome(
            &app,
            &refund_event("evt_early", "refund.updated", &reported)
        )
        .await,
        "refund"
    );
    let asked = fake.requests().len();
    app.clock.advance(chrono::TimeDelta::hours(1));
    simrenew::fulfilment::refunds::refunds_due(&app.store, &app.payments, &app.clock)
        .await
        .unwrap();
    assert_eq!(fake.requests().len(), asked, "not asked for again");
    let listed = refunds_of(&app, &b, &id).await;
    assert_eq!(listed.len(), 1, "one refund: {listed:?}");
    assert_eq!(
        (
            listed[0]["status"].as_str(),
            listed[0]["provider_refund_id"].as_str()
        ),
        (Some("succeeded"), Some("re_early"))
    );
    assert_eq!(
        order_of(&app, &b, &id).await["payment"]["status"],
        "refunded"
    );
}

/// A paid order whose payment went back (a refund made in Stripe's dashboard) cannot
/// take effect any more: its renewal is not given away.
async fn a_refunded_order_cannot_take_effect(backend: Backend) {
    let (app, fake) = stripe_app(backend).await;
    let b = buyer(&app).await;
    let order = placed(&app, &b, "wechat_pay", "refunded-then-confirmed").await;
    let id = order["id"].as_str().unwrap().to_owned();
    let intent = intent_of(&fake, &id);
    assert_eq!(
        outcome(&app, &fake.pay_intent(&intent, "evt_pw")).await,
        "paid"
    );
    let dashboard = json!({"id": "re_full", "object": "refund", "status": "succeeded",
        "amount": 5900, "payment_intent": intent, "metadata": {}});
    assert_eq!(
        outcome(
            &app,
            &refund_event("evt_full", "refund.created", &dashboard)
        )
        .await,
        "refund"
    );
    assert_eq!(
        order_of(&app, &b, &id).await["payment"]["status"],
        "refunded"
    );
    assert_problem(
        app.post_json(
            &format!("/v1/orders/{id}/activation/confirm"),
            &b.token,
            &json!({}),
        )
        .await,
        StatusCode::CONFLICT,
        "invalid_state_transition",
    )
    .await;
}
