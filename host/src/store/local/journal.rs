//! The local store's journal: where every job transition is made durable before the API
//! acknowledges it (the `--registry` file).
//!
//! [`Journal`] is a trait so that one conformance suite (`tests/src/conformance.rs`, run by
//! `tests/tests/all/registry_conformance.rs`) checks what the local store relies on — group
//! commit, linked appends, compaction, replay — apart from the file format
//! ([`super::jsonl::JsonlJournal`]).
//!
//! A record is the job's whole state after a transition (not a diff): replay is "the last
//! record of each job wins", and a lost progress record costs nothing but a stale percentage.

use crate::job::{Event, JobRecord};
use crate::store::StoreStats;

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};

/// A future that resolves once a batch of records is durable (or failed to become so).
pub type Durable = Pin<Box<dyn Future<Output = Result<(), JournalError>> + Send>>;

/// Why the journal could not do what was asked. Cloned to every waiter of a failed sync, so
/// the I/O errors are shared (`Arc`). The messages are those the API has always shown in a
/// `REGISTRY_UNAVAILABLE` answer's detail.
#[derive(Debug, Clone, thiserror::Error)]
pub enum JournalError {
    /// The file refused a write or a sync (disk full, read-only, I/O error).
    #[error("registry write failed: {}: {source}", path.display())]
    Write {
        /// The journal file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: Arc<std::io::Error>,
    },
    /// A compaction could not write or install the new file (the old one is kept).
    #[error("registry write failed: compaction of {}: {source}", path.display())]
    Compact {
        /// The journal file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: Arc<std::io::Error>,
    },
    /// A record was not stored because a record it is linked after ([`Link::after`]) was not.
    #[error("registry write failed: not stored: a record it depends on could not be stored")]
    DependencyFailed,
    /// The journal's writer thread could not be started.
    #[error("registry write failed: cannot start the writer thread: {0}")]
    Thread(#[source] Arc<std::io::Error>),
    /// The file could not be read at start.
    #[error("registry read failed: {}: {source}", path.display())]
    Read {
        /// The journal file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: Arc<std::io::Error>,
    },
    /// The journal's writer is gone (the host is shutting down).
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
    pub jobs: Vec<Arc<JobRecord>>,
    /// What replay had to repair or skip.
    pub report: ReplayReport,
}

/// Folds records in stored order into each job's latest record, in the order jobs were first
/// recorded; a purge record forgets its job.
pub fn fold(records: Vec<Arc<JobRecord>>) -> Vec<Arc<JobRecord>> {
    let mut index: std::collections::HashMap<String, usize, foldhash::fast::RandomState> =
        std::collections::HashMap::with_capacity_and_hasher(records.len(), Default::default());
    let mut jobs: Vec<Option<Arc<JobRecord>>> = Vec::with_capacity(records.len());
    for rec in records {
        if rec.event == Event::Purged {
            if let Some(i) = index.remove(rec.job_id.as_str()) {
                jobs[i] = None;
            }
            continue;
        }
        match index.get(rec.job_id.as_str()) {
            Some(&i) => jobs[i] = Some(rec),
            None => {
                index.insert(rec.job_id.clone(), jobs.len());
                jobs.push(Some(rec));
            }
        }
    }
    jobs.into_iter().flatten().collect()
}

/// The fate of one append, which later appends can depend on ([`Link::after`]).
///
/// Why: the queue runs a job while its RUNNING record is being synced, so that a short job's
/// end record can share that sync. The end record must then never be stored unless the
/// RUNNING record is: it is appended "after" the RUNNING record's commit, and a backend
/// refuses it if that commit failed.
#[derive(Debug, Clone, Default)]
pub struct Commit(Arc<AtomicU8>);

/// The states of a [`Commit`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CommitState {
    /// Not yet synced.
    Pending,
    /// Durable.
    Durable,
    /// The append failed: nothing of it was stored.
    Failed,
}

impl Commit {
    /// A pending commit.
    pub fn new() -> Commit {
        Commit::default()
    }

    /// Its state now.
    pub fn state(&self) -> CommitState {
        match self.0.load(Ordering::Acquire) {
            0 => CommitState::Pending,
            1 => CommitState::Durable,
            _ => CommitState::Failed,
        }
    }

    /// Whether both are the same append's commit.
    pub fn same(&self, other: &Commit) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }

    /// Records the append's fate. Backends call this before they acknowledge the append.
    pub fn resolve(&self, durable: bool) {
        self.0.store(if durable { 1 } else { 2 }, Ordering::Release);
    }
}

/// How an append relates to others.
#[derive(Debug, Clone, Default)]
pub struct Link {
    /// Resolved with this append's fate (before its future resolves).
    pub marks: Option<Commit>,
    /// Store this append only if these earlier appends are stored too: each is durable already
    /// or becomes durable in the same sync. If one failed, this append fails without being
    /// stored.
    pub after: Vec<Commit>,
}

/// A durable store of job records.
///
/// Ordering contract: records passed to [`Journal::append`] are stored in call order, and a
/// [`Journal::compact`] replaces everything appended before it with the snapshot it is given.
/// Callers that need a total order call both under one lock; the calls themselves only
/// enqueue, they never block on I/O.
pub trait Journal: Send + Sync + 'static {
    /// Reads every job's latest record. Called once, before anything is appended.
    fn replay(&self) -> Result<Replay, JournalError>;

    /// Hands every record, in the order it was stored (purge records included), to `each` in
    /// batches, while later batches are still being read: the local store folds them straight
    /// into its table as the file is parsed, one map rather than two. [`fold`] of them is
    /// [`Journal::replay`]. Called once, before anything is appended.
    fn replay_each(
        &self,
        each: &mut dyn FnMut(Vec<Arc<JobRecord>>),
    ) -> Result<ReplayReport, JournalError>;

    /// About how many records [`Journal::replay_each`] will hand over, to size tables up
    /// front (0: unknown).
    fn replay_size_hint(&self) -> usize {
        0
    }

    /// Enqueues records; the returned future resolves once they are durable. Concurrent
    /// appends share one sync (group commit).
    fn append(&self, records: Vec<Arc<JobRecord>>) -> Durable {
        self.append_linked(records, Link::default())
    }

    /// [`Journal::append`], tied to other appends by `link`: its commit is published through
    /// `link.marks`, and it is stored only if `link.after` is.
    fn append_linked(&self, records: Vec<Arc<JobRecord>>, link: Link) -> Durable;

    /// Enqueues a rewrite of the store as exactly `live` (dropping dead records); resolves once
    /// the new store is durable and in place.
    fn compact(&self, live: Vec<Arc<JobRecord>>) -> Durable;

    /// Counters.
    fn stats(&self) -> StoreStats;
}
