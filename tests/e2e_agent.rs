//! `agent-wrap NAME` hosting the real Claude Code (in a private tmux server, offline
//! against the fake Messages API): delivery, answers, context, errors.

use std::time::Duration;

use crate::fixture::*;
use crate::helper::claude::{ClaudeSandbox, claude_version, require_claude};
use crate::helper::fake_api::{Reply, RequestKind};
use crate::helper::tmux::{TmuxServer, require_tmux};
use crate::helper::wait::{wait_until, wait_until_or};

const CLAUDE_WAIT: Duration = Duration::from_secs(60);

pub struct HostedAgent {
    pub tmux: TmuxServer,
    pub pane: String,
    pub sandbox: ClaudeSandbox,
}

/// Starts `agent-wrap NAME` hosting Claude Code in a tmux pane and waits until Claude
/// Code has started (its SessionStart hook made the agent idle).
pub fn host_agent(test: &str, env: &Env, name: &str) -> Option<HostedAgent> {
    host_agent_with(test, env, name, &[])
}

/// [`host_agent`] with more `agent-wrap` arguments (before `--claude`).
pub fn host_agent_with(test: &str, env: &Env, name: &str, args: &[String]) -> Option<HostedAgent> {
    start_hosted(test, env, name, args, &[])
}

/// [`host_agent`], with `claude_args` passed to Claude Code (after `--`).
pub fn host_agent_with_claude_args(
    test: &str,
    env: &Env,
    name: &str,
    claude_args: &[&str],
) -> Option<HostedAgent> {
    start_hosted(test, env, name, &[], claude_args)
}

fn start_hosted(
    test: &str,
    env: &Env,
    name: &str,
    args: &[String],
    claude_args: &[&str],
) -> Option<HostedAgent> {
    start_hosted_in(ClaudeSandbox::new(), test, env, name, args, claude_args)
}

/// [`host_agent`] in a sandbox the test prepared (its `~/.claude.json`, say).
pub fn start_hosted_in(
    sandbox: ClaudeSandbox,
    test: &str,
    env: &Env,
    name: &str,
    args: &[String],
    claude_args: &[&str],
) -> Option<HostedAgent> {
    let claude = require_claude(test)?;
    require_tmux(test)?;
    let mut vars = sandbox.env();
    vars.push(("CLAUDE_AGENTS_DIR".into(), env.state.display().to_string()));
    // The host's trace, for a failing test to show.
    let trace = sandbox.path().join("host-trace.log");
    vars.push(("AGENT_WRAP_DEBUG".into(), trace.display().to_string()));
    let mut tmux = TmuxServer::new();
    let mut cmd = vec![WRAP.to_owned(), name.to_owned()];
    cmd.extend(args.iter().cloned());
    cmd.extend(["--claude".into(), claude.display().to_string()]);
    if !claude_args.is_empty() {
        cmd.push("--".into());
        cmd.extend(claude_args.iter().map(|a| (*a).to_owned()));
    }
    let pane = tmux.new_session("agent", sandbox.project_dir(), &vars, &cmd);
    wait_until(CLAUDE_WAIT, "the hosted Claude Code to start", || {
        env.status(name)
            .filter(|s| s["status"] == "idle" && s["driver"] == "claude")
            .map(|_| ())
            .or_else(|| {
                assert!(
                    !tmux.pane_dead(&pane),
                    "agent-wrap died:\n{}",
                    tmux.capture_history(&pane)
                );
                None
            })
    });
    // SessionStart can come before the prompt box is drawn (2.1.332 on a loaded machine,
    // docs/claude-code.md#hook-session-start). Keys the human types before they see the
    // box are lost; our own deliveries wait for the probe instead. A human waits for the
    // box: so do the tests that type as one.
    wait_until(CLAUDE_WAIT, "the prompt box to be drawn", || {
        tmux.capture(&pane).contains('❯').then_some(())
    });
    Some(HostedAgent {
        tmux,
        pane,
        sandbox,
    })
}

impl Drop for HostedAgent {
    /// A failing test shows what the host saw: its trace and the agent's screen.
    fn drop(&mut self) {
        if std::thread::panicking() {
            let trace = std::fs::read_to_string(self.sandbox.path().join("host-trace.log"))
                .unwrap_or_default();
            let tail: Vec<_> = trace.lines().rev().take(60).collect();
            eprintln!("--- host trace (last 60 lines, newest first):");
            for line in tail {
                eprintln!("{line}");
            }
            eprintln!("--- agent screen:\n{}", self.tmux.capture(&self.pane));
        }
    }
}

#[cfg_attr(
    missing_claude,
    ignore = "needs Claude Code and tmux: see README, Tests"
)]
#[test]
fn hosted_claude_answers_tasks_and_keeps_its_conversation() {
    let env = Env::new();
    let Some(agent) = host_agent(
        "hosted_claude_answers_tasks_and_keeps_its_conversation",
        &env,
        "planner",
    ) else {
        return;
    };
    let (out, after) = env.run_hook(b"@planner plan the first feature");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let (head, body) = head_and_body(&after);
    assert!(
        head.starts_with("[@planner · task "),
        "{head}\n{}",
        agent.tmux.capture(&agent.pane)
    );
    assert!(!head.contains("human input"), "nobody typed: {head}");
    assert_eq!(text(&body), "FAKE-REPLY: plan the first feature");

    let (_, after) = env.run_hook(b"@planner now the second");
    assert_eq!(text(&head_and_body(&after).1), "FAKE-REPLY: now the second");
    let prompts: Vec<_> = agent
        .sandbox
        .api
        .requests()
        .into_iter()
        .filter(|r| r.kind == RequestKind::Prompt)
        .collect();
    let second = prompts
        .iter()
        .find(|r| r.prompt == "now the second")
        .expect("second request");
    assert!(
        second.n_role("assistant") >= 1,
        "the second turn must carry the first: {:?}",
        second.n_messages
    );
    // The answer is out before the agent writes its idle status: wait for it.
    let status = env.wait_status("planner", "idle", |_| true);
    assert!(status["claude_session_id"].is_string());
}

#[cfg_attr(
    missing_claude,
    ignore = "needs Claude Code and tmux: see README, Tests"
)]
#[test]
fn tasks_arrive_byte_exact_whatever_their_lines_start_with_and_however_large() {
    let env = Env::new();
    let Some(agent) = host_agent(
        "tasks_arrive_byte_exact_whatever_their_lines_start_with_and_however_large",
        &env,
        "coder",
    ) else {
        return;
    };
    let task =
        "first line\n/second starts with slash\n!third bang\n#fourth hash\n  indented ünïcödé";
    let (_, after) = env.run_hook(format!("@coder {task}").as_bytes());
    assert!(
        text(&after).contains("FAKE-REPLY: first line"),
        "{}",
        text(&after)
    );
    assert!(
        agent.sandbox.api.prompts().iter().any(|p| p == task),
        "{:?}",
        agent.sandbox.api.prompts()
    );

    // As Claude Code writes a prompt file: no trailing newline (docs/claude-code.md#editor-file). Claude Code
    // trims trailing whitespace when any prompt is submitted.
    let big = (0..4000)
        .map(|i| format!("line {i:05} of a long task body, padded out to fifty"))
        .collect::<Vec<_>>()
        .join("\n");
    assert!(big.len() >= 200_000);
    let (_, after) = env.run_hook(format!("@coder {big}").as_bytes());
    assert!(
        text(&after).contains("FAKE-REPLY: line 00000"),
        "{}",
        &text(&after)[..200.min(after.len())]
    );
    assert!(
        agent.sandbox.api.prompts().contains(&big),
        "the 200 KB task did not arrive exactly"
    );
}

/// The one byte the host ever adds: a `\\` before a leading `/`
/// (docs/claude-code.md#box-leading-slash, docs/design/slash-led-tasks.md).
fn escaped(task: &str) -> String {
    let at = task.len() - task.trim_start().len();
    if task[at..].starts_with('/') {
        format!("{}\\{}", &task[..at], &task[at..])
    } else {
        task.to_owned()
    }
}

#[cfg_attr(
    missing_claude,
    ignore = "needs Claude Code and tmux: see README, Tests"
)]
#[test]
fn slash_bang_and_hash_led_tasks_are_prompts_and_the_conversation_survives() {
    let env = Env::new();
    let Some(agent) = host_agent(
        "slash_bang_and_hash_led_tasks_are_prompts_and_the_conversation_survives",
        &env,
        "coder",
    ) else {
        return;
    };
    let api = &agent.sandbox.api;
    // Through Ctrl-G, and through `send` for text the directive would read otherwise:
    // whitespace after `@coder` is trimmed, and `@coder @file` is a fan-out.
    let ask = |task: &str| {
        let short: String = task.chars().take(60).collect();
        let body = if task.starts_with(char::is_whitespace) || task.starts_with('@') {
            let out = env
                .cmd(HOOK)
                .args(["send", "coder", task, "--timeout", "60"])
                .output()
                .expect("run send");
            assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
            text(&out.stdout)
        } else {
            let (out, after) = env.run_hook(format!("@coder {task}").as_bytes());
            assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
            let (head, body) = head_and_body(&after);
            assert!(
                head.starts_with("[@coder · task "),
                "{short:?}: {}",
                text(&after).chars().take(400).collect::<String>()
            );
            text(&body)
        };
        let sent = escaped(task);
        assert!(
            body.starts_with("FAKE-REPLY:"),
            "{short:?}: {}; screen:\n{}",
            body.chars().take(400).collect::<String>(),
            agent.tmux.capture(&agent.pane)
        );
        let request = api
            .requests()
            .into_iter()
            .filter(|r| r.kind == RequestKind::Prompt)
            .find(|r| r.prompt == sent.trim_end())
            .unwrap_or_else(|| {
                let seen: Vec<String> = api
                    .prompts()
                    .iter()
                    .map(|p| p.chars().take(60).collect())
                    .collect();
                panic!("{short:?} never reached the API escaped: {seen:?}")
            });
        request.n_role("user")
    };
    assert_eq!(ask("a first task to remember"), 1);
    // A built-in slash command (a skill since 2.1.332) and one that wipes the context:
    // both are prompts, and the conversation goes on.
    assert_eq!(ask("/review is not a command here"), 2);
    assert_eq!(ask("/clear this is a task too"), 3);
    assert_eq!(ask("  /clear with spaces before it"), 4);
    // A task is never a shell command: no `<bash-input>` went out, the text did.
    assert_eq!(ask("!ls"), 5);
    assert_eq!(ask("#note this"), 6);
    assert_eq!(ask("/"), 7);
    // `/compact` as a task is a prompt too; only `claude-editor-hook compact` compacts.
    assert_eq!(ask("/compact"), 8);
    for unusual in ["&bg task", "?", "@file x"] {
        ask(unusual);
    }
    let big = format!(
        "/{}",
        (0..4000)
            .map(|i| format!("line {i:05} of a long slash-led task, padded out to fifty"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert!(big.len() >= 200_000);
    assert_eq!(ask(&big), 12, "the 200 KB slash-led task");
    assert!(
        !api.prompts().iter().any(|p| p.contains("<bash-input>")),
        "a shell command ran"
    );
    let sessions: std::collections::HashSet<_> = api
        .requests()
        .into_iter()
        .filter_map(|r| r.session_header)
        .collect();
    assert_eq!(sessions.len(), 1, "the session changed: {sessions:?}");
}

#[cfg_attr(
    missing_claude,
    ignore = "needs Claude Code and tmux: see README, Tests"
)]
#[test]
fn an_api_error_on_the_agent_fails_the_task_with_claudes_error_text() {
    let env = Env::new();
    let Some(agent) = host_agent(
        "an_api_error_on_the_agent_fails_the_task_with_claudes_error_text",
        &env,
        "flaky",
    ) else {
        return;
    };
    agent.sandbox.api.set_reply(|_| Reply::Error {
        status: 500,
        kind: "api_error".into(),
        message: "fake 500".into(),
    });
    let (out, after) = env.run_hook(b"@flaky do it");
    assert_eq!(out.status.code(), Some(0));
    let (head, body) = head_and_body(&after);
    assert!(
        head.contains("@flaky failed") && head.contains("API Error: 500"),
        "{head}"
    );
    assert_eq!(body, b"@flaky do it");
    env.wait_status("flaky", "idle", |_| true);
}

/// Replies at once, except to prompts containing `[[slow]]`, which hang (a long turn).
fn slow_on_marker(agent: &HostedAgent) {
    agent.sandbox.api.set_reply(|prompt| {
        if prompt.contains("[[slow]]") {
            std::thread::sleep(Duration::from_secs(60));
        }
        Reply::Text(format!(
            "FAKE-REPLY: {}",
            prompt.lines().next().unwrap_or("")
        ))
    });
}

/// The pids of `parent`'s children.
fn children(parent: u32) -> Vec<u32> {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .ok()
                .and_then(|s| {
                    s.rsplit(") ")
                        .next()?
                        .split(' ')
                        .nth(1)?
                        .parse::<u32>()
                        .ok()
                })
                == Some(parent)
        })
        .collect()
}

fn kill(pid: u32) {
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
}

/// Waits until Claude Code has written `needle` into the transcript of `session` on disk.
/// It writes the transcript asynchronously: a SIGKILL right after a turn can lose it, and
/// then `--resume` finds no conversation (agent-wrap falls back to a new session).
fn wait_transcript(agent: &HostedAgent, session: &str, needle: &str) {
    wait_transcript_in(&agent.sandbox, session, needle);
}

/// [`wait_transcript`] for any sandbox.
pub fn wait_transcript_in(sandbox: &ClaudeSandbox, session: &str, needle: &str) {
    let projects = sandbox.home.root().join(".claude/projects");
    wait_until(CLAUDE_WAIT, "the transcript on disk", || {
        std::fs::read_dir(&projects)
            .ok()?
            .flatten()
            .map(|d| d.path().join(format!("{session}.jsonl")))
            .find_map(|p| std::fs::read_to_string(p).ok())
            .filter(|t| t.contains(needle))
            .map(|_| ())
    });
}

/// The last prompt request carries at least one earlier assistant turn.
fn carries_context(agent: &HostedAgent, prompt: &str) -> bool {
    agent
        .sandbox
        .api
        .requests()
        .iter()
        .any(|r| r.kind == RequestKind::Prompt && r.prompt == prompt && r.n_role("assistant") >= 1)
}

#[cfg_attr(
    missing_claude,
    ignore = "needs Claude Code and tmux: see README, Tests"
)]
#[test]
fn claude_killed_under_the_host_fails_the_task_and_comes_back_with_its_memory() {
    let env = Env::new();
    let Some(agent) = host_agent(
        "claude_killed_under_the_host_fails_the_task_and_comes_back_with_its_memory",
        &env,
        "sturdy",
    ) else {
        return;
    };
    slow_on_marker(&agent);
    let (_, after) = env.run_hook(b"@sturdy remember the word pelican");
    assert!(text(&after).contains("FAKE-REPLY: remember the word pelican"));
    let session = env.status("sturdy").unwrap()["claude_session_id"]
        .as_str()
        .unwrap()
        .to_owned();
    wait_transcript(&agent, &session, "FAKE-REPLY: remember the word pelican");

    let (mut hook, file) = env.spawn_hook(b"@sturdy [[slow]] think hard");
    env.wait_status("sturdy", "working", |_| true);
    agent
        .sandbox
        .api
        .wait_for_prompt(|p| p.contains("[[slow]]"), CLAUDE_WAIT)
        .expect("the slow prompt");
    let host = env.status("sturdy").unwrap()["pid"].as_u64().unwrap() as u32;
    let claude = children(host);
    assert_eq!(
        claude.len(),
        1,
        "one Claude Code under agent-wrap: {claude:?}"
    );
    kill(claude[0]);
    assert!(wait_child(&mut hook, Duration::from_secs(2), "the coordinator").success());
    let head = head_and_body(&std::fs::read(file).unwrap()).0;
    assert!(
        head.contains("@sturdy failed") && head.contains("Claude Code exited"),
        "{head}"
    );

    // The host restarts Claude Code with --resume: the next turn carries the first.
    env.wait_status("sturdy", "idle", |_| true);
    let (_, after) = env.run_hook(b"@sturdy what was the word");
    assert!(
        text(&after).contains("FAKE-REPLY: what was the word"),
        "{}",
        text(&after)
    );
    assert!(
        carries_context(&agent, "what was the word"),
        "the resumed session lost its history"
    );
}

#[cfg_attr(
    missing_claude,
    ignore = "needs Claude Code and tmux: see README, Tests"
)]
#[test]
fn agent_wrap_killed_mid_task_returns_fast_and_a_new_host_resumes_the_conversation() {
    let env = Env::new();
    let Some(mut agent) = host_agent(
        "agent_wrap_killed_mid_task_returns_fast_and_a_new_host_resumes_the_conversation",
        &env,
        "phoenix",
    ) else {
        return;
    };
    slow_on_marker(&agent);
    let (_, after) = env.run_hook(b"@phoenix remember the word heron");
    assert!(text(&after).contains("FAKE-REPLY: remember the word heron"));
    let session = env.status("phoenix").unwrap()["claude_session_id"].clone();
    wait_transcript(
        &agent,
        session.as_str().unwrap(),
        "FAKE-REPLY: remember the word heron",
    );

    let (mut hook, file) = env.spawn_hook(b"@phoenix [[slow]] long job");
    agent
        .sandbox
        .api
        .wait_for_prompt(|p| p.contains("[[slow]]"), CLAUDE_WAIT)
        .expect("the slow prompt");
    kill(env.status("phoenix").unwrap()["pid"].as_u64().unwrap() as u32);
    assert!(wait_child(&mut hook, Duration::from_secs(2), "the coordinator").success());
    let head = head_and_body(&std::fs::read(file).unwrap()).0;
    assert!(
        head.contains("@phoenix failed") && head.contains("died"),
        "{head}"
    );

    // `agent-wrap phoenix` again, as after a crash or a reboot.
    let claude = require_claude("agent_wrap_killed…").unwrap();
    let mut vars = agent.sandbox.env();
    vars.push(("CLAUDE_AGENTS_DIR".into(), env.state.display().to_string()));
    let cmd = vec![
        WRAP.to_owned(),
        "phoenix".into(),
        "--claude".into(),
        claude.display().to_string(),
    ];
    let project = agent.sandbox.project_dir().to_path_buf();
    agent.pane = agent.tmux.new_session("again", &project, &vars, &cmd);
    env.wait_status("phoenix", "idle", |s| s["claude_session_id"] == session);
    let (_, after) = env.run_hook(b"@phoenix what was the word");
    assert!(
        text(&after).contains("FAKE-REPLY: what was the word"),
        "{}",
        text(&after)
    );
    assert!(
        carries_context(&agent, "what was the word"),
        "the new host lost the conversation"
    );
}

#[cfg_attr(
    missing_claude,
    ignore = "needs Claude Code and tmux: see README, Tests"
)]
#[test]
fn chief_and_agent_both_real_claude_and_escape_interrupts_the_agent() {
    let env = Env::new();
    let test = "chief_and_agent_both_real_claude_and_escape_interrupts_the_agent";
    let Some(agent) = host_agent(test, &env, "reviewer") else {
        return;
    };
    let Some(chief) = crate::e2e_chief::start_chief(test, &env) else {
        return;
    };
    slow_on_marker(&agent);

    chief
        .tmux
        .send_literal(&chief.pane, "@reviewer check the plan");
    chief.screen_until("the typed prompt", |s| {
        s.contains("@reviewer check the plan")
    });
    chief.tmux.send_keys(&chief.pane, &["C-g"]);
    chief.screen_until("the agent's answer in the chief's box", |s| {
        s.contains("[@reviewer · task ") && s.contains("FAKE-REPLY: check the plan")
    });
    chief.tmux.send_keys(&chief.pane, &["Enter"]);
    let submitted = chief
        .sandbox
        .api
        .wait_for_prompt(|p| p.contains("FAKE-REPLY: check the plan"), CLAUDE_WAIT);
    assert!(
        submitted
            .expect("the chief submits the answer")
            .starts_with("[@reviewer · task ")
    );
    chief.screen_until("the chief's reply", |s| {
        s.contains("FAKE-REPLY: [@reviewer")
    });

    // A long task, cancelled from the chief's waiting view.
    chief
        .tmux
        .send_literal(&chief.pane, "@reviewer [[slow]] deep review");
    chief.screen_until("the second prompt", |s| s.contains("deep review"));
    chief.tmux.send_keys(&chief.pane, &["C-g"]);
    agent
        .sandbox
        .api
        .wait_for_prompt(|p| p.contains("[[slow]]"), CLAUDE_WAIT)
        .expect("the slow task reached the agent");
    chief.tmux.send_keys(&chief.pane, &["Escape"]);
    let done = wait_until(CLAUDE_WAIT, "the cancelled task", || {
        env.done_files()
            .into_iter()
            .find(|d| d["outcome"] == "cancelled")
    });
    assert_eq!(done["reason"], "cancelled with Esc");
    chief.screen_until("the chief's prompt, unchanged", |s| {
        s.contains("@reviewer [[slow]] deep review")
    });
    env.wait_status("reviewer", "idle", |_| true);
    // A cancel is a normal event: neither window says anything "quit unexpectedly"
    // (docs/claude-code.md#editor-exit-notices).
    for (who, tmux, pane) in [
        ("agent", &agent.tmux, &agent.pane),
        ("chief", &chief.tmux, &chief.pane),
    ] {
        let notice = tmux.wait_for_screen(
            pane,
            |s| s.contains("quit unexpectedly"),
            Duration::from_secs(3),
        );
        assert!(
            notice.is_err(),
            "the {who}'s window: {}",
            notice.unwrap_or_default()
        );
    }

    // The agent's box is empty again: the next task goes straight in.
    let (_, after) = env.run_hook(b"@reviewer quick one");
    assert!(
        text(&after).contains("FAKE-REPLY: quick one"),
        "{}\n{}",
        text(&after),
        agent.tmux.capture(&agent.pane)
    );
}

/// Neither window shows Claude Code's "… quit unexpectedly" (or "closed unexpectedly")
/// notice for the next few seconds: an editor that ended normally shows none
/// (docs/claude-code.md#editor-exit-notices; a notice shows within 0.2 s, or up to 7.6 s
/// late behind another notice, which none of these runs shows).
fn no_notice_in(windows: &[(&str, &TmuxServer, &str)]) {
    for (who, tmux, pane) in windows {
        let notice =
            tmux.wait_for_screen(pane, |s| s.contains("unexpectedly"), Duration::from_secs(3));
        assert!(
            notice.is_err(),
            "the {who}'s window: {}",
            notice.unwrap_or_default()
        );
    }
}

/// Empties the chief's prompt box: two Escapes, the second after the hint
/// (docs/claude-code.md#box-escape-clears).
fn clear_chief_box(chief: &crate::e2e_chief::Chief, gone: &str) {
    chief.tmux.send_keys(&chief.pane, &["Escape"]);
    chief.screen_until("the hint to press Escape again", |s| {
        s.to_lowercase().contains("esc again to clear")
    });
    chief.tmux.send_keys(&chief.pane, &["Escape"]);
    chief.screen_until("an empty box", |s| !s.contains(gone));
}

// See: issue 10, item 4 ("Normal events look like crashes").
#[cfg_attr(
    missing_claude,
    ignore = "needs Claude Code and tmux: see README, Tests"
)]
#[test]
fn a_timeout_ctrl_c_and_an_interrupt_in_the_agent_leave_no_quit_unexpectedly_notice() {
    let env = Env::new();
    let test = "a_timeout_ctrl_c_and_an_interrupt_in_the_agent_leave_no_quit_unexpectedly_notice";
    let Some(agent) = host_agent(test, &env, "steady") else {
        return;
    };
    let timeout = [("CLAUDE_EDITOR_HOOK_TIMEOUT", "15")];
    let Some(chief) = crate::e2e_chief::start_chief_with(test, &env, &timeout, false) else {
        return;
    };
    slow_on_marker(&agent);
    let windows = [
        ("agent", &agent.tmux, agent.pane.as_str()),
        ("chief", &chief.tmux, chief.pane.as_str()),
    ];
    let delegate = |prompt: &str| {
        chief.tmux.send_literal(&chief.pane, prompt);
        chief.screen_until("the typed prompt", |s| s.contains(prompt));
        chief.tmux.send_keys(&chief.pane, &["C-g"]);
        let tail = prompt.split("]] ").nth(1).unwrap().to_owned();
        agent
            .sandbox
            .api
            .wait_for_prompt(|p| p.contains(&tail), CLAUDE_WAIT)
            .expect("the slow task reached the agent");
    };
    let outcome = |tail: &str| {
        wait_until(CLAUDE_WAIT, "the task's outcome", || {
            env.done_files().into_iter().find(|d| {
                let id = d["task_id"].as_str().unwrap_or_default();
                std::fs::read_to_string(env.state.join("tasks").join(id).join("task.json"))
                    .is_ok_and(|t| t.contains(tail))
            })
        })
    };

    // The chief's --timeout: the reason above the prompt, which is kept.
    delegate("@steady [[slow]] timed job");
    chief.screen_until("the timeout's reason in the box", |s| {
        s.contains("timed out after 15s") && s.contains("@steady [[slow]] timed job")
    });
    assert_eq!(outcome("timed job")["outcome"], "cancelled");
    env.wait_status("steady", "idle", |_| true);
    no_notice_in(&windows);
    clear_chief_box(&chief, "timed job");

    // Ctrl-C in the chief's waiting view: cancelled, the prompt exactly as it was.
    delegate("@steady [[slow]] stopped job");
    chief.tmux.send_keys(&chief.pane, &["C-c"]);
    let done = outcome("stopped job");
    assert_eq!(done["outcome"], "cancelled");
    assert_eq!(done["reason"], "cancelled with Ctrl-C");
    let screen = chief.screen_until("the prompt back, unchanged", |s| {
        s.contains("@steady [[slow]] stopped job")
    });
    assert!(!screen.contains("[claude-editor-hook]"), "{screen}");
    env.wait_status("steady", "idle", |_| true);
    no_notice_in(&windows);
    clear_chief_box(&chief, "stopped job");

    // Escape in the agent's window interrupts the delegated turn: the chief is told.
    delegate("@steady [[slow]] interrupted job");
    agent.tmux.send_keys(&agent.pane, &["Escape"]);
    chief.screen_until("the interrupt's reason in the box", |s| {
        s.contains("@steady interrupted") && s.contains("@steady [[slow]] interrupted job")
    });
    assert_eq!(outcome("interrupted job")["outcome"], "interrupted");
    env.wait_status("steady", "idle", |_| true);
    no_notice_in(&windows);
}

#[cfg_attr(
    missing_claude,
    ignore = "needs Claude Code and tmux: see README, Tests"
)]
#[test]
fn a_human_draft_in_the_agents_box_holds_the_task_until_it_is_submitted() {
    let env = Env::new();
    let Some(agent) = host_agent(
        "a_human_draft_in_the_agents_box_holds_the_task_until_it_is_submitted",
        &env,
        "shared",
    ) else {
        return;
    };
    agent.tmux.send_literal(&agent.pane, "my own question");
    agent
        .tmux
        .wait_for_screen(&agent.pane, |s| s.contains("my own question"), CLAUDE_WAIT)
        .unwrap();
    let (mut hook, file) = env.spawn_hook(b"@shared the delegated task");
    env.wait_status("shared", "user", |_| true);
    assert!(
        agent.sandbox.api.prompts().is_empty(),
        "nothing may be sent over a draft"
    );

    agent.tmux.send_keys(&agent.pane, &["Enter"]);
    // Rarely flaky in full-suite runs (2 in about 40); if it hangs, show the host's trace.
    let ended = crate::helper::wait::wait_until_or(CLAUDE_WAIT, || hook.try_wait().unwrap());
    if ended.is_none() {
        let trace = std::fs::read_to_string(agent.sandbox.path().join("host-trace.log"));
        panic!(
            "the held task was never delivered; prompts {:?}; host trace:\n{}",
            agent.sandbox.api.prompts(),
            trace.unwrap_or_default()
        );
    }
    assert!(ended.unwrap().success());
    assert_eq!(
        text(&head_and_body(&std::fs::read(file).unwrap()).1),
        "FAKE-REPLY: the delegated task"
    );
    assert_eq!(
        agent.sandbox.api.prompts(),
        ["my own question", "the delegated task"],
        "nothing mixed"
    );
}

#[cfg_attr(
    missing_claude,
    ignore = "needs Claude Code and tmux: see README, Tests"
)]
#[test]
fn compact_compacts_the_agent_between_tasks() {
    let env = Env::new();
    let Some(agent) = host_agent("compact_compacts_the_agent_between_tasks", &env, "tidy") else {
        return;
    };
    for task in ["@tidy one", "@tidy two"] {
        let (_, after) = env.run_hook(task.as_bytes());
        assert!(text(&after).contains("FAKE-REPLY:"), "{}", text(&after));
    }
    let out = env
        .cmd(HOOK)
        .args(["compact", "tidy", "--timeout", "60"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).starts_with("@tidy: Compacted the conversation"),
        "{}",
        text(&out.stdout)
    );
    assert!(
        agent.sandbox.api.requests().iter().any(|r| r
            .prompt
            .contains("create a detailed summary of the conversation")),
        "no compaction request reached the API"
    );
    let (_, after) = env.run_hook(b"@tidy three");
    assert!(
        text(&after).contains("FAKE-REPLY: three"),
        "{}",
        text(&after)
    );
}

#[cfg_attr(
    missing_claude,
    ignore = "needs Claude Code and tmux: see README, Tests"
)]
#[test]
fn a_task_that_runs_a_tool_returns_the_final_answer() {
    let env = Env::new();
    let Some(agent) = host_agent(
        "a_task_that_runs_a_tool_returns_the_final_answer",
        &env,
        "tooler",
    ) else {
        return;
    };
    agent.sandbox.api.set_reply(|prompt| {
        if prompt.contains("use the tool") {
            Reply::BashToolUse {
                command: "echo tool-ran".into(),
            }
        } else {
            Reply::Text(format!("FAKE-REPLY: {prompt}"))
        }
    });
    let (out, after) = env.run_hook(b"@tooler use the tool");
    assert_eq!(out.status.code(), Some(0));
    let (head, body) = head_and_body(&after);
    assert!(head.starts_with("[@tooler · task "), "{head}");
    assert_eq!(text(&body), "FAKE-TOOL-DONE: tool-ran");
    assert!(
        agent
            .sandbox
            .api
            .requests()
            .iter()
            .any(|r| r.tool_results.iter().any(|t| t.contains("tool-ran"))),
        "the tool ran for real"
    );
}

#[cfg_attr(
    missing_claude,
    ignore = "needs Claude Code and tmux: see README, Tests"
)]
#[test]
fn a_permission_prompt_shows_the_agent_waiting_until_the_human_answers() {
    let test = "a_permission_prompt_shows_the_agent_waiting_until_the_human_answers";
    let Some(claude) = require_claude(test) else {
        return;
    };
    // Auto mode, the default since 2.1.332, decides most prompts itself; the mode that
    // always asks is `default` on 2.1.197 and `manual` on 2.1.332
    // (docs/claude-code.md#permission-mode-default).
    let mode = if claude_version(&claude) >= (2, 1, 332) {
        "manual"
    } else {
        "default"
    };
    let env = Env::new();
    let Some(agent) =
        host_agent_with_claude_args(test, &env, "guarded", &["--permission-mode", mode])
    else {
        return;
    };
    let made = agent.sandbox.project_dir().join("made-by-the-tool");
    let command = format!("touch {}", made.display());
    agent.sandbox.api.set_reply(move |prompt| {
        if prompt.contains("make the file") {
            Reply::BashToolUse {
                command: command.clone(),
            }
        } else {
            Reply::Text(format!("FAKE-REPLY: {prompt}"))
        }
    });
    let (mut hook, file) = env.spawn_hook(b"@guarded make the file");
    // The PermissionRequest hook, not the screen, says the agent waits for the human.
    env.wait_status("guarded", "waiting", |_| true);
    assert!(!made.exists(), "the command ran before anyone allowed it");
    // The human allows it once they see the question: Enter picks its first answer,
    // "Yes". The hook comes before the dialog takes keys, and 2.1.332 ignored an Enter
    // that came at once, so, like a human whose key did nothing, press it again.
    agent
        .tmux
        .wait_for_screen(&agent.pane, |s| s.contains("Yes"), CLAUDE_WAIT)
        .expect("the permission dialog");
    wait_until(CLAUDE_WAIT, "the allowed command to run", || {
        agent.tmux.send_keys(&agent.pane, &["Enter"]);
        wait_until_or(Duration::from_secs(3), || made.exists().then_some(()))
    });
    assert!(wait_child(&mut hook, CLAUDE_WAIT, "the allowed task").success());
    let after = std::fs::read(file).unwrap();
    assert!(made.exists(), "the allowed command ran");
    assert!(
        text(&head_and_body(&after).1).starts_with("FAKE-TOOL-DONE"),
        "{}",
        text(&after)
    );
    env.wait_status("guarded", "idle", |_| true);
}

#[cfg_attr(
    missing_claude,
    ignore = "needs Claude Code and tmux: see README, Tests"
)]
#[test]
fn human_input_into_a_delegated_turn_is_marked_on_the_answer() {
    let env = Env::new();
    let Some(agent) = host_agent(
        "human_input_into_a_delegated_turn_is_marked_on_the_answer",
        &env,
        "pair",
    ) else {
        return;
    };
    agent.sandbox.api.set_reply(|prompt| {
        if prompt.contains("[[slow2]]") {
            std::thread::sleep(Duration::from_secs(2));
        }
        Reply::Text(format!(
            "FAKE-REPLY: {}",
            prompt.lines().next().unwrap_or("")
        ))
    });
    let (mut hook, file) = env.spawn_hook(b"@pair [[slow2]] the delegated part");
    agent
        .sandbox
        .api
        .wait_for_prompt(|p| p.contains("[[slow2]]"), CLAUDE_WAIT)
        .expect("the task reached the agent");
    agent.tmux.send_literal(&agent.pane, "and also this");
    agent.tmux.send_keys(&agent.pane, &["Enter"]);
    assert!(wait_child(&mut hook, CLAUDE_WAIT, "the coordinator").success());
    let (head, body) = head_and_body(&std::fs::read(file).unwrap());
    assert!(head.contains("with human input"), "{head}");
    assert!(
        text(&body).starts_with("FAKE-REPLY: [[slow2]] the delegated part"),
        "{}",
        text(&body)
    );
    env.wait_status("pair", "idle", |_| true);
}

/// The human presses `key` in the agent's window while a delegated task runs: the task
/// ends `interrupted` with a reason containing `expect`, and the agent takes the next.
fn interrupted_from_the_agent_window(test: &str, name: &str, key: &str, expect: &str) {
    let env = Env::new();
    let Some(agent) = host_agent(test, &env, name) else {
        return;
    };
    slow_on_marker(&agent);
    let (mut hook, file) = env.spawn_hook(format!("@{name} [[slow]] stop me").as_bytes());
    agent
        .sandbox
        .api
        .wait_for_prompt(|p| p.contains("[[slow]]"), CLAUDE_WAIT)
        .expect("the task reached the agent");
    agent.tmux.send_keys(&agent.pane, &[key]);
    assert!(wait_child(&mut hook, CLAUDE_WAIT, "the coordinator").success());
    let head = head_and_body(&std::fs::read(file).unwrap()).0;
    assert!(
        head.contains(&format!("@{name} interrupted")) && head.contains(expect),
        "{head}\n{}",
        agent.tmux.capture(&agent.pane)
    );
    env.wait_status(name, "idle", |_| true);
    let (_, after) = env.run_hook(format!("@{name} carry on").as_bytes());
    assert!(
        text(&after).contains("FAKE-REPLY: carry on"),
        "{}",
        text(&after)
    );
}

#[cfg_attr(
    missing_claude,
    ignore = "needs Claude Code and tmux: see README, Tests"
)]
#[test]
fn escape_from_the_human_in_the_agents_window_ends_the_task_as_interrupted() {
    // A lone Escape is seen in the keys the host forwards.
    interrupted_from_the_agent_window(
        "escape_from_the_human_in_the_agents_window_ends_the_task_as_interrupted",
        "solo",
        "Escape",
        "the human interrupted",
    );
}

#[cfg_attr(
    missing_claude,
    ignore = "needs Claude Code and tmux: see README, Tests"
)]
#[test]
fn an_interrupt_without_a_hook_is_caught_by_the_session_registry() {
    // Ctrl-C, not a lone Escape: only Claude Code's registry can tell the turn ended.
    interrupted_from_the_agent_window(
        "an_interrupt_without_a_hook_is_caught_by_the_session_registry",
        "guard",
        "C-c",
        "interrupted",
    );
}

#[cfg_attr(
    missing_claude,
    ignore = "needs Claude Code and tmux: see README, Tests"
)]
#[test]
fn streamed_output_reaches_the_log_and_a_clear_is_followed_to_the_new_session() {
    let env = Env::new();
    let Some(agent) = host_agent(
        "streamed_output_reaches_the_log_and_a_clear_is_followed_to_the_new_session",
        &env,
        "scribe",
    ) else {
        return;
    };
    let (_, after) = env.run_hook(b"@scribe write something");
    let (head, _) = head_and_body(&after);
    let id = head
        .split("task ")
        .nth(1)
        .unwrap()
        .split(' ')
        .next()
        .unwrap();
    // MessageDisplay hooks may land just after the answer: wait for the text.
    let log_path = env.state.join("tasks").join(id).join("output.log");
    wait_until(CLAUDE_WAIT, "the streamed text in output.log", || {
        std::fs::read_to_string(&log_path)
            .ok()
            .filter(|l| l.contains("FAKE-REPLY: write something"))
    });

    let before = env.status("scribe").unwrap()["claude_session_id"].clone();
    agent.tmux.send_literal(&agent.pane, "/clear");
    agent.tmux.send_keys(&agent.pane, &["Enter"]);
    let after = env.wait_status("scribe", "idle", |s| s["claude_session_id"] != before);
    assert!(after["claude_session_id"].is_string());
}

#[cfg_attr(
    missing_claude,
    ignore = "needs Claude Code and tmux: see README, Tests"
)]
#[test]
fn a_held_task_goes_in_once_the_human_clears_their_draft() {
    let env = Env::new();
    let Some(agent) = host_agent(
        "a_held_task_goes_in_once_the_human_clears_their_draft",
        &env,
        "desk",
    ) else {
        return;
    };
    agent.tmux.send_literal(&agent.pane, "a thought I drop");
    agent
        .tmux
        .wait_for_screen(&agent.pane, |s| s.contains("a thought I drop"), CLAUDE_WAIT)
        .unwrap();
    let (mut hook, file) = env.spawn_hook(b"@desk the real task");
    env.wait_status("desk", "user", |_| true);
    // Two Escapes clear a non-empty box (docs/claude-code.md#box-escape-clears); no hook reports it.
    agent.tmux.send_keys(&agent.pane, &["Escape"]);
    agent.tmux.send_keys(&agent.pane, &["Escape"]);
    assert!(wait_child(&mut hook, CLAUDE_WAIT, "the held task").success());
    assert_eq!(
        text(&head_and_body(&std::fs::read(file).unwrap()).1),
        "FAKE-REPLY: the real task"
    );
    assert_eq!(
        agent.sandbox.api.prompts(),
        ["the real task"],
        "the dropped draft was never sent"
    );
}

#[cfg_attr(
    missing_claude,
    ignore = "needs Claude Code and tmux: see README, Tests"
)]
#[test]
fn an_interrupted_human_turn_frees_the_agent_for_the_next_task() {
    let env = Env::new();
    let Some(agent) = host_agent(
        "an_interrupted_human_turn_frees_the_agent_for_the_next_task",
        &env,
        "mine",
    ) else {
        return;
    };
    slow_on_marker(&agent);
    agent
        .tmux
        .send_literal(&agent.pane, "[[slow]] my own long question");
    agent.tmux.send_keys(&agent.pane, &["Enter"]);
    agent
        .sandbox
        .api
        .wait_for_prompt(|p| p.contains("my own long question"), CLAUDE_WAIT)
        .expect("the human's prompt");
    env.wait_status("mine", "working", |_| true);
    // Escape ends the human's turn with no hook; the registry tells. With no output yet,
    // Claude Code puts the human's prompt back into the box (docs/claude-code.md#box-escape-interrupts): their draft.
    agent.tmux.send_keys(&agent.pane, &["Escape"]);
    let (mut hook, file) = env.spawn_hook(b"@mine a task after that");
    env.wait_status("mine", "user", |_| true);
    // The probe that found the draft left it with exit 0 and the file untouched: no
    // "quit unexpectedly" notice in the agent's window (docs/claude-code.md#editor-exit-notices).
    let notice = agent.tmux.wait_for_screen(
        &agent.pane,
        |s| s.contains("quit unexpectedly"),
        Duration::from_secs(4),
    );
    assert!(notice.is_err(), "{}", notice.unwrap_or_default());
    assert!(
        agent
            .tmux
            .capture(&agent.pane)
            .contains("my own long question")
    );
    agent.tmux.send_keys(&agent.pane, &["Escape"]);
    agent.tmux.send_keys(&agent.pane, &["Escape"]);
    assert!(wait_child(&mut hook, CLAUDE_WAIT, "the held task").success());
    let after = std::fs::read(file).unwrap();
    assert!(
        text(&after).contains("FAKE-REPLY: a task after that"),
        "{}",
        text(&after)
    );
}

#[cfg_attr(
    missing_claude,
    ignore = "needs Claude Code and tmux: see README, Tests"
)]
#[test]
fn a_task_sent_while_claude_restarts_waits_for_it() {
    let env = Env::new();
    let Some(agent) = host_agent(
        "a_task_sent_while_claude_restarts_waits_for_it",
        &env,
        "patient",
    ) else {
        return;
    };
    let host = env.status("patient").unwrap()["pid"].as_u64().unwrap() as u32;
    kill(children(host)[0]);
    env.wait_status("patient", "starting", |_| true);
    let (out, after) = env.run_hook(b"@patient are you back");
    assert_eq!(out.status.code(), Some(0));
    assert!(
        text(&after).contains("FAKE-REPLY: are you back"),
        "{}\n{}",
        text(&after),
        agent.tmux.capture(&agent.pane)
    );
}

#[cfg_attr(
    missing_claude,
    ignore = "needs Claude Code and tmux: see README, Tests"
)]
#[test]
fn an_agent_behind_the_trust_dialog_shows_waiting_with_the_reason() {
    let test = "an_agent_behind_the_trust_dialog_shows_waiting_with_the_reason";
    let Some(claude) = require_claude(test) else {
        return;
    };
    require_tmux(test).unwrap();
    let env = Env::new();
    let sandbox = ClaudeSandbox::new();
    // A directory the sandbox's ~/.claude.json does not trust.
    let elsewhere = sandbox.path().join("untrusted");
    std::fs::create_dir_all(&elsewhere).unwrap();
    let mut vars = sandbox.env();
    vars.push(("CLAUDE_AGENTS_DIR".into(), env.state.display().to_string()));
    let mut tmux = TmuxServer::new();
    let cmd = vec![
        WRAP.to_owned(),
        "newbie".into(),
        "--claude".into(),
        claude.display().to_string(),
    ];
    let pane = tmux.new_session("agent", &elsewhere, &vars, &cmd);
    let status = env.wait_status("newbie", "waiting", |s| s["waiting_for"].is_string());
    let real = std::fs::canonicalize(&elsewhere).unwrap();
    let why = status["waiting_for"].as_str().unwrap();
    assert!(
        why.contains(&format!("the trust dialog for {}", real.display())),
        "{why}"
    );
    // It is what the screen shows.
    tmux.wait_for_screen(&pane, |s| s.contains("trust"), CLAUDE_WAIT)
        .unwrap();
    let out = crate::helper::wait::output_with_timeout(env.cmd(HOOK).arg("status"), SECS);
    assert!(
        text(&out.stdout).contains("@newbie waits for the trust dialog"),
        "{}",
        text(&out.stdout)
    );
}
