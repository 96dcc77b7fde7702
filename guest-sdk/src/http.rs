//! A small blocking HTTP client over `wasi:http/outgoing-handler` (WASI 0.2).
//!
//! ```ignore
//! use queuemgr_guest::http;
//!
//! // GET, any status; the body is read whole.
//! let page = http::get("https://api.example.com/status")?;
//! println!("{} {}", page.status, page.text());
//!
//! // JSON in and out; a non-2xx status is an error.
//! let item: serde_json::Value = http::get_json("https://api.example.com/items/7")?;
//! let res = http::post_json("https://api.example.com/items", &item)?;
//!
//! // Everything else through the builder.
//! let res = http::Request::new(http::Method::Put, "https://api.example.com/items/7")
//!     .header("authorization", format!("Bearer {}", std::env::var("API_TOKEN").unwrap_or_default()))
//!     .body(r#"{"done":true}"#)
//!     .max_redirects(0)
//!     .timeout(std::time::Duration::from_secs(10))
//!     .send()?;
//! ```
//!
//! Every error converts into a [`JobError`] with `?` (see [`HttpError`] for the codes).
//!
//! # What the host allows
//!
//! Nothing by default: a job type reaches only the destinations that its manifest,
//! `jobs/<type>.toml` beside the component, grants:
//!
//! ```toml
//! [http]
//! allow = ["https://api.example.com", "http://127.0.0.1:*", "https://*.example.org"]
//! max_requests = 100          # per run; each redirect hop counts
//! timeout_secs = 30           # per request: connect, headers and the whole body
//! max_response_bytes = 16777216
//! ```
//!
//! A request anywhere else fails with [`HttpError::Denied`] before any connection is made
//! (and the host writes the reason into the job's logs). The host also caps each request's
//! time ([`HttpError::Timeout`]) and its response body size ([`HttpError::TooLarge`]); a
//! [`Request::timeout`] can only shorten the host's.
//!
//! # Redirects
//!
//! wasi:http does not follow redirects; this client does (301, 302, 303, 307 and 308, at most
//! 5 by default, [`Request::max_redirects`] to change that). Each hop is a *new* outgoing
//! request, so the host checks every hop against the allow-list: an allowed URL that
//! redirects elsewhere fails with [`HttpError::Denied`] at that hop. Relative `Location`
//! headers are resolved against the URL that answered; 303 (and 301/302 after a POST) turns
//! the request into a GET without a body, 307/308 repeat it as it was. `authorization`,
//! `cookie` and `proxy-authorization` headers are not sent to another origin.
//!
//! # Stopping
//!
//! A request blocks the job until it completes. A stop requested meanwhile still takes
//! effect at once: the host drops the run, and with it the request in flight. Check
//! [`crate::should_stop`] between requests to stop cleanly.
//!
//! # Imports
//!
//! A job that calls nothing in this module does not import `wasi:http` at all: the
//! component's imports are only the functions it uses.

mod url;

use crate::JobError;
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::time::Duration;
use url::Url;
use wasi::http::outgoing_handler;
use wasi::http::types::{
    ErrorCode, Fields, IncomingBody, IncomingResponse, Method as WasiMethod, OutgoingBody,
    OutgoingRequest, RequestOptions, Scheme as WasiScheme,
};
use wasi::io::streams::{InputStream, OutputStream, StreamError};

/// Default most redirects a request follows.
pub const DEFAULT_MAX_REDIRECTS: u32 = 5;

const USER_AGENT: &str = concat!("queuemgr-guest/", env!("CARGO_PKG_VERSION"));

/// An HTTP method.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Method {
    /// `GET`
    Get,
    /// `HEAD`: the response has no body.
    Head,
    /// `POST`
    Post,
    /// `PUT`
    Put,
    /// `DELETE`
    Delete,
    /// `PATCH`
    Patch,
    /// `OPTIONS`
    Options,
}

impl Method {
    /// The method's name, upper case.
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Head => "HEAD",
            Method::Post => "POST",
            Method::Put => "PUT",
            Method::Delete => "DELETE",
            Method::Patch => "PATCH",
            Method::Options => "OPTIONS",
        }
    }

    fn to_wasi(self) -> WasiMethod {
        match self {
            Method::Get => WasiMethod::Get,
            Method::Head => WasiMethod::Head,
            Method::Post => WasiMethod::Post,
            Method::Put => WasiMethod::Put,
            Method::Delete => WasiMethod::Delete,
            Method::Patch => WasiMethod::Patch,
            Method::Options => WasiMethod::Options,
        }
    }
}

impl std::fmt::Display for Method {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Method {
    type Err = String;

    /// Parses a method name, in any case (`get`, `POST`).
    fn from_str(s: &str) -> Result<Self, String> {
        let all = [
            Method::Get,
            Method::Head,
            Method::Post,
            Method::Put,
            Method::Delete,
            Method::Patch,
            Method::Options,
        ];
        all.into_iter()
            .find(|m| m.as_str().eq_ignore_ascii_case(s))
            .ok_or_else(|| format!("unknown HTTP method '{s}'"))
    }
}

/// Why a request failed. Each variant names the URL it is about (for a redirect chain: the
/// hop that failed); the `Display` text leaves out its query, which may carry a token.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum HttpError {
    /// The host refused the request: the destination is not in this job type's allow-list,
    /// or the run has used up its requests (`http.max_requests`). The job's logs say which.
    /// wasi:http `HTTP-request-denied`.
    Denied {
        /// The URL refused.
        url: String,
    },
    /// Connecting, the response headers or the body took too long (the host's
    /// `http.timeout_secs`, or [`Request::timeout`]).
    Timeout {
        /// The URL.
        url: String,
        /// The wasi:http error code, e.g. `ErrorCode::ConnectionTimeout`.
        detail: String,
    },
    /// The response (its body, or its headers) is larger than the host allows
    /// (`http.max_response_bytes`).
    TooLarge {
        /// The URL.
        url: String,
        /// The wasi:http error code, e.g. `ErrorCode::HttpResponseBodySize(Some(16777216))`.
        detail: String,
    },
    /// No connection, or it broke: DNS failure, refused, reset, unreachable, incomplete
    /// response.
    Connect {
        /// The URL.
        url: String,
        /// The wasi:http error code, e.g. `ErrorCode::ConnectionRefused`.
        detail: String,
    },
    /// TLS failed (protocol error, certificate not accepted, alert).
    Tls {
        /// The URL.
        url: String,
        /// The wasi:http error code.
        detail: String,
    },
    /// The URL (or a redirect's `Location`) cannot be requested.
    BadUrl {
        /// The URL as given.
        url: String,
        /// Why, e.g. `scheme 'ftp' is not supported (only http and https)`.
        reason: String,
    },
    /// More redirects than allowed ([`Request::max_redirects`]).
    TooManyRedirects {
        /// The URL whose answer would have been one redirect too many.
        url: String,
        /// The limit.
        max: u32,
    },
    /// A non-2xx status where a success was required ([`get_json`],
    /// [`Response::error_for_status`]).
    Status {
        /// The final URL.
        url: String,
        /// The status.
        status: u16,
    },
    /// The body is not what was expected (JSON that does not parse into the type), or the
    /// request body could not be serialised.
    Body {
        /// The URL.
        url: String,
        /// The decoder's message.
        detail: String,
    },
    /// Anything else; `detail` is the wasi:http error's `Debug` text.
    Other {
        /// The URL.
        url: String,
        /// What happened.
        detail: String,
    },
}

impl HttpError {
    /// The URL the error is about.
    pub fn url(&self) -> &str {
        match self {
            HttpError::Denied { url }
            | HttpError::Timeout { url, .. }
            | HttpError::TooLarge { url, .. }
            | HttpError::Connect { url, .. }
            | HttpError::Tls { url, .. }
            | HttpError::BadUrl { url, .. }
            | HttpError::TooManyRedirects { url, .. }
            | HttpError::Status { url, .. }
            | HttpError::Body { url, .. }
            | HttpError::Other { url, .. } => url,
        }
    }

    /// The [`JobError`] code this error becomes: `HTTP_DENIED`, `HTTP_TIMEOUT`,
    /// `HTTP_TOO_LARGE`, `HTTP_CONNECT`, `HTTP_TLS`, `HTTP_BAD_URL`, `HTTP_REDIRECTS`,
    /// `HTTP_STATUS`, `HTTP_BODY` or `HTTP_ERROR`.
    pub fn code(&self) -> &'static str {
        match self {
            HttpError::Denied { .. } => "HTTP_DENIED",
            HttpError::Timeout { .. } => "HTTP_TIMEOUT",
            HttpError::TooLarge { .. } => "HTTP_TOO_LARGE",
            HttpError::Connect { .. } => "HTTP_CONNECT",
            HttpError::Tls { .. } => "HTTP_TLS",
            HttpError::BadUrl { .. } => "HTTP_BAD_URL",
            HttpError::TooManyRedirects { .. } => "HTTP_REDIRECTS",
            HttpError::Status { .. } => "HTTP_STATUS",
            HttpError::Body { .. } => "HTTP_BODY",
            HttpError::Other { .. } => "HTTP_ERROR",
        }
    }

    /// Whether trying again later may succeed: timeouts, connection failures, and the
    /// statuses 408, 429 and 5xx.
    pub fn is_retryable(&self) -> bool {
        match self {
            HttpError::Timeout { .. } | HttpError::Connect { .. } => true,
            HttpError::Status { status, .. } => {
                matches!(status, 408 | 429) || (500..=599).contains(status)
            }
            _ => false,
        }
    }

    /// Sorts a wasi:http error code into a variant.
    fn from_code(url: &str, code: &ErrorCode) -> HttpError {
        let url = url.to_string();
        let detail = format!("{code:?}");
        match code {
            ErrorCode::HttpRequestDenied => HttpError::Denied { url },
            ErrorCode::DnsTimeout
            | ErrorCode::ConnectionTimeout
            | ErrorCode::ConnectionReadTimeout
            | ErrorCode::ConnectionWriteTimeout
            | ErrorCode::HttpResponseTimeout => HttpError::Timeout { url, detail },
            ErrorCode::HttpResponseBodySize(_)
            | ErrorCode::HttpResponseHeaderSectionSize(_)
            | ErrorCode::HttpResponseHeaderSize(_)
            | ErrorCode::HttpResponseTrailerSectionSize(_)
            | ErrorCode::HttpResponseTrailerSize(_) => HttpError::TooLarge { url, detail },
            ErrorCode::DnsError(_)
            | ErrorCode::DestinationNotFound
            | ErrorCode::DestinationUnavailable
            | ErrorCode::DestinationIpUnroutable
            | ErrorCode::ConnectionRefused
            | ErrorCode::ConnectionTerminated
            | ErrorCode::ConnectionLimitReached
            | ErrorCode::HttpResponseIncomplete => HttpError::Connect { url, detail },
            ErrorCode::TlsProtocolError
            | ErrorCode::TlsCertificateError
            | ErrorCode::TlsAlertReceived(_) => HttpError::Tls { url, detail },
            ErrorCode::HttpRequestUriInvalid | ErrorCode::HttpRequestUriTooLong => {
                HttpError::BadUrl {
                    url,
                    reason: format!("the host refused it as a URI ({detail})"),
                }
            }
            ErrorCode::InternalError(Some(text)) => HttpError::Other {
                url,
                detail: format!("{detail}: {text}"),
            },
            _ => HttpError::Other { url, detail },
        }
    }
}

/// `url` without its query and fragment, which may carry a token.
fn redact(url: &str) -> &str {
    url.split(['?', '#']).next().unwrap_or(url)
}

impl std::fmt::Display for HttpError {
    /// The message names the URL without its query (which may carry a token).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let url = redact(self.url());
        match self {
            HttpError::Denied { .. } => write!(
                f,
                "denied by the host: {url} is not in this job type's http allow-list \
                 (or the run has used up its http.max_requests; the job's logs say which)"
            ),
            HttpError::Timeout { detail, .. } => write!(f, "timed out: {url} ({detail})"),
            HttpError::TooLarge { detail, .. } => write!(
                f,
                "response too large: {url} ({detail}; the host caps a body at \
                 http.max_response_bytes)"
            ),
            HttpError::Connect { detail, .. } => {
                write!(f, "connection to {url} failed ({detail})")
            }
            HttpError::Tls { detail, .. } => write!(f, "TLS with {url} failed ({detail})"),
            HttpError::BadUrl { reason, .. } => write!(f, "bad URL '{url}': {reason}"),
            HttpError::TooManyRedirects { max, .. } => {
                write!(f, "too many redirects: {url} redirects again after {max}")
            }
            HttpError::Status { status, .. } => write!(f, "{url} answered status {status}"),
            HttpError::Body { detail, .. } => write!(f, "unexpected body from {url}: {detail}"),
            HttpError::Other { detail, .. } => write!(f, "request to {url} failed: {detail}"),
        }
    }
}

impl std::error::Error for HttpError {}

impl From<HttpError> for JobError {
    /// `HTTP_*` code (see [`HttpError::code`]), the error's text as the message, retryable
    /// as [`HttpError::is_retryable`] says.
    fn from(e: HttpError) -> JobError {
        JobError {
            code: e.code().to_string(),
            message: e.to_string(),
            retryable: e.is_retryable(),
        }
    }
}

/// A response, read whole.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// The status code.
    pub status: u16,
    /// The headers in the order received; names lower case, values lossily decoded as UTF-8.
    pub headers: Vec<(String, String)>,
    /// The body (empty for `HEAD`).
    pub body: Vec<u8>,
    /// The final URL, after redirects.
    pub url: String,
    /// How many redirects were followed to get here.
    pub redirects: u32,
}

impl Response {
    /// The first value of header `name` (any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body as text (invalid UTF-8 replaced by U+FFFD).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body parsed as JSON (any status: see [`Response::error_for_status`]).
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, HttpError> {
        serde_json::from_slice(&self.body).map_err(|e| HttpError::Body {
            url: self.url.clone(),
            detail: format!("not the expected JSON: {e}"),
        })
    }

    /// Whether the status is 2xx.
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// The response itself if its status is 2xx, else [`HttpError::Status`].
    pub fn error_for_status(self) -> Result<Response, HttpError> {
        if self.is_success() {
            Ok(self)
        } else {
            Err(HttpError::Status {
                url: self.url,
                status: self.status,
            })
        }
    }
}

/// `GET url`: the response whatever its status.
pub fn get(url: &str) -> Result<Response, HttpError> {
    Request::new(Method::Get, url).send()
}

/// `POST url` with `body` as `content_type`: the response whatever its status.
pub fn post(
    url: &str,
    body: impl Into<Vec<u8>>,
    content_type: &str,
) -> Result<Response, HttpError> {
    Request::new(Method::Post, url)
        .header("content-type", content_type)
        .body(body)
        .send()
}

/// `GET url` accepting JSON: the body parsed as `T`; a non-2xx status is
/// [`HttpError::Status`].
pub fn get_json<T: DeserializeOwned>(url: &str) -> Result<T, HttpError> {
    Request::new(Method::Get, url)
        .header("accept", "application/json")
        .send()?
        .error_for_status()?
        .json()
}

/// `POST url` with `value` as JSON: the response whatever its status (`.json()` reads it).
pub fn post_json<T: Serialize + ?Sized>(url: &str, value: &T) -> Result<Response, HttpError> {
    let body = serde_json::to_vec(value).map_err(|e| HttpError::Body {
        url: url.to_string(),
        detail: format!("cannot serialise the request body: {e}"),
    })?;
    Request::new(Method::Post, url)
        .header("content-type", "application/json")
        .header("accept", "application/json")
        .body(body)
        .send()
}

/// A request to build and [`send`](Request::send).
#[derive(Debug, Clone)]
pub struct Request {
    method: Method,
    url: String,
    headers: Vec<(String, String)>,
    body: Option<Vec<u8>>,
    max_redirects: u32,
    timeout: Option<Duration>,
}

impl Request {
    /// A request with no headers (but `user-agent`), no body, at most
    /// [`DEFAULT_MAX_REDIRECTS`] redirects and the host's timeout.
    pub fn new(method: Method, url: impl Into<String>) -> Request {
        Request {
            method,
            url: url.into(),
            headers: Vec::new(),
            body: None,
            max_redirects: DEFAULT_MAX_REDIRECTS,
            timeout: None,
        }
    }

    /// Adds a header (repeat to send several values). `host`, `connection`,
    /// `transfer-encoding` and a few more are the host's to set: sending them fails.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Request {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Sets the body (sent with a `content-length`; `POST`, `PUT` and `PATCH` send an empty
    /// one when none is set).
    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Request {
        self.body = Some(body.into());
        self
    }

    /// Follows at most `n` redirects (default 5); one more is
    /// [`HttpError::TooManyRedirects`]. `0` follows none: a 3xx is returned as the response.
    pub fn max_redirects(mut self, n: u32) -> Request {
        self.max_redirects = n;
        self
    }

    /// Asks for shorter connect, first-byte and between-bytes timeouts than the host's (the
    /// host's `http.timeout_secs` always applies, to the whole request).
    pub fn timeout(mut self, timeout: Duration) -> Request {
        self.timeout = Some(timeout);
        self
    }

    /// Sends the request, follows redirects, and reads the final response whole.
    pub fn send(self) -> Result<Response, HttpError> {
        let Request {
            mut method,
            url: first,
            mut headers,
            mut body,
            max_redirects,
            timeout,
        } = self;
        if !headers
            .iter()
            .any(|(k, _)| k.eq_ignore_ascii_case("user-agent"))
        {
            headers.push(("user-agent".into(), USER_AGENT.into()));
        }
        // Servers expect a length on these even when empty (411 Length Required otherwise).
        if body.is_none() && matches!(method, Method::Post | Method::Put | Method::Patch) {
            body = Some(Vec::new());
        }
        let mut url = Url::parse(&first).map_err(|reason| HttpError::BadUrl {
            url: first.clone(),
            reason,
        })?;
        let mut redirects = 0;
        loop {
            let text = url.to_string();
            let response = send_once(method, &url, &text, &headers, body.as_deref(), timeout)?;
            let status = response.status();
            let location = if matches!(status, 301 | 302 | 303 | 307 | 308) && max_redirects > 0 {
                first_header(&response, "location")
            } else {
                None
            };
            let Some(location) = location else {
                let headers = header_list(&response);
                let body = read_body(&text, response)?;
                return Ok(Response {
                    status,
                    headers,
                    body,
                    url: text,
                    redirects,
                });
            };
            drop(response);
            if redirects >= max_redirects {
                return Err(HttpError::TooManyRedirects {
                    url: text,
                    max: max_redirects,
                });
            }
            let next = url.join(&location).map_err(|reason| HttpError::BadUrl {
                url: location.clone(),
                reason: format!("{reason} (the Location of a redirect from {text})"),
            })?;
            let to_get = (status == 303 && method != Method::Head)
                || (matches!(status, 301 | 302) && method == Method::Post);
            if to_get {
                method = Method::Get;
                body = None;
                headers.retain(|(k, _)| {
                    !["content-type", "content-length", "content-encoding"]
                        .iter()
                        .any(|h| k.eq_ignore_ascii_case(h))
                });
            }
            if !url.same_origin(&next) {
                headers.retain(|(k, _)| {
                    !["authorization", "cookie", "proxy-authorization"]
                        .iter()
                        .any(|h| k.eq_ignore_ascii_case(h))
                });
            }
            url = next;
            redirects += 1;
        }
    }
}

/// One request, one response (its headers; the body is still to read).
fn send_once(
    method: Method,
    url: &Url,
    text: &str,
    headers: &[(String, String)],
    body: Option<&[u8]>,
    timeout: Option<Duration>,
) -> Result<IncomingResponse, HttpError> {
    let other = |detail: String| HttpError::Other {
        url: text.to_string(),
        detail,
    };
    let fields = Fields::new();
    for (name, value) in headers {
        fields
            .append(name, value.as_bytes())
            .map_err(|e| other(format!("header '{name}' not accepted ({e:?})")))?;
    }
    if let Some(body) = body
        && !headers
            .iter()
            .any(|(k, _)| k.eq_ignore_ascii_case("content-length"))
    {
        fields
            .append("content-length", body.len().to_string().as_bytes())
            .map_err(|e| other(format!("header 'content-length' not accepted ({e:?})")))?;
    }
    let request = OutgoingRequest::new(fields);
    let bad_url = |what: &str| HttpError::BadUrl {
        url: text.to_string(),
        reason: format!("the host refused its {what}"),
    };
    request
        .set_method(&method.to_wasi())
        .map_err(|()| other(format!("the host refused method {method}")))?;
    let scheme = match url.scheme {
        url::Scheme::Http => WasiScheme::Http,
        url::Scheme::Https => WasiScheme::Https,
    };
    request
        .set_scheme(Some(&scheme))
        .map_err(|()| bad_url("scheme"))?;
    request
        .set_authority(Some(&url.authority))
        .map_err(|()| bad_url("host or port"))?;
    request
        .set_path_with_query(Some(&url.path_and_query))
        .map_err(|()| bad_url("path or query"))?;
    let options = timeout.map(|t| {
        let options = RequestOptions::new();
        let nanos = u64::try_from(t.as_nanos()).unwrap_or(u64::MAX);
        // A host that does not support a timeout keeps its own: nothing to do about it.
        let _ = options.set_connect_timeout(Some(nanos));
        let _ = options.set_first_byte_timeout(Some(nanos));
        let _ = options.set_between_bytes_timeout(Some(nanos));
        options
    });
    // The body resource is taken before the request goes, and written after: the host reads
    // it while sending, so a large body never waits on a full buffer.
    let outgoing_body = match body {
        Some(_) => Some(
            request
                .body()
                .map_err(|()| other("the request body was already taken".into()))?,
        ),
        None => None,
    };
    let future = outgoing_handler::handle(request, options)
        .map_err(|code| HttpError::from_code(text, &code))?;
    if let (Some(outgoing_body), Some(bytes)) = (outgoing_body, body) {
        let written = write_body(text, &outgoing_body, bytes);
        let finished = match written {
            Ok(()) => OutgoingBody::finish(outgoing_body, None)
                .map_err(|code| HttpError::from_code(text, &code)),
            Err(e) => {
                drop(outgoing_body);
                Err(e)
            }
        };
        if let Err(write_error) = finished {
            // A server may answer before it has read the body (401, 413), and a failed request
            // (denied, refused) closes the body stream: either way the response says more.
            return match wait_response(text, &future) {
                Err(HttpError::Other { .. }) if !matches!(write_error, HttpError::Other { .. }) => {
                    Err(write_error)
                }
                answer => answer,
            };
        }
    }
    wait_response(text, &future)
}

/// Writes `bytes` to the request body as fast as the host takes them.
fn write_body(text: &str, body: &OutgoingBody, bytes: &[u8]) -> Result<(), HttpError> {
    let stream: OutputStream = body.write().map_err(|()| HttpError::Other {
        url: text.to_string(),
        detail: "the request body stream was already taken".into(),
    })?;
    let fail = |e: StreamError| match e {
        StreamError::LastOperationFailed(err) => match wasi::http::types::http_error_code(&err) {
            Some(code) => HttpError::from_code(text, &code),
            None => HttpError::Other {
                url: text.to_string(),
                detail: format!("sending the body: {}", err.to_debug_string()),
            },
        },
        StreamError::Closed => HttpError::Other {
            url: text.to_string(),
            detail: "sending the body: the host closed the stream".into(),
        },
    };
    let mut rest = bytes;
    while !rest.is_empty() {
        let permit = stream.check_write().map_err(fail)?;
        if permit == 0 {
            stream.subscribe().block();
            continue;
        }
        let n = rest
            .len()
            .min(usize::try_from(permit).unwrap_or(usize::MAX));
        stream.write(&rest[..n]).map_err(fail)?;
        rest = &rest[n..];
    }
    stream.blocking_flush().map_err(fail)?;
    Ok(())
}

/// Blocks until the response headers are in (or the request failed).
fn wait_response(
    text: &str,
    future: &wasi::http::types::FutureIncomingResponse,
) -> Result<IncomingResponse, HttpError> {
    loop {
        match future.get() {
            Some(Ok(Ok(response))) => return Ok(response),
            Some(Ok(Err(code))) => return Err(HttpError::from_code(text, &code)),
            Some(Err(())) => {
                return Err(HttpError::Other {
                    url: text.to_string(),
                    detail: "the response was already taken".into(),
                });
            }
            None => future.subscribe().block(),
        }
    }
}

fn first_header(response: &IncomingResponse, name: &str) -> Option<String> {
    let values = response.headers().get(name);
    values
        .first()
        .map(|v| String::from_utf8_lossy(v).into_owned())
}

fn header_list(response: &IncomingResponse) -> Vec<(String, String)> {
    response
        .headers()
        .entries()
        .into_iter()
        .map(|(k, v)| {
            (
                k.to_ascii_lowercase(),
                String::from_utf8_lossy(&v).into_owned(),
            )
        })
        .collect()
}

/// An error on a response body stream that carries no `error-code` (wasmtime's wasi:http
/// reports a body cut at the host's size or time cap as a plain I/O error, with the code's
/// text): classified by that text so that a job sees the same error as for a cut before the
/// body.
fn body_error(text: &str, detail: &str) -> HttpError {
    let lower = detail.to_ascii_lowercase();
    let detail = format!("reading the body: {detail}");
    if lower.contains("body size exceeds") {
        HttpError::TooLarge {
            url: text.to_string(),
            detail,
        }
    } else if lower.contains("timeout") || lower.contains("timed out") {
        HttpError::Timeout {
            url: text.to_string(),
            detail,
        }
    } else {
        HttpError::Body {
            url: text.to_string(),
            detail,
        }
    }
}

/// Reads the body to its end. An error on the stream (the host cuts a body over its size or
/// time cap) is the request's error.
fn read_body(text: &str, response: IncomingResponse) -> Result<Vec<u8>, HttpError> {
    let other = |detail: &str| HttpError::Other {
        url: text.to_string(),
        detail: detail.to_string(),
    };
    let body: IncomingBody = response
        .consume()
        .map_err(|()| other("the response body was already taken"))?;
    let stream: InputStream = body
        .stream()
        .map_err(|()| other("the response body stream was already taken"))?;
    let mut out = Vec::new();
    let result = loop {
        match stream.blocking_read(64 * 1024) {
            Ok(chunk) => out.extend_from_slice(&chunk),
            Err(StreamError::Closed) => break Ok(out),
            Err(StreamError::LastOperationFailed(err)) => {
                break Err(match wasi::http::types::http_error_code(&err) {
                    Some(code) => HttpError::from_code(text, &code),
                    None => body_error(text, &err.to_debug_string()),
                });
            }
        }
    };
    // Children before parents: the stream, then the body, then the response.
    drop(stream);
    drop(body);
    drop(response);
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_codes_sort_into_variants() {
        let u = "https://api.example.com/v1?token=secret";
        let cases = [
            (ErrorCode::HttpRequestDenied, "HTTP_DENIED", false),
            (ErrorCode::ConnectionTimeout, "HTTP_TIMEOUT", true),
            (ErrorCode::HttpResponseTimeout, "HTTP_TIMEOUT", true),
            (
                ErrorCode::HttpResponseBodySize(Some(16)),
                "HTTP_TOO_LARGE",
                false,
            ),
            (ErrorCode::ConnectionRefused, "HTTP_CONNECT", true),
            (
                ErrorCode::DnsError(wasi::http::types::DnsErrorPayload {
                    rcode: None,
                    info_code: None,
                }),
                "HTTP_CONNECT",
                true,
            ),
            (ErrorCode::TlsCertificateError, "HTTP_TLS", false),
            (ErrorCode::HttpRequestUriInvalid, "HTTP_BAD_URL", false),
            (ErrorCode::HttpProtocolError, "HTTP_ERROR", false),
            (
                ErrorCode::InternalError(Some("boom".into())),
                "HTTP_ERROR",
                false,
            ),
        ];
        for (code, want, retryable) in cases {
            let e = HttpError::from_code(u, &code);
            assert_eq!(e.url(), u);
            let job = JobError::from(e.clone());
            assert_eq!(job.code, want, "{code:?}");
            assert_eq!(job.retryable, retryable, "{code:?}");
            assert!(!job.message.contains("secret"), "{}", job.message);
            assert!(
                job.message.contains("https://api.example.com/v1"),
                "{}",
                job.message
            );
        }
        let denied = HttpError::from_code(u, &ErrorCode::HttpRequestDenied).to_string();
        assert!(
            denied.starts_with("denied by the host: https://api.example.com/v1 is not in this job type's http allow-list"),
            "{denied}"
        );
        let other = HttpError::from_code(u, &ErrorCode::InternalError(Some("boom".into())));
        assert!(
            other.to_string().contains("ErrorCode::InternalError"),
            "{other}"
        );
        assert!(other.to_string().contains("boom"), "{other}");
    }

    #[test]
    fn statuses() {
        let status = |s| HttpError::Status {
            url: "http://h/".into(),
            status: s,
        };
        assert!(status(503).is_retryable());
        assert!(status(429).is_retryable());
        assert!(!status(404).is_retryable());
        let r = Response {
            status: 201,
            headers: vec![("content-type".into(), "application/json".into())],
            body: br#"{"id":7}"#.to_vec(),
            url: "http://h/items".into(),
            redirects: 0,
        };
        assert_eq!(r.header("Content-Type"), Some("application/json"));
        assert_eq!(r.json::<serde_json::Value>().unwrap()["id"], 7);
        assert_eq!(r.text(), r#"{"id":7}"#);
        assert!(r.clone().error_for_status().is_ok());
        let missing = Response { status: 404, ..r };
        assert_eq!(
            missing.error_for_status().unwrap_err().code(),
            "HTTP_STATUS"
        );
        assert_eq!("post".parse::<Method>(), Ok(Method::Post));
        assert!("BREW".parse::<Method>().is_err());
    }
}
