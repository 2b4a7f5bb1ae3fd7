//! Deadline-bounded waiting for the integration tests.
//!
//! Tests never sleep a fixed time to "let something happen": they poll a
//! condition at short intervals and give up, loudly, at a deadline (the
//! pattern of Nukesor/pueue `tests/helper/wait.rs`). A generous deadline
//! costs nothing when things work, because the wait ends as soon as the
//! condition holds.

use std::path::Path;
use std::thread;
use std::time::{Duration, Instant};

/// How long a poll loop sleeps between two checks.
pub const POLL_INTERVAL: Duration = Duration::from_millis(20);

/// How long [`output_with_timeout`] lets the pipes drain after the child exits.
const PIPE_GRACE: Duration = Duration::from_secs(5);

/// Calls `f` until it returns `Some`, and returns that value.
///
/// Panics with `what` in the message if `f` still returns `None` after
/// `timeout`. `f` is always called at least once, and once more at the
/// deadline, so a condition that became true while we slept is not missed.
pub fn wait_until<T>(timeout: Duration, what: &str, f: impl FnMut() -> Option<T>) -> T {
    wait_until_or(timeout, f)
        .unwrap_or_else(|| panic!("timed out after {timeout:?} waiting for {what}"))
}

/// Waits until `path` exists; panics after `timeout`.
pub fn wait_for_file(path: &Path, timeout: Duration) {
    wait_until(timeout, &format!("file {}", path.display()), || {
        path.exists().then_some(())
    });
}

/// Runs `cmd` with stdin from `/dev/null`, capturing stdout and stderr, and
/// kills its whole process group if it has not exited after `timeout`
/// (then panics). The child gets its own process group so that the kill also
/// reaches anything it started.
pub fn output_with_timeout(
    cmd: &mut std::process::Command,
    timeout: Duration,
) -> std::process::Output {
    use std::io::Read;
    use std::os::unix::process::CommandExt;
    use std::process::Stdio;

    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .unwrap_or_else(|e| panic!("failed to spawn {cmd:?}: {e}"));
    // Drain both pipes on threads so a full pipe cannot stall the child.
    let drain = |mut pipe: Box<dyn Read + Send>| {
        thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = pipe.read_to_end(&mut buf);
            buf
        })
    };
    let stdout = drain(Box::new(child.stdout.take().expect("piped stdout")));
    let stderr = drain(Box::new(child.stderr.take().expect("piped stderr")));
    let group = nix::unistd::Pid::from_raw(child.id().cast_signed());
    let status = wait_until_or(timeout, || child.try_wait().expect("try_wait"));
    let kill_group = || {
        let _ = nix::sys::signal::killpg(group, nix::sys::signal::Signal::SIGKILL);
    };
    let Some(status) = status else {
        kill_group();
        let _ = child.wait();
        panic!("{cmd:?} did not exit within {timeout:?}");
    };
    // A leftover grandchild holding a pipe open would block the readers.
    if wait_until_or(PIPE_GRACE, || {
        (stdout.is_finished() && stderr.is_finished()).then_some(())
    })
    .is_none()
    {
        kill_group();
    }
    std::process::Output {
        status,
        stdout: stdout.join().expect("stdout reader"),
        stderr: stderr.join().expect("stderr reader"),
    }
}

/// Like [`wait_until`], but returns `None` on timeout instead of panicking.
pub fn wait_until_or<T>(timeout: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = f() {
            return Some(value);
        }
        let now = Instant::now();
        if now >= deadline {
            return None;
        }
        thread::sleep(POLL_INTERVAL.min(deadline - now));
    }
}
