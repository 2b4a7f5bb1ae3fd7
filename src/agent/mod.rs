//! The agent host run by `agent-wrap NAME`: registers the agent, takes tasks from its
//! inbox one at a time, runs each through a driver and writes the result and `.done`.
//!
//! - [`host`]: the event loop, the lock, status and task bookkeeping.
//! - [`driver`]: how a task is run: an external command ([`exec`]) or the built-in
//!   [`demo`] agent.
//! - [`output`]: where a running task's output goes (the window and `output.log`).

pub mod claude;
pub mod demo;
pub mod driver;
pub mod exec;
pub mod host;
pub mod output;

pub use driver::{Driver, RunEnd, RunHandle};
pub use host::{HostOptions, run_host};
