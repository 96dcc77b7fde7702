//! Why a run failed, as a job's record keeps it.
//!
//! The kind is an enum, not a string, so that the rules that read it (which kinds are retried,
//! how a view names them) are checked by the compiler; it is written as the same snake_case
//! names the journal and the API have always used.

use serde::{Deserialize, Serialize};

/// How a run ended when it did not complete.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// The guest returned its own error.
    Failed,
    /// The guest trapped (a panic, an unreachable, a bad memory access).
    Trapped,
    /// The guest overflowed its stack.
    StackOverflow,
    /// The guest used up its fuel.
    OutOfFuel,
    /// The guest hit its memory cap.
    OutOfMemory,
    /// The guest hit its table cap.
    OutOfTable,
    /// The guest hit a cap on its output (result, logs).
    CapExceeded,
    /// The run took longer than its timeout.
    TimedOut,
    /// The host stopped, or lost its lease, while the run was going on.
    Interrupted,
}

impl ErrorKind {
    /// The name the journal and the API use (`out_of_fuel`).
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Failed => "failed",
            ErrorKind::Trapped => "trapped",
            ErrorKind::StackOverflow => "stack_overflow",
            ErrorKind::OutOfFuel => "out_of_fuel",
            ErrorKind::OutOfMemory => "out_of_memory",
            ErrorKind::OutOfTable => "out_of_table",
            ErrorKind::CapExceeded => "cap_exceeded",
            ErrorKind::TimedOut => "timed_out",
            ErrorKind::Interrupted => "interrupted",
        }
    }
}

impl std::fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a job ended in `ERROR`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorInfo {
    /// How the run ended.
    pub kind: ErrorKind,
    /// The guest's code for `failed`, else an upper-case form of `kind`.
    pub code: String,
    /// Human-readable message.
    pub message: String,
    /// Whether a retry may succeed.
    pub retryable: bool,
}

/// One failed attempt, kept on the job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttemptError {
    /// The attempt's number.
    pub attempt: u32,
    /// When it ended (microseconds since the epoch).
    pub at: i64,
    /// Why.
    pub error: ErrorInfo,
}

#[cfg(test)]
mod tests {
    use super::ErrorKind;

    /// Each kind is written as the name it has always had in the journal and the API.
    #[test]
    fn kinds_serialise_as_their_stored_names() {
        for kind in [
            ErrorKind::Failed,
            ErrorKind::Trapped,
            ErrorKind::StackOverflow,
            ErrorKind::OutOfFuel,
            ErrorKind::OutOfMemory,
            ErrorKind::OutOfTable,
            ErrorKind::CapExceeded,
            ErrorKind::TimedOut,
            ErrorKind::Interrupted,
        ] {
            let text = serde_json::to_string(&kind).unwrap();
            assert_eq!(text, format!("\"{}\"", kind.as_str()));
            assert_eq!(serde_json::from_str::<ErrorKind>(&text).unwrap(), kind);
        }
    }
}
