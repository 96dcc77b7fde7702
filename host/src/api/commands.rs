//! The commands: each one's name, description and params schema in one table, and the
//! handlers. `/commands`, `/openapi.json`, `help` and validation all read the table.

use super::AppState;
use super::jsonrpc::{CallResult, DomainError, RpcError, codes};
use super::validate::validate;
use super::views;
use crate::job::{Status, now_micros};
use crate::queue::{AddRequest, Added, QueueError};
use crate::store::{ListQuery, Order};
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

const QUEUE_ACTIONS: [&str; 10] = [
    "add_job",
    "add_jobs",
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

/// Params of a job to add, beyond its id, type and params (`queue` add_job, `queue_add_job`,
/// each item of `add_jobs`).
fn add_props() -> serde_json::Map<String, Value> {
    let v = json!({
        "priority": {"type": "integer", "minimum": -1000000, "maximum": 1000000, "description": "Higher runs first among jobs waiting to run (default 0)"},
        "max_attempts": {"type": "integer", "minimum": 1, "maximum": 1000, "description": "Runs allowed per start: a retryable error, a trap, a timeout or an interrupted run is retried with exponential backoff (default: the host's --max-attempts, 1)"},
        "run_at": {"type": "string", "minLength": 1, "description": "Earliest run time, RFC 3339 (e.g. 2026-12-01T10:00:00Z); a job started before it waits and reads PENDING"},
        "delay_secs": {"type": "number", "minimum": 0, "maximum": 31536000, "description": "Earliest run time as seconds from now (instead of run_at)"},
        "unique_key": {"type": "string", "minLength": 1, "maxLength": 1024, "description": "While a job with this key is not COMPLETED/ERROR/STOPPED/DELETED, an add returns that job (duplicate: true) instead of adding another"},
    });
    match v {
        Value::Object(m) => m,
        _ => serde_json::Map::new(),
    }
}

fn with_add_props(mut schema: Value) -> Value {
    if let Some(props) = schema["properties"].as_object_mut() {
        props.extend(add_props());
    }
    schema
}

fn batch_item_schema() -> Value {
    with_add_props(json!({
        "type": "object",
        "properties": {
            "job_id": {"type": "string", "minLength": 1, "description": "Job identifier (generated when absent)"},
            "job_type": {"type": "string", "description": "Name of a loaded job type (default: the host's default job type)"},
            "params": {"type": "object", "description": "Job parameters, validated against the job type's params schema"},
        },
        "additionalProperties": false,
    }))
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
            schema: with_add_props(json!({
                "type": "object",
                "properties": {
                    "action": {"type": "string", "enum": QUEUE_ACTIONS, "description": "Action to perform"},
                    "job_id": {"type": "string", "minLength": 1, "description": "Job identifier (default: default_job)"},
                    "job_type": {"type": "string", "description": "add_job: name of a loaded job type (a .wasm file stem); optional when the host has a default job type"},
                    "params": {"type": "object", "description": "Job parameters (add_job), validated against the job type's params schema"},
                    "force": {"type": "boolean", "description": "delete_job: delete even if running (a running job is always stopped first)"},
                    "status_filter": {"type": "string", "enum": status_filter_enum(), "description": "list_jobs: only jobs with this status"},
                    "start": {"type": "boolean", "description": "add_job, add_jobs: start the job(s) too, in the same durable write"},
                    "jobs": {"type": "array", "maxItems": crate::queue::MAX_BATCH, "items": batch_item_schema(), "description": "add_jobs: the jobs to add, all or none, in one durable write"},
                    "cursor": {"type": "string", "description": "list_jobs: continue after this next_cursor"},
                    "order": {"type": "string", "enum": ["oldest", "newest"], "description": "list_jobs: insertion order, oldest first (default) or newest first"},
                    "limit": {"type": "integer", "minimum": 1, "maximum": 100000, "description": "list_jobs: most jobs returned (default: all); the answer carries next_cursor"},
                },
                "required": ["action"],
                "additionalProperties": false,
            })),
        },
        CommandSpec {
            name: "queue_add_job",
            description: "Add a job to the background queue",
            schema: with_add_props(json!({
                "type": "object",
                "properties": {
                    "job_type": {"type": "string", "description": "Name of a loaded job type (a .wasm file stem)"},
                    "job_id": {"type": "string", "minLength": 1, "description": "Unique job identifier"},
                    "params": {"type": "object", "description": "Job parameters, validated against the job type's params schema"},
                    "start": {"type": "boolean", "description": "Start the job too, in the same durable write"},
                },
                "required": ["job_type", "job_id"],
                "additionalProperties": false,
            })),
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
                    "cursor": {"type": "string", "description": "Continue after this next_cursor"},
                    "order": {"type": "string", "enum": ["oldest", "newest"], "description": "Insertion order, oldest first (default) or newest first"},
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

pub(crate) fn domain(e: QueueError, method: &str, framework: bool) -> CallResult {
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
        QueueError::JobTypeLoading(job_type) => CallResult::Domain(DomainError {
            code: codes::DOMAIN,
            message: "Job type loading".into(),
            data: json!({"domain_code": "JOB_TYPE_LOADING", "field": "job_type", "value": job_type,
                "store": "queuemgr", "retryable": true, "detail": detail}),
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
        QueueError::StoreUnavailable(reason) => CallResult::Domain(DomainError {
            code: codes::DOMAIN,
            message: "Job store unavailable".into(),
            data: json!({"domain_code": "STORE_UNAVAILABLE", "store": "queuemgr", "retryable": true,
                "detail": format!("{reason}; nothing was changed")}),
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

fn param_error(field: &str, expected: &str, got: Value, message: String) -> QueueError {
    QueueError::InvalidParams(Box::new(crate::queue::ParamError {
        field: field.to_string(),
        violation: "value",
        expected: expected.into(),
        got,
        message,
    }))
}

/// The add params shared by every add command (already schema-checked).
fn add_request(p: &Value, job_id: Option<String>) -> Result<AddRequest, QueueError> {
    let run_at = match (
        p.get("run_at").and_then(Value::as_str),
        p.get("delay_secs").and_then(Value::as_f64),
    ) {
        (Some(_), Some(_)) => {
            return Err(param_error(
                "delay_secs",
                "either run_at or delay_secs",
                p["delay_secs"].clone(),
                "parameters 'run_at' and 'delay_secs' exclude each other".into(),
            ));
        }
        (Some(t), None) => Some(
            chrono::DateTime::parse_from_rfc3339(t)
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
        job_type: str_param(p, "job_type").map(str::to_string),
        params: p.get("params").cloned().unwrap_or_else(|| json!({})),
        priority: p.get("priority").and_then(Value::as_i64).map(|v| v as i32),
        max_attempts: p
            .get("max_attempts")
            .and_then(Value::as_u64)
            .map(|n| n as u32),
        run_at,
        unique_key: str_param(p, "unique_key").map(str::to_string),
    })
}

fn list_query(p: &Value, default_limit: Option<usize>) -> ListQuery {
    ListQuery {
        status: str_param(p, "status_filter").and_then(Status::parse),
        job_type: str_param(p, "job_type").map(str::to_string),
        cursor: str_param(p, "cursor").map(str::to_string),
        order: match str_param(p, "order") {
            Some("newest") => Order::Newest,
            _ => Order::Oldest,
        },
        limit: p
            .get("limit")
            .and_then(Value::as_u64)
            .map(|l| l as usize)
            .or(default_limit),
    }
}

/// What `add_job` adds to the seed's answer beyond the original's keys (only when the new
/// params are used, so that existing clients see the same object).
fn add_extras(m: &mut Value, added: &Added, start: bool) {
    if added.duplicate {
        m["duplicate"] = json!(true);
        m["job_id"] = json!(added.job.job_id);
        m["message"] = json!(format!(
            "Job {} already holds this unique_key",
            added.job.job_id
        ));
    }
    if start || added.duplicate {
        m["status"] = json!(added.job.status.as_str());
    }
}

async fn queue(state: &AppState, p: &Value) -> Res {
    let q = &state.queue;
    let action = str_param(p, "action").unwrap_or_default();
    let job_id = str_param(p, "job_id").unwrap_or("default_job");
    let err = |e| (e, false);
    let msg = |verb: &str| json!({"action": action, "job_id": job_id, "message": format!("Job {job_id} {verb} successfully")});
    let start = p.get("start").and_then(Value::as_bool).unwrap_or(false);
    match action {
        "add_job" => {
            let req = add_request(p, Some(job_id.to_string())).map_err(err)?;
            let added = q.add_job(req, start).await.map_err(err)?;
            let mut m = msg("added");
            add_extras(&mut m, &added, start);
            Ok(m)
        }
        "add_jobs" => {
            let items = p
                .get("jobs")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            let mut reqs = Vec::with_capacity(items.len());
            for (i, item) in items.iter().enumerate() {
                let id = str_param(item, "job_id").map(str::to_string);
                reqs.push(add_request(item, id).map_err(|e| err(e.in_batch(i)))?);
            }
            let added = q.add_jobs(reqs, start).await.map_err(err)?;
            let duplicates = added.iter().filter(|a| a.duplicate).count();
            let jobs: Vec<Value> = added
                .iter()
                .map(|a| {
                    let mut j = json!({"job_id": a.job.job_id, "status": a.job.status.as_str()});
                    if a.duplicate {
                        j["duplicate"] = json!(true);
                    }
                    j
                })
                .collect();
            Ok(json!({
                "action": action, "count": jobs.len(), "added": jobs.len() - duplicates,
                "duplicates": duplicates, "started": start, "jobs": jobs,
            }))
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
            let rec = q.get_status(job_id).await.map_err(err)?;
            Ok(json!({"action": action, "job_id": job_id, "status": views::seed_job(&rec, false)}))
        }
        "list_jobs" => {
            let paged = p.get("limit").is_some() || p.get("cursor").is_some();
            let page = q.list_jobs(list_query(p, None)).await.map_err(err)?;
            let jobs: Vec<Value> = page.jobs.iter().map(|r| views::seed_job(r, true)).collect();
            let count = jobs.len();
            let mut v = json!({"action": action, "jobs": jobs, "count": count});
            if paged {
                v["total_count"] = json!(page.total);
                v["next_cursor"] = json!(page.next_cursor);
            }
            Ok(v)
        }
        "get_logs" => {
            let (lines, dropped) = q.get_logs(job_id).await.map_err(err)?;
            let mut m = views::logs(&lines, dropped);
            m.insert("action".into(), json!(action));
            m.insert("job_id".into(), json!(job_id));
            Ok(serde_json::Value::Object(m))
        }
        "list_job_types" => Ok(job_types(state, action).await),
        _ => {
            let c = q.counts().await;
            let (types, broken) = q.catalog().list();
            Ok(json!({
                "action": "health",
                "queue_running": true,
                "backend": "wasm",
                "status": if broken.is_empty() { "healthy" } else { "degraded" },
                "job_types": types.iter().map(|t| t.name.clone()).collect::<Vec<_>>(),
                "broken_job_files": broken,
                "jobs": c,
                "host_id": q.host_id(),
            }))
        }
    }
}

async fn job_types(state: &AppState, action: &str) -> Value {
    let (types, broken) = state.queue.catalog().list();
    let hosts = state.queue.hosts().await;
    let types: Vec<Value> = types
        .iter()
        .map(|t| {
            let on: Vec<&str> = hosts
                .iter()
                .filter(|h| h.job_types.iter().any(|n| *n == t.name))
                .map(|h| h.host_id.as_str())
                .collect();
            let cfg = state.queue.config();
            let m = &t.manifest;
            let l = m.limits.apply(cfg.limits);
            json!({
                "job_type": t.name, "name": t.info().name, "version": t.info().version,
                "description": t.info().description, "params_schema": t.info().params_schema,
                "file": t.file.display().to_string(), "sha256": t.sha256, "hosts": on,
                "manifest": m.file.as_ref().map(|f| f.display().to_string()),
                "limits": {
                    "memory_mib": l.memory_bytes >> 20, "fuel": l.fuel,
                    "timeout_secs": l.timeout.as_secs_f64(), "result_max_bytes": l.result_bytes,
                    "log_max_bytes": l.log_bytes, "max_concurrent": m.limits.max_concurrent,
                    "max_attempts": m.limits.max_attempts.unwrap_or(cfg.default_max_attempts),
                    "priority": m.limits.priority.unwrap_or(0),
                },
                "grants": m.grants.describe(),
            })
        })
        .collect();
    json!({"action": action, "count": types.len(), "job_types": types, "broken": broken,
           "loading": state.queue.catalog().loading()})
}

async fn framework(state: &AppState, method: &str, p: &Value) -> Res {
    let q = &state.queue;
    let job_id = str_param(p, "job_id").unwrap_or_default();
    let err = |e| (e, true);
    match method {
        "queue_add_job" => {
            let start = p.get("start").and_then(Value::as_bool).unwrap_or(false);
            let req = add_request(p, Some(job_id.to_string())).map_err(err)?;
            let added = q.add_job(req, start).await.map_err(err)?;
            let rec = &added.job;
            let mut v = json!({
                "message": format!("Job {job_id} added successfully"), "job_id": job_id,
                "job_type": rec.job_type, "status": "pending", "description": "Job added to queue",
                "store": "queuemgr", "poll_with": "queue_get_job_status",
            });
            if start || added.duplicate {
                v["status"] = json!(rec.status.framework_name());
                v["description"] = json!(rec.description);
            }
            if added.duplicate {
                v["duplicate"] = json!(true);
                v["job_id"] = json!(rec.job_id);
                v["message"] = json!(format!("Job {} already holds this unique_key", rec.job_id));
            }
            Ok(v)
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
            let rec = q.get_status(job_id).await.map_err(err)?;
            Ok(views::framework_job(&rec))
        }
        "queue_get_job_logs" => {
            let (lines, dropped) = q.get_logs(job_id).await.map_err(err)?;
            let mut m = serde_json::Map::new();
            m.insert("job_id".into(), json!(job_id));
            m.extend(views::logs(&lines, dropped));
            Ok(Value::Object(m))
        }
        "queue_list_jobs" => {
            let filter_name = str_param(p, "status_filter");
            let query = list_query(p, Some(100));
            let limit = query.limit.unwrap_or(100);
            let page = q.list_jobs(query).await.map_err(err)?;
            let jobs: Vec<Value> = page
                .jobs
                .iter()
                .map(|r| views::framework_list_item(r))
                .collect();
            let mut v = json!({"jobs": jobs, "total_count": page.total, "status_filter": filter_name, "limit": limit});
            if p.get("cursor").is_some() || page.next_cursor.is_some() {
                v["next_cursor"] = json!(page.next_cursor);
            }
            Ok(v)
        }
        _ => Ok(framework_health(state).await),
    }
}

/// The `queue_health` data (also part of `GET /health`).
pub async fn framework_health(state: &AppState) -> Value {
    let q = &state.queue;
    let c = q.counts().await;
    let cfg = q.config();
    let reg = q.store_stats();
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
        "host_id": q.host_id(),
        "hosts": q.hosts().await,
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
