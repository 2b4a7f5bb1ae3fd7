//! How a supervised host tells `agent-wrap --restart` that it is up: one byte on a pipe
//! whose write end the supervisor passes to it (`agent-wrap --ready-fd N`, internal).
//! The supervisor reads the pipe and then waits for the host's exit on the same thread,
//! so "up" always arrives before "ended"; a pipe that closes without a byte means the
//! host ended before it was up.

use std::io::Write;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::{Arc, Mutex};

use anyhow::{Context, Result, bail};

/// The write end of the readiness pipe, held by the host.
#[derive(Clone, Debug)]
pub struct ReadyPipe(Arc<Mutex<Option<std::fs::File>>>);

impl ReadyPipe {
    /// Takes descriptor `fd` (from `--ready-fd`): it must be an open pipe. It is marked
    /// close-on-exec at once, so no program the host starts holds it open.
    pub fn take(fd: i32) -> Result<Self> {
        use nix::fcntl::{FcntlArg, FdFlag, fcntl};
        use nix::sys::stat::{SFlag, fstat};
        // SAFETY: `fd` is only borrowed for fstat, which reads its status and fails with
        // EBADF when it is not open; nothing is closed or changed.
        let borrowed = unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) };
        let stat = fstat(borrowed).with_context(|| format!("--ready-fd {fd} is not open"))?;
        if SFlag::from_bits_truncate(stat.st_mode) & SFlag::S_IFMT != SFlag::S_IFIFO {
            bail!("--ready-fd {fd} is not a pipe");
        }
        // SAFETY: the supervisor passed this descriptor to us for our own use; it is
        // open (checked above) and nothing else in this process owns it.
        let owned = unsafe { OwnedFd::from_raw_fd(fd) };
        fcntl(&owned, FcntlArg::F_SETFD(FdFlag::FD_CLOEXEC))
            .with_context(|| format!("failed to mark --ready-fd {fd} close-on-exec"))?;
        debug_assert_eq!(owned.as_raw_fd(), fd);
        Ok(Self(Arc::new(Mutex::new(Some(owned.into())))))
    }

    /// Tells the supervisor the host is up, once; later calls do nothing.
    pub fn report(&self) {
        let mut pipe = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(mut file) = pipe.take() {
            // A supervisor that is gone cannot be told; the host goes on regardless.
            let _ = file.write_all(b"u");
        }
    }
}
