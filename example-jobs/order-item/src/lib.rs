//! One item of an order (a child of `order-flow`): "packs" it and returns what it packed.
//! `fail: true` makes it fail (retryable if `retryable`), for the flows' failure tests.

use queuemgr_guest::{Job, JobError, sleep};
use std::time::Duration;

#[derive(serde::Deserialize)]
struct Params {
    sku: String,
    #[serde(default = "one")]
    qty: u32,
    #[serde(default)]
    fail: bool,
    #[serde(default)]
    retryable: bool,
    /// Parks this long first (for tests that stop a flow while its items run).
    #[serde(default)]
    sleep_ms: u64,
    /// Its dependencies' results, when it runs in a flow (`add_flow`): echoed back.
    #[serde(default)]
    inputs: Option<serde_json::Value>,
}

fn one() -> u32 {
    1
}

struct OrderItem;

impl Job for OrderItem {
    const NAME: &'static str = "order-item";
    const DESCRIPTION: &'static str = "Packs one item of an order (a child job of order-flow).";
    const PARAMS_SCHEMA: &'static str = r#"{
        "type": "object",
        "required": ["sku"],
        "properties": {
            "sku": {"type": "string"},
            "qty": {"type": "integer", "minimum": 1},
            "fail": {"type": "boolean"},
            "retryable": {"type": "boolean"},
            "sleep_ms": {"type": "integer", "minimum": 0}
        }
    }"#;
    type Params = Params;
    type Output = serde_json::Value;

    fn run(p: Params) -> Result<Self::Output, JobError> {
        if p.sleep_ms > 0 && sleep(Duration::from_millis(p.sleep_ms)) {
            return Err(JobError::new("STOPPED", "stop requested"));
        }
        if p.fail {
            let e = JobError::new("OUT_OF_STOCK", format!("no {} left", p.sku));
            return Err(if p.retryable { e.retryable() } else { e });
        }
        let mut out = serde_json::json!({ "sku": p.sku, "packed": p.qty });
        if let Some(inputs) = p.inputs {
            out["inputs"] = inputs;
        }
        Ok(out)
    }
}

queuemgr_guest::export_job!(OrderItem);
