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
        self.call("queue", params).await
    }

    /// Calls the command `method` with `params`; returns its `data`.
    pub async fn call(&self, method: &str, params: Value) -> Result<Value, ClientError> {
        let body = json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params});
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
        Ok(EventStream::new(resp))
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

/// A stream of server-sent events, framed by `sse-stream`: it splits lines on bytes and
/// decodes each whole line once, so a character split across two network reads arrives whole
/// (decoding each read on its own garbled it in `logs -f` and `watch`).
pub struct EventStream {
    inner: std::pin::Pin<Box<sse_stream::SseStream<reqwest::Body>>>,
}

impl EventStream {
    /// Reads the events of `resp`'s body.
    pub fn new(resp: reqwest::Response) -> EventStream {
        let body = http::Response::<reqwest::Body>::from(resp).into_body();
        EventStream {
            inner: Box::pin(sse_stream::SseStream::new(body)),
        }
    }

    /// The next event with data (comments and keep-alives are skipped); `None` when the
    /// stream ended.
    pub async fn next(&mut self) -> Result<Option<Event>, ClientError> {
        use futures::StreamExt;
        loop {
            match self.inner.next().await {
                None => return Ok(None),
                Some(Err(e)) => return Err(ClientError::Protocol(format!("event stream: {e}"))),
                Some(Ok(sse)) => {
                    let Some(data) = sse.data.filter(|d| !d.is_empty()) else {
                        continue;
                    };
                    let data = serde_json::from_str(&data).unwrap_or(Value::String(data));
                    let kind = sse.event.unwrap_or_else(|| "message".to_string());
                    return Ok(Some(Event { kind, data }));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::EventStream;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A character whose bytes arrive in two network reads is decoded whole.
    #[tokio::test]
    async fn a_character_split_across_reads_arrives_whole() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let (mut sock, _) = listener.accept().await.unwrap();
            let mut req = [0u8; 1024];
            let _ = sock.read(&mut req).await.unwrap();
            let text = "event: log\ndata: {\"line\":\"café ✓\"}\n\n".as_bytes();
            // Split inside 'é' (two bytes) and inside '✓' (three bytes).
            let e = text.iter().position(|&b| b == 0xC3).unwrap() + 1;
            let c = text.iter().position(|&b| b == 0xE2).unwrap() + 2;
            sock.write_all(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n")
                .await
                .unwrap();
            for part in [&text[..e], &text[e..c], &text[c..]] {
                sock.write_all(format!("{:x}\r\n", part.len()).as_bytes())
                    .await
                    .unwrap();
                sock.write_all(part).await.unwrap();
                sock.write_all(b"\r\n").await.unwrap();
                sock.flush().await.unwrap();
                // Pacing only, so that each part is a read of its own.
                tokio::time::sleep(std::time::Duration::from_millis(30)).await;
            }
            sock.write_all(b"0\r\n\r\n").await.unwrap();
        });
        let resp = reqwest::get(format!("http://{addr}/")).await.unwrap();
        let mut events = EventStream::new(resp);
        let ev = events.next().await.unwrap().expect("one event");
        assert_eq!(ev.kind, "log");
        assert_eq!(ev.data["line"], "café ✓");
        assert!(events.next().await.unwrap().is_none());
        server.await.unwrap();
    }
}
