//! The flow commands: `queue_send_event` (an approval, a webhook: a job waiting for it runs
//! again) and `queue_get_flow` (a job and the jobs its runs enqueued, as a graph).

use super::params::{JobIdParams, SendEventParams};
use super::{Answer, param_error};
use crate::api::{AppState, views};
use crate::auth::Caller;
use crate::store::EventTarget;
use serde::Serialize;
use serde_json::{Value, json};

/// `queue_send_event`'s answer.
#[derive(Serialize)]
pub(super) struct Sent {
    message: String,
    job_id: String,
    status: &'static str,
    /// Whether the job was waiting for this event and runs again.
    resumed: bool,
}

pub(super) async fn send_event(
    state: &AppState,
    caller: &Caller,
    p: SendEventParams,
) -> Answer<Sent> {
    let target = match (p.job_id, p.unique_key) {
        (Some(id), None) => EventTarget::Job(id),
        (None, Some(k)) => EventTarget::Key(k),
        (a, b) => {
            return Err(param_error(
                "job_id",
                "exactly one of job_id and unique_key",
                json!({"job_id": a, "unique_key": b}),
                "parameter 'job_id': give exactly one of job_id and unique_key".into(),
            ));
        }
    };
    let job = state
        .queue
        .send_event(target, &p.name, p.payload.unwrap_or(Value::Null), caller)
        .await?;
    let resumed = job.event == crate::job::Event::Woken;
    Ok(Sent {
        message: format!("Event '{}' sent to job {}", p.name, job.job_id),
        job_id: job.job_id.clone(),
        status: job.status.framework_name(),
        resumed,
    })
}

pub(super) async fn get_flow(state: &AppState, caller: &Caller, p: JobIdParams) -> Answer<Value> {
    let nodes = state.queue.get_flow(&p.job_id, caller).await?;
    Ok(flow_json(&nodes))
}

/// A flow as a graph: its nodes (each job's view) and its edges (parent → child).
pub fn flow_json(nodes: &[std::sync::Arc<crate::job::JobRecord>]) -> Value {
    let edges: Vec<Value> = nodes
        .iter()
        .filter_map(|n| {
            n.parent
                .as_ref()
                .map(|p| json!({"from": p, "to": n.job_id}))
        })
        .collect();
    let counts = nodes.iter().fold(
        std::collections::BTreeMap::<&str, usize>::new(),
        |mut m, n| {
            *m.entry(n.status.framework_name()).or_default() += 1;
            m
        },
    );
    json!({
        "job_id": nodes.first().map(|n| n.job_id.clone()),
        "count": nodes.len(),
        "by_status": counts,
        "nodes": nodes.iter().map(|n| views::framework_job(n)).collect::<Vec<_>>(),
        "edges": edges,
    })
}
