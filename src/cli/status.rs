//! `claude-editor-hook status [--json]`.

use anyhow::Result;
use serde_json::json;

use crate::state::{AgentInfo, StateDir, pending};
use crate::time::{human_us, now_us};

/// The agent's worktree, branch and ahead/behind counts against its base (issue 15);
/// null for an agent without one.
fn worktree_json(name: &crate::state::AgentName) -> serde_json::Value {
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

pub fn run(as_json: bool) -> Result<i32> {
    let state = StateDir::from_env()?;
    let mut rows = Vec::new();
    for name in state.agent_names()? {
        rows.push(match AgentInfo::load(&state, &name) {
            Ok(Some(info)) => {
                let s = info.status.as_ref();
                // An offline agent has no current task and no queue: its host failed
                // what was queued when it stopped.
                let queued = match info.host_pid {
                    Some(_) => pending(&state, &name).map(|q| q.len()).unwrap_or(0),
                    None => 0,
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
                    "queued": queued,
                    "status_error": info.status_error,
                    "error": s.and_then(|s| s.error.as_deref()),
                    "last_active_us": s.map(|s| s.last_active_us),
                    "tmux": s.and_then(|s| s.tmux.as_ref()),
                    "driver": s.map(|s| s.driver.as_str()),
                    "roles": s.map(|s| &s.roles),
                    "recent": s.map(|s| &s.recent),
                    "claude_session_id": s.and_then(|s| s.claude_session_id.as_deref()),
                    "tokens": s.and_then(|s| s.tokens),
                    "worktree": worktree_json(&name),
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
    if as_json {
        let doc = json!({ "version": 1, "state_dir": state.root(), "agents": rows, "background": outbox,
            "board": board.as_ref().map(|(path, s)| json!({ "path": path, "progress": s.line(), "summary": s })) });
        println!("{}", serde_json::to_string_pretty(&doc)?);
        return Ok(0);
    }
    if let Some((path, summary)) = &board {
        println!("board {path}: {}", summary.line());
    }
    if rows.is_empty() {
        println!(
            "no agents in {} (start one with `agent-wrap NAME`)",
            state.root().display()
        );
        return Ok(0);
    }
    println!(
        "{:<16} {:<9} {:<40} {:>7} {:>6}  {:<8} BRANCH",
        "AGENT", "STATUS", "TASK", "AGE", "QUEUED", "WINDOW"
    );
    let text = |v: &serde_json::Value| v.as_str().unwrap_or("").to_owned();
    for row in &rows {
        if row["status"] == "error" {
            println!(
                "{:<16} {:<9} {}",
                text(&row["name"]),
                "error",
                text(&row["error"])
            );
            continue;
        }
        let task = match &row["task"] {
            serde_json::Value::Null => "-".to_owned(),
            t => format!("{}: {}", text(&t["id"]), text(&t["title"])),
        };
        let task: String = task.chars().take(40).collect();
        let age = row["last_active_us"]
            .as_u64()
            .map(|t| human_us(now_us().saturating_sub(t)))
            .unwrap_or_default();
        let window = row["tmux"]["window"].as_str().unwrap_or("-");
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
        println!(
            "{:<16} {:<9} {:<40} {:>7} {:>6}  {window:<8} {branch}",
            text(&row["name"]),
            text(&row["status"]),
            task,
            age,
            row["queued"]
        );
    }
    for row in &rows {
        if let Some(why) = row["status_error"].as_str() {
            let pid = &row["host_pid"];
            println!(
                "@{}: alive (agent-wrap pid {pid}) but its status file is unreadable: {why}",
                text(&row["name"])
            );
        }
        if let Some(why) = row["error"].as_str().filter(|_| row["status"] != "error") {
            println!("@{}: {why}", text(&row["name"]));
        }
    }
    for t in &outbox {
        println!(
            "background: task {} @{} {} (chief {}): {}",
            t["task_id"].as_str().unwrap_or(""),
            t["agent"].as_str().unwrap_or(""),
            t["state"].as_str().unwrap_or(""),
            t["chief"].as_str().unwrap_or(""),
            t["title"].as_str().unwrap_or("")
        );
    }
    Ok(0)
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
