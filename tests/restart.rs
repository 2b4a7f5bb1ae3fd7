//! `up --restart` (`agent-wrap --restart`, src/restart/) in a real tmux server: a host
//! killed with SIGKILL comes back in the same window under the same name and takes
//! tasks; a stop on purpose (`kill NAME`) ends the window; without `--restart` nothing
//! comes back.
// See: issue 10, item 7 ("`up` restarts an agent window that has died, if asked").

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::Value;

use crate::fixture::*;
use crate::helper::tmux::{TmuxServer, require_tmux};
use crate::helper::wait::{output_with_timeout, wait_until};

/// A team config with one exec agent `w` that echoes its task, in `env`'s directory.
fn exec_team(env: &Env) -> std::path::PathBuf {
    let config_home = env.dir.path().join("config");
    std::fs::create_dir_all(config_home.join("claude-editor-hook")).unwrap();
    std::fs::write(
        config_home.join("claude-editor-hook/config.toml"),
        "[[agent]]\nname = \"w\"\ndriver = \"exec\"\ncommand = 'cat'\n",
    )
    .unwrap();
    config_home
}

/// `up --no-chief --no-attach` (plus `extra`) on `tmux`'s server, with `config_home`.
fn up(env: &Env, tmux: &TmuxServer, config_home: &std::path::Path, extra: &[&str]) -> String {
    let mut cmd = env.cmd(HOOK);
    cmd.env("XDG_CONFIG_HOME", config_home)
        .args(["up", "--no-chief", "--no-attach", "--tmux-socket"])
        .arg(tmux.socket())
        .args(extra);
    let out = output_with_timeout(&mut cmd, SECS);
    assert!(out.status.success(), "{}", text(&out.stderr));
    text(&out.stdout)
}

/// The program in window `w` has ended: the window is gone, or (with `remain-on-exit`)
/// its pane is dead.
fn window_ended(tmux: &TmuxServer) -> bool {
    let out = tmux.try_run(&["list-panes", "-t", "=Claude:w", "-F", "#{pane_dead}"]);
    !out.status.success() || text(&out.stdout).trim() == "1"
}

fn events(env: &Env) -> Vec<Value> {
    std::fs::read_to_string(env.state.join("events/events.jsonl"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

fn sigkill(pid: &Value) {
    let pid = Pid::from_raw(pid.as_i64().unwrap() as i32);
    kill(pid, Signal::SIGKILL).unwrap();
}

#[cfg_attr(missing_tmux, ignore = "needs tmux: see README, Tests")]
#[test]
fn up_restart_brings_a_killed_agent_back_in_its_window_and_kill_ends_it() {
    let test = "up_restart_brings_a_killed_agent_back_in_its_window_and_kill_ends_it";
    if require_tmux(test).is_none() {
        return;
    }
    let env = Env::new();
    let tmux = TmuxServer::new();
    let config_home = exec_team(&env);
    let said = up(&env, &tmux, &config_home, &["--restart"]);
    assert!(said.contains("@w: started in Claude:w"), "{said}");
    let first = env.wait_status("w", "idle", |_| true);
    let answer = output_with_timeout(env.cmd(HOOK).args(["send", "w", "before"]), SECS);
    assert_eq!(text(&answer.stdout), "before");

    sigkill(&first["pid"]);
    // A new host, in the same pane, under the same name, that knows it is a restart.
    let second = env.wait_status("w", "idle", |s| s["pid"] != first["pid"]);
    assert_eq!(second["tmux"]["pane"], first["tmux"]["pane"], "{second}");
    assert_eq!(
        second["restarted"],
        serde_json::json!({"count": 1, "after": "killed by SIGKILL"})
    );
    let answer = output_with_timeout(env.cmd(HOOK).args(["send", "w", "after"]), SECS);
    assert!(answer.status.success(), "{}", text(&answer.stderr));
    assert_eq!(text(&answer.stdout), "after");
    // One line in the window, and the event in the log.
    let screen = tmux.run(&["capture-pane", "-p", "-J", "-S", "-", "-t", "=Claude:w"]);
    assert!(
        screen.contains(
            "agent-wrap @w crashed (killed by SIGKILL); restarting it in 500ms \
             (restart 1 of at most 5 within a minute)"
        ),
        "{screen}"
    );
    let crashed: Vec<Value> = events(&env)
        .into_iter()
        .filter(|e| e["kind"] == "agent_crashed")
        .collect();
    assert_eq!(crashed.len(), 1, "{crashed:?}");
    assert_eq!(crashed[0]["agent"], "w");
    assert_eq!(crashed[0]["how"], "killed by SIGKILL");
    assert_eq!(crashed[0]["restart"], 1);

    // `kill NAME` is a stop on purpose: the window ends, and nothing comes back.
    let out = output_with_timeout(env.cmd(HOOK).args(["kill", "w"]), SECS);
    assert!(out.status.success(), "{}", text(&out.stderr));
    wait_until(SECS, "window w to end", || {
        window_ended(&tmux).then_some(())
    });
    let last = env.wait_status("w", "offline", |_| true);
    assert_eq!(last["pid"], second["pid"]);
    assert_eq!(
        events(&env)
            .iter()
            .filter(|e| e["kind"] == "agent_crashed")
            .count(),
        1
    );
}

#[cfg_attr(missing_tmux, ignore = "needs tmux: see README, Tests")]
#[test]
fn without_restart_a_killed_agent_stays_down() {
    let test = "without_restart_a_killed_agent_stays_down";
    if require_tmux(test).is_none() {
        return;
    }
    let env = Env::new();
    let tmux = TmuxServer::new();
    let config_home = exec_team(&env);
    up(&env, &tmux, &config_home, &[]);
    let first = env.wait_status("w", "idle", |_| true);
    sigkill(&first["pid"]);
    // The window's program was the host itself: it is gone, and no supervisor is left.
    wait_until(SECS, "window w to end", || {
        window_ended(&tmux).then_some(())
    });
    let out = output_with_timeout(env.cmd(HOOK).args(["send", "w", "anyone?"]), SECS);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("offline"),
        "{}",
        text(&out.stderr)
    );
    assert!(
        !events(&env).iter().any(|e| e["kind"] == "agent_crashed"),
        "no supervisor, no crash record"
    );
}

#[cfg_attr(missing_tmux, ignore = "needs tmux: see README, Tests")]
#[test]
fn the_config_can_ask_for_restarts_and_a_host_that_cannot_start_is_not_restarted() {
    let test = "the_config_can_ask_for_restarts_and_a_host_that_cannot_start_is_not_restarted";
    if require_tmux(test).is_none() {
        return;
    }
    let env = Env::new();
    let tmux = TmuxServer::new();
    let config_home = exec_team(&env);
    let file = config_home.join("claude-editor-hook/config.toml");
    let config = std::fs::read_to_string(&file).unwrap();
    std::fs::write(&file, format!("restart = true\n{config}")).unwrap();
    up(&env, &tmux, &config_home, &[]);
    let first = env.wait_status("w", "idle", |_| true);
    sigkill(&first["pid"]);
    env.wait_status("w", "idle", |s| s["pid"] != first["pid"]);

    // A second `agent-wrap w --restart` finds the name taken: its host cannot start,
    // and a restart would fail the same way.
    let mut second = env.cmd(WRAP);
    second.args(["w", "--restart", "--exec", "cat"]);
    let out = output_with_timeout(&mut second, SECS);
    assert_eq!(out.status.code(), Some(1));
    let said = text(&out.stdout) + &text(&out.stderr);
    assert!(said.contains("already hosted by agent-wrap pid"), "{said}");
    assert!(
        said.contains("agent-wrap @w could not start (exit status 1); not restarting it"),
        "{said}"
    );
}

#[cfg_attr(
    missing_claude,
    ignore = "needs Claude Code and tmux: see README, Tests"
)]
#[test]
fn a_restarted_claude_code_agent_comes_back_with_its_conversation() {
    use crate::helper::claude::{ClaudeSandbox, require_claude};
    use crate::helper::fake_api::RequestKind;
    let test = "a_restarted_claude_code_agent_comes_back_with_its_conversation";
    let Some(claude) = require_claude(test) else {
        return;
    };
    if require_tmux(test).is_none() {
        return;
    }
    let env = Env::new();
    let sandbox = ClaudeSandbox::new();
    let tmux = TmuxServer::new();
    let config = sandbox.path().join("config.toml");
    std::fs::write(&config, "[[agent]]\nname = \"keeper\"\n").unwrap();
    let out = crate::up::claude_up(
        &env,
        &sandbox,
        &tmux,
        &config,
        &claude,
        &["--no-chief", "--restart"],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let wait = std::time::Duration::from_secs(60);
    let idle = |not_pid: &Value| {
        wait_until(wait, "the hosted Claude Code to be idle", || {
            env.status("keeper")
                .filter(|s| s["status"] == "idle" && s["pid"] != *not_pid)
        })
    };
    let first = idle(&Value::Null);
    let (_, after) = env.run_hook(b"@keeper remember the word teal");
    assert!(
        text(&after).contains("FAKE-REPLY: remember the word teal"),
        "{}",
        text(&after)
    );
    // Claude Code writes its transcript after the turn: a host killed before that
    // leaves nothing to resume (docs/claude-code.md#transcript).
    let session = env.status("keeper").unwrap()["claude_session_id"].clone();
    crate::e2e_agent::wait_transcript_in(
        &sandbox,
        session.as_str().unwrap(),
        "FAKE-REPLY: remember the word teal",
    );

    sigkill(&first["pid"]);
    let second = idle(&first["pid"]);
    assert_eq!(second["tmux"]["pane"], first["tmux"]["pane"]);
    assert_eq!(second["claude_session_id"], first["claude_session_id"]);
    let (_, after) = env.run_hook(b"@keeper which word?");
    assert!(
        text(&after).contains("FAKE-REPLY: which word?"),
        "{}",
        text(&after)
    );
    // The restarted host resumed the conversation: the new turn carries the old one.
    assert!(
        sandbox
            .api
            .requests()
            .iter()
            .any(|r| r.kind == RequestKind::Prompt
                && r.prompt == "which word?"
                && r.n_role("assistant") >= 1),
        "the second turn went out without the first"
    );
}

#[cfg_attr(missing_tmux, ignore = "needs tmux: see README, Tests")]
#[test]
fn a_closed_window_and_down_are_stops_on_purpose_for_a_restart_team() {
    let test = "a_closed_window_and_down_are_stops_on_purpose_for_a_restart_team";
    if require_tmux(test).is_none() {
        return;
    }
    let env = Env::new();
    let tmux = TmuxServer::new();
    let config_home = env.dir.path().join("config");
    std::fs::create_dir_all(config_home.join("claude-editor-hook")).unwrap();
    std::fs::write(
        config_home.join("claude-editor-hook/config.toml"),
        "restart = true\n[[agent]]\nname = \"a\"\ndriver = \"exec\"\ncommand = 'sleep 600'\n\n\
         [[agent]]\nname = \"b\"\ndriver = \"exec\"\ncommand = 'cat'\n",
    )
    .unwrap();
    up(&env, &tmux, &config_home, &[]);
    env.wait_status("a", "idle", |_| true);
    env.wait_status("b", "idle", |_| true);
    let (mut hook, file) = env.spawn_hook(b"@a a long job");
    env.wait_status("a", "working", |_| true);
    // tmux closes the pane's terminal: SIGHUP to the supervisor, passed on to the host.
    tmux.run(&["kill-window", "-t", "=Claude:a"]);
    assert!(wait_child(&mut hook, SECS, "the coordinator").success());
    let head = head_and_body(&std::fs::read(file).unwrap()).0;
    assert!(head.contains("agent-wrap received SIGHUP"), "{head}");
    env.wait_status("a", "offline", |_| true);

    let mut down = env.cmd(HOOK);
    down.env("XDG_CONFIG_HOME", &config_home)
        .args(["down", "--tmux-socket"])
        .arg(tmux.socket());
    let out = output_with_timeout(&mut down, SECS);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("stopped @b"),
        "{}",
        text(&out.stdout)
    );
    env.wait_status("b", "offline", |_| true);
    assert!(
        !events(&env).iter().any(|e| e["kind"] == "agent_crashed"),
        "{:?}",
        events(&env)
    );
}
