//! The run's one event loop: it feeds the [`Scheduler`] and carries out its effects.
//!
//! Events arrive on one channel: a worker's end (from the thread that waits for its
//! process) or its latest output line (from its stdout reader), and signals (from the
//! signal thread). The loop blocks in `recv_timeout` until the next event or the
//! earliest deadline: a task's timeout, or the terminal view's once-a-second redraw
//! while a worker is busy. Nothing polls; an idle run sleeps in that one call.
//!
//! Effects go to the board (claims held by this process's run lock, `done`, `fail`,
//! `release`), to `attempts.jsonl`, to the progress display and to the workers'
//! processes.

use std::collections::HashMap;
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender, channel};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use super::folder::{Attempt, RunFolder, RunMeta, RunState};
use super::progress::{Progress, REDRAW, RunEvent};
use super::scheduler::{Effect, End, Exit, Input, Outcome, Scheduler, TaskSpec};
use super::workers::{Job, Running, WorkerEvent, spawn};
use crate::board::{Board, ClaimRequest, Holder, Status};
use crate::signals::Signal;
use crate::time::now_us;

/// The loop's events.
#[derive(Debug)]
pub enum Event {
    Worker(WorkerEvent),
    Signal(Signal),
}

/// The process's one event channel: the signal thread and every worker feed it; the
/// planner turn and then the run's loop read it.
pub struct Events {
    pub tx: Sender<Event>,
    pub rx: Receiver<Event>,
}

impl Events {
    /// The channel, with signals forwarded to it (once per process).
    pub fn new() -> Result<Self> {
        let (tx, rx) = channel();
        crate::signals::forward(tx.clone(), Event::Signal)?;
        Ok(Self { tx, rx })
    }
}

/// A worker's attempt in flight.
struct Active {
    task: String,
    attempt: u32,
    started_at_us: u64,
    started: Instant,
    process: Option<Running>,
}

/// Runs the tasks of `board` until the run ends, and returns how it ended.
pub fn drive(
    events: &Events,
    folder: &RunFolder,
    meta: &mut RunMeta,
    board: &mut Board,
    progress: &mut Progress,
) -> Result<Exit> {
    let (tx, rx) = (&events.tx, &events.rx);
    let tasks = board.tasks()?;
    let titles: HashMap<String, String> = tasks
        .iter()
        .map(|t| (t.id.clone(), t.title.clone()))
        .collect();
    let specs: Vec<TaskSpec> = tasks
        .iter()
        .map(|t| TaskSpec {
            id: t.id.clone(),
            priority: t.priority,
            deps: t.deps.clone(),
            done: t.status == Status::Done,
            attempts: u32::try_from(t.attempts).unwrap_or(0),
            failures: 0,
        })
        .collect();
    let mut sched = Scheduler::new(specs, meta.workers.len(), meta.retries, meta.timeout_ms);
    let lock = folder.lock_path();
    let holder = Holder::Host {
        pid: std::process::id() as i32,
        lock: lock.clone(),
    };
    let project = meta.project.clone();
    let board_dir = board.path().dir().to_path_buf();
    let mut active: Vec<Option<Active>> = (0..meta.workers.len()).map(|_| None).collect();
    let t0 = Instant::now();
    let now_ms = || t0.elapsed().as_millis() as u64;
    let mut inputs = vec![Input::Tick];
    let mut last_redraw = Instant::now();
    // What a worker reported with its end, until the scheduler settles that attempt.
    let mut pending_reports: HashMap<usize, super::workers::Report> = HashMap::new();
    loop {
        while let Some(input) = inputs.pop() {
            let effects = sched.step(now_ms(), input);
            for fx in effects {
                match fx {
                    Effect::Start {
                        worker,
                        task,
                        attempt,
                    } => {
                        let name = meta.workers[worker].name.clone();
                        let started_at_us = now_us();
                        let req = ClaimRequest {
                            worker: name.clone(),
                            roles: Vec::new(),
                            holder: holder.clone(),
                        };
                        let claimed = board.claim_task(&task, &req);
                        progress.event(&RunEvent::TaskStarted {
                            task: task.clone(),
                            title: titles.get(&task).cloned().unwrap_or_default(),
                            worker: name.clone(),
                            attempt,
                        });
                        let mut a = Active {
                            task: task.clone(),
                            attempt,
                            started_at_us,
                            started: Instant::now(),
                            process: None,
                        };
                        let started = match claimed {
                            Err(e) => Err(e.context(format!("{name} could not claim {task}"))),
                            Ok(None) => Err(anyhow::anyhow!(
                                "the board did not let {name} claim {task}: it is not ready there"
                            )),
                            Ok(Some(claimed)) => {
                                let w = &meta.workers[worker];
                                let job = Job {
                                    run: meta.id.clone(),
                                    run_dir: folder.dir.clone(),
                                    worker,
                                    worker_name: name.clone(),
                                    task: task.clone(),
                                    attempt,
                                    prompt: claimed.prompt(),
                                    cwd: w.worktree.clone().unwrap_or_else(|| project.clone()),
                                    log: folder.log_path(&task, attempt),
                                    board: board_dir.clone(),
                                    session: w.session.clone().map(|s| (s, w.session_started)),
                                };
                                spawn(&meta.driver, &job, tx.clone(), Event::Worker)
                            }
                        };
                        match started {
                            Ok(p) => a.process = Some(p),
                            Err(e) => inputs.push(Input::Ended {
                                worker,
                                outcome: Outcome::Failure(format!("{e:#}")),
                            }),
                        }
                        active[worker] = Some(a);
                    }
                    Effect::Kill { worker } => {
                        if let Some(p) = active[worker].as_ref().and_then(|a| a.process.as_ref()) {
                            p.kill();
                        }
                    }
                    Effect::Finish {
                        worker,
                        task,
                        attempt,
                        end,
                    } => {
                        let a = active[worker].take();
                        let name = meta.workers[worker].name.clone();
                        let (started_at_us, elapsed) = a
                            .as_ref()
                            .map(|a| (a.started_at_us, a.started.elapsed()))
                            .unwrap_or((now_us(), Duration::ZERO));
                        debug_assert!(
                            a.as_ref()
                                .is_none_or(|a| a.task == task && a.attempt == attempt)
                        );
                        let report = pending_reports.remove(&worker);
                        // A board the user changed by hand (a forced release, a cancel)
                        // can refuse the write: that costs this task's record only.
                        if let Err(e) = write_end(board, &name, &task, attempt, &end) {
                            eprintln!(
                                "run: could not record the end of {task} on the board: {e:#}"
                            );
                        }
                        let (outcome, reason, event) = match &end {
                            End::Done(_) => (
                                "done",
                                None,
                                RunEvent::TaskDone {
                                    task: task.clone(),
                                    worker: name.clone(),
                                    attempt,
                                    duration_ms: elapsed.as_millis() as u64,
                                },
                            ),
                            End::Retry(why) => (
                                "retry",
                                Some(why.clone()),
                                RunEvent::TaskRetry {
                                    task: task.clone(),
                                    worker: name.clone(),
                                    attempt,
                                    reason: why.clone(),
                                },
                            ),
                            End::Failed(why) => (
                                "failed",
                                Some(why.clone()),
                                RunEvent::TaskFailed {
                                    task: task.clone(),
                                    worker: name.clone(),
                                    attempt,
                                    reason: why.clone(),
                                },
                            ),
                            End::GiveBack(why) => (
                                "cancelled",
                                Some(why.clone()),
                                RunEvent::TaskReopened {
                                    task: task.clone(),
                                    worker: name.clone(),
                                    attempt,
                                    reason: why.clone(),
                                },
                            ),
                        };
                        let (tokens, cost_usd) = match report {
                            Some(r) => {
                                // The worker's session carries on into its next task,
                                // even after a failure, as long as the turn ran.
                                if let Some(s) = r.session {
                                    let w = &mut meta.workers[worker];
                                    if w.session.as_deref() != Some(&s) || !w.session_started {
                                        w.session = Some(s);
                                        w.session_started = true;
                                        folder.write_meta(meta)?;
                                    }
                                }
                                (r.tokens, r.cost_usd)
                            }
                            None => (None, None),
                        };
                        folder.record_attempt(&Attempt {
                            task: task.clone(),
                            attempt,
                            worker: name,
                            started_at_us,
                            ended_at_us: now_us(),
                            outcome: outcome.into(),
                            reason,
                            tokens,
                            cost_usd,
                        })?;
                        progress.event(&event);
                    }
                    Effect::Blocked { task, reason } => {
                        progress.event(&RunEvent::TaskBlocked { task, reason });
                    }
                    Effect::Exit(exit) => return Ok(exit),
                }
            }
        }
        // Wait for the next event, a task's deadline, or the view's redraw.
        let mut wait = sched
            .next_deadline()
            .map(|d| Duration::from_millis(d.saturating_sub(now_ms())));
        if progress.wants_redraw() {
            let next = REDRAW.saturating_sub(last_redraw.elapsed());
            wait = Some(wait.map_or(next, |w| w.min(next)));
        }
        let event = match wait {
            Some(w) => match rx.recv_timeout(w) {
                Ok(e) => Some(e),
                Err(RecvTimeoutError::Timeout) => None,
                Err(RecvTimeoutError::Disconnected) => unreachable!("the loop holds a sender"),
            },
            None => Some(rx.recv().context("the event channel closed")?),
        };
        if progress.wants_redraw() && last_redraw.elapsed() >= REDRAW {
            progress.redraw();
            last_redraw = Instant::now();
        }
        match event {
            None => inputs.push(Input::Tick),
            Some(Event::Worker(WorkerEvent::Line { worker, line })) => progress.line(worker, &line),
            Some(Event::Worker(WorkerEvent::Ended { worker, report })) => {
                let outcome = report.outcome.clone();
                pending_reports.insert(worker, report);
                inputs.push(Input::Ended { worker, outcome });
            }
            Some(Event::Signal(Signal::Resize)) => {}
            Some(Event::Signal(_)) => inputs.push(Input::Cancel),
        }
    }
}

/// Records the end of `worker`'s attempt at `task` on the board.
fn write_end(board: &mut Board, worker: &str, task: &str, attempt: u32, end: &End) -> Result<()> {
    board.set_worker(Some(worker))?;
    match end {
        End::Done(result) => board.done(task, result).map(drop),
        End::Retry(why) => board
            .release_because(
                task,
                Some(&format!("attempt {attempt} failed: {why}")),
                false,
            )
            .map(drop),
        End::Failed(why) => board.fail(task, why).map(drop),
        End::GiveBack(why) => board.release_because(task, Some(why), false).map(drop),
    }
}

/// Ends what a run that died left behind, before it is resumed: the processes still
/// marked with its tasks, and the claims its workers held (back to open, recorded as
/// interrupted attempts). Returns how many tasks were reopened.
pub fn recover(folder: &RunFolder, board: &mut Board) -> Result<usize> {
    // Any board command may have reopened the dead run's claims already, so whatever
    // the claims say, nothing of the old run may go on running.
    super::workers::kill_all_leftovers(&folder.dir);
    super::agents::cancel_leftovers(&folder.dir)?;
    let mut reopened = 0;
    for t in board.tasks()? {
        if t.status != Status::Claimed {
            continue;
        }
        let why = "the run was interrupted (its process is gone)";
        board.release_because(&t.id, Some(why), true)?;
        folder.record_attempt(&Attempt {
            task: t.id.clone(),
            attempt: u32::try_from(t.attempts).unwrap_or(0),
            worker: t.worker.clone().unwrap_or_default(),
            started_at_us: t.claimed_at_us.unwrap_or(0),
            ended_at_us: now_us(),
            outcome: "interrupted".into(),
            reason: Some(why.into()),
            tokens: None,
            cost_usd: None,
        })?;
        reopened += 1;
    }
    Ok(reopened)
}

/// The state a run is left in after `exit`.
pub fn final_state(exit: Exit) -> RunState {
    match exit {
        Exit::AllDone => RunState::Done,
        Exit::Failures => RunState::Failed,
        Exit::Cancelled => RunState::Cancelled,
    }
}
