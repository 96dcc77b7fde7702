//! The scheduler: wakes the producer when a job's time comes (`run_at`, `delay_secs`, a retry's
//! backoff). It sleeps until the earliest scheduled time the store knows of (at most a second,
//! so a job scheduled meanwhile is seen), then raises the producer's wake signal (the
//! producer's own: the store's runnable signal is the store's output, not an input for
//! others); the claim itself moves due jobs into line.

use crate::job::now_micros;
use crate::store::Store;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;

/// Longest sleep between two looks.
const MAX_SLEEP: Duration = Duration::from_secs(1);

/// Runs until the task is aborted, raising `wake` (the producer's) when a job's time comes.
pub(crate) async fn run(store: Arc<dyn Store>, wake: Arc<Notify>) {
    loop {
        let next = store.next_scheduled().await.ok().flatten();
        let now = now_micros();
        let sleep = match next {
            Some(at) if at <= now => {
                wake.notify_one();
                // Let the producer claim before looking again.
                Duration::from_millis(5)
            }
            Some(at) => Duration::from_micros((at - now) as u64).min(MAX_SLEEP),
            None => MAX_SLEEP,
        };
        tokio::time::sleep(sleep).await;
    }
}

#[cfg(test)]
mod tests {
    use crate::store::NewJob;
    use crate::testing;
    use std::sync::Arc;
    use std::time::Duration;
    use tokio::sync::Notify;

    /// The producer's wake signal is raised once a scheduled job's time comes, not before.
    #[tokio::test]
    async fn the_producer_is_woken_when_a_job_falls_due() {
        let (store, _dir) = testing::store().await;
        let at = crate::job::now_micros() + 150_000;
        store
            .insert_many(
                vec![NewJob {
                    run_at: Some(at),
                    ..testing::job("later", true)
                }],
                None,
            )
            .await
            .unwrap();
        let wake = Arc::new(Notify::new());
        let woken = wake.notified();
        tokio::pin!(woken);
        woken.as_mut().enable();
        let task = tokio::spawn(super::run(store.clone(), wake.clone()));
        tokio::time::timeout(Duration::from_secs(5), woken)
            .await
            .expect("woken once the job is due");
        assert!(crate::job::now_micros() >= at, "not before its time");
        task.abort();
    }
}
