//! What a scenario measures and how it is shown: one `Measured` per scenario,
//! its rate and latency percentiles, the final table, progress bars, and
//! `drive`, which runs a fixed number of calls from concurrent workers.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

/// One scenario's result: a line of the final table.
pub struct Measured {
    pub name: String,
    pub backend: String,
    pub ops: usize,
    pub errors: usize,
    pub elapsed: Duration,
    /// Sorted call latencies (empty where calls are not the unit).
    pub latencies: Vec<Duration>,
    /// Anything else worth a column.
    pub note: String,
}

impl Measured {
    pub fn per_second(&self) -> f64 {
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

pub fn print_table(rows: &[Measured]) {
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

pub fn progress(len: usize, what: &str) -> ProgressBar {
    let bar = ProgressBar::new(len as u64);
    bar.set_style(
        ProgressStyle::with_template("{msg:>10} [{elapsed_precise}] {wide_bar} {pos}/{len} ({per_sec}, eta {eta})")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar.set_message(what.to_string());
    bar
}

/// Runs `count` calls of `call(n)` from `concurrency` workers; returns the
/// sorted latencies of the calls that succeeded, how many failed, and the
/// time the whole run took.
pub async fn drive<F, Fut>(name: &str, count: usize, concurrency: usize, call: F) -> (Vec<Duration>, usize, Duration)
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
