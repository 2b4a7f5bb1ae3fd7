//! `agent-wrap NAME --restart`: the supervisor's one event loop. It starts the host
//! (this same program, with the same arguments, as its child), feeds the host's
//! readiness and end and its own signals to the [`Machine`], and carries out what the
//! machine says: start again, print a line, restore the terminal, log, exit.
//!
//! The host stays in the supervisor's process group, so it owns the window's terminal as
//! it would alone: it reads the keys, sets raw mode, and gets the terminal's signals.
//! Its end is waited for with `waitid(WNOWAIT)` on a thread, which leaves it unreaped
//! until the loop has taken the news: a signal passed on never reaches a reused pid.

use std::ffi::OsString;
use std::io::{IsTerminal, Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::process::{Child, Command};
use std::sync::mpsc::{RecvTimeoutError, Sender, channel};
use std::time::Instant;

use anyhow::{Context, Result};
use nix::sys::wait::{Id, WaitPidFlag, WaitStatus, waitid};
use nix::unistd::Pid;

use super::machine::{Effect, Ended, Input, Machine, Restart};
use crate::signals::Signal;
use crate::state::{AgentName, StateDir};

/// The loop's events: the machine's inputs, as its sources send them.
enum Event {
    Ready,
    Ended(Ended),
    Signal(Signal),
}

/// Runs the supervisor of agent `agent`; `args` are this program's arguments after its
/// name (`NAME --restart …`), passed on to every host as they are. Returns the exit
/// status: the last host's, or 128 + n after signal n.
pub fn supervise(agent: &AgentName, args: Vec<OsString>) -> Result<i32> {
    let state = StateDir::from_env()?;
    let exe = std::env::current_exe().context("failed to find agent-wrap itself")?;
    let (tx, rx) = channel();
    crate::signals::forward(tx.clone(), Event::Signal)?;
    let terminal = Terminal::save();
    let (mut machine, mut effects) = Machine::new(agent.clone());
    let mut host: Option<Child> = None;
    let mut pause_until: Option<Instant> = None;
    loop {
        for effect in std::mem::take(&mut effects) {
            match effect {
                Effect::Start(restart) => {
                    host = Some(start_host(&exe, &args, restart.as_ref(), tx.clone())?);
                }
                Effect::RestoreTerminal => terminal.restore(),
                Effect::Say(line) => say(&line),
                Effect::Forward(sig) => {
                    if let Some(child) = &host {
                        let pid = Pid::from_raw(child.id() as i32);
                        let sig = nix::sys::signal::Signal::try_from(sig.number())
                            .unwrap_or(nix::sys::signal::Signal::SIGTERM);
                        let _ = nix::sys::signal::kill(pid, sig);
                    }
                }
                Effect::Pause(d) => pause_until = Some(Instant::now() + d),
                Effect::Log(what) => crate::events::append(state.root(), what),
                Effect::Exit(code) => return Ok(code),
            }
        }
        let event = match pause_until {
            Some(at) => rx.recv_timeout(at.saturating_duration_since(Instant::now())),
            None => rx.recv().map_err(|_| RecvTimeoutError::Disconnected),
        };
        let input = match event {
            Ok(Event::Ready) => Input::Ready,
            Ok(Event::Ended(how)) => {
                // Reaped only now: until here a forwarded signal could not reach a
                // reused pid.
                if let Some(mut child) = host.take() {
                    let _ = child.wait();
                }
                Input::Ended {
                    how,
                    at: Instant::now(),
                }
            }
            Ok(Event::Signal(sig)) => Input::Signal(sig),
            Err(RecvTimeoutError::Timeout) => {
                pause_until = None;
                Input::PauseOver
            }
            Err(RecvTimeoutError::Disconnected) => return Ok(1),
        };
        effects = machine.step(input);
    }
}

/// Starts the host: this program with `args`, told where to report readiness and, for a
/// restart, which one it is. A thread reports its readiness, then its end.
fn start_host(
    exe: &std::path::Path,
    args: &[OsString],
    restart: Option<&Restart>,
    tx: Sender<Event>,
) -> Result<Child> {
    // The write end stays open across exec (no close-on-exec); the host marks it so at
    // once. Our read end is close-on-exec, so no host inherits it.
    let (read, write) = nix::unistd::pipe().context("failed to create a pipe")?;
    nix::fcntl::fcntl(
        &read,
        nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC),
    )?;
    let mut cmd = Command::new(exe);
    // Before NAME: after `--`, they would be Claude Code's.
    cmd.arg("--ready-fd").arg(write.as_raw_fd().to_string());
    if let Some(r) = restart {
        cmd.arg(format!("--restarted={}", r.count));
        cmd.arg(format!("--restarted-after={}", r.after));
    }
    cmd.args(args);
    let child = cmd
        .spawn()
        .with_context(|| format!("failed to start {}", exe.display()))?;
    // Only the host holds the write end now: the pipe closes when it ends.
    drop(write);
    let pid = Pid::from_raw(child.id() as i32);
    std::thread::Builder::new()
        .name("host".into())
        .spawn(move || watch_host(pid, read, &tx))
        .context("failed to start the host's watcher")?;
    Ok(child)
}

/// Reports the host's readiness (a byte on the pipe; the pipe closes without one when
/// it ended first), then its end, in that order.
fn watch_host(pid: Pid, read: OwnedFd, tx: &Sender<Event>) {
    let mut byte = [0u8; 1];
    let mut pipe = std::fs::File::from(read);
    if matches!(pipe.read(&mut byte), Ok(1)) {
        let _ = tx.send(Event::Ready);
    }
    let how = loop {
        match waitid(Id::Pid(pid), WaitPidFlag::WEXITED | WaitPidFlag::WNOWAIT) {
            Ok(WaitStatus::Exited(_, code)) => break Ended::Exited(code),
            Ok(WaitStatus::Signaled(_, sig, _)) => break Ended::Killed(sig as i32),
            Err(nix::errno::Errno::EINTR) | Ok(_) => continue,
            Err(_) => break Ended::Exited(1),
        }
    };
    let _ = tx.send(Event::Ended(how));
}

/// One line in the window, dim on a terminal, like the host's own.
fn say(line: &str) {
    let mut out = std::io::stdout();
    let text = if out.is_terminal() {
        format!("\x1b[2m── {line}\x1b[0m\r\n")
    } else {
        format!("── {line}\n")
    };
    let _ = out.write_all(text.as_bytes()).and_then(|()| out.flush());
}

/// The window's terminal modes as they were before the first host started.
struct Terminal(Option<nix::sys::termios::Termios>);

impl Terminal {
    fn save() -> Self {
        let stdin = std::io::stdin();
        Self(
            stdin
                .is_terminal()
                .then(|| nix::sys::termios::tcgetattr(&stdin).ok())
                .flatten(),
        )
    }

    /// Puts back the saved modes, and undoes what a hosted Claude Code turns on in the
    /// screen (the alternate screen, a hidden cursor, bracketed paste, focus and mouse
    /// reports, the keyboard protocol) when a killed host could not. A host that left
    /// the terminal raw drew a whole screen, with the cursor somewhere inside it: what
    /// comes next starts below it, on the last row.
    fn restore(&self) {
        let stdin = std::io::stdin();
        let mut below = "";
        if let Some(modes) = &self.0 {
            let now = nix::sys::termios::tcgetattr(&stdin).ok();
            if now.is_some_and(|now| now.local_flags != modes.local_flags) {
                below = "\x1b[999;1H";
            }
            let _ = nix::sys::termios::tcsetattr(&stdin, nix::sys::termios::SetArg::TCSANOW, modes);
        }
        let mut out = std::io::stdout();
        if out.is_terminal() {
            let reset = "\x1b[?1049l\x1b[?25h\x1b[?2004l\x1b[?1004l\x1b[?1000l\x1b[?1002l\
                         \x1b[?1003l\x1b[?1006l\x1b[<u\x1b[>4m\x1b[0m";
            let _ = write!(out, "{reset}{below}\r\n").and_then(|()| out.flush());
        }
    }
}
