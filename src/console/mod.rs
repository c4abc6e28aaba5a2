//! The read-only web console for compliance officers and auditors, served
//! by `ventana serve` on `console_listen`: HTML rendered on the server
//! (maud escapes everything it prints), no script at all, behind the same
//! API keys (auditor or admin), tenant scope and per-key rate limit as gRPC.
//! It changes nothing: every route reads; the only POSTs sign in and out
//! and run an explain (a dry run).
//!
//! `session` (the signed cookie), `pages` (the layout and the simple pages),
//! `rules` (jurisdictions and their week pictures), `audit` (the chain's
//! status and the streamed export), `timeline` (one debtor's contacts).

mod audit;
mod pages;
mod rules;
pub mod session;
mod timeline;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use tokio::sync::watch;

use crate::api::auth::KeyCache;
use crate::app::{App, AppError};
use crate::store::StoreError;
use crate::tls::Tls;

/// What every console request shares.
pub struct Console {
    pub app: Arc<App>,
    pub keys: Arc<KeyCache>,
    signer: session::Signer,
    /// Cookies are `Secure` when the console speaks TLS.
    secure: bool,
}

/// The policy on every response: no script from anywhere, styles only from
/// the page itself (the week picture and the layout use inline `<style>`),
/// images only inline (`data:`), forms only back here, never framed.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'none'; style-src 'unsafe-inline'; \
     img-src data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// What a console page refuses, as a page with its status.
#[derive(Debug, thiserror::Error)]
pub enum ConsoleError {
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("api key {0}… is over its request rate limit; wait a moment and reload")]
    RateLimited(String),
    #[error("{0}")]
    Unavailable(String),
}

impl From<AppError> for ConsoleError {
    fn from(e: AppError) -> ConsoleError {
        match e {
            AppError::InvalidArgument(m) | AppError::FailedPrecondition(m) | AppError::AlreadyExists(m) => {
                ConsoleError::BadRequest(m)
            }
            AppError::NotFound(m) => ConsoleError::NotFound(m),
            AppError::DataLoss(m) => ConsoleError::Unavailable(format!("the audit chain was altered: {m}")),
            e @ (AppError::Unreadable { .. } | AppError::Internal(_)) => ConsoleError::Unavailable(e.to_string()),
            AppError::Store(e) => e.into(),
        }
    }
}

impl From<StoreError> for ConsoleError {
    fn from(e: StoreError) -> ConsoleError {
        tracing::warn!(error = %e, "console: storage failed");
        ConsoleError::Unavailable(format!("the database could not answer: {e}"))
    }
}

impl IntoResponse for ConsoleError {
    fn into_response(self) -> Response {
        let status = match &self {
            ConsoleError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ConsoleError::NotFound(_) => StatusCode::NOT_FOUND,
            ConsoleError::Forbidden(_) => StatusCode::FORBIDDEN,
            ConsoleError::RateLimited(_) => StatusCode::TOO_MANY_REQUESTS,
            ConsoleError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        };
        (status, pages::error_page(status, &self.to_string())).into_response()
    }
}

pub type ConsoleResult<T> = Result<T, ConsoleError>;

/// The console's routes.
pub fn router(console: Arc<Console>) -> Router {
    Router::new()
        .route("/", get(pages::home))
        .route("/signin", get(pages::signin_page).post(pages::signin))
        .route("/signout", post(pages::signout))
        .route("/jurisdictions", get(rules::list))
        .route("/jurisdictions/{code}", get(rules::detail))
        .route("/jurisdictions/{code}/week", get(rules::week))
        .route("/explain", get(pages::explain_form).post(pages::explain))
        .route("/timeline", get(timeline::page))
        .route("/audit", get(audit::status))
        .route("/audit/export", get(audit::export))
        .route("/queue", get(pages::queue))
        // Browsers ask for an icon; an empty answer keeps a 404 out of their consoles.
        .route("/favicon.ico", get(|| async { StatusCode::NO_CONTENT }))
        .fallback(|| async { ConsoleError::NotFound("no such page".into()) })
        .layer(tower::util::MapResponseLayer::new(security_headers))
        .with_state(console)
}

/// The headers every response carries, error pages and redirects included.
fn security_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CONTENT_SECURITY_POLICY));
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// Where and how the console listens.
pub struct Listen {
    pub addr: SocketAddr,
    /// The gRPC port's TLS, which the console then speaks too.
    pub tls: Option<Arc<Tls>>,
    /// The configured session secret (else a random one).
    pub secret: Option<String>,
}

/// Binds and serves the console until `shutdown` turns true. Returns the
/// bound address and the server's task.
pub async fn start(
    listen: Listen,
    app: Arc<App>,
    keys: Arc<KeyCache>,
    mut shutdown: watch::Receiver<bool>,
) -> std::io::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let Listen { addr, tls, secret } = listen;
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    let signer = secret.as_deref().map_or_else(session::Signer::random, session::Signer::from_secret);
    let console = Arc::new(Console { app, keys, signer, secure: tls.is_some() });
    let routes = router(console);
    let stopped = async move {
        let _ = shutdown.wait_for(|stop| *stop).await;
    };
    let task = match tls {
        Some(tls) => {
            let incoming = TlsListener { incoming: crate::tls::incoming(listener, tls), addr: bound };
            tokio::spawn(async move {
                if let Err(e) = axum::serve(incoming, routes).with_graceful_shutdown(stopped).await {
                    tracing::error!(error = %e, "console stopped");
                }
            })
        }
        None => tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, routes).with_graceful_shutdown(stopped).await {
                tracing::error!(error = %e, "console stopped");
            }
        }),
    };
    Ok((bound, task))
}

/// The connections that completed a TLS handshake (`tls::incoming`), as axum takes them.
struct TlsListener {
    incoming:
        tokio_stream::wrappers::ReceiverStream<std::io::Result<tokio_rustls::server::TlsStream<tokio::net::TcpStream>>>,
    addr: SocketAddr,
}

impl axum::serve::Listener for TlsListener {
    type Io = tokio_rustls::server::TlsStream<tokio::net::TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        use tokio_stream::StreamExt as _;
        loop {
            match self.incoming.next().await {
                Some(Ok(stream)) => {
                    let peer = stream.get_ref().0.peer_addr().unwrap_or(self.addr);
                    return (stream, peer);
                }
                Some(Err(e)) => tracing::info!(error = %e, "console: connection refused"),
                // The accept loop ended (it never does while the console runs): wait for shutdown.
                None => std::future::pending::<()>().await,
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<SocketAddr> {
        Ok(self.addr)
    }
}
