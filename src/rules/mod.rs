//! Rules as data: loading a `jurisdictions/` directory into a [`RuleBook`],
//! and resolving the layers (country ∧ subdivision ∧ tenant policy) that
//! apply to one intent.

pub mod compile;
pub mod coverage;
pub mod file;
pub mod holidays;
pub mod model;
mod overlay;

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono_tz::Tz;
use holidays::HolidayCalendar;

pub use model::*;
pub use overlay::allowed_ranges;

/// A problem in a jurisdiction file, reported as `file:line: message`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    pub file: String,
    pub line: usize,
    pub message: String,
}

impl Problem {
    pub fn new(file: &str, line: usize, message: String) -> Self {
        Problem { file: file.to_string(), line, message }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: {}", self.file, self.line, self.message)
    }
}

/// Every jurisdiction file of a directory, compiled and cross-checked.
#[derive(Debug, Default)]
pub struct RuleBook {
    /// Countries and subdivision overlays by code.
    jurisdictions: HashMap<String, Arc<Jurisdiction>>,
    /// Tenant policies by tenant, then code.
    policies: HashMap<String, HashMap<String, Arc<Jurisdiction>>>,
    /// Every time zone each country's files name (the country's, its
    /// subdivisions', its overlays'), by country code.
    own_zones: HashMap<String, Vec<Tz>>,
}

/// Why a jurisdiction code cannot be resolved.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ResolveError {
    #[error("unknown jurisdiction {0:?}")]
    UnknownJurisdiction(String),
}

/// The layers that apply to one intent, outermost (country) first.
#[derive(Debug)]
pub struct Resolved<'a> {
    pub layers: Vec<&'a Jurisdiction>,
    /// Time zones assumed when the intent names none.
    pub default_zones: &'a [Tz],
    /// Whether the code named a subdivision (its zones are then evidence of
    /// where the recipient is, combined with any zones the intent names).
    pub subdivision: bool,
    /// Every zone the country's files name: an intent's zone outside this
    /// list cannot stand in for the jurisdiction's own.
    pub own_zones: &'a [Tz],
    /// For a code that names only the country: the holidays of its regional
    /// files (the debtor may live in any region, so every regional holiday
    /// closes, as every zone binds). Empty when the code names a region.
    pub regional_holidays: Vec<&'a HolidayCalendar>,
}

impl<'a> Resolved<'a> {
    /// Every holiday calendar that closes a day: the layers' own and, for a
    /// region-less code, every regional file's.
    pub fn calendars(&self) -> Vec<&'a HolidayCalendar> {
        self.layers.iter().map(|l| &l.holidays).chain(self.regional_holidays.iter().copied()).collect()
    }
}

fn toml_files(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            toml_files(&path, out)?;
        } else if path.extension().is_some_and(|e| e == "toml") {
            out.push(path);
        }
    }
    Ok(())
}

impl RuleBook {
    /// Loads every `*.toml` under `dir` (recursively). All or nothing: any
    /// problem in any file means no rule book, and every problem is listed.
    pub fn load_dir(dir: &Path) -> Result<RuleBook, Vec<Problem>> {
        let mut paths = Vec::new();
        if let Err(e) = toml_files(dir, &mut paths) {
            return Err(vec![Problem::new(&dir.display().to_string(), 0, format!("cannot read the directory: {e}"))]);
        }
        paths.sort();
        let mut sources = Vec::new();
        let mut problems = Vec::new();
        for path in paths {
            let name = path.display().to_string();
            match std::fs::read_to_string(&path) {
                Ok(text) => sources.push((name, text)),
                Err(e) => problems.push(Problem::new(&name, 0, format!("cannot read the file: {e}"))),
            }
        }
        let named: Vec<(&str, &str)> = sources.iter().map(|(n, t)| (n.as_str(), t.as_str())).collect();
        match RuleBook::from_sources(&named) {
            Ok(book) if problems.is_empty() => Ok(book),
            Ok(_) => Err(problems),
            Err(more) => {
                problems.extend(more);
                Err(problems)
            }
        }
    }

    /// Builds a rule book from `(file name, contents)` pairs.
    pub fn from_sources(sources: &[(&str, &str)]) -> Result<RuleBook, Vec<Problem>> {
        let mut problems = Vec::new();
        let mut book = RuleBook::default();
        for (file, source) in sources {
            let jurisdiction = match compile::compile_file(file, source) {
                Ok(j) => Arc::new(j),
                Err(found) => {
                    problems.extend(found);
                    continue;
                }
            };
            let code = jurisdiction.code.to_string();
            let previous = match &jurisdiction.tenant {
                Some(tenant) => {
                    book.policies.entry(tenant.clone()).or_default().insert(code.clone(), jurisdiction.clone())
                }
                None => book.jurisdictions.insert(code.clone(), jurisdiction.clone()),
            };
            if let Some(previous) = previous {
                problems.push(Problem::new(file, 1, format!("{code} is already defined in {}", previous.file)));
            }
        }
        problems.extend(overlay::check_layers(&book));
        for jurisdiction in book.jurisdictions.values() {
            let zones = book.own_zones.entry(jurisdiction.country().to_string()).or_default();
            let named = jurisdiction.subdivisions.values().flat_map(|s| s.time_zones.iter());
            for zone in jurisdiction.time_zones.iter().chain(named) {
                if !zones.contains(zone) {
                    zones.push(*zone);
                }
            }
        }
        if problems.is_empty() { Ok(book) } else { Err(problems) }
    }

    /// Every file: countries, subdivision overlays and tenant policies, sorted by code.
    pub fn jurisdictions(&self) -> Vec<&Arc<Jurisdiction>> {
        let mut all: Vec<_> =
            self.jurisdictions.values().chain(self.policies.values().flat_map(HashMap::values)).collect();
        all.sort_by(|a, b| (&a.code, &a.tenant).cmp(&(&b.code, &b.tenant)));
        all
    }

    /// The file that defines `code` (a country or subdivision overlay).
    pub fn get(&self, code: &str) -> Option<&Jurisdiction> {
        self.jurisdictions.get(code).map(Arc::as_ref)
    }

    /// The layers for `tenant`'s intent in jurisdiction `code`.
    pub fn resolve(&self, tenant: &str, code: &str) -> Result<Resolved<'_>, ResolveError> {
        let unknown = || ResolveError::UnknownJurisdiction(code.to_string());
        let country_code = country_of(code);
        let country = self.jurisdictions.get(country_code).ok_or_else(unknown)?;
        let mut layers = vec![country.as_ref()];
        let mut default_zones = country.time_zones.as_slice();
        if let Some((_, sub)) = code.split_once('-') {
            let known = country.subdivisions.get(sub);
            let overlay = self.jurisdictions.get(code);
            if known.is_none() && overlay.is_none() {
                return Err(unknown());
            }
            if let Some(known) = known {
                default_zones = &known.time_zones;
            }
            if let Some(overlay) = overlay {
                layers.push(overlay);
                if !overlay.time_zones.is_empty() {
                    default_zones = &overlay.time_zones;
                }
            }
        }
        if let Some(policies) = self.policies.get(tenant) {
            let codes =
                if code == country_code { [Some(country_code), None] } else { [Some(country_code), Some(code)] };
            layers.extend(codes.into_iter().flatten().filter_map(|c| policies.get(c)).map(Arc::as_ref));
        }
        let own_zones = self.own_zones.get(country_code).map_or(&[][..], Vec::as_slice);
        let mut regional_holidays: Vec<&HolidayCalendar> = Vec::new();
        if code == country_code {
            let mut regions: Vec<&Arc<Jurisdiction>> = self
                .jurisdictions
                .iter()
                .filter(|(other, _)| other.as_str() != country_code && country_of(other) == country_code)
                .map(|(_, region)| region)
                .collect();
            regions.sort_by(|a, b| a.code.cmp(&b.code));
            regional_holidays.extend(regions.into_iter().map(|r| &r.holidays));
        }
        Ok(Resolved { layers, default_zones, subdivision: code.contains('-'), own_zones, regional_holidays })
    }
}
