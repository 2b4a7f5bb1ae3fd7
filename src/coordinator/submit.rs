//! Auto-submit: after the answer is written, press Enter in the chief's tmux pane, so
//! the chief goes on by itself (docs/claude-code.md#chief-auto-submit).
//!
//! Claude Code reads the prompt file only after its editor (us) has exited, so the Enter
//! must come from a detached helper (`claude-editor-hook submit-after`), which waits for
//! our exit by pidfd, gives Claude Code a moment to load the box, presses Enter, and
//! confirms through the chief's session registry turning `busy` (docs/claude-code.md#session-registry), pressing
//! Enter again, at most three times, if it does not.

use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::sync::mpsc::channel;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

/// Set (to 1) to submit every answer.
pub const SUBMIT_ENV: &str = "CLAUDE_EDITOR_HOOK_SUBMIT";
/// How long after our exit Claude Code needs to load the file into its box.
const SETTLE: Duration = Duration::from_millis(150);
/// How long the chief may take to start the turn after Enter.
const CONFIRM: Duration = Duration::from_secs(1);
const TRIES: u32 = 3;

/// Starts the detached helper for the chief in `$TMUX_PANE`. Without tmux there is no
/// pane to press Enter in, and the answer simply waits in the box.
pub fn submit_after_exit() -> Result<bool> {
    let Ok(pane) = std::env::var("TMUX_PANE") else {
        return Ok(false);
    };
    let exe = std::env::current_exe()?;
    let me = std::process::id().to_string();
    let chief = nix::unistd::getppid().as_raw().to_string();
    let mut cmd = Command::new(exe);
    cmd.args([
        "submit-after",
        "--pid",
        &me,
        "--chief",
        &chief,
        "--pane",
        &pane,
    ])
    .stdin(Stdio::null())
    .stdout(Stdio::null())
    .stderr(Stdio::null());
    // SAFETY: setsid(2) is async-signal-safe; it detaches the helper from the chief's
    // session so it outlives us and never touches the chief's terminal.
    unsafe {
        cmd.pre_exec(|| {
            libc::setsid();
            Ok(())
        });
    }
    cmd.spawn().context("failed to start the submit helper")?;
    Ok(true)
}

/// The helper: waits for `pid` to exit, then presses Enter in `pane` until the chief
/// (`chief` pid) is busy.
pub fn run_helper(pid: i32, chief: i32, pane: &str) -> Result<i32> {
    let (tx, rx) = channel();
    let _watch = crate::process::notify_exit(pid, tx, || ())?;
    let _ = rx.recv_timeout(Duration::from_secs(60));
    let registry = u32::try_from(chief)
        .ok()
        .and_then(crate::claude_code::registry_path)
        .context("no HOME, so no session registry to confirm with")?;
    // Woken by every change of the registry directory.
    let (tx, changes) = channel();
    let mut watcher = crate::watch::DirWatcher::new(tx, || ())?;
    if let Some(dir) = registry.parent() {
        watcher.watch(dir)?;
    }
    // Without the chief's registry there is no way to confirm: one Enter only, never a
    // second that could submit what the human types next.
    let tries = if registry.exists() { TRIES } else { 1 };
    for _ in 0..tries {
        // Claude Code loads the box right after we exit; this pause is a deadline for
        // that, not a poll (docs/claude-code.md#chief-auto-submit: 0.05 s raced, 0.3 s held).
        std::thread::sleep(SETTLE);
        crate::tmux::send_key(pane, "Enter")?;
        let deadline = Instant::now() + CONFIRM;
        while !busy(&registry) {
            let left = deadline.saturating_duration_since(Instant::now());
            if changes.recv_timeout(left).is_err() {
                break;
            }
        }
        if busy(&registry) {
            return Ok(0);
        }
    }
    Ok(1)
}

fn busy(path: &std::path::Path) -> bool {
    crate::claude_code::Registry::read_path(path).is_some_and(|r| !r.is_idle())
}
