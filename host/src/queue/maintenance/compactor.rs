//! The compactor: asks the store to do its own housekeeping (the local store rewrites its
//! journal when dead records dominate it).

use crate::store::JobStore;

/// One pass.
pub(crate) async fn run_once(store: &dyn JobStore) {
    if let Err(e) = store.compact().await {
        tracing::warn!(error = %e, "store compaction failed");
    }
}

#[cfg(test)]
mod tests {
    use crate::store::local::LocalConfig;
    use crate::testing;
    use std::time::Duration;

    /// A pass rewrites a journal whose dead records dominate it, down to one record per job,
    /// and a second pass finds nothing to do.
    #[tokio::test]
    async fn a_pass_compacts_a_journal_of_mostly_dead_records() {
        let (store, _dir) = testing::store_with(LocalConfig {
            compact_ratio: 2,
            compact_min_records: 10,
            retry: testing::fast_retry(),
            schedules_file: None,
            queues_file: None,
        })
        .await;
        let jobs = (0..10)
            .map(|i| testing::job(&format!("c{i}"), true))
            .collect();
        store.insert_many(jobs, None).await.unwrap();
        // Each claim writes a second record per job, each delete a third.
        store
            .claim(testing::host(10, Duration::from_secs(30)))
            .await
            .unwrap();
        for i in 0..10 {
            store
                .request_stop(&format!("c{i}"), crate::job::StopKind::Delete, None)
                .await
                .unwrap();
        }
        store.flush().await.unwrap();
        let before = store.stats();
        assert!(before.records >= 30, "{before:?}");
        super::run_once(&*store).await;
        let after = store.stats();
        assert_eq!(after.compactions, before.compactions + 1, "{after:?}");
        assert_eq!(after.records, 10, "one record per job: {after:?}");
        super::run_once(&*store).await;
        assert_eq!(store.stats().compactions, after.compactions);
    }
}
