//! The smallest job: returns `{}` at once, or after parking `sleep_ms` in the host. Used by the
//! benchmarks (instantiate + run cost, memory per sleeping job) and by load tests.

use queuemgr_guest::{Job, JobError, sleep};
use std::time::Duration;

#[derive(serde::Deserialize)]
struct Params {
    #[serde(default)]
    sleep_ms: u64,
}

struct Noop;

impl Job for Noop {
    const NAME: &'static str = "noop";
    const DESCRIPTION: &'static str = "Does nothing, optionally after sleeping `sleep_ms`.";
    const PARAMS_SCHEMA: &'static str = r#"{
        "type": "object",
        "properties": {"sleep_ms": {"type": "integer", "minimum": 0}},
        "additionalProperties": false
    }"#;
    type Params = Params;
    type Output = serde_json::Value;

    fn run(p: Params) -> Result<Self::Output, JobError> {
        if p.sleep_ms > 0 && sleep(Duration::from_millis(p.sleep_ms)) {
            return Err(JobError::new("STOPPED", "stop requested"));
        }
        Ok(serde_json::json!({}))
    }
}

queuemgr_guest::export_job!(Noop);
