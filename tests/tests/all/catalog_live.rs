//! The jobs directory while the server runs: a `.wasm` added, replaced, broken and removed,
//! each taking effect without a restart; running jobs finish on the code they started with; a
//! broken file never affects the other job types; a restart does not recompile.

use queuemgr_tests::{
    Server, broken, job_wasm, other_world_wasm, server_bin, wait_job_types as wait_for,
};
use serde_json::{Value, json};
use std::time::Duration;

fn has_type(v: &Value, name: &str) -> bool {
    v["job_types"]
        .as_array()
        .unwrap()
        .iter()
        .any(|t| t["job_type"] == name)
}

fn type_info<'a>(v: &'a Value, name: &str) -> &'a Value {
    queuemgr_tests::type_info(v, name).expect("the type is loaded")
}

#[tokio::test]
async fn files_added_replaced_broken_and_removed_while_serving() {
    let s = Server::start(server_bin!(), &[]).await;
    let dir = s.jobs_dir();

    // Added: a new file becomes a job type.
    std::fs::copy(job_wasm("my_job"), dir.join("slow.wasm")).unwrap();
    let v = wait_for(&s, "slow loaded", |v| has_type(v, "slow")).await;
    assert_eq!(type_info(&v, "slow")["name"], "MyJob");

    // A job of that type runs; then the file is replaced while it runs.
    s.queue(json!({"action": "add_job", "job_id": "j1", "job_type": "slow", "params": {"task_name": "old code", "duration": 2}})).await;
    s.queue(json!({"action": "start_job", "job_id": "j1"}))
        .await;
    std::fs::copy(job_wasm("noop"), dir.join("slow.wasm.tmp")).unwrap();
    std::fs::rename(dir.join("slow.wasm.tmp"), dir.join("slow.wasm")).unwrap();
    let v = wait_for(&s, "slow replaced", |v| {
        has_type(v, "slow") && type_info(v, "slow")["name"] == "noop"
    })
    .await;
    assert_eq!(type_info(&v, "slow")["name"], "noop");
    // The running job finishes on the old code; a new job gets the new code.
    let j1 = s
        .wait_status("j1", "COMPLETED", Duration::from_secs(10))
        .await;
    assert_eq!(j1["result"]["task_name"], "old code", "{j1}");
    s.queue(json!({"action": "add_job", "job_id": "j2", "job_type": "slow", "params": {}}))
        .await;
    s.queue(json!({"action": "start_job", "job_id": "j2"}))
        .await;
    assert_eq!(
        s.wait_status("j2", "COMPLETED", Duration::from_secs(5))
            .await["result"],
        json!({})
    );

    // Broken files: listed with their error, never affecting the others.
    std::fs::write(dir.join("garbage.wasm"), b"this is not wasm").unwrap();
    std::fs::write(dir.join("core.wasm"), b"\0asm\x01\0\0\0").unwrap();
    std::fs::write(dir.join("empty.wasm"), b"").unwrap();
    let bytes = std::fs::read(job_wasm("noop")).unwrap();
    std::fs::write(dir.join("truncated.wasm"), &bytes[..bytes.len() / 3]).unwrap();
    std::fs::copy(other_world_wasm(), dir.join("command.wasm")).unwrap();
    // A copy is seen while it is written (an empty or short file first): wait until the
    // listing has caught up with the files as they ended up.
    let v = wait_for(&s, "five broken files, as written", |v| {
        v["broken"].as_array().unwrap().len() == 5
            && broken(v, "command").is_some_and(|b| {
                b["error"]
                    .as_str()
                    .is_some_and(|e| e.contains("queuemgr:job world"))
            })
            && broken(v, "truncated")
                .is_some_and(|b| b["error"].as_str().is_some_and(|e| !e.contains("empty")))
    })
    .await;
    assert!(
        broken(&v, "core").unwrap()["error"]
            .as_str()
            .unwrap()
            .contains("core wasm module"),
        "{v}"
    );
    assert!(
        broken(&v, "empty").unwrap()["error"]
            .as_str()
            .unwrap()
            .contains("empty"),
        "{v}"
    );
    assert!(
        broken(&v, "command").unwrap()["error"]
            .as_str()
            .unwrap()
            .contains("queuemgr:job world"),
        "{v}"
    );
    assert!(broken(&v, "garbage").is_some() && broken(&v, "truncated").is_some());
    for t in ["my_job", "noop", "slow", "hostile", "failing", "cpu_heavy"] {
        assert!(has_type(&v, t), "{t} still loaded");
    }
    let (status, health) = s.get("/health", &[]).await;
    assert_eq!(status, 200);
    assert_eq!(health["status"], "degraded");
    assert_eq!(
        health["components"]["catalog"]["broken"]
            .as_array()
            .unwrap()
            .len(),
        5
    );
    let v = s.execute(json!({"command": "queue", "params": {"action": "add_job", "job_id": "g", "job_type": "garbage"}})).await;
    assert_eq!(
        v["error"]["code"], -32602,
        "a broken type cannot be used: {v}"
    );

    // A broken file that is fixed loads.
    std::fs::copy(job_wasm("noop"), dir.join("garbage.wasm")).unwrap();
    wait_for(&s, "garbage fixed", |v| {
        has_type(v, "garbage") && broken(v, "garbage").is_none()
    })
    .await;

    // Removed: no new starts of that type. A job of that type added before waits, and says
    // that no host can run it; once the file is back, it runs.
    s.queue(json!({"action": "add_job", "job_id": "j4", "job_type": "slow", "params": {}}))
        .await;
    std::fs::remove_file(dir.join("slow.wasm")).unwrap();
    wait_for(&s, "slow removed", |v| !has_type(v, "slow")).await;
    let v = s.execute(json!({"command": "queue", "params": {"action": "add_job", "job_id": "j3", "job_type": "slow"}})).await;
    assert_eq!(v["error"]["data"]["got"], "slow", "{v}");
    s.queue(json!({"action": "start_job", "job_id": "j4"}))
        .await;
    let j4 = s
        .queue(json!({"action": "get_status", "job_id": "j4"}))
        .await;
    assert_eq!(j4["status"]["status"], "PENDING", "{j4}");
    assert_eq!(
        j4["status"]["description"],
        "Waiting for a host with job type 'slow' (no live host has it loaded)"
    );
    std::fs::copy(job_wasm("noop"), dir.join("slow.wasm")).unwrap();
    assert_eq!(
        s.wait_status("j4", "COMPLETED", Duration::from_secs(20))
            .await["status"],
        "COMPLETED"
    );
    std::fs::remove_file(dir.join("slow.wasm")).unwrap();
    wait_for(&s, "slow removed again", |v| !has_type(v, "slow")).await;
    for f in ["core", "empty", "truncated", "command"] {
        std::fs::remove_file(dir.join(format!("{f}.wasm"))).unwrap();
    }
    let v = wait_for(&s, "broken list empty", |v| {
        v["broken"].as_array().unwrap().is_empty()
    })
    .await;
    assert!(v["broken"].as_array().unwrap().is_empty());
    assert_eq!(s.get("/health", &[]).await.1["status"], "ok");
}

#[tokio::test]
async fn a_restart_loads_compiled_code_from_the_cache() {
    let mut s = Server::start(server_bin!(), &[]).await;
    s.restart().await;
    let log = s.log();
    let loaded: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("job type loaded"))
        .collect();
    assert_eq!(loaded.len(), 10, "two starts, five job types each:\n{log}");
    assert!(
        loaded[5..].iter().all(|l| l.contains("cached=true")),
        "{loaded:#?}"
    );
}
