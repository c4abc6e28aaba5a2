//! `ventana serve` (and `migrate`): run the service until SIGTERM or Ctrl-C.

use std::process::ExitCode;

use super::keys::mint_key;
use super::{CliError, Settings, input, runtime};
use crate::api::auth::{self, Role};
use crate::clock::Clock;
use crate::server;
use crate::store::Store;

/// `serve`'s arguments.
#[derive(clap::Args)]
pub struct ServeArgs {
    #[command(flatten)]
    settings: Settings,
    /// Create and print an API key with every role for tenant `dev` (local trials only),
    /// named `serve-dev`; the keys earlier `serve --dev` starts minted are revoked first.
    #[arg(long)]
    dev: bool,
}

/// Runs the service until a signal says stop.
pub async fn serve(args: ServeArgs) -> Result<ExitCode, CliError> {
    let ServeArgs { settings, dev } = args;
    let mut config = settings.load()?;
    if dev && config.console_listen.is_none() {
        config.console_listen = Some(crate::config::DEV_CONSOLE_LISTEN.parse().map_err(|e| input(format!("{e}")))?);
    }
    let running = server::start(&config, Clock::System).await.map_err(|e| input(format!("{e:#}")))?;
    if let Some(console) = running.console_addr {
        let scheme = if running.tls.is_some() { "https" } else { "http" };
        eprintln!("console: {scheme}://{console}/ (sign in with an auditor or admin key)");
    }
    if dev {
        // Each start mints a key; the ones earlier starts minted are revoked
        // first, so trial keys do not pile up and stay valid forever.
        let now = Clock::System.now();
        let revoked = auth::revoke_dev_keys(&running.app.store, now.timestamp_millis())
            .await
            .map_err(|e| input(format!("cannot revoke earlier dev keys: {e}")))?;
        let spec = auth::KeySpec {
            tenant: auth::DEV_TENANT,
            roles: &Role::ALL,
            name: Some(auth::DEV_KEY_NAME),
            expires_at: None,
        };
        let key = mint_key(&running.app.store, &spec, now).await?;
        eprintln!("dev api key (tenant dev, every role): {key}");
        if !revoked.is_empty() {
            eprintln!(
                "revoked {} key(s) minted by earlier `serve --dev` starts (name {}): {}",
                revoked.len(),
                auth::DEV_KEY_NAME,
                revoked.join(", ")
            );
        }
        eprintln!("try: grpcurl -plaintext -H 'authorization: Bearer {key}' {} list", running.addr);
    }
    if let Some(tls) = running.tls.clone() {
        tokio::spawn(reload_tls_on_sighup(tls));
    }
    wait_for_signal().await;
    tracing::info!("shutting down: no new work; finishing what is in flight");
    // In-flight requests and batches finish; unacknowledged leases simply expire
    // and are re-offered by another replica. Bounded, so a stuck call cannot hold the exit.
    if tokio::time::timeout(SHUTDOWN_GRACE, running.shutdown()).await.is_err() {
        tracing::warn!(seconds = SHUTDOWN_GRACE.as_secs(), "shutdown grace period over; exiting");
    }
    Ok(ExitCode::SUCCESS)
}

/// Applies the database migrations and exits.
pub async fn migrate(settings: Settings) -> Result<ExitCode, CliError> {
    let config = settings.load()?;
    Store::connect(&config.database_url)
        .await
        .map_err(|e| runtime(format!("{}: {e}", crate::store::redact_url(&config.database_url))))?;
    eprintln!("migrations applied to {}", crate::store::redact_url(&config.database_url));
    Ok(ExitCode::SUCCESS)
}

/// How long a stopping replica waits for in-flight work.
const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(20);

/// Reloads the TLS files on every SIGHUP; a bad file keeps the certificate in force.
async fn reload_tls_on_sighup(tls: std::sync::Arc<crate::tls::Tls>) {
    let mut hangups = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
        Ok(hangups) => hangups,
        Err(e) => {
            tracing::warn!(error = %e, "cannot listen for SIGHUP; TLS files will not be reloaded");
            return;
        }
    };
    while hangups.recv().await.is_some() {
        match tls.reload() {
            Ok(()) => tracing::info!("TLS certificate reloaded"),
            Err(e) => tracing::error!(error = %e, "TLS reload failed; keeping the certificate in force"),
        }
    }
}

/// Resolves on SIGTERM or Ctrl-C.
async fn wait_for_signal() {
    #[cfg(unix)]
    {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(term) => term,
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
                return;
            }
        };
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = tokio::signal::ctrl_c().await;
}
