//! The record of one job, as stored after each transition.

use super::error::{AttemptError, ErrorInfo};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use std::collections::BTreeMap;

/// JSON kept as its text (params and results): parsed only when shown, so replaying a
/// million records builds no JSON trees and a record costs little more than its text.
#[derive(Clone, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Json(Box<RawValue>);

impl Json {
    /// The text of a JSON value.
    pub fn new(v: &serde_json::Value) -> Json {
        match serde_json::value::to_raw_value(v) {
            Ok(raw) => Json(raw),
            Err(_) => Json::null(),
        }
    }

    /// JSON text as given, if it is valid JSON; otherwise gives the text back.
    pub fn from_text(text: String) -> Result<Json, String> {
        match RawValue::from_string(text.clone()) {
            Ok(raw) => Ok(Json(raw)),
            Err(_) => Err(text),
        }
    }

    /// `null`.
    pub fn null() -> Json {
        Json(RawValue::NULL.to_owned())
    }

    /// The JSON text.
    pub fn as_str(&self) -> &str {
        self.0.get()
    }

    /// The parsed value (`null` if the text were somehow not JSON).
    pub fn to_value(&self) -> serde_json::Value {
        serde_json::from_str(self.0.get()).unwrap_or(serde_json::Value::Null)
    }
}

impl Default for Json {
    fn default() -> Self {
        Json::null()
    }
}

impl PartialEq for Json {
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Eq for Json {}

impl std::fmt::Debug for Json {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Text that many records hold alike — a host's id, a component's SHA-256 — kept once in
/// memory for all of them (a table of 100,000 jobs that ran on one host with one component
/// holds one copy of each, not 100,000: ~130 bytes a job). Serialised as a plain string.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Shared(std::sync::Arc<str>);

/// Most distinct [`Shared`] texts kept in the pool; past it, new ones are not pooled.
const SHARED_POOL_MAX: usize = 4096;

impl Shared {
    /// The pooled copy of `s`.
    pub fn new(s: &str) -> Shared {
        use std::collections::HashSet;
        use std::sync::{Arc, Mutex, OnceLock};
        static POOL: OnceLock<Mutex<HashSet<Arc<str>>>> = OnceLock::new();
        let pool = POOL.get_or_init(Mutex::default);
        let mut pool = pool.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(a) = pool.get(s) {
            return Shared(a.clone());
        }
        let a: Arc<str> = Arc::from(s);
        if pool.len() < SHARED_POOL_MAX {
            pool.insert(a.clone());
        }
        Shared(a)
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl From<&str> for Shared {
    fn from(s: &str) -> Shared {
        Shared::new(s)
    }
}

impl std::ops::Deref for Shared {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(&*self.0, f)
    }
}

impl std::fmt::Display for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl Serialize for Shared {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Shared {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Shared, D::Error> {
        let s = std::borrow::Cow::<'de, str>::deserialize(d)?;
        Ok(Shared::new(&s))
    }
}

/// A job's status, spelled as the original queuemgr spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Status {
    /// Added, not running: never started, or started and waiting for a free slot.
    Pending,
    /// Running now.
    Running,
    /// Ended with a result.
    Completed,
    /// Ended with an error (the guest's own, a trap, a cap, a timeout).
    Error,
    /// Stopped by request, or interrupted by a host crash.
    Stopped,
    /// Soft-deleted.
    Deleted,
}

impl Status {
    /// Every status, in lifecycle order.
    pub const ALL: [Status; 6] = [
        Status::Pending,
        Status::Running,
        Status::Completed,
        Status::Error,
        Status::Stopped,
        Status::Deleted,
    ];

    /// `PENDING`, `RUNNING`, …: the seed's `queue` command.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pending => "PENDING",
            Status::Running => "RUNNING",
            Status::Completed => "COMPLETED",
            Status::Error => "ERROR",
            Status::Stopped => "STOPPED",
            Status::Deleted => "DELETED",
        }
    }

    /// `pending`, `running`, `completed`, `failed`, `stopped`, `deleted`: the framework's
    /// `queue_*` commands.
    pub fn framework_name(self) -> &'static str {
        match self {
            Status::Pending => "pending",
            Status::Running => "running",
            Status::Completed => "completed",
            Status::Error => "failed",
            Status::Stopped => "stopped",
            Status::Deleted => "deleted",
        }
    }

    /// Parses either spelling (case-insensitive; `failed` and `error` both mean [`Status::Error`]).
    pub fn parse(s: &str) -> Option<Status> {
        match s.to_ascii_lowercase().as_str() {
            "pending" => Some(Status::Pending),
            "running" => Some(Status::Running),
            "completed" => Some(Status::Completed),
            "error" | "failed" => Some(Status::Error),
            "stopped" => Some(Status::Stopped),
            "deleted" => Some(Status::Deleted),
            _ => None,
        }
    }

    /// True once the job has ended (completed, error, stopped, deleted).
    pub fn is_terminal(self) -> bool {
        !matches!(self, Status::Pending | Status::Running)
    }
}

/// The transition a record was written for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Event {
    /// `add_job`.
    Created,
    /// `start_job` while every slot was busy: waiting its turn.
    Queued,
    /// The job began running.
    Started,
    /// Progress while running (written at a bounded rate).
    Progress,
    /// Ended with a result.
    Completed,
    /// Ended with an error.
    Failed,
    /// Stopped by request.
    Stopped,
    /// Found RUNNING at start-up: the host had died under it.
    Interrupted,
    /// Soft-deleted.
    Deleted,
    /// Removed by retention: replay forgets the job.
    Purged,
    /// A failed or interrupted run that will be tried again at `scheduled_at`.
    RetryScheduled,
    /// A stop (or delete) was asked of a running job; its host ends the run.
    StopRequested,
    /// A heartbeat extended the run's lease.
    LeaseExtended,
    /// The host that ran the job lost its lease (it died or lost the store): the run was
    /// taken back by the rescuer.
    Rescued,
    /// The run suspended: the job waits (children, a time, an event) holding no instance.
    Suspended,
    /// What a suspended job waited for happened: it runs again.
    Woken,
    /// A durable step's result was stored.
    StepStored,
    /// An event was sent to the job.
    EventReceived,
    /// A job that depends on it was added.
    Linked,
}

/// A job's whole state after one transition. Times are microseconds since the Unix epoch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobRecord {
    /// The transition this record was written for.
    pub event: Event,
    /// The job's id.
    pub job_id: String,
    /// The job type (a loaded component's file stem).
    pub job_type: String,
    /// Status after the transition.
    pub status: Status,
    /// Last reported progress, 0..=100.
    pub progress: u8,
    /// Last reported description.
    pub description: String,
    /// The params the job was added with.
    #[serde(default)]
    pub params: Json,
    /// The result (COMPLETED), or what a stop left (STOPPED).
    #[serde(default)]
    pub result: Option<Json>,
    /// Why it failed (ERROR).
    #[serde(default)]
    pub error: Option<Box<ErrorInfo>>,
    /// When it was added.
    pub created_at: i64,
    /// When this record was written.
    pub updated_at: i64,
    /// When it last started running.
    #[serde(default)]
    pub started_at: Option<i64>,
    /// When it last ended.
    #[serde(default)]
    pub completed_at: Option<i64>,
    /// How many times it was started.
    #[serde(default)]
    pub runs: u32,
    /// Higher runs first among runnable jobs.
    #[serde(default, skip_serializing_if = "is_zero_i32")]
    pub priority: i32,
    /// Runs allowed for one start (1 = no retries).
    #[serde(default = "one", skip_serializing_if = "is_one")]
    pub max_attempts: u32,
    /// The current (or last) run's number within this start, 1-based; 0 before any run.
    #[serde(default, skip_serializing_if = "is_zero_u32")]
    pub attempt: u32,
    /// Earliest time the job may run, asked for when it was added.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_at: Option<i64>,
    /// Set while the job is runnable (started, waiting for a slot, its time or a retry): when
    /// it may run. `None` for a job nobody started and for a job that runs or has ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheduled_at: Option<i64>,
    /// While the job is not in a terminal state, a second add with this key returns this job.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unique_key: Option<String>,
    /// The schedule and slot that enqueued it (periodic jobs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<Box<crate::schedule::SlotRef>>,
    /// The named queue it belongs to (see [`crate::limits`]).
    #[serde(default = "default_queue", skip_serializing_if = "is_default_queue")]
    pub queue: String,
    /// Jobs with the same key (in one queue) share the queue's per-key concurrency limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub concurrency_key: Option<String>,
    /// Added as a queued command: its job type called by name (JSON-RPC or a `/ws` command
    /// session). The framework's status shape then wraps its result as a command's result.
    #[serde(default, skip_serializing_if = "is_false")]
    pub as_command: bool,
    /// The host that runs (or last ran) the job.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<Shared>,
    /// SHA-256 (hex) of the component the current or last run was claimed with: which code
    /// ran the job, whichever host ran it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub component_sha256: Option<Shared>,
    /// While RUNNING: the run belongs to `host` until then; heartbeats extend it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease_until: Option<i64>,
    /// Set while RUNNING once a stop or delete was asked: the run's end records it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_requested: Option<StopKind>,
    /// Every failed attempt's error, oldest first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<AttemptError>,
    /// The name of the key that added it (none on an API without keys); pooled, as a few keys
    /// add many jobs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub added_by: Option<Shared>,
    /// Who started, stopped, restarted or deleted it, oldest first (the last [`AUDIT_KEEP`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub audit: Vec<AuditEntry>,
    /// The W3C trace context of the add's `job.enqueue` span, when traces are on: each run's
    /// spans join this trace (see [`crate::telemetry`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traceparent: Option<String>,
    /// The job whose run enqueued it (a child job; see `docs/workflows.md`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<String>,
    /// While the job is suspended (PENDING, holding no instance and no slot): what it waits for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub waiting_for: Option<Wait>,
    /// Its last run suspended: the next claim resumes it in the same attempt (a resumption is
    /// not a retry).
    #[serde(default, skip_serializing_if = "is_false")]
    pub suspended: bool,
    /// The stored results of the job's durable steps, by name (JSON): a run after a retry, a
    /// rescue or a wake-up gets each at once instead of running the step again.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub steps: BTreeMap<String, Json>,
    /// Events sent to the job (`send_event`), by name, with their payloads: kept until the job
    /// ends, so that an event sent before the job waits for it is not lost.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub events: BTreeMap<String, Json>,
    /// The jobs it runs after (`depends_on`), each with its key in the flow (its `inputs`
    /// name).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub depends_on: Vec<Dependency>,
    /// What a dependency that does not complete does to it.
    #[serde(default, skip_serializing_if = "DepPolicy::is_default")]
    pub on_dependency_failure: DepPolicy,
    /// The jobs that depend on it (counted off when it ends).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dependents: Vec<String>,
}

/// A job another job runs after.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dependency {
    /// Its name in the dependent's `inputs` (its key in an `add_flow`, else its id).
    pub key: String,
    /// Its id.
    pub job_id: String,
}

/// What a dependency that ends without completing (ERROR, STOPPED, DELETED) does to the jobs
/// that depend on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DepPolicy {
    /// The dependent fails too (ERROR, `DEPENDENCY_FAILED`), and so on down the graph.
    #[default]
    Fail,
    /// The dependent runs anyway (its `inputs` miss that dependency's result).
    Run,
    /// The dependent is skipped (STOPPED, `result.skipped = true`), and so on down the graph.
    Skip,
}

impl DepPolicy {
    fn is_default(&self) -> bool {
        *self == DepPolicy::Fail
    }

    /// Parses `fail`, `run` or `skip`.
    pub fn parse(s: &str) -> Option<DepPolicy> {
        match s {
            "fail" => Some(DepPolicy::Fail),
            "run" => Some(DepPolicy::Run),
            "skip" => Some(DepPolicy::Skip),
            _ => None,
        }
    }
}

/// What a suspended job waits for. The job is PENDING meanwhile: it holds no instance, no slot
/// and no lease, exactly like a job waiting for a retry; it runs again (the same attempt) when
/// the wait ends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Wait {
    /// Children it awaits: woken when `remaining` of them have ended (any child's end counts;
    /// the woken run looks again and waits again if one it awaits is still live).
    Children {
        /// Awaited children still live when it suspended, less the ends since.
        remaining: u32,
        /// How many it awaits.
        of: u32,
    },
    /// A time (µs since the epoch): `sleep-until`.
    Until {
        /// When it wakes.
        at: i64,
    },
    /// Its dependencies (`depends_on`): runnable once `remaining` have ended.
    Dependencies {
        /// Dependencies still live.
        remaining: u32,
        /// How many it has.
        of: u32,
    },
    /// An event by name (`send_event`), until a deadline if it has one.
    Event {
        /// The event's name.
        name: String,
        /// When the wait times out (µs since the epoch).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        until: Option<i64>,
    },
}

impl Wait {
    /// A one-line description for people (`waiting for 3 of 10 children`).
    pub fn describe(&self) -> String {
        match self {
            Wait::Children { remaining, of } => {
                format!("Waiting for {remaining} of {of} child jobs")
            }
            Wait::Dependencies { remaining, of } => {
                format!("Waiting for {remaining} of {of} dependencies")
            }
            Wait::Until { at } => {
                format!("Sleeping until {}", crate::store::transitions::rfc3339(*at))
            }
            Wait::Event { name, until: None } => format!("Waiting for event '{name}'"),
            Wait::Event {
                name,
                until: Some(t),
            } => format!(
                "Waiting for event '{name}' until {}",
                crate::store::transitions::rfc3339(*t)
            ),
        }
    }
}

/// How many [`AuditEntry`]s a job keeps: the oldest go first.
pub const AUDIT_KEEP: usize = 50;

/// One action of a person or program on a job, and whose key sent it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntry {
    /// When, µs since the epoch.
    pub at: i64,
    /// The key's name.
    pub key: String,
    /// What it did.
    pub action: AuditAction,
}

/// What an [`AuditEntry`] records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuditAction {
    /// Started a job nobody had started.
    Start,
    /// Started a STOPPED job again.
    Restart,
    /// Asked it to stop.
    Stop,
    /// Deleted it.
    Delete,
    /// Sent it an event.
    Event,
}

impl JobRecord {
    /// Records that `key` did `action` at `at` (keeping the last [`AUDIT_KEEP`] entries).
    pub fn audited(&mut self, key: Option<&str>, action: AuditAction, at: i64) {
        let Some(key) = key else { return };
        if self.audit.len() >= AUDIT_KEEP {
            self.audit.remove(0);
        }
        self.audit.push(AuditEntry {
            at,
            key: key.to_string(),
            action,
        });
    }
}

/// What a stop request asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StopKind {
    /// End the run; the job reads STOPPED.
    Stop,
    /// End the run; the job reads DELETED.
    Delete,
}

fn default_queue() -> String {
    crate::limits::DEFAULT_QUEUE.to_string()
}
fn is_default_queue(q: &str) -> bool {
    q == crate::limits::DEFAULT_QUEUE
}
fn is_false(v: &bool) -> bool {
    !*v
}
fn one() -> u32 {
    1
}
fn is_one(v: &u32) -> bool {
    *v == 1
}
fn is_zero_u32(v: &u32) -> bool {
    *v == 0
}
fn is_zero_i32(v: &i32) -> bool {
    *v == 0
}

impl Default for JobRecord {
    /// A PENDING job with no id, type or times: a base for struct-update syntax.
    fn default() -> Self {
        JobRecord {
            event: Event::Created,
            job_id: String::new(),
            job_type: String::new(),
            status: Status::Pending,
            progress: 0,
            description: String::new(),
            params: Json::null(),
            result: None,
            error: None,
            created_at: 0,
            updated_at: 0,
            started_at: None,
            completed_at: None,
            runs: 0,
            priority: 0,
            max_attempts: 1,
            attempt: 0,
            run_at: None,
            scheduled_at: None,
            unique_key: None,
            schedule: None,
            queue: default_queue(),
            concurrency_key: None,
            as_command: false,
            host: None,
            component_sha256: None,
            lease_until: None,
            stop_requested: None,
            errors: Vec::new(),
            added_by: None,
            audit: Vec::new(),
            traceparent: None,
            parent: None,
            waiting_for: None,
            suspended: false,
            steps: BTreeMap::new(),
            events: BTreeMap::new(),
            depends_on: Vec::new(),
            on_dependency_failure: DepPolicy::Fail,
            dependents: Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Equal texts share one allocation, through the constructor and through serde, and
    /// serialise as plain strings.
    #[test]
    fn shared_texts_are_one_copy_and_plain_strings() {
        let a = Shared::new("host-a");
        let b: Shared = serde_json::from_str("\"host-a\"").unwrap();
        assert!(std::sync::Arc::ptr_eq(&a.0, &b.0));
        assert_eq!(serde_json::to_string(&b).unwrap(), "\"host-a\"");
        assert_eq!(&*a, "host-a");
        let rec: JobRecord = serde_json::from_str(
            r#"{"event":"started","job_id":"j","job_type":"noop","status":"RUNNING","progress":0,
            "description":"","created_at":0,"updated_at":0,"host":"host-a","component_sha256":"ab"}"#,
        )
        .unwrap();
        assert!(std::sync::Arc::ptr_eq(&rec.host.unwrap().0, &a.0));
    }
}
