//! The `ventana` command line: argument parsing and exit codes only; each
//! command group lives in `ventana::cli`.

/// mimalloc: glibc's allocator was ~18% of a Submit's CPU (many small,
/// short-lived allocations across threads; see docs/PERFORMANCE.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use ventana::cli::{self, CliError};

#[derive(Parser)]
#[command(name = "ventana", version, about = "Compliance-aware contact scheduling")]
struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the gRPC service (SQLite file `ventana.db` in the working directory by default).
    ///
    /// Settings come from flags, then environment variables, then the --config file, then
    /// defaults. TLS: `[tls] cert = "server.pem", key = "server.key"` (and `client_ca =
    /// "ca.pem"` to require client certificates); reloaded on SIGHUP. Without [tls] the
    /// port serves plaintext only on a loopback address, unless `plaintext = true`.
    /// The config file (TOML) may also set `max_message_bytes`, `claim_seconds`
    /// (how long a replica's claim on due intents lasts; default 30), `[audit]`,
    /// `[rate_limits]` and built-in adapters per channel:
    ///
    ///   [adapters.sms]   kind = "log", path = "contacts.jsonl"   (or "-" for stdout)
    ///
    ///   [adapters.email] kind = "webhook", url = "http://127.0.0.1:8080/send",
    ///                    secret_env = "VENTANA_WEBHOOK_SECRET", timeout_ms = 5000, max_attempts = 4
    ///
    /// RUST_LOG sets the log filter (default info); VENTANA_LOG_FORMAT=json logs JSON lines.
    Serve(cli::serve::ServeArgs),
    /// Apply database migrations and exit (`serve` also applies them on start).
    Migrate {
        #[command(flatten)]
        settings: cli::Settings,
    },
    /// Verify, export, replay and purge the audit log.
    Audit {
        #[command(subcommand)]
        command: cli::audit::AuditCommand,
    },
    /// Copy the SQLite database while the service runs (consistent), with its rows per table.
    Backup(cli::backup::BackupArgs),
    /// Manage API keys.
    Keys {
        #[command(subcommand)]
        command: cli::keys::KeysCommand,
    },
    /// Work with jurisdiction files.
    Rules {
        #[command(subcommand)]
        command: cli::rules::RulesCommand,
    },
    /// Evaluate an intent (JSON file, or `-` for stdin) at an instant and print the decision as JSON.
    Explain(cli::explain::ExplainArgs),
}

fn main() -> ExitCode {
    let args = Args::parse();
    let result = match args.command {
        Command::Serve(_)
        | Command::Migrate { .. }
        | Command::Keys { .. }
        | Command::Audit { .. }
        | Command::Backup(_) => match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
            Ok(runtime) => runtime.block_on(async {
                let traces = ventana::telemetry::init_tracing();
                let result = run_service(args.command).await;
                if let Some(provider) = traces
                    && let Err(e) = provider.shutdown()
                {
                    eprintln!("flushing traces failed: {e}");
                }
                result
            }),
            Err(e) => Err(CliError::Runtime(format!("cannot start the runtime: {e}"))),
        },
        Command::Rules { command } => cli::rules::run(command),
        Command::Explain(args) => cli::explain::run(args),
    };
    match result {
        Ok(code) => code,
        Err(CliError::Input(message)) => {
            eprintln!("error: {message}");
            ExitCode::from(2)
        }
        Err(rules @ CliError::Rules(_)) => {
            eprintln!("{rules}");
            ExitCode::from(1)
        }
        Err(CliError::Runtime(message)) => {
            eprintln!("error: {message}");
            ExitCode::from(3)
        }
    }
}

/// The commands that run inside the tokio runtime.
async fn run_service(command: Command) -> Result<ExitCode, CliError> {
    match command {
        Command::Serve(args) => cli::serve::serve(args).await,
        Command::Migrate { settings } => cli::serve::migrate(settings).await,
        Command::Keys { command } => cli::keys::run(command).await,
        Command::Audit { command } => cli::audit::run(command).await,
        Command::Backup(args) => cli::backup::run(args).await,
        Command::Rules { .. } | Command::Explain(_) => Err(cli::input("not a service command")),
    }
}
