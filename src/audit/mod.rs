//! The audit log: one event per state change, written in the same
//! transaction as the change, hash-chained per tenant so that an edited,
//! deleted, inserted or reordered row is detected.
//!
//! Each event's hash is `SHA-256(prev_hash || "\n" || canonical bytes)`, where
//! the canonical bytes are the JSON array of its fields in column order.

use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::domain::{AckOutcome, AuditEventKind, Channel};

/// The `prev_hash` of a tenant's first event.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// An event about to be appended (sequence and hashes are assigned then).
#[derive(Clone, Debug, PartialEq, sqlx::FromRow)]
pub struct AuditEvent {
    pub tenant: String,
    pub at: i64,
    pub kind: AuditEventKind,
    pub intent_id: Option<String>,
    pub debtor_id: Option<String>,
    pub debt_id: Option<String>,
    pub channel: Option<Channel>,
    pub jurisdiction: Option<String>,
    pub time_zone: Option<String>,
    pub local_time: Option<String>,
    pub decision: Option<String>,
    pub reason_codes: Option<String>,
    pub rule_ids: Option<String>,
    pub citations: Option<String>,
    pub rules_version: Option<String>,
    pub outcome: Option<AckOutcome>,
    pub detail: String,
}

impl AuditEvent {
    /// An event of `kind` about a tenant, with no intent, debtor or decision fields.
    pub fn new(tenant: &str, at: i64, kind: AuditEventKind, detail: String) -> AuditEvent {
        AuditEvent {
            tenant: tenant.to_string(),
            at,
            kind,
            intent_id: None,
            debtor_id: None,
            debt_id: None,
            channel: None,
            jurisdiction: None,
            time_zone: None,
            local_time: None,
            decision: None,
            reason_codes: None,
            rule_ids: None,
            citations: None,
            rules_version: None,
            outcome: None,
            detail,
        }
    }
}

/// A stored event.
#[derive(Clone, Debug, PartialEq, sqlx::FromRow)]
pub struct AuditRow {
    pub seq: i64,
    #[sqlx(flatten)]
    pub event: AuditEvent,
    pub prev_hash: String,
    pub hash: String,
}

/// The canonical bytes an event's hash covers: the compact JSON array of its
/// fields in column order. Every stored hash covers these exact bytes, so the
/// form never changes: strings are escaped as `serde_json` escapes them. Written
/// field by field (no JSON value is built: this runs for every event appended).
pub fn canonical(event: &AuditEvent, seq: i64) -> String {
    let fields = [
        Field::Text(Some(&event.tenant)),
        Field::Number(seq),
        Field::Number(event.at),
        Field::Text(Some(event.kind.as_str())),
        Field::Text(event.intent_id.as_deref()),
        Field::Text(event.debtor_id.as_deref()),
        Field::Text(event.debt_id.as_deref()),
        Field::Text(event.channel.map(Channel::as_str)),
        Field::Text(event.jurisdiction.as_deref()),
        Field::Text(event.time_zone.as_deref()),
        Field::Text(event.local_time.as_deref()),
        Field::Text(event.decision.as_deref()),
        Field::Text(event.reason_codes.as_deref()),
        Field::Text(event.rule_ids.as_deref()),
        Field::Text(event.citations.as_deref()),
        Field::Text(event.rules_version.as_deref()),
        Field::Text(event.outcome.map(AckOutcome::as_str)),
        Field::Text(Some(&event.detail)),
    ];
    let mut out = String::with_capacity(fields.len() * 24 + event.detail.len());
    out.push('[');
    for (n, field) in fields.iter().enumerate() {
        if n > 0 {
            out.push(',');
        }
        match field {
            Field::Number(value) => out.push_str(&value.to_string()),
            Field::Text(None) => out.push_str("null"),
            Field::Text(Some(text)) => push_json_string(&mut out, text),
        }
    }
    out.push(']');
    out
}

/// One field of the canonical array.
enum Field<'a> {
    Text(Option<&'a str>),
    Number(i64),
}

/// Appends `text` as a JSON string escaped as `serde_json` escapes it: `"` and
/// `\`, the short escapes of backspace, form feed, newline, return and tab,
/// every other control character as `\u00xx`; nothing else.
fn push_json_string(out: &mut String, text: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push('"');
    let mut copied = 0;
    for (at, byte) in text.bytes().enumerate() {
        let escape = match byte {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            0x08 => "\\b",
            0x0c => "\\f",
            b'\n' => "\\n",
            b'\r' => "\\r",
            b'\t' => "\\t",
            0x00..=0x1f => "",
            _ => continue,
        };
        // `at` is an ASCII byte, so both ends of the run are character boundaries.
        out.push_str(&text[copied..at]);
        match escape {
            "" => {
                out.push_str("\\u00");
                out.push(char::from(HEX[usize::from(byte >> 4)]));
                out.push(char::from(HEX[usize::from(byte & 0x0f)]));
            }
            short => out.push_str(short),
        }
        copied = at + 1;
    }
    out.push_str(&text[copied..]);
    out.push('"');
}

/// The chained hash of an event.
pub fn chain_hash(prev_hash: &str, canonical: &str) -> String {
    let mut hasher = Sha256::new();
    hasher.update(prev_hash.as_bytes());
    hasher.update(b"\n");
    hasher.update(canonical.as_bytes());
    hex::encode(hasher.finalize())
}

/// The end of a tenant's chain: its last sequence number and that event's
/// hash.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChainHead {
    pub seq: i64,
    pub hash: String,
}

impl ChainHead {
    /// The head of a chain without events: sequence 0, hash [`GENESIS`].
    pub fn genesis() -> ChainHead {
        ChainHead { seq: 0, hash: GENESIS.to_string() }
    }

    /// Links `events` (one tenant's, in order) to the chain: each gets the
    /// next sequence number, the hash before it and its own hash. The head
    /// moves to the last of them; the store writes the rows and the head.
    pub fn link(&mut self, events: Vec<AuditEvent>) -> Vec<AuditRow> {
        events
            .into_iter()
            .map(|event| {
                self.seq += 1;
                let hash = chain_hash(&self.hash, &canonical(&event, self.seq));
                let prev_hash = std::mem::replace(&mut self.hash, hash.clone());
                AuditRow { seq: self.seq, event, prev_hash, hash }
            })
            .collect()
    }
}

impl AuditRow {
    /// Whether the stored hash matches the row's content and `prev_hash`.
    pub fn hash_is_valid(&self) -> bool {
        chain_hash(&self.prev_hash, &canonical(&self.event, self.seq)) == self.hash
    }
}

/// Fills the decision columns from a decision in its JSON form, and the
/// event's `detail` with `detail` (callers build it from the decision's text
/// they store anyway, rather than serializing the decision once more).
pub fn with_decision(mut event: AuditEvent, decision: &Value, detail: String) -> AuditEvent {
    let reasons = decision["reasons"].as_array().map(Vec::as_slice).unwrap_or_default();
    let join = |key: &str, separator: &str| -> Option<String> {
        let mut values: Vec<&str> = reasons.iter().filter_map(|r| r[key].as_str()).collect();
        values.dedup();
        (!values.is_empty()).then(|| values.join(separator))
    };
    event.decision = decision["decision"].as_str().map(str::to_string);
    event.reason_codes = decision["code"].as_str().map(str::to_string);
    event.rule_ids = join("rule", ";");
    event.citations = join("citation", " | ");
    if event.rules_version.is_none() {
        event.rules_version = join("version", ";");
    }
    event.detail = detail;
    event
}

/// Where a chain walk found a break.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChainBreak {
    pub tenant: String,
    /// The first sequence number that is wrong (or missing).
    pub seq: i64,
    pub reason: String,
}

/// Walks one tenant's chain incrementally: feed rows in `seq` order.
#[derive(Clone, Debug)]
pub struct ChainWalker {
    tenant: String,
    expected_seq: i64,
    prev_hash: String,
    pub rows: u64,
    pub broken: Option<ChainBreak>,
}

impl ChainWalker {
    /// Starts at `first_seq` whose `prev_hash` must be `prev_hash` (the
    /// genesis hash, a purge checkpoint, or the row before an export range).
    pub fn new(tenant: &str, first_seq: i64, prev_hash: &str) -> ChainWalker {
        ChainWalker {
            tenant: tenant.into(),
            expected_seq: first_seq,
            prev_hash: prev_hash.into(),
            rows: 0,
            broken: None,
        }
    }

    fn fail(&mut self, seq: i64, reason: String) {
        if self.broken.is_none() {
            self.broken = Some(ChainBreak { tenant: self.tenant.clone(), seq, reason });
        }
    }

    /// Checks the next row.
    pub fn push(&mut self, row: &AuditRow) {
        self.rows += 1;
        if self.broken.is_some() {
            return;
        }
        if row.seq != self.expected_seq {
            let reason = if row.seq > self.expected_seq {
                format!("sequence {} is missing (next row is {})", self.expected_seq, row.seq)
            } else {
                format!("sequence {} appears out of order after {}", row.seq, self.expected_seq - 1)
            };
            self.fail(self.expected_seq.min(row.seq), reason);
            return;
        }
        if row.prev_hash != self.prev_hash {
            self.fail(
                row.seq,
                format!(
                    "sequence {} does not link to the previous event (deleted, inserted or reordered rows)",
                    row.seq
                ),
            );
            return;
        }
        if !row.hash_is_valid() {
            self.fail(row.seq, format!("sequence {} was changed after it was written (hash mismatch)", row.seq));
            return;
        }
        self.expected_seq += 1;
        self.prev_hash = row.hash.clone();
    }

    /// Checks the end of the chain against the stored head.
    pub fn finish(&mut self, head: Option<(i64, &str)>) {
        if let Some((seq, hash)) = head
            && self.broken.is_none()
        {
            if self.expected_seq - 1 < seq {
                self.fail(
                    self.expected_seq,
                    format!("events {} to {seq} are missing from the end of the chain", self.expected_seq),
                );
            } else if self.expected_seq - 1 > seq || self.prev_hash != hash {
                self.fail(seq, format!("the chain does not end where its head says (sequence {seq})"));
            }
        }
    }

    /// The last verified hash (to continue a walk).
    pub fn last_hash(&self) -> &str {
        &self.prev_hash
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn row(seq: i64, prev: &str, kind: AuditEventKind) -> AuditRow {
        let event = AuditEvent::new("t", seq * 1000, kind, "{}".into());
        let hash = chain_hash(prev, &canonical(&event, seq));
        AuditRow { seq, event, prev_hash: prev.into(), hash }
    }

    fn chain(n: i64) -> Vec<AuditRow> {
        let mut rows = Vec::new();
        let mut prev = GENESIS.to_string();
        for seq in 1..=n {
            let r = row(seq, &prev, AuditEventKind::Submitted);
            prev = r.hash.clone();
            rows.push(r);
        }
        rows
    }

    fn walk(rows: &[AuditRow]) -> Option<ChainBreak> {
        let mut walker = ChainWalker::new("t", 1, GENESIS);
        rows.iter().for_each(|r| walker.push(r));
        walker.broken
    }

    #[test]
    fn linked_events_walk_clean_across_appends() {
        let event = |kind| AuditEvent::new("t", 0, kind, "{}".into());
        let mut head = ChainHead::genesis();
        let mut rows = head.link(vec![event(AuditEventKind::Submitted), event(AuditEventKind::Released)]);
        rows.extend(head.link(vec![event(AuditEventKind::Acked)]));
        assert_eq!((head.seq, head.hash.as_str()), (3, rows[2].hash.as_str()));
        assert_eq!(walk(&rows), None);
    }

    #[test]
    fn an_intact_chain_verifies() {
        assert_eq!(walk(&chain(5)), None);
    }

    #[test]
    fn edits_deletions_insertions_and_swaps_are_caught_at_the_right_sequence() {
        let mut edited = chain(5);
        edited[2].event.kind = AuditEventKind::Released;
        assert_eq!(walk(&edited).map(|b| b.seq), Some(3));

        let mut deleted = chain(5);
        deleted.remove(1);
        assert_eq!(walk(&deleted).map(|b| b.seq), Some(2));

        let mut swapped = chain(5);
        let (a, b) = (swapped[1].clone(), swapped[2].clone());
        swapped[1] = AuditRow { seq: 2, ..b };
        swapped[2] = AuditRow { seq: 3, ..a };
        assert_eq!(walk(&swapped).map(|b| b.seq), Some(2));
    }

    /// An event with every field set, its strings holding every kind of
    /// character the escaping treats apart.
    fn every_field() -> AuditEvent {
        AuditEvent {
            intent_id: Some("intent-1".into()),
            debtor_id: Some("debtor \"quoted\" \\ back".into()),
            debt_id: Some("debt\u{1}\u{1f}\u{7f}".into()),
            channel: Some(Channel::Whatsapp),
            jurisdiction: Some("PE".into()),
            time_zone: Some("America/Lima".into()),
            local_time: Some("2026-11-25 10:00:00".into()),
            decision: Some("release".into()),
            reason_codes: Some("quiet_hours".into()),
            rule_ids: Some("pe-art62b-hours;pe-holidays".into()),
            citations: Some("Ley 29571, arts. 61–62 | Año “nuevo” ñ 😀".into()),
            rules_version: Some("PE@0123456789ab".into()),
            outcome: Some(AckOutcome::Delivered),
            ..AuditEvent::new(
                "acme",
                1_764_082_800_123,
                AuditEventKind::Released,
                "{\"a\":\"b\\n\tc\r\u{8}\u{c}\"}".into(),
            )
        }
    }

    #[test]
    fn the_canonical_bytes_and_hashes_of_stored_chains_never_change() {
        // Computed by the first form (a `serde_json::Value` array, serialized):
        // every chain already stored was hashed over these bytes.
        let hash = chain_hash(GENESIS, &canonical(&every_field(), 42));
        assert_eq!(hash, "3a8ee7fe1812bec6f189c02c83d6d1d12f004652462e34c849949f36a7de7a34");
        let bare = AuditEvent::new("acme", -5, AuditEventKind::Submitted, String::new());
        assert_eq!(
            canonical(&bare, 1),
            r#"["acme",1,-5,"submitted",null,null,null,null,null,null,null,null,null,null,null,null,null,""]"#
        );
    }

    #[test]
    fn strings_are_escaped_as_serde_json_escapes_them() {
        let mut every_ascii: String = (0u8..0x80).map(char::from).collect();
        every_ascii.push_str("ñ–“😀\u{2028}\u{10ffff}");
        for text in [every_ascii.as_str(), "", "plain", "\"", "\\", "end\u{0}", "ñ\n"] {
            let mut ours = String::new();
            push_json_string(&mut ours, text);
            assert_eq!(ours, serde_json::to_string(text).unwrap_or_default(), "escaping {text:?}");
        }
        let event = every_field();
        let as_value = json!([
            event.tenant,
            7,
            event.at,
            event.kind.as_str(),
            event.intent_id,
            event.debtor_id,
            event.debt_id,
            event.channel.map(Channel::as_str),
            event.jurisdiction,
            event.time_zone,
            event.local_time,
            event.decision,
            event.reason_codes,
            event.rule_ids,
            event.citations,
            event.rules_version,
            event.outcome.map(AckOutcome::as_str),
            event.detail,
        ]);
        assert_eq!(canonical(&event, 7), as_value.to_string());
    }
}
