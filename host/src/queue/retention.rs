//! Retention, as queuemgr offers it: a time-to-live per terminal status, a cap on the number
//! of terminal jobs, and expiry of jobs added but never started. Purged jobs are forgotten
//! (a `purged` record tells replay so). Also triggers registry compaction when dead records
//! dominate the file.

use super::{Queue, lock};
use crate::registry::{Event, JobRecord, Status, now_micros};
use std::sync::Arc;
use std::time::Duration;

/// What the background task removes.
#[derive(Debug, Clone)]
pub struct Retention {
    /// How long COMPLETED jobs are kept (`None`: forever).
    pub completed_ttl: Option<Duration>,
    /// How long ERROR jobs are kept.
    pub error_ttl: Option<Duration>,
    /// How long STOPPED jobs are kept.
    pub stopped_ttl: Option<Duration>,
    /// How long DELETED jobs are kept.
    pub deleted_ttl: Option<Duration>,
    /// Most terminal jobs kept; the oldest-ended go first.
    pub max_terminal_jobs: usize,
    /// PENDING jobs never started are removed after this long.
    pub pending_ttl: Option<Duration>,
    /// Compact when the registry holds more than this many times the live records…
    pub compact_ratio: u64,
    /// …and at least this many records.
    pub compact_min_records: u64,
}

impl Default for Retention {
    fn default() -> Self {
        Retention {
            completed_ttl: None,
            error_ttl: None,
            stopped_ttl: None,
            deleted_ttl: Some(Duration::from_secs(3600)),
            max_terminal_jobs: 1_000_000,
            pending_ttl: None,
            compact_ratio: 4,
            compact_min_records: 10_000,
        }
    }
}

fn expired(ttl: Option<Duration>, since: i64, now: i64) -> bool {
    ttl.is_some_and(|ttl| now.saturating_sub(since) > ttl.as_micros() as i64)
}

/// One pass: purge what retention says, then compact if worth it.
pub(super) async fn run(queue: &Queue) {
    let r = &queue.inner().cfg.retention;
    let now = now_micros();
    let (durable, purged) = {
        let mut s = lock(&queue.inner().state);
        let mut purge: Vec<String> = Vec::new();
        let mut terminal: Vec<(i64, String)> = Vec::new();
        for (id, e) in &s.jobs {
            let rec = &e.rec;
            let ended = rec.completed_at.unwrap_or(rec.updated_at);
            let gone = match rec.status {
                Status::Completed => expired(r.completed_ttl, ended, now),
                Status::Error => expired(r.error_ttl, ended, now),
                Status::Stopped => expired(r.stopped_ttl, ended, now),
                Status::Deleted => expired(r.deleted_ttl, rec.updated_at, now),
                Status::Pending => {
                    !e.waiting && rec.runs == 0 && expired(r.pending_ttl, rec.created_at, now)
                }
                Status::Running => false,
            };
            if gone {
                purge.push(id.clone());
            } else if rec.status.is_terminal() {
                terminal.push((ended, id.clone()));
            }
        }
        if terminal.len() > r.max_terminal_jobs {
            terminal.sort();
            let excess = terminal.len() - r.max_terminal_jobs;
            purge.extend(terminal.into_iter().take(excess).map(|(_, id)| id));
        }
        let mut records: Vec<JobRecord> = Vec::with_capacity(purge.len());
        for id in &purge {
            if let Some(e) = s.jobs.remove(id) {
                let visible = e.visible.clone();
                s.count(visible.as_deref(), -1);
                let mut rec = Arc::unwrap_or_clone(e.rec);
                rec.event = Event::Purged;
                rec.updated_at = now;
                rec.result = None;
                rec.params = crate::registry::Json::null();
                records.push(rec);
            }
        }
        if !purge.is_empty() {
            let gone: std::collections::HashSet<&String> = purge.iter().collect();
            s.order.retain(|id| !gone.contains(id));
        }
        let n = records.len();
        (
            (!records.is_empty()).then(|| queue.inner().registry.append(records)),
            n,
        )
    };
    if let Some(d) = durable {
        match d.await {
            Ok(()) => tracing::info!(purged, "retention removed jobs"),
            Err(e) => tracing::warn!(error = %e, "retention could not record purges"),
        }
    }
    maybe_compact(queue).await;
}

async fn maybe_compact(queue: &Queue) {
    let r = &queue.inner().cfg.retention;
    let stats = queue.inner().registry.stats();
    let durable = {
        let s = lock(&queue.inner().state);
        let live = s.jobs.len() as u64;
        if stats.records < r.compact_min_records
            || stats.records <= live.saturating_mul(r.compact_ratio)
        {
            return;
        }
        // Taken and enqueued under the lock: every record appended before is in the snapshot.
        let snapshot: Vec<JobRecord> = s
            .order
            .iter()
            .filter_map(|id| s.jobs.get(id))
            .map(|e| e.latest())
            .collect();
        queue.inner().registry.compact(snapshot)
    };
    if let Err(e) = durable.await {
        tracing::warn!(error = %e, "registry compaction failed");
    }
}
