//! What a scenario runs against: a real Ventana server started in this
//! process on a loopback port, over a fresh database (a SQLite file, or a
//! PostgreSQL database created for the run and dropped after it), with a
//! manual clock and a Bearer key holding every role the scenarios need.

use std::sync::Arc;

use clap::Args;
use sqlx::migrate::MigrateDatabase;
use tonic::metadata::{Ascii, MetadataValue};
use tonic::transport::Channel;
use ventana::api::auth::{Role, create_key};
use ventana::api::pb;
use ventana::clock::{Clock, ManualClock};
use ventana::config::Config;
use ventana::server::Running;
use ventana::store::Store;

/// Where to run: a fresh SQLite file by default.
#[derive(Args, Clone)]
pub struct Target {
    /// `postgres://…/any_db`: each scenario runs in a fresh database created on that server (and
    /// dropped after); `sqlite://FILE`: that file. Default: a fresh SQLite file in a temporary directory.
    #[arg(long)]
    database_url: Option<String>,
}

/// A weekday 10:00 in Lima: everything submitted is released.
pub const WEEKDAY_MORNING: &str = "2026-11-25T10:00:00-05:00";

/// A server for the benchmark, with a key holding every role it needs.
pub struct Bench {
    running: Running,
    pub clock: Arc<ManualClock>,
    pub channel: Channel,
    pub auth: MetadataValue<Ascii>,
    dir: std::path::PathBuf,
    /// The PostgreSQL database created for this run, dropped at the end.
    created: Option<String>,
}

impl Bench {
    /// Starts the server at `now` (RFC 3339) on `target`'s database.
    pub async fn start(target: &Target, now: &str) -> anyhow::Result<Bench> {
        let dir = std::env::temp_dir().join(format!("ventana-bench-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir)?;
        let (database_url, created) = match &target.database_url {
            Some(url) if url.starts_with("postgres") => {
                let name = format!("ventana_bench_{}", uuid::Uuid::new_v4().simple());
                let base = url.rsplit_once('/').map_or(url.as_str(), |(base, _)| base);
                let fresh = format!("{base}/{name}");
                sqlx::Postgres::create_database(&fresh).await?;
                (fresh.clone(), Some(fresh))
            }
            Some(url) => (url.clone(), None),
            None => (format!("sqlite://{}/bench.db", dir.display()), None),
        };
        let config = Config {
            listen: "127.0.0.1:0".parse()?,
            metrics_listen: "127.0.0.1:0".parse()?,
            database_url,
            jurisdictions: concat!(env!("CARGO_MANIFEST_DIR"), "/jurisdictions").into(),
            max_message_bytes: 16 << 20,
            adapters: Vec::new(),
            audit: Default::default(),
            rate_limits: Default::default(),
            claim_seconds: ventana::config::DEFAULT_CLAIM_SECONDS,
            tls: None,
            plaintext: false,
            console_listen: None,
            console_secret: None,
        };
        let clock = ManualClock::new(chrono::DateTime::parse_from_rfc3339(now)?.to_utc());
        let running = ventana::server::start(&config, Clock::Manual(clock.clone())).await?;
        let key = create_key(&running.app.store, "bench", &[Role::Submitter, Role::Adapter], 0).await?;
        let auth = format!("Bearer {key}").parse()?;
        let channel = Channel::from_shared(format!("http://{}", running.addr))?.connect().await?;
        Ok(Bench { running, clock, channel, auth, dir, created })
    }

    /// The server's own store: the only way the bench reaches the database.
    pub fn store(&self) -> &Store {
        &self.running.app.store
    }

    pub fn request<T>(&self, message: T) -> tonic::Request<T> {
        with_auth(message, &self.auth)
    }

    /// Shuts the server down, then removes its database.
    pub async fn stop(self) {
        if self.created.is_some() {
            self.running.app.store.close().await;
        }
        self.running.shutdown().await;
        let _ = std::fs::remove_dir_all(&self.dir);
        if let Some(url) = self.created {
            let _ = sqlx::Postgres::force_drop_database(&url).await;
        }
    }
}

pub fn with_auth<T>(message: T, auth: &MetadataValue<Ascii>) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request.metadata_mut().insert("authorization", auth.clone());
    request
}

/// The n-th benchmark intent: Peru, SMS, its own debtor.
pub fn intent(run: &str, n: usize) -> pb::Intent {
    pb::Intent {
        intent_id: format!("{run}-{n}"),
        debtor_id: format!("debtor-{run}-{n}"),
        debt_id: format!("debt-{n}"),
        channel: pb::Channel::Sms as i32,
        party: pb::Party::Debtor as i32,
        stage: pb::Stage::Extrajudicial as i32,
        jurisdiction: "PE".into(),
        ..Default::default()
    }
}
