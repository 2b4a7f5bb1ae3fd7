//! Shell verbs for scripts and for the chief's Bash tool: `send`, `cancel`, `kill` and
//! `tail`. They use the same code as editor mode.

use std::io::{Read, Seek, SeekFrom, Write};
use std::time::Duration;

use anyhow::{Context, Result, bail};

use crate::coordinator::caller::Caller;
use crate::coordinator::delegate::Cancel;
use crate::coordinator::send::{SendRequest, Sent};
use crate::coordinator::{Coordinator, Event, cancel};
use crate::state::{AgentName, AgentStatus, ChiefId, StateDir, TaskId, lock_holder, read_json};

/// `send NAME|ROLE PROMPT`: delegates and prints the answer; a failure is one line on
/// stderr and exit 1.
pub fn send(
    target: &str,
    prompt: &str,
    timeout: Option<u64>,
    background: bool,
    chief: Option<&str>,
) -> Result<i32> {
    let coordinator = Coordinator::new(StateDir::from_env()?);
    let chief = chief.map(ChiefId::parse).transpose()?;
    let req = SendRequest {
        target: target.to_owned(),
        prompt: prompt.to_owned(),
        timeout: timeout.filter(|&t| t > 0).map(Duration::from_secs),
        background,
        chief: chief.clone(),
    };
    if !background {
        crate::signals::forward(coordinator.sender(), Event::Signal)?;
    }
    let sent = crate::coordinator::send::send(&coordinator, &Caller::from_env(), &req, None)?;
    if let Some(why) = sent.failure() {
        if let Sent::Finished { report, .. } = &sent
            && let Some(Cancel::Signal(sig)) = &report.cancelled_by
        {
            return Ok(sig.exit_code());
        }
        eprintln!("claude-editor-hook: {why}");
        return Ok(1);
    }
    match sent {
        Sent::Background(task) => {
            let chief = chief.unwrap_or_else(|| Caller::from_env().outbox());
            println!("{}", Sent::ticket_text(&task, &chief));
        }
        Sent::Finished { report, .. } => {
            let mut answer = report.answer_bytes.unwrap_or_default();
            // On a terminal the prompt comes back on a line of its own; a pipe or a file
            // gets the answer byte for byte.
            if std::io::IsTerminal::is_terminal(&std::io::stdout())
                && !answer.is_empty()
                && !answer.ends_with(b"\n")
            {
                answer.push(b'\n');
            }
            super::write_stdout(&answer).with_context(|| {
                let kept = coordinator.state().result_path(&report.task);
                format!(
                    "the answer of task {} was not printed (it is kept in {})",
                    report.task,
                    kept.display()
                )
            })?;
        }
    }
    Ok(0)
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
pub fn results(as_json: bool, chief: Option<&str>, ticket: Option<&str>) -> Result<i32> {
    let state = StateDir::from_env()?;
    let taken = match ticket {
        Some(ticket) => {
            crate::coordinator::results::collect_ticket(&state, &TaskId::parse(ticket)?)?
        }
        None => {
            let chief = match chief {
                Some(c) => ChiefId::parse(c)?,
                None => Caller::from_env().outbox(),
            };
            crate::coordinator::results::collect(&state, &chief)?
        }
    };
    if as_json {
        println!("{}", serde_json::to_string_pretty(&taken.json())?);
        return Ok(0);
    }
    println!("{}", taken.text());
    // Nothing of ours: say whose results are waiting, so none is stranded.
    if ticket.is_none() && taken.ready.is_empty() {
        let others = crate::coordinator::results::waiting_elsewhere(&state, &taken.chief);
        if !others.is_empty() {
            let list: Vec<String> = others
                .iter()
                .map(|(c, n)| format!("{} ({n})", c.as_str()))
                .collect();
            println!(
                "other chiefs have results: {}; `claude-editor-hook results --chief ID` fetches them",
                list.join(", ")
            );
        }
    }
    Ok(0)
}
