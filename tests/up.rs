//! `claude-editor-hook up` with the real Claude Code as the chief, in a private tmux server.

use std::process::Command;
use std::time::Duration;

use crate::fixture::*;
use crate::helper::claude::{ClaudeSandbox, require_claude};
use crate::helper::fake_api::{Reply, default_reply};
use crate::helper::tmux::{TmuxServer, require_tmux};
use crate::helper::wait::output_with_timeout;

const CLAUDE_WAIT: Duration = Duration::from_secs(60);

/// `claude-editor-hook up --no-attach ARGS…` in `sandbox` (its environment only, its
/// project as the working directory), on `tmux`'s server, with `config` and `claude`.
pub fn claude_up(
    env: &Env,
    sandbox: &ClaudeSandbox,
    tmux: &TmuxServer,
    config: &std::path::Path,
    claude: &std::path::Path,
    args: &[&str],
) -> std::process::Output {
    let mut cmd = Command::new(HOOK);
    cmd.env_clear()
        .envs(sandbox.env())
        .env("CLAUDE_AGENTS_DIR", &env.state)
        .current_dir(sandbox.project_dir())
        .args(["up", "--no-attach", "--tmux-socket"])
        .arg(tmux.socket())
        .arg("--config")
        .arg(config)
        .arg("--claude")
        .arg(claude)
        .args(args);
    output_with_timeout(&mut cmd, SECS)
}

#[cfg_attr(
    missing_claude,
    ignore = "needs Claude Code and tmux: see README, Tests"
)]
#[test]
fn up_starts_the_chief_and_the_agents_once_and_ctrl_g_works_inside() {
    let test = "up_starts_the_chief_and_the_agents_once_and_ctrl_g_works_inside";
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
    std::fs::write(
        &config,
        "[[agent]]\nname = \"helper\"\nroles = [\"helping\"]\ndriver = \"demo\"\n",
    )
    .unwrap();
    let up = || claude_up(&env, &sandbox, &tmux, &config, &claude, &[]);
    let out = up();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout),
        format!(
            "config: {}\nchief: Claude:chief\n@helper: started in Claude:helper\nnotify: Claude:notify\n",
            config.display()
        )
    );
    let helper = env.wait_status("helper", "idle", |s| s["roles"][0] == "helping");

    let chief = "=Claude:chief";
    tmux.wait_for_screen(chief, |s| s.contains("❯"), CLAUDE_WAIT)
        .unwrap_or_else(|s| panic!("no chief:\n{s}"));
    // Shells opened in the team's session get the chief's id for background results:
    // the session id `up` gave the chief.
    let shown = tmux.run(&[
        "show-environment",
        "-t",
        "=Claude",
        "CLAUDE_EDITOR_HOOK_CHIEF_ID",
    ]);
    let chief_id = shown
        .trim()
        .strip_prefix("CLAUDE_EDITOR_HOOK_CHIEF_ID=")
        .unwrap()
        .to_owned();
    let registry = crate::helper::wait::wait_until(CLAUDE_WAIT, "the chief's registry", || {
        let dir = sandbox.home.root().join(".claude/sessions");
        std::fs::read_dir(dir)
            .ok()?
            .flatten()
            .filter_map(|e| std::fs::read_to_string(e.path()).ok())
            .find(|t| t.contains(&chief_id))
    });
    assert!(registry.contains("sessionId"), "{registry}");
    tmux.send_literal(chief, "@helping plan the launch");
    tmux.wait_for_screen(
        chief,
        |s| s.contains("@helping plan the launch"),
        CLAUDE_WAIT,
    )
    .unwrap();
    tmux.send_keys(chief, &["C-g"]);
    let sum = ceh::agent::demo::checksum(b"plan the launch");
    tmux.wait_for_screen(
        chief,
        |s| s.contains(&format!("DEMO-ANSWER {sum:016x}")),
        CLAUDE_WAIT,
    )
    .unwrap_or_else(|s| panic!("no answer in the chief's box:\n{s}"));

    // The chief has the team's tools: its model's call reaches the server `up` gave it.
    sandbox.api.set_reply(|prompt| {
        if prompt.contains("how is the team") {
            Reply::ToolUse {
                name: "mcp__team__team_status".into(),
                input: serde_json::json!({}),
            }
        } else {
            Reply::Text(default_reply(prompt))
        }
    });
    tmux.send_keys(chief, &["C-u"]);
    tmux.send_literal(chief, "how is the team");
    tmux.send_keys(chief, &["Enter"]);
    let seen = sandbox
        .api
        .wait_for_request(
            |r| {
                r.tool_results
                    .iter()
                    .any(|t| t.contains("\"name\":\"helper\""))
            },
            CLAUDE_WAIT,
        )
        .unwrap_or_else(|| {
            panic!(
                "no team_status result: {:?}",
                sandbox
                    .api
                    .requests()
                    .iter()
                    .map(|r| r.tool_results.clone())
                    .collect::<Vec<_>>()
            )
        });
    assert!(
        seen.tool_results[0].contains("\"status\":\"idle\""),
        "{:?}",
        seen.tool_results
    );

    // Again: nothing new, nothing twice.
    let out = up();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let again = text(&out.stdout);
    assert!(again.contains("session Claude exists"), "{again}");
    assert!(again.contains("@helper: already running"), "{again}");
    assert_eq!(env.status("helper").unwrap()["pid"], helper["pid"]);
    let windows = tmux.run(&["list-windows", "-t", "=Claude", "-F", "#{window_name}"]);
    // Issue 14: and the notifier's, once.
    assert_eq!(windows, "chief\nhelper\nnotify\n");
}

#[cfg_attr(missing_tmux, ignore = "needs tmux: see README, Tests")]
#[test]
fn a_busy_role_gets_one_more_agent_when_the_config_allows_it() {
    let test = "a_busy_role_gets_one_more_agent_when_the_config_allows_it";
    if require_tmux(test).is_none() {
        return;
    }
    let env = Env::new();
    let tmux = TmuxServer::new();
    let gate = env.dir.path().join("gate");
    nix::unistd::mkfifo(&gate, nix::sys::stat::Mode::S_IRWXU).unwrap();
    // Only the first agent waits at the gate; any spawned one answers at once.
    let command = format!(
        "if [ \"$AGENT_NAME\" = coder ]; then cat '{}' >/dev/null; fi; echo \"from $AGENT_NAME\"",
        gate.display()
    );
    let config_home = env.dir.path().join("config");
    std::fs::create_dir_all(config_home.join("claude-editor-hook")).unwrap();
    let config = format!(
        "[[agent]]\nname = \"coder\"\nroles = [\"coding\"]\ndriver = \"exec\"\ncommand = '''{command}'''\n\n[spawn]\ncoding = 1\n"
    );
    std::fs::write(config_home.join("claude-editor-hook/config.toml"), config).unwrap();
    let with_config = |cmd: &mut Command| {
        cmd.env("CLAUDE_AGENTS_DIR", &env.state)
            .env("XDG_CONFIG_HOME", &config_home);
    };
    let mut up = env.cmd(HOOK);
    with_config(&mut up);
    up.args(["up", "--no-chief", "--no-attach", "--tmux-socket"])
        .arg(tmux.socket());
    let out = output_with_timeout(&mut up, SECS);
    assert!(out.status.success(), "{}", text(&out.stderr));
    env.wait_status("coder", "idle", |_| true);

    let (mut first, _) = env.spawn_hook(b"@coder first");
    env.wait_status("coder", "working", |_| true);
    // Run as the chief would, inside the team's tmux session.
    let pane = tmux.run(&["list-panes", "-t", "=Claude:team", "-F", "#{pane_id}"]);
    let file = env.prompt_file(b"@coding second");
    let mut hook = env.cmd(HOOK);
    with_config(&mut hook);
    hook.env("TMUX", format!("{},0,0", tmux.socket().display()))
        .env("TMUX_PANE", pane.trim())
        .arg(&file);
    let out = output_with_timeout(&mut hook, Duration::from_secs(30));
    assert!(out.status.success(), "{}", text(&out.stderr));
    let (head, body) = head_and_body(&std::fs::read(&file).unwrap());
    assert!(head.starts_with("[@coding-2 · task "), "{head}");
    assert_eq!(body, b"from coding-2\n");
    let windows = tmux.run(&["list-windows", "-t", "=Claude", "-F", "#{window_name}"]);
    // Issue 14: `up` starts the notifier in a window of its own.
    assert_eq!(windows, "team\ncoder\nnotify\ncoding-2\n");

    drop(std::fs::File::create(&gate).unwrap());
    assert!(wait_child(&mut first, SECS, "the first task").success());
}

#[cfg_attr(missing_tmux, ignore = "needs tmux: see README, Tests")]
#[test]
fn down_stops_the_team_and_records_the_task_in_flight() {
    let test = "down_stops_the_team_and_records_the_task_in_flight";
    if require_tmux(test).is_none() {
        return;
    }
    let env = Env::new();
    let tmux = TmuxServer::new();
    let config_home = env.dir.path().join("config");
    std::fs::create_dir_all(config_home.join("claude-editor-hook")).unwrap();
    let config = "[[agent]]\nname = \"slow\"\ndriver = \"exec\"\ncommand = 'sleep 600'\n\n\
                  [[agent]]\nname = \"quick\"\ndriver = \"exec\"\ncommand = 'cat'\n";
    std::fs::write(config_home.join("claude-editor-hook/config.toml"), config).unwrap();
    let with = |cmd: &mut Command| {
        cmd.env("XDG_CONFIG_HOME", &config_home);
    };
    let mut up = env.cmd(HOOK);
    with(&mut up);
    up.args(["up", "--no-chief", "--no-attach", "--tmux-socket"])
        .arg(tmux.socket());
    let out = output_with_timeout(&mut up, SECS);
    assert!(out.status.success(), "{}", text(&out.stderr));
    env.wait_status("slow", "idle", |_| true);
    env.wait_status("quick", "idle", |_| true);
    // A background task in flight: nobody waits on it, so only `down` ends it.
    let out = output_with_timeout(
        env.cmd(HOOK)
            .args(["send", "slow", "a long job", "--background"]),
        SECS,
    );
    let id = text(&out.stdout)
        .split_whitespace()
        .nth(1)
        .unwrap()
        .to_owned();
    env.wait_status("slow", "working", |_| true);

    let mut down = env.cmd(HOOK);
    with(&mut down);
    down.args(["down", "--tmux-socket"]).arg(tmux.socket());
    let out = output_with_timeout(&mut down, SECS);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let said = text(&out.stdout);
    assert!(
        said.contains(&format!("stopped @slow (task {id} cancelled)"))
            && said.contains("stopped @quick"),
        "{said}"
    );
    let done: serde_json::Value = serde_json::from_slice(
        &std::fs::read(env.state.join("tasks").join(&id).join("done.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(done["outcome"], "cancelled");
    assert!(done["reason"].as_str().unwrap().contains("down"), "{done}");
    env.wait_status("slow", "offline", |_| true);
    let has = tmux.try_run(&["has-session", "-t", "=Claude"]);
    assert!(!has.status.success(), "the session is closed");
    // Nothing left to stop: says so.
    let mut again = env.cmd(HOOK);
    with(&mut again);
    again.args(["down", "--tmux-socket"]).arg(tmux.socket());
    let out = output_with_timeout(&mut again, SECS);
    assert!(out.status.success());
    assert!(text(&out.stdout).contains("no team is running"));
}

#[cfg_attr(missing_tmux, ignore = "needs tmux: see README, Tests")]
#[test]
fn a_named_config_must_exist_and_up_says_which_one_it_used() {
    let test = "a_named_config_must_exist_and_up_says_which_one_it_used";
    if require_tmux(test).is_none() {
        return;
    }
    let env = Env::new();
    let tmux = TmuxServer::new();
    let config_home = env.dir.path().join("config");
    let file = config_home.join("claude-editor-hook/config.toml");
    let run = |args: &[&str]| {
        let mut cmd = env.cmd(HOOK);
        cmd.env("XDG_CONFIG_HOME", &config_home).args(args);
        output_with_timeout(&mut cmd, SECS)
    };
    // A typo is an error, and nothing starts.
    let socket = tmux.socket().display().to_string();
    let out = run(&[
        "up",
        "--no-attach",
        "--no-chief",
        "--tmux-socket",
        &socket,
        "--config",
        "/typo.toml",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("/typo.toml does not exist"),
        "{}",
        text(&out.stderr)
    );
    assert!(
        !tmux
            .try_run(&["has-session", "-t", "=Claude"])
            .status
            .success()
    );

    let path = run(&["config", "path"]);
    assert!(
        text(&path.stdout).starts_with("defaults ("),
        "{}",
        text(&path.stdout)
    );
    let init = run(&["config", "init"]);
    assert_eq!(init.status.code(), Some(0), "{}", text(&init.stderr));
    assert!(
        std::fs::read_to_string(&file)
            .unwrap()
            .contains("[[agent]]")
    );
    assert_eq!(
        text(&run(&["config", "path"]).stdout).trim(),
        file.display().to_string()
    );
    let again = run(&["config", "init"]);
    assert_eq!(again.status.code(), Some(1));
    assert!(text(&again.stderr).contains("exists already"));

    // The team's cwd: where the agents work.
    let project = env.dir.path().join("project");
    std::fs::create_dir_all(&project).unwrap();
    let config = format!(
        "cwd = \"{}\"\n[[agent]]\nname = \"where\"\ndriver = \"exec\"\ncommand = 'pwd'\n",
        project.display()
    );
    std::fs::write(&file, config).unwrap();
    let out = run(&["up", "--no-attach", "--no-chief", "--tmux-socket", &socket]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains(&format!("config: {}", file.display())),
        "{}",
        text(&out.stdout)
    );
    env.wait_status("where", "idle", |_| true);
    let answer = output_with_timeout(env.cmd(HOOK).args(["send", "where", "where are you"]), SECS);
    assert_eq!(text(&answer.stdout).trim(), project.display().to_string());
}
