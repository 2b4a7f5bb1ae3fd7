//! The coordinator: what runs as `$EDITOR` when the chief presses Ctrl-G.
//!
//! [`editor_mode`] reads the prompt file and either hands it to the user's real editor
//! ([`passthrough`]) or delegates it ([`delegate`]) while the chief waits, showing the
//! [`view`] when a terminal is attached, and writes the outcome back ([`prompt_file`]).
//! [`Coordinator`] is the one event loop of that process: its channel, fed by the
//! signal thread, the view and the watchers.

pub mod caller;
pub mod cancel;
pub mod delegate;
pub mod editor_mode;
pub mod multi;
pub mod passthrough;
pub mod prompt_file;
pub mod results;
pub mod route;
pub mod send;
pub mod submit;
pub mod view;

pub use delegate::{Progress, Report, preflight};
pub use editor_mode::{EditorOptions, run_editor_mode};

use std::sync::mpsc::{Receiver, Sender, channel};
use std::time::Duration;

use anyhow::Result;

use crate::signals::Signal;
use crate::state::StateDir;

/// What wakes the coordinator's loop.
#[derive(Debug)]
pub enum Event {
    /// A watched directory changed: re-read the state.
    Changed,
    Signal(Signal),
    /// The host with this pid exited.
    HostExited(i32),
    /// The user asked to cancel (Esc or Ctrl-C in the view).
    Cancel(String),
    /// A fan-out's delegation number `.0` ended.
    Finished(usize, Box<Result<Report>>),
    /// The user sent the task to the background (`b` in the view).
    Background,
    /// The user wants to see the agent (`a` in the view): its tmux window.
    Jump,
}

/// A coordinator: the event channel shared by its signal thread, view and watchers.
/// Sends [`Event::Cancel`] to a coordinator when dropped: an async caller (an MCP tool
/// call, a web request) whose future is dropped, its request cancelled or its connection
/// gone, cancels the task it waited on. A coordinator that has finished has dropped its
/// receiver, so a late send is a no-op.
pub struct CancelOnDrop {
    tx: Sender<Event>,
    reason: &'static str,
}

impl CancelOnDrop {
    pub fn new(tx: Sender<Event>, reason: &'static str) -> Self {
        Self { tx, reason }
    }

    /// Cancels now, with another reason.
    pub fn cancel(&self, reason: &str) {
        let _ = self.tx.send(Event::Cancel(reason.to_owned()));
    }
}

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        self.cancel(self.reason);
    }
}

pub struct Coordinator {
    pub(super) state: StateDir,
    pub(super) tx: Sender<Event>,
    pub(super) rx: Receiver<Event>,
    /// Whether `b` may send a task to the background: only for a route of one agent,
    /// where nothing else waits on its answer.
    pub(super) detachable: std::cell::Cell<bool>,
    /// The agents already waiting on the tasks this coordinator creates
    /// (`TaskEnvelope::wait_chain`), set by [`caller`] for a delegating agent.
    pub(super) wait_chain: std::cell::RefCell<Vec<crate::state::AgentName>>,
}

impl Coordinator {
    pub fn new(state: StateDir) -> Self {
        let (tx, rx) = channel();
        Self {
            state,
            tx,
            rx,
            detachable: std::cell::Cell::new(false),
            wait_chain: std::cell::RefCell::new(Vec::new()),
        }
    }

    /// Lets `b` in the view send the task to the background.
    pub fn allow_detach(&self) {
        self.detachable.set(true);
    }

    /// A sender for signals and key presses.
    pub fn sender(&self) -> Sender<Event> {
        self.tx.clone()
    }

    pub fn state(&self) -> &StateDir {
        &self.state
    }

    /// The next event, waiting at most `timeout` (or for ever).
    pub fn next_event(&self, timeout: Option<Duration>) -> Option<Event> {
        match timeout {
            None => self.rx.recv().ok(),
            Some(t) => self.rx.recv_timeout(t).ok(),
        }
    }
}
