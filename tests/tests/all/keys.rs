//! Named keys with roles (`--keys-file`): every role against every kind of route, refusals
//! that change nothing, a file edited while the host runs, and `queuemgr keys new`.

use queuemgr_tests::{InProcess, Server, server_bin};
use serde_json::{Value, json};
use std::time::{Duration, Instant};

/// A key made by `queuemgr keys new`: (the key, its entry for the file).
fn new_key(name: &str, role: &str) -> (String, String) {
    let out = std::process::Command::new(server_bin!())
        .args(["keys", "new", name, "--role", role])
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
    assert_eq!(code(first.clone(), "/mcp").await, 403);

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
