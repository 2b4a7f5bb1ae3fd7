//! The event stream, `GET /api/v1/events` (docs/web.md, "Events").
//!
//! Two hubs read the state once for all clients, each on a thread of its own woken by
//! directory watches (never a timer):
//! - [`LogHub`]: the new lines of the event log, with their places, on a broadcast
//!   channel;
//! - [`TeamHub`]: the team document (`GET status`), recomputed on the same watches as
//!   `top` and published on a watch channel when it changed.
//!
//! Each client's stream sends the team document, then the backlog (or, with
//! `Last-Event-ID`, everything after that event), then what the hubs publish. A client
//! that falls behind the broadcast channel (a slow reader, a burst) does not hold anyone
//! up: it catches up from the log file from its own place, one bounded read at a time,
//! so its memory is bounded too.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::Result;
use axum::response::sse::Event as SseEvent;
use tokio::sync::{broadcast, watch};

use crate::events::{Placed, Position};
use crate::state::StateDir;
use crate::watch::DirWatcher;

/// How many log lines the broadcast channel holds for the slowest client before it
/// has to catch up from the file.
pub const CHANNEL: usize = 1024;
/// The most a client reads from the log file in one step of catching up.
const CATCH_UP_BYTES: u64 = 256 << 10;
/// The team document is recomputed at most this often: a chatty agent's output (whose
/// latest line the document shows) costs one document per interval, not one per write.
const TEAM_INTERVAL: Duration = Duration::from_millis(25);
/// The backlog sent to a new client, and the most a client may ask for.
pub const DEFAULT_BACKLOG: usize = 20;
pub const MAX_BACKLOG: usize = 200;
/// The most streams open at once.
pub const MAX_STREAMS: usize = 512;

/// One line of the log, as the hub read it.
#[derive(Debug)]
pub struct LogLine {
    pub start: Position,
    pub end: Position,
    pub raw: Arc<str>,
}

impl From<Placed> for LogLine {
    fn from(p: Placed) -> Self {
        LogLine {
            start: p.start,
            end: p.end,
            raw: p.entry.raw.into(),
        }
    }
}

/// The event log's new lines, for every client.
#[derive(Clone)]
pub struct LogHub {
    tx: broadcast::Sender<Arc<LogLine>>,
}

impl LogHub {
    /// Starts the hub's thread on the log of the state whose durable part is `root`.
    pub fn start(root: PathBuf) -> Result<LogHub> {
        let (tx, _) = broadcast::channel(CHANNEL);
        let dir = root.join(crate::events::EVENTS_DIR);
        crate::state::ensure_private_dir(&dir)?;
        let (wake_tx, wake) = std::sync::mpsc::channel();
        let mut watcher = DirWatcher::new(wake_tx, || ())?;
        watcher.watch(&dir)?;
        let hub = LogHub { tx: tx.clone() };
        std::thread::Builder::new()
            .name("web-log".into())
            .spawn(move || {
                let _watcher = watcher;
                let mut pos = crate::events::end_position(&root);
                while wake.recv().is_ok() {
                    while wake.try_recv().is_ok() {}
                    pos = publish_new(&root, pos, &tx);
                }
            })?;
        Ok(hub)
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Arc<LogLine>> {
        self.tx.subscribe()
    }
}

/// Broadcasts every line after `pos` (from the log's start when there was no log);
/// returns the new place.
fn publish_new(
    root: &Path,
    mut pos: Option<Position>,
    tx: &broadcast::Sender<Arc<LogLine>>,
) -> Option<Position> {
    loop {
        let start_of_log = || {
            crate::events::end_position(root).map(|p| Position {
                ino: p.ino,
                offset: 0,
            })
        };
        // No log yet: nothing to publish, and the next line starts it.
        let from = pos.or_else(start_of_log)?;
        let (lines, next) = match crate::events::read_after(root, from, 1 << 20) {
            Some(read) => read,
            // Our place is gone (rotated twice, or the log removed): the log's start.
            None => match start_of_log() {
                Some(start) if Some(start) != pos => {
                    pos = Some(start);
                    continue;
                }
                _ => return pos,
            },
        };
        let moved = next != from;
        for line in lines {
            // No receiver is not an error: nobody is connected.
            let _ = tx.send(Arc::new(line.into()));
        }
        pos = Some(next);
        if !moved {
            return pos;
        }
    }
}

/// The team document, for every client.
#[derive(Clone)]
pub struct TeamHub {
    rx: watch::Receiver<Arc<str>>,
}

impl TeamHub {
    /// Starts the hub's thread; the first document is ready when this returns.
    pub fn start(state: StateDir) -> Result<TeamHub> {
        let (wake_tx, wake) = std::sync::mpsc::channel();
        let mut watcher = DirWatcher::new(wake_tx, || ())?;
        let mut worktrees = super::api::Worktrees::default();
        let (doc, dirs) = super::api::team_doc(&state, Some(&mut worktrees));
        let (tx, rx) = watch::channel::<Arc<str>>(doc.to_string().into());
        let mut watched = Vec::new();
        rewatch(&mut watcher, &mut watched, dirs);
        std::thread::Builder::new()
            .name("web-team".into())
            .spawn(move || {
                let mut last = Instant::now();
                while wake.recv().is_ok() {
                    // At most one document per interval; what changes meanwhile is in it.
                    let due = last + TEAM_INTERVAL;
                    loop {
                        let left = due.saturating_duration_since(Instant::now());
                        if left.is_zero() {
                            break;
                        }
                        match wake.recv_timeout(left) {
                            Ok(()) => {}
                            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => break,
                            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => return,
                        }
                    }
                    while wake.try_recv().is_ok() {}
                    last = Instant::now();
                    let (doc, dirs) = super::api::team_doc(&state, Some(&mut worktrees));
                    rewatch(&mut watcher, &mut watched, dirs);
                    let doc: Arc<str> = doc.to_string().into();
                    tx.send_if_modified(|old| {
                        let changed = **old != *doc;
                        if changed {
                            *old = doc;
                        }
                        changed
                    });
                }
            })?;
        Ok(TeamHub { rx })
    }

    /// A receiver that has not seen the current document yet.
    pub fn receiver(&self) -> watch::Receiver<Arc<str>> {
        let mut rx = self.rx.clone();
        rx.mark_changed();
        rx
    }
}

/// Watches `dirs` instead of `watched` (the agents come and go, and so do their tasks).
fn rewatch(watcher: &mut DirWatcher, watched: &mut Vec<PathBuf>, dirs: Vec<PathBuf>) {
    if dirs == *watched {
        return;
    }
    for d in watched.iter() {
        watcher.unwatch(d);
    }
    for d in &dirs {
        let _ = watcher.watch(d);
    }
    *watched = dirs;
}

/// Counts the open streams; one is held by each stream and released when it ends.
pub struct StreamSlot(Arc<AtomicUsize>);

impl StreamSlot {
    /// A slot, unless [`MAX_STREAMS`] are open.
    pub fn take(count: &Arc<AtomicUsize>) -> Option<StreamSlot> {
        let before = count.fetch_add(1, Ordering::SeqCst);
        if before >= MAX_STREAMS {
            count.fetch_sub(1, Ordering::SeqCst);
            return None;
        }
        Some(StreamSlot(count.clone()))
    }
}

impl Drop for StreamSlot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// One client's stream.
pub struct Client {
    pub root: PathBuf,
    pub log: broadcast::Receiver<Arc<LogLine>>,
    pub team: watch::Receiver<Arc<str>>,
    pub shutdown: watch::Receiver<bool>,
    /// The place after the last log line sent (or queued); `None` before the first.
    pub pos: Option<Position>,
    pub queued: VecDeque<SseEvent>,
    /// Lines remain in the file after `pos` that were not read yet (catching up).
    pub behind: bool,
    pub sent_team: bool,
    pub _slot: StreamSlot,
}

/// A log line as an SSE event: its place is its id.
fn log_event(end: Position, raw: &str) -> SseEvent {
    SseEvent::default()
        .event("log")
        .id(end.to_string())
        .data(raw)
}

fn team_event(doc: &str) -> SseEvent {
    SseEvent::default().event("team").data(doc)
}

/// Where a new client starts: after `last_id` if the log holds it, else with the last
/// `backlog` events. Returns the queued events and the place after them.
pub fn start(
    root: &Path,
    last_id: Option<&str>,
    backlog: usize,
) -> (VecDeque<SseEvent>, Option<Position>, bool) {
    let resume = last_id
        .and_then(|id| id.parse::<Position>().ok())
        .and_then(|p| Some((p, crate::events::read_after(root, p, CATCH_UP_BYTES)?)));
    let (lines, pos, behind) = match resume {
        Some((from, (lines, next))) => {
            let behind =
                next != from && crate::events::end_position(root).is_some_and(|e| e != next);
            (lines, Some(next), behind)
        }
        None => {
            let lines = crate::events::tail(root, backlog);
            let pos = lines
                .last()
                .map(|l| l.end)
                .or_else(|| crate::events::end_position(root));
            (lines, pos, false)
        }
    };
    let queued = lines
        .iter()
        .map(|l| log_event(l.end, &l.entry.raw))
        .collect();
    (queued, pos, behind)
}

impl Client {
    /// The next event to send; `None` ends the stream (the server is stopping).
    pub async fn next(&mut self) -> Option<SseEvent> {
        loop {
            if !self.sent_team {
                self.sent_team = true;
                let doc = self.team.borrow_and_update().clone();
                return Some(team_event(&doc));
            }
            if let Some(ev) = self.queued.pop_front() {
                return Some(ev);
            }
            if self.behind {
                self.catch_up();
                continue;
            }
            tokio::select! {
                biased;
                _ = self.shutdown.changed() => return None,
                changed = self.team.changed() => {
                    changed.ok()?;
                    let doc = self.team.borrow_and_update().clone();
                    return Some(team_event(&doc));
                }
                line = self.log.recv() => match line {
                    Ok(line) => self.take(&line),
                    Err(broadcast::error::RecvError::Lagged(_)) => self.catch_up(),
                    Err(broadcast::error::RecvError::Closed) => return None,
                },
            }
        }
    }

    /// Queues `line` if it is the next one; a gap (lines this client missed) is filled
    /// from the file first, and a line already sent is dropped.
    fn take(&mut self, line: &LogLine) {
        let sent = |pos: Option<Position>| {
            pos.is_some_and(|p| p.ino == line.end.ino && p.offset >= line.end.offset)
        };
        if sent(self.pos) {
            return;
        }
        if self.pos.is_some_and(|p| p != line.start) {
            self.catch_up();
            if sent(self.pos) || self.pos.is_some_and(|p| p != line.start) {
                return;
            }
        }
        self.queued.push_back(log_event(line.end, &line.raw));
        self.pos = Some(line.end);
    }

    /// Reads the log after this client's place, one bounded step.
    fn catch_up(&mut self) {
        self.behind = false;
        let Some(from) = self.pos else {
            return;
        };
        match crate::events::read_after(&self.root, from, CATCH_UP_BYTES) {
            Some((lines, next)) => {
                self.queued
                    .extend(lines.iter().map(|l| log_event(l.end, &l.entry.raw)));
                self.behind = next != from
                    && crate::events::end_position(&self.root).is_some_and(|e| e != next);
                self.pos = Some(next);
            }
            // The place is gone (the log rotated twice while this client lagged): go on
            // with what comes next.
            None => self.pos = None,
        }
    }
}
