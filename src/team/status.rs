//! `status` (the shell) and `team_status` (MCP): every agent with its state, task,
//! queue, window and worktree, the background tickets, and the board's progress, as
//! one JSON document and as the table the shell prints.

use anyhow::Result;
use serde_json::{Value, json};

use crate::state::{AgentInfo, StateDir, pending};
use crate::time::{human_us, now_us};

/// The agent's worktree, branch and ahead/behind counts against its base (issue 15);
/// null for an agent without one.
pub fn worktree_json(name: &crate::state::AgentName) -> serde_json::Value {
    let Ok(Some(rec)) = crate::worktree::lookup(name) else {
        return serde_json::Value::Null;
    };
    let mut doc = json!({ "path": rec.path, "branch": rec.branch, "base": rec.base });
    match rec.ahead_behind() {
        Ok((ahead, behind)) => {
            doc["ahead"] = ahead.into();
            doc["behind"] = behind.into();
        }
        Err(e) => doc["error"] = format!("{e:#}").into(),
    }
    doc
}

/// A queued task as `status` lists it: its id, title and when it was queued (the inbox
/// entry's name says when; the envelope gives the title).
fn queued_json(state: &StateDir, entry: &std::path::Path, id: &crate::state::TaskId) -> Value {
    let queued_at_us = entry
        .file_name()
        .and_then(|n| n.to_str())
        .and_then(|n| n.split('-').next())
        .and_then(|t| t.parse::<u64>().ok());
    let title = crate::state::read_json::<crate::state::TaskEnvelope>(&state.task_path(id))
        .ok()
        .flatten()
        .map(|t| t.title);
    json!({ "id": id, "title": title, "queued_at_us": queued_at_us })
}

/// The team's state as one document (`status --json`).
pub fn snapshot(state: &StateDir) -> Result<Value> {
    snapshot_with(state, &mut worktree_json)
}

/// [`snapshot`], with each agent's worktree document from `worktree` (which runs git
/// when the agent has a worktree): `serve`, which takes many snapshots, keeps them a
/// little while.
pub fn snapshot_with(
    state: &StateDir,
    worktree: &mut dyn FnMut(&crate::state::AgentName) -> Value,
) -> Result<Value> {
    let mut rows = Vec::new();
    for name in state.agent_names()? {
        rows.push(match AgentInfo::load(state, &name) {
            Ok(Some(info)) => {
                let s = info.status.as_ref();
                // An offline agent has no current task and no queue: its host failed
                // what was queued when it stopped.
                let queue: Vec<Value> = match info.host_pid {
                    Some(_) => pending(state, &name)
                        .unwrap_or_default()
                        .into_iter()
                        .map(|(entry, id)| queued_json(state, &entry, &id))
                        .collect(),
                    None => Vec::new(),
                };
                // An offline agent with an unreadable status file: nothing to show but
                // the error (a live one repairs it, and its row shows what it can).
                if info.host_pid.is_none()
                    && let Some(why) = &info.status_error
                {
                    rows.push(json!({ "name": name, "status": "error", "error": why }));
                    continue;
                }
                json!({
                    "name": name,
                    "status": info.state(),
                    "host_pid": info.host_pid,
                    "task": info.task(),
                    "queued": queue.len(),
                    "queue": queue,
                    "status_error": info.status_error,
                    "waiting_for": s.and_then(|s| s.waiting_for.as_deref()).filter(|_| info.state() == crate::state::AgentState::Waiting),
                    "error": s.and_then(|s| s.error.as_deref()),
                    "last_active_us": s.map(|s| s.last_active_us),
                    "tmux": s.and_then(|s| s.tmux.as_ref()),
                    "driver": s.map(|s| s.driver.as_str()),
                    "roles": s.map(|s| &s.roles),
                    "recent": s.map(|s| &s.recent),
                    "claude_session_id": s.and_then(|s| s.claude_session_id.as_deref()),
                    "tokens": s.and_then(|s| s.tokens),
                    "cost_usd": s.and_then(|s| s.cost_usd),
                    "restarted": s.and_then(|s| s.restarted.as_ref()),
                    "worktree": worktree(&name),
                })
            }
            Ok(None) => continue,
            Err(e) => json!({ "name": name, "status": "error", "error": format!("{e:#}") }),
        });
    }
    // Background tickets, per chief: still running, or finished and not yet delivered.
    let mut outbox = Vec::new();
    for chief in state.chiefs()? {
        let (entries, unreadable) = state.outbox(&chief)?;
        for (_, e) in unreadable {
            eprintln!(
                "claude-editor-hook: outbox of chief {}: {e:#}",
                chief.as_str()
            );
        }
        for entry in entries {
            if entry.delivered_at_us.is_some() {
                continue;
            }
            let done = state.done_path(&entry.task_id).exists();
            outbox.push(json!({
                "chief": chief.as_str(), "task_id": entry.task_id, "agent": entry.agent,
                "title": entry.title, "state": if done { "ready" } else { "running" },
            }));
        }
    }
    let board = board_progress();
    Ok(
        json!({ "version": 1, "state_dir": state.root(), "agents": rows, "background": outbox,
        "board": board.as_ref().map(|(path, s)| json!({ "path": path, "progress": s.line(), "summary": s })) }),
    )
}

/// `s` cut to `n` characters, with `…` when it was longer.
fn cut(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        return s.to_owned();
    }
    let mut cut: String = s.chars().take(n - 1).collect();
    cut.push('…');
    cut
}

/// The table `status` prints, from a [`snapshot`]; `wide` keeps task titles whole.
pub fn text(doc: &Value, wide: bool) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let text = |v: &Value| v.as_str().unwrap_or("").to_owned();
    if let Some(progress) = doc["board"]["progress"].as_str() {
        let _ = writeln!(out, "board {}: {progress}", text(&doc["board"]["path"]));
    }
    let rows = doc["agents"].as_array().cloned().unwrap_or_default();
    if rows.is_empty() {
        let _ = writeln!(
            out,
            "no agents in {} (start one with `agent-wrap NAME`)",
            text(&doc["state_dir"])
        );
        return out;
    }
    // Columns as wide as their widest cell; a task title is cut at 40 characters unless
    // `wide`.
    let mut table: Vec<[String; 8]> = vec![
        [
            "AGENT", "STATUS", "ROLES", "TASK", "AGE", "QUEUED", "WINDOW", "BRANCH",
        ]
        .map(str::to_owned),
    ];
    let mut errors = Vec::new();
    for row in &rows {
        if row["status"] == "error" {
            errors.push(format!(
                "{:<16} error     {}",
                text(&row["name"]),
                text(&row["error"])
            ));
            continue;
        }
        let task = match &row["task"] {
            Value::Null => "-".to_owned(),
            t => format!("{}: {}", text(&t["id"]), text(&t["title"])),
        };
        let task = if wide { task } else { cut(&task, 40) };
        let age = row["last_active_us"]
            .as_u64()
            .map(|t| human_us(now_us().saturating_sub(t)))
            .unwrap_or_default();
        let roles: Vec<&str> = row["roles"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        let roles = if roles.is_empty() {
            "-".to_owned()
        } else {
            roles.join(",")
        };
        let window = row["tmux"]["window"].as_str().unwrap_or("-").to_owned();
        let wt = &row["worktree"];
        let branch = match (
            wt["branch"].as_str(),
            wt["ahead"].as_u64(),
            wt["behind"].as_u64(),
        ) {
            (Some(b), Some(ahead), Some(behind)) => {
                format!("{b} ↑{ahead} ↓{behind} vs {}", text(&wt["base"]))
            }
            (Some(b), _, _) => format!("{b} ({})", text(&wt["error"])),
            _ => "-".to_owned(),
        };
        table.push([
            text(&row["name"]),
            text(&row["status"]),
            roles,
            task,
            age,
            row["queued"].to_string(),
            window,
            branch,
        ]);
    }
    let widths: Vec<usize> = (0..8)
        .map(|c| {
            table
                .iter()
                .map(|r| r[c].chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    for r in &table {
        let mut line = String::new();
        for (c, cell) in r.iter().enumerate() {
            let pad = widths[c].saturating_sub(cell.chars().count());
            // AGE and QUEUED are numbers: right-aligned.
            if c == 4 || c == 5 {
                line.push_str(&" ".repeat(pad));
                line.push_str(cell);
            } else {
                line.push_str(cell);
                if c < 7 {
                    line.push_str(&" ".repeat(pad));
                }
            }
            if c < 7 {
                line.push_str("  ");
            }
        }
        let _ = writeln!(out, "{}", line.trim_end());
    }
    for e in errors {
        let _ = writeln!(out, "{e}");
    }
    // The queues, task by task: ids to cancel, titles and how long each has waited.
    for row in &rows {
        for q in row["queue"].as_array().into_iter().flatten() {
            let waited = q["queued_at_us"]
                .as_u64()
                .map(|t| human_us(now_us().saturating_sub(t)))
                .unwrap_or_default();
            let title = text(&q["title"]);
            let title = if wide { title } else { cut(&title, 60) };
            let _ = writeln!(
                out,
                "queued for @{}: task {} ({waited}): {title}",
                text(&row["name"]),
                text(&q["id"])
            );
        }
    }
    for row in &rows {
        if let Some(why) = row["status_error"].as_str() {
            let pid = &row["host_pid"];
            let _ = writeln!(
                out,
                "@{}: alive (agent-wrap pid {pid}) but its status file is unreadable: {why}",
                text(&row["name"])
            );
        }
        if let Some(why) = row["waiting_for"].as_str() {
            let _ = writeln!(out, "@{} waits for {why}", text(&row["name"]));
        }
        if let Some(why) = row["error"].as_str().filter(|_| row["status"] != "error") {
            let _ = writeln!(out, "@{}: {why}", text(&row["name"]));
        }
    }
    let mut ready_chiefs = std::collections::BTreeSet::new();
    for t in doc["background"].as_array().into_iter().flatten() {
        let chief = t["chief"].as_str().unwrap_or("");
        if t["state"] == "ready" {
            ready_chiefs.insert(chief.to_owned());
        }
        let _ = writeln!(
            out,
            "background: task {} @{} {} (chief {chief}): {}",
            t["task_id"].as_str().unwrap_or(""),
            t["agent"].as_str().unwrap_or(""),
            t["state"].as_str().unwrap_or(""),
            t["title"].as_str().unwrap_or("")
        );
    }
    // The id to use from any shell.
    for chief in ready_chiefs {
        let _ = writeln!(
            out,
            "results of chief {chief}: `claude-editor-hook results --chief {chief}`"
        );
    }
    out
}

/// The project's board (or `$CLAUDE_EDITOR_HOOK_BOARD`), when there is one. A board that
/// cannot be read shows its error as the progress line rather than failing `status`.
fn board_progress() -> Option<(String, crate::board::StatusSummary)> {
    let spec = std::env::var("CLAUDE_EDITOR_HOOK_BOARD").ok();
    let path = crate::board::BoardPath::resolve(spec.as_deref()).ok()?;
    if !path.exists() {
        return None;
    }
    match crate::board::Board::open(&path).and_then(|mut b| b.status()) {
        Ok(summary) => Some((path.to_string(), summary)),
        Err(e) => {
            eprintln!("claude-editor-hook: board {path}: {e:#}");
            None
        }
    }
}
