//! Test harness: every test gets its own server on a random port and its own database
//! (a fresh SQLite file, or a fresh PostgreSQL database created and dropped here).
#![allow(dead_code)] // each test binary uses its own part of the harness

use std::net::TcpListener;

use diesel::connection::SimpleConnection;
use diesel::{Connection, PgConnection};
use reqwest::{Client, Response, StatusCode};
use serde_json::Value;

use simrenew::app::{self, AppState, ServerOptions};
use simrenew::config::Settings;
use simrenew::db::DatabaseUrl;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Runs each listed scenario `async fn name(app: TestApp)` once per backend:
/// `sqlite::name` always, `postgres::name` when `TEST_POSTGRES_URL` is set.
#[macro_export]
macro_rules! on_both_backends {
    ($($scenario:ident),+ $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $scenario() {
                    let app = $crate::common::TestApp::spawn($crate::common::Backend::Sqlite).await;
                    super::$scenario(app).await;
                }
            )+
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $scenario() {
                    if let Some(app) = $crate::common::TestApp::spawn_if_available($crate::common::Backend::Postgres).await {
                        super::$scenario(app).await;
                    }
                }
            )+
        }
    };
}

/// A database that exists for one test only.
pub struct TestDatabase {
    pub url: DatabaseUrl,
    pub raw_url: String,
    backend: Backend,
    /// Keeps the SQLite file's directory alive; removed on drop.
    _dir: Option<tempfile::TempDir>,
    /// PostgreSQL: the server URL to drop the database through, and its name.
    postgres_admin: Option<(String, String)>,
}

/// The PostgreSQL server to create test databases on, if the run has one.
/// With `CI` set, a missing server is a failure, not a skip.
pub fn postgres_admin_url() -> Option<String> {
    match std::env::var("TEST_POSTGRES_URL") {
        Ok(url) if !url.trim().is_empty() => Some(url),
        _ if std::env::var_os("CI").is_some() => {
            panic!("CI is set but TEST_POSTGRES_URL is not: the PostgreSQL suites must run in CI")
        }
        _ => None,
    }
}

/// `postgres://host/anything?opts` with the database name replaced.
fn with_database_name(server_url: &str, name: &str) -> String {
    let (base, query) = match server_url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (server_url, None),
    };
    let scheme_end = base.find("://").map(|i| i + 3).unwrap_or(0);
    let authority_end = base[scheme_end..]
        .find('/')
        .map(|i| scheme_end + i)
        .unwrap_or(base.len());
    let mut url = format!("{}/{name}", &base[..authority_end]);
    if let Some(query) = query {
        url.push('?');
        url.push_str(query);
    }
    url
}

impl TestDatabase {
    pub fn create(backend: Backend) -> Option<Self> {
        match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir().expect("temp dir");
                let raw_url = format!("sqlite://{}", dir.path().join("simrenew.db").display());
                Some(Self {
                    url: raw_url.parse().expect("sqlite url"),
                    raw_url,
                    backend,
                    _dir: Some(dir),
                    postgres_admin: None,
                })
            }
            Backend::Postgres => {
                let admin_url = postgres_admin_url()?;
                let name = format!("simrenew_test_{}", uuid::Uuid::new_v4().simple());
                let mut admin = PgConnection::establish(&admin_url)
                    .unwrap_or_else(|e| panic!("cannot reach TEST_POSTGRES_URL: {e}"));
                admin
                    .batch_execute(&format!("CREATE DATABASE {name}"))
                    .expect("create test database");
                let raw_url = with_database_name(&admin_url, &name);
                Some(Self {
                    url: raw_url.parse().expect("postgres url"),
                    raw_url,
                    backend,
                    _dir: None,
                    postgres_admin: Some((admin_url, name)),
                })
            }
        }
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Runs SQL as the server's superuser against the server (not this database).
    pub fn admin_sql(&self, sql: &str) {
        let (admin_url, _) = self.postgres_admin.as_ref().expect("PostgreSQL only");
        PgConnection::establish(admin_url)
            .expect("admin connection")
            .batch_execute(sql)
            .expect("admin sql");
    }

    pub fn postgres_name(&self) -> Option<&str> {
        self.postgres_admin.as_ref().map(|(_, name)| name.as_str())
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        if let Some((admin_url, name)) = &self.postgres_admin {
            if let Ok(mut admin) = PgConnection::establish(admin_url) {
                let _ =
                    admin.batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"));
            }
        }
    }
}

/// One running service and a client pointed at it.
pub struct TestApp {
    pub base_url: String,
    pub client: Client,
    pub db: TestDatabase,
    server: actix_web::dev::ServerHandle,
}

impl TestApp {
    pub async fn spawn(backend: Backend) -> Self {
        Self::spawn_if_available(backend)
            .await
            .expect("backend not configured")
    }

    pub async fn spawn_if_available(backend: Backend) -> Option<Self> {
        let db = tokio::task::spawn_blocking(move || TestDatabase::create(backend))
            .await
            .expect("create database")?;
        let settings = Settings::for_database(db.url.clone());
        Some(Self::spawn_on(db, settings).await)
    }

    pub async fn spawn_on(db: TestDatabase, settings: Settings) -> Self {
        let state = AppState::new(settings);
        let migrated = {
            let db = state.db.clone();
            tokio::task::spawn_blocking(move || db.migrate()).await
        };
        migrated.expect("migrate task").expect("migrations apply");
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let options = ServerOptions {
            workers: Some(2),
            shutdown_timeout_s: 1,
        };
        let server = app::start(state, listener, options).expect("start server");
        let handle = server.handle();
        tokio::spawn(server);
        Self {
            base_url: format!("http://127.0.0.1:{port}"),
            client: Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .expect("client"),
            db,
            server: handle,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url)
    }

    pub async fn get(&self, path: &str) -> Response {
        self.client
            .get(self.url(path))
            .send()
            .await
            .expect("request")
    }

    pub async fn stop(&self) {
        self.server.stop(true).await;
    }
}

/// Asserts an RFC 9457 problem with the given status and code; returns the body.
pub async fn assert_problem(response: Response, status: StatusCode, code: &str) -> Value {
    assert_eq!(response.status(), status, "unexpected status");
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert_eq!(content_type, "application/problem+json");
    assert!(response.headers().contains_key("x-request-id"));
    let body: Value = response.json().await.expect("problem body is JSON");
    assert_eq!(body["status"], status.as_u16(), "{body}");
    assert_eq!(body["code"], code, "{body}");
    assert_eq!(
        body["type"],
        format!("https://simrenew.dev/problems/{code}"),
        "{body}"
    );
    assert!(
        body["title"].is_string() && body["detail"].is_string(),
        "{body}"
    );
    body
}

#[cfg(test)]
mod tests {
    use super::with_database_name;

    #[test]
    fn replaces_only_the_database_name() {
        assert_eq!(
            with_database_name("postgres://postgres@127.0.0.1:5432/postgres", "t1"),
            "postgres://postgres@127.0.0.1:5432/t1"
        );
        assert_eq!(
            with_database_name("postgres://u:p@h/db?sslmode=disable", "t2"),
            "postgres://u:p@h/t2?sslmode=disable"
        );
        assert_eq!(with_database_name("postgres://h", "t3"), "postgres://h/t3");
    }
}
