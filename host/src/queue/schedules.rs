//! What the API asks of schedules: checked here (the job type, its params, the expression and
//! zone), stored by the store, enqueued by the [`super::periodic`] service.

use super::{Queue, QueueError};
use crate::job::{Json, Status, now_micros};
use crate::schedule::{
    CatchUp, Origin, Overlap, ScheduleRecord, ScheduleSpec, Timetable, TimetableError,
};
use crate::store::PutSchedule;
use serde::Serialize;
use std::sync::Arc;

/// How many upcoming slots a view shows.
const NEXT_RUNS: usize = 3;

/// A change to a schedule (`update_schedule`): the fields given replace the stored ones.
#[derive(Debug, Clone, Default)]
pub struct SchedulePatch {
    /// The job type.
    pub job_type: Option<String>,
    /// The jobs' params.
    pub params: Option<serde_json::Value>,
    /// The expression.
    pub cron: Option<String>,
    /// The zone.
    pub timezone: Option<String>,
    /// The overlap policy.
    pub overlap: Option<Overlap>,
    /// The catch-up policy.
    pub catch_up: Option<CatchUp>,
    /// The catch-up window.
    pub catch_up_window_secs: Option<u64>,
    /// Paused or not.
    pub enabled: Option<bool>,
    /// The jobs' priority.
    pub priority: Option<i32>,
    /// The jobs' attempts.
    pub max_attempts: Option<u32>,
}

/// A schedule as the API shows it.
#[derive(Debug, Clone, Serialize)]
pub struct ScheduleView {
    /// Its spec.
    #[serde(flatten)]
    pub spec: ScheduleSpec,
    /// Where it was declared.
    pub origin: Origin,
    /// The expression in words.
    pub description: String,
    /// The next slots (RFC 3339), if enabled.
    pub next_runs: Vec<String>,
    /// The last slot that enqueued a job (RFC 3339).
    pub last_run: Option<String>,
    /// That job.
    pub last_job_id: Option<String>,
    /// That job's status now (the seed's spelling), if it is still stored.
    pub last_status: Option<&'static str>,
    /// A slot waiting behind a live run (RFC 3339).
    pub queued_run: Option<String>,
    /// Slots dropped by the overlap or catch-up policy.
    pub skipped: u64,
    /// When it was declared (RFC 3339).
    pub created_at: String,
    /// When its spec last changed (RFC 3339).
    pub updated_at: String,
}

fn rfc(t: i64) -> String {
    crate::store::transitions::rfc3339(t)
}

fn invalid(field: &str, expected: &str, got: serde_json::Value, e: TimetableError) -> QueueError {
    QueueError::InvalidParams(Box::new(super::ParamError {
        field: field.to_string(),
        violation: "value",
        expected: expected.into(),
        got,
        message: format!("parameter '{field}': {e}"),
    }))
}

impl Queue {
    /// Checks a spec as a request gives it: the type is loaded, the params fit its schema, the
    /// expression and zone read.
    fn check_schedule(&self, spec: &ScheduleSpec) -> Result<Timetable, QueueError> {
        if spec.name.is_empty() {
            return Err(QueueError::InvalidParams(Box::new(super::ParamError {
                field: "name".into(),
                violation: "value",
                expected: "non-empty string".into(),
                got: "".into(),
                message: "parameter 'name' must be a non-empty string".into(),
            })));
        }
        let jt = self.job_type(Some(&spec.job_type))?;
        let params = spec.params.to_value();
        if let Some(err) = jt.validator.iter_errors(&params).next() {
            return Err(QueueError::from_schema_error(
                &err,
                &jt.info().params_schema,
            ));
        }
        let t = spec.timetable().map_err(|e| match e {
            TimetableError::Zone(_) => invalid(
                "timezone",
                "an IANA time zone name",
                spec.timezone.clone().into(),
                e,
            ),
            TimetableError::Cron { .. } => invalid(
                "cron",
                "a cron expression (5 or 6 fields, or @hourly, @daily, …)",
                spec.cron.clone().into(),
                e,
            ),
        })?;
        // An expression that reads but names no time to come (`0 0 30 2 *`) would never run.
        if t.next_after(now_micros()).is_none() {
            return Err(QueueError::InvalidParams(Box::new(super::ParamError {
                field: "cron".into(),
                violation: "value",
                expected: "a cron expression that matches a time to come".into(),
                got: spec.cron.clone().into(),
                message: format!("parameter 'cron': '{}' matches no time to come", spec.cron),
            })));
        }
        Ok(t)
    }

    /// Declares a schedule (through the API): its first slot is the first after now.
    pub async fn add_schedule(&self, spec: ScheduleSpec) -> Result<ScheduleView, QueueError> {
        self.accepting()?;
        self.check_schedule(&spec)?;
        let rec = ScheduleRecord::declared(spec, Origin::Api, now_micros());
        let rec = self
            .inner
            .store
            .put_schedule(rec, PutSchedule::Create)
            .await?;
        Ok(self.schedule_view(rec).await)
    }

    /// The stored schedule named `name`.
    async fn stored_schedule(&self, name: &str) -> Result<ScheduleRecord, QueueError> {
        self.inner
            .store
            .schedules()
            .await?
            .into_iter()
            .find(|s| s.spec.name == name)
            .ok_or_else(|| QueueError::ScheduleNotFound(name.to_string()))
    }

    /// Changes a schedule declared through the API (pause and resume also apply to one declared
    /// in a manifest). A new expression or zone, or a resume, starts from now: slots before it
    /// are not enqueued.
    pub async fn update_schedule(
        &self,
        name: &str,
        patch: SchedulePatch,
    ) -> Result<ScheduleView, QueueError> {
        self.accepting()?;
        let old = self.stored_schedule(name).await?;
        let only_enabled = patch.job_type.is_none()
            && patch.params.is_none()
            && patch.cron.is_none()
            && patch.timezone.is_none()
            && patch.overlap.is_none()
            && patch.catch_up.is_none()
            && patch.catch_up_window_secs.is_none()
            && patch.priority.is_none()
            && patch.max_attempts.is_none();
        if old.origin == Origin::Manifest && !only_enabled {
            return Err(QueueError::ScheduleInManifest {
                name: name.to_string(),
                job_type: old.spec.job_type.clone(),
            });
        }
        let mut spec = old.spec.clone();
        if let Some(v) = patch.job_type {
            spec.job_type = v;
        }
        if let Some(v) = patch.params {
            spec.params = Json::new(&v);
        }
        if let Some(v) = patch.cron {
            spec.cron = v;
        }
        if let Some(v) = patch.timezone {
            spec.timezone = v;
        }
        if let Some(v) = patch.overlap {
            spec.overlap = v;
        }
        if let Some(v) = patch.catch_up {
            spec.catch_up = v;
        }
        if let Some(v) = patch.catch_up_window_secs {
            spec.catch_up_window_secs = v;
        }
        if let Some(v) = patch.enabled {
            spec.enabled = v;
        }
        if let Some(v) = patch.priority {
            spec.priority = Some(v);
        }
        if let Some(v) = patch.max_attempts {
            spec.max_attempts = Some(v.max(1));
        }
        if old.origin == Origin::Api {
            self.check_schedule(&spec)?;
        }
        let reset = spec.cron != old.spec.cron
            || spec.timezone != old.spec.timezone
            || (spec.enabled && !old.spec.enabled);
        let now = now_micros();
        let rec = ScheduleRecord {
            spec,
            cursor: now,
            updated_at: now,
            ..old
        };
        let rec = self
            .inner
            .store
            .put_schedule(rec, PutSchedule::Replace { reset })
            .await?;
        Ok(self.schedule_view(rec).await)
    }

    /// Deletes a schedule declared through the API (its jobs stay).
    pub async fn delete_schedule(&self, name: &str) -> Result<ScheduleView, QueueError> {
        self.accepting()?;
        let old = self.stored_schedule(name).await?;
        // A manifest's schedule is the manifest's to remove, unless its job type is gone
        // from this host (then no manifest here can remove it).
        if old.origin == Origin::Manifest && self.inner.catalog.get(&old.spec.job_type).is_some() {
            return Err(QueueError::ScheduleInManifest {
                name: name.to_string(),
                job_type: old.spec.job_type,
            });
        }
        let gone = self
            .inner
            .store
            .delete_schedule(name)
            .await?
            .ok_or_else(|| QueueError::ScheduleNotFound(name.to_string()))?;
        Ok(self.schedule_view(gone).await)
    }

    /// Every schedule, by name.
    pub async fn list_schedules(&self) -> Result<Vec<ScheduleView>, QueueError> {
        let recs = self.inner.store.schedules().await?;
        let mut out = Vec::with_capacity(recs.len());
        for r in recs {
            out.push(self.schedule_view(r).await);
        }
        Ok(out)
    }

    /// One schedule.
    pub async fn get_schedule(&self, name: &str) -> Result<ScheduleView, QueueError> {
        let rec = self.stored_schedule(name).await?;
        Ok(self.schedule_view(rec).await)
    }

    async fn schedule_view(&self, r: ScheduleRecord) -> ScheduleView {
        let timetable = r.spec.timetable().ok();
        let mut next_runs = Vec::new();
        if let (Some(t), true) = (&timetable, r.spec.enabled) {
            let mut c = r.cursor.max(now_micros());
            while next_runs.len() < NEXT_RUNS {
                let Some(n) = t.next_after(c) else { break };
                next_runs.push(rfc(n));
                c = n;
            }
        }
        let last_status: Option<Status> = match &r.last_job_id {
            Some(id) => self
                .inner
                .store
                .get(id)
                .await
                .ok()
                .flatten()
                .map(|j: Arc<crate::job::JobRecord>| j.status),
            None => None,
        };
        ScheduleView {
            description: timetable.map(|t| t.describe()).unwrap_or_default(),
            origin: r.origin,
            next_runs,
            last_run: r.last_slot.map(rfc),
            last_job_id: r.last_job_id,
            last_status: last_status.map(Status::as_str),
            queued_run: r.queued.map(rfc),
            skipped: r.skipped,
            created_at: rfc(r.created_at),
            updated_at: rfc(r.updated_at),
            spec: r.spec,
        }
    }
}
