//! Watching jobs live: server-sent event streams read by a real HTTP client from a real
//! server process (order, a job's stream ending with its end, filters, reconnecting with
//! `Last-Event-ID`, a reader too slow to keep up, keep-alives, the API key).

use queuemgr_tests::{Server, server_bin};
use serde_json::{Value, json};
use std::time::{Duration, Instant};

/// One parsed server-sent event.
#[derive(Debug, Clone, Default)]
struct Sse {
    id: Option<u64>,
    event: String,
    data: Value,
}

/// A streaming response parsed into events by `sse-stream` (the parser the CLI uses), with a
/// tap on the raw bytes that counts keep-alive comment lines (lines starting with `:`), which
/// the parser drops.
struct Stream {
    events: std::pin::Pin<
        Box<dyn futures::Stream<Item = Result<sse_stream::Sse, sse_stream::Error>> + Send>,
    >,
    comments: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl Stream {
    async fn open(s: &Server, path: &str, headers: &[(&str, &str)]) -> Stream {
        use http_body_util::BodyExt;
        let mut req = reqwest::Client::new().get(format!("{}{path}", s.url));
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let resp = req.send().await.unwrap();
        assert_eq!(resp.status(), 200, "{path}");
        assert_eq!(
            resp.headers()["content-type"].to_str().unwrap(),
            "text/event-stream"
        );
        let comments = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let seen = comments.clone();
        // Whether the next byte starts a line (a comment line starts with ':').
        let mut line_start = true;
        let body = http::Response::<reqwest::Body>::from(resp)
            .into_body()
            .map_frame(move |frame| {
                if let Some(bytes) = frame.data_ref() {
                    for &b in bytes.iter() {
                        if line_start && b == b':' {
                            seen.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        }
                        line_start = b == b'\n';
                    }
                }
                frame
            });
        Stream {
            events: Box::pin(sse_stream::SseStream::new(body)),
            comments,
        }
    }

    /// Keep-alive comments read so far.
    fn comments(&self) -> usize {
        self.comments.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The next event, `None` when the stream ended or nothing came within `wait`.
    async fn next(&mut self, wait: Duration) -> Option<Sse> {
        use futures::StreamExt;
        let end = Instant::now() + wait;
        loop {
            let left = end.checked_duration_since(Instant::now())?;
            let sse = match tokio::time::timeout(left, self.events.next()).await {
                Ok(Some(Ok(sse))) => sse,
                Ok(Some(Err(_))) | Ok(None) | Err(_) => return None,
            };
            if sse.id.is_none() && sse.event.is_none() && sse.data.is_none() {
                continue;
            }
            let data = sse.data.unwrap_or_default();
            return Some(Sse {
                id: sse.id.and_then(|i| i.trim().parse().ok()),
                event: sse.event.unwrap_or_default(),
                data: serde_json::from_str(&data).unwrap_or(Value::String(data)),
            });
        }
    }
}

async fn add(s: &Server, id: &str, job_type: &str, params: Value, start: bool) {
    s.queue(
        json!({"action": "add_job", "job_id": id, "job_type": job_type,
                   "params": params, "start": start}),
    )
    .await;
}

#[tokio::test]
async fn a_jobs_stream_shows_its_progress_in_order_and_ends_with_it() {
    let s = Server::start(server_bin!(), &[]).await;
    add(
        &s,
        "watched",
        "my_job",
        json!({"task_name": "w", "duration": 2}),
        false,
    )
    .await;
    let mut st = Stream::open(&s, "/api/v1/jobs/watched/events", &[]).await;
    let first = st.next(Duration::from_secs(5)).await.unwrap();
    assert_eq!(first.event, "job");
    assert_eq!(
        first.data["status"], "PENDING",
        "the job as it is now: {first:?}"
    );
    s.queue(json!({"action": "start_job", "job_id": "watched"}))
        .await;
    let mut events = Vec::new();
    while let Some(ev) = st.next(Duration::from_secs(10)).await {
        events.push(ev);
    }
    let last = events.last().expect("events");
    assert_eq!(last.event, "job");
    assert_eq!(last.data["status"], "COMPLETED", "{events:?}");
    assert_eq!(last.data["result"]["task_name"], "w");
    assert!(
        events
            .iter()
            .any(|e| e.event == "job" && e.data["status"] == "RUNNING")
    );
    let progress: Vec<i64> = events
        .iter()
        .filter(|e| e.event == "progress")
        .map(|e| e.data["progress"].as_i64().unwrap())
        .collect();
    assert!(progress.contains(&50), "live progress: {progress:?}");
    assert!(progress.windows(2).all(|w| w[0] <= w[1]), "{progress:?}");
    assert!(
        events.iter().any(|e| e.event == "log"
            && e.data["message"]
                .as_str()
                .unwrap()
                .contains("Starting task")),
        "log lines: {events:?}"
    );
    let ids: Vec<u64> = events.iter().filter_map(|e| e.id).collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "ids increase: {ids:?}");

    // A job that has ended: its state, then the end of the stream.
    let mut st = Stream::open(&s, "/api/v1/jobs/watched/events", &[]).await;
    assert_eq!(
        st.next(Duration::from_secs(5)).await.unwrap().data["status"],
        "COMPLETED"
    );
    assert!(st.next(Duration::from_secs(5)).await.is_none());

    let r = reqwest::get(format!("{}/api/v1/jobs/nope/events", s.url))
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let r = reqwest::get(format!("{}/api/v1/events?status=bogus", s.url))
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
}

#[tokio::test]
async fn the_global_stream_filters_and_a_reconnect_gets_what_it_missed() {
    let s = Server::start(server_bin!(), &[]).await;
    let mut all = Stream::open(&s, "/api/v1/events", &[]).await;
    let mut noop = Stream::open(&s, "/api/v1/events?job_type=noop", &[]).await;
    let mut done = Stream::open(&s, "/api/v1/events?status=COMPLETED", &[]).await;
    for i in 0..5 {
        add(&s, &format!("n{i}"), "noop", json!({}), true).await;
        add(&s, &format!("m{i}"), "my_job", json!({"duration": 0}), true).await;
    }
    let mut seen = Vec::new();
    let end = Instant::now() + Duration::from_secs(10);
    while seen
        .iter()
        .filter(|e: &&Sse| e.event == "job" && e.data["status"] == "COMPLETED")
        .count()
        < 10
    {
        assert!(Instant::now() < end, "not all completions seen: {seen:?}");
        if let Some(e) = all.next(Duration::from_secs(5)).await {
            seen.push(e);
        }
    }
    let mut n = 0;
    while let Some(e) = noop.next(Duration::from_millis(500)).await {
        assert_eq!(e.data["job_type"], "noop", "{e:?}");
        n += 1;
    }
    assert!(n >= 10, "each noop job added, run and completed: {n}");
    let mut c = 0;
    while let Some(e) = done.next(Duration::from_millis(500)).await {
        assert_eq!(e.data["status"], "COMPLETED", "{e:?}");
        c += 1;
    }
    assert_eq!(c, 10);

    // Drop the connection after the fifth event; more happens; reconnect with its id.
    let mark = seen[4].id.unwrap();
    drop(all);
    for i in 0..3 {
        add(&s, &format!("later{i}"), "noop", json!({}), true).await;
    }
    let last_id = mark.to_string();
    let mut again = Stream::open(&s, "/api/v1/events", &[("last-event-id", &last_id)]).await;
    let mut replayed = Vec::new();
    while let Some(e) = again.next(Duration::from_millis(800)).await {
        replayed.push(e);
    }
    let ids: Vec<u64> = replayed.iter().filter_map(|e| e.id).collect();
    assert_eq!(
        ids.first(),
        Some(&(mark + 1)),
        "resumes right after the mark"
    );
    assert!(ids.windows(2).all(|w| w[1] == w[0] + 1), "no hole: {ids:?}");
    for (a, b) in seen[5..].iter().zip(&replayed) {
        assert_eq!(a.id, b.id, "the same events again");
    }
    assert!(
        replayed
            .iter()
            .any(|e| e.data["job_id"] == "later2" && e.data["status"] == "COMPLETED"),
        "and what happened while away"
    );

    // An id the host no longer holds: told to resync.
    let mut stale = Stream::open(&s, "/api/v1/events", &[("last-event-id", "1")]).await;
    assert_eq!(
        stale.next(Duration::from_secs(2)).await.unwrap().event,
        "resync"
    );
}

#[tokio::test]
async fn a_slow_reader_is_told_it_lagged_and_never_slows_the_queue() {
    let s = Server::start(server_bin!(), &[]).await;
    let mut slow = Stream::open(&s, "/api/v1/events", &[]).await;
    // Far more events than the stream's buffer and the socket hold, while it reads nothing.
    for i in 0..4 {
        add(
            &s,
            &format!("flood{i}"),
            "hostile",
            json!({"mode": "log_flood", "count": 60000}),
            true,
        )
        .await;
    }
    for i in 0..4 {
        let j = s
            .wait_status(&format!("flood{i}"), "COMPLETED", Duration::from_secs(60))
            .await;
        assert_eq!(j["status"], "COMPLETED", "{j}");
    }
    // Meanwhile the queue serves others at once.
    add(&s, "quick", "noop", json!({}), true).await;
    let q = s
        .wait_status("quick", "COMPLETED", Duration::from_secs(10))
        .await;
    assert_eq!(q["status"], "COMPLETED");
    let mut lagged = None;
    let end = Instant::now() + Duration::from_secs(60);
    while Instant::now() < end {
        match slow.next(Duration::from_secs(5)).await {
            Some(e) if e.event == "lagged" => {
                lagged = Some(e);
                break;
            }
            Some(_) => {}
            None => break,
        }
    }
    let lagged = lagged.expect("a lagged event");
    assert!(lagged.data["missed"].as_u64().unwrap() > 0, "{lagged:?}");
    // And the stream goes on: the next job shows up.
    add(&s, "after", "noop", json!({}), true).await;
    let end = Instant::now() + Duration::from_secs(30);
    loop {
        let e = slow
            .next(Duration::from_secs(5))
            .await
            .expect("stream goes on");
        if e.data["job_id"] == "after" && e.data["status"] == "COMPLETED" {
            break;
        }
        assert!(Instant::now() < end);
    }
}

#[tokio::test]
async fn streams_keep_alive_and_need_the_api_key() {
    let key = "sse-test-key";
    let s = Server::start(
        server_bin!(),
        &["--api-key", key, "--sse-keep-alive-secs", "1"],
    )
    .await;
    let r = reqwest::get(format!("{}/api/v1/events", s.url))
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let mut st = Stream::open(&s, "/api/v1/events", &[("x-api-key", key)]).await;
    assert!(st.next(Duration::from_millis(2500)).await.is_none());
    assert!(st.comments() >= 1, "a keep-alive comment within 2.5 s");
}

#[tokio::test]
async fn metrics_count_what_the_host_did() {
    let s = Server::start(server_bin!(), &[]).await;
    for i in 0..3 {
        add(&s, &format!("ok{i}"), "noop", json!({}), true).await;
    }
    add(&s, "bad", "failing", json!({}), true).await;
    for i in 0..3 {
        s.wait_status(&format!("ok{i}"), "COMPLETED", Duration::from_secs(10))
            .await;
    }
    s.wait_status("bad", "ERROR", Duration::from_secs(10)).await;
    let r = reqwest::get(format!("{}/no/such/route", s.url))
        .await
        .unwrap();
    assert_eq!(r.status(), 404);

    let r = reqwest::get(format!("{}/metrics", s.url)).await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    let text = r.text().await.unwrap();
    let scrape = prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_string())))
        .expect("the Prometheus text format");
    let value = |name: &str, labels: &[(&str, &str)]| -> f64 {
        let found: Vec<f64> = scrape
            .samples
            .iter()
            .filter(|s| s.metric == name && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
            .map(|s| match &s.value {
                prometheus_parse::Value::Counter(v)
                | prometheus_parse::Value::Gauge(v)
                | prometheus_parse::Value::Untyped(v) => *v,
                other => panic!("{name}: {other:?}"),
            })
            .collect();
        assert_eq!(found.len(), 1, "{name} {labels:?} in:\n{text}");
        found[0]
    };
    assert_eq!(
        value(
            "queuemgr_runs_total",
            &[("job_type", "noop"), ("outcome", "completed")]
        ),
        3.0
    );
    assert_eq!(
        value(
            "queuemgr_runs_total",
            &[("job_type", "failing"), ("outcome", "failed")]
        ),
        1.0
    );
    assert_eq!(
        value(
            "queuemgr_jobs",
            &[("job_type", "noop"), ("status", "COMPLETED")]
        ),
        3.0
    );
    assert_eq!(
        value(
            "queuemgr_jobs",
            &[("job_type", "failing"), ("status", "ERROR")]
        ),
        1.0
    );
    assert_eq!(
        value(
            "queuemgr_jobs",
            &[("job_type", "noop"), ("status", "RUNNING")]
        ),
        0.0
    );
    assert_eq!(
        value("queuemgr_job_types_loaded", &[]),
        queuemgr_tests::EXAMPLE_JOBS.len() as f64
    );
    assert_eq!(value("queuemgr_job_types_broken", &[]), 0.0);
    assert_eq!(value("queuemgr_instances", &[]), 0.0);
    // The heap's own counts: something is allocated, and no more than is resident.
    let (allocated, resident) = (
        value("queuemgr_heap_allocated_bytes", &[]),
        value("queuemgr_heap_resident_bytes", &[]),
    );
    assert!(
        allocated > 1e5 && allocated <= resident,
        "heap: {allocated} allocated, {resident} resident"
    );
    assert!(value("queuemgr_fuel_consumed_total", &[("job_type", "noop")]) > 0.0);
    assert!(
        value(
            "queuemgr_http_requests_total",
            &[("route", "/api/v1/execute"), ("code", "200")]
        ) >= 8.0
    );
    assert_eq!(
        value(
            "queuemgr_http_requests_total",
            &[("route", "unmatched"), ("code", "404")]
        ),
        1.0
    );
    let histogram_count = |name: &str, labels: &[(&str, &str)]| -> u64 {
        scrape
            .samples
            .iter()
            .find_map(|s| match &s.value {
                prometheus_parse::Value::Histogram(h)
                    if s.metric == name
                        && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)) =>
                {
                    h.last().map(|b| b.count as u64)
                }
                _ => None,
            })
            .unwrap_or_else(|| panic!("{name} {labels:?} in:\n{text}"))
    };
    assert_eq!(
        histogram_count("queuemgr_run_duration_seconds", &[("job_type", "noop")]),
        3
    );
    assert_eq!(
        histogram_count("queuemgr_queue_wait_seconds", &[("job_type", "failing")]),
        1
    );
    assert!(histogram_count("queuemgr_store_write_seconds", &[("op", "finish")]) >= 1);
    assert!(histogram_count("queuemgr_store_write_seconds", &[("op", "insert")]) >= 4);
}

/// The official Python MCP SDK in `target/mcp-venv` (made once).
fn mcp_python() -> std::path::PathBuf {
    queuemgr_tests::python_venv("mcp-venv", "mcp", "2.3.0")
}

const MCP_KEY: &str = "mcp-test-key";

/// Runs a scenario of `tests/mcp/client.py`; with `act`, waits for its `ready` line, runs
/// `act`, then lets it go on. Returns every JSON line it printed.
async fn mcp_client(
    s: &Server,
    scenario: &str,
    mode: &str,
    act: Option<Box<dyn FnOnce() + Send>>,
) -> Vec<Value> {
    use std::io::{BufRead, Write};
    let python = mcp_python();
    let script = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("mcp/client.py");
    let url = s.url.clone();
    let (scenario, mode) = (scenario.to_string(), mode.to_string());
    tokio::task::spawn_blocking(move || {
        let mut child = std::process::Command::new(python)
            .arg(script)
            .args([&url, MCP_KEY, &scenario, &mode])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("run the MCP client");
        let mut stdin = child.stdin.take();
        let mut act = act;
        let mut lines = Vec::new();
        for line in std::io::BufReader::new(child.stdout.take().unwrap())
            .lines()
            .map_while(Result::ok)
        {
            let v: Value = serde_json::from_str(&line).unwrap_or(Value::String(line));
            if v.get("ready").is_some()
                && let Some(f) = act.take()
            {
                f();
                if let Some(mut i) = stdin.take() {
                    let _ = writeln!(i);
                }
            }
            lines.push(v);
        }
        let out = child.wait_with_output().expect("wait");
        assert!(
            out.status.success(),
            "MCP client {scenario}/{mode} failed: {lines:?}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        lines
    })
    .await
    .unwrap()
}

fn find<'a>(lines: &'a [Value], key: &str) -> &'a Value {
    lines
        .iter()
        .find(|l| l.get(key).is_some())
        .unwrap_or_else(|| panic!("no {key} in {lines:?}"))
}

#[tokio::test]
async fn mcp_tools_run_jobs_with_progress_and_queue_tools_manage_them() {
    let s = Server::start(server_bin!(), &["--api-key", MCP_KEY]).await;
    let r = reqwest::Client::new()
        .post(format!("{}/mcp", s.url))
        .json(&json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401, "the same API key as the rest");

    let lines = mcp_client(&s, "basic", "auto", None).await;
    let tools = find(&lines, "tools")["tools"].as_array().unwrap().clone();
    for t in queuemgr_tests::EXAMPLE_JOBS.iter().chain(&[
        "queue_add_job",
        "queue_get_job_status",
        "queue_list_jobs",
        "queue_get_job_logs",
        "queue_stop_job",
        "queue_delete_job",
        "queue_list_job_types",
    ]) {
        assert!(tools.contains(&json!(t)), "tool {t} in {tools:?}");
    }
    assert_eq!(
        find(&lines, "my_job_schema")["my_job_schema"]["properties"]["duration"]["type"],
        "number",
        "a job tool's input schema is its params schema"
    );
    let done = find(&lines, "result");
    assert_eq!(done["is_error"], false, "{done}");
    assert_eq!(done["result"]["task_name"], "from-mcp");
    assert_eq!(done["result"]["status"], "completed");
    assert_eq!(
        done["progress_seen"],
        json!([33.0, 66.0, 100.0]),
        "progress notifications, in order"
    );
    assert_eq!(find(&lines, "failing_is_error")["failing_is_error"], true);
    assert_eq!(find(&lines, "added")["is_error"], false);
    assert_eq!(find(&lines, "status")["status"]["status"], "completed");
    assert_eq!(find(&lines, "missing_is_error")["missing_is_error"], true);
    assert_eq!(find(&lines, "unknown_tool")["unknown_tool"], -32602);
    let bad = find(&lines, "bad_params");
    assert_eq!(bad["bad_params"], -32602, "{bad}");
    assert!(
        bad["bad_params_message"]
            .as_str()
            .unwrap()
            .contains("duration"),
        "{bad}"
    );
}

#[tokio::test]
async fn an_mcp_cancel_stops_the_job_in_both_protocol_eras() {
    // The key is checked by the test above; this server is open so that the test can read it.
    let s = Server::start(server_bin!(), &[]).await;
    let mut handled: Vec<String> = Vec::new();
    for mode in ["auto", "legacy"] {
        let lines = mcp_client(&s, "cancel", mode, None).await;
        let c = find(&lines, "cancelled");
        assert_eq!(c["cancelled"], true);
        assert!(
            !c["progress_seen"].as_array().unwrap().is_empty(),
            "{mode}: progress before the cancel: {c}"
        );
        assert_eq!(find(&lines, "still_alive")["still_alive"], true);
        let jobs = s
            .queue(json!({"action": "list_jobs", "job_type": "my_job"}))
            .await;
        let ids: Vec<String> = jobs["jobs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|j| j["job_id"].as_str().unwrap().to_string())
            .filter(|id| !handled.contains(id))
            .collect();
        assert_eq!(ids.len(), 1, "{mode}: one job per call: {jobs}");
        let end = s
            .wait_status(&ids[0], "STOPPED", Duration::from_secs(10))
            .await;
        assert_eq!(
            end["status"], "STOPPED",
            "{mode}: the cancelled call's job: {end}"
        );
        handled.extend(ids);
    }
}

#[tokio::test]
async fn a_new_job_file_changes_the_mcp_tool_list() {
    let s = Server::start(server_bin!(), &["--api-key", MCP_KEY]).await;
    for (mode, name) in [("auto", "mcp_new_a"), ("legacy", "mcp_new_b")] {
        let from = queuemgr_tests::job_wasm("noop");
        let to = s.jobs_dir().join(format!("{name}.wasm"));
        let lines = mcp_client(
            &s,
            "list_changed",
            mode,
            Some(Box::new(move || {
                std::fs::copy(from, to).unwrap();
            })),
        )
        .await;
        let before = find(&lines, "ready")["before"].as_array().unwrap().clone();
        assert!(!before.contains(&json!(name)));
        let changed = find(&lines, "list_changed");
        assert!(
            changed["after"].as_array().unwrap().contains(&json!(name)),
            "{mode}: {changed}"
        );
    }
}

#[tokio::test]
async fn a_stream_on_one_host_shows_jobs_that_run_on_another() {
    let url = queuemgr_tests::postgres_url().await;
    let schema = format!("qmt{}_livefeed", std::process::id());
    let flags = |host: &str| {
        vec![
            "--store".to_string(),
            url.clone(),
            "--store-schema".to_string(),
            schema.clone(),
            "--host-id".to_string(),
            host.to_string(),
        ]
    };
    let args_a = flags("feed-a");
    let args_b = flags("feed-b");
    let a = Server::start(
        server_bin!(),
        &args_a.iter().map(String::as_str).collect::<Vec<_>>(),
    )
    .await;
    let b = Server::start(
        server_bin!(),
        &args_b.iter().map(String::as_str).collect::<Vec<_>>(),
    )
    .await;
    let mut on_b = Stream::open(&b, "/api/v1/events?job_type=my_job", &[]).await;
    // Started on A with a free slot there: it runs on A.
    add(
        &a,
        "far",
        "my_job",
        json!({"task_name": "far", "duration": 1}),
        true,
    )
    .await;
    let mut seen = Vec::new();
    let end = Instant::now() + Duration::from_secs(20);
    while Instant::now() < end {
        let Some(e) = on_b.next(Duration::from_secs(5)).await else {
            continue;
        };
        let done = e.data["job_id"] == "far" && e.data["status"] == "COMPLETED";
        seen.push(e);
        if done {
            break;
        }
    }
    let statuses: Vec<&str> = seen
        .iter()
        .filter(|e| e.event == "job" && e.data["job_id"] == "far")
        .filter_map(|e| e.data["status"].as_str())
        .collect();
    assert!(statuses.contains(&"RUNNING"), "{statuses:?}");
    assert_eq!(statuses.last(), Some(&"COMPLETED"), "{seen:?}");
    let j = b
        .queue(json!({"action": "get_status", "job_id": "far"}))
        .await;
    assert_eq!(j["status"]["status"], "COMPLETED");
    // It ran on A: B learnt of it only through the database.
    let rows = queuemgr_tests::stored_records(&url, &schema, "far").await;
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0]["host"], "feed-a", "{rows:?}");
    drop(a);
    drop(b);
    queuemgr_tests::drop_schemas(&url, &schema, std::slice::from_ref(&schema)).await;
}
