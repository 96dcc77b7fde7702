//! A job that fails with a structured error (code, message, retryable) after reporting some
//! progress: what a job does when its input or an upstream is bad.

use queuemgr_guest::{Job, JobError, progress, warn};

#[derive(serde::Deserialize)]
struct Params {
    #[serde(default = "default_code")]
    code: String,
    #[serde(default = "default_message")]
    message: String,
    #[serde(default)]
    retryable: bool,
}

fn default_code() -> String {
    "UPSTREAM_UNAVAILABLE".into()
}

fn default_message() -> String {
    "job asked to fail".into()
}

struct Failing;

impl Job for Failing {
    const NAME: &'static str = "failing";
    const DESCRIPTION: &'static str = "Reports 50% progress, then fails with the given error.";
    const PARAMS_SCHEMA: &'static str = r#"{
        "type": "object",
        "properties": {
            "code": {"type": "string"},
            "message": {"type": "string"},
            "retryable": {"type": "boolean"}
        },
        "additionalProperties": false
    }"#;
    type Params = Params;
    type Output = ();

    fn run(p: Params) -> Result<(), JobError> {
        progress(50, "about to fail");
        warn!("failing with {}", p.code);
        let err = JobError::new(p.code, p.message);
        Err(if p.retryable { err.retryable() } else { err })
    }
}

queuemgr_guest::export_job!(Failing);
