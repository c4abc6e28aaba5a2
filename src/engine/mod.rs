//! The pure decision engine: given an intent, the rules that apply, the
//! contact history and an instant, decide Release, Defer or Reject, with the
//! reasons. No I/O, no clock, no randomness.

mod debtor;
mod limits;
pub mod windows;

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use chrono_tz::Tz;
use serde::Serialize;

use crate::domain::{ContactEvent, Intent, Preferences};
use crate::rules::file::TimeRange;
use crate::rules::holidays::HolidayCalendar;
use crate::rules::{ContactPoints, DAY_NAMES, Resolved, RuleMeta, RuleVersion};
use windows::{WindowConstraint, next_common_slot};

/// How far ahead the engine looks for a compliant instant.
pub const SEARCH_HORIZON_DAYS: i64 = 92;

/// Most window-then-limits rounds one evaluation may take.
const MAX_ROUNDS: usize = 1_000;

/// Why an intent was rejected outright.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum RejectCode {
    /// The recipient is a party the rules forbid contacting.
    PartyNotAllowed,
    /// The channel is not allowed at this collection stage.
    ChannelNotAllowed,
    /// No compliant instant before `expires_at` or the search horizon.
    NoCompliantSlot,
    /// No version of the jurisdiction's rules is in force on that date.
    NoRulesInForce,
    /// The debtor opted out of this channel (or of all).
    OptedOut,
    /// The debtor chose other channels.
    ChannelNotChosen,
    /// This channel's contact point reached someone else before.
    WrongParty,
    /// The rules forbid this kind of contact point for the channel.
    ContactPointNotAllowed,
    /// The debtor designated this contact point inconvenient.
    ContactPointRefused,
}

impl RejectCode {
    pub fn as_str(self) -> &'static str {
        match self {
            RejectCode::PartyNotAllowed => "PARTY_NOT_ALLOWED",
            RejectCode::ChannelNotAllowed => "CHANNEL_NOT_ALLOWED",
            RejectCode::NoCompliantSlot => "NO_COMPLIANT_SLOT",
            RejectCode::NoRulesInForce => "NO_RULES_IN_FORCE",
            RejectCode::OptedOut => "OPTED_OUT",
            RejectCode::ChannelNotChosen => "CHANNEL_NOT_CHOSEN",
            RejectCode::WrongParty => "WRONG_PARTY",
            RejectCode::ContactPointNotAllowed => "CONTACT_POINT_NOT_ALLOWED",
            RejectCode::ContactPointRefused => "CONTACT_POINT_REFUSED",
        }
    }
}

impl fmt::Display for RejectCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What to do with the intent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    Release,
    Defer { until: DateTime<Utc> },
    Reject { code: RejectCode },
}

/// One reason behind a decision: the rule and a sentence a person understands.
#[derive(Clone, Debug, PartialEq)]
pub struct Reason {
    /// The rule; `None` for reasons that come from the intent itself.
    pub rule: Option<Arc<RuleMeta>>,
    detail: Detail,
}

/// What a reason says, rendered into a sentence only when asked (decisions
/// are the hot path; their sentences are read far less often).
#[derive(Clone, Debug, PartialEq)]
enum Detail {
    Text(String),
    InsideWindow {
        at: DateTime<Utc>,
        zone: Tz,
    },
    /// `at` is outside the rule's hours for its day type (`day`), which is
    /// a public holiday when `holiday` names one.
    OutsideWindow {
        at: DateTime<Utc>,
        zone: Tz,
        day: usize,
        holiday: Option<Arc<str>>,
        hours: Vec<TimeRange>,
    },
}

impl Reason {
    fn text(rule: Option<&Arc<RuleMeta>>, message: String) -> Reason {
        Reason { rule: rule.cloned(), detail: Detail::Text(message) }
    }

    /// The sentence a person reads.
    pub fn message(&self) -> String {
        match &self.detail {
            Detail::Text(text) => text.clone(),
            Detail::InsideWindow { at, zone } => {
                let description = self.rule.as_ref().map_or("", |r| r.description.as_ref());
                format!("{description}: {} is inside the allowed hours", local(*at, *zone))
            }
            Detail::OutsideWindow { at, zone, day, holiday, hours } => {
                let description = self.rule.as_ref().map_or("", |r| r.description.as_ref());
                let allowed = if hours.is_empty() {
                    "no contact".to_string()
                } else {
                    hours.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
                };
                let when = match holiday {
                    Some(name) => format!("{} is a public holiday ({name})", at.with_timezone(zone).date_naive()),
                    None => format!("it is {}", local(*at, *zone)),
                };
                format!("{description}: {when}; allowed on {}: {allowed}", DAY_NAMES[*day])
            }
        }
    }
}

/// A decision with its reasons.
#[derive(Clone, Debug, PartialEq)]
pub struct Decision {
    pub verdict: Verdict,
    pub reasons: Vec<Reason>,
    /// For a release or defer: when the allowed window it falls in closes.
    pub window_end: Option<DateTime<Utc>>,
}

impl Decision {
    fn reject(code: RejectCode, reasons: Vec<Reason>) -> Decision {
        Decision { verdict: Verdict::Reject { code }, reasons, window_end: None }
    }

    /// The instant the contact may go, for a release (`now`) or a defer.
    pub fn at(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        match self.verdict {
            Verdict::Release => Some(now),
            Verdict::Defer { until } => Some(until),
            Verdict::Reject { .. } => None,
        }
    }
}

fn reason(rule: &Arc<RuleMeta>, message: String) -> Reason {
    Reason::text(Some(rule), message)
}

fn local(t: DateTime<Utc>, zone: Tz) -> String {
    t.with_timezone(&zone).format("%A %Y-%m-%d %H:%M").to_string() + " " + zone.name()
}

/// Evaluates `intent` against the `rules` that apply to it, given the
/// debtor's contact `history` and `preferences`, at instant `now`.
pub fn evaluate(
    intent: &Intent,
    rules: &Resolved<'_>,
    history: &[ContactEvent],
    preferences: &Preferences,
    now: DateTime<Utc>,
) -> Decision {
    let mut decision = decide(intent, rules, history, preferences, now);
    if let Some(reason) = foreign_zone_reason(intent, rules) {
        decision.reasons.insert(0, reason);
    }
    decision
}

fn decide(
    intent: &Intent,
    rules: &Resolved<'_>,
    history: &[ContactEvent],
    preferences: &Preferences,
    now: DateTime<Utc>,
) -> Decision {
    if let Some(rejection) = preference_bans(intent, preferences) {
        return rejection;
    }
    let zones = candidate_zones(intent, rules);
    let zones: &[Tz] = &zones;
    let start = intent.not_before.map_or(now, |nb| nb.max(now));
    let Some(&first_zone) = zones.first() else {
        return Decision::reject(
            RejectCode::NoRulesInForce,
            vec![Reason::text(None, "no time zone is known for the recipient".into())],
        );
    };
    let horizon = start + Duration::days(SEARCH_HORIZON_DAYS);
    let limit = intent.expires_at.map_or(horizon, |e| e.min(horizon));
    if limit <= start {
        let message = format!("the intent expired at {} before it could go", limit.to_rfc3339());
        return Decision::reject(RejectCode::NoCompliantSlot, vec![Reason::text(None, message)]);
    }

    let date = start.with_timezone(&first_zone).date_naive();
    let mut versions: Vec<&RuleVersion> = Vec::with_capacity(rules.layers.len());
    for (index, layer) in rules.layers.iter().enumerate() {
        match layer.version_on(date) {
            Some(v) => versions.push(v),
            None if index == 0 => {
                let message = format!("no version of {} rules is in force on {date}", layer.code);
                return Decision::reject(RejectCode::NoRulesInForce, vec![Reason::text(None, message)]);
            }
            None => {}
        }
    }

    if let Some(rejection) = hard_bans(intent, &versions) {
        return rejection;
    }
    if let Some((meta, message)) = debtor::refused_contact_point(intent, &versions, history, preferences, now) {
        return Decision::reject(RejectCode::ContactPointRefused, vec![reason(&meta, message)]);
    }

    let calendars = rules.calendars();
    let debtor_windows = debtor::windows(intent, &versions, history, preferences, zones);
    let law_windows = versions.iter().flat_map(|v| &v.windows).filter(|w| {
        w.channels.contains(intent.channel) && w.contact_points.apply_to(intent.channel, intent.contact_point.as_ref())
    });
    let constraints: Vec<WindowConstraint<'_>> = law_windows
        .chain(&debtor_windows)
        .flat_map(|rule| zones.iter().map(move |zone| WindowConstraint { rule, zone: *zone }))
        .collect();

    let dated = limits::History::new(history, zones);
    let mut held: Vec<Reason> = Vec::new();
    let mut t = start;
    // Each round moves `t` strictly forward to an instant some cap or
    // cooldown names; the bound only guards against pathological rules.
    for _ in 0..MAX_ROUNDS {
        let Some((slot, window_end)) = next_common_slot(&constraints, &calendars, t, limit) else {
            return no_slot(intent, start, limit, &constraints, &calendars, held);
        };
        if slot >= limit {
            return no_slot(intent, start, limit, &constraints, &calendars, held);
        }
        // A rule's message is written the first time it holds the contact.
        let explain = |rule: &Arc<RuleMeta>| !names(&held, rule);
        let caps = versions
            .iter()
            .flat_map(|v| &v.caps)
            .filter_map(|c| limits::cap_block(c, intent, &dated, &preferences.consents, slot, explain(&c.meta)));
        let cooldowns = versions
            .iter()
            .flat_map(|v| &v.cooldowns)
            .filter_map(|c| limits::cooldown_block(c, intent, &dated, slot, explain(&c.meta)));
        let blocks: Vec<limits::Block<'_>> = caps.chain(cooldowns).collect();
        if let Some(latest) = blocks.iter().map(|b| b.until).max() {
            for block in blocks {
                if !names(&held, block.rule) {
                    held.push(reason(block.rule, format!("{}: {}", block.rule.description, block.message)));
                }
            }
            // Every block ends after `slot`, so this always moves forward.
            t = latest;
            continue;
        }
        let response = debtor::response_reason(intent, &versions, history, slot, &debtor_windows)
            .map(|(meta, message)| reason(&meta, message));
        if slot == now {
            let mut reasons: Vec<Reason> = constraints
                .iter()
                .map(|c| Reason {
                    rule: Some(c.rule.meta.clone()),
                    detail: Detail::InsideWindow { at: slot, zone: c.zone },
                })
                .collect();
            reasons.extend(response);
            return Decision { verdict: Verdict::Release, reasons, window_end };
        }
        let mut reasons = window_reasons(&constraints, &calendars, start);
        reasons.extend(response);
        if intent.not_before.is_some_and(|nb| nb > now) && reasons.is_empty() && held.is_empty() {
            reasons.push(Reason::text(None, format!("the intent asks not to be sent before {}", start.to_rfc3339())));
        }
        reasons.extend(held);
        return Decision { verdict: Verdict::Defer { until: slot }, reasons, window_end };
    }
    no_slot(intent, start, limit, &constraints, &calendars, held)
}

/// Whether one of `reasons` is `rule`'s.
fn names(reasons: &[Reason], rule: &Arc<RuleMeta>) -> bool {
    reasons.iter().any(|r| r.rule.as_ref().is_some_and(|m| Arc::ptr_eq(m, rule)))
}

/// The time zones the recipient may be in; the contact must be allowed in
/// all of them. The intent's own zones (e.g. from a phone number) are
/// combined with the named subdivision's (e.g. from an address). With only a
/// country named, zones of that country (knowledge of where the debtor is)
/// replace the country's default list; a zone foreign to the country cannot
/// replace the law's zones, so then the default list binds as well.
pub fn candidate_zones<'a>(intent: &'a Intent, rules: &Resolved<'a>) -> Cow<'a, [Tz]> {
    if intent.time_zones.is_empty() {
        return Cow::Borrowed(rules.default_zones);
    }
    if !rules.subdivision && foreign_zones(intent, rules).next().is_none() {
        return Cow::Borrowed(&intent.time_zones);
    }
    let mut zones = rules.default_zones.to_vec();
    zones.extend(intent.time_zones.iter().filter(|z| !rules.default_zones.contains(z)));
    Cow::Owned(zones)
}

/// The intent's zones that none of its country's files name.
fn foreign_zones<'r>(intent: &'r Intent, rules: &'r Resolved<'_>) -> impl Iterator<Item = &'r Tz> {
    intent.time_zones.iter().filter(|z| !rules.own_zones.contains(z))
}

/// Says why the jurisdiction's own zones bound although the intent named others.
fn foreign_zone_reason(intent: &Intent, rules: &Resolved<'_>) -> Option<Reason> {
    let foreign: Vec<&str> = foreign_zones(intent, rules).map(|z| z.name()).collect();
    if foreign.is_empty() {
        return None;
    }
    let own: Vec<&str> = rules.default_zones.iter().map(|z| z.name()).collect();
    Some(Reason::text(
        None,
        format!(
            "{} not a time zone of {}: the contact must also be allowed in {}'s own zones ({})",
            if foreign.len() == 1 { format!("{} is", foreign[0]) } else { format!("{} are", foreign.join(", ")) },
            intent.jurisdiction,
            intent.jurisdiction,
            own.join(", ")
        ),
    ))
}

/// The debtor's own choices: bans that no waiting can lift.
fn preference_bans(intent: &Intent, preferences: &Preferences) -> Option<Decision> {
    let channel = intent.channel;
    let (code, message) = if preferences.opted_out_all || preferences.opted_out.contains(&channel) {
        (
            RejectCode::OptedOut,
            format!(
                "the debtor opted out of {}",
                if preferences.opted_out_all { "all contact".to_string() } else { channel.to_string() }
            ),
        )
    } else if preferences.wrong_party.contains(&channel) {
        (RejectCode::WrongParty, format!("the debtor's {channel} contact point reached someone else"))
    } else if !preferences.chosen.is_empty() && !preferences.chosen.contains(&channel) {
        let chosen: Vec<&str> = preferences.chosen.iter().map(|c| c.as_str()).collect();
        (RejectCode::ChannelNotChosen, format!("the debtor chose to be contacted only by {}", chosen.join(", ")))
    } else {
        return None;
    };
    Some(Decision::reject(code, vec![Reason::text(None, message)]))
}

/// Party and stage rules: bans that no waiting can lift.
fn hard_bans(intent: &Intent, versions: &[&RuleVersion]) -> Option<Decision> {
    for version in versions {
        for rule in &version.parties {
            if !rule.allowed.contains(&intent.party) {
                let message = format!("{}: contacting a {} is not allowed", rule.meta.description, intent.party);
                return Some(Decision::reject(RejectCode::PartyNotAllowed, vec![reason(&rule.meta, message)]));
            }
        }
        for rule in &version.contact_point_bans {
            if !rule.channels.contains(intent.channel) {
                continue;
            }
            let banned = match &intent.contact_point {
                Some(point) => {
                    rule.contact_points.contains(&point.kind).then(|| format!("the intent goes to a {}", point.kind))
                }
                None => rule.contact_points.iter().any(|k| k.reachable_by(intent.channel)).then(|| {
                    format!(
                        "the intent does not say which contact point it goes to, and a {} may reach a forbidden one",
                        intent.channel
                    )
                }),
            };
            if let Some(why) = banned {
                let kinds = ContactPoints(Some(rule.contact_points.clone()));
                let message = format!("{}: no {} to {kinds}; {why}", rule.meta.description, intent.channel);
                return Some(Decision::reject(RejectCode::ContactPointNotAllowed, vec![reason(&rule.meta, message)]));
            }
        }
        for rule in &version.stage_channels {
            if rule.stages.contains(&intent.stage) && !rule.channels.contains(intent.channel) {
                let message = format!(
                    "{}: {} is not allowed at the {} stage (allowed: {})",
                    rule.meta.description, intent.channel, intent.stage, rule.channels
                );
                return Some(Decision::reject(RejectCode::ChannelNotAllowed, vec![reason(&rule.meta, message)]));
            }
        }
    }
    None
}

/// Why each window rule does not allow `t` (empty when all allow it).
fn window_reasons(
    constraints: &[WindowConstraint<'_>],
    calendars: &[&HolidayCalendar],
    t: DateTime<Utc>,
) -> Vec<Reason> {
    constraints
        .iter()
        .filter(|c| !c.allows(t, calendars))
        .map(|c| {
            let (day, holiday, hours) = c.rule.hours_on(t.with_timezone(&c.zone).date_naive(), calendars);
            Reason {
                rule: Some(c.rule.meta.clone()),
                detail: Detail::OutsideWindow {
                    at: t,
                    zone: c.zone,
                    day,
                    holiday: holiday.map(|h| h.label().into()),
                    hours: hours.to_vec(),
                },
            }
        })
        .collect()
}

fn no_slot(
    intent: &Intent,
    start: DateTime<Utc>,
    limit: DateTime<Utc>,
    constraints: &[WindowConstraint<'_>],
    calendars: &[&HolidayCalendar],
    held: Vec<Reason>,
) -> Decision {
    let bound = if intent.expires_at.is_some_and(|e| e <= limit) {
        "before the intent expires"
    } else {
        "within the search horizon"
    };
    let message =
        format!("no instant between {} and {} ({bound}) satisfies every rule", start.to_rfc3339(), limit.to_rfc3339());
    let mut reasons = vec![Reason::text(None, message)];
    reasons.extend(window_reasons(constraints, calendars, start));
    reasons.extend(held);
    Decision::reject(RejectCode::NoCompliantSlot, reasons)
}
