//! One interactive Claude Code that `agent-wrap` owns: the thin shell around the pure
//! [`Delivery`] machine.
//!
//! The shell turns what happens — the human's keys (forwarded by the host's loop), hook
//! and probe events, the registry, timers, exits — into the machine's inputs, and carries
//! out the effects it returns: bytes to the [`Pty`], the probe request, pid watches and
//! timers. What Claude Code is doing comes from its hooks ([`super::hook`]) and the probe
//! ([`super::probe`]), never from the screen.

use std::path::{Path, PathBuf};
use std::sync::mpsc::Sender;
use std::time::Instant;

use anyhow::{Context, Result};
use portable_pty::CommandBuilder;

use super::delivery::{Delivery, Effect, Input, Timer, Update};
use super::message::{Event, HookCommon, ProbeAction};
use super::pty::Pty;
use crate::agent::timer::Timers;
use crate::claude_code::Registry;
use crate::state::write_json;

/// Events from the session's threads: keys, exits, pid watches.
#[derive(Debug)]
pub enum ClaudeEvent {
    /// The human typed these bytes in the agent's window.
    Input(Vec<u8>),
    /// Claude Code exited; the text says how.
    Exited(String),
    /// The probe that answered delivery `nonce` exited.
    ProbeExited(u64),
    /// The human's own editor (their Ctrl-G) exited.
    UserEditorClosed,
    /// The events directory or Claude Code's registry changed.
    Changed,
}

/// How to start Claude Code.
#[derive(Clone, Debug)]
pub struct ClaudeConfig {
    pub program: PathBuf,
    /// Arguments after `--` on the agent-wrap command line.
    pub extra_args: Vec<String>,
    /// Issue 15 (`agent-wrap NAME2 --fork NAME`): the session whose conversation a new
    /// session starts as a copy of (docs/claude-code.md#session-resume).
    pub fork_from: Option<String>,
    /// Run Claude Code's fullscreen renderer: its classic one repaints the whole
    /// conversation after each delivery on older versions
    /// ([`crate::claude_code::fullscreen_for_host`]).
    pub fullscreen: bool,
}

/// Everything the hosted process needs to know about its host.
pub struct SessionPaths<'a> {
    pub agent_dir: &'a Path,
    pub events_dir: &'a Path,
    pub probe_path: PathBuf,
    /// Where Claude Code works.
    pub working_dir: Option<PathBuf>,
}

/// A running Claude Code.
pub struct Session {
    pty: Pty,
    pub pid: u32,
    machine: Delivery,
    timers: Timers<Timer>,
    probe_path: PathBuf,
    /// Watches the human's own editor, opened by their Ctrl-G, for its exit.
    user_editor: Option<crate::process::ExitWatch>,
    /// Watches the probe that loaded the current delivery, for its exit.
    probe_exit: Option<crate::process::ExitWatch>,
    /// The transcript, as the last hook event named it ...
    transcript: Option<PathBuf>,
    /// ... and its length when our delivery began: only what was written after that
    /// can show our turn.
    transcript_mark: Option<(PathBuf, u64)>,
    tx: Sender<ClaudeEvent>,
}

impl Session {
    /// Starts Claude Code: with `--session-id ID` for a new session, `--resume ID` to
    /// continue one. `clear_first` is a task the previous process died on, which a
    /// resume may put back into the box; `last_nonce` that process's last nonce.
    pub fn spawn(
        config: &ClaudeConfig,
        paths: SessionPaths<'_>,
        session_id: &str,
        resume: bool,
        clear_first: Option<String>,
        last_nonce: u64,
        tx: Sender<ClaudeEvent>,
    ) -> Result<Self> {
        // A request left by a Claude Code that died must not answer a human's Ctrl-G.
        let _ = std::fs::remove_file(&paths.probe_path);
        let cmd = claude_command(config, &paths, session_id, resume)?;
        let pty = Pty::spawn(cmd, tx.clone(), ClaudeEvent::Exited)?;
        let (machine, first) = Delivery::new(session_id, clear_first, last_nonce);
        let mut session = Self {
            pid: pty.pid,
            pty,
            machine,
            timers: Timers::default(),
            probe_path: paths.probe_path,
            user_editor: None,
            probe_exit: None,
            transcript: None,
            transcript_mark: None,
            tx,
        };
        session.apply(first).map_err(|(_, e)| e)?;
        Ok(session)
    }

    /// Returns true if and only if Claude Code has accepted input.
    pub fn ready(&self) -> bool {
        self.machine.ready()
    }

    /// The last delivery nonce, for the session that replaces this one.
    pub fn last_nonce(&self) -> u64 {
        self.machine.last_nonce()
    }

    /// Returns true if and only if a new task can be loaded now.
    pub fn can_load(&self) -> bool {
        self.machine.can_load()
    }

    /// Starts loading the task `prompt` into the box (a prompt, never a command).
    pub fn load(&mut self, prompt: &str) -> Result<Vec<Update>> {
        self.step_or_undo(Input::Load(prompt.to_owned()))
    }

    /// Starts the agent command `/compact`, with optional `instructions`. It goes through
    /// the same probe as a task, so it never lands on a human's draft.
    pub fn compact(&mut self, instructions: &str) -> Result<Vec<Update>> {
        self.step_or_undo(Input::Compact(instructions.to_owned()))
    }

    fn step_or_undo(&mut self, input: Input) -> Result<Vec<Update>> {
        let effects = self.machine.step(input);
        match self.apply(effects) {
            Ok(updates) => Ok(updates),
            Err((_, e)) => {
                let undo = self.machine.step(Input::LoadFailed);
                let _ = self.apply(undo);
                Err(e)
            }
        }
    }

    /// Interrupts the task in flight (Escape) and clears it from the box.
    pub fn interrupt(&mut self) -> Vec<Update> {
        self.step(Input::Interrupt)
    }

    /// One read of the human's keys.
    pub fn key(&mut self, bytes: Vec<u8>) -> Vec<Update> {
        self.step(Input::Key(bytes))
    }

    /// An event from `events/`, with what every hook event carries.
    pub fn event(&mut self, event: Event, common: HookCommon) -> Vec<Update> {
        if let Some(path) = common.transcript_path {
            self.transcript = Some(path);
        }
        self.step(Input::Event(event))
    }

    /// A message from the session's threads (not keys, not the exit).
    pub fn thread_event(&mut self, event: ClaudeEvent) -> Vec<Update> {
        match event {
            ClaudeEvent::ProbeExited(nonce) => {
                self.probe_exit = None;
                self.step(Input::ProbeExited { nonce })
            }
            ClaudeEvent::UserEditorClosed => {
                self.user_editor = None;
                self.step(Input::UserEditorClosed)
            }
            ClaudeEvent::Input(bytes) => self.key(bytes),
            ClaudeEvent::Exited(_) => self.step(Input::Exited),
            ClaudeEvent::Changed => self.registry_changed(),
        }
    }

    /// Claude Code's registry may have changed: read it.
    pub fn registry_changed(&mut self) -> Vec<Update> {
        self.read_registry().0
    }

    /// Reads the registry; also returns whether it says idle.
    fn read_registry(&mut self) -> (Vec<Update>, bool) {
        let idle = Registry::read(self.pid).is_some_and(|r| r.is_idle());
        (self.step(Input::Registry { idle }), idle)
    }

    /// For the interrupt backstop about to decide: what the transcript, since our
    /// delivery began, shows of our turn. Read only then: the transcript can be large.
    fn read_transcript(&mut self) -> Vec<Update> {
        let (Some(path), Some(prompt)) = (&self.transcript, self.machine.working_prompt()) else {
            return Vec::new();
        };
        let from = match &self.transcript_mark {
            Some((marked, len)) if marked == path => *len,
            _ => 0,
        };
        let turn_ended = crate::claude_code::turn_ended(path, from, prompt);
        let path = path.clone();
        self.step(Input::Transcript { path, turn_ended })
    }

    /// When the session's next timer fires.
    pub fn next_timer(&self) -> Option<Instant> {
        self.timers.next()
    }

    /// Fires the timers that are due.
    pub fn fire_timers(&mut self) -> Vec<Update> {
        let mut updates = Vec::new();
        for timer in self.timers.take_due(Instant::now()) {
            if matches!(timer, Timer::IdleCheck | Timer::HumanIdleCheck) {
                // These decide on the registry as it is now ...
                let (more, idle) = self.read_registry();
                updates.extend(more);
                // ... and the interrupt backstop on the transcript.
                if timer == Timer::IdleCheck && idle {
                    updates.extend(self.read_transcript());
                }
            }
            updates.extend(self.step(Input::Timer(timer)));
        }
        updates
    }

    /// Resizes the PTY to the agent's window.
    pub fn resize(&self) {
        self.pty.resize();
    }

    /// Ends Claude Code.
    pub fn kill(&mut self) {
        self.pty.kill();
    }

    fn step(&mut self, input: Input) -> Vec<Update> {
        let effects = self.machine.step(input);
        self.apply(effects).unwrap_or_else(|(updates, _)| updates)
    }

    /// Carries out `effects` in order; the updates among them are returned. A failed
    /// write of the probe request or to the terminal stops there.
    fn apply(&mut self, effects: Vec<Effect>) -> Result<Vec<Update>, (Vec<Update>, anyhow::Error)> {
        let mut updates = Vec::new();
        for effect in effects {
            let done = match effect {
                Effect::Write(bytes) => self.pty.write(&bytes),
                Effect::WriteProbe(request) => {
                    if request.action == ProbeAction::Load {
                        super::probe::clear_spares(&self.probe_path);
                    }
                    write_json(&self.probe_path, &request)
                }
                Effect::RemoveProbe => {
                    let _ = std::fs::remove_file(&self.probe_path);
                    Ok(())
                }
                Effect::AddSpare(nonce) => super::probe::add_spare(&self.probe_path, nonce),
                Effect::MarkTranscript => {
                    self.transcript_mark = self.transcript.as_ref().map(|t| {
                        let len = crate::claude_code::transcript_len(t);
                        (t.clone(), len)
                    });
                    Ok(())
                }
                Effect::StartTimer(timer, after) => {
                    self.timers.start(timer, after);
                    Ok(())
                }
                Effect::CancelTimer(timer) => {
                    self.timers.cancel(timer);
                    Ok(())
                }
                Effect::WatchProbeExit { pid, nonce } => {
                    let watch = crate::process::notify_exit(pid, self.tx.clone(), move || {
                        ClaudeEvent::ProbeExited(nonce)
                    });
                    match watch {
                        Ok(watch) => self.probe_exit = Some(watch),
                        // Without a watch, Enter waits only the settle time.
                        Err(_) => {
                            self.probe_exit = None;
                            let _ = self.tx.send(ClaudeEvent::ProbeExited(nonce));
                        }
                    }
                    Ok(())
                }
                Effect::WatchUserEditor { pid } => {
                    let watch = crate::process::notify_exit(pid, self.tx.clone(), || {
                        ClaudeEvent::UserEditorClosed
                    });
                    match watch {
                        Ok(watch) => self.user_editor = Some(watch),
                        Err(_) => {
                            let _ = self.tx.send(ClaudeEvent::UserEditorClosed);
                        }
                    }
                    Ok(())
                }
                Effect::Report(update) => {
                    updates.push(update);
                    Ok(())
                }
            };
            if let Err(e) = done {
                return Err((updates, e));
            }
        }
        Ok(updates)
    }
}

/// The command line and environment of the hosted Claude Code.
fn claude_command(
    config: &ClaudeConfig,
    paths: &SessionPaths<'_>,
    session_id: &str,
    resume: bool,
) -> Result<CommandBuilder> {
    let exe = std::env::current_exe().context("failed to find agent-wrap itself")?;
    // Claude Code splits $EDITOR on spaces with no way to quote (docs/claude-code.md#editor-argv).
    if exe.to_string_lossy().contains(char::is_whitespace) {
        anyhow::bail!(
            "agent-wrap's path {} contains a space, which Claude Code cannot run as its \
             editor; install agent-wrap elsewhere",
            exe.display()
        );
    }
    let exe_word = crate::shell::quote(&exe.display().to_string());
    let mut cmd = CommandBuilder::new(&config.program);
    cmd.arg("--settings");
    cmd.arg(hook_settings(&exe_word));
    cmd.arg(if resume { "--resume" } else { "--session-id" });
    cmd.arg(session_id);
    // Issue 15: a new session that begins as a copy of another; `--session-id` names
    // the copy (docs/claude-code.md#session-resume).
    if let (false, Some(from)) = (resume, &config.fork_from) {
        cmd.args(["--resume", from, "--fork-session"]);
    }
    cmd.args(&config.extra_args);
    if let Some(dir) = &paths.working_dir {
        cmd.cwd(dir);
    }
    // Claude Code splits $EDITOR on spaces and runs it without a shell (docs/claude-code.md#editor-argv);
    // $VISUAL would win over it (docs/claude-code.md#editor-visual-wins), so it goes, kept for the human's Ctrl-G.
    let user_editor = std::env::var("VISUAL")
        .ok()
        .filter(|v| !v.is_empty())
        .or_else(|| std::env::var("EDITOR").ok())
        .unwrap_or_default();
    cmd.env_remove("VISUAL");
    cmd.env("EDITOR", format!("{} --probe", exe.display()));
    cmd.env(super::USER_EDITOR_ENV, user_editor);
    cmd.env(super::EVENTS_ENV, paths.events_dir);
    cmd.env(super::AGENT_DIR_ENV, paths.agent_dir);
    if config.fullscreen {
        cmd.env(crate::claude_code::FULLSCREEN_ENV, "1");
    }
    Ok(cmd)
}

/// `--settings` JSON that runs `<agent_wrap> --hook` for every hook the host listens
/// to, and `<agent_wrap> --status-line` as the status line: the only place an
/// interactive Claude Code reports its cost (docs/claude-code.md#status-line-cost). It
/// takes the place of the user's own status line in the agent's window only. Not
/// PreCompact and PostCompact: Claude Code prints a line for each of those hooks in the
/// conversation (docs/claude-code.md#compact-hook-notices), and `SessionStart` with
/// source `compact` and the registry tell a compaction without one.
pub fn hook_settings(agent_wrap: &str) -> String {
    let command = format!("{agent_wrap} --hook");
    let events = [
        "PermissionRequest",
        "PostToolUse",
        "PreToolUse",
        "SessionStart",
        "UserPromptSubmit",
        "Stop",
        "StopFailure",
        "Notification",
        "SessionEnd",
        "MessageDisplay",
    ];
    let hooks: serde_json::Map<String, serde_json::Value> = events
        .iter()
        .map(|e| {
            let entry = serde_json::json!([{"hooks": [{"type": "command", "command": &command}]}]);
            ((*e).to_owned(), entry)
        })
        .collect();
    let status_line = format!("{agent_wrap} --status-line");
    serde_json::json!({
        "hooks": hooks,
        "statusLine": {"type": "command", "command": status_line},
    })
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_name_every_hook() {
        let v: serde_json::Value = serde_json::from_str(&hook_settings("'/a b'")).unwrap();
        assert_eq!(
            v["hooks"]["Stop"][0]["hooks"][0]["command"],
            "'/a b' --hook"
        );
        assert_eq!(v["statusLine"]["command"], "'/a b' --status-line");
        assert!(v["hooks"]["SessionStart"].is_array());
    }
}
