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
    let (tx, rx) = channel();
    std::thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = std::io::stdin()
            .take(MAX_FILE_BYTES)
            .read_to_end(&mut bytes);
        let _ = tx.send(bytes);
    });
    let Ok(bytes) = rx.recv_timeout(READ_TIMEOUT) else {
        return 0;
    };
    let _ = write_event(Path::new(&dir), &bytes);
    0
}

/// Writes one event, if it is a JSON object, into the events directory.
pub fn write_event(dir: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let value: serde_json::Value = serde_json::from_slice(bytes)?;
    anyhow::ensure!(value.is_object(), "a hook event is a JSON object");
    let name = format!("{:020}-{}.json", now_us(), std::process::id());
    // Events live for milliseconds, until the host reads them: atomic, not durable.
    atomic_write_with(&dir.join(name), bytes, Durability::Volatile)
}
