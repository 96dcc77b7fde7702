//! Schedules on the local store: a small file beside the journal, rewritten whole (write a
//! temporary file, sync it, rename it over the old one, sync the directory) after every change.
//!
//! Why not in the journal: the journal holds job records, replayed and compacted as such; a
//! schedule changes on every slot, and a table of a few thousand schedules is cheap to rewrite.
//! Exactly once on one host needs no more than this: the periodic service is the only writer,
//! a firing's jobs are made durable before the schedule's new cursor is written, and at open
//! each cursor is taken up to the newest slot among the jobs the journal holds (so a crash
//! between the two writes cannot enqueue a slot again).

use super::{LocalStore, lock};
use crate::job::JobRecord;
use crate::schedule::{self, Firing, ScheduleRecord};
use crate::store::{Fired, JobStore, NewJob, PutSchedule, ScheduleStore, StoreError, StoreFuture};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The schedules, and the file that keeps them (none: in memory only, for tests).
#[derive(Default)]
pub(super) struct Book {
    map: BTreeMap<String, ScheduleRecord>,
    /// Firings the file does not hold yet (their jobs in the journal tell them).
    dirty: bool,
    file: Option<PathBuf>,
    /// When the file was last written (a firing whose every change the journal's jobs can
    /// tell again writes it at most every [`CHECKPOINT`]).
    saved_at: Option<std::time::Instant>,
}

/// How stale the file may be after firings whose cursors the journal's jobs can restore.
const CHECKPOINT: std::time::Duration = std::time::Duration::from_secs(5);

fn io_err(path: &Path, e: std::io::Error) -> StoreError {
    StoreError::Journal(crate::store::local::journal::JournalError::Write {
        path: path.to_path_buf(),
        source: Arc::new(e),
    })
}

impl Book {
    /// Reads the file (if any), then takes each cursor up to the newest slot among `jobs`.
    pub(super) fn open<'a>(
        file: Option<PathBuf>,
        jobs: impl Iterator<Item = &'a Arc<JobRecord>>,
    ) -> Result<Book, StoreError> {
        let mut map = BTreeMap::new();
        for r in read_records::<ScheduleRecord>(file.as_deref())? {
            map.insert(r.spec.name.clone(), r);
        }
        if !map.is_empty() {
            for rec in jobs {
                let Some(slot) = &rec.schedule else { continue };
                if let Some(s) = map.get_mut(&slot.name)
                    && slot.slot > s.cursor
                {
                    s.cursor = slot.slot;
                    if s.last_slot.is_none_or(|l| slot.slot > l) {
                        s.last_slot = Some(slot.slot);
                        s.last_job_id = Some(rec.job_id.clone());
                    }
                }
            }
        }
        Ok(Book {
            map,
            dirty: false,
            file,
            saved_at: None,
        })
    }

    /// Writes the file (atomically), on a blocking thread.
    async fn save(&mut self) -> Result<(), StoreError> {
        self.saved_at = Some(std::time::Instant::now());
        let Some(path) = self.file.clone() else {
            self.dirty = false;
            return Ok(());
        };
        let recs: Vec<&ScheduleRecord> = self.map.values().collect();
        let bytes = serde_json::to_vec(&recs).map_err(|e| StoreError::Record(Arc::new(e)))?;
        tokio::task::spawn_blocking(move || write_atomically(&path, &bytes))
            .await
            .map_err(|e| StoreError::Unavailable {
                reason: format!("schedules file writer: {e}"),
                source: None,
            })??;
        self.dirty = false;
        Ok(())
    }
}

/// The records a JSON array file holds (none if there is no file, or no such file yet).
pub(super) fn read_records<T: serde::de::DeserializeOwned>(
    path: Option<&Path>,
) -> Result<Vec<T>, StoreError> {
    let Some(path) = path else {
        return Ok(Vec::new());
    };
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| StoreError::Record(Arc::new(e))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(StoreError::Journal(
            crate::store::local::journal::JournalError::Read {
                path: path.to_path_buf(),
                source: Arc::new(e),
            },
        )),
    }
}

pub(super) fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), StoreError> {
    use std::io::Write;
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::File::create(&tmp).map_err(|e| io_err(&tmp, e))?;
    f.write_all(bytes).map_err(|e| io_err(&tmp, e))?;
    f.sync_data().map_err(|e| io_err(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| io_err(path, e))?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty())
        && let Ok(d) = std::fs::File::open(dir)
    {
        let _ = d.sync_all();
    }
    Ok(())
}

impl LocalStore {
    /// Writes the schedules file if firings since the last write are only in the journal's
    /// jobs (before anything may remove those jobs: retention's purge).
    pub(super) async fn checkpoint_schedules(&self) -> Result<(), StoreError> {
        let mut book = self.inner.schedules.lock().await;
        if book.dirty {
            book.save().await?;
        }
        Ok(())
    }
}

impl ScheduleStore for LocalStore {
    fn schedules(&self) -> StoreFuture<'_, Vec<ScheduleRecord>> {
        Box::pin(async move {
            Ok(self
                .inner
                .schedules
                .lock()
                .await
                .map
                .values()
                .cloned()
                .collect())
        })
    }

    fn put_schedule(
        &self,
        rec: ScheduleRecord,
        mode: PutSchedule,
    ) -> StoreFuture<'_, ScheduleRecord> {
        Box::pin(async move {
            let mut book = self.inner.schedules.lock().await;
            let name = rec.spec.name.clone();
            let new = schedule::put(book.map.get(&name), rec, mode)?;
            let old = book.map.insert(name.clone(), new.clone());
            if let Err(e) = book.save().await {
                match old {
                    Some(o) => book.map.insert(name, o),
                    None => book.map.remove(&name),
                };
                return Err(e);
            }
            self.inner.channels.schedules_changed().notify_one();
            Ok(new)
        })
    }

    fn delete_schedule<'a>(&'a self, name: &'a str) -> StoreFuture<'a, Option<ScheduleRecord>> {
        Box::pin(async move {
            let mut book = self.inner.schedules.lock().await;
            let Some(old) = book.map.remove(name) else {
                return Ok(None);
            };
            if let Err(e) = book.save().await {
                book.map.insert(name.to_string(), old);
                return Err(e);
            }
            self.inner.channels.schedules_changed().notify_one();
            Ok(Some(old))
        })
    }

    fn fire(&self, firings: Vec<Firing>) -> StoreFuture<'_, Vec<Fired>> {
        Box::pin(async move {
            let mut book = self.inner.schedules.lock().await;
            // The firings whose schedule still has the cursor they read, and their jobs (a
            // job whose id exists was enqueued before a crash cut the cursor's write: skipped).
            let mut go: Vec<Firing> = Vec::new();
            let mut jobs: Vec<NewJob> = Vec::new();
            {
                // One look at the table for the whole batch (a short lock, no await inside).
                let s = lock(&self.inner.state);
                for mut f in firings {
                    // A schedule paused since it was read enqueues nothing: a pause, once
                    // acknowledged, holds.
                    if book
                        .map
                        .get(&f.name)
                        .is_none_or(|r| r.cursor != f.expect || !r.spec.enabled)
                    {
                        continue;
                    }
                    f.jobs.retain(|j| !s.jobs.contains_key(&j.job_id));
                    jobs.extend(f.jobs.iter().cloned());
                    go.push(f);
                }
            }
            let inserted = if jobs.is_empty() {
                Vec::new()
            } else {
                self.insert_many(jobs, None).await?.jobs
            };
            let mut inserted = inserted.into_iter();
            let mut out = Vec::with_capacity(go.len());
            // The file must be written now only if a change cannot be told again from the
            // jobs in the journal at the next open: a cursor moved past a slot that enqueued
            // nothing (skipped, or queued behind a run). A move that enqueued a job is told
            // by that job; the file catches up at most every `CHECKPOINT`.
            let mut must_save = false;
            for f in &go {
                let recs: Vec<Arc<JobRecord>> = inserted
                    .by_ref()
                    .take(f.jobs.len())
                    .map(|i| i.job)
                    .collect();
                let ids: Vec<String> = recs.iter().map(|r| r.job_id.clone()).collect();
                if let Some(r) = book.map.get(&f.name) {
                    must_save |= f.skipped > 0 || f.queued != r.queued || ids.is_empty();
                    let new = schedule::fired(r, f, &ids);
                    book.map.insert(f.name.clone(), new);
                }
                out.push(Fired {
                    name: f.name.clone(),
                    jobs: recs,
                });
            }
            let due = book.saved_at.is_none_or(|t| t.elapsed() >= CHECKPOINT);
            book.dirty |= !go.is_empty();
            if (must_save || due)
                && let Err(e) = book.save().await
            {
                // The jobs are durable; the cursors are not: at the next open they are taken
                // from the jobs. Keep serving with the cursors in memory.
                tracing::warn!(error = %e, "schedules file not written; cursors recover from the jobs at open");
            }
            Ok(out)
        })
    }
}
