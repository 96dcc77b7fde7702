//! A job built against `queuemgr:job@0.1.0`, the release before the `flow` interface: its WIT
//! is a frozen copy of that release (`wit/job.wit` here). The host must load and run it
//! unchanged (tests/tests/all/flows.rs).

wit_bindgen::generate!({ path: "wit", world: "job" });

use queuemgr::job::{host, types};

struct Legacy;

impl Guest for Legacy {
    fn describe() -> types::JobInfo {
        types::JobInfo {
            name: "legacy-v010".into(),
            version: "0.1.0".into(),
            description: "Built against queuemgr:job@0.1.0.".into(),
            params_schema: r#"{"type":"object"}"#.into(),
        }
    }

    fn run(params: String) -> Result<String, types::JobError> {
        host::progress(50, "half way");
        host::log(types::LogLevel::Info, "built against 0.1.0");
        Ok(format!(
            r#"{{"job_id":"{}","params":{params}}}"#,
            host::job_id()
        ))
    }
}

export!(Legacy);
