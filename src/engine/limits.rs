//! Frequency caps and cooldowns: given the contact history, when is the
//! earliest instant a new contact no longer breaks them.

use std::sync::Arc;

use chrono::{DateTime, Datelike, Days, Months, NaiveDate, Utc};
use chrono_tz::Tz;

use super::windows::{Edge, local_to_utc};
use crate::domain::{Channel, Consent, ContactEvent, Initiator, Intent};
use crate::rules::file::{CalendarPeriod, Counts, Scope};
use crate::rules::{CapRule, CooldownLength, CooldownRule, Period, RuleMeta};

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

fn counted<'h>(
    cap: &'h CapRule,
    intent: &'h Intent,
    history: &'h [ContactEvent],
    consents: &'h [Consent],
    zones: &'h [Tz],
) -> impl Iterator<Item = &'h ContactEvent> {
    history.iter().filter(move |e| {
        cap.channels.contains(e.channel)
            && in_scope(cap.scope, intent, e)
            && (cap.counts == Counts::Attempts || e.outcome.is_completed_contact())
            && cap.contact_points.count(e)
            && !(cap.exclude_debtor_initiated && e.initiator == Initiator::Debtor)
            && !consented(cap, consents, zones, e.channel, e.at)
    })
}

/// Whether a consent the cap honours covers a contact on `channel` at `t`:
/// within the consent's terms and, where the cap limits it, within its first
/// N local days in every one of the debtor's zones.
fn consented(cap: &CapRule, consents: &[Consent], zones: &[Tz], channel: Channel, t: DateTime<Utc>) -> bool {
    let Some(exclusion) = cap.exclude_consented else {
        return false;
    };
    consents.iter().any(|consent| {
        consent.covers(channel, t)
            && (consent.written || !exclusion.written_only)
            && exclusion.max_days.is_none_or(|n| {
                zones.iter().all(|zone| {
                    days_after(consent.from.with_timezone(zone).date_naive(), i64::from(n))
                        .and_then(|day| local_date_start(*zone, day))
                        .is_some_and(|end| t < end)
                })
            })
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

/// The local date `days` after `date` (or before, when negative).
fn days_after(date: NaiveDate, days: i64) -> Option<NaiveDate> {
    match u64::try_from(days) {
        Ok(after) => date.checked_add_days(Days::new(after)),
        Err(_) => date.checked_sub_days(Days::new(days.unsigned_abs())),
    }
}

/// Local days `[first, last]` counted at `t` by a period of `n`
/// consecutive days: `t`'s own day and the `n - 1` before it.
fn local_days_at(zone: Tz, t: DateTime<Utc>, n: u32) -> Option<(NaiveDate, NaiveDate)> {
    let today = t.with_timezone(&zone).date_naive();
    Some((days_after(today, 1 - i64::from(n))?, today))
}

/// A contact under a cap of `n` consecutive local days in `zone` at `t`:
/// the events counted, and if there is no room, the start of the first
/// local day whose period has room (a day's period drops the events more
/// than `n - 1` days before it).
fn local_days_block<'h>(
    cap: &CapRule,
    intent: &Intent,
    events: &[&'h ContactEvent],
    zone: Tz,
    t: DateTime<Utc>,
    n: u32,
) -> Option<(DateTime<Utc>, Vec<&'h ContactEvent>)> {
    // Each event's local date, computed once for every period tried below.
    let dated: Vec<(NaiveDate, &'h ContactEvent)> =
        events.iter().map(|e| (e.at.with_timezone(&zone).date_naive(), *e)).collect();
    let inside = |first: NaiveDate, last: NaiveDate| -> Vec<&'h ContactEvent> {
        dated.iter().filter(|(date, _)| (first..=last).contains(date)).map(|(_, e)| *e).collect()
    };
    let (first, today) = local_days_at(zone, t, n)?;
    let counted = inside(first, today);
    if room(cap, intent, &counted) {
        return None;
    }
    // Within n days every event counted today has left the period.
    let free = (1..=i64::from(n)).find_map(|ahead| {
        let day = days_after(today, ahead)?;
        room(cap, intent, &inside(days_after(day, 1 - i64::from(n))?, day)).then_some(day)
    });
    let free = free.or_else(|| days_after(today, i64::from(n)))?;
    Some((local_date_start(zone, free)?, counted))
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
    consents: &[Consent],
    zones: &[Tz],
    t: DateTime<Utc>,
) -> Option<Block<'a>> {
    if !cap.channels.contains(intent.channel)
        || !cap.contact_points.apply_to(intent.channel, intent.contact_point.as_ref())
        // A contact the debtor consented to is not counted, so the cap does not hold it.
        || consented(cap, consents, zones, intent.channel, t)
    {
        return None;
    }
    let events: Vec<&ContactEvent> = counted(cap, intent, history, consents, zones).collect();
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
        Some(Period::LocalDays(n)) => {
            for zone in zones {
                if let Some((free, counted)) = local_days_block(cap, intent, &events, *zone, t, n) {
                    until = Some(until.map_or(free, |u| u.max(free)));
                    message = format!(
                        "allows {} in any {n} consecutive days in {zone} (the day of a contact is day 1); {} already counted from {} ({})",
                        what(cap),
                        counted.len(),
                        local_days_at(*zone, t, n).map(|(first, _)| first.to_string()).unwrap_or_default(),
                        latest(&counted)
                    );
                }
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
        Some(Period::LocalDays(n)) => format!("{n} consecutive local days"),
        None => String::new(),
    }
}

/// When `cooldown` stops blocking a contact at `t`, if it blocks it: a
/// rolling length from the outcome, or the local midnight that starts day
/// N + 1 in each of the debtor's zones (the latest of them).
pub fn cooldown_block<'a>(
    cooldown: &'a CooldownRule,
    intent: &Intent,
    history: &[ContactEvent],
    zones: &[Tz],
    t: DateTime<Utc>,
) -> Option<Block<'a>> {
    if !cooldown.channels.contains(intent.channel)
        || !cooldown.contact_points.apply_to(intent.channel, intent.contact_point.as_ref())
    {
        return None;
    }
    let ends = |e: &ContactEvent| -> Option<DateTime<Utc>> {
        match cooldown.length {
            CooldownLength::Rolling(length) => Some(e.at + length.to_chrono()),
            CooldownLength::LocalDays(n) => zones
                .iter()
                .map(|zone| {
                    let day = days_after(e.at.with_timezone(zone).date_naive(), i64::from(n))?;
                    local_date_start(*zone, day)
                })
                .collect::<Option<Vec<_>>>()?
                .into_iter()
                .max(),
        }
    };
    let (last, until) = history
        .iter()
        .filter(|e| {
            cooldown.after.contains(&e.outcome)
                && cooldown.after_channels.contains(e.channel)
                && cooldown.contact_points.count(e)
                && in_scope(cooldown.scope, intent, e)
                && e.at <= t
        })
        // An end that cannot be computed (a date out of range) blocks: fail closed.
        .map(|e| (e, ends(e).unwrap_or(DateTime::<Utc>::MAX_UTC)))
        .filter(|(_, until)| *until > t)
        .max_by_key(|(_, until)| *until)?;
    let length = match cooldown.length {
        CooldownLength::Rolling(length) => length.to_string(),
        CooldownLength::LocalDays(n) => format!("{n} local days (the day of the outcome is day 1)"),
    };
    Some(Block {
        until,
        rule: &cooldown.meta,
        message: format!(
            "no {} for {length} after a {} {} outcome ({})",
            cooldown.channels,
            last.channel,
            last.outcome,
            last.at.to_rfc3339()
        ),
    })
}
