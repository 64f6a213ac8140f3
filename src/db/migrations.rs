//! Schema migrations, embedded in the binary: one folder per backend telling the same story.

use diesel::connection::SimpleConnection;
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};

use super::{Db, DbConnection, DbError};

const POSTGRES: EmbeddedMigrations = embed_migrations!("migrations/postgres");
const SQLITE: EmbeddedMigrations = embed_migrations!("migrations/sqlite");

/// Any key will do as long as every instance uses the same one.
const MIGRATION_LOCK_KEY: i64 = 0x5349_4d52_454e_4557; // "SIMRENEW"

#[derive(Debug, thiserror::Error)]
pub enum MigrationError {
    #[error(transparent)]
    Connect(#[from] DbError),
    #[error("migration failed: {0}")]
    Apply(String),
}

impl Db {
    /// Brings the schema up to date; returns the versions applied now.
    pub fn migrate(&self) -> Result<Vec<String>, MigrationError> {
        let mut conn = self.pool.get().map_err(DbError::from)?;
        run_pending_migrations(&mut conn)
    }
}

/// Applies every migration not yet applied; returns the versions it applied.
///
/// On PostgreSQL an advisory lock makes instances that start together take turns.
pub fn run_pending_migrations(conn: &mut DbConnection) -> Result<Vec<String>, MigrationError> {
    let applied = match conn {
        DbConnection::Postgres(pg) => {
            pg.batch_execute(&format!("SELECT pg_advisory_lock({MIGRATION_LOCK_KEY})"))
                .map_err(|e| MigrationError::Apply(e.to_string()))?;
            let result = pg.run_pending_migrations(POSTGRES).map(versions);
            let unlock =
                pg.batch_execute(&format!("SELECT pg_advisory_unlock({MIGRATION_LOCK_KEY})"));
            let applied = result.map_err(|e| MigrationError::Apply(e.to_string()))?;
            unlock.map_err(|e| MigrationError::Apply(e.to_string()))?;
            applied
        }
        DbConnection::Sqlite(sqlite) => sqlite
            .run_pending_migrations(SQLITE)
            .map(versions)
            .map_err(|e| MigrationError::Apply(e.to_string()))?,
    };
    Ok(applied)
}

fn versions(list: Vec<diesel::migration::MigrationVersion<'_>>) -> Vec<String> {
    list.into_iter().map(|v| v.to_string()).collect()
}
