//! DispatchService.Dispatch on both backends: a stream is handed a contact
//! when its deferral comes due, never holds more than its credit, is offered
//! an unacknowledged contact again when the lease expires, never sends one
//! whose window closed, loses nothing when it closes, refuses bad requests
//! naming the field, and ends when its key expires.

use tokio::sync::mpsc;
use tokio_stream::wrappers::UnboundedReceiverStream;
use tonic::Code;
use ventana::api::auth::{KeySpec, Role, mint_key};
use ventana::api::pb;

use crate::on_both_backends;
use crate::support::server::*;

/// An adapter's open stream: its later requests and the contacts it is sent.
struct Stream {
    requests: mpsc::UnboundedSender<pb::DispatchRequest>,
    contacts: tonic::Streaming<pb::DispatchResponse>,
}

impl Stream {
    /// The next contacts sent (bounded, so a missing contact fails rather than hangs).
    async fn next(&mut self) -> Vec<pb::LeasedItem> {
        let answer = tokio::time::timeout(std::time::Duration::from_secs(30), self.contacts.message())
            .await
            .expect("contacts come")
            .expect("the stream is healthy")
            .expect("the stream is open");
        assert!(!answer.items.is_empty(), "a message carries contacts");
        answer.items
    }

    /// Collects exactly `n` contacts, however they are split into messages.
    async fn take(&mut self, n: usize) -> Vec<pb::LeasedItem> {
        let mut items = Vec::new();
        while items.len() < n {
            items.extend(self.next().await);
        }
        assert_eq!(items.len(), n, "no more than asked for");
        items
    }

    fn grant(&self, credit: i32) {
        self.requests.send(pb::DispatchRequest { credit, ..Default::default() }).expect("the stream is open");
    }
}

fn open_request(channel: pb::Channel, credit: i32, lease_seconds: i64) -> pb::DispatchRequest {
    pb::DispatchRequest {
        channels: vec![channel as i32],
        credit,
        lease_duration: Some(prost_types::Duration { seconds: lease_seconds, nanos: 0 }),
    }
}

/// Opens a stream with `first` as its first request.
async fn open(adapter: &mut Dispatcher, first: pb::DispatchRequest) -> Result<Stream, tonic::Status> {
    let (requests, receiver) = mpsc::unbounded_channel();
    requests.send(first).expect("queued");
    let contacts = adapter.dispatch(UnboundedReceiverStream::new(receiver)).await?.into_inner();
    Ok(Stream { requests, contacts })
}

async fn a_stream_is_handed_a_contact_when_its_deferral_comes_due(backend: Backend) {
    // Saturday in Lima: deferred to Monday 07:00.
    let server = TestServer::start(backend, "2026-11-28T10:00:00-05:00").await;
    let mut client = server.scheduler("acme").await;
    let mut adapter = server.dispatcher("acme").await;
    let submitted = submit(&mut client, intent("s-1", "d-1", pb::Channel::Call, "PE")).await;
    assert_eq!(submitted.status, pb::IntentStatus::Deferred as i32);
    let mut stream = open(&mut adapter, open_request(pb::Channel::Call, 5, 60)).await.expect("opens");

    server.set_clock("2026-11-30T07:00:00-05:00");
    let items = stream.take(1).await;
    let item = &items[0];
    assert_eq!(intent_id(item), "s-1");
    assert_eq!(item.attempt, 1);
    assert_eq!(item.not_after, Some(ts("2026-11-30T20:00:00-05:00")));
    assert_eq!(item.lease_expires_at, Some(ts("2026-11-30T07:01:00-05:00")));
    let view = get(&mut client, "s-1").await;
    assert_eq!(view.status, pb::IntentStatus::Leased as i32);
    assert_eq!(view.dispatch_id, item.dispatch_id);
    // Released and leased, each with its audit event, in that order.
    let kinds: Vec<String> =
        audit_events(&server, "acme").await.iter().filter(|e| e.intent_id == "s-1").map(event_kind).collect();
    assert_eq!(kinds, ["submitted", "deferred", "released", "leased"]);

    assert_eq!(
        ack(&mut adapter, &item.dispatch_id, pb::Outcome::Delivered).await.status,
        pb::IntentStatus::Done as i32
    );
    server.stop().await;
}
on_both_backends!(a_stream_is_handed_a_contact_when_its_deferral_comes_due);

async fn a_stream_holds_no_more_contacts_than_its_credit(backend: Backend) {
    // Wednesday 10:00 Lima: every email is released at once.
    let server = TestServer::start(backend, "2026-11-25T10:00:00-05:00").await;
    let mut client = server.scheduler("acme").await;
    let mut adapter = server.dispatcher("acme").await;
    for n in 0..5 {
        submit(&mut client, intent(&format!("c-{n}"), &format!("d-{n}"), pb::Channel::Email, "PE")).await;
    }
    let mut stream = open(&mut adapter, open_request(pb::Channel::Email, 2, 60)).await.expect("opens");
    let first = stream.take(2).await;
    // Out of credit: the other three are still there for anyone.
    let polled = lease(&mut adapter, vec![pb::Channel::Email as i32], 10).await;
    assert_eq!(polled.items.len(), 3, "the stream took only its credit");
    for item in first.iter().chain(&polled.items) {
        ack(&mut adapter, &item.dispatch_id, pb::Outcome::Delivered).await;
    }
    // One more credit: exactly the next contact released.
    stream.grant(1);
    submit(&mut client, intent("c-5", "d-5", pb::Channel::Email, "PE")).await;
    submit(&mut client, intent("c-6", "d-6", pb::Channel::Email, "PE")).await;
    let more = stream.take(1).await;
    let polled = lease(&mut adapter, vec![pb::Channel::Email as i32], 10).await;
    assert_eq!(polled.items.len(), 1);
    let mut both = vec![intent_id(&more[0]).to_string(), intent_id(&polled.items[0]).to_string()];
    both.sort();
    assert_eq!(both, ["c-5", "c-6"]);
    server.stop().await;
}
on_both_backends!(a_stream_holds_no_more_contacts_than_its_credit);

async fn an_unacknowledged_contact_is_offered_again_and_a_closed_stream_loses_nothing(backend: Backend) {
    let server = TestServer::start(backend, "2026-11-25T10:00:00-05:00").await;
    let mut client = server.scheduler("acme").await;
    let mut adapter = server.dispatcher("acme").await;
    submit(&mut client, intent("r-1", "d-1", pb::Channel::Email, "PE")).await;
    let mut stream = open(&mut adapter, open_request(pb::Channel::Email, 2, 30)).await.expect("opens");
    let first = stream.take(1).await;
    assert_eq!(first[0].attempt, 1);

    // Not acknowledged in time: offered to the stream again, same dispatch, a fresh check.
    server.clock.advance(chrono::Duration::seconds(31));
    let again = stream.take(1).await;
    assert_eq!(again[0].dispatch_id, first[0].dispatch_id);
    assert_eq!(again[0].attempt, 2);

    // The adapter goes away holding it: nothing is lost, the lease expires and Lease gets it.
    drop(stream);
    assert!(lease(&mut adapter, vec![pb::Channel::Email as i32], 10).await.items.is_empty(), "the lease holds");
    server.clock.advance(chrono::Duration::seconds(31));
    let polled = lease(&mut adapter, vec![pb::Channel::Email as i32], 10).await;
    assert_eq!(polled.items.len(), 1);
    assert_eq!(polled.items[0].dispatch_id, first[0].dispatch_id);
    assert_eq!(polled.items[0].attempt, 3);

    ack(&mut adapter, &polled.items[0].dispatch_id, pb::Outcome::Delivered).await;

    // A deferral coming due just after a stream closed is not lost either.
    let mut late = intent("r-2", "d-2", pb::Channel::Email, "PE");
    late.not_before = Some(ts("2026-11-25T11:00:00-05:00"));
    submit(&mut client, late).await;
    drop(open(&mut adapter, open_request(pb::Channel::Email, 1, 30)).await.expect("opens"));
    server.set_clock("2026-11-25T11:00:00-05:00");
    // Released (the scheduler saw the stream gone) or leased to the closed
    // stream: either way Lease gets it, at once or when that lease expires.
    let mut status = pb::IntentStatus::Deferred as i32;
    for _ in 0..500 {
        status = get(&mut client, "r-2").await.status;
        if status != pb::IntentStatus::Deferred as i32 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!([pb::IntentStatus::Released as i32, pb::IntentStatus::Leased as i32].contains(&status), "{status}");
    server.clock.advance(chrono::Duration::seconds(31));
    let polled = lease(&mut adapter, vec![pb::Channel::Email as i32], 10).await;
    assert_eq!(polled.items.iter().map(intent_id).collect::<Vec<_>>(), ["r-2"]);
    server.stop().await;
}
on_both_backends!(an_unacknowledged_contact_is_offered_again_and_a_closed_stream_loses_nothing);

async fn a_stream_never_sends_a_contact_whose_window_closed(backend: Backend) {
    // Released a minute before Lima's 20:00 close, and nobody takes it in time.
    let server = TestServer::start(backend, "2026-11-25T19:59:00-05:00").await;
    let mut client = server.scheduler("acme").await;
    let mut adapter = server.dispatcher("acme").await;
    let released = submit(&mut client, intent("w-1", "d-1", pb::Channel::Email, "PE")).await;
    assert_eq!(released.status, pb::IntentStatus::Released as i32);
    let first_dispatch = get(&mut client, "w-1").await.dispatch_id;
    server.set_clock("2026-11-25T20:30:00-05:00");
    let mut stream = open(&mut adapter, open_request(pb::Channel::Email, 5, 60)).await.expect("opens");
    // Checked again before it leaves: withdrawn and deferred to the next window.
    let view = server.wait_for_status(&mut client, "w-1", pb::IntentStatus::Deferred).await;
    assert_eq!(view.next_eval_at, Some(ts("2026-11-26T07:00:00-05:00")));
    // The first contact this stream is ever sent is the next morning's, a new dispatch.
    server.set_clock("2026-11-26T07:00:00-05:00");
    let items = stream.take(1).await;
    assert_eq!(intent_id(&items[0]), "w-1");
    assert_ne!(items[0].dispatch_id, first_dispatch);
    assert_eq!(items[0].attempt, 1);
    assert_eq!(items[0].not_after, Some(ts("2026-11-26T20:00:00-05:00")));
    server.stop().await;
}
on_both_backends!(a_stream_never_sends_a_contact_whose_window_closed);

async fn bad_dispatch_requests_name_the_field(backend: Backend) {
    let server = TestServer::start(backend, "2026-11-25T10:00:00-05:00").await;
    let mut adapter = server.dispatcher("acme").await;
    let cases = [
        (pb::DispatchRequest { credit: 1, ..Default::default() }, "channels"),
        (pb::DispatchRequest { channels: vec![99], credit: 1, ..Default::default() }, "channels[0]"),
        (open_request(pb::Channel::Sms, 0, 60), "credit"),
        (open_request(pb::Channel::Sms, 501, 60), "credit"),
        (open_request(pb::Channel::Sms, -1, 60), "credit"),
        (open_request(pb::Channel::Sms, 1, 0), "lease_duration"),
        (open_request(pb::Channel::Sms, 1, 3601), "lease_duration"),
    ];
    for (first, field) in cases {
        let status = open(&mut adapter, first.clone()).await.err().unwrap_or_else(|| panic!("{first:?} refused"));
        assert_eq!(status.code(), Code::InvalidArgument, "{first:?}: {status:?}");
        assert!(status.message().starts_with(&format!("{field}:")), "{first:?}: {}", status.message());
    }
    // No first request at all.
    let (requests, receiver) = mpsc::unbounded_channel::<pb::DispatchRequest>();
    drop(requests);
    let status = adapter.dispatch(UnboundedReceiverStream::new(receiver)).await.expect_err("nothing to open");
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(status.message().starts_with("request:"), "{}", status.message());
    // A later request may only grant credit, 1 to 500.
    let later = [
        (pb::DispatchRequest { credit: 0, ..Default::default() }, "credit"),
        (open_request(pb::Channel::Sms, 1, 60), "channels"),
        (
            pb::DispatchRequest {
                credit: 1,
                lease_duration: Some(prost_types::Duration { seconds: 5, nanos: 0 }),
                ..Default::default()
            },
            "lease_duration",
        ),
    ];
    for (request, field) in later {
        let mut stream = open(&mut adapter, open_request(pb::Channel::Sms, 1, 60)).await.expect("opens");
        stream.requests.send(request.clone()).expect("sent");
        let status = stream.contacts.message().await.expect_err("refused");
        assert_eq!(status.code(), Code::InvalidArgument, "{request:?}: {status:?}");
        assert!(status.message().starts_with(&format!("{field}:")), "{request:?}: {}", status.message());
    }
    // Credit granted and not used is bounded (10,000; a lease in progress may hold 500 of it
    // aside): 500 at the open and 24 grants of 500 cannot all be taken.
    let mut stream = open(&mut adapter, open_request(pb::Channel::Sms, 500, 60)).await.expect("opens");
    for _ in 0..24 {
        stream.grant(500);
    }
    let answer = tokio::time::timeout(std::time::Duration::from_secs(30), stream.contacts.message()).await;
    let status = answer.expect("the stream ends").expect_err("refused");
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert!(status.message().starts_with("credit: at most 10000"), "{}", status.message());
    server.stop().await;
}
on_both_backends!(bad_dispatch_requests_name_the_field);

async fn an_expired_key_ends_the_stream_at_its_next_grant(backend: Backend) {
    let server = TestServer::start(backend, "2026-11-25T10:00:00-05:00").await;
    let spec = KeySpec {
        tenant: "acme",
        roles: &[Role::Adapter],
        name: None,
        expires_at: Some(at("2026-11-25T11:00:00-05:00").timestamp_millis()),
    };
    let key = mint_key(server.store(), &spec, at("2026-11-25T10:00:00-05:00").timestamp_millis()).await.expect("key");
    let auth = Auth(format!("Bearer {key}").parse().expect("ascii"));
    let mut adapter =
        pb::dispatch_service_client::DispatchServiceClient::with_interceptor(server.channel.clone(), auth);
    let mut stream = open(&mut adapter, open_request(pb::Channel::Sms, 1, 60)).await.expect("opens");
    server.set_clock("2026-11-25T11:00:00-05:00");
    stream.grant(1);
    let answer = tokio::time::timeout(std::time::Duration::from_secs(30), stream.contacts.message()).await;
    let status = answer.expect("the stream ends").expect_err("with a status");
    assert_eq!(status.code(), Code::Unauthenticated, "{status:?}");
    assert!(status.message().contains("expired api key"), "{}", status.message());
    server.stop().await;
}
on_both_backends!(an_expired_key_ends_the_stream_at_its_next_grant);
