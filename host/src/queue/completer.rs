//! The completer: records the ends of runs, many in one durable step.
//!
//! Why batch: at thousands of short jobs a second, one store write per job end would make the
//! store's sync the bottleneck. Ends queue up while the previous batch is being written; the
//! next write takes all of them (River's `jobcompleter` does the same). Up to
//! [`MAX_IN_FLIGHT`] batches are written at once: a batch that waited for the one before it to
//! be durable would wait for two syncs, and the local journal merges concurrent writes into
//! one sync anyway. A batch the store
//! refuses (a full disk, a lost database) is tried again until it lands; meanwhile no more
//! than the slot count of such ends free their slots early (the executor's `Slots`), so claims
//! stop, and if the host dies first the rescuer takes the runs back.

use crate::job::{ErrorInfo, ErrorKind};
use crate::runtime::Outcome;
use crate::store::{Finish, JobStore, RetryPolicy, RunEnd};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Semaphore, mpsc, oneshot};

/// Most ends in one write.
const MAX_BATCH: usize = 4096;

/// Most batches being written at once.
const MAX_IN_FLIGHT: usize = 4;

/// The ends of runs, as a job's record reads them.
pub(crate) fn run_end(outcome: Outcome, shutdown: bool) -> RunEnd {
    let error = |kind: ErrorKind, code: &str, message: String, retryable: bool| ErrorInfo {
        kind,
        code: code.to_string(),
        message,
        retryable,
    };
    let description = outcome.describe();
    let error = match outcome {
        Outcome::Completed(json) => {
            // Kept as the guest's own text; text that is not JSON is stored as a JSON string.
            return RunEnd::Completed(
                crate::job::Json::from_text(json)
                    .unwrap_or_else(|text| crate::job::Json::new(&serde_json::Value::String(text))),
            );
        }
        Outcome::Stopped => return RunEnd::Stopped { shutdown },
        Outcome::Failed(e) => error(ErrorKind::Failed, &e.code, e.message, e.retryable),
        Outcome::Trapped(m) => error(ErrorKind::Trapped, "TRAPPED", m, false),
        Outcome::StackOverflow => error(
            ErrorKind::StackOverflow,
            "STACK_OVERFLOW",
            description.clone(),
            false,
        ),
        Outcome::OutOfFuel => error(
            ErrorKind::OutOfFuel,
            "OUT_OF_FUEL",
            description.clone(),
            false,
        ),
        Outcome::OutOfMemory => error(
            ErrorKind::OutOfMemory,
            "OUT_OF_MEMORY",
            description.clone(),
            false,
        ),
        Outcome::OutOfTable => error(
            ErrorKind::OutOfTable,
            "OUT_OF_TABLE",
            description.clone(),
            false,
        ),
        Outcome::CapExceeded(cap) => error(
            ErrorKind::CapExceeded,
            "CAP_EXCEEDED",
            format!("the {cap} cap was hit"),
            false,
        ),
        Outcome::TimedOut => error(ErrorKind::TimedOut, "TIMEOUT", description.clone(), true),
    };
    RunEnd::Failed { error, description }
}

type Request = (Finish, oneshot::Sender<()>);

/// Hands run ends to the batching task.
#[derive(Clone)]
pub(crate) struct Completer {
    tx: mpsc::UnboundedSender<Request>,
}

impl Completer {
    /// Starts the batching task on the current runtime.
    pub(crate) fn start(store: Arc<dyn JobStore>, retry: RetryPolicy) -> Completer {
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(run(store, retry, rx));
        Completer { tx }
    }

    /// Records a run's end; returns once it is durable (or was refused by the compare-and-set).
    pub(crate) async fn record(&self, end: Finish) {
        let (ack, done) = oneshot::channel();
        if self.tx.send((end, ack)).is_ok() {
            let _ = done.await;
        }
    }
}

async fn run(
    store: Arc<dyn JobStore>,
    retry: RetryPolicy,
    mut rx: mpsc::UnboundedReceiver<Request>,
) {
    let in_flight = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
    loop {
        // A free writer first, then every end queued by then.
        let Ok(permit) = in_flight.clone().acquire_owned().await else {
            return;
        };
        let mut batch: Vec<Request> = Vec::new();
        if rx.recv_many(&mut batch, MAX_BATCH).await == 0 {
            return;
        }
        let store = store.clone();
        tokio::spawn(async move {
            record(&*store, retry, batch).await;
            drop(permit);
        });
    }
}

/// Writes one batch of ends until the store takes it, then acknowledges each.
async fn record(store: &dyn JobStore, retry: RetryPolicy, batch: Vec<Request>) {
    let ends: Vec<Finish> = batch.iter().map(|(f, _)| f.clone()).collect();
    let mut wait = Duration::from_millis(50);
    loop {
        match store.finish_many(ends.clone(), retry).await {
            Ok(recorded) => {
                let lost = recorded.iter().filter(|r| r.is_none()).count();
                if lost > 0 {
                    tracing::debug!(lost, "run ends not recorded: their runs were taken back");
                }
                break;
            }
            Err(e) => {
                tracing::error!(error = %e, runs = ends.len(), "could not record the end of runs; retrying");
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(Duration::from_secs(2));
            }
        }
    }
    for (_, ack) in batch {
        let _ = ack.send(());
    }
}
