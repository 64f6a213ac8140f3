//! Settings, read once from flags or the environment and validated before anything starts.
//! A bad value stops the process with one line naming the setting (clap does the naming).

use std::net::SocketAddr;
use std::time::Duration;

use clap::{Args, ValueEnum};

use crate::db::{DatabaseUrl, PoolOptions};

/// Where the data lives; shared by every subcommand.
#[derive(Debug, Clone, Args)]
pub struct DatabaseArgs {
    /// `postgres://…` / `postgresql://…` for PostgreSQL; `sqlite://PATH`, a plain path or `:memory:` for SQLite.
    #[arg(
        long,
        env = "DATABASE_URL",
        default_value = "sqlite://simrenew.db",
        global = true
    )]
    pub database_url: DatabaseUrl,

    /// Largest number of pooled database connections per process.
    #[arg(long, env = "SIMRENEW_DB_POOL_SIZE", default_value_t = 10,
          value_parser = clap::value_parser!(u32).range(1..=500), global = true)]
    pub db_pool_size: u32,

    /// How long a request waits for a database connection before failing with 503, in milliseconds.
    #[arg(long, env = "SIMRENEW_DB_TIMEOUT_MS", default_value_t = 3000,
          value_parser = clap::value_parser!(u64).range(100..=60_000), global = true)]
    pub db_timeout_ms: u64,
}

impl DatabaseArgs {
    pub fn pool_options(&self) -> PoolOptions {
        PoolOptions {
            max_connections: self.db_pool_size,
            acquire_timeout: Duration::from_millis(self.db_timeout_ms),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line, for log shippers.
    Json,
}

#[derive(Debug, Clone, Args)]
pub struct LogArgs {
    /// Log line format.
    #[arg(long, env = "SIMRENEW_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text, global = true)]
    pub log_format: LogFormat,

    /// Log filter in `tracing` syntax, e.g. `info` or `simrenew=debug,actix_web=info`.
    #[arg(long, env = "SIMRENEW_LOG", default_value = "info", global = true)]
    pub log_filter: String,
}

/// Options of `simrenew serve`.
#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Address and port to listen on.
    #[arg(long, env = "SIMRENEW_BIND", default_value = "127.0.0.1:8080")]
    pub bind: SocketAddr,

    /// Do not apply pending migrations at start (run `simrenew migrate` separately).
    #[arg(long)]
    pub no_migrate: bool,

    /// HTTP worker threads (default: one per CPU core).
    #[arg(long, env = "SIMRENEW_WORKERS", value_parser = clap::value_parser!(u16).range(1..=256))]
    pub workers: Option<u16>,

    /// Seconds given to in-flight requests to finish after SIGTERM/SIGINT.
    #[arg(long, env = "SIMRENEW_SHUTDOWN_TIMEOUT_S", default_value_t = 10)]
    pub shutdown_timeout_s: u64,
}

/// Everything the running service needs, independent of how it was gathered.
#[derive(Debug, Clone)]
pub struct Settings {
    pub database_url: DatabaseUrl,
    pub pool: PoolOptions,
}

impl Settings {
    pub fn from_args(database: &DatabaseArgs) -> Self {
        Self {
            database_url: database.database_url.clone(),
            pool: database.pool_options(),
        }
    }

    /// Defaults for the given database: what tests and benchmarks start from.
    pub fn for_database(database_url: DatabaseUrl) -> Self {
        Self {
            database_url,
            pool: PoolOptions {
                max_connections: 10,
                acquire_timeout: Duration::from_secs(3),
            },
        }
    }
}
