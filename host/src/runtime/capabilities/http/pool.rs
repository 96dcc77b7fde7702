//! Kept-alive connections for one job type's outbound HTTP.
//!
//! Why a pool, and why one per job type: wasi:http's default sender opens a new connection for
//! every request, so a job that calls an API in a loop pays a TCP (and TLS) handshake each time,
//! 1.7–2.2× a kept-alive native client. [`HttpPool`] keeps idle connections per destination
//! (scheme, host and port) for the job type that holds it: its runs reuse them, one after the
//! other or at once, and no other job type ever sees them. The pool lives in the type's
//! [`super::HttpGrant`], so a manifest reloaded with a new grant starts with a new, empty pool and
//! the old one's connections close when its last run ends.
//!
//! The pool changes nothing of what the gate decides: every request is still checked against
//! the allow-list and counted against `max_requests` before it reaches the pool
//! ([`super::HttpGate`]), and the time and size caps apply to each request as before. HTTP/1.1
//! only, as wasi:http's own sender.

use http_body_util::BodyExt;
use hyper::rt::{Read, ReadBufCursor, Write};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::{Connected, Connection};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use wasmtime_wasi_http::{Error as HttpError, WasiBody};

/// How long an idle connection is kept before it is closed.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(30);
/// Most idle connections kept per destination.
pub const MAX_IDLE_PER_DESTINATION: usize = 32;

/// One job type's pool of kept-alive connections, made at its first request.
#[derive(Clone, Default)]
pub struct HttpPool {
    client: Arc<OnceLock<Client<Connector, WasiBody>>>,
}

/// Two grants are equal by what they grant; their pools (runtime state) never tell them apart,
/// so a manifest reloaded unchanged keeps its type's connections.
impl PartialEq for HttpPool {
    fn eq(&self, _: &HttpPool) -> bool {
        true
    }
}

impl Eq for HttpPool {}

impl std::fmt::Debug for HttpPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpPool")
            .field("started", &self.client.get().is_some())
            .finish()
    }
}

impl HttpPool {
    /// Sends one request (absolute URI) on a kept-alive connection to its destination, or a
    /// new one if none is idle. `connect_timeout` caps a new connection's TCP and TLS set-up;
    /// the pool is made at the first call, with that call's value (the grant's time cap).
    pub(crate) async fn send(
        &self,
        request: http::Request<WasiBody>,
        connect_timeout: Duration,
    ) -> Result<http::Response<WasiBody>, HttpError> {
        let client = self.client.get_or_init(|| {
            Client::builder(TokioExecutor::new())
                .pool_idle_timeout(IDLE_TIMEOUT)
                .pool_max_idle_per_host(MAX_IDLE_PER_DESTINATION)
                .pool_timer(TokioTimer::new())
                .build(Connector::new(connect_timeout))
        });
        match client.request(request).await {
            Ok(res) => Ok(res.map(|body| body.map_err(hyper_error).boxed_unsync())),
            Err(e) => Err(client_error(&e)),
        }
    }
}

/// A hyper error as the wasi:http error a guest understands.
fn hyper_error(e: hyper::Error) -> HttpError {
    HttpError::Hyper(e)
}

/// The pooled client's error, mapped to the codes wasi:http's own sender gives.
fn client_error(e: &hyper_util::client::legacy::Error) -> HttpError {
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        if let Some(c) = s.downcast_ref::<ConnectError>() {
            return c.to_http();
        }
        if let Some(h) = s.downcast_ref::<hyper::Error>() {
            return if h.is_timeout() {
                HttpError::ConnectionReadTimeout
            } else if h.is_incomplete_message() {
                HttpError::HttpResponseIncomplete
            } else if h.is_parse() {
                HttpError::HttpProtocolError
            } else if h.is_closed() || h.is_canceled() {
                HttpError::ConnectionTerminated
            } else {
                HttpError::InternalError(Some(h.to_string()))
            };
        }
        source = s.source();
    }
    HttpError::InternalError(Some(e.to_string()))
}

/// Why a new connection could not be made.
#[derive(Debug, thiserror::Error)]
enum ConnectError {
    #[error("the URI has no host")]
    NoHost,
    #[error("connecting timed out")]
    Timeout,
    #[error("connect: {0}")]
    Io(#[source] io::Error),
    #[error("TLS: {0}")]
    Tls(#[source] io::Error),
    #[error("'{0}' is not a name a TLS certificate can be checked against")]
    ServerName(String),
}

impl ConnectError {
    fn to_http(&self) -> HttpError {
        match self {
            ConnectError::NoHost => HttpError::HttpRequestUriInvalid,
            ConnectError::Timeout => HttpError::ConnectionTimeout,
            ConnectError::Io(e) => HttpError::Connect(io::Error::new(e.kind(), e.to_string())),
            ConnectError::Tls(e) => HttpError::Tls(io::Error::new(e.kind(), e.to_string())),
            ConnectError::ServerName(_) => HttpError::TlsCertificateError,
        }
    }
}

/// Makes new connections for the pool: TCP, then TLS for `https` with the same roots as
/// wasi:http's own sender (the web's public roots).
#[derive(Clone)]
struct Connector {
    tls: Option<tokio_rustls::TlsConnector>,
    timeout: Duration,
}

impl Connector {
    fn new(timeout: Duration) -> Connector {
        static TLS: OnceLock<Option<Arc<rustls::ClientConfig>>> = OnceLock::new();
        let config = TLS.get_or_init(|| {
            let roots = rustls::RootCertStore {
                roots: webpki_roots::TLS_SERVER_ROOTS.into(),
            };
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            rustls::ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .map(|b| Arc::new(b.with_root_certificates(roots).with_no_client_auth()))
                .ok()
        });
        Connector {
            tls: config.clone().map(tokio_rustls::TlsConnector::from),
            timeout,
        }
    }
}

impl tower_service::Service<http::Uri> for Connector {
    type Response = Conn;
    type Error = ConnectError;
    type Future = Pin<Box<dyn Future<Output = Result<Conn, ConnectError>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), ConnectError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: http::Uri) -> Self::Future {
        let this = self.clone();
        Box::pin(async move {
            let https = uri.scheme() == Some(&http::uri::Scheme::HTTPS);
            let host = uri.host().ok_or(ConnectError::NoHost)?;
            let host = host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_string();
            let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
            let connect = async {
                let tcp = TcpStream::connect((host.as_str(), port))
                    .await
                    .map_err(ConnectError::Io)?;
                let _ = tcp.set_nodelay(true);
                if !https {
                    return Ok(Conn::Plain(TokioIo::new(tcp)));
                }
                let name = match host.parse::<std::net::IpAddr>() {
                    Ok(ip) => rustls::pki_types::ServerName::from(ip),
                    Err(_) => rustls::pki_types::ServerName::try_from(host.clone())
                        .map_err(|_| ConnectError::ServerName(host.clone()))?,
                };
                let Some(tls) = &this.tls else {
                    return Err(ConnectError::Tls(io::Error::other("no TLS configuration")));
                };
                let tls = tls.connect(name, tcp).await.map_err(ConnectError::Tls)?;
                Ok(Conn::Tls(Box::new(TokioIo::new(tls))))
            };
            match tokio::time::timeout(this.timeout, connect).await {
                Ok(r) => r,
                Err(_) => Err(ConnectError::Timeout),
            }
        })
    }
}

/// One pooled connection: plain TCP or TLS over TCP.
enum Conn {
    Plain(TokioIo<TcpStream>),
    Tls(Box<TokioIo<TlsStream<TcpStream>>>),
}

impl Connection for Conn {
    fn connected(&self) -> Connected {
        Connected::new()
    }
}

impl Read for Conn {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Conn::Tls(s) => Pin::new(&mut **s).poll_read(cx, buf),
        }
    }
}

impl Write for Conn {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Conn::Tls(s) => Pin::new(&mut **s).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_flush(cx),
            Conn::Tls(s) => Pin::new(&mut **s).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Conn::Tls(s) => Pin::new(&mut **s).poll_shutdown(cx),
        }
    }
}
