//! `agent-wrap NAME` hosting the real Claude Code (in a private tmux server, offline
//! against the fake Messages API): delivery, answers, context, errors.

use std::time::Duration;

use crate::fixture::*;
use crate::helper::claude::{ClaudeSandbox, require_claude};
use crate::helper::fake_api::{Reply, RequestKind};
use crate::helper::tmux::{TmuxServer, require_tmux};
use crate::helper::wait::wait_until;

const CLAUDE_WAIT: Duration = Duration::from_secs(60);

pub struct HostedAgent {
    pub tmux: TmuxServer,
    pub pane: String,
    pub sandbox: ClaudeSandbox,
}

/// Starts `agent-wrap NAME` hosting Claude Code in a tmux pane and waits until Claude
/// Code has started (its SessionStart hook made the agent idle).
pub fn host_agent(test: &str, env: &Env, name: &str) -> Option<HostedAgent> {
    let claude = require_claude(test)?;
    require_tmux(test)?;
    let sandbox = ClaudeSandbox::new();
    let mut vars = sandbox.env();
    vars.push(("CLAUDE_AGENTS_DIR".into(), env.state.display().to_string()));
    let mut tmux = TmuxServer::new();
    let cmd = vec![
        WRAP.to_owned(),
        name.to_owned(),
        "--claude".into(),
        claude.display().to_string(),
    ];
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
    Some(HostedAgent {
        tmux,
        pane,
        sandbox,
    })
}

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
    let status = env.status("planner").unwrap();
    assert_eq!(status["status"], "idle");
    assert!(status["claude_session_id"].is_string());
}

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

    // A task that starts with `/` stays a prompt: it arrives with one leading space.
    let (_, after) = env.run_hook(b"@coder /compact is not meant here");
    assert!(
        text(&after).contains("FAKE-REPLY:  /compact is not meant here"),
        "{}",
        text(&after)
    );

    // As Claude Code writes a prompt file: no trailing newline (facts 1.2). Claude Code
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
