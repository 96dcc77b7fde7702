//! What the host's unit tests share (the queue's services, the local store): a real local store on a journal in a temporary
//! directory (no mock: the services are tested against the store they run on), and jobs and
//! claimants of type `noop`.

use crate::job::Json;
use crate::store::local::jsonl::JsonlJournal;
use crate::store::local::{LocalConfig, LocalStore};
use crate::store::{Claimant, NewJob, RetryPolicy, Store};
use std::sync::Arc;
use std::time::Duration;

/// A local store on a fresh journal; keep the directory as long as the store.
pub(crate) async fn store() -> (Arc<dyn Store>, tempfile::TempDir) {
    store_with(LocalConfig {
        retry: fast_retry(),
        ..LocalConfig::default()
    })
    .await
}

/// [`store`] with settings of its own.
pub(crate) async fn store_with(cfg: LocalConfig) -> (Arc<dyn Store>, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("tempdir");
    let journal = Arc::new(JsonlJournal::open(dir.path().join("journal.jsonl")).expect("open"));
    let (store, _) = LocalStore::open(journal, cfg)
        .await
        .expect("open the local store");
    (Arc::new(store), dir)
}

/// Retries without waiting long.
pub(crate) fn fast_retry() -> RetryPolicy {
    RetryPolicy {
        base: Duration::from_millis(10),
        max: Duration::from_millis(20),
        jitter: 0.0,
    }
}

/// A `noop` job, started (runnable) or not.
pub(crate) fn job(id: &str, start: bool) -> NewJob {
    NewJob {
        job_id: id.into(),
        job_type: "noop".into(),
        params: Json::null(),
        priority: 0,
        max_attempts: 1,
        run_at: None,
        unique_key: None,
        start,
        schedule: None,
        queue: "default".into(),
        concurrency_key: None,
        as_command: false,
        added_by: None,
        traceparent: None,
        parent: None,
        depends_on: Vec::new(),
        on_dependency_failure: crate::job::DepPolicy::Fail,
    }
}

/// A host `h1` that runs `noop` jobs, with a lease of `lease`.
pub(crate) fn host(max: usize, lease: Duration) -> Claimant {
    Claimant {
        host: "h1".into(),
        job_types: vec!["noop".to_string()].into(),
        max,
        lease,
        code: Arc::default(),
        run: None,
    }
}
