//! `SubmitBatch` of `BATCH` intents per call, from a few concurrent callers.

use ventana::api::pb;

use crate::measure::{Measured, drive};
use crate::target::{Bench, Target, WEEKDAY_MORNING, intent, with_auth};

/// Intents per `SubmitBatch` call, and per transaction of the raw ceiling.
pub const BATCH: usize = 500;

pub async fn run(target: &Target, intents: usize, concurrency: usize) -> anyhow::Result<Measured> {
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
