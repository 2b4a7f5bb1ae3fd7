//! The checks themselves, in the order the report prints them.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use std::time::Duration;

use super::version::{Verified, Version};
use super::{Finding, Level};
use crate::state::{AgentInfo, AgentName, AgentState, StateDir};
use crate::team::config::Config;
use crate::time::now_us;

/// How long `claude --version` or `tmux -V` may take before the check gives up.
const PROGRAM_TIMEOUT: Duration = Duration::from_secs(15);
/// Below this much free space in the state directory, tasks may fail to be recorded.
const LOW_SPACE: u64 = 100 << 20;
/// An agent `starting` or `waiting` for longer than this is stuck behind the human.
const STUCK_AFTER_US: u64 = 10_000_000;

/// Runs every check. `config` names the team config as `up --config` would.
pub fn run_checks(config: Option<&Path>) -> Vec<Finding> {
    let mut out = Vec::new();
    let config = match Config::load(config) {
        Ok(c) => Some(c),
        Err(e) => {
            out.push(Finding::error(
                "config",
                format!("{e:#}"),
                "correct the config file (see README, The team)",
            ));
            None
        }
    };
    let claude = config
        .as_ref()
        .map_or_else(|| PathBuf::from("claude"), |c| c.claude_program(None));
    out.push(claude_code(&claude, Verified::embedded()));
    out.push(tmux());
    let state = state_dir(&mut out);
    chief(&mut out);
    out.push(mcp());
    if let (Some(state), Some(config)) = (state, config.as_ref()) {
        agents(&mut out, &state, config);
    }
    out
}

/// The team's MCP tools: the server starts and lists every tool, and where it is
/// registered besides `up` (which passes it to the chief and the agents itself).
fn mcp() -> Finding {
    let exe = match std::env::current_exe() {
        Ok(e) => e,
        Err(e) => {
            return Finding::error(
                "mcp",
                format!("cannot find this program: {e}"),
                "reinstall claude-editor-hook",
            );
        }
    };
    let fix_add = "to have them in every Claude Code session too: claude mcp add team -- claude-editor-hook mcp";
    match crate::mcp::probe::probe(&exe, PROGRAM_TIMEOUT) {
        Err(e) => Finding::error(
            "mcp",
            format!(
                "the team's tools are not reachable: `{} mcp`: {e:#}",
                exe.display()
            ),
            "run `claude-editor-hook mcp` by hand to see why it fails",
        ),
        Ok(p) => {
            let missing: Vec<&str> = crate::mcp::TOOL_NAMES
                .iter()
                .copied()
                .filter(|t| !p.tools.iter().any(|have| have == t))
                .collect();
            if !missing.is_empty() {
                return Finding::error(
                    "mcp",
                    format!("the server lacks tools: {}", missing.join(", ")),
                    "reinstall claude-editor-hook (an older binary answers)",
                );
            }
            let registered = registered_mcp_servers();
            let message = format!(
                "the team's {} tools answer (started in {} ms); `up` gives them to the chief and the agents",
                p.tools.len(),
                p.started_in.as_millis()
            );
            if registered.is_empty() {
                Finding::warn(
                    "mcp",
                    format!("{message}; not registered for other sessions"),
                    fix_add,
                )
            } else {
                Finding::ok(
                    "mcp",
                    format!(
                        "{message}; registered for every session as {}",
                        registered.join(", ")
                    ),
                )
            }
        }
    }
}

/// The names under which `~/.claude.json` registers `claude-editor-hook mcp` for every
/// session (user scope, `claude mcp add -s user`) or for this project (local scope).
fn registered_mcp_servers() -> Vec<String> {
    let Some(home) = std::env::var_os("HOME") else {
        return Vec::new();
    };
    let Ok(text) = std::fs::read_to_string(PathBuf::from(home).join(".claude.json")) else {
        return Vec::new();
    };
    let Ok(doc) = serde_json::from_str::<serde_json::Value>(&text) else {
        return Vec::new();
    };
    let here = std::env::current_dir()
        .map(|d| d.display().to_string())
        .unwrap_or_default();
    let ours = |s: &serde_json::Value| {
        s["command"]
            .as_str()
            .is_some_and(|c| c.ends_with("claude-editor-hook"))
            && s["args"].get(0).and_then(|a| a.as_str()) == Some("mcp")
    };
    [&doc["mcpServers"], &doc["projects"][&here]["mcpServers"]]
        .into_iter()
        .filter_map(|m| m.as_object())
        .flat_map(|m| m.iter())
        .filter(|(_, s)| ours(s))
        .map(|(name, _)| name.clone())
        .collect()
}

/// `program` as a path: itself when it has a slash, else found on `PATH`.
fn resolve(program: &Path) -> Option<PathBuf> {
    if program.components().count() > 1 {
        return program.is_file().then(|| program.to_path_buf());
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(program))
        .find(|p| p.is_file())
}

fn claude_code(program: &Path, verified: Verified) -> Finding {
    let name = "claude-code";
    let install = format!(
        "npm install -g @anthropic-ai/claude-code@{}",
        verified.newest
    );
    let Some(path) = resolve(program) else {
        return Finding::error(
            name,
            format!("{} not found", program.display()),
            &format!("{install}, or name the program with `claude = \"PATH\"` in the config"),
        );
    };
    let text = match crate::process::output_within(PROGRAM_TIMEOUT, &path, &["--version"]) {
        Ok(text) => text,
        Err(why) => {
            return Finding::error(
                name,
                format!("`{} --version` failed: {why}", path.display()),
                &install,
            );
        }
    };
    let Some(version) = Version::parse(&text) else {
        return Finding::error(
            name,
            format!("{} printed no version: {text:?}", path.display()),
            &install,
        );
    };
    let at = format!("{version} at {}", path.display());
    match verified.place(version) {
        std::cmp::Ordering::Equal => Finding::ok(name, format!("{at} (verified range {verified})")),
        _ => Finding::warn(
            name,
            format!("{at} is outside the verified range {verified}"),
            &format!("{install} (a verified version), or expect surprises"),
        ),
    }
}

fn tmux() -> Finding {
    match resolve(Path::new("tmux")) {
        None => Finding::error(
            "tmux",
            "not found on PATH: agents run in tmux windows",
            "install tmux (apt-get install tmux, brew install tmux)",
        ),
        Some(path) => match crate::process::output_within(PROGRAM_TIMEOUT, &path, &["-V"]) {
            Ok(v) => Finding::ok("tmux", format!("{v} at {}", path.display())),
            Err(why) => {
                Finding::error("tmux", format!("`tmux -V` failed: {why}"), "reinstall tmux")
            }
        },
    }
}

/// Checks the state directory without creating anything; returns it when it is usable.
fn state_dir(out: &mut Vec<Finding>) -> Option<StateDir> {
    let name = "state-dir";
    let root = match StateDir::default_root() {
        Ok(r) => r,
        Err(e) => {
            out.push(Finding::error(
                name,
                format!("{e:#}"),
                "set CLAUDE_AGENTS_DIR or HOME",
            ));
            return None;
        }
    };
    if root.is_relative() {
        out.push(Finding::warn(
            name,
            format!(
                "{} is relative: processes started elsewhere use another",
                root.display()
            ),
            "set CLAUDE_AGENTS_DIR to an absolute path",
        ));
    }
    let meta = match std::fs::symlink_metadata(&root) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            out.push(Finding::ok(
                name,
                format!(
                    "{} does not exist yet; the first agent creates it (0700)",
                    root.display()
                ),
            ));
            return None;
        }
        Err(e) => {
            out.push(Finding::error(
                name,
                format!("{}: {e}", root.display()),
                "check its parent's permissions",
            ));
            return None;
        }
        Ok(m) => m,
    };
    let chmod = format!("chmod 700 {}", root.display());
    let uid = nix::unistd::geteuid().as_raw();
    let unsafe_why = if meta.file_type().is_symlink() {
        Some("is a symlink".to_owned())
    } else if !meta.is_dir() {
        Some("is not a directory".to_owned())
    } else if meta.uid() != uid {
        Some(format!(
            "is owned by uid {}, not by you (uid {uid})",
            meta.uid()
        ))
    } else if meta.mode() & 0o077 != 0 {
        Some(format!(
            "has mode {:o}: others could plant or read tasks",
            meta.mode() & 0o7777
        ))
    } else {
        None
    };
    if let Some(why) = unsafe_why {
        out.push(Finding::error(
            name,
            format!("{} {why}", root.display()),
            &format!(
                "use a private directory you own ({chmod}), or point CLAUDE_AGENTS_DIR elsewhere"
            ),
        ));
        return None;
    }
    if let Err(e) = tempfile::tempfile_in(&root) {
        out.push(Finding::error(
            name,
            format!("{} is not writable: {e}", root.display()),
            &chmod,
        ));
        return None;
    }
    let free = nix::sys::statvfs::statvfs(&root)
        .map(|s| s.blocks_available().saturating_mul(s.fragment_size()))
        .unwrap_or(u64::MAX);
    if free < LOW_SPACE {
        out.push(Finding::warn(
            name,
            format!("{}: only {} MiB free", root.display(), free >> 20),
            "free some space: a task whose end cannot be recorded fails",
        ));
    } else {
        out.push(Finding::ok(
            name,
            format!(
                "{} (private, writable, {} MiB free)",
                root.display(),
                free >> 20
            ),
        ));
    }
    // Both parts, as every other process opens them: the runtime part (locks,
    // doorbells) is where liveness is read from.
    let state = StateDir::from_env().ok()?;
    if state.runtime_root() != state.root() {
        out.push(Finding::ok(
            "runtime-dir",
            format!(
                "{} (locks, doorbells and events; emptied by a reboot, which loses nothing)",
                state.runtime_root().display()
            ),
        ));
    }
    Some(state)
}

/// The editor and hooks a chief gets: from this shell, and of the chief `up` started.
fn chief(out: &mut Vec<Finding>) {
    let exe = std::env::current_exe().unwrap_or_default();
    if exe.to_string_lossy().contains(char::is_whitespace) {
        out.push(Finding::error(
            "chief-editor",
            format!(
                "{} has a space in its path, which Claude Code cannot run as its editor",
                exe.display()
            ),
            "install claude-editor-hook in a directory without spaces",
        ));
    }
    let is_hook = |v: &str| {
        v.split_whitespace()
            .next()
            .is_some_and(|p| p.ends_with("claude-editor-hook"))
    };
    match std::env::var("VISUAL") {
        Ok(v) if !v.is_empty() && !is_hook(&v) => out.push(Finding::warn(
            "chief-editor",
            format!("VISUAL={v} in this shell wins over EDITOR in Claude Code"),
            "start the chief with `claude-editor-hook up`, or with VISUAL unset: VISUAL= EDITOR=claude-editor-hook claude",
        )),
        _ => {}
    }
    let settings = settings_with_chief_hooks();
    match up_chief() {
        Some((pid, env, cmdline)) => {
            let editor = env.iter().find_map(|(k, v)| (k == "EDITOR").then_some(v.clone()));
            let visual = env.iter().find_map(|(k, v)| (k == "VISUAL").then_some(v.clone()));
            match (visual.filter(|v| !v.is_empty()), editor) {
                (Some(v), _) if !is_hook(&v) => out.push(Finding::error(
                    "chief-editor",
                    format!("the chief (pid {pid}) has VISUAL={v}, which wins over EDITOR: Ctrl-G does not reach the hook"),
                    "unset VISUAL where tmux starts the chief, then restart it",
                )),
                (_, Some(e)) if is_hook(&e) => out.push(Finding::ok("chief-editor", format!("the chief (pid {pid}) runs EDITOR={e}"))),
                (_, e) => out.push(Finding::error(
                    "chief-editor",
                    format!("the chief (pid {pid}) has EDITOR={}", e.unwrap_or_default()),
                    "restart the chief with `claude-editor-hook up`",
                )),
            }
            if cmdline.contains("chief-hook") {
                out.push(Finding::ok("chief-hooks", format!("passed by `up` to the chief (pid {pid})")));
            } else if let Some(file) = settings.first() {
                out.push(Finding::ok("chief-hooks", format!("in {}", file.display())));
            } else {
                out.push(Finding::warn(
                    "chief-hooks",
                    format!("the chief (pid {pid}) runs without them: background results wait for `@results`"),
                    "set hooks = true under [chief] in the config and restart it with `up`",
                ));
            }
        }
        None => match settings.first() {
            Some(file) => out.push(Finding::ok("chief-hooks", format!("in {} (no chief from `up` is running)", file.display()))),
            None => out.push(Finding::warn(
                "chief-hooks",
                "no chief from `up` is running and no settings file has them",
                "start the team with `claude-editor-hook up`, or `claude-editor-hook install-hooks FILE`",
            )),
        },
    }
}

/// The settings files Claude Code reads that hold our chief hooks.
fn settings_with_chief_hooks() -> Vec<PathBuf> {
    let mut files = Vec::new();
    if let Some(home) = std::env::var_os("HOME") {
        files.push(PathBuf::from(home).join(".claude/settings.json"));
    }
    if let Ok(here) = std::env::current_dir() {
        files.push(here.join(".claude/settings.json"));
        files.push(here.join(".claude/settings.local.json"));
    }
    files
        .into_iter()
        .filter(|f| std::fs::read_to_string(f).is_ok_and(|t| t.contains("chief-hook")))
        .collect()
}

/// A running chief as /proc shows it: pid, environment, command line.
type ChiefProcess = (i32, Vec<(String, String)>, String);

/// The chief `up` started (tmux window `Claude:chief`): its pid, environment and
/// command line, read from /proc.
fn up_chief() -> Option<ChiefProcess> {
    let target = format!("={}:chief", crate::team::up::SESSION);
    let tmux = resolve(Path::new("tmux"))?;
    let pid: i32 = crate::process::output_within(
        PROGRAM_TIMEOUT,
        &tmux,
        &["list-panes", "-t", &target, "-F", "#{pane_pid}"],
    )
    .ok()?
    .lines()
    .next()?
    .trim()
    .parse()
    .ok()?;
    let environ = std::fs::read(format!("/proc/{pid}/environ")).ok()?;
    let env = environ
        .split(|&b| b == 0)
        .filter_map(|kv| {
            let kv = String::from_utf8_lossy(kv);
            let (k, v) = kv.split_once('=')?;
            Some((k.to_owned(), v.to_owned()))
        })
        .collect();
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    Some((
        pid,
        env,
        String::from_utf8_lossy(&cmdline).replace('\0', " "),
    ))
}

/// The configured agents against the running ones, and agents stuck behind a dialog.
fn agents(out: &mut Vec<Finding>, state: &StateDir, config: &Config) {
    let running = state.agent_names().unwrap_or_default();
    let mut names: Vec<AgentName> = config.agents.iter().map(|a| a.name.clone()).collect();
    for n in &running {
        if !names.contains(n) {
            names.push(n.clone());
        }
    }
    for name in names {
        let check = format!("agent {name}");
        let configured = config.agents.iter().any(|a| a.name == name);
        let window = format!("tmux select-window -t {}:{name}", crate::team::up::SESSION);
        let info = match AgentInfo::load(state, &name) {
            Ok(info) => info,
            Err(e) => {
                out.push(Finding::error(
                    check,
                    format!("{e:#}"),
                    &format!("restart it: claude-editor-hook kill {name}, then `up`"),
                ));
                continue;
            }
        };
        let Some(info) = info.filter(|i| i.state() != AgentState::Offline) else {
            if configured {
                out.push(Finding::warn(
                    check,
                    "configured, not running",
                    "start it with `claude-editor-hook up`",
                ));
            }
            continue;
        };
        let since_us = info
            .status
            .as_ref()
            .map_or(0, |s| now_us().saturating_sub(s.last_active_us));
        let state_now = info.state();
        let extra = if configured {
            ""
        } else {
            " (not in the config)"
        };
        match state_now {
            AgentState::Waiting | AgentState::Starting if since_us > STUCK_AFTER_US => {
                out.push(Finding {
                    level: Level::Warn,
                    check,
                    message: format!(
                        "{state_now} for {}s: a dialog or a permission prompt waits for you{extra}",
                        since_us / 1_000_000
                    ),
                    fix: Some(format!("answer it in the agent's window: {window}")),
                })
            }
            _ => out.push(Finding::ok(check, format!("{state_now}{extra}"))),
        }
    }
}
