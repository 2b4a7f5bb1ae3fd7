//! Tasks: the envelope a coordinator writes, the cancel request, and the `.done` signal.
//!
//! A task lives in `tasks/<id>/`. The coordinator writes `task.json`; the agent appends
//! to `output.log` while it works, then writes `result.txt`, then `done.json` last.
//! `done.json` is created exclusively: whichever party writes it first decides the
//! outcome, so a task can never end twice.

use std::fmt;

use anyhow::{Result, bail};
use serde::{Deserialize, Serialize};

use super::FORMAT_VERSION;
use super::name::AgentName;
use crate::time::now_us;

/// A task id: lowercase hex timestamp, pid and a counter, e.g. `19a9e3c1f2b-3e8f-0`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct TaskId(String);

impl TaskId {
    /// A fresh id candidate. Uniqueness is enforced by creating the task directory.
    pub fn generate(attempt: u32) -> Self {
        Self(format!(
            "{:x}-{:x}-{attempt:x}",
            now_us() / 1000,
            std::process::id()
        ))
    }

    /// Parses an id read from a file name or the command line.
    pub fn parse(s: &str) -> Result<Self> {
        if !is_plain_id(s) {
            bail!("invalid task id {s:?}");
        }
        Ok(Self(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for TaskId {
    type Error = anyhow::Error;
    fn try_from(s: String) -> Result<Self> {
        Self::parse(&s)
    }
}

impl From<TaskId> for String {
    fn from(id: TaskId) -> String {
        id.0
    }
}

impl fmt::Display for TaskId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Who asked for a task.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Requester {
    /// The coordinator process waiting on the task.
    pub pid: u32,
    /// Its parent: the chief's Claude Code process when run from Ctrl-G.
    pub parent_pid: u32,
    pub cwd: String,
    /// `$TMUX_PANE` of the chief, when it runs inside tmux.
    pub tmux_pane: Option<String>,
    /// The kernel's boot id when the task was made: after a reboot `pid` names some
    /// other process, and the requester is gone whatever it names.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub boot_id: Option<String>,
}

impl Requester {
    /// Describes the current process.
    pub fn current() -> Self {
        Self {
            pid: std::process::id(),
            parent_pid: nix::unistd::getppid().as_raw() as u32,
            cwd: std::env::current_dir()
                .map(|p| p.display().to_string())
                .unwrap_or_default(),
            tmux_pane: std::env::var("TMUX_PANE").ok().filter(|p| !p.is_empty()),
            boot_id: boot_id(),
        }
    }

    /// Returns true if and only if the requesting process still runs: the same boot,
    /// and its pid alive.
    pub fn is_alive(&self) -> bool {
        let same_boot = match (&self.boot_id, boot_id()) {
            (Some(then), Some(now)) => *then == now,
            _ => true,
        };
        same_boot && crate::process::is_alive(self.pid)
    }
}

/// `/proc/sys/kernel/random/boot_id`: different after every boot.
pub fn boot_id() -> Option<String> {
    let id = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").ok()?;
    Some(id.trim().to_owned()).filter(|id| !id.is_empty())
}

/// `tasks/<id>/task.json`, written once by the coordinator before the inbox entry.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TaskEnvelope {
    pub version: u32,
    pub id: TaskId,
    pub agent: AgentName,
    /// The prompt, byte-exact as the user wrote it after the directive.
    pub prompt: String,
    /// First line of the prompt, shortened, for status displays.
    pub title: String,
    pub requester: Requester,
    pub created_at_us: u64,
    /// Started in the background (`@NAME&`): nobody waits, the result goes to the
    /// chief's outbox, and the agent runs it even when the requester has exited.
    #[serde(default)]
    pub background: bool,
    /// An agent command instead of a task: the prompt is its argument. A task is always
    /// delivered as a prompt; only this field makes a driver run a command.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<AgentCommand>,
    /// The agents waiting synchronously on this task, outermost first: the one that
    /// delegated it last. Empty for a task from a chief or a background task. A new
    /// synchronous delegation from this task's agent extends it, and one that would
    /// name an agent already in it (a cycle) is refused (docs/mcp.md#refusals). Absent
    /// in older files, which read as empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub wait_chain: Vec<AgentName>,
}

/// The commands a driver may offer besides tasks. One verb, one name: `compact` in the
/// CLI (`claude-editor-hook compact NAME`), here, and in the hosted Claude Code.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AgentCommand {
    /// Compact the hosted Claude Code's conversation (`/compact`), the prompt being
    /// optional instructions for the summary.
    Compact,
}

impl fmt::Display for AgentCommand {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AgentCommand::Compact => "compact",
        })
    }
}

impl TaskEnvelope {
    pub fn new(id: TaskId, agent: AgentName, prompt: String) -> Self {
        Self {
            version: FORMAT_VERSION,
            title: title_of(&prompt),
            id,
            agent,
            prompt,
            requester: Requester::current(),
            created_at_us: now_us(),
            background: false,
            command: None,
            wait_chain: Vec::new(),
        }
    }
}

/// The rule for ids used as file names (task ids, chief ids): 1–64 of `[0-9a-z-]`, not
/// starting with `-`, so they never look like an option, a path or a hidden file.
pub(crate) fn is_plain_id(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && !s.starts_with('-')
        && s.bytes()
            .all(|c| c.is_ascii_digit() || c.is_ascii_lowercase() || c == b'-')
}

/// The first non-empty line of `prompt`, at most 60 characters.
pub fn title_of(prompt: &str) -> String {
    let line = prompt
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("");
    let mut title: String = line.chars().take(60).collect();
    if line.chars().count() > 60 {
        title.push('…');
    }
    title
}

/// `tasks/<id>/cancel.json`: the coordinator asks the agent to stop working on a task
/// it has already claimed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CancelRequest {
    pub version: u32,
    pub reason: String,
    pub requested_at_us: u64,
}

impl CancelRequest {
    pub fn new(reason: impl Into<String>) -> Self {
        Self {
            version: FORMAT_VERSION,
            reason: reason.into(),
            requested_at_us: now_us(),
        }
    }
}

/// How a task ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// The agent answered; `result.txt` holds the answer.
    Ok,
    /// The agent or its command failed, or the agent died.
    Failed,
    /// The requester cancelled (Esc, Ctrl-C, a signal or its timeout).
    Cancelled,
    /// The agent's work was stopped by something other than the requester.
    Interrupted,
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Outcome::Ok => "ok",
            Outcome::Failed => "failed",
            Outcome::Cancelled => "cancelled",
            Outcome::Interrupted => "interrupted",
        })
    }
}

/// Which side wrote `done.json`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FinishedBy {
    Agent,
    Coordinator,
}

/// `tasks/<id>/done.json`: the completion signal, written last and exactly once.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Done {
    pub version: u32,
    pub task_id: TaskId,
    pub outcome: Outcome,
    /// Why the task did not end `ok`: one line for the user.
    pub reason: Option<String>,
    pub finished_by: FinishedBy,
    pub created_at_us: u64,
    /// When the agent took the task from its inbox.
    pub claimed_at_us: Option<u64>,
    /// When the agent handed the prompt to its driver.
    pub started_at_us: Option<u64>,
    pub finished_at_us: u64,
    /// Size of `result.txt` when the outcome is `ok`.
    pub result_bytes: Option<u64>,
    /// The human typed into the agent during this task's turn (Claude driver). Absent in
    /// older files, which read as false.
    #[serde(default)]
    pub human_input: bool,
    /// Claude driver: when the UserPromptSubmit hook acknowledged the delivery.
    #[serde(default)]
    pub acked_at_us: Option<u64>,
    /// Claude driver: when the Stop (or StopFailure) hook reported the end of the turn.
    #[serde(default)]
    pub turn_ended_at_us: Option<u64>,
    /// Worktree agents: the files this task changed in the agent's worktree, when it
    /// changed any (docs/worktrees.md). Absent otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub changes: Option<TaskChanges>,
}

/// Tokens a hosted Claude Code's turn used, from its transcript
/// (docs/claude-code.md#transcript): `tasks/<id>/usage.json`, and summed per agent in
/// `status.json`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenUsage {
    #[serde(default)]
    pub input_tokens: u64,
    #[serde(default)]
    pub output_tokens: u64,
    #[serde(default)]
    pub cache_creation_input_tokens: u64,
    #[serde(default)]
    pub cache_read_input_tokens: u64,
}

impl TokenUsage {
    /// Adds `other` to this.
    pub fn add(&mut self, other: &TokenUsage) {
        self.input_tokens += other.input_tokens;
        self.output_tokens += other.output_tokens;
        self.cache_creation_input_tokens += other.cache_creation_input_tokens;
        self.cache_read_input_tokens += other.cache_read_input_tokens;
    }

    /// Every token counted, input (with the cache's) and output.
    pub fn total(&self) -> u64 {
        self.input_tokens
            + self.output_tokens
            + self.cache_creation_input_tokens
            + self.cache_read_input_tokens
    }
}

/// `tasks/<id>/usage.json`: what the task's turn used.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TaskUsage {
    pub version: u32,
    pub task_id: TaskId,
    #[serde(flatten)]
    pub tokens: TokenUsage,
}

/// What a task changed in its agent's worktree.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TaskChanges {
    /// The agent's branch, `agent/<name>`.
    pub branch: String,
    /// How many files differ between the worktree before and after the task.
    pub files: u64,
}

impl Done {
    /// The agent's record of task `task_id`, finished now; the caller fills in the
    /// timings and facts it knows.
    pub fn finished(
        task_id: TaskId,
        outcome: Outcome,
        reason: Option<String>,
        created_at_us: u64,
    ) -> Self {
        Self {
            version: FORMAT_VERSION,
            task_id,
            outcome,
            reason,
            finished_by: FinishedBy::Agent,
            created_at_us,
            claimed_at_us: None,
            started_at_us: None,
            finished_at_us: now_us(),
            result_bytes: None,
            human_input: false,
            acked_at_us: None,
            turn_ended_at_us: None,
            changes: None,
        }
    }

    /// A done record for `task` that did not succeed.
    pub fn unsuccessful(
        task: &TaskEnvelope,
        outcome: Outcome,
        reason: impl Into<String>,
        by: FinishedBy,
    ) -> Self {
        let mut done = Self::finished(
            task.id.clone(),
            outcome,
            Some(reason.into()),
            task.created_at_us,
        );
        done.finished_by = by;
        done
    }
}

impl super::StateDir {
    /// Writes `done.json` unless the task has one already (whoever writes it first
    /// decides the outcome) and rings the task's doorbell. Returns true if and only if
    /// this record was written. The one writer of `done.json`.
    pub fn record_done(&self, done: &Done) -> Result<bool> {
        self.ensure_task_dir(&done.task_id)?;
        let path = self.done_path(&done.task_id);
        let created = super::atomic_create(&path, &serde_json::to_vec_pretty(done)?)?;
        crate::doorbell::ring(&self.wake_path(&done.task_id));
        if created {
            // After the ring: the waiting coordinator is not delayed by the log.
            self.log_finished(done);
        }
        Ok(created)
    }

    /// Appends the `task_finished` event of a `done.json` just written, with the agent,
    /// title and background flag from the envelope.
    fn log_finished(&self, done: &Done) {
        #[derive(Deserialize)]
        struct Head {
            agent: AgentName,
            #[serde(default)]
            title: String,
            #[serde(default)]
            background: bool,
        }
        let head = super::read_optional(&self.task_path(&done.task_id))
            .ok()
            .flatten()
            .and_then(|b| serde_json::from_slice::<Head>(&b).ok());
        crate::events::append(
            self.root(),
            crate::events::What::TaskFinished {
                task: done.task_id.clone(),
                agent: head.as_ref().map(|h| h.agent.clone()),
                title: head
                    .as_ref()
                    .map(|h| crate::events::short(&h.title))
                    .unwrap_or_default(),
                outcome: done.outcome,
                reason: done.reason.as_deref().map(crate::events::short),
                finished_by: done.finished_by,
                background: head.is_some_and(|h| h.background),
            },
        );
    }
}

impl super::StateDir {
    /// Fails unless `tasks/<id>/` is a real directory of ours: what every writer of a
    /// file in it checks first, so that a directory removed or replaced by a symlink is
    /// never written through (docs/protocol.md, "Safety checks").
    pub fn ensure_task_dir(&self, id: &TaskId) -> Result<()> {
        if !self.check_task_dir(id)? {
            bail!(
                "the directory of task {id} ({}) was removed",
                self.task_dir(id).display()
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_parse_and_refuse_paths() {
        let id = TaskId::generate(0);
        assert_eq!(TaskId::parse(id.as_str()).unwrap(), id);
        for bad in ["", "../x", "a/b", "A", ".x", "-x"] {
            assert!(TaskId::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn envelope_round_trips_with_version() {
        let env = TaskEnvelope::new(
            TaskId::parse("abc-1-0").unwrap(),
            AgentName::parse("planning").unwrap(),
            "  \nplan the dark-mode feature\nmore".into(),
        );
        assert_eq!(env.title, "plan the dark-mode feature");
        let json = serde_json::to_value(&env).unwrap();
        assert_eq!(json["version"], 1);
        assert_eq!(json["agent"], "planning");
        let back: TaskEnvelope = serde_json::from_value(json).unwrap();
        assert_eq!(back, env);
    }

    #[test]
    fn an_envelope_without_a_wait_chain_reads_as_empty_and_one_round_trips() {
        let mut env = TaskEnvelope::new(
            TaskId::parse("abc-1-0").unwrap(),
            AgentName::parse("coding").unwrap(),
            "x".into(),
        );
        let json = serde_json::to_value(&env).unwrap();
        assert!(
            json.get("wait_chain").is_none(),
            "an empty chain is not written"
        );
        assert!(
            serde_json::from_value::<TaskEnvelope>(json)
                .unwrap()
                .wait_chain
                .is_empty()
        );
        env.wait_chain = vec![AgentName::parse("planning").unwrap()];
        let json = serde_json::to_value(&env).unwrap();
        assert_eq!(json["wait_chain"], serde_json::json!(["planning"]));
        assert_eq!(serde_json::from_value::<TaskEnvelope>(json).unwrap(), env);
    }

    #[test]
    fn bad_ids_and_names_in_json_are_rejected() {
        let mut json = serde_json::to_value(TaskEnvelope::new(
            TaskId::parse("abc").unwrap(),
            AgentName::parse("p").unwrap(),
            "x".into(),
        ))
        .unwrap();
        json["id"] = "../../etc".into();
        assert!(serde_json::from_value::<TaskEnvelope>(json).is_err());
    }

    #[test]
    fn outcome_serializes_lowercase() {
        assert_eq!(
            serde_json::to_string(&Outcome::Cancelled).unwrap(),
            "\"cancelled\""
        );
    }

    #[test]
    fn long_titles_are_shortened() {
        let t = title_of(&"x".repeat(100));
        assert_eq!(t.chars().count(), 61);
    }
}
