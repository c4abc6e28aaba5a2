//! Public holiday rules and the calendars they produce: fixed dates,
//! Easter-relative days, nth weekdays, dated decrees and move rules.

use std::sync::Arc;

use chrono::{Datelike, Days, NaiveDate, Weekday};

/// How a holiday's date is found before any move applies.
#[derive(Clone, Debug, PartialEq)]
pub enum HolidayBase {
    Fixed { month: u32, day: u32 },
    Easter(i32),
    NthWeekday { month: u32, weekday: Weekday, n: i32 },
    Dates(Vec<NaiveDate>),
}

/// A compiled holiday rule.
#[derive(Clone, Debug)]
pub struct HolidayRule {
    pub id: Arc<str>,
    pub name: Arc<str>,
    pub citation: Option<Arc<str>>,
    pub base: HolidayBase,
    /// Day offset applied when the base date falls on each weekday (Mon..Sun).
    pub moves: [i64; 7],
    /// Observed only when the base date falls on one of these weekdays (Mon..Sun).
    pub only_on: Option<[bool; 7]>,
    pub from_year: Option<i32>,
    pub until_year: Option<i32>,
    pub every_years: Option<u32>,
}

/// Named move rules accepted in `moves = "..."`.
pub fn move_preset(name: &str) -> Option<[i64; 7]> {
    //            Mon Tue Wed Thu Fri Sat Sun
    match name {
        "next_monday" => Some([0, 6, 5, 4, 3, 2, 1]),
        "sunday_to_monday" => Some([0, 0, 0, 0, 0, 0, 1]),
        "weekend_to_monday" => Some([0, 0, 0, 0, 0, 2, 1]),
        _ => None,
    }
}

/// Names of the move presets, for error messages.
pub const MOVE_PRESETS: &str = "next_monday, sunday_to_monday, weekend_to_monday";

/// Western (Gregorian) Easter Sunday, by the anonymous Gregorian algorithm.
pub fn easter_sunday(year: i32) -> Option<NaiveDate> {
    let a = year % 19;
    let b = year / 100;
    let c = year % 100;
    let d = b / 4;
    let e = b % 4;
    let f = (b + 8) / 25;
    let g = (b - f + 1) / 3;
    let h = (19 * a + b - d - g + 15) % 30;
    let i = c / 4;
    let k = c % 4;
    let l = (32 + 2 * e + 2 * i - h - k) % 7;
    let m = (a + 11 * h + 22 * l) / 451;
    let month = (h + l - 7 * m + 114) / 31;
    let day = (h + l - 7 * m + 114) % 31 + 1;
    NaiveDate::from_ymd_opt(year, month as u32, day as u32)
}

fn shift(date: NaiveDate, days: i64) -> Option<NaiveDate> {
    if days >= 0 {
        date.checked_add_days(Days::new(days as u64))
    } else {
        date.checked_sub_days(Days::new(days.unsigned_abs()))
    }
}

fn nth_weekday(year: i32, month: u32, weekday: Weekday, n: i32) -> Option<NaiveDate> {
    if n > 0 {
        NaiveDate::from_weekday_of_month_opt(year, month, weekday, u8::try_from(n).ok()?)
    } else {
        // Count back from the last day of the month.
        let first_next = if month == 12 {
            NaiveDate::from_ymd_opt(year + 1, 1, 1)?
        } else {
            NaiveDate::from_ymd_opt(year, month + 1, 1)?
        };
        let last = first_next.pred_opt()?;
        let back = (7 + last.weekday().num_days_from_monday() - weekday.num_days_from_monday()) % 7;
        shift(last, -(i64::from(back) + 7 * i64::from(-n - 1)))
    }
}

impl HolidayRule {
    fn applies_to_year(&self, year: i32) -> bool {
        if self.from_year.is_some_and(|from| year < from) || self.until_year.is_some_and(|until| year > until) {
            return false;
        }
        match (self.every_years, self.from_year) {
            (Some(step), Some(from)) if step > 0 => (year - from) % step as i32 == 0,
            _ => true,
        }
    }

    /// Base (unmoved) dates this rule gives for `year`.
    fn base_dates(&self, year: i32, out: &mut Vec<NaiveDate>) {
        match &self.base {
            HolidayBase::Fixed { month, day } => out.extend(NaiveDate::from_ymd_opt(year, *month, *day)),
            HolidayBase::Easter(offset) => out.extend(easter_sunday(year).and_then(|e| shift(e, i64::from(*offset)))),
            HolidayBase::NthWeekday { month, weekday, n } => out.extend(nth_weekday(year, *month, *weekday, *n)),
            HolidayBase::Dates(dates) => out.extend(dates.iter().filter(|d| d.year() == year)),
        }
    }

    /// Observed dates that the occurrence of `year` gives, after moves
    /// (a moved day may land in the neighbouring year).
    pub fn observed_for_year(&self, year: i32, out: &mut Vec<NaiveDate>) {
        if !self.applies_to_year(year) {
            return;
        }
        let mut bases = Vec::new();
        self.base_dates(year, &mut bases);
        for base in bases {
            let weekday = base.weekday().num_days_from_monday() as usize;
            if self.only_on.is_some_and(|days| !days[weekday]) {
                continue;
            }
            out.extend(shift(base, self.moves[weekday]));
        }
    }
}

/// Every holiday of one jurisdiction file, with a precomputed table for
/// fast look-up by date.
#[derive(Clone, Debug, Default)]
pub struct HolidayCalendar {
    rules: Vec<HolidayRule>,
    /// Sorted (date, rule index) for the precomputed years.
    table: Vec<(NaiveDate, usize)>,
}

/// Years kept in the look-up table; other years are computed on demand.
const TABLE_YEARS: std::ops::RangeInclusive<i32> = 1990..=2100;

impl HolidayCalendar {
    pub fn new(rules: Vec<HolidayRule>) -> Self {
        let mut table = Vec::new();
        let mut dates = Vec::new();
        for (index, rule) in rules.iter().enumerate() {
            for year in TABLE_YEARS {
                dates.clear();
                rule.observed_for_year(year, &mut dates);
                table.extend(dates.iter().map(|d| (*d, index)));
            }
        }
        table.sort();
        HolidayCalendar { rules, table }
    }

    pub fn rules(&self) -> &[HolidayRule] {
        &self.rules
    }

    /// The holiday observed on `date`, if any.
    pub fn on(&self, date: NaiveDate) -> Option<&HolidayRule> {
        if TABLE_YEARS.contains(&date.year()) {
            let at = self.table.partition_point(|(d, _)| *d < date);
            return self.table.get(at).filter(|(d, _)| *d == date).map(|(_, i)| &self.rules[*i]);
        }
        let mut dates = Vec::new();
        self.rules.iter().find(|rule| {
            dates.clear();
            for year in date.year() - 1..=date.year() + 1 {
                rule.observed_for_year(year, &mut dates);
            }
            dates.contains(&date)
        })
    }

    /// All holidays observed in `year`, sorted by date.
    pub fn year(&self, year: i32) -> Vec<(NaiveDate, &HolidayRule)> {
        let mut found = Vec::new();
        let mut dates = Vec::new();
        for rule in &self.rules {
            dates.clear();
            for y in year - 1..=year + 1 {
                rule.observed_for_year(y, &mut dates);
            }
            found.extend(dates.iter().filter(|d| d.year() == year).map(|d| (*d, rule)));
        }
        found.sort_by(|a, b| a.0.cmp(&b.0).then_with(|| a.1.id.cmp(&b.1.id)));
        found
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(y: i32, m: u32, day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, day).expect("valid date")
    }

    #[test]
    fn easter_matches_known_dates() {
        assert_eq!(easter_sunday(2024), Some(d(2024, 3, 31)));
        assert_eq!(easter_sunday(2025), Some(d(2025, 4, 20)));
        assert_eq!(easter_sunday(2026), Some(d(2026, 4, 5)));
        assert_eq!(easter_sunday(2035), Some(d(2035, 3, 25)));
    }

    #[test]
    fn nth_and_last_weekday() {
        assert_eq!(nth_weekday(2026, 2, Weekday::Mon, 1), Some(d(2026, 2, 2)));
        assert_eq!(nth_weekday(2026, 11, Weekday::Mon, 3), Some(d(2026, 11, 16)));
        assert_eq!(nth_weekday(2026, 5, Weekday::Mon, -1), Some(d(2026, 5, 25)));
        assert_eq!(nth_weekday(2026, 12, Weekday::Thu, -1), Some(d(2026, 12, 31)));
    }

    #[test]
    fn moved_holiday_can_cross_into_next_year() {
        let rule = HolidayRule {
            id: "x".into(),
            name: "x".into(),
            citation: None,
            base: HolidayBase::Fixed { month: 12, day: 31 },
            moves: move_preset("next_monday").expect("preset"),
            only_on: None,
            from_year: None,
            until_year: None,
            every_years: None,
        };
        let calendar = HolidayCalendar::new(vec![rule]);
        // 2026-12-31 is a Thursday: observed on Monday 2027-01-04.
        assert!(calendar.on(d(2027, 1, 4)).is_some());
        assert!(calendar.on(d(2026, 12, 31)).is_none());
        assert_eq!(calendar.year(2027).first().map(|h| h.0), Some(d(2027, 1, 4)));
    }
}
