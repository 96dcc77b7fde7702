//! Faults injected around the real database: a TCP proxy in front of PostgreSQL that loses the
//! answer to a `COMMIT` it has passed on, as a crash or a cut cable does at the worst moment.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// The frontend message of a simple-query `COMMIT` (what tokio-postgres sends to commit):
/// `Q`, the length (4 + 7), the text and its NUL.
const COMMIT: &[u8] = b"Q\0\0\0\x0bCOMMIT\0";

/// A loopback proxy in front of `target` that, when armed, passes the next `COMMIT` on to the
/// database and then closes that connection before the database's answer can come back: the
/// transaction is committed, and the client hears only that its connection was lost.
pub struct CommitLossProxy {
    /// The address to connect to instead of `target`.
    pub addr: SocketAddr,
    armed: Arc<AtomicBool>,
    lost: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl CommitLossProxy {
    /// Listens on 127.0.0.1 (an ephemeral port) and forwards to `target`.
    pub async fn start(target: SocketAddr) -> CommitLossProxy {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the proxy");
        let addr = listener.local_addr().expect("proxy address");
        let armed = Arc::new(AtomicBool::new(false));
        let lost = Arc::new(AtomicUsize::new(0));
        let (a, l) = (armed.clone(), lost.clone());
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let Ok(server) = TcpStream::connect(target).await else {
                    continue;
                };
                tokio::spawn(relay(client, server, a.clone(), l.clone()));
            }
        });
        CommitLossProxy {
            addr,
            armed,
            lost,
            task,
        }
    }

    /// The next `COMMIT` (on any connection) is passed on and its answer lost.
    pub fn lose_next_commit(&self) {
        self.armed.store(true, Ordering::SeqCst);
    }

    /// How many commits' answers were lost so far.
    pub fn lost(&self) -> usize {
        self.lost.load(Ordering::SeqCst)
    }
}

impl Drop for CommitLossProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Relays both ways until either side closes, or until a `COMMIT` is passed on while armed.
async fn relay(
    mut client: TcpStream,
    mut server: TcpStream,
    armed: Arc<AtomicBool>,
    lost: Arc<AtomicUsize>,
) {
    let mut up = vec![0u8; 64 * 1024];
    let mut down = vec![0u8; 64 * 1024];
    // The end of the previous chunk from the client, so that a COMMIT split across reads is
    // still seen.
    let mut tail: Vec<u8> = Vec::new();
    loop {
        tokio::select! {
            r = client.read(&mut up) => {
                let n = match r { Ok(0) | Err(_) => return, Ok(n) => n };
                let mut seen = std::mem::take(&mut tail);
                seen.extend_from_slice(&up[..n]);
                let commit = seen.windows(COMMIT.len()).any(|w| w == COMMIT);
                tail = seen[seen.len().saturating_sub(COMMIT.len() - 1)..].to_vec();
                if server.write_all(&up[..n]).await.is_err() {
                    return;
                }
                if commit && armed.swap(false, Ordering::SeqCst) {
                    let _ = server.flush().await;
                    lost.fetch_add(1, Ordering::SeqCst);
                    // Both sockets close here: the database reads the COMMIT, commits, and
                    // cannot answer; the client's connection is gone.
                    return;
                }
            }
            r = server.read(&mut down) => {
                let n = match r { Ok(0) | Err(_) => return, Ok(n) => n };
                if client.write_all(&down[..n]).await.is_err() {
                    return;
                }
            }
        }
    }
}
