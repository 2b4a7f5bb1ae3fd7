//! Persistent agents draining a board (`agent-wrap NAME --board [B]`, or `board = "…"`
//! in the agent's config).
//!
//! The host asks [`Drainer::next_task`] only when it is idle with an empty inbox, so a
//! task delegated directly (Ctrl-G, `send`) always comes first, and a hosted Claude
//! Code whose box is busy (a held draft, a dialog) claims nothing. A claimed board task
//! becomes an ordinary task of the agent — a task directory with its envelope, queued in
//! its own inbox — so it runs visibly in the agent's window, with exact state, in its
//! long-lived context. Its prompt is the board's goal, the results of its dependencies
//! and the task. When it ends, [`Drainer::finish`] marks the board task done with the
//! answer, or failed with the reason.
//!
//! The claim is held by the host lock: if `agent-wrap` dies, the next board command
//! reopens the task. When the host is told to stop, [`Drainer::stop`] makes the task it
//! is running go back to the queue instead of failing.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::sync::mpsc::Sender;

use anyhow::{Context, Result};

use super::claim::{ClaimRequest, Holder};
use super::location::BoardPath;
use super::store::{Board, Status};
use super::wait::BoardWatch;
use crate::state::{
    AgentName, Done, Outcome, StateDir, TaskEnvelope, TaskId, enqueue, read_optional, write_json,
};

/// An agent's link to the board it drains.
pub struct Drainer {
    board: RefCell<Board>,
    state: StateDir,
    agent: AgentName,
    roles: Vec<String>,
    /// Agent task id → board task id, for the tasks this host claimed.
    running: RefCell<HashMap<TaskId, String>>,
    stopping: Cell<bool>,
    watch: RefCell<Option<BoardWatch<()>>>,
}

impl std::fmt::Debug for Drainer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Drainer")
            .field("agent", &self.agent)
            .field("board", &self.board.borrow().path())
            .finish()
    }
}

impl Drainer {
    /// Opens board `spec` (`None`: the board of the current project) for agent `agent`.
    pub fn open(
        spec: Option<&str>,
        state: &StateDir,
        agent: &AgentName,
        roles: &[String],
    ) -> Result<Self> {
        let path = BoardPath::resolve(spec)?;
        let mut board = Board::open(&path)?;
        super::lease::set_own_lock(&state.lock_path(agent));
        board.set_worker(Some(agent.as_str()))?;
        Ok(Self {
            board: RefCell::new(board),
            state: state.clone(),
            agent: agent.clone(),
            roles: roles.to_vec(),
            running: RefCell::new(HashMap::new()),
            stopping: Cell::new(false),
            watch: RefCell::new(None),
        })
    }

    /// The board's location, for the host's first message.
    pub fn board(&self) -> String {
        self.board.borrow().path().to_string()
    }

    /// Sends `make()` on `tx` whenever a board task may have become claimable: a write
    /// to the board, a lease ending, a claiming host exiting.
    pub fn watch<E: Send + 'static>(
        &self,
        tx: Sender<E>,
        make: impl Fn() -> E + Send + Sync + 'static,
    ) -> Result<()> {
        // Our own channel, forwarded: the watch's timer and exit watches need a type
        // they can name, the host's event type is its own.
        let (own_tx, own_rx) = std::sync::mpsc::channel::<()>();
        let watch = BoardWatch::new(&self.board.borrow(), own_tx, || ())?;
        std::thread::Builder::new()
            .name("board-watch".into())
            .spawn(move || {
                for () in own_rx {
                    if tx.send(make()).is_err() {
                        return;
                    }
                }
            })
            .context("failed to start the board watch")?;
        *self.watch.borrow_mut() = Some(watch);
        Ok(())
    }

    /// Claims the next ready board task for this agent's roles and queues it in the
    /// agent's inbox as an ordinary task; `Ok(None)` when none is ready (or the host is
    /// stopping). Call only when the agent is idle and its inbox is empty.
    pub fn next_task(&self) -> Result<Option<TaskEnvelope>> {
        if self.stopping.get() {
            return Ok(None);
        }
        let req = ClaimRequest {
            worker: self.agent.to_string(),
            roles: self.roles.clone(),
            holder: Holder::Host {
                pid: std::process::id() as i32,
                lock: self.state.lock_path(&self.agent),
            },
        };
        let mut board = self.board.borrow_mut();
        let Some(claimed) = board.claim(&req)? else {
            self.rearm_watch(&board);
            return Ok(None);
        };
        drop(board);
        let queued = (|| -> Result<TaskEnvelope> {
            let id = (0..)
                .map(TaskId::generate)
                .find_map(|id| match self.state.create_task_dir(&id) {
                    Ok(true) => Some(Ok(id)),
                    Ok(false) => None,
                    Err(e) => Some(Err(e)),
                })
                .expect("an unbounded range")?;
            let mut task = TaskEnvelope::new(id, self.agent.clone(), claimed.prompt());
            task.title = format!("board {}: {}", claimed.task.id, claimed.task.title);
            task.title = crate::state::title_of(&task.title);
            // Nobody waits on the answer: the board does. A background task runs even
            // though its requester (this host) is not a waiting coordinator.
            task.background = true;
            write_json(&self.state.task_path(&task.id), &task)?;
            crate::events::queued(&self.state, &task);
            enqueue(&self.state, &self.agent, &task.id)?;
            Ok(task)
        })();
        match queued {
            Ok(task) => {
                self.running
                    .borrow_mut()
                    .insert(task.id.clone(), claimed.task.id.clone());
                Ok(Some(task))
            }
            Err(e) => {
                // The claim must not linger with nobody working on it.
                let _ = self.board.borrow_mut().release(&claimed.task.id, true);
                Err(e).context("failed to queue a board task")
            }
        }
    }

    fn rearm_watch(&self, board: &Board) {
        if let Some(w) = self.watch.borrow_mut().as_mut() {
            let _ = w.rearm(board);
        }
    }

    /// Records the end of agent task `id` on the board, if it was a board task: done
    /// with the answer in `result.txt`, failed with the reason, or (when the host is
    /// stopping, or the run was cancelled or interrupted) back to the queue. Returns
    /// true if and only if `id` was a board task.
    pub fn finish(&self, id: &TaskId, done: &Done) -> Result<bool> {
        let Some(board_id) = self.running.borrow_mut().remove(id) else {
            return Ok(false);
        };
        let mut board = self.board.borrow_mut();
        let task = board.task(&board_id)?;
        // Only our own live claim: a claim reopened meanwhile belongs to someone else.
        if task.status != Status::Claimed
            || task.worker.as_deref() != Some(self.agent.as_str())
            || task.host_pid != Some(i64::from(std::process::id()))
        {
            return Ok(true);
        }
        let reason = done
            .reason
            .clone()
            .unwrap_or_else(|| done.outcome.to_string());
        if self.stopping.get() {
            board.release(&board_id, true)?;
            return Ok(true);
        }
        match done.outcome {
            Outcome::Ok => {
                let answer = read_optional(&self.state.result_path(id))?.unwrap_or_default();
                let answer = String::from_utf8_lossy(&answer).into_owned();
                if let Err(e) = super::check::check_result(&answer) {
                    board.fail(
                        &board_id,
                        &format!(
                            "{e:#}; the whole answer is in {}",
                            self.state.result_path(id).display()
                        ),
                    )?;
                } else {
                    board.done(&board_id, &answer)?;
                }
            }
            Outcome::Failed => {
                board.fail(&board_id, &reason)?;
            }
            Outcome::Cancelled | Outcome::Interrupted => {
                board.release(&board_id, true)?;
            }
        }
        Ok(true)
    }

    /// The host is stopping: claim nothing more, and give back what is running.
    pub fn stop(&self) {
        self.stopping.set(true);
    }
}
