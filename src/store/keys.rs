//! API keys: stored by hash, found, listed, revoked (authentication and
//! roles live in `api::auth`).

use super::{Pool, Store, StoreResult};

/// A key not revoked, as authentication needs it (and caches it).
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct KeyRow {
    pub tenant: String,
    pub roles: String,
    pub key_prefix: String,
    /// Unix ms at and after which the key is refused; checked on every call,
    /// cached or not.
    pub expires_at: Option<i64>,
}

/// What `keys list` shows of a key: never the key or its hash.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct KeyInfo {
    pub key_prefix: String,
    pub tenant: String,
    pub roles: String,
    pub name: Option<String>,
    pub created_at: i64,
    pub expires_at: Option<i64>,
    pub revoked_at: Option<i64>,
}

/// A key to store.
#[derive(Clone, Debug)]
pub struct NewKeyRow<'a> {
    pub key_hash: &'a str,
    pub key_prefix: &'a str,
    pub tenant: &'a str,
    /// Comma-separated role names.
    pub roles: &'a str,
    pub name: Option<&'a str>,
    pub expires_at: Option<i64>,
}

impl Store {
    pub async fn insert_key(&self, key: &NewKeyRow<'_>, now: i64) -> StoreResult<()> {
        let sql = "INSERT INTO api_keys (key_hash, key_prefix, tenant, roles, name, created_at, expires_at) \
                   VALUES ($1, $2, $3, $4, $5, $6, $7)";
        either_run!(&self.pool, Pool, |pool| sqlx::query(sql)
            .bind(key.key_hash)
            .bind(key.key_prefix)
            .bind(key.tenant)
            .bind(key.roles)
            .bind(key.name)
            .bind(now)
            .bind(key.expires_at)
            .execute(pool)
            .await?);
        Ok(())
    }

    /// The tenant, roles and expiry of a key not revoked, by its hash.
    pub async fn find_key(&self, key_hash: &str) -> StoreResult<Option<KeyRow>> {
        let sql =
            "SELECT tenant, roles, key_prefix, expires_at FROM api_keys WHERE key_hash = $1 AND revoked_at IS NULL";
        Ok(either!(&self.pool, Pool, |pool| sqlx::query_as(sql).bind(key_hash).fetch_optional(pool).await?))
    }

    /// Every key (of `tenant`, if given), by tenant then age.
    pub async fn list_keys(&self, tenant: Option<&str>) -> StoreResult<Vec<KeyInfo>> {
        let sql = "SELECT key_prefix, tenant, roles, name, created_at, expires_at, revoked_at FROM api_keys \
                   WHERE $1 IS NULL OR tenant = $1 ORDER BY tenant, created_at, key_prefix";
        Ok(either!(&self.pool, Pool, |pool| sqlx::query_as(sql).bind(tenant).fetch_all(pool).await?))
    }

    /// The keys (revoked or not) whose prefix is `prefix`.
    pub async fn keys_with_prefix(&self, prefix: &str) -> StoreResult<Vec<KeyInfo>> {
        let sql = "SELECT key_prefix, tenant, roles, name, created_at, expires_at, revoked_at FROM api_keys \
                   WHERE key_prefix = $1 ORDER BY created_at";
        Ok(either!(&self.pool, Pool, |pool| sqlx::query_as(sql).bind(prefix).fetch_all(pool).await?))
    }

    /// Revokes the key with `prefix` if it is not revoked yet; returns how many were.
    pub async fn revoke_key(&self, prefix: &str, now: i64) -> StoreResult<u64> {
        let sql = "UPDATE api_keys SET revoked_at = $2 WHERE key_prefix = $1 AND revoked_at IS NULL";
        Ok(either!(&self.pool, Pool, |pool| sqlx::query(sql)
            .bind(prefix)
            .bind(now)
            .execute(pool)
            .await?
            .rows_affected()))
    }

    /// Revokes every key of `tenant` named `name` not revoked yet; returns their prefixes.
    pub async fn revoke_named_keys(&self, tenant: &str, name: &str, now: i64) -> StoreResult<Vec<String>> {
        let sql = "UPDATE api_keys SET revoked_at = $3 WHERE tenant = $1 AND name = $2 AND revoked_at IS NULL \
                   RETURNING key_prefix";
        Ok(either!(&self.pool, Pool, |pool| sqlx::query_scalar(sql)
            .bind(tenant)
            .bind(name)
            .bind(now)
            .fetch_all(pool)
            .await?))
    }

    /// Tenants that have a key not revoked.
    pub async fn key_tenants(&self) -> StoreResult<Vec<String>> {
        let sql = "SELECT DISTINCT tenant FROM api_keys WHERE revoked_at IS NULL ORDER BY tenant";
        Ok(either!(&self.pool, Pool, |pool| sqlx::query_scalar(sql).fetch_all(pool).await?))
    }
}
