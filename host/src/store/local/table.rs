//! The local store's table: each job's entry (its latest and its last durable record, its
//! pending claim), the indexes kept beside it (due runnable jobs in claim order, scheduled
//! ones by time, running ones, unique keys) and the per-status counters, and the pick of jobs
//! for a claim. Plain data under the store's one lock: every method is a pure update of it.

use super::*;

pub(super) struct Entry {
    pub(super) rec: Arc<JobRecord>,
    pub(super) visible: Option<Arc<JobRecord>>,
    /// Version of `rec` (a store-wide counter), so that a late publish never hides a newer one.
    pub(super) ver: u64,
    pub(super) visible_ver: u64,
    /// Insertion order.
    pub(super) seq: u64,
    /// The job's latest claim, until it is published: the run may have started before the
    /// claim was durable (see [`super::Runner`]), so every later write of the job is stored
    /// only if the claim is, and published only after it.
    pub(super) claim: Option<Box<PendingClaim>>,
}

/// A claim whose write is not yet known durable, or not yet published.
pub(super) struct PendingClaim {
    pub(super) commit: Commit,
    pub(super) rec: Arc<JobRecord>,
    pub(super) ver: u64,
}

/// A due runnable job's place in claim order.
pub(super) type DueKey = (Reverse<i32>, i64, u64);

#[derive(Default)]
pub(super) struct State {
    pub(super) jobs: FastMap<String, Entry>,
    pub(super) order: BTreeMap<u64, String>,
    pub(super) next_seq: u64,
    pub(super) next_ver: u64,
    pub(super) due: BTreeSet<DueKey>,
    pub(super) future: BTreeSet<(i64, u64, i32)>,
    pub(super) running: BTreeSet<u64>,
    pub(super) unique: FastMap<String, String>,
    pub(super) counters: Counters,
    /// The named queues' settings, as the queues file holds them.
    pub(super) specs: Arc<HashMap<String, crate::limits::QueueSpec>>,
    /// Runnable jobs with a concurrency key, per (queue, key), in claim order: the heads a
    /// fair claim takes in turn.
    pub(super) keyed: BTreeMap<(String, String), BTreeSet<DueKey>>,
    /// Where the next fair claim starts looking among the keys (round-robin across claims
    /// when there are more keys than one claim looks at).
    pub(super) fair_cursor: Option<(String, String)>,
    /// The key of the last job a fair claim took: the next claim's turns start after it.
    pub(super) fair_last: Option<(String, String)>,
    /// Rate buckets (in memory: a restart forgets them, which allows one burst).
    pub(super) buckets: FastMap<String, crate::limits::Bucket>,
}

/// Counts of the durable (visible) records: by status, by type and status, and PENDING split
/// into never started and waiting (a slot, a time, a retry).
#[derive(Default)]
pub(super) struct Counters {
    pub(super) by_status: [usize; 6],
    pub(super) by_type: FastMap<String, [usize; 6]>,
    pub(super) unstarted: usize,
    pub(super) waiting: usize,
    /// Per queue: PENDING started, PENDING never started, RUNNING.
    pub(super) by_queue: FastMap<String, [usize; 3]>,
}

impl Counters {
    pub(super) fn count(&mut self, rec: &JobRecord, delta: isize) {
        let i = status_index(rec.status);
        self.by_status[i] = self.by_status[i].saturating_add_signed(delta);
        let per_type = match self.by_type.get_mut(&rec.job_type) {
            Some(t) => t,
            None => self.by_type.entry(rec.job_type.clone()).or_default(),
        };
        per_type[i] = per_type[i].saturating_add_signed(delta);
        let q = match rec.status {
            Status::Pending if rec.scheduled_at.is_some() => Some(0),
            Status::Pending => Some(1),
            Status::Running => Some(2),
            _ => None,
        };
        if let Some(q) = q {
            let per_queue = match self.by_queue.get_mut(&rec.queue) {
                Some(t) => t,
                None => self.by_queue.entry(rec.queue.clone()).or_default(),
            };
            per_queue[q] = per_queue[q].saturating_add_signed(delta);
        }
        if rec.status == Status::Pending {
            if rec.scheduled_at.is_some() {
                self.waiting = self.waiting.saturating_add_signed(delta);
            } else {
                self.unstarted = self.unstarted.saturating_add_signed(delta);
            }
        }
    }
}

pub(super) fn status_index(s: Status) -> usize {
    Status::ALL.iter().position(|x| *x == s).unwrap_or(0)
}

impl State {
    pub(super) fn index(&mut self, seq: u64, rec: &JobRecord, now: i64) {
        if let Some(at) = rec.scheduled_at.filter(|_| rec.status == Status::Pending) {
            if let Some(k) = &rec.concurrency_key {
                let group = match self.keyed.get_mut(&(rec.queue.clone(), k.clone())) {
                    Some(g) => g,
                    None => self
                        .keyed
                        .entry((rec.queue.clone(), k.clone()))
                        .or_default(),
                };
                group.insert((Reverse(rec.priority), at, seq));
            }
            if at <= now {
                self.due.insert((Reverse(rec.priority), at, seq));
            } else {
                self.future.insert((at, seq, rec.priority));
            }
        }
        if rec.status == Status::Running {
            self.running.insert(seq);
        }
        if let Some(k) = &rec.unique_key
            && !rec.status.is_terminal()
        {
            self.unique.insert(k.clone(), rec.job_id.clone());
        }
    }

    pub(super) fn unindex(&mut self, seq: u64, rec: &JobRecord) {
        if let Some(at) = rec.scheduled_at.filter(|_| rec.status == Status::Pending) {
            if let Some(k) = &rec.concurrency_key {
                let group = (rec.queue.clone(), k.clone());
                if let Some(g) = self.keyed.get_mut(&group) {
                    g.remove(&(Reverse(rec.priority), at, seq));
                    if g.is_empty() {
                        self.keyed.remove(&group);
                    }
                }
            }
            self.due.remove(&(Reverse(rec.priority), at, seq));
            self.future.remove(&(at, seq, rec.priority));
        }
        if rec.status == Status::Running {
            self.running.remove(&seq);
        }
        if let Some(k) = &rec.unique_key
            && self.unique.get(k).is_some_and(|id| *id == rec.job_id)
        {
            self.unique.remove(k);
        }
    }

    pub(super) fn count(&mut self, rec: Option<&JobRecord>, delta: isize) {
        if let Some(rec) = rec {
            self.counters.count(rec, delta);
        }
    }

    /// Makes `new` the job's latest record (indexes follow); returns the record it replaced and
    /// the new version.
    pub(super) fn replace(
        &mut self,
        job_id: &str,
        new: Arc<JobRecord>,
        now: i64,
    ) -> Option<(Arc<JobRecord>, u64)> {
        self.next_ver += 1;
        let ver = self.next_ver;
        let entry = self.jobs.get_mut(job_id)?;
        let seq = entry.seq;
        let old = std::mem::replace(&mut entry.rec, new.clone());
        entry.ver = ver;
        self.unindex(seq, &old);
        self.index(seq, &new, now);
        Some((old, ver))
    }

    /// [`State::replace`], noting the change in `applied` (to publish or undo).
    pub(super) fn apply(
        &mut self,
        job_id: String,
        new: Arc<JobRecord>,
        now: i64,
        applied: &mut Vec<Applied>,
    ) {
        if let Some((prev, ver)) = self.replace(&job_id, new.clone(), now) {
            applied.push(Applied {
                job_id,
                new,
                prev: Some(prev),
                ver,
                claim: false,
            });
        }
    }

    /// Moves runnable jobs whose time has come into the due set.
    pub(super) fn promote(&mut self, now: i64) {
        while let Some(&(at, seq, prio)) = self.future.first() {
            if at > now {
                break;
            }
            self.future.pop_first();
            self.due.insert((Reverse(prio), at, seq));
        }
    }

    pub(super) fn id_of(&self, seq: u64) -> Option<&String> {
        self.order.get(&seq)
    }
}

/// One change applied to the table, to publish once durable or undo if not.
pub(super) struct Applied {
    pub(super) job_id: String,
    pub(super) new: Arc<JobRecord>,
    /// The record before (`None`: the job was inserted by this change).
    pub(super) prev: Option<Arc<JobRecord>>,
    pub(super) ver: u64,
    /// The change claims the job for a run.
    pub(super) claim: bool,
}

impl LocalStore {
    /// Due keys of `claimant`'s types, in claim order, at most `max`: by priority, then
    /// round-robin across concurrency keys, then by time and insertion, passing over what the
    /// queues' settings hold back (whose rate buckets it moves). With `only`, among those jobs.
    pub(super) fn pick(
        s: &mut State,
        claimant: &Claimant,
        max: usize,
        only: Option<&[u64]>,
        now: i64,
    ) -> Vec<DueKey> {
        if max == 0 {
            return Vec::new();
        }
        let mut gate = Self::gate(s, now);
        let fair = only.is_none() && !s.keyed.is_empty();
        let rec_of = |s: &State, seq: u64| {
            s.id_of(seq)
                .and_then(|id| s.jobs.get(id))
                .map(|e| e.rec.clone())
        };
        let open = |gate: &Option<crate::limits::Gate>, rec: &JobRecord| {
            claimant.has_type(&rec.job_type)
                && gate
                    .as_ref()
                    .is_none_or(|g| g.open(&rec.queue, rec.concurrency_key.as_deref()))
        };
        let mut keys: Vec<DueKey> = Vec::new();
        match only {
            Some(seqs) => {
                for &seq in seqs {
                    let Some(rec) = rec_of(s, seq) else { continue };
                    let Some(at) = rec.scheduled_at.filter(|_| rec.status == Status::Pending)
                    else {
                        continue;
                    };
                    let key = (Reverse(rec.priority), at, seq);
                    if s.due.contains(&key) && open(&gate, &rec) {
                        keys.push(key);
                    }
                }
                keys.sort_unstable();
            }
            None => {
                // Enough to fill the claim after the limits and the turns of the keys.
                let want = if gate.is_some() || fair {
                    max.saturating_mul(4)
                } else {
                    max
                };
                for k in &s.due {
                    let Some(rec) = s.id_of(k.2).and_then(|id| s.jobs.get(id)).map(|e| &e.rec)
                    else {
                        continue;
                    };
                    if open(&gate, rec) {
                        keys.push(*k);
                        if keys.len() == want {
                            break;
                        }
                    }
                }
            }
        }
        if fair {
            let (fair_keys, fair_heads) = crate::limits::fair_span(max, Some(s.keyed.len()));
            let mut seen: std::collections::HashSet<u64> = keys.iter().map(|k| k.2).collect();
            let start = s.fair_cursor.clone();
            let after = match &start {
                Some(c) => s
                    .keyed
                    .range((
                        std::ops::Bound::Excluded(c.clone()),
                        std::ops::Bound::Unbounded,
                    ))
                    .chain(s.keyed.range(..=c.clone()))
                    .take(fair_keys)
                    .collect::<Vec<_>>(),
                None => s.keyed.iter().take(fair_keys).collect(),
            };
            let wrapped = after.len() < fair_keys;
            let last = after.last().map(|(g, _)| (*g).clone());
            for (_, group) in after {
                let mut n = 0;
                for k in group {
                    if n == fair_heads {
                        break;
                    }
                    if !s.due.contains(k) {
                        continue;
                    }
                    let Some(rec) = s.id_of(k.2).and_then(|id| s.jobs.get(id)).map(|e| &e.rec)
                    else {
                        continue;
                    };
                    if !open(&gate, rec) {
                        break;
                    }
                    n += 1;
                    if seen.insert(k.2) {
                        keys.push(*k);
                    }
                }
            }
            s.fair_cursor = if wrapped { None } else { last };
            let places: Vec<crate::limits::Place<'_>> = keys
                .iter()
                .map(|k| {
                    let group = s.id_of(k.2).and_then(|id| s.jobs.get(id)).and_then(|e| {
                        e.rec
                            .concurrency_key
                            .as_deref()
                            .map(|c| (e.rec.queue.as_str(), c))
                    });
                    crate::limits::Place {
                        priority: k.0.0,
                        at: k.1,
                        seq: k.2,
                        group,
                    }
                })
                .collect();
            let last = s.fair_last.as_ref().map(|(q, k)| (q.as_str(), k.as_str()));
            let order = crate::limits::fair_order(&places, last);
            keys = order.into_iter().map(|i| keys[i]).collect();
        }
        match gate.as_mut() {
            None => keys.truncate(max),
            Some(g) => {
                let mut taken = Vec::with_capacity(max.min(keys.len()));
                for k in keys {
                    if taken.len() == max {
                        break;
                    }
                    let Some(rec) = rec_of(s, k.2) else { continue };
                    if g.admit(&rec.queue, rec.concurrency_key.as_deref()) {
                        taken.push(k);
                    }
                }
                for (name, b) in g.moved() {
                    s.buckets.insert(name, b);
                }
                keys = taken;
            }
        }
        if fair {
            // The next claim's turns go on after the last key this one took.
            if let Some(k) = keys.last() {
                s.fair_last = s.id_of(k.2).and_then(|id| s.jobs.get(id)).and_then(|e| {
                    e.rec
                        .concurrency_key
                        .clone()
                        .map(|c| (e.rec.queue.clone(), c))
                });
            }
        }
        keys
    }

    /// The decision of a claim when some queue has settings that hold claims back (`None`:
    /// none does, the claim takes jobs in plain order): the settings, what runs now and the
    /// rate buckets still in use (the others are dropped: a bucket past its time is as new).
    pub(super) fn gate(s: &mut State, now: i64) -> Option<crate::limits::Gate> {
        if !s.specs.values().any(crate::limits::QueueSpec::limits) {
            return None;
        }
        let mut running = crate::limits::Running::default();
        for seq in &s.running {
            if let Some(rec) = s.id_of(*seq).and_then(|id| s.jobs.get(id)).map(|e| &e.rec) {
                running.add(&rec.queue, rec.concurrency_key.as_deref(), 1);
            }
        }
        s.buckets.retain(|_, b| b.tat > now);
        let buckets = s.buckets.iter().map(|(k, v)| (k.clone(), *v)).collect();
        Some(
            crate::limits::Gate::new(s.specs.values().cloned(), running).with_buckets(buckets, now),
        )
    }

    /// When a rate bucket that holds jobs back opens again (the scheduler wakes the producer
    /// then), if one does after `now`.
    pub(super) fn next_reopen(s: &State, now: i64) -> Option<i64> {
        s.buckets
            .values()
            .map(|b| b.reopen)
            .filter(|&t| t > now)
            .min()
    }
}
