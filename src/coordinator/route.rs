//! Which agent a target names: an agent itself, any live agent with that role, or any
//! live agent at all (`@any`).

use anyhow::{Result, bail};

use crate::state::{AgentInfo, AgentName, AgentState, StateDir, pending};

/// The target that means "any live agent".
pub const ANY: &str = "any";

/// Resolves `target` to one agent. An agent of that name wins (offline or not: the
/// delegation then says it is offline). For a role, or `@any`, an idle live agent is
/// preferred, then the one with the shortest queue, then the first by name.
pub fn resolve(state: &StateDir, target: &AgentName) -> Result<AgentName> {
    resolve_excluding(state, target, &[])
}

/// [`resolve`], where a role or `@any` never picks one of `exclude` (the delegating
/// agent and those waiting on it, which would be refused). A name is still that agent.
pub fn resolve_excluding(
    state: &StateDir,
    target: &AgentName,
    exclude: &[AgentName],
) -> Result<AgentName> {
    if state.agent_dir(target).exists() {
        return Ok(target.clone());
    }
    let agents: Vec<AgentInfo> = state
        .agent_names()?
        .iter()
        .filter_map(|n| AgentInfo::load(state, n).ok().flatten())
        .collect();
    let has_role = |a: &AgentInfo| {
        target.as_str() == ANY
            || a.status
                .as_ref()
                .is_some_and(|s| s.roles.iter().any(|r| r == target.as_str()))
    };
    let mut candidates: Vec<&AgentInfo> = agents
        .iter()
        .filter(|a| a.host_pid.is_some() && has_role(a) && !exclude.contains(&a.name))
        .collect();
    if candidates.is_empty() {
        if target.as_str() == ANY {
            bail!("@any: no agent is running; start one with `agent-wrap NAME`");
        }
        let offline: Vec<&str> = agents
            .iter()
            .filter(|a| has_role(a))
            .map(|a| a.name.as_str())
            .collect();
        if !offline.is_empty() {
            bail!(
                "no running agent has the role {target} (offline: {})",
                offline.join(", ")
            );
        }
        let mut roles: Vec<&str> = agents
            .iter()
            .filter_map(|a| a.status.as_ref())
            .flat_map(|s| s.roles.iter().map(String::as_str))
            .collect();
        roles.sort_unstable();
        roles.dedup();
        let names: Vec<&str> = agents.iter().map(|a| a.name.as_str()).collect();
        if names.is_empty() {
            bail!(
                "unknown agent @{target}: no agents are registered; start one with \
                 `agent-wrap {target}`"
            );
        }
        bail!(
            "unknown agent or role @{target} (agents: {}; roles: {})",
            names.join(", "),
            if roles.is_empty() {
                "none".into()
            } else {
                roles.join(", ")
            }
        );
    }
    candidates.sort_by_key(|a| {
        let queued = pending(state, &a.name)
            .map(|q| q.len())
            .unwrap_or(usize::MAX);
        (a.state() != AgentState::Idle, queued, a.name.clone())
    });
    // Everyone with the role is busy: one more agent, if the config allows it.
    if candidates[0].state() != AgentState::Idle
        && target.as_str() != ANY
                // A spawn that fails (a bad config, no tmux) leaves the task to wait in line.
        && let Ok(Some(spawned)) = crate::team::spawn::spawn_for_role(state, target.as_str())
    {
        return Ok(spawned);
    }
    Ok(candidates[0].name.clone())
}
