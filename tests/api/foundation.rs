//! The service's common ground, through HTTP: health, readiness, request ids, the
//! problem+json error language for routing failures, metrics, and the API reference.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::{assert_problem, cli_create_partner, fetch_token, Backend, Process, TestApp};

on_both_backends!(
    liveness_answers_with_a_generated_request_id,
    a_sane_request_id_is_echoed_and_an_unsafe_one_replaced,
    readiness_reports_the_backend,
    an_unknown_route_is_a_404_problem,
    a_wrong_method_is_a_405_problem_with_allow,
    metrics_count_requests_by_route_pattern_and_status,
    the_reference_and_its_assets_are_served_locally,
    every_answer_says_nosniff_and_problems_say_whether_to_retry,
    unknown_query_parameters_and_token_json_fields_are_refused,
);

async fn every_answer_says_nosniff_and_problems_say_whether_to_retry(app: TestApp) {
    for path in [
        "/healthz",
        "/readyz",
        "/openapi.json",
        "/no/such/route",
        "/v1/plans",
    ] {
        let response = app.get(path).await;
        assert_eq!(
            response.headers()["x-content-type-options"],
            "nosniff",
            "{path}"
        );
    }
    let missing = assert_problem(
        app.get("/no/such/route").await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    assert_eq!(missing["retryable"], false);
    let unauthorized = assert_problem(
        app.get("/v1/plans").await,
        StatusCode::UNAUTHORIZED,
        "unauthorized",
    )
    .await;
    assert_eq!(unauthorized["retryable"], false);
}

async fn unknown_query_parameters_and_token_json_fields_are_refused(app: TestApp) {
    let admin = app.admin_token().await;
    for path in [
        "/v1/admin/partners?limit=5&colour=blue",
        "/v1/wallet/transactions?page=2",
    ] {
        let token = if path.starts_with("/v1/admin") {
            admin.clone()
        } else {
            app.partner_with_token("Reader").await.1
        };
        assert_problem(
            app.get_with(path, &token).await,
            StatusCode::BAD_REQUEST,
            "invalid_request",
        )
        .await;
    }
    let partner = app
        .create_partner("Json", &[simrenew::auth::scopes::Scope::CatalogRead])
        .await;
    let json_with_extra = app
        .client
        .post(app.url("/v1/oauth/token"))
        .json(&serde_json::json!({"grant_type": "client_credentials",
            "client_id": partner.client_id, "client_secret": partner.client_secret,
            "admin": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(json_with_extra.status(), StatusCode::BAD_REQUEST);
    let body: Value = json_with_extra.json().await.unwrap();
    assert_eq!(body["error"], "invalid_request");
    // The form body follows RFC 6749 §3.2: unknown parameters are ignored.
    let form_with_extra = app
        .client
        .post(app.url("/v1/oauth/token"))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", partner.client_id.as_str()),
            ("client_secret", partner.client_secret.as_str()),
            ("resource", "ignored"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(form_with_extra.status(), StatusCode::OK);
}

/// Readiness means the database takes a write: a database that answers but cannot write
/// (read-only here, a full disk in production) is not ready.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(postgres_tests),
    ignore = "TEST_POSTGRES_URL is not set: the PostgreSQL test did not run"
)]
async fn readiness_needs_the_database_to_take_a_write() {
    let app = TestApp::spawn(Backend::Postgres).await;
    assert_eq!(app.get("/readyz").await.status(), StatusCode::OK);
    let name = app.db.postgres_name().unwrap().to_owned();
    app.db.admin_sql(&format!(
        "ALTER DATABASE {name} SET default_transaction_read_only = on; \
         SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}';"
    ));
    let started = Instant::now();
    let response = app.get("/readyz").await;
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(
        started.elapsed() < Duration::from_millis(1500),
        "a probe answers fast"
    );
    app.db.admin_sql(&format!(
        "ALTER DATABASE {name} SET default_transaction_read_only = off; \
         SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}';"
    ));
    let deadline = Instant::now() + Duration::from_secs(15);
    while app.get("/readyz").await.status() != StatusCode::OK {
        assert!(Instant::now() < deadline, "not ready again");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn liveness_answers_with_a_generated_request_id(app: TestApp) {
    let response = app.get("/healthz").await;
    assert_eq!(response.status(), StatusCode::OK);
    let id = response.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(uuid::Uuid::parse_str(&id).is_ok(), "{id}");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body, serde_json::json!({"status": "ok"}));
}

async fn a_sane_request_id_is_echoed_and_an_unsafe_one_replaced(app: TestApp) {
    let response = app
        .client
        .get(app.url("/healthz"))
        .header("X-Request-Id", "client-trace-42")
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["x-request-id"], "client-trace-42");

    let too_long = "x".repeat(129);
    let response = app
        .client
        .get(app.url("/nowhere"))
        .header("X-Request-Id", &too_long)
        .send()
        .await
        .unwrap();
    let echoed = response.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    assert_ne!(echoed, too_long);
    let body = assert_problem(response, StatusCode::NOT_FOUND, "not_found").await;
    assert_eq!(
        body["request_id"], echoed,
        "the problem quotes the request id"
    );
}

async fn readiness_reports_the_backend(app: TestApp) {
    let response = app.get("/readyz").await;
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    let expected = match app.db.backend() {
        Backend::Sqlite => "sqlite",
        Backend::Postgres => "postgres",
    };
    assert_eq!(body["database"], expected);
    assert_eq!(body["status"], "ready");
}

async fn an_unknown_route_is_a_404_problem(app: TestApp) {
    let body = assert_problem(
        app.get("/v1/no-such-thing").await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    assert!(body["detail"]
        .as_str()
        .unwrap()
        .contains("/v1/no-such-thing"));
}

async fn a_wrong_method_is_a_405_problem_with_allow(app: TestApp) {
    let response = app.client.delete(app.url("/readyz")).send().await.unwrap();
    assert_eq!(response.headers()["allow"], "GET");
    assert_problem(
        response,
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
    )
    .await;
}

async fn metrics_count_requests_by_route_pattern_and_status(app: TestApp) {
    app.get("/healthz").await;
    app.get("/not/a/route/123").await;
    let response = app.get("/metrics").await;
    assert_eq!(response.status(), StatusCode::OK);
    let text = response.text().await.unwrap();
    assert!(
        text.contains(
            r#"simrenew_http_requests_total{endpoint="/healthz",method="GET",status="200"} 1"#
        ),
        "{text}"
    );
    assert!(
        text.contains(r#"endpoint="UNMATCHED",method="GET",status="404""#),
        "unmatched paths share one label: {text}"
    );
    assert!(text.contains("simrenew_http_requests_duration_seconds_bucket"));
    assert!(!text.contains("/not/a/route/123"));
}

async fn the_reference_and_its_assets_are_served_locally(app: TestApp) {
    let redirect = app.get("/docs").await;
    assert_eq!(redirect.status(), StatusCode::TEMPORARY_REDIRECT);
    let page = app.get("/docs/").await;
    assert_eq!(page.status(), StatusCode::OK);
    let html = page.text().await.unwrap();
    assert!(html.contains("swagger-ui"), "{html}");
    assert!(!html.contains("://cdn"), "no CDN at run time");
    let script = app.get("/docs/swagger-ui-bundle.js").await;
    assert_eq!(script.status(), StatusCode::OK);
    let document = app.get("/openapi.json").await;
    assert_eq!(document.status(), StatusCode::OK);
    let served: Value = document.json().await.unwrap();
    // The committed document, less the sandbox's operations this server does not have
    // (with the sandbox on it is the committed document itself: `openapi::served`).
    let committed: Value = serde_json::from_str(&simrenew::app::document_json()).unwrap();
    let paths = |doc: &Value| -> Vec<String> {
        doc["paths"].as_object().unwrap().keys().cloned().collect()
    };
    let expected: Vec<String> = paths(&committed)
        .into_iter()
        .filter(|p| !p.starts_with("/v1/sandbox/"))
        .collect();
    assert_eq!(paths(&served), expected);
    let text = served.to_string();
    assert!(
        !text.contains("sandbox_payment_"),
        "no link names an absent operation"
    );
    assert_eq!(served["components"], committed["components"]);
}

/// PostgreSQL stops accepting connections: `/readyz` turns 503, then 200 when it returns.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(postgres_tests),
    ignore = "TEST_POSTGRES_URL is not set: the PostgreSQL test did not run"
)]
async fn readiness_follows_the_database_going_away_and_coming_back() {
    let app = TestApp::spawn(Backend::Postgres).await;
    assert_eq!(app.get("/readyz").await.status(), StatusCode::OK);
    let name = app.db.postgres_name().unwrap().to_owned();
    app.db.admin_sql(&format!(
        "ALTER DATABASE {name} ALLOW_CONNECTIONS false; \
         SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}';"
    ));

    let response = app.get("/readyz").await;
    assert_eq!(response.headers()["retry-after"], "5");
    let body = assert_problem(
        response,
        StatusCode::SERVICE_UNAVAILABLE,
        "service_unavailable",
    )
    .await;
    let detail = body["detail"].as_str().unwrap();
    assert!(
        !detail.contains("postgres"),
        "no internals in the body: {detail}"
    );
    assert_eq!(
        app.get("/healthz").await.status(),
        StatusCode::OK,
        "still alive"
    );

    app.db
        .admin_sql(&format!("ALTER DATABASE {name} ALLOW_CONNECTIONS true"));
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let status = app.get("/readyz").await.status();
        if status == StatusCode::OK {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "still {status} after the database returned"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Secrets never reach a log line, and every line of a request carries its request id.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_carry_request_ids_and_never_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let database_url = format!("sqlite://{}", dir.path().join("logs.db").display());
    let root = cli_create_partner(&database_url, "Root", "admin");
    let (client_id, secret) = (root.client_id.as_str(), root.client_secret.as_str());
    let log = dir.path().join("serve.log");
    let server = Process::serve_logging_to(
        &database_url,
        &[("SIMRENEW_LOG", "info"), ("SIMRENEW_LOG_FORMAT", "json")],
        Some(&log),
    )
    .await;
    let client = crate::helpers::http_client();
    let token_url = format!("{}/v1/oauth/token", server.base_url);
    let wrong = client
        .post(&token_url)
        .header("X-Request-Id", "trace-wrong-secret")
        .basic_auth(client_id, Some(format!("{secret}-typo")))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    let access_token = fetch_token(&client, &server.base_url, client_id, secret).await;
    let forged = format!("{}x", &access_token[..access_token.len() - 1]);
    let refused = client
        .get(format!("{}/v1/admin/partners", server.base_url))
        .header("X-Request-Id", "trace-forged-token")
        .bearer_auth(&forged)
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
    drop(server);

    let text = std::fs::read_to_string(&log).unwrap();
    assert!(!text.contains(secret), "a client secret reached the log");
    assert!(
        !text.contains("sr_secret_"),
        "a client secret reached the log"
    );
    assert!(
        !text.contains(&access_token) && !text.contains(&forged),
        "a token reached the log"
    );
    for trace in ["trace-wrong-secret", "trace-forged-token"] {
        let lines: Vec<Value> = text
            .lines()
            .filter_map(|line| serde_json::from_str::<Value>(line).ok())
            .filter(|line| line.to_string().contains(trace))
            .collect();
        assert!(
            lines.len() >= 2,
            "the refusal and the access line of {trace}: {text}"
        );
        for line in &lines {
            assert_eq!(line["span"]["request_id"], trace, "{line}");
        }
    }
}

/// A client-chosen value cannot forge a log line or send terminal escapes: in the text
/// log, control characters in any field are written escaped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_text_cannot_forge_a_text_log_line() {
    let dir = tempfile::tempdir().unwrap();
    let database_url = format!("sqlite://{}", dir.path().join("inject.db").display());
    cli_create_partner(&database_url, "Root", "admin");
    let log = dir.path().join("serve.log");
    let server = Process::serve_logging_to(
        &database_url,
        &[("SIMRENEW_LOG", "info"), ("SIMRENEW_LOG_FORMAT", "text")],
        Some(&log),
    )
    .await;
    let forged = "evil\n2026-11-25T00:00:00Z  INFO simrenew: FORGED admin login ok\u{1b}[31m";
    let refused = crate::helpers::http_client()
        .post(format!("{}/v1/oauth/token", server.base_url))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", forged),
            ("client_secret", "nope"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
    drop(server);
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.contains("client authentication failed"), "{text}");
    assert!(
        !text.contains('\u{1b}'),
        "a terminal escape reached the log"
    );
    for line in text.lines() {
        assert!(
            !line.trim_start().starts_with("2026-11-25T00:00:00Z"),
            "a forged line: {line}"
        );
    }
    assert!(
        text.contains("evil\\n2026-11-25"),
        "the value is kept, escaped: {text}"
    );
}

/// A client that announces a body and never sends it does not hold its connection: the
/// body read deadline answers `408 request_timeout` and closes the connection, for many
/// such clients at once, without authentication.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_body_is_cut_off_at_the_read_deadline() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let dir = tempfile::tempdir().unwrap();
    let database_url = format!("sqlite://{}", dir.path().join("slow.db").display());
    let server = Process::serve(&database_url, &[("SIMRENEW_BODY_READ_TIMEOUT_MS", "500")]).await;
    let address = server.base_url.trim_start_matches("http://").to_owned();
    let started = Instant::now();
    let mut clients = Vec::new();
    for _ in 0..50 {
        let address = address.clone();
        clients.push(tokio::spawn(async move {
            let mut stream = tokio::net::TcpStream::connect(&address).await.unwrap();
            stream
                .write_all(
                    b"POST /v1/oauth/token HTTP/1.1\r\nHost: simrenew\r\n\
                      Content-Type: application/x-www-form-urlencoded\r\n\
                      Content-Length: 60000\r\n\r\ng",
                )
                .await
                .unwrap();
            let mut answer = Vec::new();
            // Reads until the server closes the connection.
            tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut answer))
                .await
                .expect("the connection was closed")
                .unwrap();
            String::from_utf8_lossy(&answer).into_owned()
        }));
    }
    for client in clients {
        let answer = client.await.unwrap();
        assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
        assert!(answer.contains("request_timeout"), "{answer}");
    }
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "cut off near the deadline, not held: {:?}",
        started.elapsed()
    );
}
