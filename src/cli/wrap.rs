//! `agent-wrap NAME`: host an agent.

use std::time::Duration;

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
#[command(name = "agent-wrap", version)]
pub struct WrapCli {
    /// The agent's name: 1-32 of a-z, 0-9, '_' and '-'.
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

    /// The Claude Code program to host.
    #[arg(long, value_name = "PATH", default_value = "claude", conflicts_with_all = ["exec", "demo"])]
    pub claude: std::path::PathBuf,

    /// Arguments passed on to Claude Code.
    #[arg(last = true, value_name = "CLAUDE_ARGS")]
    pub claude_args: Vec<String>,
}

pub fn wrap_main() -> std::process::ExitCode {
    // The hosted Claude Code runs us as its hook command and as its editor.
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    match args.get(1).and_then(|a| a.to_str()) {
        Some("--hook") => {
            return std::process::ExitCode::from(crate::agent::claude::hook::run() as u8);
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
    // These mean something else in a prompt (`@any`, `@results`): no agent may take them.
    if ["any", "results"].contains(&name.as_str()) {
        anyhow::bail!(
            "agent name {name:?} is reserved (it has a meaning in prompts); pick another"
        );
    }
    let state = StateDir::from_env()?;
    let opts = |echo: bool| HostOptions {
        name: name.clone(),
        roles: cli.roles.clone(),
        echo: echo && !cli.quiet,
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
            };
            run_host(&state, opts(false), Claude::new(config))
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    #[test]
    fn cli_is_consistent() {
        super::WrapCli::command().debug_assert();
    }
}
