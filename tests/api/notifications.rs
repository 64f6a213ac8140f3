//! Notices: data thresholds told once per term (also when one batch passes two, also
//! from two instances at once), expiry told by the sweep once per term and threshold,
//! and a wallet's fall below its alert amount told once per crossing; the settings that
//! choose them, with bad input refused and nothing changed.

use chrono::TimeDelta;
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::{assert_problem, iccid, metric_sample, plan_id, problem_fields, TestApp};
use simrenew::auth::scopes::Scope;
use simrenew::notifications::expiry;

on_both_backends!(
    settings_start_at_the_defaults_and_bad_ones_change_nothing,
    one_batch_passing_two_thresholds_tells_each_once,
    two_instances_counting_usage_at_once_tell_each_threshold_once,
    expiry_is_told_once_per_term_and_threshold_by_the_sweep,
    a_renewal_moves_the_end_and_a_threshold_passed_before_the_term_is_not_told,
    a_wallet_falling_below_its_alert_is_told_once_per_crossing,
);

const GIB: i64 = 1_073_741_824;

struct Shop {
    partner: String,
    token: String,
    admin: String,
    network: String,
    card: String,
    plan: String,
}

/// Demo catalog, a partner with the scopes these tests use (events included), an FM
/// card and CNY 1000.00 in its wallet.
async fn shop(app: &TestApp, card: &str) -> Shop {
    app.import_demo_plans().await;
    let scopes = [
        Scope::CardsRead,
        Scope::OrdersRead,
        Scope::OrdersWrite,
        Scope::WalletRead,
        Scope::Webhooks,
    ];
    let cards = json!([{"iccid": card, "card_type": "fm"}]);
    let stocked = app.stocked_partner("Acme", &scopes, cards, 100_000).await;
    Shop {
        partner: stocked.partner.id,
        token: stocked.token,
        admin: stocked.admin,
        network: app.network_token().await,
        card: card.to_owned(),
        // 10 GiB for 30 days, CNY 39.00.
        plan: plan_id(&app.store, "CN-FM-M-10G").await,
    }
}

async fn place(app: &TestApp, shop: &Shop) -> Value {
    app.wallet_order(&shop.token, &shop.card, &shop.plan).await
}

/// A paid order whose term is confirmed: the card has 10 GiB for 30 days from now.
async fn renewed(app: &TestApp, shop: &Shop) -> Value {
    let order = place(app, shop).await;
    let id = order["id"].as_str().unwrap();
    let confirmed = app
        .client
        .post(app.url(&format!("/v1/orders/{id}/activation/confirm")))
        .bearer_auth(&shop.token)
        .send()
        .await
        .unwrap();
    assert_eq!(confirmed.status(), StatusCode::OK);
    confirmed.json().await.unwrap()
}

async fn usage(app: &TestApp, shop: &Shop, records: &[(&str, i64)]) -> Value {
    let now = app.clock.now();
    let records: Vec<Value> = records
        .iter()
        .map(|(id, bytes)| json!({"id": id, "iccid": shop.card, "kind": "data", "quantity": bytes, "occurred_at": now}))
        .collect();
    let response = app
        .post_json(
            "/v1/network/usage",
            &shop.network,
            &json!({ "records": records }),
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    response.json().await.unwrap()
}

/// The partner's events of `event_type`, oldest first.
async fn told(app: &TestApp, token: &str, event_type: &str) -> Vec<Value> {
    let response = app
        .get_with(&format!("/v1/events?type={event_type}&limit=100"), token)
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let page: Value = response.json().await.unwrap();
    page["data"].as_array().unwrap().clone()
}

async fn settings(app: &TestApp, token: &str) -> Value {
    let response = app.get_with("/v1/notification-settings", token).await;
    assert_eq!(response.status(), StatusCode::OK);
    response.json().await.unwrap()
}

async fn put_settings(app: &TestApp, token: &str, body: &Value) -> reqwest::Response {
    app.client
        .put(app.url("/v1/notification-settings"))
        .bearer_auth(token)
        .json(body)
        .send()
        .await
        .unwrap()
}

async fn settings_start_at_the_defaults_and_bad_ones_change_nothing(app: TestApp) {
    let shop = shop(&app, &iccid(90, 1)).await;
    let defaults = json!({
        "data_thresholds_percent": [75, 90, 100],
        "expiry_days": [7, 3, 1],
        "wallet_low_balance": [],
        "updated_at": null,
    });
    assert_eq!(settings(&app, &shop.token).await, defaults);

    let changed = put_settings(
        &app,
        &shop.token,
        &json!({
            "data_thresholds_percent": [90, 50.0],
            "expiry_days": [1, 14],
            "wallet_low_balance": [{"currency": "USD", "amount": 1000}, {"currency": "CNY", "amount": 50000}],
        }),
    )
    .await;
    assert_eq!(changed.status(), StatusCode::OK);
    let changed: Value = changed.json().await.unwrap();
    assert_eq!(changed["data_thresholds_percent"], json!([50, 90]));
    assert_eq!(changed["expiry_days"], json!([14, 1]));
    assert_eq!(
        changed["wallet_low_balance"],
        json!([{"currency": "CNY", "amount": 50000}, {"currency": "USD", "amount": 1000}])
    );
    assert!(changed["updated_at"].as_str().unwrap().ends_with('Z'));
    assert_eq!(settings(&app, &shop.token).await, changed);

    for (body, fields) in [
        (
            json!({"data_thresholds_percent": [0, 101, 90, 90]}),
            vec![
                "data_thresholds_percent[0]",
                "data_thresholds_percent[1]",
                "data_thresholds_percent[3]",
            ],
        ),
        (
            json!({"expiry_days": [0, 61, 1, 2, 3, 4, 5, 6, 7, 8, 9]}),
            vec!["expiry_days", "expiry_days[0]", "expiry_days[1]"],
        ),
        (
            json!({"wallet_low_balance": [
                {"currency": "XXY", "amount": 1},
                {"currency": "CNY", "amount": 0},
                {"currency": "USD", "amount": 5},
                {"currency": "USD", "amount": 6},
            ]}),
            vec![
                "wallet_low_balance[0].currency",
                "wallet_low_balance[1].amount",
                "wallet_low_balance[3].currency",
            ],
        ),
    ] {
        let refused = put_settings(&app, &shop.token, &body).await;
        let problem = assert_problem(
            refused,
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        )
        .await;
        assert_eq!(problem_fields(&problem), fields, "{body}");
    }
    for malformed in [
        json!({"data_thresholds_percent": [75.5]}),
        json!({"expiry_days": ["7"]}),
        json!({"colour": "red"}),
    ] {
        let refused = put_settings(&app, &shop.token, &malformed).await;
        assert_eq!(refused.status(), StatusCode::BAD_REQUEST, "{malformed}");
    }
    assert_eq!(
        settings(&app, &shop.token).await,
        changed,
        "nothing changed"
    );

    // Left out: the defaults again; an empty list: that notice off.
    let reset = put_settings(&app, &shop.token, &json!({"expiry_days": []})).await;
    let reset: Value = reset.json().await.unwrap();
    assert_eq!(reset["data_thresholds_percent"], json!([75, 90, 100]));
    assert_eq!(reset["expiry_days"], json!([]));
    assert_eq!(reset["wallet_low_balance"], json!([]));

    // The scope is `webhooks`.
    let (_, other) = app.partner_with_token("Other").await;
    let forbidden = app.get_with("/v1/notification-settings", &other).await;
    assert_problem(forbidden, StatusCode::FORBIDDEN, "forbidden").await;
}

async fn one_batch_passing_two_thresholds_tells_each_once(app: TestApp) {
    let shop = shop(&app, &iccid(90, 2)).await;
    renewed(&app, &shop).await;
    // 8 GiB of 10: 80 %, past 75.
    usage(&app, &shop, &[("u-1", 8 * GIB)]).await;
    let first = told(&app, &shop.token, "card.usage_threshold").await;
    assert_eq!(first.len(), 1);
    let data = &first[0]["data"];
    assert_eq!(data["threshold_percent"], 75);
    assert_eq!(data["balance"]["iccid"], shop.card);
    assert_eq!(data["balance"]["current"]["data"]["used_bytes"], 8 * GIB);
    assert_eq!(data["balance"]["current"]["term_id"], data["term_id"]);

    // One batch of two records: 80 % → 95 % → 110 %, past 90 and 100.
    let outcome = usage(&app, &shop, &[("u-2", 3 * GIB / 2), ("u-3", 3 * GIB / 2)]).await;
    assert_eq!(outcome["accepted"], 2);
    let thresholds: Vec<i64> = told(&app, &shop.token, "card.usage_threshold")
        .await
        .iter()
        .map(|e| e["data"]["threshold_percent"].as_i64().unwrap())
        .collect();
    assert_eq!(thresholds, [75, 90, 100]);

    // More use, or the same records again: nothing more.
    usage(&app, &shop, &[("u-4", GIB), ("u-1", 8 * GIB)]).await;
    assert_eq!(
        told(&app, &shop.token, "card.usage_threshold").await.len(),
        3
    );

    // Chosen thresholds: only those are told.
    let custom = put_settings(
        &app,
        &shop.token,
        &json!({"data_thresholds_percent": [10, 30]}),
    )
    .await;
    assert_eq!(custom.status(), StatusCode::OK);
    app.sql("DELETE FROM usage_records");
    app.sql("UPDATE terms SET data_used_bytes = 0");
    usage(&app, &shop, &[("v-1", 5 * GIB)]).await;
    let thresholds: Vec<i64> = told(&app, &shop.token, "card.usage_threshold")
        .await
        .iter()
        .skip(3)
        .map(|e| e["data"]["threshold_percent"].as_i64().unwrap())
        .collect();
    assert_eq!(thresholds, [10, 30], "one record passing two tells both");
}

async fn two_instances_counting_usage_at_once_tell_each_threshold_once(app: TestApp) {
    let sibling = app.spawn_sibling(app.settings()).await;
    let shop = shop(&app, &iccid(90, 3)).await;
    renewed(&app, &shop).await;
    // 40 records of 2.5 % each, as 40 one-record batches, half on each instance.
    let step = 10 * GIB / 40;
    let now = app.clock.now();
    let sends = (0..40).map(|i| {
        let target = if i % 2 == 0 { &app } else { &sibling };
        let body = json!({"records": [{"id": format!("r-{i}"), "iccid": shop.card, "kind": "data", "quantity": step, "occurred_at": now}]});
        let network = shop.network.clone();
        async move {
            let response = target.post_json("/v1/network/usage", &network, &body).await;
            assert_eq!(response.status(), StatusCode::OK);
            let outcome: Value = response.json().await.unwrap();
            assert_eq!(outcome["accepted"], 1, "{outcome}");
        }
    });
    futures_util::future::join_all(sends).await;
    let thresholds: Vec<i64> = told(&app, &shop.token, "card.usage_threshold")
        .await
        .iter()
        .map(|e| e["data"]["threshold_percent"].as_i64().unwrap())
        .collect();
    assert_eq!(thresholds, [75, 90, 100]);
}

fn days_told(events: &[Value]) -> Vec<i64> {
    events
        .iter()
        .map(|e| e["data"]["days_before"].as_i64().unwrap())
        .collect()
}

async fn sweep(app: &TestApp) -> usize {
    expiry::sweep(&app.store, &app.clock).await.unwrap()
}

async fn expiry_is_told_once_per_term_and_threshold_by_the_sweep(app: TestApp) {
    let sibling = app.spawn_sibling(app.settings()).await;
    let shop = shop(&app, &iccid(90, 4)).await;
    let activation = renewed(&app, &shop).await;
    let ends = activation["valid_until"].as_str().unwrap().to_owned();
    assert_eq!(sweep(&app).await, 0, "30 days left: nothing to tell");

    app.clock
        .advance(TimeDelta::days(23) + TimeDelta::minutes(1));
    assert_eq!(sweep(&app).await, 1);
    assert_eq!(sweep(&app).await, 0, "told once");
    let expiring = told(&app, &shop.token, "card.expiring").await;
    assert_eq!(days_told(&expiring), [7]);
    let data = &expiring[0]["data"];
    assert_eq!(data["service_ends_at"], ends);
    assert_eq!(data["balance"]["iccid"], shop.card);
    assert_eq!(data["balance"]["current"]["days_left"], 7);

    // Two instances sweeping at once tell the 3-day notice once.
    app.clock.advance(TimeDelta::days(4) + TimeDelta::hours(12));
    let (a, b) = tokio::join!(
        expiry::sweep(&app.store, &app.clock),
        expiry::sweep(&sibling.store, &app.clock)
    );
    assert_eq!(a.unwrap() + b.unwrap(), 1);
    assert_eq!(
        days_told(&told(&app, &shop.token, "card.expiring").await),
        [7, 3]
    );

    // Swept only once after an outage past the last threshold and the end: the
    // closest threshold is not told late, the end is told once.
    app.clock.advance(TimeDelta::days(3));
    assert_eq!(sweep(&app).await, 1);
    assert_eq!(sweep(&app).await, 0);
    assert_eq!(
        days_told(&told(&app, &shop.token, "card.expiring").await),
        [7, 3]
    );
    let expired = told(&app, &shop.token, "card.expired").await;
    assert_eq!(expired.len(), 1);
    assert_eq!(expired[0]["data"]["service_ended_at"], ends);
    assert_eq!(expired[0]["data"]["balance"]["status"], "expired");
}

async fn a_renewal_moves_the_end_and_a_threshold_passed_before_the_term_is_not_told(app: TestApp) {
    let shop = shop(&app, &iccid(90, 5)).await;
    renewed(&app, &shop).await;
    // 40 days ahead: the 30-day term was already within it when bought.
    let changed = put_settings(&app, &shop.token, &json!({"expiry_days": [40, 3]})).await;
    assert_eq!(changed.status(), StatusCode::OK);
    assert_eq!(sweep(&app).await, 0);
    assert!(told(&app, &shop.token, "card.expiring").await.is_empty());

    // 5 days before the end a renewal is queued after it: the first term's end is no
    // longer the end of service, so its 3-day notice never comes...
    app.clock.advance(TimeDelta::days(25));
    let renewal = renewed(&app, &shop).await;
    app.clock.advance(TimeDelta::days(3));
    assert_eq!(sweep(&app).await, 0);
    // ...and the queued term is told 3 days before its own end.
    app.clock.advance(TimeDelta::days(29));
    assert_eq!(sweep(&app).await, 1);
    let expiring = told(&app, &shop.token, "card.expiring").await;
    assert_eq!(days_told(&expiring), [3]);
    assert_eq!(
        expiring[0]["data"]["service_ends_at"],
        renewal["valid_until"]
    );
    assert!(told(&app, &shop.token, "card.expired").await.is_empty());
}

async fn a_wallet_falling_below_its_alert_is_told_once_per_crossing(app: TestApp) {
    let shop = shop(&app, &iccid(90, 6)).await;
    let alert = put_settings(
        &app,
        &shop.token,
        &json!({"wallet_low_balance": [{"currency": "CNY", "amount": 90_000}]}),
    )
    .await;
    assert_eq!(alert.status(), StatusCode::OK);
    let balance = || async {
        let wallet: Value = app
            .get_with("/v1/wallet", &shop.token)
            .await
            .json()
            .await
            .unwrap();
        wallet["balances"][0]["available"].as_i64().unwrap()
    };
    // CNY 1000.00, orders of 39.00: two stay above 900.00, the third goes below.
    place(&app, &shop).await;
    place(&app, &shop).await;
    assert_eq!(balance().await, 92_200);
    assert!(told(&app, &shop.token, "wallet.low_balance")
        .await
        .is_empty());
    place(&app, &shop).await;
    let low = told(&app, &shop.token, "wallet.low_balance").await;
    assert_eq!(low.len(), 1);
    assert_eq!(
        low[0]["data"],
        json!({"threshold": 90_000, "balance": {"currency": "CNY", "available": 88_300}})
    );
    // Below already: no more notices...
    place(&app, &shop).await;
    assert_eq!(told(&app, &shop.token, "wallet.low_balance").await.len(), 1);
    // ...until it is topped up above the alert and falls below it again.
    app.credit_wallet(&shop.admin, &shop.partner, "CNY", 10_000, None)
        .await;
    assert_eq!(balance().await, 94_400);
    place(&app, &shop).await;
    assert_eq!(told(&app, &shop.token, "wallet.low_balance").await.len(), 1);
    place(&app, &shop).await;
    let low = told(&app, &shop.token, "wallet.low_balance").await;
    assert_eq!(low.len(), 2);
    assert_eq!(low[1]["data"]["balance"]["available"], 86_600);
    // On PostgreSQL the two orders that crossed the alert took the general path (which
    // tells it); the other four, above it or below it already, were one statement each.
    let text = app.get("/metrics").await.text().await.unwrap();
    let path = |name: &str| {
        metric_sample(
            &text,
            &format!(r#"simrenew_wallet_order_paths_total{{path="{name}"}}"#),
        )
    };
    match app.store.backend() {
        simrenew::db::Backend::Postgres => {
            assert_eq!(
                (path("one_statement"), path("general")),
                (Some(4.0), Some(2.0))
            )
        }
        simrenew::db::Backend::Sqlite => assert_eq!(path("general"), Some(6.0)),
    }
}
