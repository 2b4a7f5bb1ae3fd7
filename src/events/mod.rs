//! The event log: every state change of the team, appended to one durable JSONL file
//! (`<durable>/events/events.jsonl`, docs/protocol.md, "The event log").
//!
//! It owns the event types ([`Event`], [`What`]), the one writer ([`append`]: one
//! `write(2)` of one short line with `O_APPEND`, rotation by size, never blocking and
//! never failing its caller) and the readers ([`read_all`], [`Follower`] for `events
//! --follow`, `top` and notifications). The state files stay the truth; the log is the
//! history that `top`, notifications and `events` read.

mod log;
pub mod notify;

pub use log::{
    EVENTS_DIR, EVENTS_FILE, Entry, Follower, MAX_LOG_BYTES, OLD_EVENTS_FILE, Placed, Position,
    append, append_at, end_position, log_path, read_after, read_all, read_old, tail,
};

use serde::{Deserialize, Serialize};

use crate::state::{AgentName, AgentState, FinishedBy, Outcome, TaskId};

/// The format version of an event line.
pub const EVENT_VERSION: u32 = 1;

/// The longest title or reason kept in an event: lines stay short, so that one
/// `write(2)` appends a whole line and readers never need much memory.
pub const MAX_TEXT: usize = 160;

/// One line of the log.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Event {
    pub version: u32,
    /// When it happened, microseconds since the Unix epoch.
    pub at_us: u64,
    #[serde(flatten)]
    pub what: What,
}

/// What happened; `kind` in the JSON.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum What {
    /// A coordinator, a draining host or the run's `--agents` driver queued a task in an
    /// agent's inbox.
    TaskQueued {
        task: TaskId,
        agent: AgentName,
        #[serde(default)]
        title: String,
        #[serde(default)]
        background: bool,
    },
    /// The agent's host claimed the task and handed it to its driver.
    TaskDelivered { task: TaskId, agent: AgentName },
    /// A hosted Claude Code acknowledged the delivery (its `UserPromptSubmit`).
    TaskAcknowledged { task: TaskId, agent: AgentName },
    /// `done.json` was written: the task's outcome.
    TaskFinished {
        task: TaskId,
        #[serde(default)]
        agent: Option<AgentName>,
        #[serde(default)]
        title: String,
        outcome: Outcome,
        #[serde(default)]
        reason: Option<String>,
        finished_by: FinishedBy,
        #[serde(default)]
        background: bool,
    },
    /// An agent's host reported a new status.
    AgentStatus {
        agent: AgentName,
        status: AgentState,
        #[serde(default)]
        task: Option<TaskId>,
    },
    /// A background result reached its chief (`@results`, `results`, the chief hook).
    ResultDelivered {
        task: TaskId,
        agent: AgentName,
        chief: String,
    },
    /// A board verb changed a board.
    Board {
        board: String,
        verb: String,
        #[serde(default)]
        task: Option<String>,
    },
    /// An automatic run (`run "GOAL"`, docs/run.md) ended: its state (`done`, `failed`,
    /// `cancelled`) and counts.
    RunFinished {
        run: String,
        state: String,
        done: usize,
        failed: usize,
        blocked: usize,
        total: usize,
    },
    /// `agent-wrap --restart` saw the agent's host crash (killed by a signal, or a
    /// failure after it was up): restarted (`restart`, the count within the last minute,
    /// after `pause_ms`), or not, and why (`reason`).
    AgentCrashed {
        agent: AgentName,
        /// `killed by SIGKILL`, `exit status 101`.
        how: String,
        #[serde(default)]
        restart: Option<usize>,
        #[serde(default)]
        pause_ms: Option<u64>,
        #[serde(default)]
        reason: Option<String>,
    },
    /// A kind this build does not know (written by a newer one).
    #[serde(other)]
    Unknown,
}

impl Event {
    /// The agent the event is about, if any.
    pub fn agent(&self) -> Option<&AgentName> {
        match &self.what {
            What::TaskQueued { agent, .. }
            | What::TaskDelivered { agent, .. }
            | What::TaskAcknowledged { agent, .. }
            | What::AgentStatus { agent, .. }
            | What::ResultDelivered { agent, .. }
            | What::AgentCrashed { agent, .. } => Some(agent),
            What::TaskFinished { agent, .. } => agent.as_ref(),
            What::Board { .. } | What::RunFinished { .. } | What::Unknown => None,
        }
    }

    /// The task the event is about, if any.
    pub fn task(&self) -> Option<&str> {
        match &self.what {
            What::TaskQueued { task, .. }
            | What::TaskDelivered { task, .. }
            | What::TaskAcknowledged { task, .. }
            | What::TaskFinished { task, .. }
            | What::ResultDelivered { task, .. } => Some(task.as_str()),
            What::AgentStatus { task, .. } => task.as_ref().map(|t| t.as_str()),
            What::Board { task, .. } => task.as_deref(),
            What::RunFinished { .. } | What::AgentCrashed { .. } | What::Unknown => None,
        }
    }

    /// The `kind` field.
    pub fn kind(&self) -> &'static str {
        match &self.what {
            What::TaskQueued { .. } => "task_queued",
            What::TaskDelivered { .. } => "task_delivered",
            What::TaskAcknowledged { .. } => "task_acknowledged",
            What::TaskFinished { .. } => "task_finished",
            What::AgentStatus { .. } => "agent_status",
            What::ResultDelivered { .. } => "result_delivered",
            What::Board { .. } => "board",
            What::RunFinished { .. } => "run_finished",
            What::AgentCrashed { .. } => "agent_crashed",
            What::Unknown => "unknown",
        }
    }

    /// One line for humans, without the time: `@alice task 1a2b… finished ok: title`.
    pub fn describe(&self) -> String {
        let who = |a: &AgentName| format!("@{a}");
        match &self.what {
            What::TaskQueued {
                task,
                agent,
                title,
                background,
            } => {
                let bg = if *background { " (background)" } else { "" };
                format!("{} task {task} queued{bg}: {title}", who(agent))
            }
            What::TaskDelivered { task, agent } => format!("{} task {task} delivered", who(agent)),
            What::TaskAcknowledged { task, agent } => {
                format!("{} task {task} acknowledged", who(agent))
            }
            What::TaskFinished {
                task,
                agent,
                title,
                outcome,
                reason,
                ..
            } => {
                let agent = agent.as_ref().map(who).unwrap_or_else(|| "-".into());
                let why = reason
                    .as_deref()
                    .map(|r| format!(" ({r})"))
                    .unwrap_or_default();
                format!("{agent} task {task} {outcome}{why}: {title}")
            }
            What::AgentStatus {
                agent,
                status,
                task,
            } => {
                let on = task
                    .as_ref()
                    .map(|t| format!(" on {t}"))
                    .unwrap_or_default();
                format!("{} is {status}{on}", who(agent))
            }
            What::ResultDelivered { task, agent, chief } => {
                format!("{} result of {task} delivered to chief {chief}", who(agent))
            }
            What::Board { board, verb, task } => {
                let t = task.as_ref().map(|t| format!(" {t}")).unwrap_or_default();
                format!("board {board}: {verb}{t}")
            }
            What::RunFinished {
                run,
                state,
                done,
                failed,
                blocked,
                total,
            } => format!(
                "run {run} {state}: {done}/{total} done, {failed} failed, {blocked} blocked"
            ),
            What::AgentCrashed {
                agent,
                how,
                restart,
                pause_ms,
                reason,
            } => match (restart, pause_ms) {
                (Some(n), Some(ms)) => format!(
                    "{} crashed ({how}): restart {n} within a minute, in {}",
                    who(agent),
                    crate::time::human_us(ms * 1000)
                ),
                _ => format!(
                    "{} crashed ({how}) and is not restarted: {}",
                    who(agent),
                    reason.as_deref().unwrap_or("no reason given")
                ),
            },
            What::Unknown => "(an event of a newer kind)".into(),
        }
    }
}

/// Appends `task_queued` for `task`, just queued in its agent's inbox.
pub fn queued(state: &crate::state::StateDir, task: &crate::state::TaskEnvelope) {
    append(
        state.root(),
        What::TaskQueued {
            task: task.id.clone(),
            agent: task.agent.clone(),
            title: short(&task.title),
            background: task.background,
        },
    );
}

/// `at_us` as local wall-clock time, `HH:MM:SS.mmm`.
pub fn clock(at_us: u64) -> String {
    let secs = (at_us / 1_000_000) as libc::time_t;
    let ms = (at_us / 1000) % 1000;
    // SAFETY: `tm` is a plain C struct that localtime_r fills in; all-zero is a valid
    // value for it, and both pointers are valid for the call.
    let tm = unsafe {
        let mut tm: libc::tm = std::mem::zeroed();
        if libc::localtime_r(&secs, &mut tm).is_null() {
            return format!("{at_us}");
        }
        tm
    };
    format!(
        "{:02}:{:02}:{:02}.{ms:03}",
        tm.tm_hour, tm.tm_min, tm.tm_sec
    )
}

/// `s` cut to [`MAX_TEXT`] characters (plus `…`), on one line.
pub fn short(s: &str) -> String {
    let one_line: String = s
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    match one_line.char_indices().nth(MAX_TEXT) {
        Some((at, _)) => format!("{}…", &one_line[..at]),
        None => one_line,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_event_is_one_flat_object_with_its_kind() {
        let e = Event {
            version: EVENT_VERSION,
            at_us: 5,
            what: What::TaskDelivered {
                task: TaskId::parse("t-1").unwrap(),
                agent: AgentName::parse("alice").unwrap(),
            },
        };
        let json = serde_json::to_string(&e).unwrap();
        assert_eq!(
            json,
            r#"{"version":1,"at_us":5,"kind":"task_delivered","task":"t-1","agent":"alice"}"#
        );
        assert_eq!(serde_json::from_str::<Event>(&json).unwrap(), e);
        let newer: Event =
            serde_json::from_str(r#"{"version":1,"at_us":6,"kind":"a_later_kind","x":1}"#).unwrap();
        assert_eq!(newer.what, What::Unknown);
    }

    #[test]
    fn texts_are_short_and_on_one_line() {
        assert_eq!(short("a\nb"), "a b");
        let long = "é".repeat(500);
        assert_eq!(short(&long).chars().count(), MAX_TEXT + 1);
    }
}
