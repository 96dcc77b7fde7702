//! The default registry: an append-only JSONL file, one record per line.
//!
//! Why a single writer thread: it makes group commit natural. Every append is queued to the
//! thread; the thread takes everything queued so far, writes it in one `write`, calls
//! `fdatasync` once and then acknowledges the whole batch. Under load, hundreds of transitions
//! share one sync; alone, a transition costs one write and one sync.
//!
//! Crash safety: a record is acknowledged only after its sync. At open, a torn last line (the
//! host died mid-write) is cut off; a corrupt line elsewhere is skipped with a warning naming
//! it. Compaction writes a temporary file, syncs it, renames it over the old one and syncs the
//! directory, so a crash at any moment leaves either the old file or the new one.

use super::journal::{
    Commit, CommitState, Durable, Journal, JournalError, Link, Replay, ReplayReport,
};
use crate::job::JobRecord;
use crate::store::StoreStats;
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use tokio::sync::oneshot;

/// Most operations the writer takes into one batch (one sync).
const MAX_BATCH: usize = 8192;

type Ack = oneshot::Sender<Result<(), JournalError>>;

enum Op {
    Append(Vec<Arc<JobRecord>>, Ack, Link),
    Compact(Vec<Arc<JobRecord>>, Ack),
}

/// A registry kept in one JSONL file.
pub struct JsonlJournal {
    path: PathBuf,
    tx: Mutex<mpsc::Sender<Op>>,
    stats: Arc<Mutex<StoreStats>>,
    repaired_tail: bool,
}

impl JsonlJournal {
    /// Opens (or creates) the file, repairs a torn last line, and starts the writer thread.
    pub fn open(path: impl Into<PathBuf>) -> Result<Self, JournalError> {
        let path = path.into();
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|e| read_err(&path, e))?;
        }
        let repaired_tail = repair_tail(&path)?;
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|e| read_err(&path, e))?;
        sync_dir(&path);
        let len = file.metadata().map(|m| m.len()).unwrap_or(0);
        // `records` is filled in by `replay`, which reads the file anyway.
        let stats = Arc::new(Mutex::new(StoreStats {
            backend: "jsonl",
            location: path.display().to_string(),
            ..StoreStats::default()
        }));
        let (tx, rx) = mpsc::channel();
        let writer = Writer {
            path: path.clone(),
            file,
            good_len: len,
            stats: stats.clone(),
            buf: Vec::with_capacity(64 * 1024),
        };
        std::thread::Builder::new()
            .name("registry-writer".into())
            .spawn(move || writer.run(rx))
            .map_err(|e| JournalError::Thread(Arc::new(e)))?;
        Ok(JsonlJournal {
            path,
            tx: Mutex::new(tx),
            stats,
            repaired_tail,
        })
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn send(&self, op: impl FnOnce(Ack) -> Op) -> Durable {
        let (ack, done) = oneshot::channel();
        let sent = match self.tx.lock() {
            Ok(tx) => tx.send(op(ack)).is_ok(),
            Err(_) => false,
        };
        Box::pin(async move {
            if !sent {
                return Err(JournalError::Closed);
            }
            done.await.unwrap_or(Err(JournalError::Closed))
        })
    }
}

/// Bytes per chunk of the parallel parse: small enough that the caller of
/// [`Journal::replay_each`] folds the first chunks while the later ones are being parsed.
const CHUNK_BYTES: usize = 4 << 20;

impl JsonlJournal {
    /// Parses the whole file (mapped, not copied: the parsers read the page cache in place) in
    /// chunks on every core, and hands each chunk's records to `each` in file order as soon as
    /// it and the chunks before it are parsed. Corrupt lines are logged and reported.
    fn parse_each(
        &self,
        each: &mut dyn FnMut(Vec<Arc<JobRecord>>),
    ) -> Result<ReplayReport, JournalError> {
        let file = File::open(&self.path).map_err(|e| read_err(&self.path, e))?;
        let len = file.metadata().map_err(|e| read_err(&self.path, e))?.len();
        let mut report = ReplayReport {
            repaired_tail: self.repaired_tail,
            ..ReplayReport::default()
        };
        if len == 0 {
            return Ok(report);
        }
        // SAFETY: the map is read-only and dropped before this returns; the file is ours (the
        // writer appends only after replay, and nothing truncates it meanwhile). Every record
        // parsed from it owns its data.
        let map = unsafe { memmap2::Mmap::map(&file) }.map_err(|e| read_err(&self.path, e))?;
        let chunks = split_at_lines(&map, CHUNK_BYTES);
        let threads = std::thread::available_parallelism()
            .map_or(1, |n| n.get())
            .min(8)
            .min(chunks.len())
            .max(1);
        let next = std::sync::atomic::AtomicUsize::new(0);
        std::thread::scope(|scope| {
            let (tx, rx) = mpsc::channel::<(usize, (u64, Vec<Parsed>))>();
            for _ in 0..threads {
                let (tx, next, chunks) = (tx.clone(), &next, &chunks);
                scope.spawn(move || {
                    loop {
                        let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        let Some(chunk) = chunks.get(i) else { break };
                        if tx.send((i, parse_chunk(chunk))).is_err() {
                            break;
                        }
                    }
                });
            }
            drop(tx);
            // Chunks arrive in any order; they are handed on in file order.
            let mut parsed = std::collections::BTreeMap::new();
            let (mut want, mut lines_before) = (0usize, 0u64);
            for (i, chunk) in rx {
                parsed.insert(i, chunk);
                while let Some((newlines, lines)) = parsed.remove(&want) {
                    let mut records = Vec::with_capacity(lines.len());
                    for (n, res) in lines {
                        match res {
                            Ok(rec) => records.push(rec),
                            Err(e) => {
                                let line_no = lines_before + n;
                                tracing::warn!(path = %self.path.display(), line = line_no,
                                    error = %e, "skipping a corrupt registry line");
                                report.skipped_lines.push(line_no);
                            }
                        }
                    }
                    report.records += records.len() as u64;
                    lines_before += newlines;
                    want += 1;
                    each(records);
                }
            }
        });
        drop(map);
        if let Ok(mut st) = self.stats.lock() {
            st.records = report.records;
        }
        Ok(report)
    }
}

impl Journal for JsonlJournal {
    fn replay(&self) -> Result<Replay, JournalError> {
        let mut records = Vec::new();
        let report = self.parse_each(&mut |mut chunk| records.append(&mut chunk))?;
        Ok(Replay {
            jobs: super::journal::fold(records),
            report,
        })
    }

    fn replay_each(
        &self,
        each: &mut dyn FnMut(Vec<Arc<JobRecord>>),
    ) -> Result<ReplayReport, JournalError> {
        self.parse_each(each)
    }

    fn replay_size_hint(&self) -> usize {
        // A compacted journal's records of finished jobs run 300–450 bytes: an estimate on the
        // high side would double the table's buckets, one on the low side costs one growth.
        std::fs::metadata(&self.path).map_or(0, |m| (m.len() / 384) as usize)
    }

    fn append_linked(&self, records: Vec<Arc<JobRecord>>, link: Link) -> Durable {
        self.send(|ack| Op::Append(records, ack, link))
    }

    fn compact(&self, live: Vec<Arc<JobRecord>>) -> Durable {
        self.send(|ack| Op::Compact(live, ack))
    }

    fn stats(&self) -> StoreStats {
        self.stats.lock().map(|s| s.clone()).unwrap_or_default()
    }
}

type Parsed = (u64, Result<Arc<JobRecord>, serde_json::Error>);

/// Splits `bytes` into pieces of about `size` bytes, each ending at a line end (or the end).
fn split_at_lines(bytes: &[u8], size: usize) -> Vec<&[u8]> {
    let mut chunks = Vec::with_capacity(bytes.len() / size.max(1) + 1);
    let mut start = 0;
    while start < bytes.len() {
        let target = (start + size.max(1)).min(bytes.len());
        let end = match bytes[target..].iter().position(|b| *b == b'\n') {
            Some(i) => target + i + 1,
            None => bytes.len(),
        };
        chunks.push(&bytes[start..end]);
        start = end;
    }
    chunks
}

/// Parses a chunk's non-blank lines, numbered from 1 within it; returns them with the
/// chunk's count of line ends.
fn parse_chunk(chunk: &[u8]) -> (u64, Vec<Parsed>) {
    let mut lines = 0u64;
    let mut out = Vec::with_capacity(chunk.len() / 256);
    let mut push = |line: &[u8], rec: Result<JobRecord, serde_json::Error>| {
        lines += 1;
        if !line.iter().all(u8::is_ascii_whitespace) {
            out.push((lines, rec.map(Arc::new)));
        }
    };
    // Valid UTF-8 as a whole (the rule): checked once, so that the parser need not check
    // every string again. A chunk with a broken line is parsed line by line from bytes.
    match std::str::from_utf8(chunk) {
        Ok(text) => {
            for line in text.split('\n') {
                push(line.as_bytes(), serde_json::from_str::<JobRecord>(line));
            }
        }
        Err(_) => {
            for line in chunk.split(|b| *b == b'\n') {
                push(line, serde_json::from_slice::<JobRecord>(line));
            }
        }
    }
    // `split` yields one more piece after a final newline.
    let newlines = chunk.iter().filter(|b| **b == b'\n').count() as u64;
    (newlines, out)
}

fn read_err(path: &Path, e: std::io::Error) -> JournalError {
    JournalError::Read {
        path: path.to_path_buf(),
        source: Arc::new(e),
    }
}

/// Cuts off a torn last line. Returns whether anything was cut. Reads only the end of the
/// file (back to its last newline), however large the file is.
fn repair_tail(path: &Path) -> Result<bool, JournalError> {
    use std::io::{Seek, SeekFrom};
    let mut f = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(read_err(path, e)),
    };
    let len = f.metadata().map_err(|e| read_err(path, e))?.len();
    let mut read_at = |pos: u64, n: usize| -> std::io::Result<Vec<u8>> {
        let mut buf = vec![0u8; n];
        f.seek(SeekFrom::Start(pos))?;
        f.read_exact(&mut buf)?;
        Ok(buf)
    };
    if len == 0 || read_at(len - 1, 1).map_err(|e| read_err(path, e))? == b"\n" {
        return Ok(false);
    }
    // Find the last newline, reading backwards 64 KiB at a time.
    let mut end = len;
    let keep = loop {
        let start = end.saturating_sub(64 * 1024);
        let chunk = read_at(start, (end - start) as usize).map_err(|e| read_err(path, e))?;
        if let Some(i) = chunk.iter().rposition(|b| *b == b'\n') {
            break start + i as u64 + 1;
        }
        if start == 0 {
            break 0;
        }
        end = start;
    };
    let tail = read_at(keep, (len - keep) as usize).map_err(|e| read_err(path, e))?;
    if serde_json::from_slice::<JobRecord>(&tail).is_ok() {
        // A whole record that only lacks its newline: keep it.
        let mut f = OpenOptions::new()
            .append(true)
            .open(path)
            .map_err(|e| read_err(path, e))?;
        f.write_all(b"\n")
            .and_then(|()| f.sync_data())
            .map_err(|e| read_err(path, e))?;
        return Ok(false);
    }
    tracing::warn!(path = %path.display(), bytes = tail.len(), "cutting off a torn last registry line");
    let file = OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(|e| read_err(path, e))?;
    file.set_len(keep)
        .and_then(|()| file.sync_data())
        .map_err(|e| read_err(path, e))?;
    Ok(true)
}

fn sync_dir(path: &Path) {
    if let Some(dir) = path.parent() {
        let dir = if dir.as_os_str().is_empty() {
            Path::new(".")
        } else {
            dir
        };
        if let Ok(d) = File::open(dir) {
            let _ = d.sync_all();
        }
    }
}

struct Writer {
    path: PathBuf,
    file: File,
    /// File length after the last successful sync: a failed write is cut back to it.
    good_len: u64,
    stats: Arc<Mutex<StoreStats>>,
    buf: Vec<u8>,
}

/// Takes the next queued op into the batch, unless the batch is full.
fn continue_batch(rx: &mpsc::Receiver<Op>, next: &mut Option<Op>, taken: usize) {
    if taken < MAX_BATCH {
        *next = rx.try_recv().ok();
    }
}

impl Writer {
    fn run(mut self, rx: mpsc::Receiver<Op>) {
        while let Ok(first) = rx.recv() {
            let mut pending: Vec<Ack> = Vec::new();
            let mut marks: Vec<Commit> = Vec::new();
            let mut appended = 0u64;
            let mut next = Some(first);
            let mut taken = 0;
            while let Some(op) = next.take() {
                taken += 1;
                match op {
                    Op::Append(records, ack, link) => {
                        // An earlier batch resolved `after` already; if it is still pending, it
                        // is in this batch and shares its fate.
                        if link.after.iter().any(|c| c.state() == CommitState::Failed) {
                            if let Some(m) = link.marks {
                                m.resolve(false);
                            }
                            let _ = ack.send(Err(JournalError::DependencyFailed));
                            continue_batch(&rx, &mut next, taken);
                            continue;
                        }
                        marks.extend(link.marks);
                        for r in &records {
                            // Serialising our own record type cannot fail; skip it if it did.
                            if serde_json::to_writer(&mut self.buf, &**r).is_ok() {
                                self.buf.push(b'\n');
                                appended += 1;
                            }
                        }
                        pending.push(ack);
                    }
                    Op::Compact(live, ack) => {
                        let before = self.commit(
                            std::mem::take(&mut pending),
                            std::mem::take(&mut marks),
                            appended,
                        );
                        appended = 0;
                        // The snapshot holds the records appended before it: if they could
                        // not be stored, neither may the snapshot.
                        let res = before.and_then(|()| self.compact(&live));
                        let _ = ack.send(res);
                    }
                }
                continue_batch(&rx, &mut next, taken);
            }
            // A failure was reported to every op of the batch.
            let _ = self.commit(pending, marks, appended);
        }
    }

    /// Writes the buffer, syncs once, resolves the batch's commits and acknowledges every op
    /// of the batch.
    fn commit(
        &mut self,
        acks: Vec<Ack>,
        marks: Vec<Commit>,
        appended: u64,
    ) -> Result<(), JournalError> {
        if acks.is_empty() && self.buf.is_empty() {
            return Ok(());
        }
        let res = if self.buf.is_empty() {
            Ok(())
        } else {
            self.file
                .write_all(&self.buf)
                .and_then(|()| self.file.sync_data())
        };
        let len = self.buf.len() as u64;
        self.buf.clear();
        let res = match res {
            Ok(()) => {
                self.good_len += len;
                if let Ok(mut s) = self.stats.lock() {
                    s.appended += appended;
                    s.records += appended;
                    s.syncs += 1;
                    s.last_error = None;
                }
                Ok(())
            }
            Err(e) => {
                // Cut back anything half-written so the file stays a sequence of whole lines.
                let _ = self.file.set_len(self.good_len);
                tracing::error!(path = %self.path.display(), error = %e, "registry write failed");
                if let Ok(mut s) = self.stats.lock() {
                    s.last_error = Some(format!("{}: {e}", self.path.display()));
                }
                Err(JournalError::Write {
                    path: self.path.clone(),
                    source: Arc::new(e),
                })
            }
        };
        for m in marks {
            m.resolve(res.is_ok());
        }
        for ack in acks {
            let _ = ack.send(res.clone());
        }
        res
    }

    fn compact(&mut self, live: &[Arc<JobRecord>]) -> Result<(), JournalError> {
        let tmp = self.path.with_extension("jsonl.compact-tmp");
        let write = || -> std::io::Result<(File, u64)> {
            let mut out = Vec::with_capacity(live.len() * 256);
            for r in live {
                serde_json::to_writer(&mut out, &**r)?;
                out.push(b'\n');
            }
            let mut f = File::create(&tmp)?;
            f.write_all(&out)?;
            f.sync_all()?;
            std::fs::rename(&tmp, &self.path)?;
            sync_dir(&self.path);
            let file = OpenOptions::new().append(true).open(&self.path)?;
            Ok((file, out.len() as u64))
        };
        match write() {
            Ok((file, len)) => {
                self.file = file;
                self.good_len = len;
                if let Ok(mut s) = self.stats.lock() {
                    s.records = live.len() as u64;
                    s.compactions += 1;
                }
                tracing::info!(path = %self.path.display(), records = live.len(), "registry compacted");
                Ok(())
            }
            Err(e) => {
                let _ = std::fs::remove_file(&tmp);
                tracing::error!(path = %self.path.display(), error = %e, "registry compaction failed");
                Err(JournalError::Compact {
                    path: self.path.clone(),
                    source: Arc::new(e),
                })
            }
        }
    }
}
