//! The restart machine: what `agent-wrap --restart` does when the host it runs ends or
//! a signal comes, as a pure function of its inputs ([`Machine::step`]). It does no I/O
//! and reads no clock; [`super::supervisor`] carries its effects out.
//!
//! How a host ended decides:
//!
//! | the host | meaning | then |
//! |---|---|---|
//! | exits 0, or 128 + SIGHUP/SIGINT/SIGQUIT/SIGTERM, or dies of one of those | stopped on purpose (`kill NAME`, `down`, its window closed, a reason it printed) | exit with its status |
//! | exits non-zero before it said it was up | could not start (the same start would fail again) | exit with its status |
//! | is killed by any other signal (SIGKILL, SIGSEGV, SIGABRT), or exits non-zero after it was up (a panic) | crashed | restart after a pause ([`Backoff`]), or give up after [`RESTART_LIMIT`] in a minute |
//!
//! A stop signal to the supervisor itself means no more restarts: SIGTERM and SIGHUP are
//! passed on to the host; SIGINT and SIGQUIT are not, because the terminal sends them to
//! the host too (the two share the window's process group), as with `system(3)`.

use std::time::{Duration, Instant};

use super::backoff::{Backoff, RESTART_LIMIT};
use crate::events::What;
use crate::signals::Signal;
use crate::state::AgentName;

/// How a host process ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ended {
    /// It exited with this status.
    Exited(i32),
    /// A signal (this number) killed it.
    Killed(i32),
}

impl Ended {
    /// `exit status 101`, `killed by SIGKILL`.
    pub fn describe(self) -> String {
        match self {
            Ended::Exited(code) => format!("exit status {code}"),
            Ended::Killed(sig) => match nix::sys::signal::Signal::try_from(sig) {
                Ok(s) => format!("killed by {}", s.as_str()),
                Err(_) => format!("killed by signal {sig}"),
            },
        }
    }

    /// The status to exit with after it: its own, or 128 + the signal's number.
    pub fn exit_code(self) -> i32 {
        match self {
            Ended::Exited(code) => code,
            Ended::Killed(sig) => 128 + sig,
        }
    }

    /// Returns true if and only if this is how a host ends when it was stopped on
    /// purpose: exit 0, or by one of the signals it handles (in which case it exits
    /// with 128 + the signal's number), or killed by one before it handled them.
    pub fn on_purpose(self) -> bool {
        let stop_signals = [
            Signal::Hangup,
            Signal::Interrupt,
            Signal::Quit,
            Signal::Terminate,
        ]
        .map(Signal::number);
        match self {
            Ended::Exited(0) => true,
            Ended::Exited(code) => stop_signals.iter().any(|n| code == 128 + n),
            Ended::Killed(sig) => stop_signals.contains(&sig),
        }
    }
}

/// This host is a restart: the how-manyth, and how the one before it ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Restart {
    /// 1 for the first restart since the supervisor started.
    pub count: usize,
    /// How the previous host ended (`killed by SIGKILL`).
    pub after: String,
}

/// An input of the machine.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Input {
    /// The host said it is up: it holds the agent's lock and watches its inbox.
    Ready,
    /// The host ended, at `at`.
    Ended { how: Ended, at: Instant },
    /// A signal to the supervisor.
    Signal(Signal),
    /// The pause before a restart is over.
    PauseOver,
}

/// What to do, in order.
#[derive(Clone, Debug, PartialEq)]
pub enum Effect {
    /// Start the host: the first time, or as this restart.
    Start(Option<Restart>),
    /// Put the window's terminal back as it was before the host started: a host that
    /// was killed could not undo its raw mode and screen modes.
    RestoreTerminal,
    /// One line in the window.
    Say(String),
    /// Pass this signal on to the host.
    Forward(Signal),
    /// Wait this long, then [`Input::PauseOver`].
    Pause(Duration),
    /// Append this to the event log.
    Log(What),
    /// Exit with this status.
    Exit(i32),
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Phase {
    /// A host runs; `ready` once it said it is up.
    Running { ready: bool },
    /// A host runs and must not be restarted: a stop signal came.
    Stopping,
    /// The host crashed; the next one starts after the pause. `after`: how it ended.
    Pausing { after: String },
    /// Exited.
    Done,
}

/// The restart machine of one agent.
#[derive(Debug)]
pub struct Machine {
    agent: AgentName,
    phase: Phase,
    backoff: Backoff,
    /// Restarts since the supervisor started.
    restarts: usize,
}

impl Machine {
    /// The machine of agent `agent`, and its first effects (start the host).
    pub fn new(agent: AgentName) -> (Self, Vec<Effect>) {
        let machine = Self {
            agent,
            phase: Phase::Running { ready: false },
            backoff: Backoff::default(),
            restarts: 0,
        };
        (machine, vec![Effect::Start(None)])
    }

    /// Applies one input; returns what to do, in order.
    pub fn step(&mut self, input: Input) -> Vec<Effect> {
        match input {
            Input::Ready => {
                if let Phase::Running { ready } = &mut self.phase {
                    *ready = true;
                }
                Vec::new()
            }
            Input::Signal(Signal::Resize) => Vec::new(),
            Input::Signal(sig) => self.on_signal(sig),
            Input::Ended { how, at } => self.on_end(how, at),
            Input::PauseOver => match std::mem::replace(&mut self.phase, Phase::Done) {
                Phase::Pausing { after } => {
                    self.phase = Phase::Running { ready: false };
                    vec![Effect::Start(Some(Restart {
                        count: self.restarts,
                        after,
                    }))]
                }
                other => {
                    self.phase = other;
                    Vec::new()
                }
            },
        }
    }

    fn on_signal(&mut self, sig: Signal) -> Vec<Effect> {
        match self.phase {
            Phase::Running { .. } | Phase::Stopping => {
                self.phase = Phase::Stopping;
                // SIGINT and SIGQUIT come from the terminal, to the host as well.
                match sig {
                    Signal::Terminate | Signal::Hangup => vec![Effect::Forward(sig)],
                    _ => Vec::new(),
                }
            }
            // No host runs: nothing to wait for.
            Phase::Pausing { .. } => {
                self.phase = Phase::Done;
                vec![Effect::Exit(sig.exit_code())]
            }
            Phase::Done => Vec::new(),
        }
    }

    fn on_end(&mut self, how: Ended, at: Instant) -> Vec<Effect> {
        let ready = match self.phase {
            Phase::Running { ready } => ready,
            Phase::Stopping => {
                self.phase = Phase::Done;
                return vec![Effect::Exit(how.exit_code())];
            }
            Phase::Pausing { .. } | Phase::Done => return Vec::new(),
        };
        let what = how.describe();
        if how.on_purpose() {
            self.phase = Phase::Done;
            return vec![Effect::Exit(how.exit_code())];
        }
        if matches!(how, Ended::Exited(_)) && !ready {
            self.phase = Phase::Done;
            return vec![
                Effect::RestoreTerminal,
                Effect::Say(format!(
                    "agent-wrap @{} could not start ({what}); not restarting it",
                    self.agent
                )),
                Effect::Exit(how.exit_code()),
            ];
        }
        let Some(pause) = self.backoff.next(at) else {
            self.phase = Phase::Done;
            let reason = format!("it crashed {} times within a minute", RESTART_LIMIT + 1);
            return vec![
                Effect::RestoreTerminal,
                Effect::Say(format!(
                    "agent-wrap @{} crashed ({what}); not restarting it: {reason}",
                    self.agent
                )),
                Effect::Log(What::AgentCrashed {
                    agent: self.agent.clone(),
                    how: what,
                    restart: None,
                    pause_ms: None,
                    reason: Some(reason),
                }),
                Effect::Exit(how.exit_code()),
            ];
        };
        self.restarts += 1;
        let within = self.backoff.count();
        self.phase = Phase::Pausing {
            after: what.clone(),
        };
        vec![
            Effect::RestoreTerminal,
            Effect::Say(format!(
                "agent-wrap @{} crashed ({what}); restarting it in {} \
                 (restart {within} of at most {RESTART_LIMIT} within a minute)",
                self.agent,
                crate::time::human_us(pause.as_micros() as u64)
            )),
            Effect::Log(What::AgentCrashed {
                agent: self.agent.clone(),
                how: what,
                restart: Some(within),
                pause_ms: Some(pause.as_millis() as u64),
                reason: None,
            }),
            Effect::Pause(pause),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn machine() -> Machine {
        let (m, first) = Machine::new(AgentName::parse("w").unwrap());
        assert_eq!(first, [Effect::Start(None)]);
        m
    }

    fn ended(how: Ended, at: Instant) -> Input {
        Input::Ended { how, at }
    }

    const SIGKILL: i32 = 9;

    fn pause_of(effects: &[Effect]) -> Option<Duration> {
        effects.iter().find_map(|e| match e {
            Effect::Pause(d) => Some(*d),
            _ => None,
        })
    }

    #[test]
    fn a_killed_host_is_restarted_after_a_pause_with_a_line_and_an_event() {
        let mut m = machine();
        let t0 = Instant::now();
        m.step(Input::Ready);
        let out = m.step(ended(Ended::Killed(SIGKILL), t0));
        assert_eq!(out[0], Effect::RestoreTerminal);
        let Effect::Say(line) = &out[1] else {
            panic!("{out:?}")
        };
        assert_eq!(
            line,
            "agent-wrap @w crashed (killed by SIGKILL); restarting it in 500ms \
             (restart 1 of at most 5 within a minute)"
        );
        assert!(matches!(
            &out[2],
            Effect::Log(What::AgentCrashed { restart: Some(1), pause_ms: Some(500), reason: None, how, .. })
                if how == "killed by SIGKILL"
        ));
        assert_eq!(out[3], Effect::Pause(Duration::from_millis(500)));
        assert_eq!(
            m.step(Input::PauseOver),
            [Effect::Start(Some(Restart {
                count: 1,
                after: "killed by SIGKILL".into()
            }))]
        );
    }

    #[test]
    fn a_killed_host_is_restarted_even_before_it_was_up() {
        let mut m = machine();
        let out = m.step(ended(Ended::Killed(SIGKILL), Instant::now()));
        assert_eq!(pause_of(&out), Some(Duration::from_millis(500)));
    }

    #[test]
    fn a_crash_after_ready_is_restarted_but_a_failed_start_is_not() {
        let mut m = machine();
        m.step(Input::Ready);
        let out = m.step(ended(Ended::Exited(101), Instant::now()));
        assert!(pause_of(&out).is_some(), "{out:?}");
        m.step(Input::PauseOver);
        // The restarted host fails before it is up: the same start would fail again.
        let out = m.step(ended(Ended::Exited(1), Instant::now()));
        assert_eq!(out.last(), Some(&Effect::Exit(1)));
        assert!(matches!(&out[1], Effect::Say(l) if l.contains("could not start (exit status 1)")));
        assert!(!out.iter().any(|e| matches!(e, Effect::Start(_))));
    }

    #[test]
    fn a_stop_on_purpose_is_never_restarted() {
        for how in [
            Ended::Exited(0),
            Ended::Exited(143), // kill NAME, down: SIGTERM to the host
            Ended::Exited(129), // its window closed
            Ended::Exited(130),
            Ended::Exited(131),
            Ended::Killed(15),
        ] {
            let mut m = machine();
            m.step(Input::Ready);
            assert_eq!(
                m.step(ended(how, Instant::now())),
                [Effect::Exit(how.exit_code())],
                "{how:?}"
            );
        }
    }

    #[test]
    fn restarts_back_off_and_the_sixth_crash_in_a_minute_gives_up() {
        let mut m = machine();
        let t0 = Instant::now();
        let mut pauses = Vec::new();
        for i in 0..RESTART_LIMIT {
            m.step(Input::Ready);
            let out = m.step(ended(
                Ended::Killed(SIGKILL),
                t0 + Duration::from_secs(i as u64),
            ));
            pauses.push(pause_of(&out).unwrap());
            assert!(
                matches!(m.step(Input::PauseOver)[..], [Effect::Start(Some(Restart { count, .. }))] if count == i + 1)
            );
        }
        assert_eq!(
            pauses,
            [500, 1000, 2000, 4000, 8000].map(Duration::from_millis)
        );
        m.step(Input::Ready);
        let out = m.step(ended(Ended::Killed(SIGKILL), t0 + Duration::from_secs(20)));
        assert!(
            matches!(&out[1], Effect::Say(l) if l.ends_with("not restarting it: it crashed 6 times within a minute")),
            "{out:?}"
        );
        assert!(matches!(
            &out[2],
            Effect::Log(What::AgentCrashed {
                restart: None,
                reason: Some(_),
                ..
            })
        ));
        assert_eq!(out.last(), Some(&Effect::Exit(128 + SIGKILL)));
    }

    #[test]
    fn sigterm_and_sighup_are_passed_on_and_end_the_restarts() {
        for sig in [Signal::Terminate, Signal::Hangup] {
            let mut m = machine();
            m.step(Input::Ready);
            assert_eq!(m.step(Input::Signal(sig)), [Effect::Forward(sig)]);
            // However the host ends now, it is not restarted.
            assert_eq!(
                m.step(ended(Ended::Killed(SIGKILL), Instant::now())),
                [Effect::Exit(128 + SIGKILL)]
            );
        }
    }

    #[test]
    fn sigint_is_left_to_the_terminal_and_ends_the_restarts() {
        let mut m = machine();
        m.step(Input::Ready);
        assert_eq!(m.step(Input::Signal(Signal::Interrupt)), []);
        assert_eq!(m.step(Input::Signal(Signal::Resize)), []);
        assert_eq!(
            m.step(ended(Ended::Exited(101), Instant::now())),
            [Effect::Exit(101)]
        );
    }

    #[test]
    fn a_stop_signal_during_the_pause_exits_at_once() {
        let mut m = machine();
        m.step(Input::Ready);
        m.step(ended(Ended::Killed(SIGKILL), Instant::now()));
        assert_eq!(
            m.step(Input::Signal(Signal::Terminate)),
            [Effect::Exit(143)]
        );
        assert_eq!(m.step(Input::PauseOver), []);
    }

    #[test]
    fn how_a_host_ended_reads_as_a_phrase() {
        assert_eq!(Ended::Killed(SIGKILL).describe(), "killed by SIGKILL");
        assert_eq!(Ended::Exited(101).describe(), "exit status 101");
        assert_eq!(Ended::Killed(SIGKILL).exit_code(), 137);
    }
}
