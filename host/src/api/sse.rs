//! Server-sent events: `GET /api/v1/events` (every job; filters `status`, `job_type`) and
//! `GET /api/v1/jobs/{job_id}/events` (one job, ending after its terminal state).
//!
//! Why SSE: a client that today polls `get_status` can instead hold one HTTP response open and
//! read `job` (the stored state changed), `progress` (live, a few per second) and `log` events
//! as they happen, with any HTTP client (`curl -N`, the browser's `EventSource`).
//!
//! Every event has an `id`; a client that reconnects with `Last-Event-ID` (or
//! `?last_event_id=`) first gets the events it missed, as far back as the host's buffer goes
//! (`--events-keep`, default the last 10,000 events). When it went further back, it gets a
//! `resync` event (and, on a job's stream, the job's current state) and should re-read what it
//! shows. A client that reads too slowly never slows the queue: past a bounded buffer it gets
//! a `lagged` event with the number of events it lost, and the stream goes on from the newest.
//! Keep-alive comments keep proxies from closing an idle stream.

use super::{AppState, detail, views};
use crate::job::Status;
use crate::queue::feed::{Event, EventBody, Subscription};
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::{Bytes, BytesMut};
use serde_json::{Value, json};
use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::Arc;
use tokio::sync::broadcast::error::{RecvError, TryRecvError};

/// Query parameters of both streams.
#[derive(Debug, Default, serde::Deserialize)]
pub struct StreamQuery {
    /// Only events of jobs in this status (`job` events by their new status; `progress` and
    /// `log` events count as RUNNING).
    status: Option<String>,
    /// Only events of this job type.
    job_type: Option<String>,
    /// Like the `Last-Event-ID` header, for clients that cannot set headers.
    last_event_id: Option<u64>,
}

fn last_event_id(headers: &HeaderMap, q: &StreamQuery) -> Option<u64> {
    headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok())
        .or(q.last_event_id)
}

#[derive(Clone)]
struct Filter {
    job_id: Option<Arc<str>>,
    status: Option<Status>,
    job_type: Option<String>,
    /// The key's scope: a scoped key's stream carries only its jobs.
    scope: Option<Arc<crate::auth::Scope>>,
}

impl Filter {
    fn admits(&self, e: &Event) -> bool {
        self.job_id.as_ref().is_none_or(|id| *id == e.job_id)
            && self.status.is_none_or(|s| s == e.status)
            && self.job_type.as_deref().is_none_or(|t| t == &*e.job_type)
            && self
                .scope
                .as_ref()
                .is_none_or(|s| s.admits(&e.job_type, &e.queue).is_ok())
    }
}

/// An SSE frame: optional `id`, the event name, one `data` line (compact JSON has no newline).
fn frame(id: Option<u64>, kind: &str, data: &str) -> Bytes {
    let mut out = String::with_capacity(data.len() + kind.len() + 40);
    if let Some(id) = id {
        out.push_str("id: ");
        out.push_str(&id.to_string());
        out.push('\n');
    }
    out.push_str("event: ");
    out.push_str(kind);
    out.push_str("\ndata: ");
    out.push_str(data);
    out.push_str("\n\n");
    Bytes::from(out)
}

/// Renders one event for the wire (once per event: the feed keeps the result for every other
/// subscriber, see [`Event::wire`]).
fn render(e: &Event) -> Bytes {
    let data = match &e.body {
        EventBody::Job(job) => views::seed_job(job, false),
        EventBody::Progress {
            percent,
            description,
        } => json!({"job_id": &*e.job_id, "job_type": &*e.job_type,
                    "progress": percent, "description": description}),
        EventBody::Log(t, line) => json!({"job_id": &*e.job_id, "job_type": &*e.job_type,
            "time": views::iso(*t), "source": line.source, "level": line.level,
            "message": line.text}),
    };
    frame(Some(e.id), e.kind(), &data.to_string())
}

fn notice(kind: &str, data: Value) -> Bytes {
    frame(None, kind, &data.to_string())
}

/// A keep-alive comment.
const KEEP_ALIVE: &[u8] = b":\n\n";

/// A chunk holds the events that are ready, up to this size: a subscriber that wakes up behind
/// many events writes them in one go instead of one write each.
const CHUNK_BYTES: usize = 64 * 1024;

struct StreamState {
    first: VecDeque<Bytes>,
    replay: VecDeque<Arc<Event>>,
    live: tokio::sync::broadcast::Receiver<Arc<Event>>,
    filter: Filter,
    keep_alive: std::time::Duration,
    /// A job's stream ends after its terminal state.
    ends: bool,
    done: bool,
}

/// What the stream reads next.
enum Next {
    Event(Arc<Event>),
    Lagged(u64),
    /// Nothing ready (or, when waiting, nothing within the keep-alive interval).
    Idle,
    Closed,
}

impl StreamState {
    fn ready(&mut self) -> Next {
        if let Some(e) = self.replay.pop_front() {
            return Next::Event(e);
        }
        match self.live.try_recv() {
            Ok(e) => Next::Event(e),
            Err(TryRecvError::Lagged(n)) => Next::Lagged(n),
            Err(TryRecvError::Empty) => Next::Idle,
            Err(TryRecvError::Closed) => Next::Closed,
        }
    }

    async fn wait(&mut self) -> Next {
        if let Some(e) = self.replay.pop_front() {
            return Next::Event(e);
        }
        match tokio::time::timeout(self.keep_alive, self.live.recv()).await {
            Ok(Ok(e)) => Next::Event(e),
            Ok(Err(RecvError::Lagged(n))) => Next::Lagged(n),
            Ok(Err(RecvError::Closed)) => Next::Closed,
            Err(_) => Next::Idle,
        }
    }

    /// The next chunk: waits for the first event, then takes whatever else is ready.
    async fn chunk(&mut self) -> Option<Bytes> {
        let mut buf = BytesMut::new();
        while let Some(b) = self.first.pop_front() {
            buf.extend_from_slice(&b);
        }
        while !self.done && buf.len() < CHUNK_BYTES {
            let next = if buf.is_empty() {
                self.wait().await
            } else {
                self.ready()
            };
            match next {
                Next::Event(e) => {
                    if !self.filter.admits(&e) {
                        continue;
                    }
                    buf.extend_from_slice(&e.wire(render));
                    if self.ends && e.is_end() {
                        self.done = true;
                    }
                }
                Next::Lagged(n) => buf.extend_from_slice(&notice(
                    "lagged",
                    json!({"missed": n, "hint": "events were dropped because this client read too slowly; re-read the jobs you show"}),
                )),
                Next::Idle => {
                    if buf.is_empty() {
                        buf.extend_from_slice(KEEP_ALIVE);
                    }
                    break;
                }
                Next::Closed => self.done = true,
            }
        }
        (!buf.is_empty()).then(|| buf.freeze())
    }
}

fn sse(st: StreamState) -> Response {
    let body = futures::stream::unfold(st, |mut st| async move {
        let chunk = st.chunk().await?;
        Some((Ok::<_, Infallible>(chunk), st))
    });
    (
        [
            (header::CONTENT_TYPE, "text/event-stream"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        Body::from_stream(body),
    )
        .into_response()
}

fn parse_status(q: &StreamQuery) -> Result<Option<Status>, String> {
    match q.status.as_deref() {
        None | Some("") => Ok(None),
        Some(s) => Status::parse(s).map(Some).ok_or_else(|| {
            format!(
                "unknown status '{s}': one of PENDING, RUNNING, COMPLETED, ERROR, STOPPED, DELETED"
            )
        }),
    }
}

/// `GET /api/v1/events`: every job's events.
pub(super) async fn all(
    State(state): State<AppState>,
    caller: Option<axum::Extension<crate::auth::Caller>>,
    Query(q): Query<StreamQuery>,
    headers: HeaderMap,
) -> Response {
    let caller = super::caller_of(caller);
    let status = match parse_status(&q) {
        Ok(s) => s,
        Err(msg) => return detail(StatusCode::BAD_REQUEST, msg),
    };
    let Subscription { replay, gap, live } =
        state.queue.feed().subscribe(last_event_id(&headers, &q));
    let mut first = VecDeque::new();
    if gap {
        first.push_back(notice(
            "resync",
            json!({"hint": "events since your Last-Event-ID are no longer kept; re-read the jobs you show"}),
        ));
    }
    sse(StreamState {
        first,
        replay: replay.into(),
        live,
        filter: Filter {
            job_id: None,
            status,
            job_type: q.job_type.filter(|t| !t.is_empty()),
            scope: caller.scope.clone(),
        },
        keep_alive: state.sse_keep_alive,
        ends: false,
        done: false,
    })
}

/// `GET /api/v1/jobs/{job_id}/events`: one job's events, from its current state to its end.
pub(super) async fn job(
    State(state): State<AppState>,
    caller: Option<axum::Extension<crate::auth::Caller>>,
    Path(job_id): Path<String>,
    Query(q): Query<StreamQuery>,
    headers: HeaderMap,
) -> Response {
    let caller = super::caller_of(caller);
    let after = last_event_id(&headers, &q);
    // Subscribe before reading the job, so that nothing between the two is lost.
    let Subscription { replay, gap, live } = state.queue.feed().subscribe(after);
    let job = match state.queue.get_status(&job_id).await {
        Ok(j) => j,
        Err(e) => {
            let status = match e {
                crate::queue::QueueError::NotFound(_) => StatusCode::NOT_FOUND,
                _ => StatusCode::SERVICE_UNAVAILABLE,
            };
            return (
                status,
                axum::Json(json!({"detail": e.to_string(), "job_id": job_id})),
            )
                .into_response();
        }
    };
    if let Err(e) = state.queue.may_see(&job, &caller, "watch") {
        return super::refused(&state, &e);
    }
    let mut first = VecDeque::new();
    let resume = after.is_some() && !gap;
    let mut done = false;
    if !resume {
        // The job as it is now (no id: it is not an event of the feed).
        first.push_back(frame(
            None,
            "job",
            &views::seed_job(&job, false).to_string(),
        ));
        done = job.status.is_terminal();
    }
    let filter = Filter {
        job_id: Some(job_id.as_str().into()),
        status: None,
        job_type: None,
        scope: None,
    };
    sse(StreamState {
        first,
        replay: if resume {
            replay.into()
        } else {
            VecDeque::new()
        },
        live,
        filter,
        keep_alive: state.sse_keep_alive,
        ends: true,
        done,
    })
}
