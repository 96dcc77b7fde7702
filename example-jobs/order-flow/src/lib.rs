//! An order as a durable flow: charge the card (a step: never twice), pack each item in a
//! child job (`order-item`), wait for every item, wait for a person's approval (an event),
//! then ship (a step). Between its waits the job holds no instance: it suspends, and runs again
//! from the top when the items end or the approval comes, its stored steps returning at once.
//!
//! `ledger`, if given, is a file in a granted read-write directory where each effect appends a
//! line (`charge <order>`, `ship <order>`): the tests count them.

use queuemgr_guest::flow::{join, spawn, step, wait_for_event};
use queuemgr_guest::{Job, JobError, info, progress};
use std::io::Write;
use std::time::Duration;

#[derive(serde::Deserialize)]
struct Params {
    order_id: String,
    amount: f64,
    items: Vec<serde_json::Value>,
    #[serde(default)]
    ledger: Option<String>,
    /// Hours to wait for the approval (default 24).
    #[serde(default)]
    approval_hours: Option<f64>,
    /// Skip the approval.
    #[serde(default)]
    auto_approve: bool,
}

#[derive(serde::Deserialize)]
struct Approval {
    approved: bool,
    #[serde(default)]
    by: Option<String>,
}

fn effect(ledger: &Option<String>, line: &str) -> Result<(), JobError> {
    let Some(path) = ledger else { return Ok(()) };
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| JobError::new("LEDGER", format!("{path}: {e}")).retryable())?;
    writeln!(f, "{line}").map_err(|e| JobError::new("LEDGER", e.to_string()).retryable())
}

struct OrderFlow;

impl Job for OrderFlow {
    const NAME: &'static str = "order-flow";
    const DESCRIPTION: &'static str = "An order as a durable flow: charge, pack each item in a child job, wait for approval, ship.";
    const PARAMS_SCHEMA: &'static str = r#"{
        "type": "object",
        "required": ["order_id", "amount", "items"],
        "properties": {
            "order_id": {"type": "string"},
            "amount": {"type": "number", "minimum": 0},
            "items": {"type": "array", "items": {"type": "object"}},
            "ledger": {"type": "string"},
            "approval_hours": {"type": "number", "exclusiveMinimum": 0},
            "auto_approve": {"type": "boolean"}
        }
    }"#;
    type Params = Params;
    type Output = serde_json::Value;

    fn run(p: Params) -> Result<Self::Output, JobError> {
        let charge: serde_json::Value = step("charge", || {
            info!("charging {} for order {}", p.amount, p.order_id);
            effect(&p.ledger, &format!("charge {}", p.order_id))?;
            Ok(serde_json::json!({ "charged": p.amount }))
        })?;
        progress(20, "charged");
        let children = p
            .items
            .iter()
            .enumerate()
            .map(|(i, item)| spawn(&format!("item-{i}"), "order_item", item))
            .collect::<Result<Vec<_>, _>>()?;
        let packed = join(&children);
        if let Some(failed) = packed.iter().find(|c| !c.completed()) {
            return Err(match &failed.error {
                Some(e) => JobError::new("ITEM_FAILED", format!("{}: {}", failed.id, e.message)),
                None => JobError::new(
                    "ITEM_FAILED",
                    format!("{} ended {}", failed.id, failed.status),
                ),
            });
        }
        progress(60, "packed");
        let approved_by = if p.auto_approve {
            "auto".to_string()
        } else {
            let hours = p.approval_hours.unwrap_or(24.0);
            let approval: Option<Approval> =
                wait_for_event("approval", Some(Duration::from_secs_f64(hours * 3600.0)))?;
            match approval {
                Some(a) if a.approved => a.by.unwrap_or_else(|| "someone".into()),
                Some(_) => {
                    return Ok(serde_json::json!({ "order_id": p.order_id, "status": "rejected" }));
                }
                None => {
                    return Err(JobError::new(
                        "APPROVAL_TIMEOUT",
                        "nobody approved the order in time",
                    ));
                }
            }
        };
        let shipped: serde_json::Value = step("ship", || {
            effect(&p.ledger, &format!("ship {}", p.order_id))?;
            Ok(serde_json::json!({ "shipped": true }))
        })?;
        progress(100, "shipped");
        Ok(serde_json::json!({
            "order_id": p.order_id,
            "status": "shipped",
            "charge": charge,
            "items": packed.iter().map(|c| c.output.clone()).collect::<Vec<_>>(),
            "approved_by": approved_by,
            "ship": shipped,
        }))
    }
}

queuemgr_guest::export_job!(OrderFlow);
