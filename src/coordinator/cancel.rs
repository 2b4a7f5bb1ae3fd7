//! Cancelling a task from outside its coordinator (`claude-editor-hook cancel TASK`).
//!
//! The same rules as a coordinator's own cancel: a queued task is withdrawn from the
//! inbox and ends `cancelled` at once; a claimed one gets `cancel.json` and its agent
//! stops it. Either way the task's doorbell wakes whoever waits on it.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::state::{
    CancelRequest, Done, FinishedBy, Outcome, StateDir, TaskEnvelope, TaskId, lock_holder, pending,
    read_json, withdraw, write_json,
};

/// How long `cancel` waits for the agent to confirm.
pub const CONFIRM: Duration = Duration::from_secs(5);

/// Cancels task `id` and returns its `done.json` once it has one.
pub fn cancel_task(state: &StateDir, id: &TaskId, reason: &str) -> Result<Done> {
    let task: TaskEnvelope =
        read_json(&state.task_path(id))?.with_context(|| format!("no task {id}"))?;
    if let Some(done) = read_json::<Done>(&state.done_path(id))? {
        bail!("task {id} already ended: {}", done.outcome);
    }
    let queued = pending(state, &task.agent)?
        .into_iter()
        .find(|(_, t)| t == id);
    if let Some((entry, _)) = queued
        && withdraw(&entry)?
    {
        let done = Done::unsuccessful(&task, Outcome::Cancelled, reason, FinishedBy::Coordinator);
        state.record_done(&done)?;
        return read_json(&state.done_path(id))?.context("done.json vanished");
    }
    // Claimed by an agent that is gone (a background task, nobody waiting): nobody else
    // will record its end, so we do.
    if lock_holder(&state.lock_path(&task.agent))?.is_none() {
        let why = format!("{reason} (agent @{} is not running)", task.agent);
        let done = Done::unsuccessful(&task, Outcome::Cancelled, why, FinishedBy::Coordinator);
        state.record_done(&done)?;
        return read_json(&state.done_path(id))?.context("done.json vanished");
    }
    state.ensure_task_dir(id)?;
    write_json(&state.cancel_path(id), &CancelRequest::new(reason))?;
    // The agent answers within its stop grace; a short bounded wait for its record.
    let (tx, rx) = std::sync::mpsc::channel();
    let mut watcher = crate::watch::DirWatcher::new(tx, || ())?;
    watcher.watch(&state.task_dir(id))?;
    let deadline = Instant::now() + CONFIRM;
    loop {
        if let Some(done) = read_json::<Done>(&state.done_path(id))? {
            return Ok(done);
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if rx.recv_timeout(left).is_err() {
            bail!(
                "asked @{} to stop task {id}; it has not confirmed yet",
                task.agent
            );
        }
    }
}
