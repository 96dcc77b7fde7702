//! The compactor: asks the store to do its own housekeeping (the local store rewrites its
//! journal when dead records dominate it).

use crate::store::JobStore;

/// One pass.
pub(crate) async fn run_once(store: &dyn JobStore) {
    if let Err(e) = store.compact().await {
        tracing::warn!(error = %e, "store compaction failed");
    }
}
