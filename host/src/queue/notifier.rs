//! The notifier: lets a caller wait for a change of one job (a stop waits for the run's end).
//!
//! It follows the store's change feed and wakes the waiters of each changed job; a waiter
//! always re-reads the job from the store, so a change missed (the feed lagged) costs a
//! re-check, never a wrong answer.

use crate::registry::JobRecord;
use crate::store::JobStore;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::{broadcast, oneshot};

type Waiters = Mutex<HashMap<String, Vec<oneshot::Sender<()>>>>;

fn lock(m: &Waiters) -> MutexGuard<'_, HashMap<String, Vec<oneshot::Sender<()>>>> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Per-job change waits.
pub(crate) struct Notifier {
    store: Arc<dyn JobStore>,
    waiters: Arc<Waiters>,
}

impl Notifier {
    /// Starts following the store's feed.
    pub(crate) fn start(store: Arc<dyn JobStore>) -> Notifier {
        let waiters: Arc<Waiters> = Arc::default();
        let mut feed = store.subscribe();
        let w = Arc::downgrade(&waiters);
        tokio::spawn(async move {
            loop {
                let wake_all = match feed.recv().await {
                    Ok(change) => {
                        let Some(w) = w.upgrade() else { break };
                        let mut g = lock(&w);
                        if let Some(list) = g.remove(&change.job.job_id) {
                            for tx in list {
                                let _ = tx.send(());
                            }
                        }
                        false
                    }
                    Err(broadcast::error::RecvError::Lagged(_)) => true,
                    Err(broadcast::error::RecvError::Closed) => break,
                };
                if wake_all {
                    let Some(w) = w.upgrade() else { break };
                    for (_, list) in lock(&w).drain() {
                        for tx in list {
                            let _ = tx.send(());
                        }
                    }
                }
            }
        });
        Notifier { store, waiters }
    }

    /// Waits until `done` holds for the job (re-read after each change), at most `within`;
    /// returns the job as last read (`None` if it is gone).
    pub(crate) async fn wait_for(
        &self,
        job_id: &str,
        within: Duration,
        done: impl Fn(&JobRecord) -> bool,
    ) -> Option<Arc<JobRecord>> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let (tx, rx) = oneshot::channel();
            lock(&self.waiters)
                .entry(job_id.to_string())
                .or_default()
                .push(tx);
            let job = self.store.get(job_id).await.ok().flatten();
            match &job {
                Some(j) if !done(j) => {}
                _ => return job,
            }
            // A slow re-check as well, in case a wake-up is lost.
            let step = tokio::time::Instant::now() + Duration::from_millis(250);
            if tokio::time::timeout_at(deadline.min(step), rx)
                .await
                .is_err()
                && tokio::time::Instant::now() >= deadline
            {
                return self.store.get(job_id).await.ok().flatten();
            }
        }
    }
}
