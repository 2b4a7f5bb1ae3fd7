//! The team board's throughput and latencies.
//!
//! `cargo bench --bench board` (optionally `-- --tasks N --runs R`). On a private board
//! (a real SQLite file in a temp dir) it measures:
//!
//! 1. claims per second with 1, 8 and 32 contending worker processes, each looping
//!    claim + done through the library until the board is empty, and checks that every
//!    task was claimed exactly once (attempts = 1, one `done` each);
//! 2. `claude-editor-hook board claim` as a whole process (start, open, claim, print),
//!    p50 and p99;
//! 3. the wake-up latency: from `board done` of a task's last dependency to the first
//!    byte a waiting `board claim --wait` process prints, p50 and p99.
//!
//! Figures go to docs/performance.md.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use ceh::board::{Board, BoardPath, ClaimRequest, Holder, NewTask};

const HOOK: &str = env!("CARGO_BIN_EXE_claude-editor-hook");
const WORKER_ENV: &str = "BOARD_BENCH_WORKER";

fn arg(name: &str, default: u64) -> u64 {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn pct(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

fn new_board(root: &Path, name: &str, tasks: usize) -> (PathBuf, Board) {
    let dir = root.join(name);
    let path = BoardPath::resolve(Some(dir.to_str().unwrap())).unwrap();
    let mut board = Board::create(&path, "benchmark", None).unwrap();
    let batch: Vec<NewTask> = (0..tasks)
        .map(|i| NewTask {
            title: format!("task {i}"),
            ..Default::default()
        })
        .collect();
    board.add_all(&batch).unwrap();
    (dir, board)
}

/// A worker process: claims and completes until nothing is ready, then prints how many
/// it did and the time of its first claim and last done (µs since the epoch).
fn worker(dir: &str, name: &str) {
    let mut board = Board::open(&BoardPath::resolve(Some(dir)).unwrap()).unwrap();
    board.set_worker(Some(name)).unwrap();
    let req = ClaimRequest {
        worker: name.into(),
        roles: vec![],
        holder: Holder::Lease(Duration::from_secs(600)),
    };
    let (mut n, mut first, mut last) = (0u64, 0u64, 0u64);
    while let Some(c) = board.claim(&req).unwrap() {
        if n == 0 {
            first = ceh::time::now_us();
        }
        board.done(&c.task.id, "ok").unwrap();
        last = ceh::time::now_us();
        n += 1;
    }
    println!("{n} {first} {last}");
}

fn contention(root: &Path, procs: usize, tasks: usize) {
    let (dir, _board) = new_board(root, &format!("contend-{procs}"), tasks);
    let children: Vec<_> = (0..procs)
        .map(|i| {
            Command::new(std::env::current_exe().unwrap())
                .env(WORKER_ENV, format!("{}\tw{i}", dir.display()))
                .stdout(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let (mut total, mut first, mut last) = (0u64, u64::MAX, 0u64);
    for c in children {
        let out = c.wait_with_output().unwrap();
        assert!(out.status.success());
        let line = String::from_utf8(out.stdout).unwrap();
        let v: Vec<u64> = line
            .split_whitespace()
            .map(|x| x.parse().unwrap())
            .collect();
        total += v[0];
        if v[0] > 0 {
            first = first.min(v[1]);
            last = last.max(v[2]);
        }
    }
    // Exactly once: every task done, each claimed once.
    let mut board = Board::open(&BoardPath::resolve(Some(dir.to_str().unwrap())).unwrap()).unwrap();
    let tasks_now = board.tasks().unwrap();
    let double = tasks_now.iter().filter(|t| t.attempts != 1).count();
    let not_done = tasks_now
        .iter()
        .filter(|t| t.status != ceh::board::Status::Done)
        .count();
    let _ = board.status();
    let secs = (last.saturating_sub(first)) as f64 / 1e6;
    println!(
        "  {procs:>2} processes: {total} claims (claim + done) in {secs:.2}s = {:.0} claims/s; \
         double claims: {double}, not done: {not_done}",
        total as f64 / secs
    );
    assert_eq!(total as usize, tasks);
    assert_eq!(double + not_done, 0);
}

fn process_claims(root: &Path, runs: usize) {
    let (dir, _board) = new_board(root, "process", runs);
    let mut times = Vec::with_capacity(runs);
    for _ in 0..runs {
        let t = Instant::now();
        let out = Command::new(HOOK)
            .args([
                "board",
                "--board",
                dir.to_str().unwrap(),
                "claim",
                "w",
                "--json",
            ])
            .stdin(Stdio::null())
            .output()
            .unwrap();
        times.push(t.elapsed());
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    times.sort();
    println!(
        "  `board claim` process ({runs} runs): p50 {}, p99 {}",
        ms(pct(&times, 0.5)),
        ms(pct(&times, 0.99))
    );
}

/// Returns true if and only if `pid` has an inotify descriptor open: the waiter has
/// armed its watch and is (about to be) blocked.
fn has_inotify(pid: u32) -> bool {
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return false;
    };
    fds.flatten().any(|e| {
        std::fs::read_link(e.path()).is_ok_and(|l| l.to_string_lossy().contains("inotify"))
    })
}

fn wake_ups(root: &Path, runs: usize) {
    let dir = root.join("wake");
    let path = BoardPath::resolve(Some(dir.to_str().unwrap())).unwrap();
    let mut board = Board::create(&path, "benchmark", None).unwrap();
    let lead = ClaimRequest {
        worker: "lead".into(),
        roles: vec!["lead".into()],
        holder: Holder::Lease(Duration::from_secs(600)),
    };
    board.set_worker(Some("lead")).unwrap();
    let mut times = Vec::with_capacity(runs);
    for i in 0..runs {
        let first = board
            .add(&NewTask {
                title: format!("dependency {i}"),
                role: Some("lead".into()),
                ..Default::default()
            })
            .unwrap();
        board
            .add(&NewTask {
                title: format!("dependent {i}"),
                deps: vec![first.clone()],
                role: Some("worker".into()),
                ..Default::default()
            })
            .unwrap();
        let claimed = board.claim(&lead).unwrap().expect("the dependency");
        assert_eq!(claimed.task.id, first);
        let mut waiter = Command::new(HOOK)
            .args([
                "board",
                "--board",
                dir.to_str().unwrap(),
                "claim",
                "w",
                "--role",
                "worker",
                "--wait",
                "--json",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while !has_inotify(waiter.id()) {
            assert!(
                Instant::now() < deadline,
                "the waiter never armed its watch"
            );
            std::thread::sleep(Duration::from_millis(1));
        }
        // Let it finish its first look and block.
        std::thread::sleep(Duration::from_millis(20));
        let mut stdout = waiter.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut b = [0u8; 1];
            let _ = stdout.read_exact(&mut b);
            let _ = tx.send(Instant::now());
            let mut rest = Vec::new();
            let _ = stdout.read_to_end(&mut rest);
        });
        let t = Instant::now();
        board.done(&first, "result").unwrap();
        let woke = rx
            .recv_timeout(Duration::from_secs(10))
            .expect("the waiter woke");
        times.push(woke - t);
        assert!(waiter.wait().unwrap().success());
    }
    times.sort();
    println!(
        "  wake-up from `done` to the waiting claimer's output ({runs} runs): p50 {}, p99 {}",
        ms(pct(&times, 0.5)),
        ms(pct(&times, 0.99))
    );
}

fn main() {
    if let Ok(w) = std::env::var(WORKER_ENV) {
        let (dir, name) = w.split_once('\t').unwrap();
        worker(dir, name);
        return;
    }
    let tasks = arg("--tasks", 4000) as usize;
    let runs = arg("--runs", 200) as usize;
    let tmp = tempfile::tempdir().unwrap();
    println!("board benchmark ({tasks} tasks per contention run, {runs} runs otherwise)");
    for procs in [1, 8, 32] {
        contention(tmp.path(), procs, tasks);
    }
    process_claims(tmp.path(), runs);
    wake_ups(tmp.path(), runs.min(100));
}
