//! The job runtime: one wasmtime [`Engine`], components compiled once and pre-instantiated,
//! and a fresh [`Store`] for every run.
//!
//! Lifecycle, in the order a job type goes through it:
//! 1. **compile** ([`Runtime::compile`] or [`Runtime::load_cached`]): bytes → [`Component`]; CPU
//!    heavy, so callers run it off the async threads.
//! 2. **prepare** ([`Runtime::prepare`]): link against WASI and our `host` interface into an
//!    `InstancePre`, then call `describe()` once → a [`JobProgram`].
//! 3. **run** ([`Runtime::run`]): new store, instantiate from the pre-instance (pooling
//!    allocator: microseconds), call `run(params)` under metering, memory cap, timeout and
//!    stop.
//!
//! Why a guest yields ([`Metering`]): every guest, even one in a loop that never calls the
//! host, must return to the tokio scheduler regularly, so that a stop or a timeout is just
//! dropping the call future at its next yield. A store is never reused after a run, so a stop
//! or a trap can never leave state behind. By default this is done with **fuel**, which also
//! gives instruction budgets (`--job-fuel`, a manifest's `limits.fuel`) and the fuel metric.
//! **Epochs** (`--metering epoch`: a ticker thread advances the engine's epoch every
//! millisecond, and a guest yields at its next loop head or function entry after a tick) give
//! up budgets, and a stop waits for the next tick. Measured side by side (`docs/benchmarks.md`
//! 2a/2b, 3a/3b, I5) the two checks cost about the same: 0–24 % over unmetered code for fuel,
//! 0–19 % for epochs on the same loops, both ~1.35× on a byte-by-byte parser (wasmtime's
//! codegen either way); a spinning guest stops in 0.16 ms with fuel, 1.2 ms with epochs (p99).
//!
//! Wasm checks run only in wasm: a guest that spends its time in host calls that return at
//! once (file reads done inline, on the job's thread) may reach few of them. So a stop is also
//! checked each time a host call returns to the guest (a call hook, one atomic load): past a
//! grace of a few calls (to see the stop and end cleanly, [`state::STOP_GRACE_CALLS`]) such a
//! guest stops right after its current call.

mod bindings;
pub mod capabilities;
pub mod events;
pub mod flow;
pub mod limits;
pub mod outcome;
mod output;
mod state;

pub use capabilities::Grants;
pub use events::{JobEvents, LogLevel, LogLine, LogSource, NoEvents};
pub use flow::{ChildEnd, ChildOptions, FlowContext, FlowError, Suspension};
pub use limits::{CapHit, JobLimits};
pub use outcome::{GuestError, Outcome};
pub use state::JobState;

use bindings::{Job, JobPre};
use capabilities::http::HttpGate;
use events::LogBudget;
use output::CapturedStream;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use wasmtime::component::{Component, Linker, ResourceTable, ResourceTableError};
use wasmtime::{
    CallHook, Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, Store, Trap,
};
use wasmtime_wasi::WasiCtxBuilder;
use wasmtime_wasi_http::WasiHttpCtx;

/// Settings of the engine, fixed for the life of the process.
#[derive(Debug, Clone)]
pub struct RuntimeConfig {
    /// Most job instances alive at once (pool size). Each slot reserves address space, not
    /// memory.
    pub max_instances: u32,
    /// Upper bound of any job's memory cap, in bytes (the pool's slot size).
    pub max_memory_bytes: usize,
    /// How a running guest is made to yield, and whether its instructions are counted.
    pub metering: Metering,
    /// Time between two epoch ticks ([`Metering::Epoch`]): the stop latency of a guest that
    /// never calls the host.
    pub epoch_tick: Duration,
    /// Fuel units between two yields of a running guest ([`Metering::Fuel`]).
    pub fuel_yield_interval: u64,
    /// Native wasm stack per instance, in bytes.
    pub max_wasm_stack: usize,
    /// Writes `/tmp/perf-<pid>.map` so that `perf` names the guests' compiled functions
    /// (default: on when `QUEUEMGR_PERF_MAP` is set). For profiling a job.
    pub perf_map: bool,
}

/// How a running guest gives its thread back to the scheduler (so that it can be stopped or
/// timed out) and what it is charged. Fixed for the engine: code is compiled for one of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Metering {
    /// Epoch interruption: a guest yields at its next loop head or call after each tick of
    /// [`RuntimeConfig::epoch_tick`]. No instruction budgets, no fuel metric.
    Epoch,
    /// Fuel (the default): every wasm instruction is counted, budgets (`limits.fuel`) are
    /// enforced and the fuel each run used is reported.
    #[default]
    Fuel,
    /// Nothing: a guest that never calls the host cannot be stopped. For benchmarks only.
    #[value(skip)]
    Off,
}

impl Metering {
    /// Its name, as `--metering` takes it.
    pub fn as_str(self) -> &'static str {
        match self {
            Metering::Epoch => "epoch",
            Metering::Fuel => "fuel",
            Metering::Off => "off",
        }
    }
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        RuntimeConfig {
            max_instances: 1000,
            max_memory_bytes: 1 << 30,
            metering: Metering::Fuel,
            epoch_tick: Duration::from_millis(1),
            fuel_yield_interval: 1_000_000,
            max_wasm_stack: 512 * 1024,
            perf_map: std::env::var_os("QUEUEMGR_PERF_MAP").is_some(),
        }
    }
}

/// Why a component could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The bytes are not a valid component (or not wasm at all).
    #[error("not a valid WebAssembly component: {0}")]
    Invalid(String),
    /// A valid component, but not one of the `queuemgr:job` world (wrong imports/exports).
    #[error("component does not match the queuemgr:job world: {0}")]
    WrongWorld(String),
    /// `describe()` trapped, timed out or returned a params schema that is not JSON.
    #[error("describe() failed: {0}")]
    Describe(String),
    /// A granted directory could not be opened for this run (e.g. removed since load).
    #[error("cannot prepare the job's grants: {0}")]
    Grant(String),
}

/// Why the engine could not be built.
#[derive(Debug, thiserror::Error)]
#[error("cannot configure the wasm engine: {0}")]
pub struct EngineError(String);

/// What a job says about itself (its `describe()` export).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct JobInfo {
    /// Short name.
    pub name: String,
    /// The job's own version.
    pub version: String,
    /// Description for humans.
    pub description: String,
    /// JSON Schema of the params object.
    pub params_schema: serde_json::Value,
}

/// A job type ready to run: linked, pre-instantiated and described.
#[derive(Clone)]
pub struct JobProgram {
    pre: JobPre<JobState>,
    info: Arc<JobInfo>,
    uses_flow: bool,
}

impl JobProgram {
    /// What the job says about itself.
    pub fn info(&self) -> &JobInfo {
        &self.info
    }

    /// Whether the component imports the `flow` interface: only such a job can enqueue
    /// children, so only its stop needs to look for them.
    pub fn uses_flow(&self) -> bool {
        self.uses_flow
    }
}

/// One run's inputs.
pub struct RunRequest {
    /// The job's id (the guest reads it through `job-id`).
    pub job_id: String,
    /// Params as JSON text.
    pub params: String,
    /// Limits for this run.
    pub limits: JobLimits,
    /// Where progress and logs go.
    pub events: Arc<dyn JobEvents>,
    /// Cancelled to stop the run.
    pub stop: CancellationToken,
    /// What the job type is granted (files, variables, outbound HTTP).
    pub grants: Arc<Grants>,
    /// What its `flow` calls reach (durable steps, children, waits); `None`: they trap.
    pub flow: Option<Arc<dyn FlowContext>>,
}

/// The wasmtime engine and linker shared by every job.
#[derive(Clone)]
pub struct Runtime {
    engine: Engine,
    linker: Arc<Linker<JobState>>,
    config: RuntimeConfig,
    /// One permit per pool slot a run may take: a run waits for one rather than failing when
    /// more jobs run at once (`--max-concurrent-jobs`) than the pool holds instances.
    instances: Arc<tokio::sync::Semaphore>,
}

/// Pool slots kept for loading job types (`describe`), which a host full of runs must still do.
const LOAD_SLOTS: u32 = 4;

impl Runtime {
    /// Builds the engine (pooling allocator, metering, async) and links WASI and the `host`
    /// interface.
    pub fn new(config: RuntimeConfig) -> Result<Self, EngineError> {
        let mut pool = PoolingAllocationConfig::new();
        let n = config.max_instances.max(1);
        // A Rust job has 3 core instances; a Python one (componentize-py) has 14.
        pool.total_component_instances(n)
            .total_core_instances(n.saturating_mul(16))
            .max_core_instances_per_component(32)
            // Rust jobs have one linear memory; each slot reserves 4 GiB of address space, so
            // reserving two per instance halves how many instances fit.
            .total_memories(n.saturating_add(16))
            .max_memories_per_component(4)
            .total_tables(n.saturating_mul(4))
            .max_tables_per_component(8)
            .total_stacks(n)
            .max_memory_size(config.max_memory_bytes)
            .table_elements(100_000)
            // Reset a returned slot by rewriting its first pages instead of `madvise`-ing them
            // away: each madvise flushes the other cores' TLBs and the next job faults the
            // pages back in. With pagemap scanning only the pages a job dirtied are reset.
            // Measured: 64-client HTTP throughput 6.3k → ~10k jobs/s (docs/benchmarks.md).
            .linear_memory_keep_resident(1 << 20)
            .table_keep_resident(1 << 16)
            .pagemap_scan(wasmtime::Enabled::Auto);
        let mut cfg = Config::new();
        cfg.consume_fuel(config.metering == Metering::Fuel)
            .epoch_interruption(config.metering == Metering::Epoch)
            .max_wasm_stack(config.max_wasm_stack)
            .profiler(if config.perf_map {
                wasmtime::ProfilingStrategy::PerfMap
            } else {
                wasmtime::ProfilingStrategy::None
            })
            .allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        let engine = Engine::new(&cfg).map_err(|e| EngineError(format!("{e:#}")))?;
        if config.metering == Metering::Epoch {
            start_epoch_ticker(&engine, config.epoch_tick)?;
        }
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)
            .map_err(|e| EngineError(format!("{e:#}")))?;
        capabilities::dirs::refuse_symlinks(&mut linker)
            .map_err(|e| EngineError(format!("{e:#}")))?;
        // Linked for every job; the per-run gate refuses what the job type was not granted.
        wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker)
            .map_err(|e| EngineError(format!("{e:#}")))?;
        Job::add_to_linker::<JobState, wasmtime::component::HasSelf<JobState>>(&mut linker, |s| s)
            .map_err(|e| EngineError(format!("{e:#}")))?;
        let runs = n.saturating_sub(LOAD_SLOTS).max(1) as usize;
        Ok(Runtime {
            engine,
            linker: Arc::new(linker),
            config,
            instances: Arc::new(tokio::sync::Semaphore::new(runs)),
        })
    }

    /// The engine (for callers that cache compiled code).
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// The engine's settings.
    pub fn config(&self) -> &RuntimeConfig {
        &self.config
    }

    /// Compiles component bytes. CPU-heavy: call it off the async threads.
    pub fn compile(&self, bytes: &[u8]) -> Result<Component, LoadError> {
        refuse_core_module(bytes)?;
        Component::new(&self.engine, bytes).map_err(|e| LoadError::Invalid(format!("{e:#}")))
    }

    /// Compiles component bytes to the engine's native artifact, for an on-disk cache.
    pub fn precompile(&self, bytes: &[u8]) -> Result<Vec<u8>, LoadError> {
        refuse_core_module(bytes)?;
        self.engine
            .precompile_component(bytes)
            .map_err(|e| LoadError::Invalid(format!("{e:#}")))
    }

    /// Loads an artifact written by [`Runtime::precompile`] of an engine with the same
    /// settings.
    ///
    /// # Safety
    /// The file must have been written by this host's own cache (wasmtime trusts the bytes).
    pub unsafe fn load_cached(&self, path: &Path) -> Result<Component, LoadError> {
        // SAFETY: the caller guarantees the file is our own precompiled artifact.
        unsafe { Component::deserialize_file(&self.engine, path) }
            .map_err(|e| LoadError::Invalid(format!("{e:#}")))
    }

    /// Links a component into a pre-instance and calls its `describe()`.
    pub async fn prepare(&self, component: &Component) -> Result<JobProgram, LoadError> {
        let instance_pre = self
            .linker
            .instantiate_pre(component)
            .map_err(|e| LoadError::WrongWorld(format!("{e:#}")))?;
        let pre = JobPre::new(instance_pre).map_err(|e| LoadError::WrongWorld(format!("{e:#}")))?;
        let uses_flow = component
            .component_type()
            .imports(&self.engine)
            .any(|(name, _)| name.starts_with("queuemgr:job/flow@"));
        let limits = JobLimits {
            fuel: Some(10_000_000_000),
            timeout: Duration::from_secs(10),
            ..JobLimits::default()
        };
        let mut store = self.new_store(
            "describe",
            &limits,
            Arc::new(NoEvents),
            CancellationToken::new(),
            &Grants::default(),
            None,
        )?;
        let call = async {
            let job = pre.instantiate_async(&mut store).await?;
            job.call_describe(&mut store).await
        };
        let info = match tokio::time::timeout(limits.timeout, call).await {
            Err(_) => return Err(LoadError::Describe("timed out".into())),
            Ok(Err(e)) => return Err(LoadError::Describe(format!("{e:#}"))),
            Ok(Ok(info)) => info,
        };
        let params_schema: serde_json::Value = serde_json::from_str(&info.params_schema)
            .map_err(|e| LoadError::Describe(format!("params-schema is not JSON: {e}")))?;
        if !params_schema.is_object() && !params_schema.is_boolean() {
            return Err(LoadError::Describe(
                "params-schema is not a JSON Schema object".into(),
            ));
        }
        Ok(JobProgram {
            pre,
            uses_flow,
            info: Arc::new(JobInfo {
                name: info.name,
                version: info.version,
                description: info.description,
                params_schema,
            }),
        })
    }

    fn new_store(
        &self,
        job_id: &str,
        limits: &JobLimits,
        events: Arc<dyn JobEvents>,
        stop: CancellationToken,
        grants: &Grants,
        flow: Option<Arc<dyn FlowContext>>,
    ) -> Result<Store<JobState>, LoadError> {
        let budget = LogBudget::new(limits.log_bytes);
        let stdout = CapturedStream::new(LogSource::Stdout, events.clone(), budget.clone());
        let stderr = CapturedStream::new(LogSource::Stderr, events.clone(), budget.clone());
        // No sockets, no args, and only the directories and variables the job type is granted;
        // outbound HTTP goes through the gate below.
        let mut wasi = WasiCtxBuilder::new();
        wasi.stdout(stdout.clone())
            .stderr(stderr.clone())
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false);
        grants
            .apply(&mut wasi)
            .map_err(|e| LoadError::Grant(format!("{e:#}")))?;
        let wasi = wasi.build();
        let gate = HttpGate::new(grants.http.clone(), job_id, events.clone(), budget.clone());
        let mut table = ResourceTable::new();
        table.set_max_capacity(limits.resources);
        let state = JobState {
            wasi,
            http: WasiHttpCtx::new(),
            gate,
            table,
            limiter: limits::JobLimiter::new(limits),
            job_id: job_id.to_string(),
            events,
            budget,
            stop,
            calls_after_stop: 0,
            streams: [stdout, stderr],
            flow,
        };
        let mut store = Store::new(&self.engine, state);
        store.limiter(|s| &mut s.limiter);
        store.call_hook(|mut s, hook| {
            if matches!(hook, CallHook::ReturningFromHost) && s.data().stop.is_cancelled() {
                let state = s.data_mut();
                state.calls_after_stop += 1;
                if state.calls_after_stop > state::STOP_GRACE_CALLS {
                    return Err(wasmtime::Error::msg("stopped"));
                }
            }
            Ok(())
        });
        match self.config.metering {
            Metering::Fuel => {
                let fuel = limits.fuel.unwrap_or(u64::MAX);
                store
                    .set_fuel(fuel)
                    .and_then(|()| {
                        store.fuel_async_yield_interval(Some(self.config.fuel_yield_interval))
                    })
                    .map_err(|e| LoadError::Invalid(format!("{e:#}")))?;
            }
            Metering::Epoch => {
                store.set_epoch_deadline(1);
                store.epoch_deadline_async_yield_and_update(1);
            }
            Metering::Off => {}
        }
        Ok(store)
    }

    /// Runs a job to its end: completed, failed, trapped, out of fuel/memory, timed out or
    /// stopped. Never panics and never leaves the store behind.
    pub async fn run(&self, program: &JobProgram, req: RunRequest) -> Outcome {
        let RunRequest {
            job_id,
            params,
            limits,
            events,
            stop,
            grants,
            flow,
        } = req;
        if stop.is_cancelled() {
            return Outcome::Stopped;
        }
        // A slot of the instance pool (uncontended, a few nanoseconds); a stop ends the wait.
        let _slot = tokio::select! {
            biased;
            _ = stop.cancelled() => return Outcome::Stopped,
            p = self.instances.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => return Outcome::Trapped("the instance pool is closed".into()),
            },
        };
        let mut store = match self.new_store(&job_id, &limits, events, stop.clone(), &grants, flow)
        {
            Ok(s) => s,
            Err(e) => return Outcome::Trapped(e.to_string()),
        };
        let result = {
            let call = async {
                let job = program.pre.instantiate_async(&mut store).await?;
                job.call_run(&mut store, &params).await
            };
            tokio::select! {
                biased;
                _ = stop.cancelled() => Err(Ended::Stopped),
                _ = tokio::time::sleep(limits.timeout) => Err(Ended::TimedOut),
                r = call => r.map_err(Ended::Error),
            }
        };
        finish_streams(&mut store);
        if self.config.metering == Metering::Fuel
            && let Ok(left) = store.get_fuel()
        {
            let budget = limits.fuel.unwrap_or(u64::MAX);
            store.data().events.fuel_used(budget.saturating_sub(left));
        }
        let hit = store.data().limiter.hit;
        let outcome = match result {
            Ok(Ok(json)) if json.len() > limits.result_bytes => Outcome::CapExceeded("result size"),
            Ok(Ok(json)) => Outcome::Completed(json),
            Ok(Err(e)) => Outcome::Failed(GuestError {
                code: e.code,
                message: e.message,
                retryable: e.retryable,
            }),
            Err(Ended::Stopped) => Outcome::Stopped,
            Err(Ended::TimedOut) => Outcome::TimedOut,
            Err(Ended::Error(e)) => classify(e, hit),
        };
        // A guest that saw the stop request (`should-stop`, or its sleep cut short) and returned
        // its own error has stopped as asked: report it as stopped, whichever side won the race.
        // Likewise a run ended by the stop check on a host call's return (a trap).
        let outcome = match outcome {
            Outcome::Failed(_) | Outcome::Trapped(_) if stop.is_cancelled() => Outcome::Stopped,
            other => other,
        };
        let dropped = store.data().budget.dropped();
        if dropped > 0 {
            tracing::warn!(job_id = %job_id, dropped, "log cap reached; lines dropped");
        }
        outcome
    }
}

/// Advances `engine`'s epoch every `tick` on a thread of its own, for as long as the engine
/// lives (the thread holds it weakly and ends within a tick of the last clone's drop).
fn start_epoch_ticker(engine: &Engine, tick: Duration) -> Result<(), EngineError> {
    let weak = engine.weak();
    let tick = tick.max(Duration::from_micros(100));
    std::thread::Builder::new()
        .name("queuemgr-epoch".into())
        .spawn(move || {
            loop {
                std::thread::sleep(tick);
                match weak.upgrade() {
                    Some(engine) => engine.increment_epoch(),
                    None => break,
                }
            }
        })
        .map(drop)
        .map_err(|e| EngineError(format!("cannot start the epoch ticker: {e}")))
}

/// A core module (wasm version 1) is a common mistake (built for `wasm32-wasip1` or
/// `wasm32-unknown-unknown`): say so rather than wasmtime's generic parse error.
fn refuse_core_module(bytes: &[u8]) -> Result<(), LoadError> {
    if bytes.len() >= 8 && bytes[..4] == *b"\0asm" && bytes[4..8] == [1, 0, 0, 0] {
        return Err(LoadError::Invalid(
            "this is a core wasm module, not a component (build for wasm32-wasip2)".into(),
        ));
    }
    Ok(())
}

enum Ended {
    Stopped,
    TimedOut,
    Error(wasmtime::Error),
}

/// Emits a last stdout/stderr line that had no trailing newline.
fn finish_streams(store: &mut Store<JobState>) {
    for s in &store.data().streams {
        s.finish();
    }
}

fn classify(e: wasmtime::Error, hit: Option<CapHit>) -> Outcome {
    if let Some(flow::Suspend(s)) = e.downcast_ref::<flow::Suspend>() {
        return Outcome::Suspended(s.clone());
    }
    match hit {
        Some(CapHit::Memory) => return Outcome::OutOfMemory,
        Some(CapHit::Table) => return Outcome::OutOfTable,
        None => {}
    }
    if matches!(
        e.downcast_ref::<ResourceTableError>(),
        Some(ResourceTableError::Full)
    ) {
        return Outcome::OutOfTable;
    }
    match e.downcast_ref::<Trap>() {
        Some(Trap::OutOfFuel) => Outcome::OutOfFuel,
        Some(Trap::StackOverflow) => Outcome::StackOverflow,
        Some(trap) => Outcome::Trapped(trap.to_string()),
        None => Outcome::Trapped(format!("{e:#}")),
    }
}
