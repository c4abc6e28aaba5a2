//! What the shared harness promises, checked: the configuration a child
//! process reads is the one an in-process server starts with, and every rule
//! fixture set loads.

use ventana::config::{AdapterConfig, AdapterKind, Config, Overrides};
use ventana::domain::Channel;
use ventana::rules::RuleBook;
use ventana::tls::TlsFiles;

use crate::support::config::TestConfig;
use crate::support::rules;

#[test]
fn a_written_test_config_reads_back_as_the_built_one() {
    let dir = tempfile::tempdir().expect("dir");
    let config = TestConfig::new("sqlite:///tmp/nowhere.db")
        .jurisdictions(rules::fixture("ten-a-day"))
        .claim_seconds(3)
        .channel_rate(Channel::Whatsapp, 1, 2)
        .per_key_rate(5, 7)
        .retention_days(None, 30)
        .retention_days(Some("acme"), 90)
        .adapters(vec![
            AdapterConfig { channel: Channel::Sms, kind: AdapterKind::Log { path: "contacts.jsonl".into() } },
            AdapterConfig {
                channel: Channel::Email,
                kind: AdapterKind::Webhook {
                    url: "http://127.0.0.1:9/hook".into(),
                    secret: "s3cret".into(),
                    timeout_ms: 2000,
                    max_attempts: 3,
                },
            },
        ])
        .tls(TlsFiles { cert: "server.pem".into(), key: "server.key".into(), client_ca: Some("ca.pem".into()) })
        .listen("0.0.0.0:0".parse().expect("addr"))
        .plaintext();
    let path = dir.path().join("ventana.toml");
    config.write(&path);
    let read = Config::load(Some(&path), Overrides::default()).expect("the written file loads");
    let built = config.build();
    assert_eq!(read.listen, built.listen);
    assert_eq!(read.metrics_listen, built.metrics_listen);
    assert_eq!(read.database_url, built.database_url);
    assert_eq!(read.jurisdictions, built.jurisdictions);
    assert_eq!(read.max_message_bytes, built.max_message_bytes);
    // The file keys adapters by channel: one per channel, in the channels' order.
    let by_channel = |mut adapters: Vec<AdapterConfig>| {
        adapters.sort_by_key(|a| a.channel.as_str());
        adapters
    };
    assert_eq!(by_channel(read.adapters), by_channel(built.adapters.clone()));
    assert_eq!(read.audit, built.audit);
    assert_eq!(read.rate_limits, built.rate_limits);
    assert_eq!(read.claim_seconds, built.claim_seconds);
    assert_eq!(read.tls, built.tls);
    assert_eq!(read.plaintext, built.plaintext);
    // The defaults differ from the library's, so the comparison above saw them written.
    let defaults = Config::load(None, Overrides::default()).expect("defaults");
    assert_ne!(defaults.max_message_bytes, built.max_message_bytes);
    assert_ne!(defaults.listen, built.listen);
}

#[test]
fn every_rule_fixture_set_loads() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/rules");
    let mut sets = 0;
    for entry in std::fs::read_dir(&dir).expect("tests/fixtures/rules") {
        let name = entry.expect("entry").file_name().to_string_lossy().into_owned();
        if name == "overlays" {
            continue; // overlays load with their parent, in the engine tests
        }
        RuleBook::load_dir(&rules::fixture(&name))
            .unwrap_or_else(|problems| panic!("rule fixture {name} does not load: {problems:?}"));
        sets += 1;
    }
    assert!(sets >= 4, "the fixture sets are there ({sets})");
}
