//! queuemgr: a job host that runs jobs as WebAssembly components.
//!
//! The data path, one module per stage: [`api`] (HTTP, JSON-RPC) → [`queue`] (the job state
//! machine, limits, scheduling) → [`runtime`] (wasmtime engine, bindings, fuel, limits) and
//! [`registry`] (where every transition is made durable), with [`catalog`] owning the jobs
//! directory. Dependencies only point down that path: no module imports one above it.

pub mod api;
pub mod catalog;
pub mod cli;
pub mod queue;
pub mod registry;
pub mod runtime;
pub mod server;

/// The memory allocator the `queuemgr` binaries install (`#[global_allocator]`). The HTTP path
/// allocates and frees many small objects on one thread and frees some on another (JSON values,
/// records, hyper buffers); mimalloc's per-thread heaps serve that without the system
/// allocator's arena locks and consolidation passes (see docs/benchmarks.md for the effect).
pub type Allocator = mimalloc::MiMalloc;

/// The [`Allocator`] value to put in a binary's `#[global_allocator]` static.
pub const ALLOCATOR: Allocator = mimalloc::MiMalloc;

/// Settings for [`Allocator`], applied by [`cli::main`] before the host allocates in bulk.
///
/// Arenas are committed when reserved, not page by page on demand: replaying a large registry
/// allocates hundreds of MiB of small records, and committing them lazily cost ~40 % more start
/// time (see docs/benchmarks.md, restart with 1,000,000 jobs).
pub fn tune_allocator() {
    /// `mi_option_arena_eager_commit` in mimalloc's `mi_option_t` (v2 and v3 alike).
    const ARENA_EAGER_COMMIT: libmimalloc_sys::mi_option_t = 4;
    // SAFETY: sets a plain integer option; mimalloc reads options with atomics.
    unsafe { libmimalloc_sys::mi_option_set(ARENA_EAGER_COMMIT, 1) };
}
