//! Intents and decisions as JSON, the form the CLI, jurisdiction-file
//! examples and bulk what-if runs use. Every error names the field.

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use serde_json::{Map, Value, json};

use crate::domain::{Channel, ContactEvent, Intent, Outcome, Party, Stage, check_identifier};
use crate::engine::{Decision, Verdict};
use crate::rules::compile::parse_instant;

/// An input error that names the offending field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

fn err(field: &str, message: impl Into<String>) -> FieldError {
    FieldError { field: field.to_string(), message: message.into() }
}

/// The most history events accepted with one intent.
pub const MAX_HISTORY: usize = 10_000;

const INTENT_FIELDS: &[&str] = &[
    "tenant",
    "intent_id",
    "debtor_id",
    "debt_id",
    "channel",
    "party",
    "stage",
    "jurisdiction",
    "time_zones",
    "not_before",
    "expires_at",
    "history",
];

fn string<'a>(object: &'a Map<String, Value>, field: &str, required: bool) -> Result<Option<&'a str>, FieldError> {
    match object.get(field) {
        None | Some(Value::Null) if !required => Ok(None),
        None | Some(Value::Null) => Err(err(field, "is required")),
        Some(Value::String(s)) => match check_identifier(s) {
            Ok(()) => Ok(Some(s)),
            Err(e) => Err(err(field, e)),
        },
        Some(_) => Err(err(field, "must be a string")),
    }
}

fn required<'a>(object: &'a Map<String, Value>, field: &str) -> Result<&'a str, FieldError> {
    string(object, field, true).map(|s| s.unwrap_or_default())
}

fn word<T: std::str::FromStr<Err = String>>(object: &Map<String, Value>, field: &str) -> Result<T, FieldError> {
    required(object, field)?.parse().map_err(|e: String| err(field, e))
}

fn instant(object: &Map<String, Value>, field: &str) -> Result<Option<DateTime<Utc>>, FieldError> {
    string(object, field, false)?.map(|s| parse_instant(s).map_err(|e| err(field, e))).transpose()
}

/// Parses an intent object (with its optional `history`).
pub fn parse_intent(value: &Value) -> Result<(Intent, Vec<ContactEvent>), FieldError> {
    let Value::Object(object) = value else {
        return Err(err("intent", "must be a JSON object"));
    };
    if let Some(unknown) = object.keys().find(|k| !INTENT_FIELDS.contains(&k.as_str())) {
        return Err(err(unknown, format!("is not an intent field (fields: {})", INTENT_FIELDS.join(", "))));
    }
    let time_zones = match object.get("time_zones") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) if items.len() <= 16 => items
            .iter()
            .enumerate()
            .map(|(i, item)| {
                let field = format!("time_zones[{i}]");
                let name = item.as_str().ok_or_else(|| err(&field, "must be a string"))?;
                name.parse::<Tz>()
                    .map_err(|_| err(&field, format!("{name:?} is not an IANA time zone name (e.g. \"America/Lima\")")))
            })
            .collect::<Result<_, _>>()?,
        Some(_) => {
            return Err(err("time_zones", "must be a list of at most 16 IANA time zone names"));
        }
    };
    let intent = Intent {
        tenant: required(object, "tenant")?.to_string(),
        intent_id: required(object, "intent_id")?.to_string(),
        debtor_id: required(object, "debtor_id")?.to_string(),
        debt_id: string(object, "debt_id", false)?.map(str::to_string),
        channel: word::<Channel>(object, "channel")?,
        party: word::<Party>(object, "party")?,
        stage: word::<Stage>(object, "stage")?,
        jurisdiction: required(object, "jurisdiction")?.to_string(),
        time_zones,
        not_before: instant(object, "not_before")?,
        expires_at: instant(object, "expires_at")?,
    };
    let history = match object.get("history") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) if items.len() <= MAX_HISTORY => items
            .iter()
            .enumerate()
            .map(|(i, item)| parse_event(item, &format!("history[{i}]")))
            .collect::<Result<_, _>>()?,
        Some(_) => {
            return Err(err("history", format!("must be a list of at most {MAX_HISTORY} events")));
        }
    };
    Ok((intent, history))
}

fn parse_event(value: &Value, path: &str) -> Result<ContactEvent, FieldError> {
    let Value::Object(object) = value else {
        return Err(err(path, "must be an object {\"channel\", \"at\", \"outcome\"}"));
    };
    let field = |name: &str| format!("{path}.{name}");
    if let Some(unknown) = object.keys().find(|k| !["channel", "at", "outcome", "debt_id"].contains(&k.as_str())) {
        return Err(err(&field(unknown), "is not a history field (fields: channel, at, outcome, debt_id)"));
    }
    let wrap = |e: FieldError| err(&field(&e.field), e.message);
    Ok(ContactEvent {
        channel: word::<Channel>(object, "channel").map_err(wrap)?,
        at: instant(object, "at").map_err(wrap)?.ok_or_else(|| err(&field("at"), "is required"))?,
        outcome: word::<Outcome>(object, "outcome").map_err(wrap)?,
        debt_id: string(object, "debt_id", false).map_err(wrap)?.map(str::to_string),
    })
}

/// A decision in the CLI's JSON form.
pub fn decision_json(decision: &Decision, now: DateTime<Utc>) -> Value {
    let (name, code) = match decision.verdict {
        Verdict::Release => ("release", Value::Null),
        Verdict::Defer { .. } => ("defer", Value::Null),
        Verdict::Reject { code } => ("reject", Value::String(code.as_str().into())),
    };
    let reasons: Vec<Value> = decision
        .reasons
        .iter()
        .map(|r| match &r.rule {
            Some(m) => json!({
                "rule": m.id.as_ref(), "jurisdiction": m.jurisdiction.as_ref(), "version": m.version.as_ref(),
                "citation": m.citation.as_ref(), "basis": m.basis.as_str(), "message": r.message(),
            }),
            None => json!({"rule": null, "jurisdiction": null, "version": null, "citation": null, "basis": null, "message": r.message()}),
        })
        .collect();
    // Fractions of a second only when there are some (a release at `now`).
    let at = decision.at(now).map(|t| Value::String(t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)));
    json!({
        "decision": name,
        "at": at.unwrap_or(Value::Null),
        "code": code,
        "window_end": decision.window_end.map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)),
        "reasons": reasons,
    })
}

fn instant_text(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
}

/// An intent as JSON, the inverse of [`parse_intent`] (without history).
pub fn intent_to_json(intent: &Intent) -> Value {
    let mut object = Map::new();
    object.insert("tenant".into(), json!(intent.tenant));
    object.insert("intent_id".into(), json!(intent.intent_id));
    object.insert("debtor_id".into(), json!(intent.debtor_id));
    if let Some(debt) = &intent.debt_id {
        object.insert("debt_id".into(), json!(debt));
    }
    object.insert("channel".into(), json!(intent.channel.as_str()));
    object.insert("party".into(), json!(intent.party.as_str()));
    object.insert("stage".into(), json!(intent.stage.as_str()));
    object.insert("jurisdiction".into(), json!(intent.jurisdiction));
    if !intent.time_zones.is_empty() {
        object.insert("time_zones".into(), json!(intent.time_zones.iter().map(|z| z.name()).collect::<Vec<_>>()));
    }
    if let Some(t) = intent.not_before {
        object.insert("not_before".into(), json!(instant_text(t)));
    }
    if let Some(t) = intent.expires_at {
        object.insert("expires_at".into(), json!(instant_text(t)));
    }
    Value::Object(object)
}
