//! The queue: what the API asks of jobs, served by services over the job store.
//!
//! Why split this way (as River names its parts): the store holds every job and applies every
//! transition durably ([`crate::store`]); around it, each service does one thing —
//! the [`producer`] turns free slots into claims, the [`executor`] runs claimed jobs on the
//! runtime, the [`completer`] records their ends in batches, the [`notifier`] lets a caller
//! wait for a job's change, the [`heartbeat`] renews this host's leases, and the
//! [`maintenance`] services rescue expired runs, wake scheduled jobs, apply retention and
//! compact. The rules are pure functions in [`transitions`], which every store backend applies. This facade validates what
//! users send and routes it; it keeps no job state of its own.
//!
//! Statuses stay the original's six: PENDING → RUNNING → COMPLETED | ERROR | STOPPED, and
//! DELETED. A job that waits to run (a slot, its `run_at`, a retry's backoff) reads PENDING
//! with `scheduled_at`.

mod completer;
mod error;
mod events;
mod executor;
pub mod feed;
pub mod flow;
mod heartbeat;
mod maintenance;
mod notifier;
mod peers;
mod periodic;
mod producer;
mod queues;
mod schedules;
pub use crate::store::transitions;

pub use crate::store::Retention;
pub use error::{ParamError, QueueError, json_type};
pub use queues::{Hold, QueuePatch, QueueView};
pub use schedules::{SchedulePatch, ScheduleView};

use crate::auth::Caller;
use crate::catalog::{Catalog, JobType};
use crate::job::{JobRecord, Json, Status, StopKind};
use crate::metrics::Metrics;
use crate::runtime::{JobLimits, LogLine, Runtime};
use crate::store::Store;
use crate::store::StoreStats;
use crate::store::{
    Claimant, Counts, InsertOutcome, ListQuery, NewJob, Page, RetryPolicy, StopOutcome,
};
use executor::{Executor, ExecutorConfig, Reservation};
use feed::Feed;
use notifier::Notifier;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// Most jobs in one `add_jobs` call.
pub const MAX_BATCH: usize = 10_000;

/// Queue settings.
#[derive(Debug, Clone)]
pub struct QueueConfig {
    /// Most jobs running at once on this host; later ones wait (by priority, then time).
    pub max_concurrent: usize,
    /// Limits every run gets.
    pub limits: JobLimits,
    /// The job type used when `add_job` names none.
    pub default_job_type: Option<String>,
    /// Least time between two progress records of one job in the store.
    pub progress_interval: Duration,
    /// Log lines kept per job (the byte cap is [`JobLimits::log_bytes`]).
    pub max_log_lines: usize,
    /// What is removed in the background, and when.
    pub retention: Retention,
    /// This host's id in the store (claims, leases, stop requests).
    pub host_id: String,
    /// How long a run belongs to this host without a heartbeat.
    pub lease: Duration,
    /// Runs per start when `add_job` gives no `max_attempts` (1 = no retries).
    pub default_max_attempts: u32,
    /// Backoff between attempts.
    pub retry: RetryPolicy,
    /// How often the maintenance services run.
    pub maintenance_interval: Duration,
    /// Live events kept for clients that reconnect (`Last-Event-ID`).
    pub events_keep: usize,
    /// Live events a subscriber may fall behind before it is told it lagged.
    pub events_buffer: usize,
    /// Where runs are counted and timed (`/metrics`).
    pub metrics: Arc<Metrics>,
    /// The API key this host sends when it asks another host of the queue (for a job's
    /// logs): hosts that share a queue share a key.
    pub peer_api_key: Option<String>,
    /// OpenTelemetry traces, when on.
    pub telemetry: Option<Arc<crate::telemetry::Telemetry>>,
}

impl Default for QueueConfig {
    fn default() -> Self {
        QueueConfig {
            max_concurrent: 64,
            limits: JobLimits::default(),
            default_job_type: None,
            progress_interval: Duration::from_secs(1),
            max_log_lines: 10_000,
            retention: Retention::default(),
            host_id: default_host_id(),
            lease: Duration::from_secs(30),
            default_max_attempts: 1,
            retry: RetryPolicy::default(),
            maintenance_interval: Duration::from_secs(60),
            events_keep: 10_000,
            events_buffer: 4096,
            metrics: Metrics::new(),
            peer_api_key: None,
            telemetry: None,
        }
    }
}

/// `<hostname>-<pid>`.
pub fn default_host_id() -> String {
    let name = rustix::system::uname();
    format!(
        "{}-{}",
        name.nodename().to_string_lossy(),
        std::process::id()
    )
}

/// A job to add, as the API received it (params not yet validated).
#[derive(Debug, Clone, Default)]
pub struct AddRequest {
    /// Its id (generated when `None`).
    pub job_id: Option<String>,
    /// Its type (the default type when `None`).
    pub job_type: Option<String>,
    /// Its params.
    pub params: serde_json::Value,
    /// Higher runs first (default: the job type's manifest, else 0).
    pub priority: Option<i32>,
    /// Runs allowed for one start (default: the job type's manifest, else the queue's).
    pub max_attempts: Option<u32>,
    /// Earliest run time, µs since the epoch.
    pub run_at: Option<i64>,
    /// At most one non-terminal job per key.
    pub unique_key: Option<String>,
    /// Its named queue (default: its type's manifest `[queue]`, else `default`).
    pub queue: Option<String>,
    /// Its concurrency key.
    pub concurrency_key: Option<String>,
    /// Added as a queued command (its job type called by name).
    pub as_command: bool,
    /// Who adds it: the job must be in the key's scope, and the key's name is recorded on it
    /// (`None`: the host itself, e.g. a schedule).
    pub caller: Option<Caller>,
    /// The jobs it runs after (a job with dependencies is started: it runs once they have
    /// completed).
    pub depends_on: Vec<crate::job::Dependency>,
    /// What a dependency that does not complete does to it.
    pub on_dependency_failure: crate::job::DepPolicy,
    /// Its parent (the flow an `add_flow` adds it to).
    pub parent: Option<String>,
}

/// What the API gets back for an added job.
#[derive(Debug, Clone)]
pub struct Added {
    /// The job as stored (for a duplicate: the job holding the key).
    pub job: Arc<JobRecord>,
    /// An equal unique key was held: nothing was added.
    pub duplicate: bool,
}

/// Counters for health reports.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct QueueCounts {
    /// Jobs known (including deleted ones not yet purged).
    pub total: usize,
    /// Jobs per status.
    pub by_status: std::collections::HashMap<&'static str, usize>,
    /// Jobs running on this host now.
    pub running: usize,
    /// Jobs started and waiting to run (a slot, their time, a retry).
    pub waiting: usize,
    /// PENDING jobs never started.
    pub unstarted: usize,
}

/// Most jobs `get_flow` returns.
pub const MAX_FLOW_NODES: usize = 100_000;

pub(crate) struct Inner {
    store: Arc<dyn Store>,
    catalog: Arc<Catalog>,
    executor: Arc<Executor>,
    notifier: Notifier,
    feed: Arc<Feed>,
    cfg: QueueConfig,
    accepting: AtomicBool,
    services: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        for s in &self.services {
            s.abort();
        }
    }
}

/// The job queue. Cheap to clone.
#[derive(Clone)]
pub struct Queue {
    inner: Arc<Inner>,
}

impl Queue {
    /// Starts the queue's services over `store` (already opened: the local store has rescued
    /// the runs of the process before). `jobs_rt` is the runtime jobs run on.
    pub async fn open(
        store: Arc<dyn Store>,
        catalog: Arc<Catalog>,
        runtime: Runtime,
        jobs_rt: tokio::runtime::Handle,
        cfg: QueueConfig,
    ) -> Queue {
        let completer = completer::Completer::start(store.clone(), cfg.retry);
        let feed = Feed::new(cfg.events_keep, cfg.events_buffer);
        let executor = Executor::new(
            ExecutorConfig {
                host: cfg.host_id.clone(),
                limits: cfg.limits,
                progress_interval: cfg.progress_interval,
                max_log_lines: cfg.max_log_lines,
                max_concurrent: cfg.max_concurrent,
                metrics: cfg.metrics.clone(),
                telemetry: cfg.telemetry.clone(),
            },
            store.clone(),
            feed.clone(),
            catalog.clone(),
            runtime,
            jobs_rt,
            completer,
        );
        let notifier = Notifier::start(store.clone());
        // The producer's wake signal, raised by the scheduler when a job's time comes.
        let wake = producer::Wake::default();
        let periodic = periodic::Periodic {
            store: store.clone(),
            catalog: catalog.clone(),
            host: cfg.host_id.clone(),
            term: cfg.maintenance_interval.saturating_mul(3).max(cfg.lease),
            // The store raises it when a schedule is declared, changed or deleted (on
            // PostgreSQL, through any host).
            changed: store.schedules_changed(),
            metrics: cfg.metrics.clone(),
            default_max_attempts: cfg.default_max_attempts,
        };
        let services = vec![
            tokio::spawn(producer::run(
                store.clone(),
                executor.clone(),
                catalog.clone(),
                cfg.lease,
                wake.clone(),
            )),
            tokio::spawn(heartbeat::run(store.clone(), executor.clone(), cfg.lease)),
            tokio::spawn(maintenance::scheduler::run(store.clone(), wake)),
            tokio::spawn(feed::follow_store(feed.clone(), store.subscribe())),
            tokio::spawn(periodic.run()),
        ];
        let queue = Queue {
            inner: Arc::new(Inner {
                store,
                catalog,
                executor,
                notifier,
                feed,
                cfg,
                accepting: AtomicBool::new(true),
                services,
            }),
        };
        let _ = queue.inner.executor.queue.set(Arc::downgrade(&queue.inner));
        queue.inner.executor.queue_set.notify_waiters();
        let every = queue.inner.cfg.maintenance_interval;
        let weak = Arc::downgrade(&queue.inner);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            tick.tick().await;
            loop {
                tick.tick().await;
                let Some(inner) = weak.upgrade() else { break };
                Queue { inner }.maintain().await;
            }
        });
        queue
    }

    /// The live feed of job events (SSE, MCP progress, the dashboard).
    pub fn feed(&self) -> &Arc<Feed> {
        &self.inner.feed
    }

    /// The catalog of job types.
    pub fn catalog(&self) -> &Arc<Catalog> {
        &self.inner.catalog
    }

    /// The job store.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.inner.store
    }

    /// The store's storage counters.
    pub fn store_stats(&self) -> StoreStats {
        self.inner.store.stats()
    }

    /// The queue's settings.
    pub fn config(&self) -> &QueueConfig {
        &self.inner.cfg
    }

    /// This host's id.
    pub fn host_id(&self) -> &str {
        &self.inner.cfg.host_id
    }

    /// Resolves a job type name (or the default) to a loaded type.
    pub fn job_type(&self, name: Option<&str>) -> Result<Arc<JobType>, QueueError> {
        let name = match name.or(self.inner.cfg.default_job_type.as_deref()) {
            Some(n) => n,
            None => {
                return Err(QueueError::NoJobType {
                    available: self.inner.catalog.names(),
                });
            }
        };
        self.inner.catalog.get(name).ok_or_else(|| {
            if self.inner.catalog.loading().iter().any(|l| l == name) {
                QueueError::JobTypeLoading(name.to_string())
            } else {
                QueueError::UnknownJobType {
                    job_type: name.to_string(),
                    available: self.inner.catalog.names(),
                }
            }
        })
    }

    fn accepting(&self) -> Result<(), QueueError> {
        if self.inner.accepting.load(Ordering::Acquire) {
            Ok(())
        } else {
            Err(QueueError::ShuttingDown)
        }
    }

    /// A claimant for up to `n` of this host's free slots (`None` if none is free), with the
    /// reservation that holds them: dropping it gives back the slots no claimed job took. Job
    /// types with a concurrency cap are left to the producer, which claims them one type at a
    /// time within their caps.
    fn reserve(&self, n: usize) -> Option<(Claimant, Reservation)> {
        let (job_types, _) = self.inner.catalog.names_by_cap();
        if job_types.is_empty() {
            return None;
        }
        let reserved = self.inner.executor.reserve(n)?;
        let claimant = Claimant {
            host: self.inner.cfg.host_id.clone(),
            job_types: job_types.into(),
            max: reserved.len(),
            lease: self.inner.cfg.lease,
            code: self.inner.catalog.code(),
            run: Some(reserved.runner()),
        };
        Some((claimant, reserved))
    }

    /// Validates one job to add (its params against its type's schema).
    fn new_job(
        &self,
        req: AddRequest,
        start: bool,
        index: Option<usize>,
    ) -> Result<NewJob, QueueError> {
        let job_id = match req.job_id {
            Some(id) if id.is_empty() => return Err(QueueError::invalid_job_id()),
            Some(id) => id,
            None => crate::job::new_id(),
        };
        let jt = self.job_type(req.job_type.as_deref())?;
        if let Some(err) = jt.validator.iter_errors(&req.params).next() {
            let e = QueueError::from_schema_error(&err, &jt.info().params_schema);
            return Err(match index {
                Some(i) => e.in_batch(i),
                None => e,
            });
        }
        let field = |f: &str| match index {
            Some(i) => format!("jobs[{i}].{f}"),
            None => f.to_string(),
        };
        for (what, v) in [
            ("queue", req.queue.as_deref()),
            ("concurrency_key", req.concurrency_key.as_deref()),
        ] {
            if let Some(v) = v
                && let Err(e) = crate::limits::check_name(what, v)
            {
                return Err(QueueError::InvalidParams(Box::new(ParamError {
                    field: field(what),
                    violation: "value",
                    expected: format!(
                        "1 to {} bytes without control characters",
                        crate::limits::MAX_NAME_BYTES
                    )
                    .into(),
                    got: v.into(),
                    message: format!("parameter '{}': {e}", field(what)),
                })));
            }
        }
        let queue = req
            .queue
            .or_else(|| jt.manifest.queue.as_ref().map(|q| q.name.clone()))
            .unwrap_or_else(|| crate::limits::DEFAULT_QUEUE.to_string());
        if let Some(caller) = &req.caller
            && let Err(miss) = caller.admits(&jt.name, &queue)
        {
            let what = match index {
                Some(i) => format!("add jobs[{i}]"),
                None => "add this job".to_string(),
            };
            return Err(QueueError::Forbidden {
                key: caller.name.to_string(),
                message: caller.out_of_scope(&what, &miss),
            });
        }
        let priority = req
            .priority
            .or(jt.manifest.limits.priority)
            .or_else(|| {
                self.inner
                    .store
                    .queue_specs()
                    .get(&queue)
                    .and_then(|q| q.priority)
            })
            .unwrap_or(0);
        Ok(NewJob {
            job_id,
            job_type: jt.name.clone(),
            params: Json::new(&req.params),
            priority,
            max_attempts: req
                .max_attempts
                .or(jt.manifest.limits.max_attempts)
                .unwrap_or(self.inner.cfg.default_max_attempts)
                .max(1),
            run_at: req.run_at,
            unique_key: req.unique_key,
            schedule: None,
            queue,
            concurrency_key: req.concurrency_key,
            as_command: req.as_command,
            added_by: req
                .caller
                .as_ref()
                .and_then(|c| c.recorded())
                .map(str::to_string),
            traceparent: None,
            parent: req.parent,
            start: start || !req.depends_on.is_empty(),
            depends_on: req.depends_on,
            on_dependency_failure: req.on_dependency_failure,
        })
    }

    /// Adds jobs atomically (one durable write): all or none. With `start`, they are runnable
    /// at once (or at their `run_at`), and as many as there are free slots are claimed in the
    /// same write. A job whose `unique_key` is held comes back as a duplicate.
    pub async fn add_jobs(
        &self,
        reqs: Vec<AddRequest>,
        start: bool,
    ) -> Result<Vec<Added>, QueueError> {
        self.accepting()?;
        let batch = reqs.len() > 1;
        let parent = reqs
            .first()
            .and_then(|r| r.caller.as_ref())
            .and_then(|c| c.traceparent.clone());
        let mut jobs = reqs
            .into_iter()
            .enumerate()
            .map(|(i, r)| self.new_job(r, start, batch.then_some(i)))
            .collect::<Result<Vec<_>, _>>()?;
        // Traces on: the add is a `job.enqueue` span, and each job records its context.
        let enqueue = self.inner.cfg.telemetry.as_ref().map(|t| {
            let first = jobs.first().map_or("", |j| j.job_id.as_str());
            t.enqueue(parent.as_deref(), jobs.len(), first)
        });
        if let Some(e) = &enqueue {
            for j in &mut jobs {
                j.traceparent = Some(e.traceparent().to_string());
            }
        }
        let (claim, reserved) = match start.then(|| self.reserve(jobs.len())).flatten() {
            Some((claim, reserved)) => (Some(claim), Some(reserved)),
            None => (None, None),
        };
        // The store hands the jobs it claims to the executor (each run keeps its slot); the
        // reservation gives back the others when it is dropped.
        let write = enqueue.as_ref().map(|e| e.store_write());
        let out = self.inner.store.insert_many(jobs, claim).await;
        if let (Some(e), Some(w)) = (enqueue, write) {
            e.end(w, out.as_ref().err().map(|e| e.to_string()).as_deref());
        }
        let unused = reserved.as_ref().map_or(0, Reservation::unused);
        drop(reserved);
        let InsertOutcome { jobs, claimed: _ } = out?;
        if unused > 0 {
            self.inner.executor.freed.notify_one();
        }
        Ok(jobs
            .into_iter()
            .map(|i| Added {
                job: i.job,
                duplicate: i.duplicate,
            })
            .collect())
    }

    /// Adds one job (see [`Queue::add_jobs`]).
    pub async fn add_job(&self, req: AddRequest, start: bool) -> Result<Added, QueueError> {
        let mut out = self.add_jobs(vec![req], start).await?;
        out.pop().ok_or(QueueError::ShuttingDown)
    }

    /// Starts a PENDING (or STOPPED) job: it runs now if a slot is free and its time has come,
    /// else it waits (by priority, then time) and reads PENDING meanwhile.
    ///
    /// `caller` must have the job in its scope; its name goes into the job's audit.
    pub async fn start_job(
        &self,
        job_id: &str,
        caller: &Caller,
    ) -> Result<Arc<JobRecord>, QueueError> {
        self.accepting()?;
        self.permit(job_id, caller, "start", false).await?;
        let (claim, reserved) = self.reserve(1).unzip();
        // The store hands the job to the executor if it claims it (the run keeps the slot);
        // the reservation gives the slot back otherwise.
        let out = self
            .inner
            .store
            .start(job_id, claim, caller.recorded())
            .await;
        drop(reserved);
        // The trail's entry, if the start made one (a restart, or a start by another key).
        if let (Some(key), Ok(o)) = (caller.recorded(), &out)
            && let Some(entry) = o.job.audit.last().filter(|a| a.at == o.job.updated_at)
        {
            tracing::info!(target: "queuemgr::audit", key, action = ?entry.action, job_id, "job started by key");
        }
        Ok(out?.job)
    }

    /// Stops a job: a RUNNING one is ended at its next epoch or fuel check (or wakes from a host sleep);
    /// a PENDING one becomes STOPPED at once. Returns the job's state once the stop is durable.
    ///
    /// `caller` must have the job in its scope; its name goes into the job's audit.
    pub async fn stop_job(
        &self,
        job_id: &str,
        caller: &Caller,
    ) -> Result<Arc<JobRecord>, QueueError> {
        self.end_job(job_id, StopKind::Stop, caller, true).await
    }

    /// [`Queue::stop_job`], leaving the job's live children (and theirs) running when
    /// `keep_children`.
    pub async fn stop_job_keeping(
        &self,
        job_id: &str,
        caller: &Caller,
        keep_children: bool,
    ) -> Result<Arc<JobRecord>, QueueError> {
        self.end_job(job_id, StopKind::Stop, caller, !keep_children)
            .await
    }

    /// Soft-deletes a job (status DELETED), stopping it first if it runs. Deleting a deleted
    /// job succeeds and changes nothing.
    ///
    /// `caller` must have the job in its scope, and a key below `admin` may delete only the
    /// jobs it added; its name goes into the job's audit.
    pub async fn delete_job(
        &self,
        job_id: &str,
        caller: &Caller,
    ) -> Result<Arc<JobRecord>, QueueError> {
        self.end_job(job_id, StopKind::Delete, caller, true).await
    }

    /// Whether `caller` may act on a job: in its scope, and (for a delete by a key below
    /// `admin`) added by it. A caller with every job in scope and no delete to check costs no
    /// read.
    async fn permit(
        &self,
        job_id: &str,
        caller: &Caller,
        action: &str,
        delete: bool,
    ) -> Result<(), QueueError> {
        let own_only = delete && caller.role < crate::auth::Role::Admin;
        if caller.scope.is_none() && !own_only {
            return Ok(());
        }
        let job = self
            .inner
            .store
            .get(job_id)
            .await?
            .ok_or_else(|| QueueError::NotFound(job_id.to_string()))?;
        self.may_see(&job, caller, action)?;
        if own_only && job.added_by.as_deref() != Some(&*caller.name) {
            let owner = match &job.added_by {
                Some(k) => format!("key '{k}' added it"),
                None => "no key added it".to_string(),
            };
            return Err(QueueError::Forbidden {
                key: caller.name.to_string(),
                message: format!(
                    "Forbidden: key '{}' (role {}) may delete only the jobs it added: {owner}; deleting any job needs role admin",
                    caller.name,
                    caller.role.as_str()
                ),
            });
        }
        Ok(())
    }

    /// Whether `caller` may see this job (see [`Caller::admits`]).
    pub fn may_see(
        &self,
        job: &JobRecord,
        caller: &Caller,
        action: &str,
    ) -> Result<(), QueueError> {
        caller
            .admits(&job.job_type, &job.queue)
            .map_err(|miss| QueueError::Forbidden {
                key: caller.name.to_string(),
                message: caller.out_of_scope(&format!("{action} job '{}'", job.job_id), &miss),
            })
    }

    async fn end_job(
        &self,
        job_id: &str,
        kind: StopKind,
        caller: &Caller,
        children: bool,
    ) -> Result<Arc<JobRecord>, QueueError> {
        let action = match kind {
            StopKind::Stop => "stop",
            StopKind::Delete => "delete",
        };
        self.permit(job_id, caller, action, kind == StopKind::Delete)
            .await?;
        let outcome = self
            .inner
            .store
            .request_stop(job_id, kind, caller.recorded())
            .await?;
        if let Some(key) = caller.recorded() {
            tracing::info!(target: "queuemgr::audit", key, action, job_id, "job {action} asked by key");
        }
        // A parent's live children stop (or are deleted) with it, in the background: a flow
        // of thousands of jobs must not hold the request.
        // Only a job whose type imports `flow` can have children (a type not loaded here
        // might, and so might a run of another version of its component than the one
        // loaded now): other stops skip the walk, which on the local store reads the whole
        // table.
        let ended = match &outcome {
            StopOutcome::Ended(j) | StopOutcome::Signalled { job: j, .. } => j,
        };
        let may_have_children = self.inner.catalog.get(&ended.job_type).is_none_or(|t| {
            t.program.uses_flow()
                || ended
                    .component_sha256
                    .as_deref()
                    .is_some_and(|ran| ran != t.sha256)
        });
        if children && may_have_children {
            let q = self.clone();
            let parent = job_id.to_string();
            let by = caller.recorded().map(str::to_string);
            tokio::spawn(async move { q.end_children(parent, kind, by).await });
        }
        match outcome {
            StopOutcome::Ended(job) => Ok(job),
            StopOutcome::Signalled { job, .. } => {
                // A stop lands at the guest's next epoch or fuel check (about a millisecond); the
                // bound is only for a guest stuck in a host call that cannot be interrupted.
                let attempt = job.attempt;
                let ended = self
                    .inner
                    .notifier
                    .wait_for(job_id, Duration::from_secs(10), |j| {
                        j.status != Status::Running || j.attempt != attempt
                    })
                    .await;
                Ok(ended.unwrap_or(job))
            }
        }
    }

    /// Stops (or deletes) the live children of `parent`, their children, and so on.
    async fn end_children(&self, parent: String, kind: StopKind, by: Option<String>) {
        let mut todo = vec![parent];
        while let Some(p) = todo.pop() {
            let children = match self.inner.store.children(&p).await {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(parent = %p, error = %e, "cannot list a stopped job's children");
                    continue;
                }
            };
            for c in children {
                todo.push(c.job_id.clone());
                if c.status.is_terminal() {
                    continue;
                }
                if let Err(e) = self
                    .inner
                    .store
                    .request_stop(&c.job_id, kind, by.as_deref())
                    .await
                {
                    tracing::debug!(job_id = %c.job_id, error = %e, "a child did not stop with its parent");
                }
            }
        }
    }

    /// Sends an event to a job (by id, or the live job holding a unique key): kept on the job,
    /// and a job suspended in `wait-for-event` of that name runs again. `caller` needs the job
    /// in its scope (a scoped key names the job by id); its name goes into the job's audit.
    pub async fn send_event(
        &self,
        target: crate::store::EventTarget,
        name: &str,
        payload: serde_json::Value,
        caller: &Caller,
    ) -> Result<Arc<JobRecord>, QueueError> {
        match &target {
            crate::store::EventTarget::Job(id) => {
                self.permit(id, caller, "send an event to", false).await?
            }
            crate::store::EventTarget::Key(_) if caller.scope.is_some() => {
                return Err(QueueError::Forbidden {
                    key: caller.name.to_string(),
                    message: format!(
                        "key '{}' has a scope: name the job by its job_id to send it an event",
                        caller.name
                    ),
                });
            }
            crate::store::EventTarget::Key(_) => {}
        }
        let job = self
            .inner
            .store
            .send_event(&target, name, Json::new(&payload), caller.recorded())
            .await?;
        if let Some(key) = caller.recorded() {
            tracing::info!(target: "queuemgr::audit", key, action = "event", job_id = %job.job_id, event = name, "event sent by key");
        }
        Ok(job)
    }

    /// A job and every job its runs enqueued (their children too), parents first.
    pub async fn get_flow(
        &self,
        job_id: &str,
        caller: &Caller,
    ) -> Result<Vec<Arc<JobRecord>>, QueueError> {
        // A flow added with `add_flow` has no job of its own id: its jobs are its children.
        let (mut nodes, mut i) = match self.get_status(job_id).await {
            Ok(root) => {
                self.may_see(&root, caller, "read")?;
                (vec![root], 0)
            }
            Err(QueueError::NotFound(id)) => {
                let top = self.inner.store.children(job_id).await?;
                if top.is_empty() {
                    return Err(QueueError::NotFound(id));
                }
                for j in &top {
                    self.may_see(j, caller, "read")?;
                }
                (top, 0)
            }
            Err(e) => return Err(e),
        };
        while i < nodes.len() {
            let id = nodes[i].job_id.clone();
            nodes.extend(self.inner.store.children(&id).await?);
            i += 1;
            if nodes.len() > MAX_FLOW_NODES {
                nodes.truncate(MAX_FLOW_NODES);
                break;
            }
        }
        Ok(nodes)
    }

    /// A job's current state (progress is live while it runs here). A run that has just ended
    /// here and whose end is being written is answered with its end, once durable (at most a
    /// few milliseconds later).
    pub async fn get_status(&self, job_id: &str) -> Result<Arc<JobRecord>, QueueError> {
        let mut job = self
            .inner
            .store
            .get(job_id)
            .await?
            .ok_or_else(|| QueueError::NotFound(job_id.to_string()))?;
        if job.status == Status::Running
            && let Some(recorded) = self.inner.executor.ending(job_id, job.attempt)
            && tokio::time::timeout(Duration::from_millis(20), recorded)
                .await
                .is_ok()
            && let Some(j) = self.inner.store.get(job_id).await?
        {
            job = j;
        }
        if transitions::is_runnable(&job)
            && job
                .scheduled_at
                .is_some_and(|at| at <= crate::job::now_micros())
            && !self
                .hosts()
                .await
                .iter()
                .any(|h| h.job_types.contains(&job.job_type))
        {
            // Due, but no live host can run it: say so rather than "waiting for a slot".
            let mut rec = JobRecord::clone(&job);
            rec.description = format!(
                "Waiting for a host with job type '{}' (no live host has it loaded)",
                rec.job_type
            );
            job = Arc::new(rec);
        }
        Ok(self.with_live(job))
    }

    fn with_live(&self, job: Arc<JobRecord>) -> Arc<JobRecord> {
        if job.status == Status::Running
            && let Some((p, d)) = self.inner.executor.live_progress(&job.job_id, job.attempt)
            && (p != job.progress || d != job.description)
        {
            let mut rec = JobRecord::clone(&job);
            rec.progress = p;
            rec.description = d;
            return Arc::new(rec);
        }
        job
    }

    /// Jobs, filtered and paged (progress is live for jobs running here).
    pub async fn list_jobs(&self, query: ListQuery) -> Result<Page, QueueError> {
        let mut page = self.inner.store.list(query).await?;
        for job in &mut page.jobs {
            *job = self.with_live(job.clone());
        }
        Ok(page)
    }

    /// A job's captured log lines (stdout, stderr, `log`) of its latest run on this host.
    ///
    /// Logs are kept in memory by the host that runs the job. When this host has none for a
    /// job that another host ran (or runs), they are fetched from that host (its announced
    /// URL, with this host's API key); if it cannot be reached, the answer is what this host
    /// has (nothing).
    ///
    /// `caller` must have the job in its scope.
    pub async fn get_logs(
        &self,
        job_id: &str,
        caller: &Caller,
    ) -> Result<(Vec<(i64, LogLine)>, u64), QueueError> {
        let Some(job) = self.inner.store.get(job_id).await? else {
            return Err(QueueError::NotFound(job_id.to_string()));
        };
        self.may_see(&job, caller, "read the logs of")?;
        let here = self.inner.executor.logs(job_id);
        let elsewhere = job.host.as_deref().filter(|h| *h != self.inner.cfg.host_id);
        let Some(host) = elsewhere.filter(|_| here.0.is_empty()) else {
            return Ok(here);
        };
        match peers::logs(self, host, job_id).await {
            Ok(logs) => Ok(logs),
            Err(e) => {
                tracing::warn!(job_id, host, error = %e, "cannot fetch the job's logs from the host that ran it");
                Ok(here)
            }
        }
    }

    /// This host's own logs of a job (what other hosts fetch), without asking any other host.
    pub fn logs_here(&self, job_id: &str) -> (Vec<(i64, LogLine)>, u64) {
        self.inner.executor.logs(job_id)
    }

    /// Sets where this host answers HTTP (announced to the other hosts with each heartbeat).
    pub fn advertise(&self, url: String) {
        self.inner.executor.set_url(url);
    }

    /// Counters for health reports.
    pub async fn counts(&self) -> QueueCounts {
        let c: Counts = self.inner.store.counts().await.unwrap_or_default();
        QueueCounts {
            total: c.total,
            by_status: c.by_status,
            running: self.inner.executor.running(),
            waiting: c.waiting,
            unstarted: c.unstarted,
        }
    }

    /// The live hosts sharing the store, with their job types (a host is live if it announced
    /// itself within three leases); on a store of one host, this host.
    pub async fn hosts(&self) -> Vec<crate::store::HostInfo> {
        let i = &self.inner;
        let mut hosts = i.store.hosts().await.unwrap_or_default();
        let since = crate::job::now_micros()
            .saturating_sub(i.cfg.lease.saturating_mul(3).as_micros() as i64);
        hosts.retain(|h| h.seen_at >= since);
        if !hosts.iter().any(|h| h.host_id == i.cfg.host_id) {
            hosts.push(crate::store::HostInfo {
                host_id: i.cfg.host_id.clone(),
                job_types: i.catalog.names(),
                seen_at: crate::job::now_micros(),
                url: i.executor.url(),
            });
        }
        hosts
    }

    /// Slots in use and the cap.
    pub fn slots(&self) -> (usize, usize) {
        let s = &self.inner.executor.slots;
        (s.used(), s.max())
    }

    /// Stops taking work, stops every running job (recorded STOPPED, interrupted — or retried
    /// after the restart if attempts remain) and waits until every record is durable.
    pub async fn shutdown(&self) {
        self.inner.accepting.store(false, Ordering::Release);
        for s in &self.inner.services {
            s.abort();
        }
        let n = self.inner.executor.shutdown(Duration::from_secs(10)).await;
        if let Err(e) = self.inner.store.flush().await {
            tracing::error!(error = %e, "store flush at shutdown failed");
        }
        tracing::info!(stopped = n, "queue shut down");
    }

    /// Runs the periodic services once: rescue, retention, compaction — on the leader only,
    /// when several hosts share the store.
    pub async fn maintain(&self) {
        let i = &self.inner;
        let term = i
            .cfg
            .maintenance_interval
            .saturating_mul(3)
            .max(i.cfg.lease);
        match i.store.lead(&i.cfg.host_id, term).await {
            Ok(true) => {}
            Ok(false) => return,
            Err(e) => {
                tracing::warn!(error = %e, "leader election failed: maintenance skipped");
                return;
            }
        }
        maintenance::rescuer::run_once(i.store.as_ref(), i.cfg.retry).await;
        maintenance::cleaner::run_once(i.store.as_ref(), &i.cfg.retention, &i.executor).await;
        maintenance::compactor::run_once(i.store.as_ref()).await;
    }
}
