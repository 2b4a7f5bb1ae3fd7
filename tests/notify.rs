//! `claude-editor-hook notify` (issue 14): a `[notify]` command gets exactly one JSON
//! event per change that needs the human, from the event log.

use std::io::{BufRead, BufReader};
use std::process::Stdio;

use serde_json::Value;

use crate::fixture::*;
use crate::helper::wait::{output_with_timeout, wait_until};

#[test]
fn a_notify_command_gets_exactly_one_json_event_per_change() {
    let env = Env::new();
    let notes = env.dir.path().join("notes.jsonl");
    let config = env.dir.path().join("config.toml");
    std::fs::write(
        &config,
        format!(
            "[notify]\ncommand = \"cat >> '{}'\"\nmin_interval_secs = 0\n",
            notes.display()
        ),
    )
    .unwrap();
    let mut notifier = env
        .cmd(HOOK)
        .args(["notify", "--config"])
        .arg(&config)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(notifier.stdout.take().unwrap()).lines();
    let ready = lines.next().unwrap().unwrap();
    assert!(ready.starts_with("notify: following "), "{ready}");
    let read_notes = || -> Vec<Value> {
        std::fs::read_to_string(&notes)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
            .collect()
    };

    // A background result.
    let _bg = env.agent("bg", &["--exec", "echo bg-answer"]);
    let out = output_with_timeout(
        env.cmd(HOOK)
            .env("CLAUDE_EDITOR_HOOK_CHIEF_ID", "chief-1")
            .args(["send", "--background", "bg", "watch the build"]),
        SECS,
    );
    assert_eq!(out.status.code(), Some(0));
    wait_until(SECS, "the background note", || {
        (read_notes().len() == 1).then_some(())
    });

    // An agent that needs the human, twice the same status (one change), then again
    // after it went back to work (a second change).
    let state = ceh::state::StateDir::open(&env.state).unwrap();
    let dialog = ceh::state::AgentName::parse("dialog").unwrap();
    let status = |s: ceh::state::AgentState| {
        ceh::events::append(
            state.root(),
            ceh::events::What::AgentStatus {
                agent: dialog.clone(),
                status: s,
                task: None,
            },
        )
    };
    use ceh::state::AgentState::{Waiting, Working};
    for s in [Working, Waiting, Waiting, Working, Waiting] {
        status(s);
    }
    wait_until(SECS, "two needs-you notes", || {
        (read_notes().len() == 3).then_some(())
    });

    // A board task that fails.
    let board = |args: &[&str]| {
        let out = output_with_timeout(
            env.cmd(HOOK).args(["board", "--board", "nb"]).args(args),
            SECS,
        );
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    };
    board(&["init", "a goal"]);
    board(&["add", "first"]);
    board(&["claim", "w"]);
    board(&["--worker", "w", "fail", "t1", "it broke"]);
    let all = wait_until(SECS, "the board note", || {
        let all = read_notes();
        (all.len() == 4).then_some(all)
    });
    // Nothing more comes: one note per change. (The notifier reads every event of
    // the log in order; a later event proves it has read all the earlier ones.)
    status(Working);
    status(ceh::state::AgentState::User);
    let all2 = wait_until(SECS, "the last note", || {
        let all = read_notes();
        (all.len() >= 5).then_some(all)
    });
    assert_eq!(all2.len(), 5, "{all2:#?}");
    assert_eq!(&all2[..4], &all[..]);

    let kinds: Vec<&str> = all2
        .iter()
        .map(|n| n["notification"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        [
            "background_ready",
            "needs_human",
            "needs_human",
            "board_failed",
            "needs_human"
        ]
    );
    assert_eq!(all2[0]["kind"], "task_finished");
    assert_eq!(all2[0]["background"], true);
    assert!(
        all2[0]["message"]
            .as_str()
            .unwrap()
            .contains("background result of @bg ready: watch the build")
    );
    assert_eq!(all2[1]["kind"], "agent_status");
    assert_eq!(all2[1]["agent"], "dialog");
    assert_eq!(all2[1]["status"], "waiting");
    assert_eq!(all2[3]["kind"], "board");
    assert_eq!(all2[3]["verb"], "failed");
    assert_eq!(all2[4]["status"], "user");
    let _ = notifier.kill();
    let _ = notifier.wait();
}

#[test]
fn notify_does_nothing_outside_tmux_without_a_command() {
    let env = Env::new();
    let config = env.dir.path().join("config.toml");
    std::fs::write(&config, "").unwrap();
    let out = output_with_timeout(
        env.cmd(HOOK).args(["notify", "--config"]).arg(&config),
        SECS,
    );
    assert_eq!(out.status.code(), Some(0));
    assert!(
        text(&out.stdout).contains("nothing to do"),
        "{}",
        text(&out.stdout)
    );
}

#[cfg_attr(missing_tmux, ignore = "needs tmux: see README, Tests")]
#[test]
fn without_a_command_notify_shows_a_tmux_message_and_rings_the_chiefs_window() {
    if crate::helper::tmux::require_tmux(
        "without_a_command_notify_shows_a_tmux_message_and_rings_the_chiefs_window",
    )
    .is_none()
    {
        return;
    }
    let env = Env::new();
    let config = env.dir.path().join("config.toml");
    std::fs::write(&config, "[notify]\nmin_interval_secs = 0\n").unwrap();
    let ready = env.dir.path().join("notify.out");
    let mut tmux = crate::helper::tmux::TmuxServer::new();
    let vars = vec![(
        "CLAUDE_AGENTS_DIR".to_owned(),
        env.state.display().to_string(),
    )];
    // Window 0 stands for the chief; notify runs in a window of its own, as `up` starts it.
    let chief = tmux.new_session(
        "team",
        env.dir.path(),
        &vars,
        &["sh".into(), "-c".into(), "sleep 600".into()],
    );
    tmux.run(&[
        "new-window",
        "-d",
        "-t",
        "team",
        "-n",
        "notify",
        "-e",
        &format!("CLAUDE_AGENTS_DIR={}", env.state.display()),
        "sh",
        "-c",
        &format!(
            "exec {HOOK} notify --config '{}' > '{}'",
            config.display(),
            ready.display()
        ),
    ]);
    // tmux shows a message to a client: one attaches from a pane of a second server,
    // as the human's terminal would, and looks at the notify window, so that the bell
    // in window 0 raises its flag.
    let mut terminal = crate::helper::tmux::TmuxServer::new();
    let tmux_bin = crate::helper::tmux::require_tmux("attach").unwrap();
    terminal.new_session(
        "terminal",
        env.dir.path(),
        &[("TERM".to_owned(), "xterm-256color".to_owned())],
        &[
            tmux_bin.display().to_string(),
            "-S".into(),
            tmux.socket().display().to_string(),
            "attach".into(),
            "-t".into(),
            "team:notify".into(),
        ],
    );
    let client = wait_until(SECS, "a client attached", || {
        let c = tmux.run(&["list-clients", "-F", "#{client_name}"]);
        c.lines().next().map(str::to_owned)
    });
    wait_until(SECS, "notify to follow the log", || {
        std::fs::read_to_string(&ready)
            .ok()
            .filter(|s| s.starts_with("notify: following "))
    });
    assert_eq!(tmux.display(&chief, "#{window_bell_flag}"), "0");

    let _bg = env.agent("bg", &["--exec", "echo bg-answer"]);
    let out = output_with_timeout(
        env.cmd(HOOK)
            .env("CLAUDE_EDITOR_HOOK_CHIEF_ID", "chief-1")
            .args(["send", "--background", "bg", "watch the build"]),
        SECS,
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    // tmux keeps every message it showed: `show-messages` lists them.
    let shown = wait_until(SECS, "the message in tmux's message log", || {
        let log = tmux.run(&["show-messages", "-t", &client]);
        log.lines()
            .find(|l| l.contains("claude-editor-hook: "))
            .map(str::to_owned)
    });
    assert!(shown.contains("@bg"), "{shown}");
    wait_until(SECS, "the bell in the chief's window", || {
        (tmux.display(&chief, "#{window_bell_flag}") == "1").then_some(())
    });
}
