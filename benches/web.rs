//! The web server (`claude-editor-hook serve`, docs/web.md), measured from outside over
//! HTTP as the page and scripts use it.
//!
//! `cargo bench --bench web` (optionally `-- --changes N --secs N`). It measures:
//!
//! 1. the time from a state change to its `log` event on a connected event stream, p50
//!    and p99 over N changes (default 200), one change at a time:
//!    - an event appended to the log, as every writer appends one (one `write(2)`),
//!      timed from just before the write: the server's watch, its log hub and the
//!      stream;
//!    - the same with 100 streams open, timed at one of them;
//!    - `board add` through `POST /api/v1/board/tasks`, timed from just before the
//!      request: the HTTP request, the board's write and its event, and the stream;
//! 2. (measured first) the CPU `serve` uses over N seconds (default 10) with 10 streams
//!    open and nothing happening (`/proc/<pid>/task/*/schedstat`, every thread); the
//!    target is at most 10 ms per 10 s.
//!
//! Figures go to docs/performance.md.

#[path = "../tests/helper/mod.rs"]
mod helper;

use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::Command;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use helper::serve::Serve;

const HOOK: &str = env!("CARGO_BIN_EXE_claude-editor-hook");

fn arg(name: &str, default: usize) -> usize {
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

fn line(what: &str, mut v: Vec<Duration>) {
    v.sort();
    println!(
        "  {what} ({} runs): p50 {}, p99 {}",
        v.len(),
        ms(pct(&v, 0.5)),
        ms(pct(&v, 0.99))
    );
}

/// Nanoseconds on a CPU of each live thread of `pid` (`/proc/<pid>/task/*/schedstat`).
fn cpu_ns(pid: i32) -> Vec<(String, u64)> {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .expect("list the threads of serve")
        .flatten()
        .filter_map(|t| {
            let s = std::fs::read_to_string(t.path().join("schedstat")).ok()?;
            let ns = s.split_whitespace().next()?.parse::<u64>().ok()?;
            Some((t.file_name().to_string_lossy().into_owned(), ns))
        })
        .collect()
}

/// The CPU time `pid` uses over `window`, in nanoseconds: every thread's, sampled every
/// 50 ms, so that a thread that ends meanwhile (tokio's idle blocking threads do, after
/// 10 s) takes its time with it only from its last sample.
fn cpu_over(pid: i32, window: Duration) -> u64 {
    use std::collections::HashMap;
    let first: HashMap<String, u64> = cpu_ns(pid).into_iter().collect();
    let mut last = first.clone();
    let end = Instant::now() + window;
    while Instant::now() < end {
        std::thread::sleep(Duration::from_millis(50).min(end - Instant::now()));
        last.extend(cpu_ns(pid));
    }
    last.iter()
        .map(|(tid, ns)| ns - first.get(tid).copied().unwrap_or(0))
        .sum()
}

fn http() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .new_agent()
}

/// Opens the event stream; on its own thread, sends `(when, task)` for every `log`
/// event that names a task. Returns once the stream is open.
fn stream(serve: &Serve) -> mpsc::Receiver<(Instant, String)> {
    let resp = http()
        .get(format!("{}/api/v1/events?backlog=0", serve.base))
        .header("authorization", &format!("Bearer {}", serve.token))
        .call()
        .expect("GET events");
    assert_eq!(resp.status(), 200);
    let (tx, rx) = mpsc::channel();
    let body = resp.into_body().into_reader();
    std::thread::spawn(move || {
        read_logs(body, |task| tx.send((Instant::now(), task)).is_ok());
    });
    rx
}

/// Calls `on` with the `task` of each `log` event of the stream `r`, until it returns
/// false or the stream ends.
fn read_logs(r: impl Read, mut on: impl FnMut(String) -> bool) {
    let mut r = BufReader::new(r);
    let mut line = String::new();
    let mut is_log = false;
    loop {
        line.clear();
        if r.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let l = line.trim_end();
        if let Some(kind) = l.strip_prefix("event: ") {
            is_log = kind == "log";
        } else if let Some(data) = l.strip_prefix("data: ")
            && is_log
        {
            let v: serde_json::Value = serde_json::from_str(data).expect("an event");
            if let Some(task) = v["task"].as_str()
                && !on(task.to_owned())
            {
                return;
            }
        }
    }
}

/// Waits for the event of `task` on `rx`; when it arrived.
fn arrival(rx: &mpsc::Receiver<(Instant, String)>, task: &str) -> Instant {
    loop {
        let (at, t) = rx
            .recv_timeout(Duration::from_secs(30))
            .unwrap_or_else(|_| panic!("no event for {task} within 30 s"));
        if t == task {
            return at;
        }
    }
}

fn mark(root: &Path, task: &str) {
    ceh::events::append(
        root,
        ceh::events::What::Board {
            board: "bench".into(),
            verb: "mark".into(),
            task: Some(task.into()),
        },
    );
}

fn main() {
    let changes = arg("--changes", 200);
    let secs = arg("--secs", 10) as u64;
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let mut cmd = Command::new(HOOK);
    cmd.env("CLAUDE_AGENTS_DIR", &state)
        .env_remove("CLAUDE_EDITOR_HOOK_BOARD")
        .current_dir(dir.path());
    let serve = Serve::start(cmd, &[]);
    println!("web server (release build: `cargo bench --bench web`)");
    println!("state directory on disk ({})", dir.path().display());

    // 2, first: idle, exactly 10 streams open (dropped, each ends at the next event).
    let idle: Vec<_> = (0..10).map(|_| stream(&serve)).collect();
    let pid = serve.pid();
    std::thread::sleep(Duration::from_secs(2));
    let used = cpu_over(pid, Duration::from_secs(secs));
    println!(
        "| serve idle, 10 streams open | {secs} s | {:.2} ms CPU |",
        used as f64 / 1e6
    );
    drop(idle);

    // 1. A change to its event.
    let rx = stream(&serve);
    let mut appended = Vec::new();
    for i in 0..changes {
        let task = format!("m{i}");
        let t = Instant::now();
        mark(&state, &task);
        appended.push(arrival(&rx, &task) - t);
    }
    line(
        "an appended event to its SSE event, 1 stream open",
        appended,
    );

    let others: Vec<_> = (0..99).map(|_| stream(&serve)).collect();
    let mut fanned = Vec::new();
    for i in 0..changes {
        let task = format!("f{i}");
        let t = Instant::now();
        mark(&state, &task);
        fanned.push(arrival(&rx, &task) - t);
        // The others read theirs too (and are drained, so that nothing piles up).
        for o in &others {
            arrival(o, &task);
        }
    }
    line(
        "an appended event to its SSE event, 100 streams open",
        fanned,
    );
    drop(others);

    let client = http();
    let post = |path: &str, body: serde_json::Value| {
        let mut resp = client
            .post(format!("{}{path}", serve.base))
            .header("authorization", &format!("Bearer {}", serve.token))
            .header("content-type", "application/json")
            .send(body.to_string())
            .expect("POST");
        let status = resp.status().as_u16();
        let body = resp.body_mut().read_to_string().expect("the answer");
        let v: serde_json::Value = serde_json::from_str(&body).expect("JSON");
        assert!(status < 300, "{path}: {status} {v}");
        v
    };
    post(
        "/api/v1/board/init",
        serde_json::json!({"goal": "bench", "board": "bench"}),
    );
    let (mut added, mut round_trips) = (Vec::new(), Vec::new());
    for i in 0..changes {
        let t = Instant::now();
        let v = post(
            "/api/v1/board/tasks",
            serde_json::json!({"title": format!("task {i}"), "board": "bench"}),
        );
        round_trips.push(t.elapsed());
        let id = v["id"].as_str().unwrap().to_owned();
        added.push(arrival(&rx, &id) - t);
    }
    line("POST board/tasks round trip", round_trips);
    line("POST board/tasks to its SSE event", added);

    drop(rx);
}
