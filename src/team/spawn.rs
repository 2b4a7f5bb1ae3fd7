//! More agents for a busy role: when every agent with a role is busy and the config's
//! `[spawn]` allows it, a new agent `ROLE-2`, `ROLE-3`, … starts in a tmux window beside
//! the chief, made like the role's first configured agent.

use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use super::config::Config;
use super::up::{Tmux, start_agent_window};
use crate::state::{AgentInfo, AgentName, AgentState, StateDir};

/// How long a spawned agent may take to be ready (a Claude Code start).
const READY: Duration = Duration::from_secs(60);

/// Starts one more agent for `role` if the config allows it and we run inside tmux, and
/// waits until it is ready. `Ok(None)`: no spawning (the task waits in line instead).
pub fn spawn_for_role(state: &StateDir, role: &str) -> Result<Option<AgentName>> {
    let config = Config::load(None)?;
    let limit = config.spawn.get(role).copied().unwrap_or(0);
    let Some(template) = config
        .agents
        .iter()
        .find(|a| a.roles.iter().any(|r| r == role))
    else {
        return Ok(None);
    };
    let Ok(pane) = std::env::var("TMUX_PANE") else {
        return Ok(None);
    };
    // The first of ROLE-2 … ROLE-(limit+1) that is not running.
    let free = (2..limit + 2)
        .filter_map(|k| AgentName::parse(&format!("{role}-{k}")).ok())
        .find(|name| {
            AgentInfo::load(state, name)
                .ok()
                .flatten()
                .and_then(|i| i.host_pid)
                .is_none()
        });
    let Some(name) = free else { return Ok(None) };

    let tmux = Tmux { socket: None };
    let out = tmux
        .cmd()
        .args(["display-message", "-p", "-t", &pane, "#{session_name}"])
        .output()?;
    let session = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    let mut agent = template.clone();
    agent.name = name.clone();
    let exe = std::env::current_exe()?;
    let here = std::env::current_dir()?;
    start_agent_window(
        &tmux,
        &session,
        &agent,
        &config.claude_program(None),
        &exe.with_file_name("agent-wrap"),
        &here,
    )?;
    wait_ready(state, &name)?;
    Ok(Some(name))
}

/// Waits, woken by the state directory's changes, until agent `name` is idle.
fn wait_ready(state: &StateDir, name: &AgentName) -> Result<()> {
    let (tx, rx) = std::sync::mpsc::channel();
    let mut watcher = crate::watch::DirWatcher::new(tx, || ())?;
    watcher.watch(&state.agents_dir())?;
    let mut watching_agent = false;
    let deadline = Instant::now() + READY;
    loop {
        if !watching_agent && state.agent_dir(name).is_dir() {
            watcher.watch(&state.agent_dir(name))?;
            watching_agent = true;
        }
        let info = AgentInfo::load(state, name)?;
        if info.is_some_and(|i| i.state() == AgentState::Idle) {
            return Ok(());
        }
        let left = deadline.saturating_duration_since(Instant::now());
        rx.recv_timeout(left)
            .ok()
            .with_context(|| format!("the new agent @{name} did not become ready in time"))?;
    }
}
