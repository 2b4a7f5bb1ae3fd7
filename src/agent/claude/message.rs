//! The messages between the host and the processes its Claude Code runs, typed on both
//! sides: the hook events Claude Code passes to `agent-wrap --hook`, the probe's reports
//! (written as events of their own, `hook_event_name: "Probe"`), and the host's request
//! to the probe (`probe.json`). Fields are documented in docs/protocol.md.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::state::FORMAT_VERSION;

/// One event from `events/`: a Claude Code hook, or a probe report.
///
/// Only the fields the host acts on are named; the rest of a hook's JSON is ignored, and
/// hooks the host does not act on read as [`Event::Other`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "hook_event_name")]
pub enum Event {
    SessionStart {
        #[serde(default)]
        session_id: Option<String>,
        /// `startup`, `resume`, `clear`, or `fork` for a `--fork-session` copy
        /// (docs/claude-code.md#hook-session-start).
        #[serde(default)]
        source: Option<String>,
    },
    UserPromptSubmit {
        #[serde(default)]
        prompt: String,
        /// The prompt's id; the `Stop` of its turn carries it (docs/claude-code.md#hook-stop).
        #[serde(default)]
        prompt_id: Option<String>,
    },
    Stop {
        #[serde(default)]
        last_assistant_message: String,
        #[serde(default)]
        transcript_path: Option<PathBuf>,
        /// The `prompt_id` of the turn's `UserPromptSubmit`.
        #[serde(default)]
        prompt_id: Option<String>,
    },
    StopFailure {
        #[serde(default)]
        last_assistant_message: String,
        #[serde(default)]
        prompt_id: Option<String>,
    },
    PermissionRequest {
        #[serde(default)]
        tool_name: String,
    },
    PostToolUse {},
    /// A tool is about to run (docs/claude-code.md#hook-pre-tool-use).
    PreToolUse {
        #[serde(default)]
        tool_name: String,
        #[serde(default)]
        tool_input: serde_json::Value,
    },
    MessageDisplay {
        #[serde(default)]
        delta: String,
    },
    Notification {
        #[serde(default)]
        notification_type: String,
        #[serde(default)]
        message: String,
    },
    /// Written by `agent-wrap --status-line`, Claude Code's status-line command: the
    /// cost Claude Code reports for the session (docs/claude-code.md#status-line-cost).
    StatusLine {
        #[serde(default)]
        cost_usd: Option<f64>,
    },
    /// Written by the probe, not by Claude Code.
    Probe(ProbeReport),
    #[serde(other)]
    Other,
}

/// What every hook event carries besides its own fields: read on its own, so that the
/// shell knows the session's transcript whatever the event (docs/claude-code.md#transcript).
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
pub struct HookCommon {
    #[serde(default)]
    pub transcript_path: Option<PathBuf>,
}

/// What the probe found or did.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ProbeReport {
    pub result: ProbeResult,
    /// The request's nonce; absent for [`ProbeResult::UserEditor`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nonce: Option<u64>,
    /// The probe's pid: Enter goes only after it exited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<i32>,
    /// How many bytes of the human's text the box held.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub box_bytes: Option<u64>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ProbeResult {
    /// The probe took the request (sent before it looks at the box).
    Started,
    /// `load`: the box was empty and now holds the text.
    Loaded,
    /// `load`: the box holds a human's draft, left as it was.
    Draft,
    /// `clear`: the box held exactly our text and is now empty.
    Cleared,
    /// `clear`: the box holds something else, left as it was.
    Kept,
    /// `clear`: the box was empty.
    Empty,
    /// No request: the human pressed Ctrl-G, and their own editor runs as `pid`.
    UserEditor,
}

/// The host's request to the probe, `agents/<name>/probe.json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ProbeRequest {
    pub version: u32,
    /// Echoed in the report, so a late answer to an old request is ignored.
    pub nonce: u64,
    pub action: ProbeAction,
    /// The text to load into an empty box, or to clear from it.
    pub text: String,
}

/// What the probe is asked to do with the prompt box.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProbeAction {
    /// Put the text into an empty box; leave a draft alone. Written `deliver` on disk.
    #[serde(rename = "deliver")]
    Load,
    /// Empty a box that holds exactly the text (our interrupted task).
    Clear,
}

impl ProbeRequest {
    pub fn new(nonce: u64, action: ProbeAction, text: String) -> Self {
        Self {
            version: FORMAT_VERSION,
            nonce,
            action,
            text,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hook_json_reads_as_typed_events() {
        let stop: Event = serde_json::from_str(
            r#"{"hook_event_name":"Stop","session_id":"s","last_assistant_message":"hi","extra":1}"#,
        )
        .unwrap();
        assert_eq!(
            stop,
            Event::Stop {
                last_assistant_message: "hi".into(),
                transcript_path: None,
                prompt_id: None,
            }
        );
        let other: Event =
            serde_json::from_str(r#"{"hook_event_name":"SessionEnd","reason":"x"}"#).unwrap();
        assert_eq!(other, Event::Other);
        let tool: Event =
            serde_json::from_str(r#"{"hook_event_name":"PostToolUse","tool_name":"Bash"}"#)
                .unwrap();
        assert_eq!(tool, Event::PostToolUse {});
    }

    #[test]
    fn probe_reports_round_trip_in_the_documented_form() {
        let report = Event::Probe(ProbeReport {
            result: ProbeResult::UserEditor,
            nonce: None,
            pid: Some(7),
            box_bytes: None,
        });
        let json = serde_json::to_value(&report).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"hook_event_name": "Probe", "result": "user-editor", "pid": 7})
        );
        assert_eq!(serde_json::from_value::<Event>(json).unwrap(), report);
        let request = ProbeRequest::new(3, ProbeAction::Load, "x".into());
        let json = serde_json::to_value(&request).unwrap();
        assert_eq!(json["action"], "deliver");
    }
}
