//! Frequency caps and cooldowns: given the contact history, when is the
//! earliest instant a new contact no longer breaks them.

use std::cell::{Cell, OnceCell};
use std::sync::Arc;

use chrono::{DateTime, Datelike, Days, Months, NaiveDate, Utc};
use chrono_tz::Tz;

use super::windows::{Edge, local_to_utc};
use crate::domain::{Channel, Consent, ContactEvent, Initiator, Intent};
use crate::rules::file::{CalendarPeriod, Counts, Scope};
use crate::rules::{CapRule, ChannelSet, CooldownLength, CooldownRule, Period, RuleMeta};

/// A rule that holds the contact back until `until`, and why (empty when
/// the caller did not ask).
pub struct Block<'a> {
    pub until: DateTime<Utc>,
    pub rule: &'a Arc<RuleMeta>,
    pub message: String,
}

/// The contact history as the limits read it: each event's local date in
/// each of the debtor's zones, computed at most once per evaluation (every
/// cap and cooldown, in every round of the search, reads them) and only
/// for the events a rule counts.
pub struct History<'h> {
    events: &'h [ContactEvent],
    zones: &'h [Tz],
    /// Event `i`'s local date in `zones[z]` at `z * events.len() + i`.
    dates: OnceCell<Box<[Cell<Option<NaiveDate>>]>>,
}

impl<'h> History<'h> {
    pub fn new(events: &'h [ContactEvent], zones: &'h [Tz]) -> History<'h> {
        History { events, zones, dates: OnceCell::new() }
    }

    /// Event `index`'s local date in the `zone`th zone.
    fn date(&self, zone: usize, index: usize) -> NaiveDate {
        let dates = self.dates.get_or_init(|| vec![Cell::new(None); self.zones.len() * self.events.len()].into());
        let cell = &dates[zone * self.events.len() + index];
        cell.get().unwrap_or_else(|| {
            let date = self.events[index].at.with_timezone(&self.zones[zone]).date_naive();
            cell.set(Some(date));
            date
        })
    }
}

/// An event of the history with its position, to look up its local dates.
#[derive(Clone, Copy)]
struct Event<'h> {
    index: usize,
    event: &'h ContactEvent,
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
    history: &'h History<'h>,
    consented: &'h Consented<'h>,
) -> impl Iterator<Item = Event<'h>> {
    history.events.iter().enumerate().map(|(index, event)| Event { index, event }).filter(
        move |Event { event: e, .. }| {
            cap.channels.contains(e.channel)
                && in_scope(cap.scope, intent, e)
                && (cap.counts == Counts::Attempts || e.outcome.is_completed_contact())
                && cap.contact_points.count(e)
                && !(cap.exclude_debtor_initiated && e.initiator == Initiator::Debtor)
                && !consented.covers(e.channel, e.at)
        },
    )
}

/// The consents a cap honours, each with the stretch `[from, until)` it
/// covers: within the consent's terms and, where the cap limits it, within
/// its first N local days in every one of the debtor's zones.
struct Consented<'c>(Vec<Honoured<'c>>);

/// A consent a cap honours, until when (`None`: until revoked).
struct Honoured<'c> {
    consent: &'c Consent,
    until: Option<DateTime<Utc>>,
}

impl<'c> Consented<'c> {
    fn new(cap: &CapRule, consents: &'c [Consent], zones: &[Tz]) -> Consented<'c> {
        let Some(exclusion) = cap.exclude_consented else {
            return Consented(Vec::new());
        };
        let honoured = consents.iter().filter(|c| c.written || !exclusion.written_only).filter_map(|consent| {
            let Some(n) = exclusion.max_days else {
                return Some(Honoured { consent, until: consent.ends() });
            };
            // A day that cannot be computed leaves the consent unhonoured: fail closed.
            let last = zones
                .iter()
                .map(|zone| {
                    days_after(consent.from.with_timezone(zone).date_naive(), i64::from(n))
                        .and_then(|day| local_date_start(*zone, day))
                })
                .collect::<Option<Vec<_>>>()?
                .into_iter()
                .min()?;
            Some(Honoured { consent, until: Some(consent.ends().map_or(last, |end| end.min(last))) })
        });
        Consented(honoured.collect())
    }

    /// Whether an honoured consent covers a contact on `channel` at `t`.
    fn covers(&self, channel: Channel, t: DateTime<Utc>) -> bool {
        self.0.iter().any(|Honoured { consent, until }| {
            consent.channels.contains(&channel) && consent.from <= t && until.is_none_or(|end| t < end)
        })
    }
}

/// Whether the events in a period leave room for one more contact.
fn room<'e>(cap: &CapRule, intent: &Intent, events: impl Iterator<Item = &'e ContactEvent>) -> bool {
    let mut count = 0;
    let mut seen = ChannelSet::default();
    for event in events {
        count += 1;
        seen.insert(event.channel);
    }
    let under_limit = cap.limit.is_none_or(|limit| count < limit as usize);
    let under_channels = cap.max_channels.is_none_or(|max| seen.contains(intent.channel) || seen.len() < max as usize);
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

/// The events of a cap of `n` consecutive local days counted at `t` in
/// the `zone`th zone: those of `t`'s local day and the `n - 1` before it.
fn local_days_counted<'h>(
    history: &History<'h>,
    events: &[Event<'h>],
    zone: usize,
    (first, last): (NaiveDate, NaiveDate),
) -> impl Iterator<Item = &'h ContactEvent> {
    events.iter().filter(move |e| (first..=last).contains(&history.date(zone, e.index))).map(|e| e.event)
}

/// When a cap of `n` consecutive local days in the `zone`th zone stops
/// blocking a contact at `t`, if it blocks it: the start of the first local
/// day whose period has room (a day's period drops the events more than
/// `n - 1` days before it).
fn local_days_block(
    cap: &CapRule,
    intent: &Intent,
    history: &History<'_>,
    events: &[Event<'_>],
    zone: usize,
    t: DateTime<Utc>,
    n: u32,
) -> Option<DateTime<Utc>> {
    let (first, today) = local_days_at(history.zones[zone], t, n)?;
    if room(cap, intent, local_days_counted(history, events, zone, (first, today))) {
        return None;
    }
    // Within n days every event counted today has left the period.
    let free = (1..=i64::from(n)).find_map(|ahead| {
        let day = days_after(today, ahead)?;
        let period = (days_after(day, 1 - i64::from(n))?, day);
        room(cap, intent, local_days_counted(history, events, zone, period)).then_some(day)
    });
    let free = free.or_else(|| days_after(today, i64::from(n)))?;
    local_date_start(history.zones[zone], free)
}

fn period_name(period: CalendarPeriod) -> &'static str {
    match period {
        CalendarPeriod::Day => "day",
        CalendarPeriod::Week => "calendar week (Monday to Sunday)",
        CalendarPeriod::Month => "calendar month",
    }
}

/// When `cap` stops blocking a contact at `t`, if it blocks it; the
/// block's message is written only when `explain` asks for it.
pub fn cap_block<'a>(
    cap: &'a CapRule,
    intent: &Intent,
    history: &History<'_>,
    consents: &[Consent],
    t: DateTime<Utc>,
    explain: bool,
) -> Option<Block<'a>> {
    if !cap.channels.contains(intent.channel)
        || !cap.contact_points.apply_to(intent.channel, intent.contact_point.as_ref())
    {
        return None;
    }
    let consented = Consented::new(cap, consents, history.zones);
    // A contact the debtor consented to is not counted, so the cap does not hold it.
    if consented.covers(intent.channel, t) {
        return None;
    }
    let events: Vec<Event<'_>> = counted(cap, intent, history, &consented).collect();
    let mut until: Option<DateTime<Utc>> = None;
    let mut message = String::new();
    if let Some(gap) = cap.min_gap {
        let gap = gap.to_chrono();
        if let Some(last) = events.iter().filter(|e| (e.event.at - t).abs() < gap).map(|e| e.event.at).max() {
            until = Some(last + gap);
            if explain {
                message = format!(
                    "requires {} between contacts; the last one was at {}",
                    cap.min_gap.map(|g| g.to_string()).unwrap_or_default(),
                    last.to_rfc3339()
                );
            }
        }
    }
    match cap.period {
        Some(Period::Rolling(length)) => {
            let length = length.to_chrono();
            let window = |u: DateTime<Utc>| {
                events.iter().map(|e| e.event).filter(move |e| e.at > u - length && e.at < u + length)
            };
            if !room(cap, intent, window(t)) {
                let mut candidates: Vec<DateTime<Utc>> =
                    events.iter().map(|e| e.event.at + length).filter(|u| *u > t).collect();
                candidates.sort();
                let free = candidates.into_iter().find(|u| room(cap, intent, window(*u)));
                // No candidate frees it (cannot happen with past events):
                // block for a full period, which the caller bounds.
                let free = free.unwrap_or(t + length);
                until = Some(until.map_or(free, |u| u.max(free)));
                if explain {
                    let counted: Vec<&ContactEvent> = window(t).collect();
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
        }
        Some(Period::LocalDays(n)) => {
            for (index, zone) in history.zones.iter().enumerate() {
                if let Some(free) = local_days_block(cap, intent, history, &events, index, t, n) {
                    until = Some(until.map_or(free, |u| u.max(free)));
                    if explain && let Some(period) = local_days_at(*zone, t, n) {
                        let counted: Vec<&ContactEvent> = local_days_counted(history, &events, index, period).collect();
                        message = format!(
                            "allows {} in any {n} consecutive days in {zone} (the day of a contact is day 1); {} already counted from {} ({})",
                            what(cap),
                            counted.len(),
                            period.0,
                            latest(&counted)
                        );
                    }
                }
            }
        }
        Some(Period::Calendar(period)) => {
            for zone in history.zones {
                let Some((start, end)) = calendar_period(period, *zone, t) else {
                    continue;
                };
                let inside = || events.iter().map(|e| e.event).filter(|e| e.at >= start && e.at < end);
                if !room(cap, intent, inside()) {
                    until = Some(until.map_or(end, |u| u.max(end)));
                    if explain {
                        let inside: Vec<&ContactEvent> = inside().collect();
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

/// When `cooldown` stops blocking a contact at `t`, if it blocks it (the
/// message written only when `explain` asks for it): a
/// rolling length from the outcome, or the local midnight that starts day
/// N + 1 in each of the debtor's zones (the latest of them).
pub fn cooldown_block<'a>(
    cooldown: &'a CooldownRule,
    intent: &Intent,
    history: &History<'_>,
    t: DateTime<Utc>,
    explain: bool,
) -> Option<Block<'a>> {
    if !cooldown.channels.contains(intent.channel)
        || !cooldown.contact_points.apply_to(intent.channel, intent.contact_point.as_ref())
    {
        return None;
    }
    let ends = |index: usize, e: &ContactEvent| -> Option<DateTime<Utc>> {
        match cooldown.length {
            CooldownLength::Rolling(length) => Some(e.at + length.to_chrono()),
            CooldownLength::LocalDays(n) => history
                .zones
                .iter()
                .enumerate()
                .map(|(zone, tz)| local_date_start(*tz, days_after(history.date(zone, index), i64::from(n))?))
                .collect::<Option<Vec<_>>>()?
                .into_iter()
                .max(),
        }
    };
    let (last, until) = history
        .events
        .iter()
        .enumerate()
        .filter(|(_, e)| {
            cooldown.after.contains(&e.outcome)
                && cooldown.after_channels.contains(e.channel)
                && cooldown.contact_points.count(e)
                && in_scope(cooldown.scope, intent, e)
                && e.at <= t
        })
        // An end that cannot be computed (a date out of range) blocks: fail closed.
        .map(|(index, e)| (e, ends(index, e).unwrap_or(DateTime::<Utc>::MAX_UTC)))
        .filter(|(_, until)| *until > t)
        .max_by_key(|(_, until)| *until)?;
    if !explain {
        return Some(Block { until, rule: &cooldown.meta, message: String::new() });
    }
    let length = match cooldown.length {
        CooldownLength::Rolling(length) => length.to_string(),
        CooldownLength::LocalDays(n) => format!("{n} local days (the day of the outcome is day 1)"),
    };
    let message = format!(
        "no {} for {length} after a {} {} outcome ({})",
        cooldown.channels,
        last.channel,
        last.outcome,
        last.at.to_rfc3339()
    );
    Some(Block { until, rule: &cooldown.meta, message })
}
