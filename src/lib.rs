//! `claude-editor-hook`: delegate from Claude Code's Ctrl-G editor to persistent agents.
//!
//! The library holds everything testable; the two binaries in `bin/` only parse their
//! arguments and call into [`cli`].
//!
//! - [`state`]: the private state directory and its on-disk protocol (status, inbox, tasks).
//! - [`coordinator`]: editor mode, the round trip the chief waits on.
//! - [`agent`]: the agent host run by `agent-wrap` and its drivers.
//! - [`board`]: the team board (SQLite): tasks, dependencies, exactly-once claims, leases.
//! - [`watch`], [`doorbell`], [`signals`], [`process`]: the event sources that feed the two
//!   event loops.
//! - [`events`]: the durable event log every state change is appended to (`events`,
//!   `top`, notifications).
//! - [`directive`]: what an `@NAME …` prompt means.
//! - [`doctor`]: the setup checks of `claude-editor-hook doctor`.
//! - [`mcp`]: `claude-editor-hook mcp`, the coordination tools as an MCP server.
//! - [`run`]: fully automatic runs (`run "GOAL" -w N`): plan, a board of the run's own,
//!   parallel workers, progress, the report, resuming.
//! - [`worktree`]: an agent's own git worktree and branch (`diff`, `merge`, `sync`,
//!   `forget`).
//! - [`claude_code`]: Claude Code's own files we read (its session registry).
//! - [`shell`]: shell quoting; [`tmux`]: running tmux.
//! - [`view`]: `top`, the live terminal view of the team.
//! - [`restart`]: `agent-wrap --restart`, which starts a crashed host again.
//! - [`web`]: `serve`, the team from a browser: a live page and a JSON API.

pub mod agent;
pub mod board;
pub mod claude_code;
pub mod cli;
pub mod coordinator;
pub mod directive;
pub mod doctor;
pub mod doorbell;
pub mod events;
pub mod mcp;
pub mod process;
pub mod restart;
pub mod run;
pub mod shell;
pub mod signals;
pub mod state;
pub mod team;
pub mod time;
pub mod tmux;
pub mod view;
pub mod watch;
pub mod web;
pub mod worktree;
