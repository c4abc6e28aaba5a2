//! Rules in force: snapshots for replays, and swapping in a reloaded book.

use std::sync::Arc;

use serde_json::json;

use super::{App, AppResult, millis};
use crate::audit::AuditEvent;
use crate::domain::AuditEventKind;
use crate::rules::RuleBook;
use crate::rules::coverage::{DEFAULT_LOOKAHEAD_DAYS, DEFAULT_MIN_HORIZON_DAYS, coverage};

impl App {
    /// Logs a warning for each file whose holidays are confirmed fewer than
    /// [`DEFAULT_MIN_HORIZON_DAYS`] ahead (at start and at each reload): the
    /// rules keep working, but a decree may be missing.
    pub fn warn_of_short_horizons(&self, book: &RuleBook) {
        let today = self.clock.now().date_naive();
        for jurisdiction in book.jurisdictions() {
            let coverage = coverage(jurisdiction, today, DEFAULT_LOOKAHEAD_DAYS);
            if coverage.is_short(today, DEFAULT_MIN_HORIZON_DAYS) {
                let horizon = coverage
                    .horizon
                    .as_ref()
                    .map_or_else(|| "not stated (no `confirmed_through`)".to_string(), |h| h.describe(today));
                tracing::warn!(
                    jurisdiction = %jurisdiction.code,
                    file = %jurisdiction.file,
                    pending_decisions = coverage.pending.len(),
                    "holidays {horizon}: confirm the next decrees (`ventana rules coverage`)",
                );
            }
        }
    }

    /// Stores the text of every loaded rules file, so replays can rebuild them.
    pub async fn save_rules_snapshots(&self, book: &RuleBook) -> AppResult<()> {
        let now = millis(self.clock.now());
        for file in book.jurisdictions() {
            self.store.save_rules_snapshot(&file.hash, &file.file, &file.source, now).await?;
        }
        Ok(())
    }

    /// Puts a validated rule book in force and records it in the audit chain
    /// of every tenant it affects: `tenant` (the caller's), every tenant with
    /// a chain and every tenant with a key. Each event names the old and new
    /// version hashes that tenant may see (the law and its own policies, never
    /// another tenant's) and the key that reloaded.
    pub async fn replace_rules(&self, book: RuleBook, tenant: &str, key_prefix: &str) -> AppResult<()> {
        let versions = |book: &RuleBook, audience: &str| -> Vec<String> {
            book.jurisdictions()
                .iter()
                .filter(|j| j.tenant.as_deref().is_none_or(|t| t == audience))
                .map(|j| {
                    format!("{}{}@{}", j.code, j.tenant.as_deref().map(|t| format!("+{t}")).unwrap_or_default(), j.hash)
                })
                .collect()
        };
        let mut audience: std::collections::BTreeSet<String> = self.store.audit_tenants().await?.into_iter().collect();
        audience.extend(self.store.key_tenants().await?);
        audience.insert(tenant.to_string());
        let old_book = self.rules();
        self.save_rules_snapshots(&book).await?;
        let now = self.clock.now();
        let mut tx = self.store.begin().await?;
        for audience in &audience {
            let (old, new) = (versions(&old_book, audience), versions(&book, audience));
            let detail = json!({"old": old, "new": new, "by_key": key_prefix}).to_string();
            tx.audit(AuditEvent {
                rules_version: Some(new.join(";")),
                ..AuditEvent::new(audience, millis(now), AuditEventKind::RulesReloaded, detail)
            });
        }
        tx.commit().await?;
        self.warn_of_short_horizons(&book);
        *self.rules.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(book);
        self.wake();
        Ok(())
    }
}
