//! tmux, the one place that runs it: the team's server (`up`), the window of this
//! process, and the coordinator's jumps and keys.

use std::path::Path;
use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail};

use crate::state::TmuxLocation;
use crate::team::up::SESSION;

/// A tmux server: the default one (of `$TMUX`), or the one at `socket`.
pub struct Tmux<'a> {
    pub socket: Option<&'a Path>,
}

impl Tmux<'_> {
    /// A `tmux` command for this server.
    pub fn cmd(&self) -> Command {
        let mut cmd = Command::new("tmux");
        if let Some(s) = self.socket {
            cmd.arg("-S").arg(s);
        }
        cmd
    }

    /// Runs `tmux ARGS`; its output, or an error with tmux's own message.
    pub fn run(&self, args: &[String]) -> Result<String> {
        let out = self
            .cmd()
            .args(args)
            .output()
            .context("failed to run tmux")?;
        if !out.status.success() {
            bail!(
                "tmux {}: {}",
                args.first().map(String::as_str).unwrap_or(""),
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Returns true if and only if the team's session exists.
    pub fn has_session(&self) -> bool {
        self.cmd()
            .args(["has-session", "-t", &format!("={SESSION}")])
            .output()
            .is_ok_and(|o| o.status.success())
    }

    /// The names of the team session's windows.
    pub fn windows(&self) -> Vec<String> {
        self.run(&[
            "list-windows".into(),
            "-t".into(),
            format!("={SESSION}"),
            "-F".into(),
            "#{window_name}".into(),
        ])
        .map(|s| s.lines().map(str::to_owned).collect())
        .unwrap_or_default()
    }
}

/// Runs `tmux ARGS` on the default server; its trimmed output on success.
pub fn query(args: &[&str]) -> Option<String> {
    let out = Command::new("tmux")
        .args(args)
        .stderr(Stdio::null())
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// Presses `key` in `pane`.
pub fn send_key(pane: &str, key: &str) -> Result<()> {
    Command::new("tmux")
        .args(["send-keys", "-t", pane, key])
        .status()
        .context("failed to run tmux")?;
    Ok(())
}

/// `session:window` and pane of this process when it runs inside tmux.
pub fn here() -> Option<TmuxLocation> {
    std::env::var_os("TMUX")?;
    let pane = std::env::var("TMUX_PANE").ok()?;
    let window = query(&[
        "display-message",
        "-p",
        "-t",
        &pane,
        "#{session_name}:#{window_name}",
    ])?;
    (!window.is_empty()).then_some(TmuxLocation { window, pane })
}
