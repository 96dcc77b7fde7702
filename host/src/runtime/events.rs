//! What a running job tells the outside world: progress and log lines.
//!
//! The runtime knows nothing of queues or registries; it hands events to a [`JobEvents`] sink
//! that the caller (the queue) implements. Log volume is capped here, per run, so that a guest
//! that floods stdout or the log import costs the host a bounded amount of memory.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

/// Where a log line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogSource {
    /// The guest's stdout.
    Stdout,
    /// The guest's stderr.
    Stderr,
    /// The `log` import.
    Log,
    /// The host, about the run (e.g. an outbound request it refused).
    Host,
}

/// Severity of a log line (stdout lines are `Info`, stderr lines `Warn`).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum LogLevel {
    /// Very detailed tracing output.
    Trace,
    /// Debugging output.
    Debug,
    /// Normal operational messages.
    Info,
    /// Something unexpected that the job recovered from.
    Warn,
    /// Something failed.
    Error,
}

impl LogLevel {
    /// Upper-case name, as in `[INFO] message`.
    pub fn as_upper(self) -> &'static str {
        match self {
            LogLevel::Trace => "TRACE",
            LogLevel::Debug => "DEBUG",
            LogLevel::Info => "INFO",
            LogLevel::Warn => "WARN",
            LogLevel::Error => "ERROR",
        }
    }
}

/// One captured log line.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LogLine {
    /// Where it came from.
    pub source: LogSource,
    /// Its severity.
    pub level: LogLevel,
    /// The text, without the trailing newline; invalid UTF-8 is replaced (U+FFFD).
    pub text: String,
}

/// The sink a running job's events go to.
pub trait JobEvents: Send + Sync + 'static {
    /// The job reported progress (already clamped to 0..=100).
    fn progress(&self, percent: u8, description: &str);
    /// The job wrote a log line (already within the log cap).
    fn log(&self, line: LogLine);
    /// The run has ended having consumed this much fuel (only when fuel is metered).
    fn fuel_used(&self, fuel: u64) {
        let _ = fuel;
    }
}

/// A sink that drops everything: for `describe()` calls and benchmarks.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoEvents;

impl JobEvents for NoEvents {
    fn progress(&self, _percent: u8, _description: &str) {}
    fn log(&self, _line: LogLine) {}
}

/// Counts the bytes of log output one run produced and refuses lines past the cap.
#[derive(Debug)]
pub(crate) struct LogBudget {
    cap: usize,
    used: AtomicUsize,
    dropped: AtomicU64,
    announced: AtomicBool,
}

impl LogBudget {
    pub(crate) fn new(cap: usize) -> Arc<Self> {
        Arc::new(LogBudget {
            cap,
            used: AtomicUsize::new(0),
            dropped: AtomicU64::new(0),
            announced: AtomicBool::new(false),
        })
    }

    /// Hands `line` to `sink` if it fits in the budget; otherwise counts it as dropped and,
    /// the first time, writes one line saying that the cap was reached.
    pub(crate) fn emit(&self, sink: &dyn JobEvents, line: LogLine) {
        let len = line.text.len() + 1;
        let before = self.used.fetch_add(len, Ordering::Relaxed);
        if before + len <= self.cap {
            sink.log(line);
            return;
        }
        self.dropped.fetch_add(1, Ordering::Relaxed);
        if !self.announced.swap(true, Ordering::Relaxed) {
            sink.log(LogLine {
                source: LogSource::Log,
                level: LogLevel::Warn,
                text: format!(
                    "log cap of {} bytes reached: later lines are dropped",
                    self.cap
                ),
            });
        }
    }

    /// Lines dropped because the cap was reached.
    pub(crate) fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}
