//! `claude-editor-hook`: editor mode (`claude-editor-hook FILE`) and its verbs.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand};

use crate::coordinator::{EditorOptions, run_editor_mode};

/// Delegate from Claude Code's Ctrl-G editor to persistent agents.
///
/// As Claude Code's editor (EDITOR=claude-editor-hook), a prompt that starts with
/// `@NAME` is sent to the agent hosted by `agent-wrap NAME`, and its answer replaces the
/// prompt. Any other prompt opens your real editor.
#[derive(Parser, Debug)]
#[command(
    name = "claude-editor-hook",
    version,
    args_conflicts_with_subcommands = true
)]
pub struct EditorHookCli {
    /// The prompt file Claude Code passes on Ctrl-G.
    pub file: Option<PathBuf>,

    /// Give up after this many seconds: the task is cancelled and the reason is written
    /// above your prompt.
    #[arg(long, env = "CLAUDE_EDITOR_HOOK_TIMEOUT", value_name = "SECS")]
    pub timeout: Option<u64>,

    /// Draw nothing while waiting. On a terminal, Esc and Ctrl-C still cancel.
    #[arg(long)]
    pub no_view: bool,

    /// Submit the answer to the chief without a keypress (inside tmux).
    // The falsey parser takes `1`, `yes`, `true` from the environment (and `0`, `no`,
    // `false` as off), where a plain flag would reject `1` and fail the whole editor run.
    #[arg(long, env = "CLAUDE_EDITOR_HOOK_SUBMIT", value_parser = clap::builder::FalseyValueParser::new())]
    pub submit: bool,

    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// One line per agent: name, status, task, age, queue and tmux window.
    Status {
        /// Print one JSON document instead.
        #[arg(long)]
        json: bool,
    },
    /// Run a real round trip with a built-in demo agent (no Claude Code, no network).
    Demo,
    /// Delegate PROMPT to agent or role NAME and print the answer (for scripts and the
    /// chief's Bash tool). A failure is one line on stderr and exit status 1.
    Send {
        /// An agent, a role, or `any`.
        name: String,
        /// The task.
        prompt: String,
        /// Give up after this many seconds.
        #[arg(long, value_name = "SECS")]
        timeout: Option<u64>,
        /// Return at once with a ticket; the answer goes to this chief's outbox.
        #[arg(long)]
        background: bool,
    },
    /// Print this chief's finished background results (`@NAME&` tasks), once.
    Results {
        /// Print one JSON document instead.
        #[arg(long)]
        json: bool,
    },
    /// Start (or complete) the team in tmux session `Claude`: the chief in window 0 and
    /// one window per agent of the config (or planning, coding, testing).
    Up {
        /// Only these agents, comma-separated.
        #[arg(long, value_delimiter = ',')]
        agents: Option<Vec<String>>,
        /// The config file (default: $XDG_CONFIG_HOME/claude-editor-hook/config.toml).
        #[arg(long)]
        config: Option<PathBuf>,
        /// The Claude Code program (default: the config's, else `claude` from PATH).
        #[arg(long)]
        claude: Option<PathBuf>,
        /// Use the tmux server at this socket.
        #[arg(long)]
        tmux_socket: Option<PathBuf>,
        /// Do not attach to the session afterwards.
        #[arg(long)]
        no_attach: bool,
        /// Start the agents only, no chief.
        #[arg(long)]
        no_chief: bool,
        /// Also open `top` in a window of its own.
        #[arg(long)]
        top: bool,
    },
    /// Add the chief-side hooks to a Claude Code settings file (JSON), so finished
    /// background results reach the chief at its next turn.
    InstallHooks {
        /// The settings file to change (created if missing).
        file: PathBuf,
    },
    /// The chief's hook command (run by Claude Code; does nothing unless
    /// CLAUDE_EDITOR_HOOK_CHIEF=1).
    #[command(hide = true)]
    ChiefHook,
    /// Press Enter in the chief's pane once process PID has exited (auto-submit).
    #[command(hide = true)]
    SubmitAfter {
        #[arg(long)]
        pid: i32,
        #[arg(long)]
        chief: i32,
        #[arg(long)]
        pane: String,
    },
    /// The team board: a goal and tasks that workers and agents claim exactly once
    /// (docs/board.md).
    Board(super::board::BoardArgs),
    /// Cancel a task, queued or running.
    Cancel {
        /// The task id.
        task: String,
    },
    /// Stop agent NAME's agent-wrap (its running task ends with the reason).
    Kill {
        /// The agent.
        name: String,
    },
    /// Print the output of agent NAME's current or last task.
    Tail {
        /// The agent.
        name: String,
        /// Keep printing until the task ends.
        #[arg(short, long)]
        follow: bool,
    },
    /// Check the setup: Claude Code (and whether its version is verified), tmux, the
    /// state directory, the chief's editor and hooks, the agents. Exit 1 on any error.
    ///
    /// Example: `claude-editor-hook doctor`, or `doctor --json` for one document.
    Doctor {
        /// The team config to check against (default: as `up` finds it).
        #[arg(long)]
        config: Option<PathBuf>,
        /// Print one JSON document instead.
        #[arg(long)]
        json: bool,
    },
    /// Print shell completions for `claude-editor-hook` (or `agent-wrap`).
    ///
    /// Example: `claude-editor-hook completions bash > ~/.local/share/bash-completion/completions/claude-editor-hook`
    Completions {
        /// bash, zsh, fish, elvish or powershell.
        shell: clap_complete::Shell,
        /// Complete this program instead.
        #[arg(
            long = "for",
            value_name = "PROGRAM",
            default_value = "claude-editor-hook"
        )]
        program: CompletedProgram,
    },
    /// Show agent NAME's changes on its worktree branch against its base, committed and
    /// uncommitted (docs/worktrees.md).
    Diff {
        /// The agent.
        name: String,
        /// Only the changed files and their line counts.
        #[arg(long)]
        stat: bool,
    },
    /// Merge agent NAME's branch, uncommitted work included, into the main checkout's
    /// current branch; a conflict changes nothing.
    Merge {
        /// The agent.
        name: String,
        /// One commit with all of the agent's work.
        #[arg(long)]
        squash: bool,
        /// Merge into this branch instead.
        #[arg(long, value_name = "BRANCH")]
        into: Option<String>,
    },
    /// Bring the new commits of agent NAME's base into its branch; a conflict changes
    /// nothing.
    Sync {
        /// The agent.
        name: String,
    },
    /// Remove a stopped agent's state; with --worktree also its worktree and branch,
    /// only when nothing unmerged or uncommitted would be lost.
    Forget {
        /// The agent.
        name: String,
        /// Also remove the agent's worktree and its branch.
        #[arg(long)]
        worktree: bool,
        /// Remove the worktree even if work would be lost.
        #[arg(long, requires = "worktree")]
        force: bool,
    },
    /// A live view of the team: one row per agent (those that need you first), the
    /// board, background tickets and recent events. Keys: Enter jump, c cancel, k stop,
    /// t tail, / filter, q quit (docs/team-view.md).
    Top,
    /// Tell the human when they are needed (an agent waiting, a background result, a
    /// board finished or failed): the [notify] command of the config, else a tmux
    /// message and the bell. `up` starts it in window `notify`.
    Notify {
        /// The config file (default: as `up` finds it).
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Print the event log: tasks queued, delivered, acknowledged and finished, agents'
    /// status changes, results delivered, board changes (docs/team-view.md).
    ///
    /// Example: `claude-editor-hook events --follow`, or `events --since 10m --json`.
    Events {
        /// Keep printing new events as they are appended.
        #[arg(short, long)]
        follow: bool,
        /// Only events since T: a duration ago (30s, 10m, 2h, 1d) or microseconds since
        /// the epoch.
        #[arg(long, value_name = "T")]
        since: Option<String>,
        /// Print each event as its JSON line.
        #[arg(long)]
        json: bool,
    },
    /// Compact a hosted Claude Code agent's conversation, between its tasks.
    Compact {
        /// The agent.
        name: String,
        /// Give up after this many seconds.
        #[arg(long, value_name = "SECS")]
        timeout: Option<u64>,
    },
}

/// The programs `completions` can complete.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum CompletedProgram {
    #[value(name = "claude-editor-hook")]
    Hook,
    #[value(name = "agent-wrap")]
    Wrap,
}

fn completions(shell: clap_complete::Shell, program: CompletedProgram) -> anyhow::Result<i32> {
    use clap::CommandFactory;
    let (mut cmd, name) = match program {
        CompletedProgram::Hook => (EditorHookCli::command(), "claude-editor-hook"),
        CompletedProgram::Wrap => (super::WrapCli::command(), "agent-wrap"),
    };
    clap_complete::generate(shell, &mut cmd, name, &mut std::io::stdout());
    Ok(0)
}

/// A first argument that names no file and looks like a word is a mistyped command:
/// Claude Code always passes an existing file.
fn unknown_command(arg: &std::path::Path) -> Option<String> {
    use clap::CommandFactory;
    let word = arg.to_str()?;
    if arg.exists() || !word.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
        return None;
    }
    let cmd = EditorHookCli::command();
    let best = cmd
        .get_subcommands()
        .filter(|c| !c.is_hide_set())
        .map(|c| c.get_name().to_owned())
        .map(|name| (strsim::jaro_winkler(word, &name), name))
        .filter(|(score, _)| *score > 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0));
    Some(match best {
        Some((_, name)) => format!("unknown command '{word}', did you mean '{name}'?"),
        None => {
            format!("unknown command '{word}' (and no such file); run `claude-editor-hook --help`")
        }
    })
}

pub fn editor_hook_main() -> std::process::ExitCode {
    let cli = match EditorHookCli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return usage_error(e),
    };
    let result = match (&cli.command, &cli.file) {
        (Some(Command::Status { json }), _) => super::status::run(*json),
        (Some(Command::Demo), _) => super::demo::run(),
        (Some(Command::Doctor { config, json }), _) => super::doctor::run(config.as_deref(), *json),
        (Some(Command::Compact { name, timeout }), _) => super::compact::run(name, *timeout),
        (Some(Command::Completions { shell, program }), _) => completions(*shell, *program),
        (
            Some(Command::Send {
                name,
                prompt,
                timeout,
                background,
            }),
            _,
        ) => super::verbs::send(name, prompt, *timeout, *background),
        (Some(Command::Cancel { task }), _) => super::verbs::cancel(task),
        (Some(Command::Top), _) => crate::view::run(),
        (Some(Command::Notify { config }), _) => {
            crate::team::config::Config::load(config.as_deref())
                .and_then(|c| crate::events::notify::run(&c.notify))
        }
        (
            Some(Command::Events {
                follow,
                since,
                json,
            }),
            _,
        ) => super::events::run(*follow, since.as_deref(), *json),
        (Some(Command::Board(args)), _) => super::board::run(args),
        (
            Some(Command::Up {
                agents,
                config,
                claude,
                tmux_socket,
                no_attach,
                no_chief,
                top,
            }),
            _,
        ) => crate::team::up::up(&crate::team::up::UpOptions {
            agents: agents.clone(),
            config: config.clone(),
            claude: claude.clone(),
            tmux_socket: tmux_socket.clone(),
            attach: !no_attach,
            chief: !no_chief,
            top: *top,
        }),
        (Some(Command::SubmitAfter { pid, chief, pane }), _) => {
            crate::coordinator::submit::run_helper(*pid, *chief, pane)
        }
        (Some(Command::InstallHooks { file }), _) => super::chief::install(file),
        (Some(Command::ChiefHook), _) => Ok(super::chief::hook()),
        (Some(Command::Results { json }), _) => super::verbs::results(*json),
        (Some(Command::Kill { name }), _) => super::verbs::kill(name),
        (Some(Command::Tail { name, follow }), _) => super::verbs::tail(name, *follow),
        (Some(Command::Diff { name, stat }), _) => super::worktree::diff(name, *stat),
        (Some(Command::Merge { name, squash, into }), _) => {
            super::worktree::merge(name, *squash, into.as_deref())
        }
        (Some(Command::Sync { name }), _) => super::worktree::sync(name),
        (
            Some(Command::Forget {
                name,
                worktree,
                force,
            }),
            _,
        ) => super::worktree::forget(name, *worktree, *force),
        (None, Some(file)) if unknown_command(file).is_some() => {
            let why = unknown_command(file).unwrap_or_default();
            eprintln!("claude-editor-hook: {why}");
            return std::process::ExitCode::from(2);
        }
        (None, Some(file)) => {
            let opts = EditorOptions {
                timeout: cli.timeout.filter(|&t| t > 0).map(Duration::from_secs),
                no_view: cli.no_view,
                submit: cli.submit,
            };
            run_editor_mode(file, &opts)
        }
        (None, None) => Err(anyhow::anyhow!(
            "no prompt file given; run `claude-editor-hook --help` (Claude Code passes the file on Ctrl-G)"
        )),
    };
    super::exit_with("claude-editor-hook", result)
}

/// A bad option or environment value. Run as Claude Code's editor (the last argument is
/// the prompt file), the reason goes on top of the prompt, where the user looks; exiting
/// non-zero instead would make Claude Code drop it silently (docs/claude-code.md#editor-exit-nonzero-keeps).
fn usage_error(e: clap::Error) -> std::process::ExitCode {
    use clap::error::ErrorKind;
    if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) {
        let _ = e.print();
        return std::process::ExitCode::SUCCESS;
    }
    let file = std::env::args_os()
        .last()
        .map(PathBuf::from)
        .filter(|p| p.is_file());
    if let Some(file) = file
        && let Ok(content) = std::fs::read(&file)
    {
        let first = e.to_string();
        let reason = first
            .lines()
            .next()
            .unwrap_or("invalid arguments")
            .trim_start_matches("error: ");
        let out = crate::coordinator::prompt_file::failure(reason, &content);
        if crate::coordinator::prompt_file::write(&file, &out).is_ok() {
            eprintln!("claude-editor-hook: {reason}");
            return std::process::ExitCode::SUCCESS;
        }
    }
    e.exit()
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    #[test]
    fn cli_is_consistent() {
        super::EditorHookCli::command().debug_assert();
    }
}
