//! The host lock: proof that an agent host is alive.
//!
//! `agent-wrap` holds a POSIX write lock (`fcntl(F_SETLK)`) on `agents/<name>/lock` for
//! its whole life. The kernel drops the lock when the process dies, however it dies, so
//! a crashed host can never look alive. Unlike `flock`, `F_GETLK` tells a reader the pid
//! of the holder without taking the lock, so probing never disturbs a host that is just
//! starting. The one POSIX-lock hazard, that closing *any* descriptor of the file drops
//! the lock, is avoided by never opening the lock file elsewhere in the host.

use std::fs::{File, OpenOptions};
use std::io::ErrorKind;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use anyhow::{Context, Result};
use nix::errno::Errno;
use nix::fcntl::{FcntlArg, fcntl};

/// A held host lock. Dropping it releases the lock.
#[derive(Debug)]
pub struct HostLock {
    file: File,
}

fn whole_file_lock(kind: libc::c_short) -> libc::flock {
    // SAFETY: `flock` is a plain C struct for which all-zero bytes are a valid value.
    let mut fl: libc::flock = unsafe { std::mem::zeroed() };
    fl.l_type = kind;
    fl.l_whence = libc::SEEK_SET as libc::c_short;
    fl
}

fn open_lock_file(path: &Path, create: bool) -> std::io::Result<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(create)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)
}

impl HostLock {
    /// Takes the lock at `path`, or returns the pid of the live process holding it.
    pub fn acquire(path: &Path) -> Result<std::result::Result<HostLock, i32>> {
        let file = open_lock_file(path, true)
            .with_context(|| format!("failed to open lock file {}", path.display()))?;
        let fl = whole_file_lock(libc::F_WRLCK as libc::c_short);
        match fcntl(&file, FcntlArg::F_SETLK(&fl)) {
            Ok(_) => Ok(Ok(HostLock { file })),
            Err(Errno::EAGAIN | Errno::EACCES) => match lock_holder(path)? {
                Some(pid) => Ok(Err(pid)),
                // The holder died between our two calls: try once more.
                None => Self::acquire(path),
            },
            Err(e) => Err(e).with_context(|| format!("failed to lock {}", path.display())),
        }
    }
}

impl HostLock {
    /// Returns true if and only if `path` is still the file this lock is on: false after
    /// someone removed or replaced it, when readers can no longer see the lock.
    pub fn is_at(&self, path: &Path) -> bool {
        use std::os::unix::fs::MetadataExt;
        match (self.file.metadata(), std::fs::symlink_metadata(path)) {
            (Ok(held), Ok(there)) => held.dev() == there.dev() && held.ino() == there.ino(),
            _ => false,
        }
    }
}

/// The pid of the process holding the host lock at `path`, or `None` when nobody holds
/// it (the host is offline) or the file does not exist.
pub fn lock_holder(path: &Path) -> Result<Option<i32>> {
    let file = match open_lock_file(path, false) {
        Ok(f) => f,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(e).with_context(|| format!("failed to open lock file {}", path.display()));
        }
    };
    let mut fl = whole_file_lock(libc::F_WRLCK as libc::c_short);
    fcntl(&file, FcntlArg::F_GETLK(&mut fl))
        .with_context(|| format!("failed to query lock {}", path.display()))?;
    Ok((fl.l_type != libc::F_UNLCK as libc::c_short).then_some(fl.l_pid))
}
