//! The team as a whole: its configuration ([`config`]) and `claude-editor-hook up`
//! ([`up`]), which starts the chief and the agents in one tmux session, `down`
//! ([`down`]), which stops them, and its [`status`].

pub mod config;
pub mod down;
pub mod spawn;
pub mod status;
pub mod up;
