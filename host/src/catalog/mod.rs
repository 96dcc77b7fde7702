//! The jobs directory: every `*.wasm` in it is a job type named by its file stem, and a
//! `<stem>.toml` beside it is that type's manifest (grants and limits, see [`manifest`]).
//!
//! The catalog owns the directory: it compiles what it finds (in parallel, on blocking
//! threads, never on the async workers), caches compiled code on disk keyed by the file's hash
//! and the engine's settings (so a restart does not recompile), and watches the directory so
//! that a new, replaced or removed file takes effect without a restart. A job that is running
//! keeps the [`JobType`] it started with: replacing a file only changes what *new* starts get.
//! A broken file never affects other job types: it is listed with its error instead. A change
//! to either file reloads the type; a manifest with an error makes the type broken (it is not
//! loaded with the grants of before, nor with none).

pub mod manifest;

pub use manifest::{Manifest, ManifestBounds, ManifestError, TypeLimits};

use crate::runtime::{JobInfo, JobProgram, LoadError, Runtime};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashMap};
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

/// A loaded job type.
pub struct JobType {
    /// The type's name: the file stem.
    pub name: String,
    /// The file it was loaded from.
    pub file: PathBuf,
    /// SHA-256 of the file, hex.
    pub sha256: String,
    /// The runnable program.
    pub program: JobProgram,
    /// The compiled params schema.
    pub validator: Arc<jsonschema::Validator>,
    /// Whether the compiled code came from the on-disk cache.
    pub from_cache: bool,
    /// Its manifest (the defaults when it has none).
    pub manifest: Manifest,
    /// How long loading it took (read, hash, compile or load cached code, `describe`).
    pub load_time: Duration,
}

impl JobType {
    /// What the job says about itself.
    pub fn info(&self) -> &JobInfo {
        self.program.info()
    }
}

/// A file in the jobs directory that could not be loaded, and why.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct BrokenFile {
    /// The would-be job type (file stem).
    pub name: String,
    /// The file.
    pub file: String,
    /// Why it was refused.
    pub error: String,
}

/// Catalog settings.
#[derive(Debug, Clone)]
pub struct CatalogConfig {
    /// The jobs directory.
    pub dir: PathBuf,
    /// Where compiled code is cached.
    pub cache_dir: PathBuf,
    /// Larger files are refused without being read whole.
    pub max_file_bytes: u64,
    /// What a manifest may ask for.
    pub bounds: ManifestBounds,
    /// How long [`Catalog::open`] waits for the first load before it returns; job types still
    /// compiling after that keep loading in the background (listed as loading).
    pub startup_wait: Duration,
}

#[derive(Default)]
struct State {
    types: HashMap<String, Arc<JobType>>,
    broken: BTreeMap<String, BrokenFile>,
    /// Types being compiled (a new file, or a changed one: its old version still serves).
    loading: std::collections::BTreeSet<String>,
    /// (len, mtime) of each component and of its manifest when last looked at: a cheap
    /// "changed?" test.
    seen: HashMap<String, Stamp>,
}

type FileStamp = (u64, Option<std::time::SystemTime>);

/// How long a file must have been left alone before it is loaded: a copy in progress keeps
/// touching it.
const SETTLE: Duration = Duration::from_millis(200);

/// A job type's files as last seen: the component, and the manifest if there is one.
type Stamp = (FileStamp, Option<FileStamp>);

fn stamp(path: &Path) -> Option<FileStamp> {
    let meta = std::fs::metadata(path).ok()?;
    meta.is_file().then(|| (meta.len(), meta.modified().ok()))
}

/// The manifest's path beside a component.
pub fn manifest_path(component: &Path) -> PathBuf {
    component.with_extension("toml")
}

/// The set of loaded job types, kept in step with the jobs directory.
pub struct Catalog {
    runtime: Runtime,
    cfg: CatalogConfig,
    engine_key: String,
    state: RwLock<State>,
    rescan_lock: tokio::sync::Mutex<()>,
    /// Bumped whenever the set of types (or broken files) changes.
    changes: tokio::sync::watch::Sender<u64>,
    /// Each type's component SHA-256 as of a `changes` generation (see [`Catalog::code`]).
    code: std::sync::Mutex<(u64, Arc<HashMap<String, String>>)>,
}

impl Catalog {
    /// Creates the catalog and loads every `*.wasm` in the directory.
    pub async fn open(runtime: Runtime, cfg: CatalogConfig) -> std::io::Result<Arc<Self>> {
        std::fs::create_dir_all(&cfg.dir)?;
        let mut h = std::collections::hash_map::DefaultHasher::new();
        runtime
            .engine()
            .precompile_compatibility_hash()
            .hash(&mut h);
        let catalog = Arc::new(Catalog {
            runtime,
            engine_key: format!("{:016x}", h.finish()),
            cfg,
            state: RwLock::new(State::default()),
            rescan_lock: tokio::sync::Mutex::new(()),
            changes: tokio::sync::watch::Sender::new(0),
            code: std::sync::Mutex::new((u64::MAX, Arc::default())),
        });
        // Large components (a Python job: ~20 MB) take seconds to compile the first time:
        // serve once the rest is loaded, and let them finish in the background.
        let first = {
            let c = catalog.clone();
            tokio::spawn(async move { c.rescan().await })
        };
        if tokio::time::timeout(catalog.cfg.startup_wait, first)
            .await
            .is_err()
        {
            tracing::info!(loading = ?catalog.loading(), "serving while job types still compile");
        }
        Ok(catalog)
    }

    /// Job types being compiled now (new or changed files).
    pub fn loading(&self) -> Vec<String> {
        self.state
            .read()
            .map(|s| s.loading.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// The jobs directory.
    pub fn dir(&self) -> &Path {
        &self.cfg.dir
    }

    /// A loaded job type by name.
    pub fn get(&self, name: &str) -> Option<Arc<JobType>> {
        self.state.read().ok()?.types.get(name).cloned()
    }

    /// Loaded types (sorted by name) and broken files.
    pub fn list(&self) -> (Vec<Arc<JobType>>, Vec<BrokenFile>) {
        let Ok(s) = self.state.read() else {
            return (Vec::new(), Vec::new());
        };
        let mut types: Vec<_> = s.types.values().cloned().collect();
        types.sort_by(|a, b| a.name.cmp(&b.name));
        (types, s.broken.values().cloned().collect())
    }

    /// A receiver that sees a new value each time a job type is loaded, replaced or removed, or
    /// a file breaks (e.g. for MCP's `tools/list_changed`).
    pub fn changes(&self) -> tokio::sync::watch::Receiver<u64> {
        self.changes.subscribe()
    }

    /// Names of the loaded types, sorted.
    pub fn names(&self) -> Vec<String> {
        self.list().0.iter().map(|t| t.name.clone()).collect()
    }

    /// The SHA-256 of each loaded type's component (what the store records on the jobs this
    /// host claims). Rebuilt only when the set of types changed.
    pub fn code(&self) -> Arc<HashMap<String, String>> {
        let generation = *self.changes.borrow();
        let mut cached = self.code.lock().unwrap_or_else(|p| p.into_inner());
        if cached.0 != generation {
            let map = self
                .list()
                .0
                .iter()
                .map(|t| (t.name.clone(), t.sha256.clone()))
                .collect();
            *cached = (generation, Arc::new(map));
        }
        cached.1.clone()
    }

    /// Loaded types split by whether their manifest caps concurrent runs: the names of the
    /// uncapped ones, and each capped one with its cap.
    pub fn names_by_cap(&self) -> (Vec<String>, Vec<(String, usize)>) {
        let mut free = Vec::new();
        let mut capped = Vec::new();
        for t in self.list().0 {
            match t.manifest.limits.max_concurrent {
                Some(cap) => capped.push((t.name.clone(), cap)),
                None => free.push(t.name.clone()),
            }
        }
        (free, capped)
    }

    /// Brings the catalog in step with the directory: loads new and changed files, forgets
    /// removed ones. Files are compiled in parallel on blocking threads.
    ///
    /// A file written in the last [`SETTLE`] is left as it was (its old version, if any, keeps
    /// serving) and looked at again once it has settled: a copy in progress is not loaded half
    /// written and listed as broken.
    pub async fn rescan(&self) {
        while self.rescan_once().await {
            tokio::time::sleep(SETTLE).await;
        }
    }

    /// One pass of [`Catalog::rescan`]; `true` when a file was too fresh to load.
    async fn rescan_once(&self) -> bool {
        let _one_at_a_time = self.rescan_lock.lock().await;
        let mut settling = false;
        let mut on_disk: HashMap<String, (PathBuf, Stamp)> = HashMap::new();
        match std::fs::read_dir(&self.cfg.dir) {
            Ok(entries) => {
                for entry in entries.flatten() {
                    let path = entry.path();
                    if path.extension().and_then(|e| e.to_str()) != Some("wasm") {
                        continue;
                    }
                    let Some(stem) = path.file_stem().and_then(|s| s.to_str()) else {
                        continue;
                    };
                    let Ok(meta) = entry.metadata() else { continue };
                    if !meta.is_file() {
                        continue;
                    }
                    let manifest = stamp(&manifest_path(&path));
                    let fresh = |t: Option<std::time::SystemTime>| {
                        t.and_then(|t| t.elapsed().ok())
                            .is_some_and(|age| age < SETTLE)
                    };
                    if fresh(meta.modified().ok()) || fresh(manifest.and_then(|m| m.1)) {
                        // Still being written, maybe: keep what was, look again shortly.
                        settling = true;
                        let keep = self
                            .state
                            .read()
                            .ok()
                            .and_then(|s| s.seen.get(stem).cloned());
                        if let Some(st) = keep {
                            on_disk.insert(stem.to_string(), (path.clone(), st));
                        }
                        continue;
                    }
                    on_disk.insert(
                        stem.to_string(),
                        (path.clone(), ((meta.len(), meta.modified().ok()), manifest)),
                    );
                }
            }
            Err(e) => {
                tracing::error!(dir = %self.cfg.dir.display(), error = %e, "cannot read the jobs directory");
                return false;
            }
        }
        let changed: Vec<(String, PathBuf)> = {
            let Ok(mut s) = self.state.write() else {
                return false;
            };
            let removed: Vec<String> = s
                .seen
                .keys()
                .filter(|k| !on_disk.contains_key(*k))
                .cloned()
                .collect();
            for name in removed {
                s.seen.remove(&name);
                let was_broken = s.broken.remove(&name).is_some();
                if s.types.remove(&name).is_some() {
                    tracing::info!(job_type = %name, "job type removed");
                    self.changes.send_modify(|g| *g += 1);
                } else if was_broken {
                    self.changes.send_modify(|g| *g += 1);
                }
            }
            on_disk
                .iter()
                .filter(|(name, (_, st))| s.seen.get(*name) != Some(st))
                .map(|(name, (path, _))| (name.clone(), path.clone()))
                .collect()
        };
        if changed.is_empty() {
            return settling;
        }
        if let Ok(mut s) = self.state.write() {
            s.loading.extend(changed.iter().map(|(n, _)| n.clone()));
        }
        let mut loads: futures::stream::FuturesUnordered<_> = changed
            .into_iter()
            .map(|(name, path)| async move {
                let res = self.load(&path).await;
                (name, path, res)
            })
            .collect();
        // Each type is ready as soon as it is compiled, not when the slowest one is.
        while let Some((name, path, res)) = futures::StreamExt::next(&mut loads).await {
            let Ok(mut s) = self.state.write() else {
                return false;
            };
            s.loading.remove(&name);
            self.changes.send_modify(|g| *g += 1);
            let st = (
                stamp(&path).unwrap_or((0, None)),
                stamp(&manifest_path(&path)),
            );
            s.seen.insert(name.clone(), st);
            match res {
                Ok(t) => {
                    tracing::info!(job_type = %name, file = %path.display(), cached = t.from_cache,
                        load_ms = t.load_time.as_secs_f64() * 1e3, job_name = %t.info().name, version = %t.info().version, "job type loaded");
                    s.broken.remove(&name);
                    s.types.insert(name, Arc::new(t));
                }
                Err(error) => {
                    tracing::warn!(job_type = %name, file = %path.display(), %error, "job file refused");
                    s.types.remove(&name);
                    s.broken.insert(
                        name.clone(),
                        BrokenFile {
                            name,
                            file: path.display().to_string(),
                            error,
                        },
                    );
                }
            }
        }
        settling
    }

    async fn load(&self, path: &Path) -> Result<JobType, String> {
        let started = std::time::Instant::now();
        let manifest_file = manifest_path(path);
        let manifest = if manifest_file.is_file() {
            Manifest::load(&manifest_file, &self.cfg.dir, &self.cfg.bounds)
                .map_err(|e| format!("manifest {}: {e}", manifest_file.display()))?
        } else {
            Manifest::default()
        };
        let runtime = self.runtime.clone();
        let path_buf = path.to_path_buf();
        let cache_dir = self.cfg.cache_dir.clone();
        let engine_key = self.engine_key.clone();
        let max = self.cfg.max_file_bytes;
        let compiled = tokio::task::spawn_blocking(move || {
            compile_cached(&runtime, &path_buf, &cache_dir, &engine_key, max)
        })
        .await
        .map_err(|e| format!("compilation task failed: {e}"))??;
        let (component, sha256, from_cache) = compiled;
        let program = self
            .runtime
            .prepare(&component)
            .await
            .map_err(|e| e.to_string())?;
        let validator = jsonschema::validator_for(&program.info().params_schema)
            .map_err(|e| format!("describe() returned an invalid params schema: {e}"))?;
        Ok(JobType {
            name: path
                .file_stem()
                .and_then(|s| s.to_str())
                .unwrap_or_default()
                .to_string(),
            file: path.to_path_buf(),
            sha256,
            program,
            validator: Arc::new(validator),
            from_cache,
            manifest,
            load_time: started.elapsed(),
        })
    }

    /// Watches the directory and rescans (debounced) on every change, until the returned
    /// watcher is dropped.
    pub fn watch(self: &Arc<Self>) -> notify::Result<notify::RecommendedWatcher> {
        use notify::Watcher;
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<()>();
        let mut watcher = notify::recommended_watcher(move |ev: notify::Result<notify::Event>| {
            if let Ok(ev) = ev
                && ev.paths.iter().any(|p| {
                    matches!(
                        p.extension().and_then(|e| e.to_str()),
                        Some("wasm" | "toml")
                    )
                })
            {
                let _ = tx.send(());
            }
        })?;
        watcher.watch(&self.cfg.dir, notify::RecursiveMode::NonRecursive)?;
        let weak = Arc::downgrade(self);
        tokio::spawn(async move {
            while rx.recv().await.is_some() {
                // Let a copy finish writing; take every event that arrived meanwhile.
                tokio::time::sleep(Duration::from_millis(100)).await;
                while rx.try_recv().is_ok() {}
                let Some(catalog) = weak.upgrade() else { break };
                catalog.rescan().await;
            }
        });
        Ok(watcher)
    }
}

type Compiled = (wasmtime::component::Component, String, bool);

fn compile_cached(
    runtime: &Runtime,
    path: &Path,
    cache_dir: &Path,
    engine_key: &str,
    max_bytes: u64,
) -> Result<Compiled, String> {
    let len = std::fs::metadata(path).map_err(|e| e.to_string())?.len();
    if len > max_bytes {
        return Err(format!(
            "file is {len} bytes, over the {max_bytes}-byte limit for job files"
        ));
    }
    if len == 0 {
        return Err(LoadError::Invalid("the file is empty".into()).to_string());
    }
    let bytes = std::fs::read(path).map_err(|e| e.to_string())?;
    let sha256: String = Sha256::digest(&bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let cached = cache_dir.join(format!("{sha256}-{engine_key}.cwasm"));
    if cached.is_file() {
        // SAFETY: files in the cache directory are written only by `compile_cached` below,
        // from this engine's own `precompile`; a stale or foreign one fails to load and is
        // recompiled.
        match unsafe { runtime.load_cached(&cached) } {
            Ok(c) => return Ok((c, sha256, true)),
            Err(e) => {
                tracing::warn!(file = %cached.display(), error = %e, "cached code unusable; recompiling")
            }
        }
    }
    let artifact = runtime.precompile(&bytes).map_err(|e| e.to_string())?;
    // A temporary name of its own per write: two types with the same bytes (copies of one
    // component) compile at once, and with a shared name one would rename the other's
    // half-written file into place.
    static WRITES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = WRITES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let written = std::fs::create_dir_all(cache_dir).and_then(|()| {
        let tmp = cached.with_extension(format!("tmp{}-{n}", std::process::id()));
        std::fs::write(&tmp, &artifact)?;
        std::fs::rename(&tmp, &cached)
    });
    let in_memory = || {
        runtime
            .compile(&bytes)
            .map(|c| (c, sha256.clone(), false))
            .map_err(|e| e.to_string())
    };
    let loaded = match written {
        // SAFETY: we just wrote this artifact from this engine's `precompile` (a rename over
        // it by another load of the same bytes puts the same artifact in its place).
        Ok(()) => unsafe { runtime.load_cached(&cached) }.map_err(|e| e.to_string()),
        Err(e) => Err(format!(
            "cannot write the code cache in {}: {e}",
            cache_dir.display()
        )),
    };
    match loaded {
        Ok(c) => Ok((c, sha256.clone(), false)),
        Err(e) => {
            tracing::warn!(file = %cached.display(), error = %e, "code cache unusable; compiling in memory");
            in_memory()
        }
    }
}
