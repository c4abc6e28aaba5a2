//! Built-in channel adapters: `log` writes each released contact as a JSON
//! line and acknowledges it as sent; `webhook` POSTs it, signed, and
//! acknowledges by HTTP status. Both lease like any gRPC adapter would,
//! across all tenants.

use std::sync::Arc;
use std::time::Duration;

use hmac::{Hmac, Mac};
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use serde_json::{Value, json};
use sha2::Sha256;
use tokio::io::AsyncWriteExt;
use tokio::sync::watch;

use crate::app::{App, Submission, instant};
use crate::config::{AdapterConfig, AdapterKind};
use crate::domain::AckOutcome;
use crate::store::DispatchRow;

/// Items leased per round and how long a lease lasts.
const BATCH: i64 = 100;
const LEASE_SECONDS: i64 = 60;

/// The JSON an adapter hands on for one contact; an unreadable stored
/// instant is an error (the contact is not handed on).
pub fn contact_json(dispatch: &DispatchRow, submission: &Submission) -> Result<Value, String> {
    Ok(json!({
        "dispatch_id": dispatch.dispatch_id,
        "tenant": dispatch.tenant,
        "intent": crate::intent_json::intent_to_json(&submission.intent),
        "payload": submission.payload,
        "attempt": dispatch.attempt,
        "not_after": instant(dispatch.not_after)?.to_rfc3339(),
    }))
}

/// The signature header value for `body`.
pub fn sign(secret: &str, body: &[u8]) -> String {
    // HMAC accepts keys of any length, so this never takes the `else`.
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret.as_bytes()) else {
        return String::new();
    };
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// Runs one adapter until `shutdown` turns true.
pub async fn run(app: Arc<App>, config: AdapterConfig, mut shutdown: watch::Receiver<bool>) {
    let client =
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new()).build_http::<Full<Bytes>>();
    let mut log_file: Option<tokio::fs::File> = None;
    while !*shutdown.borrow() {
        let leased = match app.lease(None, &[config.channel], BATCH, chrono::Duration::seconds(LEASE_SECONDS)).await {
            Ok(items) => items,
            Err(e) => {
                tracing::warn!(channel = %config.channel, error = %e, "adapter lease failed");
                Vec::new()
            }
        };
        let idle = leased.is_empty();
        for (dispatch, submission) in leased {
            // Checked before each hand-off: a slow channel (a webhook's retries)
            // can outlast the contact's window or lease; what is not handed on
            // comes back when its lease expires and is checked again.
            let may_leave = || dispatch.may_leave_at(app.clock.now().timestamp_millis());
            if !may_leave() {
                continue;
            }
            let line = match contact_json(&dispatch, &submission) {
                Ok(line) => line,
                Err(why) => {
                    // Not handed on: the lease expires and the next lease checks it again.
                    tracing::error!(dispatch_id = %dispatch.dispatch_id, why = %why, "stored dispatch cannot be read");
                    continue;
                }
            };
            let outcome = match &config.kind {
                AdapterKind::Log { path } => write_line(path, &mut log_file, &line).await,
                AdapterKind::Webhook { url, secret, timeout_ms, max_attempts } => {
                    post(&client, url, secret, *timeout_ms, *max_attempts, &line, may_leave).await
                }
            };
            // None: not delivered; the lease expires and the contact is re-offered after a fresh check.
            if let Some(outcome) = outcome
                && let Err(e) = app.ack(None, &dispatch.dispatch_id, outcome, app.clock.now()).await
            {
                tracing::warn!(dispatch_id = %dispatch.dispatch_id, error = %e, "adapter ack failed");
            }
        }
        if idle {
            tokio::select! {
                _ = app.released.notified() => {}
                _ = tokio::time::sleep(Duration::from_secs(5)) => {}
                _ = shutdown.changed() => {}
            }
        }
    }
}

async fn write_line(path: &str, file: &mut Option<tokio::fs::File>, line: &Value) -> Option<AckOutcome> {
    let mut text = line.to_string();
    text.push('\n');
    let written = if path == "-" {
        tokio::io::stdout().write_all(text.as_bytes()).await
    } else {
        if file.is_none() {
            match tokio::fs::OpenOptions::new().create(true).append(true).open(path).await {
                Ok(f) => *file = Some(f),
                Err(e) => {
                    tracing::error!(path, error = %e, "log adapter cannot open its file");
                    return None;
                }
            }
        }
        match file.as_mut() {
            Some(f) => match f.write_all(text.as_bytes()).await {
                Ok(()) => f.flush().await,
                Err(e) => Err(e),
            },
            None => return None,
        }
    };
    match written {
        Ok(()) => Some(AckOutcome::Sent),
        Err(e) => {
            tracing::error!(path, error = %e, "log adapter cannot write");
            None
        }
    }
}

type HttpClient = hyper_util::client::legacy::Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>;

/// POSTs with retries and backoff, each attempt only while `may_leave`.
/// 2xx → sent; other 4xx (except 408, 429) → failed; anything else after
/// the last attempt, or once the contact may no longer leave → not acknowledged.
async fn post(
    client: &HttpClient,
    url: &str,
    secret: &str,
    timeout_ms: u64,
    max_attempts: u32,
    line: &Value,
    may_leave: impl Fn() -> bool,
) -> Option<AckOutcome> {
    let body = Bytes::from(line.to_string());
    let signature = sign(secret, &body);
    let dispatch_id = line["dispatch_id"].as_str().unwrap_or_default().to_string();
    let mut backoff = Duration::from_millis(200);
    for attempt in 1..=max_attempts {
        if !may_leave() {
            tracing::warn!(url, attempt, dispatch_id, "contact's window or lease ended; not sent");
            return None;
        }
        let request = hyper::Request::post(url)
            .header("content-type", "application/json")
            .header("x-ventana-signature", &signature)
            .header("x-ventana-dispatch-id", &dispatch_id)
            .body(Full::new(body.clone()));
        let request = match request {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(url, error = %e, "webhook request cannot be built");
                return None;
            }
        };
        match tokio::time::timeout(Duration::from_millis(timeout_ms), client.request(request)).await {
            Ok(Ok(response)) => {
                let status = response.status();
                // Drain the body so the connection can be reused.
                let _ = response.into_body().collect().await;
                if status.is_success() {
                    return Some(AckOutcome::Sent);
                }
                if status.is_client_error() && status.as_u16() != 408 && status.as_u16() != 429 {
                    tracing::warn!(url, %status, dispatch_id, "webhook refused the contact");
                    return Some(AckOutcome::Failed);
                }
                tracing::warn!(url, %status, attempt, dispatch_id, "webhook failed; retrying");
            }
            Ok(Err(e)) => tracing::warn!(url, error = %e, attempt, dispatch_id, "webhook unreachable; retrying"),
            Err(_) => tracing::warn!(url, attempt, dispatch_id, "webhook timed out; retrying"),
        }
        if attempt < max_attempts {
            tokio::time::sleep(backoff).await;
            backoff *= 2;
        }
    }
    None
}
