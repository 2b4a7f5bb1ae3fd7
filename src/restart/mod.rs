//! Restarting what died: `agent-wrap NAME --restart` (and `up --restart`, which starts
//! each agent window that way).
//!
//! With `--restart`, `agent-wrap` does not host the agent itself: it runs a second
//! `agent-wrap` with the same arguments as its child (the host), waits for it to end
//! (`waitid`: an event, no polling) and starts it again, in the same window and under
//! the same name, when it died: killed by a signal, or failed after it was up. A stop on
//! purpose is never restarted: `kill NAME` and `down` signal the host, which then exits
//! with 128 + the signal number, and so does a host that stopped itself for a reason it
//! printed. A host that failed before it was up (a refused state directory, a name that
//! is taken) is not restarted either: the same start would fail the same way.
//!
//! - [`backoff`]: the pause and the limit, shared with the hosted Claude Code's own
//!   restarts (`agent/claude/driver.rs`).
//! - [`machine`]: what to do on each end and signal, a pure `step(input) -> effects`.
//! - [`supervisor`]: the one event loop that carries the effects out.
//! - [`ready`]: how the host tells the supervisor it is up (a pipe).

pub mod backoff;
pub mod machine;
pub mod ready;
pub mod supervisor;

pub use backoff::{Backoff, RESTART_LIMIT, RESTART_WINDOW};
pub use machine::{Ended, Machine};
pub use ready::ReadyPipe;
pub use supervisor::supervise;
