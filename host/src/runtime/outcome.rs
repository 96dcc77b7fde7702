//! How a run ended. Every way is its own variant: a caller never has to parse a message to
//! tell a guest's own error from a trap, a cap, a timeout or a stop.

use serde::Serialize;

/// The structured error a job returns from `run` (the guest's own failure, not a trap).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GuestError {
    /// Machine-readable code chosen by the job.
    pub code: String,
    /// Human-readable message.
    pub message: String,
    /// Whether the job says a retry may succeed.
    pub retryable: bool,
}

/// The end of one run of a job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// `run` returned `Ok`: the result as JSON text.
    Completed(String),
    /// `run` returned the guest's own structured error.
    Failed(GuestError),
    /// The guest trapped (`unreachable`, a panic, an out-of-bounds access, …).
    Trapped(String),
    /// The guest exhausted its native wasm stack (unbounded recursion).
    StackOverflow,
    /// The fuel budget ran out.
    OutOfFuel,
    /// The guest tried to grow its memory past the cap.
    OutOfMemory,
    /// The guest tried to grow a table, or its table of host resources, past the cap.
    OutOfTable,
    /// A host-enforced cap other than memory was hit (the name of the cap says which).
    CapExceeded(&'static str),
    /// The wall-clock timeout passed.
    TimedOut,
    /// A stop was requested and the run was ended.
    Stopped,
    /// The run suspended (a `flow` wait that is not over): the job waits, holding no instance.
    Suspended(super::flow::Suspension),
}

impl Outcome {
    /// A short stable name: `completed`, `failed`, `trapped`, `stack_overflow`,
    /// `out_of_fuel`, `out_of_memory`, `out_of_table`, `cap_exceeded`, `timed_out`, `stopped`,
    /// `suspended`.
    pub fn kind(&self) -> &'static str {
        match self {
            Outcome::Completed(_) => "completed",
            Outcome::Failed(_) => "failed",
            Outcome::Trapped(_) => "trapped",
            Outcome::StackOverflow => "stack_overflow",
            Outcome::OutOfFuel => "out_of_fuel",
            Outcome::OutOfMemory => "out_of_memory",
            Outcome::OutOfTable => "out_of_table",
            Outcome::CapExceeded(_) => "cap_exceeded",
            Outcome::TimedOut => "timed_out",
            Outcome::Stopped => "stopped",
            Outcome::Suspended(_) => "suspended",
        }
    }

    /// A one-line human description of the outcome.
    pub fn describe(&self) -> String {
        match self {
            Outcome::Completed(_) => "Job completed".into(),
            // The code is in the job's `error`; the description is the message, as the original.
            Outcome::Failed(e) => e.message.clone(),
            Outcome::Trapped(m) => format!("job trapped: {m}"),
            Outcome::StackOverflow => "job overflowed its stack".into(),
            Outcome::OutOfFuel => "job ran out of fuel".into(),
            Outcome::OutOfMemory => "job hit its memory cap".into(),
            Outcome::OutOfTable => "job hit its table cap".into(),
            Outcome::CapExceeded(cap) => format!("job hit the {cap} cap"),
            Outcome::TimedOut => "job timed out".into(),
            Outcome::Stopped => "Job stopped by user".into(),
            Outcome::Suspended(_) => "Job suspended".into(),
        }
    }
}
