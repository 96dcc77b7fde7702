//! Named keys with roles (`--keys-file`): every role against every kind of route, refusals
//! that change nothing, a file edited while the host runs, and `queuemgr keys new`.

use queuemgr_tests::{InProcess, Server, server_bin};
use serde_json::{Value, json};
use std::time::{Duration, Instant};

/// A key made by `queuemgr keys new`: (the key, its entry for the file).
fn new_key(name: &str, role: &str) -> (String, String) {
    new_scoped_key(name, role, &[])
}

/// A key made by `queuemgr keys new` with scope flags (`--types`, `--queues`).
fn new_scoped_key(name: &str, role: &str, scope: &[&str]) -> (String, String) {
    let out = std::process::Command::new(server_bin!())
        .args(["keys", "new", name, "--role", role])
        .args(scope)
        .output()
        .expect("run keys new");
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8(out.stdout).unwrap();
    let key = text.lines().next().unwrap().to_string();
    assert!(key.starts_with("qm_"), "{text}");
    let entry: String = text
        .lines()
        .skip(1)
        .filter(|l| !l.starts_with('#'))
        .map(|l| format!("{l}\n"))
        .collect();
    assert!(
        !entry.contains(&key),
        "the file never holds the key: {entry}"
    );
    (key, entry)
}

fn seed(action: &str, extra: Value) -> String {
    let mut params = json!({"action": action});
    for (k, v) in extra.as_object().unwrap() {
        params[k] = v.clone();
    }
    json!({"command": "queue", "params": params}).to_string()
}

#[tokio::test]
async fn each_role_may_do_what_it_names_and_no_more() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("keys.toml");
    let mut text = String::new();
    let mut keys = std::collections::HashMap::new();
    for role in ["metrics", "read", "run", "admin"] {
        let (key, entry) = new_key(&format!("{role}-key"), role);
        text.push_str(&entry);
        keys.insert(role, key);
    }
    std::fs::write(&file, &text).unwrap();
    let h = InProcess::start(&[
        "--keys-file",
        file.to_str().unwrap(),
        "--api-key",
        "the-old-admin-key",
    ])
    .await;
    let add = seed("add_job", json!({"job_type": "noop", "params": {}}));
    let status = |id: &str| seed("get_status", json!({"job_id": id}));
    let schedule = seed(
        "add_schedule",
        json!({"name": "nightly", "job_type": "noop", "cron": "0 3 * * *"}),
    );
    // (route, method, body, the least role that may use it)
    let routes: Vec<(&str, &str, String, &str)> = vec![
        ("/metrics", "GET", String::new(), "metrics"),
        ("/commands", "GET", String::new(), "read"),
        ("/api/v1/execute", "POST", seed("health", json!({})), "read"),
        (
            "/api/jsonrpc",
            "POST",
            json!({"jsonrpc": "2.0", "id": 1, "method": "queue_list_jobs", "params": {}})
                .to_string(),
            "read",
        ),
        ("/api/v1/execute", "POST", add.clone(), "run"),
        (
            "/api/jsonrpc",
            "POST",
            json!({"jsonrpc": "2.0", "id": 1, "method": "noop", "params": {}}).to_string(),
            "run",
        ),
        ("/api/v1/execute", "POST", schedule.clone(), "admin"),
        (
            "/api/jsonrpc",
            "POST",
            json!({"jsonrpc": "2.0", "id": 1, "method": "queue_pause_queue", "params": {"queue": "default"}})
                .to_string(),
            "admin",
        ),
    ];
    let allowed = |have: &str, need: &str| -> bool {
        match (have, need) {
            ("admin", _) => true,
            ("metrics", n) => n == "metrics",
            (_, "metrics") => false,
            ("run", n) => n == "read" || n == "run",
            ("read", n) => n == "read",
            _ => false,
        }
    };
    for (have, key) in &keys {
        for (path, method, body, need) in &routes {
            let (code, v) = h
                .request(method, path, body, &[("x-api-key", key.as_str())])
                .await;
            if allowed(have, need) {
                assert!(
                    code == 200 && v["error"].is_null(),
                    "{have} may {method} {path} {body}: {code} {v}"
                );
            } else {
                assert_eq!(code, 403, "{have} may not {method} {path} {body}: {v}");
                // A metrics key is stopped at the door of the read routes, before any command.
                let need = if *have == "metrics" { "read" } else { need };
                let msg = v["error"]["message"].as_str().unwrap_or_default();
                assert!(
                    msg.contains(&format!("'{have}-key'"))
                        && msg.contains(&format!("role {have}"))
                        && msg.contains(&format!("needs role {need}")),
                    "the refusal names the key, its role and the need: {v}"
                );
            }
        }
    }
    // The old single key is an admin key; a wrong or missing key is 401.
    let (code, _) = h
        .request(
            "POST",
            "/api/v1/execute",
            &schedule.replace("nightly", "nightly2"),
            &[("x-api-key", "the-old-admin-key")],
        )
        .await;
    assert_eq!(code, 200);
    for headers in [&[("x-api-key", "qm_wrong")][..], &[]] {
        assert_eq!(h.request("GET", "/commands", "", headers).await.0, 401);
    }
    // A refused add changed nothing: the read key's job does not exist.
    let read = keys["read"].as_str();
    let (code, _) = h
        .request(
            "POST",
            "/api/v1/execute",
            &seed(
                "add_job",
                json!({"job_id": "refused", "job_type": "noop", "params": {}}),
            ),
            &[("x-api-key", read)],
        )
        .await;
    assert_eq!(code, 403);
    let (_, v) = h
        .request(
            "POST",
            "/api/v1/execute",
            &status("refused"),
            &[("x-api-key", read)],
        )
        .await;
    assert_eq!(
        v["result"]["error"]["data"]["domain_code"], "JOB_NOT_FOUND",
        "{v}"
    );
    // In a batch, the refused call is refused alone (JSON-RPC -32003), the others answered.
    let batch = json!([
        {"jsonrpc": "2.0", "id": 1, "method": "queue_health", "params": {}},
        {"jsonrpc": "2.0", "id": 2, "method": "queue_add_job", "params": {"job_type": "noop", "params": {}}},
    ])
    .to_string();
    let (code, v) = h
        .request("POST", "/api/jsonrpc/batch", &batch, &[("x-api-key", read)])
        .await;
    assert_eq!(code, 200, "{v}");
    assert!(v[0]["result"].is_object(), "{v}");
    assert_eq!(v[1]["error"]["code"], -32003, "{v}");
    assert_eq!(v[1]["error"]["data"]["needs"], "run", "{v}");
    // Refusals are counted.
    let admin = keys["admin"].as_str();
    let text = h.text("GET", "/metrics", &[("x-api-key", admin)]).await;
    for reason in ["unauthenticated", "forbidden"] {
        let line = text
            .lines()
            .find(|l| {
                l.starts_with(&format!(
                    "queuemgr_auth_refused_total{{reason=\"{reason}\"}}"
                ))
            })
            .unwrap_or_else(|| panic!("no {reason} count in {text}"));
        let n: f64 = line.rsplit(' ').next().unwrap().parse().unwrap();
        assert!(n >= 1.0, "{line}");
    }
}

/// A key added to the file works within seconds, a removed one stops working, and a broken
/// file keeps the keys of before; all without a restart. The event stream, `/ws` and `/mcp`
/// need read, run and admin.
#[tokio::test]
async fn the_keys_file_is_read_again_when_it_changes() {
    let s0 = tempfile::tempdir().unwrap();
    let file = s0.path().join("keys.toml");
    let (first, first_entry) = new_key("first", "read");
    std::fs::write(&file, &first_entry).unwrap();
    let s = Server::start(server_bin!(), &["--keys-file", file.to_str().unwrap()]).await;
    let client = reqwest::Client::new();
    let code = |key: String, path: &'static str| {
        let client = client.clone();
        let url = format!("{}{path}", s.url);
        async move {
            client
                .get(url)
                .header("x-api-key", key)
                .timeout(Duration::from_secs(5))
                .send()
                .await
                .map(|r| r.status().as_u16())
                .unwrap_or(0)
        }
    };
    assert_eq!(code(first.clone(), "/commands").await, 200);
    // Streams: read may follow events; /ws needs run (a plain GET with the role gets past the
    // key check to the WebSocket's own 400); /mcp needs admin.
    let events = client
        .get(format!("{}/api/v1/events", s.url))
        .header("x-api-key", &first)
        .send()
        .await
        .unwrap();
    assert_eq!(events.status(), 200);
    drop(events);
    assert_eq!(code(first.clone(), "/ws").await, 403);
    // `/mcp` lets a read key in (it lists the tools its role allows).
    let mcp = code(first.clone(), "/mcp").await;
    assert!(mcp != 401 && mcp != 403 && mcp != 0, "/mcp for read: {mcp}");

    let (second, second_entry) = new_key("second", "admin");
    let wait_for = |key: String, want: u16| {
        let code = &code;
        async move {
            let end = Instant::now() + Duration::from_secs(10);
            loop {
                let got = code(key.clone(), "/commands").await;
                if got == want {
                    return;
                }
                assert!(Instant::now() < end, "still {got}, not {want}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    };
    assert_eq!(code(second.clone(), "/commands").await, 401);
    std::fs::write(&file, format!("{first_entry}{second_entry}")).unwrap();
    wait_for(second.clone(), 200).await;
    assert_eq!(
        code(second.clone(), "/ws").await,
        400,
        "admin gets to the WebSocket"
    );

    // A broken file: the keys of before stay.
    std::fs::write(&file, "[[key]]\nname = \"x\"\nrole = \"root\"\n").unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(code(first.clone(), "/commands").await, 200);
    assert_eq!(code(second.clone(), "/commands").await, 200);

    // Revoked: the first key is gone from the file.
    std::fs::write(&file, &second_entry).unwrap();
    wait_for(first.clone(), 401).await;
    assert_eq!(code(second, "/commands").await, 200);
}

/// A keys file that cannot be used stops the host at start, naming the entry.
#[test]
fn a_bad_keys_file_stops_the_host_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("keys.toml");
    std::fs::write(
        &file,
        "[[key]]\nname = \"ops\"\nrole = \"admin\"\nsha256 = \"not-a-digest\"\n",
    )
    .unwrap();
    let out = std::process::Command::new(server_bin!())
        .args(["serve", "--listen", "127.0.0.1:0", "--keys-file"])
        .arg(&file)
        .arg("--jobs-dir")
        .arg(dir.path())
        .arg("--registry")
        .arg(dir.path().join("r.jsonl"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("key[0] (ops)") && err.contains("64 hexadecimal"),
        "{err}"
    );
}

/// What a key's scope lets it do: add, see, list, stop, start and read the logs of the jobs of
/// its job types and queues only (403 naming what it lacks, nothing changed); a `run` key
/// deletes only the jobs it added; each job records who added it and who started, stopped,
/// restarted and deleted it.
#[tokio::test]
async fn scoped_keys_act_on_their_jobs_only_and_every_act_is_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("keys.toml");
    let (ops, e1) = new_key("ops", "admin");
    let (noops, e2) = new_scoped_key("noops", "run", &["--types", "no*"]);
    let (peer, e3) = new_scoped_key("peer", "run", &["--types", "no*"]);
    let (bulk, e4) = new_scoped_key("bulk", "run", &["--queues", "bulk,batch-*"]);
    let (reader, e5) = new_scoped_key("reader", "read", &["--types", "no*"]);
    assert!(e2.contains("types = [\"no*\"]"), "{e2}");
    assert!(e4.contains("queues = [\"bulk\", \"batch-*\"]"), "{e4}");
    std::fs::write(&file, format!("{e1}{e2}{e3}{e4}{e5}")).unwrap();
    let h = InProcess::start(&["--keys-file", file.to_str().unwrap()]).await;
    let call = |key: &str, action: &str, extra: Value| {
        let body = seed(action, extra);
        let key = key.to_string();
        let h = &h;
        async move {
            h.request("POST", "/api/v1/execute", &body, &[("x-api-key", &key)])
                .await
        }
    };
    let later = json!({"delay_secs": 3600});
    let add = |id: &str, ty: &str| {
        let mut p = json!({"job_id": id, "job_type": ty, "params": {}});
        p["delay_secs"] = later["delay_secs"].clone();
        p
    };

    // Adds: in scope or refused, naming what is lacking; a refused add creates nothing.
    let (code, v) = call(&noops, "add_job", add("n1", "noop")).await;
    assert_eq!(code, 200, "{v}");
    let (code, v) = call(&noops, "add_job", add("m1", "my_job")).await;
    assert_eq!(code, 403, "{v}");
    let msg = v["error"]["message"].as_str().unwrap_or_default();
    assert!(
        msg.contains("'noops'")
            && msg.contains("job type 'my_job' is outside its scope (types no*)"),
        "{v}"
    );
    let (_, v) = call(&ops, "get_status", json!({"job_id": "m1"})).await;
    assert_eq!(
        v["result"]["error"]["data"]["domain_code"], "JOB_NOT_FOUND",
        "{v}"
    );
    let (code, v) = call(&bulk, "add_job", add("b0", "noop")).await;
    assert_eq!(code, 403, "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("queue 'default' is outside its scope (queues bulk, batch-*)"),
        "{v}"
    );
    let mut b1 = add("b1", "noop");
    b1["queue"] = json!("batch-7");
    let (code, v) = call(&bulk, "add_job", b1).await;
    assert_eq!(code, 200, "{v}");
    // One job out of scope refuses the whole batch, naming it.
    let (code, v) = call(
        &noops,
        "add_jobs",
        json!({"jobs": [{"job_id": "x1", "job_type": "noop"}, {"job_id": "x2", "job_type": "my_job"}]}),
    )
    .await;
    assert_eq!(code, 403, "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("jobs[1]"),
        "{v}"
    );
    let (_, v) = call(&ops, "get_status", json!({"job_id": "x1"})).await;
    assert_eq!(
        v["result"]["error"]["data"]["domain_code"], "JOB_NOT_FOUND",
        "{v}"
    );

    // Out of scope: the admin's my_job cannot be read, listed, started, stopped or deleted.
    let (code, v) = call(&ops, "add_job", add("m1", "my_job")).await;
    assert_eq!(code, 200, "{v}");
    for key in [&noops, &reader] {
        for (action, extra) in [
            ("get_status", json!({"job_id": "m1"})),
            ("get_logs", json!({"job_id": "m1"})),
            ("start_job", json!({"job_id": "m1"})),
            ("stop_job", json!({"job_id": "m1"})),
            ("delete_job", json!({"job_id": "m1"})),
        ] {
            let (code, v) = call(key, action, extra).await;
            assert_eq!(code, 403, "{action}: {v}");
        }
        for path in [
            "/api/v1/jobs/m1",
            "/api/v1/jobs/m1/logs",
            "/api/v1/jobs/m1/logs?here=true",
            "/api/v1/jobs/m1/events",
        ] {
            let (code, v) = h
                .request("GET", path, "", &[("x-api-key", key.as_str())])
                .await;
            assert_eq!(code, 403, "{path}: {v}");
        }
        // Lists hold only the key's jobs, and count only them.
        let (_, v) = call(key, "list_jobs", json!({"limit": 10})).await;
        let ids: Vec<&str> = v["result"]["data"]["jobs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|j| j["job_id"].as_str().unwrap())
            .collect();
        // b1 is a noop too (in the bulk key's queue): its type is in these keys' scope.
        assert_eq!(ids, ["n1", "b1"], "{v}");
        assert_eq!(v["result"]["data"]["total_count"], 2, "{v}");
        let rpc = json!({"jsonrpc": "2.0", "id": 1, "method": "queue_list_jobs", "params": {}})
            .to_string();
        let (_, v) = h
            .request("POST", "/api/jsonrpc", &rpc, &[("x-api-key", key.as_str())])
            .await;
        assert_eq!(v["result"]["data"]["total_count"], 2, "{v}");
    }
    // A scoped key's job types are those of its scope.
    let (_, v) = call(&noops, "list_job_types", json!({})).await;
    let types: Vec<&str> = v["result"]["data"]["job_types"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["job_type"].as_str().unwrap())
        .collect();
    assert_eq!(types, ["noop"], "{v}");
    // The bulk key sees its queues' jobs only.
    let (_, v) = call(&bulk, "list_jobs", json!({"limit": 10})).await;
    assert_eq!(v["result"]["data"]["total_count"], 1, "{v}");
    assert_eq!(v["result"]["data"]["jobs"][0]["job_id"], "b1", "{v}");
    let (_, v) = call(&ops, "list_jobs", json!({"limit": 10})).await;
    assert_eq!(
        v["result"]["data"]["total_count"], 3,
        "the admin sees every job: {v}"
    );
    let (_, v) = call(&ops, "get_status", json!({"job_id": "m1"})).await;
    assert_eq!(
        v["result"]["data"]["status"]["status"], "PENDING",
        "nothing changed: {v}"
    );

    // Start, stop, start again: each recorded with its key.
    for (key, action) in [
        (&noops, "start_job"),
        (&peer, "stop_job"),
        (&noops, "start_job"),
    ] {
        let (code, v) = call(key, action, json!({"job_id": "n1"})).await;
        assert_eq!(code, 200, "{action}: {v}");
    }
    // A run key deletes only what it added.
    let (code, v) = call(&peer, "delete_job", json!({"job_id": "n1"})).await;
    assert_eq!(code, 403, "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("may delete only the jobs it added: key 'noops' added it"),
        "{v}"
    );
    let (code, v) = call(&noops, "delete_job", json!({"job_id": "n1"})).await;
    assert_eq!(code, 200, "{v}");
    let (_, v) = call(&ops, "get_status", json!({"job_id": "n1"})).await;
    let st = &v["result"]["data"]["status"];
    assert_eq!(st["status"], "DELETED", "{v}");
    assert_eq!(st["added_by"], "noops", "{v}");
    let audit: Vec<(String, String)> = st["audit"]
        .as_array()
        .unwrap_or_else(|| panic!("no audit: {v}"))
        .iter()
        .map(|a| {
            (
                a["key"].as_str().unwrap().to_string(),
                a["action"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    // The first start by the key that added the job is not an entry of its own (added_by
    // says who); the restart, the stop and the delete are.
    let want = [("peer", "stop"), ("noops", "restart"), ("noops", "delete")];
    assert_eq!(
        audit,
        want.map(|(k, a)| (k.to_string(), a.to_string())),
        "{v}"
    );
    assert!(
        st["audit"][0]["at"]
            .as_str()
            .is_some_and(|t| t.contains('T')),
        "{v}"
    );
    // The admin deletes any job.
    let (code, v) = call(&ops, "delete_job", json!({"job_id": "m1"})).await;
    assert_eq!(code, 200, "{v}");
    // The framework's commands answer the same way.
    let rpc = |method: &str, params: Value| {
        json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}).to_string()
    };
    let (code, v) = h
        .request(
            "POST",
            "/api/jsonrpc",
            &rpc(
                "queue_add_job",
                json!({"job_id": "m2", "job_type": "my_job", "params": {}}),
            ),
            &[("x-api-key", noops.as_str())],
        )
        .await;
    assert_eq!(
        (code, v["error"]["code"].as_i64()),
        (403, Some(-32003)),
        "{v}"
    );
    let (code, v) = h
        .request(
            "POST",
            "/api/jsonrpc",
            &rpc("my_job", json!({})),
            &[("x-api-key", noops.as_str())],
        )
        .await;
    assert_eq!(
        code, 403,
        "a job type called as a command is in scope or not: {v}"
    );
}

/// Calls `method` on `/mcp` in a fresh session opened with `key` (initialize, initialized,
/// then the call, over plain HTTP); returns the HTTP status of the first step and the call's
/// JSON-RPC answer.
async fn mcp_call(url: &str, key: &str, method: &str, params: Value) -> (u16, Value) {
    let client = reqwest::Client::new();
    let post = |body: Value, session: Option<String>| {
        let mut r = client
            .post(format!("{url}/mcp"))
            .header("x-api-key", key)
            .header("accept", "application/json, text/event-stream")
            .json(&body)
            .timeout(Duration::from_secs(10));
        if let Some(s) = session {
            r = r.header("mcp-session-id", s);
        }
        r.send()
    };
    let answer = |text: String| -> Value {
        text.lines()
            .filter_map(|l| l.strip_prefix("data:"))
            .filter_map(|d| serde_json::from_str::<Value>(d.trim()).ok())
            .find(|v| v.get("id").is_some())
            .or_else(|| serde_json::from_str(&text).ok())
            .unwrap_or(Value::Null)
    };
    let init = post(
        json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-03-26", "capabilities": {},
            "clientInfo": {"name": "keys-test", "version": "1"}}}),
        None,
    )
    .await
    .unwrap();
    let code = init.status().as_u16();
    if code != 200 {
        return (code, Value::Null);
    }
    let session = init
        .headers()
        .get("mcp-session-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let _ = answer(init.text().await.unwrap());
    post(
        json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
        session.clone(),
    )
    .await
    .unwrap();
    let r = post(
        json!({"jsonrpc": "2.0", "id": 2, "method": method, "params": params}),
        session,
    )
    .await
    .unwrap();
    (code, answer(r.text().await.unwrap()))
}

/// A scoped key's event stream carries only its jobs; `/mcp` lists each key the tools its role
/// and scope allow and refuses the others' calls; a metrics key does not get in.
#[tokio::test]
async fn scoped_streams_and_mcp_tools_follow_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("keys.toml");
    let (ops, e1) = new_key("ops", "admin");
    let (noops, e2) = new_scoped_key("noops", "run", &["--types", "no*"]);
    let (reader, e3) = new_key("reader", "read");
    let (scraper, e4) = new_key("scraper", "metrics");
    std::fs::write(&file, format!("{e1}{e2}{e3}{e4}")).unwrap();
    let s = Server::start(server_bin!(), &["--keys-file", file.to_str().unwrap()]).await;
    let client = reqwest::Client::new();

    // The stream of a key scoped to no*: the admin's my_job never shows, its noop does.
    let mut stream = client
        .get(format!("{}/api/v1/events", s.url))
        .header("x-api-key", &noops)
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), 200);
    for (id, ty) in [("hidden", "my_job"), ("shown", "noop")] {
        let body = seed(
            "add_job",
            json!({"job_id": id, "job_type": ty, "params": {}, "start": true}),
        );
        let r = client
            .post(format!("{}/api/v1/execute", s.url))
            .header("x-api-key", &ops)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
    let mut seen = String::new();
    let end = Instant::now() + Duration::from_secs(20);
    while !(seen.contains("\"shown\"") && seen.contains("COMPLETED")) {
        assert!(Instant::now() < end, "no end of the noop in {seen}");
        match tokio::time::timeout(Duration::from_secs(5), stream.chunk()).await {
            Ok(Ok(Some(c))) => seen.push_str(&String::from_utf8_lossy(&c)),
            other => panic!("stream ended: {other:?} after {seen}"),
        }
    }
    // The my_job was added first: had it been let through, it would be in the stream by now.
    assert!(
        !seen.contains("\"hidden\"") && !seen.contains("my_job"),
        "{seen}"
    );
    drop(stream);

    // MCP: the tools of each key.
    let names = |v: &Value| -> Vec<String> {
        v["result"]["tools"]
            .as_array()
            .unwrap_or_else(|| panic!("no tools: {v}"))
            .iter()
            .map(|t| t["name"].as_str().unwrap().to_string())
            .collect()
    };
    let (code, v) = mcp_call(&s.url, &reader, "tools/list", json!({})).await;
    assert_eq!(code, 200);
    let read_tools = names(&v);
    for t in [
        "queue_get_job_status",
        "queue_list_jobs",
        "queue_get_job_logs",
    ] {
        assert!(read_tools.iter().any(|n| n == t), "{t} in {read_tools:?}");
    }
    for t in [
        "queue_add_job",
        "queue_stop_job",
        "queue_pause_queue",
        "noop",
        "my_job",
    ] {
        assert!(
            !read_tools.iter().any(|n| n == t),
            "{t} not in {read_tools:?}"
        );
    }
    let (_, v) = mcp_call(&s.url, &noops, "tools/list", json!({})).await;
    let run_tools = names(&v);
    for t in ["queue_add_job", "queue_stop_job", "noop"] {
        assert!(run_tools.iter().any(|n| n == t), "{t} in {run_tools:?}");
    }
    for t in ["my_job", "queue_pause_queue"] {
        assert!(
            !run_tools.iter().any(|n| n == t),
            "{t} not in {run_tools:?}"
        );
    }
    let (_, v) = mcp_call(&s.url, &ops, "tools/list", json!({})).await;
    let admin_tools = names(&v);
    for t in ["queue_pause_queue", "my_job", "noop"] {
        assert!(admin_tools.iter().any(|n| n == t), "{t} in {admin_tools:?}");
    }
    // Calls: a read key's add and a scoped key's job of another type are refused, naming why.
    let (_, v) = mcp_call(
        &s.url,
        &reader,
        "tools/call",
        json!({"name": "queue_add_job", "arguments": {"job_id": "via-mcp", "job_type": "noop", "params": {}}}),
    )
    .await;
    assert_eq!(v["result"]["isError"], true, "{v}");
    assert!(v.to_string().contains("needs role run"), "{v}");
    let (_, v) = mcp_call(
        &s.url,
        &noops,
        "tools/call",
        json!({"name": "queue_get_job_status", "arguments": {"job_id": "hidden"}}),
    )
    .await;
    assert_eq!(v["result"]["isError"], true, "{v}");
    assert!(v.to_string().contains("outside its scope"), "{v}");
    let (_, v) = mcp_call(
        &s.url,
        &noops,
        "tools/call",
        json!({"name": "my_job", "arguments": {}}),
    )
    .await;
    assert!(v.to_string().contains("outside its scope"), "{v}");
    let (code, _) = mcp_call(&s.url, &scraper, "tools/list", json!({})).await;
    assert_eq!(code, 403);
}
