//! Normal Ctrl-G editing: hand the prompt file to the user's real editor.
//!
//! The editor is `$CLAUDE_EDITOR_HOOK_EDITOR`, else `$VISUAL`, else `$EDITOR`, skipping
//! any that resolve to this binary, else `vi`. Values are split on whitespace like Claude
//! Code does (no shell, docs/claude-code.md#editor-argv). `CLAUDE_EDITOR_HOOK_ACTIVE` is set for
//! the editor, so a wrapper script that calls `$EDITOR` again cannot loop back into us.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Result, bail};

pub const EDITOR_ENV: &str = "CLAUDE_EDITOR_HOOK_EDITOR";
pub const ACTIVE_ENV: &str = "CLAUDE_EDITOR_HOOK_ACTIVE";
const SELF_NAME: &str = "claude-editor-hook";

/// The argv of the editor to run (without the file).
pub fn real_editor() -> Result<Vec<String>> {
    let var = |k: &str| std::env::var(k).ok().filter(|v| !v.trim().is_empty());
    if let Some(v) = var(EDITOR_ENV) {
        let argv = split(&v);
        if is_self(&argv[0]) {
            bail!("{EDITOR_ENV}={v} names claude-editor-hook itself; point it at a real editor");
        }
        return Ok(argv);
    }
    // Re-entered from an editor we started: $VISUAL/$EDITOR are what led back here.
    if std::env::var_os(ACTIVE_ENV).is_none() {
        for key in ["VISUAL", "EDITOR"] {
            if let Some(argv) = var(key).map(|v| split(&v)).filter(|a| !is_self(&a[0])) {
                return Ok(argv);
            }
        }
    }
    Ok(vec!["vi".into()])
}

fn split(value: &str) -> Vec<String> {
    value.split_ascii_whitespace().map(str::to_owned).collect()
}

/// Returns true if and only if `program` resolves to this binary (or one named like it).
fn is_self(program: &str) -> bool {
    if Path::new(program)
        .file_name()
        .is_some_and(|n| n == SELF_NAME)
    {
        return true;
    }
    let Some(path) = resolve(program) else {
        return false;
    };
    let canon = |p: &Path| std::fs::canonicalize(p).ok();
    match (
        canon(&path),
        std::env::current_exe().ok().and_then(|e| canon(&e)),
    ) {
        (Some(a), Some(b)) => a == b,
        _ => false,
    }
}

/// Finds `program` the way `execvp` would.
fn resolve(program: &str) -> Option<PathBuf> {
    if program.contains('/') {
        return Some(PathBuf::from(program));
    }
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join(program))
        .find(|p| p.is_file())
}

/// Replaces this process with the real editor on `file`. Returns only on failure.
pub fn exec_editor(file: &Path) -> Result<std::convert::Infallible> {
    let argv = real_editor()?;
    let err = Command::new(&argv[0])
        .args(&argv[1..])
        .arg(file)
        .env(ACTIVE_ENV, "1")
        .exec();
    bail!(
        "failed to run editor `{}`: {err}; set {EDITOR_ENV} to your editor",
        argv.join(" ")
    )
}
