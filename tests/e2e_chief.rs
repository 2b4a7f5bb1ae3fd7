//! The real thing: Claude Code as the chief, in a private tmux server, offline against
//! the fake Messages API, with `EDITOR=claude-editor-hook`, pressing Ctrl-G.

use std::time::Duration;

use crate::fixture::*;
use crate::helper::claude::{ClaudeSandbox, require_claude};
use crate::helper::tmux::{TmuxServer, require_tmux};
use crate::helper::wait::wait_for_file;

const CLAUDE_WAIT: Duration = Duration::from_secs(60);

pub struct Chief {
    pub tmux: TmuxServer,
    pub pane: String,
    pub sandbox: ClaudeSandbox,
}

/// Starts an interactive chief whose editor is the hook, and waits until it takes input.
pub fn start_chief(test: &str, env: &Env) -> Option<Chief> {
    start_chief_with(test, env, &[], false)
}

/// [`start_chief`] with extra environment, and with the chief-side hooks when `hooks`.
pub fn start_chief_with(
    test: &str,
    env: &Env,
    extra_env: &[(&str, &str)],
    hooks: bool,
) -> Option<Chief> {
    let claude = require_claude(test)?;
    require_tmux(test)?;
    let sandbox = ClaudeSandbox::new();
    let marker = sandbox.path().join("ready");
    let mut vars = sandbox.env();
    vars.push(("EDITOR".into(), HOOK.into()));
    vars.push(("CLAUDE_AGENTS_DIR".into(), env.state.display().to_string()));
    let mut tmux = TmuxServer::new();
    let marker_cmd = format!("touch '{}'", marker.display());
    let chief_cmd = format!("'{HOOK}' chief-hook");
    let mut hooks_list = vec![("SessionStart", marker_cmd.as_str())];
    if hooks {
        hooks_list.push(("UserPromptSubmit", chief_cmd.as_str()));
        hooks_list.push(("Stop", chief_cmd.as_str()));
    }
    for (k, v) in extra_env {
        vars.push(((*k).into(), (*v).into()));
    }
    let cmd = vec![
        claude.display().to_string(),
        "--settings".into(),
        crate::helper::claude::hook_settings(&hooks_list),
    ];
    let pane = tmux.new_session("chief", sandbox.project_dir(), &vars, &cmd);
    wait_for_file(&marker, CLAUDE_WAIT);
    Some(Chief {
        tmux,
        pane,
        sandbox,
    })
}

impl Chief {
    pub fn screen_until(&self, what: &str, pred: impl Fn(&str) -> bool) -> String {
        self.tmux
            .wait_for_screen(&self.pane, pred, CLAUDE_WAIT)
            .unwrap_or_else(|s| panic!("waiting for {what}; screen:\n{s}"))
    }
}

#[cfg_attr(
    missing_claude,
    ignore = "needs Claude Code and tmux: see README, Tests"
)]
#[test]
fn ctrl_g_delegates_and_the_answer_becomes_the_chiefs_next_prompt() {
    let env = Env::new();
    let Some(chief) = start_chief(
        "ctrl_g_delegates_and_the_answer_becomes_the_chiefs_next_prompt",
        &env,
    ) else {
        return;
    };
    let _agent = env.agent("planning", &["--demo", "--demo-delay-ms", "0"]);
    chief
        .tmux
        .send_literal(&chief.pane, "@planning plan the dark-mode feature");
    chief.screen_until("the typed prompt", |s| {
        s.contains("@planning plan the dark-mode feature")
    });
    chief.tmux.send_keys(&chief.pane, &["C-g"]);
    let sum = ceh::agent::demo::checksum(b"plan the dark-mode feature");
    let answer_line = format!("DEMO-ANSWER {sum:016x} plan the dark-mode feature");
    // Claude Code redraws in steps: wait for the whole answer, header included.
    chief.screen_until("the answer in the prompt box", |s| {
        s.contains(&answer_line) && s.contains("[@planning · task ")
    });
    assert!(
        chief.sandbox.api.prompts().is_empty(),
        "nothing may be submitted before Enter"
    );

    chief.tmux.send_keys(&chief.pane, &["Enter"]);
    let prompt = chief
        .sandbox
        .api
        .wait_for_prompt(|p| p.contains(&answer_line), CLAUDE_WAIT)
        .unwrap_or_else(|| {
            panic!(
                "the chief never submitted the answer:\n{}",
                chief.tmux.capture(&chief.pane)
            )
        });
    assert!(prompt.starts_with("[@planning · task "), "{prompt:?}");
    assert!(
        prompt.contains("demo agent @planning is working on: plan the dark-mode feature"),
        "{prompt:?}"
    );
    chief.screen_until("the chief's reply", |s| {
        s.contains("FAKE-REPLY: [@planning · task")
    });
}

#[cfg_attr(
    missing_claude,
    ignore = "needs Claude Code and tmux: see README, Tests"
)]
#[test]
fn ctrl_c_while_waiting_keeps_the_chief_alive_and_its_prompt_unchanged() {
    let env = Env::new();
    let Some(chief) = start_chief(
        "ctrl_c_while_waiting_keeps_the_chief_alive_and_its_prompt_unchanged",
        &env,
    ) else {
        return;
    };
    let _agent = env.agent("slow", &["--exec", "echo thinking; exec sleep 60"]);
    let typed = "@slow take your time";
    chief.tmux.send_literal(&chief.pane, typed);
    chief.screen_until("the typed prompt", |s| s.contains(typed));
    chief.tmux.send_keys(&chief.pane, &["C-g"]);
    chief.screen_until("the waiting view", |s| s.contains("│ thinking"));

    chief.tmux.send_keys(&chief.pane, &["C-c"]);
    let done = env.wait_single_done();
    assert_eq!(done["outcome"], "cancelled", "{done}");
    env.wait_status("slow", "idle", |_| true);
    chief.screen_until("the original prompt back in the box", |s| {
        s.contains(typed) && !s.contains("│ thinking")
    });
    assert!(
        !chief.tmux.pane_dead(&chief.pane),
        "Ctrl-C killed the chief"
    );

    // The chief is alive and its prompt is exactly what was typed: submit it.
    chief.tmux.send_keys(&chief.pane, &["Enter"]);
    let got = chief.sandbox.api.wait_for_prompt(|_| true, CLAUDE_WAIT);
    assert_eq!(got.as_deref(), Some(typed));
}

#[cfg_attr(
    missing_claude,
    ignore = "needs Claude Code and tmux: see README, Tests"
)]
#[test]
fn a_background_result_reaches_the_chief_at_its_next_turn() {
    let env = Env::new();
    let test = "a_background_result_reaches_the_chief_at_its_next_turn";
    let Some(chief) = start_chief_with(test, &env, &[("CLAUDE_EDITOR_HOOK_CHIEF", "1")], true)
    else {
        return;
    };
    let _agent = env.agent("logs", &["--demo", "--demo-delay-ms", "0"]);
    chief
        .tmux
        .send_literal(&chief.pane, "@logs& summarise the logs");
    chief.screen_until("the typed prompt", |s| {
        s.contains("@logs& summarise the logs")
    });
    chief.tmux.send_keys(&chief.pane, &["C-g"]);
    chief.screen_until("the ticket", |s| s.contains("in the background"));
    crate::helper::wait::wait_until(CLAUDE_WAIT, "the background task to finish", || {
        env.done_files().into_iter().find(|d| d["outcome"] == "ok")
    });
    // Clear the ticket from the box (two Escapes, docs/claude-code.md#box-escape-clears) and go on working.
    chief.tmux.send_keys(&chief.pane, &["Escape"]);
    chief.tmux.send_keys(&chief.pane, &["Escape"]);
    chief.screen_until("an empty box", |s| !s.contains("in the background]"));
    chief.tmux.send_literal(&chief.pane, "what is new");
    chief.tmux.send_keys(&chief.pane, &["Enter"]);
    let request = chief
        .sandbox
        .api
        .wait_for_request(|r| r.prompt == "what is new", CLAUDE_WAIT)
        .unwrap_or_else(|| panic!("no request:\n{}", chief.tmux.capture(&chief.pane)));
    let sum = ceh::agent::demo::checksum(b"summarise the logs");
    assert!(
        request
            .body
            .to_string()
            .contains(&format!("DEMO-ANSWER {sum:016x}")),
        "the chief's turn did not carry the background result"
    );
}

#[cfg_attr(
    missing_claude,
    ignore = "needs Claude Code and tmux: see README, Tests"
)]
#[test]
fn with_submit_the_answer_goes_to_the_chief_without_a_keypress() {
    let env = Env::new();
    let test = "with_submit_the_answer_goes_to_the_chief_without_a_keypress";
    let Some(chief) = start_chief_with(test, &env, &[("CLAUDE_EDITOR_HOOK_SUBMIT", "1")], false)
    else {
        return;
    };
    let _agent = env.agent("planning", &["--demo", "--demo-delay-ms", "0"]);
    chief
        .tmux
        .send_literal(&chief.pane, "@planning plan the release");
    chief.screen_until("the typed prompt", |s| {
        s.contains("@planning plan the release")
    });
    chief.tmux.send_keys(&chief.pane, &["C-g"]);
    let prompt = chief
        .sandbox
        .api
        .wait_for_prompt(|p| p.contains("DEMO-ANSWER"), CLAUDE_WAIT)
        .unwrap_or_else(|| {
            panic!(
                "nothing was submitted:\n{}",
                chief.tmux.capture(&chief.pane)
            )
        });
    assert!(prompt.starts_with("[@planning · task "), "{prompt:?}");
}
