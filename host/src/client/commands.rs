//! The client subcommands. Each returns the process's exit code: 0 when the command (and, for
//! `run`, the job) succeeded, 1 when the job failed or was stopped, 130 after Ctrl-C.

use super::{Client, ClientError};
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use serde_json::{Map, Value, json};
use std::collections::HashMap;
use std::io::IsTerminal;

/// Where the host is and how to talk to it (every client subcommand takes these).
#[derive(clap::Args, Debug, Clone)]
pub struct Conn {
    /// The host's URL.
    #[arg(
        long,
        env = "QUEUEMGR_URL",
        default_value = "http://127.0.0.1:8000",
        global = true
    )]
    pub url: String,
    /// The host's API key.
    #[arg(long, env = "QUEUEMGR_API_KEY", global = true, hide_env_values = true)]
    pub api_key: Option<String>,
    /// Print JSON (for scripts) instead of tables and progress bars.
    #[arg(long, global = true)]
    pub json: bool,
}

/// Params from `-p key=value` (a value that is JSON is taken as JSON, else as a string) over
/// `--params '{…}'`.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct ParamArgs {
    /// A param as key=value (repeatable); `-p duration=3` is a number, `-p name=x` a string.
    #[arg(short = 'p', long = "param", value_name = "KEY=VALUE")]
    pub param: Vec<String>,
    /// All params as one JSON object (`-p` values are set over it).
    #[arg(long, value_name = "JSON")]
    pub params: Option<String>,
}

impl ParamArgs {
    /// The params object.
    pub fn build(&self) -> Result<Value, ClientError> {
        let mut obj = match &self.params {
            None => Map::new(),
            Some(text) => match serde_json::from_str::<Value>(text) {
                Ok(Value::Object(m)) => m,
                Ok(_) => return Err(bad("--params must be a JSON object")),
                Err(e) => return Err(bad(&format!("--params is not JSON: {e}"))),
            },
        };
        for p in &self.param {
            let Some((k, v)) = p.split_once('=') else {
                return Err(bad(&format!("-p {p}: write key=value")));
            };
            let value = serde_json::from_str(v).unwrap_or_else(|_| Value::String(v.to_string()));
            obj.insert(k.trim().to_string(), value);
        }
        Ok(Value::Object(obj))
    }
}

fn bad(msg: &str) -> ClientError {
    ClientError::Rejected {
        message: msg.to_string(),
        data: Value::Null,
    }
}

fn print_json(v: &Value) {
    println!("{}", serde_json::to_string_pretty(v).unwrap_or_default());
}

fn terminal(status: &str) -> bool {
    matches!(status, "COMPLETED" | "ERROR" | "STOPPED" | "DELETED")
}

fn bar_style() -> ProgressStyle {
    ProgressStyle::with_template(
        "{spinner:.cyan} {prefix:.bold} [{bar:30.cyan/blue}] {pos:>3}% {wide_msg}",
    )
    .unwrap_or_else(|_| ProgressStyle::default_bar())
    .progress_chars("█▉▊▋▌▍▎▏ ")
}

/// `queuemgr run TYPE`: add, start and follow a job; print its result.
pub async fn run(
    c: &Client,
    conn: &Conn,
    job_type: &str,
    params: Value,
    job_id: Option<String>,
) -> Result<i32, ClientError> {
    let job_id = job_id.unwrap_or_else(crate::job::new_id);
    c.queue(
        json!({"action": "add_job", "job_id": job_id, "job_type": job_type,
                   "params": params, "start": true}),
    )
    .await?;
    let mut stream = c.events(&format!("/api/v1/jobs/{job_id}/events")).await?;
    let show = !conn.json && std::io::stderr().is_terminal();
    let bar = if show {
        let b = ProgressBar::new(100);
        b.set_style(bar_style());
        b.set_prefix(format!("{job_type} {job_id}"));
        b.enable_steady_tick(std::time::Duration::from_millis(120));
        b
    } else {
        ProgressBar::hidden()
    };
    let mut last: Option<Value> = None;
    let mut interrupted = false;
    loop {
        tokio::select! {
            ev = stream.next() => {
                let Some(ev) = ev? else { break };
                match ev.kind.as_str() {
                    "progress" => {
                        bar.set_position(ev.data["progress"].as_u64().unwrap_or(0));
                        bar.set_message(ev.data["description"].as_str().unwrap_or("").to_string());
                    }
                    "job" => {
                        bar.set_position(ev.data["progress"].as_u64().unwrap_or(0));
                        bar.set_message(ev.data["description"].as_str().unwrap_or("").to_string());
                        let done = terminal(ev.data["status"].as_str().unwrap_or(""));
                        last = Some(ev.data);
                        if done {
                            break;
                        }
                    }
                    _ => {}
                }
            }
            _ = tokio::signal::ctrl_c(), if !interrupted => {
                interrupted = true;
                bar.suspend(|| eprintln!("Ctrl-C: stopping job {job_id}…"));
                c.queue(json!({"action": "stop_job", "job_id": job_id})).await?;
            }
        }
    }
    bar.finish_and_clear();
    // The stream ended without an end (e.g. the host restarted): read the job.
    let job = match last {
        Some(j) if terminal(j["status"].as_str().unwrap_or("")) => j,
        _ => c
            .queue(json!({"action": "get_status", "job_id": job_id}))
            .await?["status"]
            .clone(),
    };
    let status = job["status"].as_str().unwrap_or("").to_string();
    if conn.json {
        print_json(&job);
    } else {
        match status.as_str() {
            "COMPLETED" => print_json(&job["result"]),
            "ERROR" => eprintln!(
                "job {job_id} failed: {}: {}",
                job["error"]["code"].as_str().unwrap_or("ERROR"),
                job["error"]["message"].as_str().unwrap_or("")
            ),
            "STOPPED" if interrupted => eprintln!("job {job_id} stopped (Ctrl-C)"),
            other => eprintln!("job {job_id} ended {other}"),
        }
    }
    Ok(match status.as_str() {
        "COMPLETED" => 0,
        _ if interrupted => 130,
        _ => 1,
    })
}

/// `queuemgr add TYPE`: add a job (and start it with `--start`).
pub async fn add(
    c: &Client,
    conn: &Conn,
    job_type: &str,
    params: Value,
    job_id: Option<String>,
    start: bool,
    extra: serde_json::Map<String, Value>,
) -> Result<i32, ClientError> {
    let job_id = job_id.unwrap_or_else(crate::job::new_id);
    let mut p = json!({"action": "add_job", "job_id": job_id, "job_type": job_type,
                      "params": params, "start": start});
    if let Some(o) = p.as_object_mut() {
        o.extend(extra);
    }
    let d = c.queue(p).await?;
    if conn.json {
        print_json(&d);
    } else {
        println!("{job_id}");
    }
    Ok(0)
}

/// `start`, `stop`, `delete`: one action on one job.
pub async fn act(c: &Client, conn: &Conn, action: &str, job_id: &str) -> Result<i32, ClientError> {
    c.queue(json!({"action": action, "job_id": job_id})).await?;
    // The seed's answer is a message; say where the job stands now.
    let d = c
        .queue(json!({"action": "get_status", "job_id": job_id}))
        .await?;
    if conn.json {
        print_json(&d["status"]);
    } else {
        println!("{job_id}: {}", d["status"]["status"].as_str().unwrap_or(""));
    }
    Ok(0)
}

/// `queuemgr status JOB`.
pub async fn status(c: &Client, conn: &Conn, job_id: &str) -> Result<i32, ClientError> {
    let d = c
        .queue(json!({"action": "get_status", "job_id": job_id}))
        .await?;
    let j = &d["status"];
    if conn.json {
        print_json(j);
        return Ok(0);
    }
    println!("job        {}", j["job_id"].as_str().unwrap_or(job_id));
    println!("type       {}", j["job_type"].as_str().unwrap_or(""));
    println!("status     {}", j["status"].as_str().unwrap_or(""));
    println!(
        "progress   {}% {}",
        j["progress"],
        j["description"].as_str().unwrap_or("")
    );
    for key in [
        "created_at",
        "started_at",
        "completed_at",
        "attempt",
        "max_attempts",
        "added_by",
        "trace_id",
    ] {
        if let Some(v) = j.get(key).filter(|v| !v.is_null()) {
            println!(
                "{key:<10} {}",
                v.as_str().map_or(v.to_string(), String::from)
            );
        }
    }
    if !j["error"].is_null() {
        println!(
            "error      {}: {}",
            j["error"]["code"].as_str().unwrap_or(""),
            j["error"]["message"].as_str().unwrap_or("")
        );
    }
    if !j["result"].is_null() {
        println!("result     {}", j["result"]);
    }
    // Who started, stopped, restarted or deleted it (keys files only).
    for a in j["audit"].as_array().into_iter().flatten() {
        println!(
            "audit      {} {} by {}",
            a["at"].as_str().unwrap_or(""),
            a["action"].as_str().unwrap_or(""),
            a["key"].as_str().unwrap_or("")
        );
    }
    Ok(0)
}

/// `queuemgr list`.
pub async fn list(
    c: &Client,
    conn: &Conn,
    status: Option<String>,
    job_type: Option<String>,
    limit: usize,
    cursor: Option<String>,
) -> Result<i32, ClientError> {
    let mut p = json!({"action": "list_jobs", "limit": limit});
    if let Some(s) = status {
        p["status_filter"] = json!(s);
    }
    if let Some(t) = job_type {
        p["job_type"] = json!(t);
    }
    if let Some(cur) = cursor {
        p["cursor"] = json!(cur);
    }
    let d = c.queue(p).await?;
    if conn.json {
        print_json(&d);
        return Ok(0);
    }
    let jobs = d["jobs"].as_array().cloned().unwrap_or_default();
    println!(
        "{:<28} {:<16} {:<10} {:>4}  {:<26} DESCRIPTION",
        "JOB", "TYPE", "STATUS", "%", "UPDATED"
    );
    for j in &jobs {
        println!(
            "{:<28} {:<16} {:<10} {:>4}  {:<26} {}",
            j["job_id"].as_str().unwrap_or(""),
            j["job_type"].as_str().unwrap_or(""),
            j["status"].as_str().unwrap_or(""),
            j["progress"],
            j["updated_at"].as_str().unwrap_or(""),
            j["description"].as_str().unwrap_or("")
        );
    }
    let total = d["total_count"].as_u64().unwrap_or(jobs.len() as u64);
    match d["next_cursor"].as_str() {
        Some(next) => println!("{} of {total} jobs; next page: --cursor {next}", jobs.len()),
        None => println!("{} of {total} jobs", jobs.len()),
    }
    Ok(0)
}

/// `queuemgr logs JOB [-f]`.
pub async fn logs(c: &Client, conn: &Conn, job_id: &str, follow: bool) -> Result<i32, ClientError> {
    let mut stream = if follow {
        // Open the stream first, so that no line falls between the snapshot and the stream.
        Some(c.events(&format!("/api/v1/jobs/{job_id}/events")).await?)
    } else {
        None
    };
    let d = c
        .queue(json!({"action": "get_logs", "job_id": job_id}))
        .await?;
    let entries = d["entries"].as_array().cloned().unwrap_or_default();
    let mut shown: std::collections::HashSet<(String, String)> = std::collections::HashSet::new();
    for e in &entries {
        line(conn, e);
        shown.insert((
            e["time"].as_str().unwrap_or("").to_string(),
            e["message"].as_str().unwrap_or("").to_string(),
        ));
    }
    let Some(stream) = stream.as_mut() else {
        return Ok(0);
    };
    while let Some(ev) = stream.next().await? {
        match ev.kind.as_str() {
            "log" => {
                let key = (
                    ev.data["time"].as_str().unwrap_or("").to_string(),
                    ev.data["message"].as_str().unwrap_or("").to_string(),
                );
                if !shown.contains(&key) {
                    line(conn, &ev.data);
                }
            }
            "job" if terminal(ev.data["status"].as_str().unwrap_or("")) => break,
            _ => {}
        }
    }
    Ok(0)
}

fn line(conn: &Conn, e: &Value) {
    if conn.json {
        println!("{e}");
    } else {
        println!(
            "{} {:<5} {:<6} {}",
            e["time"].as_str().unwrap_or(""),
            e["level"].as_str().unwrap_or("").to_uppercase(),
            e["source"].as_str().unwrap_or(""),
            e["message"].as_str().unwrap_or("")
        );
    }
}

/// `queuemgr types`.
pub async fn types(c: &Client, conn: &Conn) -> Result<i32, ClientError> {
    let d = c.queue(json!({"action": "list_job_types"})).await?;
    if conn.json {
        print_json(&d);
        return Ok(0);
    }
    for t in d["job_types"].as_array().cloned().unwrap_or_default() {
        println!(
            "{} ({} {}): {}",
            t["job_type"].as_str().unwrap_or(""),
            t["name"].as_str().unwrap_or(""),
            t["version"].as_str().unwrap_or(""),
            t["description"].as_str().unwrap_or("")
        );
        let schema = &t["params_schema"];
        let required: Vec<&str> = schema["required"]
            .as_array()
            .map(|r| r.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        if let Some(props) = schema["properties"].as_object() {
            for (name, p) in props {
                println!(
                    "    -p {name}=<{}>{}{}",
                    p["type"].as_str().unwrap_or("value"),
                    if required.contains(&name.as_str()) {
                        " (required)"
                    } else {
                        ""
                    },
                    p["description"]
                        .as_str()
                        .map(|d| format!("  {d}"))
                        .unwrap_or_default()
                );
            }
        }
    }
    for b in d["broken"].as_array().cloned().unwrap_or_default() {
        println!(
            "{} (broken): {}",
            b["name"].as_str().unwrap_or(""),
            b["error"].as_str().unwrap_or("")
        );
    }
    Ok(0)
}

/// `queuemgr schedules`: a table of the schedules.
pub async fn schedules(c: &Client, conn: &Conn) -> Result<i32, ClientError> {
    let d = c.queue(json!({"action": "list_schedules"})).await?;
    if conn.json {
        print_json(&d);
        return Ok(0);
    }
    println!(
        "{:<20} {:<14} {:<16} {:<16} {:<8} {:<22} {:<22} LAST STATUS",
        "SCHEDULE", "TYPE", "CRON", "ZONE", "STATE", "NEXT RUN", "LAST RUN"
    );
    let list = d["schedules"].as_array().cloned().unwrap_or_default();
    for s in &list {
        println!(
            "{:<20} {:<14} {:<16} {:<16} {:<8} {:<22} {:<22} {}",
            s["name"].as_str().unwrap_or(""),
            s["job_type"].as_str().unwrap_or(""),
            s["cron"].as_str().unwrap_or(""),
            s["timezone"].as_str().unwrap_or(""),
            if s["enabled"] == true {
                "active"
            } else {
                "paused"
            },
            s["next_runs"][0].as_str().unwrap_or("-"),
            s["last_run"].as_str().unwrap_or("-"),
            s["last_status"].as_str().unwrap_or("-"),
        );
    }
    println!("{} schedules", list.len());
    Ok(0)
}

/// `queuemgr schedule add|pause|resume|delete`: one action; prints the schedule's name and state.
pub async fn schedule_action(c: &Client, conn: &Conn, params: Value) -> Result<i32, ClientError> {
    let d = c.queue(params).await?;
    if conn.json {
        print_json(&d["schedule"]);
    } else {
        let s = &d["schedule"];
        println!(
            "{}: {}{}",
            s["name"].as_str().unwrap_or(""),
            if s["enabled"] == true {
                "active"
            } else {
                "paused"
            },
            s["next_runs"][0]
                .as_str()
                .map(|n| format!(", next run {n}"))
                .unwrap_or_default()
        );
    }
    Ok(0)
}

/// `queuemgr queues`: the named queues, their limits, state and depth.
pub async fn queues(c: &Client, conn: &Conn) -> Result<i32, ClientError> {
    let d = c.queue(json!({"action": "list_queues"})).await?;
    if conn.json {
        print_json(&d);
        return Ok(0);
    }
    let dash = |v: &Value| match v {
        Value::Null => "-".to_string(),
        Value::String(s) => s.clone(),
        v => v.to_string(),
    };
    println!(
        "{:<20} {:<7} {:>9} {:>8} {:>9} {:>8} {:<10} {:<10} {:>8}  JOB TYPES",
        "QUEUE",
        "STATE",
        "RUNNING",
        "WAITING",
        "UNSTARTED",
        "PER KEY",
        "RATE",
        "KEY RATE",
        "PRIORITY"
    );
    let list = d["queues"].as_array().cloned().unwrap_or_default();
    for q in &list {
        let running = match q["concurrency"].as_u64() {
            Some(max) => format!("{}/{max}", q["running"]),
            None => q["running"].to_string(),
        };
        let types: Vec<&str> = q["job_types"]
            .as_array()
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        println!(
            "{:<20} {:<7} {:>9} {:>8} {:>9} {:>8} {:<10} {:<10} {:>8}  {}",
            q["name"].as_str().unwrap_or(""),
            if q["paused"] == true {
                "paused"
            } else {
                "active"
            },
            running,
            q["waiting"],
            q["unstarted"],
            dash(&q["key_concurrency"]),
            dash(&q["rate"]),
            dash(&q["key_rate"]),
            dash(&q["priority"]),
            types.join(","),
        );
    }
    println!("{} queues", list.len());
    Ok(0)
}

/// `queuemgr queue set|pause|resume`: one action; prints the queue's name, state and limits.
pub async fn queue_action(c: &Client, conn: &Conn, params: Value) -> Result<i32, ClientError> {
    let d = c.queue(params).await?;
    let q = &d["queue"];
    if conn.json {
        print_json(q);
    } else {
        let mut limits = Vec::new();
        for k in [
            "concurrency",
            "key_concurrency",
            "rate",
            "key_rate",
            "priority",
        ] {
            if !q[k].is_null() {
                limits.push(format!(
                    "{k} {}",
                    q[k].as_str().map_or(q[k].to_string(), str::to_string)
                ));
            }
        }
        println!(
            "{}: {}{}",
            q["name"].as_str().unwrap_or(""),
            if q["paused"] == true {
                "paused"
            } else {
                "active"
            },
            if limits.is_empty() {
                String::new()
            } else {
                format!(", {}", limits.join(", "))
            }
        );
    }
    Ok(0)
}

/// `queuemgr watch`: a live view of running jobs, one bar each, until Ctrl-C.
pub async fn watch(c: &Client, conn: &Conn, job_type: Option<String>) -> Result<i32, ClientError> {
    let path = match &job_type {
        Some(t) => format!("/api/v1/events?job_type={t}"),
        None => "/api/v1/events".to_string(),
    };
    let mut stream = c.events(&path).await?;
    // Jobs running now first.
    let mut p = json!({"action": "list_jobs", "status_filter": "RUNNING", "limit": 1000});
    if let Some(t) = &job_type {
        p["job_type"] = json!(t);
    }
    let running = c.queue(p).await?;
    let multi = MultiProgress::new();
    let mut bars: HashMap<String, ProgressBar> = HashMap::new();
    let add_bar = |multi: &MultiProgress, id: &str, ty: &str| {
        let b = multi.add(ProgressBar::new(100));
        b.set_style(bar_style());
        b.set_prefix(format!("{ty} {id}"));
        b
    };
    for j in running["jobs"].as_array().cloned().unwrap_or_default() {
        let id = j["job_id"].as_str().unwrap_or("").to_string();
        let b = add_bar(&multi, &id, j["job_type"].as_str().unwrap_or(""));
        b.set_position(j["progress"].as_u64().unwrap_or(0));
        b.set_message(j["description"].as_str().unwrap_or("").to_string());
        bars.insert(id, b);
    }
    loop {
        let ev = tokio::select! {
            ev = stream.next() => match ev? { Some(ev) => ev, None => break },
            _ = tokio::signal::ctrl_c() => break,
        };
        if conn.json {
            println!("{}", json!({"event": ev.kind, "data": ev.data}));
            continue;
        }
        let id = ev.data["job_id"].as_str().unwrap_or("").to_string();
        let ty = ev.data["job_type"].as_str().unwrap_or("").to_string();
        match ev.kind.as_str() {
            "progress" => {
                let b = bars
                    .entry(id.clone())
                    .or_insert_with(|| add_bar(&multi, &id, &ty));
                b.set_position(ev.data["progress"].as_u64().unwrap_or(0));
                b.set_message(ev.data["description"].as_str().unwrap_or("").to_string());
            }
            "job" => {
                let status = ev.data["status"].as_str().unwrap_or("");
                if status == "RUNNING" {
                    let b = bars
                        .entry(id.clone())
                        .or_insert_with(|| add_bar(&multi, &id, &ty));
                    b.set_message(ev.data["description"].as_str().unwrap_or("").to_string());
                } else if let Some(b) = bars.remove(&id) {
                    b.finish_and_clear();
                    let _ = multi.println(format!("{id} {ty} {status}"));
                }
            }
            _ => {}
        }
    }
    for b in bars.values() {
        b.finish_and_clear();
    }
    Ok(0)
}

/// `queuemgr flow ID`: a flow as a tree — each job under its parent (or after its
/// dependencies), with its status and what it waits for.
pub async fn flow(c: &Client, conn: &Conn, job_id: &str) -> Result<i32, ClientError> {
    let d = c.call("queue_get_flow", json!({"job_id": job_id})).await?;
    if conn.json {
        print_json(&d);
        return Ok(0);
    }
    let nodes = d["nodes"].as_array().cloned().unwrap_or_default();
    let ids: std::collections::HashSet<&str> =
        nodes.iter().filter_map(|n| n["job_id"].as_str()).collect();
    let depth_of = |n: &Value| -> usize {
        let mut depth = 0;
        let mut cur = n["parent_id"].as_str();
        while let Some(p) = cur.filter(|p| ids.contains(p)) {
            depth += 1;
            cur = nodes
                .iter()
                .find(|m| m["job_id"] == p)
                .and_then(|m| m["parent_id"].as_str());
            if depth > 64 {
                break;
            }
        }
        depth
    };
    for n in &nodes {
        let mut line = format!(
            "{}{}  {}  {}",
            "  ".repeat(depth_of(n)),
            n["job_id"].as_str().unwrap_or(""),
            n["job_type"].as_str().unwrap_or(""),
            n["status"].as_str().unwrap_or("").to_uppercase()
        );
        if let Some(w) = n["waiting_for"]["description"].as_str() {
            line.push_str(&format!("  ({w})"));
        }
        if let Some(deps) = n["depends_on"].as_array() {
            let deps: Vec<&str> = deps.iter().filter_map(Value::as_str).collect();
            line.push_str(&format!("  after {}", deps.join(", ")));
        }
        println!("{line}");
    }
    println!(
        "{} jobs: {}",
        d["count"],
        d["by_status"]
            .as_object()
            .map(|m| m
                .iter()
                .map(|(k, v)| format!("{v} {k}"))
                .collect::<Vec<_>>()
                .join(", "))
            .unwrap_or_default()
    );
    Ok(0)
}

/// `queuemgr send-event ID NAME [--payload JSON]` (or `--key KEY` instead of ID).
pub async fn send_event(
    c: &Client,
    conn: &Conn,
    target: &str,
    by_key: bool,
    name: &str,
    payload: Option<&str>,
) -> Result<i32, ClientError> {
    let payload: Value = match payload {
        None => Value::Null,
        Some(text) => {
            serde_json::from_str(text).map_err(|e| bad(&format!("--payload is not JSON: {e}")))?
        }
    };
    let mut params = json!({"name": name, "payload": payload});
    params[if by_key { "unique_key" } else { "job_id" }] = json!(target);
    let d = c.call("queue_send_event", params).await?;
    if conn.json {
        print_json(&d);
    } else {
        println!(
            "{}: event '{name}' sent{}",
            d["job_id"].as_str().unwrap_or(target),
            if d["resumed"] == true {
                "; the job resumes"
            } else {
                ""
            }
        );
    }
    Ok(0)
}
