//! `claude-editor-hook up` with the real Claude Code as the chief, in a private tmux server.

use std::process::Command;
use std::time::Duration;

use crate::fixture::*;
use crate::helper::claude::{ClaudeSandbox, require_claude};
use crate::helper::tmux::{TmuxServer, require_tmux};
use crate::helper::wait::output_with_timeout;

const CLAUDE_WAIT: Duration = Duration::from_secs(60);

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
        "chief: Claude:chief\n@helper: started in Claude:helper\n"
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
    assert_eq!(windows, "chief\nhelper\n");
}
