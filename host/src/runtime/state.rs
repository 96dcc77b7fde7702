//! The store data of one run: WASI (with what the job type is granted), outbound HTTP behind
//! its gate, the limiter, and the `host` interface that the job imports.

use super::bindings::queuemgr::job::{host, types};
use super::capabilities::http::HttpGate;
use super::events::{JobEvents, LogBudget, LogLevel, LogLine, LogSource};
use super::limits::JobLimiter;
use super::output::CapturedStream;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

/// Longest description kept from one `progress` call; longer ones are cut.
const MAX_DESCRIPTION: usize = 1024;

/// Everything a run's [`wasmtime::Store`] holds. Built fresh for every run and dropped with it.
pub struct JobState {
    pub(crate) wasi: WasiCtx,
    pub(crate) http: WasiHttpCtx,
    pub(crate) gate: HttpGate,
    pub(crate) table: ResourceTable,
    pub(crate) limiter: JobLimiter,
    pub(crate) job_id: String,
    pub(crate) events: Arc<dyn JobEvents>,
    pub(crate) budget: Arc<LogBudget>,
    pub(crate) stop: CancellationToken,
    /// Host calls that returned to the guest since the stop was requested (see
    /// [`STOP_GRACE_CALLS`]).
    pub(crate) calls_after_stop: u32,
    pub(crate) streams: [CapturedStream; 2],
    /// What the `flow` calls reach (`None` while loading: `describe` has no job).
    pub(crate) flow: Option<Arc<dyn super::flow::FlowContext>>,
}

/// Host calls a guest may still make once a stop is requested, to see it and end cleanly (a
/// log line, a last progress, a final write); the next one ends the run. A guest that spends
/// its time in calls that return at once (inline file reads) is stopped within about this
/// many calls of the stop, ~1 ms at most, although it burns too little fuel to yield.
pub(crate) const STOP_GRACE_CALLS: u32 = 64;

impl WasiView for JobState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for JobState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.gate,
        }
    }
}

impl types::Host for JobState {}

fn cut(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

impl host::Host for JobState {
    fn progress(&mut self, percent: u8, description: String) -> wasmtime::Result<()> {
        self.events
            .progress(percent.min(100), cut(&description, MAX_DESCRIPTION));
        Ok(())
    }

    fn log(&mut self, level: types::LogLevel, message: String) -> wasmtime::Result<()> {
        let level = match level {
            types::LogLevel::Trace => LogLevel::Trace,
            types::LogLevel::Debug => LogLevel::Debug,
            types::LogLevel::Info => LogLevel::Info,
            types::LogLevel::Warn => LogLevel::Warn,
            types::LogLevel::Error => LogLevel::Error,
        };
        self.budget.emit(
            &*self.events,
            LogLine {
                source: LogSource::Log,
                level,
                text: message,
            },
        );
        Ok(())
    }

    fn should_stop(&mut self) -> wasmtime::Result<bool> {
        Ok(self.stop.is_cancelled())
    }

    fn job_id(&mut self) -> wasmtime::Result<String> {
        Ok(self.job_id.clone())
    }

    async fn sleep(&mut self, millis: u64) -> wasmtime::Result<bool> {
        let stop = self.stop.clone();
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(millis)) => Ok(false),
            _ = stop.cancelled() => Ok(true),
        }
    }
}
