//! The `ventana` binary as compliance officers use it: `rules check`,
//! `rules calendar` and `explain`, with their outputs and exit codes.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use serde_json::Value;

fn ventana(args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_ventana"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("ventana runs");
    let mut pipe = child.stdin.take().expect("stdin");
    // The command may exit before reading (e.g. on a bad flag): a broken pipe is fine.
    let _ = pipe.write_all(stdin.unwrap_or_default().as_bytes());
    drop(pipe);
    child.wait_with_output().expect("ventana finishes")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn rules_check_passes_on_the_shipped_jurisdictions() {
    let output = ventana(&["rules", "check", "jurisdictions"], None);
    assert!(output.status.success(), "stdout: {}\nstderr: {}", stdout(&output), stderr(&output));
    assert!(stdout(&output).starts_with("ok: "), "{}", stdout(&output));
}

#[test]
fn rules_check_reports_file_line_and_reason_and_fails() {
    let dir = tempfile::tempdir().expect("temp dir");
    let good =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("jurisdictions/PE.toml")).expect("PE.toml");
    let broken = good.replace("mon_fri = [\"07:00-20:00\"]", "mon_fri = [\"07:00-19:61\"]");
    let line = broken.lines().position(|l| l.contains("19:61")).expect("edited line") + 1;
    std::fs::write(dir.path().join("PE.toml"), broken).expect("write");
    let path = dir.path().to_string_lossy().into_owned();
    let output = ventana(&["rules", "check", &path], None);
    assert_eq!(output.status.code(), Some(1));
    let report = stdout(&output) + &stderr(&output);
    assert!(report.contains(&format!("PE.toml:{line}: ")), "{report}");
    assert!(report.contains("19:61"), "{report}");
}

#[test]
fn rules_check_fails_when_an_example_disagrees() {
    let dir = tempfile::tempdir().expect("temp dir");
    let good =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("jurisdictions/PE.toml")).expect("PE.toml");
    let wrong = good.replace("until = 2026-11-30T07:00:00-05:00", "until = 2026-11-30T08:00:00-05:00");
    std::fs::write(dir.path().join("PE.toml"), wrong).expect("write");
    let output = ventana(&["rules", "check", &dir.path().to_string_lossy()], None);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stdout(&output)
            .contains("expected defer until 2026-11-30T13:00:00+00:00, got defer until 2026-11-30T12:00:00+00:00"),
        "{}",
        stdout(&output)
    );
}

#[test]
fn calendar_lists_holidays_as_json() {
    let output = ventana(&["rules", "calendar", "PE", "--year", "2026", "--format", "json"], None);
    assert!(output.status.success(), "{}", stderr(&output));
    let days: Value = serde_json::from_str(&stdout(&output)).expect("json");
    let days = days.as_array().expect("list");
    assert!(days.iter().any(|d| d["date"] == "2026-07-28" && d["rule"] == "pe-independence-1"));
    assert!(days.iter().any(|d| d["date"] == "2026-04-03" && d["name"] == "Viernes Santo"));
}

#[test]
fn calendar_shows_windows_per_day() {
    let output = ventana(
        &[
            "rules",
            "calendar",
            "PE",
            "--windows",
            "--from",
            "2026-07-27",
            "--days",
            "3",
            "--channel",
            "call",
            "--format",
            "json",
        ],
        None,
    );
    assert!(output.status.success(), "{}", stderr(&output));
    let days: Value = serde_json::from_str(&stdout(&output)).expect("json");
    assert_eq!(days[0]["windows"], serde_json::json!(["07:00-20:00"]));
    assert_eq!(days[1]["windows"], serde_json::json!([]));
    assert_eq!(days[1]["holiday"], "Fiestas Patrias (Independencia)");
}

const PERU_CALL: &str = r#"{"tenant":"acme","intent_id":"i-1","debtor_id":"d-1","channel":"call","party":"debtor","stage":"extrajudicial","jurisdiction":"PE"}"#;

#[test]
fn explain_prints_the_decision_as_json() {
    let output = ventana(&["explain", "--at", "2026-11-27T20:00:00-05:00", "-"], Some(PERU_CALL));
    assert!(output.status.success(), "{}", stderr(&output));
    let decision: Value = serde_json::from_str(&stdout(&output)).expect("json");
    assert_eq!(decision["decision"], "defer");
    assert_eq!(decision["at"], "2026-11-30T12:00:00Z");
    assert_eq!(decision["code"], Value::Null);
    assert_eq!(decision["reasons"][0]["rule"], "pe-art62b-hours");
    assert_eq!(decision["reasons"][0]["jurisdiction"], "PE");
    assert!(decision["reasons"][0]["citation"].as_str().is_some_and(|c| c.contains("art. 62")));
}

#[test]
fn explain_names_the_bad_field_and_exits_2() {
    let cases = [
        (PERU_CALL.replace("\"call\"", "\"fax\""), "channel"),
        (PERU_CALL.replace("\"PE\"", "\"XX\""), "jurisdiction"),
        (
            PERU_CALL.replace(
                "\"stage\":\"extrajudicial\",",
                "\"time_zones\":[\"Mars/Olympus\"],\"stage\":\"extrajudicial\",",
            ),
            "time_zones[0]",
        ),
        (PERU_CALL.replace("\"party\":\"debtor\",", "\"not_before\":\"tomorrow\",\"party\":\"debtor\","), "not_before"),
        (PERU_CALL.replace("\"tenant\":\"acme\",", ""), "tenant"),
    ];
    for (intent, field) in cases {
        let output = ventana(&["explain", "--at", "2026-11-27T10:00:00-05:00", "-"], Some(&intent));
        assert_eq!(output.status.code(), Some(2), "{intent}");
        assert!(stderr(&output).contains(&format!("{field}:")), "expected {field} in {}", stderr(&output));
    }
    let output = ventana(&["explain", "--at", "friday", "-"], Some(PERU_CALL));
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr(&output).contains("--at"), "{}", stderr(&output));
}

#[test]
fn explain_batch_answers_every_line_in_order() {
    let input = format!(
        "{{\"at\":\"2026-11-27T19:59:00-05:00\",\"intent\":{PERU_CALL}}}\nnot json\n{{\"at\":\"2026-11-27T10:00:00-05:00\",\"intent\":{}}}\n{{\"at\":\"2026-11-28T10:00:00-05:00\",\"intent\":{PERU_CALL}}}\n",
        PERU_CALL.replace("\"call\"", "\"fax\"")
    );
    let output = ventana(&["explain", "--batch"], Some(&input));
    assert!(output.status.success(), "{}", stderr(&output));
    let lines: Vec<Value> = stdout(&output).lines().map(|l| serde_json::from_str(l).expect("json line")).collect();
    assert_eq!(lines.len(), 4);
    assert_eq!(lines[0]["decision"], "release");
    assert!(lines[1]["error"].as_str().is_some_and(|e| e.contains("not JSON")));
    assert!(lines[2]["error"].as_str().is_some_and(|e| e.contains("channel")));
    assert_eq!(lines[3]["decision"], "defer");
}
