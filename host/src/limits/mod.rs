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
        self.paused || self.concurrency.is_some() || self.key_concurrency.is_some()
    }
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
        }
    }

    /// Whether any queue holds claims back (if not, a store may claim on its fast path).
    pub fn limits(&self) -> bool {
        !self.specs.is_empty()
    }

    /// Whether a job of `queue` with `key` may be claimed now; if so, it is counted as running.
    pub fn admit(&mut self, queue: &str, key: Option<&str>) -> bool {
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
        self.running.add(queue, key, 1);
        true
    }
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
