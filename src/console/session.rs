//! The console's session: a signed cookie that names the tenant, the API
//! key's hash (never the key) and when it expires. Every request checks the
//! signature, the expiry, and that the key is still valid, still of this
//! tenant and still auditor or admin, and counts against the key's rate
//! limit, exactly as a gRPC call does.

use axum::extract::FromRequestParts;
use axum::http::HeaderMap;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Redirect, Response};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::{Console, ConsoleError};
use crate::api::auth::Role;
use crate::store::KeyRow;

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "ventana_session";
/// The sign-in form's double-submit cookie.
pub const SIGNIN_COOKIE: &str = "ventana_signin";
/// How long a session lasts.
pub const SESSION_SECONDS: i64 = 8 * 3600;

/// The key that signs sessions: from the configured secret (shared by the
/// replicas), or random per process, so a restart signs everyone out.
pub struct Signer {
    secret: [u8; 32],
}

impl Signer {
    /// A signer every process given the same `secret` shares.
    pub fn from_secret(secret: &str) -> Signer {
        use sha2::Digest as _;
        Signer { secret: Sha256::digest(secret.as_bytes()).into() }
    }

    pub fn random() -> Signer {
        let mut secret = [0u8; 32];
        secret[..16].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
        secret[16..].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
        Signer { secret }
    }

    fn mac(&self, purpose: &str, payload: &[u8]) -> Hmac<Sha256> {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.secret).expect("HMAC takes a key of any length");
        mac.update(purpose.as_bytes());
        mac.update(b"\n");
        mac.update(payload);
        mac
    }

    /// The cookie value of a new session.
    pub fn seal(&self, tenant: &str, key_hash: &str, expires_ms: i64) -> String {
        let payload = format!("{tenant}\n{key_hash}\n{expires_ms}\n{}", uuid::Uuid::new_v4().simple());
        let tag = hex::encode(self.mac("session", payload.as_bytes()).finalize().into_bytes());
        format!("{}.{tag}", URL_SAFE_NO_PAD.encode(payload))
    }

    /// The session a cookie value names, if its signature is ours.
    fn open(&self, value: &str) -> Option<Sealed> {
        let (payload, tag) = value.split_once('.')?;
        let payload = URL_SAFE_NO_PAD.decode(payload).ok()?;
        let tag = hex::decode(tag).ok()?;
        self.mac("session", &payload).verify_slice(&tag).ok()?;
        let text = String::from_utf8(payload).ok()?;
        let mut parts = text.split('\n');
        let (tenant, hash, expires, _nonce) = (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
        let csrf = hex::encode(self.mac("csrf", text.as_bytes()).finalize().into_bytes());
        Some(Sealed { tenant: tenant.to_string(), key_hash: hash.to_string(), expires_ms: expires.parse().ok()?, csrf })
    }
}

struct Sealed {
    tenant: String,
    key_hash: String,
    expires_ms: i64,
    csrf: String,
}

/// A signed-in officer or auditor.
#[derive(Clone, Debug)]
pub struct Session {
    pub tenant: String,
    pub key_prefix: String,
    /// The token this session's forms carry.
    pub csrf: String,
}

impl Session {
    /// Whether a form's token is this session's.
    pub fn check_csrf(&self, token: &str) -> Result<(), ConsoleError> {
        if constant_time_eq(token.as_bytes(), self.csrf.as_bytes()) {
            Ok(())
        } else {
            Err(ConsoleError::Forbidden("the form's token is not this session's: reload the page and try again".into()))
        }
    }
}

pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The value of the cookie `name` in the request's `cookie` headers.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value)
}

/// Why a key may not sign in (the message is the same for each, so the page
/// tells an attacker nothing about which keys exist).
#[derive(Debug)]
pub enum KeyRefused {
    /// Unknown, revoked, expired, or without the auditor or admin role.
    Refused,
    /// Over the key's request rate.
    RateLimited(String),
}

/// Checks a key row as every console request does.
pub fn admit(console: &Console, row: Option<KeyRow>) -> Result<KeyRow, KeyRefused> {
    let row = row.ok_or(KeyRefused::Refused)?;
    if row.expires_at.is_some_and(|at| console.app.clock.now().timestamp_millis() >= at) {
        return Err(KeyRefused::Refused);
    }
    let roles: Vec<Role> = row.roles.split(',').filter_map(|r| Role::parse(r.trim()).ok()).collect();
    if !roles.iter().any(|role| role.grants(Role::Auditor)) {
        return Err(KeyRefused::Refused);
    }
    if !console.app.limits.admit_request(&row.key_prefix) {
        return Err(KeyRefused::RateLimited(row.key_prefix));
    }
    Ok(row)
}

/// A `Set-Cookie` value: HttpOnly, SameSite=Strict, Secure over TLS.
pub fn set_cookie(name: &str, value: &str, path: &str, max_age: i64, secure: bool) -> String {
    let secure = if secure { "; Secure" } else { "" };
    format!("{name}={value}; Path={path}; Max-Age={max_age}; HttpOnly; SameSite=Strict{secure}")
}

/// A request without a valid session goes to the sign-in page.
fn to_signin(console: &Console) -> Response {
    let clear = set_cookie(SESSION_COOKIE, "", "/", 0, console.secure);
    ([(axum::http::header::SET_COOKIE, clear)], Redirect::to("/signin")).into_response()
}

impl FromRequestParts<std::sync::Arc<Console>> for Session {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, console: &std::sync::Arc<Console>) -> Result<Session, Response> {
        let Some(sealed) = cookie(&parts.headers, SESSION_COOKIE).and_then(|value| console.signer.open(value)) else {
            return Err(to_signin(console));
        };
        if console.app.clock.now().timestamp_millis() >= sealed.expires_ms {
            return Err(to_signin(console));
        }
        let row = match console.keys.find(&console.app.store, sealed.key_hash.clone()).await {
            Ok(row) => row,
            Err(e) => return Err(ConsoleError::from(e).into_response()),
        };
        match admit(console, row) {
            Ok(row) if row.tenant == sealed.tenant => {
                Ok(Session { tenant: row.tenant, key_prefix: row.key_prefix, csrf: sealed.csrf })
            }
            Ok(_) | Err(KeyRefused::Refused) => Err(to_signin(console)),
            Err(KeyRefused::RateLimited(prefix)) => Err(ConsoleError::RateLimited(prefix).into_response()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_opens_only_with_its_own_signature() {
        let signer = Signer::random();
        let value = signer.seal("acme", "abc", 42);
        let sealed = signer.open(&value).expect("opens");
        assert_eq!((sealed.tenant.as_str(), sealed.key_hash.as_str(), sealed.expires_ms), ("acme", "abc", 42));
        assert!(Signer::random().open(&value).is_none(), "another process's key");
        let (payload, tag) = value.split_once('.').expect("two parts");
        let forged = URL_SAFE_NO_PAD.encode("other\nabc\n42\nx");
        assert!(signer.open(&format!("{forged}.{tag}")).is_none(), "a changed payload");
        assert!(signer.open(payload).is_none());
        assert!(signer.open("").is_none());
    }
}
