//! `agent-wrap NAME`: host an agent.

use std::time::Duration;

use anyhow::Context;
use clap::Parser;

use crate::agent::claude::driver::Claude;
use crate::agent::claude::session::ClaudeConfig;
use crate::agent::demo::Demo;
use crate::agent::exec::Exec;
use crate::agent::{HostOptions, run_host};
use crate::state::{AgentName, StateDir};

/// Host agent NAME: take its tasks from the inbox one at a time and answer them.
///
/// Without --exec or --demo, runs an interactive Claude Code in this terminal: you see
/// and can use its UI; tasks are delivered into it, and it keeps its conversation across
/// tasks and restarts.
#[derive(Parser, Debug)]
#[command(name = "agent-wrap", version, after_long_help = WRAP_HELP)]
pub struct WrapCli {
    /// The agent's name: 1-32 of a-z, 0-9, '_' and '-'.
    // Hyphen values: a name like `-x` gets the naming rule's error, not clap's.
    #[arg(allow_hyphen_values = true)]
    pub name: String,

    /// Run each task as `sh -c CMD` with the prompt on stdin; stdout is the answer and a
    /// non-zero exit fails the task.
    #[arg(long, value_name = "CMD", conflicts_with = "demo")]
    pub exec: Option<String>,

    /// Use the built-in demo agent (deterministic, offline).
    #[arg(long)]
    pub demo: bool,

    /// Pause between the demo agent's streamed lines.
    #[arg(long, value_name = "MS", default_value_t = 150)]
    pub demo_delay_ms: u64,

    /// A role this agent fills (repeatable).
    #[arg(long = "role", value_name = "ROLE")]
    pub roles: Vec<String>,

    /// Do not echo tasks and output to this terminal (--exec and --demo).
    #[arg(long)]
    pub quiet: bool,

    /// Work on an own git worktree of this repository, on branch `agent/NAME` (created
    /// from --base the first time, reused afterwards; see docs/worktrees.md).
    #[arg(long)]
    pub worktree: bool,

    /// What the worktree's branch starts from (default: the current branch, or the
    /// forked agent's branch).
    #[arg(long, value_name = "REF", requires = "worktree")]
    pub base: Option<String>,

    /// Start with a copy of agent FROM's Claude Code conversation (FROM is not changed).
    /// With --worktree, the branch starts from FROM's branch and its uncommitted changes.
    #[arg(long, value_name = "FROM", conflicts_with_all = ["exec", "demo"])]
    pub fork: Option<String>,

    /// Drain a team board when idle: claim its next ready task for this agent's roles
    /// (default: the board of this project; or a board name or path).
    #[arg(long, value_name = "BOARD", num_args = 0..=1, default_missing_value = "")]
    pub board: Option<String>,

    /// Remove finished tasks older than this (e.g. 7d, 12h, 30m; applied at start and
    /// after tasks). Background results not yet delivered are always kept.
    #[arg(long, value_name = "AGE", default_value = "7d", env = "AGENT_WRAP_KEEP_FOR", value_parser = super::board::parse_duration)]
    pub keep_for: Duration,

    /// Keep at most this many finished tasks of this agent, the newest.
    #[arg(long, value_name = "N", default_value_t = crate::agent::host::TASKS_KEPT, env = "AGENT_WRAP_KEEP_TASKS")]
    pub keep_tasks: usize,

    /// When this agent-wrap dies (killed by a signal, or a crash after it was up), start
    /// it again in this window, after 0.5 s, 1 s, 2 s, 4 s and 8 s, at most 5 times
    /// within a minute. A stop on purpose (`kill NAME`, `down`, a signal) is not
    /// restarted.
    #[arg(long)]
    pub restart: bool,

    /// Internal (`--restart`): the pipe to report on once the host is up.
    #[arg(long, hide = true, value_name = "FD")]
    pub ready_fd: Option<i32>,

    /// Internal (`--restart`): this host is the N-th restart ...
    #[arg(long, hide = true, value_name = "N", requires = "ready_fd")]
    pub restarted: Option<usize>,

    /// ... after the host before it ended this way.
    #[arg(long, hide = true, value_name = "HOW", requires = "restarted")]
    pub restarted_after: Option<String>,

    /// The Claude Code program to host.
    #[arg(long, value_name = "PATH", default_value = "claude", conflicts_with_all = ["exec", "demo"])]
    pub claude: std::path::PathBuf,

    /// Arguments passed on to Claude Code.
    #[arg(last = true, value_name = "CLAUDE_ARGS")]
    pub claude_args: Vec<String>,
}

/// Examples and the variables `agent-wrap` reads, for `--help`.
const WRAP_HELP: &str = "\
Examples:
  agent-wrap planning                          host Claude Code as agent @planning
  agent-wrap coding --worktree -- --model sonnet   its own git worktree; args for Claude Code
  agent-wrap lint --exec 'ruff check -'        any command-line agent: prompt on stdin
  agent-wrap helper --demo                     the built-in demo agent (offline)
  agent-wrap planning --restart                start it again when it crashes

Environment:
  CLAUDE_AGENTS_DIR        one absolute directory for all state (see claude-editor-hook --help)
  AGENT_WRAP_KEEP_FOR      --keep-for
  AGENT_WRAP_KEEP_TASKS    --keep-tasks
  AGENT_WRAP_DEBUG         append the hosted Claude Code's events and updates to this file
  It sets AGENT_NAME and AGENT_TASK_ID for an --exec command, and AGENT_WRAP_AGENT_DIR and
  AGENT_WRAP_EVENTS for the Claude Code it hosts.
";

pub fn wrap_main() -> std::process::ExitCode {
    // The hosted Claude Code runs us as its hook command and as its editor.
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    match args.get(1).and_then(|a| a.to_str()) {
        Some("--hook") => {
            return std::process::ExitCode::from(crate::agent::claude::hook::run() as u8);
        }
        Some("--status-line") => {
            return std::process::ExitCode::from(
                crate::agent::claude::hook::run_status_line() as u8
            );
        }
        Some("--probe") if args.len() == 3 => {
            let code = crate::agent::claude::probe::run(std::path::Path::new(&args[2]));
            return std::process::ExitCode::from(u8::try_from(code).unwrap_or(1));
        }
        _ => {}
    }
    let cli = WrapCli::parse();
    super::exit_with("agent-wrap", run(cli))
}

fn run(cli: WrapCli) -> anyhow::Result<i32> {
    let name = AgentName::parse(&cli.name)?;
    // These mean something else in a prompt (`@any`, `@results`, `@board`).
    if AgentName::is_reserved(name.as_str()) {
        anyhow::bail!(
            "agent name '{name}' is reserved (it has a meaning in prompts); pick another"
        );
    }
    // `--restart`: supervise a host of our own instead (src/restart/); the host is told
    // so by `--ready-fd`.
    if cli.restart && cli.ready_fd.is_none() {
        StateDir::from_env()?;
        return crate::restart::supervise(&name, std::env::args_os().skip(1).collect());
    }
    let ready = cli
        .ready_fd
        .map(crate::restart::ReadyPipe::take)
        .transpose()?;
    let restarted = cli.restarted.map(|count| crate::state::Restarted {
        count,
        after: cli.restarted_after.clone().unwrap_or_default(),
    });
    let state = StateDir::from_env()?;
    let fork = match &cli.fork {
        Some(from) => Some(fork_source(&state, &name, from)?),
        None => None,
    };
    let worktree = if cli.worktree {
        let req = crate::worktree::Request {
            base: cli.base.clone(),
            fork_of: fork
                .as_ref()
                .and_then(|(from, _)| crate::worktree::lookup(from).ok().flatten()),
        };
        let cwd = std::env::current_dir().context("no current directory")?;
        let rec =
            crate::worktree::prepare(&name, &cwd, &req, &mut |n| eprintln!("agent-wrap: {n}"))?;
        // Every driver (the exec command, the hosted Claude Code) works in the host's
        // working directory (`agent::run::working_dir`): the worktree is where the
        // agent works.
        std::env::set_current_dir(&rec.path)
            .with_context(|| format!("failed to enter {}", rec.path.display()))?;
        Some(crate::state::AgentWorktree {
            path: rec.path,
            branch: rec.branch,
            base: rec.base,
        })
    } else {
        None
    };
    let opts = |echo: bool| HostOptions {
        name: name.clone(),
        roles: cli.roles.clone(),
        echo: echo && !cli.quiet,
        worktree: worktree.clone(),
        board: cli.board.clone(),
        retention: crate::agent::host::Retention {
            max_age: cli.keep_for,
            max_tasks: cli.keep_tasks,
        },
        ready: ready.clone(),
        restarted: restarted.clone(),
    };
    match (cli.exec.clone(), cli.demo) {
        (Some(cmd), _) => run_host(&state, opts(true), Exec::new(cmd)),
        (None, true) => {
            let delay = Duration::from_millis(cli.demo_delay_ms);
            run_host(&state, opts(true), Demo::new(delay))
        }
        // Claude Code owns the window; our own lines would corrupt its screen.
        (None, false) => {
            let config = ClaudeConfig {
                program: cli.claude.clone(),
                extra_args: cli.claude_args.clone(),
                fork_from: fork.map(|(_, session)| session),
                fullscreen: crate::claude_code::fullscreen_for_host(&cli.claude),
            };
            run_host(&state, opts(false), Claude::new(config))
        }
    }
}

/// `--fork FROM`: agent FROM and its Claude Code session id, checked before anything
/// starts.
fn fork_source(
    state: &StateDir,
    name: &AgentName,
    from: &str,
) -> anyhow::Result<(AgentName, String)> {
    let from = AgentName::parse(from)?;
    if from == *name {
        anyhow::bail!("an agent cannot fork itself; give the copy another name");
    }
    let session = crate::state::AgentStatus::load(state, &from)?
        .and_then(|s| s.claude_session_id)
        .with_context(|| {
            format!("agent @{from} has no Claude Code conversation to fork (is it a Claude Code agent that has started?)")
        })?;
    if let Some(old) =
        crate::state::AgentStatus::load(state, name)?.and_then(|s| s.claude_session_id)
    {
        anyhow::bail!(
            "agent @{name} already has a conversation (session {old}); fork into a new name,              or `claude-editor-hook forget {name}` first"
        );
    }
    Ok((from, session))
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    #[test]
    fn cli_is_consistent() {
        super::WrapCli::command().debug_assert();
    }

    /// What a supervisor passes to its host, before the arguments it was given.
    #[test]
    fn a_supervised_host_parses_its_internal_arguments_before_the_name() {
        use clap::Parser;
        let cli = super::WrapCli::try_parse_from([
            "agent-wrap",
            "--ready-fd",
            "5",
            "--restarted=2",
            "--restarted-after=killed by SIGKILL",
            "w",
            "--restart",
            "--exec",
            "cat",
        ])
        .unwrap();
        assert_eq!(cli.name, "w");
        assert_eq!(cli.ready_fd, Some(5));
        assert_eq!(cli.restarted, Some(2));
        assert_eq!(cli.restarted_after.as_deref(), Some("killed by SIGKILL"));
        assert!(cli.restart);
        assert_eq!(cli.exec.as_deref(), Some("cat"));
    }
}
