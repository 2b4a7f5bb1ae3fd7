//! Token counts of a hosted Claude Code (issue 14): per task in `usage.json`, from the
//! transcript, and per agent in `status.json` and `status --json`, checked against what
//! the fake API reported; and the cost Claude Code reports, per agent.

use std::time::Duration;

use crate::e2e_agent::host_agent;
use crate::fixture::*;
use crate::helper::fake_api::{Reply, Usage};
use crate::helper::wait::{output_with_timeout, wait_until};

const CLAUDE_WAIT: Duration = Duration::from_secs(60);

#[cfg_attr(
    missing_claude,
    ignore = "needs Claude Code and tmux: see README, Tests"
)]
#[test]
fn each_task_records_the_tokens_the_api_reported_and_the_agent_sums_them() {
    let env = Env::new();
    let Some(agent) = host_agent(
        "each_task_records_the_tokens_the_api_reported_and_the_agent_sums_them",
        &env,
        "counter",
    ) else {
        return;
    };
    agent.sandbox.api.set_usage(Usage {
        input_tokens: 111,
        output_tokens: 22,
        cache_creation_input_tokens: 333,
        cache_read_input_tokens: 444,
    });
    let mut ids = Vec::new();
    for (n, reply) in [
        Reply::Text("one answer".into()),
        // A tool call: two API messages in one turn, each counted once.
        Reply::BashToolUse {
            command: "echo counted".into(),
        },
    ]
    .into_iter()
    .enumerate()
    {
        agent.sandbox.api.set_reply(move |_| reply.clone());
        let (out, after) = env.run_hook(format!("@counter task {n}").as_bytes());
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
        let id = text(&after)
            .split("task ")
            .nth(1)
            .unwrap()
            .split(' ')
            .next()
            .unwrap()
            .to_owned();
        ids.push(id);
    }
    let usage = |id: &str| {
        let path = env.state.join("tasks").join(id).join("usage.json");
        wait_until(CLAUDE_WAIT, "usage.json", || {
            serde_json::from_slice::<serde_json::Value>(&std::fs::read(&path).ok()?).ok()
        })
    };
    // The hosted Claude Code acknowledged each delivery (its UserPromptSubmit), in the
    // event log between the delivery and the end.
    let out = output_with_timeout(env.cmd(HOOK).args(["events", "--json"]), SECS);
    let kinds: Vec<String> = text(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|e| e["task"] == ids[0].as_str() && e["kind"] != "agent_status")
        .map(|e| e["kind"].as_str().unwrap_or("").to_owned())
        .collect();
    assert_eq!(
        kinds,
        [
            "task_queued",
            "task_delivered",
            "task_acknowledged",
            "task_finished"
        ],
        "{}",
        text(&out.stdout)
    );
    let first = usage(&ids[0]);
    assert_eq!(first["version"], 1);
    assert_eq!(first["task_id"], ids[0].as_str());
    assert_eq!(first["input_tokens"], 111, "{first}");
    assert_eq!(first["output_tokens"], 22, "{first}");
    assert_eq!(first["cache_creation_input_tokens"], 333, "{first}");
    assert_eq!(first["cache_read_input_tokens"], 444, "{first}");
    let second = usage(&ids[1]);
    assert_eq!(second["input_tokens"], 222, "two messages: {second}");
    assert_eq!(second["output_tokens"], 44, "{second}");
    assert_eq!(second["cache_read_input_tokens"], 888, "{second}");
    // The agent's running totals.
    let status = wait_until(CLAUDE_WAIT, "the totals in status --json", || {
        let out = output_with_timeout(env.cmd(HOOK).args(["status", "--json"]), SECS);
        let doc: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
        let tokens = doc["agents"][0]["tokens"].clone();
        (tokens["input_tokens"] == 333).then_some(tokens)
    });
    assert_eq!(status["output_tokens"], 66, "{status}");
    assert_eq!(status["cache_creation_input_tokens"], 999, "{status}");
    assert_eq!(status["cache_read_input_tokens"], 1332, "{status}");
    assert_eq!(env.status("counter").unwrap()["tokens"], status);

    // The cost Claude Code reports for the session (its status line,
    // docs/claude-code.md#status-line-cost): in status --json, and under the agent's box.
    let cost = wait_until(CLAUDE_WAIT, "a cost in status --json", || {
        let out = output_with_timeout(env.cmd(HOOK).args(["status", "--json"]), SECS);
        let doc: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
        doc["agents"][0]["cost_usd"].as_f64().filter(|c| *c > 0.0)
    });
    let screen = wait_until(CLAUDE_WAIT, "the agent's status line", || {
        let screen = agent.tmux.capture(&agent.pane);
        screen.contains("agent counter · $").then_some(screen)
    });
    eprintln!("cost {cost}; screen:\n{screen}");
    // A third task costs more: the figure is the session's, as Claude Code adds it up.
    agent.sandbox.api.set_reply(|_| Reply::Text("three".into()));
    let (out, _) = env.run_hook(b"@counter task 2");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    wait_until(CLAUDE_WAIT, "a higher cost", || {
        let s = env.status("counter")?;
        s["cost_usd"].as_f64().filter(|c| *c > cost)
    });
}
