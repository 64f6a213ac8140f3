//! External payments: the sandbox and a Stripe adapter against a local fake of Stripe's
//! API, signed webhooks, expiry and refunds.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::{assert_problem, iccid, plan_id, Backend, TestApp};
use simrenew::config::{ProviderKind, Settings};
use simrenew::domain::PaymentMethod;
use simrenew::payments::stripe::{sign, StripeConfig};

const WEBHOOK_SECRET: &str = "whsec_test_simrenew";

// Each scenario starts its own server: the sandbox everywhere, or Stripe at a fake.
on_both_backends!(
    backend:
    sandbox_methods_settle_through_the_same_path,
    expiry_cancel_and_late_success_refund,
    stripe_creates_payments_and_webhooks_settle_them_once,
    forged_stale_and_unknown_webhooks_change_nothing,
    a_failing_provider_leaves_a_consistent_order_and_a_retry_resumes,
);

/// Records what the fake Stripe receives and answers like Stripe's API does.
#[derive(Default)]
struct FakeStripe {
    requests: Vec<(String, String, String, String)>, // path, idempotency key, authorization, form body
    failing: bool,
    slow: bool,
}

async fn fake_handler(
    req: HttpRequest,
    body: web::Bytes,
    state: web::Data<Arc<Mutex<FakeStripe>>>,
) -> HttpResponse {
    let (failing, slow) = {
        let mut fake = state.lock().unwrap();
        let header = |name: &str| {
            req.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned()
        };
        fake.requests.push((
            req.path().to_owned(),
            header("idempotency-key"),
            header("authorization"),
            String::from_utf8_lossy(&body).into_owned(),
        ));
        (fake.failing, fake.slow)
    };
    if slow {
        tokio::time::sleep(Duration::from_secs(3)).await;
    }
    if failing {
        return HttpResponse::InternalServerError().json(json!({"error": {"message": "boom"}}));
    }
    let form: Vec<(String, String)> = serde_urlencoded::from_bytes(&body).unwrap_or_default();
    let field = |name: &str| {
        form.iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    match req.path() {
        "/v1/checkout/sessions" => HttpResponse::Ok().json(json!({
            "id": format!("cs_test_{}", field("client_reference_id")),
            "url": "https://checkout.stripe.test/c/pay",
        })),
        "/v1/payment_intents" => {
            let action = if field("payment_method_types[0]") == "wechat_pay" {
                json!({"type": "wechat_pay_display_qr_code", "wechat_pay_display_qr_code": {"data": "weixin://wxpay/bizpayurl?pr=abc", "image_url_png": "https://qr.stripe.test/abc.png"}})
            } else {
                json!({"type": "alipay_handle_redirect", "alipay_handle_redirect": {"url": "https://alipay.stripe.test/pay"}})
            };
            HttpResponse::Ok().json(json!({"id": format!("pi_test_{}", field("metadata[order_id]")), "next_action": action}))
        }
        "/v1/refunds" => HttpResponse::Ok().json(json!({"id": "re_test_1"})),
        _ => HttpResponse::NotFound().finish(),
    }
}

async fn start_fake() -> (String, Arc<Mutex<FakeStripe>>) {
    let state = Arc::new(Mutex::new(FakeStripe::default()));
    let data = web::Data::new(state.clone());
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = HttpServer::new(move || {
        App::new()
            .app_data(data.clone())
            .default_service(web::to(fake_handler))
    })
    .workers(1)
    .listen(listener)
    .unwrap()
    .run();
    tokio::spawn(server);
    (format!("http://127.0.0.1:{port}"), state)
}

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
    let expire = || simrenew::fulfilment::settlement::expire_unpaid(&app.store, &app.clock, ttl);
    assert_eq!(expire().await.unwrap(), 0, "not before the TTL");
    app.clock.advance(chrono::TimeDelta::minutes(31));
    let expired = expire().await.unwrap();
    assert_eq!(expired, 1);
    assert_eq!(order_of(&app, &b, &first_id).await["status"], "expired");
    assert_eq!(expire().await.unwrap(), 0, "once");
    // The payer pays anyway: the money goes back through the provider, recorded on the order.
    let late: Value = sandbox(&app, &b, &first_id, "succeed").await;
    assert_eq!(late["outcome"], "refund");
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

fn webhook_body(event_id: &str, kind: &str, order_id: &str) -> String {
    json!({"id": event_id, "type": kind, "data": {"object": {"id": format!("pi_test_{order_id}"), "metadata": {"order_id": order_id}}}}).to_string()
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

fn signed(body: &str) -> Option<String> {
    Some(sign(
        WEBHOOK_SECRET,
        body.as_bytes(),
        chrono::Utc::now().timestamp(),
    ))
}

async fn stripe_creates_payments_and_webhooks_settle_them_once(backend: Backend) {
    let (fake_url, fake) = start_fake().await;
    let app = TestApp::spawn_configured(backend, |s| with_stripe(s, &fake_url)).await;
    let b = buyer(&app).await;

    let card: Value = place(&app, &b, "card", "stripe-card")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        card["payment"]["next_action"],
        json!({"type": "redirect_to_url", "url": "https://checkout.stripe.test/c/pay"})
    );
    let wechat: Value = place(&app, &b, "wechat_pay", "stripe-wechat")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(wechat["payment"]["next_action"]["type"], "display_qr_code");
    assert_eq!(
        wechat["payment"]["next_action"]["data"],
        "weixin://wxpay/bizpayurl?pr=abc"
    );
    let alipay: Value = place(&app, &b, "alipay", "stripe-alipay")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        alipay["payment"]["next_action"]["data"],
        "https://alipay.stripe.test/pay"
    );
    {
        let fake = fake.lock().unwrap();
        assert_eq!(fake.requests.len(), 3);
        let (path, key, auth, form) = &fake.requests[0];
        assert_eq!(path, "/v1/checkout/sessions");
        assert_eq!(
            key,
            &format!("simrenew-order-{}-create", card["id"].as_str().unwrap())
        );
        assert!(auth.starts_with("Basic "), "the secret key as Basic user");
        assert!(
            form.contains("line_items%5B0%5D%5Bprice_data%5D%5Bunit_amount%5D=5900"),
            "{form}"
        );
        assert!(
            form.contains("line_items%5B0%5D%5Bprice_data%5D%5Bcurrency%5D=cny"),
            "{form}"
        );
        let (path, _, _, form) = &fake.requests[1];
        assert_eq!(path, "/v1/payment_intents");
        assert!(
            form.contains("payment_method_types%5B0%5D=wechat_pay")
                && form.contains("confirm=true"),
            "{form}"
        );
    }

    let id = wechat["id"].as_str().unwrap();
    let body = webhook_body("evt_1", "payment_intent.succeeded", id);
    let first = deliver(&app, &body, signed(&body)).await;
    assert_eq!(first.status(), StatusCode::OK);
    assert_eq!(first.json::<Value>().await.unwrap()["outcome"], "paid");
    let again: Value = deliver(&app, &body, signed(&body))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(again["outcome"], "duplicate");
    let paid = order_of(&app, &b, id).await;
    assert_eq!(paid["status"], "paid");
    let receipt = paid["receipt_number"].clone();
    // The same success under another event id (a provider retry) changes nothing either.
    let other = webhook_body("evt_2", "payment_intent.succeeded", id);
    assert_eq!(
        deliver(&app, &other, signed(&other))
            .await
            .json::<Value>()
            .await
            .unwrap()["outcome"],
        "no_change"
    );
    // Out of order: a failure after the success.
    let failed = webhook_body("evt_3", "payment_intent.payment_failed", id);
    assert_eq!(
        deliver(&app, &failed, signed(&failed))
            .await
            .json::<Value>()
            .await
            .unwrap()["outcome"],
        "no_change"
    );
    assert_eq!(order_of(&app, &b, id).await["receipt_number"], receipt);

    // Cards (Checkout) and Alipay settle through the same webhook.
    for (n, order) in [&card, &alipay].into_iter().enumerate() {
        let order_id = order["id"].as_str().unwrap();
        let event = webhook_body(
            &format!("evt_other_{n}"),
            "payment_intent.succeeded",
            order_id,
        );
        assert_eq!(
            deliver(&app, &event, signed(&event))
                .await
                .json::<Value>()
                .await
                .unwrap()["outcome"],
            "paid"
        );
        let settled = order_of(&app, &b, order_id).await;
        assert_eq!(
            (
                settled["status"].as_str(),
                settled["payment"]["status"].as_str()
            ),
            (Some("paid"), Some("succeeded"))
        );
        let activation = app
            .get_with(&format!("/v1/orders/{order_id}/activation"), &b.token)
            .await;
        assert_eq!(activation.status(), StatusCode::OK);
    }

    // Cancelling the paid order refunds it through Stripe.
    let cancelled: Value = app
        .post_json(&format!("/v1/orders/{id}/cancel"), &b.token, &json!({}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(cancelled["payment"]["status"], "refunded");
    let fake = fake.lock().unwrap();
    let (path, key, _, form) = fake.requests.last().unwrap();
    assert_eq!(path, "/v1/refunds");
    assert_eq!(key, &format!("simrenew-order-{id}-refund"));
    assert!(
        form.contains(&format!("payment_intent=pi_test_{id}")),
        "{form}"
    );
}

async fn forged_stale_and_unknown_webhooks_change_nothing(backend: Backend) {
    let (fake_url, _fake) = start_fake().await;
    let app = TestApp::spawn_configured(backend, |s| with_stripe(s, &fake_url)).await;
    let b = buyer(&app).await;
    let order: Value = place(&app, &b, "alipay", "forged")
        .await
        .json()
        .await
        .unwrap();
    let id = order["id"].as_str().unwrap();
    let body = webhook_body("evt_forged", "payment_intent.succeeded", id);
    let stale = Some(sign(
        WEBHOOK_SECRET,
        body.as_bytes(),
        chrono::Utc::now().timestamp() - 600,
    ));
    let forged = Some(sign(
        "whsec_not_ours",
        body.as_bytes(),
        chrono::Utc::now().timestamp(),
    ));
    let tampered = signed(&body.replace("succeeded", "payment_failed"));
    for (what, signature) in [
        ("stale", stale),
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

    let unknown = webhook_body(
        "evt_unknown",
        "payment_intent.succeeded",
        &uuid::Uuid::now_v7().to_string(),
    );
    assert_eq!(
        deliver(&app, &unknown, signed(&unknown))
            .await
            .json::<Value>()
            .await
            .unwrap()["outcome"],
        "ignored"
    );
    let other_type =
        json!({"id": "evt_x", "type": "charge.updated", "data": {"object": {"id": "ch_1"}}})
            .to_string();
    assert_eq!(
        deliver(&app, &other_type, signed(&other_type))
            .await
            .json::<Value>()
            .await
            .unwrap()["outcome"],
        "ignored"
    );
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

async fn a_failing_provider_leaves_a_consistent_order_and_a_retry_resumes(backend: Backend) {
    let (fake_url, fake) = start_fake().await;
    let app = TestApp::spawn_configured(backend, |s| with_stripe(s, &fake_url)).await;
    let b = buyer(&app).await;
    fake.lock().unwrap().failing = true;
    let refused = place(&app, &b, "alipay", "flaky").await;
    assert_eq!(refused.headers()["retry-after"], "5");
    let problem = assert_problem(
        refused,
        StatusCode::SERVICE_UNAVAILABLE,
        "payment_provider_unavailable",
    )
    .await;
    assert!(problem["detail"].as_str().unwrap().contains("retry"));
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

    fake.lock().unwrap().failing = false;
    fake.lock().unwrap().slow = true;
    let timed_out = place(&app, &b, "alipay", "flaky").await;
    assert_problem(
        timed_out,
        StatusCode::SERVICE_UNAVAILABLE,
        "payment_provider_unavailable",
    )
    .await;

    fake.lock().unwrap().slow = false;
    let resumed = place(&app, &b, "alipay", "flaky").await;
    assert_eq!(resumed.status(), StatusCode::CREATED);
    let resumed: Value = resumed.json().await.unwrap();
    assert_eq!(
        resumed["id"], pending["id"],
        "the retry resumed the same order"
    );
    assert_eq!(resumed["payment"]["next_action"]["type"], "display_qr_code");
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
    let keys: Vec<String> = fake
        .lock()
        .unwrap()
        .requests
        .iter()
        .map(|r| r.1.clone())
        .collect();
    assert_eq!(keys.len(), 3);
    assert!(
        keys.iter().all(|k| k == &keys[0]),
        "one idempotency key at Stripe for every attempt"
    );
    let replay = place(&app, &b, "alipay", "flaky").await;
    assert_eq!(replay.headers()["idempotent-replayed"], "true");
}
