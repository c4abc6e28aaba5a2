//! The web console in a real browser: headless Chromium, driven over the
//! DevTools protocol on a pipe (`--remote-debugging-pipe`: commands on
//! descriptor 3, answers on 4, each JSON message ended by a NUL byte), signs
//! in by typing a key and clicking, opens every page, reads what is on the
//! screen, submits the explain and timeline forms, downloads the export,
//! signs out; a PNG per page goes to the test's temporary directory, and any
//! console error (a script error, a resource that fails, a Content Security
//! Policy violation) fails the test. No Chromium is a failure, never a skip.

use std::io::{BufRead, BufReader, Write};
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::{Value, json};
use ventana::api::auth::{Role, create_key};

use crate::support::server::*;

/// How long one step may take.
const STEP: Duration = Duration::from_secs(30);

/// One Chromium and the page it shows, over the DevTools pipe.
struct Chromium {
    child: Child,
    commands: std::io::PipeWriter,
    answers: Receiver<Value>,
    next_id: u64,
    session: String,
    /// Events read while waiting for something else.
    events: Vec<Value>,
    /// Every console error seen, with the page it came from.
    errors: Vec<String>,
    shots: PathBuf,
}

impl Chromium {
    fn launch(dir: &Path) -> Chromium {
        let (chromium_reads, commands) = std::io::pipe().expect("a pipe");
        let (answers_pipe, chromium_writes) = std::io::pipe().expect("a pipe");
        let (read_fd, write_fd) = (chromium_reads.as_raw_fd(), chromium_writes.as_raw_fd());
        let mut command = Command::new("chromium");
        command
            .args(["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--hide-scrollbars"])
            .args(["--remote-debugging-pipe", "--window-size=1280,1000", "--force-device-scale-factor=1"])
            .arg(format!("--user-data-dir={}", dir.join("chromium-profile").display()))
            .arg("about:blank")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("chromium.log")).expect("a log file"));
        // SAFETY: between fork and exec only async-signal-safe calls: fcntl, dup2, close.
        unsafe {
            command.pre_exec(move || {
                // Copies above 10 first, so that moving one onto 3 or 4 cannot close the other.
                let (read_copy, write_copy) =
                    (libc::fcntl(read_fd, libc::F_DUPFD, 10), libc::fcntl(write_fd, libc::F_DUPFD, 10));
                if read_copy < 0 || write_copy < 0 || libc::dup2(read_copy, 3) < 0 || libc::dup2(write_copy, 4) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                libc::close(read_copy);
                libc::close(write_copy);
                Ok(())
            });
        }
        let child = match command.spawn() {
            Ok(child) => child,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => panic!(
                "chromium is not installed: the console test drives a real browser \
                 (apt-get install chromium; .ci/run installs it)"
            ),
            Err(e) => panic!("chromium does not start: {e}"),
        };
        drop((chromium_reads, chromium_writes));
        let (sender, answers) = channel();
        std::thread::spawn(move || {
            let mut reader = BufReader::new(answers_pipe);
            loop {
                let mut message = Vec::new();
                match reader.read_until(0, &mut message) {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {
                        message.pop();
                        let Ok(value) = serde_json::from_slice::<Value>(&message) else { continue };
                        if sender.send(value).is_err() {
                            return;
                        }
                    }
                }
            }
        });
        let mut chromium = Chromium {
            child,
            commands,
            answers,
            next_id: 0,
            session: String::new(),
            events: Vec::new(),
            errors: Vec::new(),
            shots: dir.to_path_buf(),
        };
        let target = chromium.call("Target.createTarget", json!({"url": "about:blank"}));
        let target = target["targetId"].as_str().expect("a target id").to_string();
        let attached = chromium.call("Target.attachToTarget", json!({"targetId": target, "flatten": true}));
        chromium.session = attached["sessionId"].as_str().expect("a session id").to_string();
        for domain in ["Page.enable", "Runtime.enable", "Log.enable"] {
            chromium.call(domain, json!({}));
        }
        chromium.call(
            "Emulation.setDeviceMetricsOverride",
            json!({"width": 1280, "height": 1000, "deviceScaleFactor": 1, "mobile": false}),
        );
        chromium
    }

    /// The next message, or a panic after `STEP`.
    fn receive(&mut self, waiting_for: &str) -> Value {
        match self.answers.recv_timeout(STEP) {
            Ok(message) => message,
            Err(RecvTimeoutError::Timeout) => panic!("chromium did not answer within {STEP:?} ({waiting_for})"),
            Err(RecvTimeoutError::Disconnected) => panic!("chromium closed its pipe ({waiting_for})"),
        }
    }

    /// Remembers an event, and every console error it reports.
    fn note(&mut self, event: Value) {
        let params = &event["params"];
        let error = match event["method"].as_str().unwrap_or_default() {
            "Runtime.exceptionThrown" => Some(params["exceptionDetails"].to_string()),
            "Runtime.consoleAPICalled" if matches!(params["type"].as_str(), Some("error" | "assert")) => {
                Some(params["args"].to_string())
            }
            "Log.entryAdded" if params["entry"]["level"] == "error" => Some(format!(
                "{} ({})",
                params["entry"]["text"].as_str().unwrap_or_default(),
                params["entry"]["url"].as_str().unwrap_or_default()
            )),
            _ => None,
        };
        if let Some(error) = error {
            self.errors.push(error);
        }
        self.events.push(event);
    }

    /// Sends a command (to the page unless it is the browser's) and returns its result.
    fn call(&mut self, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        let mut message = json!({"id": id, "method": method, "params": params});
        if !self.session.is_empty() && !method.starts_with("Browser.") && !method.starts_with("Target.") {
            message["sessionId"] = json!(self.session);
        }
        let mut bytes = serde_json::to_vec(&message).expect("JSON");
        bytes.push(0);
        self.commands.write_all(&bytes).expect("chromium reads its pipe");
        loop {
            let answer = self.receive(method);
            if answer["id"] == id {
                assert!(answer.get("error").is_none(), "{method}: {}", answer["error"]);
                return answer["result"].clone();
            }
            self.note(answer);
        }
    }

    /// Waits for an event `method` that has not been seen yet.
    fn wait_for(&mut self, method: &str) -> Value {
        if let Some(at) = self.events.iter().position(|e| e["method"] == method) {
            return self.events.remove(at);
        }
        let deadline = Instant::now() + STEP;
        loop {
            assert!(Instant::now() < deadline, "no {method} within {STEP:?}");
            let event = self.receive(method);
            if event["method"] == method {
                self.note(event.clone());
                self.events.retain(|e| e["method"] != method);
                return event;
            }
            self.note(event);
        }
    }

    fn forget(&mut self, method: &str) {
        self.events.retain(|e| e["method"] != method);
    }

    /// Runs `expression` in the page and returns its value.
    fn eval(&mut self, expression: &str) -> Value {
        let result = self.call("Runtime.evaluate", json!({"expression": expression, "returnByValue": true}));
        assert!(result.get("exceptionDetails").is_none(), "{expression}: {}", result["exceptionDetails"]);
        result["result"]["value"].clone()
    }

    /// Opens `url` and waits until it has loaded.
    fn open(&mut self, url: &str) {
        self.forget("Page.loadEventFired");
        let answer = self.call("Page.navigate", json!({"url": url}));
        assert!(answer.get("errorText").is_none(), "{url}: {}", answer["errorText"]);
        self.wait_for("Page.loadEventFired");
    }

    /// Clicks the element `selector` names and waits for the page it leads to.
    fn click_and_wait(&mut self, selector: &str) {
        self.forget("Page.loadEventFired");
        let clicked = self.eval(&format!(
            "(() => {{ const e = document.querySelector({selector:?}); if (!e) return false; e.click(); return true; }})()"
        ));
        assert_eq!(clicked, json!(true), "nothing matches {selector}");
        self.wait_for("Page.loadEventFired");
    }

    /// Types `text` into the field `selector` names, as a user would: focus it, clear it, insert the text.
    fn type_into(&mut self, selector: &str, text: &str) {
        let found = self.eval(&format!(
            "(() => {{ const e = document.querySelector({selector:?}); if (!e) return false; e.focus(); e.value = ''; return true; }})()"
        ));
        assert_eq!(found, json!(true), "nothing matches {selector}");
        self.call("Input.insertText", json!({"text": text}));
    }

    /// Chooses `value` in the `<select>` `selector` names.
    fn choose(&mut self, selector: &str, value: &str) {
        let chosen = self.eval(&format!(
            "(() => {{ const e = document.querySelector({selector:?}); if (!e) return false; e.value = {value:?}; return e.value === {value:?}; }})()"
        ));
        assert_eq!(chosen, json!(true), "{selector} has no option {value}");
    }

    fn text(&mut self) -> String {
        self.eval("document.body.innerText").as_str().unwrap_or_default().to_string()
    }

    fn path(&mut self) -> String {
        self.eval("location.pathname + location.search").as_str().unwrap_or_default().to_string()
    }

    /// Saves what is on the screen (the whole page) as `name.png`; returns its path.
    fn screenshot(&mut self, name: &str) -> PathBuf {
        let metrics = self.call("Page.getLayoutMetrics", json!({}));
        let height = metrics["cssContentSize"]["height"].as_f64().unwrap_or(1000.0).clamp(200.0, 6000.0);
        let shot = self.call(
            "Page.captureScreenshot",
            json!({"format": "png", "captureBeyondViewport": true,
                   "clip": {"x": 0, "y": 0, "width": 1280, "height": height, "scale": 1}}),
        );
        let png = base64::engine::general_purpose::STANDARD
            .decode(shot["data"].as_str().expect("screenshot data"))
            .expect("base64");
        assert!(png.starts_with(b"\x89PNG"), "{name}: not a PNG");
        let path = self.shots.join(format!("{name}.png"));
        std::fs::write(&path, png).expect("the screenshot is saved");
        path
    }
}

impl Drop for Chromium {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_auditor_with_only_a_browser_uses_every_page() {
    let server = TestServer::start_with(Backend::Sqlite, "2026-11-25T10:00:00-05:00", |c| c.console()).await;
    mixed_workload(&server).await;
    let key = create_key(server.store(), "acme", &[Role::Auditor], 0).await.expect("key");
    let base = format!("http://{}", server.running.as_ref().expect("running").console_addr.expect("console on"));
    let dir = tempfile::tempdir().expect("a directory");
    let shots = dir.path().to_path_buf();
    // Chromium is driven synchronously, off the runtime that serves the console.
    let errors = tokio::task::spawn_blocking(move || browse(&base, &key, &shots)).await.expect("the browser run");
    assert!(errors.is_empty(), "console errors: {errors:#?}");
    for page in [
        "signin",
        "home",
        "jurisdictions",
        "jurisdiction-PE",
        "week-PE",
        "explain",
        "timeline",
        "audit",
        "queue",
        "signed-out",
    ] {
        assert!(dir.path().join(format!("{page}.png")).is_file(), "no screenshot of {page}");
    }
    if let Ok(keep) = std::env::var("VENTANA_CONSOLE_SCREENSHOTS") {
        for entry in std::fs::read_dir(dir.path()).expect("the directory") {
            let path = entry.expect("an entry").path();
            if path.extension().is_some_and(|e| e == "png") {
                std::fs::copy(&path, Path::new(&keep).join(path.file_name().expect("a name"))).expect("copied");
            }
        }
    }
}

/// Everything an auditor and an officer do, in one browser; returns the console errors.
fn browse(base: &str, key: &str, shots: &Path) -> Vec<String> {
    let mut chromium = Chromium::launch(shots);

    chromium.open(&format!("{base}/"));
    assert_eq!(chromium.path(), "/signin", "without a session the console asks to sign in");
    chromium.screenshot("signin");
    chromium.type_into("input[name=key]", key);
    chromium.click_and_wait("form button[type=submit]");
    assert_eq!(chromium.path(), "/");
    let home = chromium.text();
    assert!(home.contains("tenant acme"), "{home}");
    chromium.screenshot("home");

    chromium.click_and_wait("a[href='/jurisdictions']");
    let list = chromium.text();
    assert!(list.contains("PE") && list.contains("CO"), "{list}");
    chromium.screenshot("jurisdictions");

    chromium.open(&format!("{base}/jurisdictions/PE"));
    let rules = chromium.text();
    assert!(rules.contains("Version in force") && rules.contains("Holidays in 2026"), "{rules}");
    chromium.screenshot("jurisdiction-PE");

    // Peru's week from Monday 23 November 2026: Monday 07:00–20:00 for calls.
    chromium.open(&format!("{base}/jurisdictions/PE/week?from=2026-11-23"));
    let week = chromium.text();
    assert!(week.contains("Mon 23 Nov"), "no Monday row: {week}");
    // Each day row of each grid is titled with its date and allowed hours, as drawn.
    let rows = chromium.eval("[...document.querySelectorAll('svg title')].map(t => t.textContent)");
    let rows: Vec<&str> = rows.as_array().expect("titles").iter().filter_map(Value::as_str).collect();
    assert!(rows.contains(&"Monday 2026-11-23: 07:00–20:00"), "Peru's Monday for calls: {rows:#?}");
    chromium.screenshot("week-PE");

    // Explain a what-if: a call on Wednesday at 21:00 Lima waits for Thursday 07:00.
    // (The week picture is the rules work's page as it is, without the console's links.)
    chromium.open(&format!("{base}/explain"));
    chromium.type_into("input[name=debtor_id]", "d-what-if");
    chromium.choose("select[name=channel]", "call");
    chromium.choose("select[name=jurisdiction]", "PE");
    chromium.type_into("input[name=at]", "2026-11-25T21:00:00-05:00");
    chromium.click_and_wait("main form button[type=submit]");
    let explained = chromium.text();
    assert!(explained.contains("Decision: defer"), "{explained}");
    assert!(explained.contains("May go at: 2026-11-26T12:00:00Z"), "{explained}");
    chromium.screenshot("explain");

    // A debtor's timeline: deferred by Colombia's daily cap, then cancelled.
    chromium.click_and_wait("a[href='/timeline']");
    chromium.type_into("input[name=debtor]", "d-2");
    chromium.click_and_wait("main form button[type=submit]");
    let timeline = chromium.text();
    for word in ["w-2", "w-3", "submitted", "released", "deferred", "cancelled", "leased", "acked"] {
        assert!(timeline.contains(word), "{word} not on the timeline: {timeline}");
    }
    chromium.screenshot("timeline");

    chromium.click_and_wait("a[href='/audit']");
    let audit = chromium.text();
    assert!(audit.contains("Verified:"), "{audit}");
    chromium.screenshot("audit");
    // The export downloads as a file.
    let downloads = shots.join("downloads");
    std::fs::create_dir_all(&downloads).expect("a downloads directory");
    chromium.call(
        "Browser.setDownloadBehavior",
        json!({"behavior": "allow", "downloadPath": downloads.display().to_string(), "eventsEnabled": true}),
    );
    chromium.type_into("input[name=from]", "2026-11-01");
    chromium.type_into("input[name=to]", "2026-11-30");
    chromium.eval("document.querySelector('main form button[type=submit]').click()");
    loop {
        let progress = chromium.wait_for("Browser.downloadProgress");
        match progress["params"]["state"].as_str() {
            Some("completed") => break,
            Some("canceled") => panic!("the export download was cancelled"),
            _ => {}
        }
    }
    let file = std::fs::read_dir(&downloads)
        .expect("downloads")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|e| e == "csv"))
        .expect("a CSV was downloaded");
    let csv = std::fs::read_to_string(&file).expect("the CSV");
    assert!(csv.starts_with("sequence,") && csv.lines().count() > 10, "{csv}");

    chromium.click_and_wait("a[href='/queue']");
    let queue = chromium.text();
    assert!(queue.contains("Next wake-ups"), "{queue}");
    chromium.screenshot("queue");

    // The browser enforces the policy: a script slipped into a page does not run, and the
    // refusal is a console error this test sees (so it would see any other).
    let ran = chromium.eval(
        "(() => { window.ran = false; const s = document.createElement('script'); \
         s.textContent = 'window.ran = true'; document.body.appendChild(s); return window.ran; })()",
    );
    assert_eq!(ran, json!(false), "an inline script ran despite the Content-Security-Policy");
    let refusals: Vec<String> = std::mem::take(&mut chromium.errors);
    assert!(
        refusals.iter().any(|e| e.contains("Content Security Policy")),
        "the refused script was not reported: {refusals:#?}"
    );
    assert_eq!(refusals.len(), 1, "only the planted script is an error: {refusals:#?}");

    chromium.click_and_wait("header form button[type=submit]");
    assert_eq!(chromium.path(), "/signin");
    chromium.screenshot("signed-out");
    chromium.open(&format!("{base}/timeline?debtor=d-2"));
    assert_eq!(chromium.path(), "/signin", "signed out: the timeline is out of reach");

    std::mem::take(&mut chromium.errors)
}
