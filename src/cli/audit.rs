//! `ventana audit`: verify, export, replay and purge the audit log.

use std::io::{self, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Subcommand, ValueEnum};

use super::{CliError, Settings, day_or_instant, input, open_store, print, runtime, storage, unreadable};
use crate::app::audit as audit_ops;
use crate::clock::Clock;
use crate::domain::Channel;
use crate::store::Store;

#[derive(Subcommand)]
pub enum AuditCommand {
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
pub enum ExportFormat {
    Csv,
    Jsonl,
}

/// Runs one audit command.
pub async fn run(command: AuditCommand) -> Result<ExitCode, CliError> {
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
                    .map(|c| c.parse::<Channel>())
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
            let candidate = rules.as_deref().map(crate::officer::load).transpose()?;
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
    let mut cursor = audit_ops::ExportCursor::open(store, filter, None).await.map_err(storage)?;
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
                w.write_record(audit_ops::csv_record(row).map_err(unreadable)?).map_err(storage)?;
            }
            if let Some(w) = json_out.as_mut() {
                serde_json::to_writer(&mut *w, &audit_ops::json_record(row).map_err(unreadable)?).map_err(storage)?;
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
