//! Outbound HTTP: `wasi:http/outgoing-handler`, behind an allow-list per job type.
//!
//! Why the host and not the guest: a guest can build any request it likes, so the check must
//! sit where the connection is made. Every request a guest sends comes through
//! [`HttpGate::send_request`] before any socket is opened; a redirect is a new request from the
//! guest (wasi:http does not follow redirects), so it is checked again. A job type with no
//! `[http]` grant still links `wasi:http` and loads as before; its requests are all refused.
//!
//! Per run, the gate also caps the number of requests, the time of each request (connect,
//! headers and body together) and the size of each response body. A refusal is an error the
//! guest sees (`HttpRequestDenied`) and a line in the job's logs; it never reaches the network.
//!
//! An admitted request goes out on a kept-alive connection of the job type's own
//! [`pool::HttpPool`] (unless the manifest says `keep_alive = false`, which makes a new
//! connection per request, as wasi:http's own sender does).

mod pool;

pub use pool::HttpPool;

use crate::runtime::events::{JobEvents, LogBudget, LogLevel, LogLine, LogSource};
use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::time::{Instant, Sleep};
use wasmtime_wasi_http::{Error as HttpError, RequestOptions, WasiBody, WasiHttpHooks};

/// Why an allow-list entry was refused at load.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PatternError {
    /// Not `scheme://host[:port]`.
    #[error(
        "'{0}' is not a destination: write scheme://host[:port], e.g. https://api.example.com or http://127.0.0.1:*"
    )]
    Shape(String),
    /// A scheme other than http or https.
    #[error("'{0}': only http:// and https:// destinations exist")]
    Scheme(String),
    /// A path, query or user info after the authority.
    #[error("'{0}': a destination names a host and port only (no path, query or user)")]
    Path(String),
    /// A port that is not a number in 1..=65535 or `*`.
    #[error("'{0}': the port must be a number (1-65535) or *")]
    Port(String),
    /// A wildcard anywhere but a leading `*.`.
    #[error("'{0}': a wildcard may only lead the host (*.example.com)")]
    Wildcard(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum HostPattern {
    /// This host name or address only (lower case; IPv6 without brackets).
    Exact(String),
    /// Any subdomain of this suffix (`*.example.com`: `a.example.com`, `a.b.example.com`).
    Subdomains(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PortPattern {
    Exact(u16),
    Any,
}

/// One allowed destination: `https://api.example.com`, `http://127.0.0.1:*`,
/// `https://*.example.org:8443`. No port means the scheme's default port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Destination {
    text: String,
    https: bool,
    host: HostPattern,
    port: PortPattern,
}

impl Destination {
    /// Parses one allow-list entry.
    pub fn parse(text: &str) -> Result<Self, PatternError> {
        let t = text.trim();
        let (scheme, rest) = t
            .split_once("://")
            .ok_or_else(|| PatternError::Shape(text.into()))?;
        let https = match scheme.to_ascii_lowercase().as_str() {
            "https" => true,
            "http" => false,
            _ => return Err(PatternError::Scheme(text.into())),
        };
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        if rest.is_empty() {
            return Err(PatternError::Shape(text.into()));
        }
        if rest.contains(['/', '?', '#', '@']) {
            return Err(PatternError::Path(text.into()));
        }
        let (host, port) = split_host_port(rest).ok_or_else(|| PatternError::Shape(text.into()))?;
        let port = match port {
            None => PortPattern::Exact(if https { 443 } else { 80 }),
            Some("*") => PortPattern::Any,
            Some(p) => match p.parse::<u16>() {
                Ok(n) if n > 0 => PortPattern::Exact(n),
                _ => return Err(PatternError::Port(text.into())),
            },
        };
        let host = host.to_ascii_lowercase();
        let host = if let Some(suffix) = host.strip_prefix("*.") {
            if suffix.is_empty() || suffix.contains('*') {
                return Err(PatternError::Wildcard(text.into()));
            }
            HostPattern::Subdomains(suffix.to_string())
        } else if host.contains('*') || host.is_empty() {
            return Err(PatternError::Wildcard(text.into()));
        } else {
            HostPattern::Exact(host)
        };
        Ok(Destination {
            text: t.to_string(),
            https,
            host,
            port,
        })
    }

    /// The entry as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Whether a request to `scheme://host:port` may go out.
    pub fn allows(&self, https: bool, host: &str, port: u16) -> bool {
        if self.https != https {
            return false;
        }
        if let PortPattern::Exact(p) = self.port
            && p != port
        {
            return false;
        }
        let host = host.to_ascii_lowercase();
        match &self.host {
            HostPattern::Exact(h) => *h == host,
            HostPattern::Subdomains(suffix) => host
                .strip_suffix(suffix.as_str())
                .is_some_and(|head| head.len() > 1 && head.ends_with('.')),
        }
    }
}

/// `host[:port]`, with `[v6]` brackets removed.
fn split_host_port(s: &str) -> Option<(&str, Option<&str>)> {
    if let Some(rest) = s.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        return match after {
            "" => Some((host, None)),
            p => Some((host, Some(p.strip_prefix(':')?))),
        };
    }
    match s.rsplit_once(':') {
        Some((h, p)) if !h.contains(':') => Some((h, Some(p))),
        Some(_) => None,
        None => Some((s, None)),
    }
}

/// A job type's HTTP grant: where it may connect, and how much it may use per run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpGrant {
    /// Allowed destinations; a request matching none is refused.
    pub allow: Vec<Destination>,
    /// Most requests one run may make (each redirect hop counts).
    pub max_requests: u32,
    /// Longest one request may take: connect, response headers and the whole body.
    pub timeout: Duration,
    /// Largest response body one request may read, in bytes.
    pub max_response_bytes: u64,
    /// Whether requests reuse kept-alive connections (`keep_alive`, default true).
    pub keep_alive: bool,
    /// This job type's kept-alive connections (shared by its runs, by no other type).
    pub pool: HttpPool,
}

impl HttpGrant {
    /// Defaults for the caps when a manifest names only `allow`.
    pub const DEFAULT_MAX_REQUESTS: u32 = 100;
    /// Default per-request time cap.
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
    /// Default response body cap (16 MiB).
    pub const DEFAULT_MAX_RESPONSE_BYTES: u64 = 16 << 20;

    /// A grant of `allow` with the default caps, kept-alive connections and a pool of its own.
    pub fn new(allow: Vec<Destination>) -> HttpGrant {
        HttpGrant {
            allow,
            max_requests: Self::DEFAULT_MAX_REQUESTS,
            timeout: Self::DEFAULT_TIMEOUT,
            max_response_bytes: Self::DEFAULT_MAX_RESPONSE_BYTES,
            keep_alive: true,
            pool: HttpPool::default(),
        }
    }

    fn permits(&self, https: bool, host: &str, port: u16) -> bool {
        self.allow.iter().any(|d| d.allows(https, host, port))
    }
}

/// The per-run side of the grant: counts requests and refuses what the grant does not allow.
pub(crate) struct HttpGate {
    grant: Option<Arc<HttpGrant>>,
    sent: u32,
    job_id: String,
    events: Arc<dyn JobEvents>,
    budget: Arc<LogBudget>,
}

impl HttpGate {
    pub(crate) fn new(
        grant: Option<Arc<HttpGrant>>,
        job_id: &str,
        events: Arc<dyn JobEvents>,
        budget: Arc<LogBudget>,
    ) -> Self {
        HttpGate {
            grant,
            sent: 0,
            job_id: job_id.to_string(),
            events,
            budget,
        }
    }

    /// Decides on one request: the grant to send it under, or why not.
    fn admit(&mut self, uri: &http::Uri) -> Result<Arc<HttpGrant>, (HttpError, String)> {
        let Some(grant) = self.grant.clone() else {
            return Err((
                HttpError::HttpRequestDenied,
                "this job type is granted no outbound HTTP (no [http] in its manifest)".into(),
            ));
        };
        let https = uri.scheme() == Some(&http::uri::Scheme::HTTPS);
        let Some(host) = uri.host() else {
            return Err((
                HttpError::HttpRequestUriInvalid,
                "the URL has no host".into(),
            ));
        };
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
        if !grant.permits(https, host, port) {
            let allowed: Vec<&str> = grant.allow.iter().map(Destination::as_str).collect();
            return Err((
                HttpError::HttpRequestDenied,
                format!("not in the allow-list [{}]", allowed.join(", ")),
            ));
        }
        if self.sent >= grant.max_requests {
            return Err((
                HttpError::HttpRequestDenied,
                format!(
                    "this run has made its {} requests (http.max_requests)",
                    grant.max_requests
                ),
            ));
        }
        self.sent += 1;
        Ok(grant)
    }

    fn refused(&self, method: &http::Method, uri: &http::Uri, why: &str) {
        let target = redact(uri);
        tracing::info!(job_id = %self.job_id, %method, url = %target, reason = why, "outbound request refused");
        self.budget.emit(
            &*self.events,
            LogLine {
                source: LogSource::Host,
                level: LogLevel::Warn,
                text: format!("http: refused {method} {target}: {why}"),
            },
        );
    }
}

/// The URL without its query (which may carry a token) for logs.
fn redact(uri: &http::Uri) -> String {
    let scheme = uri.scheme_str().unwrap_or("https");
    let authority = uri.authority().map_or("", |a| a.as_str());
    format!("{scheme}://{authority}{}", uri.path())
}

type SendFuture = Box<
    dyn Future<
            Output = Result<
                (
                    http::Response<WasiBody>,
                    Box<dyn Future<Output = Result<(), HttpError>> + Send>,
                ),
                HttpError,
            >,
        > + Send,
>;

impl WasiHttpHooks for HttpGate {
    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        fut: Box<dyn Future<Output = Result<(), HttpError>> + Send>,
    ) -> SendFuture {
        drop(fut);
        let grant = match self.admit(request.uri()) {
            Ok(g) => g,
            Err((error, why)) => {
                self.refused(request.method(), request.uri(), &why);
                return Box::new(async move { Err(error) });
            }
        };
        let deadline = Instant::now() + grant.timeout;
        let cap = |t: Option<Duration>| Some(t.map_or(grant.timeout, |t| t.min(grant.timeout)));
        let options = RequestOptions {
            connect_timeout: cap(options.and_then(|o| o.connect_timeout)),
            first_byte_timeout: cap(options.and_then(|o| o.first_byte_timeout)),
            between_bytes_timeout: cap(options.and_then(|o| o.between_bytes_timeout)),
        };
        let max = grant.max_response_bytes;
        let idle = options.between_bytes_timeout;
        Box::new(async move {
            let (res, io): (_, Box<dyn Future<Output = Result<(), HttpError>> + Send>) = if grant
                .keep_alive
            {
                // The pool is the type's, made once: a new connection's set-up is capped by the
                // grant's time cap (a guest's own connect timeout is not applied per request).
                let first_byte = options.first_byte_timeout.unwrap_or(grant.timeout);
                let sent = grant.pool.send(request, grant.timeout);
                let res =
                    match tokio::time::timeout_at(deadline, tokio::time::timeout(first_byte, sent))
                        .await
                    {
                        Ok(Ok(r)) => r?,
                        Ok(Err(_)) => return Err(HttpError::ConnectionReadTimeout),
                        Err(_) => return Err(HttpError::HttpResponseTimeout),
                    };
                (res, Box::new(std::future::ready(Ok(()))))
            } else {
                let sent = wasmtime_wasi_http::default_send_request(request, Some(options));
                let (res, io) = match tokio::time::timeout_at(deadline, sent).await {
                    Ok(r) => r?,
                    Err(_) => return Err(HttpError::HttpResponseTimeout),
                };
                let res = res.map(|body| body.boxed_unsync());
                (res, Box::new(io))
            };
            if res
                .headers()
                .get(http::header::CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<u64>().ok())
                .is_some_and(|n| n > max)
            {
                return Err(HttpError::HttpResponseBodySize(Some(max)));
            }
            // The pooled sender leaves the gap between two body frames to us.
            let idle = if grant.keep_alive { idle } else { None };
            let res = res.map(|body| {
                Capped {
                    inner: body,
                    left: max,
                    max,
                    deadline: Box::pin(tokio::time::sleep_until(deadline)),
                    idle: idle.map(|d| (d, Box::pin(tokio::time::sleep(d)))),
                }
                .boxed_unsync()
            });
            Ok((res, io))
        })
    }
}

/// A response body cut at the size cap and at the request's deadline (and, if set, when no
/// frame comes for `idle`).
struct Capped<B> {
    inner: B,
    left: u64,
    max: u64,
    deadline: Pin<Box<Sleep>>,
    idle: Option<(Duration, Pin<Box<Sleep>>)>,
}

impl<B> Body for Capped<B>
where
    B: Body<Data = Bytes, Error = HttpError> + Unpin,
{
    type Data = Bytes;
    type Error = HttpError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, HttpError>>> {
        match Pin::new(&mut self.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    let n = data.len() as u64;
                    if n > self.left {
                        self.left = 0;
                        return Poll::Ready(Some(Err(HttpError::HttpResponseBodySize(Some(
                            self.max,
                        )))));
                    }
                    self.left -= n;
                }
                if let Some((d, sleep)) = self.idle.as_mut() {
                    let at = Instant::now() + *d;
                    sleep.as_mut().reset(at);
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Pending => {
                if let Poll::Ready(()) = self.deadline.as_mut().poll(cx) {
                    return Poll::Ready(Some(Err(HttpError::HttpResponseTimeout)));
                }
                if let Some((_, sleep)) = self.idle.as_mut()
                    && sleep.as_mut().poll(cx).is_ready()
                {
                    return Poll::Ready(Some(Err(HttpError::ConnectionReadTimeout)));
                }
                Poll::Pending
            }
            other => other,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> Destination {
        Destination::parse(s).unwrap()
    }

    #[test]
    fn exact_host_on_the_default_port() {
        let a = d("https://api.example.com");
        assert!(a.allows(true, "api.example.com", 443));
        assert!(a.allows(true, "API.Example.com", 443));
        assert!(!a.allows(false, "api.example.com", 80), "scheme must match");
        assert!(!a.allows(true, "api.example.com", 8443), "port must match");
        assert!(!a.allows(true, "evil.api.example.com", 443));
        assert!(!a.allows(true, "api.example.com.evil", 443));
    }

    #[test]
    fn any_port_and_subdomains() {
        let local = d("http://127.0.0.1:*");
        assert!(local.allows(false, "127.0.0.1", 1));
        assert!(local.allows(false, "127.0.0.1", 65535));
        assert!(!local.allows(false, "127.0.0.2", 80));
        let sub = d("https://*.example.org");
        assert!(sub.allows(true, "a.example.org", 443));
        assert!(sub.allows(true, "a.b.example.org", 443));
        assert!(
            !sub.allows(true, "example.org", 443),
            "the apex is not a subdomain"
        );
        assert!(!sub.allows(true, "badexample.org", 443));
        let v6 = d("http://[::1]:8080");
        assert!(v6.allows(false, "::1", 8080));
    }

    #[test]
    fn malformed_entries_are_named() {
        for (s, want) in [
            ("api.example.com", "not a destination"),
            ("ftp://x", "only http"),
            ("https://x/path", "host and port only"),
            ("https://user@x", "host and port only"),
            ("https://x:0", "port must be"),
            ("https://x:http", "port must be"),
            ("https://a*.x", "wildcard"),
            ("https://*.", "wildcard"),
        ] {
            let e = Destination::parse(s).unwrap_err().to_string();
            assert!(e.contains(want), "{s}: {e}");
        }
    }
}
