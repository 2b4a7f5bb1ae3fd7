//! The generic driver: `sh -c CMD` with the prompt on stdin and stdout as the answer.
//!
//! The command runs in its own process group, so a cancel reaches everything it started.
//! Pipes are drained on their own threads so a full pipe can never block the command.

use std::io::{Read, Write};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nix::sys::wait::{Id, WaitPidFlag, waitid};
use nix::unistd::Pid;

use anyhow::{Context as _, Result};

use super::output::OutputSink;
use super::run::{Context, Driver, Report, RunEnd, RunHandle, RunStatus};
use crate::state::{MAX_FILE_BYTES, TaskEnvelope};

/// How much of stderr is kept for the failure reason.
const STDERR_TAIL: usize = 4096;

/// How long output may still arrive after the command exited.
const PIPE_DRAIN: Duration = Duration::from_millis(500);

/// Bytes read from a pipe, shared with the thread that reads them.
#[derive(Clone, Default)]
struct Captured(Arc<CapturedInner>);

#[derive(Default)]
struct CapturedInner {
    bytes: Mutex<Vec<u8>>,
    /// Set when older bytes were dropped to stay within the limit.
    overflowed: AtomicBool,
    /// Set when the run is over: the reader stops passing chunks on.
    ended: AtomicBool,
}

impl Captured {
    /// Reads `pipe` to its end on a thread, passing each chunk to `each` and keeping at
    /// most the last `keep` bytes. The returned channel closes when the reader ends.
    fn drain(
        &self,
        mut pipe: impl Read + Send + 'static,
        mut each: impl FnMut(&[u8]) + Send + 'static,
        keep: usize,
    ) -> Receiver<()> {
        let (done_tx, done_rx) = channel();
        let inner = self.0.clone();
        std::thread::spawn(move || {
            let _done = done_tx;
            let mut chunk = [0u8; 8192];
            while let Ok(n) = pipe.read(&mut chunk) {
                // After the run ended, a process that escaped the group may still write:
                // stop here, which closes the pipe on it.
                if n == 0 || inner.ended.load(Ordering::Acquire) {
                    break;
                }
                each(&chunk[..n]);
                let mut bytes = inner.bytes.lock().unwrap_or_else(|e| e.into_inner());
                bytes.extend_from_slice(&chunk[..n]);
                if bytes.len() > keep {
                    let excess = bytes.len() - keep;
                    bytes.drain(..excess);
                    inner.overflowed.store(true, Ordering::Release);
                }
            }
        });
        done_rx
    }

    /// Ends the capture and returns what it kept, and whether anything was dropped.
    fn finish(&self) -> (Vec<u8>, bool) {
        self.0.ended.store(true, Ordering::Release);
        let bytes = std::mem::take(&mut *self.0.bytes.lock().unwrap_or_else(|e| e.into_inner()));
        (bytes, self.0.overflowed.load(Ordering::Acquire))
    }
}

/// Kills the command when the host dies.
trait DeathSignal {
    fn pre_exec_death_signal(&mut self) -> &mut Self;
}

impl DeathSignal for Command {
    fn pre_exec_death_signal(&mut self) -> &mut Self {
        // If the host died before prctl, the parent is already someone else: give up.
        // PR_SET_PDEATHSIG fires when the forking thread exits; the host starts runs from
        // its main thread, which lives as long as it does.
        let host = std::process::id() as libc::pid_t;
        // SAFETY: the closure runs between fork and exec and only makes the
        // async-signal-safe prctl(2) and getppid(2) calls.
        unsafe {
            self.pre_exec(move || {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                if libc::getppid() != host {
                    return Err(std::io::Error::other("agent-wrap exited"));
                }
                Ok(())
            })
        }
    }
}

/// The `exec` driver: `sh -c CMD` per task.
pub struct Exec {
    pub command: String,
    run: Option<RunHandle>,
}

impl Exec {
    pub fn new(command: String) -> Self {
        Self { command, run: None }
    }
}

impl Driver for Exec {
    type Event = RunEnd;

    fn name(&self) -> &'static str {
        "exec"
    }

    fn start(
        &mut self,
        task: &TaskEnvelope,
        sink: OutputSink,
        tx: &Sender<RunEnd>,
    ) -> Result<Vec<Report>> {
        self.run = Some(start(&self.command, task, sink, tx.clone())?);
        Ok(Vec::new())
    }

    fn stop(&mut self) -> Vec<Report> {
        if let Some(run) = &self.run {
            run.stop();
        }
        Vec::new()
    }

    fn kill(&mut self) {
        if let Some(run) = &self.run {
            run.kill();
        }
    }

    fn on_event(&mut self, end: RunEnd, _cx: &Context<'_>) -> Vec<Report> {
        self.run = None;
        vec![Report::Ended(end)]
    }
}

fn start(
    cmd: &str,
    task: &TaskEnvelope,
    mut sink: OutputSink,
    tx: Sender<RunEnd>,
) -> Result<RunHandle> {
    let mut command = Command::new("/bin/sh");
    if let Some(dir) = super::run::working_dir() {
        command.current_dir(dir);
    }
    let mut child = command
        .arg("-c")
        .arg(cmd)
        .env("AGENT_NAME", task.agent.as_str())
        .env("AGENT_TASK_ID", task.id.as_str())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .pre_exec_death_signal()
        .spawn()
        .with_context(|| format!("failed to start `{cmd}`"))?;
    let pgid = child.id();

    let mut stdin = child.stdin.take().expect("stdin is piped");
    let prompt = task.prompt.clone().into_bytes();
    // A command that does not read its input closes the pipe early; that is its right.
    std::thread::spawn(move || {
        let _ = stdin.write_all(&prompt);
    });

    let answer = Captured::default();
    let stdout = child.stdout.take().expect("stdout is piped");
    let out_done = answer.drain(
        stdout,
        move |chunk| sink.write(chunk),
        MAX_FILE_BYTES as usize,
    );
    let stderr_tail = Captured::default();
    let stderr = child.stderr.take().expect("stderr is piped");
    let err_done = stderr_tail.drain(
        stderr,
        |chunk| {
            let _ = std::io::stderr().write_all(chunk);
        },
        STDERR_TAIL,
    );

    let (agent, task_id) = (task.agent.to_string(), task.id.to_string());
    std::thread::spawn(move || {
        // Wait without reaping, so the group's leader pid cannot be reused before the
        // group is killed.
        let pid = Pid::from_raw(pgid as i32);
        let _ = waitid(Id::Pid(pid), WaitPidFlag::WEXITED | WaitPidFlag::WNOWAIT);
        // Processes the command left behind would keep running after the task; one
        // task at a time means the whole group goes with it, and so does anything that
        // left the group (setsid) but still carries the task's environment.
        crate::process::signal_group(pgid, nix::sys::signal::Signal::SIGKILL);
        crate::process::kill_task_processes(&agent, &task_id);
        let status = child.wait();
        // A process that shed the environment too can still hold the pipes open: take
        // what arrived so far instead of waiting for it.
        let deadline = Instant::now() + PIPE_DRAIN;
        let _ = out_done.recv_timeout(deadline.saturating_duration_since(Instant::now()));
        let _ = err_done.recv_timeout(deadline.saturating_duration_since(Instant::now()));
        let status = match status {
            Ok(s) => match (s.code(), s.signal()) {
                (Some(code), _) => RunStatus::Exited(code),
                (None, Some(sig)) => RunStatus::Signaled(sig),
                (None, None) => RunStatus::Exited(-1),
            },
            Err(_) => RunStatus::Exited(-1),
        };
        let (answer, truncated) = answer.finish();
        let (stderr_tail, _) = stderr_tail.finish();
        let _ = tx.send(RunEnd {
            status,
            answer,
            truncated,
            stderr_tail: String::from_utf8_lossy(&stderr_tail).into_owned(),
            ..RunEnd::default()
        });
    });
    Ok(RunHandle::Process { pgid })
}
