//! `ventana rules diff` as a gate in the officers' repository: exit 0 when
//! nothing differs, 1 when something does, 2 when a side does not load or
//! cannot be read; each side a directory or `REV:DIR` of a git repository.
//! Also `rules calendar --format html`'s usage errors.

use std::path::Path;
use std::process::{Command, Output};

fn ventana_in(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ventana")).args(args).current_dir(dir).output().expect("ventana runs")
}

fn ventana(args: &[&str]) -> Output {
    ventana_in(Path::new(env!("CARGO_MANIFEST_DIR")), args)
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

const BEFORE: &str = "tests/fixtures/rules/diff-before";
const AFTER: &str = "tests/fixtures/rules/diff-after";

fn fixture(side: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(side).join("PE.toml");
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn rules_diff_exits_1_on_a_difference_and_0_on_none() {
    let same = ventana(&["rules", "diff", BEFORE, BEFORE, "--year", "2026"]);
    assert_eq!(same.status.code(), Some(0), "{}{}", text(&same.stdout), text(&same.stderr));
    assert!(text(&same.stdout).contains("No differences"), "{}", text(&same.stdout));

    let changed = ventana(&["rules", "diff", BEFORE, AFTER, "--year", "2026"]);
    let out = text(&changed.stdout);
    assert_eq!(changed.status.code(), Some(1), "{out}{}", text(&changed.stderr));
    for expected in [
        "because of hours rule pe-art62b-hours — Ley 29571, art. 62(b)",
        "added    cap pe-fixture-one-call-a-day — test fixture",
        "[pe-fixture-farmers-day]",
        "ventana audit replay",
    ] {
        assert!(out.contains(expected), "{expected:?} missing from:\n{out}");
    }

    let json =
        ventana(&["rules", "diff", BEFORE, AFTER, "--from", "2026-06-22", "--to", "2026-06-28", "--format", "json"]);
    assert_eq!(json.status.code(), Some(1));
    let value: serde_json::Value = serde_json::from_slice(&json.stdout).expect("JSON");
    assert_eq!((value["differs"].as_bool(), value["from"].as_str()), (Some(true), Some("2026-06-22")));
}

#[test]
fn rules_diff_refuses_a_side_that_does_not_load_with_its_file_and_line() {
    let dir = tempfile::tempdir().expect("dir");
    let broken = fixture(BEFORE).replace("mon_fri = [\"07:00-20:00\"]", "mon_fri = [\"07:00-19:61\"]");
    let line = broken.lines().position(|l| l.contains("19:61")).expect("the edited line") + 1;
    std::fs::write(dir.path().join("PE.toml"), broken).expect("write");
    let path = dir.path().to_string_lossy().into_owned();
    let output = ventana(&["rules", "diff", BEFORE, &path, "--year", "2026"]);
    assert_eq!(output.status.code(), Some(2), "{}", text(&output.stdout));
    assert!(text(&output.stderr).contains(&format!("PE.toml:{line}: ")), "{}", text(&output.stderr));

    let missing = ventana(&["rules", "diff", BEFORE, "no/such/dir", "--year", "2026"]);
    assert_eq!(missing.status.code(), Some(2));
    let reversed = ventana(&["rules", "diff", BEFORE, AFTER, "--from", "2026-02-01", "--to", "2026-01-01"]);
    assert_eq!(reversed.status.code(), Some(2));
}

fn git(repo: &Path, args: &[&str]) {
    let output = Command::new("git")
        .args(["-c", "user.name=Ventana tests", "-c", "user.email=tests@ventana.invalid", "-c", "commit.gpgsign=false"])
        .args(args)
        .current_dir(repo)
        .output()
        .expect("git runs");
    assert!(output.status.success(), "git {args:?}: {}", text(&output.stderr));
}

#[test]
fn rules_diff_reads_git_revisions() {
    let repo = tempfile::tempdir().expect("a repository");
    let repo = repo.path();
    git(repo, &["init", "-q"]);
    std::fs::create_dir_all(repo.join("jurisdictions/tenants")).expect("mkdir");
    std::fs::write(repo.join("jurisdictions/PE.toml"), fixture(BEFORE)).expect("write");
    std::fs::write(repo.join("jurisdictions/README.md"), "not a rules file").expect("write");
    git(repo, &["add", "."]);
    git(repo, &["commit", "-q", "-m", "before"]);
    std::fs::write(repo.join("jurisdictions/PE.toml"), fixture(AFTER)).expect("write");
    git(repo, &["commit", "-q", "-am", "after"]);

    let changed = ventana_in(repo, &["rules", "diff", "HEAD~1:jurisdictions", "HEAD:jurisdictions", "--year", "2026"]);
    let out = text(&changed.stdout);
    assert_eq!(changed.status.code(), Some(1), "{out}{}", text(&changed.stderr));
    assert!(out.contains("OLD: HEAD~1:jurisdictions") && out.contains("pe-art62b-hours"), "{out}");
    // A revision against the working tree; a trailing slash is the same directory.
    let same = ventana_in(repo, &["rules", "diff", "HEAD:jurisdictions/", "jurisdictions", "--year", "2026"]);
    assert_eq!(same.status.code(), Some(0), "{}{}", text(&same.stdout), text(&same.stderr));

    // A broken file in a revision is named by revision, path and line.
    let broken = fixture(AFTER).replace("mon_fri = [\"08:00-20:00\"]", "mon_fri = [\"08:00-19:61\"]");
    let line = broken.lines().position(|l| l.contains("19:61")).expect("the edited line") + 1;
    std::fs::write(repo.join("jurisdictions/PE.toml"), broken).expect("write");
    git(repo, &["commit", "-q", "-am", "broken"]);
    let output = ventana_in(repo, &["rules", "diff", "HEAD~1:jurisdictions", "HEAD:jurisdictions", "--year", "2026"]);
    assert_eq!(output.status.code(), Some(2), "{}", text(&output.stdout));
    let stderr = text(&output.stderr);
    assert!(stderr.contains(&format!("HEAD:jurisdictions/PE.toml:{line}: ")), "{stderr}");

    // An unknown revision is a usage error that says what git said.
    let unknown = ventana_in(repo, &["rules", "diff", "nope:jurisdictions", "HEAD~1:jurisdictions", "--year", "2026"]);
    assert_eq!(unknown.status.code(), Some(2));
    assert!(text(&unknown.stderr).contains("git ls-tree"), "{}", text(&unknown.stderr));
}

#[test]
fn rules_calendar_html_needs_the_week() {
    let holidays_only = ventana(&["rules", "calendar", "PE", "--year", "2026", "--format", "html"]);
    assert_eq!(holidays_only.status.code(), Some(2));
    assert!(text(&holidays_only.stderr).contains("--windows"), "{}", text(&holidays_only.stderr));
    // Text and JSON still list one channel's windows.
    let no_channel = ventana(&["rules", "calendar", "PE", "--windows", "--from", "2026-12-07"]);
    assert_eq!(no_channel.status.code(), Some(2));
    assert!(text(&no_channel.stderr).contains("--channel"), "{}", text(&no_channel.stderr));
    let one_channel = ventana(&["rules", "calendar", "PE", "--windows", "--from", "2026-12-07", "--channel", "sms"]);
    assert!(one_channel.status.success());
    assert!(text(&one_channel.stdout).starts_with("2026-12-07 Monday    07:00-20:00"), "{}", text(&one_channel.stdout));
    let page = ventana(&["rules", "calendar", "PE", "--windows", "--from", "2026-12-07", "--format", "html"]);
    assert!(page.status.success());
    assert!(text(&page.stdout).starts_with("<!DOCTYPE html>"));
}
