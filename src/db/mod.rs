//! The database layer: one code base for SQLite (embedded, the default) and
//! PostgreSQL (production). The backend is chosen from the URL scheme, never by
//! trying each driver in turn, so a PostgreSQL outage reports itself as such.

pub mod changes;
pub mod fixed_sql;
mod migrations;
pub mod schema;
mod stored;

use std::fmt;
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use diesel::connection::{Instrumentation, InstrumentationEvent, SimpleConnection};
use diesel::r2d2::{self, ManageConnection, R2D2Connection};
use diesel::{Connection, PgConnection, SqliteConnection};

use crate::business_metrics::{self as business, BusinessMetrics};
use changes::ChangeCounters;

pub use migrations::{run_pending_migrations, MigrationError};
pub(crate) use stored::{stored_enum, text_mapping};
pub use stored::{stored_uuid, UnknownValue};

/// A connection to either backend. Queries written once with diesel's DSL run on both.
#[derive(diesel::MultiConnection)]
pub enum DbConnection {
    Postgres(PgConnection),
    Sqlite(SqliteConnection),
}

/// Which database engine a URL points at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Postgres,
    Sqlite,
}

/// A validated `DATABASE_URL`.
#[derive(Clone, PartialEq, Eq)]
pub struct DatabaseUrl {
    backend: Backend,
    /// What the driver receives: the full URL for PostgreSQL, a file path for SQLite.
    target: String,
}

impl DatabaseUrl {
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// `true` for an in-memory SQLite database, which lives only as long as its one connection.
    pub fn is_in_memory(&self) -> bool {
        self.backend == Backend::Sqlite && self.target == ":memory:"
    }

    /// The string handed to the driver (contains the password for PostgreSQL: never log it).
    pub fn driver_target(&self) -> &str {
        &self.target
    }
}

impl FromStr for DatabaseUrl {
    type Err = String;

    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        let raw = raw.trim();
        if raw.is_empty() {
            return Err("must not be empty".into());
        }
        if raw.starts_with("postgres://") || raw.starts_with("postgresql://") {
            return Ok(Self {
                backend: Backend::Postgres,
                target: raw.to_owned(),
            });
        }
        let path = raw
            .strip_prefix("sqlite://")
            .or_else(|| raw.strip_prefix("sqlite:"))
            .unwrap_or(raw);
        if path.is_empty() {
            return Err("sqlite URL has no file path".into());
        }
        if path.contains("://") {
            return Err(format!(
                "unsupported scheme in `{}`: use postgres://, postgresql://, sqlite:// or a file path",
                redact(raw)
            ));
        }
        Ok(Self {
            backend: Backend::Sqlite,
            target: path.to_owned(),
        })
    }
}

/// libpq settings for a session that mostly waits (see [`Db::dedicated_postgres`]).
const LISTENER_TCP_SETTINGS: &[(&str, &str)] = &[
    ("keepalives", "1"),
    ("keepalives_idle", "5"),
    ("keepalives_interval", "2"),
    ("keepalives_count", "2"),
    ("tcp_user_timeout", "5000"),
];

/// `url` with each of `parameters` its query does not set already.
fn with_missing_parameters(url: &str, parameters: &[(&str, &str)]) -> String {
    let set: Vec<&str> = url
        .split_once('?')
        .map(|(_, query)| {
            query
                .split('&')
                .filter_map(|p| p.split('=').next())
                .collect()
        })
        .unwrap_or_default();
    let mut url = url.to_owned();
    for (key, value) in parameters {
        if !set.iter().any(|k| k.eq_ignore_ascii_case(key)) {
            url.push(if url.contains('?') { '&' } else { '?' });
            url.push_str(&format!("{key}={value}"));
        }
    }
    url
}

/// Shows a database URL with its password replaced, safe for logs and error messages:
/// in the user info (`user:***@`) and in a `password=` query parameter.
fn redact(url: &str) -> String {
    match url.split_once('?') {
        Some((base, query)) => {
            let query: Vec<String> = query
                .split('&')
                .map(|pair| match pair.split_once('=') {
                    Some((key, _)) if key.eq_ignore_ascii_case("password") => format!("{key}=***"),
                    _ => pair.to_owned(),
                })
                .collect();
            format!("{}?{}", redact_userinfo(base), query.join("&"))
        }
        None => redact_userinfo(url),
    }
}

fn redact_userinfo(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            let userinfo = &url[scheme_end + 3..at];
            match userinfo.split_once(':') {
                Some((user, _password)) => {
                    format!("{}{}:***{}", &url[..scheme_end + 3], user, &url[at..])
                }
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

impl fmt::Display for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.backend {
            Backend::Postgres => f.write_str(&redact(&self.target)),
            Backend::Sqlite => write!(f, "sqlite://{}", self.target),
        }
    }
}

impl fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// r2d2 manager that opens the backend named by the URL and prepares each new connection.
#[derive(Debug)]
pub struct ConnectionManager {
    url: DatabaseUrl,
    sqlite_busy_timeout: Duration,
    reachability: Arc<Reachability>,
}

/// Whether the last connection attempt failed: the pool logs one line when the database
/// becomes unreachable and one when it is back, not one per attempt (r2d2's default
/// logs every failed attempt, over several lines).
#[derive(Debug, Default)]
struct Reachability {
    down: std::sync::atomic::AtomicBool,
}

impl Reachability {
    /// A connection attempt failed; `true` when this is news (and was logged).
    fn failed(&self, error: &dyn fmt::Display) -> bool {
        let news = !self.down.swap(true, std::sync::atomic::Ordering::Relaxed);
        if news {
            let first_line = error.to_string();
            let first_line = first_line.lines().next().unwrap_or_default();
            tracing::error!(error = %first_line, "the database is unreachable");
        }
        news
    }

    /// A connection was opened; `true` when the database had been unreachable.
    fn connected(&self) -> bool {
        let news = self.down.swap(false, std::sync::atomic::Ordering::Relaxed);
        if news {
            tracing::info!("the database is reachable again");
        }
        news
    }
}

impl r2d2::HandleError<r2d2::Error> for ReachabilityLog {
    fn handle_error(&self, error: r2d2::Error) {
        let _ = self.0.failed(&error);
    }
}

/// The pool's error handler: reports to [`Reachability`].
#[derive(Debug)]
struct ReachabilityLog(Arc<Reachability>);

impl ManageConnection for ConnectionManager {
    type Connection = DbConnection;
    type Error = r2d2::Error;

    fn connect(&self) -> Result<DbConnection, r2d2::Error> {
        let connected = self.open();
        if connected.is_ok() {
            let _ = self.reachability.connected();
        }
        connected
    }

    /// Called on every checkout: a round trip only for a PostgreSQL connection that has
    /// been idle for [`PING_WHEN_IDLE_FOR`] (the server may have restarted or a
    /// firewall dropped it meanwhile). A connection in steady use is not pinged: one
    /// that failed is marked lost by [`ConnectionWatch`] and never handed out again.
    fn is_valid(&self, conn: &mut DbConnection) -> Result<(), r2d2::Error> {
        let idle_for = ConnectionWatch::of(conn).map(|watch| watch.last_used.elapsed());
        match conn {
            DbConnection::Postgres(_) if idle_for.is_none_or(|idle| idle >= PING_WHEN_IDLE_FOR) => {
                conn.batch_execute("SELECT 1")
                    .map_err(r2d2::Error::QueryError)
            }
            _ => Ok(()),
        }
    }

    fn has_broken(&self, conn: &mut DbConnection) -> bool {
        let lost = ConnectionWatch::of(conn).is_some_and(|watch| watch.lost);
        lost || match conn {
            DbConnection::Postgres(c) => c.is_broken(),
            DbConnection::Sqlite(c) => c.is_broken(),
        }
    }
}

/// How long a pooled PostgreSQL connection may sit unused before a checkout checks it
/// with `SELECT 1` first. Under load connections are reused far more often than this,
/// so the hot paths pay no extra round trip.
pub const PING_WHEN_IDLE_FOR: Duration = Duration::from_secs(2);

/// Watches one connection's queries (diesel's instrumentation hook): when it was last
/// used, and whether a query found it closed or could not be sent, so the pool drops
/// it instead of handing it out again.
struct ConnectionWatch {
    last_used: std::time::Instant,
    lost: bool,
}

impl ConnectionWatch {
    fn new() -> Self {
        Self {
            last_used: std::time::Instant::now(),
            lost: false,
        }
    }

    fn of(conn: &mut DbConnection) -> Option<&mut Self> {
        conn.instrumentation().downcast_mut::<Self>()
    }
}

impl Instrumentation for ConnectionWatch {
    fn on_connection_event(&mut self, event: InstrumentationEvent<'_>) {
        use diesel::result::{DatabaseErrorKind, Error};
        if let InstrumentationEvent::FinishQuery { error, .. } = event {
            self.last_used = std::time::Instant::now();
            if let Some(Error::DatabaseError(
                DatabaseErrorKind::ClosedConnection | DatabaseErrorKind::UnableToSendCommand,
                _,
            )) = error
            {
                self.lost = true;
            }
        }
    }
}

impl ConnectionManager {
    fn open(&self) -> Result<DbConnection, r2d2::Error> {
        match self.url.backend {
            Backend::Postgres => {
                let mut conn = PgConnection::establish(&self.url.target)
                    .map_err(r2d2::Error::ConnectionError)?;
                conn.set_instrumentation(ConnectionWatch::new());
                Ok(DbConnection::Postgres(conn))
            }
            Backend::Sqlite => {
                let mut conn = SqliteConnection::establish(&self.url.target)
                    .map_err(r2d2::Error::ConnectionError)?;
                conn.set_instrumentation(ConnectionWatch::new());
                // Per-connection settings: SQLite forgets them when a connection closes.
                conn.batch_execute(&format!(
                    "PRAGMA journal_mode = WAL; PRAGMA foreign_keys = ON; \
                     PRAGMA busy_timeout = {}; PRAGMA synchronous = NORMAL;",
                    self.sqlite_busy_timeout.as_millis()
                ))
                .map_err(r2d2::Error::QueryError)?;
                Ok(DbConnection::Sqlite(conn))
            }
        }
    }
}

pub type Pool = r2d2::Pool<ConnectionManager>;
pub type PooledConnection = r2d2::PooledConnection<ConnectionManager>;

/// Pool sizing and timeouts.
#[derive(Debug, Clone)]
pub struct PoolOptions {
    pub max_connections: u32,
    pub acquire_timeout: Duration,
}

/// Why a database call failed, before it becomes an API error.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("no database connection available: {0}")]
    Unavailable(#[from] r2d2::PoolError),
    #[error("database query failed: {0}")]
    Query(#[from] diesel::result::Error),
    #[error("cannot connect to the database: {0}")]
    Connect(#[from] diesel::ConnectionError),
    #[error("database task was cancelled")]
    Cancelled,
}

/// A write refused by a unique index or primary key.
pub fn is_unique_violation(e: &diesel::result::Error) -> bool {
    matches!(
        e,
        diesel::result::Error::DatabaseError(diesel::result::DatabaseErrorKind::UniqueViolation, _)
    )
}

/// The handle every capability uses to reach the database. Cheap to clone.
///
/// Diesel is blocking, so every call runs on tokio's blocking pool, never on an async worker.
#[derive(Clone)]
pub struct Db {
    pool: Pool,
    backend: Backend,
    url: DatabaseUrl,
    /// SQLite allows one writer; taking this lock before a write transaction keeps
    /// concurrent requests in this process from failing with SQLITE_BUSY when two
    /// deferred transactions both try to upgrade to a write lock.
    sqlite_writer: Arc<Mutex<()>>,
    /// Counts what committed calls wrote (see `business_metrics`) and pool waits.
    metrics: Arc<BusinessMetrics>,
    /// Which keys changed, for the caches of rows (see `changes`).
    changes: Arc<ChangeCounters>,
}

/// Pool waits and timeouts, into the business metrics.
#[derive(Debug)]
struct PoolEvents(Arc<BusinessMetrics>);

impl r2d2::HandleEvent for PoolEvents {
    fn handle_checkout(&self, event: r2d2::event::CheckoutEvent) {
        self.0.pool_waited(event.duration());
    }

    fn handle_timeout(&self, _event: r2d2::event::TimeoutEvent) {
        self.0.pool_timed_out();
    }
}

/// Settles what an earlier call on this thread left (it panicked, perhaps after its
/// commit): its facts are dropped, its keys' counters moved (a read more at worst).
fn start_call(changes: &ChangeCounters) {
    business::take_uncommitted();
    move_written(changes);
}

/// Moves the counters of the keys the call on this thread named.
fn move_written(changes: &ChangeCounters) {
    for key in changes::take_written() {
        changes.changed(&key);
    }
}

/// When a call ends: hands the facts it wrote to the counters if it committed (`Ok`),
/// dropping them if it rolled back; moves the counters of the keys it wrote either way
/// (a copy read again for nothing costs a read, a stale one would be wrong).
fn settle_call<T, E>(metrics: &BusinessMetrics, changes: &ChangeCounters, result: &Result<T, E>) {
    let facts = business::take_uncommitted();
    if result.is_ok() {
        metrics.count_all(facts);
    }
    move_written(changes);
}

impl fmt::Debug for Db {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Db")
            .field("backend", &self.backend)
            .finish()
    }
}

impl Db {
    /// Builds the pool without connecting: the first use reports an unreachable database.
    pub fn new(url: &DatabaseUrl, options: &PoolOptions) -> Self {
        let reachability = Arc::new(Reachability::default());
        let metrics = Arc::new(BusinessMetrics::new());
        let manager = ConnectionManager {
            url: url.clone(),
            sqlite_busy_timeout: Duration::from_secs(5),
            reachability: reachability.clone(),
        };
        let mut builder = r2d2::Pool::builder()
            .max_size(options.max_connections.max(1))
            .min_idle(Some(0))
            .connection_timeout(options.acquire_timeout)
            .error_handler(Box::new(ReachabilityLog(reachability)))
            .event_handler(Box::new(PoolEvents(metrics.clone())));
        if url.is_in_memory() {
            // Every in-memory connection is its own database: keep exactly one, forever.
            builder = builder
                .max_size(1)
                .min_idle(Some(1))
                .idle_timeout(None)
                .max_lifetime(None);
        }
        Self {
            pool: builder.build_unchecked(manager),
            backend: url.backend(),
            url: url.clone(),
            sqlite_writer: Arc::new(Mutex::new(())),
            metrics,
            changes: Arc::new(ChangeCounters::default()),
        }
    }

    pub fn metrics(&self) -> &BusinessMetrics {
        &self.metrics
    }

    pub fn changes(&self) -> &ChangeCounters {
        &self.changes
    }

    /// Pooled connections: (all open, idle).
    pub fn pool_state(&self) -> (u32, u32) {
        let state = self.pool.state();
        (state.connections, state.idle_connections)
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// A connection of its own, outside the pool, for a PostgreSQL `LISTEN` (which
    /// must stay on one session); `None` on SQLite. A peer that vanished without closing
    /// the connection is noticed within seconds (TCP keepalives and a send timeout),
    /// not after the system's TCP timeout.
    pub fn dedicated_postgres(&self) -> Option<Result<PgConnection, DbError>> {
        (self.backend == Backend::Postgres).then(|| {
            let url = with_missing_parameters(self.url.driver_target(), LISTENER_TCP_SETTINGS);
            PgConnection::establish(&url).map_err(DbError::from)
        })
    }

    /// Runs `work` with a pooled connection on the blocking thread pool.
    pub async fn run<T, E, F>(&self, work: F) -> Result<T, E>
    where
        F: FnOnce(&mut DbConnection) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: From<DbError> + Send + 'static,
    {
        let pool = self.pool.clone();
        let metrics = self.metrics.clone();
        let changes = self.changes.clone();
        tokio::task::spawn_blocking(move || {
            let mut conn = pool.get().map_err(DbError::from)?;
            start_call(&changes);
            let result = work(&mut conn);
            settle_call(&metrics, &changes, &result);
            result
        })
        .await
        .map_err(|_| E::from(DbError::Cancelled))?
    }

    /// Runs `work` inside one write transaction: all of it commits, or none of it.
    pub async fn transaction<T, E, F>(&self, work: F) -> Result<T, E>
    where
        F: FnOnce(&mut DbConnection) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: From<DbError> + From<diesel::result::Error> + Send + 'static,
    {
        let writer = self.sqlite_writer.clone();
        self.run(move |conn| match conn {
            DbConnection::Postgres(_) => conn.transaction(work),
            DbConnection::Sqlite(_) => {
                let _one_writer_here = writer.lock().unwrap_or_else(|p| p.into_inner());
                sqlite_write_transaction(conn, work)
            }
        })
        .await
    }

    /// Runs `work` with a connection on the current thread (CLI commands, start-up).
    pub fn run_blocking<T, E, F>(&self, work: F) -> Result<T, E>
    where
        F: FnOnce(&mut DbConnection) -> Result<T, E>,
        E: From<DbError>,
    {
        let mut conn = self.pool.get().map_err(DbError::from)?;
        start_call(&self.changes);
        let result = work(&mut conn);
        settle_call(&self.metrics, &self.changes, &result);
        result
    }

    /// `Ok` when a connection can be had and the database takes a (one-row) write: a
    /// full disk or a read-only database is not ready.
    pub async fn ping(&self, now: chrono::NaiveDateTime) -> Result<(), DbError> {
        use diesel::prelude::*;
        use schema::readiness_probe;
        self.transaction(move |conn| {
            let updated = diesel::update(readiness_probe::table.find(1))
                .set(readiness_probe::checked_at.eq(now))
                .execute(conn)?;
            if updated == 0 {
                diesel::insert_into(readiness_probe::table)
                    .values((
                        readiness_probe::id.eq(1),
                        readiness_probe::checked_at.eq(now),
                    ))
                    .execute(conn)?;
            }
            Ok::<_, DbError>(())
        })
        .await
    }
}

/// `BEGIN IMMEDIATE`: the write lock is taken at the start, so a second process waits
/// (busy_timeout) instead of failing when its read snapshot turns out stale at its first
/// write, as a deferred `BEGIN` would. Begun on the inner connection's transaction
/// manager, which the MultiConnection's manager delegates to, so commit and rollback
/// below (and any nested savepoint inside `work`) stay consistent with it.
fn sqlite_write_transaction<T, E, F>(conn: &mut DbConnection, work: F) -> Result<T, E>
where
    F: FnOnce(&mut DbConnection) -> Result<T, E>,
    E: From<diesel::result::Error>,
{
    use diesel::connection::{AnsiTransactionManager, TransactionManager};
    type Manager = <DbConnection as Connection>::TransactionManager;
    if let DbConnection::Sqlite(inner) = conn {
        AnsiTransactionManager::begin_transaction_sql(inner, "BEGIN IMMEDIATE")?;
    }
    match work(conn) {
        Ok(value) => match Manager::commit_transaction(conn) {
            Ok(()) => Ok(value),
            Err(e) => {
                let _ = Manager::rollback_transaction(conn);
                Err(e.into())
            }
        },
        Err(e) => {
            Manager::rollback_transaction(conn)?;
            Err(e)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listener_settings_are_added_unless_the_url_sets_them() {
        assert_eq!(
            with_missing_parameters("postgres://h/db", &[("a", "1")]),
            "postgres://h/db?a=1"
        );
        assert_eq!(
            with_missing_parameters(
                "postgres://h/db?sslmode=disable&A=9",
                &[("a", "1"), ("b", "2")]
            ),
            "postgres://h/db?sslmode=disable&A=9&b=2"
        );
    }

    #[test]
    fn an_outage_is_logged_once_and_its_end_once() {
        let reachability = Reachability::default();
        assert!(
            !reachability.connected(),
            "up from the start: nothing to say"
        );
        let refused = "connection refused\n\tIs the server running on that host?";
        assert!(reachability.failed(&refused), "the first failure is news");
        for _ in 0..50 {
            assert!(!reachability.failed(&refused), "the next ones are not");
        }
        assert!(reachability.connected(), "back: news");
        assert!(!reachability.connected());
        assert!(reachability.failed(&refused), "a new outage is news again");
    }

    #[test]
    fn postgres_schemes_select_postgres() {
        for url in [
            "postgres://u@h/db",
            "postgresql://u:p@h:5432/db?sslmode=disable",
        ] {
            assert_eq!(
                url.parse::<DatabaseUrl>().unwrap().backend(),
                Backend::Postgres
            );
        }
    }

    #[test]
    fn sqlite_forms_select_sqlite_and_strip_the_scheme() {
        let cases = [
            ("sqlite://simrenew.db", "simrenew.db"),
            ("sqlite:///var/lib/simrenew.db", "/var/lib/simrenew.db"),
            ("data/simrenew.db", "data/simrenew.db"),
            (":memory:", ":memory:"),
            ("sqlite://:memory:", ":memory:"),
        ];
        for (raw, target) in cases {
            let url: DatabaseUrl = raw.parse().unwrap();
            assert_eq!(url.backend(), Backend::Sqlite, "{raw}");
            assert_eq!(url.driver_target(), target, "{raw}");
        }
        assert!(":memory:".parse::<DatabaseUrl>().unwrap().is_in_memory());
    }

    #[test]
    fn unknown_schemes_and_empty_urls_are_refused() {
        assert!("mysql://root@localhost/db".parse::<DatabaseUrl>().is_err());
        assert!("".parse::<DatabaseUrl>().is_err());
        assert!("sqlite://".parse::<DatabaseUrl>().is_err());
    }

    #[test]
    fn display_never_shows_the_password() {
        let url: DatabaseUrl = "postgres://app:s3cret@db:5432/simrenew".parse().unwrap();
        assert_eq!(url.to_string(), "postgres://app:***@db:5432/simrenew");
        assert!(!format!("{url:?}").contains("s3cret"));
        let err = "mysql://app:s3cret@db/x"
            .parse::<DatabaseUrl>()
            .unwrap_err();
        assert!(!err.contains("s3cret"));
        let query: DatabaseUrl = "postgres://app@db/simrenew?sslmode=require&password=s3cret"
            .parse()
            .unwrap();
        assert_eq!(
            query.to_string(),
            "postgres://app@db/simrenew?sslmode=require&password=***"
        );
    }
}
