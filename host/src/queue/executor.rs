//! The executor: runs claimed jobs on the runtime, one task each, on the jobs' own threads.
//!
//! It owns what exists only while a job runs on this host — the run's stop token, its live
//! progress, its log lines — and the slots that cap how many run at once. Producer and API
//! reserve slots before they claim, so a claim never exceeds the cap. A stop request (from the
//! store's per-host stream) cancels the matching run; the run's end goes to the completer.
//! The slot is given back when the guest ends, while its end is being written, so that a short
//! job holds a slot for one sync rather than two; at most `max` ends are in flight that way
//! (past that, a run keeps its slot until its end is recorded).

use super::completer::{Completer, run_end};
use super::events::{LiveEvents, LogBook};
use super::feed::Feed;
use crate::catalog::Catalog;
use crate::job::JobRecord;
use crate::metrics::{Metrics, RunLabels, TypeLabels};
use crate::runtime::{JobLimits, LogLine, Outcome, RunRequest, Runtime};
use crate::store::Store;
use crate::store::{Finish, RunRef, Runner, StopRequest};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::{Notify, mpsc};
use tokio_util::sync::CancellationToken;

type FastMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The run slots: at most `max` guests run at once on this host.
///
/// A run whose guest has ended gives its slot back before its end is durable (the end is
/// written in the completer's next batch), so that a short job's slot is not held for a sync;
/// at most `max` such ends are in flight, past which a run keeps its slot until its end is
/// recorded.
pub(crate) struct Slots {
    max: usize,
    used: AtomicUsize,
    ending: AtomicUsize,
}

impl Slots {
    pub(crate) fn new(max: usize) -> Self {
        Slots {
            max: max.max(1),
            used: AtomicUsize::new(0),
            ending: AtomicUsize::new(0),
        }
    }

    /// A run's guest ended: gives its slot back now if fewer than `max` ends are in flight
    /// (then [`Slots::handed_over_recorded`] follows once the end is recorded). `false`: the
    /// run keeps its slot until its end is recorded.
    pub(crate) fn hand_over(&self) -> bool {
        let took = self
            .ending
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |e| {
                (e < self.max).then_some(e + 1)
            })
            .is_ok();
        if took {
            self.release(1);
        }
        took
    }

    /// An end handed over by [`Slots::hand_over`] is recorded.
    pub(crate) fn handed_over_recorded(&self) {
        let _ = self
            .ending
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |e| {
                Some(e.saturating_sub(1))
            });
    }

    /// Takes up to `want` free slots; returns how many it took.
    pub(crate) fn reserve(&self, want: usize) -> usize {
        let mut used = self.used.load(Ordering::Acquire);
        loop {
            let take = want.min(self.max.saturating_sub(used));
            if take == 0 {
                return 0;
            }
            match self.used.compare_exchange_weak(
                used,
                used + take,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => return take,
                Err(now) => used = now,
            }
        }
    }

    /// Gives `n` slots back.
    pub(crate) fn release(&self, n: usize) {
        if n > 0 {
            let _ = self
                .used
                .fetch_update(Ordering::AcqRel, Ordering::Acquire, |u| {
                    Some(u.saturating_sub(n))
                });
        }
    }

    /// Slots in use.
    pub(crate) fn used(&self) -> usize {
        self.used.load(Ordering::Acquire)
    }

    /// The cap.
    pub(crate) fn max(&self) -> usize {
        self.max
    }
}

struct Run {
    attempt: u32,
    /// This run among the job's runs on this host (a resumed run has the attempt of the run
    /// that suspended, and may begin before that one's bookkeeping ends).
    serial: u64,
    stop: CancellationToken,
    live: Arc<LiveEvents>,
    /// Stopped by the host itself (shutdown, store lost), not by a user.
    interrupted: Arc<AtomicBool>,
    /// Where the run's end stands.
    ending: Arc<Ending>,
}

/// A run's end: being recorded, recorded.
#[derive(Default)]
struct Ending {
    ended: AtomicBool,
    recorded: AtomicBool,
    notify: Notify,
}

/// Settings the executor needs per run.
#[derive(Debug, Clone)]
pub(crate) struct ExecutorConfig {
    pub(crate) host: String,
    pub(crate) limits: JobLimits,
    pub(crate) progress_interval: Duration,
    pub(crate) max_log_lines: usize,
    pub(crate) max_concurrent: usize,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) telemetry: Option<Arc<crate::telemetry::Telemetry>>,
}

/// Runs claimed jobs.
pub(crate) struct Executor {
    cfg: ExecutorConfig,
    store: Arc<dyn Store>,
    feed: Arc<Feed>,
    catalog: Arc<Catalog>,
    runtime: Runtime,
    jobs_rt: tokio::runtime::Handle,
    completer: Completer,
    pub(crate) slots: Arc<Slots>,
    /// Raised when a slot is given back (the producer claims more).
    pub(crate) freed: Arc<Notify>,
    runs: Mutex<FastMap<String, Run>>,
    /// Runs per job type on this host (for the types' `max_concurrent`).
    by_type: Mutex<FastMap<String, usize>>,
    logs: Arc<LogBook>,
    /// Where this host answers HTTP, announced to the other hosts (set once listening).
    url: Mutex<Option<String>>,
    shutting_down: AtomicBool,
    idle: Notify,
    /// The queue, for the runs' flow contexts (set once the queue is built; a run claimed
    /// before that waits for it: see [`Executor::queue_ref`]).
    pub(crate) queue: std::sync::OnceLock<std::sync::Weak<super::Inner>>,
    /// Raised once `queue` is set.
    pub(crate) queue_set: Notify,
    serials: std::sync::atomic::AtomicU64,
}

impl Executor {
    pub(crate) fn new(
        cfg: ExecutorConfig,
        store: Arc<dyn Store>,
        feed: Arc<Feed>,
        catalog: Arc<Catalog>,
        runtime: Runtime,
        jobs_rt: tokio::runtime::Handle,
        completer: Completer,
    ) -> Arc<Self> {
        let slots = Arc::new(Slots::new(cfg.max_concurrent));
        let logs = Arc::new(LogBook::new(cfg.max_log_lines));
        let ex = Arc::new(Executor {
            cfg,
            store,
            feed,
            catalog,
            runtime,
            jobs_rt,
            completer,
            slots,
            freed: Arc::new(Notify::new()),
            runs: Mutex::new(FastMap::default()),
            by_type: Mutex::new(FastMap::default()),
            logs,
            url: Mutex::new(None),
            shutting_down: AtomicBool::new(false),
            idle: Notify::new(),
            queue: std::sync::OnceLock::new(),
            queue_set: Notify::new(),
            serials: std::sync::atomic::AtomicU64::new(0),
        });
        let stops = ex.store.stop_requests(&ex.cfg.host);
        tokio::spawn(listen_for_stops(Arc::downgrade(&ex), stops));
        ex
    }

    /// This host's id.
    pub(crate) fn host(&self) -> &str {
        &self.cfg.host
    }

    /// Where this host answers HTTP, if known.
    pub(crate) fn url(&self) -> Option<String> {
        lock(&self.url).clone()
    }

    /// Sets where this host answers HTTP.
    pub(crate) fn set_url(&self, url: String) {
        *lock(&self.url) = Some(url);
    }

    /// The job types this host has loaded.
    pub(crate) fn job_types(&self) -> Vec<String> {
        self.catalog.names()
    }

    /// How many runs of `job_type` are on this host now.
    pub(crate) fn running_of(&self, job_type: &str) -> usize {
        lock(&self.by_type).get(job_type).copied().unwrap_or(0)
    }

    /// A [`Runner`] that starts the runs of the jobs a store claims for this host.
    /// Takes up to `want` free slots for a claim (`None` if none is free).
    pub(crate) fn reserve(self: &Arc<Self>, want: usize) -> Option<Reservation> {
        Reservation::take(&self.slots, want, self.runner())
    }

    pub(crate) fn runner(self: &Arc<Self>) -> Runner {
        let executor = self.clone();
        Runner::new(move |job| executor.spawn(job))
    }

    /// Runs a claimed job (its slot is already taken).
    pub(crate) fn spawn(self: &Arc<Self>, rec: Arc<JobRecord>) {
        self.logs.begin_run(&rec.job_id);
        let live = Arc::new(LiveEvents::new(
            self.store.clone(),
            self.feed.clone(),
            self.cfg.progress_interval,
            (
                rec.job_id.clone(),
                rec.job_type.clone(),
                rec.queue.clone(),
                rec.attempt,
            ),
            self.logs.clone(),
        ));
        let stop = CancellationToken::new();
        if self.shutting_down.load(Ordering::Acquire) {
            stop.cancel();
        }
        let interrupted = Arc::new(AtomicBool::new(false));
        let ending: Arc<Ending> = Arc::default();
        let run_ending = ending.clone();
        let serial = self.serials.fetch_add(1, Ordering::Relaxed);
        lock(&self.runs).insert(
            rec.job_id.clone(),
            Run {
                attempt: rec.attempt,
                serial,
                stop: stop.clone(),
                live: live.clone(),
                interrupted: interrupted.clone(),
                ending,
            },
        );
        *lock(&self.by_type).entry(rec.job_type.clone()).or_default() += 1;
        let ex = self.clone();
        self.jobs_rt.spawn(async move {
            let began = std::time::Instant::now();
            let queue = ex.queue_ref().await;
            let flow = Some(Arc::new(super::flow::RunFlow::new(queue, &rec, &ex.cfg.host)));
            let fuel = live.clone();
            let params = super::flow::params_with_inputs(&*ex.store, &rec).await;
            let outcome = match (ex.catalog.get(&rec.job_type), params) {
                (_, Err(e)) => Outcome::Trapped(e),
                (Some(jt), Ok(params)) => {
                    let req = RunRequest {
                        job_id: rec.job_id.clone(),
                        params,
                        limits: jt.manifest.limits.apply(ex.cfg.limits),
                        events: live,
                        stop,
                        grants: jt.manifest.grants.clone(),
                        flow: flow
                            .clone()
                            .map(|f| f as Arc<dyn crate::runtime::FlowContext>),
                    };
                    match ex.runtime.run(&jt.program, req).await {
                        // The children it enqueued since its last wait are written before its
                        // end (a child is never lost to a parent that completed).
                        Outcome::Completed(json) => match &flow {
                            Some(f) => match f.write_children().await {
                                Ok(()) => Outcome::Completed(json),
                                Err(e) => Outcome::Trapped(e.to_string()),
                            },
                            None => Outcome::Completed(json),
                        },
                        other => other,
                    }
                }
                (None, Ok(_)) => Outcome::Trapped(format!(
                    "job type '{}' is no longer loaded on this host",
                    rec.job_type
                )),
            };
            tracing::debug!(job_id = %rec.job_id, attempt = rec.attempt, outcome = outcome.kind(), "job run ended");
            let kind = outcome.kind();
            ex.record_run(&rec, kind, began.elapsed(), fuel.fuel());
            let shutdown =
                ex.shutting_down.load(Ordering::Acquire) || interrupted.load(Ordering::Acquire);
            let end = Finish {
                job_id: rec.job_id.clone(),
                host: ex.cfg.host.clone(),
                attempt: rec.attempt,
                end: run_end(outcome, shutdown),
            };
            if let Some(t) = &ex.cfg.telemetry {
                let error = match &end.end {
                    crate::store::RunEnd::Failed { error, .. } => Some(error.message.as_str()),
                    _ => None,
                };
                let (logs, _) = ex.logs(&rec.job_id);
                t.run(&rec, kind, error, &logs, std::time::SystemTime::now());
            }
            run_ending.ended.store(true, Ordering::Release);
            // The guest is gone: its slot can take the next claim while the end is being
            // written, up to `max` ends in flight (so a slow store cannot let claims run away).
            let early = ex.slots.hand_over();
            if early {
                ex.freed.notify_one();
            }
            ex.completer.record(end).await;
            if early {
                ex.slots.handed_over_recorded();
            }
            run_ending.recorded.store(true, Ordering::Release);
            run_ending.notify.notify_waiters();
            {
                let mut runs = lock(&ex.runs);
                if runs.get(&rec.job_id).is_some_and(|r| r.serial == serial) {
                    runs.remove(&rec.job_id);
                }
                if runs.is_empty() {
                    ex.idle.notify_waiters();
                }
            }
            {
                let mut by_type = lock(&ex.by_type);
                if let Some(n) = by_type.get_mut(&rec.job_type) {
                    *n = n.saturating_sub(1);
                    if *n == 0 {
                        by_type.remove(&rec.job_type);
                    }
                }
            }
            if !early {
                ex.slots.release(1);
                ex.freed.notify_one();
            }
        });
    }

    /// The queue, once it is built: the services start before the queue that holds them, so
    /// the first claims of a start-up may reach here a moment before it is set.
    async fn queue_ref(&self) -> std::sync::Weak<super::Inner> {
        if let Some(q) = self.queue.get() {
            return q.clone();
        }
        loop {
            let set = self.queue_set.notified();
            tokio::pin!(set);
            set.as_mut().enable();
            if let Some(q) = self.queue.get() {
                return q.clone();
            }
            set.await;
        }
    }

    fn record_run(&self, rec: &JobRecord, outcome: &str, took: Duration, fuel: u64) {
        let m = &self.cfg.metrics;
        let ty = TypeLabels {
            job_type: rec.job_type.clone(),
        };
        m.runs
            .get_or_create(&RunLabels {
                job_type: rec.job_type.clone(),
                outcome: outcome.to_string(),
            })
            .inc();
        m.run_seconds.get_or_create(&ty).observe(took.as_secs_f64());
        if let Some(started) = rec.started_at {
            let due = rec.scheduled_at.unwrap_or(rec.created_at);
            m.wait_seconds
                .get_or_create(&ty)
                .observe((started - due).max(0) as f64 / 1e6);
        }
        if fuel > 0 {
            m.fuel.get_or_create(&ty).inc_by(fuel);
        }
    }

    /// Live progress of a job that runs here in run `attempt`.
    pub(crate) fn live_progress(&self, job_id: &str, attempt: u32) -> Option<(u8, String)> {
        let live = lock(&self.runs)
            .get(job_id)
            .filter(|r| r.attempt == attempt)
            .map(|r| r.live.clone())?;
        Some(live.progress())
    }

    /// If run `attempt` of the job has ended here and its end is being recorded: a wait for the
    /// record (a status read then answers the end rather than RUNNING, one sync later).
    pub(crate) fn ending(
        &self,
        job_id: &str,
        attempt: u32,
    ) -> Option<impl std::future::Future<Output = ()> + use<>> {
        let e = lock(&self.runs)
            .get(job_id)
            .filter(|r| r.attempt == attempt)
            .map(|r| r.ending.clone())?;
        if !e.ended.load(Ordering::Acquire) {
            return None;
        }
        Some(async move {
            let recorded = e.notify.notified();
            tokio::pin!(recorded);
            recorded.as_mut().enable();
            if !e.recorded.load(Ordering::Acquire) {
                recorded.await;
            }
        })
    }

    /// The log lines of a job's latest run on this host.
    pub(crate) fn logs(&self, job_id: &str) -> (Vec<(i64, LogLine)>, u64) {
        self.logs.snapshot(job_id)
    }

    /// Forgets the logs of purged jobs.
    pub(crate) fn forget(&self, job_ids: &[String]) {
        self.logs.forget(job_ids);
    }

    /// Cancels run `attempt` of a job, if it runs here.
    pub(crate) fn cancel(&self, job_id: &str, attempt: u32) {
        if let Some(r) = lock(&self.runs).get(job_id)
            && r.attempt == attempt
        {
            r.stop.cancel();
        }
    }

    /// Stops every run as interrupted (this host lost the store past its leases); returns how
    /// many. Their ends are recorded when the store is back, unless another host has taken the
    /// runs over meanwhile (then the compare-and-set drops them).
    pub(crate) fn interrupt_all(&self) -> usize {
        let runs = lock(&self.runs);
        for r in runs.values() {
            r.interrupted.store(true, Ordering::Release);
            r.stop.cancel();
        }
        runs.len()
    }

    /// The runs this host holds (a run is held until its end is recorded), for the
    /// heartbeat.
    pub(crate) fn held(&self) -> Vec<RunRef> {
        lock(&self.runs)
            .iter()
            .map(|(id, r)| RunRef {
                job_id: id.clone(),
                attempt: r.attempt,
            })
            .collect()
    }

    /// Jobs running here now.
    pub(crate) fn running(&self) -> usize {
        lock(&self.runs).len()
    }

    /// Stops every run (each recorded as interrupted by the shutdown) and waits until their
    /// ends are recorded, at most `within`.
    pub(crate) async fn shutdown(&self, within: Duration) -> usize {
        self.shutting_down.store(true, Ordering::Release);
        let n = {
            let runs = lock(&self.runs);
            for r in runs.values() {
                r.stop.cancel();
            }
            runs.len()
        };
        let _ = tokio::time::timeout(within, async {
            loop {
                let idle = self.idle.notified();
                if lock(&self.runs).is_empty() {
                    break;
                }
                idle.await;
            }
        })
        .await;
        n
    }
}

async fn listen_for_stops(
    ex: std::sync::Weak<Executor>,
    mut stops: mpsc::UnboundedReceiver<StopRequest>,
) {
    while let Some(req) = stops.recv().await {
        let Some(ex) = ex.upgrade() else { break };
        ex.cancel(&req.job_id, req.attempt);
    }
}

/// Slots taken for a claim. The claim's runner starts each job the store claims, and that run
/// keeps its slot; dropping the reservation gives back the slots no claimed job took. One
/// guard, so that no path (an error, an early return, a claim that found less) can keep slots
/// no run holds.
pub(crate) struct Reservation {
    slots: Arc<Slots>,
    taken: usize,
    runner: Runner,
}

impl Reservation {
    /// Takes up to `want` free slots for jobs `runner` will start (`None` if none is free).
    fn take(slots: &Arc<Slots>, want: usize, runner: Runner) -> Option<Reservation> {
        let taken = slots.reserve(want);
        (taken > 0).then(|| Reservation {
            slots: slots.clone(),
            taken,
            runner,
        })
    }

    /// Slots taken.
    pub(crate) fn len(&self) -> usize {
        self.taken
    }

    /// The runner to put in the claimant: it starts each claimed job in one of these slots.
    pub(crate) fn runner(&self) -> Runner {
        self.runner.clone()
    }

    /// Slots no claimed job has taken (so far).
    pub(crate) fn unused(&self) -> usize {
        self.taken.saturating_sub(self.runner.handed())
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        self.slots.release(self.unused());
    }
}

#[cfg(test)]
mod tests {
    use super::{Reservation, Slots};
    use crate::store::Runner;
    use std::sync::Arc;

    /// A reservation gives back on drop exactly the slots its runner was not handed jobs for,
    /// on every path (a claim that found fewer, none, or failed).
    #[test]
    fn a_reservation_gives_back_what_no_claimed_job_took() {
        let slots = Arc::new(Slots::new(4));
        let none = Runner::new(|_| {});
        assert!(Reservation::take(&slots, 0, none.clone()).is_none());

        let runner = Runner::new(|_| {});
        let r = Reservation::take(&slots, 3, runner.clone()).expect("free slots");
        assert_eq!((r.len(), slots.used()), (3, 3));
        runner.hand(Arc::new(crate::job::JobRecord::default()));
        assert_eq!(r.unused(), 2);
        drop(r);
        assert_eq!(
            slots.used(),
            1,
            "the run keeps its slot, the two others come back"
        );

        // Fewer free than wanted: it takes what there is, and gives all back when unused.
        let r = Reservation::take(&slots, 10, Runner::new(|_| {})).expect("free slots");
        assert_eq!((r.len(), slots.used()), (3, 4));
        assert!(Reservation::take(&slots, 1, none).is_none(), "full");
        drop(r);
        assert_eq!(slots.used(), 1);
    }

    #[test]
    fn an_ended_run_hands_its_slot_over_up_to_max_ends_in_flight() {
        let s = Slots::new(2);
        assert_eq!(s.reserve(5), 2);
        assert_eq!(s.reserve(1), 0, "full");
        // Both guests end; both ends are in flight: both slots are free for new claims.
        assert!(s.hand_over());
        assert!(s.hand_over());
        assert_eq!(s.used(), 0);
        assert_eq!(s.reserve(5), 2);
        // Two more end while the first two ends are still being written: they keep their slots.
        assert!(!s.hand_over());
        assert_eq!(s.used(), 2);
        s.handed_over_recorded();
        assert!(s.hand_over(), "one end recorded: room for one more");
        assert_eq!(s.used(), 1);
    }
}
