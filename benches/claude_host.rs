//! Latencies of `agent-wrap` hosting the real Claude Code, against the fake Messages API.
//!
//! `cargo bench --bench claude_host [-- --delegations N]`. Needs Claude Code (`$CLAUDE_BIN`,
//! `claude` on PATH, or `.claude-code/node_modules/.bin/claude`); without it, it says so
//! and exits. Each delegation goes through `Coordinator::delegate` in this process to an
//! `agent-wrap` hosting Claude Code on its PTY, and `done.json` gives the instants:
//!
//! - delivery → ack: from the start of delivery (probe request and Ctrl-G) to the
//!   `UserPromptSubmit` hook that acknowledges it (`acked_at_us - started_at_us`);
//! - Stop → result: from the `Stop` hook to the agent's `done.json`
//!   (`finished_at_us - turn_ended_at_us`), and to the coordinator's return.

#[path = "../tests/helper/mod.rs"]
mod helper;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use ceh::coordinator::Coordinator;
use ceh::state::{AgentName, AgentState, AgentStatus, StateDir};
use ceh::time::now_us;
use helper::claude::{ClaudeSandbox, find_claude};

const WRAP: &str = env!("CARGO_BIN_EXE_agent-wrap");

fn arg(name: &str, default: u64) -> u64 {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn summary(label: &str, mut v: Vec<f64>) {
    v.sort_by(f64::total_cmp);
    let at = |q: f64| v[((v.len() - 1) as f64 * q).round() as usize];
    println!(
        "| {label} | {} | {:.1} | {:.1} | {:.1} |",
        v.len(),
        at(0.5),
        at(0.99),
        v[v.len() - 1]
    );
}

fn main() {
    let Some(claude) = find_claude() else {
        println!("claude_host: Claude Code not found (set CLAUDE_BIN); nothing measured");
        return;
    };
    let n = arg("--delegations", 30);
    let sandbox = ClaudeSandbox::new();
    let state_root = tempfile::tempdir().unwrap();
    let state = StateDir::open(&state_root.path().join("state")).unwrap();
    let mut host = Command::new(WRAP)
        .args(["bench", "--claude"])
        .arg(&claude)
        .env_clear()
        .envs(sandbox.env())
        .env("CLAUDE_AGENTS_DIR", state.root())
        .current_dir(sandbox.project_dir())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .expect("start agent-wrap");
    let agent = AgentName::parse("bench").unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !AgentStatus::load(&state, &agent)
        .ok()
        .flatten()
        .is_some_and(|s| s.status == AgentState::Idle)
    {
        assert!(
            Instant::now() < deadline,
            "the hosted Claude Code did not start"
        );
        std::thread::sleep(Duration::from_millis(20));
    }

    let coordinator = Coordinator::new(state.clone());
    let (mut ack, mut stop_done, mut stop_return, mut total) = (vec![], vec![], vec![], vec![]);
    for i in 0..n {
        let report = coordinator
            .delegate(
                &agent,
                format!("benchmark task {i}"),
                Some(Duration::from_secs(60)),
                None,
            )
            .expect("delegate");
        let returned = now_us();
        let d = &report.done;
        assert!(report.answer.is_some(), "{d:?}");
        let ms = |a: u64, b: u64| a.saturating_sub(b) as f64 / 1000.0;
        ack.push(ms(d.acked_at_us.unwrap(), d.started_at_us.unwrap()));
        stop_done.push(ms(d.finished_at_us, d.turn_ended_at_us.unwrap()));
        stop_return.push(ms(returned, d.turn_ended_at_us.unwrap()));
        total.push(report.elapsed.as_secs_f64() * 1000.0);
    }
    let _ = host.kill();
    let _ = host.wait();
    println!("| latency | delegations | p50 ms | p99 ms | max ms |");
    println!("|---|---|---|---|---|");
    summary(
        "delivery → ack (probe, Ctrl-G, load, Enter, UserPromptSubmit)",
        ack,
    );
    summary("Stop hook → agent's done.json", stop_done);
    summary("Stop hook → coordinator returns", stop_return);
    summary("whole delegation (includes the fake API's turn)", total);
}
