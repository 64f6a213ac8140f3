//! Webhook endpoints and signed delivery (Standard Webhooks) to a real local receiver.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::{assert_problem, iccid, plan_id, Backend, TestApp};
use crate::receiver::Receiver;
use simrenew::auth::scopes::Scope;
use simrenew::config::Settings;

on_both_backends!(
    backend:
    a_paid_order_is_delivered_signed_and_verifiable,
    a_failing_receiver_gets_the_same_id_until_it_succeeds,
    two_instances_deliver_each_attempt_once,
    a_dead_senders_claim_is_taken_over,
    redirects_are_not_followed,
    an_endpoint_failing_for_five_days_is_disabled_and_its_partner_told,
    a_rotated_secret_signs_beside_the_new_one_for_a_day,
    endpoints_are_managed_privately_and_bad_ones_change_nothing,
    the_ssrf_guard_refuses_internal_targets_by_default,
    thresholds_passed_in_one_batch_are_delivered_once_each,
);

/// Test receivers run on loopback; retries come after a minute (moved by the clock).
fn local(settings: &mut Settings) {
    settings.webhooks.allow_private_targets = true;
    settings.webhooks.retry_delays = vec![Duration::from_secs(60), Duration::from_secs(60)];
}

struct Partner {
    token: String,
    card: String,
    plan: String,
}

async fn partner(app: &TestApp, card: &str) -> Partner {
    app.import_demo_plans().await;
    let scopes = [
        Scope::CatalogRead,
        Scope::OrdersRead,
        Scope::OrdersWrite,
        Scope::Webhooks,
    ];
    let cards = json!([{"iccid": card, "card_type": "fm"}]);
    let stocked = app.stocked_partner("Acme", &scopes, cards, 1_000_000).await;
    Partner {
        token: stocked.token,
        card: card.to_owned(),
        plan: plan_id(&app.store, "CN-FM-M-10G").await,
    }
}

async fn create_endpoint(app: &TestApp, token: &str, body: Value) -> reqwest::Response {
    app.post_json("/v1/webhook-endpoints", token, &body).await
}

/// Registers `url` for every event type; returns (endpoint id, secret).
async fn endpoint(app: &TestApp, token: &str, url: &str) -> (String, String) {
    let created = create_endpoint(app, token, json!({"url": url})).await;
    assert_eq!(created.status(), StatusCode::CREATED);
    let body: Value = created.json().await.unwrap();
    let secret = body["secret"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("whsec_"));
    (body["id"].as_str().unwrap().to_owned(), secret)
}

async fn order(app: &TestApp, p: &Partner) -> Value {
    app.wallet_order(&p.token, &p.card, &p.plan).await
}

fn header<'a>(received: &'a crate::receiver::Received, name: &str) -> &'a str {
    received.headers[name].to_str().unwrap()
}

async fn deliveries(app: &TestApp, token: &str, endpoint_id: &str) -> Value {
    app.get_with(
        &format!("/v1/webhook-endpoints/{endpoint_id}/deliveries"),
        token,
    )
    .await
    .json()
    .await
    .unwrap()
}

/// Waits (polling, at most 15 s) until the endpoint's newest delivery is `status`.
async fn wait_status(app: &TestApp, token: &str, endpoint_id: &str, status: &str) -> Value {
    for _ in 0..300 {
        let page = deliveries(app, token, endpoint_id).await;
        if page["data"][0]["status"] == status {
            return page["data"][0].clone();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the delivery never became {status}");
}

/// Waits (polling, at most 15 s) until the endpoint's newest delivery has `count`
/// attempts recorded (an answer arrives before its outcome is written down).
async fn wait_attempts(app: &TestApp, token: &str, endpoint_id: &str, count: usize) -> Value {
    for _ in 0..300 {
        let page = deliveries(app, token, endpoint_id).await;
        if page["data"][0]["attempts"].as_array().map_or(0, Vec::len) >= count {
            return page["data"][0].clone();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the delivery never had {count} attempts");
}

async fn a_paid_order_is_delivered_signed_and_verifiable(backend: Backend) {
    let app = TestApp::spawn_configured(backend, local).await;
    let receiver = Receiver::start().await;
    let p = partner(&app, &iccid(80, 1)).await;
    let (endpoint_id, secret) = endpoint(&app, &p.token, &receiver.url).await;
    let placed = order(&app, &p).await;
    let received = receiver.wait_for(1).await;
    let delivery = &received[0];
    standardwebhooks::Webhook::new(&secret)
        .unwrap()
        .verify(&delivery.body, &delivery.headers)
        .expect("the standardwebhooks crate verifies the delivery");
    let body: Value = serde_json::from_slice(&delivery.body).unwrap();
    assert_eq!(body["type"], "order.paid");
    assert_eq!(body["data"], placed);
    assert_eq!(header(delivery, "webhook-id"), body["id"].as_str().unwrap());
    assert_eq!(header(delivery, "content-type"), "application/json");
    let feed: Value = app
        .get_with("/v1/events", &p.token)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(feed["data"][0], body, "the delivered event is the feed's");
    let shown = wait_status(&app, &p.token, &endpoint_id, "succeeded").await;
    assert_eq!(shown["event_id"], body["id"]);
    assert_eq!(shown["attempts"][0]["status_code"], 200);
    assert_eq!(shown["next_attempt_at"], Value::Null);
}

async fn a_failing_receiver_gets_the_same_id_until_it_succeeds(backend: Backend) {
    let app = TestApp::spawn_configured(backend, local).await;
    let receiver = Receiver::start().await;
    receiver.answer(&[500, 500]);
    let p = partner(&app, &iccid(80, 2)).await;
    let (endpoint_id, _) = endpoint(&app, &p.token, &receiver.url).await;
    order(&app, &p).await;
    let pending = wait_attempts(&app, &p.token, &endpoint_id, 1).await;
    assert_eq!(pending["status"], "pending");
    assert!(pending["next_attempt_at"].is_string(), "{pending}");
    // Nothing more until the retry is due; then one attempt per due time.
    app.clock.advance(chrono::TimeDelta::seconds(61));
    wait_attempts(&app, &p.token, &endpoint_id, 2).await;
    app.clock.advance(chrono::TimeDelta::seconds(61));
    let received = receiver.wait_for(3).await;
    let ids: Vec<&str> = received.iter().map(|r| header(r, "webhook-id")).collect();
    assert_eq!(ids, [ids[0]; 3], "the same webhook-id on every attempt");
    let shown = wait_status(&app, &p.token, &endpoint_id, "succeeded").await;
    let codes: Vec<&Value> = shown["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| &a["status_code"])
        .collect();
    assert_eq!(codes, [&json!(500), &json!(500), &json!(200)]);
    // Past the last retry a delivery has failed for good; a retry asked for sends it again.
    receiver.answer(&[500, 500, 500]);
    order(&app, &p).await;
    wait_attempts(&app, &p.token, &endpoint_id, 1).await;
    for attempts in [2, 3] {
        app.clock.advance(chrono::TimeDelta::seconds(61));
        wait_attempts(&app, &p.token, &endpoint_id, attempts).await;
    }
    let failed = wait_status(&app, &p.token, &endpoint_id, "failed").await;
    assert_eq!(failed["attempts"].as_array().unwrap().len(), 3);
    let retried = app
        .post_json(
            &format!(
                "/v1/webhook-endpoints/{endpoint_id}/deliveries/{}/retry",
                failed["id"].as_str().unwrap()
            ),
            &p.token,
            &json!({}),
        )
        .await;
    assert_eq!(retried.status(), StatusCode::ACCEPTED);
    receiver.wait_for(7).await;
    wait_status(&app, &p.token, &endpoint_id, "succeeded").await;
}

async fn two_instances_deliver_each_attempt_once(backend: Backend) {
    let app = TestApp::spawn_configured(backend, local).await;
    let mut settings = app.settings();
    local(&mut settings);
    let _sibling = app.spawn_sibling(settings).await;
    let receiver = Receiver::start().await;
    let p = partner(&app, &iccid(80, 3)).await;
    endpoint(&app, &p.token, &receiver.url).await;
    for _ in 0..12 {
        order(&app, &p).await;
    }
    let received = receiver.wait_for(12).await;
    // Both senders keep looking for a while: nothing is sent twice.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let received_later = receiver.requests();
    assert_eq!(received_later.len(), received.len().max(12));
    let mut ids: Vec<&str> = received_later
        .iter()
        .map(|r| header(r, "webhook-id"))
        .collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 12, "twelve events, each delivered once");
    assert_eq!(received_later.len(), 12);
}

async fn a_dead_senders_claim_is_taken_over(backend: Backend) {
    let app = TestApp::spawn_configured(backend, local).await;
    let receiver = Receiver::start().await;
    receiver.answer(&[500]);
    let p = partner(&app, &iccid(80, 4)).await;
    let (endpoint_id, _) = endpoint(&app, &p.token, &receiver.url).await;
    order(&app, &p).await;
    wait_attempts(&app, &p.token, &endpoint_id, 1).await;
    // The retry, due in 60 s, is claimed then by a sender that dies at once: its lease
    // runs until 90 s from now.
    let lease = (app.clock.now() + chrono::TimeDelta::seconds(90))
        .naive_utc()
        .format("%Y-%m-%d %H:%M:%S%.6f");
    app.sql(&format!(
        "UPDATE webhook_deliveries SET lease_until = '{lease}', claim_token = 'dead'"
    ));
    app.clock.advance(chrono::TimeDelta::seconds(61));
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(receiver.requests().len(), 1, "nobody sends a held delivery");
    app.clock.advance(chrono::TimeDelta::seconds(30));
    receiver.wait_for(2).await;
    wait_status(&app, &p.token, &endpoint_id, "succeeded").await;
}

async fn redirects_are_not_followed(backend: Backend) {
    let app = TestApp::spawn_configured(backend, local).await;
    let receiver = Receiver::start().await;
    let elsewhere = Receiver::start().await;
    receiver.redirect_to(&elsewhere.url);
    let p = partner(&app, &iccid(80, 8)).await;
    let (endpoint_id, _) = endpoint(&app, &p.token, &receiver.url).await;
    order(&app, &p).await;
    let pending = wait_attempts(&app, &p.token, &endpoint_id, 1).await;
    assert_eq!(pending["status"], "pending");
    assert_eq!(
        pending["attempts"][0]["status_code"], 302,
        "a redirect is a failure"
    );
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(
        elsewhere.requests().is_empty(),
        "the redirect was not followed"
    );
}

async fn a_rotated_secret_signs_beside_the_new_one_for_a_day(backend: Backend) {
    let app = TestApp::spawn_configured(backend, local).await;
    let receiver = Receiver::start().await;
    let p = partner(&app, &iccid(80, 5)).await;
    let (endpoint_id, old) = endpoint(&app, &p.token, &receiver.url).await;
    let rotated: Value = app
        .post_json(
            &format!("/v1/webhook-endpoints/{endpoint_id}/rotate-secret"),
            &p.token,
            &json!({}),
        )
        .await
        .json()
        .await
        .unwrap();
    let new = rotated["secret"].as_str().unwrap().to_owned();
    assert_ne!(new, old);
    order(&app, &p).await;
    let first = receiver.wait_for(1).await.remove(0);
    assert_eq!(header(&first, "webhook-signature").split(' ').count(), 2);
    for secret in [&old, &new] {
        standardwebhooks::Webhook::new(secret)
            .unwrap()
            .verify(&first.body, &first.headers)
            .expect("either secret verifies during the overlap");
    }
    // A day later only the new secret signs (the timestamp moved with the clock, so the
    // signature is compared rather than verified against the wall clock).
    app.clock.advance(chrono::TimeDelta::hours(25));
    let test = app
        .post_json(
            &format!("/v1/webhook-endpoints/{endpoint_id}/test"),
            &p.token,
            &json!({}),
        )
        .await;
    assert_eq!(test.status(), StatusCode::ACCEPTED);
    let second = receiver.wait_for(2).await.remove(1);
    let body: Value = serde_json::from_slice(&second.body).unwrap();
    assert_eq!(body["type"], "webhook.test");
    let timestamp: i64 = header(&second, "webhook-timestamp").parse().unwrap();
    let expected = standardwebhooks::Webhook::new(&new)
        .unwrap()
        .sign(header(&second, "webhook-id"), timestamp, &second.body)
        .unwrap();
    assert_eq!(header(&second, "webhook-signature"), expected);
}

async fn endpoints_are_managed_privately_and_bad_ones_change_nothing(backend: Backend) {
    let app = TestApp::spawn_configured(backend, local).await;
    let p = partner(&app, &iccid(80, 6)).await;
    let created: Value = create_endpoint(
        &app,
        &p.token,
        json!({"url": "http://127.0.0.1:9/hooks", "event_types": ["order.paid", "order.paid"], "description": "ops"}),
    )
    .await
    .json()
    .await
    .unwrap();
    let id = created["id"].as_str().unwrap();
    assert_eq!(created["event_types"], json!(["order.paid"]));
    assert_eq!(created["status"], "enabled");
    let path = format!("/v1/webhook-endpoints/{id}");
    let patched = app
        .client
        .patch(app.url(&path))
        .bearer_auth(&p.token)
        .json(&json!({"status": "disabled", "event_types": []}))
        .send()
        .await
        .unwrap();
    assert_eq!(patched.status(), StatusCode::OK);
    let shown: Value = app.get_with(&path, &p.token).await.json().await.unwrap();
    assert_eq!(shown["status"], "disabled");
    assert_eq!(shown["event_types"], json!([]));
    assert!(shown.get("secret").is_none(), "the secret is shown once");
    for (body, status, code) in [
        (
            json!({"url": "ftp://x.example/"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        ),
        (
            json!({"url": "http://127.0.0.1:9/", "event_types": ["order.lost"]}),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            json!({"url": "http://127.0.0.1:9/", "colour": "red"}),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
    ] {
        assert_problem(create_endpoint(&app, &p.token, body).await, status, code).await;
    }
    let listed: Value = app
        .get_with("/v1/webhook-endpoints", &p.token)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        listed["data"].as_array().unwrap().len(),
        1,
        "nothing was added"
    );
    // A retried create with its Idempotency-Key answers the first endpoint and secret.
    let create_once = || {
        app.client
            .post(app.url("/v1/webhook-endpoints"))
            .bearer_auth(&p.token)
            .header("Idempotency-Key", "endpoint-1")
            .json(&json!({"url": "http://127.0.0.1:9/second"}))
            .send()
    };
    let first: Value = create_once().await.unwrap().json().await.unwrap();
    let again = create_once().await.unwrap();
    assert_eq!(again.status(), StatusCode::CREATED);
    let again: Value = again.json().await.unwrap();
    assert_eq!(
        (&again["id"], &again["secret"]),
        (&first["id"], &first["secret"])
    );
    let listed: Value = app
        .get_with("/v1/webhook-endpoints", &p.token)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        listed["data"].as_array().unwrap().len(),
        2,
        "one more, not two"
    );
    // Another partner's endpoint is not there for it.
    let other = app.create_partner("Other", &[Scope::Webhooks]).await;
    let other_token = app.token_for(&other).await;
    assert_problem(
        app.get_with(&path, &other_token).await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    let (_, no_scope) = app.partner_with_token("Reader").await;
    assert_problem(
        app.get_with("/v1/webhook-endpoints", &no_scope).await,
        StatusCode::FORBIDDEN,
        "forbidden",
    )
    .await;
    let deleted = app
        .client
        .delete(app.url(&path))
        .bearer_auth(&p.token)
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), StatusCode::NO_CONTENT);
    assert_problem(
        app.get_with(&path, &p.token).await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
}

async fn the_ssrf_guard_refuses_internal_targets_by_default(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let p = partner(&app, &iccid(80, 7)).await;
    for url in [
        "https://127.0.0.1/hooks",
        "http://127.0.0.1/hooks",
        "https://10.1.2.3/hooks",
        "https://192.168.0.10/hooks",
        "https://169.254.169.254/latest/meta-data/",
        "https://[::1]/hooks",
        "https://[fd00:ec2::254]/",
        "https://localhost/hooks",
    ] {
        assert_problem(
            create_endpoint(&app, &p.token, json!({"url": url})).await,
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        )
        .await;
    }
    let listed: Value = app
        .get_with("/v1/webhook-endpoints", &p.token)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(listed["data"], json!([]));
}

async fn an_endpoint_failing_for_five_days_is_disabled_and_its_partner_told(backend: Backend) {
    let app = TestApp::spawn_configured(backend, |settings| {
        settings.webhooks.allow_private_targets = true;
        settings.webhooks.retry_delays = vec![Duration::from_secs(86_400); 6];
    })
    .await;
    let receiver = Receiver::start().await;
    receiver.answer(&[500; 10]);
    let p = partner(&app, &iccid(80, 9)).await;
    let (endpoint_id, _) = endpoint(&app, &p.token, &receiver.url).await;
    let path = format!("/v1/webhook-endpoints/{endpoint_id}");
    order(&app, &p).await;
    wait_attempts(&app, &p.token, &endpoint_id, 1).await;
    // Four more days of failures: still enabled.
    for attempts in 2..=5 {
        app.clock.advance(chrono::TimeDelta::days(1));
        wait_attempts(&app, &p.token, &endpoint_id, attempts).await;
    }
    let shown: Value = app.get_with(&path, &p.token).await.json().await.unwrap();
    assert_eq!(shown["status"], "enabled");
    // The attempt five days into the streak fails too: disabled, and the partner told.
    app.clock.advance(chrono::TimeDelta::days(1));
    wait_attempts(&app, &p.token, &endpoint_id, 6).await;
    let shown: Value = app.get_with(&path, &p.token).await.json().await.unwrap();
    assert_eq!(shown["status"], "disabled");
    let told: Value = app
        .get_with("/v1/events?type=webhook.endpoint_disabled", &p.token)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(told["data"][0]["data"]["id"], endpoint_id.as_str());
    assert_eq!(told["data"][0]["data"]["status"], "disabled");
}

async fn thresholds_passed_in_one_batch_are_delivered_once_each(backend: Backend) {
    let app = TestApp::spawn_configured(backend, local).await;
    let receiver = Receiver::start().await;
    let p = partner(&app, &iccid(80, 9)).await;
    let created = create_endpoint(
        &app,
        &p.token,
        json!({"url": receiver.url, "event_types": ["card.usage_threshold"]}),
    )
    .await;
    assert_eq!(created.status(), StatusCode::CREATED);
    let secret = created.json::<Value>().await.unwrap()["secret"]
        .as_str()
        .unwrap()
        .to_owned();
    let placed = order(&app, &p).await;
    let confirmed = app
        .client
        .post(app.url(&format!(
            "/v1/orders/{}/activation/confirm",
            placed["id"].as_str().unwrap()
        )))
        .bearer_auth(&p.token)
        .send()
        .await
        .unwrap();
    assert_eq!(confirmed.status(), StatusCode::OK);
    // 9.5 GiB of 10 in one record: past 75 % and 90 %.
    let network = app.network_token().await;
    let usage = json!({"records": [{"id": "big", "iccid": p.card, "kind": "data",
        "quantity": 10_200_547_328_i64, "occurred_at": app.clock.now()}]});
    let outcome: Value = app
        .post_json("/v1/network/usage", &network, &usage)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(outcome["accepted"], 1);
    let received = receiver.wait_for(2).await;
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert_eq!(receiver.requests().len(), 2, "once each, nothing else");
    let mut thresholds = Vec::new();
    for delivery in &received {
        standardwebhooks::Webhook::new(&secret)
            .unwrap()
            .verify(&delivery.body, &delivery.headers)
            .expect("verifies");
        let body: Value = serde_json::from_slice(&delivery.body).unwrap();
        assert_eq!(body["type"], "card.usage_threshold");
        assert_eq!(body["data"]["balance"]["iccid"], p.card);
        thresholds.push(body["data"]["threshold_percent"].as_i64().unwrap());
    }
    thresholds.sort_unstable();
    assert_eq!(thresholds, [75, 90]);
}
