//! Contacts Ventana did not release (an inbound call or message from the
//! debtor, a contact made outside Ventana): recorded in the history that
//! caps, cooldowns and the one-response allowance read.

use chrono::{DateTime, Utc};
use serde_json::json;

use super::{App, AppResult, millis};
use crate::audit::AuditEvent;
use crate::domain::{AckOutcome, AuditEventKind, ContactEvent};
use crate::store::EventRow;

impl App {
    /// Records `event` of a debtor, said by `source`, with the adapter-style
    /// `outcome` it was reported with; the debtor's deferred intents are
    /// decided again now. Returns when it was recorded.
    pub async fn record_contact(
        &self,
        tenant: &str,
        debtor_id: &str,
        event: &ContactEvent,
        outcome: AckOutcome,
        source: &str,
    ) -> AppResult<DateTime<Utc>> {
        let now = self.clock.now();
        let mut tx = self.store.begin().await?;
        tx.lock_debtor(tenant, debtor_id).await?;
        let point = event.contact_point.as_ref();
        tx.insert_event(
            tenant,
            debtor_id,
            EventRow {
                debt_id: event.debt_id.clone(),
                channel: event.channel,
                at: millis(event.at),
                outcome: event.outcome,
                dispatch_id: None,
                contact_kind: point.map(|p| p.kind),
                contact_id: point.and_then(|p| p.id.clone()),
                initiator: event.initiator,
            },
        );
        let detail = json!({
            "at": event.at.to_rfc3339(),
            "initiator": event.initiator,
            "contact_point": point,
            "source": source,
        });
        tx.audit(AuditEvent {
            debtor_id: Some(debtor_id.to_string()),
            debt_id: event.debt_id.clone(),
            channel: Some(event.channel),
            outcome: Some(outcome),
            ..AuditEvent::new(tenant, millis(now), AuditEventKind::ContactRecorded, detail.to_string())
        });
        tx.wake_debtor(tenant, debtor_id, millis(now)).await?;
        tx.commit().await?;
        self.wake();
        Ok(now)
    }
}
