//! The job state machine: PENDING → RUNNING → COMPLETED | ERROR | STOPPED, and DELETED (soft).
//!
//! One lock guards the job table; it is held only to change memory and to *enqueue* registry
//! records (never across I/O or a guest call), which gives the registry a total order of
//! transitions. Each API call then awaits its own records' durability outside the lock, so a
//! slow disk or a slow job never blocks another call.
//!
//! Readers see only durable state: each entry keeps the latest record (`rec`, what the next
//! transition builds on) apart from the last *durable* one (`visible`, what `get_status` and
//! `list_jobs` show), and a record becomes visible once the registry has synced it. A client
//! never sees a state that a crash could take back.
//!
//! A run begins while its RUNNING record is still being synced, so that a short job's end
//! record can share that sync (one sync less per job, and its end is readable sooner). Nothing
//! of the run can become durable or visible before the RUNNING record does: every record of
//! the run is appended *after* the RUNNING record's [`Commit`], which the registry refuses if
//! that commit failed; the entry then goes back to its state before the run.
//!
//! Scheduling is FIFO with a concurrency cap: a start past the cap waits its turn and reads
//! PENDING meanwhile. Jobs run on the runtime's own tokio runtime (see [`Queue::new`]), apart
//! from the HTTP workers, so a CPU-heavy guest cannot delay requests.

mod error;
mod events;
mod retention;

pub use error::{ParamError, QueueError};
pub use retention::Retention;

use crate::catalog::{Catalog, JobType};
use crate::registry::{
    Commit, CommitState, Durable, ErrorInfo, Event, JobRecord, Json, Link, Registry, RegistryError,
    Status, now_micros,
};
use crate::runtime::{JobLimits, LogLine, Outcome, RunRequest, Runtime};
use events::{JobLogs, LiveEvents};
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// A hash map with foldhash's per-process random seed.
type FastMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

/// Queue settings.
#[derive(Debug, Clone)]
pub struct QueueConfig {
    /// Most jobs running at once; later starts wait (FIFO).
    pub max_concurrent: usize,
    /// Limits every run gets.
    pub limits: JobLimits,
    /// The job type used when `add_job` names none.
    pub default_job_type: Option<String>,
    /// Least time between two progress records of one job in the registry.
    pub progress_interval: Duration,
    /// Log lines kept per job (the byte cap is [`JobLimits::log_bytes`]).
    pub max_log_lines: usize,
    /// What is removed in the background, and when.
    pub retention: Retention,
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
        }
    }
}

/// Why a running job is being ended by the host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum EndReason {
    Stop,
    Delete,
    Shutdown,
}

struct Entry {
    /// The latest record, durable or not: transitions build on it (copy-on-write: it shares
    /// its allocation with `visible` until the next transition).
    rec: Arc<JobRecord>,
    /// The latest durable record: what readers see (`None` until the add is durable).
    visible: Option<Arc<JobRecord>>,
    /// Set while the job runs: its progress, updated by the guest without the table lock.
    live: Option<Arc<LiveEvents>>,
    /// Log lines of the latest run (created when a job first runs).
    logs: Option<Arc<JobLogs>>,
    stop: Option<CancellationToken>,
    end_reason: Option<EndReason>,
    /// Becomes true once the current run's end is durable.
    done: Option<watch::Receiver<bool>>,
    /// Started, waiting for a free slot.
    waiting: bool,
    /// Increases with each run, so that a stale run cannot overwrite a newer one.
    run_id: u64,
    /// The current run's RUNNING record commit and the record before it.
    gate: Option<RunGate>,
}

/// What a run's later records depend on: its RUNNING record's commit, and the record to go
/// back to if that commit fails.
struct RunGate {
    commit: Commit,
    before: Arc<JobRecord>,
}

impl RunGate {
    fn failed(&self) -> bool {
        self.commit.state() == CommitState::Failed
    }
}

impl Entry {
    /// A job not yet visible to readers, not running.
    fn new(rec: Arc<JobRecord>) -> Entry {
        Entry {
            rec,
            visible: None,
            live: None,
            logs: None,
            stop: None,
            end_reason: None,
            done: None,
            waiting: false,
            run_id: 0,
            gate: None,
        }
    }

    /// The link for a record of the current run: stored only if its RUNNING record is.
    fn run_link(&self) -> Link {
        Link {
            marks: None,
            after: self.gate.as_ref().map(|g| g.commit.clone()),
        }
    }

    /// Undoes a run whose RUNNING record could not be stored: back to the record before it
    /// (a later delete is kept), and the run is told to stop. The gate stays, failed, so that
    /// the run's end (whenever it comes) records nothing; calling this again changes nothing.
    fn abandon_run(&mut self) {
        if let Some(stop) = &self.stop {
            stop.cancel();
        }
        if let Some(g) = &self.gate
            && self.rec.event != Event::Deleted
            && !Arc::ptr_eq(&self.rec, &g.before)
        {
            self.rec = g.before.clone();
            self.waiting = false;
        }
    }

    /// What readers see: the durable record, with live progress while it runs.
    fn view(&self) -> Option<Arc<JobRecord>> {
        let visible = self.visible.as_ref()?;
        if visible.status == Status::Running
            && let Some(live) = &self.live
        {
            let mut rec = JobRecord::clone(visible);
            let (p, d) = live.progress();
            rec.progress = p;
            rec.description = d;
            return Some(Arc::new(rec));
        }
        Some(visible.clone())
    }

    /// The latest record with live progress: what the registry gets next.
    fn latest(&self) -> JobRecord {
        let mut rec = JobRecord::clone(&self.rec);
        if rec.status == Status::Running
            && let Some(live) = &self.live
        {
            let (p, d) = live.progress();
            rec.progress = p;
            rec.description = d;
        }
        rec
    }
}

#[derive(Default)]
struct State {
    /// Keyed by job id; a fast seeded hasher (a million inserts at start-up).
    jobs: FastMap<String, Entry>,
    /// Job ids in the order they were added.
    order: Vec<String>,
    running: usize,
    waiting: VecDeque<String>,
    accepting: bool,
    next_run: u64,
    /// Visible jobs per status (index: position in [`Status::ALL`]), kept at every change of
    /// `visible` so that health reports never walk the table.
    visible_by_status: [usize; 6],
    /// Visible PENDING jobs never started.
    visible_unstarted: usize,
}

impl State {
    /// Adds (`+1`) or removes (`-1`) a visible record from the counters.
    fn count(&mut self, rec: Option<&JobRecord>, delta: isize) {
        let Some(rec) = rec else { return };
        let i = Status::ALL
            .iter()
            .position(|s| *s == rec.status)
            .unwrap_or(0);
        self.visible_by_status[i] = self.visible_by_status[i].saturating_add_signed(delta);
        if rec.status == Status::Pending && rec.event == Event::Created {
            self.visible_unstarted = self.visible_unstarted.saturating_add_signed(delta);
        }
    }

    /// Replaces a job's visible record, keeping the counters right.
    fn set_visible(&mut self, job_id: &str, rec: Arc<JobRecord>) {
        let Some(old) = self
            .jobs
            .get_mut(job_id)
            .map(|e| e.visible.replace(rec.clone()))
        else {
            return;
        };
        self.count(old.as_deref(), -1);
        self.count(Some(&rec), 1);
    }
}

struct Inner {
    state: Mutex<State>,
    registry: Arc<dyn Registry>,
    catalog: Arc<Catalog>,
    runtime: Runtime,
    jobs_rt: tokio::runtime::Handle,
    cfg: QueueConfig,
}

/// A snapshot of the queue's counters.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct QueueCounts {
    /// Jobs known (including deleted ones not yet purged).
    pub total: usize,
    /// Jobs per status.
    pub by_status: HashMap<&'static str, usize>,
    /// Jobs running now.
    pub running: usize,
    /// Jobs started and waiting for a slot.
    pub waiting: usize,
    /// PENDING jobs never started.
    pub unstarted: usize,
}

/// The job queue. Cheap to clone.
#[derive(Clone)]
pub struct Queue {
    inner: Arc<Inner>,
}

fn lock(m: &Mutex<State>) -> MutexGuard<'_, State> {
    // The table holds plain data; a panic elsewhere cannot leave it half-updated in a way that
    // matters more than refusing every later call would.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Queue {
    /// Replays the registry (RUNNING jobs become STOPPED with `result.interrupted = true`;
    /// jobs that were waiting for a slot are queued again) and returns a queue ready to serve.
    /// `jobs_rt` is the runtime jobs run on.
    pub async fn open(
        registry: Arc<dyn Registry>,
        catalog: Arc<Catalog>,
        runtime: Runtime,
        jobs_rt: tokio::runtime::Handle,
        cfg: QueueConfig,
    ) -> Result<Self, RegistryError> {
        let replay = registry.replay()?;
        if replay.report.repaired_tail || !replay.report.skipped_lines.is_empty() {
            tracing::warn!(repaired_tail = replay.report.repaired_tail,
                skipped = ?replay.report.skipped_lines, "registry repaired at start");
        }
        let now = now_micros();
        let mut state = State {
            accepting: true,
            jobs: FastMap::with_capacity_and_hasher(replay.jobs.len(), Default::default()),
            order: Vec::with_capacity(replay.jobs.len()),
            ..State::default()
        };
        let mut fixes = Vec::new();
        let mut requeue = Vec::new();
        for mut rec in replay.jobs {
            if rec.status == Status::Running {
                let r = Arc::make_mut(&mut rec);
                mark_stopped(
                    r,
                    Event::Interrupted,
                    "Interrupted: the host stopped while the job was running",
                    true,
                    now,
                );
                fixes.push(JobRecord::clone(r));
            } else if rec.status == Status::Pending && rec.event == Event::Queued {
                requeue.push(rec.job_id.clone());
            }
            state.order.push(rec.job_id.clone());
            state.count(Some(&rec), 1);
            let mut entry = Entry::new(rec.clone());
            entry.visible = Some(rec.clone());
            state.jobs.insert(rec.job_id.clone(), entry);
        }
        let interrupted = fixes.len();
        if !fixes.is_empty() {
            registry.append(fixes.clone()).await?;
            // The fixed records were made visible and counted above (nobody reads before
            // `open` returns); now they are durable too.
        }
        let queue = Queue {
            inner: Arc::new(Inner {
                state: Mutex::new(state),
                registry,
                catalog,
                runtime,
                jobs_rt,
                cfg,
            }),
        };
        let jobs = lock(&queue.inner.state).jobs.len();
        tracing::info!(
            jobs,
            interrupted,
            requeued = requeue.len(),
            "queue replayed"
        );
        for id in requeue {
            if let Err(e) = queue.start_job(&id).await {
                tracing::warn!(job_id = %id, error = %e, "could not requeue a waiting job");
            }
        }
        Ok(queue)
    }

    /// The catalog of job types.
    pub fn catalog(&self) -> &Arc<Catalog> {
        &self.inner.catalog
    }

    /// The registry.
    pub fn registry(&self) -> &Arc<dyn Registry> {
        &self.inner.registry
    }

    /// The queue's settings.
    pub fn config(&self) -> &QueueConfig {
        &self.inner.cfg
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
        self.inner
            .catalog
            .get(name)
            .ok_or_else(|| QueueError::UnknownJobType {
                job_type: name.to_string(),
                available: self.inner.catalog.names(),
            })
    }

    /// Adds a PENDING job after validating its params against the job type's schema.
    pub async fn add_job(
        &self,
        job_id: &str,
        job_type: Option<&str>,
        params: serde_json::Value,
    ) -> Result<JobRecord, QueueError> {
        if job_id.is_empty() {
            return Err(QueueError::invalid_job_id());
        }
        let jt = self.job_type(job_type)?;
        if let Some(err) = jt.validator.iter_errors(&params).next() {
            return Err(QueueError::from_schema_error(
                &err,
                &jt.info().params_schema,
            ));
        }
        let now = now_micros();
        let rec = JobRecord {
            event: Event::Created,
            job_id: job_id.to_string(),
            job_type: jt.name.clone(),
            status: Status::Pending,
            progress: 0,
            description: String::new(),
            params: Json::new(&params),
            result: None,
            error: None,
            created_at: now,
            updated_at: now,
            started_at: None,
            completed_at: None,
            runs: 0,
        };
        let (durable, previous) = {
            let mut s = lock(&self.inner.state);
            if !s.accepting {
                return Err(QueueError::ShuttingDown);
            }
            let previous = match s.jobs.get(job_id) {
                Some(e) if e.rec.status != Status::Deleted => {
                    return Err(QueueError::AlreadyExists(job_id.to_string()));
                }
                Some(_) => {
                    let prev = s.jobs.remove(job_id);
                    let old = prev.as_ref().and_then(|e| e.visible.clone());
                    s.count(old.as_deref(), -1);
                    prev
                }
                None => {
                    s.order.push(job_id.to_string());
                    None
                }
            };
            s.jobs
                .insert(job_id.to_string(), Entry::new(Arc::new(rec.clone())));
            (self.inner.registry.append(vec![rec.clone()]), previous)
        };
        if let Err(e) = durable.await {
            let mut s = lock(&self.inner.state);
            if s.jobs
                .get(job_id)
                .is_some_and(|e| e.rec.event == Event::Created && e.rec.created_at == now)
            {
                match previous {
                    Some(prev) => {
                        let old = prev.visible.clone();
                        s.count(old.as_deref(), 1);
                        s.jobs.insert(job_id.to_string(), prev);
                    }
                    None => {
                        s.jobs.remove(job_id);
                        s.order.retain(|id| id != job_id);
                    }
                }
            }
            return Err(e.into());
        }
        self.publish(std::slice::from_ref(&rec));
        Ok(rec)
    }

    /// Makes durable records visible to readers (never an older one over a newer one).
    fn publish(&self, records: &[JobRecord]) {
        let mut s = lock(&self.inner.state);
        for rec in records {
            let Some(e) = s.jobs.get(&rec.job_id) else {
                continue;
            };
            if e.visible
                .as_ref()
                .is_none_or(|v| v.updated_at <= rec.updated_at)
                && e.rec.created_at == rec.created_at
            {
                // Share the allocation with `rec` when it is this very record.
                let shared = if e.rec.updated_at == rec.updated_at && e.rec.event == rec.event {
                    e.rec.clone()
                } else {
                    Arc::new(rec.clone())
                };
                s.set_visible(&rec.job_id, shared);
            }
        }
    }

    /// Starts a PENDING (or STOPPED) job: it runs now if a slot is free, else it waits its turn
    /// (FIFO) and reads PENDING meanwhile.
    pub async fn start_job(&self, job_id: &str) -> Result<JobRecord, QueueError> {
        let (durable, rec, launch, prev, run_id): (Durable, _, _, _, _) = {
            let mut s = lock(&self.inner.state);
            if !s.accepting {
                return Err(QueueError::ShuttingDown);
            }
            let max = self.inner.cfg.max_concurrent;
            let running = s.running;
            let entry = s
                .jobs
                .get_mut(job_id)
                .ok_or_else(|| QueueError::NotFound(job_id.to_string()))?;
            let startable =
                matches!(entry.rec.status, Status::Pending | Status::Stopped) && !entry.waiting;
            if !startable {
                return Err(QueueError::StateInvalid {
                    job_id: job_id.to_string(),
                    action: "start",
                    current: entry.rec.status,
                    waiting: entry.waiting,
                    allowed: vec![Status::Pending, Status::Stopped],
                });
            }
            let prev = entry.rec.clone();
            let commit = Commit::new();
            let launch = if running < max {
                self.begin_run(&mut s, job_id, &commit)
            } else {
                let entry = s
                    .jobs
                    .get_mut(job_id)
                    .ok_or_else(|| QueueError::NotFound(job_id.to_string()))?;
                entry.waiting = true;
                let r = Arc::make_mut(&mut entry.rec);
                r.event = Event::Queued;
                r.status = Status::Pending;
                r.description = "Waiting for a free slot".into();
                r.updated_at = now_micros();
                s.waiting.push_back(job_id.to_string());
                None
            };
            let rec = match &launch {
                Some(run) => JobRecord::clone(&run.rec),
                None => s
                    .jobs
                    .get(job_id)
                    .map(|e| JobRecord::clone(&e.rec))
                    .unwrap_or_else(|| JobRecord::clone(&prev)),
            };
            let run_id = launch.as_ref().map_or(0, |run| run.run_id);
            let link = Link {
                marks: launch.is_some().then_some(commit),
                after: None,
            };
            (
                self.inner.registry.append_linked(vec![rec.clone()], link),
                rec,
                launch,
                prev,
                run_id,
            )
        };
        let launch = match launch {
            Some(run) => {
                // The run begins now; its records wait for this one (see the module docs).
                self.spawn_run(run);
                true
            }
            None => false,
        };
        if let Err(e) = durable.await {
            // Undo: the start was never acknowledged, so it must leave no trace. A run that
            // began is stopped, and its end frees its slot without recording anything.
            let mut s = lock(&self.inner.state);
            if let Some(entry) = s.jobs.get_mut(job_id) {
                if launch {
                    if entry.run_id == run_id {
                        entry.abandon_run();
                    }
                } else if entry.rec.updated_at == rec.updated_at {
                    entry.rec = prev;
                    entry.waiting = false;
                }
            }
            if !launch {
                s.waiting.retain(|id| id != job_id);
            }
            return Err(e.into());
        }
        self.publish(std::slice::from_ref(&rec));
        Ok(rec)
    }

    /// Marks a job RUNNING (slot taken) and prepares its run; the caller appends the RUNNING
    /// record ([`RunStart::rec`]), marking `commit` with it, and passes the [`RunStart`] to
    /// [`Queue::spawn_run`] once the table lock is released. `None` if there is no such job.
    fn begin_run(&self, s: &mut State, job_id: &str, commit: &Commit) -> Option<RunStart> {
        let run_id = s.next_run + 1;
        let entry = s.jobs.get_mut(job_id)?;
        let now = now_micros();
        entry.gate = Some(RunGate {
            commit: commit.clone(),
            before: entry.rec.clone(),
        });
        entry.waiting = false;
        entry.run_id = run_id;
        entry.end_reason = None;
        let (done_tx, done_rx) = watch::channel(false);
        entry.done = Some(done_rx);
        let r = Arc::make_mut(&mut entry.rec);
        r.event = Event::Started;
        r.status = Status::Running;
        r.progress = 0;
        r.description = "Job started".into();
        r.result = None;
        r.error = None;
        r.started_at = Some(now);
        r.completed_at = None;
        r.updated_at = now;
        r.runs += 1;
        let max_lines = self.inner.cfg.max_log_lines;
        let logs = entry
            .logs
            .get_or_insert_with(|| Arc::new(JobLogs::new(max_lines)))
            .clone();
        logs.clear();
        let live = Arc::new(LiveEvents::new(
            Arc::downgrade(&self.inner),
            job_id.to_string(),
            run_id,
            logs,
            done_tx,
        ));
        entry.live = Some(live.clone());
        let stop = CancellationToken::new();
        entry.stop = Some(stop.clone());
        let rec = entry.rec.clone();
        s.running += 1;
        s.next_run = run_id;
        Some(RunStart {
            rec,
            live,
            stop,
            run_id,
        })
    }

    /// Runs a job prepared by [`Queue::begin_run`] on the jobs runtime. Its RUNNING record may
    /// still be syncing: the run's own records are appended after it (see the module docs).
    fn spawn_run(&self, run: RunStart) {
        let RunStart {
            rec,
            live,
            stop,
            run_id,
        } = run;
        let queue = self.clone();
        self.inner.jobs_rt.spawn(async move {
            let outcome = match queue.job_type(Some(&rec.job_type)) {
                Ok(jt) => {
                    let req = RunRequest {
                        job_id: rec.job_id.clone(),
                        params: rec.params.as_str().to_string(),
                        limits: queue.inner.cfg.limits,
                        events: live.clone(),
                        stop,
                    };
                    queue.inner.runtime.run(&jt.program, req).await
                }
                Err(e) => Outcome::Trapped(format!("job type unavailable: {e}")),
            };
            tracing::debug!(job_id = %rec.job_id, outcome = outcome.kind(), "job run ended");
            let mut ended = queue.finish(&rec.job_id, run_id, outcome);
            let launched: Vec<(Arc<JobRecord>, u64)> = ended
                .launched
                .drain(..)
                .map(|run| {
                    let started = (run.rec.clone(), run.run_id);
                    queue.spawn_run(run);
                    started
                })
                .collect();
            if let Some((d, end)) = ended.end {
                match d.await {
                    Ok(()) => queue.publish(std::slice::from_ref(&end)),
                    Err(e) => {
                        tracing::error!(job_id = %rec.job_id, error = %e, "could not record a job's end")
                    }
                }
            }
            live.mark_done();
            if let Some(d) = ended.launched_durable {
                match d.await {
                    Ok(()) => {
                        let recs: Vec<JobRecord> = launched
                            .iter()
                            .map(|(rec, _)| JobRecord::clone(rec))
                            .collect();
                        queue.publish(&recs);
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "could not record the start of waiting jobs");
                        let mut s = lock(&queue.inner.state);
                        for (rec, run_id) in &launched {
                            if let Some(entry) = s.jobs.get_mut(&rec.job_id)
                                && entry.run_id == *run_id
                            {
                                entry.abandon_run();
                            }
                        }
                    }
                }
            }
        });
    }

    /// Records the end of a run (unless its RUNNING record was refused), frees its slot and
    /// begins the next waiting jobs' runs (the caller spawns them).
    fn finish(&self, job_id: &str, run_id: u64, outcome: Outcome) -> Ended {
        let mut s = lock(&self.inner.state);
        s.running = s.running.saturating_sub(1);
        let mut end = None;
        if let Some(entry) = s.jobs.get_mut(job_id)
            && entry.run_id == run_id
        {
            entry.stop = None;
            if entry.gate.as_ref().is_some_and(RunGate::failed) {
                entry.abandon_run();
            } else {
                let mut rec = entry.latest();
                apply_outcome(&mut rec, outcome, entry.end_reason);
                let durable = self
                    .inner
                    .registry
                    .append_linked(vec![rec.clone()], entry.run_link());
                entry.rec = Arc::new(rec.clone());
                end = Some((durable, rec));
            }
        }
        // Start waiting jobs while slots are free (skipping ones stopped meanwhile).
        let mut launched = Vec::new();
        let commit = Commit::new();
        while s.running < self.inner.cfg.max_concurrent && s.accepting {
            let Some(next) = s.waiting.pop_front() else {
                break;
            };
            if s.jobs.get(&next).is_some_and(|e| e.waiting)
                && let Some(run) = self.begin_run(&mut s, &next, &commit)
            {
                launched.push(run);
            }
        }
        let launched_durable = (!launched.is_empty()).then(|| {
            let records = launched
                .iter()
                .map(|run| JobRecord::clone(&run.rec))
                .collect();
            let link = Link {
                marks: Some(commit),
                after: None,
            };
            self.inner.registry.append_linked(records, link)
        });
        Ended {
            end,
            launched,
            launched_durable,
        }
    }

    /// Stops a job: a RUNNING one is ended at its next fuel check (or wakes from a host sleep);
    /// a PENDING one becomes STOPPED at once. Returns the job's state once the stop is durable.
    pub async fn stop_job(&self, job_id: &str) -> Result<JobRecord, QueueError> {
        self.end_job(job_id, EndReason::Stop).await
    }

    /// Soft-deletes a job (status DELETED), stopping it first if it runs. Deleting a deleted
    /// job succeeds and changes nothing.
    pub async fn delete_job(&self, job_id: &str) -> Result<JobRecord, QueueError> {
        self.end_job(job_id, EndReason::Delete).await
    }

    async fn end_job(&self, job_id: &str, reason: EndReason) -> Result<JobRecord, QueueError> {
        enum Plan {
            Wait(watch::Receiver<bool>),
            Write(crate::registry::Durable, Box<JobRecord>, Arc<JobRecord>),
            Done(Box<JobRecord>),
        }
        let plan = {
            let mut s = lock(&self.inner.state);
            let entry = s
                .jobs
                .get_mut(job_id)
                .ok_or_else(|| QueueError::NotFound(job_id.to_string()))?;
            match (entry.rec.status, reason) {
                (Status::Running, _) => {
                    entry.end_reason = Some(match (entry.end_reason, reason) {
                        (Some(EndReason::Delete), _) => EndReason::Delete,
                        _ => reason,
                    });
                    if let Some(stop) = &entry.stop {
                        stop.cancel();
                    }
                    match &entry.done {
                        Some(done) => Plan::Wait(done.clone()),
                        None => Plan::Done(Box::new(entry.latest())),
                    }
                }
                (Status::Deleted, EndReason::Delete) => Plan::Done(Box::new(entry.latest())),
                (status, EndReason::Stop) if status.is_terminal() => {
                    return Err(QueueError::StateInvalid {
                        job_id: job_id.to_string(),
                        action: "stop",
                        current: status,
                        waiting: false,
                        allowed: vec![Status::Pending, Status::Running],
                    });
                }
                (_, _) => {
                    let prev = entry.rec.clone();
                    let was_waiting = entry.waiting;
                    let now = now_micros();
                    entry.waiting = false;
                    let r = Arc::make_mut(&mut entry.rec);
                    r.updated_at = now;
                    if reason == EndReason::Delete {
                        r.event = Event::Deleted;
                        r.status = Status::Deleted;
                    } else {
                        mark_stopped(r, Event::Stopped, "Job stopped by user", false, now);
                    }
                    let rec = JobRecord::clone(r);
                    if was_waiting {
                        s.waiting.retain(|id| id != job_id);
                    }
                    Plan::Write(
                        self.inner.registry.append(vec![rec.clone()]),
                        Box::new(rec),
                        prev,
                    )
                }
            }
        };
        match plan {
            Plan::Done(rec) => Ok(*rec),
            Plan::Write(durable, rec, prev) => match durable.await {
                Ok(()) => {
                    self.publish(std::slice::from_ref(&rec));
                    Ok(*rec)
                }
                Err(e) => {
                    let mut s = lock(&self.inner.state);
                    if let Some(entry) = s.jobs.get_mut(job_id)
                        && entry.rec.updated_at == rec.updated_at
                    {
                        entry.rec = prev;
                    }
                    Err(e.into())
                }
            },
            Plan::Wait(mut done) => {
                // A stop lands at the guest's next fuel check (well under a millisecond); the
                // bound is only for a guest stuck in a host call that cannot be interrupted.
                let _ = tokio::time::timeout(Duration::from_secs(10), done.wait_for(|d| *d)).await;
                self.get_status(job_id).map(Arc::unwrap_or_clone)
            }
        }
    }

    /// A job's current state (progress is live while it runs).
    pub fn get_status(&self, job_id: &str) -> Result<Arc<JobRecord>, QueueError> {
        let s = lock(&self.inner.state);
        s.jobs
            .get(job_id)
            .and_then(Entry::view)
            .ok_or_else(|| QueueError::NotFound(job_id.to_string()))
    }

    /// Every job in the order added, optionally only those with `status`.
    pub fn list_jobs(&self, status: Option<Status>) -> Vec<Arc<JobRecord>> {
        let s = lock(&self.inner.state);
        s.order
            .iter()
            .filter_map(|id| s.jobs.get(id))
            .filter_map(Entry::view)
            .filter(|rec| status.is_none_or(|st| rec.status == st))
            .collect()
    }

    /// A job's captured log lines (stdout, stderr, `log`) of its latest run.
    pub fn get_logs(&self, job_id: &str) -> Result<(Vec<(i64, LogLine)>, u64), QueueError> {
        let logs = {
            let s = lock(&self.inner.state);
            s.jobs
                .get(job_id)
                .map(|e| e.logs.clone())
                .ok_or_else(|| QueueError::NotFound(job_id.to_string()))?
        };
        Ok(logs.map(|l| l.snapshot()).unwrap_or_default())
    }

    /// Whether a job is running now.
    pub fn is_running(rec: &JobRecord) -> bool {
        rec.status == Status::Running
    }

    /// Counters for health reports.
    pub fn counts(&self) -> QueueCounts {
        let s = lock(&self.inner.state);
        let mut c = QueueCounts {
            total: s.jobs.len(),
            running: s.running,
            waiting: s.waiting.len(),
            ..QueueCounts::default()
        };
        for (i, st) in Status::ALL.iter().enumerate() {
            c.by_status.insert(st.as_str(), s.visible_by_status[i]);
        }
        c.unstarted = s.visible_unstarted;
        c
    }

    /// Stops taking work, stops every running job (recorded STOPPED, interrupted) and waits
    /// until every record is durable.
    pub async fn shutdown(&self) {
        let waits: Vec<watch::Receiver<bool>> = {
            let mut s = lock(&self.inner.state);
            s.accepting = false;
            s.waiting.clear();
            s.jobs
                .values_mut()
                .filter(|e| e.rec.status == Status::Running)
                .filter_map(|e| {
                    e.end_reason.get_or_insert(EndReason::Shutdown);
                    if let Some(stop) = &e.stop {
                        stop.cancel();
                    }
                    e.done.clone()
                })
                .collect()
        };
        let n = waits.len();
        for mut w in waits {
            let _ = tokio::time::timeout(Duration::from_secs(10), w.wait_for(|d| *d)).await;
        }
        if let Err(e) = self.inner.registry.append(Vec::new()).await {
            tracing::error!(error = %e, "registry flush at shutdown failed");
        }
        tracing::info!(stopped = n, "queue shut down");
    }

    /// Writes a progress record for a running job (rate-limited by the caller).
    fn persist_progress(&self, job_id: &str, run_id: u64) {
        let s = lock(&self.inner.state);
        if let Some(e) = s.jobs.get(job_id)
            && e.run_id == run_id
            && e.rec.status == Status::Running
        {
            let mut rec = e.latest();
            rec.event = Event::Progress;
            rec.updated_at = now_micros();
            // Fire and forget: a lost progress record only leaves a stale percentage.
            drop(self.inner.registry.append_linked(vec![rec], e.run_link()));
        }
    }

    /// Runs retention and compaction once (the background task calls this periodically).
    pub async fn maintain(&self) {
        retention::run(self).await;
    }

    fn inner(&self) -> &Inner {
        &self.inner
    }
}

/// What a run needs, handed from [`Queue::begin_run`] (under the table lock) to
/// [`Queue::spawn_run`] (after it), so that spawning does not look the job up again.
struct RunStart {
    /// The RUNNING record.
    rec: Arc<JobRecord>,
    live: Arc<LiveEvents>,
    stop: CancellationToken,
    run_id: u64,
}

/// What the end of a run leaves to do once the table lock is released.
struct Ended {
    /// The run's end record and its promise (none if its RUNNING record was refused).
    end: Option<(Durable, JobRecord)>,
    /// Waiting jobs whose runs began (to spawn; their RUNNING records are to publish).
    launched: Vec<RunStart>,
    /// The promise of those RUNNING records.
    launched_durable: Option<Durable>,
}

/// Makes `rec` a STOPPED record: `interrupted` says whether a run was cut short.
fn mark_stopped(rec: &mut JobRecord, event: Event, description: &str, interrupted: bool, now: i64) {
    rec.event = event;
    rec.status = Status::Stopped;
    rec.description = description.to_string();
    rec.result = Some(Json::new(
        &serde_json::json!({"status": "stopped", "interrupted": interrupted}),
    ));
    rec.completed_at = Some(now);
    rec.updated_at = now;
}

/// Turns a run's outcome into the job's terminal record.
fn apply_outcome(rec: &mut JobRecord, outcome: Outcome, reason: Option<EndReason>) {
    let now = now_micros();
    rec.updated_at = now;
    rec.completed_at = Some(now);
    let error = |kind: &str, code: &str, message: String, retryable: bool| ErrorInfo {
        kind: kind.to_string(),
        code: code.to_string(),
        message,
        retryable,
    };
    match outcome {
        Outcome::Completed(json) => {
            rec.event = Event::Completed;
            rec.status = Status::Completed;
            rec.progress = 100;
            if rec.description == "Job started" {
                rec.description = "Job completed".into();
            }
            // Kept as the guest's own text; a guest that returned text that is not JSON gets
            // it stored as a JSON string.
            rec.result = Some(
                Json::from_text(json)
                    .unwrap_or_else(|text| Json::new(&serde_json::Value::String(text))),
            );
            rec.error = None;
        }
        Outcome::Stopped => {
            let description = if reason == Some(EndReason::Shutdown) {
                "Interrupted: the host shut down"
            } else {
                "Job stopped by user"
            };
            mark_stopped(rec, Event::Stopped, description, true, now);
        }
        other => {
            let desc = other.describe();
            let info = match &other {
                Outcome::Failed(e) => error("failed", &e.code, e.message.clone(), e.retryable),
                Outcome::Trapped(m) => error("trapped", "TRAPPED", m.clone(), false),
                Outcome::StackOverflow => {
                    error("stack_overflow", "STACK_OVERFLOW", desc.clone(), false)
                }
                Outcome::OutOfFuel => error("out_of_fuel", "OUT_OF_FUEL", desc.clone(), false),
                Outcome::OutOfMemory => {
                    error("out_of_memory", "OUT_OF_MEMORY", desc.clone(), false)
                }
                Outcome::OutOfTable => error("out_of_table", "OUT_OF_TABLE", desc.clone(), false),
                Outcome::CapExceeded(cap) => error(
                    "cap_exceeded",
                    "CAP_EXCEEDED",
                    format!("the {cap} cap was hit"),
                    false,
                ),
                Outcome::TimedOut => error("timed_out", "TIMEOUT", desc.clone(), true),
                Outcome::Completed(_) | Outcome::Stopped => {
                    error("unknown", "UNKNOWN", desc.clone(), false)
                }
            };
            rec.event = Event::Failed;
            rec.status = Status::Error;
            rec.description = desc;
            rec.result = None;
            rec.error = Some(Box::new(info));
        }
    }
    if reason == Some(EndReason::Delete) {
        rec.event = Event::Deleted;
        rec.status = Status::Deleted;
    }
}
