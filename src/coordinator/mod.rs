//! The coordinator: what runs as `$EDITOR` when the chief presses Ctrl-G.
//!
//! [`editor_mode`] reads the prompt file and either hands it to the user's real editor
//! ([`passthrough`]) or delegates it ([`delegate`]) while the chief waits, showing the
//! [`view`] when a terminal is attached, and writes the outcome back ([`prompt_file`]).

pub mod cancel;
pub mod delegate;
pub mod editor_mode;
pub mod multi;
pub mod passthrough;
pub mod prompt_file;
pub mod results;
pub mod route;
pub mod submit;
pub mod view;

pub use delegate::{Coordinator, Event, Progress, Report, preflight};
pub use editor_mode::{EditorOptions, run_editor_mode};
