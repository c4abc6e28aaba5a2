//! Every RPC called with no key, a wrong key and each role of the tenant,
//! checked against the documented role table; then every tenant-scoped RPC
//! called with another tenant's key: nothing of the first tenant comes back.

use tonic::Code;
use tonic::metadata::{Ascii, MetadataValue};
use tonic::transport::Channel;
use ventana::api::auth::Role;
use ventana::api::pb;

use crate::support::server::*;

/// Adds the key when there is one.
#[derive(Clone)]
struct MaybeKey(Option<MetadataValue<Ascii>>);

impl tonic::service::Interceptor for MaybeKey {
    fn call(&mut self, mut request: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(key) = &self.0 {
            request.metadata_mut().insert("authorization", key.clone());
        }
        Ok(request)
    }
}

#[derive(Clone, Copy, Debug)]
enum Rpc {
    Submit,
    SubmitBatch,
    Get,
    ListIntents,
    Cancel,
    CancelForDebt,
    Explain,
    SetPreferences,
    Lease,
    Ack,
    Dispatch,
    ListRules,
    Calendar,
    Reload,
    Export,
}

const EVERY_RPC: [Rpc; 15] = [
    Rpc::Submit,
    Rpc::SubmitBatch,
    Rpc::Get,
    Rpc::ListIntents,
    Rpc::Cancel,
    Rpc::CancelForDebt,
    Rpc::Explain,
    Rpc::SetPreferences,
    Rpc::Lease,
    Rpc::Ack,
    Rpc::Dispatch,
    Rpc::ListRules,
    Rpc::Calendar,
    Rpc::Reload,
    Rpc::Export,
];

/// The roles that may call `rpc` (admin may call everything but Reload), as README documents them.
fn allowed(rpc: Rpc) -> &'static [Role] {
    match rpc {
        Rpc::Submit | Rpc::SubmitBatch | Rpc::Cancel | Rpc::CancelForDebt | Rpc::SetPreferences => {
            &[Role::Submitter, Role::Admin]
        }
        Rpc::Get | Rpc::ListIntents | Rpc::Explain => &[Role::Submitter, Role::Auditor, Role::Admin],
        Rpc::Lease | Rpc::Ack | Rpc::Dispatch => &[Role::Adapter, Role::Admin],
        Rpc::ListRules | Rpc::Calendar => &[Role::Submitter, Role::Adapter, Role::Auditor, Role::Admin, Role::Operator],
        Rpc::Reload => &[Role::Operator],
        Rpc::Export => &[Role::Auditor, Role::Admin],
    }
}

/// Calls `rpc` with well-formed arguments naming `intent_id` / `dispatch_id`.
async fn call(
    rpc: Rpc,
    channel: &Channel,
    key: &MaybeKey,
    intent_id: &str,
    dispatch_id: &str,
) -> Result<(), tonic::Status> {
    let mut scheduler = pb::contact_scheduler_service_client::ContactSchedulerServiceClient::with_interceptor(
        channel.clone(),
        key.clone(),
    );
    let mut dispatch =
        pb::dispatch_service_client::DispatchServiceClient::with_interceptor(channel.clone(), key.clone());
    let mut rules = pb::rules_service_client::RulesServiceClient::with_interceptor(channel.clone(), key.clone());
    let mut audit = pb::audit_service_client::AuditServiceClient::with_interceptor(channel.clone(), key.clone());
    let fresh = || intent(&format!("access-{}", uuid::Uuid::new_v4().simple()), "d-access", pb::Channel::Sms, "PE");
    match rpc {
        Rpc::Submit => scheduler.submit(pb::SubmitRequest { intent: Some(fresh()) }).await.map(|_| ()),
        Rpc::SubmitBatch => scheduler.submit_batch(pb::SubmitBatchRequest { intents: vec![fresh()] }).await.map(|_| ()),
        Rpc::Get => scheduler.get(pb::GetRequest { intent_id: intent_id.into() }).await.map(|_| ()),
        Rpc::ListIntents => scheduler
            .list_intents(pb::ListIntentsRequest { debtor_id: "d-access".into(), ..Default::default() })
            .await
            .map(|_| ()),
        Rpc::Cancel => scheduler
            .cancel(pb::CancelRequest { intent_id: intent_id.into(), reason: "access test".into() })
            .await
            .map(|_| ()),
        Rpc::CancelForDebt => scheduler
            .cancel_for_debt(pb::CancelForDebtRequest {
                debtor_id: "d-nobody".into(),
                debt_id: "debt-1".into(),
                reason: "access test".into(),
            })
            .await
            .map(|_| ()),
        Rpc::Explain => scheduler.explain(pb::ExplainRequest { intent: Some(fresh()), at: None }).await.map(|_| ()),
        Rpc::SetPreferences => scheduler
            .set_preferences(pb::SetPreferencesRequest {
                debtor_id: "d-nobody".into(),
                source: "access test".into(),
                opt_in_channels: vec![pb::Channel::Email as i32],
                ..Default::default()
            })
            .await
            .map(|_| ()),
        Rpc::Lease => dispatch
            .lease(pb::LeaseRequest { channels: vec![pb::Channel::Email as i32], max_items: 1, lease_duration: None })
            .await
            .map(|_| ()),
        Rpc::Ack => dispatch
            .ack(pb::AckRequest {
                dispatch_id: dispatch_id.into(),
                outcome: pb::Outcome::Sent as i32,
                at: None,
                detail: String::new(),
            })
            .await
            .map(|_| ()),
        Rpc::Dispatch => {
            let open =
                pb::DispatchRequest { channels: vec![pb::Channel::Email as i32], credit: 1, lease_duration: None };
            dispatch.dispatch(tokio_stream::iter([open])).await.map(|_| ())
        }
        Rpc::ListRules => rules.list_jurisdictions(pb::ListJurisdictionsRequest {}).await.map(|_| ()),
        Rpc::Calendar => rules.calendar(pb::CalendarRequest { code: "PE".into(), year: 2026 }).await.map(|_| ()),
        Rpc::Reload => rules.reload(pb::ReloadRequest {}).await.map(|_| ()),
        Rpc::Export => {
            let mut stream = audit.export(pb::ExportRequest::default()).await?.into_inner();
            while stream.message().await?.is_some() {}
            Ok(())
        }
    }
}

async fn every_rpc_checks_key_and_role(backend: Backend) {
    let server = TestServer::start(backend, "2026-11-25T10:00:00-05:00").await;
    let mut acme = server.scheduler("acme").await;
    let mut acme_adapter = server.dispatcher("acme").await;
    let none = MaybeKey(None);
    let wrong = MaybeKey(Some("Bearer vk_0000000000000000000000000000000000000000".parse().expect("ascii")));
    for rpc in EVERY_RPC {
        for (name, key) in [("no key", &none), ("a wrong key", &wrong)] {
            let status = call(rpc, &server.channel, key, "x", "x").await.expect_err("refused");
            assert_eq!(status.code(), Code::Unauthenticated, "{rpc:?} with {name}: {status:?}");
        }
        for role in Role::ALL {
            // A target of the caller's own tenant, so an allowed call succeeds.
            submit(
                &mut acme,
                intent(&format!("own-{rpc:?}-{role:?}"), &format!("d-{rpc:?}-{role:?}"), pb::Channel::Sms, "PE"),
            )
            .await;
            let own_dispatch =
                lease(&mut acme_adapter, vec![pb::Channel::Sms as i32], 1).await.items[0].dispatch_id.clone();
            let key = MaybeKey(Some(server.key("acme", &[role]).await.0));
            let result = call(rpc, &server.channel, &key, &format!("own-{rpc:?}-{role:?}"), &own_dispatch).await;
            if allowed(rpc).contains(&role) {
                assert!(result.is_ok(), "{rpc:?} as {role:?} must be allowed: {result:?}");
            } else {
                let status = result.expect_err("denied");
                assert_eq!(status.code(), Code::PermissionDenied, "{rpc:?} as {role:?}: {status:?}");
            }
        }
    }
    server.stop().await;
}
crate::on_both_backends!(every_rpc_checks_key_and_role);

async fn another_tenant_never_sees_or_changes_ours(backend: Backend) {
    let server = TestServer::start(backend, "2026-11-25T10:00:00-05:00").await;
    let mut acme = server.scheduler("acme").await;
    // One contact leased and one deferred (to tomorrow, by not_before), both of debtor d-1.
    submit(&mut acme, intent("leased-1", "d-1", pb::Channel::Sms, "PE")).await;
    let later = pb::Intent {
        not_before: Some(ts("2026-11-26T10:00:00-05:00")),
        ..intent("waiting-1", "d-1", pb::Channel::Email, "PE")
    };
    submit(&mut acme, later).await;
    let mut acme_adapter = server.dispatcher("acme").await;
    let dispatch_id = lease(&mut acme_adapter, vec![pb::Channel::Sms as i32], 10).await.items[0].dispatch_id.clone();

    let globex = MaybeKey(Some(server.key("globex", &[Role::Admin]).await.0));
    for rpc in [Rpc::Get, Rpc::Cancel, Rpc::Ack] {
        let target = if matches!(rpc, Rpc::Get) { "leased-1" } else { "waiting-1" };
        let status = call(rpc, &server.channel, &globex, target, &dispatch_id).await.expect_err("not theirs");
        assert_eq!(status.code(), Code::NotFound, "{rpc:?} across tenants: {status:?}");
    }
    let mut globex_scheduler = pb::contact_scheduler_service_client::ContactSchedulerServiceClient::with_interceptor(
        server.channel.clone(),
        globex.clone(),
    );
    let cancelled = globex_scheduler
        .cancel_for_debt(pb::CancelForDebtRequest {
            debtor_id: "d-1".into(),
            debt_id: "debt-1".into(),
            reason: "x".into(),
        })
        .await
        .expect("their own debtor d-1 has nothing")
        .into_inner();
    assert!(cancelled.cancelled_intent_ids.is_empty());
    let listed = globex_scheduler
        .list_intents(pb::ListIntentsRequest { debtor_id: "d-1".into(), ..Default::default() })
        .await
        .expect("their own debtor d-1 has none")
        .into_inner();
    assert!(listed.intents.is_empty(), "{listed:?}");
    globex_scheduler
        .set_preferences(pb::SetPreferencesRequest {
            debtor_id: "d-1".into(),
            opt_out_all: Some(true),
            source: "debtor asked globex".into(),
            ..Default::default()
        })
        .await
        .expect("their own debtor d-1");
    let mut globex_adapter =
        pb::dispatch_service_client::DispatchServiceClient::with_interceptor(server.channel.clone(), globex.clone());
    let leased = globex_adapter
        .lease(pb::LeaseRequest {
            channels: vec![pb::Channel::Sms as i32, pb::Channel::Email as i32],
            max_items: 10,
            lease_duration: None,
        })
        .await
        .expect("lease")
        .into_inner();
    assert!(leased.items.is_empty(), "another tenant's contacts are never leased");
    let mut audit =
        pb::audit_service_client::AuditServiceClient::with_interceptor(server.channel.clone(), globex.clone());
    let mut stream = audit.export(pb::ExportRequest::default()).await.expect("export").into_inner();
    while let Some(pb::ExportResponse { event: Some(event), .. }) = stream.message().await.expect("event") {
        assert_ne!(event.intent_id, "leased-1", "an audit event of acme reached globex");
        assert_ne!(event.intent_id, "waiting-1", "an audit event of acme reached globex");
    }
    // Ours are untouched: still deferred, not opted out, the lease still ours.
    let waiting = get(&mut acme, "waiting-1").await;
    assert_eq!(waiting.status, pb::IntentStatus::Deferred as i32);
    acme_adapter
        .ack(pb::AckRequest { dispatch_id, outcome: pb::Outcome::Sent as i32, at: None, detail: String::new() })
        .await
        .expect("our own ack still works");
    server.stop().await;
}
crate::on_both_backends!(another_tenant_never_sees_or_changes_ours);

/// Sends each of its values as one `authorization` metadata entry, in order.
#[derive(Clone)]
struct Headers(Vec<MetadataValue<Ascii>>);

impl tonic::service::Interceptor for Headers {
    fn call(&mut self, mut request: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        for value in &self.0 {
            request.metadata_mut().append("authorization", value.clone());
        }
        Ok(request)
    }
}

async fn the_authorization_header_is_parsed_strictly_and_only_once(backend: Backend) {
    let server = TestServer::start(backend, "2026-11-25T10:00:00-05:00").await;
    let key = server.key("acme", &[Role::Auditor]).await.0;
    let key = key.to_str().expect("ascii").strip_prefix("Bearer ").expect("harness sends Bearer").to_string();
    let other = server.key("globex", &[Role::Auditor]).await.0;
    let list = |values: Vec<String>| {
        let channel = server.channel.clone();
        async move {
            let values = values.iter().map(|v| v.parse().expect("ascii")).collect();
            let mut rules = pb::rules_service_client::RulesServiceClient::with_interceptor(channel, Headers(values));
            rules.list_jurisdictions(pb::ListJurisdictionsRequest {}).await.map(|_| ())
        }
    };
    for scheme in ["Bearer", "bearer", "BEARER", "bEARER"] {
        let result = list(vec![format!("{scheme} {key}")]).await;
        assert!(result.is_ok(), "scheme {scheme:?} is case-insensitive: {result:?}");
    }
    let ours = format!("Bearer {key}");
    let theirs = other.to_str().expect("ascii").to_string();
    for values in [vec![ours.clone(), ours.clone()], vec![ours.clone(), theirs.clone()], vec![ours.clone(), "x".into()]]
    {
        let status = list(values.clone()).await.expect_err("two authorization values");
        assert_eq!(status.code(), Code::Unauthenticated, "{values:?}: {status:?}");
        assert!(status.message().contains("send exactly one"), "{values:?}: {}", status.message());
    }
    for malformed in [
        format!("Bearer {key} "),
        format!("Bearer  {key}"),
        format!("Bearer\t{key}"),
        format!("Bearer {key}\t"),
        format!("Bearer{key}"),
        format!("Basic {key}"),
        key.clone(),
        "Bearer ".into(),
    ] {
        let status = list(vec![malformed.clone()]).await.expect_err("malformed");
        assert_eq!(status.code(), Code::Unauthenticated, "{malformed:?}: {status:?}");
        assert!(status.message().contains("`Bearer <api key>`"), "{malformed:?}: {}", status.message());
    }
    server.stop().await;
}
crate::on_both_backends!(the_authorization_header_is_parsed_strictly_and_only_once);

async fn rules_are_listed_per_tenant_and_reloaded_by_an_operator_for_all(backend: Backend) {
    // The shipped rules, with example-bank's policy for Peru, in a directory we may edit.
    let dir = tempfile::tempdir().expect("temp dir");
    for entry in std::fs::read_dir(jurisdictions_dir()).expect("jurisdictions") {
        let path = entry.expect("entry").path();
        if path.extension().is_some_and(|e| e == "toml") {
            std::fs::copy(&path, dir.path().join(path.file_name().expect("name"))).expect("copy");
        }
    }
    std::fs::create_dir(dir.path().join("tenants")).expect("tenants dir");
    let policy = dir.path().join("tenants/example-bank-PE.toml");
    std::fs::copy(jurisdictions_dir().join("tenants/example-bank-PE.toml"), &policy).expect("copy policy");
    let server = TestServer::start_with(backend, "2026-11-25T10:00:00-05:00", |c| c.jurisdictions(dir.path())).await;

    let mut bank = server.rules("example-bank", Role::Auditor).await;
    let mut acme = server.rules("acme", Role::Auditor).await;
    let listed =
        bank.list_jurisdictions(pb::ListJurisdictionsRequest {}).await.expect("list").into_inner().jurisdictions;
    let own = listed.iter().find(|j| j.tenant == "example-bank").expect("its own policy is listed");
    assert!(own.file.ends_with("example-bank-PE.toml"), "{own:?}");
    let (old_policy_hash, old_pe_hash) = (
        own.version_hash.clone(),
        listed.iter().find(|j| j.code == "PE" && j.tenant.is_empty()).expect("the law").version_hash.clone(),
    );
    let others =
        acme.list_jurisdictions(pb::ListJurisdictionsRequest {}).await.expect("list").into_inner().jurisdictions;
    assert!(others.iter().any(|j| j.code == "PE"), "the law is listed for everyone");
    let leaked: Vec<_> = others.iter().filter(|j| !j.tenant.is_empty()).collect();
    assert!(leaked.is_empty(), "another tenant's policy files were listed: {leaked:?}");

    // A tenant's admin cannot reload the rules every tenant runs on.
    let mut admin = server.rules("example-bank", Role::Admin).await;
    let status = admin.reload(pb::ReloadRequest {}).await.expect_err("admin is not operator");
    assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
    assert!(status.message().contains("operator"), "{}", status.message());

    let edit = |path: &std::path::Path| {
        let text = std::fs::read_to_string(path).expect("read");
        std::fs::write(path, format!("# edited\n{text}")).expect("write");
    };
    edit(&dir.path().join("PE.toml"));
    edit(&policy);
    let operator_key = server.key("ops", &[Role::Operator]).await;
    let prefix = operator_key.0.to_str().expect("ascii")["Bearer ".len()..]["vk_".len()..][..8].to_string();
    let mut operator =
        pb::rules_service_client::RulesServiceClient::with_interceptor(server.channel.clone(), operator_key);
    let reloaded = operator.reload(pb::ReloadRequest {}).await.expect("operator reloads").into_inner();
    assert!(reloaded.jurisdictions.iter().all(|j| j.tenant.is_empty()), "the reply is scoped too");
    let new_pe_hash = reloaded.jurisdictions.iter().find(|j| j.code == "PE").expect("PE").version_hash.clone();
    assert_ne!(new_pe_hash, old_pe_hash);
    let listed =
        bank.list_jurisdictions(pb::ListJurisdictionsRequest {}).await.expect("list").into_inner().jurisdictions;
    let new_policy_hash = listed.iter().find(|j| j.tenant == "example-bank").expect("policy").version_hash.clone();
    assert_ne!(new_policy_hash, old_policy_hash);

    // Each tenant's own chain records the reload, with what that tenant may see.
    for (tenant, sees_policy) in [("example-bank", true), ("acme", false), ("ops", false)] {
        let events = audit_events(&server, tenant).await;
        let reloads: Vec<_> = events.iter().filter(|e| event_kind(e) == "rules_reloaded").collect();
        assert_eq!(reloads.len(), 1, "{tenant}: {events:?}");
        let detail: serde_json::Value = serde_json::from_str(&reloads[0].detail).expect("json detail");
        assert_eq!(detail["by_key"], format!("vk_{prefix}"), "{tenant}: {detail}");
        let has = |list: &str, entry: &str| detail[list].as_array().is_some_and(|l| l.iter().any(|v| v == entry));
        assert!(has("old", &format!("PE@{old_pe_hash}")), "{tenant}: {detail}");
        assert!(has("new", &format!("PE@{new_pe_hash}")), "{tenant}: {detail}");
        assert_eq!(has("old", &format!("PE+example-bank@{old_policy_hash}")), sees_policy, "{tenant}: {detail}");
        assert_eq!(has("new", &format!("PE+example-bank@{new_policy_hash}")), sees_policy, "{tenant}: {detail}");
        assert_eq!(reloads[0].detail.contains("example-bank"), sees_policy, "{tenant}: {detail}");
    }
    server.stop().await;
}
crate::on_both_backends!(rules_are_listed_per_tenant_and_reloaded_by_an_operator_for_all);
