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
