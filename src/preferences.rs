//! What a debtor said about being contacted, as a record of dated
//! statements: per channel (opted out or back in), about every channel,
//! which channels they chose, each designation (inconvenient times, dates,
//! contact points, waking hours) and each consent, the last two by the id
//! the caller gave them (so each can be revoked). A statement only replaces an older one about
//! the same item, so a late-arriving stale statement never undoes a newer
//! one, and a partial update leaves the other items alone. Reading a stored
//! record fails closed: an unreadable record is an error, never "no opt-outs".

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::domain::{Channel, Consent, Designated, Designation, Preferences};

/// One dated statement about one item.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Statement<T> {
    pub value: T,
    /// When the debtor said it (Unix milliseconds).
    pub at: i64,
    /// Where it came from (IVR, letter, app, an adapter's ack …).
    pub source: String,
}

/// Every item's newest statement.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PreferenceRecord {
    /// Opted out of every channel (`true`) or lifted that (`false`).
    pub all: Option<Statement<bool>>,
    /// Opted out of a channel (`true`) or back in (`false`).
    pub channels: BTreeMap<Channel, Statement<bool>>,
    /// The only channels accepted; an empty list lifts an earlier choice.
    pub chosen: Option<Statement<Vec<Channel>>>,
    /// Channels whose contact point reached someone else, and when that was
    /// learned (adapter findings, not the debtor's word: never lifted here).
    pub wrong_party: BTreeMap<Channel, i64>,
    /// Designations by id; `None`: revoked.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub designations: BTreeMap<String, Statement<Option<Designation>>>,
    /// Consents by id.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub consents: BTreeMap<String, Statement<ConsentTerms>>,
}

/// What a consent allows: contacts on `channels` (empty: all) from `from`
/// (Unix milliseconds) until `until` or `revoked_at`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsentTerms {
    /// At least one: a consent names the contacts it allows.
    pub channels: Vec<Channel>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub written: bool,
    pub from: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked_at: Option<i64>,
}

/// What one request states, all dated `at`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Statements {
    pub opt_out_all: Option<bool>,
    pub opt_out: Vec<Channel>,
    pub opt_in: Vec<Channel>,
    /// `Some(empty)` lifts an earlier choice.
    pub chosen: Option<Vec<Channel>>,
    /// Designations, each by the caller's id (a newer one replaces it).
    pub designate: Vec<(String, Designation)>,
    pub revoke_designations: Vec<String>,
    /// Consents, each by the caller's id; `from` defaults to the statement's date.
    pub consent: Vec<(String, ConsentTerms)>,
    pub revoke_consents: Vec<String>,
}

impl Statements {
    /// Whether the request says anything at all.
    pub fn is_empty(&self) -> bool {
        self.opt_out_all.is_none()
            && self.opt_out.is_empty()
            && self.opt_in.is_empty()
            && self.chosen.is_none()
            && self.designate.is_empty()
            && self.revoke_designations.is_empty()
            && self.consent.is_empty()
            && self.revoke_consents.is_empty()
    }
}

/// Keeps `new` unless the stored statement is newer. At the same instant the
/// stricter of two opt-out statements wins.
fn newer_bool(slot: &mut Option<Statement<bool>>, new: Statement<bool>, item: &str, superseded: &mut Vec<String>) {
    match slot {
        Some(old) if old.at > new.at => superseded.push(superseded_by(item, old.at)),
        Some(old) if old.at == new.at => old.value |= new.value,
        _ => *slot = Some(new),
    }
}

fn superseded_by(item: &str, at: i64) -> String {
    let when = DateTime::<Utc>::from_timestamp_millis(at).map_or_else(|| at.to_string(), |t| t.to_rfc3339());
    format!("{item}: a newer statement (made {when}) stands")
}

impl PreferenceRecord {
    /// Applies the statements of one request made `at` from `source`;
    /// returns the items that newer stored statements override.
    pub fn apply(&mut self, statements: &Statements, at: DateTime<Utc>, source: &str) -> Vec<String> {
        let at = at.timestamp_millis();
        let dated = |value| Statement { value, at, source: source.to_string() };
        let mut superseded = Vec::new();
        if let Some(value) = statements.opt_out_all {
            newer_bool(&mut self.all, dated(value), "opt_out_all", &mut superseded);
        }
        let per_channel =
            statements.opt_out.iter().map(|c| (*c, true)).chain(statements.opt_in.iter().map(|c| (*c, false)));
        for (channel, value) in per_channel {
            let mut slot = self.channels.remove(&channel);
            newer_bool(&mut slot, dated(value), channel.as_str(), &mut superseded);
            if let Some(statement) = slot {
                self.channels.insert(channel, statement);
            }
        }
        if let Some(chosen) = &statements.chosen {
            match &self.chosen {
                Some(old) if old.at > at => superseded.push(superseded_by("chosen_channels", old.at)),
                _ => self.chosen = Some(dated_list(chosen, at, source)),
            }
        }
        let designations = statements.designate.iter().map(|(id, d)| (id, Some(d.clone())));
        let revocations = statements.revoke_designations.iter().map(|id| (id, None));
        for (id, value) in designations.chain(revocations) {
            match self.designations.get(id) {
                Some(old) if old.at > at => superseded.push(superseded_by(&format!("designation {id}"), old.at)),
                // At the same instant a designation outlives its revocation (the stricter reading).
                Some(old) if old.at == at && value.is_none() && old.value.is_some() => superseded
                    .push(format!("designation {id}: a designation made at the same instant stands (revoke it later)")),
                _ => {
                    self.designations.insert(id.clone(), Statement { value, at, source: source.to_string() });
                }
            }
        }
        for (id, terms) in &statements.consent {
            match self.consents.get(id) {
                Some(old) if old.at > at => superseded.push(superseded_by(&format!("consent {id}"), old.at)),
                _ => {
                    self.consents
                        .insert(id.clone(), Statement { value: terms.clone(), at, source: source.to_string() });
                }
            }
        }
        for id in &statements.revoke_consents {
            match self.consents.get_mut(id) {
                Some(old) if old.at > at => superseded.push(superseded_by(&format!("consent {id}"), old.at)),
                Some(old) => {
                    old.value.revoked_at = Some(old.value.revoked_at.map_or(at, |r| r.min(at)));
                    // The record now stands as of the revocation: a grant older than it
                    // (arriving late) cannot bring the consent back.
                    old.at = old.at.max(at);
                    old.source = source.to_string();
                }
                // Revoking what was never given: remembered, so a stale grant cannot revive it.
                None => {
                    let terms = ConsentTerms {
                        channels: Vec::new(),
                        written: false,
                        from: at,
                        until: Some(at),
                        revoked_at: Some(at),
                    };
                    self.consents.insert(id.clone(), Statement { value: terms, at, source: source.to_string() });
                }
            }
        }
        superseded
    }

    /// Records that `channel`'s contact point reached someone else.
    pub fn found_wrong_party(&mut self, channel: Channel, at: DateTime<Utc>) {
        self.wrong_party.entry(channel).or_insert(at.timestamp_millis());
    }

    /// What the engine reads.
    pub fn effective(&self) -> Preferences {
        Preferences {
            opted_out_all: self.all.as_ref().is_some_and(|s| s.value),
            opted_out: self.channels.iter().filter(|(_, s)| s.value).map(|(c, _)| *c).collect(),
            chosen: self.chosen.as_ref().map(|s| s.value.clone()).unwrap_or_default(),
            wrong_party: self.wrong_party.keys().copied().collect(),
            designations: self
                .designations
                .iter()
                .filter_map(|(id, s)| {
                    Some(Designated::new(id.clone(), s.value.clone()?, s.source.clone(), Some(instant(s.at))))
                })
                .collect(),
            consents: self
                .consents
                .iter()
                .map(|(id, s)| Consent {
                    id: id.clone(),
                    channels: s.value.channels.clone(),
                    written: s.value.written,
                    from: instant(s.value.from),
                    until: s.value.until.map(instant),
                    revoked_at: s.value.revoked_at.map(instant),
                    source: s.source.clone(),
                })
                .collect(),
        }
    }

    /// The newest statement's source, if any.
    pub fn latest_source(&self) -> Option<&str> {
        let all = self.all.iter().map(|s| (s.at, s.source.as_str()));
        let channels = self.channels.values().map(|s| (s.at, s.source.as_str()));
        let chosen = self.chosen.iter().map(|s| (s.at, s.source.as_str()));
        let designations = self.designations.values().map(|s| (s.at, s.source.as_str()));
        let consents = self.consents.values().map(|s| (s.at, s.source.as_str()));
        all.chain(channels)
            .chain(chosen)
            .chain(designations)
            .chain(consents)
            .max_by_key(|(at, _)| *at)
            .map(|(_, source)| source)
    }

    /// The stored form.
    pub fn to_json(&self) -> String {
        // Serializing plain data (string keys, integers) cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }

    /// Reads a stored record. The earlier form (`opted_out_all`,
    /// `opted_out`, `chosen`, `wrong_party` lists without dates) is read as
    /// statements made at `updated_at` from `source`. Anything else that
    /// does not parse is an error: unreadable never means "no opt-outs".
    pub fn parse(text: &str, updated_at: i64, source: &str) -> Result<PreferenceRecord, String> {
        let value: Value = serde_json::from_str(text).map_err(|e| format!("stored preferences are not JSON: {e}"))?;
        if value.get("opted_out_all").is_some() {
            return from_undated(&value, updated_at, source);
        }
        let record: PreferenceRecord =
            serde_json::from_value(value).map_err(|e| format!("stored preferences cannot be read: {e}"))?;
        record.check_instants()?;
        Ok(record)
    }

    /// Every stored instant is one chrono can read: an end out of range
    /// must not read as "never ends".
    fn check_instants(&self) -> Result<(), String> {
        let consents = self
            .consents
            .values()
            .flat_map(|s| [Some(s.at), Some(s.value.from), s.value.until, s.value.revoked_at].into_iter().flatten());
        let designations = self.designations.values().map(|s| s.at);
        match consents.chain(designations).find(|ms| DateTime::<Utc>::from_timestamp_millis(*ms).is_none()) {
            Some(ms) => Err(format!("stored preferences hold an instant out of range ({ms} ms)")),
            None => Ok(()),
        }
    }
}

/// A stored instant, checked when the record was read (`check_instants`);
/// one out of range cannot reach here, and would read as the epoch.
fn instant(millis: i64) -> DateTime<Utc> {
    DateTime::<Utc>::from_timestamp_millis(millis).unwrap_or_default()
}

fn dated_list(channels: &[Channel], at: i64, source: &str) -> Statement<Vec<Channel>> {
    let mut value = channels.to_vec();
    value.sort_unstable();
    value.dedup();
    Statement { value, at, source: source.to_string() }
}

/// The undated form written before statements had dates.
fn from_undated(value: &Value, at: i64, source: &str) -> Result<PreferenceRecord, String> {
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Undated {
        opted_out_all: bool,
        opted_out: Vec<Channel>,
        chosen: Vec<Channel>,
        wrong_party: Vec<Channel>,
    }
    let old: Undated =
        serde_json::from_value(value.clone()).map_err(|e| format!("stored preferences cannot be read: {e}"))?;
    let dated = |value| Statement { value, at, source: source.to_string() };
    Ok(PreferenceRecord {
        all: old.opted_out_all.then(|| dated(true)),
        channels: old.opted_out.iter().map(|c| (*c, dated(true))).collect(),
        chosen: (!old.chosen.is_empty()).then(|| dated_list(&old.chosen, at, source)),
        wrong_party: old.wrong_party.iter().map(|c| (*c, at)).collect(),
        designations: BTreeMap::new(),
        consents: BTreeMap::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text).expect("instant").with_timezone(&Utc)
    }

    #[test]
    fn a_stale_statement_never_undoes_a_newer_one() {
        let mut record = PreferenceRecord::default();
        let out = Statements { opt_out_all: Some(true), ..Statements::default() };
        assert!(record.apply(&out, at("2026-11-30T10:00:00Z"), "ivr").is_empty());
        let stale = Statements { opt_out_all: Some(false), ..Statements::default() };
        let superseded = record.apply(&stale, at("2020-01-01T00:00:00Z"), "old crm");
        assert_eq!(superseded.len(), 1);
        assert!(record.effective().opted_out_all, "the 2020 statement must not lift the 2026 opt-out");
        let newer = record.apply(&stale, at("2026-12-01T10:00:00Z"), "letter");
        assert!(newer.is_empty());
        assert!(!record.effective().opted_out_all, "an explicit newer statement lifts it");
    }

    #[test]
    fn partial_updates_merge_per_item() {
        let mut record = PreferenceRecord::default();
        let sms = Statements { opt_out: vec![Channel::Sms], ..Statements::default() };
        record.apply(&sms, at("2026-11-30T10:00:00Z"), "app");
        let call = Statements { opt_out: vec![Channel::Call], ..Statements::default() };
        record.apply(&call, at("2026-11-30T11:00:00Z"), "app");
        assert_eq!(record.effective().opted_out, vec![Channel::Call, Channel::Sms]);
        let back_in = Statements { opt_in: vec![Channel::Sms], ..Statements::default() };
        record.apply(&back_in, at("2026-11-30T09:00:00Z"), "stale");
        assert_eq!(record.effective().opted_out, vec![Channel::Call, Channel::Sms], "older opt-in ignored");
        record.apply(&back_in, at("2026-11-30T12:00:00Z"), "app");
        assert_eq!(record.effective().opted_out, vec![Channel::Call]);
    }

    #[test]
    fn the_same_instant_keeps_the_stricter_statement() {
        let mut record = PreferenceRecord::default();
        let t = at("2026-11-30T10:00:00Z");
        record.apply(&Statements { opt_out_all: Some(true), ..Statements::default() }, t, "a");
        record.apply(&Statements { opt_out_all: Some(false), ..Statements::default() }, t, "b");
        assert!(record.effective().opted_out_all);
    }

    #[test]
    fn designations_and_consents_are_revoked_by_id_and_a_stale_statement_is_ignored() {
        use crate::domain::{DayOfWeek, TimeRange};
        let mut record = PreferenceRecord::default();
        let afternoons = Designation::InconvenientTimes {
            days: vec![DayOfWeek::Wed],
            hours: vec![TimeRange::parse("15:00-17:00").expect("range")],
            channels: Vec::new(),
        };
        let designate = Statements { designate: vec![("pm".into(), afternoons)], ..Statements::default() };
        record.apply(&designate, at("2026-11-30T10:00:00Z"), "call");
        let revoke = Statements { revoke_designations: vec!["pm".into()], ..Statements::default() };
        assert_eq!(record.apply(&revoke, at("2026-11-30T10:00:00Z"), "call").len(), 1, "same instant: reported");
        assert_eq!(record.effective().designations.len(), 1);
        assert_eq!(record.apply(&revoke, at("2026-11-29T10:00:00Z"), "old").len(), 1, "stale: reported");
        assert_eq!(record.effective().designations.len(), 1);
        assert!(record.apply(&revoke, at("2026-11-30T11:00:00Z"), "call").is_empty());
        assert!(record.effective().designations.is_empty());

        let terms =
            ConsentTerms { channels: vec![Channel::Call], written: false, from: 1_000, until: None, revoked_at: None };
        record.apply(
            &Statements { consent: vec![("c".into(), terms.clone())], ..Statements::default() },
            at("2026-11-30T12:00:00Z"),
            "call",
        );
        let revoke = Statements { revoke_consents: vec!["c".into()], ..Statements::default() };
        record.apply(&revoke, at("2026-11-30T13:00:00Z"), "call");
        let consent = &record.effective().consents[0];
        assert_eq!(consent.revoked_at, Some(at("2026-11-30T13:00:00Z")));
        assert!(consent.covers(Channel::Call, at("2026-11-30T12:30:00Z")), "before the revocation it still covers");
        assert!(!consent.covers(Channel::Call, at("2026-11-30T13:00:00Z")));
        assert!(!consent.covers(Channel::Sms, at("2026-11-30T12:30:00Z")));
        // A grant made before the revocation but arriving after it does not bring it back.
        let late = Statements { consent: vec![("c".into(), terms)], ..Statements::default() };
        assert_eq!(record.apply(&late, at("2026-11-30T12:30:00Z"), "old crm").len(), 1);
        assert_eq!(record.effective().consents[0].revoked_at, Some(at("2026-11-30T13:00:00Z")));
        let round_trip = PreferenceRecord::parse(&record.to_json(), 0, "").expect("stored form");
        assert_eq!(round_trip, record);
    }

    #[test]
    fn unreadable_records_are_errors_and_the_undated_form_is_read() {
        for bad in [
            "",
            "{",
            "null",
            "[]",
            r#"{"all": 7}"#,
            r#"{"channels": {"fax": {"value": true, "at": 1, "source": "x"}}}"#,
        ] {
            assert!(PreferenceRecord::parse(bad, 0, "s").is_err(), "{bad:?} must not read as no opt-outs");
        }
        let old = r#"{"opted_out_all":false,"opted_out":["sms"],"chosen":[],"wrong_party":["call"]}"#;
        let record = PreferenceRecord::parse(old, 5, "ivr").expect("undated form");
        let effective = record.effective();
        assert_eq!(effective.opted_out, vec![Channel::Sms]);
        assert_eq!(effective.wrong_party, vec![Channel::Call]);
        assert_eq!(record.channels[&Channel::Sms].at, 5);
        let round_trip = PreferenceRecord::parse(&record.to_json(), 0, "").expect("stored form");
        assert_eq!(round_trip, record);
    }
}
