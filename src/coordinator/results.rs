//! Background results: what a chief's outbox holds, and how it is delivered (`@results`,
//! `claude-editor-hook results`, and the chief-side hooks).

use anyhow::Result;

use crate::state::{ChiefId, Done, OutboxEntry, Outcome, StateDir, read_json, read_optional};
use crate::time::human_us;

/// A finished background task, not delivered yet.
pub struct Ready {
    pub entry: OutboxEntry,
    pub done: Done,
    pub answer: Option<String>,
}

/// The chief's finished, undelivered results, and how many of its tasks still run.
pub fn ready(state: &StateDir, chief: &ChiefId) -> Result<(Vec<Ready>, usize)> {
    let mut ready = Vec::new();
    let mut running = 0;
    for entry in state.outbox(chief)? {
        if entry.delivered_at_us.is_some() || state.delivery_claimed(chief, &entry) {
            continue;
        }
        let Some(done) = read_json::<Done>(&state.done_path(&entry.task_id))? else {
            running += 1;
            continue;
        };
        let answer = match done.outcome {
            Outcome::Ok => read_optional(&state.result_path(&entry.task_id))?
                .map(|b| String::from_utf8_lossy(&b).into_owned()),
            _ => None,
        };
        ready.push(Ready {
            entry,
            done,
            answer,
        });
    }
    Ok((ready, running))
}

/// The results as text for the chief: a header, then one section per task.
pub fn text(ready: &[Ready], running: usize) -> String {
    let still = if running > 0 {
        format!(", {running} still running")
    } else {
        String::new()
    };
    let mut out = format!("[background results: {} finished{still}]\n", ready.len());
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
}

/// Takes `chief`'s finished results for delivery (each is delivered exactly once).
pub fn collect(state: &StateDir, chief: &ChiefId) -> Result<Taken> {
    let (ready, running) = ready(state, chief)?;
    let ready = take(state, chief, ready)?;
    Ok(Taken {
        chief: chief.clone(),
        ready,
        running,
    })
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
        })
    }

    /// The results as text (`results`).
    pub fn text(&self) -> String {
        if self.ready.is_empty() {
            format!("no background results yet ({} still running)", self.running)
        } else {
            text(&self.ready, self.running)
        }
    }
}
