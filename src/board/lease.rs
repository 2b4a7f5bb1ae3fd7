//! Leases: when a claim is given back without its worker saying so.
//!
//! A hosted agent's claim holds while its `agent-wrap` holds the host lock (the kernel
//! drops that lock when the process dies, however it dies). Any other claim has a lease
//! (default 30 minutes, `claim --lease`) that `renew ID`, and every board command run
//! with that `--worker`, extends by the same length. A claim whose holder is gone is
//! reopened by the next board command that looks ("reaping"); its attempt stays counted
//! and its `reason` says what happened.

use std::path::Path;

use anyhow::{Result, bail};
use rusqlite::{Connection, Transaction, params};

use super::store::{Board, Status, Task, load};
use crate::time::now_us;

/// A claim that should be reopened, and why.
struct Lapsed {
    task: Task,
    why: String,
}

/// Reopens every claim whose holder is gone. Runs inside the caller's write
/// transaction, so the check and the reopening see the same state.
pub(crate) fn reap(tx: &Transaction<'_>, now: u64) -> Result<usize> {
    let lapsed = lapsed(tx, now)?;
    for l in &lapsed {
        reopen(tx, &l.task, &l.why)?;
    }
    Ok(lapsed.len())
}

/// A claimed row as reaping reads it: id, host pid, host lock, lease end, worker.
type ClaimRow = (
    String,
    Option<i64>,
    Option<String>,
    Option<i64>,
    Option<String>,
);

fn lapsed(conn: &Connection, now: u64) -> Result<Vec<Lapsed>> {
    let mut stmt = conn.prepare_cached(
        "SELECT id, host_pid, host_lock, lease_until_us, worker FROM tasks WHERE status = 'claimed'",
    )?;
    let rows: Vec<ClaimRow> = stmt
        .query_map([], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
        })?
        .collect::<rusqlite::Result<_>>()?;
    let mut out = Vec::new();
    for (id, pid, lock, until, worker) in rows {
        let worker = worker.unwrap_or_default();
        let why = match (pid, lock) {
            (Some(pid), Some(lock)) => {
                if host_alive(pid, Path::new(&lock)) {
                    continue;
                }
                format!("agent-wrap of {worker} (pid {pid}) exited while it held the task")
            }
            _ => match until {
                Some(until) if (until as u64) < now => {
                    format!("the lease of {worker} ran out")
                }
                _ => continue,
            },
        };
        if let Some(task) = load(conn, &id)? {
            out.push(Lapsed { task, why });
        }
    }
    Ok(out)
}

/// The host lock this process holds, if it is an agent host draining a board.
static OWN_LOCK: std::sync::OnceLock<std::path::PathBuf> = std::sync::OnceLock::new();

/// Records the host lock this process holds (see [`host_alive`]).
pub(crate) fn set_own_lock(lock: &Path) {
    let _ = OWN_LOCK.set(lock.to_path_buf());
}

/// Returns true if and only if process `pid` still holds the host lock at `lock`.
pub(crate) fn host_alive(pid: i64, lock: &Path) -> bool {
    // Our own claim (the draining host itself): alive, and its lock file must not be
    // opened here, since closing any descriptor of it would drop the host's POSIX lock.
    if pid == i64::from(std::process::id()) {
        return true;
    }
    // The lock is this host's own (a claim of the host that ran before us): we hold it,
    // so that host is gone, and the file must not be opened here for the same reason.
    if OWN_LOCK.get().is_some_and(|own| own == lock) {
        return false;
    }
    match crate::state::lock_holder(lock) {
        Ok(holder) => holder.map(i64::from) == Some(pid),
        // A lock we cannot read: assume the host lives rather than run a task twice.
        Err(_) => true,
    }
}

/// Puts a claimed task back in the queue.
pub(crate) fn reopen(tx: &Connection, task: &Task, why: &str) -> Result<()> {
    tx.execute(
        "UPDATE tasks SET status = 'open', worker = NULL, host_pid = NULL, host_lock = NULL,
           lease_us = NULL, lease_until_us = NULL, reason = ?2
         WHERE id = ?1 AND status = 'claimed'",
        params![task.id, why],
    )?;
    Ok(())
}

/// Extends every lease `worker` holds by its own length. A no-op (and no write) when
/// the worker holds none.
pub(crate) fn renew_worker(conn: &Connection, worker: &str, now: u64) -> Result<usize> {
    Ok(conn.execute(
        "UPDATE tasks SET lease_until_us = ?2 + lease_us
         WHERE status = 'claimed' AND worker = ?1 AND host_pid IS NULL AND lease_us IS NOT NULL",
        params![worker, now as i64],
    )?)
}

impl Board {
    /// `renew ID`: extends the lease of a task the caller holds; returns the new end.
    pub fn renew(&mut self, id: &str) -> Result<Option<u64>> {
        let worker = self.worker.clone();
        let path = self.path.clone();
        let tx = self.write()?;
        let task = load(&tx, id)?
            .ok_or_else(|| anyhow::anyhow!("no task {id:?} on the board at {path}"))?;
        if task.status != Status::Claimed {
            bail!(
                "task {id} is {}, not claimed{}",
                task.status,
                task.reason
                    .as_deref()
                    .map(|r| format!(" ({r})"))
                    .unwrap_or_default()
            );
        }
        let holder = task.worker.clone().unwrap_or_default();
        match worker.as_deref() {
            Some(w) if w == holder => {}
            Some(w) => bail!("task {id} is claimed by {holder}, not by {w}"),
            None => bail!("task {id} is claimed by {holder}: pass --worker {holder}"),
        }
        tx.execute(
            "UPDATE tasks SET lease_until_us = ?2 + lease_us WHERE id = ?1 AND lease_us IS NOT NULL",
            params![id, now_us() as i64],
        )?;
        let task = load(&tx, id)?.expect("the task exists");
        tx.commit()?;
        Ok(task.lease_until_us)
    }

    /// Reopens lapsed claims, writing only when there is one. Read verbs call this so
    /// that what they show is true now.
    pub fn reap(&mut self) -> Result<usize> {
        let now = now_us();
        if lapsed(&self.conn, now)?.is_empty() {
            return Ok(0);
        }
        let tx = self.write()?;
        let n = reap(&tx, now)?;
        tx.commit()?;
        Ok(n)
    }

    /// When the next lease runs out, and the hosts whose exit would reopen a claim: what
    /// a waiter must watch besides the database.
    pub fn lease_events(&self) -> Result<(Option<u64>, Vec<i32>)> {
        let next: Option<i64> = self.conn.query_row(
            "SELECT min(lease_until_us) FROM tasks WHERE status = 'claimed' AND host_pid IS NULL",
            [],
            |r| r.get(0),
        )?;
        let mut stmt = self.conn.prepare_cached(
            "SELECT DISTINCT host_pid FROM tasks WHERE status = 'claimed' AND host_pid IS NOT NULL",
        )?;
        let pids = stmt
            .query_map([], |r| r.get::<_, i64>(0))?
            .filter_map(|p| p.ok().and_then(|p| i32::try_from(p).ok()))
            .collect();
        Ok((next.map(|n| n as u64), pids))
    }
}
