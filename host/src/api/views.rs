//! How a job looks on the wire: the seed's `queue` command shape (upper-case statuses) and the
//! framework's `queue_*` shape (lower-case statuses), both from the same [`JobRecord`].

use crate::job::{JobRecord, Json, Status};
use crate::runtime::{LogLine, LogSource};
use serde_json::{Map, Value, json};

/// ISO-8601 (UTC, microseconds, no offset — as the original writes it) of a time in µs.
///
/// chrono's RFC 3339 writer without its `Z`: every status answer carries up to four of these,
/// and it is faster than the digit-by-digit writer it replaced (`cargo bench -p queuemgr-tests
/// --bench runtime -- --only=iso`, docs/benchmarks.md). Years outside 0–9999 (which RFC 3339
/// cannot write) go through the format string.
pub fn iso(micros: i64) -> String {
    use chrono::Datelike;
    let Some(t) = chrono::DateTime::from_timestamp_micros(micros) else {
        return String::new();
    };
    if !(0..=9999).contains(&t.year()) {
        return t.format("%Y-%m-%dT%H:%M:%S%.6f").to_string();
    }
    let mut out = t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
    out.pop();
    out
}

fn error_json(rec: &JobRecord) -> Value {
    rec.error.as_ref().map_or(
        Value::Null,
        |e| json!({"kind": e.kind, "code": e.code, "message": e.message, "retryable": e.retryable}),
    )
}

/// The seed's job shape (get_status; list_jobs adds `is_running`).
pub fn seed_job(rec: &JobRecord, in_list: bool) -> Value {
    let mut m = Map::new();
    m.insert("job_id".into(), json!(rec.job_id));
    if in_list {
        m.insert("job_type".into(), json!(rec.job_type));
    }
    m.insert("status".into(), json!(rec.status.as_str()));
    m.insert("progress".into(), json!(rec.progress));
    m.insert("description".into(), json!(rec.description));
    m.insert(
        "result".into(),
        rec.result.as_ref().map_or(Value::Null, Json::to_value),
    );
    if in_list {
        m.insert("is_running".into(), json!(rec.status == Status::Running));
    }
    m.insert("created_at".into(), json!(iso(rec.created_at)));
    m.insert("updated_at".into(), json!(iso(rec.updated_at)));
    if let Some(t) = rec.started_at {
        m.insert("started_at".into(), json!(iso(t)));
    }
    if let Some(t) = rec.completed_at {
        m.insert("completed_at".into(), json!(iso(t)));
    }
    if !in_list {
        m.insert("job_type".into(), json!(rec.job_type));
        // The original's summary of a stopped job (it adds it to get_status, not to lists).
        if rec.status == Status::Stopped {
            m.insert("command_success".into(), json!(false));
            m.insert("inner_success".into(), json!(false));
            m.insert("completed_with_error".into(), json!(true));
            m.insert(
                "command_error_summary".into(),
                json!("Job stopped before command completion"),
            );
        }
    }
    if rec.error.is_some() {
        m.insert("error".into(), error_json(rec));
    }
    queue_extras(rec, &mut m);
    Value::Object(m)
}

/// The job store's fields, shown only where they say something (a job added as the original
/// adds it reads exactly as the original's): priority, schedule, attempts and their errors,
/// unique key, queue (other than `default`) and concurrency key.
fn queue_extras(rec: &JobRecord, m: &mut Map<String, Value>) {
    if rec.priority != 0 {
        m.insert("priority".into(), json!(rec.priority));
    }
    if let Some(t) = rec.run_at {
        m.insert("run_at".into(), json!(iso(t)));
    }
    if let Some(t) = rec.scheduled_at.filter(|_| rec.status == Status::Pending) {
        m.insert("scheduled_at".into(), json!(iso(t)));
    }
    if rec.max_attempts > 1 || rec.attempt > 1 {
        m.insert("attempt".into(), json!(rec.attempt));
        m.insert("max_attempts".into(), json!(rec.max_attempts));
    }
    if !rec.errors.is_empty() {
        let errors: Vec<Value> = rec
            .errors
            .iter()
            .map(|e| json!({"attempt": e.attempt, "at": iso(e.at), "error": {"kind": e.error.kind, "code": e.error.code, "message": e.error.message, "retryable": e.error.retryable}}))
            .collect();
        m.insert("errors".into(), Value::Array(errors));
    }
    if let Some(k) = &rec.unique_key {
        m.insert("unique_key".into(), json!(k));
    }
    if let Some(s) = &rec.schedule {
        m.insert(
            "schedule".into(),
            json!({"name": s.name, "slot": iso(s.slot)}),
        );
    }
    if rec.queue != crate::limits::DEFAULT_QUEUE {
        m.insert("queue".into(), json!(rec.queue));
    }
    if let Some(k) = &rec.concurrency_key {
        m.insert("concurrency_key".into(), json!(k));
    }
    if let Some(k) = &rec.added_by {
        m.insert("added_by".into(), json!(k));
    }
    if let Some(t) = rec
        .traceparent
        .as_deref()
        .and_then(crate::telemetry::trace_id)
    {
        m.insert("trace_id".into(), json!(t));
    }
    if !rec.audit.is_empty() {
        let audit: Vec<Value> = rec
            .audit
            .iter()
            .map(|a| json!({"at": iso(a.at), "key": a.key, "action": a.action}))
            .collect();
        m.insert("audit".into(), Value::Array(audit));
    }
    flow_extras(rec, m);
}

/// What a job of a flow adds to its views: its parent, what it waits for while suspended, its
/// stored steps and the events it was sent (names only: values can be large).
pub fn flow_extras(rec: &JobRecord, m: &mut Map<String, Value>) {
    if let Some(p) = &rec.parent {
        m.insert("parent_id".into(), json!(p));
    }
    if !rec.depends_on.is_empty() {
        m.insert(
            "depends_on".into(),
            json!(rec.depends_on.iter().map(|d| &d.job_id).collect::<Vec<_>>()),
        );
        m.insert(
            "on_dependency_failure".into(),
            json!(rec.on_dependency_failure),
        );
    }
    if let Some(w) = &rec.waiting_for {
        m.insert("waiting_for".into(), wait_json(w));
    }
    if !rec.steps.is_empty() {
        m.insert("steps".into(), json!(rec.steps.keys().collect::<Vec<_>>()));
    }
    if !rec.events.is_empty() {
        m.insert(
            "events".into(),
            json!(rec.events.keys().collect::<Vec<_>>()),
        );
    }
}

/// A wait, as the views show it (times in RFC 3339).
pub fn wait_json(w: &crate::job::Wait) -> Value {
    use crate::job::Wait;
    match w {
        Wait::Children { remaining, of } => {
            json!({"kind": "children", "remaining": remaining, "of": of, "description": w.describe()})
        }
        Wait::Dependencies { remaining, of } => {
            json!({"kind": "dependencies", "remaining": remaining, "of": of, "description": w.describe()})
        }
        Wait::Until { at } => json!({"kind": "until", "at": iso(*at), "description": w.describe()}),
        Wait::Event { name, until } => json!({
            "kind": "event",
            "name": name,
            "until": until.map(iso),
            "description": w.describe(),
        }),
    }
}

fn framework_common(rec: &JobRecord, m: &mut Map<String, Value>) {
    m.insert("created_at".into(), json!(iso(rec.created_at)));
    m.insert(
        "started_at".into(),
        rec.started_at.map_or(Value::Null, |t| json!(iso(t))),
    );
    m.insert(
        "completed_at".into(),
        rec.completed_at.map_or(Value::Null, |t| json!(iso(t))),
    );
    m.insert("job_success".into(), json!(rec.status == Status::Completed));
    if rec.as_command {
        // As the framework reports a command run as a job: a success only once it completed.
        let success = match rec.status {
            Status::Completed => json!(true),
            Status::Pending | Status::Running => Value::Null,
            Status::Error | Status::Stopped | Status::Deleted => json!(false),
        };
        m.insert("command_execution".into(), json!(true));
        m.insert("command_name".into(), json!(rec.job_type));
        m.insert("command_success".into(), success.clone());
        m.insert("inner_success".into(), success);
        m.insert("completed_with_error".into(), json!(false));
    } else {
        m.insert("command_execution".into(), json!(false));
        m.insert("command_name".into(), Value::Null);
        m.insert("command_success".into(), Value::Null);
        m.insert("inner_success".into(), Value::Null);
        m.insert(
            "completed_with_error".into(),
            json!(rec.status == Status::Error),
        );
    }
    m.insert("native_completed_with_error".into(), json!(false));
}

/// The `result` of a job added as a queued command, as the framework shows a command's job:
/// the job's result as the command's `data`; a job's error as a failed command's result; what
/// a stop leaves as a stopped command's.
fn command_result(rec: &JobRecord) -> Value {
    let base =
        |status: &str| json!({"job_id": rec.job_id, "command": rec.job_type, "status": status});
    match rec.status {
        Status::Completed => {
            let mut v = base("completed");
            v["result"] = json!({
                "success": true,
                "data": rec.result.as_ref().map_or(Value::Null, Json::to_value),
            });
            v
        }
        Status::Error => match &rec.error {
            Some(e) => json!({
                "status": "error",
                "message": e.message,
                "code": crate::api::jsonrpc::codes::DOMAIN,
                "data": {"error_code": e.code, "kind": e.kind, "retryable": e.retryable},
            }),
            None => json!({"status": "error", "message": "Command failed"}),
        },
        Status::Stopped | Status::Deleted => {
            let mut v = base("stopped");
            if let Some(r) = &rec.result {
                v["partial"] = r.to_value();
            }
            v
        }
        Status::Pending | Status::Running => json!({}),
    }
}

/// A job's `result` in the framework's shape: `{}` until it has one; for a job added as a queued
/// command, the command's result (see `command_result`).
pub fn framework_result(rec: &JobRecord) -> Value {
    if rec.as_command {
        command_result(rec)
    } else {
        rec.result
            .as_ref()
            .map_or_else(|| json!({}), Json::to_value)
    }
}

/// The framework's `queue_get_job_status` shape.
pub fn framework_job(rec: &JobRecord) -> Value {
    let mut m = Map::new();
    m.insert("job_id".into(), json!(rec.job_id));
    m.insert("job_type".into(), json!(rec.job_type));
    m.insert("status".into(), json!(rec.status.framework_name()));
    m.insert("progress".into(), json!(rec.progress));
    m.insert("description".into(), json!(rec.description));
    m.insert("result".into(), framework_result(rec));
    m.insert(
        "error".into(),
        rec.error
            .as_ref()
            .map_or(Value::Null, |e| json!(format!("{}: {}", e.code, e.message))),
    );
    m.insert("error_info".into(), error_json(rec));
    framework_common(rec, &mut m);
    queue_extras(rec, &mut m);
    Value::Object(m)
}

/// The framework's `queue_list_jobs` item shape.
pub fn framework_list_item(rec: &JobRecord) -> Value {
    let mut m = Map::new();
    m.insert("job_id".into(), json!(rec.job_id));
    m.insert("job_type".into(), json!(rec.job_type));
    m.insert("status".into(), json!(rec.status.framework_name()));
    m.insert("progress".into(), json!(rec.progress));
    m.insert("description".into(), json!(rec.description));
    framework_common(rec, &mut m);
    m.insert("has_result".into(), json!(rec.result.is_some()));
    m.insert("has_error".into(), json!(rec.error.is_some()));
    Value::Object(m)
}

/// Logs as `{stdout:[…], stderr:[…], entries:[…]}`: structured `log` lines appear in
/// `stdout` as `[LEVEL] message` (where the original's logging went) and every line appears
/// in `entries` with its time, source and level.
pub fn logs(lines: &[(i64, LogLine)], dropped: u64) -> Map<String, Value> {
    let mut stdout = Vec::new();
    let mut stderr = Vec::new();
    let mut entries = Vec::new();
    for (t, l) in lines {
        match l.source {
            LogSource::Stdout => stdout.push(json!(l.text)),
            LogSource::Stderr => stderr.push(json!(l.text)),
            LogSource::Log | LogSource::Host => {
                stdout.push(json!(format!("[{}] {}", l.level.as_upper(), l.text)))
            }
        }
        entries.push(
            json!({"time": iso(*t), "source": l.source, "level": l.level, "message": l.text}),
        );
    }
    let mut m = Map::new();
    m.insert("stdout_lines".into(), json!(stdout.len()));
    m.insert("stderr_lines".into(), json!(stderr.len()));
    m.insert("stdout".into(), Value::Array(stdout));
    m.insert("stderr".into(), Value::Array(stderr));
    m.insert("entries".into(), Value::Array(entries));
    m.insert("dropped_lines".into(), json!(dropped));
    m
}

/// Adds why a runnable job waits beyond a free slot (`held_by`: `paused` or `rate`) and, for a
/// rate, when it becomes eligible (`eligible_at`), to a job's view.
pub fn with_hold(view: &mut Value, hold: Option<crate::queue::Hold>) {
    if let (Some(h), Some(m)) = (hold, view.as_object_mut()) {
        m.insert("held_by".into(), json!(h.reason));
        if let Some(t) = h.until {
            m.insert("eligible_at".into(), json!(iso(t)));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::iso;

    #[test]
    fn iso_matches_chrono_formatting() {
        for micros in [
            0,
            1,
            999_999,
            1_764_000_000_123_456,
            1_764_000_000_000_000,
            951_782_400_000_001,     // 2000-02-29
            253_402_300_799_999_999, // 9999-12-31T23:59:59.999999
            -1,
            -62_135_596_800_000_000, // 0001-01-01
        ] {
            let want = chrono::DateTime::from_timestamp_micros(micros)
                .map(|t| t.format("%Y-%m-%dT%H:%M:%S%.6f").to_string())
                .unwrap();
            assert_eq!(iso(micros), want, "{micros}");
        }
    }
}
