//! Named queues on PostgreSQL: one row per queue with settings (the columns a limited claim
//! reads, and the record as JSON), a copy of them on every host (read at open, after every
//! change any host makes — a `queues` notification — and with every announcement), and the
//! limited claim.
//!
//! Why one advisory lock for every limited claim: two hosts that each count what runs and each
//! take "the last place" would together run past a limit. A claim that some queue's settings
//! may hold back takes the lock first, then counts (under READ COMMITTED each statement sees
//! what committed before it, so it sees the claims made under the lock before it), picks and
//! commits; claims are batched (one per host's free slots), so taking turns costs little. A
//! store whose copy says no queue limits anything claims on its fast path and takes no lock.

use super::*;
use crate::limits::{Bucket, Gate, Place, QueueRecord, QueueSpec, Running, fair_order};
use crate::store::{QueueDepth, QueueStore};

fn parse_queue(text: &str) -> Result<QueueRecord, StoreError> {
    serde_json::from_str(text).map_err(|e| StoreError::Record(Arc::new(e)))
}

/// The settings as this host has them, and whether any holds claims back.
#[derive(Default)]
pub(super) struct Specs {
    pub(super) map: Mutex<Arc<HashMap<String, QueueSpec>>>,
    /// Whether some queue's settings hold claims back.
    pub(super) limited: std::sync::atomic::AtomicBool,
    /// Until when (µs) claims take keys in turn: keyed jobs were seen lately.
    keyed_until: std::sync::atomic::AtomicI64,
    /// Where the next fair claim starts among the keys.
    pub(super) cursor: Mutex<Option<(String, String)>>,
    /// How many keys the last fair claim looked at (0: unknown).
    pub(super) keys_seen: std::sync::atomic::AtomicU64,
    /// When this host last told the others that keyed jobs are runnable.
    keys_told: std::sync::atomic::AtomicI64,
    /// The key of the last job a fair claim of this host took (its next claim's turns start
    /// after it).
    pub(super) fair_last: Mutex<Option<(String, String)>>,
}

impl Specs {
    fn set(&self, recs: &[QueueRecord]) {
        let map: HashMap<String, QueueSpec> = recs
            .iter()
            .map(|r| (r.spec.name.clone(), r.spec.clone()))
            .collect();
        self.limited.store(
            map.values().any(QueueSpec::limits),
            std::sync::atomic::Ordering::Release,
        );
        *lock(&self.map) = Arc::new(map);
    }

    /// Whether some queue's settings hold claims back (as this host last read them).
    pub(super) fn limited(&self) -> bool {
        self.limited.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Runnable jobs with a concurrency key were seen (added here, claimed, or found).
    pub(super) fn saw_keys(&self, now: i64) {
        self.keyed_until.fetch_max(
            now.saturating_add(KEYED_WINDOW_US),
            std::sync::atomic::Ordering::AcqRel,
        );
    }

    /// Whether to tell the other hosts that keyed jobs are runnable (at most every
    /// [`KEYED_NOTE_US`]); marks it told.
    pub(super) fn tell_keys(&self, now: i64) -> bool {
        use std::sync::atomic::Ordering;
        self.saw_keys(now);
        let last = self.keys_told.load(Ordering::Acquire);
        now.saturating_sub(last) >= KEYED_NOTE_US
            && self
                .keys_told
                .compare_exchange(last, now, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
    }

    /// Whether claims take keys in turn now.
    pub(super) fn keyed(&self, now: i64) -> bool {
        self.keyed_until.load(std::sync::atomic::Ordering::Acquire) > now
    }
}

async fn read_queues<C: deadpool_postgres::GenericClient + Sync>(
    c: &C,
    s: &str,
) -> Result<Vec<QueueRecord>, StoreError> {
    let stmt = c
        .prepare_cached(&format!("SELECT record FROM {s}.queues ORDER BY name"))
        .await
        .map_err(db)?;
    let rows = c.query(&stmt, &[]).await.map_err(db)?;
    rows.iter().map(|r| parse_queue(r.get(0))).collect()
}

/// Reads the settings again into this host's copy.
pub(super) async fn reload(inner: &Inner) -> Result<(), StoreError> {
    let c = inner.pool.get().await.map_err(pool_err)?;
    let recs = read_queues(&c, &inner.s).await?;
    inner.specs.set(&recs);
    Ok(())
}

/// Reloads in the background (from the listener, which must not wait on a query).
pub(super) fn reload_soon(inner: Arc<Inner>) {
    tokio::spawn(async move {
        match reload(&inner).await {
            // A claim that found a limit it did not know of took nothing: claim again.
            Ok(()) => inner.channels.wake(),
            Err(e) => tracing::warn!(error = %e, "cannot read the queues' settings"),
        }
    });
}

/// How long after keyed jobs were last seen claims keep taking keys in turn.
const KEYED_WINDOW_US: i64 = 30_000_000;

/// How often a host that adds keyed jobs tells the others (a `keyed` notification).
const KEYED_NOTE_US: i64 = 5_000_000;

/// The candidates of a claim where some queue's settings may hold jobs back (`limited`) or
/// jobs with concurrency keys may be runnable: in the order the claim takes them (see
/// [`crate::limits::fair_order`]), with the decision over them (when limited).
pub(super) struct Pick {
    /// The candidates, locked, in the claim's order.
    pub(super) jobs: Vec<JobRecord>,
    /// The settings, what runs and the rate buckets, read under the limits' lock.
    pub(super) gate: Option<Gate>,
}

/// Reads a fair (and, if `limited`, limited) claim's candidates: under the lock every limited
/// claim takes, the settings, what runs and the rate buckets; then the jobs due in plain order
/// and the first jobs of each key (a skip scan over the keys from where the last claim
/// stopped), passing over the queues, keys and buckets already full.
pub(super) async fn general_candidates(
    c: &deadpool_postgres::Client,
    inner: &Inner,
    claimant: &Claimant,
    now: i64,
    limited: bool,
) -> Result<Pick, StoreError> {
    let s = &inner.s;
    let excl = if limited {
        "AND queue NOT IN (SELECT name FROM full_queues)
         AND (concurrency_key IS NULL
              OR (queue, concurrency_key) NOT IN (SELECT queue, concurrency_key FROM full_keys))
         AND ('q' || chr(31) || queue) NOT IN (SELECT bucket FROM rated)
         AND (concurrency_key IS NULL
              OR ('k' || chr(31) || queue || chr(31) || concurrency_key) NOT IN (SELECT bucket FROM rated))"
    } else {
        ""
    };
    let limits = if limited {
        format!(
            "run AS (
                 SELECT queue, concurrency_key, count(*) AS n FROM {s}.jobs
                 WHERE status = 'RUNNING' GROUP BY queue, concurrency_key),
             full_queues AS (
                 SELECT q.name FROM {s}.queues q
                 WHERE q.paused
                    OR q.concurrency <= (SELECT coalesce(sum(n), 0) FROM run WHERE run.queue = q.name)),
             full_keys AS (
                 SELECT run.queue, run.concurrency_key FROM run JOIN {s}.queues q ON q.name = run.queue
                 WHERE run.concurrency_key IS NOT NULL AND q.key_concurrency <= run.n),
             rated AS (SELECT bucket FROM {s}.rate_buckets WHERE reopen > $1),"
        )
    } else {
        String::new()
    };
    let due = "status = 'PENDING' AND scheduled_at IS NOT NULL";
    let candidates_sql = format!(
        "WITH RECURSIVE {limits}
         plain AS (
             SELECT job_id, queue, concurrency_key FROM {s}.jobs
             WHERE {due} AND scheduled_at <= $1 AND job_type = ANY($2) {excl}
             ORDER BY priority DESC, scheduled_at, seq LIMIT $3),
         keys AS (
             (SELECT queue, concurrency_key FROM {s}.jobs
              WHERE {due} AND concurrency_key IS NOT NULL
                AND (queue, concurrency_key) > ($4::text, $5::text)
                -- Only when the first jobs in plain order are not already spread over enough
                -- keys to fill the claim one job a key: then no key dominates them, and the
                -- walk over the keys would find nothing the claim lacks.
                AND (SELECT count(DISTINCT (queue, concurrency_key)) FROM plain) < greatest($8::int8, 2)
              ORDER BY queue, concurrency_key LIMIT 1)
             UNION ALL
             SELECT n.queue, n.concurrency_key FROM keys k CROSS JOIN LATERAL (
                 SELECT queue, concurrency_key FROM {s}.jobs
                 WHERE {due} AND concurrency_key IS NOT NULL
                   AND (queue, concurrency_key) > (k.queue, k.concurrency_key)
                 ORDER BY queue, concurrency_key LIMIT 1) n),
         some_keys AS (SELECT queue, concurrency_key FROM keys LIMIT $6),
         last_key AS (
             SELECT queue, concurrency_key, (SELECT count(*) FROM some_keys) AS n FROM some_keys
             ORDER BY queue DESC, concurrency_key DESC LIMIT 1),
         heads AS (
             SELECT h.job_id FROM some_keys k CROSS JOIN LATERAL (
                 SELECT job_id FROM {s}.jobs
                 WHERE queue = k.queue AND concurrency_key = k.concurrency_key
                   AND {due} AND scheduled_at <= $1 AND job_type = ANY($2) {excl}
                 ORDER BY priority DESC, scheduled_at, seq LIMIT $7) h)
         SELECT record, seq, (SELECT queue FROM last_key), (SELECT concurrency_key FROM last_key),
                (SELECT n FROM last_key)
         FROM {s}.jobs
         WHERE job_id = ANY (ARRAY (SELECT job_id FROM plain UNION SELECT job_id FROM heads))
           AND {due}
         FOR UPDATE SKIP LOCKED"
    );
    let types: Vec<&str> = claimant.job_types.iter().map(String::as_str).collect();
    // The keys' heads bring the variety; plain order needs a little more than a claim only
    // where limits pass some of it over.
    let limit = (claimant.max as i64)
        .saturating_mul(if limited { 2 } else { 1 })
        .min(10_000);
    let (from_q, from_k) = lock(&inner.specs.cursor).clone().unwrap_or_default();
    let seen = inner
        .specs
        .keys_seen
        .load(std::sync::atomic::Ordering::Acquire);
    let (fair_keys, fair_heads) =
        crate::limits::fair_span(claimant.max, (seen > 0).then_some(seen as usize));
    let (fair_keys, fair_heads) = (fair_keys as i64, fair_heads as i64);
    let enough = claimant.max as i64;
    let params: [&(dyn tokio_postgres::types::ToSql + Sync); 8] = [
        &now,
        &types,
        &limit,
        &from_q,
        &from_k,
        &fair_keys,
        &fair_heads,
        &enough,
    ];
    let (candidates, gate) = if limited {
        let lock_sql =
            format!("SELECT pg_advisory_xact_lock(hashtext('queuemgr limited claims {s}'))");
        let specs_sql = format!("SELECT record FROM {s}.queues");
        let running_sql = format!(
            "SELECT queue, concurrency_key, count(*) FROM {s}.jobs WHERE status = 'RUNNING'
             GROUP BY queue, concurrency_key"
        );
        let buckets_sql =
            format!("SELECT bucket, tat, reopen FROM {s}.rate_buckets WHERE tat > $1");
        // Prepared first (cached after the first claim), so that they go out in this order.
        let (l, q, r, b, k) = futures::try_join!(
            c.prepare_cached(&lock_sql),
            c.prepare_cached(&specs_sql),
            c.prepare_cached(&running_sql),
            c.prepare_cached(&buckets_sql),
            c.prepare_cached(&candidates_sql),
        )
        .map_err(db)?;
        let at: [&(dyn tokio_postgres::types::ToSql + Sync); 1] = [&now];
        let (_, specs, running, buckets, candidates) = futures::try_join!(
            c.execute(&l, &[]),
            c.query(&q, &[]),
            c.query(&r, &[]),
            c.query(&b, &at),
            c.query(&k, &params),
        )
        .map_err(db)?;
        let specs = specs
            .iter()
            .map(|row| parse_queue(row.get(0)).map(|r| r.spec))
            .collect::<Result<Vec<_>, _>>()?;
        let mut counts = Running::default();
        for row in &running {
            let queue: &str = row.get(0);
            let key: Option<&str> = row.get(1);
            let n: i64 = row.get(2);
            counts.add(queue, key, n.max(0) as usize);
        }
        let buckets = buckets
            .iter()
            .map(|row| {
                (
                    row.get::<_, String>(0),
                    Bucket {
                        tat: row.get(1),
                        reopen: row.get(2),
                    },
                )
            })
            .collect();
        let gate = Gate::new(specs, counts).with_buckets(buckets, now);
        (candidates, Some(gate))
    } else {
        let k = c.prepare_cached(&candidates_sql).await.map_err(db)?;
        (c.query(&k, &params).await.map_err(db)?, None)
    };
    let mut jobs = Vec::with_capacity(candidates.len());
    let mut seqs = Vec::with_capacity(candidates.len());
    let mut next: Option<(String, String)> = None;
    for row in &candidates {
        jobs.push(parse(row.get(0))?);
        seqs.push(row.get::<_, i64>(1));
        let q: Option<String> = row.get(2);
        let k: Option<String> = row.get(3);
        let n: Option<i64> = row.get(4);
        if let (Some(q), Some(k), Some(n)) = (q, k, n) {
            // Round-robin across claims: the next starts after the last key looked at, unless
            // this one reached the end of the keys.
            next = (n >= fair_keys).then_some((q, k));
            inner
                .specs
                .keys_seen
                .store(n.max(0) as u64, std::sync::atomic::Ordering::Release);
        }
    }
    if jobs.iter().any(|j| j.concurrency_key.is_some()) {
        inner.specs.saw_keys(now);
    }
    *lock(&inner.specs.cursor) = next;
    let places: Vec<Place<'_>> = jobs
        .iter()
        .zip(&seqs)
        .map(|(j, &seq)| Place {
            priority: j.priority,
            at: j.scheduled_at.unwrap_or(now),
            seq: seq.max(0) as u64,
            group: j.concurrency_key.as_deref().map(|k| (j.queue.as_str(), k)),
        })
        .collect();
    let last = lock(&inner.specs.fair_last).clone();
    let order = fair_order(
        &places,
        last.as_ref().map(|(q, k)| (q.as_str(), k.as_str())),
    );
    drop(places);
    let mut slots: Vec<Option<JobRecord>> = jobs.into_iter().map(Some).collect();
    let jobs = order
        .into_iter()
        .filter_map(|i| slots.get_mut(i).and_then(Option::take))
        .collect();
    Ok(Pick { jobs, gate })
}

/// What a host that believes no queue is limited learns beside its claim.
pub(super) struct Probe {
    /// Runnable jobs with a concurrency key exist (the claims should take keys in turn).
    pub(super) keyed: bool,
    /// Some queue's settings hold claims back (another host set them; the notification has
    /// not arrived yet).
    pub(super) limited: bool,
}

/// Looks whether runnable keyed jobs, and limited queues, exist (two index probes, pipelined
/// with the claim, so that a host learns of what another host did before its notification).
pub(super) async fn probe(c: &deadpool_postgres::Client, s: &str) -> Result<Probe, StoreError> {
    let sql = format!(
        "SELECT EXISTS (SELECT 1 FROM {s}.jobs WHERE status = 'PENDING'
                 AND scheduled_at IS NOT NULL AND concurrency_key IS NOT NULL),
                EXISTS (SELECT 1 FROM {s}.queues WHERE limited)"
    );
    let stmt = c.prepare_cached(&sql).await.map_err(db)?;
    let row = c.query_one(&stmt, &[]).await.map_err(db)?;
    Ok(Probe {
        keyed: row.get(0),
        limited: row.get(1),
    })
}

/// Stores the rate buckets a claim moved (in the claim's transaction, under the limits' lock).
pub(super) async fn store_buckets(
    c: &deadpool_postgres::Client,
    s: &str,
    buckets: &[(String, Bucket)],
) -> Result<(), StoreError> {
    if buckets.is_empty() {
        return Ok(());
    }
    let sql = format!(
        "INSERT INTO {s}.rate_buckets (bucket, tat, reopen)
         SELECT * FROM UNNEST($1::text[], $2::int8[], $3::int8[])
         ON CONFLICT (bucket) DO UPDATE SET tat = EXCLUDED.tat, reopen = EXCLUDED.reopen"
    );
    let names: Vec<&str> = buckets.iter().map(|(n, _)| n.as_str()).collect();
    let tats: Vec<i64> = buckets.iter().map(|(_, b)| b.tat).collect();
    let reopens: Vec<i64> = buckets.iter().map(|(_, b)| b.reopen).collect();
    let stmt = c.prepare_cached(&sql).await.map_err(db)?;
    c.execute(&stmt, &[&names, &tats, &reopens])
        .await
        .map_err(db)?;
    Ok(())
}

impl QueueStore for PgStore {
    fn queues(&self) -> StoreFuture<'_, Vec<QueueRecord>> {
        Box::pin(self.bounded(async move {
            let c = self.inner.pool.get().await.map_err(pool_err)?;
            let recs = read_queues(&c, &self.inner.s).await?;
            self.inner.specs.set(&recs);
            Ok(recs)
        }))
    }

    fn put_queue(&self, rec: QueueRecord) -> StoreFuture<'_, QueueRecord> {
        Box::pin(async move {
            let name = rec.spec.name.clone();
            let stored = self
                .change_queue(&name, crate::store::local::replace_queue(rec))
                .await?;
            stored.ok_or_else(|| StoreError::Unavailable {
                reason: format!("queue '{name}' was not stored"),
                source: None,
            })
        })
    }

    fn change_queue<'a>(
        &'a self,
        name: &'a str,
        change: crate::store::QueueChange,
    ) -> StoreFuture<'a, Option<QueueRecord>> {
        let lock_sql =
            self.sql("SELECT pg_advisory_xact_lock(hashtext('queuemgr queue {s} ' || $1))");
        let read_sql = self.sql("SELECT record FROM {s}.queues WHERE name = $1 FOR UPDATE");
        let write_sql = self.sql(
            "INSERT INTO {s}.queues (name, paused, concurrency, key_concurrency, record, limited)
             VALUES ($1, $2, $3, $4, $5, $6)
             ON CONFLICT (name) DO UPDATE SET paused = EXCLUDED.paused,
               concurrency = EXCLUDED.concurrency, key_concurrency = EXCLUDED.key_concurrency,
               record = EXCLUDED.record, limited = EXCLUDED.limited",
        );
        let channel = self.inner.channel.clone();
        let name = name.to_string();
        Box::pin(async move {
            let (rec, changed) = self
                .tx(move |tx| {
                    Box::pin(async move {
                        // Two changes of one queue take turns, a new queue's too (no row to
                        // lock yet).
                        tx.execute(&lock_sql, &[&name]).await.map_err(db)?;
                        let old = match tx.query_opt(&read_sql, &[&name]).await.map_err(db)? {
                            Some(row) => Some(parse_queue(row.get(0))?),
                            None => None,
                        };
                        let Some(rec) = change(old.as_ref()) else {
                            return Ok(((old, false), 0));
                        };
                        let text = serde_json::to_string(&rec)
                            .map_err(|e| StoreError::Record(Arc::new(e)))?;
                        let as_int = |v: Option<u32>| v.map(|n| n.min(i32::MAX as u32) as i32);
                        tx.execute(
                            &write_sql,
                            &[
                                &rec.spec.name,
                                &rec.spec.paused,
                                &as_int(rec.spec.concurrency),
                                &as_int(rec.spec.key_concurrency),
                                &text,
                                &rec.spec.limits(),
                            ],
                        )
                        .await
                        .map_err(db)?;
                        // Every host reads the settings again; held-back jobs may be claimable.
                        notify(tx, &channel, "queues").await?;
                        notify(tx, &channel, "runnable").await?;
                        Ok(((Some(rec), true), 0))
                    })
                })
                .await?;
            if changed {
                if let Err(e) = reload(&self.inner).await {
                    tracing::warn!(error = %e, "cannot read the queues' settings");
                }
                self.inner.channels.wake();
            }
            Ok(rec)
        })
    }

    fn queue_specs(&self) -> Arc<HashMap<String, QueueSpec>> {
        lock(&self.inner.specs.map).clone()
    }

    fn queue_depths(&self) -> StoreFuture<'_, Vec<QueueDepth>> {
        let sql = self.sql(
            "SELECT queue, status, scheduled_at IS NOT NULL, count(*) FROM {s}.jobs
             WHERE status IN ('PENDING', 'RUNNING') GROUP BY 1, 2, 3 ORDER BY 1",
        );
        Box::pin(self.bounded(async move {
            let c = self.inner.pool.get().await.map_err(pool_err)?;
            let stmt = c.prepare_cached(&sql).await.map_err(db)?;
            let rows = c.query(&stmt, &[]).await.map_err(db)?;
            let mut out: Vec<QueueDepth> = Vec::new();
            for row in &rows {
                let queue: String = row.get(0);
                let status: &str = row.get(1);
                let started: bool = row.get(2);
                let n = row.get::<_, i64>(3).max(0) as usize;
                if out.last().is_none_or(|d| d.queue != queue) {
                    out.push(QueueDepth {
                        queue,
                        ..QueueDepth::default()
                    });
                }
                if let Some(d) = out.last_mut() {
                    match (status, started) {
                        ("RUNNING", _) => d.running += n,
                        (_, true) => d.waiting += n,
                        (_, false) => d.unstarted += n,
                    }
                }
            }
            Ok(out)
        }))
    }

    fn rate_reopen<'a>(&'a self, buckets: &'a [String]) -> StoreFuture<'a, Option<i64>> {
        let sql = self
            .sql("SELECT max(reopen) FROM {s}.rate_buckets WHERE bucket = ANY($1) AND reopen > $2");
        Box::pin(self.bounded(async move {
            let c = self.inner.pool.get().await.map_err(pool_err)?;
            let stmt = c.prepare_cached(&sql).await.map_err(db)?;
            let row = c
                .query_one(&stmt, &[&buckets, &now_micros()])
                .await
                .map_err(db)?;
            Ok(row.get::<_, Option<i64>>(0))
        }))
    }
}
