//! A surge: N intents submitted on a Saturday (deferred to Monday 07:00, three
//! priorities), then the clock moves to Monday 07:00; measures the time until
//! one adapter holds them all, each contact's time from due (the clock move)
//! to the adapter holding it, and this process's peak resident memory. The
//! adapter either polls `Lease` (`surge`) or is handed the contacts on a
//! `Dispatch` stream (`stream`), granting one credit back per contact it is
//! sent (a fast adapter that hands each on at once; neither acks).

use std::sync::Arc;
use std::time::{Duration, Instant};

use ventana::api::pb;

use crate::measure::{Measured, progress};
use crate::target::{Bench, Target, intent};

/// How the adapter takes the contacts.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Drain {
    /// `Lease` of 500 in a loop, 20 ms apart when nothing came.
    Lease,
    /// One `Dispatch` stream holding up to `STREAM_WINDOW` contacts.
    Stream,
}

/// The credit a streaming adapter keeps granted.
const STREAM_WINDOW: i32 = 1000;
/// Most credit in one Dispatch request.
const MAX_CREDIT: i32 = 500;

pub async fn run(target: &Target, intents: usize, drain: Drain) -> anyhow::Result<Measured> {
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
    let name = match drain {
        Drain::Lease => "surge",
        Drain::Stream => "stream",
    };
    let bar = progress(intents, name);
    let mut adapter = pb::dispatch_service_client::DispatchServiceClient::new(bench.channel.clone());
    let mut held = Vec::with_capacity(intents);
    match drain {
        Drain::Lease => {
            while held.len() < intents {
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
                held.extend(std::iter::repeat_n(started.elapsed(), items.len()));
                bar.set_position(held.len() as u64);
            }
        }
        Drain::Stream => {
            let (grants, requests) = tokio::sync::mpsc::unbounded_channel();
            let open = |credit| pb::DispatchRequest { channels: Vec::new(), credit, lease_duration: None };
            grants.send(pb::DispatchRequest {
                channels: vec![pb::Channel::Whatsapp as i32],
                lease_duration: Some(prost_types::Duration { seconds: 3600, nanos: 0 }),
                ..open(MAX_CREDIT)
            })?;
            for _ in 1..STREAM_WINDOW / MAX_CREDIT {
                grants.send(open(MAX_CREDIT))?;
            }
            let requests = tokio_stream::wrappers::UnboundedReceiverStream::new(requests);
            let mut contacts = adapter.dispatch(bench.request(requests)).await?.into_inner();
            while held.len() < intents {
                let Some(answer) = contacts.message().await? else { anyhow::bail!("the stream ended early") };
                held.extend(std::iter::repeat_n(started.elapsed(), answer.items.len()));
                for chunk in answer.items.chunks(MAX_CREDIT as usize) {
                    grants.send(open(chunk.len() as i32))?;
                }
                bar.set_position(held.len() as u64);
            }
        }
    }
    let leased = held.len();
    let first_lease = held.first().copied();
    let elapsed = started.elapsed();
    bar.finish_and_clear();
    sampler.abort();
    let peak = peak.lock().map(|p| *p).unwrap_or_default();
    let backend = bench.store().backend().to_string();
    bench.stop().await;
    held.sort();
    Ok(Measured {
        name: name.into(),
        backend,
        ops: leased,
        errors: 0,
        elapsed,
        // Each contact's time from due to held.
        latencies: held,
        note: format!(
            "{intents} due at once, all held; first after {:.2} s; peak RSS {peak:.0} MiB",
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
