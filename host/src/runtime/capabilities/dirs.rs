//! Files: host directories mounted at guest paths, read-only or read-write.
//!
//! Why preopens: WASI gives a guest no ambient filesystem; it reaches files only through the
//! directories it was handed, and every path is resolved inside them by the host (cap-std):
//! `..` past the mount, an absolute path elsewhere and a symlink that points outside all fail
//! with an error, never with the file. A read-only mount refuses writes, creates, renames and
//! deletes.

use std::path::{Component, Path, PathBuf};
use wasmtime_wasi::{FsPerms, WasiCtxBuilder};

/// Why a directory grant was refused at load.
#[derive(Debug, thiserror::Error)]
pub enum DirError {
    /// The host directory is missing or unreadable.
    #[error("host directory '{path}' cannot be opened: {source}")]
    Host {
        /// The directory as written (resolved against the jobs directory).
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The host path is a file, not a directory.
    #[error("host path '{0}' is not a directory")]
    NotADir(PathBuf),
    /// The guest path is not absolute or holds `.`/`..`.
    #[error("guest path '{0}' must be absolute and hold no '.' or '..' (e.g. /data/in)")]
    Guest(String),
}

/// One mounted directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirGrant {
    /// The host directory, canonical (symlinks resolved at load).
    pub host: PathBuf,
    /// Where the guest sees it, e.g. `/data/in`.
    pub guest: String,
    /// Whether the guest may create, write, rename and delete in it.
    pub writable: bool,
}

impl DirGrant {
    /// Checks a grant: the host directory exists (relative paths are taken from `base`, the
    /// jobs directory), and the guest path is absolute and plain.
    pub fn new(base: &Path, host: &Path, guest: &str, writable: bool) -> Result<Self, DirError> {
        let joined = base.join(host);
        let canonical = std::fs::canonicalize(&joined).map_err(|source| DirError::Host {
            path: joined.clone(),
            source,
        })?;
        if !canonical.is_dir() {
            return Err(DirError::NotADir(joined));
        }
        let gp = Path::new(guest);
        if !gp.is_absolute()
            || gp
                .components()
                .any(|c| matches!(c, Component::CurDir | Component::ParentDir))
        {
            return Err(DirError::Guest(guest.to_string()));
        }
        let guest = match guest.trim_end_matches('/') {
            "" => "/",
            g => g,
        };
        Ok(DirGrant {
            host: canonical,
            guest: guest.to_string(),
            writable,
        })
    }

    /// Mounts it into one run's WASI context.
    pub(crate) fn apply(&self, wasi: &mut WasiCtxBuilder) -> Result<(), wasmtime::Error> {
        let perms = if self.writable {
            FsPerms::ReadWrite
        } else {
            FsPerms::ReadOnly
        };
        wasi.preopened_dir(&self.host, &self.guest, perms)?;
        Ok(())
    }
}
