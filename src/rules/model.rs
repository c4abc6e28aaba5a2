//! Compiled, validated rules: what the engine reads. Built from the file
//! format by `compile`; immutable once loaded.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, NaiveDate, Utc};
use chrono_tz::Tz;

use super::file::{Basis, CalendarPeriod, Counts, Duration, Scope, TimeRange};
use super::holidays::HolidayCalendar;
use crate::domain::{Channel, ContactEvent, ContactPoint, ContactPointKind, DesignationKind, Outcome, Party, Stage};

/// A set of channels, as a bit mask.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct ChannelSet(u8);

impl ChannelSet {
    pub const ALL: ChannelSet = ChannelSet((1 << Channel::ALL.len()) - 1);

    pub fn insert(&mut self, channel: Channel) {
        self.0 |= 1 << channel as u8;
    }

    pub fn contains(self, channel: Channel) -> bool {
        self.0 & (1 << channel as u8) != 0
    }

    pub fn union(self, other: ChannelSet) -> ChannelSet {
        ChannelSet(self.0 | other.0)
    }

    pub fn is_subset_of(self, other: ChannelSet) -> bool {
        self.0 & !other.0 == 0
    }

    pub fn iter(self) -> impl Iterator<Item = Channel> {
        Channel::ALL.iter().copied().filter(move |c| self.contains(*c))
    }

    pub fn len(self) -> usize {
        self.0.count_ones() as usize
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }
}

impl FromIterator<Channel> for ChannelSet {
    fn from_iter<I: IntoIterator<Item = Channel>>(iter: I) -> Self {
        let mut set = ChannelSet::default();
        iter.into_iter().for_each(|c| set.insert(c));
        set
    }
}

impl std::fmt::Display for ChannelSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if *self == ChannelSet::ALL {
            return f.write_str("all channels");
        }
        let words: Vec<&str> = self.iter().map(Channel::as_str).collect();
        f.write_str(&words.join(", "))
    }
}

/// Where a rule comes from, as reasons and audit records name it.
#[derive(Debug, PartialEq)]
pub struct RuleMeta {
    pub id: Arc<str>,
    pub citation: Arc<str>,
    pub description: Arc<str>,
    pub basis: Basis,
    pub jurisdiction: Arc<str>,
    /// `effective_from/content-hash` of the version the rule belongs to.
    pub version: Arc<str>,
    pub file: Arc<str>,
    pub line: usize,
}

/// Index of a day type in `WindowRule::days`: Monday..Sunday, then holidays.
pub const HOLIDAY: usize = 7;

/// Names of the day types, in `WindowRule::days` order.
pub const DAY_NAMES: [&str; 8] =
    ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday", "public holidays"];

/// The kinds of contact point a rule applies to (`None`: all). A contact
/// whose contact point is unknown is treated as possibly any kind its
/// channel can reach, so the strictest rule that could apply does.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ContactPoints(pub Option<Vec<ContactPointKind>>);

impl ContactPoints {
    /// Whether the rule applies to a contact on `channel` to `point`.
    pub fn apply_to(&self, channel: Channel, point: Option<&ContactPoint>) -> bool {
        match (&self.0, point) {
            (None, _) => true,
            (Some(kinds), Some(point)) => kinds.contains(&point.kind),
            (Some(kinds), None) => kinds.iter().any(|k| k.reachable_by(channel)),
        }
    }

    /// Whether a past contact counts under the rule (one whose contact
    /// point was not recorded counts).
    pub fn count(&self, event: &ContactEvent) -> bool {
        match (&self.0, &event.contact_point) {
            (Some(kinds), Some(point)) => kinds.contains(&point.kind),
            _ => true,
        }
    }
}

impl std::fmt::Display for ContactPoints {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.0 {
            None => f.write_str("any contact point"),
            Some(kinds) => f.write_str(&kinds.iter().map(|k| k.as_str()).collect::<Vec<_>>().join(", ")),
        }
    }
}

/// Allowed local contact hours per day type for some channels.
#[derive(Debug)]
pub struct WindowRule {
    pub meta: Arc<RuleMeta>,
    pub channels: ChannelSet,
    /// Allowed ranges per day type, sorted and disjoint; empty: no contact.
    pub days: Arc<[Vec<TimeRange>; 8]>,
    pub contact_points: ContactPoints,
    /// Set for a window the debtor designated (built per decision).
    pub debtor: Option<DebtorWindow>,
}

/// What a debtor's window adds to a rule's: public holidays are ordinary
/// days of the week to it, some local dates are closed, and one response
/// may open a stretch it would otherwise close.
#[derive(Debug, Default)]
pub struct DebtorWindow {
    /// Closed local dates, first to last inclusive.
    pub closed: Vec<(NaiveDate, NaiveDate)>,
    /// `[start, end)` allowed although designated inconvenient (the one response).
    pub opened: Option<(DateTime<Utc>, DateTime<Utc>)>,
}

/// The period a cap counts over.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Period {
    Rolling(Duration),
    Calendar(CalendarPeriod),
    /// N consecutive days of the debtor's local calendar, the day of a
    /// contact counting as day 1 (Regulation F's "seven consecutive days").
    LocalDays(u32),
}

/// How long a cooldown lasts: a span of time, or N days of the debtor's
/// local calendar, the day of the outcome counting as day 1 (so it ends at
/// the local midnight that starts day N + 1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CooldownLength {
    Rolling(Duration),
    LocalDays(u32),
}

impl CooldownLength {
    /// Whether this length can end a cooldown earlier than `other` does. N
    /// local days end between N − 1 and N days after the outcome (N days
    /// when it came at midnight), DST hours aside.
    pub fn can_end_before(self, other: CooldownLength) -> bool {
        const DAY: i64 = 24 * 60;
        match (self, other) {
            (CooldownLength::Rolling(ours), CooldownLength::Rolling(theirs)) => ours.minutes < theirs.minutes,
            (CooldownLength::LocalDays(ours), CooldownLength::LocalDays(theirs)) => ours < theirs,
            (CooldownLength::Rolling(ours), CooldownLength::LocalDays(theirs)) => {
                ours.minutes < i64::from(theirs) * DAY
            }
            (CooldownLength::LocalDays(ours), CooldownLength::Rolling(theirs)) => {
                (i64::from(ours) - 1) * DAY < theirs.minutes
            }
        }
    }
}

/// A frequency cap.
#[derive(Debug)]
pub struct CapRule {
    pub meta: Arc<RuleMeta>,
    pub channels: ChannelSet,
    pub scope: Scope,
    pub counts: Counts,
    pub limit: Option<u32>,
    pub max_channels: Option<u32>,
    pub period: Option<Period>,
    pub min_gap: Option<Duration>,
    pub contact_points: ContactPoints,
    /// Inbound contacts the debtor started are not counted.
    pub exclude_debtor_initiated: bool,
    /// Contacts a debtor's consent covered are not counted.
    pub exclude_consented: Option<ConsentExclusion>,
}

/// How a cap honours consent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConsentExclusion {
    /// A consent covers at most this many local days (the day given is day 1).
    pub max_days: Option<u32>,
    /// Only consents given in writing count.
    pub written_only: bool,
}

/// No contact on `channels` for `duration` after an outcome in `after`.
#[derive(Debug)]
pub struct CooldownRule {
    pub meta: Arc<RuleMeta>,
    pub after: Vec<Outcome>,
    pub after_channels: ChannelSet,
    pub channels: ChannelSet,
    pub length: CooldownLength,
    pub scope: Scope,
    pub contact_points: ContactPoints,
}

/// No contact on `channels` to these kinds of contact point.
#[derive(Debug)]
pub struct ContactPointBanRule {
    pub meta: Arc<RuleMeta>,
    pub channels: ChannelSet,
    pub contact_points: Vec<ContactPointKind>,
}

/// The law that makes the debtor's designations of `kinds` binding.
#[derive(Debug)]
pub struct DesignationRule {
    pub meta: Arc<RuleMeta>,
    pub kinds: Vec<DesignationKind>,
}

/// One response allowed on `channels` after the debtor starts a contact at
/// a time or place they designated inconvenient.
#[derive(Debug)]
pub struct ResponseRule {
    pub meta: Arc<RuleMeta>,
    pub channels: ChannelSet,
}

/// Who may be contacted.
#[derive(Debug)]
pub struct PartyRule {
    pub meta: Arc<RuleMeta>,
    pub allowed: Vec<Party>,
}

/// The channels allowed at some collection stages.
#[derive(Debug)]
pub struct StageChannelRule {
    pub meta: Arc<RuleMeta>,
    pub stages: Vec<Stage>,
    pub channels: ChannelSet,
}

/// One version of a file's rules.
#[derive(Debug)]
pub struct RuleVersion {
    pub effective_from: NaiveDate,
    pub label: Arc<str>,
    pub windows: Vec<WindowRule>,
    pub caps: Vec<CapRule>,
    pub cooldowns: Vec<CooldownRule>,
    pub parties: Vec<PartyRule>,
    pub stage_channels: Vec<StageChannelRule>,
    pub contact_point_bans: Vec<ContactPointBanRule>,
    pub designations: Vec<DesignationRule>,
    pub responses: Vec<ResponseRule>,
}

/// A subdivision its country file knows by time zone.
#[derive(Debug)]
pub struct Subdivision {
    pub name: String,
    pub time_zones: Vec<Tz>,
}

/// A worked example: intent JSON, instant and expected outcome.
#[derive(Debug)]
pub struct Example {
    pub name: String,
    pub line: usize,
    pub at: chrono::DateTime<chrono::Utc>,
    pub intent: serde_json::Value,
    pub expect: Expectation,
}

/// What an example expects.
#[derive(Debug, PartialEq)]
pub enum Expectation {
    Release,
    Defer { until: chrono::DateTime<chrono::Utc> },
    Reject { code: String },
}

/// One compiled jurisdiction file: a country, a subdivision overlay or a
/// tenant policy.
#[derive(Debug)]
pub struct Jurisdiction {
    pub code: Arc<str>,
    pub name: String,
    pub tenant: Option<String>,
    pub file: Arc<str>,
    /// SHA-256 of the file's bytes, first 12 hex digits.
    pub hash: String,
    /// The file's text (kept so the exact rules can be stored for replays).
    pub source: String,
    pub time_zones: Vec<Tz>,
    pub subdivisions: BTreeMap<String, Subdivision>,
    pub holidays: HolidayCalendar,
    /// The last day the holidays' dated lists and decisions are confirmed.
    pub confirmed_through: Option<NaiveDate>,
    /// Sorted by `effective_from`.
    pub versions: Vec<RuleVersion>,
    pub examples: Vec<Example>,
}

impl Jurisdiction {
    /// The country part of the code (`US` for `US-MA`).
    pub fn country(&self) -> &str {
        country_of(&self.code)
    }

    /// Whether this file narrows another one (subdivision or tenant policy).
    pub fn is_overlay(&self) -> bool {
        self.tenant.is_some() || self.code.contains('-')
    }

    /// The version in force on `date`, if any.
    pub fn version_on(&self, date: NaiveDate) -> Option<&RuleVersion> {
        self.versions.iter().rev().find(|v| v.effective_from <= date)
    }
}

/// The country part of a jurisdiction code.
pub fn country_of(code: &str) -> &str {
    code.split_once('-').map_or(code, |(country, _)| country)
}
