//! Hosting an interactive Claude Code: the `claude` driver of `agent-wrap`.
//!
//! - [`delivery`]: the delivery machine, pure: how a task gets into the prompt box and
//!   how its turn ends, from hook and probe events, keys, timers and the registry.
//! - [`driver`]: the supervisor: starts and restarts Claude Code, holds a task while
//!   the box is not free, and reports to the host as a [`crate::agent::Driver`].
//! - [`session`]: the shell around it: carries out its effects on the PTY, the probe
//!   request, pid watches and timers.
//! - [`pty`]: the Claude Code process on a PTY, mirrored to the agent's window.
//! - [`keys`]: terminal replies that are not keys, and the one escape a task gets.
//! - [`message`]: the typed hook events, probe reports and probe requests.
//! - [`hook`]: `agent-wrap --hook`, the command Claude Code's hooks run; it drops each
//!   hook's JSON into the agent's `events/` directory for the host.
//! - [`probe`]: `agent-wrap --probe FILE`, the hosted Claude's `$EDITOR`. On the host's
//!   request it reads the prompt box exactly and loads a task into it
//!   (docs/design/claude-host.md); otherwise it opens the human's own editor.

pub mod delivery;
pub mod driver;
pub mod hook;
pub mod keys;
pub mod message;
pub mod probe;
pub mod pty;
pub mod session;

/// The agent's events directory, for the hook and the probe.
pub const EVENTS_ENV: &str = "AGENT_WRAP_EVENTS";
/// The agent's directory, where the probe finds the host's request.
pub const AGENT_DIR_ENV: &str = "AGENT_WRAP_AGENT_DIR";
/// The human's own editor, for Ctrl-G presses that are not the host's.
pub const USER_EDITOR_ENV: &str = "AGENT_WRAP_USER_EDITOR";
