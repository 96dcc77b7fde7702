//! For people: the `queuemgr` command line as a client of a real server (run with its exit
//! codes, Ctrl-C, errors as one line, list/status/logs/types, `new` making a job that builds and
//! runs), and the dashboard in a real browser (headless Chromium driven by Playwright).

use queuemgr_tests::{Server, server_bin};
use serde_json::{Value, json};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Runs the binary as a client of `s` (or of `url`), with `args`.
async fn cli(url: &str, key: Option<&str>, args: &[&str]) -> Output {
    let mut cmd = Command::new(server_bin!());
    cmd.args(args)
        .env("QUEUEMGR_URL", url)
        .env_remove("QUEUEMGR_API_KEY");
    if let Some(k) = key {
        cmd.env("QUEUEMGR_API_KEY", k);
    }
    tokio::task::spawn_blocking(move || cmd.output().expect("run queuemgr"))
        .await
        .unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).to_string()
}

#[tokio::test]
async fn run_prints_the_result_and_exits_by_outcome() {
    let s = Server::start(server_bin!(), &[]).await;
    let out = cli(
        &s.url,
        None,
        &[
            "run",
            "my_job",
            "-p",
            "task_name=from-cli",
            "-p",
            "duration=1",
        ],
    )
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let result: Value = serde_json::from_slice(&out.stdout).expect("the result as JSON");
    assert_eq!(result["task_name"], "from-cli");
    assert_eq!(result["status"], "completed");

    let out = cli(&s.url, None, &["run", "failing", "-p", "code=BAD_INPUT"]).await;
    assert_eq!(out.status.code(), Some(1), "a failed job exits 1");
    assert!(
        text(&out.stderr).contains("BAD_INPUT"),
        "{}",
        text(&out.stderr)
    );

    let out = cli(&s.url, None, &["run", "noop", "--json", "--id", "j-json"]).await;
    assert_eq!(out.status.code(), Some(0));
    let job: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(job["job_id"], "j-json");
    assert_eq!(job["status"], "COMPLETED");

    // Errors as one clear line, exit 2.
    for (args, want) in [
        (vec!["run", "nope"], "job_type"),
        (
            vec!["run", "my_job", "-p", "duration=long"],
            "params.duration",
        ),
        (vec!["status", "no-such-job"], "Job not found"),
        (vec!["run", "my_job", "--params", "[1]"], "JSON object"),
    ] {
        let out = cli(&s.url, None, &args).await;
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(want), "{args:?}: {err}");
        assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
    }
    let out = cli("http://127.0.0.1:9", None, &["list"]).await;
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("cannot reach queuemgr"),
        "{}",
        text(&out.stderr)
    );
}

#[tokio::test]
async fn ctrl_c_stops_the_job_it_runs() {
    let s = Server::start(server_bin!(), &[]).await;
    let mut child = Command::new(server_bin!())
        .args(["run", "my_job", "-p", "duration=60", "--id", "interrupted"])
        .env("QUEUEMGR_URL", &s.url)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The client adds the job once it has started: wait for it to exist and run.
    let end = Instant::now() + Duration::from_secs(20);
    let v = s
        .wait_status("interrupted", "RUNNING", end - Instant::now())
        .await;
    assert_eq!(v["status"], "RUNNING", "never RUNNING: {v}");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let t = Instant::now();
    let st = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(st.success());
    let out = tokio::task::spawn_blocking(move || {
        let _ = child.wait();
        child.wait_with_output().unwrap()
    })
    .await
    .unwrap();
    assert_eq!(out.status.code(), Some(130), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("stopped"),
        "{}",
        text(&out.stderr)
    );
    let j = s
        .queue(json!({"action": "get_status", "job_id": "interrupted"}))
        .await;
    assert_eq!(j["status"]["status"], "STOPPED");
    eprintln!("Ctrl-C to exit: {:?}", t.elapsed());
}

#[tokio::test]
async fn list_status_logs_types_and_the_api_key() {
    let key = "cli-key";
    let s = Server::start(server_bin!(), &["--api-key", key]).await;
    let out = cli(&s.url, None, &["list"]).await;
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("401"), "{}", text(&out.stderr));

    let out = cli(
        &s.url,
        Some(key),
        &["add", "my_job", "-p", "duration=0", "--id", "a1", "--start"],
    )
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout).trim(), "a1");
    let end = Instant::now() + Duration::from_secs(10);
    loop {
        let out = cli(&s.url, Some(key), &["status", "a1", "--json"]).await;
        let j: Value = serde_json::from_slice(&out.stdout).unwrap();
        if j["status"] == "COMPLETED" {
            break;
        }
        assert!(Instant::now() < end, "{j}");
    }
    let out = cli(&s.url, Some(key), &["list", "--type", "my_job"]).await;
    let table = text(&out.stdout);
    assert!(table.starts_with("JOB"), "{table}");
    assert!(
        table.contains("a1") && table.contains("COMPLETED"),
        "{table}"
    );
    let out = cli(&s.url, Some(key), &["logs", "a1"]).await;
    assert!(
        text(&out.stdout).contains("Starting task"),
        "{}",
        text(&out.stdout)
    );
    let out = cli(&s.url, Some(key), &["logs", "a1", "-f"]).await;
    assert_eq!(out.status.code(), Some(0), "follow ends with the job");
    let out = cli(&s.url, Some(key), &["types"]).await;
    let types = text(&out.stdout);
    assert!(
        types.contains("my_job") && types.contains("-p duration=<number>"),
        "{types}"
    );
    let out = cli(&s.url, Some(key), &["stop", "a1"]).await;
    assert_eq!(
        out.status.code(),
        Some(2),
        "stopping a completed job: one line"
    );
    let out = cli(&s.url, Some(key), &["delete", "a1"]).await;
    assert_eq!(text(&out.stdout).trim(), "a1: DELETED");
    // Who added and deleted it: the --api-key is the admin key named `api-key`.
    let out = cli(&s.url, Some(key), &["status", "a1"]).await;
    let shown = text(&out.stdout);
    assert!(
        shown.contains("added_by   api-key") && shown.contains("delete by api-key"),
        "{shown}"
    );
}

#[tokio::test]
async fn new_makes_a_job_that_builds_and_runs() {
    let s = Server::start(server_bin!(), &[]).await;
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(server_bin!())
        .args(["new", "hello_job", "--dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("cargo build --release --target wasm32-wasip2"));
    // Build it as printed, sharing the example jobs' target directory (and so most of their
    // compiled dependencies).
    let target = queuemgr_tests::example_jobs_dir().join("../..");
    let crate_dir = dir.path().join("hello_job");
    let build = tokio::task::spawn_blocking(move || {
        Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
            .args(["build", "--release", "--target", "wasm32-wasip2"])
            .current_dir(&crate_dir)
            .env("CARGO_TARGET_DIR", &target)
            .env_remove("RUSTFLAGS")
            .env_remove("CARGO_ENCODED_RUSTFLAGS")
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(build.status.success(), "{}", text(&build.stderr));
    let wasm = queuemgr_tests::example_jobs_dir().join("hello_job.wasm");
    std::fs::copy(&wasm, s.jobs_dir().join("hello_job.wasm")).unwrap();
    let end = Instant::now() + Duration::from_secs(30);
    loop {
        let v = s.queue(json!({"action": "list_job_types"})).await;
        if v["job_types"].to_string().contains("hello_job") {
            break;
        }
        assert!(Instant::now() < end, "{v}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let out = cli(
        &s.url,
        None,
        &["run", "hello_job", "-p", "name=tests", "-p", "steps=1"],
    )
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let r: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(r["greeting"], "hello, tests");
    // And a second `new` with the same name is refused, in one line.
    let out = Command::new(server_bin!())
        .args(["new", "hello_job", "--dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert_ne!(out.status.code(), Some(0));
    assert!(text(&out.stderr).contains("already exists"));
}

/// Debian's Chromium (installed with apt if missing) and Playwright from PyPI in
/// `target/dashboard-venv` (made once); returns the venv's python.
fn browser() -> std::path::PathBuf {
    const VERSION: &str = "1.65.2";
    if !std::path::Path::new("/usr/bin/chromium").exists() {
        let st = Command::new("sh")
            .args([
                "-c",
                "(apt-get install -y -q chromium || (apt-get update -q && apt-get install -y -q chromium)) >/dev/null",
            ])
            .status()
            .expect("apt-get");
        assert!(st.success(), "cannot install Debian's chromium");
    }
    queuemgr_tests::python_venv("dashboard-venv", "playwright", VERSION)
}

#[tokio::test]
async fn the_dashboard_in_a_real_browser() {
    let python = tokio::task::spawn_blocking(browser).await.unwrap();
    let key = "dashboard-key";
    // Two named keys beside the admin key, for the sign-in by role.
    let dir = tempfile::tempdir().unwrap();
    let mut entries = String::new();
    let mut roles = serde_json::Map::new();
    for (name, role) in [("viewer", "read"), ("runner", "run")] {
        let out = Command::new(server_bin!())
            .args(["keys", "new", name, "--role", role])
            .output()
            .expect("keys new");
        assert!(out.status.success(), "{out:?}");
        let printed = text(&out.stdout);
        let k = printed.lines().next().unwrap().to_string();
        entries.extend(
            printed
                .lines()
                .skip(1)
                .filter(|l| !l.starts_with('#'))
                .map(|l| format!("{l}\n")),
        );
        roles.insert(role.into(), serde_json::json!([name, k]));
    }
    let keys_file = dir.path().join("keys.toml");
    std::fs::write(&keys_file, entries).unwrap();
    let roles_file = dir.path().join("roles.json");
    std::fs::write(&roles_file, serde_json::Value::Object(roles).to_string()).unwrap();
    let s = Server::start(
        server_bin!(),
        &["--api-key", key, "--keys-file", keys_file.to_str().unwrap()],
    )
    .await;
    // The order flow, for the flow graph and its event form.
    for t in ["order_flow", "order_item"] {
        std::fs::copy(
            queuemgr_tests::job_wasm(t),
            s.jobs_dir().join(format!("{t}.wasm")),
        )
        .unwrap();
    }
    let api_key = [("x-api-key", key)];
    let end = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let (_, v) = s
            .post_raw(
                "/api/v1/execute",
                serde_json::json!({"command": "queue", "params": {"action": "list_job_types"}})
                    .to_string(),
                &api_key,
            )
            .await;
        let types = v["result"]["data"].clone();
        if queuemgr_tests::type_info(&types, "order_flow").is_some()
            && queuemgr_tests::type_info(&types, "order_item").is_some()
        {
            break;
        }
        assert!(
            std::time::Instant::now() < end,
            "the flow's job types did not load: {v}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let script =
        std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("dashboard/test_dashboard.py");
    // Kept as a test artifact (and the README's picture comes from it).
    let shot = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../target/test-artifacts/dashboard-jobs.png");
    std::fs::create_dir_all(shot.parent().unwrap()).unwrap();
    let _ = std::fs::remove_file(&shot);
    let url = s.url.clone();
    let shot2 = shot.clone();
    let out = tokio::task::spawn_blocking(move || {
        Command::new(python)
            .arg(script)
            .arg(&url)
            .arg(key)
            .arg(&shot2)
            .arg(&roles_file)
            .output()
            .expect("run the browser test")
    })
    .await
    .unwrap();
    let stdout = text(&out.stdout);
    assert!(
        out.status.success(),
        "the dashboard test failed:\n{stdout}\n{}",
        text(&out.stderr)
    );
    eprintln!("{stdout}");
    assert!(
        std::fs::metadata(&shot).is_ok_and(|m| m.len() > 10_000),
        "a screenshot of the jobs page"
    );
}

/// `queuemgr schedule add|pause|resume|delete` and `queuemgr schedules`: what an operator types
/// to run a job every day at 03:00 in Berlin, and what they see.
#[tokio::test]
async fn the_cli_adds_lists_pauses_and_deletes_schedules() {
    let s = Server::start(server_bin!(), &[]).await;
    let out = cli(
        &s.url,
        None,
        &[
            "schedule",
            "add",
            "nightly",
            "my_job",
            "0 3 * * *",
            "-p",
            "duration=0",
            "--tz",
            "Europe/Berlin",
        ],
    )
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).starts_with("nightly: active, next run "),
        "{}",
        text(&out.stdout)
    );
    let out = cli(&s.url, None, &["schedules"]).await;
    let table = text(&out.stdout);
    assert!(table.starts_with("SCHEDULE"), "{table}");
    assert!(
        table.contains("nightly") && table.contains("Europe/Berlin") && table.contains("active"),
        "{table}"
    );
    let out = cli(&s.url, None, &["schedule", "pause", "nightly"]).await;
    assert_eq!(text(&out.stdout).trim(), "nightly: paused");
    let out = cli(&s.url, None, &["schedule", "resume", "nightly"]).await;
    assert!(text(&out.stdout).starts_with("nightly: active"));
    // A bad expression: a clear error, exit 2, nothing stored.
    let out = cli(
        &s.url,
        None,
        &["schedule", "add", "bad", "my_job", "99 * * * *"],
    )
    .await;
    assert_ne!(out.status.code(), Some(0));
    assert!(text(&out.stderr).contains("cron"), "{}", text(&out.stderr));
    let out = cli(&s.url, None, &["schedule", "delete", "nightly"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let out = cli(&s.url, None, &["schedules", "--json"]).await;
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["count"], 0, "{v}");
}

/// `queuemgr queue set|pause|resume`, `queuemgr queues` and `queuemgr add --queue --key`: what an
/// operator types to hold a tenant's mail to two at a time and 100 a minute, and what they see.
#[tokio::test]
async fn the_cli_sets_lists_pauses_and_resumes_queues() {
    let s = Server::start(server_bin!(), &[]).await;
    let out = cli(
        &s.url,
        None,
        &[
            "queue",
            "set",
            "mail",
            "--concurrency",
            "4",
            "--key-concurrency",
            "2",
            "--rate",
            "100/min",
        ],
    )
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout).trim(),
        "mail: active, concurrency 4, key_concurrency 2, rate 100/min"
    );
    let out = cli(&s.url, None, &["queue", "pause", "mail"]).await;
    assert!(
        text(&out.stdout).starts_with("mail: paused"),
        "{}",
        text(&out.stdout)
    );
    let out = cli(
        &s.url,
        None,
        &[
            "add",
            "noop",
            "-p",
            "sleep_ms=0",
            "--start",
            "--queue",
            "mail",
            "--key",
            "acme",
        ],
    )
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let id = text(&out.stdout).trim().to_string();
    let out = cli(&s.url, None, &["queues"]).await;
    let table = text(&out.stdout);
    assert!(table.starts_with("QUEUE"), "{table}");
    let mail = table
        .lines()
        .find(|l| l.starts_with("mail "))
        .unwrap_or_else(|| panic!("{table}"));
    let cols: Vec<&str> = mail.split_whitespace().collect();
    assert_eq!(
        &cols[..7],
        ["mail", "paused", "0/4", "1", "0", "2", "100/min"],
        "{table}"
    );
    assert!(table.contains("\ndefault "), "{table}");
    let j = s
        .queue(serde_json::json!({"action": "get_status", "job_id": id}))
        .await;
    assert_eq!(j["status"]["status"], "PENDING", "paused: {j}");
    assert_eq!(j["status"]["concurrency_key"], "acme", "{j}");
    let out = cli(&s.url, None, &["queue", "resume", "mail"]).await;
    assert!(
        text(&out.stdout).starts_with("mail: active"),
        "{}",
        text(&out.stdout)
    );
    let j = s
        .wait_status(&id, "COMPLETED", std::time::Duration::from_secs(10))
        .await;
    assert_eq!(j["status"], "COMPLETED", "{j}");
    // A bad rate: a clear error, not 0, nothing changed.
    let out = cli(&s.url, None, &["queue", "set", "mail", "--rate", "lots"]).await;
    assert_ne!(out.status.code(), Some(0));
    assert!(text(&out.stderr).contains("rate"), "{}", text(&out.stderr));
    let out = cli(&s.url, None, &["queues", "--json"]).await;
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let mail = v["queues"]
        .as_array()
        .and_then(|a| a.iter().find(|q| q["name"] == "mail"))
        .cloned()
        .unwrap_or_default();
    assert_eq!(mail["rate"], "100/min", "{v}");
}
