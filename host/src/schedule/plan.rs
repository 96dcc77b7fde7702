//! What a schedule does when it is looked at: a pure function of the schedule, its timetable,
//! the time and whether its last job is still live.

use super::{CatchUp, Overlap, ScheduleRecord, Timetable};

/// A slot older than this when it is looked at was missed (no host was leading): the catch-up
/// policy decides. Younger slots are on time, whatever the policy.
pub const GRACE: i64 = 5_000_000;

/// At most this many slots are walked for one schedule in one look; a longer catch-up goes on
/// at the next look (at once).
pub const MAX_SLOTS_PER_LOOK: usize = 1_000;

/// What one look decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// The slots to enqueue a job for, oldest first.
    pub fire: Vec<i64>,
    /// The new cursor.
    pub cursor: i64,
    /// The slot kept waiting behind a live run (`overlap: queue`).
    pub queued: Option<i64>,
    /// Slots dropped by this look.
    pub skipped: u64,
    /// When to look again (µs): the next slot, or now if a catch-up was cut short.
    pub next: Option<i64>,
}

impl Plan {
    /// Whether the look changes the stored schedule.
    pub fn moves(&self, rec: &ScheduleRecord) -> bool {
        !self.fire.is_empty() || self.cursor != rec.cursor || self.queued != rec.queued
    }
}

/// Slots in `(after, until]`, oldest first, at most `max`; whether more remain.
fn walk(t: &Timetable, after: i64, until: i64, max: usize) -> (Vec<i64>, bool) {
    let mut out = Vec::new();
    let mut c = after;
    while let Some(n) = t.next_after(c) {
        if n > until {
            return (out, false);
        }
        if out.len() == max {
            return (out, true);
        }
        out.push(n);
        c = n;
    }
    (out, false)
}

/// The newest slot in `(after, until]`, if any. A timetable walks forward only (that is the
/// direction in which DST rules are defined), so it looks back from `until` in widening spans.
fn newest(t: &Timetable, after: i64, until: i64) -> Option<i64> {
    let mut span: i64 = 1_000_000;
    loop {
        let from = until.saturating_sub(span).max(after);
        let (slots, mut more) = walk(t, from, until, MAX_SLOTS_PER_LOOK);
        if let Some(&first) = slots.last() {
            let mut last = first;
            while more {
                let (rest, m) = walk(t, last, until, MAX_SLOTS_PER_LOOK);
                last = rest.last().copied().unwrap_or(last);
                more = m;
            }
            return Some(last);
        }
        if from == after {
            return None;
        }
        span = span.saturating_mul(8);
    }
}

/// Decides one look at `rec` at time `now` (µs); `last_live` says whether the job its last slot
/// enqueued is still PENDING or RUNNING.
pub fn plan(rec: &ScheduleRecord, t: &Timetable, now: i64, last_live: bool) -> Plan {
    let spec = &rec.spec;
    let idle = |cursor: i64, next: Option<i64>| Plan {
        fire: vec![],
        cursor,
        queued: rec.queued,
        skipped: 0,
        next,
    };
    if !spec.enabled {
        return idle(rec.cursor, None);
    }
    let window = i64::try_from(spec.catch_up_window_secs)
        .unwrap_or(i64::MAX)
        .saturating_mul(1_000_000);
    let late = now.saturating_sub(GRACE);
    let oldest = rec.cursor.max(now.saturating_sub(window));
    let mut skipped = 0u64;
    // Missed slots, by the catch-up policy.
    let (mut due, cut) = match spec.catch_up {
        CatchUp::All => walk(t, oldest, late, MAX_SLOTS_PER_LOOK),
        CatchUp::Latest | CatchUp::None => {
            let missed = newest(t, oldest, late);
            if missed.is_some() {
                skipped += 1;
            }
            (
                missed
                    .filter(|_| spec.catch_up == CatchUp::Latest)
                    .into_iter()
                    .collect(),
                false,
            )
        }
    };
    let cursor = if cut {
        // A long catch-up: the on-time slots wait for the next look (at once).
        *due.last().unwrap_or(&rec.cursor)
    } else {
        let (on_time, more) = walk(t, rec.cursor.max(late), now, MAX_SLOTS_PER_LOOK);
        if spec.catch_up == CatchUp::Latest && !on_time.is_empty() && !due.is_empty() {
            // The newest missed slot is enqueued only when no slot on time is.
            due.clear();
        } else if spec.catch_up == CatchUp::Latest && !due.is_empty() {
            skipped -= 1;
        }
        due.extend(&on_time);
        if more {
            *due.last().unwrap_or(&rec.cursor)
        } else {
            now.max(rec.cursor)
        }
    };
    // A look that finds no slot leaves the cursor where it was: there is nothing to write.
    let cursor = if due.is_empty() && skipped == 0 && rec.queued.is_none() {
        rec.cursor
    } else {
        cursor
    };
    let next = if cut { Some(now) } else { t.next_after(cursor) };
    match spec.overlap {
        Overlap::Allow => Plan {
            fire: due,
            cursor,
            queued: None,
            skipped,
            next,
        },
        Overlap::Skip => {
            let n = due.len() as u64;
            if last_live {
                Plan {
                    fire: vec![],
                    cursor,
                    queued: None,
                    skipped: skipped + n,
                    next,
                }
            } else {
                let fire: Vec<i64> = due.last().copied().into_iter().collect();
                Plan {
                    skipped: skipped + n.saturating_sub(1),
                    fire,
                    cursor,
                    queued: None,
                    next,
                }
            }
        }
        Overlap::Queue => {
            let mut candidates = due;
            if let Some(q) = rec.queued {
                candidates.insert(0, q);
            }
            let n = candidates.len() as u64;
            let newest = candidates.last().copied();
            if last_live {
                Plan {
                    fire: vec![],
                    cursor,
                    queued: newest,
                    skipped: skipped + n.saturating_sub(1),
                    next,
                }
            } else {
                Plan {
                    fire: newest.into_iter().collect(),
                    cursor,
                    queued: None,
                    skipped: skipped + n.saturating_sub(1),
                    next,
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::{Origin, ScheduleSpec};
    use super::*;

    const S: i64 = 1_000_000;
    /// 2026-01-01T00:00:00Z in µs.
    const T0: i64 = 1_767_225_600 * S;

    fn rec(cron: &str, overlap: Overlap, catch_up: CatchUp, cursor: i64) -> ScheduleRecord {
        let spec = ScheduleSpec {
            name: "s".into(),
            job_type: "noop".into(),
            params: Default::default(),
            cron: cron.into(),
            timezone: "UTC".into(),
            overlap,
            catch_up,
            catch_up_window_secs: 3600,
            enabled: true,
            priority: None,
            max_attempts: None,
        };
        ScheduleRecord::declared(spec, Origin::Api, cursor)
    }

    fn look(r: &ScheduleRecord, now: i64, live: bool) -> Plan {
        plan(r, &r.spec.timetable().unwrap(), now, live)
    }

    #[test]
    fn a_slot_on_time_fires_once_and_moves_the_cursor_to_now() {
        let r = rec("* * * * * *", Overlap::Allow, CatchUp::None, T0);
        let p = look(&r, T0 + S + 3_000, false);
        assert_eq!(p.fire, vec![T0 + S]);
        assert_eq!(p.cursor, T0 + S + 3_000);
        assert_eq!(p.next, Some(T0 + 2 * S));
        // Looked at again before the next slot: nothing.
        let mut r2 = r.clone();
        r2.cursor = p.cursor;
        let p2 = look(&r2, T0 + S + 500_000, false);
        assert!(p2.fire.is_empty());
        assert!(!p2.moves(&r2) || p2.cursor > r2.cursor);
    }

    #[test]
    fn before_its_slot_nothing_fires_and_nothing_is_written() {
        let r = rec("0 * * * *", Overlap::Allow, CatchUp::All, T0);
        let p = look(&r, T0 + 59 * S, false);
        assert!(p.fire.is_empty());
        assert!(!p.moves(&r), "{p:?}");
        assert_eq!(p.next, Some(T0 + 3600 * S));
    }

    #[test]
    fn catch_up_all_fires_every_missed_slot_in_the_window_oldest_first() {
        let r = rec("* * * * *", Overlap::Allow, CatchUp::All, T0);
        // Ten minutes down: ten slots, all late.
        let p = look(&r, T0 + 10 * 60 * S + 30 * S, false);
        assert_eq!(p.fire.len(), 10);
        assert_eq!(p.fire[0], T0 + 60 * S);
        assert!(p.fire.windows(2).all(|w| w[0] < w[1]));
        // A window of an hour: two hours down fire only the last hour's slots.
        let p = look(&r, T0 + 2 * 3600 * S + 30 * S, false);
        assert_eq!(p.fire.len(), 60);
    }

    #[test]
    fn a_long_catch_up_goes_on_at_the_next_look_without_doubling() {
        let mut r = rec("* * * * * *", Overlap::Allow, CatchUp::All, T0);
        let now = T0 + 2500 * S;
        let mut fired: Vec<i64> = vec![];
        for _ in 0..5 {
            let p = look(&r, now, false);
            fired.extend(&p.fire);
            r.cursor = p.cursor;
        }
        assert_eq!(fired.len(), 2500);
        let mut d = fired.clone();
        d.dedup();
        assert_eq!(d.len(), fired.len());
    }

    #[test]
    fn catch_up_none_drops_missed_slots_and_latest_fires_the_newest_once() {
        let r = rec("* * * * *", Overlap::Allow, CatchUp::None, T0);
        let p = look(&r, T0 + 10 * 60 * S + 30 * S, false);
        assert!(p.fire.is_empty());
        assert_eq!(p.skipped, 1);
        assert_eq!(p.cursor, T0 + 10 * 60 * S + 30 * S);
        let r = rec("* * * * *", Overlap::Allow, CatchUp::Latest, T0);
        let p = look(&r, T0 + 10 * 60 * S + 30 * S, false);
        assert_eq!(p.fire, vec![T0 + 10 * 60 * S]);
        // A missed slot and one on time: only the one on time.
        let p = look(&r, T0 + 10 * 60 * S + 2 * S, false);
        assert_eq!(p.fire, vec![T0 + 10 * 60 * S]);
    }

    #[test]
    fn skip_drops_slots_while_the_last_run_is_live() {
        let r = rec("* * * * * *", Overlap::Skip, CatchUp::None, T0);
        let p = look(&r, T0 + S, true);
        assert!(p.fire.is_empty());
        assert_eq!(p.skipped, 1);
        assert_eq!(p.cursor, T0 + S);
        let p = look(&r, T0 + S, false);
        assert_eq!(p.fire, vec![T0 + S]);
    }

    #[test]
    fn skip_never_fires_two_runs_at_once() {
        let r = rec("* * * * *", Overlap::Skip, CatchUp::All, T0);
        let p = look(&r, T0 + 10 * 60 * S + 30 * S, false);
        assert_eq!(p.fire, vec![T0 + 10 * 60 * S]);
        assert_eq!(p.skipped, 9);
    }

    #[test]
    fn queue_keeps_one_slot_behind_the_live_run_and_fires_it_when_it_ends() {
        let mut r = rec("* * * * * *", Overlap::Queue, CatchUp::None, T0);
        let p = look(&r, T0 + S, true);
        assert!(p.fire.is_empty());
        assert_eq!(p.queued, Some(T0 + S));
        r.cursor = p.cursor;
        r.queued = p.queued;
        // Two more slots while it runs: they fold into the one waiting.
        let p = look(&r, T0 + 3 * S, true);
        assert_eq!(p.queued, Some(T0 + 3 * S));
        assert_eq!(p.skipped, 2);
        r.cursor = p.cursor;
        r.queued = p.queued;
        // The run ends, long after: the waiting slot fires, though it is late.
        let p = look(&r, T0 + 3 * S + 100_000, false);
        assert_eq!(p.fire, vec![T0 + 3 * S]);
        assert_eq!(p.queued, None);
    }

    #[test]
    fn a_paused_schedule_does_nothing() {
        let mut r = rec("* * * * * *", Overlap::Allow, CatchUp::All, T0);
        r.spec.enabled = false;
        let p = look(&r, T0 + 100 * S, false);
        assert!(p.fire.is_empty());
        assert!(!p.moves(&r));
    }

    #[test]
    fn the_newest_slot_is_found_in_long_and_short_spans() {
        let t = super::super::Timetable::parse("0 0 1 1 *", "UTC").unwrap();
        // Yearly: the newest before 2026-06-01 is 2026-01-01.
        assert_eq!(
            newest(&t, T0 - 400 * 86_400 * S, T0 + 150 * 86_400 * S),
            Some(T0)
        );
        let t = super::super::Timetable::parse("* * * * * *", "UTC").unwrap();
        assert_eq!(newest(&t, T0, T0 + 5000 * S), Some(T0 + 5000 * S));
        assert_eq!(newest(&t, T0, T0), None);
    }
}
