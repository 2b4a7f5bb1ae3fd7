//! The scheduling overhead of `claude-editor-hook run`.
//!
//! `cargo bench --bench run` (optionally `-- --tasks N --workers W --repeat R`). In a
//! private state directory it measures:
//!
//! 1. a DAG of 1,000 tasks (each needing up to two of the 40 tasks before it) on 16
//!    `--exec` workers that do nothing (`:`): the wall time of the whole `run` process
//!    against the ideal, which is the DAG's critical path with every task costing only
//!    its own worker process (a `sh -c :` spawn, measured alone), and the overhead per
//!    task, `(wall - ideal) / tasks`;
//! 2. the CPU the `run` process itself uses while its workers are busy: 16 workers
//!    sleeping 4 s, `run`'s utime + stime (from /proc/PID/stat) over the middle 2 s.
//!
//! Figures go to docs/performance.md.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const HOOK: &str = env!("CARGO_BIN_EXE_claude-editor-hook");

fn arg(name: &str, default: u64) -> u64 {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A tiny deterministic generator (xorshift64).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// Writes the DAG's tasks.json and returns its depth (tasks on the critical path).
fn write_dag(path: &Path, n: usize) -> usize {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut depth = vec![1usize; n];
    let mut tasks = Vec::with_capacity(n);
    for i in 0..n {
        let mut deps: Vec<usize> = Vec::new();
        if i > 0 {
            for _ in 0..2 {
                let back = 1 + (rng.next() % 40) as usize;
                if back <= i && !deps.contains(&(i - back)) {
                    deps.push(i - back);
                }
            }
        }
        depth[i] = 1 + deps.iter().map(|&d| depth[d]).max().unwrap_or(0);
        tasks.push(serde_json::json!({
            "id": format!("t{i}"),
            "title": format!("task {i}"),
            "dependencies": deps.iter().map(|d| format!("t{d}")).collect::<Vec<_>>(),
        }));
    }
    std::fs::write(
        path,
        serde_json::to_vec(&serde_json::json!({ "tasks": tasks })).unwrap(),
    )
    .unwrap();
    *depth.iter().max().unwrap()
}

/// The mean time of one `sh -c :` (what an instant worker costs by itself).
fn spawn_cost() -> Duration {
    let n = 200;
    let t = Instant::now();
    for _ in 0..n {
        Command::new("/bin/sh")
            .args(["-c", ":"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .status()
            .unwrap();
    }
    t.elapsed() / n
}

/// utime + stime of process `pid`, from /proc/PID/stat.
fn cpu_of(pid: u32) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split(' ').collect();
    let ticks: u64 = f[11].parse::<u64>().ok()? + f[12].parse::<u64>().ok()?;
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as u64;
    Some(Duration::from_micros(ticks * 1_000_000 / hz))
}

fn run_cmd(state: &Path, dir: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(HOOK);
    cmd.arg("run")
        .args(args)
        .current_dir(dir)
        .env("CLAUDE_AGENTS_DIR", state)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    cmd
}

fn main() {
    let tasks = arg("--tasks", 1000) as usize;
    let workers = arg("--workers", 16) as usize;
    let repeat = arg("--repeat", 3) as usize;
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("tasks.json");
    let depth = write_dag(&file, tasks);
    let spawn = spawn_cost();
    let ideal = (spawn * depth as u32).max(spawn * tasks.div_ceil(workers) as u32);
    println!(
        "DAG: {tasks} tasks, critical path {depth} tasks, {workers} workers; one `sh -c :` costs {:.2} ms",
        spawn.as_secs_f64() * 1000.0
    );
    println!(
        "ideal (critical path at the workers' own cost): {:.0} ms",
        ideal.as_secs_f64() * 1000.0
    );
    let mut rows = Vec::new();
    for r in 0..repeat {
        let state = tmp.path().join(format!("state-{r}"));
        let mut cmd = run_cmd(
            &state,
            tmp.path(),
            &[
                "bench",
                "-w",
                &workers.to_string(),
                "--tasks",
                file.to_str().unwrap(),
                "--exec",
                ":",
            ],
        );
        let t = Instant::now();
        let mut child = cmd.spawn().unwrap();
        let pid = child.id();
        // Sampled, since the process is gone (and its /proc entry with it) once it exits.
        let mut cpu = Duration::ZERO;
        let status = loop {
            if let Some(s) = child.try_wait().unwrap() {
                break s;
            }
            cpu = cpu_of(pid).unwrap_or(cpu);
            std::thread::sleep(Duration::from_millis(20));
        };
        let wall = t.elapsed();
        assert!(status.success(), "run failed: {status:?}");
        let per_task = wall.saturating_sub(ideal) / tasks as u32;
        println!(
            "run {}: wall {:.0} ms, overhead {:.2} ms per task, run's own CPU ≥ {:.0} ms ({:.2} ms per task)",
            r + 1,
            wall.as_secs_f64() * 1000.0,
            per_task.as_secs_f64() * 1000.0,
            cpu.as_secs_f64() * 1000.0,
            cpu.as_secs_f64() * 1000.0 / tasks as f64
        );
        rows.push((wall, per_task));
    }
    rows.sort();
    let (wall, per_task) = rows[rows.len() / 2];
    println!(
        "median: wall {:.0} ms vs ideal {:.0} ms, overhead {:.2} ms per task (target ≤ 5 ms)",
        wall.as_secs_f64() * 1000.0,
        ideal.as_secs_f64() * 1000.0,
        per_task.as_secs_f64() * 1000.0
    );

    // 2. The CPU of `run` while every worker is busy.
    let busy = tmp.path().join("busy.json");
    let list: Vec<serde_json::Value> = (0..workers)
        .map(|i| serde_json::json!({"id": format!("b{i}"), "title": "sleep"}))
        .collect();
    std::fs::write(&busy, serde_json::to_vec(&list).unwrap()).unwrap();
    let state = tmp.path().join("state-busy");
    let mut child = run_cmd(
        &state,
        tmp.path(),
        &[
            "busy",
            "-w",
            &workers.to_string(),
            "--tasks",
            busy.to_str().unwrap(),
            "--exec",
            "sleep 4",
        ],
    )
    .spawn()
    .unwrap();
    std::thread::sleep(Duration::from_secs(1));
    let a = cpu_of(child.id()).unwrap();
    let window = Duration::from_secs(2);
    std::thread::sleep(window);
    let b = cpu_of(child.id()).unwrap();
    let status = child.wait().unwrap();
    assert!(status.success());
    println!(
        "while {workers} workers are busy: run used {:.1} ms CPU in {:.0} s ({:.3} % of a core)",
        (b - a).as_secs_f64() * 1000.0,
        window.as_secs_f64(),
        (b - a).as_secs_f64() / window.as_secs_f64() * 100.0
    );
}
