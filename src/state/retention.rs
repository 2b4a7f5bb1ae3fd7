//! What is kept of finished tasks: the retention by age and count that a running host
//! applies to its own tasks and `claude-editor-hook prune` to any.

use std::collections::HashSet;
use std::time::Duration;

use super::{AgentName, Done, StateDir, TaskId, read_json, read_optional};
use crate::time::now_us;

/// How long finished tasks are kept by default (`--keep-for`).
pub const TASK_RETENTION: Duration = Duration::from_secs(7 * 24 * 3600);

/// How many finished tasks of an agent are kept by default (`--keep-tasks`).
pub const TASKS_KEPT: usize = 1000;

/// What is kept of finished tasks.
#[derive(Clone, Copy, Debug)]
pub struct Retention {
    /// Finished tasks older than this are removed.
    pub max_age: Duration,
    /// Of an agent's finished tasks, only the newest this many are kept.
    pub max_tasks: usize,
}

impl Default for Retention {
    fn default() -> Self {
        Self {
            max_age: TASK_RETENTION,
            max_tasks: TASKS_KEPT,
        }
    }
}

/// What a prune did.
#[derive(Debug, Default)]
pub struct Pruned {
    /// The tasks removed.
    pub removed: Vec<TaskId>,
    /// One line per task that could not be removed.
    pub errors: Vec<String>,
}

/// Removes the finished tasks of `agent` (of every agent when `None`) older than the
/// retention's age or beyond its count (per agent, newest kept). Never one that has no
/// `done.json` (it may still run) or whose background result has not reached its chief.
pub fn prune(state: &StateDir, agent: Option<&AgentName>, retention: Retention) -> Pruned {
    let cutoff = now_us().saturating_sub(retention.max_age.as_micros() as u64);
    let undelivered = undelivered_tasks(state);
    let mut finished: Vec<(AgentName, u64, TaskId)> = Vec::new();
    let mut pruned = Pruned::default();
    let Ok(dir) = std::fs::read_dir(state.tasks_dir()) else {
        return pruned;
    };
    for entry in dir.flatten() {
        let Some(id) = entry
            .file_name()
            .to_str()
            .and_then(|n| TaskId::parse(n).ok())
        else {
            continue;
        };
        if undelivered.contains(&id) {
            continue;
        }
        let Ok(Some(done)) = read_json::<Done>(&state.done_path(&id)) else {
            continue;
        };
        let Some(owner) = task_agent(state, &id) else {
            continue;
        };
        if agent.is_none_or(|a| *a == owner) {
            finished.push((owner, done.finished_at_us, id));
        }
    }
    // Newest first within each agent, so the count keeps the newest.
    finished.sort_by(|a, b| a.0.cmp(&b.0).then(b.1.cmp(&a.1)));
    let mut rank = 0;
    let mut previous: Option<AgentName> = None;
    for (owner, finished_at, id) in finished {
        if previous.as_ref() != Some(&owner) {
            rank = 0;
            previous = Some(owner);
        }
        rank += 1;
        if rank > retention.max_tasks || finished_at < cutoff {
            match std::fs::remove_dir_all(state.task_dir(&id)) {
                Ok(()) => pruned.removed.push(id),
                Err(e) => pruned
                    .errors
                    .push(format!("failed to remove old task {id}: {e}")),
            }
        }
    }
    pruned
}

/// The agent a task was queued for, read without keeping its prompt.
fn task_agent(state: &StateDir, id: &TaskId) -> Option<AgentName> {
    #[derive(serde::Deserialize)]
    struct Head {
        agent: AgentName,
    }
    let bytes = read_optional(&state.task_path(id)).ok()??;
    serde_json::from_slice::<Head>(&bytes).ok().map(|h| h.agent)
}

/// Tasks whose background result has not reached its chief yet: never pruned.
fn undelivered_tasks(state: &StateDir) -> HashSet<TaskId> {
    let mut ids = HashSet::new();
    for chief in state.chiefs().unwrap_or_default() {
        if let Ok((entries, _)) = state.outbox(&chief) {
            ids.extend(
                entries
                    .into_iter()
                    .filter(|e| e.delivered_at_us.is_none())
                    .map(|e| e.task_id),
            );
        }
    }
    ids
}
