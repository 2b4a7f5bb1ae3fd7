//! How long the page of `serve` takes to show a change, in a real headless Chromium.
//!
//! `cargo bench --bench web_page` (optionally `-- --changes N`). It needs Debian's
//! Chromium and `npm ci` in tests/web (as the browser test does) and says so otherwise.
//! It starts `serve` with a board and a demo agent (`--demo-delay-ms 100`), and
//! tests/web/page-bench.mjs makes N changes of each kind, one at a time:
//!
//! 1. a board task added: from its `board` event's `at_us` in the event log (written
//!    after the transaction committed) to the page's board line changing;
//! 2. an agent's status: from each `agent_status` event's `at_us` (written by agent-wrap
//!    after `status.json`) to the agent's row showing that status.
//!
//! The page notes when each change became visible with a MutationObserver, on the same
//! clock as `at_us`. The target is 100 ms. Figures go to docs/performance.md.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use ceh::state::{AgentName, AgentState, AgentStatus, StateDir};
use serde_json::Value;

const HOOK: &str = env!("CARGO_BIN_EXE_claude-editor-hook");
const WRAP: &str = env!("CARGO_BIN_EXE_agent-wrap");

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn arg(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn line(what: &str, mut v: Vec<f64>) {
    v.sort_by(f64::total_cmp);
    let pct = |p: f64| v[((v.len() as f64 - 1.0) * p).round() as usize];
    println!(
        "  {what} ({} changes): p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        v.len(),
        pct(0.5),
        pct(0.99),
        v[v.len() - 1]
    );
}

/// The events of the log, as JSON.
fn events(state: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(state.join("events/events.jsonl")).unwrap_or_default();
    text.lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

fn main() {
    let changes = arg("--changes", 50);
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    if !Path::new(&chromium).is_file()
        || !manifest
            .join("tests/web/node_modules/playwright-core")
            .is_dir()
    {
        println!("web_page: skipped: needs {chromium} and `npm ci` in tests/web");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let state_dir = dir.path().join("state");
    let state = StateDir::open(&state_dir).unwrap();
    let env = |cmd: &mut Command| {
        cmd.env("CLAUDE_AGENTS_DIR", &state_dir)
            .env("CLAUDE_EDITOR_HOOK_BOARD", dir.path().join("board"))
            .env("XDG_CONFIG_HOME", dir.path().join("config"))
            .stdin(Stdio::null());
    };
    let mut init = Command::new(HOOK);
    env(&mut init);
    let ok = init
        .args(["board", "init", "page bench"])
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(ok.success(), "board init");

    let mut wrap = Command::new(WRAP);
    env(&mut wrap);
    let agent = Killed(
        wrap.args(["w1", "--demo", "--demo-delay-ms", "100", "--quiet"])
            .spawn()
            .unwrap(),
    );
    let name = AgentName::parse("w1").unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !AgentStatus::load(&state, &name)
        .ok()
        .flatten()
        .is_some_and(|s| s.status == AgentState::Idle && s.pid == agent.0.id())
    {
        assert!(Instant::now() < deadline, "the demo agent did not start");
        std::thread::sleep(Duration::from_millis(5));
    }

    let mut serve = Command::new(HOOK);
    env(&mut serve);
    let mut server = Killed(serve.arg("serve").stdout(Stdio::piped()).spawn().unwrap());
    let mut first = String::new();
    BufReader::new(server.0.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    let url = first
        .trim()
        .strip_prefix("serving the team at ")
        .expect("serve's first line")
        .to_owned();
    let token = url.rsplit_once("token=").unwrap().1.to_owned();

    let out = Command::new("node")
        .arg(manifest.join("tests/web/page-bench.mjs"))
        .env("URL", &url)
        .env("TOKEN", &token)
        .env("AGENT", "w1")
        .env("N", changes.to_string())
        .env("CHROMIUM", &chromium)
        .stderr(Stdio::inherit())
        .output()
        .unwrap();
    assert!(out.status.success(), "page-bench.mjs failed");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let seen: Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    drop(server);
    drop(agent);

    let log = events(&state_dir);
    let at = |e: &Value| e["at_us"].as_u64().unwrap() as f64;
    // Each board change the page showed, after the `add` event that made it.
    let adds: Vec<f64> = log
        .iter()
        .filter(|e| e["kind"] == "board" && e["verb"] == "add")
        .map(at)
        .collect();
    let board: Vec<f64> = seen["board"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|s| {
            let t = s.as_f64()?;
            let made = adds.iter().rev().find(|&&a| a <= t)?;
            Some((t - made) / 1000.0)
        })
        .collect();
    // Each status the row showed, after the latest `agent_status` event with it.
    let statuses: Vec<(String, f64)> = log
        .iter()
        .filter(|e| e["kind"] == "agent_status" && e["agent"] == "w1")
        .map(|e| (e["status"].as_str().unwrap_or("").to_owned(), at(e)))
        .collect();
    let status: Vec<f64> = seen["status"]
        .as_array()
        .unwrap()
        .iter()
        .skip(1) // the status the page found on loading
        .filter_map(|s| {
            let t = s["seen_us"].as_f64()?;
            let word = s["status"].as_str()?;
            let made = statuses.iter().rev().find(|(w, a)| w == word && *a <= t)?.1;
            Some((t - made) / 1000.0)
        })
        .collect();
    println!("web page: from a change to the page showing it (target 100 ms)");
    line("board task added -> board line", board);
    line("agent status -> its row", status);
}
