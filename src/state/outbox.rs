//! A chief's outbox: one entry per background task it started, kept until the result
//! has been delivered to it (and after, marked delivered), so nothing is lost across
//! restarts of the coordinator or the chief.
//!
//! `outbox/<chief>/<task id>.json`. The chief is the Claude Code session that asked
//! (see [`chief_id`]).

use std::fs;
use std::io::ErrorKind;

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};

use super::{AgentName, FORMAT_VERSION, StateDir, TaskId, read_json, write_json};

/// Who a background result belongs to: the chief's Claude Code session id, or
/// `pid-<pid>` when it has none.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChiefId(String);

impl ChiefId {
    pub fn parse(s: &str) -> Result<Self> {
        if !super::task::is_plain_id(s) {
            bail!("invalid chief id {s:?}");
        }
        Ok(Self(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Names the chief explicitly (`up` sets it in the team's tmux session).
pub const CHIEF_ID_ENV: &str = "CLAUDE_EDITOR_HOOK_CHIEF_ID";

/// The chief of this process, the first of: `$CLAUDE_EDITOR_HOOK_CHIEF_ID`; the session
/// id of the Claude Code that is our parent (its registry, docs/claude-code.md#editor-env and #session-registry:
/// the editor's case); `$CLAUDE_CODE_SESSION_ID` (set in Claude Code's hooks and tools,
/// but only inherited, possibly from another session, by the editor, docs/claude-code.md#editor-env);
/// `pid-<parent pid>`.
pub fn chief_id() -> ChiefId {
    let env = |key: &str| {
        std::env::var(key)
            .ok()
            .and_then(|v| ChiefId::parse(&v).ok())
    };
    if let Some(id) = env(CHIEF_ID_ENV) {
        return id;
    }
    let ppid = nix::unistd::getppid().as_raw();
    let from_registry = u32::try_from(ppid)
        .ok()
        .and_then(crate::claude_code::Registry::read)
        .and_then(|r| ChiefId::parse(r.session_id.as_deref()?).ok());
    from_registry
        .or_else(|| env("CLAUDE_CODE_SESSION_ID"))
        .unwrap_or_else(|| ChiefId(format!("pid-{ppid}")))
}

/// `outbox/<chief>/<task id>.json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OutboxEntry {
    pub version: u32,
    pub task_id: TaskId,
    pub agent: AgentName,
    pub title: String,
    pub queued_at_us: u64,
    /// When the result reached the chief; null until then.
    pub delivered_at_us: Option<u64>,
}

impl StateDir {
    /// Records a background task for `chief`.
    pub fn add_to_outbox(&self, chief: &ChiefId, entry: &OutboxEntry) -> Result<()> {
        self.create_outbox_dir(chief)?;
        write_json(&self.outbox_entry_path(chief, &entry.task_id), entry)
    }

    /// The chief's entries, oldest first, and apart from them those that cannot be read
    /// (path and reason), so that one bad entry never keeps the others from being read.
    /// Only the deliverer sets them aside (`coordinator::results`).
    #[allow(clippy::type_complexity)]
    pub fn outbox(
        &self,
        chief: &ChiefId,
    ) -> Result<(Vec<OutboxEntry>, Vec<(std::path::PathBuf, anyhow::Error)>)> {
        let dir = self.outbox_dir(chief);
        let read = match fs::read_dir(&dir) {
            Ok(r) => r,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok((Vec::new(), Vec::new())),
            Err(e) => return Err(e).with_context(|| format!("failed to list {}", dir.display())),
        };
        let mut entries = Vec::new();
        let mut unreadable = Vec::new();
        for file in read.flatten() {
            let path = file.path();
            let is_entry =
                path.extension().is_some_and(|x| x == "json") && !super::file_is_temp(&path);
            if !is_entry {
                continue;
            }
            match read_json::<OutboxEntry>(&path) {
                Ok(Some(entry)) => entries.push(entry),
                Ok(None) => {}
                Err(e) => unreadable.push((path, e)),
            }
        }
        entries.sort_by_key(|e| e.queued_at_us);
        Ok((entries, unreadable))
    }

    /// Every chief that has an outbox.
    pub fn chiefs(&self) -> Result<Vec<ChiefId>> {
        let dir = self.outboxes_dir();
        let Ok(read) = fs::read_dir(&dir) else {
            return Ok(Vec::new());
        };
        Ok(read
            .flatten()
            .filter_map(|e| ChiefId::parse(e.file_name().to_str()?).ok())
            .collect())
    }

    /// Claims an entry for delivery: true for exactly one caller, whoever asks first
    /// (an exclusively created marker), so two deliverers never hand it over twice.
    pub fn claim_delivery(&self, chief: &ChiefId, entry: &OutboxEntry) -> Result<bool> {
        super::atomic_create(&self.outbox_claim_path(chief, &entry.task_id), b"")
    }

    /// Returns true if and only if a deliverer has claimed the entry.
    pub fn delivery_claimed(&self, chief: &ChiefId, entry: &OutboxEntry) -> bool {
        self.outbox_claim_path(chief, &entry.task_id).exists()
    }

    /// Marks an entry delivered.
    pub fn mark_delivered(&self, chief: &ChiefId, entry: &OutboxEntry) -> Result<()> {
        let mut entry = entry.clone();
        entry.delivered_at_us = Some(crate::time::now_us());
        write_json(&self.outbox_entry_path(chief, &entry.task_id), &entry)?;
        crate::events::append(
            self.root(),
            crate::events::What::ResultDelivered {
                task: entry.task_id.clone(),
                agent: entry.agent.clone(),
                chief: chief.as_str().to_owned(),
            },
        );
        Ok(())
    }
}

impl OutboxEntry {
    pub fn new(task: &super::TaskEnvelope) -> Self {
        Self {
            version: FORMAT_VERSION,
            task_id: task.id.clone(),
            agent: task.agent.clone(),
            title: task.title.clone(),
            queued_at_us: task.created_at_us,
            delivered_at_us: None,
        }
    }
}
