//! The OpenAPI document partners generate SDKs from: committed, generated, never apart.

use std::collections::HashSet;

use serde_json::Value;

const COMMITTED: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/openapi/openapi.json");

/// Fails when `openapi/openapi.json` differs from what the code generates.
/// `UPDATE_OPENAPI=1 cargo test --test api openapi::` rewrites the committed copy.
#[test]
fn the_committed_document_matches_the_code() {
    let generated = simrenew::app::document_json();
    if std::env::var_os("UPDATE_OPENAPI").is_some() {
        std::fs::write(COMMITTED, &generated).expect("write openapi/openapi.json");
        return;
    }
    let committed = std::fs::read_to_string(COMMITTED).unwrap_or_default();
    assert!(
        committed == generated,
        "openapi/openapi.json is out of date: run `cargo run -- openapi > openapi/openapi.json` \
         (or `UPDATE_OPENAPI=1 cargo test --test api openapi::`) and commit it"
    );
}

fn document() -> Value {
    serde_json::from_str(&simrenew::app::document_json()).expect("the document is JSON")
}

fn operations(doc: &Value) -> Vec<(String, String, Value)> {
    let mut found = Vec::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (method, operation) in item.as_object().expect("path item") {
            found.push((method.clone(), path.clone(), operation.clone()));
        }
    }
    found
}

#[test]
fn it_is_openapi_3_1() {
    assert!(document()["openapi"].as_str().unwrap().starts_with("3.1."));
}

#[test]
fn every_operation_has_a_unique_id_a_tag_and_a_summary() {
    let doc = document();
    let mut ids = HashSet::new();
    for (method, path, operation) in operations(&doc) {
        let id = operation["operationId"].as_str().unwrap_or_default();
        assert!(!id.is_empty(), "{method} {path} has no operationId");
        assert!(ids.insert(id.to_owned()), "operationId {id} is used twice");
        assert!(
            operation["tags"].as_array().is_some_and(|t| !t.is_empty()),
            "{method} {path} has no tag"
        );
        assert!(
            operation["summary"].as_str().is_some_and(|s| !s.is_empty()),
            "{method} {path} has no summary"
        );
        for (status, response) in operation["responses"].as_object().unwrap() {
            assert!(
                response["description"]
                    .as_str()
                    .is_some_and(|d| !d.is_empty()),
                "{method} {path} {status} has no description"
            );
        }
    }
    assert!(!ids.is_empty());
}

#[test]
fn error_responses_use_the_problem_schema() {
    let doc = document();
    for (method, path, operation) in operations(&doc) {
        for (status, response) in operation["responses"].as_object().unwrap() {
            if !status.starts_with('4') && !status.starts_with('5') {
                continue;
            }
            if path == "/v1/oauth/token" && (status == "400" || status == "401") {
                // RFC 6749 §5.2 prescribes the token endpoint's error body.
                let schema = &response["content"]["application/json"]["schema"]["$ref"];
                assert_eq!(schema, "#/components/schemas/OAuthError");
                continue;
            }
            let schema = &response["content"]["application/problem+json"]["schema"]["$ref"];
            assert_eq!(
                schema, "#/components/schemas/Problem",
                "{method} {path} {status} must answer problem+json"
            );
        }
    }
}

#[test]
fn every_protected_operation_names_its_scope_and_documents_401_403_and_429() {
    let doc = document();
    for (method, path, operation) in operations(&doc) {
        let Some(requirements) = operation["security"].as_array() else {
            panic!("{method} {path} says nothing about security");
        };
        let schemes: Vec<(&String, &Value)> = requirements
            .iter()
            .filter_map(|r| r.as_object())
            .flat_map(|r| r.iter())
            .collect();
        if schemes.is_empty() {
            continue; // public: `security: [{}]`
        }
        for (scheme, scopes) in schemes {
            // OAuth2 requirements name the scope; HTTP schemes (bearer) have none to name.
            let listed = scopes.as_array().map_or(0, Vec::len);
            match scheme.as_str() {
                "oauth2" => assert!(listed > 0, "{method} {path} names no scope"),
                _ => assert_eq!(listed, 0, "{method} {path}: {scheme} cannot carry scopes"),
            }
        }
        for status in ["401", "403", "429"] {
            assert!(
                operation["responses"][status].is_object(),
                "{method} {path} does not document {status}"
            );
        }
    }
}

#[test]
fn request_and_response_bodies_are_named_components() {
    let doc = document();
    for (method, path, operation) in operations(&doc) {
        let mut bodies = vec![operation["requestBody"].clone()];
        bodies.extend(
            operation["responses"]
                .as_object()
                .unwrap()
                .values()
                .cloned(),
        );
        for body in bodies {
            let Some(content) = body["content"].as_object() else {
                continue;
            };
            for (media, media_type) in content {
                let schema = &media_type["schema"];
                let named = schema["$ref"].is_string()
                    || schema["items"]["$ref"].is_string()
                    || schema["type"] == "string";
                assert!(named, "{method} {path} {media}: inline schema {schema}");
            }
        }
    }
}

mod served {
    //! The document a running server serves, and the answers it declares.

    use reqwest::StatusCode;
    use serde_json::{json, Value};

    use crate::helpers::{assert_problem, TestApp};
    use simrenew::config::ProviderKind;
    use simrenew::domain::PaymentMethod;

    on_both_backends!(
        backend:
        a_server_serves_only_the_operations_it_has,
        integers_may_be_written_with_a_zero_fraction,
    );

    async fn served_paths(app: &TestApp) -> Vec<String> {
        let doc: Value = app.get("/openapi.json").await.json().await.unwrap();
        doc["paths"].as_object().unwrap().keys().cloned().collect()
    }

    async fn a_server_serves_only_the_operations_it_has(backend: crate::helpers::Backend) {
        let plain = TestApp::spawn(backend).await;
        let paths = served_paths(&plain).await;
        assert!(
            paths.iter().all(|p| !p.starts_with("/v1/sandbox/")),
            "{paths:?}"
        );
        assert!(paths.contains(&"/v1/orders".to_owned()));
        // The sandbox's paths are not this server's: 404, never a contradictory 405.
        let token = plain.admin_token().await;
        let response = plain
            .post_json(
                &format!("/v1/sandbox/payments/{}/succeed", uuid::Uuid::now_v7()),
                &token,
                &json!({}),
            )
            .await;
        assert_problem(response, StatusCode::NOT_FOUND, "not_found").await;

        // The payments sandbox alone: its operations, not the SMS outbox.
        let payments_only = TestApp::spawn_configured(backend, |settings| {
            settings.payments.routes = vec![(PaymentMethod::Card, ProviderKind::Sandbox)];
        })
        .await;
        let paths = served_paths(&payments_only).await;
        assert!(paths.iter().any(|p| p.starts_with("/v1/sandbox/payments/")));
        assert!(!paths.contains(&"/v1/sandbox/sms".to_owned()), "{paths:?}");

        let sandboxed = TestApp::spawn_configured(backend, |settings| {
            settings.payments.routes = vec![(PaymentMethod::Card, ProviderKind::Sandbox)];
            settings.sms.sandbox_everywhere();
        })
        .await;
        let served: Value = sandboxed.get("/openapi.json").await.json().await.unwrap();
        let committed: Value = serde_json::from_str(&simrenew::app::document_json()).unwrap();
        assert_eq!(
            served, committed,
            "with both sandboxes on, the served document is the committed one"
        );
    }

    async fn integers_may_be_written_with_a_zero_fraction(backend: crate::helpers::Backend) {
        let app = TestApp::spawn(backend).await;
        let admin = app.admin_token().await;
        let (partner, token) = app.partner_with_token("Acme").await;
        let path = format!("/v1/admin/partners/{}/wallet/credits", partner.id);
        let credit = |amount: Value| {
            let body = json!({"currency": "CNY", "amount": amount});
            let (app, path, admin) = (&app, &path, &admin);
            async move { app.post_json(path, admin, &body).await }
        };
        assert_eq!(credit(json!(1500.0)).await.status(), StatusCode::CREATED);
        assert_eq!(credit(json!(5e2)).await.status(), StatusCode::CREATED);
        for refused in [json!(12.5), json!("100"), json!(1e300)] {
            assert_problem(
                credit(refused).await,
                StatusCode::BAD_REQUEST,
                "invalid_request",
            )
            .await;
        }
        let wallet: Value = app
            .get_with("/v1/wallet", &token)
            .await
            .json()
            .await
            .unwrap();
        let cny = wallet["balances"]
            .as_array()
            .unwrap()
            .iter()
            .find(|b| b["currency"] == "CNY")
            .cloned()
            .unwrap_or(Value::Null);
        assert_eq!(
            cny["available"], 2000,
            "only the integral credits: {wallet}"
        );
    }
}
