//! The HTTP surface: the framework's JSON-RPC routes (and the seed's `/api/v1/execute`),
//! `/health`, `/commands` and `/openapi.json`.
//!
//! Handlers are thin: they frame and unframe JSON-RPC and hand each call to
//! [`commands::call`], which validates params against the command's schema and calls the
//! [`crate::queue::Queue`]. Transport errors (malformed JSON, a body that is not an object, a
//! body over the size limit, a missing token) are answered here with JSON bodies.

pub mod commands;
mod dashboard;
pub mod jsonrpc;
mod mcp;
mod openapi;
pub mod serve;
mod sse;
pub mod validate;
pub mod views;
pub mod ws;

use crate::auth::{Caller, KeyRing, Role, presented_key};
use crate::queue::Queue;
use axum::Extension;
use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use commands::CommandSpec;
use jsonrpc::{envelope, parse_request};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Instant;

/// HTTP settings.
#[derive(Debug, Clone)]
pub struct ApiConfig {
    /// The API key; `None` (and no `keys`) leaves the API open.
    pub api_key: Option<String>,
    /// Named keys with roles (`--keys-file`, and `--api-key` as an admin key); when set, it
    /// is used instead of `api_key`.
    pub keys: Option<Arc<KeyRing>>,
    /// Largest request body accepted, in bytes.
    pub max_body_bytes: usize,
    /// Most requests in one batch.
    pub max_batch: usize,
    /// Most requests being handled at once; more get 503 at once.
    pub max_in_flight: usize,
    /// Longest a request may take before it is answered 503 (event streams excepted).
    pub request_timeout: std::time::Duration,
    /// Interval of keep-alive comments on event streams.
    pub sse_keep_alive: std::time::Duration,
    /// `Host` header values `/mcp` accepts (a name without a port matches any port).
    pub mcp_allowed_hosts: Vec<String>,
    /// Serve the dashboard's files from this directory instead of the embedded ones.
    pub dashboard_dir: Option<std::path::PathBuf>,
    /// Most open `/ws` sockets; more are answered 503.
    pub max_ws_connections: usize,
}

impl Default for ApiConfig {
    fn default() -> Self {
        ApiConfig {
            api_key: None,
            keys: None,
            max_body_bytes: 1 << 20,
            max_batch: 1000,
            max_in_flight: 512,
            request_timeout: std::time::Duration::from_secs(60),
            sse_keep_alive: std::time::Duration::from_secs(15),
            mcp_allowed_hosts: vec!["localhost".into(), "127.0.0.1".into(), "::1".into()],
            dashboard_dir: None,
            max_ws_connections: 1024,
        }
    }
}

/// What every handler shares: one `Arc`, so that the clone each request makes of it (the
/// handlers' `State`) is one counter, not one per part.
#[derive(Clone)]
pub struct AppState(Arc<AppShared>);

impl std::ops::Deref for AppState {
    type Target = AppShared;

    fn deref(&self) -> &AppShared {
        &self.0
    }
}

/// The parts of [`AppState`].
pub struct AppShared {
    /// The queue.
    pub queue: Queue,
    /// The command table.
    pub commands: Arc<Vec<CommandSpec>>,
    /// When the host started.
    pub started: Instant,
    /// The `/ws` command sessions' hub.
    pub ws: Arc<ws::hub::Hub>,
    keys: Arc<KeyRing>,
    max_batch: usize,
    max_message_bytes: usize,
    max_ws_connections: usize,
    sse_keep_alive: std::time::Duration,
    dashboard_dir: Option<std::path::PathBuf>,
}

/// Builds the router.
pub fn router(queue: Queue, cfg: &ApiConfig) -> Router {
    let state = AppState(Arc::new(AppShared {
        queue,
        commands: Arc::new(commands::specs()),
        started: Instant::now(),
        keys: cfg
            .keys
            .clone()
            .unwrap_or_else(|| Arc::new(KeyRing::from_api_key(cfg.api_key.as_deref()))),
        ws: Arc::new(ws::hub::Hub::default()),
        max_batch: cfg.max_batch,
        max_message_bytes: cfg.max_body_bytes,
        max_ws_connections: cfg.max_ws_connections.max(1),
        sse_keep_alive: cfg.sse_keep_alive,
        dashboard_dir: cfg.dashboard_dir.clone(),
    }));
    // Each group of routes needs a role of the key (`crate::auth`); a JSON-RPC call is
    // checked again against its command's own role (`commands::call`). An open API pays
    // nothing for the check: every caller is `Caller::open()`.
    let guard = |router: Router<AppState>, need: Option<Role>| {
        if state.keys.is_open() {
            router
        } else {
            router.route_layer(AuthLayer(Arc::new(Gate {
                keys: state.keys.clone(),
                metrics: state.queue.config().metrics.clone(),
                need,
            })))
        }
    };
    let protected = Router::new()
        .merge(guard(
            Router::new()
                .route("/api/jsonrpc", post(single))
                .route("/api/v1/execute", post(single))
                .route("/api/jsonrpc/batch", post(batch))
                .route("/commands", get(list_commands))
                .route("/api/v1/jobs/{job_id}", get(job))
                .route("/api/v1/jobs/{job_id}/logs", get(job_logs)),
            Some(Role::Read),
        ))
        .merge(guard(
            Router::new().route("/metrics", get(metrics)),
            Some(Role::Metrics),
        ))
        // Any known key may ask who it is (the dashboard's sign-in).
        .merge(guard(
            Router::new().route("/api/v1/whoami", get(whoami)),
            None,
        ));
    // Event streams stay open: outside the request timeout and the in-flight cap (the
    // connection cap still bounds them), behind the same keys. `/ws` sessions start jobs;
    // `/mcp` lists each key the tools its role and scope allow, and checks each call.
    let streams = Router::new()
        .merge(guard(
            Router::new()
                .route("/api/v1/events", get(sse::all))
                .route("/api/v1/jobs/{job_id}/events", get(sse::job)),
            Some(Role::Read),
        ))
        .merge(guard(
            Router::new().route("/ws", get(ws::upgrade)),
            Some(Role::Run),
        ))
        .merge(guard(
            Router::new().nest_service(
                "/mcp",
                mcp::service(state.clone(), cfg.mcp_allowed_hosts.clone()),
            ),
            Some(Role::Read),
        ));
    Router::new()
        .route("/", get(dashboard::root))
        .route("/ui/", get(dashboard::index))
        .route("/ui/app.js", get(dashboard::app_js))
        .route("/ui/app.css", get(dashboard::app_css))
        .route("/health", get(health))
        .route("/openapi.json", get(openapi))
        .merge(protected)
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(cfg.max_body_bytes))
        .layer(
            tower::ServiceBuilder::new()
                .layer(axum::error_handling::HandleErrorLayer::new(overloaded))
                .load_shed()
                .layer(tower::limit::GlobalConcurrencyLimitLayer::new(
                    cfg.max_in_flight.max(1),
                ))
                .timeout(cfg.request_timeout),
        )
        .merge(streams)
        .layer(middleware::from_fn_with_state(
            state.clone(),
            count_requests,
        ))
        .with_state(state)
}

fn detail(status: StatusCode, msg: impl Into<String>) -> Response {
    (status, axum::Json(json!({"detail": msg.into()}))).into_response()
}

/// Answers a request refused by the in-flight cap or cut by the request timeout.
async fn overloaded(err: tower::BoxError) -> Response {
    if err.is::<tower::timeout::error::Elapsed>() {
        return detail(StatusCode::SERVICE_UNAVAILABLE, "Request timed out");
    }
    if err.is::<tower::load_shed::error::Overloaded>() {
        return detail(
            StatusCode::SERVICE_UNAVAILABLE,
            "Server busy: too many requests in flight",
        );
    }
    tracing::error!(error = %err, "request failed in a middleware");
    detail(StatusCode::INTERNAL_SERVER_ERROR, "Internal error")
}

async fn not_found() -> Response {
    detail(StatusCode::NOT_FOUND, "Not Found")
}

/// The key check of a group of routes: recognises the key of `X-API-Key` or `Authorization:
/// Bearer` (`KeyRing::check`: constant time over SHA-256 digests), refuses a missing or
/// unknown one (401) or one whose role is below the routes' `need` (403; `None`: any known
/// key), and hands the [`Caller`] to the handler. Shared by every request it guards.
struct Gate {
    keys: Arc<KeyRing>,
    metrics: Arc<crate::metrics::Metrics>,
    need: Option<Role>,
}

impl Gate {
    /// Recognises the request's key and hands the [`Caller`] to the route in the request's
    /// extensions (`None`), or refuses it: 401 (no known key) or 403 (a role below `need`).
    fn refusal(&self, req: &mut Request) -> Option<Response> {
        // A caller already in the extensions is the connection's, recognised from this
        // request's key (`serve::Connection`); nothing a client sends can put one there.
        if req.extensions().get::<Caller>().is_none()
            && let Some(caller) = self.keys.check(presented_key(req.headers()))
        {
            req.extensions_mut().insert(caller);
        }
        // Fail closed: no caller, no entry.
        let Some(caller) = req.extensions().get::<Caller>() else {
            self.metrics.auth_refused("unauthenticated");
            return Some((
                StatusCode::UNAUTHORIZED,
                axum::Json(json!({"error": {"code": 401, "message": "Unauthorized: invalid or missing API key", "type": "authentication_error"}})),
            )
                .into_response());
        };
        if let Some(need) = self.need
            && !caller.role.allows(need)
        {
            self.metrics.auth_refused("forbidden");
            let what = format!("use {}", req.uri().path());
            return Some(forbidden(&caller.refusal(&what, need)));
        }
        None
    }
}

/// The key check as a layer of its own. The check is synchronous (a digest and a lookup), so
/// the layer answers a refusal at once or calls the route it guards in place: no boxed future
/// and no clone of the route per request, which `middleware::from_fn` costs.
#[derive(Clone)]
struct AuthLayer(Arc<Gate>);

impl<S> tower::Layer<S> for AuthLayer {
    type Service = AuthService<S>;

    fn layer(&self, inner: S) -> AuthService<S> {
        AuthService {
            inner,
            gate: self.0.clone(),
        }
    }
}

/// A route behind the key check ([`AuthLayer`]).
#[derive(Clone)]
struct AuthService<S> {
    inner: S,
    gate: Arc<Gate>,
}

impl<S> tower::Service<Request> for AuthService<S>
where
    S: tower::Service<Request, Response = Response>,
{
    type Response = Response;
    type Error = S::Error;
    type Future =
        futures::future::Either<std::future::Ready<Result<Response, S::Error>>, S::Future>;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request) -> Self::Future {
        match self.gate.refusal(&mut req) {
            None => futures::future::Either::Right(self.inner.call(req)),
            Some(refusal) => futures::future::Either::Left(std::future::ready(Ok(refusal))),
        }
    }
}

/// `GET /api/v1/whoami`: the key's name, role and scope (what the dashboard shows after its
/// sign-in, and hides by); `open` on an API without keys.
async fn whoami(caller: Option<Extension<Caller>>) -> Response {
    let caller = caller_of(caller);
    let (types, queues) = caller
        .scope
        .as_ref()
        .map(|s| (s.types(), s.queues()))
        .unwrap_or_default();
    axum::Json(json!({
        "key": &*caller.name,
        "role": caller.role.as_str(),
        "types": types,
        "queues": queues,
        "open": caller.anonymous,
    }))
    .into_response()
}

/// A 403 for a job outside the caller's scope (counted as a refusal).
fn refused(state: &AppState, e: &crate::queue::QueueError) -> Response {
    state.queue.config().metrics.auth_refused("forbidden");
    forbidden(&e.to_string())
}

/// A 403 answer, in the shape of the 401 one.
fn forbidden(message: &str) -> Response {
    (
        StatusCode::FORBIDDEN,
        axum::Json(
            json!({"error": {"code": 403, "message": message, "type": "authorization_error"}}),
        ),
    )
        .into_response()
}

/// The caller the auth layer recognised, or everyone's on an open API.
pub(crate) fn caller_of(ext: Option<Extension<Caller>>) -> Caller {
    ext.map_or_else(Caller::open, |Extension(c)| c)
}

fn parse_body(body: Result<Bytes, BytesRejection>) -> Result<Value, Box<Response>> {
    let bytes = body.map_err(|r| {
        let status = r.status();
        let msg = if status == StatusCode::PAYLOAD_TOO_LARGE {
            "Request body too large".to_string()
        } else {
            r.body_text()
        };
        Box::new(detail(status, msg))
    })?;
    serde_json::from_slice(&bytes)
        .map_err(|_| Box::new(detail(StatusCode::BAD_REQUEST, "Invalid JSON body")))
}

/// One JSON-RPC call; also says whether the caller's role refused it.
async fn dispatch(state: &AppState, caller: &Caller, body: Value) -> (Value, bool) {
    let req = match parse_request(body) {
        Ok(r) => r,
        Err(env) => return (env, false),
    };
    let result = commands::call(state, caller, &req.method, req.params).await;
    let refused =
        matches!(&result, jsonrpc::CallResult::Rpc(e) if e.code == jsonrpc::codes::FORBIDDEN);
    if refused {
        state.queue.config().metrics.auth_refused("forbidden");
    }
    (envelope(req.id, result), refused)
}

/// A request's W3C `traceparent` header, if any (read without copying the other headers).
struct TraceParent(Option<String>);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for TraceParent {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _: &S,
    ) -> Result<Self, Self::Rejection> {
        Ok(TraceParent(
            parts
                .headers
                .get("traceparent")
                .and_then(|v| v.to_str().ok())
                .map(str::to_string),
        ))
    }
}

/// The caller of a request, with the W3C `traceparent` it came with (jobs it adds join that
/// trace when traces are on).
fn traced(caller: Option<Extension<Caller>>, trace: TraceParent) -> Caller {
    caller_of(caller).with_trace(trace.0.as_deref())
}

async fn single(
    State(state): State<AppState>,
    caller: Option<Extension<Caller>>,
    trace: TraceParent,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let body = match parse_body(body) {
        Ok(b) => b,
        Err(r) => return *r,
    };
    if !body.is_object() {
        return detail(
            StatusCode::UNPROCESSABLE_ENTITY,
            "JSON-RPC body must be a JSON object",
        );
    }
    let (answer, refused) = dispatch(&state, &traced(caller, trace), body).await;
    if refused {
        return (StatusCode::FORBIDDEN, axum::Json(answer)).into_response();
    }
    axum::Json(answer).into_response()
}

async fn batch(
    State(state): State<AppState>,
    caller: Option<Extension<Caller>>,
    trace: TraceParent,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let caller = traced(caller, trace);
    let body = match parse_body(body) {
        Ok(b) => b,
        Err(r) => return *r,
    };
    let Value::Array(items) = body else {
        return detail(
            StatusCode::UNPROCESSABLE_ENTITY,
            "Batch body must be a JSON array",
        );
    };
    if items.is_empty() {
        return detail(StatusCode::UNPROCESSABLE_ENTITY, "Batch must not be empty");
    }
    if items.len() > state.max_batch {
        return detail(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!(
                "Batch too large: {} requests, at most {}",
                items.len(),
                state.max_batch
            ),
        );
    }
    let mut out = Vec::with_capacity(items.len());
    for item in items {
        out.push(dispatch(&state, &caller, item).await.0);
    }
    axum::Json(Value::Array(out)).into_response()
}

/// `GET /commands`: the built-in commands, then every loaded job type as a queued command
/// (`"queued": true`).
async fn list_commands(State(state): State<AppState>) -> Response {
    let mut commands: serde_json::Map<String, Value> = state
        .commands
        .iter()
        .map(|c| {
            (
                c.name.to_string(),
                json!({"name": c.name, "schema": c.schema, "description": c.description}),
            )
        })
        .collect();
    let (jobs, _) = commands::job_commands::job_commands(&state);
    for j in jobs {
        commands.insert(
            j.name.clone(),
            json!({"name": j.name, "schema": j.schema, "description": j.description, "queued": true}),
        );
    }
    axum::Json(json!({"commands": commands})).into_response()
}

async fn health(State(state): State<AppState>) -> Response {
    let (types, broken) = state.queue.catalog().list();
    let queue = commands::framework_health(&state).await;
    let degraded = !broken.is_empty() || !queue.is_healthy();
    axum::Json(json!({
        "status": if degraded { "degraded" } else { "ok" },
        "version": env!("CARGO_PKG_VERSION"),
        "uptime": state.started.elapsed().as_secs_f64(),
        "components": {
            "queue": queue,
            "catalog": {
                "jobs_dir": state.queue.catalog().dir().display().to_string(),
                "job_types": types.iter().map(|t| t.name.clone()).collect::<Vec<_>>(),
                "broken": broken,
                "loading": state.queue.catalog().loading(),
            },
        },
    }))
    .into_response()
}

/// Counts every answered request by route (the matched path) and status code.
async fn count_requests(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map_or("unmatched", |p| p.as_str())
        .to_string();
    let res = next.run(req).await;
    state
        .queue
        .config()
        .metrics
        .http_requests
        .get_or_create(&crate::metrics::HttpLabels {
            route,
            code: res.status().as_u16(),
        })
        .inc();
    res
}

/// `GET /api/v1/jobs/{job_id}`: the job as `get_status` shows it, plus its `params` (for the
/// dashboard's job page and its retry button).
async fn job(
    State(state): State<AppState>,
    caller: Option<Extension<Caller>>,
    axum::extract::Path(job_id): axum::extract::Path<String>,
) -> Response {
    let caller = caller_of(caller);
    match state.queue.get_status(&job_id).await {
        Ok(j) => {
            if let Err(e) = state.queue.may_see(&j, &caller, "read") {
                return refused(&state, &e);
            }
            let mut v = views::seed_job(&j, false);
            v["params"] = j.params.to_value();
            // Which host and which code ran it (the seed's status calls leave these out).
            if let Some(h) = &j.host {
                v["host"] = serde_json::json!(h);
            }
            if let Some(c) = &j.component_sha256 {
                v["component_sha256"] = serde_json::json!(c);
            }
            if let (Some(t), Some(id)) = (
                &state.queue.config().telemetry,
                j.traceparent
                    .as_deref()
                    .and_then(crate::telemetry::trace_id),
            ) && let Some(url) = t.link(&id)
            {
                v["trace_url"] = serde_json::json!(url);
            }
            views::with_hold(&mut v, state.queue.hold_of(&j).await);
            axum::Json(v).into_response()
        }
        Err(crate::queue::QueueError::NotFound(_)) => {
            detail(StatusCode::NOT_FOUND, format!("Job not found: {job_id}"))
        }
        Err(e) => detail(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
    }
}

/// `GET /api/v1/jobs/{job_id}/logs[?here=true]`: a job's log lines, each with its time in µs
/// (`time_us`) and as RFC 3339. With `here=true`, only what this host keeps (what another host
/// of the queue asks for); without, fetched from the host that ran the job when it ran
/// elsewhere.
async fn job_logs(
    State(state): State<AppState>,
    caller: Option<Extension<Caller>>,
    axum::extract::Path(job_id): axum::extract::Path<String>,
    axum::extract::Query(q): axum::extract::Query<LogsQuery>,
) -> Response {
    let caller = caller_of(caller);
    let found = if q.here.unwrap_or(false) {
        if caller.scope.is_some() {
            // What this host keeps, of a job in the key's scope only.
            match state.queue.get_status(&job_id).await {
                Ok(j) => state
                    .queue
                    .may_see(&j, &caller, "read the logs of")
                    .map(|_| ()),
                Err(e) => Err(e),
            }
            .map(|()| state.queue.logs_here(&job_id))
        } else {
            Ok(state.queue.logs_here(&job_id))
        }
    } else {
        state.queue.get_logs(&job_id, &caller).await
    };
    let (lines, dropped) = match found {
        Ok(l) => l,
        Err(crate::queue::QueueError::NotFound(_)) => {
            return detail(StatusCode::NOT_FOUND, format!("Job not found: {job_id}"));
        }
        Err(e @ crate::queue::QueueError::Forbidden { .. }) => return refused(&state, &e),
        Err(e) => return detail(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
    };
    let entries: Vec<serde_json::Value> = lines
        .iter()
        .map(|(t, l)| {
            serde_json::json!({"time_us": t, "time": views::iso(*t), "source": l.source,
                "level": l.level, "message": l.text})
        })
        .collect();
    axum::Json(serde_json::json!({"job_id": job_id, "entries": entries, "dropped_lines": dropped}))
        .into_response()
}

/// Query of [`job_logs`].
#[derive(serde::Deserialize)]
struct LogsQuery {
    here: Option<bool>,
}

/// `GET /metrics`: the Prometheus text format. Gauges that mirror state are set here.
async fn metrics(State(state): State<AppState>) -> Response {
    use crate::metrics::JobLabels;
    let q = &state.queue;
    let m = &q.config().metrics;
    match q.store().counts().await {
        Ok(c) => {
            m.jobs.clear();
            for (job_type, per) in &c.by_type {
                for st in crate::job::Status::ALL {
                    m.jobs
                        .get_or_create(&JobLabels {
                            job_type: job_type.clone(),
                            status: st.as_str().to_string(),
                        })
                        .set(per.get(st.as_str()).copied().unwrap_or(0) as i64);
                }
            }
        }
        Err(e) => tracing::warn!(error = %e, "metrics: cannot count jobs"),
    }
    match q.list_queues().await {
        Ok(queues) => {
            use crate::metrics::{QueueLabels, QueueNameLabels};
            m.queue_jobs.clear();
            m.queue_paused.clear();
            m.queue_concurrency_limit.clear();
            for v in queues {
                for (state, n) in [
                    ("waiting", v.waiting),
                    ("unstarted", v.unstarted),
                    ("running", v.running),
                ] {
                    m.queue_jobs
                        .get_or_create(&QueueLabels {
                            queue: v.name.clone(),
                            state,
                        })
                        .set(n as i64);
                }
                let name = QueueNameLabels { queue: v.name };
                m.queue_paused.get_or_create(&name).set(i64::from(v.paused));
                if let Some(c) = v.concurrency {
                    m.queue_concurrency_limit
                        .get_or_create(&name)
                        .set(i64::from(c));
                }
            }
        }
        Err(e) => tracing::warn!(error = %e, "metrics: cannot list queues"),
    }
    let (types, broken) = q.catalog().list();
    m.job_types_loaded.set(types.len() as i64);
    m.job_types_broken.set(broken.len() as i64);
    m.instances.set(q.slots().0 as i64);
    m.subscribers.set(q.feed().subscribers() as i64);
    m.ws_connections.set(state.ws.connections() as i64);
    m.ws_watched_jobs.set(state.ws.watched_jobs() as i64);
    m.read_heap();
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        m.encode(),
    )
        .into_response()
}

async fn openapi(State(state): State<AppState>) -> Response {
    let (jobs, _) = commands::job_commands::job_commands(&state);
    axum::Json(openapi::document(&state.commands, &jobs)).into_response()
}
