//! The schema's migrations: `migrations/NNNN_*.sql`, applied in order, each once per schema,
//! under an advisory lock so that hosts starting together apply each once.

use super::*;

/// The migrations, in order (`migrations/NNNN_*.sql`); each runs once per schema (`{s}` is the
/// quoted schema name). A new one is a new file at the end of this list; an applied one never
/// changes.
pub(super) const MIGRATIONS: &[&str] = &[
    include_str!("migrations/0001_jobs_hosts_leader.sql"),
    include_str!("migrations/0002_counts_per_type.sql"),
    include_str!("migrations/0003_host_urls.sql"),
    include_str!("migrations/0004_bytewise_keys.sql"),
    include_str!("migrations/0005_commit_tokens.sql"),
    include_str!("migrations/0006_schedules.sql"),
    include_str!("migrations/0007_queues.sql"),
    include_str!("migrations/0008_flows.sql"),
];

/// Applies the migrations the schema lacks, in one transaction; returns how many.
pub(super) async fn migrate_with(pool: &Pool, schema: &str, s: &str) -> Result<usize, StoreError> {
    let mut c = pool.get().await.map_err(pool_err)?;
    let tx = c.transaction().await.map_err(db)?;
    // One lock per schema: hosts that start together apply each migration once.
    tx.execute(
        "SELECT pg_advisory_xact_lock(hashtext('queuemgr migrations ' || $1))",
        &[&schema],
    )
    .await
    .map_err(db)?;
    tx.batch_execute(&format!(
        "CREATE SCHEMA IF NOT EXISTS {s}; CREATE TABLE IF NOT EXISTS {s}.migrations (version integer PRIMARY KEY, applied_at bigint NOT NULL)"
    ))
    .await
    .map_err(db)?;
    let row = tx
        .query_one(
            &format!("SELECT coalesce(max(version), 0) FROM {s}.migrations"),
            &[],
        )
        .await
        .map_err(db)?;
    let have: i32 = row.get(0);
    let mut applied = 0;
    for (i, m) in MIGRATIONS.iter().enumerate() {
        let version = i as i32 + 1;
        if version <= have {
            continue;
        }
        tx.batch_execute(&m.replace("{s}", s)).await.map_err(db)?;
        tx.execute(
            &format!("INSERT INTO {s}.migrations (version, applied_at) VALUES ($1, $2)"),
            &[&version, &now_micros()],
        )
        .await
        .map_err(db)?;
        applied += 1;
    }
    tx.commit().await.map_err(db)?;
    if applied > 0 {
        tracing::info!(schema, applied, "job store migrations applied");
    }
    Ok(applied)
}
