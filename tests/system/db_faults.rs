//! PostgreSQL unreachable for 30 s under load: a TCP proxy between Ventana
//! and the database cuts every connection and refuses new ones. Meanwhile
//! calls fail fast with UNAVAILABLE; afterwards the service recovers by
//! itself and every submission it acknowledged is stored. Then what a server
//! restart does to open sessions (terminated with SQLSTATE 57P01) under load:
//! UNAVAILABLE again, never INTERNAL.

use std::time::{Duration, Instant};

use sqlx::Connection;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use ventana::api::auth::{Role, create_key};
use ventana::api::pb;
use ventana::clock::{Clock, ManualClock};

use crate::support::at;
use crate::support::config::TestConfig;
use crate::support::database::{TestDatabase, postgres_address};
use crate::support::processes::HEAVY;

/// Forwards to PostgreSQL while `up`; when it goes down, open connections are cut and new ones dropped.
async fn proxy(listener: TcpListener, up: watch::Receiver<bool>) {
    let postgres = postgres_address();
    loop {
        let Ok((mut client, _)) = listener.accept().await else { continue };
        if !*up.borrow() {
            continue; // dropped at once
        }
        let mut up = up.clone();
        let postgres = postgres.clone();
        tokio::spawn(async move {
            let Ok(mut server) = TcpStream::connect(&postgres).await else { return };
            tokio::select! {
                _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                _ = up.wait_for(|up| !*up) => {}
            }
        });
    }
}

fn submit_request(n: usize, key: &str) -> tonic::Request<pb::SubmitRequest> {
    let intent = pb::Intent {
        intent_id: format!("fault-{n}"),
        debtor_id: format!("d-{n}"),
        channel: pb::Channel::Sms as i32,
        party: pb::Party::Debtor as i32,
        stage: pb::Stage::Extrajudicial as i32,
        jurisdiction: "PE".into(),
        ..Default::default()
    };
    let mut request = tonic::Request::new(pb::SubmitRequest { intent: Some(intent) });
    request.metadata_mut().insert("authorization", key.parse().expect("ascii"));
    request
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_unreachable_for_30_seconds_fails_fast_and_recovers() {
    let _heavy = HEAVY.lock().await;
    // The database is created directly; Ventana reaches it only through the proxy.
    let database = TestDatabase::postgres().await;
    let direct = database.url();
    let name = database.name().expect("a database name");

    let listener = TcpListener::bind("127.0.0.1:0").await.expect("proxy port");
    let port = listener.local_addr().expect("addr").port();
    let (set_up, up) = watch::channel(true);
    tokio::spawn(proxy(listener, up));

    let config = TestConfig::new(&format!("postgres://postgres@127.0.0.1:{port}/{name}")).build();
    let clock = ManualClock::new(at("2026-11-25T10:00:00-05:00"));
    let running = ventana::server::start(&config, Clock::Manual(clock)).await.expect("server starts");
    let key = format!("Bearer {}", create_key(&running.app.store, "acme", &[Role::Submitter], 0).await.expect("key"));
    let channel = tonic::transport::Channel::from_shared(format!("http://{}", running.addr))
        .expect("uri")
        .connect()
        .await
        .expect("connect");
    let mut client = pb::contact_scheduler_service_client::ContactSchedulerServiceClient::new(channel);
    let mut acknowledged = Vec::new();
    let mut n = 0;
    for _ in 0..20 {
        client.submit(submit_request(n, &key)).await.expect("submit while the database is up");
        acknowledged.push(n);
        n += 1;
    }

    // Down for 30 s: every call ends quickly, with UNAVAILABLE.
    let _ = set_up.send(false);
    let down = Instant::now();
    let mut refused = 0;
    let down_for = Duration::from_secs(30);
    while down.elapsed() < down_for {
        let started = Instant::now();
        match client.submit(submit_request(n, &key)).await {
            Ok(_) => acknowledged.push(n),
            Err(status) => {
                assert_eq!(status.code(), tonic::Code::Unavailable, "{status:?}");
                refused += 1;
            }
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "a call hung {:?} with the database down",
            started.elapsed()
        );
        n += 1;
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert!(refused > 10, "calls were refused while the database was down ({refused})");

    // Back up: the service recovers by itself.
    let _ = set_up.send(true);
    let back = Instant::now();
    loop {
        if client.submit(submit_request(n, &key)).await.is_ok() {
            acknowledged.push(n);
            break;
        }
        assert!(back.elapsed() < Duration::from_secs(30), "no recovery after the database came back");
        tokio::time::sleep(Duration::from_millis(200)).await;
        n += 1;
    }
    eprintln!("refused {refused} calls while down; recovered {:.1} s after", back.elapsed().as_secs_f64());

    // What a server restart does to open sessions: every backend of this
    // database is terminated (SQLSTATE 57P01), 20 times, 100 ms apart, while
    // four clients keep submitting. Calls fail with UNAVAILABLE, never
    // INTERNAL, and the pool reconnects by itself.
    let first = n + 1;
    let submitters: Vec<_> = (0..4)
        .map(|worker| {
            let (mut client, key) = (client.clone(), key.clone());
            tokio::spawn(async move {
                let (mut served, mut refused) = (Vec::new(), 0);
                for i in 0..400 {
                    let n = first + worker * 400 + i;
                    match client.submit(submit_request(n, &key)).await {
                        Ok(_) => served.push(n),
                        Err(status) => {
                            assert_eq!(status.code(), tonic::Code::Unavailable, "{status:?}");
                            refused += 1;
                        }
                    }
                }
                (served, refused)
            })
        })
        .collect();
    let mut admin = sqlx::PgConnection::connect(direct).await.expect("admin connection");
    for _ in 0..20 {
        sqlx::query(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()",
        )
        .execute(&mut admin)
        .await
        .expect("terminate backends");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut terminated_refused = 0;
    for submitter in submitters {
        let (served, refused) = submitter.await.expect("submitter");
        acknowledged.extend(served);
        terminated_refused += refused;
    }
    eprintln!("sessions terminated 20 times under load: {terminated_refused} calls refused with UNAVAILABLE");
    n = first + 1600;
    client.submit(submit_request(n, &key)).await.expect("submit after the sessions were terminated");
    acknowledged.push(n);
    for n in acknowledged {
        let mut request = tonic::Request::new(pb::GetRequest { intent_id: format!("fault-{n}") });
        request.metadata_mut().insert("authorization", key.parse().expect("ascii"));
        client.get(request).await.unwrap_or_else(|e| panic!("acknowledged fault-{n} is lost: {e}"));
    }
    running.shutdown().await;
}
