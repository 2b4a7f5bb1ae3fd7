//! The claim: one `BEGIN IMMEDIATE` transaction that reopens dead claims, picks the
//! best ready task for the worker, takes it with a conditional `UPDATE` and checks that
//! exactly one row changed. The write lock is held from `BEGIN` to `COMMIT`, so no
//! other claimer can see or take the same task in between.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Result, bail};
use rusqlite::{OptionalExtension, params};
use serde::Serialize;

use super::check::check_worker;
use super::store::{Board, Task, load};
use crate::time::now_us;

/// Who answers for a claim, which decides when it is given back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Holder {
    /// A worker terminal or script: the claim lapses when its lease runs out unless
    /// renewed.
    Lease(Duration),
    /// A hosted agent: the claim lasts exactly as long as `agent-wrap` `pid` holds its
    /// host lock at `lock` (src/state/lock.rs).
    Host { pid: i32, lock: PathBuf },
}

/// What to claim.
#[derive(Clone, Debug)]
pub struct ClaimRequest {
    pub worker: String,
    /// With roles, only tasks with one of them or with no role; without, any task.
    pub roles: Vec<String>,
    pub holder: Holder,
}

/// A claimed task with what its worker needs to do it.
#[derive(Clone, Debug, Serialize)]
pub struct Claimed {
    pub task: Task,
    /// The board's goal and master plan.
    pub goal: String,
    /// The dependencies, each with its result, in dependency order.
    pub deps: Vec<DepResult>,
    pub board: String,
}

/// A finished dependency's result, as handed to the task that needed it.
#[derive(Clone, Debug, Serialize)]
pub struct DepResult {
    pub id: String,
    pub title: String,
    pub worker: Option<String>,
    pub result: String,
}

impl Claimed {
    /// The task as a prompt: a line naming it, the goal, the results it builds on, then
    /// the task itself.
    pub fn prompt(&self) -> String {
        let mut out = format!(
            "Board task {}: {}\n\nTeam goal:\n{}\n\n",
            self.task.id,
            self.task.title,
            self.goal.trim_end()
        );
        if !self.deps.is_empty() {
            out.push_str("Results of the tasks this one builds on:\n");
            for d in &self.deps {
                out.push_str(&format!(
                    "--- {} ({}{}):\n{}\n",
                    d.id,
                    d.title,
                    d.worker
                        .as_deref()
                        .map(|w| format!(", by {w}"))
                        .unwrap_or_default(),
                    d.result.trim_end()
                ));
            }
            out.push('\n');
        }
        out.push_str(&format!(
            "Your task ({}): {}\n",
            self.task.id, self.task.title
        ));
        if !self.task.body.trim().is_empty() {
            out.push_str(&format!("{}\n", self.task.body.trim_end()));
        }
        if let Some(ctx) = &self.task.context {
            out.push_str(&format!("Context: {ctx}\n"));
        }
        // No trailing newline: a hosted Claude Code's box would keep it as an empty last
        // line of the prompt.
        out.truncate(out.trim_end().len());
        out
    }
}

impl Board {
    /// Claims the highest-priority ready task for `req`: open, every dependency done, the
    /// role matching. `Ok(None)` when none is ready now.
    pub fn claim(&mut self, req: &ClaimRequest) -> Result<Option<Claimed>> {
        self.claim_where(req, None)
    }

    /// Claims task `id` for `req` if it is ready (open, every dependency done, the role
    /// matching); `Ok(None)` when it is not. For a scheduler that picks the task itself
    /// (`run`, src/run/), under the same exactly-once transaction as [`Board::claim`].
    pub fn claim_task(&mut self, id: &str, req: &ClaimRequest) -> Result<Option<Claimed>> {
        self.claim_where(req, Some(id))
    }

    fn claim_where(&mut self, req: &ClaimRequest, only: Option<&str>) -> Result<Option<Claimed>> {
        check_worker(&req.worker)?;
        let roles = roles_json(&req.roles);
        let board = self.path.to_string();
        let tx = self.write()?;
        // The time is read under the write lock: read before it, a claim that waited for
        // the lock while its last dependency was being done could carry a time earlier
        // than that dependency's end (seen in the drain test under load).
        let now = now_us();
        let (lease_us, lease_until, host_pid, host_lock) = match &req.holder {
            Holder::Lease(d) => {
                let us = d.as_micros().clamp(1, super::MAX_LEASE.as_micros()) as i64;
                (Some(us), Some((now as i64).saturating_add(us)), None, None)
            }
            Holder::Host { pid, lock } => {
                (None, None, Some(*pid), Some(lock.display().to_string()))
            }
        };
        super::lease::reap(&tx, now)?;
        let id: Option<String> = tx
            .prepare_cached(
                "UPDATE tasks SET status = 'claimed', worker = ?1, lease_us = ?2,
                   lease_until_us = ?3, host_pid = ?4, host_lock = ?5, claimed_at_us = ?6,
                   attempts = attempts + 1, finished_at_us = NULL
                 WHERE seq = (
                   SELECT seq FROM tasks
                   WHERE status = 'open' AND unmet = 0
                     AND (?8 IS NULL OR id = ?8)
                     AND (json_array_length(?7) = 0 OR role IS NULL
                          OR role IN (SELECT value FROM json_each(?7)))
                   ORDER BY priority, seq LIMIT 1)
                 AND status = 'open'
                 RETURNING id",
            )?
            .query_row(
                params![
                    req.worker,
                    lease_us,
                    lease_until,
                    host_pid,
                    host_lock,
                    now as i64,
                    roles,
                    only
                ],
                |r| r.get(0),
            )
            .optional()?;
        let Some(id) = id else {
            tx.commit()?;
            return Ok(None);
        };
        // RETURNING yields one row per changed row; make sure it was exactly one.
        if tx.changes() != 1 {
            bail!(
                "a claim changed {} tasks instead of one; nothing was claimed",
                tx.changes()
            );
        }
        let task = load(&tx, &id)?.expect("the claimed task exists");
        let mut deps = Vec::with_capacity(task.deps.len());
        for d in &task.deps {
            if let Some(dep) = load(&tx, d)? {
                deps.push(DepResult {
                    id: dep.id,
                    title: dep.title,
                    worker: dep.worker,
                    result: dep.result.unwrap_or_default(),
                });
            }
        }
        let goal = {
            let g: Option<String> = tx
                .query_row("SELECT value FROM meta WHERE key = 'goal'", [], |r| {
                    r.get(0)
                })
                .optional()?;
            let p: Option<String> = tx
                .query_row("SELECT value FROM meta WHERE key = 'plan'", [], |r| {
                    r.get(0)
                })
                .optional()?;
            match (g.unwrap_or_default(), p.unwrap_or_default()) {
                (g, p) if p.trim().is_empty() => g,
                (g, p) => format!("{g}\n\n{}", p.trim_end()),
            }
        };
        tx.commit()?;
        self.log_change("claim", Some(&task.id));
        Ok(Some(Claimed {
            task,
            goal,
            deps,
            board,
        }))
    }
}

/// The roles as a JSON array for `json_each`.
fn roles_json(roles: &[String]) -> String {
    serde_json::to_string(roles).expect("strings serialize")
}
