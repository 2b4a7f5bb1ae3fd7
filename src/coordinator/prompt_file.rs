//! What the coordinator writes back into the prompt file.
//!
//! Both shapes start with a one-line header whose first character is `[`, so the text
//! never starts with `/` or `!`, which Claude Code would run as a slash command or shell
//! command when the chief submits it (docs/claude-code.md#box-leading-slash).

use std::path::Path;

use anyhow::Result;

use crate::state::{AgentName, Done, Durability, TaskId, atomic_write_with};
use crate::time::human_us;

/// Prefix of every failure line, so the user can tell who wrote it.
pub const FAILURE_PREFIX: &str = "[claude-editor-hook] ";

/// The agent's answer under a header naming the agent, the task and the duration,
/// whether the human typed into the agent during the task, and what the task changed on
/// a worktree agent's branch.
pub fn answer(
    agent: &AgentName,
    task: &TaskId,
    elapsed_us: u64,
    done: &Done,
    answer: &str,
    invalid_bytes: usize,
) -> Vec<u8> {
    let human = if done.human_input {
        " · with human input"
    } else {
        ""
    };
    let changes = match &done.changes {
        Some(c) if c.files == 1 => format!(" · 1 file changed on {}", c.branch),
        Some(c) if c.files > 1 => format!(" · {} files changed on {}", c.files, c.branch),
        _ => String::new(),
    };
    format!(
        "[@{agent} · task {task} · {}{human}{changes}{}]\n{answer}",
        human_us(elapsed_us),
        invalid_note(invalid_bytes)
    )
    .into_bytes()
}

/// The header's note on an answer that was not all UTF-8: the prompt box needs text, so
/// invalid bytes show as U+FFFD, and the header says how many (the stored result keeps
/// them).
fn invalid_note(invalid_bytes: usize) -> String {
    match invalid_bytes {
        0 => String::new(),
        1 => " · 1 byte not UTF-8, shown as \u{FFFD}".to_owned(),
        n => format!(" · {n} bytes not UTF-8, shown as \u{FFFD}"),
    }
}

/// `bytes` as text, each invalid UTF-8 sequence as U+FFFD, and how many bytes were not
/// UTF-8.
pub fn lossy(bytes: &[u8]) -> (String, usize) {
    let invalid = bytes.utf8_chunks().map(|c| c.invalid().len()).sum();
    (String::from_utf8_lossy(bytes).into_owned(), invalid)
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
        let mut done: Done = serde_json::from_value(serde_json::json!({
            "version": 1, "task_id": "t-1", "outcome": "ok", "reason": null,
            "finished_by": "agent", "created_at_us": 0, "claimed_at_us": null,
            "started_at_us": null, "finished_at_us": 0, "result_bytes": 14
        }))
        .unwrap();
        let (agent, task) = (
            AgentName::parse("planning").unwrap(),
            TaskId::parse("t-1").unwrap(),
        );
        let out = answer(&agent, &task, 3_200_000, &done, "/not a command", 0);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "[@planning · task t-1 · 3.2s]\n/not a command"
        );
        done.changes = Some(crate::state::TaskChanges {
            branch: "agent/planning".into(),
            files: 4,
        });
        let out = answer(&agent, &task, 3_200_000, &done, "x", 0);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "[@planning · task t-1 · 3.2s · 4 files changed on agent/planning]\nx"
        );
    }
}
