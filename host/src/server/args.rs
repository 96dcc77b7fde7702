//! The flags of `queuemgr serve`, in groups with help headings (wasmtime's `cli-flags`): HTTP,
//! store, jobs, limits, retention, retries, cluster. Each group sits beside the function that
//! turns it into its part's config, so a new flag is added in one place and read in one place.

use super::{StartError, StoreUrl};
use crate::api::ApiConfig;
use crate::api::serve::ConnLimits;
use crate::catalog::{CatalogConfig, ManifestBounds};
use crate::queue::Retention;
use crate::runtime::{JobLimits, Metering, RuntimeConfig};
use crate::store::RetryPolicy;
use crate::store::local::LocalConfig;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

fn secs(s: Option<u64>) -> Option<Duration> {
    s.map(Duration::from_secs)
}

/// Settings of `queuemgr serve`, in groups (each with the function that turns it into the
/// config of the part it sets). Every flag is also an environment variable; the flags' names
/// are those they always had.
#[derive(Debug, Clone, clap::Args)]
pub struct ServeArgs {
    #[command(flatten)]
    #[allow(missing_docs)]
    pub http: HttpArgs,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub store: StoreArgs,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub jobs: JobsArgs,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub limits: LimitsArgs,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub retention: RetentionArgs,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub retry: RetryArgs,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub cluster: ClusterArgs,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub traces: crate::telemetry::TraceArgs,
}

/// `queuemgr serve` settings: the API's listener and its limits.
#[derive(Debug, Clone, clap::Args)]
#[command(next_help_heading = "HTTP")]
pub struct HttpArgs {
    /// Address to listen on.
    #[arg(long, env = "QUEUEMGR_LISTEN", default_value = "127.0.0.1:8000")]
    pub listen: SocketAddr,
    /// Require this key (`X-API-Key` or `Authorization: Bearer`) on every route but
    /// `/health` and `/openapi.json`. Off by default.
    #[arg(long, env = "QUEUEMGR_API_KEY", hide_env_values = true)]
    pub api_key: Option<String>,
    /// Named keys with roles (`read`, `run`, `admin`, `metrics`): a TOML file of `[[key]]`
    /// entries holding each key's SHA-256, re-read when it changes (`queuemgr keys new` makes
    /// one). `--api-key` stays an admin key beside them.
    #[arg(long, env = "QUEUEMGR_KEYS_FILE")]
    pub keys_file: Option<PathBuf>,
    /// Largest request body, bytes (room for an `add_jobs` batch of 10,000 jobs).
    #[arg(long, env = "QUEUEMGR_MAX_BODY_BYTES", default_value_t = 16 << 20)]
    pub max_body_bytes: usize,
    /// Most open HTTP connections; also the most open `/ws` sockets (an upgraded connection
    /// leaves the HTTP count and is counted there).
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
    /// Live events kept for event-stream clients that reconnect with `Last-Event-ID`.
    #[arg(long, env = "QUEUEMGR_EVENTS_KEEP", default_value_t = 10_000)]
    pub events_keep: usize,
    /// `Host` header values that `/mcp` accepts besides localhost, 127.0.0.1, ::1 and the
    /// `--listen` address (comma-separated names, e.g. the name a proxy forwards; a name
    /// without a port matches any port). The check guards against DNS rebinding.
    #[arg(long, env = "QUEUEMGR_MCP_ALLOWED_HOSTS", value_delimiter = ',')]
    pub mcp_allowed_hosts: Vec<String>,
    /// Serve the dashboard's files from this directory (e.g. `host/dashboard`) instead of the
    /// copies built into the binary: for working on the dashboard without rebuilding.
    #[arg(long, env = "QUEUEMGR_DASHBOARD_DIR")]
    pub dashboard_dir: Option<PathBuf>,
}

/// `queuemgr serve` settings: where jobs are kept.
#[derive(Debug, Clone, clap::Args)]
#[command(next_help_heading = "Store")]
pub struct StoreArgs {
    /// Where jobs are kept: `jsonl:PATH` (one host; the default is `jsonl:` + `--registry`)
    /// or `postgres://user@host:port/db` (several hosts sharing one queue).
    #[arg(long, env = "QUEUEMGR_STORE")]
    pub store: Option<String>,
    /// The registry file (JSONL), when `--store` is not given.
    #[arg(
        long,
        env = "QUEUEMGR_REGISTRY",
        default_value = "./queuemgr-registry.jsonl"
    )]
    pub registry: PathBuf,
    /// The PostgreSQL schema of this queue (several queues can share one database).
    #[arg(long, env = "QUEUEMGR_STORE_SCHEMA", default_value = "queuemgr")]
    pub store_schema: String,
    /// Connections to PostgreSQL per host.
    #[arg(long, env = "QUEUEMGR_STORE_POOL", default_value_t = 16)]
    pub store_pool: usize,
    /// The longest one PostgreSQL operation may take, seconds; past it the call fails with
    /// `STORE_UNAVAILABLE` (a database that stops answering must not hang the host).
    #[arg(long, env = "QUEUEMGR_STORE_TIMEOUT_SECS", default_value_t = 10.0)]
    pub store_timeout_secs: f64,
    /// Compact the registry once it holds this many times more records than live jobs…
    #[arg(long, env = "QUEUEMGR_COMPACT_RATIO", default_value_t = 4)]
    pub compact_ratio: u64,
    /// …and at least this many records.
    #[arg(long, env = "QUEUEMGR_COMPACT_MIN_RECORDS", default_value_t = 10_000)]
    pub compact_min_records: u64,
}

/// `queuemgr serve` settings: the jobs directory and the threads and instances that run jobs.
#[derive(Debug, Clone, clap::Args)]
#[command(next_help_heading = "Jobs")]
pub struct JobsArgs {
    /// Directory of job components: every `*.wasm` is a job type named by its file stem.
    #[arg(long, env = "QUEUEMGR_JOBS_DIR", default_value = "./jobs")]
    pub jobs_dir: PathBuf,
    /// Where compiled job code is cached (default: `<jobs-dir>/.queuemgr-cache`).
    #[arg(long, env = "QUEUEMGR_CACHE_DIR")]
    pub cache_dir: Option<PathBuf>,
    /// The job type `add_job` uses when it names none.
    #[arg(long, env = "QUEUEMGR_DEFAULT_JOB_TYPE")]
    pub default_job_type: Option<String>,
    /// Largest `.wasm` file loaded from the jobs directory, MiB.
    #[arg(long, env = "QUEUEMGR_MAX_JOB_FILE_MIB", default_value_t = 64)]
    pub max_job_file_mib: u64,
    /// At start, wait this long for the job types to load before serving; larger components
    /// (Python jobs compile for seconds the first time) go on loading in the background and
    /// are listed as `loading`.
    #[arg(long, env = "QUEUEMGR_LOAD_WAIT_SECS", default_value_t = 30)]
    pub load_wait_secs: u64,
    /// Threads that run jobs (default: one per core but one, which the HTTP side keeps, so that
    /// busy guests cannot crowd out the API; at least one).
    #[arg(long, env = "QUEUEMGR_JOB_THREADS")]
    pub job_threads: Option<usize>,
    /// Most job instances alive at once (the instance pool's size).
    #[arg(long, env = "QUEUEMGR_MAX_INSTANCES", default_value_t = 1000)]
    pub max_instances: u32,
    /// Least time between two progress records of one job in the registry, milliseconds.
    #[arg(long, env = "QUEUEMGR_PROGRESS_INTERVAL_MS", default_value_t = 1000)]
    pub progress_interval_ms: u64,
}

/// `queuemgr serve` settings: what one run may use.
#[derive(Debug, Clone, clap::Args)]
#[command(next_help_heading = "Limits")]
pub struct LimitsArgs {
    /// Most jobs running at once; later starts wait their turn (FIFO).
    #[arg(long, env = "QUEUEMGR_MAX_CONCURRENT_JOBS", default_value_t = 64)]
    pub max_concurrent_jobs: usize,
    /// Fuel budget per job run (wasm operators, roughly 6e9 a second of spinning); unset:
    /// unlimited (the timeout still applies).
    #[arg(long, env = "QUEUEMGR_JOB_FUEL")]
    pub job_fuel: Option<u64>,
    /// How a running job is made to yield (to be stopped or timed out) and what it is charged:
    /// `fuel` (every instruction counted: fuel budgets and the fuel metric) or `epoch` (a
    /// check of a clock ticked every millisecond; no budgets).
    #[arg(long, env = "QUEUEMGR_METERING", value_enum, default_value = "fuel")]
    pub metering: Metering,
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
}

/// `queuemgr serve` settings: how long ended jobs are kept.
#[derive(Debug, Clone, clap::Args)]
#[command(next_help_heading = "Retention")]
pub struct RetentionArgs {
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
}

/// `queuemgr serve` settings: how failed runs are tried again.
#[derive(Debug, Clone, clap::Args)]
#[command(next_help_heading = "Retries")]
pub struct RetryArgs {
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
}

/// `queuemgr serve` settings: this host among the hosts sharing a store.
#[derive(Debug, Clone, clap::Args)]
#[command(next_help_heading = "Cluster")]
pub struct ClusterArgs {
    /// This host's id in the job store (default: `<hostname>-<pid>`).
    #[arg(long, env = "QUEUEMGR_HOST_ID")]
    pub host_id: Option<String>,
    /// The URL other hosts of the queue reach this one at (they fetch a running job's logs
    /// from it). Default: `http://` and the address this host listens on (its hostname when
    /// it listens on every address).
    #[arg(long, env = "QUEUEMGR_ADVERTISE_URL")]
    pub advertise_url: Option<String>,
    /// How long a run belongs to this host without a heartbeat, seconds (heartbeats come at a
    /// third of it).
    #[arg(long, env = "QUEUEMGR_LEASE_SECS", default_value_t = 30)]
    pub lease_secs: u64,
    /// How often the rescuer, retention and compaction run, seconds.
    #[arg(long, env = "QUEUEMGR_MAINTENANCE_INTERVAL_SECS", default_value_t = 5)]
    pub maintenance_interval_secs: u64,
}

impl HttpArgs {
    /// The API's config.
    pub fn api_config(&self) -> ApiConfig {
        ApiConfig {
            api_key: self.api_key.clone(),
            max_body_bytes: self.max_body_bytes,
            max_in_flight: self.max_in_flight,
            request_timeout: Duration::from_secs(self.request_timeout_secs.max(1)),
            sse_keep_alive: Duration::from_secs(self.sse_keep_alive_secs.max(1)),
            mcp_allowed_hosts: self.mcp_hosts(),
            dashboard_dir: self.dashboard_dir.clone(),
            max_ws_connections: self.max_connections,
            ..ApiConfig::default()
        }
    }

    /// The accept loop's connection limits.
    pub fn conn_limits(&self) -> ConnLimits {
        ConnLimits {
            max_connections: self.max_connections,
            header_timeout: Duration::from_millis(self.header_timeout_ms.max(1)),
            ..ConnLimits::default()
        }
    }

    /// The `Host` values `/mcp` accepts: loopback names, the listen address (unless it is the
    /// unspecified address) and what `--mcp-allowed-hosts` adds.
    fn mcp_hosts(&self) -> Vec<String> {
        let mut hosts: Vec<String> = ["localhost", "127.0.0.1", "::1"]
            .into_iter()
            .map(String::from)
            .collect();
        let ip = self.listen.ip();
        if !ip.is_unspecified() && !ip.is_loopback() {
            hosts.push(ip.to_string());
        }
        hosts.extend(
            self.mcp_allowed_hosts
                .iter()
                .map(|h| h.trim().to_string())
                .filter(|h| !h.is_empty()),
        );
        hosts
    }
}

impl StoreArgs {
    /// Where `--store` points (default: `jsonl:` + `--registry`), with the PostgreSQL
    /// timeouts set: an operation's from `--store-timeout-secs`, and an idle transaction's at
    /// half the `lease`, so that a cut-off host's open transaction (and its row locks) is gone
    /// before its runs' leases end and another host rescues them.
    pub fn url(&self, lease: Duration) -> Result<StoreUrl, StartError> {
        let mut url = StoreUrl::from_parts(
            self.store.as_deref(),
            &self.registry,
            &self.store_schema,
            self.store_pool,
        )?;
        if let StoreUrl::Postgres(pg) = &mut url {
            pg.op_timeout = Duration::from_secs_f64(self.store_timeout_secs.clamp(0.1, 3600.0));
            pg.idle_tx_timeout = lease / 2;
        }
        Ok(url)
    }

    /// The local store's config.
    pub fn local_config(&self, retry: RetryPolicy) -> LocalConfig {
        LocalConfig {
            compact_ratio: self.compact_ratio.max(1),
            compact_min_records: self.compact_min_records,
            retry,
            schedules_file: None,
            queues_file: None,
        }
    }
}

impl JobsArgs {
    /// The wasm runtime's config (its memory cap at least the per-job cap of `limits`).
    pub fn runtime_config(&self, limits: &LimitsArgs) -> RuntimeConfig {
        RuntimeConfig {
            max_instances: self.max_instances,
            max_memory_bytes: (limits.job_memory_mib << 20)
                .max(RuntimeConfig::default().max_memory_bytes),
            metering: limits.metering,
            ..RuntimeConfig::default()
        }
    }

    /// Threads that run jobs: `--job-threads`, or one per core but one (at least one).
    pub fn threads(&self) -> usize {
        self.job_threads
            .unwrap_or_else(|| {
                std::thread::available_parallelism().map_or(1, |n| n.get().saturating_sub(1))
            })
            .max(1)
    }

    /// The catalog's config (a manifest may ask for up to `max_memory_bytes` per run).
    pub fn catalog_config(&self, max_memory_bytes: usize, fuel_metering: bool) -> CatalogConfig {
        CatalogConfig {
            dir: self.jobs_dir.clone(),
            cache_dir: self
                .cache_dir
                .clone()
                .unwrap_or_else(|| self.jobs_dir.join(".queuemgr-cache")),
            max_file_bytes: self.max_job_file_mib << 20,
            bounds: ManifestBounds {
                max_memory_bytes,
                fuel_metering,
            },
            startup_wait: Duration::from_secs(self.load_wait_secs),
        }
    }
}

impl LimitsArgs {
    /// The limits of one run, before a job type's manifest narrows them.
    pub fn job_limits(&self) -> JobLimits {
        JobLimits {
            fuel: self.job_fuel,
            memory_bytes: self.job_memory_mib << 20,
            timeout: Duration::from_secs_f64(self.job_timeout_secs.max(0.001)),
            result_bytes: self.job_result_max_bytes,
            log_bytes: self.job_log_max_bytes,
            ..JobLimits::default()
        }
    }
}

impl RetentionArgs {
    /// What the cleaner removes.
    pub fn retention(&self) -> Retention {
        Retention {
            completed_ttl: secs(self.completed_ttl_secs),
            error_ttl: secs(self.error_ttl_secs),
            stopped_ttl: secs(self.stopped_ttl_secs),
            deleted_ttl: Some(Duration::from_secs(self.deleted_ttl_secs)),
            max_terminal_jobs: self.max_terminal_jobs,
            pending_ttl: secs(self.pending_ttl_secs),
        }
    }
}

impl RetryArgs {
    /// Retry timing: exponential backoff from `--retry-base-ms` up to `--retry-max-secs`.
    pub fn policy(&self) -> RetryPolicy {
        RetryPolicy {
            base: Duration::from_millis(self.retry_base_ms.max(1)),
            max: Duration::from_secs(self.retry_max_secs.max(1)),
            ..RetryPolicy::default()
        }
    }
}

impl ClusterArgs {
    /// This host's id: `--host-id`, or `<hostname>-<pid>`.
    pub fn host_id(&self) -> String {
        self.host_id
            .clone()
            .unwrap_or_else(crate::queue::default_host_id)
    }

    /// How long a run belongs to this host without a heartbeat.
    pub fn lease(&self) -> Duration {
        Duration::from_secs(self.lease_secs.max(1))
    }

    /// How often the rescuer, retention and compaction run.
    pub fn maintenance_interval(&self) -> Duration {
        Duration::from_secs(self.maintenance_interval_secs.max(1))
    }
}

#[cfg(test)]
mod tests {
    use super::{Metering, ServeArgs};
    use clap::{CommandFactory, Parser};

    #[derive(Parser)]
    struct Wrap {
        #[command(flatten)]
        args: ServeArgs,
    }

    /// Every flag and variable keeps the name it had before the flags were grouped: scripts
    /// and deployments that set them keep working.
    #[test]
    fn every_flag_and_variable_keeps_its_name() {
        let flags = "listen jobs-dir registry store store-schema advertise-url store-pool store-timeout-secs cache-dir max-concurrent-jobs default-job-type api-key keys-file job-fuel metering job-memory-mib job-timeout-secs job-result-max-bytes job-log-max-bytes progress-interval-ms max-instances job-threads max-job-file-mib max-body-bytes max-connections max-in-flight header-timeout-ms request-timeout-secs sse-keep-alive-secs mcp-allowed-hosts load-wait-secs dashboard-dir events-keep completed-ttl-secs error-ttl-secs stopped-ttl-secs deleted-ttl-secs pending-ttl-secs max-terminal-jobs compact-ratio compact-min-records maintenance-interval-secs host-id max-attempts retry-base-ms retry-max-secs lease-secs otlp-endpoint otlp-protocol trace-ui-url";
        let cmd = Wrap::command();
        let mut have: Vec<(String, String)> = cmd
            .get_arguments()
            .filter_map(|a| {
                Some((
                    a.get_long()?.to_string(),
                    a.get_env()?.to_string_lossy().into_owned(),
                ))
            })
            .collect();
        have.sort();
        let mut want: Vec<(String, String)> = flags
            .split(' ')
            .map(|f| {
                (
                    f.to_string(),
                    format!("QUEUEMGR_{}", f.replace('-', "_").to_uppercase()),
                )
            })
            .collect();
        want.sort();
        assert_eq!(have, want);
        for a in cmd.get_arguments() {
            assert!(
                a.get_help_heading().is_some(),
                "--{:?} is in a group with a heading",
                a.get_long()
            );
        }
    }

    /// The groups turn the flags into the configs they always made.
    #[test]
    fn the_groups_make_the_configs() {
        let a = Wrap::parse_from([
            "x",
            "--lease-secs",
            "8",
            "--retry-base-ms",
            "0",
            "--deleted-ttl-secs",
            "7",
            "--store",
            "postgres://u@h/db",
            "--store-timeout-secs",
            "0",
        ])
        .args;
        assert_eq!(a.cluster.lease(), std::time::Duration::from_secs(8));
        assert_eq!(
            a.retry.policy().base,
            std::time::Duration::from_millis(1),
            "at least 1 ms"
        );
        assert_eq!(
            a.retention.retention().deleted_ttl,
            Some(std::time::Duration::from_secs(7))
        );
        match a.store.url(a.cluster.lease()).expect("a postgres URL") {
            super::StoreUrl::Postgres(pg) => {
                assert_eq!(pg.idle_tx_timeout, std::time::Duration::from_secs(4));
                assert_eq!(pg.op_timeout, std::time::Duration::from_millis(100));
            }
            super::StoreUrl::Jsonl(_) => panic!("postgres"),
        }
    }

    /// Fuel by default; epochs when asked.
    #[test]
    fn metering_defaults_to_fuel() {
        let metering = |argv: &[&str]| {
            let a = Wrap::parse_from(std::iter::once("x").chain(argv.iter().copied())).args;
            a.jobs.runtime_config(&a.limits).metering
        };
        assert_eq!(metering(&[]), Metering::Fuel);
        assert_eq!(metering(&["--metering", "epoch"]), Metering::Epoch);
        assert_eq!(
            metering(&["--job-fuel", "1000", "--metering", "epoch"]),
            Metering::Epoch,
            "kept as asked: the host then refuses to start (StartError::FuelWithoutMetering)"
        );
        assert!(Wrap::try_parse_from(["x", "--metering", "off"]).is_err());
    }
}
