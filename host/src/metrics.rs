//! Prometheus metrics (`GET /metrics`, text format, with `prometheus-client`).
//!
//! Why here, at the crate's root: the queue records runs, the API records requests, and the
//! store's writes are timed by a wrapper around the store; all of them share one registry.
//! Counters and histograms are updated where things happen; gauges that mirror state (jobs per
//! status and type, loaded job types, live instances) are read at scrape time, so a scrape
//! costs a few map reads whatever the number of jobs.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use std::sync::Arc;
use std::time::Duration;

/// `job_type` and `outcome` (completed, failed, trapped, out_of_fuel, …, stopped).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RunLabels {
    /// The job type.
    pub job_type: String,
    /// How the run ended (`Outcome::kind`).
    pub outcome: String,
}

/// `job_type`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TypeLabels {
    /// The job type.
    pub job_type: String,
}

/// `job_type` and `status`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct JobLabels {
    /// The job type.
    pub job_type: String,
    /// The job's status.
    pub status: String,
}

/// `queue` and `state` (`waiting`, `unstarted`, `running`).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct QueueLabels {
    /// The named queue.
    pub queue: String,
    /// `waiting`, `unstarted` or `running`.
    pub state: &'static str,
}

/// `queue`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct QueueNameLabels {
    /// The named queue.
    pub queue: String,
}

/// `op`: the store operation.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OpLabels {
    /// E.g. `insert`, `claim`, `finish`.
    pub op: &'static str,
}

/// `route` (the matched path) and `code`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HttpLabels {
    /// The route, e.g. `/api/v1/execute` (`unmatched` for a 404).
    pub route: String,
    /// The status code.
    pub code: u16,
}

/// `reason`: `unauthenticated` (no key, or not one of ours) or `forbidden` (a role too low).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AuthLabels {
    /// Why the request was refused.
    pub reason: &'static str,
}

type Hist<L> = Family<L, Histogram, fn() -> Histogram>;

fn seconds() -> Histogram {
    // 50 µs … ~26 min.
    Histogram::new(exponential_buckets(0.000_05, 2.0, 25))
}

fn store_seconds() -> Histogram {
    // 10 µs … ~10 s.
    Histogram::new(exponential_buckets(0.000_01, 2.0, 20))
}

/// Every metric of the host.
pub struct Metrics {
    registry: Registry,
    /// Runs ended, by type and outcome.
    pub runs: Family<RunLabels, Counter>,
    /// Run time (instantiate + run), by type.
    pub run_seconds: Hist<TypeLabels>,
    /// Time from a job's scheduled (or added) time to its start, by type.
    pub wait_seconds: Hist<TypeLabels>,
    /// Fuel consumed, by type.
    pub fuel: Family<TypeLabels, Counter>,
    /// Latency of store writes (durable when they return), by operation.
    pub store_write_seconds: Hist<OpLabels>,
    /// Store operations that failed, by operation.
    pub store_errors: Family<OpLabels, Counter>,
    /// HTTP requests answered, by route and code.
    pub http_requests: Family<HttpLabels, Counter>,
    /// Requests (and JSON-RPC calls) refused for their key, by reason.
    pub auth_refused: Family<AuthLabels, Counter>,
    /// Jobs in the store, by type and status (set at scrape).
    pub jobs: Family<JobLabels, Gauge>,
    /// Loaded job types (set at scrape).
    pub job_types_loaded: Gauge,
    /// Job files that failed to load (set at scrape).
    pub job_types_broken: Gauge,
    /// Job instances alive on this host (set at scrape).
    pub instances: Gauge,
    /// Clients subscribed to the live feed (event streams, MCP calls; set at scrape).
    pub subscribers: Gauge,
    /// Jobs per named queue and state (every host's, on a shared store).
    pub queue_jobs: Family<QueueLabels, Gauge>,
    /// 1 for a paused queue, 0 for an active one.
    pub queue_paused: Family<QueueNameLabels, Gauge>,
    /// A queue's concurrency limit across hosts (absent: none).
    pub queue_concurrency_limit: Family<QueueNameLabels, Gauge>,
    /// Open `/ws` connections (set at scrape).
    pub ws_connections: Gauge,
    /// `/ws` connections opened since the host started.
    pub ws_connections_total: Counter,
    /// Jobs watched by a `/ws` session (set at scrape).
    pub ws_watched_jobs: Gauge,
    /// Bytes in the heap's live allocations (jemalloc's `stats.allocated`; set at scrape).
    pub heap_allocated: Gauge,
    /// Bytes of the heap resident in memory, its own bookkeeping included (jemalloc's
    /// `stats.resident`; set at scrape): what over `heap_allocated` is fragmentation and
    /// pages not yet given back.
    pub heap_resident: Gauge,
    /// Jobs enqueued by schedules (on the leader).
    pub schedule_jobs: Counter,
    /// Time from a schedule's slot to its job's durable insert.
    pub schedule_lag_seconds: Histogram,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Metrics {
    /// A registry with every metric registered.
    pub fn new() -> Arc<Self> {
        let mut registry = Registry::with_prefix("queuemgr");
        let runs = Family::<RunLabels, Counter>::default();
        registry.register(
            "runs",
            "Job runs ended, by job type and outcome",
            runs.clone(),
        );
        let run_seconds: Hist<TypeLabels> = Family::new_with_constructor(seconds);
        registry.register(
            "run_duration_seconds",
            "Run time of a job (instantiate and run), by job type",
            run_seconds.clone(),
        );
        let wait_seconds: Hist<TypeLabels> = Family::new_with_constructor(seconds);
        registry.register(
            "queue_wait_seconds",
            "Time from when a job was due to when it started, by job type",
            wait_seconds.clone(),
        );
        let fuel = Family::<TypeLabels, Counter>::default();
        registry.register(
            "fuel_consumed",
            "Fuel consumed by runs, by job type",
            fuel.clone(),
        );
        let store_write_seconds: Hist<OpLabels> = Family::new_with_constructor(store_seconds);
        registry.register(
            "store_write_seconds",
            "Latency of job store writes (durable on return), by operation",
            store_write_seconds.clone(),
        );
        let store_errors = Family::<OpLabels, Counter>::default();
        registry.register(
            "store_errors",
            "Job store operations that failed, by operation",
            store_errors.clone(),
        );
        let http_requests = Family::<HttpLabels, Counter>::default();
        registry.register(
            "http_requests",
            "HTTP requests answered, by route and status code",
            http_requests.clone(),
        );
        let auth_refused = Family::<AuthLabels, Counter>::default();
        registry.register(
            "auth_refused",
            "Requests and calls refused for their API key: unauthenticated (401) or forbidden (403)",
            auth_refused.clone(),
        );
        let jobs = Family::<JobLabels, Gauge>::default();
        registry.register(
            "jobs",
            "Jobs in the store, by job type and status",
            jobs.clone(),
        );
        let job_types_loaded = Gauge::default();
        registry.register(
            "job_types_loaded",
            "Job types loaded on this host",
            job_types_loaded.clone(),
        );
        let job_types_broken = Gauge::default();
        registry.register(
            "job_types_broken",
            "Job files in the jobs directory that failed to load",
            job_types_broken.clone(),
        );
        let instances = Gauge::default();
        registry.register(
            "instances",
            "Job instances alive on this host",
            instances.clone(),
        );
        let subscribers = Gauge::default();
        registry.register(
            "live_subscribers",
            "Clients following the live event feed",
            subscribers.clone(),
        );
        let queue_jobs = Family::<QueueLabels, Gauge>::default();
        registry.register(
            "queue_jobs",
            "Jobs per named queue: waiting (started), unstarted, running (on every host)",
            queue_jobs.clone(),
        );
        let queue_paused = Family::<QueueNameLabels, Gauge>::default();
        registry.register(
            "queue_paused",
            "1 for a paused queue (nothing new is claimed from it), 0 for an active one",
            queue_paused.clone(),
        );
        let queue_concurrency_limit = Family::<QueueNameLabels, Gauge>::default();
        registry.register(
            "queue_concurrency_limit",
            "A queue's limit of jobs running at once across all hosts",
            queue_concurrency_limit.clone(),
        );
        let ws_connections = Gauge::default();
        registry.register(
            "ws_connections",
            "Open /ws connections (command sessions and job subscriptions)",
            ws_connections.clone(),
        );
        let ws_connections_total = Counter::default();
        registry.register(
            "ws_connections_opened",
            "/ws connections opened",
            ws_connections_total.clone(),
        );
        let ws_watched_jobs = Gauge::default();
        registry.register(
            "ws_watched_jobs",
            "Jobs watched by at least one /ws session",
            ws_watched_jobs.clone(),
        );
        let schedule_jobs = Counter::default();
        registry.register(
            "schedule_jobs",
            "Jobs enqueued by schedules (counted on the host that led)",
            schedule_jobs.clone(),
        );
        let schedule_lag_seconds = store_seconds();
        registry.register(
            "schedule_lag_seconds",
            "Time from a schedule's slot to its job's durable insert",
            schedule_lag_seconds.clone(),
        );
        let heap_allocated = Gauge::default();
        registry.register(
            "heap_allocated_bytes",
            "Bytes in the heap's live allocations",
            heap_allocated.clone(),
        );
        let heap_resident = Gauge::default();
        registry.register(
            "heap_resident_bytes",
            "Bytes of the heap resident in memory, its bookkeeping included",
            heap_resident.clone(),
        );
        Arc::new(Metrics {
            heap_allocated,
            heap_resident,
            ws_connections,
            ws_connections_total,
            ws_watched_jobs,
            queue_jobs,
            queue_paused,
            queue_concurrency_limit,
            schedule_jobs,
            schedule_lag_seconds,
            registry,
            runs,
            run_seconds,
            wait_seconds,
            fuel,
            store_write_seconds,
            store_errors,
            http_requests,
            auth_refused,
            jobs,
            job_types_loaded,
            job_types_broken,
            instances,
            subscribers,
        })
    }

    /// Records jobs a schedule enqueued, each `lag` after its slot.
    pub fn schedule_fired(&self, lag: Duration) {
        self.schedule_jobs.inc();
        self.schedule_lag_seconds.observe(lag.as_secs_f64());
    }

    /// Counts a request or call refused for its key.
    pub fn auth_refused(&self, reason: &'static str) {
        self.auth_refused
            .get_or_create(&AuthLabels { reason })
            .inc();
    }

    /// Records one store write.
    pub fn store_write(&self, op: &'static str, took: Duration, ok: bool) {
        let labels = OpLabels { op };
        self.store_write_seconds
            .get_or_create(&labels)
            .observe(took.as_secs_f64());
        if !ok {
            self.store_errors.get_or_create(&labels).inc();
        }
    }

    /// Reads the heap's figures into [`Metrics::heap_allocated`] and
    /// [`Metrics::heap_resident`] (jemalloc caches them until its epoch is advanced).
    pub fn read_heap(&self) {
        use tikv_jemalloc_ctl::{epoch, stats};
        if epoch::advance().is_err() {
            return;
        }
        if let Ok(n) = stats::allocated::read() {
            self.heap_allocated.set(n as i64);
        }
        if let Ok(n) = stats::resident::read() {
            self.heap_resident.set(n as i64);
        }
    }

    /// The text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::with_capacity(16 * 1024);
        if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &self.registry) {
            tracing::error!(error = %e, "cannot encode metrics");
        }
        out
    }
}
