//! Load generator for the Ventana gRPC API. Every scenario starts a real
//! server in this process on a loopback port (SQLite file by default, or the
//! PostgreSQL database given with `--database-url`) and drives it over real
//! gRPC; `suite` runs them all next to two ceilings measured in the same run:
//! an echo gRPC service (the cheapest unary call with the same client) and raw
//! sqlx inserts of the same rows (the cheapest durable write). See
//! docs/PERFORMANCE.md.
//!
//! ```sh
//! cargo run --release --bin ventana-bench -- suite
//! cargo run --release --bin ventana-bench -- suite --database-url postgres://postgres@127.0.0.1:5432/ventana_bench
//! cargo run --release --bin ventana-bench -- submit --requests 20000 --concurrency 64
//! ```

/// mimalloc: glibc's allocator was ~18% of a Submit's CPU (many small,
/// short-lived allocations across threads; see docs/PERFORMANCE.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::collections::HashSet;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use clap::{Args as ClapArgs, Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use tonic::metadata::{Ascii, MetadataValue};
use tonic::transport::Channel;
use ventana::api::auth::{Role, create_key};
use ventana::api::pb;
use ventana::clock::{Clock, ManualClock};
use ventana::config::Config;
use ventana::domain::AuditEventKind;
use ventana::server::Running;
use ventana::store::Store;

/// The echo baseline's generated code, next to the `ventana.v1` messages it reuses.
mod echo {
    include!(concat!(env!("OUT_DIR"), "/echo/ventana.bench.v1.rs"));
}

#[derive(Parser)]
#[command(name = "ventana-bench", about = "Load generator and ceilings for the Ventana gRPC API")]
struct Args {
    #[command(subcommand)]
    scenario: Scenario,
}

/// Where to run: a fresh SQLite file by default.
#[derive(ClapArgs, Clone)]
struct Target {
    /// `postgres://…/any_db`: each scenario runs in a fresh database created on that server (and
    /// dropped after); `sqlite://FILE`: that file. Default: a fresh SQLite file in a temporary directory.
    #[arg(long)]
    database_url: Option<String>,
}

#[derive(Subcommand)]
enum Scenario {
    /// Every scenario and both ceilings, then one table.
    Suite {
        #[command(flatten)]
        target: Target,
        #[arg(long, default_value_t = 20_000)]
        requests: usize,
        #[arg(long, default_value_t = 64)]
        concurrency: usize,
        /// Intents in the surge.
        #[arg(long, default_value_t = 100_000)]
        surge: usize,
        /// Seconds of the mixed workload.
        #[arg(long, default_value_t = 20)]
        mixed_seconds: u64,
    },
    /// The echo ceiling: the cheapest unary gRPC call, same client and concurrency.
    Echo {
        #[arg(long, default_value_t = 20_000)]
        requests: usize,
        #[arg(long, default_value_t = 64)]
        concurrency: usize,
    },
    /// Unary Submit, each a new intent for its own debtor (released: intent, dispatch,
    /// contact event and two audit events in one durable transaction).
    Submit {
        #[command(flatten)]
        target: Target,
        #[arg(long, default_value_t = 20_000)]
        requests: usize,
        #[arg(long, default_value_t = 64)]
        concurrency: usize,
        /// Fill the intents and contact_events tables with this many rows first (table-size cost).
        #[arg(long, default_value_t = 0)]
        prefill: usize,
    },
    /// SubmitBatch of 500 intents.
    Batch {
        #[command(flatten)]
        target: Target,
        #[arg(long, default_value_t = 40_000)]
        intents: usize,
        #[arg(long, default_value_t = 4)]
        concurrency: usize,
    },
    /// The durable-write ceiling: the rows a released intent writes, inserted with
    /// plain sqlx statements in transactions of 500 intents, same database settings.
    Raw {
        #[command(flatten)]
        target: Target,
        #[arg(long, default_value_t = 40_000)]
        intents: usize,
        #[arg(long, default_value_t = 4)]
        concurrency: usize,
    },
    /// Preloads M intents deferred to one instant (Peru, Monday 07:00), moves the clock
    /// there, and measures the time until an adapter has leased them all and the peak
    /// resident memory of this process (server and client) meanwhile.
    Surge {
        #[command(flatten)]
        target: Target,
        #[arg(long, default_value_t = 200_000)]
        intents: usize,
    },
    /// Submits, leases and acks together for a fixed time; then checks that every
    /// acknowledged submission is stored (released, deferred or rejected), none missing.
    Mixed {
        #[command(flatten)]
        target: Target,
        #[arg(long, default_value_t = 20)]
        seconds: u64,
        #[arg(long, default_value_t = 64)]
        concurrency: usize,
    },
    /// Appends N synthetic audit events (a valid chain) for tenant `bench`, to measure
    /// `ventana audit export` and `verify` on a large log.
    AuditFill {
        #[arg(long, default_value_t = 1_000_000)]
        events: usize,
        #[arg(long)]
        database_url: String,
    },
}

/// One scenario's result: a line of the final table.
struct Measured {
    name: String,
    backend: String,
    ops: usize,
    errors: usize,
    elapsed: Duration,
    /// Sorted call latencies (empty where calls are not the unit).
    latencies: Vec<Duration>,
    /// Anything else worth a column.
    note: String,
}

impl Measured {
    fn per_second(&self) -> f64 {
        self.ops as f64 / self.elapsed.as_secs_f64()
    }

    fn percentile(&self, p: f64) -> String {
        if self.latencies.is_empty() {
            return "-".into();
        }
        let index = ((self.latencies.len() as f64 - 1.0) * p).round() as usize;
        format!("{:.2}", self.latencies[index.min(self.latencies.len() - 1)].as_secs_f64() * 1000.0)
    }
}

fn print_table(rows: &[Measured]) {
    println!(
        "\n{:<10} {:<9} {:>9} {:>6} {:>9} {:>10} {:>8} {:>8} {:>8}  note",
        "scenario", "backend", "ops", "errors", "seconds", "ops/s", "p50 ms", "p99 ms", "p999 ms"
    );
    for r in rows {
        println!(
            "{:<10} {:<9} {:>9} {:>6} {:>9.2} {:>10.0} {:>8} {:>8} {:>8}  {}",
            r.name,
            r.backend,
            r.ops,
            r.errors,
            r.elapsed.as_secs_f64(),
            r.per_second(),
            r.percentile(0.50),
            r.percentile(0.99),
            r.percentile(0.999),
            r.note
        );
    }
}

fn progress(len: usize, what: &str) -> ProgressBar {
    let bar = ProgressBar::new(len as u64);
    bar.set_style(
        ProgressStyle::with_template("{msg:>10} [{elapsed_precise}] {wide_bar} {pos}/{len} ({per_sec}, eta {eta})")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar.set_message(what.to_string());
    bar
}

/// Runs `count` calls of `call(n)` from `concurrency` workers; latencies per call.
async fn drive<F, Fut>(name: &str, count: usize, concurrency: usize, call: F) -> (Vec<Duration>, usize, Duration)
where
    F: Fn(usize) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = bool> + Send,
{
    let bar = progress(count, name);
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..concurrency {
        let (next, call, bar) = (next.clone(), call.clone(), bar.clone());
        workers.push(tokio::spawn(async move {
            let (mut latencies, mut errors) = (Vec::new(), 0);
            loop {
                let n = next.fetch_add(1, Ordering::Relaxed);
                if n >= count {
                    return (latencies, errors);
                }
                let t = Instant::now();
                if call(n).await {
                    latencies.push(t.elapsed());
                } else {
                    errors += 1;
                }
                bar.inc(1);
            }
        }));
    }
    let (mut latencies, mut errors) = (Vec::with_capacity(count), 0);
    for worker in workers {
        if let Ok((l, e)) = worker.await {
            latencies.extend(l);
            errors += e;
        }
    }
    let elapsed = started.elapsed();
    bar.finish_and_clear();
    latencies.sort();
    (latencies, errors, elapsed)
}

/// A server for the benchmark, with a key holding every role it needs.
struct Bench {
    running: Running,
    clock: Arc<ManualClock>,
    channel: Channel,
    auth: MetadataValue<Ascii>,
    dir: std::path::PathBuf,
    /// The database the server runs on.
    database_url: String,
    /// The PostgreSQL server and the database created on it, dropped at the end.
    created: Option<(String, String)>,
}

impl Bench {
    async fn start(target: &Target, now: &str) -> anyhow::Result<Bench> {
        let dir = std::env::temp_dir().join(format!("ventana-bench-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir)?;
        let (database_url, created) = match &target.database_url {
            Some(url) if url.starts_with("postgres") => {
                use sqlx::Connection;
                let name = format!("ventana_bench_{}", uuid::Uuid::new_v4().simple());
                let mut admin = sqlx::PgConnection::connect(url).await?;
                sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}"))).execute(&mut admin).await?;
                let base = url.rsplit_once('/').map_or(url.as_str(), |(base, _)| base);
                (format!("{base}/{name}"), Some((url.clone(), name)))
            }
            Some(url) => (url.clone(), None),
            None => (format!("sqlite://{}/bench.db", dir.display()), None),
        };
        let config = Config {
            listen: "127.0.0.1:0".parse()?,
            metrics_listen: "127.0.0.1:0".parse()?,
            database_url: database_url.clone(),
            jurisdictions: concat!(env!("CARGO_MANIFEST_DIR"), "/jurisdictions").into(),
            max_message_bytes: 16 << 20,
            adapters: Vec::new(),
            audit: Default::default(),
            rate_limits: Default::default(),
            claim_seconds: ventana::config::DEFAULT_CLAIM_SECONDS,
            tls: None,
            plaintext: false,
        };
        let clock = ManualClock::new(chrono::DateTime::parse_from_rfc3339(now)?.to_utc());
        let running = ventana::server::start(&config, Clock::Manual(clock.clone())).await?;
        let key = create_key(&running.app.store, "bench", &[Role::Submitter, Role::Adapter], 0).await?;
        let auth = format!("Bearer {key}").parse()?;
        let channel = Channel::from_shared(format!("http://{}", running.addr))?.connect().await?;
        Ok(Bench { running, clock, channel, auth, dir, database_url, created })
    }

    fn store(&self) -> &Store {
        &self.running.app.store
    }

    fn request<T>(&self, message: T) -> tonic::Request<T> {
        with_auth(message, &self.auth)
    }

    async fn stop(self) {
        if self.created.is_some() {
            self.running.app.store.close().await;
        }
        self.running.shutdown().await;
        let _ = std::fs::remove_dir_all(&self.dir);
        if let Some((admin, name)) = self.created {
            use sqlx::Connection;
            if let Ok(mut admin) = sqlx::PgConnection::connect(&admin).await {
                let drop = format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)");
                let _ = sqlx::query(sqlx::AssertSqlSafe(drop)).execute(&mut admin).await;
            }
        }
    }
}

fn with_auth<T>(message: T, auth: &MetadataValue<Ascii>) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request.metadata_mut().insert("authorization", auth.clone());
    request
}

/// The n-th benchmark intent: Peru, SMS, its own debtor.
fn intent(run: &str, n: usize) -> pb::Intent {
    pb::Intent {
        intent_id: format!("{run}-{n}"),
        debtor_id: format!("debtor-{run}-{n}"),
        debt_id: format!("debt-{n}"),
        channel: pb::Channel::Sms as i32,
        party: pb::Party::Debtor as i32,
        stage: pb::Stage::Extrajudicial as i32,
        jurisdiction: "PE".into(),
        ..Default::default()
    }
}

/// A weekday 10:00 in Lima: everything submitted is released.
const WEEKDAY_MORNING: &str = "2026-11-25T10:00:00-05:00";

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Args::parse().scenario {
        Scenario::Suite { target, requests, concurrency, surge: surge_size, mixed_seconds } => {
            let mut rows = vec![echo_ceiling(requests, concurrency).await?];
            rows.push(submit(&target, requests, concurrency, 0).await?);
            rows.push(raw_ceiling(&target, requests * 2, 4).await?);
            rows.push(batch(&target, requests * 2, 4).await?);
            rows.push(surge(&target, surge_size).await?);
            rows.push(mixed(&target, mixed_seconds, concurrency).await?);
            let (echo, raw) = (rows[0].per_second(), rows[2].per_second());
            rows[1].note = format!("{:.0}% of echo", 100.0 * rows[1].per_second() / echo);
            rows[3].note = format!("{:.0}% of raw", 100.0 * rows[3].per_second() / raw);
            print_table(&rows);
        }
        Scenario::Echo { requests, concurrency } => print_table(&[echo_ceiling(requests, concurrency).await?]),
        Scenario::Submit { target, requests, concurrency, prefill } => {
            print_table(&[submit(&target, requests, concurrency, prefill).await?])
        }
        Scenario::Batch { target, intents, concurrency } => print_table(&[batch(&target, intents, concurrency).await?]),
        Scenario::Raw { target, intents, concurrency } => {
            print_table(&[raw_ceiling(&target, intents, concurrency).await?])
        }
        Scenario::Surge { target, intents } => print_table(&[surge(&target, intents).await?]),
        Scenario::Mixed { target, seconds, concurrency } => print_table(&[mixed(&target, seconds, concurrency).await?]),
        Scenario::AuditFill { events, database_url } => audit_fill(events, &database_url).await?,
    }
    Ok(())
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

async fn echo_ceiling(requests: usize, concurrency: usize) -> anyhow::Result<Measured> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let server = tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(echo::echo_service_server::EchoServiceServer::new(Echo))
            .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true))),
    );
    let channel = Channel::from_shared(format!("http://{addr}"))?.connect().await?;
    let auth: MetadataValue<Ascii> = "Bearer 0123456789abcdef0123456789abcdef".parse()?;
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

async fn submit(target: &Target, requests: usize, concurrency: usize, prefill: usize) -> anyhow::Result<Measured> {
    let bench = Bench::start(target, WEEKDAY_MORNING).await?;
    if prefill > 0 {
        let started = Instant::now();
        fill_tables(&bench, prefill).await?;
        eprintln!("prefilled {prefill} intents and contact events in {:.1} s", started.elapsed().as_secs_f64());
    }
    let run = format!("s{:x}", std::process::id());
    let (channel, auth) = (bench.channel.clone(), bench.auth.clone());
    let (latencies, errors, elapsed) = drive("submit", requests, concurrency, move |n| {
        let (mut client, auth, run) = (
            pb::contact_scheduler_service_client::ContactSchedulerServiceClient::new(channel.clone()),
            auth.clone(),
            run.clone(),
        );
        async move {
            let request = pb::SubmitRequest { intent: Some(intent(&run, n)) };
            client.submit(with_auth(request, &auth)).await.is_ok()
        }
    })
    .await;
    let backend = bench.store().backend().to_string();
    bench.stop().await;
    Ok(Measured {
        name: "submit".into(),
        backend,
        ops: latencies.len(),
        errors,
        elapsed,
        latencies,
        note: if prefill > 0 { format!("table prefilled with {prefill}") } else { String::new() },
    })
}

const BATCH: usize = 500;

async fn batch(target: &Target, intents: usize, concurrency: usize) -> anyhow::Result<Measured> {
    let bench = Bench::start(target, WEEKDAY_MORNING).await?;
    let run = format!("b{:x}", std::process::id());
    let (channel, auth) = (bench.channel.clone(), bench.auth.clone());
    let batches = intents.div_ceil(BATCH);
    let (latencies, errors, elapsed) = drive("batch", batches, concurrency, move |b| {
        let (mut client, auth, run) = (
            pb::contact_scheduler_service_client::ContactSchedulerServiceClient::new(channel.clone()),
            auth.clone(),
            run.clone(),
        );
        async move {
            let intents = (b * BATCH..(b + 1) * BATCH).map(|n| intent(&run, n)).collect();
            match client.submit_batch(with_auth(pb::SubmitBatchRequest { intents }, &auth)).await {
                Ok(response) => response
                    .into_inner()
                    .results
                    .iter()
                    .all(|r| matches!(r.result, Some(pb::submit_batch_result::Result::Response(_)))),
                Err(_) => false,
            }
        }
    })
    .await;
    let backend = bench.store().backend().to_string();
    bench.stop().await;
    Ok(Measured {
        name: "batch".into(),
        backend,
        ops: latencies.len() * BATCH,
        errors: errors * BATCH,
        elapsed,
        latencies,
        note: format!("intents/s; {BATCH} per call, latency per call"),
    })
}

/// Inserts, per intent, what a released Submit writes (an intent, a dispatch, a contact
/// event, two audit rows), as multi-row INSERTs, 500 intents per transaction: no reads,
/// no decisions, no hashing, nothing but the durable writes.
async fn raw_ceiling(target: &Target, intents: usize, concurrency: usize) -> anyhow::Result<Measured> {
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

/// Fills `intents` and `contact_events` with `rows` finished intents of other
/// debtors, in bulk statements run behind the service's back.
async fn fill_tables(bench: &Bench, rows: usize) -> anyhow::Result<()> {
    let store = bench.store();
    let postgres = bench.database_url.starts_with("postgres");
    let chunk = 1_000_000;
    let bar = progress(rows, "prefill");
    for start in (0..rows).step_by(chunk) {
        let end = (start + chunk).min(rows);
        let last = end - 1;
        let series = if postgres {
            format!("WITH series(i) AS (SELECT generate_series({start}::bigint, {last}::bigint)) ")
        } else {
            format!("WITH RECURSIVE series(i) AS (SELECT {start} UNION ALL SELECT i + 1 FROM series WHERE i < {last}) ")
        };
        let intents = "INSERT INTO intents (tenant, intent_id, debtor_id, debt_id, channel, jurisdiction, priority, body, \
             body_hash, status, next_eval_at, decision, dispatch_id, attempt, outcome, created_at, updated_at) \
             SELECT 'bench', 'fill-' || i, 'fill-debtor-' || i, NULL, 'sms', 'PE', 0, '{}', 'h', 'done', NULL, '{}', \
             NULL, 1, 'delivered', 0, 0 FROM series";
        let events = "INSERT INTO contact_events (tenant, debtor_id, debt_id, channel, at, outcome, dispatch_id) \
             SELECT 'bench', 'fill-debtor-' || i, NULL, 'sms', 1764082800000 - i, 'delivered', 'fill-' || i FROM series";
        for sql in [intents, events] {
            store.execute_unchecked(&format!("{series}{sql}")).await?;
        }
        if postgres {
            store.execute_unchecked("ANALYZE intents; ANALYZE contact_events").await?;
        }
        bar.set_position(end as u64);
    }
    bar.finish_and_clear();
    Ok(())
}

/// Resident memory now, in MiB (Linux).
fn rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("VmRSS:")).and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map_or(0.0, |kib| kib / 1024.0)
}

async fn surge(target: &Target, intents: usize) -> anyhow::Result<Measured> {
    // Saturday in Lima: everything is deferred to Monday 07:00.
    let bench = Bench::start(target, "2026-11-28T10:00:00-05:00").await?;
    let mut client = pb::contact_scheduler_service_client::ContactSchedulerServiceClient::new(bench.channel.clone());
    let preload = Instant::now();
    let bar = progress(intents, "preload");
    for start in (0..intents).step_by(1000) {
        let batch = (start..(start + 1000).min(intents))
            .map(|n| pb::Intent {
                channel: pb::Channel::Whatsapp as i32,
                priority: (n % 3) as i32,
                ..intent(&format!("surge{:x}", std::process::id()), n)
            })
            .collect();
        client.submit_batch(bench.request(pb::SubmitBatchRequest { intents: batch })).await?;
        bar.set_position((start + 1000).min(intents) as u64);
    }
    bar.finish_and_clear();
    eprintln!(
        "preloaded {intents} deferred intents in {:.1} s ({:.0} MiB resident)",
        preload.elapsed().as_secs_f64(),
        rss_mib()
    );

    let started = Instant::now();
    bench.clock.set(chrono::DateTime::parse_from_rfc3339("2026-11-30T07:00:00-05:00")?.to_utc());
    let peak = Arc::new(std::sync::Mutex::new(rss_mib()));
    let sampler = {
        let peak = peak.clone();
        tokio::spawn(async move {
            loop {
                let now = rss_mib();
                if let Ok(mut p) = peak.lock() {
                    *p = p.max(now);
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
    };
    let bar = progress(intents, "surge");
    let mut adapter = pb::dispatch_service_client::DispatchServiceClient::new(bench.channel.clone());
    let mut leased = 0;
    let mut first_lease = None;
    while leased < intents {
        let request = bench.request(pb::LeaseRequest {
            channels: vec![pb::Channel::Whatsapp as i32],
            max_items: 500,
            lease_duration: Some(prost_types::Duration { seconds: 3600, nanos: 0 }),
        });
        let items = adapter.lease(request).await?.into_inner().items;
        if items.is_empty() {
            tokio::time::sleep(Duration::from_millis(20)).await;
            continue;
        }
        first_lease.get_or_insert_with(|| started.elapsed());
        leased += items.len();
        bar.set_position(leased as u64);
    }
    let elapsed = started.elapsed();
    bar.finish_and_clear();
    sampler.abort();
    let peak = peak.lock().map(|p| *p).unwrap_or_default();
    let backend = bench.store().backend().to_string();
    bench.stop().await;
    Ok(Measured {
        name: "surge".into(),
        backend,
        ops: leased,
        errors: 0,
        elapsed,
        latencies: Vec::new(),
        note: format!(
            "{intents} due at once, all leased; first lease {:.2} s; peak RSS {peak:.0} MiB",
            first_lease.unwrap_or_default().as_secs_f64()
        ),
    })
}

async fn mixed(target: &Target, seconds: u64, concurrency: usize) -> anyhow::Result<Measured> {
    let bench = Bench::start(target, WEEKDAY_MORNING).await?;
    let run = format!("m{:x}", std::process::id());
    let stop = Arc::new(AtomicBool::new(false));
    let next = Arc::new(AtomicUsize::new(0));
    let (leases, acks) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let bar = ProgressBar::new(seconds);
    bar.set_message("mixed");
    let started = Instant::now();
    let mut submitters = Vec::new();
    for _ in 0..concurrency.max(2) - 1 {
        let mut client =
            pb::contact_scheduler_service_client::ContactSchedulerServiceClient::new(bench.channel.clone());
        let (stop, next, auth, run) = (stop.clone(), next.clone(), bench.auth.clone(), run.clone());
        submitters.push(tokio::spawn(async move {
            let (mut accepted, mut latencies, mut errors) = (Vec::new(), Vec::new(), 0);
            while !stop.load(Ordering::Relaxed) {
                let n = next.fetch_add(1, Ordering::Relaxed);
                // A third of the debtors get a second and third contact: Peru's daily caps defer some.
                let mut intent = intent(&run, n);
                if n % 3 != 0 {
                    intent.debtor_id = format!("debtor-{run}-{}", n - n % 3);
                }
                if n % 10 == 9 {
                    intent.party = pb::Party::ThirdParty as i32;
                }
                let t = Instant::now();
                match client.submit(with_auth(pb::SubmitRequest { intent: Some(intent) }, &auth)).await {
                    Ok(_) => {
                        latencies.push(t.elapsed());
                        accepted.push(format!("{run}-{n}"));
                    }
                    Err(_) => errors += 1,
                }
            }
            (accepted, latencies, errors)
        }));
    }
    let adapter = {
        let mut adapter = pb::dispatch_service_client::DispatchServiceClient::new(bench.channel.clone());
        let (stop, auth, leases, acks) = (stop.clone(), bench.auth.clone(), leases.clone(), acks.clone());
        tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let request =
                    pb::LeaseRequest { channels: vec![pb::Channel::Sms as i32], max_items: 200, lease_duration: None };
                let Ok(response) = adapter.lease(with_auth(request, &auth)).await else { continue };
                let items = response.into_inner().items;
                if items.is_empty() {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                leases.fetch_add(items.len(), Ordering::Relaxed);
                // Acks go out concurrently, as a real adapter's deliveries complete.
                let mut pending = Vec::with_capacity(items.len());
                for item in items {
                    let ack = pb::AckRequest {
                        dispatch_id: item.dispatch_id,
                        outcome: pb::Outcome::Delivered as i32,
                        at: None,
                        detail: String::new(),
                    };
                    let (mut adapter, auth) = (adapter.clone(), auth.clone());
                    pending.push(tokio::spawn(async move { adapter.ack(with_auth(ack, &auth)).await.is_ok() }));
                }
                for ack in pending {
                    if ack.await.unwrap_or(false) {
                        acks.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        })
    };
    while started.elapsed() < Duration::from_secs(seconds) {
        tokio::time::sleep(Duration::from_millis(250)).await;
        bar.set_position(started.elapsed().as_secs());
    }
    stop.store(true, Ordering::Relaxed);
    let (mut accepted, mut latencies, mut errors) = (Vec::new(), Vec::new(), 0);
    for submitter in submitters {
        let (a, l, e) = submitter.await?;
        accepted.extend(a);
        latencies.extend(l);
        errors += e;
    }
    adapter.await?;
    let elapsed = started.elapsed();
    bar.finish_and_clear();
    latencies.sort();

    // Every acknowledged submission is stored, in some state.
    let mut by_status = std::collections::BTreeMap::<String, usize>::new();
    let mut missing = 0;
    let unique: HashSet<&String> = accepted.iter().collect();
    for intent_id in &unique {
        match bench.store().get_intent("bench", intent_id).await? {
            Some(row) => *by_status.entry(row.status.to_string()).or_default() += 1,
            None => missing += 1,
        }
    }
    let backend = bench.store().backend().to_string();
    bench.stop().await;
    if missing > 0 {
        anyhow::bail!("{missing} acknowledged submissions are missing from the database");
    }
    let statuses: Vec<String> = by_status.iter().map(|(s, n)| format!("{s} {n}")).collect();
    Ok(Measured {
        name: "mixed".into(),
        backend,
        ops: latencies.len(),
        errors,
        elapsed,
        latencies,
        note: format!(
            "submits; {} leased, {} acked; all {} accepted stored ({}), 0 missing",
            leases.load(Ordering::Relaxed),
            acks.load(Ordering::Relaxed),
            unique.len(),
            statuses.join(", ")
        ),
    })
}

/// Appends `events` decision-like audit events in transactions of 10,000.
async fn audit_fill(events: usize, database_url: &str) -> anyhow::Result<()> {
    let store = Store::connect(database_url).await?;
    let started = Instant::now();
    let start = chrono::DateTime::parse_from_rfc3339("2026-01-01T12:00:00-05:00")?.to_utc();
    let mut written = 0;
    while written < events {
        let mut tx = store.begin().await?;
        for n in written..(written + 10_000).min(events) {
            let at = start + chrono::Duration::seconds(n as i64 * 10);
            let kind = if n % 2 == 0 { AuditEventKind::Submitted } else { AuditEventKind::Released };
            let detail = r#"{"decision":{"decision":"release","reasons":[{"rule":"pe-art62b-hours"}]}}"#;
            tx.audit(ventana::audit::AuditEvent {
                intent_id: Some(format!("intent-{}", n / 2)),
                debtor_id: Some(format!("debtor-{}", n % 5_000)),
                debt_id: Some(format!("debt-{}", n % 7_000)),
                channel: Some(ventana::domain::Channel::Call),
                jurisdiction: Some("PE".into()),
                time_zone: Some("America/Lima".into()),
                local_time: Some(at.with_timezone(&chrono_tz::America::Lima).format("%Y-%m-%d %H:%M:%S").to_string()),
                decision: (n % 2 == 1).then(|| "release".to_string()),
                rule_ids: (n % 2 == 1).then(|| "pe-art62b-hours".to_string()),
                citations: (n % 2 == 1).then(|| "Ley 29571, art. 62(b)".to_string()),
                rules_version: Some("PE@d7ca648ecd08".into()),
                ..ventana::audit::AuditEvent::new("bench", at.timestamp_millis(), kind, detail.into())
            });
        }
        tx.commit().await?;
        written = (written + 10_000).min(events);
    }
    println!("appended {events} audit events in {:.1} s", started.elapsed().as_secs_f64());
    Ok(())
}
