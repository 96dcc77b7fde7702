//! Periodic jobs end to end: schedules through the seed's actions and the framework's
//! commands, declared in a manifest, across a `kill -9`, and exactly once across three hosts
//! on PostgreSQL whose leader is killed.

use queuemgr_tests::{Server, broken, job_types, job_wasm, server_bin, type_info};
use serde_json::{Value, json};
use std::time::Duration;

/// The ids of the jobs schedule `name` enqueued, oldest slot first.
async fn slots(s: &Server, name: &str) -> Vec<String> {
    let v = s.queue(json!({"action": "list_jobs"})).await;
    let prefix = format!("{name}@");
    let mut ids: Vec<String> = v["jobs"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|j| j["job_id"].as_str())
                .filter(|id| id.starts_with(&prefix))
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
    ids.sort();
    ids
}

/// A slot's time, seconds since the epoch, from its job's id (`name@20260101T000000Z`).
fn second(id: &str) -> i64 {
    let t = id.rsplit_once('@').map(|(_, t)| t).unwrap_or_default();
    chrono::NaiveDateTime::parse_from_str(t, "%Y%m%dT%H%M%SZ")
        .map(|t| t.and_utc().timestamp())
        .unwrap_or_else(|e| panic!("slot of {id}: {e}"))
}

/// Asserts the slots are every second from the first to the last, each once.
fn every_second_once(ids: &[String]) {
    let secs: Vec<i64> = ids.iter().map(|i| second(i)).collect();
    for w in secs.windows(2) {
        assert_eq!(w[1] - w[0], 1, "a slot missed or doubled: {ids:?}");
    }
}

async fn error(s: &Server, params: Value) -> Value {
    s.execute(json!({"command": "queue", "params": params}))
        .await
}

#[tokio::test]
async fn a_schedule_enqueues_each_slot_once_and_pauses_and_resumes() {
    let s = Server::start(server_bin!(), &[]).await;
    let v = s
        .queue(
            json!({"action": "add_schedule", "name": "tick", "job_type": "noop",
            "cron": "* * * * * *", "overlap": "allow", "params": {"sleep_ms": 0}}),
        )
        .await;
    assert_eq!(v["action"], "add_schedule");
    let sch = &v["schedule"];
    assert_eq!(sch["name"], "tick");
    assert_eq!(sch["origin"], "api");
    assert_eq!(sch["timezone"], "UTC");
    assert_eq!(sch["next_runs"].as_array().map(Vec::len), Some(3), "{v}");
    tokio::time::sleep(Duration::from_millis(3_500)).await;
    let ids = slots(&s, "tick").await;
    assert!(ids.len() >= 2, "{ids:?}");
    every_second_once(&ids);
    let last = ids.last().unwrap().clone();
    let j = s
        .wait_status(&last, "COMPLETED", Duration::from_secs(10))
        .await;
    assert_eq!(j["status"], "COMPLETED", "{j}");
    assert_eq!(j["schedule"]["name"], "tick", "{j}");
    // The list shows the last run and its job.
    let l = s.queue(json!({"action": "list_schedules"})).await;
    assert_eq!(l["count"], 1);
    assert!(l["schedules"][0]["last_job_id"].is_string(), "{l}");

    // Paused: once the pause is answered, no slot is enqueued.
    let p = s
        .queue(json!({"action": "pause_schedule", "name": "tick"}))
        .await;
    assert_eq!(p["schedule"]["enabled"], false);
    assert_eq!(p["schedule"]["next_runs"], json!([]));
    let paused = slots(&s, "tick").await.len();
    tokio::time::sleep(Duration::from_millis(2_200)).await;
    assert_eq!(slots(&s, "tick").await.len(), paused);

    // Resumed (the framework's command): from now on; the paused seconds are not enqueued.
    let r = s
        .rpc("queue_resume_schedule", json!({"name": "tick"}))
        .await;
    assert_eq!(r["result"]["data"]["schedule"]["enabled"], true, "{r}");
    let resumed_at = chrono::Utc::now().timestamp();
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    let after = slots(&s, "tick").await;
    assert!(after.len() > paused, "{after:?}");
    for id in &after[paused..] {
        assert!(second(id) >= resumed_at, "{id} is from the paused time");
    }
    // Deleted (the framework's command): its jobs stay; it is gone.
    let d = s
        .rpc("queue_delete_schedule", json!({"name": "tick"}))
        .await;
    assert_eq!(d["result"]["data"]["schedule"]["name"], "tick", "{d}");
    let gone = s.rpc("queue_get_schedule", json!({"name": "tick"})).await;
    assert_eq!(
        gone["result"]["error"]["data"]["domain_code"], "SCHEDULE_NOT_FOUND",
        "{gone}"
    );
    let kept = slots(&s, "tick").await.len();
    assert!(kept >= after.len());
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    assert_eq!(slots(&s, "tick").await.len(), kept);
}

#[tokio::test]
async fn bad_schedules_are_refused_and_change_nothing() {
    let s = Server::start(server_bin!(), &[]).await;
    let add = |extra: Value| {
        let mut p =
            json!({"action": "add_schedule", "name": "n", "job_type": "noop", "cron": "0 3 * * *"});
        for (k, v) in extra.as_object().unwrap() {
            p[k] = v.clone();
        }
        p
    };
    let v = error(&s, add(json!({"cron": "61 * * * *"}))).await;
    assert_eq!(v["error"]["code"], -32602, "{v}");
    assert_eq!(v["error"]["data"]["field"], "cron", "{v}");
    let v = error(&s, add(json!({"cron": "0 0 30 2 *"}))).await;
    assert_eq!(
        v["error"]["data"]["field"], "cron",
        "February 30th never comes: {v}"
    );
    let v = error(&s, add(json!({"timezone": "Mars/Olympus"}))).await;
    assert_eq!(v["error"]["data"]["field"], "timezone", "{v}");
    let v = error(&s, add(json!({"job_type": "nope"}))).await;
    assert_eq!(v["error"]["code"], -32602, "{v}");
    let v = error(&s, add(json!({"overlap": "sometimes"}))).await;
    assert_eq!(v["error"]["code"], -32602, "{v}");
    let v = error(
        &s,
        json!({"action": "add_schedule", "job_type": "noop", "cron": "* * * * *"}),
    )
    .await;
    assert_eq!(v["error"]["data"]["field"], "name", "{v}");
    assert_eq!(
        s.queue(json!({"action": "list_schedules"})).await["count"],
        0,
        "nothing was stored"
    );
    s.queue(add(json!({}))).await;
    let v = error(&s, add(json!({"cron": "0 4 * * *"}))).await;
    assert_eq!(
        v["result"]["error"]["data"]["domain_code"], "SCHEDULE_ALREADY_EXISTS",
        "{v}"
    );
    let v = error(&s, json!({"action": "delete_schedule", "name": "other"})).await;
    assert_eq!(
        v["result"]["error"]["data"]["domain_code"], "SCHEDULE_NOT_FOUND",
        "{v}"
    );
    let l = s
        .queue(json!({"action": "get_schedule", "name": "n"}))
        .await;
    assert_eq!(
        l["schedule"]["cron"], "0 3 * * *",
        "the first one is unchanged"
    );
    // An update with a bad expression changes nothing either.
    let v = error(
        &s,
        json!({"action": "update_schedule", "name": "n", "cron": "nope"}),
    )
    .await;
    assert_eq!(v["error"]["data"]["field"], "cron", "{v}");
    let l = s
        .queue(json!({"action": "get_schedule", "name": "n"}))
        .await;
    assert_eq!(l["schedule"]["cron"], "0 3 * * *");
}

/// Waits until `done` holds for the list of schedules, or panics after `secs`.
async fn wait_schedules(s: &Server, secs: u64, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    loop {
        let l = s.queue(json!({"action": "list_schedules"})).await;
        if done(&l) {
            return l;
        }
        assert!(tokio::time::Instant::now() < deadline, "schedules: {l}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn a_manifest_declares_schedules_and_follows_its_file() {
    let s = Server::start(server_bin!(), &[]).await;
    let dir = s.jobs_dir();
    let manifest = r#"
[limits]
max_attempts = 3

[[schedules]]
name = "from-file"
cron = "* * * * * *"
overlap = "allow"
params = { sleep_ms = 0 }
"#;
    std::fs::write(dir.join("ticker.toml"), manifest).unwrap();
    std::fs::copy(job_wasm("noop"), dir.join("ticker.wasm")).unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let v = job_types(&s).await;
        assert!(broken(&v, "ticker").is_none(), "{v}");
        if type_info(&v, "ticker").is_some() {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "ticker did not load: {v}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let l = wait_schedules(&s, 10, |l| l["count"] == 1).await;
    let sch = &l["schedules"][0];
    assert_eq!(sch["name"], "from-file");
    assert_eq!(sch["origin"], "manifest");
    assert_eq!(sch["job_type"], "ticker");
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    let ids = slots(&s, "from-file").await;
    assert!(!ids.is_empty());
    every_second_once(&ids);
    // A schedule that sets no attempts takes its type's default.
    let j = s
        .queue(json!({"action": "get_status", "job_id": ids[0]}))
        .await;
    assert_eq!(j["status"]["max_attempts"], 3, "{j}");
    // The manifest owns it: the API may pause it, not delete or change it.
    let v = error(
        &s,
        json!({"action": "delete_schedule", "name": "from-file"}),
    )
    .await;
    assert_eq!(
        v["result"]["error"]["data"]["domain_code"], "SCHEDULE_IN_MANIFEST",
        "{v}"
    );
    let v = error(
        &s,
        json!({"action": "update_schedule", "name": "from-file", "cron": "0 * * * *"}),
    )
    .await;
    assert_eq!(
        v["result"]["error"]["data"]["domain_code"], "SCHEDULE_IN_MANIFEST",
        "{v}"
    );
    s.queue(json!({"action": "pause_schedule", "name": "from-file"}))
        .await;
    // A changed manifest changes it (and keeps the operator's pause); an emptied one removes it.
    std::fs::write(
        dir.join("ticker.toml"),
        manifest.replace("* * * * * *", "0 0 * * * *"),
    )
    .unwrap();
    let l = wait_schedules(&s, 15, |l| l["schedules"][0]["cron"] == "0 0 * * * *").await;
    assert_eq!(l["schedules"][0]["enabled"], false, "{l}");
    std::fs::write(dir.join("ticker.toml"), "").unwrap();
    wait_schedules(&s, 15, |l| l["count"] == 0).await;
}

/// A host killed with `kill -9` and started again enqueues each slot it missed once
/// (`catch_up: all`), and none twice.
#[tokio::test]
async fn a_restarted_host_catches_up_each_missed_slot_once() {
    let mut s = Server::start(server_bin!(), &[]).await;
    s.queue(
        json!({"action": "add_schedule", "name": "cu", "job_type": "noop",
        "cron": "* * * * * *", "overlap": "allow", "catch_up": "all"}),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    s.kill9();
    tokio::time::sleep(Duration::from_secs(3)).await;
    s.restart().await;
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    let ids = slots(&s, "cu").await;
    assert!(ids.len() >= 7, "{ids:?}");
    every_second_once(&ids);
}

/// The host whose periodic service enqueued jobs (the leader), by its `/metrics`.
async fn enqueued_by(s: &Server) -> u64 {
    let body = match reqwest::get(format!("{}/metrics", s.url)).await {
        Ok(r) => r.text().await.unwrap_or_default(),
        Err(_) => String::new(),
    };
    body.lines()
        .find_map(|l| l.strip_prefix("queuemgr_schedule_jobs_total "))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .map_or(0, |v| v as u64)
}

/// Three hosts on one PostgreSQL schema: a schedule every second is enqueued by one of them,
/// each slot once; the leader killed with `kill -9` in the middle, another host takes over and
/// enqueues the slots missed meanwhile (`catch_up: all`): from the first slot to the last,
/// every second once.
#[tokio::test]
async fn three_hosts_enqueue_each_slot_once_through_a_leader_kill() {
    let url = queuemgr_tests::postgres_url().await;
    let schema = format!("qmt{}_schedules", std::process::id());
    let flags = |host: &'static str| {
        vec![
            "--store".to_string(),
            url.clone(),
            "--store-schema".to_string(),
            schema.clone(),
            "--host-id".to_string(),
            host.to_string(),
            "--lease-secs".to_string(),
            "2".to_string(),
            "--maintenance-interval-secs".to_string(),
            "1".to_string(),
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
        start(flags("sched-a")).await,
        start(flags("sched-b")).await,
        start(flags("sched-c")).await,
    ];
    hosts[1]
        .queue(
            json!({"action": "add_schedule", "name": "hb", "job_type": "noop",
            "cron": "* * * * * *", "overlap": "allow", "catch_up": "all"}),
        )
        .await;
    // Every host sees it.
    for h in &hosts {
        assert_eq!(
            h.queue(json!({"action": "list_schedules"})).await["count"],
            1
        );
    }
    tokio::time::sleep(Duration::from_secs(4)).await;
    let mut leader = None;
    for (i, h) in hosts.iter().enumerate() {
        if enqueued_by(h).await > 0 {
            assert!(leader.is_none(), "two hosts enqueued slots");
            leader = Some(i);
        }
    }
    let leader = leader.expect("one host enqueued the slots");
    hosts[leader].kill9();
    let alive: Vec<usize> = (0..3).filter(|i| *i != leader).collect();
    tokio::time::sleep(Duration::from_secs(8)).await;
    let ids = slots(&hosts[alive[0]], "hb").await;
    let killed_at = chrono::Utc::now().timestamp() - 8;
    assert!(
        ids.iter().any(|i| second(i) > killed_at + 5),
        "another host took over: {ids:?}"
    );
    every_second_once(&ids);
    // Every job runs, once.
    let last = ids.last().unwrap();
    let j = hosts[alive[0]]
        .wait_status(last, "COMPLETED", Duration::from_secs(20))
        .await;
    assert_eq!(j["status"], "COMPLETED", "{j}");
    for h in &mut hosts {
        h.kill9();
    }
    queuemgr_tests::drop_schemas(&url, &schema, &[]).await;
}
