//! Preferences: a debtor's dated statements, merged into the stored record.

use chrono::{DateTime, Utc};
use serde_json::json;

use super::{App, AppError, AppResult, millis};
use crate::audit::AuditEvent;
use crate::domain::AuditEventKind;
use crate::preferences::{PreferenceRecord, Statements};

impl App {
    /// Records a debtor's statements made `at`, merged into the stored
    /// record item by item (see `preferences`); their deferred intents are
    /// re-evaluated now. Returns the record and the statements a newer
    /// stored one overrides.
    pub async fn set_preferences(
        &self,
        tenant: &str,
        debtor_id: &str,
        statements: &Statements,
        at: DateTime<Utc>,
        source: &str,
    ) -> AppResult<(PreferenceRecord, Vec<String>, DateTime<Utc>)> {
        let now = self.clock.now();
        let mut tx = self.store.begin().await?;
        tx.lock_debtor(tenant, debtor_id).await?;
        let mut record = match tx.preferences(tenant, debtor_id).await? {
            // A damaged record is not overwritten: what it held might be an opt-out.
            Some(p) => PreferenceRecord::parse(&p.prefs, p.updated_at, &p.source).map_err(|e| {
                AppError::unreadable(
                    "preferences",
                    format!("({tenant}, {debtor_id})"),
                    format!("the debtor's {e}; nothing was changed (an operator must repair the record first)"),
                )
            })?,
            None => PreferenceRecord::default(),
        };
        let superseded = record.apply(statements, at, source);
        let text = record.to_json();
        let latest = record.latest_source().unwrap_or(source).to_string();
        tx.upsert_preferences(tenant, debtor_id, &text, &latest, millis(now)).await?;
        tx.audit(preference_event(tenant, debtor_id, &record, source, &superseded, now));
        tx.wake_debtor(tenant, debtor_id, millis(now)).await?;
        tx.commit().await?;
        self.wake();
        Ok((record, superseded, now))
    }
}

/// The audit event of a preference change: the record after it, who said
/// it and what of it newer statements override.
pub(super) fn preference_event(
    tenant: &str,
    debtor_id: &str,
    record: &PreferenceRecord,
    source: &str,
    superseded: &[String],
    now: DateTime<Utc>,
) -> AuditEvent {
    let detail = json!({"preferences": record, "source": source, "superseded": superseded}).to_string();
    AuditEvent {
        debtor_id: Some(debtor_id.to_string()),
        ..AuditEvent::new(tenant, millis(now), AuditEventKind::PreferenceChanged, detail)
    }
}
