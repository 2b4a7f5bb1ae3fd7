//! What a run shows while it runs: the [`RunEvent`]s, drawn three ways.
//!
//! - On a terminal (stderr): an overall bar (done/total, failed, blocked, elapsed,
//!   estimated time left) and one line per worker (its task, elapsed time and latest
//!   output line), with indicatif. Events that matter later (failures, retries, blocked
//!   tasks) print above the bars. Drawing is capped at 4 per second, and the loop only
//!   asks for a redraw once a second while a worker is busy (for the elapsed times):
//!   an idle run draws nothing.
//! - Without a terminal: one plain line per event on stderr.
//! - `--json`: one JSON object per event on stdout.

use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::Serialize;

use crate::time::human_us;

/// How often the terminal view refreshes the elapsed times while a worker is busy.
pub const REDRAW: Duration = Duration::from_secs(1);

/// Something that happened in a run.
#[derive(Clone, Debug, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum RunEvent {
    Started {
        run: String,
        goal: String,
        board: String,
        tasks: usize,
        done: usize,
        workers: usize,
        resumed: bool,
    },
    TaskStarted {
        task: String,
        title: String,
        worker: String,
        attempt: u32,
    },
    TaskDone {
        task: String,
        worker: String,
        attempt: u32,
        duration_ms: u64,
    },
    TaskRetry {
        task: String,
        worker: String,
        attempt: u32,
        reason: String,
    },
    TaskFailed {
        task: String,
        worker: String,
        attempt: u32,
        reason: String,
    },
    TaskBlocked {
        task: String,
        reason: String,
    },
    /// Back to open: the run was cancelled while it ran.
    TaskReopened {
        task: String,
        worker: String,
        attempt: u32,
        reason: String,
    },
    Finished {
        run: String,
        exit: i32,
        state: String,
        done: usize,
        failed: usize,
        blocked: usize,
        total: usize,
        elapsed_ms: u64,
        report: String,
    },
}

/// How to show progress.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Terminal,
    Plain,
    Json,
}

impl Mode {
    /// The terminal view when stderr is a terminal, else plain lines; `--json` wins.
    pub fn detect(json: bool) -> Self {
        use std::io::IsTerminal;
        if json {
            Mode::Json
        } else if std::io::stderr().is_terminal() {
            Mode::Terminal
        } else {
            Mode::Plain
        }
    }
}

/// The terminal view: one indicatif bar whose template has the overall line and, below
/// it, one line per worker (its message). One bar, so the lines are always drawn and
/// cleared together.
struct Bars {
    bar: ProgressBar,
    _echo: Option<NoControlEcho>,
}

/// Turns off the terminal's echo of control characters (`ECHOCTL`) while the bars are
/// shown, and restores the mode when dropped: the `^C` a Ctrl-C echoes at the cursor
/// would push the bars down a line, and the view would then leave one behind.
struct NoControlEcho {
    saved: nix::sys::termios::Termios,
}

impl NoControlEcho {
    fn new() -> Option<Self> {
        use nix::sys::termios::{LocalFlags, SetArg, tcgetattr, tcsetattr};
        let saved = tcgetattr(std::io::stderr()).ok()?;
        let mut quiet = saved.clone();
        quiet.local_flags.remove(LocalFlags::ECHOCTL);
        tcsetattr(std::io::stderr(), SetArg::TCSANOW, &quiet).ok()?;
        Some(Self { saved })
    }
}

impl Drop for NoControlEcho {
    fn drop(&mut self) {
        use nix::sys::termios::{SetArg, tcsetattr};
        let _ = tcsetattr(std::io::stderr(), SetArg::TCSANOW, &self.saved);
    }
}

/// One worker's line: what it runs and since when.
#[derive(Clone, Default)]
struct Slot {
    task: Option<(String, String)>,
    since: Option<std::time::Instant>,
    line: String,
}

/// The progress display.
pub struct Progress {
    mode: Mode,
    bars: Option<Bars>,
    slots: Vec<Slot>,
    worker_names: Vec<String>,
    done: usize,
    failed: usize,
    blocked: usize,
    started: std::time::Instant,
}

impl Progress {
    pub fn new(mode: Mode, worker_names: Vec<String>, total: usize) -> Self {
        let bars = (mode == Mode::Terminal).then(|| {
            let bar = ProgressBar::with_draw_target(
                Some(total as u64),
                ProgressDrawTarget::stderr_with_hz(4),
            );
            bar.set_style(
                ProgressStyle::with_template(
                    "run [{bar:30.cyan/blue}] {pos}/{len} done{prefix} · {elapsed} · ~{eta} left\n{msg}",
                )
                .expect("a valid template")
                .progress_chars("=> "),
            );
            Bars {
                bar,
                _echo: NoControlEcho::new(),
            }
        });
        Self {
            mode,
            bars,
            slots: vec![Slot::default(); worker_names.len()],
            worker_names,
            done: 0,
            failed: 0,
            blocked: 0,
            started: std::time::Instant::now(),
        }
    }

    /// When the view wants to be redrawn next (a busy worker's elapsed time), if ever.
    pub fn wants_redraw(&self) -> bool {
        self.bars.is_some() && self.slots.iter().any(|s| s.task.is_some())
    }

    /// Counts of what is already settled when the run (re)starts.
    pub fn set_counts(&mut self, done: usize, failed: usize, blocked: usize) {
        self.done = done;
        self.failed = failed;
        self.blocked = blocked;
        self.redraw_overall();
    }

    /// Shows `event`.
    pub fn event(&mut self, event: &RunEvent) {
        let worker_index = |name: &str, names: &[String]| names.iter().position(|n| n == name);
        match event {
            RunEvent::TaskStarted {
                task,
                title,
                worker,
                ..
            } => {
                if let Some(i) = worker_index(worker, &self.worker_names) {
                    self.slots[i] = Slot {
                        task: Some((task.clone(), title.clone())),
                        since: Some(std::time::Instant::now()),
                        line: String::new(),
                    };
                }
            }
            RunEvent::TaskDone { worker, .. }
            | RunEvent::TaskRetry { worker, .. }
            | RunEvent::TaskFailed { worker, .. }
            | RunEvent::TaskReopened { worker, .. } => {
                if let Some(i) = worker_index(worker, &self.worker_names) {
                    self.slots[i] = Slot::default();
                }
                match event {
                    RunEvent::TaskDone { .. } => self.done += 1,
                    RunEvent::TaskFailed { .. } => self.failed += 1,
                    _ => {}
                }
            }
            RunEvent::TaskBlocked { .. } => self.blocked += 1,
            _ => {}
        }
        match self.mode {
            Mode::Json => {
                let line = serde_json::to_string(event).expect("an event serializes");
                println!("{line}");
            }
            Mode::Plain => eprintln!("{}", self.plain(event)),
            Mode::Terminal => {
                // Only what matters later is kept above the bars; the rest is in them.
                let keep = matches!(
                    event,
                    RunEvent::Started { .. }
                        | RunEvent::TaskRetry { .. }
                        | RunEvent::TaskFailed { .. }
                        | RunEvent::TaskBlocked { .. }
                        | RunEvent::TaskReopened { .. }
                );
                if keep && let Some(b) = &self.bars {
                    b.bar.println(self.plain(event));
                }
                self.redraw_overall();
                self.redraw_workers();
            }
        }
    }

    /// A worker's latest output line.
    pub fn line(&mut self, worker: usize, line: &str) {
        if let Some(slot) = self.slots.get_mut(worker) {
            slot.line = line.chars().take(200).collect();
        }
        if self.bars.is_some() {
            self.redraw_workers();
        }
    }

    /// Refreshes the elapsed times.
    pub fn redraw(&mut self) {
        self.redraw_workers();
        if let Some(b) = &self.bars {
            b.bar.tick();
        }
    }

    /// Removes the bars (before the report is printed).
    pub fn finish(&mut self) {
        if let Some(b) = self.bars.take() {
            b.bar.finish_and_clear();
        }
    }

    fn redraw_overall(&self) {
        if let Some(b) = &self.bars {
            b.bar.set_position(self.done as u64);
            let mut msg = String::new();
            if self.failed > 0 {
                msg.push_str(&format!(" · {} failed", self.failed));
            }
            if self.blocked > 0 {
                msg.push_str(&format!(" · {} blocked", self.blocked));
            }
            b.bar.set_prefix(msg);
        }
    }

    fn redraw_workers(&self) {
        let Some(b) = &self.bars else {
            return;
        };
        let mut lines = Vec::with_capacity(self.slots.len());
        for (i, slot) in self.slots.iter().enumerate() {
            let name = &self.worker_names[i];
            lines.push(match (&slot.task, slot.since) {
                (Some((id, title)), Some(since)) => {
                    let title: String = title.chars().take(40).collect();
                    let mut s = format!(
                        "  {name}  {id} {title}  {}",
                        human_us(since.elapsed().as_micros() as u64)
                    );
                    if !slot.line.is_empty() {
                        s.push_str(&format!("  │ {}", slot.line));
                    }
                    s
                }
                _ => format!("  {name}  idle"),
            });
        }
        b.bar.set_message(lines.join("\n"));
    }

    fn elapsed(&self) -> String {
        human_us(self.started.elapsed().as_micros() as u64)
    }

    fn plain(&self, event: &RunEvent) -> String {
        let at = self.elapsed();
        match event {
            RunEvent::Started {
                run,
                goal,
                board,
                tasks,
                done,
                workers,
                resumed,
            } => format!(
                "run {run}{}: {tasks} tasks ({done} done), {workers} workers, board {board}: {goal}",
                if *resumed { " resumed" } else { "" }
            ),
            RunEvent::TaskStarted {
                task,
                title,
                worker,
                attempt,
            } => format!("[{at}] {task} started on {worker} (attempt {attempt}): {title}"),
            RunEvent::TaskDone {
                task,
                worker,
                duration_ms,
                ..
            } => format!(
                "[{at}] {task} done by {worker} in {}",
                human_us(duration_ms * 1000)
            ),
            RunEvent::TaskRetry {
                task,
                worker,
                attempt,
                reason,
            } => format!("[{at}] {task} attempt {attempt} failed on {worker}, retrying: {reason}"),
            RunEvent::TaskFailed {
                task,
                worker,
                attempt,
                reason,
            } => format!("[{at}] {task} failed on {worker} (attempt {attempt}): {reason}"),
            RunEvent::TaskBlocked { task, reason } => format!("[{at}] {task} {reason}"),
            RunEvent::TaskReopened {
                task,
                worker,
                reason,
                ..
            } => format!("[{at}] {task} back to open from {worker}: {reason}"),
            RunEvent::Finished {
                run,
                state,
                done,
                failed,
                blocked,
                total,
                report,
                ..
            } => format!(
                "[{at}] run {run} {state}: {done}/{total} done, {failed} failed, {blocked} blocked; report: {report}"
            ),
        }
    }
}
