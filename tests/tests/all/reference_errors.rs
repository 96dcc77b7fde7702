//! Every bad input of the reference transcript (`shared/reference/queue-command.transcript.txt`)
//! gets the envelope the reference gives — through the router, no socket needed. Where the
//! reference README says we do better on purpose (typed domain errors for `queue`, a params
//! list that is not an object), the better answer is asserted.

use queuemgr_tests::InProcess;
use serde_json::{Value, json};

async fn host() -> InProcess {
    InProcess::start(&[]).await
}

fn domain(v: &Value) -> &Value {
    assert_eq!(v["result"]["success"], false, "{v}");
    assert_eq!(v["result"]["error"]["code"], -32000, "{v}");
    &v["result"]["error"]
}

#[tokio::test]
async fn unknown_action_is_an_enum_violation() {
    let h = host().await;
    let (status, v) = h
        .execute(r#"{"command":"queue","params":{"action":"frobnicate","job_id":"job1"}}"#)
        .await;
    assert_eq!(status, 200);
    let actions = json!([
        "add_job",
        "add_jobs",
        "start_job",
        "stop_job",
        "get_status",
        "list_jobs",
        "delete_job",
        "health",
        "get_logs",
        "list_job_types",
        "add_schedule",
        "list_schedules",
        "get_schedule",
        "update_schedule",
        "delete_schedule",
        "pause_schedule",
        "resume_schedule",
        "list_queues",
        "set_queue",
        "pause_queue",
        "resume_queue"
    ]);
    assert_eq!(
        v,
        json!({"jsonrpc": "2.0", "error": {"code": -32602,
            "message": "queue: parameter 'action' must be one of ['add_job', 'add_jobs', 'start_job', 'stop_job', 'get_status', 'list_jobs', 'delete_job', 'health', 'get_logs', 'list_job_types', 'add_schedule', 'list_schedules', 'get_schedule', 'update_schedule', 'delete_schedule', 'pause_schedule', 'resume_schedule', 'list_queues', 'set_queue', 'pause_queue', 'resume_queue'], got 'frobnicate'",
            "data": {"field": "action", "enum": actions, "violation": "value", "expected": actions, "got": "frobnicate"}}, "id": 1})
    );
}

#[tokio::test]
async fn unknown_jobs_are_typed_not_found_errors() {
    let h = host().await;
    for (action, id) in [
        ("get_status", None),
        ("start_job", None),
        ("get_status", Some("nope")),
        ("start_job", Some("nope")),
        ("stop_job", Some("nope")),
        ("delete_job", Some("nope")),
    ] {
        let mut params = json!({"action": action});
        if let Some(id) = id {
            params["job_id"] = json!(id);
        }
        let (status, v) = h
            .execute(&json!({"command": "queue", "params": params}).to_string())
            .await;
        assert_eq!(status, 200);
        let e = domain(&v);
        let id = id.unwrap_or("default_job");
        assert_eq!(e["message"], "Job not found");
        assert_eq!(
            e["data"],
            json!({"domain_code": "JOB_NOT_FOUND", "field": "job_id", "value": id, "store": "queuemgr",
            "detail": format!("Job with ID '{id}' not found")})
        );
        assert_eq!(v["id"], 1);
    }
}

#[tokio::test]
async fn duplicates_and_double_starts_are_typed_errors() {
    let h = host().await;
    let add = r#"{"command":"queue","params":{"action":"add_job","job_id":"dup","params":{"duration":30}}}"#;
    assert_eq!(h.execute(add).await.1["result"]["success"], true);
    let (_, v) = h.execute(add).await;
    let e = domain(&v);
    assert_eq!(e["message"], "Job already exists");
    assert_eq!(e["data"]["domain_code"], "JOB_ALREADY_EXISTS");
    assert_eq!(e["data"]["detail"], "Job with ID 'dup' already exists");
    let start = r#"{"command":"queue","params":{"action":"start_job","job_id":"dup"}}"#;
    assert_eq!(h.execute(start).await.1["result"]["success"], true);
    let (_, v) = h.execute(start).await;
    let e = domain(&v);
    assert_eq!(e["message"], "Job state invalid");
    assert_eq!(
        e["data"]["detail"],
        "Cannot start job 'dup' in state 'RUNNING'"
    );
    assert_eq!(e["data"]["current_status"], "RUNNING");
    let (_, v) = h
        .execute(r#"{"command":"queue","params":{"action":"stop_job","job_id":"dup"}}"#)
        .await;
    assert_eq!(
        v["result"]["data"]["message"],
        "Job dup stopped successfully"
    );
}

#[tokio::test]
async fn wrong_types_and_unknown_params_are_invalid_params() {
    let h = host().await;
    let cases = [
        (
            r#"{"command":"queue","params":{"action":"add_job","job_id":123}}"#,
            json!({"code": -32602, "message": "queue: parameter 'job_id' must be string, got int",
                "data": {"field": "job_id", "violation": "type", "expected": "string", "got": "int"}}),
        ),
        (
            r#"{"command":"queue","params":{"action":"add_job","job_id":"t1","params":"notanobject"}}"#,
            json!({"code": -32602, "message": "queue: parameter 'params' must be object, got str",
                "data": {"field": "params", "violation": "type", "expected": "object", "got": "str"}}),
        ),
        (
            r#"{"command":"queue","params":{"action":"delete_job","job_id":"dup","force":"yes"}}"#,
            json!({"code": -32602, "message": "queue: parameter 'force' must be boolean, got str",
                "data": {"field": "force", "violation": "type", "expected": "boolean", "got": "str"}}),
        ),
        (
            r#"{"command":"queue","params":{"action":"add_job","job_id":""}}"#,
            json!({"code": -32602, "message": "queue: parameter 'job_id' must be a non-empty string",
                "data": {"field": "job_id", "violation": "value", "expected": "non-empty string", "got": ""}}),
        ),
    ];
    for (body, error) in cases {
        let (status, v) = h.execute(body).await;
        assert_eq!(status, 200);
        assert_eq!(
            v,
            json!({"jsonrpc": "2.0", "error": error, "id": 1}),
            "{body}"
        );
    }
    let (_, v) = h
        .execute(r#"{"command":"queue","params":{"action":"add_job","job_id":"t2","unknown":1}}"#)
        .await;
    assert_eq!(v["error"]["code"], -32602);
    assert_eq!(
        v["error"]["message"],
        "Invalid parameters: unknown. Allowed parameters: ['action', 'job_id', 'job_type', 'params', 'force', 'status_filter', 'start', 'jobs', 'cursor', 'order', 'limit', 'priority', 'max_attempts', 'run_at', 'delay_secs', 'unique_key', 'queue', 'concurrency_key', 'depends_on', 'on_dependency_failure', 'name', 'cron', 'timezone', 'overlap', 'catch_up', 'catch_up_window_secs', 'enabled', 'concurrency', 'key_concurrency', 'rate', 'key_rate']"
    );
    assert_eq!(v["error"]["data"]["invalid_parameters"], json!(["unknown"]));
    assert_eq!(v["error"]["data"]["violation"], "unknown");
    // None of the refused adds left a job behind.
    let (_, v) = h
        .execute(r#"{"command":"queue","params":{"action":"list_jobs"}}"#)
        .await;
    assert_eq!(v["result"]["data"]["count"], 0);
}

#[tokio::test]
async fn transport_and_protocol_errors() {
    let h = host().await;
    let (status, v) = h
        .execute(r#"{"command":"queue","params":{"action":"add_job","#)
        .await;
    assert_eq!((status, v), (400, json!({"detail": "Invalid JSON body"})));
    let (status, v) = h.execute("[1,2]").await;
    assert_eq!(
        (status, v),
        (
            422,
            json!({"detail": "JSON-RPC body must be a JSON object"})
        )
    );
    let (_, v) = h
        .execute(r#"{"command":"nosuchcommand","params":{}}"#)
        .await;
    assert_eq!(
        v,
        json!({"jsonrpc": "2.0", "error": {"code": -32601, "message": "Method not found: nosuchcommand"}, "id": 1})
    );
    let (_, v) = h.execute(r#"{"params":{"action":"health"}}"#).await;
    assert_eq!(
        v,
        json!({"jsonrpc": "2.0", "error": {"code": -32600, "message": "Invalid Request: command is required"}, "id": 1})
    );
    let (_, v) = h
        .execute(r#"{"jsonrpc":"1.0","method":"queue","params":{"action":"health"},"id":5}"#)
        .await;
    assert_eq!(
        v,
        json!({"jsonrpc": "2.0", "error": {"code": -32600, "message": "Invalid Request: jsonrpc must be '2.0'"}, "id": 5})
    );
    let (_, v) = h
        .request(
            "POST",
            "/api/jsonrpc",
            r#"{"jsonrpc":"2.0","method":"queue","params":{"action":"health"},"id":"abc"}"#,
            &[],
        )
        .await;
    assert_eq!(v["id"], "abc");
    assert_eq!(v["result"]["data"]["status"], "healthy");
    // The original answered -32603 with a Python error here; params that are not an object are
    // invalid params.
    let (_, v) = h
        .request(
            "POST",
            "/api/jsonrpc",
            r#"{"jsonrpc":"2.0","method":"queue","params":["health"],"id":9}"#,
            &[],
        )
        .await;
    assert_eq!(v["error"]["code"], -32602);
    assert_eq!(v["id"], 9);
    let (status, v) = h
        .request("POST", "/api/jsonrpc/batch",
            r#"[{"jsonrpc":"2.0","method":"queue","params":{"action":"health"},"id":1},{"jsonrpc":"2.0","method":"nosuch","id":2}]"#, &[])
        .await;
    assert_eq!(status, 200);
    assert_eq!(v[0]["result"]["data"]["action"], "health");
    assert_eq!(v[0]["id"], 1);
    assert_eq!(
        v[1],
        json!({"jsonrpc": "2.0", "error": {"code": -32601, "message": "Method not found: nosuch"}, "id": 2})
    );
    let (status, v) = h
        .request("POST", "/api/jsonrpc/batch", r#"{"not":"an array"}"#, &[])
        .await;
    assert_eq!(
        (status, v),
        (422, json!({"detail": "Batch body must be a JSON array"}))
    );
}

#[tokio::test]
async fn commands_openapi_and_help_publish_the_same_schema() {
    let h = host().await;
    let (status, commands) = h.request("GET", "/commands", "", &[]).await;
    assert_eq!(status, 200);
    let queue_schema = &commands["commands"]["queue"]["schema"];
    assert_eq!(queue_schema["required"], json!(["action"]));
    let (_, openapi) = h.request("GET", "/openapi.json", "", &[]).await;
    assert_eq!(openapi["openapi"], "3.1.0");
    let mut from_openapi = openapi["components"]["schemas"]["Command_queue"].clone();
    from_openapi.as_object_mut().unwrap().remove("description");
    assert_eq!(&from_openapi, queue_schema);
    let (_, help) = h
        .execute(r#"{"command":"help","params":{"cmdname":"queue"}}"#)
        .await;
    assert_eq!(&help["result"]["data"]["schema"], queue_schema);
    assert_eq!(
        help["result"]["data"]["metadata"]["parameters"]["action"]["required"],
        true
    );
    let (_, help) = h.execute(r#"{"command":"help"}"#).await;
    let listed: Vec<&String> = help["result"]["data"]["commands"]
        .as_object()
        .unwrap()
        .keys()
        .collect();
    let published: Vec<&String> = commands["commands"].as_object().unwrap().keys().collect();
    assert_eq!(listed, published);
    for name in [
        "queue",
        "queue_add_job",
        "queue_start_job",
        "queue_stop_job",
        "queue_delete_job",
        "queue_get_job_status",
        "queue_get_job_logs",
        "queue_list_jobs",
        "queue_health",
        "help",
    ] {
        assert!(
            published.iter().any(|p| p.as_str() == name),
            "{name} missing"
        );
    }
}

#[tokio::test]
async fn api_key_guards_every_route_but_health_and_openapi() {
    let h = InProcess::start(&["--api-key", "s3cret-token"]).await;
    let unauthorized = json!({"error": {"code": 401, "message": "Unauthorized: invalid or missing API key", "type": "authentication_error"}});
    let body = r#"{"command":"queue","params":{"action":"health"}}"#;
    for path in ["/api/v1/execute", "/api/jsonrpc", "/api/jsonrpc/batch"] {
        assert_eq!(
            h.request("POST", path, body, &[]).await,
            (401, unauthorized.clone()),
            "{path}"
        );
        assert_eq!(
            h.request("POST", path, body, &[("x-api-key", "wrong")])
                .await
                .0,
            401
        );
    }
    assert_eq!(h.request("GET", "/commands", "", &[]).await.0, 401);
    assert_eq!(h.request("GET", "/health", "", &[]).await.0, 200);
    assert_eq!(h.request("GET", "/openapi.json", "", &[]).await.0, 200);
    let (s, v) = h
        .request(
            "POST",
            "/api/v1/execute",
            body,
            &[("x-api-key", "s3cret-token")],
        )
        .await;
    assert_eq!((s, &v["result"]["success"]), (200, &json!(true)));
    let (s, _) = h
        .request(
            "POST",
            "/api/v1/execute",
            body,
            &[("authorization", "Bearer s3cret-token")],
        )
        .await;
    assert_eq!(s, 200);
}

#[tokio::test]
async fn oversized_bodies_get_413_with_json() {
    let h = InProcess::start(&["--max-body-bytes", "1024"]).await;
    let big = format!(
        r#"{{"command":"queue","params":{{"action":"add_job","job_id":"big","params":{{"task_name":"{}"}}}}}}"#,
        "x".repeat(4096)
    );
    let (status, v) = h.execute(&big).await;
    assert_eq!(status, 413);
    assert_eq!(v, json!({"detail": "Request body too large"}));
}

/// The named fields of an object, as an object (to compare some fields of an answer at once).
fn pick(v: &Value, keys: &[&str]) -> Value {
    keys.iter()
        .map(|k| (k.to_string(), v[*k].clone()))
        .collect()
}

#[tokio::test]
async fn framework_commands_answer_the_reference_for_unknown_jobs_and_wrong_states() {
    let h = host().await;
    // queue_star-commands.transcript.txt: every command on an unknown job, the same envelope
    // (we add queuemgr's own message as `detail`).
    for method in [
        "queue_get_job_status",
        "queue_start_job",
        "queue_stop_job",
        "queue_delete_job",
        "queue_get_job_logs",
    ] {
        assert_eq!(
            h.rpc(method, json!({"job_id": "nope"})).await,
            json!({"jsonrpc": "2.0", "result": {"success": false, "error": {"code": -32000,
                "message": "Job not found", "data": {"domain_code": "JOB_NOT_FOUND",
                "field": "job_id", "value": "nope", "store": "queuemgr",
                "detail": "Job with ID 'nope' not found"}}}, "id": 1}),
            "{method}"
        );
    }
    // A finished job cannot be started or stopped. Unlike the original, a STOPPED job may be
    // started again, so `allowed_statuses` of a start lists it.
    let v = h
        .rpc(
            "queue_add_job",
            json!({"job_type": "noop", "job_id": "b1", "params": {}}),
        )
        .await;
    assert_eq!(v["result"]["success"], true, "{v}");
    assert_eq!(
        h.rpc("queue_start_job", json!({"job_id": "b1"})).await["result"]["success"],
        true
    );
    let mut done = Value::Null;
    for _ in 0..200 {
        done = h.rpc("queue_get_job_status", json!({"job_id": "b1"})).await;
        if done["result"]["data"]["status"] == "completed" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert_eq!(done["result"]["data"]["status"], "completed", "{done}");
    for (method, action, allowed) in [
        ("queue_start_job", "start", json!(["pending", "stopped"])),
        ("queue_stop_job", "stop", json!(["pending", "running"])),
    ] {
        let v = h.rpc(method, json!({"job_id": "b1"})).await;
        assert_eq!(
            v["result"]["error"],
            json!({"code": -32000, "message": "Job state invalid", "data": {
                "domain_code": "JOB_STATE_INVALID", "field": "job_id", "value": "b1",
                "store": "queuemgr", "action": action, "current_status": "completed",
                "allowed_statuses": allowed,
                "detail": format!("Cannot {action} job 'b1' in state 'COMPLETED'")}}),
            "{method}"
        );
    }
    // Stop and delete answer the framework's confirmation fields.
    h.rpc(
        "queue_add_job",
        json!({"job_type": "noop", "job_id": "b2", "params": {"sleep_ms": 60000}}),
    )
    .await;
    h.rpc("queue_start_job", json!({"job_id": "b2"})).await;
    let v = h.rpc("queue_stop_job", json!({"job_id": "b2"})).await;
    let keys = [
        "message",
        "status",
        "stop_requested",
        "requested_status",
        "actual_status",
        "stopped",
    ];
    assert_eq!(
        pick(&v["result"]["data"], &keys),
        json!({"message": "Job b2 stopped successfully", "status": "stopped",
            "stop_requested": true, "requested_status": "stopped", "actual_status": "stopped",
            "stopped": true}),
        "{v}"
    );
    // The seed's get_status of a stopped job carries the original's summary fields.
    let (_, v) = h
        .execute(r#"{"command":"queue","params":{"action":"get_status","job_id":"b2"}}"#)
        .await;
    let keys = [
        "command_success",
        "inner_success",
        "completed_with_error",
        "command_error_summary",
    ];
    assert_eq!(
        pick(&v["result"]["data"]["status"], &keys),
        json!({"command_success": false, "inner_success": false, "completed_with_error": true,
            "command_error_summary": "Job stopped before command completion"}),
        "{v}"
    );
    let v = h.rpc("queue_delete_job", json!({"job_id": "b2"})).await;
    let keys = ["message", "status", "deleted_confirmed", "actual_status"];
    assert_eq!(
        pick(&v["result"]["data"], &keys),
        json!({"message": "Job b2 deleted successfully", "status": "deleted",
            "deleted_confirmed": true, "actual_status": "deleted"}),
        "{v}"
    );
}

#[tokio::test]
async fn help_echo_and_queue_health_carry_the_frameworks_fields() {
    let h = host().await;
    let v = h.rpc("help", json!({"cmdname": "queue"})).await;
    let d = &v["result"]["data"];
    assert_eq!(d["metadata"]["type"], "custom");
    assert_eq!(d["metadata"]["name"], "queue");
    assert_eq!(
        d["metadata"]["parameters_docs"],
        d["metadata"]["parameters"]
    );
    assert_eq!(d["ai_metadata"]["parameters"], d["metadata"]["parameters"]);
    assert_eq!(
        d["metadata"]["parameters"]["job_id"],
        json!({"description": "Job identifier (default: default_job)", "type": "string", "required": false})
    );
    assert_eq!(
        h.rpc("echo", json!({"message": "hi"})).await,
        json!({"jsonrpc": "2.0", "result": {"success": true, "data": {"message": "hi"}}, "id": 1})
    );
    let v = h.rpc("queue_health", json!({})).await;
    let limit = &v["result"]["data"]["rlimit_nofile"];
    let soft = limit["soft"].as_u64().expect("soft limit");
    let hard = limit["hard"].as_u64().unwrap_or(u64::MAX);
    assert!(soft > 0 && soft <= hard, "{limit}");
}

/// A batch's jobs are checked as strictly as a single add: a misspelt field, a wrong type or
/// a job that is not an object refuses the whole batch, naming the job's index and the field,
/// and nothing of it is added.
#[tokio::test]
async fn a_batch_job_is_checked_as_strictly_as_a_single_add() {
    let h = host().await;
    // The same misspelt field on a single add: refused.
    let (_, single) = h
        .execute(r#"{"command":"queue","params":{"action":"add_job","job_id":"s1","job_type":"noop","params":{},"priorty":5}}"#)
        .await;
    assert_eq!(single["error"]["code"], -32602, "{single}");
    assert_eq!(single["error"]["data"]["violation"], "unknown", "{single}");
    for (jobs, field, violation) in [
        (
            r#"[{"job_id":"ok1","job_type":"noop","params":{}},{"job_id":"x1","job_type":"noop","params":{},"priorty":5}]"#,
            "jobs[1].priorty",
            "unknown",
        ),
        (
            r#"[{"job_id":"ok1","job_type":"noop","params":{},"priority":"high"}]"#,
            "jobs[0].priority",
            "type",
        ),
        (
            r#"[{"job_id":"ok1","job_type":"noop","params":{}},"x1"]"#,
            "jobs[1]",
            "type",
        ),
        (
            r#"[{"job_id":"ok1","job_type":"noop","params":{},"max_attempts":0}]"#,
            "jobs[0].max_attempts",
            "value",
        ),
    ] {
        let body = format!(
            r#"{{"command":"queue","params":{{"action":"add_jobs","start":true,"jobs":{jobs}}}}}"#
        );
        let (status, v) = h.execute(&body).await;
        assert_eq!(status, 200);
        let e = &v["error"];
        assert_eq!(e["code"], -32602, "{jobs}: {v}");
        assert_eq!(e["data"]["violation"], violation, "{jobs}: {v}");
        let named = if violation == "unknown" {
            e["data"]["invalid_parameters"][0].clone()
        } else {
            e["data"]["field"].clone()
        };
        assert_eq!(named, field, "{jobs}: {v}");
        assert!(
            e["message"].as_str().unwrap_or("").contains(field),
            "the message names {field}: {v}"
        );
        let (_, got) = h
            .execute(r#"{"command":"queue","params":{"action":"get_status","job_id":"ok1"}}"#)
            .await;
        assert_eq!(
            got["result"]["success"], false,
            "nothing of {jobs} was added: {got}"
        );
    }
}
