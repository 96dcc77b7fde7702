//! The scheduler: wakes the producer when a job's time comes (`run_at`, `delay_secs`, a retry's
//! backoff). It sleeps until the earliest scheduled time the store knows of (at most a second,
//! so a job scheduled meanwhile is seen), then raises the store's runnable signal; the claim
//! itself moves due jobs into line.

use crate::job::now_micros;
use crate::store::JobStore;
use std::sync::Arc;
use std::time::Duration;

/// Longest sleep between two looks.
const MAX_SLEEP: Duration = Duration::from_secs(1);

/// Runs until the task is aborted.
pub(crate) async fn run(store: Arc<dyn JobStore>) {
    let runnable = store.runnable();
    loop {
        let next = store.next_scheduled().await.ok().flatten();
        let now = now_micros();
        let sleep = match next {
            Some(at) if at <= now => {
                runnable.notify_one();
                // Let the producer claim before looking again.
                Duration::from_millis(5)
            }
            Some(at) => Duration::from_micros((at - now) as u64).min(MAX_SLEEP),
            None => MAX_SLEEP,
        };
        tokio::time::sleep(sleep).await;
    }
}
