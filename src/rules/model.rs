//! Compiled, validated rules: what the engine reads. Built from the file
//! format by `compile`; immutable once loaded.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::NaiveDate;
use chrono_tz::Tz;

use super::file::{Basis, CalendarPeriod, Counts, Duration, Scope, TimeRange};
use super::holidays::HolidayCalendar;
use crate::domain::{Channel, Outcome, Party, Stage};

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

/// Allowed local contact hours per day type for some channels.
#[derive(Debug)]
pub struct WindowRule {
    pub meta: Arc<RuleMeta>,
    pub channels: ChannelSet,
    /// Allowed ranges per day type, sorted and disjoint; empty: no contact.
    pub days: [Vec<TimeRange>; 8],
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
