//! Command-line entry points. The binaries in `bin/` call [`editor_hook_main`] and
//! [`wrap_main`]; this is the one place that prints an error and picks the exit code.

mod board;
pub(crate) mod chief;
mod claude_editor_hook;
mod compact;
mod demo;
mod doctor;
mod run;
mod status;
mod verbs;
mod worktree;
mod wrap;

pub use claude_editor_hook::{EditorHookCli, editor_hook_main};
pub use wrap::{WrapCli, wrap_main};

/// Runs `f`, printing an error as `<prog>: <reason>` and exiting 1.
fn exit_with(prog: &str, result: anyhow::Result<i32>) -> std::process::ExitCode {
    match result {
        Ok(code) => std::process::ExitCode::from(u8::try_from(code).unwrap_or(1)),
        Err(err) => {
            eprintln!("{prog}: {err:#}");
            std::process::ExitCode::from(1)
        }
    }
}
