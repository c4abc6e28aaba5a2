//! The vocabulary shared by rules, engine and edges: channels, parties,
//! stages, outcomes, contact intents and the contact history, and the states
//! an intent, a dispatch and an audit event can be in.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use chrono::{DateTime, NaiveDate, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

/// Declares a closed, lowercase, snake_case vocabulary: parsing, display,
/// serde and the list of accepted words (for error messages) in one place.
macro_rules! vocabulary {
    ($(#[$meta:meta])* $name:ident, $what:literal { $($variant:ident => $word:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(rename_all = "snake_case")]
        pub enum $name { $($variant),+ }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The word used in files, JSON and the API.
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $word),+ }
            }

            /// The accepted words, for error messages.
            pub fn expected() -> String {
                [$($word),+].join(", ")
            }
        }

        impl FromStr for $name {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, String> {
                match s {
                    $($word => Ok($name::$variant),)+
                    other => Err(format!("unknown {} {:?} (expected one of: {})", $what, other, $name::expected())),
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

vocabulary!(
    /// A medium through which a debtor can be contacted.
    Channel, "channel" {
        Call => "call",
        Visit => "visit",
        Sms => "sms",
        Whatsapp => "whatsapp",
        Email => "email",
        Letter => "letter",
        Push => "push",
    }
);

vocabulary!(
    /// Who is being contacted, relative to the debt.
    Party, "party" {
        Debtor => "debtor",
        CoDebtor => "co_debtor",
        Guarantor => "guarantor",
        ThirdParty => "third_party",
    }
);

vocabulary!(
    /// How far the collection has progressed.
    Stage, "stage" {
        Preventive => "preventive",
        Administrative => "administrative",
        Extrajudicial => "extrajudicial",
        Judicial => "judicial",
    }
);

vocabulary!(
    /// What came of one past contact attempt.
    Outcome, "outcome" {
        Attempted => "attempted",
        Delivered => "delivered",
        Conversation => "conversation",
        NoAnswer => "no_answer",
        Failed => "failed",
    }
);

impl Outcome {
    /// Whether the attempt reached the person (a completed contact).
    pub fn is_completed_contact(self) -> bool {
        matches!(self, Outcome::Delivered | Outcome::Conversation)
    }
}

vocabulary!(
    /// What an adapter reports on a leased contact (stored on the intent).
    AckOutcome, "ack outcome" {
        Sent => "sent",
        Delivered => "delivered",
        Failed => "failed",
        NoAnswer => "no_answer",
        Conversation => "conversation",
        WrongParty => "wrong_party",
        OptedOut => "opted_out",
    }
);

impl AckOutcome {
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

vocabulary!(
    /// What kind of address, number or account a contact goes to.
    ContactPointKind, "contact point kind" {
        ResidencePhone => "residence_phone",
        PersonalMobile => "personal_mobile",
        WorkPhone => "work_phone",
        OtherPhone => "other_phone",
        HomeAddress => "home_address",
        WorkAddress => "work_address",
        Email => "email",
        MessagingAccount => "messaging_account",
    }
);

impl ContactPointKind {
    /// The channels that can reach a contact point of this kind.
    pub fn channels(self) -> &'static [Channel] {
        use Channel::*;
        match self {
            ContactPointKind::ResidencePhone => &[Call, Sms],
            ContactPointKind::PersonalMobile | ContactPointKind::WorkPhone | ContactPointKind::OtherPhone => {
                &[Call, Sms, Whatsapp]
            }
            ContactPointKind::HomeAddress | ContactPointKind::WorkAddress => &[Visit, Letter],
            ContactPointKind::Email => &[Email],
            ContactPointKind::MessagingAccount => &[Whatsapp, Push],
        }
    }

    /// Whether a contact on `channel` can go to a contact point of this kind.
    pub fn reachable_by(self, channel: Channel) -> bool {
        self.channels().contains(&channel)
    }
}

/// Where a contact goes: its kind and, optionally, an opaque identifier
/// (the number or address itself, or a hash of it).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ContactPoint {
    pub kind: ContactPointKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
}

impl ContactPoint {
    /// Whether a contact to `self` may be a contact to `other`: the same
    /// identifier where both name one (whatever kind each is labelled), else
    /// the same kind.
    pub fn may_be(&self, other: &ContactPoint) -> bool {
        match (&self.id, &other.id) {
            (Some(ours), Some(theirs)) => ours == theirs,
            _ => self.kind == other.kind,
        }
    }
}

impl fmt::Display for ContactPoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.id {
            Some(id) => write!(f, "{} {id}", self.kind),
            None => write!(f, "{}", self.kind),
        }
    }
}

vocabulary!(
    /// Who started a contact.
    Initiator, "initiator" {
        Collector => "collector",
        Debtor => "debtor",
    }
);

vocabulary!(
    /// A day of the week, as a debtor names it.
    DayOfWeek, "day of the week" {
        Mon => "mon",
        Tue => "tue",
        Wed => "wed",
        Thu => "thu",
        Fri => "fri",
        Sat => "sat",
        Sun => "sun",
    }
);

impl DayOfWeek {
    /// Monday is 0.
    pub fn index(self) -> usize {
        self as usize
    }
}

vocabulary!(
    /// Where an intent stands. `Deferred` waits for its next evaluation;
    /// `Released` and `Leased` are in flight; the rest are final, except
    /// `Held` (unreadable, waiting for an operator).
    IntentStatus, "intent status" {
        Deferred => "deferred",
        Released => "released",
        Leased => "leased",
        Done => "done",
        Rejected => "rejected",
        Cancelled => "cancelled",
        Expired => "expired",
        Held => "held",
    }
);

vocabulary!(
    /// Where a released contact stands with the adapters.
    DispatchState, "dispatch state" {
        Ready => "ready",
        Leased => "leased",
        Acked => "acked",
        Cancelled => "cancelled",
        Withdrawn => "withdrawn",
    }
);

vocabulary!(
    /// What an audit event records.
    AuditEventKind, "audit event kind" {
        Submitted => "submitted",
        Deferred => "deferred",
        Released => "released",
        Rejected => "rejected",
        Expired => "expired",
        Leased => "leased",
        Withdrawn => "withdrawn",
        Acked => "acked",
        Cancelled => "cancelled",
        PreferenceChanged => "preference_changed",
        RulesReloaded => "rules_reloaded",
        Held => "held",
        ContactRecorded => "contact_recorded",
    }
);

/// A request to contact someone about a debt, as the engine sees it.
#[derive(Clone, Debug, PartialEq)]
pub struct Intent {
    pub tenant: String,
    pub intent_id: String,
    pub debtor_id: String,
    pub debt_id: Option<String>,
    pub channel: Channel,
    pub party: Party,
    pub stage: Stage,
    /// Jurisdiction code: a country (`PE`) or a subdivision (`MX-BCN`, `US-MA`).
    pub jurisdiction: String,
    /// Time zones the recipient may be in; empty means the jurisdiction's default.
    pub time_zones: Vec<Tz>,
    pub not_before: Option<DateTime<Utc>>,
    pub expires_at: Option<DateTime<Utc>>,
    /// Where the contact goes; `None`: not said (the strictest rules that
    /// could apply to the channel's contact points apply).
    pub contact_point: Option<ContactPoint>,
}

/// One past contact attempt with the same debtor.
#[derive(Clone, Debug, PartialEq)]
pub struct ContactEvent {
    pub channel: Channel,
    pub at: DateTime<Utc>,
    pub outcome: Outcome,
    /// The debt the attempt was about; `None` means the intent's own debt.
    pub debt_id: Option<String>,
    /// Where it went (or came from); `None`: not recorded.
    pub contact_point: Option<ContactPoint>,
    /// Who started it: an inbound call or message is the debtor's.
    pub initiator: Initiator,
}

/// What a debtor asked for (or what adapters learned) about channels.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Preferences {
    /// The debtor opted out of every channel.
    pub opted_out_all: bool,
    /// Channels the debtor opted out of.
    pub opted_out: Vec<Channel>,
    /// If not empty, the only channels the debtor accepts.
    pub chosen: Vec<Channel>,
    /// Channels whose contact point reached someone else.
    pub wrong_party: Vec<Channel>,
    /// Times, dates, waking hours and contact points the debtor designated.
    pub designations: Vec<Designated>,
    /// Consents the debtor gave to contacts the rules would otherwise count.
    pub consents: Vec<Consent>,
}

/// What a debtor designated about when or where to be contacted. Each
/// applies to `channels` (empty: every channel).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Designation {
    /// Local hours that are inconvenient on some days of the week.
    InconvenientTimes {
        days: Vec<DayOfWeek>,
        hours: Vec<TimeRange>,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        channels: Vec<Channel>,
    },
    /// Local dates, `from` to `to` inclusive, that are inconvenient.
    InconvenientDates {
        from: NaiveDate,
        to: NaiveDate,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        channels: Vec<Channel>,
    },
    /// The debtor's waking hours: contact only within them, every day.
    WakingHours {
        hours: TimeRange,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        channels: Vec<Channel>,
    },
    /// A contact point (a kind such as work, or one identifier) not to use.
    InconvenientContactPoint {
        contact_point: ContactPoint,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        channels: Vec<Channel>,
    },
}

vocabulary!(
    /// The kinds of designation, as rule files name the ones a law makes binding.
    DesignationKind, "designation kind" {
        InconvenientTimes => "inconvenient_times",
        InconvenientDates => "inconvenient_dates",
        WakingHours => "waking_hours",
        InconvenientContactPoint => "inconvenient_contact_point",
    }
);

impl Designation {
    /// Its kind.
    pub fn kind(&self) -> DesignationKind {
        match self {
            Designation::InconvenientTimes { .. } => DesignationKind::InconvenientTimes,
            Designation::InconvenientDates { .. } => DesignationKind::InconvenientDates,
            Designation::WakingHours { .. } => DesignationKind::WakingHours,
            Designation::InconvenientContactPoint { .. } => DesignationKind::InconvenientContactPoint,
        }
    }

    /// The channels it applies to; empty means all.
    pub fn channels(&self) -> &[Channel] {
        match self {
            Designation::InconvenientTimes { channels, .. }
            | Designation::InconvenientDates { channels, .. }
            | Designation::WakingHours { channels, .. }
            | Designation::InconvenientContactPoint { channels, .. } => channels,
        }
    }

    /// Whether it applies to a contact on `channel`.
    pub fn covers(&self, channel: Channel) -> bool {
        self.channels().is_empty() || self.channels().contains(&channel)
    }

    /// The local hours it allows per day of the week (see `Designated::hours`).
    pub fn allowed_hours(&self) -> [Vec<TimeRange>; 8] {
        const DAY: Minute = 1440;
        let all_day = vec![TimeRange { start: 0, end: DAY }];
        let mut days: [Vec<TimeRange>; 8] = std::array::from_fn(|_| all_day.clone());
        match self {
            Designation::InconvenientTimes { days: listed, hours, .. } => {
                let mut closed = hours.clone();
                closed.sort();
                let mut open = Vec::new();
                let mut from = 0;
                for range in closed {
                    if range.start > from {
                        open.push(TimeRange { start: from, end: range.start });
                    }
                    from = from.max(range.end);
                }
                if from < DAY {
                    open.push(TimeRange { start: from, end: DAY });
                }
                for day in listed {
                    days[day.index()] = open.clone();
                }
            }
            Designation::WakingHours { hours, .. } => days = std::array::from_fn(|_| vec![*hours]),
            Designation::InconvenientDates { .. } | Designation::InconvenientContactPoint { .. } => {}
        }
        days
    }

    /// Checks what cannot be checked by the types: something to designate,
    /// dates in order, identifiers well formed.
    pub fn check(&self) -> Result<(), String> {
        match self {
            Designation::InconvenientTimes { days, hours, .. } if days.is_empty() || hours.is_empty() => {
                Err("inconvenient_times needs at least one day and one time range".into())
            }
            Designation::InconvenientDates { from, to, .. } if to < from => {
                Err(format!("inconvenient_dates ends ({to}) before it starts ({from})"))
            }
            Designation::InconvenientContactPoint { contact_point, channels }
                if !channels.is_empty() && !channels.iter().any(|c| contact_point.kind.reachable_by(*c)) =>
            {
                Err(format!("none of its channels can reach a {}: it would never apply", contact_point.kind))
            }
            Designation::InconvenientContactPoint { contact_point: ContactPoint { id: Some(id), .. }, .. } => {
                check_identifier(id).map_err(|e| format!("contact_point.id {e}"))
            }
            _ => Ok(()),
        }
    }

    /// One line a person reads.
    pub fn describe(&self) -> String {
        let on = |channels: &[Channel]| {
            if channels.is_empty() {
                String::new()
            } else {
                format!(" for {}", channels.iter().map(|c| c.as_str()).collect::<Vec<_>>().join(", "))
            }
        };
        let ranges = |hours: &[TimeRange]| hours.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ");
        match self {
            Designation::InconvenientTimes { days, hours, channels } => format!(
                "the debtor designated {} {} as inconvenient{}",
                days.iter().map(|d| d.as_str()).collect::<Vec<_>>().join(", "),
                ranges(hours),
                on(channels)
            ),
            Designation::InconvenientDates { from, to, channels } => {
                format!("the debtor designated {from} to {to} as inconvenient{}", on(channels))
            }
            Designation::WakingHours { hours, channels } => {
                format!("the debtor stated waking hours of {hours}{}", on(channels))
            }
            Designation::InconvenientContactPoint { contact_point, channels } => {
                format!("the debtor designated {contact_point} as an inconvenient contact point{}", on(channels))
            }
        }
    }
}

/// A designation in force, with where and when it was said, and what the
/// engine reads of it, computed once (decisions are the hot path).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Designated {
    pub id: String,
    pub designation: Designation,
    pub source: String,
    /// When it was said; `None` in a what-if run that does not say.
    pub at: Option<DateTime<Utc>>,
    /// `debtor:<id>`, the rule id its reasons carry.
    pub rule_id: Arc<str>,
    /// What it says, with when and through which source it was said.
    pub description: Arc<str>,
    /// The local hours it allows per day of the week (Monday first; the
    /// eighth entry, public holidays, is the whole day: the debtor's days
    /// are days of the week).
    pub hours: Arc<[Vec<TimeRange>; 8]>,
}

impl Designated {
    pub fn new(id: String, designation: Designation, source: String, at: Option<DateTime<Utc>>) -> Designated {
        let when = at.map(|at| format!(" {}", at.format("%Y-%m-%d"))).unwrap_or_default();
        let description = format!("{} (said{when} via {source})", designation.describe());
        Designated {
            rule_id: format!("debtor:{id}").into(),
            description: description.into(),
            hours: Arc::new(designation.allowed_hours()),
            id,
            designation,
            source,
            at,
        }
    }
}

/// A debtor's consent to contacts on some channels (empty: all) that the
/// rules would otherwise count, from `from` until `until` or its revocation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Consent {
    pub id: String,
    /// The channels it names; a cap only honours a consent naming its channel.
    pub channels: Vec<Channel>,
    /// Given in writing (Massachusetts honours only written consent to more visits).
    pub written: bool,
    pub from: DateTime<Utc>,
    pub until: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
    pub source: String,
}

impl Consent {
    /// The instant it stops covering contacts (`None`: not before revoked).
    pub fn ends(&self) -> Option<DateTime<Utc>> {
        match (self.until, self.revoked_at) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Whether it covers a contact on `channel` at `t`: it names the
    /// channel (a consent to "everything" is no consent to more contacts).
    pub fn covers(&self, channel: Channel, t: DateTime<Utc>) -> bool {
        self.channels.contains(&channel) && self.from <= t && self.ends().is_none_or(|end| t < end)
    }
}

/// Minutes since local midnight, 0..=1440.
pub type Minute = u16;

/// A half-open local time range `"HH:MM-HH:MM"`; `24:00` ends the day.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct TimeRange {
    pub start: Minute,
    pub end: Minute,
}

impl fmt::Display for TimeRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}–{}", clock(self.start), clock(self.end))
    }
}

/// Formats minutes since midnight as `HH:MM`.
pub fn clock(minute: Minute) -> String {
    format!("{:02}:{:02}", minute / 60, minute % 60)
}

fn parse_clock(text: &str) -> Option<Minute> {
    let (h, m) = text.trim().split_once(':')?;
    if h.len() != 2 || m.len() != 2 {
        return None;
    }
    let (h, m) = (h.parse::<u16>().ok()?, m.parse::<u16>().ok()?);
    match (h, m) {
        (24, 0) => Some(1440),
        (0..=23, 0..=59) => Some(h * 60 + m),
        _ => None,
    }
}

impl TimeRange {
    /// The form files, JSON and the API write: `"07:00-20:00"`.
    pub fn as_written(&self) -> String {
        format!("{}-{}", clock(self.start), clock(self.end))
    }

    /// Parses `"07:00-20:00"`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let (a, b) =
            text.split_once('-').ok_or_else(|| format!("{text:?} is not a time range (expected \"HH:MM-HH:MM\")"))?;
        let start =
            parse_clock(a).ok_or_else(|| format!("{a:?} is not a time of day (expected HH:MM, 00:00 to 24:00)"))?;
        let end =
            parse_clock(b).ok_or_else(|| format!("{b:?} is not a time of day (expected HH:MM, 00:00 to 24:00)"))?;
        if start >= end {
            return Err(format!(
                "time range {text:?} ends before it starts (ranges cannot cross midnight: split it in two days)"
            ));
        }
        Ok(TimeRange { start, end })
    }
}

impl<'de> Deserialize<'de> for TimeRange {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        TimeRange::parse(&text).map_err(serde::de::Error::custom)
    }
}

impl Serialize for TimeRange {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.as_written())
    }
}

/// The longest identifier accepted (tenant, intent, debtor, debt, dispatch
/// ids, sources), counted in characters (Unicode scalar values), not bytes.
pub const MAX_ID_CHARS: usize = 256;

/// Checks an identifier the same way for every backend and every edge (API,
/// JSON, CLI): not blank, no control characters (PostgreSQL cannot store NUL),
/// no leading or trailing whitespace (refused, never trimmed: an idempotency
/// key is compared exactly), at most [`MAX_ID_CHARS`] characters.
pub fn check_identifier(value: &str) -> Result<(), String> {
    if value.trim().is_empty() {
        return Err("is required and must not be blank".into());
    }
    if value.chars().count() > MAX_ID_CHARS {
        return Err(format!("is longer than {MAX_ID_CHARS} characters"));
    }
    if let Some(c) = value.chars().find(|c| c.is_control()) {
        return Err(format!("must not contain control characters (found U+{:04X})", u32::from(c)));
    }
    if value.trim() != value {
        return Err("must not start or end with whitespace".into());
    }
    Ok(())
}

/// Checks free text stored beside an identifier (a cancel reason, an ack
/// detail): at most `max` characters, no control characters but tab and
/// line breaks.
pub fn check_text(value: &str, max: usize) -> Result<(), String> {
    if value.chars().count() > max {
        return Err(format!("is longer than {max} characters"));
    }
    match value.chars().find(|c| c.is_control() && !matches!(c, '\t' | '\n' | '\r')) {
        Some(c) => Err(format!("must not contain control characters (found U+{:04X})", u32::from(c))),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_are_checked_one_way() {
        for good in ["a", "DNI-40404040", "ñandú 7", &"é".repeat(MAX_ID_CHARS)] {
            assert_eq!(check_identifier(good), Ok(()), "{good:?}");
        }
        for bad in ["", " ", "\t", "dev ", " dev", "a\0b", "a\nb", "a\u{7f}b", &"a".repeat(MAX_ID_CHARS + 1)] {
            assert!(check_identifier(bad).is_err(), "{bad:?} must be refused");
        }
        assert_eq!(check_text("paid\nin full", 64), Ok(()));
        assert!(check_text("a\0b", 64).is_err());
        assert!(check_text("abc", 2).is_err());
    }
}
