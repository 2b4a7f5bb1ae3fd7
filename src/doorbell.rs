//! The task doorbell: how an agent wakes the coordinator waiting on a task.
//!
//! The coordinator creates `doorbells/<task id>` in the runtime state, a FIFO, and keeps it open for reading;
//! whoever writes `done.json` rings it by writing one byte. A FIFO is used instead of a
//! file watch because closing an inotify descriptor blocks for an RCU grace period
//! (10–25 ms measured here) and Claude Code waits for the coordinator to exit; a pipe
//! closes at once. Ringing never blocks and never fails the ringer: with nobody
//! listening (coordinator gone) or the pipe already full (already rung) it is a no-op.

use std::fs::OpenOptions;
use std::io::{ErrorKind, Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::mpsc::Sender;

use anyhow::{Context, Result};
use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::stat::Mode;

/// A listening doorbell. Dropping it stops the listener thread and removes the FIFO.
pub struct Doorbell {
    stop: OwnedFd,
    path: std::path::PathBuf,
}

impl Drop for Doorbell {
    fn drop(&mut self) {
        stop_listener(&self.stop);
        // Nobody rings a doorbell nobody listens to; unlinking never blocks.
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Tells a listener thread to end by writing to its stop pipe. An explicit byte, not
/// the hang-up of closing the pipe: a child forked by another thread holds a copy of
/// the write end until its exec, which would delay the hang-up past our next ring.
pub(crate) fn stop_listener(stop: &OwnedFd) {
    let _ = nix::unistd::write(stop, b"x");
}

impl Doorbell {
    /// Creates the FIFO at `path` and sends `make()` on `tx` each time it is rung.
    pub fn listen<E: Send + 'static>(
        path: &Path,
        tx: Sender<E>,
        make: impl Fn() -> E + Send + 'static,
    ) -> Result<Self> {
        nix::unistd::mkfifo(path, Mode::S_IRUSR | Mode::S_IWUSR)
            .with_context(|| format!("failed to create {}", path.display()))?;
        // Read-write: we count as a writer ourselves, so the FIFO never reports hang-up
        // when a ringer closes it, and opening does not wait for a ringer.
        let mut fifo = OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_NONBLOCK | libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(path)
            .with_context(|| format!("failed to open {}", path.display()))?;
        let (stop_rx, stop_tx) =
            nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).context("failed to create a pipe")?;
        std::thread::Builder::new()
            .name("doorbell".into())
            .spawn(move || {
                loop {
                    let mut fds = [
                        PollFd::new(fifo.as_fd(), PollFlags::POLLIN),
                        PollFd::new(stop_rx.as_fd(), PollFlags::POLLIN),
                    ];
                    match poll(&mut fds, PollTimeout::NONE) {
                        Err(Errno::EINTR) => continue,
                        Err(_) => return,
                        Ok(_) if fds[1].any().unwrap_or(true) => return,
                        Ok(_) => {}
                    }
                    let mut buf = [0u8; 64];
                    while matches!(fifo.read(&mut buf), Ok(n) if n > 0) {}
                    if tx.send(make()).is_err() {
                        return;
                    }
                }
            })
            .context("failed to start the doorbell listener")?;
        Ok(Self {
            stop: stop_tx,
            path: path.to_path_buf(),
        })
    }
}

/// Rings the doorbell at `path`, if anyone listens. Never blocks.
pub fn ring(path: &Path) {
    let fifo = OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path);
    match fifo {
        Ok(mut f) => {
            use std::os::unix::fs::FileTypeExt;
            // Only a FIFO is a doorbell; never write into anything else planted there.
            // A full pipe (EAGAIN) has been rung already.
            if f.metadata().is_ok_and(|m| m.file_type().is_fifo()) {
                let _ = f.write(b"!");
            }
        }
        // ENXIO: nobody listens; NotFound: no doorbell (an older or a gone coordinator).
        Err(e) if e.kind() == ErrorKind::NotFound || e.raw_os_error() == Some(libc::ENXIO) => {}
        Err(_) => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc::channel;
    use std::time::Duration;

    #[test]
    fn rings_wake_the_listener_until_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("wake");
        let (tx, rx) = channel();
        let bell = Doorbell::listen(&path, tx, || "rang").unwrap();
        ring(&path);
        assert_eq!(rx.recv_timeout(Duration::from_secs(5)), Ok("rang"));
        ring(&path);
        assert_eq!(rx.recv_timeout(Duration::from_secs(5)), Ok("rang"));
        drop(bell);
        ring(&path); // nobody listens: a no-op, not a hang
        assert!(
            rx.recv_timeout(Duration::from_millis(300)).is_err(),
            "a dropped doorbell must not report rings"
        );
        ring(&dir.path().join("missing"));
    }
}
