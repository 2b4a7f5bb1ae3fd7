//! An agent's inbox: one file per queued task, taken in creation order.
//!
//! Entry names are `<created_at_us, 20 digits>-<task id>.json`, so a sorted listing is
//! the FIFO order. The agent claims the oldest entry by renaming it to
//! `agents/<name>/current.json`; a coordinator withdraws its entry by removing it. Both
//! are single atomic operations on the same name, so exactly one of them succeeds.

use std::fs;
use std::io::ErrorKind;
use std::path::PathBuf;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use super::file::{TEMP_PREFIX, write_json};
use super::{AgentName, FORMAT_VERSION, StateDir, TaskId};

/// The content of an inbox entry (and of `current.json`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct InboxEntry {
    pub version: u32,
    pub task_id: TaskId,
    /// When the entry was queued; also the start of its file name.
    pub queued_at_us: u64,
}

/// Queues `task` for `agent`. Returns the entry's path, used to withdraw it.
pub fn enqueue(state: &StateDir, agent: &AgentName, task: &TaskId) -> Result<PathBuf> {
    let queued_at_us = crate::time::now_us();
    let path = state
        .inbox_dir(agent)
        .join(format!("{queued_at_us:020}-{task}.json"));
    let entry = InboxEntry {
        version: FORMAT_VERSION,
        task_id: task.clone(),
        queued_at_us,
    };
    write_json(&path, &entry)?;
    Ok(path)
}

/// The queued entries of `agent`, oldest first, as (path, task id).
pub fn pending(state: &StateDir, agent: &AgentName) -> Result<Vec<(PathBuf, TaskId)>> {
    let dir = state.inbox_dir(agent);
    let read = match fs::read_dir(&dir) {
        Ok(r) => r,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e).with_context(|| format!("failed to list {}", dir.display())),
    };
    let mut entries = Vec::new();
    for entry in read {
        let entry = entry?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        // Only regular files are entries: a directory or link planted here would
        // otherwise be renamed onto current.json and jam every later claim.
        if name.starts_with(TEMP_PREFIX) || !entry.file_type().is_ok_and(|t| t.is_file()) {
            continue;
        }
        let id = name
            .strip_suffix(".json")
            .and_then(|n| n.split_once('-'))
            .and_then(|(_, id)| TaskId::parse(id).ok());
        if let Some(id) = id {
            entries.push((entry.path(), id));
        }
    }
    entries.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(entries)
}

/// Moves the oldest entry to `current.json` and returns its task id, or `None` when the
/// inbox is empty. An entry withdrawn under our feet is skipped.
pub fn claim_next(state: &StateDir, agent: &AgentName) -> Result<Option<TaskId>> {
    let current = state.current_path(agent);
    for (path, id) in pending(state, agent)? {
        match fs::rename(&path, &current) {
            Ok(()) => return Ok(Some(id)),
            Err(e) if e.kind() == ErrorKind::NotFound => continue,
            Err(e) => return Err(e).with_context(|| format!("failed to claim {}", path.display())),
        }
    }
    Ok(None)
}

/// Removes a queued entry. Returns false if the agent had already claimed it.
pub fn withdraw(entry: &std::path::Path) -> Result<bool> {
    match fs::remove_file(entry) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e).with_context(|| format!("failed to withdraw {}", entry.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fifo_claim_and_withdraw_race() {
        let tmp = tempfile::tempdir().unwrap();
        let state = StateDir::open(tmp.path()).unwrap();
        let agent = AgentName::parse("a").unwrap();
        state.create_agent_dirs(&agent).unwrap();
        let ids: Vec<_> = (0..3)
            .map(|i| TaskId::parse(&format!("t-{i}")).unwrap())
            .collect();
        let paths: Vec<_> = ids
            .iter()
            .map(|id| enqueue(&state, &agent, id).unwrap())
            .collect();
        assert_eq!(pending(&state, &agent).unwrap().len(), 3);

        assert_eq!(claim_next(&state, &agent).unwrap(), Some(ids[0].clone()));
        // The claimed entry can no longer be withdrawn; a queued one can.
        assert!(!withdraw(&paths[0]).unwrap());
        assert!(withdraw(&paths[1]).unwrap());
        assert_eq!(claim_next(&state, &agent).unwrap(), Some(ids[2].clone()));
        assert_eq!(claim_next(&state, &agent).unwrap(), None);
    }

    #[test]
    fn entries_that_are_not_files_are_ignored() {
        let tmp = tempfile::tempdir().unwrap();
        let state = StateDir::open(tmp.path()).unwrap();
        let agent = AgentName::parse("a").unwrap();
        state.create_agent_dirs(&agent).unwrap();
        fs::create_dir(state.inbox_dir(&agent).join("00000000000000000001-zz.json")).unwrap();
        let id = TaskId::parse("t-1").unwrap();
        enqueue(&state, &agent, &id).unwrap();
        assert_eq!(claim_next(&state, &agent).unwrap(), Some(id));
        assert!(state.current_path(&agent).is_file());
    }
}
