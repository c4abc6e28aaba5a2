//! The picture of a week (`ventana rules calendar CODE --windows --format
//! html`): one self-contained HTML page, inline SVG and CSS, no script and
//! no address outside the page. Per channel a grid of the week's days by
//! the 24 hours, the allowed time drawn to the minute in the debtor's
//! zone(s); a month calendar of every month the week touches, holidays
//! marked (provisional ones differently); and the rules that shape the
//! week, with their citations. The rules diff draws two of these side by
//! side, so the pieces are built here and composed there.
//!
//! The grid's geometry and colours are public: the browser tests find each
//! grid by its frame (a colour used nowhere else on the page) and read the
//! colour at the middle of each hour.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::Path;

use chrono::{Datelike, Days, NaiveDate};
use serde_json::Value;

use super::CliError;
use super::summary::{RuleLine, ranges_text, rule_lines};
use crate::domain::Channel;
use crate::engine::windows::day_type;
use crate::rules::file::TimeRange;
use crate::rules::{DAY_NAMES, Jurisdiction, Resolved, RuleBook, RuleVersion, allowed_ranges};

/// Width of one hour in the grid, in CSS pixels (a minute is `HOUR_WIDTH / 60`).
pub const HOUR_WIDTH: u32 = 24;
/// Height of one day's row.
pub const ROW_HEIGHT: u32 = 30;
/// Room left of the hours for the day's date and holiday name.
pub const LEFT_MARGIN: u32 = 150;
/// Room above the hours for their labels.
pub const TOP_MARGIN: u32 = 22;
/// The frame around the hours, outside them.
pub const FRAME_WIDTH: u32 = 2;
/// Room right of the frame for the day's allowed ranges as text.
const RIGHT_TEXT: u32 = 190;

/// The width of a grid's picture, labels and text included.
const GRID_WIDTH: u32 = LEFT_MARGIN + 24 * HOUR_WIDTH + FRAME_WIDTH + RIGHT_TEXT;

/// The frame's colour: pure blue, drawn nowhere else on a page.
pub const FRAME_RGB: [u8; 3] = [0x00, 0x00, 0xff];
/// Time a contact is allowed.
pub const ALLOWED_RGB: [u8; 3] = [0x1b, 0x8a, 0x3a];
/// Time no contact is allowed.
pub const CLOSED_RGB: [u8; 3] = [0xe4, 0xe4, 0xe4];
/// In a diff's "after" grid: allowed now, closed before.
pub const ADDED_RGB: [u8; 3] = [0x0b, 0x6e, 0x99];
/// In a diff's "after" grid: closed now, allowed before.
pub const REMOVED_RGB: [u8; 3] = [0xd9, 0x5f, 0x02];

/// The most days one picture draws.
pub const MAX_DAYS: u32 = 31;

/// What the page shows, computed from a rule book.
#[derive(Debug)]
pub struct Week {
    pub code: String,
    pub tenant: Option<String>,
    pub name: String,
    /// The zones the hours are local to (the jurisdiction's default zones).
    pub zones: Vec<String>,
    /// The files and versions in force during the week, e.g. `PE@d7ca648ecd08 (PE.toml), version from 2010-10-02`.
    pub sources: Vec<String>,
    pub days: Vec<Day>,
    pub channels: Vec<ChannelWeek>,
    pub months: Vec<Month>,
    /// Every rule in force on some day of the week, outermost layer first.
    pub rules: Vec<RuleLine>,
}

/// One row of the grids.
#[derive(Debug)]
pub struct Day {
    pub date: NaiveDate,
    pub holiday: Option<String>,
    /// No version of the country's rules is in force: nothing may be sent.
    pub no_rules: bool,
}

/// One channel's allowed local ranges, one entry per day of the week.
#[derive(Debug)]
pub struct ChannelWeek {
    pub channel: Channel,
    pub ranges: Vec<Vec<TimeRange>>,
}

/// A month the week touches, with its holidays.
#[derive(Debug)]
pub struct Month {
    /// The first day of the month.
    pub first: NaiveDate,
    pub holidays: Vec<HolidayEntry>,
}

/// One holiday of a month calendar.
#[derive(Clone, Debug)]
pub struct HolidayEntry {
    pub date: NaiveDate,
    pub name: String,
    pub rule: String,
    pub citation: Option<String>,
    /// A regional file's holiday, closing the day for a region-less code.
    pub regional: bool,
    /// Announced but not yet certain (the calendar look-up says so).
    pub provisional: bool,
}

/// The versions in force on `date`, with their files, or `None` when the
/// outermost layer (the country) has none: then no contact is allowed at
/// all, as the engine rejects with `NO_RULES_IN_FORCE`.
pub(crate) fn versions_on<'a>(
    rules: &Resolved<'a>,
    date: NaiveDate,
) -> Option<Vec<(&'a Jurisdiction, &'a RuleVersion)>> {
    let mut versions = Vec::with_capacity(rules.layers.len());
    for (index, layer) in rules.layers.iter().enumerate() {
        match layer.version_on(date) {
            Some(version) => versions.push((*layer, version)),
            None if index == 0 => return None,
            None => {}
        }
    }
    Some(versions)
}

/// The allowed local ranges of `channel` on a day of type `day` under `versions`.
pub(crate) fn allowed(
    versions: Option<&[(&Jurisdiction, &RuleVersion)]>,
    channel: Channel,
    day: usize,
) -> Vec<TimeRange> {
    match versions {
        Some(versions) => {
            let versions: Vec<&RuleVersion> = versions.iter().map(|(_, v)| *v).collect();
            allowed_ranges(&versions, channel, day)
        }
        None => Vec::new(),
    }
}

impl Week {
    /// The week of `tenant`'s intents in `code` from `from` for `days`
    /// days, for `only` one channel or every channel.
    pub fn build(
        book: &RuleBook,
        tenant: &str,
        code: &str,
        from: NaiveDate,
        days: u32,
        only: Option<Channel>,
    ) -> Result<Week, CliError> {
        if days > MAX_DAYS {
            return Err(CliError::Input(format!("--days: a picture shows at most {MAX_DAYS} days")));
        }
        let rules = book.resolve(tenant, code).map_err(|e| CliError::Input(e.to_string()))?;
        let calendars = rules.calendars();
        let channels: Vec<Channel> = match only {
            Some(channel) => vec![channel],
            None => Channel::ALL.to_vec(),
        };
        let mut week = Week {
            code: code.to_string(),
            // Named only when the tenant has a policy here: the page says the week includes it.
            tenant: rules.layers.iter().any(|l| l.tenant.as_deref() == Some(tenant)).then(|| tenant.to_string()),
            name: display_name(&rules, code),
            zones: rules.default_zones.iter().map(|z| z.name().to_string()).collect(),
            sources: Vec::new(),
            days: Vec::new(),
            channels: channels.iter().map(|&channel| ChannelWeek { channel, ranges: Vec::new() }).collect(),
            months: Vec::new(),
            rules: Vec::new(),
        };
        for offset in 0..days {
            let date = from
                .checked_add_days(Days::new(u64::from(offset)))
                .ok_or_else(|| CliError::Input("date out of range".into()))?;
            let (day, holiday) = day_type(&calendars, date);
            let versions = versions_on(&rules, date);
            for channel in &mut week.channels {
                channel.ranges.push(allowed(versions.as_deref(), channel.channel, day));
            }
            for (file, version) in versions.iter().flatten() {
                let base = Path::new(file.file.as_ref()).file_name().map(|n| n.to_string_lossy().into_owned());
                let tenant = file.tenant.as_ref().map(|t| format!(", tenant {t}")).unwrap_or_default();
                let source = format!(
                    "{}@{} ({}{tenant}), version in force from {}",
                    file.code,
                    file.hash,
                    base.unwrap_or_else(|| file.file.to_string()),
                    version.effective_from
                );
                if !week.sources.contains(&source) {
                    week.sources.push(source);
                }
                for line in rule_lines(file, version) {
                    if !week.rules.contains(&line) {
                        week.rules.push(line);
                    }
                }
            }
            let holiday = holiday.map(|h| match h.provisional {
                true => format!("{} (provisional)", h.rule.name),
                false => h.rule.name.to_string(),
            });
            week.days.push(Day { date, holiday, no_rules: versions.is_none() });
        }
        week.months = months(book, &rules, code, &week.days)?;
        Ok(week)
    }
}

/// The name of the file that defines `code`, or its country's with the code.
fn display_name(rules: &Resolved, code: &str) -> String {
    let own = rules.layers.iter().find(|l| l.code.as_ref() == code && l.tenant.is_none());
    match (own, rules.layers.first()) {
        (Some(file), _) => file.name.clone(),
        (None, Some(country)) => {
            let sub = code.split_once('-').and_then(|(_, sub)| country.subdivisions.get(sub));
            match sub {
                Some(sub) => format!("{}, {}", sub.name, country.name),
                None => country.name.clone(),
            }
        }
        (None, None) => code.to_string(),
    }
}

/// The months `days` touch, each with its holidays: those the calendar
/// look-up lists for `code` (read from its JSON, so that whatever it says
/// of a holiday, `regional` or `provisional`, shows here as it does in
/// `rules calendar`), plus any a tenant policy layer adds.
fn months(book: &RuleBook, rules: &Resolved, code: &str, days: &[Day]) -> Result<Vec<Month>, CliError> {
    let firsts: BTreeSet<NaiveDate> = days.iter().filter_map(|d| d.date.with_day(1)).collect();
    let years: BTreeSet<i32> = firsts.iter().map(Datelike::year).collect();
    let citations: BTreeMap<&str, &str> = rules
        .calendars()
        .iter()
        .flat_map(|c| c.rules())
        .filter_map(|r| r.citation.as_deref().map(|c| (r.id.as_ref(), c)))
        .collect();
    let mut entries: Vec<HolidayEntry> = Vec::new();
    for year in years {
        for day in super::calendar_holidays(book, code, year)? {
            let text = |key: &str| day.get(key).and_then(Value::as_str).unwrap_or_default().to_string();
            let flag = |key: &str| day.get(key).and_then(Value::as_bool).unwrap_or(false);
            let Ok(date) = text("date").parse::<NaiveDate>() else { continue };
            let rule = text("rule");
            entries.push(HolidayEntry {
                date,
                name: text("name"),
                citation: citations.get(rule.as_str()).map(|c| c.to_string()),
                rule,
                regional: flag("regional"),
                provisional: flag("provisional"),
            });
        }
        for layer in rules.layers.iter().filter(|l| l.tenant.is_some()) {
            for (date, holiday) in layer.holidays.year(year) {
                entries.push(HolidayEntry {
                    date,
                    name: holiday.rule.name.to_string(),
                    rule: holiday.rule.id.to_string(),
                    citation: holiday.rule.citation.as_deref().map(str::to_string),
                    regional: false,
                    provisional: holiday.provisional,
                });
            }
        }
    }
    entries.sort_by(|a, b| (a.date, &a.rule).cmp(&(b.date, &b.rule)));
    Ok(firsts
        .into_iter()
        .map(|first| Month {
            first,
            holidays: entries.iter().filter(|h| h.date.with_day(1) == Some(first)).cloned().collect(),
        })
        .collect())
}

// ------------------------------------------------------------------ HTML

/// Text made safe for HTML content and attribute values.
pub(crate) fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

pub(crate) fn hex(rgb: [u8; 3]) -> String {
    format!("#{:02x}{:02x}{:02x}", rgb[0], rgb[1], rgb[2])
}

/// A whole page: `<head>` with the one style sheet, then `body`.
pub(crate) fn document(title: &str, body: &str) -> String {
    let css = STYLE
        .replace("ALLOWED", &hex(ALLOWED_RGB))
        .replace("CLOSED", &hex(CLOSED_RGB))
        .replace("ADDED", &hex(ADDED_RGB))
        .replace("REMOVED", &hex(REMOVED_RGB))
        .replace("PAIR", &GRID_WIDTH.to_string());
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>{}</title>\n<style>{css}</style>\n</head>\n<body>\n{body}</body>\n</html>\n",
        esc(title)
    )
}

/// The page's only style sheet (the colour names are replaced by the
/// constants above). No fonts or images are fetched.
const STYLE: &str = "
body { font: 14px/1.45 system-ui, -apple-system, 'Segoe UI', Roboto, 'DejaVu Sans', sans-serif; color: #222; margin: 24px; background: #fff; }
h1 { font-size: 22px; margin: 0 0 4px; }
h2 { font-size: 17px; margin: 24px 0 8px; border-bottom: 1px solid #ccc; padding-bottom: 2px; }
h3 { font-size: 15px; margin: 12px 0 6px; }
p.meta { margin: 2px 0; color: #444; }
p.zones { margin: 8px 0; font-weight: 600; }
.legend { margin: 10px 0 14px; }
.legend span.item { margin-right: 18px; white-space: nowrap; }
.swatch { display: inline-block; width: 14px; height: 14px; vertical-align: -2px; margin-right: 5px; border: 1px solid #999; }
.swatch.allowed { background: ALLOWED; } .swatch.closed { background: CLOSED; }
.swatch.added { background: ADDED; } .swatch.removed { background: REMOVED; }
.swatch.holiday { background: #ffd27a; }
.swatch.provisional { background: repeating-linear-gradient(45deg, #ffd27a 0 3px, #fff 3px 6px); border: 1px dashed #8a5a00; }
figure.grid { margin: 0 0 14px; }
figure.grid figcaption { font-weight: 600; margin-bottom: 2px; }
svg text { font: 11px 'DejaVu Sans', sans-serif; fill: #333; }
svg text.day { font-size: 12px; fill: #222; }
svg text.holiday { font-size: 10px; fill: #8a5a00; }
svg text.hour { text-anchor: middle; font-size: 10px; fill: #555; }
.months { display: flex; flex-wrap: wrap; gap: 18px; align-items: flex-start; }
table.month { border-collapse: collapse; }
table.month caption { font-weight: 600; text-align: left; padding-bottom: 2px; }
table.month th { font-size: 11px; color: #555; width: 30px; }
table.month td { width: 30px; height: 24px; text-align: center; border: 1px solid #ddd; font-size: 12px; }
table.month td.empty { border: none; }
table.month td.week { font-weight: 700; box-shadow: inset 0 0 0 2px #333; }
table.month td.holiday { background: #ffd27a; }
table.month td.provisional { background: repeating-linear-gradient(45deg, #ffd27a 0 3px, #fff 3px 6px); outline: 1px dashed #8a5a00; outline-offset: -3px; }
ul.holidays { padding-left: 18px; margin: 8px 0; }
.tag { display: inline-block; font-size: 11px; padding: 0 5px; border-radius: 3px; margin-left: 4px; background: #eee; color: #333; }
.tag.provisional { background: #fff3d6; color: #8a5a00; border: 1px dashed #8a5a00; }
.tag.added { background: #d8eef7; color: #0b4d6b; } .tag.removed { background: #fbe3d2; color: #8a3b00; } .tag.changed { background: #fff0b3; color: #5c4a00; }
table.rules { border-collapse: collapse; width: 100%; max-width: 1200px; }
table.rules th, table.rules td { border-bottom: 1px solid #ddd; padding: 5px 8px; text-align: left; vertical-align: top; }
table.rules th { font-size: 12px; color: #555; }
table.rules td.says { min-width: 260px; }
table.rules .desc { color: #555; font-size: 12px; }
table.rules tr.added td { background: #eef7fb; } table.rules tr.removed td { background: #fdf1e9; } table.rules tr.changed td { background: #fffbe6; }
code { font: 12px 'DejaVu Sans Mono', monospace; }
.pair { display: flex; gap: 28px; align-items: flex-start; }
.pair > div { flex: 0 0 PAIRpx; }
.side { font-weight: 700; font-size: 15px; }
.changes li { margin: 2px 0; }
p.note { background: #f4f4f4; padding: 8px 10px; border-left: 4px solid #888; }
";

/// The page `rules calendar CODE --windows --format html` writes.
pub fn page(week: &Week) -> String {
    let last = week.days.last().map_or(String::new(), |d| long_date(d.date));
    let first = week.days.first().map_or(String::new(), |d| long_date(d.date));
    let title = format!("{} ({}): contact hours {first} to {last}", week.name, week.code);
    let mut body = String::new();
    let _ =
        writeln!(body, "<h1>{} ({}) — when a collector may contact a debtor</h1>", esc(&week.name), esc(&week.code));
    let _ = writeln!(body, "<p class=\"meta\">{} to {}</p>", esc(&first), esc(&last));
    body.push_str(&intro(week));
    body.push_str(&legend(false));
    for (channels, ranges) in alike(week.channels.iter().map(|c| (c.channel, &c.ranges))) {
        body.push_str(&grid_figure(&channels_caption(&channels), &week.days, ranges, None));
    }
    body.push_str(&months_section(week));
    body.push_str(&rules_section(&week.rules, &BTreeMap::new()));
    document(&title, &body)
}

/// Channels whose weeks are alike share one grid: the groups, in the order
/// of their first channel.
pub(crate) fn alike<T: PartialEq>(channels: impl Iterator<Item = (Channel, T)>) -> Vec<(Vec<Channel>, T)> {
    let mut groups: Vec<(Vec<Channel>, T)> = Vec::new();
    for (channel, week) in channels {
        match groups.iter_mut().find(|(_, other)| *other == week) {
            Some((members, _)) => members.push(channel),
            None => groups.push((vec![channel], week)),
        }
    }
    groups
}

/// `call, visit`.
pub(crate) fn channels_caption(channels: &[Channel]) -> String {
    channels.iter().map(|c| c.as_str()).collect::<Vec<_>>().join(", ")
}

/// `Monday 23 November 2026`.
pub(crate) fn long_date(date: NaiveDate) -> String {
    date.format("%A %-d %B %Y").to_string()
}

/// The zones the hours are local to, and the files in force.
pub(crate) fn intro(week: &Week) -> String {
    let mut out = String::new();
    let zones = week.zones.iter().map(|z| esc(z)).collect::<Vec<_>>().join(", ");
    match week.zones.len() {
        0 => out.push_str("<p class=\"zones\">No time zone is known for this jurisdiction.</p>\n"),
        1 => {
            let _ = writeln!(out, "<p class=\"zones\">Hours are local time in the debtor's time zone: {zones}.</p>");
        }
        _ => {
            let _ = writeln!(
                out,
                "<p class=\"zones\">Hours are local time in each of the debtor's possible time zones: {zones}. A contact must be allowed in all of them.</p>"
            );
        }
    }
    if let Some(tenant) = &week.tenant {
        let _ = writeln!(out, "<p class=\"meta\">With tenant {}'s own policy.</p>", esc(tenant));
    }
    for source in &week.sources {
        let _ = writeln!(out, "<p class=\"meta\">Rules: {}</p>", esc(source));
    }
    out
}

/// The colour key; `changes` adds the diff's added and removed time.
pub(crate) fn legend(changes: bool) -> String {
    let item =
        |class: &str, text: &str| format!("<span class=\"item\"><span class=\"swatch {class}\"></span>{text}</span>");
    let mut items = vec![item("allowed", "contact allowed"), item("closed", "no contact")];
    if changes {
        items.push(item("added", "allowed now, not before"));
        items.push(item("removed", "allowed before, not now"));
    }
    items.push(item("holiday", "public holiday"));
    items.push(item("provisional", "provisional holiday (may still change)"));
    format!("<p class=\"legend\">{}</p>\n", items.join(""))
}

/// What a minute of a grid shows.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Cell {
    Closed,
    Allowed,
    Added,
    Removed,
}

impl Cell {
    fn rgb(self) -> [u8; 3] {
        match self {
            Cell::Closed => CLOSED_RGB,
            Cell::Allowed => ALLOWED_RGB,
            Cell::Added => ADDED_RGB,
            Cell::Removed => REMOVED_RGB,
        }
    }
}

/// Minute by minute, whether `ranges` allow it.
pub(crate) fn minutes(ranges: &[TimeRange]) -> Vec<bool> {
    let mut allowed = vec![false; 1440];
    for range in ranges {
        let end = usize::from(range.end).min(1440);
        allowed[usize::from(range.start).min(end)..end].fill(true);
    }
    allowed
}

/// A grid with its caption. With `before`, time allowed now and not before
/// is drawn as added, and time allowed before and not now as removed.
pub(crate) fn grid_figure(
    caption: &str,
    days: &[Day],
    ranges: &[Vec<TimeRange>],
    before: Option<&[Vec<TimeRange>]>,
) -> String {
    format!(
        "<figure class=\"grid\"><figcaption>{}</figcaption>\n{}</figure>\n",
        esc(caption),
        grid_svg(caption, days, ranges, before)
    )
}

fn grid_svg(caption: &str, days: &[Day], ranges: &[Vec<TimeRange>], before: Option<&[Vec<TimeRange>]>) -> String {
    let hours_width = 24 * HOUR_WIDTH;
    let rows = days.len() as u32;
    let width = GRID_WIDTH;
    let height = TOP_MARGIN + rows * ROW_HEIGHT + FRAME_WIDTH + 2;
    let mut svg = String::new();
    let _ = writeln!(
        svg,
        "<svg width=\"{width}\" height=\"{height}\" viewBox=\"0 0 {width} {height}\" shape-rendering=\"crispEdges\" role=\"img\" aria-label=\"{}: allowed hours per day\">",
        esc(caption)
    );
    for hour in 0..24 {
        let x = LEFT_MARGIN + hour * HOUR_WIDTH + HOUR_WIDTH / 2;
        let _ = writeln!(svg, "<text class=\"hour\" x=\"{x}\" y=\"{}\">{hour:02}</text>", TOP_MARGIN - 8);
    }
    let scale = f64::from(HOUR_WIDTH) / 60.0;
    for (row, day) in days.iter().enumerate() {
        let y = TOP_MARGIN + row as u32 * ROW_HEIGHT;
        let now = ranges.get(row).map(Vec::as_slice).unwrap_or_default();
        let was = before.map(|b| b.get(row).map(Vec::as_slice).unwrap_or_default());
        let _ = writeln!(svg, "<text class=\"day\" x=\"4\" y=\"{}\">{}</text>", y + 13, esc(&short_date(day.date)));
        let note = match (&day.holiday, day.no_rules) {
            (_, true) => Some("no rules in force".to_string()),
            (Some(name), false) => Some(truncate(name, 24)),
            (None, false) => None,
        };
        if let Some(note) = note {
            let _ = writeln!(svg, "<text class=\"holiday\" x=\"4\" y=\"{}\">{}</text>", y + 25, esc(&note));
        }
        let mut title = format!("{} {}", DAY_NAMES[day.date.weekday().num_days_from_monday() as usize], day.date);
        if let Some(name) = &day.holiday {
            let _ = write!(title, " (public holiday: {name})");
        }
        let _ = write!(title, ": {}", ranges_text(now));
        if let Some(was) = was {
            let _ = write!(title, " (before: {})", ranges_text(was));
        }
        let _ = writeln!(svg, "<g><title>{}</title>", esc(&title));
        let _ = writeln!(
            svg,
            "<rect x=\"{LEFT_MARGIN}\" y=\"{y}\" width=\"{hours_width}\" height=\"{ROW_HEIGHT}\" fill=\"{}\"/>",
            hex(CLOSED_RGB)
        );
        let now_minutes = minutes(now);
        let was_minutes = was.map(minutes);
        let cell = |minute: usize| match (now_minutes[minute], was_minutes.as_ref().map(|w| w[minute])) {
            (true, None | Some(true)) => Cell::Allowed,
            (true, Some(false)) => Cell::Added,
            (false, Some(true)) => Cell::Removed,
            (false, None | Some(false)) => Cell::Closed,
        };
        let mut start = 0;
        while start < 1440 {
            let kind = cell(start);
            let mut end = start + 1;
            while end < 1440 && cell(end) == kind {
                end += 1;
            }
            if kind != Cell::Closed {
                let _ = writeln!(
                    svg,
                    "<rect x=\"{:.1}\" y=\"{y}\" width=\"{:.1}\" height=\"{ROW_HEIGHT}\" fill=\"{}\"/>",
                    f64::from(LEFT_MARGIN) + start as f64 * scale,
                    (end - start) as f64 * scale,
                    hex(kind.rgb())
                );
            }
            start = end;
        }
        svg.push_str("</g>\n");
        let text_x = LEFT_MARGIN + hours_width + FRAME_WIDTH + 8;
        let _ = writeln!(svg, "<text x=\"{text_x}\" y=\"{}\">{}</text>", y + 19, esc(&ranges_text(now)));
    }
    // Hour and day separators, over the cells and away from their middles.
    let hours_height = rows * ROW_HEIGHT;
    for hour in 1..24 {
        let x = LEFT_MARGIN + hour * HOUR_WIDTH;
        let _ = writeln!(
            svg,
            "<rect x=\"{x}\" y=\"{TOP_MARGIN}\" width=\"1\" height=\"{hours_height}\" fill=\"#ffffff\"/>"
        );
    }
    for row in 1..rows {
        let y = TOP_MARGIN + row * ROW_HEIGHT;
        let _ = writeln!(
            svg,
            "<rect x=\"{LEFT_MARGIN}\" y=\"{y}\" width=\"{hours_width}\" height=\"1\" fill=\"#ffffff\"/>"
        );
    }
    // The frame, outside the hours: four bars, so no edge is blended.
    let (left, top, frame) = (LEFT_MARGIN - FRAME_WIDTH, TOP_MARGIN - FRAME_WIDTH, hex(FRAME_RGB));
    let outer_width = hours_width + 2 * FRAME_WIDTH;
    let bars = [
        (left, top, outer_width, FRAME_WIDTH),
        (left, TOP_MARGIN + hours_height, outer_width, FRAME_WIDTH),
        (left, TOP_MARGIN, FRAME_WIDTH, hours_height),
        (LEFT_MARGIN + hours_width, TOP_MARGIN, FRAME_WIDTH, hours_height),
    ];
    for (x, y, w, h) in bars {
        let _ = writeln!(svg, "<rect x=\"{x}\" y=\"{y}\" width=\"{w}\" height=\"{h}\" fill=\"{frame}\"/>");
    }
    svg.push_str("</svg>\n");
    svg
}

/// `Mon 23 Nov`.
fn short_date(date: NaiveDate) -> String {
    date.format("%a %-d %b").to_string()
}

fn truncate(text: &str, chars: usize) -> String {
    if text.chars().count() <= chars {
        return text.to_string();
    }
    let mut short: String = text.chars().take(chars - 1).collect();
    short.push('…');
    short
}

/// The month calendars and the list of their holidays.
pub(crate) fn months_section(week: &Week) -> String {
    let in_week: BTreeSet<NaiveDate> = week.days.iter().map(|d| d.date).collect();
    let mut out = String::from("<h2>Holidays</h2>\n<div class=\"months\">\n");
    for month in &week.months {
        out.push_str(&month_table(month, &in_week));
    }
    out.push_str("</div>\n");
    let holidays: Vec<&HolidayEntry> = week.months.iter().flat_map(|m| m.holidays.iter()).collect();
    if holidays.is_empty() {
        out.push_str("<p>No public holiday in these months.</p>\n");
        return out;
    }
    out.push_str("<ul class=\"holidays\">\n");
    for holiday in holidays {
        let _ = write!(
            out,
            "<li>{} — {} <code>{}</code>",
            esc(&holiday.date.format("%a %-d %b %Y").to_string()),
            esc(&holiday.name),
            esc(&holiday.rule)
        );
        if let Some(citation) = &holiday.citation {
            let _ = write!(out, " · {}", esc(citation));
        }
        if holiday.regional {
            out.push_str("<span class=\"tag\">regional: closes the day for a debtor whose region is unknown</span>");
        }
        if holiday.provisional {
            out.push_str("<span class=\"tag provisional\">provisional</span>");
        }
        out.push_str("</li>\n");
    }
    out.push_str("</ul>\n");
    out
}

fn month_table(month: &Month, in_week: &BTreeSet<NaiveDate>) -> String {
    let mut out = format!(
        "<table class=\"month\"><caption>{}</caption>\n<thead><tr><th>Mo</th><th>Tu</th><th>We</th><th>Th</th><th>Fr</th><th>Sa</th><th>Su</th></tr></thead>\n<tbody><tr>",
        esc(&month.first.format("%B %Y").to_string())
    );
    let lead = month.first.weekday().num_days_from_monday();
    for _ in 0..lead {
        out.push_str("<td class=\"empty\"></td>");
    }
    let mut date = month.first;
    let mut column = lead;
    while date.month() == month.first.month() {
        if column == 7 {
            out.push_str("</tr>\n<tr>");
            column = 0;
        }
        let holidays: Vec<&HolidayEntry> = month.holidays.iter().filter(|h| h.date == date).collect();
        let mut classes = Vec::new();
        if in_week.contains(&date) {
            classes.push("week");
        }
        if holidays.iter().any(|h| !h.provisional) {
            classes.push("holiday");
        } else if !holidays.is_empty() {
            classes.push("provisional");
        }
        let names: Vec<String> = holidays
            .iter()
            .map(|h| if h.provisional { format!("{} (provisional)", h.name) } else { h.name.clone() })
            .collect();
        let title = if names.is_empty() { String::new() } else { format!(" title=\"{}\"", esc(&names.join("; "))) };
        let _ = write!(out, "<td class=\"{}\"{title}>{}</td>", classes.join(" "), date.day());
        column += 1;
        match date.succ_opt() {
            Some(next) => date = next,
            None => break,
        }
    }
    out.push_str("</tr></tbody></table>\n");
    out
}

/// How a rule differs, for the diff's rules lists.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Mark {
    Added,
    Removed,
    Changed,
}

impl Mark {
    fn class(self) -> &'static str {
        match self {
            Mark::Added => "added",
            Mark::Removed => "removed",
            Mark::Changed => "changed",
        }
    }
}

/// The rules that shape the week, each with its citation; `marks` (by rule id) flags a diff's changes.
pub(crate) fn rules_section(rules: &[RuleLine], marks: &BTreeMap<String, Mark>) -> String {
    let mut out = String::from("<h2>Rules that shape these days</h2>\n");
    if rules.is_empty() {
        out.push_str("<p>No rules in force.</p>\n");
        return out;
    }
    out.push_str(
        "<table class=\"rules\"><thead><tr><th>rule</th><th>what it says</th><th>citation</th><th>basis</th></tr></thead>\n<tbody>\n",
    );
    for rule in rules {
        let mark = marks.get(&rule.id);
        let class = mark.map(|m| format!(" class=\"{}\"", m.class())).unwrap_or_default();
        let tag = mark.map(|m| format!("<span class=\"tag {0}\">{0}</span>", m.class())).unwrap_or_default();
        let _ = writeln!(
            out,
            "<tr{class}><td><code>{}</code>{tag}<br><span class=\"desc\">{} · {}</span></td><td class=\"says\">{}<br><span class=\"desc\">{}</span></td><td>{}</td><td>{}</td></tr>",
            esc(&rule.id),
            esc(rule.kind.as_str()),
            esc(&rule.jurisdiction),
            esc(&rule.says),
            esc(&rule.description),
            esc(&rule.citation),
            esc(rule.basis)
        );
    }
    out.push_str("</tbody></table>\n");
    out
}
