//! A [`Store`] that times the writes of another one, for `/metrics`.
//!
//! Why a wrapper: every backend gets the same measurement (from the queue's side: the time
//! until the write is durable), and neither backend nor the queue's services carry metrics
//! code. Reads and feeds pass straight through.

use super::{
    Capabilities, Change, Claimant, Cluster, Counts, Finish, Fired, HostInfo, InsertOutcome,
    JobStore, ListQuery, NewJob, Page, PutSchedule, QueueDepth, QueueStore, Retention, RetryPolicy,
    RunRef, ScheduleStore, StartOutcome, StopOutcome, StopRequest, Store, StoreChannels,
    StoreFuture,
};
use crate::job::{JobRecord, StopKind};
use crate::limits::QueueRecord;
use crate::metrics::Metrics;
use crate::schedule::{Firing, ScheduleRecord};
use crate::store::StoreStats;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{broadcast, mpsc};

/// Times the writes of `inner`.
pub struct MeteredStore {
    inner: Arc<dyn Store>,
    metrics: Arc<Metrics>,
}

impl MeteredStore {
    /// Wraps a store.
    pub fn new(inner: Arc<dyn Store>, metrics: Arc<Metrics>) -> Self {
        MeteredStore { inner, metrics }
    }

    fn timed<'a, T: Send + 'a>(
        &self,
        op: &'static str,
        fut: StoreFuture<'a, T>,
    ) -> StoreFuture<'a, T> {
        let m = self.metrics.clone();
        Box::pin(async move {
            let t = Instant::now();
            let r = fut.await;
            m.store_write(op, t.elapsed(), r.is_ok());
            r
        })
    }
}

impl super::FlowStore for MeteredStore {
    fn put_step<'a>(
        &'a self,
        run: (&'a str, &'a str, u32),
        name: &'a str,
        value: crate::job::Json,
    ) -> StoreFuture<'a, ()> {
        self.timed("step", self.inner.put_step(run, name, value))
    }

    fn send_event<'a>(
        &'a self,
        target: &'a super::EventTarget,
        name: &'a str,
        payload: crate::job::Json,
        by: Option<&'a str>,
    ) -> StoreFuture<'a, Arc<JobRecord>> {
        self.timed("event", self.inner.send_event(target, name, payload, by))
    }

    fn get_many<'a>(&'a self, ids: &'a [String]) -> StoreFuture<'a, Vec<Option<Arc<JobRecord>>>> {
        self.inner.get_many(ids)
    }

    fn children<'a>(&'a self, parent: &'a str) -> StoreFuture<'a, Vec<Arc<JobRecord>>> {
        self.inner.children(parent)
    }
}

impl JobStore for MeteredStore {
    fn insert_many(
        &self,
        jobs: Vec<NewJob>,
        claim: Option<Claimant>,
    ) -> StoreFuture<'_, InsertOutcome> {
        self.timed("insert", self.inner.insert_many(jobs, claim))
    }

    fn start<'a>(
        &'a self,
        job_id: &'a str,
        claim: Option<Claimant>,
        by: Option<&'a str>,
    ) -> StoreFuture<'a, StartOutcome> {
        self.timed("start", self.inner.start(job_id, claim, by))
    }

    fn claim(&self, claimant: Claimant) -> StoreFuture<'_, Vec<Arc<JobRecord>>> {
        self.timed("claim", self.inner.claim(claimant))
    }

    fn has_due<'a>(&'a self, job_types: &'a [String]) -> StoreFuture<'a, bool> {
        self.inner.has_due(job_types)
    }

    fn heartbeat<'a>(
        &'a self,
        host: &'a str,
        lease: Duration,
        runs: &'a [RunRef],
    ) -> StoreFuture<'a, usize> {
        self.timed("heartbeat", self.inner.heartbeat(host, lease, runs))
    }

    fn progress(&self, job_id: &str, attempt: u32, progress: u8, description: &str) {
        self.inner.progress(job_id, attempt, progress, description)
    }

    fn finish_many(
        &self,
        ends: Vec<Finish>,
        retry: RetryPolicy,
    ) -> StoreFuture<'_, Vec<Option<Arc<JobRecord>>>> {
        self.timed("finish", self.inner.finish_many(ends, retry))
    }

    fn request_stop<'a>(
        &'a self,
        job_id: &'a str,
        kind: StopKind,
        by: Option<&'a str>,
    ) -> StoreFuture<'a, StopOutcome> {
        self.timed("stop", self.inner.request_stop(job_id, kind, by))
    }

    fn rescue(&self, now: i64, retry: RetryPolicy) -> StoreFuture<'_, Vec<Arc<JobRecord>>> {
        self.timed("rescue", self.inner.rescue(now, retry))
    }

    fn get<'a>(&'a self, job_id: &'a str) -> StoreFuture<'a, Option<Arc<JobRecord>>> {
        self.inner.get(job_id)
    }

    fn list(&self, query: ListQuery) -> StoreFuture<'_, Page> {
        self.inner.list(query)
    }

    fn counts(&self) -> StoreFuture<'_, Counts> {
        self.inner.counts()
    }

    fn next_scheduled(&self) -> StoreFuture<'_, Option<i64>> {
        self.inner.next_scheduled()
    }

    fn purge<'a>(&'a self, rules: &'a Retention, now: i64) -> StoreFuture<'a, Vec<String>> {
        self.timed("purge", self.inner.purge(rules, now))
    }

    fn compact(&self) -> StoreFuture<'_, bool> {
        self.timed("compact", self.inner.compact())
    }

    fn flush(&self) -> StoreFuture<'_, ()> {
        self.inner.flush()
    }

    fn stats(&self) -> StoreStats {
        self.inner.stats()
    }

    fn capabilities(&self) -> Capabilities {
        self.inner.capabilities()
    }
}

impl StoreChannels for MeteredStore {
    fn stop_requests(&self, host: &str) -> mpsc::UnboundedReceiver<StopRequest> {
        self.inner.stop_requests(host)
    }

    fn subscribe(&self) -> broadcast::Receiver<Change> {
        self.inner.subscribe()
    }

    fn runnable(&self) -> Arc<tokio::sync::Notify> {
        self.inner.runnable()
    }

    fn schedules_changed(&self) -> Arc<tokio::sync::Notify> {
        self.inner.schedules_changed()
    }
}

impl QueueStore for MeteredStore {
    fn queues(&self) -> StoreFuture<'_, Vec<QueueRecord>> {
        self.inner.queues()
    }

    fn put_queue(&self, rec: QueueRecord) -> StoreFuture<'_, QueueRecord> {
        self.inner.put_queue(rec)
    }

    fn change_queue<'a>(
        &'a self,
        name: &'a str,
        change: crate::store::QueueChange,
    ) -> StoreFuture<'a, Option<QueueRecord>> {
        self.inner.change_queue(name, change)
    }

    fn queue_specs(&self) -> Arc<std::collections::HashMap<String, crate::limits::QueueSpec>> {
        self.inner.queue_specs()
    }

    fn queue_depths(&self) -> StoreFuture<'_, Vec<QueueDepth>> {
        self.inner.queue_depths()
    }

    fn rate_reopen<'a>(&'a self, buckets: &'a [String]) -> StoreFuture<'a, Option<i64>> {
        self.inner.rate_reopen(buckets)
    }
}

impl ScheduleStore for MeteredStore {
    fn schedules(&self) -> StoreFuture<'_, Vec<ScheduleRecord>> {
        self.inner.schedules()
    }

    fn put_schedule(
        &self,
        rec: ScheduleRecord,
        mode: PutSchedule,
    ) -> StoreFuture<'_, ScheduleRecord> {
        self.inner.put_schedule(rec, mode)
    }

    fn delete_schedule<'a>(&'a self, name: &'a str) -> StoreFuture<'a, Option<ScheduleRecord>> {
        self.inner.delete_schedule(name)
    }

    fn fire(&self, firings: Vec<Firing>) -> StoreFuture<'_, Vec<Fired>> {
        self.timed("fire", self.inner.fire(firings))
    }
}

impl Cluster for MeteredStore {
    fn announce<'a>(
        &'a self,
        host: &'a str,
        job_types: &'a [String],
        url: Option<&'a str>,
    ) -> StoreFuture<'a, ()> {
        self.inner.announce(host, job_types, url)
    }

    fn hosts(&self) -> StoreFuture<'_, Vec<HostInfo>> {
        self.inner.hosts()
    }

    fn lead<'a>(&'a self, host: &'a str, ttl: Duration) -> StoreFuture<'a, bool> {
        self.inner.lead(host, ttl)
    }
}
