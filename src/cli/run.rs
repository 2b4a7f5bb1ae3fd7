//! `claude-editor-hook run`: fully automatic runs (docs/run.md). Parses the arguments
//! and calls [`crate::run`]; the exit status is the run's: 0 every task done, 1 a task
//! failed or was blocked (or an error, one line on stderr), 130 cancelled.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Result, bail};
use clap::Args;

use super::board::parse_duration;

/// Plan GOAL into tasks, run them on N workers in parallel, report; resumable.
#[derive(Args, Debug)]
pub struct RunArgs {
    /// What the run should achieve (the planner's goal).
    pub goal: Option<String>,
    /// How many workers run tasks at the same time (default 2; with --agents, their
    /// number).
    #[arg(short = 'w', long = "workers", value_name = "N")]
    pub workers: Option<usize>,
    /// Skip the planner: take the tasks from --tasks.
    #[arg(long, requires = "tasks")]
    pub no_plan: bool,
    /// The tasks, as JSON (our plan format or the seed's tasks.json); implies --no-plan.
    #[arg(long, value_name = "FILE")]
    pub tasks: Option<PathBuf>,
    /// Run each task (and the planner) with `sh -c CMD`, the prompt on stdin, the result
    /// on stdout; default: headless Claude Code (`claude -p`).
    #[arg(long, value_name = "CMD")]
    pub exec: Option<String>,
    /// Existing persistent agents as the workers (one each; -w is then their number):
    /// each task is queued in an agent's inbox and runs in its window.
    #[arg(
        long,
        value_name = "A,B,…",
        value_delimiter = ',',
        conflicts_with = "exec"
    )]
    pub agents: Vec<String>,
    /// An extra argument for `claude -p`, e.g. --claude-arg=--permission-mode=acceptEdits
    /// (repeatable).
    #[arg(long = "claude-arg", value_name = "ARG", allow_hyphen_values = true)]
    pub claude_args: Vec<String>,
    /// The longest one attempt at a task may take.
    #[arg(long, value_name = "DUR", default_value = "30m", value_parser = parse_duration)]
    pub timeout: Duration,
    /// How many times a failed task is tried again before it fails.
    #[arg(long, value_name = "K", default_value_t = 1)]
    pub retries: u32,
    /// One JSON object per event on stdout instead of the progress view and the report.
    #[arg(long)]
    pub json: bool,
    /// Give every worker its own git worktree and branch (docs/worktrees.md).
    #[arg(long)]
    pub worktrees: bool,
    /// Continue run RUN (default: the last run): done tasks are never run again.
    #[arg(long, value_name = "RUN", num_args = 0..=1, default_missing_value = "", conflicts_with_all = ["goal", "tasks", "exec", "list"])]
    pub resume: Option<String>,
    /// Show past runs.
    #[arg(long, conflicts_with_all = ["goal", "tasks", "exec"])]
    pub list: bool,
}

/// Workers without `-w`.
const DEFAULT_WORKERS: usize = 2;

pub fn run(args: &RunArgs) -> Result<i32> {
    if args.list {
        return crate::run::list(args.json);
    }
    if let Some(id) = &args.resume {
        let id = Some(id.as_str()).filter(|s| !s.is_empty());
        return crate::run::resume(id, args.json);
    }
    if args.goal.is_none() && args.tasks.is_none() {
        bail!("a run needs a goal: claude-editor-hook run \"GOAL\" -w N (or --resume, --list)");
    }
    let workers = match (args.workers, args.agents.len()) {
        (Some(n), a) if a > 0 && n != a => bail!(
            "-w {n} with --agents {}: the agents are the workers ({a})",
            args.agents.join(",")
        ),
        (_, a) if a > 0 => a,
        (Some(n), _) => n,
        (None, _) => DEFAULT_WORKERS,
    };
    crate::run::start(&crate::run::Options {
        goal: args.goal.clone(),
        workers,
        tasks: args.tasks.clone(),
        no_plan: args.no_plan || args.tasks.is_some(),
        exec: args.exec.clone(),
        agents: args.agents.clone(),
        claude_args: args.claude_args.clone(),
        timeout: args.timeout,
        retries: args.retries,
        json: args.json,
        worktrees: args.worktrees,
    })
}
