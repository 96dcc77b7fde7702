//! Every change of a job's state, as a pure function from record to record.
//!
//! Why pure: the store backends (the local table, PostgreSQL) must move jobs exactly the same
//! way, and each rule (who may start, what a retry looks like, what a late stop does) must be
//! testable without I/O. A backend takes the record it holds, calls one of these, and stores
//! the result durably; it never assigns a job's fields itself.

use crate::job::{
    AttemptError, AuditAction, DepPolicy, ErrorInfo, ErrorKind, Event, JobRecord, Json, Status,
    StopKind, Wait,
};
use crate::store::{NewJob, RetryPolicy, RunEnd, StoreError};
use std::time::Duration;

/// The description of a job that waits for a free slot (the original's words are kept by
/// clients that look for them).
pub const WAITING: &str = "Waiting for a free slot";

/// Whether a job is runnable: PENDING and started (waiting for a slot, its time or a retry).
pub fn is_runnable(rec: &JobRecord) -> bool {
    rec.status == Status::Pending && rec.scheduled_at.is_some()
}

/// The record of a new job.
pub fn insert(job: &NewJob, now: i64) -> JobRecord {
    let mut rec = JobRecord {
        event: Event::Created,
        job_id: job.job_id.clone(),
        job_type: job.job_type.clone(),
        params: job.params.clone(),
        created_at: now,
        updated_at: now,
        priority: job.priority,
        max_attempts: job.max_attempts.max(1),
        run_at: job.run_at,
        unique_key: job.unique_key.clone(),
        schedule: job.schedule.clone().map(Box::new),
        queue: job.queue.clone(),
        concurrency_key: job.concurrency_key.clone(),
        as_command: job.as_command,
        added_by: job.added_by.as_deref().map(crate::job::Shared::new),
        traceparent: job.traceparent.clone(),
        parent: job.parent.clone(),
        depends_on: job.depends_on.clone(),
        on_dependency_failure: job.on_dependency_failure,
        ..JobRecord::default()
    };
    if job.start {
        make_runnable(&mut rec, now);
        rec.event = Event::Created;
    }
    rec
}

fn make_runnable(rec: &mut JobRecord, now: i64) {
    let at = rec.run_at.map_or(now, |t| t.max(now));
    rec.event = Event::Queued;
    rec.status = Status::Pending;
    rec.scheduled_at = Some(at);
    rec.description = if at > now {
        format!("Scheduled for {}", rfc3339(at))
    } else {
        WAITING.to_string()
    };
    rec.updated_at = now;
}

/// A user's start: a PENDING job nobody started, or a STOPPED one, becomes runnable at
/// `max(now, run_at)` with a fresh series of attempts. `by` (a key's name) is recorded in the
/// job's audit.
pub fn start(rec: &JobRecord, now: i64, by: Option<&str>) -> Result<JobRecord, StoreError> {
    let startable = match rec.status {
        // A suspended job is started already: its wait ends it (or a stop).
        Status::Pending => rec.scheduled_at.is_none() && !rec.suspended,
        Status::Stopped => true,
        _ => false,
    };
    if !startable {
        return Err(StoreError::StateInvalid {
            job_id: rec.job_id.clone(),
            action: "start",
            current: rec.status,
            waiting: is_runnable(rec) || rec.suspended,
            allowed: vec![Status::Pending, Status::Stopped],
        });
    }
    let mut next = rec.clone();
    // A restart is always recorded; a first start only when another key than the one that
    // added the job starts it (the common add-then-start by one key adds nothing).
    let action = if rec.status == Status::Stopped {
        Some(AuditAction::Restart)
    } else if by.is_some() && by != rec.added_by.as_deref() {
        Some(AuditAction::Start)
    } else {
        None
    };
    if let Some(action) = action {
        next.audited(by, action, now);
    }
    next.attempt = 0;
    next.result = None;
    next.error = None;
    next.completed_at = None;
    next.progress = 0;
    make_runnable(&mut next, now);
    Ok(next)
}

/// A claim by `host`: the job runs, as the next attempt, until `lease_until` unless a
/// heartbeat extends it. The caller checks [`is_runnable`] and that it is due.
pub fn claim(
    rec: &JobRecord,
    host: &str,
    component_sha256: Option<&str>,
    lease_until: i64,
    now: i64,
) -> JobRecord {
    let mut next = rec.clone();
    next.event = Event::Started;
    next.status = Status::Running;
    next.progress = 0;
    next.description = "Job started".into();
    next.result = None;
    next.error = None;
    next.started_at = Some(now);
    next.completed_at = None;
    next.updated_at = now;
    next.runs += 1;
    // A suspended run resumes in its attempt: waking up is not a retry.
    if !rec.suspended || next.attempt == 0 {
        next.attempt += 1;
    }
    next.suspended = false;
    next.waiting_for = None;
    next.scheduled_at = None;
    next.host = Some(crate::job::Shared::new(host));
    next.component_sha256 = component_sha256.map(crate::job::Shared::new);
    next.lease_until = Some(lease_until);
    next.stop_requested = None;
    next
}

/// Whether `rec` is in run `attempt` on `host` (the compare-and-set of every run's end).
pub fn in_run(rec: &JobRecord, host: &str, attempt: u32) -> bool {
    rec.status == Status::Running && rec.attempt == attempt && rec.host.as_deref() == Some(host)
}

/// A heartbeat: the run's lease now ends at `lease_until` (never earlier than it did).
pub fn extend_lease(rec: &JobRecord, lease_until: i64) -> JobRecord {
    let mut next = rec.clone();
    next.event = Event::LeaseExtended;
    next.lease_until = Some(rec.lease_until.map_or(lease_until, |l| l.max(lease_until)));
    next
}

/// Progress reported by the running job.
pub fn progress(rec: &JobRecord, progress: u8, description: &str, now: i64) -> JobRecord {
    let mut next = rec.clone();
    next.event = Event::Progress;
    next.progress = progress.min(100);
    next.description = description.to_string();
    next.updated_at = now;
    next
}

/// The wait before attempt `attempt + 1`: `base · 2^(attempt−1)`, capped, spread by jitter.
/// `unit` is a random number in `[0, 1)` (a parameter, so that this stays pure).
pub fn backoff(policy: RetryPolicy, attempt: u32, unit: f64) -> Duration {
    let exp = attempt.saturating_sub(1).min(30);
    let wait = policy
        .base
        .saturating_mul(1u32 << exp.min(31))
        .min(policy.max);
    let spread = policy.jitter.clamp(0.0, 1.0) * (unit.clamp(0.0, 1.0) * 2.0 - 1.0);
    wait.mul_f64((1.0 + spread).max(0.0))
}

/// Whether an error is worth another attempt: the job said so, the run trapped, timed out or
/// was interrupted. Caps (fuel, memory, result size) would only be hit again.
pub fn retryable(error: &ErrorInfo) -> bool {
    error.retryable
        || matches!(
            error.kind,
            ErrorKind::Trapped | ErrorKind::TimedOut | ErrorKind::Interrupted
        )
}

/// The end of a run. Retries when the error is retryable, attempts remain and nobody asked the
/// job to stop; a delete asked during the run wins over every outcome.
pub fn end_run(
    rec: &JobRecord,
    end: RunEnd,
    now: i64,
    policy: RetryPolicy,
    unit: f64,
) -> JobRecord {
    let mut next = rec.clone();
    next.updated_at = now;
    next.lease_until = None;
    next.scheduled_at = None;
    let requested = rec.stop_requested;
    next.stop_requested = None;
    match end {
        RunEnd::Completed(result) => {
            next.event = Event::Completed;
            next.status = Status::Completed;
            next.progress = 100;
            if next.description == "Job started" {
                next.description = "Job completed".into();
            }
            next.result = Some(result);
            next.error = None;
            next.completed_at = Some(now);
        }
        RunEnd::Failed { error, description } => {
            next.errors.push(AttemptError {
                attempt: rec.attempt,
                at: now,
                error: error.clone(),
            });
            if requested.is_none() && retryable(&error) && rec.attempt < rec.max_attempts {
                schedule_retry(&mut next, &error.message, now, policy, unit);
            } else {
                next.event = Event::Failed;
                next.status = Status::Error;
                next.description = description;
                next.result = None;
                next.error = Some(Box::new(error));
                next.completed_at = Some(now);
            }
        }
        RunEnd::Suspended { wait, .. } if requested.is_none() => suspend(&mut next, wait, now),
        RunEnd::Suspended { .. } => {
            mark_stopped(&mut next, Event::Stopped, "Job stopped by user", true, now);
        }
        RunEnd::Stopped { shutdown } => {
            if requested.is_none() && shutdown {
                let error = interrupted("the host shut down while the job was running");
                next.errors.push(AttemptError {
                    attempt: rec.attempt,
                    at: now,
                    error: error.clone(),
                });
                if rec.attempt < rec.max_attempts {
                    schedule_retry(&mut next, &error.message, now, policy, unit);
                } else {
                    mark_stopped(
                        &mut next,
                        Event::Stopped,
                        "Interrupted: the host shut down",
                        true,
                        now,
                    );
                }
            } else {
                mark_stopped(&mut next, Event::Stopped, "Job stopped by user", true, now);
            }
        }
    }
    if requested == Some(StopKind::Delete) {
        next.event = Event::Deleted;
        next.status = Status::Deleted;
        next.scheduled_at = None;
        next.completed_at.get_or_insert(now);
    }
    next
}

/// The error recorded for a run that its host did not finish.
pub fn interrupted(message: &str) -> ErrorInfo {
    ErrorInfo {
        kind: ErrorKind::Interrupted,
        code: "INTERRUPTED".into(),
        message: message.into(),
        retryable: true,
    }
}

fn schedule_retry(next: &mut JobRecord, why: &str, now: i64, policy: RetryPolicy, unit: f64) {
    let wait = backoff(policy, next.attempt, unit);
    let at = now.saturating_add(wait.as_micros().min(i64::MAX as u128) as i64);
    next.event = Event::RetryScheduled;
    next.status = Status::Pending;
    next.scheduled_at = Some(at);
    next.result = None;
    next.error = None;
    next.completed_at = None;
    next.description = format!(
        "Retry {}/{} at {}: {why}",
        next.attempt + 1,
        next.max_attempts,
        rfc3339(at)
    );
}

/// Makes `rec` STOPPED; `interrupted` says whether a run was cut short.
pub fn mark_stopped(
    rec: &mut JobRecord,
    event: Event,
    description: &str,
    interrupted: bool,
    now: i64,
) {
    rec.event = event;
    rec.status = Status::Stopped;
    rec.description = description.to_string();
    rec.result = Some(Json::new(
        &serde_json::json!({"status": "stopped", "interrupted": interrupted}),
    ));
    rec.error = None;
    rec.scheduled_at = None;
    rec.lease_until = None;
    rec.stop_requested = None;
    rec.waiting_for = None;
    rec.suspended = false;
    rec.completed_at = Some(now);
    rec.updated_at = now;
}

/// How long a suspended job without a deadline (awaiting children, an event without a
/// timeout) waits before it runs again to look: a safety net, never the way it is woken.
pub const WAIT_HORIZON: Duration = Duration::from_secs(30 * 24 * 3600);

fn after(now: i64, d: Duration) -> i64 {
    now.saturating_add(d.as_micros().min(i64::MAX as u128) as i64)
}

/// A run that suspended: the job is PENDING and runnable at the end of its wait (its time, its
/// event's deadline, or [`WAIT_HORIZON`]), in the same attempt, holding no lease. A wait that
/// is over already (every awaited child ended, the event arrived) makes it due at once.
fn suspend(next: &mut JobRecord, wait: Wait, now: i64) {
    let (at, waiting) = match &wait {
        Wait::Children { remaining: 0, .. } | Wait::Dependencies { remaining: 0, .. } => {
            (now, None)
        }
        Wait::Children { .. } | Wait::Dependencies { .. } => (after(now, WAIT_HORIZON), Some(wait)),
        Wait::Until { at } => ((*at).max(now), Some(wait)),
        Wait::Event { name, .. } if next.events.contains_key(name) => (now, None),
        Wait::Event { until, .. } => (
            until.unwrap_or_else(|| after(now, WAIT_HORIZON)).max(now),
            Some(wait),
        ),
    };
    next.event = Event::Suspended;
    next.status = Status::Pending;
    next.suspended = true;
    next.description = match &waiting {
        Some(w) => w.describe(),
        None => "Resuming".into(),
    };
    next.waiting_for = waiting;
    next.scheduled_at = Some(at);
    next.result = None;
    next.error = None;
    next.completed_at = None;
}

/// `ended` children of a job ended: a job that awaits its children counts them off, and is
/// due at once when none it awaited is left. `None`: nothing to write (it does not wait).
pub fn children_ended(rec: &JobRecord, ended: u32, now: i64) -> Option<JobRecord> {
    let Some(Wait::Children { remaining, of }) = rec.waiting_for.clone() else {
        return None;
    };
    if rec.status != Status::Pending || ended == 0 {
        return None;
    }
    let mut next = rec.clone();
    next.updated_at = now;
    let left = remaining.saturating_sub(ended);
    if left == 0 {
        wake(&mut next, now);
    } else {
        let wait = Wait::Children {
            remaining: left,
            of,
        };
        next.event = Event::Suspended;
        next.description = wait.describe();
        next.waiting_for = Some(wait);
    }
    Some(next)
}

fn wake(next: &mut JobRecord, now: i64) {
    next.event = Event::Woken;
    next.waiting_for = None;
    next.scheduled_at = Some(now);
    next.description = "Resuming".into();
}

/// A durable step's result, stored while the job runs (the caller checks [`in_run`]).
pub fn store_step(rec: &JobRecord, name: &str, value: Json, now: i64) -> JobRecord {
    let mut next = rec.clone();
    next.event = Event::StepStored;
    next.steps.insert(name.to_string(), value);
    next.updated_at = now;
    next
}

/// An event sent to a job (`send_event`): kept on the job, and a job that waits for it is due
/// at once. A job that has ended takes no event.
pub fn deliver_event(
    rec: &JobRecord,
    name: &str,
    payload: Json,
    now: i64,
    by: Option<&str>,
) -> Result<JobRecord, StoreError> {
    if rec.status.is_terminal() {
        return Err(StoreError::StateInvalid {
            job_id: rec.job_id.clone(),
            action: "send an event to",
            current: rec.status,
            waiting: false,
            allowed: vec![Status::Pending, Status::Running],
        });
    }
    let mut next = rec.clone();
    next.event = Event::EventReceived;
    next.events.insert(name.to_string(), payload);
    next.updated_at = now;
    next.audited(by, AuditAction::Event, now);
    if rec.status == Status::Pending
        && matches!(&rec.waiting_for, Some(Wait::Event { name: n, .. }) if n == name)
    {
        wake(&mut next, now);
    }
    Ok(next)
}

/// A new job with dependencies (`rec`, as [`insert`] made it, started), given its
/// dependencies' records in its order: runnable at once if each has completed, waiting for
/// those still live, or ended by its policy if one ended without completing.
pub fn await_dependencies(rec: JobRecord, deps: &[&JobRecord], now: i64) -> JobRecord {
    if let Some(bad) = deps
        .iter()
        .find(|d| d.status.is_terminal() && d.status != Status::Completed)
        && rec.on_dependency_failure != DepPolicy::Run
    {
        let mut next = rec;
        dependency_failed(&mut next, bad, now);
        return next;
    }
    let live = deps.iter().filter(|d| !d.status.is_terminal()).count() as u32;
    if live == 0 || rec.scheduled_at.is_none() {
        return rec;
    }
    let mut next = rec;
    let wait = Wait::Dependencies {
        remaining: live,
        of: deps.len() as u32,
    };
    next.description = wait.describe();
    next.scheduled_at = Some(after(now, WAIT_HORIZON));
    next.waiting_for = Some(wait);
    next
}

fn dependency_failed(next: &mut JobRecord, dep: &JobRecord, now: i64) {
    let why = format!("dependency {} ended {}", dep.job_id, dep.status.as_str());
    next.updated_at = now;
    next.waiting_for = None;
    match next.on_dependency_failure {
        DepPolicy::Skip => {
            mark_stopped(next, Event::Stopped, &format!("Skipped: {why}"), false, now);
            next.result = Some(Json::new(
                &serde_json::json!({"status": "skipped", "skipped": true, "because": dep.job_id}),
            ));
        }
        DepPolicy::Fail | DepPolicy::Run => {
            let error = ErrorInfo {
                kind: ErrorKind::Failed,
                code: "DEPENDENCY_FAILED".into(),
                message: why.clone(),
                retryable: false,
            };
            next.event = Event::Failed;
            next.status = Status::Error;
            next.description = why;
            next.scheduled_at = None;
            next.result = None;
            next.error = Some(Box::new(error));
            next.completed_at = Some(now);
        }
    }
}

/// A job that another job (`dependent`) now depends on.
pub fn add_dependent(rec: &JobRecord, dependent: &str) -> JobRecord {
    let mut next = rec.clone();
    next.event = Event::Linked;
    next.dependents.push(dependent.to_string());
    next
}

/// One of `rec`'s dependencies (`dep`) ended: counted off (runnable at none left), or, if it
/// did not complete, `rec` ends by its policy (`run`: counted off all the same). `None`:
/// nothing to write (it does not wait for its dependencies).
pub fn dependency_ended(rec: &JobRecord, dep: &JobRecord, now: i64) -> Option<JobRecord> {
    let Some(Wait::Dependencies { remaining, of }) = rec.waiting_for.clone() else {
        return None;
    };
    if rec.status != Status::Pending {
        return None;
    }
    let mut next = rec.clone();
    next.updated_at = now;
    if dep.status != Status::Completed && rec.on_dependency_failure != DepPolicy::Run {
        dependency_failed(&mut next, dep, now);
        return Some(next);
    }
    let left = remaining.saturating_sub(1);
    if left == 0 {
        wake(&mut next, now);
    } else {
        let wait = Wait::Dependencies {
            remaining: left,
            of,
        };
        next.event = Event::Queued;
        next.description = wait.describe();
        next.waiting_for = Some(wait);
    }
    Some(next)
}

/// The jobs a change from `prev` to `next` must tell, because it ended `next`: its parent
/// (its children count) and its dependents.
pub fn ended_waiters<'a>(prev: Option<&JobRecord>, next: &'a JobRecord) -> Vec<&'a str> {
    let was_live = prev.is_some_and(|p| !p.status.is_terminal());
    if !(was_live && next.status.is_terminal()) {
        return Vec::new();
    }
    next.parent
        .iter()
        .chain(next.dependents.iter())
        .map(String::as_str)
        .collect()
}

/// The jobs that wait on `rec`: its parent and its dependents.
pub fn waiters(rec: &JobRecord) -> impl Iterator<Item = &str> {
    rec.parent
        .iter()
        .chain(rec.dependents.iter())
        .map(String::as_str)
}

/// What the end of `ended` (a job that just ended) does to `waiter`, one of the jobs it tells
/// ([`ended_waiters`]): counted off as a child or as a dependency.
pub fn tell_waiter(waiter: &JobRecord, ended: &JobRecord, now: i64) -> Option<JobRecord> {
    match waiter.waiting_for {
        Some(Wait::Children { .. }) if ended.parent.as_deref() == Some(&waiter.job_id) => {
            children_ended(waiter, 1, now)
        }
        Some(Wait::Dependencies { .. })
            if waiter.depends_on.iter().any(|d| d.job_id == ended.job_id) =>
        {
            dependency_ended(waiter, ended, now)
        }
        _ => None,
    }
}

/// Whether `rec` is the child that `job` asks to enqueue again (same id, same parent): a
/// re-run of the parent gets that job back rather than a second one.
pub fn same_child(rec: &JobRecord, job: &NewJob) -> bool {
    job.parent.is_some() && rec.parent == job.parent && rec.job_type == job.job_type
}

/// What a stop (or delete) request does to a job.
#[derive(Debug, Clone, PartialEq)]
pub enum Stop {
    /// The job did not run: this is its final record.
    Ended(JobRecord),
    /// The job runs: this record carries the request; its host ends the run.
    Signal(JobRecord),
    /// Nothing to do (deleting a deleted job; a second request while one is pending).
    Unchanged,
}

/// A stop or delete request. Stopping a job that has ended is refused; deleting works in every
/// state (a running job is stopped first). `by` (a key's name) is recorded in the job's audit
/// when the request changes the job.
pub fn request_stop(
    rec: &JobRecord,
    kind: StopKind,
    now: i64,
    by: Option<&str>,
) -> Result<Stop, StoreError> {
    let action = match kind {
        StopKind::Stop => AuditAction::Stop,
        StopKind::Delete => AuditAction::Delete,
    };
    Ok(match stop_transition(rec, kind, now)? {
        Stop::Ended(mut next) => {
            next.audited(by, action, now);
            Stop::Ended(next)
        }
        Stop::Signal(mut next) => {
            next.audited(by, action, now);
            Stop::Signal(next)
        }
        Stop::Unchanged => Stop::Unchanged,
    })
}

fn stop_transition(rec: &JobRecord, kind: StopKind, now: i64) -> Result<Stop, StoreError> {
    match (rec.status, kind) {
        (Status::Running, _) => {
            let kind = match (rec.stop_requested, kind) {
                (Some(StopKind::Delete), _) => StopKind::Delete,
                _ => kind,
            };
            if rec.stop_requested == Some(kind) {
                return Ok(Stop::Unchanged);
            }
            let mut next = rec.clone();
            next.event = Event::StopRequested;
            next.stop_requested = Some(kind);
            next.updated_at = now;
            Ok(Stop::Signal(next))
        }
        (Status::Deleted, StopKind::Delete) => Ok(Stop::Unchanged),
        (status, StopKind::Stop) if status.is_terminal() => Err(StoreError::StateInvalid {
            job_id: rec.job_id.clone(),
            action: "stop",
            current: status,
            waiting: false,
            allowed: vec![Status::Pending, Status::Running],
        }),
        (_, StopKind::Stop) => {
            let mut next = rec.clone();
            mark_stopped(&mut next, Event::Stopped, "Job stopped by user", false, now);
            Ok(Stop::Ended(next))
        }
        (_, StopKind::Delete) => {
            let mut next = rec.clone();
            next.event = Event::Deleted;
            next.status = Status::Deleted;
            next.scheduled_at = None;
            next.updated_at = now;
            Ok(Stop::Ended(next))
        }
    }
}

/// A run whose lease expired (its host died or lost the store): retried if attempts remain and
/// nobody asked it to stop, else STOPPED with `result.interrupted = true` (DELETED if a delete
/// was asked).
pub fn rescue(rec: &JobRecord, now: i64, policy: RetryPolicy, unit: f64) -> JobRecord {
    let mut next = rec.clone();
    next.lease_until = None;
    next.updated_at = now;
    let error = interrupted("the host running the job stopped before the job ended");
    match rec.stop_requested {
        Some(StopKind::Delete) => {
            next.event = Event::Deleted;
            next.status = Status::Deleted;
            next.stop_requested = None;
            next.completed_at = Some(now);
        }
        Some(StopKind::Stop) => {
            mark_stopped(
                &mut next,
                Event::Interrupted,
                "Job stopped by user",
                true,
                now,
            );
        }
        None => {
            next.errors.push(AttemptError {
                attempt: rec.attempt,
                at: now,
                error: error.clone(),
            });
            if rec.attempt < rec.max_attempts {
                schedule_retry(&mut next, &error.message, now, policy, unit);
                next.event = Event::Rescued;
            } else {
                mark_stopped(
                    &mut next,
                    Event::Interrupted,
                    "Interrupted: the host stopped while the job was running",
                    true,
                    now,
                );
            }
        }
    }
    next
}

/// The last record of a job removed by retention.
pub fn purge(rec: &JobRecord, now: i64) -> JobRecord {
    let mut next = rec.clone();
    next.event = Event::Purged;
    next.updated_at = now;
    next.result = None;
    next.params = Json::null();
    next.errors.clear();
    next
}

/// RFC 3339 with milliseconds, UTC.
pub fn rfc3339(micros: i64) -> String {
    chrono::DateTime::<chrono::Utc>::from_timestamp_micros(micros)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(max_attempts: u32) -> JobRecord {
        insert(
            &NewJob {
                job_id: "j".into(),
                job_type: "noop".into(),
                params: Json::null(),
                priority: 0,
                max_attempts,
                run_at: None,
                unique_key: None,
                start: false,
                schedule: None,
                queue: "default".into(),
                concurrency_key: None,
                as_command: false,
                added_by: None,
                traceparent: None,
                parent: None,
                depends_on: Vec::new(),
                on_dependency_failure: crate::job::DepPolicy::Fail,
            },
            1_000,
        )
    }

    fn no_jitter() -> RetryPolicy {
        RetryPolicy {
            base: Duration::from_millis(100),
            max: Duration::from_secs(1),
            jitter: 0.0,
        }
    }

    fn failure(kind: ErrorKind, retryable: bool) -> RunEnd {
        RunEnd::Failed {
            error: ErrorInfo {
                kind,
                code: "X".into(),
                message: "boom".into(),
                retryable,
            },
            description: "boom".into(),
        }
    }

    #[test]
    fn a_new_job_is_pending_and_not_runnable_until_started() {
        let j = job(1);
        assert_eq!(j.status, Status::Pending);
        assert!(!is_runnable(&j));
        let s = start(&j, 2_000, None).unwrap();
        assert!(is_runnable(&s));
        assert_eq!(s.scheduled_at, Some(2_000));
        assert_eq!(s.description, WAITING);
        assert_eq!(s.event, Event::Queued);
    }

    #[test]
    fn a_start_before_run_at_waits_for_it() {
        let mut j = job(1);
        j.run_at = Some(10_000_000);
        let s = start(&j, 2_000, None).unwrap();
        assert_eq!(s.scheduled_at, Some(10_000_000));
        assert!(
            s.description.starts_with("Scheduled for "),
            "{}",
            s.description
        );
    }

    #[test]
    fn a_second_start_and_a_start_of_a_running_job_are_refused() {
        let s = start(&job(1), 2, None).unwrap();
        assert!(matches!(
            start(&s, 3, None),
            Err(StoreError::StateInvalid { waiting: true, .. })
        ));
        let r = claim(&s, "h", Some("ab12"), 100, 3);
        assert_eq!(r.component_sha256.as_deref(), Some("ab12"));
        assert!(matches!(
            start(&r, 4, None),
            Err(StoreError::StateInvalid {
                waiting: false,
                current: Status::Running,
                ..
            })
        ));
    }

    #[test]
    fn a_claim_runs_the_next_attempt_under_a_lease() {
        let r = claim(&start(&job(3), 2, None).unwrap(), "h1", None, 500, 3);
        assert_eq!(r.status, Status::Running);
        assert_eq!((r.attempt, r.runs), (1, 1));
        assert_eq!(r.host.as_deref(), Some("h1"));
        assert_eq!(r.lease_until, Some(500));
        assert_eq!(r.scheduled_at, None);
        assert!(in_run(&r, "h1", 1));
        assert!(!in_run(&r, "h2", 1));
        assert!(!in_run(&r, "h1", 2));
        assert_eq!(extend_lease(&r, 400).lease_until, Some(500));
        assert_eq!(extend_lease(&r, 900).lease_until, Some(900));
    }

    #[test]
    fn a_retryable_failure_is_retried_until_attempts_run_out() {
        let r1 = claim(&start(&job(2), 2, None).unwrap(), "h", None, 500, 3);
        let p = end_run(&r1, failure(ErrorKind::Failed, true), 10, no_jitter(), 0.5);
        assert_eq!(p.status, Status::Pending);
        assert_eq!(p.event, Event::RetryScheduled);
        assert_eq!(p.scheduled_at, Some(10 + 100_000));
        assert_eq!(p.errors.len(), 1);
        assert!(is_runnable(&p));
        let r2 = claim(&p, "h", None, 900, 200_000);
        assert_eq!(r2.attempt, 2);
        let e = end_run(
            &r2,
            failure(ErrorKind::Failed, true),
            300_000,
            no_jitter(),
            0.5,
        );
        assert_eq!(e.status, Status::Error);
        assert_eq!(
            e.errors.iter().map(|e| e.attempt).collect::<Vec<_>>(),
            [1, 2]
        );
        assert_eq!(e.description, "boom");
    }

    #[test]
    fn traps_and_timeouts_are_retried_caps_are_not() {
        let r = claim(&start(&job(3), 2, None).unwrap(), "h", None, 500, 3);
        for (kind, retried) in [
            (ErrorKind::Trapped, true),
            (ErrorKind::TimedOut, true),
            (ErrorKind::OutOfFuel, false),
            (ErrorKind::OutOfMemory, false),
            (ErrorKind::CapExceeded, false),
            (ErrorKind::Failed, false),
        ] {
            let e = end_run(&r, failure(kind, false), 10, no_jitter(), 0.5);
            assert_eq!(e.status == Status::Pending, retried, "{kind}");
        }
    }

    #[test]
    fn a_stop_or_delete_is_never_retried() {
        let r = claim(&start(&job(5), 2, None).unwrap(), "h", None, 500, 3);
        let Ok(Stop::Signal(s)) = request_stop(&r, StopKind::Stop, 4, None) else {
            panic!()
        };
        let e = end_run(&s, failure(ErrorKind::Failed, true), 10, no_jitter(), 0.5);
        assert_eq!(e.status, Status::Error);
        let st = end_run(
            &s,
            RunEnd::Stopped { shutdown: false },
            10,
            no_jitter(),
            0.5,
        );
        assert_eq!(st.status, Status::Stopped);
        let Ok(Stop::Signal(d)) = request_stop(&s, StopKind::Delete, 5, None) else {
            panic!()
        };
        // A delete wins even over a completion; a later stop does not undo it.
        assert_eq!(
            request_stop(&d, StopKind::Stop, 6, None).unwrap(),
            Stop::Unchanged
        );
        let done = end_run(&d, RunEnd::Completed(Json::null()), 10, no_jitter(), 0.5);
        assert_eq!(done.status, Status::Deleted);
    }

    #[test]
    fn a_shutdown_interrupts_and_retries_when_attempts_remain() {
        let r = claim(&start(&job(1), 2, None).unwrap(), "h", None, 500, 3);
        let s = end_run(&r, RunEnd::Stopped { shutdown: true }, 10, no_jitter(), 0.5);
        assert_eq!(s.status, Status::Stopped);
        assert_eq!(s.description, "Interrupted: the host shut down");
        let r = claim(&start(&job(2), 2, None).unwrap(), "h", None, 500, 3);
        let s = end_run(&r, RunEnd::Stopped { shutdown: true }, 10, no_jitter(), 0.5);
        assert_eq!(s.status, Status::Pending);
        assert_eq!(s.errors[0].error.kind, ErrorKind::Interrupted);
    }

    #[test]
    fn stopping_a_pending_job_ends_it_and_an_ended_one_is_refused() {
        let Ok(Stop::Ended(s)) = request_stop(&job(1), StopKind::Stop, 4, None) else {
            panic!()
        };
        assert_eq!(s.status, Status::Stopped);
        assert!(request_stop(&s, StopKind::Stop, 5, None).is_err());
        let Ok(Stop::Ended(d)) = request_stop(&s, StopKind::Delete, 6, None) else {
            panic!()
        };
        assert_eq!(d.status, Status::Deleted);
        assert_eq!(
            request_stop(&d, StopKind::Delete, 7, None).unwrap(),
            Stop::Unchanged
        );
        // A stopped job can be started again, as a fresh series of attempts.
        let again = start(&s, 8, None).unwrap();
        assert_eq!(again.attempt, 0);
    }

    #[test]
    fn a_rescue_retries_or_marks_interrupted() {
        let r = claim(&start(&job(1), 2, None).unwrap(), "h", None, 500, 3);
        let s = rescue(&r, 600, no_jitter(), 0.5);
        assert_eq!(s.status, Status::Stopped);
        assert_eq!(s.result.as_ref().unwrap().to_value()["interrupted"], true);
        let r = claim(&start(&job(2), 2, None).unwrap(), "h", None, 500, 3);
        let s = rescue(&r, 600, no_jitter(), 0.5);
        assert_eq!(s.status, Status::Pending);
        assert_eq!(s.event, Event::Rescued);
        let Ok(Stop::Signal(d)) = request_stop(&r, StopKind::Delete, 4, None) else {
            panic!()
        };
        assert_eq!(rescue(&d, 600, no_jitter(), 0.5).status, Status::Deleted);
    }

    #[test]
    fn backoff_doubles_is_capped_and_jittered() {
        let p = RetryPolicy {
            base: Duration::from_secs(1),
            max: Duration::from_secs(10),
            jitter: 0.2,
        };
        assert_eq!(backoff(p, 1, 0.5), Duration::from_secs(1));
        assert_eq!(backoff(p, 2, 0.5), Duration::from_secs(2));
        assert_eq!(backoff(p, 3, 0.5), Duration::from_secs(4));
        assert_eq!(backoff(p, 30, 0.5), Duration::from_secs(10));
        assert_eq!(backoff(p, 1, 0.0), Duration::from_millis(800));
        assert!(backoff(p, 1, 0.999) > Duration::from_millis(1190));
    }

    fn suspended(wait: Wait) -> JobRecord {
        let r = claim(&start(&job(1), 2, None).unwrap(), "h1", None, 500, 3);
        end_run(
            &r,
            RunEnd::Suspended {
                wait,
                awaiting: Vec::new(),
            },
            10,
            no_jitter(),
            0.5,
        )
    }

    #[test]
    fn a_suspended_run_waits_without_a_lease_and_resumes_in_its_attempt() {
        let s = suspended(Wait::Children {
            remaining: 2,
            of: 3,
        });
        assert_eq!(s.status, Status::Pending);
        assert!(s.suspended);
        assert_eq!(s.lease_until, None);
        assert_eq!(s.description, "Waiting for 2 of 3 child jobs");
        assert!(
            s.scheduled_at.is_some_and(|t| t > 10 + 86_400_000_000),
            "not due: it looks again only after the horizon"
        );
        assert!(start(&s, 11, None).is_err(), "started already");
        let one = children_ended(&s, 1, 12).unwrap();
        assert_eq!(
            one.waiting_for,
            Some(Wait::Children {
                remaining: 1,
                of: 3
            })
        );
        let woken = children_ended(&one, 1, 13).unwrap();
        assert_eq!(woken.waiting_for, None);
        assert_eq!(woken.scheduled_at, Some(13));
        assert!(children_ended(&woken, 1, 14).is_none(), "not waiting");
        let again = claim(&woken, "h2", None, 900, 15);
        assert_eq!((again.attempt, again.runs), (1, 2));
        assert!(!again.suspended);
        // A retry after the resumption is the next attempt.
        let failed = end_run(
            &again,
            RunEnd::Failed {
                error: interrupted("x"),
                description: "x".into(),
            },
            16,
            no_jitter(),
            0.5,
        );
        assert_eq!(failed.status, Status::Error, "1 attempt allowed");
    }

    #[test]
    fn a_wait_that_is_over_already_is_due_at_once() {
        let s = suspended(Wait::Children {
            remaining: 0,
            of: 2,
        });
        assert_eq!((s.waiting_for.clone(), s.scheduled_at), (None, Some(10)));
        let until = suspended(Wait::Until { at: 5_000 });
        assert_eq!(until.scheduled_at, Some(5_000));
        let r = claim(&start(&job(1), 2, None).unwrap(), "h1", None, 500, 3);
        let r = deliver_event(&r, "go", Json::null(), 4, Some("ops")).unwrap();
        assert_eq!(r.status, Status::Running, "kept for the wait");
        let s = end_run(
            &r,
            RunEnd::Suspended {
                wait: Wait::Event {
                    name: "go".into(),
                    until: None,
                },
                awaiting: Vec::new(),
            },
            10,
            no_jitter(),
            0.5,
        );
        assert_eq!((s.waiting_for, s.scheduled_at), (None, Some(10)));
    }

    #[test]
    fn an_event_wakes_only_a_job_waiting_for_it_and_an_ended_job_takes_none() {
        let s = suspended(Wait::Event {
            name: "go".into(),
            until: Some(99_000),
        });
        assert_eq!(s.scheduled_at, Some(99_000), "its deadline");
        let other = deliver_event(&s, "other", Json::null(), 20, None).unwrap();
        assert!(other.waiting_for.is_some());
        let woken = deliver_event(&other, "go", Json::null(), 21, None).unwrap();
        assert_eq!(
            (woken.waiting_for.clone(), woken.scheduled_at),
            (None, Some(21))
        );
        assert_eq!(woken.events.len(), 2);
        let stopped = match request_stop(&s, StopKind::Stop, 30, None).unwrap() {
            Stop::Ended(r) => r,
            other => panic!("{other:?}"),
        };
        assert_eq!(stopped.status, Status::Stopped);
        assert!(stopped.waiting_for.is_none() && !stopped.suspended);
        assert!(deliver_event(&stopped, "go", Json::null(), 31, None).is_err());
        assert!(ended_waiters(Some(&s), &stopped).is_empty(), "not a child");
        let child = JobRecord {
            parent: Some("p".into()),
            ..s.clone()
        };
        let ended = JobRecord {
            parent: Some("p".into()),
            ..stopped
        };
        assert_eq!(ended_waiters(Some(&child), &ended), ["p"]);
        assert!(
            ended_waiters(Some(&ended), &ended).is_empty(),
            "ended before"
        );
    }
}
