//! The cleaner: retention as queuemgr offers it — a time-to-live per terminal status, a cap on
//! terminal jobs (oldest-ended first), expiry of jobs added but never started. Purged jobs are
//! forgotten by the store, and their logs by the executor.

use super::super::executor::Executor;
use crate::job::now_micros;
use crate::store::{JobStore, Retention};

/// One pass; returns how many jobs were removed.
pub(crate) async fn run_once(
    store: &dyn JobStore,
    rules: &Retention,
    executor: &Executor,
) -> usize {
    match store.purge(rules, now_micros()).await {
        Ok(ids) => {
            if !ids.is_empty() {
                executor.forget(&ids);
                tracing::info!(purged = ids.len(), "retention removed jobs");
            }
            ids.len()
        }
        Err(e) => {
            tracing::warn!(error = %e, "retention could not record purges");
            0
        }
    }
}
