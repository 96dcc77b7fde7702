//! The seed's `queue` command: one action per call, answered in the seed's shapes (statuses
//! `PENDING`, …; an action's name and the job's id echoed).

use super::params::{BatchJob, QueueAction, QueueParams};
use super::{Answer, Command, add_request, answer, list_query};
use crate::api::AppState;
use crate::api::jsonrpc::CallResult;
use crate::api::views;
use crate::auth::Caller;
use crate::queue::Added;
use crate::queue::QueueCounts;
use serde::Serialize;
use serde_json::{Map, Value};

/// The id the seed's calls act on when they name none.
const DEFAULT_JOB: &str = "default_job";

/// Runs one `queue` action.
pub(super) async fn call(state: &AppState, caller: &Caller, p: QueueParams) -> CallResult {
    let c = Command::Queue;
    match p.action {
        QueueAction::AddJob => answer(c, add_job(state, caller, p).await),
        QueueAction::AddJobs => answer(c, add_jobs(state, caller, p).await),
        QueueAction::StartJob => answer(c, start_job(state, caller, p).await),
        QueueAction::StopJob => answer(c, stop_job(state, caller, p).await),
        QueueAction::DeleteJob => answer(c, delete_job(state, caller, p).await),
        QueueAction::GetStatus => answer(c, get_status(state, caller, p).await),
        QueueAction::ListJobs => answer(c, list_jobs(state, caller, p).await),
        QueueAction::GetLogs => answer(c, get_logs(state, caller, p).await),
        QueueAction::ListJobTypes => answer(c, Ok(job_types(state, caller, p.action).await)),
        QueueAction::Health => answer(c, Ok(health(state).await)),
        QueueAction::AddSchedule
        | QueueAction::ListSchedules
        | QueueAction::GetSchedule
        | QueueAction::UpdateSchedule
        | QueueAction::DeleteSchedule
        | QueueAction::PauseSchedule
        | QueueAction::ResumeSchedule => answer(c, super::schedules::seed(state, p).await),
        QueueAction::ListQueues
        | QueueAction::SetQueue
        | QueueAction::PauseQueue
        | QueueAction::ResumeQueue => answer(c, super::queues::seed(state, p).await),
    }
}

/// `add_job`, `start_job`, `stop_job`, `delete_job`: what was done to which job. Beyond the
/// original's keys, `duplicate` and `status` appear only when the new params are used, so that
/// existing clients see the same object.
#[derive(Serialize)]
struct Done {
    action: &'static str,
    job_id: String,
    message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    duplicate: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    status: Option<&'static str>,
}

impl Done {
    fn new(action: QueueAction, job_id: String, verb: &str) -> Done {
        Done {
            action: action.as_str(),
            message: format!("Job {job_id} {verb} successfully"),
            job_id,
            duplicate: None,
            status: None,
        }
    }
}

fn job_id(p: &QueueParams) -> String {
    p.job_id.clone().unwrap_or_else(|| DEFAULT_JOB.to_string())
}

fn start(p: &QueueParams) -> bool {
    p.start.unwrap_or(false)
}

async fn add_job(state: &AppState, caller: &Caller, p: QueueParams) -> Answer<Done> {
    let id = job_id(&p);
    let start = start(&p);
    let req = add_request(caller, Some(id.clone()), p.job_type, p.params, p.add)?;
    let added = state.queue.add_job(req, start).await?;
    let mut done = Done::new(p.action, id, "added");
    if added.duplicate {
        done.duplicate = Some(true);
        done.job_id = added.job.job_id.clone();
        done.message = format!("Job {} already holds this unique_key", added.job.job_id);
    }
    if start || added.duplicate {
        done.status = Some(added.job.status.as_str());
    }
    Ok(done)
}

/// `add_jobs`: one line per job asked for, in order.
#[derive(Serialize)]
struct BatchAdded {
    action: &'static str,
    count: usize,
    added: usize,
    duplicates: usize,
    started: bool,
    jobs: Vec<BatchLine>,
}

#[derive(Serialize)]
struct BatchLine {
    job_id: String,
    status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    duplicate: Option<bool>,
}

async fn add_jobs(state: &AppState, caller: &Caller, p: QueueParams) -> Answer<BatchAdded> {
    let start = start(&p);
    let items = p.jobs.unwrap_or_default();
    let mut reqs = Vec::with_capacity(items.len());
    for (i, item) in items.into_iter().enumerate() {
        let BatchJob {
            job_id,
            job_type,
            params,
            add,
        } = item;
        reqs.push(add_request(caller, job_id, job_type, params, add).map_err(|e| e.in_batch(i))?);
    }
    let added: Vec<Added> = state.queue.add_jobs(reqs, start).await?;
    let duplicates = added.iter().filter(|a| a.duplicate).count();
    let jobs: Vec<BatchLine> = added
        .iter()
        .map(|a| BatchLine {
            job_id: a.job.job_id.clone(),
            status: a.job.status.as_str(),
            duplicate: a.duplicate.then_some(true),
        })
        .collect();
    Ok(BatchAdded {
        action: p.action.as_str(),
        count: jobs.len(),
        added: jobs.len() - duplicates,
        duplicates,
        started: start,
        jobs,
    })
}

async fn start_job(state: &AppState, caller: &Caller, p: QueueParams) -> Answer<Done> {
    let id = job_id(&p);
    state.queue.start_job(&id, caller).await?;
    Ok(Done::new(p.action, id, "started"))
}

async fn stop_job(state: &AppState, caller: &Caller, p: QueueParams) -> Answer<Done> {
    let id = job_id(&p);
    state.queue.stop_job(&id, caller).await?;
    Ok(Done::new(p.action, id, "stopped"))
}

async fn delete_job(state: &AppState, caller: &Caller, p: QueueParams) -> Answer<Done> {
    let id = job_id(&p);
    state.queue.delete_job(&id, caller).await?;
    Ok(Done::new(p.action, id, "deleted"))
}

/// `get_status`: the job in the seed's shape.
#[derive(Serialize)]
struct Status {
    action: &'static str,
    job_id: String,
    status: Value,
}

async fn get_status(state: &AppState, caller: &Caller, p: QueueParams) -> Answer<Status> {
    let id = job_id(&p);
    let rec = state.queue.get_status(&id).await?;
    state.queue.may_see(&rec, caller, "read")?;
    let mut status = views::seed_job(&rec, false);
    views::with_hold(&mut status, state.queue.hold_of(&rec).await);
    Ok(Status {
        action: p.action.as_str(),
        job_id: id,
        status,
    })
}

/// `list_jobs`: with `limit` or `cursor`, the page's total and the next cursor too.
#[derive(Serialize)]
struct Listed {
    action: &'static str,
    jobs: Vec<Value>,
    count: usize,
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    paging: Option<Paging>,
}

#[derive(Serialize)]
struct Paging {
    total_count: usize,
    next_cursor: Option<String>,
}

async fn list_jobs(state: &AppState, caller: &Caller, p: QueueParams) -> Answer<Listed> {
    let paged = p.limit.is_some() || p.cursor.is_some();
    let query = list_query(
        caller,
        p.status_filter,
        p.job_type,
        p.cursor,
        p.order,
        p.limit,
    );
    let page = state.queue.list_jobs(query).await?;
    let jobs: Vec<Value> = page.jobs.iter().map(|r| views::seed_job(r, true)).collect();
    Ok(Listed {
        action: p.action.as_str(),
        count: jobs.len(),
        jobs,
        paging: paged.then_some(Paging {
            total_count: page.total,
            next_cursor: page.next_cursor,
        }),
    })
}

/// `get_logs`: the run's lines, then the action and the job's id.
#[derive(Serialize)]
struct Logs {
    #[serde(flatten)]
    logs: Map<String, Value>,
    action: &'static str,
    job_id: String,
}

async fn get_logs(state: &AppState, caller: &Caller, p: QueueParams) -> Answer<Logs> {
    let id = job_id(&p);
    let (lines, dropped) = state.queue.get_logs(&id, caller).await?;
    Ok(Logs {
        logs: views::logs(&lines, dropped),
        action: p.action.as_str(),
        job_id: id,
    })
}

/// `list_job_types`: each loaded type with its schema, limits, grants and the hosts that have
/// it; broken files with their error; types still loading.
#[derive(Serialize)]
struct JobTypes {
    action: &'static str,
    count: usize,
    job_types: Vec<JobTypeView>,
    broken: Vec<crate::catalog::BrokenFile>,
    loading: Vec<String>,
}

#[derive(Serialize)]
struct JobTypeView {
    job_type: String,
    name: String,
    version: String,
    description: String,
    params_schema: Value,
    file: String,
    sha256: String,
    hosts: Vec<String>,
    manifest: Option<String>,
    limits: TypeLimits,
    grants: Value,
}

#[derive(Serialize)]
struct TypeLimits {
    memory_mib: usize,
    fuel: Option<u64>,
    timeout_secs: f64,
    result_max_bytes: usize,
    log_max_bytes: usize,
    max_concurrent: Option<usize>,
    max_attempts: u32,
    priority: i32,
}

async fn job_types(state: &AppState, caller: &Caller, action: QueueAction) -> JobTypes {
    let (mut types, broken) = state.queue.catalog().list();
    // A scoped key sees the job types it may add.
    if let Some(scope) = &caller.scope {
        types.retain(|t| scope.admits_type(&t.name));
    }
    let hosts = state.queue.hosts().await;
    let cfg = state.queue.config();
    let job_types: Vec<JobTypeView> = types
        .iter()
        .map(|t| {
            let m = &t.manifest;
            let l = m.limits.apply(cfg.limits);
            let info = t.info();
            JobTypeView {
                job_type: t.name.clone(),
                name: info.name.clone(),
                version: info.version.clone(),
                description: info.description.clone(),
                params_schema: info.params_schema.clone(),
                file: t.file.display().to_string(),
                sha256: t.sha256.clone(),
                hosts: hosts
                    .iter()
                    .filter(|h| h.job_types.iter().any(|n| *n == t.name))
                    .map(|h| h.host_id.clone())
                    .collect(),
                manifest: m.file.as_ref().map(|f| f.display().to_string()),
                limits: TypeLimits {
                    memory_mib: l.memory_bytes >> 20,
                    fuel: l.fuel,
                    timeout_secs: l.timeout.as_secs_f64(),
                    result_max_bytes: l.result_bytes,
                    log_max_bytes: l.log_bytes,
                    max_concurrent: m.limits.max_concurrent,
                    max_attempts: m.limits.max_attempts.unwrap_or(cfg.default_max_attempts),
                    priority: m.limits.priority.unwrap_or(0),
                },
                grants: m.grants.describe(),
            }
        })
        .collect();
    JobTypes {
        action: action.as_str(),
        count: job_types.len(),
        job_types,
        broken,
        loading: state.queue.catalog().loading(),
    }
}

/// `health`: the queue, its job types and broken files, its counts.
#[derive(Serialize)]
struct Health {
    action: &'static str,
    queue_running: bool,
    backend: &'static str,
    status: &'static str,
    job_types: Vec<String>,
    broken_job_files: Vec<crate::catalog::BrokenFile>,
    jobs: QueueCounts,
    host_id: String,
}

async fn health(state: &AppState) -> Health {
    let q = &state.queue;
    let c = q.counts().await;
    let (types, broken) = q.catalog().list();
    Health {
        action: QueueAction::Health.as_str(),
        queue_running: true,
        backend: "wasm",
        status: if broken.is_empty() {
            "healthy"
        } else {
            "degraded"
        },
        job_types: types.iter().map(|t| t.name.clone()).collect(),
        broken_job_files: broken,
        jobs: c,
        host_id: q.host_id().to_string(),
    }
}
