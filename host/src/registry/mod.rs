//! Where every job transition is made durable before the API acknowledges it.
//!
//! [`Registry`] is a trait so that one conformance suite (`tests/tests/registry_conformance.rs`)
//! runs unchanged against every backend: the JSONL file now ([`jsonl::JsonlRegistry`]),
//! PostgreSQL later, when several hosts share one queue.
//!
//! A record is the job's whole state after a transition (not a diff): replay is "the last
//! record of each job wins", and a lost progress record costs nothing but a stale percentage.

pub mod jsonl;
mod record;

pub use record::{ErrorInfo, Event, JobRecord, Json, Status, now_micros};

use std::future::Future;
use std::pin::Pin;

/// A future that resolves once a batch of records is durable (or failed to become so).
pub type Durable = Pin<Box<dyn Future<Output = Result<(), RegistryError>> + Send>>;

/// Why the registry could not do what was asked.
#[derive(Debug, Clone, thiserror::Error)]
pub enum RegistryError {
    /// The storage refused a write or a sync (disk full, read-only, I/O error).
    #[error("registry write failed: {0}")]
    Write(String),
    /// The storage could not be read at start.
    #[error("registry read failed: {0}")]
    Read(String),
    /// The registry's writer is gone (the host is shutting down).
    #[error("registry is closed")]
    Closed,
}

/// What replay found besides the jobs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReplayReport {
    /// Records read.
    pub records: u64,
    /// A torn last record (a crash mid-write) was cut off.
    pub repaired_tail: bool,
    /// 1-based line numbers of records that could not be parsed and were skipped.
    pub skipped_lines: Vec<u64>,
}

/// The jobs as the registry last recorded them, in the order they were first recorded.
#[derive(Debug, Clone, Default)]
pub struct Replay {
    /// The latest record of each job.
    pub jobs: Vec<std::sync::Arc<JobRecord>>,
    /// What replay had to repair or skip.
    pub report: ReplayReport,
}

/// Counters for `/health` and `queue_health`.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct RegistryStats {
    /// The backend's name, e.g. `jsonl`.
    pub backend: &'static str,
    /// Where it stores (a path, a URL without credentials).
    pub location: String,
    /// Records appended since start.
    pub appended: u64,
    /// Durability syncs since start (appended / syncs = the group-commit factor).
    pub syncs: u64,
    /// Records in the store now, live and dead.
    pub records: u64,
    /// Compactions since start.
    pub compactions: u64,
    /// The last write error, if the last write failed.
    pub last_error: Option<String>,
}

/// A durable store of job records.
///
/// Ordering contract: records passed to [`Registry::append`] are stored in call order, and a
/// [`Registry::compact`] replaces everything appended before it with the snapshot it is given.
/// Callers that need a total order call both under one lock; the calls themselves only
/// enqueue, they never block on I/O.
pub trait Registry: Send + Sync + 'static {
    /// Reads every job's latest record. Called once, before anything is appended.
    fn replay(&self) -> Result<Replay, RegistryError>;

    /// Enqueues records; the returned future resolves once they are durable. Concurrent
    /// appends share one sync (group commit).
    fn append(&self, records: Vec<JobRecord>) -> Durable;

    /// Enqueues a rewrite of the store as exactly `live` (dropping dead records); resolves once
    /// the new store is durable and in place.
    fn compact(&self, live: Vec<JobRecord>) -> Durable;

    /// Counters.
    fn stats(&self) -> RegistryStats;
}
