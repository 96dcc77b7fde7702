//! LISTEN/NOTIFY between hosts: `runnable` wakes idle producers, `stop` carries a stop request
//! to the host that runs the job, `changed` names the jobs another host changed (for this
//! host's live feed), `hello` says a host is up. The listener reconnects after a dropped
//! connection; a lost notification is covered by the producer's poll and the stop recorded on
//! the row.

use super::*;

/// `changed <origin> ["id", …]` notifications, each under PostgreSQL's 8000-byte payload limit.
pub(super) fn changed_payloads(origin: u64, ids: &[&str]) -> Vec<String> {
    let head = format!("changed {origin} ");
    let mut out = Vec::new();
    let mut batch: Vec<&str> = Vec::new();
    let mut len = head.len() + 2;
    for id in ids {
        let n = serde_json::to_string(id).map_or(0, |s| s.len()) + 1;
        if n + head.len() + 2 > 7900 {
            continue; // an id too long to name; its watchers poll
        }
        if len + n > 7900 && !batch.is_empty() {
            out.push(format!(
                "{head}{}",
                serde_json::to_string(&batch).unwrap_or_default()
            ));
            batch.clear();
            len = head.len() + 2;
        }
        batch.push(id);
        len += n;
    }
    if !batch.is_empty() {
        out.push(format!(
            "{head}{}",
            serde_json::to_string(&batch).unwrap_or_default()
        ));
    }
    out
}

pub(super) async fn notify<C: deadpool_postgres::GenericClient + Sync>(
    tx: &C,
    channel: &str,
    payload: &str,
) -> Result<(), StoreError> {
    let stmt = tx
        .prepare_cached("SELECT pg_notify($1, $2)")
        .await
        .map_err(db)?;
    tx.execute(&stmt, &[&channel, &payload]).await.map_err(db)?;
    Ok(())
}

/// How long opening the store waits for its listener's first LISTEN.
pub(super) const LISTEN_WAIT: Duration = Duration::from_secs(5);

/// Follows the schema's channel on a connection of its own; reconnects after a loss.
/// `listening` is told once the first LISTEN is in place.
pub(super) async fn listen(
    inner: std::sync::Weak<Inner>,
    cfg: tokio_postgres::Config,
    mut listening: Option<tokio::sync::oneshot::Sender<()>>,
) {
    use futures::StreamExt;
    let mut wait = Duration::from_millis(100);
    loop {
        let Some(channel) = inner.upgrade().map(|i| i.channel.clone()) else {
            return;
        };
        match cfg.connect(NoTls).await {
            Ok((client, mut conn)) => {
                let (tx, mut rx) = mpsc::unbounded_channel();
                let driver = tokio::spawn(async move {
                    let mut stream = futures::stream::poll_fn(move |cx| conn.poll_message(cx));
                    while let Some(msg) = stream.next().await {
                        match msg {
                            Ok(tokio_postgres::AsyncMessage::Notification(n)) => {
                                if tx.send(n.payload().to_string()).is_err() {
                                    break;
                                }
                            }
                            Ok(_) => {}
                            Err(e) => {
                                tracing::warn!(error = %e, "store listener connection lost");
                                break;
                            }
                        }
                    }
                });
                if let Err(e) = client.batch_execute(&format!("LISTEN \"{channel}\"")).await {
                    tracing::warn!(error = %e, "LISTEN failed");
                    driver.abort();
                } else {
                    wait = Duration::from_millis(100);
                    if let Some(l) = listening.take() {
                        let _ = l.send(());
                    }
                    // After a (re)connect, something may have been missed: look for work.
                    if let Some(i) = inner.upgrade() {
                        i.channels.wake();
                    }
                    while let Some(payload) = rx.recv().await {
                        let Some(i) = inner.upgrade() else { return };
                        dispatch(i, &payload);
                    }
                    driver.abort();
                }
            }
            Err(e) => tracing::warn!(error = %e, "store listener cannot connect; retrying"),
        }
        tokio::time::sleep(wait).await;
        wait = (wait * 2).min(Duration::from_secs(5));
    }
}

pub(super) fn dispatch(inner: Arc<Inner>, payload: &str) {
    if payload == "runnable" {
        inner.channels.wake();
        return;
    }
    if payload == "schedules" {
        inner.channels.schedules_changed().notify_one();
        return;
    }
    if payload == "queues" {
        super::queues::reload_soon(inner);
        return;
    }
    if payload == "keyed" {
        // Another host added keyed jobs: this host's claims take keys in turn.
        inner.specs.saw_keys(now_micros());
        return;
    }
    if let Some(origin) = payload.strip_prefix("hello ") {
        // Another host is up: name this host's changes to it from now on.
        if origin.parse::<u64>().ok() != Some(inner.origin) {
            inner.others_until.fetch_max(
                now_micros().saturating_add(OTHERS_WINDOW.as_micros() as i64),
                std::sync::atomic::Ordering::AcqRel,
            );
        }
        return;
    }
    if let Some(rest) = payload.strip_prefix("changed ") {
        // Another host changed these jobs: read them and publish them here.
        let Some((origin, ids)) = rest.split_once(' ') else {
            return;
        };
        if origin.parse::<u64>().ok() == Some(inner.origin) {
            return;
        }
        let Ok(ids) = serde_json::from_str::<Vec<String>>(ids) else {
            return;
        };
        let bound = inner.op_timeout;
        let store = PgStore { inner };
        tokio::spawn(tokio::time::timeout(bound, async move {
            if let Ok(c) = store.inner.pool.get().await
                && let Ok(stmt) = c
                    .prepare_cached(
                        &store
                            .sql("SELECT record FROM {s}.jobs WHERE job_id = ANY($1) ORDER BY seq"),
                    )
                    .await
                && let Ok(rows) = c.query(&stmt, &[&ids]).await
            {
                let jobs: Vec<Arc<JobRecord>> = rows
                    .iter()
                    .filter_map(|r| parse(r.get(0)).ok().map(Arc::new))
                    .collect();
                store.publish(&jobs);
            }
        }));
        return;
    }
    if let Some(job_id) = payload.strip_prefix("ended ") {
        // A run another host ended after a stop request: publish it here too, so that a stop
        // call waiting on this host answers at once.
        if inner.channels.has_subscribers() {
            let store = PgStore { inner };
            let job_id = job_id.to_string();
            tokio::spawn(async move {
                if let Ok(Some(job)) = store.get(&job_id).await {
                    store.publish(&[job]);
                }
            });
        }
        return;
    }
    // "stop <kind> <attempt> <host> <job id>": the id last, as it may hold spaces.
    let mut parts = payload.splitn(5, ' ');
    if parts.next() != Some("stop") {
        return;
    }
    let (Some(kind), Some(attempt), Some(host), Some(job_id)) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return;
    };
    let kind = if kind == "delete" {
        StopKind::Delete
    } else {
        StopKind::Stop
    };
    let Ok(attempt) = attempt.parse() else { return };
    inner.channels.stop(
        host,
        StopRequest {
            job_id: job_id.to_string(),
            attempt,
            kind,
        },
    );
}

pub(super) fn stop_payload(job: &JobRecord, host: &str, kind: StopKind) -> String {
    let k = match kind {
        StopKind::Stop => "stop",
        StopKind::Delete => "delete",
    };
    format!("stop {k} {} {host} {}", job.attempt, job.job_id)
}
