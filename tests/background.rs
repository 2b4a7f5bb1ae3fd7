//! Background delegation (`@NAME&`), the chief's outbox, `@results` and `results`.

use std::fs;
use std::time::Instant;

use crate::fixture::*;
use crate::helper::wait::output_with_timeout;

/// Runs editor mode on `content` as chief `chief`; returns the file after.
fn as_chief(env: &Env, chief: &str, content: &[u8]) -> Vec<u8> {
    let file = env.prompt_file(content);
    let mut cmd = env.cmd(HOOK);
    cmd.env("CLAUDE_EDITOR_HOOK_CHIEF_ID", chief).arg(&file);
    let out = output_with_timeout(&mut cmd, SECS);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    fs::read(file).unwrap()
}

#[test]
fn a_background_task_returns_a_ticket_and_its_answer_comes_once_with_results() {
    let env = Env::new();
    let gate = env.dir.path().join("gate");
    nix::unistd::mkfifo(&gate, nix::sys::stat::Mode::S_IRWXU).unwrap();
    let cmd = format!("cat '{}' >/dev/null; echo bg-answer", gate.display());
    let _agent = env.agent("bg", &["--exec", &cmd]);

    let t = Instant::now();
    let ticket = text(&as_chief(&env, "chief-1", b"@bg& watch the build"));
    assert!(
        t.elapsed() < std::time::Duration::from_secs(5),
        "the ticket must come at once"
    );
    assert!(
        ticket.starts_with("[@bg · task ") && ticket.contains("in the background"),
        "{ticket}"
    );
    let id = ticket
        .split("task ")
        .nth(1)
        .unwrap()
        .split(' ')
        .next()
        .unwrap()
        .to_owned();
    // The coordinator is gone, yet the agent works on it.
    env.wait_status("bg", "working", |s| s["task"]["id"] == id.as_str());

    let early = text(&as_chief(&env, "chief-1", b"@results"));
    assert!(
        early.starts_with("[claude-editor-hook] no background results yet (1 still running)"),
        "{early}"
    );
    let status = output_with_timeout(env.cmd(HOOK).args(["status", "--json"]), SECS);
    let status: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(status["background"][0]["state"], "running", "{status}");
    assert_eq!(status["background"][0]["chief"], "chief-1");

    drop(fs::File::create(&gate).unwrap());
    env.wait_status("bg", "idle", |s| s["recent"][0]["id"] == id.as_str());
    assert_eq!(
        text(&as_chief(&env, "other-chief", b"@results"))
            .lines()
            .next()
            .unwrap(),
        "[claude-editor-hook] no background results yet (0 still running)",
        "another chief's results"
    );
    let results = text(&as_chief(&env, "chief-1", b"@results"));
    assert!(
        results.starts_with("[background results: 1 finished]\n\n## @bg · task "),
        "{results}"
    );
    assert!(
        results.contains("· ok · ") && results.contains("watch the build\nbg-answer"),
        "{results}"
    );
    let again = text(&as_chief(&env, "chief-1", b"@results"));
    assert!(
        again.contains("no background results yet (0 still running)"),
        "delivered twice: {again}"
    );
}

#[test]
fn results_verb_prints_json_and_reserved_names_are_refused() {
    let env = Env::new();
    let _agent = env.agent("quick", &["--exec", "echo quick-answer"]);
    as_chief(&env, "chief-2", b"@quick& hurry");
    env.wait_status("quick", "idle", |s| s["recent"][0]["outcome"] == "ok");
    let mut cmd = env.cmd(HOOK);
    cmd.env("CLAUDE_EDITOR_HOOK_CHIEF_ID", "chief-2")
        .args(["results", "--json"]);
    let out = output_with_timeout(&mut cmd, SECS);
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON document");
    assert_eq!(doc["chief"], "chief-2");
    assert_eq!(doc["results"][0]["answer"], "quick-answer\n");
    assert_eq!(doc["results"][0]["outcome"], "ok");

    for reserved in ["any", "results"] {
        let out = output_with_timeout(env.cmd(WRAP).args([reserved, "--demo"]), SECS);
        assert!(
            text(&out.stderr).contains("is reserved"),
            "{}",
            text(&out.stderr)
        );
    }
}

#[test]
fn send_background_prints_a_ticket_and_results_brings_the_answer() {
    let env = Env::new();
    let _agent = env.agent("scribe", &["--exec", "echo written"]);
    let mut send = env.cmd(HOOK);
    send.env("CLAUDE_EDITOR_HOOK_CHIEF_ID", "script-chief")
        .args(["send", "scribe", "write it down", "--background"]);
    let out = output_with_timeout(&mut send, SECS);
    let ticket = text(&out.stdout);
    assert!(
        ticket.starts_with("task ") && ticket.contains("@scribe in the background"),
        "{ticket}"
    );
    env.wait_status("scribe", "idle", |s| s["recent"][0]["outcome"] == "ok");
    let mut results = env.cmd(HOOK);
    results
        .env("CLAUDE_EDITOR_HOOK_CHIEF_ID", "script-chief")
        .arg("results");
    let out = output_with_timeout(&mut results, SECS);
    let text = text(&out.stdout);
    assert!(
        text.starts_with("[background results: 1 finished]") && text.contains("written"),
        "{text}"
    );
}

#[test]
fn results_are_findable_from_any_shell_by_chief_or_ticket() {
    let env = Env::new();
    let _agent = env.agent("bg", &["--exec", "cat"]);
    let as_shell = |shell: &str, args: &[&str]| {
        let mut cmd = env.cmd(HOOK);
        cmd.env("CLAUDE_EDITOR_HOOK_CHIEF_ID", shell).args(args);
        let out = output_with_timeout(&mut cmd, SECS);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{args:?}: {}",
            text(&out.stderr)
        );
        text(&out.stdout)
    };
    let ticket = as_shell("shell-a", &["send", "bg", "from shell a", "--background"]);
    assert!(
        ticket.contains("results --chief shell-a") && ticket.contains("--ticket"),
        "{ticket}"
    );
    let id = ticket.split_whitespace().nth(1).unwrap().to_owned();
    let done = env.state.join("tasks").join(&id).join("done.json");
    crate::helper::wait::wait_until(SECS, "the task", || done.exists().then_some(()));

    // Another shell: nothing of its own, and it is told whose results wait.
    let other = as_shell("shell-b", &["results"]);
    assert!(
        other.contains("no background results yet") && other.contains("shell-a (1)"),
        "{other}"
    );
    let status = as_shell("shell-b", &["status"]);
    assert!(status.contains("results --chief shell-a"), "{status}");
    let fetched = as_shell("shell-b", &["results", "--chief", "shell-a"]);
    assert!(fetched.contains("from shell a"), "{fetched}");

    // A ticket for a named chief, fetched by its id alone.
    let ticket = as_shell(
        "shell-b",
        &["send", "bg", "for c9", "--background", "--chief", "c9"],
    );
    let id = ticket.split_whitespace().nth(1).unwrap().to_owned();
    let done = env.state.join("tasks").join(&id).join("done.json");
    crate::helper::wait::wait_until(SECS, "the task", || done.exists().then_some(()));
    let one = as_shell("shell-z", &["results", "--ticket", &id]);
    assert!(one.contains("for c9"), "{one}");
    let mut again = env.cmd(HOOK);
    again.args(["results", "--ticket", &id]);
    let again = output_with_timeout(&mut again, SECS);
    assert_eq!(again.status.code(), Some(1));
    assert!(
        text(&again.stderr).contains("delivered already"),
        "{}",
        text(&again.stderr)
    );
}
