//! Jurisdictions: the files in force for the tenant (versions and hashes),
//! each rule with its citation and basis, each file's coverage horizon and
//! pending decisions, this year's holidays, and the week picture the rules
//! work draws (`officer::picture`, served as it is).

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::response::{Html, IntoResponse, Response};
use chrono::{Datelike, NaiveDate};
use maud::{Markup, html};
use serde::Deserialize;

use super::pages::layout;
use super::session::Session;
use super::{Console, ConsoleError, ConsoleResult};
use crate::officer::picture;
use crate::officer::summary::rule_lines;
use crate::rules::coverage::{DEFAULT_LOOKAHEAD_DAYS, coverage, describe_pending};
use crate::rules::{Jurisdiction, RuleBook};

/// Whether `tenant` may see `file`: every country and subdivision file, and
/// its own policies (never another tenant's).
fn visible(file: &Jurisdiction, tenant: &str) -> bool {
    file.tenant.as_deref().is_none_or(|owner| owner == tenant)
}

/// A rules file's name without the server's directories (which are no
/// business of the console's readers).
fn file_name(path: &str) -> &str {
    std::path::Path::new(path).file_name().and_then(|name| name.to_str()).unwrap_or(path)
}

/// The codes an intent of `tenant` may name, sorted.
pub fn visible_codes(book: &RuleBook, tenant: &str) -> Vec<String> {
    let mut codes: Vec<String> =
        book.jurisdictions().iter().filter(|j| j.tenant.is_none()).map(|j| j.code.to_string()).collect();
    codes.sort();
    codes.dedup();
    codes.retain(|code| book.resolve(tenant, code).is_ok());
    codes
}

pub async fn list(State(console): State<Arc<Console>>, session: Session) -> Markup {
    let book = console.app.rules();
    let today = console.app.clock.now().date_naive();
    let mut files: Vec<&Arc<Jurisdiction>> =
        book.jurisdictions().into_iter().filter(|j| visible(j, &session.tenant)).collect();
    files.sort_by(|a, b| (&a.code, &a.tenant).cmp(&(&b.code, &b.tenant)));
    layout(
        &session,
        "Jurisdictions",
        html! {
            table #jurisdictions {
                tr { th { "Code" } th { "Name" } th { "File" } th { "Hash" } th { "Versions (from)" } th { "Holidays confirmed" } th { "Pending decisions" } }
                @for file in &files {
                    @let cover = coverage(file, today, DEFAULT_LOOKAHEAD_DAYS);
                    tr {
                        td { a href={ "/jurisdictions/" (file.code) } { (file.code) } @if let Some(t) = &file.tenant { " (policy of " (t) ")" } }
                        td { (file.name) }
                        td { code { (file_name(&file.file)) } }
                        td { code { (file.hash) } }
                        td { @for v in &file.versions { (v.label) " (" (v.effective_from) ") " } }
                        td { @match &cover.horizon { Some(h) => (h.describe(today)), None => "not stated" } }
                        td { (cover.pending.len()) }
                    }
                }
            }
        },
    )
}

/// The Monday of the week `day` falls in.
fn monday_of(day: NaiveDate) -> NaiveDate {
    day - chrono::Duration::days(i64::from(day.weekday().num_days_from_monday()))
}

pub async fn detail(
    State(console): State<Arc<Console>>,
    session: Session,
    Path(code): Path<String>,
) -> ConsoleResult<Markup> {
    let book = console.app.rules();
    let resolved = book
        .resolve(&session.tenant, &code)
        .map_err(|e| ConsoleError::NotFound(format!("{e} for tenant {}", session.tenant)))?;
    let today = console.app.clock.now().date_naive();
    let holidays = crate::officer::calendar_holidays(&book, &code, today.year()).unwrap_or_default();
    let body = html! {
        p {
            a #week href={ "/jurisdictions/" (code) "/week?from=" (monday_of(today)) } { "Week picture from this Monday" }
            " (the hours a contact may be made, per channel, the month calendars with holidays, and the rules with their citations)"
        }
        @for layer in &resolved.layers {
            @let cover = coverage(layer, today, DEFAULT_LOOKAHEAD_DAYS);
            section {
                h2 { (layer.name) " — " code { (file_name(&layer.file)) } " @" code { (layer.hash) } }
                p {
                    "Holidays: "
                    @match &cover.horizon { Some(h) => (h.describe(today)), None => "no confirmed horizon stated" }
                }
                @if !cover.pending.is_empty() {
                    p { "Pending decisions:" }
                    ul { @for p in &cover.pending { li { (describe_pending(p)) } } }
                }
                @match layer.version_on(today) {
                    None => p .bad { "No version of this file is in force today." },
                    Some(version) => {
                        p { "Version in force: " strong { (version.label) } " (from " (version.effective_from) ")" }
                        table .rules {
                            tr { th { "Rule" } th { "Kind" } th { "Says" } th { "Citation" } th { "Basis" } }
                            @for line in rule_lines(layer, version) {
                                tr { td { code { (line.id) } } td { (format!("{:?}", line.kind)) } td { (line.says) } td { (line.citation) } td { (line.basis) } }
                            }
                        }
                    }
                }
            }
        }
        h2 { "Holidays in " (today.year()) }
        table #holidays {
            tr { th { "Date" } th { "Holiday" } th { "Rule" } th { "Note" } }
            @for day in &holidays {
                tr {
                    td { (day["date"].as_str().unwrap_or_default()) }
                    td { (day["name"].as_str().unwrap_or_default()) }
                    td { code { (day["rule"].as_str().unwrap_or_default()) } }
                    td {
                        @if day["regional"] == true { "regional " }
                        @if day["provisional"] == true { "provisional (pending under " (day["pending_under"].as_str().unwrap_or_default()) ")" }
                    }
                }
            }
        }
    };
    Ok(layout(&session, &format!("{code}: rules in force"), body))
}

#[derive(Deserialize)]
pub struct WeekQuery {
    from: Option<NaiveDate>,
}

/// The week picture of `officer::picture`, the same page `ventana rules
/// calendar CODE --windows --format html` writes, for the tenant's rules.
pub async fn week(
    State(console): State<Arc<Console>>,
    session: Session,
    Path(code): Path<String>,
    Query(query): Query<WeekQuery>,
) -> ConsoleResult<Response> {
    let book = console.app.rules();
    book.resolve(&session.tenant, &code)
        .map_err(|e| ConsoleError::NotFound(format!("{e} for tenant {}", session.tenant)))?;
    let from = query.from.unwrap_or_else(|| monday_of(console.app.clock.now().date_naive()));
    let week = picture::Week::build(&book, &session.tenant, &code, from, 7, None)
        .map_err(|e| ConsoleError::BadRequest(e.to_string()))?;
    Ok(Html(picture::page(&week)).into_response())
}
