//! Write queuemgr jobs in Rust.
//!
//! A job is a WebAssembly component for the `queuemgr:job` world (`wit/job.wit`). This crate
//! generates that world's guest bindings once and wraps them in an idiomatic API: typed params
//! and results through serde, [`progress`], logging macros, [`should_stop`], [`sleep`], and
//! one macro, [`export_job!`], that exports a job.
//!
//! # A complete job
//!
//! ```ignore
//! use queuemgr_guest::{Job, JobError, info, progress, sleep};
//! use std::time::Duration;
//!
//! #[derive(serde::Deserialize)]
//! struct Params { task_name: String, duration: u32 }
//!
//! struct MyJob;
//! impl Job for MyJob {
//!     const NAME: &'static str = "my-job";
//!     const PARAMS_SCHEMA: &'static str = r#"{"type":"object","required":["task_name","duration"]}"#;
//!     type Params = Params;
//!     type Output = serde_json::Value;
//!     fn run(p: Params) -> Result<Self::Output, JobError> {
//!         info!("starting {}", p.task_name);
//!         for step in 1..=p.duration {
//!             if sleep(Duration::from_secs(1)) { return Err(JobError::new("STOPPED", "stop requested")); }
//!             progress((step * 100 / p.duration) as u8, format!("step {step}/{}", p.duration));
//!         }
//!         Ok(serde_json::json!({ "task_name": p.task_name, "status": "completed" }))
//!     }
//! }
//! queuemgr_guest::export_job!(MyJob);
//! ```
//!
//! Build it with `cargo build --release --target wasm32-wasip2` (crate type `cdylib`) and drop
//! the `.wasm` into the host's jobs directory: the file stem becomes the job type.
//!
//! # What the host enforces
//!
//! The host can stop a job at any moment (at its next fuel check), so [`should_stop`] is for
//! stopping *cleanly*, not a requirement. A job runs with a fuel budget, a memory cap and a
//! wall-clock timeout; stdout and stderr lines go to the job's logs.
//!
//! By default WASI grants nothing else: no files, no environment, no network. A job type's
//! manifest (`jobs/<type>.toml` beside the component) can grant directories (`[[dirs]]`, read
//! with `std::fs` at their guest paths, read-only unless `mode = "rw"`; [`fs`] has helpers
//! with the buffer sizes that make it fast), environment
//! variables (`[env]`, read with `std::env::var`) and outbound HTTP to listed destinations
//! (`[http]`, through [`http`]).

// Lets the generated bindings name this crate the same way from inside and outside.
extern crate self as queuemgr_guest;

use serde::Serialize;
use serde::de::DeserializeOwned;
use std::time::Duration;

pub mod flow;
pub mod fs;
pub mod http;

#[doc(hidden)]
pub use serde_json as __serde_json;
#[doc(hidden)]
pub use wit_bindgen as __wit_bindgen;

/// The generated bindings of the `job` world (guest side). Job authors use the wrappers in the
/// crate root; the module is public so that [`export_job!`] can name it.
#[doc(hidden)]
pub mod bindings {
    wit_bindgen::generate!({
        path: "../wit",
        world: "job",
        pub_export_macro: true,
        export_macro_name: "__export_job_world",
        default_bindings_module: "::queuemgr_guest::bindings",
        runtime_path: "::queuemgr_guest::__wit_bindgen::rt",
    });
}

use bindings::queuemgr::job::{host, types};

/// Severity of a log line, as the host records it.
pub use types::LogLevel;

/// A job: its description and its `run` function.
///
/// Only [`Job::NAME`], the two types and [`Job::run`] are required.
pub trait Job {
    /// Short name of the job.
    const NAME: &'static str;
    /// The job's own version.
    const VERSION: &'static str = "0.1.0";
    /// One or two sentences for humans.
    const DESCRIPTION: &'static str = "";
    /// JSON Schema of the params object, as JSON text. The host validates params against it
    /// before it accepts a job.
    const PARAMS_SCHEMA: &'static str = r#"{"type":"object"}"#;

    /// The params, deserialised from the JSON object given to `add_job`.
    type Params: DeserializeOwned;
    /// The result, serialised to JSON.
    type Output: Serialize;

    /// Runs the job.
    fn run(params: Self::Params) -> Result<Self::Output, JobError>;
}

/// A failure reported by the job itself (the host reports it as `ERROR` with this code).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobError {
    /// Machine-readable code, e.g. `INVALID_INPUT`.
    pub code: String,
    /// Human-readable message.
    pub message: String,
    /// Whether running the job again may succeed.
    pub retryable: bool,
}

impl JobError {
    /// A non-retryable error with the given code and message.
    pub fn new(code: impl Into<String>, message: impl Into<String>) -> Self {
        JobError {
            code: code.into(),
            message: message.into(),
            retryable: false,
        }
    }

    /// Marks the error as retryable.
    pub fn retryable(mut self) -> Self {
        self.retryable = true;
        self
    }
}

impl std::fmt::Display for JobError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl std::error::Error for JobError {}

/// Reports progress (0–100, clamped) and a description of the current step.
pub fn progress(percent: u8, description: impl AsRef<str>) {
    host::progress(percent.min(100), description.as_ref());
}

/// Writes one log line into the job's logs.
pub fn log(level: LogLevel, message: impl AsRef<str>) {
    host::log(level, message.as_ref());
}

/// True once a stop of this job was requested: return early to stop cleanly.
pub fn should_stop() -> bool {
    host::should_stop()
}

/// The id this job was added under.
pub fn job_id() -> String {
    host::job_id()
}

/// Parks the job for `duration` without holding a host thread. Returns `true` if it woke
/// early because a stop was requested.
pub fn sleep(duration: Duration) -> bool {
    host::sleep(u64::try_from(duration.as_millis()).unwrap_or(u64::MAX))
}

/// Logs at `info` level, `format!`-style.
#[macro_export]
macro_rules! info {
    ($($arg:tt)*) => { $crate::log($crate::LogLevel::Info, ::std::format!($($arg)*)) };
}

/// Logs at `debug` level, `format!`-style.
#[macro_export]
macro_rules! debug {
    ($($arg:tt)*) => { $crate::log($crate::LogLevel::Debug, ::std::format!($($arg)*)) };
}

/// Logs at `warn` level, `format!`-style.
#[macro_export]
macro_rules! warn {
    ($($arg:tt)*) => { $crate::log($crate::LogLevel::Warn, ::std::format!($($arg)*)) };
}

/// Logs at `error` level, `format!`-style.
#[macro_export]
macro_rules! error {
    ($($arg:tt)*) => { $crate::log($crate::LogLevel::Error, ::std::format!($($arg)*)) };
}

#[doc(hidden)]
pub fn __describe<J: Job>() -> types::JobInfo {
    types::JobInfo {
        name: J::NAME.to_string(),
        version: J::VERSION.to_string(),
        description: J::DESCRIPTION.to_string(),
        params_schema: J::PARAMS_SCHEMA.to_string(),
    }
}

#[doc(hidden)]
pub fn __run<J: Job>(params: &str) -> Result<String, types::JobError> {
    let to_wit = |e: JobError| types::JobError {
        code: e.code,
        message: e.message,
        retryable: e.retryable,
    };
    let params: J::Params = serde_json::from_str(params)
        .map_err(|e| to_wit(JobError::new("INVALID_PARAMS", e.to_string())))?;
    let output = J::run(params).map_err(to_wit)?;
    serde_json::to_string(&output)
        .map_err(|e| to_wit(JobError::new("INVALID_RESULT", e.to_string())))
}

/// Exports a type implementing [`Job`] as this component's `describe` and `run`.
#[macro_export]
macro_rules! export_job {
    ($job:ty) => {
        const _: () = {
            struct __QueuemgrJob;
            impl $crate::bindings::Guest for __QueuemgrJob {
                fn describe() -> $crate::bindings::queuemgr::job::types::JobInfo {
                    $crate::__describe::<$job>()
                }
                fn run(
                    params: ::std::string::String,
                ) -> ::std::result::Result<
                    ::std::string::String,
                    $crate::bindings::queuemgr::job::types::JobError,
                > {
                    $crate::__run::<$job>(&params)
                }
            }
    $crate::bindings::__export_job_world!(__QueuemgrJob with_types_in $crate::bindings);
        };
    };
}
