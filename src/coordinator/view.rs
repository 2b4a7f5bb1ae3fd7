//! The waiting view: what the chief's terminal shows while the coordinator waits.
//!
//! Claude Code is frozen while its editor runs and has switched to the alternate screen
//! (docs/claude-code.md#editor-freezes-claude, #editor-screen), so the view owns the whole screen. The terminal is put
//! in raw mode, which also turns off the signal keys: Ctrl-C arrives as a key and cancels
//! the task instead of killing the chief with SIGINT (docs/claude-code.md#editor-ctrl-c). [`TerminalGuard`]
//! restores the mode and flushes pending input on every exit path, unwinding included, so
//! no stray byte reaches Claude Code afterwards.

use std::io::{Stdout, Write, stdout};
use std::sync::mpsc::Sender;
use std::time::Duration;

use anyhow::{Context, Result};
use crossterm::event::{Event as TermEvent, KeyCode, KeyEventKind, KeyModifiers};
use crossterm::{cursor, queue, style, terminal};

use super::Event;
use super::delegate::{Observer, Progress};

/// Raw mode, a hidden cursor and a flush of pending input on drop.
pub struct TerminalGuard(());

impl TerminalGuard {
    pub fn enter() -> Result<Self> {
        terminal::enable_raw_mode().context("failed to put the terminal in raw mode")?;
        // Our own alternate screen: under Claude Code it is a fresh page of the one
        // Claude already switched to; in a plain terminal (the demo) the user's screen
        // comes back intact when we leave.
        let _ = crossterm::execute!(stdout(), terminal::EnterAlternateScreen, cursor::Hide);
        Ok(Self(()))
    }
}

impl Drop for TerminalGuard {
    fn drop(&mut self) {
        let mut out = stdout();
        let _ = crossterm::execute!(
            out,
            terminal::Clear(terminal::ClearType::All),
            cursor::Show,
            terminal::LeaveAlternateScreen
        );
        let _ = terminal::disable_raw_mode();
        // Keys typed while we waited must not be replayed into the chief's prompt box.
        let _ = nix::sys::termios::tcflush(std::io::stdin(), nix::sys::termios::FlushArg::TCIFLUSH);
    }
}

/// The view: draws [`Progress`] and turns Esc / Ctrl-C into [`Event::Cancel`].
///
/// With `--no-view` it is started but not used as an observer: nothing is drawn, but the
/// terminal is still guarded and the keys still cancel, because with the signal keys on
/// a Ctrl-C would kill the chief.
pub struct View {
    out: Stdout,
    /// Whether `b` works (a route of one agent), so the hint offers it.
    detachable: bool,
    _guard: TerminalGuard,
}

impl View {
    /// Takes over the terminal. Key presses are read on a thread and sent to `tx`.
    pub fn start(tx: Sender<Event>) -> Result<Self> {
        let guard = TerminalGuard::enter()?;
        std::thread::Builder::new()
            .name("keys".into())
            .spawn(move || read_keys(tx))
            .context("failed to start the key reader")?;
        Ok(Self {
            out: stdout(),
            detachable: false,
            _guard: guard,
        })
    }
}

fn read_keys(tx: Sender<Event>) {
    while let Ok(ev) = crossterm::event::read() {
        let TermEvent::Key(key) = ev else { continue };
        if key.kind != KeyEventKind::Press {
            continue;
        }
        let event = match (key.code, key.modifiers) {
            (KeyCode::Esc, _) => Event::Cancel("cancelled with Esc".into()),
            (KeyCode::Char('c'), m) if m.contains(KeyModifiers::CONTROL) => {
                Event::Cancel("cancelled with Ctrl-C".into())
            }
            (KeyCode::Char('b'), KeyModifiers::NONE) => Event::Background,
            (KeyCode::Char('a'), KeyModifiers::NONE) => Event::Jump,
            _ => continue,
        };
        if tx.send(event).is_err() {
            return;
        }
    }
}

fn fit(s: &str, width: usize) -> String {
    let mut out: String = s.chars().take(width.saturating_sub(1)).collect();
    if s.chars().count() >= width {
        out.push('…');
    }
    out
}

impl View {
    /// Offers `b` (background) in the hint: only for a route of one agent.
    pub fn set_detachable(&mut self, detachable: bool) {
        self.detachable = detachable;
    }

    /// Replaces the screen with `lines`, each cut to the terminal's width.
    pub fn draw_lines(&mut self, lines: &[String]) {
        let width = terminal::size()
            .map(|(w, _)| w as usize)
            .unwrap_or(80)
            .max(20);
        let _ = queue!(
            self.out,
            terminal::Clear(terminal::ClearType::All),
            cursor::MoveTo(0, 0)
        );
        for line in lines {
            let _ = queue!(
                self.out,
                style::Print(fit(line, width)),
                cursor::MoveToNextLine(1)
            );
        }
        let _ = self.out.flush();
    }
}

impl Observer for View {
    fn update(&mut self, p: &Progress) {
        let secs = p.elapsed.as_secs();
        let head = format!(
            "claude-editor-hook → @{}  {}  {}:{:02}  task {}",
            p.agent,
            p.agent_state,
            secs / 60,
            secs % 60,
            p.task
        );
        let queue = match p.ahead {
            Some(0) | None => String::new(),
            Some(n) => format!("waiting in line: {n} task(s) ahead"),
        };
        let latest = p.latest_output.as_deref().unwrap_or("");
        let lines = [
            head,
            format!("  {}", p.title),
            String::new(),
            format!("  │ {latest}"),
            String::new(),
            queue,
            if self.detachable {
                "Esc/Ctrl-C cancel and keep your prompt · b background · a jump to the agent"
            } else {
                "Esc/Ctrl-C cancel and keep your prompt · a jump to the agent"
            }
            .to_owned(),
        ];
        self.draw_lines(&lines);
    }

    fn refresh(&self) -> Option<Duration> {
        Some(Duration::from_millis(500))
    }
}
