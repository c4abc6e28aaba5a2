//! Public holiday rules and the calendars they produce: fixed dates,
//! Easter-relative days, nth weekdays, dated decrees and move rules, and
//! provisional days: the candidates an authority may still move a holiday
//! to, all closed until a decision picks one.

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
    /// Days an authority may still move the holiday to, decided case by case.
    pub provisional: Option<Provisional>,
    /// The decisions published so far, one day per occurrence.
    pub decided: Vec<Decision>,
    /// How far this rule's dated lists and decisions are confirmed, when it
    /// says so itself (otherwise its file's horizon applies).
    pub confirmed_through: Option<NaiveDate>,
}

/// An authority's power to move a holiday case by case: until it decides,
/// the day the holiday would otherwise be observed and every candidate are
/// closed (the debtor's day off is not known yet).
#[derive(Clone, Debug, PartialEq)]
pub struct Provisional {
    /// First base date the power applies to (the norm's entry into force).
    pub since: Option<NaiveDate>,
    /// The norm that gives the power.
    pub citation: Arc<str>,
    /// Candidate days as offsets from the base date, by its weekday (Mon..Sun).
    pub candidates: [Vec<i64>; 7],
}

/// A published decision: the day one occurrence is observed on.
#[derive(Clone, Debug, PartialEq)]
pub struct Decision {
    pub date: NaiveDate,
    pub citation: Arc<str>,
}

/// One year's occurrence of a holiday rule: the day it falls on before any
/// move, and the days it closes; `pending` when they are the candidates of a
/// decision not yet published.
#[derive(Clone, Debug, PartialEq)]
pub struct Occurrence {
    pub base: NaiveDate,
    pub days: Vec<NaiveDate>,
    pub pending: bool,
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

    /// The occurrences of `year`, after moves and decisions (a moved day
    /// may land in the neighbouring year).
    pub fn occurrences(&self, year: i32) -> Vec<Occurrence> {
        if !self.applies_to_year(year) {
            return Vec::new();
        }
        let mut bases = Vec::new();
        self.base_dates(year, &mut bases);
        bases
            .into_iter()
            .filter(|base| self.only_on.is_none_or(|days| days[weekday_index(*base)]))
            .filter_map(|base| self.occurrence(base))
            .collect()
    }

    fn occurrence(&self, base: NaiveDate) -> Option<Occurrence> {
        let weekday = weekday_index(base);
        let observed = shift(base, self.moves[weekday])?;
        let candidates = self.candidates(base);
        if candidates.is_empty() {
            return Some(Occurrence { base, days: vec![observed], pending: false });
        }
        let mut days: Vec<NaiveDate> = std::iter::once(observed).chain(candidates).collect();
        days.sort();
        days.dedup();
        match self.decided.iter().find(|d| days.contains(&d.date)) {
            Some(decision) => Some(Occurrence { base, days: vec![decision.date], pending: false }),
            None => Some(Occurrence { base, days, pending: true }),
        }
    }

    /// The candidate days of the occurrence falling on `base`, when the
    /// provisional power applies to it.
    fn candidates(&self, base: NaiveDate) -> Vec<NaiveDate> {
        match &self.provisional {
            Some(p) if p.since.is_none_or(|since| base >= since) => {
                p.candidates[weekday_index(base)].iter().filter_map(|offset| shift(base, *offset)).collect()
            }
            _ => Vec::new(),
        }
    }

    /// Observed days of `year`'s occurrences, each with whether it is
    /// provisional.
    pub fn observed_for_year(&self, year: i32, out: &mut Vec<(NaiveDate, bool)>) {
        for occurrence in self.occurrences(year) {
            out.extend(occurrence.days.iter().map(|d| (*d, occurrence.pending)));
        }
    }

    /// What is wrong with the decisions: one that picks none of an
    /// occurrence's days (a typo in a date, or a decision filed under the
    /// wrong holiday), or two that decide the same occurrence (the first
    /// would win and the day the second picks would stay open). Each with
    /// the decision's date.
    pub fn decision_problems(&self) -> Vec<(NaiveDate, String)> {
        let mut problems = Vec::new();
        let mut decided: Vec<(NaiveDate, NaiveDate)> = Vec::new();
        for decision in &self.decided {
            let year = decision.date.year();
            let occurrence = (year - 1..=year + 1).filter(|y| self.applies_to_year(*y)).find_map(|y| {
                let mut bases = Vec::new();
                self.base_dates(y, &mut bases);
                bases.into_iter().filter(|base| self.only_on.is_none_or(|days| days[weekday_index(*base)])).find(
                    |base| {
                        let mut choices = self.candidates(*base);
                        choices.extend(shift(*base, self.moves[weekday_index(*base)]));
                        choices.len() > 1 && choices.contains(&decision.date)
                    },
                )
            });
            match occurrence {
                None => problems.push((
                    decision.date,
                    format!(
                        "decision {} is none of the candidate days of any occurrence of {:?} (is the date or the holiday wrong?)",
                        decision.date, self.id
                    ),
                )),
                Some(base) => match decided.iter().find(|(b, _)| *b == base) {
                    Some((_, first)) => problems.push((
                        decision.date,
                        format!(
                            "decisions {first} and {} both decide the occurrence of {:?} falling on {base}: keep only the one in force",
                            decision.date, self.id
                        ),
                    )),
                    None => decided.push((base, decision.date)),
                },
            }
        }
        problems
    }
}

fn weekday_index(date: NaiveDate) -> usize {
    date.weekday().num_days_from_monday() as usize
}

/// A holiday found on a date: its rule, and whether the day is only a
/// candidate of a decision not yet published.
#[derive(Clone, Copy, Debug)]
pub struct Observed<'a> {
    pub rule: &'a HolidayRule,
    pub provisional: bool,
}

impl Observed<'_> {
    /// The holiday's name as a reason shows it.
    pub fn label(&self) -> String {
        match (&self.rule.provisional, self.provisional) {
            (Some(p), true) => {
                format!(
                    "{}, provisional: a candidate day until the authority decides under {}",
                    self.rule.name, p.citation
                )
            }
            _ => self.rule.name.to_string(),
        }
    }
}

/// Every holiday of one jurisdiction file, with a precomputed table for
/// fast look-up by date.
#[derive(Clone, Debug, Default)]
pub struct HolidayCalendar {
    rules: Vec<HolidayRule>,
    /// Sorted (date, provisional, rule index) for the precomputed years: on a
    /// date with several holidays a confirmed one comes first.
    table: Vec<(NaiveDate, bool, usize)>,
}

/// Years kept in the look-up table; other years are computed on demand.
const TABLE_YEARS: std::ops::RangeInclusive<i32> = 1990..=2100;

impl HolidayCalendar {
    pub fn new(rules: Vec<HolidayRule>) -> Self {
        let mut table = Vec::new();
        let mut days = Vec::new();
        for (index, rule) in rules.iter().enumerate() {
            // The years around the table too: a moved day may cross a year end.
            for year in TABLE_YEARS.start() - 1..=TABLE_YEARS.end() + 1 {
                days.clear();
                rule.observed_for_year(year, &mut days);
                let inside = days.iter().filter(|(d, _)| TABLE_YEARS.contains(&d.year()));
                table.extend(inside.map(|(d, provisional)| (*d, *provisional, index)));
            }
        }
        table.sort();
        HolidayCalendar { rules, table }
    }

    pub fn rules(&self) -> &[HolidayRule] {
        &self.rules
    }

    /// The holiday observed on `date`, if any.
    pub fn on(&self, date: NaiveDate) -> Option<Observed<'_>> {
        if TABLE_YEARS.contains(&date.year()) {
            let at = self.table.partition_point(|(d, _, _)| *d < date);
            return self
                .table
                .get(at)
                .filter(|(d, _, _)| *d == date)
                .map(|(_, provisional, i)| Observed { rule: &self.rules[*i], provisional: *provisional });
        }
        self.year(date.year()).into_iter().find(|(d, _)| *d == date).map(|(_, observed)| observed)
    }

    /// All holidays observed in `year`, sorted by date.
    pub fn year(&self, year: i32) -> Vec<(NaiveDate, Observed<'_>)> {
        let mut found = Vec::new();
        let mut days = Vec::new();
        for rule in &self.rules {
            days.clear();
            for y in year - 1..=year + 1 {
                rule.observed_for_year(y, &mut days);
            }
            found.extend(
                days.iter()
                    .filter(|(d, _)| d.year() == year)
                    .map(|(d, provisional)| (*d, Observed { rule, provisional: *provisional })),
            );
        }
        found.sort_by(|a, b| {
            a.0.cmp(&b.0)
                .then_with(|| a.1.provisional.cmp(&b.1.provisional))
                .then_with(|| a.1.rule.id.cmp(&b.1.rule.id))
        });
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
            provisional: None,
            decided: Vec::new(),
            confirmed_through: None,
        };
        let calendar = HolidayCalendar::new(vec![rule]);
        // 2026-12-31 is a Thursday: observed on Monday 2027-01-04.
        assert!(calendar.on(d(2027, 1, 4)).is_some());
        assert!(calendar.on(d(2026, 12, 31)).is_none());
        assert_eq!(calendar.year(2027).first().map(|h| h.0), Some(d(2027, 1, 4)));
    }

    /// Argentina's Soberanía (Nov 20) under Ley 27.399 art. 6 and Decreto
    /// 614/2025: on a weekend, the Friday before or the Monday after.
    fn sovereignty(decided: Vec<NaiveDate>) -> HolidayRule {
        let mut candidates: [Vec<i64>; 7] = Default::default();
        candidates[5] = vec![-1, 2];
        candidates[6] = vec![-2, 1];
        HolidayRule {
            id: "ar-sovereignty".into(),
            name: "Soberanía".into(),
            citation: None,
            base: HolidayBase::Fixed { month: 11, day: 20 },
            moves: [-1, -1, -2, 4, 3, 0, 0],
            only_on: None,
            from_year: None,
            until_year: None,
            every_years: None,
            provisional: Some(Provisional {
                since: Some(d(2025, 8, 28)),
                citation: "Decreto 614/2025".into(),
                candidates,
            }),
            decided: decided.into_iter().map(|date| Decision { date, citation: "decision".into() }).collect(),
            confirmed_through: None,
        }
    }

    #[test]
    fn an_undecided_weekend_holiday_closes_its_day_and_every_candidate() {
        let calendar = HolidayCalendar::new(vec![sovereignty(Vec::new())]);
        // Saturday 2027-11-20: Friday 19, Saturday 20 and Monday 22, all provisional.
        for day in [19, 20, 22] {
            let found = calendar.on(d(2027, 11, day)).expect("closed");
            assert!(found.provisional, "2027-11-{day} is only a candidate");
        }
        assert!(calendar.on(d(2027, 11, 21)).is_none(), "Sunday 21 is no candidate");
        // Friday 2026-11-20 moves by law to Monday 23: confirmed, nothing pending.
        let moved = calendar.on(d(2026, 11, 23)).expect("moved by law");
        assert!(!moved.provisional);
        assert!(calendar.on(d(2026, 11, 20)).is_none());
        // Before the decree (Sunday 2022-11-20) the day stays where it falls.
        assert!(!calendar.on(d(2022, 11, 20)).expect("stays").provisional);
        assert!(calendar.on(d(2022, 11, 18)).is_none());
        assert!(calendar.on(d(2022, 11, 21)).is_none());
    }

    #[test]
    fn a_decision_closes_only_the_day_it_picks() {
        let rule = sovereignty(vec![d(2027, 11, 22)]);
        assert!(rule.decision_problems().is_empty());
        let calendar = HolidayCalendar::new(vec![rule]);
        assert!(!calendar.on(d(2027, 11, 22)).expect("decided").provisional);
        assert!(calendar.on(d(2027, 11, 19)).is_none());
        assert!(calendar.on(d(2027, 11, 20)).is_none());
        // Outside the precomputed years (Sunday 2101-11-20): computed on demand.
        let far = HolidayCalendar::new(vec![sovereignty(Vec::new())]);
        for day in [18, 20, 21] {
            assert!(far.on(d(2101, 11, day)).is_some_and(|h| h.provisional), "2101-11-{day}");
        }
        assert!(far.on(d(2101, 11, 19)).is_none());
    }

    #[test]
    fn a_decision_on_no_candidate_day_is_stray() {
        // 2026-11-20 is a Friday: the law moves it, nobody decides anything.
        let rule = sovereignty(vec![d(2026, 11, 20), d(2027, 11, 23)]);
        let stray: Vec<_> = rule.decision_problems().into_iter().map(|(date, _)| date).collect();
        assert_eq!(stray, vec![d(2026, 11, 20), d(2027, 11, 23)]);
    }

    #[test]
    fn two_decisions_for_one_occurrence_are_refused() {
        // A decision for Friday 19 and a "rectification" for Monday 22: the first would
        // win and Monday, the real holiday, would stay open.
        let rule = sovereignty(vec![d(2027, 11, 19), d(2027, 11, 22)]);
        let problems = rule.decision_problems();
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert_eq!(problems[0].0, d(2027, 11, 22));
        assert!(problems[0].1.contains("both decide"), "{}", problems[0].1);
    }
}
