//! What the API asks of named queues: their settings (declared through the API or a job
//! type's manifest `[queue]`), pause and resume, and their depth. The store keeps the settings
//! and enforces them in its claims (see [`crate::limits`]).

use super::{Queue, QueueError};
use crate::catalog::Catalog;
use crate::job::now_micros;
use crate::limits::{QueueRecord, QueueSpec, Rate};
use crate::schedule::Origin;
use crate::store::Store;
use serde::Serialize;
use std::collections::BTreeMap;

/// A change to a queue's settings (`set_queue`): each field given replaces the stored one;
/// `Some(None)` removes a limit.
#[derive(Debug, Clone, Default)]
pub struct QueuePatch {
    /// Most jobs running at once across hosts.
    pub concurrency: Option<Option<u32>>,
    /// Most jobs with one key running at once across hosts.
    pub key_concurrency: Option<Option<u32>>,
    /// The default priority of its jobs.
    pub priority: Option<Option<i32>>,
    /// Most starts per period.
    pub rate: Option<Option<Rate>>,
    /// Most starts per period with one key.
    pub key_rate: Option<Option<Rate>>,
}

/// A queue as the API shows it.
#[derive(Debug, Clone, Serialize)]
pub struct QueueView {
    /// Its name.
    pub name: String,
    /// Nothing new is claimed while paused.
    pub paused: bool,
    /// Most jobs running at once across hosts (`null`: no limit).
    pub concurrency: Option<u32>,
    /// Most jobs with one concurrency key running at once across hosts.
    pub key_concurrency: Option<u32>,
    /// Most starts per period across hosts (`100/min`).
    pub rate: Option<String>,
    /// Most starts per period with one concurrency key across hosts.
    pub key_rate: Option<String>,
    /// The default priority of its jobs.
    pub priority: Option<i32>,
    /// Where its settings come from: `api`, `manifest`, or `none` (a queue that only has jobs).
    pub origin: &'static str,
    /// Jobs started and waiting to run.
    pub waiting: usize,
    /// Jobs added and never started.
    pub unstarted: usize,
    /// Jobs running, on every host.
    pub running: usize,
    /// The job types whose manifest names it.
    pub job_types: Vec<String>,
}

fn origin_name(o: Origin) -> &'static str {
    match o {
        Origin::Api => "api",
        Origin::Manifest => "manifest",
    }
}

/// Why a runnable job waits, beyond a free slot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hold {
    /// `paused` (its queue is) or `rate` (its queue's or key's rate is spent).
    pub reason: &'static str,
    /// When it becomes eligible (µs), if known.
    pub until: Option<i64>,
}

impl Queue {
    /// Why `rec` (if it is runnable) is held back by its queue's settings now: a pause, or a
    /// spent rate (with the time it becomes eligible).
    pub async fn hold_of(&self, rec: &crate::job::JobRecord) -> Option<Hold> {
        if !crate::store::transitions::is_runnable(rec) {
            return None;
        }
        let spec = self.inner.store.queue_specs().get(&rec.queue).cloned()?;
        if spec.paused {
            return Some(Hold {
                reason: "paused",
                until: None,
            });
        }
        let mut buckets = Vec::new();
        if spec.rate.is_some() {
            buckets.push(crate::limits::queue_bucket(&rec.queue));
        }
        if let (Some(_), Some(k)) = (spec.key_rate, &rec.concurrency_key) {
            buckets.push(crate::limits::key_bucket(&rec.queue, k));
        }
        if buckets.is_empty() {
            return None;
        }
        let until = self
            .inner
            .store
            .rate_reopen(&buckets)
            .await
            .ok()
            .flatten()?;
        let until = until.max(rec.scheduled_at.unwrap_or(until));
        Some(Hold {
            reason: "rate",
            until: Some(until),
        })
    }

    /// Every queue that has settings, jobs, or a job type naming it (`default` always).
    pub async fn list_queues(&self) -> Result<Vec<QueueView>, QueueError> {
        let store = &self.inner.store;
        let (recs, depths) = futures::try_join!(store.queues(), store.queue_depths())?;
        let mut views: BTreeMap<String, QueueView> = BTreeMap::new();
        let blank = |name: &str| QueueView {
            name: name.to_string(),
            paused: false,
            concurrency: None,
            key_concurrency: None,
            rate: None,
            key_rate: None,
            priority: None,
            origin: "none",
            waiting: 0,
            unstarted: 0,
            running: 0,
            job_types: Vec::new(),
        };
        views.insert(
            crate::limits::DEFAULT_QUEUE.into(),
            blank(crate::limits::DEFAULT_QUEUE),
        );
        for r in recs {
            let v = views
                .entry(r.spec.name.clone())
                .or_insert_with(|| blank(&r.spec.name));
            v.paused = r.spec.paused;
            v.concurrency = r.spec.concurrency;
            v.key_concurrency = r.spec.key_concurrency;
            v.rate = r.spec.rate.map(|r| r.text());
            v.key_rate = r.spec.key_rate.map(|r| r.text());
            v.priority = r.spec.priority;
            v.origin = origin_name(r.origin);
        }
        for d in depths {
            let v = views
                .entry(d.queue.clone())
                .or_insert_with(|| blank(&d.queue));
            v.waiting = d.waiting;
            v.unstarted = d.unstarted;
            v.running = d.running;
        }
        let (types, _) = self.inner.catalog.list();
        for jt in types {
            let q = jt
                .manifest
                .queue
                .as_ref()
                .map_or(crate::limits::DEFAULT_QUEUE, |q| q.name.as_str());
            views
                .entry(q.to_string())
                .or_insert_with(|| blank(q))
                .job_types
                .push(jt.name.clone());
        }
        Ok(views.into_values().collect())
    }

    /// One queue's view.
    pub async fn get_queue(&self, name: &str) -> Result<QueueView, QueueError> {
        self.list_queues()
            .await?
            .into_iter()
            .find(|v| v.name == name)
            .ok_or_else(|| QueueError::QueueNotFound(name.to_string()))
    }

    /// Changes a queue's settings (creating them); they hold from the next claim on every
    /// host. Settings set here win over a manifest's from then on.
    pub async fn set_queue(&self, name: &str, patch: QueuePatch) -> Result<QueueView, QueueError> {
        self.change_queue(name, move |spec| {
            if let Some(c) = patch.concurrency {
                spec.concurrency = c;
            }
            if let Some(c) = patch.key_concurrency {
                spec.key_concurrency = c;
            }
            if let Some(p) = patch.priority {
                spec.priority = p;
            }
            if let Some(r) = patch.rate {
                spec.rate = r;
            }
            if let Some(r) = patch.key_rate {
                spec.key_rate = r;
            }
        })
        .await
    }

    /// Pauses a queue: nothing new is claimed from it; its running jobs go on.
    pub async fn pause_queue(&self, name: &str) -> Result<QueueView, QueueError> {
        self.change_queue(name, |spec| spec.paused = true).await
    }

    /// Resumes a paused queue.
    pub async fn resume_queue(&self, name: &str) -> Result<QueueView, QueueError> {
        self.change_queue(name, |spec| spec.paused = false).await
    }

    async fn change_queue(
        &self,
        name: &str,
        change: impl FnOnce(&mut QueueSpec) + Send + 'static,
    ) -> Result<QueueView, QueueError> {
        self.accepting()?;
        crate::limits::check_name("queue", name).map_err(|e| {
            QueueError::InvalidParams(Box::new(super::ParamError {
                field: "queue".into(),
                violation: "value",
                expected: "a queue name".into(),
                got: name.into(),
                message: format!("parameter 'queue': {e}"),
            }))
        })?;
        let now = now_micros();
        let queue = name.to_string();
        // Applied to the stored settings inside the store's change (a pause or another change
        // made meanwhile is not undone).
        let apply: crate::store::QueueChange = Box::new(move |old| {
            let mut spec = old.map_or_else(|| QueueSpec::open(&queue), |r| r.spec.clone());
            change(&mut spec);
            Some(QueueRecord {
                spec,
                origin: Origin::Api,
                created_at: old.map_or(now, |r| r.created_at),
                updated_at: now,
            })
        });
        self.inner.store.change_queue(name, apply).await?;
        tracing::info!(queue = %name, "queue settings changed");
        self.get_queue(name).await
    }
}

/// Stores the settings the loaded job types' manifests declare in `[queue]`, where the queue
/// has none yet or has a manifest's that differ (settings set through the API are kept; a
/// pause is kept). Two manifests declaring one queue differently: the type first by name wins,
/// and a warning says so.
pub(crate) async fn reconcile(store: &dyn Store, catalog: &Catalog) -> Result<(), QueueError> {
    let (types, _) = catalog.list();
    let mut declared: BTreeMap<String, (String, QueueSpec)> = BTreeMap::new();
    for jt in types {
        let Some(q) = &jt.manifest.queue else {
            continue;
        };
        if !(q.limits() || q.priority.is_some()) {
            continue;
        }
        match declared.get(&q.name) {
            Some((first, spec)) if spec != q => tracing::warn!(
                queue = %q.name, job_type = %jt.name, kept = %first,
                "two manifests declare different settings for one queue: the first type's are kept"),
            Some(_) => {}
            None => {
                declared.insert(q.name.clone(), (jt.name.clone(), q.clone()));
            }
        }
    }
    if declared.is_empty() {
        return Ok(());
    }
    let now = now_micros();
    for (name, (_, spec)) in declared {
        let wrote = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let w = wrote.clone();
        let apply: crate::store::QueueChange = Box::new(move |old| {
            if old.is_some_and(|r| r.origin == Origin::Api) {
                return None;
            }
            let paused = old.is_some_and(|r| r.spec.paused);
            let spec = QueueSpec { paused, ..spec };
            if old.is_some_and(|r| r.spec == spec) {
                return None;
            }
            w.store(true, std::sync::atomic::Ordering::Release);
            Some(QueueRecord {
                spec,
                origin: Origin::Manifest,
                created_at: old.map_or(now, |r| r.created_at),
                updated_at: now,
            })
        });
        store.change_queue(&name, apply).await?;
        if wrote.load(std::sync::atomic::Ordering::Acquire) {
            tracing::info!(queue = %name, "queue settings declared by a manifest stored");
        }
    }
    Ok(())
}
