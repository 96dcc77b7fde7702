//! The command table: every command once, as a [`Command`] with its name, its description, its
//! dialect and its typed params ([`params`]). From it come JSON-RPC dispatch, the seed's
//! `queue` actions, `/commands`, `/openapi.json`, `help` and the MCP `queue_*` tools.
//!
//! Why one table of types: a command's name, schema, validation and handler used to be written
//! in four places, and answers were built field by field; now the compiler checks that every
//! command has a handler (no catch-all arm), the published schema is derived from the struct
//! the handler reads, and each answer is a `#[derive(Serialize)]` type. The published schemas
//! are pinned by `published.json` (the contract the framework's clients were built against).

mod errors;
mod flows;
mod framework;
mod help;
pub mod job_commands;
pub mod params;
mod queues;
mod schedules;
mod seed;

pub(crate) use errors::domain;
pub use framework::framework_health;

use super::AppState;
use super::jsonrpc::{CallResult, RpcError, codes};
use super::validate::validate;
use crate::auth::{Caller, Role};
use crate::job::now_micros;
use crate::queue::{AddRequest, ParamError, QueueError};
use crate::store::{ListQuery, Order};
use params::{AddOptions, ListOrder, Object, QueueAction, StatusFilter, schema_of};
use serde::Serialize;
use serde_json::{Value, json};

/// Which vocabulary a command answers in: the seed's `queue` (statuses `PENDING`, …) or the
/// framework's `queue_*` commands (statuses `pending`, …, and `failed` for ERROR).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// The seed's `queue` command.
    Seed,
    /// The framework's commands.
    Framework,
}

/// Every command the API answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    /// `queue`: the seed's command.
    Queue,
    /// `queue_add_job`.
    QueueAddJob,
    /// `queue_start_job`.
    QueueStartJob,
    /// `queue_stop_job`.
    QueueStopJob,
    /// `queue_delete_job`.
    QueueDeleteJob,
    /// `queue_get_job_status`.
    QueueGetJobStatus,
    /// `queue_get_job_logs`.
    QueueGetJobLogs,
    /// `queue_list_jobs`.
    QueueListJobs,
    /// `queue_health`.
    QueueHealth,
    /// `queue_add_schedule`.
    QueueAddSchedule,
    /// `queue_list_schedules`.
    QueueListSchedules,
    /// `queue_get_schedule`.
    QueueGetSchedule,
    /// `queue_update_schedule`.
    QueueUpdateSchedule,
    /// `queue_delete_schedule`.
    QueueDeleteSchedule,
    /// `queue_pause_schedule`.
    QueuePauseSchedule,
    /// `queue_resume_schedule`.
    QueueResumeSchedule,
    /// `queue_list_queues`.
    QueueListQueues,
    /// `queue_set_queue`.
    QueueSetQueue,
    /// `queue_pause_queue`.
    QueuePauseQueue,
    /// `queue_resume_queue`.
    QueueResumeQueue,
    /// `queue_send_event`.
    QueueSendEvent,
    /// `queue_get_flow`.
    QueueGetFlow,
    /// `queue_add_flow`.
    QueueAddFlow,
    /// `echo`.
    Echo,
    /// `help`.
    Help,
}

impl Command {
    /// Every command, in the order `/commands` and `help` list them.
    pub const ALL: [Command; 25] = [
        Command::Queue,
        Command::QueueAddJob,
        Command::QueueStartJob,
        Command::QueueStopJob,
        Command::QueueDeleteJob,
        Command::QueueGetJobStatus,
        Command::QueueGetJobLogs,
        Command::QueueListJobs,
        Command::QueueHealth,
        Command::QueueAddSchedule,
        Command::QueueListSchedules,
        Command::QueueGetSchedule,
        Command::QueueUpdateSchedule,
        Command::QueueDeleteSchedule,
        Command::QueuePauseSchedule,
        Command::QueueResumeSchedule,
        Command::QueueListQueues,
        Command::QueueSetQueue,
        Command::QueuePauseQueue,
        Command::QueueResumeQueue,
        Command::QueueSendEvent,
        Command::QueueGetFlow,
        Command::QueueAddFlow,
        Command::Echo,
        Command::Help,
    ];

    /// The commands that are MCP tools, in the order `tools/list` gives them.
    pub const MCP_TOOLS: [Command; 16] = [
        Command::QueueAddJob,
        Command::QueueGetJobStatus,
        Command::QueueListJobs,
        Command::QueueGetJobLogs,
        Command::QueueStopJob,
        Command::QueueDeleteJob,
        Command::QueueAddSchedule,
        Command::QueueListSchedules,
        Command::QueuePauseSchedule,
        Command::QueueResumeSchedule,
        Command::QueueListQueues,
        Command::QueuePauseQueue,
        Command::QueueResumeQueue,
        Command::QueueSendEvent,
        Command::QueueGetFlow,
        Command::QueueAddFlow,
    ];

    /// Its name: the JSON-RPC method (the only place a command's name is written).
    pub fn name(self) -> &'static str {
        match self {
            Command::Queue => "queue",
            Command::QueueAddJob => "queue_add_job",
            Command::QueueStartJob => "queue_start_job",
            Command::QueueStopJob => "queue_stop_job",
            Command::QueueDeleteJob => "queue_delete_job",
            Command::QueueGetJobStatus => "queue_get_job_status",
            Command::QueueGetJobLogs => "queue_get_job_logs",
            Command::QueueListJobs => "queue_list_jobs",
            Command::QueueHealth => "queue_health",
            Command::QueueAddSchedule => "queue_add_schedule",
            Command::QueueListSchedules => "queue_list_schedules",
            Command::QueueGetSchedule => "queue_get_schedule",
            Command::QueueUpdateSchedule => "queue_update_schedule",
            Command::QueueDeleteSchedule => "queue_delete_schedule",
            Command::QueuePauseSchedule => "queue_pause_schedule",
            Command::QueueResumeSchedule => "queue_resume_schedule",
            Command::QueueListQueues => "queue_list_queues",
            Command::QueueSetQueue => "queue_set_queue",
            Command::QueuePauseQueue => "queue_pause_queue",
            Command::QueueResumeQueue => "queue_resume_queue",
            Command::QueueSendEvent => "queue_send_event",
            Command::QueueGetFlow => "queue_get_flow",
            Command::QueueAddFlow => "queue_add_flow",
            Command::Echo => "echo",
            Command::Help => "help",
        }
    }

    /// The command named `name`.
    pub fn parse(name: &str) -> Option<Command> {
        Command::ALL.into_iter().find(|c| c.name() == name)
    }

    /// One line for humans.
    pub fn description(self) -> &'static str {
        match self {
            Command::Queue => "Queue management command for job operations",
            Command::QueueAddJob => "Add a job to the background queue",
            Command::QueueStartJob => "Start a job in the background queue",
            Command::QueueStopJob => "Stop a running job in the background queue",
            Command::QueueDeleteJob => "Delete a job from the background queue",
            Command::QueueGetJobStatus => {
                "Get the status and details of a job in the queue. Returns created_at/started_at/completed_at timestamps."
            }
            Command::QueueGetJobLogs => "Get the stdout/stderr and log lines of a job's latest run",
            Command::QueueListJobs => "List jobs in the queue",
            Command::QueueHealth => "Health of the queue: counts, limits, registry",
            Command::QueueAddSchedule => {
                "Add a periodic job: a job type, its params and a cron expression in a time zone"
            }
            Command::QueueListSchedules => {
                "List the periodic jobs' schedules with their next and last runs"
            }
            Command::QueueGetSchedule => "Get one schedule with its next and last runs",
            Command::QueueUpdateSchedule => {
                "Change a schedule (a new expression or time zone starts from now)"
            }
            Command::QueueDeleteSchedule => "Delete a schedule (the jobs it enqueued stay)",
            Command::QueuePauseSchedule => "Pause a schedule: it enqueues nothing until resumed",
            Command::QueueResumeSchedule => {
                "Resume a schedule from now (slots missed while paused are not enqueued)"
            }
            Command::QueueListQueues => {
                "List the named queues with their limits, paused state, waiting and running jobs"
            }
            Command::QueueSetQueue => {
                "Set a queue's limits across all hosts (concurrency, key_concurrency; 0 removes one) and its jobs' default priority"
            }
            Command::QueuePauseQueue => {
                "Pause a queue: nothing new is claimed from it; running jobs go on"
            }
            Command::QueueResumeQueue => "Resume a paused queue",
            Command::QueueSendEvent => {
                "Send an event (a name and a JSON payload) to a job, by job_id or by the unique_key it holds: a job waiting for it runs again"
            }
            Command::QueueGetFlow => {
                "A job and every job its runs enqueued, as a graph: each node's state and what it waits for"
            }
            Command::QueueAddFlow => {
                "Add a flow: a DAG of jobs by their keys, inserted all or none; each runs once its dependencies completed, with their results as inputs"
            }
            Command::Echo => "Echo command for testing",
            Command::Help => "Get information about commands",
        }
    }

    /// The vocabulary it answers in.
    pub fn dialect(self) -> Dialect {
        match self {
            Command::Queue | Command::Echo | Command::Help => Dialect::Seed,
            Command::QueueAddJob
            | Command::QueueStartJob
            | Command::QueueStopJob
            | Command::QueueDeleteJob
            | Command::QueueGetJobStatus
            | Command::QueueGetJobLogs
            | Command::QueueListJobs
            | Command::QueueHealth
            | Command::QueueAddSchedule
            | Command::QueueListSchedules
            | Command::QueueGetSchedule
            | Command::QueueUpdateSchedule
            | Command::QueueDeleteSchedule
            | Command::QueuePauseSchedule
            | Command::QueueResumeSchedule
            | Command::QueueListQueues
            | Command::QueueSetQueue
            | Command::QueuePauseQueue
            | Command::QueueResumeQueue
            | Command::QueueSendEvent
            | Command::QueueGetFlow
            | Command::QueueAddFlow => Dialect::Framework,
        }
    }

    /// The JSON Schema of its params, derived from its params type.
    pub fn schema(self) -> Value {
        match self {
            Command::Queue => schema_of::<params::QueueParams>(),
            Command::QueueAddJob => schema_of::<params::AddJobParams>(),
            Command::QueueStartJob | Command::QueueGetJobStatus | Command::QueueGetJobLogs => {
                schema_of::<params::JobIdParams>()
            }
            Command::QueueStopJob => schema_of::<params::StopJobParams>(),
            Command::QueueDeleteJob => schema_of::<params::DeleteJobParams>(),
            Command::QueueListJobs => schema_of::<params::ListJobsParams>(),
            Command::QueueHealth | Command::QueueListSchedules | Command::QueueListQueues => {
                schema_of::<params::NoParams>()
            }
            Command::QueueSetQueue => schema_of::<params::SetQueueParams>(),
            Command::QueuePauseQueue | Command::QueueResumeQueue => {
                schema_of::<params::QueueNameParams>()
            }
            Command::QueueAddSchedule => schema_of::<params::AddScheduleParams>(),
            Command::QueueUpdateSchedule => schema_of::<params::UpdateScheduleParams>(),
            Command::QueueGetSchedule
            | Command::QueueDeleteSchedule
            | Command::QueuePauseSchedule
            | Command::QueueResumeSchedule => schema_of::<params::ScheduleNameParams>(),
            Command::QueueSendEvent => schema_of::<params::SendEventParams>(),
            Command::QueueGetFlow => schema_of::<params::JobIdParams>(),
            Command::QueueAddFlow => schema_of::<params::AddFlowParams>(),
            Command::Echo => schema_of::<params::EchoParams>(),
            Command::Help => schema_of::<params::HelpParams>(),
        }
    }

    /// Its description as an MCP tool, if it is one (the framework's job commands are; the
    /// seed's `queue`, `queue_health`, `echo` and `help` are not).
    pub fn mcp_tool(self) -> Option<&'static str> {
        match self {
            Command::QueueAddJob => Some(
                "Add a job (any loaded job type) without waiting for it; set start=true to run it now",
            ),
            Command::QueueGetJobStatus => Some("A job's status, progress, result or error"),
            Command::QueueListJobs => {
                Some("Jobs, newest first: filter by status or job type, page with cursor")
            }
            Command::QueueGetJobLogs => Some("A job's stdout, stderr and log lines"),
            Command::QueueStopJob => Some("Stop a job (a running one within milliseconds)"),
            Command::QueueDeleteJob => Some("Delete a job (stopping it first if it runs)"),
            Command::QueueAddSchedule => Some(
                "Run a job type periodically: a cron expression (5 or 6 fields, or @daily) in an IANA time zone",
            ),
            Command::QueueListSchedules => {
                Some("Schedules of periodic jobs, with their next runs and last run's status")
            }
            Command::QueuePauseSchedule => Some("Pause a schedule"),
            Command::QueueResumeSchedule => Some("Resume a paused schedule from now"),
            Command::QueueListQueues => {
                Some("Named queues: limits across hosts, paused state, waiting and running jobs")
            }
            Command::QueuePauseQueue => {
                Some("Pause a queue: nothing new is claimed from it; running jobs go on")
            }
            Command::QueueResumeQueue => Some("Resume a paused queue"),
            Command::QueueSendEvent => {
                Some("Send an event to a job (e.g. an approval): a job waiting for it resumes")
            }
            Command::QueueGetFlow => {
                Some("A flow: a job and the jobs it enqueued, with each one's state")
            }
            Command::QueueAddFlow => Some(
                "Add a DAG of jobs by keys (depends_on), all or none; each gets its dependencies' results as inputs",
            ),
            Command::QueueSetQueue
            | Command::Queue
            | Command::QueueStartJob
            | Command::QueueHealth
            | Command::QueueGetSchedule
            | Command::QueueUpdateSchedule
            | Command::QueueDeleteSchedule
            | Command::Echo
            | Command::Help => None,
        }
    }
}

/// One command's published contract (computed once, when the router is built).
pub struct CommandSpec {
    /// The command.
    pub command: Command,
    /// Its name (the JSON-RPC method).
    pub name: &'static str,
    /// One line for humans.
    pub description: &'static str,
    /// JSON Schema of its params.
    pub schema: Value,
}

/// The command table, as `/commands`, OpenAPI, `help` and validation read it.
pub fn specs() -> Vec<CommandSpec> {
    Command::ALL
        .into_iter()
        .map(|command| CommandSpec {
            command,
            name: command.name(),
            description: command.description(),
            schema: command.schema(),
        })
        .collect()
}

/// What a handler answers: its typed answer, or the queue's error.
type Answer<T> = Result<T, QueueError>;

/// Reads validated params into the command's params type. The schema was derived from that
/// type, so this fails only if the two disagree (a bug): it is then an invalid-params answer
/// naming serde's reason, never a panic.
fn read<T: serde::de::DeserializeOwned>(method: &str, params: Value) -> Result<T, CallResult> {
    serde_json::from_value(params).map_err(|e| {
        CallResult::Rpc(RpcError::new(
            codes::INVALID_PARAMS,
            format!("{method}: invalid params: {e}"),
        ))
    })
}

/// An answer as the envelope's `data`, or the queue's error in the command's dialect.
fn answer<T: Serialize>(command: Command, r: Answer<T>) -> CallResult {
    match r {
        Ok(v) => match serde_json::to_value(v) {
            Ok(data) => CallResult::Ok(data),
            Err(e) => CallResult::Rpc(RpcError::new(
                codes::INTERNAL,
                format!("{}: cannot encode the answer: {e}", command.name()),
            )),
        },
        Err(e) => domain(e, command.name(), command.dialect()),
    }
}

/// The role a call needs, and what it does in words (for a refusal): reading needs `read`;
/// adding, starting, stopping and deleting jobs (and a job type called as a command) `run`;
/// changing schedules and queues `admin`. An unknown command or action needs only `read`, so
/// that its caller learns it does not exist.
fn required_role(state: &AppState, method: &str, params: &Value) -> (Role, String) {
    let Some(command) = Command::parse(method) else {
        if job_commands::is_job_command(state, method) {
            return (Role::Run, format!("run the job type {method}"));
        }
        return (Role::Read, format!("call {method}"));
    };
    if command == Command::Queue {
        let action = params
            .get("action")
            .and_then(Value::as_str)
            .and_then(|a| QueueAction::ALL.into_iter().find(|x| x.as_str() == a));
        return match action {
            Some(a) => (action_role(a), format!("call queue {}", a.as_str())),
            None => (Role::Read, "call queue".into()),
        };
    }
    (command_role(command), format!("call {method}"))
}

/// The role a command needs (the seed's `queue` needs `read` to be called at all; each of
/// its actions needs [`action_role`]).
pub fn command_role(command: Command) -> Role {
    match command {
        Command::QueueAddJob
        | Command::QueueStartJob
        | Command::QueueStopJob
        | Command::QueueDeleteJob
        | Command::QueueSendEvent
        | Command::QueueAddFlow => Role::Run,
        Command::QueueAddSchedule
        | Command::QueueUpdateSchedule
        | Command::QueueDeleteSchedule
        | Command::QueuePauseSchedule
        | Command::QueueResumeSchedule
        | Command::QueueSetQueue
        | Command::QueuePauseQueue
        | Command::QueueResumeQueue => Role::Admin,
        Command::Queue
        | Command::QueueGetJobStatus
        | Command::QueueGetJobLogs
        | Command::QueueListJobs
        | Command::QueueHealth
        | Command::QueueListSchedules
        | Command::QueueGetSchedule
        | Command::QueueListQueues
        | Command::QueueGetFlow
        | Command::Echo
        | Command::Help => Role::Read,
    }
}

/// The role a seed `queue` action needs (see [`required_role`]).
pub fn action_role(action: QueueAction) -> Role {
    match action {
        QueueAction::AddJob
        | QueueAction::AddJobs
        | QueueAction::StartJob
        | QueueAction::StopJob
        | QueueAction::DeleteJob => Role::Run,
        QueueAction::AddSchedule
        | QueueAction::UpdateSchedule
        | QueueAction::DeleteSchedule
        | QueueAction::PauseSchedule
        | QueueAction::ResumeSchedule
        | QueueAction::SetQueue
        | QueueAction::PauseQueue
        | QueueAction::ResumeQueue => Role::Admin,
        QueueAction::GetStatus
        | QueueAction::ListJobs
        | QueueAction::Health
        | QueueAction::GetLogs
        | QueueAction::ListJobTypes
        | QueueAction::ListSchedules
        | QueueAction::GetSchedule
        | QueueAction::ListQueues => Role::Read,
    }
}

/// Runs one command (params already known to be an object or null).
pub async fn call(state: &AppState, caller: &Caller, method: &str, params: Value) -> CallResult {
    let (need, what) = required_role(state, method, &params);
    if !caller.role.allows(need) {
        return CallResult::Rpc(
            RpcError::new(codes::FORBIDDEN, caller.refusal(&what, need)).with_data(json!({
                "key": &*caller.name,
                "role": caller.role.as_str(),
                "needs": need.as_str(),
            })),
        );
    }
    let Some(spec) = state.commands.iter().find(|c| c.name == method) else {
        if job_commands::is_job_command(state, method) {
            return job_commands::call(state, caller, method, params).await;
        }
        return CallResult::Rpc(RpcError::new(
            codes::METHOD_NOT_FOUND,
            format!("Method not found: {method}"),
        ));
    };
    if let Err(e) = validate(method, &spec.schema, &params) {
        // `help` also describes the job types (queued commands), which its published enum of
        // `cmdname` cannot list.
        let job = spec.command == Command::Help
            && params
                .get("cmdname")
                .and_then(Value::as_str)
                .is_some_and(|n| job_commands::is_job_command(state, n))
            && params.as_object().is_some_and(|o| o.len() == 1);
        if !job {
            return CallResult::Rpc(e);
        }
    }
    let params = if params.is_null() { json!({}) } else { params };
    let command = spec.command;
    macro_rules! run {
        ($handler:expr) => {
            match read(method, params) {
                Ok(p) => answer(command, $handler(state, p).await),
                Err(e) => e,
            }
        };
        // A handler that acts on jobs: it answers only for the caller's jobs.
        ($handler:expr, caller) => {
            match read(method, params) {
                Ok(p) => answer(command, $handler(state, caller, p).await),
                Err(e) => e,
            }
        };
    }
    match command {
        Command::Queue => match read::<params::QueueParams>(method, params) {
            Ok(p) => seed::call(state, caller, p).await,
            Err(e) => e,
        },
        Command::QueueAddJob => run!(framework::add_job, caller),
        Command::QueueStartJob => run!(framework::start_job, caller),
        Command::QueueStopJob => run!(framework::stop_job, caller),
        Command::QueueDeleteJob => run!(framework::delete_job, caller),
        Command::QueueGetJobStatus => run!(framework::get_job_status, caller),
        Command::QueueGetJobLogs => run!(framework::get_job_logs, caller),
        Command::QueueListJobs => run!(framework::list_jobs, caller),
        Command::QueueHealth => run!(framework::health),
        Command::QueueAddSchedule => run!(schedules::add),
        Command::QueueListSchedules => run!(schedules::list),
        Command::QueueGetSchedule => run!(schedules::get),
        Command::QueueUpdateSchedule => run!(schedules::update),
        Command::QueueDeleteSchedule => run!(schedules::delete),
        Command::QueuePauseSchedule => run!(schedules::pause),
        Command::QueueResumeSchedule => run!(schedules::resume),
        Command::QueueListQueues => run!(queues::list),
        Command::QueueSetQueue => run!(queues::set),
        Command::QueuePauseQueue => run!(queues::pause),
        Command::QueueResumeQueue => run!(queues::resume),
        Command::QueueSendEvent => run!(flows::send_event, caller),
        Command::QueueGetFlow => run!(flows::get_flow, caller),
        Command::QueueAddFlow => run!(flows::add_flow, caller),
        Command::Echo => run!(help::echo),
        Command::Help => run!(help::help),
    }
}

fn param_error(field: &str, expected: &str, got: Value, message: String) -> QueueError {
    QueueError::InvalidParams(Box::new(ParamError {
        field: field.to_string(),
        violation: "value",
        expected: expected.into(),
        got,
        message,
    }))
}

/// A job to add by `caller`, from the params every add command shares (already
/// schema-checked).
fn add_request(
    caller: &Caller,
    job_id: Option<String>,
    job_type: Option<String>,
    params: Option<Value>,
    add: AddOptions,
) -> Result<AddRequest, QueueError> {
    let delay = add.delay_secs.as_ref().and_then(serde_json::Number::as_f64);
    let run_at = match (add.run_at, delay) {
        (Some(_), Some(_)) => {
            return Err(param_error(
                "delay_secs",
                "either run_at or delay_secs",
                json!(add.delay_secs),
                "parameters 'run_at' and 'delay_secs' exclude each other".into(),
            ));
        }
        (Some(t), None) => Some(
            chrono::DateTime::parse_from_rfc3339(&t)
                .map_err(|e| {
                    param_error(
                        "run_at",
                        "RFC 3339 date-time",
                        json!(t),
                        format!("parameter 'run_at' must be an RFC 3339 date-time: {e}"),
                    )
                })?
                .timestamp_micros(),
        ),
        (None, Some(d)) => Some(now_micros().saturating_add((d * 1e6) as i64)),
        (None, None) => None,
    };
    Ok(AddRequest {
        job_id,
        job_type,
        params: params.unwrap_or_else(|| Value::Object(Object::new())),
        priority: add.priority,
        max_attempts: add.max_attempts,
        run_at,
        unique_key: add.unique_key,
        queue: add.queue,
        concurrency_key: add.concurrency_key,
        as_command: false,
        caller: Some(caller.clone()),
        depends_on: add
            .depends_on
            .unwrap_or_default()
            .into_iter()
            .map(|id| crate::job::Dependency {
                key: id.clone(),
                job_id: id,
            })
            .collect(),
        on_dependency_failure: add
            .on_dependency_failure
            .map_or(crate::job::DepPolicy::Fail, |p| p.policy()),
        parent: None,
    })
}

/// A list query from a list's params, of the jobs in `caller`'s scope.
fn list_query(
    caller: &Caller,
    status: Option<StatusFilter>,
    job_type: Option<String>,
    cursor: Option<String>,
    order: Option<ListOrder>,
    limit: Option<usize>,
) -> ListQuery {
    ListQuery {
        status: status.map(StatusFilter::status),
        job_type,
        cursor,
        order: match order {
            Some(ListOrder::Newest) => Order::Newest,
            Some(ListOrder::Oldest) | None => Order::Oldest,
        },
        limit,
        scope: caller.scope.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::{Command, specs};
    use serde_json::Value;

    /// The schemas derived from the params types are the contract published before they were
    /// derived (`published.json`): names, descriptions, types, bounds, enums, required keys.
    #[test]
    fn derived_schemas_are_the_published_contract() {
        let published: Vec<Value> =
            serde_json::from_str(include_str!("published.json")).expect("published.json");
        let specs = specs();
        assert_eq!(specs.len(), published.len());
        for (spec, want) in specs.iter().zip(&published) {
            assert_eq!(spec.name, want["name"], "order of the table");
            assert_eq!(spec.description, want["description"], "{}", spec.name);
            assert_eq!(
                spec.schema,
                want["schema"],
                "{}: derived\n{}\npublished\n{}",
                spec.name,
                serde_json::to_string_pretty(&spec.schema).unwrap_or_default(),
                serde_json::to_string_pretty(&want["schema"]).unwrap_or_default()
            );
        }
    }

    /// The MCP tools are exactly the commands with a tool description.
    #[test]
    fn mcp_tools_are_the_commands_described_as_tools() {
        for c in Command::ALL {
            assert_eq!(
                c.mcp_tool().is_some(),
                Command::MCP_TOOLS.contains(&c),
                "{c:?}"
            );
        }
    }

    /// Every name parses back to its command.
    #[test]
    fn names_parse_back() {
        for c in Command::ALL {
            assert_eq!(Command::parse(c.name()), Some(c));
        }
        assert_eq!(Command::parse("queue_frobnicate"), None);
    }
}
