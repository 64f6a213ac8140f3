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
fn every_protected_operation_names_its_scope_and_documents_401_and_403() {
    let doc = document();
    for (method, path, operation) in operations(&doc) {
        let Some(requirements) = operation["security"].as_array() else {
            panic!("{method} {path} says nothing about security");
        };
        let scopes: Vec<&Value> = requirements
            .iter()
            .filter_map(|r| r.as_object())
            .flat_map(|r| r.values())
            .collect();
        if scopes.is_empty() {
            continue; // public: `security: [{}]`
        }
        assert!(
            scopes
                .iter()
                .all(|s| s.as_array().is_some_and(|a| !a.is_empty())),
            "{method} {path} lists a scheme without its scope"
        );
        for status in ["401", "403"] {
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
