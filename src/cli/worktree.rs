//! `diff NAME`, `merge NAME`, `sync NAME` and `forget NAME`: an agent's worktree from the
//! user's side (the work is in [`crate::worktree`]).

use std::io::IsTerminal;

use anyhow::{Result, bail};

use crate::state::{AgentInfo, AgentName, AgentState, StateDir};
use crate::worktree::merge::{MergeOptions, Outcome};
use crate::worktree::{self, diff::DiffOptions};

/// `diff NAME [--stat]`.
pub fn diff(name: &str, stat: bool) -> Result<i32> {
    let rec = worktree::find(&AgentName::parse(name)?)?;
    let color = std::io::stdout().is_terminal();
    worktree::diff::show(&rec, DiffOptions { stat, color })?;
    Ok(0)
}

/// Refuses while the agent works on a task: its files are changing under us.
fn refuse_if_busy(state: &StateDir, name: &AgentName, verb: &str) -> Result<()> {
    let Some(info) = AgentInfo::load(state, name)? else {
        return Ok(());
    };
    // A task with its done.json is over even while the status file, written just
    // after it, still says working.
    let finished = info.task().is_some_and(|t| state.done_path(&t.id).exists());
    if info.state() == AgentState::Working && !finished {
        let task = info
            .task()
            .map(|t| format!(" on task {}", t.id))
            .unwrap_or_default();
        bail!(
            "agent @{name} is working{task}; {verb} once it is done (or `claude-editor-hook cancel` the task)"
        );
    }
    Ok(())
}

/// The agent's current and recent tasks as `t-…: title`, for commit messages.
fn tasks_of(state: &StateDir, name: &AgentName) -> Vec<String> {
    let Ok(Some(info)) = AgentInfo::load(state, name) else {
        return Vec::new();
    };
    let Some(status) = info.status else {
        return Vec::new();
    };
    let mut tasks: Vec<String> = status
        .recent
        .iter()
        .rev()
        .map(|t| format!("{}: {}", t.id, t.title))
        .collect();
    if let Some(t) = &status.task {
        tasks.push(format!("{}: {}", t.id, t.title));
    }
    tasks
}

fn files_line(files: &[String]) -> String {
    match files.len() {
        1 => "1 file changed".into(),
        n => format!("{n} files changed"),
    }
}

/// `merge NAME [--squash] [--into BRANCH]`.
pub fn merge(name: &str, squash: bool, into: Option<&str>) -> Result<i32> {
    let name = AgentName::parse(name)?;
    let state = StateDir::from_env()?;
    let rec = worktree::find(&name)?;
    refuse_if_busy(&state, &name, "merge")?;
    let opts = MergeOptions {
        squash,
        into: into.map(str::to_owned),
        tasks: tasks_of(&state, &name),
    };
    match worktree::merge::merge(&rec, &opts)? {
        Outcome::UpToDate { target } => {
            println!(
                "nothing to merge: {target} has all of {}'s work",
                rec.branch
            );
        }
        Outcome::Merged {
            target,
            commit,
            files,
            committed_pending,
        } => {
            if let Some(c) = committed_pending {
                println!(
                    "committed @{name}'s uncommitted changes on {} ({})",
                    rec.branch,
                    short(&c)
                );
            }
            let how = if squash { "squash-merged" } else { "merged" };
            println!(
                "{how} {} into {target} ({}): {}",
                rec.branch,
                short(&commit),
                files_line(&files)
            );
            for f in &files {
                println!("  {f}");
            }
        }
    }
    Ok(0)
}

/// `sync NAME`.
pub fn sync(name: &str) -> Result<i32> {
    let name = AgentName::parse(name)?;
    let state = StateDir::from_env()?;
    let rec = worktree::find(&name)?;
    refuse_if_busy(&state, &name, "sync")?;
    match worktree::merge::sync(&rec)? {
        Outcome::UpToDate { .. } => println!("{} is up to date with {}", rec.branch, rec.base),
        Outcome::Merged { commit, files, .. } => {
            println!(
                "brought {} into {} ({}): {}",
                rec.base,
                rec.branch,
                short(&commit),
                files_line(&files)
            );
            for f in &files {
                println!("  {f}");
            }
        }
    }
    Ok(0)
}

/// `forget NAME [--worktree] [--force]`: removes an offline agent's state, and with
/// `--worktree` its worktree and branch, refusing when work would be lost.
pub fn forget(name: &str, with_worktree: bool, force: bool) -> Result<i32> {
    let name = AgentName::parse(name)?;
    let state = StateDir::from_env()?;
    let info = AgentInfo::load(&state, &name)?;
    if let Some(pid) = info.as_ref().and_then(|i| i.host_pid) {
        bail!(
            "agent @{name} is running (agent-wrap pid {pid}); stop it first with \
             `claude-editor-hook kill {name}`"
        );
    }
    let rec = worktree::lookup(&name)?;
    if info.is_none() && rec.is_none() {
        bail!("no agent @{name} here (`claude-editor-hook status` lists them)");
    }
    let mut kept = None;
    match (&rec, with_worktree) {
        (Some(rec), true) => {
            let loss = worktree::forget::loss(rec)?;
            if !loss.is_empty() && !force {
                bail!(
                    "forgetting @{name}'s worktree would lose {}; `claude-editor-hook merge \
                     {name}` first, or pass --force to throw it away",
                    loss.describe(rec)
                );
            }
            worktree::forget::remove(rec)?;
            println!(
                "removed worktree {} and branch {}",
                rec.path.display(),
                rec.branch
            );
        }
        (Some(rec), false) => kept = Some(rec),
        (None, true) => println!("agent @{name} had no worktree"),
        (None, false) => {}
    }
    if info.is_some() {
        let dir = state.agent_dir(&name);
        std::fs::remove_dir_all(&dir)
            .map_err(|e| anyhow::anyhow!("failed to remove {}: {e}", dir.display()))?;
        println!("forgot agent @{name}");
    }
    if let Some(rec) = kept {
        println!(
            "kept its worktree {} on {}: `agent-wrap {name} --worktree` picks it up again, \
             `claude-editor-hook forget {name} --worktree` removes it",
            rec.path.display(),
            rec.branch
        );
    }
    Ok(0)
}

fn short(commit: &str) -> &str {
    &commit[..commit.len().min(10)]
}
