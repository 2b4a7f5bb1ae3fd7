//! Drawing `top` with ratatui: the agents' rows, then the board, the background
//! tickets, the recent events (or the tailed output), and a line of keys. Usable at
//! 80x24; everything reflows on resize.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Cell, Paragraph, Row as TableRow, Table};

use super::app::{App, Mode};
use super::model::{Row, Team};
use crate::events::Entry;
use crate::state::AgentState;
use crate::time::human_us;

/// What one frame shows.
pub struct View<'a> {
    pub team: &'a Team,
    pub app: &'a App,
    pub events: &'a [Entry],
    /// The tailed agent's output lines, when `t` is on.
    pub tail: &'a [String],
    pub now_us: u64,
}

fn state_style(row: &Row) -> Style {
    let base = Style::new();
    match row.state {
        AgentState::Waiting | AgentState::User => base
            .fg(Color::Black)
            .bg(Color::Yellow)
            .add_modifier(Modifier::BOLD),
        _ if row.status_error.is_some() => base.fg(Color::Red).add_modifier(Modifier::BOLD),
        AgentState::Working => base.fg(Color::Green),
        AgentState::Starting => base.fg(Color::Cyan),
        AgentState::Idle => base.fg(Color::Blue),
        AgentState::Stopped => base.fg(Color::Magenta),
        AgentState::Offline => base.fg(Color::DarkGray),
    }
}

/// `12`, `3.4k`, `1.2M`.
pub fn short_count(n: u64) -> String {
    match n {
        0..1000 => n.to_string(),
        1000..1_000_000 => format!("{:.1}k", n as f64 / 1e3),
        _ => format!("{:.1}M", n as f64 / 1e6),
    }
}

/// `$0.09`, `$1.23`, `$123`: dollars in at most six characters.
pub fn short_cost(usd: f64) -> String {
    // Below 99.995 two decimals stay within six characters once rounded.
    match usd {
        ..99.995 => format!("${usd:.2}"),
        _ => format!("${usd:.0}"),
    }
}

pub fn draw(f: &mut Frame<'_>, v: &View<'_>) {
    let area = f.area();
    let visible = v.app.visible(&v.team.rows);
    let needs = v.team.rows.iter().filter(|r| r.needs_human()).count();
    // The rows get what they need, up to half the screen; the rest goes below.
    let rows_h = (visible.len() as u16 + 1).clamp(2, (area.height / 2).max(3));
    let board_h = u16::from(v.team.board.is_some());
    let tickets_h = (v.team.tickets.len() as u16).min(3);
    let problems_h = (v.team.problems.len() as u16).min(2);
    let [head, table, board, tickets, problems, below, keys] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Length(rows_h),
        Constraint::Length(board_h),
        Constraint::Length(tickets_h),
        Constraint::Length(problems_h),
        Constraint::Min(0),
        Constraint::Length(1),
    ])
    .areas(area);

    let mut title = vec![Span::styled(
        format!(" top · {} agents", v.team.rows.len()),
        Style::new().add_modifier(Modifier::BOLD),
    )];
    if needs > 0 {
        title.push(Span::styled(
            format!(" · {needs} need{} you", if needs == 1 { "s" } else { "" }),
            Style::new()
                .fg(Color::Black)
                .bg(Color::Yellow)
                .add_modifier(Modifier::BOLD),
        ));
    }
    // The team's cost, as Claude Code reports it per session: always in view, since
    // the COST column needs a wide terminal.
    let costs: Vec<f64> = v.team.rows.iter().filter_map(|r| r.cost_usd).collect();
    if !costs.is_empty() {
        title.push(Span::raw(format!(" · {}", short_cost(costs.iter().sum()))));
    }
    if !v.app.filter.is_empty() || v.app.mode == Mode::Filter {
        title.push(Span::raw(format!(" · filter: {}", v.app.filter)));
    }
    let clock = crate::events::clock(v.now_us);
    title.push(Span::raw(format!("  {}", clock.get(..8).unwrap_or(&clock))));
    f.render_widget(Paragraph::new(Line::from(title)), head);

    draw_rows(f, table, v, &visible);

    if let Some(b) = &v.team.board {
        f.render_widget(Paragraph::new(b.as_str()), board);
    }
    let ticket_lines: Vec<Line> = v
        .team
        .tickets
        .iter()
        .take(tickets_h as usize)
        .map(|t| {
            let state = if t.ready { "ready" } else { "running" };
            Line::from(format!(
                "background @{} {} {state} for chief {}: {}",
                t.agent, t.task, t.chief, t.title
            ))
        })
        .collect();
    f.render_widget(Paragraph::new(ticket_lines), tickets);
    let problem_lines: Vec<Line> = v
        .team
        .problems
        .iter()
        .map(|p| Line::styled(p.as_str(), Style::new().fg(Color::Red)))
        .collect();
    f.render_widget(Paragraph::new(problem_lines), problems);

    let lines: Vec<Line> = match &v.app.tail {
        Some(name) => {
            let mut lines = vec![Line::styled(
                format!("output of @{name} (t or Esc closes):"),
                Style::new().add_modifier(Modifier::BOLD),
            )];
            let room = below.height.saturating_sub(1) as usize;
            let skip = v.tail.len().saturating_sub(room);
            lines.extend(v.tail[skip..].iter().map(|l| Line::from(l.as_str())));
            lines
        }
        None => {
            let mut lines = vec![Line::styled(
                "recent events:",
                Style::new().add_modifier(Modifier::BOLD),
            )];
            let room = below.height.saturating_sub(1) as usize;
            let skip = v.events.len().saturating_sub(room);
            lines.extend(v.events[skip..].iter().map(|e| {
                Line::from(format!(
                    "{} {}",
                    crate::events::clock(e.event.at_us),
                    e.event.describe()
                ))
            }));
            lines
        }
    };
    f.render_widget(Paragraph::new(lines), below);

    let footer = match (&v.app.mode, &v.app.message) {
        (Mode::ConfirmKill(name), _) => Line::styled(
            format!("stop @{name}? y stops it, any other key keeps it"),
            Style::new()
                .fg(Color::Black)
                .bg(Color::Red)
                .add_modifier(Modifier::BOLD),
        ),
        (Mode::Filter, _) => Line::from("filter: type, Enter keeps it, Esc clears it"),
        (_, Some(m)) => Line::styled(m.as_str(), Style::new().add_modifier(Modifier::BOLD)),
        _ => Line::styled(
            "↑↓ select · Enter jump · c cancel · k stop · t tail · / filter · q quit",
            Style::new().fg(Color::DarkGray),
        ),
    };
    f.render_widget(Paragraph::new(footer), keys);
}

/// From this width on, the rows have a COST column (below it the title shows the sum).
const COST_COLUMN_FROM: u16 = 100;

fn draw_rows(f: &mut Frame<'_>, area: Rect, v: &View<'_>, visible: &[&Row]) {
    let selected = v.app.selected_row(&v.team.rows).map(|r| r.name.clone());
    let cost_column = area.width >= COST_COLUMN_FROM;
    let mut names = vec![
        "AGENT", "ROLES", "STATUS", "TASK", "AGE", "Q", "LATEST", "TOKENS",
    ];
    if cost_column {
        names.push("COST");
    }
    let header = TableRow::new(
        names
            .into_iter()
            .map(|h| Cell::from(h).style(Style::new().add_modifier(Modifier::BOLD))),
    );
    let rows: Vec<TableRow> = visible
        .iter()
        .map(|r| {
            let age = match r.since_us {
                0 => "-".to_owned(),
                at => human_us(v.now_us.saturating_sub(at)),
            };
            let task = match (&r.task, &r.last) {
                (Some(t), _) => t.1.clone(),
                (None, Some(l)) if r.state == AgentState::Idle => format!("last: {}", l.1),
                _ => String::new(),
            };
            // An unreadable status file is named in the LATEST column.
            let status = r.state.to_string();
            let mark = if Some(&r.name) == selected.as_ref() {
                "▶"
            } else {
                " "
            };
            let style = if r.needs_human() {
                Style::new().add_modifier(Modifier::BOLD)
            } else {
                Style::new()
            };
            let mut cells = vec![
                Cell::from(format!("{mark}{}", r.name)),
                Cell::from(r.roles.join(",")),
                Cell::from(status).style(state_style(r)),
                Cell::from(task),
                Cell::from(age),
                Cell::from(r.queued.to_string()),
                Cell::from(r.latest.clone()),
                Cell::from(r.tokens.map(|t| short_count(t.total())).unwrap_or_default()),
            ];
            if cost_column {
                cells.push(Cell::from(r.cost_usd.map(short_cost).unwrap_or_default()));
            }
            TableRow::new(cells).style(style)
        })
        .collect();
    let mut widths = vec![
        Constraint::Length(11),
        Constraint::Length(8),
        Constraint::Length(8),
        Constraint::Fill(2),
        Constraint::Length(6),
        Constraint::Length(2),
        Constraint::Fill(3),
        Constraint::Length(6),
    ];
    if cost_column {
        widths.push(Constraint::Length(6));
    }
    f.render_widget(Table::new(rows, widths).header(header), area);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_costs_fit_their_columns() {
        assert_eq!(short_count(999), "999");
        assert_eq!(short_count(12_345), "12.3k");
        assert_eq!(short_count(1_234_567), "1.2M");
        assert_eq!(short_cost(0.0512), "$0.05");
        assert_eq!(short_cost(12.345), "$12.35");
        assert_eq!(short_cost(1234.5), "$1234");
        assert!(short_cost(99.999).len() <= 6);
    }

    /// The screen `draw` makes of one agent with a cost, `width` columns wide.
    fn screen(width: u16) -> String {
        use crate::state::{AgentName, AgentState};
        let row = super::super::model::Row {
            name: AgentName::parse("coding").unwrap(),
            roles: vec!["coding".into()],
            state: AgentState::Idle,
            status_error: None,
            task: None,
            last: None,
            since_us: 0,
            queued: 0,
            latest: String::new(),
            tokens: None,
            cost_usd: Some(0.0512),
            tmux: None,
        };
        let team = super::super::model::Team {
            rows: vec![row],
            ..Default::default()
        };
        let app = App::default();
        let view = View {
            team: &team,
            app: &app,
            events: &[],
            tail: &[],
            now_us: 0,
        };
        let mut terminal =
            ratatui::Terminal::new(ratatui::backend::TestBackend::new(width, 24)).unwrap();
        terminal.draw(|f| draw(f, &view)).unwrap();
        let buffer = terminal.backend().buffer();
        (0..buffer.area.height)
            .map(|y| {
                (0..buffer.area.width)
                    .map(|x| buffer[(x, y)].symbol())
                    .collect::<String>()
                    + "\n"
            })
            .collect()
    }

    #[test]
    fn the_cost_is_in_the_title_and_on_a_wide_terminal_in_a_column() {
        let narrow = screen(80);
        let title = narrow.lines().next().unwrap();
        assert!(title.contains("· $0.05"), "{narrow}");
        assert!(!narrow.contains("COST"), "{narrow}");
        let wide = screen(120);
        let header = wide.lines().nth(1).unwrap();
        assert!(header.trim_end().ends_with("COST"), "{wide}");
        let row = wide.lines().nth(2).unwrap();
        assert!(row.trim_end().ends_with("$0.05"), "{wide}");
    }
}
