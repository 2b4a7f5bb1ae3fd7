//! The team's configuration: which agents `up` starts, and how.
//!
//! `$XDG_CONFIG_HOME/claude-editor-hook/config.toml` (else
//! `~/.config/claude-editor-hook/config.toml`); without one, three Claude Code agents:
//! planning, coding and testing, each with the role of its name. Example:
//!
//! ```toml
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
//!
//! [spawn]
//! coding = 2          # when every coding agent is busy, start up to 2 more
//!
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
    #[serde(default)]
    pub chief: ChiefConfig,
    #[serde(default, rename = "agent")]
    pub agents: Vec<AgentConfig>,
    /// Per role, how many more agents may be started (as windows `ROLE-2`, `ROLE-3`, …)
    /// when every agent with that role is busy.
    #[serde(default)]
    pub spawn: std::collections::BTreeMap<String, usize>,
    /// Issue 14: how `claude-editor-hook notify` tells the human.
    #[serde(default)]
    pub notify: NotifyConfig,
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
        let from_env = std::env::var_os(CONFIG_ENV)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from);
        let default = from_env.or_else(Self::default_path);
        let path = path.map(Path::to_path_buf).or(default);
        match path.as_deref().map(std::fs::read_to_string) {
            Some(Ok(text)) => {
                let path = path.as_deref().unwrap_or(Path::new(""));
                let config: Config = toml::from_str(&text)
                    .with_context(|| format!("invalid config {}", path.display()))?;
                config.check()?;
                Ok(config)
            }
            Some(Err(e)) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(e).context("failed to read the config file")
            }
            _ => Ok(Self::default_team()),
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
            })
            .collect();
        Self {
            claude: None,
            chief: ChiefConfig::default(),
            agents,
            spawn: Default::default(),
            notify: NotifyConfig::default(),
        }
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
