//! Group commit: the writes of concurrent requests (adds, starts, stops, run ends) share one
//! transaction, one round trip of each statement and one commit.
//!
//! Why: a request that is its own transaction pays its own `BEGIN`, row lock, upsert and
//! `COMMIT`, each a round trip and a statement for PostgreSQL to parse, plan and log; at 64
//! clients the database's CPU goes to that overhead, not to the rows. Here each write is sent
//! to a *lane*; a lane takes every write waiting for it, applies them in order to the rows it
//! has locked (the same pure transitions as one request alone), writes the final rows in one
//! statement with the notifications pipelined behind it, and commits once. Each request is
//! answered only after the commit that holds its write.
//!
//! A request whose transition is refused (an unknown job, a state that does not allow it, an
//! id that exists) is refused alone: transitions are decided in memory before anything is
//! written, so the others go on. If the database refuses the group's write (a row another host
//! changed under a unique key, a record it cannot take), each write of the group is tried again
//! in a transaction of its own, so that the error reaches the request it belongs to only.
//!
//! Writes of the same job always take the same lane (by a hash of its id), so one host never
//! waits on its own row locks; lanes lock rows in id order, so they cannot deadlock each other.
//! (One lane is the default: see [`LANES`].)

use super::*;
use crate::job::Json;
use crate::store::{NewJob, StopOutcome};
use std::hash::BuildHasher;
use tokio::sync::oneshot;

/// Lanes per host: group transactions in flight at once. One: measured at 64 clients, one lane
/// made 4,180 jobs/s and two 3,700 (`docs/benchmarks.md`): two lanes halve the groups, and
/// each group costs the database the same statements whatever its size.
pub(super) const LANES: usize = 1;

/// The most jobs a group takes from its lane (a larger write waits for the next group).
const GROUP_JOBS: usize = 4096;

/// One write, as a request asked for it.
#[derive(Clone)]
pub(super) enum Op {
    Insert {
        jobs: Vec<NewJob>,
        claim: Option<Claimant>,
    },
    Start {
        job_id: String,
        claim: Option<Claimant>,
        by: Option<String>,
    },
    Stop {
        job_id: String,
        kind: StopKind,
        by: Option<String>,
    },
    Finish {
        ends: Vec<Finish>,
        retry: RetryPolicy,
        units: Vec<f64>,
    },
    /// The producer's claim: runnable jobs of its types, up to its free slots.
    Claim { claimant: Claimant },
    /// A durable step's result, on a job still in its run.
    Step {
        job_id: String,
        host: String,
        attempt: u32,
        name: String,
        value: Json,
    },
    /// An event sent to a job.
    Event {
        target: crate::store::EventTarget,
        name: String,
        payload: Json,
        by: Option<String>,
    },
}

impl Op {
    /// The jobs it reads and writes.
    fn ids(&self) -> Vec<&str> {
        match self {
            Op::Insert { jobs, .. } => jobs
                .iter()
                .flat_map(|j| {
                    std::iter::once(j.job_id.as_str())
                        .chain(j.depends_on.iter().map(|d| d.job_id.as_str()))
                })
                .collect(),
            Op::Start { job_id, .. } | Op::Stop { job_id, .. } | Op::Step { job_id, .. } => {
                vec![job_id.as_str()]
            }
            Op::Event {
                target: crate::store::EventTarget::Job(id),
                ..
            } => vec![id.as_str()],
            // Its job is found by its key (see `keys`).
            Op::Event { .. } => Vec::new(),
            Op::Finish { ends, .. } => ends.iter().map(|e| e.job_id.as_str()).collect(),
            // Its jobs are found by the claim's own query.
            Op::Claim { .. } => Vec::new(),
        }
    }

    /// The unique keys its inserts ask for.
    fn keys(&self) -> Vec<&str> {
        match self {
            Op::Insert { jobs, .. } => jobs
                .iter()
                .filter_map(|j| j.unique_key.as_deref())
                .collect(),
            Op::Event {
                target: crate::store::EventTarget::Key(k),
                ..
            } => vec![k.as_str()],
            _ => Vec::new(),
        }
    }

    fn weight(&self) -> usize {
        match self {
            Op::Insert { jobs, .. } => jobs.len(),
            Op::Finish { ends, .. } => ends.len(),
            Op::Claim { claimant } => claimant.max,
            _ => 1,
        }
    }

    fn claimant(&self) -> Option<&Claimant> {
        match self {
            Op::Insert { claim, .. } | Op::Start { claim, .. } => claim.as_ref(),
            Op::Claim { claimant } => Some(claimant),
            _ => None,
        }
    }
}

/// What a write did, for its request.
pub(super) enum Done {
    Insert(InsertOutcome),
    Start(StartOutcome),
    Stop(StopOutcome),
    Finish(Vec<Option<Arc<JobRecord>>>),
    Claim(Vec<Arc<JobRecord>>),
    Step,
    Event(Arc<JobRecord>),
}

/// A write's effects beyond its answer.
#[derive(Default)]
struct Effects {
    /// Records it wrote, in order (published on the feed once committed).
    written: Vec<Arc<JobRecord>>,
    /// Jobs it claimed for its claimant (handed to the runner once committed).
    claimed: Vec<Arc<JobRecord>>,
    /// Notifications to send with the commit (stop requests, ends that a stopper awaits).
    notes: Vec<String>,
}

type Applied = Result<(Done, Effects), StoreError>;

/// A write waiting in a lane, with where its answer goes.
struct Pending {
    op: Op,
    reply: oneshot::Sender<Result<Done, StoreError>>,
}

/// The lanes of one store.
pub(super) struct Lanes {
    senders: Vec<mpsc::UnboundedSender<Pending>>,
    hasher: foldhash::fast::RandomState,
}

impl Lanes {
    /// Starts `n` lanes that commit for `inner`'s store.
    pub(super) fn start(inner: std::sync::Weak<Inner>, n: usize) -> Lanes {
        let senders = (0..n.max(1))
            .map(|_| {
                let (tx, rx) = mpsc::unbounded_channel();
                tokio::spawn(lane(inner.clone(), rx));
                tx
            })
            .collect();
        Lanes {
            senders,
            hasher: foldhash::fast::RandomState::default(),
        }
    }

    /// Sends `op` to its lane and waits for the commit that holds it.
    pub(super) async fn submit(&self, op: Op) -> Result<Done, StoreError> {
        let lane = op.ids().first().map_or(0, |id| {
            (self.hasher.hash_one(id) as usize) % self.senders.len()
        });
        let (reply, answer) = oneshot::channel();
        self.senders[lane]
            .send(Pending { op, reply })
            .map_err(|_| StoreError::Closed)?;
        answer.await.map_err(|_| StoreError::Closed)?
    }
}

/// A lane: takes the writes waiting, commits them as one group, answers each.
async fn lane(inner: std::sync::Weak<Inner>, mut rx: mpsc::UnboundedReceiver<Pending>) {
    while let Some(first) = rx.recv().await {
        let mut weight = first.op.weight();
        let mut group = vec![first];
        while weight < GROUP_JOBS {
            match rx.try_recv() {
                Ok(p) => {
                    weight += p.op.weight();
                    group.push(p);
                }
                Err(_) => break,
            }
        }
        let Some(inner) = inner.upgrade() else {
            for p in group {
                let _ = p.reply.send(Err(StoreError::Closed));
            }
            return;
        };
        let store = PgStore { inner };
        store.commit_group(group).await;
    }
}

impl PgStore {
    /// Commits a group; answers each of its writes.
    async fn commit_group(&self, group: Vec<Pending>) {
        let (ops, replies): (Vec<Op>, Vec<_>) = group.into_iter().map(|p| (p.op, p.reply)).unzip();
        let ops = Arc::new(ops);
        match self.write_group(ops.clone()).await {
            Ok(applied) => {
                for ((op, reply), applied) in ops.iter().zip(replies).zip(applied) {
                    let _ = reply.send(self.settle(op, applied));
                }
            }
            Err(e)
                if ops.len() > 1
                    && matches!(e, StoreError::Database { .. } | StoreError::Record(_)) =>
            {
                // Find whose write the database refused: each alone.
                tracing::debug!(error = %e, writes = ops.len(), "a group's write was refused; writing each alone");
                for (op, reply) in ops.iter().zip(replies) {
                    let alone = Arc::new(vec![op.clone()]);
                    let r = match self.write_group(alone).await {
                        Ok(mut applied) => match applied.pop() {
                            Some(a) => self.settle(op, a),
                            None => Err(StoreError::Closed),
                        },
                        Err(e) => Err(e),
                    };
                    let _ = reply.send(r);
                }
            }
            Err(e) => {
                for reply in replies {
                    let _ = reply.send(Err(e.clone()));
                }
            }
        }
    }

    /// Commits one write in a transaction of its own, outside the lanes, in the same two round
    /// trips as a group. The producer's claims go this way: in the lane they would wait behind
    /// the run ends being written, and a drain alternates the two (measured: 21,000 jobs/s
    /// through the lane against 25,000 beside it).
    pub(super) async fn commit_alone(&self, op: Op) -> Result<Done, StoreError> {
        let ops = Arc::new(vec![op]);
        let mut applied = self.write_group(ops.clone()).await?;
        match (ops.first(), applied.pop()) {
            (Some(op), Some(a)) => self.settle(op, a),
            _ => Err(mismatch()),
        }
    }

    /// After the commit: publishes a write's records, hands its claimed jobs to their runner,
    /// wakes the producer for what became runnable; its answer.
    fn settle(&self, op: &Op, applied: Applied) -> Result<Done, StoreError> {
        let (done, fx) = applied?;
        self.publish(&fx.written);
        if let Some(c) = op.claimant() {
            c.hand_committed(&fx.claimed);
        }
        if fx.written.iter().any(|r| transitions::is_runnable(r)) {
            self.inner.channels.wake();
        }
        Ok(done)
    }

    /// One transaction for the group in two round trips: `BEGIN`, the commit token and the
    /// row locks pipelined; each write applied in order in memory; then the final rows, the
    /// notifications and `COMMIT` pipelined. A lost `COMMIT` answer is resolved by the token,
    /// as in [`PgStore::tx`].
    async fn write_group(&self, ops: Arc<Vec<Op>>) -> Result<Vec<Applied>, StoreError> {
        let token = self.token();
        // What the group wrote, once its COMMIT is on its way.
        let sent: Sent<Vec<Applied>> = Mutex::new(None);
        let run = async {
            let conn = Conn(Some(self.inner.pool.get().await.map_err(pool_err)?));
            let c = conn.client()?;
            let r = self.group_tx(c, &ops, token, &sent).await;
            if r.is_ok() {
                conn.keep();
            }
            r
        };
        let r = self.bounded(run).await;
        self.conclude(r, &sent, token).await
    }

    /// The group's transaction on `c`. Sets `sent` just before `COMMIT` goes out.
    async fn group_tx(
        &self,
        c: &deadpool_postgres::Client,
        ops: &[Op],
        token: i64,
        sent: &Sent<Vec<Applied>>,
    ) -> Result<(), StoreError> {
        let s = &self.inner.s;
        let now = now_micros();
        let mut ids: Vec<&str> = ops.iter().flat_map(|op| op.ids()).collect();
        ids.sort_unstable();
        ids.dedup();
        let keys: Vec<&str> = ops.iter().flat_map(|op| op.keys()).collect();
        // Each claim's candidates, locked (`SKIP LOCKED`: never waiting on another host).
        let limited = self.inner.specs.limited();
        let keyed = self.inner.specs.keyed(now);
        let inner = &*self.inner;
        // A host that believes no queue is limited looks whether one is, in the same round
        // trip: another host may have just set a limit that the `queues` notification has not
        // brought here yet. If one is, this group claims nothing (the producer claims again,
        // on the limited path).
        // (The fast claim's own query passes over every job while a queue is limited.)
        let probe = !limited
            && ops.iter().any(|op| {
                matches!(
                    op,
                    Op::Insert { claim: Some(_), .. } | Op::Start { claim: Some(_), .. }
                )
            });
        let claims = futures::future::try_join_all(ops.iter().filter_map(|op| match op {
            Op::Claim { claimant } => Some(async move {
                if limited || keyed {
                    let pick =
                        super::queues::general_candidates(c, inner, claimant, now, limited).await?;
                    Ok::<_, StoreError>((pick.jobs, pick.gate, None))
                } else {
                    let jobs = claim_candidates(c, s, claimant, now).await?;
                    if jobs.iter().any(|j| j.concurrency_key.is_some()) {
                        // Keyed jobs are about: from the next claim on, keys take turns.
                        inner.specs.saw_keys(now);
                    }
                    Ok((jobs, None, None))
                }
            }),
            _ => None,
        }));
        let looked = async {
            if probe {
                super::queues::probe(c, s).await.map(Some)
            } else {
                Ok(None)
            }
        };
        // The children that suspending runs await, as committed: which are still live (the
        // group's own writes are applied over it below).
        let awaited: Vec<&str> = ops
            .iter()
            .flat_map(|op| match op {
                Op::Finish { ends, .. } => ends
                    .iter()
                    .flat_map(|e| e.end.awaiting().iter().map(String::as_str))
                    .collect::<Vec<_>>(),
                _ => Vec::new(),
            })
            .collect();
        let live_children = async {
            if awaited.is_empty() {
                return Ok(FastSet::default());
            }
            let sql = format!(
                "SELECT job_id FROM {s}.jobs WHERE job_id = ANY($1) AND status IN ('PENDING', 'RUNNING')"
            );
            let stmt = c.prepare_cached(&sql).await.map_err(db)?;
            let rows = c.query(&stmt, &[&awaited]).await.map_err(db)?;
            Ok::<_, StoreError>(rows.iter().map(|r| r.get::<_, String>(0)).collect())
        };
        let (_, xid, locked, held, candidates, looked, live_children) = futures::try_join!(
            async { c.batch_execute("BEGIN").await.map_err(db) },
            self.mark(c, token),
            lock_rows(c, s, &ids),
            async {
                if keys.is_empty() {
                    Ok(Vec::new())
                } else {
                    lock_holders(c, s, &keys).await
                }
            },
            claims,
            looked,
            live_children,
        )?;
        let mut unclaimed = false;
        let looks = candidates.iter().filter_map(|(_, _, l)| l.as_ref());
        for p in looked.iter().chain(looks) {
            if p.keyed {
                inner.specs.saw_keys(now);
            }
            if p.limited {
                inner
                    .specs
                    .limited
                    .store(true, std::sync::atomic::Ordering::Release);
                super::queues::reload_soon(self.inner.clone());
                unclaimed = true;
            }
        }
        let mut rows: FastMap<String, Arc<JobRecord>> =
            locked.into_iter().map(|(k, v)| (k, Arc::new(v))).collect();
        let mut holders: FastMap<String, String> = FastMap::default();
        for rec in held {
            if let Some(k) = rec.unique_key.clone() {
                holders.insert(k, rec.job_id.clone());
            }
            rows.entry(rec.job_id.clone())
                .or_insert_with(|| Arc::new(rec));
        }
        // Each claim op's candidate ids, in claim order.
        let mut candidates = candidates.into_iter();
        let mut found: Vec<(Vec<String>, Option<crate::limits::Gate>)> = Vec::new();
        for op in ops {
            if matches!(op, Op::Claim { .. }) {
                let (recs, gate, _) = candidates.next().unwrap_or_default();
                found.push((recs.iter().map(|r| r.job_id.clone()).collect(), gate));
                for rec in recs {
                    rows.entry(rec.job_id.clone())
                        .or_insert_with(|| Arc::new(rec));
                }
            }
        }
        let mut found = found.into_iter();
        let mut applied = Vec::with_capacity(ops.len());
        // The final record of each job written, in the order first written.
        let mut order: Vec<String> = Vec::new();
        let mut last: FastMap<String, Arc<JobRecord>> = FastMap::default();
        let mut notes: Vec<String> = Vec::new();
        // The jobs the group ended that have waiters (a parent, dependents), told below.
        let mut ended: Vec<Arc<JobRecord>> = Vec::new();
        // The rate buckets the group's claims moved.
        let mut buckets: Vec<(String, crate::limits::Bucket)> = Vec::new();
        for op in ops {
            let a = match op {
                Op::Claim { claimant } => {
                    let (ids, gate) = found.next().unwrap_or_default();
                    let ids = if unclaimed { Vec::new() } else { ids };
                    let (done, moved) = claim(claimant, &ids, gate, &rows, now);
                    buckets.extend(moved);
                    if limited || keyed {
                        // The next fair claim's turns start after the last key this one took.
                        if let Some(j) = done.1.claimed.last()
                            && let Some(k) = &j.concurrency_key
                        {
                            *lock(&inner.specs.fair_last) = Some((j.queue.clone(), k.clone()));
                        }
                    }
                    Ok(done)
                }
                _ => apply(op, &rows, &holders, &live_children, now, unclaimed),
            };
            if let Ok((_, fx)) = &a {
                for r in &fx.written {
                    if !transitions::ended_waiters(rows.get(&r.job_id).map(|r| &**r), r).is_empty()
                    {
                        ended.push(r.clone());
                    }
                    if last.insert(r.job_id.clone(), r.clone()).is_none() {
                        order.push(r.job_id.clone());
                    }
                    rows.insert(r.job_id.clone(), r.clone());
                    if let Some(k) = &r.unique_key {
                        holders.insert(k.clone(), r.job_id.clone());
                    }
                }
                notes.extend(fx.notes.iter().cloned());
            }
            applied.push(a);
        }
        // Each job that waits on a job the group ended (its parent, its dependents) is told in
        // this transaction: its row is locked (after the ended job's), so that two hosts ending
        // two children at once take turns and the second sees the first's end. A dependent that
        // ends because of it tells its own waiters in the next round.
        if !ended.is_empty() {
            let told = tell_waiters(c, s, &mut rows, ended, now).await?;
            for w in &told {
                if last.insert(w.job_id.clone(), w.clone()).is_none() {
                    order.push(w.job_id.clone());
                }
            }
            // Published on the feed with the write that caused them, once committed.
            if let Some(Ok((_, fx))) = applied.iter_mut().rev().find(|a| a.is_ok()) {
                fx.written.extend(told);
            }
        }
        let recs: Vec<Arc<JobRecord>> = order
            .iter()
            .filter_map(|id| last.get(id).cloned())
            .collect();
        // Where a queue's settings hold claims back, a run that ends makes room for one on any
        // host.
        if recs.iter().any(|r| transitions::is_runnable(r))
            || (limited && recs.iter().any(|r| r.status.is_terminal()))
        {
            notes.push("runnable".into());
        }
        // Keyed jobs made runnable: the other hosts' claims take keys in turn from now on (at
        // most one such notification every few seconds per host).
        if recs
            .iter()
            .any(|r| r.concurrency_key.is_some() && transitions::is_runnable(r))
            && inner.specs.tell_keys(now)
        {
            notes.push("keyed".into());
        }
        let tell = self.tell();
        let channel = &self.inner.channel;
        // The statements' preparation (cached after the first group), before COMMIT is sent.
        if !recs.is_empty() {
            prepare_upsert(c, s).await?;
        }
        if !notes.is_empty() {
            c.prepare_cached("SELECT pg_notify($1, $2)")
                .await
                .map_err(db)?;
        }
        *lock(sent) = Some((xid, applied, recs.len()));
        futures::try_join!(
            upsert(c, s, &recs, tell.as_ref()),
            super::queues::store_buckets(c, s, &buckets),
            futures::future::try_join_all(notes.iter().map(|p| notify(c, channel, p))),
            async { c.batch_execute("COMMIT").await.map_err(db) },
        )?;
        if unclaimed {
            // What this group left unclaimed is claimed again, on the limited path.
            inner.channels.wake();
        }
        Ok(())
    }
}

/// A pooled connection that goes back to the pool only when its transaction ended cleanly;
/// otherwise (an error, or the operation dropped midway) it is closed, so that no connection
/// returns inside a transaction.
struct Conn(Option<deadpool_postgres::Client>);

impl Conn {
    fn client(&self) -> Result<&deadpool_postgres::Client, StoreError> {
        self.0.as_ref().ok_or(StoreError::Closed)
    }

    /// The transaction ended cleanly: back to the pool.
    fn keep(mut self) {
        drop(self.0.take());
    }
}

impl Drop for Conn {
    fn drop(&mut self) {
        if let Some(c) = self.0.take() {
            drop(deadpool_postgres::Object::take(c));
        }
    }
}

/// The jobs a claim may take: runnable, due, of the claimant's types, in claim order, locked;
/// rows another transaction holds are skipped. None while some queue is limited (another host
/// may have just set a limit whose notification has not arrived: the claim waits for it, and
/// takes the limited path then).
async fn claim_candidates(
    c: &deadpool_postgres::Client,
    s: &str,
    claimant: &Claimant,
    now: i64,
) -> Result<Vec<JobRecord>, StoreError> {
    let sql = format!(
        "SELECT record FROM {s}.jobs
         WHERE status = 'PENDING' AND scheduled_at IS NOT NULL AND scheduled_at <= $1
           AND job_type = ANY($2)
           AND NOT EXISTS (SELECT 1 FROM {s}.queues WHERE limited)
         ORDER BY priority DESC, scheduled_at, seq
         LIMIT $3 FOR UPDATE SKIP LOCKED"
    );
    let types: Vec<&str> = claimant.job_types.iter().map(String::as_str).collect();
    records(c, &sql, &[&now, &types, &(claimant.max as i64)]).await
}

/// A claim applied to the rows as the group has them: each candidate still runnable and due
/// (a write earlier in the group may have started, stopped or claimed it) is claimed.
fn claim(
    claimant: &Claimant,
    candidates: &[String],
    mut gate: Option<crate::limits::Gate>,
    rows: &FastMap<String, Arc<JobRecord>>,
    now: i64,
) -> ((Done, Effects), Vec<(String, crate::limits::Bucket)>) {
    let lease_until = now.saturating_add(claimant.lease.as_micros() as i64);
    let jobs: Vec<Arc<JobRecord>> = candidates
        .iter()
        .filter_map(|id| rows.get(id))
        .filter(|r| {
            transitions::is_runnable(r)
                && r.scheduled_at.is_some_and(|at| at <= now)
                && claimant.has_type(&r.job_type)
        })
        .filter(|r| {
            gate.as_mut()
                .is_none_or(|g| g.admit(&r.queue, r.concurrency_key.as_deref()))
        })
        .take(claimant.max)
        .map(|r| {
            Arc::new(transitions::claim(
                r,
                &claimant.host,
                claimant.code_of(&r.job_type),
                lease_until,
                now,
            ))
        })
        .collect();
    let moved = gate.map(|g| g.moved()).unwrap_or_default();
    (
        (
            Done::Claim(jobs.clone()),
            Effects {
                written: jobs.clone(),
                claimed: jobs,
                notes: Vec::new(),
            },
        ),
        moved,
    )
}

/// Reads and locks the live jobs that hold `keys`.
async fn lock_holders<C: deadpool_postgres::GenericClient + Sync>(
    tx: &C,
    s: &str,
    keys: &[&str],
) -> Result<Vec<JobRecord>, StoreError> {
    let sql = format!(
        "SELECT record FROM {s}.jobs WHERE unique_key = ANY($1) AND status IN ('PENDING', 'RUNNING') ORDER BY job_id FOR UPDATE"
    );
    records(tx, &sql, &[&keys]).await
}

/// Whether `rec` holds its unique key (a live job).
fn holds_key(rec: &JobRecord) -> bool {
    matches!(rec.status, Status::Pending | Status::Running)
}

/// A write applied to the rows as the group has them so far (pure: nothing is written here).
fn apply(
    op: &Op,
    rows: &FastMap<String, Arc<JobRecord>>,
    holders: &FastMap<String, String>,
    live_children: &FastSet<String>,
    now: i64,
    unclaimed: bool,
) -> Applied {
    let claim = |c: &Option<Claimant>| c.as_ref().filter(|_| !unclaimed).cloned();
    match op {
        Op::Insert { jobs, claim: c } => insert(jobs, claim(c).as_ref(), rows, holders, now),
        Op::Start {
            job_id,
            claim: c,
            by,
        } => start(job_id, claim(c).as_ref(), by.as_deref(), rows, now),
        Op::Stop { job_id, kind, by } => stop(job_id, *kind, by.as_deref(), rows, now),
        Op::Finish { ends, retry, units } => {
            Ok(finish(ends, *retry, units, rows, live_children, now))
        }
        Op::Step {
            job_id,
            host,
            attempt,
            name,
            value,
        } => {
            let rec = rows
                .get(job_id)
                .filter(|r| transitions::in_run(r, host, *attempt))
                .ok_or_else(|| StoreError::RunLost(job_id.clone()))?;
            let next = Arc::new(transitions::store_step(rec, name, value.clone(), now));
            Ok((
                Done::Step,
                Effects {
                    written: vec![next],
                    ..Effects::default()
                },
            ))
        }
        Op::Event {
            target,
            name,
            payload,
            by,
        } => {
            let id = match target {
                crate::store::EventTarget::Job(id) => id.clone(),
                crate::store::EventTarget::Key(k) => holders
                    .get(k)
                    .filter(|id| rows.get(*id).is_some_and(|r| holds_key(r)))
                    .cloned()
                    .ok_or_else(|| StoreError::NotFound(format!("unique_key={k}")))?,
            };
            let rec = rows.get(&id).ok_or(StoreError::NotFound(id))?;
            let next = Arc::new(transitions::deliver_event(
                rec,
                name,
                payload.clone(),
                now,
                by.as_deref(),
            )?);
            Ok((
                Done::Event(next.clone()),
                Effects {
                    written: vec![next],
                    ..Effects::default()
                },
            ))
        }
        // Needs its candidates: applied by the group (see `claim`).
        Op::Claim { .. } => Ok((Done::Claim(Vec::new()), Effects::default())),
    }
}

fn insert(
    jobs: &[NewJob],
    claim: Option<&Claimant>,
    rows: &FastMap<String, Arc<JobRecord>>,
    holders: &FastMap<String, String>,
    now: i64,
) -> Applied {
    let mut seen: FastMap<&str, usize> = FastMap::default();
    for (i, j) in jobs.iter().enumerate() {
        if seen.insert(j.job_id.as_str(), i).is_some() {
            return Err(StoreError::DuplicateInBatch {
                index: i,
                job_id: j.job_id.clone(),
            });
        }
    }
    if let Some(j) = jobs.iter().find(|j| {
        rows.get(&j.job_id)
            .is_some_and(|r| r.status != Status::Deleted && !transitions::same_child(r, j))
    }) {
        return Err(StoreError::AlreadyExists(j.job_id.clone()));
    }
    for (i, j) in jobs.iter().enumerate() {
        for d in &j.depends_on {
            let earlier = seen.get(d.job_id.as_str()).is_some_and(|&k| k < i);
            if !earlier && !rows.contains_key(&d.job_id) {
                return Err(StoreError::UnknownDependency {
                    job_id: j.job_id.clone(),
                    dependency: d.job_id.clone(),
                });
            }
        }
    }
    // Holders of keys: the live jobs found, and the jobs of this insert as they go.
    let mut mine: FastMap<&str, Arc<JobRecord>> = FastMap::default();
    let mut results: Vec<Inserted> = Vec::with_capacity(jobs.len());
    let mut fresh: Vec<usize> = Vec::new();
    // The batch's jobs by id (their index in `results`), and the jobs outside it told of a
    // new dependent.
    let mut batch: FastMap<&str, usize> = FastMap::default();
    let mut linked: FastMap<String, Arc<JobRecord>> = FastMap::default();
    for j in jobs {
        // A re-run of the parent enqueues the same child: the job there is it.
        if let Some(r) = rows.get(&j.job_id)
            && transitions::same_child(r, j)
        {
            results.push(Inserted {
                job: r.clone(),
                duplicate: true,
            });
            continue;
        }
        if let Some(k) = j.unique_key.as_deref() {
            let held = mine.get(k).cloned().or_else(|| {
                holders
                    .get(k)
                    .and_then(|id| rows.get(id))
                    .filter(|r| holds_key(r) && r.unique_key.as_deref() == Some(k))
                    .cloned()
            });
            if let Some(h) = held {
                results.push(Inserted {
                    job: h,
                    duplicate: true,
                });
                continue;
            }
        }
        let mut rec = Arc::new(transitions::insert(j, now));
        if !j.depends_on.is_empty() {
            let deps: Vec<Arc<JobRecord>> = j
                .depends_on
                .iter()
                .filter_map(|d| {
                    batch
                        .get(d.job_id.as_str())
                        .map(|&k| results[k].job.clone())
                        .or_else(|| linked.get(&d.job_id).cloned())
                        .or_else(|| rows.get(&d.job_id).cloned())
                })
                .collect();
            let refs: Vec<&JobRecord> = deps.iter().map(|d| &**d).collect();
            rec = Arc::new(transitions::await_dependencies((*rec).clone(), &refs, now));
            if rec.waiting_for.is_some() {
                for d in deps.iter().filter(|d| !d.status.is_terminal()) {
                    let told = Arc::new(transitions::add_dependent(d, &j.job_id));
                    match batch.get(d.job_id.as_str()) {
                        Some(&k) => results[k].job = told,
                        None => {
                            linked.insert(d.job_id.clone(), told);
                        }
                    }
                }
            }
        }
        if let Some(k) = j.unique_key.as_deref() {
            mine.insert(k, rec.clone());
        }
        batch.insert(j.job_id.as_str(), results.len());
        fresh.push(results.len());
        results.push(Inserted {
            job: rec,
            duplicate: false,
        });
    }
    let mut claimed = Vec::new();
    if let Some(c) = claim {
        let lease_until = now.saturating_add(c.lease.as_micros() as i64);
        let mut due: Vec<(std::cmp::Reverse<i32>, i64, usize)> = fresh
            .iter()
            .filter_map(|&i| {
                let r = &results[i].job;
                let at = r.scheduled_at?;
                (at <= now && c.has_type(&r.job_type)).then_some((
                    std::cmp::Reverse(r.priority),
                    at,
                    i,
                ))
            })
            .collect();
        due.sort_unstable();
        due.truncate(c.max);
        for (_, _, i) in due {
            let r = Arc::new(transitions::claim(
                &results[i].job,
                &c.host,
                c.code_of(&results[i].job.job_type),
                lease_until,
                now,
            ));
            results[i].job = r.clone();
            claimed.push(r);
        }
    }
    let written = fresh
        .iter()
        .map(|&i| results[i].job.clone())
        .chain(linked.into_values())
        .collect();
    Ok((
        Done::Insert(InsertOutcome {
            jobs: results,
            claimed: claimed.clone(),
        }),
        Effects {
            written,
            claimed,
            notes: Vec::new(),
        },
    ))
}

fn start(
    job_id: &str,
    claim: Option<&Claimant>,
    by: Option<&str>,
    rows: &FastMap<String, Arc<JobRecord>>,
    now: i64,
) -> Applied {
    let rec = rows
        .get(job_id)
        .ok_or_else(|| StoreError::NotFound(job_id.to_string()))?;
    let mut next = transitions::start(rec, now, by)?;
    if let Some(c) = claim
        && next.scheduled_at.is_some_and(|at| at <= now)
        && c.has_type(&next.job_type)
    {
        let lease_until = now.saturating_add(c.lease.as_micros() as i64);
        next = transitions::claim(&next, &c.host, c.code_of(&next.job_type), lease_until, now);
    }
    let next = Arc::new(next);
    let claimed = next.status == Status::Running;
    Ok((
        Done::Start(StartOutcome {
            job: next.clone(),
            claimed,
        }),
        Effects {
            written: vec![next.clone()],
            claimed: if claimed { vec![next] } else { Vec::new() },
            notes: Vec::new(),
        },
    ))
}

fn stop(
    job_id: &str,
    kind: StopKind,
    by: Option<&str>,
    rows: &FastMap<String, Arc<JobRecord>>,
    now: i64,
) -> Applied {
    let rec = rows
        .get(job_id)
        .ok_or_else(|| StoreError::NotFound(job_id.to_string()))?;
    let (job, changed) = match transitions::request_stop(rec, kind, now, by)? {
        Stop::Unchanged => (rec.clone(), false),
        Stop::Ended(r) | Stop::Signal(r) => (Arc::new(r), true),
    };
    let mut notes = Vec::new();
    let outcome = match job
        .host
        .as_ref()
        .map(|h| h.to_string())
        .filter(|_| job.status == Status::Running)
    {
        Some(host) => {
            notes.push(stop_payload(
                &job,
                &host,
                job.stop_requested.unwrap_or(kind),
            ));
            StopOutcome::Signalled {
                host,
                job: job.clone(),
            }
        }
        None => StopOutcome::Ended(job.clone()),
    };
    Ok((
        Done::Stop(outcome),
        Effects {
            written: if changed { vec![job] } else { Vec::new() },
            claimed: Vec::new(),
            notes,
        },
    ))
}

fn finish(
    ends: &[Finish],
    retry: RetryPolicy,
    units: &[f64],
    rows: &FastMap<String, Arc<JobRecord>>,
    live_children: &FastSet<String>,
    now: i64,
) -> (Done, Effects) {
    let mut out = Vec::with_capacity(ends.len());
    let mut fx = Effects::default();
    // Two ends of one job in one call: the second sees the first's record.
    let mut mine: FastMap<&str, Arc<JobRecord>> = FastMap::default();
    for (e, unit) in ends.iter().zip(units.iter().copied()) {
        let rec = mine
            .get(e.job_id.as_str())
            .or_else(|| rows.get(&e.job_id))
            .cloned();
        match rec {
            Some(rec) if transitions::in_run(&rec, &e.host, e.attempt) => {
                if rec.stop_requested.is_some() {
                    // Whoever asked, on whichever host, waits for this end.
                    fx.notes.push(format!("ended {}", e.job_id));
                }
                // An awaited child this group wrote counts as it now stands; any other as
                // committed.
                let end = e.end.clone().count_awaited(|id| match mine.get(id) {
                    Some(r) => !r.status.is_terminal(),
                    None => match rows.get(id) {
                        Some(r) => !r.status.is_terminal(),
                        None => live_children.contains(id),
                    },
                });
                let next = Arc::new(transitions::end_run(&rec, end, now, retry, unit));
                mine.insert(e.job_id.as_str(), next.clone());
                fx.written.push(next.clone());
                out.push(Some(next));
            }
            _ => out.push(None),
        }
    }
    (Done::Finish(out), fx)
}
