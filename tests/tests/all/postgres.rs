//! PostgreSQL mode when the database misbehaves: a commit whose answer is lost, a run its host
//! does not hold, a database that restarts under load.

use queuemgr::store::postgres::{PgConfig, PgStore};
use queuemgr::store::{Claimant, JobStore, NewJob};
use queuemgr_tests::faults::CommitLossProxy;
use queuemgr_tests::server_bin;
use queuemgr_tests::store_conformance::started;
use queuemgr_tests::{Server, drop_schemas, postgres_url};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;

/// `url` with its host and port replaced by `addr`.
fn via(url: &str, addr: std::net::SocketAddr) -> String {
    let rest = url.split_once('@').map_or(url, |(_, r)| r);
    let path = rest.split_once('/').map_or("", |(_, p)| p);
    let user = url
        .strip_prefix("postgres://")
        .and_then(|u| u.split_once('@'))
        .map_or("postgres", |(u, _)| u);
    format!("postgres://{user}@{addr}/{path}")
}

/// An `add_job` (or `start_job`) whose COMMIT reached the database but whose answer was lost
/// must not be reported as "nothing was changed", and a job it claimed must run: the host finds
/// out what became of the commit once it reaches the database again, and answers that.
#[tokio::test]
async fn a_commit_whose_answer_is_lost_is_found_out_not_reported_as_nothing_changed() {
    let url = postgres_url().await;
    let schema = format!("qmt{}_lostcommit", std::process::id());
    let proxy = CommitLossProxy::start("127.0.0.1:5432".parse().unwrap()).await;
    let through = via(&url, proxy.addr);
    // A long lease: no heartbeat commits while a commit is about to be lost.
    let s = Server::start(
        server_bin!(),
        &[
            "--store",
            &through,
            "--store-schema",
            &schema,
            "--host-id",
            "solo",
            "--lease-secs",
            "60",
        ],
    )
    .await;
    let add = |id: &str, start: bool| json!({"action": "add_job", "job_id": id, "job_type": "noop", "params": {}, "start": start});
    // Added and started in one write.
    proxy.lose_next_commit();
    let v = s.queue(add("lost-add-start", true)).await;
    assert_eq!(proxy.lost(), 1, "the fault happened");
    // (`queue` asserts that the answer is a success.)
    assert_eq!(
        v["status"], "RUNNING",
        "the commit was made, and is reported: {v}"
    );
    let j = s
        .wait_status("lost-add-start", "COMPLETED", Duration::from_secs(20))
        .await;
    assert_eq!(j["status"], "COMPLETED", "the claimed job ran: {j}");
    // Added, then started.
    s.queue(add("lost-start", false)).await;
    proxy.lose_next_commit();
    let v = s
        .queue(json!({"action": "start_job", "job_id": "lost-start"}))
        .await;
    assert_eq!(proxy.lost(), 2, "the fault happened");
    assert_eq!(v["job_id"], "lost-start", "{v}");
    let j = s
        .wait_status("lost-start", "COMPLETED", Duration::from_secs(20))
        .await;
    assert_eq!(j["status"], "COMPLETED", "{j}");
    // Added only.
    proxy.lose_next_commit();
    let v = s.queue(add("lost-add", false)).await;
    assert_eq!(proxy.lost(), 3, "the fault happened");
    assert_eq!(v["job_id"], "lost-add", "{v}");
    let v = s
        .queue(json!({"action": "get_status", "job_id": "lost-add"}))
        .await;
    assert_eq!(v["status"]["status"], "PENDING", "{v}");
    drop(s);
    drop_schemas(&url, &schema, &[]).await;
}

/// A job left RUNNING on a host that does not run it (its claim's answer was lost) is not kept
/// alive by that host's heartbeat: a host extends only the leases of the runs it holds, and the
/// rescuer takes the job back once its lease ends.
#[tokio::test]
async fn a_run_its_host_does_not_hold_is_rescued_not_renewed() {
    let url = postgres_url().await;
    let schema = format!("qmt{}_orphan", std::process::id());
    let s = Server::start(
        server_bin!(),
        &[
            "--store",
            &url,
            "--store-schema",
            &schema,
            "--host-id",
            "solo",
            "--lease-secs",
            "2",
            "--maintenance-interval-secs",
            "1",
            "--retry-base-ms",
            "50",
        ],
    )
    .await;
    // The orphan: claimed for "solo" in the database, never handed to solo's executor.
    let store = PgStore::open(PgConfig::new(url.clone(), schema.clone(), 2))
        .await
        .expect("open the store");
    let claimant = Claimant {
        host: "solo".into(),
        job_types: vec!["noop".to_string()].into(),
        max: 1,
        lease: Duration::from_secs(2),
        code: Arc::default(),
        run: None,
    };
    let out = store
        .insert_many(
            vec![NewJob {
                max_attempts: 3,
                ..started("orphan")
            }],
            Some(claimant),
        )
        .await
        .expect("insert");
    assert_eq!(out.claimed.len(), 1, "claimed for solo");
    let j: Value = s
        .wait_status("orphan", "COMPLETED", Duration::from_secs(20))
        .await;
    assert_eq!(
        j["status"], "COMPLETED",
        "rescued after its lease and run again: {j}"
    );
    drop(s);
    drop(store);
    drop_schemas(&url, &schema, &[]).await;
}

/// What one request of the load got.
struct Answer {
    job_id: String,
    acked: bool,
    took: Duration,
}

/// Adds and starts `noop` jobs through `urls` in turn until `stop` is set; every answer must be
/// a success or `STORE_UNAVAILABLE`, never an HTTP error or a hang.
async fn load(
    client: usize,
    urls: Vec<String>,
    stop: Arc<std::sync::atomic::AtomicBool>,
) -> Vec<Answer> {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap();
    let mut out = Vec::new();
    let mut n = 0;
    while !stop.load(std::sync::atomic::Ordering::SeqCst) {
        let job_id = format!("c{client}-{n}");
        let url = &urls[n % urls.len()];
        n += 1;
        let body = json!({"command": "queue", "params": {"action": "add_job", "job_id": job_id,
            "job_type": "noop", "params": {}, "start": true}});
        let t = std::time::Instant::now();
        let r = http
            .post(format!("{url}/api/v1/execute"))
            .json(&body)
            .send()
            .await
            .unwrap_or_else(|e| panic!("{job_id}: the host answers: {e}"));
        assert_eq!(r.status(), 200, "{job_id}: HTTP status");
        let v: Value = r.json().await.expect("JSON");
        let took = t.elapsed();
        let acked = v["result"]["success"] == true;
        if !acked {
            assert_eq!(
                v["result"]["error"]["data"]["domain_code"], "STORE_UNAVAILABLE",
                "{job_id}: {v}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        out.push(Answer {
            job_id,
            acked,
            took,
        });
    }
    out
}

/// PostgreSQL crash-restarted three times (`pg_ctl restart -m immediate`, on a cluster of the
/// test's own) while two hosts run jobs and four clients add more: every request succeeds or is
/// refused as `STORE_UNAVAILABLE` (never an HTTP error or a hang), both hosts reconnect on their
/// own, every acknowledged job completes exactly once, and the runs that spanned the restarts
/// finish.
#[tokio::test]
async fn hosts_ride_out_a_database_crash_restart_under_load() {
    use queuemgr_tests::pg_cluster::TestCluster;
    use std::sync::atomic::{AtomicBool, Ordering};
    let cluster = Arc::new(
        tokio::task::spawn_blocking(TestCluster::start)
            .await
            .unwrap(),
    );
    let flags = |host: &'static str| {
        vec![
            "--store".to_string(),
            cluster.url.clone(),
            "--store-schema".into(),
            "restart".into(),
            "--host-id".into(),
            host.into(),
            "--lease-secs".into(),
            "6".into(),
            "--maintenance-interval-secs".into(),
            "1".into(),
            "--store-timeout-secs".into(),
            "5".into(),
            "--retry-base-ms".into(),
            "50".into(),
        ]
    };
    let start = |f: Vec<String>| async move {
        Server::start(
            server_bin!(),
            &f.iter().map(String::as_str).collect::<Vec<_>>(),
        )
        .await
    };
    let a = start(flags("host-a")).await;
    let b = start(flags("host-b")).await;
    // Runs that span the restarts.
    for i in 0..4 {
        let s = if i % 2 == 0 { &a } else { &b };
        s.queue(
            json!({"action": "add_job", "job_id": format!("long{i}"), "job_type": "my_job",
            "params": {"task_name": "long", "duration": 3}, "start": true, "max_attempts": 3}),
        )
        .await;
    }
    let stop = Arc::new(AtomicBool::new(false));
    let urls = vec![a.url.clone(), b.url.clone()];
    let clients: Vec<_> = (0..4)
        .map(|c| tokio::spawn(load(c, urls.clone(), stop.clone())))
        .collect();
    for _ in 0..3 {
        tokio::time::sleep(Duration::from_millis(1200)).await;
        let c = cluster.clone();
        tokio::task::spawn_blocking(move || c.crash_restart())
            .await
            .unwrap();
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    stop.store(true, Ordering::SeqCst);
    let mut answers = Vec::new();
    for c in clients {
        answers.extend(
            c.await
                .expect("a client's requests all answered as they should"),
        );
    }
    let acked: Vec<&Answer> = answers.iter().filter(|a| a.acked).collect();
    let refused = answers.len() - acked.len();
    let slowest = answers.iter().map(|a| a.took).max().unwrap_or_default();
    eprintln!(
        "{} requests: {} acknowledged, {refused} refused as STORE_UNAVAILABLE; slowest {slowest:?}",
        answers.len(),
        acked.len()
    );
    assert!(
        slowest < Duration::from_secs(15),
        "no request hangs: {slowest:?}"
    );
    assert!(acked.len() >= 20, "the load went on: {}", acked.len());
    // What became of the commits whose answers the restarts cut off.
    for (s, name) in [(&a, "a"), (&b, "b")] {
        for line in s.log().lines().filter(|l| l.contains("commit's answer")) {
            eprintln!("host {name}: {line}");
        }
    }
    // Both hosts reconnect on their own.
    for (s, name) in [(&a, "a"), (&b, "b")] {
        let id = format!("after-{name}");
        let mut ok = false;
        for _ in 0..100 {
            let v = s
                .execute(
                    json!({"command": "queue", "params": {"action": "add_job", "job_id": id,
                    "job_type": "noop", "params": {}, "start": true}}),
                )
                .await;
            if v["result"]["success"] == true {
                ok = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(ok, "host {name} takes jobs again within 10 s");
    }
    for id in acked
        .iter()
        .map(|a| a.job_id.clone())
        .chain(["after-a".into(), "after-b".into()])
    {
        let j = a
            .wait_status(&id, "COMPLETED", Duration::from_secs(60))
            .await;
        assert_eq!(
            j["status"], "COMPLETED",
            "{id}: acknowledged, so it runs: {j}"
        );
    }
    // Run once each: one claim, one attempt.
    let stored = queuemgr_tests::stored_records(&cluster.url, "restart", "c%").await;
    let by_id: std::collections::HashMap<&str, &Value> = stored
        .iter()
        .map(|r| (r["job_id"].as_str().unwrap_or_default(), r))
        .collect();
    for a in &acked {
        let r = by_id[a.job_id.as_str()];
        assert_eq!(r["runs"], 1, "{}: run once: {r}", a.job_id);
        assert_eq!(r["attempt"], 1, "{}: run once: {r}", a.job_id);
    }
    for i in 0..4 {
        let id = format!("long{i}");
        let j = b
            .wait_status(&id, "COMPLETED", Duration::from_secs(60))
            .await;
        assert_eq!(j["status"], "COMPLETED", "{id}: finished or rescued: {j}");
    }
    drop(a);
    drop(b);
}

/// A limit another host set holds on this host at once, before (here: without) the `queues`
/// notification that tells it: its claims, and the claim in a write that adds a job, look at
/// the queues' table themselves.
#[tokio::test]
async fn a_limit_set_elsewhere_holds_before_its_notification_arrives() {
    let url = postgres_url().await;
    let schema = format!("qmt{}_unnotified", std::process::id());
    let store = PgStore::open(PgConfig::new(url.clone(), schema.clone(), 2))
        .await
        .expect("open the store");
    let claimant = |max| Claimant {
        host: "h".into(),
        job_types: vec!["noop".to_string()].into(),
        max,
        lease: Duration::from_secs(30),
        code: Arc::default(),
        run: None,
    };
    // Warm: a claim before any setting takes the fast path.
    store
        .insert_many(vec![started("warm")], Some(claimant(1)))
        .await
        .expect("insert");
    // Another host pauses queue q: written straight to the table, no notification.
    let (sql, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .expect("connect");
    tokio::spawn(conn);
    let rec = queuemgr_tests::store_conformance::queue_settings("q", None, None, true);
    sql.execute(
        &format!(
            "INSERT INTO \"{schema}\".queues (name, paused, record, limited) VALUES ('q', true, $1, true)"
        ),
        &[&serde_json::to_string(&rec).unwrap()],
    )
    .await
    .expect("pause q behind the host's back");
    let job = |id: &str| NewJob {
        queue: "q".into(),
        ..started(id)
    };
    let out = store
        .insert_many(vec![job("q1")], Some(claimant(4)))
        .await
        .expect("insert");
    assert!(out.claimed.is_empty(), "claimed in a paused queue on add");
    let got = store.claim(claimant(4)).await.expect("claim");
    assert!(
        got.iter().all(|j| j.queue != "q"),
        "claimed in a paused queue: {:?}",
        got.iter().map(|j| &j.job_id).collect::<Vec<_>>()
    );
    // From then on the host knows: still nothing of q.
    tokio::time::sleep(Duration::from_millis(200)).await;
    store
        .insert_many(vec![job("q2")], Some(claimant(4)))
        .await
        .expect("insert");
    let got = store.claim(claimant(4)).await.expect("claim");
    assert!(got.iter().all(|j| j.queue != "q"), "{got:?}");
    drop(store);
    drop_schemas(&url, &schema, &[]).await;
}
