//! Shared helpers of the end-to-end tests and benchmarks: where the built example jobs are,
//! and a sink that records what a running job reports.

use queuemgr::runtime::{JobEvents, LogLine};
use std::path::PathBuf;
use std::sync::Mutex;

/// The example jobs, as their `.wasm` files' stems.
pub const EXAMPLE_JOBS: &[&str] = &["my_job", "cpu_heavy", "failing", "hostile", "noop"];

/// The directory the build script put the example jobs' `.wasm` files in.
pub fn example_jobs_dir() -> PathBuf {
    PathBuf::from(env!("QUEUEMGR_EXAMPLE_JOBS"))
}

/// The path of one example job's component, e.g. `job_wasm("noop")`.
pub fn job_wasm(stem: &str) -> PathBuf {
    example_jobs_dir().join(format!("{stem}.wasm"))
}

/// Copies the example jobs into `dir` (a fresh jobs directory for a server under test).
pub fn copy_example_jobs(dir: &std::path::Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    for stem in EXAMPLE_JOBS {
        std::fs::copy(job_wasm(stem), dir.join(format!("{stem}.wasm")))?;
    }
    Ok(())
}

/// Records every progress report and log line of a run, in order.
#[derive(Default)]
pub struct Recorder {
    /// `(percent, description)` in the order reported.
    pub progress: Mutex<Vec<(u8, String)>>,
    /// Log lines in the order written.
    pub logs: Mutex<Vec<LogLine>>,
}

impl JobEvents for Recorder {
    fn progress(&self, percent: u8, description: &str) {
        self.progress
            .lock()
            .unwrap()
            .push((percent, description.to_string()));
    }
    fn log(&self, line: LogLine) {
        self.logs.lock().unwrap().push(line);
    }
}
