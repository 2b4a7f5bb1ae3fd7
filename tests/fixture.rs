//! A private state directory with real `agent-wrap` and `claude-editor-hook` processes.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use serde_json::Value;
use tempfile::TempDir;

use crate::helper::wait::{output_with_timeout, wait_until};

pub const HOOK: &str = env!("CARGO_BIN_EXE_claude-editor-hook");
pub const WRAP: &str = env!("CARGO_BIN_EXE_agent-wrap");
/// How long a test waits for something that takes milliseconds on an idle machine
/// before it fails as hung. Generous, because on a loaded 2-core machine a debug build
/// is many times slower; waiting longer never makes a passing test slower.
pub const SECS: Duration = Duration::from_secs(30);

pub struct Env {
    pub dir: TempDir,
    pub state: PathBuf,
}

/// A running `agent-wrap`, killed when dropped.
pub struct Agent {
    pub child: Child,
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Agent {
    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    pub fn signal(&self, sig: nix::sys::signal::Signal) {
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.pid()), sig).unwrap();
    }

    /// Waits for the process to exit and returns its exit code (or 128+signal).
    pub fn wait_exit(&mut self, timeout: Duration) -> i32 {
        use std::os::unix::process::ExitStatusExt;
        let status = wait_until(timeout, "agent-wrap to exit", || {
            self.child.try_wait().unwrap()
        });
        status
            .code()
            .unwrap_or_else(|| 128 + status.signal().unwrap_or(0))
    }
}

impl Env {
    pub fn new() -> Env {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        Env { dir, state }
    }

    /// A command with this environment's state directory and no editor surprises.
    pub fn cmd(&self, program: &str) -> Command {
        let mut cmd = Command::new(program);
        cmd.env("CLAUDE_AGENTS_DIR", &self.state)
            .env_remove("CLAUDE_EDITOR_HOOK_EDITOR")
            .env_remove("CLAUDE_EDITOR_HOOK_ACTIVE")
            .env_remove("CLAUDE_EDITOR_HOOK_TIMEOUT")
            .env_remove("VISUAL")
            .env_remove("EDITOR")
            .env_remove("TMUX")
            .env_remove("TMUX_PANE")
            .stdin(Stdio::null());
        cmd
    }

    /// Starts `agent-wrap NAME ARGS…` and waits until it reports idle.
    pub fn agent(&self, name: &str, args: &[&str]) -> Agent {
        let agent = self.agent_starting(name, args);
        let pid = agent.pid();
        self.wait_status(name, "idle", |s| s["pid"] == pid);
        agent
    }

    /// Starts `agent-wrap NAME ARGS…` and waits until it has written its status, in any
    /// state (an agent draining a board may be working at once).
    pub fn agent_starting(&self, name: &str, args: &[&str]) -> Agent {
        let log = self.dir.path().join(format!("agent-{name}.log"));
        let out = fs::File::create(&log).unwrap();
        let child = self
            .cmd(WRAP)
            .arg(name)
            .args(args)
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .unwrap();
        let agent = Agent { child };
        let pid = agent.pid();
        wait_until(SECS, &format!("agent {name} to start"), || {
            self.status(name).filter(|s| s["pid"] == pid)
        });
        agent
    }

    pub fn status(&self, name: &str) -> Option<Value> {
        let bytes = fs::read(self.state.join("agents").join(name).join("status.json")).ok()?;
        serde_json::from_slice(&bytes).ok()
    }

    /// Waits until the agent's status file says `status` and `extra` holds.
    pub fn wait_status(&self, name: &str, status: &str, extra: impl Fn(&Value) -> bool) -> Value {
        wait_until(SECS, &format!("agent {name} to be {status}"), || {
            self.status(name)
                .filter(|s| s["status"] == status && extra(s))
        })
    }

    pub fn prompt_file(&self, content: &[u8]) -> PathBuf {
        let path = self
            .dir
            .path()
            .join(format!("claude-prompt-{}.md", next_id()));
        fs::write(&path, content).unwrap();
        path
    }

    /// Runs editor mode on a new prompt file; returns the output and the file after.
    pub fn run_hook(&self, content: &[u8]) -> (Output, Vec<u8>) {
        let file = self.prompt_file(content);
        // A hung editor run fails the test; 70 MB through a debug build under load took
        // more than 30 s.
        let out = output_with_timeout(self.cmd(HOOK).arg(&file), Duration::from_secs(90));
        let after = fs::read(&file).unwrap();
        (out, after)
    }

    /// Starts editor mode in the background on a new prompt file.
    pub fn spawn_hook(&self, content: &[u8]) -> (Child, PathBuf) {
        let file = self.prompt_file(content);
        let child = self
            .cmd(HOOK)
            .arg(&file)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        (child, file)
    }

    /// All task directories' `done.json`, parsed.
    pub fn done_files(&self) -> Vec<Value> {
        let Ok(dir) = fs::read_dir(self.state.join("tasks")) else {
            return vec![];
        };
        dir.filter_map(|e| fs::read(e.ok()?.path().join("done.json")).ok())
            .map(|b| serde_json::from_slice(&b).unwrap())
            .collect()
    }

    /// The `done.json` of the only task in the state dir once it exists.
    pub fn wait_single_done(&self) -> Value {
        wait_until(SECS, "a done.json", || self.done_files().into_iter().next())
    }
}

fn next_id() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

/// Waits for a child with a deadline; panics with `what` on timeout.
pub fn wait_child(child: &mut Child, timeout: Duration, what: &str) -> std::process::ExitStatus {
    wait_until(timeout, what, || child.try_wait().unwrap())
}

pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Splits a rewritten prompt file into its first line and the rest.
pub fn head_and_body(file: &[u8]) -> (String, Vec<u8>) {
    let nl = file
        .iter()
        .position(|&b| b == b'\n')
        .expect("a header line");
    (text(&file[..nl]), file[nl + 1..].to_vec())
}

pub fn write_script(dir: &Path, name: &str, body: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join(name);
    fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
    path
}
