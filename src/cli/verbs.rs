//! Shell verbs for scripts and for the chief's Bash tool: `send`, `cancel`, `kill` and
//! `tail`. They use the same code as editor mode.

use std::io::{Read, Seek, SeekFrom, Write};
use std::time::Duration;

use anyhow::{Context, Result, bail};

use crate::coordinator::delegate::Cancel;
use crate::coordinator::{Coordinator, Event, cancel, route};
use crate::state::{AgentName, AgentStatus, Outcome, StateDir, TaskId, lock_holder, read_json};

/// `send NAME|ROLE PROMPT`: delegates and prints the answer; a failure is one line on
/// stderr and exit 1.
pub fn send(target: &str, prompt: &str, timeout: Option<u64>, background: bool) -> Result<i32> {
    let state = StateDir::from_env()?;
    let agent = route::resolve(&state, &AgentName::parse(target)?)?;
    let coordinator = Coordinator::new(state);
    if background {
        let task =
            coordinator.submit_background(&agent, prompt.to_owned(), &crate::state::chief_id())?;
        println!(
            "task {} @{} in the background; `claude-editor-hook results` brings its answer",
            task.id, task.agent
        );
        return Ok(0);
    }
    crate::signals::forward(coordinator.sender(), Event::Signal)?;
    let timeout = timeout.filter(|&t| t > 0).map(Duration::from_secs);
    let report = coordinator.delegate(&agent, prompt.to_owned(), timeout, None)?;
    if let Some(Cancel::Signal(sig)) = report.cancelled_by {
        return Ok(sig.exit_code());
    }
    match (report.done.outcome, report.answer_bytes) {
        (Outcome::Ok, Some(answer)) => {
            super::write_stdout(&answer).with_context(|| {
                let kept = coordinator.state().result_path(&report.task);
                format!(
                    "the answer of task {} was not printed (it is kept in {})",
                    report.task,
                    kept.display()
                )
            })?;
            Ok(0)
        }
        (outcome, _) => {
            let why = report.done.reason.unwrap_or_default();
            eprintln!(
                "claude-editor-hook: @{agent} {outcome} (task {}): {why}",
                report.task
            );
            Ok(1)
        }
    }
}

/// `cancel TASK`.
pub fn cancel(task: Option<&str>, agent: Option<&str>) -> Result<i32> {
    let state = StateDir::from_env()?;
    let reason = "cancelled with `claude-editor-hook cancel`";
    if let Some(agent) = agent {
        let agent = AgentName::parse(agent)?;
        let ended = cancel::cancel_agent(&state, &agent, reason)?;
        if ended.is_empty() {
            println!("agent @{agent} has no task queued or running");
        }
        let mut failed = false;
        for (id, done) in ended {
            match done {
                Ok(done) => println!("task {id}: {}", done.outcome),
                Err(e) => {
                    failed = true;
                    eprintln!("claude-editor-hook: task {id}: {e:#}");
                }
            }
        }
        return Ok(i32::from(failed));
    }
    let id = TaskId::parse(task.unwrap_or_default())?;
    let done = cancel::cancel_task(&state, &id, reason)?;
    println!("task {id}: {}", done.outcome);
    Ok(0)
}

/// `kill NAME`: stops the agent's host with SIGTERM, which ends its task with the reason,
/// and waits until it is gone.
pub fn kill(name: &str) -> Result<i32> {
    let state = StateDir::from_env()?;
    let agent = AgentName::parse(name)?;
    let Some(pid) = lock_holder(&state.lock_path(&agent))? else {
        bail!("agent @{agent} is not running");
    };
    let (tx, rx) = std::sync::mpsc::channel();
    let _watch = crate::process::notify_exit(pid, tx, || ())?;
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGTERM,
    )
    .with_context(|| format!("failed to signal agent-wrap pid {pid}"))?;
    rx.recv_timeout(Duration::from_secs(10))
        .map_err(|_| anyhow::anyhow!("agent-wrap pid {pid} did not stop within 10s"))?;
    println!("agent @{agent} stopped");
    Ok(0)
}

/// `tail NAME [-f]`: the output of the agent's current (or last) task; `-f` follows it
/// until the task ends.
pub fn tail(name: &str, follow: bool) -> Result<i32> {
    let state = StateDir::from_env()?;
    let agent = AgentName::parse(name)?;
    let status =
        AgentStatus::load(&state, &agent)?.with_context(|| format!("no agent @{agent}"))?;
    let Some(id) = status
        .task
        .map(|t| t.id)
        .or_else(|| status.recent.first().map(|t| t.id.clone()))
    else {
        bail!("agent @{agent} has not worked on a task yet");
    };
    let log = state.output_path(&id);
    let (tx, rx) = std::sync::mpsc::channel();
    let mut watcher = crate::watch::DirWatcher::new(tx, || ())?;
    if follow {
        watcher.watch(&state.task_dir(&id))?;
    }
    let mut offset = 0;
    loop {
        offset = copy_from(&log, offset)?;
        let done = read_json::<crate::state::Done>(&state.done_path(&id))?.is_some();
        if !follow || done {
            if done {
                copy_from(&log, offset)?;
            }
            return Ok(0);
        }
        // Event-driven: the next write to the task directory wakes us.
        if rx.recv().is_err() {
            return Ok(0);
        }
    }
}

/// Prints `path` from `offset` on; returns the new offset.
fn copy_from(path: &std::path::Path, offset: u64) -> Result<u64> {
    let Ok(mut file) = std::fs::File::open(path) else {
        return Ok(offset);
    };
    file.seek(SeekFrom::Start(offset))?;
    let mut buf = Vec::new();
    file.read_to_end(&mut buf)?;
    let mut out = std::io::stdout().lock();
    out.write_all(&buf)?;
    out.flush()?;
    Ok(offset + buf.len() as u64)
}

/// `results [--json]`: the chief's finished background results, delivered once.
pub fn results(as_json: bool) -> Result<i32> {
    let state = StateDir::from_env()?;
    let chief = crate::state::chief_id();
    let pending = crate::coordinator::results::ready(&state, &chief)?;
    let (running, set_aside) = (pending.running, pending.set_aside);
    let ready = crate::coordinator::results::take(&state, &chief, pending.ready)?;
    if as_json {
        let items: Vec<serde_json::Value> = ready
            .iter()
            .map(|r| {
                serde_json::json!({
                    "task_id": r.entry.task_id,
                    "agent": r.entry.agent,
                    "title": r.entry.title,
                    "outcome": r.done.outcome,
                    "reason": r.done.reason,
                    "answer": r.answer,
                })
            })
            .collect();
        let doc = serde_json::json!({
            "version": 1, "chief": chief.as_str(), "results": items, "running": running,
            "set_aside": set_aside,
        });
        println!("{}", serde_json::to_string_pretty(&doc)?);
    } else if ready.is_empty() && set_aside.is_empty() {
        println!("no background results yet ({running} still running)");
    } else {
        let text = crate::coordinator::results::text(&ready, running, &set_aside);
        println!("{text}");
    }
    Ok(0)
}
