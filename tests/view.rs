//! The waiting view on a real terminal (a private tmux server): what it shows, Esc and
//! Ctrl-C, and that the terminal modes are restored. No Claude Code needed.

use std::fs;

use crate::fixture::*;
use crate::helper::tmux::{TmuxServer, require_tmux};

/// Waits until the pane's script has finished writing `stty -a` after the hook exited
/// (the file exists before its content does), and returns that content.
fn finished(stty: &std::path::Path) -> String {
    crate::helper::wait::wait_until(SECS, "the hook to exit and stty to run", || {
        fs::read_to_string(stty)
            .ok()
            .filter(|s| s.contains("speed") && s.ends_with('\n'))
    })
}

/// Runs the hook on `file` in a tmux pane, then records `stty -a` once it exits, so the
/// test can check the terminal modes the hook left behind.
fn hook_in_pane(
    tmux: &mut TmuxServer,
    env: &Env,
    file: &std::path::Path,
) -> (String, std::path::PathBuf) {
    hook_in_pane_with(tmux, env, file, "")
}

fn hook_in_pane_with(
    tmux: &mut TmuxServer,
    env: &Env,
    file: &std::path::Path,
    flags: &str,
) -> (String, std::path::PathBuf) {
    let stty = env.dir.path().join("stty-after");
    let script = format!(
        "stty -a > '{s}.before'; '{HOOK}' {flags} '{f}'; echo \"exit=$?\" > '{s}.exit'; stty -a > '{s}'; sleep 60",
        s = stty.display(),
        f = file.display()
    );
    let vars = vec![(
        "CLAUDE_AGENTS_DIR".to_owned(),
        env.state.display().to_string(),
    )];
    let pane = tmux.new_session(
        "view",
        env.dir.path(),
        &vars,
        &["sh".into(), "-c".into(), script],
    );
    (pane, stty)
}

#[cfg_attr(missing_tmux, ignore = "needs tmux: see README, Tests")]
#[test]
fn the_view_shows_progress_and_escape_cancels_leaving_the_terminal_as_it_was() {
    if require_tmux("the_view_shows_progress_and_escape_cancels_leaving_the_terminal_as_it_was")
        .is_none()
    {
        return;
    }
    let env = Env::new();
    let _agent = env.agent("slow", &["--exec", "echo step-one-done; exec sleep 60"]);
    // Occupy the agent so our task waits in line first.
    let (mut first, _) = env.spawn_hook(b"@slow first");
    env.wait_status("slow", "working", |_| true);

    let mut tmux = TmuxServer::new();
    let file = env.prompt_file(b"@slow second task");
    let (pane, stty) = hook_in_pane(&mut tmux, &env, &file);
    let screen = tmux
        .wait_for_screen(&pane, |s| s.contains("1 task(s) ahead"), SECS)
        .unwrap_or_else(|s| panic!("no queue position on screen:\n{s}"));
    assert!(screen.contains("claude-editor-hook → @slow"), "{screen}");
    assert!(screen.contains("second task"), "{screen}");

    // Let the first task go; ours starts and streams its first line.
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(first.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    wait_child(&mut first, SECS, "the first coordinator");
    let screen = tmux
        .wait_for_screen(
            &pane,
            |s| s.contains("│ step-one-done") && s.contains("working"),
            SECS,
        )
        .unwrap_or_else(|s| panic!("no progress on screen:\n{s}"));
    assert!(!screen.contains("ahead"), "{screen}");

    tmux.send_keys(&pane, &["Escape"]);
    finished(&stty);
    assert_eq!(
        fs::read_to_string(stty.with_extension("exit"))
            .unwrap()
            .trim(),
        "exit=0",
        "a cancel exits 0 with the file untouched: no notice, the prompt kept"
    );
    assert_eq!(
        fs::read_to_string(&stty).unwrap(),
        fs::read_to_string(stty.with_extension("before")).unwrap(),
        "terminal modes changed"
    );
    assert_eq!(
        fs::read(&file).unwrap(),
        b"@slow second task",
        "a cancel must not touch the file"
    );
    let cancelled = env
        .done_files()
        .into_iter()
        .find(|d| d["reason"].as_str().is_some_and(|r| r.contains("Esc")));
    assert_eq!(
        cancelled.expect("a task cancelled with Esc")["outcome"],
        "cancelled"
    );
    env.wait_status("slow", "idle", |_| true);
}

/// Ctrl-C while the hook waits on a terminal, with `flags`: the hook cancels and exits
/// 0 with the file untouched (no "quit unexpectedly" notice in the chief), and the shell
/// that ran it goes on, so no SIGINT reached the process group.
fn ctrl_c_cancels(flags: &str, ready: impl Fn(&TmuxServer, &str, &Env)) {
    let env = Env::new();
    let _agent = env.agent("slow", &["--exec", "echo started; exec sleep 60"]);
    let mut tmux = TmuxServer::new();
    let file = env.prompt_file(b"@slow task");
    let (pane, stty) = hook_in_pane_with(&mut tmux, &env, &file, flags);
    ready(&tmux, &pane, &env);
    tmux.send_keys(&pane, &["C-c"]);
    finished(&stty);
    let exit = fs::read_to_string(stty.with_extension("exit")).unwrap();
    assert_eq!(exit.trim(), "exit=0");
    assert_eq!(
        fs::read(&file).unwrap(),
        b"@slow task",
        "a cancel must not touch the file"
    );
    let done = env.wait_single_done();
    assert_eq!(done["outcome"], "cancelled");
    assert_eq!(done["reason"], "cancelled with Ctrl-C");
    env.wait_status("slow", "idle", |_| true);
}

#[cfg_attr(missing_tmux, ignore = "needs tmux: see README, Tests")]
#[test]
fn ctrl_c_in_the_view_cancels_instead_of_interrupting() {
    if require_tmux("ctrl_c_in_the_view_cancels_instead_of_interrupting").is_none() {
        return;
    }
    ctrl_c_cancels("", |tmux, pane, _| {
        tmux.wait_for_screen(pane, |s| s.contains("│ started"), SECS)
            .unwrap_or_else(|s| panic!("no view:\n{s}"));
    });
}

#[cfg_attr(missing_tmux, ignore = "needs tmux: see README, Tests")]
#[test]
fn without_the_view_ctrl_c_still_cancels_instead_of_interrupting() {
    if require_tmux("without_the_view_ctrl_c_still_cancels_instead_of_interrupting").is_none() {
        return;
    }
    ctrl_c_cancels("--no-view", |tmux, pane, env| {
        // The terminal is guarded before the task is queued, so once the agent works on
        // it a Ctrl-C is a key, not a signal.
        env.wait_status("slow", "working", |_| true);
        assert!(
            !tmux.capture(pane).contains("claude-editor-hook →"),
            "--no-view drew the view"
        );
    });
}

/// A session `Claude` with `agent-wrap NAME` in window NAME and then the hook in window
/// `chief` (the current one), as `up` lays them out.
fn chief_and_agent(
    tmux: &mut TmuxServer,
    env: &Env,
    name: &str,
    exec: &str,
    file: &std::path::Path,
) {
    let vars = vec![(
        "CLAUDE_AGENTS_DIR".to_owned(),
        env.state.display().to_string(),
    )];
    let agent = [
        WRAP.to_owned(),
        name.to_owned(),
        "--exec".into(),
        exec.to_owned(),
    ];
    let pane = tmux.new_session("Claude", env.dir.path(), &vars, &agent);
    tmux.run(&["rename-window", "-t", &pane, name]);
    env.wait_status(name, "idle", |_| true);
    let state = format!("CLAUDE_AGENTS_DIR={}", env.state.display());
    let hook = format!("'{HOOK}' '{}'; sleep 60", file.display());
    tmux.run(&[
        "new-window",
        "-t",
        "=Claude:",
        "-n",
        "chief",
        "-e",
        &state,
        "-e",
        "CLAUDE_EDITOR_HOOK_CHIEF_ID=view-chief",
        "--",
        "sh",
        "-c",
        &hook,
    ]);
}

#[cfg_attr(missing_tmux, ignore = "needs tmux: see README, Tests")]
#[test]
fn a_jumps_to_the_agents_window_and_back_when_the_answer_comes() {
    if require_tmux("a_jumps_to_the_agents_window_and_back_when_the_answer_comes").is_none() {
        return;
    }
    let env = Env::new();
    let gate = env.dir.path().join("gate");
    nix::unistd::mkfifo(&gate, nix::sys::stat::Mode::S_IRWXU).unwrap();
    let exec = format!(
        "echo working; cat '{}' >/dev/null; echo the-answer",
        gate.display()
    );
    let file = env.prompt_file(b"@worker look at it");
    // The agent must be running before the hook asks for it.
    let mut tmux = TmuxServer::new();
    let vars = vec![(
        "CLAUDE_AGENTS_DIR".to_owned(),
        env.state.display().to_string(),
    )];
    let idle = tmux.new_session(
        "warmup",
        env.dir.path(),
        &vars,
        &["sleep".into(), "60".into()],
    );
    let _ = idle;
    chief_and_agent(&mut tmux, &env, "worker", &exec, &file);
    env.wait_status("worker", "working", |_| true);
    // The session's active window (no client is attached, so ask list-windows).
    let current = |tmux: &TmuxServer| {
        let list = tmux.run(&[
            "list-windows",
            "-t",
            "=Claude",
            "-F",
            "#{window_active} #{window_name}",
        ]);
        list.lines()
            .find_map(|l| l.strip_prefix("1 "))
            .unwrap_or("")
            .to_owned()
    };
    tmux.wait_for_screen("=Claude:chief", |s| s.contains("b background"), SECS)
        .unwrap();
    assert_eq!(current(&tmux).trim(), "chief");
    tmux.send_keys("=Claude:chief", &["a"]);
    crate::helper::wait::wait_until(SECS, "the agent's window", || {
        (current(&tmux).trim() == "worker").then_some(())
    });
    drop(fs::File::create(&gate).unwrap());
    crate::helper::wait::wait_until(SECS, "the answer", || {
        fs::read_to_string(&file)
            .ok()
            .filter(|f| f.contains("the-answer"))
    });
    crate::helper::wait::wait_until(SECS, "back in the chief's window", || {
        (current(&tmux).trim() == "chief").then_some(())
    });
}

#[cfg_attr(missing_tmux, ignore = "needs tmux: see README, Tests")]
#[test]
fn b_sends_the_task_to_the_background_with_a_ticket() {
    if require_tmux("b_sends_the_task_to_the_background_with_a_ticket").is_none() {
        return;
    }
    let env = Env::new();
    let gate = env.dir.path().join("gate");
    nix::unistd::mkfifo(&gate, nix::sys::stat::Mode::S_IRWXU).unwrap();
    let exec = format!(
        "echo working; cat '{}' >/dev/null; echo later-answer",
        gate.display()
    );
    let file = env.prompt_file(b"@slowpoke take your time");
    let mut tmux = TmuxServer::new();
    chief_and_agent(&mut tmux, &env, "slowpoke", &exec, &file);
    tmux.wait_for_screen("=Claude:chief", |s| s.contains("b background"), SECS)
        .unwrap();
    tmux.send_keys("=Claude:chief", &["b"]);
    let ticket = crate::helper::wait::wait_until(SECS, "the ticket", || {
        fs::read_to_string(&file)
            .ok()
            .filter(|f| f.contains("in the background"))
    });
    assert!(ticket.starts_with("[@slowpoke · task "), "{ticket}");
    // The coordinator is gone; the task goes on and its answer waits in the outbox.
    drop(fs::File::create(&gate).unwrap());
    env.wait_status("slowpoke", "idle", |s| s["recent"][0]["outcome"] == "ok");
    let out = env
        .cmd(HOOK)
        .env("CLAUDE_EDITOR_HOOK_CHIEF_ID", "view-chief")
        .args(["results", "--json"])
        .output()
        .unwrap();
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        doc["results"][0]["answer"], "working\nlater-answer\n",
        "{doc}"
    );
}
