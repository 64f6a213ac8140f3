//! The `simrenew` binary: the service and its operator commands.

use std::net::TcpListener;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

use simrenew::app::{self, ServerOptions};
use simrenew::auth::scopes::ScopeSet;
use simrenew::clock::Clock;
use simrenew::config::{
    ActivationArgs, AuthArgs, DatabaseArgs, LogArgs, PaymentArgs, ServeArgs, Settings, SmsArgs,
    WebhookArgs,
};
use simrenew::db::Db;
use simrenew::partners::{self, model::NewPartner};
use simrenew::state::AppState;

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
    auth: AuthArgs,

    #[command(flatten)]
    activation: ActivationArgs,

    #[command(flatten)]
    payments: PaymentArgs,

    #[command(flatten)]
    webhooks: WebhookArgs,

    #[command(flatten)]
    sms: SmsArgs,

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
    /// Manage partners.
    #[command(subcommand)]
    Partner(PartnerCommand),
    /// Manage the plan catalog.
    #[command(subcommand)]
    Plans(PlansCommand),
    /// Manage cards.
    #[command(subcommand)]
    Cards(CardsCommand),
    /// Manage partner wallets.
    #[command(subcommand)]
    Wallet(WalletCommand),
    /// Exit 0 when the URL answers 2xx within 2 s: a container HEALTHCHECK for an image
    /// that has no shell and no curl.
    Healthcheck {
        #[arg(long, default_value = "http://127.0.0.1:8080/healthz")]
        url: String,
    },
}

#[derive(Debug, Subcommand)]
enum WalletCommand {
    /// Credit a partner's wallet (amount in minor units: 10000 CNY is ¥100.00).
    Credit {
        #[arg(long)]
        partner: uuid::Uuid,
        #[arg(long)]
        currency: String,
        #[arg(long)]
        amount: i64,
        /// Your reference for it (a bank transfer id, an invoice).
        #[arg(long)]
        reference: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
enum CardsCommand {
    /// Register cards for a partner from a CSV file with the header
    /// `iccid,card_type,msisdn,eid` (msisdn and eid may be empty). Streamed in batches
    /// of 1,000 rows: a bad row is refused (its line is listed) and the rest go in; a
    /// card the partner already holds is counted, so an interrupted import can be run
    /// again. Exits 1 when any row was refused.
    Import {
        /// The CSV file.
        file: std::path::PathBuf,
        /// The partner that will own the cards.
        #[arg(long)]
        partner: uuid::Uuid,
    },
}

#[derive(Debug, Subcommand)]
enum PlansCommand {
    /// Load or update plans from a JSON file: an array of plans shaped like the body of
    /// `POST /v1/admin/plans`. Idempotent by `code`; all or nothing.
    Import {
        /// The JSON file.
        file: std::path::PathBuf,
    },
}

#[derive(Debug, Subcommand)]
enum PartnerCommand {
    /// Create a partner with its first credential; prints partner_id, client_id and the
    /// client_secret, which is shown this once. A fresh deployment's first admin: --scopes admin.
    Create(PartnerCreateArgs),
}

#[derive(Debug, Args)]
struct PartnerCreateArgs {
    /// The partner's display name.
    #[arg(long)]
    name: String,
    /// Space- or comma-separated scopes, e.g. "admin" or "catalog:read cards:read orders:write".
    #[arg(long)]
    scopes: ScopeSet,
    /// Print one JSON object on stdout and nothing else.
    #[arg(long)]
    json: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Held until `main` returns: dropping it exports the spans still buffered.
    let _traces = match simrenew::telemetry::init(&cli.log) {
        Ok(traces) => traces,
        Err(message) => {
            eprintln!("simrenew: {message}");
            return ExitCode::FAILURE;
        }
    };
    let outcome = Settings::from_args(
        &cli.database,
        &cli.auth,
        &cli.activation,
        &cli.payments,
        &cli.webhooks,
        &cli.sms,
    )
    .and_then(|settings| match cli.command {
        Command::Serve(args) => serve(settings, args),
        Command::Migrate => migrate(&Db::new(&settings.database_url, &settings.pool), &settings),
        Command::Openapi => {
            print!("{}", simrenew::app::document_json());
            Ok(())
        }
        Command::Healthcheck { url } => healthcheck(&url),
        Command::Partner(PartnerCommand::Create(args)) => create_partner(settings, args),
        Command::Plans(PlansCommand::Import { file }) => import_plans(settings, &file),
        Command::Cards(CardsCommand::Import { file, partner }) => {
            import_cards(settings, &file, partner)
        }
        Command::Wallet(WalletCommand::Credit {
            partner,
            currency,
            amount,
            reference,
        }) => credit_wallet(
            settings,
            partner,
            simrenew::wallet::NewCredit {
                currency,
                amount,
                reference,
            },
        ),
    });
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("simrenew: {message}");
            ExitCode::FAILURE
        }
    }
}

fn seed_demo(db: &Db) -> Result<(), String> {
    let seeded = block_on(simrenew::demo::seed_if_empty(db))?
        .map_err(|e| format!("demo seed failed: {}", describe(e)))?;
    match seeded {
        Some(seed) => {
            println!("simrenew demo: seeded a catalog, two cards with a current term each, and CNY 1000.00 in the wallet.");
            println!("  partner   client_id={} client_secret={}", seed.partner.client_id, seed.partner.client_secret);
            println!("  operator  client_id={} client_secret={}", seed.operator.client_id, seed.operator.client_secret);
            println!("  fm_card   {}", simrenew::demo::DEMO_FM_ICCID);
            println!("  esim_card {}", simrenew::demo::DEMO_ESIM_ICCID);
            println!("The secrets are shown only now.");
        }
        None => println!(
            "simrenew demo: the database already has partners; demo credentials were printed when it was seeded \
             (make more with `simrenew partner create`)."
        ),
    }
    Ok(())
}

fn migrate(db: &Db, settings: &Settings) -> Result<(), String> {
    let database = &settings.database_url;
    let applied = db
        .migrate()
        .map_err(|e| format!("cannot migrate {database}: {e}"))?;
    tracing::info!(%database, applied = applied.len(), "schema up to date");
    Ok(())
}

/// Keeps glibc's allocator from holding memory the server no longer uses:
/// - two malloc arenas: by default it makes one per thread that allocates while another
///   holds an arena (up to eight per core); the database work runs on many blocking
///   threads, and every arena keeps its own free memory resident;
/// - a fixed 1 MiB mmap threshold: by default, freeing a large block raises the
///   threshold to its size, so the next such block (argon2's 19 MiB per client secret
///   checked) comes from an arena and stays resident after it is freed.
fn tune_malloc() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator settings; called once at start, before
    // any other thread exists.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
        libc::mallopt(libc::M_MMAP_THRESHOLD, 1 << 20);
    }
}

fn serve(mut settings: Settings, args: ServeArgs) -> Result<(), String> {
    tune_malloc();
    if args.demo && settings.payments.routes.is_empty() {
        // The demo pays externally through the sandbox unless told otherwise.
        settings.payments.sandbox_everywhere();
    }
    if args.demo {
        // A demo's webhook receiver runs on the same machine.
        settings.webhooks.allow_private_targets = true;
        if settings.sms.routes.is_empty() {
            // Codes a demo sends are read back at GET /v1/sandbox/sms.
            settings.sms.sandbox_everywhere();
        }
    }
    let db = Db::new(&settings.database_url, &settings.pool);
    if !args.no_migrate {
        migrate(&db, &settings)?;
    }
    if args.demo {
        if args.no_migrate {
            migrate(&db, &settings)?;
        }
        seed_demo(&db)?;
    }
    let state = AppState::load(settings, db, Clock::system())?;
    let listener = TcpListener::bind(args.bind)
        .map_err(|e| format!("cannot listen on {} (SIMRENEW_BIND): {e}", args.bind))?;
    let options = ServerOptions {
        workers: args.workers.map(usize::from),
        shutdown_timeout_s: args.shutdown_timeout_s,
        header_read_timeout: std::time::Duration::from_millis(args.header_read_timeout_ms),
        body_read_timeout: std::time::Duration::from_millis(args.body_read_timeout_ms),
        keep_alive: std::time::Duration::from_secs(args.keep_alive_s),
    };
    tracing::info!(bind = %args.bind, database = %state.settings.database_url, "simrenew serving");
    actix_web::rt::System::new()
        .block_on(async move { app::start(state, listener, options)?.await })
        .map_err(|e| format!("server stopped with an error: {e}"))
}

/// Opens the database for an operator command, bringing the schema up to date first.
fn operator_db(settings: &Settings) -> Result<Db, String> {
    let db = Db::new(&settings.database_url, &settings.pool);
    migrate(&db, settings)?;
    Ok(db)
}

/// Runs an operator command's async work to completion on a small runtime.
fn block_on<F: std::future::Future>(work: F) -> Result<F::Output, String> {
    tokio::runtime::Runtime::new()
        .map(|runtime| runtime.block_on(work))
        .map_err(|e| format!("cannot start: {e}"))
}

/// Turns a validation failure into one line per field, for the terminal.
fn describe(err: simrenew::error::ApiError) -> String {
    match err {
        simrenew::error::ApiError::Problem { detail, errors, .. } if !errors.is_empty() => {
            let lines: Vec<String> = errors
                .iter()
                .map(|e| format!("  {}: {}", e.field, e.message))
                .collect();
            format!("{detail}\n{}", lines.join("\n"))
        }
        other => other.to_string(),
    }
}

fn import_plans(settings: Settings, file: &std::path::Path) -> Result<(), String> {
    let text = std::fs::read_to_string(file)
        .map_err(|e| format!("cannot read {}: {e}", file.display()))?;
    let plans: Vec<simrenew::catalog::model::NewPlan> = serde_json::from_str(&text)
        .map_err(|e| format!("{} is not a JSON array of plans: {e}", file.display()))?;
    let db = operator_db(&settings)?;
    let summary = block_on(simrenew::catalog::import_plans(&db, plans))?
        .map_err(|e| format!("nothing imported: {}", describe(e)))?;
    println!(
        "{}",
        serde_json::to_string(&summary).map_err(|e| e.to_string())?
    );
    Ok(())
}

fn import_cards(
    settings: Settings,
    file: &std::path::Path,
    partner: uuid::Uuid,
) -> Result<(), String> {
    use simrenew::cards::import::{import_csv, ImportObserver, Refusal, Tally};
    use simrenew::operations::progress::Progress;
    use simrenew::telemetry::escape_controls;

    /// Refused rows as lines above the progress bar; the bar follows the bytes read.
    struct Shown(Progress);
    impl ImportObserver for Shown {
        fn refused(&mut self, refusal: &Refusal) {
            let reason = escape_controls(&refusal.reason);
            self.0
                .note(&format!("line {}: refused: {reason}", refusal.line));
        }
        fn progressed(&mut self, tally: &Tally) {
            self.0.update(tally.bytes, tally.rows);
        }
    }

    let opened = std::fs::File::open(file)
        .and_then(|f| Ok((f.metadata()?.len(), f)))
        .map_err(|e| format!("cannot read {}: {e}", file.display()));
    let (size, reader) = opened?;
    let db = operator_db(&settings)?;
    let mut shown = Shown(Progress::new("cards import", size));
    let reader = std::io::BufReader::with_capacity(1 << 16, reader);
    let tally = block_on(import_csv(&db, partner, reader, &mut shown))?
        .map_err(|e| format!("import stopped: {}", describe(e)))?;
    shown.0.finish(tally.rows);
    println!(
        "{}",
        serde_json::to_string(&tally).map_err(|e| e.to_string())?
    );
    if tally.refused > 0 {
        return Err(format!(
            "{} rows refused (listed above by line); the others were imported",
            tally.refused
        ));
    }
    Ok(())
}

fn healthcheck(url: &str) -> Result<(), String> {
    let client = simrenew::http::outbound::client_builder()
        .timeout(std::time::Duration::from_secs(2))
        .build()
        .map_err(|e| e.to_string())?;
    // Inside the runtime: the request's timeout timer needs its reactor.
    let status = block_on(async { client.get(url).send().await })?
        .map_err(|e| format!("{url}: {e}"))?
        .status();
    if status.is_success() {
        Ok(())
    } else {
        Err(format!("{url} answered {status}"))
    }
}

fn credit_wallet(
    settings: Settings,
    partner: uuid::Uuid,
    credit: simrenew::wallet::NewCredit,
) -> Result<(), String> {
    let db = operator_db(&settings)?;
    let entry = block_on(simrenew::wallet::credit(
        &db,
        partner,
        credit,
        Clock::system().now_db(),
    ))?
    .map_err(|e| format!("nothing credited: {}", describe(e)))?;
    println!(
        "{}",
        serde_json::to_string(&entry).map_err(|e| e.to_string())?
    );
    Ok(())
}

fn create_partner(settings: Settings, args: PartnerCreateArgs) -> Result<(), String> {
    let db = operator_db(&settings)?;
    let input = NewPartner {
        name: args.name,
        scopes: args.scopes.to_vec(),
    };
    let created = block_on(partners::create_partner(&db, input))?
        .map_err(|e| format!("cannot create the partner: {}", describe(e)))?;
    if args.json {
        let line = serde_json::to_string(&created).map_err(|e| e.to_string())?;
        println!("{line}");
    } else {
        println!("partner_id:    {}", created.partner_id);
        println!("client_id:     {}", created.client_id);
        println!("client_secret: {}", created.client_secret);
        println!(
            "scopes:        {}",
            created
                .scopes
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(" ")
        );
        println!("The secret is shown only now; store it safely.");
    }
    Ok(())
}
