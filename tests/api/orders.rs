//! Orders, the wallet ledger and idempotency, through HTTP.

use std::collections::HashSet;

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::{
    assert_problem, cli, cli_create_partner, fetch_token, iccid, metric_sample, plan_id,
    problem_fields, Backend, Process, TestApp, TestDatabase,
};

on_both_backends!(
    a_wallet_order_is_paid_at_once_with_a_receipt,
    each_refusal_has_its_code_and_changes_nothing,
    a_replay_returns_identical_bytes_and_a_new_body_is_refused,
    ten_parallel_requests_with_one_key_make_one_order,
    twenty_parallel_orders_against_funds_for_five,
    the_same_race_across_two_instances,
    cancelling_a_paid_order_refunds_the_wallet_once,
    orders_list_filter_and_stay_private,
    a_price_change_never_alters_a_past_order,
    wallet_credits_honour_idempotency_keys,
    an_abandoned_claim_is_taken_over_by_one_retry_only,
    an_unknown_stored_state_fails_loudly,
    business_metrics_count_only_what_committed,
);

struct Shop {
    admin: String,
    partner_id: String,
    token: String,
    card: String,
    plan: String,
}

/// Demo catalog, a partner with one FM card, and `fen` CNY in its wallet.
async fn shop(app: &TestApp, fen: i64) -> Shop {
    app.import_demo_plans().await;
    let admin = app.admin_token().await;
    let (partner, token) = app.partner_with_token("Acme").await;
    let card = iccid(20, 1);
    let imported = app
        .import_cards(
            &admin,
            &partner.id,
            json!([{"iccid": card, "card_type": "fm"}]),
        )
        .await;
    assert_eq!(imported.status(), StatusCode::CREATED);
    if fen > 0 {
        app.credit_wallet(&admin, &partner.id, "CNY", fen, Some("top-up"))
            .await;
    }
    let plan = plan_id(&app.store, "CN-FM-M-10G").await;
    Shop {
        admin,
        partner_id: partner.id,
        token,
        card,
        plan,
    }
}

/// CN-FM-M-10G costs 3900 fen.
const PRICE: i64 = 3900;

fn order_body(shop: &Shop) -> Value {
    json!({"iccid": shop.card, "plan_id": shop.plan, "currency": "CNY", "payment_method": "wallet", "client_reference": "app-42"})
}

async fn place(app: &TestApp, shop: &Shop, key: &str, body: &Value) -> reqwest::Response {
    app.client
        .post(app.url("/v1/orders"))
        .bearer_auth(&shop.token)
        .header("Idempotency-Key", key)
        .json(body)
        .send()
        .await
        .unwrap()
}

/// Wallet balance, ledger sum, ledger length and order count: what must not move on a refusal.
async fn books(app: &TestApp, shop: &Shop) -> (i64, i64, usize, usize) {
    let wallet: Value = app
        .get_with("/v1/wallet", &shop.token)
        .await
        .json()
        .await
        .unwrap();
    let balance = wallet["balances"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["currency"] == "CNY")
        .map(|b| b["available"].as_i64().unwrap())
        .unwrap_or(0);
    let ledger: Value = app
        .get_with("/v1/wallet/transactions?limit=100", &shop.token)
        .await
        .json()
        .await
        .unwrap();
    let entries = ledger["data"].as_array().unwrap();
    let sum = entries.iter().map(|e| e["amount"].as_i64().unwrap()).sum();
    let orders: Value = app
        .get_with("/v1/orders?limit=100", &shop.token)
        .await
        .json()
        .await
        .unwrap();
    (
        balance,
        sum,
        entries.len(),
        orders["data"].as_array().unwrap().len(),
    )
}

async fn a_wallet_order_is_paid_at_once_with_a_receipt(app: TestApp) {
    let shop = shop(&app, 10_000).await;
    let response = place(&app, &shop, "k-1", &order_body(&shop)).await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let location = response.headers()["location"].to_str().unwrap().to_owned();
    let order: Value = response.json().await.unwrap();
    assert_eq!(
        location,
        format!("/v1/orders/{}", order["id"].as_str().unwrap())
    );
    assert_eq!(order["status"], "paid");
    assert_eq!(order["amount"], PRICE);
    assert_eq!(order["currency"], "CNY");
    assert_eq!(
        order["payment"],
        json!({"method": "wallet", "status": "succeeded", "provider": null, "next_action": null, "issue": null})
    );
    assert_eq!(order["client_reference"], "app-42");
    let receipt = order["receipt_number"].as_str().unwrap();
    let today = chrono::Utc::now().format("%Y%m%d").to_string();
    assert_eq!(receipt, format!("R-{today}-000001"));
    let fetched: Value = app
        .get_with(&location, &shop.token)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(fetched, order);

    let (balance, sum, entries, orders) = books(&app, &shop).await;
    assert_eq!(
        (balance, sum, entries, orders),
        (10_000 - PRICE, 10_000 - PRICE, 2, 1)
    );
    let ledger: Value = app
        .get_with("/v1/wallet/transactions", &shop.token)
        .await
        .json()
        .await
        .unwrap();
    let debit = &ledger["data"][0];
    assert_eq!(
        (debit["kind"].as_str(), debit["amount"].as_i64()),
        (Some("debit"), Some(-PRICE))
    );
    assert_eq!(debit["balance_after"], 10_000 - PRICE);
    assert_eq!(debit["order_id"], order["id"]);

    let second: Value = place(&app, &shop, "k-2", &order_body(&shop))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(second["receipt_number"], format!("R-{today}-000002"));
}

async fn each_refusal_has_its_code_and_changes_nothing(app: TestApp) {
    let shop = shop(&app, 5_000).await;
    let before = books(&app, &shop).await;
    let esim_plan = plan_id(&app.store, "JP-ESIM-M-5G").await;
    // The valid order with one field changed.
    let with = |field: &str, value: Value| {
        let mut body = order_body(&shop);
        body[field] = value;
        body
    };
    let cases: Vec<(Value, StatusCode, &str)> = vec![
        (
            with("iccid", json!(iccid(20, 99))),
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        (
            with("plan_id", json!(esim_plan)),
            StatusCode::UNPROCESSABLE_ENTITY,
            "plan_not_available_for_card",
        ),
        (
            with("plan_id", json!(uuid::Uuid::now_v7())),
            StatusCode::UNPROCESSABLE_ENTITY,
            "plan_not_available_for_card",
        ),
        (
            with("currency", json!("EUR")),
            StatusCode::UNPROCESSABLE_ENTITY,
            "currency_not_offered",
        ),
        (
            with("currency", json!("RMB")),
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        ),
        (
            with("payment_method", json!("alipay")),
            StatusCode::UNPROCESSABLE_ENTITY,
            "payment_method_unavailable",
        ),
        (
            with("amount", json!(1)),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            with("status", json!("completed")),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            with("payment_method", json!("cash")),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
    ];
    for (i, (body, status, code)) in cases.into_iter().enumerate() {
        let response = place(&app, &shop, &format!("refusal-{i}"), &body).await;
        assert_problem(response, status, code).await;
    }
    // An ICCID that cannot be one (wrong Luhn digit, letters, too short) is a 422 naming
    // the field, before any lookup: no card is ever searched for it.
    let wrong_check_digit = {
        let mut text = shop.card.clone();
        let last = text.pop().unwrap().to_digit(10).unwrap();
        text.push(char::from_digit((last + 1) % 10, 10).unwrap());
        text
    };
    for bad in [wrong_check_digit.as_str(), "8986001234567890123X", "12345"] {
        let problem = assert_problem(
            place(
                &app,
                &shop,
                &format!("bad-iccid-{bad}"),
                &with("iccid", json!(bad)),
            )
            .await,
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        )
        .await;
        assert_eq!(problem_fields(&problem), ["iccid"], "{bad}");
    }
    // A refusal at the edge consumes no key: the same key then places the valid order.
    let retried = place(&app, &shop, "bad-iccid-12345", &order_body(&shop)).await;
    assert_eq!(retried.status(), StatusCode::CREATED);
    let cancelled = app
        .post_json(
            &format!(
                "/v1/orders/{}/cancel",
                retried.json::<Value>().await.unwrap()["id"]
                    .as_str()
                    .unwrap()
            ),
            &shop.token,
            &json!({}),
        )
        .await;
    assert_eq!(cancelled.status(), StatusCode::OK);
    let missing_key = app
        .post_json("/v1/orders", &shop.token, &order_body(&shop))
        .await;
    assert_problem(
        missing_key,
        StatusCode::BAD_REQUEST,
        "idempotency_key_missing",
    )
    .await;

    // Two orders fit in 5000 fen once; the second is refused with nothing written.
    assert_eq!(
        place(&app, &shop, "fits", &order_body(&shop))
            .await
            .status(),
        StatusCode::CREATED
    );
    let after_one = books(&app, &shop).await;
    assert_problem(
        place(&app, &shop, "too-much", &order_body(&shop)).await,
        StatusCode::PAYMENT_REQUIRED,
        "insufficient_funds",
    )
    .await;
    assert_eq!(books(&app, &shop).await, after_one);

    app.post_json(
        &format!("/v1/admin/cards/{}/suspend", shop.card),
        &shop.admin,
        &json!({}),
    )
    .await;
    assert_problem(
        place(&app, &shop, "suspended", &order_body(&shop)).await,
        StatusCode::CONFLICT,
        "card_suspended",
    )
    .await;
    assert_eq!(books(&app, &shop).await, after_one);
    // One order stands (the other was cancelled and refunded: two ledger entries).
    assert_eq!((before.0 - after_one.0, after_one.3 - before.3), (PRICE, 2));
}

/// Money, orders and replays are counted when their transaction commits: a paid order
/// counts once with its money, a refused one (no funds) and its replay count nothing but
/// the replay, and the wallet reading matches the balance.
async fn business_metrics_count_only_what_committed(app: TestApp) {
    let shop = shop(&app, 5_000).await;
    let paid = place(&app, &shop, "metrics-1", &order_body(&shop)).await;
    assert_eq!(paid.status(), StatusCode::CREATED);
    let replay = place(&app, &shop, "metrics-1", &order_body(&shop)).await;
    assert_eq!(replay.headers()["idempotent-replayed"], "true");
    let refused = place(&app, &shop, "metrics-2", &order_body(&shop)).await;
    assert_eq!(refused.status(), StatusCode::PAYMENT_REQUIRED);

    let text = app.get("/metrics").await.text().await.unwrap();
    let value = |series: &str| metric_sample(&text, series);
    assert_eq!(
        value(r#"simrenew_orders_total{payment_method="wallet",status="paid"}"#),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        value(
            r#"simrenew_order_payments_minor_units_total{currency="CNY",payment_method="wallet"}"#
        ),
        Some(PRICE as f64)
    );
    assert_eq!(
        value(r#"simrenew_wallet_movements_minor_units_total{currency="CNY",kind="debit"}"#),
        Some(PRICE as f64)
    );
    assert_eq!(
        value(r#"simrenew_wallet_movements_minor_units_total{currency="CNY",kind="credit"}"#),
        Some(5_000.0)
    );
    assert_eq!(
        value(r#"simrenew_idempotency_keys_total{outcome="replayed"}"#),
        Some(1.0)
    );
    assert!(
        !text.contains(r#"status="failed""#),
        "the refused order rolled back and is not counted: {text}"
    );
    assert_eq!(
        value(r#"simrenew_wallet_balance_minor_units{currency="CNY"}"#),
        Some((5_000 - PRICE) as f64)
    );
    assert_eq!(value("simrenew_payment_settlement_lag_seconds"), Some(0.0));
    assert_eq!(value("simrenew_webhook_deliveries_due"), Some(0.0));
    assert_eq!(value("simrenew_readings_ok"), Some(1.0));
    assert!(value("simrenew_db_pool_wait_seconds_count").unwrap_or(0.0) > 0.0);
    // On PostgreSQL the paid order was written by one statement; the replay and the
    // refusal were declined by it and answered by the general path, as every order is on
    // SQLite.
    let paths = (
        value(r#"simrenew_wallet_order_paths_total{path="one_statement"}"#),
        value(r#"simrenew_wallet_order_paths_total{path="general"}"#),
    );
    match app.store.backend() {
        simrenew::db::Backend::Postgres => assert_eq!(paths, (Some(1.0), Some(2.0))),
        simrenew::db::Backend::Sqlite => assert_eq!(paths, (None, Some(3.0))),
    }
}

async fn a_replay_returns_identical_bytes_and_a_new_body_is_refused(app: TestApp) {
    let shop = shop(&app, 10_000).await;
    let first = place(&app, &shop, "same-key", &order_body(&shop)).await;
    let (status, location) = (first.status(), first.headers()["location"].clone());
    let first_bytes = first.bytes().await.unwrap();
    let replay = place(&app, &shop, "same-key", &order_body(&shop)).await;
    assert_eq!(replay.status(), status);
    assert_eq!(replay.headers()["location"], location);
    assert_eq!(replay.headers()["idempotent-replayed"], "true");
    assert_eq!(replay.bytes().await.unwrap(), first_bytes, "byte for byte");
    assert_eq!(books(&app, &shop).await.3, 1, "one order");

    let mut other = order_body(&shop);
    other["client_reference"] = json!("another purchase");
    assert_problem(
        place(&app, &shop, "same-key", &other).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "idempotency_key_reused",
    )
    .await;

    // Business errors replay too.
    let poor = shop_for_partner_without_funds(&app, &shop).await;
    let refused = place(&app, &poor, "poor-key", &order_body(&poor)).await;
    assert_eq!(refused.status(), StatusCode::PAYMENT_REQUIRED);
    let refused_bytes = refused.bytes().await.unwrap();
    let again = place(&app, &poor, "poor-key", &order_body(&poor)).await;
    assert_eq!(again.status(), StatusCode::PAYMENT_REQUIRED);
    assert_eq!(again.bytes().await.unwrap(), refused_bytes);

    // Keys are per partner: the same key from another partner is a new request.
    let fresh = place(&app, &poor, "same-key", &order_body(&poor)).await;
    assert_eq!(fresh.status(), StatusCode::PAYMENT_REQUIRED);
}

async fn shop_for_partner_without_funds(app: &TestApp, shop: &Shop) -> Shop {
    let (partner, token) = app.partner_with_token("Poor").await;
    let card = iccid(21, 1);
    app.import_cards(
        &shop.admin,
        &partner.id,
        json!([{"iccid": card, "card_type": "fm"}]),
    )
    .await;
    Shop {
        admin: shop.admin.clone(),
        partner_id: partner.id,
        token,
        card,
        plan: shop.plan.clone(),
    }
}

async fn ten_parallel_requests_with_one_key_make_one_order(app: TestApp) {
    let shop = shop(&app, 100_000).await;
    let body = order_body(&shop);
    let requests = (0..10).map(|_| place(&app, &shop, "raced-key", &body));
    let responses = futures_util::future::join_all(requests).await;
    let mut created_ids = HashSet::new();
    let mut in_progress = 0;
    for response in responses {
        match response.status() {
            StatusCode::CREATED => {
                let order: Value = response.json().await.unwrap();
                created_ids.insert(order["id"].as_str().unwrap().to_owned());
            }
            StatusCode::CONFLICT => {
                assert_problem(
                    response,
                    StatusCode::CONFLICT,
                    "idempotency_request_in_progress",
                )
                .await;
                in_progress += 1;
            }
            other => panic!("unexpected {other}"),
        }
    }
    assert_eq!(created_ids.len(), 1, "every 201 is the same order");
    assert!(in_progress < 10);
    let (balance, sum, entries, orders) = books(&app, &shop).await;
    assert_eq!(
        (balance, sum, entries, orders),
        (100_000 - PRICE, 100_000 - PRICE, 2, 1)
    );
}

async fn race(app: &TestApp, other: &TestApp, shop: &Shop) {
    let body = order_body(shop);
    let keys: Vec<String> = (0..20).map(|i| format!("race-{i}")).collect();
    let body = &body;
    let requests = keys.iter().enumerate().map(|(i, key)| {
        let target = if i % 2 == 0 { app } else { other };
        async move {
            target
                .client
                .post(target.url("/v1/orders"))
                .bearer_auth(&shop.token)
                .header("Idempotency-Key", key)
                .json(&body)
                .send()
                .await
                .unwrap()
                .status()
        }
    });
    let statuses = futures_util::future::join_all(requests).await;
    let created = statuses
        .iter()
        .filter(|s| **s == StatusCode::CREATED)
        .count();
    let refused = statuses
        .iter()
        .filter(|s| **s == StatusCode::PAYMENT_REQUIRED)
        .count();
    assert_eq!((created, refused), (5, 15), "{statuses:?}");
    let (balance, sum, entries, orders) = books(app, shop).await;
    assert_eq!((balance, sum, entries, orders), (0, 0, 6, 5));
}

async fn twenty_parallel_orders_against_funds_for_five(app: TestApp) {
    let shop = shop(&app, 5 * PRICE).await;
    race(&app, &app, &shop).await;
}

async fn the_same_race_across_two_instances(app: TestApp) {
    let shop = shop(&app, 5 * PRICE).await;
    let sibling = app.spawn_sibling(app.settings()).await;
    race(&app, &sibling, &shop).await;
}

async fn cancelling_a_paid_order_refunds_the_wallet_once(app: TestApp) {
    let shop = shop(&app, 10_000).await;
    let order: Value = place(&app, &shop, "to-cancel", &order_body(&shop))
        .await
        .json()
        .await
        .unwrap();
    let id = order["id"].as_str().unwrap();
    let cancelled = app
        .post_json(&format!("/v1/orders/{id}/cancel"), &shop.token, &json!({}))
        .await;
    assert_eq!(cancelled.status(), StatusCode::OK);
    let cancelled: Value = cancelled.json().await.unwrap();
    assert_eq!(cancelled["status"], "cancelled");
    assert_eq!(cancelled["payment"]["status"], "refunded");
    assert_eq!(cancelled["refund"]["amount"], PRICE);
    assert!(cancelled["closed_at"].is_string());

    let again = app
        .post_json(&format!("/v1/orders/{id}/cancel"), &shop.token, &json!({}))
        .await;
    assert_problem(again, StatusCode::CONFLICT, "invalid_state_transition").await;
    let (balance, sum, entries, _) = books(&app, &shop).await;
    assert_eq!(
        (balance, sum, entries),
        (10_000, 10_000, 3),
        "credit, debit, one refund"
    );
    let ledger: Value = app
        .get_with("/v1/wallet/transactions", &shop.token)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(ledger["data"][0]["kind"], "refund");
    assert_eq!(ledger["data"][0]["order_id"], order["id"]);
}

async fn orders_list_filter_and_stay_private(app: TestApp) {
    let shop = shop(&app, 100_000).await;
    let mut ids = Vec::new();
    for i in 0..3 {
        let order: Value = place(&app, &shop, &format!("list-{i}"), &order_body(&shop))
            .await
            .json()
            .await
            .unwrap();
        ids.push(order["id"].as_str().unwrap().to_owned());
    }
    app.post_json(
        &format!("/v1/orders/{}/cancel", ids[0]),
        &shop.token,
        &json!({}),
    )
    .await;
    let listed: Value = app
        .get_with("/v1/orders?limit=2", &shop.token)
        .await
        .json()
        .await
        .unwrap();
    let first_page: Vec<&str> = listed["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        first_page,
        [ids[2].as_str(), ids[1].as_str()],
        "newest first"
    );
    let next = listed["next_cursor"].as_str().unwrap();
    let rest: Value = app
        .get_with(&format!("/v1/orders?limit=2&cursor={next}"), &shop.token)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(rest["data"][0]["id"], ids[0]);
    assert_eq!(rest["next_cursor"], Value::Null);

    let cancelled: Value = app
        .get_with("/v1/orders?status=cancelled", &shop.token)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(cancelled["data"].as_array().unwrap().len(), 1);
    let by_card: Value = app
        .get_with(&format!("/v1/cards/{}/orders", shop.card), &shop.token)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(by_card["data"].as_array().unwrap().len(), 3);
    let future = (chrono::Utc::now() + chrono::TimeDelta::hours(1))
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let none: Value = app
        .get_with(&format!("/v1/orders?created_after={future}"), &shop.token)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(none["data"], json!([]));
    assert_problem(
        app.get_with("/v1/orders?status=lost", &shop.token).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    )
    .await;

    let (_, stranger) = app.partner_with_token("Stranger").await;
    for path in [
        format!("/v1/orders/{}", ids[1]),
        format!("/v1/cards/{}/orders", shop.card),
    ] {
        assert_problem(
            app.get_with(&path, &stranger).await,
            StatusCode::NOT_FOUND,
            "not_found",
        )
        .await;
    }
    let cancel = app
        .post_json(
            &format!("/v1/orders/{}/cancel", ids[1]),
            &stranger,
            &json!({}),
        )
        .await;
    assert_problem(cancel, StatusCode::NOT_FOUND, "not_found").await;
    let theirs: Value = app
        .get_with("/v1/orders", &stranger)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(theirs["data"], json!([]));
    let _ = &shop.partner_id;
}

async fn a_price_change_never_alters_a_past_order(app: TestApp) {
    let shop = shop(&app, 100_000).await;
    let order: Value = place(&app, &shop, "before-change", &order_body(&shop))
        .await
        .json()
        .await
        .unwrap();
    let patched = app
        .client
        .patch(app.url(&format!("/v1/admin/plans/{}", shop.plan)))
        .bearer_auth(&shop.admin)
        .json(&json!({"prices": [{"currency": "CNY", "amount": 9999}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(patched.status(), StatusCode::OK);
    let fetched: Value = app
        .get_with(
            &format!("/v1/orders/{}", order["id"].as_str().unwrap()),
            &shop.token,
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(fetched["amount"], PRICE);
    let next: Value = place(&app, &shop, "after-change", &order_body(&shop))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(next["amount"], 9999);
}

async fn wallet_credits_honour_idempotency_keys(app: TestApp) {
    let shop = shop(&app, 0).await;
    let credit = |key: &'static str, amount: i64| {
        app.client
            .post(app.url(&format!(
                "/v1/admin/partners/{}/wallet/credits",
                shop.partner_id
            )))
            .bearer_auth(&shop.admin)
            .header("Idempotency-Key", key)
            .json(&json!({"currency": "CNY", "amount": amount, "reference": "wire 1"}))
            .send()
    };
    let first = credit("credit-1", 2500).await.unwrap();
    assert_eq!(first.status(), StatusCode::CREATED);
    let first: Value = first.json().await.unwrap();
    let replay: Value = credit("credit-1", 2500)
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(replay, first);
    assert_problem(
        credit("credit-1", 9999).await.unwrap(),
        StatusCode::UNPROCESSABLE_ENTITY,
        "idempotency_key_reused",
    )
    .await;
    assert_eq!(books(&app, &shop).await.0, 2500);

    for (body, field) in [
        (json!({"currency": "CNY", "amount": 0}), "amount"),
        (json!({"currency": "XXX1", "amount": 5}), "currency"),
    ] {
        let response = app
            .post_json(
                &format!("/v1/admin/partners/{}/wallet/credits", shop.partner_id),
                &shop.admin,
                &body,
            )
            .await;
        let problem = assert_problem(
            response,
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        )
        .await;
        assert_eq!(problem["errors"][0]["field"], field);
    }
    let nobody = app
        .post_json(
            &format!("/v1/admin/partners/{}/wallet/credits", uuid::Uuid::now_v7()),
            &shop.admin,
            &json!({"currency": "CNY", "amount": 5}),
        )
        .await;
    assert_problem(nobody, StatusCode::NOT_FOUND, "not_found").await;
    let by_partner = app
        .post_json(
            &format!("/v1/admin/partners/{}/wallet/credits", shop.partner_id),
            &shop.token,
            &json!({"currency": "CNY", "amount": 5}),
        )
        .await;
    assert_problem(by_partner, StatusCode::FORBIDDEN, "forbidden").await;
    assert_eq!(books(&app, &shop).await.0, 2500);
}

async fn an_abandoned_claim_is_taken_over_by_one_retry_only(app: TestApp) {
    use diesel::prelude::*;
    use simrenew::db::schema::idempotency_keys as keys;
    let shop = shop(&app, 100_000).await;
    assert_eq!(
        place(&app, &shop, "first", &order_body(&shop))
            .await
            .status(),
        StatusCode::CREATED
    );
    // A request under "abandoned" claimed the key and died before its work committed.
    app.store
        .transaction(|conn| {
            let (partner, fingerprint): (String, String) = keys::table
                .filter(keys::idempotency_key.eq("first"))
                .select((keys::partner_id, keys::fingerprint))
                .first(conn)?;
            let past = chrono::Utc::now().naive_utc() - chrono::TimeDelta::minutes(5);
            diesel::insert_into(keys::table)
                .values((
                    keys::partner_id.eq(partner),
                    keys::idempotency_key.eq("abandoned"),
                    keys::fingerprint.eq(fingerprint),
                    keys::state.eq("in_progress"),
                    keys::locked_until.eq(past),
                    keys::created_at.eq(past),
                    keys::expires_at.eq(past + chrono::TimeDelta::hours(24)),
                ))
                .execute(conn)
                .map_err(simrenew::error::ApiError::from)
        })
        .await
        .unwrap();
    let body = order_body(&shop);
    let retries = (0..6).map(|_| place(&app, &shop, "abandoned", &body));
    let mut ids = HashSet::new();
    for response in futures_util::future::join_all(retries).await {
        match response.status() {
            StatusCode::CREATED => {
                ids.insert(
                    response.json::<Value>().await.unwrap()["id"]
                        .as_str()
                        .unwrap()
                        .to_owned(),
                );
            }
            status => assert_eq!(status, StatusCode::CONFLICT),
        }
    }
    assert_eq!(ids.len(), 1, "one retry took the claim over");
    let (balance, sum, _, orders) = books(&app, &shop).await;
    assert_eq!(
        (balance, sum, orders),
        (100_000 - 2 * PRICE, 100_000 - 2 * PRICE, 2)
    );
}

/// 20 orders against funds for 5, split across two `serve` processes on one PostgreSQL
/// database, everything set up through the operator CLI.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(postgres_tests),
    ignore = "TEST_POSTGRES_URL is not set: the PostgreSQL test did not run"
)]
async fn the_race_across_two_serve_processes_on_postgres() {
    let db = TestDatabase::create(Backend::Postgres);
    let url = db.raw_url.clone();
    let acme = cli_create_partner(&url, "Acme", "orders:write orders:read wallet:read");
    let partner = acme.id.clone();
    let plans = concat!(env!("CARGO_MANIFEST_DIR"), "/src/catalog/demo_plans.json");
    cli(&url, &["plans", "import", plans]);
    let card = iccid(30, 1);
    let csv = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(
        csv.path(),
        format!("iccid,card_type,msisdn,eid\n{card},fm,,\n"),
    )
    .unwrap();
    cli(
        &url,
        &[
            "cards",
            "import",
            csv.path().to_str().unwrap(),
            "--partner",
            &partner,
        ],
    );
    let credited = cli(
        &url,
        &[
            "wallet",
            "credit",
            "--partner",
            &partner,
            "--currency",
            "CNY",
            "--amount",
            &(5 * PRICE).to_string(),
        ],
    );
    assert!(credited.contains("\"balance_after\":19500"), "{credited}");

    let (one, two) = tokio::join!(Process::serve(&url, &[]), Process::serve(&url, &[]));
    let client = crate::helpers::http_client();
    let token = fetch_token(&client, &one.base_url, &acme.client_id, &acme.client_secret).await;
    let plan = {
        let listed: Value = client
            .get(format!("{}/v1/plans?limit=100", one.base_url))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        // The partner has no catalog scope: look the plan up in the database instead.
        assert_eq!(listed["code"], "forbidden");
        let store = simrenew::db::Db::new(
            &db.url,
            &simrenew::config::Settings::for_database(db.url.clone()).pool,
        );
        plan_id(&store, "CN-FM-M-10G").await
    };
    let body =
        json!({"iccid": card, "plan_id": plan, "currency": "CNY", "payment_method": "wallet"});
    let requests = (0..20).map(|i| {
        let base = if i % 2 == 0 {
            &one.base_url
        } else {
            &two.base_url
        };
        client
            .post(format!("{base}/v1/orders"))
            .bearer_auth(&token)
            .header("Idempotency-Key", format!("proc-race-{i}"))
            .json(&body)
            .send()
    });
    let statuses: Vec<StatusCode> = futures_util::future::join_all(requests)
        .await
        .into_iter()
        .map(|r| r.unwrap().status())
        .collect();
    let created_count = statuses
        .iter()
        .filter(|s| **s == StatusCode::CREATED)
        .count();
    let refused = statuses
        .iter()
        .filter(|s| **s == StatusCode::PAYMENT_REQUIRED)
        .count();
    assert_eq!((created_count, refused), (5, 15), "{statuses:?}");
    let wallet: Value = client
        .get(format!("{}/v1/wallet", two.base_url))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        wallet["balances"],
        json!([{"currency": "CNY", "available": 0}])
    );
}

/// A state this version does not know (written by a newer one, or by hand) is never read
/// as some other state: the read fails with a generic 500 and the order is left alone.
async fn an_unknown_stored_state_fails_loudly(app: TestApp) {
    let shop = shop(&app, 10_000).await;
    let placed: Value = place(&app, &shop, "k-unknown", &order_body(&shop))
        .await
        .json()
        .await
        .unwrap();
    let id = placed["id"].as_str().unwrap().to_owned();
    let sql = match app.db.backend() {
        Backend::Sqlite => format!(
            "PRAGMA ignore_check_constraints = ON; \
             UPDATE orders SET status = 'on_hold' WHERE id = '{id}'; \
             PRAGMA ignore_check_constraints = OFF;"
        ),
        Backend::Postgres => format!(
            "ALTER TABLE orders DROP CONSTRAINT orders_status_check; \
             UPDATE orders SET status = 'on_hold' WHERE id = '{id}';"
        ),
    };
    app.sql(&sql);
    let problem = assert_problem(
        app.get_with(&format!("/v1/orders/{id}"), &shop.token).await,
        StatusCode::INTERNAL_SERVER_ERROR,
        "internal_error",
    )
    .await;
    assert!(
        !problem["detail"].as_str().unwrap().contains("on_hold"),
        "the cause is logged, not sent: {problem}"
    );
    // Acting on it is refused the same way, and changes nothing.
    assert_problem(
        app.post_json(&format!("/v1/orders/{id}/cancel"), &shop.token, &json!({}))
            .await,
        StatusCode::INTERNAL_SERVER_ERROR,
        "internal_error",
    )
    .await;
    let wallet: Value = app
        .get_with("/v1/wallet", &shop.token)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(wallet["balances"][0]["available"], 10_000 - PRICE);
}

/// The database failing inside a transaction (PostgreSQL terminating the connection, as
/// in a restart) is a retryable 503 with `Retry-After`, writes nothing, and the same
/// request succeeds once the database is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(postgres_tests),
    ignore = "TEST_POSTGRES_URL is not set: the PostgreSQL test did not run"
)]
async fn a_connection_cut_inside_a_transaction_is_a_retryable_503() {
    use diesel::connection::SimpleConnection;
    use diesel::Connection;
    let app = TestApp::spawn(Backend::Postgres).await;
    let shop = shop(&app, 10_000).await;
    let before = books(&app, &shop).await;
    // Hold the wallet's row so that the order's debit waits inside its transaction.
    let mut holder = diesel::PgConnection::establish(&app.db.raw_url).unwrap();
    holder
        .batch_execute(&format!(
            "BEGIN; SELECT 1 FROM wallet_balances WHERE partner_id = '{}' FOR UPDATE;",
            shop.partner_id
        ))
        .unwrap();
    let placing = {
        let (client, url, token, body) = (
            app.client.clone(),
            app.url("/v1/orders"),
            shop.token.clone(),
            order_body(&shop),
        );
        tokio::spawn(async move {
            client
                .post(url)
                .bearer_auth(token)
                .header("Idempotency-Key", "cut-1")
                .json(&body)
                .send()
                .await
                .unwrap()
        })
    };
    let name = app.db.postgres_name().unwrap().to_owned();
    while !placing.is_finished() {
        app.db.admin_sql(&format!(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE datname = '{name}' AND wait_event_type = 'Lock'"
        ));
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let response = placing.await.unwrap();
    assert!(response.headers().contains_key("retry-after"));
    let problem = assert_problem(
        response,
        StatusCode::SERVICE_UNAVAILABLE,
        "service_unavailable",
    )
    .await;
    assert_eq!(problem["retryable"], true);
    holder.batch_execute("ROLLBACK").unwrap();
    assert_eq!(books(&app, &shop).await, before, "nothing was written");
    let retried = place(&app, &shop, "cut-1", &order_body(&shop)).await;
    assert_eq!(
        retried.status(),
        StatusCode::CREATED,
        "the same request, later, works"
    );
}
