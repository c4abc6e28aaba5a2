//! `ventana rules`: check the jurisdiction files, show calendars and windows.

use std::path::PathBuf;
use std::process::ExitCode;

use chrono::NaiveDate;
use clap::Subcommand;

use super::{CliError, Format, PageFormat, input, print};
use crate::domain::Channel;
use crate::officer as cli;
use crate::officer::picture;
use crate::rules::coverage::{Coverage, DEFAULT_LOOKAHEAD_DAYS, DEFAULT_MIN_HORIZON_DAYS, describe_pending};

#[derive(Subcommand)]
pub enum RulesCommand {
    /// Parse and validate every file, run every [[examples]]; exit 0 only when all is well.
    /// Warns when a file's holidays are confirmed less than --horizon-days ahead, and lists
    /// every pending decision and every dated list ending within a year.
    Check {
        /// Jurisdiction files directory.
        #[arg(env = "VENTANA_JURISDICTIONS", default_value = "jurisdictions")]
        dir: PathBuf,
        #[command(flatten)]
        currency: CurrencyArgs,
        /// A horizon nearer than --horizon-days is an error (exit 1), not a warning.
        #[arg(long)]
        strict: bool,
    },
    /// Per jurisdiction file: how far its holidays are confirmed, the decisions still
    /// pending (with the days closed meanwhile) and the dated lists that end soon.
    Coverage {
        /// Jurisdiction files directory.
        #[arg(env = "VENTANA_JURISDICTIONS", default_value = "jurisdictions")]
        dir: PathBuf,
        #[command(flatten)]
        currency: CurrencyArgs,
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
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

/// The day a check is made and how far ahead it looks.
#[derive(clap::Args)]
pub struct CurrencyArgs {
    /// The day to check from (YYYY-MM-DD; default: today, UTC).
    #[arg(long)]
    today: Option<NaiveDate>,
    /// Warn when a file's holidays are confirmed fewer days ahead than this.
    #[arg(long, default_value_t = DEFAULT_MIN_HORIZON_DAYS)]
    horizon_days: u32,
    /// Report pending decisions and ending lists this many days ahead.
    #[arg(long, default_value_t = DEFAULT_LOOKAHEAD_DAYS, value_parser = clap::value_parser!(u32).range(1..=3660))]
    lookahead_days: u32,
}

impl CurrencyArgs {
    fn currency(&self) -> cli::Currency {
        cli::Currency {
            today: self.today.unwrap_or_else(|| crate::clock::Clock::System.now().date_naive()),
            min_days: self.horizon_days,
            lookahead_days: self.lookahead_days,
        }
    }
}

/// Runs one rules command.
pub fn run(command: RulesCommand) -> Result<ExitCode, CliError> {
    match command {
        RulesCommand::Check { dir, currency, strict } => {
            let currency = currency.currency();
            let report = cli::rules_check(&dir, &currency);
            for problem in &report.problems {
                print(problem)?;
            }
            for warning in cli::currency_warnings(&report.coverage, &currency) {
                print(&format!("warning: {warning}"))?;
            }
            let short = report.coverage.iter().filter(|c| c.is_short(currency.today, currency.min_days)).count();
            if !report.problems.is_empty() {
                eprintln!("{} problem(s) found", report.problems.len());
                Ok(ExitCode::from(1))
            } else if strict && short > 0 {
                eprintln!("--strict: {short} file(s) confirmed less than {} days ahead", currency.min_days);
                Ok(ExitCode::from(1))
            } else {
                print(&format!("ok: {} files, {} examples passed", report.files, report.examples))?;
                Ok(ExitCode::SUCCESS)
            }
        }
        RulesCommand::Coverage { dir, currency, format } => {
            let currency = currency.currency();
            let coverages = cli::coverages(&cli::load(&dir)?, &currency);
            match format {
                Format::Json => print(&serde_json::Value::Array(
                    coverages.iter().map(|c| cli::coverage_json(c, &currency)).collect(),
                ))?,
                Format::Text => {
                    for c in &coverages {
                        print(&coverage_text(c, &currency))?;
                    }
                }
            }
            Ok(ExitCode::SUCCESS)
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

/// One file's coverage as a few lines of text.
fn coverage_text(c: &Coverage, currency: &cli::Currency) -> String {
    let mut text = match &c.horizon {
        Some(h) => format!(
            "{} ({}): {}{}",
            c.code,
            c.file,
            h.describe(currency.today),
            if c.is_short(currency.today, currency.min_days) { "  SHORT" } else { "" }
        ),
        None if c.has_holidays => format!("{} ({}): states no `confirmed_through`  SHORT", c.code, c.file),
        None => format!("{} ({}): no holidays of its own", c.code, c.file),
    };
    for pending in &c.pending {
        text.push_str(&format!("\n  pending: {}", describe_pending(pending)));
    }
    for list in &c.ending {
        text.push_str(&format!("\n  list ends: {} ({}) on {}", list.rule, list.name, list.last));
    }
    text
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
