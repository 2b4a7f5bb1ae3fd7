//! Normal Ctrl-G editing: hand the prompt file to the user's real editor.
//!
//! The editor is `$CLAUDE_EDITOR_HOOK_EDITOR`, else `$VISUAL`, else `$EDITOR`, skipping
//! any that resolve to this binary, else `vi`. It is run the way git runs its editor: a
//! value with shell syntax or arguments (`code --wait`, `sh -c "…"`, `vim +star`) goes
//! through `sh -c '<value> "$@"'`, a plain program name or path is run directly.
//! `CLAUDE_EDITOR_HOOK_ACTIVE` is set for the editor, so a wrapper script that calls
//! `$EDITOR` again cannot loop back into us.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Result, bail};

pub const EDITOR_ENV: &str = "CLAUDE_EDITOR_HOOK_EDITOR";
pub const ACTIVE_ENV: &str = "CLAUDE_EDITOR_HOOK_ACTIVE";
const SELF_NAME: &str = "claude-editor-hook";

/// The characters that make git run an editor through the shell (git's `editor.c`):
/// with any of them, the value is shell syntax, not a program name.
const SHELL_SYNTAX: &[char] = &[
    '|', '&', ';', '<', '>', '(', ')', '$', '`', '\\', '"', '\'', ' ', '\t', '\n', '*', '?', '[',
    '#', '~', '=', '%',
];

/// The editor to run on the prompt file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Editor {
    /// The setting as the user wrote it.
    pub value: String,
}

impl Editor {
    fn new(value: &str) -> Self {
        Self {
            value: value.trim().to_owned(),
        }
    }

    /// Returns true if and only if the value needs the shell.
    pub fn needs_shell(&self) -> bool {
        self.value.contains(SHELL_SYNTAX)
    }

    /// The program the value starts with, for the loop check.
    fn program(&self) -> &str {
        self.value.split_ascii_whitespace().next().unwrap_or("")
    }

    /// The command that edits `file`.
    pub fn command(&self, file: &Path) -> Command {
        if self.needs_shell() {
            // `"$@"` is the file, passed as an argument: it is never parsed by the shell.
            let mut cmd = Command::new("sh");
            cmd.arg("-c")
                .arg(format!("{} \"$@\"", self.value))
                .arg(&self.value)
                .arg(file);
            cmd
        } else {
            let mut cmd = Command::new(&self.value);
            cmd.arg(file);
            cmd
        }
    }
}

/// The editor to run.
pub fn real_editor() -> Result<Editor> {
    let var = |k: &str| std::env::var(k).ok().filter(|v| !v.trim().is_empty());
    if let Some(v) = var(EDITOR_ENV) {
        let editor = Editor::new(&v);
        if is_self(editor.program()) {
            bail!("{EDITOR_ENV}={v} names claude-editor-hook itself; point it at a real editor");
        }
        return Ok(editor);
    }
    // Re-entered from an editor we started: $VISUAL/$EDITOR are what led back here.
    if std::env::var_os(ACTIVE_ENV).is_none() {
        for key in ["VISUAL", "EDITOR"] {
            if let Some(editor) = var(key)
                .map(|v| Editor::new(&v))
                .filter(|e| !is_self(e.program()))
            {
                return Ok(editor);
            }
        }
    }
    Ok(Editor::new("vi"))
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
    let editor = real_editor()?;
    let err = editor.command(file).env(ACTIVE_ENV, "1").exec();
    bail!(
        "failed to run editor `{}`: {err}; set {EDITOR_ENV} to your editor",
        editor.value
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_names_run_directly_and_anything_else_through_the_shell() {
        assert!(!Editor::new("vim").needs_shell());
        assert!(!Editor::new("/usr/bin/nano").needs_shell());
        assert!(Editor::new("code --wait").needs_shell());
        assert!(Editor::new("sh -c 'vi \"$1\"' x").needs_shell());
        let cmd = Editor::new("code --wait").command(Path::new("/tmp/p.md"));
        let args: Vec<_> = cmd
            .get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        assert_eq!(cmd.get_program(), "sh");
        assert_eq!(
            args,
            ["-c", "code --wait \"$@\"", "code --wait", "/tmp/p.md"]
        );
    }
}
