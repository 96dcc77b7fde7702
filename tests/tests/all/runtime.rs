//! The job runtime against real components built from `example-jobs/`: results, guest errors,
//! progress, logs, and every way a hostile guest can end — each reported as what it is, with
//! the process living on.

use queuemgr::runtime::{
    JobLimits, JobProgram, LogSource, Metering, NoEvents, Outcome, RunRequest, Runtime,
    RuntimeConfig,
};
use queuemgr_tests::{Recorder, job_wasm};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

fn runtime() -> Runtime {
    runtime_with(Metering::default())
}

fn runtime_with(metering: Metering) -> Runtime {
    Runtime::new(RuntimeConfig {
        max_instances: 200,
        metering,
        ..RuntimeConfig::default()
    })
    .unwrap()
}

async fn program(rt: &Runtime, stem: &str) -> JobProgram {
    let bytes = std::fs::read(job_wasm(stem)).unwrap();
    let component = rt.compile(&bytes).unwrap();
    rt.prepare(&component).await.unwrap()
}

fn request(params: serde_json::Value, limits: JobLimits) -> (RunRequest, Arc<Recorder>) {
    let rec = Arc::new(Recorder::default());
    let req = RunRequest {
        job_id: "job-1".into(),
        params: params.to_string(),
        limits,
        events: rec.clone(),
        stop: CancellationToken::new(),
        grants: Default::default(),
        flow: None,
    };
    (req, rec)
}

#[tokio::test]
async fn describe_reports_name_and_schema() {
    let rt = runtime();
    let p = program(&rt, "my_job").await;
    assert_eq!(p.info().name, "MyJob");
    assert_eq!(p.info().version, "1.0.0");
    assert_eq!(
        p.info().params_schema["properties"]["duration"]["type"],
        "number"
    );
}

#[tokio::test]
async fn seed_job_returns_its_result_and_progress_in_order() {
    let rt = runtime();
    let p = program(&rt, "my_job").await;
    let (req, rec) = request(
        serde_json::json!({"task_name": "Process Data", "duration": 1.2}),
        JobLimits::default(),
    );
    let out = rt.run(&p, req).await;
    let Outcome::Completed(json) = out else {
        panic!("expected completed, got {out:?}")
    };
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["job_id"], "job-1");
    assert_eq!(v["task_name"], "Process Data");
    assert_eq!(v["status"], "completed");
    assert!(v["completed_at"].as_f64().unwrap() > 1.7e9);
    let progress = rec.progress.lock().unwrap().clone();
    assert_eq!(
        progress,
        vec![(50, "step 1/2".to_string()), (100, "step 2/2".to_string())]
    );
    let logs = rec.logs.lock().unwrap().clone();
    assert_eq!(logs[0].source, LogSource::Stdout);
    assert_eq!(logs[0].text, "Starting task: Process Data");
    assert!(logs.iter().any(|l| l.text == "Progress: 100.0%"));
}

#[tokio::test]
async fn cpu_job_progress_arrives_in_order() {
    let rt = runtime();
    let p = program(&rt, "cpu_heavy").await;
    let (req, rec) = request(
        serde_json::json!({"workload": "sha256", "mib": 8}),
        JobLimits::default(),
    );
    let out = rt.run(&p, req).await;
    let Outcome::Completed(json) = out else {
        panic!("expected completed, got {out:?}")
    };
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    let native = cpu_core::hex(&cpu_core::sha256_mib(8, |_| true).unwrap());
    assert_eq!(v["sha256"], native, "the wasm and native builds agree");
    let pct: Vec<u8> = rec.progress.lock().unwrap().iter().map(|p| p.0).collect();
    assert_eq!(pct, vec![12, 25, 37, 50, 62, 75, 87, 100]);
}

#[tokio::test]
async fn guest_error_comes_back_structured() {
    let rt = runtime();
    let p = program(&rt, "failing").await;
    let (req, rec) = request(
        serde_json::json!({"code": "UPSTREAM_DOWN", "message": "try later", "retryable": true}),
        JobLimits::default(),
    );
    match rt.run(&p, req).await {
        Outcome::Failed(e) => {
            assert_eq!(e.code, "UPSTREAM_DOWN");
            assert_eq!(e.message, "try later");
            assert!(e.retryable);
        }
        other => panic!("expected failed, got {other:?}"),
    }
    assert_eq!(
        rec.progress.lock().unwrap().clone(),
        vec![(50, "about to fail".to_string())]
    );
    assert!(
        rec.logs
            .lock()
            .unwrap()
            .iter()
            .any(|l| l.source == LogSource::Log && l.text == "failing with UPSTREAM_DOWN")
    );
}

#[tokio::test]
async fn bad_params_are_a_guest_error_not_a_trap() {
    let rt = runtime();
    let p = program(&rt, "noop").await;
    let (req, _) = request(
        serde_json::json!({"sleep_ms": "soon"}),
        JobLimits::default(),
    );
    match rt.run(&p, req).await {
        Outcome::Failed(e) => assert_eq!(e.code, "INVALID_PARAMS"),
        other => panic!("expected failed, got {other:?}"),
    }
}

async fn hostile(
    rt: &Runtime,
    p: &JobProgram,
    mode: &str,
    limits: JobLimits,
) -> (Outcome, Arc<Recorder>) {
    let (req, rec) = request(serde_json::json!({"mode": mode}), limits);
    (rt.run(p, req).await, rec)
}

/// Both ways of metering make a loop that never calls the host yield: a stop ends it, and so
/// does the timeout.
#[tokio::test]
async fn tight_loop_stops_within_a_second_of_the_request() {
    for metering in [Metering::Epoch, Metering::Fuel] {
        let rt = runtime_with(metering);
        let p = program(&rt, "hostile").await;
        let (req, _) = request(serde_json::json!({"mode": "spin"}), JobLimits::default());
        let stop = req.stop.clone();
        let rt2 = rt.clone();
        let p2 = p.clone();
        let handle = tokio::spawn(async move { rt2.run(&p2, req).await });
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(
            !handle.is_finished(),
            "{metering:?}: the spin loop runs until stopped"
        );
        let asked = Instant::now();
        stop.cancel();
        let out = handle.await.unwrap();
        let took = asked.elapsed();
        assert_eq!(out, Outcome::Stopped, "{metering:?}");
        assert!(
            took < Duration::from_secs(1),
            "{metering:?}: stop took {took:?}"
        );
        let limits = JobLimits {
            timeout: Duration::from_millis(300),
            ..JobLimits::default()
        };
        let t = Instant::now();
        assert_eq!(
            hostile(&rt, &p, "spin", limits).await.0,
            Outcome::TimedOut,
            "{metering:?}"
        );
        assert!(t.elapsed() < Duration::from_secs(3), "{metering:?}");
    }
}

#[tokio::test]
async fn stop_wakes_a_job_sleeping_in_the_host() {
    let rt = runtime();
    let p = program(&rt, "hostile").await;
    let (req, _) = request(
        serde_json::json!({"mode": "sleep_forever"}),
        JobLimits::default(),
    );
    let stop = req.stop.clone();
    let rt2 = rt.clone();
    let handle = tokio::spawn(async move { rt2.run(&p, req).await });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let asked = Instant::now();
    stop.cancel();
    assert_eq!(handle.await.unwrap(), Outcome::Stopped);
    assert!(asked.elapsed() < Duration::from_secs(1));
}

#[tokio::test]
async fn fuel_exhaustion_is_reported_as_such() {
    let rt = runtime_with(Metering::Fuel);
    let p = program(&rt, "hostile").await;
    let limits = JobLimits {
        fuel: Some(50_000_000),
        ..JobLimits::default()
    };
    assert_eq!(hostile(&rt, &p, "spin", limits).await.0, Outcome::OutOfFuel);
}

#[tokio::test]
async fn memory_cap_is_reported_as_such() {
    let rt = runtime();
    let p = program(&rt, "hostile").await;
    let limits = JobLimits {
        memory_bytes: 32 << 20,
        ..JobLimits::default()
    };
    assert_eq!(
        hostile(&rt, &p, "alloc", limits).await.0,
        Outcome::OutOfMemory
    );
}

#[tokio::test]
async fn timeout_is_reported_as_such_also_in_host_calls() {
    let rt = runtime();
    let p = program(&rt, "hostile").await;
    let limits = JobLimits {
        timeout: Duration::from_millis(300),
        ..JobLimits::default()
    };
    let t = Instant::now();
    assert_eq!(
        hostile(&rt, &p, "sleep_forever", limits).await.0,
        Outcome::TimedOut
    );
    assert_eq!(hostile(&rt, &p, "spin", limits).await.0, Outcome::TimedOut);
    assert!(t.elapsed() < Duration::from_secs(3));
}

#[tokio::test]
async fn trap_panic_and_stack_overflow_are_reported_as_such() {
    let rt = runtime();
    let p = program(&rt, "hostile").await;
    match hostile(&rt, &p, "trap", JobLimits::default()).await.0 {
        Outcome::Trapped(m) => assert!(m.contains("unreachable"), "{m}"),
        other => panic!("expected trapped, got {other:?}"),
    }
    let (out, rec) = hostile(&rt, &p, "panic", JobLimits::default()).await;
    assert!(matches!(out, Outcome::Trapped(_)), "{out:?}");
    let logs = rec.logs.lock().unwrap().clone();
    assert!(
        logs.iter()
            .any(|l| l.source == LogSource::Stderr
                && l.text.contains("hostile job panicked on purpose")),
        "the panic message is captured from stderr: {logs:?}"
    );
    assert_eq!(
        hostile(&rt, &p, "recurse", JobLimits::default()).await.0,
        Outcome::StackOverflow
    );
    // The runtime lives on and runs the next job normally.
    let ok = program(&rt, "noop").await;
    let (req, _) = request(serde_json::json!({}), JobLimits::default());
    assert_eq!(rt.run(&ok, req).await, Outcome::Completed("{}".into()));
}

#[tokio::test]
async fn std_sleep_and_output_work_through_wasi() {
    let rt = runtime();
    let p = program(&rt, "hostile").await;
    let (req, _) = request(
        serde_json::json!({"mode": "std_sleep", "ms": 50}),
        JobLimits::default(),
    );
    let t = Instant::now();
    assert_eq!(
        rt.run(&p, req).await,
        Outcome::Completed(r#"{"slept_ms":50}"#.into())
    );
    assert!(t.elapsed() >= Duration::from_millis(50));
    let (out, rec) = hostile(&rt, &p, "bad_output", JobLimits::default()).await;
    assert!(matches!(out, Outcome::Completed(_)));
    let logs = rec.logs.lock().unwrap().clone();
    assert!(logs.iter().any(|l| l.source == LogSource::Stdout && l.text.contains("bad \u{fffd}\u{fffd} bytes")), "{logs:?}");
}

#[tokio::test]
async fn a_hundred_jobs_run_at_once() {
    let rt = runtime();
    let p = program(&rt, "noop").await;
    let started = Instant::now();
    let mut handles = Vec::new();
    for i in 0..100 {
        let rt = rt.clone();
        let p = p.clone();
        handles.push(tokio::spawn(async move {
            let req = RunRequest {
                job_id: format!("j{i}"),
                params: r#"{"sleep_ms":300}"#.into(),
                limits: JobLimits::default(),
                events: Arc::new(NoEvents),
                stop: CancellationToken::new(),
                grants: Default::default(),
                flow: None,
            };
            rt.run(&p, req).await
        }));
    }
    for h in handles {
        assert_eq!(h.await.unwrap(), Outcome::Completed("{}".into()));
    }
    // 100 × 300 ms of sleep overlap: sequential would take 30 s.
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn broken_components_are_refused_with_a_reason() {
    let rt = runtime();
    assert!(rt.compile(b"").is_err());
    assert!(rt.compile(b"not wasm at all").is_err());
    let core_module = b"\0asm\x01\0\0\0";
    let err = rt.compile(core_module).unwrap_err().to_string();
    assert!(err.contains("core wasm module"), "{err}");
    let bytes = std::fs::read(job_wasm("noop")).unwrap();
    assert!(
        rt.compile(&bytes[..bytes.len() / 2]).is_err(),
        "a truncated component"
    );
}

#[tokio::test]
async fn unbounded_resource_table_growth_is_capped() {
    let rt = runtime();
    let p = program(&rt, "hostile").await;
    let limits = JobLimits {
        resources: 1000,
        ..JobLimits::default()
    };
    assert_eq!(
        hostile(&rt, &p, "table_grow", limits).await.0,
        Outcome::OutOfTable
    );
}

#[tokio::test]
async fn the_sieve_counts_the_same_in_wasm_and_natively() {
    // Past 65,536 a 32-bit `i * i` wraps: the wasm build once counted too few primes.
    let rt = runtime();
    let p = program(&rt, "cpu_heavy").await;
    let (req, _) = request(
        serde_json::json!({"workload": "primes", "below": 1_000_000}),
        JobLimits::default(),
    );
    let Outcome::Completed(json) = rt.run(&p, req).await else {
        panic!("primes failed")
    };
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["count"], 78_498);
    assert_eq!(cpu_core::count_primes(1_000_000), 78_498);
}

#[tokio::test]
async fn a_guest_that_ends_itself_on_a_stop_request_is_reported_stopped() {
    // `my_job` returns its own STOPPED error when its sleep is cut short; whichever side of the
    // race wins, the outcome is Stopped.
    let rt = runtime();
    let p = program(&rt, "my_job").await;
    for _ in 0..20 {
        let (req, _) = request(serde_json::json!({"duration": 30}), JobLimits::default());
        let stop = req.stop.clone();
        let rt2 = rt.clone();
        let p2 = p.clone();
        let h = tokio::spawn(async move { rt2.run(&p2, req).await });
        tokio::time::sleep(Duration::from_millis(5)).await;
        stop.cancel();
        assert_eq!(h.await.unwrap(), Outcome::Stopped);
    }
}
