//! The `ventana` binary as compliance officers, operators and auditors use
//! it: `rules check`, `rules calendar`, `explain`, `keys`, `serve --dev` and
//! `audit export`, with their outputs and exit codes.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use serde_json::Value;
use ventana::app::audit as ops;

use crate::on_both_backends;
use crate::support::server::*;

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
    assert!(stdout(&output).lines().last().is_some_and(|l| l.starts_with("ok: ")), "{}", stdout(&output));
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

/// The shipped files as of 2026-11-30: Argentina's and CABA's bridge days and
/// Ecuador's decreed days are not confirmed 120 days ahead; every pending
/// decision of the coming year is listed; `--strict` turns the horizon into
/// an error.
#[test]
fn rules_check_warns_of_short_horizons_and_lists_pending_decisions() {
    let output = ventana(&["rules", "check", "jurisdictions", "--today", "2026-11-30"], None);
    assert!(output.status.success(), "{}", stderr(&output));
    let text = stdout(&output);
    let short: Vec<&str> = text.lines().filter(|l| l.contains("less than 120 days")).collect();
    assert_eq!(short.len(), 3, "{text}");
    for file in ["AR.toml: holidays confirmed through 2026-12-31", "AR-C.toml", "EC.toml"] {
        assert!(short.iter().any(|l| l.contains(file)), "{file} not warned:\n{text}");
    }
    assert!(text.contains("AR.toml: pending decision: 2027-11-20 Día de la Soberanía Nacional [ar-sovereignty]: closed on 2027-11-19 (Fri), 2027-11-20 (Sat), 2027-11-22 (Mon)"), "{text}");
    assert_eq!(text.lines().filter(|l| l.contains("pending decision")).count(), 7, "{text}");
    let strict = ventana(&["rules", "check", "jurisdictions", "--today", "2026-11-30", "--strict"], None);
    assert_eq!(strict.status.code(), Some(1), "{}", stdout(&strict));
    assert!(stderr(&strict).contains("3 file(s) confirmed less than 120 days ahead"), "{}", stderr(&strict));
    // Thirty days of warning are enough for whoever says so.
    let relaxed = ventana(
        &["rules", "check", "jurisdictions", "--today", "2026-11-30", "--strict", "--horizon-days", "30"],
        None,
    );
    assert_eq!(relaxed.status.code(), Some(1), "EC's list is past its horizon:\n{}", stdout(&relaxed));
    assert!(stderr(&relaxed).contains("1 file(s)"), "{}", stderr(&relaxed));
}

/// A file with holidays that states no horizon still loads (older officers'
/// repositories, older revisions in `rules diff`), but is reported as
/// unconfirmed, and `--strict` refuses it.
#[test]
fn a_file_without_a_horizon_loads_but_is_reported_unconfirmed() {
    let dir = tempfile::tempdir().expect("temp dir");
    let pe = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("jurisdictions/PE.toml")).expect("PE");
    let without: String =
        pe.lines().filter(|l| !l.starts_with("confirmed_through")).map(|l| format!("{l}\n")).collect();
    assert_ne!(without, pe, "PE.toml states its horizon");
    std::fs::write(dir.path().join("PE.toml"), without).expect("write");
    let path = dir.path().to_string_lossy().into_owned();
    let output = ventana(&["rules", "check", &path, "--today", "2026-11-30"], None);
    assert!(output.status.success(), "{}{}", stdout(&output), stderr(&output));
    assert!(stdout(&output).contains("PE.toml: states no `confirmed_through`"), "{}", stdout(&output));
    let strict = ventana(&["rules", "check", &path, "--today", "2026-11-30", "--strict"], None);
    assert_eq!(strict.status.code(), Some(1), "{}", stdout(&strict));
}

#[test]
fn rules_coverage_reports_horizons_and_pending_days_as_json() {
    let output = ventana(&["rules", "coverage", "jurisdictions", "--today", "2026-11-30", "--format", "json"], None);
    assert!(output.status.success(), "{}", stderr(&output));
    let files: Value = serde_json::from_str(&stdout(&output)).expect("json");
    let file = |code: &str| files.as_array().and_then(|f| f.iter().find(|f| f["jurisdiction"] == code)).cloned();
    let ar = file("AR").expect("AR");
    assert_eq!(ar["confirmed_through"], "2026-12-31");
    assert_eq!(ar["days_ahead"], 31);
    assert_eq!(ar["set_by"], "ar-tourist-bridges");
    assert_eq!(ar["short"], true);
    assert_eq!(ar["ending_lists"][0]["last"], "2026-12-07");
    let py = file("PY").expect("PY");
    assert_eq!(py["short"], false);
    let chaco = py["pending"].as_array().and_then(|p| p.iter().find(|p| p["rule"] == "py-chaco-peace")).expect("Chaco");
    assert_eq!(chaco["days"], serde_json::json!(["2027-06-12", "2027-06-14"]));
    let us = file("US").expect("US");
    assert_eq!(us["confirmed_through"], Value::Null, "no holidays of its own");
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

// ------------------------------------------------------------------ keys

/// `ventana keys …` against the SQLite file `db`.
fn keys(db: &Path, args: &[&str]) -> Output {
    let url = format!("sqlite://{}", db.display());
    let mut all = vec!["keys"];
    all.extend_from_slice(args);
    all.extend(["--database-url", &url]);
    ventana(&all, None)
}

fn key_list(db: &Path, extra: &[&str]) -> Vec<Value> {
    let mut args = vec!["list", "--format", "json"];
    args.extend_from_slice(extra);
    let output = keys(db, &args);
    assert!(output.status.success(), "{}", stderr(&output));
    let listed: Value = serde_json::from_str(&stdout(&output)).expect("json");
    listed.as_array().expect("a list").clone()
}

#[test]
fn keys_are_created_listed_and_revoked_without_showing_the_key() {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = dir.path().join("keys.db");
    let created = keys(
        &db,
        &[
            "create",
            "--tenant",
            "acme",
            "--role",
            "submitter",
            "--role",
            "operator",
            "--name",
            "billing",
            "--expires-in",
            "90d",
        ],
    );
    assert!(created.status.success(), "{}", stderr(&created));
    let key = stdout(&created).trim().to_string();
    assert!(key.starts_with("vk_") && key.len() == 67, "{key:?}");
    let other =
        keys(&db, &["create", "--tenant", "globex", "--role", "auditor", "--expires-at", "2099-01-01T00:00:00-05:00"]);
    assert!(other.status.success(), "{}", stderr(&other));

    let listed = key_list(&db, &[]);
    assert_eq!(listed.len(), 2, "{listed:?}");
    let acme = &listed[0];
    assert_eq!(acme["prefix"], key[..11]);
    assert_eq!(acme["tenant"], "acme");
    assert_eq!(acme["roles"], serde_json::json!(["submitter", "operator"]));
    assert_eq!(acme["name"], "billing");
    assert_eq!(acme["revoked"], Value::Null);
    assert_eq!(acme["state"], "active");
    let created_at =
        chrono::DateTime::parse_from_rfc3339(acme["created"].as_str().expect("created")).expect("rfc 3339");
    let expires_at =
        chrono::DateTime::parse_from_rfc3339(acme["expires"].as_str().expect("expires")).expect("rfc 3339");
    assert_eq!((expires_at - created_at).num_days(), 90);
    assert_eq!(listed[1]["expires"], "2099-01-01T05:00:00Z");
    assert_eq!(listed[1]["name"], Value::Null);
    assert_eq!(key_list(&db, &["--tenant", "globex"]).len(), 1);
    assert!(key_list(&db, &["--tenant", "initech"]).is_empty());

    // Neither the key nor its stored hash is ever printed.
    let text = keys(&db, &["list"]);
    assert!(text.status.success(), "{}", stderr(&text));
    let hash = ventana::api::auth::key_hash(&key);
    for output in [stdout(&text), serde_json::to_string(&listed).expect("json")] {
        assert!(output.contains(&key[..11]), "{output}");
        assert!(!output.contains(&key[11..]) && !output.contains(&hash), "{output}");
    }
    let header = stdout(&text).lines().next().unwrap_or_default().to_string();
    for column in ["PREFIX", "TENANT", "ROLES", "NAME", "CREATED", "EXPIRES", "REVOKED"] {
        assert!(header.contains(column), "{header}");
    }

    let revoked = keys(&db, &["revoke", &key[..11]]);
    assert!(revoked.status.success(), "{}", stderr(&revoked));
    assert!(stdout(&revoked).contains("up to 5 s"), "{}", stdout(&revoked));
    let acme = &key_list(&db, &["--tenant", "acme"])[0];
    assert_eq!(acme["state"], "revoked");
    assert!(acme["revoked"].as_str().is_some(), "{acme}");
    let again = keys(&db, &["revoke", &key[..11]]);
    assert!(again.status.success(), "{}", stderr(&again));
    assert!(stdout(&again).contains("already revoked"), "{}", stdout(&again));
    let unknown = keys(&db, &["revoke", "vk_00000000"]);
    assert_eq!(unknown.status.code(), Some(2));
    assert!(stderr(&unknown).contains("no api key has the prefix"), "{}", stderr(&unknown));
    assert_eq!(key_list(&db, &["--tenant", "globex"])[0]["state"], "active", "only the named key was revoked");
}

#[test]
fn keys_create_refuses_bad_tenants_names_roles_and_expiries() {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = dir.path().join("keys.db");
    let cases: &[(&[&str], &str)] = &[
        (&["--tenant", " "], "--tenant:"),
        (&["--tenant", ""], "--tenant:"),
        (&["--tenant", "dev "], "--tenant:"),
        (&["--tenant", " dev"], "--tenant:"),
        (&["--tenant", "ac\nme"], "--tenant:"),
        (&["--tenant", &"t".repeat(257)], "--tenant:"),
        (&["--tenant", "acme", "--name", " "], "--name:"),
        (&["--tenant", "acme", "--name", "ci\n"], "--name:"),
        (&["--tenant", "acme", "--name", "serve-dev"], "reserved"),
        (&["--tenant", "acme", "--role", "root"], "--role:"),
        (&["--tenant", "acme", "--expires-in", "0d"], "--expires-in:"),
        (&["--tenant", "acme", "--expires-in", "90"], "--expires-in:"),
        (&["--tenant", "acme", "--expires-in", "1y"], "--expires-in:"),
        (&["--tenant", "acme", "--expires-at", "2020-01-01T00:00:00Z"], "not in the future"),
        (&["--tenant", "acme", "--expires-at", "next year"], "--expires-at:"),
        (&["--tenant", "acme", "--expires-at", "2099-01-01T00:00:00Z", "--expires-in", "1d"], "cannot be used with"),
    ];
    for (flags, expected) in cases {
        let mut args = vec!["create", "--role", "submitter"];
        args.extend_from_slice(flags);
        let output = keys(&db, &args);
        assert_eq!(output.status.code(), Some(2), "{flags:?} was accepted: {}", stdout(&output));
        assert!(stderr(&output).contains(expected), "{flags:?}: {}", stderr(&output));
        assert!(stdout(&output).is_empty(), "{flags:?} printed a key");
    }
    for tenant in [" ", "dev ", "a\nb"] {
        let output = keys(&db, &["list", "--tenant", tenant]);
        assert_eq!(output.status.code(), Some(2), "list --tenant {tenant:?}");
    }
    assert!(key_list(&db, &[]).is_empty(), "no key was stored");
}

/// Runs `serve --dev` on `db` until it has printed its key, then kills it;
/// returns what it printed on stderr.
fn serve_dev(db: &Path) -> String {
    use std::io::BufRead;
    let mut child = Command::new(env!("CARGO_BIN_EXE_ventana"))
        .args(["serve", "--dev", "--listen", "127.0.0.1:0", "--metrics-listen", "127.0.0.1:0", "--console-listen"])
        .args(["127.0.0.1:0", "--database-url"])
        .arg(format!("sqlite://{}", db.display()))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("ventana serve runs");
    let pipe = child.stderr.take().expect("stderr");
    let (lines, received) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(pipe).lines() {
            let Ok(line) = line else { break };
            if lines.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let mut seen = String::new();
    let finished = loop {
        match received.recv_timeout(deadline.saturating_duration_since(std::time::Instant::now())) {
            Ok(line) => {
                seen.push_str(&line);
                seen.push('\n');
                if line.starts_with("try: ") {
                    break true;
                }
            }
            Err(_) => break false,
        }
    };
    let _ = child.kill();
    let _ = child.wait();
    assert!(finished, "serve --dev printed no key:\n{seen}");
    seen
}

/// The key `serve --dev` printed.
fn dev_key(stderr: &str) -> String {
    let line = stderr.lines().find(|l| l.starts_with("dev api key")).expect("a key line");
    line.rsplit(' ').next().unwrap_or_default().to_string()
}

#[test]
fn serve_dev_revokes_the_keys_earlier_starts_minted() {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = dir.path().join("dev.db");
    let first = serve_dev(&db);
    assert!(first.contains("console: http://127.0.0.1:"), "serve --dev prints the console's address:\n{first}");
    let first_key = dev_key(&first);
    assert!(!first.contains("revoked"), "nothing to revoke the first time:\n{first}");
    // A key made by hand for tenant dev is not serve --dev's to revoke.
    let by_hand = keys(&db, &["create", "--tenant", "dev", "--role", "auditor", "--name", "ci"]);
    assert!(by_hand.status.success(), "{}", stderr(&by_hand));

    let second = serve_dev(&db);
    let second_key = dev_key(&second);
    assert_ne!(first_key, second_key);
    let revoked_line = second.lines().find(|l| l.starts_with("revoked 1 key")).unwrap_or_default();
    assert!(revoked_line.contains(&first_key[..11]), "the revocation is announced:\n{second}");

    let listed = key_list(&db, &["--tenant", "dev"]);
    let state =
        |key: &str| listed.iter().find(|k| k["prefix"] == key[..11]).map(|k| k["state"].clone()).expect("listed");
    assert_eq!(state(&first_key), "revoked");
    assert_eq!(state(&second_key), "active");
    let ci = listed.iter().find(|k| k["name"] == "ci").expect("the key made by hand");
    assert_eq!(ci["state"], "active");
    let dev = listed.iter().find(|k| k["prefix"] == second_key[..11]).expect("dev key");
    assert_eq!(dev["name"], "serve-dev");
    assert_eq!(dev["roles"], serde_json::json!(["submitter", "adapter", "auditor", "admin", "operator"]));
}

#[test]
fn a_database_outage_is_a_runtime_error_not_a_usage_error() {
    // Nothing listens on port 1: the database cannot be reached.
    let output = ventana(&["audit", "verify", "--database-url", "postgres://postgres@127.0.0.1:1/none"], None);
    assert_eq!(output.status.code(), Some(3), "stderr: {}", stderr(&output));
    assert!(stderr(&output).contains("127.0.0.1:1"), "{}", stderr(&output));
    // A usage error stays 2.
    let output = ventana(&["audit", "export", "--tenant", "t", "--from", "yesterday", "--to", "2026-01-01"], None);
    assert_eq!(output.status.code(), Some(2), "stderr: {}", stderr(&output));
}

// ------------------------------------------------------------------ audit export

/// `audit export` against the database a served workload filled, on both backends.
async fn cli_export_writes_stable_csv_and_a_summary(backend: Backend) {
    let server = TestServer::start(backend, "2026-11-25T10:00:00-05:00").await;
    mixed_workload(&server).await;
    let dir = tempfile::tempdir().expect("dir");
    let out = dir.path().join("audit.csv");
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_ventana"))
        .args([
            "audit",
            "export",
            "--tenant",
            "acme",
            "--from",
            "2026-11-25",
            "--to",
            "2026-11-25",
            "--format",
            "csv",
            "--out",
        ])
        .arg(&out)
        .args(["--database-url", &server.config.database_url])
        .output()
        .expect("ventana runs");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let summary = String::from_utf8_lossy(&output.stderr);
    assert!(summary.contains("chain verified: yes"), "{summary}");
    let mut reader = csv::Reader::from_path(&out).expect("csv");
    let header: Vec<String> = reader.headers().expect("header").iter().map(str::to_string).collect();
    assert_eq!(header, ops::CSV_COLUMNS.to_vec());
    let rows = reader.records().count();
    assert!(summary.contains(&format!("exported {rows} rows")), "{summary}");
    // The PostgreSQL migration notices are not printed; an unknown tenant is an error, not "verified".
    assert!(!summary.contains("already exists"), "{summary}");
    let unknown = std::process::Command::new(env!("CARGO_BIN_EXE_ventana"))
        .args(["audit", "export", "--tenant", "nobody", "--from", "2026-11-25", "--to", "2026-11-25"])
        .args(["--database-url", &server.config.database_url])
        .output()
        .expect("ventana runs");
    let text = String::from_utf8_lossy(&unknown.stderr);
    assert_eq!(unknown.status.code(), Some(2), "{text}");
    assert!(text.contains("has no audit chain") && !text.contains("chain verified: yes"), "{text}");
    server.stop().await;
}
on_both_backends!(cli_export_writes_stable_csv_and_a_summary);
