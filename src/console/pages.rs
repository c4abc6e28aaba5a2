//! The layout every page shares, sign-in and sign-out, the home page, the
//! explain form and the queue.

use std::sync::Arc;

use axum::extract::{Form, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use chrono::{DateTime, SecondsFormat, Utc};
use maud::{DOCTYPE, Markup, html};
use serde::Deserialize;
use serde_json::{Map, Value};

use super::session::{
    KeyRefused, SESSION_COOKIE, SESSION_SECONDS, SIGNIN_COOKIE, Session, admit, constant_time_eq, cookie, set_cookie,
};
use super::{Console, ConsoleError, ConsoleResult};
use crate::domain::{Channel, Party, Stage};

const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:0;color:#222}\
    header{background:#1d3557;color:#fff;padding:.5rem 1rem;display:flex;gap:1rem;align-items:center;flex-wrap:wrap}\
    header a{color:#fff}header code{color:#222}header form{margin-left:auto}main{padding:1rem}\
    table{border-collapse:collapse;margin:.5rem 0}td,th{border:1px solid #ccc;padding:.2rem .4rem;text-align:left;vertical-align:top}\
    .ok{color:#1b8a3a}.bad{color:#b00020}label{display:block;margin:.3rem 0}code{background:#f3f3f3;word-break:break-all}td{max-width:36rem}";

/// The `<head>` every page shares: its title and the console's style.
fn head(title: &str) -> Markup {
    html! {
        head {
            meta charset="utf-8";
            title { (title) " · Ventana console" }
            style { (maud::PreEscaped(STYLE)) }
        }
    }
}

/// A page of the console: the navigation, the tenant, sign-out, then `body`.
pub fn layout(session: &Session, title: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            (head(title))
            body {
                header {
                    strong { "Ventana" }
                    a href="/jurisdictions" { "Jurisdictions" }
                    a href="/explain" { "Explain" }
                    a href="/timeline" { "Debtor timeline" }
                    a href="/audit" { "Audit" }
                    a href="/queue" { "Queue" }
                    span { "tenant " strong #tenant { (session.tenant) } " · key " code { (session.key_prefix) "…" } }
                    form method="post" action="/signout" {
                        input type="hidden" name="csrf" value=(session.csrf);
                        button type="submit" { "Sign out" }
                    }
                }
                main {
                    h1 { (title) }
                    (body)
                }
            }
        }
    }
}

/// A page without a session: sign-in and errors.
fn bare(title: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            (head(title))
            body { main { h1 { (title) } (body) } }
        }
    }
}

pub fn error_page(status: StatusCode, message: &str) -> Markup {
    bare(
        status.canonical_reason().unwrap_or("Error"),
        html! { p .bad #error { (message) } p { a href="/" { "Back to the console" } } },
    )
}

/// An instant as the console prints it (UTC, to the second).
pub fn utc(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// Unix milliseconds as the console prints them.
pub fn utc_ms(ms: i64) -> String {
    DateTime::from_timestamp_millis(ms).map(utc).unwrap_or_else(|| format!("{ms} ms"))
}

pub async fn home(session: Session) -> Markup {
    layout(
        &session,
        "Console",
        html! {
            p { "Read-only: nothing here changes the service." }
            ul {
                li { a href="/jurisdictions" { "Jurisdictions" } ": the rules in force, their coverage, week pictures and holidays." }
                li { a href="/explain" { "Explain" } ": what would be decided for an intent at an instant, and why." }
                li { a href="/timeline" { "Debtor timeline" } ": every intent and audit event of one debtor." }
                li { a href="/audit" { "Audit" } ": the chain's verification and the export." }
                li { a href="/queue" { "Queue" } ": what is deferred, due, released and leased, and the next wake-ups." }
            }
        },
    )
}

fn signin_form(nonce: &str, problem: Option<&str>) -> Markup {
    bare(
        "Sign in",
        html! {
            @if let Some(problem) = problem { p .bad #error { (problem) } }
            form method="post" action="/signin" {
                input type="hidden" name="csrf" value=(nonce);
                label { "API key (role auditor or admin) " input type="password" name="key" autocomplete="off" required; }
                button type="submit" { "Sign in" }
            }
        },
    )
}

/// The sign-in page, with a fresh double-submit token in a cookie and the form.
fn signin_response(console: &Console, status: StatusCode, problem: Option<&str>) -> Response {
    let nonce = uuid::Uuid::new_v4().simple().to_string();
    let cookie = set_cookie(SIGNIN_COOKIE, &nonce, "/signin", 3600, console.secure);
    (status, [(header::SET_COOKIE, cookie)], signin_form(&nonce, problem)).into_response()
}

pub async fn signin_page(State(console): State<Arc<Console>>) -> Response {
    signin_response(&console, StatusCode::OK, None)
}

#[derive(Deserialize)]
pub struct SigninForm {
    key: String,
    csrf: String,
}

pub async fn signin(
    State(console): State<Arc<Console>>,
    headers: axum::http::HeaderMap,
    Form(form): Form<SigninForm>,
) -> ConsoleResult<Response> {
    let expected = cookie(&headers, SIGNIN_COOKIE).unwrap_or_default();
    if expected.is_empty() || !constant_time_eq(expected.as_bytes(), form.csrf.as_bytes()) {
        return Ok(signin_response(
            &console,
            StatusCode::FORBIDDEN,
            Some("the sign-in form expired or did not come from this console: try again"),
        ));
    }
    let hash = crate::api::auth::key_hash(form.key.trim());
    let row = console.keys.find(&console.app.store, hash.clone()).await?;
    match admit(&console, row) {
        Ok(row) => {
            let expires = console.app.clock.now().timestamp_millis() + SESSION_SECONDS * 1000;
            let value = console.signer.seal(&row.tenant, &hash, expires);
            tracing::info!(tenant = %row.tenant, key = %row.key_prefix, "console: signed in");
            let session = set_cookie(SESSION_COOKIE, &value, "/", SESSION_SECONDS, console.secure);
            let used = set_cookie(SIGNIN_COOKIE, "", "/signin", 0, console.secure);
            // Two cookies: `append`, where an array of headers would keep only the last.
            let cookies = axum::response::AppendHeaders([(header::SET_COOKIE, session), (header::SET_COOKIE, used)]);
            Ok((cookies, Redirect::to("/")).into_response())
        }
        Err(KeyRefused::Refused) => Ok(signin_response(
            &console,
            StatusCode::UNAUTHORIZED,
            Some("this key is unknown, revoked or expired, or has neither the auditor nor the admin role"),
        )),
        Err(KeyRefused::RateLimited(prefix)) => Err(ConsoleError::RateLimited(prefix)),
    }
}

#[derive(Deserialize)]
pub struct CsrfForm {
    csrf: String,
}

pub async fn signout(
    State(console): State<Arc<Console>>,
    session: Session,
    Form(form): Form<CsrfForm>,
) -> ConsoleResult<Response> {
    session.check_csrf(&form.csrf)?;
    let clear = set_cookie(SESSION_COOKIE, "", "/", 0, console.secure);
    Ok(([(header::SET_COOKIE, clear)], Redirect::to("/signin")).into_response())
}

/// The explain form's fields; all text, validated as an intent.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct ExplainForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    debtor_id: String,
    #[serde(default)]
    debt_id: String,
    #[serde(default)]
    channel: String,
    #[serde(default)]
    party: String,
    #[serde(default)]
    stage: String,
    #[serde(default)]
    jurisdiction: String,
    #[serde(default)]
    time_zones: String,
    #[serde(default)]
    not_before: String,
    #[serde(default)]
    expires_at: String,
    #[serde(default)]
    at: String,
}

fn select(name: &str, words: &[&str], chosen: &str) -> Markup {
    html! {
        select name=(name) {
            @for word in words {
                option value=(word) selected[*word == chosen] { (word) }
            }
        }
    }
}

fn explain_fields(console: &Console, session: &Session, form: &ExplainForm) -> Markup {
    let channels: Vec<&str> = Channel::ALL.iter().map(|c| c.as_str()).collect();
    let parties: Vec<&str> = Party::ALL.iter().map(|c| c.as_str()).collect();
    let stages: Vec<&str> = Stage::ALL.iter().map(|c| c.as_str()).collect();
    let codes = super::rules::visible_codes(&console.app.rules(), &session.tenant);
    let codes: Vec<&str> = codes.iter().map(String::as_str).collect();
    let at = if form.at.is_empty() { utc(console.app.clock.now()) } else { form.at.clone() };
    html! {
        form method="post" action="/explain" {
            input type="hidden" name="csrf" value=(session.csrf);
            label { "Debtor id " input name="debtor_id" value=(form.debtor_id) required; }
            label { "Debt id (optional) " input name="debt_id" value=(form.debt_id); }
            label { "Channel " (select("channel", &channels, &form.channel)) }
            label { "Party " (select("party", &parties, &form.party)) }
            label { "Stage " (select("stage", &stages, &form.stage)) }
            label { "Jurisdiction " (select("jurisdiction", &codes, &form.jurisdiction)) }
            label { "Time zones (optional, space-separated IANA names) " input name="time_zones" value=(form.time_zones); }
            label { "Not before (optional, RFC 3339) " input name="not_before" value=(form.not_before); }
            label { "Expires at (optional, RFC 3339) " input name="expires_at" value=(form.expires_at); }
            label { "At (RFC 3339) " input name="at" value=(at) required; }
            button type="submit" { "Explain" }
        }
    }
}

pub async fn explain_form(State(console): State<Arc<Console>>, session: Session) -> Markup {
    let form = ExplainForm::default();
    layout(&session, "Explain", explain_fields(&console, &session, &form))
}

/// The form as the intent JSON `ventana explain` reads.
fn intent_json(tenant: &str, form: &ExplainForm) -> Value {
    let mut object = Map::new();
    let mut put = |field: &str, value: &str| {
        if !value.trim().is_empty() {
            object.insert(field.into(), Value::String(value.trim().to_string()));
        }
    };
    put("tenant", tenant);
    put("intent_id", "console-what-if");
    put("debtor_id", &form.debtor_id);
    put("debt_id", &form.debt_id);
    put("channel", &form.channel);
    put("party", &form.party);
    put("stage", &form.stage);
    put("jurisdiction", &form.jurisdiction);
    put("not_before", &form.not_before);
    put("expires_at", &form.expires_at);
    let zones: Vec<Value> = form.time_zones.split_whitespace().map(|z| Value::String(z.to_string())).collect();
    if !zones.is_empty() {
        object.insert("time_zones".into(), Value::Array(zones));
    }
    Value::Object(object)
}

pub async fn explain(
    State(console): State<Arc<Console>>,
    session: Session,
    Form(form): Form<ExplainForm>,
) -> ConsoleResult<Response> {
    session.check_csrf(&form.csrf)?;
    let outcome = run_explain(&console, &session, &form).await;
    let status = if outcome.is_ok() { StatusCode::OK } else { StatusCode::BAD_REQUEST };
    let body = html! {
        @match &outcome {
            Ok(decision) => (decision_view(decision)),
            Err(problem) => p .bad #error { (problem) },
        }
        h2 { "Try another" }
        (explain_fields(&console, &session, &form))
    };
    Ok((status, layout(&session, "Explain", body)).into_response())
}

async fn run_explain(console: &Console, session: &Session, form: &ExplainForm) -> Result<Value, String> {
    let at = crate::rules::compile::parse_instant(form.at.trim()).map_err(|e| format!("at: {e}"))?;
    let crate::intent_json::WhatIf { intent, .. } =
        crate::intent_json::parse_intent(&intent_json(&session.tenant, form))
            .map_err(|e| format!("{}: {}", e.field, e.message))?;
    crate::domain::check_identifier(&intent.debtor_id).map_err(|e| format!("debtor_id: {e}"))?;
    let decision = console.app.explain(&intent, at).await.map_err(|e| e.to_string())?;
    Ok(crate::intent_json::decision_json(&decision, at))
}

/// A decision as `ventana explain` prints it, as a page.
fn decision_view(decision: &Value) -> Markup {
    let text = |v: &Value| v.as_str().map(str::to_string).unwrap_or_default();
    html! {
        section #decision {
            h2 { "Decision: " span #verdict { (text(&decision["decision"])) } }
            @if let Some(code) = decision["code"].as_str() { p { "Code: " code { (code) } } }
            @if let Some(at) = decision["at"].as_str() { p { "May go at: " strong #may-go { (at) } } }
            @if let Some(end) = decision["window_end"].as_str() { p { "Window ends: " (end) } }
            table {
                tr { th { "Rule" } th { "Jurisdiction" } th { "Version" } th { "Citation" } th { "Basis" } th { "Why" } }
                @for reason in decision["reasons"].as_array().into_iter().flatten() {
                    tr {
                        td { (text(&reason["rule"])) }
                        td { (text(&reason["jurisdiction"])) }
                        td { (text(&reason["version"])) }
                        td { (text(&reason["citation"])) }
                        td { (text(&reason["basis"])) }
                        td { (text(&reason["message"])) }
                    }
                }
            }
        }
    }
}

pub async fn queue(State(console): State<Arc<Console>>, session: Session) -> ConsoleResult<Markup> {
    let now = console.app.clock.now();
    let counts = console.app.store.queue_counts(&session.tenant, now.timestamp_millis()).await?;
    let wakeups = console.app.store.next_wakeups(&session.tenant, now.timestamp_millis(), 20).await?;
    Ok(layout(
        &session,
        "Queue",
        html! {
            p { "As of " (utc(now)) "." }
            @if counts.is_empty() { p #empty { "Nothing is deferred, released or leased." } }
            @else {
                table #counts {
                    tr { th { "Jurisdiction" } th { "Channel" } th { "Deferred" } th { "Due now" } th { "Released" } th { "Leased" } }
                    @for c in &counts {
                        tr { td { (c.jurisdiction) } td { (c.channel.as_str()) } td { (c.deferred) } td { (c.due) } td { (c.released) } td { (c.leased) } }
                    }
                }
            }
            h2 { "Next wake-ups" }
            @if wakeups.is_empty() { p { "No deferred contact waits for a later instant." } }
            @else {
                table #wakeups {
                    tr { th { "At (UTC)" } th { "Jurisdiction" } th { "Channel" } th { "Contacts" } }
                    @for w in &wakeups {
                        tr { td { (utc_ms(w.at)) } td { (w.jurisdiction) } td { (w.channel.as_str()) } td { (w.intents) } }
                    }
                }
            }
        },
    ))
}
