//! The flow commands: `queue_send_event` (an approval, a webhook: a job waiting for it runs
//! again) and `queue_get_flow` (a job and the jobs its runs enqueued, as a graph).

use super::params::{AddFlowParams, JobIdParams, SendEventParams};
use super::{Answer, param_error};
use crate::api::{AppState, views};
use crate::auth::Caller;
use crate::queue::AddRequest;
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
    let ids: std::collections::HashSet<&str> = nodes.iter().map(|n| n.job_id.as_str()).collect();
    let edges: Vec<Value> = nodes
        .iter()
        .flat_map(|n| {
            let parent = n
                .parent
                .as_deref()
                .filter(|p| ids.contains(p))
                .map(|p| json!({"from": p, "to": n.job_id, "kind": "child"}));
            let deps = n
                .depends_on
                .iter()
                .map(|d| json!({"from": d.job_id, "to": n.job_id, "kind": "dependency"}));
            parent.into_iter().chain(deps).collect::<Vec<_>>()
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

/// The keys of a flow's jobs in an order where each comes after its dependencies, or why there
/// is none: a key twice, a dependency on a key the flow lacks, a cycle (named).
pub fn topological(jobs: &[(String, Vec<String>)]) -> Result<Vec<usize>, String> {
    let mut index = std::collections::HashMap::new();
    for (i, (k, _)) in jobs.iter().enumerate() {
        if index.insert(k.as_str(), i).is_some() {
            return Err(format!("key '{k}' appears twice in the flow"));
        }
    }
    let mut indegree = vec![0usize; jobs.len()];
    let mut dependents: Vec<Vec<usize>> = vec![Vec::new(); jobs.len()];
    for (i, (k, deps)) in jobs.iter().enumerate() {
        for d in deps {
            let Some(&j) = index.get(d.as_str()) else {
                return Err(format!(
                    "job '{k}' depends on '{d}', which the flow does not have"
                ));
            };
            if j == i {
                return Err(format!("job '{k}' depends on itself"));
            }
            indegree[i] += 1;
            dependents[j].push(i);
        }
    }
    let mut ready: std::collections::VecDeque<usize> =
        (0..jobs.len()).filter(|&i| indegree[i] == 0).collect();
    let mut order = Vec::with_capacity(jobs.len());
    while let Some(i) = ready.pop_front() {
        order.push(i);
        for &d in &dependents[i] {
            indegree[d] -= 1;
            if indegree[d] == 0 {
                ready.push_back(d);
            }
        }
    }
    if order.len() < jobs.len() {
        let mut cycle: Vec<&str> = (0..jobs.len())
            .filter(|&i| indegree[i] > 0)
            .map(|i| jobs[i].0.as_str())
            .collect();
        cycle.sort_unstable();
        return Err(format!(
            "the flow has a cycle among the jobs {}",
            cycle.join(", ")
        ));
    }
    Ok(order)
}

pub(super) async fn add_flow(state: &AppState, caller: &Caller, p: AddFlowParams) -> Answer<Value> {
    let flow_id = p.flow_id.unwrap_or_else(crate::job::new_id);
    for j in &p.jobs {
        if !crate::queue::flow::valid_child_name(&j.key) {
            return Err(param_error(
                "jobs.key",
                "letters, digits, '-', '_' and '.', at most 64 bytes",
                json!(j.key),
                format!("parameter 'jobs.key': '{}' is not a valid key", j.key),
            ));
        }
    }
    let graph: Vec<(String, Vec<String>)> = p
        .jobs
        .iter()
        .map(|j| (j.key.clone(), j.depends_on.clone().unwrap_or_default()))
        .collect();
    let order = topological(&graph)
        .map_err(|why| param_error("jobs", "a DAG of jobs by key", Value::Null, why))?;
    let id_of = |key: &str| crate::queue::flow::child_id(&flow_id, key);
    let reqs: Vec<AddRequest> = order
        .iter()
        .map(|&i| {
            let j = &p.jobs[i];
            AddRequest {
                job_id: Some(id_of(&j.key)),
                job_type: Some(j.job_type.clone()),
                params: j.params.clone().unwrap_or_else(|| json!({})),
                priority: j.priority,
                max_attempts: j.max_attempts,
                queue: j.queue.clone(),
                caller: Some(caller.clone()),
                depends_on: graph[i]
                    .1
                    .iter()
                    .map(|k| crate::job::Dependency {
                        key: k.clone(),
                        job_id: id_of(k),
                    })
                    .collect(),
                on_dependency_failure: j
                    .on_dependency_failure
                    .map_or(crate::job::DepPolicy::Fail, |p| p.policy()),
                parent: Some(flow_id.clone()),
                ..AddRequest::default()
            }
        })
        .collect();
    let added = state.queue.add_jobs(reqs, true).await?;
    let jobs: Vec<Value> = order
        .iter()
        .zip(&added)
        .map(|(&i, a)| {
            json!({
                "key": p.jobs[i].key,
                "job_id": a.job.job_id,
                "status": a.job.status.framework_name(),
                "waiting_for": a.job.waiting_for.as_ref().map(views::wait_json),
            })
        })
        .collect();
    Ok(json!({
        "message": format!("Flow {flow_id} added: {} jobs", jobs.len()),
        "flow_id": flow_id,
        "count": jobs.len(),
        "jobs": jobs,
    }))
}
