//! The job store conformance suite: what every [`JobStore`] backend must do, written against
//! the trait alone — claims, leases, compare-and-set, stop requests, rescue, retries,
//! priorities, schedules, unique keys, paging, counts, retention, the change feed, and replay
//! after a crash. Each backend runs every check as a test of its own
//! ([`store_conformance_tests`], in `tests/tests/all/registry_conformance.rs`): the local
//! store and PostgreSQL, unchanged.

use queuemgr::job::{AuditAction, ErrorInfo, Json, Status, StopKind, Wait};
use queuemgr::store::{
    Claimant, EventTarget, Finish, JobStore, JobStoreExt, ListQuery, NewJob, Order, Retention,
    RetryPolicy, RunEnd, Runner, StopOutcome, Store, StoreError,
};
use std::sync::Arc;
use std::time::Duration;

/// Opens a backend's stores.
pub trait StoreBackend {
    /// Opens the store named `name`: a fresh, empty one the first time; the *same* one again
    /// on a later call, as a restarted host would (the suite drops the previous one first).
    fn open(&self, name: &str) -> impl std::future::Future<Output = Arc<dyn Store>>;

    /// Removes what the stores opened left behind (a database schema), after a check.
    fn clean_up(&self) -> impl std::future::Future<Output = ()> {
        async {}
    }
}

/// Fast retries for the suite.
pub fn fast_retry() -> RetryPolicy {
    RetryPolicy {
        base: Duration::from_millis(20),
        max: Duration::from_millis(100),
        jitter: 0.0,
    }
}

/// A job of type `noop`, not started.
pub fn job(id: &str) -> NewJob {
    NewJob {
        job_id: id.to_string(),
        job_type: "noop".into(),
        params: Json::new(&serde_json::json!({"id": id})),
        priority: 0,
        max_attempts: 1,
        run_at: None,
        unique_key: None,
        start: false,
        schedule: None,
        queue: "default".into(),
        concurrency_key: None,
        as_command: false,
        added_by: None,
        traceparent: None,
        parent: None,
        depends_on: Vec::new(),
        on_dependency_failure: queuemgr::job::DepPolicy::Fail,
    }
}

/// `job(id)`, started.
pub fn started(id: &str) -> NewJob {
    NewJob {
        start: true,
        ..job(id)
    }
}

/// A host that runs `noop` jobs.
pub fn host(name: &str, max: usize) -> Claimant {
    Claimant {
        host: name.to_string(),
        job_types: vec!["noop".to_string()].into(),
        max,
        lease: Duration::from_secs(30),
        code: Arc::new([("noop".to_string(), NOOP_SHA256.to_string())].into()),
        run: None,
    }
}

/// The component SHA-256 the claimants of [`host`] have for `noop`.
pub const NOOP_SHA256: &str = "c0ffee";

fn ids(jobs: &[Arc<queuemgr::job::JobRecord>]) -> Vec<String> {
    jobs.iter().map(|j| j.job_id.clone()).collect()
}

fn failed(retryable: bool) -> RunEnd {
    RunEnd::Failed {
        error: ErrorInfo {
            kind: queuemgr::job::ErrorKind::Failed,
            code: "BOOM".into(),
            message: "boom".into(),
            retryable,
        },
        description: "boom".into(),
    }
}

fn end(id: &str, host: &str, attempt: u32, end: RunEnd) -> Finish {
    Finish {
        job_id: id.to_string(),
        host: host.to_string(),
        attempt,
        end,
    }
}

/// Deletes `id`, then purges deleted jobs at once; returns what the purge removed.
async fn delete_and_purge(s: &dyn JobStore, id: &str) -> Vec<String> {
    s.request_stop(id, StopKind::Delete, None).await.unwrap();
    tokio::time::sleep(Duration::from_millis(5)).await;
    let rules = Retention {
        deleted_ttl: Some(Duration::from_millis(1)),
        ..Retention::default()
    };
    s.purge(&rules, queuemgr::job::now_micros()).await.unwrap()
}

async fn status(s: &dyn JobStore, id: &str) -> Status {
    s.get(id).await.unwrap().expect("job exists").status
}

/// Every check of the suite as a test of its own, for one backend: `$backend` makes a fresh
/// [`StoreBackend`] per test, whose [`StoreBackend::clean_up`] runs after the check, passed or
/// failed. Each check thus runs in parallel with the others and fails alone, under its own name.
#[macro_export]
macro_rules! store_conformance_tests {
    ($backend:expr) => {
        $crate::store_conformance_tests!(@each $backend; inserts_are_atomic_and_ids_unique, unique_keys_hold_while_a_job_lives, claims_follow_priority_then_time_then_insertion, claims_take_only_loaded_types, scheduled_jobs_wait_for_their_time, a_run_ends_only_in_the_run_that_was_claimed, claimed_jobs_are_handed_to_the_runner_once, retryable_failures_are_retried_with_backoff, stop_requests_reach_the_host_that_runs_the_job, expired_leases_are_rescued_and_heartbeats_keep_them, a_heartbeat_extends_only_the_runs_its_host_holds, lists_page_filter_and_count, retention_purges_what_it_should, the_feed_publishes_durable_changes, acknowledged_jobs_survive_a_crash, a_reopened_store_counts_lists_and_claims_as_before, schedules_are_put_listed_and_deleted, a_slot_is_enqueued_once_however_many_hosts_fire_it, schedules_and_their_cursors_survive_a_reopen, a_cursor_outlives_the_jobs_that_told_it, queue_limits_and_pauses_hold_claims_back, limits_hold_when_hosts_claim_at_once, queue_settings_survive_a_reopen, rate_limits_space_starts_and_wake_the_scheduler, claims_take_concurrency_keys_in_turn, claims_of_one_job_take_keys_in_turn, changes_of_one_queue_at_once_lose_nothing, scoped_lists_and_the_audit_trail, flows_suspend_count_off_children_and_take_events, a_child_that_ends_in_any_way_counts_off);
    };
    (@each $backend:expr; $($check:ident),*) => {
        $(
            #[tokio::test]
            async fn $check() {
                let backend = std::sync::Arc::new($backend);
                let b = backend.clone();
                let run = tokio::spawn(async move {
                    $crate::store_conformance::$check(&*b).await
                })
                .await;
                $crate::store_conformance::StoreBackend::clean_up(&*backend).await;
                if let Err(e) = run {
                    std::panic::resume_unwind(e.into_panic());
                }
            }
        )*
    };
}

/// A conformance check (see [`store_conformance_tests`]).
pub async fn inserts_are_atomic_and_ids_unique(b: &impl StoreBackend) {
    let s = b.open("inserts_are_atomic_and_ids_unique").await;
    let out = s
        .insert_many(vec![job("a1"), job("a2"), job("a3")], None)
        .await
        .expect("insert");
    assert_eq!(out.jobs.len(), 3);
    assert!(out.claimed.is_empty());
    assert_eq!(status(&*s, "a2").await, Status::Pending);
    // A taken id refuses the whole batch.
    let e = s.insert_many(vec![job("a4"), job("a1")], None).await;
    assert!(
        matches!(e, Err(StoreError::AlreadyExists(ref id)) if id == "a1"),
        "{e:?}"
    );
    assert!(
        s.get("a4").await.unwrap().is_none(),
        "a refused batch inserts nothing"
    );
    let e = s.insert_many(vec![job("a5"), job("a5")], None).await;
    assert!(
        matches!(e, Err(StoreError::DuplicateInBatch { index: 1, .. })),
        "{e:?}"
    );
    assert!(s.get("a5").await.unwrap().is_none());
    // A deleted job's id can be used again.
    s.request_stop("a3", StopKind::Delete, None).await.unwrap();
    assert_eq!(status(&*s, "a3").await, Status::Deleted);
    s.insert_many(vec![job("a3")], None)
        .await
        .expect("re-add a deleted id");
    assert_eq!(status(&*s, "a3").await, Status::Pending);
    // Start with a claimant: claimed in the same step.
    let st = s.start("a1", Some(host("h", 1)), None).await.unwrap();
    assert!(st.claimed);
    assert_eq!(st.job.status, Status::Running);
    assert_eq!(st.job.attempt, 1);
    let e = s.start("a1", None, None).await;
    assert!(
        matches!(
            e,
            Err(StoreError::StateInvalid {
                current: Status::Running,
                ..
            })
        ),
        "{e:?}"
    );
    let e = s.start("nope", None, None).await;
    assert!(matches!(e, Err(StoreError::NotFound(_))), "{e:?}");
}

/// A conformance check (see [`store_conformance_tests`]).
pub async fn unique_keys_hold_while_a_job_lives(b: &impl StoreBackend) {
    let s = b.open("unique_keys_hold_while_a_job_lives").await;
    let keyed = |id: &str| NewJob {
        unique_key: Some("report-42".into()),
        ..job(id)
    };
    let first = s.insert_many(vec![keyed("u1")], None).await.unwrap();
    assert!(!first.jobs[0].duplicate);
    let second = s
        .insert_many(vec![keyed("u2"), job("u3")], None)
        .await
        .unwrap();
    assert!(second.jobs[0].duplicate, "same key while u1 lives");
    assert_eq!(second.jobs[0].job.job_id, "u1");
    assert!(!second.jobs[1].duplicate);
    assert!(s.get("u2").await.unwrap().is_none(), "no second job");
    // Within one batch too.
    let third = s
        .insert_many(
            vec![
                NewJob {
                    unique_key: Some("k2".into()),
                    ..job("u4")
                },
                NewJob {
                    unique_key: Some("k2".into()),
                    ..job("u5")
                },
            ],
            None,
        )
        .await
        .unwrap();
    assert!(!third.jobs[0].duplicate && third.jobs[1].duplicate);
    // Once the holder has ended, the key is free.
    s.request_stop("u1", StopKind::Stop, None).await.unwrap();
    let again = s.insert_many(vec![keyed("u6")], None).await.unwrap();
    assert!(!again.jobs[0].duplicate);
}

/// A conformance check (see [`store_conformance_tests`]).
pub async fn claims_follow_priority_then_time_then_insertion(b: &impl StoreBackend) {
    let s = b
        .open("claims_follow_priority_then_time_then_insertion")
        .await;
    let with = |id: &str, p: i32| NewJob {
        priority: p,
        ..started(id)
    };
    s.insert_many(vec![with("p1", 0), with("p2", 5), with("p3", 0)], None)
        .await
        .unwrap();
    s.insert_many(vec![with("p4", 10), with("p5", 0)], None)
        .await
        .unwrap();
    let got = s.claim(host("h", 2)).await.unwrap();
    assert_eq!(ids(&got), ["p4", "p2"], "priority first");
    for j in &got {
        assert_eq!(j.status, Status::Running);
        assert_eq!(j.host.as_deref(), Some("h"));
        assert!(j.lease_until.is_some());
        assert_eq!(j.attempt, 1);
        assert_eq!(
            j.component_sha256.as_deref(),
            Some(NOOP_SHA256),
            "the claim records which component runs the job"
        );
    }
    let stored = s.get("p4").await.unwrap().unwrap();
    assert_eq!(stored.component_sha256.as_deref(), Some(NOOP_SHA256));
    let got = s.claim(host("h", 10)).await.unwrap();
    assert_eq!(ids(&got), ["p1", "p3", "p5"], "then insertion order");
    assert!(s.claim(host("h", 10)).await.unwrap().is_empty());
    assert_eq!(status(&*s, "p1").await, Status::Running);
    // Inserting started jobs with a claimant claims up to its max, best first.
    let out = s
        .insert_many(
            vec![with("p6", 0), with("p7", 3), with("p8", 0)],
            Some(host("h", 2)),
        )
        .await
        .unwrap();
    assert_eq!(ids(&out.claimed), ["p7", "p6"]);
    assert_eq!(status(&*s, "p8").await, Status::Pending);
}

/// A conformance check (see [`store_conformance_tests`]).
pub async fn claims_take_only_loaded_types(b: &impl StoreBackend) {
    let s = b.open("claims_take_only_loaded_types").await;
    let other = NewJob {
        job_type: "other".into(),
        ..started("t1")
    };
    s.insert_many(vec![other, started("t2")], None)
        .await
        .unwrap();
    let got = s.claim(host("h", 10)).await.unwrap();
    assert_eq!(ids(&got), ["t2"]);
    let mut c = host("h2", 10);
    c.job_types = vec!["other".to_string()].into();
    assert_eq!(ids(&s.claim(c).await.unwrap()), ["t1"]);
}

/// A conformance check (see [`store_conformance_tests`]).
pub async fn scheduled_jobs_wait_for_their_time(b: &impl StoreBackend) {
    let s = b.open("scheduled_jobs_wait_for_their_time").await;
    let at = queuemgr::job::now_micros() + 300_000;
    s.insert_many(
        vec![NewJob {
            run_at: Some(at),
            priority: 100,
            ..started("s1")
        }],
        None,
    )
    .await
    .unwrap();
    let j = s.get("s1").await.unwrap().unwrap();
    assert_eq!(j.status, Status::Pending);
    assert_eq!(j.scheduled_at, Some(at));
    assert!(
        s.claim(host("h", 10)).await.unwrap().is_empty(),
        "not before its time"
    );
    assert_eq!(s.next_scheduled().await.unwrap(), Some(at));
    // A start with a claimant before its time does not claim it either.
    s.insert_many(
        vec![NewJob {
            run_at: Some(at),
            ..job("s2")
        }],
        None,
    )
    .await
    .unwrap();
    let st = s.start("s2", Some(host("h", 1)), None).await.unwrap();
    assert!(!st.claimed);
    assert_eq!(st.job.scheduled_at, Some(at));
    tokio::time::sleep(Duration::from_millis(350)).await;
    assert_eq!(ids(&s.claim(host("h", 10)).await.unwrap()), ["s1", "s2"]);
}

/// A conformance check (see [`store_conformance_tests`]).
pub async fn a_run_ends_only_in_the_run_that_was_claimed(b: &impl StoreBackend) {
    let s = b.open("a_run_ends_only_in_the_run_that_was_claimed").await;
    s.insert_many(vec![started("c1")], None).await.unwrap();
    let got = s.claim(host("h1", 1)).await.unwrap();
    assert_eq!(got[0].attempt, 1);
    let done = || RunEnd::Completed(Json::new(&serde_json::json!({"ok": true})));
    assert!(
        s.finish(end("c1", "h1", 2, done()), fast_retry())
            .await
            .unwrap()
            .is_none(),
        "wrong attempt"
    );
    assert!(
        s.finish(end("c1", "h2", 1, done()), fast_retry())
            .await
            .unwrap()
            .is_none(),
        "wrong host"
    );
    assert_eq!(status(&*s, "c1").await, Status::Running);
    let j = s
        .finish(end("c1", "h1", 1, done()), fast_retry())
        .await
        .unwrap()
        .expect("recorded");
    assert_eq!(j.status, Status::Completed);
    assert_eq!(
        j.result.as_ref().unwrap().to_value(),
        serde_json::json!({"ok": true})
    );
    assert!(
        s.finish(end("c1", "h1", 1, failed(true)), fast_retry())
            .await
            .unwrap()
            .is_none(),
        "late writer"
    );
    assert_eq!(status(&*s, "c1").await, Status::Completed);
    // Many ends at once, some stale.
    s.insert_many(vec![started("c2"), started("c3")], None)
        .await
        .unwrap();
    s.claim(host("h1", 2)).await.unwrap();
    let out = s
        .finish_many(
            vec![
                end("c2", "h1", 1, done()),
                end("c3", "h1", 7, done()),
                end("zz", "h1", 1, done()),
            ],
            fast_retry(),
        )
        .await
        .unwrap();
    assert!(out[0].is_some() && out[1].is_none() && out[2].is_none());
}

/// A conformance check (see [`store_conformance_tests`]).
pub async fn claimed_jobs_are_handed_to_the_runner_once(b: &impl StoreBackend) {
    let s = b.open("claimed_jobs_are_handed_to_the_runner_once").await;
    let handed: Arc<std::sync::Mutex<Vec<String>>> = Arc::default();
    let with_runner = |max: usize| {
        let seen = handed.clone();
        Claimant {
            run: Some(Runner::new(move |job| {
                seen.lock().unwrap().push(job.job_id.clone());
            })),
            ..host("h1", max)
        }
    };
    let take = || std::mem::take(&mut *handed.lock().unwrap());
    // An insert that claims hands over what it claimed, once, before it returns.
    let c = with_runner(1);
    let out = s
        .insert_many(vec![started("r1"), started("r2")], Some(c.clone()))
        .await
        .unwrap();
    assert_eq!(ids(&out.claimed), ["r1"]);
    assert_eq!(take(), ["r1"], "the insert's claim goes to the runner");
    assert_eq!(c.run.as_ref().map(Runner::handed), Some(1));
    // So does a start that claims its job…
    s.insert_many(vec![job("r3")], None).await.unwrap();
    let st = s.start("r3", Some(with_runner(1)), None).await.unwrap();
    assert!(st.claimed);
    assert_eq!(take(), ["r3"]);
    // …and a claim; one that finds nothing hands nothing.
    let got = s.claim(with_runner(5)).await.unwrap();
    assert_eq!(ids(&got), ["r2"]);
    assert_eq!(take(), ["r2"]);
    assert!(s.claim(with_runner(5)).await.unwrap().is_empty());
    // A start whose type the host lacks claims nothing and hands nothing.
    s.insert_many(vec![job("r4")], None).await.unwrap();
    let other = Claimant {
        job_types: vec!["other".to_string()].into(),
        ..with_runner(1)
    };
    assert!(!s.start("r4", Some(other), None).await.unwrap().claimed);
    assert!(take().is_empty(), "nothing claimed, nothing handed");
    // The runs handed over end as claimed.
    let done = || RunEnd::Completed(Json::new(&serde_json::json!({"ok": true})));
    for id in ["r1", "r2", "r3"] {
        let j = s
            .finish(end(id, "h1", 1, done()), fast_retry())
            .await
            .unwrap()
            .expect("recorded");
        assert_eq!(j.status, Status::Completed, "{id}");
    }
    assert_eq!(status(&*s, "r4").await, Status::Pending);
}

/// A conformance check (see [`store_conformance_tests`]).
pub async fn retryable_failures_are_retried_with_backoff(b: &impl StoreBackend) {
    let s = b.open("retryable_failures_are_retried_with_backoff").await;
    s.insert_many(
        vec![
            NewJob {
                max_attempts: 2,
                ..started("r1")
            },
            NewJob {
                max_attempts: 3,
                ..started("r2")
            },
        ],
        None,
    )
    .await
    .unwrap();
    // A backoff long enough that a loaded machine (or a remote database) cannot outrun it
    // between the end and the next claim.
    let backoff = RetryPolicy {
        base: Duration::from_millis(300),
        ..fast_retry()
    };
    s.claim(host("h", 2)).await.unwrap();
    let j = s
        .finish(end("r1", "h", 1, failed(true)), backoff)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(j.status, Status::Pending, "retry scheduled");
    assert!(j.scheduled_at.is_some());
    assert_eq!(j.errors.len(), 1);
    assert_eq!(j.errors[0].attempt, 1);
    let j2 = s
        .finish(end("r2", "h", 1, failed(false)), backoff)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(j2.status, Status::Error, "not retryable: ends at once");
    assert!(
        s.claim(host("h", 1)).await.unwrap().is_empty(),
        "waits its backoff"
    );
    tokio::time::sleep(Duration::from_millis(400)).await;
    let got = s.claim(host("h", 1)).await.unwrap();
    assert_eq!(ids(&got), ["r1"]);
    assert_eq!(got[0].attempt, 2);
    let j = s
        .finish(end("r1", "h", 2, failed(true)), backoff)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(j.status, Status::Error, "attempts ran out");
    assert_eq!(
        j.errors.iter().map(|e| e.attempt).collect::<Vec<_>>(),
        [1, 2]
    );
    assert_eq!(j.error.as_ref().unwrap().code, "BOOM");
}

/// A conformance check (see [`store_conformance_tests`]).
pub async fn stop_requests_reach_the_host_that_runs_the_job(b: &impl StoreBackend) {
    let s = b
        .open("stop_requests_reach_the_host_that_runs_the_job")
        .await;
    let mut stops = s.stop_requests("hs");
    s.insert_many(
        vec![
            NewJob {
                max_attempts: 5,
                ..started("x1")
            },
            job("x2"),
            started("x3"),
        ],
        None,
    )
    .await
    .unwrap();
    let got = s.claim(host("hs", 1)).await.unwrap();
    assert_eq!(ids(&got), ["x1"]);
    match s.request_stop("x1", StopKind::Stop, None).await.unwrap() {
        StopOutcome::Signalled { host, job } => {
            assert_eq!(host, "hs");
            assert_eq!(job.status, Status::Running);
        }
        other => panic!("a running job is signalled: {other:?}"),
    }
    // That it arrives is checked here; how fast, by the benchmarks (P7): the bound only keeps a
    // lost request from hanging the suite, so it allows for a machine busy with other tests.
    let req = tokio::time::timeout(Duration::from_secs(10), stops.recv())
        .await
        .expect("the stop request arrives")
        .expect("stream open");
    assert_eq!(
        (req.job_id.as_str(), req.attempt, req.kind),
        ("x1", 1, StopKind::Stop)
    );
    // Its run ends with a retryable error: a stop is never retried.
    let j = s
        .finish(end("x1", "hs", 1, failed(true)), fast_retry())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(j.status, Status::Error);
    // A job that does not run ends at once.
    match s.request_stop("x2", StopKind::Stop, None).await.unwrap() {
        StopOutcome::Ended(j) => assert_eq!(j.status, Status::Stopped),
        other => panic!("{other:?}"),
    }
    match s.request_stop("x3", StopKind::Delete, None).await.unwrap() {
        StopOutcome::Ended(j) => assert_eq!(j.status, Status::Deleted),
        other => panic!("{other:?}"),
    }
    let e = s.request_stop("x2", StopKind::Stop, None).await;
    assert!(
        matches!(
            e,
            Err(StoreError::StateInvalid {
                current: Status::Stopped,
                ..
            })
        ),
        "{e:?}"
    );
    // A delete asked during a run wins over its completion.
    s.insert_many(vec![started("x4")], None).await.unwrap();
    s.claim(host("hs", 1)).await.unwrap();
    s.request_stop("x4", StopKind::Delete, None).await.unwrap();
    let j = s
        .finish(
            end("x4", "hs", 1, RunEnd::Completed(Json::null())),
            fast_retry(),
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(j.status, Status::Deleted);
}

/// A run a host holds, for [`JobStore::heartbeat`].
pub fn held(id: &str, attempt: u32) -> queuemgr::store::RunRef {
    queuemgr::store::RunRef {
        job_id: id.to_string(),
        attempt,
    }
}

/// A conformance check (see [`store_conformance_tests`]).
///
/// A claim whose answer never reached its host leaves a job RUNNING under the host's name that
/// no run holds; the host's heartbeat must not keep it alive.
pub async fn a_heartbeat_extends_only_the_runs_its_host_holds(b: &impl StoreBackend) {
    let s = b
        .open("a_heartbeat_extends_only_the_runs_its_host_holds")
        .await;
    s.insert_many(vec![started("h1"), started("h2"), started("h3")], None)
        .await
        .unwrap();
    let mut h = host("h", 3);
    h.lease = Duration::from_millis(50);
    assert_eq!(s.claim(h).await.unwrap().len(), 3);
    // h runs h1; h2's claim was lost on the way; h3 is named in an attempt it is not in.
    assert_eq!(
        s.heartbeat(
            "h",
            Duration::from_secs(30),
            &[held("h1", 1), held("h3", 2), held("absent", 1)]
        )
        .await
        .unwrap(),
        1,
        "only the held run's lease is extended"
    );
    // Another host's name does not extend h's run either.
    assert_eq!(
        s.heartbeat("other", Duration::from_secs(30), &[held("h1", 1)])
            .await
            .unwrap(),
        0
    );
    tokio::time::sleep(Duration::from_millis(80)).await;
    let mut got = ids(&s
        .rescue(queuemgr::job::now_micros(), fast_retry())
        .await
        .unwrap());
    got.sort();
    assert_eq!(got, ["h2", "h3"], "the runs h does not hold lapse");
    assert_eq!(status(&*s, "h1").await, Status::Running);
}

/// A conformance check (see [`store_conformance_tests`]).
pub async fn expired_leases_are_rescued_and_heartbeats_keep_them(b: &impl StoreBackend) {
    let s = b
        .open("expired_leases_are_rescued_and_heartbeats_keep_them")
        .await;
    s.insert_many(
        vec![
            started("l1"),
            NewJob {
                max_attempts: 2,
                ..started("l2")
            },
            started("l3"),
        ],
        None,
    )
    .await
    .unwrap();
    let mut short = host("dead", 2);
    short.lease = Duration::from_millis(50);
    assert_eq!(s.claim(short).await.unwrap().len(), 2);
    let mut live = host("alive", 1);
    live.lease = Duration::from_millis(50);
    assert_eq!(ids(&s.claim(live).await.unwrap()), ["l3"]);
    tokio::time::sleep(Duration::from_millis(30)).await;
    assert_eq!(
        s.heartbeat("alive", Duration::from_secs(30), &[held("l3", 1)])
            .await
            .unwrap(),
        1
    );
    tokio::time::sleep(Duration::from_millis(40)).await;
    let now = queuemgr::job::now_micros();
    let rescued = s.rescue(now, fast_retry()).await.unwrap();
    let mut got = ids(&rescued);
    got.sort();
    assert_eq!(
        got,
        ["l1", "l2"],
        "the dead host's runs, not the live one's"
    );
    let l1 = s.get("l1").await.unwrap().unwrap();
    assert_eq!(l1.status, Status::Stopped);
    assert_eq!(l1.result.as_ref().unwrap().to_value()["interrupted"], true);
    let l2 = s.get("l2").await.unwrap().unwrap();
    assert_eq!(l2.status, Status::Pending, "attempts remain: retried");
    assert_eq!(
        l2.errors[0].error.kind,
        queuemgr::job::ErrorKind::Interrupted
    );
    assert_eq!(status(&*s, "l3").await, Status::Running);
    // The dead host's late end changes nothing.
    let late = s
        .finish(
            end("l1", "dead", 1, RunEnd::Completed(Json::null())),
            fast_retry(),
        )
        .await
        .unwrap();
    assert!(late.is_none());
    assert_eq!(status(&*s, "l1").await, Status::Stopped);
}

/// A conformance check (see [`store_conformance_tests`]).
pub async fn lists_page_filter_and_count(b: &impl StoreBackend) {
    let s = b.open("lists_page_filter_and_count").await;
    let jobs: Vec<NewJob> = (0..25).map(|i| job(&format!("g{i:02}"))).collect();
    s.insert_many(jobs, None).await.unwrap();
    let base = s.list(ListQuery::default()).await.unwrap().total;
    // Page through this test's jobs only: a type filter.
    let other: Vec<NewJob> = (0..5)
        .map(|i| NewJob {
            job_type: "paged".into(),
            ..job(&format!("q{i}"))
        })
        .collect();
    s.insert_many(other, None).await.unwrap();
    let q = |cursor: Option<String>, order| ListQuery {
        job_type: Some("paged".into()),
        cursor,
        order,
        limit: Some(2),
        ..ListQuery::default()
    };
    let p1 = s.list(q(None, Order::Oldest)).await.unwrap();
    assert_eq!(ids(&p1.jobs), ["q0", "q1"]);
    assert_eq!(p1.total, 5);
    let p2 = s
        .list(q(p1.next_cursor.clone(), Order::Oldest))
        .await
        .unwrap();
    assert_eq!(ids(&p2.jobs), ["q2", "q3"]);
    let p3 = s
        .list(q(p2.next_cursor.clone(), Order::Oldest))
        .await
        .unwrap();
    assert_eq!(ids(&p3.jobs), ["q4"]);
    assert!(p3.next_cursor.is_none(), "last page");
    let n1 = s.list(q(None, Order::Newest)).await.unwrap();
    assert_eq!(ids(&n1.jobs), ["q4", "q3"]);
    let n2 = s.list(q(n1.next_cursor, Order::Newest)).await.unwrap();
    assert_eq!(ids(&n2.jobs), ["q2", "q1"]);
    // Status filter and counts.
    s.request_stop("q1", StopKind::Stop, None).await.unwrap();
    let stopped = s
        .list(ListQuery {
            job_type: Some("paged".into()),
            status: Some(Status::Stopped),
            ..ListQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(ids(&stopped.jobs), ["q1"]);
    let all = s.list(ListQuery::default()).await.unwrap();
    assert_eq!(all.total, base + 5);
    assert_eq!(all.jobs.len(), all.total);
    let c = s.counts().await.unwrap();
    assert_eq!(c.total, all.total);
    let sum: usize = c.by_status.values().sum();
    assert_eq!(sum, c.total);
    assert!(c.by_status["STOPPED"] >= 1);
}

/// A conformance check (see [`store_conformance_tests`]): a list in a key's scope holds and
/// counts only the jobs whose type and queue its globs match (`%`, `_` and `\\` literal); who
/// added a job and who started, stopped, restarted and deleted it is kept on the job.
pub async fn scoped_lists_and_the_audit_trail(b: &impl StoreBackend) {
    let s = b.open("scoped_lists_and_the_audit_trail").await;
    let mk = |id: &str, ty: &str, queue: &str| NewJob {
        job_type: ty.into(),
        queue: queue.into(),
        added_by: Some("ci".into()),
        run_at: Some(queuemgr::job::now_micros() + 3_600_000_000),
        ..job(id)
    };
    s.insert_many(
        vec![
            mk("s1", "report_daily", "default"),
            mk("s2", "report_weekly", "bulk"),
            mk("s3", "reportXdaily", "bulk"),
            mk("s4", "mail", "bulk"),
            mk("s5", "report_%", "default"),
        ],
        None,
    )
    .await
    .unwrap();
    let listed = |types: &[&str], queues: &[&str]| {
        let scope = queuemgr::auth::Scope::new(
            &types.iter().map(|t| t.to_string()).collect::<Vec<_>>(),
            &queues.iter().map(|t| t.to_string()).collect::<Vec<_>>(),
        );
        let s = &s;
        async move {
            let p = s
                .list(ListQuery {
                    scope: Some(Arc::new(scope)),
                    ..ListQuery::default()
                })
                .await
                .unwrap();
            assert_eq!(p.total, p.jobs.len(), "total counts the scope's jobs");
            let mut ids: Vec<String> = p.jobs.iter().map(|j| j.job_id.clone()).collect();
            ids.sort();
            ids
        }
    };
    assert_eq!(listed(&["report_*"], &[]).await, ["s1", "s2", "s5"]);
    assert_eq!(listed(&["report_%"], &[]).await, ["s5"], "% is literal");
    assert_eq!(listed(&["report?daily"], &[]).await, ["s1", "s3"]);
    assert_eq!(listed(&[], &["bulk"]).await, ["s2", "s3", "s4"]);
    assert_eq!(
        listed(&["report*", "mail"], &["bulk"]).await,
        ["s2", "s3", "s4"]
    );
    assert!(listed(&["nothing*"], &[]).await.is_empty());

    s.start("s1", None, Some("ops")).await.unwrap();
    s.request_stop("s1", StopKind::Stop, Some("ci"))
        .await
        .unwrap();
    s.start("s1", None, None).await.unwrap();
    s.start("s4", None, Some("ops")).await.unwrap();
    s.start("s4", None, Some("ci")).await.unwrap_err();
    s.request_stop("s1", StopKind::Stop, Some("ops"))
        .await
        .unwrap();
    s.start("s1", None, Some("ci")).await.unwrap();
    s.request_stop("s1", StopKind::Delete, Some("ops"))
        .await
        .unwrap();
    let j = s.get("s1").await.unwrap().unwrap();
    assert_eq!(j.added_by.as_deref(), Some("ci"));
    let trail: Vec<(&str, AuditAction)> =
        j.audit.iter().map(|a| (a.key.as_str(), a.action)).collect();
    assert_eq!(
        trail,
        [
            ("ops", AuditAction::Start),
            ("ci", AuditAction::Stop),
            ("ops", AuditAction::Stop),
            ("ci", AuditAction::Restart),
            ("ops", AuditAction::Delete),
        ],
        "an act without a key (the host's own) is not recorded"
    );
    assert!(j.audit.windows(2).all(|w| w[0].at <= w[1].at));
    let s4 = s.get("s4").await.unwrap().unwrap();
    assert_eq!(s4.audit.len(), 1, "a refused start records nothing");
}

/// A conformance check (see [`store_conformance_tests`]).
pub async fn retention_purges_what_it_should(b: &impl StoreBackend) {
    let s = b.open("retention_purges_what_it_should").await;
    s.insert_many(vec![job("k1"), job("k2")], None)
        .await
        .unwrap();
    let gone = delete_and_purge(&*s, "k1").await;
    assert!(gone.contains(&"k1".to_string()), "{gone:?}");
    assert!(s.get("k1").await.unwrap().is_none());
    assert!(s.get("k2").await.unwrap().is_some());
    // What was purged leaves dead space; compaction reclaims it, and what is left stays.
    if let Err(e) = s.compact().await {
        panic!("compaction after a purge failed: {e}");
    }
    assert!(s.get("k2").await.unwrap().is_some());
}

/// A conformance check (see [`store_conformance_tests`]).
pub async fn the_feed_publishes_durable_changes(b: &impl StoreBackend) {
    let s = b.open("the_feed_publishes_durable_changes").await;
    let mut feed = s.subscribe();
    s.insert_many(vec![started("f1")], Some(host("h", 1)))
        .await
        .unwrap();
    let c = tokio::time::timeout(Duration::from_secs(1), feed.recv())
        .await
        .expect("a change")
        .expect("feed open");
    assert_eq!(c.job.job_id, "f1");
    assert_eq!(c.job.status, Status::Running);
    s.finish(
        end("f1", "h", 1, RunEnd::Completed(Json::null())),
        fast_retry(),
    )
    .await
    .unwrap();
    let c = tokio::time::timeout(Duration::from_secs(1), feed.recv())
        .await
        .expect("a change")
        .expect("feed open");
    assert_eq!(
        (c.job.job_id.as_str(), c.job.status),
        ("f1", Status::Completed)
    );
}

/// A conformance check (see [`store_conformance_tests`]).
pub async fn acknowledged_jobs_survive_a_crash(b: &impl StoreBackend) {
    let s = b.open("acknowledged_jobs_survive_a_crash").await;
    s.insert_many(vec![job("z1"), started("z2"), started("z3")], None)
        .await
        .unwrap();
    s.claim(host("gone", 1)).await.unwrap();
    s.flush().await.unwrap();
    drop(s);
    let s = b.open("acknowledged_jobs_survive_a_crash").await;
    assert_eq!(status(&*s, "z1").await, Status::Pending);
    // The run of the host that died is taken back once its lease is over.
    let later = queuemgr::job::now_micros() + 31_000_000;
    s.rescue(later, fast_retry()).await.unwrap();
    let z2 = s.get("z2").await.unwrap().unwrap();
    assert_ne!(z2.status, Status::Running, "{z2:?}");
    assert_eq!(z2.result.as_ref().unwrap().to_value()["interrupted"], true);
    // The job that was waiting still waits, and runs.
    assert_eq!(ids(&s.claim(host("h", 10)).await.unwrap()), ["z3"]);
}

/// Replay folds a history (several records per job, an error, a purge, a unique key, a
/// schedule) into the table the store had: the same counts, the same list in the same order,
/// the same key held, the same job due.
/// A conformance check (see [`store_conformance_tests`]).
pub async fn a_reopened_store_counts_lists_and_claims_as_before(b: &impl StoreBackend) {
    let name = "a_reopened_store_counts_lists_and_claims_as_before";
    let s = b.open(name).await;
    let later = queuemgr::job::now_micros() + 3_600_000_000;
    s.insert_many(
        vec![
            job("o1"),
            started("o2"),
            started("o3"),
            NewJob {
                job_type: "other".into(),
                unique_key: Some("o-key".into()),
                ..started("o4")
            },
            NewJob {
                run_at: Some(later),
                ..started("o5")
            },
            job("o6"),
        ],
        None,
    )
    .await
    .unwrap();
    assert_eq!(ids(&s.claim(host("h", 2)).await.unwrap()), ["o2", "o3"]);
    s.finish(
        end("o2", "h", 1, RunEnd::Completed(Json::null())),
        fast_retry(),
    )
    .await
    .unwrap();
    s.finish(end("o3", "h", 1, failed(false)), fast_retry())
        .await
        .unwrap();
    let gone = delete_and_purge(&*s, "o6").await;
    assert!(gone.contains(&"o6".to_string()), "{gone:?}");
    s.flush().await.unwrap();
    let table = |p: queuemgr::store::Page| -> Vec<(String, Status)> {
        p.jobs
            .iter()
            .map(|j| (j.job_id.clone(), j.status))
            .collect()
    };
    let oldest = ListQuery {
        order: Order::Oldest,
        ..ListQuery::default()
    };
    let before = table(s.list(oldest.clone()).await.unwrap());
    let counts = s.counts().await.unwrap();
    drop(s);
    let s = b.open(name).await;
    assert_eq!(table(s.list(oldest).await.unwrap()), before);
    let again = s.counts().await.unwrap();
    assert_eq!(again.total, counts.total);
    assert_eq!(again.by_status, counts.by_status);
    assert_eq!(again.by_type, counts.by_type);
    assert_eq!(
        (again.waiting, again.unstarted),
        (counts.waiting, counts.unstarted)
    );
    let o = |id: &str| before.iter().find(|(j, _)| j == id).map(|(_, st)| *st);
    assert_eq!(
        [o("o1"), o("o2"), o("o3"), o("o4"), o("o5"), o("o6")],
        [
            Some(Status::Pending),
            Some(Status::Completed),
            Some(Status::Error),
            Some(Status::Pending),
            Some(Status::Pending),
            None
        ]
    );
    let dup = s
        .insert_many(
            vec![NewJob {
                unique_key: Some("o-key".into()),
                ..job("o7")
            }],
            None,
        )
        .await
        .unwrap();
    assert!(dup.jobs[0].duplicate, "the key is still held by o4");
    let mut other = host("h", 10);
    other.job_types = vec!["noop".to_string(), "other".to_string()].into();
    assert_eq!(
        ids(&s.claim(other).await.unwrap()),
        ["o4"],
        "o5 waits for its time"
    );
}

/// A schedule of `noop` every second, its cursor at `cursor`.
pub fn every_second(name: &str, cursor: i64) -> queuemgr::schedule::ScheduleRecord {
    let spec = queuemgr::schedule::ScheduleSpec {
        name: name.to_string(),
        job_type: "noop".into(),
        params: Json::new(&serde_json::json!({})),
        cron: "* * * * * *".into(),
        timezone: "UTC".into(),
        overlap: queuemgr::schedule::Overlap::Allow,
        catch_up: queuemgr::schedule::CatchUp::All,
        catch_up_window_secs: 3600,
        enabled: true,
        priority: None,
        max_attempts: None,
    };
    queuemgr::schedule::ScheduleRecord::declared(spec, queuemgr::schedule::Origin::Api, cursor)
}

/// The firing that moves `name` from `expect` to `slot`, enqueuing that slot's job.
pub fn firing(name: &str, expect: i64, slot: i64) -> queuemgr::schedule::Firing {
    queuemgr::schedule::Firing {
        name: name.to_string(),
        expect,
        cursor: slot,
        queued: None,
        jobs: vec![NewJob {
            job_id: queuemgr::schedule::job_id_for(name, slot),
            schedule: Some(queuemgr::schedule::SlotRef {
                name: name.to_string(),
                slot,
            }),
            ..started("unused")
        }],
        skipped: 0,
    }
}

/// A conformance check (see [`store_conformance_tests`]).
pub async fn schedules_are_put_listed_and_deleted(b: &impl StoreBackend) {
    use queuemgr::store::PutSchedule;
    let s = b.open("schedules_are_put_listed_and_deleted").await;
    let t0 = 1_767_225_600_000_000i64;
    let a = s
        .put_schedule(every_second("a", t0), PutSchedule::Create)
        .await
        .unwrap();
    assert_eq!(a.cursor, t0);
    s.put_schedule(every_second("b", t0), PutSchedule::Create)
        .await
        .unwrap();
    // A second create of a name is refused, and changes nothing.
    let mut other = every_second("a", t0 + 5);
    other.spec.cron = "0 * * * *".into();
    let e = s
        .put_schedule(other.clone(), PutSchedule::Create)
        .await
        .unwrap_err();
    assert!(
        matches!(e, StoreError::ScheduleExists(ref n) if n == "a"),
        "{e:?}"
    );
    // The cursor moves, then a replace keeps it unless asked to reset it.
    s.fire(vec![firing("a", t0, t0 + 1_000_000)]).await.unwrap();
    let kept = s
        .put_schedule(other.clone(), PutSchedule::Replace { reset: false })
        .await
        .unwrap();
    assert_eq!(kept.spec.cron, "0 * * * *");
    assert_eq!(kept.cursor, t0 + 1_000_000);
    assert_eq!(kept.last_slot, Some(t0 + 1_000_000));
    let reset = s
        .put_schedule(other, PutSchedule::Replace { reset: true })
        .await
        .unwrap();
    assert_eq!(reset.cursor, t0 + 5);
    let names: Vec<String> = s
        .schedules()
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.spec.name)
        .collect();
    assert_eq!(names, ["a", "b"]);
    let gone = s.delete_schedule("a").await.unwrap().expect("it was there");
    assert_eq!(gone.spec.cron, "0 * * * *");
    assert!(s.delete_schedule("a").await.unwrap().is_none());
    assert_eq!(s.schedules().await.unwrap().len(), 1);
    // Its job stays.
    let j = s
        .get(&queuemgr::schedule::job_id_for("a", t0 + 1_000_000))
        .await
        .unwrap()
        .expect("the slot's job stays");
    assert_eq!(j.schedule.as_ref().map(|x| x.slot), Some(t0 + 1_000_000));
}

/// A conformance check (see [`store_conformance_tests`]): hosts that read the same cursor
/// and fire the same slot at once enqueue it once; a stale cursor or a missing schedule fires
/// nothing; the slot's job is runnable and names its schedule and slot.
pub async fn a_slot_is_enqueued_once_however_many_hosts_fire_it(b: &impl StoreBackend) {
    use queuemgr::store::PutSchedule;
    let s = b
        .open("a_slot_is_enqueued_once_however_many_hosts_fire_it")
        .await;
    let t0 = 1_767_225_600_000_000i64;
    s.put_schedule(every_second("x", t0), PutSchedule::Create)
        .await
        .unwrap();
    // Each try names its job differently, so that only the cursor's compare-and-set (not the
    // slot's job id) can keep all but one out.
    let mut tries = Vec::new();
    for i in 0..8 {
        let s = s.clone();
        let mut f = firing("x", t0, t0 + 1_000_000);
        f.jobs[0].job_id = format!("x-try-{i}");
        tries.push(tokio::spawn(async move {
            s.fire(vec![f, firing("nobody", t0, t0 + 1_000_000)]).await
        }));
    }
    let mut fired = Vec::new();
    for t in tries {
        let out = t.await.unwrap().unwrap();
        assert!(
            out.iter().all(|f| f.name == "x"),
            "a missing schedule fires nothing"
        );
        fired.extend(out.iter().flat_map(|f| ids(&f.jobs)));
    }
    assert_eq!(fired.len(), 1, "one slot, one job: {fired:?}");
    let id = fired[0].clone();
    for i in 0..8 {
        let other = format!("x-try-{i}");
        if other != id {
            assert!(
                s.get(&other).await.unwrap().is_none(),
                "{other} was inserted too"
            );
        }
    }
    // A stale cursor fires nothing.
    let out = s.fire(vec![firing("x", t0, t0 + 2_000_000)]).await.unwrap();
    assert!(out.is_empty(), "{out:?}");
    let x = s.schedules().await.unwrap().remove(0);
    assert_eq!(x.cursor, t0 + 1_000_000);
    assert_eq!(x.last_job_id.as_deref(), Some(id.as_str()));
    let j = s.get(&id).await.unwrap().expect("the slot's job");
    assert_eq!(j.status, Status::Pending);
    assert_eq!(j.schedule.as_ref().map(|x| x.name.as_str()), Some("x"));
    assert_eq!(ids(&s.claim(host("h", 10)).await.unwrap()), [id]);
    // The next slot fires from the new cursor; a paused schedule fires nothing.
    let out = s
        .fire(vec![firing("x", t0 + 1_000_000, t0 + 2_000_000)])
        .await
        .unwrap();
    assert_eq!(out.len(), 1);
    let mut paused = every_second("x", 0);
    paused.spec.enabled = false;
    s.put_schedule(paused, PutSchedule::Replace { reset: false })
        .await
        .unwrap();
    let out = s
        .fire(vec![firing("x", t0 + 2_000_000, t0 + 3_000_000)])
        .await
        .unwrap();
    assert!(out.is_empty(), "{out:?}");
}

/// A conformance check (see [`store_conformance_tests`]).
pub async fn schedules_and_their_cursors_survive_a_reopen(b: &impl StoreBackend) {
    use queuemgr::store::PutSchedule;
    let name = "schedules_and_their_cursors_survive_a_reopen";
    let s = b.open(name).await;
    let t0 = 1_767_225_600_000_000i64;
    s.put_schedule(every_second("r", t0), PutSchedule::Create)
        .await
        .unwrap();
    s.fire(vec![firing("r", t0, t0 + 1_000_000)]).await.unwrap();
    s.flush().await.unwrap();
    drop(s);
    let s = b.open(name).await;
    let r = s.schedules().await.unwrap().remove(0);
    assert_eq!(r.cursor, t0 + 1_000_000);
    assert_eq!(r.last_slot, Some(t0 + 1_000_000));
    // The slot cannot be enqueued again after the restart.
    let out = s.fire(vec![firing("r", t0, t0 + 1_000_000)]).await.unwrap();
    assert!(out.is_empty());
}

/// A conformance check (see [`store_conformance_tests`]): two slots fired in a row, the second
/// slot's job deleted and purged, the store reopened: the cursor is still past both slots (a
/// store that keeps cursors only in its jobs must write them down before the jobs can go), and
/// neither slot can be enqueued again.
pub async fn a_cursor_outlives_the_jobs_that_told_it(b: &impl StoreBackend) {
    use queuemgr::store::PutSchedule;
    let name = "a_cursor_outlives_the_jobs_that_told_it";
    let s = b.open(name).await;
    let t0 = 1_767_225_600_000_000i64;
    s.put_schedule(every_second("p", t0), PutSchedule::Create)
        .await
        .unwrap();
    s.fire(vec![firing("p", t0, t0 + 1_000_000)]).await.unwrap();
    let out = s
        .fire(vec![firing("p", t0 + 1_000_000, t0 + 2_000_000)])
        .await
        .unwrap();
    assert_eq!(out.len(), 1);
    for slot in [t0 + 1_000_000, t0 + 2_000_000] {
        let id = queuemgr::schedule::job_id_for("p", slot);
        let gone = delete_and_purge(&*s, &id).await;
        assert!(gone.contains(&id), "{gone:?}");
    }
    s.flush().await.unwrap();
    drop(s);
    let s = b.open(name).await;
    let p = s.schedules().await.unwrap().remove(0);
    assert_eq!(p.cursor, t0 + 2_000_000);
    let again = s
        .fire(vec![
            firing("p", t0, t0 + 1_000_000),
            firing("p", t0 + 1_000_000, t0 + 2_000_000),
        ])
        .await
        .unwrap();
    assert!(again.is_empty(), "a slot enqueued twice: {again:?}");
}

/// A job of `queue` with `key`, started.
pub fn in_queue(id: &str, queue: &str, key: Option<&str>) -> NewJob {
    NewJob {
        queue: queue.to_string(),
        concurrency_key: key.map(str::to_string),
        ..started(id)
    }
}

/// Settings of `queue` as the API would declare them.
pub fn queue_settings(
    queue: &str,
    concurrency: Option<u32>,
    key_concurrency: Option<u32>,
    paused: bool,
) -> queuemgr::limits::QueueRecord {
    queuemgr::limits::QueueRecord {
        spec: queuemgr::limits::QueueSpec {
            name: queue.to_string(),
            concurrency,
            key_concurrency,
            priority: None,
            paused,
            ..queuemgr::limits::QueueSpec::default()
        },
        origin: queuemgr::schedule::Origin::Api,
        created_at: 1,
        updated_at: 1,
    }
}

fn count_by<'a>(
    jobs: impl Iterator<Item = &'a Arc<queuemgr::job::JobRecord>>,
) -> std::collections::BTreeMap<String, usize> {
    let mut m = std::collections::BTreeMap::new();
    for j in jobs {
        let k = format!(
            "{}/{}",
            j.queue,
            j.concurrency_key.as_deref().unwrap_or("-")
        );
        *m.entry(k).or_default() += 1;
    }
    m
}

/// A conformance check (see [`store_conformance_tests`]).
pub async fn queue_limits_and_pauses_hold_claims_back(b: &impl StoreBackend) {
    let s = b.open("queue_limits_and_pauses_hold_claims_back").await;
    // Settings first: a job is then claimed only under them, even in the write that adds it.
    s.put_queue(queue_settings("q", Some(2), None, false))
        .await
        .unwrap();
    s.put_queue(queue_settings("k", None, Some(1), false))
        .await
        .unwrap();
    let mut jobs = Vec::new();
    for i in 0..5 {
        jobs.push(in_queue(&format!("q{i}"), "q", None));
        jobs.push(in_queue(&format!("ka{i}"), "k", Some("a")));
        jobs.push(in_queue(&format!("kb{i}"), "k", Some("b")));
    }
    jobs.push(in_queue("d0", "default", None));
    jobs.push(in_queue("kn", "k", None));
    let out = s.insert_many(jobs, Some(host("h1", 100))).await.unwrap();
    let mut running: Vec<Arc<queuemgr::job::JobRecord>> = out.claimed.clone();
    running.extend(s.claim(host("h1", 100)).await.unwrap());
    let by = count_by(running.iter());
    assert_eq!(by.get("q/-"), Some(&2), "queue q runs 2 at most: {by:?}");
    assert_eq!(by.get("k/a"), Some(&1), "key a runs 1 at most: {by:?}");
    assert_eq!(by.get("k/b"), Some(&1), "key b runs 1 at most: {by:?}");
    assert_eq!(
        by.get("k/-"),
        Some(&1),
        "a job without a key is held by its queue alone"
    );
    assert_eq!(by.get("default/-"), Some(&1));
    assert!(
        s.claim(host("h2", 100)).await.unwrap().is_empty(),
        "another host finds every limit full"
    );
    // A run that ends makes room for one more of its queue.
    let q_run = running.iter().find(|j| j.queue == "q").unwrap();
    s.finish(
        end(
            &q_run.job_id,
            &q_run.host.clone().unwrap(),
            1,
            RunEnd::Completed(Json::null()),
        ),
        fast_retry(),
    )
    .await
    .unwrap();
    let more = s.claim(host("h2", 100)).await.unwrap();
    assert_eq!(
        count_by(more.iter()).get("q/-"),
        Some(&1),
        "{:?}",
        ids(&more)
    );
    assert_eq!(more.len(), 1, "{:?}", ids(&more));
    // Depths: per queue, waiting and running.
    let depths = s.queue_depths().await.unwrap();
    let q = depths
        .iter()
        .find(|d| d.queue == "q")
        .expect("queue q listed");
    assert_eq!(
        (q.waiting, q.running),
        (2, 2),
        "5 added, 1 ended: {depths:?}"
    );
    // A pause holds new claims back; what runs goes on; a resume lets them through.
    s.put_queue(queue_settings("p", None, None, true))
        .await
        .unwrap();
    s.insert_many(vec![in_queue("p0", "p", None)], Some(host("h1", 10)))
        .await
        .unwrap();
    assert!(
        s.claim(host("h1", 10)).await.unwrap().is_empty(),
        "p is paused"
    );
    assert_eq!(status(&*s, "p0").await, Status::Pending);
    s.put_queue(queue_settings("p", None, None, false))
        .await
        .unwrap();
    let resumed = s.claim(host("h1", 10)).await.unwrap();
    assert_eq!(ids(&resumed), vec!["p0".to_string()]);
    // Lifting a limit lets the rest through.
    s.put_queue(queue_settings("k", None, None, false))
        .await
        .unwrap();
    let lifted = s.claim(host("h1", 100)).await.unwrap();
    assert_eq!(lifted.len(), 8, "{:?}", ids(&lifted));
}

/// A conformance check (see [`store_conformance_tests`]).
pub async fn limits_hold_when_hosts_claim_at_once(b: &impl StoreBackend) {
    let s = b.open("limits_hold_when_hosts_claim_at_once").await;
    s.put_queue(queue_settings("q", Some(3), None, false))
        .await
        .unwrap();
    s.put_queue(queue_settings("k", None, Some(1), false))
        .await
        .unwrap();
    let mut jobs = Vec::new();
    for i in 0..40 {
        jobs.push(in_queue(&format!("q{i}"), "q", None));
    }
    for key in 0..5 {
        for i in 0..8 {
            jobs.push(in_queue(
                &format!("k{key}-{i}"),
                "k",
                Some(&format!("t{key}")),
            ));
        }
    }
    s.insert_many(jobs, None).await.unwrap();
    // Sixteen hosts claim at once (on PostgreSQL each claim is a transaction of its own).
    let mut tries = Vec::new();
    for h in 0..16 {
        let s = s.clone();
        tries.push(tokio::spawn(async move {
            s.claim(host(&format!("h{h}"), 4)).await
        }));
    }
    let mut all = Vec::new();
    for t in tries {
        all.extend(t.await.unwrap().unwrap());
    }
    let by = count_by(all.iter());
    assert_eq!(by.get("q/-"), Some(&3), "{by:?}");
    for key in 0..5 {
        assert_eq!(by.get(&format!("k/t{key}")), Some(&1), "{by:?}");
    }
    assert_eq!(all.len(), 8, "{by:?}");
}

/// A conformance check (see [`store_conformance_tests`]).
pub async fn queue_settings_survive_a_reopen(b: &impl StoreBackend) {
    let s = b.open("queue_settings_survive_a_reopen").await;
    s.put_queue(queue_settings("q", Some(1), Some(1), true))
        .await
        .unwrap();
    s.insert_many(vec![in_queue("j", "q", Some("x"))], None)
        .await
        .unwrap();
    drop(s);
    let s = b.open("queue_settings_survive_a_reopen").await;
    let qs = s.queues().await.unwrap();
    assert_eq!(qs.len(), 1);
    assert_eq!(qs[0].spec, queue_settings("q", Some(1), Some(1), true).spec);
    assert!(s.queue_specs().get("q").is_some_and(|q| q.paused));
    let j = s.get("j").await.unwrap().unwrap();
    assert_eq!(
        (j.queue.as_str(), j.concurrency_key.as_deref()),
        ("q", Some("x"))
    );
    assert!(
        s.claim(host("h", 4)).await.unwrap().is_empty(),
        "still paused"
    );
}

/// A conformance check (see [`store_conformance_tests`]).
pub async fn rate_limits_space_starts_and_wake_the_scheduler(b: &impl StoreBackend) {
    let s = b
        .open("rate_limits_space_starts_and_wake_the_scheduler")
        .await;
    let rate = |t: &str| Some(queuemgr::limits::Rate::parse(t).unwrap());
    let mut r = queue_settings("r", None, None, false);
    r.spec.rate = rate("3/s");
    s.put_queue(r).await.unwrap();
    let mut k = queue_settings("k", None, None, false);
    k.spec.key_rate = rate("1/min");
    s.put_queue(k).await.unwrap();
    let mut jobs = Vec::new();
    for i in 0..10 {
        jobs.push(in_queue(&format!("r{i}"), "r", None));
    }
    for i in 0..3 {
        jobs.push(in_queue(&format!("ka{i}"), "k", Some("a")));
        jobs.push(in_queue(&format!("kb{i}"), "k", Some("b")));
    }
    let before = queuemgr::job::now_micros();
    s.insert_many(jobs, None).await.unwrap();
    let first = s.claim(host("h1", 100)).await.unwrap();
    let by = count_by(first.iter());
    assert_eq!(by.get("r/-"), Some(&3), "a burst of 3: {by:?}");
    assert_eq!(by.get("k/a"), Some(&1), "{by:?}");
    assert_eq!(by.get("k/b"), Some(&1), "{by:?}");
    assert!(
        s.claim(host("h2", 100)).await.unwrap().is_empty(),
        "every bucket is spent"
    );
    // The scheduler is told when the queue's bucket opens again: a third of a second on.
    let next = s.next_scheduled().await.unwrap().expect("a reopen time");
    let after = queuemgr::job::now_micros();
    assert!(
        next >= before + 300_000 && next <= after + 340_000,
        "reopens in ~333 ms: {}",
        next - before
    );
    let wait = (next - queuemgr::job::now_micros()).max(0) as u64 + 5_000;
    tokio::time::sleep(Duration::from_micros(wait)).await;
    let more = s.claim(host("h1", 100)).await.unwrap();
    assert_eq!(ids(&more).len(), 1, "one more start: {:?}", ids(&more));
    assert_eq!(more[0].queue, "r");
    // The rest wait PENDING.
    assert_eq!(status(&*s, "r9").await, Status::Pending);
    assert_eq!(status(&*s, "ka2").await, Status::Pending);
}

/// A conformance check (see [`store_conformance_tests`]).
pub async fn claims_take_concurrency_keys_in_turn(b: &impl StoreBackend) {
    let s = b.open("claims_take_concurrency_keys_in_turn").await;
    // Key a's backlog first, then one job of key b, then one of key a with a higher priority.
    let mut jobs: Vec<NewJob> = (0..50)
        .map(|i| in_queue(&format!("a{i:02}"), "default", Some("a")))
        .collect();
    s.insert_many(jobs.split_off(0), None).await.unwrap();
    tokio::time::sleep(Duration::from_millis(2)).await;
    s.insert_many(vec![in_queue("b0", "default", Some("b"))], None)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(2)).await;
    s.insert_many(
        vec![NewJob {
            priority: 5,
            ..in_queue("urgent", "default", Some("a"))
        }],
        None,
    )
    .await
    .unwrap();
    let got = ids(&s.claim(host("h1", 3)).await.unwrap());
    assert_eq!(got.len(), 3, "{got:?}");
    assert_eq!(got[0], "urgent", "priority first: {got:?}");
    assert!(
        got.contains(&"b0".to_string()),
        "key b's job is not held behind key a's backlog: {got:?}"
    );
    assert!(
        got.contains(&"a00".to_string()),
        "key a's oldest is taken in its turn: {got:?}"
    );
    let next = ids(&s.claim(host("h1", 2)).await.unwrap());
    assert_eq!(next, vec!["a01", "a02"], "then key a's backlog in order");
}

/// A conformance check (see [`store_conformance_tests`]).
pub async fn claims_of_one_job_take_keys_in_turn(b: &impl StoreBackend) {
    let s = b.open("claims_of_one_job_take_keys_in_turn").await;
    let a: Vec<NewJob> = (0..5)
        .map(|i| in_queue(&format!("a{i}"), "default", Some("a")))
        .collect();
    s.insert_many(a, None).await.unwrap();
    tokio::time::sleep(Duration::from_millis(2)).await;
    s.insert_many(vec![in_queue("b0", "default", Some("b"))], None)
        .await
        .unwrap();
    let mut got = Vec::new();
    for _ in 0..3 {
        got.extend(ids(&s.claim(host("h1", 1)).await.unwrap()));
    }
    assert_eq!(
        got,
        vec!["a0", "b0", "a1"],
        "one job a claim, the keys in turn from claim to claim"
    );
}

/// A conformance check (see [`store_conformance_tests`]).
pub async fn changes_of_one_queue_at_once_lose_nothing(b: &impl StoreBackend) {
    let s = b.open("changes_of_one_queue_at_once_lose_nothing").await;
    let mut tries = Vec::new();
    for i in 0..16u32 {
        let s = s.clone();
        tries.push(tokio::spawn(async move {
            let change: queuemgr::store::QueueChange = Box::new(move |old| {
                let mut rec = old
                    .cloned()
                    .unwrap_or_else(|| queue_settings("q", None, None, false));
                // One change pauses; the others each set a limit: none may undo another's.
                if i == 7 {
                    rec.spec.paused = true;
                } else {
                    rec.spec.concurrency = Some(rec.spec.concurrency.unwrap_or(0) + 1);
                }
                Some(rec)
            });
            s.change_queue("q", change).await
        }));
    }
    for t in tries {
        t.await.unwrap().unwrap();
    }
    let q = s
        .queues()
        .await
        .unwrap()
        .into_iter()
        .find(|r| r.spec.name == "q")
        .expect("q stored");
    assert!(q.spec.paused, "the pause was undone: {q:?}");
    assert_eq!(q.spec.concurrency, Some(15), "a change was lost: {q:?}");
}

/// A child of `parent`, started.
fn child(parent: &str, name: &str) -> NewJob {
    NewJob {
        parent: Some(parent.to_string()),
        ..started(&format!("{parent}.{name}"))
    }
}

fn awaiting(ids: &[&str]) -> RunEnd {
    RunEnd::Suspended {
        wait: Wait::Children {
            remaining: ids.len() as u32,
            of: ids.len() as u32,
        },
        awaiting: ids.iter().map(|s| s.to_string()).collect(),
    }
}

fn event_wait(name: &str) -> RunEnd {
    RunEnd::Suspended {
        wait: Wait::Event {
            name: name.into(),
            until: None,
        },
        awaiting: Vec::new(),
    }
}

/// A conformance check (see [`store_conformance_tests`]).
pub async fn flows_suspend_count_off_children_and_take_events(b: &impl StoreBackend) {
    let s = b
        .open("flows_suspend_count_off_children_and_take_events")
        .await;
    let done = || RunEnd::Completed(Json::new(&serde_json::json!({"ok": true})));
    s.insert_many(vec![started("p")], None).await.unwrap();
    let got = s.claim(host("h1", 1)).await.unwrap();
    assert_eq!(ids(&got), ["p"]);
    // Steps: stored only by the run that holds the job.
    s.put_step(("p", "h1", 1), "charge", Json::new(&serde_json::json!(42)))
        .await
        .unwrap();
    let lost = s
        .put_step(("p", "h1", 2), "x", Json::new(&serde_json::json!(1)))
        .await;
    assert!(matches!(lost, Err(StoreError::RunLost(_))), "{lost:?}");
    let lost = s
        .put_step(("p", "h2", 1), "x", Json::new(&serde_json::json!(1)))
        .await;
    assert!(matches!(lost, Err(StoreError::RunLost(_))), "{lost:?}");
    // Children: a second insert of the same child is the same job.
    s.insert_many(vec![child("p", "a"), child("p", "b")], None)
        .await
        .unwrap();
    let again = s
        .insert_many(vec![child("p", "a"), child("p", "b")], None)
        .await
        .unwrap();
    assert!(again.jobs.iter().all(|j| j.duplicate), "{again:?}");
    // Another parent's job of that id is not this child.
    let other = NewJob {
        parent: Some("q".into()),
        ..started("p.a")
    };
    assert!(matches!(
        s.insert_many(vec![other], None).await,
        Err(StoreError::AlreadyExists(_))
    ));
    let kids = s.claim(host("h1", 2)).await.unwrap();
    assert_eq!(kids.len(), 2);
    s.finish(end("p.a", "h1", 1, done()), fast_retry())
        .await
        .unwrap()
        .expect("recorded");
    // The parent suspends on both: one is still live.
    let p = s
        .finish(end("p", "h1", 1, awaiting(&["p.a", "p.b"])), fast_retry())
        .await
        .unwrap()
        .expect("recorded");
    assert_eq!(p.status, Status::Pending);
    assert_eq!(
        p.waiting_for,
        Some(Wait::Children {
            remaining: 1,
            of: 2
        })
    );
    assert!(p.suspended);
    assert_eq!(s.claim(host("h1", 5)).await.unwrap().len(), 0, "it waits");
    // Starting a suspended job is refused.
    assert!(matches!(
        s.start("p", None, None).await,
        Err(StoreError::StateInvalid { .. })
    ));
    s.finish(end("p.b", "h1", 1, done()), fast_retry())
        .await
        .unwrap()
        .expect("recorded");
    let p = s.get("p").await.unwrap().unwrap();
    assert_eq!(p.waiting_for, None, "woken: {p:?}");
    assert!(p.scheduled_at.is_some());
    let got = s.claim(host("h1", 5)).await.unwrap();
    assert_eq!(ids(&got), ["p"]);
    assert_eq!(
        (got[0].attempt, got[0].runs),
        (1, 2),
        "a resumption, not a retry"
    );
    assert_eq!(
        got[0].steps.get("charge").map(|v| v.as_str().to_string()),
        Some("42".to_string())
    );
    let kids = s.children("p").await.unwrap();
    assert_eq!(ids(&kids), ["p.a", "p.b"]);
    let many = s
        .get_many(&["p.b".into(), "nope".into(), "p".into()])
        .await
        .unwrap();
    assert!(many[0].is_some() && many[1].is_none() && many[2].is_some());
    // Events: one it waits for wakes it; one sent first is kept for the wait.
    let p = s
        .finish(end("p", "h1", 1, event_wait("go")), fast_retry())
        .await
        .unwrap()
        .expect("recorded");
    assert!(matches!(p.waiting_for, Some(Wait::Event { .. })), "{p:?}");
    let sent = s
        .send_event(
            &EventTarget::Job("p".into()),
            "go",
            Json::new(&serde_json::json!({"ok": 1})),
            Some("ops"),
        )
        .await
        .unwrap();
    assert_eq!(sent.waiting_for, None);
    assert_eq!(
        sent.audit.last().map(|a| a.action),
        Some(AuditAction::Event)
    );
    let got = s.claim(host("h1", 5)).await.unwrap();
    assert_eq!(ids(&got), ["p"]);
    assert_eq!(got[0].attempt, 1);
    assert_eq!(
        got[0].events.get("go").map(|v| v.to_value()),
        Some(serde_json::json!({"ok": 1}))
    );
    s.send_event(&EventTarget::Job("p".into()), "early", Json::null(), None)
        .await
        .unwrap();
    let p = s
        .finish(end("p", "h1", 1, event_wait("early")), fast_retry())
        .await
        .unwrap()
        .expect("recorded");
    assert_eq!(p.waiting_for, None, "the event was there: {p:?}");
    assert!(transitions_runnable(&p));
    let got = s.claim(host("h1", 5)).await.unwrap();
    s.finish(end("p", "h1", got[0].attempt, done()), fast_retry())
        .await
        .unwrap()
        .expect("recorded");
    assert!(matches!(
        s.send_event(&EventTarget::Job("p".into()), "go", Json::null(), None)
            .await,
        Err(StoreError::StateInvalid { .. })
    ));
    assert!(matches!(
        s.send_event(&EventTarget::Job("zz".into()), "go", Json::null(), None)
            .await,
        Err(StoreError::NotFound(_))
    ));
    // By unique key: the live job that holds it.
    s.insert_many(
        vec![NewJob {
            unique_key: Some("order-9".into()),
            ..job("k")
        }],
        None,
    )
    .await
    .unwrap();
    let sent = s
        .send_event(
            &EventTarget::Key("order-9".into()),
            "go",
            Json::null(),
            None,
        )
        .await
        .unwrap();
    assert_eq!(sent.job_id, "k");
    assert!(matches!(
        s.send_event(&EventTarget::Key("nope".into()), "go", Json::null(), None)
            .await,
        Err(StoreError::NotFound(_))
    ));
    // All of it survives a restart.
    drop(s);
    let s = b
        .open("flows_suspend_count_off_children_and_take_events")
        .await;
    let p = s.get("p").await.unwrap().unwrap();
    assert_eq!(p.status, Status::Completed);
    assert_eq!(p.steps.len(), 1);
    assert_eq!(p.events.len(), 2);
    assert_eq!(
        s.get("p.a").await.unwrap().unwrap().parent.as_deref(),
        Some("p")
    );
}

fn transitions_runnable(rec: &queuemgr::job::JobRecord) -> bool {
    rec.status == Status::Pending && rec.scheduled_at.is_some()
}

/// A conformance check (see [`store_conformance_tests`]).
pub async fn a_child_that_ends_in_any_way_counts_off(b: &impl StoreBackend) {
    let s = b.open("a_child_that_ends_in_any_way_counts_off").await;
    s.insert_many(vec![started("p")], None).await.unwrap();
    s.claim(host("h1", 1)).await.unwrap();
    s.insert_many(
        vec![child("p", "a"), child("p", "b"), child("p", "c")],
        None,
    )
    .await
    .unwrap();
    let p = s
        .finish(
            end("p", "h1", 1, awaiting(&["p.a", "p.b", "p.c"])),
            fast_retry(),
        )
        .await
        .unwrap()
        .expect("recorded");
    assert_eq!(
        p.waiting_for,
        Some(Wait::Children {
            remaining: 3,
            of: 3
        })
    );
    // A stop of a job that never ran, a failure, a lease that lapsed.
    s.request_stop("p.a", StopKind::Stop, None).await.unwrap();
    let short = Claimant {
        lease: Duration::from_millis(1),
        ..host("h1", 2)
    };
    let got = s.claim(short).await.unwrap();
    assert_eq!(got.len(), 2, "{got:?}");
    s.finish(end("p.b", "h1", 1, failed(false)), fast_retry())
        .await
        .unwrap()
        .expect("recorded");
    let p = s.get("p").await.unwrap().unwrap();
    assert_eq!(
        p.waiting_for,
        Some(Wait::Children {
            remaining: 1,
            of: 3
        })
    );
    tokio::time::sleep(Duration::from_millis(10)).await;
    let rescued = s
        .rescue(queuemgr::job::now_micros(), fast_retry())
        .await
        .unwrap();
    assert!(rescued.iter().any(|j| j.job_id == "p.c"), "{rescued:?}");
    let p = s.get("p").await.unwrap().unwrap();
    assert_eq!(p.waiting_for, None, "every child ended: {p:?}");
    assert!(transitions_runnable(&p));
}
