//! The [`Board`] handle: opening a board safely, and the verbs that add, read and end
//! tasks. Claims are in [`super::claim`], lease upkeep in [`super::lease`].
//!
//! Every change is one SQLite transaction taken with `BEGIN IMMEDIATE`, so a verb checks
//! and changes a task under the database's write lock: two workers can never both end
//! or both claim a task. A task's `unmet` column counts its dependencies that are not
//! done yet; it is lowered when a dependency becomes done, so finding a ready task is
//! one index lookup, whatever the size of the board.

use std::fmt;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use rusqlite::{Connection, OpenFlags, OptionalExtension, Transaction, params};

use super::check::{check_new, check_result, check_text, check_worker, find_cycle, natural_key};
use super::location::BoardPath;
use super::schema;
use super::task::{DEFAULT_PRIORITY, TASK_COLUMNS};
pub use super::task::{NewTask, Note, Status, Task};
use crate::time::now_us;

/// How long a verb waits for another process's write transaction before giving up.
const BUSY_TIMEOUT: Duration = Duration::from_secs(30);

/// An open board database.
pub struct Board {
    pub(crate) conn: Connection,
    pub(crate) path: BoardPath,
    /// Who runs this command (`--worker`): its claims are checked and renewed.
    pub(crate) worker: Option<String>,
}

impl fmt::Debug for Board {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Board").field("path", &self.path).finish()
    }
}

impl Board {
    /// Creates the board at `path` with its goal and master plan. Refuses an existing
    /// board, whose goal and tasks would otherwise be mixed with a new one's.
    pub fn create(path: &BoardPath, goal: &str, plan: Option<&str>) -> Result<Board> {
        check_text("the goal", goal)?;
        if goal.trim().is_empty() {
            bail!("the goal is empty: say what the board is for");
        }
        if let Some(plan) = plan {
            check_text("the plan", plan)?;
        }
        path.ensure_dir()?;
        path.check_db_file(true)?;
        let mut board = Self::connect(path)?;
        if board.meta("goal")?.is_some() {
            bail!(
                "a board already exists at {path} (goal: {}); pass --board NAME for another",
                board.goal()?.lines().next().unwrap_or("")
            );
        }
        let tx = board.write()?;
        let goal_row = tx.execute(
            "INSERT OR IGNORE INTO meta (key, value) VALUES ('goal', ?1)",
            [goal],
        )?;
        if goal_row == 0 {
            bail!("a board already exists at {path}");
        }
        tx.execute(
            "INSERT INTO meta (key, value) VALUES ('plan', ?1), ('created_at_us', ?2)",
            params![plan.unwrap_or(""), now_us().to_string()],
        )?;
        if let Some(project) = path.project() {
            tx.execute(
                "INSERT INTO meta (key, value) VALUES ('project', ?1)",
                [project.display().to_string()],
            )?;
        }
        tx.commit()?;
        board.log_change("init", None);
        Ok(board)
    }

    /// Appends a board change to the event log (src/events/), after its commit: one
    /// event per verb that changed the board. The log is in the app's durable home,
    /// where the state directory's durable part is.
    pub(crate) fn log_change(&self, verb: &str, task: Option<&str>) {
        if let Ok(home) = crate::state::durable_home() {
            crate::events::append(
                &home,
                crate::events::What::Board {
                    board: crate::events::short(&self.path.to_string()),
                    verb: verb.to_owned(),
                    task: task.map(crate::events::short),
                },
            );
        }
    }

    /// Opens the existing board at `path`.
    pub fn open(path: &BoardPath) -> Result<Board> {
        let missing = || {
            let place = path
                .project()
                .map(|p| format!(" for {}", p.display()))
                .unwrap_or_default();
            anyhow::anyhow!(
                "no board{place} (at {path}); start one with `claude-editor-hook board init \"GOAL\"`"
            )
        };
        if !path.check_db_file(false)? {
            return Err(missing());
        }
        let board = Self::connect(path)?;
        if board.meta("goal")?.is_none() {
            return Err(missing());
        }
        Ok(board)
    }

    /// Opens the database after the file checks, migrating it to the current schema.
    fn connect(path: &BoardPath) -> Result<Board> {
        let db = path.db();
        schema::check_header(&db)?;
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_NOFOLLOW
            | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let mut conn = Connection::open_with_flags(&db, flags)
            .with_context(|| format!("failed to open board database {}", db.display()))?;
        conn.busy_timeout(BUSY_TIMEOUT)?;
        schema::migrate(&mut conn, &db)?;
        // NORMAL in WAL mode: a commit survives any crash of the process; a power loss
        // can only roll back the last commits, never corrupt the file (docs/board.md).
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        Ok(Board {
            conn,
            path: path.clone(),
            worker: None,
        })
    }

    /// Sets who runs the following verbs: their claim checks use it, and each verb
    /// renews that worker's leases ("any board command from that worker").
    pub fn set_worker(&mut self, worker: Option<&str>) -> Result<()> {
        if let Some(w) = worker {
            check_worker(w)?;
            self.worker = Some(w.to_owned());
            super::lease::renew_worker(&self.conn, w, now_us())?;
        }
        Ok(())
    }

    pub fn path(&self) -> &BoardPath {
        &self.path
    }

    /// A write transaction, holding the database's write lock from the start.
    pub(crate) fn write(&mut self) -> Result<Transaction<'_>> {
        let db = self.path.db();
        self.conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .with_context(|| format!("failed to lock board database {}", db.display()))
    }

    fn meta(&self, key: &str) -> Result<Option<String>> {
        Ok(self
            .conn
            .query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))
            .optional()?)
    }

    /// The goal line.
    pub fn goal(&self) -> Result<String> {
        Ok(self.meta("goal")?.unwrap_or_default())
    }

    /// The master plan (markdown), empty when `init` was given none.
    pub fn plan(&self) -> Result<String> {
        Ok(self.meta("plan")?.unwrap_or_default())
    }

    /// The goal and the plan as one markdown text, as prepended to a claimed task.
    pub fn goal_text(&self) -> Result<String> {
        let (goal, plan) = (self.goal()?, self.plan()?);
        Ok(if plan.trim().is_empty() {
            goal
        } else {
            format!("{goal}\n\n{}", plan.trim_end())
        })
    }

    /// Adds one task and returns its id.
    pub fn add(&mut self, task: &NewTask) -> Result<String> {
        Ok(self.add_all(std::slice::from_ref(task))?.remove(0))
    }

    /// Adds tasks in one transaction and returns their ids. A task may depend on an
    /// existing task or on one earlier or later in `tasks`; a cycle or an unknown id
    /// refuses the whole batch.
    pub fn add_all(&mut self, tasks: &[NewTask]) -> Result<Vec<String>> {
        for t in tasks {
            check_new(t)?;
        }
        let now = now_us();
        let path = self.path.clone();
        let tx = self.write()?;
        let mut next: i64 =
            tx.query_row("SELECT coalesce(max(seq), 0) + 1 FROM tasks", [], |r| {
                r.get(0)
            })?;
        let mut ids = Vec::with_capacity(tasks.len());
        for t in tasks {
            let id = match &t.id {
                Some(id) => id.clone(),
                None => loop {
                    let id = format!("t{next}");
                    next += 1;
                    if !exists(&tx, &id)?
                        && !ids.contains(&id)
                        && !tasks.iter().any(|o| o.id.as_ref() == Some(&id))
                    {
                        break id;
                    }
                },
            };
            if exists(&tx, &id)? || ids.contains(&id) {
                bail!("task id {id} is already on the board at {path}");
            }
            ids.push(id);
        }
        // Every dependency must exist, on the board or in this batch.
        for (t, id) in tasks.iter().zip(&ids) {
            for d in &t.deps {
                if d == id {
                    bail!("task {id} cannot depend on itself");
                }
                if !ids.contains(d) && !exists(&tx, d)? {
                    bail!("task {id} depends on {d}, which is not on the board");
                }
            }
        }
        // Existing tasks cannot depend on new ones, so a cycle lies within the batch.
        if let Some(cycle) = find_cycle(&ids, tasks) {
            bail!(
                "refusing a dependency cycle: {}; nothing was added",
                cycle.join(" -> ")
            );
        }
        for (t, id) in tasks.iter().zip(&ids) {
            let context = t.context.as_ref().map(|c| c.to_string());
            tx.execute(
                "INSERT INTO tasks (id, title, body, priority, role, context, created_at_us)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![
                    id,
                    t.title,
                    t.body,
                    t.priority.unwrap_or(DEFAULT_PRIORITY),
                    t.role,
                    context,
                    now as i64
                ],
            )?;
        }
        for (t, id) in tasks.iter().zip(&ids) {
            for d in &t.deps {
                tx.execute(
                    "INSERT OR IGNORE INTO deps (task, dep) VALUES (?1, ?2)",
                    params![id, d],
                )?;
            }
            tx.execute(
                "UPDATE tasks SET unmet = (SELECT count(*) FROM deps JOIN tasks d ON d.id = deps.dep
                   WHERE deps.task = ?1 AND d.status != 'done') WHERE id = ?1",
                [id],
            )?;
        }
        tx.commit()?;
        self.log_change("add", Some(&ids.join(",")));
        Ok(ids)
    }

    /// Every task, in the order they were added, with their dependencies.
    pub fn tasks(&self) -> Result<Vec<Task>> {
        let mut stmt = self
            .conn
            .prepare_cached(&format!("SELECT {TASK_COLUMNS} FROM tasks ORDER BY seq"))?;
        let mut tasks: Vec<Task> = stmt
            .query_map([], Task::from_row)?
            .collect::<rusqlite::Result<_>>()?;
        let mut deps = self.conn.prepare_cached("SELECT task, dep FROM deps")?;
        let mut by_id: std::collections::HashMap<String, Vec<String>> = Default::default();
        for row in deps.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))? {
            let (task, dep) = row?;
            by_id.entry(task).or_default().push(dep);
        }
        for t in &mut tasks {
            if let Some(mut d) = by_id.remove(&t.id) {
                d.sort_by_key(|id| natural_key(id));
                t.deps = d;
            }
        }
        Ok(tasks)
    }

    /// Task `id`, or an error naming the board when there is none.
    pub fn task(&self, id: &str) -> Result<Task> {
        load(&self.conn, id)?
            .with_context(|| format!("no task {id:?} on the board at {}", self.path))
    }

    /// `done ID RESULT`: records the result and makes the dependents one step closer to
    /// ready.
    pub fn done(&mut self, id: &str, result: &str) -> Result<Task> {
        check_result(result)?;
        self.finish(id, Status::Done, Some(result), None)
    }

    /// `fail ID REASON`: the task failed; its dependents are blocked until a `retry`.
    pub fn fail(&mut self, id: &str, reason: &str) -> Result<Task> {
        check_text("the reason", reason)?;
        self.finish(id, Status::Failed, None, Some(reason))
    }

    /// `cancel ID`: nobody should work on the task; its dependents are blocked.
    pub fn cancel(&mut self, id: &str, force: bool) -> Result<Task> {
        let reason = match &self.worker {
            Some(w) => format!("cancelled by {w}"),
            None => "cancelled".to_owned(),
        };
        self.finish_checked(id, Status::Cancelled, None, Some(&reason), force)
    }

    fn finish(
        &mut self,
        id: &str,
        status: Status,
        result: Option<&str>,
        reason: Option<&str>,
    ) -> Result<Task> {
        self.finish_checked(id, status, result, reason, false)
    }

    fn finish_checked(
        &mut self,
        id: &str,
        status: Status,
        result: Option<&str>,
        reason: Option<&str>,
        force: bool,
    ) -> Result<Task> {
        let worker = self.worker.clone();
        let path = self.path.clone();
        let tx = self.write()?;
        let task =
            load(&tx, id)?.with_context(|| format!("no task {id:?} on the board at {path}"))?;
        if task.status.is_final() {
            bail!(
                "task {id} is already {}; `retry {id}` reopens a failed or cancelled task",
                task.status
            );
        }
        if !force {
            check_caller(&task, worker.as_deref())?;
        }
        tx.execute(
            // A done task keeps the reason its last lapsed claim left, for the report.
            "UPDATE tasks SET status = ?2, result = ?3, reason = coalesce(?4, reason), finished_at_us = ?5,
               lease_until_us = NULL, host_pid = NULL, host_lock = NULL
             WHERE id = ?1",
            params![id, status.as_str(), result, reason, now_us() as i64],
        )?;
        if status == Status::Done {
            tx.execute(
                "UPDATE tasks SET unmet = unmet - 1 WHERE id IN (SELECT task FROM deps WHERE dep = ?1)",
                [id],
            )?;
        }
        let task = load(&tx, id)?.expect("the task was just updated");
        tx.commit()?;
        self.log_change(status.as_str(), Some(id));
        Ok(task)
    }

    /// `release ID`: gives a claimed task back to the queue (the attempt stays counted).
    pub fn release(&mut self, id: &str, force: bool) -> Result<Task> {
        self.release_because(id, None, force)
    }

    /// `release` with the reason to record (default `released by W`): a run gives a task
    /// back saying why (a retry after a failed attempt, a cancelled run).
    pub fn release_because(&mut self, id: &str, why: Option<&str>, force: bool) -> Result<Task> {
        let worker = self.worker.clone();
        let path = self.path.clone();
        let tx = self.write()?;
        let task =
            load(&tx, id)?.with_context(|| format!("no task {id:?} on the board at {path}"))?;
        if task.status != Status::Claimed {
            bail!(
                "task {id} is {}, not claimed: there is nothing to release",
                task.status
            );
        }
        if !force {
            check_caller(&task, worker.as_deref())?;
        }
        let reason = match why {
            Some(why) => why.to_owned(),
            None => format!("released by {}", task.worker.as_deref().unwrap_or("?")),
        };
        super::lease::reopen(&tx, &task, &reason)?;
        let task = load(&tx, id)?.expect("the task exists");
        tx.commit()?;
        self.log_change("release", Some(id));
        Ok(task)
    }

    /// `retry ID`: reopens a failed or cancelled task, which unblocks its dependents.
    pub fn retry(&mut self, id: &str) -> Result<Task> {
        let path = self.path.clone();
        let tx = self.write()?;
        let task =
            load(&tx, id)?.with_context(|| format!("no task {id:?} on the board at {path}"))?;
        if !matches!(task.status, Status::Failed | Status::Cancelled) {
            bail!(
                "task {id} is {}; only a failed or cancelled task can be retried",
                task.status
            );
        }
        tx.execute(
            "UPDATE tasks SET status = 'open', worker = NULL, result = NULL, finished_at_us = NULL,
               claimed_at_us = NULL WHERE id = ?1",
            [id],
        )?;
        let task = load(&tx, id)?.expect("the task exists");
        tx.commit()?;
        self.log_change("retry", Some(id));
        Ok(task)
    }

    /// `note TEXT`: records a discovery.
    pub fn note(&mut self, author: &str, text: &str) -> Result<()> {
        check_text("the note", text)?;
        if text.trim().is_empty() {
            bail!("the note is empty");
        }
        let tx = self.write()?;
        tx.execute(
            "INSERT INTO notes (author, text, at_us) VALUES (?1, ?2, ?3)",
            params![author, text, now_us() as i64],
        )?;
        tx.commit()?;
        self.log_change("note", None);
        Ok(())
    }

    /// Every discovery, oldest first.
    pub fn notes(&self) -> Result<Vec<Note>> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT author, text, at_us FROM notes ORDER BY seq")?;
        let notes = stmt
            .query_map([], |r| {
                Ok(Note {
                    author: r.get(0)?,
                    text: r.get(1)?,
                    at_us: r.get::<_, i64>(2)? as u64,
                })
            })?
            .collect::<rusqlite::Result<_>>()?;
        Ok(notes)
    }

    /// A value the chief's `@board` keeps between calls (what it has reported already).
    pub fn cursor(&self, key: &str) -> Result<Option<String>> {
        self.meta(&format!("cursor:{key}"))
    }

    /// Sets a cursor (see [`Board::cursor`]).
    pub fn set_cursor(&mut self, key: &str, value: &str) -> Result<()> {
        let tx = self.write()?;
        tx.execute(
            "INSERT INTO meta (key, value) VALUES (?1, ?2)
             ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            params![format!("cursor:{key}"), value],
        )?;
        tx.commit()?;
        Ok(())
    }
}

pub(crate) fn load(conn: &Connection, id: &str) -> Result<Option<Task>> {
    let mut stmt =
        conn.prepare_cached(&format!("SELECT {TASK_COLUMNS} FROM tasks WHERE id = ?1"))?;
    let Some(mut task) = stmt.query_row([id], Task::from_row).optional()? else {
        return Ok(None);
    };
    let mut deps = conn.prepare_cached("SELECT dep FROM deps WHERE task = ?1")?;
    task.deps = deps
        .query_map([id], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    task.deps.sort_by_key(|d: &String| natural_key(d));
    Ok(Some(task))
}

fn exists(conn: &Connection, id: &str) -> Result<bool> {
    Ok(conn
        .prepare_cached("SELECT 1 FROM tasks WHERE id = ?1")?
        .exists([id])?)
}

/// A claimed task may only be ended by its claimer.
fn check_caller(task: &Task, caller: Option<&str>) -> Result<()> {
    if task.status != Status::Claimed {
        return Ok(());
    }
    let holder = task.worker.as_deref().unwrap_or("?");
    match caller {
        Some(c) if c == holder => Ok(()),
        Some(c) => bail!(
            "task {} is claimed by {holder}, not by {c}; only its claimer ends it (or pass --force)",
            task.id
        ),
        None => bail!(
            "task {} is claimed by {holder}: pass --worker {holder} (or --force)",
            task.id
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(id: &str, deps: &[&str]) -> NewTask {
        NewTask {
            id: Some(id.into()),
            title: id.into(),
            deps: deps.iter().map(|d| d.to_string()).collect(),
            ..Default::default()
        }
    }

    #[test]
    fn cycles_are_found() {
        let tasks = [t("a", &["c"]), t("b", &["a"]), t("c", &["b"]), t("d", &[])];
        let ids: Vec<String> = tasks.iter().map(|t| t.id.clone().unwrap()).collect();
        let cycle = find_cycle(&ids, &tasks).unwrap();
        assert_eq!(cycle.first(), cycle.last());
        assert_eq!(cycle.len(), 4);
        let dag = [t("a", &[]), t("b", &["a"]), t("c", &["a", "b"])];
        let ids: Vec<String> = dag.iter().map(|t| t.id.clone().unwrap()).collect();
        assert_eq!(find_cycle(&ids, &dag), None);
    }

    #[test]
    fn ids_sort_naturally() {
        let mut ids = vec!["t10", "t2", "t1"];
        ids.sort_by_key(|i| natural_key(i));
        assert_eq!(ids, ["t1", "t2", "t10"]);
    }
}
