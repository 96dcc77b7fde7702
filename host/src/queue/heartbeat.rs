//! The heartbeat: extends the leases of this host's running jobs.
//!
//! A run belongs to its host until its lease ends; the rescuer takes back runs whose lease
//! ended (their host died or lost the store). A live host renews its leases at a third of their
//! length, so that one missed beat costs nothing. A host that cannot reach the store for a whole
//! lease stops its runs: another host may be running them again by now, and a job must never run
//! on two hosts at once past a lease.

use super::executor::Executor;
use crate::store::JobStore;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Renews the executor's host's leases every `lease / 3` until the task is aborted.
pub(crate) async fn run(store: Arc<dyn JobStore>, executor: Arc<Executor>, lease: Duration) {
    let mut tick = tokio::time::interval((lease / 3).max(Duration::from_millis(10)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_ok = Instant::now();
    loop {
        // The first beat at once: other hosts learn of this one and its job types.
        tick.tick().await;
        if let Err(e) = store.announce(executor.host(), &executor.job_types()).await {
            tracing::warn!(error = %e, "could not announce this host");
        }
        match store.heartbeat(executor.host(), lease).await {
            Ok(_) => last_ok = Instant::now(),
            Err(e) => {
                tracing::warn!(error = %e, "heartbeat failed: leases not extended");
                // The lease was extended at most until `last_ok + lease`.
                if last_ok.elapsed() + lease / 10 >= lease {
                    let n = executor.interrupt_all();
                    if n > 0 {
                        tracing::error!(
                            runs = n,
                            "the job store is out of reach for a whole lease: runs stopped"
                        );
                    }
                }
            }
        }
    }
}
