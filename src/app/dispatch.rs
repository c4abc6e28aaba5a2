//! Dispatch: lease released contacts to adapters (checked again first) and
//! record what adapters report.

use chrono::{DateTime, Duration, Utc};
use serde_json::json;

use super::preferences::preference_event;
use super::{App, AppError, AppResult, HISTORY_LOOKBACK_DAYS, Submission, millis, not_after};
use crate::audit::AuditEvent;
use crate::domain::{AckOutcome, AuditEventKind, Channel, DispatchState, Intent, IntentStatus};
use crate::engine::{Decision, Verdict};
use crate::preferences::{PreferenceRecord, Statements};
use crate::rate_limit::Held;
use crate::store::{DispatchRow, IntentRow, Tx, UndecodableDispatch};

/// An adapter's report on a leased contact.
#[derive(Clone, Debug)]
pub struct Ack {
    /// The caller's tenant (`None`: a built-in adapter, any tenant).
    pub tenant: Option<String>,
    pub dispatch_id: String,
    pub outcome: AckOutcome,
    /// When the adapter says the outcome happened.
    pub at: DateTime<Utc>,
    /// The adapter's free text (provider message id, error…), kept in the audit event.
    pub detail: String,
}

impl App {
    /// Takes back a released contact that can no longer be decided on and holds its intent.
    async fn withdraw_and_hold(
        &self,
        tx: &mut Tx,
        dispatch: &mut DispatchRow,
        row: &mut IntentRow,
        intent: Option<&Intent>,
        why: &AppError,
        now: DateTime<Utc>,
    ) -> AppResult<()> {
        take_back(tx, dispatch).await?;
        let detail = json!({"dispatch_id": dispatch.dispatch_id, "why": why.to_string()}).to_string();
        tx.audit(self.event(AuditEventKind::Withdrawn, row, intent, now, detail));
        self.hold(tx, row, intent, why, now);
        tx.update_intent(row).await?;
        Ok(())
    }

    /// Takes a released contact whose intent cannot be read (`unreadable`)
    /// or is gone out of the queue, whose head it would otherwise hold, and
    /// holds that intent.
    async fn take_out_unreadable_intent(
        &self,
        tx: &mut Tx,
        dispatch: &mut DispatchRow,
        unreadable: Option<AppError>,
        now: DateTime<Utc>,
    ) -> AppResult<()> {
        take_back(tx, dispatch).await?;
        let detail = json!({"dispatch_id": dispatch.dispatch_id, "why": "its intent cannot be read"}).to_string();
        let (tenant, intent_id, debtor) = (&dispatch.tenant, &dispatch.intent_id, Some(dispatch.debtor_id.as_str()));
        tx.audit(AuditEvent {
            intent_id: Some(intent_id.clone()),
            debtor_id: debtor.map(str::to_string),
            channel: Some(dispatch.channel),
            ..AuditEvent::new(tenant, millis(now), AuditEventKind::Withdrawn, detail)
        });
        if let Some(why) = unreadable {
            // Its own row cannot be read, its dispatch id included: no guard.
            self.hold_by_key(tx, tenant, intent_id, None, debtor, Some(dispatch.channel), &why, now).await?;
        }
        Ok(())
    }

    /// Takes a dispatch whose row cannot be decoded out of the queue, whose
    /// head it would otherwise hold (counted and logged; never sent), and
    /// holds its intent.
    async fn take_out_undecodable(&self, tx: &mut Tx, row: UndecodableDispatch, now: DateTime<Utc>) -> AppResult<()> {
        let unreadable = AppError::unreadable("dispatches", row.dispatch_id.clone(), row.why);
        // Its id unreadable: nothing can be changed (counted and logged). Its
        // tenant unreadable: withdrawn, but no chain to record it in.
        if !tx.withdraw_undecodable_dispatch(&row.dispatch_id).await? {
            return Ok(());
        }
        let Some(tenant) = &row.tenant else { return Ok(()) };
        let detail = json!({"dispatch_id": row.dispatch_id, "why": unreadable.to_string()}).to_string();
        tx.audit(AuditEvent {
            intent_id: row.intent_id.clone(),
            debtor_id: row.debtor_id.clone(),
            ..AuditEvent::new(tenant, millis(now), AuditEventKind::Withdrawn, detail)
        });
        if let Some(intent_id) = &row.intent_id {
            // Only if that is still its contact: this row's intent id may be damaged too.
            let (debtor, dispatch) = (row.debtor_id.as_deref(), Some(row.dispatch_id.as_str()));
            self.hold_by_key(tx, tenant, intent_id, dispatch, debtor, None, &unreadable, now).await?;
        }
        Ok(())
    }

    /// Leases `dispatch`, just found allowed by `decision`, for `lease`.
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn lease_in(
        &self,
        tx: &mut Tx,
        dispatch: &mut DispatchRow,
        row: &mut IntentRow,
        intent: &Intent,
        decision: &Decision,
        lease: Duration,
        now: DateTime<Utc>,
    ) -> AppResult<()> {
        dispatch.state = DispatchState::Leased;
        dispatch.attempt += 1;
        let lease_ends = now + lease;
        let window_ends = not_after(decision, intent, lease_ends);
        dispatch.lease_expires_at = Some(millis(lease_ends));
        dispatch.not_after = millis(window_ends);
        tx.update_dispatch(dispatch).await?;
        row.status = IntentStatus::Leased;
        row.attempt = dispatch.attempt;
        row.updated_at = millis(now);
        tx.update_intent(row).await?;
        let detail = json!({
            "dispatch_id": dispatch.dispatch_id,
            "attempt": dispatch.attempt,
            "not_after": window_ends.to_rfc3339(),
            "lease_expires_at": lease_ends.to_rfc3339(),
        })
        .to_string();
        tx.audit(self.event(AuditEventKind::Leased, row, Some(intent), now, detail));
        Ok(())
    }

    /// Leases up to `max` released contacts on `channels` for `lease`. Each
    /// is checked again first: one no longer allowed is withdrawn and its
    /// intent deferred or rejected.
    pub async fn lease(
        &self,
        tenant: Option<&str>,
        channels: &[Channel],
        max: i64,
        lease: Duration,
    ) -> AppResult<Vec<(DispatchRow, Submission)>> {
        let now = self.clock.now();
        let mut tx = self.store.begin().await?;
        let (open, undecodable) = tx.open_dispatches(tenant, channels, millis(now), max).await?;
        for row in undecodable {
            self.take_out_undecodable(&mut tx, row, now).await?;
        }
        // The rows are already locked: never wait for a debtor here (a cancel
        // or ack holding the debtor may be waiting for one of these rows). A
        // busy debtor's contact is simply offered at the next lease.
        let debtors: Vec<(&str, &str)> = open.iter().map(|d| (d.tenant.as_str(), d.debtor_id.as_str())).collect();
        let held = tx.try_lock_debtors(&debtors).await?;
        let ours: Vec<DispatchRow> = open.into_iter().zip(held).filter_map(|(d, held)| held.then_some(d)).collect();
        let keys: Vec<(&str, &str, &str)> =
            ours.iter().map(|d| (d.tenant.as_str(), d.intent_id.as_str(), d.debtor_id.as_str())).collect();
        tx.prefetch(&keys, millis(now - Duration::days(HISTORY_LOOKBACK_DAYS))).await?;
        let mut leased = Vec::with_capacity(ours.len());
        let mut deferred = false;
        for mut dispatch in ours {
            let read = tx.get_intent(&dispatch.tenant, &dispatch.intent_id).await.map_err(AppError::from);
            let mut row = match read {
                Ok(Some(row)) => row,
                // Its contact cannot be checked again, so it never leaves: taken
                // out of the queue, whose head it would otherwise hold for good
                // (counted and logged); the other contacts are still leased.
                Ok(None) | Err(AppError::Unreadable { .. }) => {
                    self.take_out_unreadable_intent(&mut tx, &mut dispatch, read.err(), now).await?;
                    continue;
                }
                Err(e) => return Err(e),
            };
            let submission = match Submission::of_row(&row) {
                Ok(submission) => submission,
                Err(unreadable) => {
                    self.withdraw_and_hold(&mut tx, &mut dispatch, &mut row, None, &unreadable, now).await?;
                    continue;
                }
            };
            let (decision, preferences) =
                match self.decide_in(&mut tx, &submission.intent, Some(&dispatch.dispatch_id), now).await {
                    Ok(decided) => decided,
                    Err(AppError::Store(e)) => return Err(e.into()),
                    Err(undecidable) => {
                        let intent = Some(&submission.intent);
                        self.withdraw_and_hold(&mut tx, &mut dispatch, &mut row, intent, &undecidable, now).await?;
                        continue;
                    }
                };
            if decision.verdict == Verdict::Release {
                // Held back by a rate limit: it stays ready, in order, and is checked again next time.
                if let Err(held) = self.limits.admit(&dispatch.tenant, submission.intent.channel) {
                    let limit = match held {
                        Held::Channel(c) => format!("channel:{c}"),
                        Held::Tenant(t) => format!("tenant:{t}"),
                    };
                    metrics::counter!(crate::telemetry::RATE_LIMIT_WAITS, "limit" => limit).increment(1);
                    continue;
                }
                if dispatch.attempt == 0 {
                    let waited = (now.timestamp_millis() - dispatch.released_at).max(0) as f64 / 1000.0;
                    metrics::histogram!(crate::telemetry::DISPATCH_LATENCY).record(waited);
                }
                self.lease_in(&mut tx, &mut dispatch, &mut row, &submission.intent, &decision, lease, now).await?;
                leased.push((dispatch, submission));
            } else {
                take_back(&mut tx, &mut dispatch).await?;
                let detail = json!({"dispatch_id": dispatch.dispatch_id, "why": "no longer allowed when an adapter asked for it"}).to_string();
                tx.audit(self.event(AuditEventKind::Withdrawn, &row, Some(&submission.intent), now, detail));
                self.apply(&mut tx, &mut row, &submission.intent, &decision, preferences.as_ref(), now).await?;
                tx.update_intent(&row).await?;
                deferred |= row.status == IntentStatus::Deferred;
            }
        }
        tx.commit().await?;
        if deferred {
            self.wake();
        }
        Ok(leased)
    }

    /// Records an adapter's outcome for a leased contact.
    pub async fn ack(
        &self,
        tenant: Option<&str>,
        dispatch_id: &str,
        outcome: AckOutcome,
        at: DateTime<Utc>,
    ) -> AppResult<IntentRow> {
        let ack = Ack {
            tenant: tenant.map(str::to_string),
            dispatch_id: dispatch_id.to_string(),
            outcome,
            at,
            detail: String::new(),
        };
        let mut results = self.ack_all(std::slice::from_ref(&ack)).await?;
        results.pop().unwrap_or_else(|| Err(AppError::NotFound(format!("dispatch_id {dispatch_id:?} not found"))))
    }

    /// Records several outcomes in one transaction; each gets its own result.
    /// The debtors are locked first, in the one order every batch uses.
    pub async fn ack_all(&self, acks: &[Ack]) -> AppResult<Vec<AppResult<IntentRow>>> {
        let now = self.clock.now();
        let mut tx = self.store.begin().await?;
        let ids: Vec<&str> = acks.iter().map(|ack| ack.dispatch_id.as_str()).collect();
        tx.prefetch_dispatches(&ids).await?;
        let mut debtors = Vec::with_capacity(acks.len());
        for ack in acks {
            if let Some(dispatch) = tx.get_dispatch(&ack.dispatch_id).await? {
                debtors.push((dispatch.tenant, dispatch.debtor_id));
            }
        }
        let mut debtors: Vec<(&str, &str)> = debtors.iter().map(|(t, d)| (t.as_str(), d.as_str())).collect();
        debtors.sort_unstable();
        debtors.dedup();
        tx.lock_debtors(&debtors).await?;
        // Read before the locks to learn whom to lock (a dispatch's debtor
        // never changes); with writers besides this one (PostgreSQL), read
        // again under them: another replica may have acked or cancelled since.
        if !self.store.single_writer() {
            tx.prefetch_dispatches(&ids).await?;
        }
        let mut results = Vec::with_capacity(acks.len());
        for ack in acks {
            match self.ack_in(&mut tx, ack, now).await {
                Err(AppError::Store(e)) => return Err(e.into()),
                other => results.push(other),
            }
        }
        tx.commit().await?;
        self.wake();
        Ok(results)
    }

    /// One ack inside `tx` (its debtor locked). A refusal (not found, not
    /// leased) is decided before anything is written.
    async fn ack_in(&self, tx: &mut Tx, ack: &Ack, now: DateTime<Utc>) -> AppResult<IntentRow> {
        let (dispatch_id, outcome, at) = (ack.dispatch_id.as_str(), ack.outcome, ack.at);
        let not_found = || AppError::NotFound(format!("dispatch_id {dispatch_id:?} not found"));
        let mut dispatch = tx.get_dispatch(dispatch_id).await?.ok_or_else(not_found)?;
        if ack.tenant.as_ref().is_some_and(|t| *t != dispatch.tenant) {
            return Err(not_found());
        }
        tx.lock_debtor(&dispatch.tenant, &dispatch.debtor_id).await?;
        let mut row = tx.get_intent(&dispatch.tenant, &dispatch.intent_id).await?.ok_or_else(not_found)?;
        // The intent's own contact (in flight, or cancelled in flight): its
        // report is the intent's outcome. One taken back before has only its
        // contact event and audit event: the intent has moved on since.
        let own = row.dispatch_id.as_deref() == Some(dispatch_id);
        match dispatch.state {
            DispatchState::Acked if own && row.outcome == Some(outcome) => return Ok(row),
            DispatchState::Acked if own => {
                let earlier = row.outcome.map_or("an unknown outcome", AckOutcome::as_str);
                return Err(AppError::FailedPrecondition(format!(
                    "dispatch {dispatch_id} was already acknowledged as {earlier}"
                )));
            }
            DispatchState::Acked => {
                return Err(AppError::FailedPrecondition(format!(
                    "dispatch {dispatch_id} was already acknowledged after it was taken back; that report stands"
                )));
            }
            // Cancelled while the adapter held it, or taken back after its
            // lease expired: the adapter may have made the contact, so its
            // report still counts.
            DispatchState::Leased | DispatchState::Cancelled => {}
            DispatchState::Withdrawn if dispatch.attempt > 0 => {}
            other @ (DispatchState::Ready | DispatchState::Withdrawn) => {
                return Err(AppError::FailedPrecondition(format!("dispatch {dispatch_id} is {other}, not leased")));
            }
        }
        // An opt-out or a wrong party changes the debtor's preferences: read
        // first, so a record that cannot be read refuses the whole report
        // (nothing written, the adapter can retry) instead of recording the
        // ack without the opt-out it reported.
        let preferences = match outcome {
            AckOutcome::OptedOut | AckOutcome::WrongParty => Some(reported_on(tx, &row).await?),
            _ => None,
        };
        // The body only names the zones in the audit event: an unreadable one
        // must not lose the adapter's report.
        let submission = Submission::from_json(&row.body).ok();
        // Only the intent's own contact in flight ends it; otherwise the
        // intent has moved on (cancelled, or decided again).
        let in_flight = dispatch.state == DispatchState::Leased;
        dispatch.state = DispatchState::Acked;
        tx.update_dispatch(&dispatch).await?;
        tx.set_event_outcome(dispatch_id, outcome.history_outcome()).await?;
        if own {
            if in_flight {
                row.status = IntentStatus::Done;
            }
            row.outcome = Some(outcome);
            row.updated_at = millis(now);
            tx.update_intent(&row).await?;
        }
        let detail = json!({
            "dispatch_id": dispatch_id,
            "reported_at": at.to_rfc3339(),
            "attempt": dispatch.attempt,
            "adapter_detail": ack.detail,
        })
        .to_string();
        // The outcome reported, which for a contact taken back is not the intent's.
        let event = self.event(AuditEventKind::Acked, &row, submission.as_ref().map(|s| &s.intent), now, detail);
        tx.audit(AuditEvent { outcome: Some(outcome), ..event });
        if let Some(mut record) = preferences {
            let source = format!("adapter ack {dispatch_id}");
            if outcome == AckOutcome::OptedOut {
                record.apply(&Statements { opt_out: vec![row.channel], ..Statements::default() }, at, &source);
            } else {
                record.found_wrong_party(row.channel, at);
            }
            let text = record.to_json();
            tx.upsert_preferences(&row.tenant, &row.debtor_id, &text, &source, millis(now)).await?;
            tx.audit(preference_event(&row.tenant, &row.debtor_id, &record, &source, &[], now));
            tx.wake_debtor(&row.tenant, &row.debtor_id, millis(now)).await?;
        }
        Ok(row)
    }
}

/// The preferences record an opt-out or wrong-party report on `row` changes;
/// one that cannot be read refuses the report.
async fn reported_on(tx: &mut Tx, row: &IntentRow) -> AppResult<PreferenceRecord> {
    match tx.preferences(&row.tenant, &row.debtor_id).await? {
        Some(p) => PreferenceRecord::parse(&p.prefs, p.updated_at, &p.source).map_err(|e| {
            AppError::unreadable(
                "preferences",
                format!("({}, {})", row.tenant, row.debtor_id),
                format!("the debtor's {e}; the report was not recorded (an operator must repair the record first)"),
            )
        }),
        None => Ok(PreferenceRecord::default()),
    }
}

/// Takes back a released contact that will not leave (again). One that an
/// adapter held before (its lease expired) keeps its contact event: the
/// adapter may have made the contact, so caps count it and its late report
/// is still taken; one that never left has its event removed.
async fn take_back(tx: &mut Tx, dispatch: &mut DispatchRow) -> AppResult<()> {
    dispatch.state = DispatchState::Withdrawn;
    tx.update_dispatch(dispatch).await?;
    if dispatch.attempt == 0 {
        tx.delete_event(&dispatch.dispatch_id).await?;
    }
    Ok(())
}
