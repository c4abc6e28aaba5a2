//! The jurisdiction file format exactly as compliance officers write it
//! (TOML, see `jurisdictions/README.md`). Values that can be checked on their
//! own (times, durations, channel words) are checked while parsing, so TOML's
//! own error carries the line; cross-field checks happen in `compile`.

use std::collections::BTreeMap;
use std::fmt;

use chrono::NaiveDate;
use serde::Deserialize;
use serde::de::{self, Deserializer};
use toml::Spanned;

use crate::domain::{ContactPointKind, DesignationKind, Outcome, Party, Stage};
pub use crate::domain::{Minute, TimeRange, clock};

/// One `jurisdictions/*.toml` file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawFile {
    /// `PE`, or `US-MA` for a subdivision overlay of `US`.
    pub jurisdiction: Spanned<String>,
    pub name: String,
    /// Set for a tenant policy: it applies to that tenant's intents only.
    #[serde(default)]
    pub tenant: Option<Spanned<String>>,
    #[serde(default)]
    pub notes: Option<String>,
    /// Default candidate time zones of the recipient.
    #[serde(default)]
    pub time_zones: Vec<Spanned<String>>,
    #[serde(default)]
    pub subdivisions: BTreeMap<String, RawSubdivision>,
    #[serde(default)]
    pub channel_groups: BTreeMap<String, Vec<Spanned<String>>>,
    #[serde(default)]
    pub holidays: Vec<RawHoliday>,
    /// How far the holidays' dated lists and decisions are confirmed.
    #[serde(default)]
    pub confirmed_through: Option<Spanned<toml::value::Datetime>>,
    #[serde(default)]
    pub versions: Vec<RawVersion>,
    #[serde(default)]
    pub examples: Vec<RawExample>,
}

/// A subdivision known by its parent file (for time zones only).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSubdivision {
    pub name: String,
    pub time_zones: Vec<Spanned<String>>,
}

/// Whether a rule is binding law or recommended practice.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Basis {
    Law,
    Recommended,
}

impl Basis {
    pub fn as_str(self) -> &'static str {
        match self {
            Basis::Law => "law",
            Basis::Recommended => "recommended",
        }
    }
}

/// Declares a rule struct: every rule carries `id`, `citation`,
/// `description` and `basis` besides its own fields.
macro_rules! rule_struct {
    ($(#[$meta:meta])* $name:ident { $($(#[$field_meta:meta])* $field:ident : $ty:ty,)* }) => {
        $(#[$meta])*
        #[derive(Debug, Deserialize)]
        #[serde(deny_unknown_fields)]
        pub struct $name {
            pub id: Spanned<String>,
            pub citation: String,
            pub description: String,
            pub basis: Basis,
            $($(#[$field_meta])* pub $field: $ty,)*
        }

        impl $name {
            /// The fields every rule carries.
            pub fn meta(&self) -> RawMeta<'_> {
                RawMeta { id: &self.id, citation: &self.citation, description: &self.description, basis: self.basis }
            }
        }
    };
}

/// Borrowed view of the fields every rule carries.
pub struct RawMeta<'a> {
    pub id: &'a Spanned<String>,
    pub citation: &'a str,
    pub description: &'a str,
    pub basis: Basis,
}

/// A public holiday rule.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawHoliday {
    pub id: Spanned<String>,
    pub name: String,
    #[serde(default)]
    pub citation: Option<String>,
    /// Fixed day of the year, `"MM-DD"`.
    #[serde(default)]
    pub date: Option<MonthDay>,
    /// Days after (negative: before) Western Easter Sunday.
    #[serde(default)]
    pub easter: Option<i32>,
    /// The nth weekday of a month; `n = -1` is the last one.
    #[serde(default)]
    pub nth_weekday: Option<RawNthWeekday>,
    /// Explicit days decreed for one year each.
    #[serde(default)]
    pub dates: Option<Vec<Spanned<toml::value::Datetime>>>,
    /// How the day moves depending on the weekday it falls on.
    #[serde(default)]
    pub moves: Option<RawMove>,
    /// Observed only when the (unmoved) day falls on one of these weekdays.
    #[serde(default)]
    pub only_on: Option<Vec<WeekdayWord>>,
    #[serde(default)]
    pub from_year: Option<i32>,
    #[serde(default)]
    pub until_year: Option<i32>,
    /// Observed every N years counting from `from_year`.
    #[serde(default)]
    pub every_years: Option<u32>,
    /// Candidate days an authority may still move the holiday to.
    #[serde(default)]
    pub provisional: Option<RawProvisional>,
    /// Published decisions: the day each occurrence is observed on.
    #[serde(default)]
    pub decided: Vec<RawDecision>,
    /// How far this rule's dates and decisions are confirmed (narrows the file's).
    #[serde(default)]
    pub confirmed_through: Option<Spanned<toml::value::Datetime>>,
}

/// `provisional = { since, citation, sat = [-1, 2], ... }`: per weekday the
/// base day may fall on, the day offsets of the candidates.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawProvisional {
    #[serde(default)]
    pub since: Option<Spanned<toml::value::Datetime>>,
    pub citation: String,
    #[serde(default)]
    pub mon: Vec<i64>,
    #[serde(default)]
    pub tue: Vec<i64>,
    #[serde(default)]
    pub wed: Vec<i64>,
    #[serde(default)]
    pub thu: Vec<i64>,
    #[serde(default)]
    pub fri: Vec<i64>,
    #[serde(default)]
    pub sat: Vec<i64>,
    #[serde(default)]
    pub sun: Vec<i64>,
}

/// `decided = [{ date, citation }]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDecision {
    pub date: Spanned<toml::value::Datetime>,
    pub citation: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawNthWeekday {
    pub month: u32,
    pub weekday: WeekdayWord,
    pub n: i32,
}

/// A move rule: a named preset or a weekday → day-offset table.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum RawMove {
    Preset(String),
    Table(BTreeMap<WeekdayWord, i64>),
}

/// A weekday as written in files: `mon` … `sun`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WeekdayWord {
    Mon,
    Tue,
    Wed,
    Thu,
    Fri,
    Sat,
    Sun,
}

impl WeekdayWord {
    pub fn to_chrono(self) -> chrono::Weekday {
        use chrono::Weekday::*;
        match self {
            WeekdayWord::Mon => Mon,
            WeekdayWord::Tue => Tue,
            WeekdayWord::Wed => Wed,
            WeekdayWord::Thu => Thu,
            WeekdayWord::Fri => Fri,
            WeekdayWord::Sat => Sat,
            WeekdayWord::Sun => Sun,
        }
    }
}

/// One set of rules with the date it takes effect.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawVersion {
    pub effective_from: Spanned<toml::value::Datetime>,
    #[serde(default)]
    pub notes: Option<String>,
    #[serde(default)]
    pub windows: Vec<RawWindow>,
    #[serde(default)]
    pub caps: Vec<RawCap>,
    #[serde(default)]
    pub cooldowns: Vec<RawCooldown>,
    #[serde(default)]
    pub parties: Vec<RawParties>,
    #[serde(default)]
    pub stage_channels: Vec<RawStageChannels>,
    #[serde(default)]
    pub contact_point_bans: Vec<RawContactPointBan>,
    #[serde(default)]
    pub designations: Vec<RawDesignations>,
    #[serde(default)]
    pub responses: Vec<RawResponses>,
}

rule_struct!(
    /// Allowed contact hours per day type for some channels.
    RawWindow {
        channels: Vec<Spanned<String>>,
        #[serde(default)]
        mon_fri: Option<Vec<TimeRange>>,
        #[serde(default)]
        mon: Option<Vec<TimeRange>>,
        #[serde(default)]
        tue: Option<Vec<TimeRange>>,
        #[serde(default)]
        wed: Option<Vec<TimeRange>>,
        #[serde(default)]
        thu: Option<Vec<TimeRange>>,
        #[serde(default)]
        fri: Option<Vec<TimeRange>>,
        #[serde(default)]
        sat: Option<Vec<TimeRange>>,
        #[serde(default)]
        sun: Option<Vec<TimeRange>>,
        #[serde(default)]
        holiday: Option<Vec<TimeRange>>,
        /// Only contacts to these kinds of contact point (and to unknown ones).
        #[serde(default)]
        contact_points: Option<Vec<ContactPointKind>>,
    }
);

/// What a frequency cap counts over.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    Debtor,
    Debt,
    DebtorChannel,
}

/// Which past events a cap counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Counts {
    Attempts,
    Contacts,
}

/// A calendar period in the recipient's local time.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CalendarPeriod {
    Day,
    Week,
    Month,
}

rule_struct!(
    /// A frequency cap.
    RawCap {
        channels: Vec<Spanned<String>>,
        scope: Scope,
        #[serde(default = "default_counts")]
        counts: Counts,
        /// At most this many counted events in the period.
        #[serde(default)]
        limit: Option<u32>,
        /// At most this many different channels in the period.
        #[serde(default)]
        max_channels: Option<u32>,
        #[serde(default)]
        rolling: Option<Duration>,
        #[serde(default)]
        calendar: Option<CalendarPeriod>,
        /// N consecutive local days, the day of a counted event being day 1.
        #[serde(default)]
        consecutive_days: Option<u32>,
        /// At least this long between two counted events.
        #[serde(default)]
        min_gap: Option<Duration>,
        /// Only contacts to these kinds of contact point (and to unknown ones).
        #[serde(default)]
        contact_points: Option<Vec<ContactPointKind>>,
        /// Contacts the cap does not count.
        #[serde(default)]
        excludes: Vec<Exclusion>,
        /// With `excludes = ["consented"]`: a consent covers at most this many
        /// local days, the day it was given being day 1.
        #[serde(default)]
        consent_days: Option<u32>,
    }
);

/// Contacts a cap may leave uncounted, when its law says so.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Exclusion {
    /// Inbound calls or messages the debtor started.
    DebtorInitiated,
    /// Contacts made while a consent of the debtor covered them.
    Consented,
    /// The same, for consents given in writing only.
    ConsentedInWriting,
}

fn default_counts() -> Counts {
    Counts::Attempts
}

rule_struct!(
    /// No contact on some channels for a while after some outcome.
    RawCooldown {
        after: Vec<Outcome>,
        /// Channels whose outcome starts the cooldown; default all.
        #[serde(default)]
        after_channels: Option<Vec<Spanned<String>>>,
        /// Channels the cooldown blocks.
        channels: Vec<Spanned<String>>,
        /// A span of time; or, instead, `consecutive_days`.
        #[serde(default)]
        duration: Option<Duration>,
        /// N local days, the day of the outcome being day 1.
        #[serde(default)]
        consecutive_days: Option<u32>,
        #[serde(default = "default_scope")]
        scope: Scope,
        /// Only contacts to these kinds of contact point (and to unknown ones).
        #[serde(default)]
        contact_points: Option<Vec<ContactPointKind>>,
    }
);

fn default_scope() -> Scope {
    Scope::Debtor
}

rule_struct!(
    /// Who may be contacted.
    RawParties {
        allowed: Vec<Party>,
    }
);

rule_struct!(
    /// Which channels are allowed at some collection stages.
    RawStageChannels {
        stages: Vec<Stage>,
        channels: Vec<Spanned<String>>,
    }
);

rule_struct!(
    /// No contact on `channels` to these kinds of contact point; an intent
    /// that names none is refused when its channel could reach one.
    RawContactPointBan {
        channels: Vec<Spanned<String>>,
        contact_points: Vec<ContactPointKind>,
    }
);

rule_struct!(
    /// The law that makes the debtor's designations of these kinds binding
    /// (Ventana honours every designation; this names the citation).
    RawDesignations {
        kinds: Vec<DesignationKind>,
    }
);

rule_struct!(
    /// After the debtor starts a contact at a time or place they designated
    /// inconvenient, one response through the same channel may go then.
    RawResponses {
        channels: Vec<Spanned<String>>,
    }
);

/// A worked example run by `ventana rules check`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawExample {
    pub name: Spanned<String>,
    /// The evaluation instant (TOML offset date-time).
    pub at: toml::value::Datetime,
    /// The intent as JSON would give it; omitted fields take example defaults.
    pub intent: toml::Table,
    #[serde(default)]
    pub history: Vec<toml::Table>,
    /// The debtor's preferences in force, in their JSON form.
    #[serde(default)]
    pub preferences: Option<toml::Table>,
    pub expect: String,
    #[serde(default)]
    pub until: Option<toml::value::Datetime>,
    #[serde(default)]
    pub code: Option<String>,
}

/// A fixed day of the year, `"MM-DD"`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MonthDay {
    pub month: u32,
    pub day: u32,
}

impl<'de> Deserialize<'de> for MonthDay {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        let parsed = text.split_once('-').and_then(|(m, dd)| {
            let (month, day) = (m.parse::<u32>().ok()?, dd.parse::<u32>().ok()?);
            // 2024 is a leap year, so Feb 29 is accepted here.
            NaiveDate::from_ymd_opt(2024, month, day).map(|_| MonthDay { month, day })
        });
        parsed.ok_or_else(|| de::Error::custom(format!("{text:?} is not a day of the year (expected \"MM-DD\")")))
    }
}

/// A length of time written `"7d"`, `"48h"` or `"30m"`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Duration {
    pub minutes: i64,
}

impl Duration {
    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        let bad = || format!("{text:?} is not a duration (expected a number and a unit: \"7d\", \"48h\", \"30m\")");
        let unit = text.chars().last().ok_or_else(bad)?;
        let number: i64 = text[..text.len() - unit.len_utf8()].parse().map_err(|_| bad())?;
        let per_unit = match unit {
            'd' => 1440,
            'h' => 60,
            'm' => 1,
            _ => return Err(bad()),
        };
        // Bounded so that instant arithmetic can never overflow.
        if !(1..=366 * 1440).contains(&(number.saturating_mul(per_unit))) {
            return Err(format!("duration {text:?} must be between 1 minute and 366 days"));
        }
        Ok(Duration { minutes: number * per_unit })
    }

    pub fn to_chrono(self) -> chrono::Duration {
        chrono::Duration::minutes(self.minutes)
    }
}

impl fmt::Display for Duration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.minutes {
            m if m % 1440 == 0 => write!(f, "{} days", m / 1440),
            m if m % 60 == 0 => write!(f, "{} hours", m / 60),
            m => write!(f, "{m} minutes"),
        }
    }
}

impl<'de> Deserialize<'de> for Duration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Duration::parse(&text).map_err(de::Error::custom)
    }
}
