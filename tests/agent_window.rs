//! `agent-wrap` in a real tmux window: where it says it runs, and what happens when the
//! window is killed under a running task.

use std::fs;

use crate::fixture::*;
use crate::helper::tmux::{TmuxServer, require_tmux};

#[cfg_attr(missing_tmux, ignore = "needs tmux: see README, Tests")]
#[test]
fn killing_the_agent_window_fails_its_task_and_marks_the_agent_offline() {
    if require_tmux("killing_the_agent_window_fails_its_task_and_marks_the_agent_offline").is_none()
    {
        return;
    }
    let env = Env::new();
    let mut tmux = TmuxServer::new();
    // A second session keeps the server alive when the agent's window goes.
    tmux.new_session("keep", env.dir.path(), &[], &["sleep".into(), "600".into()]);
    let vars = vec![(
        "CLAUDE_AGENTS_DIR".to_owned(),
        env.state.display().to_string(),
    )];
    let cmd = vec![
        WRAP.to_owned(),
        "w".into(),
        "--exec".into(),
        "echo working; exec sleep 60".into(),
    ];
    let pane = tmux.new_session("team", env.dir.path(), &vars, &cmd);
    let status = env.wait_status("w", "idle", |_| true);
    assert_eq!(status["tmux"]["pane"], pane.as_str(), "{status}");
    assert!(
        status["tmux"]["window"]
            .as_str()
            .unwrap()
            .starts_with("team:"),
        "{status}"
    );

    let (mut hook, file) = env.spawn_hook(b"@w job");
    env.wait_status("w", "working", |_| true);
    tmux.screen_or_panic(&pane, "the task in the agent's window", |s| {
        s.contains("working")
    });
    tmux.run(&["kill-window", "-t", &pane]);
    assert!(wait_child(&mut hook, SECS, "the coordinator").success());
    let head = head_and_body(&fs::read(file).unwrap()).0;
    assert!(
        head.contains("@w failed") && head.contains("agent-wrap received SIGHUP"),
        "{head}"
    );
    env.wait_status("w", "offline", |_| true);
}

trait ScreenOrPanic {
    fn screen_or_panic(&self, pane: &str, what: &str, pred: impl Fn(&str) -> bool) -> String;
}

impl ScreenOrPanic for TmuxServer {
    fn screen_or_panic(&self, pane: &str, what: &str, pred: impl Fn(&str) -> bool) -> String {
        self.wait_for_screen(pane, pred, SECS)
            .unwrap_or_else(|s| panic!("waiting for {what}; screen:\n{s}"))
    }
}

/// What a delivered task or a compaction must not leave in the agent's window
/// (issue 10, item 9): a second banner and Claude Code's editor line (its classic
/// renderer repaints after an external editor on older versions,
/// docs/claude-code.md#editor-repaint), and a line per PreCompact or PostCompact hook
/// (docs/claude-code.md#compact-hook-notices).
#[cfg_attr(
    missing_claude,
    ignore = "needs Claude Code and tmux: see README, Tests"
)]
#[test]
fn delivered_tasks_and_a_compaction_leave_the_agents_window_as_a_typed_session_would() {
    use crate::e2e_agent::start_hosted_in;
    use crate::helper::claude::ClaudeSandbox;
    let test = "delivered_tasks_and_a_compaction_leave_the_agents_window_as_a_typed_session_would";
    let env = Env::new();
    let sandbox = ClaudeSandbox::new();
    // A user who has run Claude Code for a while: its classic renderer is their default
    // (a fresh install of 2.1.332 starts in the fullscreen one, docs/claude-code.md#editor-repaint).
    sandbox.home.update_config(|c| {
        c["fullscreenUpsellSeenCount"] = 3.into();
    });
    let Some(agent) = start_hosted_in(sandbox, test, &env, "clean", &[], &[]) else {
        return;
    };
    for task in ["one", "two"] {
        let (_, after) = env.run_hook(format!("@clean {task}").as_bytes());
        assert!(
            text(&after).contains(&format!("FAKE-REPLY: {task}")),
            "{}",
            text(&after)
        );
    }
    // The answer is drawn a moment after the turn's Stop, which ends the task.
    agent
        .tmux
        .wait_for_screen(
            &agent.pane,
            |s| s.contains("FAKE-REPLY: two"),
            std::time::Duration::from_secs(30),
        )
        .unwrap_or_else(|s| panic!("no answer on screen:\n{s}"));
    let history = agent.tmux.capture_history(&agent.pane);
    let banners = history.matches("Claude Code v").count();
    assert_eq!(banners, 1, "one banner, as typed:\n{history}");
    assert!(
        !history.contains("Save and close"),
        "no editor line:\n{history}"
    );
    for answer in ["FAKE-REPLY: one", "FAKE-REPLY: two"] {
        assert!(history.contains(answer), "{answer}:\n{history}");
    }

    let out = env
        .cmd(HOOK)
        .args(["compact", "clean", "--timeout", "60"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let history = agent
        .tmux
        .wait_for_screen(
            &agent.pane,
            |s| s.contains("Compacted"),
            std::time::Duration::from_secs(30),
        )
        .map(|_| agent.tmux.capture_history(&agent.pane))
        .unwrap_or_else(|s| panic!("no compaction on screen:\n{s}"));
    assert!(
        !history.contains("completed successfully") && !history.contains("Save and close"),
        "{history}"
    );
    assert_eq!(text(&out.stdout), "@clean: Compacted the conversation.\n");
}
