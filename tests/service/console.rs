//! The web console over HTTP on both backends: who may sign in, the cookie's
//! and the pages' security headers, sign-out and revoked keys, tenant
//! isolation whatever the URL says, hostile ids printed as text, the per-key
//! rate limit, and an export whose rows are the CLI's, byte for byte.

use std::process::Command;

use hyper::StatusCode;
use ventana::api::auth::{Role, create_key, revoke_key};
use ventana::api::pb;

use crate::on_both_backends;
use crate::support::console::{Browser, encode};
use crate::support::server::*;

const NOW: &str = "2026-11-25T10:00:00-05:00";

async fn console_server(backend: Backend) -> TestServer {
    TestServer::start_with(backend, NOW, |config| config.console()).await
}

fn console_addr(server: &TestServer) -> std::net::SocketAddr {
    server.running.as_ref().expect("running").console_addr.expect("the console is on")
}

async fn raw_key(server: &TestServer, tenant: &str, roles: &[Role]) -> String {
    create_key(server.store(), tenant, roles, 0).await.expect("key stored")
}

async fn signed_in(server: &TestServer, tenant: &str, roles: &[Role]) -> Browser {
    let key = raw_key(server, tenant, roles).await;
    let mut browser = Browser::new(console_addr(server));
    let answer = browser.sign_in(&key).await;
    assert_eq!(answer.status, StatusCode::SEE_OTHER, "{}", answer.body);
    browser
}

async fn sign_in_takes_auditor_and_admin_keys_only(backend: Backend) {
    let server = console_server(backend).await;
    let addr = console_addr(&server);

    let mut browser = Browser::new(addr);
    let page = browser.get("/").await;
    assert_eq!((page.status, page.location()), (StatusCode::SEE_OTHER, "/signin"), "no session: sign in first");
    let page = browser.get("/audit").await;
    assert_eq!(page.location(), "/signin");

    for (what, key) in [
        ("a wrong key", "vk_0123456789abcdef".to_string()),
        ("a submitter key", raw_key(&server, "acme", &[Role::Submitter]).await),
        ("an adapter key", raw_key(&server, "acme", &[Role::Adapter]).await),
        ("an operator key", raw_key(&server, "acme", &[Role::Operator]).await),
    ] {
        let mut browser = Browser::new(addr);
        let page = browser.sign_in(&key).await;
        assert_eq!(page.status, StatusCode::UNAUTHORIZED, "{what}: {}", page.body);
        assert!(page.body.contains("name=\"key\""), "{what}: the sign-in page again");
        assert!(!browser.cookies.contains_key("ventana_session"), "{what}: no session");
    }

    // A sign-in form posted without the cookie its page set (from another site) is refused.
    let key = raw_key(&server, "acme", &[Role::Auditor]).await;
    let mut stranger = Browser::new(addr);
    let page = stranger.post("/signin", &[("key", &key), ("csrf", "forged")]).await;
    assert_eq!(page.status, StatusCode::FORBIDDEN);
    assert!(!stranger.cookies.contains_key("ventana_session"));

    for roles in [&[Role::Auditor][..], &[Role::Admin][..], &[Role::Submitter, Role::Auditor][..]] {
        let key = raw_key(&server, "acme", roles).await;
        let mut browser = Browser::new(addr);
        let page = browser.sign_in(&key).await;
        assert_eq!((page.status, page.location()), (StatusCode::SEE_OTHER, "/"), "{roles:?}: {}", page.body);
        let set_cookie: Vec<&str> =
            page.headers.get_all("set-cookie").iter().map(|v| v.to_str().expect("ascii")).collect();
        let session = set_cookie.iter().find(|c| c.starts_with("ventana_session=")).expect("a session cookie");
        for flag in ["HttpOnly", "SameSite=Strict", "Path=/", "Max-Age=28800"] {
            assert!(session.contains(flag), "{session}: {flag}");
        }
        assert!(!session.contains(&key), "the cookie never holds the key");
        let home = browser.get("/").await;
        assert_eq!(home.status, StatusCode::OK, "{roles:?}");
        assert!(home.body.contains("<strong id=\"tenant\">acme</strong>"), "{}", home.body);
    }
}
on_both_backends!(sign_in_takes_auditor_and_admin_keys_only);

async fn every_answer_carries_the_security_headers(backend: Backend) {
    let server = console_server(backend).await;
    let mut browser = signed_in(&server, "acme", &[Role::Auditor]).await;
    let mut anonymous = Browser::new(console_addr(&server));
    let mut pages = Vec::new();
    for path in [
        "/",
        "/jurisdictions",
        "/jurisdictions/PE",
        "/jurisdictions/PE/week",
        "/explain",
        "/timeline",
        "/audit",
        "/queue",
        "/nowhere",
    ] {
        pages.push((path, browser.get(path).await));
    }
    pages.push(("/signin", anonymous.get("/signin").await));
    pages.push(("/ (anonymous)", anonymous.get("/").await));
    for (path, page) in &pages {
        let csp = page.header("content-security-policy");
        assert!(csp.contains("script-src 'none'") && csp.contains("default-src 'none'"), "{path}: {csp:?}");
        assert!(csp.contains("frame-ancestors 'none'"), "{path}: {csp:?}");
        assert_eq!(page.header("x-frame-options"), "DENY", "{path}");
        assert_eq!(page.header("x-content-type-options"), "nosniff", "{path}");
        assert_eq!(page.header("referrer-policy"), "no-referrer", "{path}");
        assert!(!page.body.contains("<script"), "{path}: no script on any page");
    }
    assert_eq!(pages.iter().find(|(p, _)| *p == "/nowhere").map(|(_, p)| p.status), Some(StatusCode::NOT_FOUND));
    // The sign-in form's own cookie is HttpOnly and SameSite=Strict too.
    let signin = anonymous.get("/signin").await;
    let cookie = signin.header("set-cookie");
    assert!(cookie.starts_with("ventana_signin=") && cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"));
}
on_both_backends!(every_answer_carries_the_security_headers);

async fn sign_out_and_revocation_end_the_session(backend: Backend) {
    let server = console_server(backend).await;
    let key = raw_key(&server, "acme", &[Role::Auditor]).await;
    let mut browser = Browser::new(console_addr(&server));
    browser.sign_in(&key).await;
    let home = browser.get("/").await;
    let page = browser.post("/signout", &[("csrf", "not-the-token")]).await;
    assert_eq!(page.status, StatusCode::FORBIDDEN, "sign-out needs the session's token");
    let page = browser.post("/signout", &[("csrf", &home.csrf())]).await;
    assert_eq!((page.status, page.location()), (StatusCode::SEE_OTHER, "/signin"));
    assert_eq!(browser.get("/").await.location(), "/signin");

    // A session whose key is revoked ends within the key cache's time to live.
    let mut browser = Browser::new(console_addr(&server));
    browser.sign_in(&key).await;
    assert_eq!(browser.get("/queue").await.status, StatusCode::OK);
    revoke_key(server.store(), &key[..ventana::api::auth::KEY_PREFIX_LEN], 0).await.expect("revoked");
    tokio::time::sleep(ventana::api::auth::KEY_CACHE_TTL + std::time::Duration::from_millis(200)).await;
    let page = browser.get("/queue").await;
    assert_eq!((page.status, page.location()), (StatusCode::SEE_OTHER, "/signin"), "{}", page.body);
    // And the key cannot sign in again.
    let page = Browser::new(console_addr(&server)).sign_in(&key).await;
    assert_eq!(page.status, StatusCode::UNAUTHORIZED);

    // A session expires after eight hours.
    let mut browser = signed_in(&server, "acme", &[Role::Auditor]).await;
    server.set_clock("2026-11-25T18:00:01-05:00");
    assert_eq!(browser.get("/").await.location(), "/signin");
}
on_both_backends!(sign_out_and_revocation_end_the_session);

async fn another_tenants_data_is_never_reachable(backend: Backend) {
    let server = console_server(backend).await;
    mixed_workload(&server).await;
    let mut acme = signed_in(&server, "acme", &[Role::Auditor]).await;
    let mut zeta = signed_in(&server, "zeta", &[Role::Admin]).await;

    let mine = acme.get("/timeline?debtor=d-1").await;
    assert!(mine.body.contains("w-1") && mine.body.contains("submitted"), "{}", mine.body);
    let theirs = zeta.get("/timeline?debtor=d-1").await;
    assert_eq!(theirs.status, StatusCode::OK);
    assert!(!theirs.body.contains("w-1"), "zeta sees acme's intent: {}", theirs.body);
    assert!(theirs.body.contains("No audit event names this debtor"));
    // The tenant is the session's, never the URL's.
    for path in ["/timeline?debtor=d-1&tenant=acme", "/audit/export?from=2026-01-01&to=2026-12-31&tenant=acme"] {
        let page = zeta.get(path).await;
        assert!(!page.body.contains("w-1"), "{path}: {}", page.body);
    }
    let queue = zeta.get("/queue").await;
    assert!(queue.body.contains("Nothing is deferred"), "{}", queue.body);
    let audit = zeta.get("/audit").await;
    assert!(audit.body.contains("No audit event was ever recorded"), "{}", audit.body);

    // A tenant policy is its tenant's alone.
    let pe = acme.get("/jurisdictions/PE").await;
    assert!(!pe.body.contains("Example Bank"), "acme sees example-bank's policy");
    let list = acme.get("/jurisdictions").await;
    assert!(!list.body.contains("example-bank"));
    let mut bank = signed_in(&server, "example-bank", &[Role::Auditor]).await;
    assert!(bank.get("/jurisdictions/PE").await.body.contains("Example Bank"));
    let tampered = acme.get("/jurisdictions/PE+example-bank").await;
    assert_eq!(tampered.status, StatusCode::NOT_FOUND);
}
on_both_backends!(another_tenants_data_is_never_reachable);

async fn hostile_ids_and_values_print_as_text(backend: Backend) {
    let server = console_server(backend).await;
    let hostile = "<script>alert(1)</script>\"'&";
    let mut client = server.scheduler("acme").await;
    submit(&mut client, intent("h-1", hostile, pb::Channel::Call, "PE")).await;
    client
        .cancel(pb::CancelRequest { intent_id: "h-1".into(), reason: "<img src=x onerror=alert(2)>".into() })
        .await
        .expect("cancel");
    let mut browser = signed_in(&server, "acme", &[Role::Auditor]).await;
    let page = browser.get(&format!("/timeline?debtor={}", encode(hostile))).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(page.body.contains("h-1") && page.body.contains("cancelled"), "{}", page.body);
    assert!(!page.body.contains("<script>alert"), "the debtor id is printed as text: {}", page.body);
    assert!(!page.body.contains("<img"), "the cancel reason is printed as text");
    assert!(page.body.contains("&lt;script&gt;alert(1)&lt;/script&gt;"), "{}", page.body);

    // The same through the explain form and an unknown jurisdiction in a URL.
    let form = browser.get("/explain").await;
    let page = browser
        .post(
            "/explain",
            &[
                ("csrf", &form.csrf()),
                ("debtor_id", hostile),
                ("channel", "call"),
                ("party", "debtor"),
                ("stage", "extrajudicial"),
                ("jurisdiction", "PE"),
                ("at", "2026-11-25T10:00:00-05:00"),
            ],
        )
        .await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(!page.body.contains("<script>alert"));
    let page = browser.get(&format!("/jurisdictions/{}", encode(hostile))).await;
    assert_eq!(page.status, StatusCode::NOT_FOUND);
    assert!(!page.body.contains("<script>alert") && page.body.contains("&lt;script&gt;"), "{}", page.body);
}
on_both_backends!(hostile_ids_and_values_print_as_text);

async fn explain_answers_as_the_cli_does(backend: Backend) {
    let server = console_server(backend).await;
    let mut browser = signed_in(&server, "acme", &[Role::Auditor]).await;
    let form = browser.get("/explain").await;
    let fields = |at: &'static str| {
        vec![
            ("debtor_id", "d-9"),
            ("channel", "call"),
            ("party", "debtor"),
            ("stage", "extrajudicial"),
            ("jurisdiction", "PE"),
            ("at", at),
        ]
    };
    let mut release = fields("2026-11-25T10:00:00-05:00");
    let csrf = form.csrf();
    release.push(("csrf", &csrf));
    let page = browser.post("/explain", &release).await;
    assert!(page.body.contains("<span id=\"verdict\">release</span>"), "{}", page.body);
    // Wednesday 21:00 Lima is after hours: deferred to Thursday 07:00 Lima, with the rule's citation.
    let mut defer = fields("2026-11-25T21:00:00-05:00");
    defer.push(("csrf", &csrf));
    let page = browser.post("/explain", &defer).await;
    assert!(page.body.contains("<span id=\"verdict\">defer</span>"), "{}", page.body);
    assert!(page.body.contains("2026-11-26T12:00:00Z"), "{}", page.body);
    // Without the session's token nothing is explained.
    let mut forged = fields("2026-11-25T10:00:00-05:00");
    forged.push(("csrf", "forged"));
    assert_eq!(browser.post("/explain", &forged).await.status, StatusCode::FORBIDDEN);
}
on_both_backends!(explain_answers_as_the_cli_does);

async fn the_export_is_the_clis_byte_for_byte(backend: Backend) {
    let server = console_server(backend).await;
    mixed_workload(&server).await;
    let mut browser = signed_in(&server, "acme", &[Role::Auditor]).await;
    for (format, query) in [
        ("csv", "from=2026-11-01&to=2026-11-30"),
        ("jsonl", "from=2026-11-01&to=2026-11-30"),
        ("csv", "from=2026-11-25&to=2026-11-25&debtor=d-2&channel=call&jurisdiction=CO"),
    ] {
        let page = browser.get(&format!("/audit/export?format={format}&{query}")).await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.body);
        assert!(page.header("content-disposition").starts_with("attachment"));
        let mut args: Vec<String> =
            ["audit", "export", "--tenant", "acme", "--format", format].iter().map(|s| s.to_string()).collect();
        for pair in query.split('&') {
            let (name, value) = pair.split_once('=').expect("name=value");
            args.push(format!("--{name}"));
            args.push(value.to_string());
        }
        let cli = Command::new(env!("CARGO_BIN_EXE_ventana"))
            .args(&args)
            .env("DATABASE_URL", server.config.database_url.as_str())
            .output()
            .expect("ventana runs");
        assert!(cli.status.success(), "{}", String::from_utf8_lossy(&cli.stderr));
        let cli = String::from_utf8(cli.stdout).expect("utf-8");
        assert!(cli.lines().count() > 1, "{format} {query}: the export has rows");
        assert_eq!(page.body, cli, "{format} {query}");
    }
    let page = browser.get("/audit/export?from=yesterday&to=2026-11-30").await;
    assert_eq!(page.status, StatusCode::BAD_REQUEST);
    let audit = browser.get("/audit").await;
    assert!(audit.body.contains("Verified: "), "{}", audit.body);
}
on_both_backends!(the_export_is_the_clis_byte_for_byte);

async fn the_per_key_rate_limit_applies(backend: Backend) {
    let server = TestServer::start_with(backend, NOW, |config| config.console().per_key_rate(1, 5)).await;
    let mut browser = signed_in(&server, "acme", &[Role::Auditor]).await;
    let mut statuses = Vec::new();
    for _ in 0..10 {
        statuses.push(browser.get("/").await.status);
    }
    assert!(statuses.contains(&StatusCode::TOO_MANY_REQUESTS), "{statuses:?}");
}
on_both_backends!(the_per_key_rate_limit_applies);

async fn replicas_sharing_a_secret_honour_each_others_sessions(backend: Backend) {
    let secret = "a console secret of at least thirty-two characters";
    let server = TestServer::start_with(backend, NOW, |config| config.console().console_secret(secret)).await;
    let replica = server.replica().await;
    let mut browser = signed_in(&server, "acme", &[Role::Auditor]).await;
    let mut elsewhere = Browser::new(console_addr(&replica));
    elsewhere.cookies = browser.cookies.clone();
    assert_eq!(elsewhere.get("/queue").await.status, StatusCode::OK, "the replica honours the session");
    assert_eq!(browser.get("/queue").await.status, StatusCode::OK);
    // Without a shared secret each process signs with its own key: same database, no session.
    let alone = TestServer::start_with(backend, NOW, |config| config.console()).await;
    let other = alone.replica().await;
    let mut here = signed_in(&alone, "acme", &[Role::Auditor]).await;
    assert_eq!(here.get("/queue").await.status, StatusCode::OK);
    let mut there = Browser::new(console_addr(&other));
    there.cookies = here.cookies.clone();
    assert_eq!(there.get("/queue").await.location(), "/signin");
}
on_both_backends!(replicas_sharing_a_secret_honour_each_others_sessions);

async fn the_queue_counts_by_jurisdiction_and_channel_and_shows_the_next_wakeups(backend: Backend) {
    let server = console_server(backend).await;
    let mut client = server.scheduler("acme").await;
    submit(&mut client, intent("q-1", "d-1", pb::Channel::Sms, "PE")).await;
    // After hours in Lima: both calls wait for Thursday 07:00 (12:00 UTC).
    server.set_clock("2026-11-25T21:00:00-05:00");
    submit(&mut client, intent("q-2", "d-2", pb::Channel::Call, "PE")).await;
    submit(&mut client, intent("q-3", "d-3", pb::Channel::Call, "PE")).await;
    let mut browser = signed_in(&server, "acme", &[Role::Auditor]).await;
    let page = browser.get("/queue").await;
    let rows: Vec<String> = page
        .body
        .split("<tr>")
        .skip(1)
        .map(|row| {
            let cells: Vec<&str> = row.split("<td>").skip(1).map(|c| c.split('<').next().unwrap_or_default()).collect();
            cells.join(" ")
        })
        .filter(|row| !row.is_empty())
        .collect();
    assert_eq!(
        rows,
        ["PE call 2 0 0 0", "PE sms 0 0 1 0", "2026-11-26T12:00:00Z PE call 2"],
        "jurisdiction, channel, deferred, due, released, leased; then the wake-ups: {}",
        page.body
    );
}
on_both_backends!(the_queue_counts_by_jurisdiction_and_channel_and_shows_the_next_wakeups);

async fn the_jurisdiction_pages_name_files_not_server_paths(backend: Backend) {
    let server = console_server(backend).await;
    let mut browser = signed_in(&server, "acme", &[Role::Auditor]).await;
    let root = env!("CARGO_MANIFEST_DIR");
    for path in ["/jurisdictions", "/jurisdictions/PE"] {
        let page = browser.get(path).await;
        assert!(page.body.contains("PE.toml"), "{path}: {}", page.body);
        assert!(!page.body.contains(root), "{path} shows the server's directories");
    }
}
on_both_backends!(the_jurisdiction_pages_name_files_not_server_paths);

async fn the_week_picture_names_a_tenants_policy_only_when_it_has_one(backend: Backend) {
    let server = console_server(backend).await;
    let mut acme = signed_in(&server, "acme", &[Role::Auditor]).await;
    let page = acme.get("/jurisdictions/PE/week?from=2026-11-23").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains("07:00–20:00") && !page.body.contains("own policy"), "{}", page.body);
    let mut bank = signed_in(&server, "example-bank", &[Role::Auditor]).await;
    let page = bank.get("/jurisdictions/PE/week?from=2026-11-23").await;
    assert!(page.body.contains("With tenant example-bank's own policy"), "{}", page.body);
}
on_both_backends!(the_week_picture_names_a_tenants_policy_only_when_it_has_one);
