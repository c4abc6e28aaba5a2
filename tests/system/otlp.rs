//! Spans reach an OTLP receiver: a small in-test OTLP/gRPC trace collector,
//! and `ventana serve` started with the standard OpenTelemetry variables.

use std::process::{Command, Stdio};
use std::time::Duration;

use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{TraceService, TraceServiceServer};
use opentelemetry_proto::tonic::collector::trace::v1::{ExportTraceServiceRequest, ExportTraceServiceResponse};
use tokio::io::AsyncBufReadExt;
use tokio::sync::mpsc;
use ventana::api::pb;

use crate::support::processes::free_port;
use crate::support::rules;

/// Forwards every received span as (name, attributes as text).
struct Collector(mpsc::UnboundedSender<(String, String)>);

#[tonic::async_trait]
impl TraceService for Collector {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        for resource in &request.get_ref().resource_spans {
            for scope in &resource.scope_spans {
                for span in &scope.spans {
                    let attributes = format!("{:?}", span.attributes);
                    let _ = self.0.send((span.name.clone(), attributes));
                }
            }
        }
        Ok(tonic::Response::new(ExportTraceServiceResponse { partial_success: None }))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn evaluation_spans_reach_an_otlp_receiver() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let collector_addr = listener.local_addr().expect("addr");
    let (spans, mut received) = mpsc::unbounded_channel();
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(TraceServiceServer::new(Collector(spans)))
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
    );

    let dir = tempfile::tempdir().expect("dir");
    let port = free_port();
    let mut child = tokio::process::Command::from({
        let mut command = Command::new(env!("CARGO_BIN_EXE_ventana"));
        command
            .args(["serve", "--dev", "--listen", &format!("127.0.0.1:{port}"), "--metrics-listen", "127.0.0.1:0"])
            .args(["--console-listen", "127.0.0.1:0"])
            .current_dir(dir.path())
            .env("VENTANA_JURISDICTIONS", rules::shipped())
            .env("OTEL_EXPORTER_OTLP_ENDPOINT", format!("http://{collector_addr}"))
            .env("OTEL_BSP_SCHEDULE_DELAY", "100")
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        command
    })
    .kill_on_drop(true)
    .spawn()
    .expect("serve starts");
    let mut stderr = tokio::io::BufReader::new(child.stderr.take().expect("stderr")).lines();
    let mut key = None;
    while let Ok(Some(line)) =
        tokio::time::timeout(Duration::from_secs(30), stderr.next_line()).await.expect("serve prints its key")
    {
        if let Some(found) = line.split_whitespace().find(|w| w.starts_with("vk_")) {
            key = Some(found.to_string());
            break;
        }
    }
    let key = key.expect("a dev key");
    tokio::spawn(async move { while let Ok(Some(_)) = stderr.next_line().await {} });

    let channel = tonic::transport::Endpoint::from_shared(format!("http://127.0.0.1:{port}"))
        .expect("endpoint")
        .connect()
        .await
        .expect("connect");
    let mut client = pb::contact_scheduler_service_client::ContactSchedulerServiceClient::new(channel);
    let mut request = tonic::Request::new(pb::SubmitRequest {
        intent: Some(pb::Intent {
            intent_id: "traced-1".into(),
            debtor_id: "d-1".into(),
            channel: pb::Channel::Email as i32,
            party: pb::Party::Debtor as i32,
            stage: pb::Stage::Extrajudicial as i32,
            jurisdiction: "US-NY".into(),
            ..Default::default()
        }),
    });
    request.metadata_mut().insert("authorization", format!("Bearer {key}").parse().expect("ascii"));
    client.submit(request).await.expect("submit");

    let mut names = Vec::new();
    let found = tokio::time::timeout(Duration::from_secs(30), async {
        while let Some((name, attributes)) = received.recv().await {
            names.push(name.clone());
            if name == "evaluate" && attributes.contains("traced-1") && attributes.contains("US-NY") {
                return true;
            }
        }
        false
    })
    .await
    .unwrap_or(false);
    let _ = child.kill().await;
    assert!(found, "no evaluate span for traced-1 reached the receiver; got {names:?}");
}
