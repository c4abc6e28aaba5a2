//! The `ventana` command line. Argument parsing and exit codes only; the
//! work is done in `ventana::cli`.

use std::io::{self, BufReader, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use chrono::NaiveDate;
use clap::{Parser, Subcommand, ValueEnum};
use ventana::cli::{self, CliError};
use ventana::domain::Channel;
use ventana::rules::compile::parse_instant;

#[derive(Parser)]
#[command(name = "ventana", version, about = "Compliance-aware contact scheduling")]
struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
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
    match run(Args::parse()) {
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

fn run(args: Args) -> Result<ExitCode, CliError> {
    match args.command {
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
