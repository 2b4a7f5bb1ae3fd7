//! The generic driver: `sh -c CMD` with the prompt on stdin and stdout as the answer.
//!
//! The command runs in its own process group, so a cancel reaches everything it started.
//! Pipes are drained on their own threads so a full pipe can never block the command.

use std::io::{Read, Write};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Command, Stdio};
use std::sync::mpsc::Sender;

use anyhow::{Context, Result};

use super::driver::{RunEnd, RunHandle, RunStatus};
use super::output::OutputSink;
use crate::state::TaskEnvelope;

/// How much of stderr is kept for the failure reason.
const STDERR_TAIL: usize = 4096;

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

pub fn start<E: Send + 'static>(
    cmd: &str,
    task: &TaskEnvelope,
    mut sink: OutputSink,
    tx: Sender<E>,
    on_end: fn(RunEnd) -> E,
) -> Result<RunHandle> {
    let mut child = Command::new("/bin/sh")
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

    let mut stdout = child.stdout.take().expect("stdout is piped");
    let out_thread = std::thread::spawn(move || {
        let mut answer = Vec::new();
        let mut buf = [0u8; 8192];
        while let Ok(n) = stdout.read(&mut buf) {
            if n == 0 {
                break;
            }
            sink.write(&buf[..n]);
            answer.extend_from_slice(&buf[..n]);
        }
        answer
    });

    let mut stderr = child.stderr.take().expect("stderr is piped");
    let err_thread = std::thread::spawn(move || {
        let mut tail = Vec::new();
        let mut buf = [0u8; 4096];
        while let Ok(n) = stderr.read(&mut buf) {
            if n == 0 {
                break;
            }
            let _ = std::io::stderr().write_all(&buf[..n]);
            tail.extend_from_slice(&buf[..n]);
            if tail.len() > STDERR_TAIL {
                tail.drain(..tail.len() - STDERR_TAIL);
            }
        }
        String::from_utf8_lossy(&tail).into_owned()
    });

    std::thread::spawn(move || {
        let status = child.wait();
        // Processes the command left behind would keep our pipes open and run on after
        // the task; one task at a time means the whole group goes with it.
        crate::process::signal_group(pgid, nix::sys::signal::Signal::SIGKILL);
        let answer = out_thread.join().unwrap_or_default();
        let stderr_tail = err_thread.join().unwrap_or_default();
        let status = match status {
            Ok(s) => match (s.code(), s.signal()) {
                (Some(code), _) => RunStatus::Exited(code),
                (None, Some(sig)) => RunStatus::Signaled(sig),
                (None, None) => RunStatus::Exited(-1),
            },
            Err(_) => RunStatus::Exited(-1),
        };
        let _ = tx.send(on_end(RunEnd {
            status,
            answer,
            stderr_tail,
        }));
    });
    Ok(RunHandle::Process { pgid })
}
