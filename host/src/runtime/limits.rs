//! Per-job limits and the resource limiter that enforces the memory and table caps.
//!
//! The limiter does not trap by itself: it refuses the growth (the guest sees `memory.grow`
//! fail, as the spec allows) and remembers which cap was hit, so that whatever the guest does
//! next (usually an abort) is reported as "out of memory" rather than as a generic trap.

use std::time::Duration;

/// The limits one run of a job gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JobLimits {
    /// Fuel budget (wasm operators, roughly); `None` for unmetered-but-stoppable.
    pub fuel: Option<u64>,
    /// Cap on the job's linear memory, in bytes.
    pub memory_bytes: usize,
    /// Cap on table elements (function references) per table.
    pub table_elements: usize,
    /// Cap on host resources (WASI streams, pollables, …) a job holds at once.
    pub resources: usize,
    /// Wall-clock limit, covering time spent in host calls and sleeps too.
    pub timeout: Duration,
    /// Cap on the size of the JSON result, in bytes.
    pub result_bytes: usize,
    /// Cap on captured log/stdout/stderr bytes; later lines are dropped and counted.
    pub log_bytes: usize,
}

impl Default for JobLimits {
    fn default() -> Self {
        JobLimits {
            fuel: None,
            memory_bytes: 128 << 20,
            table_elements: 100_000,
            resources: 10_000,
            timeout: Duration::from_secs(3600),
            result_bytes: 16 << 20,
            log_bytes: 1 << 20,
        }
    }
}

/// Which cap a guest ran into.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CapHit {
    /// Linear memory would have grown past [`JobLimits::memory_bytes`].
    Memory,
    /// A table would have grown past [`JobLimits::table_elements`].
    Table,
}

/// The store's [`wasmtime::ResourceLimiter`]: refuses growth past the caps and remembers it.
#[derive(Debug)]
pub(crate) struct JobLimiter {
    memory_bytes: usize,
    table_elements: usize,
    pub(crate) hit: Option<CapHit>,
}

impl JobLimiter {
    pub(crate) fn new(limits: &JobLimits) -> Self {
        JobLimiter {
            memory_bytes: limits.memory_bytes,
            table_elements: limits.table_elements,
            hit: None,
        }
    }
}

impl wasmtime::ResourceLimiter for JobLimiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.memory_bytes {
            self.hit = Some(CapHit::Memory);
            return Ok(false);
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.table_elements {
            self.hit = Some(CapHit::Table);
            return Ok(false);
        }
        Ok(true)
    }
}
