//! Starts past `--max-concurrent-jobs` wait their turn in FIFO order and read PENDING
//! meanwhile; a waiting job can be stopped; stop and delete never block other calls.

use queuemgr_tests::{Server, server_bin};
use serde_json::json;
use std::time::{Duration, Instant};

/// More jobs may run at once than the instance pool holds: the ones past the pool wait for an
/// instance (and can still be stopped meanwhile) instead of failing.
#[tokio::test]
async fn runs_past_the_instance_pool_wait_for_an_instance() {
    // 6 instances, 4 kept for loading job types: 2 runs at a time, 8 jobs may be RUNNING.
    let s = Server::start(
        server_bin!(),
        &["--max-concurrent-jobs", "8", "--max-instances", "6"],
    )
    .await;
    for i in 0..8 {
        s.queue(
            json!({"action": "add_job", "job_id": format!("p{i}"), "job_type": "noop",
                       "params": {"sleep_ms": 300}, "start": true}),
        )
        .await;
    }
    s.queue(json!({"action": "stop_job", "job_id": "p7"})).await;
    for i in 0..7 {
        let job = s
            .wait_job(
                &format!("p{i}"),
                |j| {
                    j["status"]
                        .as_str()
                        .is_some_and(|st| st != "PENDING" && st != "RUNNING")
                },
                Duration::from_secs(30),
            )
            .await;
        assert_eq!(job["status"], "COMPLETED", "{job}");
    }
    let stopped = s
        .wait_status("p7", "STOPPED", Duration::from_secs(10))
        .await;
    assert_eq!(stopped["status"], "STOPPED", "{stopped}");
}

#[tokio::test]
async fn starts_past_the_limit_wait_in_fifo_order() {
    let s = Server::start(server_bin!(), &["--max-concurrent-jobs", "2"]).await;
    for i in 0..6 {
        s.queue(json!({"action": "add_job", "job_id": format!("j{i}"), "job_type": "noop", "params": {"sleep_ms": 400}})).await;
    }
    for i in 0..6 {
        s.queue(json!({"action": "start_job", "job_id": format!("j{i}")}))
            .await;
    }
    let list = s.queue(json!({"action": "list_jobs"})).await;
    let status: Vec<String> = list["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["status"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        status,
        [
            "RUNNING", "RUNNING", "PENDING", "PENDING", "PENDING", "PENDING"
        ]
    );
    assert_eq!(list["jobs"][2]["description"], "Waiting for a free slot");
    // A second start of a waiting job is refused; a waiting job can be stopped.
    let v = s
        .execute(json!({"command": "queue", "params": {"action": "start_job", "job_id": "j3"}}))
        .await;
    assert_eq!(
        v["result"]["error"]["data"]["domain_code"],
        "JOB_STATE_INVALID"
    );
    s.queue(json!({"action": "stop_job", "job_id": "j3"})).await;
    assert_eq!(
        s.wait_status("j3", "STOPPED", Duration::from_secs(1)).await["status"],
        "STOPPED"
    );
    let mut started = Vec::new();
    for id in ["j0", "j1", "j2", "j4", "j5"] {
        let j = s
            .wait_status(id, "COMPLETED", Duration::from_secs(10))
            .await;
        assert_eq!(j["status"], "COMPLETED", "{id}: {j}");
        started.push((j["started_at"].as_str().unwrap().to_string(), id));
    }
    let mut by_start = started.clone();
    by_start.sort();
    let order: Vec<&str> = by_start.iter().map(|(_, id)| *id).collect();
    assert_eq!(&order[2..], ["j2", "j4", "j5"], "FIFO: {started:?}");
    // The stopped waiting job never ran.
    let j3 = s
        .queue(json!({"action": "get_status", "job_id": "j3"}))
        .await;
    assert!(j3["status"].get("started_at").is_none(), "{j3}");
}

#[tokio::test]
async fn stopping_a_busy_guest_does_not_block_other_calls() {
    let s = Server::start(server_bin!(), &[]).await;
    for i in 0..4 {
        let id = format!("spin{i}");
        s.queue(json!({"action": "add_job", "job_id": id, "job_type": "hostile", "params": {"mode": "spin"}})).await;
        s.queue(json!({"action": "start_job", "job_id": id})).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    // While four guests spin on two cores, status calls still answer.
    let t = Instant::now();
    for _ in 0..20 {
        s.queue(json!({"action": "get_status", "job_id": "spin0"}))
            .await;
    }
    assert!(
        t.elapsed() < Duration::from_secs(5),
        "status calls starved: {:?}",
        t.elapsed()
    );
    let stops: Vec<_> = (0..4)
        .map(|i| {
            let url = s.url.clone();
            tokio::spawn(async move {
                let body = json!({"command": "queue", "params": {"action": "stop_job", "job_id": format!("spin{i}")}});
                reqwest::Client::new().post(format!("{url}/api/v1/execute")).json(&body).send().await.unwrap().json::<serde_json::Value>().await.unwrap()
            })
        })
        .collect();
    for st in stops {
        assert_eq!(st.await.unwrap()["result"]["success"], true);
    }
    for i in 0..4 {
        let j = s
            .queue(json!({"action": "get_status", "job_id": format!("spin{i}")}))
            .await;
        assert_eq!(j["status"]["status"], "STOPPED");
    }
}

/// The job store's semantics over HTTP: priorities, `run_at`/`delay_secs`, `unique_key`,
/// `start: true`, retries with their errors kept, `add_jobs` batches and paged lists — on both
/// the seed's `queue` command and the framework's `queue_*` commands.
#[tokio::test]
async fn priorities_order_the_jobs_waiting_for_a_slot() {
    let s = Server::start(server_bin!(), &["--max-concurrent-jobs", "1"]).await;
    // One long job holds the slot; then three wait, the highest priority runs first.
    s.queue(json!({"action": "add_job", "job_id": "hold", "job_type": "noop", "params": {"sleep_ms": 300}, "start": true})).await;
    for (id, prio) in [("low", 0), ("high", 10), ("mid", 5)] {
        let v = s.queue(json!({"action": "add_job", "job_id": id, "job_type": "noop", "params": {"sleep_ms": 10}, "priority": prio, "start": true})).await;
        assert_eq!(v["status"], "PENDING", "{v}");
    }
    let j = s
        .queue(json!({"action": "get_status", "job_id": "high"}))
        .await;
    assert_eq!(j["status"]["priority"], 10);
    assert_eq!(j["status"]["description"], "Waiting for a free slot");
    let mut started = Vec::new();
    for id in ["low", "high", "mid"] {
        let j = s
            .wait_status(id, "COMPLETED", Duration::from_secs(10))
            .await;
        assert_eq!(j["status"], "COMPLETED", "{j}");
        started.push((j["started_at"].as_str().unwrap().to_string(), id));
    }
    started.sort();
    let order: Vec<&str> = started.iter().map(|(_, id)| *id).collect();
    assert_eq!(order, ["high", "mid", "low"]);
}

#[tokio::test]
async fn scheduled_unique_retried_and_batched_jobs() {
    let s = Server::start(server_bin!(), &["--retry-base-ms", "20"]).await;
    // delay_secs: started now, runs later, reads PENDING with scheduled_at meanwhile.
    let t = Instant::now();
    let v = s.queue(json!({"action": "add_job", "job_id": "later", "job_type": "noop", "params": {}, "delay_secs": 0.6, "start": true})).await;
    assert_eq!(v["status"], "PENDING", "{v}");
    let j = s
        .queue(json!({"action": "get_status", "job_id": "later"}))
        .await;
    assert!(j["status"]["scheduled_at"].is_string(), "{j}");
    assert!(
        j["status"]["description"]
            .as_str()
            .unwrap()
            .starts_with("Scheduled for "),
        "{j}"
    );
    let done = s
        .wait_status("later", "COMPLETED", Duration::from_secs(5))
        .await;
    assert_eq!(done["status"], "COMPLETED");
    assert!(
        t.elapsed() >= Duration::from_millis(550),
        "ran before its time: {:?}",
        t.elapsed()
    );
    // run_at in the past runs at once; a bad run_at is a clear param error that adds nothing.
    let v = s.rpc("queue_add_job", json!({"job_type": "noop", "job_id": "past", "run_at": "2020-01-01T00:00:00Z", "start": true})).await;
    assert_eq!(v["result"]["data"]["status"], "running", "{v}");
    let v = s
        .rpc(
            "queue_add_job",
            json!({"job_type": "noop", "job_id": "bad", "run_at": "tomorrow"}),
        )
        .await;
    assert_eq!(v["error"]["code"], -32602, "{v}");
    assert_eq!(v["error"]["data"]["field"], "run_at", "{v}");
    assert_eq!(
        s.rpc("queue_get_job_status", json!({"job_id": "bad"}))
            .await["result"]["error"]["data"]["domain_code"],
        "JOB_NOT_FOUND"
    );

    // unique_key: a second add while the first lives returns the first.
    let v = s.queue(json!({"action": "add_job", "job_id": "u1", "job_type": "noop", "params": {"sleep_ms": 2000}, "unique_key": "nightly", "start": true})).await;
    assert!(v.get("duplicate").is_none(), "{v}");
    let v = s.queue(json!({"action": "add_job", "job_id": "u2", "job_type": "noop", "params": {}, "unique_key": "nightly"})).await;
    assert_eq!(v["duplicate"], true, "{v}");
    assert_eq!(v["job_id"], "u1");
    let v = s
        .rpc(
            "queue_add_job",
            json!({"job_type": "noop", "job_id": "u3", "unique_key": "nightly"}),
        )
        .await;
    assert_eq!(v["result"]["data"]["duplicate"], true, "{v}");
    assert_eq!(v["result"]["data"]["job_id"], "u1");
    assert_eq!(
        s.execute(json!({"command": "queue", "params": {"action": "get_status", "job_id": "u2"}}))
            .await["result"]["success"],
        false
    );
    s.queue(json!({"action": "stop_job", "job_id": "u1"})).await;
    let v = s.queue(json!({"action": "add_job", "job_id": "u4", "job_type": "noop", "params": {}, "unique_key": "nightly"})).await;
    assert!(
        v.get("duplicate").is_none(),
        "the key is free once u1 ended: {v}"
    );

    // Retries: a retryable error is tried max_attempts times; every attempt's error is kept.
    s.queue(json!({"action": "add_job", "job_id": "flaky", "job_type": "failing", "params": {"code": "UPSTREAM", "retryable": true}, "max_attempts": 3, "start": true})).await;
    let j = s
        .wait_status("flaky", "ERROR", Duration::from_secs(10))
        .await;
    assert_eq!(j["status"], "ERROR", "{j}");
    assert_eq!(j["attempt"], 3, "{j}");
    assert_eq!(j["max_attempts"], 3);
    let errors = j["errors"].as_array().unwrap();
    assert_eq!(
        errors
            .iter()
            .map(|e| e["attempt"].as_u64().unwrap())
            .collect::<Vec<_>>(),
        [1, 2, 3]
    );
    assert_eq!(errors[0]["error"]["code"], "UPSTREAM");
    // Not retryable: one attempt only.
    s.queue(json!({"action": "add_job", "job_id": "hard", "job_type": "failing", "params": {"code": "BAD_INPUT"}, "max_attempts": 3, "start": true})).await;
    let j = s
        .wait_status("hard", "ERROR", Duration::from_secs(10))
        .await;
    assert_eq!(j["attempt"], 1, "{j}");

    // add_jobs: one durable write; ids generated when absent; one bad job refuses the batch.
    let jobs: Vec<_> = (0..50)
        .map(|i| json!({"job_type": "noop", "params": {}, "priority": i % 3}))
        .collect();
    let v = s
        .queue(json!({"action": "add_jobs", "jobs": jobs, "start": true}))
        .await;
    assert_eq!(v["count"], 50, "{v}");
    assert_eq!(v["added"], 50);
    let ids: Vec<String> = v["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["job_id"].as_str().unwrap().to_string())
        .collect();
    for id in &ids {
        assert_eq!(
            s.wait_status(id, "COMPLETED", Duration::from_secs(10))
                .await["status"],
            "COMPLETED"
        );
    }
    let bad = s
        .execute(json!({"command": "queue", "params": {"action": "add_jobs", "jobs": [
            {"job_id": "ok1", "job_type": "my_job", "params": {"task_name": "a", "duration": 1}},
            {"job_id": "bad1", "job_type": "my_job", "params": {"task_name": "b", "duration": "x"}}]}}))
        .await;
    let e = &bad["error"];
    assert_eq!(e["code"], -32602, "{bad}");
    assert_eq!(e["data"]["field"], "jobs[1].params.duration", "{bad}");
    assert_eq!(
        s.execute(json!({"command": "queue", "params": {"action": "get_status", "job_id": "ok1"}}))
            .await["result"]["success"],
        false,
        "nothing of a refused batch is added"
    );

    // Paged lists, newest first, by type.
    let p1 = s
        .queue(json!({"action": "list_jobs", "job_type": "noop", "order": "newest", "limit": 20}))
        .await;
    assert_eq!(p1["count"], 20, "{p1}");
    assert_eq!(p1["jobs"][0]["job_id"], ids[49].as_str());
    let cursor = p1["next_cursor"].as_str().expect("a next page").to_string();
    let p2 = s.queue(json!({"action": "list_jobs", "job_type": "noop", "order": "newest", "limit": 20, "cursor": cursor})).await;
    assert_eq!(p2["jobs"][0]["job_id"], ids[29].as_str(), "{p2}");
    let total = p1["total_count"].as_u64().unwrap();
    let v = s
        .rpc(
            "queue_list_jobs",
            json!({"job_type": "noop", "limit": 1000, "order": "oldest"}),
        )
        .await;
    assert_eq!(v["result"]["data"]["total_count"].as_u64().unwrap(), total);
    assert_eq!(
        v["result"]["data"]["jobs"].as_array().unwrap().len() as u64,
        total
    );
}
