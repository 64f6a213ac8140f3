//! Admin API for partners, and how bad input is answered: a clear 4xx problem that
//! changes nothing.

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::{assert_problem, fetch_token, problem_fields, TestApp};

on_both_backends!(
    an_admin_creates_lists_and_reads_partners,
    partner_pages_never_repeat_or_skip,
    bad_bodies_are_problems_and_change_nothing,
    an_unknown_partner_is_404,
);

async fn partner_count(app: &TestApp, admin: &str) -> usize {
    let mut count = 0;
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/v1/admin/partners?limit=100&cursor={c}"),
            None => "/v1/admin/partners?limit=100".to_owned(),
        };
        let page: Value = app.get_with(&path, admin).await.json().await.unwrap();
        count += page["data"].as_array().unwrap().len();
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => return count,
        }
    }
}

async fn an_admin_creates_lists_and_reads_partners(app: TestApp) {
    let admin = app.admin_token().await;
    let response = app
        .post_json(
            "/v1/admin/partners",
            &admin,
            &json!({"name": "Acme Mobile", "scopes": ["catalog:read", "orders:write"]}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::CREATED);
    assert_eq!(response.headers()["cache-control"], "no-store");
    let location = response.headers()["location"].to_str().unwrap().to_owned();
    let created: Value = response.json().await.unwrap();
    assert_eq!(
        location,
        format!(
            "/v1/admin/partners/{}",
            created["partner_id"].as_str().unwrap()
        )
    );
    assert_eq!(created["status"], "active");
    assert_eq!(created["scopes"], json!(["catalog:read", "orders:write"]));
    assert!(created["client_secret"]
        .as_str()
        .unwrap()
        .starts_with("sr_secret_"));

    let fetched: Value = app.get_with(&location, &admin).await.json().await.unwrap();
    assert_eq!(fetched["name"], "Acme Mobile");
    assert!(fetched.get("client_secret").is_none());
    assert!(!fetched
        .to_string()
        .contains(created["client_secret"].as_str().unwrap()));

    // The new partner's credentials work at once (`fetch_token` asserts the 200).
    fetch_token(
        &app.client,
        &app.base_url,
        created["client_id"].as_str().unwrap(),
        created["client_secret"].as_str().unwrap(),
    )
    .await;
}

async fn partner_pages_never_repeat_or_skip(app: TestApp) {
    let admin = app.admin_token().await;
    for i in 0..5 {
        let response = app
            .post_json(
                "/v1/admin/partners",
                &admin,
                &json!({"name": format!("P{i}"), "scopes": ["catalog:read"]}),
            )
            .await;
        assert_eq!(response.status(), StatusCode::CREATED);
    }
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    let mut inserted_midway = false;
    loop {
        let path = match &cursor {
            Some(c) => format!("/v1/admin/partners?limit=2&cursor={c}"),
            None => "/v1/admin/partners?limit=2".to_owned(),
        };
        let page: Value = app.get_with(&path, &admin).await.json().await.unwrap();
        let data = page["data"].as_array().unwrap();
        assert!(data.len() <= 2);
        seen.extend(data.iter().map(|p| p["id"].as_str().unwrap().to_owned()));
        if !inserted_midway {
            // A partner created between page reads sorts after every existing one.
            app.post_json(
                "/v1/admin/partners",
                &admin,
                &json!({"name": "Late", "scopes": ["catalog:read"]}),
            )
            .await;
            inserted_midway = true;
        }
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
    }
    let mut unique = seen.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), seen.len(), "no partner twice");
    assert_eq!(seen.len(), 7, "operator + 5 + the late one: {seen:?}");
    assert_eq!(unique, seen, "ordered by id");

    for bad in ["limit=0", "limit=101", "cursor=bogus"] {
        let response = app
            .get_with(&format!("/v1/admin/partners?{bad}"), &admin)
            .await;
        let body = assert_problem(
            response,
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        )
        .await;
        let field = bad.split('=').next().unwrap();
        assert_eq!(body["errors"][0]["field"], field);
    }
}

async fn bad_bodies_are_problems_and_change_nothing(app: TestApp) {
    let admin = app.admin_token().await;
    let before = partner_count(&app, &admin).await;
    let send = |body: String, content_type: &'static str| {
        app.client
            .post(app.url("/v1/admin/partners"))
            .bearer_auth(&admin)
            .header("content-type", content_type)
            .body(body)
            .send()
    };
    let malformed = send("{\"name\": ".into(), "application/json")
        .await
        .unwrap();
    let body = assert_problem(malformed, StatusCode::BAD_REQUEST, "invalid_request").await;
    assert!(
        body["detail"].as_str().unwrap().contains("not valid JSON"),
        "{body}"
    );

    let wrong_type = send(
        json!({"name": 5, "scopes": ["admin"]}).to_string(),
        "application/json",
    )
    .await
    .unwrap();
    assert_problem(wrong_type, StatusCode::BAD_REQUEST, "invalid_request").await;

    // Mass assignment: a field the client may not set is refused, not ignored.
    let extra = send(
        json!({"name": "X", "scopes": ["admin"], "status": "active", "id": "1"}).to_string(),
        "application/json",
    )
    .await
    .unwrap();
    let body = assert_problem(extra, StatusCode::BAD_REQUEST, "invalid_request").await;
    assert!(
        body["detail"].as_str().unwrap().contains("unknown field"),
        "{body}"
    );

    let unknown_scope = send(
        json!({"name": "X", "scopes": ["root"]}).to_string(),
        "application/json",
    )
    .await
    .unwrap();
    assert_problem(unknown_scope, StatusCode::BAD_REQUEST, "invalid_request").await;

    let not_json = send("name=X".into(), "text/plain").await.unwrap();
    assert_problem(
        not_json,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
    )
    .await;

    let huge = send(
        json!({"name": "x".repeat(70_000), "scopes": ["admin"]}).to_string(),
        "application/json",
    )
    .await
    .unwrap();
    assert_problem(huge, StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large").await;

    let invalid = send(
        json!({"name": " ", "scopes": []}).to_string(),
        "application/json",
    )
    .await
    .unwrap();
    let body = assert_problem(
        invalid,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    )
    .await;
    assert_eq!(problem_fields(&body), ["name", "scopes"]);

    assert_eq!(
        partner_count(&app, &admin).await,
        before,
        "nothing was created"
    );
}

async fn an_unknown_partner_is_404(app: TestApp) {
    let admin = app.admin_token().await;
    let missing = uuid::Uuid::now_v7();
    for path in [
        format!("/v1/admin/partners/{missing}"),
        format!("/v1/admin/partners/{missing}/credentials"),
        "/v1/admin/partners/not-a-uuid".to_owned(),
    ] {
        assert_problem(
            app.get_with(&path, &admin).await,
            StatusCode::NOT_FOUND,
            "not_found",
        )
        .await;
    }
    for action in ["suspend", "resume", "credentials"] {
        let response = app
            .post_json(
                &format!("/v1/admin/partners/{missing}/{action}"),
                &admin,
                &json!({}),
            )
            .await;
        assert_problem(response, StatusCode::NOT_FOUND, "not_found").await;
    }
}
