//! What `top` shows, read from the state directory: one snapshot of the team, taken
//! again after every change. Only reading: `top` never writes state except through the
//! verbs its keys run (cancel, kill).

use std::path::PathBuf;

use crate::events::Entry;
use crate::state::{
    AgentInfo, AgentName, AgentState, StateDir, TaskId, TmuxLocation, TokenUsage, pending,
};

/// How many recent events `top` keeps.
pub const RECENT_EVENTS: usize = 50;

/// One agent's row.
#[derive(Clone, Debug, PartialEq)]
pub struct Row {
    pub name: AgentName,
    pub roles: Vec<String>,
    /// The effective state: `offline` without a live host, whatever the file says.
    pub state: AgentState,
    /// Why the status file cannot be read, naming it.
    pub status_error: Option<String>,
    /// The current task.
    pub task: Option<(TaskId, String)>,
    /// The last finished task, for an agent without a current one.
    pub last: Option<(TaskId, String)>,
    /// Since when the agent is in its state (µs).
    pub since_us: u64,
    pub queued: usize,
    /// The last non-empty line of the current (or last) task's output.
    pub latest: String,
    pub tokens: Option<TokenUsage>,
    /// The cost Claude Code reports for the agent's session.
    pub cost_usd: Option<f64>,
    pub tmux: Option<TmuxLocation>,
}

impl Row {
    /// Returns true if and only if the agent waits for the human: a dialog or a
    /// permission prompt (`waiting`), the human's own draft (`user`).
    pub fn needs_human(&self) -> bool {
        matches!(self.state, AgentState::Waiting | AgentState::User)
    }

    /// The task `t` and the output show: the current one, else the last.
    pub fn shown_task(&self) -> Option<&TaskId> {
        self.task.as_ref().or(self.last.as_ref()).map(|t| &t.0)
    }
}

/// A background ticket not delivered yet.
#[derive(Clone, Debug, PartialEq)]
pub struct Ticket {
    pub chief: String,
    pub task: TaskId,
    pub agent: AgentName,
    pub title: String,
    pub ready: bool,
}

/// The whole picture.
#[derive(Clone, Debug, Default)]
pub struct Team {
    pub rows: Vec<Row>,
    pub tickets: Vec<Ticket>,
    /// `board <path>: 3/7 done, …`, once a board exists.
    pub board: Option<String>,
    /// Problems reading the state, one line each.
    pub problems: Vec<String>,
}

/// The order of rows: who needs the human first, then who works, then the rest.
pub fn rank(row: &Row) -> u8 {
    match row.state {
        AgentState::Waiting | AgentState::User => 0,
        // A live agent whose status file cannot be read (its host repairs it soon).
        _ if row.status_error.is_some() && row.state != AgentState::Offline => 1,
        AgentState::Working => 2,
        AgentState::Starting => 3,
        AgentState::Idle => 4,
        AgentState::Stopped => 5,
        AgentState::Offline => 6,
    }
}

/// Sorts rows by [`rank`], then by how long they have been so (the longest waiting
/// first), then by name.
pub fn sort_rows(rows: &mut [Row]) {
    rows.sort_by(|a, b| {
        rank(a)
            .cmp(&rank(b))
            .then(a.since_us.cmp(&b.since_us))
            .then(a.name.as_str().cmp(b.name.as_str()))
    });
}

/// Reads the team now.
pub fn load(state: &StateDir) -> Team {
    let mut team = Team::default();
    let names = match state.agent_names() {
        Ok(n) => n,
        Err(e) => {
            team.problems.push(format!("{e:#}"));
            Vec::new()
        }
    };
    for name in names {
        match AgentInfo::load(state, &name) {
            Ok(Some(info)) => {
                if let Some(why) = &info.status_error {
                    team.problems
                        .push(format!("@{name}: its status.json is unreadable: {why}"));
                }
                team.rows.push(row(state, info))
            }
            Ok(None) => {}
            Err(e) => team.problems.push(format!("@{name}: {e:#}")),
        }
    }
    sort_rows(&mut team.rows);
    for chief in state.chiefs().unwrap_or_default() {
        let Ok((entries, _)) = state.outbox(&chief) else {
            continue;
        };
        for e in entries.into_iter().filter(|e| e.delivered_at_us.is_none()) {
            team.tickets.push(Ticket {
                chief: chief.as_str().to_owned(),
                ready: state.done_path(&e.task_id).exists(),
                task: e.task_id,
                agent: e.agent,
                title: e.title,
            });
        }
    }
    team
}

fn row(state: &StateDir, info: AgentInfo) -> Row {
    let effective = info.state();
    let s = info.status.as_ref();
    let alive = info.host_pid.is_some();
    let task = info.task().map(|t| (t.id.clone(), t.title.clone()));
    let last = s
        .and_then(|s| s.recent.first())
        .map(|r| (r.id.clone(), format!("{} ({})", r.title, r.outcome)));
    let queued = match alive {
        true => pending(state, &info.name).map_or(0, |q| q.len()),
        false => 0,
    };
    let shown = task.as_ref().or(last.as_ref()).map(|t| t.0.clone());
    let latest = match &info.status_error {
        Some(why) => why.clone(),
        None => shown
            .map(|id| last_line(&state.output_path(&id)))
            .unwrap_or_default(),
    };
    Row {
        name: info.name.clone(),
        roles: s.map(|s| s.roles.clone()).unwrap_or_default(),
        state: effective,
        status_error: info.status_error.clone(),
        task,
        last,
        since_us: s.map_or(0, |s| s.last_active_us),
        queued,
        latest,
        tokens: s.and_then(|s| s.tokens),
        cost_usd: s.and_then(|s| s.cost_usd),
        tmux: s.and_then(|s| s.tmux.clone()).filter(|_| alive),
    }
}

/// The last non-empty line of a file's last 4 KiB, without control characters.
pub fn last_line(path: &std::path::Path) -> String {
    tail_lines(path, 1).pop().unwrap_or_default()
}

/// The last `n` non-empty lines of a file's last 64 KiB, without control characters.
pub fn tail_lines(path: &std::path::Path, n: usize) -> Vec<String> {
    use std::io::{Read, Seek, SeekFrom};
    let Ok(mut f) = open_regular(path) else {
        return Vec::new();
    };
    let len = f.metadata().map_or(0, |m| m.len());
    let from = len.saturating_sub(64 << 10);
    if f.seek(SeekFrom::Start(from)).is_err() {
        return Vec::new();
    }
    let mut buf = Vec::new();
    let _ = f.take(64 << 10).read_to_end(&mut buf);
    let text = String::from_utf8_lossy(&buf);
    let mut lines: Vec<String> = text
        .lines()
        .map(|l| l.chars().filter(|c| !c.is_control()).collect::<String>())
        .filter(|l| !l.trim().is_empty())
        .collect();
    let skip = lines.len().saturating_sub(n);
    lines.drain(..skip);
    lines
}

fn open_regular(path: &std::path::Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(path)?;
    if !f.metadata()?.is_file() {
        return Err(std::io::Error::other("not a regular file"));
    }
    Ok(f)
}

/// The directories whose changes `top` redraws on: the agents, their inboxes, the
/// shown tasks, the outboxes and the event log.
pub fn watched_dirs(state: &StateDir, team: &Team) -> Vec<PathBuf> {
    let mut dirs = vec![
        state.agents_dir(),
        state.outboxes_dir(),
        state.root().join(crate::events::EVENTS_DIR),
    ];
    for r in &team.rows {
        dirs.push(state.agent_dir(&r.name));
        dirs.push(state.inbox_dir(&r.name));
        if let Some(id) = r.shown_task() {
            dirs.push(state.task_dir(id));
        }
    }
    dirs.sort();
    dirs.dedup();
    dirs
}

/// Keeps the newest [`RECENT_EVENTS`] of `entries` added to `kept`.
pub fn keep_recent(kept: &mut Vec<Entry>, entries: Vec<Entry>) {
    kept.extend(entries);
    let skip = kept.len().saturating_sub(RECENT_EVENTS);
    kept.drain(..skip);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(name: &str, state: AgentState, since: u64) -> Row {
        Row {
            name: AgentName::parse(name).unwrap(),
            roles: Vec::new(),
            state,
            status_error: None,
            task: None,
            last: None,
            since_us: since,
            queued: 0,
            latest: String::new(),
            tokens: None,
            cost_usd: None,
            tmux: None,
        }
    }

    #[test]
    fn who_needs_the_human_comes_first_the_longest_waiting_first() {
        let mut rows = vec![
            row("idle", AgentState::Idle, 1),
            row("off", AgentState::Offline, 1),
            row("work", AgentState::Working, 1),
            row("user", AgentState::User, 9),
            row("dialog", AgentState::Waiting, 5),
            row("start", AgentState::Starting, 1),
        ];
        let mut broken = row("broken", AgentState::Idle, 1);
        broken.status_error = Some("corrupt state file".into());
        rows.push(broken);
        let mut dead = row("dead", AgentState::Offline, 0);
        dead.status_error = Some("corrupt state file".into());
        rows.push(dead);
        sort_rows(&mut rows);
        let names: Vec<&str> = rows.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "dialog", "user", "broken", "work", "start", "idle", "dead", "off"
            ]
        );
        assert!(rows[0].needs_human() && rows[1].needs_human() && !rows[2].needs_human());
    }

    #[test]
    fn the_latest_line_is_the_last_non_empty_one_without_controls() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("out");
        std::fs::write(&p, "one\n\x1b[31mtwo\x1b[0m\n\n  \n").unwrap();
        assert_eq!(last_line(&p), "[31mtwo[0m");
        assert_eq!(tail_lines(&p, 5), ["one", "[31mtwo[0m"]);
        assert_eq!(last_line(&dir.path().join("missing")), "");
    }
}
