//! The plan catalog and device compatibility, through HTTP.

use std::collections::HashSet;

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::{assert_problem, problem_fields, TestApp};
use simrenew::auth::scopes::Scope;

on_both_backends!(
    every_filter_alone_and_combined_selects_exactly_the_matching_plans,
    pages_never_repeat_or_skip_while_a_plan_is_added,
    etag_gives_304_until_the_catalog_changes,
    a_change_through_a_sibling_instance_reaches_it_within_the_staleness_bound,
    retired_plans_leave_the_list_but_stay_readable,
    bad_plans_and_filters_are_named_and_change_nothing,
    only_admins_write_the_catalog,
    devices_are_matched_ignoring_case_and_spacing,
);

/// Imports the demo catalog; returns its plans as JSON.
async fn seed_demo(app: &TestApp) -> Vec<Value> {
    app.import_demo_plans().await;
    simrenew::catalog::demo_plans()
        .unwrap()
        .iter()
        .map(|p| serde_json::to_value(p).unwrap())
        .collect()
}

async fn reader(app: &TestApp) -> String {
    let partner = app.create_partner("Shop", &[Scope::CatalogRead]).await;
    app.token_for(&partner).await
}

/// Every plan of every page for `query`.
async fn all_codes(app: &TestApp, token: &str, query: &str) -> Vec<String> {
    let mut codes = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut path = format!("/v1/plans?limit=5&{query}");
        if let Some(c) = &cursor {
            path.push_str(&format!("&cursor={c}"));
        }
        let response = app.get_with(&path, token).await;
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        let page: Value = response.json().await.unwrap();
        codes.extend(
            page["data"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| p["code"].as_str().unwrap().to_owned()),
        );
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => return codes,
        }
    }
}

fn matches(plan: &Value, filters: &[(&str, &str)]) -> bool {
    filters.iter().all(|(name, value)| match *name {
        "card_type" => plan["card_types"]
            .as_array()
            .unwrap()
            .contains(&json!(value)),
        "country" => plan["coverage"].as_array().unwrap().contains(&json!(value)),
        "period" => plan["period"] == *value,
        "currency" => plan["prices"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["currency"] == *value),
        other => panic!("unknown filter {other}"),
    })
}

async fn every_filter_alone_and_combined_selects_exactly_the_matching_plans(app: TestApp) {
    let demo = seed_demo(&app).await;
    let token = reader(&app).await;
    let cases: Vec<Vec<(&str, &str)>> = vec![
        vec![],
        vec![("card_type", "esim")],
        vec![("card_type", "fm")],
        vec![("country", "JP")],
        vec![("country", "HK")],
        vec![("period", "quarter")],
        vec![("period", "year")],
        vec![("currency", "USD")],
        vec![("currency", "EUR")],
        vec![("card_type", "fm"), ("country", "HK")],
        vec![
            ("card_type", "esim"),
            ("period", "month"),
            ("country", "CN"),
        ],
        vec![
            ("card_type", "fm"),
            ("country", "JP"),
            ("period", "year"),
            ("currency", "CNY"),
        ],
    ];
    for filters in cases {
        let query: Vec<String> = filters.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let mut got = all_codes(&app, &token, &query.join("&")).await;
        let mut expected: Vec<String> = demo
            .iter()
            .filter(|plan| matches(plan, &filters))
            .map(|plan| plan["code"].as_str().unwrap().to_owned())
            .collect();
        got.sort();
        expected.sort();
        assert_eq!(got, expected, "{filters:?}");
    }
}

async fn pages_never_repeat_or_skip_while_a_plan_is_added(app: TestApp) {
    let demo = seed_demo(&app).await;
    let token = reader(&app).await;
    let admin = app.admin_token().await;
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let path = match &cursor {
            Some(c) => format!("/v1/plans?limit=5&cursor={c}"),
            None => "/v1/plans?limit=5".to_owned(),
        };
        let page: Value = app.get_with(&path, &token).await.json().await.unwrap();
        seen.extend(
            page["data"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| p["code"].as_str().unwrap().to_owned()),
        );
        pages += 1;
        if pages == 1 {
            let created = app
                .post_json("/v1/admin/plans", &admin, &new_plan("LATE-ADDED"))
                .await;
            assert_eq!(created.status(), StatusCode::CREATED);
        }
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
    }
    let unique: HashSet<_> = seen.iter().cloned().collect();
    assert_eq!(unique.len(), seen.len(), "a plan came twice: {seen:?}");
    for plan in &demo {
        assert!(
            unique.contains(plan["code"].as_str().unwrap()),
            "skipped {}",
            plan["code"]
        );
    }
    assert!(
        unique.contains("LATE-ADDED"),
        "a plan added meanwhile sorts after the cursor"
    );
}

fn new_plan(code: &str) -> Value {
    json!({
        "code": code, "name": "Test plan", "card_types": ["esim"], "period": "month",
        "data_bytes": 1073741824_i64, "coverage": ["JP"], "prices": [{"currency": "USD", "amount": 500}]
    })
}

async fn etag_gives_304_until_the_catalog_changes(app: TestApp) {
    seed_demo(&app).await;
    let token = reader(&app).await;
    let admin = app.admin_token().await;
    let first = app.get_with("/v1/plans?currency=CNY", &token).await;
    assert_eq!(first.headers()["cache-control"], "private, max-age=60");
    let etag = first.headers()["etag"].to_str().unwrap().to_owned();
    assert!(
        etag.starts_with('"') && !etag.starts_with("W/"),
        "strong: {etag}"
    );
    let body: Value = first.json().await.unwrap();
    let plan_id = body["data"][0]["id"].as_str().unwrap().to_owned();

    let conditional = |etag: String| {
        app.client
            .get(app.url("/v1/plans?currency=CNY"))
            .bearer_auth(&token)
            .header("if-none-match", etag)
            .send()
    };
    let unchanged = conditional(etag.clone()).await.unwrap();
    assert_eq!(unchanged.status(), StatusCode::NOT_MODIFIED);
    assert_eq!(unchanged.headers()["etag"].to_str().unwrap(), etag);
    assert!(unchanged.bytes().await.unwrap().is_empty());
    let item = app
        .client
        .get(app.url(&format!("/v1/plans/{plan_id}")))
        .bearer_auth(&token)
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(item.status(), StatusCode::NOT_MODIFIED);

    let patched = app
        .client
        .patch(app.url(&format!("/v1/admin/plans/{plan_id}")))
        .bearer_auth(&admin)
        .json(&json!({"prices": [{"currency": "CNY", "amount": 1234}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(patched.status(), StatusCode::OK);
    let changed = conditional(etag.clone()).await.unwrap();
    assert_eq!(changed.status(), StatusCode::OK);
    assert_ne!(changed.headers()["etag"].to_str().unwrap(), etag);
    let body: Value = changed.json().await.unwrap();
    let plan = body["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["id"] == plan_id)
        .unwrap();
    assert_eq!(plan["prices"], json!([{"currency": "CNY", "amount": 1234}]));
}

/// Each instance holds the catalog version in memory; a change made through another
/// instance reaches its answers within `STALENESS_BOUND` (PostgreSQL: a notification,
/// SQLite: the periodic read), and the new page comes with the new ETag.
async fn a_change_through_a_sibling_instance_reaches_it_within_the_staleness_bound(app: TestApp) {
    use simrenew::catalog::version::STALENESS_BOUND;
    seed_demo(&app).await;
    let sibling = app.spawn_sibling(app.settings()).await;
    let token = reader(&app).await;
    let admin = app.admin_token().await;
    let before: Value = app
        .get_with("/v1/plans?country=JP", &token)
        .await
        .json()
        .await
        .unwrap();
    let etag = app.get_with("/v1/plans?country=JP", &token).await.headers()["etag"].clone();
    let created = sibling
        .post_json("/v1/admin/plans", &admin, &new_plan("JP-FROM-SIBLING"))
        .await;
    assert_eq!(created.status(), StatusCode::CREATED);
    let changed_at = std::time::Instant::now();
    let after = loop {
        let answer = app
            .client
            .get(app.url("/v1/plans?country=JP"))
            .bearer_auth(&token)
            .header("if-none-match", etag.clone())
            .send()
            .await
            .unwrap();
        if answer.status() == StatusCode::OK {
            break answer;
        }
        assert_eq!(answer.status(), StatusCode::NOT_MODIFIED);
        assert!(
            changed_at.elapsed() < STALENESS_BOUND * 3,
            "the change never arrived"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    };
    let took = changed_at.elapsed();
    // The bound is kept by construction (a version older than it is read again by the
    // request itself); the margin is for this loaded machine's request times.
    assert!(
        took < STALENESS_BOUND + std::time::Duration::from_millis(500),
        "the change took {took:?} to arrive"
    );
    assert_ne!(after.headers()["etag"], etag);
    let after: Value = after.json().await.unwrap();
    assert_eq!(
        after["data"].as_array().unwrap().len(),
        before["data"].as_array().unwrap().len() + 1
    );
    let fresh = sibling.get_with("/v1/plans?country=JP", &token).await;
    assert_eq!(
        fresh.headers()["etag"],
        app.get_with("/v1/plans?country=JP", &token).await.headers()["etag"],
        "both instances name the same version"
    );
}

async fn retired_plans_leave_the_list_but_stay_readable(app: TestApp) {
    seed_demo(&app).await;
    let token = reader(&app).await;
    let admin = app.admin_token().await;
    let listed: Value = app
        .get_with("/v1/plans?country=HK&card_type=esim", &token)
        .await
        .json()
        .await
        .unwrap();
    let plan = &listed["data"][0];
    let id = plan["id"].as_str().unwrap();
    let retired = app
        .post_json(&format!("/v1/admin/plans/{id}/retire"), &admin, &json!({}))
        .await;
    assert_eq!(retired.status(), StatusCode::OK);
    assert_eq!(retired.json::<Value>().await.unwrap()["status"], "retired");
    let again = app
        .post_json(&format!("/v1/admin/plans/{id}/retire"), &admin, &json!({}))
        .await;
    assert_eq!(again.status(), StatusCode::OK, "retiring twice is harmless");

    let codes = all_codes(&app, &token, "").await;
    assert!(!codes.contains(&plan["code"].as_str().unwrap().to_owned()));
    let fetched = app.get_with(&format!("/v1/plans/{id}"), &token).await;
    assert_eq!(fetched.status(), StatusCode::OK);
    let fetched: Value = fetched.json().await.unwrap();
    assert_eq!(fetched["status"], "retired");
    assert_eq!(fetched["code"], plan["code"]);
    assert_problem(
        app.get_with(&format!("/v1/plans/{}", uuid::Uuid::now_v7()), &token)
            .await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
}

async fn bad_plans_and_filters_are_named_and_change_nothing(app: TestApp) {
    seed_demo(&app).await;
    let token = reader(&app).await;
    let admin = app.admin_token().await;
    let before = all_codes(&app, &token, "").await;
    let etag = app.get_with("/v1/plans", &token).await.headers()["etag"].clone();

    let invalid = json!({
        "code": "BAD PLAN", "name": "", "card_types": [], "period": "custom",
        "coverage": ["XX"], "prices": [{"currency": "RMB", "amount": 100}, {"currency": "USD", "amount": 0}]
    });
    let response = app.post_json("/v1/admin/plans", &admin, &invalid).await;
    let body = assert_problem(
        response,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    )
    .await;
    assert_eq!(
        problem_fields(&body),
        [
            "code",
            "name",
            "card_types",
            "validity_days",
            "coverage[0]",
            "prices[0].currency",
            "prices[1].amount"
        ]
    );

    let duplicate = app
        .post_json("/v1/admin/plans", &admin, &new_plan("JP-ESIM-M-5G"))
        .await;
    assert_problem(duplicate, StatusCode::CONFLICT, "conflict").await;

    let float_price = json!({"code": "F", "name": "F", "card_types": ["fm"], "period": "month",
        "coverage": ["CN"], "prices": [{"currency": "CNY", "amount": 9.9}]});
    assert_problem(
        app.post_json("/v1/admin/plans", &admin, &float_price).await,
        StatusCode::BAD_REQUEST,
        "invalid_request",
    )
    .await;

    let immutable = app
        .client
        .patch(app.url(&format!("/v1/admin/plans/{}", uuid::Uuid::now_v7())))
        .bearer_auth(&admin)
        .json(&json!({"validity_days": 1}))
        .send()
        .await
        .unwrap();
    assert_problem(immutable, StatusCode::BAD_REQUEST, "invalid_request").await;

    for (query, field) in [
        ("card_type=sim", "card_type"),
        ("country=jp", "country"),
        ("period=week", "period"),
        ("currency=RMB", "currency"),
        ("limit=500", "limit"),
    ] {
        let response = app.get_with(&format!("/v1/plans?{query}"), &token).await;
        let body = assert_problem(
            response,
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        )
        .await;
        assert_eq!(body["errors"][0]["field"], field, "{query}");
    }
    let typo = app.get_with("/v1/plans?cardtype=fm", &token).await;
    assert_problem(typo, StatusCode::BAD_REQUEST, "invalid_request").await;

    assert_eq!(all_codes(&app, &token, "").await, before);
    assert_eq!(
        app.get_with("/v1/plans", &token).await.headers()["etag"],
        etag,
        "no version bump"
    );
}

async fn only_admins_write_the_catalog(app: TestApp) {
    seed_demo(&app).await;
    let (_, partner) = app.partner_with_token("Reseller").await;
    let plan_id = {
        let listed: Value = app
            .get_with("/v1/plans?limit=1", &partner)
            .await
            .json()
            .await
            .unwrap();
        listed["data"][0]["id"].as_str().unwrap().to_owned()
    };
    let create = app
        .post_json("/v1/admin/plans", &partner, &new_plan("MINE"))
        .await;
    assert_problem(create, StatusCode::FORBIDDEN, "forbidden").await;
    let patch = app
        .client
        .patch(app.url(&format!("/v1/admin/plans/{plan_id}")))
        .bearer_auth(&partner)
        .json(&json!({"name": "Cheap"}))
        .send()
        .await
        .unwrap();
    assert_problem(patch, StatusCode::FORBIDDEN, "forbidden").await;
    let retire = app
        .post_json(
            &format!("/v1/admin/plans/{plan_id}/retire"),
            &partner,
            &json!({}),
        )
        .await;
    assert_problem(retire, StatusCode::FORBIDDEN, "forbidden").await;
    let device = app
        .post_json(
            "/v1/admin/devices",
            &partner,
            &json!({"model": "X", "esim_supported": true}),
        )
        .await;
    assert_problem(device, StatusCode::FORBIDDEN, "forbidden").await;

    let admin_only = app.admin_token().await;
    let response = app.get_with("/v1/plans", &admin_only).await;
    assert_problem(response, StatusCode::FORBIDDEN, "forbidden").await;
}

async fn devices_are_matched_ignoring_case_and_spacing(app: TestApp) {
    let token = reader(&app).await;
    let admin = app.admin_token().await;
    let check = |model: &'static str| {
        let token = token.clone();
        let request = app
            .client
            .get(app.url("/v1/devices/compatibility"))
            .query(&[("model", model)])
            .bearer_auth(token)
            .send();
        async move {
            let response = request.await.unwrap();
            assert_eq!(response.status(), StatusCode::OK, "{model}");
            response.json::<Value>().await.unwrap()
        }
    };
    let iphone = check("iphone 15  PRO").await;
    assert_eq!(
        (iphone["known"].clone(), iphone["esim_supported"].clone()),
        (json!(true), json!(true))
    );
    assert_eq!(iphone["matched_model"], "Apple iPhone 15 Pro");
    assert!(iphone["note"].as_str().unwrap().contains("SIM slot"));
    let old = check("Samsung Galaxy S10").await;
    assert_eq!(old["esim_supported"], false);
    let unknown = check("Nokia 3310").await;
    assert_eq!(
        (unknown["known"].clone(), unknown["esim_supported"].clone()),
        (json!(false), Value::Null)
    );

    let added = app
        .post_json(
            "/v1/admin/devices",
            &admin,
            &json!({"model": "Nokia 3310", "esim_supported": false, "note": "A classic."}),
        )
        .await;
    assert_eq!(added.status(), StatusCode::CREATED);
    let known_now = check("NOKIA3310").await;
    assert_eq!(
        (
            known_now["known"].clone(),
            known_now["esim_supported"].clone()
        ),
        (json!(true), json!(false))
    );

    let missing = app.get_with("/v1/devices/compatibility", &token).await;
    assert_problem(missing, StatusCode::BAD_REQUEST, "invalid_request").await;
    let blank = app
        .get_with("/v1/devices/compatibility?model=%20", &token)
        .await;
    assert_problem(blank, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed").await;
}
