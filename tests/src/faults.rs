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

/// The backend's answer that a `COMMIT` was made: `CommandComplete` with the tag `COMMIT`.
const COMMITTED: &[u8] = b"C\0\0\0\x0bCOMMIT\0";

/// A loopback proxy in front of `target` that, when armed, passes the next `COMMIT` on to the
/// database, and everything the database answers up to its word that the commit was made; it
/// drops that word and closes the connection: the transaction is committed, and the client
/// hears only that its connection was lost.
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

/// Relays both ways until either side closes, or until the answer to a `COMMIT` passed on
/// while armed comes back (then that answer is dropped and both sides closed).
async fn relay(
    mut client: TcpStream,
    mut server: TcpStream,
    armed: Arc<AtomicBool>,
    lost: Arc<AtomicUsize>,
) {
    let mut up = vec![0u8; 64 * 1024];
    let mut down = vec![0u8; 64 * 1024];
    // The end of the previous chunk each way, so that a message split across reads is seen.
    let mut up_tail: Vec<u8> = Vec::new();
    let mut down_tail: Vec<u8> = Vec::new();
    // A COMMIT went out while armed: its answer is to be lost.
    let mut doomed = false;
    loop {
        tokio::select! {
            r = client.read(&mut up) => {
                let n = match r { Ok(0) | Err(_) => return, Ok(n) => n };
                if !doomed && seen(&mut up_tail, &up[..n], COMMIT).is_some() {
                    doomed = armed.swap(false, Ordering::SeqCst);
                }
                if server.write_all(&up[..n]).await.is_err() {
                    return;
                }
            }
            r = server.read(&mut down) => {
                let n = match r { Ok(0) | Err(_) => return, Ok(n) => n };
                if doomed && let Some(at) = seen(&mut down_tail, &down[..n], COMMITTED) {
                    // Pass on what came before the commit's answer, then lose the answer.
                    let _ = client.write_all(&down[..at]).await;
                    let _ = client.flush().await;
                    lost.fetch_add(1, Ordering::SeqCst);
                    return;
                }
                if client.write_all(&down[..n]).await.is_err() {
                    return;
                }
            }
        }
    }
}

/// Whether `pattern` occurs in `tail` + `chunk`; where in `chunk` it starts (0 if it began in
/// `tail`). Keeps the end of the bytes seen in `tail`.
fn seen(tail: &mut Vec<u8>, chunk: &[u8], pattern: &[u8]) -> Option<usize> {
    let mut all = std::mem::take(tail);
    let before = all.len();
    all.extend_from_slice(chunk);
    let at = all
        .windows(pattern.len())
        .position(|w| w == pattern)
        .map(|i| i.saturating_sub(before));
    *tail = all[all.len().saturating_sub(pattern.len() - 1)..].to_vec();
    at
}
