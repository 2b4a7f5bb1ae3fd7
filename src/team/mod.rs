//! The team as a whole: its configuration ([`config`]) and `claude-editor-hook up`
//! ([`up`]), which starts the chief and the agents in one tmux session, and `down`
//! ([`down`]), which stops them.

pub mod config;
pub mod down;
pub mod spawn;
pub mod up;
