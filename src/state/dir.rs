//! Where the state directory lives, and the checks that keep it private.

use std::ffi::OsString;
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
const WAKE_FIFO: &str = "wake";
const OUTBOX: &str = "outbox";
const PROBE_TAKEN_PREFIX: &str = "probe.taken-";
const PROBE_SPARE_PREFIX: &str = "probe.spare-";

/// An opened, validated state directory. All paths into it come from here (the probe's,
/// which runs without one, from [`probe_request_path`] and its siblings).
#[derive(Clone, Debug)]
pub struct StateDir {
    root: PathBuf,
}

impl StateDir {
    /// The location from the environment: `$CLAUDE_AGENTS_DIR`, else
    /// `$XDG_RUNTIME_DIR/claude-agents`, else `~/.local/state/claude-agents`.
    pub fn default_root() -> Result<PathBuf> {
        let non_empty = |v: Option<OsString>| v.filter(|v| !v.is_empty()).map(PathBuf::from);
        if let Some(dir) = non_empty(std::env::var_os(STATE_DIR_ENV)) {
            return Ok(dir);
        }
        if let Some(dir) = non_empty(std::env::var_os("XDG_RUNTIME_DIR")) {
            return Ok(dir.join("claude-agents"));
        }
        let home = non_empty(std::env::var_os("HOME"))
            .context("cannot place the state directory: set CLAUDE_AGENTS_DIR or HOME")?;
        Ok(home.join(".local/state/claude-agents"))
    }

    /// Opens the directory named by the environment, creating it if needed.
    pub fn from_env() -> Result<Self> {
        Self::open(&Self::default_root()?)
    }

    /// Opens (creating with mode 0700 if missing) the state directory at `root`.
    ///
    /// Refuses, writing nothing, when `root` is a symlink, is owned by another user or is
    /// group/world-writable: another user could then plant or read tasks.
    pub fn open(root: &Path) -> Result<Self> {
        if let Some(parent) = root.parent()
            && !parent.as_os_str().is_empty()
            && fs::symlink_metadata(parent).is_err()
        {
            fs::create_dir_all(parent)
                .with_context(|| format!("failed to create {}", parent.display()))?;
        }
        ensure_private_dir(root)?;
        let state = Self {
            root: root.to_path_buf(),
        };
        ensure_private_dir(&state.root.join(AGENTS))?;
        ensure_private_dir(&state.root.join(TASKS))?;
        Ok(state)
    }

    pub fn root(&self) -> &Path {
        &self.root
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
        ensure_private_dir(&self.events_dir(name))
    }

    /// Where Claude Code's hooks and the editor probe drop events for the host.
    pub fn events_dir(&self, name: &AgentName) -> PathBuf {
        self.agent_dir(name).join(EVENTS_DIR)
    }

    /// The host's one-shot request to the editor probe.
    pub fn probe_path(&self, name: &AgentName) -> PathBuf {
        probe_request_path(&self.agent_dir(name))
    }

    pub fn status_path(&self, name: &AgentName) -> PathBuf {
        self.agent_dir(name).join(STATUS_FILE)
    }

    pub fn lock_path(&self, name: &AgentName) -> PathBuf {
        self.agent_dir(name).join(LOCK_FILE)
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

    /// The task's doorbell FIFO (see [`crate::doorbell`]).
    pub fn wake_path(&self, id: &TaskId) -> PathBuf {
        self.task_dir(id).join(WAKE_FIFO)
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
            return Ok(());
        }
        Err(e) if e.kind() == ErrorKind::AlreadyExists => {}
        Err(e) => return Err(e).with_context(|| format!("failed to create {}", dir.display())),
    }
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

    #[test]
    fn refuses_a_directory_owned_by_someone_else() {
        if !nix::unistd::geteuid().is_root() {
            eprintln!("skipping refuses_a_directory_owned_by_someone_else: needs root to chown");
            return;
        }
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("foreign");
        fs::DirBuilder::new().mode(0o700).create(&dir).unwrap();
        std::os::unix::fs::chown(&dir, Some(65534), Some(65534)).unwrap();
        let err = StateDir::open(&dir).unwrap_err().to_string();
        assert!(err.contains("owned by uid 65534"), "{err}");
    }
}
