//! Job types as the framework's queued commands: called by name over JSON-RPC, and run and
//! waited on over `/ws` (the command session), on a real server with the example jobs, over a
//! real WebSocket. The framework's own client drives the same paths in `framework_client.rs`.

use futures::{SinkExt, StreamExt};
use queuemgr_tests::{Server, server_bin};
use serde_json::{Value, json};
use std::time::Duration;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn connect(
    s: &Server,
    key: Option<&str>,
) -> Result<Ws, tokio_tungstenite::tungstenite::Error> {
    let url = format!("{}/ws", s.url.replacen("http://", "ws://", 1));
    let mut req = url.into_client_request()?;
    if let Some(k) = key {
        req.headers_mut()
            .insert("x-api-key", k.parse().expect("header"));
    }
    Ok(tokio_tungstenite::connect_async(req).await?.0)
}

async fn send(ws: &mut Ws, v: Value) {
    ws.send(Message::Text(v.to_string().into()))
        .await
        .expect("send");
}

/// The next JSON message (pings are answered by the library and skipped), or `None` when
/// nothing comes within `wait`.
async fn next(ws: &mut Ws, wait: Duration) -> Option<Value> {
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        let m = tokio::time::timeout_at(deadline, ws.next()).await.ok()??;
        match m.ok()? {
            Message::Text(t) => return Some(serde_json::from_str(t.as_str()).expect("JSON")),
            Message::Close(_) => return None,
            _ => continue,
        }
    }
}

/// Messages until one whose `event` is terminal (included); panics past `wait`.
async fn until_terminal(ws: &mut Ws, wait: Duration) -> Vec<Value> {
    let mut seen = Vec::new();
    loop {
        let m = next(ws, wait)
            .await
            .unwrap_or_else(|| panic!("no terminal event; got {seen:#?}"));
        let end = matches!(
            m["event"].as_str(),
            Some("command_completed" | "command_failed" | "command_cancelled" | "command_error")
        );
        seen.push(m);
        if end {
            return seen;
        }
    }
}

const LONG: Duration = Duration::from_secs(30);

#[tokio::test]
async fn job_types_are_queued_commands_over_json_rpc() {
    let s = Server::start(server_bin!(), &[]).await;
    let v = s
        .rpc("my_job", json!({"task_name": "x", "duration": 1}))
        .await;
    let r = &v["result"];
    assert_eq!(r["success"], true, "{v}");
    assert_eq!(r["status"], "pending");
    assert_eq!(r["store"], "queuemgr");
    assert_eq!(r["poll_with"], "queue_get_job_status");
    let job_id = r["job_id"].as_str().expect("job_id").to_string();
    let job = s.wait_status(&job_id, "COMPLETED", LONG).await;
    assert_eq!(job["status"], "COMPLETED", "{job}");
    // The framework's shape: the job's result as the command's data.
    let st = s
        .rpc("queue_get_job_status", json!({"job_id": job_id}))
        .await;
    let d = &st["result"]["data"];
    assert_eq!(d["status"], "completed", "{st}");
    assert_eq!(d["command_execution"], true);
    assert_eq!(d["command_name"], "my_job");
    assert_eq!(d["command_success"], true);
    assert_eq!(d["result"]["command"], "my_job");
    assert_eq!(d["result"]["status"], "completed");
    assert_eq!(d["result"]["result"]["success"], true);
    assert_eq!(d["result"]["result"]["data"]["task_name"], "x", "{d}");
    // A job added the usual way keeps its plain result.
    let plain = s
        .rpc(
            "queue_add_job",
            json!({"job_type": "noop", "job_id": "plain", "start": true}),
        )
        .await;
    assert_eq!(plain["result"]["success"], true, "{plain}");
    s.wait_status("plain", "COMPLETED", LONG).await;
    let st = s
        .rpc("queue_get_job_status", json!({"job_id": "plain"}))
        .await;
    assert_eq!(st["result"]["data"]["command_execution"], false, "{st}");

    // Refusals: params checked against the type's schema, naming the field; nothing added.
    let before = s.queue(json!({"action": "list_jobs"})).await["count"].clone();
    let bad = s.rpc("my_job", json!({"duration": "ten"})).await;
    assert_eq!(bad["error"]["code"], -32602, "{bad}");
    assert_eq!(bad["error"]["data"]["field"], "duration", "{bad}");
    let bad = s.rpc("noop", json!({"nope": 1})).await;
    assert_eq!(bad["error"]["code"], -32602, "{bad}");
    assert_eq!(bad["error"]["data"]["field"], "nope", "{bad}");
    let bad = s.rpc("noop", json!([1])).await;
    assert_eq!(bad["error"]["code"], -32602, "{bad}");
    let none = s.rpc("no_such_job", json!({})).await;
    assert_eq!(none["error"]["code"], -32601, "{none}");
    assert_eq!(
        s.queue(json!({"action": "list_jobs"})).await["count"],
        before
    );

    // Listed with their schemas.
    let (code, cmds) = s.get("/commands", &[]).await;
    assert_eq!(code, 200);
    assert_eq!(cmds["commands"]["my_job"]["queued"], true, "{cmds}");
    assert_eq!(
        cmds["commands"]["my_job"]["schema"]["properties"]["duration"]["type"],
        "number"
    );
    assert!(cmds["commands"]["queue_add_job"].is_object());
    let (_, api) = s.get("/openapi.json", &[]).await;
    assert!(api["components"]["schemas"]["Command_my_job"].is_object());
    let methods = &api["components"]["schemas"]["CommandRequest"]["properties"]["method"]["enum"];
    assert!(
        methods.as_array().unwrap().contains(&json!("noop")),
        "{methods}"
    );
    let help = s.rpc("help", json!({})).await;
    assert!(
        help["result"]["data"]["commands"]["my_job"].is_string(),
        "{help}"
    );
    let help = s.rpc("help", json!({"cmdname": "my_job"})).await;
    assert_eq!(
        help["result"]["data"]["metadata"]["name"], "my_job",
        "{help}"
    );
    assert_eq!(help["result"]["data"]["metadata"]["type"], "queued");

    // A job type named as a built-in command: the built-in answers, help says so.
    std::fs::copy(
        queuemgr_tests::job_wasm("noop"),
        s.jobs_dir().join("echo.wasm"),
    )
    .unwrap();
    queuemgr_tests::wait_job_types(&s, "echo loaded", |v| {
        queuemgr_tests::type_info(v, "echo").is_some()
    })
    .await;
    let echo = s.rpc("echo", json!({"message": "hi"})).await;
    assert_eq!(echo["result"]["data"]["message"], "hi", "{echo}");
    let help = s.rpc("help", json!({})).await;
    assert_eq!(
        help["result"]["data"]["shadowed_job_types"],
        json!(["echo"]),
        "{help}"
    );
    let (_, cmds) = s.get("/commands", &[]).await;
    assert!(cmds["commands"]["echo"].get("queued").is_none(), "{cmds}");
}

#[tokio::test]
async fn a_command_session_runs_a_job_to_one_terminal_event() {
    let s = Server::start(server_bin!(), &[]).await;
    let mut ws = connect(&s, None).await.expect("connect");
    send(
        &mut ws,
        json!({"action": "execute_command", "request_id": "r1", "command": "my_job",
               "params": {"task_name": "t", "duration": 2}, "result_channel": "rpc"}),
    )
    .await;
    let accepted = next(&mut ws, LONG).await.expect("accepted");
    assert_eq!(accepted["event"], "command_accepted", "{accepted}");
    assert_eq!(accepted["request_id"], "r1");
    assert_eq!(accepted["command"], "my_job");
    assert_eq!(accepted["status"], "pending");
    assert_eq!(accepted["result_channel"], "rpc");
    let job_id = accepted["job_id"].as_str().unwrap().to_string();
    let events = until_terminal(&mut ws, LONG).await;
    let (terminal, progress) = events.split_last().unwrap();
    assert!(!progress.is_empty(), "progress events: {events:#?}");
    for p in progress {
        assert_eq!(p["event"], "command_progress", "{p}");
        assert_eq!(p["job_id"], job_id.as_str());
        assert_eq!(p["request_id"], "r1");
        assert!(
            p["progress"].is_u64() && p["description"].is_string(),
            "{p}"
        );
    }
    // Each progress event says something new.
    for w in progress.windows(2) {
        assert_ne!(
            (&w[0]["progress"], &w[0]["description"]),
            (&w[1]["progress"], &w[1]["description"])
        );
    }
    assert_eq!(terminal["event"], "command_completed", "{terminal}");
    assert_eq!(terminal["status"], "completed");
    assert_eq!(terminal["result_ready"], true);
    assert_eq!(
        terminal["result_rpc"],
        json!({"method": "queue_get_job_status", "params": {"job_id": job_id}})
    );
    assert!(terminal.get("result").is_none());
    // Exactly one terminal event: nothing else for this job.
    assert_eq!(next(&mut ws, Duration::from_millis(500)).await, None);
    let st = s
        .rpc("queue_get_job_status", json!({"job_id": job_id}))
        .await;
    assert_eq!(
        st["result"]["data"]["result"]["result"]["data"]["task_name"], "t",
        "{st}"
    );

    // Two sessions on one socket, each with its own events.
    for (rid, ms) in [("a", 300), ("b", 0)] {
        send(
            &mut ws,
            json!({"action": "execute_command", "request_id": rid, "command": "noop", "params": {"sleep_ms": ms}}),
        )
        .await;
    }
    let mut ends = std::collections::HashMap::new();
    let mut accepted = 0;
    while ends.len() < 2 {
        let m = next(&mut ws, LONG).await.expect("events of a and b");
        match m["event"].as_str() {
            Some("command_accepted") => accepted += 1,
            Some("command_completed") => {
                ends.insert(m["request_id"].as_str().unwrap().to_string(), m.clone());
            }
            _ => {}
        }
    }
    assert_eq!(accepted, 2);
    assert!(ends.contains_key("a") && ends.contains_key("b"));

    // A built-in command in a session runs at once; its answer is kept for the status call.
    send(
        &mut ws,
        json!({"action": "execute_command", "request_id": "h", "command": "queue_health", "params": {}}),
    )
    .await;
    let acc = next(&mut ws, LONG).await.unwrap();
    assert_eq!(acc["event"], "command_accepted", "{acc}");
    let done = next(&mut ws, LONG).await.unwrap();
    assert_eq!(done["event"], "command_completed", "{done}");
    let st = s
        .rpc("queue_get_job_status", json!({"job_id": acc["job_id"]}))
        .await;
    let d = &st["result"]["data"];
    assert_eq!(d["status"], "completed", "{st}");
    assert_eq!(d["result"]["result"]["success"], true);
    assert_eq!(d["result"]["result"]["data"]["status"], "healthy", "{d}");
}

#[tokio::test]
async fn a_session_refuses_bad_input_before_any_job() {
    let s = Server::start(server_bin!(), &[]).await;
    let mut ws = connect(&s, None).await.expect("connect");
    let cases = [
        (
            json!({"action": "execute_command", "request_id": "1", "command": "my_job", "params": {"duration": "ten"}}),
            Some(-32602),
            Some("duration"),
        ),
        (
            json!({"action": "execute_command", "request_id": "2", "command": "nope", "params": {}}),
            Some(-32601),
            None,
        ),
        (
            json!({"action": "execute_command", "request_id": "3", "params": {}}),
            None,
            None,
        ),
        (
            json!({"action": "execute_command", "request_id": "4", "command": "noop", "params": [1]}),
            Some(-32602),
            Some("params"),
        ),
        (
            json!({"action": "execute_command", "request_id": "5", "command": "queue_get_job_status", "params": {}}),
            Some(-32602),
            None,
        ),
    ];
    for (msg, code, field) in cases {
        send(&mut ws, msg.clone()).await;
        let e = next(&mut ws, LONG).await.expect("an answer");
        assert_eq!(e["event"], "command_error", "{msg} → {e}");
        assert_eq!(e["request_id"], msg["request_id"], "{e}");
        assert_eq!(e["result_ready"], false);
        assert!(e.get("job_id").is_none(), "no job: {e}");
        match code {
            Some(c) => {
                assert_eq!(e["error"]["code"], c, "{e}");
                assert_eq!(e["code"], c, "{e}");
            }
            None => assert!(e["error"].is_string(), "{e}"),
        }
        if let Some(f) = field {
            assert_eq!(e["data"]["field"], f, "{e}");
        }
    }
    // What belongs to no session gets an action error, never a command event.
    for raw in [
        "not json",
        "[1,2]",
        r#"{"action":"frobnicate"}"#,
        r#"{"no_action":1}"#,
    ] {
        ws.send(Message::Text(raw.into())).await.unwrap();
        let e = next(&mut ws, LONG).await.expect("an answer");
        assert_eq!(e["action"], "error", "{raw} → {e}");
        assert!(e["code"].is_i64() && e["error"].is_string(), "{e}");
        assert!(e.get("event").is_none());
    }
    ws.send(Message::Binary(vec![1, 2, 3].into()))
        .await
        .unwrap();
    assert_eq!(next(&mut ws, LONG).await.unwrap()["action"], "error");
    for bad in [
        json!({"action": "subscribe"}),
        json!({"action": "subscribe", "subscription_type": "queue_job"}),
        json!({"action": "subscribe", "subscription_type": "nope", "job_id": "x"}),
        json!({"action": "subscribe", "subscription_type": "queue_job", "job_id": "missing"}),
        json!({"action": "unsubscribe", "job_id": "x", "caller_loss": "cancel"}),
    ] {
        send(&mut ws, bad.clone()).await;
        let e = next(&mut ws, LONG).await.expect("an answer");
        assert_eq!(e["action"], "subscribe_error", "{bad} → {e}");
    }
    // Nothing was added, and the socket still serves.
    assert_eq!(s.queue(json!({"action": "list_jobs"})).await["count"], 0);
    send(
        &mut ws,
        json!({"action": "execute_command", "request_id": "ok", "command": "noop", "params": {}}),
    )
    .await;
    let end = until_terminal(&mut ws, LONG).await;
    assert_eq!(
        end.last().unwrap()["event"],
        "command_completed",
        "{end:#?}"
    );
}

#[tokio::test]
async fn cancel_stops_the_job_and_says_why() {
    let s = Server::start(server_bin!(), &[]).await;
    let mut ws = connect(&s, None).await.expect("connect");
    send(
        &mut ws,
        json!({"action": "execute_command", "request_id": "c", "command": "my_job", "params": {"duration": 60}}),
    )
    .await;
    let acc = next(&mut ws, LONG).await.unwrap();
    let job_id = acc["job_id"].as_str().unwrap().to_string();
    s.wait_status(&job_id, "RUNNING", LONG).await;
    send(
        &mut ws,
        json!({"action": "cancel_command", "request_id": "c", "job_id": job_id, "reason": "wait_timeout"}),
    )
    .await;
    let mut reply = None;
    let mut terminal = None;
    while terminal.is_none() {
        let m = next(&mut ws, LONG).await.expect("reply and terminal");
        if m["action"] == "cancel_command" {
            reply = Some(m);
        } else if m["event"] == "command_cancelled" {
            terminal = Some(m);
        }
    }
    let reply = reply.expect("the cancel's reply before its terminal event");
    assert_eq!(reply["success"], true, "{reply}");
    assert_eq!(reply["status"], "stopped");
    assert_eq!(reply["job_id"], job_id.as_str());
    let terminal = terminal.unwrap();
    assert_eq!(terminal["status"], "stopped", "{terminal}");
    assert_eq!(terminal["data"]["reason"], "wait_timeout");
    assert_eq!(terminal["result_ready"], true);
    let st = s
        .rpc("queue_get_job_status", json!({"job_id": job_id}))
        .await;
    assert_eq!(st["result"]["data"]["status"], "stopped", "{st}");
    assert_eq!(st["result"]["data"]["command_success"], false);

    // A second cancel: the job has ended (JOB_STATE_INVALID); unknown jobs and bad requests.
    for (msg, want) in [
        (
            json!({"action": "cancel_command", "job_id": job_id}),
            json!("JOB_STATE_INVALID"),
        ),
        (
            json!({"action": "cancel_command", "job_id": "nope"}),
            json!("JOB_NOT_FOUND"),
        ),
    ] {
        send(&mut ws, msg).await;
        let e = next(&mut ws, LONG).await.unwrap();
        assert_eq!(e["event"], "command_error", "{e}");
        assert_eq!(e["action"], "cancel_command");
        assert_eq!(e["data"]["domain_code"], want, "{e}");
    }
    for (msg, field) in [
        (json!({"action": "cancel_command"}), "job_id"),
        (json!({"action": "cancel_command", "job_id": 5}), "job_id"),
        (
            json!({"action": "cancel_command", "job_id": "x", "extra": 1}),
            "extra",
        ),
        (
            json!({"action": "cancel_command", "job_id": "x", "reason": "bored"}),
            "reason",
        ),
    ] {
        send(&mut ws, msg.clone()).await;
        let e = next(&mut ws, LONG).await.unwrap();
        assert_eq!(e["code"], -32602, "{msg} → {e}");
        assert_eq!(e["data"]["field"], field, "{e}");
    }
}

#[tokio::test]
async fn a_lost_caller_stops_its_job_unless_it_detached() {
    let s = Server::start(server_bin!(), &[]).await;
    // Closed without a word: the job is stopped (the framework's on_caller_loss = cancel).
    let mut ws = connect(&s, None).await.unwrap();
    send(
        &mut ws,
        json!({"action": "execute_command", "request_id": "x", "command": "my_job", "params": {"duration": 60}}),
    )
    .await;
    let lost = next(&mut ws, LONG).await.unwrap()["job_id"]
        .as_str()
        .unwrap()
        .to_string();
    s.wait_status(&lost, "RUNNING", LONG).await;
    drop(ws);
    let job = s.wait_status(&lost, "STOPPED", LONG).await;
    assert_eq!(job["status"], "STOPPED", "{job}");

    // Detached: the job runs on to its end.
    let mut ws = connect(&s, None).await.unwrap();
    send(
        &mut ws,
        json!({"action": "execute_command", "request_id": "y", "command": "my_job", "params": {"duration": 2}}),
    )
    .await;
    let kept = next(&mut ws, LONG).await.unwrap()["job_id"]
        .as_str()
        .unwrap()
        .to_string();
    send(
        &mut ws,
        json!({"action": "unsubscribe", "job_id": kept, "caller_loss": "detach"}),
    )
    .await;
    ws.close(None).await.unwrap();
    drop(ws);
    let job = s.wait_status(&kept, "COMPLETED", LONG).await;
    assert_eq!(job["status"], "COMPLETED", "{job}");

    // Another session still following the job: closing the first one does not stop it.
    let mut a = connect(&s, None).await.unwrap();
    let mut b = connect(&s, None).await.unwrap();
    send(
        &mut a,
        json!({"action": "execute_command", "request_id": "z", "command": "my_job", "params": {"duration": 2}}),
    )
    .await;
    let shared = next(&mut a, LONG).await.unwrap()["job_id"]
        .as_str()
        .unwrap()
        .to_string();
    send(
        &mut b,
        json!({"action": "subscribe", "subscription_type": "command_session", "job_id": shared}),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    drop(a);
    let end = until_terminal(&mut b, LONG).await;
    assert_eq!(
        end.last().unwrap()["event"],
        "command_completed",
        "{end:#?}"
    );
}

#[tokio::test]
async fn the_older_queue_job_subscription_gets_steps_and_the_end() {
    let s = Server::start(server_bin!(), &[]).await;
    s.queue(json!({"action": "add_job", "job_id": "old", "params": {"duration": 2}}))
        .await;
    let mut ws = connect(&s, None).await.unwrap();
    send(
        &mut ws,
        json!({"action": "subscribe", "subscription_type": "queue_job", "job_id": "old"}),
    )
    .await;
    s.queue(json!({"action": "start_job", "job_id": "old"}))
        .await;
    let mut steps = 0;
    let end = loop {
        let m = next(&mut ws, LONG).await.expect("events");
        match m["event"].as_str() {
            Some("job_processing_step") => {
                assert_eq!(m["job_id"], "old");
                assert!(m["progress_percent"].is_u64(), "{m}");
                steps += 1;
            }
            Some("job_completed") => break m,
            _ => panic!("unexpected {m}"),
        }
    };
    assert!(steps > 0);
    assert_eq!(end["result"]["task_name"], "default_task", "{end}");
    assert_eq!(end["result"]["status"], "completed", "{end}");
    // A job that has already ended: its end at once.
    send(
        &mut ws,
        json!({"action": "subscribe", "subscription_type": "queue_job", "job_id": "old"}),
    )
    .await;
    let again = next(&mut ws, LONG).await.unwrap();
    assert_eq!(again["event"], "job_completed", "{again}");
    // A failing job.
    s.queue(json!({"action": "add_job", "job_id": "bad", "job_type": "failing", "params": {"code": "E", "message": "m"}}))
        .await;
    send(
        &mut ws,
        json!({"action": "subscribe", "subscription_type": "queue_job", "job_id": "bad"}),
    )
    .await;
    s.queue(json!({"action": "start_job", "job_id": "bad"}))
        .await;
    let failed = loop {
        let m = next(&mut ws, LONG)
            .await
            .expect("events of the failing job");
        if m["event"] != "job_processing_step" {
            break m;
        }
    };
    assert_eq!(failed["event"], "job_failed", "{failed}");
    assert!(failed["error"].as_str().unwrap().contains("E"), "{failed}");
}

#[tokio::test]
async fn a_plain_get_of_ws_is_a_json_error() {
    let s = Server::start(server_bin!(), &[]).await;
    let (code, v) = s.get("/ws", &[]).await;
    assert_eq!(code, 400, "{v}");
    assert!(v["detail"].as_str().unwrap().contains("WebSocket"), "{v}");
}

#[tokio::test]
async fn the_api_key_guards_the_upgrade() {
    let s = Server::start(server_bin!(), &["--api-key", "k3y"]).await;
    match connect(&s, None).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(r)) => assert_eq!(r.status(), 401),
        other => panic!("expected 401, got {:?}", other.map(|_| ())),
    }
    match connect(&s, Some("wrong")).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(r)) => assert_eq!(r.status(), 401),
        other => panic!("expected 401, got {:?}", other.map(|_| ())),
    }
    let mut ws = connect(&s, Some("k3y")).await.expect("with the key");
    send(
        &mut ws,
        json!({"action": "execute_command", "request_id": "1", "command": "noop", "params": {}}),
    )
    .await;
    let end = until_terminal(&mut ws, LONG).await;
    assert_eq!(end.last().unwrap()["event"], "command_completed");
}

/// Several hosts on PostgreSQL: a session on host A follows its job to host B, which runs it,
/// and gets its progress and its end from B's stored changes.
#[tokio::test]
async fn a_session_follows_its_job_to_another_host() {
    let url = queuemgr_tests::postgres_url().await;
    let schema = format!("qmt{}_wshosts", std::process::id());
    let args = |host: &'static str| {
        vec![
            "--store".to_string(),
            url.clone(),
            "--store-schema".into(),
            schema.clone(),
            "--host-id".into(),
            host.into(),
            "--max-concurrent-jobs".into(),
            "1".into(),
        ]
    };
    let start = |host| {
        let a = args(host);
        async move {
            let refs: Vec<&str> = a.iter().map(String::as_str).collect();
            Server::start(server_bin!(), &refs).await
        }
    };
    let a = start("a").await;
    let b = start("b").await;
    // A's only slot is taken by a long job (an add with `start` claims on the host it reaches).
    a.queue(
        json!({"action": "add_job", "job_id": "busy", "params": {"duration": 60}, "start": true}),
    )
    .await;
    a.wait_status("busy", "RUNNING", LONG).await;
    let (_, busy) = a.get("/api/v1/jobs/busy", &[]).await;
    assert_eq!(busy["host"], "a", "{busy}");
    let mut ws = connect(&a, None).await.unwrap();
    send(
        &mut ws,
        json!({"action": "execute_command", "request_id": "x", "command": "my_job", "params": {"duration": 2}}),
    )
    .await;
    let acc = next(&mut ws, LONG).await.unwrap();
    assert_eq!(acc["event"], "command_accepted", "{acc}");
    let job_id = acc["job_id"].as_str().unwrap().to_string();
    let events = until_terminal(&mut ws, LONG).await;
    assert_eq!(
        events.last().unwrap()["event"],
        "command_completed",
        "{events:#?}"
    );
    let (_, job) = b.get(&format!("/api/v1/jobs/{job_id}"), &[]).await;
    assert_eq!(job["host"], "b", "{job}");
    let st = a
        .rpc("queue_get_job_status", json!({"job_id": job_id}))
        .await;
    assert_eq!(
        st["result"]["data"]["result"]["result"]["success"], true,
        "{st}"
    );
    a.queue(json!({"action": "stop_job", "job_id": "busy"}))
        .await;
    drop((a, b));
    queuemgr_tests::drop_schemas(&url, &schema, std::slice::from_ref(&schema)).await;
}

/// `/ws` sockets have a cap of their own (`--max-connections`): past it the upgrade is answered
/// 503 with JSON, and a closed socket frees its place. Upgraded sockets leave the HTTP slots.
#[tokio::test]
async fn sockets_past_the_cap_get_a_503() {
    let s = Server::start(server_bin!(), &["--max-connections", "2"]).await;
    let a = connect(&s, None).await.expect("first");
    let _b = connect(&s, None).await.expect("second");
    match connect(&s, None).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(r)) => {
            assert_eq!(r.status(), 503);
            let body = String::from_utf8_lossy(r.body().as_deref().unwrap_or_default()).to_string();
            assert!(body.contains("WebSocket connections"), "{body}");
        }
        other => panic!("expected 503, got {:?}", other.map(|_| ())),
    }
    // HTTP is still served beside the two sockets.
    assert_eq!(
        s.queue(json!({"action": "health"})).await["status"],
        "healthy"
    );
    drop(a);
    let t = std::time::Instant::now();
    loop {
        match connect(&s, None).await {
            Ok(_) => break,
            Err(_) if t.elapsed() < LONG => tokio::time::sleep(Duration::from_millis(50)).await,
            Err(e) => panic!("a place never freed: {e}"),
        }
    }
}
