//! The periodic service: enqueues the slots of schedules, on the leader only.
//!
//! It wakes at the earliest next slot of any schedule (at most a second apart, so that a
//! schedule declared on another host is seen), reads the schedules, decides each one's look
//! ([`crate::schedule::plan`]) and hands the store every move at once ([`ScheduleStore::fire`]):
//! one durable write for all the schedules due at that second. The store's compare-and-set on
//! each cursor is what makes a slot enqueued exactly once; leadership only keeps the other
//! hosts from doing the same work in vain. It also keeps the schedules declared in manifests
//! (`[[schedules]]`) in step with the catalog (created, changed, removed as the files change).
//!
//! [`ScheduleStore::fire`]: crate::store::ScheduleStore::fire

use crate::catalog::Catalog;
use crate::job::{Json, now_micros};
use crate::metrics::Metrics;
use crate::schedule::{
    self, Firing, Origin, Overlap, ScheduleRecord, ScheduleSpec, SlotRef, Timetable,
};
use crate::store::{Fired, NewJob, PutSchedule, Store};
use futures::StreamExt;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;

/// Longest sleep between two looks.
const MAX_SLEEP: Duration = Duration::from_secs(1);
/// Most firings in one store write (the writes of one look go out concurrently).
const FIRINGS_PER_WRITE: usize = 1_000;
/// A look longer than this is logged with where its time went.
const SLOW_LOOK: Duration = Duration::from_millis(100);
/// How long the leader trusts what it knows of the schedules before reading them again (a
/// change made on another host shows within this; a firing the store refuses makes it read
/// them at once).
const RELOAD: Duration = Duration::from_secs(5);

/// The service's settings.
pub(crate) struct Periodic {
    pub store: Arc<dyn Store>,
    pub catalog: Arc<Catalog>,
    pub host: String,
    /// How long a won leadership lasts without renewal.
    pub term: Duration,
    /// The store's signal that a schedule was declared, changed or deleted (by any host).
    pub changed: Arc<Notify>,
    pub metrics: Arc<Metrics>,
    /// `max_attempts` of a job whose schedule and type set none.
    pub default_max_attempts: u32,
}

/// Compiled timetables, by expression and zone: schedules written alike share one and walk
/// one calendar (see [`Timetable`]'s memo).
#[derive(Default)]
struct Timetables(HashMap<(String, String), Option<Arc<Timetable>>>);

impl Timetables {
    fn get(&mut self, spec: &ScheduleSpec) -> Option<Arc<Timetable>> {
        let key = (spec.cron.clone(), spec.timezone.clone());
        if let Some(t) = self.0.get(&key) {
            return t.clone();
        }
        let t = match spec.timetable() {
            Ok(t) => Some(Arc::new(t)),
            Err(e) => {
                tracing::warn!(schedule = %spec.name, error = %e, "schedule cannot run");
                None
            }
        };
        // Expressions no schedule uses any more are let go now and then.
        if self.0.len() > 100_000 {
            self.0.clear();
        }
        self.0.insert(key, t.clone());
        t
    }
}

/// What the leader knows of the schedules between two reads of the store: each record as its
/// last firing left it, and when each is next due. A look plans only the schedules that are
/// due, so a second with nothing due costs a map walk, and one with ten thousand due costs
/// ten thousand plans and one write per thousand.
#[derive(Default)]
struct Cache {
    recs: HashMap<String, ScheduleRecord>,
    /// When each schedule is next worth a look (µs); absent: look now.
    next: HashMap<String, i64>,
    /// When the store was last read.
    read_at: Option<tokio::time::Instant>,
    /// Read the store at the next look (a firing refused, a change on this host).
    stale: bool,
}

impl Cache {
    fn fresh(&self) -> bool {
        !self.stale && self.read_at.is_some_and(|t| t.elapsed() < RELOAD)
    }
}

impl Periodic {
    /// Runs until the task is aborted.
    pub(crate) async fn run(self) {
        let mut timetables = Timetables::default();
        let mut cache = Cache::default();
        let mut catalog_seen: Option<u64> = None;
        let mut changes = self.catalog.changes();
        loop {
            let changed = self.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            let leading = match self.store.lead(&self.host, self.term).await {
                Ok(l) => l,
                Err(e) => {
                    tracing::warn!(error = %e, "leader election failed: schedules wait");
                    false
                }
            };
            let mut sleep = MAX_SLEEP;
            if leading {
                let generation = *changes.borrow_and_update();
                let reconcile = catalog_seen != Some(generation);
                if reconcile
                    && let Err(e) = super::queues::reconcile(&*self.store, &self.catalog).await
                {
                    tracing::warn!(error = %e, "queues declared in manifests not stored");
                }
                match self.look(&mut timetables, &mut cache, reconcile).await {
                    Ok(next) => {
                        if reconcile {
                            catalog_seen = Some(generation);
                        }
                        if let Some(next) = next {
                            let wait = next.saturating_sub(now_micros()).max(0) as u64;
                            sleep = Duration::from_micros(wait).min(MAX_SLEEP);
                        }
                    }
                    Err(e) => {
                        cache.stale = true;
                        tracing::warn!(error = %e, "schedules: look failed");
                    }
                }
            } else {
                // Another host leads: what this one knew may be stale when it leads again.
                cache.stale = true;
            }
            tokio::select! {
                _ = tokio::time::sleep(sleep) => {}
                _ = &mut changed => cache.stale = true,
                _ = changes.changed() => {}
            }
        }
    }

    /// One look: fires what is due; the earliest next time worth a look.
    async fn look(
        &self,
        timetables: &mut Timetables,
        cache: &mut Cache,
        reconcile: bool,
    ) -> Result<Option<i64>, crate::store::StoreError> {
        let began = std::time::Instant::now();
        if reconcile || !cache.fresh() {
            let mut recs = self.store.schedules().await?;
            if reconcile && self.reconcile(&recs).await {
                recs = self.store.schedules().await?;
            }
            cache.recs = recs.into_iter().map(|r| (r.spec.name.clone(), r)).collect();
            cache.next.clear();
            cache.read_at = Some(tokio::time::Instant::now());
            cache.stale = false;
        }
        let now = now_micros();
        let mut next: Option<i64> = None;
        let mut soonest = |n: i64| next = Some(next.map_or(n, |m: i64| m.min(n)));
        // The schedules due now; of them, those whose last job's liveness matters.
        let due: Vec<&ScheduleRecord> = cache
            .recs
            .values()
            .filter(|r| match cache.next.get(&r.spec.name) {
                Some(&n) if n > now => {
                    soonest(n);
                    false
                }
                _ => true,
            })
            .collect();
        let asks: Vec<String> = due
            .iter()
            .filter(|r| r.spec.overlap != Overlap::Allow)
            .filter_map(|r| r.last_job_id.clone())
            .collect();
        // Read concurrently (the store batches concurrent reads).
        let store = &self.store;
        let live: std::collections::HashSet<String> = futures::stream::iter(asks)
            .map(|id| async move { store.get(&id).await })
            .buffer_unordered(512)
            .collect::<Vec<_>>()
            .await
            .into_iter()
            .filter_map(|r| r.ok().flatten())
            .filter(|j| !j.status.is_terminal())
            .map(|j| j.job_id.clone())
            .collect();
        let mut firings = Vec::new();
        let mut nexts: Vec<(String, i64)> = Vec::with_capacity(due.len());
        for r in due {
            let Some(t) = timetables.get(&r.spec) else {
                nexts.push((r.spec.name.clone(), i64::MAX));
                continue;
            };
            let is_live = r.last_job_id.as_ref().is_some_and(|id| live.contains(id));
            let p = schedule::plan(r, &t, now, is_live);
            // A slot waiting behind a live run is looked at again each second.
            let n = match (p.queued, p.next) {
                (Some(_), n) => n.map_or(now + 1_000_000, |n| n.min(now + 1_000_000)),
                (None, Some(n)) => n,
                (None, None) => i64::MAX,
            };
            nexts.push((r.spec.name.clone(), n));
            if n < i64::MAX {
                soonest(n);
            }
            if !p.moves(r) {
                continue;
            }
            let defaults = self.defaults(&r.spec);
            let jobs = p
                .fire
                .iter()
                .map(|&slot| job_for(&r.spec, slot, &defaults))
                .collect();
            firings.push(Firing {
                name: r.spec.name.clone(),
                expect: r.cursor,
                cursor: p.cursor,
                queued: p.queued,
                jobs,
                skipped: p.skipped,
            });
        }
        cache.next.extend(nexts);
        if firings.is_empty() {
            return Ok(next);
        }
        let planned = began.elapsed();
        let count = firings.len();
        // Disjoint sets of schedules, written concurrently (each a transaction of its own).
        let mut batches = Vec::new();
        while !firings.is_empty() {
            let rest = firings.split_off(firings.len().min(FIRINGS_PER_WRITE));
            batches.push(std::mem::replace(&mut firings, rest));
        }
        let results = futures::future::join_all(batches.into_iter().map(|batch| async move {
            let out = self.store.fire(batch.clone()).await;
            (batch, out)
        }))
        .await;
        let mut first_err = None;
        for (batch, out) in results {
            match out {
                Ok(fired) => {
                    let happened: HashMap<&str, &Fired> =
                        fired.iter().map(|f| (f.name.as_str(), f)).collect();
                    for f in &batch {
                        match (happened.get(f.name.as_str()), cache.recs.get(&f.name)) {
                            (Some(done), Some(rec)) => {
                                let ids: Vec<String> =
                                    done.jobs.iter().map(|j| j.job_id.clone()).collect();
                                let new = schedule::fired(rec, f, &ids);
                                cache.recs.insert(f.name.clone(), new);
                            }
                            // Refused (moved by another host, changed, paused, deleted): read
                            // the store again at the next look.
                            _ => cache.stale = true,
                        }
                    }
                    for job in fired.iter().flat_map(|f| &f.jobs) {
                        if let Some(s) = &job.schedule {
                            let lag = job.created_at.saturating_sub(s.slot).max(0) as u64;
                            self.metrics.schedule_fired(Duration::from_micros(lag));
                        }
                    }
                }
                Err(e) => {
                    cache.stale = true;
                    first_err.get_or_insert(e);
                }
            }
        }
        let took = began.elapsed();
        tracing::debug!(
            schedules = count,
            read_and_plan_ms = planned.as_secs_f64() * 1e3,
            write_ms = (took - planned).as_secs_f64() * 1e3,
            "schedules: a look"
        );
        if took > SLOW_LOOK {
            tracing::info!(
                schedules = count,
                read_and_plan_ms = planned.as_secs_f64() * 1e3,
                write_ms = (took - planned).as_secs_f64() * 1e3,
                "schedules: a slow look"
            );
        }
        match first_err {
            Some(e) => Err(e),
            None => Ok(next),
        }
    }

    /// Brings the schedules declared in manifests in step with the catalog: creates the new,
    /// rewrites the changed (their cursor kept unless the timing changed), deletes those whose
    /// manifest no longer declares them. A manifest's `enabled` applies when the schedule is
    /// created; afterwards pause and resume are the operator's. Whether anything changed.
    async fn reconcile(&self, stored: &[ScheduleRecord]) -> bool {
        let (types, _) = self.catalog.list();
        let now = now_micros();
        let mut declared: HashMap<String, ScheduleSpec> = HashMap::new();
        for jt in &types {
            for s in &jt.manifest.schedules {
                let mut spec = s.clone();
                spec.job_type = jt.name.clone();
                if let Some(err) = jt.validator.iter_errors(&spec.params.to_value()).next() {
                    tracing::warn!(schedule = %spec.name, job_type = %jt.name, error = %err,
                        "manifest schedule's params do not fit the job type's schema: not scheduled");
                    continue;
                }
                declared.insert(spec.name.clone(), spec);
            }
        }
        let loaded: std::collections::HashSet<&str> =
            types.iter().map(|t| t.name.as_str()).collect();
        let mut any = false;
        for (name, spec) in &declared {
            let old = stored.iter().find(|r| &r.spec.name == name);
            let (mode, rec) = match old {
                Some(o) if o.origin == Origin::Api => {
                    tracing::warn!(schedule = %name, "a manifest declares a schedule whose name one added through the API holds: the API's is kept");
                    continue;
                }
                Some(o) => {
                    let mut want = spec.clone();
                    want.enabled = o.spec.enabled;
                    if want == o.spec {
                        continue;
                    }
                    let reset = want.cron != o.spec.cron || want.timezone != o.spec.timezone;
                    (
                        PutSchedule::Replace { reset },
                        ScheduleRecord {
                            spec: want,
                            cursor: now,
                            updated_at: now,
                            ..o.clone()
                        },
                    )
                }
                None => (
                    PutSchedule::Create,
                    ScheduleRecord::declared(spec.clone(), Origin::Manifest, now),
                ),
            };
            match self.store.put_schedule(rec, mode).await {
                Ok(_) => any = true,
                Err(e) => {
                    tracing::warn!(schedule = %name, error = %e, "manifest schedule not stored")
                }
            }
        }
        // A manifest schedule of a loaded type that its manifest no longer declares is gone
        // (one of a type this host has not loaded may belong to another host's catalog).
        for r in stored {
            if r.origin == Origin::Manifest
                && loaded.contains(r.spec.job_type.as_str())
                && !declared.contains_key(&r.spec.name)
            {
                match self.store.delete_schedule(&r.spec.name).await {
                    Ok(_) => any = true,
                    Err(e) => {
                        tracing::warn!(schedule = %r.spec.name, error = %e, "manifest schedule not deleted")
                    }
                }
            }
        }
        any
    }
}

impl Periodic {
    /// A schedule's jobs' priority, attempts and queue: the schedule's, else its type's
    /// manifest's, else (priority) its queue's, else 0 and the host's `--max-attempts` (as for
    /// a job added without them).
    fn defaults(&self, spec: &ScheduleSpec) -> Defaults {
        let jt = self.catalog.get(&spec.job_type);
        let (p, a) = jt.as_ref().map_or((None, None), |jt| {
            (jt.manifest.limits.priority, jt.manifest.limits.max_attempts)
        });
        let queue = jt
            .as_ref()
            .and_then(|jt| jt.manifest.queue.as_ref().map(|q| q.name.clone()))
            .unwrap_or_else(|| crate::limits::DEFAULT_QUEUE.to_string());
        let priority = spec
            .priority
            .or(p)
            .or_else(|| {
                self.store
                    .queue_specs()
                    .get(&queue)
                    .and_then(|q| q.priority)
            })
            .unwrap_or(0);
        Defaults {
            priority,
            max_attempts: spec
                .max_attempts
                .or(a)
                .unwrap_or(self.default_max_attempts)
                .max(1),
            queue,
        }
    }
}

/// What a schedule's jobs get when the schedule says nothing.
struct Defaults {
    priority: i32,
    max_attempts: u32,
    queue: String,
}

/// The job a schedule enqueues for `slot`, with its priority and attempts.
fn job_for(spec: &ScheduleSpec, slot: i64, d: &Defaults) -> NewJob {
    NewJob {
        job_id: schedule::job_id_for(&spec.name, slot),
        job_type: spec.job_type.clone(),
        params: if spec.params == Json::null() {
            Json::new(&serde_json::json!({}))
        } else {
            spec.params.clone()
        },
        priority: d.priority,
        max_attempts: d.max_attempts,
        run_at: None,
        unique_key: None,
        start: true,
        queue: d.queue.clone(),
        concurrency_key: None,
        as_command: false,
        added_by: None,
        traceparent: None,
        parent: None,
        depends_on: Vec::new(),
        on_dependency_failure: crate::job::DepPolicy::Fail,
        schedule: Some(SlotRef {
            name: spec.name.clone(),
            slot,
        }),
    }
}
