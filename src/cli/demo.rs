//! `claude-editor-hook demo`: a real round trip on a fresh machine.
//!
//! Starts `agent-wrap demo --demo` on a private temporary state directory, runs this
//! binary in editor mode on a temporary prompt file exactly as Claude Code would on
//! Ctrl-G, and prints the file before and after with the measured timings. It then shows
//! the failure path (an unknown agent) and stops the agent.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{Context, Result, bail};

use crate::state::{Done, STATE_DIR_ENV, StateDir, read_json};
use crate::time::human_us;

const AGENT: &str = "demo";
const PROMPT: &str = "@demo plan the dark-mode feature for settings";

/// The demo agent, killed if the demo stops early (an error, or Esc in its view), so it
/// never outlives its temporary state directory.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub fn run() -> Result<i32> {
    let tmp = tempfile::Builder::new()
        .prefix("claude-editor-hook-demo-")
        .tempdir()?;
    let state = StateDir::open(&tmp.path().join("state"))?;
    let exe = std::env::current_exe().context("failed to find this program")?;
    let wrap = exe.with_file_name("agent-wrap");
    if !wrap.is_file() {
        bail!(
            "agent-wrap was not found next to {}; build both with `cargo build --release`",
            exe.display()
        );
    }

    println!(
        "state directory: {} (private, removed at the end)",
        state.root().display()
    );
    println!("$ agent-wrap {AGENT} --demo");
    let mut agent = KillOnDrop(
        Command::new(&wrap)
            .args([AGENT, "--demo"])
            .env(STATE_DIR_ENV, state.root())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .with_context(|| format!("failed to start {}", wrap.display()))?,
    );
    let mut window = BufReader::new(agent.0.stdout.take().expect("stdout is piped")).lines();
    // The host prints its ready line once it has registered and watches its inbox.
    for line in window.by_ref() {
        let line = line?;
        println!("  [agent window] {line}");
        if line.contains("ready") {
            break;
        }
    }
    let echo = std::thread::spawn(move || {
        for line in window.map_while(Result::ok) {
            println!("  [agent window] {line}");
        }
    });

    let file = tmp.path().join("claude-prompt-demo.md");
    std::fs::write(&file, PROMPT)?;
    println!("\nprompt file before: {PROMPT:?}");
    println!(
        "$ claude-editor-hook {}   (what Claude Code runs on Ctrl-G)",
        file.display()
    );
    let t0 = Instant::now();
    let status = Command::new(&exe)
        .arg(&file)
        .env(STATE_DIR_ENV, state.root())
        .status()?;
    let total = t0.elapsed();
    let after = std::fs::read_to_string(&file)?;
    println!("exit status: {}", status.code().unwrap_or(-1));
    println!("prompt file after (what lands in the chief's prompt box):");
    for line in after.lines() {
        println!("  | {line}");
    }
    print_timings(&state, &after, total.as_micros() as u64)?;

    std::fs::write(&file, "@nobody hello")?;
    Command::new(&exe)
        .arg(&file)
        .env(STATE_DIR_ENV, state.root())
        .stderr(Stdio::null())
        .status()?;
    println!("\nan unknown agent instead: the reason goes on top, the prompt is kept:");
    for line in std::fs::read_to_string(&file)?.lines() {
        println!("  | {line}");
    }

    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(agent.0.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )?;
    let code = agent.0.wait()?;
    let _ = echo.join();
    println!(
        "\nagent stopped with SIGTERM: exit status {}",
        code.code().unwrap_or(-1)
    );
    Ok(if status.success() && after.contains("DEMO-ANSWER") {
        0
    } else {
        1
    })
}

fn print_timings(state: &StateDir, answer: &str, total_us: u64) -> Result<()> {
    let id = answer
        .lines()
        .next()
        .and_then(|h| h.split("task ").nth(1))
        .and_then(|r| r.split(' ').next())
        .context("the answer has no task header")?;
    let id = crate::state::TaskId::parse(id)?;
    let done: Done = read_json(&state.done_path(&id))?.context("no done.json")?;
    let claimed = done.claimed_at_us.unwrap_or(done.created_at_us);
    let started = done.started_at_us.unwrap_or(claimed);
    let work = done.finished_at_us.saturating_sub(started);
    println!("timings for task {id} (outcome {}):", done.outcome);
    println!(
        "  queued → claimed by the agent   {}",
        human_us(claimed.saturating_sub(done.created_at_us))
    );
    println!("  agent work (3 streamed lines)   {}", human_us(work));
    println!(
        "  whole round trip, process start to exit   {}",
        human_us(total_us)
    );
    println!(
        "  overhead (round trip − agent work)        {}",
        human_us(total_us.saturating_sub(work))
    );
    Ok(())
}
