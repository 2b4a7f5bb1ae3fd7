//! The workers' drivers: one process per attempt, in its own process group, the prompt
//! on stdin, and its end reported to the run's event loop.
//!
//! - `exec` (`--exec CMD`): `sh -c CMD`; stdout is the result, exit status 0 is success,
//!   as `agent-wrap --exec` runs a command.
//! - `agents` (`--agents a,b`): each task is queued to a persistent agent (src/run/agents.rs).
//! - `claude` (the default): `claude -p --output-format stream-json --verbose`, with
//!   `--session-id S` for a worker's first turn and `--resume S` for the next ones, so
//!   a worker keeps one conversation across its tasks (docs/claude-code.md#print-mode,
//!   #print-mode-session). The `result` line gives the answer, the error and the tokens.
//!
//! Each process is marked with `CLAUDE_EDITOR_HOOK_RUN_DIR=<run folder>` and
//! `CLAUDE_EDITOR_HOOK_RUN_TASK=<task>`, so a kill reaches what left the group, and a
//! resumed run finds what a SIGKILLed one left behind. The direct child also dies with
//! the run (`PR_SET_PDEATHSIG`). Output goes to the attempt's log file; the reader
//! threads pass only the latest line on, for the progress display.

use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::mpsc::{Sender, channel};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use nix::sys::signal::Signal;
use nix::sys::wait::{Id, WaitPidFlag, waitid};
use nix::unistd::Pid;
use serde_json::Value;

use super::folder::{DriverSpec, Tokens};
use super::scheduler::Outcome;
use crate::board::MAX_TEXT_BYTES;

/// The variable that marks a run's processes.
pub const RUN_ENV: &str = "CLAUDE_EDITOR_HOOK_RUN";
/// The variable naming the task a run's process works on.
pub const RUN_TASK_ENV: &str = "CLAUDE_EDITOR_HOOK_RUN_TASK";
/// The variable naming the run's folder: what marks its processes, since two state
/// directories can hold runs of the same id.
pub const RUN_DIR_ENV: &str = "CLAUDE_EDITOR_HOOK_RUN_DIR";

/// How much of stderr is kept for a failure's reason.
const STDERR_TAIL: usize = 4096;
/// How long output may still arrive after the process exited.
const PIPE_DRAIN: Duration = Duration::from_millis(500);

/// One attempt to start.
#[derive(Clone, Debug)]
pub struct Job {
    pub run: String,
    /// The run folder, which marks the run's processes.
    pub run_dir: PathBuf,
    pub worker: usize,
    pub worker_name: String,
    pub task: String,
    pub attempt: u32,
    pub prompt: String,
    pub cwd: PathBuf,
    pub log: PathBuf,
    /// The board directory, for `board` verbs the worker runs (notes).
    pub board: PathBuf,
    /// The claude driver's session, and whether it has a turn already.
    pub session: Option<(String, bool)>,
}

/// What a worker reports to the loop.
#[derive(Debug)]
pub enum WorkerEvent {
    /// The latest line of output (for the progress display).
    Line { worker: usize, line: String },
    /// The attempt ended.
    Ended { worker: usize, report: Report },
}

/// How an attempt ended, with what the driver learnt.
#[derive(Debug)]
pub struct Report {
    pub outcome: Outcome,
    pub tokens: Option<Tokens>,
    pub cost_usd: Option<f64>,
    /// The session the next turn resumes (the claude driver).
    pub session: Option<String>,
}

/// A running attempt.
#[derive(Debug)]
pub enum Running {
    /// A process of ours.
    Process {
        pgid: u32,
        run_dir: PathBuf,
        task: String,
    },
    /// A task queued to a persistent agent (`--agents`).
    Agent(super::agents::Delegated),
}

impl Running {
    /// Kills the attempt: its process group and every process marked with its task, or
    /// the agent's task.
    pub fn kill(&self) {
        match self {
            Running::Process {
                pgid,
                run_dir,
                task,
            } => {
                crate::process::signal_group(*pgid, Signal::SIGKILL);
                kill_leftovers(run_dir, task);
            }
            Running::Agent(d) => d.cancel(),
        }
    }
}

/// Kills every process of the run in `run_dir` working on `task`.
pub fn kill_leftovers(run_dir: &std::path::Path, task: &str) -> usize {
    crate::process::kill_marked(&[
        &format!("{RUN_DIR_ENV}={}", run_dir.display()),
        &format!("{RUN_TASK_ENV}={task}"),
    ])
}

/// Kills every process of the run in `run_dir`: what a SIGKILLed run left behind (its
/// direct children die with it, their children do not).
pub fn kill_all_leftovers(run_dir: &std::path::Path) -> usize {
    crate::process::kill_marked(&[&format!("{RUN_DIR_ENV}={}", run_dir.display())])
}

/// What a driver's stdout reader collects.
#[derive(Default)]
struct Collected {
    /// exec: the whole stdout (the last `MAX_TEXT_BYTES`); claude: unused.
    stdout: Vec<u8>,
    truncated: bool,
    /// claude: the `result` line.
    result: Option<Value>,
    /// claude: the session id of the `init` line.
    session: Option<String>,
}

/// Starts `job` with `driver`; its end arrives on `tx` as [`WorkerEvent::Ended`].
pub fn spawn<E: Send + 'static>(
    driver: &DriverSpec,
    job: &Job,
    tx: Sender<E>,
    wrap: fn(WorkerEvent) -> E,
) -> Result<Running> {
    let mut command = match driver {
        DriverSpec::Agents { .. } => {
            return super::agents::delegate(job, tx, wrap).map(Running::Agent);
        }
        DriverSpec::Exec { command } => {
            let mut c = Command::new("/bin/sh");
            c.arg("-c").arg(command);
            c
        }
        DriverSpec::Claude { bin, args } => {
            let mut c = Command::new(bin);
            c.args(["-p", "--output-format", "stream-json", "--verbose"]);
            match &job.session {
                Some((id, true)) => c.args(["--resume", id]),
                Some((id, false)) => c.args(["--session-id", id]),
                None => &mut c,
            };
            c.args(args);
            c
        }
    };
    let is_claude = matches!(driver, DriverSpec::Claude { .. });
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(&job.log)
        .with_context(|| format!("failed to open {}", job.log.display()))?;
    let host = std::process::id() as libc::pid_t;
    // SAFETY: the closure runs between fork and exec and only makes the
    // async-signal-safe prctl(2) and getppid(2) calls.
    unsafe {
        command.pre_exec(move || {
            // The direct child dies with the run, however the run dies; the loop
            // thread that forks lives as long as the run.
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            if libc::getppid() != host {
                return Err(std::io::Error::other("the run exited"));
            }
            Ok(())
        });
    }
    let mut child = command
        .current_dir(&job.cwd)
        .env(RUN_ENV, &job.run)
        .env(RUN_DIR_ENV, &job.run_dir)
        .env(RUN_TASK_ENV, &job.task)
        .env("CLAUDE_EDITOR_HOOK_RUN_WORKER", &job.worker_name)
        .env("CLAUDE_EDITOR_HOOK_RUN_ATTEMPT", job.attempt.to_string())
        .env("CLAUDE_EDITOR_HOOK_BOARD", &job.board)
        .env("CLAUDE_EDITOR_HOOK_WORKER", &job.worker_name)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .with_context(|| match driver {
            DriverSpec::Exec { command } => format!("failed to start `{command}`"),
            DriverSpec::Claude { bin, .. } => format!("failed to start {bin}"),
            DriverSpec::Agents { .. } => unreachable!("agents are delegated to above"),
        })?;
    let pgid = child.id();

    let mut stdin = child.stdin.take().expect("stdin is piped");
    let prompt = job.prompt.clone().into_bytes();
    // A command that does not read its input closes the pipe early; that is its right.
    std::thread::spawn(move || {
        let _ = stdin.write_all(&prompt);
    });

    let log = Arc::new(Mutex::new(log));
    let collected = Arc::new(Mutex::new(Collected::default()));
    let worker = job.worker;
    let (out_done_tx, out_done) = channel::<()>();
    {
        let (log, collected, tx) = (log.clone(), collected.clone(), tx.clone());
        let mut stdout = child.stdout.take().expect("stdout is piped");
        std::thread::spawn(move || {
            let _done = out_done_tx;
            let mut pending = Vec::new();
            let mut chunk = [0u8; 16 * 1024];
            while let Ok(n) = stdout.read(&mut chunk) {
                if n == 0 {
                    break;
                }
                let _ = lock(&log).write_all(&chunk[..n]);
                let mut c = lock(&collected);
                if !is_claude {
                    c.stdout.extend_from_slice(&chunk[..n]);
                    if c.stdout.len() > MAX_TEXT_BYTES {
                        let excess = c.stdout.len() - MAX_TEXT_BYTES;
                        c.stdout.drain(..excess);
                        c.truncated = true;
                    }
                }
                pending.extend_from_slice(&chunk[..n]);
                let mut latest = None;
                while let Some(nl) = pending.iter().position(|&b| b == b'\n') {
                    let line: Vec<u8> = pending.drain(..=nl).collect();
                    let line = String::from_utf8_lossy(&line);
                    let shown = if is_claude {
                        claude_line(&line, &mut c)
                    } else {
                        Some(line.trim_end().to_owned())
                    };
                    if let Some(s) = shown.filter(|s| !s.trim().is_empty()) {
                        latest = Some(s);
                    }
                }
                drop(c);
                if let Some(line) = latest {
                    let _ = tx.send(wrap(WorkerEvent::Line { worker, line }));
                }
            }
            if is_claude && !pending.is_empty() {
                let line = String::from_utf8_lossy(&pending).into_owned();
                claude_line(&line, &mut lock(&collected));
            }
        });
    }
    let stderr_tail = Arc::new(Mutex::new(Vec::<u8>::new()));
    let (err_done_tx, err_done) = channel::<()>();
    {
        let (log, tail) = (log.clone(), stderr_tail.clone());
        let mut stderr = child.stderr.take().expect("stderr is piped");
        std::thread::spawn(move || {
            let _done = err_done_tx;
            let mut chunk = [0u8; 8192];
            while let Ok(n) = stderr.read(&mut chunk) {
                if n == 0 {
                    break;
                }
                let _ = lock(&log).write_all(&chunk[..n]);
                let mut t = lock(&tail);
                t.extend_from_slice(&chunk[..n]);
                if t.len() > STDERR_TAIL {
                    let excess = t.len() - STDERR_TAIL;
                    t.drain(..excess);
                }
            }
        });
    }

    std::thread::spawn(move || {
        // Wait without reaping, so the group's pid cannot be reused before the group is
        // killed; what the command left in its group goes with it.
        let _ = waitid(
            Id::Pid(Pid::from_raw(pgid as i32)),
            WaitPidFlag::WEXITED | WaitPidFlag::WNOWAIT,
        );
        crate::process::signal_group(pgid, Signal::SIGKILL);
        let status = child.wait();
        // A process that left the group can hold the pipes open: take what arrived.
        let deadline = Instant::now() + PIPE_DRAIN;
        let _ = out_done.recv_timeout(deadline.saturating_duration_since(Instant::now()));
        let _ = err_done.recv_timeout(deadline.saturating_duration_since(Instant::now()));
        let tail = String::from_utf8_lossy(&lock(&stderr_tail)).into_owned();
        let collected = std::mem::take(&mut *lock(&collected));
        let (code, signal) = match &status {
            Ok(s) => (s.code(), s.signal()),
            Err(_) => (None, None),
        };
        let report = if is_claude {
            claude_report(collected, code, signal, &tail)
        } else {
            exec_report(collected, code, signal, &tail)
        };
        let _ = tx.send(wrap(WorkerEvent::Ended { worker, report }));
    });
    Ok(Running::Process {
        pgid,
        run_dir: job.run_dir.clone(),
        task: job.task.clone(),
    })
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// `exit status 3: <last line of stderr>`, or the signal.
fn failure_reason(code: Option<i32>, signal: Option<i32>, stderr: &str) -> String {
    let last = stderr
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .map(|l| format!(": {}", l.trim()))
        .unwrap_or_default();
    match (code, signal) {
        (Some(c), _) => format!("exit status {c}{last}"),
        (None, Some(s)) => format!("killed by signal {s}{last}"),
        _ => format!("the process could not be waited for{last}"),
    }
}

fn exec_report(c: Collected, code: Option<i32>, signal: Option<i32>, stderr: &str) -> Report {
    let outcome = if code == Some(0) {
        let mut text = String::from_utf8_lossy(&c.stdout).trim_end().to_owned();
        if c.truncated {
            text.insert_str(
                0,
                "[output truncated to its last 1 MiB; the whole is in the log]\n",
            );
        }
        Outcome::Success(text)
    } else {
        Outcome::Failure(failure_reason(code, signal, stderr))
    };
    Report {
        outcome,
        tokens: None,
        cost_usd: None,
        session: None,
    }
}

/// Reads one stream-json line (docs/claude-code.md#print-mode) and returns the text to
/// show as the worker's latest line.
fn claude_line(line: &str, c: &mut Collected) -> Option<String> {
    let v: Value = serde_json::from_str(line.trim()).ok()?;
    match v["type"].as_str()? {
        "system" if v["subtype"] == "init" => {
            c.session = v["session_id"].as_str().map(str::to_owned);
            None
        }
        "assistant" => {
            let blocks = v["message"]["content"].as_array()?;
            blocks.iter().rev().find_map(|b| match b["type"].as_str() {
                Some("text") => b["text"]
                    .as_str()
                    .and_then(|t| t.lines().rev().find(|l| !l.trim().is_empty()))
                    .map(str::to_owned),
                Some("tool_use") => Some(format!("[{}]", b["name"].as_str().unwrap_or("tool"))),
                _ => None,
            })
        }
        "result" => {
            c.result = Some(v);
            None
        }
        _ => None,
    }
}

fn claude_report(c: Collected, code: Option<i32>, signal: Option<i32>, stderr: &str) -> Report {
    let Some(result) = c.result else {
        return Report {
            outcome: Outcome::Failure(format!(
                "Claude Code ended without a result: {}",
                failure_reason(code, signal, stderr)
            )),
            tokens: None,
            cost_usd: None,
            session: c.session,
        };
    };
    let u = &result["usage"];
    let n = |k: &str| u[k].as_u64().unwrap_or(0);
    let tokens = u.is_object().then(|| Tokens {
        input: n("input_tokens"),
        output: n("output_tokens"),
        cache_creation: n("cache_creation_input_tokens"),
        cache_read: n("cache_read_input_tokens"),
    });
    let text = result["result"].as_str().unwrap_or("").to_owned();
    let outcome = if result["is_error"] == false && code == Some(0) {
        let mut text = text;
        if text.len() > MAX_TEXT_BYTES {
            let mut cut = text.len() - MAX_TEXT_BYTES;
            while !text.is_char_boundary(cut) {
                cut += 1;
            }
            text = format!("[answer truncated to its last 1 MiB]\n{}", &text[cut..]);
        }
        Outcome::Success(text)
    } else {
        let status = result["api_error_status"]
            .as_u64()
            .map(|s| format!("API error {s}: "))
            .unwrap_or_default();
        let first = text.lines().next().unwrap_or("").trim();
        Outcome::Failure(if first.is_empty() {
            format!(
                "Claude Code failed: {}",
                failure_reason(code, signal, stderr)
            )
        } else {
            format!("{status}{first}")
        })
    };
    Report {
        outcome,
        tokens,
        cost_usd: result["total_cost_usd"].as_f64(),
        session: result["session_id"]
            .as_str()
            .map(str::to_owned)
            .or(c.session),
    }
}
