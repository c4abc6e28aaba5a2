//! API keys: `authorization: Bearer <key>`. A key belongs to one tenant and
//! has roles, optionally a name and an expiry; only its SHA-256 is stored.
//! A key is revoked by its prefix (`ventana keys revoke`); a running service
//! keeps honouring a revoked key for at most [`KEY_CACHE_TTL`].

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use tonic::Request;

use super::error::{ApiError, ApiResult};

use crate::app::App;
use crate::store::{KeyInfo, KeyRow, NewKeyRow, Store, StoreError, StoreResult};

/// What a key may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    Submitter,
    Adapter,
    Auditor,
    /// Every role of its own tenant, but not [`Role::Operator`].
    Admin,
    /// Deployment-wide actions that affect every tenant (`RulesService/Reload`),
    /// plus reading the rules; nothing of any tenant's data.
    Operator,
}

impl Role {
    pub const ALL: [Role; 5] = [Role::Submitter, Role::Adapter, Role::Auditor, Role::Admin, Role::Operator];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Submitter => "submitter",
            Role::Adapter => "adapter",
            Role::Auditor => "auditor",
            Role::Admin => "admin",
            Role::Operator => "operator",
        }
    }

    pub fn parse(text: &str) -> Result<Role, String> {
        match text {
            "submitter" => Ok(Role::Submitter),
            "adapter" => Ok(Role::Adapter),
            "auditor" => Ok(Role::Auditor),
            "admin" => Ok(Role::Admin),
            "operator" => Ok(Role::Operator),
            other => Err(format!("unknown role {other:?} (roles: submitter, adapter, auditor, admin, operator)")),
        }
    }

    /// Whether a key with this role may make a call that needs `needed`. A
    /// tenant's admin stands in for that tenant's roles only: operator calls
    /// act on every tenant, so no tenant's admin may make them.
    pub fn grants(self, needed: Role) -> bool {
        self == needed || (self == Role::Admin && needed != Role::Operator)
    }
}

/// The authenticated caller.
#[derive(Clone, Debug)]
pub struct Caller {
    pub tenant: String,
    pub roles: Vec<Role>,
    /// The key's first characters (never the key), for audit records.
    pub key_prefix: String,
}

/// SHA-256 of a key, hex: what the database stores.
pub fn key_hash(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

/// A new random key (`vk_` and 64 hex digits) and its hash.
pub fn new_key() -> (String, String) {
    let key = format!("vk_{}{}", uuid::Uuid::new_v4().simple(), uuid::Uuid::new_v4().simple());
    let hash = key_hash(&key);
    (key, hash)
}

/// How many characters of a key are stored in clear to tell it apart
/// (`vk_` and 8 hex digits): shown by `keys list`, named by `keys revoke`,
/// recorded in audit events.
pub const KEY_PREFIX_LEN: usize = 11;

/// The tenant and name of the keys `serve --dev` mints; each start revokes
/// the ones earlier starts minted.
pub const DEV_TENANT: &str = "dev";
pub const DEV_KEY_NAME: &str = "serve-dev";

/// What a new key is for. Callers validate `tenant` and `name` at their edge
/// (`domain::check_identifier`).
#[derive(Clone, Copy, Debug)]
pub struct KeySpec<'a> {
    pub tenant: &'a str,
    pub roles: &'a [Role],
    pub name: Option<&'a str>,
    /// Unix ms from which the key is refused.
    pub expires_at: Option<i64>,
}

/// Creates a key for `tenant` with `roles` (no name, no expiry); returns the
/// key (shown once).
pub async fn create_key(store: &Store, tenant: &str, roles: &[Role], now_ms: i64) -> Result<String, StoreError> {
    mint_key(store, &KeySpec { tenant, roles, name: None, expires_at: None }, now_ms).await
}

/// Creates a key as `spec` says; returns the key (shown once). Its prefix is
/// made unique among stored keys, so a prefix names one key.
pub async fn mint_key(store: &Store, spec: &KeySpec<'_>, now_ms: i64) -> Result<String, StoreError> {
    let (mut key, mut hash) = new_key();
    // 32 random bits: a clash is rare, two in a row rarer still.
    for _ in 0..8 {
        if store.keys_with_prefix(&key[..KEY_PREFIX_LEN]).await?.is_empty() {
            break;
        }
        (key, hash) = new_key();
    }
    let mut roles: Vec<&str> = Vec::new();
    for role in spec.roles.iter().map(|r| r.as_str()) {
        if !roles.contains(&role) {
            roles.push(role);
        }
    }
    let row = NewKeyRow {
        key_hash: &hash,
        key_prefix: &key[..KEY_PREFIX_LEN],
        tenant: spec.tenant,
        roles: &roles.join(","),
        name: spec.name,
        expires_at: spec.expires_at,
    };
    store.insert_key(&row, now_ms).await?;
    Ok(key)
}

/// Why a key could not be revoked.
#[derive(Debug, thiserror::Error)]
pub enum RevokeError {
    #[error("no api key has the prefix {0:?} (`ventana keys list` shows the prefixes)")]
    Unknown(String),
    #[error("{0} api keys have the prefix {1:?}, so it names none of them; nothing was revoked")]
    Ambiguous(usize, String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Revokes the key whose prefix is `prefix`; returns it as it was before
/// (with `revoked_at` set if it already was revoked: then nothing changes).
pub async fn revoke_key(store: &Store, prefix: &str, now_ms: i64) -> Result<KeyInfo, RevokeError> {
    let mut found = store.keys_with_prefix(prefix).await?;
    match found.len() {
        0 => return Err(RevokeError::Unknown(prefix.to_string())),
        1 => {}
        n => return Err(RevokeError::Ambiguous(n, prefix.to_string())),
    }
    let key = found.remove(0);
    if key.revoked_at.is_none() {
        store.revoke_key(prefix, now_ms).await?;
    }
    Ok(key)
}

/// Revokes the keys earlier `serve --dev` starts minted; returns their prefixes.
pub async fn revoke_dev_keys(store: &Store, now_ms: i64) -> Result<Vec<String>, StoreError> {
    store.revoke_named_keys(DEV_TENANT, DEV_KEY_NAME, now_ms).await
}

/// Longest lifetime `parse_lifetime` accepts: 100 years.
const MAX_LIFETIME_SECONDS: i64 = 100 * 366 * 86_400;

/// A key lifetime: a whole positive number and a unit, `s`, `m` (minutes),
/// `h` or `d` (e.g. `90d`), at most 100 years.
pub fn parse_lifetime(text: &str) -> Result<chrono::Duration, String> {
    let wrong = || format!("{text:?} is not a lifetime: a whole number and a unit, s, m, h or d (e.g. 90d)");
    let unit = text.chars().last().ok_or_else(wrong)?;
    let digits = &text[..text.len() - unit.len_utf8()];
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(wrong());
    }
    let seconds_per_unit = match unit {
        's' => 1,
        'm' => 60,
        'h' => 3_600,
        'd' => 86_400,
        _ => return Err(wrong()),
    };
    let count: i64 = digits.parse().map_err(|_| wrong())?;
    match count.checked_mul(seconds_per_unit) {
        Some(0) => Err(format!("{text:?}: a lifetime must be longer than zero")),
        Some(seconds) if seconds <= MAX_LIFETIME_SECONDS => Ok(chrono::Duration::seconds(seconds)),
        _ => Err(format!("{text:?}: a lifetime must be at most 100 years")),
    }
}

/// The key in one `authorization` value: exactly `<scheme> <key>`, the scheme
/// `Bearer` in any letter case (RFC 9110 makes schemes case-insensitive), one
/// space, then a key that is not empty and has no whitespace. Anything else
/// (two spaces, a trailing space, a tab) is refused rather than repaired, so
/// every malformed form is treated alike.
pub fn bearer_key(value: &str) -> Option<&str> {
    let (scheme, key) = value.split_once(' ')?;
    (scheme.eq_ignore_ascii_case("bearer") && !key.is_empty() && !key.contains(char::is_whitespace)).then_some(key)
}

/// Checks the caller's key, its request rate and that it has one of
/// `allowed` (admin may stand in for any role but operator).
pub async fn authenticate<T>(app: &App, keys: &KeyCache, request: &Request<T>, allowed: &[Role]) -> ApiResult<Caller> {
    let mut headers = request.metadata().get_all("authorization").iter();
    let header = headers
        .next()
        .ok_or_else(|| ApiError::Unauthenticated("missing `authorization: Bearer <api key>` metadata".into()))?;
    // Proxies and clients disagree on which of several values counts; taking
    // the first silently could authenticate a caller as someone else.
    if headers.next().is_some() {
        return Err(ApiError::Unauthenticated(
            "several `authorization` metadata values: send exactly one, `Bearer <api key>`".into(),
        ));
    }
    let key = header.to_str().ok().and_then(bearer_key).ok_or_else(|| {
        ApiError::Unauthenticated("authorization must be `Bearer <api key>`: the scheme, one space, the key".into())
    })?;
    let row = keys
        .find(&app.store, key_hash(key))
        .await?
        .ok_or_else(|| ApiError::Unauthenticated("unknown or revoked api key".into()))?;
    // Checked on every call, so a cached key stops working the moment it expires.
    if let Some(expires_at) = row.expires_at
        && app.clock.now().timestamp_millis() >= expires_at
    {
        let when = chrono::DateTime::from_timestamp_millis(expires_at).map(|t| t.to_rfc3339()).unwrap_or_default();
        return Err(ApiError::Unauthenticated(format!("expired api key ({}…, expired at {when})", row.key_prefix)));
    }
    if !app.limits.admit_request(&row.key_prefix) {
        return Err(ApiError::ResourceExhausted(format!(
            "api key {}… is over its request rate limit; slow down and retry",
            row.key_prefix
        )));
    }
    let roles: Vec<Role> = row.roles.split(',').filter_map(|r| Role::parse(r.trim()).ok()).collect();
    if !roles.iter().any(|have| allowed.iter().any(|needed| have.grants(*needed))) {
        let wanted: Vec<&str> = allowed.iter().map(|r| r.as_str()).collect();
        let admin_note = if allowed == [Role::Operator] { " (admin does not include operator)" } else { "" };
        return Err(ApiError::PermissionDenied(format!(
            "this call needs one of the roles: {}{admin_note}",
            wanted.join(", ")
        )));
    }
    Ok(Caller { tenant: row.tenant, roles, key_prefix: row.key_prefix })
}

/// How long a key found in the database is trusted without asking again: a
/// key revoked in the database (`ventana keys revoke`) stops working within
/// this time. Expiry is not cached: it is checked on every call.
pub const KEY_CACHE_TTL: Duration = Duration::from_secs(5);
/// Most keys remembered at once (the cache starts over when full).
const KEY_CACHE_MAX: usize = 10_000;

/// Keys recently found in the database, by hash, so that most calls cost no
/// query. Unknown keys are not remembered.
pub struct KeyCache {
    ttl: Duration,
    found: Mutex<HashMap<String, (KeyRow, Instant)>>,
}

impl KeyCache {
    pub fn new(ttl: Duration) -> KeyCache {
        KeyCache { ttl, found: Mutex::new(HashMap::new()) }
    }

    /// The key with this hash, from the cache if looked up less than `ttl` ago.
    pub async fn find(&self, store: &Store, hash: String) -> StoreResult<Option<KeyRow>> {
        if let Some((row, at)) = self.found.lock().unwrap_or_else(|p| p.into_inner()).get(&hash)
            && at.elapsed() < self.ttl
        {
            return Ok(Some(row.clone()));
        }
        let row = store.find_key(&hash).await?;
        if let Some(row) = &row {
            let mut found = self.found.lock().unwrap_or_else(|p| p.into_inner());
            if found.len() >= KEY_CACHE_MAX {
                found.clear();
            }
            found.insert(hash, (row.clone(), Instant::now()));
        }
        Ok(row)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_key_takes_any_scheme_case_and_exactly_one_space() {
        for good in ["Bearer vk_1", "bearer vk_1", "BEARER vk_1", "bEaReR vk_1"] {
            assert_eq!(bearer_key(good), Some("vk_1"), "{good:?}");
        }
        for bad in [
            "",
            "Bearer",
            "Bearer ",
            "Bearer  vk_1",
            "Bearer vk_1 ",
            " Bearer vk_1",
            "Bearer\tvk_1",
            "Bearer vk 1",
            "Bearer vk_1\t",
            "Basic vk_1",
            "Bearervk_1",
            "vk_1",
        ] {
            assert_eq!(bearer_key(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn lifetimes_are_a_positive_number_and_a_unit() {
        assert_eq!(parse_lifetime("90d"), Ok(chrono::Duration::days(90)));
        assert_eq!(parse_lifetime("12h"), Ok(chrono::Duration::hours(12)));
        assert_eq!(parse_lifetime("30m"), Ok(chrono::Duration::minutes(30)));
        assert_eq!(parse_lifetime("45s"), Ok(chrono::Duration::seconds(45)));
        for bad in
            ["", "d", "90", "90 d", " 90d", "+90d", "-1d", "0d", "1.5d", "90D", "90y", "9é", "99999999999999999999d"]
        {
            assert!(parse_lifetime(bad).is_err(), "{bad:?}");
        }
        assert!(parse_lifetime("36600d").is_ok());
        assert!(parse_lifetime("36601d").is_err(), "over 100 years");
    }

    #[test]
    fn admin_stands_in_for_every_role_but_operator() {
        for needed in [Role::Submitter, Role::Adapter, Role::Auditor, Role::Admin] {
            assert!(Role::Admin.grants(needed), "{needed:?}");
            assert!(!Role::Operator.grants(needed), "{needed:?}");
        }
        assert!(!Role::Admin.grants(Role::Operator));
        assert!(Role::Operator.grants(Role::Operator));
    }

    async fn revoke_all(store: &Store) {
        store.execute_unchecked("UPDATE api_keys SET revoked_at = 1").await.expect("revoke");
    }

    #[tokio::test]
    async fn a_revoked_key_stops_working_once_its_cache_entry_expires() {
        let dir = tempfile::tempdir().expect("dir");
        let url = format!("sqlite://{}", dir.path().join("keys.db").display());
        let store = Store::connect(&url).await.expect("store");
        let key = create_key(&store, "acme", &[Role::Submitter], 0).await.expect("key");
        let (remembering, forgetting) = (KeyCache::new(Duration::from_secs(3600)), KeyCache::new(Duration::ZERO));
        for cache in [&remembering, &forgetting] {
            let found = cache.find(&store, key_hash(&key)).await.expect("find");
            assert_eq!(found.map(|row| row.tenant).as_deref(), Some("acme"));
        }
        revoke_all(&store).await;
        let cached = remembering.find(&store, key_hash(&key)).await.expect("find");
        assert!(cached.is_some(), "within its time to live the entry is used");
        let fresh = forgetting.find(&store, key_hash(&key)).await.expect("find");
        assert!(fresh.is_none(), "an expired entry is looked up again and the revocation seen");
        assert!(remembering.find(&store, key_hash("vk_unknown")).await.expect("find").is_none());
    }
}
