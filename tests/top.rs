//! `claude-editor-hook top` in a real tmux pane (issue 14), read with capture-pane: the
//! rows, the "needs you" order, an offline agent with a corrupt status file, and each
//! key (filter, tail, cancel, jump, stop after a confirmation, quit with the terminal
//! restored).

use std::fs;
use std::time::Duration;

use crate::fixture::*;
use crate::helper::tmux::{TmuxServer, require_tmux};
use crate::helper::wait::wait_until;

const SCREEN_WAIT: Duration = Duration::from_secs(30);

/// An agent that waits for the human (as a hosted Claude Code behind a dialog reports
/// it): a live lock holder (this test) and its status file. The Claude Code side of
/// `waiting` is tested in tests/e2e_agent.rs; here only `top`'s reading of it.
fn waiting_agent(env: &Env, name: &str) -> ceh::state::HostLock {
    let state = ceh::state::StateDir::open(&env.state).unwrap();
    let agent = ceh::state::AgentName::parse(name).unwrap();
    state.create_agent_dirs(&agent).unwrap();
    let lock = ceh::state::HostLock::acquire(&state.lock_path(&agent))
        .unwrap()
        .unwrap();
    let now = ceh::time::now_us();
    let status = serde_json::json!({
        "version": 1, "name": name, "status": "waiting", "task": null, "recent": [],
        "last_active_us": now, "started_at_us": now, "pid": std::process::id(),
        "driver": "claude", "roles": ["review"], "tmux": null, "claude_session_id": null,
    });
    fs::write(
        env.state.join("agents").join(name).join("status.json"),
        status.to_string(),
    )
    .unwrap();
    lock
}

/// The line of the screen that holds `@name`'s row (its name after the selection mark).
fn row_of(screen: &str, name: &str) -> Option<usize> {
    screen
        .lines()
        .position(|l| l.trim_start_matches('▶').split_whitespace().next() == Some(name))
}

/// `top` in a new tmux session, under a shell that records its exit status in the
/// returned file. tmux 3.3a, which reaps the program, sometimes never shows
/// `pane_dead_status` for one that exits while tmux handles its pty's end (seen in most
/// runs of the signal test), so the status is not taken from tmux.
fn start_top(
    tmux: &mut TmuxServer,
    env: &Env,
    vars: &[(String, String)],
) -> (String, std::path::PathBuf) {
    let status_file = env.dir.path().join("top.status");
    let script = format!(
        "\"$@\"; echo $? > {}",
        ceh::shell::quote(&status_file.display().to_string())
    );
    let command = ["sh", "-c", &script, "sh", HOOK, "top"].map(str::to_owned);
    let pane = tmux.new_session("top", env.dir.path(), vars, &command);
    (pane, status_file)
}

/// The exit status `start_top`'s shell recorded.
fn top_exit_status(status_file: &std::path::Path) -> i32 {
    wait_until(SCREEN_WAIT, "top's exit status", || {
        fs::read_to_string(status_file)
            .ok()?
            .trim()
            .parse::<i32>()
            .ok()
    })
}

#[cfg_attr(missing_tmux, ignore = "needs tmux: see README, Tests")]
#[test]
fn top_shows_who_needs_you_first_and_every_key_works() {
    if require_tmux("top_shows_who_needs_you_first_and_every_key_works").is_none() {
        return;
    }
    let env = Env::new();
    let gate = env.dir.path().join("gate");
    nix::unistd::mkfifo(&gate, nix::sys::stat::Mode::S_IRWXU).unwrap();
    let _idle = env.agent("idle1", &["--exec", "echo idle-output-line"]);
    let out = crate::helper::wait::output_with_timeout(
        env.cmd(HOOK).args(["send", "idle1", "warm up"]),
        SECS,
    );
    assert_eq!(out.status.code(), Some(0));
    let busy_cmd = format!("echo busy-output-line; cat '{}' >/dev/null", gate.display());
    let _busy = env.agent("busy", &["--role", "coding", "--exec", &busy_cmd]);
    let (mut busy_hook, _) = env.spawn_hook(b"@busy a long build");
    env.wait_status("busy", "working", |_| true);
    let mut dead = env.agent("dead", &["--exec", "true"]);
    dead.signal(nix::sys::signal::Signal::SIGKILL);
    dead.wait_exit(SECS);
    fs::write(env.state.join("agents/dead/status.json"), b"{ not json").unwrap();
    let _dialog = waiting_agent(&env, "dialog");

    let mut tmux = TmuxServer::new();
    let vars = vec![
        (
            "CLAUDE_AGENTS_DIR".to_owned(),
            env.state.display().to_string(),
        ),
        ("TERM".to_owned(), "xterm-256color".to_owned()),
    ];
    let (pane, status_file) = start_top(&mut tmux, &env, &vars);
    tmux.run(&["resize-window", "-t", &pane, "-x", "80", "-y", "24"]);
    let screen = |pred: &dyn Fn(&str) -> bool, what: &str| {
        tmux.wait_for_screen(&pane, pred, SCREEN_WAIT)
            .unwrap_or_else(|s| panic!("no {what} on the screen:\n{s}"))
    };
    let first = screen(
        &|s| {
            ["dialog", "busy", "idle1", "dead"]
                .iter()
                .all(|n| row_of(s, n).is_some())
        },
        "four rows",
    );
    // Who needs you first, then who works, then the idle, then the offline.
    let at = |n: &str| row_of(&first, n).unwrap();
    assert!(
        at("dialog") < at("busy") && at("busy") < at("idle1") && at("idle1") < at("dead"),
        "{first}"
    );
    assert!(first.contains("1 needs you"), "{first}");
    let line = |s: &str, n: &str| s.lines().nth(row_of(s, n).unwrap()).unwrap().to_owned();
    assert!(line(&first, "dialog").contains("waiting"), "{first}");
    assert!(line(&first, "busy").contains("working"), "{first}");
    assert!(line(&first, "busy").contains("a long build"), "{first}");
    assert!(line(&first, "busy").contains("busy-output"), "{first}");
    assert!(line(&first, "idle1").contains("idle"), "{first}");
    // A dead agent is offline, its corrupt status file named.
    let dead_line = line(&first, "dead");
    assert!(dead_line.contains("offline"), "{first}");
    assert!(dead_line.contains("corrupt state file"), "{first}");
    assert!(
        first.contains("@dead: its status.json is unreadable: corrupt state file"),
        "{first}"
    );
    assert!(first.contains("recent events:"), "{first}");
    assert!(first.lines().count() <= 24);

    // `/` filters; Esc clears.
    tmux.send_keys(&pane, &["/"]);
    tmux.send_literal(&pane, "idl");
    tmux.send_keys(&pane, &["Enter"]);
    screen(
        &|s| row_of(s, "idle1").is_some() && row_of(s, "busy").is_none(),
        "the filtered rows",
    );
    tmux.send_keys(&pane, &["Escape"]);
    screen(&|s| row_of(s, "busy").is_some(), "every row again");

    // Down selects busy; `t` tails it.
    tmux.send_keys(&pane, &["Down"]);
    screen(&|s| s.contains("▶busy"), "busy selected");
    tmux.send_keys(&pane, &["t"]);
    screen(
        &|s| s.contains("output of @busy") && s.lines().any(|l| l.trim() == "busy-output-line"),
        "the tail of busy",
    );
    tmux.send_keys(&pane, &["t"]);
    screen(&|s| s.contains("recent events:"), "the events again");

    // `c` cancels busy's task.
    tmux.send_keys(&pane, &["c"]);
    screen(
        &|s| s.contains("cancelled") && line(s, "busy").contains("idle"),
        "busy's task cancelled",
    );
    wait_child(&mut busy_hook, SECS, "the cancelled coordinator");

    // Enter jumps to an agent's tmux window.
    tmux.run(&[
        "new-window",
        "-d",
        "-t",
        "top",
        "-n",
        "jumpwin",
        "-e",
        &format!("CLAUDE_AGENTS_DIR={}", env.state.display()),
        WRAP,
        "jumper",
        "--exec",
        "cat",
    ]);
    env.wait_status("jumper", "idle", |s| s["tmux"].is_object());
    let s = screen(&|s| row_of(s, "jumper").is_some(), "jumper's row");
    // Select it: down from the top until the mark is on it.
    for _ in 0..s.lines().count() {
        if tmux.capture(&pane).contains("▶jumper") {
            break;
        }
        tmux.send_keys(&pane, &["Down"]);
        std::thread::sleep(Duration::from_millis(100));
    }
    screen(&|s| s.contains("▶jumper"), "jumper selected");
    tmux.send_keys(&pane, &["Enter"]);
    wait_until(SCREEN_WAIT, "the jump to jumper's window", || {
        (tmux.display("top", "#{window_name}").trim() == "jumpwin").then_some(())
    });

    // `k` asks first; `n` keeps the agent, `y` stops it.
    tmux.send_keys(&pane, &["k"]);
    screen(
        &|s| s.contains("stop @jumper? y stops it"),
        "the confirmation",
    );
    tmux.send_keys(&pane, &["n"]);
    screen(&|s| s.contains("@jumper keeps running"), "the kept agent");
    assert_eq!(env.status("jumper").unwrap()["status"], "idle");
    tmux.send_keys(&pane, &["k"]);
    screen(&|s| s.contains("stop @jumper?"), "the confirmation again");
    tmux.send_keys(&pane, &["y"]);
    screen(&|s| line(s, "jumper").contains("offline"), "jumper offline");

    // `q` quits, exit 0, the terminal restored (out of the alternate screen).
    tmux.send_keys(&pane, &["q"]);
    assert_eq!(top_exit_status(&status_file), 0);
    wait_until(SCREEN_WAIT, "top to exit", || {
        tmux.pane_dead(&pane).then_some(())
    });
    assert_eq!(tmux.display(&pane, "#{alternate_on}").trim(), "0");
}

#[cfg_attr(missing_tmux, ignore = "needs tmux: see README, Tests")]
#[test]
fn top_quits_cleanly_on_a_signal_and_refuses_without_a_terminal() {
    if require_tmux("top_quits_cleanly_on_a_signal_and_refuses_without_a_terminal").is_none() {
        return;
    }
    let env = Env::new();
    let out = crate::helper::wait::output_with_timeout(env.cmd(HOOK).arg("top"), SECS);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("top needs a terminal"),
        "{}",
        text(&out.stderr)
    );
    let mut tmux = TmuxServer::new();
    let vars = vec![(
        "CLAUDE_AGENTS_DIR".to_owned(),
        env.state.display().to_string(),
    )];
    let (pane, status_file) = start_top(&mut tmux, &env, &vars);
    tmux.wait_for_screen(&pane, |s| s.contains("recent events:"), SCREEN_WAIT)
        .unwrap();
    let sh: i32 = tmux.display(&pane, "#{pane_pid}").trim().parse().unwrap();
    let pid: i32 = wait_until(SECS, "top, the shell's child", || {
        fs::read_to_string(format!("/proc/{sh}/task/{sh}/children"))
            .ok()?
            .split_whitespace()
            .next()?
            .parse()
            .ok()
    });
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    assert_eq!(top_exit_status(&status_file), 128 + 15);
    wait_until(SCREEN_WAIT, "the pane to end", || {
        tmux.pane_dead(&pane).then_some(())
    });
    assert_eq!(tmux.display(&pane, "#{alternate_on}").trim(), "0");
}

#[cfg_attr(missing_tmux, ignore = "needs tmux: see README, Tests")]
#[test]
fn top_shows_the_board_and_the_background_tickets_and_follows_them() {
    if require_tmux("top_shows_the_board_and_the_background_tickets_and_follows_them").is_none() {
        return;
    }
    let env = Env::new();
    let board = env.dir.path().join("board");
    let cli = |args: &[&str]| {
        let out = crate::helper::wait::output_with_timeout(
            env.cmd(HOOK)
                .arg("board")
                .arg("--board")
                .arg(&board)
                .args(args),
            SECS,
        );
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    };
    cli(&["init", "ship the release"]);
    cli(&["add", "write the notes"]);
    cli(&["add", "tag it", "-d", "t1"]);
    let gate = env.dir.path().join("gate");
    nix::unistd::mkfifo(&gate, nix::sys::stat::Mode::S_IRWXU).unwrap();
    let _bg = env.agent(
        "bg",
        &[
            "--exec",
            &format!("cat '{}' >/dev/null; echo built", gate.display()),
        ],
    );
    let out = crate::helper::wait::output_with_timeout(
        env.cmd(HOOK)
            .env("CLAUDE_EDITOR_HOOK_CHIEF_ID", "chief-7")
            .args(["send", "--background", "bg", "build the docs"]),
        SECS,
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));

    let mut tmux = TmuxServer::new();
    let vars = vec![
        (
            "CLAUDE_AGENTS_DIR".to_owned(),
            env.state.display().to_string(),
        ),
        (
            "CLAUDE_EDITOR_HOOK_BOARD".to_owned(),
            board.display().to_string(),
        ),
    ];
    let pane = tmux.new_session(
        "top",
        env.dir.path(),
        &vars,
        &[HOOK.to_owned(), "top".to_owned()],
    );
    let screen = |pred: &dyn Fn(&str) -> bool, what: &str| {
        tmux.wait_for_screen(&pane, pred, SCREEN_WAIT)
            .unwrap_or_else(|s| panic!("no {what} on the screen:\n{s}"))
    };
    let first = screen(
        &|s| s.contains("background @bg") && s.contains("board "),
        "board and ticket lines",
    );
    let board_line = first.lines().find(|l| l.starts_with("board ")).unwrap();
    assert!(board_line.contains("0/2 done"), "{first}");
    let ticket = first
        .lines()
        .find(|l| l.starts_with("background @bg"))
        .unwrap();
    assert!(
        ticket.contains("running for chief chief-7: build the docs"),
        "{first}"
    );
    // Both follow the state: the board moves on, the ticket's result is ready.
    cli(&["claim", "w1"]);
    cli(&["done", "t1", "notes written", "--worker", "w1"]);
    drop(fs::File::create(&gate).unwrap());
    fs::remove_file(&gate).unwrap();
    let later = screen(
        &|s| s.contains("1/2 done") && s.contains("ready for chief chief-7"),
        "the board's progress and the ready ticket",
    );
    assert!(!later.contains("running for chief"), "{later}");
}
