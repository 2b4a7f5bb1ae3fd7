//! A private tmux server per test.
//!
//! Each `TmuxServer` has its socket inside its own `TempDir` (`tmux -S`), so
//! tests never touch the user's tmux or each other's, and it is killed on
//! drop together with the programs in its panes. The server starts from an
//! empty environment; a pane sees only what `new_session` passes with `-e`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::thread;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use tempfile::TempDir;

use super::claude::{find_on_path, skip_or_fail};
use super::wait::POLL_INTERVAL;

/// Config loaded instead of `~/.tmux.conf`. `remain-on-exit` keeps a dead
/// pane (and its last screen) around so a test can inspect how it ended.
const TMUX_CONF: &str = "set-option -g remain-on-exit on\nset-option -g history-limit 10000\n";

/// Pane size: wide enough that Claude Code's lines do not wrap.
const PANE_WIDTH: u32 = 200;
const PANE_HEIGHT: u32 = 50;

/// How long drop waits for pane programs to exit after SIGHUP.
const EXIT_GRACE: Duration = Duration::from_secs(5);

/// Returns the tmux binary, or `None` after printing a skip notice.
/// Panics instead of skipping when `REQUIRE_CLAUDE_E2E=1`.
pub fn require_tmux(test_name: &str) -> Option<PathBuf> {
    let found = find_on_path("tmux");
    if found.is_none() {
        skip_or_fail(
            test_name,
            "tmux not found on PATH (install it: apt-get install tmux)",
        );
    }
    found
}

/// The directory holding the `tmux` found on `PATH`.
pub fn find_tmux_dir() -> Option<PathBuf> {
    find_on_path("tmux").and_then(|p| p.parent().map(Path::to_path_buf))
}

/// A tmux server on a socket in a private temp dir, killed on drop.
pub struct TmuxServer {
    dir: TempDir,
    /// Pids of the programs started in panes, reaped on drop.
    pane_pids: Vec<i32>,
}

impl Default for TmuxServer {
    fn default() -> Self {
        Self::new()
    }
}

impl TmuxServer {
    /// Prepares the socket dir; the server itself starts with the first session.
    pub fn new() -> TmuxServer {
        let dir = tempfile::Builder::new()
            .prefix("tmux-test-")
            .tempdir()
            .expect("create tmux temp dir");
        std::fs::write(dir.path().join("tmux.conf"), TMUX_CONF).expect("write tmux.conf");
        TmuxServer {
            dir,
            pane_pids: Vec::new(),
        }
    }

    /// The server's socket path, for `tmux -S` in code under test.
    pub fn socket(&self) -> PathBuf {
        self.dir.path().join("socket")
    }

    /// A `tmux -S <socket> -f <conf>` command with an almost empty environment.
    pub fn command(&self) -> Command {
        let mut cmd = Command::new("tmux");
        cmd.arg("-S")
            .arg(self.socket())
            .arg("-f")
            .arg(self.dir.path().join("tmux.conf"));
        cmd.env_clear();
        cmd.env("PATH", std::env::var_os("PATH").unwrap_or_default());
        // A UTF-8 locale, or tmux replaces Claude Code's `❯` and `●` with `_`.
        cmd.env("LANG", "C.UTF-8");
        cmd
    }

    /// Runs `tmux <args>` and panics with its stderr if it fails.
    pub fn run(&self, args: &[&str]) -> String {
        let out = self.try_run(args);
        assert!(
            out.status.success(),
            "tmux {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Runs `tmux <args>` and returns its output whatever the exit status.
    pub fn try_run(&self, args: &[&str]) -> Output {
        self.command().args(args).output().expect("run tmux")
    }

    /// Starts a detached 200x50 session running `command` (argv, run without
    /// a shell when it has more than one element) in `cwd`, with `env` set in
    /// the pane. Returns the pane id (`%N`), usable as a target. tmux sets
    /// the pane's `TERM` itself (`tmux-256color`), whatever `env` says.
    pub fn new_session(
        &mut self,
        name: &str,
        cwd: &Path,
        env: &[(String, String)],
        command: &[String],
    ) -> String {
        let mut args: Vec<String> = [
            "new-session",
            "-d",
            "-P",
            "-F",
            "#{pane_id} #{pane_pid}",
            "-s",
            name,
        ]
        .iter()
        .map(ToString::to_string)
        .collect();
        args.extend([
            "-x".into(),
            PANE_WIDTH.to_string(),
            "-y".into(),
            PANE_HEIGHT.to_string(),
        ]);
        args.extend(["-c".into(), cwd.display().to_string()]);
        for (key, value) in env {
            args.extend(["-e".into(), format!("{key}={value}")]);
        }
        args.push("--".into());
        args.extend(command.iter().cloned());
        let arg_refs: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = self.run(&arg_refs);
        let (pane, pid) = out
            .trim()
            .split_once(' ')
            .expect("pane id and pid from new-session");
        if let Ok(pid) = pid.parse() {
            self.pane_pids.push(pid);
        }
        pane.to_string()
    }

    /// Sends tmux key names (`Enter`, `C-g`, `Escape`, ...) to `target`.
    pub fn send_keys(&self, target: &str, keys: &[&str]) {
        let mut args = vec!["send-keys", "-t", target];
        args.extend_from_slice(keys);
        self.run(&args);
    }

    /// Types `text` literally (`send-keys -l`); an LF in it inserts a newline
    /// in Claude Code's prompt box rather than submitting (docs/claude-code.md#box-lf-newline).
    pub fn send_literal(&self, target: &str, text: &str) {
        self.run(&["send-keys", "-t", target, "-l", "--", text]);
    }

    /// The visible screen of `target`, one line per row.
    pub fn capture(&self, target: &str) -> String {
        self.run(&["capture-pane", "-p", "-t", target])
    }

    /// The whole history of `target` plus its screen. A dead pane needs
    /// this: tmux scrolls its last screen up to print "Pane is dead".
    pub fn capture_history(&self, target: &str) -> String {
        self.run(&["capture-pane", "-p", "-S", "-", "-t", target])
    }

    /// Returns true if and only if the program in `target` has exited.
    pub fn pane_dead(&self, target: &str) -> bool {
        self.display(target, "#{pane_dead}") == "1"
    }

    /// The exit status of a dead pane's program, `None` while it runs or when a
    /// signal killed it. tmux marks a pane dead when its pty closes, which can be
    /// before it has reaped the program: the status is waited for (10 s at most).
    pub fn pane_exit_status(&self, target: &str) -> Option<i32> {
        if !self.pane_dead(target) {
            return None;
        }
        super::wait::wait_until_or(Duration::from_secs(10), || {
            let status = self.display(target, "#{pane_dead_status}");
            let signal = self.display(target, "#{pane_dead_signal}");
            match status.parse::<i32>() {
                Ok(code) => Some(Some(code)),
                Err(_) if !signal.is_empty() => Some(None),
                Err(_) => None,
            }
        })
        .flatten()
    }

    /// Expands a tmux format such as `#{pane_pid}` for `target`.
    pub fn display(&self, target: &str, format: &str) -> String {
        self.run(&["display-message", "-p", "-t", target, format])
            .trim()
            .to_string()
    }

    /// Polls the screen of `target` every ~50 ms until `pred` accepts it and
    /// returns that screen; after `timeout`, returns the last screen as `Err`.
    pub fn wait_for_screen(
        &self,
        target: &str,
        pred: impl Fn(&str) -> bool,
        timeout: Duration,
    ) -> Result<String, String> {
        let deadline = Instant::now() + timeout;
        loop {
            let screen = self.capture(target);
            if pred(&screen) {
                return Ok(screen);
            }
            if Instant::now() >= deadline {
                return Err(screen);
            }
            thread::sleep(POLL_INTERVAL * 2);
        }
    }
}

impl Drop for TmuxServer {
    fn drop(&mut self) {
        // kill-server sends SIGHUP to every pane's program.
        let _ = self.try_run(&["kill-server"]);
        let deadline = Instant::now() + EXIT_GRACE;
        for &pid in &self.pane_pids {
            while is_running(pid) && Instant::now() < deadline {
                thread::sleep(POLL_INTERVAL);
            }
            if is_running(pid) {
                let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
            }
        }
    }
}

/// Returns true if and only if `pid` exists and is not a zombie.
fn is_running(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state letter follows the parenthesised command name.
        Ok(stat) => stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| !rest.trim_start().starts_with('Z')),
        Err(_) => false,
    }
}
