//! A surge: N intents submitted on a Saturday (deferred to Monday 07:00, three
//! priorities), then the clock moves to Monday 07:00; measures the time until
//! one adapter has leased them all, and this process's peak resident memory.

use std::sync::Arc;
use std::time::{Duration, Instant};

use ventana::api::pb;

use crate::measure::{Measured, progress};
use crate::target::{Bench, Target, intent};

pub async fn run(target: &Target, intents: usize) -> anyhow::Result<Measured> {
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

/// Resident memory now, in MiB (Linux).
fn rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("VmRSS:")).and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map_or(0.0, |kib| kib / 1024.0)
}
