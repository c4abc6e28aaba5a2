//! Audit: the tenant's chain verified on request (last sequence, when, any
//! break), and the export with the CLI's filters and formats, streamed as a
//! download: a task reads the export cursor page by page and hands encoded
//! chunks to the response through a short channel, so memory stays flat
//! however many rows there are.

use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use maud::{Markup, html};
use serde::Deserialize;

use super::pages::{layout, utc};
use super::session::Session;
use super::{Console, ConsoleError, ConsoleResult};
use crate::app::App;
use crate::app::audit::{self as audit_ops, ExportCursor, ExportFilter};
use crate::domain::Channel;

pub async fn status(State(console): State<Arc<Console>>, session: Session) -> ConsoleResult<Markup> {
    let store = &console.app.store;
    let reports = audit_ops::verify(store, Some(&session.tenant), None).await?;
    let head = store.audit_head(&session.tenant).await?;
    let now = console.app.clock.now();
    let today = now.date_naive();
    let body = html! {
        section #chain {
            @match (&head, reports.first()) {
                (None, _) | (_, None) => p { "No audit event was ever recorded for this tenant." },
                (Some((last, _)), Some(report)) => {
                    @match &report.broken {
                        None => p .ok #verified { "Verified: " (report.rows) " events, up to sequence " (last) ", at " (utc(now)) "." },
                        Some(b) => p .bad #verified { "BROKEN at sequence " (b.seq) ": " (b.reason) " (checked at " (utc(now)) ")." },
                    }
                    @if let Some(note) = &report.checkpoint { p { "The chain " (note) "." } }
                }
            }
        }
        h2 { "Export" }
        p { "The same rows as " code { "ventana audit export" } ", verified on the way; a broken chain ends the download with an error." }
        form method="get" action="/audit/export" {
            label { "From (day YYYY-MM-DD, UTC, or RFC 3339 instant) " input name="from" value=(today - chrono::Duration::days(30)) required; }
            label { "To (day, inclusive, or instant, exclusive) " input name="to" value=(today) required; }
            label { "Debtor id (optional) " input name="debtor"; }
            label { "Jurisdiction (optional) " input name="jurisdiction"; }
            label { "Channel (optional) " input name="channel"; }
            label { "Format "
                select name="format" { option value="csv" { "CSV" } option value="jsonl" { "JSON lines" } }
            }
            button type="submit" { "Download" }
        }
    };
    Ok(layout(&session, "Audit", body))
}

#[derive(Deserialize)]
pub struct ExportQuery {
    from: String,
    to: String,
    #[serde(default)]
    debtor: String,
    #[serde(default)]
    jurisdiction: String,
    #[serde(default)]
    channel: String,
    #[serde(default)]
    format: String,
}

#[derive(Clone, Copy)]
enum Format {
    Csv,
    Jsonl,
}

fn optional(text: &str) -> Option<String> {
    let text = text.trim();
    (!text.is_empty()).then(|| text.to_string())
}

pub async fn export(
    State(console): State<Arc<Console>>,
    session: Session,
    Query(query): Query<ExportQuery>,
) -> ConsoleResult<Response> {
    let bad = ConsoleError::BadRequest;
    let format = match query.format.as_str() {
        "" | "csv" => Format::Csv,
        "jsonl" => Format::Jsonl,
        other => return Err(bad(format!("format: {other:?} is not csv or jsonl"))),
    };
    let filter = ExportFilter {
        tenant: session.tenant.clone(),
        from: audit_ops::day_or_instant(query.from.trim(), false).map_err(|e| bad(format!("from: {e}")))?,
        to: audit_ops::day_or_instant(query.to.trim(), true).map_err(|e| bad(format!("to: {e}")))?,
        debtor_id: optional(&query.debtor),
        jurisdiction: optional(&query.jurisdiction),
        channel: optional(&query.channel)
            .map(|c| c.parse::<Channel>())
            .transpose()
            .map_err(|e| bad(format!("channel: {e}")))?,
    };
    if console.app.store.audit_head(&session.tenant).await?.is_none() {
        return Err(ConsoleError::NotFound("no audit event was ever recorded for this tenant".into()));
    }
    // Refuse a bad range before the download starts, while a page can still say why.
    ExportCursor::open(&console.app.store, filter.clone(), None).await?;
    let (sender, receiver) = tokio::sync::mpsc::channel::<std::io::Result<Bytes>>(4);
    tokio::spawn(stream_export(console.app.clone(), filter, format, sender));
    let (kind, name) = match format {
        Format::Csv => ("text/csv; charset=utf-8", "audit.csv"),
        Format::Jsonl => ("application/x-ndjson", "audit.jsonl"),
    };
    let disposition = format!("attachment; filename=\"{}-{name}\"", session.tenant);
    Ok((
        [(header::CONTENT_TYPE, kind.to_string()), (header::CONTENT_DISPOSITION, disposition)],
        Body::from_stream(tokio_stream::wrappers::ReceiverStream::new(receiver)),
    )
        .into_response())
}

/// Reads the export and sends it encoded, one chunk per page; an error (or a
/// broken chain) is sent as the stream's error, which cuts the download short.
async fn stream_export(
    app: Arc<App>,
    filter: ExportFilter,
    format: Format,
    sender: tokio::sync::mpsc::Sender<std::io::Result<Bytes>>,
) {
    let failed = |message: String| std::io::Error::other(message);
    let result = async {
        let mut cursor = ExportCursor::open(&app.store, filter, None).await.map_err(|e| failed(e.to_string()))?;
        if let Format::Csv = format {
            let mut header = csv::Writer::from_writer(Vec::new());
            header.write_record(audit_ops::CSV_COLUMNS).map_err(|e| failed(e.to_string()))?;
            let bytes = header.into_inner().map_err(|e| failed(e.to_string()))?;
            if sender.send(Ok(Bytes::from(bytes))).await.is_err() {
                return Ok(());
            }
        }
        while let Some(rows) = cursor.next_page().await.map_err(|e| failed(e.to_string()))? {
            let mut chunk = Vec::new();
            match format {
                Format::Csv => {
                    let mut w = csv::Writer::from_writer(&mut chunk);
                    for row in &rows {
                        w.write_record(audit_ops::csv_record(row).map_err(failed)?)
                            .map_err(|e| failed(e.to_string()))?;
                    }
                    w.flush()?;
                }
                Format::Jsonl => {
                    for row in &rows {
                        serde_json::to_writer(&mut chunk, &audit_ops::json_record(row).map_err(failed)?)?;
                        chunk.push(b'\n');
                    }
                }
            }
            if let Some(b) = cursor.broken() {
                return Err(failed(format!("the chain is broken at sequence {}: {}", b.seq, b.reason)));
            }
            // The browser went away: stop reading.
            if sender.send(Ok(Bytes::from(chunk))).await.is_err() {
                return Ok(());
            }
        }
        if let Some(b) = cursor.broken() {
            return Err(failed(format!("the chain is broken at sequence {}: {}", b.seq, b.reason)));
        }
        Ok(())
    }
    .await;
    if let Err(e) = result {
        tracing::warn!(error = %e, "console: export stopped");
        let _ = sender.send(Err(e)).await;
    }
}
