//! Key lifetimes through the API on both backends: an expiring key is
//! refused from its expiry on, even while cached; a revoked key is refused at
//! once if not cached, and within `KEY_CACHE_TTL` if it is.

use std::time::{Duration, Instant};

use tonic::Code;
use ventana::api::auth::{KEY_CACHE_TTL, KEY_PREFIX_LEN, KeySpec, Role, mint_key, revoke_key};
use ventana::api::pb;

use crate::support::server::*;

async fn list(server: &TestServer, key: &str) -> Result<(), tonic::Status> {
    let auth = Auth(format!("Bearer {key}").parse().expect("ascii"));
    let mut rules = pb::rules_service_client::RulesServiceClient::with_interceptor(server.channel.clone(), auth);
    rules.list_jurisdictions(pb::ListJurisdictionsRequest {}).await.map(|_| ())
}

async fn expired_and_revoked_keys_are_refused(backend: Backend) {
    let server = TestServer::start(backend, "2026-11-25T10:00:00-05:00").await;
    let now = at("2026-11-25T10:00:00-05:00").timestamp_millis();
    let spec = |expires_at| KeySpec { tenant: "acme", roles: &[Role::Auditor], name: Some("short"), expires_at };

    // Valid until 11:00 by the service's clock; the first call caches it.
    let expiring = mint_key(server.store(), &spec(Some(now + 3_600_000)), now).await.expect("key");
    list(&server, &expiring).await.expect("before its expiry");
    server.set_clock("2026-11-25T10:59:59-05:00");
    list(&server, &expiring).await.expect("a second before its expiry");
    server.set_clock("2026-11-25T11:00:00-05:00");
    let status = list(&server, &expiring).await.expect_err("expired, though cached");
    assert_eq!(status.code(), Code::Unauthenticated, "{status:?}");
    assert!(status.message().starts_with("expired api key"), "{}", status.message());
    // A key already expired when first used.
    let stale = mint_key(server.store(), &spec(Some(now)), now).await.expect("key");
    let status = list(&server, &stale).await.expect_err("expired");
    assert!(status.message().starts_with("expired api key"), "{}", status.message());
    let lasting = mint_key(server.store(), &spec(None), now).await.expect("key");
    list(&server, &lasting).await.expect("no expiry");

    // Revoked before any call: refused at once.
    let unused = mint_key(server.store(), &spec(None), now).await.expect("key");
    revoke_key(server.store(), &unused[..KEY_PREFIX_LEN], now).await.expect("revoke");
    let status = list(&server, &unused).await.expect_err("revoked");
    assert_eq!(status.code(), Code::Unauthenticated, "{status:?}");

    // Revoked while cached: refused within the cache's time to live.
    let revoked_at = Instant::now();
    let revoked = revoke_key(server.store(), &lasting[..KEY_PREFIX_LEN], now).await.expect("revoke");
    assert_eq!(revoked.revoked_at, None, "it was active");
    let status = loop {
        match list(&server, &lasting).await {
            Err(status) => break status,
            Ok(()) => {
                let waited = revoked_at.elapsed();
                assert!(waited < KEY_CACHE_TTL + Duration::from_secs(2), "still honoured after {waited:?}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    };
    assert_eq!(status.code(), Code::Unauthenticated, "{status:?}");
    assert!(status.message().contains("revoked"), "{}", status.message());
    let again = revoke_key(server.store(), &lasting[..KEY_PREFIX_LEN], now).await.expect("revoke again");
    assert!(again.revoked_at.is_some(), "a second revocation reports the first");
    server.stop().await;
}
crate::on_both_backends!(expired_and_revoked_keys_are_refused);
