//! `ventana rules diff OLD NEW`: what a change to the jurisdiction files
//! changes, day by day over a range of dates, per jurisdiction: the hours
//! each channel gains or loses per day type, the holidays added or
//! removed, and the rules (hours, caps, cooldowns, parties, stages) added,
//! removed or changed, each with its rule id and citation. The result is
//! typed; it prints as text, as JSON, or as an HTML page with the week
//! pictures before and after side by side.
//!
//! Hours are compared as the engine applies them: every layer a
//! jurisdiction code resolves to (country, subdivision overlay, tenant
//! policy), intersected, on each date's day type. Holidays and rules are
//! compared per file, since each belongs to one file.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use chrono::{Datelike, Days, NaiveDate};
use serde::Serialize;
use serde_json::{Value, json};

use super::CliError;
use super::picture::{self, Mark, Week, allowed, esc, minutes, versions_on};
use super::summary::{RuleKind, RuleLine, rule_lines};
use crate::domain::Channel;
use crate::engine::windows::day_type;
use crate::rules::file::{Minute, TimeRange};
use crate::rules::holidays::HolidayRule;
use crate::rules::{DAY_NAMES, HOLIDAY, Jurisdiction, Resolved, RuleBook, RuleVersion, WindowRule};

/// The longest range compared, in days (ten years).
pub const MAX_DAYS: i64 = 3660;

/// What the diff's readers are told about decisions already taken.
pub const REPLAY_NOTE: &str = "This diff does not look at decisions already taken: `ventana audit replay --tenant T \
     --from DATE --to DATE --rules DIR` (DIR: the NEW rules as a directory) lists the past decisions they would change.";

/// Everything that differs between two rule books over `from..=to`.
#[derive(Debug, Serialize)]
pub struct RulesDiff {
    pub from: NaiveDate,
    pub to: NaiveDate,
    /// Only the jurisdictions that differ, by tenant (none first) then code.
    pub jurisdictions: Vec<JurisdictionDiff>,
}

impl RulesDiff {
    pub fn differs(&self) -> bool {
        !self.jurisdictions.is_empty()
    }
}

/// Whether a file is on both sides.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Presence {
    Both,
    OnlyOld,
    OnlyNew,
}

/// How one holiday or rule differs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Change {
    Added,
    Removed,
    Changed,
}

impl Change {
    fn as_str(self) -> &'static str {
        match self {
            Change::Added => "added",
            Change::Removed => "removed",
            Change::Changed => "changed",
        }
    }
}

/// One jurisdiction file (a country, a subdivision overlay or a tenant policy) that differs.
#[derive(Debug, Serialize)]
pub struct JurisdictionDiff {
    pub code: String,
    pub tenant: Option<String>,
    pub name: String,
    pub presence: Presence,
    /// The zones the hours are local to (the new side's, else the old's).
    pub zones: Vec<String>,
    /// Whether the code resolves on both sides, so that hours could be compared.
    pub hours_compared: bool,
    pub hours: Vec<HoursChange>,
    pub holidays: Vec<HolidayChange>,
    pub rules: Vec<RuleChange>,
}

/// Time gained or lost by some channels on some dates, and why.
#[derive(Debug, Serialize)]
pub struct HoursChange {
    pub channels: Vec<Channel>,
    /// `Monday`, …, `public holidays`; `Tuesday → public holiday` where a
    /// holiday added or removed changed the day's type.
    pub day_types: Vec<String>,
    pub dates: Vec<NaiveDate>,
    /// Local ranges allowed now and not before, `HH:MM–HH:MM`.
    pub added: Vec<String>,
    /// Local ranges allowed before and not now.
    pub removed: Vec<String>,
    pub minutes_added_per_day: u32,
    pub minutes_removed_per_day: u32,
    /// The hours rules that differ on these days, or the holidays that changed their type.
    pub because: Vec<Cause>,
}

/// A rule responsible for a change of hours.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Cause {
    /// `hours` (a window rule) or `holiday`.
    pub kind: &'static str,
    pub id: String,
    pub citation: Option<String>,
}

/// A holiday one side observes in the range and the other does not.
#[derive(Debug, Serialize)]
pub struct HolidayChange {
    pub change: Change,
    pub date: NaiveDate,
    pub name: String,
    pub rule: String,
    pub citation: Option<String>,
}

/// A rule added, removed or changed, compared by id (unique in a file) in
/// the versions in force during the range.
#[derive(Debug, Serialize)]
pub struct RuleChange {
    pub change: Change,
    pub kind: RuleKind,
    pub id: String,
    pub before: Option<RuleLine>,
    pub after: Option<RuleLine>,
}

impl RuleChange {
    /// The citation as it stands now (or as it stood, for a removed rule).
    pub fn citation(&self) -> &str {
        self.after.as_ref().or(self.before.as_ref()).map_or("", |r| r.citation.as_str())
    }
}

/// Compares `old` and `new` day by day from `from` to `to` (inclusive).
pub fn diff(old: &RuleBook, new: &RuleBook, from: NaiveDate, to: NaiveDate) -> Result<RulesDiff, CliError> {
    if to < from {
        return Err(CliError::Input(format!("--to {to} is before --from {from}")));
    }
    if (to - from).num_days() >= MAX_DAYS {
        return Err(CliError::Input(format!("compare at most {MAX_DAYS} days at a time")));
    }
    let mut files: BTreeMap<(Option<String>, String), [Option<&Jurisdiction>; 2]> = BTreeMap::new();
    for (side, book) in [old, new].into_iter().enumerate() {
        for file in book.jurisdictions() {
            files.entry((file.tenant.clone(), file.code.to_string())).or_default()[side] = Some(file.as_ref());
        }
    }
    let mut jurisdictions = Vec::new();
    for ((tenant, code), [before, after]) in files {
        let presence = match (before, after) {
            (Some(_), Some(_)) => Presence::Both,
            (Some(_), None) => Presence::OnlyOld,
            (None, Some(_)) => Presence::OnlyNew,
            (None, None) => continue,
        };
        let tenant_word = tenant.as_deref().unwrap_or("");
        let (old_rules, new_rules) = (old.resolve(tenant_word, &code).ok(), new.resolve(tenant_word, &code).ok());
        let zones: Vec<String> = new_rules
            .as_ref()
            .or(old_rules.as_ref())
            .map(|r| r.default_zones.iter().map(|z| z.name().to_string()).collect())
            .unwrap_or_default();
        let (hours_compared, hours) = match (&old_rules, &new_rules) {
            (Some(o), Some(n)) => (true, hours(o, n, from, to)),
            _ => (false, Vec::new()),
        };
        let holidays = holidays(before, after, from, to);
        let rules = rules(before, after, from, to);
        if presence == Presence::Both && hours.is_empty() && holidays.is_empty() && rules.is_empty() {
            continue;
        }
        jurisdictions.push(JurisdictionDiff {
            name: after.or(before).map(|f| f.name.clone()).unwrap_or_default(),
            code,
            tenant,
            presence,
            zones,
            hours_compared,
            hours,
            holidays,
            rules,
        });
    }
    Ok(RulesDiff { from, to, jurisdictions })
}

fn dates(from: NaiveDate, to: NaiveDate) -> impl Iterator<Item = NaiveDate> {
    from.iter_days().take_while(move |d| *d <= to)
}

/// The ranges of minutes for which `pick` holds.
fn runs(pick: impl Fn(usize) -> bool) -> Vec<TimeRange> {
    let mut out = Vec::new();
    let mut minute = 0;
    while minute < 1440 {
        if !pick(minute) {
            minute += 1;
            continue;
        }
        let start = minute;
        while minute < 1440 && pick(minute) {
            minute += 1;
        }
        out.push(TimeRange { start: start as Minute, end: minute as Minute });
    }
    out
}

fn length(ranges: &[TimeRange]) -> u32 {
    ranges.iter().map(|r| u32::from(r.end - r.start)).sum()
}

/// What one channel gains and loses on one date, and why.
type DayChange = (Channel, Vec<TimeRange>, Vec<TimeRange>, Vec<Cause>);
/// The (old, new) day types and the dates a [`DayChange`] happens on.
type Seen = (BTreeSet<(usize, usize)>, BTreeSet<NaiveDate>);

fn hours(old: &Resolved, new: &Resolved, from: NaiveDate, to: NaiveDate) -> Vec<HoursChange> {
    let (old_calendars, new_calendars) = (old.calendars(), new.calendars());
    let mut per_channel: BTreeMap<DayChange, Seen> = BTreeMap::new();
    for date in dates(from, to) {
        let (old_day, old_holiday) = day_type(&old_calendars, date);
        let (new_day, new_holiday) = day_type(&new_calendars, date);
        let (old_versions, new_versions) = (versions_on(old, date), versions_on(new, date));
        for &channel in Channel::ALL {
            let before = allowed(old_versions.as_deref(), channel, old_day);
            let after = allowed(new_versions.as_deref(), channel, new_day);
            if before == after {
                continue;
            }
            let (was, now) = (minutes(&before), minutes(&after));
            let added = runs(|m| now[m] && !was[m]);
            let removed = runs(|m| was[m] && !now[m]);
            let because = if old_day == new_day {
                window_causes(old_versions.as_deref(), new_versions.as_deref(), channel, new_day)
            } else {
                [old_holiday, new_holiday].into_iter().flatten().map(|h| holiday_cause(h.rule)).collect()
            };
            let entry = per_channel.entry((channel, added, removed, because)).or_default();
            entry.0.insert((old_day, new_day));
            entry.1.insert(date);
        }
    }
    // Channels that change alike on the same dates are one change.
    type Key = (Vec<TimeRange>, Vec<TimeRange>, Vec<Cause>, BTreeSet<(usize, usize)>, BTreeSet<NaiveDate>);
    let mut merged: BTreeMap<Key, Vec<Channel>> = BTreeMap::new();
    for ((channel, added, removed, because), (day_types, dates)) in per_channel {
        merged.entry((added, removed, because, day_types, dates)).or_default().push(channel);
    }
    let mut changes: Vec<HoursChange> = merged
        .into_iter()
        .map(|((added, removed, because, day_types, dates), channels)| HoursChange {
            channels,
            day_types: day_types.into_iter().map(|(o, n)| day_type_label(o, n)).collect(),
            dates: dates.into_iter().collect(),
            minutes_added_per_day: length(&added),
            minutes_removed_per_day: length(&removed),
            added: added.iter().map(ToString::to_string).collect(),
            removed: removed.iter().map(ToString::to_string).collect(),
            because,
        })
        .collect();
    changes.sort_by(|a, b| (a.dates.first(), &a.channels).cmp(&(b.dates.first(), &b.channels)));
    changes
}

fn day_type_label(old: usize, new: usize) -> String {
    let single = |day: usize| if day == HOLIDAY { "public holiday" } else { DAY_NAMES[day] };
    if old == new { DAY_NAMES[old].to_string() } else { format!("{} → {}", single(old), single(new)) }
}

fn holiday_cause(rule: &HolidayRule) -> Cause {
    Cause { kind: "holiday", id: rule.id.to_string(), citation: rule.citation.as_deref().map(str::to_string) }
}

/// The window rules for `channel` that differ on day type `day` between
/// the two sides (or exist on one only); if none does (the change came
/// with a version's date), every window rule for the channel now.
fn window_causes(
    old: Option<&[(&Jurisdiction, &RuleVersion)]>,
    new: Option<&[(&Jurisdiction, &RuleVersion)]>,
    channel: Channel,
    day: usize,
) -> Vec<Cause> {
    fn touching<'a>(
        versions: Option<&[(&'a Jurisdiction, &'a RuleVersion)]>,
        channel: Channel,
    ) -> BTreeMap<String, &'a WindowRule> {
        let mut rules = BTreeMap::new();
        for (_, version) in versions.unwrap_or_default() {
            for rule in version.windows.iter().filter(|w| w.channels.contains(channel)) {
                rules.insert(rule.meta.id.to_string(), rule);
            }
        }
        rules
    }
    let (before, after) = (touching(old, channel), touching(new, channel));
    let cause = |rule: &WindowRule| Cause {
        kind: "hours",
        id: rule.meta.id.to_string(),
        citation: Some(rule.meta.citation.to_string()),
    };
    let ids: BTreeSet<&String> = before.keys().chain(after.keys()).collect();
    let differing: Vec<Cause> = ids
        .into_iter()
        .filter_map(|id| match (before.get(id), after.get(id)) {
            (Some(b), Some(a)) => (b.days[day] != a.days[day]).then(|| cause(a)),
            (None, Some(rule)) | (Some(rule), None) => Some(cause(rule)),
            (None, None) => None,
        })
        .collect();
    if !differing.is_empty() {
        return differing;
    }
    let now = if after.is_empty() { &before } else { &after };
    now.values().map(|rule| cause(rule)).collect()
}

type Holidays = BTreeMap<(NaiveDate, String, String), Option<String>>;

/// A file's own holidays in the range: (date, rule id, name) → citation.
fn holiday_set(file: Option<&Jurisdiction>, from: NaiveDate, to: NaiveDate) -> Holidays {
    let mut set = BTreeMap::new();
    let Some(file) = file else { return set };
    for year in from.year()..=to.year() {
        for (date, holiday) in file.holidays.year(year) {
            if (from..=to).contains(&date) {
                // A day that stops (or starts) being only a candidate is a change too.
                let name = match holiday.provisional {
                    true => format!("{} (provisional)", holiday.rule.name),
                    false => holiday.rule.name.to_string(),
                };
                set.insert(
                    (date, holiday.rule.id.to_string(), name),
                    holiday.rule.citation.as_deref().map(str::to_string),
                );
            }
        }
    }
    set
}

fn holidays(
    before: Option<&Jurisdiction>,
    after: Option<&Jurisdiction>,
    from: NaiveDate,
    to: NaiveDate,
) -> Vec<HolidayChange> {
    let (old, new) = (holiday_set(before, from, to), holiday_set(after, from, to));
    let change = |change: Change, ((date, rule, name), citation): (&(NaiveDate, String, String), &Option<String>)| {
        HolidayChange { change, date: *date, name: name.clone(), rule: rule.clone(), citation: citation.clone() }
    };
    let removed = old.iter().filter(|(k, _)| !new.contains_key(*k)).map(|h| change(Change::Removed, h));
    let added = new.iter().filter(|(k, _)| !old.contains_key(*k)).map(|h| change(Change::Added, h));
    let mut changes: Vec<HolidayChange> = removed.chain(added).collect();
    changes.sort_by(|a, b| (a.date, &a.rule, a.change).cmp(&(b.date, &b.rule, b.change)));
    changes
}

/// A file's rules in the versions in force during the range, by kind and id.
fn rule_set(file: Option<&Jurisdiction>, from: NaiveDate, to: NaiveDate) -> BTreeMap<(RuleKind, String), RuleLine> {
    let mut set = BTreeMap::new();
    let Some(file) = file else { return set };
    for (index, version) in file.versions.iter().enumerate() {
        let until = file.versions.get(index + 1).map(|next| next.effective_from);
        if version.effective_from > to || until.is_some_and(|until| until <= from) {
            continue;
        }
        set.extend(rule_lines(file, version).into_iter().map(|line| ((line.kind, line.id.clone()), line)));
    }
    set
}

fn rules(
    before: Option<&Jurisdiction>,
    after: Option<&Jurisdiction>,
    from: NaiveDate,
    to: NaiveDate,
) -> Vec<RuleChange> {
    let (mut old, mut new) = (rule_set(before, from, to), rule_set(after, from, to));
    let keys: BTreeSet<(RuleKind, String)> = old.keys().chain(new.keys()).cloned().collect();
    keys.into_iter()
        .filter_map(|(kind, id)| {
            let key = (kind, id.clone());
            let (before, after) = (old.remove(&key), new.remove(&key));
            let change = match (&before, &after) {
                (None, Some(_)) => Change::Added,
                (Some(_), None) => Change::Removed,
                (Some(b), Some(a)) if b != a => Change::Changed,
                _ => return None,
            };
            Some(RuleChange { change, kind, id, before, after })
        })
        .collect()
}

// ------------------------------------------------------------------ text

/// `1 h`, `30 min`, `1 h 30 min`.
fn duration_text(minutes: u32) -> String {
    match (minutes / 60, minutes % 60) {
        (0, m) => format!("{m} min"),
        (h, 0) => format!("{h} h"),
        (h, m) => format!("{h} h {m} min"),
    }
}

/// `Monday to Friday`, `Saturday, public holidays`, `Tuesday → public holiday`.
fn day_types_text(day_types: &[String]) -> String {
    let index = |label: &str| DAY_NAMES.iter().position(|d| *d == label);
    let mut parts: Vec<String> = Vec::new();
    let mut run: Vec<usize> = Vec::new();
    let flush = |run: &mut Vec<usize>, parts: &mut Vec<String>| {
        match run.as_slice() {
            [] => {}
            [first, .., last] if run.len() >= 3 => parts.push(format!("{} to {}", DAY_NAMES[*first], DAY_NAMES[*last])),
            days => parts.extend(days.iter().map(|d| DAY_NAMES[*d].to_string())),
        }
        run.clear();
    };
    for label in day_types {
        match index(label) {
            Some(day) if run.last().is_none_or(|last| *last + 1 == day) => run.push(day),
            Some(day) => {
                flush(&mut run, &mut parts);
                run.push(day);
            }
            None => {
                flush(&mut run, &mut parts);
                parts.push(label.clone());
            }
        }
    }
    flush(&mut run, &mut parts);
    parts.join(", ")
}

fn dates_text(dates: &[NaiveDate]) -> String {
    match dates {
        [] => String::new(),
        [one] => format!("1 day, {one}"),
        [first, .., last] if dates.len() > 3 => format!("{} days, {first} … {last}", dates.len()),
        some => {
            format!("{} days, {}", some.len(), some.iter().map(ToString::to_string).collect::<Vec<_>>().join(", "))
        }
    }
}

fn cause_text(cause: &Cause) -> String {
    match &cause.citation {
        Some(citation) => format!("{} rule {} — {citation}", cause.kind, cause.id),
        None => format!("{} rule {}", cause.kind, cause.id),
    }
}

/// A change of hours: a heading line, then its details.
fn hours_item(change: &HoursChange) -> Vec<String> {
    let channels: Vec<&str> = change.channels.iter().map(|c| c.as_str()).collect();
    let days = change.dates.len() as u32;
    let mut lines = vec![format!(
        "{} · {} · {}",
        channels.join(", "),
        day_types_text(&change.day_types),
        dates_text(&change.dates)
    )];
    if !change.added.is_empty() {
        let per_day = change.minutes_added_per_day;
        lines.push(format!(
            "now allowed {} (+{} a day, {} in all)",
            change.added.join(", "),
            duration_text(per_day),
            duration_text(per_day * days)
        ));
    }
    if !change.removed.is_empty() {
        let per_day = change.minutes_removed_per_day;
        lines.push(format!(
            "no longer allowed {} (−{} a day, {} in all)",
            change.removed.join(", "),
            duration_text(per_day),
            duration_text(per_day * days)
        ));
    }
    lines.extend(change.because.iter().map(|c| format!("because of {}", cause_text(c))));
    lines
}

fn holiday_item(change: &HolidayChange) -> String {
    let citation = change.citation.as_deref().map(|c| format!(" — {c}")).unwrap_or_default();
    format!(
        "{:<8} {} {}  {}  [{}]{citation}",
        change.change.as_str(),
        change.date.format("%a"),
        change.date,
        change.name,
        change.rule
    )
}

fn rule_item(change: &RuleChange) -> Vec<String> {
    let mut lines =
        vec![format!("{:<8} {} {} — {}", change.change.as_str(), change.kind.as_str(), change.id, change.citation())];
    let form = |label: &str, form: Option<&RuleLine>, other: Option<&RuleLine>| -> Vec<String> {
        let Some(form) = form else { return Vec::new() };
        let mut lines = vec![format!("{label}: {}", form.says)];
        // Say what else changed, even when the wording of the rule stayed.
        if let Some(other) = other {
            if other.citation != form.citation {
                lines.push(format!("{label} cited: {}", form.citation));
            }
            if other.description != form.description {
                lines.push(format!("{label} described: {}", form.description));
            }
            if other.basis != form.basis {
                lines.push(format!("{label} basis: {}", form.basis));
            }
        }
        lines
    };
    lines.extend(form("was", change.before.as_ref(), change.after.as_ref()));
    lines.extend(form("now", change.after.as_ref(), change.before.as_ref()));
    lines
}

fn heading(j: &JurisdictionDiff) -> String {
    let who = who(j);
    let zones = if j.zones.is_empty() { String::new() } else { format!(" ({})", j.zones.join(", ")) };
    let presence = match j.presence {
        Presence::Both => "",
        Presence::OnlyOld => ": only in OLD (removed)",
        Presence::OnlyNew => ": only in NEW (added)",
    };
    format!("{who} — {}{zones}{presence}", j.name)
}

/// The diff as text for a compliance officer; `old` and `new` name the sides.
pub fn text(diff: &RulesDiff, old: &str, new: &str) -> String {
    let mut out = format!("Rules diff, {} to {}\n  OLD: {old}\n  NEW: {new}\n", diff.from, diff.to);
    if !diff.differs() {
        let _ = writeln!(out, "\nNo differences: the same hours, holidays and rules on every day of the range.");
        return out;
    }
    for j in &diff.jurisdictions {
        let _ = writeln!(out, "\n{}", heading(j));
        if !j.hours_compared {
            let _ = writeln!(out, "  hours not compared: {} does not resolve on both sides", j.code);
        }
        if !j.hours.is_empty() {
            let _ = writeln!(out, "  Hours (local time):");
            for change in &j.hours {
                for (index, line) in hours_item(change).iter().enumerate() {
                    let _ = writeln!(out, "{}{line}", if index == 0 { "    " } else { "      " });
                }
            }
        }
        if !j.holidays.is_empty() {
            let _ = writeln!(out, "  Holidays:");
            for change in &j.holidays {
                let _ = writeln!(out, "    {}", holiday_item(change));
            }
        }
        if !j.rules.is_empty() {
            let _ = writeln!(out, "  Rules:");
            for change in &j.rules {
                for (index, line) in rule_item(change).iter().enumerate() {
                    let _ = writeln!(out, "{}{line}", if index == 0 { "    " } else { "             " });
                }
            }
        }
    }
    let names: Vec<String> = diff.jurisdictions.iter().map(who).collect();
    let _ = writeln!(out, "\n{} jurisdiction file(s) differ: {}.", names.len(), names.join(", "));
    let _ = writeln!(out, "{REPLAY_NOTE}");
    out
}

fn who(j: &JurisdictionDiff) -> String {
    match &j.tenant {
        Some(tenant) => format!("{} (tenant {tenant})", j.code),
        None => j.code.clone(),
    }
}

/// The diff as JSON, with the sides' names and the replay note.
pub fn json(diff: &RulesDiff, old: &str, new: &str) -> Value {
    json!({
        "old": old,
        "new": new,
        "from": diff.from.to_string(),
        "to": diff.to.to_string(),
        "differs": diff.differs(),
        "jurisdictions": diff.jurisdictions,
        "replay": REPLAY_NOTE,
    })
}

// ------------------------------------------------------------------ HTML

/// The first date something differs (the week the page draws holds it).
fn first_difference(j: &JurisdictionDiff, from: NaiveDate) -> NaiveDate {
    let hours = j.hours.iter().filter_map(|h| h.dates.first().copied());
    let holidays = j.holidays.iter().map(|h| h.date);
    hours.chain(holidays).min().unwrap_or(from)
}

/// The diff as one HTML page: the changes, then per jurisdiction the week
/// of its first difference before and after, side by side, the time added
/// and removed marked in the "after" grids.
pub fn html(diff: &RulesDiff, old_book: &RuleBook, new_book: &RuleBook, old: &str, new: &str) -> String {
    let mut body = String::new();
    let _ = writeln!(body, "<h1>Rules diff</h1>");
    let _ = writeln!(body, "<p class=\"meta\">OLD: <code>{}</code> · NEW: <code>{}</code></p>", esc(old), esc(new));
    let _ = writeln!(body, "<p class=\"meta\">Compared day by day from {} to {}.</p>", diff.from, diff.to);
    if !diff.differs() {
        body.push_str("<p>No differences: the same hours, holidays and rules on every day of the range.</p>\n");
    }
    for j in &diff.jurisdictions {
        let _ = writeln!(body, "<h2>{}</h2>", esc(&heading(j)));
        body.push_str(&changes_list(j));
        body.push_str(&side_by_side(j, diff.from, old_book, new_book, old, new));
    }
    if diff.differs() {
        let _ = writeln!(body, "<p class=\"note\">{}</p>", esc(REPLAY_NOTE));
    }
    picture::document(&format!("Rules diff {} to {}", diff.from, diff.to), &body)
}

fn changes_list(j: &JurisdictionDiff) -> String {
    let mut out = String::new();
    let item = |lines: &[String]| {
        let escaped: Vec<String> = lines.iter().map(|l| esc(l)).collect();
        format!("<li>{}</li>\n", escaped.join("<br>"))
    };
    let sections: [(&str, Vec<Vec<String>>); 3] = [
        ("Hours (local time)", j.hours.iter().map(hours_item).collect()),
        ("Holidays", j.holidays.iter().map(|h| vec![holiday_item(h)]).collect()),
        ("Rules", j.rules.iter().map(rule_item).collect()),
    ];
    for (title, items) in sections {
        if items.is_empty() {
            continue;
        }
        let _ = writeln!(out, "<h3>{title}</h3>\n<ul class=\"changes\">");
        for lines in items {
            out.push_str(&item(&lines));
        }
        out.push_str("</ul>\n");
    }
    out
}

fn side_by_side(
    j: &JurisdictionDiff,
    from: NaiveDate,
    old_book: &RuleBook,
    new_book: &RuleBook,
    old: &str,
    new: &str,
) -> String {
    let first = first_difference(j, from);
    // From the Monday of that week, or from the range's first day if later.
    let monday =
        first.checked_sub_days(Days::new(u64::from(first.weekday().num_days_from_monday()))).unwrap_or(first).max(from);
    let tenant = j.tenant.as_deref().unwrap_or("");
    let week = |book: &RuleBook| Week::build(book, tenant, &j.code, monday, 7, None).ok();
    let (before, after) = (week(old_book), week(new_book));
    let mut out = format!("<h3>Seven days from {}, before and after</h3>\n", esc(&picture::long_date(monday)));
    out.push_str(&picture::legend(true));
    let column = |label: &str, side: &str, week: Option<&Week>| match week {
        Some(week) => {
            format!("<div><p class=\"side\">{label}: <code>{}</code></p>{}</div>", esc(side), picture::intro(week))
        }
        None => format!(
            "<div><p class=\"side\">{label}: <code>{}</code></p><p>{} is not there.</p></div>",
            esc(side),
            esc(&j.code)
        ),
    };
    let _ = writeln!(
        out,
        "<div class=\"pair\">{}{}</div>",
        column("Before", old, before.as_ref()),
        column("After", new, after.as_ref())
    );
    let empty: Vec<Vec<TimeRange>> = Vec::new();
    let ranges = |week: Option<&Week>, channel: Channel| -> Option<Vec<Vec<TimeRange>>> {
        week.and_then(|w| w.channels.iter().find(|c| c.channel == channel)).map(|c| c.ranges.clone())
    };
    let differing = Channel::ALL
        .iter()
        .map(|&channel| (channel, (ranges(before.as_ref(), channel), ranges(after.as_ref(), channel))))
        .filter(|(_, (was, now))| before.is_none() || after.is_none() || was != now);
    let groups = picture::alike(differing);
    for (channels, (was, now)) in &groups {
        let caption = picture::channels_caption(channels);
        let left = match (&before, was) {
            (Some(week), Some(was)) => picture::grid_figure(&format!("{caption} — before"), &week.days, was, None),
            _ => String::new(),
        };
        let right = match (&after, now) {
            (Some(week), Some(now)) => picture::grid_figure(
                &format!("{caption} — after"),
                &week.days,
                now,
                was.as_deref().or(Some(empty.as_slice())),
            ),
            _ => String::new(),
        };
        let _ = writeln!(out, "<div class=\"pair\"><div>{left}</div><div>{right}</div></div>");
    }
    if groups.is_empty() {
        out.push_str("<p>No channel's hours differ in this week.</p>\n");
    }
    let months = |week: Option<&Week>| week.map(picture::months_section).unwrap_or_default();
    let _ = writeln!(
        out,
        "<div class=\"pair\"><div>{}</div><div>{}</div></div>",
        months(before.as_ref()),
        months(after.as_ref())
    );
    let marks: BTreeMap<String, Mark> = j
        .rules
        .iter()
        .map(|r| {
            let mark = match r.change {
                Change::Added => Mark::Added,
                Change::Removed => Mark::Removed,
                Change::Changed => Mark::Changed,
            };
            (r.id.clone(), mark)
        })
        .collect();
    let rules = |week: Option<&Week>| week.map(|w| picture::rules_section(&w.rules, &marks)).unwrap_or_default();
    let _ = writeln!(
        out,
        "<div class=\"pair\"><div>{}</div><div>{}</div></div>",
        rules(before.as_ref()),
        rules(after.as_ref())
    );
    out
}
