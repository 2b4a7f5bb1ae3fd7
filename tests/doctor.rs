//! `claude-editor-hook doctor`: one line per check, the fix with each problem, exit 1
//! on any error, `--json` as one document.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Output;

use serde_json::Value;

use crate::fixture::*;
use crate::helper::claude::require_claude;
use crate::helper::tmux::find_tmux_dir;

/// A `claude` stand-in that prints `version` the way Claude Code does. Doctor only asks
/// for the version; the real Claude Code is checked in `the_pinned_claude_code_is_ok`.
fn fake_claude(env: &Env, version: &str) -> std::path::PathBuf {
    write_script(
        env.dir.path(),
        "claude",
        &format!("#!/bin/sh\necho '{version} (Claude Code)'\n"),
    )
}

/// A config naming `claude` and the agents `names`.
fn config(env: &Env, claude: &Path, names: &[&str]) -> std::path::PathBuf {
    let mut text = format!("claude = {:?}\n", claude.display().to_string());
    for n in names {
        text.push_str(&format!("[[agent]]\nname = {n:?}\ndriver = \"demo\"\n"));
    }
    let path = env.dir.path().join("config.toml");
    std::fs::write(&path, text).unwrap();
    path
}

fn doctor(env: &Env, config: &Path, path_env: Option<&str>, json: bool) -> Output {
    let mut cmd = env.cmd(HOOK);
    cmd.arg("doctor").arg("--config").arg(config);
    if json {
        cmd.arg("--json");
    }
    if let Some(path) = path_env {
        cmd.env("PATH", path);
    }
    cmd.env("HOME", env.dir.path())
        .output()
        .expect("run doctor")
}

fn line<'a>(out: &'a str, check: &str) -> &'a str {
    out.lines()
        .find(|l| {
            l.split_once(' ')
                .is_some_and(|(_, rest)| rest.trim_start().starts_with(&format!("{check}:")))
        })
        .unwrap_or_else(|| panic!("no {check} line in:\n{out}"))
}

#[test]
fn a_claude_code_outside_the_verified_range_is_a_warning_that_names_the_range() {
    let env = Env::new();
    for version in ["9.9.9", "2.1.100"] {
        let claude = fake_claude(&env, version);
        let cfg = config(&env, &claude, &[]);
        let out = doctor(&env, &cfg, None, false);
        let text = text(&out.stdout);
        let l = line(&text, "claude-code");
        assert!(l.starts_with("warn "), "{l}");
        assert!(
            l.contains(&format!("{version} at"))
                && l.contains("outside the verified range 2.1.197 to 2.1.332")
                && l.contains("fix: npm install -g @anthropic-ai/claude-code@2.1.332"),
            "{l}"
        );
        // A warning alone does not fail the run.
        assert_eq!(out.status.code(), Some(0), "{text}");
    }
}

#[test]
fn a_missing_tmux_is_an_error_with_the_fix_and_exit_1() {
    let env = Env::new();
    let claude = fake_claude(&env, "2.1.332");
    let cfg = config(&env, &claude, &[]);
    // A PATH with sh and nothing else: no tmux.
    let bin = env.dir.path().join("bin");
    std::fs::create_dir(&bin).unwrap();
    std::os::unix::fs::symlink("/bin/sh", bin.join("sh")).unwrap();
    let out = doctor(&env, &cfg, Some(bin.to_str().unwrap()), false);
    let text = text(&out.stdout);
    let l = line(&text, "tmux");
    assert!(l.starts_with("error tmux: not found on PATH"), "{l}");
    assert!(l.contains("fix: install tmux"), "{l}");
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(line(&text, "claude-code").starts_with("ok "), "{text}");
    // With tmux back on PATH the same setup is fine.
    let tmux_dir = find_tmux_dir().expect("tmux for this test");
    let path = format!("{}:{}", bin.display(), tmux_dir.display());
    let out = doctor(&env, &cfg, Some(&path), false);
    assert!(line(&crate::fixture::text(&out.stdout), "tmux").starts_with("ok "));
}

#[test]
fn an_unsafe_state_dir_is_an_error_and_nothing_is_written_to_it() {
    let env = Env::new();
    let claude = fake_claude(&env, "2.1.332");
    let cfg = config(&env, &claude, &[]);
    std::fs::create_dir(&env.state).unwrap();
    std::fs::set_permissions(&env.state, std::fs::Permissions::from_mode(0o777)).unwrap();
    let out = doctor(&env, &cfg, None, false);
    let text = text(&out.stdout);
    let l = line(&text, "state-dir");
    assert!(
        l.starts_with("error state-dir:") && l.contains("has mode 777") && l.contains("chmod 700"),
        "{l}"
    );
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(std::fs::read_dir(&env.state).unwrap().count(), 0);

    // A symlink in its place is refused too.
    std::fs::remove_dir(&env.state).unwrap();
    let real = env.dir.path().join("real");
    std::fs::create_dir(&real).unwrap();
    std::os::unix::fs::symlink(&real, &env.state).unwrap();
    let out = doctor(&env, &cfg, None, false);
    let l = line(&crate::fixture::text(&out.stdout), "state-dir").to_owned();
    assert!(l.contains("is a symlink"), "{l}");
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn configured_agents_are_checked_against_the_running_ones_and_json_is_one_document() {
    let env = Env::new();
    let claude = fake_claude(&env, "2.1.332");
    let cfg = config(&env, &claude, &["alpha"]);
    let _beta = env.agent("beta", &["--demo"]);
    let out = doctor(&env, &cfg, None, false);
    let text = text(&out.stdout);
    let alpha = line(&text, "agent alpha");
    assert!(
        alpha.starts_with("warn ") && alpha.contains("configured, not running"),
        "{alpha}"
    );
    let beta = line(&text, "agent beta");
    assert!(
        beta.starts_with("ok ") && beta.contains("idle (not in the config)"),
        "{beta}"
    );
    assert!(
        text.lines().last().unwrap().contains("checks: 0 errors"),
        "{text}"
    );

    let out = doctor(&env, &cfg, None, true);
    let doc: Value = serde_json::from_slice(&out.stdout).expect("one JSON document");
    let checks = doc["checks"].as_array().unwrap();
    assert!(checks.iter().all(
        |c| ["ok", "warn", "error"].contains(&c["level"].as_str().unwrap())
            && c["check"].is_string()
            && c["message"].is_string()
    ));
    let warns = checks.iter().filter(|c| c["level"] == "warn").count();
    assert_eq!(doc["warnings"], warns);
    assert_eq!(doc["errors"], 0);
    assert!(
        checks
            .iter()
            .any(|c| c["check"] == "agent alpha" && c["fix"].as_str().unwrap().contains("up"))
    );
}

#[cfg_attr(
    missing_claude,
    ignore = "needs Claude Code and tmux: see README, Tests"
)]
#[test]
fn the_pinned_claude_code_is_ok() {
    let Some(claude) = require_claude("the_pinned_claude_code_is_ok") else {
        return;
    };
    let env = Env::new();
    let cfg = config(&env, &claude, &[]);
    let out = doctor(&env, &cfg, None, false);
    let text = text(&out.stdout);
    let l = line(&text, "claude-code");
    assert!(
        l.starts_with("ok ") && l.contains("(verified range 2.1.197 to 2.1.332)"),
        "{l}"
    );
}

#[test]
fn doctor_reports_whether_the_team_tools_are_reachable_and_registered() {
    let env = Env::new();
    let claude = fake_claude(&env, "2.1.332");
    let cfg = config(&env, &claude, &[]);
    let out = doctor(&env, &cfg, None, false);
    let l = line(&text(&out.stdout), "mcp").to_owned();
    assert!(
        l.starts_with("warn  mcp: the team's 12 tools answer"),
        "{l}"
    );
    assert!(l.contains("not registered for other sessions"), "{l}");
    assert!(l.contains("fix: to have them in every Claude Code session too: claude mcp add team -- claude-editor-hook mcp"), "{l}");
    // Registered the way `claude mcp add -s user` writes it.
    std::fs::write(
        env.dir.path().join(".claude.json"),
        serde_json::json!({"mcpServers": {"team": {"type": "stdio", "command": HOOK, "args": ["mcp"]}}})
            .to_string(),
    )
    .unwrap();
    let out = doctor(&env, &cfg, None, false);
    let l = line(&text(&out.stdout), "mcp").to_owned();
    assert!(
        l.starts_with("ok    mcp: the team's 12 tools answer"),
        "{l}"
    );
    assert!(l.ends_with("registered for every session as team"), "{l}");
}
