//! The mixed workload: concurrency − 1 submitters (a third of the debtors get
//! 2–3 contacts, a tenth are third parties) and one adapter leasing and
//! acking, for a fixed time; then every accepted submission is looked up:
//! none may be missing.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use indicatif::ProgressBar;
use ventana::api::pb;

use crate::measure::Measured;
use crate::target::{Bench, Target, WEEKDAY_MORNING, intent, with_auth};

pub async fn run(target: &Target, seconds: u64, concurrency: usize) -> anyhow::Result<Measured> {
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
