//! The PostgreSQL job store: several hosts, one queue.
//!
//! Why this shape: every host applies the same pure transitions ([`super::transitions`]) as
//! the local store, to rows it has locked (`SELECT … FOR UPDATE`), inside one transaction per
//! operation; a commit is the durability point. Claims take runnable rows with
//! `FOR UPDATE SKIP LOCKED`, so hosts never wait on each other's claims and a job is claimed
//! once. The whole record is kept as JSON text beside the columns the queries filter and order
//! on (status, type, priority, schedule, host, lease, unique key), so a record round-trips
//! exactly and the indexes stay small.
//!
//! Hosts learn of each other's changes through LISTEN/NOTIFY on one channel per schema:
//! `runnable` wakes idle producers when jobs are inserted, started or retried, and `stop`
//! carries a stop request to the host that runs the job. A notification can be lost (the
//! listener reconnects after a dropped connection): the producer also polls every second, and a
//! stop request is recorded on the row, so the run's end records the stop whatever happened to
//! the notification. Behind PgBouncer in transaction pooling mode LISTEN does not work: point
//! `--store` at PostgreSQL itself (or a session-pooled port).

mod committer;
mod migrate;
mod notify;
mod queues;
mod reader;
mod rows;
mod schedules;
mod url;

pub use url::redact;

use super::transitions::{self, Stop};
use super::{
    Capabilities, Change, Claimant, Cluster, Counts, Finish, InsertOutcome, Inserted, JobStore,
    ListQuery, NewJob, Order, Page, Retention, RetryPolicy, RunRef, StartOutcome, StopOutcome,
    StopRequest, StoreChannels, StoreError, StoreFuture,
};
use crate::job::{JobRecord, Status, StopKind, now_micros};
use crate::store::{ConfigError, StoreStats};
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::{Notify, broadcast, mpsc};
use tokio_postgres::NoTls;

use super::channels::Channels;
use migrate::migrate_with;
use notify::*;
use rows::*;

/// Settings of the PostgreSQL store.
#[derive(Debug, Clone)]
pub struct PgConfig {
    /// `postgres://user@host:port/db`.
    pub url: String,
    /// The schema the tables live in (several queues, or tests, share one database).
    pub schema: String,
    /// Connections in the pool.
    pub pool_size: usize,
    /// The longest any one operation may take (getting a connection included) before it fails
    /// as unavailable: a database that stops answering (a network partition, a hung server)
    /// must not hang the host's calls or its heartbeat.
    pub op_timeout: Duration,
    /// `idle_in_transaction_session_timeout` of the host's connections: if the host is cut off
    /// in the middle of a transaction, the database ends it after this long and releases its
    /// row locks, so that another host can rescue the jobs once their leases end.
    pub idle_tx_timeout: Duration,
}

impl PgConfig {
    /// The default operation timeout.
    pub const DEFAULT_OP_TIMEOUT: Duration = Duration::from_secs(10);

    /// A configuration with the default timeouts.
    pub fn new(url: impl Into<String>, schema: impl Into<String>, pool_size: usize) -> Self {
        PgConfig {
            url: url.into(),
            schema: schema.into(),
            pool_size,
            op_timeout: Self::DEFAULT_OP_TIMEOUT,
            idle_tx_timeout: Duration::from_secs(15),
        }
    }
}

type FastMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;
type FastSet<K> = std::collections::HashSet<K, foldhash::fast::RandomState>;

struct Inner {
    pool: Pool,
    /// See [`PgConfig::op_timeout`].
    op_timeout: Duration,
    /// The quoted schema name, for SQL text.
    s: String,
    /// The NOTIFY channel of this schema.
    channel: String,
    /// The feed, the stop requests, the runnable signal.
    channels: Channels,
    stats: Mutex<StoreStats>,
    hasher: foldhash::fast::RandomState,
    listener: Mutex<Option<tokio::task::JoinHandle<()>>>,
    /// This store's tag on its `changed` notifications (to skip its own).
    origin: u64,
    /// Until when (µs) another host is taken to be live, so that this one names its changes
    /// to it (`changed`); `i64::MAX` until the first announcement has looked.
    others_until: std::sync::atomic::AtomicI64,
    /// Where writes are grouped into shared transactions ([`committer`]).
    lanes: committer::Lanes,
    /// Where single-job reads are batched ([`reader`]).
    reads: reader::Reads,
    /// Commit tokens given out ([`PgStore::token`]).
    tokens: std::sync::atomic::AtomicU64,
    /// The named queues' settings as this host last read them ([`queues`]).
    specs: queues::Specs,
}

/// See [`JobStore::claim_linger`]: about one claim's round trips and commit.
const CLAIM_LINGER: Duration = Duration::from_millis(2);

/// How long after its last word another host is taken to be live (it announces itself every
/// third of a lease).
const OTHERS_WINDOW: Duration = Duration::from_secs(300);

/// What a write transaction wrote, once its `COMMIT` went out: its transaction id, its value,
/// how many records (see [`PgStore::conclude`]).
type Sent<T> = Mutex<Option<(i64, T, usize)>>;

/// Where a transaction names the jobs it changed to the other hosts.
struct Tell {
    channel: String,
    origin: u64,
}

impl Drop for Inner {
    fn drop(&mut self) {
        if let Some(l) = lock(&self.listener).take() {
            l.abort();
        }
    }
}

/// The PostgreSQL job store. Cheap to clone.
#[derive(Clone)]
pub struct PgStore {
    inner: Arc<Inner>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn db(e: tokio_postgres::Error) -> StoreError {
    if e.is_closed()
        || e.as_db_error().is_none_or(|d| {
            // admin_shutdown, crash_shutdown, cannot_connect_now, connection failures
            matches!(d.code().code(), "57P01" | "57P02" | "57P03")
                || d.code().code().starts_with("08")
        })
    {
        return StoreError::Unavailable {
            reason: format!("database connection: {e}"),
            source: Some(Arc::new(e)),
        };
    }
    StoreError::Database {
        message: e
            .as_db_error()
            .map_or_else(|| e.to_string(), |d| d.message().to_string()),
        source: Arc::new(e),
    }
}

/// Whether a failed `COMMIT` was answered by the database (so the transaction rolled back),
/// rather than lost on the way (so it may have committed).
fn rolled_back(e: &tokio_postgres::Error) -> bool {
    !e.is_closed()
        && e.as_db_error().is_some_and(|d| {
            let code = d.code().code();
            !matches!(code, "57P01" | "57P02" | "57P03") && !code.starts_with("08")
        })
}

/// A lane answered a write with another kind's answer (it cannot: each answer is made from
/// its own write).
/// A scope's glob (`*`, `?`) as a `LIKE` pattern: `%` and `_` and the escape `\` taken
/// literally.
fn glob_to_like(glob: &str) -> String {
    let mut out = String::with_capacity(glob.len() + 4);
    for c in glob.chars() {
        match c {
            '*' => out.push('%'),
            '?' => out.push('_'),
            '%' | '_' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            c => out.push(c),
        }
    }
    out
}

fn mismatch() -> StoreError {
    StoreError::Unavailable {
        reason: "a grouped write was answered out of kind".into(),
        source: None,
    }
}

fn pool_err(e: deadpool_postgres::PoolError) -> StoreError {
    StoreError::Unavailable {
        reason: format!("no database connection: {e}"),
        source: Some(Arc::new(e)),
    }
}

/// A valid schema name: letters, digits and `_`, not starting with a digit.
fn check_schema(name: &str) -> Result<(), StoreError> {
    let ok = !name.is_empty()
        && name.len() <= 63
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !name.starts_with(|c: char| c.is_ascii_digit());
    if ok {
        Ok(())
    } else {
        Err(ConfigError::Schema(name.to_string()).into())
    }
}

impl PgStore {
    /// Connects, applies the migrations (under an advisory lock, so hosts starting together
    /// apply each once) and starts the listener.
    pub async fn open(cfg: PgConfig) -> Result<PgStore, StoreError> {
        check_schema(&cfg.schema)?;
        let mut pg: tokio_postgres::Config =
            cfg.url.parse().map_err(|e| ConfigError::Url(Arc::new(e)))?;
        if pg.get_application_name().is_none() {
            // So that an operator (or a test) can tell this queue's connections apart.
            pg.application_name(format!("queuemgr:{}", cfg.schema));
        }
        let idle = format!(
            "-c idle_in_transaction_session_timeout={}",
            cfg.idle_tx_timeout.as_millis().max(1)
        );
        let options = match pg.get_options() {
            Some(o) if !o.is_empty() => format!("{o} {idle}"),
            _ => idle,
        };
        pg.options(&options);
        pg.connect_timeout(cfg.op_timeout);
        // A peer that vanished without a word (a cut cable, a dropped route) is noticed by TCP
        // keep-alives rather than hours later; the listener then reconnects.
        pg.keepalives(true);
        pg.keepalives_idle(Duration::from_secs(10));
        let mgr = Manager::from_config(
            pg.clone(),
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(mgr)
            .max_size(cfg.pool_size.max(2))
            .build()
            .map_err(|e| ConfigError::Pool(Arc::new(e)))?;
        let s = format!("\"{}\"", cfg.schema);
        migrate_with(&pool, &cfg.schema, &s).await?;
        let store = PgStore {
            inner: Arc::new_cyclic(|me| Inner {
                lanes: committer::Lanes::start(me.clone(), committer::LANES),
                tokens: std::sync::atomic::AtomicU64::new(0),
                specs: queues::Specs::default(),
                reads: reader::Reads::start(me.clone()),
                pool,
                op_timeout: cfg.op_timeout,
                channel: format!("queuemgr_{}", cfg.schema),
                s,
                channels: Channels::new(),
                stats: Mutex::new(StoreStats {
                    backend: "postgres",
                    location: format!("{} (schema {})", redact(&cfg.url), cfg.schema),
                    ..StoreStats::default()
                }),
                hasher: foldhash::fast::RandomState::default(),
                listener: Mutex::new(None),
                origin: {
                    use std::hash::{BuildHasher, Hasher};
                    let mut h = foldhash::fast::RandomState::default().build_hasher();
                    h.write_u128(
                        std::time::SystemTime::now()
                            .duration_since(std::time::UNIX_EPOCH)
                            .map_or(0, |d| d.as_nanos()),
                    );
                    h.write_u32(std::process::id());
                    h.finish()
                },
                others_until: std::sync::atomic::AtomicI64::new(i64::MAX),
            }),
        };
        let (listening, ready) = tokio::sync::oneshot::channel();
        let handle = tokio::spawn(listen(Arc::downgrade(&store.inner), pg, Some(listening)));
        *lock(&store.inner.listener) = Some(handle);
        // Serve only once this host hears the others (a stop request sent before its LISTEN
        // would wait for the next heartbeat). Past the bound it starts anyway: the listener
        // keeps trying, and the producer's poll and the stop recorded on the row cover the gap.
        if tokio::time::timeout(LISTEN_WAIT, ready).await.is_err() {
            tracing::warn!(
                wait_secs = LISTEN_WAIT.as_secs(),
                "store listener not yet listening; starting without it"
            );
        }
        // Hosts that are up learn of this one before it serves, and name their changes to it.
        store.hello().await?;
        store.bounded(queues::reload(&store.inner)).await?;
        Ok(store)
    }

    /// Tells the other hosts that this one is up (`hello`): they name their changes to it.
    async fn hello(&self) -> Result<(), StoreError> {
        self.bounded(async {
            let c = self.inner.pool.get().await.map_err(pool_err)?;
            c.execute(
                "SELECT pg_notify($1, $2)",
                &[&self.inner.channel, &format!("hello {}", self.inner.origin)],
            )
            .await
            .map_err(db)?;
            Ok(())
        })
        .await
    }

    /// Applies the migrations only (`queuemgr migrate`).
    pub async fn migrate(cfg: &PgConfig) -> Result<usize, StoreError> {
        check_schema(&cfg.schema)?;
        let pg: tokio_postgres::Config =
            cfg.url.parse().map_err(|e| ConfigError::Url(Arc::new(e)))?;
        let mgr = Manager::from_config(pg, NoTls, ManagerConfig::default());
        let pool = Pool::builder(mgr)
            .max_size(1)
            .build()
            .map_err(|e| ConfigError::Pool(Arc::new(e)))?;
        migrate_with(&pool, &cfg.schema, &format!("\"{}\"", cfg.schema)).await
    }

    /// Drops the schema and everything in it (tests clean up with this).
    pub async fn drop_schema(&self) -> Result<(), StoreError> {
        let c = self.inner.pool.get().await.map_err(pool_err)?;
        c.batch_execute(&format!("DROP SCHEMA IF EXISTS {} CASCADE", self.inner.s))
            .await
            .map_err(db)
    }

    fn sql(&self, text: &str) -> String {
        text.replace("{s}", &self.inner.s)
    }

    fn unit(&self, job_id: &str, now: i64) -> f64 {
        super::jitter_unit(&self.inner.hasher, job_id, now)
    }

    fn wrote(&self, records: usize, ok: bool, err: Option<&StoreError>) {
        let mut st = lock(&self.inner.stats);
        if ok {
            st.appended += records as u64;
            st.syncs += 1;
            st.last_error = None;
        } else if let Some(e) = err {
            st.last_error = Some(e.to_string());
        }
    }

    /// Whether the other hosts are to be told of this host's changes (only while another host
    /// is live: a host alone spends no notification on them).
    fn tell(&self) -> Option<Tell> {
        let live = self
            .inner
            .others_until
            .load(std::sync::atomic::Ordering::Acquire)
            > now_micros();
        live.then(|| Tell {
            channel: self.inner.channel.clone(),
            origin: self.inner.origin,
        })
    }

    /// Publishes on this host's feed (the other hosts learn of changes by `changed`, sent in the
    /// writing transaction).
    fn publish(&self, jobs: &[Arc<JobRecord>]) {
        self.inner.channels.publish(jobs.iter().cloned());
    }

    /// Runs `f` in a transaction and commits; records the outcome in the stats.
    ///
    /// A commit whose answer is lost (the connection dropped, or the operation timed out,
    /// after `COMMIT` was sent) is not a failure that changed nothing: the transaction may
    /// have committed. Each transaction writes a token of its own (pipelined with `f`'s first
    /// statement), which is looked up on a new connection ([`PgStore::resolve`]): a commit that
    /// was made answers as a commit (so a claimed job is handed to its runner), one that was not
    /// as unavailable, and one that cannot be told in time as [`StoreError::OutcomeUnknown`].
    async fn tx<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        F: for<'t> FnOnce(
            &'t deadpool_postgres::Transaction<'t>,
        ) -> std::pin::Pin<
            Box<dyn std::future::Future<Output = Result<(T, usize), StoreError>> + Send + 't>,
        >,
    {
        // What a transaction whose commit was sent had written, until its commit answers.
        let sent: Sent<T> = Mutex::new(None);
        let token = self.token();
        let run = async {
            let mut c = self.inner.pool.get().await.map_err(pool_err)?;
            let tx = c.transaction().await.map_err(db)?;
            let mark = self.mark(&tx, token);
            let (xid, (v, n)) = futures::try_join!(mark, f(&tx))?;
            *lock(&sent) = Some((xid, v, n));
            match tx.commit().await {
                Ok(()) => Ok(()),
                Err(e) if rolled_back(&e) => {
                    // The database answered: the transaction was rolled back.
                    lock(&sent).take();
                    Err(db(e))
                }
                Err(e) => Err(db(e)),
            }
        };
        let r = self.bounded(run).await;
        self.conclude(r, &sent, token).await
    }

    /// Writes the transaction's commit token; its transaction id.
    async fn mark<C: deadpool_postgres::GenericClient + Sync>(
        &self,
        c: &C,
        token: i64,
    ) -> Result<i64, StoreError> {
        let stmt = c
            .prepare_cached(&self.sql(
                "INSERT INTO {s}.commits (token, at) VALUES ($1, $2) RETURNING txid_current()",
            ))
            .await
            .map_err(db)?;
        let row = c
            .query_one(&stmt, &[&token, &now_micros()])
            .await
            .map_err(db)?;
        Ok(row.get(0))
    }

    /// How a write transaction ended. `r` is how its run ended; `sent` holds what it wrote
    /// once its `COMMIT` went out (its id, its value, how many records). An error after the
    /// `COMMIT` went out that the database did not answer is resolved by the token
    /// ([`PgStore::lost_commit`]). Records the outcome in the stats.
    async fn conclude<T>(
        &self,
        r: Result<(), StoreError>,
        sent: &Sent<T>,
        token: i64,
    ) -> Result<T, StoreError> {
        let unsure = lock(sent).take();
        let r = match (r, unsure) {
            (Ok(()), Some((_, v, n))) => Ok((v, n)),
            (Ok(()), None) => Err(StoreError::Unavailable {
                reason: "the transaction's result went missing".into(),
                source: None,
            }),
            (Err(e), None) => Err(e),
            // The database answered with an error: the transaction was rolled back.
            (Err(e @ (StoreError::Database { .. } | StoreError::Record(_))), Some(_)) => Err(e),
            (Err(e), Some((xid, v, n))) => self.lost_commit(e, token, xid).await.map(|()| (v, n)),
        };
        match r {
            Ok((v, n)) => {
                self.wrote(n, true, None);
                Ok(v)
            }
            Err(e) => {
                if matches!(
                    e,
                    StoreError::Database { .. }
                        | StoreError::Record(_)
                        | StoreError::Unavailable { .. }
                        | StoreError::OutcomeUnknown { .. }
                ) {
                    self.wrote(0, false, Some(&e));
                }
                Err(e)
            }
        }
    }

    /// After the answer to a `COMMIT` was lost (`e`): `Ok` if the transaction that wrote
    /// `token` committed, `e` if it did not, [`StoreError::OutcomeUnknown`] if that cannot be
    /// told in time.
    async fn lost_commit(&self, e: StoreError, token: i64, xid: i64) -> Result<(), StoreError> {
        match self.resolve(token, xid).await {
            Some(true) => {
                tracing::warn!(xid, error = %e, "a commit's answer was lost; it was made");
                Ok(())
            }
            Some(false) => {
                tracing::warn!(xid, error = %e, "a commit's answer was lost; it was not made");
                Err(e)
            }
            None => {
                tracing::error!(xid, error = %e, "a commit's answer was lost, and whether it was made is not known");
                Err(StoreError::OutcomeUnknown {
                    reason: format!("the database was lost while it committed: {e}"),
                    source: Some(Arc::new(e)),
                })
            }
        }
    }

    /// A fresh commit token: this store's random origin and a counter, mixed.
    fn token(&self) -> i64 {
        use std::hash::{BuildHasher, Hasher};
        let n = self
            .inner
            .tokens
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut h = self.inner.hasher.build_hasher();
        h.write_u64(self.inner.origin);
        h.write_u64(n);
        h.finish() as i64
    }

    /// Whether the transaction that wrote `token` (with id `xid`) committed (`Some(true)`),
    /// did not (`Some(false)`), or cannot be told within the operation timeout (`None`).
    ///
    /// Asked on new connections until the database answers. First whether `xid` is still in
    /// progress (a session whose client is gone may still be committing): then again. Once it
    /// is not, a later snapshot shows the token if and only if the commit was made. The id
    /// alone cannot tell: after a crash, an id whose transaction left no WAL is given to
    /// another transaction, whose commit it would then report.
    async fn resolve(&self, token: i64, xid: i64) -> Option<bool> {
        let deadline = tokio::time::Instant::now() + self.inner.op_timeout;
        loop {
            let asked = tokio::time::timeout_at(deadline, async {
                let c = self.inner.pool.get().await.map_err(pool_err)?;
                let row = c
                    .query_one("SELECT txid_status($1) = 'in progress'", &[&xid])
                    .await
                    .map_err(db)?;
                if row.get::<_, Option<bool>>(0) == Some(true) {
                    return Ok(None);
                }
                let row = c
                    .query_one(
                        &self.sql("SELECT EXISTS (SELECT 1 FROM {s}.commits WHERE token = $1)"),
                        &[&token],
                    )
                    .await
                    .map_err(db)?;
                Ok::<Option<bool>, StoreError>(Some(row.get(0)))
            })
            .await;
            match asked {
                Ok(Ok(Some(made))) => return Some(made),
                Err(_) => return None,
                // In progress, or unreachable: again.
                Ok(_) => {}
            }
            if tokio::time::Instant::now() + Duration::from_millis(50) >= deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Runs one operation within [`PgConfig::op_timeout`]; past it the operation is dropped
    /// (its connection with it) and fails as unavailable.
    async fn bounded<T>(
        &self,
        op: impl std::future::Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        match tokio::time::timeout(self.inner.op_timeout, op).await {
            Ok(r) => r,
            Err(_) => Err(StoreError::Unavailable {
                reason: format!(
                    "the database did not answer within {:.1} s",
                    self.inner.op_timeout.as_secs_f64()
                ),
                source: None,
            }),
        }
    }
}

impl JobStore for PgStore {
    fn capabilities(&self) -> Capabilities {
        Capabilities {
            claim_linger: CLAIM_LINGER,
        }
    }

    fn insert_many(
        &self,
        jobs: Vec<NewJob>,
        claim: Option<Claimant>,
    ) -> StoreFuture<'_, InsertOutcome> {
        // Where a queue's settings may hold a claim back, only the producer's claim (which
        // takes the limits' lock) claims.
        let claim = claim.filter(|_| !self.inner.specs.limited());
        if jobs.iter().any(|j| j.concurrency_key.is_some()) {
            self.inner.specs.saw_keys(now_micros());
        }
        Box::pin(async move {
            match self
                .inner
                .lanes
                .submit(committer::Op::Insert { jobs, claim })
                .await?
            {
                committer::Done::Insert(o) => Ok(o),
                _ => Err(mismatch()),
            }
        })
    }

    fn start<'a>(
        &'a self,
        job_id: &'a str,
        claim: Option<Claimant>,
        by: Option<&'a str>,
    ) -> StoreFuture<'a, StartOutcome> {
        let op = committer::Op::Start {
            job_id: job_id.to_string(),
            claim: claim.filter(|_| !self.inner.specs.limited()),
            by: by.map(str::to_string),
        };
        Box::pin(async move {
            match self.inner.lanes.submit(op).await? {
                committer::Done::Start(o) => Ok(o),
                _ => Err(mismatch()),
            }
        })
    }

    fn claim(&self, claimant: Claimant) -> StoreFuture<'_, Vec<Arc<JobRecord>>> {
        Box::pin(async move {
            match self.commit_alone(committer::Op::Claim { claimant }).await? {
                committer::Done::Claim(jobs) => Ok(jobs),
                _ => Err(mismatch()),
            }
        })
    }

    fn has_due<'a>(&'a self, job_types: &'a [String]) -> StoreFuture<'a, bool> {
        Box::pin(self.bounded(async move {
            let c = self.inner.pool.get().await.map_err(pool_err)?;
            let stmt = c
                .prepare_cached(&self.sql(
                    "SELECT EXISTS (SELECT 1 FROM {s}.jobs WHERE status = 'PENDING' AND scheduled_at IS NOT NULL
                       AND scheduled_at <= $1 AND job_type = ANY($2))",
                ))
                .await
                .map_err(db)?;
            let row = c
                .query_one(&stmt, &[&now_micros(), &job_types])
                .await
                .map_err(db)?;
            Ok(row.get(0))
        }))
    }

    fn heartbeat<'a>(
        &'a self,
        host: &'a str,
        lease: Duration,
        runs: &'a [RunRef],
    ) -> StoreFuture<'a, usize> {
        let host = host.to_string();
        let runs: FastMap<String, u32> =
            runs.iter().map(|r| (r.job_id.clone(), r.attempt)).collect();
        Box::pin(async move {
            let s = self.inner.s.clone();
            let now = now_micros();
            let until = now.saturating_add(lease.as_micros() as i64);
            self.tx(move |tx| {
                Box::pin(async move {
                    tx.execute(
                        &format!("INSERT INTO {s}.hosts (host_id, seen_at) VALUES ($1, $2) ON CONFLICT (host_id) DO UPDATE SET seen_at = EXCLUDED.seen_at"),
                        &[&host, &now],
                    )
                    .await
                    .map_err(db)?;
                    if runs.is_empty() {
                        return Ok((0, 0));
                    }
                    let ids: Vec<&str> = runs.keys().map(String::as_str).collect();
                    let rows = lock_rows(tx, &s, &ids).await?;
                    // Only the runs this host holds: a row RUNNING under its name in another
                    // attempt, or that it never started, is left to lapse and be rescued.
                    let jobs: Vec<Arc<JobRecord>> = rows
                        .values()
                        .filter(|rec| {
                            runs.get(&rec.job_id)
                                .is_some_and(|&a| transitions::in_run(rec, &host, a))
                        })
                        .map(|rec| Arc::new(transitions::extend_lease(rec, until)))
                        .collect();
                    upsert(tx, &s, &jobs, None).await?;
                    let n = jobs.len();
                    Ok((n, n))
                })
            })
            .await
        })
    }

    fn progress(&self, job_id: &str, attempt: u32, progress: u8, description: &str) {
        let store = self.clone();
        let job_id = job_id.to_string();
        let description = description.to_string();
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            return;
        };
        rt.spawn(async move {
            let s = store.inner.s.clone();
            let tell = store.tell();
            let now = now_micros();
            let r = store
                .tx(move |tx| {
                    Box::pin(async move {
                        let mut rows = lock_rows(tx, &s, &[job_id.as_str()]).await?;
                        let Some(rec) = rows.remove(&job_id) else {
                            return Ok((None, 0));
                        };
                        if rec.status != Status::Running || rec.attempt != attempt {
                            return Ok((None, 0));
                        }
                        let next =
                            Arc::new(transitions::progress(&rec, progress, &description, now));
                        upsert(tx, &s, std::slice::from_ref(&next), tell.as_ref()).await?;
                        Ok((Some(next), 1))
                    })
                })
                .await;
            // Best effort: a lost progress record only leaves a stale percentage.
            if let Ok(Some(job)) = r {
                store.publish(&[job]);
            }
        });
    }

    fn finish_many(
        &self,
        ends: Vec<Finish>,
        retry: RetryPolicy,
    ) -> StoreFuture<'_, Vec<Option<Arc<JobRecord>>>> {
        let now = now_micros();
        let units: Vec<f64> = ends.iter().map(|e| self.unit(&e.job_id, now)).collect();
        Box::pin(async move {
            match self
                .inner
                .lanes
                .submit(committer::Op::Finish { ends, retry, units })
                .await?
            {
                committer::Done::Finish(o) => Ok(o),
                _ => Err(mismatch()),
            }
        })
    }

    fn request_stop<'a>(
        &'a self,
        job_id: &'a str,
        kind: StopKind,
        by: Option<&'a str>,
    ) -> StoreFuture<'a, StopOutcome> {
        let op = committer::Op::Stop {
            job_id: job_id.to_string(),
            kind,
            by: by.map(str::to_string),
        };
        Box::pin(async move {
            match self.inner.lanes.submit(op).await? {
                committer::Done::Stop(o) => Ok(o),
                _ => Err(mismatch()),
            }
        })
    }

    fn rescue(&self, now: i64, retry: RetryPolicy) -> StoreFuture<'_, Vec<Arc<JobRecord>>> {
        Box::pin(async move {
            let s = self.inner.s.clone();
            let tell = self.tell();
            let channel = self.inner.channel.clone();
            let hasher = self.inner.hasher.clone();
            let jobs = self
                .tx(move |tx| {
                    Box::pin(async move {
                        let rows_found = tx
                            .query(
                                &format!("SELECT record FROM {s}.jobs WHERE status = 'RUNNING' AND lease_until < $1 FOR UPDATE SKIP LOCKED"),
                                &[&now],
                            )
                            .await
                            .map_err(db)?;
                        let mut jobs = Vec::with_capacity(rows_found.len());
                        let mut ended = Vec::new();
                        let mut rows: FastMap<String, Arc<JobRecord>> = FastMap::default();
                        for row in rows_found {
                            let rec = parse(row.get(0))?;
                            let unit = super::jitter_unit(&hasher, &rec.job_id, now);
                            let next = Arc::new(transitions::rescue(&rec, now, retry, unit));
                            if !transitions::ended_waiters(Some(&rec), &next).is_empty() {
                                ended.push(next.clone());
                            }
                            rows.insert(next.job_id.clone(), next.clone());
                            jobs.push(next);
                        }
                        // The jobs that wait on those it ended (parents, dependents) are told
                        // in the same transaction (see the committer's group).
                        jobs.extend(tell_waiters(tx, &s, &mut rows, ended, now).await?);
                        upsert(tx, &s, &jobs, tell.as_ref()).await?;
                        if jobs.iter().any(|r| transitions::is_runnable(r)) {
                            notify(tx, &channel, "runnable").await?;
                        }
                        let n = jobs.len();
                        Ok((jobs, n))
                    })
                })
                .await?;
            self.publish(&jobs);
            Ok(jobs)
        })
    }

    fn get<'a>(&'a self, job_id: &'a str) -> StoreFuture<'a, Option<Arc<JobRecord>>> {
        Box::pin(self.inner.reads.get(job_id))
    }

    fn list(&self, q: ListQuery) -> StoreFuture<'_, Page> {
        Box::pin(self.bounded(async move {
            let c = self.inner.pool.get().await.map_err(pool_err)?;
            let status = q.status.map(|s| s.as_str().to_string());
            let cursor: Option<i64> = q.cursor.as_deref().and_then(|c| c.parse().ok());
            let limit = q.limit.map_or(i64::MAX, |l| l as i64);
            let (cmp, dir) = match q.order {
                Order::Oldest => (">", "ASC"),
                Order::Newest => ("<", "DESC"),
            };
            // A key's scope as LIKE patterns (`NULL`: no limit).
            let like = |v: Vec<String>| {
                (!v.is_empty()).then(|| v.iter().map(|p| glob_to_like(p)).collect::<Vec<_>>())
            };
            let types = q.scope.as_ref().and_then(|sc| like(sc.types()));
            let queues = q.scope.as_ref().and_then(|sc| like(sc.queues()));
            let filter = "($1::text IS NULL OR status = $1) AND ($2::text IS NULL OR job_type = $2) \
                 AND ($3::text[] IS NULL OR job_type LIKE ANY($3)) AND ($4::text[] IS NULL OR queue LIKE ANY($4))";
            let rows = c
                .query(
                    &self.sql(&format!(
                        "SELECT seq, record FROM {{s}}.jobs WHERE {filter} AND ($5::int8 IS NULL OR seq {cmp} $5)
                         ORDER BY seq {dir} LIMIT $6"
                    )),
                    &[
                        &status,
                        &q.job_type,
                        &types,
                        &queues,
                        &cursor,
                        &limit.saturating_add(1),
                    ],
                )
                .await
                .map_err(db)?;
            let total: i64 = if q.job_type.is_none() && q.scope.is_none() {
                c.query_one(
                    &self.sql("SELECT coalesce(sum(n), 0)::int8 FROM {s}.job_counts WHERE $1::text IS NULL OR status = $1"),
                    &[&status],
                )
                .await
                .map_err(db)?
                .get(0)
            } else {
                c.query_one(
                    &self.sql(&format!("SELECT count(*) FROM {{s}}.jobs WHERE {filter}")),
                    &[&status, &q.job_type, &types, &queues],
                )
                .await
                .map_err(db)?
                .get(0)
            };
            let more = rows.len() as i64 > limit;
            let mut jobs = Vec::with_capacity(rows.len());
            let mut last = None;
            for row in rows.iter().take(limit.min(rows.len() as i64) as usize) {
                last = Some(row.get::<_, i64>(0));
                jobs.push(Arc::new(parse(row.get(1))?));
            }
            Ok(Page {
                jobs,
                total: total as usize,
                next_cursor: if more {
                    last.map(|l| l.to_string())
                } else {
                    None
                },
            })
        }))
    }

    fn counts(&self) -> StoreFuture<'_, Counts> {
        Box::pin(self.bounded(async move {
            let c = self.inner.pool.get().await.map_err(pool_err)?;
            let rows = c
                .query(
                    &self.sql(
                        "SELECT status, waiting, job_type, sum(n)::int8 FROM {s}.job_counts GROUP BY 1, 2, 3",
                    ),
                    &[],
                )
                .await
                .map_err(db)?;
            let mut out = Counts::default();
            for st in Status::ALL {
                out.by_status.insert(st.as_str(), 0);
            }
            for row in rows {
                let status: &str = row.get(0);
                let waiting: bool = row.get(1);
                let job_type: &str = row.get(2);
                let n = row.get::<_, i64>(3).max(0) as usize;
                if let Some(st) = Status::parse(status) {
                    *out.by_status.entry(st.as_str()).or_default() += n;
                    if n > 0 {
                        *out.by_type
                            .entry(job_type.to_string())
                            .or_default()
                            .entry(st.as_str())
                            .or_default() += n;
                    }
                    if st == Status::Pending {
                        if waiting {
                            out.waiting += n;
                        } else {
                            out.unstarted += n;
                        }
                    }
                }
                out.total += n;
            }
            Ok(out)
        }))
    }

    fn next_scheduled(&self) -> StoreFuture<'_, Option<i64>> {
        Box::pin(self.bounded(async move {
            let c = self.inner.pool.get().await.map_err(pool_err)?;
            let row = c
                .query_one(
                    &self.sql("SELECT least((SELECT min(scheduled_at) FROM {s}.jobs WHERE status = 'PENDING' AND scheduled_at IS NOT NULL AND scheduled_at > $1), (SELECT min(reopen) FROM {s}.rate_buckets WHERE reopen > $1))"),
                    &[&now_micros()],
                )
                .await
                .map_err(db)?;
            Ok(row.get::<_, Option<i64>>(0))
        }))
    }

    fn purge<'a>(&'a self, r: &'a Retention, now: i64) -> StoreFuture<'a, Vec<String>> {
        Box::pin(async move {
            let s = self.inner.s.clone();
            let cutoff =
                |ttl: Option<Duration>| ttl.map(|t| now.saturating_sub(t.as_micros() as i64));
            let (completed, error, stopped, deleted, pending) = (
                cutoff(r.completed_ttl),
                cutoff(r.error_ttl),
                cutoff(r.stopped_ttl),
                cutoff(r.deleted_ttl),
                cutoff(r.pending_ttl),
            );
            let max_terminal = r.max_terminal_jobs as i64;
            self.tx(move |tx| {
                Box::pin(async move {
                    let rows = tx
                        .query(
                            &format!(
                                "DELETE FROM {s}.jobs WHERE
                                   (status = 'COMPLETED' AND $1::int8 IS NOT NULL AND ended_at < $1)
                                OR (status = 'ERROR' AND $2::int8 IS NOT NULL AND ended_at < $2)
                                OR (status = 'STOPPED' AND $3::int8 IS NOT NULL AND ended_at < $3)
                                OR (status = 'DELETED' AND $4::int8 IS NOT NULL AND updated_at < $4)
                                OR (status = 'PENDING' AND scheduled_at IS NULL AND $5::int8 IS NOT NULL
                                    AND created_at < $5)
                                RETURNING job_id"
                            ),
                            &[&completed, &error, &stopped, &deleted, &pending],
                        )
                        .await
                        .map_err(db)?;
                    let mut gone: Vec<String> = rows.iter().map(|r| r.get(0)).collect();
                    let over = tx
                        .query(
                            &format!(
                                "DELETE FROM {s}.jobs WHERE job_id IN (
                                   SELECT job_id FROM {s}.jobs
                                   WHERE status IN ('COMPLETED', 'ERROR', 'STOPPED', 'DELETED')
                                   ORDER BY ended_at
                                   LIMIT greatest((SELECT coalesce(sum(n), 0) FROM {s}.job_counts WHERE status IN ('COMPLETED', 'ERROR', 'STOPPED', 'DELETED'))::int8 - $1, 0))
                                 RETURNING job_id"
                            ),
                            &[&max_terminal],
                        )
                        .await
                        .map_err(db)?;
                    gone.extend(over.iter().map(|r| r.get::<_, String>(0)));
                    // Commit tokens are looked up within seconds of their commit; an hour on,
                    // nobody asks.
                    tx.execute(
                        &format!("DELETE FROM {s}.commits WHERE at < $1"),
                        &[&now.saturating_sub(3_600_000_000)],
                    )
                    .await
                    .map_err(db)?;
                    // A rate bucket past its time is as good as none.
                    tx.execute(
                        &format!("DELETE FROM {s}.rate_buckets WHERE tat < $1"),
                        &[&now],
                    )
                    .await
                    .map_err(db)?;
                    let n = gone.len();
                    Ok((gone, n))
                })
            })
            .await
        })
    }

    fn compact(&self) -> StoreFuture<'_, bool> {
        // Every transition rewrites a job's row, so a queue makes dead rows fast, and a dead
        // row's index entries slow every claim down. Autovacuum may be off (it is on some
        // machines): the leader vacuums the queue's tables itself, at the maintenance interval.
        Box::pin(async move {
            let c = self.inner.pool.get().await.map_err(pool_err)?;
            // One statement per call: several in one call run as one transaction, and VACUUM
            // cannot run inside one.
            c.batch_execute(&self.sql("VACUUM (ANALYZE) {s}.jobs"))
                .await
                .map_err(db)?;
            c.batch_execute(&self.sql("VACUUM {s}.job_counts"))
                .await
                .map_err(db)?;
            c.batch_execute(&self.sql("VACUUM {s}.commits"))
                .await
                .map_err(db)?;
            c.batch_execute(&self.sql("VACUUM {s}.rate_buckets"))
                .await
                .map_err(db)?;
            Ok(true)
        })
    }

    fn flush(&self) -> StoreFuture<'_, ()> {
        // Every acknowledged change was committed.
        Box::pin(std::future::ready(Ok(())))
    }

    fn stats(&self) -> StoreStats {
        lock(&self.inner.stats).clone()
    }
}

impl StoreChannels for PgStore {
    fn stop_requests(&self, host: &str) -> mpsc::UnboundedReceiver<StopRequest> {
        self.inner.channels.stop_requests(host)
    }

    fn subscribe(&self) -> broadcast::Receiver<Change> {
        self.inner.channels.subscribe()
    }

    fn runnable(&self) -> Arc<Notify> {
        self.inner.channels.runnable()
    }

    fn schedules_changed(&self) -> Arc<Notify> {
        self.inner.channels.schedules_changed()
    }
}

impl Cluster for PgStore {
    fn announce<'a>(
        &'a self,
        host: &'a str,
        job_types: &'a [String],
        url: Option<&'a str>,
    ) -> StoreFuture<'a, ()> {
        Box::pin(self.bounded(async move {
            let c = self.inner.pool.get().await.map_err(pool_err)?;
            c.execute(
                &self.sql(
                    "INSERT INTO {s}.hosts (host_id, job_types, seen_at, url) VALUES ($1, $2, $3, $4)
                     ON CONFLICT (host_id) DO UPDATE SET job_types = EXCLUDED.job_types, seen_at = EXCLUDED.seen_at, url = EXCLUDED.url",
                ),
                &[&host, &job_types, &now_micros(), &url],
            )
            .await
            .map_err(db)?;
            // Whether this host is alone: then it tells nobody of its changes. A host that
            // comes up later says `hello` at once, so that nothing of this one is missed there.
            use std::sync::atomic::Ordering;
            let before = self.inner.others_until.load(Ordering::Acquire);
            let now = now_micros();
            let window = OTHERS_WINDOW.as_micros() as i64;
            let row = c
                .query_one(
                    &self.sql("SELECT count(*) FROM {s}.hosts WHERE host_id <> $1 AND seen_at > $2"),
                    &[&host, &now.saturating_sub(window)],
                )
                .await
                .map_err(db)?;
            let others: i64 = row.get(0);
            if others > 0 {
                self.inner
                    .others_until
                    .fetch_max(now.saturating_add(window), Ordering::AcqRel);
            } else {
                // Unless a `hello` came in meanwhile.
                let _ = self.inner.others_until.compare_exchange(
                    before,
                    0,
                    Ordering::AcqRel,
                    Ordering::Acquire,
                );
            }
            drop(c);
            // The queues' settings again, in case a notification was lost (a reconnect).
            let was = self.inner.specs.limited();
            queues::reload(&self.inner).await?;
            if self.inner.specs.limited() != was {
                self.inner.channels.wake();
            }
            self.hello().await
        }))
    }

    fn hosts(&self) -> StoreFuture<'_, Vec<super::HostInfo>> {
        Box::pin(self.bounded(async move {
            let c = self.inner.pool.get().await.map_err(pool_err)?;
            let rows = c
                .query(
                    &self.sql(
                        "SELECT host_id, job_types, seen_at, url FROM {s}.hosts ORDER BY host_id",
                    ),
                    &[],
                )
                .await
                .map_err(db)?;
            Ok(rows
                .iter()
                .map(|r| super::HostInfo {
                    host_id: r.get(0),
                    job_types: r.get(1),
                    seen_at: r.get(2),
                    url: r.get(3),
                })
                .collect())
        }))
    }

    fn lead<'a>(&'a self, host: &'a str, ttl: Duration) -> StoreFuture<'a, bool> {
        Box::pin(self.bounded(async move {
            let c = self.inner.pool.get().await.map_err(pool_err)?;
            let now = now_micros();
            let until = now.saturating_add(ttl.as_micros() as i64);
            let row = c
                .query_opt(
                    &self.sql(
                        "INSERT INTO {s}.leader AS l (name, host_id, expires_at) VALUES ('maintenance', $1, $2)
                         ON CONFLICT (name) DO UPDATE SET host_id = EXCLUDED.host_id, expires_at = EXCLUDED.expires_at
                         WHERE l.host_id = EXCLUDED.host_id OR l.expires_at < $3
                         RETURNING host_id",
                    ),
                    &[&host, &until, &now],
                )
                .await
                .map_err(db)?;
            Ok(row.is_some())
        }))
    }
}

impl super::FlowStore for PgStore {
    fn put_step<'a>(
        &'a self,
        run: (&'a str, &'a str, u32),
        name: &'a str,
        value: crate::job::Json,
    ) -> StoreFuture<'a, ()> {
        let op = committer::Op::Step {
            job_id: run.0.to_string(),
            host: run.1.to_string(),
            attempt: run.2,
            name: name.to_string(),
            value,
        };
        Box::pin(async move {
            match self.inner.lanes.submit(op).await? {
                committer::Done::Step => Ok(()),
                _ => Err(mismatch()),
            }
        })
    }

    fn send_event<'a>(
        &'a self,
        target: &'a super::EventTarget,
        name: &'a str,
        payload: crate::job::Json,
        by: Option<&'a str>,
    ) -> StoreFuture<'a, Arc<JobRecord>> {
        let op = committer::Op::Event {
            target: target.clone(),
            name: name.to_string(),
            payload,
            by: by.map(str::to_string),
        };
        Box::pin(async move {
            match self.inner.lanes.submit(op).await? {
                committer::Done::Event(job) => Ok(job),
                _ => Err(mismatch()),
            }
        })
    }

    fn get_many<'a>(&'a self, ids: &'a [String]) -> StoreFuture<'a, Vec<Option<Arc<JobRecord>>>> {
        Box::pin(async move {
            let mut found: FastMap<String, Arc<JobRecord>> = FastMap::default();
            for chunk in ids.chunks(10_000) {
                let refs: Vec<&str> = chunk.iter().map(String::as_str).collect();
                found.extend(self.read(&refs).await?);
            }
            Ok(ids.iter().map(|id| found.get(id).cloned()).collect())
        })
    }

    fn children<'a>(&'a self, parent: &'a str) -> StoreFuture<'a, Vec<Arc<JobRecord>>> {
        Box::pin(self.bounded(async move {
            let c = self.inner.pool.get().await.map_err(pool_err)?;
            let sql = self.sql("SELECT record FROM {s}.jobs WHERE parent = $1 ORDER BY seq");
            Ok(records(&c, &sql, &[&parent])
                .await?
                .into_iter()
                .map(Arc::new)
                .collect())
        }))
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn globs_become_like_patterns_with_literals_escaped() {
        assert_eq!(super::glob_to_like("report_*"), "report\\_%");
        assert_eq!(super::glob_to_like("a?c%"), "a_c\\%");
        assert_eq!(super::glob_to_like("x\\y"), "x\\\\y");
    }
}
