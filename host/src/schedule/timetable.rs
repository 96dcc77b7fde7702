//! A cron expression read in a time zone: the slots it names, as instants.
//!
//! Parsing and the walk from one slot to the next are croner's (POSIX/Vixie syntax, 5 or 6
//! fields, `@hourly`-style names, `L`, `W`, `#`); the zone is chrono-tz's IANA database. Across
//! DST changes croner follows the Open Cron Pattern Specification: a fixed time that falls in a
//! spring-forward gap runs once, at the first instant after the gap; a fixed time that occurs
//! twice on a fall-back day runs once, at its first occurrence; an interval pattern (`*/15 * *
//! * *`) keeps its rhythm in real time. The unit tests pin those cases.

use chrono::{DateTime, TimeZone, Utc};
use chrono_tz::Tz;
use croner::Cron;
use croner::parser::{CronParser, Seconds};

/// Why a schedule's timing cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TimetableError {
    /// The expression does not parse.
    #[error("cron expression '{cron}' is not valid: {source}")]
    Cron {
        /// The expression.
        cron: String,
        /// croner's reason.
        #[source]
        source: croner::errors::CronError,
    },
    /// The zone is not an IANA name.
    #[error("time zone '{0}' is not an IANA time zone name (e.g. UTC, Europe/Berlin)")]
    Zone(String),
}

/// A compiled expression in its zone.
///
/// It remembers its last few answers: schedules that share an expression and a zone share one
/// timetable on the leader, and those moved by the same look share a cursor, so a look at ten
/// thousand of them walks the calendar a handful of times, not forty thousand.
#[derive(Debug)]
pub struct Timetable {
    cron: Cron,
    tz: Tz,
    memo: std::sync::Mutex<Memo>,
}

/// The last answers of [`Timetable::next_after`]: `after` → the next slot.
#[derive(Debug, Default)]
struct Memo {
    entries: [(i64, Option<i64>); MEMO],
    len: usize,
    next: usize,
}

const MEMO: usize = 8;

impl Memo {
    fn get(&self, after: i64) -> Option<Option<i64>> {
        self.entries[..self.len]
            .iter()
            .find(|(a, _)| *a == after)
            .map(|(_, n)| *n)
    }

    fn put(&mut self, after: i64, next: Option<i64>) {
        self.entries[self.next] = (after, next);
        self.next = (self.next + 1) % MEMO;
        self.len = (self.len + 1).min(MEMO);
    }
}

impl Timetable {
    /// Reads `cron` (5 or 6 fields, or a name like `@daily`) in the zone named `tz`.
    pub fn parse(cron: &str, tz: &str) -> Result<Timetable, TimetableError> {
        let tz: Tz = tz
            .parse()
            .map_err(|_| TimetableError::Zone(tz.to_string()))?;
        let cron = CronParser::builder()
            .seconds(Seconds::Optional)
            .build()
            .parse(cron)
            .map_err(|source| TimetableError::Cron {
                cron: cron.to_string(),
                source,
            })?;
        Ok(Timetable {
            cron,
            tz,
            memo: Default::default(),
        })
    }

    /// The first slot strictly after `after` (µs since the epoch), or `None` if there is none
    /// (an expression that never matches again).
    pub fn next_after(&self, after: i64) -> Option<i64> {
        let mut memo = self.memo.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = memo.get(after) {
            return n;
        }
        let n = self.walk(after);
        memo.put(after, n);
        n
    }

    fn walk(&self, after: i64) -> Option<i64> {
        let t = DateTime::<Utc>::from_timestamp_micros(after)?;
        let local = self.tz.from_utc_datetime(&t.naive_utc());
        let next = self.cron.find_next_occurrence(&local, false).ok()?;
        Some(next.timestamp_micros())
    }

    /// The expression in words (for the dashboard and `list_schedules`).
    pub fn describe(&self) -> String {
        self.cron.describe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> i64 {
        DateTime::parse_from_rfc3339(s).unwrap().timestamp_micros()
    }

    fn slots(t: &Timetable, from: &str, to: &str) -> Vec<String> {
        let (mut c, end) = (at(from), at(to));
        let mut out = vec![];
        while let Some(n) = t.next_after(c) {
            if n > end {
                break;
            }
            out.push(
                DateTime::<Utc>::from_timestamp_micros(n)
                    .unwrap()
                    .to_rfc3339(),
            );
            c = n;
        }
        out
    }

    #[test]
    fn five_fields_six_fields_and_names_parse() {
        let t = Timetable::parse("*/15 * * * *", "UTC").unwrap();
        assert_eq!(
            slots(&t, "2026-01-01T00:00:00Z", "2026-01-01T00:31:00Z"),
            ["2026-01-01T00:15:00+00:00", "2026-01-01T00:30:00+00:00"]
        );
        let t = Timetable::parse("*/20 * * * * *", "UTC").unwrap();
        assert_eq!(
            slots(&t, "2026-01-01T00:00:00Z", "2026-01-01T00:01:00Z"),
            [
                "2026-01-01T00:00:20+00:00",
                "2026-01-01T00:00:40+00:00",
                "2026-01-01T00:01:00+00:00"
            ]
        );
        let t = Timetable::parse("@hourly", "UTC").unwrap();
        assert_eq!(
            slots(&t, "2026-01-01T00:00:00Z", "2026-01-01T02:00:00Z"),
            ["2026-01-01T01:00:00+00:00", "2026-01-01T02:00:00+00:00"]
        );
    }

    #[test]
    fn bad_expressions_and_zones_are_refused_with_their_reason() {
        let e = Timetable::parse("61 * * * *", "UTC").unwrap_err();
        assert!(e.to_string().contains("61 * * * *"), "{e}");
        let e = Timetable::parse("* * * * *", "Mars/Olympus").unwrap_err();
        assert!(e.to_string().contains("Mars/Olympus"), "{e}");
        assert!(Timetable::parse("", "UTC").is_err());
        assert!(Timetable::parse("* * *", "UTC").is_err());
    }

    /// A time zone moves the slot in real time: 09:00 in New York is 14:00 UTC in winter.
    #[test]
    fn a_zone_moves_the_slot() {
        let t = Timetable::parse("0 9 * * *", "America/New_York").unwrap();
        assert_eq!(
            slots(&t, "2026-01-05T00:00:00Z", "2026-01-06T00:00:00Z"),
            ["2026-01-05T14:00:00+00:00"]
        );
    }

    /// Spring forward (Berlin, 2026-03-29, 02:00 → 03:00): 02:30 does not exist that day; the
    /// slot runs once, at the first instant after the gap, and on the days around at 02:30.
    #[test]
    fn a_slot_in_the_spring_forward_gap_runs_once() {
        let t = Timetable::parse("30 2 * * *", "Europe/Berlin").unwrap();
        assert_eq!(
            slots(&t, "2026-03-28T00:00:00Z", "2026-03-31T00:00:00Z"),
            [
                "2026-03-28T01:30:00+00:00",
                "2026-03-29T01:00:00+00:00",
                "2026-03-30T00:30:00+00:00"
            ]
        );
    }

    /// Fall back (Berlin, 2026-10-25, 03:00 → 02:00): 02:30 happens twice; the slot runs once.
    #[test]
    fn a_slot_in_the_repeated_fall_back_hour_runs_once() {
        let t = Timetable::parse("30 2 * * *", "Europe/Berlin").unwrap();
        assert_eq!(
            slots(&t, "2026-10-24T00:00:00Z", "2026-10-27T00:00:00Z"),
            [
                "2026-10-24T00:30:00+00:00",
                "2026-10-25T00:30:00+00:00",
                "2026-10-26T01:30:00+00:00"
            ]
        );
    }

    /// An interval pattern keeps its rhythm in real time through the repeated hour: every 30
    /// minutes stays every 30 minutes (five slots in the two real hours from 00:00 to 02:00 UTC).
    #[test]
    fn an_interval_keeps_its_rhythm_through_fall_back() {
        let t = Timetable::parse("*/30 * * * *", "Europe/Berlin").unwrap();
        let s = slots(&t, "2026-10-24T23:59:00Z", "2026-10-25T02:00:00Z");
        assert_eq!(s.len(), 5, "{s:?}");
    }
}
