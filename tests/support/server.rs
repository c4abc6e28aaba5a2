//! A real Ventana server in process: on a loopback port, over a fresh
//! database (`TestDatabase`) with a manual clock and a `TestConfig`, with
//! authenticated gRPC clients and what the service tests share.

use std::sync::Arc;
use std::time::Duration;

use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;
use tonic::{Request, Status};
use ventana::api::auth::{Role, create_key};
use ventana::api::pb;
use ventana::clock::{Clock, ManualClock};
use ventana::config::Config;
use ventana::server::{self, Running};
use ventana::store::Store;

pub use super::config::TestConfig;
pub use super::database::{Backend, TestDatabase};
pub use super::rules::shipped as jurisdictions_dir;
pub use super::{at, ts};

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
    /// Dropped (and with it a PostgreSQL database) with the last replica.
    database: Arc<TestDatabase>,
}

impl TestServer {
    /// Starts a server on `backend` at instant `now`.
    pub async fn start(backend: Backend, now: &str) -> TestServer {
        TestServer::start_with(backend, now, |config| config).await
    }

    /// Starts a server whose test configuration `adjust` may change.
    pub async fn start_with(backend: Backend, now: &str, adjust: impl FnOnce(TestConfig) -> TestConfig) -> TestServer {
        let database = Arc::new(TestDatabase::new(backend).await);
        let config = adjust(TestConfig::new(database.url())).build();
        let clock = ManualClock::new(at(now));
        let running = server::start(&config, Clock::Manual(clock.clone())).await.expect("server starts");
        let channel = connect(running.addr).await;
        TestServer { running: Some(running), clock, config, channel, database }
    }

    /// A second replica: another server on the same database and clock.
    pub async fn replica(&self) -> TestServer {
        self.replica_with(self.clock.clone()).await
    }

    /// A second replica on the same database, with a clock of its own set to `now`.
    pub async fn replica_at(&self, now: &str) -> TestServer {
        self.replica_with(ManualClock::new(at(now))).await
    }

    /// A second replica at instant `now` that reaches the same database
    /// through `database_url` (the same database with other connection
    /// options, say).
    pub async fn replica_through(&self, database_url: &str, now: &str) -> TestServer {
        let config = Config { database_url: database_url.to_string(), ..self.config.clone() };
        self.replica_configured(config, ManualClock::new(at(now))).await
    }

    async fn replica_with(&self, clock: Arc<ManualClock>) -> TestServer {
        self.replica_configured(self.config.clone(), clock).await
    }

    async fn replica_configured(&self, config: Config, clock: Arc<ManualClock>) -> TestServer {
        let running = server::start(&config, Clock::Manual(clock.clone())).await.expect("replica starts");
        let channel = connect(running.addr).await;
        TestServer { running: Some(running), clock, config, channel, database: self.database.clone() }
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

    /// The running service's use cases.
    pub fn app(&self) -> std::sync::Arc<ventana::app::App> {
        self.running.as_ref().expect("running").app.clone()
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

    /// Waits (bounded) until the scheduler has finished its first round
    /// (readiness `SERVING`): from then on, only its clock or a wake-up starts another.
    pub async fn wait_until_scheduling(&self) {
        use tonic_health::pb::health_check_response::ServingStatus;
        let mut health = tonic_health::pb::health_client::HealthClient::new(self.channel.clone());
        let ready = tonic_health::pb::HealthCheckRequest { service: ventana::scheduler::READINESS_SERVICE.into() };
        for _ in 0..500 {
            if let Ok(answer) = health.check(ready.clone()).await
                && answer.into_inner().status == ServingStatus::Serving as i32
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("the scheduler never finished a round");
    }

    /// PostgreSQL: waits (bounded) until `count` connections to this
    /// database LISTEN for wake-ups (one per running replica).
    pub async fn wait_for_listeners(&self, count: i64) {
        let listening =
            "SELECT COUNT(*) FROM pg_stat_activity WHERE datname = current_database() AND query ILIKE 'LISTEN%'";
        assert!(
            super::database::reaches_count(&self.config.database_url, listening, count).await,
            "{count} replica(s) never listened for wake-ups"
        );
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

/// Submits one intent and returns the answer (the call must succeed).
pub async fn submit(client: &mut Scheduler, intent: pb::Intent) -> pb::SubmitResponse {
    client.submit(pb::SubmitRequest { intent: Some(intent) }).await.expect("submit").into_inner()
}

/// Leases up to `max_items` on `channels` with the default lease (the call must succeed).
pub async fn lease(adapter: &mut Dispatcher, channels: Vec<i32>, max_items: i32) -> pb::LeaseResponse {
    adapter.lease(pb::LeaseRequest { channels, max_items, lease_duration: None }).await.expect("lease").into_inner()
}

/// Acknowledges a leased contact with `outcome` (the call must succeed).
pub async fn ack(adapter: &mut Dispatcher, dispatch_id: &str, outcome: pb::Outcome) -> pb::AckResponse {
    let request =
        pb::AckRequest { dispatch_id: dispatch_id.into(), outcome: outcome as i32, at: None, detail: String::new() };
    adapter.ack(request).await.expect("ack").into_inner()
}

/// The intent id of a leased contact.
pub fn intent_id(item: &pb::LeasedItem) -> &str {
    item.intent.as_ref().map_or("", |i| i.intent_id.as_str())
}

/// The intent ids of leased contacts, in order.
pub fn intent_ids(items: &[pb::LeasedItem]) -> Vec<&str> {
    items.iter().map(intent_id).collect()
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

/// Runs a mixed workload for tenant `acme` touching every kind of event.
pub async fn mixed_workload(server: &TestServer) {
    let mut client = server.scheduler("acme").await;
    let mut adapter = server.dispatcher("acme").await;
    // Wednesday 10:00 Lima: PE releases; Colombia's daily cap defers the second contact.
    for (id, debtor, channel, jurisdiction) in [
        ("w-1", "d-1", pb::Channel::Sms, "PE"),
        ("w-2", "d-2", pb::Channel::Call, "CO"),
        ("w-3", "d-2", pb::Channel::Sms, "CO"),
        ("w-4", "d-3", pb::Channel::Email, "PE"),
        ("w-5", "d-4", pb::Channel::Whatsapp, "PE"),
    ] {
        submit(&mut client, intent(id, debtor, channel, jurisdiction)).await;
    }
    let mut third = intent("w-6", "d-5", pb::Channel::Call, "PE");
    third.party = pb::Party::ThirdParty as i32;
    submit(&mut client, third).await;
    let mut short = intent("w-7", "d-6", pb::Channel::Call, "PE");
    short.not_before = Some(ts("2026-11-25T21:00:00-05:00"));
    short.expires_at = Some(ts("2026-11-25T22:00:00-05:00"));
    submit(&mut client, short).await;
    client.cancel(pb::CancelRequest { intent_id: "w-3".into(), reason: "paid".into() }).await.expect("cancel");
    client
        .set_preferences(pb::SetPreferencesRequest {
            debtor_id: "d-4".into(),
            opt_out_all: Some(true),
            source: "letter".into(),
            ..Default::default()
        })
        .await
        .expect("preferences");
    let leased = adapter
        .lease(pb::LeaseRequest {
            channels: vec![
                pb::Channel::Sms as i32,
                pb::Channel::Call as i32,
                pb::Channel::Email as i32,
                pb::Channel::Whatsapp as i32,
            ],
            max_items: 10,
            lease_duration: None,
        })
        .await
        .expect("lease")
        .into_inner();
    // d-4 opted out: its released WhatsApp was withdrawn (and rejected) at lease time.
    assert!(leased.items.iter().all(|i| i.intent.as_ref().is_some_and(|i| i.intent_id != "w-5")));
    for item in &leased.items {
        adapter
            .ack(pb::AckRequest {
                dispatch_id: item.dispatch_id.clone(),
                outcome: pb::Outcome::Delivered as i32,
                at: None,
                detail: String::new(),
            })
            .await
            .expect("ack");
    }
    let mut operator = server.rules("acme", Role::Operator).await;
    operator.reload(pb::ReloadRequest {}).await.expect("reload");
}
