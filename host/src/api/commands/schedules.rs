//! The schedule commands, in both dialects: the seed's `queue` actions (`add_schedule`, …) and
//! the framework's `queue_*_schedule` commands. Both read into one [`ScheduleSpec`] or
//! [`SchedulePatch`] and answer the same view (a schedule has no status to spell two ways).

use super::Answer;
use super::params::{
    AddScheduleParams, NoParams, QueueAction, QueueParams, ScheduleNameParams, ScheduleTiming,
    UpdateScheduleParams,
};
use crate::api::AppState;
use crate::job::Json;
use crate::queue::{ParamError, QueueError, SchedulePatch, ScheduleView};
use crate::schedule::{DEFAULT_CATCH_UP_WINDOW_SECS, ScheduleSpec};
use serde::Serialize;
use serde_json::Value;

/// One schedule, after an action on it.
#[derive(Serialize)]
pub(super) struct One {
    #[serde(skip_serializing_if = "Option::is_none")]
    action: Option<&'static str>,
    message: String,
    schedule: ScheduleView,
}

/// Every schedule.
#[derive(Serialize)]
pub(super) struct Many {
    #[serde(skip_serializing_if = "Option::is_none")]
    action: Option<&'static str>,
    count: usize,
    schedules: Vec<ScheduleView>,
}

fn one(action: Option<QueueAction>, verb: &str, schedule: ScheduleView) -> One {
    One {
        action: action.map(QueueAction::as_str),
        message: format!("Schedule {} {verb}", schedule.spec.name),
        schedule,
    }
}

fn missing(field: &str, action: &str) -> QueueError {
    QueueError::InvalidParams(Box::new(ParamError {
        field: field.to_string(),
        violation: "missing",
        expected: "string".into(),
        got: Value::Null,
        message: format!("parameter '{field}' is required for {action}"),
    }))
}

fn spec(
    name: String,
    job_type: String,
    cron: String,
    params: Option<Value>,
    priority: Option<i32>,
    max_attempts: Option<u32>,
    t: ScheduleTiming,
) -> ScheduleSpec {
    ScheduleSpec {
        name,
        job_type,
        params: Json::new(&params.unwrap_or_else(|| Value::Object(Default::default()))),
        cron,
        timezone: t.timezone.unwrap_or_else(|| "UTC".into()),
        overlap: t.overlap.map(Into::into).unwrap_or_default(),
        catch_up: t.catch_up.map(Into::into).unwrap_or_default(),
        catch_up_window_secs: t
            .catch_up_window_secs
            .unwrap_or(DEFAULT_CATCH_UP_WINDOW_SECS),
        enabled: t.enabled.unwrap_or(true),
        priority,
        max_attempts: max_attempts.map(|m| m.max(1)),
    }
}

fn patch(
    job_type: Option<String>,
    cron: Option<String>,
    params: Option<Value>,
    priority: Option<i32>,
    max_attempts: Option<u32>,
    t: ScheduleTiming,
) -> SchedulePatch {
    SchedulePatch {
        job_type,
        params,
        cron,
        timezone: t.timezone,
        overlap: t.overlap.map(Into::into),
        catch_up: t.catch_up.map(Into::into),
        catch_up_window_secs: t.catch_up_window_secs,
        enabled: t.enabled,
        priority,
        max_attempts,
    }
}

/// The seed's `*_schedule` actions.
pub(super) async fn seed(state: &AppState, p: QueueParams) -> Answer<Value> {
    let action = p.action;
    let a = action.as_str();
    let q = &state.queue;
    let name = || p.schedule.name.clone().ok_or_else(|| missing("name", a));
    match action {
        QueueAction::ListSchedules => {
            let schedules = q.list_schedules().await?;
            to_value(Many {
                action: Some(a),
                count: schedules.len(),
                schedules,
            })
        }
        QueueAction::AddSchedule => {
            let n = name()?;
            let job_type = p.job_type.clone().ok_or_else(|| missing("job_type", a))?;
            let cron = p.schedule.cron.clone().ok_or_else(|| missing("cron", a))?;
            let s = spec(
                n,
                job_type,
                cron,
                p.params,
                p.add.priority,
                p.add.max_attempts,
                p.schedule.timing,
            );
            to_value(one(Some(action), "added", q.add_schedule(s).await?))
        }
        QueueAction::GetSchedule => {
            to_value(one(Some(action), "found", q.get_schedule(&name()?).await?))
        }
        QueueAction::UpdateSchedule => {
            let n = name()?;
            let pt = patch(
                p.job_type,
                p.schedule.cron,
                p.params,
                p.add.priority,
                p.add.max_attempts,
                p.schedule.timing,
            );
            to_value(one(
                Some(action),
                "updated",
                q.update_schedule(&n, pt).await?,
            ))
        }
        QueueAction::DeleteSchedule => to_value(one(
            Some(action),
            "deleted",
            q.delete_schedule(&name()?).await?,
        )),
        QueueAction::PauseSchedule | QueueAction::ResumeSchedule => {
            let enabled = action == QueueAction::ResumeSchedule;
            to_value(set_enabled(state, Some(action), &name()?, enabled).await?)
        }
        _ => Err(missing("action", a)),
    }
}

fn to_value<T: Serialize>(v: T) -> Answer<Value> {
    serde_json::to_value(v).map_err(|e| {
        QueueError::InvalidParams(Box::new(ParamError {
            field: "schedule".into(),
            violation: "value",
            expected: Value::Null,
            got: Value::Null,
            message: format!("cannot encode the answer: {e}"),
        }))
    })
}

/// `queue_add_schedule`.
pub(super) async fn add(state: &AppState, p: AddScheduleParams) -> Answer<One> {
    let s = spec(
        p.name,
        p.job_type,
        p.cron,
        p.params,
        p.priority,
        p.max_attempts,
        p.timing,
    );
    Ok(one(None, "added", state.queue.add_schedule(s).await?))
}

/// `queue_update_schedule`.
pub(super) async fn update(state: &AppState, p: UpdateScheduleParams) -> Answer<One> {
    let pt = patch(
        p.job_type,
        p.cron,
        p.params,
        p.priority,
        p.max_attempts,
        p.timing,
    );
    Ok(one(
        None,
        "updated",
        state.queue.update_schedule(&p.name, pt).await?,
    ))
}

/// `queue_list_schedules`.
pub(super) async fn list(state: &AppState, _: NoParams) -> Answer<Many> {
    let schedules = state.queue.list_schedules().await?;
    Ok(Many {
        action: None,
        count: schedules.len(),
        schedules,
    })
}

/// `queue_get_schedule`.
pub(super) async fn get(state: &AppState, p: ScheduleNameParams) -> Answer<One> {
    Ok(one(None, "found", state.queue.get_schedule(&p.name).await?))
}

/// `queue_delete_schedule`.
pub(super) async fn delete(state: &AppState, p: ScheduleNameParams) -> Answer<One> {
    Ok(one(
        None,
        "deleted",
        state.queue.delete_schedule(&p.name).await?,
    ))
}

/// Pauses or resumes a schedule (the seed's action, or the framework's command).
async fn set_enabled(
    state: &AppState,
    action: Option<QueueAction>,
    name: &str,
    enabled: bool,
) -> Answer<One> {
    let pt = SchedulePatch {
        enabled: Some(enabled),
        ..SchedulePatch::default()
    };
    let verb = if enabled { "resumed" } else { "paused" };
    Ok(one(
        action,
        verb,
        state.queue.update_schedule(name, pt).await?,
    ))
}

/// `queue_pause_schedule`.
pub(super) async fn pause(state: &AppState, p: ScheduleNameParams) -> Answer<One> {
    set_enabled(state, None, &p.name, false).await
}

/// `queue_resume_schedule`.
pub(super) async fn resume(state: &AppState, p: ScheduleNameParams) -> Answer<One> {
    set_enabled(state, None, &p.name, true).await
}
