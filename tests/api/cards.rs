//! Cards, terms, balance and usage, through HTTP.

use std::time::{Duration, Instant};

use chrono::{TimeDelta, Utc};
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::{assert_problem, iccid, metric_sample, plan_id, problem_fields, TestApp};

on_both_backends!(
    a_bad_batch_is_rejected_whole_with_every_row_named,
    another_partners_card_is_404_on_every_route,
    balance_shows_current_and_queued_terms_and_usage,
    the_same_usage_batch_posted_concurrently_counts_once,
    the_same_usage_batch_on_two_instances_counts_once,
    a_change_through_a_sibling_reaches_the_balance_within_the_staleness_bound,
    usage_that_cannot_be_placed_is_rejected_and_writes_nothing,
    list_filters_by_status_type_and_expiry,
    operators_suspend_resume_and_move_cards,
    the_status_filter_in_sql_agrees_with_the_status_rule,
    timestamps_outside_the_accepted_range_are_refused,
);

struct World {
    admin: String,
    partner_id: String,
    partner: String,
    fm_month: String,
    esim_month: String,
}

async fn world(app: &TestApp) -> World {
    app.import_demo_plans().await;
    let admin = app.admin_token().await;
    let (partner, token) = app.partner_with_token("Acme").await;
    World {
        fm_month: plan_id(&app.store, "CN-FM-M-10G").await,
        esim_month: plan_id(&app.store, "JP-ESIM-M-5G").await,
        admin,
        partner_id: partner.id,
        partner: token,
    }
}

async fn grant(
    app: &TestApp,
    w: &World,
    iccid: &str,
    plan: &str,
    valid_from: Option<chrono::DateTime<Utc>>,
) -> Value {
    let mut body = json!({"plan_id": plan});
    if let Some(from) = valid_from {
        body["valid_from"] = json!(from);
    }
    let response = app
        .post_json(&format!("/v1/admin/cards/{iccid}/terms"), &w.admin, &body)
        .await;
    assert_eq!(response.status(), StatusCode::CREATED);
    response.json().await.unwrap()
}

async fn a_bad_batch_is_rejected_whole_with_every_row_named(app: TestApp) {
    let w = world(&app).await;
    let (good_a, good_b) = (iccid(1, 1), iccid(1, 2));
    let bad_luhn = {
        let valid = iccid(1, 3);
        let last = valid.as_bytes()[19] - b'0';
        format!("{}{}", &valid[..19], (last + 1) % 10)
    };
    let response = app
        .import_cards(
            &w.admin,
            &w.partner_id,
            json!([
                {"iccid": good_a, "card_type": "fm", "msisdn": "+8613800138000"},
                {"iccid": good_b, "card_type": "esim"},
                {"iccid": bad_luhn, "card_type": "esim", "eid": "123"},
                {"iccid": good_a, "card_type": "fm", "msisdn": "0086"},
            ]),
        )
        .await;
    let body = assert_problem(
        response,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    )
    .await;
    assert_eq!(
        problem_fields(&body),
        [
            "cards[2].iccid",
            "cards[2].eid",
            "cards[3].iccid",
            "cards[3].msisdn"
        ]
    );
    for iccid in [&good_a, &good_b] {
        let response = app
            .get_with(&format!("/v1/admin/cards/{iccid}"), &w.admin)
            .await;
        assert_problem(response, StatusCode::NOT_FOUND, "not_found").await;
    }

    let response = app
        .import_cards(
            &w.admin,
            &w.partner_id,
            json!([{"iccid": good_a, "card_type": "fm"}]),
        )
        .await;
    assert_eq!(response.status(), StatusCode::CREATED);
    assert_eq!(response.json::<Value>().await.unwrap()["imported"], 1);
    let again = app
        .import_cards(
            &w.admin,
            &w.partner_id,
            json!([{"iccid": good_b, "card_type": "esim"}, {"iccid": good_a, "card_type": "fm"}]),
        )
        .await;
    let body = assert_problem(again, StatusCode::CONFLICT, "conflict").await;
    assert_eq!(
        body["errors"],
        json!([{"field": "cards[1].iccid", "message": format!("{good_a} is already registered")}])
    );
    let response = app
        .get_with(&format!("/v1/admin/cards/{good_b}"), &w.admin)
        .await;
    assert_problem(response, StatusCode::NOT_FOUND, "not_found").await;

    let nobody = app
        .import_cards(
            &w.admin,
            &uuid::Uuid::now_v7().to_string(),
            json!([{"iccid": good_b, "card_type": "esim"}]),
        )
        .await;
    let body = assert_problem(
        nobody,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    )
    .await;
    assert_eq!(body["errors"][0]["field"], "partner_id");
}

async fn another_partners_card_is_404_on_every_route(app: TestApp) {
    let w = world(&app).await;
    let card = iccid(2, 1);
    assert_eq!(
        app.import_cards(
            &w.admin,
            &w.partner_id,
            json!([{"iccid": card, "card_type": "fm"}])
        )
        .await
        .status(),
        StatusCode::CREATED
    );
    let (_, other) = app.partner_with_token("Other").await;
    for path in [
        format!("/v1/cards/{card}"),
        format!("/v1/cards/{card}/balance"),
        "/v1/cards/not-an-iccid".into(),
    ] {
        let body = assert_problem(
            app.get_with(&path, &other).await,
            StatusCode::NOT_FOUND,
            "not_found",
        )
        .await;
        assert!(
            !body.to_string().contains("Acme"),
            "nothing about the owner leaks"
        );
    }
    let listed: Value = app
        .get_with("/v1/cards", &other)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(listed["data"], json!([]));
    assert_eq!(
        app.get_with(&format!("/v1/cards/{card}"), &w.partner)
            .await
            .status(),
        StatusCode::OK
    );
}

async fn balance_shows_current_and_queued_terms_and_usage(app: TestApp) {
    let w = world(&app).await;
    let card = iccid(3, 1);
    app.import_cards(
        &w.admin,
        &w.partner_id,
        json!([{"iccid": card, "card_type": "fm"}]),
    )
    .await;
    let empty: Value = app
        .get_with(&format!("/v1/cards/{card}/balance"), &w.partner)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(empty["status"], "inactive");
    assert_eq!(empty["current"], Value::Null);
    assert_eq!(empty["upcoming"], json!([]));

    grant(&app, &w, &card, &w.fm_month, None).await;
    grant(&app, &w, &card, &w.fm_month, None).await; // queued after the first
    let network = app.network_token().await;
    let now = Utc::now();
    let usage = json!({"records": [
        {"id": "u-1", "iccid": card, "kind": "data", "quantity": 1_073_741_824_i64, "occurred_at": now},
        {"id": "u-2", "iccid": card, "kind": "voice", "quantity": 61, "occurred_at": now},
        {"id": "u-3", "iccid": card, "kind": "voice", "quantity": 60, "occurred_at": now},
        {"id": "u-4", "iccid": card, "kind": "sms", "quantity": 150, "occurred_at": now},
    ]});
    let outcome: Value = app
        .post_json("/v1/network/usage", &network, &usage)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        outcome,
        json!({"accepted": 4, "duplicates": 0, "rejected": []})
    );

    let balance: Value = app
        .get_with(&format!("/v1/cards/{card}/balance"), &w.partner)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(balance["status"], "active");
    assert_eq!(balance["card_type"], "fm");
    let current = &balance["current"];
    assert_eq!(current["plan_code"], "CN-FM-M-10G");
    assert_eq!(current["days_left"], 30);
    assert_eq!(
        current["data"],
        json!({"total_bytes": 10_737_418_240_i64, "used_bytes": 1_073_741_824_i64, "remaining_bytes": 9_663_676_416_i64})
    );
    assert_eq!(
        current["voice"],
        json!({"total_minutes": 300, "used_minutes": 3, "remaining_minutes": 297})
    );
    assert_eq!(
        current["sms"],
        json!({"total": 100, "used": 150, "remaining": 0}),
        "overage kept, remaining floors at 0"
    );
    let upcoming = balance["upcoming"].as_array().unwrap();
    assert_eq!(upcoming.len(), 1);
    assert_eq!(
        upcoming[0]["valid_from"], current["valid_until"],
        "queued right after the current term"
    );

    let card_view: Value = app
        .get_with(&format!("/v1/cards/{card}"), &w.partner)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(card_view["current_term"]["term_id"], current["term_id"]);
}

fn usage_batch(card: &str, count: usize) -> Value {
    let now = Utc::now();
    let records: Vec<Value> = (0..count)
        .map(|i| json!({"id": format!("r-{i:04}"), "iccid": card, "kind": "data", "quantity": 1000, "occurred_at": now}))
        .collect();
    json!({"records": records})
}

async fn used_bytes(app: &TestApp, token: &str, card: &str) -> i64 {
    let balance: Value = app
        .get_with(&format!("/v1/cards/{card}/balance"), token)
        .await
        .json()
        .await
        .unwrap();
    balance["current"]["data"]["used_bytes"].as_i64().unwrap()
}

/// Posts one 40-record batch twice at once, to `app` and to `other` (the same instance or
/// a sibling), and checks every record counted exactly once.
async fn race_one_batch(app: &TestApp, other: &TestApp) {
    let w = world(app).await;
    let card = iccid(4, 1);
    app.import_cards(
        &w.admin,
        &w.partner_id,
        json!([{"iccid": card, "card_type": "fm"}]),
    )
    .await;
    grant(app, &w, &card, &w.fm_month, None).await;
    let network = app.network_token().await;
    let batch = usage_batch(&card, 40);
    let (a, b) = tokio::join!(
        app.post_json("/v1/network/usage", &network, &batch),
        other.post_json("/v1/network/usage", &network, &batch)
    );
    let (a, b): (Value, Value) = (a.json().await.unwrap(), b.json().await.unwrap());
    let sum = |field: &str| a[field].as_i64().unwrap() + b[field].as_i64().unwrap();
    assert_eq!((sum("accepted"), sum("duplicates")), (40, 40), "{a} {b}");
    assert_eq!(used_bytes(app, &w.partner, &card).await, 40_000);
}

async fn the_same_usage_batch_posted_concurrently_counts_once(app: TestApp) {
    race_one_batch(&app, &app).await;
}

async fn the_same_usage_batch_on_two_instances_counts_once(app: TestApp) {
    let sibling = app.spawn_sibling(app.settings()).await;
    race_one_batch(&app, &sibling).await;
}

async fn usage_that_cannot_be_placed_is_rejected_and_writes_nothing(app: TestApp) {
    let w = world(&app).await;
    let card = iccid(6, 1);
    app.import_cards(
        &w.admin,
        &w.partner_id,
        json!([{"iccid": card, "card_type": "fm"}]),
    )
    .await;
    grant(&app, &w, &card, &w.fm_month, None).await;
    let network = app.network_token().await;
    let before = Utc::now() - TimeDelta::days(3);
    let batch = json!({"records": [
        {"id": "bad-1", "iccid": iccid(6, 99), "kind": "data", "quantity": 5, "occurred_at": Utc::now()},
        {"id": "bad-2", "iccid": card, "kind": "data", "quantity": 5, "occurred_at": before},
    ]});
    let outcome: Value = app
        .post_json("/v1/network/usage", &network, &batch)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(outcome["accepted"], 0);
    let ids: Vec<&str> = outcome["rejected"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["bad-1", "bad-2"]);
    assert_eq!(used_bytes(&app, &w.partner, &card).await, 0);

    // A malformed ICCID is refused at the edge, naming the record; the valid record
    // beside it is not applied either.
    let malformed = json!({"records": [
        {"id": "ok-1", "iccid": card, "kind": "data", "quantity": 5, "occurred_at": Utc::now()},
        {"id": "bad-4", "iccid": "8986001", "kind": "data", "quantity": 5, "occurred_at": Utc::now()},
    ]});
    let problem = assert_problem(
        app.post_json("/v1/network/usage", &network, &malformed)
            .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    )
    .await;
    assert_eq!(problem_fields(&problem), ["records[1].iccid"]);
    assert_eq!(used_bytes(&app, &w.partner, &card).await, 0);

    // So are a quantity and an id out of range, each named.
    let out_of_range = json!({"records": [
        {"id": "ok-2", "iccid": card, "kind": "data", "quantity": 5, "occurred_at": Utc::now()},
        {"id": "bad-3", "iccid": card, "kind": "sms", "quantity": 0, "occurred_at": Utc::now()},
        {"id": "x".repeat(129), "iccid": card, "kind": "sms", "quantity": 1, "occurred_at": Utc::now()},
    ]});
    let problem = assert_problem(
        app.post_json("/v1/network/usage", &network, &out_of_range)
            .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    )
    .await;
    assert_eq!(
        problem_fields(&problem),
        ["records[1].quantity", "records[2].id"]
    );
    assert_eq!(used_bytes(&app, &w.partner, &card).await, 0);

    // A counter that cannot hold more refuses the record instead of wrapping or
    // turning into a float; the counter keeps its value.
    let near_full = i64::MAX - 10;
    let sql = format!("UPDATE terms SET data_used_bytes = {near_full} WHERE iccid = '{card}'");
    app.sql(&sql);
    let huge = json!({"records": [
        {"id": "huge-1", "iccid": card, "kind": "data", "quantity": 1_000_000_000_000_000_i64, "occurred_at": Utc::now()},
    ]});
    let outcome: Value = app
        .post_json("/v1/network/usage", &network, &huge)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(outcome["accepted"], 0, "{outcome}");
    assert_eq!(outcome["rejected"][0]["id"], "huge-1");
    assert_eq!(used_bytes(&app, &w.partner, &card).await, near_full);

    let empty = app
        .post_json("/v1/network/usage", &network, &json!({"records": []}))
        .await;
    assert_problem(empty, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed").await;
    let bad_kind = json!({"records": [{"id": "x", "iccid": card, "kind": "mms", "quantity": 1, "occurred_at": Utc::now()}]});
    assert_problem(
        app.post_json("/v1/network/usage", &network, &bad_kind)
            .await,
        StatusCode::BAD_REQUEST,
        "invalid_request",
    )
    .await;
    let forbidden = app
        .post_json("/v1/network/usage", &w.partner, &usage_batch(&card, 1))
        .await;
    assert_problem(forbidden, StatusCode::FORBIDDEN, "forbidden").await;
}

async fn list_filters_by_status_type_and_expiry(app: TestApp) {
    let w = world(&app).await;
    let cards: Vec<String> = (1..=6).map(|n| iccid(7, n)).collect();
    app.import_cards(
        &w.admin,
        &w.partner_id,
        json!([
            {"iccid": cards[0], "card_type": "fm"},
            {"iccid": cards[1], "card_type": "fm"},
            {"iccid": cards[2], "card_type": "fm"},
            {"iccid": cards[3], "card_type": "esim"},
            {"iccid": cards[4], "card_type": "fm"},
            {"iccid": cards[5], "card_type": "esim"},
        ]),
    )
    .await;
    let now = Utc::now();
    // 0: ends in 5 days, nothing queued → expiring. 1: ends in 5 days, a term queued.
    grant(
        &app,
        &w,
        &cards[0],
        &w.fm_month,
        Some(now - TimeDelta::days(25)),
    )
    .await;
    grant(
        &app,
        &w,
        &cards[1],
        &w.fm_month,
        Some(now - TimeDelta::days(25)),
    )
    .await;
    grant(&app, &w, &cards[1], &w.fm_month, None).await;
    // 2: ends in 20 days. 3: expired a month ago. 4: suspended. 5: never had a term.
    grant(
        &app,
        &w,
        &cards[2],
        &w.fm_month,
        Some(now - TimeDelta::days(10)),
    )
    .await;
    grant(
        &app,
        &w,
        &cards[3],
        &w.esim_month,
        Some(now - TimeDelta::days(60)),
    )
    .await;
    app.post_json(
        &format!("/v1/admin/cards/{}/suspend", cards[4]),
        &w.admin,
        &json!({}),
    )
    .await;

    let app = &app;
    let codes = |query: &'static str| {
        let token = w.partner.clone();
        async move {
            let response = app.get_with(&format!("/v1/cards?{query}"), &token).await;
            assert_eq!(response.status(), StatusCode::OK, "{query}");
            let page: Value = response.json().await.unwrap();
            page["data"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| c["iccid"].as_str().unwrap().to_owned())
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(codes("expiring_within_days=7").await, [cards[0].clone()]);
    assert_eq!(
        codes("expiring_within_days=30").await,
        [cards[0].clone(), cards[2].clone()]
    );
    assert_eq!(
        codes("status=active").await,
        [cards[0].clone(), cards[1].clone(), cards[2].clone()]
    );
    assert_eq!(codes("status=expired").await, [cards[3].clone()]);
    assert_eq!(codes("status=suspended").await, [cards[4].clone()]);
    assert_eq!(codes("status=inactive").await, [cards[5].clone()]);
    assert_eq!(
        codes("card_type=esim").await,
        [cards[3].clone(), cards[5].clone()]
    );
    assert_eq!(codes("").await, cards);

    let mut paged = Vec::new();
    let mut cursor = String::new();
    loop {
        let page: Value = app
            .get_with(&format!("/v1/cards?limit=4{cursor}"), &w.partner)
            .await
            .json()
            .await
            .unwrap();
        paged.extend(
            page["data"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| c["iccid"].as_str().unwrap().to_owned()),
        );
        match page["next_cursor"].as_str() {
            Some(next) => cursor = format!("&cursor={next}"),
            None => break,
        }
    }
    assert_eq!(paged, cards);
    for (query, field) in [
        ("status=gone", "status"),
        ("card_type=usim", "card_type"),
        ("expiring_within_days=9999", "expiring_within_days"),
    ] {
        let body = assert_problem(
            app.get_with(&format!("/v1/cards?{query}"), &w.partner)
                .await,
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        )
        .await;
        assert_eq!(body["errors"][0]["field"], field);
    }
}

async fn operators_suspend_resume_and_move_cards(app: TestApp) {
    let w = world(&app).await;
    let card = iccid(8, 1);
    app.import_cards(
        &w.admin,
        &w.partner_id,
        json!([{"iccid": card, "card_type": "esim"}]),
    )
    .await;
    let suspended: Value = app
        .post_json(
            &format!("/v1/admin/cards/{card}/suspend"),
            &w.admin,
            &json!({}),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(suspended["status"], "suspended");
    assert_eq!(suspended["partner_id"], w.partner_id);
    let resumed: Value = app
        .post_json(
            &format!("/v1/admin/cards/{card}/resume"),
            &w.admin,
            &json!({}),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(resumed["status"], "inactive");

    let (other, other_token) = app.partner_with_token("Other").await;
    let moved = app
        .post_json(
            &format!("/v1/admin/cards/{card}/move"),
            &w.admin,
            &json!({"partner_id": other.id}),
        )
        .await;
    assert_eq!(moved.status(), StatusCode::OK);
    assert_problem(
        app.get_with(&format!("/v1/cards/{card}"), &w.partner).await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    assert_eq!(
        app.get_with(&format!("/v1/cards/{card}"), &other_token)
            .await
            .status(),
        StatusCode::OK
    );

    let wrong_type = app
        .post_json(
            &format!("/v1/admin/cards/{card}/terms"),
            &w.admin,
            &json!({"plan_id": w.fm_month}),
        )
        .await;
    assert_problem(
        wrong_type,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    )
    .await;
    let missing = app
        .post_json(
            &format!("/v1/admin/cards/{}/suspend", iccid(8, 2)),
            &w.admin,
            &json!({}),
        )
        .await;
    assert_problem(missing, StatusCode::NOT_FOUND, "not_found").await;
    let by_partner = app
        .post_json(
            &format!("/v1/admin/cards/{card}/suspend"),
            &other_token,
            &json!({}),
        )
        .await;
    assert_problem(by_partner, StatusCode::FORBIDDEN, "forbidden").await;
}

/// Card status has one definition (`cards::terms::status`); the list filter must say the
/// same in SQL. Cards with every shape of terms are listed at moments before, inside,
/// at the edges of and after their terms (the clock moved, nothing slept), and each
/// status filter must return exactly the cards whose shown status is that status.
async fn the_status_filter_in_sql_agrees_with_the_status_rule(app: TestApp) {
    let w = world(&app).await;
    let cards: Vec<String> = (1..=7).map(|n| iccid(8, n)).collect();
    let rows: Vec<Value> = cards
        .iter()
        .map(|c| json!({"iccid": c, "card_type": "fm"}))
        .collect();
    let imported = app
        .import_cards(&w.admin, &w.partner_id, Value::Array(rows))
        .await;
    assert_eq!(imported.status(), StatusCode::CREATED);
    let start = app.clock.now();
    let day = TimeDelta::days(1);
    // 0: none. 1: one term from day 0. 2: one from day 40. 3: day 0 and day 30 back to back.
    // 4: day 0, then a gap, then day 50. 5: as 1, suspended. 6: as 4, suspended.
    for (card, offsets) in [
        (1, vec![0]),
        (2, vec![40]),
        (3, vec![0, 30]),
        (4, vec![0, 50]),
        (5, vec![0]),
        (6, vec![0, 50]),
    ] {
        for offset in offsets {
            grant(
                &app,
                &w,
                &cards[card],
                &w.fm_month,
                Some(start + day * offset),
            )
            .await;
        }
    }
    for card in [5, 6] {
        let suspended = app
            .post_json(
                &format!("/v1/admin/cards/{}/suspend", cards[card]),
                &w.admin,
                &json!({}),
            )
            .await;
        assert_eq!(suspended.status(), StatusCode::OK);
    }
    // Days at which to look, relative to start: before, inside, at each edge, in the gap, after.
    let mut looked_at = TimeDelta::zero();
    for at_day in [-1, 0, 1, 29, 30, 31, 45, 50, 60, 79, 80, 81, 200] {
        let target = day * at_day - TimeDelta::seconds(1) * i32::from(at_day < 0);
        app.clock.advance(target - looked_at);
        looked_at = target;
        let all: Value = app
            .get_with("/v1/cards?limit=100", &w.partner)
            .await
            .json()
            .await
            .unwrap();
        let mut expected: std::collections::HashMap<String, Vec<String>> = Default::default();
        for card in all["data"].as_array().unwrap() {
            if cards.contains(&card["iccid"].as_str().unwrap().to_owned()) {
                expected
                    .entry(card["status"].as_str().unwrap().to_owned())
                    .or_default()
                    .push(card["iccid"].as_str().unwrap().to_owned());
            }
        }
        for status in ["inactive", "active", "expired", "suspended"] {
            let listed: Value = app
                .get_with(&format!("/v1/cards?status={status}&limit=100"), &w.partner)
                .await
                .json()
                .await
                .unwrap();
            let mut got: Vec<String> = listed["data"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| c["iccid"].as_str().unwrap().to_owned())
                .filter(|c| cards.contains(c))
                .collect();
            got.sort();
            let mut want = expected.remove(status).unwrap_or_default();
            want.sort();
            assert_eq!(got, want, "status {status} on day {at_day}");
        }
        assert!(expected.is_empty(), "unknown statuses shown: {expected:?}");
    }
}

/// A timestamp from a client is 2000-01-01 to before 2100-01-01: far dates are a 4xx
/// naming the field (they were a 500, or stored), and nothing is written.
async fn timestamps_outside_the_accepted_range_are_refused(app: TestApp) {
    let w = world(&app).await;
    let card = iccid(9, 1);
    app.import_cards(
        &w.admin,
        &w.partner_id,
        json!([{"iccid": card, "card_type": "fm"}]),
    )
    .await;
    for at in [
        "9999-12-31T23:59:59Z",
        "0001-01-01T00:00:00Z",
        "2100-01-01T00:00:00Z",
    ] {
        let problem = assert_problem(
            app.post_json(
                &format!("/v1/admin/cards/{card}/terms"),
                &w.admin,
                &json!({"plan_id": w.fm_month, "valid_from": at}),
            )
            .await,
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        )
        .await;
        assert_eq!(problem_fields(&problem), ["valid_from"], "{at}");
    }
    let beyond_four_digits = app
        .post_json(
            &format!("/v1/admin/cards/{card}/terms"),
            &w.admin,
            &json!({"plan_id": w.fm_month, "valid_from": "+10000-01-01T00:00:00Z"}),
        )
        .await;
    assert!(beyond_four_digits.status().is_client_error());
    let balance: Value = app
        .get_with(&format!("/v1/cards/{card}/balance"), &w.partner)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(balance["current"], Value::Null);
    assert_eq!(balance["upcoming"], json!([]), "no term was granted");

    let network = app.network_token().await;
    let far = json!({"records": [{"id": "far-1", "iccid": card, "kind": "data", "quantity": 1,
        "occurred_at": "9999-12-31T23:59:59Z"}]});
    let problem = assert_problem(
        app.post_json("/v1/network/usage", &network, &far).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    )
    .await;
    assert_eq!(problem_fields(&problem), ["records[0].occurred_at"]);

    let orders_token = app.partner_with_token("Reader").await.1;
    let problem = assert_problem(
        app.get_with(
            "/v1/orders?created_after=9999-12-31T23:59:59Z",
            &orders_token,
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    )
    .await;
    assert_eq!(problem_fields(&problem), ["created_after"]);
}

/// Reads `path` on `app` until `arrived` holds of the answer (at most three times the
/// card cache's staleness bound); how long that took.
async fn until_seen(
    app: &TestApp,
    path: &str,
    token: &str,
    arrived: impl Fn(&Value) -> bool,
) -> Duration {
    let bound = simrenew::cards::cache::STALENESS_BOUND;
    let started = Instant::now();
    loop {
        let answer: Value = app.get_with(path, token).await.json().await.unwrap();
        if arrived(&answer) {
            return started.elapsed();
        }
        assert!(started.elapsed() < bound * 3, "never arrived: {answer}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// One data record of `bytes` for `card`, named `id`.
fn one_record(id: &str, card: &str, bytes: i64) -> Value {
    json!({"records": [{"id": id, "iccid": card, "kind": "data", "quantity": bytes, "occurred_at": Utc::now()}]})
}

/// Card reads `app` answered from memory so far.
async fn reads_from_memory(app: &TestApp) -> f64 {
    let text = app.get("/metrics").await.text().await.unwrap();
    metric_sample(&text, r#"simrenew_card_reads_total{source="memory"}"#).unwrap_or(0.0)
}

/// Reads `path` on `app` until an answer comes from memory (a copy is kept for the
/// staleness bound, so two reads in a row usually do it); that answer.
async fn from_memory(app: &TestApp, path: &str, token: &str) -> Value {
    let deadline = Instant::now() + simrenew::cards::cache::STALENESS_BOUND * 5;
    loop {
        let before = reads_from_memory(app).await;
        let answer: Value = app.get_with(path, token).await.json().await.unwrap();
        if reads_from_memory(app).await > before {
            return answer;
        }
        assert!(Instant::now() < deadline, "never answered from memory");
    }
}

/// Each instance keeps recent cards in memory: a change made through the instance is in
/// its very next answer, and one made through a sibling (usage, a suspension) reaches
/// its answers within `cards::cache::STALENESS_BOUND`.
async fn a_change_through_a_sibling_reaches_the_balance_within_the_staleness_bound(app: TestApp) {
    use simrenew::cards::cache::STALENESS_BOUND;
    let w = world(&app).await;
    let card = iccid(8, 1);
    app.import_cards(
        &w.admin,
        &w.partner_id,
        json!([{"iccid": card, "card_type": "fm"}]),
    )
    .await;
    grant(&app, &w, &card, &w.fm_month, None).await;
    let sibling = app.spawn_sibling(app.settings()).await;
    let network = app.network_token().await;
    let balance_path = format!("/v1/cards/{card}/balance");
    let held = from_memory(&app, &balance_path, &w.partner).await;
    assert_eq!(held["current"]["data"]["used_bytes"], 0);

    // Usage recorded through this instance: in its next answer, at once.
    let posted = app
        .post_json(
            "/v1/network/usage",
            &network,
            &one_record("here-1", &card, 1_000),
        )
        .await;
    assert_eq!(posted.status(), StatusCode::OK);
    assert_eq!(used_bytes(&app, &w.partner, &card).await, 1_000);
    // The card of another partner is not found in memory either.
    let (_, stranger) = app.partner_with_token("Stranger").await;
    assert_problem(
        app.get_with(&balance_path, &stranger).await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;

    // Usage through the sibling, then a suspension through it: each reaches this
    // instance's balance within the bound.
    let usage = sibling
        .post_json(
            "/v1/network/usage",
            &network,
            &one_record("there-1", &card, 2_000),
        )
        .await;
    assert_eq!(usage.status(), StatusCode::OK);
    let took = until_seen(&app, &balance_path, &w.partner, |b| {
        b["current"]["data"]["used_bytes"] == 3_000
    })
    .await;
    // The margin is for this loaded machine's request times.
    assert!(
        took < STALENESS_BOUND + Duration::from_millis(500),
        "usage took {took:?}"
    );
    let suspension = sibling
        .post_json(
            &format!("/v1/admin/cards/{card}/suspend"),
            &w.admin,
            &json!({}),
        )
        .await;
    assert_eq!(suspension.status(), StatusCode::OK);
    let took = until_seen(&app, &balance_path, &w.partner, |b| {
        b["status"] == "suspended"
    })
    .await;
    assert!(
        took < STALENESS_BOUND + Duration::from_millis(500),
        "suspension took {took:?}"
    );

    // Served from memory again, as it now stands.
    let held = from_memory(&app, &balance_path, &w.partner).await;
    assert_eq!(held["status"], "suspended");
    assert_eq!(held["current"]["data"]["used_bytes"], 3_000);
}
