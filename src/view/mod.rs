//! `claude-editor-hook top`: a live terminal view of the team (docs/team-view.md).
//!
//! It owns the TUI: `model.rs` (the team as read from the state directory, and the
//! "needs you first" order), `app.rs` (the keys, a pure state machine), `draw.rs`
//! (ratatui). This file is its one event loop: directory watches (the agents, their
//! inboxes, the shown tasks, the outboxes, the event log), the key thread and signals
//! feed one channel; the only timer is the 1 s clock of the AGE column. The terminal is
//! restored by a guard on every exit path, unwinding included.

mod app;
mod draw;
pub mod model;

use std::io::IsTerminal;
use std::sync::mpsc::{RecvTimeoutError, Sender, channel};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use crossterm::event::{Event as TermEvent, KeyCode, KeyEventKind, KeyModifiers};

use crate::events::{Entry, Follower, What};
use crate::signals::Signal;
use crate::state::{StateDir, lock_holder};
use crate::watch::DirWatcher;
use app::{Action, App, Key};

/// The clock of the AGE column; nothing is redrawn more often without a change.
const CLOCK: Duration = Duration::from_secs(1);

enum Ev {
    Changed,
    Key(Key),
    Resize,
    Signal(Signal),
}

/// The terminal in raw mode and the alternate screen, with the cursor hidden, until
/// dropped: whatever ends `top` (q, a signal, an error, a panic), the terminal is
/// restored.
struct TerminalGuard;

impl TerminalGuard {
    fn enter() -> Result<Self> {
        crossterm::terminal::enable_raw_mode().context("failed to put the terminal in raw mode")?;
        let guard = TerminalGuard;
        crossterm::execute!(
            std::io::stdout(),
            crossterm::terminal::EnterAlternateScreen,
            crossterm::cursor::Hide
        )?;
        Ok(guard)
    }
}

impl Drop for TerminalGuard {
    fn drop(&mut self) {
        let _ = crossterm::execute!(
            std::io::stdout(),
            crossterm::terminal::LeaveAlternateScreen,
            crossterm::cursor::Show
        );
        let _ = crossterm::terminal::disable_raw_mode();
    }
}

/// Reads keys and resizes on a thread of its own (it blocks in `read`, never polls).
fn read_keys(tx: Sender<Ev>) {
    std::thread::Builder::new()
        .name("top-keys".into())
        .spawn(move || {
            while let Ok(event) = crossterm::event::read() {
                let ev = match event {
                    TermEvent::Key(k) if k.kind != KeyEventKind::Release => {
                        let ctrl = k.modifiers.contains(KeyModifiers::CONTROL);
                        let key = match k.code {
                            KeyCode::Char('c') if ctrl => Key::Interrupt,
                            KeyCode::Char(c) => Key::Char(c),
                            KeyCode::Enter => Key::Enter,
                            KeyCode::Esc => Key::Esc,
                            KeyCode::Up => Key::Up,
                            KeyCode::Down => Key::Down,
                            KeyCode::Backspace => Key::Backspace,
                            _ => continue,
                        };
                        Ev::Key(key)
                    }
                    TermEvent::Resize(..) => Ev::Resize,
                    _ => continue,
                };
                if tx.send(ev).is_err() {
                    return;
                }
            }
        })
        .expect("spawn the key thread");
}

/// `board <path>: 3/7 done, …` for the board `status` shows, once one exists.
fn board_line() -> Option<String> {
    let spec = std::env::var("CLAUDE_EDITOR_HOOK_BOARD").ok();
    let path = crate::board::BoardPath::resolve(spec.as_deref()).ok()?;
    if !path.exists() {
        return None;
    }
    Some(
        match crate::board::Board::open(&path).and_then(|mut b| b.status()) {
            Ok(summary) => format!("board {path}: {}", summary.line()),
            Err(e) => format!("board {path}: {e:#}"),
        },
    )
}

/// Runs `top` until `q`, Ctrl-C or a signal. Returns the exit status.
pub fn run() -> Result<i32> {
    let state = StateDir::from_env()?;
    if !std::io::stdout().is_terminal() || !std::io::stdin().is_terminal() {
        bail!("top needs a terminal; `status --json` and `events --follow` are for scripts");
    }
    let (tx, rx) = channel();
    crate::signals::forward(tx.clone(), Ev::Signal)?;
    let mut watcher = DirWatcher::new(tx.clone(), || Ev::Changed)?;
    let _guard = TerminalGuard::enter()?;
    let backend = ratatui::backend::CrosstermBackend::new(std::io::stdout());
    // Before the key thread: the terminal is asked for the cursor position here, and
    // its answer must not be taken for keys.
    let mut terminal = ratatui::Terminal::new(backend)?;
    terminal.clear()?;
    read_keys(tx);

    let root = state.root().to_path_buf();
    let mut follower = Follower::new(&root, true);
    let _ = follower.dir();
    let mut events: Vec<Entry> = Vec::new();
    model::keep_recent(&mut events, crate::events::read_old(&root));
    model::keep_recent(&mut events, follower.read_new());
    let mut team = model::load(&state);
    team.board = board_line();
    let mut watched: Vec<std::path::PathBuf> = Vec::new();
    let mut app = App::default();
    loop {
        // Watch what the picture now shows: agents come and go, tasks change.
        let dirs = model::watched_dirs(&state, &team);
        if dirs != watched {
            for d in &watched {
                watcher.unwatch(d);
            }
            for d in &dirs {
                let _ = watcher.watch(d);
            }
            watched = dirs;
        }
        let tail = app
            .tail
            .as_ref()
            .and_then(|n| team.rows.iter().find(|r| &r.name == n))
            .and_then(|r| r.shown_task())
            .map(|id| model::tail_lines(&state.output_path(id), 200))
            .unwrap_or_default();
        let now_us = crate::time::now_us();
        terminal.draw(|f| {
            draw::draw(
                f,
                &draw::View {
                    team: &team,
                    app: &app,
                    events: &events,
                    tail: &tail,
                    now_us,
                },
            )
        })?;
        // The next whole second, for the clock.
        let to_tick = CLOCK - Duration::from_micros(now_us % 1_000_000);
        let deadline = Instant::now() + to_tick;
        let ev = match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(ev) => ev,
            Err(RecvTimeoutError::Timeout) => continue,
            Err(RecvTimeoutError::Disconnected) => return Ok(1),
        };
        let mut changed = false;
        let mut pending = vec![ev];
        // Everything queued meanwhile is handled in one pass: one reload, one draw.
        pending.extend(rx.try_iter());
        for ev in pending {
            match ev {
                Ev::Changed | Ev::Resize => changed = true,
                Ev::Signal(Signal::Resize) => {}
                Ev::Signal(Signal::Interrupt) => return Ok(0),
                Ev::Signal(sig) => return Ok(sig.exit_code()),
                Ev::Key(key) => match app.key(key, &team.rows) {
                    Action::Quit => return Ok(0),
                    Action::Redraw => {}
                    Action::Jump(pane) => app.message = Some(jump(&pane)),
                    Action::Cancel(id) => {
                        app.message = Some(
                            match crate::coordinator::cancel::cancel_task(
                                &state,
                                &id,
                                "cancelled from top",
                            ) {
                                Ok(done) => format!("task {id}: {}", done.outcome),
                                Err(e) => format!("{e:#}"),
                            },
                        );
                        changed = true;
                    }
                    Action::Kill(name) => {
                        app.message = Some(stop_agent(&state, &name));
                        changed = true;
                    }
                },
            }
        }
        if changed {
            let new = follower.read_new();
            if new
                .iter()
                .any(|e| matches!(e.event.what, What::Board { .. }))
            {
                team.board = board_line();
            }
            model::keep_recent(&mut events, new);
            let board = team.board.take();
            team = model::load(&state);
            team.board = board;
        }
    }
}

/// Goes to the tmux window of `pane` (inside tmux), or says where it is.
fn jump(pane: &str) -> String {
    if std::env::var_os("TMUX").is_none() {
        return format!("not inside tmux: the agent runs in pane {pane}");
    }
    if crate::tmux::query(&["select-window", "-t", pane]).is_none() {
        return format!("tmux could not select pane {pane}");
    }
    // Another session needs the client switched; in ours this changes nothing.
    let _ = crate::tmux::query(&["switch-client", "-t", pane]);
    format!("jumped to {pane}")
}

/// Asks agent `name`'s host to stop (SIGTERM: its task ends with the reason, its queue
/// is failed), without waiting: the row shows when it is offline.
fn stop_agent(state: &StateDir, name: &crate::state::AgentName) -> String {
    match lock_holder(&state.lock_path(name)) {
        Ok(Some(pid)) => match nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGTERM,
        ) {
            Ok(()) => format!("asked @{name} (agent-wrap pid {pid}) to stop"),
            Err(e) => format!("could not stop @{name}: {e}"),
        },
        Ok(None) => format!("@{name} is not running"),
        Err(e) => format!("{e:#}"),
    }
}
