//! What the board says about itself: the derived `ready` and `blocked` states, `status`
//! (counts and the ready queue) and `report` (what the leader reads).
//!
//! `blocked` is never stored: an open task is blocked when a dependency failed or was
//! cancelled, or is blocked itself, and the reason names the task at the root. A `retry`
//! of that task therefore unblocks everything below it at once.

use std::collections::{BinaryHeap, HashMap};

use anyhow::Result;
use serde::Serialize;

use super::store::{Board, Note, Status, Task};
use crate::time::human_us;

/// A task with its derived state.
#[derive(Clone, Debug, Serialize)]
pub struct TaskView {
    #[serde(flatten)]
    pub task: Task,
    /// Open with every dependency done: the next claim may take it.
    pub ready: bool,
    /// Why an open task cannot become ready (a dependency failed or was cancelled).
    pub blocked: Option<String>,
}

impl TaskView {
    /// The status as shown: the stored one, or `ready` / `blocked` for an open task.
    pub fn shown(&self) -> &'static str {
        match (self.task.status, self.ready, &self.blocked) {
            (Status::Open, _, Some(_)) => "blocked",
            (Status::Open, true, None) => "ready",
            (s, _, _) => s.as_str(),
        }
    }

    /// Returns true if and only if a worker with `roles` may take this task.
    pub fn matches(&self, roles: &[String]) -> bool {
        roles.is_empty() || self.task.role.as_ref().is_none_or(|r| roles.contains(r))
    }
}

/// Derives `ready` and `blocked` for every task.
pub fn views(tasks: Vec<Task>) -> Vec<TaskView> {
    let index: HashMap<&str, usize> = tasks
        .iter()
        .enumerate()
        .map(|(i, t)| (t.id.as_str(), i))
        .collect();
    let mut blocked: Vec<Option<Option<String>>> = vec![None; tasks.len()];
    fn block(
        i: usize,
        tasks: &[Task],
        index: &HashMap<&str, usize>,
        memo: &mut [Option<Option<String>>],
    ) -> Option<String> {
        if let Some(known) = &memo[i] {
            return known.clone();
        }
        // Cycles are refused when tasks are added; this guards a hand-edited file.
        memo[i] = Some(None);
        let mut why = None;
        for d in &tasks[i].deps {
            let Some(&j) = index.get(d.as_str()) else {
                continue;
            };
            let dep = &tasks[j];
            why = match dep.status {
                Status::Failed | Status::Cancelled => Some(format!(
                    "{} {}{}",
                    dep.id,
                    dep.status,
                    dep.reason
                        .as_deref()
                        .map(|r| format!(": {}", first_line(r)))
                        .unwrap_or_default()
                )),
                Status::Open => block(j, tasks, index, memo).map(|r| {
                    if r.starts_with("blocked by") {
                        r
                    } else {
                        format!("blocked by {r}")
                    }
                }),
                _ => None,
            };
            if why.is_some() {
                break;
            }
        }
        let why = why.map(|w| {
            if w.starts_with("blocked by") {
                w
            } else {
                format!("blocked by {w}")
            }
        });
        memo[i] = Some(why.clone());
        why
    }
    for i in 0..tasks.len() {
        block(i, &tasks, &index, &mut blocked);
    }
    let done: Vec<bool> = tasks.iter().map(|t| t.status == Status::Done).collect();
    tasks
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let blocked = if t.status == Status::Open {
                blocked[i].clone().flatten()
            } else {
                None
            };
            let ready = t.status == Status::Open
                && t.deps
                    .iter()
                    .all(|d| index.get(d.as_str()).is_some_and(|&j| done[j]));
            TaskView {
                task: t.clone(),
                ready,
                blocked,
            }
        })
        .collect()
}

/// The tasks in dependency order: every task after its dependencies, ties broken by
/// priority, then by the order they were added in.
pub fn dependency_order(views: &[TaskView]) -> Vec<&TaskView> {
    let index: HashMap<&str, usize> = views
        .iter()
        .enumerate()
        .map(|(i, v)| (v.task.id.as_str(), i))
        .collect();
    let mut waiting: Vec<usize> = views
        .iter()
        .map(|v| {
            v.task
                .deps
                .iter()
                .filter(|d| index.contains_key(d.as_str()))
                .count()
        })
        .collect();
    let mut dependents: Vec<Vec<usize>> = vec![Vec::new(); views.len()];
    for (i, v) in views.iter().enumerate() {
        for d in &v.task.deps {
            if let Some(&j) = index.get(d.as_str()) {
                dependents[j].push(i);
            }
        }
    }
    let key = |i: usize| std::cmp::Reverse((views[i].task.priority, views[i].task.seq, i));
    let mut heap: BinaryHeap<_> = (0..views.len())
        .filter(|&i| waiting[i] == 0)
        .map(key)
        .collect();
    let mut out = Vec::with_capacity(views.len());
    while let Some(std::cmp::Reverse((_, _, i))) = heap.pop() {
        out.push(&views[i]);
        for &j in &dependents[i] {
            waiting[j] -= 1;
            if waiting[j] == 0 {
                heap.push(key(j));
            }
        }
    }
    out
}

/// `status`: counts per shown status and the ready queue.
#[derive(Clone, Debug, Serialize)]
pub struct StatusSummary {
    pub board: String,
    pub goal: String,
    pub total: usize,
    pub open: usize,
    pub ready: usize,
    pub blocked: usize,
    pub claimed: usize,
    pub done: usize,
    pub failed: usize,
    pub cancelled: usize,
    /// Ready task ids in the order claims take them.
    pub queue: Vec<String>,
    /// Who holds what.
    pub claims: Vec<ClaimView>,
    /// Nothing is open or claimed that could still make progress.
    pub finished: bool,
}

/// A claim as `status` shows it.
#[derive(Clone, Debug, Serialize)]
pub struct ClaimView {
    pub id: String,
    pub title: String,
    pub worker: String,
    pub claimed_at_us: Option<u64>,
    pub lease_until_us: Option<u64>,
    pub host_pid: Option<i64>,
}

/// Returns true if and only if something a worker with `roles` may take is claimed, or
/// open and not blocked: then a task can (still) become ready for it.
pub fn can_progress(views: &[TaskView], roles: &[String]) -> bool {
    views.iter().any(|v| {
        v.matches(roles)
            && (v.task.status == Status::Claimed
                || (v.task.status == Status::Open && v.blocked.is_none()))
    })
}

impl StatusSummary {
    pub fn from_views(board: &Board, views: &[TaskView]) -> Result<Self> {
        let count = |s: &str| views.iter().filter(|v| v.shown() == s).count();
        let mut queue: Vec<&TaskView> = views.iter().filter(|v| v.ready).collect();
        queue.sort_by_key(|v| (v.task.priority, v.task.seq));
        Ok(Self {
            board: board.path().to_string(),
            goal: board.goal()?,
            total: views.len(),
            open: count("open"),
            ready: count("ready"),
            blocked: count("blocked"),
            claimed: count("claimed"),
            done: count("done"),
            failed: count("failed"),
            cancelled: count("cancelled"),
            queue: queue.iter().map(|v| v.task.id.clone()).collect(),
            claims: views
                .iter()
                .filter(|v| v.task.status == Status::Claimed)
                .map(|v| ClaimView {
                    id: v.task.id.clone(),
                    title: v.task.title.clone(),
                    worker: v.task.worker.clone().unwrap_or_default(),
                    claimed_at_us: v.task.claimed_at_us,
                    lease_until_us: v.task.lease_until_us,
                    host_pid: v.task.host_pid,
                })
                .collect(),
            finished: !can_progress(views, &[]),
        })
    }

    /// One line: `board GOAL: 3/20 done, 2 claimed, 4 ready, 1 failed`.
    pub fn line(&self) -> String {
        let mut parts = vec![format!("{}/{} done", self.done, self.total)];
        for (n, what) in [
            (self.claimed, "claimed"),
            (self.ready, "ready"),
            (self.open, "waiting"),
            (self.blocked, "blocked"),
            (self.failed, "failed"),
            (self.cancelled, "cancelled"),
        ] {
            if n > 0 {
                parts.push(format!("{n} {what}"));
            }
        }
        if self.finished && self.total > 0 {
            parts.push("finished".into());
        }
        parts.join(", ")
    }

    /// The text `board status` prints.
    pub fn text(&self) -> String {
        let mut out = format!(
            "board {}\ngoal: {}\n{}\n",
            self.board,
            first_line(&self.goal),
            self.line()
        );
        if !self.queue.is_empty() {
            out.push_str(&format!("ready queue: {}\n", self.queue.join(" ")));
        }
        for c in &self.claims {
            let until = match (c.host_pid, c.lease_until_us) {
                (Some(pid), _) => format!("while agent-wrap pid {pid} lives"),
                (None, Some(u)) => format!(
                    "lease {} left",
                    human_us(u.saturating_sub(crate::time::now_us()))
                ),
                _ => String::new(),
            };
            out.push_str(&format!(
                "claimed: {} {} by {} ({until})\n",
                c.id, c.title, c.worker
            ));
        }
        out
    }
}

/// `report`: the goal, every task in dependency order with its outcome, then the
/// failures and what they blocked, and the discoveries.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    pub board: String,
    pub goal: String,
    pub plan: String,
    pub summary: String,
    pub tasks: Vec<TaskView>,
    pub failures: Vec<Failure>,
    pub notes: Vec<Note>,
}

/// A failed or cancelled task and the open tasks it blocks.
#[derive(Clone, Debug, Serialize)]
pub struct Failure {
    pub id: String,
    pub title: String,
    pub status: Status,
    pub reason: Option<String>,
    pub blocks: Vec<String>,
}

impl Board {
    /// Every task with its derived state, after reopening lapsed claims.
    pub fn views(&mut self) -> Result<Vec<TaskView>> {
        self.reap()?;
        Ok(views(self.tasks()?))
    }

    /// `status`.
    pub fn status(&mut self) -> Result<StatusSummary> {
        let views = self.views()?;
        StatusSummary::from_views(self, &views)
    }

    /// `report`.
    pub fn report(&mut self) -> Result<Report> {
        let views = self.views()?;
        let summary = StatusSummary::from_views(self, &views)?.line();
        let ordered: Vec<TaskView> = dependency_order(&views).into_iter().cloned().collect();
        let mut failures = Vec::new();
        for v in &ordered {
            if !matches!(v.task.status, Status::Failed | Status::Cancelled) {
                continue;
            }
            let blocks = blocked_by(&ordered, &v.task.id);
            failures.push(Failure {
                id: v.task.id.clone(),
                title: v.task.title.clone(),
                status: v.task.status,
                reason: v.task.reason.clone(),
                blocks,
            });
        }
        Ok(Report {
            board: self.path().to_string(),
            goal: self.goal()?,
            plan: self.plan()?,
            summary,
            tasks: ordered,
            failures,
            notes: self.notes()?,
        })
    }
}

/// The open tasks that (transitively) need `root`.
fn blocked_by(views: &[TaskView], root: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut frontier = vec![root.to_owned()];
    while let Some(id) = frontier.pop() {
        for v in views {
            if v.task.status == Status::Open
                && v.task.deps.contains(&id)
                && !out.contains(&v.task.id)
            {
                out.push(v.task.id.clone());
                frontier.push(v.task.id.clone());
            }
        }
    }
    out.sort_by_key(|i| super::check::natural_key(i));
    out
}

impl Report {
    /// The text `board report` prints, and `@board` puts in the chief's box.
    pub fn text(&self) -> String {
        let mut out = format!("# {}\n\n", first_line(&self.goal));
        if !self.plan.trim().is_empty() {
            out.push_str(&format!("{}\n\n", self.plan.trim_end()));
        }
        out.push_str(&format!("Progress: {}\n\n", self.summary));
        for v in &self.tasks {
            out.push_str(&task_entry(v));
        }
        if !self.failures.is_empty() {
            out.push_str("## Failures\n\n");
            for f in &self.failures {
                out.push_str(&format!(
                    "- {} {} ({}){}{}\n",
                    f.id,
                    f.title,
                    f.status,
                    f.reason
                        .as_deref()
                        .map(|r| format!(": {}", first_line(r)))
                        .unwrap_or_default(),
                    if f.blocks.is_empty() {
                        String::new()
                    } else {
                        format!("; blocks {}", f.blocks.join(", "))
                    }
                ));
            }
            out.push('\n');
        }
        if !self.notes.is_empty() {
            out.push_str("## Discoveries\n\n");
            for n in &self.notes {
                out.push_str(&format!(
                    "- {} ({}): {}\n",
                    n.author,
                    stamp(n.at_us),
                    n.text
                ));
            }
        }
        out
    }
}

/// One task of a report: a heading line, then its result or reason.
pub fn task_entry(v: &TaskView) -> String {
    let t = &v.task;
    let mut head = format!("## {} {} [{}]", t.id, t.title, v.shown());
    if let Some(w) = &t.worker {
        head.push_str(&format!(" by {w}"));
    }
    if let (Some(c), Some(f)) = (t.claimed_at_us, t.finished_at_us) {
        head.push_str(&format!(" in {}", human_us(f.saturating_sub(c))));
    }
    if t.attempts > 1 {
        head.push_str(&format!(", {} attempts", t.attempts));
    }
    let mut out = format!("{head}\n");
    match (t.status, &t.result, &v.blocked, &t.reason) {
        (Status::Done, Some(r), _, _) => out.push_str(&format!("{}\n", r.trim_end())),
        (_, _, Some(b), _) => out.push_str(&format!("({b})\n")),
        (Status::Failed | Status::Cancelled, _, _, Some(r)) => {
            out.push_str(&format!("({})\n", r.trim_end()))
        }
        _ => {}
    }
    out.push('\n');
    out
}

fn first_line(s: &str) -> &str {
    s.lines().next().unwrap_or("")
}

/// `HH:MM:SS` UTC of a timestamp: short, and the same on every machine.
pub fn stamp(us: u64) -> String {
    let s = us / 1_000_000;
    format!("{:02}:{:02}:{:02}", (s / 3600) % 24, (s / 60) % 60, s % 60)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task(id: &str, status: Status, deps: &[&str], seq: i64) -> Task {
        Task {
            id: id.into(),
            title: id.into(),
            body: String::new(),
            priority: 3,
            deps: deps.iter().map(|d| d.to_string()).collect(),
            role: None,
            context: None,
            status,
            worker: None,
            host_pid: None,
            lease_until_us: None,
            attempts: 0,
            result: None,
            reason: Some("boom".into()),
            created_at_us: 0,
            claimed_at_us: None,
            finished_at_us: None,
            seq,
        }
    }

    #[test]
    fn failures_block_their_dependents_transitively() {
        let v = views(vec![
            task("a", Status::Failed, &[], 1),
            task("b", Status::Open, &["a"], 2),
            task("c", Status::Open, &["b"], 3),
            task("d", Status::Done, &[], 4),
            task("e", Status::Open, &["d"], 5),
        ]);
        assert_eq!(v[1].blocked.as_deref(), Some("blocked by a failed: boom"));
        assert_eq!(v[2].blocked.as_deref(), Some("blocked by a failed: boom"));
        assert!(v[4].ready && v[4].blocked.is_none());
        assert!(can_progress(&v, &[]));
        assert_eq!(blocked_by(&v, "a"), ["b", "c"]);
    }

    #[test]
    fn dependency_order_puts_dependencies_first() {
        let v = views(vec![
            task("c", Status::Open, &["a", "b"], 1),
            task("b", Status::Open, &["a"], 2),
            task("a", Status::Open, &[], 3),
        ]);
        let order: Vec<&str> = dependency_order(&v)
            .iter()
            .map(|v| v.task.id.as_str())
            .collect();
        assert_eq!(order, ["a", "b", "c"]);
    }
}
