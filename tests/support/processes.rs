//! `ventana` as child processes: a `Setup` (a directory holding the
//! `ventana.toml` a `TestConfig` writes) from which to run commands, start
//! `ventana serve` replicas on loopback ports and make API keys.

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use tonic::metadata::{Ascii, MetadataValue};

use super::config::TestConfig;

/// A test configuration written for child processes.
pub struct Setup {
    dir: tempfile::TempDir,
    config: TestConfig,
}

pub struct Replica {
    pub child: Child,
    pub addr: SocketAddr,
}

/// A replica a failed test leaves behind is killed, not left serving.
impl Drop for Replica {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("a free port")
}

impl Setup {
    /// Writes `config` as `ventana.toml` into a new temporary directory.
    pub fn new(config: TestConfig) -> Setup {
        let dir = tempfile::tempdir().expect("setup dir");
        config.write(&dir.path().join("ventana.toml"));
        Setup { dir, config }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn database_url(&self) -> &str {
        self.config.database_url()
    }

    /// `ventana args…` reading this setup's `ventana.toml`. The database and
    /// the rules are also set in the environment, so that variables of the
    /// test's own environment can never point the child elsewhere.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_ventana"));
        command
            .args(args)
            .env("VENTANA_CONFIG", self.dir.path().join("ventana.toml"))
            .env("DATABASE_URL", self.config.database_url())
            .env("VENTANA_JURISDICTIONS", self.config.jurisdictions_dir())
            .env("RUST_LOG", "warn");
        command
    }

    /// `ventana serve` on a free loopback port, once it accepts connections.
    pub async fn start_replica(&self) -> Replica {
        let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().expect("addr");
        let mut child = self
            .command(&["serve", "--listen", &addr.to_string(), "--metrics-listen", "127.0.0.1:0"])
            .stdout(Stdio::null())
            .spawn()
            .expect("replica starts");
        for _ in 0..200 {
            if tokio::net::TcpStream::connect(addr).await.is_ok() {
                return Replica { child, addr };
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let _ = child.kill();
        let _ = child.wait();
        panic!("replica on {addr} never listened");
    }

    /// An API key for tenant `acme` with `roles`, made with `ventana keys create`.
    pub fn create_key(&self, roles: &[&str]) -> MetadataValue<Ascii> {
        let mut args = vec!["keys", "create", "--tenant", "acme"];
        for role in roles {
            args.extend(["--role", role]);
        }
        let output = self.command(&args).output().expect("keys create");
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
        format!("Bearer {}", String::from_utf8_lossy(&output.stdout).trim()).parse().expect("ascii")
    }
}

pub async fn channel(addr: SocketAddr) -> tonic::transport::Channel {
    tonic::transport::Endpoint::from_shared(format!("http://{addr}")).expect("endpoint").connect_lazy()
}

pub fn with_key<T>(message: T, key: &MetadataValue<Ascii>) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request.metadata_mut().insert("authorization", key.clone());
    request
}

/// The heavy multi-process tests (replicas, crashes, a database cut off)
/// take this, one at a time: on 2 cores they would starve each other's
/// bounded waits. Each ran as its own test binary, one after another, before.
pub static HEAVY: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
