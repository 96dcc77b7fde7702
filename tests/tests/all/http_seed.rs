//! The seed's curl calls against a real server, response shapes checked field by field, and
//! the framework's `queue_*` commands as the reference transcript shows them.

use queuemgr_tests::{Server, server_bin};
use serde_json::{Value, json};
use std::time::Duration;

fn is_iso(v: &Value) -> bool {
    v.as_str().is_some_and(chrono_like)
}

/// `YYYY-MM-DDTHH:MM:SS.ffffff`, as the original writes times.
fn chrono_like(s: &str) -> bool {
    let b = s.as_bytes();
    s.len() == 26
        && b[4] == b'-'
        && b[7] == b'-'
        && b[10] == b'T'
        && b[13] == b':'
        && b[19] == b'.'
        && s.chars().filter(|c| c.is_ascii_digit()).count() == 20
}

fn keys(v: &Value) -> Vec<&str> {
    v.as_object().unwrap().keys().map(String::as_str).collect()
}

#[tokio::test]
async fn seed_curls_work_as_printed() {
    let s = Server::start(server_bin!(), &[]).await;

    // Add a Job (the seed's body, byte for byte).
    let v = s
        .execute(
            json!({"command": "queue", "params": {"action": "add_job", "job_id": "my_job",
            "params": {"task_name": "Process Data", "duration": 2}}}),
        )
        .await;
    assert_eq!(
        v,
        json!({"jsonrpc": "2.0", "result": {"success": true, "data": {"action": "add_job", "job_id": "my_job",
            "message": "Job my_job added successfully"}}, "id": 1})
    );

    let pending = s
        .queue(json!({"action": "get_status", "job_id": "my_job"}))
        .await;
    assert_eq!(keys(&pending), ["action", "job_id", "status"]);
    let job = &pending["status"];
    assert_eq!(
        keys(job),
        [
            "job_id",
            "status",
            "progress",
            "description",
            "result",
            "created_at",
            "updated_at",
            "job_type"
        ]
    );
    assert_eq!(job["status"], "PENDING");
    assert_eq!(job["progress"], 0);
    assert_eq!(job["result"], Value::Null);
    assert_eq!(job["job_type"], "my_job");
    assert!(
        is_iso(&job["created_at"]) && is_iso(&job["updated_at"]),
        "{job}"
    );

    // Start a Job.
    let v = s
        .execute(json!({"command": "queue", "params": {"action": "start_job", "job_id": "my_job"}}))
        .await;
    assert_eq!(
        v["result"]["data"],
        json!({"action": "start_job", "job_id": "my_job", "message": "Job my_job started successfully"})
    );

    // Get Job Status while it runs: progress after the first step.
    tokio::time::sleep(Duration::from_millis(1300)).await;
    let running = s
        .queue(json!({"action": "get_status", "job_id": "my_job"}))
        .await["status"]
        .clone();
    assert_eq!(running["status"], "RUNNING");
    assert_eq!(running["progress"], 50);
    assert_eq!(running["description"], "step 1/2");
    assert!(is_iso(&running["started_at"]));
    assert!(running.get("completed_at").is_none());

    // List All Jobs.
    let list = s.queue(json!({"action": "list_jobs"})).await;
    assert_eq!(keys(&list), ["action", "jobs", "count"]);
    assert_eq!(list["count"], 1);
    let item = &list["jobs"][0];
    assert_eq!(
        keys(item),
        [
            "job_id",
            "job_type",
            "status",
            "progress",
            "description",
            "result",
            "is_running",
            "created_at",
            "updated_at",
            "started_at"
        ]
    );
    assert_eq!(item["is_running"], true);

    // Completion: the seed's result shape, completed_at when the job ended.
    let done = s
        .wait_status("my_job", "COMPLETED", Duration::from_secs(10))
        .await;
    assert_eq!(done["status"], "COMPLETED");
    assert_eq!(done["progress"], 100);
    let result = &done["result"];
    assert_eq!(
        keys(result),
        ["job_id", "task_name", "completed_at", "status"]
    );
    assert_eq!(result["job_id"], "my_job");
    assert_eq!(result["task_name"], "Process Data");
    assert_eq!(result["status"], "completed");
    assert!(result["completed_at"].as_f64().unwrap() > 1.7e9);
    assert!(is_iso(&done["completed_at"]));
    assert!(done["completed_at"].as_str() >= done["started_at"].as_str());

    // Stop a Job: a completed job cannot be stopped (typed domain error, in band).
    let v = s
        .execute(json!({"command": "queue", "params": {"action": "stop_job", "job_id": "my_job"}}))
        .await;
    let err = &v["result"]["error"];
    assert_eq!(v["result"]["success"], false);
    assert_eq!(err["code"], -32000);
    assert_eq!(err["message"], "Job state invalid");
    assert_eq!(err["data"]["domain_code"], "JOB_STATE_INVALID");
    assert_eq!(err["data"]["current_status"], "COMPLETED");

    // Stop a running job: STOPPED at once, interrupted.
    s.queue(json!({"action": "add_job", "job_id": "long", "params": {"task_name": "t", "duration": 60}})).await;
    s.queue(json!({"action": "start_job", "job_id": "long"}))
        .await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let v = s
        .execute(json!({"command": "queue", "params": {"action": "stop_job", "job_id": "long"}}))
        .await;
    assert_eq!(
        v["result"]["data"],
        json!({"action": "stop_job", "job_id": "long", "message": "Job long stopped successfully"})
    );
    let stopped = s
        .queue(json!({"action": "get_status", "job_id": "long"}))
        .await["status"]
        .clone();
    assert_eq!(stopped["status"], "STOPPED");
    assert_eq!(stopped["description"], "Job stopped by user");
    assert_eq!(
        stopped["result"],
        json!({"status": "stopped", "interrupted": true})
    );

    // Delete a Job (force), soft: it reads DELETED.
    let v = s.execute(json!({"command": "queue", "params": {"action": "delete_job", "job_id": "my_job", "force": true}})).await;
    assert_eq!(
        v["result"]["data"],
        json!({"action": "delete_job", "job_id": "my_job", "message": "Job my_job deleted successfully"})
    );
    let deleted = s
        .queue(json!({"action": "get_status", "job_id": "my_job"}))
        .await["status"]
        .clone();
    assert_eq!(deleted["status"], "DELETED");
    assert_eq!(
        deleted["result"]["task_name"], "Process Data",
        "a soft delete keeps the result"
    );

    // Check Queue Health.
    let h = s.queue(json!({"action": "health"})).await;
    assert_eq!(h["action"], "health");
    assert_eq!(h["queue_running"], true);
    assert_eq!(h["status"], "healthy");
    assert_eq!(
        h["job_types"],
        json!(["cpu_heavy", "failing", "hostile", "my_job", "noop"])
    );

    // The seed job's logs (its prints).
    let logs = s
        .queue(json!({"action": "get_logs", "job_id": "my_job"}))
        .await;
    assert_eq!(logs["stdout"][0], "Starting task: Process Data");
    assert_eq!(logs["stdout"].as_array().unwrap().len(), 3);
}

#[tokio::test]
async fn delete_of_a_running_job_stops_it_and_status_filter_lists() {
    let s = Server::start(server_bin!(), &[]).await;
    s.queue(json!({"action": "add_job", "job_id": "a", "params": {"duration": 60}}))
        .await;
    s.queue(json!({"action": "start_job", "job_id": "a"})).await;
    s.queue(json!({"action": "add_job", "job_id": "b", "params": {"duration": 0}}))
        .await;
    s.queue(json!({"action": "start_job", "job_id": "b"})).await;
    s.wait_status("b", "COMPLETED", Duration::from_secs(5))
        .await;
    s.queue(json!({"action": "delete_job", "job_id": "a"}))
        .await;
    assert_eq!(
        s.wait_status("a", "DELETED", Duration::from_secs(1)).await["status"],
        "DELETED"
    );
    let done = s
        .queue(json!({"action": "list_jobs", "status_filter": "COMPLETED"}))
        .await;
    assert_eq!(done["count"], 1);
    assert_eq!(done["jobs"][0]["job_id"], "b");
    // Deleting again changes nothing and succeeds, as the original.
    s.queue(json!({"action": "delete_job", "job_id": "a", "force": true}))
        .await;
    // A deleted id can be added again.
    s.queue(json!({"action": "add_job", "job_id": "a", "params": {"duration": 0}}))
        .await;
    assert_eq!(
        s.wait_status("a", "PENDING", Duration::from_secs(1)).await["status"],
        "PENDING"
    );
}

#[tokio::test]
async fn failing_and_hostile_jobs_end_in_error_with_their_reason() {
    let s = Server::start(
        server_bin!(),
        &["--job-memory-mib", "32", "--job-timeout-secs", "20"],
    )
    .await;
    let cases = [
        (
            "failer",
            "failing",
            json!({"code": "BAD_INPUT", "message": "job asked to fail"}),
            "failed",
            "BAD_INPUT",
        ),
        (
            "trap",
            "hostile",
            json!({"mode": "trap"}),
            "trapped",
            "TRAPPED",
        ),
        (
            "oom",
            "hostile",
            json!({"mode": "alloc"}),
            "out_of_memory",
            "OUT_OF_MEMORY",
        ),
        (
            "deep",
            "hostile",
            json!({"mode": "recurse"}),
            "stack_overflow",
            "STACK_OVERFLOW",
        ),
    ];
    for (id, ty, params, _, _) in &cases {
        s.queue(json!({"action": "add_job", "job_id": id, "job_type": ty, "params": params}))
            .await;
        s.queue(json!({"action": "start_job", "job_id": id})).await;
    }
    for (id, _, _, kind, code) in &cases {
        let job = s.wait_status(id, "ERROR", Duration::from_secs(10)).await;
        assert_eq!(job["status"], "ERROR", "{id}: {job}");
        assert_eq!(job["error"]["kind"], *kind, "{id}: {job}");
        assert_eq!(job["error"]["code"], *code, "{id}: {job}");
        assert_eq!(job["result"], Value::Null);
    }
    let failer = s
        .queue(json!({"action": "get_status", "job_id": "failer"}))
        .await["status"]
        .clone();
    // As the original: the description is the job's message; its code is in `error`.
    assert_eq!(failer["description"], "job asked to fail");
    assert_eq!(failer["progress"], 50);
    // The host is still serving normally.
    assert_eq!(s.get("/health", &[]).await.0, 200);
}

#[tokio::test]
async fn framework_queue_commands_answer_the_reference_shapes() {
    let s = Server::start(server_bin!(), &[]).await;
    let h = s.rpc("queue_health", json!({})).await;
    let d = &h["result"]["data"];
    for k in [
        "status",
        "running",
        "total_jobs",
        "pending_jobs",
        "running_jobs",
        "completed_jobs",
        "failed_jobs",
        "registry_path",
        "max_concurrent_jobs",
        "max_retained_terminal_jobs",
        "pending_unstarted_jobs",
    ] {
        assert!(d.get(k).is_some(), "queue_health lacks {k}: {d}");
    }
    assert_eq!(d["status"], "healthy");

    let v = s
        .rpc(
            "queue_add_job",
            json!({"job_type": "my_job", "job_id": "b1", "params": {"duration": 1}}),
        )
        .await;
    assert_eq!(
        v["result"]["data"],
        json!({"message": "Job b1 added successfully", "job_id": "b1", "job_type": "my_job",
        "status": "pending", "description": "Job added to queue", "store": "queuemgr", "poll_with": "queue_get_job_status"})
    );
    let v = s.rpc("queue_get_job_status", json!({"job_id": "b1"})).await;
    let d = &v["result"]["data"];
    assert_eq!(d["status"], "pending");
    assert_eq!(d["result"], json!({}));
    assert_eq!(d["started_at"], Value::Null);
    assert_eq!(d["job_success"], false);
    let v = s.rpc("queue_start_job", json!({"job_id": "b1"})).await;
    assert_eq!(v["result"]["data"]["status"], "running");
    assert_eq!(
        v["result"]["data"]["message"],
        "Job b1 started successfully"
    );
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let v = s.rpc("queue_get_job_status", json!({"job_id": "b1"})).await;
    let d = &v["result"]["data"];
    assert_eq!(d["status"], "completed", "{d}");
    assert_eq!(d["job_success"], true);
    assert_eq!(d["progress"], 100);
    let v = s.rpc("queue_get_job_logs", json!({"job_id": "b1"})).await;
    let d = &v["result"]["data"];
    assert_eq!(d["job_id"], "b1");
    assert_eq!(d["stdout"][0], "Starting task: default_task");
    assert_eq!(d["stdout_lines"], 2);
    assert_eq!(d["stderr_lines"], 0);
    let v = s
        .rpc("queue_list_jobs", json!({"status_filter": "completed"}))
        .await;
    let d = &v["result"]["data"];
    assert_eq!(d["total_count"], 1);
    assert_eq!(d["status_filter"], "completed");
    assert_eq!(d["limit"], 100);
    assert_eq!(d["jobs"][0]["has_result"], true);

    // Errors, in band, as the reference.
    let v = s
        .rpc(
            "queue_add_job",
            json!({"job_type": "my_job", "job_id": "b1"}),
        )
        .await;
    assert_eq!(v["result"]["error"]["message"], "Job already exists");
    assert_eq!(
        v["result"]["error"]["data"]["domain_code"],
        "JOB_ALREADY_EXISTS"
    );
    let v = s.rpc("queue_start_job", json!({"job_id": "nope"})).await;
    assert_eq!(
        v["result"]["error"]["data"],
        json!({"domain_code": "JOB_NOT_FOUND", "field": "job_id", "value": "nope",
        "store": "queuemgr", "detail": "Job with ID 'nope' not found"})
    );
    let v = s.rpc("queue_stop_job", json!({"job_id": "b1"})).await;
    let d = &v["result"]["error"]["data"];
    assert_eq!(d["current_status"], "completed");
    assert_eq!(d["allowed_statuses"], json!(["pending", "running"]));
    let v = s.rpc("queue_get_job_status", json!({})).await;
    assert_eq!(
        v["error"],
        json!({"code": -32602, "message": "Missing required parameters: job_id",
        "data": {"missing_parameters": ["job_id"], "violation": "missing"}})
    );
    let v = s
        .rpc("queue_add_job", json!({"job_type": "bogus", "job_id": "x"}))
        .await;
    let loaded = json!(["cpu_heavy", "failing", "hostile", "my_job", "noop"]);
    assert_eq!(
        v["error"],
        json!({"code": -32602,
        "message": "queue_add_job: parameter 'job_type' must be one of ['cpu_heavy', 'failing', 'hostile', 'my_job', 'noop'], got 'bogus'",
        "data": {"field": "job_type", "enum": loaded, "violation": "value", "expected": loaded, "got": "bogus"}})
    );
    let v = s
        .rpc(
            "queue_add_job",
            json!({"job_type": "my_job", "job_id": "x", "params": {"duration": "ten"}}),
        )
        .await;
    assert_eq!(
        v["error"],
        json!({"code": -32602, "message": "queue_add_job: parameter 'params.duration' must be number, got string",
        "data": {"field": "params.duration", "violation": "value", "expected": "number", "got": "string"}})
    );
    let v = s
        .rpc(
            "queue_add_job",
            json!({"job_type": "my_job", "job_id": "x", "params": {"nope": 1}}),
        )
        .await;
    assert_eq!(
        v["error"],
        json!({"code": -32602, "message": "queue_add_job: parameter 'params.nope' is not an allowed key",
        "data": {"field": "params.nope", "violation": "value",
            "expected": "no such key; allowed: task_name, duration", "got": "integer"}})
    );
    // The seed's `queue` command names itself in the same errors.
    let v = s
        .execute(
            json!({"command": "queue", "params": {"action": "add_job", "job_id": "x",
            "job_type": "my_job", "params": {"duration": "ten"}}}),
        )
        .await;
    assert_eq!(
        v["error"]["message"],
        "queue: parameter 'params.duration' must be number, got string"
    );
    // Nothing was added by the refused calls.
    let v = s.rpc("queue_get_job_status", json!({"job_id": "x"})).await;
    assert_eq!(v["result"]["error"]["message"], "Job not found");
}
