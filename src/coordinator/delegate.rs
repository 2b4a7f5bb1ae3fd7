//! The round trip: queue a task in an agent's inbox and wait for its `.done` signal.
//!
//! Waiting is event-driven: the task's doorbell wakes the loop when the agent writes
//! `done.json`, a pidfd wakes it the moment the agent's host dies, and with a view a
//! directory watch follows the agent's status, queue and output. The
//! loop never sleeps to poll; it only times out for a deadline or a view refresh.

use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;
use std::sync::mpsc::RecvTimeoutError;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use super::{Coordinator, Event};
use crate::doorbell::Doorbell;
use crate::process::notify_exit;
use crate::signals::Signal;
use crate::state::{
    AgentCommand, AgentInfo, AgentName, AgentState, AgentStatus, CancelRequest, ChiefId, Done,
    FinishedBy, InboxEntry, OutboxEntry, Outcome, StateDir, TaskEnvelope, TaskId, enqueue,
    lock_holder, pending, read_json, read_optional, withdraw, write_json,
};
use crate::watch::DirWatcher;

/// How long a cancelled agent gets to acknowledge before the coordinator records the
/// cancel itself.
pub const CANCEL_GRACE: Duration = Duration::from_secs(3);

/// The second line behind the doorbell and the host's pidfd: this often the wait looks
/// at the task itself (its `done.json`, its directory, whether the agent still has it),
/// so a lost FIFO, a removed directory or an agent that could not record the outcome
/// ends the wait within about this long instead of never (docs/protocol.md,
/// "Backstops").
pub const BACKSTOP: Duration = Duration::from_secs(1);

/// How long an agent spawned for a busy role may take to start its host.
pub const SPAWN_READY: Duration = Duration::from_secs(60);

/// The task was sent to the background from the view: not a failure, and not to be
/// cancelled. Carried as an error so that every caller stops waiting; editor mode turns
/// it into a ticket.
#[derive(Debug)]
pub struct Detached(pub TaskId);

impl std::fmt::Display for Detached {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "task {} continues in the background", self.0)
    }
}

impl std::error::Error for Detached {}

/// What a waiting view shows.
#[derive(Clone, Debug)]
pub struct Progress {
    pub agent: AgentName,
    pub task: TaskId,
    pub title: String,
    pub agent_state: AgentState,
    /// Tasks ahead of ours in the queue, counting the one being worked on.
    pub ahead: Option<usize>,
    pub elapsed: Duration,
    pub latest_output: Option<String>,
}

/// Receives progress while the coordinator waits.
pub trait Observer {
    fn update(&mut self, progress: &Progress);
    /// How often `update` should be called without a change (to show elapsed time).
    fn refresh(&self) -> Option<Duration> {
        None
    }
}

/// How a delegation ended.
#[derive(Debug)]
pub struct Report {
    pub task: TaskId,
    pub done: Done,
    /// The answer, when the outcome is `ok`, as text: invalid UTF-8 shown as U+FFFD.
    pub answer: Option<String>,
    /// The answer byte for byte, as the agent gave it (`send` prints this).
    pub answer_bytes: Option<Vec<u8>>,
    /// How many bytes of the answer are not UTF-8 (each shown as U+FFFD in `answer`).
    pub invalid_bytes: usize,
    pub elapsed: Duration,
    /// Set when the user or a signal cancelled: the editor exits non-zero.
    pub cancelled_by: Option<Cancel>,
}

/// Why the coordinator cancelled.
#[derive(Clone, Debug, PartialEq)]
pub enum Cancel {
    User,
    Signal(Signal),
    Timeout,
}

/// Checks that `agent` exists and has a live host. The error is the one-line reason
/// shown to the user.
pub fn preflight(state: &StateDir, agent: &AgentName) -> Result<i32> {
    let Some(info) = AgentInfo::load(state, agent)? else {
        let known: Vec<String> = state.agent_names()?.iter().map(|n| n.to_string()).collect();
        if known.is_empty() {
            bail!(
                "unknown agent @{agent}: no agents are registered; start one with `agent-wrap {agent}`"
            );
        }
        bail!("unknown agent @{agent} (known: {})", known.join(", "));
    };
    match info.host_pid {
        Some(pid) => Ok(pid),
        None if info.status_error.is_some() => bail!(
            "agent @{agent} is offline: no agent-wrap is running for it, and {}; start it with `agent-wrap {agent}`",
            info.status_error.unwrap_or_default()
        ),
        None => {
            let seen = info
                .status
                .map(|s| {
                    let ago = crate::time::now_us().saturating_sub(s.last_active_us);
                    format!(", last active {} ago", crate::time::human_us(ago))
                })
                .unwrap_or_default();
            bail!(
                "agent @{agent} is offline: no agent-wrap is running for it{seen}; start it with `agent-wrap {agent}`"
            )
        }
    }
}

impl Coordinator {
    /// Delegates `prompt` to `agent` and waits until the task is done, cancelled, timed
    /// out or the agent dies. Every path ends with a `done.json` for the task.
    pub fn delegate(
        &self,
        agent: &AgentName,
        prompt: String,
        timeout: Option<Duration>,
        observer: Option<&mut dyn Observer>,
    ) -> Result<Report> {
        self.delegate_task(agent, prompt, None, timeout, observer)
    }

    /// Runs the agent command `command` on `agent` (with `argument`, e.g. compaction
    /// instructions), through the same queue as a task, so it never interrupts one.
    pub fn run_command(
        &self,
        agent: &AgentName,
        command: AgentCommand,
        argument: String,
        timeout: Option<Duration>,
    ) -> Result<Report> {
        self.delegate_task(agent, argument, Some(command), timeout, None)
    }

    fn delegate_task(
        &self,
        agent: &AgentName,
        prompt: String,
        command: Option<AgentCommand>,
        timeout: Option<Duration>,
        observer: Option<&mut dyn Observer>,
    ) -> Result<Report> {
        let started = Instant::now();
        let host_pid = self.host_of(agent)?;
        let task = self.create_task(agent, prompt, command)?;
        let mut wait = Wait {
            c: self,
            task: &task,
            entry: None,
            host_pid,
            started,
            jumped_from: None,
        };
        let cancelled_by = match self.wait_until_done(&mut wait, timeout, observer) {
            Ok(cancelled_by) => {
                wait.jump_back();
                cancelled_by
            }
            Err(e) if e.is::<Detached>() => {
                wait.jump_back();
                return Err(e);
            }
            Err(e) => {
                // Whatever failed, the task must not stay pending for an agent to run
                // for nobody: cancel it, best effort, and report the failure.
                let _ = wait.cancel(&format!("the coordinator failed: {e:#}"));
                wait.jump_back();
                return Err(e);
            }
        };
        // Every exit from the wait loop leaves a done.json; only someone deleting it
        // behind our back can make it vanish.
        let done = wait
            .done()?
            .with_context(|| format!("the done.json of task {} disappeared", task.id))?;
        let answer_bytes = match done.outcome {
            Outcome::Ok => read_optional(&self.state.result_path(&task.id))?,
            _ => None,
        };
        let (answer, invalid_bytes) = match &answer_bytes {
            Some(bytes) => {
                let (text, invalid) = super::prompt_file::lossy(bytes);
                (Some(text), invalid)
            }
            None => (None, 0),
        };
        Ok(Report {
            task: task.id.clone(),
            done,
            answer,
            answer_bytes,
            invalid_bytes,
            elapsed: started.elapsed(),
            cancelled_by,
        })
    }

    /// Queues the task and runs the event loop until it has a `done.json`.
    fn wait_until_done(
        &self,
        wait: &mut Wait<'_>,
        timeout: Option<Duration>,
        mut observer: Option<&mut dyn Observer>,
    ) -> Result<Option<Cancel>> {
        let (id, agent) = (&wait.task.id, &wait.task.agent);
        let _doorbell = Doorbell::listen(&self.state.wake_path(id), self.tx.clone(), || {
            Event::Changed
        })?;
        // Only a view needs to follow the agent's status, queue and output; without one
        // no file watch is made at all (see `doorbell` for why that matters).
        let _watcher = match observer {
            Some(_) => {
                let mut w = DirWatcher::new(self.tx.clone(), || Event::Changed)?;
                w.watch(&self.state.task_dir(id))?;
                w.watch(&self.state.agent_dir(agent))?;
                w.watch(&self.state.inbox_dir(agent))?;
                Some(w)
            }
            None => None,
        };
        // An agent still starting (spawned for a busy role): its directory is watched
        // until its host holds the lock, and the wait shows in the view, where Esc
        // cancels it like any wait.
        let _start_watch = match wait.host_pid {
            None => {
                let mut w = DirWatcher::new(self.tx.clone(), || Event::Changed)?;
                w.watch(&self.state.agent_dir(agent))?;
                Some(w)
            }
            Some(_) => None,
        };
        let start_deadline = wait
            .host_pid
            .is_none()
            .then(|| Instant::now() + SPAWN_READY);
        let mut _exit_watch = match wait.host_pid {
            Some(pid) => Some(self.watch_host(agent, pid)?),
            None => None,
        };
        // Logged first: the agent may take the task (and log that) at once.
        crate::events::queued(&self.state, wait.task);
        wait.entry = Some(enqueue(&self.state, agent, id).inspect_err(|_| {
            // Nothing was queued: leave nothing behind.
            let _ = std::fs::remove_dir_all(self.state.task_dir(id));
        })?);

        let deadline = timeout.and_then(|t| wait.started.checked_add(t));
        loop {
            if wait.done()?.is_some() {
                return Ok(None);
            }
            if wait.host_pid.is_none() {
                if let Some(pid) = lock_holder(&self.state.lock_path(agent))? {
                    wait.host_pid = Some(pid);
                    _exit_watch = Some(self.watch_host(agent, pid)?);
                } else if start_deadline.is_some_and(|d| Instant::now() >= d) {
                    let why = format!(
                        "the new agent @{agent} did not start within {}s",
                        SPAWN_READY.as_secs()
                    );
                    wait.cancel(&why)?;
                    return Ok(None);
                }
            }
            if let Some(obs) = observer.as_deref_mut() {
                obs.update(&wait.progress());
            }
            let now = Instant::now();
            let refresh = observer.as_ref().and_then(|o| o.refresh()).map(|r| now + r);
            let start = start_deadline.filter(|_| wait.host_pid.is_none());
            let backstop = Some(now + BACKSTOP);
            let wake = [deadline, refresh, start, backstop]
                .into_iter()
                .flatten()
                .min();
            let event = match wake {
                None => self.rx.recv().ok(),
                Some(at) => match self.rx.recv_timeout(at.saturating_duration_since(now)) {
                    Ok(ev) => Some(ev),
                    Err(RecvTimeoutError::Timeout) => None,
                    Err(RecvTimeoutError::Disconnected) => bail!("event channel closed"),
                },
            };
            if deadline.is_some_and(|d| Instant::now() >= d) {
                let secs = timeout.unwrap_or_default().as_secs();
                wait.cancel(&format!("timed out after {secs}s"))?;
                return Ok(Some(Cancel::Timeout));
            }
            match event {
                None
                | Some(Event::Changed)
                | Some(Event::Signal(Signal::Resize))
                | Some(Event::Finished(..)) => {}
                Some(Event::HostExited(pid)) if Some(pid) == wait.host_pid => wait.host_died()?,
                Some(Event::HostExited(_)) => {}
                Some(Event::Cancel(reason)) => {
                    wait.cancel(&reason)?;
                    return Ok(Some(Cancel::User));
                }
                Some(Event::Background) if self.detachable.get() => {
                    wait.detach()?;
                    return Err(Detached(wait.task.id.clone()).into());
                }
                Some(Event::Jump) => wait.jump(),
                Some(Event::Background) => {}
                Some(Event::Signal(sig)) => {
                    wait.cancel(&format!("the coordinator received {}", sig.name()))?;
                    return Ok(Some(Cancel::Signal(sig)));
                }
            }
            if let Some(why) = wait.lost()? {
                wait.finish(Outcome::Failed, &why)?;
                return Ok(None);
            }
        }
    }

    /// Queues `prompt` for `agent` in the background and returns at once. The task goes
    /// into `chief`'s outbox before it is queued, so its result can never be orphaned.
    pub fn submit_background(
        &self,
        agent: &AgentName,
        prompt: String,
        chief: &ChiefId,
    ) -> Result<TaskEnvelope> {
        self.host_of(agent)?;
        let task = self.create_task_with(agent, prompt, true, None)?;
        let queued = self
            .state
            .add_to_outbox(chief, &OutboxEntry::new(&task))
            .and_then(|()| {
                // Logged first: the agent may take the task (and log that) at once.
                crate::events::queued(&self.state, &task);
                enqueue(&self.state, agent, &task.id)
            });
        if let Err(e) = queued {
            // Nothing was queued: leave nothing behind.
            let _ = std::fs::remove_file(self.state.outbox_entry_path(chief, &task.id));
            let _ = std::fs::remove_dir_all(self.state.task_dir(&task.id));
            return Err(e);
        }
        Ok(task)
    }

    /// The pid of `agent`'s host; `None` for an agent this process is starting (a spawn
    /// for a busy role), whose task waits in its inbox until the host is up.
    fn host_of(&self, agent: &AgentName) -> Result<Option<i32>> {
        match preflight(&self.state, agent) {
            Ok(pid) => Ok(Some(pid)),
            Err(_) if crate::team::spawn::is_starting(agent) => {
                self.state.create_agent_dirs(agent)?;
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    /// Sends [`Event::HostExited`] when host `pid` exits.
    fn watch_host(&self, agent: &AgentName, pid: i32) -> Result<crate::process::ExitWatch> {
        let watch = notify_exit(pid, self.tx.clone(), move || Event::HostExited(pid))?;
        // The host may have died before the pidfd existed, or a new host may hold the
        // lock under a reused pid: either way the pidfd is not watching our host.
        if lock_holder(&self.state.lock_path(agent))? != Some(pid) {
            let _ = self.tx.send(Event::HostExited(pid));
        }
        Ok(watch)
    }

    fn create_task(
        &self,
        agent: &AgentName,
        prompt: String,
        command: Option<AgentCommand>,
    ) -> Result<TaskEnvelope> {
        self.create_task_with(agent, prompt, false, command)
    }

    fn create_task_with(
        &self,
        agent: &AgentName,
        prompt: String,
        background: bool,
        command: Option<AgentCommand>,
    ) -> Result<TaskEnvelope> {
        for attempt in 0..1000 {
            let id = TaskId::generate(attempt);
            if self.state.create_task_dir(&id)? {
                let mut task = TaskEnvelope::new(id, agent.clone(), prompt);
                task.background = background;
                task.command = command;
                task.wait_chain = self.wait_chain.borrow().clone();
                if let Err(e) = write_json(&self.state.task_path(&task.id), &task) {
                    // A full disk, say: leave nothing behind.
                    let _ = std::fs::remove_dir_all(self.state.task_dir(&task.id));
                    return Err(e);
                }
                return Ok(task);
            }
        }
        bail!(
            "failed to allocate a task id in {}",
            self.state.root().display()
        )
    }
}

/// The state of one wait: everything the loop's branches need.
struct Wait<'a> {
    c: &'a Coordinator,
    task: &'a TaskEnvelope,
    /// The inbox entry, once queued.
    entry: Option<PathBuf>,
    /// `None` while the agent's host is still starting.
    host_pid: Option<i32>,
    started: Instant,
    /// The chief's tmux window, when `a` jumped to the agent's: we go back at the end.
    jumped_from: Option<String>,
}

impl Wait<'_> {
    fn done(&self) -> Result<Option<Done>> {
        read_json(&self.c.state.done_path(&self.task.id))
    }

    /// Records an outcome unless the agent already did. Without a task directory there
    /// is nowhere to record it: the error is the reason.
    fn finish(&self, outcome: Outcome, reason: &str) -> Result<()> {
        if !self.c.state.check_task_dir(&self.task.id)? {
            bail!("{reason}");
        }
        let done = Done::unsuccessful(self.task, outcome, reason, FinishedBy::Coordinator);
        self.c.state.record_done(&done)?;
        Ok(())
    }

    /// Why the task can never finish, when it cannot: its directory is gone, or it is
    /// neither queued nor the agent's current task and has no outcome (the agent could
    /// not record one, or its inbox was removed). The backstop's question; `None` while
    /// the task may still end normally.
    fn lost(&self) -> Result<Option<String>> {
        let (state, id, agent) = (&self.c.state, &self.task.id, &self.task.agent);
        if !state.check_task_dir(id)? {
            return Ok(Some(format!(
                "the task's directory {} was removed while @{agent} had the task, so its \
                 outcome cannot be recorded",
                state.task_dir(id).display()
            )));
        }
        if self.host_pid.is_none() || self.entry.as_ref().is_none_or(|e| e.exists()) {
            return Ok(None); // still starting, or still queued
        }
        let current = read_json::<InboxEntry>(&state.current_path(agent));
        if matches!(current, Ok(Some(ref c)) if c.task_id == *id) {
            return Ok(None);
        }
        // The agent writes done.json before it lets go of the task: look again, now that
        // it has let go.
        if self.done()?.is_some() {
            return Ok(None);
        }
        let detail = match AgentStatus::load(state, agent) {
            Ok(Some(s)) => s.error.map(|e| format!(" ({e})")).unwrap_or_default(),
            _ => String::new(),
        };
        Ok(Some(format!(
            "agent @{agent} no longer has the task and recorded no outcome{detail}; \
             its queue may have been removed"
        )))
    }

    /// Sends the task to the background: marked `background` (so the agent runs it after
    /// we are gone) and put in the chief's outbox, before we stop waiting.
    fn detach(&self) -> Result<()> {
        let mut task = self.task.clone();
        task.background = true;
        write_json(&self.c.state.task_path(&task.id), &task)?;
        self.c
            .state
            .add_to_outbox(&crate::state::chief_id(), &OutboxEntry::new(&task))
    }

    /// Shows the agent's tmux window, remembering the chief's.
    fn jump(&mut self) {
        // The agent's pane id: unlike a window name it survives renames, and tmux takes
        // it wherever a window is meant.
        let agent_pane = AgentInfo::load(&self.c.state, &self.task.agent)
            .ok()
            .flatten()
            .and_then(|i| i.status?.tmux)
            .map(|t| t.pane);
        let (Some(target), Ok(pane)) = (agent_pane, std::env::var("TMUX_PANE")) else {
            return;
        };
        let session_of =
            |p: &str| crate::tmux::query(&["display-message", "-p", "-t", p, "#{session_name}"]);
        let here = crate::tmux::query(&[
            "display-message",
            "-p",
            "-t",
            &pane,
            "#{session_name}:#{window_index}",
        ]);
        // In the chief's own session (as `up` lays it out) selecting the window is
        // enough; another session needs the client switched.
        let ours = session_of(&pane);
        let same_session = ours.is_some() && ours == session_of(&target);
        let verb = if same_session {
            "select-window"
        } else {
            "switch-client"
        };
        if let Some(here) = here
            && crate::tmux::query(&[verb, "-t", &target]).is_some()
        {
            self.jumped_from.get_or_insert(here);
        }
    }

    /// Back to the chief's window after a jump.
    fn jump_back(&mut self) {
        if let Some(window) = self.jumped_from.take()
            && crate::tmux::query(&["select-window", "-t", &window]).is_some()
        {
            let _ = crate::tmux::query(&["switch-client", "-t", &window]);
        }
    }

    /// Withdraws the inbox entry. Returns true if and only if the agent never claimed
    /// the task (it was not queued yet, or it was withdrawn now).
    fn withdraw(&self) -> Result<bool> {
        match &self.entry {
            None => Ok(true),
            Some(entry) => withdraw(entry),
        }
    }

    fn host_died(&self) -> Result<()> {
        if !self.withdraw()? {
            // A new host may have claimed it already: it must not work for nobody.
            let why = "agent-wrap died; the coordinator gave up on the task";
            self.c.state.ensure_task_dir(&self.task.id)?;
            write_json(
                &self.c.state.cancel_path(&self.task.id),
                &CancelRequest::new(why),
            )?;
        }
        self.finish(
            Outcome::Failed,
            &format!(
                "agent @{} died (agent-wrap pid {} exited) before finishing the task",
                self.task.agent,
                self.host_pid.unwrap_or_default()
            ),
        )
    }

    /// Cancels the task: withdraws it if still queued, else asks the agent to stop and
    /// gives it [`CANCEL_GRACE`] to acknowledge.
    fn cancel(&self, reason: &str) -> Result<()> {
        if self.withdraw()? {
            return self.finish(Outcome::Cancelled, reason);
        }
        self.c.state.ensure_task_dir(&self.task.id)?;
        write_json(
            &self.c.state.cancel_path(&self.task.id),
            &CancelRequest::new(reason),
        )?;
        let deadline = Instant::now() + CANCEL_GRACE;
        let mut host_died = false;
        while self.done()?.is_none() && !host_died {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.c.rx.recv_timeout(left) {
                Ok(Event::HostExited(pid)) if Some(pid) == self.host_pid => host_died = true,
                Ok(_) => {}
                Err(_) => break,
            }
        }
        let why = if host_died {
            "the agent died meanwhile"
        } else {
            "the agent did not confirm in time"
        };
        self.finish(Outcome::Cancelled, &format!("{reason} ({why})"))
    }

    /// What the view shows. Read errors (a corrupt status, say) show as offline rather
    /// than ending the wait: the task's outcome does not depend on them.
    fn progress(&self) -> Progress {
        let state = &self.c.state;
        let agent = &self.task.agent;
        let agent_state = AgentInfo::load(state, agent)
            .ok()
            .flatten()
            .map_or(AgentState::Offline, |info| info.state());
        // A spawned agent whose host is not up yet.
        let agent_state = match (agent_state, self.host_pid) {
            (AgentState::Offline, None) => AgentState::Starting,
            (state, _) => state,
        };
        let queue = pending(state, agent).unwrap_or_default();
        let ahead = self.entry.as_ref().and_then(|entry| {
            let pos = queue.iter().position(|(p, _)| p == entry)?;
            let busy = matches!(
                agent_state,
                AgentState::Working | AgentState::User | AgentState::Waiting
            );
            Some(pos + usize::from(busy))
        });
        Progress {
            agent: agent.clone(),
            task: self.task.id.clone(),
            title: self.task.title.clone(),
            agent_state,
            ahead,
            elapsed: self.started.elapsed(),
            latest_output: latest_line(&state.output_path(&self.task.id)),
        }
    }
}

/// The last non-empty line of a streaming output file, without control characters.
pub fn latest_line(path: &std::path::Path) -> Option<String> {
    const TAIL: u64 = 4096;
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(path)
        .ok()?;
    if !file.metadata().ok()?.is_file() {
        return None;
    }
    let len = file.metadata().ok()?.len();
    file.seek(SeekFrom::Start(len.saturating_sub(TAIL))).ok()?;
    let mut buf = Vec::new();
    file.read_to_end(&mut buf).ok()?;
    let text = String::from_utf8_lossy(&buf);
    text.lines()
        .map(|l| l.chars().filter(|c| !c.is_control()).collect::<String>())
        .rfind(|l| !l.trim().is_empty())
}
