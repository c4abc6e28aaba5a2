//! Deciding and recording a decision: the engine's verdict on an intent
//! becomes a dispatch, a wake-up instant or a rejection, each with its audit
//! event; what cannot be read or decided on is held.

use chrono::{DateTime, Duration, Utc};
use serde_json::{Value, json};

use super::{
    App, AppError, AppResult, HISTORY_LOOKBACK_DAYS, contact_event, layer_versions, local_reading, millis, not_after,
};
use crate::audit::{AuditEvent, with_decision};
use crate::domain::{AuditEventKind, Channel, ContactEvent, DispatchState, Intent, IntentStatus, Preferences};
use crate::engine::{Decision, RejectCode, Verdict, evaluate};
use crate::intent_json::decision_json;
use crate::preferences::PreferenceRecord;
use crate::store::{DispatchRow, EventRow, IntentRow, PreferencesRow, Tx};

impl App {
    /// An audit event about `row` at `now`.
    /// `intent` is `None` when the stored body cannot be read: the event then
    /// names the jurisdiction's own zones.
    pub(super) fn event(
        &self,
        kind: AuditEventKind,
        row: &IntentRow,
        intent: Option<&Intent>,
        now: DateTime<Utc>,
        detail: String,
    ) -> AuditEvent {
        let rules = self.rules();
        let (zones, layers) = match rules.resolve(&row.tenant, &row.jurisdiction) {
            Ok(resolved) => (
                match intent {
                    Some(intent) => crate::engine::candidate_zones(intent, &resolved).into_owned(),
                    None => resolved.default_zones.to_vec(),
                },
                layer_versions(&resolved),
            ),
            Err(_) => (Vec::new(), String::new()),
        };
        let (local_time, time_zone) = local_reading(now, &zones);
        AuditEvent {
            intent_id: Some(row.intent_id.clone()),
            debtor_id: Some(row.debtor_id.clone()),
            debt_id: row.debt_id.clone(),
            channel: Some(row.channel),
            jurisdiction: Some(row.jurisdiction.clone()),
            time_zone,
            local_time,
            outcome: row.outcome,
            rules_version: (!layers.is_empty()).then_some(layers),
            ..AuditEvent::new(&row.tenant, millis(now), kind, detail)
        }
    }

    /// Reads the debtor's history and preferences in `tx` (under the debtor's
    /// lock) and decides. A stored input that cannot be read is
    /// `AppError::Unreadable`: callers hold the intent, never guess.
    pub(super) async fn decide_in(
        &self,
        tx: &mut Tx,
        intent: &Intent,
        skip_dispatch: Option<&str>,
        now: DateTime<Utc>,
    ) -> AppResult<(Decision, Option<PreferencesRow>)> {
        let since = millis(now - Duration::days(HISTORY_LOOKBACK_DAYS));
        let history = tx.history(&intent.tenant, &intent.debtor_id, since, skip_dispatch).await?;
        let preferences = tx.preferences(&intent.tenant, &intent.debtor_id).await?;
        let decision = self.decide(intent, &history, preferences.as_ref(), skip_dispatch, now)?;
        Ok((decision, preferences))
    }

    pub(super) fn decide(
        &self,
        intent: &Intent,
        history: &[EventRow],
        preferences: Option<&PreferencesRow>,
        skip_dispatch: Option<&str>,
        now: DateTime<Utc>,
    ) -> AppResult<Decision> {
        let rules = self.rules();
        let resolved = rules
            .resolve(&intent.tenant, &intent.jurisdiction)
            .map_err(|e| AppError::FailedPrecondition(format!("the intent's jurisdiction is no longer loaded: {e}")))?;
        // A stored event or preference that cannot be read stops this decision:
        // skipping it would under-count a cap or forget an opt-out.
        let events: Vec<ContactEvent> = history
            .iter()
            .filter(|e| skip_dispatch.is_none_or(|skip| e.dispatch_id.as_deref() != Some(skip)))
            .map(contact_event)
            .collect::<Result<_, _>>()
            .map_err(|e| {
                let key = format!("({}, {})", intent.tenant, intent.debtor_id);
                AppError::unreadable("contact_events", key, format!("a stored contact event cannot be read: {e}"))
            })?;
        let preferences = match preferences {
            Some(p) => PreferenceRecord::parse(&p.prefs, p.updated_at, &p.source)
                .map_err(|e| {
                    let key = format!("({}, {})", intent.tenant, intent.debtor_id);
                    AppError::unreadable("preferences", key, format!("the debtor's {e}"))
                })?
                .effective(),
            None => Preferences::default(),
        };
        let span = tracing::info_span!(
            "evaluate",
            tenant = %intent.tenant,
            intent_id = %intent.intent_id,
            jurisdiction = %intent.jurisdiction,
            channel = %intent.channel,
            decision = tracing::field::Empty,
        );
        let _entered = span.enter();
        let decision = evaluate(intent, &resolved, &events, &preferences, now);
        span.record(
            "decision",
            match decision.verdict {
                Verdict::Release => "release".to_string(),
                Verdict::Defer { until } => format!("defer until {}", until.to_rfc3339()),
                Verdict::Reject { code } => format!("reject {code}"),
            },
        );
        Ok(decision)
    }

    /// Records `decision` on `row`: a release creates the dispatch and the
    /// contact event that caps count; a defer sets the wake-up instant.
    pub(super) async fn apply(
        &self,
        tx: &mut Tx,
        row: &mut IntentRow,
        intent: &Intent,
        decision: &Decision,
        preferences: Option<&PreferencesRow>,
        now: DateTime<Utc>,
    ) -> AppResult<()> {
        crate::telemetry::decided(
            match decision.verdict {
                Verdict::Release => "release",
                Verdict::Defer { .. } => "defer",
                Verdict::Reject { .. } => "reject",
            },
            &row.jurisdiction,
        );
        let mut stored = decision_json(decision, now);
        stored["decided_at"] = json!(now.to_rfc3339_opts(chrono::SecondsFormat::Millis, true));
        row.decision = stored.to_string();
        row.outcome = None;
        row.updated_at = millis(now);
        row.next_eval_at = None;
        match decision.verdict {
            Verdict::Release => {
                let dispatch_id = DispatchRow::new_id();
                let not_after = not_after(decision, intent, now + Duration::hours(1));
                let dispatch = DispatchRow {
                    dispatch_id: dispatch_id.clone(),
                    tenant: row.tenant.clone(),
                    intent_id: row.intent_id.clone(),
                    debtor_id: row.debtor_id.clone(),
                    channel: row.channel,
                    priority: row.priority,
                    released_at: millis(now),
                    not_after: millis(not_after),
                    state: DispatchState::Ready,
                    lease_expires_at: None,
                    attempt: 0,
                };
                tx.insert_dispatch(&dispatch);
                let contact_point = intent.contact_point.as_ref();
                let event = EventRow {
                    contact_kind: contact_point.map(|p| p.kind),
                    contact_id: contact_point.and_then(|p| p.id.clone()),
                    ..EventRow::released(row.debt_id.clone(), row.channel, millis(now), &dispatch_id)
                };
                tx.insert_event(&row.tenant, &row.debtor_id, event);
                row.status = IntentStatus::Released;
                row.dispatch_id = Some(dispatch_id);
            }
            Verdict::Defer { until } => {
                row.status = IntentStatus::Deferred;
                row.next_eval_at = Some(millis(until));
                row.dispatch_id = None;
            }
            Verdict::Reject { code } => {
                let expired = code == RejectCode::NoCompliantSlot
                    && intent.expires_at.is_some_and(|e| e <= now + Duration::days(crate::engine::SEARCH_HORIZON_DAYS));
                row.status = if expired { IntentStatus::Expired } else { IntentStatus::Rejected };
                row.dispatch_id = None;
            }
        }
        let kind = match row.status {
            IntentStatus::Released => AuditEventKind::Released,
            IntentStatus::Deferred => AuditEventKind::Deferred,
            IntentStatus::Expired => AuditEventKind::Expired,
            _ => AuditEventKind::Rejected,
        };
        // The inputs besides rules and history, so a replay can use them.
        let preferences: Value = preferences.and_then(|p| serde_json::from_str(&p.prefs).ok()).unwrap_or(Value::Null);
        let detail = decision_detail(&row.decision, Some((row.dispatch_id.as_deref(), &preferences)));
        tx.audit(with_decision(self.event(kind, row, Some(intent), now, String::new()), &stored, detail));
        Ok(())
    }

    /// Holds an intent whose stored data cannot be read or decided on: no
    /// contact, no further wake-ups, an audit event, a metric and an error
    /// log, so an operator can cancel it (or fix and resubmit it). Only this
    /// intent stops; the round it was found in goes on.
    pub(super) fn hold(
        &self,
        tx: &mut Tx,
        row: &mut IntentRow,
        intent: Option<&Intent>,
        why: &AppError,
        now: DateTime<Utc>,
    ) {
        count_hold(&row.tenant, &row.intent_id, why);
        let stored = hold_decision(why, now);
        row.decision = stored.to_string();
        let detail = decision_detail(&row.decision, None);
        row.status = IntentStatus::Held;
        row.next_eval_at = None;
        row.dispatch_id = None;
        row.updated_at = millis(now);
        tx.audit(with_decision(self.event(AuditEventKind::Held, row, intent, now, String::new()), &stored, detail));
    }
}

impl App {
    /// Holds, by its key, an intent whose row or whose contact's row cannot
    /// be read (so `hold` has no row to change), if `dispatch_id` (when
    /// given) is still its contact: the same decision, metric, log and audit
    /// event.
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn hold_by_key(
        &self,
        tx: &mut Tx,
        tenant: &str,
        intent_id: &str,
        dispatch_id: Option<&str>,
        debtor_id: Option<&str>,
        channel: Option<Channel>,
        why: &AppError,
        now: DateTime<Utc>,
    ) -> AppResult<()> {
        let stored = hold_decision(why, now);
        let text = stored.to_string();
        if !tx.hold_intent_by_key(tenant, intent_id, dispatch_id, &text, millis(now)).await? {
            return Ok(());
        }
        count_hold(tenant, intent_id, why);
        let detail = decision_detail(&text, None);
        let event = AuditEvent {
            intent_id: Some(intent_id.to_string()),
            debtor_id: debtor_id.map(str::to_string),
            channel,
            ..AuditEvent::new(tenant, millis(now), AuditEventKind::Held, String::new())
        };
        tx.audit(with_decision(event, &stored, detail));
        Ok(())
    }
}

/// Counts and logs a hold.
fn count_hold(tenant: &str, intent_id: &str, why: &AppError) {
    metrics::counter!(crate::telemetry::HELD_INTENTS).increment(1);
    tracing::error!(tenant, intent_id, why = %why, "intent held: no contact until an operator acts");
}

/// A hold's stored decision.
fn hold_decision(why: &AppError, now: DateTime<Utc>) -> Value {
    json!({
        "decision": "hold",
        "code": "UNREADABLE",
        "reasons": [{"message": format!("held: {why}; no contact until an operator cancels the intent (or fixes the stored data and resubmits it)")}],
        "decided_at": now.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
    })
}

/// A decision event's detail: `{"decision": …}`, with the dispatch id and the
/// preferences decided on after it when given. Built around the decision's
/// stored text, byte for byte what `json!` would write from its value.
fn decision_detail(decision: &str, inputs: Option<(Option<&str>, &Value)>) -> String {
    match inputs {
        None => format!(r#"{{"decision":{decision}}}"#),
        Some((dispatch_id, preferences)) => {
            let dispatch_id = Value::from(dispatch_id);
            format!(r#"{{"decision":{decision},"dispatch_id":{dispatch_id},"preferences":{preferences}}}"#)
        }
    }
}

/// A submission event's detail: `{"body": …}` around the stored body's text,
/// which is serde_json's own compact output (`Submission::to_json`), so it is
/// what `json!` would write from the parsed body.
pub(super) fn body_detail(body: &str) -> String {
    format!(r#"{{"body":{body}}}"#)
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::{body_detail, decision_detail};

    #[test]
    fn details_are_what_json_writes_from_the_values() {
        let decision =
            json!({"decision": "release", "reasons": [{"message": "10:00 \"inside\" ñ \u{1}"}], "code": null});
        let text = decision.to_string();
        let preferences = json!({"opted_out": ["sms"], "hours": {"mon": "09:00-12:00"}});
        for dispatch_id in [Some("0193-\"q\""), None] {
            assert_eq!(
                decision_detail(&text, Some((dispatch_id, &preferences))),
                json!({"decision": decision, "dispatch_id": dispatch_id, "preferences": preferences}).to_string()
            );
        }
        assert_eq!(decision_detail(&text, None), json!({"decision": decision}).to_string());
        let body = json!({"intent": {"tenant": "t", "debtor_id": "d \"x\""}, "priority": -3, "payload": {"k": "v"}});
        let parsed: Value = serde_json::from_str(&body.to_string()).unwrap_or(Value::Null);
        assert_eq!(body_detail(&body.to_string()), json!({"body": parsed}).to_string());
    }
}
