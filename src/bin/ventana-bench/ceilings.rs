//! The two ceilings every scenario is read against, measured in the same run:
//! `echo`, the cheapest unary gRPC call (same client, message and
//! concurrency), and `raw`, the cheapest durable write of what a release
//! stores (the same rows through the store's `Tx`, with nothing else).

use ventana::api::pb;
use ventana::audit::AuditEvent;
use ventana::domain::{AuditEventKind, Channel, DispatchState, IntentStatus};
use ventana::store::{DispatchRow, EventRow, IntentRow, Store, StoreResult};

use crate::batch::BATCH;
use crate::measure::{Measured, drive};
use crate::target::{Bench, Target, WEEKDAY_MORNING, intent, with_auth};

/// The echo baseline's generated code, next to the `ventana.v1` messages it reuses.
mod echo {
    include!(concat!(env!("OUT_DIR"), "/echo/ventana.bench.v1.rs"));
}

/// The echo service: answers with the request.
struct Echo;

#[tonic::async_trait]
impl echo::echo_service_server::EchoService for Echo {
    async fn echo(
        &self,
        request: tonic::Request<echo::EchoRequest>,
    ) -> Result<tonic::Response<echo::EchoResponse>, tonic::Status> {
        Ok(tonic::Response::new(echo::EchoResponse { request: request.into_inner().request }))
    }
}

/// `requests` echo calls of a `SubmitRequest` from `concurrency` clients.
pub async fn echo(requests: usize, concurrency: usize) -> anyhow::Result<Measured> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let server = tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(echo::echo_service_server::EchoServiceServer::new(Echo))
            .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true))),
    );
    let channel = tonic::transport::Channel::from_shared(format!("http://{addr}"))?.connect().await?;
    let auth: tonic::metadata::MetadataValue<_> = "Bearer 0123456789abcdef0123456789abcdef".parse()?;
    let (latencies, errors, elapsed) = drive("echo", requests, concurrency, move |n| {
        let (mut client, auth) = (echo::echo_service_client::EchoServiceClient::new(channel.clone()), auth.clone());
        async move {
            let request = echo::EchoRequest { request: Some(pb::SubmitRequest { intent: Some(intent("echo", n)) }) };
            client.echo(with_auth(request, &auth)).await.is_ok()
        }
    })
    .await;
    server.abort();
    Ok(Measured {
        name: "echo".into(),
        backend: "-".into(),
        ops: latencies.len(),
        errors,
        elapsed,
        latencies,
        note: format!("ceiling, concurrency {concurrency}"),
    })
}

/// Writes, per intent, what a released Submit writes (an intent, a dispatch, a
/// contact event, two chained audit events) through the server's own store,
/// `BATCH` intents per transaction: the store's multi-row INSERTs and audit
/// chain, the same durability, and no reads, no decisions, no gRPC.
pub async fn raw(target: &Target, intents: usize, concurrency: usize) -> anyhow::Result<Measured> {
    let bench = Bench::start(target, WEEKDAY_MORNING).await?;
    // SQLite has one writer: more would only wait in its write queue.
    let concurrency = if bench.store().single_writer() { 1 } else { concurrency };
    let run = format!("r{:x}", std::process::id());
    let batches = intents.div_ceil(BATCH);
    let (latencies, errors, elapsed) = drive("raw", batches, concurrency, {
        let store = bench.store().clone();
        move |b| {
            let (store, run) = (store.clone(), run.clone());
            async move { raw_batch(&store, &run, b).await.is_ok() }
        }
    })
    .await;
    let backend = bench.store().backend().to_string();
    bench.stop().await;
    Ok(Measured {
        name: "raw".into(),
        backend,
        ops: latencies.len() * BATCH,
        errors: errors * BATCH,
        elapsed,
        latencies,
        note: format!("ceiling; intents/s, {BATCH} per transaction, {concurrency} writers"),
    })
}

/// Bodies of the sizes Ventana stores.
const RAW_BODY: &str = r#"{"intent":{"intent_id":"x","tenant":"bench","debtor_id":"debtor-x","debt_id":"debt-x","channel":"sms","party":"debtor","stage":"extrajudicial","jurisdiction":"PE"},"priority":0,"payload":{}}"#;
const RAW_DECISION: &str = r#"{"decision":"release","reasons":[{"code":"allowed","rule":"pe-art62b-hours","jurisdiction":"PE","version":"2010-09-02/d7ca648ecd08","citation":"Ley 29571, art. 62(b)","basis":"law","text":"within the allowed hours"}],"window_end":"2026-11-25T20:00:00-05:00","decided_at":"2026-11-25T15:00:00.000Z"}"#;
/// A body hash of the stored length.
const RAW_HASH: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
/// `WEEKDAY_MORNING` in Unix milliseconds.
const RAW_AT: i64 = 1_764_082_800_000;

/// One transaction of the raw ceiling: batch `b`'s intents, each with its own
/// debtor, in a tenant of its own (so concurrent writers never share a chain).
async fn raw_batch(store: &Store, run: &str, b: usize) -> StoreResult<()> {
    let tenant = format!("raw-{run}-{b}");
    let mut tx = store.begin().await?;
    for n in b * BATCH..(b + 1) * BATCH {
        let (intent_id, debtor_id, debt_id) = (format!("{run}-{n}"), format!("debtor-{run}-{n}"), format!("debt-{n}"));
        let dispatch_id = DispatchRow::new_id();
        tx.insert_intent(&IntentRow {
            tenant: tenant.clone(),
            intent_id: intent_id.clone(),
            debtor_id: debtor_id.clone(),
            debt_id: Some(debt_id.clone()),
            channel: Channel::Sms,
            jurisdiction: "PE".into(),
            priority: 0,
            body: RAW_BODY.into(),
            body_hash: RAW_HASH.into(),
            status: IntentStatus::Released,
            next_eval_at: None,
            decision: RAW_DECISION.into(),
            dispatch_id: Some(dispatch_id.clone()),
            attempt: 0,
            outcome: None,
            created_at: RAW_AT,
            updated_at: RAW_AT,
        });
        tx.insert_dispatch(&DispatchRow {
            dispatch_id: dispatch_id.clone(),
            tenant: tenant.clone(),
            intent_id: intent_id.clone(),
            debtor_id: debtor_id.clone(),
            channel: Channel::Sms,
            priority: 0,
            released_at: RAW_AT,
            not_after: RAW_AT,
            state: DispatchState::Ready,
            lease_expires_at: None,
            attempt: 0,
        });
        tx.insert_event(
            &tenant,
            &debtor_id,
            EventRow::released(Some(debt_id.clone()), Channel::Sms, RAW_AT, &dispatch_id),
        );
        for kind in [AuditEventKind::Submitted, AuditEventKind::Released] {
            tx.audit(AuditEvent {
                intent_id: Some(intent_id.clone()),
                debtor_id: Some(debtor_id.clone()),
                debt_id: Some(debt_id.clone()),
                channel: Some(Channel::Sms),
                jurisdiction: Some("PE".into()),
                time_zone: Some("America/Lima".into()),
                local_time: Some("2026-11-25 10:00:00".into()),
                rules_version: Some("PE@000000000000".into()),
                ..AuditEvent::new(&tenant, RAW_AT, kind, RAW_DECISION.into())
            });
        }
    }
    tx.commit().await
}
