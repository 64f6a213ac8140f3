//! The event feed: an event for every change a partner cares about, written with the
//! change (never without it), private to its partner, paged, filtered and kept 30 days.

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::{assert_problem, iccid, plan_id, TestApp};
use simrenew::auth::scopes::Scope;

on_both_backends!(
    a_paid_wallet_order_is_told_with_the_order_as_shown,
    confirmation_cancellation_and_refund_are_told_in_order,
    the_feed_pages_and_filters,
    events_are_private_and_need_their_scope,
    old_events_go_after_thirty_days,
    a_change_rolled_back_tells_nothing,
    a_reader_following_the_feed_during_a_burst_misses_nothing,
);

struct Shop {
    token: String,
    card: String,
    plan: String,
}

/// Demo catalog, a partner with every partner scope (events included), an FM card and
/// CNY 1000.00 in its wallet.
async fn shop(app: &TestApp, name: &str, card: &str) -> Shop {
    app.import_demo_plans().await;
    let scopes = [
        Scope::CatalogRead,
        Scope::CardsRead,
        Scope::OrdersRead,
        Scope::OrdersWrite,
        Scope::WalletRead,
        Scope::Webhooks,
    ];
    let cards = json!([{"iccid": card, "card_type": "fm"}]);
    let stocked = app.stocked_partner(name, &scopes, cards, 100_000).await;
    Shop {
        token: stocked.token,
        card: card.to_owned(),
        plan: plan_id(&app.store, "CN-FM-M-10G").await,
    }
}

async fn place(app: &TestApp, shop: &Shop) -> reqwest::Response {
    app.client
        .post(app.url("/v1/orders"))
        .bearer_auth(&shop.token)
        .header("Idempotency-Key", uuid::Uuid::now_v7().to_string())
        .json(&json!({"iccid": shop.card, "plan_id": shop.plan, "currency": "CNY", "payment_method": "wallet"}))
        .send()
        .await
        .unwrap()
}

async fn feed(app: &TestApp, token: &str, query: &str) -> Value {
    let response = app.get_with(&format!("/v1/events{query}"), token).await;
    assert_eq!(response.status(), StatusCode::OK);
    response.json().await.unwrap()
}

fn types(page: &Value) -> Vec<String> {
    page["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].as_str().unwrap().to_owned())
        .collect()
}

async fn a_paid_wallet_order_is_told_with_the_order_as_shown(app: TestApp) {
    let shop = shop(&app, "Acme", &iccid(70, 1)).await;
    let placed = place(&app, &shop).await;
    assert_eq!(placed.status(), StatusCode::CREATED);
    let order: Value = placed.json().await.unwrap();
    let page = feed(&app, &shop.token, "").await;
    assert_eq!(types(&page), ["order.paid"]);
    let event = &page["data"][0];
    assert_eq!(event["data"], order, "the order as the API showed it");
    let shown: Value = app
        .get_with(
            &format!("/v1/events/{}", event["id"].as_str().unwrap()),
            &shop.token,
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(&shown, event);
    assert!(event["timestamp"].as_str().unwrap().ends_with('Z'));
    assert_eq!(page["has_more"], false);
    // Caught up, the cursor still says where: saved, it finds the next event only.
    let caught_up = page["next_cursor"].as_str().unwrap().to_owned();
    assert_eq!(
        feed(&app, &shop.token, &format!("?cursor={caught_up}")).await["data"],
        json!([])
    );
    place(&app, &shop).await;
    let next = feed(&app, &shop.token, &format!("?cursor={caught_up}")).await;
    assert_eq!(types(&next), ["order.paid"]);
    assert_ne!(next["data"][0]["id"], event["id"]);
}

async fn confirmation_cancellation_and_refund_are_told_in_order(app: TestApp) {
    let shop = shop(&app, "Acme", &iccid(70, 2)).await;
    let first: Value = place(&app, &shop).await.json().await.unwrap();
    let first_id = first["id"].as_str().unwrap();
    let confirmed = app
        .client
        .post(app.url(&format!("/v1/orders/{first_id}/activation/confirm")))
        .bearer_auth(&shop.token)
        .send()
        .await
        .unwrap();
    assert_eq!(confirmed.status(), StatusCode::OK);
    let activation: Value = confirmed.json().await.unwrap();
    let second: Value = place(&app, &shop).await.json().await.unwrap();
    let second_id = second["id"].as_str().unwrap();
    let cancelled = app
        .client
        .post(app.url(&format!("/v1/orders/{second_id}/cancel")))
        .bearer_auth(&shop.token)
        .send()
        .await
        .unwrap();
    assert_eq!(cancelled.status(), StatusCode::OK);
    let cancelled: Value = cancelled.json().await.unwrap();

    let page = feed(&app, &shop.token, "").await;
    assert_eq!(
        types(&page),
        [
            "order.paid",
            "activation.confirmed",
            "order.paid",
            "order.cancelled",
            "activation.failed",
            "order.refunded"
        ]
    );
    assert_eq!(page["data"][1]["data"], activation);
    assert_eq!(page["data"][3]["data"]["status"], "cancelled");
    assert_eq!(page["data"][4]["data"]["status"], "failed");
    // The last event shows the order as the cancel answered it: cancelled, refunded.
    assert_eq!(page["data"][5]["data"], cancelled);
    assert_eq!(page["data"][5]["data"]["refund"]["amount"], 3900);
    // A repeated confirmation changes nothing and tells nothing.
    let again = app
        .client
        .post(app.url(&format!("/v1/orders/{first_id}/activation/confirm")))
        .bearer_auth(&shop.token)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), StatusCode::OK);
    assert_eq!(types(&feed(&app, &shop.token, "").await).len(), 6);
}

async fn the_feed_pages_and_filters(app: TestApp) {
    let shop = shop(&app, "Acme", &iccid(70, 3)).await;
    for _ in 0..5 {
        assert_eq!(place(&app, &shop).await.status(), StatusCode::CREATED);
    }
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let query = match &cursor {
            Some(c) => format!("?limit=2&cursor={c}"),
            None => "?limit=2".to_owned(),
        };
        let page = feed(&app, &shop.token, &query).await;
        for event in page["data"].as_array().unwrap() {
            seen.push(event["id"].as_str().unwrap().to_owned());
        }
        cursor = page["next_cursor"].as_str().map(str::to_owned);
        if page["has_more"] == false {
            break;
        }
    }
    assert_eq!(seen.len(), 5, "every event once");
    let mut sorted = seen.clone();
    sorted.sort();
    assert_eq!(
        seen, sorted,
        "oldest first (in commit order, here also id order)"
    );

    let paid = feed(&app, &shop.token, "?type=order.paid").await;
    assert_eq!(paid["data"].as_array().unwrap().len(), 5);
    let none = feed(&app, &shop.token, "?type=order.cancelled").await;
    assert_eq!(none["data"], json!([]));
    let later = feed(&app, &shop.token, "?created_after=2099-01-01T00:00:00Z").await;
    assert_eq!(later["data"], json!([]));

    for (query, status, code) in [
        (
            "?type=order.lost",
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        ),
        (
            "?type=",
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        ),
        (
            "?limit=101",
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        ),
        (
            "?created_after=yesterday",
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        ("?since=1", StatusCode::BAD_REQUEST, "invalid_request"),
    ] {
        let response = app
            .get_with(&format!("/v1/events{query}"), &shop.token)
            .await;
        assert_problem(response, status, code).await;
    }
}

async fn events_are_private_and_need_their_scope(app: TestApp) {
    let acme = shop(&app, "Acme", &iccid(70, 4)).await;
    let other = shop(&app, "Other", &iccid(70, 5)).await;
    assert_eq!(place(&app, &acme).await.status(), StatusCode::CREATED);
    let acme_event = feed(&app, &acme.token, "").await["data"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(feed(&app, &other.token, "").await["data"], json!([]));
    let foreign = app
        .get_with(&format!("/v1/events/{acme_event}"), &other.token)
        .await;
    assert_problem(foreign, StatusCode::NOT_FOUND, "not_found").await;
    let (_, without_scope) = app.partner_with_token("Reader").await;
    let refused = app.get_with("/v1/events", &without_scope).await;
    assert_problem(refused, StatusCode::FORBIDDEN, "forbidden").await;
}

async fn old_events_go_after_thirty_days(app: TestApp) {
    let shop = shop(&app, "Acme", &iccid(70, 6)).await;
    assert_eq!(place(&app, &shop).await.status(), StatusCode::CREATED);
    app.clock.advance(chrono::TimeDelta::days(29));
    assert_eq!(
        simrenew::events::purge_expired(&app.store, &app.clock)
            .await
            .unwrap(),
        0
    );
    assert_eq!(types(&feed(&app, &shop.token, "").await).len(), 1);
    app.clock.advance(chrono::TimeDelta::days(2));
    assert_eq!(
        simrenew::events::purge_expired(&app.store, &app.clock)
            .await
            .unwrap(),
        1
    );
    assert_eq!(feed(&app, &shop.token, "").await["data"], json!([]));
}

/// The order is paid (its `order.paid` appended) and then its activation cannot be
/// written: the whole transaction rolls back, and the event with it.
async fn a_change_rolled_back_tells_nothing(app: TestApp) {
    let shop = shop(&app, "Acme", &iccid(70, 7)).await;
    let on_postgres = app.db.raw_url.starts_with("postgres");
    app.sql(match on_postgres {
        false => {
            "CREATE TRIGGER refuse_activations BEFORE INSERT ON activations \
             BEGIN SELECT RAISE(ABORT, 'refused by the test'); END;"
        }
        true => {
            "CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS \
             $$ BEGIN RAISE EXCEPTION 'refused by the test'; END $$; \
             CREATE TRIGGER refuse_activations BEFORE INSERT ON activations \
             FOR EACH ROW EXECUTE FUNCTION refuse();"
        }
    });
    let placed = place(&app, &shop).await;
    assert_eq!(placed.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(feed(&app, &shop.token, "").await["data"], json!([]));
    let orders: Value = app
        .get_with("/v1/orders", &shop.token)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(orders["data"], json!([]), "no order either");
}

/// Events are numbered in commit order: a reader following the feed while twenty orders
/// commit at once (in whatever order their transactions end) sees every one, once.
async fn a_reader_following_the_feed_during_a_burst_misses_nothing(app: TestApp) {
    let shop = shop(&app, "Acme", &iccid(70, 8)).await;
    let burst = futures_util::future::join_all((0..20).map(|_| place(&app, &shop)));
    let follow = async {
        let mut seen = Vec::new();
        let mut cursor = String::new();
        for _ in 0..400 {
            let page = feed(&app, &shop.token, &format!("?limit=3&cursor={cursor}")).await;
            for event in page["data"].as_array().unwrap() {
                seen.push(event["id"].as_str().unwrap().to_owned());
            }
            cursor = page["next_cursor"].as_str().unwrap().to_owned();
            if seen.len() >= 20 {
                break;
            }
            if page["has_more"] == false {
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
        }
        seen
    };
    let (placed, seen) = tokio::join!(burst, follow);
    assert!(placed.iter().all(|r| r.status() == StatusCode::CREATED));
    let mut distinct = seen.clone();
    distinct.sort();
    distinct.dedup();
    assert_eq!((seen.len(), distinct.len()), (20, 20), "every event once");
}
