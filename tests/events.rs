//! The event log (src/events/, docs/team-view.md): the events of a round trip, a
//! fan-out and a background task, complete and in order, and `events --follow`.

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::fixture::*;
use crate::helper::wait::{output_with_timeout, wait_until};

/// Every event of the log, through `events --json`.
fn events(env: &Env) -> Vec<Value> {
    let out = output_with_timeout(env.cmd(HOOK).args(["events", "--json"]), SECS);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    text(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

/// The kinds of the events about task `id`, in log order.
fn kinds_of_task(events: &[Value], id: &str) -> Vec<String> {
    events
        .iter()
        .filter(|e| e["task"] == id && e["kind"] != "agent_status")
        .map(|e| e["kind"].as_str().unwrap().to_owned())
        .collect()
}

/// The statuses agent `name` went through, in log order.
fn statuses(events: &[Value], name: &str) -> Vec<String> {
    events
        .iter()
        .filter(|e| e["kind"] == "agent_status" && e["agent"] == name)
        .map(|e| e["status"].as_str().unwrap().to_owned())
        .collect()
}

fn task_ids(events: &[Value], agent: &str) -> Vec<String> {
    events
        .iter()
        .filter(|e| e["kind"] == "task_queued" && e["agent"] == agent)
        .map(|e| e["task"].as_str().unwrap().to_owned())
        .collect()
}

/// Waits until the log has an event for which `f` holds, and returns the log.
fn wait_event(env: &Env, what: &str, f: impl Fn(&Value) -> bool) -> Vec<Value> {
    wait_until(SECS, what, || {
        let all = events(env);
        all.iter().any(&f).then_some(all)
    })
}

#[test]
fn a_round_trip_logs_queued_delivered_finished_and_the_agent_s_statuses_in_order() {
    let env = Env::new();
    let _a = env.agent("alice", &["--exec", "echo answer"]);
    let (out, after) = env.run_hook(b"@alice say it");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(text(&after).contains("answer"));
    let all = wait_event(&env, "alice idle again", |e| {
        e["kind"] == "agent_status" && e["status"] == "idle" && e["task"].is_null()
    });
    let ids = task_ids(&all, "alice");
    assert_eq!(ids.len(), 1, "{all:#?}");
    assert_eq!(
        kinds_of_task(&all, &ids[0]),
        ["task_queued", "task_delivered", "task_finished"]
    );
    let finished = all.iter().find(|e| e["kind"] == "task_finished").unwrap();
    assert_eq!(finished["outcome"], "ok");
    assert_eq!(finished["agent"], "alice");
    assert_eq!(finished["title"], "say it");
    assert_eq!(finished["finished_by"], "agent");
    let queued = all.iter().find(|e| e["kind"] == "task_queued").unwrap();
    assert_eq!(queued["background"], false);
    assert_eq!(
        statuses(&all, "alice"),
        ["starting", "idle", "working", "idle"]
    );
    // Every line carries its version and time, in order.
    let times: Vec<u64> = all.iter().map(|e| e["at_us"].as_u64().unwrap()).collect();
    assert!(all.iter().all(|e| e["version"] == 1));
    assert!(times.windows(2).all(|w| w[0] <= w[1]), "{times:?}");
    // The human form names the agent, the task and the outcome.
    let human = output_with_timeout(env.cmd(HOOK).arg("events"), SECS);
    let human = text(&human.stdout);
    assert!(
        human.contains(&format!("@alice task {} ok: say it", ids[0])),
        "{human}"
    );
}

#[test]
fn a_fan_out_logs_every_target_s_task_completely() {
    let env = Env::new();
    let _good = env.agent("good", &["--exec", "cat"]);
    let _bad = env.agent("bad", &["--exec", "echo 'no way' >&2; exit 2"]);
    let (out, _) = env.run_hook(b"@good @bad review this");
    assert_eq!(out.status.code(), Some(0));
    let all = wait_until(SECS, "two finished tasks", || {
        let all = events(&env);
        let n = all.iter().filter(|e| e["kind"] == "task_finished").count();
        (n == 2).then_some(all)
    });
    for (agent, outcome) in [("good", "ok"), ("bad", "failed")] {
        let ids = task_ids(&all, agent);
        assert_eq!(ids.len(), 1, "{agent}: {all:#?}");
        assert_eq!(
            kinds_of_task(&all, &ids[0]),
            ["task_queued", "task_delivered", "task_finished"],
            "{agent}"
        );
        let end = all
            .iter()
            .find(|e| e["kind"] == "task_finished" && e["task"] == ids[0].as_str())
            .unwrap();
        assert_eq!(end["outcome"], outcome, "{end}");
    }
    let bad_end = all
        .iter()
        .find(|e| e["kind"] == "task_finished" && e["agent"] == "bad")
        .unwrap();
    assert_eq!(
        bad_end["reason"],
        "the command exited with status 2: no way"
    );
}

#[test]
fn a_background_task_logs_its_delivery_to_the_chief_last() {
    let env = Env::new();
    let _bg = env.agent("bg", &["--exec", "echo bg-answer"]);
    let out = output_with_timeout(
        env.cmd(HOOK)
            .env("CLAUDE_EDITOR_HOOK_CHIEF_ID", "chief-1")
            .args(["send", "--background", "bg", "watch the build"]),
        SECS,
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    wait_event(&env, "the background task to finish", |e| {
        e["kind"] == "task_finished"
    });
    let out = output_with_timeout(
        env.cmd(HOOK)
            .env("CLAUDE_EDITOR_HOOK_CHIEF_ID", "chief-1")
            .arg("results"),
        SECS,
    );
    assert!(
        text(&out.stdout).contains("bg-answer"),
        "{}",
        text(&out.stdout)
    );
    let all = events(&env);
    let ids = task_ids(&all, "bg");
    assert_eq!(ids.len(), 1);
    assert_eq!(
        kinds_of_task(&all, &ids[0]),
        [
            "task_queued",
            "task_delivered",
            "task_finished",
            "result_delivered"
        ]
    );
    let queued = &all.iter().find(|e| e["kind"] == "task_queued").unwrap();
    assert_eq!(queued["background"], true);
    let delivered = all
        .iter()
        .find(|e| e["kind"] == "result_delivered")
        .unwrap();
    assert_eq!(delivered["chief"], "chief-1");
    assert_eq!(delivered["agent"], "bg");
    // `--since` keeps only what is newer.
    let out = output_with_timeout(
        env.cmd(HOOK).args(["events", "--json", "--since", "1h"]),
        SECS,
    );
    assert_eq!(text(&out.stdout).lines().count(), all.len());
    let later = all.last().unwrap()["at_us"].as_u64().unwrap() + 1;
    let out = output_with_timeout(
        env.cmd(HOOK)
            .args(["events", "--json", "--since", &later.to_string()]),
        SECS,
    );
    assert_eq!(text(&out.stdout), "");
}

#[test]
fn board_verbs_log_one_event_each() {
    let env = Env::new();
    let board = |args: &[&str]| {
        let out = output_with_timeout(
            env.cmd(HOOK).args(["board", "--board", "b"]).args(args),
            SECS,
        );
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    };
    board(&["init", "a goal"]);
    board(&["add", "first"]);
    board(&["claim", "w"]);
    board(&["--worker", "w", "done", "t1", "fine"]);
    let verbs: Vec<String> = events(&env)
        .iter()
        .filter(|e| e["kind"] == "board")
        .map(|e| format!("{} {}", e["verb"].as_str().unwrap(), e["task"]))
        .collect();
    assert_eq!(
        verbs,
        ["init null", "add \"t1\"", "claim \"t1\"", "done \"t1\""]
    );
}

/// `events --follow` prints a new event as soon as it is appended (an inotify watch,
/// no polling). The median of five appends must be within 50 ms.
#[test]
fn follow_sees_a_new_event_within_50_ms() {
    let env = Env::new();
    let _a = env.agent("alice", &["--exec", "echo x"]);
    let mut child = env
        .cmd(HOOK)
        .args(["events", "--follow", "--json"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    // The backlog (alice's start) shows that the watch is in place.
    let first = lines.next().unwrap().unwrap();
    assert!(first.contains("agent_status"), "{first}");
    while !lines.next().unwrap().unwrap().contains("\"idle\"") {}
    let mut delays = Vec::new();
    for n in 0..5 {
        let name = format!("task {n}");
        let t = Instant::now();
        let out = output_with_timeout(
            env.cmd(HOOK)
                .args(["board", "--board", "f"])
                .args(if n == 0 {
                    vec!["init", "g"]
                } else {
                    vec!["add", &name]
                }),
            SECS,
        );
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
        // The event was appended by the time the verb exited; from then on:
        let appended = Instant::now();
        let line = lines.next().unwrap().unwrap();
        delays.push(appended.elapsed());
        assert!(line.contains("\"kind\":\"board\""), "{line}");
        assert!(t.elapsed() < SECS);
    }
    let _ = child.kill();
    let _ = child.wait();
    delays.sort();
    assert!(
        delays[2] <= Duration::from_millis(50),
        "--follow was slow: {delays:?}"
    );
}
