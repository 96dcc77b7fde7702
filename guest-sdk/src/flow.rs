//! Durable execution: steps whose results are stored, child jobs, and waits that suspend the
//! job instead of holding it (see the host's `docs/workflows.md`).
//!
//! A job that uses these runs again **from the top** after a retry, a rescue, a restart or a
//! wake-up. Each [`step`] whose result was stored returns it at once instead of running; each
//! [`spawn`] of a name returns the same child; [`join`], [`sleep_for`] and
//! [`wait_for_event`] return at once when what they wait for is there, and otherwise
//! **suspend** the job: the call does not return, the instance is dropped, and the job runs
//! again from the top once the wait is over. So code between steps must be deterministic (the
//! same params and step results lead to the same calls), and anything with an effect outside
//! the job belongs in a step.
//!
//! ```ignore
//! use queuemgr_guest::flow::{join, spawn, step, wait_for_event};
//!
//! let charge: serde_json::Value = step("charge", || Ok(charge_card(&order)))?;
//! let items: Vec<_> = order.items.iter().enumerate()
//!     .map(|(i, item)| spawn(&format!("item-{i}"), "order-item", item))
//!     .collect::<Result<_, _>>()?;
//! let packed = join(&items);                       // suspends until every item job ended
//! let approval: Option<Approval> =
//!     wait_for_event("approval", Some(Duration::from_secs(86_400)))?; // suspends
//! ```

use crate::JobError;
use crate::bindings::queuemgr::job::flow as wit;
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

fn from_wit(e: crate::bindings::queuemgr::job::types::JobError) -> JobError {
    JobError {
        code: e.code,
        message: e.message,
        retryable: e.retryable,
    }
}

fn encode<T: Serialize>(what: &str, v: &T) -> Result<String, JobError> {
    serde_json::to_string(v).map_err(|e| JobError::new("INVALID_STEP", format!("{what}: {e}")))
}

fn decode<T: DeserializeOwned>(what: &str, text: &str) -> Result<T, JobError> {
    serde_json::from_str(text).map_err(|e| {
        JobError::new(
            "INVALID_STEP",
            format!("{what}: the stored value does not fit the type asked for: {e}"),
        )
    })
}

/// Runs `f` once for this job, ever: its result is stored before `step` returns, and every
/// later run of the job (a retry, a resumption) gets the stored result without running `f`.
/// An error from `f` is not stored: the job fails (or is retried) and the step runs again.
pub fn step<T, F>(name: &str, f: F) -> Result<T, JobError>
where
    T: Serialize + DeserializeOwned,
    F: FnOnce() -> Result<T, JobError>,
{
    if let Some(text) = wit::step_result(name) {
        return decode(&format!("step '{name}'"), &text);
    }
    let value = f()?;
    wit::store_step(name, &encode(&format!("step '{name}'"), &value)?);
    Ok(value)
}

/// A child job, as [`spawn`] returns it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Child {
    /// Its id: this job's id, a dot, its name.
    pub id: String,
}

/// A child job's options (unset: its job type's defaults).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChildOptions {
    /// Its named queue.
    pub queue: Option<String>,
    /// Its priority (higher runs first).
    pub priority: Option<i32>,
    /// Runs allowed (1 = no retries).
    pub max_attempts: Option<u32>,
}

/// Enqueues a child job of `job_type` named `name` within this job (letters, digits, `-`, `_`
/// and `.`): a re-run that spawns the same name gets the same child, never a second one.
/// Children are written at the job's next wait or at its end.
pub fn spawn(name: &str, job_type: &str, params: &impl Serialize) -> Result<Child, JobError> {
    spawn_with(name, job_type, params, ChildOptions::default())
}

/// [`spawn`] with options.
pub fn spawn_with(
    name: &str,
    job_type: &str,
    params: &impl Serialize,
    options: ChildOptions,
) -> Result<Child, JobError> {
    let params = encode(&format!("child '{name}'"), params)?;
    let options = wit::ChildOptions {
        queue: options.queue,
        priority: options.priority,
        max_attempts: options.max_attempts,
    };
    wit::enqueue(name, job_type, &params, &options)
        .map(|id| Child { id })
        .map_err(from_wit)
}

/// How a child ended.
#[derive(Debug, Clone, PartialEq)]
pub struct ChildResult {
    /// Its id.
    pub id: String,
    /// `COMPLETED`, `ERROR`, `STOPPED` or `DELETED`.
    pub status: String,
    /// Its result, if it completed.
    pub output: Option<serde_json::Value>,
    /// Its error, if it failed.
    pub error: Option<JobError>,
}

impl ChildResult {
    /// Whether it completed.
    pub fn completed(&self) -> bool {
        self.status == "COMPLETED"
    }

    /// Its result as `T`, or the reason there is none.
    pub fn output<T: DeserializeOwned>(&self) -> Result<T, JobError> {
        match (&self.output, &self.error) {
            (Some(v), _) => T::deserialize(v).map_err(|e| {
                JobError::new("INVALID_CHILD_RESULT", format!("child {}: {e}", self.id))
            }),
            (None, Some(e)) => Err(e.clone()),
            (None, None) => Err(JobError::new(
                "CHILD_NOT_COMPLETED",
                format!("child {} ended {}", self.id, self.status),
            )),
        }
    }
}

/// How `children` ended, in that order. If one has not ended yet, the job suspends here and
/// runs again from the top once they have.
pub fn join(children: &[Child]) -> Vec<ChildResult> {
    let ids: Vec<String> = children.iter().map(|c| c.id.clone()).collect();
    wit::join(&ids)
        .into_iter()
        .map(|e| ChildResult {
            id: e.id,
            status: e.status,
            output: e.output.and_then(|t| serde_json::from_str(&t).ok()),
            error: e.error.map(from_wit),
        })
        .collect()
}

fn millis(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Waits until `at`: a short wait parks in the host, a long one suspends the job.
pub fn sleep_until(at: SystemTime) {
    wit::sleep_until(millis(at));
}

/// Waits `duration` from the first time this job reached this call (the deadline is a step
/// named `sleep:<name>`, so a re-run waits for the same moment, not a new one).
pub fn sleep_for(name: &str, duration: Duration) -> Result<(), JobError> {
    let at: u64 = step(&format!("sleep:{name}"), || {
        Ok(millis(SystemTime::now() + duration))
    })?;
    wit::sleep_until(at);
    Ok(())
}

/// The payload of the event `name` sent to this job (`send_event`), or `None` once `timeout`
/// (counted from the first time this job reached this call) has passed without one. Until
/// then the job suspends. An event sent before the job waits for it is kept for it.
pub fn wait_for_event<T: DeserializeOwned>(
    name: &str,
    timeout: Option<Duration>,
) -> Result<Option<T>, JobError> {
    let deadline: Option<u64> = match timeout {
        Some(t) => Some(step(&format!("wait:{name}"), || {
            Ok(millis(SystemTime::now() + t))
        })?),
        None => None,
    };
    match wit::wait_for_event(name, deadline) {
        Some(text) => decode(&format!("event '{name}'"), &text).map(Some),
        None => Ok(None),
    }
}
