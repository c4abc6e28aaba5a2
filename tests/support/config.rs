//! One test configuration for every way a test runs Ventana: `build` gives
//! the `Config` an in-process server starts with, `toml` / `write` the
//! `ventana.toml` a `ventana` child process reads. Both say the same thing
//! (`tests/core/harness.rs` reads the file back and compares).

use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::path::{Path, PathBuf};

use toml::{Table, Value};
use ventana::config::{AdapterConfig, AdapterKind, Config};
use ventana::domain::Channel;
use ventana::rate_limit::Rate;
use ventana::tls::TlsFiles;

use super::rules;

/// A test's configuration, built up from loopback defaults.
#[derive(Clone, Debug)]
pub struct TestConfig {
    config: Config,
}

fn rate(per_second: u32, burst: u32) -> Rate {
    Rate {
        per_second: NonZeroU32::new(per_second).expect("at least 1 per second"),
        burst: NonZeroU32::new(burst).expect("a burst of at least 1"),
    }
}

impl TestConfig {
    /// `database_url` with the shipped jurisdictions, gRPC and metrics on
    /// free loopback ports, 1 MiB messages, no adapters, no rate limits, the
    /// default claim time and audit retention, plaintext.
    pub fn new(database_url: &str) -> TestConfig {
        TestConfig {
            config: Config {
                listen: "127.0.0.1:0".parse().expect("addr"),
                metrics_listen: "127.0.0.1:0".parse().expect("addr"),
                database_url: database_url.to_string(),
                jurisdictions: rules::shipped(),
                max_message_bytes: 1024 * 1024,
                adapters: Vec::new(),
                audit: Default::default(),
                rate_limits: Default::default(),
                claim_seconds: ventana::config::DEFAULT_CLAIM_SECONDS,
                tls: None,
                plaintext: false,
                console_listen: None,
                console_secret: None,
            },
        }
    }

    /// Loads the rules from `dir` (a copy, or `rules::fixture(…)`).
    pub fn jurisdictions(mut self, dir: impl Into<PathBuf>) -> TestConfig {
        self.config.jurisdictions = dir.into();
        self
    }

    pub fn adapters(mut self, adapters: Vec<AdapterConfig>) -> TestConfig {
        self.config.adapters = adapters;
        self
    }

    pub fn claim_seconds(mut self, seconds: u32) -> TestConfig {
        self.config.claim_seconds = seconds;
        self
    }

    /// Leases on `channel` at most `per_second`, after a burst of `burst`.
    pub fn channel_rate(mut self, channel: Channel, per_second: u32, burst: u32) -> TestConfig {
        self.config.rate_limits.channels.insert(channel, rate(per_second, burst));
        self
    }

    /// Every API key at most `per_second` requests, after a burst of `burst`.
    pub fn per_key_rate(mut self, per_second: u32, burst: u32) -> TestConfig {
        self.config.rate_limits.per_key = Some(rate(per_second, burst));
        self
    }

    pub fn retention_days(mut self, tenant: Option<&str>, days: u32) -> TestConfig {
        match tenant {
            Some(tenant) => {
                self.config.audit.tenants.insert(tenant.to_string(), days);
            }
            None => self.config.audit.retention_days = days,
        }
        self
    }

    pub fn tls(mut self, files: TlsFiles) -> TestConfig {
        self.config.tls = Some(files);
        self
    }

    pub fn listen(mut self, addr: SocketAddr) -> TestConfig {
        self.config.listen = addr;
        self
    }

    /// Plaintext gRPC beyond loopback, explicitly.
    pub fn plaintext(mut self) -> TestConfig {
        self.config.plaintext = true;
        self
    }

    /// The web console on a free loopback port.
    pub fn console(mut self) -> TestConfig {
        self.config.console_listen = Some("127.0.0.1:0".parse().expect("addr"));
        self
    }

    /// The console's session secret, shared by every replica started from this configuration.
    /// (In-process servers only: a process reads it from the environment.)
    pub fn console_secret(mut self, secret: &str) -> TestConfig {
        self.config.console_secret = Some(secret.to_string());
        self
    }

    pub fn database_url(&self) -> &str {
        &self.config.database_url
    }

    pub fn jurisdictions_dir(&self) -> &Path {
        &self.config.jurisdictions
    }

    /// The configuration an in-process server starts with.
    pub fn build(&self) -> Config {
        self.config.clone()
    }

    /// The same configuration as `ventana.toml`.
    pub fn toml(&self) -> String {
        let c = &self.config;
        assert!(c.console_secret.is_none(), "a process reads the console's secret from the environment");
        let text = |s: &str| Value::String(s.to_string());
        let path = |p: &Path| Value::String(p.display().to_string());
        let int = |n: u64| Value::Integer(i64::try_from(n).expect("fits TOML"));
        let rate = |r: &Rate| {
            let mut t = Table::new();
            t.insert("per_second".into(), int(r.per_second.get().into()));
            t.insert("burst".into(), int(r.burst.get().into()));
            Value::Table(t)
        };
        let mut file = Table::new();
        file.insert("listen".into(), text(&c.listen.to_string()));
        file.insert("metrics_listen".into(), text(&c.metrics_listen.to_string()));
        file.insert("database_url".into(), text(&c.database_url));
        file.insert("jurisdictions".into(), path(&c.jurisdictions));
        file.insert("max_message_bytes".into(), int(c.max_message_bytes as u64));
        file.insert("claim_seconds".into(), int(c.claim_seconds.into()));
        file.insert("plaintext".into(), Value::Boolean(c.plaintext));
        if let Some(console) = c.console_listen {
            file.insert("console_listen".into(), text(&console.to_string()));
        }
        let mut adapters = Table::new();
        for adapter in &c.adapters {
            let mut t = Table::new();
            match &adapter.kind {
                AdapterKind::Log { path } => {
                    t.insert("kind".into(), text("log"));
                    t.insert("path".into(), text(path));
                }
                AdapterKind::Webhook { url, secret, timeout_ms, max_attempts } => {
                    t.insert("kind".into(), text("webhook"));
                    t.insert("url".into(), text(url));
                    t.insert("secret".into(), text(secret));
                    t.insert("timeout_ms".into(), int(*timeout_ms));
                    t.insert("max_attempts".into(), int((*max_attempts).into()));
                }
            }
            adapters.insert(adapter.channel.as_str().into(), Value::Table(t));
        }
        file.insert("adapters".into(), Value::Table(adapters));
        let mut audit = Table::new();
        audit.insert("retention_days".into(), int(c.audit.retention_days.into()));
        audit.insert(
            "tenants".into(),
            Value::Table(c.audit.tenants.iter().map(|(t, days)| (t.clone(), int((*days).into()))).collect()),
        );
        file.insert("audit".into(), Value::Table(audit));
        let mut limits = Table::new();
        limits.insert(
            "channels".into(),
            Value::Table(c.rate_limits.channels.iter().map(|(ch, r)| (ch.as_str().to_string(), rate(r))).collect()),
        );
        limits.insert(
            "tenants".into(),
            Value::Table(c.rate_limits.tenants.iter().map(|(t, r)| (t.clone(), rate(r))).collect()),
        );
        if let Some(r) = &c.rate_limits.per_key {
            limits.insert("per_key".into(), rate(r));
        }
        file.insert("rate_limits".into(), Value::Table(limits));
        if let Some(tls) = &c.tls {
            let mut t = Table::new();
            t.insert("cert".into(), path(&tls.cert));
            t.insert("key".into(), path(&tls.key));
            if let Some(ca) = &tls.client_ca {
                t.insert("client_ca".into(), path(ca));
            }
            file.insert("tls".into(), Value::Table(t));
        }
        toml::to_string(&file).expect("a TOML table")
    }

    /// Writes `toml()` to `path`.
    pub fn write(&self, path: &Path) {
        std::fs::write(path, self.toml()).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    }
}
