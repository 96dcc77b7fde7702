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
use crate::store::Store;
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
        Outcome::Suspended(s) => return suspended(s),
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

/// A suspension as the store records it.
fn suspended(s: crate::runtime::Suspension) -> RunEnd {
    use crate::job::Wait;
    use crate::runtime::Suspension;
    match s {
        Suspension::Children(ids) => RunEnd::Suspended {
            wait: Wait::Children {
                remaining: ids.len() as u32,
                of: ids.len() as u32,
            },
            awaiting: ids,
        },
        Suspension::Until(at) => RunEnd::Suspended {
            wait: Wait::Until { at },
            awaiting: Vec::new(),
        },
        Suspension::Event { name, until } => RunEnd::Suspended {
            wait: Wait::Event { name, until },
            awaiting: Vec::new(),
        },
    }
}

type Request = (Finish, oneshot::Sender<()>);

/// Hands run ends to the batching task.
#[derive(Clone)]
pub(crate) struct Completer {
    tx: mpsc::UnboundedSender<Request>,
}

impl Completer {
    /// Starts the batching task on the current runtime.
    pub(crate) fn start(store: Arc<dyn Store>, retry: RetryPolicy) -> Completer {
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

async fn run(store: Arc<dyn Store>, retry: RetryPolicy, mut rx: mpsc::UnboundedReceiver<Request>) {
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

#[cfg(test)]
mod tests {
    use super::{Completer, run_end};
    use crate::job::{ErrorKind, Status};
    use crate::runtime::{GuestError, Outcome};
    use crate::store::{Finish, RunEnd};
    use crate::testing;
    use std::time::Duration;

    /// Each way a run ends becomes the error kind, code and retryability a record keeps.
    #[test]
    fn outcomes_become_the_ends_a_record_keeps() {
        let guest = GuestError {
            code: "BAD_INPUT".into(),
            message: "no".into(),
            retryable: true,
        };
        for (outcome, kind, code, retryable) in [
            (Outcome::Failed(guest), ErrorKind::Failed, "BAD_INPUT", true),
            (
                Outcome::Trapped("x".into()),
                ErrorKind::Trapped,
                "TRAPPED",
                false,
            ),
            (
                Outcome::StackOverflow,
                ErrorKind::StackOverflow,
                "STACK_OVERFLOW",
                false,
            ),
            (
                Outcome::OutOfFuel,
                ErrorKind::OutOfFuel,
                "OUT_OF_FUEL",
                false,
            ),
            (
                Outcome::OutOfMemory,
                ErrorKind::OutOfMemory,
                "OUT_OF_MEMORY",
                false,
            ),
            (
                Outcome::OutOfTable,
                ErrorKind::OutOfTable,
                "OUT_OF_TABLE",
                false,
            ),
            (
                Outcome::CapExceeded("log"),
                ErrorKind::CapExceeded,
                "CAP_EXCEEDED",
                false,
            ),
            (Outcome::TimedOut, ErrorKind::TimedOut, "TIMEOUT", true),
        ] {
            let RunEnd::Failed { error, .. } = run_end(outcome, false) else {
                panic!("{kind} is a failure");
            };
            assert_eq!(
                (error.kind, error.code.as_str(), error.retryable),
                (kind, code, retryable)
            );
        }
        assert!(matches!(
            run_end(Outcome::Stopped, true),
            RunEnd::Stopped { shutdown: true }
        ));
        let RunEnd::Completed(json) = run_end(Outcome::Completed("not json".into()), false) else {
            panic!("completed");
        };
        assert_eq!(
            json.as_str(),
            "\"not json\"",
            "text that is not JSON is kept as a string"
        );
    }

    /// Ends recorded at once share batches, each acknowledged once durable; an end for a run
    /// that is no longer the job's (another attempt) changes nothing.
    #[tokio::test]
    async fn ends_are_recorded_in_batches_and_only_for_the_run_claimed() {
        let (store, _dir) = testing::store().await;
        let ids: Vec<String> = (0..20).map(|i| format!("c{i}")).collect();
        let jobs = ids.iter().map(|id| testing::job(id, true)).collect();
        store.insert_many(jobs, None).await.unwrap();
        let claimed = store
            .claim(testing::host(20, Duration::from_secs(30)))
            .await
            .unwrap();
        assert_eq!(claimed.len(), 20);
        let completer = Completer::start(store.clone(), testing::fast_retry());
        let ends = ids.iter().map(|id| {
            let completer = completer.clone();
            let end = Finish {
                job_id: id.clone(),
                host: "h1".into(),
                // c0's end names a run it is not in: refused.
                attempt: if id == "c0" { 2 } else { 1 },
                end: run_end(Outcome::Completed("{}".into()), false),
            };
            async move { completer.record(end).await }
        });
        futures::future::join_all(ends).await;
        for id in &ids {
            let job = store.get(id).await.unwrap().unwrap();
            let want = if id == "c0" {
                Status::Running
            } else {
                Status::Completed
            };
            assert_eq!(job.status, want, "{id}");
        }
    }
}
