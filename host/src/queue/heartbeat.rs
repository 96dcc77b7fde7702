//! The heartbeat: extends the leases of this host's running jobs.
//!
//! A run belongs to its host until its lease ends; the rescuer takes back runs whose lease
//! ended (their host died or lost the store). A live host renews its leases at a third of their
//! length, so that one missed beat costs nothing.

use crate::store::JobStore;
use std::sync::Arc;
use std::time::Duration;

/// Renews `host`'s leases every `lease / 3` until the task is aborted.
pub(crate) async fn run(store: Arc<dyn JobStore>, host: String, lease: Duration) {
    let mut tick = tokio::time::interval((lease / 3).max(Duration::from_millis(10)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tick.tick().await;
        if let Err(e) = store.heartbeat(&host, lease).await {
            tracing::warn!(error = %e, "heartbeat failed: leases not extended");
        }
    }
}
