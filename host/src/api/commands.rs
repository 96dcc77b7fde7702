//! The commands: each one's name, description and params schema in one table, and the
//! handlers. `/commands`, `/openapi.json`, `help` and validation all read the table.

use super::AppState;
use super::jsonrpc::{CallResult, DomainError, RpcError, codes};
use super::validate::validate;
use super::views;
use crate::queue::QueueError;
use crate::registry::{JobRecord, Status};
use serde_json::{Value, json};

/// One command's published contract.
pub struct CommandSpec {
    /// Its name (the JSON-RPC method).
    pub name: &'static str,
    /// One line for humans.
    pub description: &'static str,
    /// JSON Schema of its params.
    pub schema: Value,
}

const QUEUE_ACTIONS: [&str; 9] = [
    "add_job",
    "start_job",
    "stop_job",
    "get_status",
    "list_jobs",
    "delete_job",
    "health",
    "get_logs",
    "list_job_types",
];

fn status_filter_enum() -> Value {
    let mut v: Vec<&str> = Status::ALL.iter().map(|s| s.as_str()).collect();
    v.extend(Status::ALL.iter().map(|s| s.framework_name()));
    json!(v)
}

fn job_id_only(desc: &str) -> Value {
    json!({
        "type": "object",
        "properties": {"job_id": {"type": "string", "minLength": 1, "description": desc}},
        "required": ["job_id"],
        "additionalProperties": false,
    })
}

/// The command table.
pub fn specs() -> Vec<CommandSpec> {
    let names = [
        "queue",
        "queue_add_job",
        "queue_start_job",
        "queue_stop_job",
        "queue_delete_job",
        "queue_get_job_status",
        "queue_get_job_logs",
        "queue_list_jobs",
        "queue_health",
        "echo",
        "help",
    ];
    vec![
        CommandSpec {
            name: "queue",
            description: "Queue management command for job operations",
            schema: json!({
                "type": "object",
                "properties": {
                    "action": {"type": "string", "enum": QUEUE_ACTIONS, "description": "Action to perform"},
                    "job_id": {"type": "string", "minLength": 1, "description": "Job identifier (default: default_job)"},
                    "job_type": {"type": "string", "description": "add_job: name of a loaded job type (a .wasm file stem); optional when the host has a default job type"},
                    "params": {"type": "object", "description": "Job parameters (add_job), validated against the job type's params schema"},
                    "force": {"type": "boolean", "description": "delete_job: delete even if running (a running job is always stopped first)"},
                    "status_filter": {"type": "string", "enum": status_filter_enum(), "description": "list_jobs: only jobs with this status"},
                },
                "required": ["action"],
                "additionalProperties": false,
            }),
        },
        CommandSpec {
            name: "queue_add_job",
            description: "Add a job to the background queue",
            schema: json!({
                "type": "object",
                "properties": {
                    "job_type": {"type": "string", "description": "Name of a loaded job type (a .wasm file stem)"},
                    "job_id": {"type": "string", "minLength": 1, "description": "Unique job identifier"},
                    "params": {"type": "object", "description": "Job parameters, validated against the job type's params schema"},
                },
                "required": ["job_type", "job_id"],
                "additionalProperties": false,
            }),
        },
        CommandSpec {
            name: "queue_start_job",
            description: "Start a job in the background queue",
            schema: job_id_only("Job identifier"),
        },
        CommandSpec {
            name: "queue_stop_job",
            description: "Stop a running job in the background queue",
            schema: job_id_only("Job identifier"),
        },
        CommandSpec {
            name: "queue_delete_job",
            description: "Delete a job from the background queue",
            schema: json!({
                "type": "object",
                "properties": {
                    "job_id": {"type": "string", "minLength": 1, "description": "Job identifier"},
                    "force": {"type": "boolean", "description": "Delete even if running (a running job is always stopped first)"},
                },
                "required": ["job_id"],
                "additionalProperties": false,
            }),
        },
        CommandSpec {
            name: "queue_get_job_status",
            description: "Get the status and details of a job in the queue. Returns created_at/started_at/completed_at timestamps.",
            schema: job_id_only("Job identifier"),
        },
        CommandSpec {
            name: "queue_get_job_logs",
            description: "Get the stdout/stderr and log lines of a job's latest run",
            schema: job_id_only("Job identifier"),
        },
        CommandSpec {
            name: "queue_list_jobs",
            description: "List jobs in the queue",
            schema: json!({
                "type": "object",
                "properties": {
                    "status_filter": {"type": "string", "enum": status_filter_enum(), "description": "Only jobs with this status"},
                    "job_type": {"type": "string", "description": "Only jobs of this type"},
                    "limit": {"type": "integer", "minimum": 1, "maximum": 100000, "description": "Most jobs returned (default 100)"},
                },
                "additionalProperties": false,
            }),
        },
        CommandSpec {
            name: "queue_health",
            description: "Health of the queue: counts, limits, registry",
            schema: json!({"type": "object", "properties": {}, "additionalProperties": false}),
        },
        CommandSpec {
            name: "echo",
            description: "Echo command for testing",
            schema: json!({
                "type": "object",
                "properties": {
                    "message": {"type": "string", "description": "Echo message"},
                    "timestamp": {"type": "string", "description": "Optional timestamp"},
                },
                "additionalProperties": false,
            }),
        },
        CommandSpec {
            name: "help",
            description: "Get information about commands",
            schema: json!({
                "type": "object",
                "properties": {"cmdname": {"type": "string", "enum": names, "description": "Command to describe"}},
                "additionalProperties": false,
            }),
        },
    ]
}

fn domain(e: QueueError, method: &str, framework: bool) -> CallResult {
    let status_name = |s: Status| {
        if framework {
            s.framework_name()
        } else {
            s.as_str()
        }
    };
    let detail = e.to_string();
    match e {
        QueueError::NotFound(id) => CallResult::Domain(DomainError {
            code: codes::DOMAIN,
            message: "Job not found".into(),
            data: json!({"domain_code": "JOB_NOT_FOUND", "field": "job_id", "value": id, "store": "queuemgr", "detail": detail}),
        }),
        QueueError::AlreadyExists(id) => CallResult::Domain(DomainError {
            code: codes::DOMAIN,
            message: "Job already exists".into(),
            data: json!({"domain_code": "JOB_ALREADY_EXISTS", "field": "job_id", "value": id, "store": "queuemgr", "detail": detail}),
        }),
        QueueError::StateInvalid { job_id, action, current, allowed, .. } => CallResult::Domain(DomainError {
            code: codes::DOMAIN,
            message: "Job state invalid".into(),
            data: json!({
                "domain_code": "JOB_STATE_INVALID", "field": "job_id", "value": job_id, "store": "queuemgr",
                "action": action, "current_status": status_name(current),
                "allowed_statuses": allowed.iter().map(|s| status_name(*s)).collect::<Vec<_>>(),
                "detail": detail,
            }),
        }),
        QueueError::UnknownJobType { job_type, available } => CallResult::Rpc(
            RpcError::new(
                codes::INVALID_PARAMS,
                format!(
                    "{method}: parameter 'job_type' must be one of [{}], got '{job_type}'",
                    available.iter().map(|a| format!("'{a}'")).collect::<Vec<_>>().join(", ")
                ),
            )
            .with_data(json!({"field": "job_type", "enum": available, "violation": "value", "expected": available, "got": job_type})),
        ),
        QueueError::NoJobType { available } => CallResult::Rpc(
            RpcError::new(codes::INVALID_PARAMS, "Missing required parameters: job_type")
                .with_data(json!({"missing_parameters": ["job_type"], "violation": "missing", "expected": available})),
        ),
        QueueError::InvalidParams(p) => CallResult::Rpc(
            RpcError::new(codes::INVALID_PARAMS, format!("{method}: {}", p.message))
                .with_data(json!({"field": p.field, "violation": p.violation, "expected": p.expected, "got": p.got})),
        ),
        QueueError::Registry(e) => CallResult::Domain(DomainError {
            code: codes::DOMAIN,
            message: "Registry unavailable".into(),
            data: json!({"domain_code": "REGISTRY_UNAVAILABLE", "store": "queuemgr", "retryable": true,
                "detail": format!("{e}; nothing was changed")}),
        }),
        QueueError::ShuttingDown => CallResult::Domain(DomainError {
            code: codes::DOMAIN,
            message: "Host shutting down".into(),
            data: json!({"domain_code": "SHUTTING_DOWN", "store": "queuemgr", "retryable": true, "detail": detail}),
        }),
    }
}

fn str_param<'a>(params: &'a Value, key: &str) -> Option<&'a str> {
    params.get(key).and_then(Value::as_str)
}

/// Runs one command (params already known to be an object or null).
pub async fn call(state: &AppState, method: &str, params: Value) -> CallResult {
    let Some(spec) = state.commands.iter().find(|c| c.name == method) else {
        return CallResult::Rpc(RpcError::new(
            codes::METHOD_NOT_FOUND,
            format!("Method not found: {method}"),
        ));
    };
    if let Err(e) = validate(method, &spec.schema, &params) {
        return CallResult::Rpc(e);
    }
    let params = if params.is_null() { json!({}) } else { params };
    let r = match method {
        "queue" => queue(state, &params).await,
        "help" => Ok(help(state, str_param(&params, "cmdname"))),
        "echo" => Ok(echo(&params)),
        other => framework(state, other, &params).await,
    };
    match r {
        Ok(data) => CallResult::Ok(data),
        Err((e, framework)) => domain(e, method, framework),
    }
}

type Res = Result<Value, (QueueError, bool)>;

async fn queue(state: &AppState, p: &Value) -> Res {
    let q = &state.queue;
    let action = str_param(p, "action").unwrap_or_default();
    let job_id = str_param(p, "job_id").unwrap_or("default_job");
    let err = |e| (e, false);
    let msg = |verb: &str| json!({"action": action, "job_id": job_id, "message": format!("Job {job_id} {verb} successfully")});
    match action {
        "add_job" => {
            let params = p.get("params").cloned().unwrap_or_else(|| json!({}));
            q.add_job(job_id, str_param(p, "job_type"), params)
                .await
                .map_err(err)?;
            Ok(msg("added"))
        }
        "start_job" => {
            q.start_job(job_id).await.map_err(err)?;
            Ok(msg("started"))
        }
        "stop_job" => {
            q.stop_job(job_id).await.map_err(err)?;
            Ok(msg("stopped"))
        }
        "delete_job" => {
            q.delete_job(job_id).await.map_err(err)?;
            Ok(msg("deleted"))
        }
        "get_status" => {
            let rec = q.get_status(job_id).map_err(err)?;
            Ok(json!({"action": action, "job_id": job_id, "status": views::seed_job(&rec, false)}))
        }
        "list_jobs" => {
            let filter = str_param(p, "status_filter").and_then(Status::parse);
            let jobs: Vec<Value> = q
                .list_jobs(filter)
                .iter()
                .map(|r| views::seed_job(r, true))
                .collect();
            let count = jobs.len();
            Ok(json!({"action": action, "jobs": jobs, "count": count}))
        }
        "get_logs" => {
            let (lines, dropped) = q.get_logs(job_id).map_err(err)?;
            let mut m = views::logs(&lines, dropped);
            m.insert("action".into(), json!(action));
            m.insert("job_id".into(), json!(job_id));
            Ok(serde_json::Value::Object(m))
        }
        "list_job_types" => Ok(job_types(state, action)),
        _ => {
            let c = q.counts();
            let (types, broken) = q.catalog().list();
            Ok(json!({
                "action": "health",
                "queue_running": true,
                "backend": "wasm",
                "status": if broken.is_empty() { "healthy" } else { "degraded" },
                "job_types": types.iter().map(|t| t.name.clone()).collect::<Vec<_>>(),
                "broken_job_files": broken,
                "jobs": c,
            }))
        }
    }
}

fn job_types(state: &AppState, action: &str) -> Value {
    let (types, broken) = state.queue.catalog().list();
    let types: Vec<Value> = types
        .iter()
        .map(|t| {
            json!({
                "job_type": t.name, "name": t.info().name, "version": t.info().version,
                "description": t.info().description, "params_schema": t.info().params_schema,
                "file": t.file.display().to_string(), "sha256": t.sha256,
            })
        })
        .collect();
    json!({"action": action, "count": types.len(), "job_types": types, "broken": broken})
}

async fn framework(state: &AppState, method: &str, p: &Value) -> Res {
    let q = &state.queue;
    let job_id = str_param(p, "job_id").unwrap_or_default();
    let err = |e| (e, true);
    match method {
        "queue_add_job" => {
            let params = p.get("params").cloned().unwrap_or_else(|| json!({}));
            let rec = q
                .add_job(job_id, str_param(p, "job_type"), params)
                .await
                .map_err(err)?;
            Ok(json!({
                "message": format!("Job {job_id} added successfully"), "job_id": job_id,
                "job_type": rec.job_type, "status": "pending", "description": "Job added to queue",
                "store": "queuemgr", "poll_with": "queue_get_job_status",
            }))
        }
        "queue_start_job" => {
            let rec = q.start_job(job_id).await.map_err(err)?;
            Ok(json!({
                "message": format!("Job {job_id} started successfully"), "job_id": job_id,
                "status": rec.status.framework_name(), "description": rec.description,
            }))
        }
        "queue_stop_job" => {
            let rec = q.stop_job(job_id).await.map_err(err)?;
            Ok(json!({
                "message": format!("Job {job_id} stopped successfully"), "job_id": job_id,
                "status": rec.status.framework_name(), "description": rec.description,
                "stop_requested": true, "requested_status": "stopped",
                "actual_status": rec.status.framework_name(), "stopped": rec.status == Status::Stopped,
            }))
        }
        "queue_delete_job" => {
            let rec = q.delete_job(job_id).await.map_err(err)?;
            Ok(json!({
                "message": format!("Job {job_id} deleted successfully"), "job_id": job_id,
                "status": "deleted", "description": rec.description,
                "deleted_confirmed": rec.status == Status::Deleted, "actual_status": rec.status.framework_name(),
            }))
        }
        "queue_get_job_status" => {
            let rec = q.get_status(job_id).map_err(err)?;
            Ok(views::framework_job(&rec))
        }
        "queue_get_job_logs" => {
            let (lines, dropped) = q.get_logs(job_id).map_err(err)?;
            let mut m = serde_json::Map::new();
            m.insert("job_id".into(), json!(job_id));
            m.extend(views::logs(&lines, dropped));
            Ok(Value::Object(m))
        }
        "queue_list_jobs" => {
            let filter_name = str_param(p, "status_filter");
            let filter = filter_name.and_then(Status::parse);
            let job_type = str_param(p, "job_type");
            let limit = p.get("limit").and_then(Value::as_u64).unwrap_or(100) as usize;
            let all: Vec<std::sync::Arc<JobRecord>> = q
                .list_jobs(filter)
                .into_iter()
                .filter(|r| job_type.is_none_or(|t| r.job_type == t))
                .collect();
            let jobs: Vec<Value> = all
                .iter()
                .take(limit)
                .map(|r| views::framework_list_item(r))
                .collect();
            Ok(
                json!({"jobs": jobs, "total_count": all.len(), "status_filter": filter_name, "limit": limit}),
            )
        }
        _ => Ok(framework_health(state)),
    }
}

/// The `queue_health` data (also part of `GET /health`).
pub fn framework_health(state: &AppState) -> Value {
    let q = &state.queue;
    let c = q.counts();
    let cfg = q.config();
    let reg = q.registry().stats();
    let n = |s: Status| c.by_status.get(s.as_str()).copied().unwrap_or(0);
    json!({
        "status": if reg.last_error.is_some() { "degraded" } else { "healthy" },
        "running": true,
        "total_jobs": c.total,
        "pending_jobs": n(Status::Pending),
        "running_jobs": n(Status::Running),
        "completed_jobs": n(Status::Completed),
        "failed_jobs": n(Status::Error),
        "stopped_jobs": n(Status::Stopped),
        "deleted_jobs": n(Status::Deleted),
        "waiting_jobs": c.waiting,
        "registry_path": reg.location,
        "max_concurrent_jobs": cfg.max_concurrent,
        "max_retained_terminal_jobs": cfg.retention.max_terminal_jobs,
        "pending_unstarted_jobs": c.unstarted,
        "rlimit_nofile": rlimit_nofile(),
        "registry": reg,
    })
}

/// The framework's connectivity check: the message (and timestamp, if given) back.
fn echo(p: &Value) -> Value {
    let mut m = serde_json::Map::new();
    m.insert(
        "message".into(),
        p.get("message").cloned().unwrap_or_else(|| json!("")),
    );
    if let Some(t) = p.get("timestamp") {
        m.insert("timestamp".into(), t.clone());
    }
    Value::Object(m)
}

/// The process's open-file limit, as the framework's `queue_health` reports it.
fn rlimit_nofile() -> Value {
    let l = rustix::process::getrlimit(rustix::process::Resource::Nofile);
    json!({"soft": l.current, "hard": l.maximum})
}

fn help(state: &AppState, cmdname: Option<&str>) -> Value {
    match cmdname.and_then(|n| state.commands.iter().find(|c| c.name == n)) {
        Some(spec) => {
            let required: Vec<&str> = spec.schema["required"]
                .as_array()
                .map(|r| r.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            let mut parameters = serde_json::Map::new();
            if let Some(props) = spec.schema["properties"].as_object() {
                for (name, prop) in props {
                    let mut p = json!({
                        "description": prop.get("description").cloned().unwrap_or(json!("")),
                        "type": prop.get("type").cloned().unwrap_or(json!("any")),
                        "required": required.contains(&name.as_str()),
                    });
                    if let Some(e) = prop.get("enum") {
                        p["enum"] = e.clone();
                    }
                    parameters.insert(name.clone(), p);
                }
            }
            let parameters = Value::Object(parameters);
            json!({
                "metadata": {
                    "name": spec.name, "summary": spec.description, "type": "custom",
                    "parameters": parameters, "parameters_docs": parameters,
                },
                "schema": spec.schema,
                "ai_metadata": {"parameters": parameters},
            })
        }
        None => {
            let commands: serde_json::Map<String, Value> = state
                .commands
                .iter()
                .map(|c| (c.name.to_string(), json!(c.description)))
                .collect();
            json!({
                "tool_info": {"name": "queuemgr", "description": "WebAssembly job host (JSON-RPC API)", "version": env!("CARGO_PKG_VERSION")},
                "help_usage": {
                    "description": "Get information about commands",
                    "examples": [
                        {"command": "help", "description": "List of all available commands"},
                        {"command": "help", "params": {"cmdname": "command_name"}, "description": "Get detailed information about a specific command"},
                    ],
                },
                "commands": commands,
            })
        }
    }
}
