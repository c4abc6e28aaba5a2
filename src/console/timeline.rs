//! One debtor's timeline: the tenant's intents for that debtor as they
//! stand, then every audit event that names the debtor in chain order
//! (submitted, deferred with why and until when, released, leased,
//! acknowledged, cancelled, preference changes), each with the debtor's
//! local time and the rule versions used. Only the session's tenant is read;
//! the store filters by debtor, so a page costs the debtor's rows, not the chain's.

use std::sync::Arc;

use axum::extract::{Query, State};
use maud::{Markup, html};
use serde::Deserialize;

use super::pages::{layout, utc_ms};
use super::session::Session;
use super::{Console, ConsoleError, ConsoleResult};

/// The most intents and events one page shows.
pub const MAX_ROWS: usize = 2_000;

#[derive(Deserialize)]
pub struct TimelineQuery {
    #[serde(default)]
    debtor: String,
}

pub async fn page(
    State(console): State<Arc<Console>>,
    session: Session,
    Query(query): Query<TimelineQuery>,
) -> ConsoleResult<Markup> {
    let debtor = query.debtor.trim().to_string();
    let search = html! {
        form method="get" action="/timeline" {
            label { "Debtor id " input name="debtor" value=(debtor) required; }
            button type="submit" { "Show" }
        }
    };
    if debtor.is_empty() {
        return Ok(layout(&session, "Debtor timeline", search));
    }
    crate::domain::check_identifier(&debtor).map_err(|e| ConsoleError::BadRequest(format!("debtor: {e}")))?;
    let store = &console.app.store;
    let intents = store.list_intents(&session.tenant, Some(&debtor), None, (i64::MIN, ""), MAX_ROWS as i64).await?;
    // One more than shown, to tell whether there are more.
    let mut events = store.audit_of_debtor(&session.tenant, &debtor, MAX_ROWS as i64 + 1).await?;
    let more = events.len() > MAX_ROWS;
    events.truncate(MAX_ROWS);
    let body = html! {
        (search)
        h2 { "Debtor " span #debtor { (debtor) } }
        p { "The chain these events belong to is verified on the " a href="/audit" { "Audit" } " page." }
        h3 { "Intents" }
        @if intents.is_empty() { p { "No intent of this tenant names this debtor." } }
        @else {
            table #intents {
                tr { th { "Created (UTC)" } th { "Intent" } th { "Channel" } th { "Jurisdiction" } th { "Status" } th { "Next evaluation (UTC)" } th { "Outcome" } }
                @for i in &intents {
                    tr {
                        td { (utc_ms(i.created_at)) }
                        td { code { (i.intent_id) } }
                        td { (i.channel.as_str()) }
                        td { (i.jurisdiction) }
                        td { (i.status.as_str()) }
                        td { @if let Some(at) = i.next_eval_at { (utc_ms(at)) } }
                        td { @if let Some(o) = i.outcome { (o.as_str()) } }
                    }
                }
            }
        }
        h3 { "Audit events" }
        @if events.is_empty() { p { "No audit event names this debtor." } }
        @else {
            table #events {
                tr {
                    th { "Seq" } th { "At (UTC)" } th { "Debtor's local time" } th { "Event" } th { "Intent" } th { "Channel" }
                    th { "Jurisdiction" } th { "Decision" } th { "Why (rule, citation)" } th { "Rule versions" } th { "Outcome" }
                }
                @for row in &events {
                    @let e = &row.event;
                    @let detail = Detail::read(&e.detail);
                    tr {
                        td { (row.seq) }
                        td { (utc_ms(e.at)) }
                        td { (e.local_time.as_deref().unwrap_or_default()) " " (e.time_zone.as_deref().unwrap_or_default()) }
                        td { (e.kind.as_str()) }
                        td { code { (e.intent_id.as_deref().unwrap_or_default()) } }
                        td { @if let Some(c) = e.channel { (c.as_str()) } }
                        td { (e.jurisdiction.as_deref().unwrap_or_default()) }
                        td {
                            (e.decision.as_deref().unwrap_or_default())
                            @if let Some(code) = &e.reason_codes { " " code { (code) } }
                            @if let Some(until) = &detail.until { " until " strong { (until) } }
                        }
                        td {
                            @if detail.reasons.is_empty() { code { (detail.other) } }
                            @else { ul { @for reason in &detail.reasons { li { (reason) } } } }
                        }
                        td { code { (e.rules_version.as_deref().unwrap_or_default()) } }
                        td { @if let Some(o) = e.outcome { (o.as_str()) } }
                    }
                }
            }
            @if more { p { "Only the first " (MAX_ROWS) " events are shown: the export has them all." } }
        }
    };
    Ok(layout(&session, "Debtor timeline", body))
}

/// An event's detail as the timeline shows it: for a decision, until when
/// and each reason with its rule and citation; anything else as it is.
struct Detail {
    until: Option<String>,
    reasons: Vec<String>,
    other: String,
}

impl Detail {
    fn read(detail: &str) -> Detail {
        let value: serde_json::Value = serde_json::from_str(detail).unwrap_or(serde_json::Value::Null);
        let decision = &value["decision"];
        if !decision.is_object() {
            return Detail { until: None, reasons: Vec::new(), other: detail.to_string() };
        }
        let until = (decision["decision"] == "defer").then(|| decision["at"].as_str().map(str::to_string)).flatten();
        let reasons = decision["reasons"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|r| {
                let message = r["message"].as_str().unwrap_or_default();
                match (r["rule"].as_str(), r["citation"].as_str()) {
                    (Some(rule), Some(citation)) => format!("{message} ({rule}, {citation})"),
                    (Some(rule), None) => format!("{message} ({rule})"),
                    _ => message.to_string(),
                }
            })
            .collect();
        Detail { until, reasons, other: String::new() }
    }
}
