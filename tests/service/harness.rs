//! Starts a real Ventana server on a loopback port over a real database
//! (a SQLite file, or a fresh PostgreSQL database) with a manual clock, and
//! gives tests authenticated gRPC clients.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;
use tonic::{Request, Status};
use ventana::api::auth::{Role, create_key};
use ventana::api::pb;
use ventana::clock::{Clock, ManualClock};
use ventana::config::{AdapterConfig, Config};
use ventana::server::{self, Running};
use ventana::store::Store;

/// Which database a test runs on.
#[derive(Clone, Copy, Debug)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// The PostgreSQL server tests create their databases on.
fn postgres_admin_url() -> String {
    std::env::var("VENTANA_TEST_POSTGRES_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

/// A fresh, empty database URL for `backend`. PostgreSQL must be reachable:
/// a missing server fails the test, it never skips it.
pub async fn fresh_database(backend: Backend, dir: &std::path::Path) -> String {
    match backend {
        Backend::Sqlite => format!("sqlite://{}", dir.join("ventana.db").display()),
        Backend::Postgres => {
            use sqlx::Connection;
            let admin = postgres_admin_url();
            let mut conn = sqlx::PgConnection::connect(&admin)
                .await
                .unwrap_or_else(|e| panic!("PostgreSQL is required for these tests ({admin}): {e}"));
            let name = format!("ventana_test_{}", uuid::Uuid::new_v4().simple());
            sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
                .execute(&mut conn)
                .await
                .expect("create database");
            let base = admin.rsplit_once('/').map_or(admin.as_str(), |(base, _)| base).to_string();
            format!("{base}/{name}")
        }
    }
}

/// Adds `authorization: Bearer <key>` to every call.
#[derive(Clone)]
pub struct Auth(pub MetadataValue<Ascii>);

impl tonic::service::Interceptor for Auth {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        request.metadata_mut().insert("authorization", self.0.clone());
        Ok(request)
    }
}

pub type Scheduler =
    pb::contact_scheduler_service_client::ContactSchedulerServiceClient<InterceptedService<Channel, Auth>>;
pub type Dispatcher = pb::dispatch_service_client::DispatchServiceClient<InterceptedService<Channel, Auth>>;
pub type RulesClient = pb::rules_service_client::RulesServiceClient<InterceptedService<Channel, Auth>>;

/// A running server and what a test needs to drive it.
pub struct TestServer {
    pub running: Option<Running>,
    pub clock: Arc<ManualClock>,
    pub config: Config,
    pub channel: Channel,
    _dir: Arc<tempfile::TempDir>,
}

pub fn jurisdictions_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("jurisdictions")
}

impl TestServer {
    /// Starts a server on `backend` at instant `now`.
    pub async fn start(backend: Backend, now: &str) -> TestServer {
        TestServer::start_with(backend, now, Vec::new(), jurisdictions_dir()).await
    }

    pub async fn start_with(backend: Backend, now: &str, adapters: Vec<AdapterConfig>, rules: PathBuf) -> TestServer {
        TestServer::start_configured(backend, now, |config| {
            config.adapters = adapters;
            config.jurisdictions = rules;
        })
        .await
    }

    /// Starts a server whose configuration `adjust` may change.
    pub async fn start_configured(backend: Backend, now: &str, adjust: impl FnOnce(&mut Config)) -> TestServer {
        let dir = Arc::new(tempfile::tempdir().expect("temp dir"));
        let mut config = Config {
            listen: "127.0.0.1:0".parse().expect("addr"),
            metrics_listen: "127.0.0.1:0".parse().expect("addr"),
            database_url: fresh_database(backend, dir.path()).await,
            jurisdictions: jurisdictions_dir(),
            max_message_bytes: 1024 * 1024,
            adapters: Vec::new(),
            audit: Default::default(),
            rate_limits: Default::default(),
            claim_seconds: ventana::config::DEFAULT_CLAIM_SECONDS,
            tls: None,
            plaintext: false,
        };
        adjust(&mut config);
        let clock = ManualClock::new(at(now));
        let running = server::start(&config, Clock::Manual(clock.clone())).await.expect("server starts");
        let channel = connect(running.addr).await;
        TestServer { running: Some(running), clock, config, channel, _dir: dir }
    }

    /// A second replica: another server on the same database and clock.
    pub async fn replica(&self) -> TestServer {
        let running = server::start(&self.config, Clock::Manual(self.clock.clone())).await.expect("replica starts");
        let channel = connect(running.addr).await;
        TestServer {
            running: Some(running),
            clock: self.clock.clone(),
            config: self.config.clone(),
            channel,
            _dir: self._dir.clone(),
        }
    }

    /// Stops the server and starts a new one on the same database and clock.
    pub async fn restart(&mut self) {
        if let Some(running) = self.running.take() {
            running.shutdown().await;
        }
        let running = server::start(&self.config, Clock::Manual(self.clock.clone())).await.expect("server restarts");
        self.channel = connect(running.addr).await;
        self.running = Some(running);
    }

    pub fn store(&self) -> &Store {
        &self.running.as_ref().expect("running").app.store
    }

    /// A new API key for `tenant` with `roles`.
    pub async fn key(&self, tenant: &str, roles: &[Role]) -> Auth {
        let key = create_key(self.store(), tenant, roles, 0).await.expect("key stored");
        Auth(format!("Bearer {key}").parse().expect("ascii"))
    }

    pub async fn scheduler(&self, tenant: &str) -> Scheduler {
        let auth = self.key(tenant, &[Role::Submitter]).await;
        pb::contact_scheduler_service_client::ContactSchedulerServiceClient::with_interceptor(
            self.channel.clone(),
            auth,
        )
    }

    pub async fn dispatcher(&self, tenant: &str) -> Dispatcher {
        let auth = self.key(tenant, &[Role::Adapter]).await;
        pb::dispatch_service_client::DispatchServiceClient::with_interceptor(self.channel.clone(), auth)
    }

    pub async fn rules(&self, tenant: &str, role: Role) -> RulesClient {
        let auth = self.key(tenant, &[role]).await;
        pb::rules_service_client::RulesServiceClient::with_interceptor(self.channel.clone(), auth)
    }

    /// Moves the clock to `now`.
    pub fn set_clock(&self, now: &str) {
        self.clock.set(at(now));
    }

    /// Waits (bounded) until the intent reaches `status`; returns its view.
    pub async fn wait_for_status(
        &self,
        client: &mut Scheduler,
        intent_id: &str,
        status: pb::IntentStatus,
    ) -> pb::IntentView {
        let mut last = None;
        for _ in 0..500 {
            let view = client
                .get(pb::GetRequest { intent_id: intent_id.into() })
                .await
                .expect("get")
                .into_inner()
                .intent
                .expect("the intent");
            if view.status == status as i32 {
                return view;
            }
            last = Some(view);
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("intent {intent_id} never reached {status:?}; last seen {last:#?}");
    }

    pub async fn stop(mut self) {
        if let Some(running) = self.running.take() {
            running.shutdown().await;
        }
    }
}

async fn connect(addr: std::net::SocketAddr) -> Channel {
    tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .expect("endpoint")
        .connect()
        .await
        .expect("connects")
}

/// An RFC 3339 instant.
pub fn at(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text).expect("instant").with_timezone(&Utc)
}

/// A timestamp for `text`.
pub fn ts(text: &str) -> prost_types::Timestamp {
    let t = at(text);
    prost_types::Timestamp { seconds: t.timestamp(), nanos: 0 }
}

/// A debtor intent.
pub fn intent(intent_id: &str, debtor_id: &str, channel: pb::Channel, jurisdiction: &str) -> pb::Intent {
    pb::Intent {
        intent_id: intent_id.into(),
        debtor_id: debtor_id.into(),
        debt_id: "debt-1".into(),
        channel: channel as i32,
        party: pb::Party::Debtor as i32,
        stage: pb::Stage::Extrajudicial as i32,
        jurisdiction: jurisdiction.into(),
        ..Default::default()
    }
}

/// Declares an async test that runs once on SQLite and once on PostgreSQL.
#[macro_export]
macro_rules! on_both_backends {
    ($name:ident) => {
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$name($crate::harness::Backend::Sqlite).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                super::$name($crate::harness::Backend::Postgres).await
            }
        }
    };
}

/// Submits one intent and returns the answer (the call must succeed).
pub async fn submit(client: &mut Scheduler, intent: pb::Intent) -> pb::SubmitResponse {
    client.submit(pb::SubmitRequest { intent: Some(intent) }).await.expect("submit").into_inner()
}

/// Leases up to `max_items` on `channels` with the default lease (the call must succeed).
pub async fn lease(adapter: &mut Dispatcher, channels: Vec<i32>, max_items: i32) -> pb::LeaseResponse {
    adapter.lease(pb::LeaseRequest { channels, max_items, lease_duration: None }).await.expect("lease").into_inner()
}

/// An audit event's kind as the word the log and the CSV export use (`rules_reloaded`).
pub fn event_kind(event: &pb::AuditEvent) -> String {
    pb::AuditEventKind::try_from(event.event)
        .map(|k| k.as_str_name().trim_start_matches("AUDIT_EVENT_KIND_").to_lowercase())
        .unwrap_or_default()
}

/// The intent's current view (the call must succeed).
pub async fn get(client: &mut Scheduler, intent_id: &str) -> pb::IntentView {
    let answer = client.get(pb::GetRequest { intent_id: intent_id.into() }).await.expect("get").into_inner();
    answer.intent.expect("the intent")
}

/// Every event of `tenant`'s chain, read through AuditService/Export with an auditor key.
pub async fn audit_events(server: &TestServer, tenant: &str) -> Vec<pb::AuditEvent> {
    let auth = server.key(tenant, &[Role::Auditor]).await;
    let mut audit = pb::audit_service_client::AuditServiceClient::with_interceptor(server.channel.clone(), auth);
    let mut stream = audit.export(pb::ExportRequest::default()).await.expect("export").into_inner();
    let mut events = Vec::new();
    while let Some(answer) = stream.message().await.expect("event") {
        events.extend(answer.event);
    }
    events
}
