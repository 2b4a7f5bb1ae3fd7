//! The one signal thread: maps POSIX signals to [`Signal`] and sends them to an event
//! loop, which decides what they mean. No work happens in signal context.

use std::sync::mpsc::Sender;

use anyhow::{Context, Result};
use signal_hook::consts::{SIGHUP, SIGINT, SIGQUIT, SIGTERM, SIGWINCH};
use signal_hook::iterator::Signals;

/// A signal, by meaning.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Signal {
    /// SIGINT: Ctrl-C in a terminal whose signal keys are on.
    Interrupt,
    /// SIGTERM.
    Terminate,
    /// SIGHUP: the terminal went away.
    Hangup,
    /// SIGQUIT.
    Quit,
    /// SIGWINCH: the terminal was resized.
    Resize,
}

impl Signal {
    /// The signal number, for the conventional `128 + n` exit status.
    pub fn number(self) -> i32 {
        match self {
            Signal::Interrupt => SIGINT,
            Signal::Terminate => SIGTERM,
            Signal::Hangup => SIGHUP,
            Signal::Quit => SIGQUIT,
            Signal::Resize => SIGWINCH,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Signal::Interrupt => "SIGINT",
            Signal::Terminate => "SIGTERM",
            Signal::Hangup => "SIGHUP",
            Signal::Quit => "SIGQUIT",
            Signal::Resize => "SIGWINCH",
        }
    }

    /// The exit status of a process that stops because of this signal.
    pub fn exit_code(self) -> i32 {
        128 + self.number()
    }
}

/// Installs handlers for SIGINT, SIGTERM, SIGHUP, SIGQUIT and SIGWINCH and forwards them
/// from a dedicated thread as `wrap(signal)`.
pub fn forward<E: Send + 'static>(tx: Sender<E>, wrap: fn(Signal) -> E) -> Result<()> {
    let mut signals = Signals::new([SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGWINCH])
        .context("failed to install signal handlers")?;
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            for n in signals.forever() {
                let sig = match n {
                    SIGINT => Signal::Interrupt,
                    SIGTERM => Signal::Terminate,
                    SIGHUP => Signal::Hangup,
                    SIGQUIT => Signal::Quit,
                    _ => Signal::Resize,
                };
                if tx.send(wrap(sig)).is_err() {
                    break;
                }
            }
        })
        .context("failed to start the signal thread")?;
    Ok(())
}
