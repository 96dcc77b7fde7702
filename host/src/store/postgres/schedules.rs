//! Schedules on PostgreSQL: one row each, the record as JSON beside its cursor.
//!
//! A firing is one transaction: the schedules' rows locked (in name order, so that two hosts
//! firing overlapping sets cannot deadlock), each cursor compared with the one the caller read,
//! the slots' jobs inserted and the cursors moved, the other hosts told (`changed`,
//! `runnable`) — all committed together. A second host that read the same cursors finds them
//! moved and enqueues nothing: each slot is enqueued once however many hosts believe they lead.

use super::*;
use crate::schedule::{self, Firing, ScheduleRecord};
use crate::store::{Fired, PutSchedule, ScheduleStore};

fn parse_schedule(text: &str) -> Result<ScheduleRecord, StoreError> {
    serde_json::from_str(text).map_err(|e| StoreError::Record(Arc::new(e)))
}

fn text_of(rec: &ScheduleRecord) -> Result<String, StoreError> {
    serde_json::to_string(rec).map_err(|e| StoreError::Record(Arc::new(e)))
}

impl ScheduleStore for PgStore {
    fn schedules(&self) -> StoreFuture<'_, Vec<ScheduleRecord>> {
        Box::pin(self.bounded(async move {
            let c = self.inner.pool.get().await.map_err(pool_err)?;
            let stmt = c
                .prepare_cached(&self.sql("SELECT record FROM {s}.schedules ORDER BY name"))
                .await
                .map_err(db)?;
            let rows = c.query(&stmt, &[]).await.map_err(db)?;
            rows.iter().map(|r| parse_schedule(r.get(0))).collect()
        }))
    }

    fn put_schedule(
        &self,
        rec: ScheduleRecord,
        mode: PutSchedule,
    ) -> StoreFuture<'_, ScheduleRecord> {
        let lock_sql =
            self.sql("SELECT pg_advisory_xact_lock(hashtext('queuemgr schedule {s} ' || $1))");
        let read_sql = self.sql("SELECT record FROM {s}.schedules WHERE name = $1 FOR UPDATE");
        let write_sql = self.sql(
            "INSERT INTO {s}.schedules (name, cursor, record) VALUES ($1, $2, $3)
             ON CONFLICT (name) DO UPDATE SET cursor = EXCLUDED.cursor, record = EXCLUDED.record",
        );
        let channel = self.inner.channel.clone();
        Box::pin(async move {
            let rec = self
                .tx(move |tx| {
                    Box::pin(async move {
                        let name = rec.spec.name.clone();
                        // Two puts of one name at once (two hosts, or a manifest and a request)
                        // take turns, so a create never silently overwrites another.
                        tx.execute(&lock_sql, &[&name]).await.map_err(db)?;
                        let old = match tx.query_opt(&read_sql, &[&name]).await.map_err(db)? {
                            Some(row) => Some(parse_schedule(row.get(0))?),
                            None => None,
                        };
                        let new = schedule::put(old.as_ref(), rec, mode)?;
                        tx.execute(&write_sql, &[&name, &new.cursor, &text_of(&new)?])
                            .await
                            .map_err(db)?;
                        notify(tx, &channel, "schedules").await?;
                        Ok((new, 0))
                    })
                })
                .await?;
            self.inner.channels.schedules_changed().notify_one();
            Ok(rec)
        })
    }

    fn delete_schedule<'a>(&'a self, name: &'a str) -> StoreFuture<'a, Option<ScheduleRecord>> {
        let sql = self.sql("DELETE FROM {s}.schedules WHERE name = $1 RETURNING record");
        let channel = self.inner.channel.clone();
        Box::pin(async move {
            let name = name.to_string();
            let old = self
                .tx(move |tx| {
                    Box::pin(async move {
                        let old = match tx.query_opt(&sql, &[&name]).await.map_err(db)? {
                            Some(row) => Some(parse_schedule(row.get(0))?),
                            None => None,
                        };
                        notify(tx, &channel, "schedules").await?;
                        Ok((old, 0))
                    })
                })
                .await?;
            self.inner.channels.schedules_changed().notify_one();
            Ok(old)
        })
    }

    fn fire(&self, firings: Vec<Firing>) -> StoreFuture<'_, Vec<Fired>> {
        let read_sql = self
            .sql("SELECT record FROM {s}.schedules WHERE name = ANY($1) ORDER BY name FOR UPDATE");
        let exists_sql = self.sql("SELECT job_id FROM {s}.jobs WHERE job_id = ANY($1)");
        let move_sql = self.sql(
            "UPDATE {s}.schedules AS t SET cursor = v.cursor, record = v.record
             FROM UNNEST($1::text[], $2::int8[], $3::text[]) AS v(name, cursor, record)
             WHERE t.name = v.name",
        );
        let s = self.inner.s.clone();
        let tell = self.tell();
        let channel = self.inner.channel.clone();
        Box::pin(async move {
            if firings.is_empty() {
                return Ok(Vec::new());
            }
            let (fired, jobs) = self
                .tx(move |tx| {
                    Box::pin(async move {
                        let names: Vec<&str> = firings.iter().map(|f| f.name.as_str()).collect();
                        let ids: Vec<&str> = firings
                            .iter()
                            .flat_map(|f| f.jobs.iter().map(|j| j.job_id.as_str()))
                            .collect();
                        let read = async { tx.query(&read_sql, &[&names]).await.map_err(db) };
                        let exist = async { tx.query(&exists_sql, &[&ids]).await.map_err(db) };
                        let (rows, existing) = futures::try_join!(read, exist)?;
                        let mut current: HashMap<String, ScheduleRecord> = HashMap::new();
                        for row in &rows {
                            let r = parse_schedule(row.get(0))?;
                            current.insert(r.spec.name.clone(), r);
                        }
                        let existing: std::collections::HashSet<String> =
                            existing.iter().map(|r| r.get::<_, String>(0)).collect();
                        let now = now_micros();
                        let mut fired = Vec::new();
                        let mut all_jobs: Vec<Arc<JobRecord>> = Vec::new();
                        let (mut mv_names, mut mv_cursors, mut mv_texts) =
                            (Vec::new(), Vec::new(), Vec::new());
                        for f in &firings {
                            let Some(r) = current.get(&f.name) else {
                                continue;
                            };
                            // A schedule paused since it was read enqueues nothing.
                            if r.cursor != f.expect || !r.spec.enabled {
                                continue;
                            }
                            let recs: Vec<Arc<JobRecord>> = f
                                .jobs
                                .iter()
                                .filter(|j| !existing.contains(&j.job_id))
                                .map(|j| Arc::new(transitions::insert(j, now)))
                                .collect();
                            let ids: Vec<String> = recs.iter().map(|r| r.job_id.clone()).collect();
                            let new = schedule::fired(r, f, &ids);
                            mv_names.push(f.name.clone());
                            mv_cursors.push(new.cursor);
                            mv_texts.push(text_of(&new)?);
                            all_jobs.extend(recs.iter().cloned());
                            fired.push(Fired {
                                name: f.name.clone(),
                                jobs: recs,
                            });
                        }
                        let moved = async {
                            if mv_names.is_empty() {
                                return Ok(());
                            }
                            tx.execute(&move_sql, &[&mv_names, &mv_cursors, &mv_texts])
                                .await
                                .map(|_| ())
                                .map_err(db)
                        };
                        let inserted = upsert(tx, &s, &all_jobs, tell.as_ref());
                        let woken = async {
                            if all_jobs.iter().any(|r| transitions::is_runnable(r)) {
                                notify(tx, &channel, "runnable").await?;
                            }
                            Ok::<_, StoreError>(())
                        };
                        futures::try_join!(moved, inserted, woken)?;
                        let n = all_jobs.len();
                        Ok(((fired, all_jobs), n))
                    })
                })
                .await?;
            self.publish(&jobs);
            if jobs.iter().any(|r| transitions::is_runnable(r)) {
                self.inner.channels.wake();
            }
            Ok(fired)
        })
    }
}
