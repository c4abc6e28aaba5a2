//! Startup: storage, rules, the gRPC server (with health and reflection),
//! the scheduler and the built-in adapters; and graceful shutdown.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tonic::transport::server::TcpIncoming;

use crate::api::services::Api;
use crate::app::App;
use crate::clock::Clock;
use crate::config::Config;
use crate::rules::RuleBook;
use crate::store::Store;
use crate::tls::Tls;

/// A running Ventana server.
pub struct Running {
    pub addr: SocketAddr,
    pub metrics_addr: SocketAddr,
    /// The web console's address, when it is on.
    pub console_addr: Option<SocketAddr>,
    pub app: Arc<App>,
    /// The TLS configuration, when the port speaks TLS.
    pub tls: Option<Arc<Tls>>,
    shutdown: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
    /// Stops the replicas' notifier, once `tasks` have ended.
    stop_notifier: watch::Sender<bool>,
    notifier: JoinHandle<()>,
}

impl Running {
    /// Stops taking requests, lets in-flight work finish and waits for it.
    pub async fn shutdown(self) {
        // Open Dispatch streams end first (UNAVAILABLE), or graceful shutdown would wait for them.
        self.app.waiters.close_all();
        let _ = self.shutdown.send(true);
        for task in self.tasks {
            let _ = task.await;
        }
        // No request is served any more: the notifier sends what is pending, then
        // ends; a commit still finishing (a queued group, a stream's lease) notifies alone.
        let _ = self.stop_notifier.send(true);
        let _ = self.notifier.await;
    }
}

/// Loads the rules (every problem is reported, nothing starts on bad rules).
pub fn load_rules(config: &Config) -> anyhow::Result<RuleBook> {
    RuleBook::load_dir(&config.jurisdictions).map_err(|problems| {
        let text: Vec<String> = problems.iter().map(ToString::to_string).collect();
        anyhow::anyhow!("the jurisdiction files have problems:\n{}", text.join("\n"))
    })
}

/// Starts everything and returns once the port is bound.
pub async fn start(config: &Config, clock: Clock) -> anyhow::Result<Running> {
    let store = Store::connect(&config.database_url)
        .await
        .with_context(|| format!("opening {}", crate::store::redact_url(&config.database_url)))?;
    let rules = load_rules(config)?;
    let app = Arc::new(App::new(store, rules, clock, &config.rate_limits, config.claim_seconds));
    app.save_rules_snapshots(&app.rules()).await.context("storing the rules snapshot")?;
    app.warn_of_short_horizons(&app.rules());
    let listener =
        tokio::net::TcpListener::bind(config.listen).await.with_context(|| format!("binding {}", config.listen))?;
    let addr = listener.local_addr()?;
    let metrics_listener = tokio::net::TcpListener::bind(config.metrics_listen)
        .await
        .with_context(|| format!("binding the metrics endpoint {}", config.metrics_listen))?;
    let metrics_addr = metrics_listener.local_addr()?;
    let (shutdown, signal) = watch::channel(false);

    let submits = crate::app::group_commit::GroupQueue::start(app.clone());
    let acks = crate::app::group_commit::GroupQueue::start(app.clone());
    let keys = Arc::new(crate::api::auth::KeyCache::new(crate::api::auth::KEY_CACHE_TTL));
    let api = Api { app: app.clone(), rules_dir: config.jurisdictions.clone(), submits, acks, keys: keys.clone() };
    let (health_reporter, health) = tonic_health::server::health_reporter();
    let routes = crate::api::routes(api, config.max_message_bytes, &health_reporter, health).await?;

    let tls = match &config.tls {
        Some(files) => Some(Arc::new(Tls::load(files.clone()).map_err(|e| anyhow::anyhow!("TLS: {e}"))?)),
        None if config.plaintext || config.listen.ip().is_loopback() => None,
        None => anyhow::bail!(
            "refusing plaintext gRPC on {}: configure [tls] cert and key, or set plaintext = true",
            config.listen
        ),
    };
    let mut server_signal = signal.clone();
    let stopped = async move {
        let _ = server_signal.wait_for(|stop| *stop).await;
    };
    let router = tonic::transport::Server::builder()
        .trace_fn(|request| tracing::info_span!("grpc", method = %request.uri().path()))
        .layer(tower::util::MapResponseLayer::new(oversized_is_resource_exhausted))
        .add_routes(routes);
    let server = match &tls {
        Some(tls) => {
            tokio::spawn(router.serve_with_incoming_shutdown(crate::tls::incoming(listener, tls.clone()), stopped))
        }
        // TCP_NODELAY: without it a response's trailing frames wait for the client's
        // delayed ACK (40 ms per call on Linux).
        None => tokio::spawn(
            router.serve_with_incoming_shutdown(TcpIncoming::from(listener).with_nodelay(Some(true)), stopped),
        ),
    };
    let mut tasks = vec![tokio::spawn(async move {
        match server.await {
            Ok(Err(e)) => tracing::error!(error = %e, "grpc server stopped"),
            Err(e) => tracing::error!(error = %e, "grpc server task failed"),
            Ok(Ok(())) => {}
        }
    })];
    tasks.push(tokio::spawn(crate::scheduler::run(app.clone(), health_reporter.clone(), signal.clone())));
    tasks.push(tokio::spawn(crate::telemetry::serve_metrics(
        metrics_listener,
        app.store.clone(),
        app.clock.clone(),
        {
            let app = app.clone();
            Arc::new(move || app.rules())
        },
        signal.clone(),
    )));
    tasks.push(tokio::spawn(crate::scheduler::listen_for_wakeups(app.clone(), signal.clone())));
    let (stop_notifier, notifier_stops) = watch::channel(false);
    let notifier = tokio::spawn(crate::scheduler::notify_replicas(app.clone(), notifier_stops));
    let console_addr = match config.console_listen {
        Some(addr) => {
            let listen = crate::console::Listen { addr, tls: tls.clone(), secret: config.console_secret.clone() };
            let (bound, task) = crate::console::start(listen, app.clone(), keys, signal.clone())
                .await
                .with_context(|| format!("binding the console {addr}"))?;
            tasks.push(task);
            Some(bound)
        }
        None => None,
    };
    for adapter in &config.adapters {
        tasks.push(tokio::spawn(crate::adapters::run(app.clone(), adapter.clone(), signal.clone())));
    }
    tracing::info!(%addr, %metrics_addr, backend = app.store.backend(), adapters = config.adapters.len(), tls = tls.is_some(), console = ?console_addr, "ventana serving");
    Ok(Running { addr, metrics_addr, console_addr, app, tls, shutdown, tasks, stop_notifier, notifier })
}

/// gRPC's status table answers a request over the size limit with
/// RESOURCE_EXHAUSTED; tonic's decoder says OUT_OF_RANGE. The status travels
/// in the headers of a trailers-only response, so it is rewritten there.
fn oversized_is_resource_exhausted<B>(mut response: http::Response<B>) -> http::Response<B> {
    let headers = response.headers_mut();
    let oversized = headers.get("grpc-status").is_some_and(|s| s == "11")
        && headers
            .get("grpc-message")
            .and_then(|m| m.to_str().ok())
            .is_some_and(|m| m.contains("too%20large") || m.contains("too large"));
    if oversized {
        headers.insert("grpc-status", http::HeaderValue::from_static("8"));
    }
    response
}
