//! The live feed: every change a client may want to watch, numbered, in one stream that
//! server-sent events, MCP progress and the dashboard subscribe to.
//!
//! Why a hub of its own and not the store's change feed: the store publishes durable changes
//! (transitions, and progress at its bounded write rate); watchers also want live progress and
//! log lines, which are never written per call. The hub merges both, gives each event an id
//! (increasing across restarts: ids start at the clock in microseconds), and keeps the most
//! recent ones so that a client that reconnects with `Last-Event-ID` gets what it missed.
//!
//! Publishing never waits: a subscriber that falls behind the broadcast buffer is told how
//! many events it lost (`Lagged`) and carries on from the newest; the queue is never slowed by
//! a slow reader.

use crate::job::{JobRecord, Status, now_micros};
use crate::runtime::LogLine;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use tokio::sync::broadcast;

/// What happened.
#[derive(Debug, Clone)]
pub enum EventBody {
    /// The job's stored state changed (a transition, or progress as recorded).
    Job(Arc<JobRecord>),
    /// Live progress of a run on this host.
    Progress {
        /// Percent done.
        percent: u8,
        /// The step's description.
        description: String,
    },
    /// A log line of a run on this host, with its time (µs since the epoch).
    Log(i64, LogLine),
}

/// One numbered event.
#[derive(Debug, Clone)]
pub struct Event {
    /// Increasing; the SSE `id`.
    pub id: u64,
    /// The job it is about.
    pub job_id: Arc<str>,
    /// Its type.
    pub job_type: Arc<str>,
    /// Its queue (what a key's scope filters on, with the type).
    pub queue: Arc<str>,
    /// Its status when the event was published.
    pub status: Status,
    /// What happened.
    pub body: EventBody,
    /// The event as its readers put it on the wire, made by the first reader that needs it
    /// and shared by every other one: with many subscribers, an event is rendered once, not
    /// once per subscriber.
    wire: OnceLock<bytes::Bytes>,
}

impl Event {
    /// The event's wire form, rendered by `render` on first use and shared afterwards.
    pub fn wire(&self, render: impl FnOnce(&Event) -> bytes::Bytes) -> bytes::Bytes {
        self.wire.get_or_init(|| render(self)).clone()
    }

    /// The SSE event name: `job`, `progress` or `log`.
    pub fn kind(&self) -> &'static str {
        match self.body {
            EventBody::Job(_) => "job",
            EventBody::Progress { .. } => "progress",
            EventBody::Log(..) => "log",
        }
    }

    /// Whether this event ends the job's stream (its record reached a terminal status).
    pub fn is_end(&self) -> bool {
        matches!(&self.body, EventBody::Job(j) if j.status.is_terminal())
    }
}

/// A subscription: the events after the client's last one, then the live receiver.
pub struct Subscription {
    /// Events the client missed, from the recent buffer, oldest first.
    pub replay: Vec<Arc<Event>>,
    /// Whether events were missed that the buffer no longer holds (the client should resync
    /// from `list_jobs`/`get_status`).
    pub gap: bool,
    /// Everything published from now on.
    pub live: broadcast::Receiver<Arc<Event>>,
}

/// The hub.
pub struct Feed {
    next: AtomicU64,
    tx: broadcast::Sender<Arc<Event>>,
    recent: Mutex<VecDeque<Arc<Event>>>,
    keep: usize,
}

impl Feed {
    /// A hub that keeps the last `keep` events for reconnects, with a broadcast buffer of
    /// `buffer` events per subscriber.
    pub fn new(keep: usize, buffer: usize) -> Arc<Self> {
        let (tx, _) = broadcast::channel(buffer.max(16));
        Arc::new(Feed {
            next: AtomicU64::new(now_micros().max(1) as u64),
            tx,
            recent: Mutex::new(VecDeque::with_capacity(keep.min(1 << 16))),
            keep: keep.max(1),
        })
    }

    /// The id the next event will get.
    pub fn next_id(&self) -> u64 {
        self.next.load(Ordering::Acquire)
    }

    /// How many clients are subscribed.
    pub fn subscribers(&self) -> usize {
        self.tx.receiver_count()
    }

    /// Publishes one event (never waits on a subscriber).
    pub fn publish(
        &self,
        job_id: &str,
        job_type: &str,
        queue: &str,
        status: Status,
        body: EventBody,
    ) {
        let mut recent = self.recent.lock().unwrap_or_else(|p| p.into_inner());
        let id = self.next.fetch_add(1, Ordering::AcqRel);
        let ev = Arc::new(Event {
            id,
            job_id: job_id.into(),
            job_type: job_type.into(),
            queue: queue.into(),
            status,
            body,
            wire: OnceLock::new(),
        });
        if recent.len() >= self.keep {
            recent.pop_front();
        }
        recent.push_back(ev.clone());
        // Sent under the lock, so that a subscriber's replay and its live events neither
        // overlap nor leave a hole.
        let _ = self.tx.send(ev);
    }

    /// Publishes a stored change.
    pub fn job(&self, job: Arc<JobRecord>) {
        let (id, ty, q, st) = (
            job.job_id.clone(),
            job.job_type.clone(),
            job.queue.clone(),
            job.status,
        );
        self.publish(&id, &ty, &q, st, EventBody::Job(job));
    }

    /// Subscribes; with `after` (the client's `Last-Event-ID`), first replays what it missed.
    pub fn subscribe(&self, after: Option<u64>) -> Subscription {
        let recent = self.recent.lock().unwrap_or_else(|p| p.into_inner());
        let live = self.tx.subscribe();
        let Some(after) = after else {
            return Subscription {
                replay: Vec::new(),
                gap: false,
                live,
            };
        };
        let next = self.next.load(Ordering::Acquire);
        let oldest = recent.front().map_or(next, |e| e.id);
        // An id from the future (another host, a clock step) cannot be placed: resync.
        let gap = after.saturating_add(1) < oldest || after >= next;
        let replay = if after >= next {
            Vec::new()
        } else {
            let start = recent.partition_point(|e| e.id <= after);
            recent.range(start..).cloned().collect()
        };
        Subscription { replay, gap, live }
    }
}

/// Follows the store's change feed into the hub until the store closes it.
pub(crate) async fn follow_store(
    feed: Arc<Feed>,
    mut changes: broadcast::Receiver<crate::store::Change>,
) {
    loop {
        match changes.recv().await {
            Ok(c) => feed.job(c.job),
            Err(broadcast::error::RecvError::Lagged(n)) => {
                tracing::warn!(missed = n, "the live feed fell behind the store's changes");
            }
            Err(broadcast::error::RecvError::Closed) => break,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(id: &str, status: Status) -> Arc<JobRecord> {
        Arc::new(JobRecord {
            job_id: id.into(),
            job_type: "t".into(),
            status,
            ..JobRecord::default()
        })
    }

    #[test]
    fn a_reconnect_gets_what_it_missed_and_nothing_twice() {
        let feed = Feed::new(100, 100);
        feed.job(rec("a", Status::Pending));
        let first = feed.next_id() - 1;
        feed.job(rec("a", Status::Running));
        feed.job(rec("a", Status::Completed));
        let sub = feed.subscribe(Some(first));
        assert!(!sub.gap);
        let ids: Vec<u64> = sub.replay.iter().map(|e| e.id).collect();
        assert_eq!(ids, vec![first + 1, first + 2]);
        assert!(sub.replay[1].is_end());
        let mut live = sub.live;
        feed.job(rec("b", Status::Pending));
        assert_eq!(live.try_recv().unwrap().id, first + 3);
    }

    #[test]
    fn an_id_older_than_the_buffer_is_a_gap() {
        let feed = Feed::new(2, 100);
        let start = feed.next_id();
        for _ in 0..5 {
            feed.job(rec("a", Status::Pending));
        }
        let sub = feed.subscribe(Some(start));
        assert!(sub.gap, "events start+1..start+2 are gone");
        assert_eq!(sub.replay.len(), 2);
        assert!(
            feed.subscribe(Some(start + 1000)).gap,
            "an id from the future"
        );
        assert!(!feed.subscribe(Some(start + 4)).gap, "up to date");
    }

    #[test]
    fn a_slow_subscriber_lags_and_the_publisher_never_waits() {
        let feed = Feed::new(10, 16);
        let mut slow = feed.subscribe(None).live;
        for _ in 0..100 {
            feed.job(rec("a", Status::Running));
        }
        assert!(matches!(
            slow.try_recv(),
            Err(broadcast::error::TryRecvError::Lagged(_))
        ));
    }
}
