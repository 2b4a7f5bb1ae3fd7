//! `claude-editor-hook mcp`: coordination as tools. A stdio MCP server (on `rmcp`, the
//! official Rust SDK) that Claude Code starts for a chief or a hosted agent; its tools
//! carry the CLI verbs' names and call the same library functions (docs/mcp.md).
//!
//! - [`tools`]: the tools, their argument types (whose JSON schemas the client sees),
//!   and how each result becomes text plus structured content, or a tool error with
//!   the CLI's one-line reason.
//! - [`inflight`]: the delegations this server waits on, so that the caller going away
//!   (stdin closed, or a signal) cancels them.
//! - [`probe`]: `doctor`'s check that the server starts and lists its tools.
//!
//! The server owns no state of its own: every call opens what it needs (the state
//! directory, the board) and lets go, so bad input costs only that call. Blocking work
//! (SQLite, a coordinator's wait) runs on tokio's blocking threads; the protocol runs on
//! one current-thread runtime, which starts in a few milliseconds.

pub mod inflight;
pub mod probe;
pub mod tools;

use std::time::Duration;

use anyhow::{Context, Result};
use rmcp::ServiceExt;

pub use tools::Team;

/// Every tool, named after its CLI verb.
pub const TOOL_NAMES: [&str; 12] = [
    "delegate",
    "results",
    "team_status",
    "board_init",
    "board_add",
    "board_claim",
    "board_done",
    "board_fail",
    "board_status",
    "board_report",
    "board_note",
    "board_notes",
];

/// The name the team's server is registered under: its tools reach the model as
/// `mcp__team__<tool>` (docs/claude-code.md#mcp-config-flag).
pub const SERVER_NAME: &str = "team";

/// The `--mcp-config` JSON that gives one Claude Code the team's tools: `exe mcp` as
/// the stdio server [`SERVER_NAME`]. The server inherits the Claude Code's environment,
/// which is how it learns who called it (docs/claude-code.md#mcp-server-env).
pub fn server_config(exe: &std::path::Path) -> String {
    serde_json::json!({
        "mcpServers": { SERVER_NAME: { "type": "stdio", "command": exe, "args": ["mcp"] } }
    })
    .to_string()
}

/// The Claude Code arguments `up` adds for the team's tools: the server, and permission
/// to call its tools without a prompt (they only coordinate the team: delegate, results,
/// status and the board). `=` keeps a list option from swallowing what follows
/// (docs/claude-code.md#print-mode).
pub fn claude_args(exe: &std::path::Path) -> Vec<String> {
    vec![
        format!("--mcp-config={}", server_config(exe)),
        format!("--allowedTools=mcp__{SERVER_NAME}"),
    ]
}

/// How long the caller's exit waits for its delegations to be cancelled: the
/// coordinator's own grace for the agent to confirm, and a little more.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Runs the server on stdin/stdout until the client goes away or a signal ends it;
/// returns the exit status.
pub fn serve() -> Result<i32> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("failed to start the MCP server's runtime")?;
    let team = Team::new(crate::coordinator::caller::Caller::from_env());
    let inflight = team.inflight();
    let code = rt.block_on(async move {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate())?;
        let mut int = signal(SignalKind::interrupt())?;
        let mut hup = signal(SignalKind::hangup())?;
        let service = team
            .serve(rmcp::transport::stdio())
            .await
            .context("the MCP client did not initialize")?;
        let why = tokio::select! {
            _ = service.waiting() => "the calling Claude Code went away (its MCP connection closed)",
            _ = term.recv() => "the MCP server received SIGTERM",
            _ = int.recv() => "the MCP server received SIGINT",
            _ = hup.recv() => "the MCP server received SIGHUP",
        };
        inflight.cancel_all(why, SHUTDOWN_GRACE).await;
        anyhow::Ok(0)
    });
    // A delegation thread still inside a coordinator's wait must not keep the process.
    rt.shutdown_timeout(Duration::from_millis(100));
    code
}
