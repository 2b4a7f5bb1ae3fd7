//! `agent-wrap --probe FILE`: the hosted Claude Code's `$EDITOR`.
//!
//! The host writes a request (`agents/<name>/probe.json`) and presses Ctrl-G in Claude
//! Code, which writes the prompt box to FILE and runs us (docs/claude-code.md#editor-argv, #editor-file, #editor-exit-zero-loads):
//!
//! - `deliver` ([`ProbeAction::Load`]): an empty box gets the task text and exit 0 (Claude loads it); a box with a
//!   human's draft is left alone: exit 0 with the file untouched (Claude keeps it, and
//!   shows no notice).
//! - `clear` ([`ProbeAction::Clear`]): a box holding exactly the given text (our interrupted task) is emptied.
//!
//! Either way the outcome goes to the host as an event `{"hook_event_name": "Probe", …}`.
//! Without a request the human pressed Ctrl-G: we open their own editor.

use std::os::unix::process::CommandExt;
use std::path::Path;

use super::message::{Event, ProbeAction, ProbeReport, ProbeRequest, ProbeResult};
use crate::state::{
    is_probe_spare, probe_request_path, probe_spare_path, probe_taken_path, read_json,
};
use anyhow::{Context, Result};

/// Runs probe mode on `file`; returns the exit status for Claude Code.
pub fn run(file: &Path) -> i32 {
    match probe(file) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("agent-wrap --probe: {e:#}");
            1
        }
    }
}

fn probe(file: &Path) -> Result<i32> {
    let agent_dir = std::env::var_os(super::AGENT_DIR_ENV).context("not run by agent-wrap")?;
    let events = std::env::var_os(super::EVENTS_ENV).context("not run by agent-wrap")?;
    let request_path = probe_request_path(Path::new(&agent_dir));
    // Take the request by renaming it, so one Ctrl-G answers one request.
    let taken = probe_taken_path(Path::new(&agent_dir), std::process::id());
    if std::fs::rename(&request_path, &taken).is_err() {
        if take_spare(&request_path) {
            // A Ctrl-G the host repeated after this delivery's probe had already run:
            // exit 0 with the file unchanged, which leaves the box as it is
            // (docs/claude-code.md#editor-exit-zero-loads).
            return Ok(0);
        }
        return open_user_editor(file);
    }
    let request: Option<ProbeRequest> = read_json(&taken)?;
    let _ = std::fs::remove_file(&taken);
    let request = request.context("empty probe request")?;
    report(&events, ProbeResult::Started, Some(request.nonce), None)?;
    // Ctrl-Gs the host repeated while Claude Code was starting us wait in the terminal's
    // input queue; the human's keys do not (the host holds them while we run). Drop
    // them, so none opens an editor after us.
    let _ = nix::sys::termios::tcflush(std::io::stdin(), nix::sys::termios::FlushArg::TCIFLUSH);
    let file_content =
        std::fs::read(file).with_context(|| format!("failed to read {}", file.display()))?;
    // With "Show last response in external editor" on, the box follows a comment block
    // (docs/claude-code.md#editor-context-block) that is not the human's text.
    let content = crate::directive::parse(&file_content).user_text.to_vec();
    let has_text = !content.trim_ascii().is_empty();
    // Whatever is left alone exits 0 with the file untouched, which keeps the box as it
    // was without the "quit unexpectedly" notice a non-zero exit shows in the agent's
    // window (docs/claude-code.md#editor-exit-notices, #editor-exit-zero-loads).
    let (result, code) = match request.action {
        ProbeAction::Load if has_text => (ProbeResult::Draft, 0),
        ProbeAction::Load => {
            // Claude Code removes one trailing newline from the file (docs/claude-code.md#editor-exit-zero-loads): add
            // one, so the box holds the task exactly.
            std::fs::write(file, format!("{}\n", request.text))?;
            (ProbeResult::Loaded, 0)
        }
        // Only our own task, put back by an interrupt (docs/claude-code.md#box-escape-interrupts), is cleared; anything
        // else in the box is the human's.
        ProbeAction::Clear
            if has_text && content.trim_ascii() == request.text.trim().as_bytes() =>
        {
            std::fs::write(file, b"")?;
            (ProbeResult::Cleared, 0)
        }
        ProbeAction::Clear if has_text => (ProbeResult::Kept, 0),
        ProbeAction::Clear => (ProbeResult::Empty, 0),
    };
    report(
        &events,
        result,
        Some(request.nonce),
        Some(content.len() as u64),
    )?;
    Ok(code)
}

/// Tells the host what we found or did. Our pid goes with it: the host sends Enter only
/// once we have exited, as a key typed while an editor runs arrives as a newline, not a
/// submit (docs/claude-code.md#editor-keys-queued).
fn report(
    events: &std::ffi::OsStr,
    result: ProbeResult,
    nonce: Option<u64>,
    box_bytes: Option<u64>,
) -> Result<()> {
    let event = Event::Probe(ProbeReport {
        result,
        nonce,
        pid: Some(std::process::id() as i32),
        box_bytes,
    });
    super::hook::write_event(Path::new(events), &serde_json::to_vec(&event)?)
}

/// The spare tokens beside the request: one per Ctrl-G the host repeated.
fn spares(request_path: &Path) -> Vec<std::path::PathBuf> {
    let Some(dir) = request_path.parent() else {
        return Vec::new();
    };
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter(|e| is_probe_spare(&e.file_name().to_string_lossy()))
        .map(|e| e.path())
        .collect()
}

/// Records that the host presses Ctrl-G once more for delivery `nonce`: the probe that
/// such a Ctrl-G starts after the request was taken exits quietly instead of opening
/// the human's editor.
pub fn add_spare(request_path: &Path, nonce: u64) -> Result<()> {
    let dir = request_path
        .parent()
        .context("probe request has no directory")?;
    let spare = probe_spare_path(dir, nonce, crate::time::now_us());
    crate::state::atomic_write(&spare, b"")?;
    Ok(())
}

/// Removes every spare token: called when a new delivery starts.
pub fn clear_spares(request_path: &Path) {
    for spare in spares(request_path) {
        let _ = std::fs::remove_file(spare);
    }
}

/// Takes one spare token; returns true if and only if there was one.
fn take_spare(request_path: &Path) -> bool {
    spares(request_path)
        .into_iter()
        .any(|spare| std::fs::remove_file(spare).is_ok())
}

/// The human pressed Ctrl-G in the agent's window: their editor, as they configured it.
/// The host is told first, so that it sends no Ctrl-G into that editor while it runs.
fn open_user_editor(file: &Path) -> Result<i32> {
    if let Some(events) = std::env::var_os(super::EVENTS_ENV) {
        let _ = report(&events, ProbeResult::UserEditor, None, None);
    }
    let editor = std::env::var(super::USER_EDITOR_ENV)
        .ok()
        .filter(|e| !e.trim().is_empty())
        .unwrap_or_else(|| "vi".into());
    let argv: Vec<&str> = editor.split_ascii_whitespace().collect();
    let err = std::process::Command::new(argv[0])
        .args(&argv[1..])
        .arg(file)
        .exec();
    anyhow::bail!("failed to run editor `{editor}`: {err}")
}
