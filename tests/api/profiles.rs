//! eSIM profile events from the SM-DP+: kept once per event id, shown in the activation
//! they name, the latest setting the card's state; an installed profile confirms its
//! pending activation; bad events are refused one by one and bad reports as a whole.

use chrono::{TimeDelta, Utc};
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::{assert_problem, iccid, plan_id, problem_fields, TestApp};
use simrenew::auth::scopes::Scope;

on_both_backends!(
    an_installed_profile_confirms_its_pending_activation_once,
    events_arriving_late_join_the_history_without_moving_the_state,
    bad_events_are_refused_one_by_one_and_a_bad_report_changes_nothing,
    the_same_report_on_two_instances_at_once_applies_once,
);

const EID: &str = "89049032123451234512345678900071";
const OTHER_EID: &str = "89049032000000000000000000000066";

struct Shop {
    token: String,
    network: String,
    esim: String,
    fm: String,
    plan: String,
}

async fn shop(app: &TestApp, n: u64) -> Shop {
    app.import_demo_plans().await;
    let scopes = [
        Scope::CardsRead,
        Scope::OrdersRead,
        Scope::OrdersWrite,
        Scope::Webhooks,
    ];
    let (esim, fm) = (iccid(91, 2 * n), iccid(91, 2 * n + 1));
    let cards = json!([{"iccid": esim, "card_type": "esim"}, {"iccid": fm, "card_type": "fm"}]);
    let stocked = app.stocked_partner("Acme", &scopes, cards, 100_000).await;
    Shop {
        token: stocked.token,
        network: app.network_token().await,
        esim,
        fm,
        plan: plan_id(&app.store, "JP-ESIM-M-5G").await,
    }
}

/// A paid eSIM order's pending activation.
async fn pending_activation(app: &TestApp, shop: &Shop) -> Value {
    let order = app.wallet_order(&shop.token, &shop.esim, &shop.plan).await;
    activation(app, shop, order["id"].as_str().unwrap()).await
}

async fn activation(app: &TestApp, shop: &Shop, order_id: &str) -> Value {
    let response = app
        .get_with(&format!("/v1/orders/{order_id}/activation"), &shop.token)
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    response.json().await.unwrap()
}

async fn card(app: &TestApp, shop: &Shop, iccid: &str) -> Value {
    app.get_with(&format!("/v1/cards/{iccid}"), &shop.token)
        .await
        .json()
        .await
        .unwrap()
}

async fn report(app: &TestApp, network: &str, events: Value) -> reqwest::Response {
    app.post_json(
        "/v1/network/profile-events",
        network,
        &json!({ "events": events }),
    )
    .await
}

async fn report_ok(app: &TestApp, network: &str, events: Value) -> Value {
    let response = report(app, network, events).await;
    assert_eq!(response.status(), StatusCode::OK);
    response.json().await.unwrap()
}

async fn told(app: &TestApp, token: &str) -> Vec<String> {
    let page: Value = app
        .get_with("/v1/events?limit=100", token)
        .await
        .json()
        .await
        .unwrap();
    page["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].as_str().unwrap().to_owned())
        .collect()
}

fn states(activation: &Value) -> Vec<&str> {
    activation["profile_history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["state"].as_str().unwrap())
        .collect()
}

async fn an_installed_profile_confirms_its_pending_activation_once(app: TestApp) {
    let shop = shop(&app, 1).await;
    let pending = pending_activation(&app, &shop).await;
    assert_eq!(pending["status"], "pending");
    assert_eq!(pending["profile_state"], Value::Null);
    assert_eq!(pending["profile_history"], json!([]));
    let order_id = pending["order_id"].as_str().unwrap();
    let matching_id = pending["matching_id"].as_str().unwrap();
    let at = |minutes: i64| Utc::now() - TimeDelta::minutes(10 - minutes);
    let events = json!([
        {"id": "dp-1", "iccid": shop.esim, "matching_id": matching_id, "state": "released", "occurred_at": at(0)},
        {"id": "dp-2", "iccid": shop.esim, "matching_id": matching_id, "eid": EID, "state": "downloaded", "occurred_at": at(1)},
        {"id": "dp-3", "iccid": shop.esim, "matching_id": matching_id, "eid": EID, "state": "installed", "occurred_at": at(2)},
    ]);
    let outcome = report_ok(&app, &shop.network, events.clone()).await;
    assert_eq!(
        outcome,
        json!({"accepted": 3, "duplicates": 0, "rejected": []})
    );
    let confirmed = activation(&app, &shop, order_id).await;
    assert_eq!(confirmed["status"], "confirmed", "confirmed by the install");
    assert!(confirmed["valid_until"].is_string());
    assert_eq!(confirmed["profile_state"], "installed");
    assert_eq!(states(&confirmed), ["released", "downloaded", "installed"]);
    let last = &confirmed["profile_history"][2];
    assert_eq!(last["id"], "dp-3");
    assert_eq!(last["eid"], EID);
    assert_eq!(last["order_id"], order_id);
    let shown = card(&app, &shop, &shop.esim).await;
    assert_eq!(shown["profile_state"], "installed");
    assert_eq!(shown["eid"], EID, "the EID is recorded on the card");
    assert_eq!(shown["status"], "active");
    assert_eq!(
        told(&app, &shop.token).await,
        [
            "order.paid",
            "profile.state_changed",
            "profile.state_changed",
            "profile.state_changed",
            "activation.confirmed"
        ]
    );
    let page: Value = app
        .get_with("/v1/events?type=profile.state_changed", &shop.token)
        .await
        .json()
        .await
        .unwrap();
    let change = &page["data"][2]["data"];
    assert_eq!(change["previous_state"], "downloaded");
    assert_eq!(change["state"], "installed");
    assert_eq!(change["iccid"], shop.esim);

    // The same report again, and an `enabled` after it: counted once, confirmed once.
    let again = report_ok(&app, &shop.network, events).await;
    assert_eq!(
        again,
        json!({"accepted": 0, "duplicates": 3, "rejected": []})
    );
    let enabled = report_ok(
        &app,
        &shop.network,
        json!([{"id": "dp-4", "iccid": shop.esim, "matching_id": matching_id, "state": "enabled", "occurred_at": at(3)}]),
    )
    .await;
    assert_eq!(enabled["accepted"], 1);
    let terms: Value = app
        .get_with(&format!("/v1/cards/{}/balance", shop.esim), &shop.token)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(terms["upcoming"], json!([]));
    let after = activation(&app, &shop, order_id).await;
    assert_eq!(after["profile_state"], "enabled");
    assert_eq!(after["valid_until"], confirmed["valid_until"]);
    let types = told(&app, &shop.token).await;
    assert_eq!(
        types
            .iter()
            .filter(|t| *t == "activation.confirmed")
            .count(),
        1
    );
    assert_eq!(types.last().unwrap(), "profile.state_changed");
}

async fn events_arriving_late_join_the_history_without_moving_the_state(app: TestApp) {
    let shop = shop(&app, 2).await;
    let pending = pending_activation(&app, &shop).await;
    let order_id = pending["order_id"].as_str().unwrap();
    let matching_id = pending["matching_id"].as_str().unwrap();
    let now = Utc::now();
    // The deletion arrives first; the install it followed arrives after it.
    report_ok(
        &app,
        &shop.network,
        json!([{"id": "late-2", "iccid": shop.esim, "state": "deleted", "occurred_at": now, "reason": "removed by the user"}]),
    )
    .await;
    report_ok(
        &app,
        &shop.network,
        json!([{"id": "late-1", "iccid": shop.esim, "matching_id": matching_id, "state": "installed", "occurred_at": now - TimeDelta::hours(1)}]),
    )
    .await;
    let shown = card(&app, &shop, &shop.esim).await;
    assert_eq!(shown["profile_state"], "deleted", "the latest event wins");
    let after = activation(&app, &shop, order_id).await;
    // Only the event naming its matching id is in the activation's history; it still
    // confirmed the activation (the profile was installed).
    assert_eq!(states(&after), ["installed"]);
    assert_eq!(after["status"], "confirmed");
    let changes = told(&app, &shop.token)
        .await
        .into_iter()
        .filter(|t| t == "profile.state_changed")
        .count();
    assert_eq!(changes, 1, "an older event does not change the state");
}

async fn bad_events_are_refused_one_by_one_and_a_bad_report_changes_nothing(app: TestApp) {
    let shop = shop(&app, 3).await;
    let other = shop_other_card(&app).await;
    let pending = pending_activation(&app, &shop).await;
    let matching_id = pending["matching_id"].as_str().unwrap();
    let now = Utc::now();
    // The card's EID becomes known.
    report_ok(
        &app,
        &shop.network,
        json!([{"id": "ok-1", "iccid": shop.esim, "eid": EID, "state": "downloaded", "occurred_at": now}]),
    )
    .await;
    let outcome = report_ok(
        &app,
        &shop.network,
        json!([
            {"id": "b-1", "iccid": iccid(91, 99), "state": "installed", "occurred_at": now},
            {"id": "b-2", "iccid": shop.fm, "state": "installed", "occurred_at": now},
            {"id": "b-3", "iccid": shop.esim, "eid": OTHER_EID, "state": "installed", "occurred_at": now},
            {"id": "b-4", "iccid": other, "matching_id": matching_id, "state": "installed", "occurred_at": now},
            {"id": "b-5", "iccid": shop.esim, "matching_id": "NOSUCHMATCHINGID0000", "state": "installed", "occurred_at": now},
        ]),
    )
    .await;
    assert_eq!(outcome["accepted"], 0);
    let reasons: Vec<(&str, &str)> = outcome["rejected"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["id"].as_str().unwrap(), r["reason"].as_str().unwrap()))
        .collect();
    assert_eq!(
        reasons,
        [
            ("b-1", "unknown ICCID"),
            (
                "b-2",
                "profile events are for eSIM cards; this is an FM card"
            ),
            ("b-3", "this card's profile is bound to another EID"),
            ("b-4", "no activation of this card has this matching id"),
            ("b-5", "no activation of this card has this matching id"),
        ]
    );
    let malformed = report(
        &app,
        &shop.network,
        json!([
            {"id": "m-1", "iccid": shop.esim, "matching_id": matching_id, "state": "installed", "occurred_at": now},
            {"id": "", "iccid": "123", "matching_id": "bad id!", "eid": "1", "state": "installed", "occurred_at": "1900-01-01T00:00:00Z", "reason": "x".repeat(501)},
        ]),
    )
    .await;
    let problem = assert_problem(
        malformed,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    )
    .await;
    assert_eq!(
        problem_fields(&problem),
        [
            "events[1].id",
            "events[1].iccid",
            "events[1].matching_id",
            "events[1].eid",
            "events[1].occurred_at",
            "events[1].reason"
        ]
    );
    let unknown_state = report(
        &app,
        &shop.network,
        json!([{"id": "s-1", "iccid": shop.esim, "state": "exploded", "occurred_at": now}]),
    )
    .await;
    assert_eq!(unknown_state.status(), StatusCode::BAD_REQUEST);
    let empty = report(&app, &shop.network, json!([])).await;
    assert_problem(empty, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed").await;
    // A partner may not report.
    let forbidden = report(&app, &shop.token, json!([])).await;
    assert_problem(forbidden, StatusCode::FORBIDDEN, "forbidden").await;

    // Nothing of the refused reports stayed.
    let after = activation(&app, &shop, pending["order_id"].as_str().unwrap()).await;
    assert_eq!(after["status"], "pending");
    assert_eq!(after["profile_history"], json!([]));
    assert_eq!(
        card(&app, &shop, &shop.esim).await["profile_state"],
        "downloaded"
    );
    assert_eq!(
        card(&app, &shop, &shop.fm).await["profile_state"],
        Value::Null
    );
}

/// An eSIM card of another partner.
async fn shop_other_card(app: &TestApp) -> String {
    let card = iccid(91, 98);
    let cards = json!([{"iccid": card, "card_type": "esim"}]);
    app.stocked_partner("Other", &[Scope::CardsRead], cards, 1)
        .await;
    card
}

async fn the_same_report_on_two_instances_at_once_applies_once(app: TestApp) {
    let sibling = app.spawn_sibling(app.settings()).await;
    let shop = shop(&app, 4).await;
    let pending = pending_activation(&app, &shop).await;
    let matching_id = pending["matching_id"].as_str().unwrap();
    let now = Utc::now();
    let events: Vec<Value> = ["released", "downloaded", "installed", "enabled"]
        .iter()
        .enumerate()
        .map(|(i, state)| json!({"id": format!("twin-{i}"), "iccid": shop.esim, "matching_id": matching_id, "state": state, "occurred_at": now - TimeDelta::seconds(10 - i as i64)}))
        .collect();
    let events = Value::from(events);
    let (a, b) = tokio::join!(
        report_ok(&app, &shop.network, events.clone()),
        report_ok(&sibling, &shop.network, events)
    );
    assert_eq!(
        a["accepted"].as_i64().unwrap() + b["accepted"].as_i64().unwrap(),
        4
    );
    assert_eq!(
        a["duplicates"].as_i64().unwrap() + b["duplicates"].as_i64().unwrap(),
        4
    );
    let after = activation(&app, &shop, pending["order_id"].as_str().unwrap()).await;
    assert_eq!(
        states(&after),
        ["released", "downloaded", "installed", "enabled"]
    );
    assert_eq!(after["status"], "confirmed");
    let types = told(&app, &shop.token).await;
    assert_eq!(
        types
            .iter()
            .filter(|t| *t == "activation.confirmed")
            .count(),
        1
    );
}
