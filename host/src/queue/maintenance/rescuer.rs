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
