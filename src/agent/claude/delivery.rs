//! The delivery machine: how a task gets into the hosted Claude Code's prompt box and
//! how its turn ends, as a pure state machine (docs/design/claude-host.md).
//!
//! [`Delivery::step`] takes one [`Input`] — an order from the host, a hook or probe
//! event, a key the human typed, a timer firing, a registry reading, the process exit —
//! and returns the [`Effect`]s to carry out: bytes for the PTY, a probe request, timers
//! to start or cancel, a pid to watch, and [`Update`]s for the host. It does no I/O and
//! reads no clock, so every race a real Claude Code cannot stage on demand is a unit test
//! here; `session` is the thin shell that carries the effects out.

use std::collections::{BTreeSet, VecDeque};
use std::path::PathBuf;
use std::time::Duration;

use super::keys::{escape_leading_slash, is_terminal_reply};
use super::message::{ProbeAction, ProbeRequest};

mod events;
mod interface;

const CTRL_G: &[u8] = b"\x07";
const ENTER: &[u8] = b"\r";
const ESCAPE: &[u8] = b"\x1b";

pub use interface::*;

/// Where a delivery stands.
#[derive(Clone, Debug, PartialEq)]
enum Phase {
    /// Not ready (before SessionStart) or nothing of ours in flight.
    Idle,
    /// The probe was asked to load `text`.
    Probing {
        nonce: u64,
        text: String,
        /// The agent command `/compact`, not a task: the registry's `busy` acknowledges
        /// it.
        compact: bool,
    },
    /// The box holds `text`; Enter goes (again) until UserPromptSubmit.
    Submitted {
        nonce: u64,
        text: String,
        enters: u32,
    },
    /// Our prompt (`text`, delivery `nonce`) runs.
    Working { nonce: u64, text: String },
    /// Our `/compact` was loaded. It fires no hook of its own that we install: the
    /// PreCompact and PostCompact hooks would each leave a line in the agent's window
    /// (docs/claude-code.md#compact-hook-notices). It has `started` once the registry,
    /// `idle` since the load (`idle_seen`), says `busy` after our Enter, and it is done
    /// at its `SessionStart` with source `compact` (docs/claude-code.md#compact-command).
    Compacting {
        started: bool,
        enters: u32,
        idle_seen: bool,
    },
    /// After an interrupt: the box is checked and cleared of our task.
    Clearing { nonce: u64, text: String },
    /// The probe found a draft (delivery `nonce`) and leaves the box as it was. Claude
    /// Code is still in its editor until the probe has exited: the human's keys wait
    /// until then, or an Enter that submits the draft would be lost.
    Returning { nonce: u64 },
    /// Claude Code exited: nothing more happens.
    Exited,
}

/// The delivery machine of one Claude Code process.
#[derive(Debug)]
pub struct Delivery {
    ready: bool,
    session_id: String,
    phase: Phase,
    /// The last nonce handed out; nonces of a restarted process continue from its
    /// predecessor's, so no late report of the old one matches.
    nonce: u64,
    /// The text of the last delivery, for clearing it after an interrupt.
    last_text: String,
    /// Human keys held back while the box is ours, in the order typed.
    held: VecDeque<Vec<u8>>,
    /// True from our delivery's acknowledgement until the next delivery starts.
    streaming: bool,
    /// The output streamed so far ends a line (or there is none): a tool's activity
    /// line goes on a line of its own.
    output_at_line_start: bool,
    /// The delivery whose probe timed out: a late answer from it is still taken.
    timed_out: Option<u64>,
    /// The delivery whose probe has started (its `started` report came).
    probe_started: Option<u64>,
    /// A prompt of the human's own runs (from its UserPromptSubmit to its end).
    human_turn: bool,
    /// The human's own editor runs: no Ctrl-G of ours may go into it.
    user_editor: bool,
    /// The last registry reading.
    registry_idle: bool,
    /// A task interrupted by the previous Claude Code, which `--resume` may put back
    /// into the box: cleared once this one is ready.
    clear_first: Option<String>,
    /// Issue 15: SessionStart came, but the box may not take keys yet (a fork): ready
    /// once the registry says idle, or at the StartCheck backstop.
    start_pending: bool,
    /// The `prompt_id` of our acknowledged prompt: the Stop of our turn carries it.
    our_prompt_id: Option<String>,
    /// The transcript as read for the interrupt backstop that is about to decide.
    transcript: Option<(PathBuf, bool)>,
    /// How often the interrupt backstop found our turn ended in the transcript and
    /// waited for its late Stop.
    late_stop_checks: u32,
    /// Timers started and not yet fired or cancelled.
    running: BTreeSet<Timer>,
    out: Vec<Effect>,
}

impl Delivery {
    /// The machine of a new Claude Code process, and what to do first. `last_nonce` is
    /// the predecessor's [`Delivery::last_nonce`] (0 for the first).
    pub fn new(
        session_id: &str,
        clear_first: Option<String>,
        last_nonce: u64,
    ) -> (Self, Vec<Effect>) {
        let mut machine = Self {
            ready: false,
            session_id: session_id.to_owned(),
            phase: Phase::Idle,
            nonce: last_nonce,
            last_text: String::new(),
            held: VecDeque::new(),
            streaming: false,
            output_at_line_start: true,
            timed_out: None,
            probe_started: None,
            human_turn: false,
            user_editor: false,
            registry_idle: false,
            clear_first: clear_first.map(|p| escape_leading_slash(&p)),
            start_pending: false,
            our_prompt_id: None,
            transcript: None,
            late_stop_checks: 0,
            running: BTreeSet::new(),
            out: Vec::new(),
        };
        machine.start(Timer::StartCheck, START_CHECK);
        let first = std::mem::take(&mut machine.out);
        (machine, first)
    }

    /// Returns true if and only if Claude Code has accepted input (SessionStart came).
    pub fn ready(&self) -> bool {
        self.ready
    }

    /// Claude Code's current session id.
    pub fn session_id(&self) -> &str {
        &self.session_id
    }

    /// The last nonce handed out, for the machine of a restarted process.
    pub fn last_nonce(&self) -> u64 {
        self.nonce
    }

    /// The prompt of our turn while it runs: what the shell looks for in the transcript
    /// for [`Input::Transcript`].
    pub fn working_prompt(&self) -> Option<&str> {
        match &self.phase {
            Phase::Working { text, .. } => Some(text),
            _ => None,
        }
    }

    /// Returns true if and only if a new task can be loaded now.
    pub fn can_load(&self) -> bool {
        self.ready
            && self.phase == Phase::Idle
            && !self.human_turn
            && !self.user_editor
            && self.held.is_empty()
    }

    /// Applies one input and returns what to do, in order.
    pub fn step(&mut self, input: Input) -> Vec<Effect> {
        if self.phase == Phase::Exited {
            return Vec::new();
        }
        if let Input::Timer(timer) = &input {
            // A timer the machine no longer runs was cancelled after it fired: ignore it.
            if !self.running.remove(timer) {
                return Vec::new();
            }
        }
        match input {
            Input::Load(prompt) => self.load(escape_leading_slash(&prompt), false),
            Input::Compact(instructions) => {
                let text = match instructions.trim() {
                    "" => "/compact".to_owned(),
                    i => format!("/compact {i}"),
                };
                self.load(text, true)
            }
            Input::Interrupt => self.interrupt(),
            Input::LoadFailed => self.set_phase(Phase::Idle),
            Input::Event(event) => self.on_event(event),
            Input::Key(bytes) => self.on_key(bytes),
            Input::Timer(timer) => self.on_timer(timer),
            Input::ProbeExited { nonce } => {
                if self.phase_nonce() == Some(nonce) {
                    self.start(Timer::Enter, ENTER_SETTLE);
                }
            }
            Input::UserEditorClosed => {
                self.user_editor = false;
                if self.phase == Phase::Idle {
                    self.report(Update::Idle);
                }
            }
            Input::Registry { idle } => self.on_registry(idle),
            Input::Transcript { path, turn_ended } => self.transcript = Some((path, turn_ended)),
            Input::Exited => {
                for timer in std::mem::take(&mut self.running) {
                    self.out.push(Effect::CancelTimer(timer));
                }
                self.phase = Phase::Exited;
            }
        }
        std::mem::take(&mut self.out)
    }

    fn report(&mut self, update: Update) {
        self.out.push(Effect::Report(update));
    }

    fn write(&mut self, bytes: &[u8]) {
        self.out.push(Effect::Write(bytes.to_vec()));
    }

    fn start(&mut self, timer: Timer, after: Duration) {
        self.running.insert(timer);
        self.out.push(Effect::StartTimer(timer, after));
    }

    fn cancel(&mut self, timer: Timer) {
        if self.running.remove(&timer) {
            self.out.push(Effect::CancelTimer(timer));
        }
    }

    fn next_nonce(&mut self) -> u64 {
        self.nonce += 1;
        self.nonce
    }

    /// Moves to `phase`; the timers of the phase left end with it.
    fn set_phase(&mut self, phase: Phase) {
        for timer in Timer::OF_PHASE {
            self.cancel(timer);
        }
        self.phase = phase;
        if !self.delivering() {
            self.pump(false);
        }
    }

    /// The nonce of the delivery in flight that waits for Enter or the probe's exit.
    fn phase_nonce(&self) -> Option<u64> {
        match &self.phase {
            Phase::Submitted { nonce, .. } | Phase::Returning { nonce } => Some(*nonce),
            Phase::Compacting { started: false, .. } => Some(self.nonce),
            _ => None,
        }
    }

    /// From the probe until the acknowledgement the box is ours: keys typed now would
    /// end up inside the task.
    fn delivering(&self) -> bool {
        matches!(
            self.phase,
            Phase::Probing { .. }
                | Phase::Clearing { .. }
                | Phase::Submitted { .. }
                | Phase::Returning { .. }
                | Phase::Compacting { started: false, .. }
        )
    }

    /// Asks the probe to load `text` into an empty box and presses Ctrl-G.
    fn load(&mut self, text: String, compact: bool) {
        let nonce = self.next_nonce();
        self.out.push(Effect::WriteProbe(ProbeRequest::new(
            nonce,
            ProbeAction::Load,
            text.clone(),
        )));
        self.last_text = text.clone();
        self.streaming = false;
        self.output_at_line_start = true;
        self.probe_started = None;
        self.timed_out = None;
        self.our_prompt_id = None;
        self.late_stop_checks = 0;
        self.out.push(Effect::MarkTranscript);
        self.set_phase(Phase::Probing {
            nonce,
            text,
            compact,
        });
        self.write(CTRL_G); // Claude Code runs $EDITOR, our probe.
        self.start(Timer::Probe, PROBE_TIMEOUT);
    }

    /// Interrupts the running turn (Escape, docs/claude-code.md#box-escape-interrupts).
    /// No Stop hook follows; Claude Code is idle about 0.1 s later and may have put our
    /// prompt back into the box, so the box is cleared of it shortly after.
    fn interrupt(&mut self) {
        let text = match &self.phase {
            Phase::Probing { text, .. } | Phase::Submitted { text, .. } => text.clone(),
            _ => self.last_text.clone(),
        };
        self.write(ESCAPE);
        // A delivery held by a dialog is over too: no more Ctrl-G for it.
        self.timed_out = None;
        self.begin_clearing(text, INTERRUPT_SETTLE);
    }

    fn begin_clearing(&mut self, text: String, after: Duration) {
        let nonce = self.next_nonce();
        self.set_phase(Phase::Clearing { nonce, text });
        self.start(Timer::Clear, after);
    }

    /// Presses Ctrl-G again for a delivery held since its probe timed out, until the
    /// probe has started. Each press comes with a spare token, so a probe that finds the
    /// request already taken answers quietly instead of opening the human's editor.
    fn retry_probe(&mut self) {
        let Some(n) = self.timed_out else { return };
        if self.phase != Phase::Idle || self.probe_started == Some(n) {
            return;
        }
        // Never into the human's own editor.
        if !self.user_editor {
            self.out.push(Effect::AddSpare(n));
            self.write(CTRL_G);
        }
        self.start(Timer::ProbeRetry, PROBE_RETRY);
    }

    /// Forwards the human's keys, or holds them while the box is ours. Keys typed into
    /// our running turn are reported: the task is marked, and a lone Escape (not the
    /// start of an arrow key's sequence) interrupts it, after which no Stop follows.
    fn on_key(&mut self, bytes: Vec<u8>) {
        // The terminal's answers to Claude Code's own queries (device attributes, focus
        // reports) are not the human typing: pass them on at once.
        if is_terminal_reply(&bytes) {
            self.write(&bytes);
            return;
        }
        let working = matches!(self.phase, Phase::Working { .. });
        if self.delivering() || !self.held.is_empty() {
            // Held, or behind keys still being released: they keep their order. Escapes
            // read together are the human pressing Escape more than once: released
            // together they would read as one sequence, so each is a key of its own.
            if bytes.len() > 1 && bytes.iter().all(|&b| b == 0x1b) {
                self.held.extend(bytes.iter().map(|&b| vec![b]));
            } else {
                self.held.push_back(bytes);
            }
            if working {
                self.report(Update::HumanInput);
            }
            return;
        }
        self.write(&bytes);
        let Phase::Working { text, .. } = &self.phase else {
            return;
        };
        if bytes != ESCAPE {
            self.report(Update::HumanInput);
            return;
        }
        let text = text.clone();
        self.begin_clearing(text, INTERRUPT_SETTLE);
        self.report(Update::HumanInterrupted);
    }

    /// Forwards held keys in the order typed, while the box is not ours. Claude Code
    /// reads bytes that arrive together as one key sequence, so two Escapes written at
    /// once are not two Escapes (they would not clear a draft): a key that starts with
    /// Escape goes on its own, [`KEY_GAP`] after the keys before it (`after_gap` says
    /// that gap has passed).
    fn pump(&mut self, mut after_gap: bool) {
        if !after_gap && self.running.contains(&Timer::KeyGap) {
            // A gap is under way: the keys go when it ends.
            return;
        }
        let mut first = true;
        while !self.delivering()
            && let Some(keys) = self.held.front()
        {
            if keys.first() == Some(&0x1b) && !first && !after_gap {
                self.start(Timer::KeyGap, KEY_GAP);
                return;
            }
            let keys = self.held.pop_front().unwrap_or_default();
            self.write(&keys);
            first = false;
            after_gap = false;
        }
    }

    /// Claude Code takes input now: its SessionStart came (and, for a fork, its registry
    /// said idle).
    fn become_ready(&mut self) {
        self.ready = true;
        self.start_pending = false;
        self.report(Update::Ready {
            session_id: self.session_id.clone(),
        });
        if let Some(text) = self.clear_first.take() {
            self.begin_clearing(text, INTERRUPT_SETTLE);
        }
    }

    fn on_timer(&mut self, timer: Timer) {
        // Only for the IdleCheck that is firing now.
        let transcript = self.transcript.take();
        match (timer, &self.phase) {
            (Timer::KeyGap, _) => self.pump(true),
            // Issue 15: the backstop for a fork whose registry never said idle.
            (Timer::StartCheck, _) if self.start_pending => self.become_ready(),
            (Timer::StartCheck, _) if !self.ready => self.report(Update::DialogOpen),
            (Timer::HumanIdleCheck, _) if self.human_turn && self.registry_idle => {
                self.human_turn = false;
                if self.phase == Phase::Idle {
                    self.report(Update::Idle);
                }
            }
            // Idle and no Stop yet, but the transcript says the turn ended normally (an
            // interrupted turn writes no `turn_duration`, docs/claude-code.md#transcript):
            // the Stop hook, a process of its own, is late. It was 1.2 s late on a loaded
            // machine; after 15 s the transcript's answer is taken without it.
            (Timer::IdleCheck, Phase::Working { text, .. })
                if self.registry_idle && transcript.as_ref().is_some_and(|(_, ended)| *ended) =>
            {
                let prompt = text.clone();
                self.late_stop_checks += 1;
                if self.late_stop_checks < LATE_STOP_CHECKS {
                    self.start(Timer::IdleCheck, STOP_GRACE_AFTER_IDLE);
                    return;
                }
                self.set_phase(Phase::Idle);
                self.report(Update::Answered(Answer {
                    last_message: String::new(),
                    transcript: transcript.map(|(path, _)| path),
                    prompt,
                }));
            }
            // The registry may still say idle just after a turn started (its busy update
            // trails the hooks): only idle now, with no Stop, means interrupted.
            (Timer::IdleCheck, Phase::Working { text, .. }) if self.registry_idle => {
                let text = text.clone();
                self.begin_clearing(text, Duration::ZERO);
                self.report(Update::HumanInterrupted);
            }
            (Timer::IdleCheck, Phase::Compacting { started: true, .. }) if self.registry_idle => {
                self.set_phase(Phase::Idle);
                self.report(Update::Failed(
                    "Claude Code stopped without finishing the compaction".into(),
                ));
            }
            (Timer::Clear, Phase::Clearing { nonce, text }) => {
                let request = ProbeRequest::new(*nonce, ProbeAction::Clear, text.clone());
                self.out.push(Effect::WriteProbe(request));
                self.write(CTRL_G);
                self.start(Timer::Probe, PROBE_TIMEOUT);
            }
            (Timer::Probe, Phase::Clearing { .. }) => {
                self.out.push(Effect::RemoveProbe);
                self.set_phase(Phase::Idle);
                self.report(Update::Idle);
            }
            (Timer::Probe, Phase::Probing { nonce, .. }) => {
                // The editor has not run: a dialog has the keyboard. The request stays,
                // so a probe that runs late still answers it exactly (`on_probe`).
                let nonce = *nonce;
                self.set_phase(Phase::Idle);
                self.timed_out = Some(nonce);
                self.retry_probe();
                self.report(Update::DialogOpen);
            }
            (Timer::ProbeRetry, _) => self.retry_probe(),
            (Timer::Enter, _) => self.press_enter(),
            _ => {}
        }
    }

    /// Our `/compact` runs: no more Enter, and the human's held keys go in.
    fn compaction_started(&mut self) {
        if let Phase::Compacting { started, .. } = &mut self.phase {
            *started = true;
            self.cancel(Timer::Enter);
            self.pump(false);
            self.report(Update::Acked { human_input: false });
        }
    }

    /// Our `/compact` is done: its `SessionStart` (source `compact`) came.
    fn compacted(&mut self) {
        if matches!(self.phase, Phase::Compacting { .. }) {
            self.set_phase(Phase::Idle);
            self.report(Update::Answered(Answer {
                last_message: "Compacted the conversation.".into(),
                transcript: None,
                prompt: String::new(),
            }));
        }
    }

    /// Sends Enter for the delivery in flight and waits for its acknowledgement, or ends
    /// the return from a draft probe.
    fn press_enter(&mut self) {
        let enters = match &mut self.phase {
            Phase::Returning { .. } => {
                self.set_phase(Phase::Idle);
                return;
            }
            Phase::Submitted { enters, .. }
            | Phase::Compacting {
                enters,
                started: false,
                ..
            } => enters,
            _ => return,
        };
        if *enters >= MAX_ENTERS + LATE_ACK_WAITS {
            // A compaction whose start the registry did not show (its `idle` and `busy`
            // read as one change) is still `busy` this long after Enter: it runs. A turn
            // that ended just before it never stays busy for seconds.
            if matches!(self.phase, Phase::Compacting { .. }) && !self.registry_idle {
                self.compaction_started();
                return;
            }
            self.set_phase(Phase::Idle);
            self.report(Update::Undeliverable(
                "Claude Code did not take the task after Enter".into(),
            ));
            return;
        }
        let press = *enters < MAX_ENTERS;
        *enters += 1;
        if press {
            self.write(ENTER);
        }
        self.start(Timer::Enter, ACK_TIMEOUT);
    }

    /// A registry reading (`~/.claude/sessions/<pid>.json`,
    /// docs/claude-code.md#session-registry). An interrupt fires no hook, but the
    /// registry goes `idle`: if a turn is still open then, a Stop must follow soon, or
    /// the turn was interrupted.
    fn on_registry(&mut self, idle: bool) {
        self.registry_idle = idle;
        if let Phase::Compacting {
            started: false,
            enters,
            idle_seen,
        } = &mut self.phase
        {
            // `busy` left over from the turn before counts only after an `idle`: the
            // registry's update trails that turn's Stop (docs/claude-code.md#hook-stop).
            if idle {
                *idle_seen = true;
            } else if *idle_seen && *enters > 0 {
                self.compaction_started();
                return;
            }
        }
        if !idle {
            return;
        }
        if self.start_pending {
            self.cancel(Timer::StartCheck);
            self.become_ready();
            return;
        }
        if self.human_turn && !self.running.contains(&Timer::HumanIdleCheck) {
            self.start(Timer::HumanIdleCheck, STOP_GRACE_AFTER_IDLE);
        }
        let ours = matches!(
            self.phase,
            Phase::Working { .. } | Phase::Compacting { started: true, .. }
        );
        if ours && !self.running.contains(&Timer::IdleCheck) {
            self.start(Timer::IdleCheck, STOP_GRACE_AFTER_IDLE);
        }
    }
}

#[cfg(test)]
mod tests;
