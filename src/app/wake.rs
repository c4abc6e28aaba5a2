//! Wake: re-evaluate the deferred intents that are due.

use chrono::{DateTime, Utc};

use super::stream::Handoff;
use super::{App, AppError, AppResult, Submission, lock_and_read_ahead, millis};
use crate::domain::IntentStatus;
use crate::store::Tx;

/// Debtors re-evaluated per PostgreSQL transaction when waking due intents.
const WAKE_DEBTORS_PER_TRANSACTION: usize = 64;

impl App {
    /// Re-evaluates deferred intents that are due; returns how many.
    pub async fn wake_due(&self, limit: i64) -> AppResult<usize> {
        let now = self.clock.now();
        let claim_until = millis(now + self.claim);
        let mut claim = self.store.begin().await?;
        let mut due = claim.claim_due(millis(now), claim_until, limit).await?;
        // Debtors are locked in one order everywhere, so batches never deadlock.
        due.sort_by(|a, b| (&a.0, &a.2).cmp(&(&b.0, &b.2)));
        // SQLite has one writer anyway: the claim and every re-evaluation in
        // one transaction (one fsync). PostgreSQL: the claim commits first, then
        // smaller transactions, so replicas and submissions for the same
        // debtors wait less.
        let (mut open, per_transaction) = match self.store.claims_commit_separately() {
            false => (Some(claim), due.len().max(1)),
            true => {
                claim.commit().await?;
                (None, WAKE_DEBTORS_PER_TRANSACTION)
            }
        };
        let mut released = false;
        for part in due.chunks(per_transaction) {
            // Contacts leased to waiting streams here: sent once this commits.
            let mut handoff = Handoff::default();
            let mut tx = match open.take() {
                Some(tx) => tx,
                None => self.store.begin().await?,
            };
            let keys: Vec<(&str, &str, &str)> =
                part.iter().map(|(t, i, d)| (t.as_str(), i.as_str(), d.as_str())).collect();
            lock_and_read_ahead(&mut tx, &keys, now).await?;
            for (tenant, intent_id, _) in part {
                released |= self.wake_one(&mut tx, tenant, intent_id, claim_until, now, &mut handoff).await?;
            }
            tx.commit().await?;
            handoff.deliver();
        }
        if let Some(nothing_due) = open {
            nothing_due.commit().await?;
        }
        if released {
            self.released.notify_waiters();
        }
        Ok(due.len())
    }

    /// Re-evaluates one claimed intent (its debtor locked); whether it was
    /// released and left ready. A release a waiting stream has credit for is
    /// leased to it at once, in this transaction (`handoff`).
    async fn wake_one(
        &self,
        tx: &mut Tx,
        tenant: &str,
        intent_id: &str,
        claim_until: i64,
        now: DateTime<Utc>,
        handoff: &mut Handoff,
    ) -> AppResult<bool> {
        let mut row = match tx.get_intent(tenant, intent_id).await.map_err(AppError::from) {
            Ok(Some(row)) => row,
            Ok(None) => return Ok(false),
            // A row that does not decode cannot even be held: it stays claimed,
            // is never released, and is tried again when the claim lapses
            // (counted, logged; readiness reports it once overdue).
            Err(AppError::Unreadable { .. }) => return Ok(false),
            Err(e) => return Err(e),
        };
        // Changed since the claim (cancelled, or made due again): leave it.
        if row.status != IntentStatus::Deferred || row.next_eval_at != Some(claim_until) {
            return Ok(false);
        }
        let submission = match Submission::of_row(&row) {
            Ok(submission) => submission,
            Err(unreadable) => {
                self.hold(tx, &mut row, None, &unreadable, now);
                tx.update_intent(&row).await?;
                return Ok(false);
            }
        };
        let (decision, preferences) = match self.decide_in(tx, &submission.intent, None, now).await {
            Ok(decided) => decided,
            Err(AppError::Store(e)) => return Err(e.into()),
            Err(undecidable) => {
                self.hold(tx, &mut row, Some(&submission.intent), &undecidable, now);
                tx.update_intent(&row).await?;
                return Ok(false);
            }
        };
        self.apply(tx, &mut row, &submission.intent, &decision, preferences.as_ref(), now).await?;
        tx.update_intent(&row).await?;
        if row.status != IntentStatus::Released {
            return Ok(false);
        }
        // The credit goes back on every return below that does not hand the contact over.
        let Some(credit) = self.waiters.take_one(tenant, row.channel) else { return Ok(true) };
        // Held back by a rate limit: it stays ready, as a lease would leave it.
        if self.limits.admit(tenant, row.channel).is_err() {
            return Ok(true);
        }
        let dispatch_id = row.dispatch_id.clone().unwrap_or_default();
        let Some(mut dispatch) = tx.get_dispatch(&dispatch_id).await? else { return Ok(true) };
        self.lease_in(tx, &mut dispatch, &mut row, &submission.intent, &decision, credit.lease(), now).await?;
        // Sent once the transaction commits; if it does not, the credit goes back.
        handoff.push(credit, (dispatch, submission));
        Ok(false)
    }
}
