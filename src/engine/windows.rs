//! Contact windows in local civil time, mapped to UTC intervals with
//! chrono-tz. DST is handled strictly: a boundary inside a gap moves to the
//! gap's end; an ambiguous start takes the later reading and an ambiguous
//! end the earlier one, so a contact is inside the window on every reading.

use std::cell::{OnceCell, RefCell};

use chrono::{DateTime, Datelike, Days, Duration, LocalResult, NaiveDate, Offset, TimeZone, Utc};
use chrono_tz::Tz;

use crate::rules::file::{Minute, TimeRange};
use crate::rules::holidays::{HolidayCalendar, Observed};
use crate::rules::{HOLIDAY, WindowRule};

/// Which end of a window a local time is.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Edge {
    Start,
    End,
}

/// Slots in each thread's memo of recent conversions.
const MEMO_SLOTS: usize = 1024;

/// One remembered conversion: its packed key (`u64::MAX` when empty) and result.
type MemoEntry = (u64, Option<DateTime<Utc>>);

thread_local! {
    /// Recent `local_to_utc` results on this thread. chrono-tz's lookup is
    /// the engine's largest single cost, and decisions cluster on a few
    /// zones and local days (a morning's surge is one day in one zone). A
    /// memo of a pure function, bounded and keyed exactly: the engine's
    /// answers do not depend on what it holds.
    static MEMO: RefCell<Box<[MemoEntry; MEMO_SLOTS]>> = RefCell::new(Box::new([(u64::MAX, None); MEMO_SLOTS]));
}

/// The UTC instant of local `minute` (0..=1440) on `date` in `zone`.
pub fn local_to_utc(zone: Tz, date: NaiveDate, minute: Minute, edge: Edge) -> Option<DateTime<Utc>> {
    if minute > 1440 {
        return convert(zone, date, minute, edge);
    }
    // Zone index (< 2^12), day number (32 bits), minute (11 bits), edge: exact.
    let key = (zone as u64) << 44
        | u64::from(date.num_days_from_ce() as u32) << 12
        | u64::from(minute) << 1
        | u64::from(edge == Edge::End);
    let slot = (key.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 54) as usize % MEMO_SLOTS;
    if let Ok(memo) = MEMO.try_with(|memo| memo.borrow()[slot])
        && memo.0 == key
    {
        return memo.1;
    }
    let result = convert(zone, date, minute, edge);
    let _ = MEMO.try_with(|memo| memo.borrow_mut()[slot] = (key, result));
    result
}

/// `local_to_utc` without the memo.
fn convert(zone: Tz, date: NaiveDate, minute: Minute, edge: Edge) -> Option<DateTime<Utc>> {
    let midnight = date.and_hms_opt(0, 0, 0)?;
    let local = midnight.checked_add_signed(Duration::minutes(i64::from(minute)))?;
    // The offset alone (not `from_local_datetime`, which builds a zoned
    // value only for it to be converted back): this is the engine's
    // innermost conversion.
    let utc = |offset: <Tz as TimeZone>::Offset| {
        local.checked_sub_offset(offset.fix()).map(|t| DateTime::<Utc>::from_naive_utc_and_offset(t, Utc))
    };
    match zone.offset_from_local_datetime(&local) {
        LocalResult::Single(offset) => utc(offset),
        LocalResult::Ambiguous(earlier, later) => match edge {
            Edge::Start => utc(later),
            Edge::End => utc(earlier),
        },
        // Inside a gap: the first instant after it (gaps are at most a day).
        LocalResult::None => (1..=1440).find_map(|m| {
            let after = local.checked_add_signed(Duration::minutes(m))?;
            zone.from_local_datetime(&after).earliest().map(|t| t.with_timezone(&Utc))
        }),
    }
}

/// The holiday observed on `date` in the layers' calendars: the first
/// confirmed one, or else the first provisional one.
pub fn holiday_on<'a>(calendars: &[&'a HolidayCalendar], date: NaiveDate) -> Option<Observed<'a>> {
    let mut provisional = None;
    for holiday in calendars.iter().filter_map(|c| c.on(date)) {
        if !holiday.provisional {
            return Some(holiday);
        }
        provisional = provisional.or(Some(holiday));
    }
    provisional
}

/// Day type index of `date` (0..=6 weekday, 7 holiday) and the holiday.
pub fn day_type<'a>(calendars: &[&'a HolidayCalendar], date: NaiveDate) -> (usize, Option<Observed<'a>>) {
    match holiday_on(calendars, date) {
        Some(h) => (HOLIDAY, Some(h)),
        None => (date.weekday().num_days_from_monday() as usize, None),
    }
}

impl WindowRule {
    /// The day type of `date` for this rule (a debtor's window knows no
    /// holidays), the holiday if one is observed, and the allowed hours.
    pub fn hours_on<'a>(
        &'a self,
        date: NaiveDate,
        calendars: &[&'a HolidayCalendar],
    ) -> (usize, Option<Observed<'a>>, &'a [TimeRange]) {
        let Some(debtor) = &self.debtor else {
            let (day, holiday) = day_type(calendars, date);
            return (day, holiday, &self.days[day]);
        };
        let day = date.weekday().num_days_from_monday() as usize;
        if debtor.closed.iter().any(|(first, last)| (*first..=*last).contains(&date)) {
            return (day, None, &[]);
        }
        (day, None, &self.days[day])
    }
}

/// One window rule seen from one candidate time zone.
#[derive(Clone, Copy)]
pub struct WindowConstraint<'a> {
    pub rule: &'a WindowRule,
    pub zone: Tz,
}

impl WindowConstraint<'_> {
    /// The earliest allowed interval `[start, end)` of this constraint with
    /// `end > t`, searching local days up to `limit`.
    pub fn interval_after(
        &self,
        t: DateTime<Utc>,
        calendars: &[&HolidayCalendar],
        limit: DateTime<Utc>,
    ) -> Option<(DateTime<Utc>, DateTime<Utc>)> {
        // A range of the day before `t`'s local date ends by that date's first
        // instant, so no earlier day can hold an interval ending after `t`.
        let first = t.with_timezone(&self.zone).date_naive();
        // Most searches end on their first day (which is not after the
        // last when `t <= limit`): the last day is computed only when needed.
        let last = OnceCell::new();
        let last = || *last.get_or_init(|| limit.with_timezone(&self.zone).date_naive());
        let mut date = first;
        while (date == first && t <= limit) || date <= last() {
            for range in self.rule.hours_on(date, calendars).2 {
                // The end first: most ranges tried end before `t`.
                let Some(end) = local_to_utc(self.zone, date, range.end, Edge::End) else {
                    continue;
                };
                if end <= t {
                    continue;
                }
                let Some(start) = local_to_utc(self.zone, date, range.start, Edge::Start) else {
                    continue;
                };
                if start < end {
                    return Some(self.with_opening(t, (start, end)));
                }
            }
            date = date.checked_add_days(Days::new(1))?;
        }
        self.rule.debtor.as_ref().and_then(|d| d.opened).filter(|(_, end)| *end > t)
    }

    /// `next`, the first interval after `t`, joined with a debtor window's
    /// opening when that comes first or touches it.
    fn with_opening(&self, t: DateTime<Utc>, next: (DateTime<Utc>, DateTime<Utc>)) -> (DateTime<Utc>, DateTime<Utc>) {
        match self.rule.debtor.as_ref().and_then(|d| d.opened) {
            Some((start, end)) if end > t && start <= next.0 => {
                if end >= next.0 {
                    (start, next.1.max(end))
                } else {
                    (start, end)
                }
            }
            _ => next,
        }
    }

    /// Whether `t` is inside one of this constraint's intervals.
    pub fn allows(&self, t: DateTime<Utc>, calendars: &[&HolidayCalendar]) -> bool {
        self.interval_after(t, calendars, t).is_some_and(|(start, _)| start <= t)
    }
}

/// The earliest instant `s >= t` allowed by every constraint, with the end
/// of the common interval it starts, searching up to `limit`.
pub fn next_common_slot(
    constraints: &[WindowConstraint<'_>],
    calendars: &[&HolidayCalendar],
    mut t: DateTime<Utc>,
    limit: DateTime<Utc>,
) -> Option<(DateTime<Utc>, Option<DateTime<Utc>>)> {
    // Each round either finds a slot or moves `t` to a later interval start;
    // the bound only guards against pathological rule sets.
    for _ in 0..10_000 {
        if t > limit {
            return None;
        }
        let mut start = t;
        let mut end: Option<DateTime<Utc>> = None;
        for constraint in constraints {
            let (s, e) = constraint.interval_after(t, calendars, limit)?;
            start = start.max(s);
            end = Some(end.map_or(e, |x| x.min(e)));
        }
        match end {
            Some(e) if start < e => return Some((start, Some(e))),
            None => return Some((start, None)),
            Some(_) => t = start,
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The memo answers exactly what the conversion does: every zone of the
    /// database on days around a DST change, every edge, twice over (the
    /// second pass reads what the first stored, where slots were not
    /// reused), with more keys than slots so that slots are shared.
    #[test]
    fn memo_answers_what_the_conversion_does() {
        let days =
            ["2026-03-08", "2026-03-29", "2026-11-01", "2026-12-31"].map(|d| d.parse::<NaiveDate>().expect("date"));
        let minutes: [Minute; 6] = [0, 90, 120, 150, 1439, 1440];
        for _ in 0..2 {
            for zone in chrono_tz::TZ_VARIANTS {
                for date in days {
                    for minute in minutes {
                        for edge in [Edge::Start, Edge::End] {
                            assert_eq!(
                                local_to_utc(zone, date, minute, edge),
                                convert(zone, date, minute, edge),
                                "{zone} {date} minute {minute}"
                            );
                        }
                    }
                }
            }
        }
    }
}
