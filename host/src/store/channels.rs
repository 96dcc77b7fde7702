//! What a store tells its host as it happens: the change feed, the stop requests for the jobs
//! each host runs, and the "jobs may be runnable" signal. Both backends hold one [`Channels`]
//! and answer [`super::StoreChannels`] from it, so the plumbing is written once; what differs
//! is who feeds it (the local store as its writes become durable; PostgreSQL also from the
//! other hosts' notifications).

use super::{Change, StopRequest};
use crate::job::JobRecord;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::sync::{Notify, broadcast, mpsc};

/// Changes kept for a subscriber that reads slowly before it lags.
const FEED_CAPACITY: usize = 16_384;

type Stops = HashMap<String, mpsc::UnboundedSender<StopRequest>, foldhash::fast::RandomState>;

/// A store's channels to its host.
pub(crate) struct Channels {
    feed: broadcast::Sender<Change>,
    runnable: Arc<Notify>,
    schedules: Arc<Notify>,
    stops: Mutex<Stops>,
}

impl Channels {
    /// Channels nobody listens to yet.
    pub(crate) fn new() -> Channels {
        Channels {
            feed: broadcast::channel(FEED_CAPACITY).0,
            runnable: Arc::new(Notify::new()),
            schedules: Arc::new(Notify::new()),
            stops: Mutex::new(Stops::default()),
        }
    }

    fn stops(&self) -> MutexGuard<'_, Stops> {
        self.stops.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether anyone follows the feed (publishing costs nothing when nobody does).
    pub(crate) fn has_subscribers(&self) -> bool {
        self.feed.receiver_count() > 0
    }

    /// Publishes durable changes, in order.
    pub(crate) fn publish(&self, jobs: impl IntoIterator<Item = Arc<JobRecord>>) {
        if self.has_subscribers() {
            for job in jobs {
                let _ = self.feed.send(Change { job });
            }
        }
    }

    /// Raises the "jobs may be runnable" signal.
    pub(crate) fn wake(&self) {
        self.runnable.notify_one();
    }

    /// Sends a stop request to `host`, if it listens here.
    pub(crate) fn stop(&self, host: &str, request: StopRequest) {
        if let Some(tx) = self.stops().get(host) {
            let _ = tx.send(request);
        }
    }

    /// See [`super::StoreChannels::stop_requests`].
    pub(crate) fn stop_requests(&self, host: &str) -> mpsc::UnboundedReceiver<StopRequest> {
        let (tx, rx) = mpsc::unbounded_channel();
        self.stops().insert(host.to_string(), tx);
        rx
    }

    /// See [`super::StoreChannels::subscribe`].
    pub(crate) fn subscribe(&self) -> broadcast::Receiver<Change> {
        self.feed.subscribe()
    }

    /// See [`super::StoreChannels::runnable`].
    pub(crate) fn runnable(&self) -> Arc<Notify> {
        self.runnable.clone()
    }

    /// See [`super::StoreChannels::schedules_changed`].
    pub(crate) fn schedules_changed(&self) -> Arc<Notify> {
        self.schedules.clone()
    }
}
