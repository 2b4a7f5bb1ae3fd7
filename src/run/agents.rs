//! The `--agents a,b` driver: the run's tasks go to existing persistent agents.
//!
//! Each agent is one worker of the run. The run claims a task on its board for the agent
//! (worker name = the agent's name) and queues it in the agent's inbox as an ordinary
//! background task, exactly as an agent draining a board does (src/board/drain.rs): it
//! runs visibly in the agent's window, in its long-lived context, with the goal and the
//! results it builds on in its prompt. A thread watches the task's directory for
//! `done.json` (inotify, with a slow backstop); its outcome and `result.txt` end the
//! attempt. A kill (timeout, Ctrl-C) cancels the task through `cancel.json`.

use std::sync::mpsc::{RecvTimeoutError, Sender, channel};
use std::time::Duration;

use anyhow::{Context, Result, bail};

use super::scheduler::Outcome;
use super::workers::{Job, Report, WorkerEvent};
use crate::state::{
    AgentName, Done, Outcome as TaskOutcome, StateDir, TaskEnvelope, TaskId, enqueue, lock_holder,
    read_json, read_optional, write_json,
};

/// The backstop behind the directory watch: a lost inotify event costs at most this.
const BACKSTOP: Duration = Duration::from_secs(30);

/// A task queued to an agent.
#[derive(Debug)]
pub struct Delegated {
    state: StateDir,
    id: TaskId,
}

impl Delegated {
    /// Cancels the agent's task; its `done.json` (cancelled) then ends the attempt.
    pub fn cancel(&self) {
        let (state, id) = (self.state.clone(), self.id.clone());
        // The cancel waits for the agent's confirmation: not on the run's loop.
        std::thread::spawn(move || {
            let _ = crate::coordinator::cancel::cancel_task(&state, &id, "cancelled by the run");
        });
    }
}

/// Checks that every agent named is running, before anything is planned.
pub fn check_agents(names: &[String]) -> Result<()> {
    let state = StateDir::from_env()?;
    for n in names {
        let agent = AgentName::parse(n)?;
        if lock_holder(&state.lock_path(&agent))?.is_none() {
            bail!("agent {n} is not running; start it first (`agent-wrap {n} …`, or `up`)");
        }
    }
    Ok(())
}

/// Queues `job` to the agent named by its worker and reports its end on `tx`.
pub fn delegate<E: Send + 'static>(
    job: &Job,
    tx: Sender<E>,
    wrap: fn(WorkerEvent) -> E,
) -> Result<Delegated> {
    let state = StateDir::from_env()?;
    let agent = AgentName::parse(&job.worker_name)?;
    if lock_holder(&state.lock_path(&agent))?.is_none() {
        bail!("agent {agent} is not running");
    }
    let id = (0..)
        .map(TaskId::generate)
        .find_map(|id| match state.create_task_dir(&id) {
            Ok(true) => Some(Ok(id)),
            Ok(false) => None,
            Err(e) => Some(Err(e)),
        })
        .expect("an unbounded range")?;
    let mut task = TaskEnvelope::new(id.clone(), agent.clone(), job.prompt.clone());
    task.title = crate::state::title_of(&format!("run {}: {}", job.run, job.task));
    // Nobody waits in a coordinator: the run does, through done.json.
    task.background = true;
    // The watch is armed before the task is queued, so its end cannot be missed.
    let (wake_tx, wake_rx) = channel::<()>();
    let mut watch = crate::watch::DirWatcher::new(wake_tx, || ())?;
    watch.watch(&state.task_dir(&id))?;
    write_json(&state.task_path(&id), &task)?;
    // Recorded before it is queued: a resumed run cancels what a dead one left queued.
    crate::state::atomic_write(&delegated_path(job), id.as_str().as_bytes())?;
    // Logged first, as a coordinator does: the agent may take the task (and log that) at once.
    crate::events::queued(&state, &task);
    enqueue(&state, &agent, &id).context("failed to queue the task")?;
    let worker = job.worker;
    let (theirs, task_id, name) = (state.clone(), id.clone(), agent.clone());
    std::thread::spawn(move || {
        let _watch = watch;
        let done: Done = loop {
            match read_json::<Done>(&theirs.done_path(&task_id)) {
                Ok(Some(done)) => break done,
                Ok(None) => {}
                Err(e) => {
                    let report = failure(format!("unreadable done.json: {e:#}"));
                    let _ = tx.send(wrap(WorkerEvent::Ended { worker, report }));
                    return;
                }
            }
            match wake_rx.recv_timeout(BACKSTOP) {
                Ok(()) | Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => return,
            }
        };
        let outcome = match done.outcome {
            TaskOutcome::Ok => {
                let answer = read_optional(&theirs.result_path(&task_id))
                    .ok()
                    .flatten()
                    .unwrap_or_default();
                Outcome::Success(String::from_utf8_lossy(&answer).trim_end().to_owned())
            }
            other => Outcome::Failure(format!(
                "@{name} {other}: {}",
                done.reason.as_deref().unwrap_or("no reason given")
            )),
        };
        let report = Report {
            outcome,
            tokens: None,
            cost_usd: None,
            session: None,
        };
        let _ = tx.send(wrap(WorkerEvent::Ended { worker, report }));
    });
    Ok(Delegated { state, id })
}

/// `logs/<task>.<attempt>.agent-task`: the agent task id of a delegated attempt.
fn delegated_path(job: &Job) -> std::path::PathBuf {
    job.run_dir
        .join("logs")
        .join(format!("{}.{}.agent-task", job.task, job.attempt))
}

/// Cancels every agent task a dead run of `run_dir` delegated that has not ended, so a
/// resumed run's new attempt is the only one. Returns how many were cancelled.
pub fn cancel_leftovers(run_dir: &std::path::Path) -> Result<usize> {
    let Ok(entries) = std::fs::read_dir(run_dir.join("logs")) else {
        return Ok(0);
    };
    let mut found = Vec::new();
    for e in entries.flatten() {
        if !e.file_name().to_string_lossy().ends_with(".agent-task") {
            continue;
        }
        let Some(bytes) = read_optional(&e.path())? else {
            continue;
        };
        if let Ok(id) = TaskId::parse(String::from_utf8_lossy(&bytes).trim()) {
            found.push(id);
        }
    }
    if found.is_empty() {
        return Ok(0);
    }
    let state = StateDir::from_env()?;
    let mut n = 0;
    for id in found {
        if read_json::<Done>(&state.done_path(&id))?.is_none()
            && crate::coordinator::cancel::cancel_task(&state, &id, "the run that queued it died")
                .is_ok()
        {
            n += 1;
        }
    }
    Ok(n)
}

fn failure(why: String) -> Report {
    Report {
        outcome: Outcome::Failure(why),
        tokens: None,
        cost_usd: None,
        session: None,
    }
}
