//! The notifier: lets a caller wait for a change of one job (a stop waits for the run's end).
//!
//! It follows the store's change feed only while somebody waits (so that the feed costs nothing
//! when nobody does) and wakes the waiters of each changed job; a waiter always re-reads the job
//! from the store, so a change missed (the feed lagged, another host changed the job) costs a
//! re-check, never a wrong answer.

use crate::job::JobRecord;
use crate::store::Store;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::{broadcast, oneshot};

type Waiters = Mutex<HashMap<String, Vec<oneshot::Sender<()>>>>;

fn lock(m: &Waiters) -> MutexGuard<'_, HashMap<String, Vec<oneshot::Sender<()>>>> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Per-job change waits.
pub(crate) struct Notifier {
    store: Arc<dyn Store>,
    waiters: Arc<Waiters>,
    following: Arc<AtomicBool>,
}

impl Notifier {
    /// A notifier over `store`'s feed.
    pub(crate) fn start(store: Arc<dyn Store>) -> Notifier {
        Notifier {
            store,
            waiters: Arc::default(),
            following: Arc::default(),
        }
    }

    /// Follows the feed until nobody waits any more.
    fn follow(&self) {
        if self.following.swap(true, Ordering::AcqRel) {
            return;
        }
        let mut feed = self.store.subscribe();
        let waiters = Arc::downgrade(&self.waiters);
        let following = self.following.clone();
        tokio::spawn(async move {
            loop {
                let got = tokio::time::timeout(Duration::from_millis(500), feed.recv()).await;
                let Some(w) = waiters.upgrade() else { break };
                let mut g = lock(&w);
                match got {
                    Ok(Ok(change)) => {
                        if let Some(list) = g.remove(&change.job.job_id) {
                            for tx in list {
                                let _ = tx.send(());
                            }
                        }
                    }
                    Ok(Err(broadcast::error::RecvError::Lagged(_))) => {
                        for (_, list) in g.drain() {
                            for tx in list {
                                let _ = tx.send(());
                            }
                        }
                    }
                    Ok(Err(broadcast::error::RecvError::Closed)) => break,
                    Err(_) => {}
                }
                g.retain(|_, list| {
                    list.retain(|tx| !tx.is_closed());
                    !list.is_empty()
                });
                if g.is_empty() {
                    // Decided under the waiters' lock: a waiter that registers after this
                    // starts a new follower.
                    following.store(false, Ordering::Release);
                    break;
                }
            }
        });
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
            self.follow();
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

#[cfg(test)]
mod tests {
    use super::Notifier;
    use crate::job::Status;
    use crate::store::{Finish, RunEnd};
    use crate::testing;
    use std::time::Duration;

    /// A waiter is woken by the change that ends the job (not by its deadline), and one whose
    /// condition already holds returns at once.
    #[tokio::test]
    async fn a_waiter_wakes_when_its_job_ends() {
        let (store, _dir) = testing::store().await;
        store
            .insert_many(vec![testing::job("w", true)], None)
            .await
            .unwrap();
        store
            .claim(testing::host(1, Duration::from_secs(30)))
            .await
            .unwrap();
        let notifier = std::sync::Arc::new(Notifier::start(store.clone()));
        let ended = |j: &crate::job::JobRecord| j.status.is_terminal();
        let waiter = {
            let notifier = notifier.clone();
            tokio::spawn(
                async move { notifier.wait_for("w", Duration::from_secs(30), ended).await },
            )
        };
        let end = Finish {
            job_id: "w".into(),
            host: "h1".into(),
            attempt: 1,
            end: RunEnd::Completed(crate::job::Json::null()),
        };
        store
            .finish_many(vec![end], testing::fast_retry())
            .await
            .unwrap();
        let job = tokio::time::timeout(Duration::from_secs(5), waiter)
            .await
            .expect("woken by the end, well before the 30 s deadline")
            .unwrap()
            .expect("the job");
        assert_eq!(job.status, Status::Completed);
        let again = notifier
            .wait_for("w", Duration::from_secs(30), ended)
            .await
            .expect("the job");
        assert_eq!(again.status, Status::Completed);
        assert!(
            notifier
                .wait_for("nope", Duration::from_secs(30), ended)
                .await
                .is_none(),
            "an unknown job returns at once"
        );
    }
}
