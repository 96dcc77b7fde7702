//! Files: host directories mounted at guest paths, read-only or read-write.
//!
//! Why preopens: WASI gives a guest no ambient filesystem; it reaches files only through the
//! directories it was handed, and every path is resolved inside them by the host (cap-std):
//! `..` past the mount, an absolute path elsewhere and a symlink that points outside all fail
//! with an error, never with the file. A read-only mount refuses writes, creates, renames and
//! deletes.
//!
//! Why file I/O runs on the job's own thread: wasmtime-wasi hands every file operation of a
//! guest to tokio's blocking pool by default, a hand-off to another thread and back that costs
//! ~30 µs, for each read of at most 64 KiB. On a local filesystem a read from the page cache
//! takes a few microseconds, so the hand-off *was* the cost: a guest read files at a fifth of
//! native speed. A run whose directories are all on local filesystems therefore does its file
//! I/O inline, on the job's thread ([`DirIo::Inline`]); jobs run on a runtime of their own, so
//! this never holds up the API. A directory on a network or user-space filesystem (NFS, SMB,
//! FUSE, Ceph, 9p…), where one call can block for seconds, keeps the hand-off
//! ([`DirIo::Pool`]), as does a mount whose manifest says `io = "pool"`. A stop still ends a
//! run blocked in I/O: every call reads or writes at most 64 KiB, and the guest is stopped as
//! soon as that call returns.

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

/// The WASI filesystem interface the host links (wasmtime-wasi 48): guests built against any
/// 0.2.x version are linked to it.
const FILESYSTEM_TYPES: &str = "wasi:filesystem/types@0.2.12";

/// Replaces `descriptor.symlink-at` for every job: a job may not create symbolic links.
///
/// Why: a job cannot follow a link out of its mount (every path is resolved inside it), but
/// whatever reads the directory next on the host (a report server, a backup, an operator's
/// shell) follows links the host's way. A job that could write `out/s -> ../../..` or
/// `out/t -> /etc` would leave a trap for them. Deciding whether a relative target stays inside
/// the mount would need the link's place in the mount, which a descriptor opened deeper does
/// not carry, and a chain of links each harmless alone can still lead out; so no link is made at
/// all. The guest gets `not-permitted` (`PermissionDenied` in Rust, `PermissionError` in
/// Python), and the job's logs say why. Hard links stay allowed: they cannot point outside the
/// mount (both ends are resolved inside it) and hold no path.
pub(crate) fn refuse_symlinks(
    linker: &mut wasmtime::component::Linker<crate::runtime::JobState>,
) -> wasmtime::Result<()> {
    use crate::runtime::events::{LogLevel, LogLine, LogSource};
    use wasmtime::component::Resource;
    use wasmtime_wasi::filesystem::Descriptor;
    use wasmtime_wasi::p2::bindings::filesystem::types::ErrorCode;
    linker.allow_shadowing(true);
    linker.instance(FILESYSTEM_TYPES)?.func_wrap_async(
        "[method]descriptor.symlink-at",
        |mut cx, (_dir, target, link): (Resource<Descriptor>, String, String)| {
            let state = cx.data_mut();
            tracing::info!(job_id = %state.job_id, link = %link, target = %target, "symbolic link refused");
            state.budget.emit(
                &*state.events,
                LogLine {
                    source: LogSource::Host,
                    level: LogLevel::Warn,
                    text: format!(
                        "fs: refused to create the symbolic link {link} -> {target}: jobs may not create links in granted directories"
                    ),
                },
            );
            Box::new(async { Ok((Err::<(), ErrorCode>(ErrorCode::NotPermitted),)) })
        },
    )?;
    linker.allow_shadowing(false);
    Ok(())
}

/// Where a mount's file operations run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DirIo {
    /// On the job's own thread: no hand-off (local filesystems).
    Inline,
    /// On tokio's blocking pool, a hand-off per call (network and user-space filesystems, where
    /// one call may block for long).
    Pool,
}

/// What a manifest asks of a mount's I/O (`io = "auto" | "inline" | "pool"`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IoChoice {
    /// Inline on a local filesystem, the pool elsewhere (the default).
    #[default]
    Auto,
    /// Always inline.
    Inline,
    /// Always the pool.
    Pool,
}

/// Whether a filesystem (by its `statfs` magic number) is one whose calls return promptly:
/// the local disk and memory filesystems. Anything else, known remote or unknown, is not.
pub fn is_local_filesystem(magic: i64) -> bool {
    const LOCAL: [i64; 13] = [
        0xEF53,      // ext2/3/4
        0x5846_5342, // xfs
        0x9123_683E, // btrfs
        0x0102_1994, // tmpfs
        0x8584_58f6, // ramfs
        0x794c_7630, // overlayfs
        0xF2F5_2010, // f2fs
        0x2FC1_2FC1, // zfs
        0xca45_1a4e, // bcachefs
        0x3153_464a, // jfs
        0x5265_4973, // reiserfs
        0x4d44,      // vfat
        0x5346_544e, // ntfs3
    ];
    LOCAL.contains(&magic)
}

/// A `statfs` result's filesystem magic number (its C type differs between architectures).
#[allow(clippy::unnecessary_cast)]
fn magic(st: &rustix::fs::StatFs) -> i64 {
    st.f_type as i64
}

/// The I/O mode `choice` gives a directory at `path`.
fn io_for(path: &Path, choice: IoChoice) -> DirIo {
    match choice {
        IoChoice::Inline => DirIo::Inline,
        IoChoice::Pool => DirIo::Pool,
        IoChoice::Auto => match rustix::fs::statfs(path) {
            Ok(st) if is_local_filesystem(magic(&st)) => DirIo::Inline,
            _ => DirIo::Pool,
        },
    }
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
    /// Where its file operations run (decided at load).
    pub io: DirIo,
}

impl DirGrant {
    /// Checks a grant: the host directory exists (relative paths are taken from `base`, the
    /// jobs directory), and the guest path is absolute and plain. Its I/O runs inline when the
    /// directory is on a local filesystem ([`IoChoice::Auto`]).
    pub fn new(base: &Path, host: &Path, guest: &str, writable: bool) -> Result<Self, DirError> {
        Self::with_io(base, host, guest, writable, IoChoice::Auto)
    }

    /// [`DirGrant::new`] with the manifest's `io` choice.
    pub fn with_io(
        base: &Path,
        host: &Path,
        guest: &str,
        writable: bool,
        io: IoChoice,
    ) -> Result<Self, DirError> {
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
        let io = io_for(&canonical, io);
        Ok(DirGrant {
            host: canonical,
            guest: guest.to_string(),
            writable,
            io,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_filesystems_run_inline_and_others_on_the_pool() {
        assert!(is_local_filesystem(0xEF53), "ext4");
        assert!(is_local_filesystem(0x0102_1994), "tmpfs");
        assert!(!is_local_filesystem(0x6969), "nfs");
        assert!(!is_local_filesystem(0x6573_5546), "fuse");
        assert!(!is_local_filesystem(0xFE53_4D42), "smb2");
        assert!(!is_local_filesystem(0), "unknown");
    }

    #[test]
    fn the_manifest_choice_wins_over_the_filesystem() {
        let dir = std::env::temp_dir();
        let g = |io| DirGrant::with_io(&dir, &dir, "/d", false, io).unwrap().io;
        assert_eq!(g(IoChoice::Pool), DirIo::Pool);
        assert_eq!(g(IoChoice::Inline), DirIo::Inline);
        let local = rustix::fs::statfs(&dir)
            .map(|s| is_local_filesystem(magic(&s)))
            .unwrap();
        let want = if local { DirIo::Inline } else { DirIo::Pool };
        assert_eq!(g(IoChoice::Auto), want);
    }
}
