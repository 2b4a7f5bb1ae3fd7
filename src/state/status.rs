//! An agent's status file, and the live view of an agent that combines it with the lock.
//!
//! `status.json` is written only by the agent's host. It is a report, not a proof of
//! life: readers go through [`AgentInfo`], which reads the host lock and shows an agent
//! whose host is gone as `offline`, whatever its last status said.

use std::fmt;

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};

use super::file::{read_json, write_json};
use super::lock::lock_holder;
use super::{AgentName, FORMAT_VERSION, Outcome, StateDir, TaskId};

/// What an agent is doing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AgentState {
    /// The host runs, the agent is not ready for tasks yet.
    Starting,
    /// Ready: the next inbox task is taken at once.
    Idle,
    /// Working on `task`.
    Working,
    /// Blocked on the human (a dialog, a permission prompt).
    Waiting,
    /// The human is using the agent directly; tasks wait.
    User,
    /// The host process is stopped (SIGSTOP, Ctrl-Z in its window): nothing moves until
    /// it is continued. Never written; seen by readers from the process state.
    Stopped,
    /// No live host.
    Offline,
}

impl fmt::Display for AgentState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = serde_json::to_value(self).expect("a unit enum serializes");
        f.write_str(s.as_str().unwrap_or("?"))
    }
}

/// A reference to a task from a status file.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TaskRef {
    pub id: TaskId,
    pub title: String,
}

/// One entry of the agent's recent-work summary.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RecentTask {
    pub id: TaskId,
    pub title: String,
    pub outcome: Outcome,
    pub finished_at_us: u64,
}

/// Where the host runs in tmux.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TmuxLocation {
    /// `session:window`, e.g. `Claude:planning`.
    pub window: String,
    /// `$TMUX_PANE`, e.g. `%3`.
    pub pane: String,
}

/// `agents/<name>/status.json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AgentStatus {
    pub version: u32,
    pub name: AgentName,
    pub status: AgentState,
    /// The task being worked on.
    pub task: Option<TaskRef>,
    /// The last few finished tasks, newest first: a summary of the agent's context.
    pub recent: Vec<RecentTask>,
    pub last_active_us: u64,
    pub started_at_us: u64,
    /// The host (`agent-wrap`) process.
    pub pid: u32,
    /// `exec`, `demo` or `claude`.
    pub driver: String,
    pub roles: Vec<String>,
    pub tmux: Option<TmuxLocation>,
    /// The Claude Code session id of the hosted agent, when it has one.
    pub claude_session_id: Option<String>,
    /// The agent's own git worktree, when it has one (docs/worktrees.md).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub worktree: Option<AgentWorktree>,
    /// Why the agent is `waiting`, when the host knows: a dialog Claude Code shows
    /// before its first prompt, with the fix.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub waiting_for: Option<String>,
    /// The last failure the host could not report where it belongs (an outcome it
    /// could not record, say), for the coordinator waiting on that task and `status`.
    /// Cleared by the next task that ends normally.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Issue 14: the tokens of every task's turn so far (a hosted Claude Code), kept
    /// across restarts. Absent until the first count.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokens: Option<super::TokenUsage>,
    /// Issue 14: the cost Claude Code reports for the agent's current session, in US
    /// dollars (its status line's `cost.total_cost_usd`, docs/claude-code.md#status-line-cost).
    /// Claude Code's own figure, not ours: it starts again with a new session.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost_usd: Option<f64>,
    /// This host is a restart by `agent-wrap --restart` (src/restart/): which one, and
    /// how the host before it ended. Absent for a host that is not one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restarted: Option<Restarted>,
}

/// A host started again by `agent-wrap --restart` after the one before it crashed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Restarted {
    /// Restarts since the supervisor started: 1 for the first.
    pub count: usize,
    /// How the host before this one ended: `killed by SIGKILL`, `exit status 101`.
    pub after: String,
}

/// Where a worktree agent works: its worktree, branch and base.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AgentWorktree {
    pub path: std::path::PathBuf,
    /// `agent/<name>`.
    pub branch: String,
    /// What the branch was made from and is compared with.
    pub base: String,
}

/// How many finished tasks `recent` keeps.
pub const RECENT_TASKS: usize = 5;

impl AgentStatus {
    pub fn new(name: AgentName, driver: &str, roles: Vec<String>) -> Self {
        let now = crate::time::now_us();
        Self {
            version: FORMAT_VERSION,
            name,
            status: AgentState::Starting,
            task: None,
            recent: Vec::new(),
            last_active_us: now,
            started_at_us: now,
            pid: std::process::id(),
            driver: driver.to_owned(),
            roles,
            tmux: None,
            claude_session_id: None,
            worktree: None,
            waiting_for: None,
            error: None,
            tokens: None,
            cost_usd: None,
            restarted: None,
        }
    }

    pub fn load(state: &StateDir, name: &AgentName) -> Result<Option<Self>> {
        read_json(&state.status_path(name))
    }

    pub fn save(&self, state: &StateDir) -> Result<()> {
        write_json(&state.status_path(&self.name), self)
    }

    /// Records a finished task at the front of `recent`.
    pub fn push_recent(&mut self, task: RecentTask) {
        self.recent.insert(0, task);
        self.recent.truncate(RECENT_TASKS);
    }
}

/// An agent as a reader should see it: the status file plus the truth about its host.
#[derive(Clone, Debug)]
pub struct AgentInfo {
    pub name: AgentName,
    /// The status file; `None` when the agent directory exists without one, or it
    /// cannot be read.
    pub status: Option<AgentStatus>,
    /// Why the status file cannot be read (corrupt, replaced by a symlink…). A live host
    /// repairs it within moments; until then its inbox still works.
    pub status_error: Option<String>,
    /// The pid holding the host lock, when the host is alive.
    pub host_pid: Option<i32>,
}

impl AgentInfo {
    /// Reads agent `name`. `Ok(None)` when no such agent was ever registered; an error
    /// when its directory or inbox is not private (another user could plant tasks).
    pub fn load(state: &StateDir, name: &AgentName) -> Result<Option<Self>> {
        let dir = state.agent_dir(name);
        match std::fs::symlink_metadata(&dir) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e).with_context(|| format!("failed to stat {}", dir.display())),
            Ok(m) if !m.is_dir() => {
                bail!(
                    "refusing agent directory {}: it is not a directory",
                    dir.display()
                )
            }
            Ok(_) => {}
        }
        state.check_agent_dirs(name)?;
        // Read the lock first: a host that dies between the two reads shows as offline
        // only on the next read, but a stale status can never look alive.
        let host_pid = lock_holder(&state.lock_path(name))?;
        let (status, status_error) = match AgentStatus::load(state, name) {
            Ok(status) => (status, None),
            Err(e) => (None, Some(format!("{e:#}"))),
        };
        Ok(Some(Self {
            name: name.clone(),
            status,
            status_error,
            host_pid,
        }))
    }

    /// The effective state: `offline` whenever no host holds the lock, `stopped` when
    /// the host process is stopped, whatever its status file says.
    pub fn state(&self) -> AgentState {
        match (&self.status, self.host_pid) {
            (_, None) => AgentState::Offline,
            (_, Some(pid)) if crate::process::is_stopped(pid) => AgentState::Stopped,
            (Some(s), Some(_)) => s.status,
            (None, Some(_)) => AgentState::Starting,
        }
    }

    /// The task being worked on, as far as anyone can tell: none for an offline agent,
    /// whatever its last status file says.
    pub fn task(&self) -> Option<&TaskRef> {
        self.host_pid?;
        self.status.as_ref()?.task.as_ref()
    }
}
