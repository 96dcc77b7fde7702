//! The sink a running job's progress and logs go to: live values read by `get_status`, log
//! lines kept for `get_logs`, and progress records written to the registry at a bounded rate.

use super::Inner;
use crate::registry::now_micros;
use crate::runtime::{JobEvents, LogLine};
use std::collections::VecDeque;
use std::sync::{Mutex, Weak};
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// A job's captured log lines, newest kept when over the line cap.
pub(crate) struct JobLogs {
    max_lines: usize,
    inner: Mutex<(VecDeque<(i64, LogLine)>, u64)>,
}

impl JobLogs {
    pub(crate) fn new(max_lines: usize) -> Self {
        JobLogs {
            max_lines,
            inner: Mutex::new((VecDeque::new(), 0)),
        }
    }

    pub(crate) fn push(&self, line: LogLine) {
        let mut g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        if g.0.len() >= self.max_lines {
            g.0.pop_front();
            g.1 += 1;
        }
        g.0.push_back((now_micros(), line));
    }

    pub(crate) fn clear(&self) {
        let mut g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        g.0.clear();
        g.1 = 0;
    }

    /// The lines with their times, and how many older lines were dropped.
    pub(crate) fn snapshot(&self) -> (Vec<(i64, LogLine)>, u64) {
        let g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        (g.0.iter().cloned().collect(), g.1)
    }
}

/// One run's [`JobEvents`] sink.
pub(crate) struct LiveEvents {
    queue: Weak<Inner>,
    job_id: String,
    run_id: u64,
    logs: std::sync::Arc<JobLogs>,
    progress: Mutex<(u8, String, Option<Instant>)>,
    done: watch::Sender<bool>,
}

impl LiveEvents {
    pub(crate) fn new(
        queue: Weak<Inner>,
        job_id: String,
        run_id: u64,
        logs: std::sync::Arc<JobLogs>,
        done: watch::Sender<bool>,
    ) -> Self {
        LiveEvents {
            queue,
            job_id,
            run_id,
            logs,
            progress: Mutex::new((0, "Job started".into(), None)),
            done,
        }
    }

    /// The latest progress and description.
    pub(crate) fn progress(&self) -> (u8, String) {
        let g = self.progress.lock().unwrap_or_else(|p| p.into_inner());
        (g.0, g.1.clone())
    }

    /// Signals that the run's end is durable.
    pub(crate) fn mark_done(&self) {
        let _ = self.done.send(true);
    }
}

impl JobEvents for LiveEvents {
    fn progress(&self, percent: u8, description: &str) {
        let persist = {
            let mut g = self.progress.lock().unwrap_or_else(|p| p.into_inner());
            g.0 = percent;
            if g.1 != description {
                g.1.clear();
                g.1.push_str(description);
            }
            let interval = self
                .queue
                .upgrade()
                .map_or(Duration::from_secs(1), |q| q.cfg.progress_interval);
            let due = g.2.is_none_or(|t| t.elapsed() >= interval);
            if due {
                g.2 = Some(Instant::now());
            }
            due
        };
        if persist && let Some(inner) = self.queue.upgrade() {
            super::Queue { inner }.persist_progress(&self.job_id, self.run_id);
        }
    }

    fn log(&self, line: LogLine) {
        self.logs.push(line);
    }
}
