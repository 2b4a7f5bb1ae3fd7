//! Editor mode against real `agent-wrap` processes: the round trip and its failures.

use std::fs;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use crate::fixture::*;
use crate::helper::wait::wait_until;

#[test]
fn demo_agent_answer_lands_in_the_prompt_file() {
    let env = Env::new();
    let _agent = env.agent("alpha", &["--demo", "--demo-delay-ms", "0"]);
    let (out, after) = env.run_hook(b"@alpha plan the dark-mode feature");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let (head, body) = head_and_body(&after);
    assert!(head.starts_with("[@alpha · task "), "{head}");
    let sum = ceh::agent::demo::checksum(b"plan the dark-mode feature");
    assert!(
        text(&body).contains(&format!(
            "DEMO-ANSWER {sum:016x} plan the dark-mode feature"
        )),
        "{}",
        text(&body)
    );
    let done = env.wait_single_done();
    assert_eq!(done["outcome"], "ok");
    assert_eq!(done["finished_by"], "agent");
    env.wait_status("alpha", "idle", |s| s["recent"][0]["outcome"] == "ok");
}

#[test]
fn exec_agent_gets_the_prompt_byte_exact_on_stdin() {
    let env = Env::new();
    let _agent = env.agent("echo", &["--exec", "cat"]);
    let prompt =
        "first line\n/second starts with slash\n!third bang\n#fourth hash\nünïcödé ✓\n\ttabbed  \n";
    let (out, after) = env.run_hook(format!("@echo {prompt}").as_bytes());
    assert_eq!(out.status.code(), Some(0));
    let (head, body) = head_and_body(&after);
    assert!(head.starts_with("[@echo · task "), "{head}");
    assert_eq!(text(&body), prompt);
}

#[test]
fn the_context_block_is_not_sent() {
    let env = Env::new();
    let _agent = env.agent("echo", &["--exec", "cat"]);
    let file = "# ─── Claude's last response (for reference; removed on save) ───\n# earlier answer\n\
                # ─── Write your reply below this line ──────────────────────────\n\n@echo just this";
    let (_, after) = env.run_hook(file.as_bytes());
    assert_eq!(head_and_body(&after).1, b"just this");
}

#[test]
fn a_failing_command_fails_the_task_and_keeps_the_prompt() {
    let env = Env::new();
    let _agent = env.agent(
        "bad",
        &[
            "--exec",
            "cat >/dev/null; echo partial; echo 'boom: disk on fire' >&2; exit 3",
        ],
    );
    let (out, after) = env.run_hook(b"@bad do the thing\nline two");
    assert_eq!(out.status.code(), Some(0));
    let (head, body) = head_and_body(&after);
    assert!(
        head.starts_with("[claude-editor-hook] @bad failed (task "),
        "{head}"
    );
    assert!(
        head.ends_with("the command exited with status 3: boom: disk on fire"),
        "{head}"
    );
    assert_eq!(body, b"@bad do the thing\nline two");
}

#[test]
fn unknown_and_offline_agents_fail_at_once_keeping_the_prompt() {
    let env = Env::new();
    let t = Instant::now();
    let (out, after) = env.run_hook(b"@ghost hello\nsecond line");
    assert_eq!(out.status.code(), Some(0));
    let (head, body) = head_and_body(&after);
    assert!(
        head.contains("unknown agent @ghost: no agents are registered"),
        "{head}"
    );
    assert_eq!(body, b"@ghost hello\nsecond line");

    let mut agent = env.agent("planning", &["--demo"]);
    agent.signal(Signal::SIGTERM);
    assert_eq!(agent.wait_exit(SECS), 143);
    let (_, after) = env.run_hook(b"@planning hi");
    let (head, _) = head_and_body(&after);
    assert!(head.contains("agent @planning is offline"), "{head}");
    let (_, after) = env.run_hook(b"@other hi");
    assert!(
        text(&after).contains("unknown agent or role @other (agents: planning; roles: none)"),
        "{}",
        text(&after)
    );
    assert!(t.elapsed() < Duration::from_secs(10));
}

#[test]
fn a_busy_agent_serves_waiting_coordinators_in_order() {
    let env = Env::new();
    let gate = env.dir.path().join("gate");
    nix::unistd::mkfifo(&gate, nix::sys::stat::Mode::S_IRWXU).unwrap();
    // Each task blocks until the test opens and closes the gate once.
    let cmd = format!("cat '{}' >/dev/null; cat", gate.display());
    let _agent = env.agent("busy", &["--exec", &cmd]);

    let (mut first, f1) = env.spawn_hook(b"@busy one");
    env.wait_status("busy", "working", |_| true);
    let (mut second, f2) = env.spawn_hook(b"@busy two");
    wait_until(SECS, "the second task to queue", || {
        pending(&env, "busy").eq(&1).then_some(())
    });
    let (mut third, f3) = env.spawn_hook(b"@busy three");
    wait_until(SECS, "the third task to queue", || {
        pending(&env, "busy").eq(&2).then_some(())
    });

    let status = status_json(&env);
    assert_eq!(status["agents"][0]["queued"], 2, "{status}");
    assert_eq!(status["agents"][0]["status"], "working");

    for child in [&mut first, &mut second, &mut third] {
        release(&gate);
        assert!(wait_child(child, SECS, "a coordinator").success());
    }
    for (file, want) in [(f1, "one"), (f2, "two"), (f3, "three")] {
        assert_eq!(head_and_body(&fs::read(file).unwrap()).1, want.as_bytes());
    }
    let mut done = env.done_files();
    done.sort_by_key(|d| d["claimed_at_us"].as_u64());
    let created: Vec<_> = done
        .iter()
        .map(|d| d["created_at_us"].as_u64().unwrap())
        .collect();
    assert!(
        created.windows(2).all(|w| w[0] < w[1]),
        "not FIFO: {done:?}"
    );
}

/// Opens and closes the gate FIFO once, which lets one blocked task go on. The open is
/// non-blocking and retried, so a task that never reaches the gate fails the test.
fn release(gate: &std::path::Path) {
    use std::os::unix::fs::OpenOptionsExt;
    wait_until(SECS, "a task to wait at the gate", || {
        fs::OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(gate)
            .ok()
    });
}

fn pending(env: &Env, name: &str) -> usize {
    fs::read_dir(env.state.join("agents").join(name).join("inbox"))
        .map(|d| {
            d.filter(|e| {
                !e.as_ref()
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .starts_with('.')
            })
            .count()
        })
        .unwrap_or(0)
}

fn status_json(env: &Env) -> serde_json::Value {
    let out = env.cmd(HOOK).args(["status", "--json"]).output().unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("status --json prints one JSON document")
}

#[test]
fn agent_killed_mid_task_returns_within_two_seconds_with_the_reason() {
    let env = Env::new();
    let agent = env.agent("victim", &["--exec", "exec sleep 60"]);
    let (mut hook, file) = env.spawn_hook(b"@victim long job");
    env.wait_status("victim", "working", |_| true);
    let killed = Instant::now();
    agent.signal(Signal::SIGKILL);
    let status = wait_child(
        &mut hook,
        Duration::from_secs(2),
        "the coordinator to notice the death",
    );
    assert!(killed.elapsed() < Duration::from_secs(2));
    assert_eq!(status.code(), Some(0));
    let (head, body) = head_and_body(&fs::read(file).unwrap());
    assert!(
        head.contains("@victim failed") && head.contains("died"),
        "{head}"
    );
    assert_eq!(body, b"@victim long job");
    assert_eq!(env.wait_single_done()["finished_by"], "coordinator");
    // The status file still says working: readers must not believe it.
    assert_eq!(status_json(&env)["agents"][0]["status"], "offline");
}

#[test]
fn sigterm_to_the_coordinator_cancels_the_task_and_frees_the_agent() {
    let env = Env::new();
    let _agent = env.agent("worker", &["--exec", "exec sleep 60"]);
    let (mut hook, file) = env.spawn_hook(b"@worker long job");
    env.wait_status("worker", "working", |_| true);
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(hook.id() as i32),
        Signal::SIGTERM,
    )
    .unwrap();
    let status = wait_child(&mut hook, SECS, "the coordinator to stop");
    assert_eq!(status.code(), Some(143));
    let done = env.wait_single_done();
    assert_eq!(done["outcome"], "cancelled", "{done}");
    assert_eq!(done["finished_by"], "agent");
    assert!(done["reason"].as_str().unwrap().contains("SIGTERM"));
    env.wait_status("worker", "idle", |_| true);
    // Non-zero exit: Claude Code ignores the file, so it is left as it was.
    assert_eq!(fs::read(file).unwrap(), b"@worker long job");
}

#[test]
fn sigterm_to_the_agent_fails_the_task_with_the_reason() {
    let env = Env::new();
    let mut agent = env.agent("worker", &["--exec", "exec sleep 60"]);
    let (mut hook, file) = env.spawn_hook(b"@worker long job");
    env.wait_status("worker", "working", |_| true);
    agent.signal(Signal::SIGTERM);
    assert!(wait_child(&mut hook, SECS, "the coordinator").success());
    assert_eq!(agent.wait_exit(SECS), 143);
    let head = head_and_body(&fs::read(file).unwrap()).0;
    assert!(head.contains("agent-wrap received SIGTERM"), "{head}");
    assert_eq!(env.status("worker").unwrap()["status"], "offline");
}

#[test]
fn timeout_cancels_and_says_so() {
    let env = Env::new();
    let _agent = env.agent("slow", &["--exec", "exec sleep 60"]);
    let file = env.prompt_file(b"@slow take your time");
    let out = env
        .cmd(HOOK)
        .args(["--timeout", "1"])
        .arg(&file)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let (head, body) = head_and_body(&fs::read(file).unwrap());
    assert!(
        head.contains("@slow cancelled") && head.contains("timed out after 1s"),
        "{head}"
    );
    assert_eq!(body, b"@slow take your time");
    env.wait_status("slow", "idle", |_| true);
}

#[test]
fn binary_and_empty_prompts_are_refused_and_kept() {
    let env = Env::new();
    let _agent = env.agent("echo", &["--exec", "cat"]);
    let (_, after) = env.run_hook(b"@echo \xff\xfe binary");
    let (head, body) = head_and_body(&after);
    assert!(head.contains("not UTF-8"), "{head}");
    assert_eq!(body, b"@echo \xff\xfe binary");
    let (_, after) = env.run_hook(b"@echo   ");
    assert!(
        text(&after).starts_with("[claude-editor-hook] nothing to send"),
        "{}",
        text(&after)
    );
    assert!(env.done_files().is_empty(), "no task may be created");
}

#[test]
fn a_second_host_for_the_same_name_is_refused() {
    let env = Env::new();
    let agent = env.agent("solo", &["--demo"]);
    let out = env.cmd(WRAP).args(["solo", "--demo"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(
        err.contains(&format!("already hosted by agent-wrap pid {}", agent.pid())),
        "{err}"
    );
    let out = env.cmd(WRAP).args(["../etc", "--demo"]).output().unwrap();
    assert!(
        text(&out.stderr).contains("invalid agent name"),
        "{}",
        text(&out.stderr)
    );
}

/// An envelope for agent `agent` from this (live) test process.
fn envelope(id: &str, agent: &str) -> Vec<u8> {
    serde_json::json!({"version": 1, "id": id, "agent": agent, "prompt": "p", "title": "p",
        "requester": {"pid": std::process::id(), "parent_pid": 1, "cwd": "/", "tmux_pane": null},
        "created_at_us": 1})
    .to_string()
    .into_bytes()
}

/// Queues a hand-made task `id` for agent `good` (with `task_json` as its envelope and
/// `plant` run on its directory), waits for the agent to end it, and returns the reason.
fn planted_task_reason(
    env: &Env,
    seq: u32,
    id: &str,
    task_json: &[u8],
    plant: impl FnOnce(&std::path::Path),
) -> String {
    let dir = env.state.join("tasks").join(id);
    fs::create_dir(&dir).unwrap();
    fs::write(dir.join("task.json"), task_json).unwrap();
    plant(&dir);
    let entry = format!(r#"{{"version":1,"task_id":"{id}","queued_at_us":{seq}}}"#);
    fs::write(
        env.state
            .join(format!("agents/good/inbox/{seq:020}-{id}.json")),
        entry,
    )
    .unwrap();
    let done = wait_until(SECS, &format!("task {id} to be ended"), || {
        fs::read(dir.join("done.json")).ok()
    });
    let done: serde_json::Value = serde_json::from_slice(&done).unwrap();
    assert_eq!(done["outcome"], "failed", "{done}");
    done["reason"].as_str().unwrap().to_owned()
}

#[test]
fn corrupt_state_files_give_clear_errors_without_crashing() {
    let env = Env::new();
    let agent = env.agent("good", &["--exec", "cat"]);
    // Bad tasks in the inbox: the agent fails each with the reason and keeps serving.
    let reason = planted_task_reason(&env, 1, "bad-1", b"{ nope", |_| {});
    assert!(reason.contains("corrupt state file"), "{reason}");
    // An envelope that names another agent is refused, not run.
    let reason = planted_task_reason(&env, 2, "forged-1", &envelope("forged-1", "other"), |_| {});
    assert!(
        reason.contains("names task forged-1 for @other"),
        "{reason}"
    );
    // A FIFO planted as the output log must not wedge the host.
    let reason = planted_task_reason(&env, 3, "fifo-1", &envelope("fifo-1", "good"), |dir| {
        nix::unistd::mkfifo(&dir.join("output.log"), nix::sys::stat::Mode::S_IRWXU).unwrap();
    });
    assert!(reason.contains("output.log"), "{reason}");

    let (_, after) = env.run_hook(b"@good still alive");
    assert_eq!(head_and_body(&after).1, b"still alive");

    // A corrupt status file: the coordinator and `status` name the file.
    drop(agent);
    fs::create_dir_all(env.state.join("agents/broken")).unwrap();
    fs::write(env.state.join("agents/broken/status.json"), b"\x00garbage").unwrap();
    let (out, after) = env.run_hook(b"@broken hi");
    assert_eq!(out.status.code(), Some(0));
    let head = head_and_body(&after).0;
    assert!(
        head.contains("corrupt state file") && head.contains("broken/status.json"),
        "{head}"
    );
    let status = status_json(&env);
    let broken = status["agents"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["name"] == "broken")
        .unwrap();
    assert_eq!(broken["status"], "error");
    let table = env.cmd(HOOK).arg("status").output().unwrap();
    assert!(table.status.success());
    assert!(text(&table.stdout).contains("good") && text(&table.stdout).contains("offline"));
}

#[test]
fn an_unsafe_state_directory_is_refused_and_left_untouched() {
    use std::os::unix::fs::PermissionsExt;
    let env = Env::new();
    fs::create_dir(&env.state).unwrap();
    fs::set_permissions(&env.state, fs::Permissions::from_mode(0o777)).unwrap();
    let out = env.cmd(WRAP).args(["x", "--demo"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("world-writable"),
        "{}",
        text(&out.stderr)
    );
    let (_, after) = env.run_hook(b"@x hi");
    assert!(text(&after).contains("world-writable"));
    assert_eq!(fs::read_dir(&env.state).unwrap().count(), 0);
}

#[test]
fn a_starting_agent_prunes_its_own_week_old_tasks_only() {
    let env = Env::new();
    let week_and_a_day_us = 8 * 24 * 3600 * 1_000_000u64;
    let now = ceh::time::now_us();
    let make = |id: &str, agent: &str, finished_at_us: u64| {
        let dir = env.state.join("tasks").join(id);
        fs::create_dir_all(&dir).unwrap();
        let task = serde_json::json!({"version": 1, "id": id, "agent": agent, "prompt": "p", "title": "p",
            "requester": {"pid": 1, "parent_pid": 1, "cwd": "/", "tmux_pane": null}, "created_at_us": 1});
        let done = serde_json::json!({"version": 1, "task_id": id, "outcome": "ok", "reason": null,
            "finished_by": "agent", "created_at_us": 1, "claimed_at_us": null, "started_at_us": null,
            "finished_at_us": finished_at_us, "result_bytes": 0});
        fs::write(dir.join("task.json"), task.to_string()).unwrap();
        fs::write(dir.join("done.json"), done.to_string()).unwrap();
        dir
    };
    fs::create_dir_all(env.state.join("tasks")).unwrap();
    let old_mine = make("old-mine", "keeper", now - week_and_a_day_us);
    let new_mine = make("new-mine", "keeper", now);
    let old_other = make("old-other", "someone", now - week_and_a_day_us);
    let _agent = env.agent("keeper", &["--demo"]);
    assert!(!old_mine.exists());
    assert!(new_mine.exists() && old_other.exists());
}

#[test]
fn a_process_that_escapes_the_group_cannot_hold_the_task_open() {
    let env = Env::new();
    // The daemonized sleep keeps the command's stdout open after the command exits.
    // Two escaped processes keep the command's stdout open after it exits: one still
    // carries the task's environment, one shed it (`env -i`) and can only be outwaited.
    let cmd = "env -i setsid sleep 7 & setsid sleep 30 & echo answered";
    let _agent = env.agent("leaky", &["--exec", cmd]);
    let t = Instant::now();
    let (out, after) = env.run_hook(b"@leaky go");
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(head_and_body(&after).1, b"answered\n");
    assert!(
        t.elapsed() < Duration::from_secs(4),
        "waited for the escaped process"
    );
    env.wait_status("leaky", "idle", |_| true);
    // The one with the task's environment went with the task.
    wait_until(SECS, "no process left with the agent's environment", || {
        with_env("AGENT_NAME=leaky").is_empty().then_some(())
    });
}

/// Pids of live processes whose environment contains `var` exactly.
fn with_env(var: &str) -> Vec<u32> {
    fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&pid| running(pid as i32))
        .filter(|pid| {
            fs::read(format!("/proc/{pid}/environ"))
                .is_ok_and(|env| env.split(|&b| b == 0).any(|v| v == var.as_bytes()))
        })
        .collect()
}

#[test]
fn the_agent_stops_working_for_a_task_its_coordinator_already_ended() {
    let env = Env::new();
    let _agent = env.agent("worker", &["--exec", "exec sleep 60"]);
    let (mut hook, _) = env.spawn_hook(b"@worker long job");
    let status = env.wait_status("worker", "working", |_| true);
    let id = status["task"]["id"].as_str().unwrap();
    // What a coordinator that gave up on the agent writes.
    let done = serde_json::json!({"version": 1, "task_id": id, "outcome": "failed",
        "reason": "gave up", "finished_by": "coordinator", "created_at_us": 1,
        "claimed_at_us": null, "started_at_us": null, "finished_at_us": 2, "result_bytes": null});
    fs::write(
        env.state.join("tasks").join(id).join("done.json"),
        done.to_string(),
    )
    .unwrap();
    let status = env.wait_status("worker", "idle", |_| true);
    assert_eq!(
        status["recent"][0]["outcome"], "failed",
        "the outcome that stands is recorded"
    );
    assert!(wait_child(&mut hook, SECS, "the coordinator").success());
}

#[test]
fn a_restarted_agent_kills_what_its_dead_predecessor_left_running() {
    let env = Env::new();
    let pidfile = env.dir.path().join("grandchild.pid");
    // `sh` forks the sleep (it is not the last command), so the sleep is a grandchild
    // of agent-wrap that PR_SET_PDEATHSIG does not reach.
    let cmd = format!("sleep 300 & echo $! > '{}'; wait", pidfile.display());
    let agent = env.agent("crashy", &["--exec", &cmd]);
    let (mut hook, _) = env.spawn_hook(b"@crashy job");
    env.wait_status("crashy", "working", |_| true);
    let pid: i32 = wait_until(SECS, "the grandchild's pid", || {
        fs::read_to_string(&pidfile).ok()?.trim().parse().ok()
    });
    agent.signal(Signal::SIGKILL);
    assert!(wait_child(&mut hook, SECS, "the coordinator").success());
    assert!(
        running(pid),
        "the grandchild survives its host, which is the point"
    );

    let _again = env.agent("crashy", &["--exec", "cat"]);
    wait_until(SECS, "the leftover process to die", || {
        (!running(pid)).then_some(())
    });
    let done = env.wait_single_done();
    assert_eq!(done["outcome"], "failed");
}

/// True while `pid` exists and is not a zombie waiting to be reaped.
fn running(pid: i32) -> bool {
    fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| {
            s.rsplit(") ")
                .next()
                .is_some_and(|rest| !rest.starts_with('Z'))
        })
        .unwrap_or(false)
}

#[test]
fn an_answer_over_the_size_limit_fails_the_task_instead_of_the_reader() {
    let env = Env::new();
    let _agent = env.agent(
        "chatty",
        &["--quiet", "--exec", "head -c 70000000 /dev/zero"],
    );
    let (out, after) = env.run_hook(b"@chatty say everything");
    assert_eq!(out.status.code(), Some(0));
    let (head, body) = head_and_body(&after);
    assert!(
        head.contains("@chatty failed") && head.contains("larger than"),
        "{head}"
    );
    assert_eq!(body, b"@chatty say everything");
}
