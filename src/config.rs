//! Service configuration: command-line flags, then environment variables,
//! then a TOML file, then defaults (see `ventana serve --help`).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use std::num::NonZeroU32;

use serde::Deserialize;

use crate::domain::Channel;
use crate::rate_limit::{Rate, RateLimitConfig};
use crate::tls::TlsFiles;

/// Everything `ventana serve` needs.
#[derive(Clone, Debug)]
pub struct Config {
    pub listen: SocketAddr,
    /// Address of the Prometheus `/metrics` endpoint.
    pub metrics_listen: SocketAddr,
    pub database_url: String,
    pub jurisdictions: PathBuf,
    /// Largest gRPC message accepted, in bytes.
    pub max_message_bytes: usize,
    pub adapters: Vec<AdapterConfig>,
    pub audit: AuditConfig,
    pub rate_limits: RateLimitConfig,
    /// How long a replica's claim on due intents lasts: a replica that dies
    /// mid-batch leaves its claims to the others after this long.
    pub claim_seconds: u32,
    /// TLS for the gRPC port; without it the port only listens on loopback
    /// unless `plaintext` says otherwise.
    pub tls: Option<TlsFiles>,
    /// Plaintext gRPC on a non-loopback address, explicitly asked for.
    pub plaintext: bool,
    /// The read-only web console's address; off when `None` (`serve --dev`
    /// turns it on at [`DEV_CONSOLE_LISTEN`]). It speaks TLS when `tls` is set.
    pub console_listen: Option<SocketAddr>,
    /// What signs the console's sessions, so every replica honours the
    /// others' (from the environment variable `console_secret_env` names);
    /// without it each process signs with a random key of its own.
    pub console_secret: Option<String>,
}

/// The shortest console session secret accepted.
pub const MIN_CONSOLE_SECRET_CHARS: usize = 32;

/// `[tls]` in the TOML file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileTls {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub client_ca: Option<PathBuf>,
}

/// How long audit events are kept.
#[derive(Clone, Debug, PartialEq)]
pub struct AuditConfig {
    /// Default retention in days (3 years: Reg F keeps records 3 years, Chile 2).
    pub retention_days: u32,
    /// Per-tenant retention in days.
    pub tenants: BTreeMap<String, u32>,
}

impl Default for AuditConfig {
    fn default() -> Self {
        AuditConfig { retention_days: DEFAULT_RETENTION_DAYS, tenants: BTreeMap::new() }
    }
}

impl AuditConfig {
    pub fn retention_days(&self, tenant: &str) -> u32 {
        self.tenants.get(tenant).copied().unwrap_or(self.retention_days)
    }
}

/// `[audit]` in the TOML file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileAudit {
    pub retention_days: Option<u32>,
    #[serde(default)]
    pub tenants: BTreeMap<String, u32>,
}

/// A built-in channel adapter.
#[derive(Clone, Debug, PartialEq)]
pub struct AdapterConfig {
    pub channel: Channel,
    pub kind: AdapterKind,
}

/// What a built-in adapter does with each released contact.
#[derive(Clone, Debug, PartialEq)]
pub enum AdapterKind {
    /// Writes a JSON line to `path` (`-` for stdout) and acknowledges it as sent.
    Log { path: String },
    /// POSTs JSON to `url`, signed with HMAC-SHA256 of `secret`.
    Webhook { url: String, secret: String, timeout_ms: u64, max_attempts: u32 },
}

/// The TOML file, all fields optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub listen: Option<SocketAddr>,
    pub metrics_listen: Option<SocketAddr>,
    pub database_url: Option<String>,
    pub jurisdictions: Option<PathBuf>,
    pub max_message_bytes: Option<usize>,
    #[serde(default)]
    pub adapters: BTreeMap<String, FileAdapter>,
    #[serde(default)]
    pub audit: FileAudit,
    #[serde(default)]
    pub rate_limits: FileRateLimits,
    pub claim_seconds: Option<u32>,
    pub tls: Option<FileTls>,
    pub plaintext: Option<bool>,
    pub console_listen: Option<SocketAddr>,
    /// The environment variable that holds the console's session secret.
    pub console_secret_env: Option<String>,
}

/// `[rate_limits]` in the TOML file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileRateLimits {
    #[serde(default)]
    pub channels: BTreeMap<String, FileRate>,
    #[serde(default)]
    pub tenants: BTreeMap<String, FileRate>,
    /// Requests per API key, every RPC.
    pub per_key: Option<FileRate>,
}

/// One rate: `per_second` and `burst` (default: one second's worth).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileRate {
    pub per_second: u32,
    pub burst: Option<u32>,
}

fn rate(at: &str, raw: &FileRate) -> Result<Rate, String> {
    let per_second = NonZeroU32::new(raw.per_second).ok_or_else(|| format!("{at}.per_second: must be at least 1"))?;
    let burst = NonZeroU32::new(raw.burst.unwrap_or(raw.per_second))
        .ok_or_else(|| format!("{at}.burst: must be at least 1"))?;
    Ok(Rate { per_second, burst })
}

/// `[adapters.<channel>]` in the TOML file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileAdapter {
    pub kind: String,
    pub path: Option<String>,
    pub url: Option<String>,
    /// The HMAC secret itself, or…
    pub secret: Option<String>,
    /// …the environment variable that holds it (preferred).
    pub secret_env: Option<String>,
    pub timeout_ms: Option<u64>,
    pub max_attempts: Option<u32>,
}

pub const DEFAULT_LISTEN: &str = "127.0.0.1:50051";
pub const DEFAULT_METRICS_LISTEN: &str = "127.0.0.1:9464";
pub const DEFAULT_DATABASE_URL: &str = "sqlite://ventana.db";
pub const DEFAULT_MAX_MESSAGE_BYTES: usize = 4 * 1024 * 1024;
pub const DEFAULT_RETENTION_DAYS: u32 = 1095;
pub const DEFAULT_CLAIM_SECONDS: u32 = 30;
/// Where `serve --dev` opens the console unless the configuration says otherwise.
pub const DEV_CONSOLE_LISTEN: &str = "127.0.0.1:8080";

/// Values given on the command line or in the environment (they win over the file).
#[derive(Debug, Default)]
pub struct Overrides {
    pub listen: Option<SocketAddr>,
    pub metrics_listen: Option<SocketAddr>,
    pub database_url: Option<String>,
    pub jurisdictions: Option<PathBuf>,
    pub console_listen: Option<SocketAddr>,
}

impl Config {
    /// Builds the configuration from `file` (if any) and `overrides`.
    pub fn load(file: Option<&Path>, overrides: Overrides) -> Result<Config, String> {
        let from_file: FileConfig = match file {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
                toml::from_str(&text).map_err(|e| {
                    let line = e.span().map_or(1, |s| crate::rules::compile::line_at(&text, s.start));
                    format!("{}:{line}: {}", path.display(), e.message())
                })?
            }
            None => FileConfig::default(),
        };
        let default_listen: SocketAddr = DEFAULT_LISTEN.parse().map_err(|e| format!("{e}"))?;
        let default_metrics: SocketAddr = DEFAULT_METRICS_LISTEN.parse().map_err(|e| format!("{e}"))?;
        let mut rate_limits = RateLimitConfig::default();
        for (channel, raw) in &from_file.rate_limits.channels {
            let at = format!("rate_limits.channels.{channel}");
            let parsed: Channel = channel.parse().map_err(|e| format!("{at}: {e}"))?;
            rate_limits.channels.insert(parsed, rate(&at, raw)?);
        }
        for (tenant, raw) in &from_file.rate_limits.tenants {
            rate_limits.tenants.insert(tenant.clone(), rate(&format!("rate_limits.tenants.{tenant}"), raw)?);
        }
        if let Some(raw) = &from_file.rate_limits.per_key {
            rate_limits.per_key = Some(rate("rate_limits.per_key", raw)?);
        }
        let adapters = from_file
            .adapters
            .iter()
            .map(|(channel, adapter)| adapter_config(channel, adapter))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Config {
            listen: overrides.listen.or(from_file.listen).unwrap_or(default_listen),
            metrics_listen: overrides.metrics_listen.or(from_file.metrics_listen).unwrap_or(default_metrics),
            database_url: overrides
                .database_url
                .or(from_file.database_url)
                .unwrap_or_else(|| DEFAULT_DATABASE_URL.into()),
            jurisdictions: overrides
                .jurisdictions
                .or(from_file.jurisdictions)
                .unwrap_or_else(|| "jurisdictions".into()),
            max_message_bytes: from_file.max_message_bytes.unwrap_or(DEFAULT_MAX_MESSAGE_BYTES),
            adapters,
            audit: AuditConfig {
                retention_days: from_file.audit.retention_days.unwrap_or(DEFAULT_RETENTION_DAYS),
                tenants: from_file.audit.tenants,
            },
            rate_limits,
            claim_seconds: match from_file.claim_seconds {
                Some(0) => return Err("claim_seconds: must be at least 1".into()),
                other => other.unwrap_or(DEFAULT_CLAIM_SECONDS),
            },
            tls: from_file.tls.map(|t| TlsFiles { cert: t.cert, key: t.key, client_ca: t.client_ca }),
            plaintext: from_file.plaintext.unwrap_or(false),
            console_listen: overrides.console_listen.or(from_file.console_listen),
            console_secret: match &from_file.console_secret_env {
                None => None,
                Some(var) => {
                    let secret = std::env::var(var)
                        .map_err(|_| format!("console_secret_env: environment variable {var} is not set"))?;
                    if secret.chars().count() < MIN_CONSOLE_SECRET_CHARS {
                        return Err(format!(
                            "console_secret_env: {var} holds fewer than {MIN_CONSOLE_SECRET_CHARS} characters"
                        ));
                    }
                    Some(secret)
                }
            },
        })
    }
}

fn adapter_config(channel: &str, raw: &FileAdapter) -> Result<AdapterConfig, String> {
    let at = format!("adapters.{channel}");
    let channel: Channel = channel.parse().map_err(|e| format!("{at}: {e}"))?;
    let kind = match raw.kind.as_str() {
        "log" => AdapterKind::Log { path: raw.path.clone().unwrap_or_else(|| "-".into()) },
        "webhook" => {
            let url = raw.url.clone().ok_or_else(|| format!("{at}: a webhook needs `url`"))?;
            if !url.starts_with("http://") {
                return Err(format!("{at}: url must be http://… (put TLS termination in front for https)"));
            }
            let secret = match (&raw.secret, &raw.secret_env) {
                (_, Some(var)) => {
                    std::env::var(var).map_err(|_| format!("{at}: environment variable {var} is not set"))?
                }
                (Some(secret), None) => secret.clone(),
                (None, None) => {
                    return Err(format!("{at}: a webhook needs `secret_env` (or `secret`) for the HMAC signature"));
                }
            };
            AdapterKind::Webhook {
                url,
                secret,
                timeout_ms: raw.timeout_ms.unwrap_or(5_000),
                max_attempts: raw.max_attempts.unwrap_or(4).clamp(1, 20),
            }
        }
        other => return Err(format!("{at}: unknown adapter kind {other:?} (log or webhook)")),
    };
    Ok(AdapterConfig { channel, kind })
}
