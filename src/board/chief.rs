//! The chief's `@board` (Ctrl-G): what the board puts into the chief's prompt box.
//!
//! `@board` gives the status line, the ready queue, and the report of every task that
//! finished since this chief's last `@board` (a cursor per chief, kept in the board's
//! `meta` table), so asking twice never repeats news. `@board add TITLE` adds a task.

use anyhow::{Result, bail};

use super::report::{StatusSummary, task_entry};
use super::store::{Board, NewTask};

/// The text for `@board`, and advances this chief's cursor past what it shows.
pub fn news(board: &mut Board, chief: &str) -> Result<String> {
    let key = format!("chief:{chief}");
    let seen: u64 = board
        .cursor(&key)?
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let views = board.views()?;
    let summary = StatusSummary::from_views(board, &views)?;
    let mut fresh: Vec<_> = views
        .iter()
        .filter(|v| v.task.status.is_final() && v.task.finished_at_us.unwrap_or(0) > seen)
        .collect();
    fresh.sort_by_key(|v| v.task.finished_at_us);
    let mut out = format!(
        "[board · {}] {}\n",
        summary.goal.lines().next().unwrap_or(""),
        summary.line()
    );
    if !summary.queue.is_empty() {
        out.push_str(&format!("ready: {}\n", summary.queue.join(" ")));
    }
    for c in &summary.claims {
        out.push_str(&format!("working: {} {} ({})\n", c.id, c.title, c.worker));
    }
    out.push('\n');
    if fresh.is_empty() {
        out.push_str("No task finished since the last @board.\n");
    } else {
        out.push_str(&format!(
            "Finished since the last @board ({}):\n\n",
            fresh.len()
        ));
        for v in &fresh {
            out.push_str(&task_entry(v));
        }
    }
    let blocked: Vec<_> = views.iter().filter(|v| v.blocked.is_some()).collect();
    for v in blocked {
        out.push_str(&format!(
            "blocked: {} {} ({})\n",
            v.task.id,
            v.task.title,
            v.blocked.as_deref().unwrap_or("")
        ));
    }
    if let Some(last) = fresh.iter().filter_map(|v| v.task.finished_at_us).max() {
        board.set_cursor(&key, &last.to_string())?;
    }
    Ok(out)
}

/// `@board add TITLE\nBODY…`: adds the task and returns the line for the box.
pub fn add(board: &mut Board, text: &str) -> Result<String> {
    let mut lines = text.splitn(2, '\n');
    let title = lines.next().unwrap_or("").trim().to_owned();
    if title.is_empty() {
        bail!("nothing to add: write the task's title after `@board add`");
    }
    let body = lines.next().unwrap_or("").trim().to_owned();
    let id = board.add(&NewTask {
        title: title.clone(),
        body,
        ..Default::default()
    })?;
    Ok(format!("[board] added {id}: {title}\n"))
}
