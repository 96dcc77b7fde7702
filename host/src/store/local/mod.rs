//! The local job store: one host, an in-memory table in front of the crash-safe JSONL journal.
//!
//! Why memory first: every read (`get_status`, `list_jobs`, counts) is a lookup under one short
//! lock, and a million jobs are ready within two seconds of a restart. Every change is applied
//! to the table (through [`super::transitions`]), its record enqueued to the journal
//! under the same lock — which gives the journal the table's order — and the call resolves once
//! the journal has synced it (group commit). Readers see only durable state: each entry keeps
//! the latest record (`rec`, what the next transition builds on) apart from the last durable
//! one (`visible`). A write that fails is undone (the entry goes back to the record before it,
//! unless a later change built on it already), so a refused call changes nothing.
//!
//! A claimed job is handed to the claimant's [`super::Runner`] as soon as its claim is queued,
//! before it is durable: the journal stores the job's later writes only after the claim, and
//! only if the claim was stored ([`Link::after`]). A failed claim is undone with whatever its
//! run wrote on top of it, and the run is asked to stop.
//!
//! Indexes kept beside the table: runnable jobs that are due (by priority, scheduled time,
//! insertion), runnable jobs not yet due (by time), running jobs, unique keys, and per-status
//! counters, so that claims, the scheduler, heartbeats and health never walk the table.

pub mod journal;
pub mod jsonl;
mod queues;
pub(crate) use queues::replace as replace_queue;
mod replay;
mod runahead;
mod schedules;
mod table;

use table::{Applied, Counters, DueKey, Entry, PendingClaim, State, status_index};

use super::channels::Channels;
use super::transitions::{self, Stop};
use super::{
    Capabilities, Change, Claimant, Cluster, Counts, Finish, InsertOutcome, Inserted, JobStore,
    ListQuery, NewJob, Order, Page, Retention, RetryPolicy, RunRef, StartOutcome, StopOutcome,
    StopRequest, StoreChannels, StoreError, StoreFuture,
};
use crate::job::{Event, JobRecord, Status, StopKind, now_micros};
use crate::store::StoreStats;
use journal::{Commit, CommitState, Durable, Journal, Link};
use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::{Notify, broadcast, mpsc};

type FastMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

/// Settings of the local store.
#[derive(Debug, Clone)]
pub struct LocalConfig {
    /// Compact the journal when it holds more than this many times the live records…
    pub compact_ratio: u64,
    /// …and at least this many records.
    pub compact_min_records: u64,
    /// Retry timing for runs found interrupted at open.
    pub retry: RetryPolicy,
    /// Where the schedules of periodic jobs are kept (`None`: in memory only).
    pub schedules_file: Option<std::path::PathBuf>,
    /// Where the named queues' settings are kept (`None`: in memory only).
    pub queues_file: Option<std::path::PathBuf>,
}

impl Default for LocalConfig {
    fn default() -> Self {
        LocalConfig {
            compact_ratio: 4,
            compact_min_records: 10_000,
            retry: RetryPolicy::default(),
            schedules_file: None,
            queues_file: None,
        }
    }
}

/// What open found and did.
#[derive(Debug, Clone, Default)]
pub struct OpenReport {
    /// Jobs loaded.
    pub jobs: usize,
    /// Runs found RUNNING (their host died): rescued.
    pub rescued: usize,
    /// Runnable jobs (they run again as slots allow).
    pub runnable: usize,
}

struct Inner {
    state: Mutex<State>,
    journal: Arc<dyn Journal>,
    /// The feed, the stop requests, the runnable signal.
    channels: Channels,
    cfg: LocalConfig,
    hasher: foldhash::fast::RandomState,
    /// The schedules of periodic jobs (one writer at a time: the periodic service, the API).
    schedules: tokio::sync::Mutex<schedules::Book>,
    /// The named queues' settings (one writer at a time; the claims read the copy in the
    /// table's state).
    queues: tokio::sync::Mutex<queues::QueueBook>,
}

/// The local job store. Cheap to clone.
#[derive(Clone)]
pub struct LocalStore {
    inner: Arc<Inner>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // The table holds plain data: a panic elsewhere cannot leave it half-updated in a way that
    // matters more than refusing every later call would.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl LocalStore {
    fn unit(&self, job_id: &str, now: i64) -> f64 {
        unit(&self.inner.hasher, job_id, now)
    }

    /// Claims for `claimant` among `candidates` (due keys), applying the claim transition.
    fn claim_keys(
        s: &mut State,
        keys: Vec<DueKey>,
        claimant: &Claimant,
        now: i64,
        applied: &mut Vec<Applied>,
    ) {
        let lease_until = now.saturating_add(claimant.lease.as_micros() as i64);
        for (_, _, seq) in keys {
            let Some(id) = s.id_of(seq).cloned() else {
                continue;
            };
            let Some(rec) = s.jobs.get(&id).map(|e| e.rec.clone()) else {
                continue;
            };
            let new = Arc::new(transitions::claim(
                &rec,
                &claimant.host,
                claimant.code_of(&rec.job_type),
                lease_until,
                now,
            ));
            let before = applied.len();
            s.apply(id, new, now, applied);
            for a in &mut applied[before..] {
                a.claim = true;
            }
        }
    }

    fn view(&self, job_id: &str) -> Option<Arc<JobRecord>> {
        lock(&self.inner.state)
            .jobs
            .get(job_id)
            .and_then(|e| e.visible.clone())
    }
}

/// Tells the jobs that wait on the jobs the changes in `applied` ended — their parents (a
/// child counted off) and their dependents (a dependency counted off, or their policy) — in
/// the same durable step, so that no end is counted twice or lost; a dependent that ends
/// because of it tells its own, and so on.
fn count_off_children(s: &mut State, applied: &mut Vec<Applied>, now: i64) {
    let mut i = 0;
    while i < applied.len() {
        let ended = applied[i].new.clone();
        let waiters: Vec<String> = transitions::ended_waiters(applied[i].prev.as_deref(), &ended)
            .into_iter()
            .map(str::to_string)
            .collect();
        for w in waiters {
            let Some(rec) = s.jobs.get(&w).map(|e| e.rec.clone()) else {
                continue;
            };
            if let Some(next) = transitions::tell_waiter(&rec, &ended, now) {
                s.apply(w, Arc::new(next), now, applied);
            }
        }
        i += 1;
    }
}

fn unit(hasher: &foldhash::fast::RandomState, job_id: &str, now: i64) -> f64 {
    super::jitter_unit(hasher, job_id, now)
}

impl JobStore for LocalStore {
    fn has_due<'a>(&'a self, job_types: &'a [String]) -> StoreFuture<'a, bool> {
        // A claim that finds nothing costs one look at an in-memory index: the producer may
        // as well claim at once.
        let _ = job_types;
        Box::pin(std::future::ready(Ok(true)))
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            claim_linger: Duration::ZERO,
        }
    }

    fn insert_many(
        &self,
        jobs: Vec<NewJob>,
        claim: Option<Claimant>,
    ) -> StoreFuture<'_, InsertOutcome> {
        Box::pin(async move {
            let now = now_micros();
            let mut applied: Vec<Applied> = Vec::with_capacity(jobs.len());
            let mut results: Vec<Result<usize, Arc<JobRecord>>> = Vec::with_capacity(jobs.len());
            let mut claim_order: Vec<usize> = Vec::new();
            let durable = {
                let mut s = lock(&self.inner.state);
                // Check the whole batch before changing anything.
                let mut ids: FastMap<&str, usize> = FastMap::default();
                for (i, j) in jobs.iter().enumerate() {
                    if ids.insert(j.job_id.as_str(), i).is_some() {
                        return Err(StoreError::DuplicateInBatch {
                            index: i,
                            job_id: j.job_id.clone(),
                        });
                    }
                    if s.jobs.get(&j.job_id).is_some_and(|e| {
                        e.rec.status != Status::Deleted && !transitions::same_child(&e.rec, j)
                    }) {
                        return Err(StoreError::AlreadyExists(j.job_id.clone()));
                    }
                    for d in &j.depends_on {
                        let earlier = ids.get(d.job_id.as_str()).is_some_and(|&k| k < i);
                        if !earlier && !s.jobs.contains_key(&d.job_id) {
                            return Err(StoreError::UnknownDependency {
                                job_id: j.job_id.clone(),
                                dependency: d.job_id.clone(),
                            });
                        }
                    }
                }
                let mut new_seqs = Vec::new();
                let mut by_seq: FastMap<u64, usize> = FastMap::default();
                // Dependencies told of their new dependents (applied after the batch's jobs).
                let mut link: Vec<(String, String)> = Vec::new();
                for j in &jobs {
                    // A re-run of the parent enqueues the same child: the job there is it.
                    if let Some(e) = s.jobs.get(&j.job_id)
                        && transitions::same_child(&e.rec, j)
                    {
                        results.push(Err(e.rec.clone()));
                        continue;
                    }
                    if let Some(key) = &j.unique_key
                        && let Some(holder) = s.unique.get(key).cloned()
                    {
                        // Held by a job of this batch (then it is not visible yet) or an
                        // earlier one.
                        let rec = s.jobs.get(&holder).map(|e| e.rec.clone());
                        match rec {
                            Some(rec) => {
                                results.push(Err(rec));
                                continue;
                            }
                            None => {
                                s.unique.remove(key);
                            }
                        }
                    }
                    let mut rec = Arc::new(transitions::insert(j, now));
                    if !j.depends_on.is_empty() {
                        let deps: Vec<Arc<JobRecord>> = j
                            .depends_on
                            .iter()
                            .filter_map(|d| s.jobs.get(&d.job_id).map(|e| e.rec.clone()))
                            .collect();
                        let refs: Vec<&JobRecord> = deps.iter().map(|d| &**d).collect();
                        rec = Arc::new(transitions::await_dependencies((*rec).clone(), &refs, now));
                        if rec.waiting_for.is_some() {
                            for d in deps.iter().filter(|d| !d.status.is_terminal()) {
                                link.push((d.job_id.clone(), j.job_id.clone()));
                            }
                        }
                    }
                    s.next_ver += 1;
                    let ver = s.next_ver;
                    let (seq, prev, visible, visible_ver) = match s.jobs.remove(&j.job_id) {
                        // Re-adding a deleted job keeps its place; readers see it DELETED
                        // until the new one is durable.
                        Some(old) => {
                            s.unindex(old.seq, &old.rec);
                            (old.seq, Some(old.rec), old.visible, old.visible_ver)
                        }
                        None => {
                            s.next_seq += 1;
                            let seq = s.next_seq;
                            s.order.insert(seq, j.job_id.clone());
                            (seq, None, None, 0)
                        }
                    };
                    s.index(seq, &rec, now);
                    s.jobs.insert(
                        j.job_id.clone(),
                        Entry {
                            rec: rec.clone(),
                            visible,
                            ver,
                            visible_ver,
                            seq,
                            claim: None,
                        },
                    );
                    new_seqs.push(seq);
                    by_seq.insert(seq, applied.len());
                    results.push(Ok(applied.len()));
                    applied.push(Applied {
                        job_id: j.job_id.clone(),
                        new: rec,
                        prev,
                        ver,
                        claim: false,
                    });
                }
                if let Some(c) = &claim {
                    new_seqs.sort_unstable();
                    let keys = Self::pick(&mut s, c, c.max, Some(&new_seqs), now);
                    let mut extra = Vec::new();
                    Self::claim_keys(&mut s, keys, c, now, &mut extra);
                    // Claimed jobs replace their insert in `applied` (one record per job).
                    for a in extra {
                        let i = s
                            .jobs
                            .get(&a.job_id)
                            .and_then(|e| by_seq.get(&e.seq))
                            .copied();
                        if let Some(i) = i {
                            claim_order.push(i);
                            applied[i].new = a.new;
                            applied[i].ver = a.ver;
                            applied[i].claim = true;
                        }
                    }
                }
                for (dep, dependent) in link {
                    if let Some(rec) = s.jobs.get(&dep).map(|e| e.rec.clone()) {
                        let linked = Arc::new(transitions::add_dependent(&rec, &dependent));
                        s.apply(dep, linked, now, &mut applied);
                    }
                }
                if applied.is_empty() {
                    None
                } else {
                    Some(self.write(&mut s, &applied))
                }
            };
            if let Some(d) = durable {
                self.settle_claims(d, &applied, claim.as_ref()).await?;
            }
            let mut out = InsertOutcome::default();
            for r in results {
                match r {
                    Ok(i) => {
                        let job = applied[i].new.clone();
                        out.jobs.push(Inserted {
                            job,
                            duplicate: false,
                        });
                    }
                    Err(holder) => {
                        let job = self.view(&holder.job_id).unwrap_or(holder);
                        out.jobs.push(Inserted {
                            job,
                            duplicate: true,
                        });
                    }
                }
            }
            for i in claim_order {
                out.claimed.push(applied[i].new.clone());
            }
            if out
                .jobs
                .iter()
                .any(|j| !j.duplicate && transitions::is_runnable(&j.job))
            {
                self.inner.channels.wake();
            }
            Ok(out)
        })
    }

    fn start<'a>(
        &'a self,
        job_id: &'a str,
        claim: Option<Claimant>,
        by: Option<&'a str>,
    ) -> StoreFuture<'a, StartOutcome> {
        Box::pin(async move {
            let now = now_micros();
            let (durable, applied) = {
                let mut s = lock(&self.inner.state);
                let rec = s
                    .jobs
                    .get(job_id)
                    .map(|e| e.rec.clone())
                    .ok_or_else(|| StoreError::NotFound(job_id.to_string()))?;
                let started = Arc::new(transitions::start(&rec, now, by)?);
                let Some((prev, ver)) = s.replace(job_id, started.clone(), now) else {
                    return Err(StoreError::NotFound(job_id.to_string()));
                };
                let mut applied = vec![Applied {
                    job_id: job_id.to_string(),
                    new: started,
                    prev: Some(prev),
                    ver,
                    claim: false,
                }];
                if let Some(c) = &claim
                    && let Some(seq) = s.jobs.get(job_id).map(|e| e.seq)
                {
                    let keys = Self::pick(&mut s, c, 1, Some(&[seq]), now);
                    let mut claimed = Vec::new();
                    Self::claim_keys(&mut s, keys, c, now, &mut claimed);
                    if let Some(a) = claimed.pop() {
                        applied[0].new = a.new;
                        applied[0].ver = a.ver;
                        applied[0].claim = true;
                    }
                }
                (self.write(&mut s, &applied), applied)
            };
            let job = applied[0].new.clone();
            self.settle_claims(durable, &applied, claim.as_ref())
                .await?;
            let claimed = job.status == Status::Running;
            if !claimed {
                self.inner.channels.wake();
            }
            Ok(StartOutcome { job, claimed })
        })
    }

    fn claim(&self, claimant: Claimant) -> StoreFuture<'_, Vec<Arc<JobRecord>>> {
        Box::pin(async move {
            let now = now_micros();
            let (durable, applied) = {
                let mut s = lock(&self.inner.state);
                s.promote(now);
                let keys = Self::pick(&mut s, &claimant, claimant.max, None, now);
                if keys.is_empty() {
                    return Ok(Vec::new());
                }
                let mut applied = Vec::with_capacity(keys.len());
                Self::claim_keys(&mut s, keys, &claimant, now, &mut applied);
                (self.write(&mut s, &applied), applied)
            };
            let jobs = applied.iter().map(|a| a.new.clone()).collect();
            self.settle_claims(durable, &applied, Some(&claimant))
                .await?;
            Ok(jobs)
        })
    }

    fn heartbeat<'a>(
        &'a self,
        host: &'a str,
        lease: Duration,
        runs: &'a [RunRef],
    ) -> StoreFuture<'a, usize> {
        Box::pin(async move {
            let now = now_micros();
            let until = now.saturating_add(lease.as_micros() as i64);
            let (durable, applied) = {
                let mut s = lock(&self.inner.state);
                let mine: Vec<String> = runs
                    .iter()
                    .filter(|r| {
                        s.jobs
                            .get(&r.job_id)
                            .is_some_and(|e| transitions::in_run(&e.rec, host, r.attempt))
                    })
                    .map(|r| r.job_id.clone())
                    .collect();
                let mut applied = Vec::with_capacity(mine.len());
                for id in mine {
                    let Some(rec) = s.jobs.get(&id).map(|e| e.rec.clone()) else {
                        continue;
                    };
                    let new = Arc::new(transitions::extend_lease(&rec, until));
                    s.apply(id, new, now, &mut applied);
                }
                if applied.is_empty() {
                    return Ok(0);
                }
                (self.write(&mut s, &applied), applied)
            };
            let n = applied.len();
            self.settle(durable, &applied).await?;
            Ok(n)
        })
    }

    fn progress(&self, job_id: &str, attempt: u32, progress: u8, description: &str) {
        let now = now_micros();
        let (durable, applied) = {
            let mut s = lock(&self.inner.state);
            let Some(rec) = s.jobs.get(job_id).map(|e| e.rec.clone()) else {
                return;
            };
            if rec.status != Status::Running || rec.attempt != attempt {
                return;
            }
            let new = Arc::new(transitions::progress(&rec, progress, description, now));
            let Some((prev, ver)) = s.replace(job_id, new.clone(), now) else {
                return;
            };
            let applied = vec![Applied {
                job_id: job_id.to_string(),
                new,
                prev: Some(prev),
                ver,
                claim: false,
            }];
            (self.write(&mut s, &applied), applied)
        };
        let store = self.clone();
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move {
                // Best effort: a lost progress record only leaves a stale percentage.
                let _ = store.settle(durable, &applied).await;
            });
        }
    }

    fn request_stop<'a>(
        &'a self,
        job_id: &'a str,
        kind: StopKind,
        by: Option<&'a str>,
    ) -> StoreFuture<'a, StopOutcome> {
        Box::pin(async move {
            let now = now_micros();
            let (durable, applied) = {
                let mut s = lock(&self.inner.state);
                let rec = s
                    .jobs
                    .get(job_id)
                    .map(|e| e.rec.clone())
                    .ok_or_else(|| StoreError::NotFound(job_id.to_string()))?;
                let new = match transitions::request_stop(&rec, kind, now, by)? {
                    Stop::Unchanged => {
                        drop(s);
                        let job = self.view(job_id).unwrap_or(rec);
                        return Ok(
                            match job
                                .host
                                .as_ref()
                                .map(|h| h.to_string())
                                .filter(|_| job.status == Status::Running)
                            {
                                Some(host) => {
                                    self.signal(&host, &job, kind);
                                    StopOutcome::Signalled { host, job }
                                }
                                None => StopOutcome::Ended(job),
                            },
                        );
                    }
                    Stop::Ended(r) | Stop::Signal(r) => Arc::new(r),
                };
                let Some((prev, ver)) = s.replace(job_id, new.clone(), now) else {
                    return Err(StoreError::NotFound(job_id.to_string()));
                };
                let mut applied = vec![Applied {
                    job_id: job_id.to_string(),
                    new,
                    prev: Some(prev),
                    ver,
                    claim: false,
                }];
                count_off_children(&mut s, &mut applied, now);
                (self.write(&mut s, &applied), applied)
            };
            let job = applied[0].new.clone();
            self.settle(durable, &applied).await?;
            if applied
                .iter()
                .skip(1)
                .any(|a| transitions::is_runnable(&a.new))
            {
                self.inner.channels.wake();
            }
            if job.status == Status::Running
                && let Some(host) = job.host.as_ref().map(|h| h.to_string())
            {
                self.signal(&host, &job, kind);
                return Ok(StopOutcome::Signalled { host, job });
            }
            Ok(StopOutcome::Ended(job))
        })
    }

    fn rescue(&self, now: i64, retry: RetryPolicy) -> StoreFuture<'_, Vec<Arc<JobRecord>>> {
        Box::pin(async move {
            let (durable, applied) = {
                let mut s = lock(&self.inner.state);
                let expired: Vec<String> = s
                    .running
                    .iter()
                    .filter_map(|seq| s.id_of(*seq))
                    .filter(|id| {
                        s.jobs
                            .get(*id)
                            .is_some_and(|e| e.rec.lease_until.is_some_and(|l| l < now))
                    })
                    .cloned()
                    .collect();
                let mut applied = Vec::with_capacity(expired.len());
                for id in expired {
                    let Some(rec) = s.jobs.get(&id).map(|e| e.rec.clone()) else {
                        continue;
                    };
                    let new = Arc::new(transitions::rescue(&rec, now, retry, self.unit(&id, now)));
                    s.apply(id, new, now, &mut applied);
                }
                if applied.is_empty() {
                    return Ok(Vec::new());
                }
                count_off_children(&mut s, &mut applied, now);
                (self.write(&mut s, &applied), applied)
            };
            let jobs: Vec<Arc<JobRecord>> = applied.iter().map(|a| a.new.clone()).collect();
            self.settle(durable, &applied).await?;
            if jobs.iter().any(|j| transitions::is_runnable(j)) {
                self.inner.channels.wake();
            }
            Ok(jobs)
        })
    }

    fn get<'a>(&'a self, job_id: &'a str) -> StoreFuture<'a, Option<Arc<JobRecord>>> {
        let job = self.view(job_id);
        Box::pin(std::future::ready(Ok(job)))
    }

    fn list(&self, q: ListQuery) -> StoreFuture<'_, Page> {
        let page = {
            let s = lock(&self.inner.state);
            let after: Option<u64> = q.cursor.as_deref().and_then(|c| c.parse().ok());
            let limit = q.limit.unwrap_or(usize::MAX);
            let matches = |rec: &JobRecord| {
                q.status.is_none_or(|st| rec.status == st)
                    && q.job_type.as_deref().is_none_or(|t| rec.job_type == t)
                    && q.scope
                        .as_ref()
                        .is_none_or(|sc| sc.admits(&rec.job_type, &rec.queue).is_ok())
            };
            let total = match (&q.status, &q.job_type, &q.scope) {
                (None, None, None) => s.counters.by_status.iter().sum(),
                (Some(st), None, None) => s.counters.by_status[status_index(*st)],
                _ => s
                    .jobs
                    .values()
                    .filter_map(|e| e.visible.as_deref())
                    .filter(|r| matches(r))
                    .count(),
            };
            let iter: Box<dyn Iterator<Item = (&u64, &String)>> = match (q.order, after) {
                (Order::Oldest, Some(c)) => Box::new(s.order.range(c.saturating_add(1)..)),
                (Order::Oldest, None) => Box::new(s.order.iter()),
                (Order::Newest, Some(c)) => Box::new(s.order.range(..c).rev()),
                (Order::Newest, None) => Box::new(s.order.iter().rev()),
            };
            let mut jobs = Vec::new();
            let mut last = None;
            let mut more = false;
            for (seq, id) in iter {
                let Some(rec) = s.jobs.get(id).and_then(|e| e.visible.as_ref()) else {
                    continue;
                };
                if !matches(rec) {
                    continue;
                }
                if jobs.len() == limit {
                    more = true;
                    break;
                }
                jobs.push(rec.clone());
                last = Some(*seq);
            }
            Page {
                jobs,
                total,
                next_cursor: if more {
                    last.map(|l| l.to_string())
                } else {
                    None
                },
            }
        };
        Box::pin(std::future::ready(Ok(page)))
    }

    fn counts(&self) -> StoreFuture<'_, Counts> {
        let c = {
            let s = lock(&self.inner.state);
            let mut c = Counts {
                total: s.jobs.len(),
                waiting: s.counters.waiting,
                unstarted: s.counters.unstarted,
                ..Counts::default()
            };
            for (i, st) in Status::ALL.iter().enumerate() {
                c.by_status.insert(st.as_str(), s.counters.by_status[i]);
            }
            for (ty, n) in &s.counters.by_type {
                if n.iter().any(|&k| k > 0) {
                    let per = Status::ALL
                        .iter()
                        .enumerate()
                        .filter(|(i, _)| n[*i] > 0)
                        .map(|(i, st)| (st.as_str(), n[i]))
                        .collect();
                    c.by_type.insert(ty.clone(), per);
                }
            }
            c
        };
        Box::pin(std::future::ready(Ok(c)))
    }

    fn next_scheduled(&self) -> StoreFuture<'_, Option<i64>> {
        let s = lock(&self.inner.state);
        let next = s.future.first().map(|k| k.0);
        let reopen = Self::next_reopen(&s, now_micros());
        drop(s);
        let next = match (next, reopen) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        Box::pin(std::future::ready(Ok(next)))
    }

    fn purge<'a>(&'a self, r: &'a Retention, now: i64) -> StoreFuture<'a, Vec<String>> {
        Box::pin(async move {
            // Jobs may tell schedules' cursors the schedules file has not caught up with yet:
            // it is written before any of them can go.
            self.checkpoint_schedules().await?;
            let expired = |ttl: Option<Duration>, since: i64| {
                ttl.is_some_and(|ttl| now.saturating_sub(since) > ttl.as_micros() as i64)
            };
            let durable = {
                let mut s = lock(&self.inner.state);
                let mut purge: Vec<String> = Vec::new();
                let mut terminal: Vec<(i64, u64)> = Vec::new();
                for (id, e) in &s.jobs {
                    let rec = &e.rec;
                    let ended = rec.completed_at.unwrap_or(rec.updated_at);
                    let gone = match rec.status {
                        Status::Completed => expired(r.completed_ttl, ended),
                        Status::Error => expired(r.error_ttl, ended),
                        Status::Stopped => expired(r.stopped_ttl, ended),
                        Status::Deleted => expired(r.deleted_ttl, rec.updated_at),
                        Status::Pending => {
                            rec.scheduled_at.is_none()
                                && rec.runs == 0
                                && expired(r.pending_ttl, rec.created_at)
                        }
                        Status::Running => false,
                    };
                    if gone {
                        purge.push(id.clone());
                    } else if rec.status.is_terminal() {
                        terminal.push((ended, e.seq));
                    }
                }
                if terminal.len() > r.max_terminal_jobs {
                    terminal.sort_unstable();
                    let excess = terminal.len() - r.max_terminal_jobs;
                    purge.extend(
                        terminal
                            .into_iter()
                            .take(excess)
                            .filter_map(|(_, seq)| s.id_of(seq).cloned()),
                    );
                }
                let mut records = Vec::with_capacity(purge.len());
                for id in &purge {
                    if let Some(e) = s.jobs.remove(id) {
                        s.unindex(e.seq, &e.rec);
                        s.count(e.visible.as_deref(), -1);
                        s.order.remove(&e.seq);
                        records.push(Arc::new(transitions::purge(&e.rec, now)));
                    }
                }
                if records.is_empty() {
                    return Ok(purge);
                }
                (self.inner.journal.append(records), purge)
            };
            let (durable, purge) = durable;
            durable.await?;
            Ok(purge)
        })
    }

    fn compact(&self) -> StoreFuture<'_, bool> {
        Box::pin(async move {
            let stats = self.inner.journal.stats();
            let cfg = &self.inner.cfg;
            let durable = {
                let s = lock(&self.inner.state);
                let live = s.jobs.len() as u64;
                if stats.records < cfg.compact_min_records
                    || stats.records <= live.saturating_mul(cfg.compact_ratio)
                {
                    return Ok(false);
                }
                // Taken and enqueued under the lock: every record appended before is in it.
                let snapshot: Vec<Arc<JobRecord>> = s
                    .order
                    .values()
                    .filter_map(|id| s.jobs.get(id))
                    .map(|e| e.rec.clone())
                    .collect();
                self.inner.journal.compact(snapshot)
            };
            durable.await?;
            Ok(true)
        })
    }

    fn flush(&self) -> StoreFuture<'_, ()> {
        let d = self.inner.journal.append(Vec::new());
        Box::pin(async move { Ok(d.await?) })
    }

    fn stats(&self) -> StoreStats {
        self.inner.journal.stats()
    }

    fn finish_many(
        &self,
        ends: Vec<Finish>,
        retry: RetryPolicy,
    ) -> StoreFuture<'_, Vec<Option<Arc<JobRecord>>>> {
        Box::pin(async move {
            let now = now_micros();
            let mut out: Vec<Option<usize>> = Vec::with_capacity(ends.len());
            let (durable, applied) = {
                let mut s = lock(&self.inner.state);
                let mut applied: Vec<Applied> = Vec::with_capacity(ends.len());
                for Finish {
                    job_id,
                    host,
                    attempt,
                    end,
                } in ends
                {
                    let Some(rec) = s.jobs.get(&job_id).map(|e| e.rec.clone()) else {
                        out.push(None);
                        continue;
                    };
                    if !transitions::in_run(&rec, &host, attempt) {
                        out.push(None);
                        continue;
                    }
                    let unit = self.unit(&job_id, now);
                    let end = end.count_awaited(|id| {
                        s.jobs.get(id).is_some_and(|e| !e.rec.status.is_terminal())
                    });
                    let new = Arc::new(transitions::end_run(&rec, end, now, retry, unit));
                    match s.replace(&job_id, new.clone(), now) {
                        Some((prev, ver)) => {
                            out.push(Some(applied.len()));
                            applied.push(Applied {
                                job_id,
                                new,
                                prev: Some(prev),
                                ver,
                                claim: false,
                            });
                        }
                        None => out.push(None),
                    }
                }
                if applied.is_empty() {
                    return Ok(vec![None; out.len()]);
                }
                count_off_children(&mut s, &mut applied, now);
                (self.write(&mut s, &applied), applied)
            };
            let jobs: Vec<Arc<JobRecord>> = applied.iter().map(|a| a.new.clone()).collect();
            self.settle(durable, &applied).await?;
            if jobs.iter().any(|j| transitions::is_runnable(j)) {
                self.inner.channels.wake();
            }
            Ok(out
                .into_iter()
                .map(|i| i.map(|i| jobs[i].clone()))
                .collect())
        })
    }
}

impl super::FlowStore for LocalStore {
    fn put_step<'a>(
        &'a self,
        run: (&'a str, &'a str, u32),
        name: &'a str,
        value: crate::job::Json,
    ) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            let (job_id, host, attempt) = run;
            let now = now_micros();
            let (durable, applied) = {
                let mut s = lock(&self.inner.state);
                let rec = s
                    .jobs
                    .get(job_id)
                    .map(|e| e.rec.clone())
                    .filter(|r| transitions::in_run(r, host, attempt))
                    .ok_or_else(|| StoreError::RunLost(job_id.to_string()))?;
                let new = Arc::new(transitions::store_step(&rec, name, value, now));
                let mut applied = Vec::with_capacity(1);
                s.apply(job_id.to_string(), new, now, &mut applied);
                (self.write(&mut s, &applied), applied)
            };
            self.settle(durable, &applied).await
        })
    }

    fn send_event<'a>(
        &'a self,
        target: &'a super::EventTarget,
        name: &'a str,
        payload: crate::job::Json,
        by: Option<&'a str>,
    ) -> StoreFuture<'a, Arc<JobRecord>> {
        Box::pin(async move {
            let now = now_micros();
            let (durable, applied) = {
                let mut s = lock(&self.inner.state);
                let job_id = match target {
                    super::EventTarget::Job(id) => id.clone(),
                    super::EventTarget::Key(k) => s
                        .unique
                        .get(k)
                        .cloned()
                        .ok_or_else(|| StoreError::NotFound(format!("unique_key={k}")))?,
                };
                let rec = s
                    .jobs
                    .get(&job_id)
                    .map(|e| e.rec.clone())
                    .ok_or_else(|| StoreError::NotFound(job_id.clone()))?;
                let new = Arc::new(transitions::deliver_event(&rec, name, payload, now, by)?);
                let mut applied = Vec::with_capacity(1);
                s.apply(job_id, new, now, &mut applied);
                (self.write(&mut s, &applied), applied)
            };
            self.settle(durable, &applied).await?;
            let job = applied[0].new.clone();
            if transitions::is_runnable(&job) {
                self.inner.channels.wake();
            }
            Ok(job)
        })
    }

    fn get_many<'a>(&'a self, ids: &'a [String]) -> StoreFuture<'a, Vec<Option<Arc<JobRecord>>>> {
        // The latest records, not only the durable ones: a run reads its children or its
        // dependencies once their ends woke it, and its claim may be handed over before those
        // ends are durable. The journal stores the run's writes only after its claim, and the
        // claim only after those ends (or undoes it with them), so what the run saw is never
        // lost while the run's own outcome survives.
        let s = lock(&self.inner.state);
        let jobs = ids
            .iter()
            .map(|id| s.jobs.get(id).map(|e| e.rec.clone()))
            .collect();
        Box::pin(std::future::ready(Ok(jobs)))
    }

    fn children<'a>(&'a self, parent: &'a str) -> StoreFuture<'a, Vec<Arc<JobRecord>>> {
        let s = lock(&self.inner.state);
        let jobs = s
            .order
            .values()
            .filter_map(|id| s.jobs.get(id).and_then(|e| e.visible.clone()))
            .filter(|r| r.parent.as_deref() == Some(parent))
            .collect();
        Box::pin(std::future::ready(Ok(jobs)))
    }
}

impl StoreChannels for LocalStore {
    fn stop_requests(&self, host: &str) -> mpsc::UnboundedReceiver<StopRequest> {
        self.inner.channels.stop_requests(host)
    }

    fn subscribe(&self) -> broadcast::Receiver<Change> {
        self.inner.channels.subscribe()
    }

    fn runnable(&self) -> Arc<Notify> {
        self.inner.channels.runnable()
    }

    fn schedules_changed(&self) -> Arc<Notify> {
        self.inner.channels.schedules_changed()
    }
}

/// One host per journal file: no other hosts, and this one leads.
impl Cluster for LocalStore {
    fn announce<'a>(
        &'a self,
        host: &'a str,
        job_types: &'a [String],
        url: Option<&'a str>,
    ) -> StoreFuture<'a, ()> {
        let _ = (host, job_types, url);
        Box::pin(std::future::ready(Ok(())))
    }

    fn hosts(&self) -> StoreFuture<'_, Vec<super::HostInfo>> {
        Box::pin(std::future::ready(Ok(Vec::new())))
    }

    fn lead<'a>(&'a self, host: &'a str, ttl: Duration) -> StoreFuture<'a, bool> {
        let _ = (host, ttl);
        Box::pin(std::future::ready(Ok(true)))
    }
}

impl LocalStore {
    fn signal(&self, host: &str, job: &JobRecord, kind: StopKind) {
        self.inner.channels.stop(
            host,
            StopRequest {
                job_id: job.job_id.clone(),
                attempt: job.attempt,
                kind,
            },
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::job::Json;
    use crate::store::local::jsonl::JsonlJournal;
    use crate::store::{NewJob, RunEnd};

    fn claimant() -> Claimant {
        crate::testing::host(1, Duration::from_secs(30))
    }

    fn started(id: &str) -> NewJob {
        crate::testing::job(id, true)
    }

    /// A store on a journal of its own in the temporary directory, with one started job `j`;
    /// returns it and the journal's path (to remove after).
    async fn store_with_one_job(name: &str) -> (LocalStore, std::path::PathBuf) {
        let path =
            std::env::temp_dir().join(format!("queuemgr-{name}-{}.jsonl", std::process::id()));
        let _ = std::fs::remove_file(&path);
        let journal: Arc<dyn Journal> = Arc::new(JsonlJournal::open(&path).unwrap());
        let (store, _) = LocalStore::open(journal, LocalConfig::default())
            .await
            .unwrap();
        store.insert_many(vec![started("j")], None).await.unwrap();
        (store, path)
    }

    /// A run that started ahead of its claim's sync and ended in the same sync: whichever write
    /// is published first, readers and the feed see the claim, then the end.
    #[tokio::test]
    async fn a_claim_is_published_before_the_end_of_its_run() {
        let (store, path) = store_with_one_job("publish-order").await;
        let mut feed = store.subscribe();
        let (claim, claim_written, end, end_written) = {
            let mut s = lock(&store.inner.state);
            let now = now_micros();
            let keys = LocalStore::pick(&mut s, &claimant(), 1, None, now);
            let mut claim = Vec::new();
            LocalStore::claim_keys(&mut s, keys, &claimant(), now, &mut claim);
            let claim_written = store.write(&mut s, &claim);
            let ended = Arc::new(transitions::end_run(
                &claim[0].new,
                RunEnd::Completed(Json::null()),
                now,
                RetryPolicy::default(),
                0.5,
            ));
            let mut end = Vec::new();
            s.apply("j".into(), ended, now, &mut end);
            let end_written = store.write(&mut s, &end);
            (claim, claim_written, end, end_written)
        };
        // The end's writer gets there first.
        end_written.await.unwrap();
        store.publish(&end);
        claim_written.await.unwrap();
        store.publish(&claim);
        let first = feed.try_recv().unwrap().job;
        let second = feed.try_recv().unwrap().job;
        assert_eq!(
            (first.status, second.status),
            (Status::Running, Status::Completed)
        );
        assert!(feed.try_recv().is_err(), "each change once");
        let seen = store.get("j").await.unwrap().unwrap();
        assert_eq!(seen.status, Status::Completed);
        let counts = store.counts().await.unwrap();
        assert_eq!(counts.by_status.get("COMPLETED"), Some(&1));
        assert_eq!(counts.by_status.get("RUNNING").copied().unwrap_or(0), 0);
        drop(store);
        let _ = std::fs::remove_file(&path);
    }

    /// A claim whose write failed is undone together with what its run wrote on top of it
    /// (those writes were stored only after it, so they failed too), whichever undo runs
    /// first; the job is runnable again, as before the claim.
    #[tokio::test]
    async fn a_failed_claim_takes_back_its_runs_writes_in_either_order() {
        for claim_first in [true, false] {
            let (store, path) = store_with_one_job(&format!("undo-{claim_first}")).await;
            // The claim and the run's end, applied as their writes would be, never written.
            let (claim, end) = {
                let mut s = lock(&store.inner.state);
                let now = now_micros();
                let keys = LocalStore::pick(&mut s, &claimant(), 1, None, now);
                let mut claim = Vec::new();
                LocalStore::claim_keys(&mut s, keys, &claimant(), now, &mut claim);
                assert_eq!(claim.len(), 1);
                assert!(claim[0].claim);
                let rec = claim[0].new.clone();
                let done = RunEnd::Completed(Json::null());
                let ended = Arc::new(transitions::end_run(
                    &rec,
                    done,
                    now,
                    RetryPolicy::default(),
                    0.5,
                ));
                let mut end = Vec::new();
                s.apply("j".into(), ended, now, &mut end);
                (claim, end)
            };
            if claim_first {
                store.undo(&claim);
                store.undo(&end);
            } else {
                store.undo(&end);
                store.undo(&claim);
            }
            {
                let s = lock(&store.inner.state);
                let e = &s.jobs["j"];
                assert_eq!(e.rec.status, Status::Pending, "claim first: {claim_first}");
                assert_eq!(e.rec.attempt, 0);
                assert!(e.claim.is_none());
                assert!(s.running.is_empty());
            }
            let again = store.claim(claimant()).await.unwrap();
            assert_eq!(again.len(), 1, "runnable again");
            assert_eq!(again[0].attempt, 1);
            drop(store);
            let _ = std::fs::remove_file(&path);
        }
    }
}
