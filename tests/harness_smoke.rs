//! Proves the test harness works against the real Claude Code: the fake API,
//! the dialog-free `HOME`, hook markers and the private tmux server.
//!
//! Each test skips (or fails under `REQUIRE_CLAUDE_E2E=1`) when Claude Code or
//! tmux is missing.

use std::time::Duration;

use crate::helper::claude::{
    ClaudeSandbox, require_claude, session_start_marker_settings, submit_prompt,
};
use crate::helper::fake_api::{Reply, RequestKind};
use crate::helper::tmux::{TmuxServer, require_tmux};
use crate::helper::wait::{output_with_timeout, wait_for_file};

/// Deadline for a whole `claude -p` run or for interactive start-up; far
/// above the ~1 s these take, so only a real hang trips it.
const CLAUDE_TIMEOUT: Duration = Duration::from_secs(90);

#[cfg_attr(
    missing_claude,
    ignore = "needs Claude Code and tmux: see README, Tests"
)]
#[test]
fn print_mode_reaches_fake_api() {
    let Some(claude) = require_claude("print_mode_reaches_fake_api") else {
        return;
    };
    let sandbox = ClaudeSandbox::new();

    let out = output_with_timeout(
        sandbox.command(&claude).args(["-p", "hello smoke"]),
        CLAUDE_TIMEOUT,
    );

    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "claude -p failed: {out:?}");
    assert!(
        stdout.contains("FAKE-REPLY: hello smoke"),
        "stdout: {stdout}"
    );
    assert_eq!(sandbox.api.prompts(), ["hello smoke"]);
}

#[cfg_attr(
    missing_claude,
    ignore = "needs Claude Code and tmux: see README, Tests"
)]
#[test]
fn interactive_prompt_round_trip_in_tmux() {
    let name = "interactive_prompt_round_trip_in_tmux";
    let (Some(claude), Some(_)) = (require_claude(name), require_tmux(name)) else {
        return;
    };
    let sandbox = ClaudeSandbox::new();
    let marker = sandbox.path().join("session-started");
    let mut tmux = TmuxServer::new();
    let command = [
        claude.display().to_string(),
        "--settings".to_string(),
        session_start_marker_settings(&marker),
    ];

    let pane = tmux.new_session("chief", sandbox.project_dir(), &sandbox.env(), &command);
    wait_for_file(&marker, CLAUDE_TIMEOUT);
    submit_prompt(&tmux, &pane, &sandbox.api, "hi there", CLAUDE_TIMEOUT);

    let screen = tmux.wait_for_screen(
        &pane,
        |s| s.contains("FAKE-REPLY: hi there"),
        CLAUDE_TIMEOUT,
    );
    assert!(
        screen.is_ok(),
        "reply not shown; screen:\n{}",
        screen.unwrap_err()
    );
    assert!(!tmux.pane_dead(&pane));
}

#[cfg_attr(
    missing_claude,
    ignore = "needs Claude Code and tmux: see README, Tests"
)]
#[test]
fn bash_tool_use_round_trip() {
    let Some(claude) = require_claude("bash_tool_use_round_trip") else {
        return;
    };
    let sandbox = ClaudeSandbox::new();
    sandbox.api.set_reply(|_| Reply::BashToolUse {
        command: "echo tool-ran".into(),
    });

    // `--allowedTools Bash "run it"` would swallow the prompt (docs/claude-code.md#print-mode).
    let out = output_with_timeout(
        sandbox
            .command(&claude)
            .args(["-p", "--allowedTools=Bash", "run it"]),
        CLAUDE_TIMEOUT,
    );

    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "claude -p failed: {out:?}");
    assert!(
        stdout.contains("FAKE-TOOL-DONE: tool-ran"),
        "stdout: {stdout}"
    );
    let requests = sandbox.api.requests();
    let tool_result = requests.iter().find(|r| r.kind == RequestKind::ToolResult);
    let tool_result =
        tool_result.unwrap_or_else(|| panic!("no tool_result request in {requests:#?}"));
    assert!(
        tool_result
            .tool_results
            .iter()
            .any(|t| t.contains("tool-ran")),
        "{tool_result:#?}"
    );
    assert_eq!(sandbox.api.prompts(), ["run it"]);
}

#[cfg_attr(
    missing_claude,
    ignore = "needs Claude Code and tmux: see README, Tests"
)]
#[test]
fn api_error_ends_print_mode_with_rc_1() {
    let Some(claude) = require_claude("api_error_ends_print_mode_with_rc_1") else {
        return;
    };
    let sandbox = ClaudeSandbox::new();
    sandbox.api.set_reply(|_| Reply::Error {
        status: 500,
        kind: "api_error".into(),
        message: "fake 500 for the smoke test".into(),
    });

    let out = output_with_timeout(
        sandbox.command(&claude).args(["-p", "fail please"]),
        CLAUDE_TIMEOUT,
    );

    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(
        stdout.contains("fake 500 for the smoke test"),
        "stdout: {stdout}"
    );
    // x-should-retry: false and CLAUDE_CODE_MAX_RETRIES=0: exactly one attempt.
    assert_eq!(sandbox.api.prompts(), ["fail please"]);
}
