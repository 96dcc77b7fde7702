//! Job types as commands: a call whose method is a loaded job type's name adds and starts a job
//! of that type and answers at once with its id — the framework's queued command (a command
//! class declared `use_queue=True`), which its client waits on over `/ws` or by polling
//! `queue_get_job_status`.
//!
//! Why the table stays static and job types are looked up beside it: job types come and go
//! with the jobs directory, while the built-in commands are fixed and typed. A built-in
//! command's name always wins; a job type of the same name stays a job type (`queue_add_job`
//! runs it) and is listed by `help` under `shadowed_job_types`.

use super::{Dialect, domain};
use crate::api::AppState;
use crate::api::jsonrpc::{CallResult, RpcError, codes};
use crate::auth::Caller;
use crate::job::JobRecord;
use crate::queue::{AddRequest, QueueError};
use serde::Serialize;
use serde_json::{Value, json};
use std::sync::Arc;

/// The params the framework's server takes off a queued command's params before it runs it
/// (its server-side polling); they never reach the job.
const SERVER_PARAMS: [&str; 2] = ["poll_interval", "max_wait_time"];

/// A job type published as a command.
pub struct JobCommand {
    /// The job type's name: the JSON-RPC method.
    pub name: String,
    /// What the job says about itself.
    pub description: String,
    /// The JSON Schema of its params.
    pub schema: Value,
}

/// The loaded job types that are commands, by name, and the names of those a built-in command
/// shadows.
pub fn job_commands(state: &AppState) -> (Vec<JobCommand>, Vec<String>) {
    let (types, _) = state.queue.catalog().list();
    let mut commands = Vec::with_capacity(types.len());
    let mut shadowed = Vec::new();
    for t in types {
        if state.commands.iter().any(|c| c.name == t.name) {
            shadowed.push(t.name.clone());
            continue;
        }
        let info = t.info();
        commands.push(JobCommand {
            name: t.name.clone(),
            description: format!(
                "{} (a queued command: answers at once with its job_id; wait over /ws or poll queue_get_job_status)",
                info.description
            ),
            schema: info.params_schema.clone(),
        });
    }
    commands.sort_by(|a, b| a.name.cmp(&b.name));
    shadowed.sort();
    (commands, shadowed)
}

/// Whether `name` is a job type that can be called as a command now (loaded or loading, and
/// not shadowed by a built-in command: the caller checked that).
pub fn is_job_command(state: &AppState, name: &str) -> bool {
    let catalog = state.queue.catalog();
    catalog.get(name).is_some() || catalog.loading().iter().any(|n| n == name)
}

/// What a queued command answers over JSON-RPC (at `result`, without a `data` wrapper, as the
/// framework does).
#[derive(Serialize)]
struct Queued {
    success: bool,
    job_id: String,
    status: &'static str,
    message: String,
    store: &'static str,
    poll_with: &'static str,
}

/// Adds and starts a job of type `command` with id `job_id` as a queued command. Refusals come
/// back as the answer to send: `-32602` naming the field for bad params, the store's errors as
/// domain errors.
pub async fn start(
    state: &AppState,
    caller: &Caller,
    command: &str,
    job_id: String,
    params: Value,
) -> Result<Arc<JobRecord>, CallResult> {
    let mut params = match params {
        Value::Null => serde_json::Map::new(),
        Value::Object(m) => m,
        other => {
            return Err(CallResult::Rpc(
                RpcError::new(
                    codes::INVALID_PARAMS,
                    format!("{command}: params must be an object"),
                )
                .with_data(json!({"field": "params", "violation": "type", "expected": "object", "got": crate::queue::json_type(&other)})),
            ));
        }
    };
    for p in SERVER_PARAMS {
        params.remove(p);
    }
    let req = AddRequest {
        job_id: Some(job_id),
        job_type: Some(command.to_string()),
        params: Value::Object(params),
        as_command: true,
        caller: Some(caller.clone()),
        ..AddRequest::default()
    };
    match state.queue.add_job(req, true).await {
        Ok(added) => Ok(added.job),
        Err(e) => Err(refusal(e, command)),
    }
}

/// A queue error as the command's answer. The job's params are the command's params, so a
/// field is named as the caller wrote it (`duration`, not `params.duration`).
fn refusal(e: QueueError, command: &str) -> CallResult {
    match domain(e, command, Dialect::Framework) {
        CallResult::Rpc(mut r) => {
            r.message = r.message.replacen("parameter 'params.", "parameter '", 1);
            if let Some(f) = r.data.as_mut().and_then(|d| d.get_mut("field"))
                && let Some(s) = f.as_str()
                && let Some(rest) = s.strip_prefix("params.")
            {
                *f = json!(rest);
            }
            CallResult::Rpc(r)
        }
        other => other,
    }
}

/// A JSON-RPC call of a job type: adds and starts the job, answers at once.
pub async fn call(state: &AppState, caller: &Caller, command: &str, params: Value) -> CallResult {
    let job_id = crate::job::new_id();
    match start(state, caller, command, job_id, params).await {
        Ok(rec) => match serde_json::to_value(Queued {
            success: true,
            job_id: rec.job_id.clone(),
            status: "pending",
            message: format!(
                "Command '{command}' has been queued for execution; track via queue_get_job_status"
            ),
            store: "queuemgr",
            poll_with: "queue_get_job_status",
        }) {
            Ok(v) => CallResult::Plain(v),
            Err(e) => CallResult::Rpc(RpcError::new(
                codes::INTERNAL,
                format!("{command}: cannot encode the answer: {e}"),
            )),
        },
        Err(answer) => answer,
    }
}
