//! The life of a contact intent: submit, re-evaluate when due, lease to an
//! adapter, acknowledge, cancel; and debtor preferences. Each step is one
//! database transaction that holds the debtor's lock, so checks that count
//! history (caps, cooldowns) never race.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use chrono::{DateTime, Duration, Utc};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tokio::sync::Notify;

use crate::audit::{AuditEvent, with_decision};
use crate::clock::Clock;
use crate::domain::{Channel, ContactEvent, Intent, Outcome, Preferences};
use crate::engine::{Decision, RejectCode, Verdict, evaluate};
use crate::intent_json::{decision_json, intent_to_json, parse_intent};
use crate::preferences::{PreferenceRecord, Statements};
use crate::rate_limit::{Held, RateLimitConfig, RateLimits};
use crate::rules::RuleBook;
use crate::store::{DispatchRow, EventRow, IntentRow, PreferencesRow, Store, StoreError, Tx};

/// Debtors re-evaluated per PostgreSQL transaction when waking due intents.
const WAKE_DEBTORS_PER_TRANSACTION: usize = 64;

/// How far back the history that caps and cooldowns count is loaded.
pub const HISTORY_LOOKBACK_DAYS: i64 = 400;

/// Why a lifecycle step was refused.
#[derive(Debug, thiserror::Error)]
pub enum LifecycleError {
    #[error("{0}")]
    InvalidArgument(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    AlreadyExists(String),
    #[error("{0}")]
    FailedPrecondition(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

pub type LifecycleResult<T> = Result<T, LifecycleError>;

/// An adapter's report on a leased contact.
#[derive(Clone, Debug)]
pub struct Ack {
    /// The caller's tenant (`None`: a built-in adapter, any tenant).
    pub tenant: Option<String>,
    pub dispatch_id: String,
    pub outcome: AckOutcome,
    /// When the adapter says the outcome happened.
    pub at: DateTime<Utc>,
}

/// An intent as submitted: what the engine reads plus what adapters need.
#[derive(Clone, Debug, PartialEq)]
pub struct Submission {
    pub intent: Intent,
    pub priority: i32,
    pub payload: BTreeMap<String, String>,
}

impl Submission {
    /// Canonical JSON, stored as the intent's body.
    pub fn to_json(&self) -> String {
        json!({"intent": intent_to_json(&self.intent), "priority": self.priority, "payload": self.payload}).to_string()
    }

    /// Reads a stored body back.
    pub fn from_json(body: &str) -> LifecycleResult<Submission> {
        let corrupt = |e: String| LifecycleError::FailedPrecondition(format!("stored intent is unreadable: {e}"));
        let value: Value = serde_json::from_str(body).map_err(|e| corrupt(e.to_string()))?;
        let (intent, _) = parse_intent(&value["intent"]).map_err(|e| corrupt(e.to_string()))?;
        let priority = value["priority"].as_i64().and_then(|p| i32::try_from(p).ok()).unwrap_or_default();
        let payload = serde_json::from_value(value["payload"].clone()).map_err(|e| corrupt(e.to_string()))?;
        Ok(Submission { intent, priority, payload })
    }
}

/// Everything the lifecycle steps share.
pub struct App {
    pub store: Store,
    pub clock: Clock,
    rules: RwLock<Arc<RuleBook>>,
    /// Woken when a deferred intent may have become due sooner.
    pub wakeup: Notify,
    /// Woken when contacts were released (built-in adapters wait on it).
    pub released: Notify,
    /// Throughput limits on leases (per replica).
    pub limits: RateLimits,
    /// How long a claim on due intents lasts.
    claim: Duration,
    /// API keys recently found (authentication).
    pub keys: crate::api::auth::KeyCache,
}

/// Locks the debtors of `keys` (tenant, intent id, debtor id) in the one
/// order every batch uses (so batches never deadlock), then reads their
/// intents, histories and preferences in a few queries.
async fn lock_and_read_ahead(tx: &mut Tx, keys: &[(&str, &str, &str)], now: DateTime<Utc>) -> LifecycleResult<()> {
    let mut debtors: Vec<(&str, &str)> = keys.iter().map(|(tenant, _, debtor)| (*tenant, *debtor)).collect();
    debtors.sort_unstable();
    debtors.dedup();
    tx.lock_debtors(&debtors).await?;
    tx.prefetch(keys, millis(now - Duration::days(HISTORY_LOOKBACK_DAYS))).await?;
    Ok(())
}

fn millis(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

/// An instant from stored milliseconds.
pub fn instant(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).unwrap_or_default()
}

fn hash(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

/// The files behind a resolution, as `CODE@hash` (tenant policies
/// `CODE+tenant@hash`), separated by `;`: what a replay needs to rebuild them.
pub fn layer_versions(resolved: &crate::rules::Resolved<'_>) -> String {
    let names: Vec<String> = resolved
        .layers
        .iter()
        .map(|l| match &l.tenant {
            Some(tenant) => format!("{}+{tenant}@{}", l.code, l.hash),
            None => format!("{}@{}", l.code, l.hash),
        })
        .collect();
    names.join(";")
}

/// How an instant reads in the recipient's first zone.
fn local_reading(t: DateTime<Utc>, zones: &[chrono_tz::Tz]) -> (Option<String>, Option<String>) {
    match zones.first() {
        Some(zone) => (
            Some(t.with_timezone(zone).format("%Y-%m-%d %H:%M:%S").to_string()),
            Some(zones.iter().map(|z| z.name()).collect::<Vec<_>>().join(" ")),
        ),
        None => (None, None),
    }
}

/// Statuses in which an intent can still be cancelled: not handed to anyone
/// yet (a held one waits for an operator), or in an adapter's hands.
const CANCELLABLE: [&str; 4] = ["deferred", "released", "held", "leased"];

impl App {
    /// `claim_seconds`: how long a claim on due intents lasts before another replica may take them.
    pub fn new(store: Store, rules: RuleBook, clock: Clock, limits: &RateLimitConfig, claim_seconds: u32) -> App {
        App {
            claim: Duration::seconds(i64::from(claim_seconds)),
            store,
            clock,
            rules: RwLock::new(Arc::new(rules)),
            wakeup: Notify::new(),
            released: Notify::new(),
            limits: RateLimits::new(limits),
            keys: crate::api::auth::KeyCache::new(crate::api::auth::KEY_CACHE_TTL),
        }
    }

    /// The rules in force.
    pub fn rules(&self) -> Arc<RuleBook> {
        self.rules.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Wakes the scheduler here and, on PostgreSQL, in every other replica.
    async fn wake(&self) {
        self.wakeup.notify_one();
        if let Err(e) = self.store.notify_wakeup().await {
            tracing::warn!(error = %e, "cannot notify other replicas");
        }
    }

    /// Stores the text of every loaded rules file, so replays can rebuild them.
    pub async fn save_rules_snapshots(&self, book: &RuleBook) -> LifecycleResult<()> {
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
    pub async fn replace_rules(&self, book: RuleBook, tenant: &str, key_prefix: &str) -> LifecycleResult<()> {
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
            tx.audit(AuditEvent {
                tenant: audience.clone(),
                at: millis(now),
                kind: "rules_reloaded".into(),
                rules_version: Some(new.join(";")),
                detail: json!({"old": old, "new": new, "by_key": key_prefix}).to_string(),
                ..AuditEvent::default()
            });
        }
        tx.commit().await?;
        *self.rules.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(book);
        self.wake().await;
        Ok(())
    }

    /// An audit event about `row` at `now`.
    /// `intent` is `None` when the stored body cannot be read: the event then
    /// names the jurisdiction's own zones.
    fn event(
        &self,
        kind: &str,
        row: &IntentRow,
        intent: Option<&Intent>,
        now: DateTime<Utc>,
        detail: Value,
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
            tenant: row.tenant.clone(),
            at: millis(now),
            kind: kind.to_string(),
            intent_id: Some(row.intent_id.clone()),
            debtor_id: Some(row.debtor_id.clone()),
            debt_id: row.debt_id.clone(),
            channel: Some(row.channel.clone()),
            jurisdiction: Some(row.jurisdiction.clone()),
            time_zone,
            local_time,
            outcome: row.outcome.clone(),
            rules_version: (!layers.is_empty()).then_some(layers),
            detail: detail.to_string(),
            ..AuditEvent::default()
        }
    }

    /// Checks that an intent's jurisdiction resolves for its tenant.
    pub fn check_jurisdiction(&self, intent: &Intent) -> LifecycleResult<()> {
        self.rules()
            .resolve(&intent.tenant, &intent.jurisdiction)
            .map(|_| ())
            .map_err(|e| LifecycleError::InvalidArgument(format!("intent.jurisdiction: {e}")))
    }

    fn decide(
        &self,
        intent: &Intent,
        history: &[EventRow],
        preferences: Option<&PreferencesRow>,
        skip_dispatch: Option<&str>,
        now: DateTime<Utc>,
    ) -> LifecycleResult<Decision> {
        let rules = self.rules();
        let resolved = rules.resolve(&intent.tenant, &intent.jurisdiction).map_err(|e| {
            LifecycleError::FailedPrecondition(format!("the intent's jurisdiction is no longer loaded: {e}"))
        })?;
        // A stored event or preference that cannot be read stops this decision:
        // skipping it would under-count a cap or forget an opt-out.
        let events: Vec<ContactEvent> = history
            .iter()
            .filter(|e| skip_dispatch.is_none_or(|skip| e.dispatch_id.as_deref() != Some(skip)))
            .map(contact_event)
            .collect::<Result<_, _>>()
            .map_err(|e| LifecycleError::FailedPrecondition(format!("a stored contact event cannot be read: {e}")))?;
        let preferences = match preferences {
            Some(p) => PreferenceRecord::parse(&p.prefs, p.updated_at, &p.source)
                .map_err(|e| LifecycleError::FailedPrecondition(format!("the debtor's {e}")))?
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

    /// Submits one intent inside `tx` (which the caller commits). Returns the
    /// stored row, and whether it was already there.
    pub async fn submit_in(
        &self,
        tx: &mut Tx,
        submission: &Submission,
        now: DateTime<Utc>,
    ) -> LifecycleResult<(IntentRow, bool)> {
        let intent = &submission.intent;
        self.check_jurisdiction(intent)?;
        let body = submission.to_json();
        let body_hash = hash(&body);
        tx.lock_debtor(&intent.tenant, &intent.debtor_id).await?;
        if let Some(existing) = tx.get_intent(&intent.tenant, &intent.intent_id).await? {
            if existing.body_hash == body_hash {
                return Ok((existing, true));
            }
            return Err(LifecycleError::AlreadyExists(format!(
                "intent_id {:?} was already submitted with a different body",
                intent.intent_id
            )));
        }
        let since = millis(now - Duration::days(HISTORY_LOOKBACK_DAYS));
        let history = tx.history(&intent.tenant, &intent.debtor_id, since).await?;
        let preferences = tx.preferences(&intent.tenant, &intent.debtor_id).await?;
        let decision = self.decide(intent, &history, preferences.as_ref(), None, now)?;
        let mut row = IntentRow {
            tenant: intent.tenant.clone(),
            intent_id: intent.intent_id.clone(),
            debtor_id: intent.debtor_id.clone(),
            debt_id: intent.debt_id.clone(),
            channel: intent.channel.as_str().into(),
            jurisdiction: intent.jurisdiction.clone(),
            priority: i64::from(submission.priority),
            body,
            body_hash,
            status: String::new(),
            next_eval_at: None,
            decision: String::new(),
            dispatch_id: None,
            attempt: 0,
            outcome: None,
            created_at: millis(now),
            updated_at: millis(now),
        };
        let body: Value = serde_json::from_str(&row.body).unwrap_or(Value::Null);
        tx.audit(self.event("submitted", &row, Some(intent), now, json!({"body": body})));
        self.apply(tx, &mut row, intent, &decision, preferences.as_ref(), now).await?;
        tx.insert_intent(&row);
        Ok((row, false))
    }

    /// Submits intents in one transaction; each gets its own result.
    pub async fn submit(&self, submissions: &[Submission]) -> LifecycleResult<Vec<LifecycleResult<IntentRow>>> {
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
                Err(LifecycleError::Store(e)) => return Err(e.into()),
                other => results.push(other.map(|(row, _)| row)),
            }
        }
        tx.commit().await?;
        if results.iter().any(|r| r.as_ref().is_ok_and(|row| row.status == "deferred")) {
            self.wake().await;
        }
        if results.iter().any(|r| r.as_ref().is_ok_and(|row| row.status == "released")) {
            self.released.notify_waiters();
        }
        Ok(results)
    }

    /// Records `decision` on `row`: a release creates the dispatch and the
    /// contact event that caps count; a defer sets the wake-up instant.
    async fn apply(
        &self,
        tx: &mut Tx,
        row: &mut IntentRow,
        intent: &Intent,
        decision: &Decision,
        preferences: Option<&PreferencesRow>,
        now: DateTime<Utc>,
    ) -> LifecycleResult<()> {
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
                let dispatch_id = uuid::Uuid::new_v4().to_string();
                let not_after = not_after(decision, intent, now + Duration::hours(1));
                let dispatch = DispatchRow {
                    dispatch_id: dispatch_id.clone(),
                    tenant: row.tenant.clone(),
                    intent_id: row.intent_id.clone(),
                    debtor_id: row.debtor_id.clone(),
                    channel: row.channel.clone(),
                    priority: row.priority,
                    released_at: millis(now),
                    not_after: millis(not_after),
                    state: "ready".into(),
                    lease_expires_at: None,
                    attempt: 0,
                };
                tx.insert_dispatch(&dispatch);
                tx.insert_event(
                    &row.tenant,
                    &row.debtor_id,
                    row.debt_id.as_deref(),
                    &row.channel,
                    millis(now),
                    Outcome::Attempted.as_str(),
                    &dispatch_id,
                );
                row.status = "released".into();
                row.dispatch_id = Some(dispatch_id);
            }
            Verdict::Defer { until } => {
                row.status = "deferred".into();
                row.next_eval_at = Some(millis(until));
                row.dispatch_id = None;
            }
            Verdict::Reject { code } => {
                let expired = code == RejectCode::NoCompliantSlot
                    && intent.expires_at.is_some_and(|e| e <= now + Duration::days(crate::engine::SEARCH_HORIZON_DAYS));
                row.status = if expired { "expired" } else { "rejected" }.into();
                row.dispatch_id = None;
            }
        }
        let mut event = with_decision(self.event(&row.status, row, Some(intent), now, Value::Null), &stored);
        // The inputs besides rules and history, so a replay can use them.
        let preferences: Value = preferences.and_then(|p| serde_json::from_str(&p.prefs).ok()).unwrap_or(Value::Null);
        event.detail =
            json!({"decision": stored, "dispatch_id": row.dispatch_id, "preferences": preferences}).to_string();
        tx.audit(event);
        Ok(())
    }

    /// Holds an intent whose stored data cannot be read or decided on: no
    /// contact, no further wake-ups, an audit event, a metric and an error
    /// log, so an operator can cancel it (or fix and resubmit it). Only this
    /// intent stops; the round it was found in goes on.
    fn hold(
        &self,
        tx: &mut Tx,
        row: &mut IntentRow,
        intent: Option<&Intent>,
        why: &LifecycleError,
        now: DateTime<Utc>,
    ) {
        metrics::counter!(crate::telemetry::HELD_INTENTS).increment(1);
        tracing::error!(tenant = %row.tenant, intent_id = %row.intent_id, why = %why, "intent held: no contact until an operator acts");
        let stored = json!({
            "decision": "hold",
            "code": "UNREADABLE",
            "reasons": [{"message": format!("held: {why}; no contact until an operator cancels the intent (or fixes the stored data and resubmits it)")}],
            "decided_at": now.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        });
        row.decision = stored.to_string();
        row.status = "held".into();
        row.next_eval_at = None;
        row.dispatch_id = None;
        row.updated_at = millis(now);
        tx.audit(with_decision(self.event("held", row, intent, now, Value::Null), &stored));
    }

    /// Takes back a released contact that can no longer be decided on and holds its intent.
    async fn withdraw_and_hold(
        &self,
        tx: &mut Tx,
        dispatch: &mut DispatchRow,
        row: &mut IntentRow,
        intent: Option<&Intent>,
        why: &LifecycleError,
        now: DateTime<Utc>,
    ) -> LifecycleResult<()> {
        dispatch.state = "withdrawn".into();
        tx.update_dispatch(dispatch).await?;
        tx.delete_event(&dispatch.dispatch_id).await?;
        let detail = json!({"dispatch_id": dispatch.dispatch_id, "why": why.to_string()});
        tx.audit(self.event("withdrawn", row, intent, now, detail));
        self.hold(tx, row, intent, why, now);
        tx.update_intent(row).await?;
        Ok(())
    }

    /// Re-evaluates deferred intents that are due; returns how many.
    pub async fn wake_due(&self, limit: i64) -> LifecycleResult<usize> {
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
            let mut tx = match open.take() {
                Some(tx) => tx,
                None => self.store.begin().await?,
            };
            let keys: Vec<(&str, &str, &str)> =
                part.iter().map(|(t, i, d)| (t.as_str(), i.as_str(), d.as_str())).collect();
            lock_and_read_ahead(&mut tx, &keys, now).await?;
            for (tenant, intent_id, debtor_id) in part {
                released |= self.wake_one(&mut tx, tenant, intent_id, debtor_id, claim_until, now).await?;
            }
            tx.commit().await?;
        }
        if let Some(nothing_due) = open {
            nothing_due.commit().await?;
        }
        if released {
            self.released.notify_waiters();
        }
        Ok(due.len())
    }

    /// Re-evaluates one claimed intent (its debtor locked); whether it was released.
    async fn wake_one(
        &self,
        tx: &mut Tx,
        tenant: &str,
        intent_id: &str,
        debtor_id: &str,
        claim_until: i64,
        now: DateTime<Utc>,
    ) -> LifecycleResult<bool> {
        let Some(mut row) = tx.get_intent(tenant, intent_id).await? else { return Ok(false) };
        // Changed since the claim (cancelled, or made due again): leave it.
        if row.status != "deferred" || row.next_eval_at != Some(claim_until) {
            return Ok(false);
        }
        let submission = match Submission::from_json(&row.body) {
            Ok(submission) => submission,
            Err(unreadable) => {
                self.hold(tx, &mut row, None, &unreadable, now);
                tx.update_intent(&row).await?;
                return Ok(false);
            }
        };
        let history = tx.history(tenant, debtor_id, millis(now - Duration::days(HISTORY_LOOKBACK_DAYS))).await?;
        let preferences = tx.preferences(tenant, debtor_id).await?;
        let decision = match self.decide(&submission.intent, &history, preferences.as_ref(), None, now) {
            Ok(decision) => decision,
            Err(LifecycleError::Store(e)) => return Err(e.into()),
            Err(undecidable) => {
                self.hold(tx, &mut row, Some(&submission.intent), &undecidable, now);
                tx.update_intent(&row).await?;
                return Ok(false);
            }
        };
        self.apply(tx, &mut row, &submission.intent, &decision, preferences.as_ref(), now).await?;
        tx.update_intent(&row).await?;
        Ok(row.status == "released")
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
    ) -> LifecycleResult<Vec<(DispatchRow, Submission)>> {
        let now = self.clock.now();
        let channel_words: Vec<String> = channels.iter().map(|c| c.as_str().to_string()).collect();
        let mut tx = self.store.begin().await?;
        let open = tx.open_dispatches(tenant, &channel_words, millis(now), max).await?;
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
            let Some(mut row) = tx.get_intent(&dispatch.tenant, &dispatch.intent_id).await? else { continue };
            let submission = match Submission::from_json(&row.body) {
                Ok(submission) => submission,
                Err(unreadable) => {
                    self.withdraw_and_hold(&mut tx, &mut dispatch, &mut row, None, &unreadable, now).await?;
                    continue;
                }
            };
            let history =
                tx.history(&row.tenant, &row.debtor_id, millis(now - Duration::days(HISTORY_LOOKBACK_DAYS))).await?;
            let preferences = tx.preferences(&row.tenant, &row.debtor_id).await?;
            let decision =
                match self.decide(&submission.intent, &history, preferences.as_ref(), Some(&dispatch.dispatch_id), now)
                {
                    Ok(decision) => decision,
                    Err(LifecycleError::Store(e)) => return Err(e.into()),
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
                dispatch.state = "leased".into();
                dispatch.attempt += 1;
                dispatch.lease_expires_at = Some(millis(now + lease));
                dispatch.not_after = millis(not_after(&decision, &submission.intent, now + lease));
                tx.update_dispatch(&dispatch).await?;
                row.status = "leased".into();
                row.attempt = dispatch.attempt;
                row.updated_at = millis(now);
                tx.update_intent(&row).await?;
                let detail = json!({
                    "dispatch_id": dispatch.dispatch_id,
                    "attempt": dispatch.attempt,
                    "not_after": instant(dispatch.not_after).to_rfc3339(),
                    "lease_expires_at": instant(millis(now + lease)).to_rfc3339(),
                });
                tx.audit(self.event("leased", &row, Some(&submission.intent), now, detail));
                leased.push((dispatch, submission));
            } else {
                dispatch.state = "withdrawn".into();
                tx.update_dispatch(&dispatch).await?;
                tx.delete_event(&dispatch.dispatch_id).await?;
                let detail = json!({"dispatch_id": dispatch.dispatch_id, "why": "no longer allowed when an adapter asked for it"});
                tx.audit(self.event("withdrawn", &row, Some(&submission.intent), now, detail));
                self.apply(&mut tx, &mut row, &submission.intent, &decision, preferences.as_ref(), now).await?;
                tx.update_intent(&row).await?;
                deferred |= row.status == "deferred";
            }
        }
        tx.commit().await?;
        if deferred {
            self.wake().await;
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
    ) -> LifecycleResult<IntentRow> {
        let ack = Ack { tenant: tenant.map(str::to_string), dispatch_id: dispatch_id.to_string(), outcome, at };
        let mut results = self.ack_all(std::slice::from_ref(&ack)).await?;
        results.pop().unwrap_or_else(|| Err(LifecycleError::NotFound(format!("dispatch_id {dispatch_id:?} not found"))))
    }

    /// Records several outcomes in one transaction; each gets its own result.
    /// The debtors are locked first, in the one order every batch uses.
    pub async fn ack_all(&self, acks: &[Ack]) -> LifecycleResult<Vec<LifecycleResult<IntentRow>>> {
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
        let mut results = Vec::with_capacity(acks.len());
        for ack in acks {
            match self.ack_in(&mut tx, ack, now).await {
                Err(LifecycleError::Store(e)) => return Err(e.into()),
                other => results.push(other),
            }
        }
        tx.commit().await?;
        self.wake().await;
        Ok(results)
    }

    /// One ack inside `tx` (its debtor locked). A refusal (not found, not
    /// leased) is decided before anything is written.
    async fn ack_in(&self, tx: &mut Tx, ack: &Ack, now: DateTime<Utc>) -> LifecycleResult<IntentRow> {
        let (dispatch_id, outcome, at) = (ack.dispatch_id.as_str(), ack.outcome, ack.at);
        let not_found = || LifecycleError::NotFound(format!("dispatch_id {dispatch_id:?} not found"));
        let mut dispatch = tx.get_dispatch(dispatch_id).await?.ok_or_else(not_found)?;
        if ack.tenant.as_ref().is_some_and(|t| *t != dispatch.tenant) {
            return Err(not_found());
        }
        tx.lock_debtor(&dispatch.tenant, &dispatch.debtor_id).await?;
        let mut row = tx.get_intent(&dispatch.tenant, &dispatch.intent_id).await?.ok_or_else(not_found)?;
        match dispatch.state.as_str() {
            "acked" if row.outcome.as_deref() == Some(outcome.as_str()) => return Ok(row),
            "acked" => {
                return Err(LifecycleError::FailedPrecondition(format!(
                    "dispatch {dispatch_id} was already acknowledged as {}",
                    row.outcome.unwrap_or_default()
                )));
            }
            // Cancelled while the adapter held it: its report still counts.
            "leased" | "cancelled" => {}
            other => {
                return Err(LifecycleError::FailedPrecondition(format!(
                    "dispatch {dispatch_id} is {other}, not leased"
                )));
            }
        }
        // The body only names the zones in the audit event: an unreadable one
        // must not lose the adapter's report.
        let submission = Submission::from_json(&row.body).ok();
        let channel: Channel = row.channel.parse().map_err(LifecycleError::FailedPrecondition)?;
        let cancelled = dispatch.state == "cancelled";
        dispatch.state = "acked".into();
        tx.update_dispatch(&dispatch).await?;
        tx.set_event_outcome(dispatch_id, outcome.history_outcome().as_str()).await?;
        if !cancelled {
            row.status = "done".into();
        }
        row.outcome = Some(outcome.as_str().into());
        row.updated_at = millis(now);
        tx.update_intent(&row).await?;
        let detail = json!({"dispatch_id": dispatch_id, "reported_at": at.to_rfc3339(), "attempt": dispatch.attempt});
        tx.audit(self.event("acked", &row, submission.as_ref().map(|s| &s.intent), now, detail));
        if matches!(outcome, AckOutcome::OptedOut | AckOutcome::WrongParty) {
            let mut record = match tx.preferences(&row.tenant, &row.debtor_id).await? {
                Some(p) => PreferenceRecord::parse(&p.prefs, p.updated_at, &p.source).map_err(|e| {
                    LifecycleError::FailedPrecondition(format!(
                        "the debtor's {e}; the report was not recorded (an operator must repair the record first)"
                    ))
                })?,
                None => PreferenceRecord::default(),
            };
            let source = format!("adapter ack {dispatch_id}");
            if outcome == AckOutcome::OptedOut {
                record.apply(&Statements { opt_out: vec![channel], ..Statements::default() }, at, &source);
            } else {
                record.found_wrong_party(channel, at);
            }
            let text = record.to_json();
            tx.upsert_preferences(&row.tenant, &row.debtor_id, &text, &source, millis(now)).await?;
            tx.audit(preference_event(&row.tenant, &row.debtor_id, &record, &source, &[], now));
            tx.wake_debtor(&row.tenant, &row.debtor_id, millis(now)).await?;
        }
        Ok(row)
    }

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
    ) -> LifecycleResult<Vec<(IntentRow, bool)>> {
        let now = self.clock.now();
        let mut tx = self.store.begin().await?;
        let rows = match target {
            CancelTarget::Intent(intent_id) => {
                let row = tx
                    .get_intent(tenant, intent_id)
                    .await?
                    .ok_or_else(|| LifecycleError::NotFound(format!("intent_id {intent_id:?} not found")))?;
                tx.lock_debtor(tenant, &row.debtor_id).await?;
                match row.status.as_str() {
                    "cancelled" => {
                        let in_flight = row.dispatch_id.is_some();
                        return Ok(vec![(row, in_flight)]);
                    }
                    s if CANCELLABLE.contains(&s) => vec![row],
                    other => {
                        return Err(LifecycleError::FailedPrecondition(format!(
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
            if !CANCELLABLE.contains(&row.status.as_str()) {
                continue;
            }
            let in_flight = row.status == "leased";
            let mut dispatch = match row.dispatch_id.as_deref() {
                Some(dispatch_id) => tx.get_dispatch(dispatch_id).await?,
                None => None,
            };
            if let Some(dispatch) = dispatch.as_mut() {
                if in_flight {
                    // Kept with its contact event: the adapter may have made the contact.
                    dispatch.state = "cancelled".into();
                } else {
                    dispatch.state = "withdrawn".into();
                    tx.delete_event(&dispatch.dispatch_id).await?;
                }
                tx.update_dispatch(dispatch).await?;
            }
            let withdrawn = if in_flight { None } else { row.dispatch_id.take() };
            row.status = "cancelled".into();
            row.next_eval_at = None;
            row.updated_at = millis(now);
            tx.update_intent(&row).await?;
            // A held intent's body may be unreadable: it can still be cancelled.
            let submission = Submission::from_json(&row.body).ok();
            let detail = json!({
                "reason": reason,
                "withdrawn_dispatch_id": withdrawn,
                "in_flight_dispatch_id": if in_flight { row.dispatch_id.clone() } else { None },
            });
            tx.audit(self.event("cancelled", &row, submission.as_ref().map(|s| &s.intent), now, detail));
            cancelled.push((row, in_flight));
        }
        tx.commit().await?;
        Ok(cancelled)
    }

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
    ) -> LifecycleResult<(PreferenceRecord, Vec<String>, DateTime<Utc>)> {
        let now = self.clock.now();
        let mut tx = self.store.begin().await?;
        tx.lock_debtor(tenant, debtor_id).await?;
        let mut record = match tx.preferences(tenant, debtor_id).await? {
            // A damaged record is not overwritten: what it held might be an opt-out.
            Some(p) => PreferenceRecord::parse(&p.prefs, p.updated_at, &p.source).map_err(|e| {
                LifecycleError::FailedPrecondition(format!(
                    "the debtor's {e}; nothing was changed (an operator must repair the record first)"
                ))
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
        self.wake().await;
        Ok((record, superseded, now))
    }

    /// A dry-run decision against the stored history and preferences.
    pub async fn explain(&self, intent: &Intent, at: DateTime<Utc>) -> LifecycleResult<Decision> {
        self.check_jurisdiction(intent)?;
        let history = self
            .store
            .history(&intent.tenant, &intent.debtor_id, millis(at - Duration::days(HISTORY_LOOKBACK_DAYS)))
            .await?;
        let preferences = self.store.preferences(&intent.tenant, &intent.debtor_id).await?;
        self.decide(intent, &history, preferences.as_ref(), None, at)
    }
}

/// The audit event of a preference change: the record after it, who said
/// it and what of it newer statements override.
fn preference_event(
    tenant: &str,
    debtor_id: &str,
    record: &PreferenceRecord,
    source: &str,
    superseded: &[String],
    now: DateTime<Utc>,
) -> AuditEvent {
    AuditEvent {
        tenant: tenant.to_string(),
        at: millis(now),
        kind: "preference_changed".into(),
        debtor_id: Some(debtor_id.to_string()),
        detail: json!({"preferences": record, "source": source, "superseded": superseded}).to_string(),
        ..AuditEvent::default()
    }
}

/// What to cancel.
pub enum CancelTarget<'a> {
    Intent(&'a str),
    Debt { debtor_id: &'a str, debt_id: Option<&'a str> },
}

/// An adapter's report on a leased contact.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AckOutcome {
    Sent,
    Delivered,
    Failed,
    NoAnswer,
    Conversation,
    WrongParty,
    OptedOut,
}

impl AckOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            AckOutcome::Sent => "sent",
            AckOutcome::Delivered => "delivered",
            AckOutcome::Failed => "failed",
            AckOutcome::NoAnswer => "no_answer",
            AckOutcome::Conversation => "conversation",
            AckOutcome::WrongParty => "wrong_party",
            AckOutcome::OptedOut => "opted_out",
        }
    }

    /// What the contact history records (and caps count).
    pub fn history_outcome(self) -> Outcome {
        match self {
            AckOutcome::Sent | AckOutcome::WrongParty | AckOutcome::OptedOut => Outcome::Attempted,
            AckOutcome::Delivered => Outcome::Delivered,
            AckOutcome::Failed => Outcome::Failed,
            AckOutcome::NoAnswer => Outcome::NoAnswer,
            AckOutcome::Conversation => Outcome::Conversation,
        }
    }
}

/// Until when a released contact may be made: the end of the allowed window
/// it falls in (`fallback` if the rules name none), and never after the
/// intent expires.
fn not_after(decision: &Decision, intent: &Intent, fallback: DateTime<Utc>) -> DateTime<Utc> {
    let window_end = decision.window_end.unwrap_or(fallback);
    intent.expires_at.map_or(window_end, |expires| window_end.min(expires))
}

/// A stored contact event as the engine reads it.
pub fn contact_event(e: &EventRow) -> Result<ContactEvent, String> {
    Ok(ContactEvent {
        channel: e.channel.parse()?,
        at: DateTime::from_timestamp_millis(e.at).ok_or_else(|| format!("instant {} ms is out of range", e.at))?,
        outcome: e.outcome.parse()?,
        debt_id: e.debt_id.clone(),
    })
}
