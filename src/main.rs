//! The `ventana` command line. Argument parsing and exit codes only; the
//! work is done in `ventana::cli`.

use std::io::{self, BufReader, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use chrono::NaiveDate;
use clap::{Parser, Subcommand, ValueEnum};
use ventana::api::auth::{self, Role};
use ventana::cli::{self, CliError};
use ventana::clock::Clock;
use ventana::config::{Config, Overrides};
use ventana::domain::Channel;
use ventana::rules::compile::parse_instant;
use ventana::server;
use ventana::store::Store;

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
    /// defaults. The config file (TOML) may also set `max_message_bytes` and built-in
    /// adapters per channel:
    ///
    ///   [adapters.sms]   kind = "log", path = "contacts.jsonl"   (or "-" for stdout)
    ///
    ///   [adapters.email] kind = "webhook", url = "http://127.0.0.1:8080/send",
    ///                    secret_env = "VENTANA_WEBHOOK_SECRET", timeout_ms = 5000, max_attempts = 4
    ///
    /// RUST_LOG sets the log filter (default info); VENTANA_LOG_FORMAT=json logs JSON lines.
    Serve {
        #[command(flatten)]
        settings: Settings,
        /// Create and print an API key with every role for tenant `dev` (local trials only).
        #[arg(long)]
        dev: bool,
    },
    /// Apply database migrations and exit (`serve` also applies them on start).
    Migrate {
        #[command(flatten)]
        settings: Settings,
    },
    /// Manage API keys.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// Work with jurisdiction files.
    Rules {
        #[command(subcommand)]
        command: RulesCommand,
    },
    /// Evaluate an intent (JSON file, or `-` for stdin) at an instant and print the decision as JSON.
    Explain {
        /// Jurisdiction files directory.
        #[arg(long, default_value = "jurisdictions")]
        rules: PathBuf,
        /// Evaluation instant, RFC 3339 with offset (e.g. 2026-11-27T19:59:00-05:00).
        #[arg(long, required_unless_present = "batch")]
        at: Option<String>,
        /// Read `{"at": …, "intent": {…}}` JSON lines from stdin; write one decision per line.
        #[arg(long, conflicts_with_all = ["at", "intent"])]
        batch: bool,
        /// The intent JSON file (`-` for stdin).
        #[arg(required_unless_present = "batch")]
        intent: Option<PathBuf>,
    },
}

/// Where the service listens, its database and its rules.
#[derive(clap::Args)]
struct Settings {
    /// TOML configuration file.
    #[arg(long, env = "VENTANA_CONFIG")]
    config: Option<PathBuf>,
    /// Address for gRPC [default: 127.0.0.1:50051].
    #[arg(long, env = "VENTANA_LISTEN")]
    listen: Option<std::net::SocketAddr>,
    /// sqlite://FILE or postgres://USER@HOST/DB [default: sqlite://ventana.db].
    #[arg(long, env = "DATABASE_URL")]
    database_url: Option<String>,
    /// Jurisdiction files directory [default: jurisdictions].
    #[arg(long, env = "VENTANA_JURISDICTIONS")]
    jurisdictions: Option<PathBuf>,
}

impl Settings {
    fn load(self) -> Result<Config, CliError> {
        let overrides =
            Overrides { listen: self.listen, database_url: self.database_url, jurisdictions: self.jurisdictions };
        Config::load(self.config.as_deref(), overrides).map_err(input)
    }
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Create an API key; it is printed once and only its hash is stored.
    Create {
        #[arg(long)]
        tenant: String,
        /// submitter, adapter, auditor or admin (repeat for several).
        #[arg(long = "role", required = true)]
        roles: Vec<String>,
        #[command(flatten)]
        settings: Settings,
    },
}

#[derive(Subcommand)]
enum RulesCommand {
    /// Parse and validate every file, run every [[examples]]; exit 0 only when all is well.
    Check {
        /// Jurisdiction files directory.
        #[arg(default_value = "jurisdictions")]
        dir: PathBuf,
    },
    /// Show the public holidays of a year, or the allowed windows per day for one channel.
    Calendar {
        /// Jurisdiction code, e.g. PE or MX-BCN.
        code: String,
        /// The year whose holidays to list.
        #[arg(long, required_unless_present = "windows")]
        year: Option<i32>,
        /// Show allowed windows per day instead of holidays.
        #[arg(long, requires_all = ["from", "channel"])]
        windows: bool,
        /// First day for --windows (YYYY-MM-DD).
        #[arg(long)]
        from: Option<NaiveDate>,
        /// Number of days for --windows.
        #[arg(long, default_value_t = 7, value_parser = clap::value_parser!(u32).range(1..=3660))]
        days: u32,
        /// Channel for --windows.
        #[arg(long)]
        channel: Option<String>,
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
        /// Jurisdiction files directory.
        #[arg(long, default_value = "jurisdictions")]
        rules: PathBuf,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum Format {
    Text,
    Json,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let result = match args.command {
        Command::Serve { .. } | Command::Migrate { .. } | Command::Keys { .. } => {
            init_tracing();
            match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
                Ok(runtime) => runtime.block_on(run_service(args.command)),
                Err(e) => Err(input(format!("cannot start the runtime: {e}"))),
            }
        }
        command => run(command),
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
    }
}

fn input(message: impl std::fmt::Display) -> CliError {
    CliError::Input(message.to_string())
}

fn print(value: &impl std::fmt::Display) -> Result<(), CliError> {
    match writeln!(io::stdout().lock(), "{value}") {
        // The reader went away (e.g. `| head`): nothing left to do.
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => std::process::exit(0),
        other => other.map_err(|e| input(format!("cannot write output: {e}"))),
    }
}

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into());
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(io::stderr);
    if std::env::var("VENTANA_LOG_FORMAT").is_ok_and(|f| f == "json") {
        builder.json().init();
    } else {
        builder.init();
    }
}

/// The commands that need the database.
async fn run_service(command: Command) -> Result<ExitCode, CliError> {
    match command {
        Command::Serve { settings, dev } => {
            let config = settings.load()?;
            let running = server::start(&config, Clock::System).await.map_err(|e| input(format!("{e:#}")))?;
            if dev {
                let key = create_key(
                    &running.app.store,
                    "dev",
                    &[Role::Submitter, Role::Adapter, Role::Auditor, Role::Admin],
                )
                .await?;
                eprintln!("dev api key (tenant dev, every role): {key}");
                eprintln!("try: grpcurl -plaintext -H 'authorization: Bearer {key}' {} list", running.addr);
            }
            wait_for_signal().await;
            tracing::info!("shutting down");
            running.shutdown().await;
            Ok(ExitCode::SUCCESS)
        }
        Command::Migrate { settings } => {
            let config = settings.load()?;
            Store::connect(&config.database_url)
                .await
                .map_err(|e| input(format!("{}: {e}", server::redact(&config.database_url))))?;
            eprintln!("migrations applied to {}", server::redact(&config.database_url));
            Ok(ExitCode::SUCCESS)
        }
        Command::Keys { command: KeysCommand::Create { tenant, roles, settings } } => {
            let roles = roles
                .iter()
                .map(|r| Role::parse(r))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| input(format!("--role: {e}")))?;
            if tenant.is_empty() || tenant.len() > 256 {
                return Err(input("--tenant: must be 1 to 256 characters"));
            }
            let config = settings.load()?;
            let store = Store::connect(&config.database_url)
                .await
                .map_err(|e| input(format!("{}: {e}", server::redact(&config.database_url))))?;
            let key = create_key(&store, &tenant, &roles).await?;
            print(&key)?;
            Ok(ExitCode::SUCCESS)
        }
        _ => Err(input("not a service command")),
    }
}

async fn create_key(store: &Store, tenant: &str, roles: &[Role]) -> Result<String, CliError> {
    let now = Clock::System.now().timestamp_millis();
    auth::create_key(store, tenant, roles, now).await.map_err(|e| input(format!("cannot store the key: {e}")))
}

/// Resolves on SIGTERM or Ctrl-C.
async fn wait_for_signal() {
    #[cfg(unix)]
    {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(term) => term,
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
                return;
            }
        };
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = tokio::signal::ctrl_c().await;
}

fn run(command: Command) -> Result<ExitCode, CliError> {
    match command {
        Command::Rules { command: RulesCommand::Check { dir } } => {
            let report = cli::rules_check(&dir);
            for problem in &report.problems {
                print(problem)?;
            }
            if report.problems.is_empty() {
                print(&format!("ok: {} files, {} examples passed", report.files, report.examples))?;
                Ok(ExitCode::SUCCESS)
            } else {
                eprintln!("{} problem(s) found", report.problems.len());
                Ok(ExitCode::from(1))
            }
        }
        Command::Rules {
            command: RulesCommand::Calendar { code, year, windows, from, days, channel, format, rules },
        } => {
            let book = cli::load(&rules)?;
            let entries = match (windows, from, channel) {
                (true, Some(from), Some(channel)) => {
                    let channel: Channel = channel.parse().map_err(|e: String| input(format!("--channel: {e}")))?;
                    cli::calendar_windows(&book, &code, channel, from, days)?
                }
                _ => cli::calendar_holidays(&book, &code, year.ok_or_else(|| input("--year is required"))?)?,
            };
            match format {
                Format::Json => print(&serde_json::Value::Array(entries))?,
                Format::Text => {
                    for entry in entries {
                        print(&text_line(&entry))?;
                    }
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Explain { rules, batch: true, .. } => {
            let book = cli::load(&rules)?;
            let errors = cli::explain_batch(&book, BufReader::new(io::stdin().lock()), io::stdout().lock())
                .map_err(|e| input(format!("i/o: {e}")))?;
            if errors > 0 {
                eprintln!("{errors} line(s) had errors");
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Explain { rules, at, intent, .. } => {
            let at = parse_instant(at.as_deref().unwrap_or_default()).map_err(|e| input(format!("--at: {e}")))?;
            let path = intent.ok_or_else(|| input("an intent file is required"))?;
            let text = if path.as_os_str() == "-" {
                io::read_to_string(io::stdin()).map_err(|e| input(format!("stdin: {e}")))?
            } else {
                std::fs::read_to_string(&path).map_err(|e| input(format!("{}: {e}", path.display())))?
            };
            let value: serde_json::Value =
                serde_json::from_str(&text).map_err(|e| input(format!("{}: not JSON: {e}", path.display())))?;
            let book = cli::load(&rules)?;
            let decision = cli::explain(&book, at, &value)?;
            print(&serde_json::to_string_pretty(&decision).map_err(input)?)?;
            Ok(ExitCode::SUCCESS)
        }
        _ => Err(input("not a rules command")),
    }
}

/// One calendar entry as a line of text.
fn text_line(entry: &serde_json::Value) -> String {
    let text = |key: &str| entry.get(key).and_then(|v| v.as_str()).unwrap_or_default().to_string();
    match entry.get("windows").and_then(|w| w.as_array()) {
        Some(windows) => {
            let hours: Vec<&str> = windows.iter().filter_map(|w| w.as_str()).collect();
            let holiday =
                entry.get("holiday").and_then(|h| h.as_str()).map(|h| format!(" (holiday: {h})")).unwrap_or_default();
            let hours = if hours.is_empty() { "no contact".to_string() } else { hours.join(", ") };
            format!("{} {:<9}{holiday} {hours}", text("date"), text("day"))
        }
        None => format!("{}  {}  [{}]", text("date"), text("name"), text("rule")),
    }
}
