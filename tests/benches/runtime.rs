//! Runtime benchmarks: what one job costs under the wasmtime job runtime.
//!
//! `cargo bench -p queuemgr-tests --bench runtime` prints a markdown table of:
//! 1. instantiate + run + drop of the `noop` job (median, p99);
//! 2. stop latency of a guest spinning in a loop that never calls the host (p50, p99, max),
//!    at two fuel yield intervals;
//! 3. fuel metering overhead on `cpu_heavy` (metered vs unmetered wasm, and vs native code);
//! 4. memory per job with 10,000 jobs parked in the host's `sleep`, and the time to stop them;
//! 5. capability grants: `noop` with no grants against `noop` with a full grant (run by run),
//!    outbound HTTP GETs by a guest (`fetch_url`) against the same GETs made natively, to a
//!    local server, and reading a 64 MiB file through a granted directory (`probe`) against
//!    native reads;
//! 6. native-speed I/O (`io`): a 64 MiB file read and written through a grant (inline I/O and the
//!    blocking pool) against `std::fs`; outbound GETs on kept-alive connections against a native
//!    keep-alive client (with the G2 rows); a one-request job with and without the pool;
//!    `process_data` on a 1 GiB CSV against the same code natively; a stop during a huge read;
//! 7. Python jobs (componentize-py components built from `example-jobs/python/`): the seed's
//!    MyJob on a real server process, from spawn to loaded with an empty code cache and with
//!    the cache (a restart); instantiate + run of a trivial Python job; memory per job with
//!    1,000 Python jobs parked in `time.sleep`; the pure-Python prime count in wasm against
//!    the same file under CPython natively.
//!
//! Options (after `--`, or as environment variables):
//! - `--quick` / `QUEUEMGR_BENCH_QUICK=1`: fewer iterations and smaller workloads, to check that
//!   the benchmark works; the figures are then not the real ones.
//! - `--only=noop,stop,fuel,park,grants,io,python,iso` / `QUEUEMGR_BENCH_ONLY=…`: run some sections only.
//! - `--park-jobs=N` / `QUEUEMGR_BENCH_PARK_JOBS=N`: jobs parked at once (default 10,000).
//!
//! Progress and details go to stderr; the table goes to stdout.

use queuemgr::runtime::capabilities::{
    Destination, DirGrant, EnvGrant, Grants, HttpGrant, IoChoice,
};
use queuemgr::runtime::{
    JobEvents, JobLimits, JobProgram, Metering, NoEvents, Outcome, RunRequest, Runtime,
    RuntimeConfig,
};
use queuemgr_tests::job_wasm;
use std::collections::BTreeMap;
use std::hint::black_box;
use std::io::Read;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// The Python queuemgr (a process per job) on this machine, for the ratios.
const PY_START: Duration = Duration::from_millis(150);
const PY_BYTES_PER_JOB: f64 = 22e6;
const PY_STOP: Duration = Duration::from_secs(10);

struct Opts {
    quick: bool,
    only: Option<Vec<String>>,
    park_jobs: usize,
    smaps: bool,
}

impl Opts {
    fn parse() -> Opts {
        let mut quick =
            std::env::var("QUEUEMGR_BENCH_QUICK").is_ok_and(|v| v != "0" && !v.is_empty());
        let mut only = std::env::var("QUEUEMGR_BENCH_ONLY").ok();
        let mut park = std::env::var("QUEUEMGR_BENCH_PARK_JOBS").ok();
        let mut smaps = std::env::var("QUEUEMGR_BENCH_SMAPS").is_ok_and(|v| v != "0");
        for arg in std::env::args().skip(1) {
            if arg == "--quick" {
                quick = true;
            } else if let Some(v) = arg.strip_prefix("--only=") {
                only = Some(v.to_string());
            } else if let Some(v) = arg.strip_prefix("--park-jobs=") {
                park = Some(v.to_string());
            } else if arg == "--smaps" {
                smaps = true;
            } else if arg == "--bench" {
                // cargo bench passes this to every harness = false target.
            } else {
                eprintln!("ignoring unknown argument {arg:?}");
            }
        }
        Opts {
            quick,
            only: only.map(|s| s.split(',').map(|p| p.trim().to_string()).collect()),
            park_jobs: park.map_or(10_000, |s| s.parse().expect("--park-jobs takes a number")),
            smaps,
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
    id: String,
    figure: String,
    measured: String,
    target: String,
    met: &'static str,
    vs_python: String,
}

fn met(ok: bool) -> &'static str {
    if ok { "yes" } else { "**NO**" }
}

/// Sorted samples.
struct Stats(Vec<Duration>);

impl Stats {
    fn new(mut v: Vec<Duration>) -> Stats {
        v.sort_unstable();
        Stats(v)
    }
    /// Nearest-rank percentile, `p` in 0..=100.
    fn pct(&self, p: f64) -> Duration {
        let n = self.0.len();
        let rank = ((p / 100.0) * n as f64).ceil() as usize;
        self.0[rank.clamp(1, n) - 1]
    }
    fn median(&self) -> Duration {
        self.pct(50.0)
    }
    fn max(&self) -> Duration {
        *self.0.last().unwrap()
    }
    fn min(&self) -> Duration {
        self.0[0]
    }
    fn mean(&self) -> Duration {
        self.0.iter().sum::<Duration>() / self.0.len() as u32
    }
}

fn us(d: Duration) -> String {
    format!("{:.1} µs", d.as_secs_f64() * 1e6)
}

fn ms(d: Duration) -> String {
    format!("{:.3} ms", d.as_secs_f64() * 1e3)
}

fn ratio(x: f64) -> String {
    if x >= 100.0 {
        format!("{:.0}×", x)
    } else {
        format!("{:.1}×", x)
    }
}

fn req(params: &str, stop: CancellationToken) -> RunRequest {
    RunRequest {
        job_id: "bench".into(),
        params: params.into(),
        limits: JobLimits::default(),
        events: Arc::new(NoEvents),
        stop,
        grants: Default::default(),
        flow: None,
    }
}

async fn load(rt: &Runtime, stem: &str) -> JobProgram {
    let bytes = std::fs::read(job_wasm(stem)).expect("example job built by tests/build.rs");
    let component = rt.compile(&bytes).expect("example job compiles");
    rt.prepare(&component).await.expect("example job prepares")
}

/// `VmRSS` of this process, in KiB.
fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS in /proc/self/status")
}

/// User + system CPU time of this process, in clock ticks (1/100 s on Linux).
fn cpu_ticks() -> u64 {
    let stat = std::fs::read_to_string("/proc/self/stat").expect("/proc/self/stat");
    // The command name (field 2) may hold spaces; count fields after its closing parenthesis.
    let rest = &stat[stat.rfind(')').expect("comm") + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // fields[0] is field 3 (state): utime is field 14, stime field 15.
    fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
}

/// Proportional set size of this process (shared pages divided among their mappings), in KiB.
fn pss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/smaps_rollup")
        .ok()
        .and_then(|t| {
            t.lines()
                .find_map(|l| l.strip_prefix("Pss:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

/// Busy CPU time of the whole machine (all processes, all cores), in clock ticks.
fn busy_ticks() -> u64 {
    let stat = std::fs::read_to_string("/proc/stat").expect("/proc/stat");
    let cpu = stat.lines().next().expect("cpu line");
    let f: Vec<u64> = cpu
        .split_whitespace()
        .skip(1)
        .filter_map(|v| v.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal …
    f[0] + f[1] + f[2] + f[5] + f[6] + f.get(7).copied().unwrap_or(0)
}

fn map_count() -> usize {
    std::fs::read_to_string("/proc/self/maps")
        .map(|m| m.lines().count())
        .unwrap_or(0)
}

/// Per kind of mapping (permissions, file or anonymous, size): resident KiB, proportional
/// KiB, anonymous (private, e.g. copy-on-write) KiB and mapping count.
#[derive(Default, Clone, Copy)]
struct MapKind {
    rss: u64,
    pss: u64,
    anon: u64,
    count: usize,
}

fn smaps_summary() -> BTreeMap<String, MapKind> {
    let text = std::fs::read_to_string("/proc/self/smaps").unwrap_or_default();
    let mut out: BTreeMap<String, MapKind> = BTreeMap::new();
    let mut key = String::new();
    for line in text.lines() {
        let mut parts = line.split_whitespace();
        let first = parts.next().unwrap_or("");
        if let Some((lo, hi)) = first.split_once('-')
            && let (Ok(lo), Ok(hi)) = (u64::from_str_radix(lo, 16), u64::from_str_radix(hi, 16))
        {
            let perms = parts.next().unwrap_or("");
            let name = parts.nth(3).unwrap_or("[anon]");
            key = format!("{perms} {name} {} KiB", (hi - lo) / 1024);
            out.entry(key.clone()).or_default().count += 1;
        } else {
            let kib: u64 = parts.next().and_then(|v| v.parse().ok()).unwrap_or(0);
            let e = out.entry(key.clone()).or_default();
            match first {
                "Rss:" => e.rss += kib,
                "Pss:" => e.pss += kib,
                "Anonymous:" => e.anon += kib,
                _ => {}
            }
        }
    }
    out
}

/// Prints the kinds of mapping whose resident size grew most between two summaries.
fn print_smaps_growth(
    before: &BTreeMap<String, MapKind>,
    after: &BTreeMap<String, MapKind>,
    n: usize,
) {
    let per_job = |a: u64, b: u64| (a as f64 - b as f64) / n as f64;
    let mut rows: Vec<(f64, f64, f64, isize, &String)> = after
        .iter()
        .map(|(k, a)| {
            let b = before.get(k).copied().unwrap_or_default();
            (
                per_job(a.rss, b.rss),
                per_job(a.pss, b.pss),
                per_job(a.anon, b.anon),
                a.count as isize - b.count as isize,
                k,
            )
        })
        .collect();
    rows.sort_by(|a, b| b.0.total_cmp(&a.0));
    eprintln!("smaps: growth per job by kind of mapping (perms, name, size)");
    eprintln!(
        "  {:>9} {:>9} {:>9} {:>7}  mapping",
        "Rss KiB", "Pss KiB", "Anon KiB", "maps"
    );
    for (rss, pss, anon, c, k) in rows.iter().take(12) {
        eprintln!("  {rss:>9.2} {pss:>9.2} {anon:>9.2} {c:>+7}  {k}");
    }
    let total =
        |m: &BTreeMap<String, MapKind>| m.values().fold((0, 0), |(r, p), k| (r + k.rss, p + k.pss));
    let (ta, tb) = (total(after), total(before));
    eprintln!(
        "  total: Rss {:.2} KiB/job, Pss {:.2} KiB/job",
        per_job(ta.0, tb.0),
        per_job(ta.1, tb.1)
    );
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .trim()
        .to_string()
}

// ---------------------------------------------------------------------------------------------
// 1. instantiate + run + drop of a no-op job

async fn bench_noop(opts: &Opts, rows: &mut Vec<Row>) {
    let (warmup, n) = if opts.quick {
        (200, 2_000)
    } else {
        (2_000, 20_000)
    };
    let rt = Runtime::new(RuntimeConfig::default()).expect("engine");
    let program = load(&rt, "noop").await;
    let events: Arc<dyn JobEvents> = Arc::new(NoEvents);
    let mut samples = Vec::with_capacity(n);
    for i in 0..warmup + n {
        let request = RunRequest {
            job_id: "bench".into(),
            params: "{}".into(),
            limits: JobLimits::default(),
            events: events.clone(),
            stop: CancellationToken::new(),
            grants: Default::default(),
            flow: None,
        };
        let t = Instant::now();
        let out = rt.run(&program, request).await;
        let d = t.elapsed();
        assert_eq!(out, Outcome::Completed("{}".into()));
        if i >= warmup {
            samples.push(d);
        }
    }
    let s = Stats::new(samples);
    eprintln!(
        "noop: {n} runs after {warmup} warm-up: min {} median {} mean {} p90 {} p99 {} p99.9 {} max {}",
        us(s.min()),
        us(s.median()),
        us(s.mean()),
        us(s.pct(90.0)),
        us(s.pct(99.0)),
        us(s.pct(99.9)),
        us(s.max())
    );
    rows.push(Row {
        id: "1".into(),
        figure: format!(
            "new Store + instantiate (pre-instance, pooling) + run `noop` `{{}}` + drop; {} sequential runs after {} warm-up",
            group(n as u64),
            group(warmup as u64)
        ),
        measured: format!(
            "median **{}**, p99 {} (mean {}, max {})",
            us(s.median()),
            us(s.pct(99.0)),
            us(s.mean()),
            us(s.max())
        ),
        target: "median ≤ 50 µs".into(),
        met: met(s.median() <= Duration::from_micros(50)),
        vs_python: format!(
            "{} faster (process per job: ~150 ms)",
            ratio(PY_START.as_secs_f64() / s.median().as_secs_f64())
        ),
    });
}

// ---------------------------------------------------------------------------------------------
// 2. stop latency of a guest spinning without host calls

async fn bench_stop(opts: &Opts, rows: &mut Vec<Row>) {
    let (warmup, n) = if opts.quick { (5, 50) } else { (20, 300) };
    for metering in [Metering::Epoch, Metering::Fuel] {
        let rt = Runtime::new(RuntimeConfig {
            metering,
            ..RuntimeConfig::default()
        })
        .expect("engine");
        let program = load(&rt, "hostile").await;
        let mut samples = Vec::with_capacity(n);
        for i in 0..warmup + n {
            let stop = CancellationToken::new();
            let request = req(r#"{"mode":"spin"}"#, stop.clone());
            let (rt2, p2) = (rt.clone(), program.clone());
            let handle = tokio::spawn(async move {
                let out = rt2.run(&p2, request).await;
                (out, Instant::now())
            });
            tokio::time::sleep(Duration::from_millis(20)).await;
            assert!(!handle.is_finished(), "the spinning guest ended by itself");
            let t0 = Instant::now();
            stop.cancel();
            let (out, ended) = handle.await.expect("run task");
            assert_eq!(out, Outcome::Stopped);
            if i >= warmup {
                samples.push(ended.saturating_duration_since(t0));
            }
        }
        let s = Stats::new(samples);
        eprintln!(
            "stop, metering {}: {n} samples: min {} p50 {} p90 {} p99 {} max {}",
            metering.as_str(),
            ms(s.min()),
            ms(s.median()),
            ms(s.pct(90.0)),
            ms(s.pct(99.0)),
            ms(s.max())
        );
        let default = metering == RuntimeConfig::default().metering;
        let how = match metering {
            Metering::Fuel => format!(
                "fuel metering, yield every {} units",
                group(RuntimeConfig::default().fuel_yield_interval)
            ),
            _ => format!(
                "epoch metering, tick {}",
                ms(RuntimeConfig::default().epoch_tick)
            ),
        };
        rows.push(Row {
            id: if default { "2a".into() } else { "2b".into() },
            figure: format!(
                "stop a guest spinning with no host calls (`hostile` spin, 20 ms in): cancel() → `run` returns `Stopped`; {how}{}; {n} samples",
                if default { " (the default)" } else { "" }
            ),
            measured: format!(
                "p50 {}, p99 **{}**, max {}",
                ms(s.median()),
                ms(s.pct(99.0)),
                ms(s.max())
            ),
            target: "p99 ≤ 1 ms".into(),
            met: met(s.pct(99.0) <= Duration::from_millis(1)),
            vs_python: format!(
                "{} faster (SIGTERM ignored → SIGKILL after 10 s)",
                ratio(PY_STOP.as_secs_f64() / s.pct(99.0).as_secs_f64())
            ),
        });
    }
}

/// The field of `cpu_heavy`'s result that holds the answer.
fn name_field(workload: &str) -> &'static str {
    if workload == "sha256" {
        "sha256"
    } else {
        "count"
    }
}

fn group(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

// ---------------------------------------------------------------------------------------------
// 3. fuel metering overhead and wasm vs native on cpu_heavy

/// A `cpu_heavy` workload: its name, its params, and the same computation in native code.
type Workload = (&'static str, String, Box<dyn Fn() -> String>);

async fn bench_fuel(opts: &Opts, rows: &mut Vec<Row>) {
    let (rounds, mib, below) = if opts.quick {
        (3, 8u32, 5_000_000u32)
    } else {
        (7, 64u32, 50_000_000u32)
    };
    let engine = |metering| {
        Runtime::new(RuntimeConfig {
            metering,
            ..RuntimeConfig::default()
        })
        .expect("engine")
    };
    // The default (fuel), epochs, and nothing: the cost of each way of metering.
    let (epoch, fuel, off) = (
        engine(Metering::Epoch),
        engine(Metering::Fuel),
        engine(Metering::Off),
    );
    let p_epoch = load(&epoch, "cpu_heavy").await;
    let p_fuel = load(&fuel, "cpu_heavy").await;
    let p_off = load(&off, "cpu_heavy").await;

    let sha_params = format!(r#"{{"workload":"sha256","mib":{mib}}}"#);
    let primes_params = format!(r#"{{"workload":"primes","below":{below}}}"#);
    let workloads: [Workload; 2] = [
        (
            "sha256",
            sha_params,
            Box::new(move || {
                cpu_core::hex(&cpu_core::sha256_mib(black_box(mib), |_| true).unwrap())
            }),
        ),
        (
            "primes",
            primes_params,
            Box::new(move || cpu_core::count_primes(black_box(below)).to_string()),
        ),
    ];
    for (name, params, native) in &workloads {
        let mut t_epoch = Vec::new();
        let mut t_fuel = Vec::new();
        let mut t_off = Vec::new();
        let mut t_native = Vec::new();
        let mut mismatch: Vec<String> = Vec::new();
        // Interleaved, so that drift in the machine's speed hits all four alike.
        for _ in 0..rounds {
            let t = Instant::now();
            let expected = black_box(native());
            t_native.push(t.elapsed());
            for (rt, p, times) in [
                (&epoch, &p_epoch, &mut t_epoch),
                (&fuel, &p_fuel, &mut t_fuel),
                (&off, &p_off, &mut t_off),
            ] {
                let t = Instant::now();
                let out = rt.run(p, req(params, CancellationToken::new())).await;
                times.push(t.elapsed());
                let json = match out {
                    Outcome::Completed(json) => json,
                    other => panic!("{name}: {other:?}"),
                };
                // The same answer is expected from wasm and native code; a difference is a
                // finding to report (the timing is still of the same code), not a reason to stop.
                let v: serde_json::Value = serde_json::from_str(&json).expect("result is JSON");
                let got = match &v[name_field(name)] {
                    serde_json::Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                if got != expected {
                    let note = format!("wasm answers {got}, native {expected}");
                    if !mismatch.contains(&note) {
                        eprintln!("{name}: MISMATCH: {note}");
                        mismatch.push(note);
                    }
                }
            }
        }
        let (e, f, u, n) = (
            Stats::new(t_epoch),
            Stats::new(t_fuel),
            Stats::new(t_off),
            Stats::new(t_native),
        );
        let secs = |s: &Stats| s.median().as_secs_f64();
        let epoch_ratio = secs(&e) / secs(&u);
        let fuel_ratio = secs(&f) / secs(&u);
        let native_ratio = secs(&f) / secs(&n);
        let what = match *name {
            "sha256" => format!("`{{\"workload\":\"sha256\",\"mib\":{mib}}}`"),
            _ => format!("`{{\"workload\":\"primes\",\"below\":{below}}}`"),
        };
        eprintln!(
            "{name}: medians of {rounds}: epoch {} (min {} max {}), fuel {} (min {} max {}), unmetered {} (min {} max {}), native {} (min {} max {})",
            ms(e.median()),
            ms(e.min()),
            ms(e.max()),
            ms(f.median()),
            ms(f.min()),
            ms(f.max()),
            ms(u.median()),
            ms(u.min()),
            ms(u.max()),
            ms(n.median()),
            ms(n.min()),
            ms(n.max())
        );
        rows.push(Row {
            id: if *name == "sha256" { "3a" } else { "3b" }.into(),
            figure: format!(
                "metering overhead, `cpu_heavy` {what}: the default (fuel) ÷ unmetered wasm, median of {rounds}; epochs (`--metering epoch`) in the same run"
            ),
            measured: format!(
                "fuel **{:.3}×** ({} vs {}); epoch {:.3}× ({})",
                fuel_ratio,
                ms(f.median()),
                ms(u.median()),
                epoch_ratio,
                ms(e.median())
            ),
            target: "≤ 1.15×".into(),
            met: met(fuel_ratio <= 1.15),
            vs_python: "–".into(),
        });
        rows.push(Row {
            id: if *name == "sha256" { "3c" } else { "3d" }.into(),
            figure: format!(
                "wasm (default metering) ÷ native `cpu_core`, {what}, median of {rounds}{}",
                if *name == "sha256" {
                    "; native sha2 picks the CPU's SHA-NI instructions at run time, wasm cannot"
                } else {
                    ""
                }
            ),
            measured: format!(
                "**{:.2}×** ({} vs {} native; epoch {:.2}×, unmetered {:.2}×){}",
                native_ratio,
                ms(f.median()),
                ms(n.median()),
                secs(&e) / secs(&n),
                secs(&u) / secs(&n),
                if mismatch.is_empty() {
                    String::new()
                } else {
                    format!("; ANSWERS DIFFER: {}", mismatch.join("; "))
                }
            ),
            target: "≤ 1.5×".into(),
            met: met(native_ratio <= 1.5),
            vs_python: "–".into(),
        });
    }
}

// ---------------------------------------------------------------------------------------------
// 4. many jobs parked in the host's sleep at once

struct Parked {
    n: usize,
    rss_before: u64,
    rss_parked: u64,
    pss_before: u64,
    pss_parked: u64,
    rss_released: u64,
    maps_before: usize,
    maps_parked: usize,
    settle: Duration,
    release: Duration,
    outcomes: BTreeMap<String, usize>,
}

/// Parks `n` noop jobs in `sleep`, measures RSS, then cancels them all. `Err` says what went
/// wrong if not every job parked and stopped.
async fn park(n: usize, smaps: bool) -> Result<Parked, String> {
    let rt = Runtime::new(RuntimeConfig {
        max_instances: (n as u32 + 100).max(10_100),
        ..RuntimeConfig::default()
    })
    .map_err(|e| format!("Runtime::new: {e}"))?;
    let program = load(&rt, "noop").await;
    // One run first, so that lazily built engine state is not counted as the jobs'.
    assert_eq!(
        rt.run(&program, req(r#"{"sleep_ms":1}"#, CancellationToken::new()))
            .await,
        Outcome::Completed("{}".into())
    );
    park_program(&rt, &program, r#"{"sleep_ms":120000}"#, n, smaps).await
}

/// Parks `n` runs of `program` with `params` (a job that sleeps in the host), measures RSS,
/// then cancels them all.
async fn park_program(
    rt: &Runtime,
    program: &JobProgram,
    params: &'static str,
    n: usize,
    smaps: bool,
) -> Result<Parked, String> {
    let stop = CancellationToken::new();
    let returned = Arc::new(AtomicUsize::new(0));
    let smaps_before = if smaps {
        smaps_summary()
    } else {
        BTreeMap::new()
    };
    let maps_before = map_count();
    let pss_before = pss_kib();
    let rss_before = rss_kib();
    let started = Instant::now();
    let mut handles = Vec::with_capacity(n);
    for i in 0..n {
        let (rt, program, stop, returned) =
            (rt.clone(), program.clone(), stop.clone(), returned.clone());
        handles.push(tokio::spawn(async move {
            let request = RunRequest {
                job_id: format!("job-{i}"),
                params: params.into(),
                limits: JobLimits::default(),
                events: Arc::new(NoEvents),
                stop,
                grants: Default::default(),
                flow: None,
            };
            let out = rt.run(&program, request).await;
            returned.fetch_add(1, Ordering::SeqCst);
            out
        }));
    }
    // noop reports nothing while it sleeps: wait until the process stops using CPU and its
    // RSS stops moving (every job instantiated and parked), at least 1 s after spawning.
    let mut last = (rss_kib(), cpu_ticks());
    let mut quiet = 0;
    loop {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let now = (rss_kib(), cpu_ticks());
        let rss_still = now.0.abs_diff(last.0) <= (last.0 / 500).max(64);
        let cpu_still = now.1 - last.1 <= 2;
        last = now;
        quiet = if rss_still && cpu_still { quiet + 1 } else { 0 };
        if (quiet >= 4 && started.elapsed() >= Duration::from_secs(1))
            || started.elapsed() > Duration::from_secs(60)
        {
            break;
        }
    }
    let settle = started.elapsed();
    let rss_parked = rss_kib();
    let pss_parked = pss_kib();
    let maps_parked = map_count();
    if smaps {
        print_smaps_growth(&smaps_before, &smaps_summary(), n);
    }
    let early = returned.load(Ordering::SeqCst);
    eprintln!(
        "park {n}: settled after {settle:?}: RSS {rss_before} → {rss_parked} KiB, maps {maps_before} → {maps_parked}, {early} returned early, load {}",
        loadavg()
    );
    let t0 = Instant::now();
    stop.cancel();
    let mut outcomes = BTreeMap::new();
    for h in handles {
        let out = match h.await {
            Ok(o) => o.describe(),
            Err(e) => format!("task failed: {e}"),
        };
        *outcomes.entry(out).or_insert(0) += 1;
    }
    let release = t0.elapsed();
    let rss_released = rss_kib();
    let result = Parked {
        n,
        rss_before,
        rss_parked,
        pss_before,
        pss_parked,
        rss_released,
        maps_before,
        maps_parked,
        settle,
        release,
        outcomes,
    };
    if early > 0
        || result.outcomes.len() != 1
        || !result.outcomes.contains_key(&Outcome::Stopped.describe())
    {
        return Err(format!(
            "{early} of {n} runs returned before the stop; outcomes: {:?}; RSS {} → {} KiB; maps {} → {}",
            result.outcomes, rss_before, rss_parked, maps_before, maps_parked
        ));
    }
    Ok(result)
}

async fn bench_park(opts: &Opts, rows: &mut Vec<Row>) {
    let target_n = if opts.quick { 1_000 } else { opts.park_jobs };
    let mut failures = Vec::new();
    let mut n = target_n;
    let parked = loop {
        match park(n, opts.smaps).await {
            Ok(p) => break Some(p),
            Err(e) => {
                eprintln!("park {n}: FAILED: {e}");
                failures.push(format!("{n} jobs: {e}"));
                if n <= 1_000 {
                    break None;
                }
                n -= 1_000;
            }
        }
    };
    let failed = if failures.is_empty() {
        String::new()
    } else {
        format!(" FAILED at {}", failures.join("; "))
    };
    let Some(p) = parked else {
        rows.push(Row {
            id: "4".into(),
            figure: format!("{target_n} `noop` jobs parked in `sleep` at once"),
            measured: format!("no size worked:{failed}"),
            target: "≤ 64 KiB per job".into(),
            met: met(false),
            vs_python: "–".into(),
        });
        return;
    };
    let per_job = (p.rss_parked.saturating_sub(p.rss_before)) as f64 / p.n as f64;
    let pss_per_job = (p.pss_parked.saturating_sub(p.pss_before)) as f64 / p.n as f64;
    eprintln!(
        "park {}: {per_job:.1} KiB per job; all returned {:?} after cancel; RSS after release {} KiB; outcomes {:?}",
        p.n, p.release, p.rss_released, p.outcomes
    );
    rows.push(Row {
        id: "4a".into(),
        figure: format!(
            "{} `noop` jobs parked in the host's `sleep` at once (sleep_ms 120,000, max_instances {}): (VmRSS parked − VmRSS before) ÷ {}",
            group(p.n as u64),
            group((p.n as u64 + 100).max(10_100)),
            group(p.n as u64)
        ),
        measured: format!(
            "**{per_job:.1} KiB** per job (VmRSS {} → {} MiB; Pss {pss_per_job:.1} KiB per job; settled {:.1} s after spawning; {} → {} memory maps){failed}",
            p.rss_before / 1024,
            p.rss_parked / 1024,
            p.settle.as_secs_f64(),
            p.maps_before,
            p.maps_parked
        ),
        target: "≤ 64 KiB per job".into(),
        met: met(per_job <= 64.0 && p.n >= target_n),
        vs_python: format!(
            "{} less (process per job: ~22 MB)",
            ratio(PY_BYTES_PER_JOB / (per_job * 1024.0))
        ),
    });
    rows.push(Row {
        id: "4b".into(),
        figure: format!(
            "cancel all {} parked jobs (one token) → every `run` returned `Stopped`",
            group(p.n as u64)
        ),
        measured: format!(
            "**{}** for all (VmRSS after: {} MiB)",
            ms(p.release),
            p.rss_released / 1024
        ),
        target: "–".into(),
        met: "–",
        vs_python: "–".into(),
    });
}

// ---------------------------------------------------------------------------------------------
// 5. capability grants: their cost per run, outbound HTTP, reading a granted directory

/// A full grant, as a job type's manifest gives it: one read-only directory (unless
/// `with_dir` is false), two variables and an HTTP allow-list.
fn full_grants(dir: &std::path::Path, with_dir: bool) -> Grants {
    let dirs = if with_dir {
        vec![DirGrant::new(dir, dir, "/data/in", false).expect("directory grant")]
    } else {
        Vec::new()
    };
    Grants {
        dirs,
        env: vec![
            EnvGrant::literal("API_BASE", "http://127.0.0.1:8080").expect("variable"),
            EnvGrant::literal("API_TOKEN", "bench-0123456789abcdef0123456789abcdef")
                .expect("variable"),
        ],
        http: Some(http_grant(HttpGrant::DEFAULT_MAX_REQUESTS, true)),
    }
}

/// `http://127.0.0.1:*`, with the default time and size caps; kept-alive connections (a pool
/// of this grant's own) unless `keep_alive` is false.
fn http_grant(max_requests: u32, keep_alive: bool) -> Arc<HttpGrant> {
    let mut g = HttpGrant::new(vec![
        Destination::parse("http://127.0.0.1:*").expect("destination"),
    ]);
    g.max_requests = max_requests;
    g.keep_alive = keep_alive;
    Arc::new(g)
}

fn granted(params: &str, grants: &Arc<Grants>) -> RunRequest {
    RunRequest {
        grants: grants.clone(),
        flow: None,
        ..req(params, CancellationToken::new())
    }
}

async fn bench_grants(opts: &Opts, rows: &mut Vec<Row>) {
    bench_grants_noop(opts, rows).await;
    bench_grants_read(opts, rows).await;
}

/// 5a. What a grant adds to every run: `noop` with no grants, with a full grant and with the
/// full grant minus its directory, interleaved run by run.
async fn bench_grants_noop(opts: &Opts, rows: &mut Vec<Row>) {
    let (warmup, n) = if opts.quick {
        (200, 2_000)
    } else {
        (2_000, 20_000)
    };
    let rt = Runtime::new(RuntimeConfig::default()).expect("engine");
    let program = load(&rt, "noop").await;
    let dir = tempfile::tempdir().expect("temporary directory");
    let variants: [(&str, Arc<Grants>); 3] = [
        ("no grants", Arc::new(Grants::default())),
        ("full grant", Arc::new(full_grants(dir.path(), true))),
        (
            "variables + http only",
            Arc::new(full_grants(dir.path(), false)),
        ),
    ];
    let events: Arc<dyn JobEvents> = Arc::new(NoEvents);
    let mut samples: Vec<Vec<Duration>> = variants.iter().map(|_| Vec::with_capacity(n)).collect();
    // Interleaved run by run, so that drift in the machine's speed hits all three alike.
    for i in 0..warmup + n {
        for (k, (_, grants)) in variants.iter().enumerate() {
            let request = RunRequest {
                job_id: "bench".into(),
                params: "{}".into(),
                limits: JobLimits::default(),
                events: events.clone(),
                stop: CancellationToken::new(),
                grants: grants.clone(),
                flow: None,
            };
            let t = Instant::now();
            let out = rt.run(&program, request).await;
            let d = t.elapsed();
            assert_eq!(out, Outcome::Completed("{}".into()));
            if i >= warmup {
                samples[k].push(d);
            }
        }
    }
    let stats: Vec<Stats> = samples.into_iter().map(Stats::new).collect();
    for ((name, _), s) in variants.iter().zip(&stats) {
        eprintln!(
            "grants, noop with {name}: {n} runs after {warmup} warm-up: min {} median {} mean {} p90 {} p99 {} max {}",
            us(s.min()),
            us(s.median()),
            us(s.mean()),
            us(s.pct(90.0)),
            us(s.pct(99.0)),
            us(s.max())
        );
    }
    let (none, full, no_dir) = (&stats[0], &stats[1], &stats[2]);
    rows.push(Row {
        id: "G1a".into(),
        figure: format!(
            "`noop` with no grants (`Grants::default()`): new Store + instantiate + run `{{}}` + drop; {} runs after {} warm-up, interleaved run by run with G1b",
            group(n as u64),
            group(warmup as u64)
        ),
        measured: format!(
            "median **{}**, p99 {} (mean {}, max {})",
            us(none.median()),
            us(none.pct(99.0)),
            us(none.mean()),
            us(none.max())
        ),
        target: "median ≤ 50 µs (as before grants)".into(),
        met: met(none.median() <= Duration::from_micros(50)),
        vs_python: format!(
            "{} faster (process per job: ~150 ms)",
            ratio(PY_START.as_secs_f64() / none.median().as_secs_f64())
        ),
    });
    let delta = |s: &Stats| s.median().as_secs_f64() * 1e6 - none.median().as_secs_f64() * 1e6;
    rows.push(Row {
        id: "G1b".into(),
        figure: "the same `noop` with a full grant: one read-only directory (opened per run), two variables, an HTTP allow-list".into(),
        measured: format!(
            "median **{}** ({:+.1} µs), p99 {} (mean {}); variables + HTTP without the directory: median {} ({:+.1} µs)",
            us(full.median()),
            delta(full),
            us(full.pct(99.0)),
            us(full.mean()),
            us(no_dir.median()),
            delta(no_dir)
        ),
        target: "–".into(),
        met: "–",
        vs_python: "–".into(),
    });
}

/// The body the local server answers every request with.
const HTTP_BODY: &[u8] =
    b"{\"ok\":true,\"from\":\"the queuemgr runtime benchmark's local server\"}\n";

/// A small HTTP/1.1 server on 127.0.0.1, on its own thread and single-threaded tokio runtime:
/// it answers every request with `HTTP_BODY`, keeps a connection open until the client
/// closes it (or sends `connection: close`), and records when each request had arrived whole.
struct LocalHttp {
    port: u16,
    arrivals: Arc<Mutex<Vec<Instant>>>,
}

impl LocalHttp {
    fn start() -> LocalHttp {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1");
        listener
            .set_nonblocking(true)
            .expect("non-blocking listener");
        let port = listener.local_addr().expect("local address").port();
        let arrivals = Arc::new(Mutex::new(Vec::new()));
        let log = arrivals.clone();
        let mut response = format!(
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
            HTTP_BODY.len()
        )
        .into_bytes();
        response.extend_from_slice(HTTP_BODY);
        let response: Arc<[u8]> = response.into();
        std::thread::Builder::new()
            .name("bench-http-server".into())
            .spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("server runtime");
                rt.block_on(async move {
                    let listener =
                        tokio::net::TcpListener::from_std(listener).expect("tokio listener");
                    loop {
                        if let Ok((sock, _)) = listener.accept().await {
                            tokio::spawn(serve_http(sock, response.clone(), log.clone()));
                        }
                    }
                });
            })
            .expect("server thread");
        LocalHttp { port, arrivals }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}/bench", self.port)
    }

    /// The arrival times recorded since the last call.
    fn take(&self) -> Vec<Instant> {
        std::mem::take(&mut *self.arrivals.lock().unwrap())
    }
}

async fn serve_http(
    mut sock: tokio::net::TcpStream,
    response: Arc<[u8]>,
    arrivals: Arc<Mutex<Vec<Instant>>>,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let _ = sock.set_nodelay(true);
    let mut buf = Vec::with_capacity(4096);
    let mut chunk = [0u8; 4096];
    loop {
        let end = loop {
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            match sock.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        };
        arrivals.lock().unwrap().push(Instant::now());
        let close = String::from_utf8_lossy(&buf[..end])
            .to_ascii_lowercase()
            .contains("connection: close");
        buf.drain(..end);
        if sock.write_all(&response).await.is_err() || close {
            return;
        }
    }
}

/// One GET on a new connection by hand: connect, write the request, read the head and
/// `content-length` bytes of body, close. The least a client can do per request.
async fn raw_get(addr: std::net::SocketAddr, request: &[u8]) -> usize {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut sock = tokio::net::TcpStream::connect(addr).await.expect("connect");
    sock.set_nodelay(true).expect("nodelay");
    sock.write_all(request).await.expect("write the request");
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    let mut want = None;
    loop {
        if want.is_none()
            && let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n")
        {
            let head = String::from_utf8_lossy(&buf[..i]).to_ascii_lowercase();
            let len: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse().ok())
                .expect("content-length");
            want = Some((i + 4, len));
        }
        if let Some((start, len)) = want
            && buf.len() >= start + len
        {
            return len;
        }
        let n = sock.read(&mut chunk).await.expect("read the response");
        assert!(n > 0, "the server closed the connection before answering");
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// Who makes the requests in one batch.
#[derive(Clone, Copy, PartialEq, Eq)]
enum HttpClient {
    /// `fetch_url` with `repeat`: wasi:http, a new connection per request (`keep_alive = false`).
    Guest,
    /// `fetch_url` with `repeat`, kept-alive connections from the job type's pool (the default).
    GuestPooled,
    /// `raw_get`: tokio `TcpStream`, a new connection per request.
    Raw,
    /// reqwest (hyper) with no connection pool: a new connection per request.
    Reqwest,
    /// reqwest with its pool: one kept-alive connection.
    KeepAlive,
    /// reqwest with its pool, each request on a task of its own (as wasi:http runs a guest's
    /// request: a spawned task the guest waits on), to show what that hand-off costs.
    KeepAliveSpawned,
}

impl HttpClient {
    const ALL: [HttpClient; 6] = [
        HttpClient::Guest,
        HttpClient::Raw,
        HttpClient::Reqwest,
        HttpClient::KeepAlive,
        HttpClient::GuestPooled,
        HttpClient::KeepAliveSpawned,
    ];

    fn name(self) -> &'static str {
        match self {
            HttpClient::Guest => "guest (fetch_url, wasi:http), keep_alive = false",
            HttpClient::GuestPooled => "guest (fetch_url, wasi:http), the type's pool",
            HttpClient::Raw => "native raw TCP, new connection",
            HttpClient::Reqwest => "native reqwest, new connection",
            HttpClient::KeepAlive => "native reqwest, keep-alive",
            HttpClient::KeepAliveSpawned => "native reqwest, keep-alive, a task per request",
        }
    }
}

/// What one batch of `n` sequential GETs needs.
struct HttpBench {
    rt: Runtime,
    program: JobProgram,
    server: LocalHttp,
    raw_request: Vec<u8>,
    fresh: reqwest::Client,
    pooled: reqwest::Client,
    /// The pooled guest's grant, kept from batch to batch as a job type keeps its grant.
    guest_pool: Arc<Grants>,
}

impl HttpBench {
    /// Makes `n` GETs one after the other with `client`; returns the time of the whole batch
    /// and the arrival time of each request at the server.
    async fn batch(&self, client: HttpClient, n: u32) -> (Duration, Vec<Instant>) {
        let url = self.server.url();
        let addr = std::net::SocketAddr::from(([127, 0, 0, 1], self.server.port));
        self.server.take();
        let t = Instant::now();
        match client {
            HttpClient::Guest | HttpClient::GuestPooled => {
                let grants = if client == HttpClient::Guest {
                    Arc::new(Grants {
                        http: Some(http_grant(n, false)),
                        ..Grants::default()
                    })
                } else {
                    self.guest_pool.clone()
                };
                let params = serde_json::json!({"url": url, "repeat": n}).to_string();
                let out = self.rt.run(&self.program, granted(&params, &grants)).await;
                let Outcome::Completed(json) = out else {
                    panic!("fetch_url: {out:?}");
                };
                let v: serde_json::Value = serde_json::from_str(&json).expect("result is JSON");
                assert_eq!(v["status"], 200, "{json}");
                assert_eq!(v["requests"], n, "{json}");
                assert_eq!(v["bytes"], HTTP_BODY.len(), "{json}");
            }
            HttpClient::Raw => {
                for _ in 0..n {
                    assert_eq!(raw_get(addr, &self.raw_request).await, HTTP_BODY.len());
                }
            }
            HttpClient::Reqwest | HttpClient::KeepAlive => {
                let c = if client == HttpClient::Reqwest {
                    &self.fresh
                } else {
                    &self.pooled
                };
                for _ in 0..n {
                    let res = c.get(&url).send().await.expect("GET");
                    assert_eq!(res.status(), 200);
                    assert_eq!(res.bytes().await.expect("body").len(), HTTP_BODY.len());
                }
            }
            HttpClient::KeepAliveSpawned => {
                for _ in 0..n {
                    let (c, url) = (self.pooled.clone(), url.clone());
                    let res = tokio::spawn(async move { c.get(&url).send().await })
                        .await
                        .expect("task")
                        .expect("GET");
                    assert_eq!(res.status(), 200);
                    assert_eq!(res.bytes().await.expect("body").len(), HTTP_BODY.len());
                }
            }
        }
        let total = t.elapsed();
        let arrivals = self.server.take();
        assert_eq!(arrivals.len(), n as usize, "{}", client.name());
        (total, arrivals)
    }
}

/// 5b. Outbound HTTP: per-request time of a guest's GETs against the same GETs made natively.
async fn bench_grants_http(opts: &Opts, rows: &mut Vec<Row>) {
    let (rounds, per_batch) = if opts.quick { (2, 100) } else { (10, 400) };
    let rt = Runtime::new(RuntimeConfig::default()).expect("engine");
    let program = load(&rt, "fetch_url").await;
    let server = LocalHttp::start();
    let raw_request = format!(
        "GET /bench HTTP/1.1\r\nhost: 127.0.0.1:{}\r\nuser-agent: queuemgr-bench\r\n\r\n",
        server.port
    )
    .into_bytes();
    let fresh = reqwest::Client::builder()
        .no_proxy()
        .pool_max_idle_per_host(0)
        .build()
        .expect("reqwest client");
    let pooled = reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("reqwest client");
    let b = HttpBench {
        rt,
        program,
        server,
        raw_request,
        fresh,
        pooled,
        guest_pool: Arc::new(Grants {
            http: Some(http_grant(u32::MAX, true)),
            ..Grants::default()
        }),
    };
    for client in HttpClient::ALL {
        b.batch(client, 50).await;
    }
    let mut intervals: Vec<Vec<Duration>> = HttpClient::ALL.iter().map(|_| Vec::new()).collect();
    let mut totals = vec![Duration::ZERO; HttpClient::ALL.len()];
    // Interleaved batch by batch; the order rotates so that no client always follows another.
    for round in 0..rounds {
        for j in 0..HttpClient::ALL.len() {
            let k = (j + round) % HttpClient::ALL.len();
            let (total, arrivals) = b.batch(HttpClient::ALL[k], per_batch).await;
            totals[k] += total;
            intervals[k].extend(arrivals.windows(2).map(|w| w[1] - w[0]));
        }
    }
    let n = rounds * per_batch as usize;
    let stats: Vec<Stats> = intervals.into_iter().map(Stats::new).collect();
    let mean: Vec<Duration> = totals.iter().map(|t| *t / n as u32).collect();
    for (k, client) in HttpClient::ALL.iter().enumerate() {
        let s = &stats[k];
        eprintln!(
            "grants, http GET, {}: {} intervals: min {} p50 {} p90 {} p99 {} max {}; batch time per request {}",
            client.name(),
            s.0.len(),
            us(s.min()),
            us(s.median()),
            us(s.pct(90.0)),
            us(s.pct(99.0)),
            us(s.max()),
            us(mean[k])
        );
    }
    let (guest, raw, fresh, keep, pooled, spawned) = (
        &stats[0], &stats[1], &stats[2], &stats[3], &stats[4], &stats[5],
    );
    let r = |a: Duration, b: Duration| a.as_secs_f64() / b.as_secs_f64();
    let (p50_ratio, p99_ratio) = (
        r(guest.median(), raw.median()),
        r(guest.pct(99.0), raw.pct(99.0)),
    );
    rows.push(Row {
        id: "G2a".into(),
        figure: format!(
            "outbound HTTP GET by a guest (`fetch_url` with `repeat` {per_batch}: wasi:http, a new connection per request) to a local HTTP/1.1 server on 127.0.0.1 ({}-byte body), per request (interval between two requests' arrivals at the server), ÷ the same GETs made natively over a new connection each (tokio `TcpStream` by hand); {rounds} batches of {per_batch} each, interleaved",
            HTTP_BODY.len()
        ),
        measured: format!(
            "guest p50 **{}**, p99 **{}** (mean {}); native p50 {}, p99 {} (mean {}); **{:.2}× / {:.2}×** (p50 / p99); +{:.1} µs per request at p50",
            us(guest.median()),
            us(guest.pct(99.0)),
            us(mean[0]),
            us(raw.median()),
            us(raw.pct(99.0)),
            us(mean[1]),
            p50_ratio,
            p99_ratio,
            (guest.median().as_secs_f64() - raw.median().as_secs_f64()) * 1e6
        ),
        target: "≤ 2×".into(),
        met: met(p50_ratio <= 2.0 && p99_ratio <= 2.0),
        vs_python: "–".into(),
    });
    rows.push(Row {
        id: "G2b".into(),
        figure: "the same GETs natively with reqwest (hyper, as wasi:http): a new connection per request (no pool), and one kept-alive connection (context); the guest here is the one without keep-alive".into(),
        measured: format!(
            "new connection p50 {}, p99 {} (guest ÷ it: **{:.2}× / {:.2}×**); keep-alive p50 {}, p99 {} (guest ÷ it: {:.2}× / {:.2}×)",
            us(fresh.median()),
            us(fresh.pct(99.0)),
            r(guest.median(), fresh.median()),
            r(guest.pct(99.0), fresh.pct(99.0)),
            us(keep.median()),
            us(keep.pct(99.0)),
            r(guest.median(), keep.median()),
            r(guest.pct(99.0), keep.pct(99.0))
        ),
        target: "–".into(),
        met: "–",
        vs_python: "–".into(),
    });
    rows.push(Row {
        id: "I3".into(),
        figure: format!(
            "outbound HTTP GET by a guest on **kept-alive connections** (`fetch_url` with `repeat` {per_batch}; the job type's pool, kept from batch to batch) ÷ a native kept-alive client (reqwest with its pool), per request, p50; same batches as G2a, interleaved"
        ),
        measured: format!(
            "guest pooled p50 **{}**, p99 {} (mean {}); native keep-alive p50 {}, p99 {}: **{:.2}×** at p50 ({:.2}× at p99); native keep-alive with each request on a spawned task (as wasi:http sends a guest's) p50 {} (guest ÷ it: {:.2}×); the guest without keep-alive (G2a) takes {:.2}× the pooled guest's time",
            us(pooled.median()),
            us(pooled.pct(99.0)),
            us(mean[4]),
            us(keep.median()),
            us(keep.pct(99.0)),
            r(pooled.median(), keep.median()),
            r(pooled.pct(99.0), keep.pct(99.0)),
            us(spawned.median()),
            r(pooled.median(), spawned.median()),
            r(guest.median(), pooled.median())
        ),
        target: "p50 ≤ 1.2× native keep-alive".into(),
        met: met(r(pooled.median(), keep.median()) <= 1.2),
        vs_python: "–".into(),
    });
}

/// Reads a file with `std::io::Read::read` into a buffer of `buf_len` bytes until the end.
fn read_loop(path: &std::path::Path, buf_len: usize) -> u64 {
    let mut f = std::fs::File::open(path).expect("open");
    let mut buf = vec![0u8; buf_len];
    let mut total = 0u64;
    loop {
        let n = f.read(&mut buf).expect("read");
        if n == 0 {
            return total;
        }
        total += black_box(&buf[..n]).len() as u64;
    }
}

/// Like `read_loop`, but each read is a `pread` into a fresh buffer on tokio's blocking pool
/// (`spawn_blocking`), which is how wasmtime-wasi performs every file read of a guest.
async fn read_loop_blocking_pool(path: &std::path::Path, buf_len: usize) -> u64 {
    use std::os::unix::fs::FileExt;
    let file = Arc::new(std::fs::File::open(path).expect("open"));
    let mut offset = 0u64;
    loop {
        let f = file.clone();
        let buf = tokio::task::spawn_blocking(move || {
            let mut buf = vec![0u8; buf_len];
            let n = f.read_at(&mut buf, offset).expect("read");
            buf.truncate(n);
            buf
        })
        .await
        .expect("blocking read");
        if buf.is_empty() {
            return offset;
        }
        offset += black_box(&buf).len() as u64;
    }
}

fn mib_s(bytes: u64, d: Duration) -> String {
    format!(
        "{:.0} MiB/s",
        bytes as f64 / (1 << 20) as f64 / d.as_secs_f64()
    )
}

/// 5c. Reading a file through a granted read-only directory, against native reads.
async fn bench_grants_read(opts: &Opts, rows: &mut Vec<Row>) {
    let (rounds, mib) = if opts.quick { (3, 8u64) } else { (7, 64u64) };
    let dir = tempfile::tempdir().expect("temporary directory");
    let path = dir.path().join("big.csv");
    let size = mib << 20;
    // Text, so that `probe`'s `content` (the first 64 KiB) stays 64 KiB of JSON.
    let line = b"2026-12-01,12345,678.90,queuemgr runtime benchmark,granted read-only directory\n";
    let mut data: Vec<u8> = line.iter().copied().cycle().take(size as usize).collect();
    data[size as usize - 1] = b'\n';
    std::fs::write(&path, &data).expect("write the file");
    drop(data);
    let grants = Arc::new(Grants {
        dirs: vec![DirGrant::new(dir.path(), dir.path(), "/data/in", false).expect("grant")],
        ..Grants::default()
    });
    let rt = Runtime::new(RuntimeConfig::default()).expect("engine");
    let program = load(&rt, "probe").await;
    let params = r#"{"op":"read","path":"/data/in/big.csv"}"#;
    let guest = async || {
        let t = Instant::now();
        let out = rt.run(&program, granted(params, &grants)).await;
        let d = t.elapsed();
        let Outcome::Completed(json) = out else {
            panic!("probe read: {out:?}");
        };
        let v: serde_json::Value = serde_json::from_str(&json).expect("result is JSON");
        assert_eq!(v["bytes"], size, "probe read the whole file");
        d
    };
    let native = |f: &dyn Fn() -> u64| {
        let t = Instant::now();
        assert_eq!(f(), size);
        t.elapsed()
    };
    let whole = || black_box(std::fs::read(&path).expect("read")).len() as u64;
    let loop_8k = || read_loop(&path, 8 << 10);
    let loop_64k = || read_loop(&path, 64 << 10);
    // Warm-up: the file in the page cache, the code paths run once.
    guest().await;
    native(&whole);
    let pooled_8k = async || {
        let t = Instant::now();
        assert_eq!(read_loop_blocking_pool(&path, 8 << 10).await, size);
        t.elapsed()
    };
    let (mut t_guest, mut t_whole, mut t_8k, mut t_64k, mut t_pool) =
        (vec![], vec![], vec![], vec![], vec![]);
    // Interleaved, so that drift in the machine's speed hits all alike.
    for _ in 0..rounds {
        t_guest.push(guest().await);
        t_whole.push(native(&whole));
        t_8k.push(native(&loop_8k));
        t_64k.push(native(&loop_64k));
        t_pool.push(pooled_8k().await);
    }
    let (g, w, l8, l64, pool) = (
        Stats::new(t_guest),
        Stats::new(t_whole),
        Stats::new(t_8k),
        Stats::new(t_64k),
        Stats::new(t_pool),
    );
    for (name, s) in [
        ("guest probe read", &g),
        ("native std::fs::read", &w),
        ("native 8 KiB read loop", &l8),
        ("native 64 KiB read loop", &l64),
        ("native 8 KiB preads, each on the blocking pool", &pool),
    ] {
        eprintln!(
            "grants, read {mib} MiB, {name}: {rounds} runs: min {} ({}) median {} ({}) max {}",
            ms(s.min()),
            mib_s(size, s.min()),
            ms(s.median()),
            mib_s(size, s.median()),
            ms(s.max())
        );
    }
    let times = |a: &Stats, b: &Stats| a.median().as_secs_f64() / b.median().as_secs_f64();
    rows.push(Row {
        id: "G3a".into(),
        figure: format!(
            "read a {mib} MiB file (in the page cache) through a read-only granted directory: `probe` `{{\"op\":\"read\",…}}` (whole run; the guest reads 8 KiB at a time, `std::io::copy`) ÷ the same file read natively, 8 KiB at a time and with `std::fs::read`; median of {rounds}, interleaved"
        ),
        measured: format!(
            "guest **{}** ({}; best {}); native 8 KiB read loop {} ({}): **{:.1}×** the time; native `std::fs::read` {} ({}; allocates and faults in {mib} MiB each time): **{:.1}×**; native 64 KiB read loop {}",
            mib_s(size, g.median()),
            ms(g.median()),
            mib_s(size, g.min()),
            mib_s(size, l8.median()),
            ms(l8.median()),
            times(&g, &l8),
            mib_s(size, w.median()),
            ms(w.median()),
            times(&g, &w),
            mib_s(size, l64.median())
        ),
        target: "–".into(),
        met: "–",
        vs_python: "–".into(),
    });
    rows.push(Row {
        id: "G3b".into(),
        figure: "where the guest's time goes: the same 8 KiB reads natively, each a `pread` on tokio's blocking pool (`spawn_blocking`), as wasmtime-wasi performs every file read of a guest".into(),
        measured: format!(
            "**{}** ({}; {:.1} µs per read); guest ÷ it: {:.2}×",
            mib_s(size, pool.median()),
            ms(pool.median()),
            pool.median().as_secs_f64() * 1e6 / (size / (8 << 10)) as f64,
            times(&g, &pool)
        ),
        target: "–".into(),
        met: "–",
        vs_python: "–".into(),
    });
}

// ---------------------------------------------------------------------------------------------
// 7. Native-speed I/O: files through grants, HTTP on kept-alive connections, a CSV job

async fn bench_io(opts: &Opts, rows: &mut Vec<Row>) {
    bench_io_files(opts, rows).await;
    bench_io_python(opts, rows).await;
    bench_grants_http(opts, rows).await;
    bench_io_one_request(opts, rows).await;
    bench_io_csv(opts, rows).await;
    bench_io_stop(opts, rows).await;
}

fn dir_grants(dir: &std::path::Path, writable: bool, io: IoChoice) -> Arc<Grants> {
    Arc::new(Grants {
        dirs: vec![DirGrant::with_io(dir, dir, "/data", writable, io).expect("grant")],
        ..Grants::default()
    })
}

/// Runs `program` with `params` under `grants`; the wall time of the whole run.
async fn timed_run(
    rt: &Runtime,
    program: &JobProgram,
    params: &str,
    grants: &Arc<Grants>,
) -> (Duration, serde_json::Value) {
    let t = Instant::now();
    let out = rt.run(program, granted(params, grants)).await;
    let d = t.elapsed();
    let Outcome::Completed(json) = out else {
        panic!("{params}: {out:?}");
    };
    (d, serde_json::from_str(&json).expect("result is JSON"))
}

/// I1, I2. A 64 MiB file read and written by a guest through a grant (inline I/O, and the
/// blocking pool as before), against `std::fs::read` / `std::fs::write` natively.
async fn bench_io_files(opts: &Opts, rows: &mut Vec<Row>) {
    let (rounds, mib) = if opts.quick { (3, 8u64) } else { (9, 64u64) };
    let size = mib << 20;
    let dir = tempfile::tempdir().expect("temporary directory");
    let path = dir.path().join("big.bin");
    std::fs::write(&path, vec![b'q'; size as usize]).expect("write the file");
    let rt = Runtime::new(RuntimeConfig::default()).expect("engine");
    let program = load(&rt, "probe").await;
    let inline = dir_grants(dir.path(), true, IoChoice::Inline);
    let pool = dir_grants(dir.path(), true, IoChoice::Pool);
    let read_all = r#"{"op":"read_all","path":"/data/big.bin"}"#;
    let read_8k = r#"{"op":"read","path":"/data/big.bin"}"#;
    let fill = format!(r#"{{"op":"fill","path":"/data/out.bin","bytes":{size}}}"#);
    let native_read = || {
        let t = Instant::now();
        assert_eq!(
            black_box(std::fs::read(&path).expect("read")).len() as u64,
            size
        );
        t.elapsed()
    };
    let out = dir.path().join("native.bin");
    let native_write = || {
        let t = Instant::now();
        let data = vec![b'x'; size as usize];
        std::fs::write(&out, &data).expect("write");
        t.elapsed()
    };
    // Warm-up: the file in the page cache, each path run once.
    for g in [&inline, &pool] {
        timed_run(&rt, &program, read_all, g).await;
        timed_run(&rt, &program, &fill, g).await;
    }
    native_read();
    native_write();
    let mut t: [Vec<Duration>; 7] = Default::default();
    for _ in 0..rounds {
        let (d, v) = timed_run(&rt, &program, read_all, &inline).await;
        assert_eq!(v["bytes"], size);
        t[0].push(d);
        t[1].push(timed_run(&rt, &program, read_all, &pool).await.0);
        t[2].push(native_read());
        t[3].push(timed_run(&rt, &program, read_8k, &inline).await.0);
        let (d, v) = timed_run(&rt, &program, &fill, &inline).await;
        assert_eq!(v["written"], size);
        t[4].push(d);
        t[5].push(timed_run(&rt, &program, &fill, &pool).await.0);
        t[6].push(native_write());
    }
    let s: Vec<Stats> = t.into_iter().map(Stats::new).collect();
    let names = [
        "guest std::fs::read, inline",
        "guest std::fs::read, blocking pool",
        "native std::fs::read",
        "guest 8 KiB std::io::copy, inline",
        "guest std::fs::write, inline",
        "guest std::fs::write, blocking pool",
        "native std::fs::write",
    ];
    for (name, st) in names.iter().zip(&s) {
        eprintln!(
            "io, {mib} MiB, {name}: median {} ({}), min {}, max {}",
            ms(st.median()),
            mib_s(size, st.median()),
            ms(st.min()),
            ms(st.max())
        );
    }
    // Speed ratio: native time ÷ guest time (1.0 = as fast as native).
    let speed = |guest: &Stats, native: &Stats| {
        native.median().as_secs_f64() / guest.median().as_secs_f64()
    };
    rows.push(Row {
        id: "I1".into(),
        figure: format!(
            "**read a {mib} MiB file** (page cache) through a granted directory: `probe` `read_all` (`std::fs::read`, whole run) with the mount's I/O inline (the default on a local filesystem) ÷ native `std::fs::read`; median of {rounds}, interleaved"
        ),
        measured: format!(
            "guest inline **{}** ({}); native {} ({}): **{:.2}×** native speed. Before (the blocking pool, `io = \"pool\"`): {} ({:.2}×); inline is {:.1}× the pool's speed. 8 KiB `std::io::copy`, inline: {}",
            mib_s(size, s[0].median()),
            ms(s[0].median()),
            mib_s(size, s[2].median()),
            ms(s[2].median()),
            speed(&s[0], &s[2]),
            mib_s(size, s[1].median()),
            speed(&s[1], &s[2]),
            s[1].median().as_secs_f64() / s[0].median().as_secs_f64(),
            mib_s(size, s[3].median()),
        ),
        target: "≥ 0.8× native".into(),
        met: met(speed(&s[0], &s[2]) >= 0.8),
        vs_python: "–".into(),
    });
    rows.push(Row {
        id: "I2".into(),
        figure: format!(
            "**write a {mib} MiB file** through a read-write grant: `probe` `fill` (a buffer of {mib} MiB, `std::fs::write`, whole run), inline ÷ the same natively (buffer + `std::fs::write`); median of {rounds}, interleaved"
        ),
        measured: format!(
            "guest inline **{}** ({}); native {} ({}): **{:.2}×** native speed. Before (blocking pool): {} ({:.2}×)",
            mib_s(size, s[4].median()),
            ms(s[4].median()),
            mib_s(size, s[6].median()),
            ms(s[6].median()),
            speed(&s[4], &s[6]),
            mib_s(size, s[5].median()),
            speed(&s[5], &s[6]),
        ),
        target: "≥ 0.8× native".into(),
        met: met(speed(&s[4], &s[6]) >= 0.8),
        vs_python: "–".into(),
    });
}

/// I7. The same 64 MiB read and write from a Python job (`open(path, "rb").read()`,
/// `f.write(data)`; componentize-py), inline I/O, against `std::fs` natively.
async fn bench_io_python(opts: &Opts, rows: &mut Vec<Row>) {
    let (rounds, mib) = if opts.quick { (3, 8u64) } else { (7, 64u64) };
    let size = mib << 20;
    let dir = tempfile::tempdir().expect("temporary directory");
    let path = dir.path().join("big.bin");
    std::fs::write(&path, vec![b'q'; size as usize]).expect("write the file");
    let rt = Runtime::new(RuntimeConfig::default()).expect("engine");
    let bytes = std::fs::read(queuemgr_tests::python_job("files")).expect("files_py.wasm");
    let component = rt.compile(&bytes).expect("compiles");
    let program = rt.prepare(&component).await.expect("prepares");
    let grants = dir_grants(dir.path(), true, IoChoice::Inline);
    let read = r#"{"op":"read","path":"/data/big.bin"}"#;
    let write = format!(r#"{{"op":"write","path":"/data/out.bin","bytes":{size}}}"#);
    let out = dir.path().join("native.bin");
    let native_read = || {
        let t = Instant::now();
        assert_eq!(
            black_box(std::fs::read(&path).expect("read")).len() as u64,
            size
        );
        t.elapsed()
    };
    let native_write = || {
        let t = Instant::now();
        std::fs::write(&out, vec![b'x'; size as usize]).expect("write");
        t.elapsed()
    };
    timed_run(&rt, &program, read, &grants).await;
    timed_run(&rt, &program, &write, &grants).await;
    let mut t: [Vec<Duration>; 4] = Default::default();
    for _ in 0..rounds {
        let (d, v) = timed_run(&rt, &program, read, &grants).await;
        assert_eq!(v["bytes"], size);
        t[0].push(d);
        t[1].push(native_read());
        let (d, v) = timed_run(&rt, &program, &write, &grants).await;
        assert_eq!(v["written"], size);
        t[2].push(d);
        t[3].push(native_write());
    }
    let s: Vec<Stats> = t.into_iter().map(Stats::new).collect();
    let speed = |g: &Stats, n: &Stats| n.median().as_secs_f64() / g.median().as_secs_f64();
    eprintln!(
        "io, python {mib} MiB: read {} (native {}), write {} (native {})",
        ms(s[0].median()),
        ms(s[1].median()),
        ms(s[2].median()),
        ms(s[3].median())
    );
    rows.push(Row {
        id: "I7".into(),
        figure: format!(
            "a **Python** job (`example-jobs/python/files.py`, componentize-py) reading a {mib} MiB file whole (`open(p, \"rb\").read()`) and writing one (`f.write(b\"x\" * n)`) through an inline grant, whole run ÷ `std::fs::read` / `std::fs::write` natively; median of {rounds}, interleaved"
        ),
        measured: format!(
            "read **{}** ({}; native {}): **{:.2}×** native speed; write **{}** ({}; native {}): **{:.2}×**",
            mib_s(size, s[0].median()),
            ms(s[0].median()),
            ms(s[1].median()),
            speed(&s[0], &s[1]),
            mib_s(size, s[2].median()),
            ms(s[2].median()),
            ms(s[3].median()),
            speed(&s[2], &s[3]),
        ),
        target: "as the Rust guest (I1, I2)".into(),
        met: "–",
        vs_python: "–".into(),
    });
}

/// I4. A job that makes one request: the whole run, with the type's pool (kept from run to
/// run) and without keep-alive (a new connection, as before).
async fn bench_io_one_request(opts: &Opts, rows: &mut Vec<Row>) {
    let n = if opts.quick { 50 } else { 400 };
    let rt = Runtime::new(RuntimeConfig::default()).expect("engine");
    let program = load(&rt, "fetch_url").await;
    let server = LocalHttp::start();
    let params = serde_json::json!({"url": server.url()}).to_string();
    let pooled = Arc::new(Grants {
        http: Some(http_grant(10, true)),
        ..Grants::default()
    });
    let fresh = Arc::new(Grants {
        http: Some(http_grant(10, false)),
        ..Grants::default()
    });
    for g in [&pooled, &fresh] {
        for _ in 0..20 {
            timed_run(&rt, &program, &params, g).await;
        }
    }
    let (mut tp, mut tf) = (Vec::new(), Vec::new());
    for i in 0..n {
        let order: [&Arc<Grants>; 2] = if i % 2 == 0 {
            [&pooled, &fresh]
        } else {
            [&fresh, &pooled]
        };
        for g in order {
            let (d, v) = timed_run(&rt, &program, &params, g).await;
            assert_eq!(v["status"], 200);
            if Arc::ptr_eq(g, &pooled) {
                tp.push(d)
            } else {
                tf.push(d)
            }
        }
    }
    server.take();
    let (p, f) = (Stats::new(tp), Stats::new(tf));
    eprintln!(
        "io, one request per job: pooled p50 {} p99 {}; new connection p50 {} p99 {}",
        us(p.median()),
        us(p.pct(99.0)),
        us(f.median()),
        us(f.pct(99.0))
    );
    let ratio = p.median().as_secs_f64() / f.median().as_secs_f64();
    rows.push(Row {
        id: "I4".into(),
        figure: format!(
            "a job that makes **one** GET (`fetch_url`), the whole run (instantiate, request, body, result): with the job type's pool (warm: kept from run to run) ÷ without keep-alive (a new connection, as before the pool); {n} runs each, alternating"
        ),
        measured: format!(
            "pooled p50 **{}**, p99 {}; new connection p50 {}, p99 {}: **{:.2}×** the time",
            us(p.median()),
            us(p.pct(99.0)),
            us(f.median()),
            us(f.pct(99.0)),
            ratio
        ),
        target: "no slower than before (≤ 1.0×)".into(),
        met: met(ratio <= 1.05),
        vs_python: "–".into(),
    });
}

/// Writes a CSV of about `bytes` bytes: a header and rows of a date, a region, three numbers.
fn write_csv(path: &std::path::Path, bytes: u64) -> u64 {
    use std::io::Write;
    let mut w =
        std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(path).expect("create"));
    let mut written = 0u64;
    let header = "date,region,order_id,units,price\n";
    w.write_all(header.as_bytes()).expect("write");
    written += header.len() as u64;
    let regions = [
        "north",
        "south",
        "east",
        "west",
        "\"central\"",
        "north-east",
        "islands",
    ];
    let mut i = 0u64;
    while written < bytes {
        let line = format!(
            "2026-{:02}-{:02},{},{},{},{}.{:02}\n",
            i % 12 + 1,
            i % 28 + 1,
            regions[(i % 7) as usize],
            1_000_000 + i,
            i % 97,
            i % 1000,
            i % 100
        );
        w.write_all(line.as_bytes()).expect("write");
        written += line.len() as u64;
        i += 1;
    }
    w.flush().expect("flush");
    written
}

/// I5. `process_data` on a large CSV (1 GiB) against the same `csv-summary` code built
/// natively, reading the file the same way (64 KiB buffered).
async fn bench_io_csv(opts: &Opts, rows: &mut Vec<Row>) {
    let (rounds, mib) = if opts.quick { (2, 32u64) } else { (3, 1024u64) };
    let dir = tempfile::tempdir().expect("temporary directory");
    std::fs::create_dir_all(dir.path().join("in")).expect("mkdir");
    std::fs::create_dir_all(dir.path().join("out")).expect("mkdir");
    let path = dir.path().join("in/big.csv");
    let t = Instant::now();
    let size = write_csv(&path, mib << 20);
    eprintln!("io, csv: wrote {size} bytes in {}", ms(t.elapsed()));
    let grants = Arc::new(Grants {
        dirs: vec![
            DirGrant::new(dir.path(), &dir.path().join("in"), "/data/in", false).expect("grant"),
            DirGrant::new(dir.path(), &dir.path().join("out"), "/data/out", true).expect("grant"),
        ],
        ..Grants::default()
    });
    let rt = Runtime::new(RuntimeConfig::default()).expect("engine");
    let program = load(&rt, "process_data").await;
    let unmetered = Runtime::new(RuntimeConfig {
        metering: Metering::Off,
        ..RuntimeConfig::default()
    })
    .expect("engine");
    let program_unmetered = load(&unmetered, "process_data").await;
    let epoch = Runtime::new(RuntimeConfig {
        metering: Metering::Epoch,
        ..RuntimeConfig::default()
    })
    .expect("engine");
    let program_epoch = load(&epoch, "process_data").await;
    let params = r#"{"input":"/data/in/big.csv","output":"/data/out/summary.json"}"#;
    let native = || {
        let t = Instant::now();
        let f = std::fs::File::open(&path).expect("open");
        let mut r = std::io::BufReader::with_capacity(64 << 10, f);
        let ended =
            csv_summary::summarize(&mut r, 1000, |_| csv_summary::Flow::Continue).expect("read");
        let csv_summary::Ended::Done(s) = ended else {
            panic!("stopped")
        };
        (t.elapsed(), s.rows)
    };
    let (mut tg, mut tn, mut tu, mut tf) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut rows_seen = 0;
    for _ in 0..rounds {
        let (d, v) = timed_run(&rt, &program, params, &grants).await;
        tg.push(d);
        tu.push(
            timed_run(&unmetered, &program_unmetered, params, &grants)
                .await
                .0,
        );
        tf.push(timed_run(&epoch, &program_epoch, params, &grants).await.0);
        let (dn, nrows) = native();
        tn.push(dn);
        assert_eq!(v["rows"], nrows, "the job and the native code agree");
        assert_eq!(v["bytes"], size);
        rows_seen = nrows;
    }
    let (g, n, u, f) = (
        Stats::new(tg),
        Stats::new(tn),
        Stats::new(tu),
        Stats::new(tf),
    );
    let speed = n.median().as_secs_f64() / g.median().as_secs_f64();
    let speed_unmetered = n.median().as_secs_f64() / u.median().as_secs_f64();
    let speed_epoch = n.median().as_secs_f64() / f.median().as_secs_f64();
    eprintln!(
        "io, csv {mib} MiB ({rows_seen} rows): guest median {} ({}), native {} ({})",
        ms(g.median()),
        mib_s(size, g.median()),
        ms(n.median()),
        mib_s(size, n.median())
    );
    rows.push(Row {
        id: "I5".into(),
        figure: format!(
            "**`process_data` on a {mib} MiB CSV** ({rows_seen} rows, 5 columns; progress every 1,000 rows; the default metering, fuel), the whole run ÷ the same `csv-summary` code built natively reading the file the same way; median of {rounds}, alternating"
        ),
        measured: format!(
            "guest **{}** ({}); native {} ({}): **{speed:.2}×** native speed; with `--metering epoch` {} ({speed_epoch:.2}×); unmetered {} ({speed_unmetered:.2}×)",
            ms(g.median()),
            mib_s(size, g.median()),
            ms(n.median()),
            mib_s(size, n.median()),
            ms(f.median()),
            ms(u.median())
        ),
        target: "≥ 0.7× native".into(),
        met: met(speed >= 0.7),
        vs_python: "–".into(),
    });
}

/// I6. A stop while a guest reads a huge file with inline I/O: the time from the stop to the
/// run's end.
async fn bench_io_stop(opts: &Opts, rows: &mut Vec<Row>) {
    let n = if opts.quick { 5 } else { 30 };
    let dir = tempfile::tempdir().expect("temporary directory");
    let path = dir.path().join("sparse.bin");
    // A sparse 64 GiB file: reads of holes return zeros at memory speed, for minutes.
    std::fs::File::create(&path)
        .and_then(|f| f.set_len(64 << 30))
        .expect("sparse file");
    let rt = Runtime::new(RuntimeConfig::default()).expect("engine");
    let program = load(&rt, "probe").await;
    let grants = dir_grants(dir.path(), false, IoChoice::Inline);
    let mut lat = Vec::new();
    for _ in 0..n {
        let stop = CancellationToken::new();
        let run = {
            let (rt, program, grants, stop) =
                (rt.clone(), program.clone(), grants.clone(), stop.clone());
            tokio::spawn(async move {
                let req = RunRequest {
                    grants,
                    ..req(r#"{"op":"read","path":"/data/sparse.bin"}"#, stop)
                };
                let out = rt.run(&program, req).await;
                (out, Instant::now())
            })
        };
        tokio::time::sleep(Duration::from_millis(50)).await;
        let t = Instant::now();
        stop.cancel();
        let (out, ended) = run.await.expect("run task");
        assert!(matches!(out, Outcome::Stopped), "{out:?}");
        lat.push(ended.saturating_duration_since(t));
    }
    let s = Stats::new(lat);
    eprintln!(
        "io, stop during a large inline read: p50 {} p99 {} max {}",
        us(s.median()),
        us(s.pct(99.0)),
        us(s.max())
    );
    rows.push(Row {
        id: "I6".into(),
        figure: format!(
            "**stop a job in the middle of a huge read** (inline I/O: `probe` `read` of a 64 GiB sparse file, 8 KiB calls) — the stop to the run's end; {n} runs"
        ),
        measured: format!(
            "p50 **{}**, p99 {}, max {}",
            us(s.median()),
            us(s.pct(99.0)),
            us(s.max())
        ),
        target: "within the stop target (ms)".into(),
        met: met(s.max() < Duration::from_millis(50)),
        vs_python: "–".into(),
    });
}

// ---------------------------------------------------------------------------------------------
// 6. Python jobs

/// A real server process on `jobs` with its code cache in `cache`: the time from spawn until
/// `list_job_types` lists `job_type` as loaded.
async fn python_server_ready(
    jobs: &std::path::Path,
    cache: &std::path::Path,
    registry: &std::path::Path,
    job_type: &str,
) -> Duration {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let url = format!("http://127.0.0.1:{port}/api/v1/execute");
    let started = Instant::now();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_queuemgr-e2e-server"))
        .arg("serve")
        .arg("--listen")
        .arg(format!("127.0.0.1:{port}"))
        .arg("--jobs-dir")
        .arg(jobs)
        .arg("--cache-dir")
        .arg(cache)
        .arg("--registry")
        .arg(registry)
        .arg("--load-wait-secs")
        .arg("600")
        .env("QUEUEMGR_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn the server");
    let http = reqwest::Client::new();
    let body = r#"{"command":"queue","params":{"action":"list_job_types"}}"#;
    let needle = format!("\"job_type\":\"{job_type}\"");
    let ready = loop {
        if let Ok(r) = http
            .post(&url)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            && let Ok(text) = r.text().await
            && text.contains(&needle)
        {
            break started.elapsed();
        }
        assert!(
            started.elapsed() < Duration::from_secs(900),
            "{job_type} not loaded"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    };
    let _ = child.kill();
    let _ = child.wait();
    ready
}

/// `example-jobs/python/<stem>.py` under plain CPython (the SDK's stand-in host): wall time.
fn cpython_run(stem: &str, params: &str) -> Duration {
    let root = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let t = Instant::now();
    let out = std::process::Command::new("python3")
        .args(["-m", "queuemgr_job"])
        .arg(root.join(format!("example-jobs/python/{stem}.py")))
        .arg(params)
        .env("PYTHONPATH", root.join("guest-sdk-python"))
        .output()
        .expect("python3");
    let took = t.elapsed();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    took
}

async fn bench_python(opts: &Opts, rows: &mut Vec<Row>) {
    let (my_job, primes) = tokio::task::spawn_blocking(|| {
        (
            queuemgr_tests::python_job("my_job"),
            queuemgr_tests::python_job("primes"),
        )
    })
    .await
    .expect("build the Python jobs");
    let size = std::fs::metadata(&my_job).map_or(0, |m| m.len());

    // 6a/6b: a real server, from spawn to the type loaded: cold (empty code cache), then
    // restarts with the cache, interleaved with a server on the Rust `noop` alone.
    let dir = tempfile::tempdir().expect("tempdir");
    let (py_jobs, rust_jobs) = (dir.path().join("py"), dir.path().join("rust"));
    std::fs::create_dir_all(&py_jobs).expect("jobs dir");
    std::fs::create_dir_all(&rust_jobs).expect("jobs dir");
    std::fs::copy(&my_job, py_jobs.join("my_job_py.wasm")).expect("copy");
    std::fs::copy(job_wasm("noop"), rust_jobs.join("noop.wasm")).expect("copy");
    let cache = dir.path().join("cache");
    let registry = dir.path().join("registry.jsonl");
    let cold = python_server_ready(&py_jobs, &cache, &registry, "my_job_py").await;
    let _ = python_server_ready(&rust_jobs, &cache, &registry, "noop").await;
    eprintln!("python: cold start {cold:?}");
    let rounds = if opts.quick { 3 } else { 9 };
    let (mut warm, mut rust) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        warm.push(python_server_ready(&py_jobs, &cache, &registry, "my_job_py").await);
        rust.push(python_server_ready(&rust_jobs, &cache, &registry, "noop").await);
    }
    let (warm, rust) = (Stats::new(warm), Stats::new(rust));
    eprintln!(
        "python: restart with the cache {:?} (max {:?}); Rust noop {:?}",
        warm.median(),
        warm.max(),
        rust.median()
    );
    rows.push(Row {
        id: "6a".into(),
        figure: format!(
            "the seed's MyJob in Python (`my_job_py.wasm`, {:.1} MB): a server spawned on a jobs directory holding it → `list_job_types` lists it, with an empty code cache (cold: compiled)",
            size as f64 / 1e6
        ),
        measured: format!("**{:.1} s**", cold.as_secs_f64()),
        target: "–".into(),
        met: "–",
        vs_python: "–".into(),
    });
    rows.push(Row {
        id: "6b".into(),
        figure: format!(
            "the same, restarted with the code cache (median of {rounds}, interleaved with a server on the Rust `noop` alone)"
        ),
        measured: format!(
            "**{}** (max {}); the Rust `noop` server {} — {} the cold start",
            ms(warm.median()),
            ms(warm.max()),
            ms(rust.median()),
            ratio(cold.as_secs_f64() / warm.median().as_secs_f64()).replace('×', "× faster than")
        ),
        target: "≤ 200 ms".into(),
        met: met(warm.median() <= Duration::from_millis(200)),
        vs_python: "–".into(),
    });

    // 6c: instantiate + run of a trivial Python job, in-process.
    let rt = Runtime::new(RuntimeConfig {
        max_instances: 1_100,
        ..RuntimeConfig::default()
    })
    .expect("runtime");
    let t = Instant::now();
    let bytes = std::fs::read(&my_job).expect("my_job_py.wasm");
    let component = rt.compile(&bytes).expect("my_job_py compiles");
    let program = rt.prepare(&component).await.expect("my_job_py prepares");
    eprintln!("python: in-process compile of my_job_py {:?}", t.elapsed());
    let trivial = r#"{"task_name":"bench","duration":0}"#;
    let n = if opts.quick { 50 } else { 500 };
    let mut runs = Vec::with_capacity(n);
    for i in 0..n + n / 10 {
        let t = Instant::now();
        let out = rt
            .run(&program, req(trivial, CancellationToken::new()))
            .await;
        let took = t.elapsed();
        assert!(matches!(out, Outcome::Completed(_)), "{out:?}");
        if i >= n / 10 {
            runs.push(took);
        }
    }
    let runs = Stats::new(runs);
    eprintln!(
        "python: trivial run p50 {:?} p99 {:?}",
        runs.median(),
        runs.pct(99.0)
    );
    rows.push(Row {
        id: "6c".into(),
        figure: format!(
            "instantiate + run + drop of a trivial Python job (MyJob with `duration` 0: prints, builds its result dict), {n} runs after {} to warm up",
            n / 10
        ),
        measured: format!(
            "median **{}**, p99 {}",
            ms(runs.median()),
            ms(runs.pct(99.0))
        ),
        target: "≤ 5 ms median".into(),
        met: met(runs.median() <= Duration::from_millis(5)),
        vs_python: format!(
            "{} faster than a process per job (~150 ms)",
            ratio(PY_START.as_secs_f64() / runs.median().as_secs_f64())
        ),
    });

    // 6d: 1,000 Python jobs parked in time.sleep.
    let parked_n = if opts.quick { 100 } else { 1_000 };
    match park_program(
        &rt,
        &program,
        r#"{"task_name":"parked","duration":3600}"#,
        parked_n,
        false,
    )
    .await
    {
        Ok(p) => {
            let per_job = p.rss_parked.saturating_sub(p.rss_before) as f64 / p.n as f64 / 1024.0;
            let pss = p.pss_parked.saturating_sub(p.pss_before) as f64 / p.n as f64 / 1024.0;
            eprintln!("python: parked {} jobs: {per_job:.2} MiB each", p.n);
            rows.push(Row {
                id: "6d".into(),
                figure: format!(
                    "{} Python MyJob runs parked at once in `time.sleep(1)` (the host's sleep): (VmRSS parked − VmRSS before) ÷ {}",
                    group(p.n as u64),
                    group(p.n as u64)
                ),
                measured: format!(
                    "**{per_job:.2} MiB** per job (VmRSS {} → {} MiB; Pss {pss:.2} MiB per job; settled in {:.1} s); all stopped {} after one cancel",
                    p.rss_before / 1024,
                    p.rss_parked / 1024,
                    p.settle.as_secs_f64(),
                    ms(p.release)
                ),
                target: "≤ 8 MiB per job".into(),
                met: met(per_job <= 8.0),
                vs_python: format!(
                    "{} less (process per job: ~22 MB)",
                    ratio(PY_BYTES_PER_JOB / (per_job * 1024.0 * 1024.0))
                ),
            });
        }
        Err(e) => rows.push(Row {
            id: "6d".into(),
            figure: format!("{parked_n} Python jobs parked at once"),
            measured: format!("FAILED: {e}"),
            target: "≤ 8 MiB per job".into(),
            met: met(false),
            vs_python: "–".into(),
        }),
    }
    drop(program);

    // 6e: the prime count, wasm against CPython natively.
    let bytes = std::fs::read(&primes).expect("primes_py.wasm");
    let component = rt.compile(&bytes).expect("primes_py compiles");
    let primes_program = rt.prepare(&component).await.expect("primes_py prepares");
    let limit = if opts.quick { 20_000 } else { 200_000 };
    let params: &'static str = Box::leak(format!(r#"{{"limit":{limit}}}"#).into_boxed_str());
    let rounds = if opts.quick { 1 } else { 3 };
    let (mut wasm, mut native, mut startup) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..rounds {
        let t = Instant::now();
        let out = rt
            .run(&primes_program, req(params, CancellationToken::new()))
            .await;
        wasm.push(t.elapsed());
        assert!(matches!(out, Outcome::Completed(_)), "{out:?}");
        native.push(cpython_run("primes", params));
        startup.push(cpython_run("primes", r#"{"limit":2}"#));
    }
    let (wasm, native, startup) = (Stats::new(wasm), Stats::new(native), Stats::new(startup));
    let native_work = native.median().saturating_sub(startup.median());
    let cpython = String::from_utf8_lossy(
        &std::process::Command::new("python3")
            .arg("--version")
            .output()
            .map(|o| o.stdout)
            .unwrap_or_default(),
    )
    .trim()
    .to_string();
    eprintln!(
        "python: primes below {limit}: wasm {:?}, {cpython} {:?} (startup {:?})",
        wasm.median(),
        native.median(),
        startup.median()
    );
    rows.push(Row {
        id: "6e".into(),
        figure: format!(
            "`primes.py`, the primes below {} by trial division in pure Python: a run in wasm (componentize-py's CPython, fuel metered) ÷ the same file under {cpython} natively (`python3 -m queuemgr_job primes.py`, minus that command's start-up with `limit` 2); median of {rounds}",
            group(limit)
        ),
        measured: format!(
            "**{}** ({} against {}; CPython start-up {})",
            ratio(wasm.median().as_secs_f64() / native_work.as_secs_f64()),
            ms(wasm.median()),
            ms(native_work),
            ms(startup.median())
        ),
        target: "a ratio".into(),
        met: "–",
        vs_python: "–".into(),
    });
}

// ---------------------------------------------------------------------------------------------

/// The digit-by-digit timestamp writer the API used before chrono's RFC 3339 writer replaced
/// it (`api::views::iso`), kept here to measure the two side by side.
fn iso_by_digits(micros: i64) -> String {
    use chrono::{Datelike, Timelike};
    let Some(t) = chrono::DateTime::from_timestamp_micros(micros) else {
        return String::new();
    };
    fn digits(out: &mut String, n: u32, width: u32) {
        for i in (0..width).rev() {
            out.push(char::from(b'0' + ((n / 10u32.pow(i)) % 10) as u8));
        }
    }
    let mut out = String::with_capacity(26);
    digits(&mut out, t.year() as u32, 4);
    for (sep, n, width) in [
        ('-', t.month(), 2),
        ('-', t.day(), 2),
        ('T', t.hour(), 2),
        (':', t.minute(), 2),
        (':', t.second(), 2),
        ('.', t.timestamp_subsec_micros(), 6),
    ] {
        out.push(sep);
        digits(&mut out, n, width);
    }
    out
}

/// Timestamp formatting for the API's answers: chrono's RFC 3339 writer (what `views::iso`
/// uses) against the digit-by-digit writer it replaced, alternating rounds of 1,000,000 each.
/// K1. Recognising a key among 10,000 in a keys file (`KeyRing::check`: SHA-256 of the
/// presented key, a map lookup, a constant-time compare), per call; known and unknown keys.
fn bench_keys(opts: &Opts, rows: &mut Vec<Row>) {
    use queuemgr::auth::{KeyRing, Role, file_entry, new_key};
    let (n_keys, n) = if opts.quick {
        (1_000, 20_000)
    } else {
        (10_000, 200_000)
    };
    let dir = tempfile::tempdir().expect("temporary directory");
    let path = dir.path().join("keys.toml");
    let mut text = String::new();
    let mut keys = Vec::with_capacity(n_keys);
    for i in 0..n_keys {
        let (key, sha) = new_key().expect("randomness");
        text.push_str(&file_entry(
            &format!("k{i}"),
            Role::Run,
            &sha,
            &queuemgr::auth::Scope::default(),
        ));
        keys.push(key);
    }
    std::fs::write(&path, text).expect("write the keys file");
    let ring = KeyRing::new(None, Some(&path)).expect("the keys file");
    let mut known = Vec::with_capacity(n);
    let mut unknown = Vec::with_capacity(n);
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    for i in 0..n {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let key = &keys[(x % n_keys as u64) as usize];
        let t = Instant::now();
        let c = black_box(ring.check(Some(black_box(key))));
        known.push(t.elapsed());
        assert!(c.is_some());
        let wrong = format!("qm_{i:064x}");
        let t = Instant::now();
        let c = black_box(ring.check(Some(black_box(&wrong))));
        unknown.push(t.elapsed());
        assert!(c.is_none());
    }
    // A keep-alive connection presents its key again: the connection's memo answers (timed
    // over batches of 1,000 calls, each call far below the clock's own cost).
    let mut memo = queuemgr::auth::KeyMemo::default();
    let mut again = Vec::with_capacity(n / 1_000);
    let mut fresh = Vec::with_capacity(n / 1_000);
    for b in 0..(n / 1_000).max(1) {
        let key = &keys[b % n_keys];
        let t = Instant::now();
        for _ in 0..1_000 {
            black_box(ring.check(Some(black_box(key))));
        }
        fresh.push(t.elapsed() / 1_000);
        let t = Instant::now();
        for _ in 0..1_000 {
            black_box(ring.check_remembered(Some(black_box(key)), &mut memo));
        }
        again.push(t.elapsed() / 1_000);
    }
    let (f, a) = (Stats::new(fresh), Stats::new(again));
    let (k, u) = (Stats::new(known), Stats::new(unknown));
    let ns = |d: Duration| format!("{} ns", d.as_nanos());
    rows.push(Row {
        id: "K1".into(),
        figure: format!(
            "recognise a key among **{n_keys}** in a keys file (`KeyRing::check`: SHA-256, map lookup, constant-time compare; the file's change checked at most once a second), {n} calls each, known and unknown keys interleaved"
        ),
        measured: format!(
            "known: p50 {}, **p99 {}**, max {}; unknown: p50 {}, p99 {}",
            ns(k.median()),
            ns(k.pct(99.0)),
            ns(k.max()),
            ns(u.median()),
            ns(u.pct(99.0))
        ),
        target: "p99 ≤ 5 µs".into(),
        met: met(k.pct(99.0) <= Duration::from_micros(5)),
        vs_python: "–".into(),
    });
    rows.push(Row {
        id: "K1b".into(),
        figure: format!(
            "the same key again on one connection (`KeyRing::check_remembered`, the connection's memo) ÷ recognised anew (`KeyRing::check`), mean of 1,000 calls, {} batches, among {n_keys} keys",
            n / 1_000
        ),
        measured: format!(
            "memo: p50 {}, p99 {}; anew: p50 {}, p99 {}; **{:.2}×**",
            ns(a.median()),
            ns(a.pct(99.0)),
            ns(f.median()),
            ns(f.pct(99.0)),
            a.median().as_secs_f64() / f.median().as_secs_f64()
        ),
        target: "–".into(),
        met: "–",
        vs_python: "–".into(),
    });
}

fn bench_iso(opts: &Opts, rows: &mut Vec<Row>) {
    let n: i64 = if opts.quick { 20_000 } else { 1_000_000 };
    let base = 1_764_000_000_000_000i64;
    for i in 0..1000 {
        let t = base + i * 7_777_777_777;
        assert_eq!(queuemgr::api::views::iso(t), iso_by_digits(t), "{t}");
    }
    let time = |f: &dyn Fn(i64) -> String| {
        let began = Instant::now();
        let mut len = 0usize;
        for i in 0..n {
            len += std::hint::black_box(f(base + i * 1_000_003)).len();
        }
        std::hint::black_box(len);
        began.elapsed().as_nanos() as f64 / n as f64
    };
    let (mut chrono_ns, mut digits_ns) = (Vec::new(), Vec::new());
    for _ in 0..5 {
        chrono_ns.push(time(&queuemgr::api::views::iso));
        digits_ns.push(time(&iso_by_digits));
    }
    chrono_ns.sort_by(f64::total_cmp);
    digits_ns.sort_by(f64::total_cmp);
    let (c, d) = (chrono_ns[2], digits_ns[2]);
    rows.push(Row {
        id: "5".into(),
        figure: "a timestamp as the API writes it (`views::iso`), chrono's RFC 3339 writer vs the digit-by-digit writer it replaced; median of 5 alternating rounds".into(),
        measured: format!("**{c:.1} ns** vs {d:.1} ns: **{:.2}×**", c / d),
        target: "no slower".into(),
        met: met(c <= d * 1.05),
        vs_python: "–".into(),
    });
}

fn main() {
    let opts = Opts::parse();
    let tokio_rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    eprintln!(
        "queuemgr runtime benchmark{}; {} CPUs; load average at start: {}",
        if opts.quick {
            " (QUICK MODE: not the real figures)"
        } else {
            ""
        },
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        loadavg()
    );
    let mut rows = Vec::new();
    let started = Instant::now();
    // The machine has 2 cores: anything else running skews the tails. Each section records how
    // much CPU other processes used while it ran, and the table says so.
    let mut others = Vec::new();
    tokio_rt.block_on(async {
        for section in [
            "noop", "stop", "fuel", "park", "grants", "io", "python", "iso", "keys",
        ] {
            if !opts.wants(section) {
                continue;
            }
            let before = (busy_ticks(), cpu_ticks(), Instant::now());
            match section {
                "noop" => bench_noop(&opts, &mut rows).await,
                "stop" => bench_stop(&opts, &mut rows).await,
                "fuel" => bench_fuel(&opts, &mut rows).await,
                "park" => bench_park(&opts, &mut rows).await,
                "grants" => bench_grants(&opts, &mut rows).await,
                "io" => bench_io(&opts, &mut rows).await,
                "iso" => bench_iso(&opts, &mut rows),
                "keys" => bench_keys(&opts, &mut rows),
                _ => bench_python(&opts, &mut rows).await,
            }
            let other = (busy_ticks() - before.0).saturating_sub(cpu_ticks() - before.1);
            let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
            let pct = other as f64 / (before.2.elapsed().as_secs_f64() * 100.0 * cores) * 100.0;
            eprintln!("{section}: other processes used {pct:.1} % of the machine's CPU meanwhile");
            others.push(format!("{section} {pct:.1} %"));
        }
    });
    eprintln!(
        "done in {:.0} s; load average at end: {}",
        started.elapsed().as_secs_f64(),
        loadavg()
    );

    if opts.quick {
        println!("\n**Quick mode: reduced iterations and workloads; not the real figures.**\n");
    }
    println!("| # | Figure | Measured | Target | Met | vs Python queuemgr |");
    println!("|---|---|---|---|---|---|");
    for r in &rows {
        println!(
            "| {} | {} | {} | {} | {} | {} |",
            r.id, r.figure, r.measured, r.target, r.met, r.vs_python
        );
    }
    println!(
        "\nCPU used by other processes during each section (of all cores): {}.",
        others.join(", ")
    );
}
