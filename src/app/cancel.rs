//! Cancel: one intent, or every intent of a debt, pending or in flight.

use serde_json::json;

use super::{App, AppError, AppResult, Submission, millis};
use crate::domain::{AuditEventKind, DispatchState, IntentStatus};
use crate::store::IntentRow;

/// Statuses in which an intent can still be cancelled: not handed to anyone
/// yet (a held one waits for an operator), or in an adapter's hands.
const CANCELLABLE: [IntentStatus; 4] =
    [IntentStatus::Deferred, IntentStatus::Released, IntentStatus::Held, IntentStatus::Leased];

/// What to cancel.
pub enum CancelTarget<'a> {
    Intent(&'a str),
    Debt { debtor_id: &'a str, debt_id: Option<&'a str> },
}

impl App {
    /// Cancels intents not done yet: one by id, or every one of a debt.
    /// A pending intent's released contact is withdrawn; an intent an adapter
    /// holds (leased) is cancelled in flight: its lease is not re-offered,
    /// the contact may already have been made (it stays in the history), and
    /// the adapter learns of it from its Ack answer. Returns each cancelled
    /// intent and whether it was in flight.
    pub async fn cancel(
        &self,
        tenant: &str,
        target: CancelTarget<'_>,
        reason: &str,
    ) -> AppResult<Vec<(IntentRow, bool)>> {
        let now = self.clock.now();
        let mut tx = self.store.begin().await?;
        let rows = match target {
            CancelTarget::Intent(intent_id) => {
                let row = tx
                    .get_intent(tenant, intent_id)
                    .await?
                    .ok_or_else(|| AppError::NotFound(format!("intent_id {intent_id:?} not found")))?;
                tx.lock_debtor(tenant, &row.debtor_id).await?;
                match row.status {
                    IntentStatus::Cancelled => {
                        let in_flight = row.dispatch_id.is_some();
                        return Ok(vec![(row, in_flight)]);
                    }
                    s if CANCELLABLE.contains(&s) => vec![row],
                    other => {
                        return Err(AppError::FailedPrecondition(format!(
                            "intent {intent_id:?} is {other}: only deferred, released, held or leased intents can be cancelled"
                        )));
                    }
                }
            }
            CancelTarget::Debt { debtor_id, debt_id } => {
                tx.lock_debtor(tenant, debtor_id).await?;
                tx.pending_intents(tenant, debtor_id, debt_id).await?
            }
        };
        let mut cancelled = Vec::with_capacity(rows.len());
        for row in rows {
            // Re-read under the lock: it may have moved on.
            let Some(mut row) = tx.get_intent(tenant, &row.intent_id).await? else { continue };
            if !CANCELLABLE.contains(&row.status) {
                continue;
            }
            let in_flight = row.status == IntentStatus::Leased;
            let mut dispatch = match row.dispatch_id.as_deref() {
                Some(dispatch_id) => tx.get_dispatch(dispatch_id).await?,
                None => None,
            };
            if let Some(dispatch) = dispatch.as_mut() {
                if in_flight {
                    // Kept with its contact event: the adapter may have made the contact.
                    dispatch.state = DispatchState::Cancelled;
                } else {
                    dispatch.state = DispatchState::Withdrawn;
                    tx.delete_event(&dispatch.dispatch_id).await?;
                }
                tx.update_dispatch(dispatch).await?;
            }
            let withdrawn = if in_flight { None } else { row.dispatch_id.take() };
            row.status = IntentStatus::Cancelled;
            row.next_eval_at = None;
            row.updated_at = millis(now);
            tx.update_intent(&row).await?;
            // A held intent's body may be unreadable: it can still be cancelled.
            let submission = Submission::from_json(&row.body).ok();
            let detail = json!({
                "reason": reason,
                "withdrawn_dispatch_id": withdrawn,
                "in_flight_dispatch_id": if in_flight { row.dispatch_id.clone() } else { None },
            })
            .to_string();
            tx.audit(self.event(AuditEventKind::Cancelled, &row, submission.as_ref().map(|s| &s.intent), now, detail));
            cancelled.push((row, in_flight));
        }
        tx.commit().await?;
        Ok(cancelled)
    }
}
