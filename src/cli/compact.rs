//! `claude-editor-hook compact NAME`: compact a hosted Claude Code agent between tasks.
//!
//! It runs the agent command `compact` ([`AgentCommand::Compact`]) through the same
//! queue as any task, so it never interrupts one. A task whose text is `/compact` is a
//! prompt like any other: only this verb compacts.

use std::time::Duration;

use anyhow::Result;

use crate::coordinator::{Coordinator, Event};
use crate::state::{AgentCommand, AgentName, Outcome, StateDir};

pub fn run(name: &str, timeout: Option<u64>) -> Result<i32> {
    let agent = AgentName::parse(name)?;
    let coordinator = Coordinator::new(StateDir::from_env()?);
    crate::signals::forward(coordinator.sender(), Event::Signal)?;
    let timeout = timeout.filter(|&t| t > 0).map(Duration::from_secs);
    let report = coordinator.run_command(&agent, AgentCommand::Compact, String::new(), timeout)?;
    if report.done.outcome == Outcome::Ok {
        println!("@{agent}: {}", report.answer.unwrap_or_default().trim());
        return Ok(0);
    }
    let why = report.done.reason.unwrap_or_default();
    eprintln!(
        "claude-editor-hook: @{agent} {} (task {}): {why}",
        report.done.outcome, report.task
    );
    Ok(1)
}
