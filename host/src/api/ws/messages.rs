//! The command session's messages as the framework's client reads them (mcp-proxy-adapter
//! 8.11.7, `core/job_push/events.py`), and what each watch sends for a job's event: pure
//! functions, unit-tested, so that the socket loop only moves bytes.
//!
//! A command session sends `command_accepted`, then `command_progress` whenever the job's
//! (progress, description) changes (and only once either says something), then exactly one
//! terminal event. Terminal events carry no result: they point at `queue_get_job_status`,
//! which the client calls once. The older `queue_job` subscription sends
//! `job_processing_step` for progress and `job_completed` / `job_failed` / `job_stopped` with
//! the result.

use crate::api::views;
use crate::job::{JobRecord, Status};
use serde_json::{Map, Value, json};

/// Reasons a cancel may give (`cancel_command`'s `reason`), as the framework knows them.
pub const REASONS: [&str; 3] = ["wait_timeout", "caller_lost", "cancelled"];

/// The reference to the result: `{"method":"queue_get_job_status","params":{"job_id"}}`.
pub fn result_rpc(job_id: &str) -> Value {
    json!({"method": "queue_get_job_status", "params": {"job_id": job_id}})
}

fn base(job_id: &str, request_id: &str, command: &str) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("result_channel".into(), json!("rpc"));
    if !job_id.is_empty() {
        m.insert("job_id".into(), json!(job_id));
    }
    if !request_id.is_empty() {
        m.insert("request_id".into(), json!(request_id));
    }
    if !command.is_empty() {
        m.insert("command".into(), json!(command));
    }
    m
}

/// `command_accepted`.
pub fn accepted(job_id: &str, request_id: &str, command: &str) -> Value {
    let mut m = base(job_id, request_id, command);
    m.insert("event".into(), json!("command_accepted"));
    m.insert("status".into(), json!("pending"));
    Value::Object(m)
}

/// `command_completed` of a command that ran in the host (a built-in one): its result is kept
/// for `queue_get_job_status`.
pub fn completed(job_id: &str, request_id: &str, command: &str) -> Value {
    let mut m = base(job_id, request_id, command);
    m.insert("event".into(), json!("command_completed"));
    m.insert("status".into(), json!("completed"));
    m.insert("result_ready".into(), json!(true));
    m.insert("result_rpc".into(), result_rpc(job_id));
    Value::Object(m)
}

/// What refused a session's action before any job: a message, and for a structured refusal a
/// JSON-RPC code and data.
#[derive(Debug, Clone, Default)]
pub struct Refusal {
    /// The message.
    pub message: String,
    /// The JSON-RPC code (`-32602` invalid params, `-32601` no such command, `-32000` domain).
    pub code: Option<i64>,
    /// Its data (`field`, `violation`, `domain_code`, …).
    pub data: Option<Value>,
}

/// `command_error`: a refusal before any job (or of a `cancel_command`, with `action`). With a
/// code, the error is the JSON-RPC error object, and `code`/`data` are repeated beside it as
/// the framework does.
pub fn command_error(
    refusal: &Refusal,
    job_id: &str,
    request_id: &str,
    command: &str,
    action: Option<&str>,
) -> Value {
    let mut m = base(job_id, request_id, command);
    m.insert("event".into(), json!("command_error"));
    m.insert("status".into(), json!("failed"));
    m.insert("result_ready".into(), json!(false));
    match refusal.code {
        Some(code) => {
            m.insert(
                "error".into(),
                json!({"code": code, "message": refusal.message, "data": refusal.data}),
            );
            m.insert("code".into(), json!(code));
        }
        None => {
            m.insert("error".into(), json!(refusal.message));
        }
    }
    if let Some(d) = &refusal.data {
        m.insert("data".into(), d.clone());
    }
    if let Some(a) = action {
        m.insert("action".into(), json!(a));
    }
    Value::Object(m)
}

/// A protocol complaint that belongs to no session (bad JSON, an unknown action): an `action`
/// message without `event`, which the framework's client passes over.
pub fn protocol_error(code: i64, message: &str, data: Option<Value>) -> Value {
    let mut v = json!({"action": "error", "code": code, "error": message});
    if let Some(d) = data {
        v["data"] = d;
    }
    v
}

/// What a job's event is, as a watch sees it.
#[derive(Debug, Clone, Copy)]
pub enum Seen<'a> {
    /// The stored record changed.
    Job(&'a JobRecord),
    /// Live progress of a run.
    Progress {
        /// The job's status (running).
        status: Status,
        /// Percent done.
        percent: u8,
        /// The step.
        description: &'a str,
    },
}

impl Seen<'_> {
    /// The job's status, progress and description as this event shows them.
    fn parts(&self) -> (Status, u8, &str) {
        match *self {
            Seen::Job(rec) => (rec.status, rec.progress, rec.description.as_str()),
            Seen::Progress {
                status,
                percent,
                description,
            } => (status, percent, description),
        }
    }
}

/// Whether a running job's (progress, description) is worth an event: it says something
/// (progress above 0 or a description) and differs from the last one sent, which it becomes.
fn news(last: &mut Option<(u8, String)>, percent: u8, description: &str) -> bool {
    if percent == 0 && description.trim().is_empty() {
        return false;
    }
    if last
        .as_ref()
        .is_some_and(|(p, d)| *p == percent && d == description)
    {
        return false;
    }
    *last = Some((percent, description.to_string()));
    true
}

/// What a watch does with an event.
#[derive(Debug, PartialEq)]
pub enum Step {
    /// Nothing to send.
    Quiet,
    /// Send this and go on watching.
    Send(Value),
    /// Send this; the watch has ended.
    End(Value),
}

/// A command session's watch of its job.
#[derive(Debug, Clone)]
pub struct CommandWatch {
    /// The client's request id.
    pub request_id: String,
    /// The command (the job type).
    pub command: String,
    last: Option<(u8, String)>,
}

impl CommandWatch {
    /// A new watch.
    pub fn new(request_id: String, command: String) -> Self {
        CommandWatch {
            request_id,
            command,
            last: None,
        }
    }

    /// Sends the next progress again even if it did not change (a resumed session).
    pub fn forget_last(&mut self) {
        self.last = None;
    }

    /// What to send for an event of job `job_id`; `reason` is why it was cancelled, if known.
    pub fn step(&mut self, job_id: &str, seen: Seen<'_>, reason: Option<&str>) -> Step {
        let (status, percent, description) = seen.parts();
        let mut m = base(job_id, &self.request_id, &self.command);
        m.insert("status".into(), json!(status.framework_name()));
        if !status.is_terminal() {
            if !news(&mut self.last, percent, description) {
                return Step::Quiet;
            }
            m.insert("event".into(), json!("command_progress"));
            m.insert("progress".into(), json!(percent.min(100)));
            m.insert("description".into(), json!(description));
            return Step::Send(Value::Object(m));
        }
        let event = match status {
            Status::Completed => "command_completed",
            Status::Error => {
                if let Seen::Job(rec) = seen {
                    let error = rec.error.as_ref().map_or_else(
                        || "Command failed".to_string(),
                        |e| format!("{}: {}", e.code, e.message),
                    );
                    m.insert("error".into(), json!(error));
                }
                "command_failed"
            }
            _ => {
                m.insert(
                    "data".into(),
                    json!({"reason": reason.unwrap_or(match status {
                        Status::Deleted => "deleted",
                        _ => "cancelled",
                    })}),
                );
                "command_cancelled"
            }
        };
        m.insert("event".into(), json!(event));
        m.insert("progress".into(), json!(percent.min(100)));
        m.insert("description".into(), json!(description));
        m.insert("result_ready".into(), json!(true));
        m.insert("result_rpc".into(), result_rpc(job_id));
        Step::End(Value::Object(m))
    }
}

/// The older `queue_job` subscription's watch.
#[derive(Debug, Clone, Default)]
pub struct QueueJobWatch {
    last: Option<(u8, String)>,
}

impl QueueJobWatch {
    /// What to send for an event of job `job_id`.
    pub fn step(&mut self, job_id: &str, seen: Seen<'_>) -> Step {
        let (status, percent, description) = seen.parts();
        if !status.is_terminal() {
            if !news(&mut self.last, percent, description) {
                return Step::Quiet;
            }
            return Step::Send(json!({
                "event": "job_processing_step", "job_id": job_id, "step": "progress",
                "message": description, "progress_percent": percent.min(100),
            }));
        }
        let Seen::Job(rec) = seen else {
            return Step::Quiet;
        };
        let result = views::framework_result(rec);
        Step::End(match status {
            Status::Completed => {
                json!({"event": "job_completed", "job_id": job_id, "status": "completed", "result": result})
            }
            Status::Error => {
                let error = rec.error.as_ref().map_or_else(
                    || "Job failed".to_string(),
                    |e| format!("{}: {}", e.code, e.message),
                );
                json!({"event": "job_failed", "job_id": job_id, "status": "failed", "error": error, "result": result})
            }
            _ => {
                json!({"event": "job_stopped", "job_id": job_id, "status": status.framework_name(), "result": result})
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::job::{ErrorInfo, Json};

    fn rec(status: Status, progress: u8, description: &str) -> JobRecord {
        JobRecord {
            job_id: "j".into(),
            job_type: "my_job".into(),
            status,
            progress,
            description: description.into(),
            as_command: true,
            ..JobRecord::default()
        }
    }

    #[test]
    fn a_session_sends_progress_on_change_then_one_terminal_event() {
        let mut w = CommandWatch::new("r1".into(), "my_job".into());
        assert_eq!(
            w.step("j", Seen::Job(&rec(Status::Running, 0, "")), None),
            Step::Quiet
        );
        let Step::Send(p) = w.step(
            "j",
            Seen::Progress {
                status: Status::Running,
                percent: 10,
                description: "step 1",
            },
            None,
        ) else {
            panic!("progress")
        };
        assert_eq!(p["event"], "command_progress");
        assert_eq!(p["progress"], 10);
        assert_eq!(p["request_id"], "r1");
        assert_eq!(p["result_channel"], "rpc");
        // The same progress recorded in the store: nothing new.
        assert_eq!(
            w.step("j", Seen::Job(&rec(Status::Running, 10, "step 1")), None),
            Step::Quiet
        );
        let mut done = rec(Status::Completed, 100, "done");
        done.result = Some(Json::new(&json!({"ok": true})));
        let Step::End(t) = w.step("j", Seen::Job(&done), None) else {
            panic!("terminal")
        };
        assert_eq!(t["event"], "command_completed");
        assert_eq!(t["status"], "completed");
        assert_eq!(t["result_ready"], true);
        assert_eq!(t["result_rpc"], result_rpc("j"));
        assert!(t.get("result").is_none(), "no result data on the wire");
    }

    #[test]
    fn failures_and_stops_say_why() {
        let mut w = CommandWatch::new("r".into(), "c".into());
        let mut failed = rec(Status::Error, 5, "");
        failed.error = Some(Box::new(ErrorInfo {
            kind: crate::job::ErrorKind::Failed,
            code: "BAD".into(),
            message: "no".into(),
            retryable: false,
        }));
        let Step::End(t) = w.step("j", Seen::Job(&failed), None) else {
            panic!()
        };
        assert_eq!(t["event"], "command_failed");
        assert_eq!(t["error"], "BAD: no");
        let Step::End(t) = w.step(
            "j",
            Seen::Job(&rec(Status::Stopped, 5, "")),
            Some("caller_lost"),
        ) else {
            panic!()
        };
        assert_eq!(t["event"], "command_cancelled");
        assert_eq!(t["data"]["reason"], "caller_lost");
        let Step::End(t) = w.step("j", Seen::Job(&rec(Status::Stopped, 5, "")), None) else {
            panic!()
        };
        assert_eq!(t["data"]["reason"], "cancelled");
    }

    #[test]
    fn refusals_carry_the_json_rpc_error() {
        let r = Refusal {
            message: "bad".into(),
            code: Some(-32602),
            data: Some(json!({"field": "duration"})),
        };
        let e = command_error(&r, "", "r", "my_job", None);
        assert_eq!(e["event"], "command_error");
        assert_eq!(e["error"]["code"], -32602);
        assert_eq!(e["code"], -32602);
        assert_eq!(e["data"]["field"], "duration");
        assert!(e.get("job_id").is_none());
        let plain = command_error(
            &Refusal {
                message: "command required".into(),
                ..Refusal::default()
            },
            "",
            "",
            "",
            None,
        );
        assert_eq!(plain["error"], "command required");
    }

    #[test]
    fn the_older_subscription_sends_steps_and_the_result() {
        let mut w = QueueJobWatch::default();
        let Step::Send(s) = w.step(
            "j",
            Seen::Progress {
                status: Status::Running,
                percent: 50,
                description: "half",
            },
        ) else {
            panic!()
        };
        assert_eq!(s["event"], "job_processing_step");
        assert_eq!(s["progress_percent"], 50);
        let mut done = rec(Status::Completed, 100, "");
        done.as_command = false;
        done.result = Some(Json::new(&json!({"n": 1})));
        let Step::End(t) = w.step("j", Seen::Job(&done)) else {
            panic!()
        };
        assert_eq!(t["event"], "job_completed");
        assert_eq!(t["result"], json!({"n": 1}));
    }
}
