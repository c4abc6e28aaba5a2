//! Worked cases of the decision engine against the real jurisdiction files,
//! and DST edge cases against small synthetic ones.

use ventana::domain::{Channel, Outcome, Party, Stage};
use ventana::engine::{RejectCode, Verdict};
use ventana::rules::RuleBook;

use crate::decide::*;
use crate::support::rules::fixture_source;

// ---------------------------------------------------------------- Peru

#[test]
fn peru_friday_1959_released_2000_deferred_to_monday_0700() {
    let call = intent("PE", Channel::Call);
    assert_release(&decide(book(), &call, &[], at("2026-11-27T19:59:00-05:00")));
    let deferred = decide(book(), &call, &[], at("2026-11-27T20:00:00-05:00"));
    assert_defer(&deferred, "2026-11-30T07:00:00-05:00");
    let reason = &deferred.reasons[0];
    let rule = reason.rule.as_ref().expect("a rule explains the defer");
    assert_eq!(rule.id.as_ref(), "pe-art62b-hours");
    assert_eq!(rule.jurisdiction.as_ref(), "PE");
    assert!(rule.citation.contains("62"), "citation names the article: {}", rule.citation);
    assert!(rule.version.starts_with("2010-10-02/"), "version names the file version: {}", rule.version);
    assert!(reason.message().contains("Friday 2026-11-27 20:00"), "message: {}", reason.message());
}

/// A debtor whose region is unknown may live in any region: every regional
/// holiday closes, as every zone binds; naming the region gives only its own.
#[test]
fn regional_holidays_close_a_region_less_intent_and_only_their_region() {
    let monday = at("2027-06-07T10:00:00-04:00"); // Arica y Parinacota's feriado (Ley 20.663)
    let deferred = decide(book(), &intent("CL", Channel::Call), &[], monday);
    assert_defer(&deferred, "2027-06-08T10:00:00-04:00"); // 08:00 on Easter Island, the latest zone
    assert!(deferred.reasons.iter().any(|r| r.message().contains("Morro de Arica")), "{:#?}", deferred.reasons);
    assert_defer(&decide(book(), &intent("CL-AP", Channel::Call), &[], monday), "2027-06-08T08:00:00-04:00");
    assert_release(&decide(book(), &intent("CL-RM", Channel::Call), &[], monday));
    let galapagos_day = at("2027-02-12T10:00:00-05:00"); // a Friday
    assert_defer(&decide(book(), &intent("EC", Channel::Call), &[], galapagos_day), "2027-02-15T08:00:00-05:00");
    assert_release(&decide(book(), &intent("EC-P", Channel::Call), &[], galapagos_day));
}

/// A holiday an authority may still move closes every candidate day, shown
/// as provisional, until a published decision picks one (Argentina's Decreto
/// 614/2025; Paraguay's Ley 1.723/2001).
#[test]
fn undecided_holidays_close_every_candidate_until_a_decision_picks_one() {
    let from = chrono::NaiveDate::from_ymd_opt(2027, 11, 18).expect("date");
    let week = ventana::officer::calendar_windows(book(), "AR", Channel::Call, from, 6).expect("AR calendar");
    let day = |date: &str| week.iter().find(|d| d["date"] == date).unwrap_or_else(|| panic!("{date} listed"));
    for closed in ["2027-11-19", "2027-11-20", "2027-11-22"] {
        assert_eq!(day(closed)["windows"], serde_json::json!([]), "{closed} is closed");
        assert_eq!(day(closed)["provisional"], true, "{closed} is only a candidate");
    }
    for open in ["2027-11-18", "2027-11-23"] {
        assert_eq!(day(open)["windows"], serde_json::json!(["08:00-19:00"]), "{open} is ordinary");
        assert_eq!(day(open)["provisional"], false);
    }
    let friday = decide(book(), &intent("AR-C", Channel::Call), &[], at("2027-11-19T10:00:00-03:00"));
    assert_defer(&friday, "2027-11-23T08:00:00-03:00");
    assert!(friday.reasons.iter().any(|r| r.message().contains("provisional")), "{:#?}", friday.reasons);
    let chaco_monday = decide(book(), &intent("PY", Channel::Call), &[], at("2027-06-14T10:00:00-03:00"));
    assert_defer(&chaco_monday, "2027-06-15T08:00:00-03:00");
    // Decided: 2025's Diversidad Cultural went to Friday 10 Oct, so Saturday 11 is ordinary.
    assert_defer(
        &decide(book(), &intent("AR", Channel::Call), &[], at("2025-10-10T10:00:00-03:00")),
        "2025-10-11T08:00:00-03:00",
    );
    assert_release(&decide(book(), &intent("AR", Channel::Call), &[], at("2025-10-11T10:00:00-03:00")));
}

#[test]
fn peru_fiestas_patrias_defers_past_both_holidays() {
    let decision = decide(book(), &intent("PE", Channel::Call), &[], at("2026-07-28T10:00:00-05:00"));
    assert_defer(&decision, "2026-07-30T07:00:00-05:00");
    assert!(decision.reasons[0].message().contains("public holiday"), "{}", decision.reasons[0].message());
}

#[test]
fn peru_friday_evening_before_a_monday_holiday_waits_until_tuesday() {
    // 2026-06-29 (San Pedro y San Pablo) is a Monday.
    let decision = decide(book(), &intent("PE", Channel::Whatsapp), &[], at("2026-06-26T20:30:00-05:00"));
    assert_defer(&decision, "2026-06-30T07:00:00-05:00");
}

#[test]
fn peru_year_boundary_skips_new_year() {
    // Thursday 2026-12-31 20:00 → Friday 2027-01-01 is a holiday → Monday 2027-01-04.
    let decision = decide(book(), &intent("PE", Channel::Sms), &[], at("2026-12-31T20:00:00-05:00"));
    assert_defer(&decision, "2027-01-04T07:00:00-05:00");
}

#[test]
fn peru_third_party_is_rejected_with_citation() {
    let mut third = intent("PE", Channel::Call);
    third.party = Party::ThirdParty;
    let decision = decide(book(), &third, &[], at("2026-11-25T10:00:00-05:00"));
    assert_eq!(decision.verdict, Verdict::Reject { code: RejectCode::PartyNotAllowed });
    assert!(decision.reasons[0].rule.as_ref().is_some_and(|r| r.citation.contains("Ley 29571")));
}

#[test]
fn not_before_and_expiry_are_honoured() {
    let mut call = intent("PE", Channel::Call);
    call.not_before = Some(at("2026-11-25T15:00:00-05:00"));
    assert_defer(&decide(book(), &call, &[], at("2026-11-25T10:00:00-05:00")), "2026-11-25T15:00:00-05:00");
    call.not_before = None;
    call.expires_at = Some(at("2026-11-28T00:00:00-05:00"));
    let decision = decide(book(), &call, &[], at("2026-11-27T21:00:00-05:00"));
    assert_eq!(decision.verdict, Verdict::Reject { code: RejectCode::NoCompliantSlot });
}

#[test]
fn several_time_zones_must_all_allow_the_contact() {
    // Lima is UTC-5 all year; New York is UTC-4 in July. At 19:30 Lima it is
    // 20:30 in New York: still fine for Peru's rules in both readings of
    // "local", but at 06:30 Lima (07:30 New York) Lima is closed.
    let mut call = intent("PE", Channel::Call);
    call.time_zones = vec!["America/Lima".parse().expect("tz"), "America/New_York".parse().expect("tz")];
    // 07:00 Lima = 08:00 New York: both open.
    assert_release(&decide(book(), &call, &[], at("2026-07-15T07:00:00-05:00")));
    // 19:30 Lima = 20:30 New York: New York is past 20:00, so wait for the next morning in Lima.
    assert_defer(&decide(book(), &call, &[], at("2026-07-15T19:30:00-05:00")), "2026-07-16T07:00:00-05:00");
}

#[test]
fn unknown_jurisdiction_does_not_resolve() {
    assert!(book().resolve("t1", "ZZ").is_err());
    assert!(book().resolve("t1", "PE-XYZ").is_err());
}

// ---------------------------------------------------------------- Mexico

#[test]
fn mexico_2130_allowed_in_tijuana_not_in_cancun() {
    // 2026-11-25 is a Wednesday; 21:30 in Tijuana (UTC-8) is 00:30 in Cancún (UTC-5).
    let now = at("2026-11-25T21:30:00-08:00");
    assert_release(&decide(book(), &intent("MX-BCN", Channel::Call), &[], now));
    let cancun = decide(book(), &intent("MX-ROO", Channel::Call), &[], now);
    assert_defer(&cancun, "2026-11-26T07:00:00-05:00");
}

#[test]
fn mexico_without_a_state_must_fit_every_mexican_zone() {
    // 07:00 in Cancún is 04:00 in Tijuana: closed there, so wait until 07:00 Tijuana.
    let decision = decide(book(), &intent("MX", Channel::Call), &[], at("2026-11-25T07:00:00-05:00"));
    assert_defer(&decision, "2026-11-25T07:00:00-08:00");
}

#[test]
fn mexico_never_contacts_third_parties() {
    let mut third = intent("MX-CMX", Channel::Whatsapp);
    third.party = Party::ThirdParty;
    let decision = decide(book(), &third, &[], at("2026-11-25T10:00:00-06:00"));
    assert_eq!(decision.verdict, Verdict::Reject { code: RejectCode::PartyNotAllowed });
    let mut guarantor = intent("MX-CMX", Channel::Whatsapp);
    guarantor.party = Party::Guarantor;
    assert_release(&decide(book(), &guarantor, &[], at("2026-11-25T10:00:00-06:00")));
}

// ---------------------------------------------------------------- Colombia

#[test]
fn colombia_one_contact_a_day_and_one_channel_a_week() {
    // Tuesday 2026-11-24: an SMS went out at 09:00. Another SMS the same day waits until Wednesday 07:00.
    let history = [event(Channel::Sms, "2026-11-24T09:00:00-05:00", Outcome::Delivered)];
    let sms = intent("CO", Channel::Sms);
    assert_defer(&decide(book(), &sms, &history, at("2026-11-24T11:00:00-05:00")), "2026-11-25T07:00:00-05:00");
    // On Wednesday the same channel is fine...
    assert_release(&decide(book(), &sms, &history, at("2026-11-25T11:00:00-05:00")));
    // ...but a call (a second channel) waits until both the calendar week (Monday) and the
    // rolling seven days since the SMS (Tuesday 09:00) have passed.
    let call = intent("CO", Channel::Call);
    assert_defer(&decide(book(), &call, &history, at("2026-11-25T11:00:00-05:00")), "2026-12-01T09:00:00-05:00");
}

#[test]
fn a_cap_reason_names_the_contact_that_used_it_up() {
    // Colombia: one contact a day. A call at 09:00 uses up Wednesday; an SMS at 11:00 waits.
    let history = [event(Channel::Call, "2026-11-25T09:00:00-05:00", Outcome::NoAnswer)];
    let decision = decide(book(), &intent("CO", Channel::Sms), &history, at("2026-11-25T11:00:00-05:00"));
    let cap =
        decision.reasons.iter().find(|r| r.rule.as_ref().is_some_and(|m| m.id.as_ref() == "co-ley2300-once-a-day"));
    let message = cap.expect("the daily cap is a reason").message();
    assert!(message.contains("at most 1 attempt per day"), "{message}");
    assert!(message.contains("the latest: call no_answer at 2026-11-25T14:00:00+00:00"), "{message}");
}

// ---------------------------------------------------------------- United States (Regulation F)

#[test]
fn regulation_f_seven_calls_in_seven_days() {
    let days = ["16", "17", "18", "19", "20", "21", "22"];
    let history: Vec<_> =
        days.iter().map(|d| event(Channel::Call, &format!("2026-11-{d}T15:00:00Z"), Outcome::NoAnswer)).collect();
    let call = intent("US-NY", Channel::Call);
    // Days, not hours (comment 14(b)(2)(i)-1): on Monday 23 the period (17 to 23) holds six
    // calls, so the eighth goes at 08:00 New York time, not at the hour of the first call.
    assert_defer(&decide(book(), &call, &history, at("2026-11-22T18:00:00Z")), "2026-11-23T13:00:00Z");
    // Emails are not capped.
    assert_release(&decide(book(), &intent("US-NY", Channel::Email), &history, at("2026-11-22T18:00:00Z")));
}

#[test]
fn regulation_f_seven_day_wait_after_a_conversation() {
    let history = [event(Channel::Call, "2026-11-20T16:00:00Z", Outcome::Conversation)];
    let decision = decide(book(), &intent("US-NY", Channel::Call), &history, at("2026-11-23T16:00:00Z"));
    // Friday 20 is day 1; day 8 is Friday 27, from 08:00 New York time.
    assert_defer(&decision, "2026-11-27T13:00:00Z");
    assert!(decision.reasons.iter().any(|r| { r.rule.as_ref().is_some_and(|m| m.citation.contains("1006.14")) }));
}

/// The days are the debtor's local days even when a 25-hour or a 23-hour
/// day falls inside the period.
#[test]
fn regulation_f_counts_local_days_across_dst() {
    let call = intent("US-NY", Channel::Call);
    // Saturday 31 October 2026 at 19:00 (day 1); Sunday 1 November has 25 hours.
    let fall = [event(Channel::Call, "2026-10-31T23:00:00Z", Outcome::Conversation)];
    assert_defer(&decide(book(), &call, &fall, at("2026-11-02T15:00:00Z")), "2026-11-07T08:00:00-05:00");
    // Saturday 13 March 2027 at 10:00 (day 1); Sunday 14 March has 23 hours.
    let spring = [event(Channel::Call, "2027-03-13T15:00:00Z", Outcome::Conversation)];
    let deferred = decide(book(), &call, &spring, at("2027-03-20T00:00:00Z"));
    assert_defer(&deferred, "2027-03-20T08:00:00-04:00");
    assert!(deferred.reasons.iter().any(|r| r.message().contains("7 local days")), "{:#?}", deferred.reasons);
    // Seven calls from Wednesday 10 to Tuesday 16 March at 17:00 local: the eighth goes at
    // 08:00 on Wednesday 17, when the first has left the period.
    let calls: Vec<_> = ["10T22", "11T22", "12T22", "13T22", "14T21", "15T21", "16T21"]
        .iter()
        .map(|d| event(Channel::Call, &format!("2027-03-{d}:00:00Z"), Outcome::NoAnswer))
        .collect();
    assert_defer(&decide(book(), &call, &calls, at("2027-03-16T22:00:00Z")), "2027-03-17T08:00:00-04:00");
}

// ---------------------------------------------------------------- DST, on the real files

#[test]
fn chile_saturday_evening_before_dst_ends_defers_to_monday_at_the_new_offset() {
    // Santiago leaves summer time at 24:00 on Saturday 2026-04-04 (UTC-3 → UTC-4).
    let decision = decide(book(), &intent("CL-RM", Channel::Call), &[], at("2026-04-04T20:30:00-03:00"));
    assert_defer(&decision, "2026-04-06T08:00:00-04:00");
}

#[test]
fn paraguay_window_follows_the_2024_change_to_permanent_utc_minus_3() {
    // Friday 2024-10-04 17:30 local (UTC-4, before the change) is inside 08:00–18:00.
    assert_release(&decide(book(), &intent("PY", Channel::Call), &[], at("2024-10-04T17:30:00-04:00")));
    // Friday 18:00 → Monday 2024-10-07 08:00, now at UTC-3.
    let decision = decide(book(), &intent("PY", Channel::Call), &[], at("2024-10-04T18:00:00-04:00"));
    assert_defer(&decision, "2024-10-07T08:00:00-03:00");
}

// ---------------------------------------------------------------- DST, synthetic windows on transition hours

/// `tests/fixtures/rules/new-york-edges/ZZ.toml`: windows on DST transition hours.
fn new_york_edges() -> String {
    fixture_source("new-york-edges/ZZ.toml")
}

fn synthetic(source: &str) -> RuleBook {
    RuleBook::from_sources(&[("ZZ.toml", source)]).expect("synthetic rules load")
}

#[test]
fn window_starting_inside_a_dst_gap_starts_at_the_gap_end() {
    // 2026-03-08 02:00 EST jumps to 03:00 EDT. The Sunday window 01:30–05:00
    // starts before the gap, so 01:45 EST is inside.
    let book = synthetic(&new_york_edges());
    assert_release(&decide(&book, &intent("ZZ", Channel::Call), &[], at("2026-03-08T01:45:00-05:00")));
    // A boundary inside the gap (02:30) maps to the gap's end.
    let start = ventana::engine::windows::local_to_utc(
        "America/New_York".parse().expect("tz"),
        chrono::NaiveDate::from_ymd_opt(2026, 3, 8).expect("date"),
        150,
        ventana::engine::windows::Edge::Start,
    );
    assert_eq!(start, Some(at("2026-03-08T03:00:00-04:00")));
}

#[test]
fn ambiguous_window_start_takes_the_later_reading() {
    // 2026-11-01 01:00–02:00 happens twice (EDT, then EST). A window opening at
    // 01:30 opens at the second 01:30, so both readings agree it is open.
    let book = synthetic(&new_york_edges());
    let decision = decide(&book, &intent("ZZ", Channel::Call), &[], at("2026-11-01T00:30:00-04:00"));
    assert_defer(&decision, "2026-11-01T01:30:00-05:00");
}

#[test]
fn ambiguous_window_end_takes_the_earlier_reading() {
    // A window ending at 01:30 on 2026-11-01 closes at the first 01:30 (EDT).
    let end = ventana::engine::windows::local_to_utc(
        "America/New_York".parse().expect("tz"),
        chrono::NaiveDate::from_ymd_opt(2026, 11, 1).expect("date"),
        90,
        ventana::engine::windows::Edge::End,
    );
    assert_eq!(end, Some(at("2026-11-01T01:30:00-04:00")));
}

// ---------------------------------------------------------------- rule-file validation

#[test]
fn invalid_files_are_reported_with_file_line_and_reason() {
    let bad = new_york_edges().replace("sun = [\"01:30-05:00\"]", "sun = [\"01:30-25:00\"]");
    let problems = RuleBook::from_sources(&[("ZZ.toml", &bad)]).expect_err("25:00 is refused");
    assert_eq!(problems.len(), 1);
    assert_eq!(problems[0].file, "ZZ.toml");
    assert_eq!(problems[0].line, 15);
    assert!(problems[0].message.contains("25:00"), "{}", problems[0].message);

    let unknown_channel = new_york_edges().replace("channels = [\"all\"]", "channels = [\"fax\"]");
    let problems = RuleBook::from_sources(&[("ZZ.toml", &unknown_channel)]).expect_err("fax is refused");
    assert!(problems.iter().any(|p| p.line == 14 && p.message.contains("fax")), "{problems:?}");
}

#[test]
fn an_overlay_that_loosens_its_parent_is_refused() {
    let (parent, overlay) = (new_york_edges(), fixture_source("overlays/ZZ-A-looser.toml"));
    let problems =
        RuleBook::from_sources(&[("ZZ.toml", &parent), ("ZZ-A.toml", &overlay)]).expect_err("looser overlay");
    assert!(
        problems.iter().any(|p| p.file == "ZZ-A.toml" && p.line == 9 && p.message.contains("Tuesday")),
        "{problems:?}"
    );
    let narrower = overlay.replace("tue = [\"09:00-17:00\"]", "sun = [\"02:00-04:00\"]");
    let book =
        RuleBook::from_sources(&[("ZZ.toml", &parent), ("ZZ-A.toml", &narrower)]).expect("narrower overlay loads");
    // Sunday 01:45 is allowed by ZZ but not by ZZ-A (02:00–04:00).
    let mut call = intent("ZZ-A", Channel::Call);
    call.stage = Stage::Preventive;
    assert_defer(&decide(&book, &call, &[], at("2026-03-08T01:45:00-05:00")), "2026-03-08T03:00:00-04:00");
}

#[test]
fn santiago_calendar_day_starting_inside_the_spring_gap() {
    // 2026-09-06 00:00 does not exist in Santiago (clocks jump to 01:00, UTC-4 → UTC-3).
    let source = fixture_source("santiago-one-a-day/ZS.toml");
    let book = RuleBook::from_sources(&[("ZS.toml", &source)]).expect("loads");
    let history = [event(Channel::Sms, "2026-09-05T23:30:00-04:00", Outcome::Delivered)];
    let decision = decide(&book, &intent("ZS", Channel::Sms), &history, at("2026-09-05T23:45:00-04:00"));
    // The next local day starts when the clocks jump: 01:00 UTC-3, the same instant as 00:00 UTC-4.
    assert_defer(&decision, "2026-09-06T01:00:00-03:00");
    assert!(decision.reasons.iter().any(|r| r.rule.as_ref().is_some_and(|m| m.id.as_ref() == "zs-one-a-day")));
}

#[test]
fn an_intents_own_zones_are_combined_with_its_subdivisions() {
    // Address in Baja California (Tijuana), phone from Mexico City: both must allow the call.
    let mut call = intent("MX-BCN", Channel::Call);
    call.time_zones = vec!["America/Mexico_City".parse().expect("tz")];
    // 07:00 in Mexico City is 05:00 in Tijuana: wait for 07:00 Tijuana.
    assert_defer(&decide(book(), &call, &[], at("2026-11-25T07:00:00-06:00")), "2026-11-25T07:00:00-08:00");
    // With only the country named, the intent's zones are the evidence.
    let mut country_only = intent("MX", Channel::Call);
    country_only.time_zones = vec!["America/Mexico_City".parse().expect("tz")];
    assert_release(&decide(book(), &country_only, &[], at("2026-11-25T07:00:00-06:00")));
}

#[test]
fn preferences_reject_at_once() {
    use ventana::domain::Preferences;
    let rules = book().resolve("t1", "PE").expect("PE");
    let now = at("2026-11-25T10:00:00-05:00");
    let sms = intent("PE", Channel::Sms);
    let opted_out = Preferences { opted_out: vec![Channel::Sms], ..Preferences::default() };
    let decision = ventana::engine::evaluate(&sms, &rules, &[], &opted_out, now);
    assert_eq!(decision.verdict, Verdict::Reject { code: RejectCode::OptedOut });
    let chosen = Preferences { chosen: vec![Channel::Email], ..Preferences::default() };
    let decision = ventana::engine::evaluate(&sms, &rules, &[], &chosen, now);
    assert_eq!(decision.verdict, Verdict::Reject { code: RejectCode::ChannelNotChosen });
    let email = intent("PE", Channel::Email);
    assert_release(&ventana::engine::evaluate(&email, &rules, &[], &chosen, now));
    let wrong = Preferences { wrong_party: vec![Channel::Email], ..Preferences::default() };
    let decision = ventana::engine::evaluate(&email, &rules, &[], &wrong, now);
    assert_eq!(decision.verdict, Verdict::Reject { code: RejectCode::WrongParty });
}
