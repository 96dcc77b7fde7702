//! `queuemgr` as a client of a running host: `run` (with a progress bar), `add`, `start`,
//! `status`, `list`, `logs [-f]`, `stop`, `delete`, `types`, `watch`, and `new` (a job from a
//! template).
//!
//! Why in the same binary: one download gives a person both the host and a way to drive it,
//! without hand-written curl. The client speaks the host's public API only (the seed's `queue`
//! command over JSON-RPC, and the event streams), so it works against any host, local or not.
//! Every failure becomes one clear line (connection refused, a missing key, an unknown job, bad
//! params naming the field) and a non-zero exit code.

pub mod commands;
pub mod scaffold;

use serde_json::{Value, json};
use std::time::Duration;

/// Why a call to the host failed, said so that a person knows what to do.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Nothing answers at the URL.
    #[error(
        "cannot reach queuemgr at {url}: {source} (is `queuemgr serve` running there? set --url or QUEUEMGR_URL)"
    )]
    Connect {
        /// The host's URL.
        url: String,
        /// Why.
        #[source]
        source: reqwest::Error,
    },
    /// The host wants an API key, or another one.
    #[error("the host refused the API key (401): pass --api-key or set QUEUEMGR_API_KEY")]
    Unauthorized,
    /// An HTTP status other than 200.
    #[error("the host answered HTTP {status}: {body}")]
    Http {
        /// The status.
        status: u16,
        /// The body, shortened.
        body: String,
    },
    /// The request was refused (bad params, unknown action); `message` names the field.
    #[error("{message}")]
    Rejected {
        /// The host's message.
        message: String,
        /// Its details.
        data: Value,
    },
    /// The command failed on a job (unknown job, wrong state, store unavailable).
    #[error("{message}{}", detail_of(data))]
    Failed {
        /// E.g. `Job not found`.
        message: String,
        /// `domain_code` and details.
        data: Value,
    },
    /// The answer was not what the API promises.
    #[error("unexpected answer from the host: {0}")]
    Protocol(String),
}

fn detail_of(data: &Value) -> String {
    let code = data.get("domain_code").and_then(Value::as_str);
    let value = data.get("value").and_then(Value::as_str);
    match (code, value) {
        (Some(c), Some(v)) => format!(" ({c}: {v})"),
        (Some(c), None) => format!(" ({c})"),
        _ => String::new(),
    }
}

/// A connection to one host.
#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    url: String,
    api_key: Option<String>,
}

impl Client {
    /// A client for the host at `url` (e.g. `http://127.0.0.1:8000`).
    pub fn new(url: &str, api_key: Option<String>) -> Self {
        Client {
            http: reqwest::Client::builder()
                .connect_timeout(Duration::from_secs(5))
                .build()
                .unwrap_or_default(),
            url: url.trim_end_matches('/').to_string(),
            api_key,
        }
    }

    /// The host's URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let mut r = self.http.request(method, format!("{}{path}", self.url));
        if let Some(k) = &self.api_key {
            r = r.header("x-api-key", k);
        }
        r
    }

    async fn check(
        &self,
        resp: Result<reqwest::Response, reqwest::Error>,
    ) -> Result<reqwest::Response, ClientError> {
        let resp = resp.map_err(|source| ClientError::Connect {
            url: self.url.clone(),
            source,
        })?;
        match resp.status().as_u16() {
            200 => Ok(resp),
            401 => Err(ClientError::Unauthorized),
            status => {
                let body = resp.text().await.unwrap_or_default();
                let body = serde_json::from_str::<Value>(&body)
                    .ok()
                    .and_then(|v| v.get("detail").and_then(Value::as_str).map(String::from))
                    .unwrap_or(body);
                Err(ClientError::Http {
                    status,
                    body: body.chars().take(300).collect(),
                })
            }
        }
    }

    /// Calls the seed's `queue` command with `params` (an object with `action`); returns its
    /// `data`.
    pub async fn queue(&self, params: Value) -> Result<Value, ClientError> {
        let body = json!({"jsonrpc": "2.0", "id": 1, "method": "queue", "params": params});
        let resp = self
            .check(
                self.request(reqwest::Method::POST, "/api/jsonrpc")
                    .json(&body)
                    .send()
                    .await,
            )
            .await?;
        let v: Value = resp
            .json()
            .await
            .map_err(|e| ClientError::Protocol(e.to_string()))?;
        if let Some(e) = v.get("error") {
            return Err(ClientError::Rejected {
                message: e
                    .get("message")
                    .and_then(Value::as_str)
                    .unwrap_or("rejected")
                    .to_string(),
                data: e.get("data").cloned().unwrap_or(Value::Null),
            });
        }
        let result = &v["result"];
        if result["success"] == true {
            return Ok(result["data"].clone());
        }
        let err = &result["error"];
        Err(ClientError::Failed {
            message: err["message"].as_str().unwrap_or("failed").to_string(),
            data: err.get("data").cloned().unwrap_or(Value::Null),
        })
    }

    /// Opens an event stream (`/api/v1/events…` or `/api/v1/jobs/{id}/events`).
    pub async fn events(&self, path: &str) -> Result<EventStream, ClientError> {
        let resp = self
            .check(
                self.request(reqwest::Method::GET, path)
                    .header("accept", "text/event-stream")
                    .send()
                    .await,
            )
            .await?;
        Ok(EventStream {
            resp,
            buf: String::new(),
        })
    }
}

/// One server-sent event.
#[derive(Debug, Clone)]
pub struct Event {
    /// `job`, `progress`, `log`, `lagged`, `resync`.
    pub kind: String,
    /// Its data, parsed.
    pub data: Value,
}

/// A stream of server-sent events.
pub struct EventStream {
    resp: reqwest::Response,
    buf: String,
}

impl EventStream {
    /// The next event; `None` when the stream ended.
    pub async fn next(&mut self) -> Result<Option<Event>, ClientError> {
        loop {
            while let Some(i) = self.buf.find("\n\n") {
                let frame: String = self.buf.drain(..i + 2).collect();
                let mut kind = String::from("message");
                let mut data = String::new();
                for line in frame.lines() {
                    if let Some(v) = line.strip_prefix("event:") {
                        kind = v.trim().to_string();
                    } else if let Some(v) = line.strip_prefix("data:") {
                        data.push_str(v.strip_prefix(' ').unwrap_or(v));
                    }
                }
                if !data.is_empty() {
                    let data = serde_json::from_str(&data).unwrap_or(Value::String(data));
                    return Ok(Some(Event { kind, data }));
                }
            }
            match self.resp.chunk().await {
                Ok(Some(bytes)) => self.buf.push_str(&String::from_utf8_lossy(&bytes)),
                Ok(None) => return Ok(None),
                Err(e) => return Err(ClientError::Protocol(format!("event stream: {e}"))),
            }
        }
    }
}
