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

use std::convert::Infallible;
use std::sync::{Arc, OnceLock};

use http_body_util::Full;
use hyper::body::Bytes;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use tokio::sync::watch;

use crate::lifecycle::App;

pub const DECISIONS: &str = "ventana_decisions_total";
pub const DUE: &str = "ventana_intents_due";
pub const DEFERRED: &str = "ventana_intents_deferred";
pub const DISPATCH_LATENCY: &str = "ventana_dispatch_latency_seconds";
pub const RATE_LIMIT_WAITS: &str = "ventana_rate_limit_waits_total";
pub const DATABASE_ERRORS: &str = "ventana_database_errors_total";

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

/// The text a scrape returns, with the queue gauges read from the database.
pub async fn render(app: &App) -> String {
    let now = app.clock.now().timestamp_millis();
    match app.store.queue_depth(now).await {
        Ok((due, deferred)) => {
            metrics::gauge!(DUE).set(due as f64);
            metrics::gauge!(DEFERRED).set(deferred as f64);
        }
        Err(e) => {
            metrics::counter!(DATABASE_ERRORS).increment(1);
            tracing::warn!(error = %e, "cannot read the queue depth");
        }
    }
    prometheus().render()
}

/// Serves `GET /metrics` on `listener` until `shutdown` turns true.
pub async fn serve_metrics(listener: tokio::net::TcpListener, app: Arc<App>, mut shutdown: watch::Receiver<bool>) {
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
        let app = app.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |request: hyper::Request<hyper::body::Incoming>| {
                let app = app.clone();
                async move {
                    let response = if request.uri().path() == "/metrics" {
                        hyper::Response::builder()
                            .header("content-type", "text/plain; version=0.0.4")
                            .body(Full::new(Bytes::from(render(&app).await)))
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
