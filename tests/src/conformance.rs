//! The journal conformance suite: one set of checks that every [`Journal`] (the local store's
//! durability layer) must pass, written against the trait alone. The JSONL journal runs every
//! check as a test of its own ([`registry_conformance_tests`], in
//! `tests/tests/all/registry_conformance.rs`).

use queuemgr::job::{Event, JobRecord, Json, Status};
use queuemgr::store::local::journal::{Commit, CommitState, Journal, Link};
use std::sync::Arc;

/// Opens a backend's store. Each call must open the *same* store again (as a restarted host
/// would), dropping nothing that was acknowledged.
pub trait Backend {
    /// Opens the store.
    fn open(&self) -> Arc<dyn Journal>;
}

/// A record for job `id` with `status` at time `t`.
pub fn record(id: &str, event: Event, status: Status, t: i64) -> JobRecord {
    JobRecord {
        event,
        job_id: id.to_string(),
        job_type: "noop".into(),
        status,
        progress: if status == Status::Completed { 100 } else { 0 },
        description: format!("{status:?} at {t}"),
        params: Json::new(&serde_json::json!({"n": t})),
        result: (status == Status::Completed).then(|| Json::new(&serde_json::json!({"t": t}))),
        error: None,
        created_at: 1,
        updated_at: t,
        started_at: (status != Status::Pending).then_some(t),
        completed_at: None,
        runs: u32::from(status != Status::Pending),
        ..JobRecord::default()
    }
}

/// Every check of the suite as a test of its own, for one backend: `$backend` makes a fresh
/// [`Backend`] per test.
#[macro_export]
macro_rules! registry_conformance_tests {
    ($backend:expr) => {
        $crate::registry_conformance_tests!(@each $backend; fresh_store_is_empty, acknowledged_records_survive_reopen, last_record_wins_in_first_seen_order, concurrent_appends_share_syncs, compaction_keeps_exactly_the_live_set, purged_jobs_are_forgotten, empty_append_is_a_barrier, linked_appends_share_the_fate_of_what_they_follow);
    };
    (@each $backend:expr; $($check:ident),*) => {
        $(
            #[tokio::test]
            async fn $check() {
                $crate::conformance::$check(&$backend).await
            }
        )*
    };
}

/// A conformance check (see [`registry_conformance_tests`]).
pub async fn fresh_store_is_empty(b: &impl Backend) {
    let r = b.open();
    let replay = r.replay().expect("replay of a fresh store");
    assert!(replay.jobs.is_empty(), "fresh store: no jobs");
    assert!(replay.report.skipped_lines.is_empty());
}

/// A conformance check (see [`registry_conformance_tests`]).
pub async fn acknowledged_records_survive_reopen(b: &impl Backend) {
    let r = b.open();
    r.append(vec![
        record("a1", Event::Created, Status::Pending, 10).into(),
    ])
    .await
    .expect("append");
    r.append(vec![
        record("a1", Event::Started, Status::Running, 11).into(),
    ])
    .await
    .expect("append");
    drop(r);
    let replay = b.open().replay().expect("replay");
    let a1 = replay
        .jobs
        .iter()
        .find(|j| j.job_id == "a1")
        .expect("a1 survives reopen");
    assert_eq!(a1.status, Status::Running);
    assert_eq!(a1.updated_at, 11);
    assert_eq!(a1.params.to_value(), serde_json::json!({"n": 11}));
}

/// A conformance check (see [`registry_conformance_tests`]).
pub async fn last_record_wins_in_first_seen_order(b: &impl Backend) {
    let r = b.open();
    r.append(vec![
        record("o1", Event::Created, Status::Pending, 20).into(),
        record("o2", Event::Created, Status::Pending, 21).into(),
        record("o1", Event::Started, Status::Running, 22).into(),
        record("o1", Event::Completed, Status::Completed, 23).into(),
    ])
    .await
    .expect("append");
    let replay = b.open().replay().expect("replay");
    let ids: Vec<&str> = replay
        .jobs
        .iter()
        .map(|j| j.job_id.as_str())
        .filter(|id| id.starts_with('o'))
        .collect();
    assert_eq!(ids, ["o1", "o2"], "first-seen order");
    let o1 = replay.jobs.iter().find(|j| j.job_id == "o1").unwrap();
    assert_eq!(o1.status, Status::Completed);
    assert_eq!(
        o1.result.as_ref().map(Json::to_value),
        Some(serde_json::json!({"t": 23}))
    );
}

/// A conformance check (see [`registry_conformance_tests`]).
pub async fn concurrent_appends_share_syncs(b: &impl Backend) {
    let r = b.open();
    let before = r.stats();
    let mut handles = Vec::new();
    for i in 0..500 {
        let fut = r.append(vec![
            record(&format!("c{i}"), Event::Created, Status::Pending, 100 + i).into(),
        ]);
        handles.push(tokio::spawn(fut));
    }
    for h in handles {
        h.await.expect("join").expect("durable");
    }
    let after = r.stats();
    let appended = after.appended - before.appended;
    let syncs = after.syncs - before.syncs;
    assert_eq!(appended, 500);
    assert!(
        syncs < appended,
        "group commit: {syncs} syncs for {appended} records"
    );
    let replay = b.open().replay().expect("replay");
    for i in 0..500 {
        assert!(
            replay.jobs.iter().any(|j| j.job_id == format!("c{i}")),
            "c{i} lost"
        );
    }
}

/// A conformance check (see [`registry_conformance_tests`]).
pub async fn compaction_keeps_exactly_the_live_set(b: &impl Backend) {
    let r = b.open();
    for t in 0..50 {
        r.append(vec![
            record("k1", Event::Progress, Status::Running, 1000 + t).into(),
        ])
        .await
        .expect("append");
    }
    let live = r.replay().expect("replay").jobs;
    r.compact(live.clone()).await.expect("compact");
    assert_eq!(
        r.stats().records,
        live.len() as u64,
        "compaction leaves one record per live job"
    );
    r.append(vec![
        record("k2", Event::Created, Status::Pending, 2000).into(),
    ])
    .await
    .expect("append after compact");
    drop(r);
    let replay = b.open().replay().expect("replay");
    assert_eq!(replay.jobs.len(), live.len() + 1);
    for (got, want) in replay.jobs.iter().zip(&live) {
        assert_eq!(**got, **want, "compaction preserved {}", want.job_id);
    }
    assert_eq!(replay.jobs.last().unwrap().job_id, "k2");
}

/// A conformance check (see [`registry_conformance_tests`]).
pub async fn purged_jobs_are_forgotten(b: &impl Backend) {
    let r = b.open();
    r.append(vec![
        record("p1", Event::Created, Status::Pending, 3000).into(),
    ])
    .await
    .expect("append");
    r.append(vec![
        record("p1", Event::Purged, Status::Deleted, 3001).into(),
    ])
    .await
    .expect("append");
    let replay = b.open().replay().expect("replay");
    assert!(
        replay.jobs.iter().all(|j| j.job_id != "p1"),
        "a purged job is forgotten"
    );
}

/// A conformance check (see [`registry_conformance_tests`]).
pub async fn empty_append_is_a_barrier(b: &impl Backend) {
    let r = b.open();
    let first = r.append(vec![
        record("b1", Event::Created, Status::Pending, 4000).into(),
    ]);
    r.append(Vec::new()).await.expect("empty append");
    first.await.expect("earlier append");
    assert!(
        b.open()
            .replay()
            .expect("replay")
            .jobs
            .iter()
            .any(|j| j.job_id == "b1")
    );
}

/// A run's records follow its RUNNING record's commit: stored with it (same sync or later),
/// refused if it failed, and the commit is resolved before the append's future.
/// A conformance check (see [`registry_conformance_tests`]).
pub async fn linked_appends_share_the_fate_of_what_they_follow(b: &impl Backend) {
    let r = b.open();
    r.append(vec![
        record("l1", Event::Created, Status::Pending, 60).into(),
    ])
    .await
    .expect("append");
    // Enqueued back to back, awaited together: the dependent one rides on the first's sync.
    let started = Commit::new();
    assert_eq!(started.state(), CommitState::Pending);
    let first = r.append_linked(
        vec![record("l1", Event::Started, Status::Running, 61).into()],
        Link {
            marks: Some(started.clone()),
            after: Vec::new(),
        },
    );
    let second = r.append_linked(
        vec![record("l1", Event::Completed, Status::Completed, 62).into()],
        Link {
            marks: None,
            after: vec![started.clone()],
        },
    );
    let (a, b2) = tokio::join!(first, second);
    a.expect("the first append");
    b2.expect("the dependent append");
    assert_eq!(
        started.state(),
        CommitState::Durable,
        "resolved before its future"
    );
    // After a commit that failed, a dependent append is refused and stores nothing.
    let failed = Commit::new();
    failed.resolve(false);
    let refused = r
        .append_linked(
            vec![record("l1", Event::Progress, Status::Running, 63).into()],
            Link {
                marks: None,
                after: vec![failed],
            },
        )
        .await;
    assert!(
        refused.is_err(),
        "an append after a failed commit must be refused"
    );
    drop(r);
    let replay = b.open().replay().expect("replay");
    let l1 = replay.jobs.iter().find(|j| j.job_id == "l1").expect("l1");
    assert_eq!(
        l1.status,
        Status::Completed,
        "the dependent record was stored"
    );
    assert_eq!(l1.updated_at, 62, "the refused record was not stored");
}
