//! `agent-wrap --hook`: run by Claude Code for each configured hook event.
//!
//! It reads the hook's JSON from stdin (bounded in size and time), writes it atomically
//! into `$AGENT_WRAP_EVENTS/<time>-<pid>.json`, and exits 0 whatever happens: a hook must
//! never fail or stall the host's Claude Code. Outside a hosted session (no
//! `AGENT_WRAP_EVENTS`) it does nothing.

use std::io::Read;
use std::path::Path;
use std::sync::mpsc::channel;
use std::time::Duration;

use crate::state::{Durability, MAX_FILE_BYTES, atomic_write_with};
use crate::time::now_us;

/// How long the hook waits for Claude Code to finish writing its stdin.
const READ_TIMEOUT: Duration = Duration::from_secs(10);

/// Runs hook mode. Always returns 0.
pub fn run() -> i32 {
    let Some(dir) = std::env::var_os(super::EVENTS_ENV) else {
        return 0;
    };
    if let Some(bytes) = read_stdin() {
        let _ = write_event(Path::new(&dir), &bytes);
    }
    0
}

/// Runs status-line mode (`agent-wrap --status-line`), Claude Code's `statusLine`
/// command in a hosted session: passes the cost Claude Code reports to the host as a
/// `StatusLine` event (docs/claude-code.md#status-line-cost) and prints the agent's line.
/// Always returns 0; outside a hosted session it prints nothing.
pub fn run_status_line() -> i32 {
    let Some(dir) = std::env::var_os(super::EVENTS_ENV) else {
        return 0;
    };
    let Some(bytes) = read_stdin() else {
        return 0;
    };
    let Some(event) = status_line_event(&bytes) else {
        return 0;
    };
    let _ = write_event(Path::new(&dir), event.to_string().as_bytes());
    let name = std::env::var_os(super::AGENT_DIR_ENV)
        .and_then(|d| {
            Path::new(&d)
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
        })
        .unwrap_or_default();
    println!("{}", status_line_text(&name, event["cost_usd"].as_f64()));
    0
}

/// The host's `StatusLine` event from Claude Code's status-line JSON: only the session
/// and its cost, which is all the host keeps.
fn status_line_event(bytes: &[u8]) -> Option<serde_json::Value> {
    let input: serde_json::Value = serde_json::from_slice(bytes).ok()?;
    Some(serde_json::json!({
        "hook_event_name": "StatusLine",
        "session_id": input.get("session_id")?,
        "cost_usd": input["cost"]["total_cost_usd"].as_f64(),
    }))
}

/// What the agent's window shows under its prompt box.
fn status_line_text(name: &str, cost_usd: Option<f64>) -> String {
    match cost_usd {
        Some(usd) => format!("agent {name} · ${usd:.4} this session"),
        None => format!("agent {name}"),
    }
}

/// Claude Code's JSON on stdin, bounded in size and time: a stalled writer must not
/// stall the hook.
fn read_stdin() -> Option<Vec<u8>> {
    let (tx, rx) = channel();
    std::thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = std::io::stdin()
            .take(MAX_FILE_BYTES)
            .read_to_end(&mut bytes);
        let _ = tx.send(bytes);
    });
    rx.recv_timeout(READ_TIMEOUT).ok()
}

/// Writes one event, if it is a JSON object, into the events directory.
pub fn write_event(dir: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let value: serde_json::Value = serde_json::from_slice(bytes)?;
    anyhow::ensure!(value.is_object(), "a hook event is a JSON object");
    let name = format!("{:020}-{}.json", now_us(), std::process::id());
    // Events live for milliseconds, until the host reads them: atomic, not durable.
    atomic_write_with(&dir.join(name), bytes, Durability::Volatile)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_status_line_keeps_the_session_and_its_cost() {
        let input = br#"{"session_id":"s-1","cost":{"total_cost_usd":0.0512,"total_duration_ms":9},"model":{"id":"m"}}"#;
        let event = status_line_event(input).unwrap();
        assert_eq!(
            event,
            serde_json::json!({"hook_event_name": "StatusLine", "session_id": "s-1", "cost_usd": 0.0512})
        );
        let read: super::super::message::Event = serde_json::from_value(event).unwrap();
        assert_eq!(
            read,
            super::super::message::Event::StatusLine {
                cost_usd: Some(0.0512)
            }
        );
        assert_eq!(
            status_line_text("planning", Some(0.0512)),
            "agent planning · $0.0512 this session"
        );
        assert_eq!(status_line_text("planning", None), "agent planning");
        assert!(status_line_event(b"not json").is_none());
        assert!(
            status_line_event(br#"{"cost":{}}"#).is_none(),
            "no session: not ours to count"
        );
    }
}
