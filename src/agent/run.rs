//! What every driver is to the host: the [`Driver`] trait, and how a run ends
//! ([`RunEnd`]). The host knows drivers only through it.
//!
//! A driver runs one task at a time. Its threads and watches send its own events
//! ([`Driver::Event`]) on the host's channel; the host hands each back to the driver,
//! which answers with [`Report`]s. Timers are deadlines the host's loop waits for
//! ([`Driver::next_timer`]), never threads that sleep.

use std::path::PathBuf;
use std::sync::mpsc::Sender;
use std::time::Instant;

use anyhow::Result;

use super::output::OutputSink;
use crate::state::{AgentName, AgentState, StateDir, TaskEnvelope};

/// What a driver knows of its host.
pub struct Context<'a> {
    pub state: &'a StateDir,
    pub agent: &'a AgentName,
    /// The Claude Code session the agent had, to resume.
    pub session_id: Option<&'a str>,
}

/// How the agent does its work.
pub trait Driver {
    /// What the driver's threads and watches send the host.
    type Event: Send + 'static;

    /// The name recorded in `status.json`.
    fn name(&self) -> &'static str;

    /// Starts what lives longer than a task (a hosted Claude Code). `tx` is for events.
    fn open(&mut self, _cx: &Context<'_>, _tx: Sender<Self::Event>) -> Result<Vec<Report>> {
        Ok(Vec::new())
    }

    /// Returns true if and only if a task can start now.
    fn can_start(&self) -> bool {
        true
    }

    /// Returns true if and only if the driver runs agent commands (`/compact`).
    fn runs_commands(&self) -> bool {
        false
    }

    /// What the agent is between tasks.
    fn resting_state(&self) -> AgentState {
        AgentState::Idle
    }

    /// A task a previous host died on, whose prompt the driver may find again.
    fn interrupted(&mut self, _prompt: String) {}

    /// Starts `task`, its output going to `sink`. Its end comes as [`Report::Ended`].
    fn start(
        &mut self,
        task: &TaskEnvelope,
        sink: OutputSink,
        tx: &Sender<Self::Event>,
    ) -> Result<Vec<Report>>;

    /// Asks the run to stop. A run that does not end at once is killed by [`Driver::kill`]
    /// after the host's grace.
    fn stop(&mut self) -> Vec<Report>;

    /// Stops the run now.
    fn kill(&mut self);

    /// One of the driver's own events.
    fn on_event(&mut self, event: Self::Event, cx: &Context<'_>) -> Vec<Report>;

    /// When the driver's next timer fires.
    fn next_timer(&self) -> Option<Instant> {
        None
    }

    /// Fires the driver's timers that are due.
    fn fire_timers(&mut self, _cx: &Context<'_>) -> Vec<Report> {
        Vec::new()
    }

    /// The agent's window was resized.
    fn resize(&mut self) {}

    /// The host re-created the agent's directories after someone removed them: watch
    /// what the driver watches there again.
    fn repaired(&mut self, _cx: &Context<'_>) {}

    /// The host is stopping: end what [`Driver::open`] started.
    fn close(&mut self) {}

    /// The host's last act: wait briefly for what `close` ended.
    fn shutdown(&mut self) {}
}

/// What a driver tells the host.
#[derive(Debug)]
pub enum Report {
    /// The run is over.
    Ended(RunEnd),
    /// The agent waits for the human, and why (a dialog Claude Code shows): `waiting`,
    /// with the reason in `status.json`.
    Blocked(String),
    /// The agent's state changed.
    State(AgentState),
    /// The agent's Claude Code session, to resume after a restart (`None`: start anew).
    SessionId(Option<String>),
    /// The driver cannot go on: the host stops, saying why.
    Fatal(String),
    /// The running task's delivery was acknowledged (a hosted Claude Code's
    /// `UserPromptSubmit`), at this time: an event for the log (src/events/).
    Acknowledged(u64),
    /// The tokens a finished task's turn used (issue 14), once the transcript has them.
    Usage(crate::state::TaskId, crate::state::TokenUsage),
    /// The cost Claude Code reports for the agent's current session, in US dollars.
    Cost(f64),
}

/// How a run ended, before the host turns it into an outcome.
#[derive(Debug, Default)]
pub struct RunEnd {
    pub status: RunStatus,
    /// Everything the run wrote to its output: the answer.
    pub answer: Vec<u8>,
    /// The output went over the size limit and its start was dropped.
    pub truncated: bool,
    /// The end of its error output, for the failure reason.
    pub stderr_tail: String,
    /// The human typed into the agent during this run.
    pub human_input: bool,
    /// When the driver's agent acknowledged the task, and when its turn ended.
    pub acked_at_us: Option<u64>,
    pub turn_ended_at_us: Option<u64>,
}

#[derive(Debug, Default, PartialEq, Eq)]
pub enum RunStatus {
    /// A command exited.
    Exited(i32),
    /// A command was killed by this signal.
    Signaled(i32),
    /// The agent answered.
    Answered,
    /// The run failed; the text says why.
    Failed(String),
    /// The human interrupted the run; the text says how.
    Interrupted(String),
    /// The run stopped because the host asked it to.
    #[default]
    Stopped,
}

/// A process group or thread that runs one task.
pub enum RunHandle {
    /// The command's process group.
    Process { pgid: u32 },
    /// Dropping or sending stops the demo run.
    Thread { stop: Sender<()> },
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
            RunHandle::Thread { stop } => {
                let _ = stop.send(());
            }
        }
    }
}

/// Where a driver's runs work: the host's own working directory.
pub fn working_dir() -> Option<PathBuf> {
    std::env::current_dir().ok()
}
