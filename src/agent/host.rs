//! The host's event loop and the bookkeeping around each task.
//!
//! One thread owns all state. Signals, inbox and cancel-file changes (by directory
//! watch) and the driver's end-of-run all arrive as `HostEvent`s on one channel, so
//! there is no locking and no polling.

use std::io::{IsTerminal, Write};
use std::os::unix::fs::DirBuilderExt;
use std::sync::mpsc::{Receiver, Sender, channel};
use std::time::Duration;

use anyhow::{Context, Result, bail};

use super::claude::session::{
    ClaudeConfig, ClaudeEvent, REPROBE_QUIET, Session, SessionPaths, Update,
};
use super::driver::{Driver, RunEnd, RunHandle, RunStatus};
use super::output::OutputSink;
use crate::process::{is_alive, kill_task_processes};
use crate::signals::{self, Signal};
use crate::state::MAX_FILE_BYTES;
use crate::state::{
    AgentCommand, AgentName, AgentState, AgentStatus, CancelRequest, Done, FORMAT_VERSION,
    FinishedBy, HostLock, InboxEntry, Outcome, RecentTask, StateDir, TaskEnvelope, TaskId, TaskRef,
    TmuxLocation, atomic_create, atomic_write, claim_next, pending, read_json, withdraw,
};
use crate::time::{human_us, now_us};
use crate::watch::DirWatcher;

/// How long a run gets between SIGTERM and SIGKILL.
pub const STOP_GRACE: Duration = Duration::from_secs(2);

/// Finished tasks of this agent older than this are removed when its host starts.
pub const TASK_RETENTION: Duration = Duration::from_secs(7 * 24 * 3600);

/// What `agent-wrap` was asked to do.
#[derive(Clone, Debug)]
pub struct HostOptions {
    pub name: AgentName,
    pub driver: Driver,
    pub roles: Vec<String>,
    /// Echo task headers and output to stdout (the agent's window).
    pub echo: bool,
    /// Issue 15: the agent's own git worktree (the host already runs in it, see
    /// `cli::wrap`). Recorded in status.json; each task's changed files go in done.json.
    pub worktree: Option<crate::state::AgentWorktree>,
    /// Drain this board when idle (`--board`; empty: the project's board). Issue 11.
    pub board: Option<String>,
}

enum HostEvent {
    Changed,
    Signal(Signal),
    RunEnded(RunEnd),
    GraceOver(TaskId),
    /// From the hosted Claude Code's session (claude driver only).
    Claude(ClaudeEvent),
    /// The drained board changed (src/board/drain.rs): only a chance to claim, never a
    /// session event, so board traffic cannot disturb a delivery.
    Board,
}

struct Running {
    task: TaskEnvelope,
    handle: RunHandle,
    claimed_at_us: u64,
    started_at_us: u64,
    /// Set once we asked the run to stop, with the outcome and reason to record.
    stopping: Option<(Outcome, String)>,
    /// The task's output log, for drivers that do not write it themselves (claude).
    sink: Option<OutputSink>,
    /// Claude driver: the task waits for the box to be free (a draft or a dialog).
    held: bool,
    /// Claude driver: the human submitted input into this task's turn.
    human_input: bool,
    /// Claude driver: when the delivery was acknowledged, and when the turn ended.
    acked_at_us: Option<u64>,
    turn_ended_at_us: Option<u64>,
    /// Issue 15: the worktree as the task found it, to count the files it changed.
    snapshot: Option<crate::worktree::diff::Snapshot>,
}

struct Host {
    state: StateDir,
    opts: HostOptions,
    status: AgentStatus,
    tx: Sender<HostEvent>,
    watcher: DirWatcher,
    running: Option<Running>,
    /// The hosted Claude Code (claude driver only).
    claude: Option<Session>,
    /// Where the session's threads and timers send their events.
    claude_tx: Option<Sender<ClaudeEvent>>,
    /// When Claude Code was restarted recently, for the backoff and the limit.
    restarts: Vec<std::time::Instant>,
    /// Consecutive starts that died before accepting input (a failing `--resume`).
    resume_failures: u32,
    /// The prompt of a task the last Claude Code died on: cleared from the box of the
    /// next one, which may restore it.
    interrupted_prompt: Option<String>,
    /// Claude Code's session registry directory (`~/.claude/sessions`), when watched.
    claude_sessions: Option<std::path::PathBuf>,
    /// When the event being applied was written (from its file name), for timings.
    event_at_us: u64,
    /// Counts the human's key bursts while a task is held, so only the last one re-probes.
    input_bursts: u64,
    /// The output log of the task that just finished, for its late streamed text.
    last_sink: Option<OutputSink>,
    /// Raw mode on the agent's window while Claude Code is mirrored into it.
    _raw: Option<RawMode>,
    /// The board this agent drains when idle (src/board/drain.rs).
    drainer: Option<crate::board::Drainer>,
}

/// Runs the host until a signal stops it. Returns the exit status.
pub fn run_host(state: &StateDir, opts: HostOptions) -> Result<i32> {
    let name = opts.name.clone();
    state.create_agent_dirs(&name)?;
    let _lock = match HostLock::acquire(&state.lock_path(&name))? {
        Ok(lock) => lock,
        Err(pid) => {
            let place = AgentStatus::load(state, &name)
                .ok()
                .flatten()
                .and_then(|s| s.tmux)
                .map(|t| format!(" in tmux window {} (pane {})", t.window, t.pane))
                .unwrap_or_default();
            bail!("agent @{name} is already hosted by agent-wrap pid {pid}{place}");
        }
    };

    let (tx, rx) = channel();
    signals::forward(tx.clone(), HostEvent::Signal)?;
    let mut watcher = DirWatcher::new(tx.clone(), || HostEvent::Changed)?;
    watcher.watch(&state.inbox_dir(&name))?;
    // Board draining: a board change, lease end or claimer's exit wakes the loop.
    let drainer = match &opts.board {
        Some(spec) => {
            let d = crate::board::Drainer::open(Some(spec), state, &name, &opts.roles)?;
            d.watch(tx.clone(), || HostEvent::Board)?;
            Some(d)
        }
        None => None,
    };

    let mut status = AgentStatus::new(name.clone(), opts.driver.name(), opts.roles.clone());
    match AgentStatus::load(state, &name) {
        Ok(Some(old)) => {
            status.recent = old.recent;
            status.claude_session_id = old.claude_session_id;
        }
        Ok(None) => {}
        Err(e) => warn(&format!("ignoring the old status: {e:#}")),
    }
    status.tmux = tmux_location();
    status.worktree = opts.worktree.clone(); // issue 15
    status.save(state)?;

    let mut host = Host {
        state: state.clone(),
        opts,
        status,
        tx,
        watcher,
        running: None,
        claude: None,
        claude_tx: None,
        restarts: Vec::new(),
        resume_failures: 0,
        interrupted_prompt: None,
        claude_sessions: None,
        event_at_us: 0,
        input_bursts: 0,
        last_sink: None,
        _raw: None,
        drainer,
    };
    host.recover_interrupted_task();
    if let Driver::Claude(config) = host.opts.driver.clone() {
        host.start_claude(&config)?;
    }
    host.prune_old_tasks();
    // A hosted Claude Code is ready only when its SessionStart hook says so.
    if host.claude.is_none() {
        host.set_state(AgentState::Idle)?;
    }
    host.say(&format!(
        "agent @{name} ready ({} driver), waiting for tasks",
        host.opts.driver.name()
    ));
    let code = host.run(&rx);
    host.shutdown(code)
}

impl Host {
    fn run(&mut self, rx: &Receiver<HostEvent>) -> i32 {
        let mut stop_signal: Option<Signal> = None;
        loop {
            if self.running.is_none() {
                if let Some(sig) = stop_signal {
                    return sig.exit_code();
                }
                if let Err(e) = self.start_next() {
                    warn(&format!("{e:#}"));
                }
            }
            let Ok(event) = rx.recv() else { return 1 };
            let result = match event {
                HostEvent::Changed => {
                    self.read_claude_events();
                    let update = match (&mut self.claude, &self.claude_sessions) {
                        (Some(c), Some(dir)) => c.registry_changed(dir),
                        _ => None,
                    };
                    // Issue 15: a fork becomes ready on its registry (see Session).
                    if let Some(update) = update {
                        self.apply(update);
                    }
                    self.check_cancel()
                }
                HostEvent::Signal(Signal::Resize) => {
                    if let Some(c) = &self.claude {
                        c.resize();
                    }
                    Ok(())
                }
                HostEvent::Claude(event) => self.on_claude_event(event, stop_signal.is_some()),
                HostEvent::Signal(sig) => {
                    if stop_signal.is_some() {
                        // A second signal: stop now.
                        if let Some(r) = &self.running {
                            r.handle.kill();
                        }
                    }
                    stop_signal = Some(sig);
                    // Board draining: a stopped board task goes back to the queue.
                    if let Some(d) = &self.drainer {
                        d.stop();
                    }
                    let reason = format!("agent-wrap received {} and stopped the task", sig.name());
                    self.stop_run(Outcome::Failed, reason);
                    if let Some(c) = &mut self.claude {
                        c.kill();
                    }
                    Ok(())
                }
                // The loop's top claims from the board when the agent is free.
                HostEvent::Board => Ok(()),
                HostEvent::RunEnded(end) => {
                    self.finish_run(end);
                    Ok(())
                }
                HostEvent::GraceOver(id) => {
                    if let Some(r) = self.running.as_ref().filter(|r| r.task.id == id) {
                        r.handle.kill();
                    }
                    Ok(())
                }
            };
            if let Err(e) = result {
                warn(&format!("{e:#}"));
            }
        }
    }

    fn say(&self, line: &str) {
        use std::io::IsTerminal;
        if !self.opts.echo {
            return;
        }
        // Dim on a terminal; plain text when piped, as in the demo and tests. Through
        // the echo queue: the window may be gone (SIGHUP after `tmux kill-window`) or
        // stalled, and the host must go on regardless.
        let text = if std::io::stdout().is_terminal() {
            format!("\x1b[2m── {line}\x1b[0m\n")
        } else {
            format!("── {line}\n")
        };
        crate::agent::output::Echo::write(text.as_bytes());
    }

    fn set_state(&mut self, state: AgentState) -> Result<()> {
        self.status.status = state;
        self.status.last_active_us = now_us();
        self.status.save(&self.state)
    }

    /// A previous host of this agent died while working: that task is over, and what
    /// its command left running is killed.
    fn recover_interrupted_task(&mut self) {
        let current = self.state.current_path(&self.opts.name);
        if current.is_dir() && !current.is_symlink() {
            // Left by an older build that claimed a planted directory.
            let _ = std::fs::remove_dir_all(&current);
        }
        let entry = match read_json::<InboxEntry>(&current) {
            Ok(Some(entry)) => entry,
            Ok(None) => return,
            Err(e) => {
                warn(&format!("removing an unreadable claim: {e:#}"));
                let _ = std::fs::remove_file(&current);
                return;
            }
        };
        let killed = kill_task_processes(self.opts.name.as_str(), entry.task_id.as_str());
        if killed > 0 {
            self.say(&format!(
                "killed {killed} process(es) left from task {}",
                entry.task_id
            ));
        }
        self.interrupted_prompt = read_json::<TaskEnvelope>(&self.state.task_path(&entry.task_id))
            .ok()
            .flatten()
            .map(|t| t.prompt);
        let reason = "the previous agent-wrap died while working on this task";
        self.end_claimed(&entry.task_id, Outcome::Failed, reason);
    }

    /// Removes this agent's finished tasks older than [`TASK_RETENTION`], so the state
    /// directory does not grow without bound. Problems are reported, never fatal.
    fn prune_old_tasks(&self) {
        let cutoff = now_us().saturating_sub(TASK_RETENTION.as_micros() as u64);
        let Ok(dir) = std::fs::read_dir(self.state.tasks_dir()) else {
            return;
        };
        for entry in dir.flatten() {
            let Some(id) = entry
                .file_name()
                .to_str()
                .and_then(|n| TaskId::parse(n).ok())
            else {
                continue;
            };
            let mine = matches!(read_json::<TaskEnvelope>(&self.state.task_path(&id)),
                Ok(Some(t)) if t.agent == self.opts.name);
            let old = matches!(read_json::<Done>(&self.state.done_path(&id)),
                Ok(Some(d)) if d.finished_at_us < cutoff);
            if mine
                && old
                && let Err(e) = std::fs::remove_dir_all(entry.path())
            {
                warn(&format!("failed to remove old task {id}: {e}"));
            }
        }
    }

    /// Claims inbox entries until one starts running or the inbox is empty. Whatever
    /// goes wrong after a claim, the task still gets its `done.json`.
    fn start_next(&mut self) -> Result<()> {
        // The claude driver takes a task only into a ready, free Claude Code; while it is
        // down (restart backoff) tasks wait in the inbox.
        if matches!(self.opts.driver, Driver::Claude(_))
            && !self.claude.as_ref().is_some_and(Session::can_deliver)
        {
            return Ok(());
        }
        while let Some(id) = claim_next(&self.state, &self.opts.name)? {
            match self.begin(&id, now_us()) {
                Ok(true) => return Ok(()),
                Ok(false) => {}
                Err(e) => {
                    let why = format!("agent @{} could not run the task: {e:#}", self.opts.name);
                    self.end_claimed(&id, Outcome::Failed, &why);
                }
            }
        }
        // Board draining: idle with an empty inbox, queue the next ready board task as
        // an ordinary task and take it (direct delegations always come first).
        if let Some(d) = &self.drainer
            && d.next_task()?.is_some()
        {
            return self.start_next();
        }
        Ok(())
    }

    /// Starts claimed task `id`; returns false when it was ended without running.
    fn begin(&mut self, id: &TaskId, claimed_at_us: u64) -> Result<bool> {
        let task = read_json::<TaskEnvelope>(&self.state.task_path(id))?
            .context("its task.json is missing")?;
        // Paths below come from the envelope: it must be the task that was queued here.
        if task.id != *id || task.agent != self.opts.name {
            bail!("task.json names task {} for @{}", task.id, task.agent);
        }
        if let Some(skip) = self.reason_to_skip(&task)? {
            self.end_claimed(id, Outcome::Cancelled, &skip);
            return Ok(false);
        }
        if let Some(command) = task.command
            && self.claude.is_none()
        {
            let why = format!(
                "agent @{} has no command `{command}`: only a hosted Claude Code does",
                self.opts.name
            );
            self.end_claimed(id, Outcome::Failed, &why);
            return Ok(false);
        }
        self.start(task, claimed_at_us)?;
        Ok(true)
    }

    fn reason_to_skip(&self, task: &TaskEnvelope) -> Result<Option<String>> {
        if read_json::<Done>(&self.state.done_path(&task.id))?.is_some() {
            return Ok(Some("already finished".into()));
        }
        if let Some(cancel) = read_json::<CancelRequest>(&self.state.cancel_path(&task.id))? {
            return Ok(Some(cancel.reason));
        }
        if !task.background && !is_alive(task.requester.pid) {
            return Ok(Some(format!(
                "the requester (pid {}) is gone; nobody is waiting for the answer",
                task.requester.pid
            )));
        }
        Ok(None)
    }

    /// Ends a claimed task that is not running: records `outcome` unless the task has
    /// one already, and frees the agent for the next task. Never fails: problems are
    /// reported, and the agent goes on.
    fn end_claimed(&mut self, id: &TaskId, outcome: Outcome, reason: &str) {
        let task = read_json::<TaskEnvelope>(&self.state.task_path(id))
            .ok()
            .flatten();
        let now = now_us();
        let done = Done {
            version: FORMAT_VERSION,
            task_id: id.clone(),
            outcome,
            reason: Some(reason.to_owned()),
            finished_by: FinishedBy::Agent,
            created_at_us: task.as_ref().map_or(now, |t| t.created_at_us),
            claimed_at_us: Some(now),
            started_at_us: None,
            finished_at_us: now,
            result_bytes: None,
            human_input: false,
            acked_at_us: None,
            turn_ended_at_us: None,
            changes: None,
        };
        let title = task.map_or_else(|| id.to_string(), |t| t.title);
        self.after_task(id, &title, done);
    }

    fn start(&mut self, task: TaskEnvelope, claimed_at_us: u64) -> Result<()> {
        let sink = OutputSink::create(&self.state.output_path(&task.id), self.opts.echo)?;
        // Issue 15: a worktree agent's tree before the task, to say what the task changed.
        let snapshot = crate::worktree::diff::task_snapshot(self.opts.worktree.as_ref());
        let started_at_us = now_us();
        let (handle, sink) = match &mut self.claude {
            // The hosted Claude Code gets the task in its box; its hooks report the end,
            // and the host writes its streamed text to the log.
            Some(claude) => {
                match task.command {
                    Some(AgentCommand::Compact) => claude.compact(&task.prompt)?,
                    None => claude.deliver(&task.prompt)?,
                }
                (RunHandle::Claude, Some(sink))
            }
            None => {
                self.say(&format!(
                    "task {} from pid {} in {}: {}",
                    task.id, task.requester.parent_pid, task.requester.cwd, task.title
                ));
                let handle =
                    self.opts
                        .driver
                        .start(&task, sink, self.tx.clone(), HostEvent::RunEnded)?;
                (handle, None)
            }
        };
        // The run exists now: record it before anything else can fail, so its end is
        // always handled. The status write comes after the start so that it overlaps
        // the run instead of delaying it.
        let task_dir = self.state.task_dir(&task.id);
        self.status.task = Some(TaskRef {
            id: task.id.clone(),
            title: task.title.clone(),
        });
        self.running = Some(Running {
            task,
            handle,
            claimed_at_us,
            started_at_us,
            stopping: None,
            sink,
            held: false,
            human_input: false,
            acked_at_us: None,
            turn_ended_at_us: None,
            snapshot,
        });
        if let Err(e) = self.watcher.watch(&task_dir) {
            warn(&format!(
                "{e:#}; a cancel will only be seen when the run ends"
            ));
        }
        if let Err(e) = self.set_state(AgentState::Working) {
            warn(&format!("{e:#}"));
        }
        // A cancel may have been written between the claim and the watch.
        if let Err(e) = self.check_cancel() {
            warn(&format!("{e:#}"));
        }
        Ok(())
    }

    fn check_cancel(&mut self) -> Result<()> {
        let Some(r) = &self.running else {
            return Ok(());
        };
        if r.stopping.is_some() {
            return Ok(());
        }
        let id = r.task.id.clone();
        if self.state.done_path(&id).exists() {
            // The coordinator decided the outcome itself (it gave up on us): stop working
            // for nobody.
            let why = "the coordinator had already ended the task".to_owned();
            self.stop_run(Outcome::Cancelled, why);
            return Ok(());
        }
        match read_json::<CancelRequest>(&self.state.cancel_path(&id)) {
            Ok(Some(cancel)) => self.stop_run(Outcome::Cancelled, cancel.reason),
            Ok(None) => {}
            // Someone asked to cancel, in a form we cannot read: cancel all the same.
            Err(e) => self.stop_run(Outcome::Cancelled, format!("cancelled ({e:#})")),
        }
        Ok(())
    }

    /// Asks the running task to stop; it is killed if it has not ended after the grace.
    fn stop_run(&mut self, outcome: Outcome, reason: String) {
        let Some(r) = &mut self.running else { return };
        if r.stopping.is_some() {
            return;
        }
        r.stopping = Some((outcome, reason));
        if matches!(r.handle, RunHandle::Claude) {
            // No Stop hook follows an interrupt (docs/claude-code.md#box-escape-interrupts): the run ends now.
            if let Some(c) = &mut self.claude {
                c.interrupt();
            }
            self.finish_run(RunEnd {
                status: RunStatus::Stopped,
                answer: Vec::new(),
                truncated: false,
                stderr_tail: String::new(),
            });
            return;
        }
        r.handle.stop();
        let (tx, id) = (self.tx.clone(), r.task.id.clone());
        std::thread::spawn(move || {
            std::thread::sleep(STOP_GRACE);
            let _ = tx.send(HostEvent::GraceOver(id));
        });
    }

    fn finish_run(&mut self, end: RunEnd) {
        let Some(mut r) = self.running.take() else {
            return;
        };
        self.last_sink = r.sink.take();
        let (mut outcome, mut reason) = match (&r.stopping, &end.status) {
            (Some((outcome, reason)), _) => (*outcome, Some(reason.clone())),
            (None, RunStatus::Exited(0)) => (Outcome::Ok, None),
            (None, RunStatus::Exited(code)) => {
                (Outcome::Failed, Some(exit_reason(*code, &end.stderr_tail)))
            }
            (None, RunStatus::Signaled(sig)) => (
                Outcome::Interrupted,
                Some(format!("the command was killed by signal {sig}")),
            ),
            (None, RunStatus::Stopped) => (Outcome::Interrupted, Some("the run stopped".into())),
        };
        if outcome == Outcome::Ok && end.truncated {
            outcome = Outcome::Failed;
            reason = Some(format!(
                "the answer is larger than the {MAX_FILE_BYTES}-byte limit; see output.log"
            ));
        }
        let mut result_bytes = None;
        if outcome == Outcome::Ok {
            match atomic_write(&self.state.result_path(&r.task.id), &end.answer) {
                Ok(()) => result_bytes = Some(end.answer.len() as u64),
                Err(e) => {
                    outcome = Outcome::Failed;
                    reason = Some(format!(
                        "agent @{} could not save the answer: {e:#}",
                        self.opts.name
                    ));
                }
            }
        }
        let done = Done {
            version: FORMAT_VERSION,
            task_id: r.task.id.clone(),
            outcome,
            reason,
            finished_by: FinishedBy::Agent,
            created_at_us: r.task.created_at_us,
            claimed_at_us: Some(r.claimed_at_us),
            started_at_us: Some(r.started_at_us),
            finished_at_us: now_us(),
            result_bytes,
            human_input: r.human_input,
            acked_at_us: r.acked_at_us,
            turn_ended_at_us: r.turn_ended_at_us,
            // Issue 15: the files this task changed in the agent's worktree.
            changes: crate::worktree::diff::task_changes(
                r.snapshot.as_ref(),
                self.opts.worktree.as_ref(),
            ),
        };
        self.watcher.unwatch(&self.state.task_dir(&r.task.id));
        self.after_task(&r.task.id, &r.task.title, done);
    }

    /// Records `done` unless the task already has an outcome, rings the task's doorbell,
    /// and returns the outcome that stands.
    fn write_done(&self, done: Done) -> Result<Done> {
        let path = self.state.done_path(&done.task_id);
        let created = atomic_create(&path, &serde_json::to_vec_pretty(&done)?)?;
        crate::doorbell::ring(&self.state.wake_path(&done.task_id));
        if created {
            return Ok(done);
        }
        self.say(&format!(
            "task {} was already finished by its coordinator",
            done.task_id
        ));
        Ok(read_json(&path)?.unwrap_or(done))
    }

    /// Finishes a task: its outcome, the log line, the recent list, and the agent free.
    fn after_task(&mut self, id: &TaskId, title: &str, done: Done) {
        let done = self.write_done(done.clone()).unwrap_or_else(|e| {
            warn(&format!("failed to record the end of task {id}: {e:#}"));
            done
        });
        let _ = std::fs::remove_file(self.state.current_path(&self.opts.name));
        // Board draining: the answer marks the board task done, a failure failed.
        if let Some(d) = &self.drainer
            && let Err(e) = d.finish(id, &done)
        {
            warn(&format!("failed to record task {id} on the board: {e:#}"));
        }
        let took = done
            .finished_at_us
            .saturating_sub(done.started_at_us.unwrap_or(done.created_at_us));
        let why = done
            .reason
            .as_deref()
            .map(|r| format!(": {r}"))
            .unwrap_or_default();
        self.say(&format!(
            "task {id} {} in {}{why}",
            done.outcome,
            human_us(took)
        ));
        self.status.push_recent(RecentTask {
            id: id.clone(),
            title: title.to_owned(),
            outcome: done.outcome,
            finished_at_us: done.finished_at_us,
        });
        self.status.task = None;
        if let Err(e) = self.set_state(self.resting_state()) {
            warn(&format!("{e:#}"));
        }
    }

    /// Starts the hosted Claude Code: resuming the agent's session when it has one.
    fn start_claude(&mut self, config: &ClaudeConfig) -> Result<()> {
        let (ctx, crx) = channel();
        let tx = self.tx.clone();
        std::thread::spawn(move || {
            for event in crx {
                if tx.send(HostEvent::Claude(event)).is_err() {
                    return;
                }
            }
        });
        self.watcher
            .watch(&self.state.events_dir(&self.opts.name))?;
        // Claude Code's registry is the backstop for interrupts, which fire no hook.
        if let Some(home) = std::env::var_os("HOME") {
            let sessions = std::path::Path::new(&home).join(".claude/sessions");
            let made = std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(&sessions);
            if made.is_ok() && self.watcher.watch(&sessions).is_ok() {
                self.claude_sessions = Some(sessions);
            }
        }
        if std::io::stdin().is_terminal() {
            self._raw = Some(RawMode::enter()?);
            let input = ctx.clone();
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                let mut stdin = std::io::stdin();
                while let Ok(n) = std::io::Read::read(&mut stdin, &mut buf) {
                    if n == 0 || input.send(ClaudeEvent::Input(buf[..n].to_vec())).is_err() {
                        return;
                    }
                }
            });
        }
        self.claude_tx = Some(ctx);
        self.spawn_claude(config)
    }

    /// Starts (or restarts) the Claude Code process: `--resume` of the agent's session
    /// when it has one, else a new session with a pre-assigned id.
    fn spawn_claude(&mut self, config: &ClaudeConfig) -> Result<()> {
        let (session_id, resume) = match &self.status.claude_session_id {
            Some(id) => (id.clone(), true),
            None => (uuid::Uuid::new_v4().to_string(), false),
        };
        self.status.claude_session_id = Some(session_id.clone());
        self.set_state(AgentState::Starting)?;
        let agent_dir = self.state.agent_dir(&self.opts.name);
        let events_dir = self.state.events_dir(&self.opts.name);
        let paths = SessionPaths {
            agent_dir: &agent_dir,
            events_dir: &events_dir,
            probe_path: self.state.probe_path(&self.opts.name),
        };
        let tx = self.claude_tx.clone().context("no session channel")?;
        let clear_first = self.interrupted_prompt.take();
        self.claude = Some(Session::spawn(
            config,
            paths,
            &session_id,
            resume,
            clear_first,
            tx,
        )?);
        Ok(())
    }

    /// Claude Code exited while we still need it: start it again after a growing pause,
    /// or give up (the host then stops, saying why) after five restarts in a minute.
    fn schedule_restart(&mut self, how: &str, was_ready: bool) {
        const WINDOW: Duration = Duration::from_secs(60);
        const LIMIT: usize = 5;
        if was_ready {
            self.resume_failures = 0;
        } else if self.status.claude_session_id.is_some() {
            self.resume_failures += 1;
        }
        if self.resume_failures >= 2 {
            // It died twice before accepting input: `--resume` finds no conversation
            // (a SIGKILLed Claude Code may not have written its transcript yet). Start
            // the next one fresh, and say so.
            self.resume_failures = 0;
            warn(&format!(
                "Claude Code could not resume session {} ({how}); starting a new session",
                self.status.claude_session_id.as_deref().unwrap_or("")
            ));
            self.status.claude_session_id = None;
        }
        self.restarts.retain(|t| t.elapsed() < WINDOW);
        if self.restarts.len() >= LIMIT {
            warn(&format!(
                "Claude Code exited {LIMIT} times within a minute (last: {how}); agent-wrap stops"
            ));
            let _ = self.tx.send(HostEvent::Signal(Signal::Terminate));
            return;
        }
        let pause = Duration::from_millis(500) * (1 << self.restarts.len());
        self.restarts.push(std::time::Instant::now());
        let _ = self.set_state(AgentState::Starting);
        if let Some(tx) = self.claude_tx.clone() {
            std::thread::spawn(move || {
                std::thread::sleep(pause);
                let _ = tx.send(ClaudeEvent::Restart);
            });
        }
    }

    /// Feeds the hook and probe events waiting in `events/` to the session, oldest first.
    fn read_claude_events(&mut self) {
        if self.claude.is_none() {
            return;
        }
        let dir = self.state.events_dir(&self.opts.name);
        let Ok(entries) = std::fs::read_dir(&dir) else {
            return;
        };
        let mut names: Vec<_> = entries
            .flatten()
            .map(|e| e.path())
            .filter(|p| {
                !crate::state::file_is_temp(p) && p.extension().is_some_and(|x| x == "json")
            })
            .collect();
        names.sort();
        for path in names {
            let event = crate::state::read_optional(&path)
                .ok()
                .flatten()
                .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok());
            let _ = std::fs::remove_file(&path);
            // Event files are named `<written_at_us, 20 digits>-<pid>.json`.
            self.event_at_us = path
                .file_name()
                .and_then(|n| n.to_str()?.split('-').next()?.parse().ok())
                .unwrap_or_else(now_us);
            let update = event.and_then(|e| self.claude.as_mut()?.on_event(&e));
            if let Some(update) = update {
                self.apply(update);
            }
        }
    }

    fn on_claude_event(&mut self, event: ClaudeEvent, stopping: bool) -> Result<()> {
        if !matches!(event, ClaudeEvent::Input(_)) {
            debug(&format!("event {event:?}"));
        }
        match event {
            ClaudeEvent::Input(bytes) => {
                let update = self.claude.as_mut().and_then(|c| c.input(&bytes));
                if let Some(update) = update {
                    self.apply(update);
                }
                if self.running.as_ref().is_some_and(|r| r.held) {
                    self.input_bursts += 1;
                    let (tx, burst) = (self.claude_tx.clone(), self.input_bursts);
                    if let Some(tx) = tx {
                        std::thread::spawn(move || {
                            std::thread::sleep(REPROBE_QUIET);
                            let _ = tx.send(ClaudeEvent::Reprobe(burst));
                        });
                    }
                }
            }
            ClaudeEvent::Reprobe(burst) => {
                let quiet = burst == self.input_bursts;
                let free = self.claude.as_ref().is_some_and(Session::can_deliver);
                if quiet && free {
                    self.redeliver()?;
                }
            }
            ClaudeEvent::Exited(how) => {
                let reason = format!("Claude Code exited ({how}) during the task");
                let was_ready = self.claude.take().is_some_and(|c| c.ready);
                if let Some(r) = &mut self.running {
                    self.interrupted_prompt = Some(r.task.prompt.clone());
                    r.stopping.get_or_insert((Outcome::Failed, reason));
                    self.finish_run(RunEnd {
                        status: RunStatus::Stopped,
                        answer: Vec::new(),
                        truncated: false,
                        stderr_tail: String::new(),
                    });
                }
                if !stopping {
                    self.schedule_restart(&how, was_ready);
                }
            }
            ClaudeEvent::Restart => {
                if let Driver::Claude(config) = self.opts.driver.clone()
                    && self.claude.is_none()
                    && !stopping
                    && let Err(e) = self.spawn_claude(&config)
                {
                    self.schedule_restart(&format!("{e:#}"), false);
                }
            }
            timer => {
                let update = self.claude.as_mut().and_then(|c| c.on_timer(&timer));
                if let Some(update) = update {
                    self.apply(update);
                }
            }
        }
        Ok(())
    }

    /// Acts on what the session reports.
    fn apply(&mut self, update: Update) {
        debug(&format!("update {update:?}"));
        let end = |outcome: Outcome, reason: Option<String>, answer: String| RunEnd {
            status: match outcome {
                Outcome::Ok => RunStatus::Exited(0),
                _ => RunStatus::Stopped,
            },
            answer: answer.into_bytes(),
            truncated: false,
            stderr_tail: reason.unwrap_or_default(),
        };
        let result = match update {
            Update::Ready { session_id } => {
                // Issue 15: Claude Code 2.1.197 names the session a fork was made from in
                // the fork's SessionStart (docs/claude-code.md#fork-session); the fork keeps
                // the id it was started with, or a restart would resume the original.
                let fork_source = match &self.opts.driver {
                    Driver::Claude(c) => c.fork_from.as_deref(),
                    _ => None,
                };
                if fork_source != Some(session_id.as_str()) {
                    self.status.claude_session_id = Some(session_id);
                }
                let state = if self.running.is_some() {
                    AgentState::Working
                } else {
                    AgentState::Idle
                };
                self.set_state(state)
            }
            Update::Acked { human_input } => {
                if let Some(r) = &mut self.running {
                    r.acked_at_us = Some(self.event_at_us);
                    r.human_input |= human_input;
                    r.held = false;
                }
                self.set_state(AgentState::Working)
            }
            Update::Answered(answer) => {
                if let Some(r) = &mut self.running {
                    r.turn_ended_at_us = Some(self.event_at_us);
                }
                self.finish_run(end(Outcome::Ok, None, answer));
                Ok(())
            }
            Update::Failed(why) | Update::Undeliverable(why) => {
                if let Some(r) = &mut self.running {
                    r.turn_ended_at_us = Some(self.event_at_us);
                    r.stopping.get_or_insert((Outcome::Failed, why));
                }
                self.finish_run(end(Outcome::Failed, None, String::new()));
                Ok(())
            }
            Update::Draft => self.hold(AgentState::User),
            Update::DialogOpen => self.hold(AgentState::Waiting),
            Update::NeedsHuman(_) => self.set_state(AgentState::Waiting),
            Update::Resumed => {
                if let Some(r) = &mut self.running {
                    r.held = false;
                }
                self.set_state(AgentState::Working)
            }
            Update::HumanInput => {
                if let Some(r) = &mut self.running {
                    r.human_input = true;
                }
                Ok(())
            }
            Update::HumanInterrupted => {
                if let Some(r) = &mut self.running {
                    r.human_input = true;
                    let why = "the human interrupted the turn in the agent's window";
                    r.stopping.get_or_insert((Outcome::Interrupted, why.into()));
                }
                self.finish_run(end(Outcome::Interrupted, None, String::new()));
                Ok(())
            }
            // The human's own prompt: working, and not routable until it ends.
            Update::HumanTurn => self.set_state(AgentState::Working),
            Update::Idle => self.redeliver(),
            Update::Output(delta) => {
                let sink = match &mut self.running {
                    Some(r) => r.sink.as_mut(),
                    None => self.last_sink.as_mut(),
                };
                if let Some(sink) = sink {
                    sink.write(delta.as_bytes());
                }
                Ok(())
            }
        };
        if let Err(e) = result {
            warn(&format!("{e:#}"));
        }
    }

    /// The claimed task waits until Claude Code's box is free.
    fn hold(&mut self, state: AgentState) -> Result<()> {
        if let Some(r) = &mut self.running {
            r.held = true;
        }
        self.set_state(state)
    }

    /// A turn that was not ours ended: deliver the held task now, or go idle.
    fn redeliver(&mut self) -> Result<()> {
        let (prompt, command) = match &mut self.running {
            Some(r) if r.held => {
                r.held = false;
                (r.task.prompt.clone(), r.task.command)
            }
            Some(_) => return Ok(()),
            None => return self.set_state(self.resting_state()),
        };
        if let Some(c) = &mut self.claude {
            match command {
                Some(AgentCommand::Compact) => c.compact(&prompt)?,
                None => c.deliver(&prompt)?,
            }
        }
        self.set_state(AgentState::Working)
    }

    /// What the agent is between tasks: idle, unless its Claude Code is not (yet) ready.
    fn resting_state(&self) -> AgentState {
        match (&self.opts.driver, &self.claude) {
            (Driver::Claude(_), None) => AgentState::Starting,
            (Driver::Claude(_), Some(c)) if !c.ready => AgentState::Starting,
            _ => AgentState::Idle,
        }
    }

    /// Fails what is still queued, marks the agent offline and returns `code`.
    fn shutdown(&mut self, code: i32) -> Result<i32> {
        // Give a hosted Claude Code a moment to exit and draw its last frame, so that
        // the terminal restore comes after it.
        if let Some(mut claude) = self.claude.take() {
            claude.kill();
            let (tx, rx) = channel();
            if let Ok(_watch) = crate::process::notify_exit(claude.pid as i32, tx, || ()) {
                let _ = rx.recv_timeout(Duration::from_millis(500));
            }
        }
        let why = "agent-wrap stopped before starting this task";
        for (entry, id) in pending(&self.state, &self.opts.name)? {
            if !withdraw(&entry)? {
                continue;
            }
            if let Ok(Some(task)) = read_json::<TaskEnvelope>(&self.state.task_path(&id)) {
                let done = Done::unsuccessful(&task, Outcome::Failed, why, FinishedBy::Agent);
                if let Err(e) = self.write_done(done) {
                    warn(&format!("{e:#}"));
                }
            }
        }
        self.status.task = None;
        self.set_state(AgentState::Offline)?;
        self.say(&format!("agent @{} offline", self.opts.name));
        crate::agent::output::Echo::flush(Duration::from_millis(200));
        Ok(code)
    }
}

/// Raw mode on the agent's window while the hosted Claude Code owns it; restored on drop,
/// unwinding included.
struct RawMode(());

impl RawMode {
    fn enter() -> Result<Self> {
        crossterm::terminal::enable_raw_mode().context("failed to put the terminal in raw mode")?;
        Ok(Self(()))
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        // What Claude Code may have left on, had it no time to undo it: a hidden cursor,
        // bracketed paste, focus reporting.
        let mut out = std::io::stdout();
        let _ = out.write_all(b"\x1b[?25h\x1b[?2004l\x1b[?1004l\r\n");
        let _ = out.flush();
        let _ = crossterm::terminal::disable_raw_mode();
    }
}

/// With `AGENT_WRAP_DEBUG=PATH`, appends the hosted Claude Code's events and the updates
/// they cause to `PATH`, for diagnosing a delivery. A file, not stderr: stderr is the
/// window Claude Code draws in.
fn debug(msg: &str) {
    static LOG: std::sync::OnceLock<Option<std::path::PathBuf>> = std::sync::OnceLock::new();
    let log = LOG.get_or_init(|| {
        std::env::var_os("AGENT_WRAP_DEBUG")
            .filter(|v| !v.is_empty())
            .map(std::path::PathBuf::from)
    });
    if let Some(path) = log
        && let Ok(mut file) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
    {
        let _ = writeln!(file, "{} {msg}", now_us());
    }
}

/// Reports a problem on stderr without ever panicking (the terminal may be gone).
fn warn(msg: &str) {
    let _ = writeln!(std::io::stderr(), "agent-wrap: {msg}");
}

fn exit_reason(code: i32, stderr_tail: &str) -> String {
    match stderr_tail.lines().rev().find(|l| !l.trim().is_empty()) {
        Some(line) => format!("the command exited with status {code}: {}", line.trim()),
        None => format!("the command exited with status {code}"),
    }
}

/// `session:window` and pane of this process when it runs inside tmux.
fn tmux_location() -> Option<TmuxLocation> {
    std::env::var_os("TMUX")?;
    let pane = std::env::var("TMUX_PANE").ok()?;
    let out = std::process::Command::new("tmux")
        .args([
            "display-message",
            "-p",
            "-t",
            &pane,
            "#{session_name}:#{window_name}",
        ])
        .stderr(std::process::Stdio::null())
        .output()
        .ok()?;
    let window = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    (out.status.success() && !window.is_empty()).then_some(TmuxLocation { window, pane })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_reason_uses_the_last_stderr_line() {
        assert_eq!(
            exit_reason(3, "warn\nboom: no such file\n\n"),
            "the command exited with status 3: boom: no such file"
        );
        assert_eq!(exit_reason(1, ""), "the command exited with status 1");
    }
}
