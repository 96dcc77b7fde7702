//! The accept loop: HTTP/1.1 with a cap on open connections and a header-read timeout (which
//! also closes keep-alive connections left idle), so that slow or flooding clients cannot
//! starve others. The in-flight request cap and the request timeout are layers on the router
//! ([`super::router`]).

use crate::auth::{KeyMemo, KeyRing, presented_key};
use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Connection-level limits.
#[derive(Debug, Clone, Copy)]
pub struct ConnLimits {
    /// Most open connections; further clients wait in the listen backlog.
    pub max_connections: usize,
    /// A client must send a whole request head within this time, also on an idle keep-alive
    /// connection (which is then closed).
    pub header_timeout: Duration,
    /// How long shutdown waits for open connections to finish their requests.
    pub drain_timeout: Duration,
}

impl Default for ConnLimits {
    fn default() -> Self {
        ConnLimits {
            max_connections: 1024,
            header_timeout: Duration::from_secs(15),
            drain_timeout: Duration::from_secs(10),
        }
    }
}

/// One connection's service: the router, and the connection's [`KeyMemo`] (an HTTP/1.1
/// client presents the same key on each request of a connection; it is recognised once, and
/// again only when it changes or the keys are reloaded).
struct Connection {
    router: Router,
    keys: Option<Arc<KeyRing>>,
    memo: Mutex<KeyMemo>,
}

impl hyper::service::Service<hyper::Request<hyper::body::Incoming>> for Connection {
    type Response = axum::response::Response;
    type Error = std::convert::Infallible;
    type Future = tower::util::Oneshot<Router, hyper::Request<hyper::body::Incoming>>;

    fn call(&self, mut req: hyper::Request<hyper::body::Incoming>) -> Self::Future {
        if let Some(keys) = &self.keys {
            // A connection's requests come one after another: the lock is never contended.
            let mut memo = self.memo.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(caller) = keys.check_remembered(presented_key(req.headers()), &mut memo) {
                req.extensions_mut().insert(caller);
            }
        }
        tower::ServiceExt::oneshot(self.router.clone(), req)
    }
}

/// Serves `router` on `listener` until `shutdown` resolves, then stops accepting and drains
/// open connections (bounded by [`ConnLimits::drain_timeout`]). `keys`: the keys the router
/// checks (`None` for an open API), recognised once per connection ([`Connection`]).
pub async fn serve(
    listener: TcpListener,
    router: Router,
    keys: Option<Arc<KeyRing>>,
    limits: ConnLimits,
    shutdown: impl Future<Output = ()>,
) {
    let keys = keys.filter(|k| !k.is_open());
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    // Shutdown asks every connection to finish its request and close, then waits for them.
    // (hyper-util's `GracefulShutdown` cannot watch a connection that allows upgrades.)
    let stop = CancellationToken::new();
    let tracker = TaskTracker::new();
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .keep_alive(true);
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            p = slots.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break,
            },
            () = &mut shutdown => break,
        };
        let stream = tokio::select! {
            r = listener.accept() => match r {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // Out of file descriptors, or the like: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let conn = http
            .serve_connection(
                TokioIo::new(stream),
                Connection {
                    router: router.clone(),
                    keys: keys.clone(),
                    memo: Mutex::new(KeyMemo::default()),
                },
            )
            // Upgrades (`/ws`) hand the socket over; it then leaves this connection's slot.
            .with_upgrades();
        let stop = stop.clone();
        tracker.spawn(async move {
            tokio::pin!(conn);
            let r = tokio::select! {
                r = conn.as_mut() => r,
                () = stop.cancelled() => {
                    conn.as_mut().graceful_shutdown();
                    conn.await
                }
            };
            if let Err(e) = r {
                tracing::debug!(error = %e, "connection ended with an error");
            }
            drop(permit);
        });
    }
    drop(listener);
    stop.cancel();
    tracker.close();
    if tokio::time::timeout(limits.drain_timeout, tracker.wait())
        .await
        .is_err()
    {
        tracing::warn!("some connections were still open after the drain timeout");
    }
}
