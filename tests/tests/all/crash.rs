//! `kill -9` of the server while 200 jobs are moving, then a restart: every acknowledged
//! transition is there, and no job is in a state it never reached. Repeats with the kill at
//! different moments (`QUEUEMGR_CRASH_ITERATIONS`, default 3, for longer runs).

use queuemgr_tests::{Server, server_bin};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Default, Debug, Clone)]
struct Seen {
    sent: Vec<&'static str>,
    acked: Vec<&'static str>,
    /// The status a client read after the last operation: readers see only durable state,
    /// so an ended status read before the crash must still be there after it.
    observed: Option<String>,
}

type Ledger = Arc<Mutex<HashMap<String, Seen>>>;

/// The operations of job `i`: every job is added; most are started; some stopped; a few deleted.
fn plan(i: usize) -> Vec<&'static str> {
    let mut ops = vec!["add_job"];
    if !i.is_multiple_of(5) {
        ops.push("start_job");
    }
    if i % 7 == 3 {
        ops.push("stop_job");
    }
    if i % 11 == 4 {
        ops.push("delete_job");
    }
    ops
}

async fn drive(url: String, ids: Vec<(String, usize)>, ledger: Ledger) {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    for (id, i) in ids {
        for op in plan(i) {
            let mut params = json!({"action": op, "job_id": id});
            if op == "add_job" {
                params["job_type"] = json!("noop");
                params["params"] = json!({"sleep_ms": (i * 37) % 400});
            }
            ledger
                .lock()
                .unwrap()
                .entry(id.clone())
                .or_default()
                .sent
                .push(op);
            let resp = http
                .post(format!("{url}/api/v1/execute"))
                .json(&json!({"command": "queue", "params": params}))
                .send()
                .await;
            let Ok(resp) = resp else { return };
            let Ok(v) = resp.json::<Value>().await else {
                return;
            };
            if v["result"]["success"] == true {
                ledger
                    .lock()
                    .unwrap()
                    .entry(id.clone())
                    .or_default()
                    .acked
                    .push(op);
            }
        }
        let body = json!({"command": "queue", "params": {"action": "get_status", "job_id": id}});
        let Ok(resp) = http
            .post(format!("{url}/api/v1/execute"))
            .json(&body)
            .send()
            .await
        else {
            return;
        };
        let Ok(v) = resp.json::<Value>().await else {
            return;
        };
        if let Some(status) = v["result"]["data"]["status"]["status"].as_str() {
            ledger
                .lock()
                .unwrap()
                .entry(id.clone())
                .or_default()
                .observed = Some(status.to_string());
        }
    }
}

fn check(job: Option<&Value>, id: &str, seen: &Seen) {
    let acked = |op| seen.acked.contains(&op);
    let sent = |op| seen.sent.contains(&op);
    let Some(job) = job else {
        assert!(!acked("add_job"), "{id}: acknowledged add lost ({seen:?})");
        return;
    };
    let status = job["status"].as_str().unwrap();
    if let Some(read) = seen.observed.as_deref()
        && matches!(read, "COMPLETED" | "STOPPED" | "DELETED" | "ERROR")
    {
        assert_eq!(
            status, read,
            "{id}: read {read} before the crash, {status} after: {job}"
        );
    }
    if acked("delete_job") {
        assert_eq!(
            status, "DELETED",
            "{id}: acknowledged delete lost ({seen:?}) {job}"
        );
        return;
    }
    if acked("stop_job") && !sent("delete_job") {
        // A stop that lands as the job completes leaves it COMPLETED.
        assert!(
            matches!(status, "STOPPED" | "COMPLETED"),
            "{id}: acknowledged stop lost ({seen:?}) {job}"
        );
    }
    assert_ne!(status, "ERROR", "{id}: a noop job cannot fail: {job}");
    if status == "DELETED" {
        assert!(sent("delete_job"), "{id}: DELETED without a delete: {job}");
    }
    if status == "STOPPED" && !sent("stop_job") {
        assert!(sent("start_job"), "{id}: STOPPED but never started: {job}");
        assert_eq!(job["result"]["interrupted"], true, "{id}: {job}");
    }
    if matches!(status, "RUNNING" | "COMPLETED") {
        assert!(sent("start_job"), "{id}: {status} but never started: {job}");
    }
    if status == "COMPLETED" {
        assert_eq!(job["result"], json!({}), "{id}: {job}");
        assert_eq!(job["progress"], 100);
    }
    if acked("start_job") && !sent("stop_job") && !sent("delete_job") {
        assert!(
            matches!(status, "RUNNING" | "COMPLETED" | "STOPPED" | "PENDING"),
            "{id}: started job reads {status}: {job}"
        );
        if status == "PENDING" {
            assert_eq!(
                job["description"], "Waiting for a free slot",
                "{id}: only a queued start reads PENDING: {job}"
            );
        }
    }
    if !sent("start_job") {
        assert!(
            matches!(status, "PENDING" | "STOPPED" | "DELETED"),
            "{id}: {job}"
        );
    }
}

#[tokio::test]
async fn kill_9_under_load_loses_no_acknowledged_transition() {
    let iterations: usize = std::env::var("QUEUEMGR_CRASH_ITERATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    let mut s = Server::start(server_bin!(), &["--max-concurrent-jobs", "8"]).await;
    let ledger: Ledger = Arc::default();
    for it in 0..iterations {
        let ids: Vec<(String, usize)> = (0..200).map(|i| (format!("it{it}-j{i}"), i)).collect();
        let mut workers = Vec::new();
        for chunk in ids.chunks(25) {
            workers.push(tokio::spawn(drive(
                s.url.clone(),
                chunk.to_vec(),
                ledger.clone(),
            )));
        }
        // Kill at a different moment each time: early, mid-stream, late; counted from the first
        // acknowledgement of this iteration, so that a machine busy with the other tests (they
        // start servers at the same moment) still has the kill land mid-stream.
        let acked_now = || -> usize {
            let l = ledger.lock().unwrap();
            l.values().map(|s| s.acked.len()).sum()
        };
        let acked_before = acked_now();
        let waiting = std::time::Instant::now();
        while acked_now() == acked_before && waiting.elapsed() < Duration::from_secs(10) {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        tokio::time::sleep(Duration::from_millis(150 + (it as u64 * 337) % 900)).await;
        s.kill9();
        for w in workers {
            w.await.unwrap();
        }
        s.restart().await;
        let jobs = s.queue(json!({"action": "list_jobs"})).await;
        let by_id: HashMap<String, Value> = jobs["jobs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|j| (j["job_id"].as_str().unwrap().to_string(), j.clone()))
            .collect();
        let ledger_now = ledger.lock().unwrap().clone();
        let acked: usize = ledger_now.values().map(|s| s.acked.len()).sum();
        assert!(
            acked > 0,
            "iteration {it}: the server acknowledged nothing before the kill"
        );
        for (id, seen) in &ledger_now {
            check(by_id.get(id), id, seen);
        }
        // Every line of the registry is a whole record after the restart.
        let text = std::fs::read_to_string(s.registry()).unwrap();
        for (n, line) in text.lines().enumerate() {
            assert!(
                serde_json::from_str::<Value>(line).is_ok(),
                "registry line {} is not JSON",
                n + 1
            );
        }
    }
    // An interrupted job can be started again and completes (once the jobs requeued at the
    // restarts have drained).
    let end = std::time::Instant::now() + Duration::from_secs(120);
    loop {
        let h = s
            .execute(json!({"command": "queue_health", "params": {}}))
            .await;
        let d = &h["result"]["data"];
        if d["waiting_jobs"] == 0 && d["running_jobs"] == 0 {
            break;
        }
        assert!(
            std::time::Instant::now() < end,
            "the requeued jobs never drained: {d}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let jobs = s
        .queue(json!({"action": "list_jobs", "status_filter": "STOPPED"}))
        .await;
    if let Some(j) = jobs["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|j| j["result"]["interrupted"] == true)
    {
        let id = j["job_id"].as_str().unwrap();
        s.queue(json!({"action": "start_job", "job_id": id})).await;
        assert_eq!(
            s.wait_status(id, "COMPLETED", Duration::from_secs(10))
                .await["status"],
            "COMPLETED"
        );
    }
}

#[tokio::test]
async fn sigterm_stops_running_jobs_as_interrupted_and_flushes() {
    let mut s = Server::start(server_bin!(), &[]).await;
    s.queue(json!({"action": "add_job", "job_id": "long", "params": {"duration": 60}}))
        .await;
    s.queue(json!({"action": "start_job", "job_id": "long"}))
        .await;
    s.queue(json!({"action": "add_job", "job_id": "spin", "job_type": "hostile", "params": {"mode": "spin"}})).await;
    s.queue(json!({"action": "start_job", "job_id": "spin"}))
        .await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(s.terminate(), "graceful exit: {}", s.log());
    // Before any restart, the registry already holds the STOPPED records.
    let text = std::fs::read_to_string(s.registry()).unwrap();
    let last: HashMap<String, Value> = text
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .map(|v| (v["job_id"].as_str().unwrap().to_string(), v))
        .collect();
    for id in ["long", "spin"] {
        assert_eq!(last[id]["status"], "STOPPED", "{id}: {}", last[id]);
        assert_eq!(last[id]["result"]["interrupted"], true);
        assert_eq!(last[id]["description"], "Interrupted: the host shut down");
    }
    s.restart().await;
    let long = s
        .queue(json!({"action": "get_status", "job_id": "long"}))
        .await;
    assert_eq!(long["status"]["status"], "STOPPED");
}

/// Several hosts, one queue: three servers on one PostgreSQL schema. Jobs added through one run
/// on all three, each exactly once; any host answers for any job; a stop sent to one host
/// reaches the host that runs the job; a host killed with `kill -9` loses nothing, and its run
/// is taken over after its lease.
#[tokio::test]
async fn three_hosts_share_one_postgres_queue() {
    let url = queuemgr_tests::postgres_url().await;
    let schema = format!("qmt{}_multihost", std::process::id());
    let flags = |host: &'static str| {
        vec![
            "--store".to_string(),
            url.clone(),
            "--store-schema".to_string(),
            schema.clone(),
            "--host-id".to_string(),
            host.to_string(),
            // Heartbeats every second: a beat delayed by a busy machine (the tests run in
            // parallel) does not stop the runs.
            "--lease-secs".to_string(),
            "3".to_string(),
            "--maintenance-interval-secs".to_string(),
            "1".to_string(),
            "--retry-base-ms".to_string(),
            "50".to_string(),
            // Few slots each, so that the jobs added on one host spread over all three.
            "--max-concurrent-jobs".to_string(),
            "3".to_string(),
        ]
    };
    let start = |f: Vec<String>| async move {
        Server::start(
            server_bin!(),
            &f.iter().map(String::as_str).collect::<Vec<_>>(),
        )
        .await
    };
    let mut a = start(flags("host-a")).await;
    let b = start(flags("host-b")).await;
    let c = start(flags("host-c")).await;

    // Jobs added on host A in one batch, started in the same call: every one completes, once,
    // and all three hosts take a share.
    let jobs: Vec<Value> = (0..20)
        .map(
            |i| json!({"job_id": format!("m{i}"), "job_type": "noop", "params": {"sleep_ms": 300}}),
        )
        .collect();
    a.queue(json!({"action": "add_jobs", "jobs": jobs, "start": true}))
        .await;
    for i in 0..20 {
        // Any host answers for any job.
        let on = [&a, &b, &c][i % 3];
        let j = on
            .wait_status(&format!("m{i}"), "COMPLETED", Duration::from_secs(30))
            .await;
        assert_eq!(j["status"], "COMPLETED", "m{i}: {j}");
    }
    let rows = queuemgr_tests::stored_records(&url, &schema, "m%").await;
    assert_eq!(rows.len(), 20);
    let mut ran_on = std::collections::BTreeSet::new();
    let mut code = std::collections::BTreeSet::new();
    for rec in &rows {
        assert_eq!(rec["runs"], 1, "each job ran exactly once: {rec}");
        ran_on.insert(rec["host"].as_str().unwrap_or_default().to_string());
        code.insert(
            rec["component_sha256"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
        );
    }
    assert_eq!(
        ran_on.into_iter().collect::<Vec<_>>(),
        ["host-a", "host-b", "host-c"],
        "jobs added on one host ran on all three"
    );
    // Each job records the component that ran it: the same noop.wasm on every host.
    let noop_sha: String = {
        let out = std::process::Command::new("sha256sum")
            .arg(queuemgr_tests::job_wasm("noop"))
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .next()
            .unwrap()
            .to_string()
    };
    assert_eq!(
        code.into_iter().collect::<Vec<_>>(),
        std::slice::from_ref(&noop_sha),
        "every row names noop.wasm's SHA-256"
    );
    let (_, one) = b.get("/api/v1/jobs/m0", &[]).await;
    assert_eq!(one["component_sha256"], noop_sha.as_str(), "{one}");
    assert!(
        one["host"].as_str().is_some_and(|h| h.starts_with("host-")),
        "{one}"
    );

    // Each host knows which hosts run which job types.
    let types = b.queue(json!({"action": "list_job_types"})).await;
    let noop = types["job_types"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["job_type"] == "noop")
        .unwrap()
        .clone();
    assert_eq!(
        noop["hosts"],
        json!(["host-a", "host-b", "host-c"]),
        "{noop}"
    );

    // A running job's logs, asked of another host: fetched from the host that runs it.
    let v = a
        .queue(
            json!({"action": "add_job", "job_id": "talk", "job_type": "my_job",
                      "params": {"task_name": "talk", "duration": 3}, "start": true}),
        )
        .await;
    assert_eq!(v["status"], "RUNNING", "{v}");
    let end = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let st = b
            .queue(json!({"action": "get_status", "job_id": "talk"}))
            .await;
        let logs = b
            .queue(json!({"action": "get_logs", "job_id": "talk"}))
            .await;
        let n = logs["entries"].as_array().map_or(0, Vec::len);
        if n > 0 {
            assert_eq!(
                st["status"]["status"], "RUNNING",
                "seen while it runs: {st}"
            );
            break;
        }
        assert!(std::time::Instant::now() < end, "no logs through B: {logs}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    c.wait_status("talk", "COMPLETED", Duration::from_secs(10))
        .await;
    let on_a = a
        .queue(json!({"action": "get_logs", "job_id": "talk"}))
        .await;
    for other in [&b, &c] {
        let logs = other
            .queue(json!({"action": "get_logs", "job_id": "talk"}))
            .await;
        assert_eq!(
            logs["entries"], on_a["entries"],
            "the same lines from every host"
        );
        assert_eq!(logs["stdout"], on_a["stdout"]);
    }
    assert!(
        on_a["entries"].as_array().is_some_and(|e| e.len() >= 3),
        "{on_a}"
    );

    // A stop sent to B reaches A, which runs the job (C is not involved).
    a.queue(json!({"action": "add_job", "job_id": "spin", "job_type": "hostile", "params": {"mode": "spin"}})).await;
    let st = a.rpc("queue_start_job", json!({"job_id": "spin"})).await;
    assert_eq!(st["result"]["data"]["status"], "running", "{st}");
    tokio::time::sleep(Duration::from_millis(200)).await;
    let t = std::time::Instant::now();
    let v = b.rpc("queue_stop_job", json!({"job_id": "spin"})).await;
    assert_eq!(v["result"]["data"]["actual_status"], "stopped", "{v}");
    eprintln!("stop through the other host: {:?}", t.elapsed());

    // kill -9 of the host running a job: the other takes it over after the lease.
    a.queue(json!({"action": "add_job", "job_id": "orphan", "job_type": "noop", "params": {"sleep_ms": 3000}, "max_attempts": 2})).await;
    let v = a.rpc("queue_start_job", json!({"job_id": "orphan"})).await;
    assert_eq!(v["result"]["data"]["status"], "running", "{v}");
    a.kill9();
    let j = c
        .wait_status("orphan", "COMPLETED", Duration::from_secs(30))
        .await;
    if j["status"] != "COMPLETED" {
        eprintln!("B LOG:\n{}\nC LOG:\n{}", b.log(), c.log());
    }
    assert_eq!(j["status"], "COMPLETED", "taken over by another host: {j}");
    assert_eq!(j["attempt"], 2, "{j}");
    assert_eq!(j["errors"][0]["error"]["kind"], "interrupted", "{j}");
    drop(b);
    drop(c);
    queuemgr_tests::drop_schemas(&url, &schema, &[]).await;
}

/// The database's connections killed (`pg_terminate_backend`) while jobs are added and run:
/// calls in the meantime either succeed or get `STORE_UNAVAILABLE`, the host reconnects, and
/// every acknowledged job is there and completes.
#[tokio::test]
async fn killed_database_connections_are_survived() {
    let url = queuemgr_tests::postgres_url().await;
    let schema = format!("qmt{}_dbkill", std::process::id());
    let s = Server::start(
        server_bin!(),
        &[
            "--store",
            &url,
            "--store-schema",
            &schema,
            "--host-id",
            "solo",
        ],
    )
    .await;
    let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .unwrap();
    let driver = tokio::spawn(conn);
    let http = reqwest::Client::new();
    let mut acked = Vec::new();
    let mut unavailable = 0;
    for i in 0..150 {
        if i % 25 == 10 {
            let killed = client
                .query(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1",
                    &[&format!("queuemgr:{schema}")],
                )
                .await
                .unwrap();
            assert!(
                !killed.is_empty(),
                "the host's connections are found by name"
            );
        }
        let id = format!("k{i}");
        let body = json!({"command": "queue", "params": {"action": "add_job", "job_id": id, "job_type": "noop", "params": {}, "start": true}});
        let v: Value = http
            .post(format!("{}/api/v1/execute", s.url))
            .json(&body)
            .send()
            .await
            .expect("the host answers")
            .json()
            .await
            .expect("JSON");
        if v["result"]["success"] == true {
            acked.push(id);
        } else {
            assert_eq!(
                v["result"]["error"]["data"]["domain_code"], "STORE_UNAVAILABLE",
                "{v}"
            );
            assert_eq!(v["result"]["error"]["data"]["retryable"], true, "{v}");
            unavailable += 1;
        }
    }
    eprintln!(
        "{} acknowledged, {unavailable} refused as STORE_UNAVAILABLE",
        acked.len()
    );
    assert!(
        acked.len() >= 100,
        "the host reconnects: {} of 150",
        acked.len()
    );
    for id in &acked {
        let j = s
            .wait_status(id, "COMPLETED", Duration::from_secs(20))
            .await;
        assert_eq!(j["status"], "COMPLETED", "{id}: {j}");
    }
    drop(s);
    driver.abort();
    queuemgr_tests::drop_schemas(&url, &schema, &[]).await;
}

/// Microseconds since the epoch of a log line's leading RFC 3339 UTC time
/// (`2026-12-01T22:50:01.123456Z ...`).
fn log_time_micros(line: &str) -> Option<i64> {
    let t = line.split_whitespace().next()?.strip_suffix('Z')?;
    let (date, time) = t.split_once('T')?;
    let mut d = date.split('-').map(|p| p.parse::<i64>());
    let (y, m, day) = (d.next()?.ok()?, d.next()?.ok()?, d.next()?.ok()?);
    let (hms, frac) = time.split_once('.').unwrap_or((time, "0"));
    let mut h = hms.split(':').map(|p| p.parse::<i64>());
    let (hh, mm, ss) = (h.next()?.ok()?, h.next()?.ok()?, h.next()?.ok()?);
    let micros: i64 = format!("{frac:0<6}")[..6].parse().ok()?;
    // Days from the civil date (Howard Hinnant's algorithm).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (m + if m > 2 { -3 } else { 9 }) + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(((days * 86_400 + hh * 3_600 + mm * 60 + ss) * 1_000_000) + micros)
}

/// A host cut off from the database (a proxy that stops forwarding, as a network partition:
/// no reset, no refusal) stops its runs before their leases end; another host rescues them
/// after the lease and runs them to the end. No job has two live runs: the cut-off host's runs
/// stopped before the other host started them again. Calls to the cut-off host meanwhile
/// answer `STORE_UNAVAILABLE` instead of hanging.
#[tokio::test]
async fn a_host_cut_off_from_the_database_stops_its_runs_and_another_rescues_them() {
    let url = queuemgr_tests::postgres_url().await;
    let schema = format!("qmt{}_cutoff", std::process::id());
    let target: std::net::SocketAddr = {
        let after = url.split('@').nth(1).expect("user@host in the URL");
        let hostport = after.split('/').next().unwrap();
        hostport.parse().expect("the test URL names 127.0.0.1:5432")
    };
    let proxy = queuemgr_tests::CutProxy::start(target).await;
    let url_a = url.replace(&target.to_string(), &proxy.addr.to_string());
    let flags = |store: &str, host: &str| {
        vec![
            "--store".to_string(),
            store.to_string(),
            "--store-schema".to_string(),
            schema.clone(),
            "--host-id".to_string(),
            host.to_string(),
            "--lease-secs".to_string(),
            "2".to_string(),
            "--maintenance-interval-secs".to_string(),
            "1".to_string(),
            "--retry-base-ms".to_string(),
            "50".to_string(),
            "--store-timeout-secs".to_string(),
            "1".to_string(),
        ]
    };
    let start = |f: Vec<String>| async move {
        Server::start(
            server_bin!(),
            &f.iter().map(String::as_str).collect::<Vec<_>>(),
        )
        .await
    };
    let a = start(flags(&url_a, "cut-a")).await;
    let b = start(flags(&url, "cut-b")).await;

    let ids = ["c0", "c1", "c2"];
    for id in ids {
        let v = a
            .queue(
                json!({"action": "add_job", "job_id": id, "job_type": "noop",
                          "params": {"sleep_ms": 8000}, "max_attempts": 2, "start": true}),
            )
            .await;
        assert_eq!(v["status"], "RUNNING", "{v}");
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    proxy.cut();
    let cut_at = std::time::Instant::now();

    // The cut-off host answers, with a clear error, instead of hanging.
    let v = a
        .execute(
            json!({"command": "queue", "params": {"action": "add_job", "job_id": "late",
                        "job_type": "noop", "params": {}}}),
        )
        .await;
    assert_eq!(
        v["result"]["error"]["data"]["domain_code"], "STORE_UNAVAILABLE",
        "{v}"
    );
    assert!(
        cut_at.elapsed() < Duration::from_secs(5),
        "answered within the store timeout"
    );

    for id in ids {
        let j = b
            .wait_status(id, "COMPLETED", Duration::from_secs(40))
            .await;
        assert_eq!(j["status"], "COMPLETED", "rescued and run again: {j}");
        assert_eq!(j["attempt"], 2, "{j}");
        assert_eq!(j["errors"][0]["error"]["kind"], "interrupted", "{j}");
    }
    // When did B start them again? From the rows (µs since the epoch).
    let rows = queuemgr_tests::stored_records(&url, &schema, "c_").await;
    assert_eq!(rows.len(), 3);
    let mut first_restart = i64::MAX;
    for rec in &rows {
        assert_eq!(rec["host"], "cut-b", "{rec}");
        first_restart = first_restart.min(rec["started_at"].as_i64().unwrap());
    }
    // When did A stop them? Its log says so, with the time.
    let log = a.log();
    let stopped = log
        .lines()
        .find(|l| l.contains("runs stopped"))
        .unwrap_or_else(|| panic!("host A never stopped its runs; its log:\n{log}"));
    assert!(stopped.contains("runs=3"), "{stopped}");
    let stopped_at = log_time_micros(stopped).expect("a time on the log line");
    eprintln!(
        "A stopped its runs {} ms before B started them again",
        (first_restart - stopped_at) / 1000
    );
    assert!(
        stopped_at < first_restart,
        "A's runs ({stopped}) stopped before B started them again ({first_restart})"
    );
    drop(a);
    drop(b);
    drop(proxy);
    queuemgr_tests::drop_schemas(&url, &schema, &[]).await;
}
