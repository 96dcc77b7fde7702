//! A PostgreSQL cluster of a test's own (`initdb` + `pg_ctl` in a temporary directory), for
//! the tests that restart or crash the database: the machine's own database is never touched.

use std::path::{Path, PathBuf};
use std::process::Command;

/// A running cluster; stopped (immediately) and removed on drop.
pub struct TestCluster {
    /// `postgres://postgres@127.0.0.1:PORT/postgres`.
    pub url: String,
    /// The port it listens on (loopback only).
    pub port: u16,
    bin: PathBuf,
    dir: tempfile::TempDir,
}

/// The directory of PostgreSQL's server programs (`pg_config --bindir`, else the newest
/// `/usr/lib/postgresql/*/bin`).
fn bindir() -> PathBuf {
    if let Ok(out) = Command::new("pg_config").arg("--bindir").output()
        && out.status.success()
    {
        let p = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        if p.join("initdb").exists() {
            return p;
        }
    }
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path().join("bin"))
        .filter(|p| p.join("initdb").exists())
        .collect();
    found.sort();
    found
        .pop()
        .expect("PostgreSQL's server programs (initdb, pg_ctl) are installed")
}

/// Whether this process runs as root (PostgreSQL refuses to: its programs then run as the
/// `postgres` user).
fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// `program args…`, as the `postgres` user when this process is root.
fn run(bin: &Path, program: &str, args: &[&str]) -> std::process::Output {
    let exe = bin.join(program);
    let mut cmd = if is_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(&exe);
        c
    } else {
        Command::new(&exe)
    };
    cmd.args(args)
        .output()
        .unwrap_or_else(|e| panic!("run {program}: {e}"))
}

impl TestCluster {
    /// Creates and starts a cluster on a free loopback port.
    pub fn start() -> TestCluster {
        let bin = bindir();
        let dir = tempfile::Builder::new()
            .prefix("queuemgr-pg-")
            .tempdir()
            .expect("a temporary directory");
        if is_root() {
            let ok = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(dir.path())
                .status()
                .is_ok_and(|s| s.success());
            assert!(ok, "chown the cluster's directory to postgres");
        }
        let data = dir.path().join("data");
        let data_s = data.to_string_lossy().to_string();
        let out = run(
            &bin,
            "initdb",
            &[
                "-D",
                &data_s,
                "-A",
                "trust",
                "-U",
                "postgres",
                "--no-sync",
                "-E",
                "UTF8",
            ],
        );
        assert!(
            out.status.success(),
            "initdb: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let c = TestCluster {
            url: format!("postgres://postgres@127.0.0.1:{port}/postgres"),
            port,
            bin,
            dir,
        };
        c.ctl(&["start"]);
        c
    }

    fn ctl(&self, action: &[&str]) {
        let data = self.dir.path().join("data").to_string_lossy().to_string();
        let log = self.dir.path().join("log").to_string_lossy().to_string();
        let sock = self.dir.path().to_string_lossy().to_string();
        // fsync off: a crash of the server's processes (what these tests do) loses nothing
        // that the kernel holds; only a crash of the machine would.
        let opts = format!(
            "-p {} -k {sock} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=100",
            self.port
        );
        let mut args = vec!["-D", data.as_str(), "-l", log.as_str(), "-o", opts.as_str()];
        args.extend_from_slice(action);
        args.extend_from_slice(&["-w", "-t", "60"]);
        let out = run(&self.bin, "pg_ctl", &args);
        assert!(
            out.status.success(),
            "pg_ctl {action:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Crash-restarts the server (`pg_ctl restart -m immediate`: every process is killed, and
    /// the server recovers from its WAL), and waits until it takes connections again.
    pub fn crash_restart(&self) {
        self.ctl(&["restart", "-m", "immediate"]);
    }
}

impl Drop for TestCluster {
    fn drop(&mut self) {
        let data = self.dir.path().join("data").to_string_lossy().to_string();
        let _ = run(
            &self.bin,
            "pg_ctl",
            &["-D", &data, "stop", "-m", "immediate", "-w", "-t", "30"],
        );
    }
}
