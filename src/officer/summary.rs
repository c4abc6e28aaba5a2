//! What a rule says, in one line a compliance officer can read. The week
//! picture lists the rules that shape the week with these lines, and the
//! rules diff compares them: two rules with the same id differ when their
//! line, citation, description or basis differ.

use serde::Serialize;

use crate::domain::{Outcome, Party, Stage};
use crate::rules::file::{CalendarPeriod, Counts, Duration, Scope, TimeRange};
use crate::rules::{
    CapRule, ChannelSet, ConsentExclusion, ContactPoints, CooldownLength, CooldownRule, DAY_NAMES, HOLIDAY,
    Jurisdiction, Period, RuleMeta, RuleVersion, StageChannelRule, WindowRule,
};

/// The kinds of rule a version holds, in the order a file lists them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RuleKind {
    Hours,
    Cap,
    Cooldown,
    Parties,
    Stages,
    ContactPoints,
    Designations,
    Responses,
}

impl RuleKind {
    pub fn as_str(self) -> &'static str {
        match self {
            RuleKind::Hours => "hours",
            RuleKind::Cap => "cap",
            RuleKind::Cooldown => "cooldown",
            RuleKind::Parties => "parties",
            RuleKind::Stages => "stages",
            RuleKind::ContactPoints => "contact points",
            RuleKind::Designations => "debtor designations",
            RuleKind::Responses => "one response",
        }
    }
}

/// One rule of one version, as an officer reads it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct RuleLine {
    pub kind: RuleKind,
    pub id: String,
    /// The file that holds the rule (`PE`, `US-MA`, or `PE (tenant acme)`).
    pub jurisdiction: String,
    pub citation: String,
    pub description: String,
    pub basis: &'static str,
    /// What the rule says, e.g. "call, visit: Monday to Friday 07:00–20:00; …".
    pub says: String,
}

/// The name of a file in reports: its code, and its tenant for a policy.
fn file_name(file: &Jurisdiction) -> String {
    match &file.tenant {
        Some(tenant) => format!("{} (tenant {tenant})", file.code),
        None => file.code.to_string(),
    }
}

/// Every rule of `version` (a version of `file`), in file order.
pub fn rule_lines(file: &Jurisdiction, version: &RuleVersion) -> Vec<RuleLine> {
    let line = |kind: RuleKind, meta: &RuleMeta, says: String| RuleLine {
        kind,
        id: meta.id.to_string(),
        jurisdiction: file_name(file),
        citation: meta.citation.to_string(),
        description: meta.description.to_string(),
        basis: meta.basis.as_str(),
        says,
    };
    let windows = version.windows.iter().map(|w| line(RuleKind::Hours, &w.meta, hours(w)));
    let caps = version.caps.iter().map(|c| line(RuleKind::Cap, &c.meta, cap(c)));
    let cooldowns = version.cooldowns.iter().map(|c| line(RuleKind::Cooldown, &c.meta, cooldown(c)));
    let parties = version.parties.iter().map(|p| line(RuleKind::Parties, &p.meta, parties(&p.allowed)));
    let stages = version.stage_channels.iter().map(|s| line(RuleKind::Stages, &s.meta, stages(s)));
    let bans = version.contact_point_bans.iter().map(|b| {
        let kinds = ContactPoints(Some(b.contact_points.clone()));
        line(RuleKind::ContactPoints, &b.meta, format!("{}: never to {kinds}", b.channels))
    });
    let designations = version.designations.iter().map(|d| {
        let kinds: Vec<&str> = d.kinds.iter().map(|k| k.as_str()).collect();
        line(RuleKind::Designations, &d.meta, format!("the debtor's {} bind", kinds.join(", ")))
    });
    let responses = version.responses.iter().map(|r| {
        let says = format!(
            "{}: one response to the debtor's own contact at a designated time or place, same channel",
            channels_or_any(r.channels)
        );
        line(RuleKind::Responses, &r.meta, says)
    });
    windows
        .chain(caps)
        .chain(cooldowns)
        .chain(parties)
        .chain(stages)
        .chain(bans)
        .chain(designations)
        .chain(responses)
        .collect()
}

/// Local ranges as `07:00–13:00, 15:00–20:00`, or `no contact`.
pub fn ranges_text(ranges: &[TimeRange]) -> String {
    if ranges.is_empty() {
        return "no contact".into();
    }
    ranges.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
}

/// `call, visit: Monday to Friday 07:00–20:00; Saturday 09:00–13:00; Sunday, public holidays: no contact`.
fn hours(rule: &WindowRule) -> String {
    let mut groups: Vec<(usize, usize)> = Vec::new();
    for day in 0..DAY_NAMES.len() {
        match groups.last_mut() {
            Some((_, last)) if rule.days[*last] == rule.days[day] => *last = day,
            _ => groups.push((day, day)),
        }
    }
    let parts: Vec<String> = groups
        .iter()
        .map(|&(first, last)| {
            let days = day_span(first, last);
            match rule.days[first].as_slice() {
                [] => format!("{days}: no contact"),
                ranges => format!("{days} {}", ranges_text(ranges)),
            }
        })
        .collect();
    let to = match rule.contact_points.0 {
        Some(_) => format!(" (to {}, or an unnamed contact point)", rule.contact_points),
        None => String::new(),
    };
    format!("{}{to}: {}", rule.channels, parts.join("; "))
}

/// Day types `first..=last` in words: `Monday to Friday`, `Saturday, Sunday, public holidays`.
pub fn day_span(first: usize, last: usize) -> String {
    let weekdays_last = last.min(HOLIDAY - 1);
    let mut words = match weekdays_last.checked_sub(first) {
        None => Vec::new(),
        Some(0) => vec![DAY_NAMES[first].to_string()],
        Some(1) => vec![DAY_NAMES[first].to_string(), DAY_NAMES[weekdays_last].to_string()],
        Some(_) => vec![format!("{} to {}", DAY_NAMES[first], DAY_NAMES[weekdays_last])],
    };
    if last == HOLIDAY {
        words.push(DAY_NAMES[HOLIDAY].to_string());
    }
    words.join(", ")
}

/// A duration in words: `24 hours`, `7 days`, `30 minutes`.
fn duration(d: Duration) -> String {
    let plural = |n: i64, unit: &str| if n == 1 { format!("1 {unit}") } else { format!("{n} {unit}s") };
    match d.minutes {
        1440 => "24 hours".into(),
        m if m % 1440 == 0 => plural(m / 1440, "day"),
        m if m % 60 == 0 => plural(m / 60, "hour"),
        m => plural(m, "minute"),
    }
}

fn scope(scope: Scope) -> &'static str {
    match scope {
        Scope::Debtor => "per debtor",
        Scope::Debt => "per debt",
        Scope::DebtorChannel => "per debtor and channel",
    }
}

/// `call, visit: at most 1 attempt per local calendar day, per debtor`.
fn cap(rule: &CapRule) -> String {
    let counted = match (rule.counts, rule.limit) {
        (Counts::Attempts, Some(1)) => "attempt",
        (Counts::Attempts, _) => "attempts",
        (Counts::Contacts, Some(1)) => "completed contact",
        (Counts::Contacts, _) => "completed contacts",
    };
    let mut parts = Vec::new();
    if let Some(limit) = rule.limit {
        parts.push(format!("at most {limit} {counted}"));
    }
    if let Some(channels) = rule.max_channels {
        parts.push(format!("at most {channels} different channel(s)"));
    }
    let mut text = parts.join(" and ");
    match rule.period {
        Some(Period::Rolling(d)) => text.push_str(&format!(" in any {}", duration(d))),
        Some(Period::Calendar(CalendarPeriod::Day)) => text.push_str(" per local calendar day"),
        Some(Period::Calendar(CalendarPeriod::Week)) => text.push_str(" per calendar week (Monday to Sunday)"),
        Some(Period::Calendar(CalendarPeriod::Month)) => text.push_str(" per calendar month"),
        Some(Period::LocalDays(n)) => {
            text.push_str(&format!(" in any {n} consecutive local days (the day of a contact is day 1)"))
        }
        None => {}
    }
    if let Some(gap) = rule.min_gap {
        if !text.is_empty() {
            text.push_str("; ");
        }
        text.push_str(&format!("at least {} between two {counted}", duration(gap)));
    }
    let mut says = format!("{}: {text}, {}", rule.channels, scope(rule.scope));
    if rule.contact_points.0.is_some() {
        says.push_str(&format!(", to {} (or an unnamed contact point)", rule.contact_points));
    }
    if rule.exclude_debtor_initiated {
        says.push_str("; the debtor's own contacts not counted");
    }
    if let Some(ConsentExclusion { max_days, written_only }) = rule.exclude_consented {
        says.push_str(if written_only {
            "; contacts a written consent covered not counted"
        } else {
            "; consented contacts not counted"
        });
        if let Some(n) = max_days {
            says.push_str(&format!(" (a consent covers at most {n} local days)"));
        }
    }
    says
}

fn channels_or_any(channels: ChannelSet) -> String {
    if channels == ChannelSet::ALL { "any channel".into() } else { channels.to_string() }
}

/// `call: none for 7 days after a conversation on any channel, per debtor`.
fn cooldown(rule: &CooldownRule) -> String {
    let after: Vec<&str> = rule.after.iter().copied().map(Outcome::as_str).collect();
    let to = match rule.contact_points.0 {
        Some(_) => format!(", to {} (or an unnamed contact point)", rule.contact_points),
        None => String::new(),
    };
    format!(
        "{}: none for {} after {} on {}, {}{to}",
        rule.channels,
        match rule.length {
            CooldownLength::Rolling(d) => duration(d),
            CooldownLength::LocalDays(n) => format!("{n} local days (the day of the outcome is day 1)"),
        },
        after.join(" or "),
        channels_or_any(rule.after_channels),
        scope(rule.scope)
    )
}

fn parties(allowed: &[Party]) -> String {
    let words: Vec<&str> = allowed.iter().copied().map(Party::as_str).collect();
    format!("only {} may be contacted", words.join(", "))
}

fn stages(rule: &StageChannelRule) -> String {
    let words: Vec<&str> = rule.stages.iter().copied().map(Stage::as_str).collect();
    format!("at stage {}: only {}", words.join(", "), rule.channels)
}
