//! TLS on the gRPC port: a client that trusts the CA gets through, a
//! plaintext client or one trusting another CA does not; SIGHUP-style reload
//! swaps the certificate for new connections and a bad file keeps the old
//! one; mutual TLS refuses clients without a certificate from the CA; and
//! plaintext on a non-loopback address is refused unless asked for. On both
//! backends, like every service test.

use std::path::{Path, PathBuf};

use tonic::transport::{Certificate, Channel, ClientTlsConfig, Identity};
use ventana::api::auth::{Role, create_key};
use ventana::api::pb;
use ventana::clock::{Clock, ManualClock};
use ventana::server::Running;
use ventana::tls::TlsFiles;

use crate::on_both_backends;
use crate::support::server::{Backend, TestConfig, TestDatabase, at};

/// A CA, a server and a client certificate made by the repository's script.
fn make_ca(dir: &Path, name: &str) -> PathBuf {
    let out = dir.join(name);
    let status = std::process::Command::new(concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/make-test-ca.sh"))
        .arg(&out)
        .arg(name)
        .stdout(std::process::Stdio::null())
        .status()
        .expect("scripts/make-test-ca.sh runs (needs openssl)");
    assert!(status.success());
    out
}

async fn start(config: TestConfig) -> (Running, String) {
    let clock = ManualClock::new(at("2026-11-25T10:00:00-05:00"));
    let running = ventana::server::start(&config.build(), Clock::Manual(clock)).await.expect("server starts");
    let key = create_key(&running.app.store, "acme", &[Role::Submitter], 0).await.expect("key");
    (running, format!("Bearer {key}"))
}

/// One Rules.List call on a new connection: `trust` is the CA file the client trusts
/// (None: plaintext), `identity` the client certificate directory.
async fn list(running: &Running, key: &str, trust: Option<&Path>, identity: Option<&Path>) -> Result<(), String> {
    let port = running.addr.port();
    let channel = match trust {
        None => Channel::from_shared(format!("http://127.0.0.1:{port}")).map_err(|e| e.to_string())?,
        Some(ca) => {
            let mut tls = ClientTlsConfig::new()
                .ca_certificate(Certificate::from_pem(std::fs::read(ca).expect("ca")))
                .domain_name("localhost");
            if let Some(dir) = identity {
                let cert = std::fs::read(dir.join("client.pem")).expect("client cert");
                let key = std::fs::read(dir.join("client.key")).expect("client key");
                tls = tls.identity(Identity::from_pem(cert, key));
            }
            Channel::from_shared(format!("https://127.0.0.1:{port}"))
                .map_err(|e| e.to_string())?
                .tls_config(tls)
                .map_err(|e| e.to_string())?
        }
    };
    let channel = channel.connect().await.map_err(|e| format!("connect: {e:?}"))?;
    let mut client = pb::rules_service_client::RulesServiceClient::new(channel);
    let mut request = tonic::Request::new(pb::ListJurisdictionsRequest {});
    request.metadata_mut().insert("authorization", key.parse().expect("ascii"));
    client.list_jurisdictions(request).await.map(|_| ()).map_err(|e| format!("call: {e}"))
}

async fn tls_serves_trusting_clients_and_reloads_its_certificate(backend: Backend) {
    let database = TestDatabase::new(backend).await;
    let dir = tempfile::tempdir().expect("dir");
    let (a, b) = (make_ca(dir.path(), "ca-a"), make_ca(dir.path(), "ca-b"));
    let live = dir.path().join("live");
    std::fs::create_dir(&live).expect("live dir");
    for file in ["server.pem", "server.key"] {
        std::fs::copy(a.join(file), live.join(file)).expect("copy");
    }
    let files = TlsFiles { cert: live.join("server.pem"), key: live.join("server.key"), client_ca: None };
    let (running, key) = start(TestConfig::new(database.url()).tls(files)).await;
    let tls = running.tls.clone().expect("TLS in force");

    list(&running, &key, Some(&a.join("ca-a-ca.pem")), None).await.expect("a client trusting CA A gets through");
    assert!(list(&running, &key, None, None).await.is_err(), "plaintext is refused on a TLS port");
    assert!(list(&running, &key, Some(&b.join("ca-b-ca.pem")), None).await.is_err(), "CA B does not vouch for it");

    // Rotate to CA B's certificate and reload: new connections see the new one.
    for file in ["server.pem", "server.key"] {
        std::fs::copy(b.join(file), live.join(file)).expect("copy");
    }
    tls.reload().expect("reload");
    list(&running, &key, Some(&b.join("ca-b-ca.pem")), None).await.expect("after reload CA B's certificate is served");
    assert!(list(&running, &key, Some(&a.join("ca-a-ca.pem")), None).await.is_err(), "the old certificate is gone");

    // A broken file is reported with its name and changes nothing.
    std::fs::write(live.join("server.pem"), "not a certificate").expect("write");
    let error = tls.reload().expect_err("a broken certificate file is refused");
    assert!(error.contains("server.pem"), "{error}");
    list(&running, &key, Some(&b.join("ca-b-ca.pem")), None).await.expect("the certificate in force stays");
    running.shutdown().await;
}
on_both_backends!(tls_serves_trusting_clients_and_reloads_its_certificate);

async fn mutual_tls_requires_a_client_certificate_from_the_ca(backend: Backend) {
    let database = TestDatabase::new(backend).await;
    let dir = tempfile::tempdir().expect("dir");
    let (a, b) = (make_ca(dir.path(), "ca-a"), make_ca(dir.path(), "ca-b"));
    let files =
        TlsFiles { cert: a.join("server.pem"), key: a.join("server.key"), client_ca: Some(a.join("ca-a-ca.pem")) };
    let (running, key) = start(TestConfig::new(database.url()).tls(files)).await;
    let trust = a.join("ca-a-ca.pem");
    assert!(list(&running, &key, Some(&trust), None).await.is_err(), "no client certificate");
    assert!(list(&running, &key, Some(&trust), Some(&b)).await.is_err(), "a client certificate from another CA");
    list(&running, &key, Some(&trust), Some(&a)).await.expect("a client certificate from the CA");
    running.shutdown().await;
}
on_both_backends!(mutual_tls_requires_a_client_certificate_from_the_ca);

async fn plaintext_beyond_loopback_only_when_asked(backend: Backend) {
    let database = TestDatabase::new(backend).await;
    let open = TestConfig::new(database.url()).listen("0.0.0.0:0".parse().expect("addr"));
    let error = ventana::server::start(&open.build(), Clock::System).await.err().expect("refused");
    assert!(format!("{error:#}").contains("refusing plaintext"), "{error:#}");
    let running =
        ventana::server::start(&open.plaintext().build(), Clock::System).await.expect("plaintext = true allows it");
    running.shutdown().await;
}
on_both_backends!(plaintext_beyond_loopback_only_when_asked);

/// GET `path` from the console at `addr` over TLS, trusting `ca`; the status and the `set-cookie` values.
async fn console_get(addr: std::net::SocketAddr, ca: &Path, path: &str) -> Result<(u16, Vec<String>), String> {
    use http_body_util::Empty;
    use rustls_pki_types::pem::PemObject as _;
    use tokio_rustls::rustls;
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_pki_types::CertificateDer::pem_file_iter(ca).map_err(|e| e.to_string())? {
        roots.add(cert.map_err(|e| e.to_string())?).map_err(|e| e.to_string())?;
    }
    let config =
        rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .with_root_certificates(roots)
            .with_no_client_auth();
    let tcp = tokio::net::TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
    let name = rustls_pki_types::ServerName::try_from("localhost").map_err(|e| e.to_string())?;
    let stream = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config))
        .connect(name, tcp)
        .await
        .map_err(|e| format!("handshake: {e}"))?;
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream)).await.map_err(|e| e.to_string())?;
    tokio::spawn(connection);
    let request = hyper::Request::get(path)
        .header("host", "localhost")
        .body(Empty::<bytes::Bytes>::new())
        .map_err(|e| e.to_string())?;
    let response = sender.send_request(request).await.map_err(|e| e.to_string())?;
    let cookies = response.headers().get_all("set-cookie").iter().filter_map(|v| v.to_str().ok()).map(String::from);
    Ok((response.status().as_u16(), cookies.collect()))
}

/// The console uses the gRPC port's certificate; its cookies are then `Secure`.
async fn the_console_speaks_tls_with_the_grpc_certificate(backend: Backend) {
    let database = TestDatabase::new(backend).await;
    let dir = tempfile::tempdir().expect("dir");
    let (a, b) = (make_ca(dir.path(), "ca-a"), make_ca(dir.path(), "ca-b"));
    let files = TlsFiles { cert: a.join("server.pem"), key: a.join("server.key"), client_ca: None };
    let (running, _) = start(TestConfig::new(database.url()).tls(files).console()).await;
    let addr = running.console_addr.expect("the console is on");
    let (status, cookies) = console_get(addr, &a.join("ca-a-ca.pem"), "/signin").await.expect("TLS with CA A");
    assert_eq!(status, 200);
    assert!(cookies.iter().any(|c| c.starts_with("ventana_signin=") && c.contains("; Secure")), "{cookies:?}");
    assert!(console_get(addr, &b.join("ca-b-ca.pem"), "/signin").await.is_err(), "CA B does not vouch for it");
    // Plain HTTP gets no page.
    let mut plain = tokio::net::TcpStream::connect(addr).await.expect("connect");
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let _ = plain.write_all(b"GET /signin HTTP/1.1\r\nhost: localhost\r\n\r\n").await;
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(std::time::Duration::from_secs(5), plain.read_to_end(&mut answer)).await;
    assert!(!String::from_utf8_lossy(&answer).contains("HTTP/1.1 200"), "plain HTTP on the TLS console");
    running.shutdown().await;
}
on_both_backends!(the_console_speaks_tls_with_the_grpc_certificate);
