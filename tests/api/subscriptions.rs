//! Automatic renewals: subscriptions renewed by the sweep once per term (FM days before
//! the end, eSIM at the end, in place when the profile is installed), failures retried
//! then lapsed with their events, pause and cancel; scheduled orders that start later
//! and are refunded when cancelled before.

use chrono::{DateTime, TimeDelta, Utc};
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::{assert_problem, iccid, plan_id, problem_fields, TestApp};
use simrenew::auth::scopes::Scope;
use simrenew::fulfilment::{renewals, scheduled};

on_both_backends!(
    an_fm_card_is_renewed_days_before_its_end_once_on_two_instances,
    an_installed_esim_is_renewed_at_its_end_in_place_with_no_new_code,
    a_renewal_that_fails_or_is_cancelled_does_not_count_as_cover,
    missing_funds_fail_are_retried_then_lapse_each_told,
    paused_and_cancelled_subscriptions_place_nothing_and_bad_input_changes_nothing,
    a_scheduled_order_starts_at_its_time_and_is_refunded_when_cancelled_before,
);

const EID: &str = "89049032123451234512345678900071";

struct Shop {
    partner: String,
    token: String,
    admin: String,
    network: String,
    fm: String,
    esim: String,
    fm_plan: String,
    esim_plan: String,
}

/// A partner with an FM card and an eSIM, and `fen` CNY minor units in its wallet.
async fn shop(app: &TestApp, n: u64, fen: i64) -> Shop {
    app.import_demo_plans().await;
    let scopes = [
        Scope::CardsRead,
        Scope::OrdersRead,
        Scope::OrdersWrite,
        Scope::WalletRead,
        Scope::Webhooks,
    ];
    let (fm, esim) = (iccid(92, 2 * n), iccid(92, 2 * n + 1));
    let cards = json!([{"iccid": fm, "card_type": "fm"}, {"iccid": esim, "card_type": "esim"}]);
    let stocked = app.stocked_partner("Acme", &scopes, cards, fen).await;
    Shop {
        partner: stocked.partner.id,
        token: stocked.token,
        admin: stocked.admin,
        network: app.network_token().await,
        fm,
        esim,
        // 30 days, CNY 39.00 and 59.00.
        fm_plan: plan_id(&app.store, "CN-FM-M-10G").await,
        esim_plan: plan_id(&app.store, "JP-ESIM-M-5G").await,
    }
}

async fn confirm(app: &TestApp, token: &str, order_id: &str) -> Value {
    let response = app
        .client
        .post(app.url(&format!("/v1/orders/{order_id}/activation/confirm")))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    response.json().await.unwrap()
}

async fn activation(app: &TestApp, token: &str, order_id: &str) -> reqwest::Response {
    app.get_with(&format!("/v1/orders/{order_id}/activation"), token)
        .await
}

async fn subscribe(app: &TestApp, shop: &Shop, card: &str, body: Value) -> reqwest::Response {
    app.client
        .put(app.url(&format!("/v1/cards/{card}/subscription")))
        .bearer_auth(&shop.token)
        .json(&body)
        .send()
        .await
        .unwrap()
}

async fn subscription(app: &TestApp, shop: &Shop, card: &str) -> Value {
    let response = app
        .get_with(&format!("/v1/cards/{card}/subscription"), &shop.token)
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    response.json().await.unwrap()
}

async fn sweep(app: &TestApp) -> renewals::Tally {
    renewals::renew_due(&app.store, &app.clock, "smdp.simrenew.test")
        .await
        .unwrap()
}

fn tally(renewed: usize, failed: usize, lapsed: usize) -> renewals::Tally {
    renewals::Tally {
        renewed,
        failed,
        lapsed,
    }
}

async fn told(app: &TestApp, token: &str, event_type: &str) -> Vec<Value> {
    let page: Value = app
        .get_with(&format!("/v1/events?type={event_type}&limit=100"), token)
        .await
        .json()
        .await
        .unwrap();
    page["data"].as_array().unwrap().clone()
}

async fn card_orders(app: &TestApp, shop: &Shop, card: &str) -> Vec<Value> {
    let page: Value = app
        .get_with(&format!("/v1/cards/{card}/orders"), &shop.token)
        .await
        .json()
        .await
        .unwrap();
    page["data"].as_array().unwrap().clone()
}

async fn wallet(app: &TestApp, shop: &Shop) -> i64 {
    let wallet: Value = app
        .get_with("/v1/wallet", &shop.token)
        .await
        .json()
        .await
        .unwrap();
    wallet["balances"][0]["available"].as_i64().unwrap()
}

fn instant(value: &Value) -> DateTime<Utc> {
    value.as_str().unwrap().parse().unwrap()
}

/// Buys and confirms a month for the FM card; when it ends.
async fn fm_term(app: &TestApp, shop: &Shop) -> DateTime<Utc> {
    let order = app.wallet_order(&shop.token, &shop.fm, &shop.fm_plan).await;
    let confirmed = confirm(app, &shop.token, order["id"].as_str().unwrap()).await;
    instant(&confirmed["valid_until"])
}

/// Moves the test clock to `at`.
fn go_to(app: &TestApp, at: DateTime<Utc>) {
    app.clock.set(at);
}

async fn an_fm_card_is_renewed_days_before_its_end_once_on_two_instances(app: TestApp) {
    let sibling = app.spawn_sibling(app.settings()).await;
    let shop = shop(&app, 1, 100_000).await;
    let ends = fm_term(&app, &shop).await;

    let created = subscribe(
        &app,
        &shop,
        &shop.fm,
        json!({"plan_id": shop.fm_plan, "currency": "CNY", "renew_days_before_expiry": 3}),
    )
    .await;
    assert_eq!(created.status(), StatusCode::CREATED);
    let created: Value = created.json().await.unwrap();
    assert_eq!(created["status"], "active");
    assert_eq!(instant(&created["covered_until"]), ends);
    assert_eq!(
        instant(&created["next_renewal_at"]),
        ends - TimeDelta::days(3)
    );
    assert_eq!(created["renewals"], 0);
    assert_eq!(sweep(&app).await, tally(0, 0, 0), "not due yet");

    // Due: two instances sweep at once; one renewal.
    go_to(&app, ends - TimeDelta::days(3) + TimeDelta::minutes(1));
    let (a, b) = tokio::join!(
        renewals::renew_due(&app.store, &app.clock, "smdp.simrenew.test"),
        renewals::renew_due(&sibling.store, &app.clock, "smdp.simrenew.test")
    );
    assert_eq!(a.unwrap().renewed + b.unwrap().renewed, 1);
    assert_eq!(sweep(&app).await, tally(0, 0, 0), "once per term");
    let orders = card_orders(&app, &shop, &shop.fm).await;
    assert_eq!(orders.len(), 2);
    let renewed = subscription(&app, &shop, &shop.fm).await;
    assert_eq!(renewed["renewals"], 1);
    let order_id = renewed["last_order_id"].as_str().unwrap();
    let placed = orders.iter().find(|o| o["id"] == order_id).unwrap();
    assert_eq!(placed["status"], "paid");
    let reference = format!("subscription {}", renewed["id"].as_str().unwrap());
    assert_eq!(placed["client_reference"], reference);
    assert_eq!(
        instant(&renewed["covered_until"]),
        ends + TimeDelta::days(30)
    );
    assert_eq!(
        instant(&renewed["next_renewal_at"]),
        ends + TimeDelta::days(27)
    );
    assert_eq!(wallet(&app, &shop).await, 100_000 - 2 * 3900);
    let events = told(&app, &shop.token, "subscription.renewed").await;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["data"]["order"]["id"], order_id);
    assert_eq!(events[0]["data"]["subscription"]["renewals"], 1);

    // The network takes it over the air: the new term extends the current one.
    let activation = confirm(&app, &shop.network, order_id).await;
    assert_eq!(activation["mode"], "ota");
    assert_eq!(instant(&activation["effective_from"]), ends);
    // Nothing more until the next term's due time.
    go_to(&app, ends + TimeDelta::days(26));
    assert_eq!(sweep(&app).await, tally(0, 0, 0));
    go_to(&app, ends + TimeDelta::days(27) + TimeDelta::minutes(1));
    assert_eq!(sweep(&app).await, tally(1, 0, 0));
}

async fn a_renewal_that_fails_or_is_cancelled_does_not_count_as_cover(app: TestApp) {
    let shop = shop(&app, 6, 100_000).await;
    let ends = fm_term(&app, &shop).await;
    let created = subscribe(
        &app,
        &shop,
        &shop.fm,
        json!({"plan_id": shop.fm_plan, "currency": "CNY"}),
    )
    .await;
    assert_eq!(created.status(), StatusCode::CREATED);
    go_to(&app, ends - TimeDelta::days(1) + TimeDelta::minutes(1));
    assert_eq!(sweep(&app).await, tally(1, 0, 0));
    let placed = subscription(&app, &shop, &shop.fm).await;
    let order_id = placed["last_order_id"].as_str().unwrap().to_owned();

    // The network cannot apply it: refunded, and the subscription is due again at once,
    // covering only the term the card really has.
    let failed = app
        .post_json(
            &format!("/v1/orders/{order_id}/activation/fail"),
            &shop.network,
            &json!({"reason": "OTA push rejected"}),
        )
        .await;
    assert_eq!(failed.status(), StatusCode::OK);
    let undone = subscription(&app, &shop, &shop.fm).await;
    assert_eq!(instant(&undone["covered_until"]), ends);
    assert_eq!(undone["renewals"], 0);
    assert_eq!(undone["failed_attempts"], 1);
    assert!(undone["last_failure"]
        .as_str()
        .unwrap()
        .contains("OTA push rejected"));
    assert!(instant(&undone["next_renewal_at"]) <= app.clock.now());
    let told = told(&app, &shop.token, "subscription.renewal_failed").await;
    assert_eq!(told.len(), 1);
    assert_eq!(sweep(&app).await, tally(1, 0, 0), "placed again");

    // Its partner cancels the new one: refunded, and the subscription pauses.
    let again = subscription(&app, &shop, &shop.fm).await;
    let second = again["last_order_id"].as_str().unwrap();
    assert_ne!(second, order_id);
    let cancelled = app
        .post_json(
            &format!("/v1/orders/{second}/cancel"),
            &shop.token,
            &json!({}),
        )
        .await;
    assert_eq!(cancelled.status(), StatusCode::OK);
    let paused = subscription(&app, &shop, &shop.fm).await;
    assert_eq!(paused["status"], "paused");
    assert_eq!(instant(&paused["covered_until"]), ends);
    assert_eq!(sweep(&app).await, tally(0, 0, 0));
    assert_eq!(
        wallet(&app, &shop).await,
        100_000 - 3900,
        "both renewals refunded"
    );
}

async fn an_installed_esim_is_renewed_at_its_end_in_place_with_no_new_code(app: TestApp) {
    let shop = shop(&app, 2, 100_000).await;
    // The first eSIM order gets a code; the profile is installed with it.
    let first = app
        .wallet_order(&shop.token, &shop.esim, &shop.esim_plan)
        .await;
    let first_id = first["id"].as_str().unwrap();
    let pending: Value = activation(&app, &shop.token, first_id)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(pending["mode"], "esim_profile");
    let installed = app
        .post_json(
            "/v1/network/profile-events",
            &shop.network,
            &json!({"events": [{"id": "p-1", "iccid": shop.esim, "matching_id": pending["matching_id"],
                "eid": EID, "state": "installed", "occurred_at": app.clock.now()}]}),
        )
        .await;
    assert_eq!(installed.status(), StatusCode::OK);
    let confirmed: Value = activation(&app, &shop.token, first_id)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(confirmed["status"], "confirmed");
    let ends = instant(&confirmed["valid_until"]);

    let created = subscribe(
        &app,
        &shop,
        &shop.esim,
        json!({"plan_id": shop.esim_plan, "currency": "CNY", "renew_days_before_expiry": 3}),
    )
    .await;
    assert_eq!(created.status(), StatusCode::CREATED);
    let created: Value = created.json().await.unwrap();
    assert_eq!(instant(&created["next_renewal_at"]), ends, "at the end");

    go_to(&app, ends - TimeDelta::hours(1));
    assert_eq!(sweep(&app).await, tally(0, 0, 0), "not before the end");
    go_to(&app, ends + TimeDelta::minutes(1));
    assert_eq!(sweep(&app).await, tally(1, 0, 0));
    let renewed = subscription(&app, &shop, &shop.esim).await;
    let order_id = renewed["last_order_id"].as_str().unwrap();
    let in_place: Value = activation(&app, &shop.token, order_id)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(in_place["mode"], "in_place");
    assert_eq!(in_place["status"], "pending");
    assert_eq!(in_place["lpa_activation_code"], Value::Null);
    assert_eq!(in_place["matching_id"], Value::Null);
    let qr = app
        .get_with(
            &format!("/v1/orders/{order_id}/activation/qr.svg"),
            &shop.token,
        )
        .await;
    assert_problem(qr, StatusCode::NOT_FOUND, "not_found").await;
    // The network renews the installed profile and confirms, as over the air.
    let done = confirm(&app, &shop.network, order_id).await;
    assert_eq!(done["status"], "confirmed");
    assert_eq!(
        done["effective_from"], done["confirmed_at"],
        "replaces from now"
    );
    assert!(instant(&done["effective_from"]) >= ends);

    // Deleted from the device: the next renewal needs a new code again.
    app.post_json(
        "/v1/network/profile-events",
        &shop.network,
        &json!({"events": [{"id": "p-2", "iccid": shop.esim, "state": "deleted", "occurred_at": app.clock.now()}]}),
    )
    .await;
    let fresh = app
        .wallet_order(&shop.token, &shop.esim, &shop.esim_plan)
        .await;
    let fresh: Value = activation(&app, &shop.token, fresh["id"].as_str().unwrap())
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(fresh["mode"], "esim_profile");
    assert!(fresh["lpa_activation_code"].is_string());
}

async fn missing_funds_fail_are_retried_then_lapse_each_told(app: TestApp) {
    // Enough for the first order only.
    let shop = shop(&app, 3, 3900).await;
    let ends = fm_term(&app, &shop).await;
    let created = subscribe(
        &app,
        &shop,
        &shop.fm,
        json!({"plan_id": shop.fm_plan, "currency": "CNY"}),
    )
    .await;
    assert_eq!(created.status(), StatusCode::CREATED);
    let created: Value = created.json().await.unwrap();
    assert_eq!(created["renew_days_before_expiry"], 1, "the default");

    // Due a day before the end: fails, then after 1 h, 6 h and 24 h; the last comes
    // after the end with the retries spent: lapsed.
    let due = ends - TimeDelta::days(1);
    go_to(&app, due + TimeDelta::minutes(1));
    assert_eq!(sweep(&app).await, tally(0, 1, 0));
    assert_eq!(
        sweep(&app).await,
        tally(0, 0, 0),
        "not again before the retry"
    );
    let failed = subscription(&app, &shop, &shop.fm).await;
    assert_eq!(failed["failed_attempts"], 1);
    assert!(failed["last_failure"]
        .as_str()
        .unwrap()
        .starts_with("insufficient_funds: "));
    assert_eq!(
        instant(&failed["next_renewal_at"]),
        instant(&failed["updated_at"]) + TimeDelta::hours(1)
    );
    for (wait, expected) in [
        (TimeDelta::hours(1), tally(0, 1, 0)),
        (TimeDelta::hours(6), tally(0, 1, 0)),
        (TimeDelta::hours(24), tally(0, 0, 1)),
    ] {
        app.clock.advance(wait);
        assert_eq!(sweep(&app).await, expected);
    }
    let lapsed = subscription(&app, &shop, &shop.fm).await;
    assert_eq!(lapsed["status"], "lapsed");
    assert_eq!(lapsed["next_renewal_at"], Value::Null);
    assert_eq!(lapsed["failed_attempts"], 4);
    assert_eq!(
        told(&app, &shop.token, "subscription.renewal_failed")
            .await
            .len(),
        3
    );
    let lapsed_events = told(&app, &shop.token, "subscription.lapsed").await;
    assert_eq!(lapsed_events.len(), 1);
    assert_eq!(lapsed_events[0]["data"]["status"], "lapsed");
    assert_eq!(
        card_orders(&app, &shop, &shop.fm).await.len(),
        1,
        "nothing was placed"
    );
    assert_eq!(wallet(&app, &shop).await, 0);

    // Funds back and resumed: renewed at the next sweep (the card's service starts again).
    app.credit_wallet(&shop.admin, &shop.partner, "CNY", 10_000, None)
        .await;
    let resumed = app
        .post_json(
            &format!("/v1/cards/{}/subscription/resume", shop.fm),
            &shop.token,
            &json!({}),
        )
        .await;
    assert_eq!(resumed.status(), StatusCode::OK);
    assert_eq!(sweep(&app).await, tally(1, 0, 0));
    let renewed = subscription(&app, &shop, &shop.fm).await;
    assert_eq!(renewed["status"], "active");
    assert_eq!(renewed["failed_attempts"], 0);
    assert_eq!(renewed["last_failure"], Value::Null);
}

async fn paused_and_cancelled_subscriptions_place_nothing_and_bad_input_changes_nothing(
    app: TestApp,
) {
    let shop = shop(&app, 4, 100_000).await;
    let path = format!("/v1/cards/{}/subscription", shop.fm);
    let none = app.get_with(&path, &shop.token).await;
    assert_problem(none, StatusCode::NOT_FOUND, "not_found").await;

    for (body, fields) in [
        (
            json!({"plan_id": shop.fm_plan, "currency": "XXY", "renew_days_before_expiry": 31, "ends_after_renewals": 0}),
            vec![
                "currency",
                "renew_days_before_expiry",
                "ends_after_renewals",
            ],
        ),
        (
            json!({"plan_id": shop.fm_plan, "currency": "CNY", "renew_days_before_expiry": -1}),
            vec!["renew_days_before_expiry"],
        ),
    ] {
        let refused = subscribe(&app, &shop, &shop.fm, body).await;
        let problem = assert_problem(
            refused,
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        )
        .await;
        assert_eq!(problem_fields(&problem), fields);
    }
    let wrong_plan = subscribe(
        &app,
        &shop,
        &shop.fm,
        json!({"plan_id": shop.esim_plan, "currency": "CNY"}),
    )
    .await;
    assert_problem(
        wrong_plan,
        StatusCode::UNPROCESSABLE_ENTITY,
        "plan_not_available_for_card",
    )
    .await;
    let (_, other) = app.partner_with_token("Other").await;
    let not_theirs = app
        .client
        .put(app.url(&path))
        .bearer_auth(&other)
        .json(&json!({"plan_id": shop.fm_plan, "currency": "CNY"}))
        .send()
        .await
        .unwrap();
    assert_problem(not_theirs, StatusCode::NOT_FOUND, "not_found").await;
    let still_none = app.get_with(&path, &shop.token).await;
    assert_eq!(
        still_none.status(),
        StatusCode::NOT_FOUND,
        "nothing was made"
    );

    // A card with no service is renewed at once; paused first, it places nothing.
    let created = subscribe(
        &app,
        &shop,
        &shop.fm,
        json!({"plan_id": shop.fm_plan, "currency": "CNY", "ends_after_renewals": 2}),
    )
    .await;
    assert_eq!(created.status(), StatusCode::CREATED);
    let paused = app
        .post_json(&format!("{path}/pause"), &shop.token, &json!({}))
        .await;
    let paused: Value = paused.json().await.unwrap();
    assert_eq!(paused["status"], "paused");
    assert_eq!(paused["next_renewal_at"], Value::Null);
    app.clock.advance(TimeDelta::days(40));
    assert_eq!(sweep(&app).await, tally(0, 0, 0));
    assert!(card_orders(&app, &shop, &shop.fm).await.is_empty());

    // Resumed: renewed twice (one term each), then it ends by itself.
    app.post_json(&format!("{path}/resume"), &shop.token, &json!({}))
        .await;
    assert_eq!(sweep(&app).await, tally(1, 0, 0));
    app.clock.advance(TimeDelta::days(30));
    assert_eq!(sweep(&app).await, tally(1, 0, 0));
    let ended = subscription(&app, &shop, &shop.fm).await;
    assert_eq!(ended["status"], "cancelled");
    assert_eq!(ended["renewals"], 2);
    app.clock.advance(TimeDelta::days(30));
    assert_eq!(sweep(&app).await, tally(0, 0, 0));

    // Cancelled stays cancelled; a new PUT starts afresh.
    let refused = app
        .post_json(&format!("{path}/resume"), &shop.token, &json!({}))
        .await;
    assert_problem(refused, StatusCode::CONFLICT, "invalid_state_transition").await;
    let again = subscribe(
        &app,
        &shop,
        &shop.fm,
        json!({"plan_id": shop.fm_plan, "currency": "CNY"}),
    )
    .await;
    assert_eq!(again.status(), StatusCode::CREATED);
    let again: Value = again.json().await.unwrap();
    assert_ne!(again["id"], ended["id"]);
    let cancelled = app
        .client
        .delete(app.url(&path))
        .bearer_auth(&shop.token)
        .send()
        .await
        .unwrap();
    let cancelled: Value = cancelled.json().await.unwrap();
    assert_eq!(cancelled["status"], "cancelled");
    app.clock.advance(TimeDelta::days(60));
    assert_eq!(sweep(&app).await, tally(0, 0, 0));

    // Lists: the partner's own, and an operator's view of it.
    let mine: Value = app
        .get_with("/v1/subscriptions?status=cancelled", &shop.token)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(mine["data"].as_array().unwrap().len(), 1);
    assert_eq!(mine["data"][0]["id"], again["id"]);
    let theirs: Value = app
        .get_with("/v1/subscriptions", &other)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(theirs["data"], json!([]));
    let admin: Value = app
        .get_with(
            &format!("/v1/admin/partners/{}/subscriptions", shop.partner),
            &shop.admin,
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(admin["data"].as_array().unwrap().len(), 1);
    let bad = app
        .get_with("/v1/subscriptions?status=gone", &shop.token)
        .await;
    assert_problem(bad, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed").await;
}

async fn place_at(app: &TestApp, shop: &Shop, start_at: Value) -> reqwest::Response {
    app.client
        .post(app.url("/v1/orders"))
        .bearer_auth(&shop.token)
        .header("Idempotency-Key", uuid::Uuid::now_v7().to_string())
        .json(
            &json!({"iccid": shop.fm, "plan_id": shop.fm_plan, "currency": "CNY",
            "payment_method": "wallet", "start_at": start_at}),
        )
        .send()
        .await
        .unwrap()
}

async fn start(app: &TestApp) -> usize {
    scheduled::start_due(&app.store, &app.clock, "smdp.simrenew.test")
        .await
        .unwrap()
}

async fn a_scheduled_order_starts_at_its_time_and_is_refunded_when_cancelled_before(app: TestApp) {
    let shop = shop(&app, 5, 1_000_000).await;
    // 50 orders in a moment: beyond the default quota, which is not under test here
    // (set before the partner's first request, so no cached credential hides it).
    app.sql(&format!(
        "UPDATE partners SET rate_limit_per_second = 100000, rate_limit_burst = 100000 WHERE id = '{}'",
        shop.partner
    ));
    let now = app.clock.now();
    for (start_at, why) in [
        (json!(now - TimeDelta::minutes(1)), "in the past"),
        (json!(now + TimeDelta::days(367)), "beyond 12 months"),
    ] {
        let refused = place_at(&app, &shop, start_at).await;
        let problem = assert_problem(
            refused,
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        )
        .await;
        assert_eq!(problem_fields(&problem), ["start_at"], "{why}");
    }
    assert_eq!(wallet(&app, &shop).await, 1_000_000, "nothing charged");

    let starts = now + TimeDelta::days(10);
    let placed = place_at(&app, &shop, json!(starts)).await;
    assert_eq!(placed.status(), StatusCode::CREATED);
    let order: Value = placed.json().await.unwrap();
    assert_eq!(order["status"], "paid", "charged when placed");
    assert_eq!(instant(&order["start_at"]), starts.naive_utc().and_utc());
    let order_id = order["id"].as_str().unwrap();
    let early = activation(&app, &shop.token, order_id).await;
    let problem = assert_problem(early, StatusCode::CONFLICT, "invalid_state_transition").await;
    assert!(problem["detail"].as_str().unwrap().contains("starts at"));
    assert_eq!(start(&app).await, 0, "not yet");

    // Another, cancelled before it starts: refunded in full.
    let other: Value = place_at(&app, &shop, json!(starts))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(wallet(&app, &shop).await, 1_000_000 - 2 * 3900);
    let cancelled = app
        .post_json(
            &format!("/v1/orders/{}/cancel", other["id"].as_str().unwrap()),
            &shop.token,
            &json!({}),
        )
        .await;
    assert_eq!(cancelled.status(), StatusCode::OK);
    let cancelled: Value = cancelled.json().await.unwrap();
    assert_eq!(cancelled["status"], "cancelled");
    assert_eq!(wallet(&app, &shop).await, 1_000_000 - 3900);

    // At its time the activation is made, and the term begins when it takes effect.
    go_to(&app, starts + TimeDelta::minutes(1));
    assert_eq!(start(&app).await, 1);
    assert_eq!(start(&app).await, 0, "once");
    let ready: Value = activation(&app, &shop.token, order_id)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(ready["mode"], "ota");
    assert_eq!(ready["status"], "pending");
    let done = confirm(&app, &shop.network, order_id).await;
    assert!(instant(&done["effective_from"]) >= starts);
    let late_cancel = app
        .post_json(
            &format!("/v1/orders/{order_id}/cancel"),
            &shop.token,
            &json!({}),
        )
        .await;
    assert_problem(
        late_cancel,
        StatusCode::CONFLICT,
        "invalid_state_transition",
    )
    .await;

    // A card holds at most 50 scheduled orders.
    let later = app.clock.now() + TimeDelta::days(30);
    for _ in 0..50 {
        let placed = place_at(&app, &shop, json!(later)).await;
        assert_eq!(placed.status(), StatusCode::CREATED);
    }
    let before = wallet(&app, &shop).await;
    let full = place_at(&app, &shop, json!(later)).await;
    assert_problem(full, StatusCode::CONFLICT, "conflict").await;
    assert_eq!(wallet(&app, &shop).await, before, "nothing charged");
}
