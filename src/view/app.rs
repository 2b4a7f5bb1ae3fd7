//! `top`'s keys as a pure state machine: `key(input) -> action`, unit-tested; the loop
//! in `mod.rs` carries the actions out.

use super::model::Row;
use crate::state::{AgentName, TaskId};

/// A key, as `top` tells them apart.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Key {
    Char(char),
    Enter,
    Esc,
    Up,
    Down,
    Backspace,
    /// Ctrl-C: quit, like `q`.
    Interrupt,
}

/// What a key asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Nothing but a redraw.
    Redraw,
    Quit,
    /// Go to this tmux pane's window.
    Jump(String),
    Cancel(TaskId),
    Kill(AgentName),
}

/// What the keys go to.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Mode {
    #[default]
    Normal,
    /// Typing the filter after `/`.
    Filter,
    /// `k` was pressed: `y` stops this agent, anything else keeps it.
    ConfirmKill(AgentName),
}

/// The view's own state.
#[derive(Clone, Debug, Default)]
pub struct App {
    /// The selected agent, by name (rows move as they are sorted).
    pub selected: Option<AgentName>,
    pub filter: String,
    pub mode: Mode,
    /// `t`: the agent whose output is shown below the rows.
    pub tail: Option<AgentName>,
    /// One line for the user: what a key did or why it could not.
    pub message: Option<String>,
}

impl App {
    /// The rows the filter lets through (every row without one): a name, a role, a
    /// status or a task title containing it.
    pub fn visible<'a>(&self, rows: &'a [Row]) -> Vec<&'a Row> {
        let f = self.filter.to_lowercase();
        rows.iter()
            .filter(|r| {
                f.is_empty()
                    || r.name.as_str().contains(&f)
                    || r.roles.iter().any(|x| x.to_lowercase().contains(&f))
                    || r.state.to_string().contains(&f)
                    || r.task
                        .as_ref()
                        .is_some_and(|t| t.1.to_lowercase().contains(&f))
            })
            .collect()
    }

    /// The selected row among the visible ones: the one named, else the first.
    pub fn selected_row<'a>(&self, rows: &'a [Row]) -> Option<&'a Row> {
        let visible = self.visible(rows);
        self.selected
            .as_ref()
            .and_then(|n| visible.iter().find(|r| &r.name == n).copied())
            .or_else(|| visible.first().copied())
    }

    /// Applies `key`; returns what the loop must do.
    pub fn key(&mut self, key: Key, rows: &[Row]) -> Action {
        if key == Key::Interrupt {
            return Action::Quit;
        }
        match std::mem::take(&mut self.mode) {
            Mode::Filter => {
                match key {
                    Key::Enter => {}
                    Key::Esc => self.filter.clear(),
                    Key::Backspace => {
                        self.filter.pop();
                        self.mode = Mode::Filter;
                    }
                    Key::Char(c) if !c.is_control() => {
                        self.filter.push(c);
                        self.mode = Mode::Filter;
                    }
                    _ => self.mode = Mode::Filter,
                }
                return Action::Redraw;
            }
            Mode::ConfirmKill(name) => {
                if key == Key::Char('y') {
                    self.message = Some(format!("stopping @{name}…"));
                    return Action::Kill(name);
                }
                self.message = Some(format!("@{name} keeps running"));
                return Action::Redraw;
            }
            Mode::Normal => {}
        }
        self.message = None;
        let selected = self.selected_row(rows).cloned();
        match key {
            Key::Char('q') => Action::Quit,
            Key::Esc => {
                self.tail = None;
                self.filter.clear();
                Action::Redraw
            }
            Key::Up | Key::Down => {
                let visible = self.visible(rows);
                let at = selected
                    .as_ref()
                    .and_then(|s| visible.iter().position(|r| r.name == s.name))
                    .unwrap_or(0);
                let next = match key {
                    Key::Up => at.saturating_sub(1),
                    _ => (at + 1).min(visible.len().saturating_sub(1)),
                };
                self.selected = visible.get(next).map(|r| r.name.clone());
                if self.tail.is_some() {
                    self.tail = self.selected.clone();
                }
                Action::Redraw
            }
            Key::Char('/') => {
                self.mode = Mode::Filter;
                Action::Redraw
            }
            Key::Char('t') => {
                self.tail = match (&self.tail, &selected) {
                    (Some(_), _) => None,
                    (None, Some(r)) => Some(r.name.clone()),
                    (None, None) => None,
                };
                Action::Redraw
            }
            Key::Enter => match selected {
                Some(Row { tmux: Some(t), .. }) => Action::Jump(t.pane),
                Some(r) => {
                    self.message = Some(format!("@{} has no tmux window", r.name));
                    Action::Redraw
                }
                None => Action::Redraw,
            },
            Key::Char('c') => match selected.and_then(|r| r.task.map(|t| (r.name, t.0))) {
                Some((_, id)) => Action::Cancel(id),
                None => {
                    self.message = Some("no task to cancel".into());
                    Action::Redraw
                }
            },
            Key::Char('k') => match selected {
                Some(r) if r.state != crate::state::AgentState::Offline => {
                    self.mode = Mode::ConfirmKill(r.name.clone());
                    Action::Redraw
                }
                Some(r) => {
                    self.message = Some(format!("@{} is not running", r.name));
                    Action::Redraw
                }
                None => Action::Redraw,
            },
            _ => Action::Redraw,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::{AgentState, TmuxLocation};

    fn row(name: &str, state: AgentState, task: Option<&str>) -> Row {
        Row {
            name: AgentName::parse(name).unwrap(),
            roles: vec!["coding".into()],
            state,
            status_error: None,
            task: task.map(|t| (TaskId::parse(t).unwrap(), format!("title of {t}"))),
            last: None,
            since_us: 0,
            queued: 0,
            latest: String::new(),
            tokens: None,
            cost_usd: None,
            tmux: Some(TmuxLocation {
                window: "Claude:x".into(),
                pane: format!("%{}", name.len()),
            }),
        }
    }

    #[test]
    fn keys_select_jump_cancel_and_kill_after_a_confirmation() {
        let rows = vec![
            row("ab", AgentState::Working, Some("t-1")),
            row("abc", AgentState::Idle, None),
            row("off", AgentState::Offline, None),
        ];
        let mut app = App::default();
        assert_eq!(app.key(Key::Enter, &rows), Action::Jump("%2".into()));
        assert_eq!(
            app.key(Key::Char('c'), &rows),
            Action::Cancel(TaskId::parse("t-1").unwrap())
        );
        app.key(Key::Down, &rows);
        assert_eq!(app.key(Key::Char('c'), &rows), Action::Redraw);
        assert_eq!(app.message.as_deref(), Some("no task to cancel"));
        // k asks first; only y stops.
        assert_eq!(app.key(Key::Char('k'), &rows), Action::Redraw);
        assert_eq!(
            app.mode,
            Mode::ConfirmKill(AgentName::parse("abc").unwrap())
        );
        assert_eq!(app.key(Key::Char('n'), &rows), Action::Redraw);
        assert_eq!(app.mode, Mode::Normal);
        app.key(Key::Char('k'), &rows);
        assert_eq!(
            app.key(Key::Char('y'), &rows),
            Action::Kill(AgentName::parse("abc").unwrap())
        );
        app.key(Key::Down, &rows);
        app.key(Key::Char('k'), &rows);
        assert_eq!(app.mode, Mode::Normal, "an offline agent cannot be stopped");
        assert_eq!(app.key(Key::Char('q'), &rows), Action::Quit);
        assert_eq!(app.key(Key::Interrupt, &rows), Action::Quit);
    }

    #[test]
    fn the_filter_narrows_the_rows_and_esc_clears_it() {
        let rows = vec![
            row("ab", AgentState::Working, Some("t-1")),
            row("xyz", AgentState::Idle, None),
        ];
        let mut app = App::default();
        app.key(Key::Char('/'), &rows);
        for c in "xy".chars() {
            app.key(Key::Char(c), &rows);
        }
        assert_eq!(app.visible(&rows).len(), 1);
        app.key(Key::Enter, &rows);
        assert_eq!(app.mode, Mode::Normal);
        assert_eq!(app.filter, "xy");
        assert_eq!(app.selected_row(&rows).unwrap().name.as_str(), "xyz");
        // t tails the selected agent, and again stops.
        app.key(Key::Char('t'), &rows);
        assert_eq!(app.tail.as_ref().map(|n| n.as_str()), Some("xyz"));
        app.key(Key::Esc, &rows);
        assert!(app.filter.is_empty() && app.tail.is_none());
        assert_eq!(app.visible(&rows).len(), 2);
    }
}
