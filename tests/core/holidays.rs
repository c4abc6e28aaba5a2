//! Ventana's public holidays against an independent reference: the
//! python-holidays 0.109 national calendars in
//! `tests/fixtures/holidays/<CC>.json`, years 2024–2035, made by
//! `scripts/holiday_reference.py` (Python is needed only to regenerate them).
//!
//! Every fixture whose country has a jurisdiction file is compared date by
//! date, year by year. Deliberate differences are listed, each with its reason,
//! in `tests/fixtures/holidays/differences.toml`:
//!
//! ```toml
//! [[difference]]
//! country = "PE"
//! name_contains = "Domingo de Resurrección"   # or: date = "2026-04-05"
//! kind = "missing"                            # missing from Ventana, or "extra" in Ventana
//! why = "Easter Sunday is a Sunday: no contact on Sundays anyway"
//! ```
//!
//! An entry that matches nothing fails the test too, so stale entries go.
//! A fixture whose country has no jurisdiction file yet is reported, not failed.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use chrono::{Datelike, NaiveDate};
use serde::Deserialize;
use ventana::rules::RuleBook;

const FIRST_YEAR: i32 = 2024;
const LAST_YEAR: i32 = 2035;
const ALLOW_LIST: &str = "tests/fixtures/holidays/differences.toml";

fn crate_path(relative: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(relative)
}

// ---------------------------------------------------------------- fixtures

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFixture {
    source: String,
    country: String,
    years: [i32; 2],
    holidays: BTreeMap<String, String>,
}

/// One country's reference calendar: date → python-holidays name.
struct Fixture {
    country: String,
    source: String,
    holidays: BTreeMap<NaiveDate, String>,
}

fn load_fixture(path: &Path) -> Result<Fixture, String> {
    let shown = path.display();
    let text = std::fs::read_to_string(path).map_err(|e| format!("{shown}: {e}"))?;
    let raw: RawFixture = serde_json::from_str(&text).map_err(|e| format!("{shown}: {e}"))?;
    let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or("");
    if raw.country != stem {
        return Err(format!("{shown}: country {:?} does not match the file name", raw.country));
    }
    if raw.years != [FIRST_YEAR, LAST_YEAR] {
        return Err(format!(
            "{shown}: years {:?}, expected [{FIRST_YEAR}, {LAST_YEAR}] (regenerate with scripts/holiday_reference.py)",
            raw.years
        ));
    }
    let mut holidays = BTreeMap::new();
    for (day, name) in raw.holidays {
        let date =
            NaiveDate::parse_from_str(&day, "%Y-%m-%d").map_err(|e| format!("{shown}: {day:?} is not a date: {e}"))?;
        if !(FIRST_YEAR..=LAST_YEAR).contains(&date.year()) {
            return Err(format!("{shown}: {day} is outside {FIRST_YEAR}–{LAST_YEAR}"));
        }
        holidays.insert(date, name);
    }
    Ok(Fixture { country: raw.country, source: raw.source, holidays })
}

/// Every `*.json` fixture, sorted by file name.
fn fixture_paths() -> Vec<PathBuf> {
    let dir = crate_path("tests/fixtures/holidays");
    let entries = std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()));
    let mut paths: Vec<PathBuf> = entries
        .map(|entry| entry.expect("directory entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    paths.sort();
    paths
}

// ---------------------------------------------------------------- allow-list

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAllowList {
    #[serde(default)]
    difference: Vec<RawDifference>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDifference {
    country: String,
    /// `"2026-04-05"` or a bare TOML date `2026-04-05`.
    #[serde(default)]
    date: Option<toml::Value>,
    #[serde(default)]
    name_contains: Option<String>,
    kind: String,
    #[serde(default)]
    why: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    /// In the reference, not in Ventana.
    Missing,
    /// In Ventana, not in the reference.
    Extra,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Missing => "missing",
            Kind::Extra => "extra",
        }
    }
}

#[derive(Debug)]
enum Matcher {
    Date(NaiveDate),
    /// Compared case-insensitively.
    NameContains(String),
}

/// A known, justified difference.
#[derive(Debug)]
struct Difference {
    country: String,
    matcher: Matcher,
    kind: Kind,
}

impl Difference {
    fn matches(&self, country: &str, delta: &Delta) -> bool {
        self.country == country
            && self.kind == delta.kind
            && match &self.matcher {
                Matcher::Date(date) => *date == delta.date,
                Matcher::NameContains(part) => delta.name.to_lowercase().contains(&part.to_lowercase()),
            }
    }

    fn describe(&self, index: usize) -> String {
        let what = match &self.matcher {
            Matcher::Date(date) => format!("date = {date}"),
            Matcher::NameContains(part) => format!("name_contains = {part:?}"),
        };
        format!("entry #{} ({}, {what}, kind = {})", index + 1, self.country, self.kind.as_str())
    }
}

fn parse_allow_list(text: &str) -> Result<Vec<Difference>, Vec<String>> {
    let raw: RawAllowList = toml::from_str(text).map_err(|e| vec![e.to_string()])?;
    let mut problems = Vec::new();
    let mut differences = Vec::new();
    for (index, entry) in raw.difference.into_iter().enumerate() {
        let at = format!("[[difference]] #{} ({})", index + 1, entry.country);
        if entry.country.trim().is_empty() {
            problems.push(format!("{at}: `country` is empty"));
        }
        if entry.why.as_deref().is_none_or(|why| why.trim().is_empty()) {
            problems.push(format!("{at}: `why` is missing or empty: say why the difference is deliberate"));
        }
        let kind = match entry.kind.as_str() {
            "missing" => Some(Kind::Missing),
            "extra" => Some(Kind::Extra),
            other => {
                problems.push(format!("{at}: kind {other:?} must be \"missing\" or \"extra\""));
                None
            }
        };
        let matcher = match (entry.date, entry.name_contains) {
            (Some(value), None) => {
                let text = match &value {
                    toml::Value::String(s) => s.clone(),
                    toml::Value::Datetime(d) => d.to_string(),
                    other => other.to_string(),
                };
                match NaiveDate::parse_from_str(&text, "%Y-%m-%d") {
                    Ok(date) => Some(Matcher::Date(date)),
                    Err(_) => {
                        problems.push(format!("{at}: date {text:?} is not YYYY-MM-DD"));
                        None
                    }
                }
            }
            (None, Some(part)) if !part.trim().is_empty() => Some(Matcher::NameContains(part)),
            (None, Some(_)) => {
                problems.push(format!("{at}: `name_contains` is empty"));
                None
            }
            _ => {
                problems.push(format!("{at}: give exactly one of `date` and `name_contains`"));
                None
            }
        };
        if let (Some(kind), Some(matcher)) = (kind, matcher) {
            differences.push(Difference { country: entry.country, matcher, kind });
        }
    }
    if problems.is_empty() { Ok(differences) } else { Err(problems) }
}

fn load_allow_list() -> Vec<Difference> {
    let path = crate_path(ALLOW_LIST);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    parse_allow_list(&text).unwrap_or_else(|problems| panic!("{ALLOW_LIST} is not valid:\n  {}", problems.join("\n  ")))
}

// ---------------------------------------------------------------- comparison

/// One date on which Ventana and the reference disagree.
#[derive(Debug)]
struct Delta {
    date: NaiveDate,
    kind: Kind,
    /// The reference's name (missing) or Ventana's names and ids (extra).
    name: String,
    /// Ventana's rule ids, for extras.
    ids: String,
}

/// Dates of `year` present on one side only, sorted.
fn year_deltas(
    reference: &BTreeMap<NaiveDate, String>,
    ventana: &BTreeMap<NaiveDate, Vec<(String, String)>>,
    year: i32,
) -> Vec<Delta> {
    let in_year = |d: &&NaiveDate| d.year() == year;
    let ours: BTreeSet<&NaiveDate> = ventana.keys().filter(in_year).collect();
    let theirs: BTreeSet<&NaiveDate> = reference.keys().filter(in_year).collect();
    let mut deltas: Vec<Delta> = theirs
        .difference(&ours)
        .map(|d| Delta { date: **d, kind: Kind::Missing, name: reference[*d].clone(), ids: String::new() })
        .chain(ours.difference(&theirs).map(|d| {
            let rules = &ventana[*d];
            Delta {
                date: **d,
                kind: Kind::Extra,
                name: rules.iter().map(|(_, name)| name.as_str()).collect::<Vec<_>>().join("; "),
                ids: rules.iter().map(|(id, _)| id.as_str()).collect::<Vec<_>>().join(", "),
            }
        }))
        .collect();
    deltas.sort_by_key(|d| (d.date, d.kind.as_str()));
    deltas
}

/// Compares one country for every year. Returns the report of unexplained
/// differences (empty when none) and counts, per allow-list entry, what it
/// explained in `used`.
fn compare_country(
    country: &str,
    reference: &BTreeMap<NaiveDate, String>,
    ventana: &BTreeMap<NaiveDate, Vec<(String, String)>>,
    allowed: &[Difference],
    used: &mut [usize],
) -> String {
    let mut report = String::new();
    for year in FIRST_YEAR..=LAST_YEAR {
        let mut missing = Vec::new();
        let mut extra = Vec::new();
        for delta in year_deltas(reference, ventana, year) {
            let mut explained = false;
            for (index, difference) in allowed.iter().enumerate() {
                if difference.matches(country, &delta) {
                    used[index] += 1;
                    explained = true;
                }
            }
            if explained {
                continue;
            }
            let weekday = delta.date.format("%a");
            match delta.kind {
                Kind::Missing => missing.push(format!("{} {weekday}  {}", delta.date, delta.name)),
                Kind::Extra => extra.push(format!("{} {weekday}  {} [{}]", delta.date, delta.name, delta.ids)),
            }
        }
        if missing.is_empty() && extra.is_empty() {
            continue;
        }
        let _ = writeln!(report, "{country} {year}:");
        for line in &missing {
            let _ = writeln!(report, "  missing from Ventana: {line}");
        }
        for line in &extra {
            let _ = writeln!(report, "  extra in Ventana:     {line}");
        }
    }
    report
}

// ---------------------------------------------------------------- tests

#[test]
fn holidays_match_the_python_holidays_reference() {
    let dir = crate_path("jurisdictions");
    let book = RuleBook::load_dir(&dir).unwrap_or_else(|problems| {
        panic!(
            "jurisdictions/ does not load:\n{}",
            problems.iter().map(|p| p.to_string()).collect::<Vec<_>>().join("\n")
        )
    });
    let allowed = load_allow_list();
    let mut used = vec![0usize; allowed.len()];

    let mut compared = BTreeSet::new();
    let mut pending = BTreeSet::new();
    let mut failures = String::new();
    for path in fixture_paths() {
        let fixture = load_fixture(&path).unwrap_or_else(|e| panic!("{e}"));
        let Some(jurisdiction) = book.get(&fixture.country) else {
            eprintln!(
                "holidays: {} has a reference fixture but no jurisdiction file yet: not compared",
                fixture.country
            );
            pending.insert(fixture.country);
            continue;
        };
        let mut ventana: BTreeMap<NaiveDate, Vec<(String, String)>> = BTreeMap::new();
        for year in FIRST_YEAR..=LAST_YEAR {
            for (date, holiday) in jurisdiction.holidays.year(year) {
                // A provisional day is one candidate of an undecided move: named so, so
                // that the allow-list can account for candidates the reference lacks.
                let name = match holiday.provisional {
                    true => format!("{} (provisional)", holiday.rule.name),
                    false => holiday.rule.name.to_string(),
                };
                ventana.entry(date).or_default().push((holiday.rule.id.to_string(), name));
            }
        }
        let before: usize = used.iter().sum();
        let report = compare_country(&fixture.country, &fixture.holidays, &ventana, &allowed, &mut used);
        eprintln!(
            "holidays: {} compared with {} for {FIRST_YEAR}–{LAST_YEAR}: {} reference dates, {} Ventana dates, {} allowed differences{}",
            fixture.country,
            fixture.source,
            fixture.holidays.len(),
            ventana.len(),
            used.iter().sum::<usize>() - before,
            if report.is_empty() { "" } else { ", UNEXPLAINED DIFFERENCES" },
        );
        failures.push_str(&report);
        compared.insert(fixture.country);
    }
    assert!(
        !compared.is_empty(),
        "no reference fixture was compared: expected tests/fixtures/holidays/<CC>.json for at least one jurisdiction file"
    );

    let mut stale = Vec::new();
    for (index, difference) in allowed.iter().enumerate() {
        if compared.contains(&difference.country) {
            if used[index] == 0 {
                stale.push(format!("{} matches nothing: remove it", difference.describe(index)));
            }
        } else if pending.contains(&difference.country) {
            eprintln!(
                "holidays: {} not checked: {} has no jurisdiction file yet",
                difference.describe(index),
                difference.country
            );
        } else {
            stale.push(format!("{} names a country without a reference fixture", difference.describe(index)));
        }
    }

    let mut message = String::new();
    if !failures.is_empty() {
        let _ = write!(
            message,
            "Ventana's holidays differ from the reference (tests/fixtures/holidays/<CC>.json):\n{failures}\n\
             Fix the jurisdiction file, or, if the difference is deliberate, add it to {ALLOW_LIST} \
             with `country`, `date` or `name_contains`, `kind` and a `why`.\n"
        );
    }
    if !stale.is_empty() {
        let _ = write!(message, "Stale entries in {ALLOW_LIST}:\n  {}\n", stale.join("\n  "));
    }
    assert!(message.is_empty(), "\n{message}");
}

#[test]
fn allow_list_entries_are_well_formed() {
    let path = crate_path(ALLOW_LIST);
    let text = std::fs::read_to_string(&path).expect("the allow-list exists");
    if let Err(problems) = parse_allow_list(&text) {
        panic!("{ALLOW_LIST}:\n  {}", problems.join("\n  "));
    }
    // And bad entries are refused.
    let bad = r#"
        [[difference]]
        country = "PE"
        date = "2026-04-05"
        kind = "missing"
        why = "  "

        [[difference]]
        country = "PE"
        date = 2026-04-05
        name_contains = "Pascua"
        kind = "gone"
        why = "x"
    "#;
    let problems = parse_allow_list(bad).expect_err("bad entries are refused");
    let all = problems.join("\n");
    assert!(all.contains("#1 (PE): `why`"), "{all}");
    assert!(all.contains("kind \"gone\""), "{all}");
    assert!(all.contains("exactly one of"), "{all}");
}

#[test]
fn comparison_reports_missing_and_extra_and_counts_allowed_entries() {
    let d = |y, m, day| NaiveDate::from_ymd_opt(y, m, day).expect("date");
    let reference = BTreeMap::from([
        (d(2026, 1, 1), "Año Nuevo".to_string()),
        (d(2026, 4, 5), "Domingo de Resurrección".to_string()),
        (d(2026, 7, 28), "Día de la Independencia".to_string()),
    ]);
    let ventana = BTreeMap::from([
        (d(2026, 1, 1), vec![("x-new-year".to_string(), "Año Nuevo".to_string())]),
        (d(2026, 12, 7), vec![("x-bridge".to_string(), "Día no laborable".to_string())]),
    ]);
    let allowed = parse_allow_list(
        r#"
        [[difference]]
        country = "XX"
        name_contains = "domingo de resurrección"
        kind = "missing"
        why = "a Sunday"

        [[difference]]
        country = "XX"
        date = 2030-01-01
        kind = "extra"
        why = "never matches"
    "#,
    )
    .expect("valid allow-list");
    let mut used = vec![0; allowed.len()];
    let report = compare_country("XX", &reference, &ventana, &allowed, &mut used);
    assert_eq!(
        report,
        "XX 2026:\n  missing from Ventana: 2026-07-28 Tue  Día de la Independencia\n  \
         extra in Ventana:     2026-12-07 Mon  Día no laborable [x-bridge]\n"
    );
    assert_eq!(used, vec![1, 0]);
}
