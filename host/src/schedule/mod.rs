//! Periodic jobs: the model. A schedule names a job type, its params, a cron expression in an
//! IANA time zone and two policies (what to do while the last run is still live, and what to do
//! with slots missed while no host was leading). The store keeps each schedule with its
//! *cursor* — the time up to which its slots have been dealt with — and moves the cursor in the
//! same write that inserts the slot's job, so a slot is enqueued exactly once however many hosts
//! try ([`crate::store::ScheduleStore::fire`] is a compare-and-set on the cursor).
//!
//! Why a module of its own beside [`crate::job`]: the store, the queue's periodic service, the
//! catalog (schedules declared in manifests) and the API all speak it; the decisions
//! ([`plan`]) are pure functions of a schedule, the time and whether its last job is live, so
//! that DST, catch-up and overlap are unit-tested without a clock or a store.

mod plan;
mod timetable;

pub use plan::{GRACE, MAX_SLOTS_PER_LOOK, Plan, plan};
pub use timetable::{Timetable, TimetableError};

use crate::job::Json;
use serde::{Deserialize, Serialize};

/// What a slot does while the schedule's previous job is still PENDING or RUNNING.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Overlap {
    /// Enqueue it anyway (runs may overlap).
    Allow,
    /// Drop it: the slot is counted as skipped.
    #[default]
    Skip,
    /// Keep one slot waiting behind the live run; it is enqueued when that run ends (further
    /// slots meanwhile fold into it).
    Queue,
}

impl Overlap {
    /// The name a request spells.
    pub fn as_str(self) -> &'static str {
        match self {
            Overlap::Allow => "allow",
            Overlap::Skip => "skip",
            Overlap::Queue => "queue",
        }
    }
}

/// What to do with slots older than [`GRACE`] (missed while no host led: downtime, a leader
/// change, a paused schedule is *not* one — resuming starts from the time of the resume).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CatchUp {
    /// Drop them.
    None,
    /// Enqueue the newest of them once (when no slot on time is enqueued).
    #[default]
    Latest,
    /// Enqueue each of them, oldest first, back to `catch_up_window_secs`.
    All,
}

impl CatchUp {
    /// The name a request spells.
    pub fn as_str(self) -> &'static str {
        match self {
            CatchUp::None => "none",
            CatchUp::Latest => "latest",
            CatchUp::All => "all",
        }
    }
}

/// Where a schedule was declared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Origin {
    /// Through the API (`add_schedule`): it lives until deleted.
    #[default]
    Api,
    /// In a job type's manifest (`[[schedules]]`): it follows the manifest (hot-reloaded).
    Manifest,
}

/// Default [`ScheduleSpec::catch_up_window_secs`]: a day.
pub const DEFAULT_CATCH_UP_WINDOW_SECS: u64 = 86_400;

fn empty() -> Json {
    Json::new(&serde_json::Value::Object(Default::default()))
}

fn default_tz() -> String {
    "UTC".into()
}

fn default_window() -> u64 {
    DEFAULT_CATCH_UP_WINDOW_SECS
}

fn yes() -> bool {
    true
}

/// A schedule as declared: what to enqueue, and when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScheduleSpec {
    /// Its name, unique in the store.
    pub name: String,
    /// The job type each slot enqueues.
    pub job_type: String,
    /// The params of each job (default `{}`).
    #[serde(default = "empty")]
    pub params: Json,
    /// A cron expression: 5 fields, 6 with seconds first, or `@hourly`, `@daily`, ….
    pub cron: String,
    /// The IANA time zone the expression is read in.
    #[serde(default = "default_tz")]
    pub timezone: String,
    /// While the previous job is live.
    #[serde(default)]
    pub overlap: Overlap,
    /// Slots missed while no host led.
    #[serde(default)]
    pub catch_up: CatchUp,
    /// How far back `catch_up: all` reaches.
    #[serde(default = "default_window")]
    pub catch_up_window_secs: u64,
    /// A paused schedule enqueues nothing.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// The jobs' priority (`None`: the job type's default, else 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<i32>,
    /// The jobs' runs allowed per start (`None`: the job type's default, else the host's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_attempts: Option<u32>,
}

impl ScheduleSpec {
    /// The compiled timetable (its expression and zone checked).
    pub fn timetable(&self) -> Result<Timetable, TimetableError> {
        Timetable::parse(&self.cron, &self.timezone)
    }
}

/// A schedule as stored: its spec and how far it has got.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScheduleRecord {
    /// What it is. (Not flattened: a flattened struct is read through serde's buffer, which
    /// cannot hold the params' raw JSON.)
    pub spec: ScheduleSpec,
    /// Where it was declared.
    #[serde(default)]
    pub origin: Origin,
    /// Slots at or before this time (µs since the epoch) have been dealt with.
    pub cursor: i64,
    /// A slot waiting behind a live run (`overlap: queue`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queued: Option<i64>,
    /// The last slot that enqueued a job.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_slot: Option<i64>,
    /// The job that slot enqueued.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_job_id: Option<String>,
    /// Slots dropped by the overlap or catch-up policy, all told.
    #[serde(default)]
    pub skipped: u64,
    /// When it was declared (µs).
    pub created_at: i64,
    /// When its spec last changed (µs).
    pub updated_at: i64,
}

impl ScheduleRecord {
    /// A schedule declared at `now`: its first slot is the first after `now`.
    pub fn declared(spec: ScheduleSpec, origin: Origin, now: i64) -> ScheduleRecord {
        ScheduleRecord {
            spec,
            origin,
            cursor: now,
            queued: None,
            last_slot: None,
            last_job_id: None,
            skipped: 0,
            created_at: now,
            updated_at: now,
        }
    }
}

/// The slot a job was enqueued for, recorded on the job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlotRef {
    /// The schedule's name.
    pub name: String,
    /// The slot's time (µs since the epoch).
    pub slot: i64,
}

/// The id of the job a schedule enqueues for a slot: readable, and the same on every host
/// (a second guard against a slot enqueued twice, beside the cursor).
pub fn job_id_for(name: &str, slot: i64) -> String {
    let t = chrono::DateTime::from_timestamp_micros(slot)
        .map(|t| t.format("%Y%m%dT%H%M%SZ").to_string())
        .unwrap_or_else(|| slot.to_string());
    format!("{name}@{t}")
}

/// One schedule's move: the cursor it expects (compare-and-set), the cursor it sets, and the
/// slots whose jobs it enqueues in the same write.
#[derive(Debug, Clone)]
pub struct Firing {
    /// The schedule's name.
    pub name: String,
    /// The cursor the schedule must still have for this move to happen.
    pub expect: i64,
    /// Its new cursor.
    pub cursor: i64,
    /// The slot left waiting behind a live run.
    pub queued: Option<i64>,
    /// The jobs to insert (each names its schedule and slot), oldest slot first.
    pub jobs: Vec<crate::store::NewJob>,
    /// Slots dropped by this move.
    pub skipped: u64,
}

/// The schedule a put leaves: `new` as asked, over `old` if there is one (pure; both stores
/// apply it). `Create` over an existing schedule is refused.
pub fn put(
    old: Option<&ScheduleRecord>,
    new: ScheduleRecord,
    mode: crate::store::PutSchedule,
) -> Result<ScheduleRecord, crate::store::StoreError> {
    use crate::store::{PutSchedule, StoreError};
    match (old, mode) {
        (None, _) => Ok(new),
        (Some(_), PutSchedule::Create) => Err(StoreError::ScheduleExists(new.spec.name)),
        (Some(old), PutSchedule::Replace { reset }) => Ok(ScheduleRecord {
            spec: new.spec,
            origin: new.origin,
            cursor: if reset { new.cursor } else { old.cursor },
            queued: if reset { None } else { old.queued },
            last_slot: old.last_slot,
            last_job_id: old.last_job_id.clone(),
            skipped: old.skipped,
            created_at: old.created_at,
            updated_at: new.updated_at,
        }),
    }
}

/// The schedule after `firing` happened, its jobs' ids given (pure; both stores apply it).
pub fn fired(rec: &ScheduleRecord, firing: &Firing, job_ids: &[String]) -> ScheduleRecord {
    let mut r = rec.clone();
    r.cursor = firing.cursor;
    r.queued = firing.queued;
    r.skipped = r.skipped.saturating_add(firing.skipped);
    if let (Some(job), Some(id)) = (firing.jobs.last(), job_ids.last()) {
        r.last_slot = job.schedule.as_ref().map(|s| s.slot);
        r.last_job_id = Some(id.clone());
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A spec written with only the required keys reads with the documented defaults.
    #[test]
    fn a_spec_reads_with_its_defaults() {
        let s: ScheduleSpec = serde_json::from_value(serde_json::json!({
            "name": "n", "job_type": "t", "cron": "* * * * *"
        }))
        .unwrap();
        assert_eq!(s.timezone, "UTC");
        assert_eq!(s.overlap, Overlap::Skip);
        assert_eq!(s.catch_up, CatchUp::Latest);
        assert_eq!(s.catch_up_window_secs, DEFAULT_CATCH_UP_WINDOW_SECS);
        assert!(s.enabled);
        assert_eq!((s.priority, s.max_attempts), (None, None));
    }

    /// A slot's job id names the schedule and the slot in UTC.
    #[test]
    fn a_slots_job_id_names_schedule_and_time() {
        assert_eq!(job_id_for("nightly", 0), "nightly@19700101T000000Z");
    }
}
