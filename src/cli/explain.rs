//! `ventana explain`: the decision for an intent at an instant, or for JSON lines.

use std::io::{self, BufReader};
use std::path::PathBuf;
use std::process::ExitCode;

use super::{CliError, input, print};
use crate::officer as cli;
use crate::rules::compile::parse_instant;

/// `explain`'s arguments.
#[derive(clap::Args)]
pub struct ExplainArgs {
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
}

/// Prints the decision(s).
pub fn run(args: ExplainArgs) -> Result<ExitCode, CliError> {
    match args {
        ExplainArgs { rules, batch: true, .. } => {
            let book = cli::load(&rules)?;
            let errors = cli::explain_batch(&book, BufReader::new(io::stdin().lock()), io::stdout().lock())
                .map_err(|e| input(format!("i/o: {e}")))?;
            if errors > 0 {
                eprintln!("{errors} line(s) had errors");
            }
            Ok(ExitCode::SUCCESS)
        }
        ExplainArgs { rules, at, intent, .. } => {
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
    }
}
