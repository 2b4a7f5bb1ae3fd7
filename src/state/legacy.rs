//! State left by builds before the durable/runtime split, when everything lived in the
//! runtime directory (`$XDG_RUNTIME_DIR/claude-agents`) or, without one, in
//! `~/.local/state/claude-agents`: moved once into the durable part, so agents keep
//! their Claude sessions, queued tasks, history and undelivered results.
//!
//! The trigger is a `tasks/` directory in the old place, which the new layout never
//! creates there; it is removed last, so an interrupted move is finished by the next
//! open. Entries that already exist in the durable part are kept as they are. Problems
//! are reported on stderr and never stop the caller: the old state stays where it was.

use std::fs;
use std::io::ErrorKind;
use std::path::Path;

use super::StateDir;
use super::file::{TEMP_PREFIX, atomic_write};

const TASKS: &str = "tasks";

/// Moves the durable kind of state from the old root `from` into `to`, if there is any.
pub fn migrate(from: &Path, to: &StateDir) {
    if from == to.root() || fs::symlink_metadata(from.join(TASKS)).is_err() {
        return;
    }
    if let Err(e) = move_all(from, to) {
        eprintln!(
            "claude-editor-hook: could not move the state in {} to {}: {e:#}",
            from.display(),
            to.root().display()
        );
    }
}

fn move_all(from: &Path, to: &StateDir) -> anyhow::Result<()> {
    // Tasks and outboxes, whole.
    for top in ["tasks", "outbox"] {
        move_tree(&from.join(top), &to.root().join(top))?;
    }
    // Of each agent, what is not runtime: its status (identity and Claude session id),
    // inbox and claimed task. The lock and events stay.
    if let Ok(agents) = fs::read_dir(from.join("agents")) {
        for agent in agents.flatten() {
            let src = agent.path();
            let dst = to.root().join("agents").join(agent.file_name());
            if !agent.file_type().is_ok_and(|t| t.is_dir()) {
                continue;
            }
            super::ensure_private_dir(&dst)?;
            for file in ["status.json", "current.json"] {
                move_file(&src.join(file), &dst.join(file))?;
            }
            move_tree(&src.join("inbox"), &dst.join("inbox"))?;
        }
    }
    let _ = fs::remove_dir_all(from.join(TASKS));
    Ok(())
}

/// Moves directory `src` to `dst`, merging into an existing `dst`; only real files and
/// directories are moved (FIFOs and links stay behind).
fn move_tree(src: &Path, dst: &Path) -> anyhow::Result<()> {
    let Ok(meta) = fs::symlink_metadata(src) else {
        return Ok(());
    };
    if !meta.is_dir() {
        return Ok(());
    }
    if fs::symlink_metadata(dst).is_err() && fs::rename(src, dst).is_ok() {
        return Ok(()); // the same file system: one rename
    }
    super::ensure_private_dir(dst)?;
    for entry in fs::read_dir(src)?.flatten() {
        let (s, d) = (entry.path(), dst.join(entry.file_name()));
        match entry.file_type() {
            Ok(t) if t.is_dir() => move_tree(&s, &d)?,
            Ok(t) if t.is_file() => move_file(&s, &d)?,
            _ => {}
        }
    }
    let _ = fs::remove_dir_all(src);
    Ok(())
}

/// Moves one regular file unless `dst` exists; across file systems by copy.
fn move_file(src: &Path, dst: &Path) -> anyhow::Result<()> {
    let name = src.file_name().and_then(|n| n.to_str()).unwrap_or("");
    if name.starts_with(TEMP_PREFIX) || fs::symlink_metadata(dst).is_ok() {
        return Ok(());
    }
    match fs::symlink_metadata(src) {
        Ok(m) if m.is_file() => {}
        _ => return Ok(()),
    }
    if fs::rename(src, dst).is_err() {
        match super::read_optional(src) {
            Ok(Some(bytes)) => atomic_write(dst, &bytes)?,
            Ok(None) => return Ok(()),
            Err(e)
                if e.downcast_ref::<std::io::Error>().map(|e| e.kind())
                    == Some(ErrorKind::NotFound) =>
            {
                return Ok(());
            }
            Err(e) => return Err(e),
        }
        let _ = fs::remove_file(src);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::{AgentName, StateRoots};

    #[test]
    fn old_state_moves_to_the_durable_part_once() {
        let tmp = tempfile::tempdir().unwrap();
        let old = tmp.path().join("run");
        // The old layout: everything in one directory.
        let legacy = StateDir::open(&old).unwrap();
        let name = AgentName::parse("a").unwrap();
        legacy.create_agent_dirs(&name).unwrap();
        fs::write(legacy.status_path(&name), b"{\"version\":1}").unwrap();
        fs::write(legacy.inbox_dir(&name).join("q.json"), b"q").unwrap();
        fs::create_dir_all(old.join("tasks/t-1")).unwrap();
        fs::write(old.join("tasks/t-1/done.json"), b"d").unwrap();
        fs::create_dir_all(old.join("outbox/c")).unwrap();
        fs::write(old.join("outbox/c/t-1.json"), b"o").unwrap();

        let roots = StateRoots {
            durable: tmp.path().join("disk"),
            runtime: old.clone(),
        };
        let state = StateDir::open_roots(&roots).unwrap();
        let disk = state.root();
        assert_eq!(fs::read(disk.join("tasks/t-1/done.json")).unwrap(), b"d");
        assert_eq!(fs::read(disk.join("outbox/c/t-1.json")).unwrap(), b"o");
        assert_eq!(
            fs::read(state.status_path(&name)).unwrap(),
            b"{\"version\":1}"
        );
        assert_eq!(
            fs::read(state.inbox_dir(&name).join("q.json")).unwrap(),
            b"q"
        );
        assert!(!old.join("tasks").exists() && !old.join("outbox").exists());
        // The runtime half of the agent stays where it was.
        assert!(state.events_dir(&name).is_dir());
    }
}
