//! Asking another host of the queue: logs live in the memory of the host that runs a job.
//!
//! Why fetch rather than store: a running job's log lines arrive many times a second and are
//! capped per run; writing each one to the shared database would cost every job a write per
//! line for a read that is rare. The host that runs the job already keeps them; the others find
//! it through the URL it announces with each heartbeat (`--advertise-url`) and ask it for its
//! own lines only (`GET /api/v1/jobs/{id}/logs?here=true`), so that a request never travels on.

use super::Queue;
use crate::runtime::{LogLevel, LogLine, LogSource};
use std::sync::OnceLock;
use std::time::Duration;

/// Why another host's logs could not be had.
#[derive(Debug, thiserror::Error)]
pub(crate) enum PeerError {
    /// The host is not among the live hosts, or announced no URL.
    #[error("host {0} is not live or announced no URL")]
    Unknown(String),
    /// The URL the host announced is not one.
    #[error("host {host} announced '{url}', which is not a base URL")]
    BadUrl {
        /// The host.
        host: String,
        /// What it announced.
        url: String,
    },
    /// The request failed.
    #[error("request to {url} failed")]
    Request {
        /// Where it went.
        url: String,
        /// Why.
        #[source]
        source: reqwest::Error,
    },
    /// The answer was not the expected JSON.
    #[error("unexpected answer from {url}: HTTP {status}")]
    Answer {
        /// Where it came from.
        url: String,
        /// Its HTTP status.
        status: u16,
    },
}

/// What `GET /api/v1/jobs/{id}/logs` answers.
#[derive(serde::Deserialize)]
struct LogsAnswer {
    entries: Vec<Entry>,
    #[serde(default)]
    dropped_lines: u64,
}

#[derive(serde::Deserialize)]
struct Entry {
    time_us: i64,
    source: LogSource,
    level: LogLevel,
    message: String,
}

fn client() -> &'static reqwest::Client {
    static CLIENT: OnceLock<reqwest::Client> = OnceLock::new();
    CLIENT.get_or_init(|| {
        reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .build()
            .unwrap_or_default()
    })
}

/// The logs of `job_id` as `host` keeps them.
pub(crate) async fn logs(
    queue: &Queue,
    host: &str,
    job_id: &str,
) -> Result<(Vec<(i64, LogLine)>, u64), PeerError> {
    let base = queue
        .hosts()
        .await
        .into_iter()
        .find(|h| h.host_id == host)
        .and_then(|h| h.url)
        .ok_or_else(|| PeerError::Unknown(host.to_string()))?;
    let bad = || PeerError::BadUrl {
        host: host.to_string(),
        url: base.clone(),
    };
    let mut parsed = reqwest::Url::parse(&base).map_err(|_| bad())?;
    // Segment by segment, so that any job id is escaped as one path segment.
    parsed
        .path_segments_mut()
        .map_err(|()| bad())?
        .pop_if_empty()
        .extend(["api", "v1", "jobs", job_id, "logs"]);
    parsed.query_pairs_mut().append_pair("here", "true");
    let url = parsed.to_string();
    let mut req = client().get(parsed);
    if let Some(key) = &queue.config().peer_api_key {
        req = req.header("x-api-key", key);
    }
    let answer = req.send().await.map_err(|source| PeerError::Request {
        url: url.clone(),
        source,
    })?;
    let status = answer.status().as_u16();
    if status != 200 {
        return Err(PeerError::Answer { url, status });
    }
    let body: LogsAnswer = answer.json().await.map_err(|source| PeerError::Request {
        url: url.clone(),
        source,
    })?;
    Ok((
        body.entries
            .into_iter()
            .map(|e| {
                let line = LogLine {
                    source: e.source,
                    level: e.level,
                    text: e.message,
                };
                (e.time_us, line)
            })
            .collect(),
        body.dropped_lines,
    ))
}
