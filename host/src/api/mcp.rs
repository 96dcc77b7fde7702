//! MCP at `/mcp` (streamable HTTP, the official Rust SDK `rmcp`): every loaded job type is a
//! tool, and the queue's own commands are tools for agents that manage work.
//!
//! Why: the original framework exists to put commands in front of MCP proxies and agents; here
//! an agent connects directly. Calling a job type's tool adds and starts a job and answers with
//! its result once it ends; a client that gave a progress token gets `notifications/progress`
//! as the job reports it (from the live feed); a cancelled call (`notifications/cancelled`, or
//! a dropped connection) stops the job. The tool list follows the jobs directory: a type added,
//! replaced or removed sends `notifications/tools/list_changed` to every client listening
//! (2026-07-28 clients through `subscriptions/listen`, older ones on their session's stream).
//!
//! The queue tools (`queue_add_job`, `queue_get_job_status`, …) are the framework's commands,
//! answered by the same handlers as `/api/jsonrpc`, so both surfaces always agree.

use super::AppState;
use super::commands::{self, Command, Dialect, params::QueueAction};
use super::jsonrpc::CallResult;
use super::views;
use crate::auth::{Caller, Role};
use crate::queue::AddRequest;
use crate::queue::feed::{EventBody, Subscription};
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, Implementation,
    InitializeRequestParams, InitializeResult, JsonObject, ListToolsResult, PaginatedRequestParams,
    ProgressNotificationParam, ServerCapabilities, ServerConfig, SubscriptionFilter, Tool,
};
use rmcp::service::{RequestContext, SubscriptionContext, SubscriptionSink};
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use rmcp::{ErrorData as McpError, Peer, RoleServer, ServerHandler};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::broadcast::error::RecvError;

/// The framework's commands offered as tools, with what they do.
/// The tool that lists job types: the seed's `queue` with `list_job_types`, not a command of
/// its own.
const LIST_JOB_TYPES: (&str, &str) = (
    "queue_list_job_types",
    "The job types this host can run, with their params schemas",
);

/// The queue's own tools: the table's commands that are MCP tools, then the job types' list.
fn queue_tools() -> impl Iterator<Item = (&'static str, &'static str)> {
    Command::MCP_TOOLS
        .into_iter()
        .filter_map(|c| Some((c.name(), c.mcp_tool()?)))
        .chain([LIST_JOB_TYPES])
}

/// Who to tell when the tool list changes.
#[derive(Default)]
struct Listeners {
    /// Clients of protocol versions with sessions, by a key of ours.
    peers: HashMap<u64, Peer<RoleServer>>,
    /// 2026-07-28 clients with an open `subscriptions/listen`.
    sinks: HashMap<u64, SubscriptionSink>,
}

/// The MCP side of the host: shared by every session's handler.
pub(crate) struct Mcp {
    state: AppState,
    listeners: Mutex<Listeners>,
    next: AtomicU64,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn object(v: &Value) -> Arc<JsonObject> {
    match v {
        Value::Object(m) => Arc::new(m.clone()),
        _ => Arc::new(JsonObject::from_iter([("type".into(), json!("object"))])),
    }
}

/// The caller of an MCP request: the key the HTTP request came with (the auth layer put it in
/// the request's extensions), or everyone's on an open API.
fn caller_of(ctx: &RequestContext<RoleServer>) -> Caller {
    ctx.extensions
        .get::<http::request::Parts>()
        .and_then(|p| p.extensions.get::<Caller>())
        .cloned()
        .unwrap_or_else(Caller::open)
}

/// Whether `caller`'s role may call the queue tool `name` (the role its command needs).
fn may_call(caller: &Caller, name: &str) -> bool {
    let need = match Command::parse(name) {
        Some(c) => commands::command_role(c),
        None => Role::Read,
    };
    caller.role.allows(need)
}

impl Mcp {
    /// The tools `caller` may call: the queue tools its role allows, the job types in its
    /// scope (calling one adds a job, which needs `run`).
    fn tools(&self, caller: &Caller) -> Vec<Tool> {
        let mut tools: Vec<Tool> = queue_tools()
            .filter(|(name, _)| may_call(caller, name))
            .filter_map(|(name, description)| {
                let schema = if name == LIST_JOB_TYPES.0 {
                    json!({"type": "object", "properties": {}})
                } else {
                    self.state
                        .commands
                        .iter()
                        .find(|c| c.name == name)?
                        .schema
                        .clone()
                };
                Some(Tool::new(name, description, object(&schema)))
            })
            .collect();
        let (types, _) = self.state.queue.catalog().list();
        for t in types {
            if queue_tools().any(|(n, _)| n == t.name)
                || !caller.role.allows(Role::Run)
                || caller
                    .scope
                    .as_ref()
                    .is_some_and(|s| !s.admits_type(&t.name))
            {
                continue;
            }
            let info = t.info();
            let description = format!(
                "{} (job type {}, version {}; runs the job and answers with its result)",
                info.description, t.name, info.version
            );
            tools.push(Tool::new(
                t.name.clone(),
                description,
                object(&info.params_schema),
            ));
        }
        tools
    }

    /// Tells every listening client that the tool list changed.
    async fn list_changed(&self) {
        let (peers, sinks): (Vec<_>, Vec<_>) = {
            let mut l = lock(&self.listeners);
            l.peers.retain(|_, p| !p.is_transport_closed());
            (
                l.peers.iter().map(|(k, p)| (*k, p.clone())).collect(),
                l.sinks.iter().map(|(k, s)| (*k, s.clone())).collect(),
            )
        };
        for (key, peer) in peers {
            let sent =
                tokio::time::timeout(Duration::from_secs(2), peer.notify_tool_list_changed()).await;
            if !matches!(sent, Ok(Ok(()))) {
                lock(&self.listeners).peers.remove(&key);
            }
        }
        for (key, sink) in sinks {
            if sink.notify_tool_list_changed().await.is_err() {
                lock(&self.listeners).sinks.remove(&key);
            }
        }
    }

    /// A framework command as a tool: its answer as structured content, its failure as a tool
    /// error.
    async fn queue_tool(
        &self,
        caller: &Caller,
        name: &str,
        args: JsonObject,
    ) -> Result<CallToolResult, McpError> {
        let (method, params) = if name == LIST_JOB_TYPES.0 {
            (
                Command::Queue.name(),
                json!({"action": QueueAction::ListJobTypes.as_str()}),
            )
        } else {
            (name, Value::Object(args))
        };
        tool_result(commands::call(&self.state, caller, method, params).await)
    }

    /// A job type as a tool: add and start a job, relay its progress, answer its end.
    async fn job_tool(
        &self,
        caller: &Caller,
        job_type: &str,
        args: JsonObject,
        ctx: &RequestContext<RoleServer>,
    ) -> Result<CallToolResult, McpError> {
        let q = &self.state.queue;
        let job_id = crate::job::new_id();
        // Subscribe before adding, so that no event of the job can be missed.
        let Subscription { mut live, .. } = q.feed().subscribe(None);
        let req = AddRequest {
            job_id: Some(job_id.clone()),
            job_type: Some(job_type.to_string()),
            params: Value::Object(args),
            caller: Some(caller.clone()),
            ..AddRequest::default()
        };
        if let Err(e) = q.add_job(req, true).await {
            return tool_result(commands::domain(e, job_type, Dialect::Framework));
        }
        let token = ctx.meta.get_progress_token();
        let mut last_progress = None;
        let mut poll = tokio::time::interval(Duration::from_secs(1));
        poll.tick().await;
        let end = loop {
            let check = tokio::select! {
                _ = ctx.ct.cancelled() => {
                    tracing::info!(%job_id, "MCP call cancelled: stopping its job");
                    let _ = q.stop_job(&job_id, caller).await;
                    return Err(McpError::internal_error("cancelled: the job was stopped", None));
                }
                ev = live.recv() => match ev {
                    Ok(ev) if *ev.job_id == *job_id => match &ev.body {
                        EventBody::Progress { percent, description } => {
                            if let Some(t) = &token && last_progress != Some(*percent) {
                                last_progress = Some(*percent);
                                let p = ProgressNotificationParam::new(t.clone(), f64::from(*percent))
                                    .with_total(100.0)
                                    .with_message(description.clone());
                                // A client gone mid-send must not hold the call: race the send
                                // with the cancellation.
                                tokio::select! {
                                    _ = ctx.ct.cancelled() => {}
                                    _ = ctx.peer.notify_progress(p) => {}
                                }
                            }
                            false
                        }
                        EventBody::Job(j) if j.status.is_terminal() => break j.clone(),
                        _ => false,
                    },
                    Ok(_) => false,
                    // Fell behind the feed: read the job itself.
                    Err(RecvError::Lagged(_)) => true,
                    Err(RecvError::Closed) => true,
                },
                _ = poll.tick() => true,
            };
            if check
                && let Ok(j) = q.get_status(&job_id).await
                && j.status.is_terminal()
            {
                break j;
            }
        };
        let view = views::seed_job(&end, false);
        Ok(match end.status {
            crate::job::Status::Completed => {
                let result = end.result.as_ref().map_or(Value::Null, |r| r.to_value());
                match result {
                    Value::Object(_) => CallToolResult::structured(result),
                    other => CallToolResult::success(vec![ContentBlock::text(other.to_string())]),
                }
            }
            _ => CallToolResult::structured_error(view),
        })
    }
}

/// A command's answer as a tool result: its data as structured content, a domain failure as
/// a tool error (the agent sees it), invalid params as a protocol error.
fn tool_result(r: CallResult) -> Result<CallToolResult, McpError> {
    Ok(match r {
        CallResult::Ok(v) | CallResult::Plain(v) => CallToolResult::structured(v),
        CallResult::Domain(e) => CallToolResult::structured_error(
            json!({"code": e.code, "message": e.message, "data": e.data}),
        ),
        // A key's refusal is the agent's to read, like a domain failure.
        CallResult::Rpc(e) if e.code == super::jsonrpc::codes::FORBIDDEN => {
            CallToolResult::structured_error(
                json!({"code": e.code, "message": e.message, "data": e.data}),
            )
        }
        CallResult::Rpc(e) => return Err(McpError::invalid_params(e.message, e.data)),
    })
}

/// One session's (or one stateless request's) handler.
#[derive(Clone)]
pub(crate) struct Handler(Arc<Mcp>);

impl ServerHandler for Handler {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(
            ServerCapabilities::builder()
                .enable_tools()
                .enable_tool_list_changed()
                .build(),
        )
        .with_server_info(Implementation::new("queuemgr", env!("CARGO_PKG_VERSION")))
        .with_instructions(
            "Each job type is a tool: calling it runs a job and answers with its result \
             (progress notifications if you send a progress token; cancelling stops the job). \
             The queue_* tools add jobs without waiting, read their status and logs, list, \
             stop and delete them.",
        )
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, McpError> {
        Ok(ListToolsResult::with_all_items(
            self.0.tools(&caller_of(&context)),
        ))
    }

    fn get_tool(&self, name: &str) -> Option<Tool> {
        // Only to look up a tool's schema: who may call it is checked in `call_tool`.
        self.0
            .tools(&Caller::open())
            .into_iter()
            .find(|t| t.name == name)
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, McpError> {
        let args = request.arguments.clone().unwrap_or_default();
        let name = request.name.as_ref();
        let caller = caller_of(&context);
        if queue_tools().any(|(n, _)| n == name) {
            // The command checks the role and the scope itself (a refusal is a tool error
            // naming what the key lacks).
            return self.0.queue_tool(&caller, name, args).await.map(Into::into);
        }
        if self.0.state.queue.catalog().get(name).is_none() {
            return Err(McpError::invalid_params(
                format!("unknown tool: {name}"),
                None,
            ));
        }
        if !caller.role.allows(Role::Run) {
            self.0
                .state
                .queue
                .config()
                .metrics
                .auth_refused("forbidden");
            return Err(McpError::invalid_request(
                caller.refusal(&format!("run the job type {name}"), Role::Run),
                None,
            ));
        }
        self.0
            .job_tool(&caller, name, args, &context)
            .await
            .map(Into::into)
    }

    async fn initialize(
        &self,
        request: InitializeRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<InitializeResult, McpError> {
        // Clients with sessions: remember the session's peer for list_changed. Here rather than
        // in `on_initialized`, which the client does not wait for.
        context.peer.set_peer_info(request.clone());
        let key = self.0.next.fetch_add(1, Ordering::Relaxed);
        lock(&self.0.listeners)
            .peers
            .insert(key, context.peer.clone());
        self.negotiate_initialize(&request)
    }

    fn accepted_subscription_filter(
        &self,
        requested: &SubscriptionFilter,
    ) -> Option<SubscriptionFilter> {
        Some(requested.supported_by(&self.get_info().capabilities))
    }

    async fn listen(&self, context: SubscriptionContext) -> Result<(), McpError> {
        let key = self.0.next.fetch_add(1, Ordering::Relaxed);
        lock(&self.0.listeners)
            .sinks
            .insert(key, context.sink().clone());
        context.cancelled().await;
        lock(&self.0.listeners).sinks.remove(&key);
        Ok(())
    }
}

/// The `/mcp` service, and a task that announces tool list changes until the catalog goes.
pub(crate) fn service(
    state: AppState,
    allowed_hosts: Vec<String>,
) -> StreamableHttpService<Handler, LocalSessionManager> {
    let mut changes = state.queue.catalog().changes();
    let mcp = Arc::new(Mcp {
        state,
        listeners: Mutex::new(Listeners::default()),
        next: AtomicU64::new(1),
    });
    let weak = Arc::downgrade(&mcp);
    tokio::spawn(async move {
        while changes.changed().await.is_ok() {
            let Some(mcp) = weak.upgrade() else { break };
            mcp.list_changed().await;
        }
    });
    let config = StreamableHttpServerConfig::default()
        .with_allowed_hosts(allowed_hosts)
        .with_sse_keep_alive(Some(Duration::from_secs(15)));
    // A session that only waits for list_changed sends nothing for long stretches; the
    // default idle limit (5 minutes) would end it.
    let mut sessions = LocalSessionManager::default();
    sessions.session_config.keep_alive = Some(Duration::from_secs(24 * 3600));
    StreamableHttpService::new(move || Ok(Handler(mcp.clone())), Arc::new(sessions), config)
}
