//! Starts past `--max-concurrent-jobs` wait their turn in FIFO order and read PENDING
//! meanwhile; a waiting job can be stopped; stop and delete never block other calls.

use queuemgr_tests::{Server, server_bin};
use serde_json::json;
use std::time::{Duration, Instant};

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
