//! Activation: eSIM codes and QR, FM over the air, confirmation with the new validity.

use std::collections::HashSet;

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::{assert_problem, iccid, plan_id, TestApp};

on_both_backends!(
    codes_are_well_formed_and_unique_over_1000_orders,
    the_qr_code_decodes_to_the_activation_code,
    fm_confirmation_extends_and_confirming_twice_changes_nothing,
    esim_confirmation_replaces_the_current_term_now,
    concurrent_confirmations_create_one_term,
    a_failed_activation_refunds_exactly_once,
    the_eid_is_recorded_and_a_different_one_refused,
    another_partner_gets_404_on_every_activation_route,
);

struct Setup {
    token: String,
    network: String,
    fm_card: String,
    esim_card: String,
    fm_plan: String,
    esim_plan: String,
}

async fn setup(app: &TestApp, fen: i64) -> Setup {
    app.import_demo_plans().await;
    let admin = app.admin_token().await;
    let (partner, token) = app.partner_with_token("Acme").await;
    let (fm_card, esim_card) = (iccid(40, 1), iccid(40, 2));
    let cards = json!([
        {"iccid": fm_card, "card_type": "fm"},
        {"iccid": esim_card, "card_type": "esim"},
    ]);
    let imported = app.import_cards(&admin, &partner.id, cards).await;
    assert_eq!(imported.status(), StatusCode::CREATED);
    app.credit_wallet(&admin, &partner.id, "CNY", fen, None)
        .await;
    Setup {
        token,
        network: app.network_token().await,
        fm_card,
        esim_card,
        fm_plan: plan_id(&app.store, "CN-FM-M-10G").await,
        esim_plan: plan_id(&app.store, "JP-ESIM-M-5G").await,
    }
}

async fn order(app: &TestApp, s: &Setup, card: &str, plan: &str) -> Value {
    let response = app
        .client
        .post(app.url("/v1/orders"))
        .bearer_auth(&s.token)
        .header("Idempotency-Key", uuid::Uuid::new_v4().to_string())
        .json(
            &json!({"iccid": card, "plan_id": plan, "currency": "CNY", "payment_method": "wallet"}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    response.json().await.unwrap()
}

async fn confirm(
    app: &TestApp,
    token: &str,
    order_id: &str,
    body: Option<Value>,
) -> reqwest::Response {
    let mut request = app
        .client
        .post(app.url(&format!("/v1/orders/{order_id}/activation/confirm")))
        .bearer_auth(token);
    if let Some(body) = body {
        request = request.json(&body);
    }
    request.send().await.unwrap()
}

async fn balance(app: &TestApp, s: &Setup, card: &str) -> Value {
    app.get_with(&format!("/v1/cards/{card}/balance"), &s.token)
        .await
        .json()
        .await
        .unwrap()
}

async fn codes_are_well_formed_and_unique_over_1000_orders(app: TestApp) {
    let s = setup(&app, 1000 * 5900).await;
    // 2000 requests in a few seconds: beyond the default quota, which is not under test
    // here. Set before the partner's first request, so no cached credential hides it.
    app.sql("UPDATE partners SET rate_limit_per_second = 100000, rate_limit_burst = 100000");
    let mut matching_ids = HashSet::new();
    for batch in 0..50 {
        let orders = (0..20).map(|_| order(&app, &s, &s.esim_card, &s.esim_plan));
        for placed in futures_util::future::join_all(orders).await {
            let id = placed["id"].as_str().unwrap();
            let activation: Value = app
                .get_with(&format!("/v1/orders/{id}/activation"), &s.token)
                .await
                .json()
                .await
                .unwrap();
            let matching_id = activation["matching_id"].as_str().unwrap().to_owned();
            assert_eq!(matching_id.len(), 20);
            assert!(
                matching_id
                    .bytes()
                    .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit()),
                "{matching_id}"
            );
            assert_eq!(
                activation["lpa_activation_code"],
                format!("LPA:1$smdp.simrenew.test${matching_id}")
            );
            assert_eq!(activation["mode"], "esim_profile");
            assert_eq!(activation["status"], "pending");
            let apple = activation["apple_install_url"].as_str().unwrap();
            assert_eq!(
                apple,
                format!("https://esimsetup.apple.com/esim_qrcode_provisioning?carddata=LPA%3A1%24smdp%2Esimrenew%2Etest%24{matching_id}")
            );
            assert!(
                matching_ids.insert(matching_id),
                "duplicate matching id in batch {batch}"
            );
        }
    }
    assert_eq!(matching_ids.len(), 1000);
}

fn decode_qr(png: &[u8]) -> String {
    let image = image::load_from_memory(png).expect("a PNG").to_luma8();
    let mut prepared = rqrr::PreparedImage::prepare(image);
    let grids = prepared.detect_grids();
    assert_eq!(grids.len(), 1, "one QR code in the image");
    grids[0].decode().expect("decodes").1
}

async fn the_qr_code_decodes_to_the_activation_code(app: TestApp) {
    let s = setup(&app, 100_000).await;
    let placed = order(&app, &s, &s.esim_card, &s.esim_plan).await;
    let id = placed["id"].as_str().unwrap();
    let activation: Value = app
        .get_with(&format!("/v1/orders/{id}/activation"), &s.token)
        .await
        .json()
        .await
        .unwrap();
    let png = app
        .get_with(activation["qr_code_png_url"].as_str().unwrap(), &s.token)
        .await;
    assert_eq!(png.status(), StatusCode::OK);
    assert_eq!(png.headers()["content-type"], "image/png");
    assert!(png.headers()["cache-control"]
        .to_str()
        .unwrap()
        .contains("private"));
    assert_eq!(
        decode_qr(&png.bytes().await.unwrap()),
        activation["lpa_activation_code"].as_str().unwrap()
    );
    let svg = app
        .get_with(activation["qr_code_svg_url"].as_str().unwrap(), &s.token)
        .await;
    assert_eq!(svg.headers()["content-type"], "image/svg+xml");
    assert!(svg.text().await.unwrap().starts_with("<?xml"));

    let fm = order(&app, &s, &s.fm_card, &s.fm_plan).await;
    let fm_id = fm["id"].as_str().unwrap();
    let fm_activation: Value = app
        .get_with(&format!("/v1/orders/{fm_id}/activation"), &s.token)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(fm_activation["mode"], "ota");
    assert_eq!(fm_activation["lpa_activation_code"], Value::Null);
    assert_eq!(fm_activation["qr_code_png_url"], Value::Null);
    let no_qr = app
        .get_with(&format!("/v1/orders/{fm_id}/activation/qr.png"), &s.token)
        .await;
    assert_problem(no_qr, StatusCode::NOT_FOUND, "not_found").await;
}

async fn fm_confirmation_extends_and_confirming_twice_changes_nothing(app: TestApp) {
    let s = setup(&app, 100_000).await;
    // A current term first, then a renewal that must queue after it.
    let first = order(&app, &s, &s.fm_card, &s.fm_plan).await;
    let confirmed = confirm(&app, &s.token, first["id"].as_str().unwrap(), None).await;
    assert_eq!(confirmed.status(), StatusCode::OK);
    let first_activation: Value = confirmed.json().await.unwrap();
    assert_eq!(
        first_activation["previous_valid_until"],
        Value::Null,
        "no service before"
    );

    let renewal = order(&app, &s, &s.fm_card, &s.fm_plan).await;
    let id = renewal["id"].as_str().unwrap();
    let response = confirm(&app, &s.token, id, Some(json!({}))).await;
    assert_eq!(response.status(), StatusCode::OK);
    let body = response.bytes().await.unwrap();
    let activation: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(activation["status"], "confirmed");
    assert_eq!(
        activation["effective_from"], first_activation["valid_until"],
        "extends where service ended"
    );
    assert_eq!(
        activation["previous_valid_until"],
        first_activation["valid_until"]
    );
    let from = chrono::DateTime::parse_from_rfc3339(activation["effective_from"].as_str().unwrap())
        .unwrap();
    let until =
        chrono::DateTime::parse_from_rfc3339(activation["valid_until"].as_str().unwrap()).unwrap();
    assert_eq!(until - from, chrono::TimeDelta::days(30));

    let again = confirm(&app, &s.token, id, None).await;
    assert_eq!(again.status(), StatusCode::OK);
    assert_eq!(
        again.bytes().await.unwrap(),
        body,
        "the same body, nothing changed"
    );
    let order_now: Value = app
        .get_with(&format!("/v1/orders/{id}"), &s.token)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(order_now["status"], "completed");

    let after = balance(&app, &s, &s.fm_card).await;
    assert_eq!(
        after["current"]["valid_until"],
        first_activation["valid_until"]
    );
    let upcoming = after["upcoming"].as_array().unwrap();
    assert_eq!(upcoming.len(), 1, "one queued term, not two");
    assert_eq!(upcoming[0]["valid_from"], activation["effective_from"]);
    assert_eq!(upcoming[0]["valid_until"], activation["valid_until"]);
    let cancel = app
        .post_json(&format!("/v1/orders/{id}/cancel"), &s.token, &json!({}))
        .await;
    assert_problem(cancel, StatusCode::CONFLICT, "invalid_state_transition").await;
}

async fn esim_confirmation_replaces_the_current_term_now(app: TestApp) {
    let s = setup(&app, 100_000).await;
    let first = order(&app, &s, &s.esim_card, &s.esim_plan).await;
    let first: Value = confirm(&app, &s.token, first["id"].as_str().unwrap(), None)
        .await
        .json()
        .await
        .unwrap();
    let renewal = order(&app, &s, &s.esim_card, &s.esim_plan).await;
    let activation: Value = confirm(&app, &s.network, renewal["id"].as_str().unwrap(), None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        activation["status"], "confirmed",
        "the network may confirm too"
    );
    assert_eq!(activation["previous_valid_until"], first["valid_until"]);
    let from = chrono::DateTime::parse_from_rfc3339(activation["effective_from"].as_str().unwrap())
        .unwrap();
    assert!(
        (chrono::Utc::now() - from.with_timezone(&chrono::Utc))
            .num_seconds()
            .abs()
            < 5,
        "starts now"
    );

    let after = balance(&app, &s, &s.esim_card).await;
    assert_eq!(
        after["current"]["valid_from"], activation["effective_from"],
        "the new term is current right away"
    );
    assert_eq!(after["current"]["valid_until"], activation["valid_until"]);
    assert_eq!(after["current"]["days_left"], 30);
    assert_eq!(after["upcoming"], json!([]));
}

async fn concurrent_confirmations_create_one_term(app: TestApp) {
    let s = setup(&app, 100_000).await;
    let sibling = app.spawn_sibling(app.settings()).await;
    let placed = order(&app, &s, &s.fm_card, &s.fm_plan).await;
    let id = placed["id"].as_str().unwrap();
    let attempts = (0..6).map(|i| {
        let target = if i % 2 == 0 { &app } else { &sibling };
        confirm(target, &s.token, id, None)
    });
    let mut bodies = HashSet::new();
    for response in futures_util::future::join_all(attempts).await {
        assert_eq!(response.status(), StatusCode::OK);
        bodies.insert(response.text().await.unwrap());
    }
    assert_eq!(bodies.len(), 1, "every confirmation answers the same");
    let after = balance(&app, &s, &s.fm_card).await;
    assert_eq!(after["upcoming"], json!([]));
    assert_eq!(after["status"], "active");
    let terms: i64 = app
        .store
        .run({
            let card = s.fm_card.clone();
            move |conn| {
                use diesel::prelude::*;
                use simrenew::db::schema::terms;
                terms::table
                    .filter(terms::iccid.eq(card))
                    .count()
                    .get_result(conn)
                    .map_err(simrenew::error::ApiError::from)
            }
        })
        .await
        .unwrap();
    assert_eq!(terms, 1);
}

async fn a_failed_activation_refunds_exactly_once(app: TestApp) {
    let s = setup(&app, 10_000).await;
    let placed = order(&app, &s, &s.fm_card, &s.fm_plan).await;
    let id = placed["id"].as_str().unwrap();
    async fn wallet_of(app: &TestApp, token: &str) -> i64 {
        let wallet: Value = app
            .get_with("/v1/wallet", token)
            .await
            .json()
            .await
            .unwrap();
        wallet["balances"][0]["available"].as_i64().unwrap()
    }

    assert_eq!(wallet_of(&app, &s.token).await, 10_000 - 3900);
    let by_partner = app
        .post_json(
            &format!("/v1/orders/{id}/activation/fail"),
            &s.token,
            &json!({"reason": "x"}),
        )
        .await;
    assert_problem(by_partner, StatusCode::FORBIDDEN, "forbidden").await;
    let blank = app
        .post_json(
            &format!("/v1/orders/{id}/activation/fail"),
            &s.network,
            &json!({"reason": " "}),
        )
        .await;
    assert_problem(blank, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed").await;

    let failed = app
        .post_json(
            &format!("/v1/orders/{id}/activation/fail"),
            &s.network,
            &json!({"reason": "OTA push rejected by the card"}),
        )
        .await;
    assert_eq!(failed.status(), StatusCode::OK);
    let failed: Value = failed.json().await.unwrap();
    assert_eq!(
        (failed["status"].as_str(), failed["failure_reason"].as_str()),
        (Some("failed"), Some("OTA push rejected by the card"))
    );
    let again = app
        .post_json(
            &format!("/v1/orders/{id}/activation/fail"),
            &s.network,
            &json!({"reason": "again"}),
        )
        .await;
    assert_problem(again, StatusCode::CONFLICT, "invalid_state_transition").await;
    assert_eq!(wallet_of(&app, &s.token).await, 10_000, "refunded once");
    let order_now: Value = app
        .get_with(&format!("/v1/orders/{id}"), &s.token)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(order_now["status"], "failed");
    assert_eq!(order_now["refund"]["amount"], 3900);
    let confirm_after = confirm(&app, &s.token, id, None).await;
    assert_problem(
        confirm_after,
        StatusCode::CONFLICT,
        "invalid_state_transition",
    )
    .await;
    let ledger: Value = app
        .get_with("/v1/wallet/transactions", &s.token)
        .await
        .json()
        .await
        .unwrap();
    let refunds = ledger["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "refund")
        .count();
    assert_eq!(refunds, 1);
}

async fn the_eid_is_recorded_and_a_different_one_refused(app: TestApp) {
    let s = setup(&app, 100_000).await;
    // A body that is there must be right: malformed JSON or another media type changes nothing.
    let placed = order(&app, &s, &s.esim_card, &s.esim_plan).await;
    let url = app.url(&format!(
        "/v1/orders/{}/activation/confirm",
        placed["id"].as_str().unwrap()
    ));
    let malformed = app
        .client
        .post(&url)
        .bearer_auth(&s.token)
        .header("content-type", "application/json")
        .body("{\"eid\":")
        .send()
        .await
        .unwrap();
    assert_problem(malformed, StatusCode::BAD_REQUEST, "invalid_request").await;
    let unknown_field = app
        .client
        .post(&url)
        .bearer_auth(&s.token)
        .json(&json!({"valid_until": "2099-01-01T00:00:00Z"}))
        .send()
        .await
        .unwrap();
    assert_problem(unknown_field, StatusCode::BAD_REQUEST, "invalid_request").await;
    let text = app
        .client
        .post(&url)
        .bearer_auth(&s.token)
        .header("content-type", "text/plain")
        .body("eid")
        .send()
        .await
        .unwrap();
    assert_problem(
        text,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
    )
    .await;
    let untouched: Value = app
        .get_with(
            &format!("/v1/orders/{}/activation", placed["id"].as_str().unwrap()),
            &s.token,
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(untouched["status"], "pending");
    assert_eq!(
        confirm(&app, &s.token, placed["id"].as_str().unwrap(), None)
            .await
            .status(),
        StatusCode::OK,
        "no body is fine"
    );
    let eid = |last_body: &str| {
        let body = format!("8904903212345123451234567890{last_body}");
        let check = 98 - simrenew::domain::identifiers::mod97(&format!("{body}00")).unwrap();
        format!("{body}{check:02}")
    };
    let (device_a, device_b) = (eid("12"), eid("34"));
    let first = order(&app, &s, &s.esim_card, &s.esim_plan).await;
    let bad = confirm(
        &app,
        &s.token,
        first["id"].as_str().unwrap(),
        Some(json!({"eid": "123"})),
    )
    .await;
    assert_problem(bad, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed").await;
    let ok = confirm(
        &app,
        &s.token,
        first["id"].as_str().unwrap(),
        Some(json!({"eid": device_a})),
    )
    .await;
    assert_eq!(ok.status(), StatusCode::OK);
    let card: Value = app
        .get_with(&format!("/v1/cards/{}", s.esim_card), &s.token)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(card["eid"], device_a);

    let second = order(&app, &s, &s.esim_card, &s.esim_plan).await;
    let before = balance(&app, &s, &s.esim_card).await;
    let mismatch = confirm(
        &app,
        &s.token,
        second["id"].as_str().unwrap(),
        Some(json!({"eid": device_b})),
    )
    .await;
    assert_problem(mismatch, StatusCode::CONFLICT, "eid_mismatch").await;
    assert_eq!(
        balance(&app, &s, &s.esim_card).await["current"],
        before["current"],
        "nothing changed"
    );
    let activation: Value = app
        .get_with(
            &format!("/v1/orders/{}/activation", second["id"].as_str().unwrap()),
            &s.token,
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(activation["status"], "pending");
}

async fn another_partner_gets_404_on_every_activation_route(app: TestApp) {
    let s = setup(&app, 100_000).await;
    let placed = order(&app, &s, &s.esim_card, &s.esim_plan).await;
    let id = placed["id"].as_str().unwrap();
    let (_, stranger) = app.partner_with_token("Stranger").await;
    for path in ["", "/qr.svg", "/qr.png"] {
        let response = app
            .get_with(&format!("/v1/orders/{id}/activation{path}"), &stranger)
            .await;
        assert_problem(response, StatusCode::NOT_FOUND, "not_found").await;
    }
    assert_problem(
        confirm(&app, &stranger, id, None).await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    let activation: Value = app
        .get_with(&format!("/v1/orders/{id}/activation"), &s.token)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        activation["status"], "pending",
        "the stranger changed nothing"
    );
}
