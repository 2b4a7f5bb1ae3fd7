//! `claude-editor-hook notify`: tells the human when they are needed, from the event
//! log (docs/team-view.md, "Notifications").
//!
//! Why one follower of the log rather than the hosts themselves: the log already
//! carries every change of every process (hosts, coordinators, board verbs), so one
//! process sees them all, in order, and can rate-limit and de-duplicate across agents;
//! and no host's event loop ever waits on a user's notification command. `up` starts
//! it in the team's session (window `notify`). It follows the log from its end, so a
//! restart never repeats an old notification.
//!
//! What is worth a notification is a pure function of the events ([`Notifier::step`]).

use std::collections::HashMap;
use std::io::Write;
use std::process::{Command, Stdio};
use std::sync::mpsc::channel;

use anyhow::Result;

use super::{Event, Follower, What};
use crate::state::{AgentState, Outcome, StateDir};
use crate::team::config::NotifyConfig;

/// One notification.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Note {
    /// What kind of need: `needs_human`, `background_ready`, `board_failed`,
    /// `board_finished`, `run_finished`, `run_failed`, `agent_crashed`.
    pub kind: &'static str,
    /// One line for the human.
    pub message: String,
}

/// Decides what to notify, from the events in log order.
#[derive(Debug, Default)]
pub struct Notifier {
    /// Each agent's last status seen: a notification is for a change.
    status: HashMap<String, AgentState>,
    /// When each (agent or board, kind) was last notified, for the rate limit.
    sent: HashMap<(String, &'static str), u64>,
    min_interval_us: u64,
}

impl Notifier {
    pub fn new(min_interval_secs: u64) -> Self {
        Self {
            min_interval_us: min_interval_secs.saturating_mul(1_000_000),
            ..Self::default()
        }
    }

    /// The notification `event` calls for, if any. `board_done` says whether a board
    /// whose task was just done is finished (every task done), which only the board
    /// knows.
    pub fn step(&mut self, event: &Event, board_done: impl Fn(&str) -> bool) -> Option<Note> {
        let (subject, note) = match &event.what {
            What::AgentStatus { agent, status, .. } => {
                let before = self.status.insert(agent.to_string(), *status);
                let needs = matches!(status, AgentState::Waiting | AgentState::User);
                if !needs || before == Some(*status) {
                    return None;
                }
                let why = match status {
                    AgentState::User => "your draft in its box holds a task",
                    _ => "it waits at a dialog or a permission prompt",
                };
                (
                    agent.to_string(),
                    Note {
                        kind: "needs_human",
                        message: format!("@{agent} needs you: {why}"),
                    },
                )
            }
            What::TaskFinished {
                task,
                agent,
                outcome,
                background: true,
                title,
                ..
            } => {
                let who = agent.as_ref().map(|a| a.to_string()).unwrap_or_default();
                // A board task drained by an agent is the board's business.
                if title.starts_with("board ") {
                    return None;
                }
                let how = match outcome {
                    Outcome::Ok => "ready".to_owned(),
                    other => format!("ready ({other})"),
                };
                (
                    format!("{who}/{task}"),
                    Note {
                        kind: "background_ready",
                        message: format!("background result of @{who} {how}: {title}"),
                    },
                )
            }
            What::Board { board, verb, task } if verb == "failed" => (
                board.clone(),
                Note {
                    kind: "board_failed",
                    message: format!(
                        "board {board}: task {} failed",
                        task.as_deref().unwrap_or("?")
                    ),
                },
            ),
            What::Board { board, verb, .. } if verb == "done" && board_done(board) => (
                board.clone(),
                Note {
                    kind: "board_finished",
                    message: format!("board {board}: every task is done"),
                },
            ),
            What::RunFinished {
                run,
                state,
                done,
                failed,
                blocked,
                total,
            } => (
                format!("run-{run}"),
                Note {
                    kind: if state == "done" {
                        "run_finished"
                    } else {
                        "run_failed"
                    },
                    message: format!(
                        "run {run} {state}: {done}/{total} done, {failed} failed, {blocked} blocked"
                    ),
                },
            ),
            // A crash that was restarted needs nobody; one that was not leaves the
            // agent offline until someone starts it.
            What::AgentCrashed {
                restart: None,
                agent,
                ..
            } => (
                agent.to_string(),
                Note {
                    kind: "agent_crashed",
                    message: event.describe(),
                },
            ),
            _ => return None,
        };
        let key = (subject, note.kind);
        if let Some(at) = self.sent.get(&key)
            && event.at_us.saturating_sub(*at) < self.min_interval_us
        {
            return None;
        }
        self.sent.insert(key, event.at_us);
        Some(note)
    }
}

/// Returns true if and only if the board at `spec` has tasks and all are done.
fn board_finished(spec: &str) -> bool {
    crate::board::BoardPath::resolve(Some(spec))
        .and_then(|p| crate::board::Board::open(&p))
        .and_then(|mut b| b.status())
        .is_ok_and(|s| s.total > 0 && s.done == s.total)
}

/// Runs until killed: follows the log and notifies.
pub fn run(config: &NotifyConfig) -> Result<i32> {
    let state = StateDir::from_env()?;
    let in_tmux = std::env::var_os("TMUX").is_some();
    if config.command.is_none() && !in_tmux {
        println!("notify: outside tmux and without a [notify] command there is nothing to do");
        return Ok(0);
    }
    let (tx, rx) = channel();
    let mut follower = Follower::new(state.root(), false);
    let mut watcher = crate::watch::DirWatcher::new(tx, || ())?;
    watcher.watch(follower.dir()?)?;
    // Anything appended between the follower's start and the watch.
    let mut pending = follower.read_new();
    let mut notifier = Notifier::new(config.min_interval_secs);
    println!(
        "notify: following {}",
        super::log_path(state.root()).display()
    );
    let _ = std::io::stdout().flush();
    loop {
        for entry in pending.drain(..) {
            if let Some(note) = notifier.step(&entry.event, board_finished) {
                deliver(config, &entry.raw, &note);
            }
        }
        if rx.recv().is_err() {
            return Ok(1);
        }
        while rx.try_recv().is_ok() {}
        pending = follower.read_new();
    }
}

/// Tells the human: the configured command with the event on stdin, else tmux's
/// message line in this session and the bell in its first window.
fn deliver(config: &NotifyConfig, raw: &str, note: &Note) {
    println!("{}", note.message);
    match &config.command {
        Some(command) => {
            let mut doc: serde_json::Value = serde_json::from_str(raw).unwrap_or_default();
            doc["notification"] = note.kind.into();
            doc["message"] = note.message.clone().into();
            let spawned = Command::new("sh")
                .args(["-c", command])
                .stdin(Stdio::piped())
                .stdout(Stdio::null())
                .spawn();
            match spawned {
                Ok(mut child) => {
                    if let Some(mut stdin) = child.stdin.take() {
                        let _ = writeln!(stdin, "{doc}");
                    }
                    // Reaped on a thread: a slow command never holds up the next event.
                    std::thread::spawn(move || child.wait());
                }
                Err(e) => eprintln!("notify: cannot run the [notify] command: {e}"),
            }
        }
        None => {
            let session = crate::tmux::query(&["display-message", "-p", "#{session_name}"])
                .unwrap_or_default();
            let _ = crate::tmux::query(&[
                "display-message",
                "-t",
                &session,
                &format!("claude-editor-hook: {}", note.message),
            ]);
            // The bell, where the chief is: the session's first window.
            if let Some(tty) = crate::tmux::query(&[
                "display-message",
                "-p",
                "-t",
                &format!("{session}:^"),
                "#{pane_tty}",
            ]) && let Ok(mut t) = std::fs::OpenOptions::new().write(true).open(tty)
            {
                let _ = t.write_all(b"\x07");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::{AgentName, FinishedBy, TaskId};

    fn status(at_s: u64, agent: &str, status: AgentState) -> Event {
        Event {
            version: 1,
            at_us: at_s * 1_000_000,
            what: What::AgentStatus {
                agent: AgentName::parse(agent).unwrap(),
                status,
                task: None,
            },
        }
    }

    #[test]
    fn one_note_per_change_to_a_need_rate_limited_per_agent() {
        let mut n = Notifier::new(10);
        let no_board = |_: &str| false;
        assert!(
            n.step(&status(0, "a", AgentState::Working), no_board)
                .is_none()
        );
        let note = n
            .step(&status(1, "a", AgentState::Waiting), no_board)
            .unwrap();
        assert_eq!(note.kind, "needs_human");
        assert!(note.message.starts_with("@a needs you"));
        // The same status again is no change.
        assert!(
            n.step(&status(2, "a", AgentState::Waiting), no_board)
                .is_none()
        );
        // Another agent is its own subject.
        assert!(
            n.step(&status(2, "b", AgentState::User), no_board)
                .is_some()
        );
        // A flapping agent: within the interval, not again; after it, again.
        n.step(&status(3, "a", AgentState::Working), no_board);
        assert!(
            n.step(&status(4, "a", AgentState::Waiting), no_board)
                .is_none()
        );
        n.step(&status(12, "a", AgentState::Working), no_board);
        assert!(
            n.step(&status(13, "a", AgentState::Waiting), no_board)
                .is_some()
        );
    }

    #[test]
    fn background_results_and_boards_are_notified() {
        let mut n = Notifier::new(0);
        let finished = |background: bool, title: &str| Event {
            version: 1,
            at_us: 5,
            what: What::TaskFinished {
                task: TaskId::parse("t-1").unwrap(),
                agent: Some(AgentName::parse("bg").unwrap()),
                title: title.into(),
                outcome: Outcome::Ok,
                reason: None,
                finished_by: FinishedBy::Agent,
                background,
            },
        };
        assert!(n.step(&finished(false, "x"), |_| false).is_none());
        assert!(n.step(&finished(true, "board b: t1"), |_| false).is_none());
        let note = n.step(&finished(true, "watch it"), |_| false).unwrap();
        assert_eq!(note.message, "background result of @bg ready: watch it");
        let board = |verb: &str| Event {
            version: 1,
            at_us: 6,
            what: What::Board {
                board: "b".into(),
                verb: verb.into(),
                task: Some("t1".into()),
            },
        };
        assert_eq!(
            n.step(&board("failed"), |_| false).unwrap().kind,
            "board_failed"
        );
        assert!(n.step(&board("done"), |_| false).is_none());
        assert_eq!(
            n.step(&board("done"), |_| true).unwrap().kind,
            "board_finished"
        );
    }

    #[test]
    fn a_finished_or_failed_run_is_one_note() {
        let mut n = Notifier::new(10);
        let run = |state: &str, failed: usize| Event {
            version: 1,
            at_us: 1,
            what: What::RunFinished {
                run: "20261202-010000".into(),
                state: state.into(),
                done: 3 - failed,
                failed,
                blocked: 0,
                total: 3,
            },
        };
        let note = n.step(&run("done", 0), |_| false).unwrap();
        assert_eq!(note.kind, "run_finished");
        assert!(note.message.contains("3/3 done"), "{}", note.message);
        let note = n.step(&run("failed", 1), |_| false).unwrap();
        assert_eq!(note.kind, "run_failed");
    }

    #[test]
    fn a_crash_is_a_note_only_when_the_agent_was_not_restarted() {
        let mut n = Notifier::new(10);
        let crash = |restart: Option<usize>| Event {
            version: 1,
            at_us: 1,
            what: What::AgentCrashed {
                agent: AgentName::parse("w").unwrap(),
                how: "killed by SIGKILL".into(),
                restart,
                pause_ms: restart.map(|_| 500),
                reason: restart
                    .is_none()
                    .then(|| "it crashed 6 times within a minute".into()),
            },
        };
        assert!(n.step(&crash(Some(1)), |_| false).is_none());
        let note = n.step(&crash(None), |_| false).unwrap();
        assert_eq!(note.kind, "agent_crashed");
        assert_eq!(
            note.message,
            "@w crashed (killed by SIGKILL) and is not restarted: it crashed 6 times within a minute"
        );
    }
}
