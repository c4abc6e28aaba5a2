//! Metrics: the series Ventana records and the Prometheus `/metrics`
//! endpoint on its own port.
//!
//! | series | type | labels |
//! | --- | --- | --- |
//! | `ventana_decisions_total` | counter | `decision` (release, defer, reject), `jurisdiction` |
//! | `ventana_intents_due` | gauge | — deferred intents whose instant has come |
//! | `ventana_intents_deferred` | gauge | — every deferred intent |
//! | `ventana_dispatch_latency_seconds` | histogram | — from release to lease |
//! | `ventana_rate_limit_waits_total` | counter | `limit` (channel or tenant) |
//! | `ventana_database_errors_total` | counter | — |
//! | `ventana_intents_held_total` | counter | — intents held because their stored data could not be read |
//! | `ventana_unreadable_rows_total` | counter | `table` — stored rows that could not be decoded (nothing was decided on them) |
//! | `ventana_intents_held` | gauge | — intents held now, waiting for an operator |
//! | `ventana_due_backlog_seconds` | gauge | — how overdue the oldest due intent is, after each scheduler round |
//! | `ventana_rules_confirmed_days` | gauge | `jurisdiction` — days until the file's holidays stop being confirmed (negative: passed) |

use std::convert::Infallible;
use std::sync::{Arc, OnceLock};

use http_body_util::Full;
use hyper::body::Bytes;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use tokio::sync::watch;

use crate::clock::Clock;
use crate::rules::RuleBook;
use crate::store::Store;

pub const DECISIONS: &str = "ventana_decisions_total";
pub const DUE: &str = "ventana_intents_due";
pub const DEFERRED: &str = "ventana_intents_deferred";
pub const DISPATCH_LATENCY: &str = "ventana_dispatch_latency_seconds";
pub const RATE_LIMIT_WAITS: &str = "ventana_rate_limit_waits_total";
pub const DATABASE_ERRORS: &str = "ventana_database_errors_total";
/// Intents held because their stored data could not be read or decided on.
pub const HELD_INTENTS: &str = "ventana_intents_held_total";
/// Intents held now (read from the database at each scrape).
pub const HELD: &str = "ventana_intents_held";
/// Stored rows that could not be decoded, by table.
pub const UNREADABLE_ROWS: &str = "ventana_unreadable_rows_total";
pub const DUE_BACKLOG: &str = "ventana_due_backlog_seconds";
/// Days from today to each jurisdiction file's holiday horizon (read at each scrape).
pub const RULES_CONFIRMED_DAYS: &str = "ventana_rules_confirmed_days";

/// The rule book in force at the moment of a scrape (it changes on reload).
pub type RulesInForce = Arc<dyn Fn() -> Arc<RuleBook> + Send + Sync>;

/// The process-wide Prometheus recorder (installed on first use).
pub fn prometheus() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        let builder = PrometheusBuilder::new()
            .set_buckets(&[0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 60.0, 300.0])
            .unwrap_or_else(|_| PrometheusBuilder::new());
        match builder.install_recorder() {
            Ok(handle) => handle,
            // Another recorder is installed (embedding): render our own, unregistered one.
            Err(_) => PrometheusBuilder::new().build_recorder().handle(),
        }
    })
}

/// Records one decision.
pub fn decided(decision: &'static str, jurisdiction: &str) {
    metrics::counter!(DECISIONS, "decision" => decision, "jurisdiction" => jurisdiction.to_string()).increment(1);
}

/// The text a scrape returns, with the queue gauges read from the database
/// and the rules' horizons counted from today.
pub async fn render(store: &Store, clock: &Clock, rules: &RuleBook) -> String {
    let today = clock.now().date_naive();
    for jurisdiction in rules.jurisdictions() {
        if let Some(horizon) = crate::rules::coverage::horizon(jurisdiction) {
            metrics::gauge!(RULES_CONFIRMED_DAYS, "jurisdiction" => jurisdiction.code.to_string())
                .set(horizon.days_ahead(today) as f64);
        }
    }
    let now = clock.now().timestamp_millis();
    match store.queue_depth(now).await {
        Ok((due, deferred, held)) => {
            metrics::gauge!(DUE).set(due as f64);
            metrics::gauge!(DEFERRED).set(deferred as f64);
            metrics::gauge!(HELD).set(held as f64);
        }
        Err(e) => {
            metrics::counter!(DATABASE_ERRORS).increment(1);
            tracing::warn!(error = %e, "cannot read the queue depth");
        }
    }
    prometheus().render()
}

/// Serves `GET /metrics` on `listener` until `shutdown` turns true.
pub async fn serve_metrics(
    listener: tokio::net::TcpListener,
    store: Store,
    clock: Clock,
    rules: RulesInForce,
    mut shutdown: watch::Receiver<bool>,
) {
    let source = Arc::new((store, clock, rules));
    prometheus();
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    tracing::warn!(error = %e, "metrics listener failed to accept");
                    continue;
                }
            },
            _ = shutdown.changed() => return,
        };
        let source = source.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |request: hyper::Request<hyper::body::Incoming>| {
                let source = source.clone();
                async move {
                    let response = if request.uri().path() == "/metrics" {
                        hyper::Response::builder()
                            .header("content-type", "text/plain; version=0.0.4")
                            .body(Full::new(Bytes::from(render(&source.0, &source.1, &(source.2)()).await)))
                    } else {
                        hyper::Response::builder().status(404).body(Full::new(Bytes::from("try /metrics\n")))
                    };
                    Ok::<_, Infallible>(response.unwrap_or_else(|_| hyper::Response::new(Full::new(Bytes::new()))))
                }
            });
            let io = hyper_util::rt::TokioIo::new(stream);
            if let Err(e) = hyper::server::conn::http1::Builder::new().serve_connection(io, service).await {
                tracing::debug!(error = %e, "metrics connection ended");
            }
        });
    }
}

/// Installs logging to stderr (`RUST_LOG`, `VENTANA_LOG_FORMAT=json`) and, when
/// `OTEL_EXPORTER_OTLP_ENDPOINT` (or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) is set and
/// `OTEL_SDK_DISABLED` is not `true`, exports spans over OTLP/gRPC following the
/// OpenTelemetry environment variables (`OTEL_SERVICE_NAME`, `OTEL_RESOURCE_ATTRIBUTES`,
/// `OTEL_BSP_*`, …). Returns the tracer provider to shut down (flush) at exit.
/// Must run inside the tokio runtime.
pub fn init_tracing() -> Option<opentelemetry_sdk::trace::SdkTracerProvider> {
    use opentelemetry::trace::TracerProvider as _;
    use tracing_subscriber::Layer;
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;

    // sqlx reports PostgreSQL notices (e.g. "relation … already exists, skipping"
    // while migrating) at info: not news for an operator.
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info,sqlx=warn".into());
    // Colours only on a terminal: a log file or collector gets plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let fmt = tracing_subscriber::fmt::layer().with_writer(std::io::stderr).with_ansi(ansi);
    let fmt =
        if std::env::var("VENTANA_LOG_FORMAT").is_ok_and(|f| f == "json") { fmt.json().boxed() } else { fmt.boxed() };
    let provider = otlp_provider();
    let otel = provider.as_ref().map(|p| tracing_opentelemetry::layer().with_tracer(p.tracer("ventana")));
    tracing_subscriber::registry().with(filter).with(fmt).with(otel).init();
    provider
}

fn otlp_provider() -> Option<opentelemetry_sdk::trace::SdkTracerProvider> {
    let configured =
        ["OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"].iter().any(|v| std::env::var(v).is_ok());
    let disabled = std::env::var("OTEL_SDK_DISABLED").is_ok_and(|v| v.eq_ignore_ascii_case("true"));
    if !configured || disabled {
        return None;
    }
    let exporter = match opentelemetry_otlp::SpanExporter::builder().with_tonic().build() {
        Ok(exporter) => exporter,
        Err(e) => {
            eprintln!("OTLP trace export disabled: {e}");
            return None;
        }
    };
    let mut resource = opentelemetry_sdk::Resource::builder();
    if std::env::var("OTEL_SERVICE_NAME").is_err() {
        resource = resource.with_service_name("ventana");
    }
    Some(
        opentelemetry_sdk::trace::SdkTracerProvider::builder()
            .with_batch_exporter(exporter)
            .with_resource(resource.build())
            .build(),
    )
}
