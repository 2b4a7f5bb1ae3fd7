//! Is the server reachable? `doctor` starts `claude-editor-hook mcp` the way Claude Code
//! does (a child on pipes), initializes it and lists its tools, with a deadline. Plain
//! JSON-RPC lines: the check must not need an MCP client library in the product.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};

/// What the probe found.
#[derive(Debug)]
pub struct Probe {
    pub tools: Vec<String>,
    /// From the spawn to the `initialize` answer.
    pub started_in: Duration,
}

/// Starts `exe mcp`, initializes it and lists its tools, within `timeout`.
pub fn probe(exe: &Path, timeout: Duration) -> Result<Probe> {
    let started = Instant::now();
    let mut child = Command::new(exe)
        .arg("mcp")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .with_context(|| format!("failed to start {} mcp", exe.display()))?;
    let pid = child.id();
    let mut stdin = child.stdin.take().context("no stdin")?;
    let stdout = child.stdout.take().context("no stdout")?;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send((Instant::now(), line)).is_err() {
                break;
            }
        }
    });
    let deadline = started + timeout;
    let answer = |id: u64| -> Result<(Instant, Value)> {
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let (at, line) = rx
                .recv_timeout(left)
                .map_err(|_| anyhow::anyhow!("no answer within {}s", timeout.as_secs()))?;
            let v: Value = serde_json::from_str(&line).unwrap_or_default();
            if v["id"] == id {
                if let Some(e) = v.get("error") {
                    bail!("the server refused: {e}");
                }
                return Ok((at, v["result"].clone()));
            }
        }
    };
    let send = |stdin: &mut std::process::ChildStdin, v: Value| -> Result<()> {
        writeln!(stdin, "{v}").context("the server closed its input")
    };
    let result = (|| {
        send(
            &mut stdin,
            json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
                "protocolVersion": "2025-06-18", "capabilities": {},
                "clientInfo": {"name": "claude-editor-hook doctor", "version": env!("CARGO_PKG_VERSION")}}}),
        )?;
        let (at, _) = answer(1)?;
        send(
            &mut stdin,
            json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
        )?;
        send(
            &mut stdin,
            json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list"}),
        )?;
        let (_, list) = answer(2)?;
        let tools = list["tools"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|t| t["name"].as_str().map(str::to_owned))
            .collect();
        Ok(Probe {
            tools,
            started_in: at - started,
        })
    })();
    // Closing its input ends the server, as a Claude Code exiting does.
    drop(stdin);
    if result.is_err() {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid as i32),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
    let _ = child.wait();
    result
}
