//! What the coordinator writes back into the prompt file.
//!
//! Both shapes start with a one-line header whose first character is `[`, so the text
//! never starts with `/` or `!`, which Claude Code would run as a slash command or shell
//! command when the chief submits it (docs/claude-code.md#box-leading-slash).

use std::path::Path;

use anyhow::Result;

use crate::state::{AgentName, Durability, TaskId, atomic_write_with};
use crate::time::human_us;

/// Prefix of every failure line, so the user can tell who wrote it.
pub const FAILURE_PREFIX: &str = "[claude-editor-hook] ";

/// The agent's answer under a header naming the agent, the task and the duration, and
/// whether the human typed into the agent during the task.
pub fn answer(
    agent: &AgentName,
    task: &TaskId,
    elapsed_us: u64,
    human_input: bool,
    answer: &str,
) -> Vec<u8> {
    let human = if human_input {
        " · with human input"
    } else {
        ""
    };
    format!(
        "[@{agent} · task {task} · {}{human}]\n{answer}",
        human_us(elapsed_us)
    )
    .into_bytes()
}

/// A one-line reason above what the user wrote, which is kept byte for byte.
pub fn failure(reason: &str, user_text: &[u8]) -> Vec<u8> {
    let line: String = reason.lines().collect::<Vec<_>>().join(" ");
    let mut out = format!("{FAILURE_PREFIX}{line}\n").into_bytes();
    out.extend_from_slice(user_text);
    out
}

/// Replaces the prompt file atomically; Claude Code reads it by path after we exit
/// (docs/claude-code.md#editor-file) and deletes it, so it needs no fsync.
pub fn write(file: &Path, content: &[u8]) -> Result<()> {
    atomic_write_with(file, content, Durability::Volatile)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failure_keeps_the_user_text_and_is_one_line() {
        let out = failure("agent died\nwith details", b"@a /do \xff it");
        assert_eq!(
            out,
            b"[claude-editor-hook] agent died with details\n@a /do \xff it"
        );
    }

    #[test]
    fn answer_has_a_header() {
        let out = answer(
            &AgentName::parse("planning").unwrap(),
            &TaskId::parse("t-1").unwrap(),
            3_200_000,
            false,
            "/not a command",
        );
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "[@planning · task t-1 · 3.2s]\n/not a command"
        );
    }
}
