//! Explain: a dry-run decision against the stored history and preferences.

use chrono::{DateTime, Duration, Utc};

use super::{App, AppResult, HISTORY_LOOKBACK_DAYS, millis};
use crate::domain::Intent;
use crate::engine::Decision;

impl App {
    /// A dry-run decision against the stored history and preferences.
    pub async fn explain(&self, intent: &Intent, at: DateTime<Utc>) -> AppResult<Decision> {
        self.check_jurisdiction(intent)?;
        let history = self
            .store
            .history(
                &intent.tenant,
                &intent.debtor_id,
                millis(at - Duration::days(HISTORY_LOOKBACK_DAYS)),
                i64::MAX,
                None,
            )
            .await?;
        let preferences = self.store.preferences(&intent.tenant, &intent.debtor_id).await?;
        self.decide(intent, &history, preferences.as_ref(), None, at)
    }
}
