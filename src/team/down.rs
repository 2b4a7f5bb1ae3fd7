//! `claude-editor-hook down`: stop the team `up` started, gracefully.
//!
//! The team is every live agent whose window is in the team's tmux session. Each task in
//! flight is cancelled with the reason (and its record awaited), then each host gets SIGTERM, which records what
//! is still queued as failed and marks the agent offline; a host that has not exited
//! after [`DOWN_GRACE`] is killed. Last, the session (the chief's window with it) is
//! closed.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::mpsc::channel;
use std::time::{Duration, Instant};

use anyhow::Result;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use super::up::{SESSION, Tmux};
use crate::state::{AgentInfo, AgentName, Done, StateDir, TaskId, read_json};

/// How long `down` waits for the hosts to end their tasks and exit.
pub const DOWN_GRACE: Duration = Duration::from_secs(10);

/// The reason recorded for a task `down` stopped.
pub const REASON: &str = "the team was stopped with `claude-editor-hook down`";

/// What `down` was asked to do.
pub struct DownOptions {
    /// A tmux server socket other than the default one.
    pub tmux_socket: Option<PathBuf>,
}

/// Runs `down`; returns the exit status.
pub fn down(opts: &DownOptions) -> Result<i32> {
    let state = StateDir::from_env()?;
    let tmux = Tmux {
        socket: opts.tmux_socket.as_deref(),
    };
    if !tmux.has_session() {
        println!("no team is running (no tmux session {SESSION})");
        return Ok(0);
    }
    let panes: HashSet<String> = tmux
        .run(&[
            "list-panes".into(),
            "-s".into(),
            "-t".into(),
            format!("={SESSION}"),
            "-F".into(),
            "#{pane_id}".into(),
        ])?
        .lines()
        .map(str::to_owned)
        .collect();
    let mut hosts: Vec<(AgentName, i32, Option<TaskId>)> = Vec::new();
    for name in state.agent_names()? {
        let Ok(Some(info)) = AgentInfo::load(&state, &name) else {
            continue;
        };
        let in_team = info
            .status
            .as_ref()
            .and_then(|s| s.tmux.as_ref())
            .is_some_and(|t| panes.contains(&t.pane));
        if let (Some(pid), true) = (info.host_pid, in_team) {
            hosts.push((name, pid, info.task().map(|t| t.id.clone())));
        }
    }
    // End each task in flight first, with the reason, and wait for its record (a few
    // seconds at most each): a SIGTERM alone would record why the host stopped instead.
    for (name, _, task) in &hosts {
        if let Some(id) = task
            && let Err(e) = crate::coordinator::cancel::cancel_task(&state, id, REASON)
        {
            eprintln!("claude-editor-hook: @{name}: {e:#}");
        }
    }
    let (tx, rx) = channel();
    let mut watches = Vec::new();
    for (_, pid, _) in &hosts {
        let pid = *pid;
        watches.push(crate::process::notify_exit(pid, tx.clone(), move || pid)?);
        let _ = kill(Pid::from_raw(pid), Signal::SIGTERM);
    }
    let deadline = Instant::now() + DOWN_GRACE;
    let mut gone = HashSet::new();
    while gone.len() < hosts.len() {
        match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(pid) => {
                gone.insert(pid);
            }
            Err(_) => break,
        }
    }
    for (name, pid, task) in &hosts {
        if !gone.contains(pid) {
            let _ = kill(Pid::from_raw(*pid), Signal::SIGKILL);
            println!(
                "killed @{name}: agent-wrap pid {pid} did not stop within {}s",
                DOWN_GRACE.as_secs()
            );
            continue;
        }
        let ended = task
            .as_ref()
            .and_then(|id| read_json::<Done>(&state.done_path(id)).ok().flatten())
            .map(|d| format!(" (task {} {})", d.task_id, d.outcome))
            .unwrap_or_default();
        println!("stopped @{name}{ended}");
    }
    drop(watches);
    tmux.run(&["kill-session".into(), "-t".into(), format!("={SESSION}")])?;
    println!("closed the tmux session {SESSION}");
    Ok(0)
}
