//! Process facts: exit notification by pidfd, liveness, and process-group termination.

use std::os::fd::{FromRawFd, OwnedFd};
use std::sync::mpsc::Sender;

use anyhow::Result;
use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;

/// Sends `make()` on `tx` when process `pid` exits, without polling: a thread blocks in
/// `poll(2)` on a pidfd, which becomes readable when the process ends.
///
/// If `pid` is already gone the event is sent at once. The caller re-checks that `pid`
/// is still the process it meant after this returns, to rule out pid reuse.
pub fn notify_exit<E: Send + 'static>(pid: i32, tx: Sender<E>, make: impl FnOnce() -> E + Send + 'static) -> Result<()> {
    // SAFETY: pidfd_open takes a pid and flags and returns a new descriptor or -1; it
    // touches no memory of ours.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if fd < 0 {
        // ESRCH: already gone. Anything else (an old kernel): report it as gone too
        // would be wrong, so surface the error.
        let err = Errno::last();
        if err == Errno::ESRCH {
            let _ = tx.send(make());
            return Ok(());
        }
        anyhow::bail!("failed to watch process {pid}: pidfd_open: {err}");
    }
    // SAFETY: `fd` is a new descriptor returned by pidfd_open that nothing else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(fd as i32) };
    std::thread::Builder::new()
        .name(format!("exit-{pid}"))
        .spawn(move || {
            loop {
                let mut fds = [PollFd::new(std::os::fd::AsFd::as_fd(&fd), PollFlags::POLLIN)];
                match poll(&mut fds, PollTimeout::NONE) {
                    Err(Errno::EINTR) => continue,
                    _ => break,
                }
            }
            let _ = tx.send(make());
        })?;
    Ok(())
}

/// Returns true if and only if a process with this pid exists.
pub fn is_alive(pid: u32) -> bool {
    let Ok(pid) = i32::try_from(pid) else { return false };
    !matches!(
        nix::sys::signal::kill(Pid::from_raw(pid), None),
        Err(Errno::ESRCH)
    )
}

/// Sends `signal` to the process group led by `pgid`. A group that is gone is fine.
pub fn signal_group(pgid: u32, signal: Signal) {
    if let Ok(pgid) = i32::try_from(pgid) {
        let _ = killpg(Pid::from_raw(pgid), signal);
    }
}
