//! The sink a running job's progress and logs go to: live values read by `get_status`, log
//! lines kept for `get_logs`, and progress records written to the store at a bounded rate.

use crate::registry::now_micros;
use crate::runtime::{JobEvents, LogLine};
use crate::store::JobStore;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

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
    store: Arc<dyn JobStore>,
    interval: Duration,
    job_id: String,
    attempt: u32,
    logs: Arc<JobLogs>,
    progress: Mutex<(u8, String, Option<Instant>)>,
}

impl LiveEvents {
    pub(crate) fn new(
        store: Arc<dyn JobStore>,
        interval: Duration,
        job_id: String,
        attempt: u32,
        logs: Arc<JobLogs>,
    ) -> Self {
        LiveEvents {
            store,
            interval,
            job_id,
            attempt,
            logs,
            progress: Mutex::new((0, "Job started".into(), None)),
        }
    }

    /// The latest progress and description.
    pub(crate) fn progress(&self) -> (u8, String) {
        let g = self.progress.lock().unwrap_or_else(|p| p.into_inner());
        (g.0, g.1.clone())
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
            let due = g.2.is_none_or(|t| t.elapsed() >= self.interval);
            if due {
                g.2 = Some(Instant::now());
            }
            due
        };
        if persist {
            self.store
                .progress(&self.job_id, self.attempt, percent, description);
        }
    }

    fn log(&self, line: LogLine) {
        self.logs.push(line);
    }
}
