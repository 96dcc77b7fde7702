//! Named queues and concurrency keys: the model.
//!
//! Every job belongs to a queue (`default` unless it, or its type's manifest, names another)
//! and may carry a *concurrency key* (a tenant, a customer). A queue's settings say how many of
//! its jobs may run at once across every host (`concurrency`), how many with one key
//! (`key_concurrency`), the default priority of its jobs, and whether it is paused (nothing new
//! is claimed; running jobs go on).
//!
//! Why a module of its own beside [`crate::job`] and [`crate::schedule`]: the stores enforce the
//! settings inside their claims (the local table under its lock; PostgreSQL under one advisory
//! lock, so that two hosts cannot both take the last place), the queue layer declares them (API,
//! manifests) and the API shows them. The decision — may this job be claimed now, given what
//! runs — is [`Gate::admit`], a pure function of the settings and the running counts, so that
//! both backends decide alike and it is unit-tested without a store.

use crate::schedule::Origin;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

/// The queue of a job that names none.
pub const DEFAULT_QUEUE: &str = "default";

/// Longest queue name or concurrency key, in bytes.
pub const MAX_NAME_BYTES: usize = 200;

/// A queue's settings.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct QueueSpec {
    /// The queue's name.
    pub name: String,
    /// Most jobs of the queue running at once, across all hosts (`None`: no limit).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub concurrency: Option<u32>,
    /// Most jobs of the queue with one concurrency key running at once, across all hosts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_concurrency: Option<u32>,
    /// Most starts of the queue's jobs per period, across all hosts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate: Option<Rate>,
    /// Most starts of the queue's jobs with one concurrency key per period, across all hosts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_rate: Option<Rate>,
    /// The priority of the queue's jobs that set none (nor their type's manifest): a queue of
    /// higher priority is served first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<i32>,
    /// Nothing new is claimed from a paused queue; its running jobs go on.
    #[serde(default)]
    pub paused: bool,
}

impl QueueSpec {
    /// Settings that limit nothing.
    pub fn open(name: &str) -> QueueSpec {
        QueueSpec {
            name: name.to_string(),
            ..QueueSpec::default()
        }
    }

    /// Whether these settings hold any claim back (a limit, or a pause).
    pub fn limits(&self) -> bool {
        self.paused
            || self.concurrency.is_some()
            || self.key_concurrency.is_some()
            || self.rate.is_some()
            || self.key_rate.is_some()
    }
}

/// A rate limit: at most `limit` starts per `period_ms`, spread as the generic cell rate
/// algorithm spreads them (a burst of up to `limit` at once, then one every `period / limit`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rate {
    /// Starts per period (≥ 1).
    pub limit: u32,
    /// The period, milliseconds (≥ 1).
    pub period_ms: u64,
}

/// Why a rate is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("'{0}' is not a rate: write starts/period, e.g. 100/min, 10/s, 5000/h, 3/10s")]
pub struct RateError(pub String);

impl Rate {
    /// Parses `N/unit` or `N/Ku` (`100/min`, `10/s`, `5000/h`, `3/10s`, `1/day`).
    pub fn parse(text: &str) -> Result<Rate, RateError> {
        let err = || RateError(text.to_string());
        let (n, per) = text.trim().split_once('/').ok_or_else(err)?;
        let limit: u32 = n.trim().parse().map_err(|_| err())?;
        let per = per.trim();
        let split = per.find(|c: char| !c.is_ascii_digit()).ok_or_else(err)?;
        let (count, unit) = per.split_at(split);
        let count: u64 = if count.is_empty() {
            1
        } else {
            count.parse().map_err(|_| err())?
        };
        let unit_ms: u64 = match unit {
            "ms" => 1,
            "s" | "sec" | "second" => 1_000,
            "m" | "min" | "minute" => 60_000,
            "h" | "hour" => 3_600_000,
            "d" | "day" => 86_400_000,
            _ => return Err(err()),
        };
        let period_ms = count.checked_mul(unit_ms).ok_or_else(err)?;
        if limit == 0 || period_ms == 0 || period_ms > 366 * 86_400_000 {
            return Err(err());
        }
        Ok(Rate { limit, period_ms })
    }

    /// The rate as [`Rate::parse`] reads it.
    pub fn text(&self) -> String {
        let (n, unit) = match self.period_ms {
            p if p % 86_400_000 == 0 => (p / 86_400_000, "d"),
            p if p % 3_600_000 == 0 => (p / 3_600_000, "h"),
            p if p % 60_000 == 0 => (p / 60_000, "min"),
            p if p % 1_000 == 0 => (p / 1_000, "s"),
            p => (p, "ms"),
        };
        if n == 1 {
            format!("{}/{unit}", self.limit)
        } else {
            format!("{}/{n}{unit}", self.limit)
        }
    }

    /// The spacing of starts, µs.
    fn interval(&self) -> i64 {
        ((self.period_ms as i64).saturating_mul(1_000) / self.limit.max(1) as i64).max(1)
    }

    /// How far ahead of now the bucket's time may run (a burst of `limit`), µs.
    fn tolerance(&self) -> i64 {
        (self.period_ms as i64).saturating_mul(1_000) - self.interval()
    }
}

/// A rate bucket's state: its theoretical arrival time (µs). A bucket whose time is past is as
/// good as new.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Bucket {
    /// The generic cell rate algorithm's theoretical arrival time.
    pub tat: i64,
    /// When the bucket admits its next start (`tat - tolerance`).
    pub reopen: i64,
}

/// The rate bucket of a queue.
pub fn queue_bucket(queue: &str) -> String {
    format!("q\u{1f}{queue}")
}

/// The rate bucket of a concurrency key within a queue (names hold no control characters, so
/// the separator cannot occur in them).
pub fn key_bucket(queue: &str, key: &str) -> String {
    format!("k\u{1f}{queue}\u{1f}{key}")
}

/// A queue's settings as the store keeps them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueRecord {
    /// The settings.
    pub spec: QueueSpec,
    /// Where they were declared (a manifest's `[queue]` yields to the API's).
    #[serde(default)]
    pub origin: Origin,
    /// When first declared (µs since the epoch).
    pub created_at: i64,
    /// When last changed.
    pub updated_at: i64,
}

/// Why a queue name or a concurrency key is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    /// Empty.
    #[error("{what} must not be empty")]
    Empty {
        /// `queue` or `concurrency_key`.
        what: &'static str,
    },
    /// Too long.
    #[error("{what} must be at most {MAX_NAME_BYTES} bytes")]
    TooLong {
        /// `queue` or `concurrency_key`.
        what: &'static str,
    },
    /// A control character.
    #[error("{what} must not contain control characters")]
    Control {
        /// `queue` or `concurrency_key`.
        what: &'static str,
    },
}

/// Checks a queue name or concurrency key (`what` names it in the error).
pub fn check_name(what: &'static str, name: &str) -> Result<(), NameError> {
    if name.is_empty() {
        Err(NameError::Empty { what })
    } else if name.len() > MAX_NAME_BYTES {
        Err(NameError::TooLong { what })
    } else if name.chars().any(char::is_control) {
        Err(NameError::Control { what })
    } else {
        Ok(())
    }
}

/// What runs now, per queue and per (queue, key): the counts a claim is decided on.
#[derive(Debug, Clone, Default)]
pub struct Running {
    queues: HashMap<String, usize>,
    keys: HashMap<(String, String), usize>,
}

impl Running {
    /// Adds `n` running jobs of `queue` with `key`.
    pub fn add(&mut self, queue: &str, key: Option<&str>, n: usize) {
        *self.queues.entry(queue.to_string()).or_default() += n;
        if let Some(k) = key {
            *self
                .keys
                .entry((queue.to_string(), k.to_string()))
                .or_default() += n;
        }
    }

    /// Jobs of `queue` running.
    pub fn of_queue(&self, queue: &str) -> usize {
        self.queues.get(queue).copied().unwrap_or(0)
    }

    /// Jobs of `queue` with `key` running.
    pub fn of_key(&self, queue: &str, key: &str) -> usize {
        self.keys
            .get(&(queue.to_string(), key.to_string()))
            .copied()
            .unwrap_or(0)
    }
}

/// The decision of one claim: the queues' settings and what runs, updated as the claim takes
/// jobs. Queues without settings limit nothing.
#[derive(Debug, Clone, Default)]
pub struct Gate {
    specs: HashMap<String, QueueSpec>,
    running: Running,
    buckets: HashMap<String, Bucket>,
    /// Buckets the claim moved, to write back.
    moved: Vec<String>,
    now: i64,
}

impl Gate {
    /// A gate over `specs` (the queues with settings) and the jobs running now.
    pub fn new(specs: impl IntoIterator<Item = QueueSpec>, running: Running) -> Gate {
        Gate {
            specs: specs
                .into_iter()
                .filter(QueueSpec::limits)
                .map(|s| (s.name.clone(), s))
                .collect(),
            running,
            ..Gate::default()
        }
    }

    /// With the rate buckets' states as the store has them, at `now` (µs).
    pub fn with_buckets(mut self, buckets: HashMap<String, Bucket>, now: i64) -> Gate {
        self.buckets = buckets;
        self.now = now;
        self
    }

    /// The buckets this claim moved, with their new state (to store with the claim).
    pub fn moved(&self) -> Vec<(String, Bucket)> {
        let mut out: Vec<(String, Bucket)> = Vec::with_capacity(self.moved.len());
        for b in &self.moved {
            if let Some(st) = self.buckets.get(b)
                && !out.iter().any(|(n, _)| n == b)
            {
                out.push((b.clone(), *st));
            }
        }
        out
    }

    /// Whether `rate`'s bucket `name` admits a start now.
    fn rate_open(&self, name: &str, rate: &Rate) -> bool {
        let tat = self
            .buckets
            .get(name)
            .map_or(self.now, |b| b.tat.max(self.now));
        tat - rate.tolerance() <= self.now
    }

    /// Counts a start against `rate`'s bucket `name`.
    fn take(&mut self, name: String, rate: &Rate) {
        let now = self.now;
        let tat = self.buckets.get(&name).map_or(now, |b| b.tat.max(now)) + rate.interval();
        self.buckets.insert(
            name.clone(),
            Bucket {
                tat,
                reopen: tat - rate.tolerance(),
            },
        );
        self.moved.push(name);
    }

    /// Whether any queue holds claims back (if not, a store may claim on its fast path).
    pub fn limits(&self) -> bool {
        !self.specs.is_empty()
    }

    /// Whether a job of `queue` with `key` may be claimed now (nothing is counted).
    pub fn open(&self, queue: &str, key: Option<&str>) -> bool {
        let Some(spec) = self.specs.get(queue) else {
            return true;
        };
        if spec.paused {
            return false;
        }
        if let Some(max) = spec.concurrency
            && self.running.of_queue(queue) >= max as usize
        {
            return false;
        }
        if let (Some(max), Some(k)) = (spec.key_concurrency, key)
            && self.running.of_key(queue, k) >= max as usize
        {
            return false;
        }
        if let Some(r) = &spec.rate
            && !self.rate_open(&queue_bucket(queue), r)
        {
            return false;
        }
        if let (Some(r), Some(k)) = (&spec.key_rate, key)
            && !self.rate_open(&key_bucket(queue, k), r)
        {
            return false;
        }
        true
    }

    /// Whether a job of `queue` with `key` may be claimed now; if so, it is counted as running
    /// and as a start against its queue's rates.
    pub fn admit(&mut self, queue: &str, key: Option<&str>) -> bool {
        if !self.open(queue, key) {
            return false;
        }
        let (rate, key_rate) = match self.specs.get(queue) {
            Some(spec) => (spec.rate, spec.key_rate.zip(key)),
            None => return true,
        };
        if let Some(r) = rate {
            self.take(queue_bucket(queue), &r);
        }
        if let Some((r, k)) = key_rate {
            self.take(key_bucket(queue, k), &r);
        }
        self.running.add(queue, key, 1);
        true
    }
}

/// How far a fair claim of up to `max` jobs looks: how many keys (from where the last claim
/// stopped), and how many of each key's first jobs. Enough keys to fill the claim twice over
/// (between 16 and 1,024; a claim after it goes on from there, so every key gets its turn), and
/// enough of each key's jobs that the keys looked at can fill it twice over (`keys_seen`: how
/// many keys the last look found; unknown, 4): few keys with backlogs share a claim evenly, many
/// keys take one job each, and the rows read (and, on PostgreSQL, locked) stay near `4 × max`.
pub fn fair_span(max: usize, keys_seen: Option<usize>) -> (usize, usize) {
    let max = max.max(1);
    let keys = (2 * max).clamp(16, 1024);
    let heads = match keys_seen {
        Some(k) if k > 0 => (2 * max).div_ceil(k.min(keys)).clamp(1, max),
        _ => 4.min(max),
    };
    (keys, heads)
}

/// A candidate's queue and concurrency key (`None`: no key).
type Group<'a> = Option<(&'a str, &'a str)>;

/// One candidate of a claim, as [`fair_order`] sorts it.
#[derive(Debug, Clone, Copy)]
pub struct Place<'a> {
    /// Its priority (higher first).
    pub priority: i32,
    /// When it became due.
    pub at: i64,
    /// Insertion order.
    pub seq: u64,
    /// Its queue and concurrency key (`None`: a job without a key, which waits its turn in
    /// plain order).
    pub group: Group<'a>,
}

/// The order a claim takes `places` in: by priority, then round-robin across concurrency keys
/// (each key's first job, then each key's second, …; jobs without a key count as one key that
/// sorts before every other), then by time and insertion. Among jobs of equal priority and
/// rank, the keys after `last` (the key of the last job the previous claim took) come first, in
/// key order, then the others: the turns go on from claim to claim, so even a claim of one job
/// serves the keys in turn. A key with a long backlog thus delays another key's job by one
/// round, not by its backlog. Returns indices into `places`.
pub fn fair_order(places: &[Place<'_>], last: Group<'_>) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..places.len()).collect();
    idx.sort_by_key(|&i| {
        let p = &places[i];
        (std::cmp::Reverse(p.priority), p.at, p.seq)
    });
    let mut seen: HashMap<(i32, Group<'_>), usize> = HashMap::new();
    let mut rank = vec![0usize; places.len()];
    for &i in &idx {
        let p = &places[i];
        let n = seen.entry((p.priority, p.group)).or_default();
        rank[i] = *n;
        *n += 1;
    }
    idx.sort_by_key(|&i| {
        let p = &places[i];
        let wrapped = last.is_some() && p.group <= last;
        (
            std::cmp::Reverse(p.priority),
            rank[i],
            wrapped,
            p.group,
            p.at,
            p.seq,
        )
    });
    idx
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(name: &str, concurrency: Option<u32>, key: Option<u32>) -> QueueSpec {
        QueueSpec {
            name: name.into(),
            concurrency,
            key_concurrency: key,
            ..QueueSpec::default()
        }
    }

    #[test]
    fn a_queue_without_settings_admits_everything() {
        let mut g = Gate::new([QueueSpec::open("q")], Running::default());
        assert!(!g.limits());
        for _ in 0..100 {
            assert!(g.admit("q", Some("k")));
        }
    }

    #[test]
    fn a_queue_limit_counts_what_runs_and_what_the_claim_takes() {
        let mut running = Running::default();
        running.add("q", None, 1);
        let mut g = Gate::new([spec("q", Some(3), None)], running);
        assert!(g.admit("q", None));
        assert!(g.admit("q", Some("a")));
        assert!(!g.admit("q", None), "1 running + 2 taken = the limit");
        assert!(g.admit("other", None), "another queue is not held back");
    }

    #[test]
    fn a_key_limit_holds_each_key_apart() {
        let mut running = Running::default();
        running.add("q", Some("a"), 2);
        let mut g = Gate::new([spec("q", None, Some(2))], running);
        assert!(!g.admit("q", Some("a")));
        assert!(g.admit("q", Some("b")));
        assert!(g.admit("q", Some("b")));
        assert!(!g.admit("q", Some("b")));
        assert!(
            g.admit("q", None),
            "a job without a key is held only by the queue"
        );
    }

    #[test]
    fn a_paused_queue_admits_nothing() {
        let mut g = Gate::new(
            [QueueSpec {
                paused: true,
                ..QueueSpec::open("q")
            }],
            Running::default(),
        );
        assert!(g.limits());
        assert!(!g.admit("q", None));
        assert!(g.admit("default", None));
    }

    #[test]
    fn rates_parse_and_print() {
        assert_eq!(
            Rate::parse("100/min"),
            Ok(Rate {
                limit: 100,
                period_ms: 60_000
            })
        );
        assert_eq!(Rate::parse("3/10s").map(|r| r.period_ms), Ok(10_000));
        assert_eq!(Rate::parse("5000/h").map(|r| r.text()), Ok("5000/h".into()));
        assert_eq!(Rate::parse("3/10s").map(|r| r.text()), Ok("3/10s".into()));
        for bad in ["", "100", "0/s", "10/", "10/fortnight", "x/s", "10/0s"] {
            assert!(Rate::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_rate_allows_a_burst_then_spaces_starts() {
        let q = QueueSpec {
            rate: Some(Rate::parse("3/s").unwrap()),
            ..QueueSpec::open("q")
        };
        let t0 = 1_000_000_000;
        let mut g = Gate::new([q.clone()], Running::default()).with_buckets(HashMap::new(), t0);
        assert!(g.admit("q", None));
        assert!(g.admit("q", None));
        assert!(g.admit("q", None));
        assert!(!g.admit("q", None), "a burst of 3, no more");
        let moved: HashMap<String, Bucket> = g.moved().into_iter().collect();
        let b = moved[&queue_bucket("q")];
        // 4 × 333,333 µs − 1 s: a third of a second on (to the µs, rounded down).
        assert_eq!(
            b.reopen,
            t0 + 333_332,
            "the next start a third of a second on"
        );
        // A claim just before the reopen time takes nothing; at it, one.
        let mut g =
            Gate::new([q.clone()], Running::default()).with_buckets(moved.clone(), b.reopen - 1);
        assert!(!g.admit("q", None));
        let mut g = Gate::new([q], Running::default()).with_buckets(moved, b.reopen);
        assert!(g.admit("q", None));
        assert!(!g.admit("q", None));
    }

    #[test]
    fn a_key_rate_holds_each_key_apart() {
        let q = QueueSpec {
            key_rate: Some(Rate::parse("1/min").unwrap()),
            ..QueueSpec::open("q")
        };
        let mut g = Gate::new([q], Running::default()).with_buckets(HashMap::new(), 5);
        assert!(g.admit("q", Some("a")));
        assert!(!g.admit("q", Some("a")));
        assert!(g.admit("q", Some("b")));
        assert!(g.admit("q", None), "no key, no key rate");
    }

    #[test]
    fn fair_order_takes_keys_in_turn_within_a_priority() {
        let p = |priority, at, key: Option<&'static str>| Place {
            priority,
            at,
            seq: at as u64,
            group: key.map(|k| ("q", k)),
        };
        let places = vec![
            p(0, 1, Some("a")),
            p(0, 2, Some("a")),
            p(0, 3, Some("a")),
            p(0, 4, Some("a")),
            p(0, 9, Some("b")),
            p(5, 10, Some("a")),
            p(0, 5, None),
            p(0, 6, None),
        ];
        let order = fair_order(&places, None);
        // Priority first; then each key's first (the keyless' first, a1, b1), each key's
        // second…
        assert_eq!(order, vec![5, 6, 0, 4, 7, 1, 2, 3]);
        // The turns go on from the last key served: after a, b first.
        let order = fair_order(&places, Some(("q", "a")));
        assert_eq!(order, vec![5, 4, 6, 0, 7, 1, 2, 3]);
    }

    #[test]
    fn claims_of_one_job_take_the_keys_in_turn() {
        let places: Vec<Place<'_>> = (0..6)
            .map(|i| Place {
                priority: 0,
                at: i,
                seq: i as u64,
                group: Some(("q", if i < 5 { "a" } else { "b" })),
            })
            .collect();
        let first = fair_order(&places, None)[0];
        assert_eq!(places[first].group, Some(("q", "a")));
        let second = fair_order(&places, places[first].group)[0];
        assert_eq!(places[second].group, Some(("q", "b")), "b's turn after a's");
    }

    #[test]
    fn a_fair_claim_looks_far_enough_and_no_further() {
        assert_eq!(fair_span(64, None), (128, 4));
        assert_eq!(
            fair_span(64, Some(2)),
            (128, 64),
            "two keys share the claim"
        );
        assert_eq!(fair_span(64, Some(1000)), (128, 1), "many keys: one each");
        assert_eq!(fair_span(1, Some(5)), (16, 1));
        assert_eq!(fair_span(10_000, Some(3)).0, 1024);
    }

    #[test]
    fn names_are_checked() {
        assert!(check_name("queue", "emails").is_ok());
        assert_eq!(
            check_name("queue", ""),
            Err(NameError::Empty { what: "queue" })
        );
        assert!(check_name("queue", &"x".repeat(201)).is_err());
        assert!(check_name("concurrency_key", "a\nb").is_err());
    }
}
