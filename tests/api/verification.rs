//! Subscriber verification: a new eSIM code is withheld until the subscriber confirms
//! an SMS code; wrong, expired and locked codes, the send limits, and each SMS provider
//! against its local fake, failures included.

use chrono::{DateTime, TimeDelta, Utc};
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::fake_sms::{self, FakeSms};
use crate::helpers::{assert_problem, iccid, plan_id, Backend, TestApp};
use simrenew::auth::scopes::Scope;
use simrenew::config::{parse_sms_routes, AliyunSmsConfig, Settings, TwilioConfig};

on_both_backends!(
    backend:
    the_code_is_withheld_until_the_subscriber_confirms_an_sms_code,
    wrong_expired_and_locked_codes_and_the_send_limits,
    each_provider_is_called_as_its_api_says_and_its_refusals_are_told,
    verification_is_on_by_default_and_partners_and_operators_can_turn_it_off,
);

const CN: &str = "+8613800138000";
const US: &str = "+14155550100";

fn sandbox(settings: &mut Settings) {
    settings.sms.routes = parse_sms_routes("default=sandbox").unwrap();
}

struct Shop {
    partner: String,
    token: String,
    admin: String,
    esim: String,
    plan: String,
}

/// A partner that verifies subscribers, with an eSIM and CNY 1000.00.
async fn shop(app: &TestApp, n: u64) -> Shop {
    app.import_demo_plans().await;
    let esim = iccid(93, n);
    let scopes = [
        Scope::OrdersRead,
        Scope::OrdersWrite,
        Scope::CardsRead,
        Scope::Webhooks,
    ];
    let cards = json!([{"iccid": esim, "card_type": "esim"}]);
    let stocked = app.stocked_partner("Acme", &scopes, cards, 100_000).await;
    app.sql(&format!(
        "UPDATE partners SET verify_subscriber_before_release = true WHERE id = '{}'",
        stocked.partner.id
    ));
    Shop {
        partner: stocked.partner.id,
        token: stocked.token,
        admin: stocked.admin,
        esim,
        plan: plan_id(&app.store, "JP-ESIM-M-5G").await,
    }
}

async fn order(app: &TestApp, shop: &Shop) -> String {
    let order = app.wallet_order(&shop.token, &shop.esim, &shop.plan).await;
    order["id"].as_str().unwrap().to_owned()
}

async fn activation(app: &TestApp, shop: &Shop, order_id: &str) -> Value {
    let response = app
        .get_with(&format!("/v1/orders/{order_id}/activation"), &shop.token)
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    response.json().await.unwrap()
}

async fn send(app: &TestApp, shop: &Shop, order_id: &str, msisdn: &str) -> reqwest::Response {
    app.post_json(
        &format!("/v1/orders/{order_id}/activation/verification"),
        &shop.token,
        &json!({ "msisdn": msisdn }),
    )
    .await
}

async fn check(app: &TestApp, shop: &Shop, order_id: &str, code: &str) -> reqwest::Response {
    app.post_json(
        &format!("/v1/orders/{order_id}/activation/verification/check"),
        &shop.token,
        &json!({ "code": code }),
    )
    .await
}

async fn sandbox_code(app: &TestApp, shop: &Shop, msisdn: &str) -> String {
    let response = app
        .get_with(
            &format!("/v1/sandbox/sms?msisdn={}", msisdn.replace('+', "%2B")),
            &shop.token,
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let message: Value = response.json().await.unwrap();
    message["code"].as_str().unwrap().to_owned()
}

/// A 6-digit code that is not `code`.
fn other_than(code: &str) -> String {
    let n: u32 = code.parse().unwrap();
    format!("{:06}", (n + 1) % 1_000_000)
}

fn instant(value: &Value) -> DateTime<Utc> {
    value.as_str().unwrap().parse().unwrap()
}

async fn the_code_is_withheld_until_the_subscriber_confirms_an_sms_code(backend: Backend) {
    let app = TestApp::spawn_configured(backend, sandbox).await;
    let shop = shop(&app, 1).await;
    let order_id = order(&app, &shop).await;
    let withheld = activation(&app, &shop, &order_id).await;
    assert_eq!(withheld["status"], "verification_required");
    for hidden in [
        "lpa_activation_code",
        "smdp_address",
        "matching_id",
        "apple_install_url",
        "qr_code_svg_url",
        "qr_code_png_url",
    ] {
        assert_eq!(withheld[hidden], Value::Null, "{hidden}");
    }
    let qr = app
        .get_with(
            &format!("/v1/orders/{order_id}/activation/qr.png"),
            &shop.token,
        )
        .await;
    assert_problem(qr, StatusCode::CONFLICT, "verification_required").await;
    let confirm = app
        .post_json(
            &format!("/v1/orders/{order_id}/activation/confirm"),
            &shop.token,
            &json!({}),
        )
        .await;
    assert_problem(confirm, StatusCode::CONFLICT, "verification_required").await;

    // The SM-DP+ reports the profile prepared: nothing of it names the withheld code.
    let matching_id = {
        let id = order_id.clone();
        app.store
            .run(move |conn| {
                simrenew::activation::store::find(conn, &id)
                    .map_err(simrenew::error::ApiError::from)
            })
            .await
            .unwrap()
            .unwrap()
            .matching_id
            .unwrap()
    };
    let network = app.network_token().await;
    let reported = app
        .post_json(
            "/v1/network/profile-events",
            &network,
            &json!({"events": [{"id": "rel-1", "iccid": shop.esim, "matching_id": matching_id,
                "state": "released", "occurred_at": app.clock.now()}]}),
        )
        .await;
    assert_eq!(reported.status(), StatusCode::OK);
    let still = activation(&app, &shop, &order_id).await;
    assert_eq!(still["profile_history"], json!([]));
    assert!(!still.to_string().contains(&matching_id));
    let feed: Value = app
        .get_with("/v1/events?type=profile.state_changed", &shop.token)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(feed["data"].as_array().unwrap().len(), 1);
    assert!(!feed.to_string().contains(&matching_id), "{feed}");

    let bad_number = send(&app, &shop, &order_id, "13800138000").await;
    assert_problem(
        bad_number,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    )
    .await;
    let sent = send(&app, &shop, &order_id, CN).await;
    assert_eq!(sent.status(), StatusCode::ACCEPTED);
    let sent: Value = sent.json().await.unwrap();
    let now = app.clock.now();
    let expires = instant(&sent["expires_at"]) - now;
    assert!(expires > TimeDelta::minutes(9) && expires <= TimeDelta::minutes(10));
    let resend = instant(&sent["resend_after"]) - now;
    assert!(resend > TimeDelta::seconds(50) && resend <= TimeDelta::seconds(60));
    let code = sandbox_code(&app, &shop, CN).await;
    assert_eq!(code.len(), 6);

    let wrong = check(&app, &shop, &order_id, &other_than(&code)).await;
    let problem = assert_problem(
        wrong,
        StatusCode::UNPROCESSABLE_ENTITY,
        "verification_code_invalid",
    )
    .await;
    assert_eq!(problem["attempts_left"], 4);
    assert!(
        !problem.to_string().contains(&code),
        "the code is in no answer"
    );
    assert_eq!(
        activation(&app, &shop, &order_id).await["lpa_activation_code"],
        Value::Null
    );

    let released = check(&app, &shop, &order_id, &code).await;
    assert_eq!(released.status(), StatusCode::OK);
    let released: Value = released.json().await.unwrap();
    assert_eq!(released["status"], "pending");
    assert!(released["lpa_activation_code"]
        .as_str()
        .unwrap()
        .starts_with("LPA:1$"));
    assert!(released["verified_at"].is_string());
    assert_eq!(activation(&app, &shop, &order_id).await, released);
    let qr = app
        .get_with(
            &format!("/v1/orders/{order_id}/activation/qr.png"),
            &shop.token,
        )
        .await;
    assert_eq!(qr.status(), StatusCode::OK);
    // Done: nothing more to send or check.
    let again = send(&app, &shop, &order_id, CN).await;
    assert_problem(again, StatusCode::CONFLICT, "invalid_state_transition").await;
    let again = check(&app, &shop, &order_id, &code).await;
    assert_problem(again, StatusCode::CONFLICT, "invalid_state_transition").await;
    // Another partner's order is not found.
    let (_, other) = app.partner_with_token("Other").await;
    let theirs = app
        .post_json(
            &format!("/v1/orders/{order_id}/activation/verification"),
            &other,
            &json!({ "msisdn": CN }),
        )
        .await;
    assert_problem(theirs, StatusCode::NOT_FOUND, "not_found").await;
}

async fn wrong_expired_and_locked_codes_and_the_send_limits(backend: Backend) {
    let app = TestApp::spawn_configured(backend, sandbox).await;
    let shop = shop(&app, 2).await;
    let order_id = order(&app, &shop).await;
    assert_eq!(
        send(&app, &shop, &order_id, CN).await.status(),
        StatusCode::ACCEPTED
    );
    let code = sandbox_code(&app, &shop, CN).await;
    for left in (0..5).rev() {
        let wrong = check(&app, &shop, &order_id, &other_than(&code)).await;
        let problem = assert_problem(
            wrong,
            StatusCode::UNPROCESSABLE_ENTITY,
            "verification_code_invalid",
        )
        .await;
        assert_eq!(problem["attempts_left"], left);
    }
    let locked = check(&app, &shop, &order_id, &code).await;
    assert_problem(
        locked,
        StatusCode::UNPROCESSABLE_ENTITY,
        "verification_code_locked",
    )
    .await;

    // One code a minute per order.
    let soon = send(&app, &shop, &order_id, CN).await;
    let retry_after: i64 = soon.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry_after), "{retry_after}");
    assert_problem(
        soon,
        StatusCode::TOO_MANY_REQUESTS,
        "verification_rate_limited",
    )
    .await;
    app.clock.advance(TimeDelta::seconds(61));
    assert_eq!(
        send(&app, &shop, &order_id, CN).await.status(),
        StatusCode::ACCEPTED
    );
    let fresh = sandbox_code(&app, &shop, CN).await;

    // Ten minutes later it has expired.
    app.clock.advance(TimeDelta::minutes(10));
    let expired = check(&app, &shop, &order_id, &fresh).await;
    assert_problem(
        expired,
        StatusCode::UNPROCESSABLE_ENTITY,
        "verification_code_expired",
    )
    .await;

    // Five an hour per order (two sent so far).
    for _ in 0..3 {
        app.clock.advance(TimeDelta::seconds(61));
        assert_eq!(
            send(&app, &shop, &order_id, CN).await.status(),
            StatusCode::ACCEPTED
        );
    }
    app.clock.advance(TimeDelta::seconds(61));
    let sixth = send(&app, &shop, &order_id, CN).await;
    assert_problem(
        sixth,
        StatusCode::TOO_MANY_REQUESTS,
        "verification_rate_limited",
    )
    .await;

    // Five an hour per number, across orders.
    let second = order(&app, &shop).await;
    let to_same = send(&app, &shop, &second, CN).await;
    assert_problem(
        to_same,
        StatusCode::TOO_MANY_REQUESTS,
        "verification_rate_limited",
    )
    .await;
    assert_eq!(
        send(&app, &shop, &second, "+8613900139000").await.status(),
        StatusCode::ACCEPTED
    );
    // An hour after the first send, the order may send again, and its latest code works.
    app.clock.advance(TimeDelta::minutes(60));
    assert_eq!(
        send(&app, &shop, &order_id, CN).await.status(),
        StatusCode::ACCEPTED
    );
    let last = sandbox_code(&app, &shop, CN).await;
    assert_eq!(
        check(&app, &shop, &order_id, &last).await.status(),
        StatusCode::OK
    );
}

fn providers(fake: &FakeSms, twilio_token: &str) -> impl FnOnce(&mut Settings) + use<> {
    let aliyun = AliyunSmsConfig {
        base_url: format!("{}/aliyun", fake.url),
        access_key_id: fake_sms::ALIYUN_KEY_ID.into(),
        access_key_secret: fake_sms::ALIYUN_SECRET.into(),
        sign_name: "simrenew".into(),
        template_code: "SMS_000000001".into(),
    };
    let twilio = TwilioConfig {
        base_url: format!("{}/twilio", fake.url),
        account_sid: fake_sms::TWILIO_SID.into(),
        auth_token: twilio_token.into(),
        from: "+15005550006".into(),
    };
    move |settings: &mut Settings| {
        settings.sms.routes = parse_sms_routes("+86=aliyun,default=twilio").unwrap();
        settings.sms.aliyun = Some(aliyun);
        settings.sms.twilio = Some(twilio);
    }
}

async fn each_provider_is_called_as_its_api_says_and_its_refusals_are_told(backend: Backend) {
    let fake = FakeSms::start().await;
    let app = TestApp::spawn_configured(backend, providers(&fake, fake_sms::TWILIO_TOKEN)).await;
    let acme = shop(&app, 3).await;

    // +86 through Alibaba Cloud: a signed SendSms with the code in the template.
    let first = order(&app, &acme).await;
    assert_eq!(
        send(&app, &acme, &first, CN).await.status(),
        StatusCode::ACCEPTED
    );
    let sent = fake.aliyun_requests();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0]["PhoneNumbers"], "13800138000");
    assert_eq!(sent[0]["SignName"], "simrenew");
    let param: Value = serde_json::from_str(&sent[0]["TemplateParam"]).unwrap();
    let code = param["code"].as_str().unwrap();
    assert_eq!(
        check(&app, &acme, &first, code).await.status(),
        StatusCode::OK
    );

    // Others through Twilio: Basic auth, E.164, the code in the body.
    let second = order(&app, &acme).await;
    assert_eq!(
        send(&app, &acme, &second, US).await.status(),
        StatusCode::ACCEPTED
    );
    let sent = fake.twilio_requests();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0]["To"], US);
    assert_eq!(sent[0]["From"], "+15005550006");
    let body = &sent[0]["Body"];
    let code = body
        .split(|c: char| !c.is_ascii_digit())
        .find(|run| run.len() == 6)
        .unwrap_or_else(|| panic!("no code in {body}"))
        .to_owned();
    assert_eq!(
        check(&app, &acme, &second, &code).await.status(),
        StatusCode::OK
    );

    // Refusals: a number the provider will not take is told as such; an outage is
    // retryable; neither leaves a code to check.
    let third = order(&app, &acme).await;
    fake.aliyun_answers(&["isv.MOBILE_NUMBER_ILLEGAL"]);
    let refused = send(&app, &acme, &third, "+8613700137000").await;
    assert_problem(refused, StatusCode::BAD_GATEWAY, "sms_provider_rejected").await;
    let nothing = check(&app, &acme, &third, "123456").await;
    assert_problem(nothing, StatusCode::CONFLICT, "invalid_state_transition").await;
    app.clock.advance(TimeDelta::seconds(61));
    fake.aliyun_answers(&["isv.BUSINESS_LIMIT_CONTROL"]);
    let limited = send(&app, &acme, &third, "+8613700137000").await;
    let problem = assert_problem(
        limited,
        StatusCode::SERVICE_UNAVAILABLE,
        "sms_provider_unavailable",
    )
    .await;
    assert_eq!(problem["retryable"], true);
    app.clock.advance(TimeDelta::seconds(61));
    fake.twilio_answers(&[500]);
    let down = send(&app, &acme, &third, "+14155550111").await;
    assert_problem(
        down,
        StatusCode::SERVICE_UNAVAILABLE,
        "sms_provider_unavailable",
    )
    .await;

    // Wrong Twilio credentials: Twilio answers 401, told as unavailable (an operator's
    // fix, not the subscriber's).
    let wrong = TestApp::spawn_configured(backend, providers(&fake, "not-the-token")).await;
    let other = shop(&wrong, 4).await;
    let fourth = order(&wrong, &other).await;
    let unauthorized = send(&wrong, &other, &fourth, US).await;
    assert_problem(
        unauthorized,
        StatusCode::SERVICE_UNAVAILABLE,
        "sms_provider_unavailable",
    )
    .await;
    assert_eq!(
        fake.twilio_requests().len(),
        2,
        "the refused ones were not accepted"
    );

    // No route for a number: nothing is sent.
    let only_china = TestApp::spawn_configured(backend, |settings: &mut Settings| {
        settings.sms.routes = parse_sms_routes("+86=sandbox").unwrap();
    })
    .await;
    let third_shop = shop(&only_china, 5).await;
    let fifth = order(&only_china, &third_shop).await;
    let unrouted = send(&only_china, &third_shop, &fifth, US).await;
    assert_problem(
        unrouted,
        StatusCode::SERVICE_UNAVAILABLE,
        "sms_provider_unavailable",
    )
    .await;
}

async fn verification_is_on_by_default_and_partners_and_operators_can_turn_it_off(
    backend: Backend,
) {
    let app = TestApp::spawn_configured(backend, sandbox).await;
    app.import_demo_plans().await;
    let admin = app.admin_token().await;
    // Made through the operators' API, as a deployment makes partners: on.
    let created: Value = app
        .post_json(
            "/v1/admin/partners",
            &admin,
            &json!({"name": "Fresh", "scopes": ["orders:read", "orders:write"]}),
        )
        .await
        .json()
        .await
        .unwrap();
    let partner_id = created["partner_id"].as_str().unwrap();
    let shown: Value = app
        .get_with(&format!("/v1/admin/partners/{partner_id}"), &admin)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(shown["verify_subscriber_before_release"], true);

    let shop = shop(&app, 6).await;
    let settings: Value = app
        .get_with("/v1/verification-settings", &shop.token)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(settings, json!({"verify_subscriber_before_release": true}));
    let off = app
        .client
        .put(app.url("/v1/verification-settings"))
        .bearer_auth(&shop.token)
        .json(&json!({"verify_subscriber_before_release": false}))
        .send()
        .await
        .unwrap();
    assert_eq!(off.status(), StatusCode::OK);
    let order_id = order(&app, &shop).await;
    let open = activation(&app, &shop, &order_id).await;
    assert_eq!(open["status"], "pending");
    assert!(open["lpa_activation_code"].is_string());

    // An operator turns it back on: the next code is withheld.
    let on = app
        .client
        .put(app.url(&format!(
            "/v1/admin/partners/{}/verification-settings",
            shop.partner
        )))
        .bearer_auth(&shop.admin)
        .json(&json!({"verify_subscriber_before_release": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(on.status(), StatusCode::OK);
    let next = order(&app, &shop).await;
    assert_eq!(
        activation(&app, &shop, &next).await["status"],
        "verification_required"
    );
    let bad = app
        .client
        .put(app.url("/v1/verification-settings"))
        .bearer_auth(&shop.token)
        .json(&json!({"verify_subscriber_before_release": "yes"}))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
}
