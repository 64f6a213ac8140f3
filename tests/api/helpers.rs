//! Test harness: every test gets its own server on a random port and its own database
//! (a fresh SQLite file, or a fresh PostgreSQL database created and dropped here), and
//! the fixtures more than one capability's tests set up.

use std::net::TcpListener;

use diesel::connection::SimpleConnection;
use diesel::{Connection, PgConnection};
use reqwest::{Client, Response, StatusCode};
use serde_json::{json, Value};

use simrenew::app::{self, ServerOptions};
use simrenew::auth::scopes::Scope;
use simrenew::clock::Clock;
use simrenew::config::Settings;
use simrenew::db::{DatabaseUrl, Db};
use simrenew::partners::{self, model::NewPartner};
use simrenew::state::AppState;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Runs each listed scenario once per backend, as the tests `sqlite::name` and
/// `postgres::name`:
///
/// - `on_both_backends!(a, b);` — `async fn a(app: TestApp)`, on a server with the
///   default settings;
/// - `on_both_backends!(backend: a, b);` — `async fn a(backend: Backend)`, for scenarios
///   that start their own server(s) (other settings, a fake provider first, …) with
///   `TestApp::spawn_configured(backend, …)`.
///
/// The PostgreSQL half is `#[ignore]`d, with the reason, unless the build saw
/// `TEST_POSTGRES_URL` or `CI` (cfg `postgres_tests`, set by build.rs); when it runs, a
/// missing or unreachable server fails it: it never passes without having run.
macro_rules! on_both_backends {
    (@modules [$($scenario:ident),+] |$backend:ident| $argument:expr) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $scenario() {
                    let $backend = $crate::helpers::Backend::Sqlite;
                    super::$scenario($argument).await;
                }
            )+
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                #[cfg_attr(
                    not(postgres_tests),
                    ignore = "TEST_POSTGRES_URL is not set: the PostgreSQL half did not run"
                )]
                async fn $scenario() {
                    let $backend = $crate::helpers::Backend::Postgres;
                    super::$scenario($argument).await;
                }
            )+
        }
    };
    (backend: $($scenario:ident),+ $(,)?) => {
        on_both_backends!(@modules [$($scenario),+] |backend| backend);
    };
    ($($scenario:ident),+ $(,)?) => {
        on_both_backends!(
            @modules [$($scenario),+] |backend| $crate::helpers::TestApp::spawn(backend).await
        );
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

/// The PostgreSQL server to create test databases on. A test that asks for one and cannot
/// have it fails: PostgreSQL tests are `#[ignore]`d (with the reason) when the build saw
/// neither `TEST_POSTGRES_URL` nor `CI`, and never pass without having run.
pub fn postgres_admin_url() -> String {
    match std::env::var("TEST_POSTGRES_URL") {
        Ok(url) if !url.trim().is_empty() => url,
        _ if std::env::var_os("CI").is_some() => {
            panic!("CI is set but TEST_POSTGRES_URL is not: the PostgreSQL suites must run in CI")
        }
        _ => panic!(
            "TEST_POSTGRES_URL is not set: this PostgreSQL test cannot run \
             (set it to a server the tests may create databases on)"
        ),
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
    /// A fresh database; for PostgreSQL, panics when no server is configured or reachable.
    pub fn create(backend: Backend) -> Self {
        match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir().expect("temp dir");
                let raw_url = format!("sqlite://{}", dir.path().join("simrenew.db").display());
                Self {
                    url: raw_url.parse().expect("sqlite url"),
                    raw_url,
                    backend,
                    _dir: Some(dir),
                    postgres_admin: None,
                }
            }
            Backend::Postgres => {
                let admin_url = postgres_admin_url();
                let name = format!("simrenew_test_{}", uuid::Uuid::new_v4().simple());
                let mut admin = PgConnection::establish(&admin_url)
                    .unwrap_or_else(|e| panic!("cannot reach TEST_POSTGRES_URL: {e}"));
                admin
                    .batch_execute(&format!("CREATE DATABASE {name}"))
                    .expect("create test database");
                let raw_url = with_database_name(&admin_url, &name);
                Self {
                    url: raw_url.parse().expect("postgres url"),
                    raw_url,
                    backend,
                    _dir: None,
                    postgres_admin: Some((admin_url, name)),
                }
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

/// One running service and a client pointed at it. The server stops when the test's
/// runtime ends (actix-server stops its acceptor and workers when its future is dropped).
pub struct TestApp {
    pub base_url: String,
    pub client: Client,
    /// The test's database; shared with any second instance started on it.
    pub db: std::sync::Arc<TestDatabase>,
    /// The service's own handle on it, for setting up state through library calls.
    pub store: Db,
    /// The service's clock: a test moves it forward instead of sleeping.
    pub clock: Clock,
    /// The service's payment providers, for running its sweeps from a test.
    pub payments: std::sync::Arc<simrenew::payments::Payments>,
    /// The service's catalog cache (its catalog version among it).
    pub catalog: std::sync::Arc<simrenew::catalog::CatalogCache>,
}

/// A partner set up to buy (see `TestApp::stocked_partner`).
pub struct Stocked {
    pub partner: TestPartner,
    pub token: String,
    /// An operator's token.
    pub admin: String,
}

/// A partner created for a test, with its one credential.
#[derive(Debug, Clone)]
pub struct TestPartner {
    pub id: String,
    pub client_id: String,
    pub client_secret: String,
}

impl TestApp {
    /// A server with the default settings on a fresh database of `backend`.
    pub async fn spawn(backend: Backend) -> Self {
        Self::spawn_configured(backend, |_| {}).await
    }

    /// A server on a fresh database with settings adjusted by `configure`. Panics when
    /// the backend is not available (see `postgres_admin_url`).
    pub async fn spawn_configured(backend: Backend, configure: impl FnOnce(&mut Settings)) -> Self {
        let db = tokio::task::spawn_blocking(move || TestDatabase::create(backend))
            .await
            .expect("create database");
        let mut settings = Settings::for_database(db.url.clone());
        configure(&mut settings);
        Self::spawn_on(std::sync::Arc::new(db), settings).await
    }

    /// Another instance on the same database (as a second process would be).
    pub async fn spawn_sibling(&self, settings: Settings) -> Self {
        Self::spawn_on(self.db.clone(), settings).await
    }

    pub fn settings(&self) -> Settings {
        Settings::for_database(self.db.url.clone())
    }

    pub async fn spawn_on(db: std::sync::Arc<TestDatabase>, settings: Settings) -> Self {
        Self::spawn_with_clock(db, settings, Clock::system()).await
    }

    async fn spawn_with_clock(
        db: std::sync::Arc<TestDatabase>,
        settings: Settings,
        clock: Clock,
    ) -> Self {
        let state = tokio::task::spawn_blocking(move || {
            let store = Db::new(&settings.database_url, &settings.pool);
            store.migrate().expect("migrations apply");
            AppState::load(settings, store, clock).expect("state loads")
        })
        .await
        .expect("start-up task");
        let store = state.db.clone();
        let clock = state.clock.clone();
        let payments = state.payments.clone();
        let catalog = state.catalog.clone();
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let options = ServerOptions {
            workers: Some(2),
            shutdown_timeout_s: 1,
            ..ServerOptions::default()
        };
        let server = app::start(state, listener, options).expect("start server");
        tokio::spawn(server);
        Self {
            base_url: format!("http://127.0.0.1:{port}"),
            // Idle connections are dropped well before the server's 5 s keep-alive
            // closes them, so a loaded machine never sends on a connection being closed
            // (hyper's `IncompleteMessage`).
            client: http_client_builder()
                .redirect(reqwest::redirect::Policy::none())
                .pool_idle_timeout(std::time::Duration::from_secs(2))
                .build()
                .expect("client"),
            db,
            store,
            clock,
            payments,
            catalog,
        }
    }

    /// Runs raw SQL on the service's database, for states no API can reach (a value a
    /// newer version wrote, a counter at its limit, a change made by hand).
    pub fn sql(&self, sql: &str) {
        self.store
            .run_blocking(|conn| {
                diesel::connection::SimpleConnection::batch_execute(conn, sql)
                    .map_err(simrenew::db::DbError::from)
            })
            .expect("raw SQL");
    }

    /// Creates a partner directly (as `simrenew partner create` does), with subscriber
    /// verification off: tests of other capabilities read eSIM codes straight away
    /// (tests of verification turn it on, and check that it is on by default).
    pub async fn create_partner(&self, name: &str, scopes: &[Scope]) -> TestPartner {
        let created = partners::create_partner(
            &self.store,
            NewPartner {
                name: name.to_owned(),
                scopes: scopes.to_vec(),
            },
        )
        .await
        .expect("create partner");
        self.sql(&format!(
            "UPDATE partners SET verify_subscriber_before_release = false WHERE id = '{}'",
            created.partner_id
        ));
        TestPartner {
            id: created.partner_id.to_string(),
            client_id: created.client_id,
            client_secret: created.client_secret,
        }
    }

    /// Fetches an access token the way a client does (form body).
    pub async fn token_for(&self, partner: &TestPartner) -> String {
        let response = self
            .client
            .post(self.url("/v1/oauth/token"))
            .form(&[
                ("grant_type", "client_credentials"),
                ("client_id", &partner.client_id),
                ("client_secret", &partner.client_secret),
            ])
            .send()
            .await
            .expect("token request");
        assert_eq!(
            response.status(),
            StatusCode::OK,
            "token for {}",
            partner.client_id
        );
        let body: Value = response.json().await.expect("token body");
        body["access_token"]
            .as_str()
            .expect("access_token")
            .to_owned()
    }

    /// An admin partner's token.
    pub async fn admin_token(&self) -> String {
        let admin = self.create_partner("Operator", &[Scope::Admin]).await;
        self.token_for(&admin).await
    }

    /// A token of a new partner with the network scope (usage, activation outcomes).
    pub async fn network_token(&self) -> String {
        let network = self.create_partner("Network", &[Scope::Network]).await;
        self.token_for(&network).await
    }

    /// A partner with every partner scope, and its token.
    pub async fn partner_with_token(&self, name: &str) -> (TestPartner, String) {
        let partner = self
            .create_partner(
                name,
                &[
                    Scope::CatalogRead,
                    Scope::CardsRead,
                    Scope::OrdersRead,
                    Scope::OrdersWrite,
                    Scope::WalletRead,
                ],
            )
            .await;
        let token = self.token_for(&partner).await;
        (partner, token)
    }

    /// Imports the demo catalog (`src/catalog/demo_plans.json`) through the library, and
    /// has this instance read the new catalog version at once (as the writer does; an
    /// import by another process reaches it within the staleness bound).
    pub async fn import_demo_plans(&self) {
        simrenew::catalog::import_plans(&self.store, simrenew::catalog::demo_plans().unwrap())
            .await
            .unwrap();
        self.catalog.version.refresh(&self.store).await.unwrap();
    }

    /// `POST /v1/admin/cards`: imports `cards` (a JSON array) for `partner_id`.
    pub async fn import_cards(&self, admin: &str, partner_id: &str, cards: Value) -> Response {
        self.post_json(
            "/v1/admin/cards",
            admin,
            &json!({"partner_id": partner_id, "cards": cards}),
        )
        .await
    }

    /// Credits a partner's wallet through the admin API (no Idempotency-Key); asserts 201
    /// and returns the ledger entry.
    pub async fn credit_wallet(
        &self,
        admin: &str,
        partner_id: &str,
        currency: &str,
        amount: i64,
        reference: Option<&str>,
    ) -> Value {
        let mut body = json!({"currency": currency, "amount": amount});
        if let Some(reference) = reference {
            body["reference"] = json!(reference);
        }
        let credited = self
            .post_json(
                &format!("/v1/admin/partners/{partner_id}/wallet/credits"),
                admin,
                &body,
            )
            .await;
        assert_eq!(credited.status(), StatusCode::CREATED, "wallet credit");
        credited.json().await.expect("credit body")
    }

    /// A partner with `scopes`, holding `cards` (a JSON array, imported by an operator)
    /// and `fen` CNY minor units in its wallet; with its token and an operator's.
    pub async fn stocked_partner(
        &self,
        name: &str,
        scopes: &[Scope],
        cards: Value,
        fen: i64,
    ) -> Stocked {
        let admin = self.admin_token().await;
        let partner = self.create_partner(name, scopes).await;
        let token = self.token_for(&partner).await;
        let imported = self.import_cards(&admin, &partner.id, cards).await;
        assert_eq!(imported.status(), StatusCode::CREATED, "card import");
        self.credit_wallet(&admin, &partner.id, "CNY", fen, None)
            .await;
        Stocked {
            partner,
            token,
            admin,
        }
    }

    /// Buys `plan_id` for `iccid` from the CNY wallet with a fresh Idempotency-Key;
    /// asserts 201 and returns the order.
    pub async fn wallet_order(&self, token: &str, iccid: &str, plan_id: &str) -> Value {
        let response = self
            .client
            .post(self.url("/v1/orders"))
            .bearer_auth(token)
            .header("Idempotency-Key", uuid::Uuid::now_v7().to_string())
            .json(&json!({"iccid": iccid, "plan_id": plan_id, "currency": "CNY", "payment_method": "wallet"}))
            .send()
            .await
            .expect("order request");
        assert_eq!(response.status(), StatusCode::CREATED, "wallet order");
        response.json().await.expect("order body")
    }

    pub async fn get_with(&self, path: &str, token: &str) -> Response {
        self.client
            .get(self.url(path))
            .bearer_auth(token)
            .send()
            .await
            .expect("request")
    }

    pub async fn post_json(&self, path: &str, token: &str, body: &Value) -> Response {
        self.client
            .post(self.url(path))
            .bearer_auth(token)
            .json(body)
            .send()
            .await
            .expect("request")
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
}

/// The id of a catalog plan by its code (the demo catalog must have been imported).
pub async fn plan_id(store: &Db, code: &'static str) -> String {
    store
        .run(move |conn| {
            simrenew::catalog::store::find_by_code(conn, code)
                .map_err(simrenew::error::ApiError::from)
        })
        .await
        .expect("plan lookup")
        .unwrap_or_else(|| panic!("no plan {code}"))
        .id
}

/// Fetches an access token from the service at `base_url` the way a partner's own client
/// does by hand: client credentials in HTTP Basic, `grant_type` in a form body. Works for
/// any server (a `TestApp`, a `Process`, the demo); asserts 200.
pub async fn fetch_token(
    client: &Client,
    base_url: &str,
    client_id: &str,
    client_secret: &str,
) -> String {
    let response = client
        .post(format!("{base_url}/v1/oauth/token"))
        .basic_auth(client_id, Some(client_secret))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .expect("token request");
    assert_eq!(response.status(), StatusCode::OK, "token for {client_id}");
    let body: Value = response.json().await.expect("token body");
    body["access_token"]
        .as_str()
        .expect("access_token")
        .to_owned()
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

/// The `field` of each entry of a problem's `errors`, in order.
pub fn problem_fields(problem: &Value) -> Vec<&str> {
    problem["errors"]
        .as_array()
        .expect("errors")
        .iter()
        .map(|e| e["field"].as_str().expect("field"))
        .collect()
}

/// A `simrenew serve` process of the built binary, killed when dropped.
pub struct Process {
    pub base_url: String,
    child: std::process::Child,
}

impl Process {
    /// Starts `simrenew serve` on a free port and waits until `/readyz` answers 200.
    pub async fn serve(database_url: &str, extra_env: &[(&str, &str)]) -> Self {
        Self::serve_logging_to(database_url, extra_env, None).await
    }

    /// Like `serve`, with the process's log (stderr) written to `log`.
    pub async fn serve_logging_to(
        database_url: &str,
        extra_env: &[(&str, &str)],
        log: Option<&std::path::Path>,
    ) -> Self {
        let stderr = match log {
            Some(path) => std::process::Stdio::from(std::fs::File::create(path).expect("log file")),
            None => std::process::Stdio::inherit(),
        };
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let child = std::process::Command::new(env!("CARGO_BIN_EXE_simrenew"))
            .args([
                "serve",
                "--bind",
                &format!("127.0.0.1:{port}"),
                "--workers",
                "2",
            ])
            .env("DATABASE_URL", database_url)
            .env("SIMRENEW_LOG", "warn")
            .envs(extra_env.iter().copied())
            .stdout(std::process::Stdio::null())
            .stderr(stderr)
            .spawn()
            .expect("spawn simrenew serve");
        let process = Self {
            base_url: format!("http://127.0.0.1:{port}"),
            child,
        };
        let client = http_client();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            let ready = client
                .get(format!("{}/readyz", process.base_url))
                .send()
                .await
                .map(|r| r.status() == StatusCode::OK)
                .unwrap_or(false);
            if ready {
                return process;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "simrenew serve did not become ready"
            );
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs a `simrenew` command to completion; returns its stdout, panicking on failure.
pub fn cli(database_url: &str, args: &[&str]) -> String {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_simrenew"))
        .args(args)
        .env("DATABASE_URL", database_url)
        .output()
        .expect("run simrenew");
    assert!(
        output.status.success(),
        "simrenew {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("utf-8 stdout")
}

/// A client for the tests. The service's reqwest is built without a built-in TLS
/// provider (it installs `ring` itself), and the tests share that build: install it here.
pub fn http_client() -> Client {
    http_client_builder().build().expect("an HTTP client")
}

pub fn http_client_builder() -> reqwest::ClientBuilder {
    simrenew::http::outbound::install_tls_provider();
    Client::builder()
}

/// Runs a `simrenew` command to completion, whatever its exit status.
pub fn cli_output(database_url: &str, args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_simrenew"))
        .args(args)
        .env("DATABASE_URL", database_url)
        .env("SIMRENEW_LOG", "warn")
        .output()
        .expect("run simrenew")
}

/// `simrenew partner create --json` against `database_url`, as an operator creates the
/// first partners: the partner and its credential.
pub fn cli_create_partner(database_url: &str, name: &str, scopes: &str) -> TestPartner {
    let output = cli(
        database_url,
        &[
            "partner", "create", "--name", name, "--scopes", scopes, "--json",
        ],
    );
    let created: Value =
        serde_json::from_str(output.trim()).expect("--json prints one JSON object");
    let field = |key: &str| {
        created[key]
            .as_str()
            .unwrap_or_else(|| panic!("no {key} in {created}"))
            .to_owned()
    };
    TestPartner {
        id: field("partner_id"),
        client_id: field("client_id"),
        client_secret: field("client_secret"),
    }
}

/// A valid 20-digit ICCID numbered `n` (Luhn digit appended), distinct per `n` and `prefix`.
pub fn iccid(prefix: u32, n: u64) -> String {
    let body = format!("8986{prefix:03}{n:012}");
    (0..10)
        .map(|d| format!("{body}{d}"))
        .find(|candidate| simrenew::domain::identifiers::luhn_valid(candidate))
        .expect("one digit makes it valid")
}

/// The value of the one sample of `/metrics` named exactly `series` (labels included).
pub fn metric_sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .map(|value| value.parse().expect("a number"))
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
