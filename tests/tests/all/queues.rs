//! Named queues, concurrency keys, rate limits and fairness end to end: through the seed's
//! actions and the framework's commands, declared in a manifest, and across three hosts on
//! PostgreSQL.

use queuemgr_tests::{Server, broken, job_types, job_wasm, server_bin, type_info};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::time::Duration;

/// Adds a started `noop` job that sleeps `ms`, with extra fields (queue, key).
async fn add(s: &Server, id: &str, ms: u64, extra: Value) {
    let mut p = json!({"action": "add_job", "job_id": id, "job_type": "noop",
        "params": {"sleep_ms": ms}, "start": true});
    if let (Some(p), Some(e)) = (p.as_object_mut(), extra.as_object()) {
        p.extend(e.clone());
    }
    s.queue(p).await;
}

/// The running jobs per `queue/key` as one host reads them (on PostgreSQL: every host's).
async fn running(s: &Server) -> BTreeMap<String, usize> {
    let v = s
        .queue(json!({"action": "list_jobs", "status_filter": "RUNNING"}))
        .await;
    let mut m = BTreeMap::new();
    for j in v["jobs"].as_array().cloned().unwrap_or_default() {
        let q = j["queue"].as_str().unwrap_or("default").to_string();
        let k = j["concurrency_key"].as_str().unwrap_or("-").to_string();
        *m.entry(format!("{q}/{k}")).or_default() += 1;
        *m.entry(format!("{q}/*")).or_default() += 1;
    }
    m
}

/// Samples the running jobs until every job in `ids` is COMPLETED (or `secs` pass); the most
/// seen running at once per `queue/key` (and `queue/*` per queue).
async fn peaks(s: &Server, ids: &[String], secs: u64) -> BTreeMap<String, usize> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    let mut peak: BTreeMap<String, usize> = BTreeMap::new();
    loop {
        for (k, n) in running(s).await {
            let p = peak.entry(k).or_default();
            *p = (*p).max(n);
        }
        let v = s.queue(json!({"action": "list_jobs"})).await;
        let done = v["jobs"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter(|j| ids.iter().any(|i| j["job_id"] == i.as_str()))
                    .filter(|j| j["status"] == "COMPLETED")
                    .count()
            })
            .unwrap_or(0);
        if done == ids.len() {
            return peak;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{done} of {} completed: {v}",
            ids.len()
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// The job as `get_status` shows it.
async fn status(s: &Server, id: &str) -> Value {
    s.queue(json!({"action": "get_status", "job_id": id})).await["status"].clone()
}

async fn queue_view(s: &Server, name: &str) -> Value {
    let l = s.queue(json!({"action": "list_queues"})).await;
    l["queues"]
        .as_array()
        .and_then(|a| a.iter().find(|q| q["name"] == name).cloned())
        .unwrap_or(Value::Null)
}

#[tokio::test]
async fn a_queue_limit_a_key_limit_and_a_pause_hold_through_the_api() {
    let s = Server::start(server_bin!(), &[]).await;
    // A queue of one at a time (the seed's action), and one key at a time (the framework's).
    let v = s
        .queue(json!({"action": "set_queue", "queue": "mail", "concurrency": 1}))
        .await;
    assert_eq!(v["queue"]["concurrency"], 1, "{v}");
    assert_eq!(v["queue"]["origin"], "api", "{v}");
    let r = s
        .rpc(
            "queue_set_queue",
            json!({"queue": "tenants", "key_concurrency": 1}),
        )
        .await;
    assert_eq!(r["result"]["data"]["queue"]["key_concurrency"], 1, "{r}");
    let mut ids = Vec::new();
    for i in 0..4 {
        let id = format!("m{i}");
        add(&s, &id, 250, json!({"queue": "mail"})).await;
        ids.push(id);
    }
    for key in ["a", "b"] {
        for i in 0..3 {
            let id = format!("t{key}{i}");
            add(
                &s,
                &id,
                250,
                json!({"queue": "tenants", "concurrency_key": key}),
            )
            .await;
            ids.push(id);
        }
    }
    let j = status(&s, "ta0").await;
    assert_eq!(j["queue"], "tenants", "{j}");
    assert_eq!(j["concurrency_key"], "a", "{j}");
    let peak = peaks(&s, &ids, 30).await;
    assert_eq!(
        peak.get("mail/*"),
        Some(&1),
        "mail runs one at a time: {peak:?}"
    );
    assert_eq!(peak.get("tenants/a"), Some(&1), "{peak:?}");
    assert_eq!(peak.get("tenants/b"), Some(&1), "{peak:?}");
    assert_eq!(
        peak.get("tenants/*"),
        Some(&2),
        "two keys run side by side: {peak:?}"
    );

    // Paused: a new job waits; what is listed says so; resumed, it runs.
    let v = s
        .queue(json!({"action": "pause_queue", "queue": "mail"}))
        .await;
    assert_eq!(v["queue"]["paused"], true, "{v}");
    add(&s, "held", 0, json!({"queue": "mail"})).await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    let j = status(&s, "held").await;
    assert_eq!(j["status"], "PENDING", "{j}");
    assert_eq!(j["held_by"], "paused", "{j}");
    let q = queue_view(&s, "mail").await;
    assert_eq!(q["paused"], true, "{q}");
    assert_eq!(q["waiting"], 1, "{q}");
    let m = reqwest::get(format!("{}/metrics", s.url))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for line in [
        "queuemgr_queue_paused{queue=\"mail\"} 1",
        "queuemgr_queue_jobs{queue=\"mail\",state=\"waiting\"} 1",
        "queuemgr_queue_concurrency_limit{queue=\"mail\"} 1",
        "queuemgr_queue_paused{queue=\"tenants\"} 0",
    ] {
        assert!(m.lines().any(|l| l == line), "{line} not in\n{m}");
    }
    let r = s.rpc("queue_resume_queue", json!({"queue": "mail"})).await;
    assert_eq!(r["result"]["data"]["queue"]["paused"], false, "{r}");
    let j = s
        .wait_status("held", "COMPLETED", Duration::from_secs(10))
        .await;
    assert_eq!(j["status"], "COMPLETED", "{j}");
    // Every queue is listed with its jobs; `default` always.
    let r = s.rpc("queue_list_queues", json!({})).await;
    let names: Vec<&str> = r["result"]["data"]["queues"]
        .as_array()
        .map(|a| a.iter().filter_map(|q| q["name"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(names, vec!["default", "mail", "tenants"], "{r}");
}

#[tokio::test]
async fn a_rate_limit_spaces_starts_and_the_rest_wait_pending() {
    let s = Server::start(server_bin!(), &[]).await;
    s.queue(json!({"action": "set_queue", "queue": "slow", "rate": "2/s"}))
        .await;
    let q = queue_view(&s, "slow").await;
    assert_eq!(q["rate"], "2/s", "{q}");
    let ids: Vec<String> = (0..5).map(|i| format!("r{i}")).collect();
    for id in &ids {
        add(&s, id, 0, json!({"queue": "slow"})).await;
    }
    tokio::time::sleep(Duration::from_millis(250)).await;
    let pending = {
        let mut n = 0;
        for id in &ids {
            if status(&s, id).await["status"] == "PENDING" {
                n += 1;
            }
        }
        n
    };
    assert_eq!(pending, 3, "a burst of 2, the rest wait");
    // A waiting job says why, and until when.
    let waiting = {
        let mut w = Value::Null;
        for id in &ids {
            let j = status(&s, id).await;
            if j["status"] == "PENDING" {
                w = j;
                break;
            }
        }
        w
    };
    assert_eq!(waiting["held_by"], "rate", "{waiting}");
    assert!(waiting["eligible_at"].is_string(), "{waiting}");
    for id in &ids {
        let j = s
            .wait_status(id, "COMPLETED", Duration::from_secs(10))
            .await;
        assert_eq!(j["status"], "COMPLETED", "{j}");
    }
    // Started every half second after the burst: the fifth at least a second after the first.
    let started = |j: &Value| {
        chrono::NaiveDateTime::parse_from_str(
            j["started_at"].as_str().unwrap_or_default(),
            "%Y-%m-%dT%H:%M:%S%.f",
        )
        .map(|t| t.and_utc().timestamp_millis())
        .unwrap_or_else(|e| panic!("started_at of {j}: {e}"))
    };
    let mut times = Vec::new();
    for id in &ids {
        times.push(started(&status(&s, id).await));
    }
    times.sort_unstable();
    assert!(
        times[4] - times[0] >= 1_000,
        "five starts at 2/s take at least 1 s: {times:?}"
    );
}

#[tokio::test]
async fn bad_queue_settings_are_refused_and_change_nothing() {
    let s = Server::start(server_bin!(), &[]).await;
    s.queue(json!({"action": "set_queue", "queue": "q", "concurrency": 3}))
        .await;
    let bad = [
        json!({"action": "set_queue", "queue": "q", "rate": "fast"}),
        json!({"action": "set_queue", "queue": "q", "concurrency": -1}),
        json!({"action": "set_queue", "queue": "q", "concurrency": "two"}),
        json!({"action": "set_queue", "concurrency": 2}),
        json!({"action": "pause_queue"}),
        json!({"action": "add_job", "job_type": "noop", "queue": ""}),
        json!({"action": "add_job", "job_type": "noop", "concurrency_key": "a\u{1}b"}),
    ];
    for p in bad {
        let v = s.execute(json!({"command": "queue", "params": p})).await;
        let refused = v["error"]["code"].is_i64()
            || (v["result"]["success"] == false && v["result"]["error"]["code"].is_i64());
        assert!(refused, "{p}: {v}");
    }
    let r = s
        .rpc(
            "queue_set_queue",
            json!({"queue": "q", "key_rate": "1/fortnight"}),
        )
        .await;
    assert!(
        r["error"].is_object() || r["result"]["success"] == false,
        "{r}"
    );
    let q = queue_view(&s, "q").await;
    assert_eq!(q["concurrency"], 3, "{q}");
    assert!(q["rate"].is_null() && q["key_rate"].is_null(), "{q}");
    // 0 lifts a limit.
    let v = s
        .queue(json!({"action": "set_queue", "queue": "q", "concurrency": 0}))
        .await;
    assert!(v["queue"]["concurrency"].is_null(), "{v}");
}

#[tokio::test]
async fn a_manifest_names_the_queue_of_its_jobs_and_declares_its_limits() {
    let s = Server::start(server_bin!(), &[]).await;
    let dir = s.jobs_dir();
    let manifest = r#"
[queue]
name = "reports"
concurrency = 1
rate = "100/min"
priority = 7
"#;
    std::fs::write(dir.join("report.toml"), manifest).unwrap();
    std::fs::copy(job_wasm("noop"), dir.join("report.wasm")).unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let v = job_types(&s).await;
        assert!(broken(&v, "report").is_none(), "{v}");
        if type_info(&v, "report").is_some() {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "report did not load: {v}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let q = loop {
        let q = queue_view(&s, "reports").await;
        if q["origin"] == "manifest" {
            break q;
        }
        assert!(tokio::time::Instant::now() < deadline, "{q}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(q["concurrency"], 1, "{q}");
    assert_eq!(q["rate"], "100/min", "{q}");
    assert_eq!(q["job_types"], json!(["report"]), "{q}");
    let mut ids = Vec::new();
    for i in 0..3 {
        let id = format!("rep{i}");
        s.queue(
            json!({"action": "add_job", "job_id": id, "job_type": "report",
            "params": {"sleep_ms": 200}, "start": true}),
        )
        .await;
        ids.push(id);
    }
    let j = status(&s, "rep0").await;
    assert_eq!(j["queue"], "reports", "{j}");
    assert_eq!(
        j["priority"], 7,
        "the queue's priority is its jobs' default: {j}"
    );
    let peak = peaks(&s, &ids, 20).await;
    assert_eq!(peak.get("reports/*"), Some(&1), "{peak:?}");
    // The API's settings win from then on.
    s.queue(json!({"action": "set_queue", "queue": "reports", "concurrency": 2}))
        .await;
    let q = queue_view(&s, "reports").await;
    assert_eq!(
        (q["concurrency"].clone(), q["origin"].clone()),
        (json!(2), json!("api"))
    );
}

#[tokio::test]
async fn three_hosts_hold_a_queue_limit_and_a_key_limit_together() {
    let url = queuemgr_tests::postgres_url().await;
    let schema = format!("qmt{}_queues", std::process::id());
    let flags = |host: &'static str| {
        vec![
            "--store".to_string(),
            url.clone(),
            "--store-schema".to_string(),
            schema.clone(),
            "--host-id".to_string(),
            host.to_string(),
        ]
    };
    let start = |f: Vec<String>| async move {
        Server::start(
            server_bin!(),
            &f.iter().map(String::as_str).collect::<Vec<_>>(),
        )
        .await
    };
    let mut hosts = vec![
        start(flags("q-a")).await,
        start(flags("q-b")).await,
        start(flags("q-c")).await,
    ];
    hosts[0]
        .queue(json!({"action": "set_queue", "queue": "shared", "concurrency": 2}))
        .await;
    hosts[1]
        .queue(json!({"action": "set_queue", "queue": "keyed", "key_concurrency": 1}))
        .await;
    // Every host adds jobs, so that each would claim its own at once if it could.
    let mut ids = Vec::new();
    for i in 0..12 {
        let id = format!("s{i}");
        add(&hosts[i % 3], &id, 300, json!({"queue": "shared"})).await;
        ids.push(id);
    }
    for i in 0..9 {
        let id = format!("k{i}");
        let key = ["x", "y", "z"][i % 3];
        add(
            &hosts[(i + 1) % 3],
            &id,
            300,
            json!({"queue": "keyed", "concurrency_key": key}),
        )
        .await;
        ids.push(id);
    }
    let peak = peaks(&hosts[2], &ids, 60).await;
    assert_eq!(peak.get("shared/*"), Some(&2), "across hosts: {peak:?}");
    for key in ["x", "y", "z"] {
        assert_eq!(peak.get(&format!("keyed/{key}")), Some(&1), "{peak:?}");
    }
    for h in &mut hosts {
        h.kill9();
    }
    queuemgr_tests::drop_schemas(&url, &schema, &[]).await;
}
