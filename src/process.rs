//! Process facts: exit notification by pidfd, liveness, and process-group signals.

use std::os::fd::{AsFd, FromRawFd, OwnedFd};
use std::sync::mpsc::Sender;

use anyhow::{Context, Result, bail};
use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;

/// Watches a process for its exit. Dropping the guard stops the watch.
pub struct ExitWatch {
    /// Written to on drop: the watcher thread then ends without reporting.
    stop: Option<OwnedFd>,
}

impl Drop for ExitWatch {
    fn drop(&mut self) {
        if let Some(stop) = &self.stop {
            crate::doorbell::stop_listener(stop);
        }
    }
}

/// Sends `make()` on `tx` when process `pid` exits, without polling: a thread blocks in
/// `poll(2)` on a pidfd, which becomes readable when the process ends.
///
/// If `pid` is already gone the event is sent at once. Callers re-check afterwards that
/// `pid` is still the process they meant, to rule out pid reuse.
pub fn notify_exit<E: Send + 'static>(
    pid: i32,
    tx: Sender<E>,
    make: impl FnOnce() -> E + Send + 'static,
) -> Result<ExitWatch> {
    // SAFETY: pidfd_open takes a pid and flags and returns a new descriptor or -1; it
    // touches no memory of ours.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if fd < 0 {
        let err = Errno::last();
        if err == Errno::ESRCH {
            let _ = tx.send(make());
            return Ok(ExitWatch { stop: None });
        }
        bail!("failed to watch process {pid}: pidfd_open: {err} (Linux 5.3 or later is needed)");
    }
    // SAFETY: `fd` is a new descriptor returned by pidfd_open that nothing else owns.
    let pidfd = unsafe { OwnedFd::from_raw_fd(fd as i32) };
    let (stop_rx, stop_tx) =
        nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).context("failed to create a pipe")?;
    std::thread::Builder::new()
        .name(format!("exit-{pid}"))
        .spawn(move || {
            let exited = loop {
                let mut fds = [
                    PollFd::new(pidfd.as_fd(), PollFlags::POLLIN),
                    PollFd::new(stop_rx.as_fd(), PollFlags::POLLIN),
                ];
                match poll(&mut fds, PollTimeout::NONE) {
                    Err(Errno::EINTR) => continue,
                    Err(_) => break false,
                    // A stopped watch never reports, even if the process died too.
                    Ok(_) if fds[1].any().unwrap_or(true) => break false,
                    Ok(_) => break fds[0].any().unwrap_or(false),
                }
            };
            if exited {
                let _ = tx.send(make());
            }
        })
        .context("failed to start the exit watcher")?;
    Ok(ExitWatch {
        stop: Some(stop_tx),
    })
}

/// Runs `program args` and returns its trimmed stdout, or why it could not: it failed
/// to start, exited non-zero, or gave no answer within `timeout` (it is then killed).
pub fn output_within(
    timeout: std::time::Duration,
    program: &std::path::Path,
    args: &[&str],
) -> std::result::Result<String, String> {
    use std::process::{Command, Stdio};
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| e.to_string())?;
    let pid = child.id();
    let stdout = child.stdout.take();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut text = String::new();
        if let Some(mut out) = stdout {
            let _ = std::io::Read::read_to_string(&mut out, &mut text);
        }
        let _ = tx.send((child.wait(), text));
    });
    match rx.recv_timeout(timeout) {
        Ok((Ok(status), text)) if status.success() => Ok(text.trim().to_owned()),
        Ok((Ok(status), _)) => Err(format!("exited with {status}")),
        Ok((Err(e), _)) => Err(e.to_string()),
        Err(_) => {
            let _ = nix::sys::signal::kill(Pid::from_raw(pid as i32), Signal::SIGKILL);
            Err(format!("gave no answer within {}s", timeout.as_secs()))
        }
    }
}

/// Returns true if and only if a process with this pid exists.
pub fn is_alive(pid: u32) -> bool {
    let Ok(pid) = i32::try_from(pid) else {
        return false;
    };
    !matches!(
        nix::sys::signal::kill(Pid::from_raw(pid), None),
        Err(Errno::ESRCH)
    )
}

/// Returns true if and only if process `pid` is stopped (state `T` or `t` in
/// `/proc/<pid>/stat`: SIGSTOP, Ctrl-Z, or a tracer).
pub fn is_stopped(pid: i32) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    // The command name in parentheses may hold spaces and parentheses: the state is the
    // first field after the last `)`.
    stat.rsplit_once(')')
        .and_then(|(_, rest)| rest.split_whitespace().next())
        .is_some_and(|state| state == "T" || state == "t")
}

/// Sends `signal` to the process group led by `pgid`. A group that is gone is fine.
pub fn signal_group(pgid: u32, signal: Signal) {
    if let Ok(pgid) = i32::try_from(pgid) {
        let _ = killpg(Pid::from_raw(pgid), signal);
    }
}

/// Kills every process whose environment marks it as running task `task` of `agent`,
/// returning how many were signalled.
///
/// `agent-wrap` runs each command with `AGENT_NAME` and `AGENT_TASK_ID` set, and every
/// descendant inherits them. When a host was SIGKILLed its command's direct child dies
/// with it (`PR_SET_PDEATHSIG`), but grandchildren live on; the next host finds them
/// here. Matching on the environment, not on a saved pid, rules out killing an unrelated
/// process that reused a pid. Only processes of our own user are readable.
pub fn kill_task_processes(agent: &str, task: &str) -> usize {
    kill_marked(&[
        &format!("AGENT_NAME={agent}"),
        &format!("AGENT_TASK_ID={task}"),
    ])
}

/// Kills every process (but this one) whose environment holds all of `vars`
/// (`NAME=value` each), returning how many were signalled. What
/// [`kill_task_processes`] does for an agent's task, for any marking (a run's workers
/// are marked by `CLAUDE_EDITOR_HOOK_RUN` and `CLAUDE_EDITOR_HOOK_RUN_TASK`).
pub fn kill_marked(vars: &[&str]) -> usize {
    let me = std::process::id();
    let Ok(proc_dir) = std::fs::read_dir("/proc") else {
        return 0;
    };
    let mut killed = 0;
    for entry in proc_dir.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        if pid == me {
            continue;
        }
        let Ok(environ) = std::fs::read(entry.path().join("environ")) else {
            continue;
        };
        let mut found = vec![false; vars.len()];
        for var in environ.split(|&b| b == 0) {
            for (i, v) in vars.iter().enumerate() {
                found[i] |= var == v.as_bytes();
            }
        }
        if found.iter().all(|&f| f) {
            let _ = nix::sys::signal::kill(Pid::from_raw(pid as i32), Signal::SIGKILL);
            killed += 1;
        }
    }
    killed
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc::channel;
    use std::time::Duration;

    #[test]
    fn reports_exit_and_stops_when_dropped() {
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let (tx, rx) = channel();
        let watch = notify_exit(child.id() as i32, tx.clone(), || "exited").unwrap();
        assert!(rx.recv_timeout(Duration::from_millis(100)).is_err());
        child.kill().unwrap();
        assert_eq!(rx.recv_timeout(Duration::from_secs(5)), Ok("exited"));
        drop(watch);
        child.wait().unwrap();

        // A dropped watch never reports, even when the process later exits.
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        drop(notify_exit(child.id() as i32, tx, || "late").unwrap());
        child.kill().unwrap();
        child.wait().unwrap();
        assert!(rx.recv_timeout(Duration::from_millis(200)).is_err());
    }
}
