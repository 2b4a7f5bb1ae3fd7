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
