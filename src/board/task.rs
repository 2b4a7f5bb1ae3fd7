//! What a board holds: a task as stored (its [`Status`], claim, lease, result), a new
//! task to add, and a discovery note.

use std::fmt;

use rusqlite::Row;
use serde::{Deserialize, Serialize};

/// The stored status of a task. `ready` and `blocked` are derived (see
/// [`super::report`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Open,
    Claimed,
    Done,
    Failed,
    Cancelled,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Open => "open",
            Status::Claimed => "claimed",
            Status::Done => "done",
            Status::Failed => "failed",
            Status::Cancelled => "cancelled",
        }
    }

    fn parse(s: &str) -> rusqlite::Result<Self> {
        Ok(match s {
            "open" => Status::Open,
            "claimed" => Status::Claimed,
            "done" => Status::Done,
            "failed" => Status::Failed,
            "cancelled" => Status::Cancelled,
            _ => return Err(rusqlite::Error::InvalidQuery),
        })
    }

    /// Returns true if and only if the task will not change again by itself (done,
    /// failed or cancelled).
    pub fn is_final(self) -> bool {
        matches!(self, Status::Done | Status::Failed | Status::Cancelled)
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A task as stored.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Task {
    /// Short, typeable: `t1`, `t2`, … or the id an import gave.
    pub id: String,
    pub title: String,
    pub body: String,
    /// 1 is the highest.
    pub priority: i64,
    /// Ids of the tasks this one needs done first.
    pub deps: Vec<String>,
    pub role: Option<String>,
    /// Files, hints: free-form JSON from `add --from`.
    pub context: Option<serde_json::Value>,
    pub status: Status,
    /// The worker holding (or, once finished, last holding) the claim.
    pub worker: Option<String>,
    /// The `agent-wrap` holding the claim, for a hosted agent's claim.
    pub host_pid: Option<i64>,
    /// When the lease of a non-hosted claim runs out.
    pub lease_until_us: Option<u64>,
    /// How many times the task was claimed.
    pub attempts: i64,
    pub result: Option<String>,
    /// Why it failed or was cancelled, or why its last claim ended without a result.
    pub reason: Option<String>,
    pub created_at_us: u64,
    pub claimed_at_us: Option<u64>,
    pub finished_at_us: Option<u64>,
    /// The order tasks were added in; ties of priority are claimed in this order.
    #[serde(skip)]
    pub seq: i64,
}

pub(crate) const TASK_COLUMNS: &str = "seq, id, title, body, priority, role, context, status, \
     worker, host_pid, lease_until_us, attempts, result, reason, created_at_us, \
     claimed_at_us, finished_at_us";

impl Task {
    pub(crate) fn from_row(row: &Row<'_>) -> rusqlite::Result<Task> {
        let context: Option<String> = row.get(6)?;
        let status: String = row.get(7)?;
        let u = |v: Option<i64>| v.map(|v| v as u64);
        Ok(Task {
            seq: row.get(0)?,
            id: row.get(1)?,
            title: row.get(2)?,
            body: row.get(3)?,
            priority: row.get(4)?,
            role: row.get(5)?,
            context: context.and_then(|c| serde_json::from_str(&c).ok()),
            status: Status::parse(&status)?,
            worker: row.get(8)?,
            host_pid: row.get(9)?,
            lease_until_us: u(row.get(10)?),
            attempts: row.get(11)?,
            result: row.get(12)?,
            reason: row.get(13)?,
            created_at_us: row.get::<_, i64>(14)? as u64,
            claimed_at_us: u(row.get(15)?),
            finished_at_us: u(row.get(16)?),
            deps: Vec::new(),
        })
    }
}

/// A task to add.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct NewTask {
    /// An id to keep (from an import); `None` picks the next `tN`.
    pub id: Option<String>,
    pub title: String,
    pub body: String,
    pub priority: Option<i64>,
    pub deps: Vec<String>,
    pub role: Option<String>,
    pub context: Option<serde_json::Value>,
}

/// The priority of a task added without one.
pub const DEFAULT_PRIORITY: i64 = 3;

/// A discovery: a short note for everyone on the board.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Note {
    pub author: String,
    pub text: String,
    pub at_us: u64,
}
