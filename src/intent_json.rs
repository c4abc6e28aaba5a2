//! Intents and decisions as JSON, the form the CLI, jurisdiction-file
//! examples and bulk what-if runs use. Every error names the field.

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use serde_json::{Map, Value, json};

use crate::domain::{
    Channel, Consent, ContactEvent, ContactPoint, Designated, Designation, Initiator, Intent, Outcome, Party,
    Preferences, Stage, check_identifier,
};
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
    "contact_point",
    "history",
    "preferences",
];

const EVENT_FIELDS: &[&str] = &["channel", "at", "outcome", "debt_id", "contact_point", "initiator"];

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

/// An intent with what a what-if run decides it against.
pub struct WhatIf {
    pub intent: Intent,
    pub history: Vec<ContactEvent>,
    pub preferences: Preferences,
}

/// Parses an intent object (with its optional `history` and `preferences`).
pub fn parse_intent(value: &Value) -> Result<WhatIf, FieldError> {
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
        contact_point: contact_point(object, "contact_point")?,
    };
    if let Some(point) = &intent.contact_point
        && !point.kind.reachable_by(intent.channel)
    {
        return Err(err(
            "contact_point.kind",
            format!(
                "a {} contact cannot go to a {} (channels that can: {})",
                intent.channel,
                point.kind,
                channels(point.kind.channels())
            ),
        ));
    }
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
    let preferences = match object.get("preferences") {
        None | Some(Value::Null) => Preferences::default(),
        Some(value) => parse_preferences(value)?,
    };
    Ok(WhatIf { intent, history, preferences })
}

fn parse_event(value: &Value, path: &str) -> Result<ContactEvent, FieldError> {
    let Value::Object(object) = value else {
        return Err(err(path, "must be an object {\"channel\", \"at\", \"outcome\"}"));
    };
    let field = |name: &str| format!("{path}.{name}");
    if let Some(unknown) = object.keys().find(|k| !EVENT_FIELDS.contains(&k.as_str())) {
        return Err(err(&field(unknown), format!("is not a history field (fields: {})", EVENT_FIELDS.join(", "))));
    }
    let wrap = |e: FieldError| err(&field(&e.field), e.message);
    let event = ContactEvent {
        channel: word::<Channel>(object, "channel").map_err(wrap)?,
        at: instant(object, "at").map_err(wrap)?.ok_or_else(|| err(&field("at"), "is required"))?,
        outcome: word::<Outcome>(object, "outcome").map_err(wrap)?,
        debt_id: string(object, "debt_id", false).map_err(wrap)?.map(str::to_string),
        contact_point: contact_point(object, "contact_point").map_err(wrap)?,
        initiator: match object.get("initiator") {
            None | Some(Value::Null) => Initiator::Collector,
            Some(_) => word::<Initiator>(object, "initiator").map_err(wrap)?,
        },
    };
    match &event.contact_point {
        Some(point) if !point.kind.reachable_by(event.channel) => {
            Err(err(&field("contact_point.kind"), format!("a {} contact cannot go to a {}", event.channel, point.kind)))
        }
        _ => Ok(event),
    }
}

fn channels(channels: &[Channel]) -> String {
    channels.iter().map(|c| c.as_str()).collect::<Vec<_>>().join(", ")
}

/// An optional `{"kind", "id"}` object.
fn contact_point(object: &Map<String, Value>, field: &str) -> Result<Option<ContactPoint>, FieldError> {
    let value = match object.get(field) {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Object(value)) => value,
        Some(_) => return Err(err(field, "must be an object {\"kind\", \"id\"}")),
    };
    if let Some(unknown) = value.keys().find(|k| !["kind", "id"].contains(&k.as_str())) {
        return Err(err(&format!("{field}.{unknown}"), "is not a contact point field (fields: kind, id)"));
    }
    let wrap = |e: FieldError| err(&format!("{field}.{}", e.field), e.message);
    Ok(Some(ContactPoint {
        kind: word(value, "kind").map_err(wrap)?,
        id: string(value, "id", false).map_err(wrap)?.map(str::to_string),
    }))
}

const PREFERENCE_FIELDS: &[&str] = &["opted_out_all", "opted_out", "chosen", "wrong_party", "designations", "consents"];

/// A debtor's preferences in force, as examples and what-if runs give them:
/// `{"opted_out": [...], "designations": [{"id", "kind", ...}], "consents":
/// [{"id", "channels", "from", "until"}]}`.
fn parse_preferences(value: &Value) -> Result<Preferences, FieldError> {
    let Value::Object(object) = value else {
        return Err(err("preferences", "must be a JSON object"));
    };
    if let Some(unknown) = object.keys().find(|k| !PREFERENCE_FIELDS.contains(&k.as_str())) {
        let message = format!("is not a preferences field (fields: {})", PREFERENCE_FIELDS.join(", "));
        return Err(err(&format!("preferences.{unknown}"), message));
    }
    let list = |field: &str| -> Result<Vec<Value>, FieldError> {
        match object.get(field) {
            None | Some(Value::Null) => Ok(Vec::new()),
            Some(Value::Array(items)) => Ok(items.clone()),
            Some(_) => Err(err(&format!("preferences.{field}"), "must be a list")),
        }
    };
    let channel_list = |field: &str| -> Result<Vec<Channel>, FieldError> {
        serde_json::from_value(Value::Array(list(field)?))
            .map_err(|e| err(&format!("preferences.{field}"), e.to_string()))
    };
    let designations = list("designations")?
        .iter()
        .enumerate()
        .map(|(i, item)| {
            let field = format!("preferences.designations[{i}]");
            let mut item = item.as_object().cloned().ok_or_else(|| err(&field, "must be an object"))?;
            let id = match item.remove("id") {
                Some(Value::String(id)) => {
                    check_identifier(&id).map(|()| id).map_err(|e| err(&format!("{field}.id"), e))?
                }
                _ => return Err(err(&format!("{field}.id"), "is required")),
            };
            let designation: Designation =
                serde_json::from_value(Value::Object(item)).map_err(|e| err(&field, e.to_string()))?;
            designation.check().map_err(|e| err(&field, e))?;
            Ok(Designated::new(id, designation, "what-if".into(), None))
        })
        .collect::<Result<_, _>>()?;
    let consents = list("consents")?
        .iter()
        .enumerate()
        .map(|(i, item)| {
            let field = format!("preferences.consents[{i}]");
            let item = item.as_object().ok_or_else(|| err(&field, "must be an object"))?;
            if let Some(unknown) =
                item.keys().find(|k| !["id", "channels", "written", "from", "until"].contains(&k.as_str()))
            {
                return Err(err(
                    &format!("{field}.{unknown}"),
                    "is not a consent field (fields: id, channels, written, from, until)",
                ));
            }
            let wrap = |e: FieldError| err(&format!("{field}.{}", e.field), e.message);
            let channels: Vec<Channel> =
                serde_json::from_value(item.get("channels").cloned().unwrap_or(Value::Array(Vec::new())))
                    .map_err(|e| err(&format!("{field}.channels"), e.to_string()))?;
            if channels.is_empty() {
                return Err(err(&format!("{field}.channels"), "name the channels consented to (at least one)"));
            }
            let written = match item.get("written") {
                None | Some(Value::Null) => false,
                Some(Value::Bool(written)) => *written,
                Some(_) => return Err(err(&format!("{field}.written"), "must be true or false")),
            };
            let from =
                instant(item, "from").map_err(wrap)?.ok_or_else(|| err(&format!("{field}.from"), "is required"))?;
            let until = instant(item, "until").map_err(wrap)?;
            if until.is_some_and(|u| u <= from) {
                return Err(err(&format!("{field}.until"), "is not after from"));
            }
            Ok(Consent {
                id: required(item, "id").map_err(wrap)?.to_string(),
                channels,
                written,
                from,
                until,
                revoked_at: None,
                source: "what-if".into(),
            })
        })
        .collect::<Result<_, _>>()?;
    Ok(Preferences {
        opted_out_all: match object.get("opted_out_all") {
            None | Some(Value::Null) => false,
            Some(Value::Bool(value)) => *value,
            Some(_) => return Err(err("preferences.opted_out_all", "must be true or false")),
        },
        opted_out: channel_list("opted_out")?,
        chosen: channel_list("chosen")?,
        wrong_party: channel_list("wrong_party")?,
        designations,
        consents,
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
    if let Some(point) = &intent.contact_point {
        object.insert("contact_point".into(), json!(point));
    }
    Value::Object(object)
}
