//! More agents for a busy role: when every agent with a role is busy and the config's
//! `[spawn]` allows it, a new agent `ROLE-2`, `ROLE-3`, … starts in a tmux window beside
//! the chief, made like the role's first configured agent.

use std::sync::Mutex;

use anyhow::Result;

use super::config::Config;
use super::up::{Tmux, start_agent_window};
use crate::state::{AgentInfo, AgentName, StateDir};

/// Starts one more agent for `role` if the config allows it and we run inside tmux, and
/// returns its name at once, without waiting for it: routing never blocks before the
/// view exists. The coordinator queues the task and waits for the new host in its view
/// (`Coordinator::delegate`), where Esc cancels the wait. `Ok(None)`: no spawning (the
/// task waits in line instead).
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
    let here = super::up::team_dir(&config)?;
    start_agent_window(
        &tmux,
        &session,
        &agent,
        &config.claude_program(None),
        &exe.with_file_name("agent-wrap"),
        &here,
        config.restarts(&agent),
    )?;
    mark_starting(&name);
    Ok(Some(name))
}

/// Records that this process started agent `name`, whose host is not up yet.
pub fn mark_starting(name: &AgentName) {
    STARTING
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(name.clone());
}

/// Agents this process started with [`spawn_for_role`]. Their tasks are queued before
/// their hosts are up, and the coordinator waits for the host in its view.
static STARTING: Mutex<Vec<AgentName>> = Mutex::new(Vec::new());

/// Returns true if and only if this process started agent `name`.
pub fn is_starting(name: &AgentName) -> bool {
    STARTING
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .contains(name)
}
