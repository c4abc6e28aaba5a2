//! Unary `Submit`: each call a new intent for its own debtor, released, so one
//! durable commit holds the intent, a dispatch, a contact event and two audit
//! events. Optionally over tables prefilled with other debtors' history.

use std::time::Instant;

use ventana::api::pb;

use crate::measure::{Measured, drive};
use crate::target::{Bench, Target, WEEKDAY_MORNING, intent, with_auth};

pub async fn run(target: &Target, requests: usize, concurrency: usize, prefill: usize) -> anyhow::Result<Measured> {
    let bench = Bench::start(target, WEEKDAY_MORNING).await?;
    if prefill > 0 {
        let started = Instant::now();
        crate::fill::history(bench.store(), prefill).await?;
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
