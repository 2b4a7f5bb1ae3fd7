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
    args_conflicts_with_subcommands = true,
    after_long_help = ENVIRONMENT
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

/// Every variable the tools read, for `--help` (the long one).
pub const ENVIRONMENT: &str = "\
Environment:
  CLAUDE_AGENTS_DIR              one absolute directory for all state (default: durable part in
                                 $XDG_STATE_HOME/claude-editor-hook, runtime part in
                                 $XDG_RUNTIME_DIR/claude-agents)
  XDG_STATE_HOME, XDG_RUNTIME_DIR, XDG_CONFIG_HOME, HOME   where state and the team config live
  CLAUDE_EDITOR_HOOK_EDITOR      your editor for prompts without a directive (else VISUAL, EDITOR, vi)
  CLAUDE_EDITOR_HOOK_TIMEOUT     --timeout for editor mode, in seconds
  CLAUDE_EDITOR_HOOK_SUBMIT      1: submit an answer to the chief without a keypress (tmux)
  CLAUDE_EDITOR_HOOK_CHIEF       1: the chief-side hooks act in this Claude Code session
  CLAUDE_EDITOR_HOOK_CHIEF_ID    whose background results (`results`, `send --background`)
  CLAUDE_EDITOR_HOOK_CONFIG      the team config (`up --config` sets it for the chief)
  CLAUDE_EDITOR_HOOK_CLAUDE      the Claude Code program (`up --claude` sets it for the chief)
  CLAUDE_EDITOR_HOOK_BOARD       the board `board` and `@board` use (a name or path)
  CLAUDE_EDITOR_HOOK_WORKER      the worker name `board claim` records
  CLAUDE_EDITOR_HOOK_BOARD_LEASE the lease of a `board claim`
  CLAUDE_EDITOR_HOOK_MAX_DEPTH   how deep synchronous delegations may nest (MCP, send)
  CLAUDE_EDITOR_HOOK_AGENT       the calling agent, for the MCP tools (agent-wrap sets its own)
  CLAUDE_EDITOR_HOOK_ACTIVE      set for the editor we start, so it cannot loop back to us
  AGENT_WRAP_KEEP_FOR, AGENT_WRAP_KEEP_TASKS   agent-wrap's retention (--keep-for, --keep-tasks)
  AGENT_WRAP_DEBUG               agent-wrap: append the hosted Claude Code's events to this file
  AGENT_NAME, AGENT_TASK_ID      set by agent-wrap for an --exec command
  TMUX, TMUX_PANE                read to find the chief's and the agents' windows
";

#[derive(Subcommand, Debug)]
pub enum ConfigAction {
    /// Print the config file `up` reads (or that it uses the default team, and where a
    /// file would go).
    Path,
    /// Write a commented config with the default team (never over an existing file).
    Init {
        /// Where (default: $XDG_CONFIG_HOME/claude-editor-hook/config.toml).
        path: Option<PathBuf>,
    },
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// One line per agent: name, status, task, age, queue and tmux window.
    ///
    /// Example: `claude-editor-hook status --wide`
    Status {
        /// Print one JSON document instead.
        #[arg(long)]
        json: bool,
        /// Show task titles whole.
        #[arg(long)]
        wide: bool,
    },
    /// Run a real round trip with a built-in demo agent (no Claude Code, no network).
    ///
    /// Example: `claude-editor-hook demo`
    Demo,
    /// Delegate PROMPT to agent or role NAME and print the answer (for scripts and the
    /// chief's Bash tool). A failure is one line on stderr and exit status 1.
    ///
    /// Example: `claude-editor-hook send planning "Plan the dark-mode feature"`
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
        /// With --background: the chief whose outbox gets the answer (default: this
        /// shell's or Claude Code session's; `status` lists them).
        #[arg(long, value_name = "ID", requires = "background")]
        chief: Option<String>,
    },
    /// Serve the team's coordination tools (delegate, results, team_status, board_*)
    /// to Claude Code over MCP on stdin/stdout (docs/mcp.md).
    ///
    /// Example: `claude mcp add team -- claude-editor-hook mcp`
    Mcp,
    /// Print this chief's finished background results (`@NAME&` tasks), once.
    ///
    /// Example: `claude-editor-hook results --chief pid-4995` (the id `status` shows)
    Results {
        /// Print one JSON document instead.
        #[arg(long)]
        json: bool,
        /// Another chief's results (the id `status` shows beside each ticket).
        #[arg(long, value_name = "ID", conflicts_with = "ticket")]
        chief: Option<String>,
        /// Just this background task's result, whichever chief it belongs to.
        #[arg(long, value_name = "TASK")]
        ticket: Option<String>,
    },
    /// Start (or complete) the team in tmux session `Claude`: the chief in window 0 and
    /// one window per agent of the config (or planning, coding, testing).
    ///
    /// Example: `claude-editor-hook up --agents planning,coding --restart`
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
        /// Start each agent window with `agent-wrap --restart`: a host that crashes
        /// comes back in the same window (a stop on purpose does not).
        #[arg(long)]
        restart: bool,
    },
    /// The team config: which file `up` reads, and a commented one to start from.
    ///
    /// Example: `claude-editor-hook config init`
    Config {
        #[command(subcommand)]
        action: ConfigAction,
    },
    /// Stop the team `up` started: tasks in flight end (recorded as cancelled, saying
    /// why), each agent stops, and the tmux session closes.
    ///
    /// Example: `claude-editor-hook down`
    Down {
        /// Use the tmux server at this socket.
        #[arg(long)]
        tmux_socket: Option<PathBuf>,
    },
    /// Add the chief-side hooks to a Claude Code settings file (JSON), so finished
    /// background results reach the chief at its next turn.
    ///
    /// Example: `claude-editor-hook install-hooks ~/.claude/chief-settings.json`
    InstallHooks {
        /// The settings file to change (created if missing).
        file: PathBuf,
    },
    /// Remove the chief-side hooks from a Claude Code settings file: the inverse of
    /// install-hooks; everything else in the file stays.
    ///
    /// Example: `claude-editor-hook uninstall-hooks ~/.claude/chief-settings.json`
    UninstallHooks {
        /// The settings file to change.
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
    ///
    /// Example: `claude-editor-hook board add "Write the migration" --role coding`
    Board(super::board::BoardArgs),
    /// Plan a goal into tasks and run them on N workers in parallel, with a report;
    /// resumable after a crash (docs/run.md).
    ///
    /// Example: `claude-editor-hook run "Add a --verbose flag with tests" -w 3`
    Run(super::run::RunArgs),
    /// Cancel a task, queued or running; or, with --agent, everything of one agent.
    ///
    /// Example: `claude-editor-hook cancel --agent coding`
    Cancel {
        /// The task id.
        #[arg(required_unless_present = "agent", conflicts_with = "agent")]
        task: Option<String>,
        /// Cancel every task of this agent: its queue, then the one it works on.
        #[arg(long, value_name = "NAME")]
        agent: Option<String>,
    },
    /// Remove finished tasks: those older than --older-than, and beyond the newest
    /// --keep of each agent. Background results not yet delivered are kept.
    ///
    /// Example: `claude-editor-hook prune --older-than 2d`
    Prune(super::prune::PruneArgs),
    /// Stop agent NAME's agent-wrap (its running task ends with the reason).
    ///
    /// Example: `claude-editor-hook kill planning`
    Kill {
        /// The agent.
        name: String,
    },
    /// Print the output of agent NAME's current or last task.
    ///
    /// Example: `claude-editor-hook tail coding --follow`
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
    ///
    /// Example: `claude-editor-hook diff coding --stat`
    Diff {
        /// The agent.
        name: String,
        /// Only the changed files and their line counts.
        #[arg(long)]
        stat: bool,
    },
    /// Merge agent NAME's branch, uncommitted work included, into the main checkout's
    /// current branch; a conflict changes nothing.
    ///
    /// Example: `claude-editor-hook merge coding --squash`
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
    ///
    /// Example: `claude-editor-hook sync coding`
    Sync {
        /// The agent.
        name: String,
    },
    /// Remove a stopped agent's state; with --worktree also its worktree and branch,
    /// only when nothing unmerged or uncommitted would be lost.
    ///
    /// Example: `claude-editor-hook forget coding --worktree`
    Forget {
        /// The agent.
        name: String,
        /// Also remove the agent's worktree and its branch.
        #[arg(long)]
        worktree: bool,
        /// Forget it even with background results not yet delivered, and remove the
        /// worktree even if work would be lost.
        #[arg(long)]
        force: bool,
    },
    /// A live view of the team: one row per agent (those that need you first), the
    /// board, background tickets and recent events. Keys: Enter jump, c cancel, k stop,
    /// t tail, / filter, q quit (docs/team-view.md).
    ///
    /// Example: `claude-editor-hook top`
    Top,
    /// Tell the human when they are needed (an agent waiting, a background result, a
    /// board finished or failed): the [notify] command of the config, else a tmux
    /// message and the bell. `up` starts it in window `notify`.
    ///
    /// Example: `claude-editor-hook notify`
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
    /// Serve the team to a browser: a live page and a JSON API (docs/web.md), on
    /// loopback, with a token. Prints the URL to open, token included.
    ///
    /// Example: `claude-editor-hook serve --open`
    Serve {
        /// Listen here instead of a free loopback port (HOST:PORT). Anything but
        /// loopback is reachable by others: it prints a warning.
        #[arg(long, value_name = "ADDR")]
        listen: Option<String>,
        /// Open the page in the browser ($BROWSER, else xdg-open).
        #[arg(long)]
        open: bool,
    },
    /// Compact a hosted Claude Code agent's conversation, between its tasks.
    ///
    /// Example: `claude-editor-hook compact planning`
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
        (Some(Command::Status { json, wide }), _) => super::status::run(*json, *wide),
        (Some(Command::Demo), _) => super::demo::run(),
        (Some(Command::Mcp), _) => crate::mcp::serve(),
        (Some(Command::Serve { listen, open }), _) => {
            crate::web::serve(&crate::web::ServeOptions {
                listen: listen.clone(),
                open: *open,
            })
        }
        (Some(Command::Doctor { config, json }), _) => super::doctor::run(config.as_deref(), *json),
        (Some(Command::Compact { name, timeout }), _) => super::compact::run(name, *timeout),
        (Some(Command::Completions { shell, program }), _) => completions(*shell, *program),
        (
            Some(Command::Send {
                name,
                prompt,
                timeout,
                background,
                chief,
            }),
            _,
        ) => super::verbs::send(name, prompt, *timeout, *background, chief.as_deref()),
        (Some(Command::Cancel { task, agent }), _) => {
            super::verbs::cancel(task.as_deref(), agent.as_deref())
        }
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
        (Some(Command::Run(args)), _) => super::run::run(args),
        (
            Some(Command::Up {
                agents,
                config,
                claude,
                tmux_socket,
                no_attach,
                no_chief,
                top,
                restart,
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
            restart: *restart,
        }),
        (Some(Command::SubmitAfter { pid, chief, pane }), _) => {
            crate::coordinator::submit::run_helper(*pid, *chief, pane)
        }
        (Some(Command::Config { action }), _) => config_verb(action),
        (Some(Command::Down { tmux_socket }), _) => {
            crate::team::down::down(&crate::team::down::DownOptions {
                tmux_socket: tmux_socket.clone(),
            })
        }
        (Some(Command::InstallHooks { file }), _) => super::chief::install(file),
        (Some(Command::UninstallHooks { file }), _) => super::chief::uninstall(file),
        (Some(Command::ChiefHook), _) => Ok(super::chief::hook()),
        (
            Some(Command::Results {
                json,
                chief,
                ticket,
            }),
            _,
        ) => super::verbs::results(*json, chief.as_deref(), ticket.as_deref()),
        (Some(Command::Kill { name }), _) => super::verbs::kill(name),
        (Some(Command::Prune(args)), _) => super::prune::run(args),
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

/// `config path` and `config init`.
fn config_verb(action: &ConfigAction) -> anyhow::Result<i32> {
    match action {
        ConfigAction::Path => {
            let (_, source) = crate::team::config::Config::load_from(None)?;
            println!("{source}");
        }
        ConfigAction::Init { path } => {
            let written = crate::team::config::init(path.as_deref())?;
            println!(
                "wrote {}; `claude-editor-hook up` reads it",
                written.display()
            );
        }
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    #[test]
    fn cli_is_consistent() {
        super::EditorHookCli::command().debug_assert();
    }

    /// Splits an example command line: words, and "double-quoted" words.
    fn words(line: &str) -> Vec<String> {
        let mut out = Vec::new();
        let mut word = String::new();
        let mut quoted = false;
        for c in line.chars() {
            match c {
                '"' => quoted = !quoted,
                ' ' if !quoted => {
                    if !word.is_empty() {
                        out.push(std::mem::take(&mut word));
                    }
                }
                c => word.push(c),
            }
        }
        if !word.is_empty() {
            out.push(word);
        }
        out
    }

    #[test]
    fn every_command_has_an_example_that_parses() {
        use clap::Parser;
        let cli = super::EditorHookCli::command();
        for sub in cli.get_subcommands().filter(|s| !s.is_hide_set()) {
            let about = sub
                .get_long_about()
                .map(|a| a.to_string())
                .unwrap_or_default();
            let example = about
                .split("Example: `")
                .nth(1)
                .and_then(|e| e.split('`').next())
                .unwrap_or_else(|| panic!("`{}` has no example", sub.get_name()));
            // From `claude-editor-hook` on (the MCP example is a `claude mcp add` line).
            let args = words(example);
            let at = args
                .iter()
                .position(|a| a == "claude-editor-hook")
                .unwrap_or_else(|| panic!("{example}"));
            // A shell redirection ends the command.
            let end = args
                .iter()
                .position(|a| a.starts_with('>') || a == "|")
                .unwrap_or(args.len());
            let args = &args[at..end];
            assert_eq!(args[1], sub.get_name(), "{example}");
            if let Err(e) = super::EditorHookCli::try_parse_from(args) {
                panic!(
                    "the example of `{}` does not parse: {example}\n{e}",
                    sub.get_name()
                );
            }
        }
    }
}
