//! A tree of jobs for the flow tests and benchmarks: a `fan_out` job of `depth > 0` spawns
//! `width` children (each a `fan_out` of `depth - 1`, or `leaf` jobs when it is 1 and `leaf` is
//! set), waits for them all, and counts how they ended. A job of depth 0 is a leaf: with
//! `fail_one_in = n`, the leaves whose id hashes to 0 mod n fail once (retryably) before they
//! succeed, so with one attempt they end in ERROR and with two they complete. `steps` runs that
//! many trivial durable steps first; `wait_event` waits for the event `go` first.

use queuemgr_guest::flow::{ChildOptions, join, spawn_with, step, wait_for_event};
use queuemgr_guest::{Job, JobError};

#[derive(serde::Deserialize, serde::Serialize, Clone)]
struct Params {
    #[serde(default)]
    width: u32,
    #[serde(default)]
    depth: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    leaf: Option<String>,
    #[serde(default)]
    fail_one_in: u32,
    #[serde(default)]
    tolerate_failures: bool,
    #[serde(default)]
    steps: u32,
    #[serde(default)]
    wait_event: bool,
    /// Runs allowed to each child.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    attempts: Option<u32>,
    /// Joins this job id first (a test of the host refusing a job that is not a child).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    join_id: Option<String>,
}

/// FNV-1a of the job id: the tests compute the same to know which leaves fail.
fn fnv(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    })
}

struct FanOut;

impl Job for FanOut {
    const NAME: &'static str = "fan-out";
    const DESCRIPTION: &'static str =
        "A tree of child jobs: spawns width children per level, joins them, counts their ends.";
    const PARAMS_SCHEMA: &'static str = r#"{
        "type": "object",
        "properties": {
            "width": {"type": "integer", "minimum": 0, "maximum": 100000},
            "depth": {"type": "integer", "minimum": 0, "maximum": 8},
            "leaf": {"type": "string"},
            "fail_one_in": {"type": "integer", "minimum": 0},
            "tolerate_failures": {"type": "boolean"},
            "steps": {"type": "integer", "minimum": 0, "maximum": 1000000},
            "wait_event": {"type": "boolean"},
            "attempts": {"type": "integer", "minimum": 1},
            "join_id": {"type": "string"}
        },
        "additionalProperties": false
    }"#;
    type Params = Params;
    type Output = serde_json::Value;

    fn run(p: Params) -> Result<Self::Output, JobError> {
        for i in 0..p.steps {
            step::<u32, _>(&format!("s{i}"), || Ok(i))?;
        }
        if let Some(id) = &p.join_id {
            join(&[queuemgr_guest::flow::Child { id: id.clone() }]);
        }
        if p.wait_event {
            let _: Option<serde_json::Value> = wait_for_event("go", None)?;
        }
        if p.depth == 0 {
            let id = queuemgr_guest::job_id();
            if p.fail_one_in > 0 && fnv(&id) % u64::from(p.fail_one_in) == 0 {
                let mut first = false;
                step("tried", || {
                    first = true;
                    Ok(true)
                })?;
                if first {
                    return Err(JobError::new("UNLUCKY", format!("{id} fails once")).retryable());
                }
            }
            return Ok(serde_json::json!({ "leaves": 1, "failed": 0 }));
        }
        let (child_type, child) = match (&p.leaf, p.depth) {
            (Some(leaf), 1) => (leaf.clone(), serde_json::json!({})),
            _ => (
                "fan_out".to_string(),
                serde_json::to_value(Params {
                    depth: p.depth - 1,
                    steps: 0,
                    wait_event: false,
                    join_id: None,
                    ..p.clone()
                })
                .map_err(|e| JobError::new("PARAMS", e.to_string()))?,
            ),
        };
        let children = (0..p.width)
            .map(|i| {
                let options = ChildOptions {
                    max_attempts: p.attempts,
                    ..ChildOptions::default()
                };
                spawn_with(&format!("c{i}"), &child_type, &child, options)
            })
            .collect::<Result<Vec<_>, _>>()?;
        let ends = join(&children);
        let (mut leaves, mut failed) = (0u64, 0u64);
        for e in &ends {
            match &e.output {
                Some(v) => {
                    leaves += v["leaves"].as_u64().unwrap_or(1);
                    failed += v["failed"].as_u64().unwrap_or(0);
                }
                None => failed += 1,
            }
        }
        if failed > 0 && !p.tolerate_failures {
            return Err(JobError::new(
                "CHILD_FAILED",
                format!("{failed} of the tree failed"),
            ));
        }
        Ok(serde_json::json!({ "leaves": leaves, "failed": failed, "children": ends.len() }))
    }
}

queuemgr_guest::export_job!(FanOut);
