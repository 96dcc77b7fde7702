//! The heartbeat: extends the leases of the runs this host holds.
//!
//! A run belongs to its host until its lease ends; the rescuer takes back runs whose lease
//! ended (their host died or lost the store). A live host renews its leases at a third of their
//! length, so that one missed beat costs nothing. A host that cannot reach the store for a whole
//! lease stops its runs: another host may be running them again by now, and a job must never run
//! on two hosts at once past a lease.
//!
//! A beat names the runs it extends (job and attempt), from the executor: a job the store
//! shows RUNNING under this host's name but that no run here holds (its claim was committed
//! while the answer was lost) must lapse and be rescued, not be kept alive by this host.

use super::executor::Executor;
use crate::store::Store;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Renews the executor's host's leases every `lease / 3` until the task is aborted.
///
/// A beat that does not come back in time is as good as a failed one: the runs are stopped on
/// a timer, `lease × 0.9` after the last beat that succeeded was sent (the store set that
/// beat's leases to end a full lease after it ran, no earlier), so they are stopped before
/// their leases end even when the store hangs rather than fails.
pub(crate) async fn run(store: Arc<dyn Store>, executor: Arc<Executor>, lease: Duration) {
    let mut tick = tokio::time::interval((lease / 3).max(Duration::from_millis(10)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_ok = Instant::now();
    // Whether the runs were stopped since the last beat that got through.
    let mut stopped = false;
    let stop = |executor: &Executor| {
        let n = executor.interrupt_all();
        if n > 0 {
            tracing::error!(
                runs = n,
                "the job store is out of reach for most of a lease: runs stopped"
            );
        }
    };
    loop {
        let deadline = last_ok + lease.mul_f64(0.9);
        // The first beat at once: other hosts learn of this one and its job types. Between
        // beats, the deadline is kept on its own timer.
        tokio::select! {
            _ = tick.tick() => {}
            _ = tokio::time::sleep_until(deadline.into()), if !stopped => {
                tracing::warn!("no heartbeat got through for most of a lease");
                stop(&executor);
                stopped = true;
                continue;
            }
        }
        let sent = Instant::now();
        let beat = async {
            let url = executor.url();
            if let Err(e) = store
                .announce(executor.host(), &executor.job_types(), url.as_deref())
                .await
            {
                tracing::warn!(error = %e, "could not announce this host");
            }
            let runs = executor.held();
            store.heartbeat(executor.host(), lease, &runs).await
        };
        let answer = if stopped {
            // Give the beat its time, so that one gets through once the store is back.
            tokio::time::timeout(lease, beat).await.ok()
        } else {
            tokio::select! {
                r = beat => Some(r),
                _ = tokio::time::sleep_until(deadline.into()) => None,
            }
        };
        match answer {
            Some(Ok(_)) => {
                last_ok = sent;
                stopped = false;
            }
            Some(Err(e)) => {
                tracing::warn!(error = %e, "heartbeat failed: leases not extended");
                if stopped {
                    stop(&executor);
                }
            }
            None => {
                tracing::warn!("heartbeat unanswered: leases not extended");
                stop(&executor);
                stopped = true;
            }
        }
    }
}
