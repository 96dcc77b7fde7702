//! Captures a guest's stdout and stderr as log lines.
//!
//! WASI's stdout is a byte stream; jobs print lines. This stream splits on `\n`, replaces
//! invalid UTF-8, and hands each line to the job's [`JobEvents`] sink within the run's log
//! budget. It never fails a write: a guest whose output is over the cap keeps running (its
//! `println!` would otherwise panic), and the drop is counted instead.

use super::events::{JobEvents, LogBudget, LogLevel, LogLine, LogSource};
use bytes::Bytes;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamResult};

/// A partial line longer than this is emitted as a line of its own.
const MAX_LINE: usize = 16 * 1024;

struct Inner {
    source: LogSource,
    partial: Vec<u8>,
    sink: Arc<dyn JobEvents>,
    budget: Arc<LogBudget>,
}

impl Inner {
    fn write(&mut self, mut bytes: &[u8]) {
        while let Some(pos) = bytes.iter().position(|b| *b == b'\n') {
            self.partial.extend_from_slice(&bytes[..pos]);
            self.emit();
            bytes = &bytes[pos + 1..];
        }
        self.partial.extend_from_slice(bytes);
        if self.partial.len() >= MAX_LINE {
            self.emit();
        }
    }

    fn emit(&mut self) {
        let text = String::from_utf8_lossy(&self.partial).into_owned();
        self.partial.clear();
        let level = match self.source {
            LogSource::Stderr => LogLevel::Warn,
            _ => LogLevel::Info,
        };
        self.budget.emit(
            &*self.sink,
            LogLine {
                source: self.source,
                level,
                text,
            },
        );
    }
}

/// One of a run's captured streams (stdout or stderr); clones share the same buffer.
#[derive(Clone)]
pub(crate) struct CapturedStream(Arc<Mutex<Inner>>);

impl CapturedStream {
    pub(crate) fn new(source: LogSource, sink: Arc<dyn JobEvents>, budget: Arc<LogBudget>) -> Self {
        CapturedStream(Arc::new(Mutex::new(Inner {
            source,
            partial: Vec::new(),
            sink,
            budget,
        })))
    }

    fn with<R>(&self, f: impl FnOnce(&mut Inner) -> R) -> R {
        // A poisoned lock only means another writer panicked mid-line: keep the data.
        let mut guard = self.0.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut guard)
    }

    /// Emits a last line that had no trailing newline (called when the run ends).
    pub(crate) fn finish(&self) {
        self.with(|i| {
            if !i.partial.is_empty() {
                i.emit();
            }
        });
    }
}

impl IsTerminal for CapturedStream {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for CapturedStream {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }

    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

#[wasmtime_wasi::async_trait]
impl OutputStream for CapturedStream {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        self.with(|i| i.write(&bytes));
        Ok(())
    }

    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        Ok(64 * 1024)
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for CapturedStream {
    async fn ready(&mut self) {}
}

impl tokio::io::AsyncWrite for CapturedStream {
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.with(|i| i.write(buf));
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}
