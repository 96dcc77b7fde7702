//! Reads of single jobs, batched: the `get`s that arrive while another is being answered share
//! one `SELECT … WHERE job_id = ANY($1)`.
//!
//! Why: clients poll. At 64 clients each poll was a statement of its own, a round trip and a
//! wake-up of a database process, about as many statements as all the writes together. A read
//! is sent only after it was asked for, so it sees every commit acknowledged before it (no
//! read is served from memory: another host may have changed the job since).

use super::*;
use tokio::sync::oneshot;

/// Readers: statements in flight at once.
const READERS: usize = 2;

/// The most jobs one statement reads.
const BATCH: usize = 256;

type Answer = oneshot::Sender<Result<Option<Arc<JobRecord>>, StoreError>>;

/// The readers of one store.
pub(super) struct Reads {
    tx: mpsc::UnboundedSender<(String, Answer)>,
}

impl Reads {
    /// Starts the readers that read for `inner`'s store.
    pub(super) fn start(inner: std::sync::Weak<Inner>) -> Reads {
        let (tx, rx) = mpsc::unbounded_channel();
        let rx = Arc::new(tokio::sync::Mutex::new(rx));
        for _ in 0..READERS {
            tokio::spawn(reader(inner.clone(), rx.clone()));
        }
        Reads { tx }
    }

    /// The job's stored record, read with the others asked for meanwhile.
    pub(super) async fn get(&self, job_id: &str) -> Result<Option<Arc<JobRecord>>, StoreError> {
        let (answer, answered) = oneshot::channel();
        self.tx
            .send((job_id.to_string(), answer))
            .map_err(|_| StoreError::Closed)?;
        answered.await.map_err(|_| StoreError::Closed)?
    }
}

/// Takes every read waiting (up to [`BATCH`]), reads them in one statement, answers each.
async fn reader(
    inner: std::sync::Weak<Inner>,
    rx: Arc<tokio::sync::Mutex<mpsc::UnboundedReceiver<(String, Answer)>>>,
) {
    loop {
        let batch = {
            let mut rx = rx.lock().await;
            let Some(first) = rx.recv().await else { return };
            let mut batch = vec![first];
            while batch.len() < BATCH {
                match rx.try_recv() {
                    Ok(r) => batch.push(r),
                    Err(_) => break,
                }
            }
            batch
        };
        let Some(inner) = inner.upgrade() else {
            for (_, a) in batch {
                let _ = a.send(Err(StoreError::Closed));
            }
            return;
        };
        let store = PgStore { inner };
        let ids: Vec<&str> = batch.iter().map(|(id, _)| id.as_str()).collect();
        match store.read(&ids).await {
            Ok(found) => {
                for (id, a) in batch {
                    let _ = a.send(Ok(found.get(&id).cloned()));
                }
            }
            Err(e) => {
                for (_, a) in batch {
                    let _ = a.send(Err(e.clone()));
                }
            }
        }
    }
}

impl PgStore {
    /// The stored records of `ids` (those that exist), by id.
    pub(super) async fn read(
        &self,
        ids: &[&str],
    ) -> Result<FastMap<String, Arc<JobRecord>>, StoreError> {
        self.bounded(async {
            let c = self.inner.pool.get().await.map_err(pool_err)?;
            let sql = self.sql("SELECT record FROM {s}.jobs WHERE job_id = ANY($1)");
            Ok(records(&c, &sql, &[&ids])
                .await?
                .into_iter()
                .map(|rec| (rec.job_id.clone(), Arc::new(rec)))
                .collect())
        })
        .await
    }
}
