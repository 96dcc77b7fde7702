//! Each command's params as a typed struct. The struct is the one source of its command's
//! published schema (`/commands`, `/openapi.json`, `help`, the MCP tools' input schemas) and of
//! what a handler reads: [`schema_of`] derives the schema (schemars), the validator checks a
//! request against it with the framework's error messages, and serde then reads the request
//! into the struct.
//!
//! Field docs are the published descriptions; `#[schemars(...)]` bounds are the published
//! bounds. The enums' variants carry no doc comments on purpose: schemars would publish a
//! `oneOf` with one description per value instead of a plain `enum`.

use crate::job::Status;
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Map, Value};

/// A JSON object (job params): what the schema publishes for them. The structs hold them as a
/// `Value` (already checked to be an object), which moves into the job rather than being
/// rebuilt key by key.
pub type Object = Map<String, Value>;

/// The schema of `T` as the API publishes it: inline, without meta keys (`$schema`, `title`,
/// `format`, `default`), an optional field as its type alone (absent, not null), an object
/// that admits no unknown key listing its (maybe empty) `properties`, and the params structs'
/// own docs (at the root and on a list's items) left to the code: the fields' docs are the
/// published descriptions.
pub fn schema_of<T: JsonSchema>() -> Value {
    let generator = schemars::generate::SchemaSettings::draft2020_12()
        .with(|s| s.inline_subschemas = true)
        .into_generator();
    let mut schema = generator.into_root_schema_for::<T>().to_value();
    tidy(&mut schema);
    if let Value::Object(root) = &mut schema {
        root.remove("description");
        if let Some(Value::Object(props)) = root.get_mut("properties") {
            for prop in props.values_mut() {
                if let Some(Value::Object(items)) = prop.get_mut("items") {
                    items.remove("description");
                }
            }
        }
    }
    schema
}

fn tidy(v: &mut Value) {
    match v {
        Value::Object(m) => {
            for key in ["$schema", "title", "format", "default"] {
                m.remove(key);
            }
            if let Some(Value::Array(types)) = m.get("type") {
                let kept: Vec<Value> = types.iter().filter(|t| *t != "null").cloned().collect();
                if kept.len() == 1 {
                    m.insert("type".into(), kept[0].clone());
                }
            }
            if let Some(Value::Array(options)) = m.get_mut("enum") {
                options.retain(|o| !o.is_null());
            }
            if m.get("additionalProperties") == Some(&Value::Bool(true)) {
                m.remove("additionalProperties");
            }
            if m.get("additionalProperties") == Some(&Value::Bool(false))
                && !m.contains_key("properties")
            {
                m.insert("properties".into(), Value::Object(Map::new()));
            }
            for (_, child) in m.iter_mut() {
                tidy(child);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(tidy),
        _ => {}
    }
}

/// The seed's `queue` actions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum QueueAction {
    AddJob,
    AddJobs,
    StartJob,
    StopJob,
    GetStatus,
    ListJobs,
    DeleteJob,
    Health,
    GetLogs,
    ListJobTypes,
    AddSchedule,
    ListSchedules,
    GetSchedule,
    UpdateSchedule,
    DeleteSchedule,
    PauseSchedule,
    ResumeSchedule,
    ListQueues,
    SetQueue,
    PauseQueue,
    ResumeQueue,
}

impl QueueAction {
    /// Every action.
    pub const ALL: [QueueAction; 21] = [
        QueueAction::AddJob,
        QueueAction::AddJobs,
        QueueAction::StartJob,
        QueueAction::StopJob,
        QueueAction::GetStatus,
        QueueAction::ListJobs,
        QueueAction::DeleteJob,
        QueueAction::Health,
        QueueAction::GetLogs,
        QueueAction::ListJobTypes,
        QueueAction::AddSchedule,
        QueueAction::ListSchedules,
        QueueAction::GetSchedule,
        QueueAction::UpdateSchedule,
        QueueAction::DeleteSchedule,
        QueueAction::PauseSchedule,
        QueueAction::ResumeSchedule,
        QueueAction::ListQueues,
        QueueAction::SetQueue,
        QueueAction::PauseQueue,
        QueueAction::ResumeQueue,
    ];

    /// The action's name, as a request spells it (serde's spelling: a test checks they agree).
    pub fn as_str(self) -> &'static str {
        match self {
            QueueAction::AddJob => "add_job",
            QueueAction::AddJobs => "add_jobs",
            QueueAction::StartJob => "start_job",
            QueueAction::StopJob => "stop_job",
            QueueAction::GetStatus => "get_status",
            QueueAction::ListJobs => "list_jobs",
            QueueAction::DeleteJob => "delete_job",
            QueueAction::Health => "health",
            QueueAction::GetLogs => "get_logs",
            QueueAction::ListJobTypes => "list_job_types",
            QueueAction::AddSchedule => "add_schedule",
            QueueAction::ListSchedules => "list_schedules",
            QueueAction::GetSchedule => "get_schedule",
            QueueAction::UpdateSchedule => "update_schedule",
            QueueAction::DeleteSchedule => "delete_schedule",
            QueueAction::PauseSchedule => "pause_schedule",
            QueueAction::ResumeSchedule => "resume_schedule",
            QueueAction::ListQueues => "list_queues",
            QueueAction::SetQueue => "set_queue",
            QueueAction::PauseQueue => "pause_queue",
            QueueAction::ResumeQueue => "resume_queue",
        }
    }
}

/// A status to filter a list by, in either dialect's spelling (the seed's `PENDING`, the
/// framework's `pending`; the framework calls ERROR `failed`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
pub enum StatusFilter {
    #[serde(rename = "PENDING")]
    Pending,
    #[serde(rename = "RUNNING")]
    Running,
    #[serde(rename = "COMPLETED")]
    Completed,
    #[serde(rename = "ERROR")]
    Error,
    #[serde(rename = "STOPPED")]
    Stopped,
    #[serde(rename = "DELETED")]
    Deleted,
    #[serde(rename = "pending")]
    PendingLower,
    #[serde(rename = "running")]
    RunningLower,
    #[serde(rename = "completed")]
    CompletedLower,
    #[serde(rename = "failed")]
    Failed,
    #[serde(rename = "stopped")]
    StoppedLower,
    #[serde(rename = "deleted")]
    DeletedLower,
}

impl StatusFilter {
    /// Every spelling, in the order the schema lists them.
    pub const ALL: [StatusFilter; 12] = [
        StatusFilter::Pending,
        StatusFilter::Running,
        StatusFilter::Completed,
        StatusFilter::Error,
        StatusFilter::Stopped,
        StatusFilter::Deleted,
        StatusFilter::PendingLower,
        StatusFilter::RunningLower,
        StatusFilter::CompletedLower,
        StatusFilter::Failed,
        StatusFilter::StoppedLower,
        StatusFilter::DeletedLower,
    ];

    /// The status it names.
    pub fn status(self) -> Status {
        match self {
            StatusFilter::Pending | StatusFilter::PendingLower => Status::Pending,
            StatusFilter::Running | StatusFilter::RunningLower => Status::Running,
            StatusFilter::Completed | StatusFilter::CompletedLower => Status::Completed,
            StatusFilter::Error | StatusFilter::Failed => Status::Error,
            StatusFilter::Stopped | StatusFilter::StoppedLower => Status::Stopped,
            StatusFilter::Deleted | StatusFilter::DeletedLower => Status::Deleted,
        }
    }

    /// As the request spelt it (serde's spelling: a test checks they agree).
    pub fn as_str(self) -> &'static str {
        match self {
            StatusFilter::Pending => "PENDING",
            StatusFilter::Running => "RUNNING",
            StatusFilter::Completed => "COMPLETED",
            StatusFilter::Error => "ERROR",
            StatusFilter::Stopped => "STOPPED",
            StatusFilter::Deleted => "DELETED",
            StatusFilter::PendingLower => "pending",
            StatusFilter::RunningLower => "running",
            StatusFilter::CompletedLower => "completed",
            StatusFilter::Failed => "failed",
            StatusFilter::StoppedLower => "stopped",
            StatusFilter::DeletedLower => "deleted",
        }
    }
}

/// Which end of the insertion order a list starts from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ListOrder {
    Oldest,
    Newest,
}

/// The params of a job to add beyond its id, type and params, shared by every add command.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
pub struct AddOptions {
    /// Higher runs first among jobs waiting to run (default 0)
    #[schemars(range(min = -1_000_000, max = 1_000_000))]
    pub priority: Option<i32>,
    /// Runs allowed per start: a retryable error, a trap, a timeout or an interrupted run is retried with exponential backoff (default: the host's --max-attempts, 1)
    #[schemars(range(min = 1, max = 1000))]
    pub max_attempts: Option<u32>,
    /// Earliest run time, RFC 3339 (e.g. 2026-12-01T10:00:00Z); a job started before it waits and reads PENDING
    #[schemars(length(min = 1))]
    pub run_at: Option<String>,
    /// Earliest run time as seconds from now (instead of run_at)
    #[schemars(range(min = 0, max = 31_536_000))]
    pub delay_secs: Option<serde_json::Number>,
    /// While a job with this key is not COMPLETED/ERROR/STOPPED/DELETED, an add returns that job (duplicate: true) instead of adding another
    #[schemars(length(min = 1, max = 1024))]
    pub unique_key: Option<String>,
    /// Named queue (default: the job type's manifest [queue], else 'default'); a queue's settings limit its jobs running at once across hosts, and it can be paused
    #[schemars(length(min = 1, max = 200))]
    pub queue: Option<String>,
    /// Jobs with the same key share their queue's per-key limit (key_concurrency), e.g. a tenant or customer id
    #[schemars(length(min = 1, max = 200))]
    pub concurrency_key: Option<String>,
    /// Ids of jobs this one runs after: it is started, and runs once they have completed (each must exist, or come earlier in the same batch)
    #[schemars(length(max = 10000))]
    pub depends_on: Option<Vec<String>>,
    /// What a dependency that ends without completing does: fail (the default: this job fails too), run (it runs anyway) or skip (it ends STOPPED, skipped)
    pub on_dependency_failure: Option<OnDependencyFailure>,
}

/// `on_dependency_failure`.
#[derive(Debug, Clone, Copy, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum OnDependencyFailure {
    /// The dependent fails too.
    Fail,
    /// The dependent runs anyway.
    Run,
    /// The dependent is skipped.
    Skip,
}

impl OnDependencyFailure {
    /// The store's policy.
    pub fn policy(self) -> crate::job::DepPolicy {
        match self {
            OnDependencyFailure::Fail => crate::job::DepPolicy::Fail,
            OnDependencyFailure::Run => crate::job::DepPolicy::Run,
            OnDependencyFailure::Skip => crate::job::DepPolicy::Skip,
        }
    }
}

/// One job of a `queue_add_flow`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct FlowJob {
    /// Its key in the flow: its id is <flow_id>.<key>, and its dependents get its result as inputs.<key>
    #[schemars(length(min = 1, max = 64))]
    pub key: String,
    /// Name of a loaded job type
    pub job_type: String,
    /// Job parameters, validated against the job type's params schema
    #[schemars(with = "Option<Object>")]
    pub params: Option<Value>,
    /// Keys of the flow's jobs this one runs after
    pub depends_on: Option<Vec<String>>,
    /// What a dependency that ends without completing does: fail (default), run or skip
    pub on_dependency_failure: Option<OnDependencyFailure>,
    /// Higher runs first among jobs waiting to run (default 0)
    #[schemars(range(min = -1_000_000, max = 1_000_000))]
    pub priority: Option<i32>,
    /// Runs allowed (retries with backoff)
    #[schemars(range(min = 1, max = 1000))]
    pub max_attempts: Option<u32>,
    /// Named queue
    #[schemars(length(min = 1, max = 200))]
    pub queue: Option<String>,
}

/// `queue_add_flow`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct AddFlowParams {
    /// The flow's id (generated when absent): its jobs' ids are <flow_id>.<key>, and queue_get_flow takes it
    #[schemars(length(min = 1, max = 200))]
    pub flow_id: Option<String>,
    /// The flow's jobs, a DAG by their keys: inserted all or none, each started and running once its dependencies completed
    #[schemars(length(min = 1, max = 10000))]
    pub jobs: Vec<FlowJob>,
}

/// One job of an `add_jobs` batch.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct BatchJob {
    /// Job identifier (generated when absent)
    #[schemars(length(min = 1))]
    pub job_id: Option<String>,
    /// Name of a loaded job type (default: the host's default job type)
    pub job_type: Option<String>,
    /// Job parameters, validated against the job type's params schema
    #[schemars(with = "Option<Object>")]
    pub params: Option<Value>,
    /// The rest of an add.
    #[serde(flatten)]
    pub add: AddOptions,
}

/// `queue`: the seed's command, one action per call.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct QueueParams {
    /// Action to perform
    pub action: QueueAction,
    /// Job identifier (default: default_job)
    #[schemars(length(min = 1))]
    pub job_id: Option<String>,
    /// add_job: name of a loaded job type (a .wasm file stem); optional when the host has a default job type
    pub job_type: Option<String>,
    /// Job parameters (add_job), validated against the job type's params schema
    #[schemars(with = "Option<Object>")]
    pub params: Option<Value>,
    /// delete_job: delete even if running (a running job is always stopped first)
    pub force: Option<bool>,
    /// list_jobs: only jobs with this status
    pub status_filter: Option<StatusFilter>,
    /// add_job, add_jobs: start the job(s) too, in the same durable write
    pub start: Option<bool>,
    /// add_jobs: the jobs to add, all or none, in one durable write
    #[schemars(length(max = crate::queue::MAX_BATCH))]
    pub jobs: Option<Vec<BatchJob>>,
    /// list_jobs: continue after this next_cursor
    pub cursor: Option<String>,
    /// list_jobs: insertion order, oldest first (default) or newest first
    pub order: Option<ListOrder>,
    /// list_jobs: most jobs returned (default: all); the answer carries next_cursor
    #[schemars(range(min = 1, max = 100_000))]
    pub limit: Option<usize>,
    /// The rest of an add.
    #[serde(flatten)]
    pub add: AddOptions,
    /// A schedule's fields (the `*_schedule` actions).
    #[serde(flatten)]
    pub schedule: ScheduleOptions,
    /// A queue's settings (`set_queue`).
    #[serde(flatten)]
    pub limits: QueueLimits,
}

/// A queue's limits, shared by `set_queue` and `queue_set_queue`.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
pub struct QueueLimits {
    /// set_queue: most jobs of the queue running at once across all hosts (0: no limit)
    #[schemars(range(min = 0, max = 1_000_000))]
    pub concurrency: Option<u32>,
    /// set_queue: most jobs of the queue with one concurrency_key running at once across all hosts (0: no limit)
    #[schemars(range(min = 0, max = 1_000_000))]
    pub key_concurrency: Option<u32>,
    /// set_queue: most starts of the queue's jobs per period across all hosts, e.g. 100/min, 10/s, 3/10s ('none': no limit); jobs over it wait PENDING
    #[schemars(length(min = 1, max = 32))]
    pub rate: Option<String>,
    /// set_queue: most starts per period of the queue's jobs with one concurrency_key, e.g. 10/min ('none': no limit)
    #[schemars(length(min = 1, max = 32))]
    pub key_rate: Option<String>,
}

/// `queue_set_queue`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct SetQueueParams {
    /// Queue name
    #[schemars(length(min = 1, max = 200))]
    pub queue: String,
    /// The default priority of the queue's jobs that set none (nor their job type's manifest)
    #[schemars(range(min = -1_000_000, max = 1_000_000))]
    pub priority: Option<i32>,
    /// The limits.
    #[serde(flatten)]
    pub limits: QueueLimits,
}

/// `queue_pause_queue`, `queue_resume_queue`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct QueueNameParams {
    /// Queue name
    #[schemars(length(min = 1, max = 200))]
    pub queue: String,
}

/// What a slot does while the schedule's previous job is live.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum OverlapParam {
    Allow,
    Skip,
    Queue,
}

impl From<OverlapParam> for crate::schedule::Overlap {
    fn from(o: OverlapParam) -> Self {
        match o {
            OverlapParam::Allow => crate::schedule::Overlap::Allow,
            OverlapParam::Skip => crate::schedule::Overlap::Skip,
            OverlapParam::Queue => crate::schedule::Overlap::Queue,
        }
    }
}

/// What to do with slots missed while no host led.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum CatchUpParam {
    None,
    Latest,
    All,
}

impl From<CatchUpParam> for crate::schedule::CatchUp {
    fn from(c: CatchUpParam) -> Self {
        match c {
            CatchUpParam::None => crate::schedule::CatchUp::None,
            CatchUpParam::Latest => crate::schedule::CatchUp::Latest,
            CatchUpParam::All => crate::schedule::CatchUp::All,
        }
    }
}

/// The seed's `queue` params of the `*_schedule` actions.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
pub struct ScheduleOptions {
    /// Schedule name (the *_schedule actions)
    #[schemars(length(min = 1, max = 200))]
    pub name: Option<String>,
    /// Cron expression: 5 fields (minute hour day month weekday), 6 with seconds first, or @yearly, @monthly, @weekly, @daily, @hourly
    #[schemars(length(min = 1, max = 200))]
    pub cron: Option<String>,
    /// The rest of a schedule.
    #[serde(flatten)]
    pub timing: ScheduleTiming,
}

/// A schedule's policies, shared by the schedule commands.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
pub struct ScheduleTiming {
    /// IANA time zone the expression is read in (default UTC), e.g. Europe/Berlin
    #[schemars(length(min = 1, max = 64))]
    pub timezone: Option<String>,
    /// While the previous job of the schedule is pending or running: allow another, skip the slot (default), or queue one behind it
    pub overlap: Option<OverlapParam>,
    /// Slots missed while no host was leading (downtime): none, the latest once (default), or all within catch_up_window_secs
    pub catch_up: Option<CatchUpParam>,
    /// How far back catch_up all reaches, seconds (default 86400)
    #[schemars(range(min = 1, max = 31_536_000))]
    pub catch_up_window_secs: Option<u64>,
    /// Whether the schedule enqueues jobs (default true)
    pub enabled: Option<bool>,
}

/// `queue_add_schedule`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct AddScheduleParams {
    /// Schedule name, unique
    #[schemars(length(min = 1, max = 200))]
    pub name: String,
    /// Name of a loaded job type (a .wasm file stem)
    pub job_type: String,
    /// Cron expression: 5 fields (minute hour day month weekday), 6 with seconds first, or @yearly, @monthly, @weekly, @daily, @hourly
    #[schemars(length(min = 1, max = 200))]
    pub cron: String,
    /// Parameters of each job, validated against the job type's params schema
    #[schemars(with = "Option<Object>")]
    pub params: Option<Value>,
    /// Higher runs first among jobs waiting to run (default 0)
    #[schemars(range(min = -1_000_000, max = 1_000_000))]
    pub priority: Option<i32>,
    /// Runs allowed per start of each job (default 1)
    #[schemars(range(min = 1, max = 1000))]
    pub max_attempts: Option<u32>,
    /// The schedule's policies.
    #[serde(flatten)]
    pub timing: ScheduleTiming,
}

/// `queue_update_schedule`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct UpdateScheduleParams {
    /// Schedule name
    #[schemars(length(min = 1, max = 200))]
    pub name: String,
    /// Name of a loaded job type (a .wasm file stem)
    pub job_type: Option<String>,
    /// Cron expression: 5 fields (minute hour day month weekday), 6 with seconds first, or @yearly, @monthly, @weekly, @daily, @hourly
    #[schemars(length(min = 1, max = 200))]
    pub cron: Option<String>,
    /// Parameters of each job, validated against the job type's params schema
    #[schemars(with = "Option<Object>")]
    pub params: Option<Value>,
    /// Higher runs first among jobs waiting to run
    #[schemars(range(min = -1_000_000, max = 1_000_000))]
    pub priority: Option<i32>,
    /// Runs allowed per start of each job
    #[schemars(range(min = 1, max = 1000))]
    pub max_attempts: Option<u32>,
    /// The schedule's policies.
    #[serde(flatten)]
    pub timing: ScheduleTiming,
}

/// `queue_get_schedule`, `queue_delete_schedule`, `queue_pause_schedule`, `queue_resume_schedule`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct ScheduleNameParams {
    /// Schedule name
    #[schemars(length(min = 1, max = 200))]
    pub name: String,
}

/// `queue_add_job`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct AddJobParams {
    /// Name of a loaded job type (a .wasm file stem)
    pub job_type: String,
    /// Unique job identifier
    #[schemars(length(min = 1))]
    pub job_id: String,
    /// Job parameters, validated against the job type's params schema
    #[schemars(with = "Option<Object>")]
    pub params: Option<Value>,
    /// Start the job too, in the same durable write
    pub start: Option<bool>,
    /// The rest of an add.
    #[serde(flatten)]
    pub add: AddOptions,
}

/// `queue_start_job`, `queue_stop_job`, `queue_get_job_status`, `queue_get_job_logs`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct JobIdParams {
    /// Job identifier
    #[schemars(length(min = 1))]
    pub job_id: String,
}

/// `queue_stop_job`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct StopJobParams {
    /// Job identifier
    #[schemars(length(min = 1))]
    pub job_id: String,
    /// Leave the job's live child jobs running (by default they are stopped with it)
    pub keep_children: Option<bool>,
}

/// `queue_send_event`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct SendEventParams {
    /// The job to send it to
    #[schemars(length(min = 1))]
    pub job_id: Option<String>,
    /// Or: the live job that holds this unique_key (a correlation key, e.g. an order number)
    #[schemars(length(min = 1))]
    pub unique_key: Option<String>,
    /// The event's name (what the job waits for)
    #[schemars(length(min = 1, max = 256))]
    pub name: String,
    /// Its payload, any JSON (default null)
    #[serde(default)]
    pub payload: Option<Value>,
}

/// `queue_delete_job`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct DeleteJobParams {
    /// Job identifier
    #[schemars(length(min = 1))]
    pub job_id: String,
    /// Delete even if running (a running job is always stopped first)
    pub force: Option<bool>,
}

/// `queue_list_jobs`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct ListJobsParams {
    /// Only jobs with this status
    pub status_filter: Option<StatusFilter>,
    /// Only jobs of this type
    pub job_type: Option<String>,
    /// Most jobs returned (default 100)
    #[schemars(range(min = 1, max = 100_000))]
    pub limit: Option<usize>,
    /// Continue after this next_cursor
    pub cursor: Option<String>,
    /// Insertion order, oldest first (default) or newest first
    pub order: Option<ListOrder>,
}

/// `queue_health`: no params.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct NoParams {}

/// `echo`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct EchoParams {
    /// Echo message
    pub message: Option<String>,
    /// Optional timestamp
    pub timestamp: Option<String>,
}

/// `help`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct HelpParams {
    /// Command to describe
    #[serde(default)]
    #[schemars(schema_with = "command_names")]
    pub cmdname: Option<String>,
}

/// The names `help` describes: every command of the table.
fn command_names(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    let names: Vec<&str> = super::Command::ALL.iter().map(|c| c.name()).collect();
    schemars::json_schema!({"type": "string", "enum": names})
}

#[cfg(test)]
mod tests {
    use super::{QueueAction, StatusFilter};
    use crate::job::Status;

    /// The names the handlers echo are the names serde reads, and the schema lists exactly
    /// them; each status filter names its status in one of the dialects' spellings.
    #[test]
    fn names_written_out_agree_with_serde_and_the_schema() {
        let schema = super::schema_of::<super::QueueParams>();
        let actions: Vec<&str> = QueueAction::ALL.iter().map(|a| a.as_str()).collect();
        assert_eq!(
            schema["properties"]["action"]["enum"],
            serde_json::json!(actions)
        );
        for a in QueueAction::ALL {
            let read: QueueAction = serde_json::from_value(a.as_str().into()).unwrap();
            assert_eq!(read, a);
        }
        let filters: Vec<&str> = StatusFilter::ALL.iter().map(|f| f.as_str()).collect();
        assert_eq!(
            schema["properties"]["status_filter"]["enum"],
            serde_json::json!(filters)
        );
        for f in StatusFilter::ALL {
            let read: StatusFilter = serde_json::from_value(f.as_str().into()).unwrap();
            assert_eq!(read, f);
            let s = f.status();
            assert!(
                f.as_str() == s.as_str() || f.as_str() == s.framework_name(),
                "{f:?}"
            );
        }
        assert_eq!(StatusFilter::Failed.status(), Status::Error);
    }
}
