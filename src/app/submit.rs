//! Submit: one intent or a batch, decided and stored in one transaction.

use chrono::{DateTime, Utc};

use super::decision::body_detail;
use super::{App, AppError, AppResult, Submission, hash, lock_and_read_ahead, millis};
use crate::domain::{AuditEventKind, IntentStatus};
use crate::store::{IntentRow, Tx};

impl App {
    /// Submits one intent inside `tx` (which the caller commits). Returns the
    /// stored row, and whether it was already there.
    pub async fn submit_in(
        &self,
        tx: &mut Tx,
        submission: &Submission,
        now: DateTime<Utc>,
    ) -> AppResult<(IntentRow, bool)> {
        let intent = &submission.intent;
        self.check_jurisdiction(intent)?;
        let body = submission.to_json();
        let body_hash = hash(&body);
        tx.lock_debtor(&intent.tenant, &intent.debtor_id).await?;
        if let Some(existing) = tx.get_intent(&intent.tenant, &intent.intent_id).await? {
            if existing.body_hash == body_hash {
                return Ok((existing, true));
            }
            return Err(AppError::AlreadyExists(format!(
                "intent_id {:?} was already submitted with a different body",
                intent.intent_id
            )));
        }
        let (decision, preferences) = self.decide_in(tx, intent, None, now).await?;
        let mut row = IntentRow {
            tenant: intent.tenant.clone(),
            intent_id: intent.intent_id.clone(),
            debtor_id: intent.debtor_id.clone(),
            debt_id: intent.debt_id.clone(),
            channel: intent.channel,
            jurisdiction: intent.jurisdiction.clone(),
            priority: i64::from(submission.priority),
            body,
            body_hash,
            status: IntentStatus::Deferred, // what `apply` decides
            next_eval_at: None,
            decision: String::new(),
            dispatch_id: None,
            attempt: 0,
            outcome: None,
            created_at: millis(now),
            updated_at: millis(now),
        };
        tx.audit(self.event(AuditEventKind::Submitted, &row, Some(intent), now, body_detail(&row.body)));
        self.apply(tx, &mut row, intent, &decision, preferences.as_ref(), now).await?;
        tx.insert_intent(&row);
        Ok((row, false))
    }

    /// Submits intents in one transaction; each gets its own result.
    pub async fn submit(&self, submissions: &[Submission]) -> AppResult<Vec<AppResult<IntentRow>>> {
        let now = self.clock.now();
        let mut tx = self.store.begin().await?;
        if submissions.len() > 1 {
            let keys: Vec<(&str, &str, &str)> = submissions
                .iter()
                .map(|s| (s.intent.tenant.as_str(), s.intent.intent_id.as_str(), s.intent.debtor_id.as_str()))
                .collect();
            lock_and_read_ahead(&mut tx, &keys, now).await?;
        }
        let mut results = Vec::with_capacity(submissions.len());
        for submission in submissions {
            match self.submit_in(&mut tx, submission, now).await {
                Err(AppError::Store(e)) => return Err(e.into()),
                other => results.push(other.map(|(row, _)| row)),
            }
        }
        tx.commit().await?;
        if results.iter().any(|r| r.as_ref().is_ok_and(|row| row.status == IntentStatus::Deferred)) {
            self.wake();
        }
        if results.iter().any(|r| r.as_ref().is_ok_and(|row| row.status == IntentStatus::Released)) {
            self.released.notify_waiters();
        }
        Ok(results)
    }
}
