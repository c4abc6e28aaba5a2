//! Frequency caps and cooldowns: given the contact history, when is the
//! earliest instant a new contact no longer breaks them.

use std::sync::Arc;

use chrono::{DateTime, Datelike, Days, Months, NaiveDate, Utc};
use chrono_tz::Tz;

use super::windows::{Edge, local_to_utc};
use crate::domain::{ContactEvent, Intent};
use crate::rules::file::{CalendarPeriod, Counts, Scope};
use crate::rules::{CapRule, CooldownRule, Period, RuleMeta};

/// A rule that holds the contact back until `until`, and why.
pub struct Block<'a> {
    pub until: DateTime<Utc>,
    pub rule: &'a Arc<RuleMeta>,
    pub message: String,
}

fn in_scope(scope: Scope, intent: &Intent, event: &ContactEvent) -> bool {
    match scope {
        Scope::Debtor => true,
        Scope::Debt => match (&event.debt_id, &intent.debt_id) {
            (Some(theirs), Some(ours)) => theirs == ours,
            _ => true,
        },
        Scope::DebtorChannel => event.channel == intent.channel,
    }
}

fn counted<'h>(cap: &CapRule, intent: &Intent, history: &'h [ContactEvent]) -> impl Iterator<Item = &'h ContactEvent> {
    history.iter().filter(move |e| {
        cap.channels.contains(e.channel)
            && in_scope(cap.scope, intent, e)
            && (cap.counts == Counts::Attempts || e.outcome.is_completed_contact())
    })
}

/// Whether the events in a period leave room for one more contact.
fn room(cap: &CapRule, intent: &Intent, events: &[&ContactEvent]) -> bool {
    let under_limit = cap.limit.is_none_or(|limit| events.len() < limit as usize);
    let under_channels = cap.max_channels.is_none_or(|max| {
        let mut seen: Vec<_> = events.iter().map(|e| e.channel).collect();
        seen.sort();
        seen.dedup();
        seen.contains(&intent.channel) || seen.len() < max as usize
    });
    under_limit && under_channels
}

fn what(cap: &CapRule) -> String {
    match (cap.limit, cap.max_channels) {
        (Some(limit), Some(max)) => format!("at most {limit} contacts over at most {max} channels"),
        (Some(limit), None) => format!(
            "at most {limit} {}{}",
            if cap.counts == Counts::Attempts { "attempt" } else { "completed contact" },
            if limit == 1 { "" } else { "s" }
        ),
        (None, Some(max)) => format!("at most {max} different channel{}", if max == 1 { "" } else { "s" }),
        (None, None) => String::new(),
    }
}

fn local_date_start(zone: Tz, date: NaiveDate) -> Option<DateTime<Utc>> {
    local_to_utc(zone, date, 0, Edge::Start)
}

/// The local calendar period containing `t`, as UTC `[start, end)`.
fn calendar_period(period: CalendarPeriod, zone: Tz, t: DateTime<Utc>) -> Option<(DateTime<Utc>, DateTime<Utc>)> {
    let today = t.with_timezone(&zone).date_naive();
    let (first, next) = match period {
        CalendarPeriod::Day => (today, today.checked_add_days(Days::new(1))?),
        CalendarPeriod::Week => {
            let monday = today.checked_sub_days(Days::new(u64::from(today.weekday().num_days_from_monday())))?;
            (monday, monday.checked_add_days(Days::new(7))?)
        }
        CalendarPeriod::Month => {
            let first = today.with_day(1)?;
            (first, first.checked_add_months(Months::new(1))?)
        }
    };
    Some((local_date_start(zone, first)?, local_date_start(zone, next)?))
}

fn period_name(period: CalendarPeriod) -> &'static str {
    match period {
        CalendarPeriod::Day => "day",
        CalendarPeriod::Week => "calendar week (Monday to Sunday)",
        CalendarPeriod::Month => "calendar month",
    }
}

/// When `cap` stops blocking a contact at `t`, if it blocks it.
pub fn cap_block<'a>(
    cap: &'a CapRule,
    intent: &Intent,
    history: &[ContactEvent],
    zones: &[Tz],
    t: DateTime<Utc>,
) -> Option<Block<'a>> {
    if !cap.channels.contains(intent.channel) {
        return None;
    }
    let events: Vec<&ContactEvent> = counted(cap, intent, history).collect();
    let mut until: Option<DateTime<Utc>> = None;
    let mut message = String::new();
    if let Some(gap) = cap.min_gap {
        let gap = gap.to_chrono();
        if let Some(last) = events.iter().filter(|e| (e.at - t).abs() < gap).map(|e| e.at).max() {
            until = Some(last + gap);
            message = format!(
                "requires {} between contacts; the last one was at {}",
                cap.min_gap.map(|g| g.to_string()).unwrap_or_default(),
                last.to_rfc3339()
            );
        }
    }
    match cap.period {
        Some(Period::Rolling(length)) => {
            let length = length.to_chrono();
            let window = |u: DateTime<Utc>| -> Vec<&ContactEvent> {
                events.iter().copied().filter(|e| e.at > u - length && e.at < u + length).collect()
            };
            if !room(cap, intent, &window(t)) {
                let mut candidates: Vec<DateTime<Utc>> =
                    events.iter().map(|e| e.at + length).filter(|u| *u > t).collect();
                candidates.sort();
                let free = candidates.into_iter().find(|u| room(cap, intent, &window(*u)));
                // No candidate frees it (cannot happen with past events):
                // block for a full period, which the caller bounds.
                let free = free.unwrap_or(t + length);
                until = Some(until.map_or(free, |u| u.max(free)));
                let counted = window(t);
                message = format!(
                    "allows {} in any {}; {} already counted in the last {} ({})",
                    what(cap),
                    cap_period_text(cap),
                    counted.len(),
                    cap_period_text(cap),
                    latest(&counted)
                );
            }
        }
        Some(Period::Calendar(period)) => {
            for zone in zones {
                let Some((start, end)) = calendar_period(period, *zone, t) else {
                    continue;
                };
                let inside: Vec<&ContactEvent> =
                    events.iter().copied().filter(|e| e.at >= start && e.at < end).collect();
                if !room(cap, intent, &inside) {
                    until = Some(until.map_or(end, |u| u.max(end)));
                    message = format!(
                        "allows {} per {} in {zone}; {} already counted in this one ({})",
                        what(cap),
                        period_name(period),
                        inside.len(),
                        latest(&inside)
                    );
                }
            }
        }
        None => {}
    }
    until.map(|until| Block { until, rule: &cap.meta, message })
}

/// Names the newest of the contacts that fill a cap.
fn latest(events: &[&ContactEvent]) -> String {
    match events.iter().max_by_key(|e| e.at) {
        Some(e) => format!("the latest: {} {} at {}", e.channel, e.outcome, e.at.to_rfc3339()),
        None => "none recorded".into(),
    }
}

fn cap_period_text(cap: &CapRule) -> String {
    match cap.period {
        Some(Period::Rolling(d)) => d.to_string(),
        Some(Period::Calendar(p)) => period_name(p).to_string(),
        None => String::new(),
    }
}

/// When `cooldown` stops blocking a contact at `t`, if it blocks it.
pub fn cooldown_block<'a>(
    cooldown: &'a CooldownRule,
    intent: &Intent,
    history: &[ContactEvent],
    t: DateTime<Utc>,
) -> Option<Block<'a>> {
    if !cooldown.channels.contains(intent.channel) {
        return None;
    }
    let length = cooldown.duration.to_chrono();
    let last = history
        .iter()
        .filter(|e| {
            cooldown.after.contains(&e.outcome)
                && cooldown.after_channels.contains(e.channel)
                && in_scope(cooldown.scope, intent, e)
        })
        .filter(|e| e.at <= t && e.at + length > t)
        .max_by_key(|e| e.at)?;
    Some(Block {
        until: last.at + length,
        rule: &cooldown.meta,
        message: format!(
            "no {} for {} after a {} {} outcome ({})",
            cooldown.channels,
            cooldown.duration,
            last.channel,
            last.outcome,
            last.at.to_rfc3339()
        ),
    })
}
