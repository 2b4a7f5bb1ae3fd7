//! The agent host run by `agent-wrap NAME`: registers the agent, takes tasks from its
//! inbox one at a time, runs each through a driver and writes the result and `.done`.
//!
//! - [`host`]: the event loop, the lock, status and task bookkeeping.
//! - [`run`]: the [`Driver`] trait every driver implements, and how a run ends.
//! - [`exec`], [`demo`], [`claude`]: the drivers: an external command, the built-in demo
//!   agent, and a hosted interactive Claude Code.
//! - [`timer`]: the loop's timers.
//! - [`output`]: where a running task's output goes (the window and `output.log`).

pub mod claude;
pub mod demo;
pub mod exec;
pub mod host;
pub mod output;
pub mod run;
pub mod timer;

pub use host::{HostOptions, run_host};
pub use run::{Driver, RunEnd, RunHandle};
