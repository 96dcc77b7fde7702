//! The sessions' hub: routes the live feed to the `/ws` connections that watch a job, keeps why
//! a job was cancelled (for its terminal event's `data.reason`), and keeps the results of
//! built-in commands run in a session.
//!
//! Why one router and not a feed subscription per connection: a thousand open sessions would
//! otherwise each wake up for every event of the host (tens of thousands a second under load)
//! only to drop nearly all of them. Here one task reads the feed and looks each event's job up
//! in a map, so a connection wakes only for its own jobs and idle sessions cost nothing.

use crate::queue::feed::{Event, Feed};
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::mpsc;

/// What a connection gets from the hub.
#[derive(Debug, Clone)]
pub enum Delivery {
    /// An event of a job it watches.
    Event(Arc<Event>),
    /// The hub fell behind the feed and events may be lost: re-read this job.
    Refresh(Arc<str>),
}

/// How a connection watches a job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A command session (`execute_command`, or `subscribe` with `command_session`): its
    /// caller owns the job.
    Command,
    /// The older `subscribe` with `queue_job`.
    QueueJob,
}

struct Watcher {
    conn: u64,
    kind: Kind,
    tx: mpsc::UnboundedSender<Delivery>,
}

/// A socket's place among the open ones (see [`Hub::reserve`]); given back on drop.
pub struct Place {
    hub: Arc<Hub>,
    /// The connection's id.
    pub id: u64,
}

impl Drop for Place {
    fn drop(&mut self) {
        self.hub.connections.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Why jobs were cancelled, for their terminal events; bounded (oldest dropped).
const MAX_REASONS: usize = 4096;
/// Built-in commands' results kept for `queue_get_job_status`; bounded (oldest dropped).
const MAX_INLINE: usize = 4096;
/// How long a built-in command's result is kept (the framework keeps a session's metadata an
/// hour after its end).
const INLINE_TTL_MICROS: i64 = 3_600_000_000;

/// The hub (one per host).
#[derive(Default)]
pub struct Hub {
    watches: Mutex<HashMap<Arc<str>, Vec<Watcher>>>,
    reasons: Mutex<(HashMap<String, &'static str>, VecDeque<String>)>,
    inline: Mutex<(HashMap<String, Inline>, VecDeque<String>)>,
    next_conn: AtomicU64,
    connections: AtomicUsize,
    routing: OnceLock<()>,
}

/// A built-in command run in a session, kept so that `queue_get_job_status` answers for it.
#[derive(Debug, Clone)]
pub struct Inline {
    /// The command.
    pub command: String,
    /// Whether it succeeded (`success` of its envelope).
    pub success: bool,
    /// Its envelope's `result` (`{"success":…,"data"|"error":…}`).
    pub result: serde_json::Value,
    /// When it ran (µs since the epoch).
    pub at: i64,
}

impl Hub {
    /// Starts routing `feed` (once; later calls do nothing). Needs a tokio runtime.
    pub fn start(self: &Arc<Self>, feed: &Arc<Feed>) {
        self.routing.get_or_init(|| {
            let hub = Arc::downgrade(self);
            let mut live = feed.subscribe(None).live;
            tokio::spawn(async move {
                loop {
                    let next = live.recv().await;
                    let Some(hub) = hub.upgrade() else { break };
                    match next {
                        Ok(ev) => hub.route(ev),
                        Err(RecvError::Lagged(n)) => {
                            tracing::warn!(
                                missed = n,
                                "ws sessions fell behind the live feed; re-reading their jobs"
                            );
                            hub.refresh_all();
                        }
                        Err(RecvError::Closed) => break,
                    }
                }
            });
        });
    }

    fn route(&self, ev: Arc<Event>) {
        let w = self.watches.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(list) = w.get(&*ev.job_id) {
            for x in list {
                let _ = x.tx.send(Delivery::Event(ev.clone()));
            }
        }
    }

    fn refresh_all(&self) {
        let w = self.watches.lock().unwrap_or_else(|p| p.into_inner());
        for (job, list) in w.iter() {
            for x in list {
                let _ = x.tx.send(Delivery::Refresh(job.clone()));
            }
        }
    }

    /// Takes one of `max` places for a socket, at once (before the upgrade completes, so that a
    /// burst of upgrades cannot overshoot); `None` when all are taken. The place is given back
    /// when the returned guard is dropped.
    pub fn reserve(self: &Arc<Self>, max: usize) -> Option<Place> {
        self.connections
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < max).then_some(n + 1)
            })
            .ok()?;
        Some(Place {
            hub: self.clone(),
            id: self.next_conn.fetch_add(1, Ordering::Relaxed),
        })
    }

    /// Open connections.
    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::Relaxed)
    }

    /// Jobs watched by at least one connection.
    pub fn watched_jobs(&self) -> usize {
        self.watches.lock().map_or(0, |w| w.len())
    }

    /// Connection `conn` watches `job` (once per kind).
    pub fn watch(&self, conn: u64, job: &str, kind: Kind, tx: &mpsc::UnboundedSender<Delivery>) {
        let mut w = self.watches.lock().unwrap_or_else(|p| p.into_inner());
        let list = w.entry(job.into()).or_default();
        if !list.iter().any(|x| x.conn == conn && x.kind == kind) {
            list.push(Watcher {
                conn,
                kind,
                tx: tx.clone(),
            });
        }
    }

    /// Connection `conn` stops watching `job` as `kind`. Returns how many command sessions
    /// (of any connection) still watch it.
    pub fn unwatch(&self, conn: u64, job: &str, kind: Kind) -> usize {
        let mut w = self.watches.lock().unwrap_or_else(|p| p.into_inner());
        let Some(list) = w.get_mut(job) else { return 0 };
        list.retain(|x| !(x.conn == conn && x.kind == kind));
        let left = list.iter().filter(|x| x.kind == Kind::Command).count();
        if list.is_empty() {
            w.remove(job);
        }
        left
    }

    /// Remembers why `job` is being cancelled.
    pub fn note_reason(&self, job: &str, reason: &'static str) {
        let mut g = self.reasons.lock().unwrap_or_else(|p| p.into_inner());
        let (map, order) = &mut *g;
        if map.insert(job.to_string(), reason).is_none() {
            order.push_back(job.to_string());
        }
        while order.len() > MAX_REASONS {
            if let Some(old) = order.pop_front() {
                map.remove(&old);
            }
        }
    }

    /// Why `job` was cancelled, if a session said.
    pub fn reason(&self, job: &str) -> Option<&'static str> {
        let g = self.reasons.lock().unwrap_or_else(|p| p.into_inner());
        g.0.get(job).copied()
    }

    /// Keeps a built-in command's result under `id`.
    pub fn keep_inline(&self, id: &str, inline: Inline) {
        let mut g = self.inline.lock().unwrap_or_else(|p| p.into_inner());
        let (map, order) = &mut *g;
        let now = inline.at;
        map.insert(id.to_string(), inline);
        order.push_back(id.to_string());
        while order.len() > MAX_INLINE
            || order
                .front()
                .and_then(|f| map.get(f))
                .is_some_and(|f| now - f.at > INLINE_TTL_MICROS)
        {
            if let Some(old) = order.pop_front() {
                map.remove(&old);
            }
        }
    }

    /// A built-in command's result kept under `id`.
    pub fn inline(&self, id: &str) -> Option<Inline> {
        let g = self.inline.lock().unwrap_or_else(|p| p.into_inner());
        g.0.get(id).cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unwatch_counts_the_command_sessions_left() {
        let hub = Hub::default();
        let (tx, _rx) = mpsc::unbounded_channel();
        hub.watch(1, "j", Kind::Command, &tx);
        hub.watch(2, "j", Kind::Command, &tx);
        hub.watch(3, "j", Kind::QueueJob, &tx);
        hub.watch(1, "j", Kind::Command, &tx);
        assert_eq!(hub.unwatch(1, "j", Kind::Command), 1);
        assert_eq!(hub.unwatch(2, "j", Kind::Command), 0);
        assert_eq!(hub.watched_jobs(), 1);
        assert_eq!(hub.unwatch(3, "j", Kind::QueueJob), 0);
        assert_eq!(hub.watched_jobs(), 0);
        assert_eq!(hub.unwatch(3, "nope", Kind::QueueJob), 0);
    }

    #[test]
    fn places_are_capped_and_given_back() {
        let hub = Arc::new(Hub::default());
        let a = hub.reserve(2).expect("first");
        let b = hub.reserve(2).expect("second");
        assert!(hub.reserve(2).is_none());
        assert_ne!(a.id, b.id);
        drop(a);
        assert_eq!(hub.connections(), 1);
        assert!(hub.reserve(2).is_some());
        assert_eq!(
            hub.connections(),
            1,
            "the place taken in the line above was given back"
        );
    }

    #[test]
    fn reasons_and_inline_results_are_bounded() {
        let hub = Hub::default();
        for i in 0..(MAX_REASONS + 10) {
            hub.note_reason(&format!("j{i}"), "cancelled");
        }
        assert_eq!(hub.reason("j0"), None);
        assert_eq!(
            hub.reason(&format!("j{}", MAX_REASONS + 9)),
            Some("cancelled")
        );
        let at = 1_000_000;
        hub.keep_inline(
            "old",
            Inline {
                command: "echo".into(),
                success: true,
                result: serde_json::json!({}),
                at,
            },
        );
        hub.keep_inline(
            "new",
            Inline {
                command: "echo".into(),
                success: true,
                result: serde_json::json!({}),
                at: at + INLINE_TTL_MICROS + 1,
            },
        );
        assert!(hub.inline("old").is_none(), "expired");
        assert!(hub.inline("new").is_some());
    }
}
