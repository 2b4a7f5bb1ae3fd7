//! Claude Code's own files that we read: its session registry,
//! `~/.claude/sessions/<pid>.json`, one file per running Claude Code
//! (docs/claude-code.md#session-registry), a session's transcript
//! (docs/claude-code.md#transcript), and `~/.claude.json` for the dialogs it shows before
//! its first prompt (docs/claude-code.md#startup-dialogs). Every path into them and every reading of them
//! comes from here. Also which renderer a hosted Claude Code should run
//! ([`fullscreen_for_host`]).

use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::Value;

/// `~/.claude/sessions`, or `None` without `$HOME`.
pub fn sessions_dir() -> Option<PathBuf> {
    std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".claude/sessions"))
}

/// The dialog an interactive Claude Code started in `dir` will show before its first
/// prompt, from `~/.claude.json` (docs/claude-code.md#startup-dialogs, #trust-key): the
/// first-run setup, the trust dialog for `dir`, or the question about a custom API key
/// (when `api_key` is set). `None` when it starts straight into the prompt box.
pub fn startup_dialog(dir: &Path, api_key: Option<&str>) -> Option<String> {
    let home = std::env::var_os("HOME")?;
    let config: Value = crate::state::read_optional(&PathBuf::from(home).join(".claude.json"))
        .ok()
        .flatten()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or(Value::Null);
    if config["hasCompletedOnboarding"] != true {
        return Some("Claude Code's first-run setup".into());
    }
    let real = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
    let top = real
        .ancestors()
        .find(|d| d.join(".git").exists())
        .map(Path::to_path_buf);
    let trusted = [Some(real.clone()), top].into_iter().flatten().any(|d| {
        config["projects"][d.to_string_lossy().as_ref()]["hasTrustDialogAccepted"] == true
    });
    if !trusted {
        return Some(format!("the trust dialog for {}", real.display()));
    }
    if let Some(key) = api_key.filter(|k| k.len() >= 20) {
        let tail = &key[key.len() - 20..];
        let approved = config["customApiKeyResponses"]["approved"]
            .as_array()
            .is_some_and(|a| a.iter().any(|k| k == tail));
        if !approved {
            return Some("the question whether to use the API key in ANTHROPIC_API_KEY".into());
        }
    }
    None
}

/// The variable that turns Claude Code's fullscreen renderer on (`1`) or off (`0`)
/// (docs/claude-code.md#editor-repaint).
pub const FULLSCREEN_ENV: &str = "CLAUDE_CODE_NO_FLICKER";

/// The first verified version whose classic renderer no longer repaints the whole
/// conversation after an external editor (docs/claude-code.md#editor-repaint).
pub const REPAINT_FIXED_IN: crate::doctor::version::Version =
    crate::doctor::version::Version(2, 1, 332);

/// Returns true if and only if the Claude Code at `program` should run its fullscreen
/// renderer under `agent-wrap`: it is older than [`REPAINT_FIXED_IN`], where the classic
/// renderer repaints the whole conversation below itself after every external-editor
/// run, which is how tasks are delivered, so each task would leave a second copy of the
/// conversation in the agent's window (docs/claude-code.md#editor-repaint). A choice of
/// the user's own (`CLAUDE_CODE_NO_FLICKER` or `CLAUDE_CODE_DISABLE_ALTERNATE_SCREEN` set)
/// is kept, and so is the renderer of a version that cannot be told.
pub fn fullscreen_for_host(program: &Path) -> bool {
    let chosen = [FULLSCREEN_ENV, "CLAUDE_CODE_DISABLE_ALTERNATE_SCREEN"]
        .iter()
        .any(|v| std::env::var_os(v).is_some());
    if chosen {
        return false;
    }
    crate::process::output_within(std::time::Duration::from_secs(10), program, &["--version"])
        .ok()
        .and_then(|text| crate::doctor::version::Version::parse(&text))
        .is_some_and(|v| v < REPAINT_FIXED_IN)
}

/// The registry file of the Claude Code with process id `pid`.
pub fn registry_path(pid: u32) -> Option<PathBuf> {
    Some(sessions_dir()?.join(format!("{pid}.json")))
}

/// What one registry file says; the fields we use.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct Registry {
    #[serde(default, rename = "sessionId")]
    pub session_id: Option<String>,
    /// `idle`, `busy`, ... (docs/claude-code.md#session-registry).
    #[serde(default)]
    pub status: Option<String>,
}

impl Registry {
    /// The registry of Claude Code `pid`; `None` when it has none or it is unreadable.
    pub fn read(pid: u32) -> Option<Self> {
        Self::read_path(&registry_path(pid)?)
    }

    pub fn read_path(path: &std::path::Path) -> Option<Self> {
        let bytes = crate::state::read_optional(path).ok()??;
        serde_json::from_slice(&bytes).ok()
    }

    /// Returns true if and only if it says Claude Code is idle.
    pub fn is_idle(&self) -> bool {
        self.status.as_deref() == Some("idle")
    }
}

/// The whole text of the turn that answered `prompt`: every assistant text block after
/// the last user line holding `prompt`, from the transcript
/// (docs/claude-code.md#transcript). `None` when the turn cannot be found, and the
/// caller keeps Stop's `last_assistant_message`.
pub fn turn_text(transcript: &Path, prompt: &str) -> Option<String> {
    let lines = transcript_lines(transcript, 0)?;
    let start = lines.iter().rposition(|v| is_user_prompt(v, prompt))?;
    let texts: Vec<&str> = lines[start + 1..]
        .iter()
        .filter(|v| v["type"] == "assistant")
        .filter_map(|v| v["message"]["content"].as_array())
        .flatten()
        .filter(|b| b["type"] == "text")
        .filter_map(|b| b["text"].as_str())
        .collect();
    (!texts.is_empty()).then(|| texts.join("\n\n"))
}

/// The tokens of the turn that answered `prompt`, from byte `from` of the transcript
/// on: the `usage` of each API message of the turn (its last line, the blocks of one
/// message sharing `message.id`), summed (docs/claude-code.md#transcript). `None` until
/// the turn is complete in the transcript: its `turn_duration` line, which may be after
/// the `Stop` hook, or the next prompt, which comes first when the transcript lags (seen
/// with 2.1.197: the first of two quick tasks was counted with the second's messages).
pub fn turn_usage(transcript: &Path, from: u64, prompt: &str) -> Option<crate::state::TokenUsage> {
    let lines = transcript_lines(transcript, from)?;
    let start = lines.iter().rposition(|v| is_user_prompt(v, prompt))?;
    let turn = &lines[start + 1..];
    let end = turn.iter().position(|v| {
        (v["type"] == "system" && v["subtype"] == "turn_duration") || is_a_prompt(v)
    })?;
    let mut messages: Vec<(&Value, &Value)> = Vec::new();
    for v in turn[..end].iter().filter(|v| v["type"] == "assistant") {
        let id = &v["message"]["id"];
        let usage = &v["message"]["usage"];
        match messages.iter_mut().find(|(m, _)| *m == id && !id.is_null()) {
            Some(entry) => entry.1 = usage,
            None => messages.push((id, usage)),
        }
    }
    let mut sum = crate::state::TokenUsage::default();
    for (_, u) in messages {
        let n = |k: &str| u[k].as_u64().unwrap_or(0);
        sum.add(&crate::state::TokenUsage {
            input_tokens: n("input_tokens"),
            output_tokens: n("output_tokens"),
            cache_creation_input_tokens: n("cache_creation_input_tokens"),
            cache_read_input_tokens: n("cache_read_input_tokens"),
        });
    }
    Some(sum)
}

/// The transcript's length now: where a delivery starting now begins in it.
pub fn transcript_len(transcript: &Path) -> u64 {
    std::fs::metadata(transcript).map_or(0, |m| m.len())
}

/// Returns true if and only if the transcript, from byte `from` on, holds a user line
/// with `prompt` followed by the `{"type":"system","subtype":"turn_duration"}` line of a
/// turn that ended normally; an interrupted turn writes none
/// (docs/claude-code.md#transcript).
pub fn turn_ended(transcript: &Path, from: u64, prompt: &str) -> bool {
    let Some(lines) = transcript_lines(transcript, from) else {
        return false;
    };
    lines
        .iter()
        .rposition(|v| is_user_prompt(v, prompt))
        .is_some_and(|at| {
            lines[at + 1..]
                .iter()
                .any(|v| v["type"] == "system" && v["subtype"] == "turn_duration")
        })
}

/// The transcript's JSON lines from byte `from` on; `None` when it cannot be read.
fn transcript_lines(transcript: &Path, from: u64) -> Option<Vec<Value>> {
    let bytes = crate::state::read_optional(transcript).ok()??;
    let since = usize::try_from(from)
        .ok()
        .and_then(|from| bytes.get(from..))
        .unwrap_or(&[]);
    Some(
        since
            .split(|&b| b == b'\n')
            .filter_map(|l| serde_json::from_slice(l).ok())
            .collect(),
    )
}

/// Returns true if and only if transcript line `v` is a user line holding `prompt`.
/// A user line that is a prompt (text), not a tool's result nor a line Claude Code adds
/// (`isMeta`): the start of the next turn.
fn is_a_prompt(v: &Value) -> bool {
    if v["type"] != "user" || v["isMeta"] == true {
        return false;
    }
    let content = &v["message"]["content"];
    match content.as_array() {
        Some(blocks) => {
            blocks.iter().any(|b| b["type"] == "text")
                && !blocks.iter().any(|b| b["type"] == "tool_result")
        }
        None => content.is_string(),
    }
}

fn is_user_prompt(v: &Value, prompt: &str) -> bool {
    v["type"] == "user" && {
        let content = &v["message"]["content"];
        let texts: Vec<&str> = match content.as_array() {
            Some(blocks) => blocks.iter().filter_map(|b| b["text"].as_str()).collect(),
            None => content.as_str().into_iter().collect(),
        };
        texts.iter().any(|t| t.trim() == prompt.trim())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_whole_turn_comes_from_the_transcript() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.jsonl");
        let lines = [
            r#"{"type":"user","message":{"role":"user","content":"old task"}}"#,
            r#"{"type":"assistant","message":{"content":[{"type":"text","text":"old answer"}]}}"#,
            r#"{"type":"user","message":{"role":"user","content":[{"type":"text","text":"new task"}]}}"#,
            r#"{"type":"assistant","message":{"content":[{"type":"text","text":"Let me check."}]}}"#,
            r#"{"type":"assistant","message":{"content":[{"type":"tool_use","name":"Bash"}]}}"#,
            r#"{"type":"user","message":{"content":[{"type":"tool_result","content":"x"}]}}"#,
            r#"{"type":"assistant","message":{"content":[{"type":"text","text":"Done."}]}}"#,
            r#"{"type":"system","subtype":"turn_duration"}"#,
        ];
        std::fs::write(&path, lines.join("\n")).unwrap();
        assert_eq!(
            turn_text(&path, "new task").as_deref(),
            Some("Let me check.\n\nDone.")
        );
        assert_eq!(turn_text(&path, "missing"), None);
    }

    #[test]
    fn a_turn_ended_only_with_turn_duration_after_our_prompt_since_the_mark() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.jsonl");
        let old = concat!(
            r#"{"type":"user","message":{"content":"task"}}"#,
            "\n",
            r#"{"type":"system","subtype":"turn_duration"}"#,
            "\n",
        );
        std::fs::write(&path, old).unwrap();
        let mark = transcript_len(&path);
        assert_eq!(mark, old.len() as u64);
        // The same prompt's earlier turn, before the mark, does not count.
        assert!(turn_ended(&path, 0, "task"));
        assert!(!turn_ended(&path, mark, "task"));
        // Our prompt, then an interrupted turn: no turn_duration.
        let ours = concat!(
            r#"{"type":"user","message":{"content":[{"type":"text","text":"task"}]}}"#,
            "\n",
            r#"{"type":"assistant","message":{"content":[{"type":"text","text":"Hal"}]}}"#,
            "\n",
        );
        std::fs::write(&path, format!("{old}{ours}")).unwrap();
        assert!(!turn_ended(&path, mark, "task"));
        let ended = r#"{"type":"system","subtype":"turn_duration","durationMs":5}"#;
        std::fs::write(&path, format!("{old}{ours}{ended}\n")).unwrap();
        assert!(turn_ended(&path, mark, "task"));
        assert!(!turn_ended(&path, mark, "another task"));
        assert!(!turn_ended(&dir.path().join("missing"), 0, "task"));
        assert_eq!(transcript_len(&dir.path().join("missing")), 0);
    }

    #[test]
    fn a_turn_s_tokens_sum_its_messages_once_each() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.jsonl");
        let u = |i: u64, o: u64| {
            format!(
                r#"{{"input_tokens":{i},"output_tokens":{o},"cache_creation_input_tokens":1,"cache_read_input_tokens":2}}"#
            )
        };
        let lines = [
            r#"{"type":"user","message":{"content":"task"}}"#.to_owned(),
            format!(
                r#"{{"type":"assistant","message":{{"id":"m1","usage":{}}}}}"#,
                u(10, 1)
            ),
            format!(
                r#"{{"type":"assistant","message":{{"id":"m1","usage":{}}}}}"#,
                u(10, 5)
            ),
            r#"{"type":"user","message":{"content":[{"type":"tool_result","content":"x"}]}}"#
                .to_owned(),
            format!(
                r#"{{"type":"assistant","message":{{"id":"m2","usage":{}}}}}"#,
                u(20, 7)
            ),
        ];
        std::fs::write(&path, lines.join("\n")).unwrap();
        // Not complete yet: no turn_duration line.
        assert_eq!(turn_usage(&path, 0, "task"), None);
        let ended = r#"{"type":"system","subtype":"turn_duration"}"#;
        std::fs::write(&path, format!("{}\n{ended}\n", lines.join("\n"))).unwrap();
        let sum = turn_usage(&path, 0, "task").unwrap();
        let thirty = crate::state::TokenUsage {
            input_tokens: 30,
            output_tokens: 12,
            cache_creation_input_tokens: 2,
            cache_read_input_tokens: 4,
        };
        assert_eq!(sum, thirty);
        // A lagging transcript: the next task's prompt and messages before this turn's
        // turn_duration. The turn ends at the next prompt, and a meta line does not end it.
        let meta = r#"{"type":"user","isMeta":true,"message":{"content":"caveat"}}"#;
        let next = [
            r#"{"type":"user","message":{"content":[{"type":"text","text":"task 2"}]}}"#.to_owned(),
            format!(
                r#"{{"type":"assistant","message":{{"id":"m3","usage":{}}}}}"#,
                u(99, 9)
            ),
            ended.to_owned(),
        ];
        let lagging = format!("{}\n{meta}\n{}\n", lines.join("\n"), next.join("\n"));
        std::fs::write(&path, lagging).unwrap();
        assert_eq!(turn_usage(&path, 0, "task").unwrap(), thirty);
        assert_eq!(turn_usage(&path, 0, "task 2").unwrap().input_tokens, 99);
    }

    #[test]
    fn a_registry_reads_its_status_and_session() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("1.json");
        std::fs::write(
            &path,
            r#"{"pid":1,"sessionId":"abc","status":"idle","x":[]}"#,
        )
        .unwrap();
        let r = Registry::read_path(&path).unwrap();
        assert!(r.is_idle());
        assert_eq!(r.session_id.as_deref(), Some("abc"));
        std::fs::write(&path, r#"{"status":"busy"}"#).unwrap();
        assert!(!Registry::read_path(&path).unwrap().is_idle());
        std::fs::write(&path, b"not json").unwrap();
        assert!(Registry::read_path(&path).is_none());
    }
}
