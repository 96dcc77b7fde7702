//! `/ws`: the framework's command session, so that its client (`execute_command_unified`) runs
//! a job type as a queued command and waits for its end over one WebSocket, with no polling.
//!
//! Actions (client → host), as mcp-proxy-adapter 8.11.7 sends them:
//! - `execute_command` (`request_id`, `command`, `params`): a job type is added and started as
//!   a queued command; a built-in command runs at once in the host and its result is kept for
//!   `queue_get_job_status` (as the framework runs a command without `use_queue` in-process).
//!   Answers `command_accepted`, then `command_progress` on each change and one terminal
//!   event; or `command_error` when refused before any job.
//! - `cancel_command` (`job_id`, `request_id`, `reason`): stops the job; answers
//!   `{"action":"cancel_command","success":true,"job_id","status":"stopped"}` or a
//!   `command_error` with the domain error.
//! - `unsubscribe` with `caller_loss: "detach"`: the caller leaves and the job runs on. Without
//!   it, a socket that closes while it holds a job's command session stops the job when it was
//!   the job's last command-session subscriber (the framework's `on_caller_loss = cancel`).
//!   A plain `unsubscribe` (`subscription_type`) just ends a subscription.
//! - `subscribe` with `subscription_type` `queue_job` (the older wait, `job_processing_step`,
//!   `job_completed`, `job_failed`, `job_stopped`) or `command_session` (follow a job already
//!   started), and `resume_command_events` (the job's current state again).
//!
//! The host pings every keep-alive interval (the client's heartbeat pings are answered too), so
//! that the client's receive timeout never fires on a healthy but quiet socket. The API key is
//! required on the upgrade (the original leaves `/ws` open even with auth on).

pub mod hub;
pub mod messages;

use super::AppState;
use super::commands::{self, Dialect, job_commands};
use super::jsonrpc::{CallResult, codes};
use crate::job::{Status, now_micros};
use crate::queue::QueueError;
use crate::queue::feed::EventBody;
use axum::extract::State;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::response::Response;
use hub::{Delivery, Hub, Inline, Kind, Place};
use messages::{CommandWatch, QueueJobWatch, Refusal, Seen, Step};
use serde_json::{Map, Value, json};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use tokio::sync::mpsc;

/// `GET /ws`: upgrades to a command session.
pub(super) async fn upgrade(
    State(state): State<AppState>,
    caller: Option<axum::Extension<crate::auth::Caller>>,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    let caller = super::caller_of(caller);
    let ws = match ws {
        Ok(ws) => ws,
        Err(r) => {
            return super::detail(
                r.status(),
                format!(
                    "/ws is a WebSocket (the command session): {}",
                    r.body_text()
                ),
            );
        }
    };
    let Some(place) = state.ws.reserve(state.max_ws_connections) else {
        return super::detail(
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "Server busy: {} WebSocket connections are open, the most it keeps",
                state.max_ws_connections
            ),
        );
    };
    let max = state.max_message_bytes;
    // A failed upgrade drops the callback, and with it the place.
    ws.max_message_size(max)
        .max_frame_size(max)
        .on_upgrade(move |socket| Connection::new(state, caller, place).run(socket))
}

/// One socket's state: its sessions by job, and the jobs it announced it detaches from.
struct Connection {
    state: AppState,
    /// The key that opened the socket: its commands run with its role.
    caller: crate::auth::Caller,
    hub: Arc<Hub>,
    id: u64,
    /// Held while the socket is open.
    _place: Place,
    tx: mpsc::UnboundedSender<Delivery>,
    rx: mpsc::UnboundedReceiver<Delivery>,
    commands: HashMap<String, CommandWatch>,
    queue_jobs: HashMap<String, QueueJobWatch>,
    detached: HashSet<String>,
}

impl Connection {
    fn new(state: AppState, caller: crate::auth::Caller, place: Place) -> Self {
        let hub = state.ws.clone();
        hub.start(state.queue.feed());
        let (tx, rx) = mpsc::unbounded_channel();
        state.queue.config().metrics.ws_connections_total.inc();
        Connection {
            id: place.id,
            _place: place,
            hub,
            state,
            caller,
            tx,
            rx,
            commands: HashMap::new(),
            queue_jobs: HashMap::new(),
            detached: HashSet::new(),
        }
    }

    async fn run(mut self, mut socket: WebSocket) {
        let mut ping = tokio::time::interval(self.state.sse_keep_alive);
        ping.tick().await;
        loop {
            let out = tokio::select! {
                msg = socket.recv() => match msg {
                    Some(Ok(Message::Text(t))) => self.on_text(t.as_str()).await,
                    Some(Ok(Message::Binary(_))) => vec![messages::protocol_error(
                        codes::INVALID_REQUEST,
                        "binary messages are not understood: send JSON text",
                        None,
                    )],
                    Some(Ok(Message::Ping(_) | Message::Pong(_))) => Vec::new(),
                    Some(Ok(Message::Close(_))) | Some(Err(_)) | None => break,
                },
                Some(d) = self.rx.recv() => self.on_delivery(d).await,
                _ = ping.tick() => {
                    if socket.send(Message::Ping(Default::default())).await.is_err() {
                        break;
                    }
                    Vec::new()
                }
            };
            let mut failed = false;
            for v in out {
                if socket
                    .send(Message::Text(v.to_string().into()))
                    .await
                    .is_err()
                {
                    failed = true;
                    break;
                }
            }
            if failed {
                break;
            }
        }
        self.close().await;
    }

    /// The socket closed: drop its watches, and stop the jobs whose last command session it
    /// held without announcing a detach.
    async fn close(mut self) {
        let owned: Vec<String> = self.commands.drain().map(|(j, _)| j).collect();
        for job in self.queue_jobs.drain().map(|(j, _)| j) {
            self.hub.unwatch(self.id, &job, Kind::QueueJob);
        }
        let mut lost = Vec::new();
        for job in owned {
            let left = self.hub.unwatch(self.id, &job, Kind::Command);
            if left == 0 && !self.detached.contains(&job) {
                lost.push(job);
            }
        }
        for job in lost {
            self.hub.note_reason(&job, "caller_lost");
            match self.state.queue.stop_job(&job, &self.caller).await {
                Ok(_) => tracing::info!(job_id = %job, "ws: caller lost, job stopped"),
                Err(e) => {
                    tracing::debug!(job_id = %job, error = %e, "ws: caller lost, nothing to stop")
                }
            }
        }
    }

    async fn on_text(&mut self, text: &str) -> Vec<Value> {
        let msg: Map<String, Value> = match serde_json::from_str(text) {
            Ok(Value::Object(m)) => m,
            Ok(_) => {
                return vec![messages::protocol_error(
                    codes::INVALID_REQUEST,
                    "a message must be a JSON object with an action",
                    None,
                )];
            }
            Err(e) => {
                return vec![messages::protocol_error(
                    -32700,
                    &format!("Parse error: {e}"),
                    None,
                )];
            }
        };
        match msg.get("action").and_then(Value::as_str) {
            Some("execute_command") => self.execute(&msg).await,
            Some("cancel_command") => self.cancel(&msg).await,
            Some("subscribe") => self.subscribe(&msg).await,
            Some("unsubscribe") => self.unsubscribe(&msg),
            Some("resume_command_events") => self.resume(&msg).await,
            other => vec![messages::protocol_error(
                codes::METHOD_NOT_FOUND,
                &format!(
                    "unknown action {}: one of execute_command, cancel_command, subscribe, unsubscribe, resume_command_events",
                    other.map_or_else(|| "(none)".to_string(), |a| format!("'{a}'"))
                ),
                Some(json!({"field": "action"})),
            )],
        }
    }

    async fn execute(&mut self, msg: &Map<String, Value>) -> Vec<Value> {
        let request_id = match msg.get("request_id") {
            Some(Value::String(s)) if !s.trim().is_empty() => s.trim().to_string(),
            Some(Value::Number(n)) => n.to_string(),
            _ => crate::job::new_id(),
        };
        let command = match msg.get("command") {
            Some(Value::String(c)) if !c.trim().is_empty() => c.trim().to_string(),
            _ => {
                return vec![messages::command_error(
                    &Refusal {
                        message: "command required".into(),
                        ..Refusal::default()
                    },
                    "",
                    &request_id,
                    "",
                    None,
                )];
            }
        };
        let params = match msg.get("params") {
            None | Some(Value::Null) => Value::Object(Map::new()),
            Some(p @ Value::Object(_)) => p.clone(),
            Some(_) => {
                return vec![messages::command_error(
                    &Refusal {
                        message: "params must be an object".into(),
                        code: Some(codes::INVALID_PARAMS),
                        data: Some(json!({"field": "params", "violation": "type"})),
                    },
                    "",
                    &request_id,
                    &command,
                    None,
                )];
            }
        };
        if self.state.commands.iter().any(|c| c.name == command) {
            return self.run_inline(request_id, command, params).await;
        }
        if !job_commands::is_job_command(&self.state, &command) {
            return vec![messages::command_error(
                &Refusal {
                    message: format!("Method not found: {command}"),
                    code: Some(codes::METHOD_NOT_FOUND),
                    data: None,
                },
                "",
                &request_id,
                &command,
                None,
            )];
        }
        // Watch before the job exists, so that none of its events can be missed.
        let job_id = crate::job::new_id();
        self.hub.watch(self.id, &job_id, Kind::Command, &self.tx);
        match job_commands::start(&self.state, &self.caller, &command, job_id.clone(), params).await
        {
            Ok(_) => {
                let accepted = messages::accepted(&job_id, &request_id, &command);
                self.commands
                    .insert(job_id, CommandWatch::new(request_id, command));
                vec![accepted]
            }
            Err(answer) => {
                self.hub.unwatch(self.id, &job_id, Kind::Command);
                vec![messages::command_error(
                    &refusal_of(answer),
                    "",
                    &request_id,
                    &command,
                    None,
                )]
            }
        }
    }

    /// A built-in command in a session: it runs now; its answer is kept for
    /// `queue_get_job_status` under an id of its own.
    async fn run_inline(
        &mut self,
        request_id: String,
        command: String,
        params: Value,
    ) -> Vec<Value> {
        let result = match commands::call(&self.state, &self.caller, &command, params).await {
            CallResult::Ok(data) | CallResult::Plain(data) => {
                json!({"success": true, "data": data})
            }
            CallResult::Domain(e) => {
                json!({"success": false, "error": {"code": e.code, "message": e.message, "data": e.data}})
            }
            CallResult::Rpc(e) => {
                return vec![messages::command_error(
                    &Refusal {
                        message: e.message,
                        code: Some(e.code),
                        data: e.data,
                    },
                    "",
                    &request_id,
                    &command,
                    None,
                )];
            }
        };
        let id = format!("cmd-{}", crate::job::new_id());
        self.hub.keep_inline(
            &id,
            Inline {
                command: command.clone(),
                success: result["success"] == true,
                result,
                at: now_micros(),
            },
        );
        vec![
            messages::accepted(&id, &request_id, &command),
            messages::completed(&id, &request_id, &command),
        ]
    }

    async fn cancel(&mut self, msg: &Map<String, Value>) -> Vec<Value> {
        const KEYS: [&str; 4] = ["action", "job_id", "request_id", "reason"];
        let request_id = match msg.get("request_id") {
            Some(Value::String(s)) => s.clone(),
            Some(Value::Number(n)) => n.to_string(),
            _ => String::new(),
        };
        let given_job = msg.get("job_id").and_then(Value::as_str).unwrap_or("");
        let refuse = |message: String, violation: &str, field: &str| {
            vec![messages::command_error(
                &Refusal {
                    message,
                    code: Some(codes::INVALID_PARAMS),
                    data: Some(json!({"field": field, "violation": violation})),
                },
                given_job,
                &request_id,
                "",
                Some("cancel_command"),
            )]
        };
        if let Some(k) = msg.keys().find(|k| !KEYS.contains(&k.as_str())) {
            return refuse(format!("Unknown parameter: {k}"), "unknown", k);
        }
        let job_id = match msg.get("job_id") {
            None => return refuse("job_id is required".into(), "missing", "job_id"),
            Some(Value::String(s)) if s.trim().is_empty() => {
                return refuse("job_id must not be empty".into(), "value", "job_id");
            }
            Some(Value::String(s)) => s.trim().to_string(),
            Some(_) => return refuse("job_id must be a string".into(), "type", "job_id"),
        };
        let reason = match msg.get("reason") {
            None => "cancelled",
            Some(Value::String(r)) => match messages::REASONS.iter().find(|k| **k == r) {
                Some(k) => k,
                None => return refuse("reason is not recognised".into(), "value", "reason"),
            },
            Some(_) => return refuse("reason is not recognised".into(), "value", "reason"),
        };
        self.hub.note_reason(&job_id, reason);
        match self.state.queue.stop_job(&job_id, &self.caller).await {
            Ok(_) => {
                let mut reply = json!({"action": "cancel_command", "success": true, "job_id": job_id, "status": "stopped"});
                if !request_id.is_empty() {
                    reply["request_id"] = json!(request_id);
                }
                vec![reply]
            }
            Err(e) => {
                let e = if self.hub.inline(&job_id).is_some() {
                    QueueError::StateInvalid {
                        job_id: job_id.clone(),
                        action: "stop",
                        current: Status::Completed,
                        waiting: false,
                        allowed: vec![Status::Pending, Status::Running],
                    }
                } else {
                    e
                };
                vec![messages::command_error(
                    &refusal_of(commands::domain(e, "cancel_command", Dialect::Framework)),
                    &job_id,
                    &request_id,
                    "",
                    Some("cancel_command"),
                )]
            }
        }
    }

    async fn subscribe(&mut self, msg: &Map<String, Value>) -> Vec<Value> {
        let kind = match subscription_type(msg) {
            Ok(Some(k)) => k,
            Ok(None) => {
                return vec![
                    json!({"action": "subscribe_error", "error": "unknown subscription_type", "expected": ["queue_job", "command_session"]}),
                ];
            }
            Err(answer) => return vec![answer],
        };
        let Some(job_id) = job_id_of(msg) else {
            let what = if kind == Kind::QueueJob {
                "queue_job"
            } else {
                "command_session"
            };
            return vec![
                json!({"action": "subscribe_error", "error": format!("job_id required for {what}")}),
            ];
        };
        self.hub.watch(self.id, &job_id, kind, &self.tx);
        match kind {
            Kind::QueueJob => {
                self.queue_jobs.entry(job_id.clone()).or_default();
            }
            Kind::Command => {
                self.commands
                    .entry(job_id.clone())
                    .or_insert_with(|| CommandWatch::new(String::new(), String::new()));
                self.detached.remove(&job_id);
            }
        }
        // A job that has already ended gets its terminal event now.
        match self.state.queue.get_status(&job_id).await {
            Ok(rec) if rec.status.is_terminal() => {
                self.seen(&rec.job_id.clone(), Seen::Job(&rec), Some(kind))
            }
            Ok(_) => Vec::new(),
            Err(QueueError::NotFound(_)) => {
                self.forget(&job_id, kind);
                vec![
                    json!({"action": "subscribe_error", "job_id": job_id, "error": "Job not found", "data": {"domain_code": "JOB_NOT_FOUND"}}),
                ]
            }
            Err(e) => {
                tracing::debug!(job_id = %job_id, error = %e, "ws: subscribe could not read the job");
                Vec::new()
            }
        }
    }

    fn unsubscribe(&mut self, msg: &Map<String, Value>) -> Vec<Value> {
        let job_id = job_id_of(msg).unwrap_or_default();
        if let Some(loss) = msg.get("caller_loss") {
            if job_id.is_empty() {
                return vec![
                    json!({"action": "subscribe_error", "error": "job_id required for caller_loss"}),
                ];
            }
            if loss != "detach" {
                return vec![
                    json!({"action": "subscribe_error", "job_id": job_id, "error": "caller_loss must be 'detach'",
                    "code": codes::INVALID_PARAMS, "data": {"field": "caller_loss", "violation": "value"}}),
                ];
            }
            self.detached.insert(job_id.clone());
            self.forget(&job_id, Kind::Command);
            return Vec::new();
        }
        // An unsubscribe of a type this host does not serve has nothing to end.
        let kind = match subscription_type(msg) {
            Ok(Some(k)) => k,
            Ok(None) => return Vec::new(),
            Err(answer) => return vec![answer],
        };
        if !job_id.is_empty() {
            self.forget(&job_id, kind);
        }
        Vec::new()
    }

    async fn resume(&mut self, msg: &Map<String, Value>) -> Vec<Value> {
        let Some(job_id) = job_id_of(msg) else {
            return vec![messages::command_error(
                &Refusal {
                    message: "job_id required for resume".into(),
                    ..Refusal::default()
                },
                "",
                "",
                "",
                None,
            )];
        };
        self.hub.watch(self.id, &job_id, Kind::Command, &self.tx);
        let watch = self
            .commands
            .entry(job_id.clone())
            .or_insert_with(|| CommandWatch::new(String::new(), String::new()));
        watch.forget_last();
        match self.state.queue.get_status(&job_id).await {
            Ok(rec) => {
                let out = self.seen(&job_id, Seen::Job(&rec), Some(Kind::Command));
                if out.is_empty() {
                    vec![messages::accepted(&job_id, "", &rec.job_type)]
                } else {
                    out
                }
            }
            Err(_) => {
                self.forget(&job_id, Kind::Command);
                vec![messages::command_error(
                    &Refusal {
                        message: "resume_not_available".into(),
                        ..Refusal::default()
                    },
                    &job_id,
                    "",
                    "",
                    None,
                )]
            }
        }
    }

    fn forget(&mut self, job_id: &str, kind: Kind) {
        match kind {
            Kind::Command => self.commands.remove(job_id).map(|_| ()),
            Kind::QueueJob => self.queue_jobs.remove(job_id).map(|_| ()),
        };
        self.hub.unwatch(self.id, job_id, kind);
    }

    async fn on_delivery(&mut self, d: Delivery) -> Vec<Value> {
        match d {
            Delivery::Event(ev) => match &ev.body {
                EventBody::Job(rec) => self.seen(&ev.job_id, Seen::Job(rec), None),
                EventBody::Progress {
                    percent,
                    description,
                } => self.seen(
                    &ev.job_id,
                    Seen::Progress {
                        status: ev.status,
                        percent: *percent,
                        description,
                    },
                    None,
                ),
                EventBody::Log(..) => Vec::new(),
            },
            Delivery::Refresh(job) => match self.state.queue.get_status(&job).await {
                Ok(rec) => self.seen(&job, Seen::Job(&rec), None),
                Err(_) => Vec::new(),
            },
        }
    }

    /// What this socket sends for an event of `job_id` (to the watches of `only`, or all).
    fn seen(&mut self, job_id: &str, seen: Seen<'_>, only: Option<Kind>) -> Vec<Value> {
        let mut out = Vec::new();
        let mut ended = Vec::new();
        if only.is_none_or(|k| k == Kind::Command)
            && let Some(w) = self.commands.get_mut(job_id)
        {
            let reason = self.hub.reason(job_id);
            fill_command(w, seen);
            match w.step(job_id, seen, reason) {
                Step::Quiet => {}
                Step::Send(v) => out.push(v),
                Step::End(v) => {
                    out.push(v);
                    ended.push(Kind::Command);
                }
            }
        }
        if only.is_none_or(|k| k == Kind::QueueJob)
            && let Some(w) = self.queue_jobs.get_mut(job_id)
        {
            match w.step(job_id, seen) {
                Step::Quiet => {}
                Step::Send(v) => out.push(v),
                Step::End(v) => {
                    out.push(v);
                    ended.push(Kind::QueueJob);
                }
            }
        }
        for k in ended {
            self.forget(job_id, k);
        }
        out
    }
}

/// The `subscription_type` of a subscribe or unsubscribe: the kind of watch, `None` for a type
/// this host does not serve, or the `subscribe_error` to answer when it is missing.
fn subscription_type(msg: &Map<String, Value>) -> Result<Option<Kind>, Value> {
    match msg
        .get("subscription_type")
        .and_then(Value::as_str)
        .map(str::trim)
    {
        Some("queue_job") => Ok(Some(Kind::QueueJob)),
        Some("command_session") => Ok(Some(Kind::Command)),
        Some("") | None => {
            Err(json!({"action": "subscribe_error", "error": "subscription_type required"}))
        }
        Some(_) => Ok(None),
    }
}

/// A message's `job_id`, trimmed, when it is a non-empty string.
fn job_id_of(msg: &Map<String, Value>) -> Option<String> {
    msg.get("job_id")
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|j| !j.is_empty())
        .map(str::to_string)
}

/// A session that followed a job it did not start learns the job's command from its record.
fn fill_command(w: &mut CommandWatch, seen: Seen<'_>) {
    if w.command.is_empty()
        && let Seen::Job(rec) = seen
    {
        w.command = rec.job_type.clone();
    }
}

/// A refusal from a command's answer.
fn refusal_of(answer: CallResult) -> Refusal {
    match answer {
        CallResult::Rpc(e) => Refusal {
            message: e.message,
            code: Some(e.code),
            data: e.data,
        },
        CallResult::Domain(e) => Refusal {
            message: e.message,
            code: Some(e.code),
            data: Some(e.data),
        },
        CallResult::Ok(v) | CallResult::Plain(v) => Refusal {
            message: v.to_string(),
            ..Refusal::default()
        },
    }
}

/// `queue_get_job_status` of a built-in command run in a session, in the framework's shape.
pub(crate) fn inline_status(job_id: &str, inline: &Inline) -> Value {
    let at = json!(super::views::iso(inline.at));
    json!({
        "job_id": job_id, "job_type": inline.command, "status": "completed", "progress": 100,
        "description": "", "error": null, "error_info": null,
        "result": {"job_id": job_id, "command": inline.command, "result": inline.result, "status": "completed"},
        "created_at": at, "started_at": at, "completed_at": at,
        "job_success": true, "command_execution": true, "command_name": inline.command,
        "command_success": inline.success, "inner_success": inline.success,
        "completed_with_error": !inline.success, "native_completed_with_error": false,
    })
}
