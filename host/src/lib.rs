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
