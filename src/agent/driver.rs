//! Drivers run one task each and report its end on the host's channel.

use std::sync::mpsc::Sender;
use std::time::Duration;

use anyhow::Result;

use super::output::OutputSink;
use super::{demo, exec};
use crate::state::TaskEnvelope;

/// How the agent does its work.
#[derive(Clone, Debug)]
pub enum Driver {
    /// `sh -c CMD` with the prompt on stdin; stdout is the answer.
    Exec(String),
    /// The built-in deterministic demo agent; `delay` between streamed lines.
    Demo { delay: Duration },
    /// An interactive Claude Code the host keeps running; tasks are delivered into it.
    Claude(super::claude::session::ClaudeConfig),
}

impl Driver {
    /// The name recorded in `status.json`.
    pub fn name(&self) -> &'static str {
        match self {
            Driver::Exec(_) => "exec",
            Driver::Demo { .. } => "demo",
            Driver::Claude(_) => "claude",
        }
    }

    /// Starts `task`. When it ends, `on_end(RunEnd)` is sent on `tx`.
    pub fn start<E: Send + 'static>(
        &self,
        task: &TaskEnvelope,
        sink: OutputSink,
        tx: Sender<E>,
        on_end: fn(RunEnd) -> E,
    ) -> Result<RunHandle> {
        match self {
            Driver::Exec(cmd) => exec::start(cmd, task, sink, tx, on_end),
            Driver::Demo { delay } => Ok(demo::start(*delay, task, sink, tx, on_end)),
            // The host delivers into its running Claude Code itself.
            Driver::Claude(_) => anyhow::bail!("the claude driver has no per-task process"),
        }
    }
}

/// How a run ended, before the host turns it into an outcome.
#[derive(Debug)]
pub struct RunEnd {
    pub status: RunStatus,
    /// Everything the run wrote to its output: the answer.
    pub answer: Vec<u8>,
    /// The output went over the size limit and its start was dropped.
    pub truncated: bool,
    /// The end of its error output, for the failure reason.
    pub stderr_tail: String,
}

#[derive(Debug, PartialEq, Eq)]
pub enum RunStatus {
    Exited(i32),
    Signaled(i32),
    /// The run stopped because the host asked it to.
    Stopped,
}

/// Controls a running task.
pub enum RunHandle {
    /// The command's process group.
    Process { pgid: u32 },
    /// Dropping or sending stops the demo run.
    Demo { stop: Sender<()> },
    /// A task delivered into the hosted Claude Code; the host stops it (Escape).
    Claude,
}

impl RunHandle {
    /// Asks the run to stop (SIGTERM to the process group).
    pub fn stop(&self) {
        self.signal(nix::sys::signal::Signal::SIGTERM);
    }

    /// Stops the run now (SIGKILL to the process group).
    pub fn kill(&self) {
        self.signal(nix::sys::signal::Signal::SIGKILL);
    }

    fn signal(&self, signal: nix::sys::signal::Signal) {
        match self {
            RunHandle::Process { pgid } => crate::process::signal_group(*pgid, signal),
            RunHandle::Demo { stop } => {
                let _ = stop.send(());
            }
            RunHandle::Claude => {}
        }
    }
}
