//! The catalog's version, held in memory so that a catalog read needs no database round
//! trip to know whether its cached page (and ETag) is current.
//!
//! Every catalog change bumps the stored version in its transaction. This process
//! learns of a change:
//! - at once when it made the change itself (the writer refreshes after its commit);
//! - within [`NOTIFICATION_POLL`] on PostgreSQL, from a `NOTIFY` sent by the writer's
//!   transaction (delivered on commit, to every instance `LISTEN`ing);
//! - within [`SAFETY_READ_EVERY`] in any case, from a periodic read of the stored version
//!   (SQLite, where other processes cannot notify, and a PostgreSQL listener that is
//!   reconnecting).
//!
//! A request never uses a version older than [`STALENESS_BOUND`]: when the watcher has
//! not refreshed it for that long (the database was away, or no watcher runs), the
//! request reads the version itself.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use diesel::PgConnection;

use super::store;
use crate::db::{Backend, Db};
use crate::error::ApiError;

/// The longest a catalog change takes to reach every instance's answers.
pub const STALENESS_BOUND: Duration = Duration::from_secs(1);
/// How often the watcher reads the stored version whatever it heard.
pub const SAFETY_READ_EVERY: Duration = Duration::from_millis(400);
/// How often the watcher looks for notifications already received (no round trip).
pub const NOTIFICATION_POLL: Duration = Duration::from_millis(50);
/// The PostgreSQL channel catalog changes are announced on; the payload is the version.
pub const CHANNEL: &str = "simrenew_catalog";

const UNKNOWN: i64 = -1;

/// The newest catalog version this process knows of, and when it last checked.
#[derive(Debug)]
pub struct CatalogVersion {
    value: AtomicI64,
    /// Milliseconds after `origin` of the last check (a read or a notification).
    checked_at_ms: AtomicU64,
    origin: Instant,
}

impl Default for CatalogVersion {
    fn default() -> Self {
        Self {
            value: AtomicI64::new(UNKNOWN),
            checked_at_ms: AtomicU64::new(0),
            origin: Instant::now(),
        }
    }
}

impl CatalogVersion {
    fn now_ms(&self) -> u64 {
        u64::try_from(self.origin.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// The known version, if it was checked within the staleness bound.
    fn fresh(&self) -> Option<i64> {
        let value = self.value.load(Ordering::Acquire);
        let age = self
            .now_ms()
            .saturating_sub(self.checked_at_ms.load(Ordering::Acquire));
        let bound = u64::try_from(STALENESS_BOUND.as_millis()).unwrap_or(u64::MAX);
        (value != UNKNOWN && age < bound).then_some(value)
    }

    /// Records a version read or heard now. Versions only grow, so a read that started
    /// before a newer one was heard does not move it back.
    pub fn observe(&self, version: i64) {
        self.value.fetch_max(version, Ordering::AcqRel);
        self.checked_at_ms.store(self.now_ms(), Ordering::Release);
    }

    /// The current version: from memory when checked within the bound, else read now.
    pub async fn current(&self, db: &Db) -> Result<i64, ApiError> {
        match self.fresh() {
            Some(version) => Ok(version),
            None => self.refresh(db).await,
        }
    }

    /// Reads the stored version and records it.
    pub async fn refresh(&self, db: &Db) -> Result<i64, ApiError> {
        let version = db
            .run(|conn| store::catalog_version(conn).map_err(ApiError::from))
            .await?;
        self.observe(version);
        Ok(version)
    }
}

/// Keeps `version` current for as long as the runtime runs: notifications on
/// PostgreSQL, and a read every [`SAFETY_READ_EVERY`] on both backends.
pub fn spawn_watcher(db: Db, version: Arc<CatalogVersion>) {
    tokio::spawn(async move {
        let mut listener: Option<PgConnection> = None;
        let mut next_read = Instant::now();
        let mut next_listen_attempt = Instant::now();
        loop {
            let now = Instant::now();
            let can_listen = db.backend() == Backend::Postgres;
            if can_listen && (listener.is_some() || now >= next_listen_attempt) {
                let db = db.clone();
                let (kept, heard) =
                    tokio::task::spawn_blocking(move || listen_step(&db, listener.take()))
                        .await
                        .unwrap_or((None, None));
                if kept.is_none() {
                    next_listen_attempt = now + SAFETY_READ_EVERY;
                }
                listener = kept;
                if let Some(heard) = heard {
                    version.observe(heard);
                }
            }
            if now >= next_read {
                if let Err(e) = version.refresh(&db).await {
                    tracing::debug!(error = %e, "catalog version not read; will retry");
                }
                next_read = Instant::now() + SAFETY_READ_EVERY;
            }
            tokio::time::sleep(NOTIFICATION_POLL).await;
        }
    });
}

/// One look at the listening connection (opened and `LISTEN`ing first if there is none):
/// the newest version announced since the last look. The connection comes back unless it
/// failed; on SQLite there is none.
fn listen_step(db: &Db, listener: Option<PgConnection>) -> (Option<PgConnection>, Option<i64>) {
    use diesel::RunQueryDsl;
    let mut conn = match listener {
        Some(conn) => conn,
        None => match db.dedicated_postgres() {
            Some(Ok(mut conn)) => {
                let listening = diesel::sql_query(format!("LISTEN {CHANNEL}")).execute(&mut conn);
                if let Err(e) = listening {
                    tracing::debug!(error = %e, "cannot listen for catalog changes; will retry");
                    return (None, None);
                }
                conn
            }
            Some(Err(e)) => {
                tracing::debug!(error = %e, "cannot listen for catalog changes; will retry");
                return (None, None);
            }
            None => return (None, None),
        },
    };
    let mut newest = None;
    for heard in conn.notifications_iter() {
        match heard {
            Ok(notification) => {
                if let Ok(version) = notification.payload.parse::<i64>() {
                    newest = newest.max(Some(version));
                }
            }
            // The connection is gone: reopened at the next attempt.
            Err(_) => return (None, newest),
        }
    }
    (Some(conn), newest)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_version_is_used_only_while_fresh_and_never_goes_back() {
        let version = CatalogVersion::default();
        assert_eq!(version.fresh(), None, "unknown at first");
        version.observe(7);
        assert_eq!(version.fresh(), Some(7));
        version.observe(5);
        assert_eq!(
            version.fresh(),
            Some(7),
            "an older read does not move it back"
        );
        version.checked_at_ms.store(0, Ordering::Release);
        let later = CatalogVersion {
            origin: Instant::now() - STALENESS_BOUND,
            ..CatalogVersion::default()
        };
        later.value.store(9, Ordering::Release);
        assert_eq!(later.fresh(), None, "checked a bound ago: read again");
    }
}
