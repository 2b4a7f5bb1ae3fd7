//! The shell verbs: `send`, `cancel`, `kill`, `tail`.

use std::fs;

use crate::fixture::*;
use crate::helper::wait::{output_with_timeout, wait_until};

fn verb(env: &Env, args: &[&str]) -> std::process::Output {
    output_with_timeout(env.cmd(HOOK).args(args), SECS)
}

#[test]
fn send_prints_the_answer_and_fails_with_one_line() {
    let env = Env::new();
    let _echo = env.agent("echo", &["--role", "parrot", "--exec", "cat"]);
    let _bad = env.agent("bad", &["--exec", "echo nope >&2; exit 4"]);
    let out = verb(&env, &["send", "echo", "hello\nworld"]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(out.stdout, b"hello\nworld");
    let out = verb(&env, &["send", "parrot", "by role"]);
    assert_eq!(out.stdout, b"by role");
    let out = verb(&env, &["send", "bad", "x"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("@bad failed (task ") && text(&out.stderr).contains("nope"),
        "{}",
        text(&out.stderr)
    );
    let out = verb(&env, &["send", "ghost", "x"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("unknown agent or role @ghost"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn cancel_withdraws_a_queued_task_and_stops_a_running_one() {
    let env = Env::new();
    let _agent = env.agent("worker", &["--exec", "exec sleep 60"]);
    let (mut running, running_file) = env.spawn_hook(b"@worker first");
    let status = env.wait_status("worker", "working", |_| true);
    let running_id = status["task"]["id"].as_str().unwrap().to_owned();
    let (mut queued, queued_file) = env.spawn_hook(b"@worker second");
    let inbox = env.state.join("agents/worker/inbox");
    let queued_id = wait_until(SECS, "the queued task", || {
        let name = fs::read_dir(&inbox).ok()?.flatten().next()?.file_name();
        let name = name.to_str()?.to_owned();
        Some(name.strip_suffix(".json")?.split_once('-')?.1.to_owned())
    });

    let out = verb(&env, &["cancel", &queued_id]);
    assert_eq!(
        text(&out.stdout),
        format!("task {queued_id}: cancelled\n"),
        "{}",
        text(&out.stderr)
    );
    assert!(wait_child(&mut queued, SECS, "the queued coordinator").success());
    let head = head_and_body(&fs::read(queued_file).unwrap()).0;
    assert!(
        head.contains("cancelled with `claude-editor-hook cancel`"),
        "{head}"
    );

    let out = verb(&env, &["cancel", &running_id]);
    assert_eq!(
        text(&out.stdout),
        format!("task {running_id}: cancelled\n"),
        "{}",
        text(&out.stderr)
    );
    assert!(wait_child(&mut running, SECS, "the running coordinator").success());
    assert!(
        head_and_body(&fs::read(running_file).unwrap())
            .0
            .contains("@worker cancelled")
    );
    env.wait_status("worker", "idle", |_| true);
    let out = verb(&env, &["cancel", &running_id]);
    assert!(
        text(&out.stderr).contains("already ended: cancelled"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn kill_stops_the_agent_and_its_task_says_why() {
    let env = Env::new();
    let _agent = env.agent("doomed", &["--exec", "exec sleep 60"]);
    let (mut hook, file) = env.spawn_hook(b"@doomed long job");
    env.wait_status("doomed", "working", |_| true);
    let out = verb(&env, &["kill", "doomed"]);
    assert_eq!(
        text(&out.stdout),
        "agent @doomed stopped\n",
        "{}",
        text(&out.stderr)
    );
    assert!(wait_child(&mut hook, SECS, "the coordinator").success());
    assert!(
        head_and_body(&fs::read(file).unwrap())
            .0
            .contains("agent-wrap received SIGTERM")
    );
    assert_eq!(env.status("doomed").unwrap()["status"], "offline");
    let out = verb(&env, &["kill", "doomed"]);
    assert!(text(&out.stderr).contains("agent @doomed is not running"));
}

#[test]
fn tail_shows_the_output_and_follows_a_running_task() {
    let env = Env::new();
    let gate = env.dir.path().join("gate");
    nix::unistd::mkfifo(&gate, nix::sys::stat::Mode::S_IRWXU).unwrap();
    let cmd = format!("echo start; cat '{}' >/dev/null; echo end", gate.display());
    let _agent = env.agent("talker", &["--quiet", "--exec", &cmd]);
    let (mut hook, _) = env.spawn_hook(b"@talker go");
    env.wait_status("talker", "working", |_| true);
    wait_until(SECS, "the first line", || {
        let out = verb(&env, &["tail", "talker"]);
        (out.stdout == b"start\n").then_some(())
    });
    let env_state = env.state.clone();
    let follower = std::thread::spawn(move || {
        let mut cmd = std::process::Command::new(HOOK);
        cmd.env("CLAUDE_AGENTS_DIR", env_state)
            .args(["tail", "talker", "-f"]);
        output_with_timeout(&mut cmd, SECS)
    });
    drop(fs::File::create(&gate).unwrap()); // the task goes on and ends
    assert!(wait_child(&mut hook, SECS, "the coordinator").success());
    let followed = follower.join().unwrap();
    assert_eq!(
        followed.stdout,
        b"start\nend\n",
        "{}",
        text(&followed.stderr)
    );
}

#[test]
fn cancel_ends_a_task_whose_agent_is_gone() {
    let env = Env::new();
    let agent = env.agent("lost", &["--exec", "exec sleep 60"]);
    let mut send = env.cmd(HOOK);
    send.env("CLAUDE_EDITOR_HOOK_CHIEF_ID", "c")
        .args(["send", "lost", "forever", "--background"]);
    let ticket = text(&output_with_timeout(&mut send, SECS).stdout);
    let id = ticket.split(' ').nth(1).unwrap().to_owned();
    env.wait_status("lost", "working", |_| true);
    agent.signal(nix::sys::signal::Signal::SIGKILL);
    wait_until(SECS, "the agent to be gone", || {
        (verb(&env, &["status", "--json"])
            .stdout
            .windows(9)
            .any(|w| w == b"\"offline\""))
        .then_some(())
    });
    let out = verb(&env, &["cancel", &id]);
    assert_eq!(
        text(&out.stdout),
        format!("task {id}: cancelled\n"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn compact_is_refused_by_a_driver_without_it_and_a_slash_compact_task_is_a_prompt() {
    let env = Env::new();
    let _echo = env.agent("echo", &["--exec", "cat"]);
    let out = verb(&env, &["compact", "echo"]);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(
        err.contains("@echo failed") && err.contains("has no command `compact`"),
        "{err}"
    );
    // The agent is free again, and `/compact` as a task is only text to it.
    let out = verb(&env, &["send", "echo", "/compact"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(out.stdout, b"/compact");
}

#[test]
fn a_mistyped_command_is_named_with_the_nearest_one_and_completions_print() {
    let env = Env::new();
    let out = verb(&env, &["stauts"]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        text(&out.stderr).trim(),
        "claude-editor-hook: unknown command 'stauts', did you mean 'status'?"
    );
    for shell in ["bash", "zsh", "fish"] {
        let out = verb(&env, &["completions", shell]);
        assert_eq!(out.status.code(), Some(0));
        assert!(text(&out.stdout).contains("claude-editor-hook"), "{shell}");
        let out = verb(&env, &["completions", shell, "--for", "agent-wrap"]);
        assert!(text(&out.stdout).contains("agent-wrap"), "{shell}");
    }
}

#[test]
fn uninstall_hooks_is_the_inverse_of_install_hooks() {
    let env = Env::new();
    let settings = env.dir.path().join("settings.json");
    let original = serde_json::json!({
        "model": "sonnet",
        "hooks": { "Stop": [ { "hooks": [ { "type": "command", "command": "my-own-hook" } ] } ] }
    });
    std::fs::write(&settings, serde_json::to_vec_pretty(&original).unwrap()).unwrap();
    let path = settings.display().to_string();
    let out = verb(&env, &["install-hooks", &path]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let installed: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&settings).unwrap()).unwrap();
    assert!(installed.to_string().contains("chief-hook"));

    let out = verb(&env, &["uninstall-hooks", &path]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("removed"),
        "{}",
        text(&out.stdout)
    );
    let after: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&settings).unwrap()).unwrap();
    assert_eq!(after, original, "everything else stays as it was");

    let again = verb(&env, &["uninstall-hooks", &path]);
    assert_eq!(again.status.code(), Some(0));
    assert!(text(&again.stdout).contains("has no chief hooks"));
    let missing = verb(&env, &["uninstall-hooks", "/nonexistent/settings.json"]);
    assert_eq!(missing.status.code(), Some(1));
    assert!(text(&missing.stderr).contains("does not exist"));
}

#[test]
fn prune_removes_old_and_surplus_finished_tasks_but_never_an_undelivered_result() {
    let env = Env::new();
    let _agent = env.agent("pr", &["--exec", "cat"]);
    for i in 0..4 {
        let out = verb(&env, &["send", "pr", &format!("task {i}")]);
        assert_eq!(out.status.code(), Some(0));
    }
    // A background result nobody has collected.
    let out = output_with_timeout(
        env.cmd(HOOK)
            .env("CLAUDE_EDITOR_HOOK_CHIEF_ID", "c1")
            .args(["send", "pr", "kept for the chief", "--background"]),
        SECS,
    );
    let ticket = text(&out.stdout);
    let id = ticket.split_whitespace().nth(1).unwrap().to_owned();
    let done = env.state.join("tasks").join(&id).join("done.json");
    wait_until(SECS, "the background task", || done.exists().then_some(()));
    let count = || fs::read_dir(env.state.join("tasks")).unwrap().count();
    assert_eq!(count(), 5);

    let out = verb(&env, &["prune", "--keep", "2"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("removed 2 finished task(s)"),
        "{}",
        text(&out.stdout)
    );
    assert_eq!(count(), 3, "the newest 2, and the undelivered result");
    assert!(env.state.join("tasks").join(&id).is_dir());

    let out = verb(&env, &["prune", "--older-than", "1ms", "--agent", "pr"]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(count(), 1, "only the undelivered result is left");
    let bad = verb(&env, &["prune", "--older-than", "soon"]);
    assert_eq!(bad.status.code(), Some(2));
}

#[test]
fn forget_refuses_a_live_agent_and_undelivered_results_unless_forced() {
    let env = Env::new();
    let mut agent = env.agent("fg", &["--exec", "cat"]);
    let live = verb(&env, &["forget", "fg"]);
    assert_eq!(live.status.code(), Some(1));
    assert!(
        text(&live.stderr).contains("is running"),
        "{}",
        text(&live.stderr)
    );
    let out = output_with_timeout(
        env.cmd(HOOK)
            .env("CLAUDE_EDITOR_HOOK_CHIEF_ID", "c1")
            .args(["send", "fg", "for later", "--background"]),
        SECS,
    );
    let id = text(&out.stdout)
        .split_whitespace()
        .nth(1)
        .unwrap()
        .to_owned();
    let done = env.state.join("tasks").join(&id).join("done.json");
    wait_until(SECS, "the background task", || done.exists().then_some(()));
    agent.signal(nix::sys::signal::Signal::SIGTERM);
    agent.wait_exit(SECS);

    let refused = verb(&env, &["forget", "fg"]);
    assert_eq!(refused.status.code(), Some(1));
    let err = text(&refused.stderr);
    assert!(
        err.contains("not yet delivered") && err.contains(&id),
        "{err}"
    );
    assert!(env.state.join("agents/fg").is_dir());
    let forced = verb(&env, &["forget", "fg", "--force"]);
    assert_eq!(forced.status.code(), Some(0), "{}", text(&forced.stderr));
    assert!(!env.state.join("agents/fg").exists());
    let status = verb(&env, &["status"]);
    assert!(
        !text(&status.stdout).contains("fg "),
        "{}",
        text(&status.stdout)
    );
}

#[test]
fn cancel_agent_ends_its_queue_and_its_running_task() {
    let env = Env::new();
    let _agent = env.agent("ca", &["--exec", "sleep 60; cat"]);
    let mut tickets = Vec::new();
    for prompt in ["one", "two", "three"] {
        let out = verb(&env, &["send", "ca", prompt, "--background"]);
        tickets.push(
            text(&out.stdout)
                .split_whitespace()
                .nth(1)
                .unwrap()
                .to_owned(),
        );
    }
    env.wait_status("ca", "working", |s| s["task"]["id"] == tickets[0].as_str());
    let out = verb(&env, &["cancel", "--agent", "ca"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    for id in &tickets {
        assert!(
            text(&out.stdout).contains(&format!("task {id}: cancelled")),
            "{}",
            text(&out.stdout)
        );
    }
    env.wait_status("ca", "idle", |s| s["task"].is_null());
    let none = verb(&env, &["cancel", "--agent", "ca"]);
    assert!(text(&none.stdout).contains("has no task queued or running"));
    let neither = verb(&env, &["cancel"]);
    assert_eq!(neither.status.code(), Some(2));
}

#[test]
fn status_lists_queued_tasks_in_aligned_columns_with_roles() {
    let env = Env::new();
    let gate = env.dir.path().join("gate");
    nix::unistd::mkfifo(&gate, nix::sys::stat::Mode::S_IRWXU).unwrap();
    let cmd = format!("cat '{}' >/dev/null; cat", gate.display());
    let _a = env.agent("a-long-agent-name", &["--exec", &cmd, "--role", "review"]);
    let _b = env.agent("b", &["--exec", "cat"]);
    let long = format!("first {}", "x".repeat(80));
    let first = verb(&env, &["send", "a-long-agent-name", &long, "--background"]);
    assert_eq!(first.status.code(), Some(0));
    env.wait_status("a-long-agent-name", "working", |_| true);
    let second = verb(
        &env,
        &[
            "send",
            "a-long-agent-name",
            "the second one",
            "--background",
        ],
    );
    let queued_id = text(&second.stdout)
        .split_whitespace()
        .nth(1)
        .unwrap()
        .to_owned();

    let json = verb(&env, &["status", "--json"]);
    let doc: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    let row = &doc["agents"][0];
    assert_eq!(row["queued"], 1, "{doc}");
    assert_eq!(row["queue"][0]["id"], queued_id.as_str());
    assert_eq!(row["queue"][0]["title"], "the second one");
    assert!(row["queue"][0]["queued_at_us"].is_u64());

    let table = text(&verb(&env, &["status"]).stdout);
    let lines: Vec<&str> = table.lines().collect();
    let header = lines.iter().find(|l| l.starts_with("AGENT")).unwrap();
    assert!(header.contains("ROLES"), "{table}");
    let col = header.find("STATUS").unwrap();
    for name in ["a-long-agent-name", "b"] {
        let line = lines
            .iter()
            .find(|l| l.starts_with(&format!("{name} ")))
            .unwrap();
        assert!(
            line[col..].starts_with("working") || line[col..].starts_with("idle"),
            "{table}"
        );
    }
    assert!(table.contains("review"), "{table}");
    assert!(
        table.contains(&format!("queued for @a-long-agent-name: task {queued_id}")),
        "{table}"
    );
    // A title is the prompt's first line, up to 60 characters; the table cuts it to fit
    // unless --wide.
    let title: String = long.chars().take(60).collect();
    let row = |t: &str| {
        t.lines()
            .find(|l| l.starts_with("a-long-agent-name"))
            .unwrap()
            .to_owned()
    };
    assert!(!row(&table).contains(&title), "cut without --wide: {table}");
    let wide = text(&verb(&env, &["status", "--wide"]).stdout);
    assert!(row(&wide).contains(&title), "{wide}");
    drop(fs::File::create(&gate).unwrap());
}

#[cfg_attr(missing_tmux, ignore = "needs tmux: see README, Tests")]
#[test]
fn send_ends_its_answer_with_a_newline_on_a_terminal_and_not_in_a_pipe() {
    let test = "send_ends_its_answer_with_a_newline_on_a_terminal_and_not_in_a_pipe";
    if crate::helper::tmux::require_tmux(test).is_none() {
        return;
    }
    let env = Env::new();
    let _agent = env.agent("nl", &["--exec", "printf no-newline"]);
    let piped = verb(&env, &["send", "nl", "x"]);
    assert_eq!(piped.stdout, b"no-newline", "a pipe gets the bytes");
    let mut tmux = crate::helper::tmux::TmuxServer::new();
    let vars = vec![(
        "CLAUDE_AGENTS_DIR".to_owned(),
        env.state.display().to_string(),
    )];
    let script = format!("'{HOOK}' send nl x; echo END; sleep 600");
    let pane = tmux.new_session(
        "t",
        env.dir.path(),
        &vars,
        &["sh".into(), "-c".into(), script],
    );
    let screen = tmux
        .wait_for_screen(&pane, |s| s.contains("END"), SECS)
        .unwrap();
    assert!(screen.contains("no-newline\nEND"), "{screen}");
}
