//! `ventana rules`: check the jurisdiction files, show calendars and windows.

use std::path::PathBuf;
use std::process::ExitCode;

use chrono::NaiveDate;
use clap::Subcommand;

use super::{CliError, Format, PageFormat, input, print};
use crate::domain::Channel;
use crate::officer as cli;
use crate::officer::picture;

#[derive(Subcommand)]
pub enum RulesCommand {
    /// Parse and validate every file, run every [[examples]]; exit 0 only when all is well.
    Check {
        /// Jurisdiction files directory.
        #[arg(env = "VENTANA_JURISDICTIONS", default_value = "jurisdictions")]
        dir: PathBuf,
    },
    /// Show the public holidays of a year, or the allowed windows per day for one channel
    /// (with --format html: a page picturing the week for every channel, or --channel's).
    Calendar {
        /// Jurisdiction code, e.g. PE or MX-BCN.
        code: String,
        /// The year whose holidays to list.
        #[arg(long, required_unless_present = "windows")]
        year: Option<i32>,
        /// Show allowed windows per day instead of holidays.
        #[arg(long, requires = "from")]
        windows: bool,
        /// First day for --windows (YYYY-MM-DD).
        #[arg(long)]
        from: Option<NaiveDate>,
        /// Number of days for --windows.
        #[arg(long, default_value_t = 7, value_parser = clap::value_parser!(u32).range(1..=3660))]
        days: u32,
        /// Channel for --windows (required, except with --format html: every channel).
        #[arg(long)]
        channel: Option<String>,
        #[arg(long, value_enum, default_value_t = PageFormat::Text)]
        format: PageFormat,
        /// Jurisdiction files directory.
        #[arg(long, env = "VENTANA_JURISDICTIONS", default_value = "jurisdictions")]
        rules: PathBuf,
    },
    /// Compare two rule sets day by day: hours, holidays and rules that differ, with ids and
    /// citations. OLD and NEW are directories or REV:DIR (git). Exit 1 when anything differs.
    Diff(super::rules_diff::DiffArgs),
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
            let channel = channel
                .map(|c| c.parse::<Channel>().map_err(|e: String| input(format!("--channel: {e}"))))
                .transpose()?;
            let format = match (format, windows, from) {
                (PageFormat::Html, true, Some(from)) => {
                    let week = picture::Week::build(&book, "", &code, from, days, channel)?;
                    print(&picture::page(&week).trim_end())?;
                    return Ok(ExitCode::SUCCESS);
                }
                (PageFormat::Html, _, _) => return Err(input("--format html pictures a week: add --windows --from")),
                (PageFormat::Json, _, _) => Format::Json,
                (PageFormat::Text, _, _) => Format::Text,
            };
            let entries = match (windows, from, channel) {
                (true, Some(from), Some(channel)) => cli::calendar_windows(&book, &code, channel, from, days)?,
                (true, _, None) => return Err(input("--windows needs --channel (or --format html for every channel)")),
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
        RulesCommand::Diff(args) => super::rules_diff::run(args),
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
