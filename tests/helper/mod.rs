//! Test-support mini-library for the integration tests (one crate, `tests/main.rs`).
//!
//! - [`fake_api`]: an offline fake Anthropic Messages API for Claude Code.
//! - [`claude`]: finding `claude`, a dialog-free private `HOME`, hook settings.
//! - [`serve`]: a running `claude-editor-hook serve`, its URL and token; SIGTERM on drop.
//! - [`tmux`]: a private tmux server per test, killed on drop.
//! - [`wait`]: polling a condition up to a deadline instead of sleeping.

// Each test module uses only part of these helpers, and the test crate
// reports every helper no test calls yet as dead code.
#![allow(dead_code, reason = "not every test uses every helper")]

pub mod claude;
pub mod fake_api;
pub mod serve;
pub mod tmux;
pub mod wait;
