//! The host's event loop and the bookkeeping around each task.
//!
//! One thread owns all state. Signals, inbox and cancel-file changes (by directory
//! watch) and the driver's own events all arrive as `HostEvent`s on one channel, and
//! timers are deadlines the loop waits for, so there is no locking and no polling. The
//! host knows its driver only through [`Driver`].

use std::io::Write;
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender, channel};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};

use super::output::OutputSink;
use super::run::{Context, Driver, Report, RunEnd, RunStatus};
use super::timer::Timers;
use crate::process::kill_task_processes;
use crate::signals::{self, Signal};
use crate::state::MAX_FILE_BYTES;
use crate::state::{
    AgentName, AgentState, AgentStatus, CancelRequest, Done, FinishedBy, HostLock, InboxEntry,
    Outcome, RecentTask, StateDir, TaskEnvelope, TaskId, TaskRef, atomic_write, claim_next,
    pending, read_json, withdraw,
};
use crate::time::{human_us, now_us};
use crate::watch::DirWatcher;

/// How long a run gets between SIGTERM and SIGKILL.
pub const STOP_GRACE: Duration = Duration::from_secs(2);

/// How often a running host applies the retention, at most: pruning reads every task's
/// envelope, so it is done at start and then after a task, no more than this often.
pub const PRUNE_EVERY: Duration = Duration::from_secs(60);

/// The space a host keeps in reserve (`agents/<name>/reserve`), freed to record an
/// outcome when the disk is full: room for `done.json` and the status file.
pub const RESERVE_BYTES: usize = 16 << 10;

pub use crate::state::{Retention, TASK_RETENTION, TASKS_KEPT};

/// What `agent-wrap` was asked to do.
#[derive(Clone, Debug)]
pub struct HostOptions {
    pub name: AgentName,
    pub roles: Vec<String>,
    /// Echo task headers and output to stdout (the agent's window).
    pub echo: bool,
    /// Issue 15: the agent's own git worktree (the host already runs in it, see
    /// `cli::wrap`, so every driver works there through `agent::run::working_dir`).
    /// Recorded in status.json; each task's changed files go in done.json.
    pub worktree: Option<crate::state::AgentWorktree>,
    /// Drain this board when idle (`--board`; empty: the project's board). Issue 11.
    pub board: Option<String>,
    /// What is kept of finished tasks.
    pub retention: Retention,
    /// Run by `agent-wrap --restart` (src/restart/): told once the host is up ...
    pub ready: Option<crate::restart::ReadyPipe>,
    /// ... and, for a restart, which one (recorded in `status.json`).
    pub restarted: Option<crate::state::Restarted>,
}

enum HostEvent<E> {
    Changed,
    Signal(Signal),
    Driver(E),
    /// The drained board changed (src/board/drain.rs): only a chance to claim, never a
    /// driver event, so board traffic cannot disturb a delivery.
    Board,
    /// The process that asked for a foreground task exited (its pidfd).
    RequesterExited(TaskId),
}

/// The host's own timers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum HostTimer {
    /// The stop grace of the running task is over: kill it.
    StopGrace,
}

struct Running {
    task: TaskEnvelope,
    claimed_at_us: u64,
    started_at_us: u64,
    /// Set once we asked the run to stop, with the outcome and reason to record.
    stopping: Option<(Outcome, String)>,
    /// Issue 15: the worktree as the task found it, to count the files it changed.
    snapshot: Option<crate::worktree::diff::Snapshot>,
    /// Watches the requester of a foreground task: nobody is left to read the answer
    /// when it dies, however it dies (a SIGKILL, the OOM killer).
    _requester: Option<crate::process::ExitWatch>,
}

struct Host<D: Driver> {
    state: StateDir,
    opts: HostOptions,
    driver: D,
    status: AgentStatus,
    /// Where the driver's threads send their events.
    driver_tx: Sender<D::Event>,
    watcher: DirWatcher,
    timers: Timers<HostTimer>,
    running: Option<Running>,
    /// The signal that stops the host, once one came.
    stop_signal: Option<Signal>,
    /// The board this agent drains when idle (src/board/drain.rs).
    drainer: Option<crate::board::Drainer>,
    /// The loop's own channel, for watches started per task.
    tx: Sender<HostEvent<D::Event>>,
    /// The host lock, re-taken if its file is removed (see [`Host::check_health`]).
    lock: HostLock,
    /// What this host last wrote to `status.json`.
    saved: Option<AgentStatus>,
    /// When finished tasks were last pruned, and how many have finished since.
    pruned_at: Option<Instant>,
    finished_since_prune: usize,
    /// The status and task last appended to the event log.
    logged_status: Option<(AgentState, Option<TaskId>)>,
}

/// Runs the host until a signal stops it. Returns the exit status.
pub fn run_host<D: Driver>(state: &StateDir, opts: HostOptions, driver: D) -> Result<i32> {
    let name = opts.name.clone();
    state.create_agent_dirs(&name)?;
    let lock = match HostLock::acquire(&state.lock_path(&name))? {
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
    watch_own_dirs(&mut watcher, state, &name)?;
    // Board draining: a board change, lease end or claimer's exit wakes the loop.
    let drainer = match &opts.board {
        Some(spec) => {
            let d = crate::board::Drainer::open(Some(spec), state, &name, &opts.roles)?;
            d.watch(tx.clone(), || HostEvent::Board)?;
            Some(d)
        }
        None => None,
    };
    let (driver_tx, driver_rx) = channel();
    let host_tx = tx.clone();
    std::thread::spawn(move || {
        for event in driver_rx {
            if tx.send(HostEvent::Driver(event)).is_err() {
                return;
            }
        }
    });

    let mut status = AgentStatus::new(name.clone(), driver.name(), opts.roles.clone());
    match AgentStatus::load(state, &name) {
        Ok(Some(old)) => {
            status.recent = old.recent;
            status.claude_session_id = old.claude_session_id;
            status.tokens = old.tokens;
            status.cost_usd = old.cost_usd;
        }
        Ok(None) => {}
        Err(e) => warn(&format!("ignoring the old status: {e:#}")),
    }
    status.tmux = crate::tmux::here();
    status.worktree = opts.worktree.clone(); // issue 15
    status.restarted = opts.restarted.clone();
    status.save(state)?;
    let status_written = status.clone();

    let mut host = Host {
        state: state.clone(),
        opts,
        driver,
        status,
        driver_tx,
        watcher,
        timers: Timers::default(),
        running: None,
        stop_signal: None,
        drainer,
        tx: host_tx,
        lock,
        saved: Some(status_written),
        pruned_at: None,
        finished_since_prune: 0,
        logged_status: None,
    };
    host.log_status();
    host.keep_reserve();
    host.recover_interrupted_task();
    let tx = host.driver_tx.clone();
    let session_id = host.status.claude_session_id.clone();
    let cx = Context {
        state: &host.state,
        agent: &host.opts.name,
        session_id: session_id.as_deref(),
    };
    let reports = host.driver.open(&cx, tx)?;
    host.handle(reports);
    host.prune();
    if host.driver.resting_state() == AgentState::Idle {
        host.set_state(AgentState::Idle)?;
    }
    host.say(&format!(
        "agent @{name} ready ({} driver), waiting for tasks",
        host.driver.name()
    ));
    if let Some(ready) = &host.opts.ready {
        ready.report();
    }
    let code = host.run(&rx);
    host.shutdown(code)
}

impl<D: Driver> Host<D> {
    fn run(&mut self, rx: &Receiver<HostEvent<D::Event>>) -> i32 {
        loop {
            if self.running.is_none() {
                if let Some(sig) = self.stop_signal {
                    return sig.exit_code();
                }
                self.when_free();
            }
            let wait = [self.timers.next(), self.driver.next_timer()]
                .into_iter()
                .flatten()
                .min();
            let event = match wait {
                Some(at) => rx.recv_timeout(at.saturating_duration_since(Instant::now())),
                None => rx.recv().map_err(|_| RecvTimeoutError::Disconnected),
            };
            let result = match event {
                Err(RecvTimeoutError::Disconnected) => return 1,
                Err(RecvTimeoutError::Timeout) => {
                    self.fire_timers();
                    Ok(())
                }
                Ok(HostEvent::Changed) => self.check_cancel().and_then(|()| {
                    self.check_health().map_err(|e| {
                        // The agent cannot be reached any more: say why, and stop.
                        warn(&format!("{e:#}; stopping"));
                        self.on_stop_signal(Signal::Terminate);
                        e
                    })
                }),
                Ok(HostEvent::RequesterExited(id)) => {
                    self.requester_exited(&id);
                    Ok(())
                }
                // The loop's top claims from the board when the agent is free.
                Ok(HostEvent::Board) => Ok(()),
                Ok(HostEvent::Signal(Signal::Resize)) => {
                    self.driver.resize();
                    Ok(())
                }
                Ok(HostEvent::Signal(sig)) => {
                    self.on_stop_signal(sig);
                    Ok(())
                }
                Ok(HostEvent::Driver(event)) => {
                    let cx = Context {
                        state: &self.state,
                        agent: &self.opts.name,
                        session_id: self.status.claude_session_id.as_deref(),
                    };
                    let reports = self.driver.on_event(event, &cx);
                    self.handle(reports);
                    Ok(())
                }
            };
            if let Err(e) = result {
                warn(&format!("{e:#}"));
            }
        }
    }

    /// The agent is free (no task runs): start the next task from the inbox, if any.
    fn when_free(&mut self) {
        if let Err(e) = self.start_next() {
            warn(&format!("{e:#}"));
        }
        // With `self.running` still empty and `self.driver.can_start()`, the agent is
        // idle with an empty inbox (`start_next` claims until it is). Board draining:
        // queue the next ready board task as an ordinary task and take it (direct
        // delegations always come first).
        while self.running.is_none() && self.driver.can_start() {
            let Some(d) = &self.drainer else { return };
            match d.next_task() {
                Ok(Some(_)) => {
                    if let Err(e) = self.start_next() {
                        warn(&format!("{e:#}"));
                    }
                }
                Ok(None) => return,
                Err(e) => return warn(&format!("{e:#}")),
            }
        }
    }

    fn fire_timers(&mut self) {
        for timer in self.timers.take_due(Instant::now()) {
            match timer {
                HostTimer::StopGrace => self.driver.kill(),
            }
        }
        let cx = Context {
            state: &self.state,
            agent: &self.opts.name,
            session_id: self.status.claude_session_id.as_deref(),
        };
        let reports = self.driver.fire_timers(&cx);
        self.handle(reports);
    }

    /// SIGINT, SIGTERM or SIGHUP: stop the task and the driver; a second one kills.
    fn on_stop_signal(&mut self, sig: Signal) {
        if self.stop_signal.is_some() && self.running.is_some() {
            self.driver.kill();
        }
        self.stop_signal = Some(sig);
        // Board draining: a stopped board task goes back to the queue.
        if let Some(d) = &self.drainer {
            d.stop();
        }
        let reason = format!("agent-wrap received {} and stopped the task", sig.name());
        self.stop_run(Outcome::Failed, reason);
        self.driver.close();
    }

    /// Acts on what the driver reports.
    fn handle(&mut self, reports: Vec<Report>) {
        for report in reports {
            let result = match report {
                Report::Ended(end) => {
                    self.finish_run(end);
                    Ok(())
                }
                Report::State(state) => {
                    self.status.waiting_for = None;
                    self.set_state(state)
                }
                Report::Blocked(why) => {
                    self.status.waiting_for = Some(why);
                    self.set_state(AgentState::Waiting)
                }
                Report::SessionId(id) => {
                    self.status.claude_session_id = id;
                    Ok(())
                }
                Report::Usage(id, tokens) => {
                    self.record_usage(&id, tokens);
                    Ok(())
                }
                // The status line runs often (every message update); the file is
                // rewritten only when the figure changed.
                Report::Cost(usd) if self.status.cost_usd != Some(usd) => {
                    self.status.cost_usd = Some(usd);
                    self.save_status()
                }
                Report::Cost(_) => Ok(()),
                Report::Acknowledged(at) => {
                    if let Some(r) = &self.running {
                        crate::events::append_at(
                            self.state.root(),
                            at,
                            crate::events::What::TaskAcknowledged {
                                task: r.task.id.clone(),
                                agent: self.opts.name.clone(),
                            },
                        );
                    }
                    Ok(())
                }
                Report::Fatal(why) => {
                    warn(&why);
                    self.on_stop_signal(Signal::Terminate);
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
        self.save_status()
    }

    /// Writes `status.json`, remembering what was written: the self-repair tells our
    /// own writes from someone else's by it.
    fn save_status(&mut self) -> Result<()> {
        self.status.save(&self.state)?;
        self.log_status();
        self.saved = Some(self.status.clone());
        Ok(())
    }

    /// Issue 14: the tokens task `id`'s turn used, next to its `done.json`
    /// (`usage.json`), and added to the agent's totals in `status.json`.
    fn record_usage(&mut self, id: &TaskId, tokens: crate::state::TokenUsage) {
        let usage = crate::state::TaskUsage {
            version: crate::state::FORMAT_VERSION,
            task_id: id.clone(),
            tokens,
        };
        if self.state.ensure_task_dir(id).is_ok()
            && let Err(e) = crate::state::write_json(&self.state.usage_path(id), &usage)
        {
            warn(&format!("{e:#}"));
        }
        self.status
            .tokens
            .get_or_insert_with(Default::default)
            .add(&tokens);
        if let Err(e) = self.save_status() {
            warn(&format!("{e:#}"));
        }
    }

    /// Appends `agent_status` when the status just written differs from the last one
    /// logged (src/events/): a rewrite by the self-repair is no change.
    fn log_status(&mut self) {
        let now = (
            self.status.status,
            self.status.task.as_ref().map(|t| t.id.clone()),
        );
        if self.logged_status.as_ref() == Some(&now) {
            return;
        }
        crate::events::append(
            self.state.root(),
            crate::events::What::AgentStatus {
                agent: self.opts.name.clone(),
                status: now.0,
                task: now.1.clone(),
            },
        );
        self.logged_status = Some(now);
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
        let task = read_json::<TaskEnvelope>(&self.state.task_path(&entry.task_id));
        if let Ok(Some(task)) = task {
            self.driver.interrupted(task.prompt);
        }
        let reason = "the previous agent-wrap died while working on this task";
        self.end_claimed(&entry.task_id, Outcome::Failed, reason);
    }

    /// Applies the retention to this agent's finished tasks: removes those older than
    /// its age and those beyond its count, newest kept, never one whose background
    /// result has not reached its chief. At start, then after a task at most every
    /// [`PRUNE_EVERY`] (or sooner when a tenth of the kept count has finished since).
    /// Problems are reported, never fatal.
    fn prune(&mut self) {
        // By time, and by count: a tenth of the kept number over, the count is applied
        // at once, so a busy agent never holds much more than it should.
        let over = self.finished_since_prune > self.opts.retention.max_tasks / 10;
        if !over && self.pruned_at.is_some_and(|t| t.elapsed() < PRUNE_EVERY) {
            return;
        }
        self.pruned_at = Some(Instant::now());
        self.finished_since_prune = 0;
        let pruned = crate::state::prune(&self.state, Some(&self.opts.name), self.opts.retention);
        for e in pruned.errors {
            warn(&e);
        }
    }

    /// Keeps [`RESERVE_BYTES`] of disk in reserve, unless it is there already. Written
    /// with real bytes, not as a sparse file, so that freeing it frees blocks.
    fn keep_reserve(&self) {
        let path = self.state.reserve_path(&self.opts.name);
        if std::fs::symlink_metadata(&path).is_ok_and(|m| m.len() == RESERVE_BYTES as u64) {
            return;
        }
        if let Err(e) = atomic_write(&path, &[0u8; RESERVE_BYTES]) {
            warn(&format!("could not keep disk space in reserve: {e:#}"));
        }
    }

    /// Runs `write`; if it fails (a full disk, say), frees the reserve and runs it once
    /// more. The reserve is taken again after the task.
    fn with_reserve<T>(&self, write: impl Fn() -> Result<T>) -> Result<T> {
        write().or_else(|first| {
            match std::fs::remove_file(self.state.reserve_path(&self.opts.name)) {
                Ok(()) => write(),
                Err(_) => Err(first),
            }
        })
    }

    /// The requester of task `id` exited. A foreground task is cancelled: nobody is
    /// left to read its answer. One sent to the background meanwhile goes on.
    fn requester_exited(&mut self, id: &TaskId) {
        let Some(r) = &self.running else { return };
        if r.task.id != *id || r.stopping.is_some() {
            return;
        }
        let now = read_json::<TaskEnvelope>(&self.state.task_path(id));
        if matches!(now, Ok(Some(ref t)) if t.background) {
            return;
        }
        let why = format!(
            "the requester (pid {}) exited; nobody is waiting for the answer",
            r.task.requester.pid
        );
        self.stop_run(Outcome::Cancelled, why);
    }

    /// Self-repair, on every change of the agent's directories: re-creates them if they
    /// were removed (and watches them again), re-takes the lock if its file was
    /// replaced, and rewrites a status file that is missing, unreadable or not ours. An
    /// error means the agent can no longer be reached (another host took its name, or
    /// the directories cannot be re-created): the caller stops.
    fn check_health(&mut self) -> Result<()> {
        // A removal still going on (`rm -rf` walking the tree) may take away what was
        // just re-created, before it is watched again: each pass ends by looking again.
        // A removal after the new watches exist is an event of its own.
        let mut last = None;
        for _ in 0..20 {
            match self.repair_pass() {
                Ok(true) => return Ok(()),
                Ok(false) => last = None,
                Err(e) if e.is::<Replaced>() => return Err(e),
                Err(e) => last = Some(e),
            }
        }
        let name = &self.opts.name;
        Err(last.unwrap_or_else(|| anyhow::anyhow!("it keeps being removed")))
            .with_context(|| format!("the state of @{name} was removed and cannot be re-created"))
    }

    /// One pass of [`Host::check_health`]; true when everything was found intact at its
    /// end.
    fn repair_pass(&mut self) -> Result<bool> {
        let name = self.opts.name.clone();
        if !self.dirs_intact() {
            self.state.repair()?;
            self.state.create_agent_dirs(&name)?;
            watch_own_dirs(&mut self.watcher, &self.state, &name)?;
            if let Some(r) = &self.running {
                let _ = self.watcher.watch(&self.state.task_dir(&r.task.id));
            }
            let cx = Context {
                state: &self.state,
                agent: &name,
                session_id: self.status.claude_session_id.as_deref(),
            };
            self.driver.repaired(&cx);
            self.keep_reserve();
            self.say("re-created the agent's state directories, which had been removed");
        }
        let lock_path = self.state.lock_path(&name);
        if !self.lock.is_at(&lock_path) {
            match HostLock::acquire(&lock_path)? {
                Ok(lock) => self.lock = lock,
                Err(pid) => return Err(Replaced(pid).into()),
            }
        }
        match AgentStatus::load(&self.state, &name) {
            Ok(Some(found)) if Some(&found) == self.saved.as_ref() => {}
            Ok(found) => {
                if found.is_some() {
                    self.say("status.json was changed by someone else: rewritten");
                }
                self.save_status()?;
            }
            Err(e) => {
                self.say(&format!("repaired an unreadable status.json ({e:#})"));
                self.save_status()?;
            }
        }
        Ok(self.dirs_intact() && self.lock.is_at(&lock_path))
    }

    /// Returns true if and only if the agent's directories and `tasks/` all exist.
    fn dirs_intact(&self) -> bool {
        let name = &self.opts.name;
        [
            self.state.agent_dir(name),
            self.state.inbox_dir(name),
            self.state.runtime_agent_dir(name),
            self.state.events_dir(name),
            self.state.tasks_dir(),
        ]
        .iter()
        .all(|d| std::fs::symlink_metadata(d).is_ok_and(|m| m.is_dir()))
    }

    /// Claims inbox entries until one starts running or the inbox is empty. Whatever
    /// goes wrong after a claim, the task still gets its `done.json`.
    fn start_next(&mut self) -> Result<()> {
        if !self.driver.can_start() {
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
            && !self.driver.runs_commands()
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
        if !task.background && !task.requester.is_alive() {
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
        let mut done = Done::finished(id.clone(), outcome, Some(reason.to_owned()), now);
        done.created_at_us = task.as_ref().map_or(now, |t| t.created_at_us);
        done.claimed_at_us = Some(now);
        let title = task.map_or_else(|| id.to_string(), |t| t.title);
        self.after_task(id, &title, done);
    }

    fn start(&mut self, task: TaskEnvelope, claimed_at_us: u64) -> Result<()> {
        self.state.ensure_task_dir(&task.id)?;
        let sink = OutputSink::create(&self.state.output_path(&task.id), self.opts.echo)?;
        // Issue 15: a worktree agent's tree before the task, to say what the task changed.
        let snapshot = crate::worktree::diff::task_snapshot(self.opts.worktree.as_ref());
        let started_at_us = now_us();
        self.say(&format!(
            "task {} from pid {} in {}: {}",
            task.id, task.requester.parent_pid, task.requester.cwd, task.title
        ));
        let reports = self.driver.start(&task, sink, &self.driver_tx)?;
        crate::events::append(
            self.state.root(),
            crate::events::What::TaskDelivered {
                task: task.id.clone(),
                agent: self.opts.name.clone(),
            },
        );
        // The run exists now: record it before anything else can fail, so its end is
        // always handled. The status write comes after the start so that it overlaps
        // the run instead of delaying it.
        let task_dir = self.state.task_dir(&task.id);
        self.status.task = Some(TaskRef {
            id: task.id.clone(),
            title: task.title.clone(),
        });
        let requester = match task.background {
            true => None,
            false => {
                let id = task.id.clone();
                let pid = task.requester.pid as i32;
                let watch = crate::process::notify_exit(pid, self.tx.clone(), move || {
                    HostEvent::RequesterExited(id)
                });
                watch
                    .inspect_err(|e| warn(&format!("{e:#}; a dead requester will not be noticed")))
                    .ok()
            }
        };
        self.running = Some(Running {
            task,
            claimed_at_us,
            started_at_us,
            stopping: None,
            snapshot,
            _requester: requester,
        });
        if let Err(e) = self.watcher.watch(&task_dir) {
            warn(&format!(
                "{e:#}; a cancel will only be seen when the run ends"
            ));
        }
        if let Err(e) = self.set_state(AgentState::Working) {
            warn(&format!("{e:#}"));
        }
        self.handle(reports);
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
        if !self.state.check_task_dir(&id).unwrap_or(false) {
            // Its directory was removed, or replaced: nothing can be recorded for it and
            // nobody can be told, so the work is for nobody.
            let why = "its task directory was removed".to_owned();
            self.stop_run(Outcome::Cancelled, why);
            return Ok(());
        }
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
        let reports = self.driver.stop();
        self.handle(reports);
        if self.running.is_some() {
            self.timers.start(HostTimer::StopGrace, STOP_GRACE);
        }
    }

    fn finish_run(&mut self, end: RunEnd) {
        let Some(r) = self.running.take() else {
            return;
        };
        self.timers.cancel(HostTimer::StopGrace);
        let (mut outcome, mut reason) = match (&r.stopping, &end.status) {
            (Some((outcome, reason)), _) => (*outcome, Some(reason.clone())),
            (None, RunStatus::Exited(0) | RunStatus::Answered) => (Outcome::Ok, None),
            (None, RunStatus::Exited(code)) => {
                (Outcome::Failed, Some(exit_reason(*code, &end.stderr_tail)))
            }
            (None, RunStatus::Signaled(sig)) => (
                Outcome::Interrupted,
                Some(format!("the command was killed by signal {sig}")),
            ),
            (None, RunStatus::Failed(why)) => (Outcome::Failed, Some(why.clone())),
            (None, RunStatus::Interrupted(why)) => (Outcome::Interrupted, Some(why.clone())),
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
            let result_path = self.state.result_path(&r.task.id);
            let output_path = self.state.output_path(&r.task.id);
            let id = &r.task.id;
            let save = || {
                self.state.ensure_task_dir(id)?;
                save_answer(&result_path, &output_path, &end.answer)
            };
            match self.with_reserve(save) {
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
        let mut done = Done::finished(r.task.id.clone(), outcome, reason, r.task.created_at_us);
        done.claimed_at_us = Some(r.claimed_at_us);
        done.started_at_us = Some(r.started_at_us);
        done.result_bytes = result_bytes;
        done.human_input = end.human_input;
        done.acked_at_us = end.acked_at_us;
        done.turn_ended_at_us = end.turn_ended_at_us;
        // Issue 15: the files this task changed in the agent's worktree.
        done.changes =
            crate::worktree::diff::task_changes(r.snapshot.as_ref(), self.opts.worktree.as_ref());
        self.watcher.unwatch(&self.state.task_dir(&r.task.id));
        self.after_task(&r.task.id, &r.task.title, done);
    }

    /// Records `done` unless the task already has an outcome, and returns the outcome
    /// that stands.
    fn write_done(&self, done: Done) -> Result<Done> {
        if self.state.record_done(&done)? {
            return Ok(done);
        }
        self.say(&format!(
            "task {} was already finished by its coordinator",
            done.task_id
        ));
        Ok(read_json(&self.state.done_path(&done.task_id))?.unwrap_or(done))
    }

    /// Finishes a task: its outcome, the log line, the recent list, and the agent free.
    fn after_task(&mut self, id: &TaskId, title: &str, done: Done) {
        let done = match self.with_reserve(|| self.write_done(done.clone())) {
            Ok(done) => {
                self.status.error = None;
                done
            }
            Err(e) => {
                // Never idle in silence: the coordinator waiting on the task (its
                // backstop) and `status` show this.
                let why = format!(
                    "agent @{} could not record the end of task {id} ({}): {e:#}",
                    self.opts.name, done.outcome
                );
                warn(&why);
                self.status.error = Some(why);
                done
            }
        };
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
        self.status.status = self.driver.resting_state();
        self.status.last_active_us = now_us();
        let saved = self.with_reserve(|| self.status.save(&self.state));
        if saved.is_ok() {
            self.log_status();
            self.saved = Some(self.status.clone());
        }
        if let Err(e) = saved {
            warn(&format!("{e:#}"));
        }
        self.keep_reserve();
        self.finished_since_prune += 1;
        self.prune();
    }

    /// Fails what is still queued, marks the agent offline and returns `code`.
    fn shutdown(&mut self, code: i32) -> Result<i32> {
        self.driver.shutdown();
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

/// Another host took the agent's name after this one's lock file was removed.
#[derive(Debug)]
struct Replaced(i32);

impl std::fmt::Display for Replaced {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "the agent is now hosted by agent-wrap pid {} (this host's lock file was removed)",
            self.0
        )
    }
}

impl std::error::Error for Replaced {}

/// Watches what the host reacts to: its inbox (tasks) and both halves of its agent
/// directory (a removed or replaced status file, inbox or lock: see
/// [`Host::check_health`]). Watching again after a repair replaces the old watches.
fn watch_own_dirs(watcher: &mut DirWatcher, state: &StateDir, name: &AgentName) -> Result<()> {
    let mut dirs = vec![
        state.inbox_dir(name),
        state.agent_dir(name),
        state.runtime_agent_dir(name),
    ];
    dirs.dedup();
    for dir in dirs {
        watcher.unwatch(&dir);
        watcher.watch(&dir)?;
    }
    Ok(())
}

/// Writes the answer to `result.txt`, stored once: when it is byte for byte what
/// `output.log` holds (a command that wrote only its answer), `result.txt` is a hard
/// link to it rather than a second copy.
fn save_answer(result: &std::path::Path, output: &std::path::Path, answer: &[u8]) -> Result<()> {
    let same = std::fs::symlink_metadata(output)
        .is_ok_and(|m| m.is_file() && m.len() == answer.len() as u64)
        && crate::state::read_optional(output)
            .ok()
            .flatten()
            .as_deref()
            == Some(answer);
    if same && !answer.is_empty() {
        let _ = std::fs::remove_file(result);
        if std::fs::hard_link(output, result).is_ok() {
            return Ok(());
        }
    }
    atomic_write(result, answer)
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
