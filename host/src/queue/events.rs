//! The sink a running job's progress and logs go to: live values read by `get_status`, log
//! lines kept for `get_logs`, progress records written to the store at a bounded rate, and
//! both published to the live [`Feed`] (progress at most every [`LIVE_PROGRESS`]).

use super::feed::{EventBody, Feed};
use crate::job::{Status, now_micros};
use crate::runtime::{JobEvents, LogLine};
use crate::store::Store;
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
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

    pub(crate) fn push_at(&self, t: i64, line: LogLine) {
        let mut g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        if g.0.len() >= self.max_lines {
            g.0.pop_front();
            g.1 += 1;
        }
        g.0.push_back((t, line));
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

/// The log lines of each job's latest run on this host. A job's lines are kept from its first
/// line on, so that the many jobs that log nothing cost no entry.
pub(crate) struct LogBook {
    max_lines: usize,
    jobs: Mutex<HashMap<String, Arc<JobLogs>, foldhash::fast::RandomState>>,
}

impl LogBook {
    pub(crate) fn new(max_lines: usize) -> Self {
        LogBook {
            max_lines,
            jobs: Mutex::new(HashMap::default()),
        }
    }

    fn lock(
        &self,
    ) -> std::sync::MutexGuard<'_, HashMap<String, Arc<JobLogs>, foldhash::fast::RandomState>> {
        self.jobs.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A new run of the job begins: the last run's lines go.
    pub(crate) fn begin_run(&self, job_id: &str) {
        if let Some(l) = self.lock().get(job_id) {
            l.clear();
        }
    }

    /// The job's lines, made on its first line.
    fn of(&self, job_id: &str) -> Arc<JobLogs> {
        let mut jobs = self.lock();
        match jobs.get(job_id) {
            Some(l) => l.clone(),
            None => jobs
                .entry(job_id.to_string())
                .or_insert_with(|| Arc::new(JobLogs::new(self.max_lines)))
                .clone(),
        }
    }

    /// The lines of the job's latest run here, and how many older lines were dropped.
    pub(crate) fn snapshot(&self, job_id: &str) -> (Vec<(i64, LogLine)>, u64) {
        let logs = self.lock().get(job_id).cloned();
        logs.map(|l| l.snapshot()).unwrap_or_default()
    }

    /// Forgets the lines of purged jobs.
    pub(crate) fn forget(&self, job_ids: &[String]) {
        let mut jobs = self.lock();
        for id in job_ids {
            jobs.remove(id);
        }
    }
}

/// Least time between two live progress events of one run (a guest may report progress
/// millions of times a second; watchers need a few updates a second).
pub const LIVE_PROGRESS: Duration = Duration::from_millis(50);

/// One run's [`JobEvents`] sink.
pub(crate) struct LiveEvents {
    store: Arc<dyn Store>,
    feed: Arc<Feed>,
    interval: Duration,
    job_id: String,
    job_type: String,
    queue: String,
    attempt: u32,
    book: Arc<LogBook>,
    /// This run's lines, once it logged one.
    logs: std::sync::OnceLock<Arc<JobLogs>>,
    /// Percent, description, last stored, last published.
    progress: Mutex<(u8, String, Option<Instant>, Option<Instant>)>,
    fuel: AtomicU64,
}

impl LiveEvents {
    pub(crate) fn new(
        store: Arc<dyn Store>,
        feed: Arc<Feed>,
        interval: Duration,
        job: (String, String, String, u32),
        book: Arc<LogBook>,
    ) -> Self {
        let (job_id, job_type, queue, attempt) = job;
        LiveEvents {
            store,
            feed,
            interval,
            job_id,
            job_type,
            queue,
            attempt,
            book,
            logs: std::sync::OnceLock::new(),
            progress: Mutex::new((0, "Job started".into(), None, None)),
            fuel: AtomicU64::new(0),
        }
    }

    /// Fuel the run consumed (once it has ended).
    pub(crate) fn fuel(&self) -> u64 {
        self.fuel.load(Ordering::Relaxed)
    }

    /// The latest progress and description.
    pub(crate) fn progress(&self) -> (u8, String) {
        let g = self.progress.lock().unwrap_or_else(|p| p.into_inner());
        (g.0, g.1.clone())
    }
}

impl JobEvents for LiveEvents {
    fn progress(&self, percent: u8, description: &str) {
        let (persist, live) = {
            let mut g = self.progress.lock().unwrap_or_else(|p| p.into_inner());
            g.0 = percent;
            if g.1 != description {
                g.1.clear();
                g.1.push_str(description);
            }
            let now = Instant::now();
            let due = g.2.is_none_or(|t| now.duration_since(t) >= self.interval);
            if due {
                g.2 = Some(now);
            }
            let live = g.3.is_none_or(|t| now.duration_since(t) >= LIVE_PROGRESS);
            if live {
                g.3 = Some(now);
            }
            (due, live)
        };
        if persist {
            self.store
                .progress(&self.job_id, self.attempt, percent, description);
        }
        if live {
            self.feed.publish(
                &self.job_id,
                &self.job_type,
                &self.queue,
                Status::Running,
                EventBody::Progress {
                    percent,
                    description: description.to_string(),
                },
            );
        }
    }

    fn fuel_used(&self, fuel: u64) {
        self.fuel.store(fuel, Ordering::Relaxed);
    }

    fn log(&self, line: LogLine) {
        let t = now_micros();
        self.feed.publish(
            &self.job_id,
            &self.job_type,
            &self.queue,
            Status::Running,
            EventBody::Log(t, line.clone()),
        );
        self.logs
            .get_or_init(|| self.book.of(&self.job_id))
            .push_at(t, line);
    }
}
