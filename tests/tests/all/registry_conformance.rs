//! The registry conformance suite against the JSONL backend, plus what only a file can get
//! wrong: a torn last line, corrupt lines in the middle, a crash mid-compaction.

use queuemgr::job::{Event, Status};
use queuemgr::store::local::journal::Journal;
use queuemgr::store::local::jsonl::JsonlJournal;
use queuemgr_tests::conformance::{Backend, record};
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;

/// A journal file in a temporary directory of its own.
struct Jsonl(tempfile::TempDir);

impl Jsonl {
    fn new() -> Jsonl {
        Jsonl(tempfile::tempdir().expect("tempdir"))
    }
}

impl Backend for Jsonl {
    fn open(&self) -> Arc<dyn Journal> {
        Arc::new(JsonlJournal::open(self.0.path().join("reg.jsonl")).expect("open"))
    }
}

/// The registry conformance suite on the JSONL journal, each check a test of its own.
mod jsonl {
    queuemgr_tests::registry_conformance_tests!(super::Jsonl::new());
}

#[tokio::test]
async fn a_torn_last_line_is_cut_off_and_the_rest_kept() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("reg.jsonl");
    let r = JsonlJournal::open(&path).unwrap();
    r.append(vec![
        record("t1", Event::Created, Status::Pending, 1).into(),
    ])
    .await
    .unwrap();
    r.append(vec![
        record("t2", Event::Created, Status::Pending, 2).into(),
    ])
    .await
    .unwrap();
    drop(r);
    // A crash mid-write: half of a third record, no newline.
    let line = serde_json::to_string(&record("t3", Event::Created, Status::Pending, 3)).unwrap();
    std::fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .unwrap()
        .write_all(&line.as_bytes()[..line.len() / 2])
        .unwrap();
    let r = JsonlJournal::open(&path).unwrap();
    let replay = r.replay().unwrap();
    assert!(replay.report.repaired_tail);
    let ids: Vec<_> = replay.jobs.iter().map(|j| j.job_id.as_str()).collect();
    assert_eq!(ids, ["t1", "t2"]);
    // The file is whole lines again, and appends continue on a clean line.
    r.append(vec![
        record("t4", Event::Created, Status::Pending, 4).into(),
    ])
    .await
    .unwrap();
    let ids: Vec<String> = r
        .replay()
        .unwrap()
        .jobs
        .into_iter()
        .map(|j| j.job_id.clone())
        .collect();
    assert_eq!(ids, ["t1", "t2", "t4"]);
    assert!(std::fs::read_to_string(&path).unwrap().ends_with("\n"));
}

#[tokio::test]
async fn corrupt_lines_in_the_middle_are_skipped_and_named() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("reg.jsonl");
    let good = |id: &str, t| {
        serde_json::to_string(&record(id, Event::Created, Status::Pending, t)).unwrap()
    };
    let text = format!(
        "{}\n{{\"not\":\"a record\"}}\n\u{0}\u{1}garbage\n{}\n",
        good("m1", 1),
        good("m2", 2)
    );
    std::fs::write(&path, text).unwrap();
    let r = JsonlJournal::open(&path).unwrap();
    let replay = r.replay().unwrap();
    assert_eq!(replay.report.skipped_lines, vec![2, 3]);
    assert!(!replay.report.repaired_tail);
    let ids: Vec<_> = replay.jobs.iter().map(|j| j.job_id.as_str()).collect();
    assert_eq!(ids, ["m1", "m2"]);
}

#[tokio::test]
async fn a_leftover_compaction_file_does_not_replace_the_registry() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("reg.jsonl");
    let r = JsonlJournal::open(&path).unwrap();
    r.append(vec![
        record("c1", Event::Created, Status::Pending, 1).into(),
    ])
    .await
    .unwrap();
    drop(r);
    // A crash before the rename leaves the temporary file: the registry is the old file.
    std::fs::write(path.with_extension("jsonl.compact-tmp"), "{\"half\":").unwrap();
    let replay = JsonlJournal::open(&path).unwrap().replay().unwrap();
    assert_eq!(replay.jobs.len(), 1);
    assert_eq!(replay.jobs[0].job_id, "c1");
}

#[tokio::test]
async fn a_whole_last_record_without_its_newline_is_kept_and_nothing_else_changes() {
    // Found by the replay fuzzer: the repair once wrote the newline at the start of the file.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("reg.jsonl");
    let a = serde_json::to_string(&record("n1", Event::Created, Status::Pending, 1)).unwrap();
    let b = serde_json::to_string(&record("n2", Event::Created, Status::Pending, 2)).unwrap();
    std::fs::write(&path, format!("{a}\n{b}")).unwrap();
    let replay = JsonlJournal::open(&path).unwrap().replay().unwrap();
    assert!(!replay.report.repaired_tail);
    let ids: Vec<_> = replay.jobs.iter().map(|j| j.job_id.as_str()).collect();
    assert_eq!(ids, ["n1", "n2"]);
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        format!("{a}\n{b}\n")
    );
}

/// The local job store (memory + this journal) behind the job-store conformance suite.
struct Local {
    dir: PathBuf,
    /// Removed with the backend, when it owns its directory.
    _owned: Option<tempfile::TempDir>,
}

impl Local {
    /// Stores in a temporary directory of their own.
    fn new() -> Local {
        let dir = tempfile::tempdir().expect("tempdir");
        Local {
            dir: dir.path().to_path_buf(),
            _owned: Some(dir),
        }
    }
}

impl queuemgr_tests::store_conformance::StoreBackend for Local {
    async fn open(&self, name: &str) -> Arc<dyn queuemgr::store::Store> {
        let journal =
            Arc::new(JsonlJournal::open(self.dir.join(format!("{name}.jsonl"))).expect("open"));
        let (store, _) = queuemgr::store::local::LocalStore::open(
            journal,
            queuemgr::store::local::LocalConfig {
                retry: queuemgr_tests::store_conformance::fast_retry(),
                schedules_file: Some(self.dir.join(format!("{name}.schedules.json"))),
                queues_file: Some(self.dir.join(format!("{name}.queues.json"))),
                ..Default::default()
            },
        )
        .await
        .expect("open the local store");
        Arc::new(store)
    }
}

/// The job-store conformance suite on the local store, each check a test of its own.
mod local_store {
    queuemgr_tests::store_conformance_tests!(super::Local::new());
}

#[tokio::test]
async fn the_local_store_rescues_every_run_at_open_and_loads_old_registries() {
    use queuemgr_tests::store_conformance::{StoreBackend, host, started};
    let dir = tempfile::tempdir().unwrap();
    let b = Local {
        dir: dir.path().to_path_buf(),
        _owned: None,
    };
    let s = b.open("s").await;
    s.insert_many(
        vec![
            started("r1"),
            queuemgr::store::NewJob {
                max_attempts: 3,
                ..started("r2")
            },
        ],
        Some(host("h", 2)),
    )
    .await
    .unwrap();
    drop(s);
    // One host per file: whoever ran these is gone, whatever their lease said.
    let s = b.open("s").await;
    let r1 = s.get("r1").await.unwrap().unwrap();
    assert_eq!(r1.status, Status::Stopped);
    assert_eq!(
        r1.description,
        "Interrupted: the host stopped while the job was running"
    );
    let r2 = s.get("r2").await.unwrap().unwrap();
    assert_eq!(r2.status, Status::Pending, "attempts remain: {r2:?}");
    drop(s);
    // A registry written before the job store (no scheduled_at; a queued start) still loads,
    // and its waiting job is runnable.
    let old = r#"{"event":"created","job_id":"o1","job_type":"noop","status":"PENDING","progress":0,"description":"","params":{},"result":null,"error":null,"created_at":1,"updated_at":1,"started_at":null,"completed_at":null,"runs":0}
{"event":"queued","job_id":"o1","job_type":"noop","status":"PENDING","progress":0,"description":"Waiting for a free slot","params":{},"result":null,"error":null,"created_at":1,"updated_at":2,"started_at":null,"completed_at":null,"runs":0}
"#;
    std::fs::write(dir.path().join("old.jsonl"), old).unwrap();
    let s = b.open("old").await;
    let got = s.claim(host("h", 5)).await.unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].job_id, "o1");
}

/// The PostgreSQL store behind the same suite: one schema per store opened, all dropped after
/// the check.
struct Pg {
    url: String,
    prefix: String,
    schemas: std::sync::Mutex<Vec<String>>,
}

impl Pg {
    /// Schemas named after this process and this backend (`x<n>_` ends the prefix, so that
    /// one backend's clean-up never drops another's schemas when checks share a process).
    async fn new() -> Pg {
        static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Pg {
            url: queuemgr_tests::postgres_url().await,
            prefix: format!("qmt{}x{n}_", std::process::id()),
            schemas: Default::default(),
        }
    }
}

impl queuemgr_tests::store_conformance::StoreBackend for Pg {
    async fn open(&self, name: &str) -> Arc<dyn queuemgr::store::Store> {
        let short: String = name.chars().take(40).collect();
        let schema = format!("{}{short}", self.prefix);
        self.schemas.lock().unwrap().push(schema.clone());
        let store = queuemgr::store::postgres::PgStore::open(
            queuemgr::store::postgres::PgConfig::new(self.url.clone(), schema, 4),
        )
        .await
        .expect("open the PostgreSQL store");
        Arc::new(store)
    }

    async fn clean_up(&self) {
        let names = self.schemas.lock().unwrap().clone();
        queuemgr_tests::drop_schemas(&self.url, &self.prefix, &names).await;
    }
}

/// The job-store conformance suite on PostgreSQL, each check a test of its own.
mod postgres_store {
    queuemgr_tests::store_conformance_tests!(super::Pg::new().await);
}

/// A host alone on a database names its changes to nobody (a `changed` notification costs the
/// database work at every commit); once a second host says `hello`, the first names every
/// change, so that the second's event streams see jobs the first runs.
#[tokio::test]
async fn a_lone_postgres_host_tells_nobody_of_its_changes_until_another_host_is_up() {
    use queuemgr::store::postgres::{PgConfig, PgStore};
    use queuemgr::store::{Cluster, JobStore};
    use queuemgr_tests::store_conformance::{job, started};
    use std::time::Duration;
    let url = queuemgr_tests::postgres_url().await;
    let schema = format!("qmt{}_alone", std::process::id());
    let (u, s) = (url.clone(), schema.clone());
    let run = tokio::spawn(async move {
        let a = PgStore::open(PgConfig::new(u.clone(), s.clone(), 2))
            .await
            .expect("open host a");
        a.announce("a", &["noop".to_string()], None)
            .await
            .expect("announce a");
        // A listener of our own on the schema's channel.
        let (client, mut conn) = tokio_postgres::connect(&u, tokio_postgres::NoTls)
            .await
            .expect("connect");
        let (tx, mut heard) = tokio::sync::mpsc::unbounded_channel::<String>();
        let driver = tokio::spawn(async move {
            while let Some(Ok(m)) = std::future::poll_fn(|cx| conn.poll_message(cx)).await {
                if let tokio_postgres::AsyncMessage::Notification(n) = m {
                    let _ = tx.send(n.payload().to_string());
                }
            }
        });
        client
            .batch_execute(&format!("LISTEN \"queuemgr_{s}\""))
            .await
            .expect("listen");
        a.insert_many(vec![started("alone-1")], None)
            .await
            .expect("insert");
        tokio::time::sleep(Duration::from_millis(300)).await;
        let mut early = Vec::new();
        while let Ok(p) = heard.try_recv() {
            early.push(p);
        }
        assert!(
            early.iter().all(|p| !p.starts_with("changed ")),
            "a lone host named its changes: {early:?}"
        );
        assert!(
            early.iter().any(|p| p == "runnable"),
            "the insert's wake-up is still sent: {early:?}"
        );
        // A second host comes up: from its hello on, a's changes are named.
        let _b = PgStore::open(PgConfig::new(u.clone(), s.clone(), 2))
            .await
            .expect("open host b");
        let end = std::time::Instant::now() + Duration::from_secs(10);
        let mut named = false;
        let mut i = 2;
        while !named && std::time::Instant::now() < end {
            let id = format!("alone-{i}");
            i += 1;
            a.insert_many(vec![job(&id)], None).await.expect("insert");
            let until = std::time::Instant::now() + Duration::from_millis(500);
            while let Ok(Some(p)) = tokio::time::timeout_at(until.into(), heard.recv()).await {
                if p.starts_with("changed ") && p.contains(&format!("\"{id}\"")) {
                    named = true;
                    break;
                }
            }
        }
        assert!(named, "a never named its changes once b was up");
        driver.abort();
    })
    .await;
    queuemgr_tests::drop_schemas(&url, &schema, std::slice::from_ref(&schema)).await;
    if let Err(e) = run {
        std::panic::resume_unwind(e.into_panic());
    }
}
