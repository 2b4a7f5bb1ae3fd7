//! Background results: what a chief's outbox holds, and how it is delivered (`@results`,
//! `claude-editor-hook results`, and the chief-side hooks).

use anyhow::Result;

use crate::state::{
    ChiefId, Done, FinishedBy, OutboxEntry, Outcome, StateDir, TaskId, read_json, read_optional,
    set_aside_line,
};
use crate::time::human_us;

/// A finished background task, not delivered yet.
pub struct Ready {
    pub entry: OutboxEntry,
    pub done: Done,
    pub answer: Option<String>,
}

/// What a chief's outbox holds now.
pub struct Pending {
    /// Finished, undelivered results.
    pub ready: Vec<Ready>,
    /// How many of its tasks still run.
    pub running: usize,
    /// Entries that could not be read and were set aside, one line each: reported once,
    /// with the results.
    pub set_aside: Vec<String>,
}

/// The chief's outbox. Every bad entry costs only itself: an unreadable outbox entry is
/// set aside and reported; a result whose `done.json` or answer cannot be read is set
/// aside and delivered as failed, saying why.
pub fn ready(state: &StateDir, chief: &ChiefId) -> Result<Pending> {
    let (entries, bad) = state.outbox(chief)?;
    let set_aside = bad
        .iter()
        .map(|(path, e)| set_aside_line(path, e))
        .collect();
    let mut pending = Pending {
        ready: Vec::new(),
        running: 0,
        set_aside,
    };
    for entry in entries {
        if entry.delivered_at_us.is_some() || state.delivery_claimed(chief, &entry) {
            continue;
        }
        let done_path = state.done_path(&entry.task_id);
        let done = match read_json::<Done>(&done_path) {
            Ok(Some(done)) => done,
            Ok(None) => {
                pending.running += 1;
                continue;
            }
            Err(e) => unreadable(&entry, set_aside_line(&done_path, &e)),
        };
        let result_path = state.result_path(&entry.task_id);
        let (done, answer) = match done.outcome {
            Outcome::Ok => match read_optional(&result_path) {
                Ok(bytes) => (
                    done,
                    bytes.map(|b| String::from_utf8_lossy(&b).into_owned()),
                ),
                Err(e) => (unreadable(&entry, set_aside_line(&result_path, &e)), None),
            },
            _ => (done, None),
        };
        pending.ready.push(Ready {
            entry,
            done,
            answer,
        });
    }
    Ok(pending)
}

/// The failure delivered in place of a result that cannot be read.
fn unreadable(entry: &OutboxEntry, why: String) -> Done {
    let mut done = Done::finished(
        entry.task_id.clone(),
        Outcome::Failed,
        Some(format!("its result cannot be read: {why}")),
        entry.queued_at_us,
    );
    done.finished_by = FinishedBy::Coordinator;
    done
}

/// The results as text for the chief: a header, the entries set aside, then one section
/// per task.
pub fn text(ready: &[Ready], running: usize, set_aside: &[String]) -> String {
    let still = if running > 0 {
        format!(", {running} still running")
    } else {
        String::new()
    };
    let mut out = format!("[background results: {} finished{still}]\n", ready.len());
    for line in set_aside {
        out.push_str(&format!("[an unreadable outbox entry: {line}]\n"));
    }
    for r in ready {
        let took = r.done.finished_at_us.saturating_sub(r.done.created_at_us);
        // Issue 15: what the task changed on a worktree agent's branch.
        let changes = match &r.done.changes {
            Some(c) if c.files > 0 => format!(" · {} file(s) changed on {}", c.files, c.branch),
            _ => String::new(),
        };
        out.push_str(&format!(
            "\n## @{} · task {} · {} · {}{changes} · {}\n",
            r.entry.agent,
            r.entry.task_id,
            r.done.outcome,
            human_us(took),
            r.entry.title
        ));
        match (&r.answer, &r.done.reason) {
            (Some(answer), _) => out.push_str(answer.trim_end_matches('\n')),
            (None, reason) => out.push_str(&format!(
                "({}: {})",
                r.done.outcome,
                reason.as_deref().unwrap_or("no reason recorded")
            )),
        }
        out.push('\n');
    }
    out.trim_end().to_owned()
}

/// Claims the ready results for delivery and marks them delivered. Only the claimed
/// ones are returned: of two deliverers running at once (a hook and `results`, say),
/// each result goes to exactly one.
pub fn take(state: &StateDir, chief: &ChiefId, ready: Vec<Ready>) -> Result<Vec<Ready>> {
    let mut taken = Vec::new();
    for r in ready {
        if state.claim_delivery(chief, &r.entry)? {
            state.mark_delivered(chief, &r.entry)?;
            taken.push(r);
        }
    }
    Ok(taken)
}

/// What one `results` call delivered: the verb behind the shell's `results` and the
/// MCP tool of the same name.
pub struct Taken {
    pub chief: ChiefId,
    pub ready: Vec<Ready>,
    /// The chief's background tasks still running.
    pub running: usize,
    /// Outbox entries that could not be read, one line each (see [`Pending`]).
    pub set_aside: Vec<String>,
}

/// Takes `chief`'s finished results for delivery (each is delivered exactly once).
pub fn collect(state: &StateDir, chief: &ChiefId) -> Result<Taken> {
    let pending = ready(state, chief)?;
    let ready = take(state, chief, pending.ready)?;
    Ok(Taken {
        chief: chief.clone(),
        ready,
        running: pending.running,
        set_aside: pending.set_aside,
    })
}

/// Takes the one result of background task `id`, from whichever chief's outbox holds
/// it (`results --ticket`): for a shell that has no chief of its own.
pub fn collect_ticket(state: &StateDir, id: &TaskId) -> Result<Taken> {
    for chief in state.chiefs()? {
        let (entries, _) = state.outbox(&chief)?;
        let Some(entry) = entries.into_iter().find(|e| e.task_id == *id) else {
            continue;
        };
        if entry.delivered_at_us.is_some() || state.delivery_claimed(&chief, &entry) {
            anyhow::bail!(
                "the result of task {id} was delivered already (to chief {})",
                chief.as_str()
            );
        }
        let mut pending = ready(state, &chief)?;
        pending.ready.retain(|r| r.entry.task_id == *id);
        if pending.ready.is_empty() {
            anyhow::bail!("task {id} is still running; its result comes when it is done");
        }
        let ready = take(state, &chief, pending.ready)?;
        return Ok(Taken {
            chief,
            ready,
            running: 0,
            set_aside: pending.set_aside,
        });
    }
    anyhow::bail!("no background task {id} (a ticket is the id `send --background` printed)")
}

/// Chiefs other than `chief` with finished, undelivered results, and how many each.
pub fn waiting_elsewhere(state: &StateDir, chief: &ChiefId) -> Vec<(ChiefId, usize)> {
    let mut out = Vec::new();
    for other in state.chiefs().unwrap_or_default() {
        if other == *chief {
            continue;
        }
        let Ok((entries, _)) = state.outbox(&other) else {
            continue;
        };
        let n = entries
            .iter()
            .filter(|e| e.delivered_at_us.is_none() && !state.delivery_claimed(&other, e))
            .filter(|e| state.done_path(&e.task_id).exists())
            .count();
        if n > 0 {
            out.push((other, n));
        }
    }
    out
}

impl Taken {
    /// The results as one JSON document (`results --json`).
    pub fn json(&self) -> serde_json::Value {
        let items: Vec<serde_json::Value> = self
            .ready
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
        serde_json::json!({
            "version": 1, "chief": self.chief.as_str(), "results": items, "running": self.running,
            "set_aside": self.set_aside,
        })
    }

    /// The results as text (`results`).
    pub fn text(&self) -> String {
        if self.ready.is_empty() && self.set_aside.is_empty() {
            format!("no background results yet ({} still running)", self.running)
        } else {
            text(&self.ready, self.running, &self.set_aside)
        }
    }
}
