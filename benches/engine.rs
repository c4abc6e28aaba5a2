//! Criterion benchmark of `engine::evaluate` on the real rules: Peruvian
//! and US calls with 20 history events, released and deferred, with and
//! without a debtor's designations and consent.

use std::hint::black_box;
use std::path::Path;

use chrono::{DateTime, Duration, Utc};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use ventana::domain::{
    Channel, Consent, ContactEvent, ContactPoint, ContactPointKind, DayOfWeek, Designated, Designation, Initiator,
    Intent, Outcome, Party, Preferences, Stage, TimeRange,
};
use ventana::engine::evaluate;
use ventana::rules::RuleBook;

fn instant(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text).expect("instant").with_timezone(&Utc)
}

fn bench(c: &mut Criterion) {
    let book = RuleBook::load_dir(&Path::new(env!("CARGO_MANIFEST_DIR")).join("jurisdictions")).expect("rules load");
    let intent = Intent {
        tenant: "bench".into(),
        intent_id: "i-1".into(),
        debtor_id: "d-1".into(),
        debt_id: Some("debt-1".into()),
        channel: Channel::Call,
        party: Party::Debtor,
        stage: Stage::Extrajudicial,
        jurisdiction: "PE".into(),
        time_zones: Vec::new(),
        not_before: None,
        expires_at: None,
        contact_point: None,
    };
    let now = instant("2026-11-25T10:00:00-05:00");
    let channels = [Channel::Call, Channel::Sms, Channel::Whatsapp, Channel::Email];
    let outcomes = [Outcome::NoAnswer, Outcome::Delivered, Outcome::Attempted, Outcome::Failed];
    let history: Vec<ContactEvent> = (0..20)
        .map(|i| ContactEvent {
            channel: channels[i % 4],
            at: now - Duration::hours(7 * (i as i64 + 1)),
            outcome: outcomes[i % 4],
            debt_id: None,
            contact_point: None,
            initiator: Initiator::Collector,
        })
        .collect();

    let mut group = c.benchmark_group("evaluate");
    group.throughput(Throughput::Elements(1));
    group.bench_function("release_pe_call_20_events", |b| {
        b.iter(|| {
            let rules = book.resolve(&intent.tenant, &intent.jurisdiction).expect("PE resolves");
            black_box(evaluate(
                black_box(&intent),
                &rules,
                black_box(&history),
                &Preferences::default(),
                black_box(now),
            ))
        })
    });
    let friday_night = instant("2026-11-27T20:00:00-05:00");
    group.bench_function("defer_pe_call_friday_night_20_events", |b| {
        b.iter(|| {
            let rules = book.resolve(&intent.tenant, &intent.jurisdiction).expect("PE resolves");
            black_box(evaluate(
                black_box(&intent),
                &rules,
                black_box(&history),
                &Preferences::default(),
                black_box(friday_night),
            ))
        })
    });
    // Regulation F: two caps and a cooldown over the same 20 events.
    let mut us = intent.clone();
    us.jurisdiction = "US-NY".into();
    let us_now = instant("2026-11-25T10:00:00-05:00");
    group.bench_function("release_us_ny_call_caps_20_events", |b| {
        b.iter(|| {
            let rules = book.resolve(&us.tenant, &us.jurisdiction).expect("US-NY resolves");
            black_box(evaluate(black_box(&us), &rules, black_box(&history), &Preferences::default(), black_box(us_now)))
        })
    });
    // A debtor who designated weekday afternoons, a week of dates, waking
    // hours and their work phone, with a consent on file: three windows and
    // a ban of the debtor's beside the law's, over the same 20 events.
    let mut ma = intent.clone();
    ma.jurisdiction = "US-MA".into();
    ma.contact_point = Some(ContactPoint { kind: ContactPointKind::PersonalMobile, id: Some("h-5551".into()) });
    let said = instant("2026-11-01T12:00:00Z");
    let designated = |id: &str, designation| Designated::new(id.into(), designation, "call".into(), Some(said));
    let weekdays = vec![DayOfWeek::Mon, DayOfWeek::Tue, DayOfWeek::Wed, DayOfWeek::Thu, DayOfWeek::Fri];
    let preferences = Preferences {
        designations: vec![
            designated(
                "afternoons",
                Designation::InconvenientTimes {
                    days: weekdays,
                    hours: vec![TimeRange::parse("15:00-17:00").expect("range")],
                    channels: Vec::new(),
                },
            ),
            designated(
                "holiday",
                Designation::InconvenientDates {
                    from: "2026-12-24".parse().expect("date"),
                    to: "2026-12-31".parse().expect("date"),
                    channels: Vec::new(),
                },
            ),
            designated(
                "awake",
                Designation::WakingHours {
                    hours: TimeRange::parse("09:00-20:00").expect("range"),
                    channels: Vec::new(),
                },
            ),
            designated(
                "not-at-work",
                Designation::InconvenientContactPoint {
                    contact_point: ContactPoint { kind: ContactPointKind::WorkPhone, id: None },
                    channels: Vec::new(),
                },
            ),
        ],
        consents: vec![Consent {
            id: "more-calls".into(),
            channels: vec![Channel::Call],
            written: false,
            from: instant("2026-11-20T12:00:00Z"),
            until: None,
            revoked_at: None,
            source: "call".into(),
        }],
        ..Preferences::default()
    };
    let ma_now = instant("2026-11-25T10:00:00-05:00");
    // The same debtor in New York: released (the designations allow 10:00).
    let mut ny = ma.clone();
    ny.jurisdiction = "US-NY".into();
    group.bench_function("release_us_ny_call_designations_20_events", |b| {
        b.iter(|| {
            let rules = book.resolve(&ny.tenant, &ny.jurisdiction).expect("US-NY resolves");
            black_box(evaluate(black_box(&ny), &rules, black_box(&history), &preferences, black_box(ma_now)))
        })
    });
    // The same decision on 400 different weeks in turn (the instant and
    // the history shifted together), so that the engine's memo of local-time
    // conversions, which the runs above reuse, mostly misses: its floor.
    let weeks: Vec<(DateTime<Utc>, Vec<ContactEvent>)> = (0..400)
        .map(|week| {
            let shift = Duration::weeks(week);
            let shifted = history.iter().map(|e| ContactEvent { at: e.at + shift, ..e.clone() }).collect();
            (ma_now + shift, shifted)
        })
        .collect();
    let mut week = weeks.iter().cycle();
    group.bench_function("release_us_ny_call_designations_20_events_400_weeks", |b| {
        b.iter(|| {
            let (now, history) = week.next().expect("cycle");
            let rules = book.resolve(&ny.tenant, &ny.jurisdiction).expect("US-NY resolves");
            black_box(evaluate(black_box(&ny), &rules, black_box(history), &preferences, black_box(*now)))
        })
    });
    // In Massachusetts two calls this week fill the seven-day limit: deferred.
    group.bench_function("defer_us_ma_call_designations_20_events", |b| {
        b.iter(|| {
            let rules = book.resolve(&ma.tenant, &ma.jurisdiction).expect("US-MA resolves");
            black_box(evaluate(black_box(&ma), &rules, black_box(&history), &preferences, black_box(ma_now)))
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
