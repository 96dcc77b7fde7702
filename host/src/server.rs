//! `queuemgr serve`: its settings (every flag also an environment variable) and the assembly of
//! runtime → catalog → registry → queue → HTTP.

use crate::api::{self, ApiConfig};
use crate::catalog::{Catalog, CatalogConfig};
use crate::metrics::Metrics;
use crate::queue::{Queue, QueueConfig, Retention};
use crate::runtime::{JobLimits, Runtime, RuntimeConfig};
use crate::store::RetryPolicy;
use crate::store::Store;
use crate::store::local::journal::Journal;
use crate::store::local::jsonl::JsonlJournal;
use crate::store::local::{LocalConfig, LocalStore};
use crate::store::metered::MeteredStore;
use crate::store::postgres::{PgConfig, PgStore};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// Settings of `queuemgr serve`.
#[derive(Debug, Clone, clap::Args)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "QUEUEMGR_LISTEN", default_value = "127.0.0.1:8000")]
    pub listen: SocketAddr,
    /// Directory of job components: every `*.wasm` is a job type named by its file stem.
    #[arg(long, env = "QUEUEMGR_JOBS_DIR", default_value = "./jobs")]
    pub jobs_dir: PathBuf,
    /// The registry file (JSONL), when `--store` is not given.
    #[arg(
        long,
        env = "QUEUEMGR_REGISTRY",
        default_value = "./queuemgr-registry.jsonl"
    )]
    pub registry: PathBuf,
    /// Where jobs are kept: `jsonl:PATH` (one host; the default is `jsonl:` + `--registry`)
    /// or `postgres://user@host:port/db` (several hosts sharing one queue).
    #[arg(long, env = "QUEUEMGR_STORE")]
    pub store: Option<String>,
    /// The PostgreSQL schema of this queue (several queues can share one database).
    #[arg(long, env = "QUEUEMGR_STORE_SCHEMA", default_value = "queuemgr")]
    pub store_schema: String,
    /// The URL other hosts of the queue reach this one at (they fetch a running job's logs
    /// from it). Default: `http://` and the address this host listens on (its hostname when
    /// it listens on every address).
    #[arg(long, env = "QUEUEMGR_ADVERTISE_URL")]
    pub advertise_url: Option<String>,
    /// Connections to PostgreSQL per host.
    #[arg(long, env = "QUEUEMGR_STORE_POOL", default_value_t = 16)]
    pub store_pool: usize,
    /// The longest one PostgreSQL operation may take, seconds; past it the call fails with
    /// `STORE_UNAVAILABLE` (a database that stops answering must not hang the host).
    #[arg(long, env = "QUEUEMGR_STORE_TIMEOUT_SECS", default_value_t = 10.0)]
    pub store_timeout_secs: f64,
    /// Where compiled job code is cached (default: `<jobs-dir>/.queuemgr-cache`).
    #[arg(long, env = "QUEUEMGR_CACHE_DIR")]
    pub cache_dir: Option<PathBuf>,
    /// Most jobs running at once; later starts wait their turn (FIFO).
    #[arg(long, env = "QUEUEMGR_MAX_CONCURRENT_JOBS", default_value_t = 64)]
    pub max_concurrent_jobs: usize,
    /// The job type `add_job` uses when it names none.
    #[arg(long, env = "QUEUEMGR_DEFAULT_JOB_TYPE")]
    pub default_job_type: Option<String>,
    /// Require this key (`X-API-Key` or `Authorization: Bearer`) on every route but
    /// `/health` and `/openapi.json`. Off by default.
    #[arg(long, env = "QUEUEMGR_API_KEY", hide_env_values = true)]
    pub api_key: Option<String>,
    /// Fuel budget per job run (wasm operators, roughly 6e9 a second of spinning); unset:
    /// unlimited (the timeout still applies).
    #[arg(long, env = "QUEUEMGR_JOB_FUEL")]
    pub job_fuel: Option<u64>,
    /// Memory cap per job, MiB.
    #[arg(long, env = "QUEUEMGR_JOB_MEMORY_MIB", default_value_t = 128)]
    pub job_memory_mib: usize,
    /// Wall-clock timeout per job run, seconds (covers host calls and sleeps too).
    #[arg(long, env = "QUEUEMGR_JOB_TIMEOUT_SECS", default_value_t = 3600.0)]
    pub job_timeout_secs: f64,
    /// Largest job result, bytes; a bigger one fails the job with the `result size` cap.
    #[arg(long, env = "QUEUEMGR_JOB_RESULT_MAX_BYTES", default_value_t = 16 << 20)]
    pub job_result_max_bytes: usize,
    /// Log bytes kept per job run (stdout, stderr and log lines); later lines are dropped.
    #[arg(long, env = "QUEUEMGR_JOB_LOG_MAX_BYTES", default_value_t = 1 << 20)]
    pub job_log_max_bytes: usize,
    /// Least time between two progress records of one job in the registry, milliseconds.
    #[arg(long, env = "QUEUEMGR_PROGRESS_INTERVAL_MS", default_value_t = 1000)]
    pub progress_interval_ms: u64,
    /// Most job instances alive at once (the instance pool's size).
    #[arg(long, env = "QUEUEMGR_MAX_INSTANCES", default_value_t = 1000)]
    pub max_instances: u32,
    /// Threads that run jobs (default: one per core but one, which the HTTP side keeps, so that
    /// busy guests cannot crowd out the API; at least one).
    #[arg(long, env = "QUEUEMGR_JOB_THREADS")]
    pub job_threads: Option<usize>,
    /// Largest `.wasm` file loaded from the jobs directory, MiB.
    #[arg(long, env = "QUEUEMGR_MAX_JOB_FILE_MIB", default_value_t = 64)]
    pub max_job_file_mib: u64,
    /// Largest request body, bytes (room for an `add_jobs` batch of 10,000 jobs).
    #[arg(long, env = "QUEUEMGR_MAX_BODY_BYTES", default_value_t = 16 << 20)]
    pub max_body_bytes: usize,
    /// Most open HTTP connections.
    #[arg(long, env = "QUEUEMGR_MAX_CONNECTIONS", default_value_t = 1024)]
    pub max_connections: usize,
    /// Most requests handled at once; more get 503 at once.
    #[arg(long, env = "QUEUEMGR_MAX_IN_FLIGHT", default_value_t = 512)]
    pub max_in_flight: usize,
    /// A client must send a request head within this many milliseconds (also closes idle
    /// keep-alive connections).
    #[arg(long, env = "QUEUEMGR_HEADER_TIMEOUT_MS", default_value_t = 15_000)]
    pub header_timeout_ms: u64,
    /// Longest a request may take, seconds.
    #[arg(long, env = "QUEUEMGR_REQUEST_TIMEOUT_SECS", default_value_t = 60)]
    pub request_timeout_secs: u64,
    /// Seconds between keep-alive comments on an idle event stream.
    #[arg(long, env = "QUEUEMGR_SSE_KEEP_ALIVE_SECS", default_value_t = 15)]
    pub sse_keep_alive_secs: u64,
    /// `Host` header values that `/mcp` accepts besides localhost, 127.0.0.1, ::1 and the
    /// `--listen` address (comma-separated names, e.g. the name a proxy forwards; a name
    /// without a port matches any port). The check guards against DNS rebinding.
    #[arg(long, env = "QUEUEMGR_MCP_ALLOWED_HOSTS", value_delimiter = ',')]
    pub mcp_allowed_hosts: Vec<String>,
    /// At start, wait this long for the job types to load before serving; larger components
    /// (Python jobs compile for seconds the first time) go on loading in the background and
    /// are listed as `loading`.
    #[arg(long, env = "QUEUEMGR_LOAD_WAIT_SECS", default_value_t = 30)]
    pub load_wait_secs: u64,
    /// Serve the dashboard's files from this directory (e.g. `host/dashboard`) instead of the
    /// copies built into the binary: for working on the dashboard without rebuilding.
    #[arg(long, env = "QUEUEMGR_DASHBOARD_DIR")]
    pub dashboard_dir: Option<PathBuf>,
    /// Live events kept for event-stream clients that reconnect with `Last-Event-ID`.
    #[arg(long, env = "QUEUEMGR_EVENTS_KEEP", default_value_t = 10_000)]
    pub events_keep: usize,
    /// Keep COMPLETED jobs this many seconds (unset: until the terminal-job cap).
    #[arg(long, env = "QUEUEMGR_COMPLETED_TTL_SECS")]
    pub completed_ttl_secs: Option<u64>,
    /// Keep ERROR jobs this many seconds.
    #[arg(long, env = "QUEUEMGR_ERROR_TTL_SECS")]
    pub error_ttl_secs: Option<u64>,
    /// Keep STOPPED jobs this many seconds.
    #[arg(long, env = "QUEUEMGR_STOPPED_TTL_SECS")]
    pub stopped_ttl_secs: Option<u64>,
    /// Keep DELETED jobs this many seconds.
    #[arg(long, env = "QUEUEMGR_DELETED_TTL_SECS", default_value_t = 3600)]
    pub deleted_ttl_secs: u64,
    /// Remove PENDING jobs never started after this many seconds.
    #[arg(long, env = "QUEUEMGR_PENDING_TTL_SECS")]
    pub pending_ttl_secs: Option<u64>,
    /// Most terminal jobs kept; the oldest-ended are removed first.
    #[arg(long, env = "QUEUEMGR_MAX_TERMINAL_JOBS", default_value_t = 1_000_000)]
    pub max_terminal_jobs: usize,
    /// Compact the registry once it holds this many times more records than live jobs…
    #[arg(long, env = "QUEUEMGR_COMPACT_RATIO", default_value_t = 4)]
    pub compact_ratio: u64,
    /// …and at least this many records.
    #[arg(long, env = "QUEUEMGR_COMPACT_MIN_RECORDS", default_value_t = 10_000)]
    pub compact_min_records: u64,
    /// How often the rescuer, retention and compaction run, seconds.
    #[arg(long, env = "QUEUEMGR_MAINTENANCE_INTERVAL_SECS", default_value_t = 5)]
    pub maintenance_interval_secs: u64,
    /// This host's id in the job store (default: `<hostname>-<pid>`).
    #[arg(long, env = "QUEUEMGR_HOST_ID")]
    pub host_id: Option<String>,
    /// Runs per start when `add_job` gives no `max_attempts` (1 = no retries, as the original).
    #[arg(long, env = "QUEUEMGR_MAX_ATTEMPTS", default_value_t = 1)]
    pub max_attempts: u32,
    /// The wait before a job's second attempt, milliseconds; it doubles with each attempt
    /// (±20 % jitter).
    #[arg(long, env = "QUEUEMGR_RETRY_BASE_MS", default_value_t = 1000)]
    pub retry_base_ms: u64,
    /// The longest wait between two attempts, seconds.
    #[arg(long, env = "QUEUEMGR_RETRY_MAX_SECS", default_value_t = 3600)]
    pub retry_max_secs: u64,
    /// How long a run belongs to this host without a heartbeat, seconds (heartbeats come at a
    /// third of it).
    #[arg(long, env = "QUEUEMGR_LEASE_SECS", default_value_t = 30)]
    pub lease_secs: u64,
}

/// Where `--store` points.
pub enum StoreUrl {
    /// A JSONL file (the local store).
    Jsonl(PathBuf),
    /// A PostgreSQL database.
    Postgres(PgConfig),
}

impl StoreUrl {
    /// Reads `--store` (default: `jsonl:` + `--registry`).
    pub fn parse(args: &ServeArgs) -> Result<StoreUrl, StartError> {
        let mut url = Self::from_parts(
            args.store.as_deref(),
            &args.registry,
            &args.store_schema,
            args.store_pool,
        )?;
        if let StoreUrl::Postgres(pg) = &mut url {
            pg.op_timeout = Duration::from_secs_f64(args.store_timeout_secs.clamp(0.1, 3600.0));
            // Shorter than a lease: a cut-off host's open transaction (and its row locks) is
            // gone before its runs' leases end and another host rescues them.
            pg.idle_tx_timeout = Duration::from_secs(args.lease_secs.max(1)) / 2;
        }
        Ok(url)
    }

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
}

/// A running host's parts.
pub struct Host {
    /// The HTTP router.
    pub router: axum::Router,
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
    /// The connection limits from the settings.
    pub fn conn_limits(args: &ServeArgs) -> crate::api::serve::ConnLimits {
        crate::api::serve::ConnLimits {
            max_connections: args.max_connections,
            header_timeout: Duration::from_millis(args.header_timeout_ms.max(1)),
            ..crate::api::serve::ConnLimits::default()
        }
    }

    /// Stops the running jobs (STOPPED, interrupted), flushes the registry, and ends the job
    /// threads.
    pub async fn shutdown(self) {
        self.queue.shutdown().await;
    }
}

fn secs(s: Option<u64>) -> Option<Duration> {
    s.map(Duration::from_secs)
}

/// The `Host` values `/mcp` accepts: loopback names, the listen address (unless it is the
/// unspecified address) and what `--mcp-allowed-hosts` adds.
fn mcp_hosts(args: &ServeArgs) -> Vec<String> {
    let mut hosts: Vec<String> = ["localhost", "127.0.0.1", "::1"]
        .into_iter()
        .map(String::from)
        .collect();
    let ip = args.listen.ip();
    if !ip.is_unspecified() && !ip.is_loopback() {
        hosts.push(ip.to_string());
    }
    hosts.extend(
        args.mcp_allowed_hosts
            .iter()
            .map(|h| h.trim().to_string())
            .filter(|h| !h.is_empty()),
    );
    hosts
}

/// Builds the whole host from its settings: loads the jobs directory, replays the registry,
/// and returns the router to serve.
pub async fn build(args: &ServeArgs) -> Result<Host, StartError> {
    let runtime = Runtime::new(RuntimeConfig {
        max_instances: args.max_instances,
        max_memory_bytes: (args.job_memory_mib << 20)
            .max(RuntimeConfig::default().max_memory_bytes),
        ..RuntimeConfig::default()
    })?;
    let threads = args.job_threads.unwrap_or_else(|| {
        std::thread::available_parallelism().map_or(1, |n| n.get().saturating_sub(1))
    });
    let jobs_rt = JobsRuntime(Some(
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads.max(1))
            .thread_name("queuemgr-job")
            .enable_all()
            .build()
            .map_err(StartError::Threads)?,
    ));
    let cache_dir = args
        .cache_dir
        .clone()
        .unwrap_or_else(|| args.jobs_dir.join(".queuemgr-cache"));
    let catalog = Catalog::open(
        runtime.clone(),
        CatalogConfig {
            dir: args.jobs_dir.clone(),
            cache_dir,
            max_file_bytes: args.max_job_file_mib << 20,
            bounds: crate::catalog::ManifestBounds {
                max_memory_bytes: runtime.config().max_memory_bytes,
            },
            startup_wait: Duration::from_secs(args.load_wait_secs),
        },
    )
    .await
    .map_err(|e| StartError::JobsDir(args.jobs_dir.clone(), e.to_string()))?;
    let watcher = catalog
        .watch()
        .map_err(|e| StartError::JobsDir(args.jobs_dir.clone(), e.to_string()))?;
    let retry = RetryPolicy {
        base: Duration::from_millis(args.retry_base_ms.max(1)),
        max: Duration::from_secs(args.retry_max_secs.max(1)),
        ..RetryPolicy::default()
    };
    let store: Arc<dyn Store> = match StoreUrl::parse(args)? {
        StoreUrl::Jsonl(path) => {
            let registry: Arc<dyn Journal> = Arc::new(JsonlJournal::open(&path)?);
            let (store, opened) = LocalStore::open(
                registry,
                LocalConfig {
                    compact_ratio: args.compact_ratio.max(1),
                    compact_min_records: args.compact_min_records,
                    retry,
                },
            )
            .await?;
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
            tracing::info!(schema = %args.store_schema, "job store opened on PostgreSQL");
            Arc::new(store)
        }
    };
    // Store writes are timed for `/metrics`, whatever the backend.
    let metrics = Metrics::new();
    let store: Arc<dyn Store> = Arc::new(MeteredStore::new(store, metrics.clone()));
    let cfg = QueueConfig {
        max_concurrent: args.max_concurrent_jobs.max(1),
        limits: JobLimits {
            fuel: args.job_fuel,
            memory_bytes: args.job_memory_mib << 20,
            timeout: Duration::from_secs_f64(args.job_timeout_secs.max(0.001)),
            result_bytes: args.job_result_max_bytes,
            log_bytes: args.job_log_max_bytes,
            ..JobLimits::default()
        },
        default_job_type: args.default_job_type.clone(),
        progress_interval: Duration::from_millis(args.progress_interval_ms),
        retention: Retention {
            completed_ttl: secs(args.completed_ttl_secs),
            error_ttl: secs(args.error_ttl_secs),
            stopped_ttl: secs(args.stopped_ttl_secs),
            deleted_ttl: Some(Duration::from_secs(args.deleted_ttl_secs)),
            max_terminal_jobs: args.max_terminal_jobs,
            pending_ttl: secs(args.pending_ttl_secs),
        },
        host_id: args
            .host_id
            .clone()
            .unwrap_or_else(crate::queue::default_host_id),
        lease: Duration::from_secs(args.lease_secs.max(1)),
        default_max_attempts: args.max_attempts.max(1),
        retry,
        maintenance_interval: Duration::from_secs(args.maintenance_interval_secs.max(1)),
        events_keep: args.events_keep.max(1),
        metrics,
        peer_api_key: args.api_key.clone(),
        ..QueueConfig::default()
    };
    let queue = Queue::open(store, catalog, runtime, jobs_rt.handle(), cfg).await;
    let router = api::router(
        queue.clone(),
        &ApiConfig {
            api_key: args.api_key.clone(),
            max_body_bytes: args.max_body_bytes,
            max_in_flight: args.max_in_flight,
            request_timeout: Duration::from_secs(args.request_timeout_secs.max(1)),
            sse_keep_alive: Duration::from_secs(args.sse_keep_alive_secs.max(1)),
            mcp_allowed_hosts: mcp_hosts(args),
            dashboard_dir: args.dashboard_dir.clone(),
            ..ApiConfig::default()
        },
    );
    Ok(Host {
        router,
        queue,
        _watcher: Some(watcher),
        _jobs_rt: jobs_rt,
    })
}
