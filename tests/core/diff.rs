//! `rules diff` on small rule sets: `tests/fixtures/rules/diff-before` and
//! `diff-after` (PE with calls and visits from 08:00 instead of 07:00, one
//! holiday and one cap added), and synthetic files. The diff's HTML page as
//! a browser draws it is checked in `tests/system/pictures.rs`.

use chrono::{Datelike, NaiveDate};
use ventana::domain::Channel;
use ventana::officer::diff::{self, Cause, Change, Presence, RulesDiff};
use ventana::officer::summary::RuleKind;
use ventana::rules::RuleBook;

use crate::support::rules;

fn d(text: &str) -> NaiveDate {
    text.parse().expect("a date YYYY-MM-DD")
}

fn book(set: &str) -> RuleBook {
    RuleBook::load_dir(&rules::fixture(set)).unwrap_or_else(|problems| panic!("{set} does not load: {problems:?}"))
}

fn sources(files: &[(&str, &str)]) -> RuleBook {
    RuleBook::from_sources(files).unwrap_or_else(|problems| panic!("the test's files do not load: {problems:?}"))
}

fn year_2026(old: &RuleBook, new: &RuleBook) -> RulesDiff {
    diff::diff(old, new, d("2026-01-01"), d("2026-12-31")).expect("a valid range")
}

#[test]
fn a_diff_names_the_hours_holidays_and_rules_that_change_with_ids_and_citations() {
    let (before, after) = (book("diff-before"), book("diff-after"));
    let found = year_2026(&before, &after);
    assert!(found.differs());
    assert_eq!(found.jurisdictions.len(), 1, "{found:#?}");
    let pe = &found.jurisdictions[0];
    assert_eq!((pe.code.as_str(), pe.tenant.as_deref(), pe.presence), ("PE", None, Presence::Both));
    assert_eq!(pe.zones, ["America/Lima"]);

    // Calls and visits lose 07:00–08:00 on every working day that is not a holiday.
    let weekdays = pe.hours.iter().find(|h| h.removed == ["07:00–08:00"]).expect("the window change");
    assert_eq!(weekdays.channels, [Channel::Call, Channel::Visit]);
    assert_eq!(weekdays.day_types, ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday"]);
    assert!(weekdays.added.is_empty());
    assert_eq!(weekdays.minutes_removed_per_day, 60);
    assert_eq!(
        weekdays.because,
        [Cause { kind: "hours", id: "pe-art62b-hours".into(), citation: Some("Ley 29571, art. 62(b)".into()) }]
    );
    let calendar = &after.get("PE").expect("PE").holidays;
    let working_days: Vec<NaiveDate> = d("2026-01-01")
        .iter_days()
        .take_while(|day| day.year() == 2026)
        .filter(|day| day.weekday().num_days_from_monday() < 5 && calendar.on(*day).is_none())
        .collect();
    assert_eq!(weekdays.dates, working_days);

    // The new holiday closes Wednesday 24 June on every channel.
    let june = pe.hours.iter().find(|h| h.dates == [d("2026-06-24")]).expect("the new holiday's day");
    assert_eq!(june.channels, Channel::ALL);
    assert_eq!(june.day_types, ["Wednesday → public holiday"]);
    assert_eq!((june.removed.as_slice(), june.minutes_removed_per_day), (&["07:00–20:00".to_string()][..], 780));
    assert_eq!(
        june.because,
        [Cause { kind: "holiday", id: "pe-fixture-farmers-day".into(), citation: Some("test fixture".into()) }]
    );
    assert_eq!(pe.hours.len(), 2, "{:#?}", pe.hours);

    assert_eq!(pe.holidays.len(), 1);
    let holiday = &pe.holidays[0];
    assert_eq!(
        (holiday.change, holiday.date, holiday.rule.as_str(), holiday.citation.as_deref()),
        (Change::Added, d("2026-06-24"), "pe-fixture-farmers-day", Some("test fixture"))
    );

    let changes: Vec<(Change, RuleKind, &str, &str)> =
        pe.rules.iter().map(|r| (r.change, r.kind, r.id.as_str(), r.citation())).collect();
    assert_eq!(
        changes,
        [
            (Change::Changed, RuleKind::Hours, "pe-art62b-hours", "Ley 29571, art. 62(b)"),
            (Change::Added, RuleKind::Cap, "pe-fixture-one-call-a-day", "test fixture"),
        ]
    );
    let cap = pe.rules[1].after.as_ref().expect("the new cap");
    assert_eq!(cap.says, "call, visit: at most 1 attempt per local calendar day, per debtor");
    let (was, now) = (pe.rules[0].before.as_ref().expect("was"), pe.rules[0].after.as_ref().expect("now"));
    assert!(was.says.contains("Monday to Friday 07:00–20:00"), "{}", was.says);
    assert!(now.says.contains("Monday to Friday 08:00–20:00"), "{}", now.says);
}

#[test]
fn the_text_reads_as_a_report_and_ends_with_the_replay_command() {
    let found = year_2026(&book("diff-before"), &book("diff-after"));
    let text = diff::text(&found, "before/", "after/");
    for expected in [
        "OLD: before/",
        "PE — Perú (America/Lima)",
        "call, visit · Monday to Friday · ",
        "no longer allowed 07:00–08:00 (−1 h a day, ",
        "because of hours rule pe-art62b-hours — Ley 29571, art. 62(b)",
        "because of holiday rule pe-fixture-farmers-day — test fixture",
        "added    Wed 2026-06-24  Día del Campesino (fixture)  [pe-fixture-farmers-day] — test fixture",
        "changed  hours pe-art62b-hours — Ley 29571, art. 62(b)",
        "added    cap pe-fixture-one-call-a-day — test fixture",
    ] {
        assert!(text.contains(expected), "{expected:?} missing from:\n{text}");
    }
    let last = text.trim_end().lines().last().unwrap_or_default();
    assert!(last.contains("ventana audit replay") && last.contains("--rules"), "{text}");

    let json = diff::json(&found, "before/", "after/");
    assert_eq!(json["differs"], true);
    assert_eq!(json["jurisdictions"][0]["code"], "PE");
    assert_eq!(json["jurisdictions"][0]["rules"][1]["kind"], "cap");
    assert_eq!(json["jurisdictions"][0]["hours"][0]["channels"], serde_json::json!(["call", "visit"]));
}

#[test]
fn the_same_rules_do_not_differ() {
    let found = year_2026(&book("diff-before"), &book("diff-before"));
    assert!(!found.differs(), "{found:#?}");
    assert!(diff::text(&found, "a", "a").contains("No differences"));
    assert_eq!(diff::json(&found, "a", "a")["differs"], false);
}

#[test]
fn a_range_compares_only_its_own_days() {
    let (before, after) = (book("diff-before"), book("diff-after"));
    // The holiday's day alone: no working-day change outside it.
    let found = diff::diff(&before, &after, d("2026-06-24"), d("2026-06-24")).expect("range");
    let pe = &found.jurisdictions[0];
    assert_eq!(pe.hours.len(), 1, "{:#?}", pe.hours);
    assert_eq!(pe.hours[0].dates, [d("2026-06-24")]);
    // A weekend: closed on both sides, no holiday, but the rules in force still differ.
    let found = diff::diff(&before, &after, d("2026-06-27"), d("2026-06-28")).expect("range");
    let pe = &found.jurisdictions[0];
    assert!(pe.hours.is_empty() && pe.holidays.is_empty(), "{pe:#?}");
    assert_eq!(pe.rules.len(), 2);
    // A range the wrong way round is a usage error.
    assert!(diff::diff(&before, &after, d("2026-06-28"), d("2026-06-27")).is_err());
}

const ZZ: &str = crate::support::rules::TEST_LAND;

#[test]
fn new_versions_files_and_tenant_policies_are_compared_from_their_first_day() {
    // A new version from 1 July opens Saturdays; a new country file; a new tenant policy on ZZ.
    let newer_version = format!(
        "{ZZ}\n[[versions]]\neffective_from = 2026-07-01\n\n[[versions.windows]]\nid = \"zz-hours-2026\"\ncitation = \"Test Act s. 1 as amended\"\ndescription = \"working days 09:00 to 17:00, Saturdays 10:00 to 12:00\"\nbasis = \"law\"\nchannels = [\"all\"]\nmon_fri = [\"09:00-17:00\"]\nsat = [\"10:00-12:00\"]\n"
    );
    let zy = ZZ.replace("\"ZZ\"", "\"ZY\"").replace("zz-hours", "zy-hours");
    let policy = r#"
jurisdiction = "ZZ"
tenant = "acme"
name = "Acme's policy in test land"

[[versions]]
effective_from = 2020-01-01

[[versions.windows]]
id = "acme-zz-calls"
citation = "Acme policy 1"
description = "Acme calls from 10:00"
basis = "recommended"
channels = ["call"]
mon_fri = ["10:00-17:00"]
"#;
    let old = sources(&[("ZZ.toml", ZZ)]);
    let new = sources(&[("ZZ.toml", &newer_version), ("ZY.toml", &zy), ("acme-ZZ.toml", policy)]);
    let found = year_2026(&old, &new);
    let names: Vec<(&str, Option<&str>, Presence)> =
        found.jurisdictions.iter().map(|j| (j.code.as_str(), j.tenant.as_deref(), j.presence)).collect();
    assert_eq!(
        names,
        [("ZY", None, Presence::OnlyNew), ("ZZ", None, Presence::Both), ("ZZ", Some("acme"), Presence::OnlyNew)]
    );

    let zy = &found.jurisdictions[0];
    assert!(!zy.hours_compared && zy.hours.is_empty());
    assert_eq!(zy.rules.iter().map(|r| (r.change, r.id.as_str())).collect::<Vec<_>>(), [(Change::Added, "zy-hours")]);

    let zz = &found.jurisdictions[1];
    assert_eq!(zz.hours.len(), 1, "{:#?}", zz.hours);
    let saturdays = &zz.hours[0];
    assert_eq!(saturdays.channels, Channel::ALL);
    assert_eq!(saturdays.day_types, ["Saturday"]);
    assert_eq!(saturdays.dates.first(), Some(&d("2026-07-04")));
    assert_eq!(saturdays.added, ["10:00–12:00"]);
    // Both versions are in force in the range: the old rule stays, the new one is added.
    let rules: Vec<(Change, &str, &str)> = zz.rules.iter().map(|r| (r.change, r.id.as_str(), r.citation())).collect();
    assert_eq!(rules, [(Change::Added, "zz-hours-2026", "Test Act s. 1 as amended")]);
    let ids: Vec<&str> = saturdays.because.iter().map(|c| c.id.as_str()).collect();
    assert_eq!(ids, ["zz-hours", "zz-hours-2026"]);

    // The policy is new, but ZZ resolves for acme on both sides: its effect on calls is shown.
    let acme = &found.jurisdictions[2];
    assert!(acme.hours_compared);
    let calls = acme.hours.iter().find(|h| h.removed == ["09:00–10:00"]).expect("acme's calls start later");
    assert_eq!(calls.channels, [Channel::Call]);
    assert_eq!(calls.because[0].id, "acme-zz-calls");
}
