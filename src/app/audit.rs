//! What auditors run against the stored log: verify the chains, export a
//! filtered range (streaming, verified on the way), replay decisions, and
//! purge past the retention period behind a signed checkpoint.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;

use super::{AppError, AppResult, Submission, instant};
use crate::audit::{AuditRow, ChainBreak, ChainWalker, GENESIS};
use crate::domain::{AuditEventKind, Channel, ContactEvent, Preferences};
use crate::engine::{Verdict, evaluate};
use crate::preferences::PreferenceRecord;
use crate::rules::RuleBook;
use crate::store::{Store, StoreError, StoreResult};

/// Rows read per database round trip.
const PAGE: i64 = 5_000;

/// The result of verifying one tenant's chain.
#[derive(Clone, Debug, PartialEq)]
pub struct VerifyReport {
    pub tenant: String,
    pub rows: u64,
    pub broken: Option<ChainBreak>,
    /// About the purge checkpoint, if there is one.
    pub checkpoint: Option<String>,
}

/// Signs a purge checkpoint with the audit key.
pub fn checkpoint_signature(key: &str, tenant: &str, seq: i64, hash: &str, purged_at: i64) -> String {
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(key.as_bytes()) else {
        return String::new();
    };
    mac.update(format!("{tenant}\n{seq}\n{hash}\n{purged_at}").as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

/// Where a tenant's chain starts: after the purge checkpoint, or at 1.
async fn chain_start(store: &Store, tenant: &str, key: Option<&str>) -> StoreResult<(i64, String, Option<String>)> {
    Ok(match store.audit_checkpoint(tenant).await? {
        None => (1, GENESIS.to_string(), None),
        Some((seq, hash, purged_at, signature)) => {
            let note = match key {
                Some(key) if checkpoint_signature(key, tenant, seq, &hash, purged_at) == signature => {
                    format!("starts after purge checkpoint {seq} (signature valid)")
                }
                Some(_) => format!("purge checkpoint {seq} has an INVALID signature"),
                None => format!("starts after purge checkpoint {seq} (signature not checked: no audit key given)"),
            };
            (seq + 1, hash, Some(note))
        }
    })
}

/// Walks every event of `tenant` (or of every tenant) and reports the first break.
pub async fn verify(store: &Store, tenant: Option<&str>, key: Option<&str>) -> StoreResult<Vec<VerifyReport>> {
    let tenants = match tenant {
        Some(t) => vec![t.to_string()],
        None => store.audit_tenants().await?,
    };
    let mut reports = Vec::new();
    for tenant in tenants {
        let (first, prev, checkpoint) = chain_start(store, &tenant, key).await?;
        let mut walker = ChainWalker::new(&tenant, first, &prev);
        let mut after = first - 1;
        loop {
            let page = store.audit_page(&tenant, after, i64::MAX, PAGE).await?;
            let Some(last) = page.last() else { break };
            after = last.seq;
            page.iter().for_each(|row| walker.push(row));
        }
        let head = store.audit_head(&tenant).await?;
        walker.finish(head.as_ref().map(|(seq, hash)| (*seq, hash.as_str())));
        let mut broken = walker.broken.clone();
        if broken.is_none() && checkpoint.as_deref().is_some_and(|c| c.contains("INVALID")) {
            broken = Some(ChainBreak {
                tenant: tenant.clone(),
                seq: first - 1,
                reason: "the purge checkpoint's signature is invalid".into(),
            });
        }
        reports.push(VerifyReport { tenant, rows: walker.rows, broken, checkpoint });
    }
    Ok(reports)
}

/// A day (`YYYY-MM-DD`, UTC: its start, or with `end` the next day's start,
/// so a last day is inclusive) or an RFC 3339 instant: an export's bounds as
/// the CLI and the console both take them.
pub fn day_or_instant(text: &str, end: bool) -> Result<DateTime<Utc>, String> {
    if let Ok(day) = text.parse::<chrono::NaiveDate>() {
        let day = if end { day.succ_opt().unwrap_or(day) } else { day };
        return Ok(day.and_hms_opt(0, 0, 0).unwrap_or_default().and_utc());
    }
    crate::rules::compile::parse_instant(text).map_err(|e| format!("{e} (or a day YYYY-MM-DD)"))
}

/// Which events to export.
#[derive(Clone, Debug, Default)]
pub struct ExportFilter {
    pub tenant: String,
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub debtor_id: Option<String>,
    pub jurisdiction: Option<String>,
    pub channel: Option<Channel>,
}

impl ExportFilter {
    fn matches(&self, row: &AuditRow) -> bool {
        let time = row.event.at >= self.from.timestamp_millis() && row.event.at < self.to.timestamp_millis();
        let same =
            |want: &Option<String>, have: &Option<String>| want.as_ref().is_none_or(|w| have.as_ref() == Some(w));
        time && same(&self.debtor_id, &row.event.debtor_id)
            && same(&self.jurisdiction, &row.event.jurisdiction)
            && self.channel.is_none_or(|c| row.event.channel == Some(c))
    }
}

/// Reads an export page by page, verifying the chain across the whole
/// sequence range it covers (filtered-out rows are verified, not returned).
pub struct ExportCursor<'a> {
    store: &'a Store,
    filter: ExportFilter,
    after: i64,
    last: i64,
    walker: ChainWalker,
    pub exported: u64,
    pub first_seq: Option<i64>,
    pub last_seq: Option<i64>,
}

/// Where an interrupted export goes on: after the event `seq`, whose hash
/// was `hash` (what the exporter handed out with that event).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResumeAfter {
    pub seq: i64,
    pub hash: String,
}

impl<'a> ExportCursor<'a> {
    /// Opens an export of the events `filter` selects, from the start of its
    /// range or after `resume`. A resume point outside the range, or one
    /// whose event no longer has the hash it had, is refused.
    pub async fn open(
        store: &'a Store,
        filter: ExportFilter,
        resume: Option<ResumeAfter>,
    ) -> AppResult<ExportCursor<'a>> {
        let (min, max) =
            store.audit_seq_range(&filter.tenant, filter.from.timestamp_millis(), filter.to.timestamp_millis()).await?;
        let (first, last) = (min.unwrap_or(1), max.unwrap_or(0));
        let (chain_first, chain_prev, _) = chain_start(store, &filter.tenant, None).await?;
        let first = first.max(chain_first);
        let (after, prev) = match resume {
            None if first == chain_first => (first - 1, chain_prev),
            None => (first - 1, store.audit_hash(&filter.tenant, first - 1).await?.unwrap_or_default()),
            Some(resume) => {
                if resume.seq < first || resume.seq > last.max(first) {
                    return Err(AppError::InvalidArgument(format!(
                        "resume_token: event {} is outside this export's range ({first}..={last}); \
                         resume with the same filter",
                        resume.seq
                    )));
                }
                match store.audit_hash(&filter.tenant, resume.seq).await? {
                    Some(hash) if hash == resume.hash => {}
                    _ => {
                        return Err(AppError::DataLoss(format!(
                            "resume_token: event {} no longer has the hash it was exported with: the chain was altered",
                            resume.seq
                        )));
                    }
                }
                (resume.seq, resume.hash)
            }
        };
        let walker = ChainWalker::new(&filter.tenant, after + 1, &prev);
        Ok(ExportCursor { store, filter, after, last, walker, exported: 0, first_seq: None, last_seq: None })
    }

    /// The next rows to export; `None` at the end.
    pub async fn next_page(&mut self) -> StoreResult<Option<Vec<AuditRow>>> {
        if self.after >= self.last {
            return Ok(None);
        }
        let page = self.store.audit_page(&self.filter.tenant, self.after, self.last, PAGE).await?;
        let Some(last) = page.last() else {
            // Rows are missing from the end of the range.
            self.walker.finish(Some((self.last, "")));
            return Ok(None);
        };
        self.after = last.seq;
        let mut out = Vec::with_capacity(page.len());
        for row in page {
            self.walker.push(&row);
            if self.filter.matches(&row) {
                self.first_seq.get_or_insert(row.seq);
                self.last_seq = Some(row.seq);
                self.exported += 1;
                out.push(row);
            }
        }
        Ok(Some(out))
    }

    /// Whether every event read so far linked and hashed correctly.
    pub fn verified(&self) -> bool {
        self.walker.broken.is_none()
    }

    pub fn broken(&self) -> Option<&ChainBreak> {
        self.walker.broken.as_ref()
    }

    /// Events read so far (exported or not), for progress.
    pub fn scanned(&self) -> u64 {
        self.walker.rows
    }

    /// The total number of events the export range covers (for progress).
    pub fn range_len(&self) -> u64 {
        u64::try_from(self.last - self.after).unwrap_or(0)
    }
}

/// The stable CSV columns of an export.
pub const CSV_COLUMNS: [&str; 19] = [
    "sequence",
    "event_time_utc",
    "debtor_local_time",
    "time_zone",
    "tenant",
    "intent_id",
    "debtor_id",
    "debt_id",
    "channel",
    "jurisdiction",
    "event",
    "decision",
    "reason_codes",
    "rule_ids",
    "citations",
    "rules_version",
    "outcome",
    "hash",
    "previous_hash",
];

/// One event as CSV fields, in `CSV_COLUMNS` order.
pub fn csv_record(row: &AuditRow) -> Result<[String; 19], String> {
    let text = |v: &Option<String>| v.clone().unwrap_or_default();
    Ok([
        row.seq.to_string(),
        instant(row.event.at)?.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        text(&row.event.local_time),
        text(&row.event.time_zone),
        row.event.tenant.clone(),
        text(&row.event.intent_id),
        text(&row.event.debtor_id),
        text(&row.event.debt_id),
        row.event.channel.map(|c| c.to_string()).unwrap_or_default(),
        text(&row.event.jurisdiction),
        row.event.kind.to_string(),
        text(&row.event.decision),
        text(&row.event.reason_codes),
        text(&row.event.rule_ids),
        text(&row.event.citations),
        text(&row.event.rules_version),
        row.event.outcome.map(|o| o.to_string()).unwrap_or_default(),
        row.hash.clone(),
        row.prev_hash.clone(),
    ])
}

/// One event as a JSON object (CSV columns plus `detail`).
pub fn json_record(row: &AuditRow) -> Result<Value, String> {
    let mut object = serde_json::Map::new();
    for (column, value) in CSV_COLUMNS.iter().zip(csv_record(row)?) {
        object.insert((*column).to_string(), Value::String(value));
    }
    object.insert("sequence".into(), json!(row.seq));
    object.insert("detail".into(), serde_json::from_str(&row.event.detail).unwrap_or(Value::Null));
    Ok(Value::Object(object))
}

/// A logged decision the engine now takes differently.
#[derive(Clone, Debug, PartialEq)]
pub struct ReplayDifference {
    pub seq: i64,
    pub intent_id: String,
    pub at: DateTime<Utc>,
    pub recorded: String,
    pub now: String,
}

fn describe(decision: &str, at: Option<&str>, code: Option<&str>) -> String {
    match (decision, at, code) {
        ("defer", Some(at), _) => format!("defer until {at}"),
        ("reject", _, Some(code)) => format!("reject {code}"),
        (other, _, _) => other.to_string(),
    }
}

/// Re-evaluates every decision logged for `tenant` in `[from, to)` with the
/// rules it recorded (or with `candidate` rules) and lists the differences.
/// The history is the debtor's stored contacts up to the decision (outcomes as
/// acknowledged since); the preferences are those the decision recorded.
pub async fn replay(
    store: &Store,
    tenant: &str,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    candidate: Option<&RuleBook>,
) -> Result<(u64, Vec<ReplayDifference>), String> {
    let err = |e: StoreError| e.to_string();
    let snapshots = store.rules_snapshots().await.map_err(err)?;
    let mut books: HashMap<String, RuleBook> = HashMap::new();
    let mut differences = Vec::new();
    let mut replayed = 0;
    let mut cursor =
        ExportCursor::open(store, ExportFilter { tenant: tenant.into(), from, to, ..ExportFilter::default() }, None)
            .await
            .map_err(|e| e.to_string())?;
    while let Some(page) = cursor.next_page().await.map_err(err)? {
        for row in page.iter().filter(|r| {
            use AuditEventKind::*;
            matches!(r.event.kind, Released | Deferred | Rejected | Expired)
        }) {
            let (Some(intent_id), Some(debtor_id), Some(versions)) =
                (&row.event.intent_id, &row.event.debtor_id, &row.event.rules_version)
            else {
                continue;
            };
            let recorded: Value = serde_json::from_str(&row.event.detail).map_err(|e| e.to_string())?;
            let recorded = &recorded["decision"];
            let Some(intent_row) = store.get_intent(tenant, intent_id).await.map_err(err)? else { continue };
            let at = instant(row.event.at)?;
            let book = match candidate {
                Some(book) => book,
                None => {
                    if !books.contains_key(versions) {
                        books.insert(versions.clone(), book_for(versions, &snapshots)?);
                    }
                    &books[versions]
                }
            };
            let own_dispatch = recorded_dispatch(&row.event.detail);
            // A stored input that cannot be read (a history too long to read
            // whole included) is reported as a decision that cannot be
            // replayed; the replay goes on with the next one.
            let inputs = match store
                .history(tenant, debtor_id, row.event.at - 400 * 86_400_000, row.event.at, own_dispatch.as_deref())
                .await
            {
                Ok(history) => replay_inputs(&intent_row.body, &row.event.detail, history, row.event.at, own_dispatch),
                Err(unreadable @ StoreError::Unreadable { .. }) => Err(unreadable.to_string()),
                Err(e) => return Err(err(e)),
            };
            let (submission, history, preferences) = match inputs {
                Ok(inputs) => inputs,
                Err(why) => {
                    differences.push(ReplayDifference {
                        seq: row.seq,
                        intent_id: intent_id.clone(),
                        at,
                        recorded: describe(
                            recorded["decision"].as_str().unwrap_or(""),
                            recorded["at"].as_str(),
                            recorded["code"].as_str(),
                        ),
                        now: format!("cannot replay: {why}"),
                    });
                    continue;
                }
            };
            let Ok(resolved) = book.resolve(tenant, &submission.intent.jurisdiction) else { continue };
            let decision = evaluate(&submission.intent, &resolved, &history, &preferences, at);
            replayed += 1;
            let now_json = crate::intent_json::decision_json(&decision, at);
            let same = now_json["decision"] == recorded["decision"]
                && now_json["code"] == recorded["code"]
                && (decision.verdict == Verdict::Release || now_json["at"] == recorded["at"]);
            if !same {
                differences.push(ReplayDifference {
                    seq: row.seq,
                    intent_id: intent_id.clone(),
                    at,
                    recorded: describe(
                        recorded["decision"].as_str().unwrap_or(""),
                        recorded["at"].as_str(),
                        recorded["code"].as_str(),
                    ),
                    now: describe(
                        now_json["decision"].as_str().unwrap_or(""),
                        now_json["at"].as_str(),
                        now_json["code"].as_str(),
                    ),
                });
            }
        }
    }
    Ok((replayed, differences))
}

/// What a recorded decision was taken on: the intent, the debtor's history
/// by then (without the contact the decision itself released) and the
/// preferences the decision recorded.
fn replay_inputs(
    body: &str,
    detail: &str,
    stored_history: Vec<crate::store::EventRow>,
    decided_at: i64,
    own_dispatch: Option<String>,
) -> Result<(Submission, Vec<ContactEvent>, Preferences), String> {
    let submission = Submission::from_json(body).map_err(|e| format!("stored intent is unreadable: {e}"))?;
    let history = stored_history
        .iter()
        .filter(|e| e.at <= decided_at && (e.dispatch_id.is_none() || e.dispatch_id != own_dispatch))
        .map(super::contact_event)
        .collect::<Result<_, _>>()
        .map_err(|e| format!("a stored contact event cannot be read: {e}"))?;
    let preferences = match serde_json::from_str::<Value>(detail).ok().map(|d| d["preferences"].clone()) {
        Some(p) if !p.is_null() => PreferenceRecord::parse(&p.to_string(), 0, "")?.effective(),
        _ => Preferences::default(),
    };
    Ok((submission, history, preferences))
}

fn recorded_dispatch(detail: &str) -> Option<String> {
    serde_json::from_str::<Value>(detail).ok()?["dispatch_id"].as_str().map(str::to_string)
}

/// Rebuilds the rule book a decision recorded (`CODE@hash;…`) from the snapshots.
fn book_for(versions: &str, snapshots: &[(String, String, String)]) -> Result<RuleBook, String> {
    let mut sources = Vec::new();
    for layer in versions.split(';') {
        let hash = layer.rsplit_once('@').map(|(_, h)| h).unwrap_or_default();
        let (_, file, content) = snapshots
            .iter()
            .find(|(h, _, _)| h == hash)
            .ok_or_else(|| format!("the rules version {layer} is not in the stored snapshots"))?;
        sources.push((file.as_str(), content.as_str()));
    }
    RuleBook::from_sources(&sources)
        .map_err(|problems| problems.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))
}

/// Deletes `tenant`'s events older than `before` (a prefix of the chain)
/// and leaves a checkpoint signed with `key`. Returns (deleted, checkpoint seq).
pub async fn purge(
    store: &Store,
    tenant: &str,
    before: DateTime<Utc>,
    key: &str,
    now: DateTime<Utc>,
) -> StoreResult<(u64, Option<i64>)> {
    let (first, _, _) = chain_start(store, tenant, None).await?;
    // The chain stays a prefix: stop at the first event at or after `before`.
    let mut last_old = None;
    let mut after = first - 1;
    'pages: loop {
        let page = store.audit_page(tenant, after, i64::MAX, PAGE).await?;
        let Some(last) = page.last() else { break };
        after = last.seq;
        for row in &page {
            if row.event.at >= before.timestamp_millis() {
                break 'pages;
            }
            last_old = Some((row.seq, row.hash.clone()));
        }
    }
    let Some((seq, hash)) = last_old else { return Ok((0, None)) };
    let purged_at = now.timestamp_millis();
    let signature = checkpoint_signature(key, tenant, seq, &hash, purged_at);
    let deleted = store.purge_audit(tenant, seq, &hash, purged_at, &signature).await?;
    Ok((deleted, Some(seq)))
}
