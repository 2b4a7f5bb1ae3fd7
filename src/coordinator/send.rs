//! `send`, the one delegation verb behind the shell's `send` and the MCP `delegate`
//! tool: route the target, check the caller's wait chain, then either queue the task in
//! the background (a ticket) or wait for its answer.

use std::time::Duration;

use anyhow::Result;

use super::caller::{Caller, chain_for, max_depth};
use super::delegate::{Observer, Report};
use super::{Coordinator, route};
use crate::state::{AgentName, Outcome, TaskEnvelope};

/// What to delegate.
#[derive(Clone, Debug)]
pub struct SendRequest {
    /// An agent, a role or `any`.
    pub target: String,
    pub prompt: String,
    /// Give up (and cancel the task) after this long.
    pub timeout: Option<Duration>,
    /// Return a ticket at once; the answer goes to the caller's outbox.
    pub background: bool,
    /// Whose outbox a background answer goes to, instead of the caller's (`send
    /// --chief ID`).
    pub chief: Option<crate::state::ChiefId>,
}

/// How a `send` ended.
#[derive(Debug)]
pub enum Sent {
    /// Queued in the background: the ticket.
    Background(TaskEnvelope),
    /// Waited for: how the task ended.
    Finished { agent: AgentName, report: Report },
}

impl Sent {
    /// The one-line reason of a task that did not end `ok`, as the shell prints it.
    pub fn failure(&self) -> Option<String> {
        let Sent::Finished { agent, report } = self else {
            return None;
        };
        match (report.done.outcome, &report.answer) {
            (Outcome::Ok, Some(_)) => None,
            (outcome, _) => Some(format!(
                "@{agent} {outcome} (task {}): {}",
                report.task,
                report.done.reason.as_deref().unwrap_or_default()
            )),
        }
    }

    /// What the shell prints for a background ticket: the ticket, and the two ways to
    /// fetch its answer from any shell.
    pub fn ticket_text(task: &TaskEnvelope, chief: &crate::state::ChiefId) -> String {
        format!(
            "task {} @{} in the background; `claude-editor-hook results --chief {}` brings its answer (or `results --ticket {}` just this one)",
            task.id,
            task.agent,
            chief.as_str(),
            task.id
        )
    }
}

/// Delegates `req` for `caller` through `coordinator`. Errors (an unknown target, a
/// refusal, an offline agent) are the one-line reason for the user; nothing was queued.
pub fn send(
    coordinator: &Coordinator,
    caller: &Caller,
    req: &SendRequest,
    observer: Option<&mut dyn Observer>,
) -> Result<Sent> {
    let state = coordinator.state();
    let target = AgentName::parse(&req.target)?;
    let waiting = caller.waiting_on_caller(state)?;
    let mut exclude = waiting.clone();
    exclude.extend(caller.agent().cloned());
    let agent = route::resolve_excluding(state, &target, &exclude)?;
    let depth = if req.background || caller.agent().is_none() {
        usize::MAX
    } else {
        max_depth()?
    };
    let chain = chain_for(caller.agent(), &waiting, &agent, req.background, depth)?;
    *coordinator.wait_chain.borrow_mut() = chain;
    if req.background {
        let chief = req.chief.clone().unwrap_or_else(|| caller.outbox());
        let task = coordinator.submit_background(&agent, req.prompt.clone(), &chief)?;
        return Ok(Sent::Background(task));
    }
    let report = coordinator.delegate(&agent, req.prompt.clone(), req.timeout, observer)?;
    Ok(Sent::Finished { agent, report })
}
