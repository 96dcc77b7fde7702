//! Fetches one URL with the SDK's HTTP client and returns what came back: status, size,
//! SHA-256 of the body, content type, the final URL and how many redirects led there. Any
//! status is a result (a 404 is reported, not an error); a failed request is a `HTTP_*` error.
//!
//! `repeat` (for benchmarks, `tests/benches/runtime.rs`) makes the same request that many times
//! in one run, one after the other, and returns the last response's result plus `"requests"`;
//! the first failed request ends the run with its error.
//!
//! The job type's manifest must allow the destination (and every redirect hop), e.g.
//!
//! ```toml
//! [http]
//! allow = ["https://example.com"]
//! ```

use queuemgr_guest::http::{Method, Request};
use queuemgr_guest::{Job, JobError, info, should_stop};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Params {
    url: String,
    #[serde(default = "default_method")]
    method: String,
    #[serde(default)]
    body: Option<String>,
    #[serde(default = "default_max_redirects")]
    max_redirects: u32,
    #[serde(default)]
    repeat: Option<u32>,
}

/// Most requests one run makes with `repeat`.
const MAX_REPEAT: u32 = 10_000;

fn default_method() -> String {
    "GET".into()
}

fn default_max_redirects() -> u32 {
    queuemgr_guest::http::DEFAULT_MAX_REDIRECTS
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

struct FetchUrl;

impl Job for FetchUrl {
    const NAME: &'static str = "fetch-url";
    const VERSION: &'static str = "1.0.0";
    const DESCRIPTION: &'static str = "Fetches a URL (GET, HEAD or POST; redirects followed) and returns its status, size, SHA-256, content type and final URL.";
    const PARAMS_SCHEMA: &'static str = r#"{
        "type": "object",
        "properties": {
            "url": {"type": "string", "minLength": 1, "description": "http:// or https:// URL; the job type's [http] allow-list must include it"},
            "method": {"type": "string", "enum": ["GET", "HEAD", "POST"], "default": "GET"},
            "body": {"type": "string", "description": "Request body (text/plain), e.g. for POST"},
            "max_redirects": {"type": "integer", "minimum": 0, "maximum": 20, "default": 5, "description": "Redirects to follow; 0 returns a 3xx as it is"},
            "repeat": {"type": "integer", "minimum": 1, "maximum": 10000, "default": 1, "description": "Make the same request this many times, one after the other (for benchmarks); the result is the last one's, plus `requests`. Each request counts against the job type's http.max_requests"}
        },
        "required": ["url"],
        "additionalProperties": false
    }"#;
    type Params = Params;
    type Output = Value;

    fn run(p: Params) -> Result<Value, JobError> {
        let method = match p.method.to_ascii_uppercase().as_str() {
            "GET" => Method::Get,
            "HEAD" => Method::Head,
            "POST" => Method::Post,
            other => {
                return Err(JobError::new(
                    "INVALID_PARAMS",
                    format!("method must be GET, HEAD or POST, not {other}"),
                ));
            }
        };
        let repeat = p.repeat.unwrap_or(1);
        if !(1..=MAX_REPEAT).contains(&repeat) {
            return Err(JobError::new(
                "INVALID_PARAMS",
                format!("repeat must be 1 to {MAX_REPEAT}, not {repeat}"),
            ));
        }
        let request = || {
            let mut request = Request::new(method, &p.url).max_redirects(p.max_redirects);
            if let Some(body) = &p.body {
                request = request
                    .header("content-type", "text/plain; charset=utf-8")
                    .body(body.clone());
            }
            request
        };
        if repeat == 1 {
            info!("{method} {}", p.url);
        } else {
            info!("{method} {} ({repeat} times)", p.url);
        }
        let mut response = request().send()?;
        for done in 1..repeat {
            if should_stop() {
                info!("stop requested after {done} requests");
                return Err(JobError::new(
                    "STOPPED",
                    format!("stop requested after {done} requests"),
                ));
            }
            response = request().send()?;
        }
        info!(
            "{} from {} after {} redirects: {} bytes",
            response.status,
            response.url,
            response.redirects,
            response.body.len()
        );
        let mut result = json!({
            "status": response.status,
            "bytes": response.body.len(),
            "sha256": hex(&Sha256::digest(&response.body)),
            "content_type": response.header("content-type"),
            "url": response.url,
            "redirects": response.redirects,
        });
        if p.repeat.is_some() {
            result["requests"] = json!(repeat);
        }
        Ok(result)
    }
}

queuemgr_guest::export_job!(FetchUrl);
