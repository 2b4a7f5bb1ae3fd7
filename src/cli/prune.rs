//! `claude-editor-hook prune`: the retention, applied by hand to any agent's tasks.

use std::time::Duration;

use anyhow::Result;
use clap::Args;

use crate::state::{AgentName, Retention, StateDir, TASKS_KEPT, prune};

#[derive(Args, Debug, Clone)]
pub struct PruneArgs {
    /// Remove finished tasks older than this (e.g. 7d, 12h, 30m).
    #[arg(long, value_name = "AGE", default_value = "7d", value_parser = super::board::parse_duration)]
    pub older_than: Duration,
    /// Keep at most this many finished tasks of each agent, the newest.
    #[arg(long, value_name = "N", default_value_t = TASKS_KEPT)]
    pub keep: usize,
    /// Only this agent's tasks.
    #[arg(long, value_name = "NAME")]
    pub agent: Option<String>,
}

pub fn run(args: &PruneArgs) -> Result<i32> {
    let state = StateDir::from_env()?;
    let agent = args.agent.as_deref().map(AgentName::parse).transpose()?;
    let retention = Retention {
        max_age: args.older_than,
        max_tasks: args.keep,
    };
    let pruned = prune(&state, agent.as_ref(), retention);
    for e in &pruned.errors {
        eprintln!("claude-editor-hook: {e}");
    }
    println!(
        "removed {} finished task(s) from {}",
        pruned.removed.len(),
        state.tasks_dir().display()
    );
    Ok(if pruned.errors.is_empty() { 0 } else { 1 })
}
