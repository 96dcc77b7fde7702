//! The `flow` interface: durable steps, child jobs and waits that suspend the run.
//!
//! Why the runtime only defines a [`FlowContext`] and leaves it to the queue: the runtime
//! knows instances, not stores. The queue gives each run a context over the store (its steps
//! as the claim read them, a buffer of children to enqueue, the reads a join needs); the host
//! functions here call it and, when a wait is not over, end the run with a [`Suspend`] error
//! that [`super::Runtime::run`] turns into [`super::Outcome::Suspended`] — distinct from a trap,
//! so the job is neither failed nor retried but waits.

use super::bindings::queuemgr::job::{flow, types};
use super::outcome::GuestError;
use super::state::JobState;
use futures::future::BoxFuture;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The longest `sleep-until` that parks in the host (holding the instance); a longer one
/// suspends the run.
pub const PARK_LIMIT: Duration = Duration::from_secs(2);

/// What a suspended run waits for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Suspension {
    /// These children to end.
    Children(Vec<String>),
    /// A time (µs since the epoch).
    Until(i64),
    /// An event by name, until a deadline (µs since the epoch) if there is one.
    Event {
        /// The event's name.
        name: String,
        /// When the wait times out.
        until: Option<i64>,
    },
}

/// The error a host function returns to end a run that suspends (not a trap: see the module
/// docs).
#[derive(Debug, thiserror::Error)]
#[error("the run suspended: {0:?}")]
pub struct Suspend(pub Suspension);

/// Why a flow call could not be served (the store is unreachable, the run lost its job): the
/// run ends as trapped, which is retried.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct FlowError(pub String);

/// A child's options, as the guest gives them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChildOptions {
    /// Its named queue.
    pub queue: Option<String>,
    /// Its priority.
    pub priority: Option<i32>,
    /// Runs allowed.
    pub max_attempts: Option<u32>,
}

/// How a child ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChildEnd {
    /// Its id.
    pub id: String,
    /// Its status (`COMPLETED`, `ERROR`, `STOPPED`, `DELETED`).
    pub status: String,
    /// Its result, if it completed.
    pub result: Option<String>,
    /// Its error, if it failed.
    pub error: Option<GuestError>,
}

/// What a run's `flow` calls reach: implemented by the queue over its store, one per run.
pub trait FlowContext: Send + Sync {
    /// The stored result of step `name`, if any.
    fn step_result(&self, name: &str) -> Option<String>;
    /// Stores step `name`'s result durably.
    fn store_step(&self, name: String, value: String) -> BoxFuture<'_, Result<(), FlowError>>;
    /// Checks and buffers a child; its id.
    fn enqueue(
        &self,
        name: String,
        job_type: String,
        params: String,
        options: ChildOptions,
    ) -> Result<String, GuestError>;
    /// Writes the buffered children (one durable write).
    fn flush(&self) -> BoxFuture<'_, Result<(), FlowError>>;
    /// The ends of `ids` if every one has ended; `None` if one has not.
    fn join(&self, ids: Vec<String>) -> BoxFuture<'_, Result<Option<Vec<ChildEnd>>, FlowError>>;
    /// The payload of event `name`, if it was sent (read from the store, not the claim).
    fn event(&self, name: String) -> BoxFuture<'_, Result<Option<String>, FlowError>>;
}

fn now_micros() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros().min(i64::MAX as u128) as i64)
}

fn millis_to_micros(ms: u64) -> i64 {
    (ms as i64).saturating_mul(1000)
}

impl JobState {
    fn flow(&self) -> wasmtime::Result<std::sync::Arc<dyn FlowContext>> {
        self.flow
            .clone()
            .ok_or_else(|| wasmtime::Error::msg("durable execution is not available here"))
    }
}

fn suspend(s: Suspension) -> wasmtime::Error {
    wasmtime::Error::new(Suspend(s))
}

fn fault(e: FlowError) -> wasmtime::Error {
    wasmtime::Error::new(e)
}

impl flow::Host for JobState {
    fn step_result(&mut self, name: String) -> wasmtime::Result<Option<String>> {
        Ok(self.flow()?.step_result(&name))
    }

    async fn store_step(&mut self, name: String, value: String) -> wasmtime::Result<()> {
        if serde_json::from_str::<serde::de::IgnoredAny>(&value).is_err() {
            return Err(wasmtime::Error::msg(format!(
                "step '{name}': the value to store is not JSON"
            )));
        }
        self.flow()?.store_step(name, value).await.map_err(fault)
    }

    fn enqueue(
        &mut self,
        name: String,
        job_type: String,
        params: String,
        options: flow::ChildOptions,
    ) -> wasmtime::Result<Result<String, types::JobError>> {
        let options = ChildOptions {
            queue: options.queue,
            priority: options.priority,
            max_attempts: options.max_attempts,
        };
        Ok(self
            .flow()?
            .enqueue(name, job_type, params, options)
            .map_err(|e| types::JobError {
                code: e.code,
                message: e.message,
                retryable: e.retryable,
            }))
    }

    async fn join(&mut self, ids: Vec<String>) -> wasmtime::Result<Vec<flow::ChildEnd>> {
        let ctx = self.flow()?;
        ctx.flush().await.map_err(fault)?;
        match ctx.join(ids.clone()).await.map_err(fault)? {
            Some(ends) => Ok(ends
                .into_iter()
                .map(|e| flow::ChildEnd {
                    id: e.id,
                    status: e.status,
                    output: e.result,
                    error: e.error.map(|e| types::JobError {
                        code: e.code,
                        message: e.message,
                        retryable: e.retryable,
                    }),
                })
                .collect()),
            None => Err(suspend(Suspension::Children(ids))),
        }
    }

    async fn sleep_until(&mut self, at_millis: u64) -> wasmtime::Result<()> {
        let at = millis_to_micros(at_millis);
        let now = now_micros();
        if at <= now {
            return Ok(());
        }
        let wait = Duration::from_micros((at - now) as u64);
        if wait <= PARK_LIMIT {
            let stop = self.stop.clone();
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = stop.cancelled() => {}
            }
            return Ok(());
        }
        self.flow()?.flush().await.map_err(fault)?;
        Err(suspend(Suspension::Until(at)))
    }

    async fn wait_for_event(
        &mut self,
        name: String,
        deadline_millis: Option<u64>,
    ) -> wasmtime::Result<Option<String>> {
        let ctx = self.flow()?;
        if let Some(payload) = ctx.event(name.clone()).await.map_err(fault)? {
            return Ok(Some(payload));
        }
        let until = deadline_millis.map(millis_to_micros);
        if until.is_some_and(|t| t <= now_micros()) {
            return Ok(None);
        }
        ctx.flush().await.map_err(fault)?;
        Err(suspend(Suspension::Event { name, until }))
    }
}
