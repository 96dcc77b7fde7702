//! `queuemgr serve`: the assembly of runtime → catalog → store → queue → HTTP from its
//! settings ([`args`]: every flag also an environment variable).

mod args;

pub use args::{
    ClusterArgs, HttpArgs, JobsArgs, LimitsArgs, RetentionArgs, RetryArgs, ServeArgs, StoreArgs,
};

use crate::api;
use crate::catalog::Catalog;
use crate::metrics::Metrics;
use crate::queue::{Queue, QueueConfig};
use crate::runtime::{Metering, Runtime};
use crate::store::Store;
use crate::store::local::LocalStore;
use crate::store::local::journal::Journal;
use crate::store::local::jsonl::JsonlJournal;
use crate::store::metered::MeteredStore;
use crate::store::postgres::{PgConfig, PgStore};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// Where `--store` points.
pub enum StoreUrl {
    /// A JSONL file (the local store).
    Jsonl(PathBuf),
    /// A PostgreSQL database.
    Postgres(PgConfig),
}

impl StoreUrl {
    /// Reads a store URL.
    pub fn from_parts(
        store: Option<&str>,
        registry: &std::path::Path,
        schema: &str,
        pool_size: usize,
    ) -> Result<StoreUrl, StartError> {
        match store {
            None => Ok(StoreUrl::Jsonl(registry.to_path_buf())),
            Some(s) if s.starts_with("jsonl:") => Ok(StoreUrl::Jsonl(PathBuf::from(&s[6..]))),
            Some(s) if s.starts_with("postgres://") || s.starts_with("postgresql://") => {
                Ok(StoreUrl::Postgres(PgConfig::new(s, schema, pool_size)))
            }
            // Only the scheme is echoed: the rest may hold a password.
            Some(other) => Err(StartError::StoreUrl(
                other
                    .split_once("://")
                    .map_or("(no scheme)", |(scheme, _)| scheme)
                    .chars()
                    .take(20)
                    .collect(),
            )),
        }
    }
}

/// Why the host could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The wasm engine could not be configured.
    #[error(transparent)]
    Engine(#[from] crate::runtime::EngineError),
    /// The registry could not be opened or replayed.
    #[error(transparent)]
    Journal(#[from] crate::store::local::journal::JournalError),
    /// The job store could not be opened.
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    /// `--store` is neither `jsonl:PATH` nor a `postgres://` URL.
    #[error("--store must be jsonl:PATH or postgres://user@host/db, got a URL of scheme '{0}'")]
    StoreUrl(String),
    /// The jobs directory could not be read or watched.
    #[error("jobs directory {0}: {1}")]
    JobsDir(PathBuf, String),
    /// The jobs runtime could not be built.
    #[error("cannot start the job threads: {0}")]
    Threads(std::io::Error),
    /// The keys file cannot be used.
    #[error(transparent)]
    Keys(#[from] crate::auth::KeysError),
    /// Traces cannot be exported as configured.
    #[error("{0}")]
    Telemetry(#[from] crate::telemetry::TelemetryError),
    /// `--job-fuel` with a metering that does not count fuel.
    #[error("--job-fuel needs --metering fuel (got --metering {0})")]
    FuelWithoutMetering(&'static str),
}

/// A running host's parts.
pub struct Host {
    /// The HTTP router.
    pub router: axum::Router,
    /// The keys the router checks.
    pub keys: std::sync::Arc<crate::auth::KeyRing>,
    /// The queue.
    pub queue: Queue,
    _watcher: Option<notify::RecommendedWatcher>,
    /// Dropped last: ends the job threads.
    _jobs_rt: JobsRuntime,
}

/// The runtime jobs run on. Dropped without blocking, so that it can be dropped from async
/// code (including when start-up fails half-way).
struct JobsRuntime(Option<tokio::runtime::Runtime>);

impl JobsRuntime {
    fn handle(&self) -> tokio::runtime::Handle {
        match &self.0 {
            Some(rt) => rt.handle().clone(),
            None => tokio::runtime::Handle::current(),
        }
    }
}

impl Drop for JobsRuntime {
    fn drop(&mut self) {
        if let Some(rt) = self.0.take() {
            rt.shutdown_background();
        }
    }
}

impl Host {
    /// Stops the running jobs (STOPPED, interrupted), flushes the registry, and ends the job
    /// threads.
    pub async fn shutdown(self) {
        self.queue.shutdown().await;
        if let Some(t) = self.queue.config().telemetry.clone() {
            // The SDK's flush blocks while it sends: off the async threads.
            let _ = tokio::task::spawn_blocking(move || t.shutdown()).await;
        }
    }
}

/// Builds the whole host from its settings: loads the jobs directory, replays the registry,
/// and returns the router to serve.
pub async fn build(args: &ServeArgs) -> Result<Host, StartError> {
    let runtime_config = args.jobs.runtime_config(&args.limits);
    if args.limits.job_fuel.is_some() && runtime_config.metering != Metering::Fuel {
        return Err(StartError::FuelWithoutMetering(
            runtime_config.metering.as_str(),
        ));
    }
    let runtime = Runtime::new(runtime_config)?;
    let jobs_rt = JobsRuntime(Some(
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(args.jobs.threads())
            .thread_name("queuemgr-job")
            .enable_all()
            .build()
            .map_err(StartError::Threads)?,
    ));
    let jobs_dir = || args.jobs.jobs_dir.clone();
    let catalog = Catalog::open(
        runtime.clone(),
        args.jobs.catalog_config(
            runtime.config().max_memory_bytes,
            runtime.config().metering == Metering::Fuel,
        ),
    )
    .await
    .map_err(|e| StartError::JobsDir(jobs_dir(), e.to_string()))?;
    let watcher = catalog
        .watch()
        .map_err(|e| StartError::JobsDir(jobs_dir(), e.to_string()))?;
    let retry = args.retry.policy();
    let store: Arc<dyn Store> = match args.store.url(args.cluster.lease())? {
        StoreUrl::Jsonl(path) => {
            let journal: Arc<dyn Journal> = Arc::new(JsonlJournal::open(&path)?);
            let mut local = args.store.local_config(retry);
            // The schedules of periodic jobs are kept beside the journal.
            local.schedules_file = Some(path.with_extension("schedules.json"));
            local.queues_file = Some(path.with_extension("queues.json"));
            let (store, opened) = LocalStore::open(journal, local).await?;
            tracing::info!(
                jobs = opened.jobs,
                rescued = opened.rescued,
                runnable = opened.runnable,
                "job store opened"
            );
            Arc::new(store)
        }
        StoreUrl::Postgres(cfg) => {
            let store = PgStore::open(cfg).await?;
            tracing::info!(schema = %args.store.store_schema, "job store opened on PostgreSQL");
            Arc::new(store)
        }
    };
    // Store writes are timed for `/metrics`, whatever the backend.
    let metrics = Metrics::new();
    let telemetry = crate::telemetry::Telemetry::start(
        &args.traces,
        &args.cluster.host_id(),
        store.stats().backend,
        tokio::runtime::Handle::current(),
    )?
    .map(Arc::new);
    let store: Arc<dyn Store> = Arc::new(MeteredStore::new(store, metrics.clone()));
    let cfg = QueueConfig {
        max_concurrent: args.limits.max_concurrent_jobs.max(1),
        limits: args.limits.job_limits(),
        default_job_type: args.jobs.default_job_type.clone(),
        progress_interval: Duration::from_millis(args.jobs.progress_interval_ms),
        retention: args.retention.retention(),
        host_id: args.cluster.host_id(),
        lease: args.cluster.lease(),
        default_max_attempts: args.retry.max_attempts.max(1),
        retry,
        maintenance_interval: args.cluster.maintenance_interval(),
        events_keep: args.http.events_keep.max(1),
        metrics,
        peer_api_key: args.http.api_key.clone(),
        telemetry,
        ..QueueConfig::default()
    };
    let queue = Queue::open(store, catalog, runtime, jobs_rt.handle(), cfg).await;
    let keys = std::sync::Arc::new(crate::auth::KeyRing::new(
        args.http.api_key.as_deref(),
        args.http.keys_file.as_deref(),
    )?);
    let router = api::router(
        queue.clone(),
        &api::ApiConfig {
            keys: Some(keys.clone()),
            ..args.http.api_config()
        },
    );
    Ok(Host {
        router,
        keys,
        queue,
        _watcher: Some(watcher),
        _jobs_rt: jobs_rt,
    })
}
