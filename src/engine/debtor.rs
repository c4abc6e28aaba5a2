//! The debtor as a rule layer: what they designated (inconvenient times,
//! dates and contact points, waking hours) becomes window rules and bans
//! that the engine intersects with the law's, each citing the law that makes
//! it binding where the rules in force name one. One response through the
//! same channel may go at a designated time or place the debtor themselves
//! used, where a rule file allows it.

use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use chrono_tz::Tz;

use super::windows::{Edge, WindowConstraint, local_to_utc};
use crate::domain::{
    ContactEvent, ContactPoint, ContactPointKind, Designated, Designation, DesignationKind, Initiator, Intent,
    Preferences,
};
use crate::rules::file::Basis;
use crate::rules::{ChannelSet, ContactPoints, DebtorWindow, ResponseRule, RuleMeta, RuleVersion, WindowRule};

/// How long after the debtor's own contact from a designated contact point
/// the one response to it may go ("at that place": promptly, not months later).
const RESPONSE_TO_A_PLACE_HOURS: i64 = 24;

/// What a designation's reasons cite when no rule in force names a law for it.
const UNBOUND: &str = "the debtor's own statement (no rule in force names a law making it binding; Ventana honours it)";

/// The rule behind a designation: the law that makes its kind binding, or
/// the debtor's word alone.
fn meta(designated: &Designated, intent: &Intent, versions: &[&RuleVersion]) -> Arc<RuleMeta> {
    let kind = designated.designation.kind();
    // The most specific layer's law first (a state's waking-hours rule over the federal one).
    let binding = versions.iter().rev().flat_map(|v| &v.designations).find(|r| r.kinds.contains(&kind));
    Arc::new(match binding {
        Some(rule) => RuleMeta {
            id: designated.rule_id.clone(),
            citation: rule.meta.citation.clone(),
            description: designated.description.clone(),
            basis: Basis::Law,
            jurisdiction: rule.meta.jurisdiction.clone(),
            version: rule.meta.version.clone(),
            file: rule.meta.file.clone(),
            line: rule.meta.line,
        },
        None => RuleMeta {
            id: designated.rule_id.clone(),
            citation: UNBOUND.into(),
            description: designated.description.clone(),
            basis: Basis::Recommended,
            jurisdiction: intent.jurisdiction.as_str().into(),
            version: "".into(),
            file: "".into(),
            line: 0,
        },
    })
}

/// The window rule a time, date or waking-hours designation makes; `None`
/// for a contact-point designation or one that does not cover the channel.
fn window(designated: &Designated, intent: &Intent, versions: &[&RuleVersion]) -> Option<WindowRule> {
    let designation = &designated.designation;
    if !designation.covers(intent.channel) {
        return None;
    }
    let closed = match designation {
        Designation::InconvenientContactPoint { .. } => return None,
        Designation::InconvenientDates { from, to, .. } => vec![(*from, *to)],
        Designation::InconvenientTimes { .. } | Designation::WakingHours { .. } => Vec::new(),
    };
    Some(WindowRule {
        meta: meta(designated, intent, versions),
        channels: ChannelSet::ALL,
        days: designated.hours.clone(),
        contact_points: ContactPoints::default(),
        debtor: Some(DebtorWindow { closed, opened: None }),
    })
}

/// The response rule in force for the intent's channel and the debtor's
/// own contact it may answer: the latest contact on that channel (and to
/// that contact point, when both name one), if the debtor started it.
fn answerable<'h>(
    intent: &Intent,
    versions: &[&'h RuleVersion],
    history: &'h [ContactEvent],
) -> Option<(&'h ResponseRule, &'h ContactEvent)> {
    let rule = versions.iter().flat_map(|v| &v.responses).find(|r| r.channels.contains(intent.channel))?;
    let same_place = |e: &ContactEvent| match (&e.contact_point, &intent.contact_point) {
        (Some(theirs), Some(ours)) => theirs.may_be(ours),
        _ => true,
    };
    let latest = history.iter().filter(|e| e.channel == intent.channel && same_place(e)).max_by_key(|e| e.at)?;
    (latest.initiator == Initiator::Debtor).then_some((rule, latest))
}

/// The debtor's windows for this intent. A time or date designation the
/// debtor's own contact fell in is opened from that contact until it
/// would allow contact again, for the one response a rule allows.
pub fn windows(
    intent: &Intent,
    versions: &[&RuleVersion],
    history: &[ContactEvent],
    preferences: &Preferences,
    zones: &[Tz],
) -> Vec<WindowRule> {
    if preferences.designations.is_empty() {
        return Vec::new();
    }
    let inbound = answerable(intent, versions, history).map(|(_, inbound)| inbound);
    preferences
        .designations
        .iter()
        .filter_map(|designated| {
            let mut rule = window(designated, intent, versions)?;
            let answerable = matches!(
                designated.designation.kind(),
                DesignationKind::InconvenientTimes | DesignationKind::InconvenientDates
            );
            // Only a time the debtor had designated before reaching out.
            let previously = |inbound: &&ContactEvent| designated.at.is_none_or(|said| said <= inbound.at);
            if let Some(inbound) = inbound.filter(|_| answerable).filter(previously) {
                // "At that time": until the designated stretch ends, and never
                // past the end of the debtor's local day.
                let reopens = zones
                    .iter()
                    .map(|zone| {
                        let day_ends = end_of_local_day(*zone, inbound.at);
                        WindowConstraint { rule: &rule, zone: *zone }
                            .interval_after(inbound.at, &[], day_ends)
                            .map_or(day_ends, |(start, _)| start.max(inbound.at).min(day_ends))
                    })
                    .min()
                    .filter(|end| *end > inbound.at);
                if let (Some(end), Some(debtor)) = (reopens, rule.debtor.as_mut()) {
                    debtor.opened = Some((inbound.at, end));
                }
            }
            Some(rule)
        })
        .collect()
}

/// The first instant of the local day after `t`'s in `zone`.
fn end_of_local_day(zone: Tz, t: DateTime<Utc>) -> DateTime<Utc> {
    let next = t.with_timezone(&zone).date_naive().succ_opt();
    next.and_then(|day| local_to_utc(zone, day, 0, Edge::Start)).unwrap_or(t)
}

/// A reason for a contact released inside a debtor window's opening.
pub fn response_reason(
    intent: &Intent,
    versions: &[&RuleVersion],
    history: &[ContactEvent],
    slot: DateTime<Utc>,
    rules: &[WindowRule],
) -> Option<(Arc<RuleMeta>, String)> {
    if rules.iter().all(|r| r.debtor.as_ref().is_none_or(|d| d.opened.is_none())) {
        return None;
    }
    let (rule, inbound) = answerable(intent, versions, history)?;
    let opened = rules.iter().filter_map(|r| r.debtor.as_ref()?.opened).any(|(start, end)| start <= slot && slot < end);
    opened.then(|| (rule.meta.clone(), response_message(rule, inbound)))
}

fn response_message(rule: &ResponseRule, inbound: &ContactEvent) -> String {
    format!(
        "{}: the debtor started a {} contact at {}, at a time or place they designated inconvenient; one response through the same channel may go",
        rule.meta.description,
        inbound.channel,
        inbound.at.to_rfc3339()
    )
}

/// The debtor's contact-point designation this intent would break, with the
/// rule behind it; `None` when none does, or when it answers the debtor's
/// own contact from that contact point (the one response).
pub fn refused_contact_point(
    intent: &Intent,
    versions: &[&RuleVersion],
    history: &[ContactEvent],
    preferences: &Preferences,
    now: DateTime<Utc>,
) -> Option<(Arc<RuleMeta>, String)> {
    let refused = |point: &ContactPoint| match &intent.contact_point {
        Some(ours) => ours.may_be(point),
        None => point.kind.reachable_by(intent.channel),
    };
    let (designated, point) = preferences.designations.iter().find_map(|d| match &d.designation {
        Designation::InconvenientContactPoint { contact_point, .. }
            if d.designation.covers(intent.channel) && refused(contact_point) =>
        {
            Some((d, contact_point))
        }
        _ => None,
    })?;
    // The one response to the debtor's own contact from that place: promptly,
    // to a place designated before it, never to a workplace (an employer's
    // prohibition, 1006.6(b)(3), is not the debtor's to lift).
    let workplace = matches!(point.kind, ContactPointKind::WorkPhone | ContactPointKind::WorkAddress);
    if let (Some((_, inbound)), Some(ours)) = (answerable(intent, versions, history), &intent.contact_point)
        && !workplace
        && inbound.contact_point.as_ref().is_some_and(|theirs| theirs.may_be(ours))
        && designated.at.is_none_or(|said| said <= inbound.at)
        && now < inbound.at + Duration::hours(RESPONSE_TO_A_PLACE_HOURS)
    {
        return None;
    }
    let meta = meta(designated, intent, versions);
    let message = match &intent.contact_point {
        Some(point) => format!("{}: the intent goes to {point}", meta.description),
        None => format!(
            "{}: the intent does not say which contact point it goes to, and a {} may reach it",
            meta.description, intent.channel
        ),
    };
    Some((meta, message))
}
