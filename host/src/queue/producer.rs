//! The producer: turns free slots into claims.
//!
//! It wakes when jobs may have become runnable (the store's signal: an insert, a start, a
//! retry, a rescue), when the scheduler finds a job due (the producer's own wake signal, which
//! it owns and hands to the scheduler), or when a run gives its slot back, then
//! reserves every free slot and claims that many jobs of the types this host has loaded, in the
//! store's order (priority, scheduled time, insertion). A slow poll covers a lost signal and a
//! job type that was loaded since. While a backlog lasts (the last claim filled every slot it
//! took), it claims again without looking first, and where a claim costs a round trip and a
//! commit (PostgreSQL) it waits up to the store's `claim_linger` for half the slots to free, so
//! that a backlog drains in large batches rather than a slot at a time.
//!
//! A job type whose manifest caps its concurrent runs (`limits.max_concurrent`) is claimed on
//! its own, at most up to its cap minus its runs on this host; only the producer claims such
//! types, so two claims never race past a cap.

use super::executor::Executor;
use crate::catalog::Catalog;
use crate::store::{Claimant, JobStore, Store};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

/// How often the producer looks for work without a signal.
const POLL: Duration = Duration::from_secs(1);

/// The producer's wake signal: raised by whoever learns that jobs may be due (the scheduler).
pub(crate) type Wake = Arc<tokio::sync::Notify>;

/// Claims jobs for `executor` until the task is aborted.
pub(crate) async fn run(
    store: Arc<dyn Store>,
    executor: Arc<Executor>,
    catalog: Arc<Catalog>,
    lease: Duration,
    wake: Wake,
) {
    let runnable = store.runnable();
    let freed = executor.freed.clone();
    let linger = store.capabilities().claim_linger;
    loop {
        // Whether the last claim filled every slot it reserved: there is likely more due, so
        // the next claim need not look first, and may wait for more slots to fill.
        let mut full = false;
        // Register interest before looking, so that a signal raised meanwhile is not lost.
        let woken = runnable.notified();
        let due = wake.notified();
        let slot = freed.notified();
        tokio::pin!(woken, due, slot);
        woken.as_mut().enable();
        due.as_mut().enable();
        slot.as_mut().enable();
        loop {
            let (free_types, capped) = catalog.names_by_cap();
            let job_types: Arc<[String]> = catalog.names().into();
            let code = catalog.code();
            // Look first (without holding slots), so that a start on this host can still claim
            // its own job at once while nothing else is due.
            if !full {
                match store.has_due(&job_types).await {
                    Ok(true) => {}
                    Ok(false) => break,
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot look for runnable jobs");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        break;
                    }
                }
            }
            for (job_type, cap) in capped {
                let room = cap.saturating_sub(executor.running_of(&job_type));
                if room > 0 {
                    let types: Arc<[String]> = vec![job_type].into();
                    if claim(&*store, &executor, types, &code, room, lease)
                        .await
                        .is_none()
                    {
                        break;
                    }
                }
            }
            if free_types.is_empty() {
                break;
            }
            if full && !linger.is_zero() {
                gather(&executor.slots, linger).await;
            }
            full = match claim(
                &*store,
                &executor,
                free_types.into(),
                &code,
                usize::MAX,
                lease,
            )
            .await
            {
                Some(true) => true,
                Some(false) | None => break,
            };
        }
        tokio::select! {
            _ = &mut woken => {}
            _ = &mut due => {}
            _ = &mut slot => {}
            _ = tokio::time::sleep(POLL) => {}
        }
    }
}

/// Waits, at most `linger`, until at least half the slots are free (a backlog is then claimed
/// in batches of half the slots or more, rather than a slot at a time).
async fn gather(slots: &super::executor::Slots, linger: Duration) {
    let until = tokio::time::Instant::now() + linger;
    while slots.used() * 2 > slots.max() && tokio::time::Instant::now() < until {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// Claims up to `want` jobs of `job_types` into free slots; the store hands them to the
/// executor. `Some(true)` when every slot it reserved was filled (there may be more),
/// `Some(false)` when fewer, `None` when no slot was free or the claim failed.
async fn claim(
    store: &dyn JobStore,
    executor: &Arc<Executor>,
    job_types: Arc<[String]>,
    code: &Arc<HashMap<String, String>>,
    want: usize,
    lease: Duration,
) -> Option<bool> {
    let reserved = executor.reserve(want)?;
    let free = reserved.len();
    let claimant = Claimant {
        host: executor.host().to_string(),
        job_types,
        max: free,
        lease,
        code: code.clone(),
        run: Some(reserved.runner()),
    };
    // The store hands the jobs it claims to the executor; each run keeps its slot, and the
    // reservation gives back the others when it is dropped.
    match store.claim(claimant).await {
        Ok(jobs) => Some(jobs.len() == free),
        Err(e) => {
            drop(reserved);
            tracing::warn!(error = %e, "claim failed");
            tokio::time::sleep(Duration::from_millis(100)).await;
            None
        }
    }
}
