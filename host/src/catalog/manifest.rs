//! The manifest beside a component: `jobs/<type>.toml` grants the job type what it may reach
//! (directories, variables, outbound HTTP) and sets its limits.
//!
//! Why a file beside the component and not flags: grants differ per job type, they travel with
//! the job when it is deployed, and they reload with it. Absent, a type gets the host's default
//! limits and nothing else. Unknown keys are errors (a misspelt grant must not silently grant
//! nothing), and every error names the key it is about; the catalog then lists the type as
//! broken rather than loading half of it.

use crate::runtime::JobLimits;
use crate::runtime::capabilities::{
    Destination, DirError, DirGrant, EnvError, EnvGrant, Grants, HttpGrant, HttpPool, IoChoice,
    PatternError,
};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// Why a manifest was refused.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The manifest.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Not TOML, an unknown key, or a value of the wrong type (the message names the key).
    #[error("{0}")]
    Syntax(#[from] toml::de::Error),
    /// A directory grant.
    #[error("{key}: {source}")]
    Dir {
        /// E.g. `dirs[0].host`.
        key: String,
        /// Why.
        #[source]
        source: DirError,
    },
    /// A variable.
    #[error("{key}: {source}")]
    Env {
        /// E.g. `env.API_TOKEN`.
        key: String,
        /// Why.
        #[source]
        source: EnvError,
    },
    /// An allow-list entry.
    #[error("{key}: {source}")]
    Http {
        /// E.g. `http.allow[1]`.
        key: String,
        /// Why.
        #[source]
        source: PatternError,
    },
    /// A limit out of its range.
    #[error("{key}: {reason}")]
    Limit {
        /// E.g. `limits.memory_mib`.
        key: &'static str,
        /// The allowed range.
        reason: String,
    },
}

/// What the host allows a manifest to ask for.
#[derive(Debug, Clone, Copy)]
pub struct ManifestBounds {
    /// Largest memory cap (the pool's slot size), in bytes.
    pub max_memory_bytes: usize,
    /// Whether the engine counts fuel (`--metering fuel`): a fuel budget needs it.
    pub fuel_metering: bool,
}

/// A job type's limits as its manifest sets them (`None`: the host's default).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct TypeLimits {
    /// Memory cap, MiB.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory_mib: Option<u64>,
    /// Fuel per run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fuel: Option<u64>,
    /// Wall-clock limit per run, seconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeout_secs: Option<u64>,
    /// Largest result, bytes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub result_max_bytes: Option<usize>,
    /// Largest captured log volume per run, bytes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_max_bytes: Option<usize>,
    /// Most runs of this type at once on one host.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_concurrent: Option<usize>,
    /// Default `max_attempts` of a job of this type (a job's own param wins).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_attempts: Option<u32>,
    /// Default `priority` of a job of this type (a job's own param wins).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub priority: Option<i32>,
}

impl TypeLimits {
    /// The host's limits with this type's settings over them.
    pub fn apply(&self, base: JobLimits) -> JobLimits {
        JobLimits {
            memory_bytes: self
                .memory_mib
                .map_or(base.memory_bytes, |m| (m as usize) << 20),
            fuel: self.fuel.or(base.fuel),
            timeout: self.timeout_secs.map_or(base.timeout, Duration::from_secs),
            result_bytes: self.result_max_bytes.unwrap_or(base.result_bytes),
            log_bytes: self.log_max_bytes.unwrap_or(base.log_bytes),
            ..base
        }
    }

    fn check(&self, bounds: &ManifestBounds) -> Result<(), ManifestError> {
        let max_mib = (bounds.max_memory_bytes >> 20) as u64;
        let range = |key, ok: bool, reason: String| {
            if ok {
                Ok(())
            } else {
                Err(ManifestError::Limit { key, reason })
            }
        };
        if let Some(m) = self.memory_mib {
            range(
                "limits.memory_mib",
                (1..=max_mib).contains(&m),
                format!("must be 1..={max_mib} (the size of the host's memory slots)"),
            )?;
        }
        if let Some(f) = self.fuel {
            range("limits.fuel", f > 0, "must be at least 1".into())?;
            range(
                "limits.fuel",
                bounds.fuel_metering,
                "this host counts no fuel (--metering epoch): start it with --metering fuel, or bound the run with limits.timeout_secs".into(),
            )?;
        }
        if let Some(t) = self.timeout_secs {
            range(
                "limits.timeout_secs",
                (1..=31_536_000).contains(&t),
                "must be 1..=31536000".into(),
            )?;
        }
        if let Some(r) = self.result_max_bytes {
            range(
                "limits.result_max_bytes",
                r > 0,
                "must be at least 1".into(),
            )?;
        }
        if let Some(n) = self.max_concurrent {
            range("limits.max_concurrent", n > 0, "must be at least 1".into())?;
        }
        if let Some(n) = self.max_attempts {
            range(
                "limits.max_attempts",
                (1..=1000).contains(&n),
                "must be 1..=1000".into(),
            )?;
        }
        if let Some(p) = self.priority {
            range(
                "limits.priority",
                (-1_000_000..=1_000_000).contains(&p),
                "must be -1000000..=1000000".into(),
            )?;
        }
        Ok(())
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawManifest {
    #[serde(default)]
    limits: TypeLimits,
    #[serde(default)]
    dirs: Vec<RawDir>,
    #[serde(default)]
    env: BTreeMap<String, RawEnv>,
    http: Option<RawHttp>,
    #[serde(default)]
    schedules: Vec<RawSchedule>,
    queue: Option<RawQueue>,
}

/// The `[queue]` table: the type's jobs' queue, and that queue's settings.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawQueue {
    name: String,
    concurrency: Option<u32>,
    key_concurrency: Option<u32>,
    rate: Option<String>,
    key_rate: Option<String>,
    priority: Option<i32>,
}

/// A `[[schedules]]` entry: a periodic job of this type.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSchedule {
    name: String,
    cron: String,
    timezone: Option<String>,
    params: Option<toml::Table>,
    #[serde(default)]
    overlap: crate::schedule::Overlap,
    #[serde(default)]
    catch_up: crate::schedule::CatchUp,
    catch_up_window_secs: Option<u64>,
    enabled: Option<bool>,
    priority: Option<i32>,
    max_attempts: Option<u32>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDir {
    host: PathBuf,
    guest: String,
    #[serde(default)]
    mode: Mode,
    #[serde(default)]
    io: IoChoice,
}

#[derive(Debug, Default, Deserialize, PartialEq, Eq)]
enum Mode {
    #[default]
    #[serde(rename = "ro")]
    ReadOnly,
    #[serde(rename = "rw")]
    ReadWrite,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum RawEnv {
    Literal(String),
    FromHost(FromHost),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FromHost {
    from_host: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHttp {
    allow: Vec<String>,
    max_requests: Option<u32>,
    timeout_secs: Option<f64>,
    max_response_bytes: Option<u64>,
    keep_alive: Option<bool>,
}

/// A job type's manifest, validated.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Manifest {
    /// The file it came from (`None`: no manifest, the defaults).
    pub file: Option<PathBuf>,
    /// Its limits.
    pub limits: TypeLimits,
    /// What it grants.
    pub grants: Arc<Grants>,
    /// Its `[[schedules]]`: periodic jobs of this type (`job_type` is left empty here; the
    /// catalog knows the type's name).
    pub schedules: Vec<crate::schedule::ScheduleSpec>,
    /// Its `[queue]`: the queue its jobs go to when they name none, with the settings the
    /// manifest declares for it (`None`: the default queue).
    pub queue: Option<crate::limits::QueueSpec>,
}

impl Manifest {
    /// Reads and validates `path`; relative host directories are taken from `base` (the jobs
    /// directory).
    pub fn load(path: &Path, base: &Path, bounds: &ManifestBounds) -> Result<Self, ManifestError> {
        let text = std::fs::read_to_string(path).map_err(|source| ManifestError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let mut m = Manifest::parse(&text, base, bounds)?;
        m.file = Some(path.to_path_buf());
        Ok(m)
    }

    /// Validates a manifest's text.
    pub fn parse(text: &str, base: &Path, bounds: &ManifestBounds) -> Result<Self, ManifestError> {
        let raw: RawManifest = toml::from_str(text)?;
        raw.limits.check(bounds)?;
        let dirs =
            raw.dirs
                .iter()
                .enumerate()
                .map(|(i, d)| {
                    DirGrant::with_io(base, &d.host, &d.guest, d.mode == Mode::ReadWrite, d.io)
                        .map_err(|source| ManifestError::Dir {
                            key: match source {
                                DirError::Guest(_) => format!("dirs[{i}].guest"),
                                _ => format!("dirs[{i}].host"),
                            },
                            source,
                        })
                })
                .collect::<Result<Vec<_>, _>>()?;
        let env = raw
            .env
            .iter()
            .map(|(name, v)| {
                match v {
                    RawEnv::Literal(value) => EnvGrant::literal(name, value),
                    RawEnv::FromHost(h) => EnvGrant::from_host(name, &h.from_host),
                }
                .map_err(|source| ManifestError::Env {
                    key: format!("env.{name}"),
                    source,
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let http = match raw.http {
            None => None,
            Some(h) => {
                let allow = h
                    .allow
                    .iter()
                    .enumerate()
                    .map(|(i, a)| {
                        Destination::parse(a).map_err(|source| ManifestError::Http {
                            key: format!("http.allow[{i}]"),
                            source,
                        })
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                let timeout = match h.timeout_secs {
                    None => HttpGrant::DEFAULT_TIMEOUT,
                    Some(t) if t > 0.0 && t <= 86_400.0 => Duration::from_secs_f64(t),
                    Some(_) => {
                        return Err(ManifestError::Limit {
                            key: "http.timeout_secs",
                            reason: "must be more than 0 and at most 86400".into(),
                        });
                    }
                };
                if h.max_requests == Some(0) {
                    return Err(ManifestError::Limit {
                        key: "http.max_requests",
                        reason: "must be at least 1 (leave [http] out to grant nothing)".into(),
                    });
                }
                Some(Arc::new(HttpGrant {
                    allow,
                    max_requests: h.max_requests.unwrap_or(HttpGrant::DEFAULT_MAX_REQUESTS),
                    timeout,
                    max_response_bytes: h
                        .max_response_bytes
                        .unwrap_or(HttpGrant::DEFAULT_MAX_RESPONSE_BYTES),
                    keep_alive: h.keep_alive.unwrap_or(true),
                    pool: HttpPool::default(),
                }))
            }
        };
        let mut schedules: Vec<crate::schedule::ScheduleSpec> = Vec::new();
        for (i, r) in raw.schedules.into_iter().enumerate() {
            if r.name.is_empty() || schedules.iter().any(|s| s.name == r.name) {
                return Err(ManifestError::Limit {
                    key: "schedules.name",
                    reason: format!(
                        "schedules[{i}]: name '{}' must be non-empty and unique in the manifest",
                        r.name
                    ),
                });
            }
            let params = serde_json::to_value(r.params.unwrap_or_default()).map_err(|e| {
                ManifestError::Limit {
                    key: "schedules.params",
                    reason: format!("schedules[{i}].params: {e}"),
                }
            })?;
            let spec = crate::schedule::ScheduleSpec {
                name: r.name,
                job_type: String::new(),
                params: crate::job::Json::new(&params),
                cron: r.cron,
                timezone: r.timezone.unwrap_or_else(|| "UTC".into()),
                overlap: r.overlap,
                catch_up: r.catch_up,
                catch_up_window_secs: r
                    .catch_up_window_secs
                    .unwrap_or(crate::schedule::DEFAULT_CATCH_UP_WINDOW_SECS),
                enabled: r.enabled.unwrap_or(true),
                priority: r.priority,
                max_attempts: r.max_attempts.map(|m| m.max(1)),
            };
            spec.timetable().map_err(|e| ManifestError::Limit {
                key: "schedules.cron",
                reason: format!("schedules[{i}]: {e}"),
            })?;
            schedules.push(spec);
        }
        let queue = match raw.queue {
            None => None,
            Some(q) => {
                crate::limits::check_name("queue.name", &q.name).map_err(|e| {
                    ManifestError::Limit {
                        key: "queue.name",
                        reason: e.to_string(),
                    }
                })?;
                for (key, v) in [
                    ("queue.concurrency", q.concurrency),
                    ("queue.key_concurrency", q.key_concurrency),
                ] {
                    if v == Some(0) {
                        return Err(ManifestError::Limit {
                            key,
                            reason: "must be at least 1 (leave it out for no limit)".into(),
                        });
                    }
                }
                let rate = |key: &'static str, v: Option<String>| {
                    v.map(|t| crate::limits::Rate::parse(&t))
                        .transpose()
                        .map_err(|e| ManifestError::Limit {
                            key,
                            reason: e.to_string(),
                        })
                };
                Some(crate::limits::QueueSpec {
                    name: q.name,
                    concurrency: q.concurrency,
                    key_concurrency: q.key_concurrency,
                    rate: rate("queue.rate", q.rate)?,
                    key_rate: rate("queue.key_rate", q.key_rate)?,
                    priority: q.priority,
                    paused: false,
                })
            }
        };
        Ok(Manifest {
            file: None,
            limits: raw.limits,
            grants: Arc::new(Grants { dirs, env, http }),
            schedules,
            queue,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BOUNDS: ManifestBounds = ManifestBounds {
        max_memory_bytes: 1 << 30,
        fuel_metering: false,
    };

    fn parse(text: &str) -> Result<Manifest, String> {
        let base = std::env::temp_dir();
        Manifest::parse(text, &base, &BOUNDS).map_err(|e| e.to_string())
    }

    #[test]
    fn an_empty_manifest_grants_nothing() {
        let m = parse("").unwrap();
        assert!(m.grants.is_empty());
        assert_eq!(m.limits, TypeLimits::default());
    }

    #[test]
    fn a_full_manifest_loads() {
        let dir = tempfile_dir();
        let text = format!(
            r#"
            [limits]
            memory_mib = 64
            timeout_secs = 30
            max_concurrent = 2
            max_attempts = 3
            priority = 5

            [[dirs]]
            host = "{}"
            guest = "/data/in"

            [env]
            MODE = "fast"

            [http]
            allow = ["https://api.example.com", "http://127.0.0.1:*"]
            max_requests = 10
            "#,
            dir.display()
        );
        let m = parse(&text).unwrap();
        assert_eq!(m.limits.memory_mib, Some(64));
        assert_eq!(m.grants.dirs[0].guest, "/data/in");
        assert!(!m.grants.dirs[0].writable, "read-only unless mode = rw");
        assert_eq!(m.grants.env[0].name, "MODE");
        assert_eq!(m.grants.http.as_ref().unwrap().max_requests, 10);
        let shown = m.grants.describe().to_string();
        assert!(!shown.contains("fast"), "values are never shown: {shown}");
        let limits = m.limits.apply(JobLimits::default());
        assert_eq!(limits.memory_bytes, 64 << 20);
        assert_eq!(limits.timeout, Duration::from_secs(30));
    }

    #[test]
    fn a_fuel_budget_needs_a_host_that_counts_fuel() {
        let e = parse("[limits]\nfuel = 1000").unwrap_err();
        assert!(
            e.contains("limits.fuel") && e.contains("--metering fuel"),
            "{e}"
        );
        let fuel = ManifestBounds {
            fuel_metering: true,
            ..BOUNDS
        };
        let m = Manifest::parse("[limits]\nfuel = 1000", &std::env::temp_dir(), &fuel).unwrap();
        assert_eq!(m.limits.fuel, Some(1000));
        let e = Manifest::parse("[limits]\nfuel = 0", &std::env::temp_dir(), &fuel).unwrap_err();
        assert!(e.to_string().contains("at least 1"), "{e}");
    }

    fn tempfile_dir() -> PathBuf {
        let d = std::env::temp_dir().join(format!("qm-manifest-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn errors_name_the_key() {
        for (text, key) in [
            ("[limits]\nmemry_mib = 1", "memry_mib"),
            ("[limits]\nmemory_mib = 999999", "limits.memory_mib"),
            ("[limits]\nmemory_mib = \"big\"", "memory_mib"),
            (
                "[[dirs]]\nhost = \"/nonexistent-qm\"\nguest = \"/d\"",
                "dirs[0].host",
            ),
            (
                "[[dirs]]\nhost = \"/\"\nguest = \"d/../x\"",
                "dirs[0].guest",
            ),
            (
                "[[dirs]]\nhost = \"/\"\nguest = \"/d\"\nmode = \"wr\"",
                "mode",
            ),
            (
                "[env]\nX = { from_host = \"QM_SURELY_UNSET_VAR\" }",
                "env.X",
            ),
            (
                "[http]\nallow = [\"https://a\", \"ftp://b\"]",
                "http.allow[1]",
            ),
            ("[http]\nallow = []\nmax_requests = 0", "http.max_requests"),
            ("[netwrk]\n", "netwrk"),
        ] {
            let e = parse(text).unwrap_err();
            assert!(e.contains(key), "{text:?} → {e}");
        }
    }
}
