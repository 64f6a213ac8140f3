//! A PostgreSQL session of its own, outside the pool, `LISTEN`ing on one channel: what
//! other instances' transactions announce with `NOTIFY` (delivered when they commit).
//! Watchers look at it every few tens of milliseconds from a blocking thread.

use diesel::connection::SimpleConnection;
use diesel::{PgConnection, RunQueryDsl};

use super::{Backend, Db, DbError};

pub struct Listener {
    db: Db,
    channel: &'static str,
    session: Option<PgConnection>,
}

/// What one look found.
#[derive(Debug, Default)]
pub struct Heard {
    /// The session was opened by this look: what was announced before it is unknown.
    pub opened: bool,
    /// The announcements' payloads, oldest first.
    pub payloads: Vec<String>,
}

impl Listener {
    /// A listener on `channel`; `None` on SQLite, which has no notifications.
    pub fn new(db: &Db, channel: &'static str) -> Option<Self> {
        (db.backend() == Backend::Postgres).then(|| Self {
            db: db.clone(),
            channel,
            session: None,
        })
    }

    /// One look (blocking): opens the session and `LISTEN`s first if there is none. With
    /// `confirm` it makes one round trip first: PostgreSQL hands a session every
    /// announcement it has before it answers, so everything committed before the look
    /// began is then among `payloads`. An error means the session could not be opened or
    /// was lost; the next look opens a new one.
    pub fn look(&mut self, confirm: bool) -> Result<Heard, DbError> {
        let opened = self.session.is_none();
        let mut session = match self.session.take() {
            Some(session) => session,
            None => {
                let mut session = self.db.dedicated_postgres().ok_or_else(|| {
                    DbError::Connect(diesel::ConnectionError::BadConnection(
                        "notifications need PostgreSQL".into(),
                    ))
                })??;
                // A channel name is an identifier (never user input).
                diesel::sql_query(format!("LISTEN {}", self.channel)).execute(&mut session)?;
                session
            }
        };
        if confirm && !opened {
            session.batch_execute("SELECT 1")?;
        }
        let mut payloads = Vec::new();
        for heard in session.notifications_iter() {
            payloads.push(heard?.payload);
        }
        self.session = Some(session);
        Ok(Heard { opened, payloads })
    }

    /// [`Listener::look`] on the blocking pool. The listener comes back unless its task
    /// was lost (then make a new one).
    pub async fn look_in_background(
        mut self,
        confirm: bool,
    ) -> (Option<Self>, Result<Heard, DbError>) {
        let looked = tokio::task::spawn_blocking(move || {
            let heard = self.look(confirm);
            (self, heard)
        })
        .await;
        match looked {
            Ok((listener, heard)) => (Some(listener), heard),
            Err(_) => (None, Err(DbError::Cancelled)),
        }
    }
}
