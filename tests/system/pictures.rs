//! The HTML pages as an officer sees them: `ventana rules calendar …
//! --format html` and `ventana rules diff … --format html` rendered by a
//! real browser, headless Chromium, to PNG; the tests read the pixels. Each
//! grid is found by its frame (a colour nothing else on a page uses), and
//! the colour in the middle of an hour says whether it is allowed. No
//! Chromium is a failure, never a skip (`.ci/run` installs it).

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use ventana::officer::picture::{ALLOWED_RGB, CLOSED_RGB, FRAME_RGB, FRAME_WIDTH, HOUR_WIDTH, REMOVED_RGB, ROW_HEIGHT};

/// Runs `ventana` in the repository's root.
fn ventana(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ventana"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("ventana runs")
}

/// Renders `html` to a PNG `width` × `height` CSS pixels at scale 1.
fn screenshot(html: &Path, width: u32, height: u32) -> PathBuf {
    let dir = html.parent().expect("the page's directory");
    let png = html.with_extension("png");
    let mut child = match Command::new("chromium")
        .args(["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--no-first-run"])
        .arg("--force-device-scale-factor=1")
        .arg(format!("--user-data-dir={}", dir.join("chromium-profile").display()))
        .arg(format!("--window-size={width},{height}"))
        .arg(format!("--screenshot={}", png.display()))
        .arg(format!("file://{}", html.display()))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
    {
        Ok(child) => child,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => panic!(
            "chromium is not installed: the picture tests render the pages in a real browser \
             (apt-get install chromium; .ci/run installs it)"
        ),
        Err(e) => panic!("chromium does not start: {e}"),
    };
    let deadline = Instant::now() + Duration::from_secs(90);
    let status = loop {
        if let Some(status) = child.try_wait().expect("chromium's status") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("chromium did not finish rendering {} in 90 s", html.display());
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut stderr = String::new();
    if let Some(mut pipe) = child.stderr.take() {
        let _ = pipe.read_to_string(&mut stderr);
    }
    assert!(status.success() && png.is_file(), "chromium failed to render {}: {stderr}", html.display());
    png
}

/// A decoded screenshot.
struct Image {
    width: u32,
    height: u32,
    channels: usize,
    pixels: Vec<u8>,
}

impl Image {
    fn read(path: &Path) -> Image {
        let file = std::io::BufReader::new(std::fs::File::open(path).expect("the screenshot"));
        let mut decoder = png::Decoder::new(file);
        decoder.set_transformations(png::Transformations::EXPAND | png::Transformations::STRIP_16);
        let mut reader = decoder.read_info().expect("a PNG");
        let mut pixels = vec![0; reader.output_buffer_size().expect("a size")];
        let info = reader.next_frame(&mut pixels).expect("the PNG's pixels");
        let channels = match info.color_type {
            png::ColorType::Rgb => 3,
            png::ColorType::Rgba => 4,
            other => panic!("unexpected PNG colour type {other:?}"),
        };
        pixels.truncate(info.buffer_size());
        Image { width: info.width, height: info.height, channels, pixels }
    }

    fn rgb(&self, x: u32, y: u32) -> [u8; 3] {
        assert!(
            x < self.width && y < self.height,
            "({x}, {y}) is outside the {}×{} screenshot",
            self.width,
            self.height
        );
        let at = (y as usize * self.width as usize + x as usize) * self.channels;
        [self.pixels[at], self.pixels[at + 1], self.pixels[at + 2]]
    }

    fn is_frame(&self, x: u32, y: u32) -> bool {
        x < self.width && y < self.height && self.rgb(x, y) == FRAME_RGB
    }

    /// The top-left corner of every grid's frame, top to bottom, left to right.
    fn frames(&self) -> Vec<(u32, u32)> {
        let mut corners = Vec::new();
        for y in 0..self.height {
            for x in 0..self.width {
                let corner = self.is_frame(x, y)
                    && (x == 0 || !self.is_frame(x - 1, y))
                    && (y == 0 || !self.is_frame(x, y - 1))
                    && self.is_frame(x + 1, y)
                    && self.is_frame(x, y + 1);
                if corner {
                    corners.push((x, y));
                }
            }
        }
        corners
    }

    /// The colour in the middle of the minute `hh:mm` of `row` in the grid framed at `frame`.
    fn at(&self, frame: (u32, u32), row: u32, clock: &str) -> [u8; 3] {
        let (h, m) = clock.split_once(':').expect("HH:MM");
        let minute: u32 = h.parse::<u32>().expect("hours") * 60 + m.parse::<u32>().expect("minutes");
        let x = frame.0 + FRAME_WIDTH + minute * HOUR_WIDTH / 60;
        let y = frame.1 + FRAME_WIDTH + row * ROW_HEIGHT + ROW_HEIGHT / 2;
        self.rgb(x, y)
    }
}

/// Writes `html` to a file in `dir`, renders it and reads the pixels.
fn render(dir: &Path, name: &str, html: &[u8], width: u32, height: u32) -> Image {
    let page = dir.join(format!("{name}.html"));
    std::fs::write(&page, html).expect("write the page");
    Image::read(&screenshot(&page, width, height))
}

#[test]
fn the_week_picture_shows_perus_hours_in_a_browser() {
    // Monday 7 December 2026; Tuesday 8 and Wednesday 9 are public holidays in Peru.
    let output = ventana(&["rules", "calendar", "PE", "--windows", "--from", "2026-12-07", "--format", "html"]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let dir = tempfile::tempdir().expect("a directory for the pictures");
    let image = render(dir.path(), "pe-week", &output.stdout, 1400, 3000);
    let frames = image.frames();
    // PE.toml gives every channel the same hours, so they share one grid.
    assert_eq!(frames.len(), 1, "grids found at {frames:?}");
    let grid = frames[0];
    let (allowed, closed) = (ALLOWED_RGB, CLOSED_RGB);
    // Monday: 07:00–20:00 (Ley 29571, art. 62(b)).
    assert_eq!(image.at(grid, 0, "06:30"), closed, "Monday 06:30");
    assert_eq!(image.at(grid, 0, "07:30"), allowed, "Monday 07:30");
    assert_eq!(image.at(grid, 0, "19:30"), allowed, "Monday 19:30");
    assert_eq!(image.at(grid, 0, "20:30"), closed, "Monday 20:30");
    // Tuesday (Inmaculada Concepción) and Wednesday (Batalla de Ayacucho): closed all day.
    for row in [1, 2] {
        for hour in 0..24 {
            assert_eq!(image.at(grid, row, &format!("{hour:02}:30")), closed, "holiday row {row}, {hour:02}:30");
        }
    }
    // Thursday and Friday as Monday, to a few minutes of the edges (the hour lines are white);
    // Saturday and Sunday closed.
    for row in [3, 4] {
        assert_eq!(image.at(grid, row, "06:55"), closed, "row {row} 06:55");
        assert_eq!(image.at(grid, row, "07:05"), allowed, "row {row} 07:05");
        assert_eq!(image.at(grid, row, "19:55"), allowed, "row {row} 19:55");
        assert_eq!(image.at(grid, row, "20:05"), closed, "row {row} 20:05");
    }
    for row in [5, 6] {
        for hour in 0..24 {
            assert_eq!(image.at(grid, row, &format!("{hour:02}:30")), closed, "weekend row {row}, {hour:02}:30");
        }
    }
}

/// Argentina's Soberanía 2027 falls on Saturday 20 November and is not
/// decided (Decreto 614/2025): Friday 19 is a closed, provisional day.
#[test]
fn the_week_picture_closes_an_undecided_holidays_candidates_in_a_browser() {
    let output = ventana(&["rules", "calendar", "AR", "--windows", "--from", "2027-11-15", "--format", "html"]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let page = String::from_utf8_lossy(&output.stdout);
    assert!(page.contains("Día de la Soberanía Nacional (provisional)"), "the row names the provisional day");
    let dir = tempfile::tempdir().expect("a directory for the pictures");
    let image = render(dir.path(), "ar-week", &output.stdout, 1400, 3000);
    let grid = image.frames()[0];
    assert_eq!(image.at(grid, 3, "10:30"), ALLOWED_RGB, "Thursday 18 is an ordinary day");
    for hour in 0..24 {
        assert_eq!(image.at(grid, 4, &format!("{hour:02}:30")), CLOSED_RGB, "Friday 19, {hour:02}:30");
    }
}

#[test]
fn the_diff_page_shows_before_and_after_side_by_side_in_a_browser() {
    // The week of the fixture's new holiday (Wednesday 24 June), calls and visits now from 08:00.
    let before = "tests/fixtures/rules/diff-before";
    let after = "tests/fixtures/rules/diff-after";
    let args = ["rules", "diff", before, after, "--from", "2026-06-22", "--to", "2026-06-28", "--format", "html"];
    let output = ventana(&args);
    assert_eq!(output.status.code(), Some(1), "{}", String::from_utf8_lossy(&output.stderr));
    let dir = tempfile::tempdir().expect("a directory for the pictures");
    let image = render(dir.path(), "pe-diff", &output.stdout, 2000, 3000);
    let frames = image.frames();
    // Two pairs: calls and visits (07:00–08:00 and the holiday), then the messages (the holiday only).
    assert_eq!(frames.len(), 4, "grids found at {frames:?}");
    for pair in frames.chunks(2) {
        let [left, right] = pair else { unreachable!("chunks of two") };
        assert_eq!(left.1, right.1, "before and after side by side: {frames:?}");
        assert!(left.0 < right.0, "before on the left: {frames:?}");
    }
    let (voice_before, voice_after) = (frames[0], frames[1]);
    // Monday 22 June: 07:30 allowed before, no longer after; 08:30 allowed in both.
    assert_eq!(image.at(voice_before, 0, "07:30"), ALLOWED_RGB);
    assert_eq!(image.at(voice_after, 0, "07:30"), REMOVED_RGB);
    assert_eq!(image.at(voice_before, 0, "08:30"), ALLOWED_RGB);
    assert_eq!(image.at(voice_after, 0, "08:30"), ALLOWED_RGB);
    assert_eq!(image.at(voice_after, 0, "06:30"), CLOSED_RGB);
    // Wednesday 24 June became a holiday: the day's hours are removed.
    assert_eq!(image.at(voice_before, 2, "10:30"), ALLOWED_RGB);
    assert_eq!(image.at(voice_after, 2, "10:30"), REMOVED_RGB);
    let (messages_before, messages_after) = (frames[2], frames[3]);
    assert_eq!(image.at(messages_before, 0, "07:30"), ALLOWED_RGB);
    assert_eq!(image.at(messages_after, 0, "07:30"), ALLOWED_RGB);
    assert_eq!(image.at(messages_before, 2, "07:30"), ALLOWED_RGB);
    assert_eq!(image.at(messages_after, 2, "07:30"), REMOVED_RGB);
    // The weekend is closed on both sides.
    assert_eq!(image.at(voice_before, 5, "10:30"), CLOSED_RGB);
    assert_eq!(image.at(voice_after, 6, "10:30"), CLOSED_RGB);
}
