//! The compliance officers' tools behind `ventana rules` and `ventana explain`
//! (and the gRPC Calendar): checking jurisdiction files, calendars, windows
//! and decisions. Each returns what to print; `cli` prints it. `diff`
//! compares two rule books, `picture` draws a week as an HTML page and
//! `summary` says what each rule says, for both.

pub mod diff;
pub mod picture;
pub mod summary;

use std::io::{BufRead, Write};
use std::path::Path;

use chrono::{DateTime, Datelike, Days, NaiveDate, Utc};
use serde_json::{Map, Value, json};

use crate::domain::{Channel, TimeRange};
use crate::engine::{Verdict, evaluate};
use crate::intent_json::{FieldError, WhatIf, decision_json, parse_intent};
use crate::rules::coverage::{Coverage, coverage, describe_pending};
use crate::rules::{DAY_NAMES, Expectation, Jurisdiction, Problem, RuleBook, allowed_ranges};

/// Why a CLI command could not run: bad input (exit 2), bad rules (exit 1),
/// or the database or the system failing underneath (exit 3: retrying may help).
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error("{0}")]
    Input(String),
    #[error("{0}")]
    Runtime(String),
    #[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"))]
    Rules(Vec<Problem>),
}

impl From<FieldError> for CliError {
    fn from(e: FieldError) -> Self {
        CliError::Input(e.to_string())
    }
}

/// Loads a rules directory, reporting every problem.
pub fn load(dir: &Path) -> Result<RuleBook, CliError> {
    RuleBook::load_dir(dir).map_err(CliError::Rules)
}

/// Result of `rules check`: problems (file:line: reason) and a summary.
pub struct CheckReport {
    pub problems: Vec<Problem>,
    pub files: usize,
    pub examples: usize,
    /// Each file's holiday coverage (empty when the files did not load).
    pub coverage: Vec<Coverage>,
}

/// What "current" means for a check or a coverage report: the day it is
/// made, how far ahead a horizon must reach, and how far ahead to look for
/// pending decisions and ending lists.
#[derive(Clone, Copy, Debug)]
pub struct Currency {
    pub today: NaiveDate,
    pub min_days: u32,
    pub lookahead_days: u32,
}

/// Parses every file, runs every `[[examples]]` and reports each file's
/// coverage as of `currency.today`.
pub fn rules_check(dir: &Path, currency: &Currency) -> CheckReport {
    let book = match RuleBook::load_dir(dir) {
        Ok(book) => book,
        Err(problems) => {
            return CheckReport { problems, files: 0, examples: 0, coverage: Vec::new() };
        }
    };
    let mut problems = Vec::new();
    let mut examples = 0;
    for jurisdiction in book.jurisdictions() {
        for example in &jurisdiction.examples {
            examples += 1;
            if let Err(message) = run_example(&book, jurisdiction, example) {
                problems.push(Problem::new(
                    &jurisdiction.file,
                    example.line,
                    format!("example {:?}: {message}", example.name),
                ));
            }
        }
    }
    CheckReport { problems, files: book.jurisdictions().len(), examples, coverage: coverages(&book, currency) }
}

/// The coverage of every file.
pub fn coverages(book: &RuleBook, currency: &Currency) -> Vec<Coverage> {
    book.jurisdictions().iter().map(|j| coverage(j, currency.today, currency.lookahead_days)).collect()
}

/// The warnings of a check: each horizon nearer than `currency.min_days`,
/// each pending decision, each list that ends within the look-ahead.
pub fn currency_warnings(coverages: &[Coverage], currency: &Currency) -> Vec<String> {
    let mut warnings = Vec::new();
    for c in coverages {
        if c.is_short(currency.today, currency.min_days) {
            warnings.push(match &c.horizon {
                Some(h) => format!(
                    "{}: holidays {}, less than {} days: confirm the next decrees and move `confirmed_through`",
                    c.file,
                    h.describe(currency.today),
                    currency.min_days,
                ),
                None => format!(
                    "{}: states no `confirmed_through`, so how far its holidays are confirmed is unknown: add it",
                    c.file
                ),
            });
        }
        for pending in &c.pending {
            warnings.push(format!("{}: pending decision: {}", c.file, describe_pending(pending)));
        }
        for list in &c.ending {
            warnings.push(format!(
                "{}: list {} ({}) ends on {}: add the next dates when published",
                c.file, list.rule, list.name, list.last
            ));
        }
    }
    warnings
}

/// One file's coverage as JSON (for `rules coverage --format json`).
pub fn coverage_json(c: &Coverage, currency: &Currency) -> Value {
    json!({
        "jurisdiction": c.code.as_ref(),
        "file": c.file.as_ref(),
        "confirmed_through": c.horizon.as_ref().map(|h| h.through.to_string()),
        "days_ahead": c.horizon.as_ref().map(|h| h.days_ahead(currency.today)),
        "set_by": c.horizon.as_ref().map(|h| h.set_by.as_ref()),
        "short": c.is_short(currency.today, currency.min_days),
        "pending": c.pending.iter().map(|p| json!({
            "rule": p.rule.as_ref(),
            "name": p.name.as_ref(),
            "base": p.base.to_string(),
            "days": p.days.iter().map(ToString::to_string).collect::<Vec<_>>(),
            "under": p.under.as_ref(),
        })).collect::<Vec<_>>(),
        "ending_lists": c.ending.iter().map(|l| json!({
            "rule": l.rule.as_ref(), "name": l.name.as_ref(), "last": l.last.to_string(),
        })).collect::<Vec<_>>(),
    })
}

fn run_example(book: &RuleBook, jurisdiction: &Jurisdiction, example: &crate::rules::Example) -> Result<(), String> {
    let mut intent: Map<String, Value> = match &example.intent {
        Value::Object(map) => map.clone(),
        _ => Map::new(),
    };
    let defaults = [
        ("tenant", jurisdiction.tenant.clone().unwrap_or_else(|| "example".into())),
        ("intent_id", "example".into()),
        ("debtor_id", "example".into()),
        ("party", "debtor".into()),
        ("stage", "extrajudicial".into()),
        ("jurisdiction", jurisdiction.code.to_string()),
    ];
    for (field, value) in defaults {
        intent.entry(field).or_insert(Value::String(value));
    }
    let WhatIf { intent, history, preferences } =
        parse_intent(&Value::Object(intent)).map_err(|e| format!("intent {e}"))?;
    let rules = book.resolve(&intent.tenant, &intent.jurisdiction).map_err(|e| e.to_string())?;
    let decision = evaluate(&intent, &rules, &history, &preferences, example.at);
    let got = match decision.verdict {
        Verdict::Release => Expectation::Release,
        Verdict::Defer { until } => Expectation::Defer { until },
        Verdict::Reject { code } => Expectation::Reject { code: code.as_str().to_string() },
    };
    if got == example.expect {
        Ok(())
    } else {
        let reasons: Vec<String> = decision.reasons.iter().map(|r| r.message()).collect();
        Err(format!("expected {}, got {} ({})", describe(&example.expect), describe(&got), reasons.join("; ")))
    }
}

fn describe(expectation: &Expectation) -> String {
    match expectation {
        Expectation::Release => "release".into(),
        Expectation::Defer { until } => format!("defer until {}", until.to_rfc3339()),
        Expectation::Reject { code } => format!("reject {code}"),
    }
}

/// The holidays of `code` in `year` as JSON values `{date, name, rule}`;
/// for a region-less code also every regional file's (`"regional": true`):
/// they close the day too, since the debtor may live in that region.
pub fn calendar_holidays(book: &RuleBook, code: &str, year: i32) -> Result<Vec<Value>, CliError> {
    let rules = book.resolve("", code).map_err(|e| CliError::Input(e.to_string()))?;
    let own = rules.layers.iter().map(|l| (&l.holidays, false));
    let regional = rules.regional_holidays.iter().map(|c| (*c, true));
    let mut days: Vec<Value> = Vec::new();
    for (calendar, is_regional) in own.chain(regional) {
        for (date, holiday) in calendar.year(year) {
            let rule = holiday.rule;
            let mut day = json!({"date": date.to_string(), "name": rule.name.as_ref(), "rule": rule.id.as_ref()});
            if is_regional {
                day["regional"] = json!(true);
            }
            if let (true, Some(provisional)) = (holiday.provisional, &rule.provisional) {
                day["provisional"] = json!(true);
                day["pending_under"] = json!(provisional.citation.as_ref());
            }
            days.push(day);
        }
    }
    days.sort_by(|a, b| a["date"].as_str().cmp(&b["date"].as_str()));
    Ok(days)
}

/// The allowed local windows of `channel` per day, from `from` for `days` days.
pub fn calendar_windows(
    book: &RuleBook,
    code: &str,
    channel: Channel,
    from: NaiveDate,
    days: u32,
) -> Result<Vec<Value>, CliError> {
    let rules = book.resolve("", code).map_err(|e| CliError::Input(e.to_string()))?;
    let calendars = rules.calendars();
    let mut out = Vec::new();
    for offset in 0..days {
        let date = from
            .checked_add_days(Days::new(u64::from(offset)))
            .ok_or_else(|| CliError::Input("date out of range".into()))?;
        let (day, holiday) = crate::engine::windows::day_type(&calendars, date);
        let versions: Vec<_> = rules.layers.iter().filter_map(|l| l.version_on(date)).collect();
        let ranges = allowed_ranges(&versions, channel, day);
        out.push(json!({
            "date": date.to_string(),
            "day": DAY_NAMES[date.weekday().num_days_from_monday() as usize].to_string(),
            "holiday": holiday.map(|h| h.rule.name.to_string()),
            "provisional": holiday.is_some_and(|h| h.provisional),
            "windows": ranges.iter().map(TimeRange::as_written).collect::<Vec<_>>(),
            "time_zones": rules.default_zones.iter().map(|z| z.name()).collect::<Vec<_>>(),
        }));
    }
    Ok(out)
}

/// Evaluates one intent JSON at `at`.
pub fn explain(book: &RuleBook, at: DateTime<Utc>, intent: &Value) -> Result<Value, CliError> {
    let WhatIf { intent, history, preferences } = parse_intent(intent)?;
    let rules = book
        .resolve(&intent.tenant, &intent.jurisdiction)
        .map_err(|e| CliError::Input(format!("jurisdiction: {e}")))?;
    Ok(decision_json(&evaluate(&intent, &rules, &history, &preferences, at), at))
}

/// Reads `{"at", "intent"}` lines and writes one decision (or error) per line.
pub fn explain_batch(book: &RuleBook, input: impl BufRead, mut output: impl Write) -> std::io::Result<usize> {
    let mut errors = 0;
    for line in input.lines() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        let result = serde_json::from_str::<Value>(&line)
            .map_err(|e| CliError::Input(format!("not JSON: {e}")))
            .and_then(|value| {
                let at = value
                    .get("at")
                    .and_then(Value::as_str)
                    .ok_or_else(|| CliError::Input("at: is required (RFC 3339 instant)".into()))
                    .and_then(|s| {
                        crate::rules::compile::parse_instant(s).map_err(|e| CliError::Input(format!("at: {e}")))
                    })?;
                let intent = value.get("intent").ok_or_else(|| CliError::Input("intent: is required".into()))?;
                explain(book, at, intent)
            });
        let out = result.unwrap_or_else(|e| {
            errors += 1;
            json!({"error": e.to_string()})
        });
        writeln!(output, "{out}")?;
    }
    Ok(errors)
}
