//! The chief-side hooks: finished background results reach the chief at its next turn
//! boundary without anyone asking.
//!
//! `claude-editor-hook chief-hook` runs as the chief's `UserPromptSubmit` and `Stop`
//! hook (`lib/chief-hooks.json`, installed by `install-hooks` or passed with
//! `--settings`). It does nothing unless `CLAUDE_EDITOR_HOOK_CHIEF=1` (a managed chief),
//! and it always exits 0:
//!
//! - `UserPromptSubmit`: the results join the prompt as additional context.
//! - `Stop`: the chief is told to go on with the results (`decision: block`), once. The
//!   results are marked delivered first, and a Stop that is already a continuation
//!   (`stop_hook_active`) is never blocked, so it cannot loop.

use std::io::Read;
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result};
use serde_json::{Value, json};

use crate::coordinator::results;
use crate::state::{ChiefId, Durability, StateDir, atomic_write_with};

/// The hook snippet, with `claude-editor-hook` as its command.
pub const SNIPPET: &str = include_str!("../../lib/chief-hooks.json");
/// Set for a chief whose hooks should act.
pub const CHIEF_ENV: &str = "CLAUDE_EDITOR_HOOK_CHIEF";

/// Runs the hook. Always returns 0.
pub fn hook() -> i32 {
    if std::env::var(CHIEF_ENV).as_deref() != Ok("1") {
        return 0;
    }
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = std::io::stdin().take(1 << 20).read_to_end(&mut bytes);
        let _ = tx.send(bytes);
    });
    let Ok(bytes) = rx.recv_timeout(Duration::from_secs(5)) else {
        return 0;
    };
    if let Ok(Some(output)) = respond(&bytes) {
        println!("{output}");
    }
    0
}

/// The hook's answer to one event, or `None` when there is nothing to deliver.
fn respond(input: &[u8]) -> Result<Option<Value>> {
    let event: Value = serde_json::from_slice(input)?;
    let chief = ChiefId::parse(event["session_id"].as_str().context("no session_id")?)?;
    let name = event["hook_event_name"].as_str().unwrap_or("");
    if name == "Stop" && event["stop_hook_active"] == true {
        return Ok(None);
    }
    if name != "Stop" && name != "UserPromptSubmit" {
        return Ok(None);
    }
    let state = StateDir::from_env()?;
    let pending = results::ready(&state, &chief)?;
    let ready = results::take(&state, &chief, pending.ready)?;
    if ready.is_empty() && pending.set_aside.is_empty() {
        return Ok(None);
    }
    let text = results::text(&ready, pending.running, &pending.set_aside);
    Ok(Some(match name {
        "Stop" => json!({
            "decision": "block",
            "reason": format!("Background results arrived; take them into account:\n\n{text}"),
        }),
        _ => json!({
            "hookSpecificOutput": {
                "hookEventName": "UserPromptSubmit",
                "additionalContext": text,
            }
        }),
    }))
}

/// The chief-side hooks as Claude Code settings, each running `command`. The snippet in
/// lib/ is the one source, for `install-hooks` and for the chief `up` starts.
pub(crate) fn chief_hooks(command: &str) -> Result<Value> {
    let mut snippet: Value = serde_json::from_str(SNIPPET).context("lib/chief-hooks.json")?;
    for entries in snippet["hooks"]
        .as_object_mut()
        .context("snippet hooks")?
        .values_mut()
    {
        for entry in entries.as_array_mut().into_iter().flatten() {
            for hook in entry["hooks"].as_array_mut().into_iter().flatten() {
                hook["command"] = json!(command);
            }
        }
    }
    Ok(snippet)
}

/// `install-hooks FILE`: merges the chief hooks into the settings file `path` (created if
/// missing), once, keeping everything else in it.
pub fn install(path: &Path) -> Result<i32> {
    let exe = std::env::current_exe().context("failed to find claude-editor-hook itself")?;
    let command = format!(
        "{} chief-hook",
        crate::shell::quote(&exe.display().to_string())
    );
    let mut settings: Value = match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .with_context(|| format!("{} is not JSON settings", path.display()))?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => json!({}),
        Err(e) => return Err(e).with_context(|| format!("failed to read {}", path.display())),
    };
    let hooks = settings
        .as_object_mut()
        .context("the settings file is not a JSON object")?
        .entry("hooks")
        .or_insert_with(|| json!({}));
    let snippet = chief_hooks(&command)?;
    let mut added = 0;
    for (event, entries) in snippet["hooks"].as_object().context("snippet hooks")? {
        let list = hooks
            .as_object_mut()
            .context("\"hooks\" is not an object")?
            .entry(event.as_str())
            .or_insert_with(|| json!([]));
        if list.to_string().contains("chief-hook") {
            continue;
        }
        for entry in entries.as_array().context("snippet entries")? {
            list.as_array_mut()
                .context("a hook event is not a list")?
                .push(entry.clone());
        }
        added += 1;
    }
    let mode = std::fs::metadata(path)
        .ok()
        .map(|m| std::os::unix::fs::PermissionsExt::mode(&m.permissions()));
    let mut bytes = serde_json::to_vec_pretty(&settings)?;
    bytes.push(b'\n');
    atomic_write_with(path, &bytes, Durability::Synced)?;
    if let Some(mode) = mode {
        std::fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(mode))?;
    }
    if added == 0 {
        println!("{} already has the chief hooks", path.display());
    } else {
        println!(
            "added the chief hooks to {}; start the chief with:\n  {CHIEF_ENV}=1 EDITOR=claude-editor-hook claude --settings {}",
            path.display(),
            path.display()
        );
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_snippet_is_valid_settings() {
        let v: Value = serde_json::from_str(SNIPPET).unwrap();
        assert_eq!(
            v["hooks"]["Stop"][0]["hooks"][0]["command"],
            "claude-editor-hook chief-hook"
        );
    }

    #[test]
    fn a_stop_that_is_already_a_continuation_is_never_blocked() {
        let input = br#"{"hook_event_name":"Stop","session_id":"s-1","stop_hook_active":true}"#;
        assert!(respond(input).unwrap().is_none());
    }
}
