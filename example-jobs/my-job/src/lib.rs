//! The seed's `MyJob`: `task_name` and `duration` (seconds); one step a second with progress
//! after each step; the result is `{job_id, task_name, completed_at, status}`.

use queuemgr_guest::{Job, JobError, info, job_id, progress, sleep};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

#[derive(serde::Deserialize)]
struct Params {
    #[serde(default = "default_task")]
    task_name: String,
    #[serde(default = "default_duration")]
    duration: f64,
}

fn default_task() -> String {
    "default_task".into()
}

fn default_duration() -> f64 {
    5.0
}

struct MyJob;

impl Job for MyJob {
    const NAME: &'static str = "MyJob";
    const VERSION: &'static str = "1.0.0";
    const DESCRIPTION: &'static str =
        "The seed's example job: runs `duration` seconds, one step a second, reporting progress.";
    const PARAMS_SCHEMA: &'static str = r#"{
        "type": "object",
        "properties": {
            "task_name": {"type": "string", "description": "Name of the task", "default": "default_task"},
            "duration": {"type": "number", "minimum": 0, "maximum": 86400, "description": "Seconds to run, one step a second", "default": 5}
        },
        "additionalProperties": false
    }"#;
    type Params = Params;
    type Output = serde_json::Value;

    fn run(p: Params) -> Result<Self::Output, JobError> {
        println!("Starting task: {}", p.task_name);
        let steps = p.duration.ceil() as u64;
        let mut left = p.duration;
        for step in 1..=steps {
            let secs = left.min(1.0);
            left -= secs;
            if sleep(Duration::from_secs_f64(secs)) {
                info!("stop requested at step {step}");
                return Err(JobError::new("STOPPED", "stop requested"));
            }
            let pct = step * 100 / steps;
            progress(pct as u8, format!("step {step}/{steps}"));
            println!("Progress: {:.1}%", step as f64 * 100.0 / steps as f64);
        }
        if steps == 0 {
            progress(100, "done");
        }
        let completed_at = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or_default();
        Ok(serde_json::json!({
            "job_id": job_id(),
            "task_name": p.task_name,
            "completed_at": completed_at,
            "status": "completed",
        }))
    }
}

queuemgr_guest::export_job!(MyJob);
