//! Who may do what: API keys with a name and a role.
//!
//! Why: a single `--api-key` opened everything, so a team could not hand out a key that only
//! reads, or only runs jobs. A keys file (`--keys-file`) lists named keys, each with a role;
//! the file holds only SHA-256 digests of the keys (a key is 256 random bits, so a digest
//! cannot be reversed or guessed), and it is re-read when it changes, so keys are added and
//! revoked without a restart. `--api-key` keeps working as an admin key named `api-key`.
//!
//! A presented key is hashed and looked up by its digest; the stored digest is then compared
//! in constant time. What the lookup's timing could reveal is about the digest of the
//! caller's own guess, not about any stored key.

use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant, SystemTime};
use subtle::ConstantTimeEq;

/// What a key may do. Each role includes the ones before it, except `metrics`, which only
/// reads `/metrics` (for a scraper).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Deserialize, clap::ValueEnum,
)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// `/metrics` only.
    Metrics,
    /// Status, lists, logs, events, job types, schedules and queues as they are.
    Read,
    /// `read`, and add, start, stop and delete jobs (also through `/ws` sessions and job
    /// types called as commands).
    Run,
    /// Everything: also schedules, queues, `/metrics` and `/mcp`.
    Admin,
}

impl Role {
    /// Its name, as the keys file spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Metrics => "metrics",
            Role::Read => "read",
            Role::Run => "run",
            Role::Admin => "admin",
        }
    }

    /// Whether a key with this role may do what needs `need`.
    pub fn allows(self, need: Role) -> bool {
        match (self, need) {
            (Role::Admin, _) => true,
            (Role::Metrics, Role::Metrics) => true,
            (Role::Metrics, _) | (_, Role::Metrics) => false,
            (have, need) => have >= need,
        }
    }
}

/// The jobs a key may see and act on: job types and queues, as globs (`*` any run of
/// characters, `?` one). An empty list does not limit; a job is in scope when both lists admit
/// it.
#[derive(Debug, Clone, Default)]
pub struct Scope {
    types: Vec<(String, Pattern)>,
    queues: Vec<(String, Pattern)>,
}

impl PartialEq for Scope {
    fn eq(&self, other: &Self) -> bool {
        self.types() == other.types() && self.queues() == other.queues()
    }
}
impl Eq for Scope {}

/// What a scope lacks for a job: the job type or the queue it is outside of.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OutOfScope {
    /// The job type matches none of the key's `types`.
    Type {
        /// The job type.
        job_type: String,
        /// The key's patterns.
        allowed: Vec<String>,
    },
    /// The queue matches none of the key's `queues`.
    Queue {
        /// The queue.
        queue: String,
        /// The key's patterns.
        allowed: Vec<String>,
    },
}

impl std::fmt::Display for OutOfScope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            OutOfScope::Type { job_type, allowed } => write!(
                f,
                "job type '{job_type}' is outside its scope (types {})",
                allowed.join(", ")
            ),
            OutOfScope::Queue { queue, allowed } => write!(
                f,
                "queue '{queue}' is outside its scope (queues {})",
                allowed.join(", ")
            ),
        }
    }
}

/// One pattern of a scope, in the cheapest form that matches as its glob does: most scopes
/// name a type or a prefix (`report_*`), and a scoped key's every request matches its job's
/// type and queue, so these skip the general matcher.
#[derive(Debug, Clone)]
enum Pattern {
    /// No wildcard: the name itself.
    Exact(String),
    /// `*` alone (or only `*`s): anything.
    Any,
    /// `head*`, `head` without wildcards.
    Prefix(String),
    /// `*tail`, `tail` without wildcards.
    Suffix(String),
    /// Anything else.
    Glob(wildmatch::WildMatch),
}

impl Pattern {
    fn new(p: &str) -> Pattern {
        let wild = |c: char| c == '*' || c == '?';
        if !p.contains(wild) {
            Pattern::Exact(p.to_string())
        } else if p.chars().all(|c| c == '*') {
            Pattern::Any
        } else if let Some(head) = p.strip_suffix('*')
            && !head.contains(wild)
        {
            Pattern::Prefix(head.to_string())
        } else if let Some(tail) = p.strip_prefix('*')
            && !tail.contains(wild)
        {
            Pattern::Suffix(tail.to_string())
        } else {
            Pattern::Glob(wildmatch::WildMatch::new(p))
        }
    }

    fn matches(&self, s: &str) -> bool {
        match self {
            Pattern::Exact(p) => s == p,
            Pattern::Any => true,
            Pattern::Prefix(head) => s.starts_with(head.as_str()),
            Pattern::Suffix(tail) => s.ends_with(tail.as_str()),
            Pattern::Glob(g) => g.matches(s),
        }
    }
}

impl Scope {
    /// A scope of these job type and queue patterns.
    pub fn new(types: &[String], queues: &[String]) -> Scope {
        let compile = |v: &[String]| v.iter().map(|p| (p.clone(), Pattern::new(p))).collect();
        Scope {
            types: compile(types),
            queues: compile(queues),
        }
    }

    /// The job type patterns.
    pub fn types(&self) -> Vec<String> {
        self.types.iter().map(|(p, _)| p.clone()).collect()
    }

    /// The queue patterns.
    pub fn queues(&self) -> Vec<String> {
        self.queues.iter().map(|(p, _)| p.clone()).collect()
    }

    /// Whether the scope limits nothing.
    pub fn is_empty(&self) -> bool {
        self.types.is_empty() && self.queues.is_empty()
    }

    /// Whether a job type is in scope (its queue aside).
    pub fn admits_type(&self, job_type: &str) -> bool {
        self.types.is_empty() || self.types.iter().any(|(_, m)| m.matches(job_type))
    }

    /// Whether a queue is in scope (job types aside).
    pub fn admits_queue(&self, queue: &str) -> bool {
        self.queues.is_empty() || self.queues.iter().any(|(_, m)| m.matches(queue))
    }

    /// Whether a job of this type in this queue is in scope, and if not, what it lacks.
    pub fn admits(&self, job_type: &str, queue: &str) -> Result<(), OutOfScope> {
        if !self.admits_type(job_type) {
            return Err(OutOfScope::Type {
                job_type: job_type.to_string(),
                allowed: self.types(),
            });
        }
        if !self.admits_queue(queue) {
            return Err(OutOfScope::Queue {
                queue: queue.to_string(),
                allowed: self.queues(),
            });
        }
        Ok(())
    }
}

/// The key a request came with, once recognised.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The key's name (`api-key` for `--api-key`, `open` when the API has no keys).
    pub name: Arc<str>,
    /// Its role.
    pub role: Role,
    /// The jobs it may see and act on (`None`: every job).
    pub scope: Option<Arc<Scope>>,
    /// Whether this is the open API's caller (no keys configured): nothing is recorded of it.
    pub anonymous: bool,
    /// The W3C `traceparent` the request came with (the jobs it adds join that trace).
    pub traceparent: Option<Arc<str>>,
}

impl Caller {
    /// The caller of an API that has no keys: everyone may do everything.
    pub fn open() -> Caller {
        Caller {
            name: Arc::from("open"),
            role: Role::Admin,
            scope: None,
            anonymous: true,
            traceparent: None,
        }
    }

    /// The same caller in allocations of its own (not shared with other connections).
    pub fn own_copy(&self) -> Caller {
        Caller {
            name: Arc::from(&*self.name),
            role: self.role,
            scope: self.scope.as_deref().map(|s| Arc::new(s.clone())),
            anonymous: self.anonymous,
            traceparent: self.traceparent.clone(),
        }
    }

    /// A named key's caller, with every job in scope.
    pub fn named(name: &str, role: Role) -> Caller {
        Caller {
            name: Arc::from(name),
            role,
            scope: None,
            anonymous: false,
            traceparent: None,
        }
    }

    /// The same caller, for a request that came with this `traceparent` header.
    pub fn with_trace(mut self, traceparent: Option<&str>) -> Caller {
        self.traceparent = traceparent.map(Arc::from);
        self
    }

    /// The name recorded on what it does (`added_by`, `audit`): none for the open API.
    pub fn recorded(&self) -> Option<&str> {
        (!self.anonymous).then_some(&*self.name)
    }

    /// Whether a job of this type in this queue is in its scope.
    pub fn admits(&self, job_type: &str, queue: &str) -> Result<(), OutOfScope> {
        match &self.scope {
            Some(s) => s.admits(job_type, queue),
            None => Ok(()),
        }
    }

    /// A refusal for a job outside its scope.
    pub fn out_of_scope(&self, what: &str, miss: &OutOfScope) -> String {
        format!("Forbidden: key '{}' may not {what}: {miss}", self.name)
    }

    /// A refusal that names the key, its role and the role `what` needs.
    pub fn refusal(&self, what: &str, need: Role) -> String {
        format!(
            "Forbidden: key '{}' (role {}) may not {what}: it needs role {}",
            self.name,
            self.role.as_str(),
            need.as_str()
        )
    }
}

/// Why a keys file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum KeysError {
    /// It cannot be read.
    #[error("keys file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// It is not valid TOML of the expected shape.
    #[error("keys file {path}: {source}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// Why.
        source: toml::de::Error,
    },
    /// A key's entry is wrong (names the entry).
    #[error("keys file {path}: key[{index}] ({name}): {reason}")]
    Entry {
        /// The file.
        path: PathBuf,
        /// The entry's position.
        index: usize,
        /// The entry's name.
        name: String,
        /// What is wrong with it.
        reason: String,
    },
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct FileFormat {
    #[serde(default)]
    key: Vec<KeySpec>,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct KeySpec {
    name: String,
    sha256: String,
    role: Role,
    /// Job types (globs) the key may see and act on; none: every type.
    #[serde(default)]
    types: Vec<String>,
    /// Queues (globs) the key may see and act on; none: every queue.
    #[serde(default)]
    queues: Vec<String>,
}

/// The keys of one reading of the file.
#[derive(Default)]
struct Loaded {
    /// Modification time and length when read: a change of either re-reads it.
    stamp: Option<(SystemTime, u64)>,
    by_digest: Digests,
}

/// The keys file, re-read when it changes (checked at most once a second).
struct KeysFile {
    path: PathBuf,
    loaded: RwLock<Arc<Loaded>>,
    /// When `next_look` counts from.
    epoch: Instant,
    /// The next look at the file is due at this many milliseconds after `epoch`: one atomic
    /// read per request, no lock (the request that finds it due claims the look).
    next_look: AtomicU64,
    /// Counts the times `loaded` was replaced: what a connection's [`KeyMemo`] is valid for.
    generation: AtomicU64,
}

/// Keys by the SHA-256 of each: the digests are uniform already, so a fast hasher loses nothing.
type Digests = HashMap<[u8; 32], Caller, foldhash::fast::RandomState>;

/// How often the keys file's modification time is looked at.
const RECHECK: Duration = Duration::from_secs(1);

/// Every key the host accepts.
pub struct KeyRing {
    /// `--api-key`'s digest: an admin key named `api-key`.
    single: Option<[u8; 32]>,
    file: Option<KeysFile>,
}

impl std::fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyRing")
            .field("api_key", &self.single.is_some())
            .field("keys_file", &self.file.as_ref().map(|k| &k.path))
            .finish()
    }
}

fn digest(key: &str) -> [u8; 32] {
    Sha256::digest(key.trim().as_bytes()).into()
}

fn parse(path: &Path, text: &str) -> Result<Digests, KeysError> {
    let file: FileFormat = toml::from_str(text).map_err(|source| KeysError::Parse {
        path: path.to_path_buf(),
        source,
    })?;
    let mut out = Digests::with_capacity_and_hasher(file.key.len(), Default::default());
    let mut names = std::collections::HashSet::new();
    for (index, spec) in file.key.into_iter().enumerate() {
        let entry = |reason: &str| KeysError::Entry {
            path: path.to_path_buf(),
            index,
            name: spec.name.clone(),
            reason: reason.to_string(),
        };
        if spec.name.trim().is_empty() {
            return Err(entry("the name is empty"));
        }
        let mut d = [0u8; 32];
        let hex = spec.sha256.trim();
        if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(entry(
                "sha256 must be 64 hexadecimal digits (the key's SHA-256, never the key)",
            ));
        }
        for (i, byte) in d.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16)
                .map_err(|_| entry("sha256 is not hexadecimal"))?;
        }
        if !names.insert(spec.name.clone()) {
            return Err(entry("another key has this name"));
        }
        if spec
            .types
            .iter()
            .chain(&spec.queues)
            .any(|p| p.trim().is_empty())
        {
            return Err(entry("a pattern in types or queues is empty"));
        }
        let scoped = !spec.types.is_empty() || !spec.queues.is_empty();
        if scoped && spec.role == Role::Metrics {
            return Err(entry(
                "a metrics key sees no jobs: types and queues do not apply to it",
            ));
        }
        let caller = Caller {
            name: Arc::from(spec.name.as_str()),
            role: spec.role,
            scope: scoped.then(|| Arc::new(Scope::new(&spec.types, &spec.queues))),
            anonymous: false,
            traceparent: None,
        };
        if out.insert(d, caller).is_some() {
            return Err(entry("another key has the same sha256"));
        }
    }
    Ok(out)
}

fn stamp(path: &Path) -> Option<(SystemTime, u64)> {
    let m = std::fs::metadata(path).ok()?;
    Some((m.modified().ok()?, m.len()))
}

impl KeysFile {
    fn open(path: &Path) -> Result<KeysFile, KeysError> {
        let loaded = Self::read(path)?;
        Ok(KeysFile {
            path: path.to_path_buf(),
            loaded: RwLock::new(Arc::new(loaded)),
            epoch: Instant::now(),
            next_look: AtomicU64::new(RECHECK.as_millis() as u64),
            generation: AtomicU64::new(0),
        })
    }

    fn read(path: &Path) -> Result<Loaded, KeysError> {
        let before = stamp(path);
        let text = std::fs::read_to_string(path).map_err(|source| KeysError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Ok(Loaded {
            stamp: before,
            by_digest: parse(path, &text)?,
        })
    }

    /// The keys as of now: re-read if the file changed since the last look (at most once a
    /// second). A file that became unreadable or wrong keeps the keys of before, and says so.
    fn current(&self) -> Arc<Loaded> {
        let due = self.claim_look();
        self.loaded(due)
    }

    /// The keys' generation as of now (after the look at the file, when one is due).
    fn generation(&self) -> u64 {
        if self.claim_look() {
            drop(self.loaded(true));
        }
        self.generation.load(Ordering::Acquire)
    }

    /// Whether a look at the file is due now; the caller that finds it due claims it.
    fn claim_look(&self) -> bool {
        let now = self.epoch.elapsed().as_millis() as u64;
        let next = self.next_look.load(Ordering::Relaxed);
        now >= next
            && self
                .next_look
                .compare_exchange(
                    next,
                    now + RECHECK.as_millis() as u64,
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                )
                .is_ok()
    }

    /// The keys loaded, re-read first if `due` and the file changed.
    fn loaded(&self, due: bool) -> Arc<Loaded> {
        let loaded = self
            .loaded
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        if !due || stamp(&self.path) == loaded.stamp {
            return loaded;
        }
        match Self::read(&self.path) {
            Ok(new) => {
                tracing::info!(file = %self.path.display(), keys = new.by_digest.len(), "keys file reloaded");
                let new = Arc::new(new);
                *self.loaded.write().unwrap_or_else(|p| p.into_inner()) = new.clone();
                self.generation.fetch_add(1, Ordering::AcqRel);
                new
            }
            Err(e) => {
                tracing::error!(error = %e, "keys file not reloaded; the keys of before stay");
                // Do not try again until it changes again.
                let kept = Arc::new(Loaded {
                    stamp: stamp(&self.path),
                    by_digest: loaded.by_digest.clone(),
                });
                *self.loaded.write().unwrap_or_else(|p| p.into_inner()) = kept.clone();
                self.generation.fetch_add(1, Ordering::AcqRel);
                kept
            }
        }
    }
}

impl KeyRing {
    /// The keys of `--api-key` and of `--keys-file` (read now: a file that cannot be used is
    /// an error at start).
    pub fn new(api_key: Option<&str>, keys_file: Option<&Path>) -> Result<KeyRing, KeysError> {
        Ok(KeyRing {
            single: api_key.map(digest),
            file: keys_file.map(KeysFile::open).transpose()?,
        })
    }

    /// Only `--api-key` (or nothing: an open API).
    pub fn from_api_key(api_key: Option<&str>) -> KeyRing {
        KeyRing {
            single: api_key.map(digest),
            file: None,
        }
    }

    /// Whether the API is open (no key of any kind configured).
    pub fn is_open(&self) -> bool {
        self.single.is_none() && self.file.is_none()
    }

    /// The caller that presented `key`, if it is one of ours.
    pub fn check(&self, key: Option<&str>) -> Option<Caller> {
        if self.is_open() {
            return Some(Caller::open());
        }
        let d = digest(key?);
        if let Some(single) = &self.single
            && bool::from(d.ct_eq(single))
        {
            return Some(Caller::named("api-key", Role::Admin));
        }
        let file = self.file.as_ref()?;
        let loaded = file.current();
        let (stored, caller) = loaded.by_digest.get_key_value(&d)?;
        bool::from(d.ct_eq(stored)).then(|| caller.clone())
    }

    /// The keys' generation: changes whenever the keys file is reloaded (looked at first, when
    /// a look is due).
    pub fn generation(&self) -> u64 {
        self.file.as_ref().map_or(0, KeysFile::generation)
    }

    /// [`KeyRing::check`], answered from `memo` when `key` is the key it holds and the keys
    /// have not been reloaded since; a key recognised anew replaces the memo's.
    pub fn check_remembered(&self, key: Option<&str>, memo: &mut KeyMemo) -> Option<Caller> {
        let key = key?;
        let generation = self.generation();
        if let Some(caller) = &memo.caller
            && memo.generation == generation
            && same_bytes(key.as_bytes(), &memo.given)
        {
            return Some(caller.clone());
        }
        let caller = self.check(Some(key))?;
        *memo = KeyMemo {
            given: key.as_bytes().into(),
            caller: Some(caller.own_copy()),
            generation,
        };
        Some(caller)
    }
}

/// The header a key comes in (or `Authorization: Bearer …`).
static API_KEY: axum::http::HeaderName = axum::http::HeaderName::from_static("x-api-key");

/// The key a request presents: `X-API-Key`, or `Authorization: Bearer …`.
pub fn presented_key(headers: &axum::http::HeaderMap) -> Option<&str> {
    headers
        .get(&API_KEY)
        .and_then(|v| v.to_str().ok())
        .or_else(|| {
            headers
                .get(axum::http::header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("Bearer "))
        })
}

/// A connection's last recognised key.
///
/// Why: an HTTP/1.1 client keeps its connection open and presents the same key on every
/// request. Remembering what the key was on this connection spares each later request the
/// digest, the lookup and the shared counters of the keys' `Arc`s (the memo holds a copy of
/// the caller of its own). It holds for one generation of the keys: a reload of the keys file
/// (a key revoked or its role changed) makes the next request check again.
#[derive(Default)]
pub struct KeyMemo {
    given: Box<[u8]>,
    caller: Option<Caller>,
    generation: u64,
}

/// Whether two byte strings are equal, in a time that depends on their length only: eight
/// bytes at a time, every word compared (no early exit), the differences folded into one
/// word that the compiler cannot see through. (`subtle`'s byte-wise compare, a barrier per
/// byte, cost more than the rest of a connection's key check together.)
fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let word = |c: &[u8]| {
        let mut w = [0u8; 8];
        w[..c.len()].copy_from_slice(c);
        u64::from_ne_bytes(w)
    };
    let diff = a
        .chunks(8)
        .zip(b.chunks(8))
        .fold(0u64, |acc, (x, y)| acc | (word(x) ^ word(y)));
    std::hint::black_box(diff) == 0
}

/// A fresh key (`qm_` and 64 hexadecimal digits: 256 random bits) and its SHA-256 in hex.
pub fn new_key() -> Result<(String, String), getrandom::Error> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)?;
    let key = format!("qm_{}", hex(&bytes));
    let sha = hex(&digest(&key));
    Ok((key, sha))
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// The keys file's entry for a key (with its scope, if it has one).
pub fn file_entry(name: &str, role: Role, sha256: &str, scope: &Scope) -> String {
    let list = |v: Vec<String>| {
        toml::Value::Array(v.into_iter().map(toml::Value::String).collect()).to_string()
    };
    let mut out = format!(
        "[[key]]\nname = {}\nrole = \"{}\"\nsha256 = \"{sha256}\"\n",
        toml::Value::String(name.to_string()),
        role.as_str()
    );
    if !scope.types.is_empty() {
        out.push_str(&format!("types = {}\n", list(scope.types())));
    }
    if !scope.queues.is_empty() {
        out.push_str(&format!("queues = {}\n", list(scope.queues())));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_include_the_ones_before_but_metrics_is_apart() {
        use Role::*;
        let table = [
            (Metrics, [true, false, false, false]),
            (Read, [false, true, false, false]),
            (Run, [false, true, true, false]),
            (Admin, [true, true, true, true]),
        ];
        for (have, allowed) in table {
            for (need, ok) in [Metrics, Read, Run, Admin].into_iter().zip(allowed) {
                assert_eq!(have.allows(need), ok, "{have:?} → {need:?}");
            }
        }
    }

    #[test]
    fn a_new_key_matches_its_entry_and_nothing_else() {
        let dir = std::env::temp_dir().join(format!("qm-keys-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("keys.toml");
        let (key, sha) = new_key().unwrap();
        assert!(key.starts_with("qm_") && key.len() == 67, "{key}");
        std::fs::write(
            &path,
            file_entry("ci \"robot\"", Role::Run, &sha, &Scope::default()),
        )
        .unwrap();
        let ring = KeyRing::new(None, Some(&path)).unwrap();
        let c = ring.check(Some(&key)).unwrap();
        assert_eq!((&*c.name, c.role), ("ci \"robot\"", Role::Run));
        assert!(ring.check(Some(&format!("{key}x"))).is_none());
        assert!(
            ring.check(Some(&sha)).is_none(),
            "the digest is not the key"
        );
        assert!(ring.check(None).is_none());
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// A connection's memo answers for the key it holds, is replaced by another key, and
    /// holds no longer than the keys: a role changed in the file is seen on the next request.
    #[test]
    fn a_connection_memo_follows_the_key_and_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys.toml");
        let (a, a_sha) = new_key().unwrap();
        let (b, b_sha) = new_key().unwrap();
        let entries = |a_role| {
            file_entry("a", a_role, &a_sha, &Scope::default())
                + &file_entry("b", Role::Admin, &b_sha, &Scope::default())
        };
        std::fs::write(&path, entries(Role::Read)).unwrap();
        let ring = KeyRing::new(None, Some(&path)).unwrap();
        let mut memo = KeyMemo::default();
        let who = |memo: &mut KeyMemo, key: &str| {
            ring.check_remembered(Some(key), memo)
                .map(|c| (c.name.to_string(), c.role))
        };
        assert_eq!(who(&mut memo, &a), Some(("a".into(), Role::Read)));
        assert_eq!(who(&mut memo, &a), Some(("a".into(), Role::Read)));
        assert_eq!(who(&mut memo, &b), Some(("b".into(), Role::Admin)));
        assert_eq!(
            who(&mut memo, &format!("{b}x")),
            None,
            "a key one byte longer"
        );
        assert_eq!(ring.check_remembered(None, &mut memo), None);
        assert_eq!(who(&mut memo, &a), Some(("a".into(), Role::Read)));
        // The file changes (another size, so the look sees it even within the same mtime).
        std::fs::write(&path, entries(Role::Run) + "\n").unwrap();
        std::thread::sleep(RECHECK + Duration::from_millis(100));
        assert_eq!(who(&mut memo, &a), Some(("a".into(), Role::Run)));
        std::fs::write(
            &path,
            file_entry("b", Role::Admin, &b_sha, &Scope::default()),
        )
        .unwrap();
        std::thread::sleep(RECHECK + Duration::from_millis(100));
        assert_eq!(who(&mut memo, &a), None, "a revoked key is not remembered");
        assert_eq!(who(&mut memo, &b), Some(("b".into(), Role::Admin)));
    }

    /// Each pattern's fast form matches exactly what its glob matches.
    #[test]
    fn patterns_match_as_their_globs_do() {
        let patterns = [
            "noop", "no*", "*op", "*", "**", "n?op", "*o*", "no*p", "", "a*b*", "*x?", "é*", "?",
        ];
        let names = [
            "noop", "no", "op", "nop", "nooop", "", "noopx", "xnoop", "NOOP", "ab", "axxb", "é",
            "éa", "x", "xx", "xyz",
        ];
        for p in patterns {
            let fast = Pattern::new(p);
            let glob = wildmatch::WildMatch::new(p);
            for n in names {
                assert_eq!(
                    fast.matches(n),
                    glob.matches(n),
                    "{p:?} against {n:?} ({fast:?})"
                );
            }
        }
        assert!(matches!(Pattern::new("report_*"), Pattern::Prefix(_)));
        assert!(matches!(Pattern::new("*_report"), Pattern::Suffix(_)));
        assert!(matches!(Pattern::new("a*b"), Pattern::Glob(_)));
    }

    #[test]
    fn same_bytes_is_equality() {
        for (a, b) in [
            ("", ""),
            ("a", "a"),
            ("a", "b"),
            ("abcdefgh", "abcdefgh"),
            ("abcdefgh", "abcdefgi"),
            ("abcdefghi", "abcdefghj"),
            ("qm_0123456789", "qm_0123456789"),
            ("short", "shorter"),
        ] {
            assert_eq!(
                same_bytes(a.as_bytes(), b.as_bytes()),
                a == b,
                "{a:?} {b:?}"
            );
        }
    }

    #[test]
    fn bad_files_name_what_is_wrong() {
        let p = Path::new("keys.toml");
        let ok = "a".repeat(64);
        for (text, want) in [
            (
                "[[key]]\nname = \"a\"\nrole = \"root\"\nsha256 = \"\"",
                "root",
            ),
            (
                "[[key]]\nname = \"a\"\nrole = \"read\"\nsha256 = \"abc\"",
                "64 hexadecimal",
            ),
            (
                "[[key]]\nname = \"\"\nrole = \"read\"\nsha256 = \"X\"",
                "name is empty",
            ),
            (
                "[[key]]\nname = \"a\"\nrole = \"read\"\nkey = \"plain\"",
                "key",
            ),
            (
                &format!(
                    "[[key]]\nname = \"a\"\nrole = \"read\"\nsha256 = \"{ok}\"\n[[key]]\nname = \"a\"\nrole = \"run\"\nsha256 = \"{}\"",
                    "b".repeat(64)
                ),
                "another key has this name",
            ),
            (
                &format!(
                    "[[key]]\nname = \"a\"\nrole = \"read\"\nsha256 = \"{ok}\"\n[[key]]\nname = \"b\"\nrole = \"run\"\nsha256 = \"{ok}\""
                ),
                "same sha256",
            ),
        ] {
            let e = parse(p, text).unwrap_err().to_string();
            assert!(e.contains(want), "{text}: {e}");
        }
        assert!(parse(p, "").unwrap().is_empty());
    }

    #[test]
    fn an_open_api_lets_everyone_in_as_admin() {
        let ring = KeyRing::new(None, None).unwrap();
        assert_eq!(ring.check(None), Some(Caller::open()));
        let ring = KeyRing::new(Some("s3cret"), None).unwrap();
        assert_eq!(ring.check(Some(" s3cret ")).unwrap().role, Role::Admin);
        assert!(ring.check(Some("other")).is_none());
        assert!(ring.check(None).is_none());
    }
}
