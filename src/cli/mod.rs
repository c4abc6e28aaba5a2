//! The `ventana` commands, one file per group: `serve` (and `migrate`),
//! `keys`, `audit`, `backup`, `rules`, `explain`. `main.rs` parses the arguments and
//! turns the result into an exit code: 0 done, 1 a finding, 2 a usage
//! error, 3 a runtime failure (see [`CliError`]).

pub mod audit;
pub mod backup;
pub mod explain;
pub mod keys;
pub mod rules;
pub mod rules_diff;
pub mod serve;

use std::io::{self, Write};
use std::path::PathBuf;

use clap::ValueEnum;

use crate::config::{Config, Overrides};
pub use crate::officer::CliError;
use crate::store::Store;

/// Where the service listens, its database and its rules.
#[derive(clap::Args)]
pub struct Settings {
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
    /// Address for the read-only web console [default: off; 127.0.0.1:8080 with `serve --dev`].
    #[arg(long, env = "VENTANA_CONSOLE_LISTEN")]
    console_listen: Option<std::net::SocketAddr>,
}

impl Settings {
    pub fn load(self) -> Result<Config, CliError> {
        let overrides = Overrides {
            listen: self.listen,
            metrics_listen: self.metrics_listen,
            database_url: self.database_url,
            jurisdictions: self.jurisdictions,
            console_listen: self.console_listen,
        };
        Config::load(self.config.as_deref(), overrides).map_err(input)
    }
}

/// Text for people or JSON for programs.
#[derive(Clone, Copy, ValueEnum)]
pub enum Format {
    Text,
    Json,
}

/// Text for people, JSON for programs, or one self-contained HTML page
/// (`rules calendar --windows`, `rules diff`).
#[derive(Clone, Copy, ValueEnum)]
pub enum PageFormat {
    Text,
    Json,
    Html,
}

/// A usage error (exit 2).
pub fn input(message: impl std::fmt::Display) -> CliError {
    CliError::Input(message.to_string())
}

/// Prints a line to stdout; a reader that went away (`| head`) ends the process quietly.
pub fn print(value: &impl std::fmt::Display) -> Result<(), CliError> {
    match writeln!(io::stdout().lock(), "{value}") {
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => std::process::exit(0),
        other => other.map_err(|e| input(format!("cannot write output: {e}"))),
    }
}

/// A day (UTC midnight; `end` moves to the next day) or an RFC 3339 instant.
pub fn day_or_instant(flag: &str, text: &str, end: bool) -> Result<chrono::DateTime<chrono::Utc>, CliError> {
    crate::app::audit::day_or_instant(text, end).map_err(|e| input(format!("{flag}: {e}")))
}

pub async fn open_store(settings: Settings) -> Result<(Config, Store), CliError> {
    let config = settings.load()?;
    let store = Store::connect(&config.database_url)
        .await
        .map_err(|e| runtime(format!("{}: {e}", crate::store::redact_url(&config.database_url))))?;
    Ok((config, store))
}

pub fn storage(e: impl std::fmt::Display) -> CliError {
    runtime(format!("storage: {e}"))
}

/// A stored row that cannot be read (a runtime error: nothing is guessed).
pub fn unreadable(e: impl std::fmt::Display) -> CliError {
    runtime(format!("unreadable stored row: {e}"))
}

pub fn runtime(message: impl std::fmt::Display) -> CliError {
    CliError::Runtime(message.to_string())
}
