//! The named-queue commands, in both dialects: the seed's `queue` actions (`list_queues`,
//! `set_queue`, `pause_queue`, `resume_queue`) and the framework's `queue_*_queue(s)` commands.
//! Both answer the same views (a queue has no status to spell two ways).

use super::Answer;
use super::params::{
    NoParams, QueueAction, QueueLimits, QueueNameParams, QueueParams, SetQueueParams,
};
use crate::api::AppState;
use crate::limits::Rate;
use crate::queue::{ParamError, QueueError, QueuePatch, QueueView};
use serde::Serialize;
use serde_json::Value;

/// One queue, after an action on it.
#[derive(Serialize)]
pub(super) struct One {
    #[serde(skip_serializing_if = "Option::is_none")]
    action: Option<&'static str>,
    message: String,
    queue: QueueView,
}

/// Every queue.
#[derive(Serialize)]
pub(super) struct Many {
    #[serde(skip_serializing_if = "Option::is_none")]
    action: Option<&'static str>,
    count: usize,
    queues: Vec<QueueView>,
}

fn one(action: Option<QueueAction>, verb: &str, queue: QueueView) -> One {
    One {
        action: action.map(QueueAction::as_str),
        message: format!("Queue {} {verb}", queue.name),
        queue,
    }
}

fn patch(limits: QueueLimits, priority: Option<i32>) -> Answer<QueuePatch> {
    // 0 removes a limit; so does a rate of `none`.
    let limit = |v: Option<u32>| v.map(|n| (n > 0).then_some(n));
    let rate = |field: &str, v: Option<String>| -> Answer<Option<Option<Rate>>> {
        match v.as_deref().map(str::trim) {
            None => Ok(None),
            Some("none") => Ok(Some(None)),
            Some(t) => Rate::parse(t).map(|r| Some(Some(r))).map_err(|e| {
                QueueError::InvalidParams(Box::new(ParamError {
                    field: field.into(),
                    violation: "value",
                    expected: "starts/period, e.g. 100/min, 10/s, 3/10s, or none".into(),
                    got: t.into(),
                    message: format!("parameter '{field}': {e}"),
                }))
            }),
        }
    };
    Ok(QueuePatch {
        concurrency: limit(limits.concurrency),
        key_concurrency: limit(limits.key_concurrency),
        priority: priority.map(Some),
        rate: rate("rate", limits.rate)?,
        key_rate: rate("key_rate", limits.key_rate)?,
    })
}

async fn list_views(state: &AppState, action: Option<QueueAction>) -> Answer<Many> {
    let queues = state.queue.list_queues().await?;
    Ok(Many {
        action: action.map(QueueAction::as_str),
        count: queues.len(),
        queues,
    })
}

async fn set_paused(
    state: &AppState,
    action: Option<QueueAction>,
    name: &str,
    paused: bool,
) -> Answer<One> {
    let q = &state.queue;
    let (verb, view) = if paused {
        ("paused", q.pause_queue(name).await?)
    } else {
        ("resumed", q.resume_queue(name).await?)
    };
    Ok(one(action, verb, view))
}

/// The seed's `*_queue(s)` actions; the queue is named by `queue`.
pub(super) async fn seed(state: &AppState, p: QueueParams) -> Answer<Value> {
    let action = p.action;
    let name = || {
        p.add.queue.clone().ok_or_else(|| {
            QueueError::InvalidParams(Box::new(ParamError {
                field: "queue".into(),
                violation: "missing",
                expected: "string".into(),
                got: Value::Null,
                message: format!("parameter 'queue' is required for {}", action.as_str()),
            }))
        })
    };
    match action {
        QueueAction::ListQueues => to_value(list_views(state, Some(action)).await?),
        QueueAction::SetQueue => {
            let n = name()?;
            let view = state
                .queue
                .set_queue(&n, patch(p.limits.clone(), p.add.priority)?)
                .await?;
            to_value(one(Some(action), "set", view))
        }
        QueueAction::PauseQueue | QueueAction::ResumeQueue => to_value(
            set_paused(
                state,
                Some(action),
                &name()?,
                action == QueueAction::PauseQueue,
            )
            .await?,
        ),
        _ => to_value(list_views(state, Some(action)).await?),
    }
}

fn to_value<T: Serialize>(v: T) -> Answer<Value> {
    serde_json::to_value(v).map_err(|e| {
        QueueError::InvalidParams(Box::new(ParamError {
            field: "queue".into(),
            violation: "value",
            expected: Value::Null,
            got: Value::Null,
            message: format!("cannot encode the answer: {e}"),
        }))
    })
}

/// `queue_list_queues`.
pub(super) async fn list(state: &AppState, _: NoParams) -> Answer<Many> {
    list_views(state, None).await
}

/// `queue_set_queue`.
pub(super) async fn set(state: &AppState, p: SetQueueParams) -> Answer<One> {
    let view = state
        .queue
        .set_queue(&p.queue, patch(p.limits, p.priority)?)
        .await?;
    Ok(one(None, "set", view))
}

/// `queue_pause_queue`.
pub(super) async fn pause(state: &AppState, p: QueueNameParams) -> Answer<One> {
    set_paused(state, None, &p.queue, true).await
}

/// `queue_resume_queue`.
pub(super) async fn resume(state: &AppState, p: QueueNameParams) -> Answer<One> {
    set_paused(state, None, &p.queue, false).await
}
