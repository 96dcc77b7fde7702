//! Claim-linked commits: how a run can start while its claim is being synced.
//!
//! **The invariant:** no write of a job's run (its end, its progress, a stop, a heartbeat) is
//! stored unless the claim that started the run is stored, and none is shown (or sent to the
//! feed) before that claim. Every such write is linked after the claim's [`Commit`]
//! ([`Link::after`]): the journal refuses it if the claim's write failed. If the claim's write
//! fails, the claim is undone together with whatever its run wrote on top of it, in either
//! order of the undos, and the run is asked to stop. When the claim and its run's end become
//! durable in one sync, the claim is published first.
//!
//! Why: a short job's end then shares the claim's sync (or the next one) instead of waiting for
//! a sync of its own after it; without it the 64-client figure was 0.85× the build before the
//! job store (docs/benchmarks.md).

use super::*;

impl LocalStore {
    /// Enqueues the records of `applied` (under the table lock, so the journal keeps the
    /// table's order). A job whose claim is not yet known durable gets its record stored only
    /// if the claim is; the claims among `applied` are marked, for the writes that follow.
    pub(super) fn write(&self, s: &mut State, applied: &[Applied]) -> Durable {
        let mut after: Vec<Commit> = Vec::new();
        for a in applied {
            let Some(c) = s
                .jobs
                .get(&a.job_id)
                .and_then(|e| e.claim.as_ref())
                .map(|c| &c.commit)
            else {
                continue;
            };
            // Claims of one write share a commit: keep the list short without a set.
            if c.state() != CommitState::Durable && !after.last().is_some_and(|l| l.same(c)) {
                after.push(c.clone());
            }
        }
        let marks = applied.iter().any(|a| a.claim).then(Commit::new);
        if let Some(m) = &marks {
            for a in applied.iter().filter(|a| a.claim) {
                if let Some(e) = s.jobs.get_mut(&a.job_id) {
                    e.claim = Some(Box::new(PendingClaim {
                        commit: m.clone(),
                        rec: a.new.clone(),
                        ver: a.ver,
                    }));
                }
            }
        }
        let records = applied.iter().map(|a| a.new.clone()).collect();
        self.inner
            .journal
            .append_linked(records, Link { marks, after })
    }

    /// Hands the claims among `applied` to the claimant's runner, then settles the write: a
    /// run may start while its claim is being made durable. If the write fails, the claims are
    /// undone and their runs asked to stop (their ends are refused: they are stored only after
    /// the claim).
    pub(super) async fn settle_claims(
        &self,
        durable: Durable,
        applied: &[Applied],
        claimant: Option<&Claimant>,
    ) -> Result<(), StoreError> {
        let run = claimant.and_then(|c| c.run.as_ref().map(|r| (c, r)));
        if let Some((_, run)) = run {
            for a in applied.iter().filter(|a| a.claim) {
                run.hand(a.new.clone());
            }
        }
        let res = self.settle(durable, applied).await;
        if res.is_err()
            && let Some((c, _)) = run
        {
            for a in applied.iter().filter(|a| a.claim) {
                self.signal(&c.host, &a.new, StopKind::Stop);
            }
        }
        res
    }

    /// Awaits `durable`; then makes `applied` visible and publishes it, or undoes it.
    pub(super) async fn settle(
        &self,
        durable: Durable,
        applied: &[Applied],
    ) -> Result<(), StoreError> {
        match durable.await {
            Ok(()) => {
                self.publish(applied);
                Ok(())
            }
            Err(e) => {
                self.undo(applied);
                Err(e.into())
            }
        }
    }

    pub(super) fn publish(&self, applied: &[Applied]) {
        let mut changes = Vec::with_capacity(applied.len());
        {
            let mut s = lock(&self.inner.state);
            for a in applied {
                let Some(e) = s.jobs.get_mut(&a.job_id) else {
                    continue;
                };
                if e.visible_ver > a.ver {
                    continue;
                }
                // A run that started ahead of its claim's sync may end in the same sync, and its
                // end may be published first: the claim goes before it, so that readers of the
                // feed see the job's changes in order.
                let mut shown = Vec::with_capacity(2);
                if let Some(c) = e.claim.take_if(|c| c.ver <= a.ver)
                    && c.ver < a.ver
                    && c.ver > e.visible_ver
                    && c.commit.state() == CommitState::Durable
                {
                    shown.push((c.rec, c.ver));
                }
                shown.push((a.new.clone(), a.ver));
                for (rec, ver) in shown {
                    let old = e.visible.replace(rec.clone());
                    e.visible_ver = ver;
                    changes.push((old, rec));
                }
            }
            for (old, new) in &changes {
                s.count(old.as_deref(), -1);
                s.count(Some(new), 1);
            }
            // Sent under the lock: two publishes of one job (a claim and its run's end, durable
            // in one sync) reach the feed in the order they became visible.
            self.inner
                .channels
                .publish(changes.into_iter().map(|(_, job)| job));
        }
    }

    pub(super) fn undo(&self, applied: &[Applied]) {
        let now = now_micros();
        let mut s = lock(&self.inner.state);
        for a in applied.iter().rev() {
            let still = s.jobs.get(&a.job_id).is_some_and(|e| {
                // A failed claim takes with it whatever its run wrote on top: those writes were
                // stored only after it, so they failed too, whichever is undone first.
                Arc::ptr_eq(&e.rec, &a.new)
                    || (a.claim
                        && e.ver > a.ver
                        && e.rec.attempt == a.new.attempt
                        && e.rec.host == a.new.host)
            });
            if !still {
                continue;
            }
            if a.claim
                && let Some(e) = s.jobs.get_mut(&a.job_id)
            {
                e.claim = None;
            }
            match &a.prev {
                Some(prev) => {
                    s.replace(&a.job_id, prev.clone(), now);
                }
                None => {
                    if let Some(e) = s.jobs.remove(&a.job_id) {
                        s.unindex(e.seq, &e.rec);
                        s.order.remove(&e.seq);
                    }
                }
            }
        }
    }
}
