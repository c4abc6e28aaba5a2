//! How far a jurisdiction file's holidays are confirmed: its horizon (the
//! earliest `confirmed_through` of the file and of its own lists), the
//! decisions still pending with their candidate days, and the dated lists
//! that end soon. Past its horizon a file keeps working on its rules; the
//! officer is told, by `rules check`, `rules coverage`, the service's log and
//! the `ventana_rules_confirmed_days` gauge.

use std::sync::Arc;

use chrono::{Datelike, Days, NaiveDate};

use super::holidays::HolidayBase;
use super::model::Jurisdiction;

/// Days ahead a horizon must reach before `rules check` stops warning.
pub const DEFAULT_MIN_HORIZON_DAYS: u32 = 120;
/// Days ahead in which pending decisions and ending lists are reported.
pub const DEFAULT_LOOKAHEAD_DAYS: u32 = 365;

/// The earliest confirmed day of a file and what sets it.
#[derive(Clone, Debug, PartialEq)]
pub struct Horizon {
    pub through: NaiveDate,
    /// `"file"`, or the id of the holiday rule whose list ends first.
    pub set_by: Arc<str>,
}

impl Horizon {
    /// Days from `today` to the horizon (negative once it has passed).
    pub fn days_ahead(&self, today: NaiveDate) -> i64 {
        (self.through - today).num_days()
    }

    /// "confirmed through 2026-12-31 (31 days ahead, set by ar-tourist-bridges)",
    /// or "… (passed 699 days ago, …)".
    pub fn describe(&self, today: NaiveDate) -> String {
        let days = self.days_ahead(today);
        let distance = if days >= 0 { format!("{days} days ahead") } else { format!("passed {} days ago", -days) };
        format!("confirmed through {} ({distance}, set by {})", self.through, self.set_by)
    }
}

/// A holiday occurrence whose day an authority has not decided yet.
#[derive(Clone, Debug, PartialEq)]
pub struct PendingDecision {
    pub rule: Arc<str>,
    pub name: Arc<str>,
    /// The day it falls on before any move.
    pub base: NaiveDate,
    /// Every day closed until the decision: the base (or its legal move) and the candidates.
    pub days: Vec<NaiveDate>,
    /// The norm that lets the authority decide.
    pub under: Arc<str>,
}

/// A dated list (`dates = [...]`) whose last day comes soon.
#[derive(Clone, Debug, PartialEq)]
pub struct EndingList {
    pub rule: Arc<str>,
    pub name: Arc<str>,
    pub last: NaiveDate,
}

/// One file's coverage as of `today`.
#[derive(Clone, Debug)]
pub struct Coverage {
    pub code: Arc<str>,
    pub file: Arc<str>,
    /// Whether the file has holidays of its own (something to confirm).
    pub has_holidays: bool,
    /// `None` for a file without holidays, or one that states no `confirmed_through`.
    pub horizon: Option<Horizon>,
    /// Pending decisions with a day in `[today, today + lookahead]`.
    pub pending: Vec<PendingDecision>,
    /// Lists whose last day is in `[today, today + lookahead]`.
    pub ending: Vec<EndingList>,
}

impl Coverage {
    /// Whether the horizon is nearer than `min_days`, has passed, or is not
    /// stated by a file that has holidays (unknown is not confirmed).
    pub fn is_short(&self, today: NaiveDate, min_days: u32) -> bool {
        match &self.horizon {
            Some(h) => h.days_ahead(today) < i64::from(min_days),
            None => self.has_holidays,
        }
    }
}

/// The earliest `confirmed_through` of the file and of its rules.
pub fn horizon(jurisdiction: &Jurisdiction) -> Option<Horizon> {
    let file = jurisdiction.confirmed_through.map(|through| Horizon { through, set_by: "file".into() });
    let lists = jurisdiction
        .holidays
        .rules()
        .iter()
        .filter_map(|rule| rule.confirmed_through.map(|through| Horizon { through, set_by: rule.id.clone() }));
    file.into_iter().chain(lists).min_by_key(|h| h.through)
}

/// The coverage of one file as of `today`, looking `lookahead_days` ahead.
pub fn coverage(jurisdiction: &Jurisdiction, today: NaiveDate, lookahead_days: u32) -> Coverage {
    let end = today.checked_add_days(Days::new(u64::from(lookahead_days))).unwrap_or(NaiveDate::MAX);
    let ahead = |day: &NaiveDate| (today..=end).contains(day);
    let mut pending = Vec::new();
    let mut ending = Vec::new();
    for rule in jurisdiction.holidays.rules() {
        if let Some(provisional) = &rule.provisional {
            // A moved day may fall in the year before its occurrence's (1 January on a Tuesday).
            for year in today.year() - 1..=end.year() + 1 {
                for occurrence in rule.occurrences(year) {
                    if occurrence.pending && occurrence.days.iter().any(ahead) {
                        pending.push(PendingDecision {
                            rule: rule.id.clone(),
                            name: rule.name.clone(),
                            base: occurrence.base,
                            days: occurrence.days,
                            under: provisional.citation.clone(),
                        });
                    }
                }
            }
        }
        if let HolidayBase::Dates(dates) = &rule.base
            && let Some(last) = dates.iter().max().filter(|last| ahead(last))
        {
            ending.push(EndingList { rule: rule.id.clone(), name: rule.name.clone(), last: *last });
        }
    }
    pending.sort_by(|a, b| a.days.first().cmp(&b.days.first()).then_with(|| a.rule.cmp(&b.rule)));
    Coverage {
        code: jurisdiction.code.clone(),
        file: jurisdiction.file.clone(),
        has_holidays: !jurisdiction.holidays.rules().is_empty(),
        horizon: horizon(jurisdiction),
        pending,
        ending,
    }
}

/// A pending decision in one line: "2027-11-20 Día de la Soberanía Nacional
/// [ar-sovereignty]: closed on 2027-11-19 (Fri), 2027-11-20 (Sat), 2027-11-22
/// (Mon) until decided under Decreto 614/2025 art. 1 (…)".
pub fn describe_pending(pending: &PendingDecision) -> String {
    let days: Vec<String> = pending.days.iter().map(|d| format!("{d} ({})", d.format("%a"))).collect();
    format!(
        "{} {} [{}]: closed on {} until decided under {}",
        pending.base,
        pending.name,
        pending.rule,
        days.join(", "),
        pending.under
    )
}
