//! The week picture (`rules calendar CODE --windows --format html`) as
//! HTML text: what it computes, that it is one self-contained page, that
//! provisional holidays are marked apart, that the files' text is escaped.
//! How a browser draws it is checked in `tests/system/pictures.rs`.

use chrono::NaiveDate;
use ventana::domain::Channel;
use ventana::officer::picture::{self, FRAME_RGB, Week};
use ventana::officer::summary::ranges_text;
use ventana::rules::RuleBook;

use crate::support::rules;

fn d(text: &str) -> NaiveDate {
    text.parse().expect("a date YYYY-MM-DD")
}

#[test]
fn the_week_picture_is_one_self_contained_page() {
    let week = Week::build(rules::shipped_book(), "", "PE", d("2026-12-07"), 7, None).expect("PE's week");
    assert_eq!(week.zones, ["America/Lima"]);
    assert_eq!(week.channels.len(), Channel::ALL.len());
    let call = &week.channels[0];
    assert_eq!(call.channel, Channel::Call);
    let ranges: Vec<String> = call.ranges.iter().map(|r| ranges_text(r)).collect();
    assert_eq!(
        ranges,
        ["07:00–20:00", "no contact", "no contact", "07:00–20:00", "07:00–20:00", "no contact", "no contact"]
    );
    assert_eq!(week.days[1].holiday.as_deref(), Some("Inmaculada Concepción"));

    let html = picture::page(&week);
    for outside in ["<script", "http:", "https:", "url(", "@import", "<link", " src=", "<iframe", "<object"] {
        assert!(!html.contains(outside), "the page must not load anything ({outside} found)");
    }
    for expected in ["America/Lima", "pe-art62b-hours", "Ley 29571, art. 62(b)", "Inmaculada Concepción", "<svg"] {
        assert!(html.contains(expected), "{expected:?} missing");
    }
    // The frame's colour is the frames' alone: four bars a grid, and PE's channels share one grid.
    let frame = format!("#{:02x}{:02x}{:02x}", FRAME_RGB[0], FRAME_RGB[1], FRAME_RGB[2]);
    assert_eq!(html.matches(&frame).count(), 4);
}

#[test]
fn provisional_holidays_are_marked_apart_from_the_others() {
    let mut week = Week::build(rules::shipped_book(), "", "PE", d("2026-12-21"), 7, Some(Channel::Call)).expect("week");
    let plain = picture::page(&week);
    assert!(plain.contains("<td class=\"week holiday\" title=\"Navidad\">25</td>"), "{plain}");
    assert!(!plain.contains("tag provisional"));
    let christmas = week
        .months
        .iter_mut()
        .flat_map(|m| m.holidays.iter_mut())
        .find(|h| h.rule == "pe-christmas")
        .expect("Navidad in December's calendar");
    christmas.provisional = true;
    let marked = picture::page(&week);
    assert!(marked.contains("<td class=\"week provisional\" title=\"Navidad (provisional)\">25</td>"), "{marked}");
    assert!(marked.contains("<span class=\"tag provisional\">provisional</span>"));
}

#[test]
fn what_the_files_say_is_escaped() {
    let hostile = crate::support::rules::TEST_LAND
        .replace("Test land", "Test <land> & sea")
        .replace("working days 09:00 to 17:00", "<script>alert('x')</script>");
    let book = RuleBook::from_sources(&[("ZZ.toml", hostile.as_str())]).expect("the file loads");
    let html = picture::page(&Week::build(&book, "", "ZZ", d("2026-01-05"), 7, None).expect("week"));
    assert!(html.contains("Test &lt;land&gt; &amp; sea"));
    assert!(html.contains("&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;"));
    assert!(!html.contains("<script"));
    // And a picture is a week or a month, not a year.
    assert!(Week::build(&book, "", "ZZ", d("2026-01-05"), 32, None).is_err());
}
