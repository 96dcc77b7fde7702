//! Named queues' settings on the local store: a small file beside the journal, rewritten whole
//! (atomically) on every change, like the schedules file. The settings the claims read live in
//! the table's state (under its lock), so that a claim decides on the settings and the running
//! jobs as one.

use super::schedules::{read_records, write_atomically};
use super::{LocalStore, lock};
use crate::limits::{QueueRecord, QueueSpec};
use crate::store::{QueueChange, QueueDepth, QueueStore, StoreError, StoreFuture};
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;

/// The queues' settings, and the file that keeps them (none: in memory only, for tests).
#[derive(Default)]
pub(super) struct QueueBook {
    map: BTreeMap<String, QueueRecord>,
    file: Option<PathBuf>,
}

impl QueueBook {
    /// Reads the file, if any.
    pub(super) fn open(file: Option<PathBuf>) -> Result<QueueBook, StoreError> {
        let mut map = BTreeMap::new();
        for r in read_records::<QueueRecord>(file.as_deref())? {
            map.insert(r.spec.name.clone(), r);
        }
        Ok(QueueBook { map, file })
    }

    /// The settings, by name (what the table's claims read).
    pub(super) fn specs(&self) -> Arc<HashMap<String, QueueSpec>> {
        Arc::new(
            self.map
                .values()
                .map(|r| (r.spec.name.clone(), r.spec.clone()))
                .collect(),
        )
    }

    async fn save(&self) -> Result<(), StoreError> {
        let Some(path) = self.file.clone() else {
            return Ok(());
        };
        let recs: Vec<&QueueRecord> = self.map.values().collect();
        let bytes = serde_json::to_vec(&recs).map_err(|e| StoreError::Record(Arc::new(e)))?;
        tokio::task::spawn_blocking(move || write_atomically(&path, &bytes))
            .await
            .map_err(|e| StoreError::Unavailable {
                reason: format!("queues file writer: {e}"),
                source: None,
            })?
    }
}

/// A change that writes `rec` over what is stored (keeping when it was first declared).
pub(crate) fn replace(rec: QueueRecord) -> QueueChange {
    Box::new(move |old| {
        Some(QueueRecord {
            created_at: old.map_or(rec.created_at, |o| o.created_at),
            ..rec
        })
    })
}

impl QueueStore for LocalStore {
    fn queues(&self) -> StoreFuture<'_, Vec<QueueRecord>> {
        Box::pin(async move {
            Ok(self
                .inner
                .queues
                .lock()
                .await
                .map
                .values()
                .cloned()
                .collect())
        })
    }

    fn put_queue(&self, rec: QueueRecord) -> StoreFuture<'_, QueueRecord> {
        Box::pin(async move {
            let name = rec.spec.name.clone();
            let stored = self.change_queue(&name, replace(rec)).await?;
            stored.ok_or_else(|| StoreError::Unavailable {
                reason: format!("queue '{name}' was not stored"),
                source: None,
            })
        })
    }

    fn change_queue<'a>(
        &'a self,
        name: &'a str,
        change: QueueChange,
    ) -> StoreFuture<'a, Option<QueueRecord>> {
        Box::pin(async move {
            let mut book = self.inner.queues.lock().await;
            let old = book.map.get(name).cloned();
            let Some(rec) = change(old.as_ref()) else {
                return Ok(old);
            };
            let before = book.map.insert(rec.spec.name.clone(), rec.clone());
            if let Err(e) = book.save().await {
                match before {
                    Some(b) => book.map.insert(b.spec.name.clone(), b),
                    None => book.map.remove(&rec.spec.name),
                };
                return Err(e);
            }
            lock(&self.inner.state).specs = book.specs();
            // Jobs held back may be claimable now.
            self.inner.channels.wake();
            Ok(Some(rec))
        })
    }

    fn queue_specs(&self) -> Arc<HashMap<String, QueueSpec>> {
        lock(&self.inner.state).specs.clone()
    }

    fn queue_depths(&self) -> StoreFuture<'_, Vec<QueueDepth>> {
        let s = lock(&self.inner.state);
        let mut out: Vec<QueueDepth> = s
            .counters
            .by_queue
            .iter()
            .filter(|(_, n)| n.iter().any(|&k| k > 0))
            .map(|(q, n)| QueueDepth {
                queue: q.clone(),
                waiting: n[0],
                unstarted: n[1],
                running: n[2],
            })
            .collect();
        drop(s);
        out.sort_by(|a, b| a.queue.cmp(&b.queue));
        Box::pin(std::future::ready(Ok(out)))
    }

    fn rate_reopen<'a>(&'a self, buckets: &'a [String]) -> StoreFuture<'a, Option<i64>> {
        let now = crate::job::now_micros();
        let s = lock(&self.inner.state);
        let t = buckets
            .iter()
            .filter_map(|b| s.buckets.get(b).map(|b| b.reopen))
            .filter(|&t| t > now)
            .max();
        Box::pin(std::future::ready(Ok(t)))
    }
}
