//! Fully automatic runs (`claude-editor-hook run`): the scheduler against real worker
//! processes (`--exec` scripts that log when they start and end), crashes and
//! resuming, Ctrl-C, bad input, and headless Claude Code against the fake API.

use std::collections::{HashMap, HashSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use serde_json::{Value, json};

use crate::fixture::*;
use crate::helper::wait::{output_with_timeout, wait_until};

/// How long a whole run may take before the test fails as hung.
const RUN_WAIT: Duration = Duration::from_secs(180);

/// A worker script: logs `start TASK PID NS` and `end TASK PID NS` (one `echo` each,
/// appended)
/// around `BODY`, then prints its result.
fn logging_worker(env: &Env, body: &str) -> (PathBuf, PathBuf) {
    let log = env.dir.path().join("worker.log");
    let script = write_script(
        env.dir.path(),
        "worker.sh",
        &format!(
            "#!/bin/sh\nlog={log}\ncat >/dev/null\necho \"start $CLAUDE_EDITOR_HOOK_RUN_TASK $$ $(date +%s%N)\" >>\"$log\"\n{body}\nrc=$?\necho \"end $CLAUDE_EDITOR_HOOK_RUN_TASK $$ $(date +%s%N)\" >>\"$log\"\n[ $rc = 0 ] && echo \"result of $CLAUDE_EDITOR_HOOK_RUN_TASK\"\nexit $rc\n",
            log = log.display()
        ),
    );
    (script, log)
}

fn write_tasks(env: &Env, tasks: &Value) -> PathBuf {
    let file = env.dir.path().join("tasks.json");
    fs::write(&file, serde_json::to_vec(tasks).unwrap()).unwrap();
    file
}

/// `claude-editor-hook run ARGS…` in the test's directory.
fn run_cmd(env: &Env, args: &[&str]) -> Command {
    let mut cmd = env.cmd(HOOK);
    cmd.arg("run").args(args).current_dir(env.dir.path());
    cmd
}

fn run(env: &Env, args: &[&str]) -> Output {
    output_with_timeout(&mut run_cmd(env, args), RUN_WAIT)
}

fn spawn_run(env: &Env, args: &[&str]) -> Child {
    use std::os::unix::process::CommandExt;
    run_cmd(env, args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .unwrap()
}

/// (task, start ns, end ns) per logged attempt, and the starts with no end yet.
#[derive(Debug, Default)]
struct Log {
    spans: Vec<(String, u128, u128)>,
    starts: Vec<(String, u128)>,
}

fn read_log(path: &Path) -> Log {
    let text = fs::read_to_string(path).unwrap_or_default();
    let mut open: HashMap<(String, String), u128> = HashMap::new();
    let mut log = Log::default();
    for line in text.lines() {
        let parts: Vec<&str> = line.split(' ').collect();
        let [kind, task, pid, ns] = parts[..] else {
            continue;
        };
        let ns: u128 = ns.parse().unwrap();
        let key = (task.to_owned(), pid.to_owned());
        match kind {
            "start" => {
                log.starts.push((task.to_owned(), ns));
                open.insert(key, ns);
            }
            "end" => {
                let start = open.remove(&key).expect("an end after its start");
                log.spans.push((task.to_owned(), start, ns));
            }
            _ => {}
        }
    }
    log
}

/// The most attempts that ran at the same time.
fn max_parallel(spans: &[(String, u128, u128)]) -> usize {
    let mut points: Vec<(u128, i32)> = spans
        .iter()
        .flat_map(|(_, s, e)| [(*s, 1), (*e, -1)])
        .collect();
    // An end before a start at the same instant.
    points.sort();
    let (mut now, mut max) = (0i32, 0i32);
    for (_, d) in points {
        now += d;
        max = max.max(now);
    }
    max as usize
}

/// The run ids, oldest first.
fn run_ids(env: &Env) -> Vec<String> {
    let out = run(env, &["--list", "--json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    v["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_owned())
        .collect()
}

/// The run's board tasks by id (`board list --json`).
fn board_tasks(env: &Env, run_id: &str) -> HashMap<String, Value> {
    let out = output_with_timeout(
        env.cmd(HOOK)
            .args([
                "board",
                "--board",
                &format!("run-{run_id}"),
                "list",
                "--json",
            ])
            .current_dir(env.dir.path()),
        SECS,
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    v["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| (t["id"].as_str().unwrap().to_owned(), t.clone()))
        .collect()
}

/// Processes whose environment marks them as workers of run `run_id` of `env`.
fn run_processes(env: &Env, run_id: &str) -> Vec<u32> {
    let dir = env.state.join("runs").join(run_id);
    let marker = format!("CLAUDE_EDITOR_HOOK_RUN_DIR={}", dir.display());
    fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| {
            let pid: u32 = e.file_name().to_str()?.parse().ok()?;
            let env = fs::read(e.path().join("environ")).ok()?;
            env.split(|&b| b == 0)
                .any(|v| v == marker.as_bytes())
                .then_some(pid)
        })
        .collect()
}

/// 30 tasks in 5 layers of 6; each task after the first layer needs two of the layer
/// before it.
fn layered_dag() -> (Value, HashMap<String, Vec<String>>) {
    let mut tasks = Vec::new();
    let mut deps = HashMap::new();
    for layer in 0..5 {
        for i in 0..6 {
            let id = format!("l{layer}t{i}");
            let d: Vec<String> = if layer == 0 {
                Vec::new()
            } else {
                vec![
                    format!("l{}t{}", layer - 1, i),
                    format!("l{}t{}", layer - 1, (i + 1) % 6),
                ]
            };
            tasks.push(json!({"id": id, "title": format!("task {id}"), "dependencies": d}));
            deps.insert(id, d);
        }
    }
    (json!({ "tasks": tasks }), deps)
}

#[test]
fn a_dag_of_30_runs_on_4_workers_in_dependency_order() {
    let env = Env::new();
    let (worker, log) = logging_worker(&env, "sleep 0.5");
    let (tasks, deps) = layered_dag();
    let file = write_tasks(&env, &tasks);
    let out = run(
        &env,
        &[
            "Build it",
            "-w",
            "4",
            "--no-plan",
            "--tasks",
            file.to_str().unwrap(),
            "--exec",
            worker.to_str().unwrap(),
        ],
    );
    let report = text(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{report}\n{}",
        text(&out.stderr)
    );
    let log = read_log(&log);
    assert_eq!(log.spans.len(), 30, "every task ran exactly once: {log:?}");
    let spans: HashMap<&str, (u128, u128)> = log
        .spans
        .iter()
        .map(|(t, s, e)| (t.as_str(), (*s, *e)))
        .collect();
    for (task, ds) in &deps {
        for d in ds {
            assert!(
                spans[task.as_str()].0 >= spans[d.as_str()].1,
                "{task} started before its dependency {d} ended"
            );
        }
    }
    assert_eq!(
        max_parallel(&log.spans),
        4,
        "the parallelism reaches 4, never more"
    );
    for task in deps.keys() {
        assert!(
            report.contains(&format!("### {task} task {task} — done")),
            "{report}"
        );
        assert!(report.contains(&format!("> result of {task}")), "{report}");
    }
    assert!(report.contains("30/30 done"), "{report}");
    let id = &run_ids(&env)[0];
    let folder = env.state.join("runs").join(id);
    let saved = fs::read_to_string(folder.join("report.md")).unwrap();
    assert_eq!(saved, report, "report.md is what was printed");
    // Private: the folders 0700, the files readable by nobody else.
    use std::os::unix::fs::PermissionsExt;
    let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
    for dir in [env.state.join("runs"), folder.clone(), folder.join("logs")] {
        assert_eq!(mode(&dir), 0o700, "{}", dir.display());
    }
    for file in ["run.json", "attempts.jsonl", "report.md", "logs/l0t0.1.log"] {
        assert_eq!(mode(&folder.join(file)) & 0o077, 0, "{file}");
    }
}

#[test]
fn a_failing_task_blocks_its_dependents_and_the_rest_finishes() {
    let env = Env::new();
    let (worker, _log) = logging_worker(
        &env,
        "if [ \"$CLAUDE_EDITOR_HOOK_RUN_TASK\" = a ]; then echo 'the compiler crashed' >&2; false; fi",
    );
    let file = write_tasks(
        &env,
        &json!([
            {"id": "a", "title": "A"},
            {"id": "b", "title": "B", "deps": ["a"]},
            {"id": "c", "title": "C", "deps": ["b"]},
            {"id": "d", "title": "D"},
            {"id": "e", "title": "E", "deps": ["d"]},
        ]),
    );
    let out = run(
        &env,
        &[
            "Go",
            "-w",
            "2",
            "--tasks",
            file.to_str().unwrap(),
            "--exec",
            worker.to_str().unwrap(),
        ],
    );
    let report = text(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{report}\n{}",
        text(&out.stderr)
    );
    let id = &run_ids(&env)[0];
    let tasks = board_tasks(&env, id);
    assert_eq!(tasks["a"]["status"], "failed");
    assert_eq!(tasks["a"]["attempts"], 2, "tried once more (--retries 1)");
    assert!(
        tasks["a"]["reason"]
            .as_str()
            .unwrap()
            .contains("exit status 1: the compiler crashed"),
        "{}",
        tasks["a"]
    );
    for blocked in ["b", "c"] {
        assert_eq!(tasks[blocked]["status"], "open");
        assert_eq!(tasks[blocked]["attempts"], 0);
        assert!(
            tasks[blocked]["blocked"]
                .as_str()
                .unwrap()
                .starts_with("blocked by a failed: exit status 1"),
            "{}",
            tasks[blocked]
        );
    }
    for done in ["d", "e"] {
        assert_eq!(tasks[done]["status"], "done", "{}", tasks[done]);
    }
    assert!(report.contains("## Failures"), "{report}");
    assert!(report.contains("Blocked: b, c"), "{report}");
    assert!(
        text(&out.stderr).contains("b blocked by a failed"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn a_timeout_is_killed_and_a_retry_succeeds() {
    let env = Env::new();
    let (worker, log) = logging_worker(
        &env,
        "case $CLAUDE_EDITOR_HOOK_RUN_TASK in\n  slow) sleep 300 ;;\n  flaky) [ \"$CLAUDE_EDITOR_HOOK_RUN_ATTEMPT\" != 1 ] ;;\nesac",
    );
    let file = write_tasks(
        &env,
        &json!([{"id": "slow", "title": "Slow"}, {"id": "flaky", "title": "Flaky"}]),
    );
    let out = run(
        &env,
        &[
            "Go",
            "-w",
            "2",
            "--tasks",
            file.to_str().unwrap(),
            "--exec",
            worker.to_str().unwrap(),
            "--timeout",
            "1s",
            "--retries",
            "1",
        ],
    );
    let report = text(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{report}\n{}",
        text(&out.stderr)
    );
    let id = &run_ids(&env)[0];
    let tasks = board_tasks(&env, id);
    assert_eq!(tasks["flaky"]["status"], "done");
    assert_eq!(tasks["flaky"]["attempts"], 2);
    assert_eq!(tasks["slow"]["status"], "failed");
    assert_eq!(tasks["slow"]["attempts"], 2);
    assert_eq!(tasks["slow"]["reason"], "timed out after 1s");
    assert!(report.contains("attempt 1 on w"), "{report}");
    assert!(report.contains("retry — timed out after 1s"), "{report}");
    assert!(report.contains("retry — exit status 1"), "{report}");
    // The timed-out attempts were killed: their `sleep 300` never logged an end.
    let log = read_log(&log);
    assert_eq!(log.starts.iter().filter(|(t, _)| t == "slow").count(), 2);
    assert!(log.spans.iter().all(|(t, _, _)| t != "slow"), "{log:?}");
    assert!(
        run_processes(&env, id).is_empty(),
        "nothing of the run is left"
    );
}

#[test]
fn a_sigkilled_run_resumes_without_redoing_anything_done() {
    let env = Env::new();
    let (worker, log_path) = logging_worker(&env, "sleep 0.2");
    // Two chains of 8.
    let tasks: Vec<Value> = (0..16)
        .map(|i| {
            let deps: Vec<String> = if i >= 2 {
                vec![format!("k{}", i - 2)]
            } else {
                vec![]
            };
            json!({"id": format!("k{i}"), "title": format!("step {i}"), "deps": deps})
        })
        .collect();
    let file = write_tasks(&env, &Value::Array(tasks));
    let mut child = spawn_run(
        &env,
        &[
            "Go",
            "-w",
            "2",
            "--tasks",
            file.to_str().unwrap(),
            "--exec",
            worker.to_str().unwrap(),
        ],
    );
    wait_until(RUN_WAIT, "4 tasks to end", || {
        (read_log(&log_path).spans.len() >= 4).then_some(())
    });
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    child.wait().unwrap();
    let id = run_ids(&env).pop().unwrap();
    let before = board_tasks(&env, &id);
    let done_before: HashSet<String> = before
        .iter()
        .filter(|(_, t)| t["status"] == "done")
        .map(|(id, _)| id.clone())
        .collect();
    assert!(
        done_before.len() >= 2 && done_before.len() < 16,
        "{done_before:?}"
    );
    let logged_before = read_log(&log_path).starts.len();

    let out = run(&env, &["--resume"]);
    let report = text(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{report}\n{}",
        text(&out.stderr)
    );
    assert!(text(&out.stderr).contains(&format!("resuming run {id}")));
    let after = board_tasks(&env, &id);
    assert!(after.values().all(|t| t["status"] == "done"), "{after:?}");
    let log = read_log(&log_path);
    let redone: Vec<&String> = log.starts[logged_before..]
        .iter()
        .map(|(t, _)| t)
        .filter(|t| done_before.contains(*t))
        .collect();
    assert!(redone.is_empty(), "done tasks ran again: {redone:?}");
    // Every task not done before the kill ran after it.
    for t in after.keys().filter(|t| !done_before.contains(*t)) {
        assert!(
            log.starts[logged_before..].iter().any(|(s, _)| s == t),
            "{t} never ran"
        );
    }
    assert!(report.contains("16/16 done"), "{report}");
    assert!(run_processes(&env, &id).is_empty());
}

#[test]
fn ctrl_c_stops_every_worker_and_reopens_their_tasks() {
    let env = Env::new();
    // Each worker leaves a process in its group and one that escaped it (setsid).
    let (worker, log) = logging_worker(&env, "setsid sleep 300 & sleep 300 & wait");
    let file = write_tasks(
        &env,
        &json!([{"id": "a", "title": "A"}, {"id": "b", "title": "B"}, {"id": "c", "title": "C"}]),
    );
    let mut child = spawn_run(
        &env,
        &[
            "Go",
            "-w",
            "2",
            "--tasks",
            file.to_str().unwrap(),
            "--exec",
            worker.to_str().unwrap(),
        ],
    );
    wait_until(RUN_WAIT, "2 workers to start", || {
        (read_log(&log).starts.len() >= 2).then_some(())
    });
    let id = run_ids(&env).pop().unwrap();
    wait_until(SECS, "the escaped sleeps to start", || {
        (run_processes(&env, &id).len() >= 6).then_some(())
    });
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    let status = wait_child(&mut child, RUN_WAIT, "run to exit after Ctrl-C");
    assert_eq!(status.code(), Some(130));
    assert_eq!(
        run_processes(&env, &id),
        Vec::<u32>::new(),
        "worker processes left"
    );
    let tasks = board_tasks(&env, &id);
    for t in ["a", "b", "c"] {
        assert_eq!(tasks[t]["status"], "open", "{}", tasks[t]);
    }
    let reopened: Vec<_> = tasks
        .values()
        .filter(|t| t["reason"] == "the run was cancelled")
        .collect();
    assert_eq!(reopened.len(), 2, "{tasks:?}");
}

#[test]
fn bad_input_gets_a_clear_error_and_starts_nothing() {
    let env = Env::new();
    let fails_with = |args: &[&str], msg: &str| {
        let out = run(&env, args);
        let err = text(&out.stderr);
        assert_ne!(out.status.code(), Some(0), "{args:?}");
        assert!(err.contains(msg), "{args:?}: {err}");
        assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
    };
    fails_with(&["", "--exec", "cat"], "the goal is empty");
    fails_with(&["  ", "--exec", "cat"], "the goal is empty");
    fails_with(
        &["Go", "-w", "0", "--exec", "cat"],
        "-w 0: a run needs at least one worker",
    );
    let cycle = write_tasks(
        &env,
        &json!([{"id": "a", "title": "A", "deps": ["b"]}, {"id": "b", "title": "B", "deps": ["a"]}]),
    );
    fails_with(
        &["Go", "--tasks", cycle.to_str().unwrap(), "--exec", "cat"],
        "dependency cycle: ",
    );
    let unknown = write_tasks(&env, &json!([{"id": "a", "title": "A", "deps": ["nope"]}]));
    fails_with(
        &["Go", "--tasks", unknown.to_str().unwrap(), "--exec", "cat"],
        "task a depends on nope, which is not a task of the plan",
    );
    fs::write(env.dir.path().join("junk.json"), b"\x00\xffnot json").unwrap();
    fails_with(
        &[
            "Go",
            "--tasks",
            env.dir.path().join("junk.json").to_str().unwrap(),
            "--exec",
            "cat",
        ],
        "is not a task list",
    );
    fails_with(&["--resume", "20000101-000000"], "no run 20000101-000000");
    fails_with(&["--resume", "../../etc"], "invalid run id");
    fails_with(&["--resume"], "there is no run to resume");
    assert!(run_ids(&env).is_empty(), "no run was started");
}

// ---- Headless Claude Code against the fake Messages API -------------------------------

use crate::helper::claude::{ClaudeSandbox, require_claude};
use crate::helper::fake_api::{RecordedRequest, Reply, RequestKind};

/// `claude-editor-hook run ARGS…` in the sandbox's project, with exactly the sandbox's
/// environment (its HOME, the fake API) and its Claude Code as the workers' program.
fn claude_run(env: &Env, sandbox: &ClaudeSandbox, claude: &Path, args: &[&str]) -> Output {
    let mut cmd = Command::new(HOOK);
    cmd.arg("run")
        .args(args)
        .current_dir(sandbox.project_dir())
        .env_clear()
        .envs(sandbox.env())
        .env("CLAUDE_AGENTS_DIR", &env.state)
        .env("CLAUDE_EDITOR_HOOK_CLAUDE", claude);
    output_with_timeout(&mut cmd, RUN_WAIT)
}

fn run_folder(env: &Env) -> PathBuf {
    let runs = env.state.join("runs");
    let mut ids: Vec<_> = fs::read_dir(&runs)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    ids.sort();
    ids.pop().expect("a run folder")
}

fn prompt_requests(sandbox: &ClaudeSandbox, starts: &str) -> Vec<RecordedRequest> {
    sandbox
        .api
        .requests()
        .into_iter()
        .filter(|r| r.kind == RequestKind::Prompt && r.prompt.starts_with(starts))
        .collect()
}

const PLAN: &str = r#"Here is the plan.
```json
{"tasks": [
  {"id": "design", "title": "Design the API", "body": "Write the design.", "priority": 1},
  {"id": "tests", "title": "Write the tests", "body": "Cover it.", "priority": 2},
  {"id": "build", "title": "Build it", "body": "Implement.", "dependencies": ["design", "tests"]}
]}
```"#;

fn is_planner(prompt: &str) -> bool {
    prompt.starts_with("You are the planner of an automatic run")
}

#[cfg_attr(
    missing_claude,
    ignore = "needs Claude Code and tmux: see README, Tests"
)]
#[test]
fn claude_plans_a_goal_and_two_workers_run_it() {
    let Some(claude) = require_claude("claude_plans_a_goal_and_two_workers_run_it") else {
        return;
    };
    let env = Env::new();
    let sandbox = ClaudeSandbox::new();
    sandbox.api.set_reply(|p| {
        if is_planner(p) {
            Reply::Text(PLAN.into())
        } else {
            Reply::Text(crate::helper::fake_api::default_reply(p))
        }
    });
    let out = claude_run(&env, &sandbox, &claude, &["Build an API", "-w", "2"]);
    let report = text(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{report}\n{}",
        text(&out.stderr)
    );
    let planner = prompt_requests(&sandbox, "You are the planner");
    assert_eq!(planner.len(), 1);
    assert!(planner[0].prompt.contains("Goal: Build an API"));
    for (id, title) in [
        ("design", "Design the API"),
        ("tests", "Write the tests"),
        ("build", "Build it"),
    ] {
        assert!(
            report.contains(&format!("### {id} {title} — done")),
            "{report}"
        );
        assert!(
            report.contains(&format!("> FAKE-REPLY: Board task {id}: {title}")),
            "{report}"
        );
    }
    // The two independent tasks ran on the two workers, each in its own session.
    let design = &prompt_requests(&sandbox, "Board task design")[0];
    let tests = &prompt_requests(&sandbox, "Board task tests")[0];
    assert_ne!(design.session_header, tests.session_header);
    let meta: Value =
        serde_json::from_slice(&fs::read(run_folder(&env).join("run.json")).unwrap()).unwrap();
    let sessions: Vec<Option<String>> = meta["workers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["session"].as_str().map(str::to_owned))
        .collect();
    assert!(sessions.contains(&design.session_header), "{meta}");
    assert!(sessions.contains(&tests.session_header), "{meta}");
    // The dependent task's prompt carries the goal and both results.
    let build = &prompt_requests(&sandbox, "Board task build")[0];
    assert!(
        build.prompt.contains("Team goal:\nBuild an API"),
        "{}",
        build.prompt
    );
    assert!(
        build
            .prompt
            .contains("FAKE-REPLY: Board task design: Design the API")
    );
    assert!(
        build
            .prompt
            .contains("FAKE-REPLY: Board task tests: Write the tests")
    );
    // Tokens, as Claude Code reported them: 10 in and 10 out per turn from the fake.
    assert!(
        report.contains("- Tokens: 30 input (0 cache read, 0 cache write), 30 output"),
        "{report}"
    );
    assert!(run_folder(&env).join("planner-1.txt").exists());
}

#[cfg_attr(
    missing_claude,
    ignore = "needs Claude Code and tmux: see README, Tests"
)]
#[test]
fn an_invalid_plan_is_asked_for_again_with_the_error() {
    let Some(claude) = require_claude("an_invalid_plan_is_asked_for_again_with_the_error") else {
        return;
    };
    let env = Env::new();
    let sandbox = ClaudeSandbox::new();
    sandbox.api.set_reply(|p| {
        if is_planner(p) {
            Reply::Text(
                r#"{"tasks": [{"id": "a", "title": "A", "dependencies": ["ghost"]}]}"#.into(),
            )
        } else if p.starts_with("That plan is invalid") {
            Reply::Text(r#"[{"id": "a", "title": "A"}]"#.into())
        } else {
            Reply::Text(crate::helper::fake_api::default_reply(p))
        }
    });
    let out = claude_run(&env, &sandbox, &claude, &["Do A", "-w", "1"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}\n{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    let retry = &prompt_requests(&sandbox, "That plan is invalid")[0];
    assert!(
        retry
            .prompt
            .contains("task a depends on ghost, which is not a task of the plan"),
        "{}",
        retry.prompt
    );
    // The second ask resumes the planner's session: it sees its own first answer.
    assert!(retry.body["messages"].to_string().contains("ghost"));
    let folder = run_folder(&env);
    assert!(
        fs::read_to_string(folder.join("planner-1.txt"))
            .unwrap()
            .contains("ghost")
    );
    assert!(text(&out.stdout).contains("### a A — done"));

    // Invalid twice: a clear error, and the answers are kept.
    let env = Env::new();
    sandbox
        .api
        .set_reply(|_| Reply::Text("I would rather not plan.".into()));
    let out = claude_run(&env, &sandbox, &claude, &["Do B", "-w", "1"]);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("the planner's plan was invalid twice"),
        "{err}"
    );
    let folder = run_folder(&env);
    assert!(
        err.contains(&folder.join("planner-2.txt").display().to_string()),
        "{err}"
    );
    assert_eq!(
        fs::read_to_string(folder.join("planner-2.txt")).unwrap(),
        "I would rather not plan."
    );
}

#[cfg_attr(
    missing_claude,
    ignore = "needs Claude Code and tmux: see README, Tests"
)]
#[test]
fn an_api_error_fails_one_task_and_blocks_only_its_dependents() {
    let Some(claude) = require_claude("an_api_error_fails_one_task_and_blocks_only_its_dependents")
    else {
        return;
    };
    let env = Env::new();
    let sandbox = ClaudeSandbox::new();
    sandbox.api.set_reply(|p| {
        if p.starts_with("Board task bad:") {
            Reply::Error {
                status: 529,
                kind: "overloaded_error".into(),
                message: "fake overload".into(),
            }
        } else {
            Reply::Text(crate::helper::fake_api::default_reply(p))
        }
    });
    let file = write_tasks(
        &env,
        &json!([
            {"id": "bad", "title": "Bad"},
            {"id": "after", "title": "After", "deps": ["bad"]},
            {"id": "fine", "title": "Fine"},
        ]),
    );
    let out = claude_run(
        &env,
        &sandbox,
        &claude,
        &["Go", "-w", "2", "--tasks", file.to_str().unwrap()],
    );
    let report = text(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{report}\n{}",
        text(&out.stderr)
    );
    assert!(report.contains("### fine Fine — done"), "{report}");
    assert!(report.contains("### bad Bad — failed"), "{report}");
    assert!(report.contains("- attempt 1 on w"), "{report}");
    assert!(report.contains("API error 529"), "{report}");
    assert!(report.contains("fake overload"), "{report}");
    assert!(report.contains("### after After — blocked"), "{report}");
    assert!(report.contains("Blocked: after"), "{report}");
    assert_eq!(
        prompt_requests(&sandbox, "Board task bad").len(),
        2,
        "one retry"
    );
    assert!(prompt_requests(&sandbox, "Board task after").is_empty());
}

#[cfg_attr(
    missing_claude,
    ignore = "needs Claude Code and tmux: see README, Tests"
)]
#[test]
fn a_workers_second_task_continues_its_session() {
    let Some(claude) = require_claude("a_workers_second_task_continues_its_session") else {
        return;
    };
    let env = Env::new();
    let sandbox = ClaudeSandbox::new();
    let file = write_tasks(
        &env,
        &json!([
            {"id": "first", "title": "Learn the codebase"},
            {"id": "second", "title": "Use what you learnt", "deps": ["first"]},
        ]),
    );
    let out = claude_run(
        &env,
        &sandbox,
        &claude,
        &["Go", "-w", "1", "--tasks", file.to_str().unwrap()],
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}\n{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    let first = &prompt_requests(&sandbox, "Board task first")[0];
    let second = &prompt_requests(&sandbox, "Board task second")[0];
    assert_eq!(first.session_header, second.session_header);
    let messages = second.body["messages"].to_string();
    assert!(
        messages.contains("Your task (first): Learn the codebase"),
        "{messages}"
    );
    assert!(
        messages.contains("FAKE-REPLY: Board task first: Learn the codebase"),
        "{messages}"
    );
    assert!(second.n_role("assistant") >= 1, "{messages}");
}

#[test]
fn worktrees_give_every_worker_its_own_branch_and_the_report_its_diff_stat() {
    let env = Env::new();
    let repo = crate::worktree::repo(&env);
    let script = write_script(
        env.dir.path(),
        "edit.sh",
        "#!/bin/sh\ncat >/dev/null\necho \"by $CLAUDE_EDITOR_HOOK_RUN_WORKER\" > \"$CLAUDE_EDITOR_HOOK_RUN_TASK.txt\"\npwd\n",
    );
    let file = write_tasks(
        &env,
        &json!([{"id": "x", "title": "X"}, {"id": "y", "title": "Y"}]),
    );
    let out = output_with_timeout(
        run_cmd(
            &env,
            &[
                "Edit",
                "-w",
                "2",
                "--worktrees",
                "--tasks",
                file.to_str().unwrap(),
                "--exec",
                script.to_str().unwrap(),
            ],
        )
        .current_dir(&repo),
        RUN_WAIT,
    );
    let report = text(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{report}\n{}",
        text(&out.stderr)
    );
    let id = &run_ids(&env)[0];
    assert!(report.contains("## Branches"), "{report}");
    for w in ["w1", "w2"] {
        assert!(
            report.contains(&format!("- {w}: `agent/r{id}-{w}`")),
            "{report}"
        );
    }
    assert!(report.contains("x.txt | 1 +"), "{report}");
    assert!(report.contains("y.txt | 1 +"), "{report}");
    // The work is in the worktrees, not in the main checkout.
    assert!(!repo.join("x.txt").exists() && !repo.join("y.txt").exists());
    let tasks = board_tasks(&env, id);
    let dir_of_x = tasks["x"]["result"].as_str().unwrap().trim().to_owned();
    assert!(dir_of_x.contains(&format!("r{id}-w")), "{dir_of_x}");
    assert!(Path::new(&dir_of_x).join("x.txt").exists());
}

#[test]
fn persistent_agents_are_the_workers_with_agents() {
    let env = Env::new();
    let _a = env.agent(
        "alpha",
        &["--exec", "head -1; echo \"answered by $AGENT_NAME\""],
    );
    let _b = env.agent(
        "beta",
        &["--exec", "head -1; echo \"answered by $AGENT_NAME\""],
    );
    let file = write_tasks(
        &env,
        &json!([
            {"id": "one", "title": "One"},
            {"id": "two", "title": "Two"},
            {"id": "three", "title": "Three", "deps": ["one", "two"]},
        ]),
    );
    let out = run(
        &env,
        &[
            "Go",
            "--agents",
            "alpha,beta",
            "--tasks",
            file.to_str().unwrap(),
        ],
    );
    let report = text(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{report}\n{}",
        text(&out.stderr)
    );
    let id = &run_ids(&env)[0];
    let tasks = board_tasks(&env, id);
    let workers: HashSet<&str> = tasks
        .values()
        .map(|t| t["worker"].as_str().unwrap())
        .collect();
    assert!(
        workers.is_subset(&HashSet::from(["alpha", "beta"])),
        "{workers:?}"
    );
    assert_eq!(
        tasks["three"]["result"].as_str().unwrap().lines().next(),
        Some("Board task three: Three")
    );
    assert!(
        tasks["three"]["result"]
            .as_str()
            .unwrap()
            .contains("answered by")
    );
    assert!(
        report.contains("Workers: 2 × persistent agents"),
        "{report}"
    );
    // Each ran as an ordinary task of the agent, with its done.json.
    assert_eq!(env.done_files().len(), 3);

    let out = run(
        &env,
        &[
            "Go",
            "--agents",
            "alpha,ghost",
            "--tasks",
            file.to_str().unwrap(),
        ],
    );
    assert!(
        text(&out.stderr).contains("agent ghost is not running"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn tasks_sent_to_agents_are_logged_queued_before_delivered() {
    let env = Env::new();
    let _a = env.agent("alpha", &["--exec", "head -1"]);
    let _b = env.agent("beta", &["--exec", "head -1"]);
    let file = write_tasks(
        &env,
        &json!([{"id": "one", "title": "One"}, {"id": "two", "title": "Two"}]),
    );
    let out = run(
        &env,
        &[
            "Go",
            "--agents",
            "alpha,beta",
            "--tasks",
            file.to_str().unwrap(),
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    // The host logs task_finished after done.json, which ended the run's attempt.
    let events = wait_until(SECS, "two finished tasks in the log", || {
        let out = output_with_timeout(env.cmd(HOOK).args(["events", "--json"]), SECS);
        let all: Vec<Value> = text(&out.stdout)
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        let n = all.iter().filter(|e| e["kind"] == "task_finished").count();
        (n == 2).then_some(all)
    });
    let ids: HashSet<&str> = events
        .iter()
        .filter(|e| e["kind"] == "task_finished")
        .map(|e| e["task"].as_str().unwrap())
        .collect();
    for id in ids {
        let kinds: Vec<&str> = events
            .iter()
            .filter(|e| e["task"] == id && e["kind"] != "agent_status")
            .map(|e| e["kind"].as_str().unwrap())
            .collect();
        assert_eq!(
            kinds,
            ["task_queued", "task_delivered", "task_finished"],
            "{id}: {events:#?}"
        );
        let queued = events
            .iter()
            .find(|e| e["kind"] == "task_queued" && e["task"] == id)
            .unwrap();
        assert_eq!(queued["background"], true);
        assert!(
            queued["title"].as_str().unwrap().starts_with("run "),
            "{queued}"
        );
    }
}

#[cfg_attr(missing_tmux, ignore = "needs tmux: see README, Tests")]
#[test]
fn on_a_terminal_the_bars_show_each_worker_and_ctrl_c_cancels() {
    use crate::helper::tmux::{TmuxServer, require_tmux};
    if require_tmux("on_a_terminal_the_bars_show_each_worker_and_ctrl_c_cancels").is_none() {
        return;
    }
    let env = Env::new();
    let worker = write_script(
        env.dir.path(),
        "worker.sh",
        "#!/bin/sh\ncat >/dev/null\necho \"working-on-$CLAUDE_EDITOR_HOOK_RUN_TASK\"\nexec sleep 300\n",
    );
    let file = write_tasks(
        &env,
        &json!([{"id": "a", "title": "Alpha"}, {"id": "b", "title": "Beta"}, {"id": "c", "title": "Gamma"}]),
    );
    let exit = env.dir.path().join("exit.txt");
    let report = env.dir.path().join("report.txt");
    let stty = env.dir.path().join("stty.txt");
    // The shell ignores the terminal's SIGINT so it can record the run's exit status;
    // the run installs its own handler.
    let script = format!(
        "trap '' INT; {HOOK} run Go -w 2 --tasks {} --exec {} >{}; rc=$?; stty -a >{}; echo \"exit=$rc\" >{}; sleep 300",
        file.display(),
        worker.display(),
        report.display(),
        stty.display(),
        exit.display()
    );
    let mut tmux = TmuxServer::new();
    let pane = tmux.new_session(
        "run",
        env.dir.path(),
        &[("CLAUDE_AGENTS_DIR".into(), env.state.display().to_string())],
        &["/bin/sh".into(), "-c".into(), script],
    );
    let screen = tmux
        .wait_for_screen(
            &pane,
            |s| {
                s.contains("0/3 done")
                    && s.contains("│ working-on-a")
                    && s.contains("│ working-on-b")
            },
            SECS,
        )
        .unwrap_or_else(|s| panic!("no bars on the terminal:\n{s}"));
    assert!(screen.contains("w1  a Alpha"), "{screen}");
    assert!(screen.contains("w2  b Beta"), "{screen}");
    assert!(screen.contains("left"), "the estimate: {screen}");
    tmux.send_keys(&pane, &["C-c"]);
    wait_until(SECS, "the run to exit", || {
        fs::read_to_string(&exit).ok().filter(|s| s.contains('='))
    });
    assert_eq!(fs::read_to_string(&exit).unwrap().trim(), "exit=130");
    let screen = tmux.capture(&pane);
    assert!(
        screen.contains("back to open from w1: the run was cancelled"),
        "{screen}"
    );
    assert!(
        !screen.contains("0/3 done"),
        "the bars are cleared: {screen}"
    );
    let report = fs::read_to_string(&report).unwrap();
    assert!(report.contains("**cancelled**"), "{report}");
    let id = run_ids(&env).pop().unwrap();
    assert!(run_processes(&env, &id).is_empty());
}

#[test]
fn json_lines_and_a_plan_from_an_exec_planner() {
    let env = Env::new();
    // The same command plans (when asked for a plan) and works.
    let agent = write_script(
        env.dir.path(),
        "agent.sh",
        "#!/bin/sh\nprompt=$(cat)\ncase $prompt in\n  'You are the planner'*) echo '{\"tasks\": [{\"id\": \"p\", \"title\": \"P\"}, {\"id\": \"q\", \"title\": \"Q\", \"deps\": [\"p\"]}]}' ;;\n  *) echo \"did $CLAUDE_EDITOR_HOOK_RUN_TASK\" ;;\nesac\n",
    );
    let out = run(
        &env,
        &[
            "Plan it",
            "-w",
            "2",
            "--exec",
            agent.to_str().unwrap(),
            "--json",
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let events: Vec<Value> = text(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}")))
        .collect();
    assert_eq!(events[0]["event"], "planning");
    assert_eq!(events[1]["event"], "started");
    assert_eq!(events[1]["tasks"], 2);
    let kinds: Vec<&str> = events
        .iter()
        .map(|e| e["event"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        [
            "planning",
            "started",
            "task_started",
            "task_done",
            "task_started",
            "task_done",
            "finished"
        ]
    );
    let last = events.last().unwrap();
    assert_eq!(last["exit"], 0);
    assert_eq!(last["done"], 2);
    assert!(Path::new(last["report"].as_str().unwrap()).exists());
    assert_eq!(events[2]["task"], "p", "q waits for p");
    // The team's event log has the run's end, for `top`, `events` and notifications.
    let log = output_with_timeout(env.cmd(HOOK).args(["events", "--json"]), SECS);
    let ended = text(&log.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|e| e["kind"] == "run_finished")
        .unwrap_or_else(|| panic!("no run_finished in {}", text(&log.stdout)));
    assert_eq!(ended["state"], "done", "{ended}");
    assert_eq!(ended["done"], 2);
}

#[test]
fn list_shows_an_interrupted_run_and_resume_refuses_a_live_one() {
    let env = Env::new();
    let (worker, log) = logging_worker(&env, "exec sleep 300");
    let file = write_tasks(&env, &json!([{"id": "a", "title": "A"}]));
    let mut child = spawn_run(
        &env,
        &[
            "Go",
            "-w",
            "1",
            "--tasks",
            file.to_str().unwrap(),
            "--exec",
            worker.to_str().unwrap(),
        ],
    );
    wait_until(RUN_WAIT, "the worker to start", || {
        (!read_log(&log).starts.is_empty()).then_some(())
    });
    let id = run_ids(&env).pop().unwrap();
    let out = run(&env, &["--resume", &id]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains(&format!("run {id} is running already (pid {})", child.id())),
        "{}",
        text(&out.stderr)
    );
    let listed = text(&run(&env, &["--list"]).stdout);
    assert!(listed.contains(&format!("{id}  running")), "{listed}");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    child.wait().unwrap();
    let listed = text(&run(&env, &["--list"]).stdout);
    assert!(listed.contains(&format!("{id}  interrupted")), "{listed}");
    assert!(listed.contains("0/1"), "{listed}");
    // The worker's own child outlived the SIGKILLed run (only the direct child dies
    // with it); a resume would kill it, this test does.
    for pid in run_processes(&env, &id) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid as i32),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
}

#[test]
fn ctrl_c_while_planning_then_resume_plans_again() {
    let env = Env::new();
    let gate = env.dir.path().join("gate");
    let started = env.dir.path().join("planning");
    let agent = write_script(
        env.dir.path(),
        "agent.sh",
        &format!(
            "#!/bin/sh\nprompt=$(cat)\ncase $prompt in\n  'You are the planner'*)\n    touch {started}\n    [ -e {gate} ] || exec sleep 300\n    echo '[{{\"id\": \"only\", \"title\": \"Only\"}}]' ;;\n  *) echo done ;;\nesac\n",
            started = started.display(),
            gate = gate.display()
        ),
    );
    let mut child = spawn_run(
        &env,
        &["Plan it", "-w", "1", "--exec", agent.to_str().unwrap()],
    );
    wait_until(RUN_WAIT, "the planner to start", || {
        started.exists().then_some(())
    });
    let id = run_ids(&env).pop().unwrap();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    let status = wait_child(&mut child, RUN_WAIT, "run to exit after Ctrl-C");
    assert_eq!(status.code(), Some(130));
    assert!(
        run_processes(&env, &id).is_empty(),
        "the planner was killed"
    );
    let listed = text(&run(&env, &["--list"]).stdout);
    assert!(listed.contains(&format!("{id}  cancelled")), "{listed}");
    fs::write(&gate, "").unwrap();
    let out = run(&env, &["--resume"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("### only Only — done"));
}

#[cfg_attr(
    missing_claude,
    ignore = "needs Claude Code and tmux: see README, Tests"
)]
#[test]
fn a_resumed_run_continues_its_workers_sessions() {
    let Some(claude) = require_claude("a_resumed_run_continues_its_workers_sessions") else {
        return;
    };
    let env = Env::new();
    let sandbox = ClaudeSandbox::new();
    let fail_second = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let flag = fail_second.clone();
    sandbox.api.set_reply(move |p| {
        if p.starts_with("Board task second:") && flag.load(std::sync::atomic::Ordering::SeqCst) {
            Reply::Error {
                status: 529,
                kind: "overloaded_error".into(),
                message: "fake overload".into(),
            }
        } else {
            Reply::Text(crate::helper::fake_api::default_reply(p))
        }
    });
    let file = write_tasks(
        &env,
        &json!([
            {"id": "first", "title": "Learn"},
            {"id": "second", "title": "Use it", "deps": ["first"]},
        ]),
    );
    let args = [
        "Go",
        "-w",
        "1",
        "--retries",
        "0",
        "--tasks",
        file.to_str().unwrap(),
    ];
    let out = claude_run(&env, &sandbox, &claude, &args);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    fail_second.store(false, std::sync::atomic::Ordering::SeqCst);
    let out = claude_run(&env, &sandbox, &claude, &["--resume"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}\n{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    let first = prompt_requests(&sandbox, "Board task first");
    assert_eq!(first.len(), 1, "the done task did not run again");
    let second = prompt_requests(&sandbox, "Board task second");
    let last = second.last().unwrap();
    assert_eq!(last.session_header, first[0].session_header);
    assert!(
        last.body["messages"]
            .to_string()
            .contains("FAKE-REPLY: Board task first: Learn"),
        "the resumed session holds the first task"
    );
}
