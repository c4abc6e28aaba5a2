//! Throwaway PostgreSQL clusters made with the installed server binaries
//! (`initdb`, `pg_ctl`, `pg_basebackup`): the one every PostgreSQL test of a
//! run shares when `VENTANA_TEST_POSTGRES_URL` is not set, and the primary
//! and standby the failover test builds. A cluster listens on 127.0.0.1 on a
//! free port with trust authentication for `postgres`, keeps its socket in
//! its own data directory, and is stopped and removed when dropped; the
//! shared one by a watchdog process when the test binary exits, however it
//! exits. Run as root (as CI may), the binaries refuse to start, so they run
//! as the `postgres` user, which the server package creates.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

use super::processes::free_port;

/// A PostgreSQL cluster in a temporary data directory, stopped and removed when dropped.
pub struct Cluster {
    /// Holds the data directory (`data/` inside it) until the cluster is dropped.
    dir: Option<tempfile::TempDir>,
    data: PathBuf,
    pub port: u16,
}

/// The directory holding `initdb` and `pg_ctl`: `pg_config --bindir`, else the
/// newest `/usr/lib/postgresql/*/bin`. Panics with the package to install.
pub fn server_binaries() -> PathBuf {
    let from_pg_config = Command::new("pg_config")
        .arg("--bindir")
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()))
        .filter(|dir| dir.join("initdb").exists());
    let debian = || {
        let mut dirs: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
            .into_iter()
            .flatten()
            .flatten()
            .map(|entry| entry.path().join("bin"))
            .filter(|dir| dir.join("initdb").exists())
            .collect();
        dirs.sort_by_key(|dir| dir.parent().and_then(|v| v.file_name()).and_then(|v| v.to_str()?.parse::<u32>().ok()));
        dirs.pop()
    };
    from_pg_config.or_else(debian).unwrap_or_else(|| {
        panic!(
            "the PostgreSQL tests need the PostgreSQL server binaries (initdb, pg_ctl): install the Debian package \
             `postgresql`, or set VENTANA_TEST_POSTGRES_URL to a server where user postgres may create databases"
        )
    })
}

/// Whether this process runs as root (`/proc/self` belongs to its user).
fn running_as_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

/// A command for a server binary, run as `postgres` when we are root.
fn server_command(binary: &str) -> Command {
    let path = server_binaries().join(binary);
    if running_as_root() {
        let mut command = Command::new("runuser");
        command.args(["-u", "postgres", "--"]).arg(path);
        command
    } else {
        Command::new(path)
    }
}

fn run(command: &mut Command, what: &str) -> Output {
    let output = command.output().unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(
        output.status.success(),
        "{what} failed: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

/// A temporary directory the server binaries may own (chowned to
/// `postgres` when we are root).
fn owned_temp_dir() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::Builder::new().prefix("ventana-pg-").tempdir().expect("temp dir");
    let data = dir.path().join("data");
    std::fs::create_dir(&data).expect("data dir");
    // The server refuses a data directory others may read.
    std::fs::set_permissions(&data, std::os::unix::fs::PermissionsExt::from_mode(0o700)).expect("chmod 700");
    if running_as_root() {
        for path in [dir.path(), data.as_path()] {
            run(Command::new("chown").args(["postgres:postgres"]).arg(path), "chown to postgres");
        }
    }
    (dir, data)
}

impl Cluster {
    /// `initdb` and start a new primary.
    pub fn start_new() -> Cluster {
        let (dir, data) = owned_temp_dir();
        run(
            server_command("initdb")
                .args(["-A", "trust", "-U", "postgres", "--no-sync", "-E", "UTF8", "-D"])
                .arg(&data),
            "initdb",
        );
        // A standby made from this primary needs replication connections and WAL for it.
        // Tests kill server processes, never the machine: what a killed process wrote is
        // in the page cache, so fsync buys nothing here but time.
        let conf = "wal_level = replica\nmax_wal_senders = 5\nhot_standby = on\nmax_connections = 400\nfsync = off\n";
        let mut file = std::fs::OpenOptions::new().append(true).open(data.join("postgresql.conf")).expect("conf");
        std::io::Write::write_all(&mut file, conf.as_bytes()).expect("write conf");
        let cluster = Cluster { dir: Some(dir), data, port: free_port() };
        cluster.start();
        cluster
    }

    /// A streaming standby of `primary` (`pg_basebackup -R`), started;
    /// `synchronous` makes the primary wait for it at every commit.
    pub fn start_standby(primary: &Cluster, synchronous: bool) -> Cluster {
        let (dir, data) = owned_temp_dir();
        run(
            server_command("pg_basebackup")
                .args([
                    "-h",
                    "127.0.0.1",
                    "-p",
                    &primary.port.to_string(),
                    "-U",
                    "postgres",
                    "-R",
                    "-X",
                    "stream",
                    "-c",
                    "fast",
                    "-D",
                ])
                .arg(&data),
            "pg_basebackup",
        );
        let standby = Cluster { dir: Some(dir), data, port: free_port() };
        // The standby's walreceiver introduces itself by its cluster name.
        let mut conf =
            std::fs::OpenOptions::new().append(true).open(standby.data.join("postgresql.auto.conf")).expect("conf");
        std::io::Write::write_all(&mut conf, b"cluster_name = 'standby'\n").expect("write conf");
        standby.start();
        if synchronous {
            primary.sql("ALTER SYSTEM SET synchronous_standby_names = 'standby'");
            primary.sql("SELECT pg_reload_conf()");
        }
        standby
    }

    fn pg_ctl(&self, args: &[&str]) -> Command {
        let mut command = server_command("pg_ctl");
        command.arg("-D").arg(&self.data).args(args);
        command
    }

    /// The directory beside the data directory: the socket and the server log.
    fn side(&self) -> &Path {
        self.data.parent().expect("the data directory has a parent")
    }

    /// Starts the server and waits until it accepts connections; a failure
    /// shows the end of the server's log.
    pub fn start(&self) {
        let options = format!("-p {} -k {} -c listen_addresses=127.0.0.1", self.port, self.side().display());
        let log = self.side().join("server.log");
        let output = self
            .pg_ctl(&["-w", "-t", "60", "-o", &options, "-l"])
            .arg(&log)
            .arg("start")
            .stdin(Stdio::null())
            .output()
            .expect("run pg_ctl");
        if !output.status.success() {
            let log = std::fs::read_to_string(&log).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(15).collect::<Vec<_>>().into_iter().rev().collect();
            panic!(
                "pg_ctl start failed: {}\nserver log:\n{}",
                String::from_utf8_lossy(&output.stdout),
                tail.join("\n")
            );
        }
    }

    /// Promotes a standby to primary and waits until it accepts writes.
    pub fn promote(&self) {
        run(&mut self.pg_ctl(&["-w", "promote"]), "pg_ctl promote");
    }

    /// Kills the postmaster and every backend with SIGKILL at once, as a
    /// crashed machine stops them (a backend left running could still
    /// answer for a moment after its postmaster is gone).
    pub fn kill(&self) {
        let pid = std::fs::read_to_string(self.data.join("postmaster.pid")).expect("postmaster.pid");
        let pid = pid.lines().next().expect("pid line").trim().to_string();
        // The postmaster's children, from /proc (field 4 of `stat` is the parent's pid).
        let children: Vec<String> = std::fs::read_dir("/proc")
            .expect("/proc")
            .flatten()
            .filter_map(|entry| {
                let stat = std::fs::read_to_string(entry.path().join("stat")).ok()?;
                let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
                (fields.get(1) == Some(&pid.as_str())).then(|| entry.file_name().to_string_lossy().into_owned())
            })
            .collect();
        // The shell's own `kill`: procps may not be installed. The postmaster
        // must be there to kill; a backend may end on its own between the
        // listing and the kill, and that is no failure.
        let script = "kill -KILL \"$1\" || exit 1; shift; [ $# -eq 0 ] || kill -KILL \"$@\" 2>/dev/null; exit 0";
        run(Command::new("sh").args(["-c", script, "sh"]).arg(&pid).args(&children), "kill the cluster");
    }

    /// Runs one SQL statement with `psql` as `postgres`.
    pub fn sql(&self, statement: &str) -> String {
        let output = run(
            Command::new(server_binaries().join("psql"))
                .args(["-h", "127.0.0.1", "-p", &self.port.to_string(), "-U", "postgres", "-d", "postgres", "-Atc"])
                .arg(statement),
            "psql",
        );
        String::from_utf8_lossy(&output.stdout).trim().to_string()
    }

    /// `host:port` of the server.
    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// A URL for `database` as `postgres`.
    pub fn url(&self, database: &str) -> String {
        format!("postgres://postgres@{}/{database}", self.address())
    }

    pub fn data_dir(&self) -> &Path {
        &self.data
    }

    /// Leaves the cluster running past this process: a watchdog stops and
    /// removes it once the process has exited (a test binary's statics are
    /// never dropped).
    #[expect(
        clippy::zombie_processes,
        reason = "the watchdog outlives this process by design: it cannot be waited for"
    )]
    fn outlive_with_watchdog(mut self) {
        let dir = self.dir.take().expect("a data directory").keep();
        // Paths go in as arguments, never into the script's text.
        let script =
            r#"while [ -d "/proc/$1" ]; do sleep 1; done; "$2" -D "$3" -m immediate stop >/dev/null 2>&1; rm -rf "$4""#;
        let mut command = if running_as_root() {
            let mut command = Command::new("runuser");
            command.args(["-u", "postgres", "--", "sh", "-c", script, "watchdog"]);
            command
        } else {
            let mut command = Command::new("sh");
            command.args(["-c", script, "watchdog"]);
            command
        };
        command.arg(std::process::id().to_string()).arg(server_binaries().join("pg_ctl")).arg(&self.data).arg(&dir);
        std::os::unix::process::CommandExt::process_group(&mut command, 0);
        command.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null()).spawn().expect("start the watchdog");
        std::mem::forget(self);
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = self.pg_ctl(&["-m", "immediate", "stop"]).stdout(Stdio::null()).stderr(Stdio::null()).status();
    }
}

/// The admin URL of the server the PostgreSQL tests create their databases
/// on: `VENTANA_TEST_POSTGRES_URL` when set, else a cluster this test
/// binary starts on first use and shares.
pub fn shared_admin_url() -> &'static str {
    static URL: OnceLock<String> = OnceLock::new();
    URL.get_or_init(|| match std::env::var("VENTANA_TEST_POSTGRES_URL") {
        Ok(url) => url,
        Err(_) => {
            let cluster = Cluster::start_new();
            let url = cluster.url("postgres");
            cluster.outlive_with_watchdog();
            url
        }
    })
}
