//! The CPU `claude-editor-hook top` uses while nothing changes (issue 14: at most 10 ms
//! over 10 s).
//!
//! `cargo bench --bench top_idle [-- --secs N]`. Needs tmux; without it, it says so and
//! exits. Starts two idle `--exec` agents, runs `top` in an 80x24 tmux pane, lets it
//! settle, then reads its CPU time (`/proc/<pid>/task/*/schedstat`, nanoseconds on a CPU, every thread)
//! before and after N seconds (default 10) with nothing happening: what is left is its
//! 1 s clock.

#[path = "../tests/helper/mod.rs"]
mod helper;

use std::process::{Command, Stdio};
use std::time::Duration;

use helper::tmux::{TmuxServer, find_tmux_dir};

const HOOK: &str = env!("CARGO_BIN_EXE_claude-editor-hook");
const WRAP: &str = env!("CARGO_BIN_EXE_agent-wrap");

/// Nanoseconds on a CPU of every thread of `pid` (`/proc/<pid>/task/*/schedstat`).
fn cpu_ns(pid: i32) -> u64 {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .expect("list the threads of top")
        .flatten()
        .filter_map(|t| std::fs::read_to_string(t.path().join("schedstat")).ok())
        .filter_map(|s| s.split_whitespace().next()?.parse::<u64>().ok())
        .sum()
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let secs: u64 = args
        .iter()
        .position(|a| a == "--secs")
        .and_then(|i| args.get(i + 1)?.parse().ok())
        .unwrap_or(10);
    if find_tmux_dir().is_none() {
        println!("top_idle: tmux not found, skipped");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let mut agents: Vec<_> = ["one", "two"]
        .iter()
        .map(|name| {
            Command::new(WRAP)
                .args([*name, "--exec", "cat"])
                .env("CLAUDE_AGENTS_DIR", &state)
                .env_remove("TMUX")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    let mut tmux = TmuxServer::new();
    let vars = vec![("CLAUDE_AGENTS_DIR".to_owned(), state.display().to_string())];
    let pane = tmux.new_session(
        "top",
        dir.path(),
        &vars,
        &[HOOK.to_owned(), "top".to_owned()],
    );
    tmux.run(&["resize-window", "-t", &pane, "-x", "80", "-y", "24"]);
    tmux.wait_for_screen(
        &pane,
        |s| s.contains("one ") && s.contains(" two "),
        Duration::from_secs(30),
    )
    .expect("top shows both agents");
    let pid: i32 = tmux.display(&pane, "#{pane_pid}").trim().parse().unwrap();
    std::thread::sleep(Duration::from_secs(2));
    let before = cpu_ns(pid);
    std::thread::sleep(Duration::from_secs(secs));
    let used = cpu_ns(pid) - before;
    println!("| top idle | {secs} s | {:.2} ms CPU |", used as f64 / 1e6);
    for a in &mut agents {
        let _ = a.kill();
        let _ = a.wait();
    }
}
