//! OpenTelemetry traces, received by an OTLP/HTTP collector this test starts: a job added with
//! a W3C `traceparent` on one host of a PostgreSQL queue, failing twice (each failure a retry,
//! run by whichever host claims it) and then succeeding, is one trace from the request to its
//! last run.

use queuemgr_tests::{Server, job_wasm, server_bin};
use serde_json::{Value, json};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// An OTLP/HTTP receiver (JSON encoding) on a loopback port: every span it was sent.
struct Collector {
    url: String,
    spans: Arc<Mutex<Vec<Value>>>,
    _task: tokio::task::JoinHandle<()>,
}

impl Collector {
    async fn start() -> Collector {
        let spans: Arc<Mutex<Vec<Value>>> = Arc::default();
        let keep = spans.clone();
        let app = axum::Router::new().route(
            "/v1/traces",
            axum::routing::post(move |body: axum::body::Bytes| {
                let keep = keep.clone();
                async move {
                    let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                    let mut out = keep.lock().unwrap();
                    for rs in v["resourceSpans"].as_array().into_iter().flatten() {
                        for ss in rs["scopeSpans"].as_array().into_iter().flatten() {
                            for s in ss["spans"].as_array().into_iter().flatten() {
                                out.push(s.clone());
                            }
                        }
                    }
                    axum::Json(json!({}))
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Collector {
            url,
            spans,
            _task: task,
        }
    }

    fn spans(&self) -> Vec<Value> {
        self.spans.lock().unwrap().clone()
    }
}

/// A span attribute's value, as text (OTLP JSON wraps each value in its type).
fn attr(span: &Value, key: &str) -> Option<String> {
    span["attributes"]
        .as_array()?
        .iter()
        .find(|a| a["key"] == key)
        .map(|a| {
            let v = &a["value"];
            v["stringValue"]
                .as_str()
                .map(str::to_string)
                .or_else(|| v["intValue"].as_str().map(str::to_string))
                .unwrap_or_else(|| v["intValue"].to_string())
        })
}

#[tokio::test]
async fn a_retried_job_is_one_trace_from_its_request_to_its_last_run_across_hosts() {
    let collector = Collector::start().await;
    let url = queuemgr_tests::postgres_url().await;
    let schema = format!("qmt{}_traces", std::process::id());
    // The flaky job's counter lives in a directory both hosts mount.
    let shared = tempfile::tempdir().unwrap();
    let manifest = format!(
        "[[dirs]]\nhost = \"{}\"\nguest = \"/state\"\nmode = \"rw\"\n",
        shared.path().display()
    );
    let start = |host: &'static str| {
        let args = vec![
            "--store".to_string(),
            url.clone(),
            "--store-schema".into(),
            schema.clone(),
            "--host-id".into(),
            host.into(),
            "--retry-base-ms".into(),
            "50".into(),
            "--otlp-endpoint".into(),
            collector.url.clone(),
            "--otlp-protocol".into(),
            "http/json".into(),
        ];
        let manifest = manifest.clone();
        async move {
            let refs: Vec<&str> = args.iter().map(String::as_str).collect();
            let s = Server::start(server_bin!(), &refs).await;
            std::fs::write(s.jobs_dir().join("flaky.toml"), &manifest).unwrap();
            std::fs::copy(job_wasm("probe"), s.jobs_dir().join("flaky.wasm")).unwrap();
            queuemgr_tests::wait_job_types(&s, "flaky", |v| v.to_string().contains("\"flaky\""))
                .await;
            s
        }
    };
    let a = start("a").await;
    let b = start("b").await;

    let trace = "4bf92f3577b34da6a3ce929d0e0e4736";
    let parent = "00f067aa0ba902b7";
    let body = json!({"command": "queue", "params": {"action": "add_job", "job_id": "flaky-1",
        "job_type": "flaky", "start": true, "max_attempts": 3,
        "params": {"op": "flaky", "path": "/state/count", "times": 2}}});
    let (code, v) = a
        .post_raw(
            "/api/v1/execute",
            body.to_string(),
            &[("traceparent", &format!("00-{trace}-{parent}-01"))],
        )
        .await;
    assert_eq!(code, 200, "{v}");
    let done = a
        .wait_status("flaky-1", "COMPLETED", Duration::from_secs(30))
        .await;
    assert_eq!(done["status"], "COMPLETED", "{done}");
    assert_eq!(
        done["trace_id"], trace,
        "get_status names the trace: {done}"
    );

    // The spans arrive in the exporters' next batches (every 5 s by default).
    let end = Instant::now() + Duration::from_secs(30);
    let of_job = |spans: &[Value]| -> Vec<Value> {
        spans
            .iter()
            .filter(|s| s["traceId"] == trace)
            .cloned()
            .collect()
    };
    let mut spans;
    loop {
        spans = of_job(&collector.spans());
        let runs = spans
            .iter()
            .filter(|s| s["name"].as_str().is_some_and(|n| n.starts_with("job.run")))
            .count();
        if runs >= 3 {
            break;
        }
        assert!(
            Instant::now() < end,
            "3 run spans expected in trace {trace}; got {spans:#?}\nall: {:#?}",
            collector.spans()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // One enqueue span, the request's child; every run and wait its child.
    let enqueue: Vec<&Value> = spans
        .iter()
        .filter(|s| s["name"] == "job.enqueue")
        .collect();
    assert_eq!(enqueue.len(), 1, "{spans:#?}");
    assert_eq!(enqueue[0]["parentSpanId"], parent, "{spans:#?}");
    assert_eq!(attr(enqueue[0], "host.id").as_deref(), Some("a"));
    let enqueue_id = enqueue[0]["spanId"].as_str().unwrap();
    let writes: Vec<&Value> = spans
        .iter()
        .filter(|s| s["name"] == "job.store_write")
        .collect();
    assert_eq!(writes.len(), 1, "the add's durable write: {spans:#?}");
    assert_eq!(writes[0]["parentSpanId"], enqueue_id, "{spans:#?}");
    assert_eq!(attr(writes[0], "db.system").as_deref(), Some("postgres"));
    let mut runs: Vec<&Value> = spans
        .iter()
        .filter(|s| s["name"] == "job.run flaky")
        .collect();
    runs.sort_by_key(|s| attr(s, "job.attempt"));
    assert_eq!(runs.len(), 3, "{spans:#?}");
    let waits = spans
        .iter()
        .filter(|s| s["name"] == "job.queue_wait")
        .count();
    assert_eq!(waits, 3, "a queue wait before each run: {spans:#?}");
    let mut hosts = std::collections::HashSet::new();
    for (i, run) in runs.iter().enumerate() {
        assert_eq!(run["parentSpanId"], enqueue_id, "{run:#}");
        assert_eq!(attr(run, "job.id").as_deref(), Some("flaky-1"));
        assert_eq!(attr(run, "job.type").as_deref(), Some("flaky"));
        assert_eq!(
            attr(run, "job.attempt").as_deref(),
            Some((i + 1).to_string().as_str())
        );
        let outcome = attr(run, "job.outcome").unwrap_or_default();
        let logs: Vec<String> = run["events"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|e| attr(e, "log.message"))
            .collect();
        if i < 2 {
            assert_eq!(outcome, "failed", "{run:#}");
            assert_eq!(run["status"]["code"], 2, "an error status: {run:#}");
            assert!(
                run["status"]["message"]
                    .as_str()
                    .is_some_and(|m| m.contains("fails on purpose")),
                "{run:#}"
            );
            assert!(
                logs.iter().any(|l| l.contains("fails")),
                "the job's log lines are span events: {run:#}"
            );
        } else {
            assert_eq!(outcome, "completed", "{run:#}");
            assert!(logs.iter().any(|l| l.contains("succeeds")), "{run:#}");
        }
        hosts.insert(attr(run, "host.id").unwrap_or_default());
    }
    assert!(
        hosts.iter().all(|h| h == "a" || h == "b"),
        "each run names its host: {hosts:?}"
    );
    drop((a, b));
    queuemgr_tests::drop_schemas(&url, &schema, std::slice::from_ref(&schema)).await;
}

/// A child job (one a flow's run enqueued) is part of its parent's trace: each child's run is a
/// span of the trace the parent's request started, under the parent's `job.enqueue` span.
#[tokio::test]
async fn a_child_job_runs_in_its_parents_trace() {
    let collector = Collector::start().await;
    let s = Server::start(
        server_bin!(),
        &[
            "--otlp-endpoint",
            &collector.url,
            "--otlp-protocol",
            "http/json",
        ],
    )
    .await;
    for t in ["order_flow", "order_item"] {
        std::fs::copy(job_wasm(t), s.jobs_dir().join(format!("{t}.wasm"))).unwrap();
    }
    queuemgr_tests::wait_job_types(&s, "order_flow, order_item", |v| {
        queuemgr_tests::type_info(v, "order_flow").is_some()
            && queuemgr_tests::type_info(v, "order_item").is_some()
    })
    .await;
    let trace = "0af7651916cd43dd8448eb211c80319c";
    let body = json!({"command": "queue", "params": {"action": "add_job", "job_id": "traced",
        "job_type": "order_flow", "start": true,
        "params": {"order_id": "t", "amount": 1, "items": [{"sku": "a"}, {"sku": "b"}], "auto_approve": true}}});
    let (code, v) = s
        .post_raw(
            "/api/v1/execute",
            body.to_string(),
            &[("traceparent", &format!("00-{trace}-b7ad6b7169203331-01"))],
        )
        .await;
    assert_eq!(code, 200, "{v}");
    let done = s
        .wait_status("traced", "COMPLETED", Duration::from_secs(30))
        .await;
    assert_eq!(done["status"], "COMPLETED", "{done}");
    let end = Instant::now() + Duration::from_secs(30);
    let spans = loop {
        let spans: Vec<Value> = collector
            .spans()
            .into_iter()
            .filter(|s| s["traceId"] == trace)
            .collect();
        let kids = spans
            .iter()
            .filter(|s| s["name"] == "job.run order_item")
            .count();
        let parents = spans
            .iter()
            .filter(|s| s["name"] == "job.run order_flow")
            .count();
        if kids >= 2 && parents >= 2 {
            break spans;
        }
        assert!(Instant::now() < end, "{spans:#?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let enqueue = spans
        .iter()
        .find(|s| s["name"] == "job.enqueue")
        .expect("the parent's enqueue span");
    let enqueue_id = enqueue["spanId"].as_str().unwrap();
    let mut ids = Vec::new();
    for kid in spans.iter().filter(|s| s["name"] == "job.run order_item") {
        assert_eq!(kid["parentSpanId"], enqueue_id, "{kid:#}");
        ids.push(attr(kid, "job.id").unwrap_or_default());
    }
    ids.sort();
    assert_eq!(ids, ["traced.item-0", "traced.item-1"]);
}
