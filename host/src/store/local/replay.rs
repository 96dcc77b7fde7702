//! Opening the local store: the journal replayed into the table, and the runs its host left
//! RUNNING rescued.
//!
//! Why folded while parsed: a million jobs must be ready within two seconds of a restart. The
//! journal hands its records over in batches, in file order, while later chunks are still
//! being parsed on every core; each batch is folded straight into the table (the latest record
//! of a job wins, a purge forgets it) while a second thread counts records by status and type
//! and notes the few that may need an index.

use super::*;

impl LocalStore {
    /// Replays the journal. Runs found RUNNING belonged to a host process that died: they are
    /// rescued at once (retried if attempts remain, else STOPPED with `interrupted`).
    pub async fn open(
        journal: Arc<dyn Journal>,
        cfg: LocalConfig,
    ) -> Result<(LocalStore, OpenReport), StoreError> {
        let began = std::time::Instant::now();
        let now = now_micros();
        let mut state = State {
            jobs: FastMap::with_capacity_and_hasher(journal.replay_size_hint(), Default::default()),
            ..State::default()
        };
        // The journal hands its records over in batches while later ones are still being
        // parsed. Each batch is folded here, straight into the table (the latest record of a
        // job wins, a purge forgets it; `ids` keeps first-seen order), while a second thread
        // counts its records and notes those that may need an index (not ended, or holding a
        // unique key). Records the fold finds replaced or purged are taken out of the count
        // afterwards (a compacted journal has none), and only the noted ones are visited again.
        let mut batches: Vec<Arc<Vec<Arc<JobRecord>>>> = Vec::new();
        let mut ids: Vec<Option<String>> = Vec::with_capacity(state.jobs.capacity());
        let mut superseded: Vec<Arc<JobRecord>> = Vec::new();
        let (replayed, (tally, candidates)) = std::thread::scope(|scope| {
            let (to_tally, batches_rx) = std::sync::mpsc::channel::<Arc<Vec<Arc<JobRecord>>>>();
            let tally = scope.spawn(move || {
                let mut counters = Counters::default();
                let mut candidates = Vec::new();
                for (b, batch) in batches_rx.into_iter().enumerate() {
                    for (i, rec) in batch.iter().enumerate() {
                        if rec.event == Event::Purged {
                            continue;
                        }
                        counters.count(rec, 1);
                        if !rec.status.is_terminal() || rec.unique_key.is_some() {
                            candidates.push((b, i));
                        }
                    }
                }
                (counters, candidates)
            });
            let replayed = journal.replay_each(&mut |records| {
                let batch = Arc::new(records);
                let _ = to_tally.send(batch.clone());
                for rec in batch.iter() {
                    if rec.event == Event::Purged {
                        if let Some(e) = state.jobs.remove(rec.job_id.as_str()) {
                            ids[e.seq as usize] = None;
                            superseded.push(e.rec);
                        }
                        continue;
                    }
                    match state.jobs.entry(rec.job_id.clone()) {
                        std::collections::hash_map::Entry::Occupied(mut o) => {
                            let e = o.get_mut();
                            superseded.push(std::mem::replace(&mut e.rec, rec.clone()));
                            e.visible = Some(rec.clone());
                        }
                        std::collections::hash_map::Entry::Vacant(v) => {
                            let seq = ids.len() as u64;
                            ids.push(Some(rec.job_id.clone()));
                            v.insert(Entry {
                                rec: rec.clone(),
                                visible: Some(rec.clone()),
                                ver: 0,
                                visible_ver: 0,
                                seq,
                                claim: None,
                            });
                        }
                    }
                }
                batches.push(batch);
            });
            drop(to_tally);
            (replayed, tally.join().unwrap_or_default())
        });
        let report = replayed?;
        let read = began.elapsed();
        if report.repaired_tail || !report.skipped_lines.is_empty() {
            tracing::warn!(repaired_tail = report.repaired_tail,
                skipped = ?report.skipped_lines, "registry repaired at start");
        }
        state.counters = tally;
        for old in &superseded {
            state.count(Some(old), -1);
        }
        drop(superseded);
        // Sized for every record; a journal not compacted lately holds several per job.
        if state.jobs.len() < state.jobs.capacity() / 2 {
            state.jobs.shrink_to_fit();
        }
        let hasher = foldhash::fast::RandomState::default();
        let mut fixes = Vec::new();
        let n = state.jobs.len();
        let mut report = OpenReport {
            jobs: n,
            ..OpenReport::default()
        };
        for (b, i) in candidates {
            let rec = &batches[b][i];
            let Some(e) = state.jobs.get_mut(rec.job_id.as_str()) else {
                continue;
            };
            if !Arc::ptr_eq(&e.rec, rec) {
                continue;
            }
            let seq = e.seq;
            let mut latest = e.rec.clone();
            if latest.status == Status::Running {
                let u = unit(&hasher, &latest.job_id, now);
                latest = Arc::new(transitions::rescue(&latest, now, cfg.retry, u));
                fixes.push(latest.clone());
                report.rescued += 1;
            } else if latest.status == Status::Pending
                && latest.event == Event::Queued
                && latest.scheduled_at.is_none()
            {
                // A record from before schedules: it waited for a slot since then.
                let r = Arc::make_mut(&mut latest);
                r.scheduled_at = Some(r.updated_at);
            }
            if !Arc::ptr_eq(&e.rec, &latest) {
                let old = std::mem::replace(&mut e.rec, latest.clone());
                e.visible = Some(latest.clone());
                state.count(Some(&old), -1);
                state.count(Some(&latest), 1);
            }
            if transitions::is_runnable(&latest) {
                report.runnable += 1;
            }
            state.index(seq, &latest, now);
        }
        // A run found RUNNING that ends here (no attempts left) tells the jobs that wait on it
        // (its parent, its dependents), and those that end because of it theirs, as a store's
        // every other end does.
        let mut ended: Vec<Arc<JobRecord>> = fixes
            .iter()
            .filter(|r| r.status.is_terminal() && transitions::waiters(r).next().is_some())
            .cloned()
            .collect();
        while let Some(e) = ended.pop() {
            let waiters: Vec<String> = transitions::waiters(&e).map(str::to_string).collect();
            for w in waiters {
                let Some(rec) = state.jobs.get(&w).map(|x| x.rec.clone()) else {
                    continue;
                };
                let Some(next) = transitions::tell_waiter(&rec, &e, now) else {
                    continue;
                };
                let next = Arc::new(next);
                if !transitions::ended_waiters(Some(&rec), &next).is_empty() {
                    ended.push(next.clone());
                }
                state.count(Some(&rec), -1);
                state.count(Some(&next), 1);
                state.replace(&w, next.clone(), now);
                if let Some(x) = state.jobs.get_mut(&w) {
                    x.visible = Some(next.clone());
                }
                fixes.push(next);
            }
        }
        // Every record is referenced by the table now or is dead: dropping the list touches
        // each one (a reference count), so it is left to a thread of its own.
        let _ = std::thread::Builder::new()
            .name("replay-drop".into())
            .spawn(move || drop(batches));
        state.order = ids
            .into_iter()
            .enumerate()
            .filter_map(|(seq, id)| Some((seq as u64, id?)))
            .collect();
        let next_seq = state.order.last_key_value().map_or(0, |(seq, _)| seq + 1);
        tracing::info!(
            jobs = n,
            replay_ms = read.as_secs_f64() * 1e3,
            total_ms = began.elapsed().as_secs_f64() * 1e3,
            "job table built from the journal"
        );
        state.next_seq = next_seq;
        if !fixes.is_empty() {
            journal.append(fixes).await?;
        }
        let book = schedules::Book::open(
            cfg.schedules_file.clone(),
            state.jobs.values().map(|e| &e.rec),
        )?;
        let queues = queues::QueueBook::open(cfg.queues_file.clone())?;
        state.specs = queues.specs();
        let store = LocalStore {
            inner: Arc::new(Inner {
                schedules: tokio::sync::Mutex::new(book),
                queues: tokio::sync::Mutex::new(queues),
                state: Mutex::new(state),
                journal,
                channels: Channels::new(),
                cfg,
                hasher,
            }),
        };
        Ok((store, report))
    }
}
