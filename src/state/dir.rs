//! Where the state directory lives, and the checks that keep it private.

use std::fs;
use std::io::ErrorKind;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

use super::name::AgentName;
use super::outbox::ChiefId;
use super::task::TaskId;

/// Overrides the state directory location.
pub const STATE_DIR_ENV: &str = "CLAUDE_AGENTS_DIR";

const AGENTS: &str = "agents";
const TASKS: &str = "tasks";
const STATUS_FILE: &str = "status.json";
const LOCK_FILE: &str = "lock";
const INBOX_DIR: &str = "inbox";
const CURRENT_FILE: &str = "current.json";
const EVENTS_DIR: &str = "events";
const PROBE_FILE: &str = "probe.json";
const TASK_FILE: &str = "task.json";
const OUTPUT_FILE: &str = "output.log";
const RESULT_FILE: &str = "result.txt";
const CANCEL_FILE: &str = "cancel.json";
const DONE_FILE: &str = "done.json";
const USAGE_FILE: &str = "usage.json";
const DOORBELLS: &str = "doorbells";
const RESERVE_FILE: &str = "reserve";
/// The durable home's name under `$XDG_STATE_HOME`, shared with boards and worktrees.
pub const APP_DIR: &str = "claude-editor-hook";
/// The runtime part's name under `$XDG_RUNTIME_DIR` (where all state lived before the
/// split).
const RUNTIME_APP_DIR: &str = "claude-agents";
const OUTBOX: &str = "outbox";
const PROBE_TAKEN_PREFIX: &str = "probe.taken-";
const PROBE_SPARE_PREFIX: &str = "probe.spare-";

/// An opened, validated state directory: the durable part (`root`), which must outlive
/// a reboot, and the runtime part (`runtime`), which holds only what dies with the
/// processes that use it (docs/protocol.md, "Durable and runtime state"). All paths into
/// it come from here (the probe's, which runs without one, from [`probe_request_path`]
/// and its siblings).
#[derive(Clone, Debug)]
pub struct StateDir {
    root: PathBuf,
    runtime: PathBuf,
}

/// Where the two parts of the state directory are.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StateRoots {
    /// Agent identity and Claude session ids, inboxes, tasks and results, outboxes.
    pub durable: PathBuf,
    /// Host locks, doorbell FIFOs, hook and probe events.
    pub runtime: PathBuf,
}

/// The app's durable home: `$CLAUDE_AGENTS_DIR` when set (one directory for all state),
/// else `$XDG_STATE_HOME/claude-editor-hook`, else `~/.local/state/claude-editor-hook`.
/// Boards and worktrees live under it too. A relative `$CLAUDE_AGENTS_DIR` is refused:
/// two processes started in different directories would use different state.
pub fn durable_home() -> Result<PathBuf> {
    if let Some(dir) = explicit_dir()? {
        return Ok(dir);
    }
    let state_home = match env_path("XDG_STATE_HOME").filter(|p| p.is_absolute()) {
        Some(dir) => dir,
        None => env_path("HOME")
            .context("cannot place the state directory: set CLAUDE_AGENTS_DIR or HOME")?
            .join(".local/state"),
    };
    Ok(state_home.join(APP_DIR))
}

/// `$CLAUDE_AGENTS_DIR`, checked to be absolute; `None` when unset or empty.
fn explicit_dir() -> Result<Option<PathBuf>> {
    match env_path(STATE_DIR_ENV) {
        Some(dir) if !dir.is_absolute() => bail!(
            "{STATE_DIR_ENV} must be an absolute path, not {:?}: processes started in \
             different directories would use different state",
            dir.display().to_string()
        ),
        other => Ok(other),
    }
}

fn env_path(key: &str) -> Option<PathBuf> {
    std::env::var_os(key)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
}

impl StateRoots {
    /// From the environment: `$CLAUDE_AGENTS_DIR` for both; else the durable part under
    /// [`durable_home`] and the runtime part in `$XDG_RUNTIME_DIR/claude-agents` (the
    /// durable part itself when there is no runtime directory).
    pub fn from_env() -> Result<Self> {
        if let Some(dir) = explicit_dir()? {
            return Ok(Self::single(dir));
        }
        let durable = durable_home()?;
        let runtime = match env_path("XDG_RUNTIME_DIR").filter(|p| p.is_absolute()) {
            Some(dir) => dir.join(RUNTIME_APP_DIR),
            None => durable.clone(),
        };
        Ok(Self { durable, runtime })
    }

    /// One directory for both parts.
    pub fn single(dir: PathBuf) -> Self {
        Self {
            runtime: dir.clone(),
            durable: dir,
        }
    }
}

impl StateDir {
    /// The durable location from the environment (see [`StateRoots::from_env`]).
    pub fn default_root() -> Result<PathBuf> {
        Ok(StateRoots::from_env()?.durable)
    }

    /// Opens the directories named by the environment, creating them if needed.
    pub fn from_env() -> Result<Self> {
        Self::open_roots(&StateRoots::from_env()?)
    }

    /// Opens `root` as both the durable and the runtime part (tests, the demo, and
    /// `$CLAUDE_AGENTS_DIR`).
    pub fn open(root: &Path) -> Result<Self> {
        Self::open_roots(&StateRoots::single(root.to_path_buf()))
    }

    /// Opens (creating with mode 0700 if missing) both parts of the state directory.
    ///
    /// Refuses, writing nothing, when a root is a symlink, is owned by another user or is
    /// group/world-writable: another user could then plant or read tasks. State left by
    /// an older build in the runtime directory (where everything used to live) is moved
    /// to the durable part once.
    pub fn open_roots(roots: &StateRoots) -> Result<Self> {
        for root in [&roots.durable, &roots.runtime] {
            if let Some(parent) = root.parent()
                && !parent.as_os_str().is_empty()
                && fs::symlink_metadata(parent).is_err()
            {
                fs::create_dir_all(parent)
                    .with_context(|| format!("failed to create {}", parent.display()))?;
            }
            ensure_private_dir(root)?;
        }
        let state = Self {
            root: roots.durable.clone(),
            runtime: roots.runtime.clone(),
        };
        ensure_private_dir(&state.root.join(AGENTS))?;
        ensure_private_dir(&state.root.join(TASKS))?;
        ensure_private_dir(&state.runtime.join(DOORBELLS))?;
        if state.runtime != state.root {
            ensure_private_dir(&state.runtime.join(AGENTS))?;
            super::legacy::migrate(&state.runtime, &state);
        } else if state.root.file_name().is_some_and(|n| n == APP_DIR)
            && let Some(parent) = state.root.parent()
        {
            // Without a runtime directory, older builds kept everything in
            // `<state home>/claude-agents`.
            super::legacy::migrate(&parent.join(RUNTIME_APP_DIR), &state);
        }
        Ok(state)
    }

    /// Re-creates the top-level directories after someone removed them (a host's
    /// self-repair: see `agent::host`).
    pub fn repair(&self) -> Result<()> {
        Self::open_roots(&StateRoots {
            durable: self.root.clone(),
            runtime: self.runtime.clone(),
        })
        .map(drop)
    }

    /// The durable part.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The runtime part (the same as [`StateDir::root`] with `$CLAUDE_AGENTS_DIR`).
    pub fn runtime_root(&self) -> &Path {
        &self.runtime
    }

    /// The runtime half of an agent's directory: its lock, events and probe files.
    pub fn runtime_agent_dir(&self, name: &AgentName) -> PathBuf {
        self.runtime.join(AGENTS).join(name.as_str())
    }

    pub fn agents_dir(&self) -> PathBuf {
        self.root.join(AGENTS)
    }

    pub fn agent_dir(&self, name: &AgentName) -> PathBuf {
        self.agents_dir().join(name.as_str())
    }

    /// Creates the agent's directory, inbox and events directory (0700) if needed.
    pub fn create_agent_dirs(&self, name: &AgentName) -> Result<()> {
        ensure_private_dir(&self.agent_dir(name))?;
        ensure_private_dir(&self.inbox_dir(name))?;
        ensure_private_dir(&self.runtime_agent_dir(name))?;
        ensure_private_dir(&self.events_dir(name))
    }

    /// Checks, without creating anything, that the agent's directory and inbox are real
    /// directories of ours that nobody else can write: what every reader checks before
    /// trusting an agent's files (agent-wrap checks the same when it creates them).
    pub fn check_agent_dirs(&self, name: &AgentName) -> Result<()> {
        check_private_dir(&self.agent_dir(name))?;
        // An agent directory without an inbox (one that never had a host) is not unsafe.
        match fs::symlink_metadata(self.inbox_dir(name)) {
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
            _ => check_private_dir(&self.inbox_dir(name)),
        }
    }

    /// Where Claude Code's hooks and the editor probe drop events for the host.
    pub fn events_dir(&self, name: &AgentName) -> PathBuf {
        self.runtime_agent_dir(name).join(EVENTS_DIR)
    }

    /// The host's one-shot request to the editor probe.
    pub fn probe_path(&self, name: &AgentName) -> PathBuf {
        probe_request_path(&self.runtime_agent_dir(name))
    }

    pub fn status_path(&self, name: &AgentName) -> PathBuf {
        self.agent_dir(name).join(STATUS_FILE)
    }

    pub fn lock_path(&self, name: &AgentName) -> PathBuf {
        self.runtime_agent_dir(name).join(LOCK_FILE)
    }

    /// Space the host keeps in reserve next to its tasks, freed to record an outcome
    /// when the disk is full (see `agent::host`).
    pub fn reserve_path(&self, name: &AgentName) -> PathBuf {
        self.agent_dir(name).join(RESERVE_FILE)
    }

    pub fn inbox_dir(&self, name: &AgentName) -> PathBuf {
        self.agent_dir(name).join(INBOX_DIR)
    }

    /// The inbox entry of the task the agent is working on, moved here when claimed.
    pub fn current_path(&self, name: &AgentName) -> PathBuf {
        self.agent_dir(name).join(CURRENT_FILE)
    }

    /// Names of all agents that have a directory, sorted. Entries that are not valid
    /// agent names are skipped.
    pub fn agent_names(&self) -> Result<Vec<AgentName>> {
        let dir = self.agents_dir();
        let mut names = Vec::new();
        for entry in
            fs::read_dir(&dir).with_context(|| format!("failed to list {}", dir.display()))?
        {
            let entry = entry?;
            if let Some(name) = entry
                .file_name()
                .to_str()
                .filter(|n| AgentName::is_valid(n))
            {
                names.push(AgentName::parse(name)?);
            }
        }
        names.sort();
        Ok(names)
    }

    pub fn tasks_dir(&self) -> PathBuf {
        self.root.join(TASKS)
    }

    pub fn task_dir(&self, id: &TaskId) -> PathBuf {
        self.tasks_dir().join(id.as_str())
    }

    /// Creates a task's directory; fails if it exists, which keeps task ids unique.
    pub fn create_task_dir(&self, id: &TaskId) -> Result<bool> {
        match fs::DirBuilder::new().mode(0o700).create(self.task_dir(id)) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == ErrorKind::AlreadyExists => Ok(false),
            Err(e) => Err(e).with_context(|| format!("failed to create task {id}")),
        }
    }

    pub fn task_path(&self, id: &TaskId) -> PathBuf {
        self.task_dir(id).join(TASK_FILE)
    }

    pub fn output_path(&self, id: &TaskId) -> PathBuf {
        self.task_dir(id).join(OUTPUT_FILE)
    }

    pub fn result_path(&self, id: &TaskId) -> PathBuf {
        self.task_dir(id).join(RESULT_FILE)
    }

    pub fn cancel_path(&self, id: &TaskId) -> PathBuf {
        self.task_dir(id).join(CANCEL_FILE)
    }

    pub fn done_path(&self, id: &TaskId) -> PathBuf {
        self.task_dir(id).join(DONE_FILE)
    }

    /// The tokens a hosted Claude Code's turn used (issue 14).
    pub fn usage_path(&self, id: &TaskId) -> PathBuf {
        self.task_dir(id).join(USAGE_FILE)
    }

    /// The task's doorbell FIFO (see [`crate::doorbell`]), in the runtime part: a FIFO
    /// means nothing after the processes that opened it are gone.
    pub fn wake_path(&self, id: &TaskId) -> PathBuf {
        self.runtime.join(DOORBELLS).join(id.as_str())
    }

    /// Checks that `tasks/<id>/` is a real directory of ours, not a symlink planted in
    /// its place, before a file in it is written. Returns false when it is gone.
    pub fn check_task_dir(&self, id: &TaskId) -> Result<bool> {
        match fs::symlink_metadata(self.task_dir(id)) {
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(false),
            _ => check_private_dir(&self.task_dir(id)).map(|()| true),
        }
    }

    /// Where every chief's outbox lives.
    pub fn outboxes_dir(&self) -> PathBuf {
        self.root.join(OUTBOX)
    }

    /// `outbox/<chief>/`.
    pub fn outbox_dir(&self, chief: &ChiefId) -> PathBuf {
        self.outboxes_dir().join(chief.as_str())
    }

    /// Creates `outbox/` and `outbox/<chief>/` (0700) if needed, with the same checks as
    /// the state directory itself.
    pub fn create_outbox_dir(&self, chief: &ChiefId) -> Result<PathBuf> {
        ensure_private_dir(&self.outboxes_dir())?;
        let dir = self.outbox_dir(chief);
        ensure_private_dir(&dir)?;
        Ok(dir)
    }

    /// `outbox/<chief>/<task id>.json`.
    pub fn outbox_entry_path(&self, chief: &ChiefId, id: &TaskId) -> PathBuf {
        self.outbox_dir(chief).join(format!("{id}.json"))
    }

    /// `outbox/<chief>/<task id>.delivered`: the entry's delivery claim.
    pub fn outbox_claim_path(&self, chief: &ChiefId, id: &TaskId) -> PathBuf {
        self.outbox_dir(chief).join(format!("{id}.delivered"))
    }
}

/// The probe's files, from the agent directory it is given: the probe runs with only
/// `AGENT_WRAP_AGENT_DIR`, not a [`StateDir`]. `probe.json`, the host's request.
pub fn probe_request_path(agent_dir: &Path) -> PathBuf {
    agent_dir.join(PROBE_FILE)
}

/// `probe.taken-<pid>`: the request, renamed by the probe (pid) that took it.
pub fn probe_taken_path(agent_dir: &Path, pid: u32) -> PathBuf {
    agent_dir.join(format!("{PROBE_TAKEN_PREFIX}{pid}"))
}

/// `probe.spare-<nonce>-<us>`: one more Ctrl-G the host pressed for delivery `nonce`.
pub fn probe_spare_path(agent_dir: &Path, nonce: u64, at_us: u64) -> PathBuf {
    agent_dir.join(format!("{PROBE_SPARE_PREFIX}{nonce}-{at_us}"))
}

/// Returns true if and only if `file_name` is a spare token's.
pub fn is_probe_spare(file_name: &str) -> bool {
    file_name.starts_with(PROBE_SPARE_PREFIX)
}

/// Creates `dir` with mode 0700, or checks that the existing one is a real directory,
/// owned by us and not writable by group or others.
pub(crate) fn ensure_private_dir(dir: &Path) -> Result<()> {
    match fs::DirBuilder::new().mode(0o700).create(dir) {
        Ok(()) => {
            // The umask may have narrowed the mode; it cannot have widened it, but make
            // the intent explicit.
            fs::set_permissions(dir, fs::Permissions::from_mode(0o700))
                .with_context(|| format!("failed to set mode 0700 on {}", dir.display()))?;
            Ok(())
        }
        Err(e) if e.kind() == ErrorKind::AlreadyExists => check_private_dir(dir),
        Err(e) => Err(e).with_context(|| format!("failed to create {}", dir.display())),
    }
}

/// Checks that `dir` is a real directory, owned by us and not writable by group or
/// others. The error names the directory and the fix.
pub(crate) fn check_private_dir(dir: &Path) -> Result<()> {
    let meta =
        fs::symlink_metadata(dir).with_context(|| format!("failed to stat {}", dir.display()))?;
    if meta.file_type().is_symlink() {
        bail!(
            "refusing state directory {}: it is a symlink",
            dir.display()
        );
    }
    if !meta.is_dir() {
        bail!(
            "refusing state directory {}: it is not a directory",
            dir.display()
        );
    }
    let uid = nix::unistd::geteuid().as_raw();
    if meta.uid() != uid {
        bail!(
            "refusing state directory {}: owned by uid {}, not by you (uid {uid})",
            dir.display(),
            meta.uid()
        );
    }
    if meta.mode() & 0o022 != 0 {
        bail!(
            "refusing state directory {}: it is group- or world-writable (mode {:o}); \
             run `chmod 700 {}`",
            dir.display(),
            meta.mode() & 0o7777,
            dir.display()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn creates_private_layout() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("a/b/state");
        let state = StateDir::open(&root).unwrap();
        for d in [state.root().to_path_buf(), state.agents_dir()] {
            let mode = fs::metadata(&d).unwrap().mode() & 0o777;
            assert_eq!(mode, 0o700, "{}", d.display());
        }
    }

    #[test]
    fn refuses_symlink_and_writable_dirs_and_writes_nothing() {
        let tmp = tempfile::tempdir().unwrap();
        let real = tmp.path().join("real");
        fs::create_dir(&real).unwrap();
        let link = tmp.path().join("link");
        std::os::unix::fs::symlink(&real, &link).unwrap();
        let err = StateDir::open(&link).unwrap_err().to_string();
        assert!(err.contains("symlink"), "{err}");
        assert_eq!(fs::read_dir(&real).unwrap().count(), 0);

        fs::set_permissions(&real, fs::Permissions::from_mode(0o777)).unwrap();
        let err = StateDir::open(&real).unwrap_err().to_string();
        assert!(err.contains("world-writable"), "{err}");
        assert_eq!(fs::read_dir(&real).unwrap().count(), 0);
    }

    #[cfg_attr(missing_root, ignore = "needs root to chown: see README, Tests")]
    #[test]
    fn refuses_a_directory_owned_by_someone_else() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("foreign");
        fs::DirBuilder::new().mode(0o700).create(&dir).unwrap();
        std::os::unix::fs::chown(&dir, Some(65534), Some(65534)).unwrap();
        let err = StateDir::open(&dir).unwrap_err().to_string();
        assert!(err.contains("owned by uid 65534"), "{err}");
    }
}
