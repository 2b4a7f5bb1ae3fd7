//! Hosting an interactive Claude Code: the `claude` driver of `agent-wrap`.
//!
//! - [`hook`]: `agent-wrap --hook`, the command Claude Code's hooks run; it drops each
//!   hook's JSON into the agent's `events/` directory for the host.
//! - [`probe`]: `agent-wrap --probe FILE`, the hosted Claude's `$EDITOR`. On the host's
//!   request it reads the prompt box exactly and loads a task into it
//!   (docs/design/claude-host.md); otherwise it opens the human's own editor.
//! - [`session`]: the Claude Code process on a PTY, mirrored to the agent's window, and
//!   the delivery state machine driven by hook events.

pub mod hook;
pub mod probe;
pub mod session;

/// The agent's events directory, for the hook and the probe.
pub const EVENTS_ENV: &str = "AGENT_WRAP_EVENTS";
/// The agent's directory, where the probe finds the host's request.
pub const AGENT_DIR_ENV: &str = "AGENT_WRAP_AGENT_DIR";
/// The human's own editor, for Ctrl-G presses that are not the host's.
pub const USER_EDITOR_ENV: &str = "AGENT_WRAP_USER_EDITOR";
