//! Round-trip overhead and idle CPU of the coordinator and the agent host.
//!
//! `cargo bench --bench roundtrip` (optionally `-- --delegations N --window-secs S`).
//! It starts real `agent-wrap` processes with the demo driver (no delay, so the agent's
//! own work is microseconds) on a private state directory and measures:
//!
//! 1. in-process delegations through `Coordinator::delegate` (the protocol alone);
//! 2. `claude-editor-hook FILE` runs, one process each, exactly what Claude Code runs on
//!    Ctrl-G (protocol plus process start);
//! 3. CPU used over a window by an idle `agent-wrap`, by a coordinator waiting on a busy
//!    agent, and by that busy agent's host, read from `/proc/<pid>/task/*/schedstat`.
//!
//! Overhead is the round trip minus the agent's work (`finished_at_us - started_at_us`
//! from `done.json`). Figures go to docs/performance.md.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use ceh::coordinator::Coordinator;
use ceh::state::{AgentName, AgentState, AgentStatus, Done, StateDir, StateRoots, read_json};

const HOOK: &str = env!("CARGO_BIN_EXE_claude-editor-hook");
const WRAP: &str = env!("CARGO_BIN_EXE_agent-wrap");

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn arg(name: &str, default: u64) -> u64 {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Where the state lives: one directory (`$CLAUDE_AGENTS_DIR`), or the default split of a
/// runtime part (`$XDG_RUNTIME_DIR`) and a durable part (`$XDG_STATE_HOME`).
#[derive(Clone)]
enum Layout {
    Single(PathBuf),
    Split {
        runtime: PathBuf,
        state_home: PathBuf,
    },
}

impl Layout {
    fn apply<'a>(&self, cmd: &'a mut Command) -> &'a mut Command {
        match self {
            Layout::Single(dir) => cmd.env("CLAUDE_AGENTS_DIR", dir),
            Layout::Split {
                runtime,
                state_home,
            } => cmd
                .env_remove("CLAUDE_AGENTS_DIR")
                .env("XDG_RUNTIME_DIR", runtime)
                .env("XDG_STATE_HOME", state_home),
        }
    }

    fn open(&self) -> StateDir {
        match self {
            Layout::Single(dir) => StateDir::open(dir).unwrap(),
            Layout::Split {
                runtime,
                state_home,
            } => StateDir::open_roots(&StateRoots {
                durable: state_home.join(ceh::state::APP_DIR),
                runtime: runtime.join("claude-agents"),
            })
            .unwrap(),
        }
    }
}

fn start_agent(layout: &Layout, state: &StateDir, name: &str, args: &[&str]) -> Killed {
    let child = layout
        .apply(Command::new(WRAP).arg(name).args(args).arg("--quiet"))
        .stdin(Stdio::null())
        .spawn()
        .expect("start agent-wrap");
    let agent = AgentName::parse(name).unwrap();
    wait_for(&format!("agent {name} idle"), || {
        AgentStatus::load(state, &agent)
            .ok()
            .flatten()
            .is_some_and(|s| s.status == AgentState::Idle && s.pid == child.id())
    });
    Killed(child)
}

fn wait_for(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Nanoseconds of CPU used so far by all threads of `pid`.
fn cpu_ns(pid: u32) -> u64 {
    let dir = PathBuf::from(format!("/proc/{pid}/task"));
    std::fs::read_dir(dir)
        .map(|d| {
            d.filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("schedstat")).ok())
                .filter_map(|s| s.split_whitespace().next()?.parse::<u64>().ok())
                .sum()
        })
        .unwrap_or(0)
}

fn percentiles(mut v: Vec<f64>) -> (f64, f64, f64) {
    v.sort_by(f64::total_cmp);
    let at = |q: f64| v[((v.len() - 1) as f64 * q).round() as usize];
    (at(0.5), at(0.99), v[v.len() - 1])
}

fn agent_work_us(state: &StateDir, done: &Done) -> u64 {
    let _ = state;
    done.finished_at_us
        .saturating_sub(done.started_at_us.unwrap_or(done.finished_at_us))
}

fn in_process(state: &StateDir, n: u64) -> Vec<f64> {
    let coordinator = Coordinator::new(state.clone());
    let agent = AgentName::parse("fast").unwrap();
    (0..n)
        .map(|i| {
            let report = coordinator
                .delegate(&agent, format!("benchmark prompt {i}"), None, None)
                .expect("delegate");
            assert!(report.answer.is_some(), "{:?}", report.done);
            let total = report.elapsed.as_micros() as u64;
            total.saturating_sub(agent_work_us(state, &report.done)) as f64 / 1000.0
        })
        .collect()
}

fn per_process(layout: &Layout, state: &StateDir, dir: &Path, n: u64) -> Vec<f64> {
    (0..n)
        .map(|i| {
            let file = dir.join(format!("claude-prompt-{i}.md"));
            std::fs::write(&file, format!("@fast benchmark prompt {i}")).unwrap();
            let t0 = Instant::now();
            let status = layout
                .apply(Command::new(HOOK).arg(&file))
                .stdin(Stdio::null())
                .status()
                .unwrap();
            let total = t0.elapsed().as_micros() as u64;
            assert!(status.success());
            let text = std::fs::read_to_string(&file).unwrap();
            let id = text
                .split("task ")
                .nth(1)
                .unwrap()
                .split(' ')
                .next()
                .unwrap();
            let id = ceh::state::TaskId::parse(id).unwrap();
            let done: Done = read_json(&state.done_path(&id)).unwrap().unwrap();
            total.saturating_sub(agent_work_us(state, &done)) as f64 / 1000.0
        })
        .collect()
}

fn measure(label: &str, layout: &Layout, files: &Path, n: u64) {
    let state = layout.open();
    let _fast = start_agent(layout, &state, "fast", &["--demo", "--demo-delay-ms", "0"]);
    in_process(&state, 20); // warm-up
    let (p50, p99, max) = percentiles(in_process(&state, n));
    println!(
        "| {label} | in-process `Coordinator::delegate` | {n} | {p50:.2} | {p99:.2} | {max:.2} |"
    );
    let (p50, p99, max) = percentiles(per_process(layout, &state, files, n));
    println!(
        "| {label} | `claude-editor-hook FILE` process | {n} | {p50:.2} | {p99:.2} | {max:.2} |"
    );
}

fn main() {
    let n = arg("--delegations", 300);
    let window = Duration::from_secs(arg("--window-secs", 10));
    println!("| state dir | coordinator | delegations | overhead p50 ms | p99 ms | max ms |");
    println!("|---|---|---|---|---|---|");
    let shm = Path::new("/dev/shm")
        .is_dir()
        .then(|| tempfile::tempdir_in("/dev/shm").unwrap());
    let disk = tempfile::tempdir().unwrap();
    if let Some(shm) = &shm {
        let layout = Layout::Single(shm.path().join("state"));
        measure("tmpfs (/dev/shm)", &layout, shm.path(), n);
    }
    let layout = Layout::Single(disk.path().join("state"));
    measure("disk (std::env::temp_dir)", &layout, disk.path(), n);
    if let Some(shm) = &shm {
        // The default: runtime files on tmpfs, everything that must survive a reboot on
        // disk.
        let layout = Layout::Split {
            runtime: shm.path().join("run"),
            state_home: disk.path().join("state-home"),
        };
        std::fs::create_dir_all(shm.path().join("run")).unwrap();
        measure(
            "default split (runtime tmpfs, durable disk)",
            &layout,
            disk.path(),
            n,
        );
    }

    // CPU over one window: an idle host, a waiting coordinator and the busy host.
    let tmp = tempfile::tempdir().unwrap();
    let layout = Layout::Single(tmp.path().join("state"));
    let state = layout.open();
    let idle = start_agent(&layout, &state, "idle", &["--demo"]);
    let busy = start_agent(&layout, &state, "busy", &["--exec", "exec sleep 3600"]);
    let file = tmp.path().join("claude-prompt-wait.md");
    std::fs::write(&file, "@busy wait for me").unwrap();
    let waiting = Killed(
        layout
            .apply(Command::new(HOOK).arg(&file))
            .stdin(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let busy_name = AgentName::parse("busy").unwrap();
    wait_for("busy agent working", || {
        AgentStatus::load(&state, &busy_name)
            .ok()
            .flatten()
            .is_some_and(|s| s.status == AgentState::Working)
    });
    let pids = [
        ("idle `agent-wrap`", idle.0.id()),
        ("waiting `claude-editor-hook`", waiting.0.id()),
        ("working `agent-wrap` (its command sleeps)", busy.0.id()),
    ];
    let before: Vec<u64> = pids.iter().map(|(_, p)| cpu_ns(*p)).collect();
    std::thread::sleep(window);
    println!();
    println!(
        "| process | CPU over {}s (ms) | CPU since start (ms) |",
        window.as_secs()
    );
    println!("|---|---|---|");
    for ((what, pid), b) in pids.iter().zip(before) {
        let total = cpu_ns(*pid);
        println!(
            "| {what} | {:.3} | {:.3} |",
            (total - b) as f64 / 1e6,
            total as f64 / 1e6
        );
    }
}
