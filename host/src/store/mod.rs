//! The job store: the one seam between the queue's services and where jobs live.
//!
//! Why a seam shaped like a job queue's driver (River's `riverdriver`, Oban's engines) and not
//! like a journal: several hosts sharing one database need claims, leases, compare-and-set on
//! a run, stop requests that travel to the host that runs a job, rescue of expired leases,
//! filtered and paged reads and counts. The queue's services (producer, executor, completer,
//! maintenance) ask the store for exactly these, and never write records themselves; a backend
//! applies the pure transitions of [`transitions`] and makes each one durable
//! before its future resolves.
//!
//! Backends: [`local::LocalStore`] (one host: an in-memory table in front of the crash-safe
//! JSONL journal of [`crate::registry`]); PostgreSQL next, behind the same trait and the same
//! conformance suite (`tests/src/store_conformance.rs`).

pub(crate) mod channels;
pub mod local;
pub mod metered;
pub mod postgres;
pub mod transitions;

use crate::job::{ErrorInfo, JobRecord, Json, Status, StopKind};
use local::journal::JournalError;
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{broadcast, mpsc};

/// What a store operation returns: a boxed future, so that the trait is object-safe.
pub type StoreFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send + 'a>>;

/// Why the store refused an operation. Nothing was changed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// No such job.
    #[error("Job with ID '{0}' not found")]
    NotFound(String),
    /// A job with this id exists and is not deleted.
    #[error("Job with ID '{0}' already exists")]
    AlreadyExists(String),
    /// The job's state does not allow the operation.
    #[error("Cannot {action} job '{job_id}' in state '{}'{}", current.as_str(), if *waiting { " (already started, waiting to run)" } else { "" })]
    StateInvalid {
        /// The job.
        job_id: String,
        /// `start` or `stop`.
        action: &'static str,
        /// Its status now.
        current: Status,
        /// Started and waiting to run (a slot, its time, a retry).
        waiting: bool,
        /// The statuses that allow the action.
        allowed: Vec<Status>,
    },
    /// A batch names one job id twice.
    #[error("job {index}: job_id '{job_id}' appears twice in the batch")]
    DuplicateInBatch {
        /// Index of the second occurrence.
        index: usize,
        /// The id.
        job_id: String,
    },
    /// The local journal could not make the change durable (or could not be read at start).
    #[error(transparent)]
    Journal(#[from] JournalError),
    /// The database refused the change (not a lost connection: that is `Unavailable`).
    #[error("database write failed: {message}")]
    Database {
        /// The database's own message.
        message: String,
        /// The driver's error.
        #[source]
        source: Arc<tokio_postgres::Error>,
    },
    /// A stored record could not be read back, or a record could not be encoded to be stored.
    #[error("a job's stored record is not valid: {0}")]
    Record(#[source] Arc<serde_json::Error>),
    /// The store's settings cannot work: a schema name, a URL, a pool size.
    #[error("job store settings: {0}")]
    Config(#[from] ConfigError),
    /// The store cannot be reached (its database is down or the connection was lost); nothing
    /// was changed, and the call may be retried.
    #[error("job store unavailable: {reason}")]
    Unavailable {
        /// What failed.
        reason: String,
        /// The driver's error.
        #[source]
        source: Option<Arc<dyn std::error::Error + Send + Sync>>,
    },
    /// The connection was lost while the change was being committed, and the store could not
    /// find out in time whether the commit was made: the change may or may not have been
    /// made. (A store that does find out answers as the commit went.)
    #[error("job store unavailable: {reason}; the change may have been made")]
    OutcomeUnknown {
        /// What failed.
        reason: String,
        /// The driver's error.
        #[source]
        source: Option<Arc<dyn std::error::Error + Send + Sync>>,
    },
    /// The store is closed (the host is shutting down).
    #[error("the job store is closed")]
    Closed,
    /// A schedule of that name exists already.
    #[error("Schedule '{0}' already exists")]
    ScheduleExists(String),
    /// A job names a dependency that does not exist (nor comes earlier in its batch).
    #[error("job '{job_id}' depends on '{dependency}', which does not exist")]
    UnknownDependency {
        /// The job.
        job_id: String,
        /// The dependency it names.
        dependency: String,
    },
    /// A run wrote to a job it no longer holds (it was stopped, rescued or resumed elsewhere).
    #[error("job '{0}' is no longer in this run (stopped, rescued or run elsewhere)")]
    RunLost(String),
}

/// Why a store's settings cannot work. Nothing was opened.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ConfigError {
    /// A PostgreSQL schema name that is not letters, digits and `_`.
    #[error("schema name '{0}' must be letters, digits and _ (not starting with a digit)")]
    Schema(String),
    /// The store URL does not parse (the driver's message, which never repeats the URL).
    #[error("store URL: {0}")]
    Url(#[source] Arc<tokio_postgres::Error>),
    /// The connection pool could not be built.
    #[error("pool: {0}")]
    Pool(#[source] Arc<deadpool_postgres::BuildError>),
}

/// A job to insert.
#[derive(Debug, Clone)]
pub struct NewJob {
    /// Its id (the caller generates one when the user gave none).
    pub job_id: String,
    /// A loaded job type.
    pub job_type: String,
    /// Validated params.
    pub params: Json,
    /// Higher runs first.
    pub priority: i32,
    /// Runs allowed per start (≥ 1).
    pub max_attempts: u32,
    /// Earliest run time (µs since the epoch).
    pub run_at: Option<i64>,
    /// At most one non-terminal job per key.
    pub unique_key: Option<String>,
    /// Make it runnable at once (the `start: true` of `add_job`).
    pub start: bool,
    /// The schedule and slot that enqueue it (a periodic job's; `None` for every other).
    pub schedule: Option<crate::schedule::SlotRef>,
    /// Its named queue ([`crate::limits::DEFAULT_QUEUE`] unless it names one).
    pub queue: String,
    /// Its concurrency key, if any.
    pub concurrency_key: Option<String>,
    /// Added as a queued command (see [`JobRecord::as_command`]).
    pub as_command: bool,
    /// The key that adds it (see [`JobRecord::added_by`]).
    pub added_by: Option<String>,
    /// Its trace context (see [`JobRecord::traceparent`]).
    pub traceparent: Option<String>,
    /// The job whose run enqueues it (see [`JobRecord::parent`]). A child whose id exists
    /// already under the same parent is not inserted again: that job is returned, as a
    /// duplicate (a re-run of the parent enqueues the same child).
    pub parent: Option<String>,
    /// The jobs it runs after (each must exist, or come earlier in the same batch); it is
    /// runnable once they have completed (see [`JobRecord::depends_on`]). Needs `start`.
    pub depends_on: Vec<crate::job::Dependency>,
    /// What a dependency that does not complete does to it.
    pub on_dependency_failure: crate::job::DepPolicy,
}

/// One run a host holds: the job and the attempt it runs.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RunRef {
    /// The job's id.
    pub job_id: String,
    /// The attempt this run is.
    pub attempt: u32,
}

/// A host asking for work.
#[derive(Debug, Clone)]
pub struct Claimant {
    /// The host's id.
    pub host: String,
    /// The job types this host has loaded: it claims no other.
    pub job_types: Arc<[String]>,
    /// At most this many jobs.
    pub max: usize,
    /// How long a claimed run belongs to the host without a heartbeat.
    pub lease: Duration,
    /// The SHA-256 of each job type's component on this host, recorded on the jobs it claims
    /// (empty: none recorded).
    pub code: Arc<HashMap<String, String>>,
    /// Starts the runs of the jobs claimed (the host's executor). With a runner, the store
    /// hands it every job it claims, once, before the call returns (see [`Runner`]); without
    /// one, the caller starts the runs of the jobs the call returns.
    pub run: Option<Runner>,
}

/// Where a store hands the jobs it claims for a host.
///
/// Why the store and not its caller: a store whose log orders every later write of a job after
/// its claim (the local journal) can hand a claimed job over at once, while the claim is being
/// made durable. The run's writes (its end, its progress) are then stored only if the claim is;
/// if the claim's write fails, the claim is undone and the run is asked to stop, its end
/// refused. A short job thus ends within the claim's own sync, or the next one, rather than a
/// sync after it. A store that cannot promise that order (PostgreSQL) hands jobs over once the
/// claim is committed.
#[derive(Clone)]
pub struct Runner {
    start: Arc<dyn Fn(Arc<JobRecord>) + Send + Sync>,
    handed: Arc<std::sync::atomic::AtomicUsize>,
}

impl Runner {
    /// A runner that calls `start` with each claimed job.
    pub fn new(start: impl Fn(Arc<JobRecord>) + Send + Sync + 'static) -> Runner {
        Runner {
            start: Arc::new(start),
            handed: Arc::default(),
        }
    }

    /// Starts the run of a claimed job.
    pub fn hand(&self, job: Arc<JobRecord>) {
        self.handed
            .fetch_add(1, std::sync::atomic::Ordering::AcqRel);
        (self.start)(job);
    }

    /// How many jobs this runner (and its clones) were handed.
    pub fn handed(&self) -> usize {
        self.handed.load(std::sync::atomic::Ordering::Acquire)
    }
}

impl std::fmt::Debug for Runner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runner")
            .field("handed", &self.handed())
            .finish()
    }
}

impl Claimant {
    /// The SHA-256 of `job_type`'s component on this host.
    pub fn code_of(&self, job_type: &str) -> Option<&str> {
        self.code.get(job_type).map(String::as_str)
    }

    /// Whether this host can run `job_type`.
    pub fn has_type(&self, job_type: &str) -> bool {
        self.job_types.iter().any(|t| t == job_type)
    }

    /// Hands claimed jobs to the runner, if there is one (a store that hands them over only
    /// once they are committed).
    pub fn hand_committed(&self, jobs: &[Arc<JobRecord>]) {
        if let Some(run) = &self.run {
            for job in jobs {
                run.hand(job.clone());
            }
        }
    }
}

/// One inserted job.
#[derive(Debug, Clone)]
pub struct Inserted {
    /// The job as stored (for a duplicate: the job that holds the unique key).
    pub job: Arc<JobRecord>,
    /// A job with the same unique key existed: nothing new was inserted.
    pub duplicate: bool,
}

/// What [`JobStore::insert_many`] did.
#[derive(Debug, Clone, Default)]
pub struct InsertOutcome {
    /// One per job asked for, in order.
    pub jobs: Vec<Inserted>,
    /// Jobs of the batch claimed by the claimant in the same durable step (RUNNING).
    pub claimed: Vec<Arc<JobRecord>>,
}

/// What [`JobStore::start`] did.
#[derive(Debug, Clone)]
pub struct StartOutcome {
    /// The job after the start: RUNNING if it was claimed, else PENDING and runnable.
    pub job: Arc<JobRecord>,
    /// It was claimed by the claimant in the same durable step.
    pub claimed: bool,
}

/// How a run ended, as the executor saw it.
#[derive(Debug, Clone)]
pub enum RunEnd {
    /// The job returned a result (JSON text).
    Completed(Json),
    /// The run failed: the job's error, a trap, a cap, a timeout.
    Failed {
        /// What went wrong.
        error: ErrorInfo,
        /// The job's description if this ends it (the message, for the job's own error).
        description: String,
    },
    /// The run was cut short: by a stop request, or by the host shutting down.
    Stopped {
        /// The host shut down (an interrupted run: retried if attempts remain).
        shutdown: bool,
    },
    /// The run suspended: the job waits, holding no instance, and runs again (the same attempt)
    /// when the wait ends.
    Suspended {
        /// What it waits for. For children, the store counts `remaining` itself from
        /// `awaiting` in the same durable step (a child may end meanwhile).
        wait: crate::job::Wait,
        /// The children it awaits (for [`crate::job::Wait::Children`]).
        awaiting: Vec<String>,
    },
}

impl RunEnd {
    /// A suspension on children, with `remaining` counted by the store: how many of the
    /// children it awaits are still live (`live`) in the step that records it.
    pub fn count_awaited(self, live: impl Fn(&str) -> bool) -> RunEnd {
        match self {
            RunEnd::Suspended {
                wait: crate::job::Wait::Children { of, .. },
                awaiting,
            } => {
                let remaining = awaiting.iter().filter(|id| live(id)).count() as u32;
                RunEnd::Suspended {
                    wait: crate::job::Wait::Children { remaining, of },
                    awaiting: Vec::new(),
                }
            }
            other => other,
        }
    }

    /// The children a suspension awaits (none for any other end).
    pub fn awaiting(&self) -> &[String] {
        match self {
            RunEnd::Suspended { awaiting, .. } => awaiting,
            _ => &[],
        }
    }
}

/// A host sharing the store.
#[derive(Debug, Clone, serde::Serialize)]
pub struct HostInfo {
    /// Its id.
    pub host_id: String,
    /// The job types it has loaded.
    pub job_types: Vec<String>,
    /// When it last announced itself (µs since the epoch).
    pub seen_at: i64,
    /// Where it answers HTTP (`--advertise-url`), if it said.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
}

/// The end of one run, to record.
#[derive(Debug, Clone)]
pub struct Finish {
    /// The job.
    pub job_id: String,
    /// The host that ran it.
    pub host: String,
    /// The run's attempt number.
    pub attempt: u32,
    /// How it ended.
    pub end: RunEnd,
}

/// What a stop request did.
#[derive(Debug, Clone)]
pub enum StopOutcome {
    /// The job was not running: it ended at once (STOPPED or DELETED), or was already deleted.
    Ended(Arc<JobRecord>),
    /// The job runs on `host`: the request was recorded and sent to it; the run's end will
    /// record the final state.
    Signalled {
        /// The host that runs the job.
        host: String,
        /// The job with its stop request.
        job: Arc<JobRecord>,
    },
}

/// A stop request for a job that runs on one host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StopRequest {
    /// The job.
    pub job_id: String,
    /// The run asked to stop.
    pub attempt: u32,
    /// Stop or delete.
    pub kind: StopKind,
}

/// A random-looking number in `[0, 1)` for a job's retry jitter, from the backend's seeded
/// hasher (so that the transitions stay pure and take it as a parameter).
pub fn jitter_unit(hasher: &foldhash::fast::RandomState, job_id: &str, now: i64) -> f64 {
    use std::hash::BuildHasher;
    (hasher.hash_one((job_id, now)) >> 11) as f64 / (1u64 << 53) as f64
}

/// Retry timing: exponential backoff with jitter.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// The wait before the second attempt; it doubles with each attempt.
    pub base: Duration,
    /// The longest wait.
    pub max: Duration,
    /// Random spread, as a fraction of the wait (0.2 = ±20 %).
    pub jitter: f64,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            base: Duration::from_secs(1),
            max: Duration::from_secs(3600),
            jitter: 0.2,
        }
    }
}

/// Which end of the insertion order a list starts from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Order {
    /// Oldest first (the default, as the original lists).
    #[default]
    Oldest,
    /// Newest first.
    Newest,
}

/// A list request.
#[derive(Debug, Clone, Default)]
pub struct ListQuery {
    /// Only this status.
    pub status: Option<Status>,
    /// Only this job type.
    pub job_type: Option<String>,
    /// Continue after this cursor (from a previous [`Page::next_cursor`]).
    pub cursor: Option<String>,
    /// Direction.
    pub order: Order,
    /// At most this many (`None`: all).
    pub limit: Option<usize>,
    /// Only jobs in this key's scope (job types and queues as globs); `total` counts only
    /// them.
    pub scope: Option<Arc<crate::auth::Scope>>,
}

/// One page of a list.
#[derive(Debug, Clone, Default)]
pub struct Page {
    /// The jobs.
    pub jobs: Vec<Arc<JobRecord>>,
    /// Jobs matching the filters in all pages.
    pub total: usize,
    /// Pass this as [`ListQuery::cursor`] for the next page; `None` on the last page.
    pub next_cursor: Option<String>,
}

/// Counters for health reports.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Counts {
    /// Jobs known (deleted ones included until purged).
    pub total: usize,
    /// Jobs per status (`PENDING`, `RUNNING`, …).
    pub by_status: std::collections::HashMap<&'static str, usize>,
    /// PENDING jobs that were started and wait to run (a slot, their time, a retry).
    pub waiting: usize,
    /// PENDING jobs never started.
    pub unstarted: usize,
    /// Jobs per job type, then per status (statuses with none may be absent).
    pub by_type: std::collections::HashMap<String, std::collections::HashMap<&'static str, usize>>,
}

/// What retention removes.
#[derive(Debug, Clone)]
pub struct Retention {
    /// How long COMPLETED jobs are kept (`None`: forever).
    pub completed_ttl: Option<Duration>,
    /// How long ERROR jobs are kept.
    pub error_ttl: Option<Duration>,
    /// How long STOPPED jobs are kept.
    pub stopped_ttl: Option<Duration>,
    /// How long DELETED jobs are kept.
    pub deleted_ttl: Option<Duration>,
    /// Most terminal jobs kept; the oldest-ended go first.
    pub max_terminal_jobs: usize,
    /// PENDING jobs never started are removed after this long.
    pub pending_ttl: Option<Duration>,
}

impl Default for Retention {
    fn default() -> Self {
        Retention {
            completed_ttl: None,
            error_ttl: None,
            stopped_ttl: None,
            deleted_ttl: Some(Duration::from_secs(3600)),
            max_terminal_jobs: 1_000_000,
            pending_ttl: None,
        }
    }
}

/// Counters of a store's storage, whatever the backend, for `/health` and `queue_health`.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct StoreStats {
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

/// One change to a job, as the feed publishes it (after it is durable).
#[derive(Debug, Clone)]
pub struct Change {
    /// The job's state after the change (progress included).
    pub job: Arc<JobRecord>,
}

/// The job store's data operations. Every operation that changes a job resolves only once the
/// change is durable; a failed one changes nothing. Implementations apply the pure transitions
/// of [`transitions`], so that every backend moves jobs the same way. No method has a default
/// body: a wrapper (such as [`metered::MeteredStore`]) that forgets to forward one does not
/// compile. The channels and the cluster are [`StoreChannels`] and [`Cluster`]; a host holds
/// all three as one [`Store`].
pub trait JobStore: Send + Sync + 'static {
    /// Inserts jobs atomically (all or none, one durable write). A job whose `unique_key` is
    /// held by a non-terminal job is not inserted: that job is returned with `duplicate`.
    /// With a claimant, the batch's jobs that are started and due are claimed for it, in
    /// priority order, in the same durable step.
    fn insert_many(
        &self,
        jobs: Vec<NewJob>,
        claim: Option<Claimant>,
    ) -> StoreFuture<'_, InsertOutcome>;

    /// Makes a PENDING (never started) or STOPPED job runnable at `max(now, run_at)`; with a
    /// claimant, claims it at once if it is due (one durable step). `by`, a key's name, is
    /// recorded in the job's audit.
    fn start<'a>(
        &'a self,
        job_id: &'a str,
        claim: Option<Claimant>,
        by: Option<&'a str>,
    ) -> StoreFuture<'a, StartOutcome>;

    /// Claims up to `claimant.max` runnable jobs of the claimant's types, in order of
    /// priority (higher first), then scheduled time, then insertion: each becomes RUNNING with
    /// the next attempt number, the host and a lease deadline, in one durable step.
    fn claim(&self, claimant: Claimant) -> StoreFuture<'_, Vec<Arc<JobRecord>>>;

    /// Whether some job of these types is runnable and due now: a cheap look before a claim, so
    /// that a host does not hold its free slots through a claim that finds nothing. A store
    /// whose claims cost nothing when there is nothing to claim may always say yes.
    fn has_due<'a>(&'a self, job_types: &'a [String]) -> StoreFuture<'a, bool>;

    /// Extends to `now + lease` the leases of the runs in `runs` that are still the host's
    /// (each job in that attempt, on that host); returns how many. A job RUNNING under the
    /// host's name that is not in `runs` (its claim was committed but never reached the
    /// executor) is left to lapse, so that the rescuer takes it back.
    fn heartbeat<'a>(
        &'a self,
        host: &'a str,
        lease: Duration,
        runs: &'a [RunRef],
    ) -> StoreFuture<'a, usize>;

    /// Records a running job's progress, if `attempt` is still its run (best effort: a lost
    /// progress record costs a stale percentage only).
    fn progress(&self, job_id: &str, attempt: u32, progress: u8, description: &str);

    /// Records the ends of runs — completed, failed (a retry is scheduled if attempts remain
    /// and the error is retryable), stopped — in one durable step. Each is recorded only if its
    /// job is still in that run on that host (compare-and-set on job id, host and attempt);
    /// `None` in its place says it was not (a stop, a rescue or another host came first), and
    /// nothing of it changed.
    fn finish_many(
        &self,
        ends: Vec<Finish>,
        retry: RetryPolicy,
    ) -> StoreFuture<'_, Vec<Option<Arc<JobRecord>>>>;

    /// Asks a job to stop (or be deleted). A job that does not run ends at once; a running
    /// job gets the request recorded and sent to its host's [`StoreChannels::stop_requests`].
    /// `by`, a key's name, is recorded in the job's audit.
    fn request_stop<'a>(
        &'a self,
        job_id: &'a str,
        kind: StopKind,
        by: Option<&'a str>,
    ) -> StoreFuture<'a, StopOutcome>;

    /// Takes back runs whose lease ended before `now` (their host died or lost the store):
    /// retried if attempts remain, else STOPPED with `result.interrupted = true`.
    fn rescue(&self, now: i64, retry: RetryPolicy) -> StoreFuture<'_, Vec<Arc<JobRecord>>>;

    /// One job.
    fn get<'a>(&'a self, job_id: &'a str) -> StoreFuture<'a, Option<Arc<JobRecord>>>;

    /// Jobs, filtered and paged.
    fn list(&self, query: ListQuery) -> StoreFuture<'_, Page>;

    /// Counters.
    fn counts(&self) -> StoreFuture<'_, Counts>;

    /// The earliest `scheduled_at` of a runnable job that is not yet due (the scheduler sleeps
    /// until then), if any.
    fn next_scheduled(&self) -> StoreFuture<'_, Option<i64>>;

    /// Removes what retention says; returns the ids of the jobs removed.
    fn purge<'a>(&'a self, rules: &'a Retention, now: i64) -> StoreFuture<'a, Vec<String>>;

    /// Housekeeping of the storage itself (the local backend compacts its journal).
    fn compact(&self) -> StoreFuture<'_, bool>;

    /// Waits until everything acknowledged so far is durable.
    fn flush(&self) -> StoreFuture<'_, ()>;

    /// Counters of the storage (backend name, location, writes, last error).
    fn stats(&self) -> StoreStats;

    /// What the queue's services may assume of this store, read once when the queue starts.
    fn capabilities(&self) -> Capabilities;
}

/// Conveniences over [`JobStore`]'s operations, for every store (a blanket impl: a backend or
/// a wrapper cannot override them, so they cannot drift from the operations they call).
pub trait JobStoreExt: JobStore {
    /// [`JobStore::finish_many`] for one run.
    fn finish(&self, end: Finish, retry: RetryPolicy) -> StoreFuture<'_, Option<Arc<JobRecord>>> {
        let all = self.finish_many(vec![end], retry);
        Box::pin(async move { Ok(all.await?.pop().flatten()) })
    }
}

impl<T: JobStore + ?Sized> JobStoreExt for T {}

/// What the queue's services may assume of a store (River's `SupportsListener()`): explicit
/// values read once, not default methods a wrapper could forget to forward.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Capabilities {
    /// How long the producer may wait for more slots to free before it claims a few: a claim
    /// that costs a round trip and a commit is worth filling (a backlog then drains in large
    /// batches). Zero where a claim is cheap.
    pub claim_linger: Duration,
}

/// How [`ScheduleStore::put_schedule`] treats a schedule of the same name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PutSchedule {
    /// Refuse ([`StoreError::ScheduleExists`]).
    Create,
    /// Write the spec over it (or create it). Its cursor and waiting slot stay unless `reset`
    /// (a changed expression, a resume: slots before the new cursor are not enqueued).
    Replace {
        /// Take the given record's cursor too, and drop a waiting slot.
        reset: bool,
    },
}

/// A firing that happened: its schedule and the jobs it inserted.
#[derive(Debug, Clone)]
pub struct Fired {
    /// The schedule's name.
    pub name: String,
    /// The jobs inserted, oldest slot first.
    pub jobs: Vec<Arc<JobRecord>>,
}

/// The schedules of periodic jobs (see [`crate::schedule`]). A trait of its own, without
/// default bodies, beside [`JobStore`]: a wrapper that forgets to forward one does not compile.
///
/// Exactly once: [`ScheduleStore::fire`] moves a schedule's cursor only if it still has the
/// value the caller read, and inserts the slots' jobs in the same durable write. Two hosts that
/// both believe they lead (a leader change under way) cannot both enqueue a slot.
pub trait ScheduleStore: Send + Sync + 'static {
    /// Every schedule, by name.
    fn schedules(&self) -> StoreFuture<'_, Vec<crate::schedule::ScheduleRecord>>;

    /// Declares a schedule (see [`PutSchedule`]); the schedule as stored.
    fn put_schedule(
        &self,
        rec: crate::schedule::ScheduleRecord,
        mode: PutSchedule,
    ) -> StoreFuture<'_, crate::schedule::ScheduleRecord>;

    /// Deletes a schedule (its jobs stay); the schedule as it was, if there was one.
    fn delete_schedule<'a>(
        &'a self,
        name: &'a str,
    ) -> StoreFuture<'a, Option<crate::schedule::ScheduleRecord>>;

    /// Applies each firing whose schedule still exists, is still enabled and still has the
    /// cursor `expect`, with its jobs, all in one durable write; the firings that happened.
    fn fire(&self, firings: Vec<crate::schedule::Firing>) -> StoreFuture<'_, Vec<Fired>>;
}

/// How deep a queue is: its jobs waiting and running.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct QueueDepth {
    /// The queue.
    pub queue: String,
    /// PENDING jobs started and waiting to run (a slot, their time, a retry, a limit).
    pub waiting: usize,
    /// PENDING jobs never started.
    pub unstarted: usize,
    /// RUNNING jobs, on every host.
    pub running: usize,
}

/// A change of a queue's settings ([`QueueStore::change_queue`]): the stored record in, the
/// new one out (`None`: no change).
pub type QueueChange = Box<
    dyn FnOnce(Option<&crate::limits::QueueRecord>) -> Option<crate::limits::QueueRecord> + Send,
>;

/// Named queues' settings (see [`crate::limits`]). A trait of its own, without default bodies,
/// beside [`JobStore`]: a wrapper that forgets to forward one does not compile.
///
/// The settings hold across hosts: a store's claims decide what they take by the settings and
/// the running jobs as the store has them at the claim (PostgreSQL: read under one lock that
/// every limited claim takes), never by one host's view.
pub trait QueueStore: Send + Sync + 'static {
    /// Every queue with settings, by name.
    fn queues(&self) -> StoreFuture<'_, Vec<crate::limits::QueueRecord>>;

    /// Declares (or replaces) a queue's settings; the record as stored. A queue whose settings
    /// were paused or limited and no longer are makes its jobs runnable again (the store's
    /// `runnable` signal).
    fn put_queue(
        &self,
        rec: crate::limits::QueueRecord,
    ) -> StoreFuture<'_, crate::limits::QueueRecord>;

    /// Changes a queue's settings atomically: `change` gets the stored record (if any) and
    /// answers the new one, or `None` to leave it as it is; two changes of one queue at once
    /// (two hosts, a manifest and a request) take turns, so that neither undoes the other (a
    /// pause set meanwhile is not lost). The record as stored after it.
    fn change_queue<'a>(
        &'a self,
        name: &'a str,
        change: QueueChange,
    ) -> StoreFuture<'a, Option<crate::limits::QueueRecord>>;

    /// The settings as this host last read them (refreshed when any host changes them): for
    /// defaults such as a queue's priority, never for the limits themselves.
    fn queue_specs(&self) -> Arc<HashMap<String, crate::limits::QueueSpec>>;

    /// Each queue that holds a PENDING or RUNNING job, by name.
    fn queue_depths(&self) -> StoreFuture<'_, Vec<QueueDepth>>;

    /// When the latest-opening of these rate buckets admits a start again, if one is closed
    /// now (a job of theirs waits until then).
    fn rate_reopen<'a>(&'a self, buckets: &'a [String]) -> StoreFuture<'a, Option<i64>>;
}

/// The store's channels: what it tells the host as it happens. A trait of its own, without
/// default bodies, so that a wrapper that forgets to forward one does not compile.
pub trait StoreChannels: Send + Sync + 'static {
    /// The feed of changes, each published once durable.
    fn subscribe(&self) -> broadcast::Receiver<Change>;

    /// The stop requests for jobs that run on `host`, as they are made.
    fn stop_requests(&self, host: &str) -> mpsc::UnboundedReceiver<StopRequest>;

    /// A signal the store raises whenever its writes may have made jobs runnable (insert,
    /// start, retry, rescue; on PostgreSQL, another host's too).
    fn runnable(&self) -> Arc<tokio::sync::Notify>;

    /// A signal the store raises whenever a schedule is declared, changed or deleted (on
    /// PostgreSQL, by any host): the leader reads the schedules again.
    fn schedules_changed(&self) -> Arc<tokio::sync::Notify>;
}

/// The hosts sharing a store. A trait of its own, without default bodies: a store that serves
/// one host says so in each answer (no other hosts, always the leader), and a wrapper that
/// forgets to forward `lead` does not compile (it would have made every host the leader).
pub trait Cluster: Send + Sync + 'static {
    /// Records that `host` is alive, which job types it runs and where it answers (with its
    /// heartbeat), so that every host can tell which types some live host can run and reach
    /// the host that runs a job.
    fn announce<'a>(
        &'a self,
        host: &'a str,
        job_types: &'a [String],
        url: Option<&'a str>,
    ) -> StoreFuture<'a, ()>;

    /// The hosts that announced themselves, with their job types and when last seen. A store
    /// that serves one host knows none (the queue answers for itself).
    fn hosts(&self) -> StoreFuture<'_, Vec<HostInfo>>;

    /// Tries to become, or stay, the leader for `ttl`: one host at a time runs the rescuer,
    /// the cleaner and the compactor. If the leader dies, another takes over once its term
    /// has expired. A store that serves one host makes that host the leader.
    fn lead<'a>(&'a self, host: &'a str, ttl: Duration) -> StoreFuture<'a, bool>;
}

/// Which job an event is sent to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventTarget {
    /// The job with this id.
    Job(String),
    /// The live (PENDING or RUNNING) job that holds this unique key: a correlation key chosen
    /// when the job was added (an order number, a ticket).
    Key(String),
}

/// Durable execution (see `docs/workflows.md`): steps, events and the jobs that runs
/// enqueue. A trait of its own, without default bodies, beside [`JobStore`]. Child jobs are
/// inserted by [`JobStore::insert_many`] (with [`NewJob::parent`]); suspensions are run ends
/// ([`RunEnd::Suspended`]); every change that ends a child counts it off at its parent in the
/// same durable step.
pub trait FlowStore: Send + Sync + 'static {
    /// Stores step `name`'s result on a running job, if the job is still in run `attempt` on
    /// `host` ([`StoreError::RunLost`] otherwise); resolves once it is durable.
    fn put_step<'a>(
        &'a self,
        run: (&'a str, &'a str, u32),
        name: &'a str,
        value: Json,
    ) -> StoreFuture<'a, ()>;

    /// Sends an event to a job: kept on it, and a job that waits for it runs again. `by`, a
    /// key's name, is recorded in the job's audit.
    fn send_event<'a>(
        &'a self,
        target: &'a EventTarget,
        name: &'a str,
        payload: Json,
        by: Option<&'a str>,
    ) -> StoreFuture<'a, Arc<JobRecord>>;

    /// Several jobs at once, in the order asked (`None` for an unknown id).
    fn get_many<'a>(&'a self, ids: &'a [String]) -> StoreFuture<'a, Vec<Option<Arc<JobRecord>>>>;

    /// The jobs `parent`'s runs enqueued, oldest first.
    fn children<'a>(&'a self, parent: &'a str) -> StoreFuture<'a, Vec<Arc<JobRecord>>>;
}

/// Everything a host needs of its store: the data operations, the channels and the cluster.
/// Implemented for every type that has all three.
pub trait Store:
    JobStore + StoreChannels + Cluster + ScheduleStore + QueueStore + FlowStore
{
}

impl<T: JobStore + StoreChannels + Cluster + ScheduleStore + QueueStore + FlowStore + ?Sized> Store
    for T
{
}
