//! The durable-execution context of one run: what its `flow` calls reach.
//!
//! Why per run: a run reads its steps as its claim found them (a step stored by an earlier run
//! is in the claimed record), buffers the children it enqueues until its next wait or its end
//! (one durable write for a fan-out of thousands, not one each), and writes only while it still
//! holds its job (every step write is a compare-and-set on the run). See `docs/workflows.md`.

use super::{AddRequest, Inner, Queue, QueueError};
use crate::job::{JobRecord, Json, Status};
use crate::runtime::{ChildEnd, ChildOptions, FlowContext, FlowError, GuestError};
use crate::store::NewJob;
use futures::future::BoxFuture;
use std::collections::{BTreeMap, HashSet};
use std::sync::{Mutex, MutexGuard, Weak};

/// Longest child name, in bytes.
pub const MAX_CHILD_NAME: usize = 64;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// A child's id: its parent's id, a dot, its name (so that a re-run names the same job).
pub fn child_id(parent: &str, name: &str) -> String {
    format!("{parent}.{name}")
}

/// Whether `name` may name a child: 1 to [`MAX_CHILD_NAME`] bytes of letters, digits, `-`,
/// `_` and `.`.
pub fn valid_child_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_CHILD_NAME
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// One run's flow context.
pub(crate) struct RunFlow {
    queue: Weak<Inner>,
    job_id: String,
    host: String,
    attempt: u32,
    traceparent: Option<String>,
    steps: Mutex<BTreeMap<String, Json>>,
    pending: Mutex<Vec<NewJob>>,
    buffered: Mutex<HashSet<String>>,
}

impl RunFlow {
    /// The context of the run of `rec` (as claimed) on `host`.
    pub(crate) fn new(queue: Weak<Inner>, rec: &JobRecord, host: &str) -> RunFlow {
        RunFlow {
            queue,
            job_id: rec.job_id.clone(),
            host: host.to_string(),
            attempt: rec.attempt,
            traceparent: rec.traceparent.clone(),
            steps: Mutex::new(rec.steps.clone()),
            pending: Mutex::default(),
            buffered: Mutex::default(),
        }
    }

    fn queue(&self) -> Result<Queue, FlowError> {
        self.queue
            .upgrade()
            .map(|inner| Queue { inner })
            .ok_or_else(|| FlowError("the host is shutting down".into()))
    }

    /// Writes the children enqueued and not yet written (see [`FlowContext::flush`]).
    pub(crate) async fn write_children(&self) -> Result<(), FlowError> {
        let jobs = std::mem::take(&mut *lock(&self.pending));
        if jobs.is_empty() {
            return Ok(());
        }
        let q = self.queue()?;
        q.inner
            .store
            .insert_many(jobs, None)
            .await
            .map(drop)
            .map_err(|e| FlowError(format!("cannot enqueue the children: {e}")))
    }
}

fn guest_error(e: QueueError) -> GuestError {
    let code = match &e {
        QueueError::UnknownJobType { .. } | QueueError::NoJobType { .. } => "UNKNOWN_JOB_TYPE",
        QueueError::JobTypeLoading(_) => "JOB_TYPE_LOADING",
        QueueError::InvalidParams(_) => "INVALID_PARAMS",
        QueueError::Forbidden { .. } => "FORBIDDEN",
        _ => "ENQUEUE_FAILED",
    };
    GuestError {
        code: code.into(),
        message: e.to_string(),
        retryable: false,
    }
}

fn invalid(message: String) -> GuestError {
    GuestError {
        code: "INVALID_CHILD".into(),
        message,
        retryable: false,
    }
}

impl FlowContext for RunFlow {
    fn step_result(&self, name: &str) -> Option<String> {
        lock(&self.steps).get(name).map(|v| v.as_str().to_string())
    }

    fn store_step(&self, name: String, value: String) -> BoxFuture<'_, Result<(), FlowError>> {
        Box::pin(async move {
            let value = Json::from_text(value)
                .map_err(|_| FlowError(format!("step '{name}': the value is not JSON")))?;
            let q = self.queue()?;
            q.inner
                .store
                .put_step(
                    (&self.job_id, &self.host, self.attempt),
                    &name,
                    value.clone(),
                )
                .await
                .map_err(|e| FlowError(format!("step '{name}': {e}")))?;
            lock(&self.steps).insert(name, value);
            Ok(())
        })
    }

    fn enqueue(
        &self,
        name: String,
        job_type: String,
        params: String,
        options: ChildOptions,
    ) -> Result<String, GuestError> {
        if !valid_child_name(&name) {
            return Err(invalid(format!(
                "child name '{name}' must be 1 to {MAX_CHILD_NAME} bytes of letters, digits, '-', '_' and '.'"
            )));
        }
        let params: serde_json::Value = serde_json::from_str(&params)
            .map_err(|e| invalid(format!("child '{name}': params are not JSON: {e}")))?;
        let id = child_id(&self.job_id, &name);
        if lock(&self.buffered).contains(&id) {
            return Ok(id);
        }
        let q = self
            .queue()
            .map_err(|e| invalid(format!("child '{name}': {e}")))?;
        let mut job = q
            .new_job(
                AddRequest {
                    job_id: Some(id.clone()),
                    job_type: Some(job_type),
                    params,
                    priority: options.priority,
                    max_attempts: options.max_attempts,
                    queue: options.queue,
                    ..AddRequest::default()
                },
                true,
                None,
            )
            .map_err(guest_error)?;
        job.parent = Some(self.job_id.clone());
        job.traceparent = self.traceparent.clone();
        lock(&self.buffered).insert(id.clone());
        lock(&self.pending).push(job);
        Ok(id)
    }

    fn flush(&self) -> BoxFuture<'_, Result<(), FlowError>> {
        Box::pin(self.write_children())
    }

    fn join(&self, ids: Vec<String>) -> BoxFuture<'_, Result<Option<Vec<ChildEnd>>, FlowError>> {
        Box::pin(async move {
            let q = self.queue()?;
            let found = q
                .inner
                .store
                .get_many(&ids)
                .await
                .map_err(|e| FlowError(format!("join: {e}")))?;
            let mut ends = Vec::with_capacity(ids.len());
            for (id, rec) in ids.iter().zip(found) {
                // A run joins its own children only: it must not read other jobs' results.
                let Some(rec) = rec.filter(|r| r.parent.as_deref() == Some(self.job_id.as_str()))
                else {
                    return Err(FlowError(format!(
                        "join: '{id}' is not a child of this job"
                    )));
                };
                if !rec.status.is_terminal() {
                    return Ok(None);
                }
                ends.push(ChildEnd {
                    id: id.clone(),
                    status: rec.status.as_str().to_string(),
                    result: match rec.status {
                        Status::Completed => rec.result.as_ref().map(|r| r.as_str().to_string()),
                        _ => None,
                    },
                    error: rec.error.as_ref().map(|e| GuestError {
                        code: e.code.clone(),
                        message: e.message.clone(),
                        retryable: e.retryable,
                    }),
                });
            }
            Ok(Some(ends))
        })
    }

    fn event(&self, name: String) -> BoxFuture<'_, Result<Option<String>, FlowError>> {
        Box::pin(async move {
            let q = self.queue()?;
            let rec = q
                .inner
                .store
                .get(&self.job_id)
                .await
                .map_err(|e| FlowError(format!("wait-for-event: {e}")))?;
            Ok(rec.and_then(|r| r.events.get(&name).map(|p| p.as_str().to_string())))
        })
    }
}

/// The params a run of `rec` gets: its own, and, for a job with dependencies, `inputs`: each
/// dependency's result by its key (`null` for one that did not complete). Read when the run
/// starts, so a resumed or retried run sees them too.
pub(crate) async fn params_with_inputs(
    store: &dyn crate::store::Store,
    rec: &JobRecord,
) -> Result<String, String> {
    if rec.depends_on.is_empty() {
        return Ok(rec.params.as_str().to_string());
    }
    let ids: Vec<String> = rec.depends_on.iter().map(|d| d.job_id.clone()).collect();
    let found = store
        .get_many(&ids)
        .await
        .map_err(|e| format!("cannot read the job's dependencies: {e}"))?;
    let mut inputs = serde_json::Map::new();
    for (d, dep) in rec.depends_on.iter().zip(found) {
        let v = dep
            .filter(|j| j.status == Status::Completed)
            .and_then(|j| j.result.as_ref().map(Json::to_value))
            .unwrap_or(serde_json::Value::Null);
        inputs.insert(d.key.clone(), v);
    }
    let mut params = rec.params.to_value();
    match params.as_object_mut() {
        Some(o) => {
            o.insert("inputs".into(), serde_json::Value::Object(inputs));
        }
        None => return Ok(rec.params.as_str().to_string()),
    }
    Ok(params.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn child_names_are_short_and_plain() {
        assert!(valid_child_name("item-1"));
        assert!(valid_child_name("a.b_c"));
        assert!(!valid_child_name(""));
        assert!(!valid_child_name("a/b"));
        assert!(!valid_child_name("a b"));
        assert!(!valid_child_name(&"x".repeat(65)));
        assert_eq!(child_id("p", "item-1"), "p.item-1");
    }
}
