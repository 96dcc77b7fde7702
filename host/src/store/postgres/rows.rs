//! Job rows: whole records written (insert or update by id) in one statement, rows locked for
//! a transition, records parsed back. The whole record is kept as JSON text beside the columns
//! the queries filter and order on, so a record round-trips exactly and the indexes stay small.

use super::*;

pub(super) fn parse(text: &str) -> Result<JobRecord, StoreError> {
    serde_json::from_str(text).map_err(|e| StoreError::Record(Arc::new(e)))
}

/// Writes whole records (insert or update by job id) in one statement.
///
/// With `tell`, the other hosts are told of the changed jobs (a `changed` notification, sent
/// in the same transaction, so only on commit, and pipelined with the write).
pub(super) async fn upsert<C: deadpool_postgres::GenericClient + Sync>(
    tx: &C,
    s: &str,
    recs: &[Arc<JobRecord>],
    tell: Option<&Tell>,
) -> Result<(), StoreError> {
    if recs.is_empty() {
        return Ok(());
    }
    let mut ids = Vec::with_capacity(recs.len());
    let mut types = Vec::with_capacity(recs.len());
    let mut statuses = Vec::with_capacity(recs.len());
    let mut prios = Vec::with_capacity(recs.len());
    let mut sched: Vec<Option<i64>> = Vec::with_capacity(recs.len());
    let mut hosts: Vec<Option<&str>> = Vec::with_capacity(recs.len());
    let mut leases: Vec<Option<i64>> = Vec::with_capacity(recs.len());
    let mut keys: Vec<Option<&str>> = Vec::with_capacity(recs.len());
    let mut queues: Vec<&str> = Vec::with_capacity(recs.len());
    let mut ckeys: Vec<Option<&str>> = Vec::with_capacity(recs.len());
    let mut parents: Vec<Option<&str>> = Vec::with_capacity(recs.len());
    let mut created = Vec::with_capacity(recs.len());
    let mut updated = Vec::with_capacity(recs.len());
    let mut ended: Vec<Option<i64>> = Vec::with_capacity(recs.len());
    let mut texts = Vec::with_capacity(recs.len());
    for r in recs {
        ids.push(r.job_id.as_str());
        types.push(r.job_type.as_str());
        statuses.push(r.status.as_str());
        prios.push(r.priority);
        sched.push(r.scheduled_at.filter(|_| r.status == Status::Pending));
        hosts.push(r.host.as_deref());
        leases.push(r.lease_until.filter(|_| r.status == Status::Running));
        keys.push(r.unique_key.as_deref());
        queues.push(r.queue.as_str());
        ckeys.push(r.concurrency_key.as_deref());
        parents.push(r.parent.as_deref());
        created.push(r.created_at);
        updated.push(r.updated_at);
        ended.push(
            r.status
                .is_terminal()
                .then(|| r.completed_at.unwrap_or(r.updated_at)),
        );
        texts.push(serde_json::to_string(&**r).map_err(|e| StoreError::Record(Arc::new(e)))?);
    }
    let stmt = prepare_upsert(tx, s).await?;
    let write = async {
        tx.execute(
            &stmt,
            &[
                &ids, &types, &statuses, &prios, &sched, &hosts, &leases, &keys, &created,
                &updated, &ended, &texts, &queues, &ckeys, &parents,
            ],
        )
        .await
        .map_err(db)
    };
    let told = async {
        if let Some(t) = tell {
            for p in changed_payloads(t.origin, &ids) {
                notify(tx, &t.channel, &p).await?;
            }
        }
        Ok::<_, StoreError>(())
    };
    futures::try_join!(write, told)?;
    Ok(())
}

/// The upsert's statement (prepared once per connection).
pub(super) async fn prepare_upsert<C: deadpool_postgres::GenericClient + Sync>(
    tx: &C,
    s: &str,
) -> Result<tokio_postgres::Statement, StoreError> {
    let sql = format!(
        "INSERT INTO {s}.jobs (job_id, job_type, status, priority, scheduled_at, host, lease_until, unique_key, created_at, updated_at, ended_at, record, queue, concurrency_key, parent)
         SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::int4[], $5::int8[], $6::text[], $7::int8[], $8::text[], $9::int8[], $10::int8[], $11::int8[], $12::text[], $13::text[], $14::text[], $15::text[])
         ON CONFLICT (job_id) DO UPDATE SET job_type = EXCLUDED.job_type, status = EXCLUDED.status,
           priority = EXCLUDED.priority, scheduled_at = EXCLUDED.scheduled_at, host = EXCLUDED.host,
           lease_until = EXCLUDED.lease_until, unique_key = EXCLUDED.unique_key,
           created_at = EXCLUDED.created_at, updated_at = EXCLUDED.updated_at,
           ended_at = EXCLUDED.ended_at, record = EXCLUDED.record, queue = EXCLUDED.queue,
           concurrency_key = EXCLUDED.concurrency_key, parent = EXCLUDED.parent"
    );
    tx.prepare_cached(&sql).await.map_err(db)
}

/// The records a `SELECT record …` statement returns (prepared once per connection).
pub(super) async fn records<C: deadpool_postgres::GenericClient + Sync>(
    c: &C,
    sql: &str,
    params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
) -> Result<Vec<JobRecord>, StoreError> {
    let stmt = c.prepare_cached(sql).await.map_err(db)?;
    let rows = c.query(&stmt, params).await.map_err(db)?;
    rows.iter().map(|r| parse(r.get(0))).collect()
}

/// Reads and locks the rows of `ids`, in id order (so that transactions locking overlapping
/// sets cannot deadlock each other).
pub(super) async fn lock_rows<C: deadpool_postgres::GenericClient + Sync>(
    tx: &C,
    s: &str,
    ids: &[&str],
) -> Result<FastMap<String, JobRecord>, StoreError> {
    if ids.is_empty() {
        return Ok(FastMap::default());
    }
    let sql =
        format!("SELECT record FROM {s}.jobs WHERE job_id = ANY($1) ORDER BY job_id FOR UPDATE");
    Ok(records(tx, &sql, &[&ids])
        .await?
        .into_iter()
        .map(|rec| (rec.job_id.clone(), rec))
        .collect())
}

/// Tells the jobs that wait on the jobs in `ended` (which the transaction ended) — their
/// parents and dependents — locking the rows it has not got (after the ended jobs' own), and,
/// round after round, the waiters of the dependents that end because of it. `rows` holds the
/// transaction's rows as they stand and is kept so; returns the waiters changed, each once, in
/// the order first changed.
pub(super) async fn tell_waiters<C: deadpool_postgres::GenericClient + Sync>(
    tx: &C,
    s: &str,
    rows: &mut FastMap<String, Arc<JobRecord>>,
    mut ended: Vec<Arc<JobRecord>>,
    now: i64,
) -> Result<Vec<Arc<JobRecord>>, StoreError> {
    let mut order: Vec<String> = Vec::new();
    while !ended.is_empty() {
        let missing: Vec<&str> = ended
            .iter()
            .flat_map(|e| transitions::waiters(e))
            .filter(|w| !rows.contains_key(*w))
            .collect();
        let found = lock_rows(tx, s, &missing).await?;
        for (id, rec) in found {
            rows.insert(id, Arc::new(rec));
        }
        let mut next_round = Vec::new();
        for e in std::mem::take(&mut ended) {
            for w in transitions::waiters(&e) {
                let Some(rec) = rows.get(w).cloned() else {
                    continue;
                };
                if let Some(next) = transitions::tell_waiter(&rec, &e, now) {
                    let next = Arc::new(next);
                    if !transitions::ended_waiters(Some(&rec), &next).is_empty() {
                        next_round.push(next.clone());
                    }
                    if !order.iter().any(|o| o == w) {
                        order.push(w.to_string());
                    }
                    rows.insert(w.to_string(), next);
                }
            }
        }
        ended = next_round;
    }
    Ok(order
        .into_iter()
        .filter_map(|id| rows.get(&id).cloned())
        .collect())
}
