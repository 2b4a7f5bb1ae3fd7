//! `claude-editor-hook up`: a tmux session `Claude` with the chief in window 0 and one
//! window per agent.
//!
//! The chief is Claude Code with this hook as its editor, the chief-side hooks and the
//! team's MCP tools (`--mcp-config`), all set for that process only; each Claude Code
//! agent gets the tools the same way. Each agent runs `agent-wrap NAME` as its window's
//! command, with `--restart` when asked (`up --restart`, or `restart` in the config),
//! so that a host that crashed comes back in the same window (src/restart/).
//! Running `up` again starts only what is missing: a live agent (its host holds its
//! lock) is never started twice. Windows get `up`'s own environment, passed explicitly,
//! so an already running tmux server cannot hand them a stale one.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

use super::config::{AgentConfig, Config};
use crate::state::{AgentInfo, StateDir};
pub(crate) use crate::tmux::Tmux;

/// The tmux session `up` manages.
pub const SESSION: &str = "Claude";

/// What `up` was asked to do.
pub struct UpOptions {
    /// Only these agents (names from the config).
    pub agents: Option<Vec<String>>,
    pub config: Option<PathBuf>,
    /// The Claude Code program for the chief and the agents (else the config's, else
    /// `claude` from PATH).
    pub claude: Option<PathBuf>,
    /// A tmux server socket other than the default one.
    pub tmux_socket: Option<PathBuf>,
    pub attach: bool,
    /// Start the chief too (`--no-chief`: a headless team).
    pub chief: bool,
    /// Issue 14: open `top` in a window of its own.
    pub top: bool,
    /// Every agent window runs `agent-wrap --restart` (src/restart/), whatever the
    /// config says.
    pub restart: bool,
}

/// `-e K=V` for each variable of our environment that a window needs.
fn env_args() -> Vec<String> {
    // Not tmux's own, and not a Claude Code session's (when `up` runs from a Claude Code
    // tool): the chief and the agents are sessions of their own.
    std::env::vars()
        .filter(|(k, _)| {
            k != "TMUX"
                && k != "TMUX_PANE"
                && k != "CLAUDECODE"
                && k != crate::state::CHIEF_ID_ENV
                && !k.starts_with("CLAUDE_CODE_")
        })
        .flat_map(|(k, v)| ["-e".to_owned(), format!("{k}={v}")])
        .collect()
}

fn expand_home(dir: &str) -> PathBuf {
    match (dir.strip_prefix("~/"), std::env::var_os("HOME")) {
        (Some(rest), Some(home)) => PathBuf::from(home).join(rest),
        _ => PathBuf::from(dir),
    }
}

/// The team's working directory: the config's `cwd`, else where `up` runs.
pub(crate) fn team_dir(config: &Config) -> Result<PathBuf> {
    match config.cwd.as_deref() {
        Some(dir) => {
            let dir = expand_home(dir);
            if !dir.is_dir() {
                bail!("the config's cwd {} is not a directory", dir.display());
            }
            Ok(dir)
        }
        None => Ok(std::env::current_dir()?),
    }
}

/// Runs `up`; returns the exit status.
pub fn up(opts: &UpOptions) -> Result<i32> {
    let (config, source) = Config::load_from(opts.config.as_deref())?;
    println!("config: {source}");
    let state = StateDir::from_env()?;
    let agents: Vec<&AgentConfig> = match &opts.agents {
        None => config.agents.iter().collect(),
        Some(names) => names
            .iter()
            .map(|n| {
                config
                    .agents
                    .iter()
                    .find(|a| a.name.as_str() == n)
                    .with_context(|| {
                        format!(
                            "no agent {n:?} in the config (agents: {})",
                            names_of(&config)
                        )
                    })
            })
            .collect::<Result<_>>()?,
    };
    let claude = config.claude_program(opts.claude.as_deref());
    let exe = std::env::current_exe().context("failed to find claude-editor-hook itself")?;
    // Claude Code splits $EDITOR on spaces with no way to quote (docs/claude-code.md#editor-argv).
    if exe.to_string_lossy().contains(char::is_whitespace) {
        bail!(
            "claude-editor-hook's path {} contains a space, which Claude Code cannot run as \
             its editor; install it elsewhere",
            exe.display()
        );
    }
    let wrap = exe.with_file_name("agent-wrap");
    let here = team_dir(&config)?;
    let tmux = Tmux {
        socket: opts.tmux_socket.as_deref(),
    };

    if !opts.chief {
        if !tmux.has_session() {
            // The session needs a first window; the agents' go beside it.
            tmux.run(&[
                "new-session".into(),
                "-d".into(),
                "-s".into(),
                SESSION.into(),
                "-n".into(),
                "team".into(),
            ])?;
        }
    } else if tmux.has_session() {
        println!("session {SESSION} exists; its chief is left as it is");
    } else {
        let mut args: Vec<String> = ["new-session", "-d", "-s", SESSION, "-n", "chief", "-c"]
            .iter()
            .map(|s| (*s).to_owned())
            .collect();
        args.push(here.display().to_string());
        args.extend(env_args());
        // The hook is the editor of this Claude Code only, not of the user's shell.
        args.extend(["-e".into(), format!("EDITOR={}", exe.display())]);
        // What `up` was told, for agents spawned later from the chief's Ctrl-G.
        if let Some(config) = &opts.config {
            args.extend([
                "-e".into(),
                format!("{}={}", super::config::CONFIG_ENV, config.display()),
            ]);
        }
        args.extend([
            "-e".into(),
            format!("{}={}", super::config::CLAUDE_ENV, claude.display()),
        ]);
        if config.chief.hooks {
            args.extend(["-e".into(), "CLAUDE_EDITOR_HOOK_CHIEF=1".into()]);
        }
        if config.chief.submit {
            args.extend(["-e".into(), "CLAUDE_EDITOR_HOOK_SUBMIT=1".into()]);
        }
        args.push("--".into());
        args.push(claude.display().to_string());
        if config.chief.hooks {
            let command = format!(
                "{} chief-hook",
                crate::shell::quote(&exe.display().to_string())
            );
            let hooks = crate::cli::chief::chief_hooks(&command)?;
            args.extend(["--settings".into(), hooks.to_string()]);
        } else {
            // Two or more arguments make tmux run the program itself, not `sh -c` on one
            // string, which a path with a space would break.
            args.extend(["--settings".into(), "{}".into()]);
        }
        // The team's MCP tools, for this Claude Code only (docs/mcp.md).
        args.extend(crate::mcp::claude_args(&exe));
        // The chief's session id, chosen here (docs/claude-code.md#session-id-flag), is its
        // chief id for background results: set in the session's environment, every shell
        // opened in the team's session later gets the chief's results by default.
        let chief_id = uuid::Uuid::new_v4().to_string();
        let explicit_session = config.chief.claude_args.iter().any(|a| {
            a.starts_with("--session-id")
                || a.starts_with("--resume")
                || a == "-r"
                || a == "-c"
                || a.starts_with("--continue")
        });
        if !explicit_session {
            args.extend(["--session-id".into(), chief_id.clone()]);
        }
        args.extend(config.chief.claude_args.iter().cloned());
        tmux.run(&args)?;
        if !explicit_session {
            tmux.run(&[
                "set-environment".into(),
                "-t".into(),
                format!("={SESSION}"),
                crate::state::CHIEF_ID_ENV.into(),
                chief_id.clone(),
            ])?;
        }
        println!("chief: {SESSION}:chief");
    }

    let windows = tmux.windows();
    for agent in agents {
        if let Some(pid) = AgentInfo::load(&state, &agent.name)?.and_then(|i| i.host_pid) {
            println!("@{}: already running (agent-wrap pid {pid})", agent.name);
            continue;
        }
        if windows.iter().any(|w| w == agent.name.as_str()) {
            // A window left from an agent that is gone: replace it.
            let _ = tmux.run(&[
                "kill-window".into(),
                "-t".into(),
                format!("={SESSION}:{}", agent.name),
            ]);
        }
        let restart = opts.restart || config.restarts(agent);
        start_agent_window(&tmux, SESSION, agent, &claude, &wrap, &here, restart)?;
        println!("@{}: started in {SESSION}:{}", agent.name, agent.name);
    }

    // Issue 14: the notifier (one per session), and `top` when asked for
    // (docs/team-view.md).
    let mut extra = vec![("notify", vec!["notify".to_owned()])];
    if opts.top {
        extra.push(("top", vec!["top".to_owned()]));
    }
    for (window, mut command) in extra {
        if windows.iter().any(|w| w == window) {
            continue;
        }
        if let Some(config) = &opts.config
            && window == "notify"
        {
            command.extend(["--config".to_owned(), config.display().to_string()]);
        }
        let mut args: Vec<String> = [
            "new-window",
            "-d",
            "-t",
            &format!("={SESSION}:"),
            "-n",
            window,
        ]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
        args.extend(env_args());
        args.push("--".into());
        args.push(exe.display().to_string());
        args.extend(command);
        match tmux.run(&args) {
            Ok(_) => println!("{window}: {SESSION}:{window}"),
            Err(e) => eprintln!("claude-editor-hook: could not start {window}: {e:#}"),
        }
    }

    if opts.attach {
        let inside = std::env::var_os("TMUX").is_some();
        let verb = if inside {
            "switch-client"
        } else {
            "attach-session"
        };
        let status = tmux
            .cmd()
            .args([verb, "-t", &format!("={SESSION}")])
            .status()?;
        return Ok(status.code().unwrap_or(1));
    }
    Ok(0)
}

/// Opens window NAME in the session, running `agent-wrap NAME` as `agent` says, with
/// `--restart` when `restart`.
pub(crate) fn start_agent_window(
    tmux: &Tmux<'_>,
    session: &str,
    agent: &AgentConfig,
    claude: &Path,
    wrap: &Path,
    here: &Path,
    restart: bool,
) -> Result<()> {
    let cwd = agent
        .cwd
        .as_deref()
        .map(expand_home)
        .unwrap_or_else(|| here.to_path_buf());
    let mut args: Vec<String> = vec![
        "new-window".into(),
        "-d".into(),
        "-t".into(),
        format!("={session}:"),
        "-n".into(),
        agent.name.to_string(),
        "-c".into(),
        cwd.display().to_string(),
    ];
    args.extend(env_args());
    // Not the chief's id from the session's environment: an agent is a chief of its own.
    args.extend(["-e".into(), format!("{}=", crate::state::CHIEF_ID_ENV)]);
    args.push("--".into());
    args.push(wrap.display().to_string());
    args.push(agent.name.to_string());
    if restart {
        args.push("--restart".into());
    }
    if let Some(board) = &agent.board {
        args.push(format!("--board={board}"));
    }
    for role in &agent.roles {
        args.extend(["--role".into(), role.clone()]);
    }
    if agent.worktree {
        args.push("--worktree".into());
        if let Some(base) = &agent.base {
            args.extend(["--base".into(), base.clone()]);
        }
    }
    match agent.driver.as_str() {
        "exec" => args.extend(["--exec".into(), agent.command.clone().unwrap_or_default()]),
        "demo" => args.push("--demo".into()),
        _ => {
            args.extend(["--claude".into(), claude.display().to_string()]);
            // The team's MCP tools, for this agent's Claude Code only (docs/mcp.md): its
            // server learns the agent's name from the environment agent-wrap gives it.
            args.push("--".into());
            args.extend(crate::mcp::claude_args(
                &wrap.with_file_name("claude-editor-hook"),
            ));
            args.extend(agent.claude_args.iter().cloned());
        }
    }
    tmux.run(&args)?;
    Ok(())
}

fn names_of(config: &Config) -> String {
    config
        .agents
        .iter()
        .map(|a| a.name.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}
