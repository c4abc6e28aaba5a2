//! Load generator for the Ventana gRPC API. Every scenario starts a real
//! server in this process on a loopback port (SQLite file by default, or the
//! PostgreSQL database given with `--database-url`) and drives it over real
//! gRPC; `suite` runs them all next to two ceilings measured in the same run:
//! an echo gRPC service (the cheapest unary call with the same client) and the
//! rows a release writes sent straight through the store's `Tx` (the cheapest
//! durable write). See docs/PERFORMANCE.md.
//!
//! The bench reaches the database only through `ventana::store`: no SQL text,
//! no table or column names here, so a schema change breaks it at compile
//! time, not in the middle of a run.
//!
//! One file per job: `main.rs` (arguments, which scenario runs, the suite's
//! table), `measure.rs` (results, percentiles, progress, the table),
//! `target.rs` (the server under test and its database), `submit.rs`,
//! `batch.rs`, `surge.rs` (polled or streamed), `mixed.rs` (the scenarios), `ceilings.rs` (echo
//! and raw), `fill.rs` (large tables and audit logs to measure against).
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

mod batch;
mod ceilings;
mod fill;
mod measure;
mod mixed;
mod submit;
mod surge;
mod target;

use clap::{Parser, Subcommand};

use measure::print_table;
use surge::Drain;
use target::Target;

#[derive(Parser)]
#[command(name = "ventana-bench", about = "Load generator and ceilings for the Ventana gRPC API")]
struct Args {
    #[command(subcommand)]
    scenario: Scenario,
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
        /// Fill the intents and contact events with this many rows first (table-size cost).
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
    /// The durable-write ceiling: the rows a released intent writes, sent through
    /// the store's transactions of 500 intents; no reads, no decisions, no gRPC.
    Raw {
        #[command(flatten)]
        target: Target,
        #[arg(long, default_value_t = 40_000)]
        intents: usize,
        #[arg(long, default_value_t = 4)]
        concurrency: usize,
    },
    /// Preloads M intents deferred to one instant (Peru, Monday 07:00), moves the clock
    /// there, and measures the time until an adapter polling Lease holds them all, each
    /// contact's time from due to held (p50, p99) and the peak resident memory of this
    /// process (server and client) meanwhile.
    Surge {
        #[command(flatten)]
        target: Target,
        #[arg(long, default_value_t = 200_000)]
        intents: usize,
    },
    /// The surge drained by an adapter's Dispatch stream instead of Lease polling.
    Stream {
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

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Args::parse().scenario {
        Scenario::Suite { target, requests, concurrency, surge, mixed_seconds } => {
            let mut rows = vec![ceilings::echo(requests, concurrency).await?];
            rows.push(submit::run(&target, requests, concurrency, 0).await?);
            rows.push(ceilings::raw(&target, requests * 2, 4).await?);
            rows.push(batch::run(&target, requests * 2, 4).await?);
            rows.push(surge::run(&target, surge, Drain::Lease).await?);
            rows.push(surge::run(&target, surge, Drain::Stream).await?);
            rows.push(mixed::run(&target, mixed_seconds, concurrency).await?);
            let (echo, raw) = (rows[0].per_second(), rows[2].per_second());
            rows[1].note = format!("{:.0}% of echo", 100.0 * rows[1].per_second() / echo);
            rows[3].note = format!("{:.0}% of raw", 100.0 * rows[3].per_second() / raw);
            for surge in &mut rows[4..6] {
                surge.note = format!("{:.0}% of raw; {}", 100.0 * surge.per_second() / raw, surge.note);
            }
            print_table(&rows);
        }
        Scenario::Echo { requests, concurrency } => print_table(&[ceilings::echo(requests, concurrency).await?]),
        Scenario::Submit { target, requests, concurrency, prefill } => {
            print_table(&[submit::run(&target, requests, concurrency, prefill).await?])
        }
        Scenario::Batch { target, intents, concurrency } => {
            print_table(&[batch::run(&target, intents, concurrency).await?])
        }
        Scenario::Raw { target, intents, concurrency } => {
            print_table(&[ceilings::raw(&target, intents, concurrency).await?])
        }
        Scenario::Surge { target, intents } => print_table(&[surge::run(&target, intents, Drain::Lease).await?]),
        Scenario::Stream { target, intents } => print_table(&[surge::run(&target, intents, Drain::Stream).await?]),
        Scenario::Mixed { target, seconds, concurrency } => {
            print_table(&[mixed::run(&target, seconds, concurrency).await?])
        }
        Scenario::AuditFill { events, database_url } => fill::audit_chain(events, &database_url).await?,
    }
    Ok(())
}
