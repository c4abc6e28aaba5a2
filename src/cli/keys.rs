//! `ventana keys`: create, list and revoke API keys.

use std::process::ExitCode;

use clap::Subcommand;

use super::{CliError, Format, Settings, input, open_store, print, runtime, storage};
use crate::api::auth::{self, Role};
use crate::clock::Clock;
use crate::domain::check_identifier;
use crate::rules::compile::parse_instant;
use crate::store::Store;

#[derive(Subcommand)]
pub enum KeysCommand {
    /// Create an API key; it is printed once and only its hash is stored.
    Create {
        /// The tenant the key acts for (not blank, no control characters, no leading or
        /// trailing whitespace, at most 256 characters).
        #[arg(long)]
        tenant: String,
        /// submitter, adapter, auditor, admin (every role of the tenant but operator) or operator
        /// (RulesService/Reload, which affects every tenant); repeat for several.
        #[arg(long = "role", required = true)]
        roles: Vec<String>,
        /// A name to tell the key apart in `keys list` (same rules as --tenant).
        #[arg(long)]
        name: Option<String>,
        /// Refuse the key after this long: a whole number and s, m, h or d (e.g. 90d).
        #[arg(long, conflicts_with = "expires_at")]
        expires_in: Option<String>,
        /// Refuse the key from this instant on (RFC 3339 with offset).
        #[arg(long)]
        expires_at: Option<String>,
        #[command(flatten)]
        settings: Settings,
    },
    /// List API keys: prefix, tenant, roles, name, created, expires, revoked (never the key or its hash).
    List {
        /// Only this tenant's keys.
        #[arg(long)]
        tenant: Option<String>,
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
        #[command(flatten)]
        settings: Settings,
    },
    /// Revoke an API key by its prefix (as `keys list` shows it, e.g. vk_0c1f2a3b).
    ///
    /// A running service trusts a key it has looked up for 5 s (KEY_CACHE_TTL) without asking
    /// the database again, so a revoked key may still be honoured for up to 5 s; after that every
    /// call with it is refused (UNAUTHENTICATED). Revoking a revoked key changes nothing.
    Revoke {
        /// The key's prefix: `vk_` and 8 hex digits.
        prefix: String,
        #[command(flatten)]
        settings: Settings,
    },
}

/// Stores a new key created at `now` (the instant its lifetime was counted from).
pub(super) async fn mint_key(
    store: &Store,
    spec: &auth::KeySpec<'_>,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<String, CliError> {
    auth::mint_key(store, spec, now.timestamp_millis()).await.map_err(|e| runtime(format!("cannot store the key: {e}")))
}

/// An identifier flag checked as every edge checks identifiers.
fn identifier(flag: &str, value: &str) -> Result<(), CliError> {
    check_identifier(value).map_err(|e| input(format!("{flag}: {e}")))
}

/// A stored instant (Unix ms) as RFC 3339 UTC, or `-`.
fn instant_text(ms: Option<i64>) -> String {
    ms.and_then(chrono::DateTime::from_timestamp_millis)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        .unwrap_or_else(|| "-".into())
}

/// Runs one keys command.
pub async fn run(command: KeysCommand) -> Result<ExitCode, CliError> {
    let now = Clock::System.now();
    match command {
        KeysCommand::Create { tenant, roles, name, expires_in, expires_at, settings } => {
            identifier("--tenant", &tenant)?;
            if let Some(name) = &name {
                identifier("--name", name)?;
                if name == auth::DEV_KEY_NAME {
                    return Err(input(format!("--name: {name:?} is reserved for the keys `serve --dev` mints")));
                }
            }
            let roles = roles
                .iter()
                .map(|r| Role::parse(r))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| input(format!("--role: {e}")))?;
            let expires = match (expires_in, expires_at) {
                (Some(text), _) => {
                    Some(now + auth::parse_lifetime(&text).map_err(|e| input(format!("--expires-in: {e}")))?)
                }
                (None, Some(text)) => {
                    let at = parse_instant(&text).map_err(|e| input(format!("--expires-at: {e}")))?;
                    if at <= now {
                        return Err(input(format!("--expires-at: {text} is not in the future")));
                    }
                    Some(at)
                }
                (None, None) => None,
            };
            let (_, store) = open_store(settings).await?;
            let spec = auth::KeySpec {
                tenant: &tenant,
                roles: &roles,
                name: name.as_deref(),
                expires_at: expires.map(|t| t.timestamp_millis()),
            };
            // Created at the instant `--expires-in` counted from: a 90d key lives 90 days.
            let key = mint_key(&store, &spec, now).await?;
            print(&key)?;
            let roles: Vec<&str> = roles.iter().map(|r| r.as_str()).collect();
            let expires = expires.map(|t| format!(", expires {}", instant_text(Some(t.timestamp_millis()))));
            eprintln!(
                "api key {}… created for tenant {tenant} (roles {}{}); it is shown only this once",
                &key[..auth::KEY_PREFIX_LEN],
                roles.join(","),
                expires.unwrap_or_default()
            );
            Ok(ExitCode::SUCCESS)
        }
        KeysCommand::List { tenant, format, settings } => {
            if let Some(tenant) = &tenant {
                identifier("--tenant", tenant)?;
            }
            let (_, store) = open_store(settings).await?;
            let keys = store.list_keys(tenant.as_deref()).await.map_err(storage)?;
            let now_ms = now.timestamp_millis();
            let state = |key: &crate::store::KeyInfo| match (key.revoked_at, key.expires_at) {
                (Some(_), _) => "revoked",
                (None, Some(expires)) if now_ms >= expires => "expired",
                _ => "active",
            };
            match format {
                Format::Json => {
                    let keys: Vec<serde_json::Value> = keys
                        .iter()
                        .map(|k| {
                            let at = |ms: Option<i64>| ms.map(|ms| instant_text(Some(ms)));
                            serde_json::json!({
                                "prefix": k.key_prefix,
                                "tenant": k.tenant,
                                "roles": k.roles.split(',').collect::<Vec<_>>(),
                                "name": k.name,
                                "created": instant_text(Some(k.created_at)),
                                "expires": at(k.expires_at),
                                "revoked": at(k.revoked_at),
                                "state": state(k),
                            })
                        })
                        .collect();
                    print(&serde_json::Value::Array(keys))?;
                }
                Format::Text => {
                    let header = ["PREFIX", "TENANT", "ROLES", "NAME", "CREATED", "EXPIRES", "REVOKED", "STATE"];
                    let rows: Vec<[String; 8]> = keys
                        .iter()
                        .map(|k| {
                            [
                                k.key_prefix.clone(),
                                k.tenant.clone(),
                                k.roles.clone(),
                                k.name.clone().unwrap_or_else(|| "-".into()),
                                instant_text(Some(k.created_at)),
                                instant_text(k.expires_at),
                                instant_text(k.revoked_at),
                                state(k).to_string(),
                            ]
                        })
                        .collect();
                    let mut widths = header.map(|h| h.chars().count());
                    for row in &rows {
                        for (width, cell) in widths.iter_mut().zip(row) {
                            *width = (*width).max(cell.chars().count());
                        }
                    }
                    let line = |cells: Vec<&str>| {
                        let padded: Vec<String> =
                            cells.iter().zip(widths).map(|(cell, width)| format!("{cell:<width$}")).collect();
                        padded.join("  ").trim_end().to_string()
                    };
                    print(&line(header.to_vec()))?;
                    for row in &rows {
                        print(&line(row.iter().map(String::as_str).collect()))?;
                    }
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        KeysCommand::Revoke { prefix, settings } => {
            identifier("prefix", &prefix)?;
            let (_, store) = open_store(settings).await?;
            let key = auth::revoke_key(&store, &prefix, now.timestamp_millis()).await.map_err(|e| match e {
                auth::RevokeError::Store(e) => storage(e),
                other => input(other),
            })?;
            match key.revoked_at {
                Some(at) => print(&format!(
                    "{} (tenant {}) was already revoked at {}; nothing changed",
                    key.key_prefix,
                    key.tenant,
                    instant_text(Some(at))
                ))?,
                None => print(&format!(
                    "revoked {} (tenant {}, roles {}); a running service may honour it for up to {} s more",
                    key.key_prefix,
                    key.tenant,
                    key.roles,
                    auth::KEY_CACHE_TTL.as_secs()
                ))?,
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}
