//! queuemgr: a job host that runs jobs as WebAssembly components.
//!
//! The data path, one module per stage: [`api`] (HTTP, JSON-RPC) → [`queue`] (the job state
//! services: producer, executor, completer, maintenance) → [`store`] (the job store seam; every
//! transition durable before it is acknowledged; the local backend with its journal, and
//! PostgreSQL) and [`runtime`] (wasmtime engine, bindings, metering, limits), with [`catalog`]
//! owning the jobs directory. [`job`] is the model they all speak (records, statuses, errors,
//! the clock, ids) and owns nothing else; [`schedule`] is the model of periodic jobs (cron, time
//! zones, the overlap and catch-up decisions); [`limits`] the model of named queues and concurrency keys
//! (their settings, and the pure decision of what a claim may take). Dependencies only point down that path: no module
//! imports one above it.

pub mod api;
pub mod auth;
pub mod catalog;
pub mod cli;
pub mod client;
pub mod job;
pub mod limits;
pub mod metrics;
pub mod queue;
pub mod runtime;
pub mod schedule;
pub mod server;
pub mod store;
pub mod telemetry;
#[cfg(test)]
mod testing;

/// The memory allocator the `queuemgr` binaries install (`#[global_allocator]`): jemalloc. The
/// HTTP path allocates and frees many small objects, some on another thread than the one that
/// allocated them (JSON values, records, hyper buffers), and start-up replays hundreds of MiB
/// of small records on every core; jemalloc's thread caches and arenas serve both faster and
/// in less memory than the system allocator (see docs/benchmarks.md).
pub type Allocator = tikv_jemallocator::Jemalloc;

/// The [`Allocator`] value to put in a binary's `#[global_allocator]` static.
pub const ALLOCATOR: Allocator = tikv_jemallocator::Jemalloc;
