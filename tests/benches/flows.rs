//! Workflow benchmarks (`cargo bench -p queuemgr-tests --bench flows`), each against real
//! `queuemgr serve` processes (release build) over HTTP, on the local store and on PostgreSQL
//! (the machine's, a schema of its own), printing a table:
//!
//! 1. **fan-out/fan-in**: one `fan_out` parent spawning N `noop` children and joining them all,
//!    from the request to the parent COMPLETED, against N independent `noop` jobs added with
//!    one `add_jobs` and started, from the request to the last COMPLETED. Fresh servers for each
//!    run; the two kinds take turns (this VM drifts between runs).
//! 2. **resume**: the last child's end (its `completed_at`) → its parent running again (the
//!    parent's last `started_at`), over sequential one-child flows: p50 and p99.
//! 3. **steps**: one job running 1,000 trivial durable steps, `started_at` → `completed_at`.
//! 4. **memory**: the server's resident memory with 100,000 jobs suspended on an event, against
//!    100,000 jobs added and never started (and the heap's live allocations, from `/metrics`).
//!
//! Flags: `--n=10000` (children of 1), `--rounds=3`, `--flows=200` (2), `--parked=100000` (4),
//! `--only=fanout,resume,steps,memory`, `--stores=local,pg`. `QUEUEMGR_BENCH_SERVER_ARGS`:
//! extra server flags, space-separated.

use queuemgr_tests::{Server, job_wasm};
use serde_json::{Value, json};
use std::time::{Duration, Instant};

struct Opts {
    n: usize,
    rounds: usize,
    flows: usize,
    parked: usize,
    only: Option<Vec<String>>,
    stores: Vec<String>,
}

impl Opts {
    fn parse() -> Opts {
        let mut o = Opts {
            n: 10_000,
            rounds: 3,
            flows: 200,
            parked: 100_000,
            only: None,
            stores: vec!["local".into(), "pg".into()],
        };
        for a in std::env::args().skip(1) {
            let (k, v) = a.split_once('=').unwrap_or((a.as_str(), ""));
            match k {
                "--n" => o.n = v.parse().unwrap_or(o.n),
                "--rounds" => o.rounds = v.parse().unwrap_or(o.rounds),
                "--flows" => o.flows = v.parse().unwrap_or(o.flows),
                "--parked" => o.parked = v.parse().unwrap_or(o.parked),
                "--only" => o.only = Some(v.split(',').map(str::to_string).collect()),
                "--stores" => o.stores = v.split(',').map(str::to_string).collect(),
                _ => {}
            }
        }
        o
    }

    fn wants(&self, s: &str) -> bool {
        self.only.as_ref().is_none_or(|o| o.iter().any(|x| x == s))
    }
}

/// A server on `store` ("local", or "pg" with a fresh schema) with `fan_out` loaded.
async fn server(store: &str, tag: &str) -> (Server, Option<(String, String)>) {
    let mut args: Vec<String> = vec!["--max-concurrent-jobs".into(), "64".into()];
    let mut pg = None;
    if store == "pg" {
        let url = queuemgr_tests::postgres_url().await;
        let schema = format!("qmb{}_{tag}", std::process::id());
        args.extend([
            "--store".into(),
            url.clone(),
            "--store-schema".into(),
            schema.clone(),
        ]);
        pg = Some((url, schema));
    }
    // Extra server flags for an experiment (e.g. `--events-keep 1`), space-separated.
    if let Ok(extra) = std::env::var("QUEUEMGR_BENCH_SERVER_ARGS") {
        args.extend(extra.split_whitespace().map(str::to_string));
    }
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let s = Server::start(env!("CARGO_BIN_EXE_queuemgr-e2e-server"), &refs).await;
    std::fs::copy(job_wasm("fan_out"), s.jobs_dir().join("fan_out.wasm")).unwrap();
    queuemgr_tests::wait_job_types(&s, "fan_out", |v| {
        queuemgr_tests::type_info(v, "fan_out").is_some()
    })
    .await;
    (s, pg)
}

async fn done(s: Server, pg: Option<(String, String)>) {
    drop(s);
    if let Some((url, schema)) = pg {
        queuemgr_tests::drop_schemas(&url, &schema, std::slice::from_ref(&schema)).await;
    }
}

async fn completed(s: &Server) -> u64 {
    let v = s
        .queue(json!({"action": "list_jobs", "status_filter": "COMPLETED", "limit": 1}))
        .await;
    v["total_count"].as_u64().unwrap_or(0)
}

async fn status(s: &Server, id: &str) -> Value {
    let v = s.queue(json!({"action": "get_status", "job_id": id})).await;
    v["status"].clone()
}

async fn wait_completed(s: &Server, id: &str) -> Value {
    let end = Instant::now() + Duration::from_secs(600);
    loop {
        let j = status(s, id).await;
        match j["status"].as_str() {
            Some("COMPLETED") => return j,
            Some("ERROR") | Some("STOPPED") => panic!("{id} ended: {j}"),
            _ => {}
        }
        assert!(Instant::now() < end, "{id} did not complete: {j}");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

fn micros(iso: &Value) -> i64 {
    chrono::NaiveDateTime::parse_from_str(iso.as_str().unwrap_or(""), "%Y-%m-%dT%H:%M:%S%.f")
        .map(|t| t.and_utc().timestamp_micros())
        .unwrap_or(0)
}

fn pct(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(f64::total_cmp);
    v[((v.len() as f64 - 1.0) * p).round() as usize]
}

/// N independent jobs, one `add_jobs`, started: request → the last COMPLETED (seconds).
async fn independent(store: &str, n: usize) -> f64 {
    let (s, pg) = server(store, "ind").await;
    let jobs: Vec<Value> = (0..n)
        .map(|i| json!({"job_id": format!("j{i}"), "job_type": "noop", "params": {}}))
        .collect();
    let t = Instant::now();
    s.queue(json!({"action": "add_jobs", "start": true, "jobs": jobs}))
        .await;
    while completed(&s).await < n as u64 {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let took = t.elapsed().as_secs_f64();
    done(s, pg).await;
    took
}

/// One parent spawning N `noop` children and joining them: request → parent COMPLETED.
async fn fan(store: &str, n: usize) -> f64 {
    let (s, pg) = server(store, "fan").await;
    let t = Instant::now();
    s.queue(
        json!({"action": "add_job", "job_id": "p", "job_type": "fan_out", "start": true,
        "params": {"width": n, "depth": 1, "leaf": "noop"}}),
    )
    .await;
    let j = wait_completed(&s, "p").await;
    let took = t.elapsed().as_secs_f64();
    assert_eq!(j["result"]["leaves"], n, "{j}");
    done(s, pg).await;
    took
}

#[tokio::main]
async fn main() {
    let o = Opts::parse();
    let host = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        })
        .unwrap_or_default();
    println!("# flows bench: {} cores, {host}", num_cpus());
    for store in &o.stores {
        if o.wants("fanout") {
            let (mut a, mut b) = (Vec::new(), Vec::new());
            for r in 0..o.rounds {
                // Take turns at going first.
                if r % 2 == 0 {
                    a.push(independent(store, o.n).await);
                    b.push(fan(store, o.n).await);
                } else {
                    b.push(fan(store, o.n).await);
                    a.push(independent(store, o.n).await);
                }
            }
            for (i, (x, y)) in a.iter().zip(&b).enumerate() {
                println!(
                    "| {store} | fan-out/fan-in of {} | round {} | add_jobs {:.3} s | one parent {:.3} s | ratio {:.2} |",
                    o.n,
                    i + 1,
                    x,
                    y,
                    y / x
                );
            }
            let (ma, mb) = (pct(&mut a, 0.5), pct(&mut b, 0.5));
            println!(
                "| {store} | fan-out/fan-in of {} | median | add_jobs {ma:.3} s | one parent {mb:.3} s | ratio {:.2} |",
                o.n,
                mb / ma
            );
        }
        if o.wants("resume") {
            let (s, pg) = server(store, "resume").await;
            let mut lat = Vec::with_capacity(o.flows);
            for i in 0..o.flows {
                let id = format!("r{i}");
                s.queue(
                    json!({"action": "add_job", "job_id": id, "job_type": "fan_out",
                    "start": true, "params": {"width": 1, "depth": 1, "leaf": "noop"}}),
                )
                .await;
                let p = wait_completed(&s, &id).await;
                let c = status(&s, &format!("{id}.c0")).await;
                lat.push((micros(&p["started_at"]) - micros(&c["completed_at"])) as f64 / 1000.0);
            }
            let (p50, p99) = (pct(&mut lat, 0.5), pct(&mut lat, 0.99));
            println!(
                "| {store} | resume: last child ended → parent running | {} flows | p50 {p50:.2} ms | p99 {p99:.2} ms |",
                o.flows
            );
            done(s, pg).await;
        }
        if o.wants("steps") {
            let (s, pg) = server(store, "steps").await;
            let mut took = Vec::new();
            for i in 0..o.rounds {
                let id = format!("s{i}");
                s.queue(
                    json!({"action": "add_job", "job_id": id, "job_type": "fan_out",
                    "start": true, "params": {"steps": 1000}}),
                )
                .await;
                let j = wait_completed(&s, &id).await;
                took.push((micros(&j["completed_at"]) - micros(&j["started_at"])) as f64 / 1e6);
            }
            let m = pct(&mut took, 0.5);
            println!(
                "| {store} | 1,000 durable steps in one job | median of {} | {m:.3} s | {:.0} µs/step |",
                o.rounds,
                m * 1000.0
            );
            done(s, pg).await;
        }
        if o.wants("memory") {
            let empty = rss_with(store, 0, Mode::Pending).await;
            let parked = rss_with(store, o.parked, Mode::Parked).await;
            let pending = rss_with(store, o.parked, Mode::Pending).await;
            let ran = rss_with(store, o.parked, Mode::Completed).await;
            println!(
                "| {store} | memory with {} jobs (empty host {:.0} MiB) | suspended on an event +{:.0} MiB | pending, never started +{:.0} MiB | ran once and completed +{:.0} MiB | suspended ÷ pending {:.2} |",
                o.parked,
                empty.rss,
                parked.rss - empty.rss,
                pending.rss - empty.rss,
                ran.rss - empty.rss,
                (parked.rss - empty.rss) / (pending.rss - empty.rss)
            );
            println!(
                "| {store} | heap in live allocations (empty host {:.0} MiB) | suspended +{:.1} MiB | pending +{:.1} MiB | completed +{:.1} MiB | suspended ÷ pending {:.2} |",
                empty.heap,
                parked.heap - empty.heap,
                pending.heap - empty.heap,
                ran.heap - empty.heap,
                (parked.heap - empty.heap) / (pending.heap - empty.heap)
            );
        }
    }
}

fn num_cpus() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

#[derive(Clone, Copy, PartialEq)]
enum Mode {
    /// Run once, suspended on an event.
    Parked,
    /// Added, never started.
    Pending,
    /// Run once, completed.
    Completed,
}

/// A server's memory, MiB.
struct Memory {
    /// Resident (`VmRSS`).
    rss: f64,
    /// In the heap's live allocations (`queuemgr_heap_allocated_bytes`).
    heap: f64,
}

/// The server's memory once `n` jobs are in it (see [`Mode`]).
async fn rss_with(store: &str, n: usize, mode: Mode) -> Memory {
    let tag = match mode {
        Mode::Parked => "parked",
        Mode::Pending => "pending",
        Mode::Completed => "ran",
    };
    let (s, pg) = server(store, tag).await;
    let parked = mode == Mode::Parked;
    for chunk in 0..n.div_ceil(1000) {
        let jobs: Vec<Value> = (chunk * 1000..((chunk + 1) * 1000).min(n))
            .map(|i| json!({"job_id": format!("m{i}"), "job_type": "fan_out", "params": {"wait_event": mode != Mode::Completed}}))
            .collect();
        s.queue(json!({"action": "add_jobs", "start": mode != Mode::Pending, "jobs": jobs}))
            .await;
    }
    if mode == Mode::Completed {
        while completed(&s).await < n as u64 {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    if parked && n > 0 {
        // Every one has run once and suspended.
        let end = Instant::now() + Duration::from_secs(900);
        loop {
            let v = s
                .queue(json!({"action": "list_jobs", "status_filter": "RUNNING", "limit": 1}))
                .await;
            let last = status(&s, &format!("m{}", n - 1)).await;
            if v["total_count"] == 0 && last["waiting_for"]["kind"] == "event" {
                let first = status(&s, "m0").await;
                if first["waiting_for"]["kind"] == "event" {
                    break;
                }
            }
            assert!(Instant::now() < end, "the jobs did not all suspend");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    // Let the allocator return what the runs freed (jemalloc gives dirty pages back after its
    // 10 s decay), then read.
    tokio::time::sleep(Duration::from_secs(12)).await;
    let pid = s.pid().expect("running");
    let rss = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|k| k.parse::<f64>().ok())
        })
        .unwrap_or(0.0)
        / 1024.0;
    let metrics = reqwest::get(format!("{}/metrics", s.url))
        .await
        .expect("metrics")
        .text()
        .await
        .expect("metrics text");
    let heap = metrics
        .lines()
        .find_map(|l| l.strip_prefix("queuemgr_heap_allocated_bytes "))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .unwrap_or(0.0)
        / (1024.0 * 1024.0);
    done(s, pg).await;
    Memory { rss, heap }
}
