//! The team's configuration: which agents `up` starts, and how.
//!
//! `$XDG_CONFIG_HOME/claude-editor-hook/config.toml` (else
//! `~/.config/claude-editor-hook/config.toml`); without one, three Claude Code agents:
//! planning, coding and testing, each with the role of its name. Example:
//!
//! ```toml
//! restart = false     # start crashed agents again (agent-wrap --restart); `up --restart`
//!
//! [chief]
//! submit = false      # submit answers to the chief without a keypress
//! hooks = true        # background results reach the chief at its next turn
//! claude_args = []
//!
//! [[agent]]
//! name = "planning"
//! roles = ["planning", "review"]
//! driver = "claude"   # "claude", "exec" (with `command`) or "demo"
//! cwd = "~/src/app"   # optional; default: where `up` runs
//! worktree = true     # optional: its own git worktree on branch agent/NAME (docs/worktrees.md)
//! base = "main"       # optional, with worktree: what the branch starts from
//! claude_args = ["--model", "sonnet"]
//! board = ""         # optional: drain this board when idle ("" = the project's board)
//! restart = true      # optional: start it again when it crashes (default: the team's `restart`)
//!
//! [spawn]
//! coding = 2          # when every coding agent is busy, start up to 2 more
//!
//! [delegate]
//! max_depth = 4       # how many agents may wait on each other in one chain (docs/mcp.md)
//! [notify]            # issue 14: when the human is needed (docs/team-view.md)
//! command = "notify-send claude-editor-hook \"$(jq -r .message)\""  # gets the event JSON on stdin
//! min_interval_secs = 10   # the same agent and kind at most this often
//! ```

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use serde::Deserialize;

use crate::state::AgentName;

/// The config file `up --config` named, for what the chief starts later (spawning).
pub const CONFIG_ENV: &str = "CLAUDE_EDITOR_HOOK_CONFIG";
/// The Claude Code program `up` used, likewise.
pub const CLAUDE_ENV: &str = "CLAUDE_EDITOR_HOOK_CLAUDE";

/// The whole file.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The Claude Code program (default: `claude` from PATH; `up --claude` overrides).
    pub claude: Option<String>,
    /// The team's working directory: the chief's, and every agent's without its own
    /// `cwd` (default: where `up` runs).
    pub cwd: Option<String>,
    /// Start every agent's window with `agent-wrap --restart`, which starts a crashed
    /// host again (`up --restart` does it for one run; an agent's own `restart` wins).
    #[serde(default)]
    pub restart: bool,
    #[serde(default)]
    pub chief: ChiefConfig,
    #[serde(default, rename = "agent")]
    pub agents: Vec<AgentConfig>,
    /// Per role, how many more agents may be started (as windows `ROLE-2`, `ROLE-3`, …)
    /// when every agent with that role is busy.
    #[serde(default)]
    pub spawn: std::collections::BTreeMap<String, usize>,
    #[serde(default)]
    pub delegate: DelegateConfig,
    /// Issue 14: how `claude-editor-hook notify` tells the human.
    #[serde(default)]
    pub notify: NotifyConfig,
}

/// Delegation between agents (`delegate`, `send`).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DelegateConfig {
    /// The longest chain of agents waiting synchronously on one another: an agent whose
    /// task already has this many waiting on it cannot wait on another.
    #[serde(default = "default_max_depth")]
    pub max_depth: usize,
}

/// The default [`DelegateConfig::max_depth`].
pub const DEFAULT_MAX_DEPTH: usize = 4;

fn default_max_depth() -> usize {
    DEFAULT_MAX_DEPTH
}

impl Default for DelegateConfig {
    fn default() -> Self {
        Self {
            max_depth: DEFAULT_MAX_DEPTH,
        }
    }
}

/// `[notify]`: without a command, inside tmux a message in the team's session and
/// the bell.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotifyConfig {
    /// Run with `sh -c`, the event as one JSON line on stdin (with a `message`).
    #[serde(default)]
    pub command: Option<String>,
    /// The same agent and kind are notified at most this often.
    #[serde(default = "ten")]
    pub min_interval_secs: u64,
}

impl Default for NotifyConfig {
    fn default() -> Self {
        Self {
            command: None,
            min_interval_secs: 10,
        }
    }
}

fn ten() -> u64 {
    10
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChiefConfig {
    #[serde(default)]
    pub submit: bool,
    #[serde(default = "yes")]
    pub hooks: bool,
    #[serde(default)]
    pub claude_args: Vec<String>,
}

impl Default for ChiefConfig {
    fn default() -> Self {
        Self {
            submit: false,
            hooks: true,
            claude_args: Vec::new(),
        }
    }
}

fn yes() -> bool {
    true
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentConfig {
    pub name: AgentName,
    #[serde(default)]
    pub roles: Vec<String>,
    #[serde(default = "claude_driver")]
    pub driver: String,
    /// For `driver = "exec"`.
    pub command: Option<String>,
    pub cwd: Option<String>,
    #[serde(default)]
    pub claude_args: Vec<String>,
    /// Work on an own git worktree and branch `agent/NAME` (`agent-wrap --worktree`).
    #[serde(default)]
    pub worktree: bool,
    /// With `worktree`: what the branch starts from (`agent-wrap --base`).
    pub base: Option<String>,
    /// Drain this board when idle: a board name or path, or "" for the project's board.
    pub board: Option<String>,
    /// `agent-wrap --restart` for this agent (default: the team's `restart`).
    pub restart: Option<bool>,
}

/// Where a [`Config`] came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConfigSource {
    File(PathBuf),
    /// The default team: there is no config file (at this path, the default one).
    Defaults(Option<PathBuf>),
}

impl std::fmt::Display for ConfigSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ConfigSource::File(p) => write!(f, "{}", p.display()),
            ConfigSource::Defaults(Some(p)) => {
                write!(
                    f,
                    "defaults (planning, coding, testing: {} does not exist)",
                    p.display()
                )
            }
            ConfigSource::Defaults(None) => write!(f, "defaults (planning, coding, testing)"),
        }
    }
}

/// The commented sample `config init` writes: the default team, every setting shown.
pub const SAMPLE: &str = include_str!("../../lib/config.sample.toml");

/// `config init [PATH]`: writes [`SAMPLE`] to `path` (default: the default file), never
/// over an existing file.
pub fn init(path: Option<&Path>) -> Result<PathBuf> {
    let path = match path {
        Some(p) => p.to_path_buf(),
        None => Config::default_path()
            .context("cannot place the config: set XDG_CONFIG_HOME or HOME")?,
    };
    if std::fs::symlink_metadata(&path).is_ok() {
        bail!("{} exists already; nothing was written", path.display());
    }
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("failed to create {}", dir.display()))?;
    }
    crate::state::atomic_create(&path, SAMPLE.as_bytes())?;
    Ok(path)
}

fn claude_driver() -> String {
    "claude".into()
}

impl Config {
    /// The Claude Code program: `given`, else `$CLAUDE_EDITOR_HOOK_CLAUDE` (set by `up`
    /// for the chief), else the config's, else `claude` from PATH.
    pub fn claude_program(&self, given: Option<&Path>) -> PathBuf {
        given
            .map(Path::to_path_buf)
            .or_else(|| {
                std::env::var_os(CLAUDE_ENV)
                    .filter(|v| !v.is_empty())
                    .map(PathBuf::from)
            })
            .or_else(|| self.claude.as_deref().map(PathBuf::from))
            .unwrap_or_else(|| PathBuf::from("claude"))
    }

    /// The default config file's path.
    pub fn default_path() -> Option<PathBuf> {
        let base = std::env::var_os("XDG_CONFIG_HOME")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))?;
        Some(base.join("claude-editor-hook/config.toml"))
    }

    /// Reads `path`, or `$CLAUDE_EDITOR_HOOK_CONFIG` (set by `up --config` for the
    /// chief), or the default file, or falls back to the default team.
    pub fn load(path: Option<&Path>) -> Result<Self> {
        Ok(Self::load_from(path)?.0)
    }

    /// [`Config::load`], with where the config came from. A file that was named (by
    /// `--config` or `$CLAUDE_EDITOR_HOOK_CONFIG`) must exist: a typo must not start the
    /// default team. Only the default file may be missing.
    pub fn load_from(path: Option<&Path>) -> Result<(Self, ConfigSource)> {
        let named = path.map(Path::to_path_buf).or_else(|| {
            std::env::var_os(CONFIG_ENV)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        });
        let (path, explicit) = match named {
            Some(p) => (Some(p), true),
            None => (Self::default_path(), false),
        };
        let Some(path) = path else {
            return Ok((Self::default_team(), ConfigSource::Defaults(None)));
        };
        match std::fs::read_to_string(&path) {
            Ok(text) => {
                let config: Config = toml::from_str(&text)
                    .with_context(|| format!("invalid config {}", path.display()))?;
                config.check()?;
                Ok((config, ConfigSource::File(path)))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !explicit => {
                Ok((Self::default_team(), ConfigSource::Defaults(Some(path))))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => bail!(
                "config file {} does not exist (`claude-editor-hook config init {}` writes a commented one)",
                path.display(),
                path.display()
            ),
            Err(e) => {
                Err(e).with_context(|| format!("failed to read the config file {}", path.display()))
            }
        }
    }

    fn default_team() -> Self {
        let agents = ["planning", "coding", "testing"]
            .iter()
            .map(|n| AgentConfig {
                name: AgentName::parse(n).expect("a valid default name"),
                roles: vec![(*n).to_owned()],
                driver: claude_driver(),
                command: None,
                cwd: None,
                claude_args: Vec::new(),
                worktree: false,
                base: None,
                board: None,
                restart: None,
            })
            .collect();
        Self {
            claude: None,
            cwd: None,
            restart: false,
            chief: ChiefConfig::default(),
            agents,
            spawn: Default::default(),
            delegate: DelegateConfig::default(),
            notify: NotifyConfig::default(),
        }
    }

    /// Returns true if and only if `agent`'s window runs `agent-wrap --restart`: its own
    /// `restart`, else the team's.
    pub fn restarts(&self, agent: &AgentConfig) -> bool {
        agent.restart.unwrap_or(self.restart)
    }

    fn check(&self) -> Result<()> {
        for (i, a) in self.agents.iter().enumerate() {
            if self.agents[..i].iter().any(|b| b.name == a.name) {
                bail!("agent {} is configured twice", a.name);
            }
            match (a.driver.as_str(), &a.command) {
                ("claude" | "demo", _) | ("exec", Some(_)) => {}
                ("exec", None) => bail!("agent {}: driver \"exec\" needs a command", a.name),
                (other, _) => bail!("agent {}: unknown driver {other:?}", a.name),
            }
            if a.base.is_some() && !a.worktree {
                bail!("agent {}: `base` needs `worktree = true`", a.name);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sample_is_the_default_team() {
        let c: Config = toml::from_str(SAMPLE).unwrap();
        c.check().unwrap();
        let names: Vec<_> = c.agents.iter().map(|a| a.name.to_string()).collect();
        let defaults: Vec<_> = Config::default_team()
            .agents
            .iter()
            .map(|a| a.name.to_string())
            .collect();
        assert_eq!(names, defaults);
    }

    #[test]
    fn parses_the_documented_example_and_defaults() {
        let c: Config = toml::from_str(
            "[chief]\nsubmit = true\n[[agent]]\nname = \"planning\"\nroles = [\"planning\", \"review\"]\n\
             [[agent]]\nname = \"ci\"\ndriver = \"exec\"\ncommand = \"make test\"\n",
        )
        .unwrap();
        c.check().unwrap();
        assert!(c.chief.submit && c.chief.hooks);
        assert_eq!(c.agents[0].driver, "claude");
        assert_eq!(c.agents[1].command.as_deref(), Some("make test"));
        assert!(!c.agents[0].worktree, "no worktree unless asked");
        let w: Config =
            toml::from_str("[[agent]]\nname = \"coding\"\nworktree = true\nbase = \"dev\"\n")
                .unwrap();
        w.check().unwrap();
        assert!(w.agents[0].worktree);
        assert_eq!(w.agents[0].base.as_deref(), Some("dev"));
        assert_eq!(Config::default_team().agents.len(), 3);
    }

    #[test]
    fn mistakes_are_refused() {
        for bad in [
            "[[agent]]\nname = \"Bad Name\"\n",
            "[[agent]]\nname = \"a\"\ndriver = \"exec\"\n",
            "[[agent]]\nname = \"a\"\n[[agent]]\nname = \"a\"\n",
            "[[agent]]\nname = \"a\"\ncolour = \"red\"\n",
        ] {
            let parsed: Result<Config, _> = toml::from_str(bad);
            assert!(
                parsed
                    .map_err(anyhow::Error::from)
                    .and_then(|c| c.check())
                    .is_err(),
                "{bad}"
            );
        }
    }
}
