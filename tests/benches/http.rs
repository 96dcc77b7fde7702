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
//!    (`--only=single`);
//! 7. event streams (`--only=sse`): the 64-client jobs workload of 1 with and without 1,000
//!    clients reading `GET /api/v1/events` (runs alternating, a fresh server each): jobs/s of
//!    both and their ratio; at a sample of the subscribers, how long after a job's
//!    `completed_at` its COMPLETED `job` event was read, and how many events were lost
//!    (`lagged`);
//!    Command sessions (`--only=ws`): the 64-client jobs workload of 1 with and without 1,000
//!    `/ws` command sessions open (`QUEUEMGR_BENCH_WS_SESSIONS`), each waiting on its own
//!    sleeping `noop` job (alternating pairs, `--sse-pairs`): jobs/s of both, their ratio, and
//!    whether every session read its `command_completed`; then one session's round trip
//!    (`execute_command` → `command_completed` → `queue_get_job_status`), p50/p99;
//! 8. MCP (`--only=mcp`): round trip of a `tools/call` of the `noop` job tool over a session
//!    (legacy streamable HTTP), interleaved with the same job over JSON-RPC (`queue_add_job`
//!    with `start: true`, then `queue_get_job_status` until completed) and over JSON-RPC plus
//!    the job's event stream (`GET /api/v1/jobs/{id}/events` until it ends); p50/p99 of each;
//!    and, for the transport alone, the status of a finished job as an MCP tool call and as a
//!    JSON-RPC call;
//! 9. metrics (`--only=metrics`): `GET /metrics` with 1,000,000 jobs in the registry (and with
//!    none, for context): p50/p99 and the scrape's size.
//! 10. PostgreSQL (`--only=pg`; does nothing unless `QUEUEMGR_BENCH_PG` is set): hosts sharing
//!     one schema (`--host-id`), each part on a fresh schema: the drain of 100,000 noop jobs
//!     (`add_jobs` with `start: true` and one `run_at` for all, in requests of 10,000) by 1, 2
//!     and 3 hosts, from the due instant to the last job COMPLETED (jobs/s, and the insert's
//!     rate); a `queue_stop_job` of a spinning `hostile` job sent to the host that does not run
//!     it, 100 times (p50/p99/max); `kill -9` of a host running 5 jobs (`--lease-secs 5
//!     --maintenance-interval-secs 1`, `max_attempts: 2`) until each runs again on the other
//!     host, 3 times (min/median/max); and 1,000,000 COMPLETED rows inserted with SQL, then
//!     `queue_list_jobs` (first page, and with `status_filter`) and the counts (`queue` `health`,
//!     `queue_health`), 200 each (p50/p99). `--quick`: 10,000 jobs, 10 stops, 1 kill, 50,000
//!     rows. Queues, on one host: `fair`: key B adds a started noop job every 100 ms
//!     (`concurrency_key: "B"`), alone for 15 s (`QUEUEMGR_BENCH_FAIR_SECS`), then while key A's
//!     backlog of 100,000 due jobs drains; B's wait (`started_at` − `created_at`, read from the
//!     database) p50/p99/max with A and alone, and A's drain rate with B and alone; `keys`: the
//!     drain of 100,000 with `concurrency_key` `k<i % 1000>` and the default queue at
//!     `key_concurrency: 1` against the plain drain. Both in alternating pairs
//!     (`QUEUEMGR_BENCH_PG_PAIRS`, default 2, `--quick` 1).
//!
//! Keys and traces (`--only=auth`): the 64-client jobs workload of 1 with a scoped key from a
//! keys file of 101 keys, with traces exported to a loopback OTLP collector, and with neither,
//! in 3 rounds (`QUEUEMGR_BENCH_AUTH_ROUNDS`), the three taking turns at going first.
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
//! - `--only=jobs,auth,batch,single,status,restart,fsync,sse,ws,mcp,metrics,pg` / `QUEUEMGR_BENCH_ONLY=…`:
//!   run some sections only.
//! - `--secs=N` / `QUEUEMGR_BENCH_SECS=N`: measured seconds per throughput run (default 10, after
//!   a 2 s warm-up).
//! - `QUEUEMGR_BENCH_PG_PARTS=drain1,drain2,drain3,fair,keys,stop,rescue,rows,schedules`: some
//!   parts of the pg section only (all when unset).
//! - `--restart-jobs=N` / `QUEUEMGR_BENCH_RESTART_JOBS=N`: jobs in the registry of the restart
//!   and metrics sections, and finished rows of the pg section (default 1,000,000).
//! - `--sse-clients=1000` / `QUEUEMGR_BENCH_SSE_CLIENTS=…`: event-stream subscribers (a list,
//!   e.g. `100,1000`, runs the section once per count).
//! - `--sse-pairs=N` / `QUEUEMGR_BENCH_SSE_PAIRS=N`: with/without pairs per count (default 3).
//! - `--sse-filter=status=COMPLETED` / `QUEUEMGR_BENCH_SSE_FILTER=…`: a query string for the
//!   subscribers' `GET /api/v1/events` (default none: every event).
//! - `--mcp-calls=N` / `QUEUEMGR_BENCH_MCP_CALLS=N`: measured calls of each kind (default 500,
//!   after a tenth as many to warm up).
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

use queuemgr::job::{Event, JobRecord, Status};
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
    sse_clients: Vec<usize>,
    sse_pairs: usize,
    sse_filter: Option<String>,
    mcp_calls: usize,
    /// Command sessions of the ws section (`QUEUEMGR_BENCH_WS_SESSIONS`, default 1,000).
    ws_sessions: usize,
    /// Parts of the pg section (`QUEUEMGR_BENCH_PG_PARTS`, e.g. `drain1,drain2,drain3,stop,
    /// rescue,rows`); all when unset.
    pg_parts: Option<Vec<String>>,
}

impl Opts {
    /// Whether part `name` of the pg section runs.
    fn pg_part(&self, name: &str) -> bool {
        self.pg_parts
            .as_ref()
            .is_none_or(|p| p.iter().any(|x| x == name))
    }
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
        let mut sse_clients = env("QUEUEMGR_BENCH_SSE_CLIENTS");
        let mut sse_pairs = env("QUEUEMGR_BENCH_SSE_PAIRS");
        let mut sse_filter = env("QUEUEMGR_BENCH_SSE_FILTER");
        let mut mcp_calls = env("QUEUEMGR_BENCH_MCP_CALLS");
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
            } else if let Some(v) = arg.strip_prefix("--sse-clients=") {
                sse_clients = Some(v.to_string());
            } else if let Some(v) = arg.strip_prefix("--sse-pairs=") {
                sse_pairs = Some(v.to_string());
            } else if let Some(v) = arg.strip_prefix("--sse-filter=") {
                sse_filter = Some(v.to_string());
            } else if let Some(v) = arg.strip_prefix("--mcp-calls=") {
                mcp_calls = Some(v.to_string());
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
            pg_parts: env("QUEUEMGR_BENCH_PG_PARTS")
                .map(|s| s.split(',').map(|p| p.trim().to_string()).collect()),
            sse_clients: sse_clients.map_or(vec![1000], |s| {
                s.split(',')
                    .map(|n| {
                        n.trim()
                            .replace('_', "")
                            .parse()
                            .expect("--sse-clients takes numbers")
                    })
                    .collect()
            }),
            sse_pairs: sse_pairs.map_or(if quick { 1 } else { 3 }, |s| {
                s.parse().expect("--sse-pairs takes a number")
            }),
            sse_filter: sse_filter.filter(|f| !f.is_empty()),
            mcp_calls: mcp_calls.map_or(if quick { 100 } else { 500 }, |s| {
                s.parse().expect("--mcp-calls takes a number")
            }),
            ws_sessions: env("QUEUEMGR_BENCH_WS_SESSIONS").map_or(1000, |s| {
                s.parse()
                    .expect("QUEUEMGR_BENCH_WS_SESSIONS takes a number")
            }),
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
        Server::start_on(extra, registry, None)
    }

    /// As [`Server::start`]; on PostgreSQL, in `schema` (which several servers may share)
    /// rather than in a schema of its own.
    fn start_on(extra: &[String], registry: Option<&Path>, schema: Option<&str>) -> Server {
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
                schema.map_or_else(|| format!("{}{n}", pg_prefix()), str::to_string),
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

/// Header lines every new raw connection sends (`X-API-Key: …\r\n`), set by a section before
/// it connects its clients.
static EXTRA_HEADERS: std::sync::RwLock<String> = std::sync::RwLock::new(String::new());

fn set_extra_headers(lines: &str) {
    *EXTRA_HEADERS.write().unwrap_or_else(|p| p.into_inner()) = lines.to_string();
}

impl RawConn {
    async fn connect(addr: &str) -> RawConn {
        let stream = TcpStream::connect(addr).await.expect("connect");
        stream.set_nodelay(true).expect("nodelay");
        let extra = EXTRA_HEADERS
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        RawConn {
            stream,
            host: format!("{addr}\r\n{extra}").trim_end().to_string(),
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
// 1c. Keys and traces: the 64-client workload with a scoped key, with traces exported to a
// local collector, and with neither, in alternating rounds.

/// One 64-client jobs run on a fresh server with `extra` flags: jobs/s and the CPU split.
/// Two servers measured at once, `clients` each, over the same seconds: `a` with `a_extra`
/// flags and no header, `b` with `b_extra` and `b_headers` on each request. Both see the
/// machine as it is in those seconds, so their ratio is free of the drift between runs that
/// separate runs suffer (each gets about half the machine). Returns each one's jobs/s and
/// server CPU per job (µs).
async fn jobs_rate_pair(
    opts: &Opts,
    clients: usize,
    a_extra: &[String],
    b_extra: &[String],
    b_headers: &str,
) -> ((f64, f64), (f64, f64)) {
    wait_for_quiet_machine();
    let (a, b) = (
        jobs_server(opts, clients, a_extra),
        jobs_server(opts, clients, b_extra),
    );
    let secs = Duration::from_secs(opts.secs);
    let from = Instant::now() + WARM_UP;
    let until = from + secs;
    // A client takes the extra headers when it connects, at once when spawned.
    set_extra_headers(b_headers);
    let b_tasks: Vec<_> = (0..clients)
        .map(|n| tokio::spawn(job_client(opts.client, b.addr.clone(), n, from, until)))
        .collect();
    tokio::time::sleep(Duration::from_millis(300)).await;
    set_extra_headers("");
    let a_tasks: Vec<_> = (0..clients)
        .map(|n| tokio::spawn(job_client(opts.client, a.addr.clone(), n, from, until)))
        .collect();
    tokio::time::sleep_until(from.into()).await;
    let (ca, cb) = (CpuMark::now(a.pid()), CpuMark::now(b.pid()));
    tokio::time::sleep_until(until.into()).await;
    let (sa, sb) = (ca.since(a.pid()), cb.since(b.pid()));
    let sum = |tasks: Vec<tokio::task::JoinHandle<JobsTally>>| async move {
        let mut jobs = 0;
        for t in tasks {
            jobs += t.await.expect("client task").jobs;
        }
        jobs as f64 / secs.as_secs_f64()
    };
    let (ra, rb) = (sum(a_tasks).await, sum(b_tasks).await);
    let per_job = |cpu_pct: f64, rate: f64| cpu_pct / 100.0 / rate.max(1.0) * 1e6;
    ((ra, per_job(sa.server, ra)), (rb, per_job(sb.server, rb)))
}

/// A server for the jobs workload of `clients` clients, with `extra` flags.
fn jobs_server(opts: &Opts, clients: usize, extra: &[String]) -> Server {
    let mut args = vec![
        "--max-concurrent-jobs".to_string(),
        clients.max(64).to_string(),
    ];
    args.extend(opts.server_args.iter().cloned());
    args.extend(extra.iter().cloned());
    Server::start(&args, None)
}

async fn jobs_rate(opts: &Opts, clients: usize, extra: &[String]) -> (f64, String) {
    wait_for_quiet_machine();
    let server = jobs_server(opts, clients, extra);
    let pid = server.pid();
    let secs = Duration::from_secs(opts.secs);
    let from = Instant::now() + WARM_UP;
    let until = from + secs;
    let tasks: Vec<_> = (0..clients)
        .map(|n| tokio::spawn(job_client(opts.client, server.addr.clone(), n, from, until)))
        .collect();
    tokio::time::sleep_until(from.into()).await;
    let cpu = CpuMark::now(pid);
    tokio::time::sleep_until(until.into()).await;
    let split = cpu.since(pid);
    let mut jobs = 0;
    for t in tasks {
        jobs += t.await.expect("client task").jobs;
    }
    (jobs as f64 / secs.as_secs_f64(), split.to_string())
}

/// An OTLP/HTTP receiver on loopback that takes every export (and counts them).
async fn otlp_collector() -> (String, std::sync::Arc<std::sync::atomic::AtomicU64>) {
    let count = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let seen = count.clone();
    let app = axum::Router::new().route(
        "/v1/traces",
        axum::routing::post(move |body: axum::body::Bytes| {
            let seen = seen.clone();
            async move {
                seen.fetch_add(body.len() as u64, std::sync::atomic::Ordering::Relaxed);
                (
                    [("content-type", "application/x-protobuf")],
                    Vec::<u8>::new(),
                )
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (url, count)
}

async fn bench_auth(opts: &Opts, rows: &mut Vec<Row>, notes: &mut Vec<String>) {
    use queuemgr::auth::{Role, Scope, file_entry, new_key};
    let clients = 64;
    let dir = tempfile::tempdir().expect("tempdir");
    let keys = dir.path().join("keys.toml");
    let (key, sha) = new_key().expect("a key");
    let mut text = file_entry(
        "bench",
        Role::Run,
        &sha,
        &Scope::new(&["no*".to_string()], &["default".to_string()]),
    );
    // The key among others, as a team's file would hold it.
    for i in 0..100 {
        let (_, other) = new_key().expect("a key");
        text.push_str(&file_entry(
            &format!("k{i}"),
            Role::Read,
            &other,
            &Scope::default(),
        ));
    }
    std::fs::write(&keys, text).expect("keys file");
    let (collector, exported) = otlp_collector().await;
    // `QUEUEMGR_BENCH_AUTH_ROUNDS`: more rounds narrow a figure this VM's drift blurs.
    let rounds = std::env::var("QUEUEMGR_BENCH_AUTH_ROUNDS")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .filter(|&n| n > 0)
        .unwrap_or(if opts.quick { 1 } else { 3 });
    let (mut plain, mut keyed, mut traced) = (Vec::new(), Vec::new(), Vec::new());
    // The three runs of a round take turns at going first (a Latin square), so that a run's
    // place in the round (after a server's teardown, a collector's backlog) biases none of them.
    for round in 0..rounds {
        for k in 0..3 {
            match (round + k) % 3 {
                0 => {
                    set_extra_headers("");
                    let (r, cpu) = jobs_rate(opts, clients, &[]).await;
                    eprintln!("auth round {round}: no key {r:.0} jobs/s (CPU {cpu})");
                    plain.push(r);
                }
                1 => {
                    set_extra_headers(&format!("X-API-Key: {key}\r\n"));
                    let (r, cpu) = jobs_rate(
                        opts,
                        clients,
                        &["--keys-file".into(), keys.display().to_string()],
                    )
                    .await;
                    eprintln!("auth round {round}: scoped key {r:.0} jobs/s (CPU {cpu})");
                    keyed.push(r);
                }
                _ => {
                    set_extra_headers("");
                    let before = exported.load(std::sync::atomic::Ordering::Relaxed);
                    let (r, cpu) = jobs_rate(
                        opts,
                        clients,
                        &["--otlp-endpoint".into(), collector.clone()],
                    )
                    .await;
                    let bytes = exported.load(std::sync::atomic::Ordering::Relaxed) - before;
                    eprintln!(
                        "auth round {round}: traces on {r:.0} jobs/s (CPU {cpu}); {:.1} MB of spans exported",
                        bytes as f64 / 1e6
                    );
                    assert!(bytes > 0, "no spans reached the collector");
                    traced.push(r);
                }
            }
        }
    }
    set_extra_headers("");
    // Side by side: the two configurations at once, in pairs, each pair with fresh servers
    // (`QUEUEMGR_BENCH_AUTH_PAIRS`, default 3): the ratio within a pair does not drift.
    let pairs = std::env::var("QUEUEMGR_BENCH_AUTH_PAIRS")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(if opts.quick { 1 } else { 3 });
    let (mut key_pairs, mut trace_pairs) = (Vec::new(), Vec::new());
    for i in 0..pairs {
        let keyed_flags = ["--keys-file".to_string(), keys.display().to_string()];
        let ((ra, ca), (rb, cb)) = jobs_rate_pair(
            opts,
            clients,
            &[],
            &keyed_flags,
            &format!("X-API-Key: {key}\r\n"),
        )
        .await;
        eprintln!(
            "auth pair {i}: no key {ra:.0} jobs/s ({ca:.0} µs CPU/job) beside scoped key {rb:.0} ({cb:.0})"
        );
        key_pairs.push((ra, rb, ca, cb));
        let traced_flags = ["--otlp-endpoint".to_string(), collector.clone()];
        let ((ra, ca), (rb, cb)) = jobs_rate_pair(opts, clients, &[], &traced_flags, "").await;
        eprintln!(
            "auth pair {i}: traces off {ra:.0} jobs/s ({ca:.0} µs CPU/job) beside on {rb:.0} ({cb:.0})"
        );
        trace_pairs.push((ra, rb, ca, cb));
    }
    let pair_row = |v: &[(f64, f64, f64, f64)], what: &str, target: f64| {
        let rate: f64 = v.iter().map(|p| p.1).sum::<f64>() / v.iter().map(|p| p.0).sum::<f64>();
        let cpu: f64 = v.iter().map(|p| p.3).sum::<f64>() / v.iter().map(|p| p.2).sum::<f64>();
        let list = v
            .iter()
            .map(|p| format!("{:.0}/{:.0}", p.1, p.0))
            .collect::<Vec<_>>()
            .join(", ");
        Row {
            figure: format!("{clients} clients each, two servers at once: {what}"),
            measured: format!(
                "{rate:.3}× jobs/s, {cpu:.3}× server CPU per job ({} pairs: {list})",
                v.len()
            ),
            target: format!("≥ {target}×"),
            met: met(rate >= target),
            vs_original: "-".into(),
        }
    };
    rows.push(pair_row(&key_pairs, "scoped key ÷ no key", 0.97));
    rows.push(pair_row(&trace_pairs, "traces on ÷ off", 0.9));
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len().max(1) as f64;
    let list = |v: &[f64]| {
        v.iter()
            .map(|r| format!("{r:.0}"))
            .collect::<Vec<_>>()
            .join(" / ")
    };
    let key_ratio = mean(&keyed) / mean(&plain);
    let trace_ratio = mean(&traced) / mean(&plain);
    rows.push(Row {
        figure: format!("{clients} clients with a scoped key ÷ no key"),
        measured: format!("{key_ratio:.3}× ({} vs {})", list(&keyed), list(&plain)),
        target: "≥ 0.97×".into(),
        met: met(key_ratio >= 0.97),
        vs_original: "-".into(),
    });
    rows.push(Row {
        figure: format!("{clients} clients, traces exported to a local collector ÷ off"),
        measured: format!("{trace_ratio:.3}× ({} vs {})", list(&traced), list(&plain)),
        target: "≥ 0.9×".into(),
        met: met(trace_ratio >= 0.9),
        vs_original: "-".into(),
    });
    notes.push(format!(
        "keys and traces, {rounds} alternating rounds of {clients} clients: no key {}, scoped key {}, traces on {} jobs/s",
        list(&plain),
        list(&keyed),
        list(&traced)
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
    let base = queuemgr::job::now_micros() - n as i64 * 1_000;
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
            params: queuemgr::job::Json::new(&json!({"task_name": task, "duration": 3})),
            result: Some(queuemgr::job::Json::new(
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
// 7. Event streams: the 64-client jobs workload with and without subscribers.

/// Microseconds since the epoch of the host's ISO-8601 times (`YYYY-MM-DDTHH:MM:SS.ffffff`,
/// UTC; see `views::iso`).
fn iso_micros(s: &[u8]) -> Option<i64> {
    let num = |a: usize, b: usize| -> Option<i64> {
        std::str::from_utf8(s.get(a..b)?).ok()?.parse().ok()
    };
    let (y, m, d) = (num(0, 4)?, num(5, 7)?, num(8, 10)?);
    let (hh, mm, ss, us) = (num(11, 13)?, num(14, 16)?, num(17, 19)?, num(20, 26)?);
    // Days from the civil date (H. Hinnant's algorithm).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * ((m + 9) % 12) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some((days * 86_400 + hh * 3_600 + mm * 60 + ss) * 1_000_000 + us)
}

/// The number after `key` (e.g. `"missed":`) in `hay`.
fn number_after(hay: &[u8], key: &[u8]) -> Option<u64> {
    let at = find(hay, key)? + key.len();
    let digits: Vec<u8> = hay[at..]
        .iter()
        .copied()
        .take_while(u8::is_ascii_digit)
        .collect();
    std::str::from_utf8(&digits).ok()?.parse().ok()
}

/// What one subscriber saw while the measuring flag was up.
#[derive(Default)]
struct SubTally {
    /// The response was `200` with a chunked event stream.
    ok: bool,
    /// The server ended the stream.
    closed: bool,
    bytes: u64,
    /// Only counted at sampled subscribers (which decode the stream): events by kind.
    job_events: u64,
    other_events: u64,
    completed_events: u64,
    lagged: u64,
    missed: u64,
    /// Read time − the job's `completed_at`, µs, for every COMPLETED `job` event.
    latency_us: Vec<i64>,
}

/// Decodes a chunked HTTP/1.1 body into server-sent events.
#[derive(Default)]
struct SseDecoder {
    raw: Vec<u8>,
    /// Data bytes of the current chunk still to come.
    in_chunk: usize,
    /// The CRLF after a chunk's data is still to come.
    crlf: bool,
    body: Vec<u8>,
}

impl SseDecoder {
    /// Takes the bytes of one read; calls `event` with each complete event (its lines).
    fn feed(&mut self, bytes: &[u8], mut event: impl FnMut(&[u8])) {
        self.raw.extend_from_slice(bytes);
        let mut pos = 0;
        loop {
            if self.crlf {
                if self.raw.len() - pos < 2 {
                    break;
                }
                pos += 2;
                self.crlf = false;
            } else if self.in_chunk > 0 {
                let n = self.in_chunk.min(self.raw.len() - pos);
                if n == 0 {
                    break;
                }
                self.body.extend_from_slice(&self.raw[pos..pos + n]);
                pos += n;
                self.in_chunk -= n;
                self.crlf = self.in_chunk == 0;
            } else {
                let Some(eol) = find(&self.raw[pos..], b"\r\n") else {
                    break;
                };
                let line = std::str::from_utf8(&self.raw[pos..pos + eol]).expect("chunk size");
                let size = line.split(';').next().unwrap_or("").trim();
                self.in_chunk = usize::from_str_radix(size, 16).expect("chunk size");
                pos += eol + 2;
                if self.in_chunk == 0 {
                    // The last chunk: the stream ended.
                    break;
                }
            }
        }
        self.raw.drain(..pos);
        let mut start = 0;
        while let Some(end) = find(&self.body[start..], b"\n\n") {
            event(&self.body[start..start + end]);
            start += end + 2;
        }
        self.body.drain(..start);
    }
}

/// One client of `GET /api/v1/events`: reads until `stop`, counting bytes while `measuring`;
/// a sampled one also decodes every event.
async fn sse_subscriber(
    addr: String,
    path: String,
    sample: bool,
    measuring: std::sync::Arc<std::sync::atomic::AtomicBool>,
    stop: tokio_util::sync::CancellationToken,
) -> SubTally {
    use std::sync::atomic::Ordering::Relaxed;
    let mut s = TcpStream::connect(&addr).await.expect("connect");
    s.set_nodelay(true).expect("nodelay");
    s.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nAccept: text/event-stream\r\n\r\n")
            .as_bytes(),
    )
    .await
    .expect("send");
    let mut t = SubTally::default();
    let mut buf = vec![0u8; 32 * 1024];
    let mut head = Vec::new();
    let mut dec = SseDecoder::default();
    loop {
        let n = tokio::select! {
            biased;
            () = stop.cancelled() => break,
            r = s.read(&mut buf) => r.expect("read"),
        };
        if n == 0 {
            t.closed = true;
            break;
        }
        let read_at = queuemgr::job::now_micros();
        let on = measuring.load(Relaxed);
        let mut data = &buf[..n];
        if !t.ok {
            head.extend_from_slice(data);
            let Some(end) = find(&head, b"\r\n\r\n") else {
                continue;
            };
            let text = String::from_utf8_lossy(&head[..end]).to_ascii_lowercase();
            assert!(
                text.starts_with("http/1.1 200") && text.contains("transfer-encoding: chunked"),
                "the event stream's head: {text}"
            );
            t.ok = true;
            let rest = head.split_off(end + 4);
            head = rest;
            data = &head;
        }
        if on {
            t.bytes += data.len() as u64;
        }
        if !sample {
            continue;
        }
        dec.feed(data, |ev| {
            if !on {
                return;
            }
            if ev.starts_with(b":") {
                return; // a keep-alive comment
            }
            if find(ev, b"event: job\n").is_some() || ev.ends_with(b"event: job") {
                t.job_events += 1;
                if find(ev, b"\"status\":\"COMPLETED\"").is_some() {
                    t.completed_events += 1;
                    let key = b"\"completed_at\":\"";
                    let at = find(ev, key).map(|i| i + key.len());
                    if let Some(done) = at.and_then(|i| iso_micros(&ev[i..])) {
                        t.latency_us.push(read_at - done);
                    }
                }
            } else if find(ev, b"event: lagged").is_some() {
                t.lagged += 1;
                t.missed += number_after(ev, b"\"missed\":").unwrap_or(0);
            } else {
                t.other_events += 1;
            }
        });
    }
    t
}

/// One run of the jobs workload (64 clients, as in section 1) with `subscribers` clients of
/// the event stream connected before it starts.
struct SseRun {
    rate: f64,
    jobs: u64,
    split: CpuSplit,
    job_lat: Samples,
    subs: SubTally,
    sampled: usize,
    closed: usize,
}

async fn sse_run(opts: &Opts, clients: usize, subscribers: usize, conns: usize) -> SseRun {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
    wait_for_quiet_machine();
    let mut extra = vec![
        "--max-concurrent-jobs".to_string(),
        clients.max(64).to_string(),
        "--max-connections".to_string(),
        conns.to_string(),
    ];
    extra.extend(opts.server_args.iter().cloned());
    let server = Server::start(&extra, None);
    let pid = server.pid();
    let measuring = Arc::new(AtomicBool::new(false));
    let stop = tokio_util::sync::CancellationToken::new();
    // Every 50th subscriber decodes its stream (at least one).
    let every = 50;
    let path = match &opts.sse_filter {
        Some(q) => format!("/api/v1/events?{q}"),
        None => "/api/v1/events".to_string(),
    };
    let subs: Vec<_> = (0..subscribers)
        .map(|i| {
            tokio::spawn(sse_subscriber(
                server.addr.clone(),
                path.clone(),
                i % every == 0,
                measuring.clone(),
                stop.clone(),
            ))
        })
        .collect();
    let sampled = subscribers.div_ceil(every);
    // Wait until the host counts every subscriber.
    let mut probe = Client::connect(ClientKind::Raw, &server.addr).await;
    let t = Instant::now();
    loop {
        let (_, body) = probe.get("/metrics").await;
        let text = String::from_utf8_lossy(&body);
        let n = text
            .lines()
            .find_map(|l| l.strip_prefix("queuemgr_live_subscribers "))
            .and_then(|v| v.trim().parse::<f64>().ok())
            .unwrap_or(0.0) as usize;
        if n >= subscribers {
            break;
        }
        assert!(
            t.elapsed() < Duration::from_secs(60),
            "only {n} of {subscribers} subscribers after 60 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    if subscribers > 0 {
        eprintln!(
            "  {subscribers} subscribers connected in {:.2} s",
            t.elapsed().as_secs_f64()
        );
    }
    let secs = Duration::from_secs(opts.secs);
    let from = Instant::now() + WARM_UP;
    let until = from + secs;
    let tasks: Vec<_> = (0..clients)
        .map(|n| tokio::spawn(job_client(opts.client, server.addr.clone(), n, from, until)))
        .collect();
    tokio::time::sleep_until(from.into()).await;
    measuring.store(true, Relaxed);
    let cpu = CpuMark::now(pid);
    tokio::time::sleep_until(until.into()).await;
    measuring.store(false, Relaxed);
    let split = cpu.since(pid);
    let mut total = JobsTally::default();
    for t in tasks {
        let t = t.await.expect("client task");
        total.jobs += t.jobs;
        total.latencies.extend(t.latencies);
    }
    stop.cancel();
    let mut all = SubTally::default();
    let mut closed = 0;
    for s in subs {
        let s = s.await.expect("subscriber task");
        assert!(s.ok, "a subscriber got no event stream");
        closed += usize::from(s.closed);
        all.bytes += s.bytes;
        all.job_events += s.job_events;
        all.other_events += s.other_events;
        all.completed_events += s.completed_events;
        all.lagged += s.lagged;
        all.missed += s.missed;
        all.latency_us.extend(s.latency_us);
    }
    SseRun {
        rate: total.jobs as f64 / secs.as_secs_f64(),
        jobs: total.jobs,
        split,
        job_lat: Samples::new(total.latencies),
        subs: all,
        sampled,
        closed,
    }
}

async fn bench_sse(opts: &Opts, subscribers: usize, rows: &mut Vec<Row>, notes: &mut Vec<String>) {
    let clients = 64;
    // Room for the subscribers, the job clients and the probe.
    let conns = (subscribers + clients + 64).max(1024);
    let mut with = Vec::new();
    let mut without = Vec::new();
    for pair in 0..opts.sse_pairs {
        // Alternate which run of a pair goes first, so that a drift of the VM's speed weighs
        // on both sides alike.
        for with_subs in [pair % 2 == 1, pair % 2 == 0] {
            let n = if with_subs { subscribers } else { 0 };
            let r = sse_run(opts, clients, n, conns).await;
            let secs = opts.secs as f64;
            eprintln!(
                "sse pair {}: {clients} job clients, {n} subscribers: {:.0} jobs/s; job latency \
                 p50 {} p99 {}; CPU {}{}",
                pair + 1,
                r.rate,
                ms(r.job_lat.pct(50.0)),
                ms(r.job_lat.pct(99.0)),
                r.split,
                if n > 0 {
                    format!(
                        "; subscribers read {:.1} MB/s in all; at {} sampled: {} job events \
                         ({} COMPLETED for {} jobs), {} lagged notices, {} events missed",
                        r.subs.bytes as f64 / secs / 1e6,
                        r.sampled,
                        r.subs.job_events,
                        r.subs.completed_events,
                        r.jobs,
                        r.subs.lagged,
                        r.subs.missed
                    )
                } else {
                    String::new()
                }
            );
            if with_subs {
                with.push(r);
            } else {
                without.push(r);
            }
        }
    }
    let ratios: Vec<f64> = with
        .iter()
        .zip(&without)
        .map(|(w, o)| w.rate / o.rate)
        .collect();
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let with_rates: Vec<f64> = with.iter().map(|r| r.rate).collect();
    let without_rates: Vec<f64> = without.iter().map(|r| r.rate).collect();
    let (m_with, m_without) = (median(with_rates.clone()), median(without_rates.clone()));
    let ratio_of_medians = m_with / m_without;
    let list = |v: &[f64], f: &dyn Fn(f64) -> String| {
        v.iter().map(|x| f(*x)).collect::<Vec<_>>().join(" / ")
    };
    let lat = Samples::new(
        with.iter()
            .flat_map(|r| r.subs.latency_us.iter())
            .map(|&us| Duration::from_micros(us.max(0) as u64))
            .collect(),
    );
    let seen: u64 = with.iter().map(|r| r.subs.job_events).sum();
    let missed: u64 = with.iter().map(|r| r.subs.missed).sum();
    let lost = missed as f64 / (seen + missed).max(1) as f64;
    let closed: usize = with.iter().map(|r| r.closed).sum();
    eprintln!(
        "sse, {subscribers} subscribers: jobs/s with {} (median {m_with:.0}), without {} (median \
         {m_without:.0}); ratios {}; median ratio {:.3}; COMPLETED event read − completed_at: \
         p50 {} p99 {} max {} ({} samples); sampled subscribers lost {:.1} % of job events; \
         streams the server ended: {closed}",
        list(&with_rates, &|x| format!("{x:.0}")),
        list(&without_rates, &|x| format!("{x:.0}")),
        list(&ratios, &|x| format!("{x:.3}")),
        median(ratios.clone()),
        ms(lat.pct(50.0)),
        ms(lat.pct(99.0)),
        ms(lat.max()),
        lat.0.len(),
        lost * 100.0
    );
    let med_ratio = median(ratios.clone());
    rows.push(Row {
        figure: format!(
            "{clients}-client noop jobs with {subscribers} clients of `GET /api/v1/events{}` ÷ \
             without (median of {} alternating pairs)",
            opts.sse_filter
                .as_deref()
                .map_or(String::new(), |q| format!("?{q}")),
            ratios.len()
        ),
        measured: format!(
            "{med_ratio:.3} ({} vs {} jobs/s)",
            list(&with_rates, &|x| format!("{x:.0}")),
            list(&without_rates, &|x| format!("{x:.0}"))
        ),
        target: "≥ 0.90".into(),
        met: met(med_ratio >= 0.90),
        vs_original: "—".into(),
    });
    rows.push(Row {
        figure: format!(
            "COMPLETED `job` event read by a subscriber − the job's `completed_at`, p50 / p99 \
             ({} of {subscribers} subscribers sampled)",
            with.first().map_or(0, |r| r.sampled)
        ),
        measured: format!("{} / {}", ms(lat.pct(50.0)), ms(lat.pct(99.0))),
        target: "p99 ≤ 10 ms".into(),
        met: met(!lat.0.is_empty() && lat.pct(99.0) <= Duration::from_millis(10)),
        vs_original: "—".into(),
    });
    let cpu = |runs: &[SseRun]| {
        runs.iter()
            .map(|r| format!("{:.0}+{:.0}", r.split.server, r.split.client))
            .collect::<Vec<_>>()
            .join(", ")
    };
    notes.push(format!(
        "sse, {subscribers} subscribers: ratios {} (ratio of medians {ratio_of_medians:.3}); \
         CPU server+load generator % with {} / without {}; subscribers read {} MB/s in all; \
         sampled subscribers lost {:.1} % of job events ({} lagged notices); latency max {}, \
         {} samples",
        list(&ratios, &|x| format!("{x:.3}")),
        cpu(&with),
        cpu(&without),
        list(
            &with
                .iter()
                .map(|r| r.subs.bytes as f64 / opts.secs as f64 / 1e6)
                .collect::<Vec<_>>(),
            &|x| format!("{x:.1}")
        ),
        lost * 100.0,
        with.iter().map(|r| r.subs.lagged).sum::<u64>(),
        ms(lat.max()),
        lat.0.len()
    ));
}

// ---------------------------------------------------------------------------------------------
// 7b. Command sessions (`/ws`): the jobs workload beside 1,000 open sessions, each waiting on its
// own job; and one session's round trip.

/// One command session: connects, runs a `noop` job that sleeps `sleep_ms`, and waits for its
/// terminal event. Returns (when it was accepted, the terminal event's name, when that was
/// read).
async fn ws_session(
    addr: String,
    sleep_ms: u64,
    accepted: std::sync::Arc<tokio::sync::Semaphore>,
) -> (Option<Instant>, Option<String>, Instant) {
    use futures::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    let url = format!("ws://{addr}/ws");
    let Ok((mut ws, _)) = tokio_tungstenite::connect_async(url).await else {
        accepted.add_permits(1);
        return (None, None, Instant::now());
    };
    let msg = json!({"action": "execute_command", "request_id": "b", "command": "noop",
                     "params": {"sleep_ms": sleep_ms}, "result_channel": "rpc"});
    if ws
        .send(Message::Text(msg.to_string().into()))
        .await
        .is_err()
    {
        accepted.add_permits(1);
        return (None, None, Instant::now());
    }
    let mut ok = None;
    while let Some(Ok(m)) = ws.next().await {
        let Message::Text(t) = m else { continue };
        let v: Value = serde_json::from_str(t.as_str()).unwrap_or(Value::Null);
        match v["event"].as_str() {
            Some("command_accepted") => {
                ok = Some(Instant::now());
                accepted.add_permits(1);
            }
            Some(
                e
                @ ("command_completed" | "command_failed" | "command_cancelled" | "command_error"),
            ) => {
                if ok.is_none() {
                    accepted.add_permits(1);
                }
                return (ok, Some(e.to_string()), Instant::now());
            }
            _ => {}
        }
    }
    if ok.is_none() {
        accepted.add_permits(1);
    }
    (ok, None, Instant::now())
}

struct WsRun {
    rate: f64,
    split: CpuSplit,
    job_lat: Samples,
    accepted: usize,
    completed: usize,
    /// Terminal event read − (its `command_accepted` read + the job's sleep).
    late: Samples,
    rss_mib: f64,
}

async fn ws_run(opts: &Opts, clients: usize, sessions: usize, conns: usize) -> WsRun {
    use std::sync::Arc;
    wait_for_quiet_machine();
    let mut extra = vec![
        "--max-concurrent-jobs".to_string(),
        (clients.max(64) + sessions).to_string(),
        "--max-instances".to_string(),
        (clients.max(64) + sessions + 64).to_string(),
        "--max-connections".to_string(),
        conns.to_string(),
    ];
    extra.extend(opts.server_args.iter().cloned());
    let server = Server::start(&extra, None);
    let pid = server.pid();
    let secs = Duration::from_secs(opts.secs);
    // The session jobs end 3 s after the measured run (their connections take a while to open).
    let opened = Instant::now();
    let sleep = Duration::from_secs(20) + WARM_UP + secs + Duration::from_secs(3);
    let accepted = Arc::new(tokio::sync::Semaphore::new(0));
    let tasks: Vec<_> = (0..sessions)
        .map(|_| {
            tokio::spawn(ws_session(
                server.addr.clone(),
                sleep.as_millis() as u64,
                accepted.clone(),
            ))
        })
        .collect();
    let planned_end = opened + sleep;
    if sessions > 0 {
        let t = Instant::now();
        let all = tokio::time::timeout(
            Duration::from_secs(20),
            accepted.acquire_many(sessions as u32),
        )
        .await;
        assert!(all.is_ok(), "not every session was accepted within 20 s");
        eprintln!(
            "  {sessions} command sessions accepted in {:.2} s",
            t.elapsed().as_secs_f64()
        );
    }
    let from = Instant::now() + WARM_UP;
    let until = from + secs;
    assert!(until < planned_end, "the session jobs must outlast the run");
    let workers: Vec<_> = (0..clients)
        .map(|n| tokio::spawn(job_client(opts.client, server.addr.clone(), n, from, until)))
        .collect();
    tokio::time::sleep_until(from.into()).await;
    let cpu = CpuMark::now(pid);
    tokio::time::sleep_until(until.into()).await;
    let split = cpu.since(pid);
    let rss_mib = proc_status_mib(pid, "VmRSS");
    let mut total = JobsTally::default();
    for t in workers {
        let t = t.await.expect("client task");
        total.jobs += t.jobs;
        total.latencies.extend(t.latencies);
    }
    let mut acc = 0;
    let mut completed = 0;
    let mut late = Vec::new();
    for t in tasks {
        let (ok, end, at) = tokio::time::timeout(Duration::from_secs(120), t)
            .await
            .expect("every session ends")
            .expect("session task");
        acc += usize::from(ok.is_some());
        if let (Some(acc_at), Some("command_completed")) = (ok, end.as_deref()) {
            completed += 1;
            late.push(at.saturating_duration_since(acc_at + sleep));
        }
    }
    WsRun {
        rate: total.jobs as f64 / secs.as_secs_f64(),
        split,
        job_lat: Samples::new(total.latencies),
        accepted: acc,
        completed,
        late: Samples::new(late),
        rss_mib,
    }
}

/// One command session's round trip, as the framework's client makes it: `execute_command`
/// over an open socket, `command_completed`, then `queue_get_job_status` over HTTP.
async fn ws_round_trips(addr: &str, n: usize) -> Samples {
    use futures::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/ws"))
        .await
        .expect("connect /ws");
    let mut http = Client::connect(ClientKind::Raw, addr).await;
    let mut samples = Vec::with_capacity(n);
    for i in 0..(n + n / 10) {
        let t = Instant::now();
        let msg = json!({"action": "execute_command", "request_id": i.to_string(), "command": "noop", "params": {}});
        ws.send(Message::Text(msg.to_string().into()))
            .await
            .expect("send");
        let job_id = loop {
            let Some(Ok(Message::Text(m))) = ws.next().await else {
                panic!("the session closed")
            };
            let v: Value = serde_json::from_str(m.as_str()).expect("JSON");
            if v["event"] == "command_completed" {
                break v["job_id"].as_str().expect("job_id").to_string();
            }
        };
        let (status, body) = http
            .post(
                "/api/jsonrpc",
                &rpc_body("queue_get_job_status", json!({"job_id": job_id})),
            )
            .await;
        assert!(status == 200 && find(&body, b"\"data\":{\"ok\"").is_none());
        assert!(
            find(&body, b"\"command_success\":true").is_some(),
            "{}",
            String::from_utf8_lossy(&body)
        );
        if i >= n / 10 {
            samples.push(t.elapsed());
        }
    }
    Samples::new(samples)
}

async fn bench_ws(opts: &Opts, rows: &mut Vec<Row>, notes: &mut Vec<String>) {
    let clients = 64;
    let sessions = opts.ws_sessions;
    let conns = (sessions + clients + 64).max(1024);
    let mut with = Vec::new();
    let mut without = Vec::new();
    for pair in 0..opts.sse_pairs {
        for with_sessions in [pair % 2 == 1, pair % 2 == 0] {
            let n = if with_sessions { sessions } else { 0 };
            let r = ws_run(opts, clients, n, conns).await;
            eprintln!(
                "ws pair {}: {clients} job clients, {n} command sessions: {:.0} jobs/s; job \
                 latency p50 {} p99 {}; CPU {}; RSS {:.0} MiB{}",
                pair + 1,
                r.rate,
                ms(r.job_lat.pct(50.0)),
                ms(r.job_lat.pct(99.0)),
                r.split,
                r.rss_mib,
                if n > 0 {
                    format!(
                        "; {} accepted, {} command_completed; read − (accepted + sleep) p50 {} max {}",
                        r.accepted,
                        r.completed,
                        ms(r.late.pct(50.0)),
                        ms(r.late.max())
                    )
                } else {
                    String::new()
                }
            );
            if with_sessions {
                with.push(r);
            } else {
                without.push(r);
            }
        }
    }
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let ratios: Vec<f64> = with
        .iter()
        .zip(&without)
        .map(|(w, o)| w.rate / o.rate)
        .collect();
    let list = |v: &[f64]| {
        v.iter()
            .map(|x| format!("{x:.0}"))
            .collect::<Vec<_>>()
            .join(" / ")
    };
    let med = median(ratios.clone());
    let delivered: usize = with.iter().map(|r| r.completed).sum();
    let expected = sessions * with.len();
    rows.push(Row {
        figure: format!(
            "{clients}-client noop jobs with {sessions} `/ws` command sessions open (each waiting on its own job) ÷ without (median of {} alternating pairs)",
            ratios.len()
        ),
        measured: format!(
            "{med:.3} ({} vs {} jobs/s); terminal events delivered {delivered} of {expected}",
            list(&with.iter().map(|r| r.rate).collect::<Vec<_>>()),
            list(&without.iter().map(|r| r.rate).collect::<Vec<_>>())
        ),
        target: "≥ 0.90, every terminal event".into(),
        met: met(med >= 0.90 && delivered == expected),
        vs_original: "—".into(),
    });
    notes.push(format!(
        "ws, {sessions} sessions: ratios {}; CPU server+load generator % with {} / without {}; \
         server RSS with {} MiB / without {} MiB; terminal event read − (command_accepted read + \
         the job's sleep): p50 {} max {}",
        ratios
            .iter()
            .map(|x| format!("{x:.3}"))
            .collect::<Vec<_>>()
            .join(", "),
        with.iter()
            .map(|r| format!("{:.0}+{:.0}", r.split.server, r.split.client))
            .collect::<Vec<_>>()
            .join(", "),
        without
            .iter()
            .map(|r| format!("{:.0}+{:.0}", r.split.server, r.split.client))
            .collect::<Vec<_>>()
            .join(", "),
        with.iter()
            .map(|r| format!("{:.0}", r.rss_mib))
            .collect::<Vec<_>>()
            .join(", "),
        without
            .iter()
            .map(|r| format!("{:.0}", r.rss_mib))
            .collect::<Vec<_>>()
            .join(", "),
        ms(Samples::new(with.iter().flat_map(|r| r.late.0.iter().copied()).collect()).pct(50.0)),
        ms(Samples::new(with.iter().flat_map(|r| r.late.0.iter().copied()).collect()).max()),
    ));
    // One session's round trip, on a quiet server.
    wait_for_quiet_machine();
    let server = Server::start(&opts.server_args, None);
    let n = if opts.quick { 200 } else { 2000 };
    let rt = ws_round_trips(&server.addr, n).await;
    rows.push(Row {
        figure: format!(
            "one `/ws` command session, `noop`: `execute_command` → `command_completed` → `queue_get_job_status` over HTTP, p50 / p99 ({n} sequential)"
        ),
        measured: format!("{} / {}", ms(rt.pct(50.0)), ms(rt.pct(99.0))),
        target: "—".into(),
        met: "—",
        vs_original: "—".into(),
    });
}

// ---------------------------------------------------------------------------------------------
// 8. MCP: a job tool's round trip, against the same job over JSON-RPC.

const MCP_VERSION: &str = "2025-11-25";

/// An MCP client over a legacy (session) streamable-HTTP connection, on reqwest.
struct McpSession {
    http: reqwest::Client,
    url: String,
    session: String,
    next_id: u64,
}

fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .pool_max_idle_per_host(1)
        .tcp_nodelay(true)
        .build()
        .expect("reqwest client")
}

impl McpSession {
    async fn open(addr: &str) -> McpSession {
        let http = http_client();
        let url = format!("http://{addr}/mcp");
        let init = json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
            "protocolVersion": MCP_VERSION, "capabilities": {},
            "clientInfo": {"name": "queuemgr-bench", "version": "0"}}});
        let r = http
            .post(&url)
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .body(init.to_string())
            .send()
            .await
            .expect("initialize");
        assert_eq!(r.status(), 200, "initialize");
        let session = r
            .headers()
            .get("mcp-session-id")
            .and_then(|v| v.to_str().ok())
            .expect("mcp-session-id")
            .to_string();
        let body = r.text().await.expect("initialize body");
        assert!(body.contains("protocolVersion"), "initialize: {body}");
        let s = McpSession {
            http,
            url,
            session,
            next_id: 1,
        };
        let r = s
            .post(json!({"jsonrpc": "2.0", "method": "notifications/initialized"}))
            .send()
            .await
            .expect("initialized");
        assert_eq!(r.status(), 202, "notifications/initialized");
        s
    }

    fn post(&self, body: Value) -> reqwest::RequestBuilder {
        self.http
            .post(&self.url)
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .header("mcp-session-id", &self.session)
            .header("mcp-protocol-version", MCP_VERSION)
            .body(body.to_string())
    }

    /// `tools/call`; returns when the reply's `data:` line with our id has been read (the
    /// stream's end is read after the clock stops), with the result.
    async fn call(&mut self, tool: &str, arguments: Value, t0: Instant) -> (Duration, Value) {
        let id = self.next_id;
        self.next_id += 1;
        let mut r = self
            .post(json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
                "params": {"name": tool, "arguments": arguments}}))
            .send()
            .await
            .expect("tools/call");
        assert_eq!(r.status(), 200, "tools/call");
        let mut buf = Vec::new();
        let mut answer = None;
        while answer.is_none() {
            let chunk = r.chunk().await.expect("tools/call body");
            let Some(chunk) = chunk else {
                panic!(
                    "the reply ended without a result: {}",
                    String::from_utf8_lossy(&buf)
                )
            };
            buf.extend_from_slice(&chunk);
            for line in buf.split(|&b| b == b'\n') {
                let Some(data) = line.strip_prefix(b"data:") else {
                    continue;
                };
                let Ok(v) = serde_json::from_slice::<Value>(data) else {
                    continue;
                };
                if v["id"] == json!(id) {
                    answer = Some(v);
                    break;
                }
            }
        }
        let took = t0.elapsed();
        // The request's stream ends after its reply: read to its end, so that the connection
        // is kept for the next call.
        while r.chunk().await.expect("tools/call body").is_some() {}
        (took, answer.expect("answer"))
    }
}

async fn jsonrpc(http: &reqwest::Client, url: &str, method: &str, params: Value) -> Value {
    let r = http
        .post(url)
        .header("content-type", "application/json")
        .body(json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}).to_string())
        .send()
        .await
        .expect("JSON-RPC");
    assert_eq!(r.status(), 200, "{method}");
    let v: Value = r.json().await.expect("JSON-RPC body");
    assert_eq!(v["result"]["success"], json!(true), "{method}: {v}");
    v["result"]["data"].clone()
}

async fn bench_mcp(opts: &Opts, rows: &mut Vec<Row>, notes: &mut Vec<String>) {
    wait_for_quiet_machine();
    let server = Server::start(&opts.server_args, None);
    let pid = server.pid();
    let mut mcp = McpSession::open(&server.addr).await;
    let rpc = http_client();
    let rpc_url = format!("http://{}/api/jsonrpc", server.addr);
    let events = http_client();
    let n = opts.mcp_calls;
    let warm = n / 10;
    let (mut lat_mcp, mut lat_poll, mut lat_events) = (Vec::new(), Vec::new(), Vec::new());
    let (mut lat_mcp_status, mut lat_rpc_status) = (Vec::new(), Vec::new());
    let mut polls = 0u64;
    let mut cpu = None;
    // A finished job for the transport-only kinds (a status read, no job run).
    jsonrpc(
        &rpc,
        &rpc_url,
        "queue_add_job",
        json!({"job_id": "done", "job_type": "noop", "params": {}, "start": true}),
    )
    .await;
    while jsonrpc(
        &rpc,
        &rpc_url,
        "queue_get_job_status",
        json!({"job_id": "done"}),
    )
    .await["status"]
        != "completed"
    {}
    let kinds = 5;
    for i in 0..warm + n {
        if i == warm {
            cpu = Some(CpuMark::now(pid));
        }
        // The kinds in turn, their order rotating, so that drift weighs on all alike.
        for k in 0..kinds {
            let id = format!("rt-{i}-{k}");
            match (i + k) % kinds {
                3 => {
                    let (took, v) = mcp
                        .call(
                            "queue_get_job_status",
                            json!({"job_id": "done"}),
                            Instant::now(),
                        )
                        .await;
                    assert_eq!(
                        v["result"]["structuredContent"]["status"], "completed",
                        "tools/call queue_get_job_status: {v}"
                    );
                    if i >= warm {
                        lat_mcp_status.push(took);
                    }
                }
                4 => {
                    let t = Instant::now();
                    let d = jsonrpc(
                        &rpc,
                        &rpc_url,
                        "queue_get_job_status",
                        json!({"job_id": "done"}),
                    )
                    .await;
                    let took = t.elapsed();
                    assert_eq!(d["status"], "completed");
                    if i >= warm {
                        lat_rpc_status.push(took);
                    }
                }
                0 => {
                    let (took, v) = mcp.call("noop", json!({}), Instant::now()).await;
                    assert!(
                        v["result"].is_object() && v["result"]["isError"] != json!(true),
                        "tools/call noop: {v}"
                    );
                    if i >= warm {
                        lat_mcp.push(took);
                    }
                }
                1 => {
                    let t = Instant::now();
                    jsonrpc(
                        &rpc,
                        &rpc_url,
                        "queue_add_job",
                        json!({
                        "job_id": id, "job_type": "noop", "params": {}, "start": true}),
                    )
                    .await;
                    loop {
                        if i >= warm {
                            polls += 1;
                        }
                        let d = jsonrpc(
                            &rpc,
                            &rpc_url,
                            "queue_get_job_status",
                            json!({"job_id": id}),
                        )
                        .await;
                        match d["status"].as_str() {
                            Some("completed") => break,
                            Some("pending" | "running") => {}
                            other => panic!("job {id} ended {other:?}: {d}"),
                        }
                    }
                    if i >= warm {
                        lat_poll.push(t.elapsed());
                    }
                }
                _ => {
                    let t = Instant::now();
                    jsonrpc(
                        &rpc,
                        &rpc_url,
                        "queue_add_job",
                        json!({
                        "job_id": id, "job_type": "noop", "params": {}, "start": true}),
                    )
                    .await;
                    let mut r = events
                        .get(format!("http://{}/api/v1/jobs/{id}/events", server.addr))
                        .header("accept", "text/event-stream")
                        .send()
                        .await
                        .expect("job events");
                    assert_eq!(r.status(), 200, "job events");
                    let mut buf = Vec::new();
                    let mut took = None;
                    // The stream ends after the job's terminal state.
                    while let Some(chunk) = r.chunk().await.expect("job events body") {
                        buf.extend_from_slice(&chunk);
                        if took.is_none() && find(&buf, b"\"status\":\"COMPLETED\"").is_some() {
                            took = Some(t.elapsed());
                        }
                    }
                    let took = took.unwrap_or_else(|| {
                        panic!("job {id}'s stream: {}", String::from_utf8_lossy(&buf))
                    });
                    if i >= warm {
                        lat_events.push(took);
                    }
                }
            }
        }
    }
    let split = cpu.expect("measured").since(pid);
    let (mcp_s, poll_s, ev_s) = (
        Samples::new(lat_mcp),
        Samples::new(lat_poll),
        Samples::new(lat_events),
    );
    let (mcp_st, rpc_st) = (Samples::new(lat_mcp_status), Samples::new(lat_rpc_status));
    let line = |s: &Samples| {
        format!(
            "p50 {} / p99 {} (max {})",
            ms(s.pct(50.0)),
            ms(s.pct(99.0)),
            ms(s.max())
        )
    };
    eprintln!(
        "noop round trip, {n} of each, interleaved: MCP tools/call {}; JSON-RPC add (start) + \
         poll {} ({:.2} polls per job); JSON-RPC add (start) + the job's event stream {}; \
         status of a finished job: MCP tools/call queue_get_job_status {}, JSON-RPC {}; CPU {split}",
        line(&mcp_s),
        line(&poll_s),
        polls as f64 / n as f64,
        line(&ev_s),
        line(&mcp_st),
        line(&rpc_st)
    );
    rows.push(Row {
        figure: format!(
            "MCP `tools/call` of the `noop` job tool → its result (session, reqwest, {n} \
             sequential), p50 / p99"
        ),
        measured: format!("{} / {}", ms(mcp_s.pct(50.0)), ms(mcp_s.pct(99.0))),
        target: "—".into(),
        met: "—",
        vs_original: "—".into(),
    });
    rows.push(Row {
        figure: format!(
            "the same job over JSON-RPC: `queue_add_job` with `start: true`, then \
             `queue_get_job_status` until completed ({n}, interleaved), p50 / p99"
        ),
        measured: format!("{} / {}", ms(poll_s.pct(50.0)), ms(poll_s.pct(99.0))),
        target: "—".into(),
        met: "—",
        vs_original: "—".into(),
    });
    rows.push(Row {
        figure: format!(
            "the same job: `queue_add_job` with `start: true`, then `GET /api/v1/jobs/{{id}}/events` \
             until COMPLETED ({n}, interleaved), p50 / p99"
        ),
        measured: format!("{} / {}", ms(ev_s.pct(50.0)), ms(ev_s.pct(99.0))),
        target: "—".into(),
        met: "—",
        vs_original: "—".into(),
    });
    rows.push(Row {
        figure: format!(
            "transport only: status of a finished job, MCP `tools/call` of \
             `queue_get_job_status` vs JSON-RPC `queue_get_job_status` ({n} each, interleaved), \
             p50 / p99"
        ),
        measured: format!(
            "MCP {} / {}; JSON-RPC {} / {}",
            ms(mcp_st.pct(50.0)),
            ms(mcp_st.pct(99.0)),
            ms(rpc_st.pct(50.0)),
            ms(rpc_st.pct(99.0))
        ),
        target: "—".into(),
        met: "—",
        vs_original: "—".into(),
    });
    notes.push(format!(
        "round trips: MCP ÷ JSON-RPC with polling, p50 {:.2}×, p99 {:.2}×; {:.2} get_status \
         polls per job; CPU over the {} calls {split}",
        mcp_s.pct(50.0).as_secs_f64() / poll_s.pct(50.0).as_secs_f64(),
        mcp_s.pct(99.0).as_secs_f64() / poll_s.pct(99.0).as_secs_f64(),
        polls as f64 / n as f64,
        kinds * n
    ));
}

// ---------------------------------------------------------------------------------------------
// 9. `/metrics` with a large registry.

/// `n` scrapes of `/metrics` after a few to warm up: the sorted latencies and the last body.
async fn scrape(c: &mut Client, n: usize) -> (Samples, Vec<u8>) {
    for _ in 0..5 {
        c.get("/metrics").await;
    }
    let mut lat = Vec::with_capacity(n);
    let mut last = Vec::new();
    for _ in 0..n {
        let t = Instant::now();
        let (status, body) = c.get("/metrics").await;
        lat.push(t.elapsed());
        assert_eq!(status, 200);
        last = body;
    }
    (Samples::new(lat), last)
}

async fn bench_metrics(opts: &Opts, rows: &mut Vec<Row>, notes: &mut Vec<String>) {
    let n = opts.restart_jobs;
    let scrapes = 50;
    // Context: a host with no jobs.
    wait_for_quiet_machine();
    let empty = Server::start(&opts.server_args, None);
    let mut c = Client::connect(ClientKind::Raw, &empty.addr).await;
    let (lat0, body0) = scrape(&mut c, scrapes).await;
    drop(c);
    drop(empty);

    let gen_dir = tempfile::tempdir().expect("tempdir");
    let reg = gen_dir.path().join("registry.jsonl");
    write_registry(&reg, n);
    wait_for_quiet_machine();
    let server = Server::start(&opts.server_args, Some(&reg));
    let mut c = Client::connect(ClientKind::Raw, &server.addr).await;
    let (_, health) = c.get("/health").await;
    let health: Value = serde_json::from_slice(&health).expect("health JSON");
    assert_eq!(
        health["components"]["queue"]["total_jobs"].as_u64(),
        Some(n as u64),
        "every job replayed"
    );
    let (lat, body) = scrape(&mut c, scrapes).await;
    let text = String::from_utf8_lossy(&body);
    let line = format!("status=\"COMPLETED\"}} {n}");
    assert!(
        text.lines()
            .any(|l| l.starts_with("queuemgr_jobs{") && l.ends_with(&line)),
        "the scrape counts the {n} jobs:\n{text}"
    );
    eprintln!(
        "GET /metrics with {n} jobs, {scrapes} sequential: p50 {} p99 {} max {}, {} bytes \
         ({} lines); with no jobs: p50 {} p99 {}, {} bytes",
        ms(lat.pct(50.0)),
        ms(lat.pct(99.0)),
        ms(lat.max()),
        body.len(),
        text.lines().count(),
        ms(lat0.pct(50.0)),
        ms(lat0.pct(99.0)),
        body0.len()
    );
    let jobs = if n == 1_000_000 {
        "1,000,000".to_string()
    } else {
        n.to_string()
    };
    rows.push(Row {
        figure: format!(
            "`GET /metrics` with {jobs} jobs in the registry ({scrapes} sequential), p50 / p99"
        ),
        measured: format!(
            "{} / {} ({} bytes)",
            ms(lat.pct(50.0)),
            ms(lat.pct(99.0)),
            body.len()
        ),
        target: "—".into(),
        met: "—",
        vs_original: "—".into(),
    });
    notes.push(format!(
        "/metrics: with {jobs} jobs p50 {} / p99 {} / max {}, {} bytes; with none p50 {} / p99 \
         {}, {} bytes",
        ms(lat.pct(50.0)),
        ms(lat.pct(99.0)),
        ms(lat.max()),
        body.len(),
        ms(lat0.pct(50.0)),
        ms(lat0.pct(99.0)),
        body0.len()
    ));
}

// ---------------------------------------------------------------------------------------------
// 10. The job store on PostgreSQL: several hosts on one schema.

/// A connection of this process to the benchmark's PostgreSQL, for direct SQL.
async fn pg_connect(url: &str) -> tokio_postgres::Client {
    let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .expect("connect to PostgreSQL");
    tokio::spawn(conn);
    client
}

async fn pg_drop_schema(url: &str, schema: &str) {
    pg_connect(url)
        .await
        .batch_execute(&format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"))
        .await
        .expect("drop schema");
}

/// The flags of one host of a shared schema: `--server-args`, `--host-id` and `more`.
fn pg_host_args(opts: &Opts, host: &str, more: &[&str]) -> Vec<String> {
    let mut v = opts.server_args.clone();
    v.extend(["--host-id".to_string(), host.to_string()]);
    v.extend(more.iter().map(|s| s.to_string()));
    v
}

/// A JSON-RPC request body.
fn rpc_body(method: &str, params: Value) -> Vec<u8> {
    serde_json::to_vec(&json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}))
        .expect("json")
}

/// A `queue` command body.
fn queue_body(params: Value) -> Vec<u8> {
    serde_json::to_vec(&json!({"command": "queue", "params": params})).expect("json")
}

/// The job counts of the seed's `queue` `health` action (one read of the store's counters).
async fn pg_counts(c: &mut Client) -> Value {
    c.queue(&queue_body(json!({"action": "health"}))).await["jobs"].take()
}

fn pg_completed(counts: &Value) -> u64 {
    counts["by_status"]["COMPLETED"].as_u64().unwrap_or(0)
}

/// A seed `list_jobs` with a status filter: the jobs (at most `limit`).
async fn pg_list(c: &mut Client, status: &str, limit: usize) -> Vec<Value> {
    let mut data = c
        .queue(&queue_body(
            json!({"action": "list_jobs", "status_filter": status, "limit": limit}),
        ))
        .await;
    match data["jobs"].take() {
        Value::Array(v) => v,
        _ => Vec::new(),
    }
}

/// `GET /api/v1/jobs/{id}`: the job with its host, or `Null`.
async fn pg_job(c: &mut Client, id: &str) -> Value {
    let (status, body) = c.get(&format!("/api/v1/jobs/{id}")).await;
    if status != 200 {
        return Value::Null;
    }
    serde_json::from_slice(&body).unwrap_or(Value::Null)
}

struct DrainRun {
    hosts: usize,
    jobs: usize,
    /// From the due instant to the last job COMPLETED.
    took: Duration,
    rate: f64,
    inserted_after: Duration,
    insert_rate: f64,
    /// How long after the due instant the insert ended (then the drain overlapped it).
    overran: Option<Duration>,
    hosts_cpu: f64,
    other_cpu: f64,
    per_host: Vec<(String, i64)>,
    /// The hosts' claims from the due instant to the end: how many, and their mean latency
    /// (`queuemgr_store_write_seconds{op="claim"}`).
    claims: (u64, Duration),
}

/// `total` noop jobs added through the first of `hosts` hosts on a fresh schema, all due
/// `due_in` after the insert begins; timed from that instant to the last one COMPLETED.
/// `keys: Some(n)`: job `i` has `concurrency_key` `k<i % n>` and the default queue is set to
/// `key_concurrency: 1` before the insert (the `keys` part); `None`: no queue settings, no key.
async fn pg_drain(
    opts: &Opts,
    url: &str,
    hosts: usize,
    total: usize,
    due_in: Duration,
    keys: Option<usize>,
) -> DrainRun {
    let schema = format!(
        "{}pg_drain{hosts}{}",
        pg_prefix(),
        if keys.is_some() { "_keys" } else { "" }
    );
    let servers: Vec<Server> = (1..=hosts)
        .map(|h| {
            Server::start_on(
                &pg_host_args(opts, &format!("drain-{h}"), &[]),
                None,
                Some(&schema),
            )
        })
        .collect();
    let mut c = Client::connect(ClientKind::Raw, &servers[0].addr).await;
    if keys.is_some() {
        c.queue(&queue_body(
            json!({"action": "set_queue", "queue": "default", "key_concurrency": 1}),
        ))
        .await;
    }
    let per = 10_000usize;
    let due = Instant::now() + due_in;
    let run_at = format!(
        "{}Z",
        queuemgr::api::views::iso(queuemgr::job::now_micros() + due_in.as_micros() as i64)
    );
    let bodies: Vec<Vec<u8>> = (0..total.div_ceil(per))
        .map(|r| {
            let jobs: Vec<Value> = (r * per..((r + 1) * per).min(total))
                .map(|i| match keys {
                    None => json!({"job_id": format!("d{i}"), "job_type": "noop", "params": {},
                                   "run_at": run_at}),
                    Some(n) => json!({"job_id": format!("d{i}"), "job_type": "noop",
                                      "params": {}, "run_at": run_at,
                                      "concurrency_key": format!("k{}", i % n)}),
                })
                .collect();
            queue_body(json!({"action": "add_jobs", "start": true, "jobs": jobs}))
        })
        .collect();
    let t = Instant::now();
    for b in &bodies {
        c.queue_bytes(b).await;
    }
    let inserted_after = t.elapsed();
    let overran = Instant::now().checked_duration_since(due);
    if let Some(late) = overran {
        eprintln!(
            "warning: the insert ended {late:?} after the jobs' due time: the drain overlapped it"
        );
    }
    tokio::time::sleep_until(due.into()).await;
    // The server closes a keep-alive connection left idle longer than its header timeout: the
    // wait above may be longer, so poll on a fresh connection.
    let mut c = Client::connect(ClientKind::Raw, &servers[0].addr).await;
    let addrs: Vec<&str> = servers.iter().map(|s| s.addr.as_str()).collect();
    let claims0 = claim_stats(&addrs).await;
    let pids: Vec<String> = servers.iter().map(|s| s.pid().to_string()).collect();
    let hosts_ticks = || pids.iter().map(|p| proc_ticks(p)).sum::<u64>();
    let (ticks0, own0, busy0) = (hosts_ticks(), proc_ticks("self"), machine_busy_ticks());
    let mut report = due + Duration::from_secs(10);
    loop {
        let done = pg_completed(&pg_counts(&mut c).await);
        if done >= total as u64 {
            break;
        }
        if Instant::now() >= report {
            eprintln!(
                "  … {done} of {total} COMPLETED after {:.1?}",
                due.elapsed()
            );
            report += Duration::from_secs(10);
        }
        assert!(
            due.elapsed() < Duration::from_secs(3600),
            "the drain did not end within an hour ({done} of {total} COMPLETED)"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let took = due.elapsed();
    let wall = took.as_secs_f64();
    let pct = |ticks: u64| ticks as f64 / HZ / wall * 100.0;
    let hosts_used = hosts_ticks() - ticks0;
    let claims = claims_between(claims0, claim_stats(&addrs).await);
    let own = proc_ticks("self") - own0;
    let busy = machine_busy_ticks() - busy0;
    let sql = pg_connect(url).await;
    let per_host = sql
        .query(
            &format!(
                "SELECT coalesce(host, '?'), count(*) FROM \"{schema}\".jobs GROUP BY 1 ORDER BY 1"
            ),
            &[],
        )
        .await
        .expect("jobs per host")
        .iter()
        .map(|r| (r.get::<_, String>(0), r.get::<_, i64>(1)))
        .collect();
    drop(c);
    drop(servers);
    pg_drop_schema(url, &schema).await;
    DrainRun {
        hosts,
        jobs: total,
        took,
        rate: total as f64 / wall,
        inserted_after,
        insert_rate: total as f64 / inserted_after.as_secs_f64(),
        overran,
        hosts_cpu: pct(hosts_used),
        other_cpu: pct(busy.saturating_sub(hosts_used + own)),
        per_host,
        claims,
    }
}

struct FairRun {
    /// Jobs of key A (0: B alone).
    a_jobs: usize,
    /// Due instant → A's last job ended (`ended_at`, from the database).
    a_took: Duration,
    a_rate: f64,
    inserted_after: Duration,
    overran: Option<Duration>,
    /// Each B job's `started_at` − `created_at` (from its record).
    b_waits: Samples,
    /// Each B job's `completed_at` − `created_at`.
    b_turns: Samples,
    /// The B job that waited longest: its wait, and when it was added after the due instant.
    b_worst: Option<(Duration, Duration)>,
    /// Each B add's round trip (its durable insert, group commit included).
    b_adds: Samples,
    /// Each B job's `started_at` − the instant its add was answered (0 if it started before).
    b_after_ack: Samples,
    host_cpu: f64,
    other_cpu: f64,
    /// The host's claims from the due instant to the end: how many, and their mean latency
    /// (`queuemgr_store_write_seconds{op="claim"}`).
    claims: (u64, Duration),
}

/// A store operation's count and summed seconds in a `/metrics` scrape
/// (`queuemgr_store_write_seconds{op=…}`).
fn store_op(metrics: &str, op: &str) -> (u64, f64) {
    let label = format!("{{op=\"{op}\"}} ");
    let get = |name: &str| {
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(label.as_str()))
            .and_then(|v| v.trim().parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (
        get("queuemgr_store_write_seconds_count") as u64,
        get("queuemgr_store_write_seconds_sum"),
    )
}

/// The claims of hosts so far: their count and summed seconds, from each host's `/metrics`.
async fn claim_stats(addrs: &[&str]) -> (u64, f64) {
    let mut sum = (0, 0.0);
    for addr in addrs {
        let mut c = Client::connect(ClientKind::Raw, addr).await;
        let (_, body) = c.get("/metrics").await;
        let (n, secs) = store_op(&String::from_utf8_lossy(&body), "claim");
        sum = (sum.0 + n, sum.1 + secs);
    }
    sum
}

/// Claims between two [`claim_stats`]: how many, and their mean latency.
fn claims_between(before: (u64, f64), after: (u64, f64)) -> (u64, Duration) {
    let n = after.0.saturating_sub(before.0);
    (
        n,
        Duration::from_secs_f64((after.1 - before.1).max(0.0) / n.max(1) as f64),
    )
}

/// The `fair` part, one run on a fresh schema and one host: `a_jobs` noop jobs with
/// `concurrency_key` `A` (`add_jobs` with `start: true`, requests of 10,000, all due `due_in`
/// after the insert begins) and, when `with_b`, from the due instant one started noop job with
/// key `B` every 100 ms, until A's last job COMPLETED (or for `b_for`, when `a_jobs` is 0).
async fn pg_fair(
    opts: &Opts,
    url: &str,
    a_jobs: usize,
    with_b: bool,
    b_for: Duration,
    due_in: Duration,
) -> FairRun {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
    let schema = format!("{}pg_fair", pg_prefix());
    let server = Server::start_on(&pg_host_args(opts, "fair", &[]), None, Some(&schema));
    let mut c = Client::connect(ClientKind::Raw, &server.addr).await;
    let per = 10_000usize;
    let due = Instant::now() + due_in;
    let due_micros = queuemgr::job::now_micros() + due_in.as_micros() as i64;
    let run_at = format!("{}Z", queuemgr::api::views::iso(due_micros));
    let bodies: Vec<Vec<u8>> = (0..a_jobs.div_ceil(per))
        .map(|r| {
            let jobs: Vec<Value> = (r * per..((r + 1) * per).min(a_jobs))
                .map(|i| {
                    json!({"job_id": format!("a{i}"), "job_type": "noop", "params": {},
                           "run_at": run_at, "concurrency_key": "A"})
                })
                .collect();
            queue_body(json!({"action": "add_jobs", "start": true, "jobs": jobs}))
        })
        .collect();
    let t = Instant::now();
    for b in &bodies {
        c.queue_bytes(b).await;
    }
    let inserted_after = t.elapsed();
    let overran = Instant::now().checked_duration_since(due);
    if let Some(late) = overran {
        eprintln!(
            "warning: the insert ended {late:?} after the jobs' due time: the drain overlapped it"
        );
    }
    tokio::time::sleep_until(due.into()).await;
    let mut c = Client::connect(ClientKind::Raw, &server.addr).await;
    let pid = server.pid().to_string();
    let claims0 = claim_stats(&[&server.addr]).await;
    let (ticks0, own0, busy0) = (proc_ticks(&pid), proc_ticks("self"), machine_busy_ticks());
    // B: one add every 100 ms on a connection of its own, from the due instant.
    let stop = Arc::new(AtomicBool::new(false));
    let added = Arc::new(AtomicUsize::new(0));
    // Each B add's answer: when it came (µs since the epoch) and how long the add took.
    let acks: Arc<std::sync::Mutex<Vec<(String, i64, Duration)>>> = Arc::default();
    let b_task = with_b.then(|| {
        let (stop, added, addr) = (stop.clone(), added.clone(), server.addr.clone());
        let acks = acks.clone();
        tokio::spawn(async move {
            let mut bc = Client::connect(ClientKind::Raw, &addr).await;
            let mut tick = tokio::time::interval(Duration::from_millis(100));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut i = 0usize;
            loop {
                tick.tick().await;
                if stop.load(SeqCst) {
                    break;
                }
                let sent = Instant::now();
                bc.queue_bytes(&queue_body(json!({"action": "add_job",
                    "job_id": format!("b{i}"), "job_type": "noop", "params": {},
                    "start": true, "concurrency_key": "B"})))
                    .await;
                let took = sent.elapsed();
                if let Ok(mut a) = acks.lock() {
                    a.push((format!("b{i}"), queuemgr::job::now_micros(), took));
                }
                i += 1;
                added.store(i, SeqCst);
            }
        })
    });
    if a_jobs == 0 {
        tokio::time::sleep(b_for).await;
        // The server closes a keep-alive connection left idle longer than its header timeout.
        c = Client::connect(ClientKind::Raw, &server.addr).await;
    }
    let mut report = due + Duration::from_secs(10);
    loop {
        let done = pg_completed(&pg_counts(&mut c).await);
        // Read after the counts: B jobs COMPLETED then are at most this many, so A's are all
        // COMPLETED once `done` reaches A's count plus this.
        let b_now = added.load(SeqCst);
        if done >= (a_jobs + b_now) as u64 {
            if stop.swap(true, SeqCst) {
                break;
            }
            // B stopped: once its last job is COMPLETED too, the run ends.
            if let Some(t) = &b_task {
                while !t.is_finished() {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            }
            continue;
        }
        if Instant::now() >= report {
            eprintln!(
                "  … {done} of {} COMPLETED after {:.1?}",
                a_jobs + b_now,
                due.elapsed()
            );
            report += Duration::from_secs(10);
        }
        assert!(
            due.elapsed() < Duration::from_secs(3600),
            "the drain did not end within an hour ({done} of {a_jobs} + {b_now} COMPLETED)"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    if let Some(t) = b_task {
        t.await.expect("B's adds");
    }
    let wall = due.elapsed().as_secs_f64();
    let pct = |ticks: u64| ticks as f64 / HZ / wall * 100.0;
    let claims = claims_between(claims0, claim_stats(&[&server.addr]).await);
    let host_used = proc_ticks(&pid) - ticks0;
    let own = proc_ticks("self") - own0;
    let busy = machine_busy_ticks() - busy0;
    let sql = pg_connect(url).await;
    let a_took = if a_jobs == 0 {
        Duration::ZERO
    } else {
        let row = sql
            .query_one(
                &format!(
                    "SELECT count(*), max(ended_at) FROM \"{schema}\".jobs \
                     WHERE job_id LIKE 'a%' AND status = 'COMPLETED'"
                ),
                &[],
            )
            .await
            .expect("A's last end");
        let (n, last): (i64, Option<i64>) = (row.get(0), row.get(1));
        assert_eq!(n as usize, a_jobs, "A's jobs COMPLETED");
        Duration::from_micros((last.unwrap_or(due_micros) - due_micros).max(0) as u64)
    };
    let acked: std::collections::HashMap<String, i64> = acks
        .lock()
        .map(|a| a.iter().map(|(id, at, _)| (id.clone(), *at)).collect())
        .unwrap_or_default();
    let b_adds = Samples::new(
        acks.lock()
            .map(|a| a.iter().map(|(_, _, took)| *took).collect())
            .unwrap_or_default(),
    );
    let mut after_ack: Vec<Duration> = Vec::new();
    let b_rows: Vec<(i64, i64, i64)> = sql
        .query(
            &format!(
                "SELECT (record::jsonb->>'started_at')::int8, (record::jsonb->>'created_at')::int8, \
                 (record::jsonb->>'completed_at')::int8, job_id \
                 FROM \"{schema}\".jobs WHERE job_id LIKE 'b%'"
            ),
            &[],
        )
        .await
        .expect("B's jobs")
        .iter()
        .map(|r| {
            let started: Option<i64> = r.get(0);
            let completed: Option<i64> = r.get(2);
            let id: String = r.get(3);
            if let (Some(st), Some(at)) = (started, acked.get(&id)) {
                after_ack.push(Duration::from_micros((st - at).max(0) as u64));
            }
            (
                started.expect("a B job that never started"),
                r.get(1),
                completed.expect("a B job that never completed"),
            )
        })
        .collect();
    let b_worst = b_rows
        .iter()
        .max_by_key(|(s, c, _)| s - c)
        .map(|(s, c, _)| {
            (
                Duration::from_micros((s - c).max(0) as u64),
                Duration::from_micros((c - due_micros).max(0) as u64),
            )
        });
    let b_waits = Samples::new(
        b_rows
            .iter()
            .map(|(s, c, _)| Duration::from_micros((s - c).max(0) as u64))
            .collect(),
    );
    let b_turns = Samples::new(
        b_rows
            .iter()
            .map(|(_, c, e)| Duration::from_micros((e - c).max(0) as u64))
            .collect(),
    );
    drop(sql);
    drop(c);
    drop(server);
    pg_drop_schema(url, &schema).await;
    FairRun {
        a_jobs,
        a_took,
        a_rate: if a_jobs == 0 {
            0.0
        } else {
            a_jobs as f64 / a_took.as_secs_f64()
        },
        inserted_after,
        overran,
        b_waits,
        b_turns,
        b_worst,
        b_adds,
        b_after_ack: Samples::new(after_ack),
        host_cpu: pct(host_used),
        other_cpu: pct(busy.saturating_sub(host_used + own)),
        claims,
    }
}

impl FairRun {
    fn describe(&self) -> String {
        let mut s = String::new();
        if self.a_jobs > 0 {
            s += &format!(
                "A: {} jobs, due instant → last ended {:.2?} = {:.0} jobs/s (add_jobs {:.2?}{}); ",
                self.a_jobs,
                self.a_took,
                self.a_rate,
                self.inserted_after,
                if self.overran.is_some() {
                    ", overran the due time"
                } else {
                    ""
                }
            );
        }
        if !self.b_waits.0.is_empty() {
            s += &format!(
                "B: {} jobs, wait (started − created) p50 {} p99 {} max {}, turnaround \
                 (completed − created) p50 {} p99 {} max {}{}; ",
                self.b_waits.0.len(),
                ms(self.b_waits.pct(50.0)),
                ms(self.b_waits.pct(99.0)),
                ms(self.b_waits.max()),
                ms(self.b_turns.pct(50.0)),
                ms(self.b_turns.pct(99.0)),
                ms(self.b_turns.max()),
                self.b_worst.map_or(String::new(), |(w, at)| format!(
                    " (the longest, {}, added {:.2?} after the due instant)",
                    ms(w),
                    at
                ))
            );
            s += &format!(
                "B's add answered in p50 {} p99 {} max {}; started after its add was answered \
                 (0 if before) p50 {} p99 {} max {}; ",
                ms(self.b_adds.pct(50.0)),
                ms(self.b_adds.pct(99.0)),
                ms(self.b_adds.max()),
                ms(self.b_after_ack.pct(50.0)),
                ms(self.b_after_ack.pct(99.0)),
                ms(self.b_after_ack.max()),
            );
        }
        s + &format!(
            "{} claims, mean claim write {}; host CPU {:.0} %, other (PostgreSQL) {:.0} % of {} %",
            self.claims.0,
            ms(self.claims.1),
            self.host_cpu,
            self.other_cpu,
            cores() * 100
        )
    }
}

/// The slots after a leader's kill whose lag counts as the takeover's, not the steady state's.
const TAKEOVER: i64 = 6_000_000;

struct ScheduleRun {
    slots: u64,
    missed: u64,
    doubled: u64,
    /// Slot → insert, for slots outside the leader change.
    lag: Samples,
    summary: String,
}

/// `n` schedules of `* * * * * *` (overlap allow, catch-up all) added through 3 hosts on one
/// schema; after `secs / 2` the host that enqueues them (the leader, by its metrics) is killed
/// with `kill -9`; after `secs`, every schedule's slots are read from the database: each slot
/// from the schedule's first to the end must be there once.
async fn pg_schedules(opts: &Opts, url: &str, n: usize, secs: u64) -> ScheduleRun {
    let schema = format!("{}pg_schedules", pg_prefix());
    let mut servers: Vec<Server> = (1..=3)
        .map(|h| {
            Server::start_on(
                &pg_host_args(
                    opts,
                    &format!("sched-{h}"),
                    &["--lease-secs", "2", "--maintenance-interval-secs", "1"],
                ),
                None,
                Some(&schema),
            )
        })
        .collect();
    // Add them through every host, 48 at a time.
    let began = Instant::now();
    let addrs: Vec<String> = servers.iter().map(|s| s.addr.clone()).collect();
    let workers = 48;
    let mut tasks = Vec::new();
    for w in 0..workers {
        let addr = addrs[w % addrs.len()].clone();
        tasks.push(tokio::spawn(async move {
            let mut c = Client::connect(ClientKind::Raw, &addr).await;
            let mut i = w;
            while i < n {
                let body = queue_body(json!({"action": "add_schedule", "name": format!("s{i:05}"),
                    "job_type": "noop", "cron": "* * * * * *", "overlap": "allow",
                    "catch_up": "all", "params": {}}));
                let (status, _) = c.post("/api/v1/execute", &body).await;
                assert_eq!(status, 200);
                i += workers;
            }
        }));
    }
    for t in tasks {
        t.await.expect("add schedules");
    }
    let added_in = began.elapsed();
    eprintln!("  {n} schedules added in {added_in:.2?}");
    let start = Instant::now();
    tokio::time::sleep(Duration::from_secs(secs / 2)).await;
    // The leader: the host whose metrics count enqueued jobs.
    let mut leader = None;
    for (i, s) in servers.iter().enumerate() {
        let mut c = Client::connect(ClientKind::Raw, &s.addr).await;
        let (_, body) = c.get("/metrics").await;
        let text = String::from_utf8_lossy(&body);
        let enqueued = text
            .lines()
            .find_map(|l| l.strip_prefix("queuemgr_schedule_jobs_total "))
            .and_then(|v| v.trim().parse::<f64>().ok())
            .unwrap_or(0.0);
        if enqueued > 0.0 {
            leader = Some(i);
        }
    }
    let killed_at = queuemgr::job::now_micros();
    if let Some(l) = leader {
        let _ = servers[l].child.kill();
        let _ = servers[l].child.wait();
    }
    tokio::time::sleep(Duration::from_secs(secs - secs / 2)).await;
    let end = queuemgr::job::now_micros();
    // Stop enqueuing: the survivors are killed too; what they wrote is in the database.
    for s in &mut servers {
        let _ = s.child.kill();
        let _ = s.child.wait();
    }
    // Where a leader's look spent its time (the hosts log looks longer than 100 ms).
    let (mut plan_ms, mut write_ms) = (Vec::new(), Vec::new());
    for s in &servers {
        let log = std::fs::read_to_string(s._dir.path().join("server.log")).unwrap_or_default();
        for line in log.lines().filter(|l| l.contains("a slow look")) {
            let field = |k: &str| {
                line.split(&format!("{k}="))
                    .nth(1)
                    .and_then(|v| v.split_whitespace().next())
                    .and_then(|v| v.trim_matches('"').parse::<f64>().ok())
            };
            if let (Some(p), Some(w)) = (field("read_and_plan_ms"), field("write_ms")) {
                plan_ms.push(Duration::from_secs_f64(p / 1e3));
                write_ms.push(Duration::from_secs_f64(w / 1e3));
            }
        }
    }
    let (plan_ms, write_ms) = (Samples::new(plan_ms), Samples::new(write_ms));
    let looks = format!(
        "{} looks over 100 ms: read and plan p50 {} max {}, write p50 {} max {}",
        plan_ms.0.len(),
        ms(plan_ms.pct(50.0)),
        ms(plan_ms.max()),
        ms(write_ms.pct(50.0)),
        ms(write_ms.max())
    );
    let run_for = start.elapsed();
    let sql = pg_connect(url).await;
    let rows = sql
        .query(
            &format!(
                "SELECT (record::jsonb->'schedule'->>'name'), (record::jsonb->'schedule'->>'slot')::int8, created_at \
                 FROM \"{schema}\".jobs WHERE job_id LIKE 's%@%'"
            ),
            &[],
        )
        .await
        .expect("read the slots' jobs");
    let starts: std::collections::HashMap<String, i64> = sql
        .query(
            &format!(
                "SELECT name, (record::jsonb->>'created_at')::int8 FROM \"{schema}\".schedules"
            ),
            &[],
        )
        .await
        .expect("read the schedules")
        .iter()
        .map(|r| (r.get::<_, String>(0), r.get::<_, i64>(1)))
        .collect();
    let mut per: std::collections::HashMap<String, Vec<i64>> = Default::default();
    let mut lag = Vec::new();
    // The leader change: from the kill to when the next leader caught up (lag there is the
    // takeover, reported apart).
    let mut takeover = Duration::ZERO;
    for r in &rows {
        let (name, slot, created): (String, i64, i64) = (r.get(0), r.get(1), r.get(2));
        let d = Duration::from_micros(created.saturating_sub(slot).max(0) as u64);
        // The takeover: slots from just before the kill to the end of the leader's term (lease
        // 2 s, term 3 s) and a look after it.
        if slot >= killed_at - 1_000_000 && slot <= killed_at + TAKEOVER && created > killed_at {
            takeover = takeover.max(d);
        } else {
            lag.push(d);
        }
        per.entry(name).or_default().push(slot);
    }
    let (mut slots, mut missed, mut doubled) = (0u64, 0u64, 0u64);
    for (name, created) in &starts {
        let mut v = per.remove(name).unwrap_or_default();
        v.sort_unstable();
        let before = v.len();
        v.dedup();
        doubled += (before - v.len()) as u64;
        slots += v.len() as u64;
        // Every second from the first slot after its creation to the last one due before the
        // hosts were stopped (one second of margin for the last look).
        let first = (created / 1_000_000 + 1) * 1_000_000;
        let last = (end / 1_000_000 - 1) * 1_000_000;
        let want = ((last - first) / 1_000_000 + 1).max(0) as u64;
        let have = v.iter().filter(|s| **s >= first && **s <= last).count() as u64;
        missed += want.saturating_sub(have);
    }
    drop(sql);
    pg_drop_schema(url, &schema).await;
    let lag = Samples::new(lag);
    let summary = format!(
        "pg schedules: {n} every second on 3 hosts, added in {added_in:.2?}, ran {run_for:.1?}; leader {} killed half-way; {slots} slots enqueued, {missed} missed, {doubled} doubled; lag p50 {} p99 {} max {} ({} slots), takeover: slots caught up within {:.2?} of their time; {looks}",
        leader.map_or("(none found)".to_string(), |l| format!("sched-{}", l + 1)),
        ms(lag.pct(50.0)),
        ms(lag.pct(99.0)),
        ms(lag.max()),
        lag.0.len(),
        takeover,
    );
    ScheduleRun {
        slots,
        missed,
        doubled,
        lag,
        summary,
    }
}

/// Stops of a spinning `hostile` job sent to the host that does not run it: the answers'
/// latencies, the answers that did not say `stopped`, and the stops per receiving host.
async fn pg_stops(opts: &Opts, url: &str, n: usize) -> (Samples, Vec<String>, [usize; 2]) {
    let schema = format!("{}pg_stop", pg_prefix());
    let names = ["stop-a", "stop-b"];
    let servers: Vec<Server> = names
        .iter()
        .map(|h| Server::start_on(&pg_host_args(opts, h, &[]), None, Some(&schema)))
        .collect();
    let mut cs = [
        Client::connect(ClientKind::Raw, &servers[0].addr).await,
        Client::connect(ClientKind::Raw, &servers[1].addr).await,
    ];
    let warm = (n / 10).max(1);
    let mut lat = Vec::with_capacity(n);
    let mut bad = Vec::new();
    let mut through = [0usize; 2];
    for i in 0..warm + n {
        let id = format!("spin-{i}");
        cs[0]
            .queue(&queue_body(
                json!({"action": "add_job", "job_id": id, "job_type": "hostile",
                "params": {"mode": "spin"}, "start": true}),
            ))
            .await;
        let waited = Instant::now();
        let host = loop {
            let j = pg_job(&mut cs[0], &id).await;
            if j["status"] == "RUNNING" {
                break j["host"].as_str().unwrap_or_default().to_string();
            }
            assert!(
                waited.elapsed() < Duration::from_secs(30),
                "{id} not RUNNING after 30 s: {j}"
            );
            tokio::time::sleep(Duration::from_millis(2)).await;
        };
        // Let the guest spin, then ask the host that does not run it.
        tokio::time::sleep(Duration::from_millis(50)).await;
        let other = usize::from(host == names[0]);
        let body = rpc_body("queue_stop_job", json!({"job_id": id}));
        let t = Instant::now();
        let (status, answer) = cs[other].post("/api/jsonrpc", &body).await;
        let took = t.elapsed();
        let v: Value = serde_json::from_slice(&answer).unwrap_or(Value::Null);
        if status != 200 || v["result"]["data"]["actual_status"] != "stopped" {
            bad.push(format!(
                "{id} (on {host}, stop via {}): HTTP {status} {v} after {took:?}",
                names[other]
            ));
        }
        if i >= warm {
            lat.push(took);
            through[other] += 1;
        }
    }
    drop(cs);
    drop(servers);
    pg_drop_schema(url, &schema).await;
    (Samples::new(lat), bad, through)
}

/// Five `noop` runs of 60 s on host A (lease 5 s), then A killed with SIGKILL: how long after
/// the kill each is RUNNING again (attempt 2) on host B.
async fn pg_rescue(opts: &Opts, url: &str, rep: usize) -> Vec<Duration> {
    let schema = format!("{}pg_rescue{rep}", pg_prefix());
    let flags = ["--lease-secs", "5", "--maintenance-interval-secs", "1"];
    let jobs = 5;
    let mut a = Server::start_on(&pg_host_args(opts, "rescue-a", &flags), None, Some(&schema));
    let mut ca = Client::connect(ClientKind::Raw, &a.addr).await;
    let batch: Vec<Value> = (0..jobs)
        .map(|i| {
            json!({"job_id": format!("r{i}"), "job_type": "noop",
                   "params": {"sleep_ms": 60_000}, "max_attempts": 2})
        })
        .collect();
    ca.queue(&queue_body(
        json!({"action": "add_jobs", "start": true, "jobs": batch}),
    ))
    .await;
    let waited = Instant::now();
    while pg_list(&mut ca, "RUNNING", 100).await.len() < jobs {
        assert!(
            waited.elapsed() < Duration::from_secs(30),
            "the jobs did not all run"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    drop(ca);
    // B starts once A runs them all (B would otherwise take a share of the jobs).
    let b = Server::start_on(&pg_host_args(opts, "rescue-b", &flags), None, Some(&schema));
    let mut cb = Client::connect(ClientKind::Raw, &b.addr).await;
    for i in 0..jobs {
        let j = pg_job(&mut cb, &format!("r{i}")).await;
        assert_eq!(j["host"], "rescue-a", "r{i} runs on A: {j}");
    }
    let killed = Instant::now();
    a.child.kill().expect("kill -9 host A");
    let _ = a.child.wait();
    let mut back: Vec<Option<Duration>> = vec![None; jobs];
    while back.iter().any(Option::is_none) {
        for j in pg_list(&mut cb, "RUNNING", 100).await {
            let i: usize = j["job_id"]
                .as_str()
                .and_then(|id| id.strip_prefix('r'))
                .and_then(|n| n.parse().ok())
                .unwrap_or(usize::MAX);
            if j["attempt"] == 2 && i < jobs && back[i].is_none() {
                back[i] = Some(killed.elapsed());
            }
        }
        assert!(
            killed.elapsed() < Duration::from_secs(120),
            "not every job was rescued within 120 s: {back:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    for i in 0..jobs {
        let j = pg_job(&mut cb, &format!("r{i}")).await;
        assert_eq!(j["host"], "rescue-b", "r{i} runs on B: {j}");
    }
    drop(cb);
    drop(b);
    drop(a);
    pg_drop_schema(url, &schema).await;
    back.into_iter().flatten().collect()
}

/// One host on a fresh schema, `n` COMPLETED rows inserted with SQL: list and count latencies.
async fn pg_finished(
    opts: &Opts,
    url: &str,
    n: usize,
    rows: &mut Vec<Row>,
    notes: &mut Vec<String>,
) {
    let schema = format!("{}pg_finished", pg_prefix());
    // The host applies the migrations; the rows then go in behind its back.
    let server = Server::start_on(&pg_host_args(opts, "finished", &[]), None, Some(&schema));
    let template = serde_json::to_string(&JobRecord {
        event: Event::Completed,
        job_type: "noop".into(),
        status: Status::Completed,
        progress: 100,
        params: queuemgr::job::Json::new(&json!({})),
        result: Some(queuemgr::job::Json::new(&json!({}))),
        runs: 1,
        attempt: 1,
        host: Some("finished".into()),
        ..JobRecord::default()
    })
    .expect("record JSON");
    let base = queuemgr::job::now_micros() - n as i64 * 1_000 - 60_000_000;
    let sql = pg_connect(url).await;
    let t = Instant::now();
    // Every column the store reads, and the record with this row's id and times; the
    // statement trigger adds the rows to the per-status counters.
    let inserted = sql
        .execute(
            &format!(
                "INSERT INTO \"{schema}\".jobs (job_id, job_type, status, priority, host, \
                 created_at, updated_at, ended_at, record)
                 SELECT id, 'noop', 'COMPLETED', 0, 'finished', c, c + 2000, c + 2000,
                   ($1::text::jsonb || jsonb_build_object('job_id', id, 'created_at', c,
                     'updated_at', c + 2000, 'started_at', c + 100, 'completed_at', c + 2000))::text
                 FROM (SELECT 'done-' || lpad(i::text, 7, '0') AS id, $2::int8 + i * 1000 AS c
                       FROM generate_series(0, $3::int8 - 1) AS i) g"
            ),
            &[&template, &base, &(n as i64)],
        )
        .await
        .expect("insert finished jobs");
    assert_eq!(inserted, n as u64);
    let insert_took = t.elapsed();
    let t = Instant::now();
    for table in ["jobs", "job_counts"] {
        sql.batch_execute(&format!("VACUUM ANALYZE \"{schema}\".{table}"))
            .await
            .expect("vacuum");
    }
    let vacuum_took = t.elapsed();
    // The insert outlasts the server's idle keep-alive limit: a fresh connection.
    let mut c = Client::connect(ClientKind::Raw, &server.addr).await;
    let counts = pg_counts(&mut c).await;
    assert_eq!(
        (counts["total"].as_u64(), pg_completed(&counts)),
        (Some(n as u64), n as u64),
        "the counters count the rows: {counts}"
    );
    let one = c.queue(&action("get_status", "done-0000000")).await;
    assert_eq!(one["status"]["status"], "COMPLETED", "{one}");
    eprintln!(
        "{n} COMPLETED rows inserted with SQL in {insert_took:?}, VACUUM ANALYZE {vacuum_took:?}"
    );
    wait_for_quiet_machine();
    let calls: [(&str, &str, Vec<u8>); 4] = [
        (
            "`queue_list_jobs` first page (default: 100, oldest first)",
            "/api/jsonrpc",
            rpc_body("queue_list_jobs", json!({})),
        ),
        (
            "`queue_list_jobs` with `status_filter` completed, first page",
            "/api/jsonrpc",
            rpc_body("queue_list_jobs", json!({"status_filter": "completed"})),
        ),
        (
            "counts: `queue` `health` action",
            "/api/v1/execute",
            queue_body(json!({"action": "health"})),
        ),
        (
            "counts: `queue_health`",
            "/api/jsonrpc",
            rpc_body("queue_health", json!({})),
        ),
    ];
    // The first pages: 100 jobs of the n.
    for (_, path, body) in &calls[..2] {
        let (_, bytes) = c.post(path, body).await;
        let v: Value = serde_json::from_slice(&bytes).expect("list JSON");
        let data = &v["result"]["data"];
        assert_eq!(data["jobs"].as_array().map(Vec::len), Some(100), "{v}");
        assert_eq!(data["total_count"].as_u64(), Some(n as u64));
    }
    let requests = 200;
    let mut lat: Vec<Vec<Duration>> = vec![Vec::with_capacity(requests); calls.len()];
    for round in 0..requests + 10 {
        for (k, (_, path, body)) in calls.iter().enumerate() {
            let t = Instant::now();
            let (status, bytes) = c.post(path, body).await;
            let took = t.elapsed();
            assert!(
                status == 200 && find(&bytes, b"\"success\":true").is_some(),
                "HTTP {status}: {}",
                String::from_utf8_lossy(&bytes)
            );
            if round >= 10 {
                lat[k].push(took);
            }
        }
    }
    let jobs = if n == 1_000_000 {
        "1,000,000".to_string()
    } else {
        n.to_string()
    };
    for ((name, _, _), lat) in calls.iter().zip(lat) {
        let lat = Samples::new(lat);
        eprintln!(
            "{jobs} COMPLETED rows, {name}: p50 {} p99 {} max {} ({requests} sequential)",
            ms(lat.pct(50.0)),
            ms(lat.pct(99.0)),
            ms(lat.max())
        );
        rows.push(Row {
            figure: format!("PostgreSQL, {jobs} COMPLETED jobs: {name}, p50 / p99"),
            measured: format!("{} / {}", ms(lat.pct(50.0)), ms(lat.pct(99.0))),
            target: "p99 ≤ 10 ms".into(),
            met: met(lat.pct(99.0) <= Duration::from_millis(10)),
            vs_original: "—".into(),
        });
    }
    notes.push(format!(
        "PostgreSQL, {jobs} COMPLETED rows (one INSERT … SELECT of {insert_took:.1?}, then \
         VACUUM ANALYZE of {vacuum_took:.1?}); the four calls interleaved, {requests} of each \
         after 10 to warm up, one keep-alive connection"
    ));
    drop(c);
    drop(server);
    pg_drop_schema(url, &schema).await;
}

async fn bench_pg(opts: &Opts, rows: &mut Vec<Row>, notes: &mut Vec<String>) {
    let Some(url) = pg_url() else {
        eprintln!("pg: QUEUEMGR_BENCH_PG is not set: the PostgreSQL section does nothing");
        notes.push("pg: skipped (QUEUEMGR_BENCH_PG is not set)".into());
        return;
    };
    let url = url.as_str();

    // 1. Drain of a backlog by 1, 2 and 3 hosts.
    let total = if opts.quick { 10_000 } else { 100_000 };
    let mut runs: Vec<DrainRun> = Vec::new();
    for hosts in 1..=3 {
        if !opts.pg_part(&format!("drain{hosts}")) {
            continue;
        }
        wait_for_quiet_machine();
        // Due once the insert has surely ended: a guess at first, then from the last insert.
        let due_in = runs.last().map_or(
            Duration::from_secs(5) + Duration::from_micros(total as u64 * 200),
            |r| Duration::from_secs(2) + r.inserted_after * 3 / 2,
        );
        let r = pg_drain(opts, url, hosts, total, due_in, None).await;
        eprintln!(
            "drain, {hosts} host(s): {} jobs in {:?} = {:.0} jobs/s (hosts' CPU {:.0} %, other \
             (PostgreSQL) {:.0} % of {} %); add_jobs took {:?} = {:.0} jobs/s; jobs per host {:?}; \
             {} claims, mean claim write {}",
            r.jobs,
            r.took,
            r.rate,
            r.hosts_cpu,
            r.other_cpu,
            cores() * 100,
            r.inserted_after,
            r.insert_rate,
            r.per_host,
            r.claims.0,
            ms(r.claims.1)
        );
        runs.push(r);
    }
    let jobs = if total == 100_000 {
        "100,000".to_string()
    } else {
        total.to_string()
    };
    let one = runs.first().map_or(1.0, |r| r.rate);
    for r in &runs {
        rows.push(Row {
            figure: format!(
                "PostgreSQL: drain of {jobs} due noop jobs by {} host(s) on one schema, due \
                 instant → last COMPLETED",
                r.hosts
            ),
            measured: format!(
                "{:.0} jobs/s{}{}",
                r.rate,
                if r.hosts > 1 {
                    format!(" ({} of 1 host)", ratio(r.rate / one))
                } else {
                    String::new()
                },
                if r.overran.is_some() {
                    " (insert overran the due time)"
                } else {
                    ""
                }
            ),
            target: if r.hosts == 1 {
                "≥ 30,000 jobs/s".into()
            } else {
                "—".into()
            },
            met: if r.hosts == 1 {
                met(r.rate >= 30_000.0)
            } else {
                "—"
            },
            vs_original: ratio(r.rate / PY_JOBS_PER_SEC),
        });
        notes.push(format!(
            "pg drain, {} host(s): {:.0} jobs/s ({:?}); hosts' CPU {:.0} %, everything else \
             (mostly PostgreSQL) {:.0} % of {} %; jobs per host {:?}; add_jobs {:.0} jobs/s; \
             {} claims, mean claim write {}",
            r.hosts,
            r.rate,
            r.took,
            r.hosts_cpu,
            r.other_cpu,
            cores() * 100,
            r.per_host,
            r.insert_rate,
            r.claims.0,
            ms(r.claims.1)
        ));
    }
    let inserts: Vec<String> = runs
        .iter()
        .map(|r| format!("{:.0}", r.insert_rate))
        .collect();
    if !inserts.is_empty() {
        rows.push(Row {
            figure: format!(
                "PostgreSQL: `add_jobs` + `start: true` of {jobs} noop jobs in requests of 10,000 \
             (1 / 2 / 3 hosts up)"
            ),
            measured: format!("{} jobs/s", inserts.join(" / ")),
            target: "—".into(),
            met: "—",
            vs_original: "—".into(),
        });
    }

    // Due once the insert has surely ended: a guess at first, then from the longest insert yet.
    let mut longest_insert: Option<Duration> = runs.iter().map(|r| r.inserted_after).max();
    let due_after = |longest: Option<Duration>| {
        longest.map_or(
            Duration::from_secs(5) + Duration::from_micros(total as u64 * 200),
            |d| Duration::from_secs(2) + d * 3 / 2,
        )
    };
    let pairs: usize = std::env::var("QUEUEMGR_BENCH_PG_PAIRS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if opts.quick { 1 } else { 2 });

    // 1b. Fairness: key B's job every 100 ms while key A's backlog drains.
    if opts.pg_part("fair") {
        let b_secs: u64 = std::env::var("QUEUEMGR_BENCH_FAIR_SECS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(if opts.quick { 5 } else { 15 });
        wait_for_quiet_machine();
        let alone = pg_fair(
            opts,
            url,
            0,
            true,
            Duration::from_secs(b_secs),
            Duration::from_secs(1),
        )
        .await;
        eprintln!("fair, B alone: {}", alone.describe());
        notes.push(format!(
            "pg fair, B alone for {b_secs} s: {}",
            alone.describe()
        ));
        let (mut solo, mut both) = (Vec::new(), Vec::new());
        for pair in 1..=pairs {
            for with_b in [false, true] {
                wait_for_quiet_machine();
                let r = pg_fair(
                    opts,
                    url,
                    total,
                    with_b,
                    Duration::ZERO,
                    due_after(longest_insert),
                )
                .await;
                longest_insert = longest_insert.max(Some(r.inserted_after));
                let what = if with_b { "A and B" } else { "A alone" };
                eprintln!("fair, {what}, pair {pair}: {}", r.describe());
                notes.push(format!("pg fair, {what}, pair {pair}: {}", r.describe()));
                (if with_b { &mut both } else { &mut solo }).push(r);
            }
        }
        // B's waits of every run with A, pooled.
        let with_a = Samples::new(both.iter().flat_map(|r| r.b_waits.0.clone()).collect());
        let turns_a = Samples::new(both.iter().flat_map(|r| r.b_turns.0.clone()).collect());
        // Alone, an add with `start: true` on an idle host claims the job in its own write:
        // `started_at` = `created_at`, a wait of 0, and no ratio to take.
        let alone_zero = alone.b_waits.pct(99.0).is_zero();
        let p99_ratio =
            with_a.pct(99.0).as_secs_f64() / alone.b_waits.pct(99.0).as_secs_f64().max(1e-9);
        let turn_ratio =
            turns_a.pct(99.0).as_secs_f64() / alone.b_turns.pct(99.0).as_secs_f64().max(1e-9);
        let mean = |v: &[FairRun]| v.iter().map(|r| r.a_rate).sum::<f64>() / v.len() as f64;
        let tput_ratio = mean(&both) / mean(&solo);
        let rates = |v: &[FairRun]| {
            v.iter()
                .map(|r| format!("{:.0}", r.a_rate))
                .collect::<Vec<_>>()
                .join(", ")
        };
        rows.push(Row {
            figure: format!(
                "PostgreSQL, 1 host: key B adds a noop job every 100 ms while key A's backlog of \
                 {jobs} drains: B's wait (started − created) p50 / p99 / max with A ({} jobs \
                 over {} runs) vs alone ({} jobs, {b_secs} s), ratio of the p99s",
                with_a.0.len(),
                both.len(),
                alone.b_waits.0.len()
            ),
            measured: format!(
                "{} / {} / {} vs {} / {} / {}: {}",
                ms(with_a.pct(50.0)),
                ms(with_a.pct(99.0)),
                ms(with_a.max()),
                ms(alone.b_waits.pct(50.0)),
                ms(alone.b_waits.pct(99.0)),
                ms(alone.b_waits.max()),
                if alone_zero {
                    "no ratio (alone, each add claimed its job in its own write)".to_string()
                } else {
                    format!("{p99_ratio:.2}×")
                }
            ),
            target: "p99 ≤ 2× alone".into(),
            met: if alone_zero {
                "—"
            } else {
                met(p99_ratio <= 2.0)
            },
            vs_original: "—".into(),
        });
        rows.push(Row {
            figure: "PostgreSQL, 1 host: the same, B's turnaround (completed − created) p50 / p99 \
                     / max with A vs alone, ratio of the p99s"
                .to_string(),
            measured: format!(
                "{} / {} / {} vs {} / {} / {}: {turn_ratio:.2}×",
                ms(turns_a.pct(50.0)),
                ms(turns_a.pct(99.0)),
                ms(turns_a.max()),
                ms(alone.b_turns.pct(50.0)),
                ms(alone.b_turns.pct(99.0)),
                ms(alone.b_turns.max()),
            ),
            target: "p99 ≤ 2× alone".into(),
            met: met(turn_ratio <= 2.0),
            vs_original: "—".into(),
        });
        rows.push(Row {
            figure: format!(
                "PostgreSQL, 1 host: key A's drain of {jobs} due noop jobs (due instant → last \
                 ended) with B's job every 100 ms vs alone, runs alternating"
            ),
            measured: format!(
                "{:.0} vs {:.0} jobs/s (with B: {}; alone: {}): {:.2}×",
                mean(&both),
                mean(&solo),
                rates(&both),
                rates(&solo),
                tput_ratio
            ),
            target: "≥ 0.9× alone".into(),
            met: met(tput_ratio >= 0.9),
            vs_original: "—".into(),
        });
    }

    // 1c. A per-key limit on 1,000 keys against no limit, runs alternating.
    if opts.pg_part("keys") {
        let (mut free, mut keyed) = (Vec::new(), Vec::new());
        for pair in 1..=pairs {
            for keys in [None, Some(1000)] {
                wait_for_quiet_machine();
                let r = pg_drain(opts, url, 1, total, due_after(longest_insert), keys).await;
                longest_insert = longest_insert.max(Some(r.inserted_after));
                let what = if keys.is_some() {
                    "1,000 keys, key_concurrency 1"
                } else {
                    "no key, no queue settings"
                };
                let line = format!(
                    "{what}, pair {pair}: {} jobs in {:?} = {:.0} jobs/s{} (host CPU {:.0} %, \
                     other (PostgreSQL) {:.0} % of {} %); add_jobs {:?} = {:.0} jobs/s; {} \
                     claims, mean claim write {}",
                    r.jobs,
                    r.took,
                    r.rate,
                    if r.overran.is_some() {
                        " (insert overran the due time)"
                    } else {
                        ""
                    },
                    r.hosts_cpu,
                    r.other_cpu,
                    cores() * 100,
                    r.inserted_after,
                    r.insert_rate,
                    r.claims.0,
                    ms(r.claims.1)
                );
                eprintln!("keys, {line}");
                notes.push(format!("pg keys, {line}"));
                (if keys.is_some() {
                    &mut keyed
                } else {
                    &mut free
                })
                .push(r);
            }
        }
        let mean = |v: &[DrainRun]| v.iter().map(|r| r.rate).sum::<f64>() / v.len() as f64;
        let rates = |v: &[DrainRun]| {
            v.iter()
                .map(|r| format!("{:.0}", r.rate))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let k = mean(&keyed) / mean(&free);
        rows.push(Row {
            figure: format!(
                "PostgreSQL, 1 host: drain of {jobs} due noop jobs over 1,000 concurrency keys \
                 with `key_concurrency: 1` vs without keys or settings, runs alternating"
            ),
            measured: format!(
                "{:.0} vs {:.0} jobs/s (keyed: {}; unlimited: {}): {:.2}×",
                mean(&keyed),
                mean(&free),
                rates(&keyed),
                rates(&free),
                k
            ),
            target: "≥ 0.8× unlimited".into(),
            met: met(k >= 0.8),
            vs_original: "—".into(),
        });
    }

    // 2. A stop sent to the host that does not run the job.
    if opts.pg_part("stop") {
        wait_for_quiet_machine();
        let n = if opts.quick { 10 } else { 100 };
        let (lat, bad, through) = pg_stops(opts, url, n).await;
        eprintln!(
            "stop via the other host, {n}: p50 {} p99 {} max {}; through A {}, through B {}; {} \
         answers not `stopped`",
            ms(lat.pct(50.0)),
            ms(lat.pct(99.0)),
            ms(lat.max()),
            through[0],
            through[1],
            bad.len()
        );
        for b in &bad {
            eprintln!("  not stopped: {b}");
        }
        rows.push(Row {
        figure: format!(
            "PostgreSQL: `queue_stop_job` of a spinning job sent to the other of 2 hosts, call → \
             answer (stopped), {n} stops, p50 / p99 / max"
        ),
        measured: format!(
            "{} / {} / {}{}",
            ms(lat.pct(50.0)),
            ms(lat.pct(99.0)),
            ms(lat.max()),
            if bad.is_empty() {
                String::new()
            } else {
                format!(" ({} not stopped)", bad.len())
            }
        ),
        target: "p50 and p99 ≤ 100 ms".into(),
        met: met(bad.is_empty() && lat.pct(99.0) <= Duration::from_millis(100)),
        vs_original: "—".into(),
    });
    }
    // 3. kill -9 of a host: its runs rescued by the other.
    if opts.pg_part("rescue") {
        let reps = if opts.quick { 1 } else { 3 };
        let mut back = Vec::new();
        for rep in 0..reps {
            wait_for_quiet_machine();
            let r = pg_rescue(opts, url, rep).await;
            eprintln!("kill -9, repetition {rep}: RUNNING again on B after {r:.2?}");
            notes.push(format!(
                "pg kill -9, repetition {}: RUNNING again on B after {r:.2?}",
                rep + 1
            ));
            back.extend(r);
        }
        let back = Samples::new(back);
        rows.push(Row {
            figure: format!(
                "PostgreSQL: kill -9 of the host running 5 jobs (`--lease-secs 5 \
             --maintenance-interval-secs 1`, retry backoff 1 s) → each RUNNING again on the \
             other host, min / median / max of {}",
                back.0.len()
            ),
            measured: format!(
                "{:.2} / {:.2} / {:.2} s",
                back.pct(0.0).as_secs_f64(),
                back.pct(50.0).as_secs_f64(),
                back.max().as_secs_f64()
            ),
            target: "lease: 5 s".into(),
            met: "—",
            vs_original: "—".into(),
        });
    }
    // 5. Periodic jobs: thousands of schedules every second on 3 hosts, the leader killed.
    if opts.pg_part("schedules") {
        wait_for_quiet_machine();
        let n: usize = std::env::var("QUEUEMGR_BENCH_SCHEDULES")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(if opts.quick { 1_000 } else { 10_000 });
        let secs: u64 = std::env::var("QUEUEMGR_BENCH_SCHEDULE_SECS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(if opts.quick { 20 } else { 60 });
        let r = pg_schedules(opts, url, n, secs).await;
        eprintln!("{}", r.summary);
        notes.push(r.summary.clone());
        rows.push(Row {
            figure: format!(
                "PostgreSQL: {n} schedules of `* * * * * *` on 3 hosts for {secs} s, the leader \
                 killed half-way (catch-up all): slots enqueued once / missed / doubled"
            ),
            measured: format!("{} / {} / {}", r.slots, r.missed, r.doubled),
            target: "every slot once".into(),
            met: met(r.missed == 0 && r.doubled == 0),
            vs_original: "—".into(),
        });
        rows.push(Row {
            figure: "PostgreSQL: the same, enqueue lag after the slot (slot → durable insert), \
                 p50 / p99 / max, outside the leader change"
                .to_string(),
            measured: format!(
                "{} / {} / {}",
                ms(r.lag.pct(50.0)),
                ms(r.lag.pct(99.0)),
                ms(r.lag.max())
            ),
            target: "p99 ≤ 100 ms".into(),
            met: met(r.lag.pct(99.0) <= Duration::from_millis(100)),
            vs_original: "—".into(),
        });
    }
    // 4. Lists and counts over many finished jobs.
    if opts.pg_part("rows") {
        wait_for_quiet_machine();
        pg_finished(opts, url, opts.restart_jobs, rows, notes).await;
    }
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
        if opts.wants("auth") {
            bench_auth(&opts, &mut rows, &mut notes).await;
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
        if opts.wants("sse") {
            for &subscribers in &opts.sse_clients {
                bench_sse(&opts, subscribers, &mut rows, &mut notes).await;
            }
        }
        if opts.wants("ws") {
            bench_ws(&opts, &mut rows, &mut notes).await;
        }
        if opts.wants("mcp") {
            bench_mcp(&opts, &mut rows, &mut notes).await;
        }
        if opts.wants("metrics") {
            bench_metrics(&opts, &mut rows, &mut notes).await;
        }
        if opts.wants("pg") {
            bench_pg(&opts, &mut rows, &mut notes).await;
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
