//! Who is delegating: a chief (a Claude Code session the user talks to) or a hosted
//! agent (the Claude Code, or the `--exec` command, that `agent-wrap` runs). An agent
//! that waits on another is part of a wait chain: the chain is recorded in every task
//! envelope it creates (`TaskEnvelope::wait_chain`), so a delegation that would wait on
//! an agent already waiting on it (a cycle, itself included) is refused before anything
//! is queued, and so is one beyond the configured depth.

use anyhow::{Result, bail};

use crate::state::{
    AgentName, AgentStatus, ChiefId, InboxEntry, StateDir, TaskEnvelope, TaskId, read_json,
};

/// Set by `up` in the team's MCP server config for each agent: the agent it serves.
pub const AGENT_ENV: &str = "CLAUDE_EDITOR_HOOK_AGENT";
/// Overrides the config's `[delegate] max_depth`.
pub const MAX_DEPTH_ENV: &str = "CLAUDE_EDITOR_HOOK_MAX_DEPTH";

/// Who is asking.
#[derive(Clone, Debug, PartialEq)]
pub enum Caller {
    /// A hosted agent, by name.
    Agent(AgentName),
    /// A chief: its results go to its outbox, as with `@NAME&`.
    Chief,
}

impl Caller {
    /// The caller of this process, from its environment: `$CLAUDE_EDITOR_HOOK_AGENT`;
    /// else the agent directory `agent-wrap` gives its Claude Code
    /// (`$AGENT_WRAP_AGENT_DIR`, inherited by its tools and MCP servers); else the
    /// `$AGENT_NAME` of an `--exec` command; else a chief.
    pub fn from_env() -> Caller {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        let from_dir = var(crate::agent::claude::AGENT_DIR_ENV).and_then(|d| {
            std::path::Path::new(&d)
                .file_name()?
                .to_str()
                .map(str::to_owned)
        });
        [var(AGENT_ENV), from_dir, var("AGENT_NAME")]
            .into_iter()
            .flatten()
            .find_map(|n| AgentName::parse(&n).ok())
            .map_or(Caller::Chief, Caller::Agent)
    }

    pub fn agent(&self) -> Option<&AgentName> {
        match self {
            Caller::Agent(name) => Some(name),
            Caller::Chief => None,
        }
    }

    /// Whose outbox background results go to: the caller's Claude Code session, the
    /// same id the outbox and the chief hooks use (`chief_id`).
    pub fn outbox(&self) -> ChiefId {
        crate::state::chief_id()
    }

    /// How the caller is shown: `@NAME` or `the chief`.
    pub fn describe(&self) -> String {
        match self {
            Caller::Agent(name) => format!("@{name}"),
            Caller::Chief => "the chief".into(),
        }
    }

    /// The task the calling agent works on: its `--exec` command's `$AGENT_TASK_ID`,
    /// else the claim its host holds (`current.json`, there from the claim to the end of
    /// the task, so it is never missed the way a status written later could be), else
    /// its status.
    fn current_task(state: &StateDir, name: &AgentName) -> Result<Option<TaskId>> {
        if std::env::var("AGENT_NAME").as_deref() == Ok(name.as_str())
            && let Ok(id) = std::env::var("AGENT_TASK_ID")
            && let Ok(id) = TaskId::parse(&id)
        {
            return Ok(Some(id));
        }
        if let Some(entry) = read_json::<InboxEntry>(&state.current_path(name))? {
            return Ok(Some(entry.task_id));
        }
        Ok(AgentStatus::load(state, name)?
            .and_then(|s| s.task)
            .map(|t| t.id))
    }

    /// The agents already waiting on the caller: the wait chain of the task it is
    /// working on, when that task is one somebody waits for. A chief has none.
    pub fn waiting_on_caller(&self, state: &StateDir) -> Result<Vec<AgentName>> {
        let Caller::Agent(name) = self else {
            return Ok(Vec::new());
        };
        let Some(task) = Self::current_task(state, name)? else {
            return Ok(Vec::new());
        };
        Ok(read_json::<TaskEnvelope>(&state.task_path(&task))?
            .filter(|t| !t.background)
            .map(|t| t.wait_chain)
            .unwrap_or_default())
    }
}

/// The configured depth limit: `$CLAUDE_EDITOR_HOOK_MAX_DEPTH`, else the team config's
/// `[delegate] max_depth`.
pub fn max_depth() -> Result<usize> {
    if let Ok(v) = std::env::var(MAX_DEPTH_ENV)
        && !v.is_empty()
    {
        return v
            .parse()
            .map_err(|_| anyhow::anyhow!("{MAX_DEPTH_ENV}={v:?} is not a number"));
    }
    Ok(crate::team::config::Config::load(None)?.delegate.max_depth)
}

/// Checks a delegation from `caller` to `target` and returns the wait chain of the new
/// task. `waiting` is the chain already waiting on the caller (outermost first). A
/// background delegation makes nobody wait, so only self-delegation is refused for it.
pub fn chain_for(
    caller: Option<&AgentName>,
    waiting: &[AgentName],
    target: &AgentName,
    background: bool,
    max_depth: usize,
) -> Result<Vec<AgentName>> {
    let Some(caller) = caller else {
        return Ok(Vec::new());
    };
    if caller == target {
        bail!(
            "refused: @{caller} cannot delegate to itself (it would wait for its own answer); \
             do the work here, or pick another agent"
        );
    }
    if background {
        return Ok(Vec::new());
    }
    let mut chain = waiting.to_vec();
    chain.push(caller.clone());
    if chain.contains(target) {
        let shown: Vec<String> = chain
            .iter()
            .chain(std::iter::once(target))
            .map(|a| format!("@{a}"))
            .collect();
        bail!(
            "refused: a delegation cycle ({}): @{target} is already waiting on @{caller}; \
             answer with what you have, or use background",
            shown.join(" waits on ")
        );
    }
    if chain.len() > max_depth {
        bail!(
            "refused: {} agents would wait on each other ({}, then @{target}), over the \
             limit of {max_depth} ([delegate] max_depth in the team config)",
            chain.len(),
            chain
                .iter()
                .map(|a| format!("@{a}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    Ok(chain)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(s: &str) -> AgentName {
        AgentName::parse(s).unwrap()
    }

    #[test]
    fn a_chief_starts_no_chain() {
        assert!(chain_for(None, &[], &n("a"), false, 4).unwrap().is_empty());
    }

    #[test]
    fn self_delegation_is_refused_even_in_the_background() {
        for background in [false, true] {
            let e = chain_for(Some(&n("a")), &[], &n("a"), background, 4).unwrap_err();
            assert!(e.to_string().contains("cannot delegate to itself"), "{e}");
        }
    }

    #[test]
    fn a_two_agent_cycle_is_refused_and_named() {
        // a waits on b; b now asks a.
        let e = chain_for(Some(&n("b")), &[n("a")], &n("a"), false, 4).unwrap_err();
        assert!(e.to_string().contains("@a waits on @b waits on @a"), "{e}");
        // In the background nobody waits: allowed.
        assert!(chain_for(Some(&n("b")), &[n("a")], &n("a"), true, 4).is_ok());
    }

    #[test]
    fn the_chain_grows_until_the_depth_limit() {
        assert_eq!(
            chain_for(Some(&n("b")), &[n("a")], &n("c"), false, 2).unwrap(),
            vec![n("a"), n("b")]
        );
        let e = chain_for(Some(&n("c")), &[n("a"), n("b")], &n("d"), false, 2).unwrap_err();
        assert!(e.to_string().contains("over the limit of 2"), "{e}");
    }
}
