//! `claude-editor-hook up` with the real Claude Code as the chief, in a private tmux server.

use std::process::Command;
use std::time::Duration;

use crate::fixture::*;
use crate::helper::claude::{ClaudeSandbox, require_claude};
use crate::helper::tmux::{TmuxServer, require_tmux};
use crate::helper::wait::output_with_timeout;

const CLAUDE_WAIT: Duration = Duration::from_secs(60);

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
    let up = || {
        let mut cmd = Command::new(HOOK);
        cmd.env_clear()
            .envs(sandbox.env())
            .env("CLAUDE_AGENTS_DIR", &env.state)
            .current_dir(sandbox.project_dir())
            .arg("up")
            .arg("--no-attach")
            .arg("--tmux-socket")
            .arg(tmux.socket())
            .arg("--config")
            .arg(&config)
            .arg("--claude")
            .arg(&claude);
        output_with_timeout(&mut cmd, SECS)
    };
    let out = up();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout),
        "chief: Claude:chief\n@helper: started in Claude:helper\nnotify: Claude:notify\n"
    );
    let helper = env.wait_status("helper", "idle", |s| s["roles"][0] == "helping");

    let chief = "=Claude:chief";
    tmux.wait_for_screen(chief, |s| s.contains("❯"), CLAUDE_WAIT)
        .unwrap_or_else(|s| panic!("no chief:\n{s}"));
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

    // Again: nothing new, nothing twice.
    let out = up();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let again = text(&out.stdout);
    assert!(again.starts_with("session Claude exists"), "{again}");
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
