//! The MCP server, measured from the official SDK's client (rmcp) over stdio, as
//! Claude Code uses it.
//!
//! `cargo bench --bench mcp` (optionally `-- --calls N --starts N`). It measures:
//!
//! 1. start: spawning `claude-editor-hook mcp` until its `initialize` answer arrives
//!    (Claude Code starts the server with every session), p50 and p99;
//! 2. a `board_status` round trip on a board of 20 tasks, p50 and p99;
//! 3. a `delegate` round trip to an instant demo agent (`--demo --demo-delay-ms 0`), p50
//!    and p99, and the same minus the agent's own time (`finished_at_us -
//!    started_at_us` from its `done.json`): the server's and the protocol's overhead;
//!    beside it, in the same conditions, the same delegation in-process
//!    (`Coordinator::delegate`, what `send` runs), so the difference is what MCP adds.
//!    Both with the state directory on tmpfs (`/dev/shm`, where `$XDG_RUNTIME_DIR` is)
//!    and on disk (the temp dir).
//!
//! Figures go to docs/performance.md.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use ceh::state::{AgentName, AgentState, AgentStatus, Done, StateDir, TaskId, read_json};
use rmcp::ServiceExt;
use rmcp::model::CallToolRequestParams;
use rmcp::service::RunningService;
use rmcp::transport::TokioChildProcess;

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

async fn connect(root: &Path) -> RunningService<rmcp::RoleClient, ()> {
    let mut cmd = tokio::process::Command::new(HOOK);
    cmd.arg("mcp")
        .env("CLAUDE_AGENTS_DIR", root.join("state"))
        .env("CLAUDE_EDITOR_HOOK_BOARD", root.join("board"))
        .env("XDG_CONFIG_HOME", root.join("config"))
        .env_remove("CLAUDE_EDITOR_HOOK_AGENT")
        .env_remove("AGENT_WRAP_AGENT_DIR")
        .env_remove("AGENT_NAME");
    ().serve(TokioChildProcess::new(cmd).expect("spawn the server"))
        .await
        .expect("initialize")
}

async fn call(
    s: &RunningService<rmcp::RoleClient, ()>,
    name: &'static str,
    args: serde_json::Value,
) -> rmcp::model::CallToolResult {
    let r = s
        .call_tool(
            CallToolRequestParams::new(name).with_arguments(args.as_object().unwrap().clone()),
        )
        .await
        .expect("the call");
    assert_eq!(r.is_error, Some(false), "{name}: {:?}", r.content);
    r
}

fn start_demo(root: &Path) -> Killed {
    let state = StateDir::open(&root.join("state")).unwrap();
    let child = Command::new(WRAP)
        .args(["quick", "--demo", "--demo-delay-ms", "0", "--quiet"])
        .env("CLAUDE_AGENTS_DIR", state.root())
        .stdin(Stdio::null())
        .spawn()
        .expect("start agent-wrap");
    let agent = AgentName::parse("quick").unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !AgentStatus::load(&state, &agent)
        .ok()
        .flatten()
        .is_some_and(|s| s.status == AgentState::Idle && s.pid == child.id())
    {
        assert!(Instant::now() < deadline, "the demo agent did not start");
        std::thread::sleep(Duration::from_millis(5));
    }
    Killed(child)
}

fn main() {
    let calls = arg("--calls", 200);
    let starts = arg("--starts", 30);
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_path_buf();
    println!("MCP server (release build: `cargo bench --bench mcp`)");
    server(&root, calls, starts);
    if Path::new("/dev/shm").is_dir() {
        let shm = tempfile::tempdir_in("/dev/shm").unwrap();
        println!("state directory on tmpfs ({})", shm.path().display());
        delegations(shm.path(), calls);
    }
    println!("state directory on disk ({})", root.display());
    delegations(&root, calls);
}

/// Start-up and `board_status`.
fn server(root: &Path, calls: usize, starts: usize) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut start = Vec::new();
        for _ in 0..starts {
            let t = Instant::now();
            let s = connect(root).await;
            start.push(t.elapsed());
            s.cancel().await.unwrap();
        }
        line("start: spawn to the initialize answer", start);

        let s = connect(root).await;
        call(&s, "board_init", serde_json::json!({"goal": "bench"})).await;
        for i in 0..20 {
            call(
                &s,
                "board_add",
                serde_json::json!({"title": format!("task {i}")}),
            )
            .await;
        }
        let mut status = Vec::new();
        for _ in 0..calls {
            let t = Instant::now();
            call(&s, "board_status", serde_json::json!({})).await;
            status.push(t.elapsed());
        }
        line("board_status round trip", status);

        s.cancel().await.unwrap();
    });
}

/// `delegate` through the server, and the same delegation in-process.
fn delegations(root: &Path, calls: usize) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let _agent = start_demo(root);
    let state = StateDir::open(&root.join("state")).unwrap();
    let work_of = |id: &TaskId| {
        let done: Done = read_json(&state.done_path(id)).unwrap().unwrap();
        Duration::from_micros(
            done.finished_at_us
                .saturating_sub(done.started_at_us.unwrap_or(done.finished_at_us)),
        )
    };
    let coordinator = ceh::coordinator::Coordinator::new(state.clone());
    let agent = AgentName::parse("quick").unwrap();
    let mut direct = Vec::new();
    for i in 0..calls {
        let t = Instant::now();
        let report = coordinator
            .delegate(&agent, format!("ping {i}"), None, None)
            .unwrap();
        direct.push(t.elapsed().saturating_sub(work_of(&report.task)));
    }
    line(
        "in-process Coordinator::delegate overhead (the baseline)",
        direct,
    );
    rt.block_on(async {
        let s = connect(root).await;
        let (mut total, mut over) = (Vec::new(), Vec::new());
        for i in 0..calls {
            let t = Instant::now();
            let r = call(
                &s,
                "delegate",
                serde_json::json!({"target": "quick", "prompt": format!("ping {i}")}),
            )
            .await;
            let took = t.elapsed();
            let id = r.structured_content.unwrap()["task_id"]
                .as_str()
                .unwrap()
                .to_owned();
            total.push(took);
            over.push(took.saturating_sub(work_of(&TaskId::parse(&id).unwrap())));
        }
        line("delegate round trip to an instant demo agent", total);
        line("delegate overhead over the agent's own time", over);
        s.cancel().await.unwrap();
    });
}
