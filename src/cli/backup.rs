//! `ventana backup`: a consistent copy of the SQLite database while the
//! service runs, with the rows of each table counted in the copy (the
//! database is read, never created or migrated); and
//! `--count-only`, the same counts for any database, to compare a restored
//! database (SQLite or PostgreSQL) with its backup.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use serde_json::json;

use super::{CliError, Format, Settings, input, print, storage};
use crate::store::{backup_sqlite, count_rows};

#[derive(clap::Args)]
pub struct BackupArgs {
    /// The file to write; it must not exist.
    #[arg(long, required_unless_present = "count_only")]
    out: Option<PathBuf>,
    /// Write nothing: print the rows per table of the configured database.
    #[arg(long, conflicts_with = "out")]
    count_only: bool,
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,
    #[command(flatten)]
    settings: Settings,
}

/// Writes the copy and reports its size, the time it took and its rows per
/// table (or, with `--count-only`, only the database's rows per table).
pub async fn run(args: BackupArgs) -> Result<ExitCode, CliError> {
    let url = args.settings.load()?.database_url;
    let Some(out) = args.out else {
        let counts = count_rows(&url).await.map_err(storage)?;
        return report(args.format, json!({}), "rows:".into(), &counts);
    };
    if !url.starts_with("sqlite:") {
        return Err(input(
            "`ventana backup --out` copies SQLite; back up PostgreSQL with pg_dump or pg_basebackup (README, Operations)",
        ));
    }
    if out.exists() {
        return Err(input(format!("{} exists: a backup never overwrites a file", out.display())));
    }
    let started = Instant::now();
    let counts = backup_sqlite(&url, &out).await.map_err(storage)?;
    let seconds = started.elapsed().as_secs_f64();
    let bytes = std::fs::metadata(&out).map(|m| m.len()).map_err(|e| storage(format!("{}: {e}", out.display())))?;
    let about = json!({"file": out.display().to_string(), "bytes": bytes, "seconds": seconds});
    let headline = format!("backup written to {} ({bytes} bytes in {seconds:.2} s); rows:", out.display());
    report(args.format, about, headline, &counts)
}

/// Prints `about` with the rows per table as JSON, or the headline and one line per table.
fn report(
    format: Format,
    mut about: serde_json::Value,
    headline: String,
    counts: &[(&str, i64)],
) -> Result<ExitCode, CliError> {
    match format {
        Format::Json => {
            about["rows"] = counts.iter().map(|(table, n)| (table.to_string(), json!(n))).collect();
            print(&about)?
        }
        Format::Text => {
            print(&headline)?;
            for (table, n) in counts {
                print(&format!("  {table:<18} {n}"))?;
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
