//! `claim --wait`: block until a task is ready, without polling.
//!
//! Three things can make a task ready or claimable, and each is an event here:
//! - a write to the database (a `done`, an `add`, a `retry`, a `release`): SQLite
//!   appends to `board.db-wal` in the board's directory, which an inotify watch on that
//!   directory reports ([`crate::watch::DirWatcher`]);
//! - a lease running out: a timer set to the earliest lease end;
//! - a hosted agent dying with a claim: a pidfd exit watch per claiming `agent-wrap`
//!   ([`crate::process::notify_exit`]).
//!
//! The waiter arms all three before it first tries to claim, so no change between a try
//! and the wait is missed. A slow backstop timer covers only a lost inotify event.

use std::collections::HashMap;
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender, channel};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use anyhow::Result;

use super::claim::{ClaimRequest, Claimed};
use super::report::{StatusSummary, can_progress};
use super::store::Board;
use crate::process::ExitWatch;
use crate::time::now_us;
use crate::watch::DirWatcher;

/// The backstop behind the events: a lost inotify event (queue overflow) costs at most
/// this much delay.
pub const BACKSTOP: Duration = Duration::from_secs(60);

/// How a wait ended.
#[derive(Debug)]
pub enum WaitEnd {
    /// A task was claimed.
    Claimed(Box<Claimed>),
    /// Nothing the worker may take can become ready: the board is finished for it.
    Finished(Box<StatusSummary>),
}

type Make<E> = Arc<dyn Fn() -> E + Send + Sync>;

/// The event sources that can make a board task claimable, feeding one channel.
pub struct BoardWatch<E: Send + 'static> {
    _dir: DirWatcher,
    exits: HashMap<i32, ExitWatch>,
    timer: Timer,
    tx: Sender<E>,
    make: Make<E>,
}

impl<E: Send + 'static> BoardWatch<E> {
    /// Watches `board`'s directory, sending `make()` on `tx` for every change.
    pub fn new(
        board: &Board,
        tx: Sender<E>,
        make: impl Fn() -> E + Send + Sync + 'static,
    ) -> Result<Self> {
        let make: Make<E> = Arc::new(make);
        let mut dir = {
            let make = make.clone();
            DirWatcher::new(tx.clone(), move || make())?
        };
        dir.watch(board.path().dir())?;
        let timer = {
            let (make, tx) = (make.clone(), tx.clone());
            Timer::start(move || {
                let _ = tx.send(make());
            })
        };
        Ok(Self {
            _dir: dir,
            exits: HashMap::new(),
            timer,
            tx,
            make,
        })
    }

    /// Points the timer at the next lease end and watches every claiming host.
    pub fn rearm(&mut self, board: &Board) -> Result<()> {
        let (next_lease_us, pids) = board.lease_events()?;
        self.timer.set(next_lease_us.map(|at| {
            // One millisecond late, so the lease has surely ended when we look.
            Instant::now() + Duration::from_micros(at.saturating_sub(now_us()) + 1000)
        }));
        self.exits.retain(|pid, _| pids.contains(pid));
        for pid in pids {
            if pid == std::process::id() as i32 || self.exits.contains_key(&pid) {
                continue;
            }
            let (tx, make) = (self.tx.clone(), self.make.clone());
            let watch = crate::process::notify_exit(pid, tx, move || make())?;
            self.exits.insert(pid, watch);
        }
        Ok(())
    }
}

/// Claims a task for `req`, waiting as long as one can still become ready for it.
/// `timeout` bounds the wait (`None`: no bound); on timeout, `Ok(None)`.
pub fn claim_wait(
    board: &mut Board,
    req: &ClaimRequest,
    timeout: Option<Duration>,
) -> Result<Option<WaitEnd>> {
    let deadline = timeout.map(|t| Instant::now() + t);
    let (tx, rx): (Sender<()>, Receiver<()>) = channel();
    let mut watch = BoardWatch::new(board, tx, || ())?;
    loop {
        if let Some(claimed) = board.claim(req)? {
            return Ok(Some(WaitEnd::Claimed(Box::new(claimed))));
        }
        let views = board.views()?;
        if !can_progress(&views, &req.roles) {
            let summary = StatusSummary::from_views(board, &views)?;
            return Ok(Some(WaitEnd::Finished(Box::new(summary))));
        }
        watch.rearm(board)?;
        let mut wait = BACKSTOP;
        if let Some(d) = deadline {
            let left = d.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(None);
            }
            wait = wait.min(left);
        }
        match rx.recv_timeout(wait) {
            Ok(()) | Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => anyhow::bail!("the board watch stopped"),
        }
        // One look covers every change so far.
        while rx.try_recv().is_ok() {}
    }
}

/// How the `claim` verb ended, for the shell (`board claim`) and the MCP tool
/// (`board_claim`) alike.
#[derive(Debug)]
pub enum ClaimEnd {
    Claimed(Box<Claimed>),
    /// Nothing is ready for the worker now, though something can become ready.
    NotReady(Box<StatusSummary>),
    /// Nothing the worker may take can become ready: the board is finished for it.
    Finished(Box<StatusSummary>),
    /// `wait` with a timeout, and nothing became ready in time.
    TimedOut,
}

impl ClaimEnd {
    /// Why nothing was claimed, one line for the worker (empty for a claim).
    pub fn reason(&self, worker: &str) -> String {
        match self {
            ClaimEnd::Claimed(_) => String::new(),
            ClaimEnd::TimedOut => "no task became ready within the timeout".into(),
            ClaimEnd::NotReady(s) => format!(
                "no task is ready for {worker} yet ({}); `claim --wait` blocks until one is",
                s.line()
            ),
            ClaimEnd::Finished(s) => {
                format!("nothing left for {worker} on the board: {}", s.line())
            }
        }
    }
}

/// The `claim` verb: take a task for `req` now, or with `wait` as soon as one is ready
/// (up to `timeout`).
pub fn claim_verb(
    board: &mut Board,
    req: &ClaimRequest,
    wait: bool,
    timeout: Option<Duration>,
) -> Result<ClaimEnd> {
    if wait {
        return Ok(match claim_wait(board, req, timeout)? {
            None => ClaimEnd::TimedOut,
            Some(WaitEnd::Claimed(c)) => ClaimEnd::Claimed(c),
            Some(WaitEnd::Finished(s)) => ClaimEnd::Finished(s),
        });
    }
    if let Some(c) = board.claim(req)? {
        return Ok(ClaimEnd::Claimed(Box::new(c)));
    }
    let views = board.views()?;
    let summary = Box::new(StatusSummary::from_views(board, &views)?);
    Ok(if can_progress(&views, &req.roles) {
        ClaimEnd::NotReady(summary)
    } else {
        ClaimEnd::Finished(summary)
    })
}

/// A one-shot timer thread that calls `fire` at the deadline last set.
struct Timer {
    shared: Arc<(Mutex<TimerState>, Condvar)>,
}

#[derive(Default)]
struct TimerState {
    at: Option<Instant>,
    stop: bool,
}

impl Timer {
    fn start(fire: impl Fn() + Send + 'static) -> Self {
        let shared = Arc::new((Mutex::new(TimerState::default()), Condvar::new()));
        let theirs = shared.clone();
        std::thread::spawn(move || {
            let (lock, cv) = &*theirs;
            let mut st = lock.lock().expect("timer lock");
            loop {
                if st.stop {
                    return;
                }
                match st.at {
                    None => st = cv.wait(st).expect("timer lock"),
                    Some(at) => {
                        let now = Instant::now();
                        if now >= at {
                            st.at = None;
                            drop(st);
                            fire();
                            st = lock.lock().expect("timer lock");
                        } else {
                            st = cv.wait_timeout(st, at - now).expect("timer lock").0;
                        }
                    }
                }
            }
        });
        Self { shared }
    }

    fn set(&self, at: Option<Instant>) {
        let (lock, cv) = &*self.shared;
        lock.lock().expect("timer lock").at = at;
        cv.notify_all();
    }
}

impl Drop for Timer {
    fn drop(&mut self) {
        let (lock, cv) = &*self.shared;
        if let Ok(mut st) = lock.lock() {
            st.stop = true;
        }
        cv.notify_all();
    }
}
