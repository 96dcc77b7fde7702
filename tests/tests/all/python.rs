//! Jobs in Python: the seed's MyJob and a hostile job, built with `scripts/build-python-job.sh`
//! (componentize-py from PyPI, once per checkout: the components are kept in
//! `target/python-jobs/` and rebuilt only when their sources change), dropped into a real
//! server's jobs directory and driven with the seed's calls.

use queuemgr_tests::{KeepAliveHttp, Server, python_job as build, server_bin};
use serde_json::{Value, json};
use std::time::{Duration, Instant};

async fn wait_loaded(s: &Server, names: &[&str]) {
    // A Python component compiles for a while the first time (then comes from the cache).
    let end = Instant::now() + Duration::from_secs(600);
    loop {
        let v = s.queue(json!({"action": "list_job_types"})).await;
        let broken = v["broken"].as_array().unwrap();
        assert!(broken.is_empty(), "{v}");
        if names.iter().all(|n| {
            v["job_types"]
                .to_string()
                .contains(&format!("\"job_type\":\"{n}\""))
        }) {
            return;
        }
        assert!(Instant::now() < end, "not loaded: {v}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn python_jobs_run_the_seed_flow_stop_fast_and_fail_with_their_message() {
    let (my_job, hostile) = tokio::task::spawn_blocking(|| (build("my_job"), build("hostile")))
        .await
        .unwrap();
    let s = Server::start(server_bin!(), &[]).await;
    std::fs::copy(&my_job, s.jobs_dir().join("my_job_py.wasm")).unwrap();
    std::fs::copy(&hostile, s.jobs_dir().join("hostile_py.wasm")).unwrap();
    wait_loaded(&s, &["my_job_py", "hostile_py"]).await;

    // The seed's flow, with the seed's calls.
    let add = s
        .execute(
            json!({"command": "queue", "params": {"action": "add_job", "job_type": "my_job_py",
            "job_id": "py1", "params": {"task_name": "python", "duration": 3}}}),
        )
        .await;
    assert_eq!(add["result"]["success"], true, "{add}");
    s.queue(json!({"action": "start_job", "job_id": "py1"}))
        .await;
    let mut progress = Vec::new();
    let end = Instant::now() + Duration::from_secs(30);
    let done = loop {
        let d = s
            .queue(json!({"action": "get_status", "job_id": "py1"}))
            .await;
        let st = d["status"].clone();
        progress.push(st["progress"].as_i64().unwrap_or(0));
        if st["status"] == "COMPLETED" {
            break st;
        }
        assert!(Instant::now() < end, "{st}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(
        progress.iter().any(|p| *p > 0 && *p < 100),
        "progress moving: {progress:?}"
    );
    assert_eq!(done["progress"], 100);
    let r = &done["result"];
    assert_eq!(r["job_id"], "py1");
    assert_eq!(r["task_name"], "python");
    assert_eq!(r["status"], "completed");
    assert!(r["completed_at"].as_f64().unwrap() > 1.7e9);
    let logs = s
        .queue(json!({"action": "get_logs", "job_id": "py1"}))
        .await;
    let out = logs["stdout"].to_string();
    assert!(
        out.contains("Starting task: python") && out.contains("Progress: 100.0%"),
        "{logs}"
    );
    s.queue(json!({"action": "delete_job", "job_id": "py1"}))
        .await;

    // A busy loop that never calls the host is stopped at once.
    s.queue(
        json!({"action": "add_job", "job_type": "hostile_py", "job_id": "spin",
                   "params": {"mode": "busy"}, "start": true}),
    )
    .await;
    let st = s
        .wait_status("spin", "RUNNING", Duration::from_secs(10))
        .await;
    assert_eq!(st["status"], "RUNNING");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let t = Instant::now();
    s.queue(json!({"action": "stop_job", "job_id": "spin"}))
        .await;
    let stopped = s
        .wait_status("spin", "STOPPED", Duration::from_secs(5))
        .await;
    assert_eq!(stopped["status"], "STOPPED", "{stopped}");
    eprintln!("Python busy loop stopped in {:?}", t.elapsed());

    // An exception: ERROR with its class and message; a JobError keeps its code and flag;
    // print and logging lines kept with their levels.
    for (id, mode, code, retryable) in [
        ("ve", "value_error", "ValueError", false),
        ("je", "job_error", "UPSTREAM_UNAVAILABLE", true),
    ] {
        s.queue(
            json!({"action": "add_job", "job_type": "hostile_py", "job_id": id,
                       "params": {"mode": mode}, "start": true}),
        )
        .await;
        let e = s.wait_status(id, "ERROR", Duration::from_secs(10)).await;
        assert_eq!(e["status"], "ERROR", "{e}");
        assert_eq!(e["error"]["code"], code, "{e}");
        assert_eq!(e["error"]["retryable"], retryable, "{e}");
    }
    let e = s
        .queue(json!({"action": "get_status", "job_id": "ve"}))
        .await;
    assert!(
        e["status"]["error"]["message"]
            .as_str()
            .unwrap()
            .contains("bad input: limit must be positive")
    );
    let logs = s.queue(json!({"action": "get_logs", "job_id": "ve"})).await;
    let entries: Vec<(String, String)> = logs["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["level"].as_str().unwrap_or("").to_string(),
                e["message"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    let has = |level: &str, text: &str| entries.iter().any(|(l, m)| l == level && m.contains(text));
    assert!(has("info", "about to fail"), "{entries:?}");
    assert!(has("info", "an info line"), "{entries:?}");
    assert!(has("warn", "a warning line"), "{entries:?}");
    assert!(has("error", "an error line"), "{entries:?}");
    assert!(
        !entries.iter().any(|(_, m)| m.contains("a debug line")),
        "below the level: dropped"
    );
    let _: Value = logs;
}

/// A Python job reaches the directories its manifest grants, as granted, and nothing else.
#[tokio::test]
async fn a_python_job_reads_and_writes_only_what_its_manifest_grants() {
    let hostile = tokio::task::spawn_blocking(|| build("hostile"))
        .await
        .unwrap();
    let s = Server::start(server_bin!(), &[]).await;
    let data = s.dir.path().join("data");
    std::fs::create_dir_all(data.join("in")).unwrap();
    std::fs::create_dir_all(data.join("out")).unwrap();
    std::fs::write(data.join("in/orders.csv"), "id,total\n1,9.50\n2,12.00\n").unwrap();
    let quote = |p: std::path::PathBuf| p.display().to_string().replace('\\', "/");
    let web = KeepAliveHttp::start().await;
    let web_port = web.port;
    std::fs::write(
        s.jobs_dir().join("hostile_py.toml"),
        format!(
            "[[dirs]]\nhost = \"{}\"\nguest = \"/data/in\"\n\n[[dirs]]\nhost = \"{}\"\nguest = \"/data/out\"\nmode = \"rw\"\n\n[http]\nallow = [\"http://127.0.0.1:{web_port}\"]\nmax_requests = 10\n",
            quote(data.join("in")),
            quote(data.join("out"))
        ),
    )
    .unwrap();
    std::fs::copy(&hostile, s.jobs_dir().join("hostile_py.wasm")).unwrap();
    wait_loaded(&s, &["hostile_py"]).await;

    let run = |id: &'static str, params: Value| {
        let s = &s;
        async move {
            let add = s
                .queue(
                    json!({"action": "add_job", "job_type": "hostile_py", "job_id": id,
                              "params": params, "start": true}),
                )
                .await;
            assert_eq!(add["job_id"], id, "{add}");
            let end = Instant::now() + Duration::from_secs(30);
            loop {
                let st = s.queue(json!({"action": "get_status", "job_id": id})).await;
                let st = st["status"].clone();
                if st["status"] == "COMPLETED" || st["status"] == "ERROR" {
                    break st;
                }
                assert!(Instant::now() < end, "{st}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    };

    // Granted, read-only: readable.
    let ok = run(
        "read-in",
        json!({"mode": "read", "path": "/data/in/orders.csv"}),
    )
    .await;
    assert_eq!(ok["status"], "COMPLETED", "{ok}");
    assert_eq!(ok["result"]["lines"], 3, "{ok}");
    assert_eq!(ok["result"]["first"][0], "id,total", "{ok}");

    // Granted read-write: written, and the file is there on the host.
    let w = run(
        "write-out",
        json!({"mode": "write", "path": "/data/out/summary.txt", "text": "2 orders"}),
    )
    .await;
    assert_eq!(w["status"], "COMPLETED", "{w}");
    assert_eq!(
        std::fs::read_to_string(data.join("out/summary.txt")).unwrap(),
        "2 orders"
    );

    // Denied: a write into the read-only mount, a file outside every grant, an escape.
    for (id, params) in [
        (
            "write-in",
            json!({"mode": "write", "path": "/data/in/evil.txt", "text": "x"}),
        ),
        ("passwd", json!({"mode": "read", "path": "/etc/passwd"})),
        (
            "escape",
            json!({"mode": "read", "path": "/data/in/../../../../etc/passwd"}),
        ),
    ] {
        let e = run(id, params).await;
        assert_eq!(e["status"], "ERROR", "{id}: {e}");
        let code = e["error"]["code"].as_str().unwrap_or("");
        assert!(
            code.ends_with("Error"),
            "{id}: a Python OSError subclass, got {e}"
        );
    }
    assert!(
        !data.join("in/evil.txt").exists(),
        "nothing created in a read-only mount"
    );

    // HTTP from Python (queuemgr_job.http): the granted server, on one kept-alive connection.
    let url = format!("http://127.0.0.1:{web_port}/hello");
    let got = run(
        "fetch-ok",
        json!({"mode": "fetch", "url": url, "repeat": 4}),
    )
    .await;
    assert_eq!(got["status"], "COMPLETED", "{got}");
    assert_eq!(got["result"]["status"], 200, "{got}");
    assert_eq!(got["result"]["body"], "from web", "{got}");
    assert_eq!(got["result"]["type"], "text/plain", "{got}");
    let seen = || web.counts();
    assert_eq!(seen(), (1, 4), "four requests on one connection");
    // Not granted: another port, and past max_requests (10): refused before any connection.
    let other = format!("http://127.0.0.1:{}/x", web_port.wrapping_add(1).max(1));
    let denied = run("fetch-denied", json!({"mode": "fetch", "url": other})).await;
    assert_eq!(denied["status"], "ERROR", "{denied}");
    assert_eq!(denied["error"]["code"], "HTTP_DENIED", "{denied}");
    let capped = run(
        "fetch-capped",
        json!({"mode": "fetch", "url": url, "repeat": 11}),
    )
    .await;
    assert_eq!(capped["error"]["code"], "HTTP_DENIED", "{capped}");
    assert_eq!(
        seen(),
        (1, 14),
        "ten more requests went out, the eleventh did not"
    );
}

/// The order flow in Python (`example-jobs/python/order_flow.py`): a durable step, child jobs
/// (the Rust `order_item`), a join that suspends, an approval event, on a restarted server in
/// between; every effect once.
#[tokio::test]
async fn a_python_order_flow_suspends_resumes_after_a_restart_and_charges_once() {
    let flow = tokio::task::spawn_blocking(|| build("order_flow"))
        .await
        .unwrap();
    let mut s = Server::start(server_bin!(), &[]).await;
    let ledger = tempfile::tempdir().unwrap();
    std::fs::write(
        s.jobs_dir().join("order_flow_py.toml"),
        format!(
            "[[dirs]]\nhost = \"{}\"\nguest = \"/ledger\"\nmode = \"rw\"\n",
            ledger.path().display()
        ),
    )
    .unwrap();
    std::fs::copy(&flow, s.jobs_dir().join("order_flow_py.wasm")).unwrap();
    std::fs::copy(
        queuemgr_tests::job_wasm("order_item"),
        s.jobs_dir().join("order_item.wasm"),
    )
    .unwrap();
    wait_loaded(&s, &["order_flow_py", "order_item"]).await;
    s.queue(
        json!({"action": "add_job", "job_id": "py-o", "job_type": "order_flow_py",
        "start": true, "params": {"order_id": "py-o", "amount": 9.5,
        "items": [{"sku": "a"}, {"sku": "b", "qty": 3}], "ledger": "/ledger/ledger.log"}}),
    )
    .await;
    let t = Duration::from_secs(60);
    let job = s
        .wait_job("py-o", |j| j["waiting_for"]["kind"] == "event", t)
        .await;
    assert_eq!(job["status"], "PENDING", "{job}");
    s.restart().await;
    wait_loaded(&s, &["order_flow_py", "order_item"]).await;
    let sent = s
        .rpc(
            "queue_send_event",
            json!({"job_id": "py-o", "name": "approval", "payload": {"approved": true, "by": "eve"}}),
        )
        .await;
    assert_eq!(sent["result"]["data"]["resumed"], true, "{sent}");
    let done = s.wait_status("py-o", "COMPLETED", t).await;
    assert_eq!(done["status"], "COMPLETED", "{done}");
    let r: &Value = &done["result"];
    assert_eq!(r["approved_by"], "eve", "{done}");
    assert_eq!(
        r["items"],
        json!([{"sku": "a", "packed": 1}, {"sku": "b", "packed": 3}]),
        "{done}"
    );
    let lines = std::fs::read_to_string(ledger.path().join("ledger.log")).unwrap();
    assert_eq!(lines, "charge py-o\nship py-o\n");
}
