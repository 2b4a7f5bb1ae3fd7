//! `agent-wrap NAME`: host an agent.

use std::time::Duration;

use clap::Parser;

use crate::agent::{Driver, HostOptions, run_host};
use crate::state::{AgentName, StateDir};

/// Host agent NAME: take its tasks from the inbox one at a time and answer them.
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

    /// Do not echo tasks and output to this terminal.
    #[arg(long)]
    pub quiet: bool,
}

pub fn wrap_main() -> std::process::ExitCode {
    let cli = WrapCli::parse();
    super::exit_with("agent-wrap", run(cli))
}

fn run(cli: WrapCli) -> anyhow::Result<i32> {
    let name = AgentName::parse(&cli.name)?;
    let driver = match (cli.exec, cli.demo) {
        (Some(cmd), _) => Driver::Exec(cmd),
        (None, true) => Driver::Demo {
            delay: Duration::from_millis(cli.demo_delay_ms),
        },
        (None, false) => anyhow::bail!(
            "hosting Claude Code itself is not available yet; pass --exec CMD or --demo"
        ),
    };
    let state = StateDir::from_env()?;
    run_host(
        &state,
        HostOptions {
            name,
            driver,
            roles: cli.roles,
            echo: !cli.quiet,
        },
    )
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    #[test]
    fn cli_is_consistent() {
        super::WrapCli::command().debug_assert();
    }
}
