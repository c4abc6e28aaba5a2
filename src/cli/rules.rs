//! `ventana rules`: check the jurisdiction files, show calendars and windows.

use std::path::PathBuf;
use std::process::ExitCode;

use chrono::NaiveDate;
use clap::Subcommand;

use super::{CliError, Format, input, print};
use crate::domain::Channel;
use crate::officer as cli;

#[derive(Subcommand)]
pub enum RulesCommand {
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

/// Runs one rules command.
pub fn run(command: RulesCommand) -> Result<ExitCode, CliError> {
    match command {
        RulesCommand::Check { dir } => {
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
        RulesCommand::Calendar { code, year, windows, from, days, channel, format, rules } => {
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
    }
}

/// One calendar entry as a line of text.
fn text_line(entry: &serde_json::Value) -> String {
    let text = |key: &str| entry.get(key).and_then(|v| v.as_str()).unwrap_or_default().to_string();
    let flag = |key: &str| entry.get(key).and_then(|v| v.as_bool()).unwrap_or(false);
    match entry.get("windows").and_then(|w| w.as_array()) {
        Some(windows) => {
            let hours: Vec<&str> = windows.iter().filter_map(|w| w.as_str()).collect();
            let holiday = entry
                .get("holiday")
                .and_then(|h| h.as_str())
                .map(|h| format!(" (holiday: {h}{})", if flag("provisional") { ", provisional" } else { "" }))
                .unwrap_or_default();
            let hours = if hours.is_empty() { "no contact".to_string() } else { hours.join(", ") };
            format!("{} {:<9}{holiday} {hours}", text("date"), text("day"))
        }
        None => {
            let mut line = format!("{}  {}  [{}]", text("date"), text("name"), text("rule"));
            if flag("regional") {
                line.push_str("  regional");
            }
            if flag("provisional") {
                line.push_str(&format!("  PROVISIONAL until decided ({})", text("pending_under")));
            }
            line
        }
    }
}
