//! Turns one parsed jurisdiction file into validated, compiled rules,
//! collecting every problem with its line.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use chrono::{DateTime, NaiveDate, Utc};
use chrono_tz::Tz;
use sha2::{Digest, Sha256};
use toml::Spanned;

use super::Problem;
use super::file::{
    Exclusion, MonthDay, RawCap, RawCooldown, RawExample, RawFile, RawHoliday, RawMeta, RawMove, RawParties,
    RawProvisional, RawStageChannels, RawVersion, RawWindow, TimeRange,
};
use super::holidays::{Decision, HolidayBase, HolidayCalendar, HolidayRule, MOVE_PRESETS, Provisional, move_preset};
use super::model::*;
use crate::domain::{Channel, ContactPointKind};

/// Line number (1-based) of a byte offset in `source`.
pub fn line_at(source: &str, offset: usize) -> usize {
    source.as_bytes()[..offset.min(source.len())].iter().filter(|b| **b == b'\n').count() + 1
}

/// Parses and compiles one file. Every problem found is returned.
pub fn compile_file(file: &str, source: &str) -> Result<Jurisdiction, Vec<Problem>> {
    let raw: RawFile = toml::from_str(source).map_err(|e| {
        let line = e.span().map_or(1, |s| line_at(source, s.start));
        vec![Problem::new(file, line, e.message().trim().to_string())]
    })?;
    let mut compiler = Compiler { file: file.into(), source, problems: Vec::new(), ids: HashSet::new() };
    let jurisdiction = compiler.file(raw, source);
    if compiler.problems.is_empty() { Ok(jurisdiction) } else { Err(compiler.problems) }
}

struct Compiler<'a> {
    file: Arc<str>,
    source: &'a str,
    problems: Vec<Problem>,
    ids: HashSet<String>,
}

fn is_valid_code(code: &str) -> bool {
    let mut parts = code.split('-');
    let country = parts.next().unwrap_or_default();
    let sub = parts.next();
    country.len() == 2
        && country.chars().all(|c| c.is_ascii_uppercase())
        && sub.is_none_or(|s| {
            !s.is_empty() && s.len() <= 6 && s.chars().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
        })
        && parts.next().is_none()
}

impl Compiler<'_> {
    fn line<T>(&self, spanned: &Spanned<T>) -> usize {
        line_at(self.source, spanned.span().start)
    }

    fn problem(&mut self, line: usize, message: impl Into<String>) {
        self.problems.push(Problem::new(&self.file, line, message.into()));
    }

    fn file(&mut self, raw: RawFile, source: &str) -> Jurisdiction {
        let code_line = self.line(&raw.jurisdiction);
        let code = raw.jurisdiction.into_inner();
        if !is_valid_code(&code) {
            self.problem(
                code_line,
                format!("jurisdiction code {code:?} must be a country (\"PE\") or country-subdivision (\"US-MA\") in capitals"),
            );
        }
        let tenant = raw.tenant.map(|t| {
            let line = self.line(&t);
            let t = t.into_inner();
            if t.is_empty() || t.len() > 64 {
                self.problem(line, "tenant must be 1 to 64 characters");
            }
            t
        });
        let is_overlay = tenant.is_some() || code.contains('-');
        let hash: String = Sha256::digest(source.as_bytes())[..6].iter().map(|b| format!("{b:02x}")).collect();
        let time_zones = self.zones(&raw.time_zones);
        if !is_overlay && time_zones.is_empty() {
            self.problem(code_line, "a country file needs `time_zones`: the zones a debtor is assumed to be in");
        }
        let subdivisions = raw
            .subdivisions
            .into_iter()
            .map(|(key, sub)| {
                let zones = self.zones(&sub.time_zones);
                (key, Subdivision { name: sub.name, time_zones: zones })
            })
            .collect();
        let groups = self.groups(&raw.channel_groups);
        let holidays: Vec<HolidayRule> = raw.holidays.iter().filter_map(|h| self.holiday(h)).collect();
        let confirmed_through = raw.confirmed_through.as_ref().and_then(|d| self.date(d, "`confirmed_through`"));
        let code: Arc<str> = code.into();
        let mut versions: Vec<RuleVersion> =
            raw.versions.iter().filter_map(|v| self.version(v, &code, &hash, &groups, is_overlay)).collect();
        versions.sort_by_key(|v| v.effective_from);
        if versions.is_empty() {
            self.problem(code_line, "the file has no `[[versions]]`: nothing would be enforced");
        }
        for pair in versions.windows(2) {
            if pair[0].effective_from == pair[1].effective_from {
                self.problem(code_line, format!("two versions take effect on {}", pair[0].effective_from));
            }
        }
        let examples = raw.examples.iter().filter_map(|e| self.example(e)).collect();
        Jurisdiction {
            code,
            name: raw.name,
            tenant,
            file: self.file.clone(),
            hash,
            source: source.to_string(),
            time_zones,
            subdivisions,
            holidays: HolidayCalendar::new(holidays),
            confirmed_through,
            versions,
            examples,
        }
    }

    fn zones(&mut self, names: &[Spanned<String>]) -> Vec<Tz> {
        names
            .iter()
            .filter_map(|name| match name.get_ref().parse::<Tz>() {
                Ok(tz) => Some(tz),
                Err(_) => {
                    let line = self.line(name);
                    self.problem(
                        line,
                        format!("{:?} is not an IANA time zone name (e.g. \"America/Lima\")", name.get_ref()),
                    );
                    None
                }
            })
            .collect()
    }

    fn groups(&mut self, raw: &BTreeMap<String, Vec<Spanned<String>>>) -> BTreeMap<String, ChannelSet> {
        let mut groups = BTreeMap::new();
        for (name, members) in raw {
            if name == "all" || name.parse::<Channel>().is_ok() {
                if let Some(first) = members.first() {
                    let line = self.line(first);
                    self.problem(line, format!("channel group name {name:?} is reserved"));
                }
                continue;
            }
            let mut set = ChannelSet::default();
            for member in members {
                match member.get_ref().parse::<Channel>() {
                    Ok(c) => set.insert(c),
                    Err(e) => {
                        let line = self.line(member);
                        self.problem(line, format!("in channel group {name:?}: {e}"));
                    }
                }
            }
            groups.insert(name.clone(), set);
        }
        groups
    }

    fn channels(&mut self, words: &[Spanned<String>], groups: &BTreeMap<String, ChannelSet>) -> ChannelSet {
        let mut set = ChannelSet::default();
        for word in words {
            let text = word.get_ref().as_str();
            if text == "all" {
                set = set.union(ChannelSet::ALL);
            } else if let Some(group) = groups.get(text) {
                set = set.union(*group);
            } else if let Ok(channel) = text.parse::<Channel>() {
                set.insert(channel);
            } else {
                let line = self.line(word);
                let known: Vec<&str> = groups.keys().map(String::as_str).collect();
                self.problem(
                    line,
                    format!(
                        "unknown channel or group {text:?} (channels: {}; groups: all{}{})",
                        Channel::expected(),
                        if known.is_empty() { "" } else { ", " },
                        known.join(", ")
                    ),
                );
            }
        }
        set
    }

    fn unique_id(&mut self, id: &Spanned<String>) {
        let line = self.line(id);
        let text = id.get_ref();
        if text.is_empty() || !text.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.') {
            self.problem(line, format!("id {text:?} must be non-empty letters, digits, '-', '_' or '.'"));
        }
        if !self.ids.insert(text.clone()) {
            self.problem(line, format!("id {text:?} is used twice in this file"));
        }
    }

    fn date(&mut self, value: &Spanned<toml::value::Datetime>, what: &str) -> Option<NaiveDate> {
        let parsed = value.get_ref().to_string().parse::<NaiveDate>().ok();
        if parsed.is_none() {
            let line = self.line(value);
            self.problem(line, format!("{what} must be a date like 2026-01-31"));
        }
        parsed
    }

    fn holiday(&mut self, raw: &RawHoliday) -> Option<HolidayRule> {
        self.unique_id(&raw.id);
        let line = self.line(&raw.id);
        let bases = [raw.date.is_some(), raw.easter.is_some(), raw.nth_weekday.is_some(), raw.dates.is_some()];
        if bases.iter().filter(|b| **b).count() != 1 {
            self.problem(line, "a holiday needs exactly one of `date`, `easter`, `nth_weekday` or `dates`");
            return None;
        }
        let base = if let Some(MonthDay { month, day }) = raw.date {
            HolidayBase::Fixed { month, day }
        } else if let Some(offset) = raw.easter {
            if !(-100..=100).contains(&offset) {
                self.problem(line, "`easter` offset must be within 100 days of Easter Sunday");
                return None;
            }
            HolidayBase::Easter(offset)
        } else if let Some(nth) = &raw.nth_weekday {
            if !(1..=12).contains(&nth.month) || nth.n == 0 || !(-5..=5).contains(&nth.n) {
                self.problem(line, "`nth_weekday` needs month 1..12 and n in 1..5 (or -1..-5 counting from the end)");
                return None;
            }
            HolidayBase::NthWeekday { month: nth.month, weekday: nth.weekday.to_chrono(), n: nth.n }
        } else {
            let dates = raw.dates.as_deref().unwrap_or_default();
            HolidayBase::Dates(dates.iter().filter_map(|d| self.date(d, "each of `dates`")).collect())
        };
        let moves = match &raw.moves {
            None => [0; 7],
            Some(RawMove::Preset(name)) => match move_preset(name) {
                Some(table) => table,
                None => {
                    self.problem(
                        line,
                        format!("unknown move rule {name:?} (presets: {MOVE_PRESETS}, or a table like {{ sun = 1 }})"),
                    );
                    return None;
                }
            },
            Some(RawMove::Table(table)) => {
                let mut moves = [0; 7];
                for (weekday, offset) in table {
                    if !(-7..=7).contains(offset) {
                        self.problem(line, "a move may shift a holiday by at most 7 days");
                    }
                    moves[weekday.to_chrono().num_days_from_monday() as usize] = *offset;
                }
                moves
            }
        };
        let only_on = raw.only_on.as_ref().map(|days| {
            let mut set = [false; 7];
            days.iter().for_each(|d| set[d.to_chrono().num_days_from_monday() as usize] = true);
            set
        });
        if raw.every_years.is_some() && raw.from_year.is_none() {
            self.problem(line, "`every_years` counts from `from_year`: set both");
        }
        if let (Some(from), Some(until)) = (raw.from_year, raw.until_year)
            && from > until
        {
            self.problem(line, "`from_year` is after `until_year`");
        }
        let provisional = raw.provisional.as_ref().and_then(|p| self.provisional(p, line));
        if provisional.is_none() && !raw.decided.is_empty() {
            self.problem(line, "`decided` picks among `provisional` candidates: this holiday has none");
        }
        let decided: Vec<Decision> = raw
            .decided
            .iter()
            .filter_map(|d| {
                if d.citation.trim().is_empty() {
                    let line = self.line(&d.date);
                    self.problem(line, "a decision needs a `citation`: the decree or resolution that published it");
                }
                Some(Decision {
                    date: self.date(&d.date, "a decision's `date`")?,
                    citation: d.citation.as_str().into(),
                })
            })
            .collect();
        let confirmed_through = raw.confirmed_through.as_ref().and_then(|d| self.date(d, "`confirmed_through`"));
        let rule = HolidayRule {
            id: raw.id.get_ref().as_str().into(),
            name: raw.name.as_str().into(),
            citation: raw.citation.as_deref().map(Into::into),
            base,
            moves,
            only_on,
            from_year: raw.from_year,
            until_year: raw.until_year,
            every_years: raw.every_years,
            provisional,
            decided,
            confirmed_through,
        };
        for (date, problem) in rule.decision_problems() {
            let at = raw.decided.iter().find(|d| d.date.get_ref().to_string() == date.to_string()).map(|d| &d.date);
            let line = at.map_or(line, |d| self.line(d));
            self.problem(line, problem);
        }
        Some(rule)
    }

    /// Checks a `provisional` table: offsets within a week, a citation, and
    /// at least one weekday with candidates.
    fn provisional(&mut self, raw: &RawProvisional, line: usize) -> Option<Provisional> {
        if raw.citation.trim().is_empty() {
            self.problem(line, "`provisional` needs a `citation`: the norm that lets the authority move the holiday");
        }
        let since = match &raw.since {
            Some(date) => Some(self.date(date, "`provisional.since`")?),
            None => None,
        };
        let candidates = [&raw.mon, &raw.tue, &raw.wed, &raw.thu, &raw.fri, &raw.sat, &raw.sun].map(Clone::clone);
        if candidates.iter().all(Vec::is_empty) {
            self.problem(line, "`provisional` names no candidate day: give offsets per weekday, e.g. sat = [-1, 2]");
            return None;
        }
        if candidates.iter().flatten().any(|offset| *offset == 0 || !(-7..=7).contains(offset)) {
            self.problem(line, "a candidate day is 1 to 7 days before or after the holiday (offset -7..-1 or 1..7)");
            return None;
        }
        Some(Provisional { since, citation: raw.citation.as_str().into(), candidates })
    }

    fn meta(&mut self, raw: RawMeta<'_>, code: &Arc<str>, label: &Arc<str>) -> Arc<RuleMeta> {
        self.unique_id(raw.id);
        let line = self.line(raw.id);
        if raw.citation.trim().is_empty() {
            self.problem(
                line,
                format!("rule {:?} needs a `citation` (law and article, or the practice it follows)", raw.id.get_ref()),
            );
        }
        if raw.description.trim().is_empty() {
            self.problem(line, format!("rule {:?} needs a plain-language `description`", raw.id.get_ref()));
        }
        Arc::new(RuleMeta {
            id: raw.id.get_ref().as_str().into(),
            citation: raw.citation.into(),
            description: raw.description.into(),
            basis: raw.basis,
            jurisdiction: code.clone(),
            version: label.clone(),
            file: self.file.clone(),
            line,
        })
    }

    fn version(
        &mut self,
        raw: &RawVersion,
        code: &Arc<str>,
        hash: &str,
        groups: &BTreeMap<String, ChannelSet>,
        is_overlay: bool,
    ) -> Option<RuleVersion> {
        let effective_from = self.date(&raw.effective_from, "`effective_from`")?;
        let version_line = self.line(&raw.effective_from);
        let label: Arc<str> = format!("{effective_from}/{hash}").into();
        let windows: Vec<WindowRule> = raw.windows.iter().map(|w| self.window(w, code, &label, groups)).collect();
        let caps = raw.caps.iter().map(|c| self.cap(c, code, &label, groups)).collect();
        let cooldowns = raw.cooldowns.iter().map(|c| self.cooldown(c, code, &label, groups)).collect();
        let parties = raw.parties.iter().map(|p| self.parties(p, code, &label)).collect();
        let stage_channels = raw.stage_channels.iter().map(|s| self.stage_channels(s, code, &label, groups)).collect();
        let contact_point_bans = raw
            .contact_point_bans
            .iter()
            .map(|b| ContactPointBanRule {
                meta: self.meta(b.meta(), code, &label),
                channels: self.channels(&b.channels, groups),
                contact_points: b.contact_points.clone(),
            })
            .collect();
        let designations = raw
            .designations
            .iter()
            .map(|d| DesignationRule { meta: self.meta(d.meta(), code, &label), kinds: d.kinds.clone() })
            .collect();
        if is_overlay && let Some(response) = raw.responses.first() {
            let line = self.line(&response.id);
            self.problem(
                line,
                "`[[versions.responses]]` widens what the debtor designated: only a country file may declare it (overlays only narrow)",
            );
        }
        let responses = raw
            .responses
            .iter()
            .map(|r| ResponseRule {
                meta: self.meta(r.meta(), code, &label),
                channels: self.channels(&r.channels, groups),
            })
            .collect();
        if !is_overlay {
            // A window scoped to some contact points leaves the others uncovered.
            let unscoped = windows.iter().filter(|w| w.contact_points.0.is_none());
            let covered = unscoped.fold(ChannelSet::default(), |acc, w| acc.union(w.channels));
            let missing: Vec<&str> =
                Channel::ALL.iter().filter(|c| !covered.contains(**c)).map(|c| c.as_str()).collect();
            if !missing.is_empty() {
                self.problem(
                    version_line,
                    format!(
                        "version {effective_from}: no window rule covers {}; every channel needs contact hours (write 00:00-24:00 where any hour is allowed)",
                        missing.join(", ")
                    ),
                );
            }
        }
        Some(RuleVersion {
            effective_from,
            label,
            windows,
            caps,
            cooldowns,
            parties,
            stage_channels,
            contact_point_bans,
            designations,
            responses,
        })
    }

    fn window(
        &mut self,
        raw: &RawWindow,
        code: &Arc<str>,
        label: &Arc<str>,
        groups: &BTreeMap<String, ChannelSet>,
    ) -> WindowRule {
        let meta = self.meta(raw.meta(), code, label);
        let channels = self.channels(&raw.channels, groups);
        let specific = [&raw.mon, &raw.tue, &raw.wed, &raw.thu, &raw.fri];
        if raw.mon_fri.is_some() && specific.iter().any(|d| d.is_some()) {
            self.problem(
                meta.line,
                format!("window {:?} sets both `mon_fri` and a single weekday: use one or the other", meta.id),
            );
        }
        let mut days: [Vec<TimeRange>; 8] = Default::default();
        for (index, day) in specific.iter().enumerate() {
            days[index] = day.as_ref().or(raw.mon_fri.as_ref()).cloned().unwrap_or_default();
        }
        days[5] = raw.sat.clone().unwrap_or_default();
        days[6] = raw.sun.clone().unwrap_or_default();
        days[HOLIDAY] = raw.holiday.clone().unwrap_or_default();
        for (index, ranges) in days.iter_mut().enumerate() {
            ranges.sort();
            if ranges.windows(2).any(|pair| pair[0].end > pair[1].start) {
                self.problem(meta.line, format!("window {:?}: ranges for {} overlap", meta.id, DAY_NAMES[index]));
            }
        }
        let contact_points = self.contact_points(raw.contact_points.as_ref(), channels, &meta);
        WindowRule { meta, channels, days: Arc::new(days), contact_points, debtor: None }
    }

    fn cap(
        &mut self,
        raw: &RawCap,
        code: &Arc<str>,
        label: &Arc<str>,
        groups: &BTreeMap<String, ChannelSet>,
    ) -> CapRule {
        let meta = self.meta(raw.meta(), code, label);
        let channels = self.channels(&raw.channels, groups);
        let period = match (raw.rolling, raw.calendar, raw.consecutive_days) {
            (Some(d), None, None) => Some(Period::Rolling(d)),
            (None, Some(c), None) => Some(Period::Calendar(c)),
            (None, None, Some(n)) => Some(Period::LocalDays(self.day_count(n, &meta))),
            (None, None, None) => None,
            _ => {
                self.problem(
                    meta.line,
                    format!(
                        "cap {:?}: set one of `rolling`, `calendar` or `consecutive_days` (write two caps to enforce two)",
                        meta.id
                    ),
                );
                None
            }
        };
        let counting = raw.limit.is_some() || raw.max_channels.is_some();
        if counting && period.is_none() {
            self.problem(
                meta.line,
                format!(
                    "cap {:?}: `limit`/`max_channels` need a period (`rolling = \"7d\"`, `calendar = \"week\"` or `consecutive_days = 7`)",
                    meta.id
                ),
            );
        }
        if !counting && raw.min_gap.is_none() {
            self.problem(
                meta.line,
                format!("cap {:?} limits nothing: set `limit`, `max_channels` or `min_gap`", meta.id),
            );
        }
        if raw.limit == Some(0) || raw.max_channels == Some(0) {
            self.problem(
                meta.line,
                format!("cap {:?}: a limit of 0 forbids the channel; use a stage or party rule instead", meta.id),
            );
        }
        let written_only = raw.excludes.contains(&Exclusion::ConsentedInWriting);
        let consented = written_only || raw.excludes.contains(&Exclusion::Consented);
        if raw.consent_days.is_some() && !consented {
            self.problem(meta.line, format!("cap {:?}: `consent_days` needs `excludes = [\"consented\"]`", meta.id));
        }
        let max_days = raw.consent_days.map(|n| self.day_count(n, &meta));
        CapRule {
            contact_points: self.contact_points(raw.contact_points.as_ref(), channels, &meta),
            exclude_debtor_initiated: raw.excludes.contains(&Exclusion::DebtorInitiated),
            exclude_consented: consented.then_some(ConsentExclusion { max_days, written_only }),
            meta,
            channels,
            scope: raw.scope,
            counts: raw.counts,
            limit: raw.limit,
            max_channels: raw.max_channels,
            period,
            min_gap: raw.min_gap,
        }
    }

    fn cooldown(
        &mut self,
        raw: &RawCooldown,
        code: &Arc<str>,
        label: &Arc<str>,
        groups: &BTreeMap<String, ChannelSet>,
    ) -> CooldownRule {
        let meta = self.meta(raw.meta(), code, label);
        let after_channels = match &raw.after_channels {
            Some(words) => self.channels(words, groups),
            None => ChannelSet::ALL,
        };
        if raw.after.is_empty() {
            self.problem(meta.line, format!("cooldown {:?}: `after` lists no outcome", meta.id));
        }
        let length = match (raw.duration, raw.consecutive_days) {
            (Some(d), None) => CooldownLength::Rolling(d),
            (None, Some(n)) => CooldownLength::LocalDays(self.day_count(n, &meta)),
            _ => {
                self.problem(
                    meta.line,
                    format!("cooldown {:?}: set exactly one of `duration` or `consecutive_days`", meta.id),
                );
                CooldownLength::LocalDays(1)
            }
        };
        let channels = self.channels(&raw.channels, groups);
        CooldownRule {
            after: raw.after.clone(),
            after_channels,
            contact_points: self.contact_points(raw.contact_points.as_ref(), channels, &meta),
            channels,
            length,
            scope: raw.scope,
            meta,
        }
    }

    /// A rule's contact-point kinds: not empty, each reachable by one of its channels.
    fn contact_points(
        &mut self,
        kinds: Option<&Vec<ContactPointKind>>,
        channels: ChannelSet,
        meta: &RuleMeta,
    ) -> ContactPoints {
        if let Some(kinds) = kinds {
            if kinds.is_empty() {
                self.problem(meta.line, format!("rule {:?}: `contact_points` is empty (omit it for all)", meta.id));
            }
            for kind in kinds.iter().filter(|k| !channels.iter().any(|c| k.reachable_by(c))) {
                self.problem(
                    meta.line,
                    format!("rule {:?}: none of its channels ({channels}) can reach a {kind}", meta.id),
                );
            }
        }
        ContactPoints(kinds.cloned())
    }

    /// A number of consecutive local days: 1 to 366.
    fn day_count(&mut self, days: u32, meta: &RuleMeta) -> u32 {
        if !(1..=366).contains(&days) {
            self.problem(meta.line, format!("rule {:?}: `consecutive_days` must be 1 to 366", meta.id));
        }
        days.clamp(1, 366)
    }

    fn parties(&mut self, raw: &RawParties, code: &Arc<str>, label: &Arc<str>) -> PartyRule {
        PartyRule { meta: self.meta(raw.meta(), code, label), allowed: raw.allowed.clone() }
    }

    fn stage_channels(
        &mut self,
        raw: &RawStageChannels,
        code: &Arc<str>,
        label: &Arc<str>,
        groups: &BTreeMap<String, ChannelSet>,
    ) -> StageChannelRule {
        let meta = self.meta(raw.meta(), code, label);
        StageChannelRule { stages: raw.stages.clone(), channels: self.channels(&raw.channels, groups), meta }
    }

    fn example(&mut self, raw: &RawExample) -> Option<Example> {
        let line = self.line(&raw.name);
        let at = match parse_instant(&raw.at.to_string()) {
            Ok(at) => at,
            Err(e) => {
                self.problem(line, format!("example {:?}: `at` {e}", raw.name.get_ref()));
                return None;
            }
        };
        let expect = match (raw.expect.as_str(), &raw.until, &raw.code) {
            ("release", None, None) => Expectation::Release,
            ("defer", Some(until), None) => match parse_instant(&until.to_string()) {
                Ok(until) => Expectation::Defer { until },
                Err(e) => {
                    self.problem(line, format!("example {:?}: `until` {e}", raw.name.get_ref()));
                    return None;
                }
            },
            ("reject", None, Some(code)) => Expectation::Reject { code: code.clone() },
            _ => {
                self.problem(
                    line,
                    format!(
                        "example {:?}: `expect` must be \"release\", \"defer\" with `until`, or \"reject\" with `code`",
                        raw.name.get_ref()
                    ),
                );
                return None;
            }
        };
        let mut intent = serde_json::Map::new();
        for (key, value) in &raw.intent {
            intent.insert(key.clone(), toml_to_json(value));
        }
        if !raw.history.is_empty() {
            let history = raw.history.iter().map(|h| toml_to_json(&toml::Value::Table(h.clone()))).collect();
            intent.insert("history".into(), serde_json::Value::Array(history));
        }
        if let Some(preferences) = &raw.preferences {
            intent.insert("preferences".into(), toml_to_json(&toml::Value::Table(preferences.clone())));
        }
        Some(Example { name: raw.name.get_ref().clone(), line, at, intent: serde_json::Value::Object(intent), expect })
    }
}

/// Parses an RFC 3339 instant with an explicit offset.
pub fn parse_instant(text: &str) -> Result<DateTime<Utc>, String> {
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| format!("{text:?} is not an RFC 3339 instant with an offset (e.g. 2026-11-27T19:59:00-05:00)"))
}

/// Converts TOML to JSON, writing TOML date-times as RFC 3339 strings.
fn toml_to_json(value: &toml::Value) -> serde_json::Value {
    use serde_json::Value as J;
    match value {
        toml::Value::String(s) => J::String(s.clone()),
        toml::Value::Integer(i) => J::from(*i),
        toml::Value::Float(f) => J::from(*f),
        toml::Value::Boolean(b) => J::Bool(*b),
        toml::Value::Datetime(d) => J::String(d.to_string()),
        toml::Value::Array(items) => J::Array(items.iter().map(toml_to_json).collect()),
        toml::Value::Table(table) => J::Object(table.iter().map(|(k, v)| (k.clone(), toml_to_json(v))).collect()),
    }
}
