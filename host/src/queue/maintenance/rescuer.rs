//! The rescuer: takes back runs whose lease expired — their host died, or lost the store and
//! could not renew. Each is retried if attempts remain, else STOPPED with
//! `result.interrupted = true`. At start-up the local store rescues every run it finds, since
//! the process that ran them is gone.

use crate::job::now_micros;
use crate::store::{JobStore, RetryPolicy};

/// One pass; returns how many runs were taken back.
pub(crate) async fn run_once(store: &dyn JobStore, retry: RetryPolicy) -> usize {
    match store.rescue(now_micros(), retry).await {
        Ok(jobs) => {
            if !jobs.is_empty() {
                tracing::warn!(
                    rescued = jobs.len(),
                    "runs taken back after their lease expired"
                );
            }
            jobs.len()
        }
        Err(e) => {
            tracing::warn!(error = %e, "rescue failed");
            0
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::job::Status;
    use crate::testing;
    use std::time::Duration;

    /// A run whose lease has ended is taken back; one whose lease holds is left alone.
    #[tokio::test]
    async fn runs_past_their_lease_are_taken_back_and_others_left() {
        let (store, _dir) = testing::store().await;
        store
            .insert_many(vec![testing::job("short", true)], None)
            .await
            .unwrap();
        store
            .claim(testing::host(1, Duration::from_millis(1)))
            .await
            .unwrap();
        store
            .insert_many(vec![testing::job("long", true)], None)
            .await
            .unwrap();
        store
            .claim(testing::host(1, Duration::from_secs(60)))
            .await
            .unwrap();
        // The short lease ends 1 ms after its claim.
        let short = store.get("short").await.unwrap().unwrap();
        while crate::job::now_micros() <= short.lease_until.unwrap_or(0) {
            tokio::task::yield_now().await;
        }
        assert_eq!(super::run_once(&*store, testing::fast_retry()).await, 1);
        let short = store.get("short").await.unwrap().unwrap();
        assert_eq!(
            short.status,
            Status::Stopped,
            "one attempt: stopped, interrupted"
        );
        let long = store.get("long").await.unwrap().unwrap();
        assert_eq!(long.status, Status::Running);
        assert_eq!(super::run_once(&*store, testing::fast_retry()).await, 0);
    }
}
