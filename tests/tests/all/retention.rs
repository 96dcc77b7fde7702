//! Retention and compaction in the background: TTLs per terminal status, the cap on terminal
//! jobs, expiry of never-started jobs, and a registry rewritten once dead records dominate —
//! all surviving a restart.

use queuemgr_tests::{Server, server_bin};
use serde_json::json;
use std::time::{Duration, Instant};

async fn exists(s: &Server, id: &str) -> bool {
    let v = s
        .execute(json!({"command": "queue", "params": {"action": "get_status", "job_id": id}}))
        .await;
    v["result"]["success"] == true
}

async fn wait_gone(s: &Server, id: &str) {
    let end = Instant::now() + Duration::from_secs(15);
    while exists(s, id).await {
        assert!(Instant::now() < end, "{id} was never purged");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn ttls_cap_and_compaction() {
    let mut s = Server::start(
        server_bin!(),
        &[
            "--completed-ttl-secs",
            "1",
            "--pending-ttl-secs",
            "2",
            "--deleted-ttl-secs",
            "1",
            "--maintenance-interval-secs",
            "1",
            // Low enough that the registry left after the last TTL removal (one live
            // job, a few removal lines) still qualifies: compaction then always ends
            // with one line per live job, whenever an earlier compaction ran.
            "--compact-min-records",
            "4",
            "--compact-ratio",
            "2",
        ],
    )
    .await;
    s.queue(json!({"action": "add_job", "job_id": "done", "job_type": "noop"}))
        .await;
    s.queue(json!({"action": "start_job", "job_id": "done"}))
        .await;
    s.queue(json!({"action": "add_job", "job_id": "idle", "job_type": "noop"}))
        .await;
    s.queue(json!({"action": "add_job", "job_id": "failed", "job_type": "failing"}))
        .await;
    s.queue(json!({"action": "start_job", "job_id": "failed"}))
        .await;
    for i in 0..30 {
        let id = format!("d{i}");
        s.queue(json!({"action": "add_job", "job_id": id, "job_type": "noop"}))
            .await;
        s.queue(json!({"action": "delete_job", "job_id": id})).await;
    }
    wait_gone(&s, "done").await;
    wait_gone(&s, "d29").await;
    wait_gone(&s, "idle").await;
    // ERROR jobs have no TTL here: kept.
    assert!(exists(&s, "failed").await);
    // The registry was compacted: one line per live job (plus anything written since).
    let end = Instant::now() + Duration::from_secs(10);
    loop {
        let lines = std::fs::read_to_string(s.registry())
            .unwrap()
            .lines()
            .count();
        if lines <= 3 {
            break;
        }
        assert!(
            Instant::now() < end,
            "registry never compacted: {lines} lines"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    s.restart().await;
    assert!(!exists(&s, "done").await && !exists(&s, "d3").await && !exists(&s, "idle").await);
    assert!(exists(&s, "failed").await);
}

#[tokio::test]
async fn the_terminal_job_cap_removes_the_oldest_first() {
    let s = Server::start(
        server_bin!(),
        &[
            "--max-terminal-jobs",
            "3",
            "--maintenance-interval-secs",
            "1",
        ],
    )
    .await;
    for i in 0..6 {
        let id = format!("t{i}");
        s.queue(json!({"action": "add_job", "job_id": id, "job_type": "noop"}))
            .await;
        s.queue(json!({"action": "start_job", "job_id": id})).await;
        s.wait_status(&id, "COMPLETED", Duration::from_secs(5))
            .await;
    }
    wait_gone(&s, "t2").await;
    for i in 0..3 {
        assert!(!exists(&s, &format!("t{i}")).await);
    }
    for i in 3..6 {
        assert!(
            exists(&s, &format!("t{i}")).await,
            "t{i} is among the newest three"
        );
    }
}
