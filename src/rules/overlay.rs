//! Checks that overlays (subdivision files and tenant policies) only narrow
//! the layers beneath them. Layers combine by intersection, so a looser
//! overlay rule would be silently ineffective: refusing it tells the
//! compliance officer their file does not mean what they think.

use std::collections::HashSet;

use chrono::NaiveDate;

use super::file::TimeRange;
use super::model::*;
use super::{Problem, RuleBook};
use crate::domain::{Channel, Party, Stage};

/// Intersection of two sorted, disjoint range lists.
pub fn intersect(a: &[TimeRange], b: &[TimeRange]) -> Vec<TimeRange> {
    let mut out = Vec::new();
    for x in a {
        for y in b {
            let (start, end) = (x.start.max(y.start), x.end.min(y.end));
            if start < end {
                out.push(TimeRange { start, end });
            }
        }
    }
    out.sort();
    out
}

/// Whether every minute of `inner` is inside `outer`.
fn covers(outer: &[TimeRange], inner: &[TimeRange]) -> bool {
    let total = |ranges: &[TimeRange]| ranges.iter().map(|r| u32::from(r.end - r.start)).sum::<u32>();
    total(&intersect(inner, outer)) == total(inner)
}

fn ranges_text(ranges: &[TimeRange]) -> String {
    if ranges.is_empty() {
        return "no contact".into();
    }
    ranges.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
}

/// Versions of `file` whose validity overlaps `[from, until)`.
fn overlapping(file: &Jurisdiction, from: NaiveDate, until: Option<NaiveDate>) -> impl Iterator<Item = &RuleVersion> {
    file.versions.iter().enumerate().filter_map(move |(i, v)| {
        let v_until = file.versions.get(i + 1).map(|n| n.effective_from);
        let starts_before_end = until.is_none_or(|u| v.effective_from < u);
        let ends_after_start = v_until.is_none_or(|u| u > from);
        (starts_before_end && ends_after_start).then_some(v)
    })
}

/// Every problem with every overlay in the book.
pub fn check_layers(book: &RuleBook) -> Vec<Problem> {
    let mut problems = Vec::new();
    for overlay in book.jurisdictions() {
        if !overlay.is_overlay() {
            continue;
        }
        let country = overlay.country();
        let mut parents: Vec<&Jurisdiction> = Vec::new();
        match book.jurisdictions.get(country) {
            Some(c) => parents.push(c),
            None => {
                problems.push(Problem::new(
                    &overlay.file,
                    1,
                    format!("{} narrows {country}, but no file defines {country}", overlay.code),
                ));
                continue;
            }
        }
        if overlay.tenant.is_some() && overlay.code.as_ref() != country {
            match book.jurisdictions.get(overlay.code.as_ref()) {
                Some(sub) => parents.push(sub),
                None if parents[0].subdivisions.contains_key(overlay.code.split_once('-').map_or("", |p| p.1)) => {}
                None => problems.push(Problem::new(&overlay.file, 1, format!("unknown jurisdiction {}", overlay.code))),
            }
        }
        let parent_ids: HashSet<&str> =
            parents.iter().flat_map(|p| p.versions.iter()).flat_map(|v| rule_metas(v).map(|m| m.id.as_ref())).collect();
        for (index, version) in overlay.versions.iter().enumerate() {
            let until = overlay.versions.get(index + 1).map(|n| n.effective_from);
            for meta in rule_metas(version) {
                if parent_ids.contains(meta.id.as_ref()) {
                    problems.push(problem(
                        meta,
                        format!(
                            "rule id {:?} is already used by {}: an overlay adds rules, it cannot replace them",
                            meta.id, parents[0].code
                        ),
                    ));
                }
            }
            for parent in &parents {
                for parent_version in overlapping(parent, version.effective_from, until) {
                    check_version(version, parent_version, &parent.code, &mut problems);
                }
            }
        }
    }
    problems.sort_by(|a, b| (&a.file, a.line).cmp(&(&b.file, b.line)));
    problems
}

fn rule_metas(version: &RuleVersion) -> impl Iterator<Item = &RuleMeta> {
    version
        .windows
        .iter()
        .map(|r| r.meta.as_ref())
        .chain(version.caps.iter().map(|r| r.meta.as_ref()))
        .chain(version.cooldowns.iter().map(|r| r.meta.as_ref()))
        .chain(version.parties.iter().map(|r| r.meta.as_ref()))
        .chain(version.stage_channels.iter().map(|r| r.meta.as_ref()))
}

fn problem(meta: &RuleMeta, message: String) -> Problem {
    Problem::new(&meta.file, meta.line, message)
}

fn check_version(overlay: &RuleVersion, parent: &RuleVersion, parent_code: &str, problems: &mut Vec<Problem>) {
    let loosens = |what: String| {
        format!(
            "{what}, looser than {parent_code} ({}): layers combine by intersection, so an overlay can only narrow its parent",
            parent.label
        )
    };
    for window in &overlay.windows {
        'channels: for channel in window.channels.iter() {
            for (day, ranges) in window.days.iter().enumerate() {
                let allowed = allowed_ranges(&[parent], channel, day);
                if !covers(&allowed, ranges) {
                    problems.push(problem(
                        &window.meta,
                        loosens(format!(
                            "window {:?} allows {channel} on {} at {}, but the parent allows {}",
                            window.meta.id,
                            DAY_NAMES[day],
                            ranges_text(ranges),
                            ranges_text(&allowed)
                        )),
                    ));
                    continue 'channels;
                }
            }
        }
    }
    for cap in &overlay.caps {
        for p in &parent.caps {
            let same_kind =
                (cap.scope, cap.counts, cap.period, cap.channels) == (p.scope, p.counts, p.period, p.channels);
            let looser = |ours: Option<u32>, theirs: Option<u32>| matches!((ours, theirs), (Some(o), Some(t)) if o > t);
            if same_kind && (looser(cap.limit, p.limit) || looser(cap.max_channels, p.max_channels)) {
                problems.push(problem(
                    &cap.meta,
                    loosens(format!("cap {:?} allows more than {:?}", cap.meta.id, p.meta.id)),
                ));
            }
            if cap.channels == p.channels
                && cap.scope == p.scope
                && matches!((cap.min_gap, p.min_gap), (Some(o), Some(t)) if o < t)
            {
                problems.push(problem(
                    &cap.meta,
                    loosens(format!("cap {:?} asks a shorter gap than {:?}", cap.meta.id, p.meta.id)),
                ));
            }
        }
    }
    for cooldown in &overlay.cooldowns {
        for p in &parent.cooldowns {
            let same_kind = (&cooldown.after, cooldown.after_channels, cooldown.channels, cooldown.scope)
                == (&p.after, p.after_channels, p.channels, p.scope);
            if same_kind && cooldown.length.can_end_before(p.length) {
                problems.push(problem(
                    &cooldown.meta,
                    loosens(format!("cooldown {:?} is shorter than {:?}", cooldown.meta.id, p.meta.id)),
                ));
            }
        }
    }
    let parent_parties: Vec<Party> =
        Party::ALL.iter().copied().filter(|party| parent.parties.iter().all(|p| p.allowed.contains(party))).collect();
    for rule in &overlay.parties {
        if let Some(extra) = rule.allowed.iter().find(|p| !parent_parties.contains(p)) {
            problems
                .push(problem(&rule.meta, loosens(format!("party rule {:?} allows contacting {extra}", rule.meta.id))));
        }
    }
    for rule in &overlay.stage_channels {
        for stage in &rule.stages {
            let allowed = stage_channels_allowed(parent, *stage);
            if let Some(extra) = rule.channels.iter().find(|c| !allowed.contains(*c)) {
                problems.push(problem(
                    &rule.meta,
                    loosens(format!("stage rule {:?} allows {extra} at the {stage} stage", rule.meta.id)),
                ));
            }
        }
    }
}

/// Channels the stage rules of `version` allow at `stage`.
pub fn stage_channels_allowed(version: &RuleVersion, stage: Stage) -> ChannelSet {
    version
        .stage_channels
        .iter()
        .filter(|r| r.stages.contains(&stage))
        .fold(Channel::ALL.iter().copied().collect(), |acc: ChannelSet, r| {
            acc.iter().filter(|c| r.channels.contains(*c)).collect()
        })
}

/// Local ranges on day type `day` that every window rule of `versions`
/// covering `channel` allows.
pub fn allowed_ranges(versions: &[&RuleVersion], channel: Channel, day: usize) -> Vec<TimeRange> {
    versions
        .iter()
        .flat_map(|v| v.windows.iter().filter(|w| w.channels.contains(channel)))
        .fold(vec![TimeRange { start: 0, end: 1440 }], |allowed, w| intersect(&allowed, &w.days[day]))
}
