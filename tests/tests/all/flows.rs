//! Workflows in the sandbox, end to end with real components (`example-jobs/order-flow`,
//! `order-item`), real HTTP and real `kill -9`: a job that charges (a durable step), fans out
//! to child jobs, suspends until they end, suspends until a person approves (an event), and
//! ships. Every effect is a line in a ledger file the flow writes through its grant; the tests
//! count them (a stored step never runs twice; a child is never enqueued twice).

use queuemgr_tests::{Server, job_wasm, server_bin};
use serde_json::{Value, json};
use std::path::Path;
use std::time::Duration;

const T: Duration = Duration::from_secs(30);

/// Installs the flow's job types in `s` with the ledger directory granted to `order_flow`.
async fn install(s: &Server, ledger: &Path) {
    let manifest = format!(
        "[[dirs]]\nhost = \"{}\"\nguest = \"/ledger\"\nmode = \"rw\"\n",
        ledger.display()
    );
    std::fs::write(s.jobs_dir().join("order_flow.toml"), manifest).unwrap();
    std::fs::copy(job_wasm("order_item"), s.jobs_dir().join("order_item.wasm")).unwrap();
    std::fs::copy(job_wasm("order_flow"), s.jobs_dir().join("order_flow.wasm")).unwrap();
    queuemgr_tests::wait_job_types(s, "order_flow and order_item", |v| {
        queuemgr_tests::type_info(v, "order_flow").is_some()
            && queuemgr_tests::type_info(v, "order_item").is_some()
    })
    .await;
}

fn ledger_lines(dir: &Path) -> Vec<String> {
    std::fs::read_to_string(dir.join("ledger.log"))
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

async fn add_order(s: &Server, id: &str, items: Value, extra: Value) -> Value {
    let mut params = json!({"order_id": id, "amount": 42.5, "items": items,
        "ledger": "/ledger/ledger.log"});
    if let (Some(p), Some(e)) = (params.as_object_mut(), extra.as_object()) {
        p.extend(e.clone());
    }
    s.queue(
        json!({"action": "add_job", "job_id": id, "job_type": "order_flow",
        "start": true, "params": params}),
    )
    .await
}

async fn wait_for_event_wait(s: &Server, id: &str) -> Value {
    let job = s
        .wait_job(id, |j| j["waiting_for"]["kind"] == "event", T)
        .await;
    assert_eq!(job["waiting_for"]["kind"], "event", "{job}");
    job
}

/// `queue_send_event`'s data (it must succeed).
async fn send(s: &Server, params: Value) -> Value {
    let v = s.rpc("queue_send_event", params.clone()).await;
    assert!(!failed(&v), "queue_send_event {params}: {v}");
    v["result"]["data"].clone()
}

/// Whether a JSON-RPC answer is a refusal (of the call or of its params).
fn failed(v: &Value) -> bool {
    v["error"].is_object() || v["result"]["error"].is_object() || v["result"]["success"] == false
}

async fn flow(s: &Server, id: &str) -> Value {
    let v = s.rpc("queue_get_flow", json!({"job_id": id})).await;
    assert!(!failed(&v), "queue_get_flow {id}: {v}");
    v["result"]["data"].clone()
}

#[tokio::test]
async fn an_order_flow_charges_once_fans_out_waits_for_approval_and_ships() {
    let s = Server::start(server_bin!(), &[]).await;
    let ledger = tempfile::tempdir().unwrap();
    install(&s, ledger.path()).await;
    add_order(
        &s,
        "o-1",
        json!([{"sku": "a"}, {"sku": "b", "qty": 2}, {"sku": "c"}]),
        json!({}),
    )
    .await;

    // Suspended on the approval: PENDING, holding no instance, its items done.
    let job = wait_for_event_wait(&s, "o-1").await;
    assert_eq!(job["status"], "PENDING", "{job}");
    assert_eq!(job["waiting_for"]["name"], "approval", "{job}");
    assert_eq!(job["steps"], json!(["charge", "wait:approval"]), "{job}");
    let flow = flow(&s, "o-1").await;
    assert_eq!(flow["count"], 4, "{flow}");
    assert_eq!(flow["edges"].as_array().map(Vec::len), Some(3), "{flow}");
    for i in 0..3 {
        let child = &flow["nodes"][i + 1];
        assert_eq!(child["job_id"], format!("o-1.item-{i}"), "{flow}");
        assert_eq!(child["parent_id"], "o-1", "{flow}");
        assert_eq!(child["status"], "completed", "{flow}");
    }
    // Starting a suspended job is refused: it is started already.
    let v = s
        .execute(json!({"command": "queue", "params": {"action": "start_job", "job_id": "o-1"}}))
        .await;
    assert_eq!(v["result"]["success"], false, "{v}");

    // The approval resumes it.
    let sent = send(
        &s,
        json!({"job_id": "o-1", "name": "approval", "payload": {"approved": true, "by": "ana"}}),
    )
    .await;
    assert_eq!(sent["resumed"], true, "{sent}");
    let done = s.wait_status("o-1", "COMPLETED", T).await;
    assert_eq!(done["status"], "COMPLETED", "{done}");
    let r = &done["result"];
    assert_eq!(r["status"], "shipped", "{done}");
    assert_eq!(r["approved_by"], "ana", "{done}");
    assert_eq!(
        r["items"],
        json!([{"sku": "a", "packed": 1}, {"sku": "b", "packed": 2}, {"sku": "c", "packed": 1}]),
        "{done}"
    );
    // A resumption is not a retry: one attempt, several runs.
    assert!(
        done.get("attempt").is_none() || done["attempt"] == 1,
        "{done}"
    );
    assert_eq!(ledger_lines(ledger.path()), ["charge o-1", "ship o-1"]);

    // An ended job takes no event.
    let late = s
        .rpc(
            "queue_send_event",
            json!({"job_id": "o-1", "name": "approval"}),
        )
        .await;
    assert!(failed(&late), "{late}");
}

#[tokio::test]
async fn events_reach_jobs_by_unique_key_and_early_events_wait_for_their_job() {
    let s = Server::start(server_bin!(), &[]).await;
    let ledger = tempfile::tempdir().unwrap();
    install(&s, ledger.path()).await;
    // Added but not started: the approval comes first, and is kept.
    s.queue(
        json!({"action": "add_job", "job_id": "o-early", "job_type": "order_flow",
        "unique_key": "order-7",
        "params": {"order_id": "7", "amount": 1, "items": [], "ledger": "/ledger/ledger.log"}}),
    )
    .await;
    let sent = send(
        &s,
        json!({"unique_key": "order-7", "name": "approval", "payload": {"approved": true, "by": "bo"}}),
    )
    .await;
    assert_eq!(sent["job_id"], "o-early", "{sent}");
    assert_eq!(sent["resumed"], false, "{sent}");
    s.queue(json!({"action": "start_job", "job_id": "o-early"}))
        .await;
    let done = s.wait_status("o-early", "COMPLETED", T).await;
    assert_eq!(done["result"]["approved_by"], "bo", "{done}");

    // A rejection ends the flow without shipping.
    add_order(&s, "o-no", json!([{"sku": "x"}]), json!({})).await;
    wait_for_event_wait(&s, "o-no").await;
    send(
        &s,
        json!({"job_id": "o-no", "name": "approval", "payload": {"approved": false}}),
    )
    .await;
    let done = s.wait_status("o-no", "COMPLETED", T).await;
    assert_eq!(done["result"]["status"], "rejected", "{done}");
    assert_eq!(
        ledger_lines(ledger.path()),
        ["charge 7", "ship 7", "charge o-no"]
    );

    // Bad events change nothing and say why.
    for (params, why) in [
        (json!({"name": "approval"}), "neither job_id nor unique_key"),
        (
            json!({"job_id": "o-no", "unique_key": "k", "name": "a"}),
            "both",
        ),
        (json!({"job_id": "nope", "name": "a"}), "unknown job"),
        (json!({"unique_key": "nope", "name": "a"}), "unknown key"),
        (json!({"job_id": "o-no"}), "no name"),
    ] {
        let v = s.rpc("queue_send_event", params.clone()).await;
        assert!(failed(&v), "{why}: {params} → {v}");
    }
}

#[tokio::test]
async fn a_failed_child_fails_its_parent_and_a_stopped_parent_stops_its_children() {
    let s = Server::start(server_bin!(), &[]).await;
    let ledger = tempfile::tempdir().unwrap();
    install(&s, ledger.path()).await;
    add_order(
        &s,
        "o-bad",
        json!([{"sku": "a"}, {"sku": "gone", "fail": true}]),
        json!({"auto_approve": true}),
    )
    .await;
    let done = s.wait_status("o-bad", "ERROR", T).await;
    assert_eq!(done["error"]["code"], "ITEM_FAILED", "{done}");
    assert!(
        done["error"]["message"]
            .as_str()
            .unwrap_or("")
            .contains("no gone left"),
        "{done}"
    );

    add_order(
        &s,
        "o-stop",
        json!([{"sku": "a", "sleep_ms": 60000}, {"sku": "b", "sleep_ms": 60000}]),
        json!({"auto_approve": true}),
    )
    .await;
    let job = s
        .wait_job("o-stop", |j| j["waiting_for"]["kind"] == "children", T)
        .await;
    assert_eq!(job["waiting_for"]["remaining"], 2, "{job}");
    for c in ["o-stop.item-0", "o-stop.item-1"] {
        s.wait_status(c, "RUNNING", T).await;
    }
    s.queue(json!({"action": "stop_job", "job_id": "o-stop"}))
        .await;
    for c in ["o-stop.item-0", "o-stop.item-1"] {
        let child = s.wait_status(c, "STOPPED", T).await;
        assert_eq!(child["status"], "STOPPED", "{child}");
    }
    let parent = s
        .queue(json!({"action": "get_status", "job_id": "o-stop"}))
        .await;
    assert_eq!(parent["status"]["status"], "STOPPED", "{parent}");
    assert!(parent["status"].get("waiting_for").is_none(), "{parent}");

    // With keep_children, the children go on.
    add_order(
        &s,
        "o-keep",
        json!([{"sku": "a", "sleep_ms": 1500}]),
        json!({"auto_approve": true}),
    )
    .await;
    s.wait_status("o-keep.item-0", "RUNNING", T).await;
    let v = s
        .rpc(
            "queue_stop_job",
            json!({"job_id": "o-keep", "keep_children": true}),
        )
        .await;
    assert!(!failed(&v), "{v}");
    let child = s.wait_status("o-keep.item-0", "COMPLETED", T).await;
    assert_eq!(child["status"], "COMPLETED", "kept running: {child}");
}

#[tokio::test]
async fn a_flow_resumes_after_kill_9_without_charging_twice() {
    let mut s = Server::start(server_bin!(), &[]).await;
    let ledger = tempfile::tempdir().unwrap();
    install(&s, ledger.path()).await;
    add_order(&s, "o-k", json!([{"sku": "a"}, {"sku": "b"}]), json!({})).await;
    wait_for_event_wait(&s, "o-k").await;
    s.kill9();
    s.restart().await;
    let job = wait_for_event_wait(&s, "o-k").await;
    assert_eq!(job["status"], "PENDING", "{job}");
    send(
        &s,
        json!({"job_id": "o-k", "name": "approval", "payload": {"approved": true, "by": "cy"}}),
    )
    .await;
    let done = s.wait_status("o-k", "COMPLETED", T).await;
    assert_eq!(done["result"]["approved_by"], "cy", "{done}");
    assert_eq!(ledger_lines(ledger.path()), ["charge o-k", "ship o-k"]);
    let flow = flow(&s, "o-k").await;
    assert_eq!(flow["count"], 3, "no child twice: {flow}");
}

#[tokio::test]
async fn a_flow_started_on_one_postgres_host_is_finished_by_another_after_kill_9() {
    let url = queuemgr_tests::postgres_url().await;
    let schema = format!("qmt{}_flows", std::process::id());
    let ledger = tempfile::tempdir().unwrap();
    let start = |host: &'static str| {
        let args = [
            "--store".to_string(),
            url.clone(),
            "--store-schema".into(),
            schema.clone(),
            "--host-id".into(),
            host.into(),
        ];
        let ledger = ledger.path().to_path_buf();
        async move {
            let refs: Vec<&str> = args.iter().map(String::as_str).collect();
            let s = Server::start(server_bin!(), &refs).await;
            install(&s, &ledger).await;
            s
        }
    };
    let mut a = start("a").await;
    add_order(
        &a,
        "o-pg",
        json!([{"sku": "a"}, {"sku": "b"}, {"sku": "c"}]),
        json!({}),
    )
    .await;
    wait_for_event_wait(&a, "o-pg").await;
    a.kill9();
    let b = start("b").await;
    let sent = send(
        &b,
        json!({"job_id": "o-pg", "name": "approval", "payload": {"approved": true, "by": "dee"}}),
    )
    .await;
    assert_eq!(sent["resumed"], true, "{sent}");
    let done = b.wait_status("o-pg", "COMPLETED", T).await;
    assert_eq!(done["status"], "COMPLETED", "{done}");
    assert_eq!(done["result"]["approved_by"], "dee", "{done}");
    assert_eq!(ledger_lines(ledger.path()), ["charge o-pg", "ship o-pg"]);
    let flow = flow(&b, "o-pg").await;
    assert_eq!(flow["count"], 4, "{flow}");
    assert_eq!(flow["by_status"]["completed"], 4, "{flow}");
    queuemgr_tests::drop_schemas(&url, &schema, std::slice::from_ref(&schema)).await;
}

#[tokio::test]
async fn a_component_built_against_wit_0_1_0_loads_and_runs_unchanged() {
    let s = Server::start(server_bin!(), &[]).await;
    std::fs::copy(job_wasm("legacy_v010"), s.jobs_dir().join("legacy.wasm")).unwrap();
    queuemgr_tests::wait_job_types(&s, "legacy", |v| {
        queuemgr_tests::type_info(v, "legacy").is_some()
    })
    .await;
    let bytes = std::fs::read(job_wasm("legacy_v010")).unwrap();
    let text = String::from_utf8_lossy(&bytes);
    assert!(
        text.contains("queuemgr:job/host@0.1.0"),
        "built against 0.1.0"
    );
    assert!(!text.contains("queuemgr:job/flow"), "no flow import");
    s.queue(
        json!({"action": "add_job", "job_id": "old-1", "job_type": "legacy",
        "start": true, "params": {"x": 1}}),
    )
    .await;
    let done = s.wait_status("old-1", "COMPLETED", T).await;
    assert_eq!(
        done["result"],
        json!({"job_id": "old-1", "params": {"x": 1}}),
        "{done}"
    );
}

/// FNV-1a, as `example-jobs/fan-out` hashes a leaf's id to decide whether it fails once.
fn fnv(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    })
}

async fn install_fan_out(s: &Server) {
    std::fs::copy(job_wasm("fan_out"), s.jobs_dir().join("fan_out.wasm")).unwrap();
    queuemgr_tests::wait_job_types(s, "fan_out", |v| {
        queuemgr_tests::type_info(v, "fan_out").is_some()
    })
    .await;
}

/// A tree of 1 + 10 + 100 + 1,000 jobs whose leaves fail once when their id hashes to 0 mod
/// 5: with two attempts each, every node completes; with one and failures tolerated, exactly
/// the unlucky leaves end in ERROR, and each parent counts them.
async fn a_tree_ends_as_its_policy_says(s: &Server, tag: &str) {
    install_fan_out(s).await;
    let ok = format!("{tag}-ok");
    let hurt = format!("{tag}-hurt");
    s.queue(json!({"action": "add_jobs", "start": true, "jobs": [
        {"job_id": ok, "job_type": "fan_out",
         "params": {"width": 10, "depth": 3, "fail_one_in": 5, "attempts": 2}},
        {"job_id": hurt, "job_type": "fan_out",
         "params": {"width": 10, "depth": 3, "fail_one_in": 5, "attempts": 1, "tolerate_failures": true}}
    ]}))
    .await;
    let long = Duration::from_secs(120);
    let ended =
        |j: &Value| ["COMPLETED", "ERROR", "STOPPED"].contains(&j["status"].as_str().unwrap_or(""));
    let done = s.wait_job(&ok, ended, long).await;
    assert_eq!(done["status"], "COMPLETED", "{done}");
    assert_eq!(done["result"]["leaves"], 1000, "{done}");
    assert_eq!(done["result"]["failed"], 0, "{done}");
    let done = s.wait_job(&hurt, ended, long).await;
    assert_eq!(done["status"], "COMPLETED", "{done}");
    let unlucky: Vec<String> = (0..10)
        .flat_map(|a| (0..10).flat_map(move |b| (0..10).map(move |c| (a, b, c))))
        .map(|(a, b, c)| format!("{hurt}.c{a}.c{b}.c{c}"))
        .filter(|id| fnv(id).is_multiple_of(5))
        .collect();
    assert!(!unlucky.is_empty());
    assert_eq!(done["result"]["failed"], unlucky.len(), "{done}");
    assert_eq!(done["result"]["leaves"], 1000 - unlucky.len(), "{done}");
    for root in [&ok, &hurt] {
        let flow = flow(s, root).await;
        assert_eq!(flow["count"], 1111, "{root}: every node once");
        for node in flow["nodes"].as_array().unwrap() {
            let id = node["job_id"].as_str().unwrap();
            let want = if root == &hurt && unlucky.iter().any(|u| u == id) {
                "failed"
            } else {
                "completed"
            };
            assert_eq!(node["status"], want, "{node}");
        }
    }
}

#[tokio::test]
async fn a_tree_of_1111_jobs_with_failures_ends_as_its_policy_says_locally() {
    let s = Server::start(server_bin!(), &["--retry-base-ms", "20"]).await;
    a_tree_ends_as_its_policy_says(&s, "tree").await;
}

#[tokio::test]
async fn a_tree_of_1111_jobs_with_failures_ends_as_its_policy_says_on_postgres() {
    let url = queuemgr_tests::postgres_url().await;
    let schema = format!("qmt{}_tree", std::process::id());
    let s = Server::start(
        server_bin!(),
        &[
            "--store",
            &url,
            "--store-schema",
            &schema,
            "--retry-base-ms",
            "20",
        ],
    )
    .await;
    a_tree_ends_as_its_policy_says(&s, "pgtree").await;
    drop(s);
    queuemgr_tests::drop_schemas(&url, &schema, std::slice::from_ref(&schema)).await;
}

async fn add_flow(s: &Server, params: Value) -> Value {
    let v = s.rpc("queue_add_flow", params.clone()).await;
    assert!(!failed(&v), "queue_add_flow {params}: {v}");
    v["result"]["data"].clone()
}

/// `add_flow` (a DAG by keys, all or none, each job given its dependencies' results as
/// `inputs`), `depends_on` on `add_job`, and what each `on_dependency_failure` does down the
/// graph.
async fn dependencies_order_jobs_and_their_failures_follow_the_policy(s: &Server) {
    let ledger = tempfile::tempdir().unwrap();
    install(s, ledger.path()).await;
    let v = add_flow(
        s,
        json!({"flow_id": "f1", "jobs": [
            {"key": "ship", "job_type": "order_item", "params": {"sku": "box"}, "depends_on": ["a", "b"]},
            {"key": "a", "job_type": "order_item", "params": {"sku": "a"}},
            {"key": "b", "job_type": "order_item", "params": {"sku": "b", "qty": 2, "sleep_ms": 200}}
        ]}),
    )
    .await;
    assert_eq!(v["count"], 3, "{v}");
    let done = s.wait_status("f1.ship", "COMPLETED", T).await;
    assert_eq!(
        done["result"]["inputs"],
        json!({"a": {"sku": "a", "packed": 1}, "b": {"sku": "b", "packed": 2}}),
        "{done}"
    );
    let b = s.wait_status("f1.b", "COMPLETED", T).await;
    assert!(
        done["started_at"].as_str() >= b["completed_at"].as_str(),
        "ran after b: {done} {b}"
    );
    let flow = flow(s, "f1").await;
    assert_eq!(flow["count"], 3, "{flow}");
    assert_eq!(
        flow["edges"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["kind"] == "dependency")
            .count(),
        2,
        "{flow}"
    );

    // A failed dependency, each policy, and a chain.
    add_flow(
        s,
        json!({"flow_id": "f2", "jobs": [
            {"key": "a", "job_type": "order_item", "params": {"sku": "a", "fail": true, "sleep_ms": 100}},
            {"key": "fails", "job_type": "order_item", "params": {"sku": "x"}, "depends_on": ["a"]},
            {"key": "skips", "job_type": "order_item", "params": {"sku": "x"}, "depends_on": ["a"], "on_dependency_failure": "skip"},
            {"key": "runs", "job_type": "order_item", "params": {"sku": "x"}, "depends_on": ["a"], "on_dependency_failure": "run"},
            {"key": "chain", "job_type": "order_item", "params": {"sku": "x"}, "depends_on": ["fails"]}
        ]}),
    )
    .await;
    let ended =
        |j: &Value| ["COMPLETED", "ERROR", "STOPPED"].contains(&j["status"].as_str().unwrap_or(""));
    let fails = s.wait_job("f2.fails", ended, T).await;
    assert_eq!(fails["status"], "ERROR", "{fails}");
    assert_eq!(fails["error"]["code"], "DEPENDENCY_FAILED", "{fails}");
    let skips = s.wait_job("f2.skips", ended, T).await;
    assert_eq!(skips["status"], "STOPPED", "{skips}");
    assert_eq!(skips["result"]["skipped"], true, "{skips}");
    let runs = s.wait_job("f2.runs", ended, T).await;
    assert_eq!(runs["status"], "COMPLETED", "{runs}");
    assert_eq!(runs["result"]["inputs"], json!({"a": null}), "{runs}");
    let chain = s.wait_job("f2.chain", ended, T).await;
    assert_eq!(chain["status"], "ERROR", "{chain}");
    assert_eq!(chain["error"]["code"], "DEPENDENCY_FAILED", "{chain}");

    // Cycles, unknown keys and unknown ids are refused, and nothing is added.
    for (params, why) in [
        (
            json!({"flow_id": "f3", "jobs": [
                {"key": "a", "job_type": "order_item", "params": {"sku": "a"}, "depends_on": ["b"]},
                {"key": "b", "job_type": "order_item", "params": {"sku": "b"}, "depends_on": ["a"]}]}),
            "cycle",
        ),
        (
            json!({"flow_id": "f3", "jobs": [
                {"key": "a", "job_type": "order_item", "params": {"sku": "a"}, "depends_on": ["zz"]}]}),
            "unknown key",
        ),
        (
            json!({"flow_id": "f3", "jobs": [
                {"key": "a", "job_type": "order_item", "params": {"sku": "a"}},
                {"key": "a", "job_type": "order_item", "params": {"sku": "a"}}]}),
            "key twice",
        ),
    ] {
        let v = s.rpc("queue_add_flow", params.clone()).await;
        assert!(failed(&v), "{why}: {v}");
        let msg = v.to_string();
        assert!(
            msg.contains(match why {
                "cycle" => "cycle among the jobs a, b",
                "unknown key" => "'zz'",
                _ => "twice",
            }),
            "{why}: {v}"
        );
        let r = s
            .execute(
                json!({"command": "queue", "params": {"action": "get_status", "job_id": "f3.a"}}),
            )
            .await;
        assert_eq!(r["result"]["success"], false, "{why}: nothing added: {r}");
    }
    let v = s
        .execute(
            json!({"command": "queue", "params": {"action": "add_job", "job_id": "d1",
            "job_type": "order_item", "params": {"sku": "d"}, "depends_on": ["no-such-job"]}}),
        )
        .await;
    assert!(failed(&v) && v.to_string().contains("no-such-job"), "{v}");

    // add_job with depends_on on a job nobody started: it waits for it.
    s.queue(
        json!({"action": "add_job", "job_id": "first", "job_type": "order_item",
        "params": {"sku": "1"}}),
    )
    .await;
    s.queue(
        json!({"action": "add_job", "job_id": "second", "job_type": "order_item",
        "params": {"sku": "2"}, "depends_on": ["first"]}),
    )
    .await;
    let second = s
        .queue(json!({"action": "get_status", "job_id": "second"}))
        .await;
    assert_eq!(
        second["status"]["waiting_for"]["kind"], "dependencies",
        "{second}"
    );
    s.queue(json!({"action": "start_job", "job_id": "first"}))
        .await;
    let second = s.wait_status("second", "COMPLETED", T).await;
    assert_eq!(second["result"]["inputs"]["first"]["sku"], "1", "{second}");
}

#[tokio::test]
async fn dependencies_order_jobs_and_failures_follow_the_policy_locally() {
    let s = Server::start(server_bin!(), &[]).await;
    dependencies_order_jobs_and_their_failures_follow_the_policy(&s).await;
}

#[tokio::test]
async fn dependencies_order_jobs_and_failures_follow_the_policy_on_postgres() {
    let url = queuemgr_tests::postgres_url().await;
    let schema = format!("qmt{}_deps", std::process::id());
    let s = Server::start(server_bin!(), &["--store", &url, "--store-schema", &schema]).await;
    dependencies_order_jobs_and_their_failures_follow_the_policy(&s).await;
    drop(s);
    queuemgr_tests::drop_schemas(&url, &schema, std::slice::from_ref(&schema)).await;
}

/// `queuemgr flow ID` draws the flow as a tree; `queuemgr send-event` approves it.
#[tokio::test]
async fn the_cli_draws_a_flow_and_sends_its_approval() {
    let s = Server::start(server_bin!(), &[]).await;
    let ledger = tempfile::tempdir().unwrap();
    install(&s, ledger.path()).await;
    add_order(&s, "o-cli", json!([{"sku": "a"}, {"sku": "b"}]), json!({})).await;
    wait_for_event_wait(&s, "o-cli").await;
    let run = |args: Vec<&'static str>| {
        let url = s.url.clone();
        async move {
            let out = tokio::task::spawn_blocking(move || {
                std::process::Command::new(server_bin!())
                    .args(&args)
                    .env("QUEUEMGR_URL", url)
                    .env_remove("QUEUEMGR_API_KEY")
                    .output()
                    .expect("run queuemgr")
            })
            .await
            .unwrap();
            (
                out.status.code(),
                String::from_utf8_lossy(&out.stdout).to_string(),
                String::from_utf8_lossy(&out.stderr).to_string(),
            )
        }
    };
    let (code, out, err) = run(vec!["flow", "o-cli"]).await;
    assert_eq!(code, Some(0), "{out}{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert!(
        lines[0].starts_with("o-cli  order_flow  PENDING  (Waiting for event 'approval'"),
        "{out}"
    );
    assert!(
        lines[1].starts_with("  o-cli.item-0  order_item  COMPLETED"),
        "{out}"
    );
    assert!(
        lines[2].starts_with("  o-cli.item-1  order_item  COMPLETED"),
        "{out}"
    );
    assert!(lines[3].starts_with("3 jobs: "), "{out}");
    let (code, out, err) = run(vec![
        "send-event",
        "o-cli",
        "approval",
        "--payload",
        r#"{"approved": true, "by": "cli"}"#,
    ])
    .await;
    assert_eq!(code, Some(0), "{out}{err}");
    assert_eq!(out.trim(), "o-cli: event 'approval' sent; the job resumes");
    let done = s.wait_status("o-cli", "COMPLETED", T).await;
    assert_eq!(done["result"]["approved_by"], "cli", "{done}");
    let (code, _, err) = run(vec!["send-event", "o-cli", "approval", "--payload", "{"]).await;
    assert_ne!(code, Some(0));
    assert!(err.contains("--payload is not JSON"), "{err}");
    let (code, _, err) = run(vec!["send-event", "o-cli", "approval"]).await;
    assert_ne!(code, Some(0), "an ended job takes no event");
    assert!(err.contains("o-cli"), "{err}");
}

/// A child running when its host is killed, with no attempt left, ends STOPPED (interrupted)
/// at the restart; its parent, suspended on it, is told in the same step and runs again at
/// once (here: it fails, as a failed item fails the order) rather than waiting for ever.
#[tokio::test]
async fn a_child_interrupted_by_kill_9_wakes_its_waiting_parent_at_the_restart() {
    let mut s = Server::start(server_bin!(), &[]).await;
    let ledger = tempfile::tempdir().unwrap();
    install(&s, ledger.path()).await;
    add_order(
        &s,
        "o-int",
        json!([{"sku": "a", "sleep_ms": 60000}]),
        json!({"auto_approve": true}),
    )
    .await;
    s.wait_job("o-int", |j| j["waiting_for"]["kind"] == "children", T)
        .await;
    s.wait_status("o-int.item-0", "RUNNING", T).await;
    s.kill9();
    s.restart().await;
    let ended =
        |j: &Value| ["COMPLETED", "ERROR", "STOPPED"].contains(&j["status"].as_str().unwrap_or(""));
    let child = s.wait_job("o-int.item-0", ended, T).await;
    assert_eq!(child["status"], "STOPPED", "{child}");
    let parent = s.wait_job("o-int", ended, T).await;
    assert_eq!(parent["status"], "ERROR", "{parent}");
    assert_eq!(parent["error"]["code"], "ITEM_FAILED", "{parent}");
}

/// A run joins its own children only: joining another job (here, one added by someone else)
/// ends the run as trapped, and the other job's result is not read.
#[tokio::test]
async fn a_job_cannot_join_a_job_that_is_not_its_child() {
    let s = Server::start(server_bin!(), &[]).await;
    install_fan_out(&s).await;
    s.queue(
        json!({"action": "add_job", "job_id": "secret", "job_type": "noop",
        "start": true, "params": {}}),
    )
    .await;
    s.wait_status("secret", "COMPLETED", T).await;
    s.queue(
        json!({"action": "add_job", "job_id": "nosy", "job_type": "fan_out",
        "start": true, "params": {"join_id": "secret"}}),
    )
    .await;
    let ended =
        |j: &Value| ["COMPLETED", "ERROR", "STOPPED"].contains(&j["status"].as_str().unwrap_or(""));
    let j = s.wait_job("nosy", ended, T).await;
    assert_eq!(j["status"], "ERROR", "{j}");
    assert_eq!(j["error"]["code"], "TRAPPED", "{j}");
    assert!(
        j["error"]["message"]
            .as_str()
            .unwrap_or("")
            .contains("'secret' is not a child of this job"),
        "{j}"
    );
}
