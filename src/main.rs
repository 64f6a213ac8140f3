//! The `simrenew` binary: the service and its operator commands.

use std::net::TcpListener;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use simrenew::app::{self, AppState, ServerOptions};
use simrenew::config::{DatabaseArgs, LogArgs, ServeArgs, Settings};

#[derive(Debug, Parser)]
#[command(
    name = "simrenew",
    version,
    about = "Renewal backend for FM cards and eSIMs"
)]
struct Cli {
    #[command(flatten)]
    database: DatabaseArgs,

    #[command(flatten)]
    log: LogArgs,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the HTTP API (applies pending migrations first unless --no-migrate).
    Serve(ServeArgs),
    /// Apply pending database migrations and exit.
    Migrate,
    /// Print the OpenAPI document (the committed copy is `openapi/openapi.json`).
    Openapi,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Err(message) = simrenew::telemetry::init(&cli.log) {
        eprintln!("simrenew: {message}");
        return ExitCode::FAILURE;
    }
    let settings = Settings::from_args(&cli.database);
    let outcome = match cli.command {
        Command::Serve(args) => serve(settings, args),
        Command::Migrate => migrate(&AppState::new(settings)),
        Command::Openapi => {
            print!("{}", simrenew::openapi::document_json());
            Ok(())
        }
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            tracing::error!("{message}");
            eprintln!("simrenew: {message}");
            ExitCode::FAILURE
        }
    }
}

fn migrate(state: &AppState) -> Result<(), String> {
    let database = &state.settings.database_url;
    let applied = state
        .db
        .migrate()
        .map_err(|e| format!("cannot migrate {database}: {e}"))?;
    tracing::info!(%database, applied = applied.len(), "schema up to date");
    Ok(())
}

fn serve(settings: Settings, args: ServeArgs) -> Result<(), String> {
    let state = AppState::new(settings);
    if !args.no_migrate {
        migrate(&state)?;
    }
    let listener = TcpListener::bind(args.bind)
        .map_err(|e| format!("cannot listen on {} (SIMRENEW_BIND): {e}", args.bind))?;
    let options = ServerOptions {
        workers: args.workers.map(usize::from),
        shutdown_timeout_s: args.shutdown_timeout_s,
    };
    tracing::info!(bind = %args.bind, database = %state.settings.database_url, "simrenew serving");
    actix_web::rt::System::new()
        .block_on(async move { app::start(state, listener, options)?.await })
        .map_err(|e| format!("server stopped with an error: {e}"))
}
