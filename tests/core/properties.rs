//! Property tests of the engine over the real jurisdiction files, checked
//! against a minute-level reference written independently of the engine's
//! interval search: releases are always allowed, defers are allowed and the
//! earliest such instant, and caps are never exceeded.

use chrono::{DateTime, Datelike, Duration, Months, NaiveDate, Timelike, Utc};
use chrono_tz::Tz;
use proptest::prelude::*;
use ventana::domain::{
    Channel, ContactEvent, DayOfWeek, Designated, Designation, Initiator, Intent, Outcome, Preferences, Stage,
    TimeRange,
};
use ventana::engine::{Verdict, evaluate};
use ventana::rules::file::{CalendarPeriod, Counts, Scope};
use ventana::rules::{CooldownLength, HOLIDAY, Period, Resolved, RuleVersion, allowed_ranges};

use crate::decide::*;

/// Jurisdiction codes exercised: every file plus subdivisions known by zone.
fn codes() -> Vec<(String, String)> {
    let mut codes: Vec<(String, String)> = book()
        .jurisdictions()
        .iter()
        .map(|j| (j.tenant.clone().unwrap_or_else(|| "t1".into()), j.code.to_string()))
        .collect();
    for (tenant, code) in codes.clone() {
        if let Some(j) = book().get(&code) {
            codes.extend(j.subdivisions.keys().take(4).map(|sub| (tenant.clone(), format!("{code}-{sub}"))));
        }
    }
    codes.sort();
    codes.dedup();
    codes
}

fn zones(intent: &Intent, rules: &Resolved<'_>) -> Vec<Tz> {
    ventana::engine::candidate_zones(intent, rules).into_owned()
}

fn versions<'a>(intent: &Intent, rules: &Resolved<'a>, start: DateTime<Utc>) -> Vec<&'a RuleVersion> {
    let date = start.with_timezone(&zones(intent, rules)[0]).date_naive();
    rules.layers.iter().filter_map(|l| l.version_on(date)).collect()
}

/// Reference: is `t` inside the allowed hours in every candidate zone?
fn window_ok(intent: &Intent, rules: &Resolved<'_>, versions: &[&RuleVersion], t: DateTime<Utc>) -> bool {
    zones(intent, rules).iter().all(|zone| {
        let local = t.with_timezone(zone);
        let date = local.date_naive();
        // Every layer's holidays and, for a region-less code, every region's.
        let mut calendars = rules.layers.iter().map(|l| &l.holidays).chain(rules.regional_holidays.iter().copied());
        let holiday = calendars.any(|c| c.on(date).is_some());
        let day = if holiday { HOLIDAY } else { date.weekday().num_days_from_monday() as usize };
        let second = local.num_seconds_from_midnight();
        allowed_ranges(versions, intent.channel, day)
            .iter()
            .any(|r| second >= u32::from(r.start) * 60 && second < u32::from(r.end) * 60)
    })
}

fn local_midnight(zone: &Tz, date: NaiveDate) -> DateTime<Utc> {
    // The reference walks minute by minute from the previous day: no gap logic.
    let mut t = (date - Duration::days(1)).and_hms_opt(12, 0, 0).expect("noon").and_utc() - Duration::hours(14);
    while t.with_timezone(zone).date_naive() < date {
        t += Duration::minutes(1);
    }
    t
}

/// Reference: does a contact at `t` respect every cap and cooldown?
fn limits_ok(
    intent: &Intent,
    zones: &[Tz],
    versions: &[&RuleVersion],
    history: &[ContactEvent],
    t: DateTime<Utc>,
) -> bool {
    versions.iter().all(|v| {
        let caps_ok = v.caps.iter().filter(|c| c.channels.contains(intent.channel)).all(|cap| {
            let counted: Vec<&ContactEvent> = history
                .iter()
                .filter(|e| cap.channels.contains(e.channel))
                .filter(|e| cap.scope != Scope::DebtorChannel || e.channel == intent.channel)
                .filter(|e| {
                    cap.counts == Counts::Attempts || matches!(e.outcome, Outcome::Delivered | Outcome::Conversation)
                })
                .collect();
            let fits = |events: &[&ContactEvent]| {
                let mut channels: Vec<Channel> = events.iter().map(|e| e.channel).collect();
                channels.sort();
                channels.dedup();
                cap.limit.is_none_or(|l| events.len() < l as usize)
                    && cap
                        .max_channels
                        .is_none_or(|m| channels.contains(&intent.channel) || channels.len() < m as usize)
            };
            let gap_ok = cap.min_gap.is_none_or(|g| counted.iter().all(|e| (t - e.at).abs() >= g.to_chrono()));
            let period_ok = match cap.period {
                None => true,
                Some(Period::Rolling(d)) => {
                    let inside: Vec<&ContactEvent> =
                        counted.iter().copied().filter(|e| e.at > t - d.to_chrono() && e.at <= t).collect();
                    fits(&inside)
                }
                Some(Period::Calendar(p)) => zones.iter().all(|zone| {
                    let today = t.with_timezone(zone).date_naive();
                    let (first, next) = match p {
                        CalendarPeriod::Day => (today, today + Duration::days(1)),
                        CalendarPeriod::Week => {
                            let monday = today - Duration::days(i64::from(today.weekday().num_days_from_monday()));
                            (monday, monday + Duration::days(7))
                        }
                        CalendarPeriod::Month => {
                            let first = today.with_day(1).expect("day 1");
                            (first, first + Months::new(1))
                        }
                    };
                    let (start, end) = (local_midnight(zone, first), local_midnight(zone, next));
                    let inside: Vec<&ContactEvent> =
                        counted.iter().copied().filter(|e| e.at >= start && e.at < end).collect();
                    fits(&inside)
                }),
                // `t`'s local day and the n − 1 before it, by date.
                Some(Period::LocalDays(n)) => zones.iter().all(|zone| {
                    let today = t.with_timezone(zone).date_naive();
                    let first = today - Duration::days(i64::from(n) - 1);
                    let inside: Vec<&ContactEvent> = counted
                        .iter()
                        .copied()
                        .filter(|e| (first..=today).contains(&e.at.with_timezone(zone).date_naive()))
                        .collect();
                    fits(&inside)
                }),
            };
            gap_ok && period_ok
        });
        let cooldowns_ok = v.cooldowns.iter().filter(|c| c.channels.contains(intent.channel)).all(|c| {
            history
                .iter()
                .filter(|e| c.after.contains(&e.outcome) && c.after_channels.contains(e.channel))
                .filter(|e| c.scope != Scope::DebtorChannel || e.channel == intent.channel)
                .all(|e| match c.length {
                    CooldownLength::Rolling(d) => !(e.at <= t && t < e.at + d.to_chrono()),
                    // Blocked until the local midnight that starts day n + 1 in every zone.
                    CooldownLength::LocalDays(n) => {
                        !(e.at <= t
                            && zones.iter().any(|zone| {
                                t < local_midnight(
                                    zone,
                                    e.at.with_timezone(zone).date_naive() + Duration::days(i64::from(n)),
                                )
                            }))
                    }
                })
        });
        caps_ok && cooldowns_ok
    })
}

/// A release is allowed at `now`; a deferral is allowed at its instant and
/// at none of the `minutes` before it (back to `now`): it is the earliest.
fn allowed_and_earliest(
    verdict: &Verdict,
    now: DateTime<Utc>,
    ok: impl Fn(DateTime<Utc>) -> bool,
    minutes: i64,
    case: &str,
) -> Result<(), TestCaseError> {
    match *verdict {
        Verdict::Release => prop_assert!(ok(now), "released at {now} for {case} but the reference forbids it"),
        Verdict::Defer { until } => {
            prop_assert!(until > now);
            prop_assert!(ok(until), "deferred to {until} for {case} but the reference forbids that instant");
            for minute in 1..=minutes {
                let earlier = until - Duration::minutes(minute);
                if earlier < now {
                    break;
                }
                prop_assert!(!ok(earlier), "deferred to {until} for {case} but {earlier} was already allowed");
            }
        }
        Verdict::Reject { .. } => {}
    }
    Ok(())
}

/// Reference: does `t` respect every designation in every candidate zone?
fn designations_ok(intent: &Intent, zones: &[Tz], designations: &[Designated], t: DateTime<Utc>) -> bool {
    let inside = |minute: u32, range: &TimeRange| minute >= u32::from(range.start) && minute < u32::from(range.end);
    designations.iter().filter(|d| d.designation.covers(intent.channel)).all(|d| {
        zones.iter().all(|zone| {
            let local = t.with_timezone(zone);
            let minute = local.num_seconds_from_midnight() / 60;
            match &d.designation {
                Designation::InconvenientTimes { days, hours, .. } => {
                    !days.iter().any(|day| day.index() == local.weekday().num_days_from_monday() as usize)
                        || !hours.iter().any(|h| inside(minute, h))
                }
                Designation::InconvenientDates { from, to, .. } => !(*from..=*to).contains(&local.date_naive()),
                Designation::WakingHours { hours, .. } => inside(minute, hours),
                Designation::InconvenientContactPoint { .. } => true,
            }
        })
    })
}

/// Random designations: inconvenient hours on some days, a few dates,
/// waking hours, each for every channel or for the intent's.
fn designations(now: DateTime<Utc>) -> impl Strategy<Value = Vec<Designated>> {
    let quarter = |q: u16| q * 15;
    let range = (0u16..95, 1u16..40)
        .prop_map(move |(start, length)| TimeRange { start: quarter(start), end: quarter((start + length).min(96)) });
    let days = prop::sample::subsequence(DayOfWeek::ALL.to_vec(), 1..4);
    let channels = prop::sample::subsequence(vec![Channel::Call, Channel::Sms], 0..2);
    let designation = prop_oneof![
        (days, prop::collection::vec(range.clone(), 1..3), channels.clone())
            .prop_map(|(days, hours, channels)| Designation::InconvenientTimes { days, hours, channels }),
        (-2i64..6, 0i64..3, channels.clone()).prop_map(move |(offset, length, channels)| {
            let from = (now + Duration::days(offset)).date_naive();
            Designation::InconvenientDates { from, to: from + Duration::days(length), channels }
        }),
        ((20u16..48, 56u16..96), channels).prop_map(|((start, end), channels)| Designation::WakingHours {
            hours: TimeRange { start: start * 15, end: end * 15 },
            channels,
        }),
    ];
    prop::collection::vec(designation, 1..4).prop_map(move |list| {
        list.into_iter()
            .enumerate()
            .map(|(i, designation)| Designated::new(format!("d{i}"), designation, "test".into(), Some(now)))
            .collect()
    })
}

fn instant() -> impl Strategy<Value = DateTime<Utc>> {
    // 2024-01-01 .. 2035-12-01, to the minute.
    (1_704_067_200i64 / 60..2_080_000_000i64 / 60).prop_map(|m| DateTime::from_timestamp(m * 60, 0).expect("in range"))
}

/// Every window edge (minutes after local midnight) in the book, so that
/// instants right at and around edges are drawn often.
fn edges() -> Vec<i64> {
    let mut edges: Vec<i64> = book()
        .jurisdictions()
        .iter()
        .flat_map(|j| j.versions.iter())
        .flat_map(|v| v.windows.iter())
        .flat_map(|w| w.days.iter().flatten())
        .flat_map(|r| [i64::from(r.start), i64::from(r.end)])
        .collect();
    edges.sort();
    edges.dedup();
    edges
}

/// An instant: uniform, or within two minutes of a window edge in the
/// jurisdiction's first time zone.
fn instant_near_edges(
    code: &str,
    tenant: &str,
    uniform: DateTime<Utc>,
    edge: usize,
    delta: i64,
    near: bool,
) -> DateTime<Utc> {
    if !near {
        return uniform;
    }
    let rules = book().resolve(tenant, code).expect("resolves");
    let zone = rules.default_zones[0];
    let edges = edges();
    let minute = edges[edge % edges.len()] + delta;
    let midnight = uniform.with_timezone(&zone).date_naive().and_hms_opt(0, 0, 0).expect("midnight");
    let local = midnight + Duration::minutes(minute);
    local.and_local_timezone(zone).earliest().map_or(uniform, |t| t.with_timezone(&Utc))
}

fn channel() -> impl Strategy<Value = Channel> {
    prop::sample::select(Channel::ALL.to_vec())
}

fn outcome() -> impl Strategy<Value = Outcome> {
    prop::sample::select(Outcome::ALL.to_vec())
}

fn history(now: DateTime<Utc>, events: Vec<PastEvent>) -> Vec<ContactEvent> {
    events
        .into_iter()
        .map(|(channel, minutes_ago, outcome)| ContactEvent {
            channel,
            at: now - Duration::minutes(minutes_ago),
            outcome,
            debt_id: None,
            contact_point: None,
            initiator: Initiator::Collector,
        })
        .collect()
}

/// (channel, minutes before now, outcome) of one past event.
type PastEvent = (Channel, i64, Outcome);

fn case() -> impl Strategy<Value = (usize, Channel, DateTime<Utc>, Vec<PastEvent>)> {
    let codes = codes();
    let count = codes.len();
    (
        0..count,
        channel(),
        instant(),
        0..64usize,
        -2i64..=2,
        any::<bool>(),
        prop::collection::vec((channel(), 0i64..14 * 1440, outcome()), 0..8),
    )
        .prop_map(move |(index, channel, uniform, edge, delta, near, events)| {
            let (tenant, code) = &codes[index];
            (index, channel, instant_near_edges(code, tenant, uniform, edge, delta, near), events)
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 600, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn releases_and_defers_are_allowed_and_defers_are_earliest(
        (index, channel, now, events) in case(),
        extra_seconds in 0i64..60,
    ) {
        let (tenant, code) = &codes()[index];
        let now = now + Duration::seconds(extra_seconds);
        let mut intent = intent(code, channel);
        intent.tenant = tenant.clone();
        intent.stage = Stage::Extrajudicial;
        let history = history(now, events);
        let rules = book().resolve(tenant, code).expect("resolves");
        let decision = evaluate(&intent, &rules, &history, &Preferences::default(), now);
        let versions = versions(&intent, &rules, now);
        let zones = zones(&intent, &rules);
        let ok = |t: DateTime<Utc>| window_ok(&intent, &rules, &versions, t) && limits_ok(&intent, &zones, &versions, &history, t);
        allowed_and_earliest(&decision.verdict, now, ok, 180, &format!("{code} {channel}"))?;
    }

    /// Regulation F's and Massachusetts' periods in local days across the
    /// DST changes of New York: a 23-hour or a 25-hour day inside the
    /// period, history of calls and conversations over the two weeks before.
    #[test]
    fn local_day_periods_across_dst_are_allowed_and_earliest(
        code in prop::sample::select(vec!["US-NY", "US-MA"]),
        dst_change in prop::sample::select(vec!["2026-03-08T12:00:00-04:00", "2026-11-01T12:00:00-05:00", "2027-03-14T12:00:00-04:00", "2027-11-07T12:00:00-05:00"]),
        minutes_after in -3i64 * 1440..10 * 1440,
        events in prop::collection::vec((prop::sample::select(vec![Channel::Call, Channel::Sms, Channel::Visit]), 0i64..14 * 1440, prop::sample::select(vec![Outcome::NoAnswer, Outcome::Conversation])), 0..9),
        channel in prop::sample::select(vec![Channel::Call, Channel::Sms, Channel::Visit]),
    ) {
        let now = at(dst_change) + Duration::minutes(minutes_after);
        let intent = intent(code, channel);
        let history = history(now, events);
        let rules = book().resolve(&intent.tenant, code).expect("resolves");
        let decision = evaluate(&intent, &rules, &history, &Preferences::default(), now);
        let versions = versions(&intent, &rules, now);
        let zones = zones(&intent, &rules);
        let ok = |t: DateTime<Utc>| window_ok(&intent, &rules, &versions, t) && limits_ok(&intent, &zones, &versions, &history, t);
        allowed_and_earliest(&decision.verdict, now, ok, 26 * 60, &format!("{code} {channel}"))?;
    }

    /// The debtor's designations intersected with the law: a release is
    /// allowed by both, a deferral is the first instant both allow.
    #[test]
    fn designated_windows_are_allowed_and_earliest(
        ((index, channel, now, events), designations) in case().prop_flat_map(|c| {
            let now = c.2;
            (Just(c), designations(now))
        }),
        in_us in any::<bool>(),
    ) {
        let (tenant, code) = if in_us { (String::new(), "US-NY".to_string()) } else { codes()[index].clone() };
        let channel = if matches!(channel, Channel::Call | Channel::Sms) { channel } else { Channel::Call };
        let mut intent = intent(&code, channel);
        intent.tenant = tenant.clone();
        intent.stage = Stage::Extrajudicial;
        let history = history(now, events);
        let rules = book().resolve(&tenant, &code).expect("resolves");
        let preferences = Preferences { designations: designations.clone(), ..Preferences::default() };
        let decision = evaluate(&intent, &rules, &history, &preferences, now);
        let versions = versions(&intent, &rules, now);
        let zones = zones(&intent, &rules);
        let ok = |t: DateTime<Utc>| {
            window_ok(&intent, &rules, &versions, t)
                && limits_ok(&intent, &zones, &versions, &history, t)
                && designations_ok(&intent, &zones, &designations, t)
        };
        allowed_and_earliest(&decision.verdict, now, ok, 180, &format!("{code} {channel} {designations:?}"))?;
    }

    #[test]
    fn repeated_contacts_never_exceed_a_cap(
        (index, _, start, _) in case(),
        channels in prop::collection::vec(channel(), 25),
    ) {
        let (tenant, code) = &codes()[index];
        let rules = book().resolve(tenant, code).expect("resolves");
        let mut history: Vec<ContactEvent> = Vec::new();
        let mut now = start;
        for channel in channels {
            let mut next = intent(code, channel);
            next.tenant = tenant.clone();
            let decision = evaluate(&next, &rules, &history, &Preferences::default(), now);
            let Some(when) = decision.at(now) else { continue };
            let versions = versions(&next, &rules, now);
            let zones = zones(&next, &rules);
            prop_assert!(
                limits_ok(&next, &zones, &versions, &history, when),
                "{code}: a {channel} contact at {when} breaks a cap or cooldown given {history:?}"
            );
            history.push(ContactEvent {
                channel,
                at: when,
                outcome: Outcome::Conversation,
                debt_id: None,
                contact_point: None,
                initiator: Initiator::Collector,
            });
            now = when;
        }
    }
}
