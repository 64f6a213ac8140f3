//! Per-partner request quotas: the headers on every answer, `429` once spent, refills
//! with time, overrides set by operators, and what two instances do.

use reqwest::{Response, StatusCode};
use serde_json::{json, Value};

use crate::helpers::{assert_problem, TestApp, TestPartner};
use simrenew::auth::scopes::Scope;

on_both_backends!(
    every_answer_to_a_known_partner_carries_its_quota,
    a_spent_quota_is_429_until_time_refills_it,
    operators_set_and_clear_a_partners_quota,
    bad_quotas_are_refused_and_change_nothing,
    quotas_are_counted_per_instance,
    half_a_quota_cannot_be_stored,
);

fn header(response: &Response, name: &str) -> Option<String> {
    response
        .headers()
        .get(name)
        .map(|v| v.to_str().unwrap().to_owned())
}

/// `"partner";r=12;t=1` → 12.
fn remaining(response: &Response) -> u32 {
    let value = header(response, "ratelimit").expect("RateLimit header");
    value
        .split(';')
        .find_map(|part| part.strip_prefix("r="))
        .expect("r=")
        .parse()
        .unwrap()
}

async fn set_quota(app: &TestApp, admin: &str, partner_id: &str, body: Value) -> Response {
    app.client
        .put(app.url(&format!("/v1/admin/partners/{partner_id}/rate-limit")))
        .bearer_auth(admin)
        .json(&body)
        .send()
        .await
        .unwrap()
}

async fn every_answer_to_a_known_partner_carries_its_quota(app: TestApp) {
    let (_, token) = app.partner_with_token("Acme").await;
    let ok = app.get_with("/v1/wallet", &token).await;
    assert_eq!(ok.status(), StatusCode::OK);
    // The default: 20 a second, 40 at once.
    assert_eq!(
        header(&ok, "ratelimit-policy").as_deref(),
        Some("\"partner\";q=40;w=2")
    );
    assert_eq!(remaining(&ok), 39);
    let missing = app
        .get_with(&format!("/v1/orders/{}", uuid::Uuid::now_v7()), &token)
        .await;
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    assert_eq!(remaining(&missing), 38, "refusals count and say so too");
    let forbidden = app.get_with("/v1/admin/partners", &token).await;
    assert_eq!(forbidden.status(), StatusCode::FORBIDDEN);
    assert_eq!(remaining(&forbidden), 37);
    // An unknown caller has no quota to report.
    let anonymous = app.get("/v1/wallet").await;
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(header(&anonymous, "ratelimit"), None);
    // Operations without a partner carry none either.
    assert_eq!(header(&app.get("/healthz").await, "ratelimit-policy"), None);
}

/// An operator's token, and a partner with every partner scope, its own quota and a token.
async fn partner_with_quota(app: &TestApp, quota: Value) -> (String, TestPartner, String) {
    let admin = app.admin_token().await;
    let (partner, token) = app.partner_with_token("Acme").await;
    let set = set_quota(app, &admin, &partner.id, quota).await;
    assert_eq!(set.status(), StatusCode::OK);
    (admin, partner, token)
}

async fn a_spent_quota_is_429_until_time_refills_it(app: TestApp) {
    let (_, _, token) =
        partner_with_quota(&app, json!({"requests_per_second": 1, "burst": 3})).await;
    let (_, other) = app.partner_with_token("Other").await;
    for left in [2, 1, 0] {
        let response = app.get_with("/v1/wallet", &token).await;
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(remaining(&response), left);
    }
    let refused = app.get_with("/v1/wallet", &token).await;
    assert_eq!(header(&refused, "retry-after").as_deref(), Some("1"));
    assert_eq!(
        header(&refused, "ratelimit-policy").as_deref(),
        Some("\"partner\";q=3;w=3")
    );
    assert_eq!(remaining(&refused), 0);
    let problem = assert_problem(refused, StatusCode::TOO_MANY_REQUESTS, "rate_limited").await;
    assert_eq!(problem["retryable"], true);
    // Other partners are not affected.
    assert_eq!(
        app.get_with("/v1/wallet", &other).await.status(),
        StatusCode::OK
    );
    // One second brings one request back, not more.
    app.clock.advance(chrono::TimeDelta::seconds(1));
    assert_eq!(
        app.get_with("/v1/wallet", &token).await.status(),
        StatusCode::OK
    );
    assert_eq!(
        app.get_with("/v1/wallet", &token).await.status(),
        StatusCode::TOO_MANY_REQUESTS
    );
    app.clock.advance(chrono::TimeDelta::seconds(10));
    let full = app.get_with("/v1/wallet", &token).await;
    assert_eq!(remaining(&full), 2, "full again after a quiet spell");
}

async fn operators_set_and_clear_a_partners_quota(app: TestApp) {
    let admin = app.admin_token().await;
    let (partner, token) = app.partner_with_token("Acme").await;
    let shown: Value = app
        .get_with(&format!("/v1/admin/partners/{}", partner.id), &admin)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(shown["rate_limit"], Value::Null, "the default");

    let set = set_quota(
        &app,
        &admin,
        &partner.id,
        json!({"requests_per_second": 500, "burst": 1000}),
    )
    .await;
    assert_eq!(set.status(), StatusCode::OK);
    let body: Value = set.json().await.unwrap();
    assert_eq!(
        body["rate_limit"],
        json!({"requests_per_second": 500, "burst": 1000})
    );
    let raised = app.get_with("/v1/wallet", &token).await;
    assert_eq!(
        header(&raised, "ratelimit-policy").as_deref(),
        Some("\"partner\";q=1000;w=2")
    );
    assert_eq!(remaining(&raised), 999);

    let cleared = app
        .client
        .delete(app.url(&format!("/v1/admin/partners/{}/rate-limit", partner.id)))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(cleared.status(), StatusCode::OK);
    let body: Value = cleared.json().await.unwrap();
    assert_eq!(body["rate_limit"], Value::Null);
    let back = app.get_with("/v1/wallet", &token).await;
    assert_eq!(
        header(&back, "ratelimit-policy").as_deref(),
        Some("\"partner\";q=40;w=2")
    );

    let nobody = set_quota(
        &app,
        &admin,
        &uuid::Uuid::now_v7().to_string(),
        json!({"requests_per_second": 5, "burst": 5}),
    )
    .await;
    assert_problem(nobody, StatusCode::NOT_FOUND, "not_found").await;
    // Only operators may.
    let (_, partner_token) = app.partner_with_token("Reseller").await;
    let refused = set_quota(
        &app,
        &partner_token,
        &partner.id,
        json!({"requests_per_second": 5, "burst": 5}),
    )
    .await;
    assert_problem(refused, StatusCode::FORBIDDEN, "forbidden").await;
}

async fn bad_quotas_are_refused_and_change_nothing(app: TestApp) {
    let (admin, partner, _) =
        partner_with_quota(&app, json!({"requests_per_second": 7, "burst": 9})).await;
    for (body, status, code) in [
        (
            json!({"requests_per_second": 0, "burst": 5}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        ),
        (
            json!({"requests_per_second": 5.5, "burst": 5}),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            json!({"requests_per_second": 5}),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            json!({"requests_per_second": 5, "burst": 5, "window": 1}),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            json!({"requests_per_second": 100_001, "burst": 5}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        ),
        (
            json!({"requests_per_second": 5, "burst": 100_001}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        ),
    ] {
        let response = set_quota(&app, &admin, &partner.id, body.clone()).await;
        assert_problem(response, status, code).await;
    }
    // Each value out of range is named.
    let both = set_quota(
        &app,
        &admin,
        &partner.id,
        json!({"requests_per_second": 0, "burst": 100_001}),
    )
    .await;
    let problem = assert_problem(both, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed").await;
    let fields: Vec<&str> = problem["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["requests_per_second", "burst"]);
    let shown: Value = app
        .get_with(&format!("/v1/admin/partners/{}", partner.id), &admin)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        shown["rate_limit"],
        json!({"requests_per_second": 7, "burst": 9}),
        "unchanged"
    );
}

/// Each instance keeps its own buckets: a partner that spent its quota on one instance
/// still has a full one on the other, and a new override reaches the other instance
/// within the credential-check interval (here 0: at once).
async fn quotas_are_counted_per_instance(app: TestApp) {
    let mut settings = app.settings();
    settings.auth.credential_check_interval = std::time::Duration::ZERO;
    let first = app.spawn_sibling(settings.clone()).await;
    let second = app.spawn_sibling(settings).await;
    let admin = first.admin_token().await;
    let partner = first.create_partner("Acme", &[Scope::WalletRead]).await;
    let token = first.token_for(&partner).await;
    let set = set_quota(
        &first,
        &admin,
        &partner.id,
        json!({"requests_per_second": 1, "burst": 2}),
    )
    .await;
    assert_eq!(set.status(), StatusCode::OK);
    for _ in 0..2 {
        assert_eq!(
            first.get_with("/v1/wallet", &token).await.status(),
            StatusCode::OK
        );
    }
    let spent = first.get_with("/v1/wallet", &token).await;
    assert_eq!(spent.status(), StatusCode::TOO_MANY_REQUESTS);
    let elsewhere = second.get_with("/v1/wallet", &token).await;
    assert_eq!(
        elsewhere.status(),
        StatusCode::OK,
        "the other instance's bucket"
    );
    assert_eq!(
        header(&elsewhere, "ratelimit-policy").as_deref(),
        Some("\"partner\";q=2;w=2"),
        "the override reached the other instance"
    );
    assert_eq!(remaining(&elsewhere), 1);
}

/// Both values or neither: a row with one of them could not be read (every request of
/// that partner would be a 500), so the database refuses to hold one.
async fn half_a_quota_cannot_be_stored(app: TestApp) {
    let (partner, token) = app.partner_with_token("Acme").await;
    let sql = format!(
        "UPDATE partners SET rate_limit_burst = 5 WHERE id = '{}'",
        partner.id
    );
    let refused = app.store.run_blocking(move |conn| {
        diesel::connection::SimpleConnection::batch_execute(conn, &sql)
            .map_err(simrenew::db::DbError::from)
    });
    assert!(refused.is_err(), "the database refused half a quota");
    assert_eq!(
        app.get_with("/v1/wallet", &token).await.status(),
        StatusCode::OK
    );
}
