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
use crate::limits::{Gate, QueueRecord, QueueSpec, Running};
use crate::store::{QueueDepth, QueueStore};

fn parse_queue(text: &str) -> Result<QueueRecord, StoreError> {
    serde_json::from_str(text).map_err(|e| StoreError::Record(Arc::new(e)))
}

/// The settings as this host has them, and whether any holds claims back.
#[derive(Default)]
pub(super) struct Specs {
    pub(super) map: Mutex<Arc<HashMap<String, QueueSpec>>>,
    pub(super) limited: std::sync::atomic::AtomicBool,
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
        if let Err(e) = reload(&inner).await {
            tracing::warn!(error = %e, "cannot read the queues' settings");
        }
    });
}

/// The candidates of a claim that some queue's settings may hold back, and the decision over
/// them: under the lock every limited claim takes, the settings and what runs, then the jobs
/// due in claim order, passing over the queues and keys already full (more than `max`, so
/// that a few jobs of a full key do not leave the claim short).
pub(super) async fn limited_candidates(
    c: &deadpool_postgres::Client,
    s: &str,
    claimant: &Claimant,
    now: i64,
) -> Result<(Vec<JobRecord>, Gate), StoreError> {
    let lock_sql = format!("SELECT pg_advisory_xact_lock(hashtext('queuemgr limited claims {s}'))");
    let specs_sql = format!("SELECT record FROM {s}.queues");
    let running_sql = format!(
        "SELECT queue, concurrency_key, count(*) FROM {s}.jobs WHERE status = 'RUNNING'
         GROUP BY queue, concurrency_key"
    );
    let candidates_sql = format!(
        "WITH run AS (
             SELECT queue, concurrency_key, count(*) AS n FROM {s}.jobs WHERE status = 'RUNNING'
             GROUP BY queue, concurrency_key),
         full_queues AS (
             SELECT q.name FROM {s}.queues q
             WHERE q.paused
                OR q.concurrency <= (SELECT coalesce(sum(n), 0) FROM run WHERE run.queue = q.name)),
         full_keys AS (
             SELECT run.queue, run.concurrency_key FROM run JOIN {s}.queues q ON q.name = run.queue
             WHERE run.concurrency_key IS NOT NULL AND q.key_concurrency <= run.n)
         SELECT record FROM {s}.jobs
         WHERE status = 'PENDING' AND scheduled_at IS NOT NULL AND scheduled_at <= $1
           AND job_type = ANY($2)
           AND queue NOT IN (SELECT name FROM full_queues)
           AND (concurrency_key IS NULL
                OR (queue, concurrency_key) NOT IN (SELECT queue, concurrency_key FROM full_keys))
         ORDER BY priority DESC, scheduled_at, seq
         LIMIT $3 FOR UPDATE SKIP LOCKED"
    );
    // Prepared first (cached after the first claim), so that the four go out in this order.
    let (l, q, r, k) = futures::try_join!(
        c.prepare_cached(&lock_sql),
        c.prepare_cached(&specs_sql),
        c.prepare_cached(&running_sql),
        c.prepare_cached(&candidates_sql),
    )
    .map_err(db)?;
    let types: Vec<&str> = claimant.job_types.iter().map(String::as_str).collect();
    let limit = (claimant.max as i64).saturating_mul(4).min(10_000);
    let params: [&(dyn tokio_postgres::types::ToSql + Sync); 3] = [&now, &types, &limit];
    let (_, specs, running, candidates) = futures::try_join!(
        c.execute(&l, &[]),
        c.query(&q, &[]),
        c.query(&r, &[]),
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
    let jobs = candidates
        .iter()
        .map(|row| parse(row.get(0)))
        .collect::<Result<Vec<_>, _>>()?;
    Ok((jobs, Gate::new(specs, counts)))
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
        let read_sql = self.sql("SELECT record FROM {s}.queues WHERE name = $1 FOR UPDATE");
        let write_sql = self.sql(
            "INSERT INTO {s}.queues (name, paused, concurrency, key_concurrency, record)
             VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (name) DO UPDATE SET paused = EXCLUDED.paused,
               concurrency = EXCLUDED.concurrency, key_concurrency = EXCLUDED.key_concurrency,
               record = EXCLUDED.record",
        );
        let channel = self.inner.channel.clone();
        Box::pin(async move {
            let rec = self
                .tx(move |tx| {
                    Box::pin(async move {
                        let mut rec = rec;
                        let name = rec.spec.name.clone();
                        if let Some(row) = tx.query_opt(&read_sql, &[&name]).await.map_err(db)? {
                            rec.created_at = parse_queue(row.get(0))?.created_at;
                        }
                        let text = serde_json::to_string(&rec)
                            .map_err(|e| StoreError::Record(Arc::new(e)))?;
                        let as_int = |v: Option<u32>| v.map(|n| n.min(i32::MAX as u32) as i32);
                        tx.execute(
                            &write_sql,
                            &[
                                &name,
                                &rec.spec.paused,
                                &as_int(rec.spec.concurrency),
                                &as_int(rec.spec.key_concurrency),
                                &text,
                            ],
                        )
                        .await
                        .map_err(db)?;
                        // Every host reads the settings again; held-back jobs may be claimable.
                        notify(tx, &channel, "queues").await?;
                        notify(tx, &channel, "runnable").await?;
                        Ok((rec, 0))
                    })
                })
                .await?;
            if let Err(e) = reload(&self.inner).await {
                tracing::warn!(error = %e, "cannot read the queues' settings");
            }
            self.inner.channels.wake();
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
}
