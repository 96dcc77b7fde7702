//! The framework's own client from PyPI (mcp-proxy-adapter 8.11.7, in a venv made by the test)
//! runs our job types as queued commands: `execute_command_unified` waits over one `/ws`
//! connection with no fallback, sees accepted, progress and the terminal event, detaches with
//! `auto_poll=False`, raises for a failed or stopped job, and falls back to polling with the
//! same answer when `/ws` is unreachable. Scenarios: `tests/framework/client.py`.

use queuemgr_tests::{Server, python_job, server_bin};
use serde_json::Value;
use std::time::{Duration, Instant};

const KEY: &str = "framework-client-key";

fn adapter_python() -> std::path::PathBuf {
    queuemgr_tests::python_venv("adapter-venv", "mcp-proxy-adapter", "8.11.7")
}

/// Runs one scenario of `tests/framework/client.py` (with the API key when `key`); returns
/// the JSON line it printed.
async fn client(s: &Server, scenario: &str) -> Value {
    client_with(s, "", scenario).await
}

async fn client_with(s: &Server, key: &str, scenario: &str) -> Value {
    let python = adapter_python();
    let script = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("framework/client.py");
    let (url, key, scenario) = (s.url.clone(), key.to_string(), scenario.to_string());
    tokio::task::spawn_blocking(move || {
        let out = std::process::Command::new(python)
            .arg(script)
            .args([&url, &key, &scenario])
            .output()
            .expect("run the framework's client");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{scenario}: exit {:?}\nstdout: {stdout}\nstderr: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        let line = stdout.lines().last().unwrap_or_default();
        serde_json::from_str(line).unwrap_or_else(|e| panic!("{scenario}: {e}: {stdout}"))
    })
    .await
    .expect("client task")
}

/// `queuemgr_ws_connections_opened_total` from `/metrics`.
async fn ws_opened(s: &Server) -> u64 {
    let text = reqwest::Client::new()
        .get(format!("{}/metrics", s.url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix("queuemgr_ws_connections_opened_total "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no ws counter in\n{text}"))
}

fn events(out: &Value) -> Vec<&str> {
    out["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["event"].as_str())
        .collect()
}

async fn wait_loaded(s: &Server, name: &str) {
    let end = Instant::now() + Duration::from_secs(600);
    while queuemgr_tests::type_info(&queuemgr_tests::job_types(s).await, name).is_none() {
        assert!(Instant::now() < end, "{name} not loaded");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// `execute_command_unified` of `job_type` returns the job's result at `result.result.data`,
/// over exactly one `/ws` connection with no fallback, and its `status_hook` sees accepted,
/// progress and one completed.
async fn unified(s: &Server, job_type: &str) {
    let before = ws_opened(s).await;
    let out = client(
        s,
        &format!("unified:{job_type}:{{\"task_name\":\"t\",\"duration\":1}}"),
    )
    .await;
    let a = &out["answer"];
    assert_eq!(a["mode"], "queued", "{out}");
    assert_eq!(a["status"], "completed", "{out}");
    assert_eq!(a["command"], job_type);
    assert_eq!(a["result"]["command"], job_type, "{out}");
    assert_eq!(a["result"]["result"]["success"], true, "{out}");
    assert_eq!(a["result"]["result"]["data"]["task_name"], "t", "{out}");
    assert_eq!(out["fallback_warnings"], 0, "{out}");
    assert_eq!(out["ws_connects"], 1, "{out}");
    assert_eq!(ws_opened(s).await - before, 1);
    let seen = events(&out);
    assert_eq!(seen.first(), Some(&"command_accepted"), "{seen:?}");
    assert_eq!(seen.last(), Some(&"command_completed"), "{seen:?}");
    assert!(seen.contains(&"command_progress"), "{seen:?}");
    assert_eq!(
        seen.iter().filter(|e| **e == "command_completed").count(),
        1
    );
}

#[tokio::test]
async fn the_frameworks_client_runs_job_types_as_queued_commands() {
    // The Python job builds meanwhile (it may wait for another test's componentize-py build):
    // everything but its own call runs first.
    let python_build = tokio::task::spawn_blocking(|| python_job("my_job"));
    tokio::task::spawn_blocking(adapter_python).await.unwrap();
    let s = Server::start(server_bin!(), &[]).await;

    // A Rust job, waited on over one /ws connection, no fallback (the Python one at the end).
    unified(&s, "my_job").await;

    // auto_poll=False: the client detaches at once; the job runs to its end anyway.
    let out = client(&s, "detach:my_job:{\"duration\":1}").await;
    let job_id = out["answer"]["job_id"]
        .as_str()
        .expect("job_id")
        .to_string();
    assert_eq!(out["answer"]["mode"], "queued", "{out}");
    assert_eq!(out["answer"]["status"], "pending", "{out}");
    let job = s
        .wait_status(&job_id, "COMPLETED", Duration::from_secs(30))
        .await;
    assert_eq!(job["status"], "COMPLETED", "{job}");

    // A failing job raises the client's CommandSessionFailedError, with the job's error.
    let out = client(&s, "failing").await;
    assert_eq!(out["raised"], "CommandSessionFailedError", "{out}");
    let d = &out["details"];
    assert_eq!(d["terminal_event"]["event"], "command_failed", "{out}");
    assert!(
        d["terminal_event"]["error"]
            .as_str()
            .unwrap()
            .contains("BOOM"),
        "{out}"
    );
    assert_eq!(d["result_status"]["status"], "failed", "{out}");
    assert_eq!(d["result_status"]["result"]["message"], "it broke", "{out}");

    // A job stopped by someone else reads cancelled.
    let out = client(&s, "stopped").await;
    assert_eq!(out["raised"], "CommandSessionFailedError", "{out}");
    assert_eq!(
        out["details"]["terminal_event"]["event"], "command_cancelled",
        "{out}"
    );
    assert_eq!(
        out["details"]["result_status"]["status"], "stopped",
        "{out}"
    );

    // /ws unreachable: the client polls queue_get_job_status and returns the same answer.
    let out = client(&s, "fallback:my_job:{\"task_name\":\"f\",\"duration\":0}").await;
    let a = &out["answer"];
    assert_eq!(out["fallback_warnings"], 1, "{out}");
    assert_eq!(a["mode"], "queued", "{out}");
    assert_eq!(a["status"], "completed", "{out}");
    assert_eq!(a["result"]["result"]["data"]["task_name"], "f", "{out}");

    // The Python job, waited on over one /ws connection, no fallback.
    let my_job_py = python_build.await.unwrap();
    std::fs::copy(&my_job_py, s.jobs_dir().join("my_job_py.wasm")).unwrap();
    wait_loaded(&s, "my_job_py").await;
    unified(&s, "my_job_py").await;

    // The README's demo: every job type the host serves, each as a queued command.
    let python = adapter_python();
    let demo = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../scripts/framework-client-demo.py");
    let url = s.url.clone();
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(python)
            .arg(demo)
            .arg(url)
            .output()
            .expect("run the demo")
    })
    .await
    .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for line in [
        "my_job: completed",
        "my_job_py: completed",
        "noop: completed",
        "cpu_heavy: completed",
        "failing: raised CommandSessionFailedError: command_failed",
        "hostile: raised CommandSessionFailedError: command_failed",
    ] {
        assert!(text.contains(line), "{line} in\n{text}");
    }

    // With an API key, the client sends it on the /ws upgrade too.
    let s = Server::start(server_bin!(), &["--api-key", KEY]).await;
    let out = client_with(&s, KEY, "unified:noop:{}").await;
    assert_eq!(out["answer"]["status"], "completed", "{out}");
    assert_eq!(out["fallback_warnings"], 0, "{out}");
    assert_eq!(out["ws_connects"], 1, "{out}");
}
