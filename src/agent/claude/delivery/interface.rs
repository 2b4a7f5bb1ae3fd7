//! What goes into the delivery machine and what comes out: its inputs, timers, effects
//! and the updates for the host, and the time limits it works with.

use std::path::PathBuf;
use std::time::Duration;

use super::super::message::{Event, ProbeRequest};

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
/// The pause before a released key that starts with Escape: Claude Code reads bytes
/// that arrive together as one key sequence.
pub const KEY_GAP: Duration = Duration::from_millis(25);
/// How many times Enter (only Enter, never the text) is sent for one delivery.
pub const MAX_ENTERS: u32 = 3;
/// After the last Enter, this many more [`ACK_TIMEOUT`]s pass before the delivery gives
/// up: on a loaded machine the `UserPromptSubmit` hook (a process of its own) arrived
/// 2 s after a submit that had worked, and a give-up at 1.5 s failed a delivered task.
pub const LATE_ACK_WAITS: u32 = 16;
/// How long after Escape Claude Code is idle again (measured: about 0.1 s,
/// docs/claude-code.md#box-escape-interrupts).
pub const INTERRUPT_SETTLE: Duration = Duration::from_millis(400);
/// How long a Stop hook may trail the registry's `idle` before the turn counts as
/// interrupted (measured: Stop comes 20–90 ms *before* idle, docs/claude-code.md#hook-stop).
pub const STOP_GRACE_AFTER_IDLE: Duration = Duration::from_millis(1500);
/// How many interrupt-backstop rounds wait for a late Stop once the transcript shows the
/// turn ended (see [`Input::Transcript`]); then the transcript's answer is taken.
pub const LATE_STOP_CHECKS: u32 = 10;
/// How long Claude Code may take to accept input before a dialog is assumed.
pub const START_CHECK: Duration = Duration::from_secs(5);

/// What the machine is told.
#[derive(Clone, Debug, PartialEq)]
pub enum Input {
    /// The host gives it a task to type into the box (a prompt, never a command).
    Load(String),
    /// The host gives it the agent command `/compact`, with optional instructions.
    Compact(String),
    /// The host stops the task in flight (a cancel or a signal).
    Interrupt,
    /// The probe request of the last `Load`/`Compact` could not be written.
    LoadFailed,
    /// A hook or probe event.
    Event(Event),
    /// The human typed these bytes in the agent's window (one read).
    Key(Vec<u8>),
    /// A timer the machine started fired.
    Timer(Timer),
    /// The probe that answered delivery `nonce` exited.
    ProbeExited { nonce: u64 },
    /// The human's own editor (their Ctrl-G) exited.
    UserEditorClosed,
    /// Claude Code's session registry was read: whether it says `idle`.
    Registry { idle: bool },
    /// The transcript at `path` was read for the interrupt backstop, just before
    /// [`Timer::IdleCheck`] fires with the registry idle: `turn_ended` when the part
    /// written since our delivery began (see [`Effect::MarkTranscript`]) holds our
    /// prompt followed by the `turn_duration` line of a turn that ended normally.
    Transcript { path: PathBuf, turn_ended: bool },
    /// The Claude Code process exited.
    Exited,
}

/// The machine's timers. Each runs at most once at a time: starting one that runs
/// restarts it, and a cancelled one never fires.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Timer {
    /// The probe did not answer ([`PROBE_TIMEOUT`]).
    Probe,
    /// Press Ctrl-G again for a delivery held by a dialog ([`PROBE_RETRY`]).
    ProbeRetry,
    /// Press Enter, or wait longer for its acknowledgement.
    Enter,
    /// Clear the box of our task after an interrupt.
    Clear,
    /// The registry said idle during our turn: no Stop since means interrupted.
    IdleCheck,
    /// The registry said idle during the human's own turn.
    HumanIdleCheck,
    /// Claude Code should accept input by now.
    StartCheck,
    /// Release the next held key.
    KeyGap,
}

impl Timer {
    /// The timers that belong to one phase of a delivery: a phase change ends them.
    pub(super) const OF_PHASE: [Timer; 5] = [
        Timer::Probe,
        Timer::ProbeRetry,
        Timer::Enter,
        Timer::Clear,
        Timer::IdleCheck,
    ];
}

/// What the shell must do.
#[derive(Clone, Debug, PartialEq)]
pub enum Effect {
    /// Write to Claude Code's terminal.
    Write(Vec<u8>),
    /// Write `probe.json`; for a load, first remove the spare tokens of earlier
    /// deliveries (they were used or dropped long ago).
    WriteProbe(ProbeRequest),
    /// Remove `probe.json`: nobody answered it.
    RemoveProbe,
    /// Leave one spare token for delivery `nonce` (a Ctrl-G pressed again).
    AddSpare(u64),
    /// A delivery begins: note how long the transcript is now, so that only what is
    /// written after this is read for [`Input::Transcript`].
    MarkTranscript,
    StartTimer(Timer, Duration),
    CancelTimer(Timer),
    /// Send [`Input::ProbeExited`] when process `pid` exits (at once if gone).
    WatchProbeExit {
        pid: i32,
        nonce: u64,
    },
    /// Send [`Input::UserEditorClosed`] when process `pid` exits.
    WatchUserEditor {
        pid: i32,
    },
    /// Tell the host.
    Report(Update),
}

/// What the host must act on.
#[derive(Clone, Debug, PartialEq)]
pub enum Update {
    /// Claude Code accepts input; `session_id` is its current session.
    Ready { session_id: String },
    /// Our prompt was submitted (delivery acknowledged); `human_input` when keys the
    /// human typed during the delivery went into the turn.
    Acked { human_input: bool },
    /// Our turn ended with an answer.
    Answered(Answer),
    /// Our turn ended with an API error.
    Failed(String),
    /// The box holds a human's draft: the task waits.
    Draft,
    /// The human submitted a prompt of their own.
    HumanTurn,
    /// A turn that was not ours ended, or the box became free.
    Idle,
    /// The editor probe never ran: a dialog has the keyboard; the task waits.
    DialogOpen,
    /// Claude Code asks the human (a permission prompt) during a turn.
    NeedsHuman(String),
    /// Work goes on after the human answered.
    Resumed,
    /// The human typed into the turn the task is waiting on.
    HumanInput,
    /// The human interrupted our turn in the agent's window.
    HumanInterrupted,
    /// Streamed text of our turn.
    Output(String),
    /// Delivery gave up: the text is the reason.
    Undeliverable(String),
    /// The cost Claude Code reports for its session so far, in US dollars.
    Cost(f64),
}

/// Our turn's answer: Stop's last message, or the whole turn from the transcript.
#[derive(Clone, Debug, PartialEq)]
pub struct Answer {
    pub last_message: String,
    /// Where the whole turn is (with tool calls Stop carries only the last block).
    pub transcript: Option<PathBuf>,
    /// The prompt that started the turn, to find it in the transcript.
    pub prompt: String,
}
