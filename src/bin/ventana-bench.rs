//! Load generator: starts a Ventana server in-process on a loopback port
//! (SQLite file or PostgreSQL database), then drives `Submit` over real gRPC
//! with N concurrent clients and reports throughput and latency.
//!
//! ```sh
//! cargo run --release --bin ventana-bench -- submit --requests 20000 --concurrency 32
//! cargo run --release --bin ventana-bench -- submit --database-url postgres://postgres@127.0.0.1:5432/ventana_bench
//! ```

use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand};
use tonic::metadata::MetadataValue;
use ventana::api::auth::{Role, create_key};
use ventana::api::pb;
use ventana::clock::{Clock, ManualClock};
use ventana::config::Config;

#[derive(Parser)]
#[command(name = "ventana-bench", about = "Load generator for the Ventana gRPC API")]
struct Args {
    #[command(subcommand)]
    scenario: Scenario,
}

#[derive(Subcommand)]
enum Scenario {
    /// Unary Submit calls, each a new intent for its own debtor (released: a dispatch and a contact event are written).
    Submit {
        #[arg(long, default_value_t = 20_000)]
        requests: usize,
        #[arg(long, default_value_t = 32)]
        concurrency: usize,
        /// Database to run on; default: a fresh SQLite file in a temporary directory.
        #[arg(long)]
        database_url: Option<String>,
    },
    /// Preloads M intents deferred to the same instant (Peru, Monday 07:00), moves the
    /// clock there, and measures the time until an adapter has leased them all, and the
    /// peak resident memory meanwhile.
    Surge {
        #[arg(long, default_value_t = 200_000)]
        intents: usize,
        #[arg(long)]
        database_url: Option<String>,
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

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let (requests, concurrency, database_url) = match Args::parse().scenario {
        Scenario::Submit { requests, concurrency, database_url } => (requests, concurrency, database_url),
        Scenario::AuditFill { events, database_url } => return audit_fill(events, &database_url).await,
        Scenario::Surge { intents, database_url } => return surge(intents, database_url).await,
    };
    let dir = tempfile_dir()?;
    let database_url = database_url.unwrap_or_else(|| format!("sqlite://{}/bench.db", dir.display()));
    let config = Config {
        listen: "127.0.0.1:0".parse()?,
        metrics_listen: "127.0.0.1:0".parse()?,
        database_url: database_url.clone(),
        jurisdictions: concat!(env!("CARGO_MANIFEST_DIR"), "/jurisdictions").into(),
        max_message_bytes: 4 << 20,
        adapters: Vec::new(),
        audit: Default::default(),
        rate_limits: Default::default(),
        claim_seconds: ventana::config::DEFAULT_CLAIM_SECONDS,
    };
    // A weekday 10:00 in Lima: every intent is released.
    let clock = ManualClock::new(chrono::DateTime::parse_from_rfc3339("2026-11-25T10:00:00-05:00")?.to_utc());
    let running = ventana::server::start(&config, Clock::Manual(clock)).await?;
    let key = create_key(&running.app.store, "bench", &[Role::Submitter], 0).await?;
    let auth: MetadataValue<_> = format!("Bearer {key}").parse()?;
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{}", running.addr))?.connect().await?;
    let run = format!("{:x}", std::process::id());

    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let started = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..concurrency {
        let mut client = pb::contact_scheduler_client::ContactSchedulerClient::new(channel.clone());
        let (next, auth, run) = (next.clone(), auth.clone(), run.clone());
        workers.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut errors = 0usize;
            loop {
                let n = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if n >= requests {
                    return (latencies, errors);
                }
                let intent = pb::Intent {
                    intent_id: format!("bench-{run}-{n}"),
                    debtor_id: format!("debtor-{n}"),
                    channel: pb::Channel::Sms as i32,
                    party: pb::Party::Debtor as i32,
                    stage: pb::Stage::Extrajudicial as i32,
                    jurisdiction: "PE".into(),
                    ..Default::default()
                };
                let mut request = tonic::Request::new(pb::SubmitRequest { intent: Some(intent) });
                request.metadata_mut().insert("authorization", auth.clone());
                let t = Instant::now();
                match client.submit(request).await {
                    Ok(_) => latencies.push(t.elapsed()),
                    Err(_) => errors += 1,
                }
            }
        }));
    }
    let mut latencies = Vec::with_capacity(requests);
    let mut errors = 0;
    for worker in workers {
        let (l, e) = worker.await?;
        latencies.extend(l);
        errors += e;
    }
    let elapsed = started.elapsed();
    latencies.sort();
    println!("scenario  submit ({})", running.app.store.backend());
    println!("requests  {requests} ({errors} errors), concurrency {concurrency}");
    println!("elapsed   {:.2} s", elapsed.as_secs_f64());
    println!("throughput {:.0} intents/s", latencies.len() as f64 / elapsed.as_secs_f64());
    for (name, p) in [("p50", 0.50), ("p99", 0.99), ("p999", 0.999)] {
        println!("{name:<9} {:.2} ms", percentile(&latencies, p).as_secs_f64() * 1000.0);
    }
    running.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

/// A private temporary directory for the default SQLite file.
fn tempfile_dir() -> anyhow::Result<std::path::PathBuf> {
    let dir = std::env::temp_dir().join(format!("ventana-bench-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

/// Appends `events` decision-like audit events in transactions of 10,000.
async fn audit_fill(events: usize, database_url: &str) -> anyhow::Result<()> {
    let store = ventana::store::Store::connect(database_url).await?;
    let started = Instant::now();
    let start = chrono::DateTime::parse_from_rfc3339("2026-01-01T12:00:00-05:00")?.to_utc();
    let mut written = 0;
    while written < events {
        let mut tx = store.begin().await?;
        for n in written..(written + 10_000).min(events) {
            let at = start + chrono::Duration::seconds(n as i64 * 10);
            tx.audit(ventana::audit::AuditEvent {
                tenant: "bench".into(),
                at: at.timestamp_millis(),
                kind: if n % 2 == 0 { "submitted" } else { "released" }.into(),
                intent_id: Some(format!("intent-{}", n / 2)),
                debtor_id: Some(format!("debtor-{}", n % 5_000)),
                debt_id: Some(format!("debt-{}", n % 7_000)),
                channel: Some("call".into()),
                jurisdiction: Some("PE".into()),
                time_zone: Some("America/Lima".into()),
                local_time: Some(at.with_timezone(&chrono_tz::America::Lima).format("%Y-%m-%d %H:%M:%S").to_string()),
                decision: (n % 2 == 1).then(|| "release".to_string()),
                rule_ids: (n % 2 == 1).then(|| "pe-art62b-hours".to_string()),
                citations: (n % 2 == 1).then(|| "Ley 29571, art. 62(b)".to_string()),
                rules_version: Some("PE@d7ca648ecd08".into()),
                detail: r#"{"decision":{"decision":"release","reasons":[{"rule":"pe-art62b-hours"}]}}"#.into(),
                ..Default::default()
            });
        }
        tx.commit().await?;
        written = (written + 10_000).min(events);
    }
    println!("appended {events} audit events in {:.1} s", started.elapsed().as_secs_f64());
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

async fn surge(intents: usize, database_url: Option<String>) -> anyhow::Result<()> {
    let dir = tempfile_dir()?;
    let database_url = database_url.unwrap_or_else(|| format!("sqlite://{}/surge.db", dir.display()));
    let config = Config {
        listen: "127.0.0.1:0".parse()?,
        metrics_listen: "127.0.0.1:0".parse()?,
        database_url,
        jurisdictions: concat!(env!("CARGO_MANIFEST_DIR"), "/jurisdictions").into(),
        max_message_bytes: 16 << 20,
        adapters: Vec::new(),
        audit: Default::default(),
        rate_limits: Default::default(),
        claim_seconds: ventana::config::DEFAULT_CLAIM_SECONDS,
    };
    // Saturday in Lima: everything is deferred to Monday 07:00.
    let clock = ManualClock::new(chrono::DateTime::parse_from_rfc3339("2026-11-28T10:00:00-05:00")?.to_utc());
    let running = ventana::server::start(&config, Clock::Manual(clock.clone())).await?;
    let key = create_key(&running.app.store, "bench", &[Role::Submitter, Role::Adapter], 0).await?;
    let auth: MetadataValue<_> = format!("Bearer {key}").parse()?;
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{}", running.addr))?.connect().await?;
    let mut client = pb::contact_scheduler_client::ContactSchedulerClient::new(channel.clone());
    let preload = Instant::now();
    for start in (0..intents).step_by(1000) {
        let batch = (start..(start + 1000).min(intents))
            .map(|n| pb::Intent {
                intent_id: format!("surge-{n}"),
                debtor_id: format!("debtor-{n}"),
                channel: pb::Channel::Whatsapp as i32,
                party: pb::Party::Debtor as i32,
                stage: pb::Stage::Extrajudicial as i32,
                jurisdiction: "PE".into(),
                priority: (n % 3) as i32,
                ..Default::default()
            })
            .collect();
        let mut request = tonic::Request::new(pb::SubmitBatchRequest { intents: batch });
        request.metadata_mut().insert("authorization", auth.clone());
        client.submit_batch(request).await?;
    }
    println!(
        "preloaded {intents} deferred intents in {:.1} s ({:.0} MiB resident)",
        preload.elapsed().as_secs_f64(),
        rss_mib()
    );

    let started = Instant::now();
    clock.set(chrono::DateTime::parse_from_rfc3339("2026-11-30T07:00:00-05:00")?.to_utc());
    let peak = std::sync::Arc::new(std::sync::Mutex::new(rss_mib()));
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
    let mut adapter = pb::dispatch_client::DispatchClient::new(channel);
    let mut leased = 0;
    let mut first_lease = None;
    while leased < intents {
        let mut request = tonic::Request::new(pb::LeaseRequest {
            channels: vec![pb::Channel::Whatsapp as i32],
            max_items: 500,
            lease_duration: Some(prost_types::Duration { seconds: 3600, nanos: 0 }),
        });
        request.metadata_mut().insert("authorization", auth.clone());
        let items = adapter.lease(request).await?.into_inner().items;
        if items.is_empty() {
            tokio::time::sleep(Duration::from_millis(20)).await;
            continue;
        }
        first_lease.get_or_insert_with(|| started.elapsed());
        leased += items.len();
    }
    let elapsed = started.elapsed();
    sampler.abort();
    let peak = peak.lock().map(|p| *p).unwrap_or_default();
    println!("scenario   surge ({})", running.app.store.backend());
    println!("intents    {intents} due at one instant, no rate limit");
    println!("first lease after {:.2} s", first_lease.unwrap_or_default().as_secs_f64());
    println!(
        "all leased after {:.1} s ({:.0} intents/s)",
        elapsed.as_secs_f64(),
        intents as f64 / elapsed.as_secs_f64()
    );
    println!("peak resident memory during the surge: {peak:.0} MiB");
    running.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
