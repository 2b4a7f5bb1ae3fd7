//! Persistent agents draining a board: `agent-wrap NAME --board B` with exec agents on
//! a 20-task DAG, a dead host's claim coming back, direct delegations first, and a real
//! hosted Claude Code draining three tasks against the fake Messages API.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use serde_json::Value;

use crate::fixture::*;
use crate::helper::fake_api::RequestKind;
use crate::helper::wait::{output_with_timeout, wait_until, wait_until_or};

fn board(env: &Env, dir: &Path, args: &[&str]) -> Output {
    output_with_timeout(
        env.cmd(HOOK)
            .arg("board")
            .arg("--board")
            .arg(dir)
            .args(args),
        Duration::from_secs(60),
    )
}

fn ok_json(out: Output) -> Value {
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

fn report(env: &Env, dir: &Path) -> Value {
    ok_json(board(env, dir, &["report", "--json"]))
}

fn new_board(env: &Env, goal: &str) -> PathBuf {
    let dir = env.dir.path().join("board");
    let out = board(env, &dir, &["init", goal]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    dir
}

/// An exec agent's answer: `answer for ID by AGENT`, from the prompt's first line
/// `Board task ID: TITLE`.
fn answering(agent: &str) -> String {
    format!("head -n 1 | sed 's/^Board task \\([^:]*\\):.*/answer for \\1 by {agent}/'")
}

#[test]
fn two_exec_agents_with_roles_drain_a_twenty_task_dag_in_dependency_order() {
    let env = Env::new();
    let dir = new_board(&env, "Ship the feature");
    // n1..n20: each depends on its predecessor's half and on the one before it (a DAG
    // with chains and joins); odd ones are coding, even ones testing.
    let tasks: Vec<Value> = (1..=20)
        .map(|i| {
            let mut deps = Vec::new();
            if i > 2 {
                deps.push(format!("n{}", i / 2));
            }
            if i > 1 && !deps.contains(&format!("n{}", i - 1)) && i % 3 == 0 {
                deps.push(format!("n{}", i - 1));
            }
            serde_json::json!({
                "id": format!("n{i}"),
                "description": format!("step {i}"),
                "priority": 1 + i % 3,
                "dependencies": deps,
                "role": if i % 2 == 1 { "coding" } else { "testing" },
            })
        })
        .collect();
    let file = env.dir.path().join("tasks.json");
    std::fs::write(&file, serde_json::to_vec(&tasks).unwrap()).unwrap();
    let out = board(&env, &dir, &["add", "--from", file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let board_arg = format!("--board={}", dir.display());
    let _coder = env.agent_starting(
        "coder",
        &[
            "--role",
            "coding",
            "--exec",
            &answering("coder"),
            &board_arg,
        ],
    );
    let _tester = env.agent_starting(
        "tester",
        &[
            "--role",
            "testing",
            "--exec",
            &answering("tester"),
            &board_arg,
        ],
    );
    let done = wait_until(Duration::from_secs(60), "the board to be drained", || {
        let r = report(&env, &dir);
        (r["tasks"]
            .as_array()
            .unwrap()
            .iter()
            .all(|t| t["status"] == "done"))
        .then_some(r)
    });
    let by_id: HashMap<&str, &Value> = done["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| (t["id"].as_str().unwrap(), t))
        .collect();
    assert_eq!(by_id.len(), 20);
    for (id, t) in &by_id {
        let worker = t["worker"].as_str().unwrap();
        let role = t["role"].as_str().unwrap();
        assert_eq!(
            worker,
            if role == "coding" { "coder" } else { "tester" },
            "{id}"
        );
        assert_eq!(
            t["result"],
            format!("answer for {id} by {worker}\n").as_str(),
            "{id}"
        );
        assert_eq!(t["attempts"], 1, "{id}");
        for d in t["deps"].as_array().unwrap() {
            let dep = by_id[d.as_str().unwrap()];
            assert!(
                dep["finished_at_us"].as_u64() <= t["claimed_at_us"].as_u64(),
                "{id} was claimed before its dependency {d} finished"
            );
        }
    }
    // The leader's report has every result.
    let out = board(&env, &dir, &["report"]);
    let text_report = text(&out.stdout);
    for (id, t) in &by_id {
        assert!(
            text_report.contains(&format!(
                "answer for {id} by {}",
                t["worker"].as_str().unwrap()
            )),
            "{id} missing from the report:\n{text_report}"
        );
    }
    // Each board task ran as an ordinary task of its agent, visible in its recent list.
    let status = env.status("coder").unwrap();
    assert!(
        status["recent"][0]["title"]
            .as_str()
            .unwrap()
            .starts_with("board n"),
        "{status}"
    );
}

#[test]
fn a_dead_agent_wraps_claim_comes_back_at_once_and_another_agent_takes_it() {
    let env = Env::new();
    let dir = new_board(&env, "survive a crash");
    assert_eq!(
        board(&env, &dir, &["add", "the task"]).status.code(),
        Some(0)
    );
    let board_arg = format!("--board={}", dir.display());
    let mut slow = env.agent_starting("slow", &["--exec", "exec sleep 5", &board_arg]);
    let claimed = wait_until(SECS, "slow to claim t1", || {
        let t = ok_json(board(&env, &dir, &["show", "t1", "--json"]));
        (t["status"] == "claimed").then_some(t)
    });
    assert_eq!(claimed["worker"], "slow");
    assert_eq!(claimed["host_pid"], slow.pid());
    // A second agent waits: nothing is ready for it while slow holds t1.
    let _fast = env.agent("fast", &["--exec", "echo fast answer", &board_arg]);
    let t = ok_json(board(&env, &dir, &["show", "t1", "--json"]));
    assert_eq!(t["worker"], "slow");
    slow.signal(nix::sys::signal::Signal::SIGKILL);
    slow.wait_exit(SECS);
    // The host lock went with the process: fast is woken by its exit and takes t1.
    let t = wait_until(SECS, "fast to finish t1", || {
        let t = ok_json(board(&env, &dir, &["show", "t1", "--json"]));
        (t["status"] == "done").then_some(t)
    });
    assert_eq!(t["worker"], "fast");
    assert_eq!(t["attempts"], 2);
    assert_eq!(t["result"], "fast answer\n");
    let reason = t["reason"].as_str().unwrap();
    assert!(
        reason.contains("agent-wrap of slow") && reason.contains("exited while it held the task"),
        "{reason}"
    );
}

#[test]
fn direct_delegations_come_before_board_tasks() {
    let env = Env::new();
    let dir = new_board(&env, "first things first");
    for title in ["board one", "board two"] {
        assert_eq!(board(&env, &dir, &["add", title]).status.code(), Some(0));
    }
    let board_arg = format!("--board={}", dir.display());
    // Every task waits for the GO file, so the first board task holds the agent while a
    // direct delegation is queued behind it.
    let go = env.dir.path().join("GO");
    let script = format!(
        "cat > /dev/null; while [ ! -e '{}' ]; do sleep 0.02; done; echo answered",
        go.display()
    );
    let _agent = env.agent_starting("solo", &["--exec", &script, &board_arg]);
    env.wait_status("solo", "working", |s| {
        s["task"]["title"] == "board t1: board one"
    });
    let mut direct = env
        .cmd(HOOK)
        .args(["send", "solo", "direct"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let inbox = env.state.join("agents/solo/inbox");
    wait_until(SECS, "the direct task to be queued", || {
        (std::fs::read_dir(&inbox).ok()?.count() > 0).then_some(())
    });
    std::fs::write(&go, b"").unwrap();
    assert!(wait_child(&mut direct, SECS, "send").success());
    wait_until(SECS, "the board to be drained", || {
        let t = ok_json(board(&env, &dir, &["show", "t2", "--json"]));
        (t["status"] == "done").then_some(())
    });
    let status = env.wait_status("solo", "idle", |s| {
        s["recent"].as_array().is_some_and(|r| r.len() == 3)
    });
    let titles: Vec<&str> = status["recent"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["title"].as_str().unwrap())
        .collect();
    // Newest first: the direct task ran between the two board tasks.
    assert_eq!(
        titles,
        ["board t2: board two", "direct", "board t1: board one"]
    );
}

#[cfg_attr(
    missing_claude,
    ignore = "needs Claude Code and tmux: see README, Tests"
)]
#[test]
fn a_hosted_claude_code_drains_a_three_task_board() {
    let env = Env::new();
    let dir = new_board(&env, "Write the release notes");
    let Some(agent) = crate::e2e_agent::host_agent_with(
        "a_hosted_claude_code_drains_a_three_task_board",
        &env,
        "writer",
        &[format!("--board={}", dir.display())],
    ) else {
        return;
    };
    let (tmux, pane, sandbox) = (&agent.tmux, &agent.pane, &agent.sandbox);
    let trace = sandbox.path().join("host-trace.log");
    // The tasks arrive once the agent is up, as when a leader fills the board later.
    for args in [
        vec!["add", "collect the changes"],
        vec!["add", "draft the notes", "-d", "t1"],
        vec!["add", "polish", "-d", "t2"],
    ] {
        assert_eq!(board(&env, &dir, &args).status.code(), Some(0));
    }
    let done = wait_until_or(Duration::from_secs(120), || {
        assert!(
            !tmux.pane_dead(pane),
            "agent-wrap died:\n{}",
            tmux.capture_history(pane)
        );
        let r = report(&env, &dir);
        r["tasks"]
            .as_array()
            .unwrap()
            .iter()
            .all(|t| t["status"] == "done")
            .then_some(r)
    })
    .unwrap_or_else(|| {
        panic!(
            "the hosted agent did not drain the board:\n{}\n{}\nstatus: {:?}\ntrace:\n{}",
            text(&board(&env, &dir, &["list", "--json"]).stdout),
            tmux.capture_history(pane),
            env.status("writer"),
            std::fs::read_to_string(&trace).unwrap_or_default()
        )
    });
    for (i, t) in done["tasks"].as_array().unwrap().iter().enumerate() {
        let id = format!("t{}", i + 1);
        assert_eq!(t["id"], id.as_str());
        assert_eq!(t["worker"], "writer");
        let result = t["result"].as_str().unwrap();
        assert!(
            result.starts_with(&format!("FAKE-REPLY: Board task {id}:")),
            "{result}"
        );
    }
    // Each turn got the goal and the results of its dependencies, in one conversation.
    let prompts: Vec<_> = sandbox
        .api
        .requests()
        .into_iter()
        .filter(|r| r.kind == RequestKind::Prompt)
        .collect();
    let third = prompts
        .iter()
        .find(|r| r.prompt.starts_with("Board task t3:"))
        .expect("the third task's turn");
    assert!(
        third.prompt.contains("Team goal:\nWrite the release notes"),
        "{}",
        third.prompt
    );
    assert!(
        third
            .prompt
            .contains("FAKE-REPLY: Board task t2: draft the notes"),
        "{}",
        third.prompt
    );
    assert!(
        third.n_role("assistant") >= 2,
        "the agent kept its context across the tasks"
    );
}
