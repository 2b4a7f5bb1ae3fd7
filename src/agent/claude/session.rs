//! One interactive Claude Code on a PTY that `agent-wrap` owns.
//!
//! The PTY's output is copied to the agent's window by a thread; the human's keys arrive
//! as [`ClaudeEvent::Input`] and are forwarded by the host's loop, which holds them back
//! while the editor probe runs so that keys and a delivery never mix. What Claude Code is
//! doing comes from its hooks ([`super::hook`]) and the probe ([`super::probe`]), never
//! from the screen. [`Session::on_event`] turns those events into [`Update`]s for the
//! host.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc::Sender;
use std::time::Duration;

use anyhow::{Context, Result};
use portable_pty::{ChildKiller, CommandBuilder, MasterPty, PtySize, native_pty_system};
use serde_json::Value;

use super::probe::ProbeRequest;
use crate::state::write_json;

/// How long the probe may take before the host concludes a dialog is open. Generous: on
/// a loaded machine the probe can take seconds, and a late answer is still taken.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(10);
/// After the probe timeout, Ctrl-G is pressed again this often until the probe starts.
/// Under load, Claude Code 2.1.332 dropped a Ctrl-G that came right after SessionStart
/// (docs/claude-code.md#hook-session-start), and a dialog may hold the keyboard for as
/// long as the human takes: the probe request stays in place, so a repeated Ctrl-G
/// answers the same delivery. Not sooner: a Ctrl-G that was only slow would open a
/// second editor, which the spare tokens of `probe` then answer quietly.
pub const PROBE_RETRY: Duration = Duration::from_secs(5);
/// How long after Enter the `UserPromptSubmit` acknowledgement may take (measured:
/// 26–47 ms, docs/design/claude-host.md).
pub const ACK_TIMEOUT: Duration = Duration::from_millis(500);
/// How long after the probe exits Claude Code needs to load the file into its box; a
/// late Enter is only a delay, an early one a newline, so Enter is retried on no ack.
pub const ENTER_SETTLE: Duration = Duration::from_millis(30);
/// The pause between held keys forwarded one by one (see `release_held`).
const KEY_GAP: Duration = Duration::from_millis(25);
/// At most this many pauses per release: the event loop is not held up for long.
const MAX_SPACED_KEYS: usize = 8;
/// How many times Enter (only Enter, never the text) is sent for one delivery.
pub const MAX_ENTERS: u32 = 3;
/// After the last Enter, this many more [`ACK_TIMEOUT`]s pass before the delivery gives
/// up: on a loaded machine the `UserPromptSubmit` hook (a process of its own) arrived
/// 2 s after a submit that had worked, and a give-up at 1.5 s failed a delivered task.
pub const LATE_ACK_WAITS: u32 = 16;
/// How long after Escape Claude Code is idle again (measured: about 0.1 s, docs/claude-code.md#box-escape-interrupts).
pub const INTERRUPT_SETTLE: Duration = Duration::from_millis(400);
/// How long a Stop hook may trail the registry's `idle` before the turn counts as
/// interrupted (measured: Stop comes 20–90 ms *before* idle, docs/claude-code.md#hook-stop).
pub const STOP_GRACE_AFTER_IDLE: Duration = Duration::from_millis(1500);
/// How many interrupt-backstop rounds wait for a late Stop once the transcript shows the
/// turn ended (see `turn_ended_in_transcript`).
pub const LATE_STOP_CHECKS: u32 = 10;
/// How long the human's keys must be quiet before a held task's box is checked again.
pub const REPROBE_QUIET: Duration = Duration::from_millis(1500);
/// How long Claude Code may take to accept input before a dialog is assumed.
pub const START_CHECK: Duration = Duration::from_secs(5);

/// A fresh delivery nonce, unique in this process: timers of a Claude Code that was
/// restarted must never match the deliveries of its successor.
fn next_nonce() -> u64 {
    static NONCE: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    NONCE.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1
}

/// Events from the session's threads and timers.
#[derive(Debug)]
pub enum ClaudeEvent {
    /// The human typed these bytes in the agent's window.
    Input(Vec<u8>),
    /// Claude Code exited; the text says how.
    Exited(String),
    /// The probe with this nonce did not answer in time.
    ProbeTimeout(u64),
    /// The probe of this held delivery has not started yet: press Ctrl-G again.
    ProbeRetry(u64),
    /// Enter for the delivery with this nonce was not acknowledged in time.
    AckTimeout(u64),
    /// Time to start Claude Code again after it exited.
    Restart,
    /// Time to clear the box after an interrupt (the nonce of that interrupt).
    Clear(u64),
    /// The session registry said idle during our turn; if no Stop came since, the turn
    /// was interrupted (the nonce of the delivery).
    IdleCheck(u64),
    /// Time to check that Claude Code (of this session generation) accepted input.
    StartCheck(u64),
    /// The registry said idle during the human's own turn: if it still does, the turn
    /// ended without a hook (an interrupt).
    HumanIdleCheck,
    /// The human's own editor (their Ctrl-G) exited.
    UserEditorClosed,
    /// The probe that loaded delivery `nonce` exited: Claude Code takes the file back.
    ProbeExited(u64),
    /// Time to press Enter for delivery `nonce`.
    Enter(u64),
    /// The human's keys have been quiet since burst `generation`: check a held task's box
    /// again (the human may have cleared their draft, which fires no hook).
    Reprobe(u64),
}

/// What the host must act on after an event.
#[derive(Debug, PartialEq)]
pub enum Update {
    /// Claude Code accepts input; `session_id` is its current session.
    Ready { session_id: String },
    /// Our prompt was submitted (delivery acknowledged); `human_input` when keys the
    /// human typed during the delivery went into the turn.
    Acked { human_input: bool },
    /// Our turn ended with an answer.
    Answered(String),
    /// Our turn ended with an API error.
    Failed(String),
    /// The box holds a human's draft: the task waits.
    Draft,
    /// The human submitted a prompt of their own.
    HumanTurn,
    /// A turn that was not ours ended.
    Idle,
    /// The editor probe never ran: a dialog has the keyboard; the task waits.
    DialogOpen,
    /// Claude Code asks the human (a permission prompt) during a turn.
    NeedsHuman(String),
    /// Work goes on after the human answered.
    Resumed,
    /// The human typed into the turn the task is waiting on.
    HumanInput,
    /// The human pressed Escape in the agent's window and interrupted our turn.
    HumanInterrupted,
    /// Streamed text of our turn.
    Output(String),
    /// Delivery gave up: the text is the reason.
    Undeliverable(String),
}

/// Where a delivery stands.
#[derive(Debug, PartialEq)]
enum Phase {
    /// Not ready (before SessionStart) or nothing of ours in flight.
    Idle,
    /// The probe was asked to load `text`.
    Probing {
        nonce: u64,
        text: String,
        /// The agent command `/compact`, not a task: PreCompact acknowledges it.
        compact: bool,
    },
    /// Enter was sent for `text`; waiting for UserPromptSubmit.
    Submitted {
        nonce: u64,
        text: String,
        enters: u32,
    },
    /// Our prompt (`text`, delivery `nonce`) runs.
    Working { nonce: u64, text: String },
    /// Our `/compact` was entered; PreCompact then PostCompact follow (docs/claude-code.md#compact-command).
    Compacting {
        nonce: u64,
        started: bool,
        enters: u32,
    },

    /// After an interrupt: the box is checked and cleared of our task.
    Clearing { nonce: u64, text: String },
    /// The probe found a draft (delivery `nonce`) and leaves the box as it was. Claude
    /// Code is still in its editor until the probe has exited: the human's keys wait until
    /// then, or an Enter that submits the draft would be lost.
    Returning { nonce: u64 },
}

/// How to start Claude Code.
#[derive(Clone, Debug)]
pub struct ClaudeConfig {
    pub program: PathBuf,
    /// Arguments after `--` on the agent-wrap command line.
    pub extra_args: Vec<String>,
    /// Issue 15 (`agent-wrap NAME2 --fork NAME`): the session whose conversation a new
    /// session starts as a copy of (docs/claude-code.md#fork-session).
    pub fork_from: Option<String>,
}

/// A running Claude Code.
pub struct Session {
    master: Box<dyn MasterPty + Send>,
    writer: Box<dyn Write + Send>,
    killer: Box<dyn ChildKiller + Send + Sync>,
    pub pid: u32,
    pub ready: bool,
    pub session_id: String,
    phase: Phase,
    /// The text of the last task delivered, for clearing it after an interrupt.
    last_text: String,
    probe_path: PathBuf,
    nonce: u64,
    /// Human keys held back while the probe runs.
    held: Vec<Vec<u8>>,
    /// True from our delivery's acknowledgement until the next delivery starts.
    streaming: bool,
    /// This Claude Code process's generation, so timers of a predecessor are ignored.
    generation: u64,
    /// The delivery whose probe timed out: a late "loaded" from it is still taken.
    timed_out: Option<u64>,
    /// The delivery whose probe has started (its `started` event came).
    probe_started: Option<u64>,
    /// The transcript, as the last hook event named it, and its length when our
    /// delivery began: a Stop is ours only if our prompt was written after that.
    transcript: Option<PathBuf>,
    transcript_mark: Option<(PathBuf, u64)>,
    /// The `prompt_id` of our acknowledged prompt: the Stop of our turn carries it.
    our_prompt_id: Option<String>,
    /// How often the interrupt backstop found our turn ended in the transcript and
    /// waited for its late Stop.
    late_stop_checks: u32,
    /// A prompt of the human's own runs (from its UserPromptSubmit to its end).
    human_turn: bool,
    /// The human's own editor, opened by their Ctrl-G, while it runs: no Ctrl-G of ours
    /// may go into it.
    user_editor: Option<crate::process::ExitWatch>,
    /// Watches the probe that loaded the current delivery, for its exit.
    probe_exit: Option<crate::process::ExitWatch>,
    /// Claude Code's own registry file for this process (`~/.claude/sessions/<pid>.json`).
    registry: Option<PathBuf>,
    /// A task interrupted by the previous Claude Code, which `--resume` may put back
    /// into the box: cleared once this one is ready.
    clear_first: Option<String>,
    /// Issue 15: SessionStart came, but the box may not take keys yet; ready once the
    /// registry says idle (or at the START_CHECK backstop).
    start_pending: bool,
    tx: Sender<ClaudeEvent>,
}

/// Everything the hosted process needs to know about its host.
pub struct SessionPaths<'a> {
    pub agent_dir: &'a Path,
    pub events_dir: &'a Path,
    pub probe_path: PathBuf,
}

impl Session {
    /// Starts Claude Code: with `--session-id ID` for a new session, `--resume ID` to
    /// continue one.
    pub fn spawn(
        config: &ClaudeConfig,
        paths: SessionPaths<'_>,
        session_id: &str,
        resume: bool,
        clear_first: Option<String>,
        tx: Sender<ClaudeEvent>,
    ) -> Result<Self> {
        let exe = std::env::current_exe().context("failed to find agent-wrap itself")?;
        // Claude Code splits $EDITOR on spaces with no way to quote (docs/claude-code.md#editor-argv).
        if exe.to_string_lossy().contains(char::is_whitespace) {
            anyhow::bail!(
                "agent-wrap's path {} contains a space, which Claude Code cannot run as its \
                 editor; install agent-wrap elsewhere",
                exe.display()
            );
        }
        // A request left by a Claude Code that died must not answer a human's Ctrl-G.
        let _ = std::fs::remove_file(&paths.probe_path);
        let hook = format!("{} --hook", shell_quote(&exe.display().to_string()));
        let settings = hook_settings(&hook);
        let mut cmd = CommandBuilder::new(&config.program);
        cmd.arg("--settings");
        cmd.arg(settings);
        cmd.arg(if resume { "--resume" } else { "--session-id" });
        cmd.arg(session_id);
        // Issue 15: a new session that begins as a copy of another; `--session-id` names
        // the copy (docs/claude-code.md#fork-session).
        if let (false, Some(from)) = (resume, &config.fork_from) {
            cmd.args(["--resume", from, "--fork-session"]);
        }
        cmd.args(&config.extra_args);
        if let Ok(dir) = std::env::current_dir() {
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

        let pty = native_pty_system()
            .openpty(window_size())
            .map_err(|e| anyhow::anyhow!("failed to open a pty: {e}"))?;
        let mut child = pty
            .slave
            .spawn_command(cmd)
            .map_err(|e| anyhow::anyhow!("failed to start {}: {e}", config.program.display()))?;
        drop(pty.slave);
        let pid = child.process_id().unwrap_or(0);
        let killer = child.clone_killer();
        let mut reader = pty
            .master
            .try_clone_reader()
            .map_err(|e| anyhow::anyhow!("pty reader: {e}"))?;
        let writer = pty
            .master
            .take_writer()
            .map_err(|e| anyhow::anyhow!("pty writer: {e}"))?;

        // Claude's screen goes to the agent's window as it comes.
        std::thread::spawn(move || {
            let mut buf = [0u8; 16384];
            let mut out = std::io::stdout();
            while let Ok(n) = reader.read(&mut buf) {
                if n == 0 {
                    break;
                }
                let _ = out.write_all(&buf[..n]).and_then(|()| out.flush());
            }
        });
        let generation = next_nonce();
        let check_tx = tx.clone();
        std::thread::spawn(move || {
            std::thread::sleep(START_CHECK);
            let _ = check_tx.send(ClaudeEvent::StartCheck(generation));
        });
        let exit_tx = tx.clone();
        std::thread::spawn(move || {
            let how = match child.wait() {
                Ok(s) if s.signal().is_some() => {
                    format!("killed by {}", s.signal().unwrap_or("a signal"))
                }
                Ok(s) => format!("exit status {}", s.exit_code()),
                Err(e) => format!("unknown status ({e})"),
            };
            let _ = exit_tx.send(ClaudeEvent::Exited(how));
        });
        Ok(Self {
            master: pty.master,
            writer,
            killer,
            pid,
            ready: false,
            session_id: session_id.to_owned(),
            phase: Phase::Idle,
            last_text: String::new(),
            probe_path: paths.probe_path,
            nonce: 0,
            held: Vec::new(),
            probe_exit: None,
            streaming: false,
            generation,
            timed_out: None,
            probe_started: None,
            transcript: None,
            transcript_mark: None,
            late_stop_checks: 0,
            our_prompt_id: None,
            human_turn: false,
            user_editor: None,
            registry: None,
            clear_first: clear_first.map(|p| escape_leading_slash(&p)),
            start_pending: false,
            tx,
        })
    }

    /// Returns true if and only if a new task can be delivered now.
    pub fn can_deliver(&self) -> bool {
        self.ready && self.phase == Phase::Idle && !self.human_turn && self.user_editor.is_none()
    }

    /// Starts delivering the task `prompt`: asks the probe to load it into an empty box.
    /// A task is always a prompt, never a command ([`escape_leading_slash`]).
    pub fn deliver(&mut self, prompt: &str) -> Result<()> {
        self.probe_deliver(escape_leading_slash(prompt), false)
    }

    /// Starts the agent command `/compact`, with optional `instructions`. It goes through
    /// the same probe as a task, so it never lands on a human's draft.
    pub fn compact(&mut self, instructions: &str) -> Result<()> {
        let text = match instructions.trim() {
            "" => "/compact".to_owned(),
            i => format!("/compact {i}"),
        };
        self.probe_deliver(text, true)
    }

    fn probe_deliver(&mut self, text: String, compact: bool) -> Result<()> {
        // Spares of an earlier delivery were used or dropped long ago.
        super::probe::clear_spares(&self.probe_path);
        self.nonce = next_nonce();
        let request = ProbeRequest::new(self.nonce, "deliver", text.clone());
        write_json(&self.probe_path, &request)?;
        self.last_text = text.clone();
        self.phase = Phase::Probing {
            nonce: self.nonce,
            text,
            compact,
        };
        self.streaming = false;
        self.probe_started = None;
        self.timed_out = None;
        self.late_stop_checks = 0;
        self.our_prompt_id = None;
        self.transcript_mark = self.transcript.as_ref().map(|t| {
            let len = std::fs::metadata(t).map_or(0, |m| m.len());
            (t.clone(), len)
        });
        self.write(b"\x07")?; // Ctrl-G: Claude Code runs $EDITOR, our probe.
        self.timer(PROBE_TIMEOUT, ClaudeEvent::ProbeTimeout(self.nonce));
        Ok(())
    }

    /// Presses Ctrl-G again for delivery `n`, held since its probe timed out, until the
    /// probe has started.
    fn retry_probe(&mut self, n: u64) {
        let held = self.phase == Phase::Idle && self.timed_out == Some(n);
        if !held || self.probe_started == Some(n) {
            return;
        }
        // Never into the human's own editor. Each repeat comes with a spare token, so a
        // probe that finds the request already taken answers it quietly (`probe`).
        if self.user_editor.is_none() && super::probe::add_spare(&self.probe_path, n).is_ok() {
            let _ = self.write(b"\x07");
        }
        self.timer(PROBE_RETRY, ClaudeEvent::ProbeRetry(n));
    }

    /// Interrupts the running turn (Escape, docs/claude-code.md#box-escape-interrupts). No Stop hook follows; Claude Code
    /// is idle about 0.1 s later and may have put our prompt back into the box, so the box
    /// is cleared of it shortly after.
    pub fn interrupt(&mut self) {
        let text = match std::mem::replace(&mut self.phase, Phase::Idle) {
            Phase::Probing { text, .. } | Phase::Submitted { text, .. } => text,
            _ => self.last_text.clone(),
        };
        let _ = self.write(b"\x1b");
        // A delivery held by a dialog is over too: no more Ctrl-G retries for it.
        self.timed_out = None;
        self.nonce = next_nonce();
        self.phase = Phase::Clearing {
            nonce: self.nonce,
            text,
        };
        self.timer(INTERRUPT_SETTLE, ClaudeEvent::Clear(self.nonce));
    }

    /// Forwards the human's keys, or holds them while the probe runs. Keys typed into
    /// our running turn are reported: the task is marked, and a lone Escape (not the
    /// start of an arrow key's sequence) interrupts it, after which no Stop follows.
    pub fn input(&mut self, bytes: &[u8]) -> Option<Update> {
        // The terminal's answers to Claude Code's own queries (device attributes, focus
        // reports) are not the human typing: pass them on at once.
        if is_terminal_reply(bytes) {
            let _ = self.write(bytes);
            return None;
        }
        // From the probe until the acknowledgement the box is ours: keys typed now would
        // end up inside the task. They wait, and go into the turn once it runs.
        let delivering = matches!(
            self.phase,
            Phase::Probing { .. }
                | Phase::Clearing { .. }
                | Phase::Submitted { .. }
                | Phase::Returning { .. }
                | Phase::Compacting { started: false, .. }
        );
        if delivering {
            self.held.push(bytes.to_vec());
            return None;
        }
        let _ = self.write(bytes);
        let Phase::Working { text, .. } = &self.phase else {
            return None;
        };
        if bytes != b"\x1b" {
            return Some(Update::HumanInput);
        }
        self.nonce = next_nonce();
        self.phase = Phase::Clearing {
            nonce: self.nonce,
            text: text.clone(),
        };
        self.timer(INTERRUPT_SETTLE, ClaudeEvent::Clear(self.nonce));
        Some(Update::HumanInterrupted)
    }

    /// Resizes the PTY to the agent's window.
    pub fn resize(&self) {
        let _ = self.master.resize(window_size());
    }

    /// Ends Claude Code.
    pub fn kill(&mut self) {
        let _ = self.killer.kill();
    }

    fn write(&mut self, bytes: &[u8]) -> Result<()> {
        self.writer.write_all(bytes)?;
        self.writer.flush()?;
        Ok(())
    }

    fn timer(&self, after: Duration, event: ClaudeEvent) {
        let tx = self.tx.clone();
        std::thread::spawn(move || {
            std::thread::sleep(after);
            let _ = tx.send(event);
        });
    }

    /// Presses Enter for delivery `nonce` once the probe has exited and Claude Code has
    /// had a moment to load its file; after a draft, releases the human's keys instead.
    fn enter_after_probe_exits(&mut self, event: &Value, nonce: u64) {
        let pid = event["pid"].as_i64().and_then(|p| i32::try_from(p).ok());
        let watch = pid.and_then(|pid| {
            crate::process::notify_exit(pid, self.tx.clone(), move || {
                ClaudeEvent::ProbeExited(nonce)
            })
            .ok()
        });
        if watch.is_none() {
            self.timer(ENTER_SETTLE, ClaudeEvent::Enter(nonce));
        }
        self.probe_exit = watch;
    }

    /// Sends Enter for the delivery in flight and waits for its acknowledgement, or ends
    /// the return from a draft probe.
    fn press_enter(&mut self, n: u64) -> Option<Update> {
        if self.phase == (Phase::Returning { nonce: n }) {
            self.phase = Phase::Idle;
            self.release_held();
            return None;
        }

        let (Phase::Submitted { nonce, enters, .. }
        | Phase::Compacting {
            nonce,
            enters,
            started: false,
        }) = &mut self.phase
        else {
            return None;
        };
        if *nonce != n {
            return None;
        }
        if *enters >= MAX_ENTERS + LATE_ACK_WAITS {
            self.phase = Phase::Idle;
            self.release_held();
            return Some(Update::Undeliverable(
                "Claude Code did not take the task after Enter".into(),
            ));
        }
        let press = *enters < MAX_ENTERS;
        *enters += 1;
        if press {
            let _ = self.write(b"\r");
        }
        self.timer(ACK_TIMEOUT, ClaudeEvent::AckTimeout(n));
        None
    }

    /// Forwards the held keys in the order typed. Claude Code reads bytes that arrive
    /// together as one key sequence, so two Escapes written at once are not two Escapes
    /// (they would not clear a draft): a key that starts with Escape goes on its own, a
    /// moment after the keys before it.
    fn release_held(&mut self) {
        let held = std::mem::take(&mut self.held);
        for (i, keys) in held.iter().enumerate() {
            if i > 0 && keys.first() == Some(&0x1b) && i <= MAX_SPACED_KEYS {
                std::thread::sleep(KEY_GAP);
            }
            let _ = self.write(keys);
        }
    }

    /// Reads Claude Code's own session registry (`~/.claude/sessions/<pid>.json`, docs/claude-code.md#session-registry
    /// 4.6). An interrupt fires no hook, but the registry goes `idle`: if our turn is
    /// still open then, a Stop must follow soon, or the turn was interrupted.
    pub fn registry_changed(&mut self, sessions_dir: &Path) -> Option<Update> {
        self.registry = Some(sessions_dir.join(format!("{}.json", self.pid)));
        if !self.registry_idle() {
            return None;
        }
        if self.start_pending {
            return self.become_ready();
        }
        if self.human_turn {
            self.timer(STOP_GRACE_AFTER_IDLE, ClaudeEvent::HumanIdleCheck);
        }
        match self.phase {
            Phase::Working { nonce, .. }
            | Phase::Compacting {
                nonce,
                started: true,
                ..
            } => {
                self.timer(STOP_GRACE_AFTER_IDLE, ClaudeEvent::IdleCheck(nonce));
            }
            _ => {}
        }
        None
    }

    /// Claude Code takes input now (its SessionStart came, and its registry says idle).
    fn become_ready(&mut self) -> Option<Update> {
        self.ready = true;
        self.start_pending = false;
        if let Some(text) = self.clear_first.take() {
            self.nonce = next_nonce();
            self.phase = Phase::Clearing {
                nonce: self.nonce,
                text,
            };
            self.timer(INTERRUPT_SETTLE, ClaudeEvent::Clear(self.nonce));
        }
        Some(Update::Ready {
            session_id: self.session_id.clone(),
        })
    }

    /// Returns true if and only if Claude Code's registry says it is idle.
    fn registry_idle(&self) -> bool {
        self.registry
            .as_deref()
            .and_then(|p| crate::state::read_optional(p).ok().flatten())
            .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
            .is_some_and(|s| s["status"] == "idle")
    }

    /// Handles a timer event.
    pub fn on_timer(&mut self, event: &ClaudeEvent) -> Option<Update> {
        let registry_idle = self.registry_idle();
        // Read only for the interrupt backstop: the transcript can be large.
        let turn_ended = matches!(event, ClaudeEvent::IdleCheck(_))
            && registry_idle
            && match &self.phase {
                Phase::Working { text, .. } => self.turn_ended_in_transcript(text),
                _ => false,
            };
        match (event, &mut self.phase) {
            // The registry may still say idle just after a turn started (its busy update
            // trails the hooks): only idle now, with no Stop, means interrupted.
            (ClaudeEvent::IdleCheck(n), Phase::Working { nonce, .. })
                if n == nonce && !registry_idle =>
            {
                None
            }
            // Idle and no Stop yet, but the transcript says the turn ended normally (an
            // interrupted turn writes no `turn_duration`, docs/claude-code.md#transcript):
            // the Stop hook, a process of its own, is late. It was 1.2 s late on a loaded
            // machine; after 15 s the transcript's answer is taken without it.
            (ClaudeEvent::IdleCheck(n), Phase::Working { nonce, text })
                if n == nonce && turn_ended =>
            {
                let (nonce, text) = (*nonce, text.clone());
                self.late_stop_checks += 1;
                if self.late_stop_checks < LATE_STOP_CHECKS {
                    self.timer(STOP_GRACE_AFTER_IDLE, ClaudeEvent::IdleCheck(nonce));
                    return None;
                }
                self.phase = Phase::Idle;
                let answer = self
                    .transcript
                    .as_deref()
                    .and_then(|t| turn_text(t, &text))
                    .unwrap_or_default();
                Some(Update::Answered(answer))
            }
            (ClaudeEvent::IdleCheck(n), Phase::Working { nonce, text }) if n == nonce => {
                // Idle, and still no Stop: interrupted (the human's Escape or Ctrl-C).
                let text = text.clone();
                self.nonce = next_nonce();
                self.phase = Phase::Clearing {
                    nonce: self.nonce,
                    text,
                };
                self.timer(Duration::ZERO, ClaudeEvent::Clear(self.nonce));
                Some(Update::HumanInterrupted)
            }
            // Issue 15: the backstop for a start whose registry never said idle.
            (ClaudeEvent::StartCheck(g), _) if *g == self.generation && self.start_pending => {
                self.become_ready()
            }
            (ClaudeEvent::StartCheck(g), _) if *g == self.generation && !self.ready => {
                Some(Update::DialogOpen)
            }
            (ClaudeEvent::HumanIdleCheck, _) if self.human_turn && registry_idle => {
                self.human_turn = false;
                (self.phase == Phase::Idle).then_some(Update::Idle)
            }
            (ClaudeEvent::UserEditorClosed, _) => {
                self.user_editor = None;
                (self.phase == Phase::Idle).then_some(Update::Idle)
            }
            (
                ClaudeEvent::IdleCheck(n),
                Phase::Compacting {
                    nonce,
                    started: true,
                    ..
                },
            ) if n == nonce && registry_idle => {
                self.phase = Phase::Idle;
                Some(Update::Failed(
                    "Claude Code stopped without finishing the compaction".into(),
                ))
            }
            (ClaudeEvent::Clear(n), Phase::Clearing { nonce, text }) if n == nonce => {
                let (nonce, request) = (*nonce, ProbeRequest::new(*nonce, "clear", text.clone()));
                if write_json(&self.probe_path, &request).is_err() || self.write(b"\x07").is_err() {
                    self.phase = Phase::Idle;
                    return Some(Update::Idle);
                }
                self.timer(PROBE_TIMEOUT, ClaudeEvent::ProbeTimeout(nonce));
                None
            }
            (ClaudeEvent::ProbeTimeout(n), Phase::Clearing { nonce, .. }) if n == nonce => {
                let _ = std::fs::remove_file(&self.probe_path);
                self.phase = Phase::Idle;
                Some(Update::Idle)
            }
            (ClaudeEvent::ProbeTimeout(n), Phase::Probing { nonce, .. }) if n == nonce => {
                self.timed_out = Some(*n);
                // The editor has not run: a dialog has the keyboard. The request stays, so a
                // probe that runs late still answers it exactly (see `on_probe`).
                self.phase = Phase::Idle;
                self.release_held();
                self.retry_probe(*n);
                Some(Update::DialogOpen)
            }
            (ClaudeEvent::ProbeRetry(n), _) => {
                let n = *n;
                self.retry_probe(n);
                None
            }
            (ClaudeEvent::ProbeExited(n), _) => {
                self.probe_exit = None;
                self.timer(ENTER_SETTLE, ClaudeEvent::Enter(*n));
                None
            }
            (ClaudeEvent::Enter(n) | ClaudeEvent::AckTimeout(n), _) => {
                let n = *n;
                self.press_enter(n)
            }
            _ => None,
        }
    }

    /// Handles one hook or probe event.
    pub fn on_event(&mut self, event: &Value) -> Option<Update> {
        let name = event["hook_event_name"].as_str().unwrap_or("");
        let text = |key: &str| event[key].as_str().unwrap_or("").to_owned();
        if let Some(t) = event["transcript_path"].as_str() {
            self.transcript = Some(PathBuf::from(t));
        }
        match name {
            "SessionStart" => {
                if let Some(id) = event["session_id"].as_str() {
                    self.session_id = id.to_owned();
                }
                // Issue 15: Claude Code 2.1.332 fires a fork's SessionStart before its box
                // takes keys, and a Ctrl-G sent then is lost (docs/claude-code.md#fork-session):
                // a fork is ready once its registry entry says idle, or after START_CHECK
                // at the latest.
                if event["source"] == "fork" && !self.ready && !self.registry_idle() {
                    self.start_pending = true;
                    self.timer(START_CHECK, ClaudeEvent::StartCheck(self.generation));
                    return None;
                }
                self.become_ready()
            }
            "Probe" => self.on_probe(event),
            "UserPromptSubmit" => match &self.phase {
                // Compared without trailing whitespace, which the box may not keep.
                Phase::Submitted {
                    text: ours, nonce, ..
                } if ours.trim_end() == text("prompt").trim_end() => {
                    self.our_prompt_id = event["prompt_id"].as_str().map(str::to_owned);
                    self.phase = Phase::Working {
                        nonce: *nonce,
                        text: ours.clone(),
                    };
                    self.streaming = true;
                    // Keys held back during the delivery go into the running turn.
                    let human_input = !self.held.is_empty();
                    self.release_held();
                    Some(Update::Acked { human_input })
                }
                Phase::Working { .. } => Some(Update::HumanInput),
                // The human's own prompt. Our delivery, if one is under way, keeps its
                // phase: only our acknowledgement or a timeout ends it.
                _ => {
                    self.human_turn = true;
                    Some(Update::HumanTurn)
                }
            },
            "Stop" | "StopFailure" if !matches!(self.phase, Phase::Working { .. }) => {
                // The end of the human's turn (ours has not started): our delivery, if
                // any, goes on.
                self.human_turn = false;
                (self.phase == Phase::Idle).then_some(Update::Idle)
            }
            // A Stop names the prompt of its turn (`prompt_id`, as its UserPromptSubmit
            // did, docs/claude-code.md#hook-stop). One that is not our acknowledged
            // prompt's ends the human's turn, which they submitted just as we delivered:
            // Claude Code queued our prompt, and our turn comes next. Found by the suite
            // under load, where the human's UserPromptSubmit came 1.5 s late.
            "Stop" | "StopFailure"
                if matches!(self.phase, Phase::Working { .. })
                    && self.our_prompt_id.is_some()
                    && event["prompt_id"].as_str().is_some()
                    && event["prompt_id"].as_str() != self.our_prompt_id.as_deref() =>
            {
                self.human_turn = false;
                None
            }
            "Stop" | "StopFailure" => {
                let was = std::mem::replace(&mut self.phase, Phase::Idle);
                let message = text("last_assistant_message");
                match (was, name) {
                    (Phase::Working { text: prompt, .. }, "Stop") => {
                        // With tool calls, Stop carries only the last block
                        // (docs/claude-code.md#hook-stop): the transcript has the whole turn.
                        let transcript = event["transcript_path"].as_str().map(Path::new);
                        let full = transcript.and_then(|t| turn_text(t, &prompt));
                        Some(Update::Answered(full.unwrap_or(message)))
                    }
                    (Phase::Working { .. }, _) => Some(Update::Failed(message)),
                    _ => Some(Update::Idle),
                }
            }
            "PermissionRequest" => Some(Update::NeedsHuman(format!(
                "permission for {}",
                text("tool_name")
            ))),
            "PostToolUse" if matches!(self.phase, Phase::Working { .. }) => Some(Update::Resumed),
            "PreCompact" => match &mut self.phase {
                Phase::Compacting { started, .. } => {
                    *started = true;
                    self.release_held();
                    Some(Update::Acked { human_input: false })
                }
                _ => None,
            },
            "PostCompact" if matches!(self.phase, Phase::Compacting { .. }) => {
                self.phase = Phase::Idle;
                let summary = text("compact_summary");
                Some(Update::Answered(format!(
                    "Compacted the conversation (summary: {} characters).",
                    summary.chars().count()
                )))
            }
            // MessageDisplay hooks run as their own processes and may land just after
            // Stop: text streamed since our last delivery belongs to that task.
            "MessageDisplay" if self.streaming => Some(Update::Output(text("delta"))),
            "Notification" if text("notification_type") == "permission_prompt" => {
                Some(Update::NeedsHuman(text("message")))
            }
            _ => None,
        }
    }

    /// True when the transcript shows our prompt, written since the delivery began,
    /// followed by the `turn_duration` line of a turn that ended normally.
    fn turn_ended_in_transcript(&self, prompt: &str) -> bool {
        let Some(transcript) = self.transcript.as_deref() else {
            return false;
        };
        let from = match &self.transcript_mark {
            Some((path, len)) if path == transcript => *len,
            _ => 0,
        };
        let Ok(Some(bytes)) = crate::state::read_optional(transcript) else {
            return false;
        };
        let lines: Vec<Value> = bytes
            .get(from as usize..)
            .unwrap_or(&[])
            .split(|&b| b == b'\n')
            .filter_map(|l| serde_json::from_slice(l).ok())
            .collect();
        lines
            .iter()
            .rposition(|v| is_user_prompt(v, prompt))
            .is_some_and(|at| {
                lines[at + 1..]
                    .iter()
                    .any(|v| v["type"] == "system" && v["subtype"] == "turn_duration")
            })
    }

    fn on_probe(&mut self, event: &Value) -> Option<Update> {
        let result = event["result"].as_str().unwrap_or("");
        let nonce = event["nonce"].as_u64();
        if result == "started" {
            // Our Ctrl-G got through: no more retries for this delivery.
            self.probe_started = nonce;
            return None;
        }
        if result == "user-editor" {
            // The human's own Ctrl-G: no Ctrl-G of ours may go into their editor.
            let pid = event["pid"].as_i64().and_then(|p| i32::try_from(p).ok());
            self.user_editor = pid.and_then(|pid| {
                crate::process::notify_exit(pid, self.tx.clone(), || ClaudeEvent::UserEditorClosed)
                    .ok()
            });
            return None;
        }
        if let Phase::Clearing { nonce: ours, .. } = &self.phase {
            if nonce != Some(*ours) {
                return None;
            }
            self.phase = Phase::Idle;
            self.release_held();
            return Some(Update::Idle);
        }
        // A probe that ran after its timeout still loaded our task: submit it.
        if self.phase == Phase::Idle
            && result == "loaded"
            && nonce.is_some()
            && nonce == self.timed_out
        {
            let nonce = nonce.unwrap_or_default();
            self.timed_out = None;
            self.phase = Phase::Submitted {
                nonce,
                text: self.last_text.clone(),
                enters: 0,
            };
            self.enter_after_probe_exits(event, nonce);
            return Some(Update::Resumed);
        }
        // ... or found a human's draft: the task waits for it, as on time.
        if self.phase == Phase::Idle
            && result == "draft"
            && nonce.is_some()
            && nonce == self.timed_out
        {
            self.timed_out = None;
            self.phase = Phase::Returning {
                nonce: nonce.unwrap_or_default(),
            };
            self.enter_after_probe_exits(event, nonce.unwrap_or_default());
            return Some(Update::Draft);
        }
        let Phase::Probing {
            nonce: ours,
            text,
            compact,
        } = &self.phase
        else {
            return None;
        };
        if nonce != Some(*ours) {
            return None;
        }
        let (nonce, text, compact) = (*ours, text.clone(), *compact);
        if result == "loaded" {
            self.phase = if compact {
                Phase::Compacting {
                    nonce,
                    started: false,
                    enters: 0,
                }
            } else {
                Phase::Submitted {
                    nonce,
                    text,
                    enters: 0,
                }
            };
            // Held keys wait for the acknowledgement: typed now, they would join the task.
            self.enter_after_probe_exits(event, nonce);
            return None;
        }
        self.phase = Phase::Returning { nonce };
        self.enter_after_probe_exits(event, nonce);
        Some(Update::Draft)
    }
}

/// The whole text of the turn that answered `prompt`: every assistant text block after
/// the last user line holding `prompt`, from the transcript (docs/claude-code.md#transcript). `None` when the
/// turn cannot be found, and the caller keeps Stop's `last_assistant_message`.
pub fn turn_text(transcript: &Path, prompt: &str) -> Option<String> {
    let bytes = crate::state::read_optional(transcript).ok()??;
    let lines: Vec<Value> = bytes
        .split(|&b| b == b'\n')
        .filter_map(|l| serde_json::from_slice(l).ok())
        .collect();
    let start = lines.iter().rposition(|v| is_user_prompt(v, prompt))?;
    let texts: Vec<&str> = lines[start + 1..]
        .iter()
        .filter(|v| v["type"] == "assistant")
        .filter_map(|v| v["message"]["content"].as_array())
        .flatten()
        .filter(|b| b["type"] == "text")
        .filter_map(|b| b["text"].as_str())
        .collect();
    (!texts.is_empty()).then(|| texts.join("\n\n"))
}

/// Returns true if and only if transcript line `v` is a user line holding `prompt`.
fn is_user_prompt(v: &Value, prompt: &str) -> bool {
    v["type"] == "user" && {
        let content = &v["message"]["content"];
        let texts: Vec<&str> = match content.as_array() {
            Some(blocks) => blocks.iter().filter_map(|b| b["text"].as_str()).collect(),
            None => content.as_str().into_iter().collect(),
        };
        texts.iter().any(|t| t.trim() == prompt.trim())
    }
}

/// Returns true if and only if `bytes` is a terminal's reply or report, not a key: a DCS
/// string (`ESC P … ESC \\`), a device-attributes answer (`ESC [ ? … c`, `ESC [ > … c`)
/// or a focus report (`ESC [ I`, `ESC [ O`).
pub fn is_terminal_reply(bytes: &[u8]) -> bool {
    bytes.starts_with(b"\x1bP")
        || (bytes.starts_with(b"\x1b[?") || bytes.starts_with(b"\x1b[>")) && bytes.ends_with(b"c")
        || bytes == b"\x1b[I"
        || bytes == b"\x1b[O"
}

/// Makes `prompt` a prompt, never a slash command.
///
/// Claude Code runs a slash command when the submitted text, with leading whitespace
/// trimmed, starts with `/`; since 2.1.332 a leading space or newline no longer stops
/// that, and invisible characters are stripped (docs/claude-code.md#box-leading-slash).
/// So one `\` goes right before that `/`: a markdown escape the model reads as `/`, and
/// the only byte we ever add. Every other prompt, `!`, `#`, `&`, `?` and `@` included, is
/// delivered untouched (#box-leading-other). See docs/design/slash-led-tasks.md.
pub fn escape_leading_slash(prompt: &str) -> String {
    // JavaScript's trim(): Unicode white space plus the byte-order mark.
    let body = prompt.trim_start_matches(|c: char| c.is_whitespace() || c == '\u{feff}');
    if body.starts_with('/') {
        let at = prompt.len() - body.len();
        format!("{}\\{}", &prompt[..at], body)
    } else {
        prompt.to_owned()
    }
}

/// `--settings` JSON that runs `command` for every hook the host listens to.
pub fn hook_settings(command: &str) -> String {
    let events = [
        "PermissionRequest",
        "PostToolUse",
        "PreCompact",
        "PostCompact",
        "SessionStart",
        "UserPromptSubmit",
        "Stop",
        "StopFailure",
        "Notification",
        "SessionEnd",
        "MessageDisplay",
    ];
    let hooks: serde_json::Map<String, Value> = events
        .iter()
        .map(|e| {
            let entry = serde_json::json!([{"hooks": [{"type": "command", "command": command}]}]);
            ((*e).to_owned(), entry)
        })
        .collect();
    serde_json::json!({ "hooks": hooks }).to_string()
}

fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// The agent window's size, or 200x50 without a terminal.
fn window_size() -> PtySize {
    let (cols, rows) = crossterm::terminal::size().unwrap_or((200, 50));
    PtySize {
        rows,
        cols,
        pixel_width: 0,
        pixel_height: 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_leading_slash_is_escaped_and_with_one_backslash() {
        assert_eq!(escape_leading_slash("/compact now"), "\\/compact now");
        assert_eq!(escape_leading_slash("/"), "\\/");
        assert_eq!(escape_leading_slash("  \n/clear x"), "  \n\\/clear x");
        assert_eq!(escape_leading_slash("\u{feff}/x"), "\u{feff}\\/x");
        for untouched in [
            "!ls", "#note", "&bg", "?", "@file x", "x /y", "#x\n/y", "", "  ",
        ] {
            assert_eq!(escape_leading_slash(untouched), untouched);
        }
    }

    #[test]
    fn the_whole_turn_comes_from_the_transcript() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.jsonl");
        let lines = [
            r#"{"type":"user","message":{"role":"user","content":"old task"}}"#,
            r#"{"type":"assistant","message":{"content":[{"type":"text","text":"old answer"}]}}"#,
            r#"{"type":"user","message":{"role":"user","content":[{"type":"text","text":"new task"}]}}"#,
            r#"{"type":"assistant","message":{"content":[{"type":"text","text":"Let me check."}]}}"#,
            r#"{"type":"assistant","message":{"content":[{"type":"tool_use","name":"Bash"}]}}"#,
            r#"{"type":"user","message":{"content":[{"type":"tool_result","content":"x"}]}}"#,
            r#"{"type":"assistant","message":{"content":[{"type":"text","text":"Done."}]}}"#,
            r#"{"type":"system","subtype":"turn_duration"}"#,
        ];
        std::fs::write(&path, lines.join("\n")).unwrap();
        assert_eq!(
            turn_text(&path, "new task").as_deref(),
            Some("Let me check.\n\nDone.")
        );
        assert_eq!(turn_text(&path, "missing"), None);
    }

    #[test]
    fn terminal_replies_are_not_keys() {
        for reply in [
            &b"\x1bP>|tmux 3.3a\x1b\\"[..],
            b"\x1b[?1;2c",
            b"\x1b[>0;10;1c",
            b"\x1b[I",
            b"\x1b[O",
        ] {
            assert!(is_terminal_reply(reply), "{reply:?}");
        }
        for key in [&b"a"[..], b"\x1b", b"\x1b[A", b"\r", b"\x03"] {
            assert!(!is_terminal_reply(key), "{key:?}");
        }
    }

    #[test]
    fn settings_name_every_hook() {
        let v: Value = serde_json::from_str(&hook_settings("'/a b' --hook")).unwrap();
        assert_eq!(
            v["hooks"]["Stop"][0]["hooks"][0]["command"],
            "'/a b' --hook"
        );
        assert!(v["hooks"]["SessionStart"].is_array());
    }
}
