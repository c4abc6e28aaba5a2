//! Conversions between the generated protobuf types and the domain, with
//! request validation: every error names the field. Generated types never
//! leave the `api` module.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use serde_json::Value;

use super::error::{ApiError, ApiResult, invalid};
use super::pb;
use crate::app::audit::ResumeAfter;
use crate::app::{AppError, Submission, instant};
use crate::audit::AuditRow;
use crate::domain::{
    AckOutcome, AuditEventKind, Channel, Intent, IntentStatus, Party, Stage, check_identifier, check_text,
};
use crate::store::{DispatchRow, IntentRow};

/// Payload limits: entries, key and value length.
const MAX_PAYLOAD_ENTRIES: usize = 64;
const MAX_PAYLOAD_KEY: usize = 128;
const MAX_PAYLOAD_VALUE: usize = 4096;

/// A required identifier (see [`check_identifier`]).
pub fn id(field: &str, value: &str) -> ApiResult<String> {
    check_identifier(value).map_err(|e| invalid(field, e))?;
    Ok(value.to_string())
}

/// The protobuf Timestamp range: 0001-01-01T00:00:00Z ..= 9999-12-31T23:59:59.999999999Z.
const TIMESTAMP_SECONDS: std::ops::RangeInclusive<i64> = -62_135_596_800..=253_402_300_799;
/// The protobuf Duration range: ±10,000 years.
const DURATION_SECONDS: std::ops::RangeInclusive<i64> = -315_576_000_000..=315_576_000_000;

/// Longest free text (a cancel reason, an ack detail).
const MAX_TEXT_CHARS: usize = 1024;

/// Free text kept in the audit log (see [`check_text`]).
pub fn free_text(field: &str, value: &str) -> ApiResult<String> {
    check_text(value, MAX_TEXT_CHARS).map_err(|e| invalid(field, e))?;
    Ok(value.to_string())
}

/// A timestamp as a UTC instant: only what the protobuf Timestamp type
/// allows (years 1 to 9999, nanos 0 to 999,999,999), so every stored
/// instant can be written and read back.
pub fn timestamp(field: &str, value: &prost_types::Timestamp) -> ApiResult<DateTime<Utc>> {
    if !TIMESTAMP_SECONDS.contains(&value.seconds) || !(0..=999_999_999).contains(&value.nanos) {
        return Err(invalid(
            field,
            format!(
                "{{seconds: {}, nanos: {}}} is outside the protobuf Timestamp range \
                 (0001-01-01T00:00:00Z to 9999-12-31T23:59:59.999999999Z, nanos 0 to 999999999)",
                value.seconds, value.nanos
            ),
        ));
    }
    u32::try_from(value.nanos)
        .ok()
        .and_then(|nanos| DateTime::from_timestamp(value.seconds, nanos))
        .ok_or_else(|| invalid(field, "is not a valid timestamp"))
}

/// A duration, within the protobuf Duration range (±10,000 years; nanos
/// with the sign of the seconds).
pub fn duration(field: &str, value: &prost_types::Duration) -> ApiResult<chrono::Duration> {
    let signs_agree = value.seconds == 0 || value.nanos == 0 || (value.seconds < 0) == (value.nanos < 0);
    if !DURATION_SECONDS.contains(&value.seconds)
        || !(-999_999_999..=999_999_999).contains(&value.nanos)
        || !signs_agree
    {
        return Err(invalid(
            field,
            format!(
                "{{seconds: {}, nanos: {}}} is outside the protobuf Duration range (±315576000000 s, \
                 nanos within ±999999999 with the sign of the seconds)",
                value.seconds, value.nanos
            ),
        ));
    }
    Ok(chrono::Duration::seconds(value.seconds) + chrono::Duration::nanoseconds(i64::from(value.nanos)))
}

/// A UTC instant as a timestamp.
pub fn to_timestamp(t: DateTime<Utc>) -> prost_types::Timestamp {
    prost_types::Timestamp { seconds: t.timestamp(), nanos: t.timestamp_subsec_nanos() as i32 }
}

fn parse_instant_text(text: Option<&str>) -> Option<prost_types::Timestamp> {
    text.and_then(|t| DateTime::parse_from_rfc3339(t).ok()).map(|t| to_timestamp(t.with_timezone(&Utc)))
}

pub fn channel(field: &str, value: i32) -> ApiResult<Channel> {
    match pb::Channel::try_from(value) {
        Ok(pb::Channel::Call) => Ok(Channel::Call),
        Ok(pb::Channel::Visit) => Ok(Channel::Visit),
        Ok(pb::Channel::Sms) => Ok(Channel::Sms),
        Ok(pb::Channel::Whatsapp) => Ok(Channel::Whatsapp),
        Ok(pb::Channel::Email) => Ok(Channel::Email),
        Ok(pb::Channel::Letter) => Ok(Channel::Letter),
        Ok(pb::Channel::Push) => Ok(Channel::Push),
        _ => Err(invalid(field, "must be a channel (CHANNEL_CALL, CHANNEL_SMS, …)")),
    }
}

pub fn channel_to_pb(channel: Channel) -> pb::Channel {
    match channel {
        Channel::Call => pb::Channel::Call,
        Channel::Visit => pb::Channel::Visit,
        Channel::Sms => pb::Channel::Sms,
        Channel::Whatsapp => pb::Channel::Whatsapp,
        Channel::Email => pb::Channel::Email,
        Channel::Letter => pb::Channel::Letter,
        Channel::Push => pb::Channel::Push,
    }
}

fn party(value: i32) -> ApiResult<Party> {
    match pb::Party::try_from(value) {
        Ok(pb::Party::Debtor) => Ok(Party::Debtor),
        Ok(pb::Party::CoDebtor) => Ok(Party::CoDebtor),
        Ok(pb::Party::Guarantor) => Ok(Party::Guarantor),
        Ok(pb::Party::ThirdParty) => Ok(Party::ThirdParty),
        _ => {
            Err(invalid("intent.party", "must be PARTY_DEBTOR, PARTY_CO_DEBTOR, PARTY_GUARANTOR or PARTY_THIRD_PARTY"))
        }
    }
}

fn party_to_pb(party: Party) -> pb::Party {
    match party {
        Party::Debtor => pb::Party::Debtor,
        Party::CoDebtor => pb::Party::CoDebtor,
        Party::Guarantor => pb::Party::Guarantor,
        Party::ThirdParty => pb::Party::ThirdParty,
    }
}

fn stage(value: i32) -> ApiResult<Stage> {
    match pb::Stage::try_from(value) {
        Ok(pb::Stage::Preventive) => Ok(Stage::Preventive),
        Ok(pb::Stage::Administrative) => Ok(Stage::Administrative),
        Ok(pb::Stage::Extrajudicial) => Ok(Stage::Extrajudicial),
        Ok(pb::Stage::Judicial) => Ok(Stage::Judicial),
        _ => Err(invalid(
            "intent.stage",
            "must be STAGE_PREVENTIVE, STAGE_ADMINISTRATIVE, STAGE_EXTRAJUDICIAL or STAGE_JUDICIAL",
        )),
    }
}

fn stage_to_pb(stage: Stage) -> pb::Stage {
    match stage {
        Stage::Preventive => pb::Stage::Preventive,
        Stage::Administrative => pb::Stage::Administrative,
        Stage::Extrajudicial => pb::Stage::Extrajudicial,
        Stage::Judicial => pb::Stage::Judicial,
    }
}

/// Validates a submitted intent for `tenant`.
pub fn submission(tenant: &str, intent: Option<&pb::Intent>) -> ApiResult<Submission> {
    let intent = intent.ok_or_else(|| invalid("intent", "is required"))?;
    let time_zones = intent
        .time_zones
        .iter()
        .enumerate()
        .map(|(i, name)| {
            name.parse::<Tz>().map_err(|_| {
                invalid(&format!("intent.time_zones[{i}]"), format!("{name:?} is not an IANA time zone name"))
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    if time_zones.len() > 16 {
        return Err(invalid("intent.time_zones", "at most 16 time zones"));
    }
    if intent.payload.len() > MAX_PAYLOAD_ENTRIES {
        return Err(invalid("intent.payload", format!("at most {MAX_PAYLOAD_ENTRIES} entries")));
    }
    for (key, value) in &intent.payload {
        if key.is_empty() || key.len() > MAX_PAYLOAD_KEY || value.len() > MAX_PAYLOAD_VALUE {
            return Err(invalid(
                &format!("intent.payload[{key:?}]"),
                format!("keys must be 1–{MAX_PAYLOAD_KEY} characters and values at most {MAX_PAYLOAD_VALUE}"),
            ));
        }
    }
    let not_before = intent.not_before.as_ref().map(|t| timestamp("intent.not_before", t)).transpose()?;
    let expires_at = intent.expires_at.as_ref().map(|t| timestamp("intent.expires_at", t)).transpose()?;
    if let (Some(not_before), Some(expires_at)) = (not_before, expires_at)
        && expires_at <= not_before
    {
        return Err(invalid(
            "intent.expires_at",
            format!(
                "{} is not after intent.not_before {}: the intent could never go",
                expires_at.to_rfc3339(),
                not_before.to_rfc3339()
            ),
        ));
    }
    let domain = Intent {
        tenant: tenant.to_string(),
        intent_id: id("intent.intent_id", &intent.intent_id)?,
        debtor_id: id("intent.debtor_id", &intent.debtor_id)?,
        debt_id: if intent.debt_id.is_empty() { None } else { Some(id("intent.debt_id", &intent.debt_id)?) },
        channel: channel("intent.channel", intent.channel)?,
        party: party(intent.party)?,
        stage: stage(intent.stage)?,
        jurisdiction: id("intent.jurisdiction", &intent.jurisdiction)?,
        time_zones,
        not_before,
        expires_at,
        contact_point: None,
    };
    let domain = Intent {
        contact_point: intent
            .contact_point
            .as_ref()
            .map(|p| super::debtor::contact_point("intent.contact_point", p, Some(domain.channel)))
            .transpose()?,
        ..domain
    };
    let payload: BTreeMap<String, String> = intent.payload.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    Ok(Submission { intent: domain, priority: intent.priority, payload })
}

/// A stored submission as the API's intent.
pub fn intent_to_pb(submission: &Submission) -> pb::Intent {
    let intent = &submission.intent;
    pb::Intent {
        intent_id: intent.intent_id.clone(),
        debtor_id: intent.debtor_id.clone(),
        debt_id: intent.debt_id.clone().unwrap_or_default(),
        channel: channel_to_pb(intent.channel) as i32,
        party: party_to_pb(intent.party) as i32,
        stage: stage_to_pb(intent.stage) as i32,
        jurisdiction: intent.jurisdiction.clone(),
        time_zones: intent.time_zones.iter().map(|z| z.name().to_string()).collect(),
        not_before: intent.not_before.map(to_timestamp),
        expires_at: intent.expires_at.map(to_timestamp),
        priority: submission.priority,
        payload: submission.payload.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
        contact_point: intent.contact_point.as_ref().map(super::debtor::contact_point_to_pb),
    }
}

/// A decision in its JSON form (see `intent_json::decision_json`) as the API's.
pub fn decision_to_pb(value: &Value) -> pb::Decision {
    let text = |v: &Value| v.as_str().unwrap_or_default().to_string();
    let kind = match value["decision"].as_str() {
        Some("release") => pb::DecisionKind::Release,
        Some("defer") => pb::DecisionKind::Defer,
        Some("reject") => pb::DecisionKind::Reject,
        Some("hold") => pb::DecisionKind::Hold,
        _ => pb::DecisionKind::Unspecified,
    };
    pb::Decision {
        kind: kind as i32,
        at: parse_instant_text(value["at"].as_str()),
        code: reject_code_to_pb(value["code"].as_str()) as i32,
        window_end: parse_instant_text(value["window_end"].as_str()),
        reasons: value["reasons"]
            .as_array()
            .map(|reasons| {
                reasons
                    .iter()
                    .map(|r| pb::Reason {
                        rule: text(&r["rule"]),
                        jurisdiction: text(&r["jurisdiction"]),
                        version: text(&r["version"]),
                        citation: text(&r["citation"]),
                        basis: text(&r["basis"]),
                        message: text(&r["message"]),
                    })
                    .collect()
            })
            .unwrap_or_default(),
        decided_at: parse_instant_text(value["decided_at"].as_str()),
    }
}

/// A status filter (`None`: any status).
pub fn status_filter(field: &str, value: i32) -> ApiResult<Option<IntentStatus>> {
    let status = match pb::IntentStatus::try_from(value) {
        Ok(pb::IntentStatus::Unspecified) => return Ok(None),
        Ok(pb::IntentStatus::Deferred) => IntentStatus::Deferred,
        Ok(pb::IntentStatus::Released) => IntentStatus::Released,
        Ok(pb::IntentStatus::Leased) => IntentStatus::Leased,
        Ok(pb::IntentStatus::Done) => IntentStatus::Done,
        Ok(pb::IntentStatus::Rejected) => IntentStatus::Rejected,
        Ok(pb::IntentStatus::Cancelled) => IntentStatus::Cancelled,
        Ok(pb::IntentStatus::Expired) => IntentStatus::Expired,
        Ok(pb::IntentStatus::Held) => IntentStatus::Held,
        Err(_) => return Err(invalid(field, format!("{value} is not an IntentStatus"))),
    };
    Ok(Some(status))
}

/// A list position as an opaque page token: the last row's creation instant and id.
pub fn page_token(row: &IntentRow) -> String {
    hex::encode(format!("{}/{}", row.created_at, row.intent_id))
}

/// Where an export resumes after this event: an opaque token of its sequence and hash.
pub fn resume_token(row: &AuditRow) -> String {
    hex::encode(format!("{}/{}", row.seq, row.hash))
}

/// Reads a resume token back (empty: from the start).
pub fn parse_resume_token(token: &str) -> ApiResult<Option<ResumeAfter>> {
    if token.is_empty() {
        return Ok(None);
    }
    let bad = || invalid("resume_token", "is not a token this service returned");
    let text = String::from_utf8(hex::decode(token).map_err(|_| bad())?).map_err(|_| bad())?;
    let (seq, hash) = text.split_once('/').ok_or_else(bad)?;
    Ok(Some(ResumeAfter { seq: seq.parse().map_err(|_| bad())?, hash: hash.to_string() }))
}

/// Reads a page token back (empty: the start).
pub fn parse_page_token(token: &str) -> ApiResult<(i64, String)> {
    if token.is_empty() {
        return Ok((i64::MIN, String::new()));
    }
    let bad = || invalid("page_token", "is not a token this service returned");
    let text = String::from_utf8(hex::decode(token).map_err(|_| bad())?).map_err(|_| bad())?;
    let (created_at, intent_id) = text.split_once('/').ok_or_else(bad)?;
    Ok((created_at.parse().map_err(|_| bad())?, intent_id.to_string()))
}

/// A stored reject code (`OPTED_OUT`, …; `UNREADABLE` for a hold) as the API's.
fn reject_code_to_pb(code: Option<&str>) -> pb::RejectCode {
    match code {
        Some("PARTY_NOT_ALLOWED") => pb::RejectCode::PartyNotAllowed,
        Some("CHANNEL_NOT_ALLOWED") => pb::RejectCode::ChannelNotAllowed,
        Some("NO_COMPLIANT_SLOT") => pb::RejectCode::NoCompliantSlot,
        Some("NO_RULES_IN_FORCE") => pb::RejectCode::NoRulesInForce,
        Some("OPTED_OUT") => pb::RejectCode::OptedOut,
        Some("CHANNEL_NOT_CHOSEN") => pb::RejectCode::ChannelNotChosen,
        Some("WRONG_PARTY") => pb::RejectCode::WrongParty,
        Some("UNREADABLE") => pb::RejectCode::Unreadable,
        Some("CONTACT_POINT_NOT_ALLOWED") => pb::RejectCode::ContactPointNotAllowed,
        Some("CONTACT_POINT_REFUSED") => pb::RejectCode::ContactPointRefused,
        _ => pb::RejectCode::Unspecified,
    }
}

/// An intent's ack outcome as the API's (`None`: not acknowledged yet).
fn outcome_to_pb(outcome: Option<AckOutcome>) -> pb::Outcome {
    match outcome {
        None => pb::Outcome::Unspecified,
        Some(AckOutcome::Sent) => pb::Outcome::Sent,
        Some(AckOutcome::Delivered) => pb::Outcome::Delivered,
        Some(AckOutcome::Failed) => pb::Outcome::Failed,
        Some(AckOutcome::NoAnswer) => pb::Outcome::NoAnswer,
        Some(AckOutcome::Conversation) => pb::Outcome::Conversation,
        Some(AckOutcome::WrongParty) => pb::Outcome::WrongParty,
        Some(AckOutcome::OptedOut) => pb::Outcome::OptedOut,
    }
}

/// A stored instant of the row `key` of `table` as a Timestamp; one out of
/// range is unreadable (FAILED_PRECONDITION naming the row), never 1970.
pub fn stored_instant(table: &'static str, key: &str, ms: i64) -> ApiResult<prost_types::Timestamp> {
    instant(ms).map(to_timestamp).map_err(|why| ApiError::from(AppError::unreadable(table, key.to_string(), why)))
}

pub fn audit_kind_to_pb(kind: AuditEventKind) -> pb::AuditEventKind {
    match kind {
        AuditEventKind::Submitted => pb::AuditEventKind::Submitted,
        AuditEventKind::Deferred => pb::AuditEventKind::Deferred,
        AuditEventKind::Released => pb::AuditEventKind::Released,
        AuditEventKind::Rejected => pb::AuditEventKind::Rejected,
        AuditEventKind::Expired => pb::AuditEventKind::Expired,
        AuditEventKind::Leased => pb::AuditEventKind::Leased,
        AuditEventKind::Withdrawn => pb::AuditEventKind::Withdrawn,
        AuditEventKind::Acked => pb::AuditEventKind::Acked,
        AuditEventKind::Cancelled => pb::AuditEventKind::Cancelled,
        AuditEventKind::PreferenceChanged => pb::AuditEventKind::PreferenceChanged,
        AuditEventKind::RulesReloaded => pb::AuditEventKind::RulesReloaded,
        AuditEventKind::Held => pb::AuditEventKind::Held,
        AuditEventKind::ContactRecorded => pb::AuditEventKind::ContactRecorded,
    }
}

pub fn status_to_pb(status: IntentStatus) -> pb::IntentStatus {
    match status {
        IntentStatus::Deferred => pb::IntentStatus::Deferred,
        IntentStatus::Released => pb::IntentStatus::Released,
        IntentStatus::Leased => pb::IntentStatus::Leased,
        IntentStatus::Done => pb::IntentStatus::Done,
        IntentStatus::Rejected => pb::IntentStatus::Rejected,
        IntentStatus::Cancelled => pb::IntentStatus::Cancelled,
        IntentStatus::Expired => pb::IntentStatus::Expired,
        IntentStatus::Held => pb::IntentStatus::Held,
    }
}

/// The decision a row stores; one that does not parse is an error naming the row.
fn stored_decision(row: &IntentRow) -> ApiResult<pb::Decision> {
    serde_json::from_str::<Value>(&row.decision)
        .ok()
        .filter(|v| matches!(v["decision"].as_str(), Some("release" | "defer" | "reject" | "hold")))
        .map(|v| decision_to_pb(&v))
        .ok_or_else(|| {
            ApiError::from(AppError::unreadable(
                "intents",
                format!("({}, {})", row.tenant, row.intent_id),
                "the stored decision cannot be read".into(),
            ))
        })
}

pub fn submit_response(row: &IntentRow) -> ApiResult<pb::SubmitResponse> {
    Ok(pb::SubmitResponse {
        intent_id: row.intent_id.clone(),
        status: status_to_pb(row.status) as i32,
        decision: Some(stored_decision(row)?),
    })
}

/// An intent as the API shows it. A body that cannot be read (a held
/// intent) is shown without its `intent`; status and decision say why.
pub fn intent_view(row: &IntentRow) -> ApiResult<pb::IntentView> {
    let submission = Submission::from_json(&row.body).ok();
    let key = format!("({}, {})", row.tenant, row.intent_id);
    let at = |ms| stored_instant("intents", &key, ms);
    Ok(pb::IntentView {
        intent: submission.as_ref().map(intent_to_pb),
        status: status_to_pb(row.status) as i32,
        decision: Some(stored_decision(row)?),
        next_eval_at: row.next_eval_at.map(at).transpose()?,
        dispatch_id: row.dispatch_id.clone().unwrap_or_default(),
        attempt: i32::try_from(row.attempt).unwrap_or(i32::MAX),
        outcome: outcome_to_pb(row.outcome) as i32,
        created_at: Some(at(row.created_at)?),
        updated_at: Some(at(row.updated_at)?),
        cancelled_in_flight: row.status == IntentStatus::Cancelled && row.dispatch_id.is_some(),
    })
}

pub fn leased_item(dispatch: &DispatchRow, submission: &Submission) -> ApiResult<pb::LeasedItem> {
    let at = |ms| stored_instant("dispatches", &dispatch.dispatch_id, ms);
    Ok(pb::LeasedItem {
        dispatch_id: dispatch.dispatch_id.clone(),
        intent: Some(intent_to_pb(submission)),
        attempt: i32::try_from(dispatch.attempt).unwrap_or(i32::MAX),
        not_after: Some(at(dispatch.not_after)?),
        lease_expires_at: dispatch.lease_expires_at.map(at).transpose()?,
    })
}

pub fn ack_outcome(value: i32) -> ApiResult<AckOutcome> {
    match pb::Outcome::try_from(value) {
        Ok(pb::Outcome::Sent) => Ok(AckOutcome::Sent),
        Ok(pb::Outcome::Delivered) => Ok(AckOutcome::Delivered),
        Ok(pb::Outcome::Failed) => Ok(AckOutcome::Failed),
        Ok(pb::Outcome::NoAnswer) => Ok(AckOutcome::NoAnswer),
        Ok(pb::Outcome::Conversation) => Ok(AckOutcome::Conversation),
        Ok(pb::Outcome::WrongParty) => Ok(AckOutcome::WrongParty),
        Ok(pb::Outcome::OptedOut) => Ok(AckOutcome::OptedOut),
        _ => Err(invalid(
            "outcome",
            "must be OUTCOME_SENT, OUTCOME_DELIVERED, OUTCOME_FAILED, OUTCOME_NO_ANSWER, OUTCOME_CONVERSATION, OUTCOME_WRONG_PARTY or OUTCOME_OPTED_OUT",
        )),
    }
}
