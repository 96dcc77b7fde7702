//! The framework's `queue_*` commands, answered in the framework's shapes (statuses `pending`,
//! …, `failed` for ERROR), as the reference transcripts show them.

use super::params::{AddJobParams, DeleteJobParams, JobIdParams, ListJobsParams, NoParams};
use super::{Answer, add_request, list_query};
use crate::api::AppState;
use crate::api::views;
use crate::auth::Caller;
use crate::job::Status;
use crate::store::{HostInfo, StoreStats};
use serde::Serialize;
use serde_json::{Map, Value};

/// `queue_add_job`.
#[derive(Serialize)]
pub(super) struct Added {
    message: String,
    job_id: String,
    job_type: String,
    status: &'static str,
    description: String,
    store: &'static str,
    poll_with: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    duplicate: Option<bool>,
}

pub(super) async fn add_job(state: &AppState, caller: &Caller, p: AddJobParams) -> Answer<Added> {
    let start = p.start.unwrap_or(false);
    let job_id = p.job_id;
    let req = add_request(
        caller,
        Some(job_id.clone()),
        Some(p.job_type),
        p.params,
        p.add,
    )?;
    let added = state.queue.add_job(req, start).await?;
    let rec = &added.job;
    let mut v = Added {
        message: format!("Job {job_id} added successfully"),
        job_id,
        job_type: rec.job_type.clone(),
        status: "pending",
        description: "Job added to queue".into(),
        store: "queuemgr",
        poll_with: "queue_get_job_status",
        duplicate: None,
    };
    if start || added.duplicate {
        v.status = rec.status.framework_name();
        v.description = rec.description.clone();
    }
    if added.duplicate {
        v.duplicate = Some(true);
        v.job_id = rec.job_id.clone();
        v.message = format!("Job {} already holds this unique_key", rec.job_id);
    }
    Ok(v)
}

/// `queue_start_job`.
#[derive(Serialize)]
pub(super) struct Started {
    message: String,
    job_id: String,
    status: &'static str,
    description: String,
}

pub(super) async fn start_job(
    state: &AppState,
    caller: &Caller,
    p: JobIdParams,
) -> Answer<Started> {
    let rec = state.queue.start_job(&p.job_id, caller).await?;
    Ok(Started {
        message: format!("Job {} started successfully", p.job_id),
        job_id: p.job_id,
        status: rec.status.framework_name(),
        description: rec.description.clone(),
    })
}

/// `queue_stop_job`.
#[derive(Serialize)]
pub(super) struct Stopped {
    message: String,
    job_id: String,
    status: &'static str,
    description: String,
    stop_requested: bool,
    requested_status: &'static str,
    actual_status: &'static str,
    stopped: bool,
}

pub(super) async fn stop_job(
    state: &AppState,
    caller: &Caller,
    p: super::params::StopJobParams,
) -> Answer<Stopped> {
    let rec = state
        .queue
        .stop_job_keeping(&p.job_id, caller, p.keep_children.unwrap_or(false))
        .await?;
    Ok(Stopped {
        message: format!("Job {} stopped successfully", p.job_id),
        job_id: p.job_id,
        status: rec.status.framework_name(),
        description: rec.description.clone(),
        stop_requested: true,
        requested_status: "stopped",
        actual_status: rec.status.framework_name(),
        stopped: rec.status == Status::Stopped,
    })
}

/// `queue_delete_job`.
#[derive(Serialize)]
pub(super) struct Deleted {
    message: String,
    job_id: String,
    status: &'static str,
    description: String,
    deleted_confirmed: bool,
    actual_status: &'static str,
}

pub(super) async fn delete_job(
    state: &AppState,
    caller: &Caller,
    p: DeleteJobParams,
) -> Answer<Deleted> {
    let rec = state.queue.delete_job(&p.job_id, caller).await?;
    Ok(Deleted {
        message: format!("Job {} deleted successfully", p.job_id),
        job_id: p.job_id,
        status: "deleted",
        description: rec.description.clone(),
        deleted_confirmed: rec.status == Status::Deleted,
        actual_status: rec.status.framework_name(),
    })
}

pub(super) async fn get_job_status(
    state: &AppState,
    caller: &Caller,
    p: JobIdParams,
) -> Answer<Value> {
    let rec = match state.queue.get_status(&p.job_id).await {
        Ok(rec) => rec,
        Err(e) => {
            // A built-in command run in a `/ws` session answers from what the session kept.
            return match state.ws.inline(&p.job_id) {
                Some(inline) => Ok(crate::api::ws::inline_status(&p.job_id, &inline)),
                None => Err(e),
            };
        }
    };
    state.queue.may_see(&rec, caller, "read")?;
    let mut v = views::framework_job(&rec);
    views::with_hold(&mut v, state.queue.hold_of(&rec).await);
    Ok(v)
}

/// `queue_get_job_logs`: the job's id, then its run's lines.
#[derive(Serialize)]
pub(super) struct Logs {
    job_id: String,
    #[serde(flatten)]
    logs: Map<String, Value>,
}

pub(super) async fn get_job_logs(
    state: &AppState,
    caller: &Caller,
    p: JobIdParams,
) -> Answer<Logs> {
    let (lines, dropped) = state.queue.get_logs(&p.job_id, caller).await?;
    Ok(Logs {
        job_id: p.job_id,
        logs: views::logs(&lines, dropped),
    })
}

/// `queue_list_jobs`: `next_cursor` when paging (a cursor given, or more to come).
#[derive(Serialize)]
pub(super) struct Listed {
    jobs: Vec<Value>,
    total_count: usize,
    status_filter: Option<&'static str>,
    limit: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    next_cursor: Option<Option<String>>,
}

/// The framework's page size when a list names none.
const DEFAULT_LIMIT: usize = 100;

pub(super) async fn list_jobs(
    state: &AppState,
    caller: &Caller,
    p: ListJobsParams,
) -> Answer<Listed> {
    let limit = p.limit.unwrap_or(DEFAULT_LIMIT);
    let filter = p.status_filter.map(|f| f.as_str());
    let paging = p.cursor.is_some();
    let query = list_query(
        caller,
        p.status_filter,
        p.job_type,
        p.cursor,
        p.order,
        Some(limit),
    );
    let page = state.queue.list_jobs(query).await?;
    let jobs: Vec<Value> = page
        .jobs
        .iter()
        .map(|r| views::framework_list_item(r))
        .collect();
    let next = page.next_cursor;
    Ok(Listed {
        jobs,
        total_count: page.total,
        status_filter: filter,
        limit,
        next_cursor: (paging || next.is_some()).then_some(next),
    })
}

pub(super) async fn health(state: &AppState, _: NoParams) -> Answer<FrameworkHealth> {
    Ok(framework_health(state).await)
}

/// The `queue_health` data (also part of `GET /health`).
#[derive(Serialize)]
pub struct FrameworkHealth {
    status: &'static str,
    running: bool,
    total_jobs: usize,
    pending_jobs: usize,
    running_jobs: usize,
    completed_jobs: usize,
    failed_jobs: usize,
    stopped_jobs: usize,
    deleted_jobs: usize,
    waiting_jobs: usize,
    registry_path: String,
    max_concurrent_jobs: usize,
    max_retained_terminal_jobs: usize,
    pending_unstarted_jobs: usize,
    host_id: String,
    hosts: Vec<HostInfo>,
    rlimit_nofile: Rlimit,
    registry: StoreStats,
}

impl FrameworkHealth {
    /// Healthy: the store's last write succeeded.
    pub fn is_healthy(&self) -> bool {
        self.status == "healthy"
    }
}

/// The process's open-file limit, as the framework's `queue_health` reports it.
#[derive(Serialize)]
struct Rlimit {
    soft: Option<u64>,
    hard: Option<u64>,
}

/// The `queue_health` data (also part of `GET /health`).
pub async fn framework_health(state: &AppState) -> FrameworkHealth {
    let q = &state.queue;
    let c = q.counts().await;
    let cfg = q.config();
    let reg = q.store_stats();
    let n = |s: Status| c.by_status.get(s.as_str()).copied().unwrap_or(0);
    let l = rustix::process::getrlimit(rustix::process::Resource::Nofile);
    FrameworkHealth {
        status: if reg.last_error.is_some() {
            "degraded"
        } else {
            "healthy"
        },
        running: true,
        total_jobs: c.total,
        pending_jobs: n(Status::Pending),
        running_jobs: n(Status::Running),
        completed_jobs: n(Status::Completed),
        failed_jobs: n(Status::Error),
        stopped_jobs: n(Status::Stopped),
        deleted_jobs: n(Status::Deleted),
        waiting_jobs: c.waiting,
        registry_path: reg.location.clone(),
        max_concurrent_jobs: cfg.max_concurrent,
        max_retained_terminal_jobs: cfg.retention.max_terminal_jobs,
        pending_unstarted_jobs: c.unstarted,
        host_id: q.host_id().to_string(),
        hosts: q.hosts().await,
        rlimit_nofile: Rlimit {
            soft: l.current,
            hard: l.maximum,
        },
        registry: reg,
    }
}
