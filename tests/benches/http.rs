//! Queue service benchmarks: a real `queuemgr serve` process on loopback, driven over HTTP.
//!
//! `cargo bench -p queuemgr-tests --bench http` prints a markdown table of:
//! 1. trivial jobs (`noop`) over HTTP: add + start + poll `get_status` until COMPLETED, with 4
//!    and with 64 clients, each looping for a fixed time after a warm-up: jobs/s;
//! 2. `get_status` over HTTP: 1 client, p50/p99 over sequential requests; 8 clients, req/s;
//! 3. restart with 1,000,000 COMPLETED jobs in the registry: spawn → listening line → `GET
//!    /health` answered, and the server's RSS;
//! 4. context: `fdatasync` latency of the disk the registry lives on;
//! 5. batches: `add_jobs` with `start: true`, 10,000 noop jobs per request, from the first
//!    request to the last job COMPLETED and durable (`--only=batch`);
//! 6. one job at a time: add with `start: true`, poll until COMPLETED, p50/p99
//!    (`--only=single`).
//!
//! Each scenario gets a fresh server (its own temporary directory, registry and jobs). The
//! load generator is in this process: by default a minimal HTTP/1.1 client over one keep-alive
//! TCP connection per simulated client (a request is one `write`, a response is parsed by its
//! `Content-Length`; the jobs loop checks an answer's bytes without building a JSON tree), so
//! that the client costs as little CPU as possible on a machine it shares
//! with the server. `--client=reqwest` uses one `reqwest::Client` per simulated client instead.
//! Both the server's and this process's CPU time are reported, so the split is visible.
//!
//! Options (after `--`, or as environment variables):
//! - `--quick` / `QUEUEMGR_BENCH_QUICK=1`: short runs and a small registry, to check that the
//!   benchmark works; the figures are then not the real ones.
//! - `--only=jobs,batch,single,status,restart,fsync` / `QUEUEMGR_BENCH_ONLY=…`: run some sections only.
//! - `--secs=N` / `QUEUEMGR_BENCH_SECS=N`: measured seconds per throughput run (default 10, after
//!   a 2 s warm-up).
//! - `--restart-jobs=N` / `QUEUEMGR_BENCH_RESTART_JOBS=N`: jobs in the registry (default 1,000,000).
//! - `--client=raw|reqwest` / `QUEUEMGR_BENCH_CLIENT=…`: the load generator's HTTP client.
//! - `--clients=4,64` / `QUEUEMGR_BENCH_CLIENTS=…`: the client counts of the jobs section.
//! - `--client-threads=N` / `QUEUEMGR_BENCH_CLIENT_THREADS=N`: the load generator's threads
//!   (default: one per core; 1 runs every simulated client on one event loop).
//! - `--server-args="--job-threads 1"` / `QUEUEMGR_BENCH_SERVER_ARGS=…`: more flags for every
//!   server the benchmark starts (to try settings; the figures in docs/benchmarks.md use none).
//! - `QUEUEMGR_BENCH_PG=postgres://…`: run every server on PostgreSQL (a schema each, dropped
//!   at the end) instead of a JSONL registry; PostgreSQL then shares the two cores.
//! - `QUEUEMGR_BENCH_SERVER_BIN=path`: the server binary to run instead of this package's
//!   `queuemgr-e2e-server` (to compare two builds in alternating runs on one machine).
//!
//! Before each section the benchmark waits while another benchmark (a process whose name
//! starts with `runtime-`) runs on the machine. Progress goes to stderr; the table to stdout.

use queuemgr::registry::{Event, JobRecord, Status};
use serde_json::{Value, json};
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The original (queuemgr 1.0.25 behind mcp-proxy-adapter 8.11.7), measured on loopback.
const PY_JOBS_PER_SEC: f64 = 10.6;
const PY_STATUS_P50: Duration = Duration::from_micros(2900);
const PY_STATUS_P99: Duration = Duration::from_micros(6300);
const PY_STATUS_RPS: f64 = 330.0;

const WARM_UP: Duration = Duration::from_secs(2);

#[derive(Clone, Copy, PartialEq, Eq)]
enum ClientKind {
    Raw,
    Reqwest,
}

impl ClientKind {
    fn name(self) -> &'static str {
        match self {
            ClientKind::Raw => "raw HTTP/1.1 keep-alive",
            ClientKind::Reqwest => "reqwest keep-alive",
        }
    }
}

struct Opts {
    quick: bool,
    only: Option<Vec<String>>,
    secs: u64,
    restart_jobs: usize,
    client: ClientKind,
    job_clients: Vec<usize>,
    server_args: Vec<String>,
    client_threads: Option<usize>,
}

impl Opts {
    fn parse() -> Opts {
        let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        let mut quick = env("QUEUEMGR_BENCH_QUICK").is_some_and(|v| v != "0");
        let mut only = env("QUEUEMGR_BENCH_ONLY");
        let mut secs = env("QUEUEMGR_BENCH_SECS");
        let mut restart = env("QUEUEMGR_BENCH_RESTART_JOBS");
        let mut client = env("QUEUEMGR_BENCH_CLIENT");
        let mut clients = env("QUEUEMGR_BENCH_CLIENTS");
        let mut server_args = env("QUEUEMGR_BENCH_SERVER_ARGS");
        let mut client_threads = env("QUEUEMGR_BENCH_CLIENT_THREADS");
        for arg in std::env::args().skip(1) {
            if arg == "--quick" {
                quick = true;
            } else if let Some(v) = arg.strip_prefix("--only=") {
                only = Some(v.to_string());
            } else if let Some(v) = arg.strip_prefix("--secs=") {
                secs = Some(v.to_string());
            } else if let Some(v) = arg.strip_prefix("--restart-jobs=") {
                restart = Some(v.to_string());
            } else if let Some(v) = arg.strip_prefix("--client=") {
                client = Some(v.to_string());
            } else if let Some(v) = arg.strip_prefix("--clients=") {
                clients = Some(v.to_string());
            } else if let Some(v) = arg.strip_prefix("--client-threads=") {
                client_threads = Some(v.to_string());
            } else if let Some(v) = arg.strip_prefix("--server-args=") {
                server_args = Some(v.to_string());
            } else if arg == "--bench" {
                // cargo bench passes this to every harness = false target.
            } else {
                eprintln!("ignoring unknown argument {arg:?}");
            }
        }
        let client = match client.as_deref() {
            None | Some("raw") => ClientKind::Raw,
            Some("reqwest") => ClientKind::Reqwest,
            Some(other) => panic!("--client takes raw or reqwest, not {other:?}"),
        };
        Opts {
            quick,
            only: only.map(|s| s.split(',').map(|p| p.trim().to_string()).collect()),
            secs: secs.map_or(if quick { 2 } else { 10 }, |s| {
                s.parse().expect("--secs takes a number")
            }),
            restart_jobs: restart.map_or(if quick { 50_000 } else { 1_000_000 }, |s| {
                s.replace('_', "")
                    .parse()
                    .expect("--restart-jobs takes a number")
            }),
            client,
            job_clients: clients.map_or(vec![4, 64], |s| {
                s.split(',')
                    .map(|n| n.trim().parse().expect("--clients takes numbers"))
                    .collect()
            }),
            server_args: server_args
                .map(|s| s.split_whitespace().map(str::to_string).collect())
                .unwrap_or_default(),
            client_threads: client_threads
                .map(|s| s.parse().expect("--client-threads takes a number")),
        }
    }

    fn wants(&self, section: &str) -> bool {
        self.only
            .as_ref()
            .is_none_or(|o| o.iter().any(|s| s == section))
    }
}

/// One line of the result table.
struct Row {
    figure: String,
    measured: String,
    target: String,
    met: &'static str,
    vs_original: String,
}

fn met(ok: bool) -> &'static str {
    if ok { "yes" } else { "**NO**" }
}

fn ratio(x: f64) -> String {
    if x >= 100.0 {
        format!("{x:.0}×")
    } else {
        format!("{x:.1}×")
    }
}

fn ms(d: Duration) -> String {
    format!("{:.3} ms", d.as_secs_f64() * 1e3)
}

/// Sorted samples.
struct Samples(Vec<Duration>);

impl Samples {
    fn new(mut v: Vec<Duration>) -> Samples {
        v.sort_unstable();
        Samples(v)
    }
    /// Nearest-rank percentile, `p` in 0..=100.
    fn pct(&self, p: f64) -> Duration {
        let n = self.0.len();
        if n == 0 {
            return Duration::ZERO;
        }
        let rank = ((p / 100.0) * n as f64).ceil() as usize;
        self.0[rank.clamp(1, n) - 1]
    }
    fn max(&self) -> Duration {
        self.0.last().copied().unwrap_or_default()
    }
}

// ---------------------------------------------------------------------------------------------
// CPU accounting from /proc.

/// Clock ticks per second of /proc's CPU times (USER_HZ, 100 on Linux).
const HZ: f64 = 100.0;

/// utime + stime of a process, in ticks.
fn proc_ticks(pid: &str) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // The command name (field 2) may hold spaces: count fields after its closing parenthesis.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = rest.split_whitespace().collect();
    let get = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    // After ")": state is field 3, so utime (14) and stime (15) are at 11 and 12.
    get(11) + get(12)
}

/// Busy ticks of the whole machine (all CPUs).
fn machine_busy_ticks() -> u64 {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let Some(line) = stat.lines().next() else {
        return 0;
    };
    let v: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal …: busy is all but idle and iowait.
    v.iter().sum::<u64>() - v.get(3).copied().unwrap_or(0) - v.get(4).copied().unwrap_or(0)
}

fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// CPU used during a window by the server, by this process, and by everything else, as a
/// percentage of one core (the machine has `cores()` × 100 %).
#[derive(Clone, Copy)]
struct CpuSplit {
    server: f64,
    client: f64,
    other: f64,
}

struct CpuMark {
    server: u64,
    client: u64,
    busy: u64,
    at: Instant,
}

impl CpuMark {
    fn now(server_pid: u32) -> CpuMark {
        CpuMark {
            server: proc_ticks(&server_pid.to_string()),
            client: proc_ticks("self"),
            busy: machine_busy_ticks(),
            at: Instant::now(),
        }
    }
    fn since(&self, server_pid: u32) -> CpuSplit {
        let end = CpuMark::now(server_pid);
        let wall = end.at.duration_since(self.at).as_secs_f64();
        let pct = |ticks: u64| ticks as f64 / HZ / wall * 100.0;
        let server = end.server - self.server;
        let client = end.client - self.client;
        let busy = end.busy - self.busy;
        CpuSplit {
            server: pct(server),
            client: pct(client),
            other: pct(busy.saturating_sub(server + client)),
        }
    }
}

impl std::fmt::Display for CpuSplit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "server {:.0} %, load generator {:.0} %, other {:.0} % (of {} %)",
            self.server,
            self.client,
            self.other,
            cores() * 100
        )
    }
}

/// A line of `/proc/<pid>/status`, e.g. `VmRSS`, in MiB.
fn proc_status_mib(pid: u32, key: &str) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
        .map_or(0.0, |kib| kib / 1024.0)
}

/// Waits while another benchmark (a process named `runtime-…`, the runtime benchmark's
/// binary) runs: both would share the machine's two cores. Then waits (at most two minutes)
/// for the rest of the machine to be nearly idle, and says so if it never was.
fn wait_for_quiet_machine() {
    let mut announced = false;
    loop {
        let busy = std::fs::read_dir("/proc")
            .into_iter()
            .flatten()
            .flatten()
            .filter(|e| {
                e.file_name()
                    .to_string_lossy()
                    .bytes()
                    .all(|b| b.is_ascii_digit())
            })
            .filter_map(|e| std::fs::read_to_string(e.path().join("comm")).ok())
            .find(|comm| comm.starts_with("runtime-"));
        match busy {
            None => break,
            Some(comm) => {
                if !announced {
                    eprintln!(
                        "waiting: another benchmark ({}) is running on this machine",
                        comm.trim()
                    );
                    announced = true;
                }
                std::thread::sleep(Duration::from_secs(5));
            }
        }
    }
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let (busy, own, at) = (machine_busy_ticks(), proc_ticks("self"), Instant::now());
        std::thread::sleep(Duration::from_secs(2));
        let other = (machine_busy_ticks() - busy).saturating_sub(proc_ticks("self") - own);
        let pct = other as f64 / HZ / at.elapsed().as_secs_f64() * 100.0;
        if pct < 20.0 {
            return;
        }
        if Instant::now() >= deadline {
            eprintln!(
                "warning: other processes keep using {pct:.0} % of a core: figures may be low"
            );
            return;
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The server under test.

struct Server {
    child: Child,
    addr: String,
    _dir: tempfile::TempDir,
    /// When the process was spawned.
    spawned: Instant,
    /// From spawn to the "listening" line.
    ready_after: Duration,
}

impl Server {
    /// Starts `queuemgr serve` on an ephemeral port with the example jobs; `registry` (if
    /// given) is moved in as its registry first.
    fn start(extra: &[String], registry: Option<&Path>) -> Server {
        let dir = tempfile::tempdir().expect("tempdir");
        let jobs = dir.path().join("jobs");
        queuemgr_tests::copy_example_jobs(&jobs).expect("copy example jobs");
        let reg = dir.path().join("registry.jsonl");
        if let Some(src) = registry {
            std::fs::rename(src, &reg)
                .or_else(|_| std::fs::copy(src, &reg).map(|_| ()))
                .expect("registry in place");
        }
        // Compiled job code depends only on the bytes: share it between the bench's servers.
        let cache = queuemgr_tests::example_jobs_dir().join("../bench-code-cache");
        let log = std::fs::File::create(dir.path().join("server.log")).expect("log file");
        let spawned = Instant::now();
        let bin = std::env::var_os("QUEUEMGR_BENCH_SERVER_BIN").map_or_else(
            || PathBuf::from(env!("CARGO_BIN_EXE_queuemgr-e2e-server")),
            PathBuf::from,
        );
        let mut pg_args: Vec<String> = Vec::new();
        if let Some(url) = pg_url() {
            static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
            let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            pg_args = vec![
                "--store".into(),
                url,
                "--store-schema".into(),
                format!("{}{n}", pg_prefix()),
            ];
        }
        let mut child = Command::new(bin)
            .arg("serve")
            .args(["--listen", "127.0.0.1:0"])
            .arg("--jobs-dir")
            .arg(&jobs)
            .arg("--registry")
            .arg(&reg)
            .arg("--cache-dir")
            .arg(cache)
            .args(["--default-job-type", "my_job"])
            .args(extra)
            .args(&pg_args)
            .env("QUEUEMGR_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .expect("spawn queuemgr");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
            {
                if let Some(url) = line.strip_prefix("queuemgr listening on http://") {
                    let _ = tx.send((url.to_string(), Instant::now()));
                }
            }
        });
        match rx.recv_timeout(Duration::from_secs(300)) {
            Ok((addr, at)) => Server {
                child,
                addr,
                spawned,
                ready_after: at.duration_since(spawned),
                _dir: dir,
            },
            Err(_) => {
                let _ = child.kill();
                let log =
                    std::fs::read_to_string(dir.path().join("server.log")).unwrap_or_default();
                panic!("queuemgr did not start; its log:\n{log}");
            }
        }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ---------------------------------------------------------------------------------------------
// The load generator's HTTP clients.

/// One keep-alive HTTP/1.1 connection: a request is one write of prepared bytes, a response is
/// read by its `Content-Length`.
struct RawConn {
    stream: TcpStream,
    host: String,
    buf: Vec<u8>,
    req: Vec<u8>,
}

impl RawConn {
    async fn connect(addr: &str) -> RawConn {
        let stream = TcpStream::connect(addr).await.expect("connect");
        stream.set_nodelay(true).expect("nodelay");
        RawConn {
            stream,
            host: addr.to_string(),
            buf: Vec::with_capacity(8192),
            req: Vec::with_capacity(1024),
        }
    }

    async fn request(&mut self, method: &str, path: &str, body: &[u8]) -> (u16, Vec<u8>) {
        self.req.clear();
        write!(
            self.req,
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            self.host,
            body.len()
        )
        .expect("write to a Vec");
        self.req.extend_from_slice(body);
        self.stream.write_all(&self.req).await.expect("send");
        self.read_response().await
    }

    async fn read_response(&mut self) -> (u16, Vec<u8>) {
        let head_end = loop {
            if let Some(i) = find(&self.buf, b"\r\n\r\n") {
                break i + 4;
            }
            self.fill().await;
        };
        let head = std::str::from_utf8(&self.buf[..head_end]).expect("ASCII head");
        let status: u16 = head
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .expect("status line");
        let mut len = None;
        for line in head.split("\r\n").skip(1) {
            if let Some((k, v)) = line.split_once(':') {
                if k.eq_ignore_ascii_case("content-length") {
                    len = v.trim().parse::<usize>().ok();
                } else if k.eq_ignore_ascii_case("transfer-encoding") {
                    panic!("chunked responses are not expected here: {head}");
                }
            }
        }
        let len = len.expect("Content-Length");
        while self.buf.len() < head_end + len {
            self.fill().await;
        }
        let body = self.buf[head_end..head_end + len].to_vec();
        self.buf.drain(..head_end + len);
        (status, body)
    }

    async fn fill(&mut self) {
        let mut chunk = [0u8; 16 * 1024];
        let n = self.stream.read(&mut chunk).await.expect("read");
        assert!(n > 0, "the server closed the connection");
        self.buf.extend_from_slice(&chunk[..n]);
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

enum Client {
    Raw(RawConn),
    Reqwest(reqwest::Client, String),
}

impl Client {
    async fn connect(kind: ClientKind, addr: &str) -> Client {
        match kind {
            ClientKind::Raw => Client::Raw(RawConn::connect(addr).await),
            ClientKind::Reqwest => Client::Reqwest(
                reqwest::Client::builder()
                    .pool_max_idle_per_host(1)
                    .tcp_nodelay(true)
                    .build()
                    .expect("reqwest client"),
                format!("http://{addr}"),
            ),
        }
    }

    async fn post(&mut self, path: &str, body: &[u8]) -> (u16, Vec<u8>) {
        match self {
            Client::Raw(c) => c.request("POST", path, body).await,
            Client::Reqwest(c, base) => {
                let r = c
                    .post(format!("{base}{path}"))
                    .header("content-type", "application/json")
                    .body(body.to_vec())
                    .send()
                    .await
                    .expect("send");
                let status = r.status().as_u16();
                (status, r.bytes().await.expect("body").to_vec())
            }
        }
    }

    async fn get(&mut self, path: &str) -> (u16, Vec<u8>) {
        match self {
            Client::Raw(c) => c.request("GET", path, b"").await,
            Client::Reqwest(c, base) => {
                let r = c.get(format!("{base}{path}")).send().await.expect("send");
                let status = r.status().as_u16();
                (status, r.bytes().await.expect("body").to_vec())
            }
        }
    }

    /// Runs one `queue` action; panics unless it succeeded. Returns `result.data`.
    async fn queue(&mut self, body: &[u8]) -> Value {
        let (status, bytes) = self.post("/api/v1/execute", body).await;
        let mut v: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        if status != 200 || v["result"]["success"] != json!(true) {
            panic!(
                "queue call failed: HTTP {status}: {}\nrequest: {}",
                String::from_utf8_lossy(&bytes),
                String::from_utf8_lossy(body)
            );
        }
        v["result"]["data"].take()
    }

    /// Runs one `queue` action and returns its raw body; panics unless HTTP 200 and
    /// `"success":true`. For the throughput loop: no JSON tree is built per response.
    async fn queue_bytes(&mut self, body: &[u8]) -> Vec<u8> {
        let (status, bytes) = self.post("/api/v1/execute", body).await;
        if status != 200 || find(&bytes, b"\"success\":true").is_none() {
            panic!(
                "queue call failed: HTTP {status}: {}\nrequest: {}",
                String::from_utf8_lossy(&bytes),
                String::from_utf8_lossy(body)
            );
        }
        bytes
    }
}

fn action(action: &str, job_id: &str) -> Vec<u8> {
    serde_json::to_vec(&json!({"command": "queue", "params": {"action": action, "job_id": job_id}}))
        .expect("json")
}

fn add_noop(job_id: &str) -> Vec<u8> {
    serde_json::to_vec(&json!({"command": "queue", "params": {
        "action": "add_job", "job_id": job_id, "job_type": "noop", "params": {}}}))
    .expect("json")
}

/// The registry counters `GET /health` reports: (records appended, syncs).
async fn registry_counters(c: &mut Client) -> (u64, u64) {
    let (_, body) = c.get("/health").await;
    let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let reg = &v["components"]["queue"]["registry"];
    (
        reg["appended"].as_u64().unwrap_or(0),
        reg["syncs"].as_u64().unwrap_or(0),
    )
}

// ---------------------------------------------------------------------------------------------
// 1. Trivial jobs over HTTP.

#[derive(Default)]
struct JobsTally {
    jobs: u64,
    polls: u64,
    latencies: Vec<Duration>,
}

/// One simulated client: add + start + poll until COMPLETED, in a loop, until `until`. Counts
/// the jobs that completed inside `[from, until)`.
async fn job_client(
    kind: ClientKind,
    addr: String,
    n: usize,
    from: Instant,
    until: Instant,
) -> JobsTally {
    let mut c = Client::connect(kind, &addr).await;
    let mut t = JobsTally::default();
    let mut i = 0u64;
    while Instant::now() < until {
        i += 1;
        let id = format!("c{n}-{i}");
        let begun = Instant::now();
        c.queue_bytes(&add_noop(&id)).await;
        c.queue_bytes(&action("start_job", &id)).await;
        let poll = action("get_status", &id);
        let mut polls = 0;
        loop {
            polls += 1;
            let body = c.queue_bytes(&poll).await;
            // The job's status is the only `"status":"…"` string in a get_status answer.
            if find(&body, b"\"status\":\"COMPLETED\"").is_some() {
                break;
            }
            if find(&body, b"\"status\":\"PENDING\"").is_none()
                && find(&body, b"\"status\":\"RUNNING\"").is_none()
            {
                panic!(
                    "job {id} ended otherwise: {}",
                    String::from_utf8_lossy(&body)
                );
            }
        }
        let done = Instant::now();
        if done >= from && done < until {
            t.jobs += 1;
            t.polls += polls;
            t.latencies.push(done - begun);
        }
    }
    t
}

async fn bench_jobs(opts: &Opts, clients: usize, rows: &mut Vec<Row>, notes: &mut Vec<String>) {
    wait_for_quiet_machine();
    let mut extra = vec![
        "--max-concurrent-jobs".to_string(),
        clients.max(64).to_string(),
    ];
    extra.extend(opts.server_args.iter().cloned());
    let server = Server::start(&extra, None);
    let pid = server.pid();
    let mut probe = Client::connect(ClientKind::Raw, &server.addr).await;
    let secs = Duration::from_secs(opts.secs);
    let start = Instant::now();
    let from = start + WARM_UP;
    let until = from + secs;
    let tasks: Vec<_> = (0..clients)
        .map(|n| tokio::spawn(job_client(opts.client, server.addr.clone(), n, from, until)))
        .collect();
    tokio::time::sleep_until(from.into()).await;
    let cpu = CpuMark::now(pid);
    let reg_before = registry_counters(&mut probe).await;
    tokio::time::sleep_until(until.into()).await;
    let split = cpu.since(pid);
    let reg_after = registry_counters(&mut probe).await;
    let mut total = JobsTally::default();
    for t in tasks {
        let t = t.await.expect("client task");
        total.jobs += t.jobs;
        total.polls += t.polls;
        total.latencies.extend(t.latencies);
    }
    let rss = proc_status_mib(pid, "VmRSS");
    let rate = total.jobs as f64 / secs.as_secs_f64();
    let lat = Samples::new(std::mem::take(&mut total.latencies));
    let appended = reg_after.0 - reg_before.0;
    let syncs = (reg_after.1 - reg_before.1).max(1);
    let target = if clients >= 64 { 10_000.0 } else { 1_000.0 };
    eprintln!(
        "jobs, {clients} clients: {rate:.0} jobs/s ({} jobs in {secs:?}); per job {:.2} polls; \
         job latency p50 {} p99 {}; registry {} records in {} syncs ({:.1} per sync); \
         CPU {split}; server RSS {rss:.0} MiB",
        total.jobs,
        total.polls as f64 / total.jobs.max(1) as f64,
        ms(lat.pct(50.0)),
        ms(lat.pct(99.0)),
        appended,
        syncs,
        appended as f64 / syncs as f64,
    );
    rows.push(Row {
        figure: format!("noop job over HTTP (add + start + poll to COMPLETED), {clients} clients"),
        measured: format!("{rate:.0} jobs/s"),
        target: format!("≥ {target:.0} jobs/s"),
        met: met(rate >= target),
        vs_original: ratio(rate / PY_JOBS_PER_SEC),
    });
    notes.push(format!(
        "{clients} clients: {:.2} get_status polls per job, job latency p50 {} / p99 {}, \
         {:.1} registry records per fdatasync, CPU {split}, server RSS after {rss:.0} MiB",
        total.polls as f64 / total.jobs.max(1) as f64,
        ms(lat.pct(50.0)),
        ms(lat.pct(99.0)),
        appended as f64 / syncs as f64,
    ));
}

// ---------------------------------------------------------------------------------------------
// 1b. Batches: `add_jobs` with `start: true`, 10,000 trivial jobs per request.

async fn completed_jobs(c: &mut Client) -> u64 {
    let (_, body) = c.get("/health").await;
    let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    v["components"]["queue"]["completed_jobs"]
        .as_u64()
        .unwrap_or(0)
}

async fn bench_batch(opts: &Opts, rows: &mut Vec<Row>, notes: &mut Vec<String>) {
    wait_for_quiet_machine();
    let server = Server::start(&opts.server_args, None);
    let pid = server.pid();
    let mut c = Client::connect(ClientKind::Raw, &server.addr).await;
    let mut probe = Client::connect(ClientKind::Raw, &server.addr).await;
    let per = 10_000usize;
    let requests = if opts.quick { 2 } else { 10 };
    let bodies: Vec<Vec<u8>> = (0..requests)
        .map(|r| {
            let jobs: Vec<Value> = (0..per)
                .map(|i| json!({"job_id": format!("b{r}-{i}"), "job_type": "noop", "params": {}}))
                .collect();
            serde_json::to_vec(&json!({"command": "queue", "params": {"action": "add_jobs", "start": true, "jobs": jobs}}))
                .expect("json")
        })
        .collect();
    let total = (per * requests) as u64;
    let cpu = CpuMark::now(pid);
    let reg_before = registry_counters(&mut probe).await;
    let begun = Instant::now();
    let mut acked = Duration::ZERO;
    for b in &bodies {
        c.queue_bytes(b).await;
        acked = begun.elapsed();
    }
    // Counts are of durable state: COMPLETED here means COMPLETED and synced.
    while completed_jobs(&mut probe).await < total {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let took = begun.elapsed();
    let split = cpu.since(pid);
    let reg_after = registry_counters(&mut probe).await;
    let rate = total as f64 / took.as_secs_f64();
    let appended = reg_after.0 - reg_before.0;
    let syncs = (reg_after.1 - reg_before.1).max(1);
    eprintln!(
        "add_jobs start:true, {requests} × {per}: {rate:.0} jobs/s ({total} jobs in {took:?}; all \
         acknowledged after {acked:?}); {appended} records in {syncs} syncs; CPU {split}"
    );
    rows.push(Row {
        figure: format!("`add_jobs` + `start: true`, {per} noop jobs per request, first request → last job COMPLETED and durable"),
        measured: format!("{rate:.0} jobs/s"),
        target: "≥ 50,000 jobs/s".into(),
        met: met(rate >= 50_000.0),
        vs_original: ratio(rate / PY_JOBS_PER_SEC),
    });
    notes.push(format!(
        "add_jobs: {total} jobs in {requests} requests, all acknowledged after {acked:?}, all \
         COMPLETED after {took:?}; {:.1} records per fdatasync; CPU {split}",
        appended as f64 / syncs as f64
    ));
}

// ---------------------------------------------------------------------------------------------
// 1c. One job at a time: add with `start: true`, poll until COMPLETED.

async fn bench_single(opts: &Opts, rows: &mut Vec<Row>, notes: &mut Vec<String>) {
    wait_for_quiet_machine();
    let server = Server::start(&opts.server_args, None);
    let mut c = Client::connect(ClientKind::Raw, &server.addr).await;
    let n = if opts.quick { 200 } else { 3_000 };
    let mut lat = Vec::with_capacity(n);
    let mut polls = 0u64;
    for i in 0..n + n / 10 {
        let id = format!("one-{i}");
        let add = serde_json::to_vec(&json!({"command": "queue", "params": {
            "action": "add_job", "job_id": id, "job_type": "noop", "params": {}, "start": true}}))
        .expect("json");
        let poll = action("get_status", &id);
        let t = Instant::now();
        c.queue_bytes(&add).await;
        loop {
            polls += 1;
            let body = c.queue_bytes(&poll).await;
            if find(&body, b"\"status\":\"COMPLETED\"").is_some() {
                break;
            }
        }
        if i >= n / 10 {
            lat.push(t.elapsed());
        }
    }
    let lat = Samples::new(lat);
    eprintln!(
        "one job at a time: p50 {} p99 {} ({:.2} polls per job)",
        ms(lat.pct(50.0)),
        ms(lat.pct(99.0)),
        polls as f64 / (n + n / 10) as f64
    );
    rows.push(Row {
        figure: "one job at a time: add with `start: true` → COMPLETED seen over HTTP, p50".into(),
        measured: ms(lat.pct(50.0)),
        target: "≤ 1 ms".into(),
        met: met(lat.pct(50.0) <= Duration::from_millis(1)),
        vs_original: "—".into(),
    });
    notes.push(format!(
        "one job at a time: p50 {} / p99 {}, {:.2} get_status polls per job",
        ms(lat.pct(50.0)),
        ms(lat.pct(99.0)),
        polls as f64 / (n + n / 10) as f64
    ));
}

// ---------------------------------------------------------------------------------------------
// 2. get_status over HTTP.

async fn bench_status(opts: &Opts, rows: &mut Vec<Row>, notes: &mut Vec<String>) {
    wait_for_quiet_machine();
    let server = Server::start(&opts.server_args, None);
    let pid = server.pid();
    let mut c = Client::connect(opts.client, &server.addr).await;
    // A finished job with a realistic record to read.
    c.queue(&add_noop("status-job")).await;
    c.queue(&action("start_job", "status-job")).await;
    let poll = action("get_status", "status-job");
    while c.queue(&poll).await["status"]["status"] != "COMPLETED" {}

    // Sequential latency, one client.
    let n = if opts.quick { 2_000 } else { 20_000 };
    for _ in 0..n / 10 {
        let _ = c.post("/api/v1/execute", &poll).await;
    }
    let cpu = CpuMark::now(pid);
    let mut lat = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        let (status, body) = c.post("/api/v1/execute", &poll).await;
        lat.push(t.elapsed());
        assert!(status == 200 && find(&body, b"\"success\":true").is_some());
    }
    let split1 = cpu.since(pid);
    let lat = Samples::new(lat);
    let (p50, p99, p999, max) = (lat.pct(50.0), lat.pct(99.0), lat.pct(99.9), lat.max());
    eprintln!(
        "get_status, 1 client, {n} sequential: p50 {} p99 {} p99.9 {} max {}; CPU {split1}",
        ms(p50),
        ms(p99),
        ms(p999),
        ms(max)
    );
    rows.push(Row {
        figure: format!("get_status over HTTP, 1 client, p50 ({n} sequential)"),
        measured: ms(p50),
        target: "—".into(),
        met: "—",
        vs_original: format!(
            "{} faster (original {})",
            ratio(PY_STATUS_P50.as_secs_f64() / p50.as_secs_f64()),
            ms(PY_STATUS_P50)
        ),
    });
    rows.push(Row {
        figure: format!("get_status over HTTP, 1 client, p99 ({n} sequential)"),
        measured: ms(p99),
        target: "≤ 1 ms".into(),
        met: met(p99 <= Duration::from_millis(1)),
        vs_original: format!(
            "{} faster (original {})",
            ratio(PY_STATUS_P99.as_secs_f64() / p99.as_secs_f64()),
            ms(PY_STATUS_P99)
        ),
    });
    notes.push(format!(
        "get_status 1 client: p99.9 {}, max {}; CPU {split1}",
        ms(p999),
        ms(max)
    ));

    // Throughput, 8 clients.
    let clients = 8;
    let secs = Duration::from_secs(opts.secs);
    let start = Instant::now();
    let from = start + WARM_UP;
    let until = from + secs;
    let tasks: Vec<_> = (0..clients)
        .map(|_| {
            let addr = server.addr.clone();
            let poll = poll.clone();
            let kind = opts.client;
            tokio::spawn(async move {
                let mut c = Client::connect(kind, &addr).await;
                let mut count = 0u64;
                loop {
                    let (status, _) = c.post("/api/v1/execute", &poll).await;
                    assert_eq!(status, 200);
                    let now = Instant::now();
                    if now >= until {
                        return count;
                    }
                    if now >= from {
                        count += 1;
                    }
                }
            })
        })
        .collect();
    tokio::time::sleep_until(from.into()).await;
    let cpu = CpuMark::now(pid);
    tokio::time::sleep_until(until.into()).await;
    let split8 = cpu.since(pid);
    let mut total = 0;
    for t in tasks {
        total += t.await.expect("client task");
    }
    let rps = total as f64 / secs.as_secs_f64();
    eprintln!("get_status, {clients} clients: {rps:.0} req/s; CPU {split8}");
    rows.push(Row {
        figure: format!("get_status over HTTP, {clients} clients, throughput"),
        measured: format!("{rps:.0} req/s"),
        target: "≥ 30,000 req/s".into(),
        met: met(rps >= 30_000.0),
        vs_original: ratio(rps / PY_STATUS_RPS),
    });
    notes.push(format!("get_status {clients} clients: CPU {split8}"));
}

// ---------------------------------------------------------------------------------------------
// 3. Restart with a large registry.

/// Writes `n` COMPLETED jobs (one record each, as after compaction) to `path`.
fn write_registry(path: &Path, n: usize) -> u64 {
    let file = std::fs::File::create(path).expect("registry file");
    let mut w = std::io::BufWriter::with_capacity(1 << 20, file);
    let base = queuemgr::registry::now_micros() - n as i64 * 1_000;
    for i in 0..n {
        let created = base + i as i64 * 1_000;
        let task = format!("Process Data {i}");
        let rec = JobRecord {
            event: Event::Completed,
            job_id: format!("job-{i:07}"),
            job_type: "my_job".into(),
            status: Status::Completed,
            progress: 100,
            description: "step 3/3".into(),
            params: queuemgr::registry::Json::new(&json!({"task_name": task, "duration": 3})),
            result: Some(queuemgr::registry::Json::new(
                &json!({"task_name": task, "status": "completed"}),
            )),
            error: None,
            created_at: created,
            updated_at: created + 3_000_100,
            started_at: Some(created + 120),
            completed_at: Some(created + 3_000_100),
            runs: 1,
            ..JobRecord::default()
        };
        serde_json::to_writer(&mut w, &rec).expect("write record");
        w.write_all(b"\n").expect("write record");
    }
    w.flush().expect("flush");
    w.get_ref().sync_all().expect("sync");
    w.get_ref().metadata().map(|m| m.len()).unwrap_or(0)
}

async fn bench_restart(opts: &Opts, rows: &mut Vec<Row>, notes: &mut Vec<String>) {
    let n = opts.restart_jobs;
    let gen_dir = tempfile::tempdir().expect("tempdir");
    let reg = gen_dir.path().join("registry.jsonl");
    let t = Instant::now();
    let bytes = write_registry(&reg, n);
    eprintln!(
        "restart: wrote {n} records ({:.0} MiB) in {:.1} s",
        bytes as f64 / (1 << 20) as f64,
        t.elapsed().as_secs_f64()
    );
    wait_for_quiet_machine();
    // Cold page cache would measure the disk, not the host: the file was just written, so it
    // is in the cache, as it is for a host restarted in place.
    let server = Server::start(&opts.server_args, Some(&reg));
    let spawned = server.spawned;
    let listening = server.ready_after;
    let pid = server.pid();
    let mut c = Client::connect(ClientKind::Raw, &server.addr).await;
    let (status, body) = c.get("/health").await;
    let healthy = spawned.elapsed();
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let health: Value = serde_json::from_slice(&body).expect("health JSON");
    let total = health["components"]["queue"]["total_jobs"]
        .as_u64()
        .unwrap_or(0);
    assert_eq!(total, n as u64, "every job replayed");
    let data = c.queue(&action("get_status", "job-0000000")).await;
    assert_eq!(data["status"]["status"], "COMPLETED");
    let rss = proc_status_mib(pid, "VmRSS");
    let hwm = proc_status_mib(pid, "VmHWM");
    let server_cpu = proc_ticks(&pid.to_string()) as f64 / HZ;
    eprintln!(
        "restart with {n} jobs: listening after {}, /health answered after {}; \
         RSS {rss:.0} MiB (peak {hwm:.0} MiB); server CPU to get there {server_cpu:.2} s",
        ms(listening),
        ms(healthy)
    );
    // A full table: what a lookup and a health check cost now.
    let mut health_lat = Vec::new();
    for _ in 0..5 {
        let t = Instant::now();
        let (status, _) = c.get("/health").await;
        health_lat.push(t.elapsed());
        assert_eq!(status, 200);
    }
    let health_lat = Samples::new(health_lat);
    let mut lat = Vec::new();
    for i in 0..2_000 {
        let body = action("get_status", &format!("job-{:07}", (i * 7919) % n));
        let t = Instant::now();
        let (status, _) = c.post("/api/v1/execute", &body).await;
        lat.push(t.elapsed());
        assert_eq!(status, 200);
    }
    let lat = Samples::new(lat);
    eprintln!(
        "with {n} jobs: GET /health median {} (of 5); get_status p50 {} p99 {} (2,000 sequential)",
        ms(health_lat.pct(50.0)),
        ms(lat.pct(50.0)),
        ms(lat.pct(99.0))
    );
    let jobs = if n == 1_000_000 {
        "1,000,000".to_string()
    } else {
        n.to_string()
    };
    rows.push(Row {
        figure: format!("restart with {jobs} COMPLETED jobs: spawn → /health answered"),
        measured: format!("{:.2} s", healthy.as_secs_f64()),
        target: "≤ 2 s".into(),
        met: met(healthy <= Duration::from_secs(2)),
        vs_original: "— (the original restores no results)".into(),
    });
    rows.push(Row {
        figure: format!("server RSS with {jobs} jobs (after restart)"),
        measured: format!("{rss:.0} MiB (peak {hwm:.0} MiB)"),
        target: "—".into(),
        met: "—",
        vs_original: "—".into(),
    });
    notes.push(format!(
        "restart: registry {:.0} MiB; listening line after {}, /health after {}; \
         server CPU time {server_cpu:.2} s; {:.0} bytes of RSS per job; then GET /health \
         takes {} and get_status p50 {} / p99 {}",
        bytes as f64 / (1 << 20) as f64,
        ms(listening),
        ms(healthy),
        rss * (1 << 20) as f64 / n as f64,
        ms(health_lat.pct(50.0)),
        ms(lat.pct(50.0)),
        ms(lat.pct(99.0))
    ));
    drop(server);
}

// ---------------------------------------------------------------------------------------------
// 4. fdatasync on the registry's disk.

fn bench_fsync(opts: &Opts, rows: &mut Vec<Row>) {
    wait_for_quiet_machine();
    // The servers' temporary directories live here too.
    let dir = tempfile::tempdir().expect("tempdir");
    let path: PathBuf = dir.path().join("fsync.jsonl");
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .expect("open");
    let line = [b'x'; 299];
    let n = if opts.quick { 200 } else { 1_000 };
    let mut lat = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        f.write_all(&line).expect("write");
        f.write_all(b"\n").expect("write");
        f.sync_data().expect("fdatasync");
        lat.push(t.elapsed());
    }
    let lat = Samples::new(lat);
    eprintln!(
        "fdatasync ({n} × 300-byte append + sync_data) in {}: p50 {} p99 {} max {}",
        dir.path().display(),
        ms(lat.pct(50.0)),
        ms(lat.pct(99.0)),
        ms(lat.max())
    );
    rows.push(Row {
        figure: format!("context: 300-byte append + fdatasync on the registry's disk ({n}×)"),
        measured: format!("p50 {} / p99 {}", ms(lat.pct(50.0)), ms(lat.pct(99.0))),
        target: "—".into(),
        met: "—",
        vs_original: "—".into(),
    });
}

// ---------------------------------------------------------------------------------------------

/// `QUEUEMGR_BENCH_PG=postgres://…`: every server runs on PostgreSQL, each in a schema of its
/// own (dropped at the end) instead of a JSONL registry.
fn pg_url() -> Option<String> {
    std::env::var("QUEUEMGR_BENCH_PG")
        .ok()
        .filter(|s| !s.is_empty())
}

fn pg_prefix() -> String {
    format!("qmb{}_", std::process::id())
}

fn main() {
    let opts = Opts::parse();
    let rt = match opts.client_threads {
        Some(1) => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build(),
        Some(n) => tokio::runtime::Builder::new_multi_thread()
            .worker_threads(n.max(1))
            .enable_all()
            .build(),
        None => tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build(),
    }
    .expect("tokio runtime");
    eprintln!(
        "queuemgr HTTP benchmark{}; {} CPUs shared by the server and the load generator; \
         client: {} on {} thread(s)",
        if opts.quick {
            " (QUICK MODE: not the real figures)"
        } else {
            ""
        },
        cores(),
        opts.client.name(),
        opts.client_threads.unwrap_or_else(cores)
    );
    let mut rows = Vec::new();
    let mut notes = Vec::new();
    rt.block_on(async {
        if opts.wants("jobs") {
            for &clients in &opts.job_clients {
                bench_jobs(&opts, clients, &mut rows, &mut notes).await;
            }
        }
        if opts.wants("batch") {
            bench_batch(&opts, &mut rows, &mut notes).await;
        }
        if opts.wants("single") {
            bench_single(&opts, &mut rows, &mut notes).await;
        }
        if opts.wants("status") {
            bench_status(&opts, &mut rows, &mut notes).await;
        }
        if opts.wants("restart") {
            bench_restart(&opts, &mut rows, &mut notes).await;
        }
    });
    if opts.wants("fsync") {
        bench_fsync(&opts, &mut rows);
    }
    if let Some(url) = pg_url() {
        rt.block_on(queuemgr_tests::drop_schemas(&url, &pg_prefix(), &[]));
    }
    println!();
    println!("| figure | measured | target | met | vs the original |\n|---|---|---|---|---|");
    for r in &rows {
        println!(
            "| {} | {} | {} | {} | {} |",
            r.figure, r.measured, r.target, r.met, r.vs_original
        );
    }
    println!();
    println!(
        "Load generator: {} ({} CPUs shared with the server){}.",
        opts.client.name(),
        cores(),
        if opts.quick { "; QUICK MODE" } else { "" }
    );
    for n in &notes {
        println!("- {n}");
    }
}
