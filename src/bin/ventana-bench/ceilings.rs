//! The two ceilings every scenario is read against, measured in the same run:
//! `echo`, the cheapest unary gRPC call (same client, message and
//! concurrency), and `raw`, the cheapest durable write of what a release
//! stores (the same rows in plain sqlx multi-row INSERTs, with nothing else).

use std::sync::Arc;
use std::time::Duration;

use ventana::api::pb;

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

/// Inserts, per intent, what a released Submit writes (an intent, a dispatch, a contact
/// event, two audit rows), as multi-row INSERTs, 500 intents per transaction: no reads,
/// no decisions, no hashing, nothing but the durable writes.
pub async fn raw(target: &Target, intents: usize, concurrency: usize) -> anyhow::Result<Measured> {
    let bench = Bench::start(target, WEEKDAY_MORNING).await?;
    // SQLite has one writer: more would only meet in its busy handler.
    let concurrency = if bench.store().single_writer() { 1 } else { concurrency };
    let db = Arc::new(RawDb::connect(&bench.database_url, concurrency).await?);
    let run = format!("r{:x}", std::process::id());
    let batches = intents.div_ceil(BATCH);
    let (latencies, errors, elapsed) = drive("raw", batches, concurrency, {
        let db = db.clone();
        move |b| {
            let (db, run) = (db.clone(), run.clone());
            async move { raw_batch(&db, &run, b).await.is_ok() }
        }
    })
    .await;
    db.close().await;
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

/// The raw ceiling's own connections to the benchmark's database: plain sqlx
/// beside the server's store, since the ceiling is what the database does
/// without Ventana's code; the durability settings are the store's.
enum RawDb {
    Sqlite(sqlx::SqlitePool),
    Postgres(sqlx::PgPool),
}

impl RawDb {
    async fn connect(url: &str, connections: usize) -> anyhow::Result<RawDb> {
        use std::str::FromStr;
        let connections = u32::try_from(connections)?;
        Ok(if url.starts_with("sqlite:") {
            let options = sqlx::sqlite::SqliteConnectOptions::from_str(url)?
                .journal_mode(sqlx::sqlite::SqliteJournalMode::Wal)
                .synchronous(sqlx::sqlite::SqliteSynchronous::Full)
                .busy_timeout(Duration::from_secs(10))
                .foreign_keys(true);
            RawDb::Sqlite(
                sqlx::sqlite::SqlitePoolOptions::new().max_connections(connections).connect_with(options).await?,
            )
        } else {
            let options =
                sqlx::postgres::PgConnectOptions::from_str(url)?.options([("plan_cache_mode", "force_custom_plan")]);
            RawDb::Postgres(
                sqlx::postgres::PgPoolOptions::new().max_connections(connections).connect_with(options).await?,
            )
        })
    }

    async fn close(&self) {
        match self {
            RawDb::Sqlite(pool) => pool.close().await,
            RawDb::Postgres(pool) => pool.close().await,
        }
    }
}

async fn raw_batch(db: &RawDb, run: &str, b: usize) -> Result<(), sqlx::Error> {
    let tenant = format!("raw-{run}-{b}");
    let at = 1_764_082_800_000_i64;
    let hash = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
    // (intent_id, debtor_id, debt_id, dispatch_id) of each intent in the batch.
    let rows: Vec<(String, String, String, String)> = (b * BATCH..(b + 1) * BATCH)
        .map(|n| {
            (format!("{run}-{n}"), format!("debtor-{run}-{n}"), format!("debt-{n}"), uuid::Uuid::new_v4().to_string())
        })
        .collect();
    macro_rules! insert_all {
        ($db:ty, $tx:expr) => {{
            let mut q = sqlx::QueryBuilder::<$db>::new(
                "INSERT INTO intents (tenant, intent_id, debtor_id, debt_id, channel, jurisdiction, priority, body, \
                 body_hash, status, next_eval_at, decision, dispatch_id, attempt, outcome, created_at, updated_at) ",
            );
            q.push_values(&rows, |mut v, (intent_id, debtor, debt, dispatch)| {
                v.push_bind(&tenant).push_bind(intent_id).push_bind(debtor).push_bind(debt).push_bind("sms");
                v.push_bind("PE").push_bind(0_i64).push_bind(RAW_BODY).push_bind(hash).push_bind("released");
                v.push_bind(None::<i64>).push_bind(RAW_DECISION).push_bind(dispatch).push_bind(0_i64);
                v.push_bind(None::<String>).push_bind(at).push_bind(at);
            });
            q.build().execute(&mut *$tx).await?;
            let mut q = sqlx::QueryBuilder::<$db>::new(
                "INSERT INTO dispatches (dispatch_id, tenant, intent_id, debtor_id, channel, priority, released_at, \
                 not_after, state, lease_expires_at, attempt) ",
            );
            q.push_values(&rows, |mut v, (intent_id, debtor, _, dispatch)| {
                v.push_bind(dispatch).push_bind(&tenant).push_bind(intent_id).push_bind(debtor).push_bind("sms");
                v.push_bind(0_i64).push_bind(at).push_bind(at).push_bind("ready").push_bind(None::<i64>);
                v.push_bind(0_i64);
            });
            q.build().execute(&mut *$tx).await?;
            let mut q = sqlx::QueryBuilder::<$db>::new(
                "INSERT INTO contact_events (tenant, debtor_id, debt_id, channel, at, outcome, dispatch_id) ",
            );
            q.push_values(&rows, |mut v, (_, debtor, debt, dispatch)| {
                v.push_bind(&tenant).push_bind(debtor).push_bind(debt).push_bind("sms").push_bind(at);
                v.push_bind("attempted").push_bind(dispatch);
            });
            q.build().execute(&mut *$tx).await?;
            let mut q = sqlx::QueryBuilder::<$db>::new(
                "INSERT INTO audit_log (tenant, seq, at, kind, intent_id, debtor_id, debt_id, channel, jurisdiction, \
                 time_zone, local_time, decision, reason_codes, rule_ids, citations, rules_version, outcome, detail, \
                 prev_hash, hash) ",
            );
            let audit: Vec<_> = rows.iter().enumerate().flat_map(|(i, r)| [(2 * i + 1, "submitted", r), (2 * i + 2, "released", r)]).collect();
            q.push_values(&audit, |mut v, (seq, kind, (intent_id, debtor, debt, _))| {
                v.push_bind(&tenant).push_bind(*seq as i64).push_bind(at).push_bind(*kind).push_bind(intent_id);
                v.push_bind(debtor).push_bind(debt).push_bind("sms").push_bind("PE").push_bind("America/Lima");
                v.push_bind("2026-11-25 10:00:00").push_bind(None::<String>).push_bind(None::<String>);
                v.push_bind(None::<String>).push_bind(None::<String>).push_bind("PE@000000000000");
                v.push_bind(None::<String>).push_bind(RAW_DECISION).push_bind(hash).push_bind(hash);
            });
            q.build().execute(&mut *$tx).await?;
        }};
    }
    match db {
        RawDb::Sqlite(pool) => {
            let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
            insert_all!(sqlx::Sqlite, tx);
            tx.commit().await
        }
        RawDb::Postgres(pool) => {
            let mut tx = pool.begin().await?;
            insert_all!(sqlx::Postgres, tx);
            tx.commit().await
        }
    }
}
