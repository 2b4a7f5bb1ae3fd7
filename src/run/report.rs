//! The run's report, in markdown: the goal, the plan, each task's outcome, worker,
//! attempts, duration and result, then the failures and what they blocked, then the
//! totals (tokens included, where Claude Code reported them) and, with `--worktrees`,
//! each worker's branch and diff stat. Printed at the end and kept as `report.md`.

use std::collections::HashMap;
use std::fmt::Write as _;

use crate::board::TaskView;
use crate::board::report::dependency_order;
use crate::time::human_us;

use super::folder::{Attempt, DriverSpec, RunMeta, Tokens};

/// A worker's branch, for the report of a `--worktrees` run.
#[derive(Clone, Debug)]
pub struct Branch {
    pub worker: String,
    pub branch: String,
    pub stat: String,
}

/// Counts of a finished run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    pub total: usize,
    pub done: usize,
    pub failed: usize,
    pub blocked: usize,
    pub open: usize,
}

impl Counts {
    pub fn of(views: &[TaskView]) -> Self {
        let mut c = Counts {
            total: views.len(),
            ..Default::default()
        };
        for v in views {
            match v.shown() {
                "done" => c.done += 1,
                "failed" | "cancelled" => c.failed += 1,
                "blocked" => c.blocked += 1,
                _ => c.open += 1,
            }
        }
        c
    }
}

/// Renders the report.
pub fn render(
    meta: &RunMeta,
    board_name: &str,
    views: &[TaskView],
    attempts: &[Attempt],
    branches: &[Branch],
    wall_us: u64,
) -> String {
    let mut by_task: HashMap<&str, Vec<&Attempt>> = HashMap::new();
    for a in attempts {
        by_task.entry(a.task.as_str()).or_default().push(a);
    }
    let counts = Counts::of(views);
    let ordered = dependency_order(views);
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# Run {}: {}\n",
        meta.id,
        meta.goal.lines().next().unwrap_or("")
    );
    let driver = match &meta.driver {
        DriverSpec::Claude { .. } => "Claude Code (`claude -p`)".to_owned(),
        DriverSpec::Exec { command } => format!("`{command}`"),
        DriverSpec::Agents { .. } => "persistent agents".to_owned(),
    };
    let _ = writeln!(
        out,
        "- Outcome: **{}** ({}/{} done, {} failed, {} blocked{})",
        meta.state.as_str(),
        counts.done,
        counts.total,
        counts.failed,
        counts.blocked,
        if counts.open > 0 {
            format!(", {} not run", counts.open)
        } else {
            String::new()
        }
    );
    let _ = writeln!(
        out,
        "- Workers: {} × {driver}, in `{}`",
        meta.workers.len(),
        meta.project.display()
    );
    let _ = writeln!(
        out,
        "- Limits: {} per task, {} retr{}",
        super::scheduler::human_ms(meta.timeout_ms),
        meta.retries,
        if meta.retries == 1 { "y" } else { "ies" }
    );
    let _ = writeln!(
        out,
        "- Board: `{board_name}` (`claude-editor-hook board --board {board_name} report`)"
    );
    if meta.goal.lines().count() > 1 {
        let _ = writeln!(out, "\n## Goal\n\n{}", meta.goal.trim_end());
    }

    let _ = writeln!(out, "\n## Plan\n");
    let _ = writeln!(out, "| task | title | depends on | priority | role |");
    let _ = writeln!(out, "|---|---|---|---|---|");
    for v in &ordered {
        let t = &v.task;
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} |",
            t.id,
            cell(&t.title),
            if t.deps.is_empty() {
                "–".to_owned()
            } else {
                t.deps.join(", ")
            },
            t.priority,
            t.role.as_deref().unwrap_or("–")
        );
    }

    let _ = writeln!(out, "\n## Tasks\n");
    let mut tokens = Tokens::default();
    let mut any_tokens = false;
    let mut cost = 0.0;
    for v in &ordered {
        let t = &v.task;
        let tries = by_task.get(t.id.as_str()).map(Vec::as_slice).unwrap_or(&[]);
        let _ = writeln!(out, "### {} {} — {}\n", t.id, t.title, v.shown());
        let duration = tries
            .last()
            .filter(|a| a.outcome == "done")
            .map(|a| human_us(a.ended_at_us.saturating_sub(a.started_at_us)));
        let mut line = Vec::new();
        if let Some(w) = &t.worker {
            line.push(format!("worker {w}"));
        }
        line.push(format!("attempts {}", t.attempts));
        if let Some(d) = duration {
            line.push(format!("duration {d}"));
        }
        let mut task_tokens = Tokens::default();
        let mut has_tokens = false;
        for a in tries {
            if let Some(tk) = &a.tokens {
                task_tokens.add(tk);
                has_tokens = true;
            }
            cost += a.cost_usd.unwrap_or(0.0);
        }
        if has_tokens {
            line.push(format!(
                "tokens {} in, {} out",
                task_tokens.input + task_tokens.cache_creation + task_tokens.cache_read,
                task_tokens.output
            ));
            tokens.add(&task_tokens);
            any_tokens = true;
        }
        let _ = writeln!(out, "- {}", line.join(" · "));
        for a in tries.iter().filter(|a| a.outcome != "done") {
            let _ = writeln!(
                out,
                "- attempt {} on {}: {}{}",
                a.attempt,
                a.worker,
                a.outcome,
                a.reason
                    .as_deref()
                    .map(|r| format!(" — {}", first_line(r)))
                    .unwrap_or_default()
            );
        }
        if let Some(why) = &v.blocked {
            let _ = writeln!(out, "- {why}");
        } else if t.status == crate::board::Status::Failed
            && let Some(r) = &t.reason
        {
            let _ = writeln!(out, "- failed: {}", first_line(r));
        }
        if let Some(result) = t.result.as_deref().filter(|r| !r.trim().is_empty()) {
            let _ = writeln!(out, "\n{}", quote(result));
        }
        out.push('\n');
    }

    let failed: Vec<&&TaskView> = ordered
        .iter()
        .filter(|v| matches!(v.shown(), "failed" | "cancelled"))
        .collect();
    if !failed.is_empty() {
        let _ = writeln!(out, "## Failures\n");
        for v in failed {
            let blocked: Vec<&str> = ordered
                .iter()
                .filter(|b| {
                    b.blocked
                        .as_deref()
                        .is_some_and(|r| r.starts_with(&format!("blocked by {} ", v.task.id)))
                })
                .map(|b| b.task.id.as_str())
                .collect();
            let _ = writeln!(
                out,
                "- **{}** {}: {}{}",
                v.task.id,
                v.task.title,
                first_line(v.task.reason.as_deref().unwrap_or("no reason given")),
                if blocked.is_empty() {
                    String::new()
                } else {
                    format!(". Blocked: {}", blocked.join(", "))
                }
            );
        }
        out.push('\n');
    }

    if !branches.is_empty() {
        let _ = writeln!(out, "## Branches\n");
        for b in branches {
            let _ = writeln!(out, "- {}: `{}`", b.worker, b.branch);
            if !b.stat.trim().is_empty() {
                let _ = writeln!(out, "\n```\n{}\n```\n", b.stat.trim_end());
            }
        }
        out.push('\n');
    }

    let _ = writeln!(out, "## Totals\n");
    let _ = writeln!(
        out,
        "- Tasks: {} · done {} · failed {} · blocked {}{}",
        counts.total,
        counts.done,
        counts.failed,
        counts.blocked,
        if counts.open > 0 {
            format!(" · not run {}", counts.open)
        } else {
            String::new()
        }
    );
    let _ = writeln!(
        out,
        "- Attempts: {} · wall time {}",
        attempts.len(),
        human_us(wall_us)
    );
    if any_tokens {
        let _ = writeln!(
            out,
            "- Tokens: {} input ({} cache read, {} cache write), {} output{}",
            tokens.input + tokens.cache_creation + tokens.cache_read,
            tokens.cache_read,
            tokens.cache_creation,
            tokens.output,
            if cost > 0.0 {
                format!(" · cost ${cost:.4}")
            } else {
                String::new()
            }
        );
    } else {
        let _ = writeln!(out, "- Tokens: not reported by the workers");
    }
    out
}

fn first_line(s: &str) -> &str {
    s.lines()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("")
        .trim()
}

fn cell(s: &str) -> String {
    s.replace('|', "\\|")
}

/// The text as a markdown block quote, so a result's own headings stay inside it.
fn quote(s: &str) -> String {
    s.trim_end()
        .lines()
        .map(|l| {
            if l.is_empty() {
                ">".to_owned()
            } else {
                format!("> {l}")
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}
