//! The `ventana` command line. Argument parsing and exit codes only; the
//! work is done in `ventana::cli`.

/// mimalloc: glibc's allocator was ~18% of a Submit's CPU (many small,
/// short-lived allocations across threads; see docs/PERFORMANCE.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::io::{self, BufReader, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use chrono::NaiveDate;
use clap::{Parser, Subcommand, ValueEnum};
use ventana::api::auth::{self, Role};
use ventana::app::audit as audit_ops;
use ventana::cli::{self, CliError};
use ventana::clock::Clock;
use ventana::config::{Config, Overrides};
use ventana::domain::{Channel, check_identifier};
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
    Serve {
        #[command(flatten)]
        settings: Settings,
        /// Create and print an API key with every role for tenant `dev` (local trials only),
        /// named `serve-dev`; the keys earlier `serve --dev` starts minted are revoked first.
        #[arg(long)]
        dev: bool,
    },
    /// Apply database migrations and exit (`serve` also applies them on start).
    Migrate {
        #[command(flatten)]
        settings: Settings,
    },
    /// Verify, export, replay and purge the audit log.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
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
        #[arg(long, env = "VENTANA_JURISDICTIONS", default_value = "jurisdictions")]
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
    /// Address for the Prometheus /metrics endpoint [default: 127.0.0.1:9464].
    #[arg(long, env = "VENTANA_METRICS_LISTEN")]
    metrics_listen: Option<std::net::SocketAddr>,
    /// sqlite://FILE or postgres://USER@HOST/DB [default: sqlite://ventana.db].
    #[arg(long, env = "DATABASE_URL")]
    database_url: Option<String>,
    /// Jurisdiction files directory [default: jurisdictions].
    #[arg(long, env = "VENTANA_JURISDICTIONS")]
    jurisdictions: Option<PathBuf>,
}

impl Settings {
    fn load(self) -> Result<Config, CliError> {
        let overrides = Overrides {
            listen: self.listen,
            metrics_listen: self.metrics_listen,
            database_url: self.database_url,
            jurisdictions: self.jurisdictions,
        };
        Config::load(self.config.as_deref(), overrides).map_err(input)
    }
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Walk the hash chain of one tenant (or all) and name the first broken sequence; exit 1 if any.
    Verify {
        #[arg(long)]
        tenant: Option<String>,
        /// Environment variable holding the key that signs purge checkpoints.
        #[arg(long, default_value = "VENTANA_AUDIT_KEY")]
        key_env: String,
        #[command(flatten)]
        settings: Settings,
    },
    /// Export events (CSV with stable columns, or JSON lines), verifying the chain on the way.
    Export {
        #[arg(long)]
        tenant: String,
        /// First day (YYYY-MM-DD, UTC) or instant (RFC 3339), inclusive.
        #[arg(long)]
        from: String,
        /// Last day (YYYY-MM-DD, UTC, inclusive) or instant (RFC 3339, exclusive).
        #[arg(long)]
        to: String,
        #[arg(long)]
        debtor: Option<String>,
        #[arg(long)]
        jurisdiction: Option<String>,
        #[arg(long)]
        channel: Option<String>,
        #[arg(long, value_enum, default_value_t = ExportFormat::Csv)]
        format: ExportFormat,
        /// Output file (default: stdout).
        #[arg(long)]
        out: Option<PathBuf>,
        #[command(flatten)]
        settings: Settings,
    },
    /// Re-evaluate logged decisions with the rules they recorded (or --rules DIR) and list every difference.
    Replay {
        #[arg(long)]
        tenant: String,
        #[arg(long)]
        from: String,
        #[arg(long)]
        to: String,
        /// Candidate rules directory to replay against instead of the recorded versions.
        #[arg(long)]
        rules: Option<PathBuf>,
        #[command(flatten)]
        settings: Settings,
    },
    /// Delete events older than the tenant's retention period, leaving a signed checkpoint.
    Purge {
        #[arg(long)]
        tenant: String,
        /// Purge before this day/instant instead of the configured retention.
        #[arg(long)]
        before: Option<String>,
        /// Environment variable holding the signing key (required).
        #[arg(long, default_value = "VENTANA_AUDIT_KEY")]
        key_env: String,
        #[command(flatten)]
        settings: Settings,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum ExportFormat {
    Csv,
    Jsonl,
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Create an API key; it is printed once and only its hash is stored.
    Create {
        /// The tenant the key acts for (not blank, no control characters, no leading or
        /// trailing whitespace, at most 256 characters).
        #[arg(long)]
        tenant: String,
        /// submitter, adapter, auditor, admin (every role of the tenant but operator) or operator
        /// (Rules/Reload, which affects every tenant); repeat for several.
        #[arg(long = "role", required = true)]
        roles: Vec<String>,
        /// A name to tell the key apart in `keys list` (same rules as --tenant).
        #[arg(long)]
        name: Option<String>,
        /// Refuse the key after this long: a whole number and s, m, h or d (e.g. 90d).
        #[arg(long, conflicts_with = "expires_at")]
        expires_in: Option<String>,
        /// Refuse the key from this instant on (RFC 3339 with offset).
        #[arg(long)]
        expires_at: Option<String>,
        #[command(flatten)]
        settings: Settings,
    },
    /// List API keys: prefix, tenant, roles, name, created, expires, revoked (never the key or its hash).
    List {
        /// Only this tenant's keys.
        #[arg(long)]
        tenant: Option<String>,
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
        #[command(flatten)]
        settings: Settings,
    },
    /// Revoke an API key by its prefix (as `keys list` shows it, e.g. vk_0c1f2a3b).
    ///
    /// A running service trusts a key it has looked up for 5 s (KEY_CACHE_TTL) without asking
    /// the database again, so a revoked key may still be honoured for up to 5 s; after that every
    /// call with it is refused (UNAUTHENTICATED). Revoking a revoked key changes nothing.
    Revoke {
        /// The key's prefix: `vk_` and 8 hex digits.
        prefix: String,
        #[command(flatten)]
        settings: Settings,
    },
}

#[derive(Subcommand)]
enum RulesCommand {
    /// Parse and validate every file, run every [[examples]]; exit 0 only when all is well.
    Check {
        /// Jurisdiction files directory.
        #[arg(env = "VENTANA_JURISDICTIONS", default_value = "jurisdictions")]
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
        #[arg(long, env = "VENTANA_JURISDICTIONS", default_value = "jurisdictions")]
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
        Command::Serve { .. } | Command::Migrate { .. } | Command::Keys { .. } | Command::Audit { .. } => {
            match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
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
        Err(CliError::Runtime(message)) => {
            eprintln!("error: {message}");
            ExitCode::from(3)
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

/// The commands that need the database.
async fn run_service(command: Command) -> Result<ExitCode, CliError> {
    match command {
        Command::Serve { settings, dev } => {
            let config = settings.load()?;
            let running = server::start(&config, Clock::System).await.map_err(|e| input(format!("{e:#}")))?;
            if dev {
                // Each start mints a key; the ones earlier starts minted are revoked
                // first, so trial keys do not pile up and stay valid forever.
                let now = Clock::System.now().timestamp_millis();
                let revoked = auth::revoke_dev_keys(&running.app.store, now)
                    .await
                    .map_err(|e| input(format!("cannot revoke earlier dev keys: {e}")))?;
                let spec = auth::KeySpec {
                    tenant: auth::DEV_TENANT,
                    roles: &Role::ALL,
                    name: Some(auth::DEV_KEY_NAME),
                    expires_at: None,
                };
                let key = mint_key(&running.app.store, &spec).await?;
                eprintln!("dev api key (tenant dev, every role): {key}");
                if !revoked.is_empty() {
                    eprintln!(
                        "revoked {} key(s) minted by earlier `serve --dev` starts (name {}): {}",
                        revoked.len(),
                        auth::DEV_KEY_NAME,
                        revoked.join(", ")
                    );
                }
                eprintln!("try: grpcurl -plaintext -H 'authorization: Bearer {key}' {} list", running.addr);
            }
            if let Some(tls) = running.tls.clone() {
                tokio::spawn(reload_tls_on_sighup(tls));
            }
            wait_for_signal().await;
            tracing::info!("shutting down: no new work; finishing what is in flight");
            // In-flight requests and batches finish; unacknowledged leases simply expire
            // and are re-offered by another replica. Bounded, so a stuck call cannot hold the exit.
            if tokio::time::timeout(SHUTDOWN_GRACE, running.shutdown()).await.is_err() {
                tracing::warn!(seconds = SHUTDOWN_GRACE.as_secs(), "shutdown grace period over; exiting");
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Migrate { settings } => {
            let config = settings.load()?;
            Store::connect(&config.database_url)
                .await
                .map_err(|e| runtime(format!("{}: {e}", server::redact(&config.database_url))))?;
            eprintln!("migrations applied to {}", server::redact(&config.database_url));
            Ok(ExitCode::SUCCESS)
        }
        Command::Keys { command } => keys_command(command).await,
        Command::Audit { command } => audit_command(command).await,
        _ => Err(input("not a service command")),
    }
}

/// A day (UTC midnight; `end` moves to the next day) or an RFC 3339 instant.
fn day_or_instant(flag: &str, text: &str, end: bool) -> Result<chrono::DateTime<chrono::Utc>, CliError> {
    if let Ok(day) = text.parse::<NaiveDate>() {
        let day = if end { day.succ_opt().unwrap_or(day) } else { day };
        return Ok(day.and_hms_opt(0, 0, 0).unwrap_or_default().and_utc());
    }
    parse_instant(text).map_err(|e| input(format!("{flag}: {e} (or a day YYYY-MM-DD)")))
}

async fn open_store(settings: Settings) -> Result<(Config, Store), CliError> {
    let config = settings.load()?;
    let store = Store::connect(&config.database_url)
        .await
        .map_err(|e| runtime(format!("{}: {e}", server::redact(&config.database_url))))?;
    Ok((config, store))
}

fn storage(e: impl std::fmt::Display) -> CliError {
    runtime(format!("storage: {e}"))
}

fn runtime(message: impl std::fmt::Display) -> CliError {
    CliError::Runtime(message.to_string())
}

async fn audit_command(command: AuditCommand) -> Result<ExitCode, CliError> {
    match command {
        AuditCommand::Verify { tenant, key_env, settings } => {
            let (_, store) = open_store(settings).await?;
            let key = std::env::var(&key_env).ok();
            let reports = audit_ops::verify(&store, tenant.as_deref(), key.as_deref()).await.map_err(storage)?;
            let mut failed = false;
            for report in &reports {
                let checkpoint = report.checkpoint.as_deref().map(|c| format!("; {c}")).unwrap_or_default();
                match &report.broken {
                    None => print(&format!("{}: ok, {} events verified{checkpoint}", report.tenant, report.rows))?,
                    Some(b) => {
                        failed = true;
                        print(&format!("{}: BROKEN at sequence {}: {}{checkpoint}", report.tenant, b.seq, b.reason))?;
                    }
                }
            }
            if reports.is_empty() {
                print(&"no audit chains found")?;
            }
            Ok(if failed { ExitCode::from(1) } else { ExitCode::SUCCESS })
        }
        AuditCommand::Export { tenant, from, to, debtor, jurisdiction, channel, format, out, settings } => {
            let filter = audit_ops::ExportFilter {
                tenant,
                from: day_or_instant("--from", &from, false)?,
                to: day_or_instant("--to", &to, true)?,
                debtor_id: debtor,
                jurisdiction,
                channel: channel
                    .map(|c| c.parse::<Channel>().map(|c| c.as_str().to_string()))
                    .transpose()
                    .map_err(|e| input(format!("--channel: {e}")))?,
            };
            let (_, store) = open_store(settings).await?;
            // "Verified" about a chain that does not exist would mislead an auditor.
            if store.audit_head(&filter.tenant).await.map_err(|e| runtime(format!("reading the chain: {e}")))?.is_none()
            {
                return Err(input(format!(
                    "--tenant: {:?} has no audit chain in this database (no event was ever recorded for it); \
                     `audit verify` lists the tenants that have one",
                    filter.tenant
                )));
            }
            let writer: Box<dyn Write> = match &out {
                Some(path) => {
                    Box::new(std::fs::File::create(path).map_err(|e| input(format!("{}: {e}", path.display())))?)
                }
                None => Box::new(io::stdout().lock()),
            };
            let summary = export(&store, filter, format, io::BufWriter::with_capacity(1 << 16, writer)).await?;
            eprintln!("{summary}");
            Ok(if summary.contains("chain verified: yes") { ExitCode::SUCCESS } else { ExitCode::from(1) })
        }
        AuditCommand::Replay { tenant, from, to, rules, settings } => {
            let (from, to) = (day_or_instant("--from", &from, false)?, day_or_instant("--to", &to, true)?);
            let (_, store) = open_store(settings).await?;
            let candidate = rules.as_deref().map(cli::load).transpose()?;
            let (replayed, differences) =
                audit_ops::replay(&store, &tenant, from, to, candidate.as_ref()).await.map_err(input)?;
            for d in &differences {
                print(&format!(
                    "sequence {} intent {} at {}: recorded {}, now {}",
                    d.seq,
                    d.intent_id,
                    d.at.to_rfc3339(),
                    d.recorded,
                    d.now
                ))?;
            }
            print(&format!("{replayed} decisions replayed, {} differ", differences.len()))?;
            Ok(if differences.is_empty() { ExitCode::SUCCESS } else { ExitCode::from(1) })
        }
        AuditCommand::Purge { tenant, before, key_env, settings } => {
            let key = std::env::var(&key_env)
                .map_err(|_| input(format!("set {key_env}: purge checkpoints must be signed")))?;
            let (config, store) = open_store(settings).await?;
            let now = Clock::System.now();
            let before = match before {
                Some(text) => day_or_instant("--before", &text, false)?,
                None => now - chrono::Duration::days(i64::from(config.audit.retention_days(&tenant))),
            };
            let (deleted, checkpoint) = audit_ops::purge(&store, &tenant, before, &key, now).await.map_err(storage)?;
            match checkpoint {
                Some(seq) => print(&format!(
                    "{tenant}: {deleted} events before {} purged; chain now starts after signed checkpoint {seq}",
                    before.to_rfc3339()
                ))?,
                None => print(&format!("{tenant}: nothing before {}", before.to_rfc3339()))?,
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Streams an export to `out`; returns the summary line.
async fn export(
    store: &Store,
    filter: audit_ops::ExportFilter,
    format: ExportFormat,
    out: impl Write,
) -> Result<String, CliError> {
    use std::io::IsTerminal;
    let mut cursor = audit_ops::ExportCursor::open(store, filter).await.map_err(storage)?;
    let progress = if io::stderr().is_terminal() {
        indicatif::ProgressBar::new(cursor.range_len())
    } else {
        indicatif::ProgressBar::hidden()
    };
    let mut csv_out = None;
    let mut json_out = None;
    match format {
        ExportFormat::Csv => {
            let mut w = csv::Writer::from_writer(out);
            w.write_record(audit_ops::CSV_COLUMNS).map_err(storage)?;
            csv_out = Some(w);
        }
        ExportFormat::Jsonl => json_out = Some(out),
    }
    while let Some(rows) = cursor.next_page().await.map_err(storage)? {
        for row in &rows {
            if let Some(w) = csv_out.as_mut() {
                w.write_record(audit_ops::csv_record(row)).map_err(storage)?;
            }
            if let Some(w) = json_out.as_mut() {
                serde_json::to_writer(&mut *w, &audit_ops::json_record(row)).map_err(storage)?;
                w.write_all(b"\n").map_err(storage)?;
            }
        }
        progress.set_position(cursor.scanned());
    }
    if let Some(mut w) = csv_out {
        w.flush().map_err(storage)?;
    }
    if let Some(mut w) = json_out {
        w.flush().map_err(storage)?;
    }
    progress.finish_and_clear();
    let seqs = match (cursor.first_seq, cursor.last_seq) {
        (Some(a), Some(b)) => format!("sequences {a}..{b}"),
        _ => "no sequences".to_string(),
    };
    let verified = match cursor.broken() {
        None => "chain verified: yes".to_string(),
        Some(b) => format!("chain verified: NO (broken at sequence {}: {})", b.seq, b.reason),
    };
    Ok(format!("exported {} rows, {seqs}, {verified}", cursor.exported))
}

async fn mint_key(store: &Store, spec: &auth::KeySpec<'_>) -> Result<String, CliError> {
    let now = Clock::System.now().timestamp_millis();
    auth::mint_key(store, spec, now).await.map_err(|e| runtime(format!("cannot store the key: {e}")))
}

/// An identifier flag checked as every edge checks identifiers.
fn identifier(flag: &str, value: &str) -> Result<(), CliError> {
    check_identifier(value).map_err(|e| input(format!("{flag}: {e}")))
}

/// A stored instant (Unix ms) as RFC 3339 UTC, or `-`.
fn instant_text(ms: Option<i64>) -> String {
    ms.and_then(chrono::DateTime::from_timestamp_millis)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        .unwrap_or_else(|| "-".into())
}

async fn keys_command(command: KeysCommand) -> Result<ExitCode, CliError> {
    let now = Clock::System.now();
    match command {
        KeysCommand::Create { tenant, roles, name, expires_in, expires_at, settings } => {
            identifier("--tenant", &tenant)?;
            if let Some(name) = &name {
                identifier("--name", name)?;
                if name == auth::DEV_KEY_NAME {
                    return Err(input(format!("--name: {name:?} is reserved for the keys `serve --dev` mints")));
                }
            }
            let roles = roles
                .iter()
                .map(|r| Role::parse(r))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| input(format!("--role: {e}")))?;
            let expires = match (expires_in, expires_at) {
                (Some(text), _) => {
                    Some(now + auth::parse_lifetime(&text).map_err(|e| input(format!("--expires-in: {e}")))?)
                }
                (None, Some(text)) => {
                    let at = parse_instant(&text).map_err(|e| input(format!("--expires-at: {e}")))?;
                    if at <= now {
                        return Err(input(format!("--expires-at: {text} is not in the future")));
                    }
                    Some(at)
                }
                (None, None) => None,
            };
            let (_, store) = open_store(settings).await?;
            let spec = auth::KeySpec {
                tenant: &tenant,
                roles: &roles,
                name: name.as_deref(),
                expires_at: expires.map(|t| t.timestamp_millis()),
            };
            let key = mint_key(&store, &spec).await?;
            print(&key)?;
            let roles: Vec<&str> = roles.iter().map(|r| r.as_str()).collect();
            let expires = expires.map(|t| format!(", expires {}", instant_text(Some(t.timestamp_millis()))));
            eprintln!(
                "api key {}… created for tenant {tenant} (roles {}{}); it is shown only this once",
                &key[..auth::KEY_PREFIX_LEN],
                roles.join(","),
                expires.unwrap_or_default()
            );
            Ok(ExitCode::SUCCESS)
        }
        KeysCommand::List { tenant, format, settings } => {
            if let Some(tenant) = &tenant {
                identifier("--tenant", tenant)?;
            }
            let (_, store) = open_store(settings).await?;
            let keys = store.list_keys(tenant.as_deref()).await.map_err(storage)?;
            let now_ms = now.timestamp_millis();
            let state = |key: &ventana::store::KeyInfo| match (key.revoked_at, key.expires_at) {
                (Some(_), _) => "revoked",
                (None, Some(expires)) if now_ms >= expires => "expired",
                _ => "active",
            };
            match format {
                Format::Json => {
                    let keys: Vec<serde_json::Value> = keys
                        .iter()
                        .map(|k| {
                            let at = |ms: Option<i64>| ms.map(|ms| instant_text(Some(ms)));
                            serde_json::json!({
                                "prefix": k.key_prefix,
                                "tenant": k.tenant,
                                "roles": k.roles.split(',').collect::<Vec<_>>(),
                                "name": k.name,
                                "created": instant_text(Some(k.created_at)),
                                "expires": at(k.expires_at),
                                "revoked": at(k.revoked_at),
                                "state": state(k),
                            })
                        })
                        .collect();
                    print(&serde_json::Value::Array(keys))?;
                }
                Format::Text => {
                    let header = ["PREFIX", "TENANT", "ROLES", "NAME", "CREATED", "EXPIRES", "REVOKED", "STATE"];
                    let rows: Vec<[String; 8]> = keys
                        .iter()
                        .map(|k| {
                            [
                                k.key_prefix.clone(),
                                k.tenant.clone(),
                                k.roles.clone(),
                                k.name.clone().unwrap_or_else(|| "-".into()),
                                instant_text(Some(k.created_at)),
                                instant_text(k.expires_at),
                                instant_text(k.revoked_at),
                                state(k).to_string(),
                            ]
                        })
                        .collect();
                    let mut widths = header.map(|h| h.chars().count());
                    for row in &rows {
                        for (width, cell) in widths.iter_mut().zip(row) {
                            *width = (*width).max(cell.chars().count());
                        }
                    }
                    let line = |cells: Vec<&str>| {
                        let padded: Vec<String> =
                            cells.iter().zip(widths).map(|(cell, width)| format!("{cell:<width$}")).collect();
                        padded.join("  ").trim_end().to_string()
                    };
                    print(&line(header.to_vec()))?;
                    for row in &rows {
                        print(&line(row.iter().map(String::as_str).collect()))?;
                    }
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        KeysCommand::Revoke { prefix, settings } => {
            identifier("prefix", &prefix)?;
            let (_, store) = open_store(settings).await?;
            let key = auth::revoke_key(&store, &prefix, now.timestamp_millis()).await.map_err(|e| match e {
                auth::RevokeError::Store(e) => storage(e),
                other => input(other),
            })?;
            match key.revoked_at {
                Some(at) => print(&format!(
                    "{} (tenant {}) was already revoked at {}; nothing changed",
                    key.key_prefix,
                    key.tenant,
                    instant_text(Some(at))
                ))?,
                None => print(&format!(
                    "revoked {} (tenant {}, roles {}); a running service may honour it for up to {} s more",
                    key.key_prefix,
                    key.tenant,
                    key.roles,
                    auth::KEY_CACHE_TTL.as_secs()
                ))?,
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// How long a stopping replica waits for in-flight work.
const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(20);

/// Reloads the TLS files on every SIGHUP; a bad file keeps the certificate in force.
async fn reload_tls_on_sighup(tls: std::sync::Arc<ventana::tls::Tls>) {
    let mut hangups = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
        Ok(hangups) => hangups,
        Err(e) => {
            tracing::warn!(error = %e, "cannot listen for SIGHUP; TLS files will not be reloaded");
            return;
        }
    };
    while hangups.recv().await.is_some() {
        match tls.reload() {
            Ok(()) => tracing::info!("TLS certificate reloaded"),
            Err(e) => tracing::error!(error = %e, "TLS reload failed; keeping the certificate in force"),
        }
    }
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
