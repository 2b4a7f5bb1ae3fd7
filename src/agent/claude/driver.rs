//! The `claude` driver: the supervisor of the hosted Claude Code. It starts the process,
//! restarts it with a growing pause when it dies, hands tasks to its [`Session`], holds a
//! task while the box is not free, and turns the session's updates into the host's
//! [`Report`]s.

use std::io::{IsTerminal, Write};
use std::os::unix::fs::DirBuilderExt;
use std::path::PathBuf;
use std::sync::mpsc::Sender;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result};

use super::delivery::Update;
use super::message::{Event, HookCommon};
use super::session::{ClaudeConfig, ClaudeEvent, Session, SessionPaths};
use crate::agent::output::OutputSink;
use crate::agent::run::{Context, Driver, Report, RunEnd, RunStatus};
use crate::agent::timer::Timers;
use crate::restart::{Backoff, RESTART_LIMIT};
use crate::state::{AgentCommand, AgentState, TaskEnvelope};
use crate::time::now_us;
use crate::watch::DirWatcher;

/// How long the human's keys must be quiet before a held task's box is checked again
/// (they may have cleared their draft, which fires no hook).
pub const REPROBE_QUIET: Duration = Duration::from_millis(1500);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Timer {
    /// Start Claude Code again.
    Restart,
    /// The human's keys have been quiet: check a held task's box again.
    Reprobe,
    /// Look again for a finished turn's tokens in the transcript.
    Usage,
}

/// How long after the end of a turn its tokens are looked for in the transcript, which
/// may be written after the `Stop` hook (docs/claude-code.md#transcript): the first
/// look again comes after this, each next one after twice the wait before it.
const USAGE_RETRY: Duration = Duration::from_millis(100);
/// How many looks again, at most (about 3 s in all).
const USAGE_TRIES: u32 = 5;

/// A finished turn whose tokens are not in the transcript yet.
struct PendingUsage {
    task: crate::state::TaskId,
    transcript: PathBuf,
    prompt: String,
    tries: u32,
    /// When to look for it next.
    due: Instant,
}

/// The task in flight.
struct Task {
    id: crate::state::TaskId,
    prompt: String,
    command: Option<AgentCommand>,
    sink: OutputSink,
    /// The task waits for the box to be free (a draft or a dialog).
    held: bool,
    human_input: bool,
    acked_at_us: Option<u64>,
    turn_ended_at_us: Option<u64>,
}

/// The `claude` driver.
pub struct Claude {
    config: ClaudeConfig,
    session: Option<Session>,
    tx: Option<Sender<ClaudeEvent>>,
    task: Option<Task>,
    /// The output log of the task that just finished, for its late streamed text.
    last_sink: Option<OutputSink>,
    /// Issue 14: the last finished turn, until its tokens are found.
    /// Issue 14: finished turns whose tokens are not in the transcript yet, oldest
    /// first: the next task may end before the transcript has the last one's.
    pending_usage: Vec<PendingUsage>,
    timers: Timers<Timer>,
    /// When Claude Code was restarted recently, for the backoff and the limit.
    restarts: Backoff,
    /// Consecutive starts that died before accepting input (a failing `--resume`).
    resume_failures: u32,
    session_id: Option<String>,
    /// The prompt of a task the last Claude Code died on: cleared from the box of the
    /// next one, which may restore it.
    interrupted_prompt: Option<String>,
    /// The last delivery nonce of the previous session.
    last_nonce: u64,
    /// When the event being applied was written (from its file name), for timings.
    event_at_us: u64,
    /// The host is stopping: no restart.
    closing: bool,
    watcher: Option<DirWatcher>,
    /// Raw mode on the agent's window while Claude Code is mirrored into it.
    _raw: Option<RawMode>,
}

impl Claude {
    pub fn new(config: ClaudeConfig) -> Self {
        Self {
            config,
            session: None,
            tx: None,
            task: None,
            last_sink: None,
            pending_usage: Vec::new(),
            timers: Timers::default(),
            restarts: Backoff::default(),
            resume_failures: 0,
            session_id: None,
            interrupted_prompt: None,
            last_nonce: 0,
            event_at_us: 0,
            closing: false,
            watcher: None,
            _raw: None,
        }
    }

    /// Starts (or restarts) the Claude Code process: `--resume` of the agent's session
    /// when it has one, else a new session with a pre-assigned id.
    fn spawn(&mut self, cx: &Context<'_>) -> Result<Vec<Report>> {
        let (session_id, resume) = match &self.session_id {
            Some(id) => (id.clone(), true),
            None => (uuid::Uuid::new_v4().to_string(), false),
        };
        self.session_id = Some(session_id.clone());
        let mut reports = vec![
            Report::SessionId(Some(session_id.clone())),
            Report::State(AgentState::Starting),
        ];
        // A dialog before the first prompt holds SessionStart back until the human answers
        // it (docs/claude-code.md#startup-dialogs): say so, and how, rather than `starting`.
        let api_key = std::env::var("ANTHROPIC_API_KEY").ok();
        let dialog = crate::agent::run::working_dir()
            .and_then(|dir| crate::claude_code::startup_dialog(&dir, api_key.as_deref()));
        if let Some(dialog) = dialog {
            reports.push(Report::Blocked(format!(
                "{dialog}: answer it in the agent's window (or run `claude` there once)"
            )));
        }
        // The probe's files (its request, spare tokens) are runtime state.
        let agent_dir = cx.state.runtime_agent_dir(cx.agent);
        let events_dir = cx.state.events_dir(cx.agent);
        let paths = SessionPaths {
            agent_dir: &agent_dir,
            events_dir: &events_dir,
            probe_path: cx.state.probe_path(cx.agent),
            working_dir: crate::agent::run::working_dir(),
        };
        let tx = self.tx.clone().context("no session channel")?;
        let clear_first = self.interrupted_prompt.take();
        self.session = Some(Session::spawn(
            &self.config,
            paths,
            &session_id,
            resume,
            clear_first,
            self.last_nonce,
            tx,
        )?);
        Ok(reports)
    }

    /// Claude Code exited while we still need it: start it again after a growing pause,
    /// or give up (the host then stops, saying why) after five restarts in a minute.
    fn schedule_restart(&mut self, how: &str, was_ready: bool) -> Vec<Report> {
        let mut reports = Vec::new();
        if was_ready {
            self.resume_failures = 0;
        } else if self.session_id.is_some() {
            self.resume_failures += 1;
        }
        if self.resume_failures >= 2 {
            // It died twice before accepting input: `--resume` finds no conversation
            // (a SIGKILLed Claude Code may not have written its transcript yet). Start
            // the next one fresh, and say so.
            self.resume_failures = 0;
            warn(&format!(
                "Claude Code could not resume session {} ({how}); starting a new session",
                self.session_id.as_deref().unwrap_or("")
            ));
            self.session_id = None;
            reports.push(Report::SessionId(None));
        }
        let Some(pause) = self.restarts.next(Instant::now()) else {
            reports.push(Report::Fatal(format!(
                "Claude Code exited {RESTART_LIMIT} times within a minute (last: {how}); agent-wrap stops"
            )));
            return reports;
        };
        reports.push(Report::State(AgentState::Starting));
        self.timers.start(Timer::Restart, pause);
        reports
    }

    /// Feeds the hook and probe events waiting in `events/` to the session, oldest first.
    fn read_events(&mut self, cx: &Context<'_>) -> Vec<Report> {
        let mut reports = Vec::new();
        if self.session.is_none() {
            return reports;
        }
        let dir = cx.state.events_dir(cx.agent);
        let Ok(entries) = std::fs::read_dir(&dir) else {
            return reports;
        };
        let mut names: Vec<_> = entries
            .flatten()
            .map(|e| e.path())
            .filter(|p| {
                !crate::state::file_is_temp(p) && p.extension().is_some_and(|x| x == "json")
            })
            .collect();
        names.sort();
        for path in names {
            let event = crate::state::read_optional(&path)
                .ok()
                .flatten()
                .and_then(|b| {
                    let event = serde_json::from_slice::<Event>(&b).ok()?;
                    let common = serde_json::from_slice::<HookCommon>(&b).unwrap_or_default();
                    Some((event, common))
                });
            let _ = std::fs::remove_file(&path);
            // Event files are named `<written_at_us, 20 digits>-<pid>.json`.
            self.event_at_us = path
                .file_name()
                .and_then(|n| n.to_str()?.split('-').next()?.parse().ok())
                .unwrap_or_else(now_us);
            if let (Some((event, common)), Some(session)) = (event, self.session.as_mut()) {
                debug(&format!("event {event:?}"));
                let updates = session.event(event, common);
                reports.extend(self.apply(updates));
            }
        }
        reports
    }

    /// Acts on what the session reports.
    fn apply(&mut self, updates: Vec<Update>) -> Vec<Report> {
        let mut reports = Vec::new();
        for update in updates {
            debug(&format!("update {update:?}"));
            self.apply_one(update, &mut reports);
        }
        reports
    }

    fn apply_one(&mut self, update: Update, reports: &mut Vec<Report>) {
        let at = self.event_at_us;
        match update {
            Update::Ready { session_id } => {
                // Issue 15: Claude Code 2.1.197 names the session a fork was made from in
                // the fork's SessionStart; the fork keeps the id it was started with, or
                // a restart would resume the original.
                if self.config.fork_from.as_deref() != Some(session_id.as_str()) {
                    self.session_id = Some(session_id.clone());
                    reports.push(Report::SessionId(Some(session_id)));
                }
                let state = match self.task {
                    Some(_) => AgentState::Working,
                    None => AgentState::Idle,
                };
                reports.push(Report::State(state));
            }
            Update::Acked { human_input } => {
                if let Some(t) = &mut self.task {
                    t.acked_at_us = Some(at);
                    t.human_input |= human_input;
                    t.held = false;
                    reports.push(Report::Acknowledged(at));
                }
                reports.push(Report::State(AgentState::Working));
            }
            Update::Answered(answer) => {
                if let (Some(t), Some(transcript)) = (&self.task, &answer.transcript)
                    && t.command.is_none()
                {
                    self.pending_usage.push(PendingUsage {
                        task: t.id.clone(),
                        transcript: transcript.clone(),
                        prompt: answer.prompt.clone(),
                        tries: 0,
                        due: Instant::now(),
                    });
                }
                let text = answer
                    .transcript
                    .as_deref()
                    .and_then(|t| crate::claude_code::turn_text(t, &answer.prompt))
                    .unwrap_or(answer.last_message);
                self.end(RunStatus::Answered, text.into_bytes(), Some(at), reports);
                // After the end: the outcome is recorded first.
                self.look_for_usage(reports);
            }
            Update::Failed(why) | Update::Undeliverable(why) => {
                self.end(RunStatus::Failed(why), Vec::new(), Some(at), reports);
            }
            Update::Draft => self.hold(AgentState::User, reports),
            Update::DialogOpen => self.hold(AgentState::Waiting, reports),
            Update::NeedsHuman(_) => reports.push(Report::State(AgentState::Waiting)),
            Update::Resumed => {
                if let Some(t) = &mut self.task {
                    t.held = false;
                }
                reports.push(Report::State(AgentState::Working));
            }
            Update::HumanInput => {
                if let Some(t) = &mut self.task {
                    t.human_input = true;
                }
            }
            Update::HumanInterrupted => {
                if let Some(t) = &mut self.task {
                    t.human_input = true;
                }
                let why = "the human interrupted the turn in the agent's window";
                self.end(
                    RunStatus::Interrupted(why.into()),
                    Vec::new(),
                    None,
                    reports,
                );
            }
            // The human's own prompt: working, and not routable until it ends.
            Update::HumanTurn => reports.push(Report::State(AgentState::Working)),
            Update::Cost(usd) => reports.push(Report::Cost(usd)),
            Update::Idle => self.load_held(reports),
            Update::Output(delta) => {
                let sink = match &mut self.task {
                    Some(t) => Some(&mut t.sink),
                    None => self.last_sink.as_mut(),
                };
                if let Some(sink) = sink {
                    sink.write(delta.as_bytes());
                }
            }
        }
    }

    /// Reports each finished turn's tokens once the transcript has them; looks again a
    /// few times, with growing waits, while it does not, each turn on its own schedule.
    fn look_for_usage(&mut self, reports: &mut Vec<Report>) {
        let now = Instant::now();
        self.pending_usage.retain_mut(|p| {
            if p.due > now {
                return true;
            }
            match crate::claude_code::turn_usage(&p.transcript, 0, &p.prompt) {
                Some(tokens) => {
                    reports.push(Report::Usage(p.task.clone(), tokens));
                    false
                }
                None if p.tries < USAGE_TRIES => {
                    p.due = now + USAGE_RETRY * (1 << p.tries);
                    p.tries += 1;
                    true
                }
                None => {
                    debug(&format!(
                        "no token counts in the transcript for task {}",
                        p.task
                    ));
                    false
                }
            }
        });
        match self.pending_usage.iter().map(|p| p.due).min() {
            Some(at) => self.timers.start_at(Timer::Usage, at),
            None => self.timers.cancel(Timer::Usage),
        }
    }

    /// The task's run is over.
    fn end(
        &mut self,
        status: RunStatus,
        answer: Vec<u8>,
        turn_ended_at_us: Option<u64>,
        reports: &mut Vec<Report>,
    ) {
        let Some(task) = self.task.take() else { return };
        self.timers.cancel(Timer::Reprobe);
        reports.push(Report::Ended(RunEnd {
            status,
            answer,
            human_input: task.human_input,
            acked_at_us: task.acked_at_us,
            turn_ended_at_us: turn_ended_at_us.or(task.turn_ended_at_us),
            ..RunEnd::default()
        }));
        self.last_sink = Some(task.sink);
    }

    /// The task waits until Claude Code's box is free.
    fn hold(&mut self, state: AgentState, reports: &mut Vec<Report>) {
        if let Some(t) = &mut self.task {
            t.held = true;
        }
        reports.push(Report::State(state));
    }

    /// A turn that was not ours ended: load the held task now, or go idle.
    fn load_held(&mut self, reports: &mut Vec<Report>) {
        let (prompt, command) = match &mut self.task {
            Some(t) if t.held => {
                t.held = false;
                (t.prompt.clone(), t.command)
            }
            Some(_) => return,
            None => return reports.push(Report::State(self.resting_state())),
        };
        let Some(session) = &mut self.session else {
            return;
        };
        let loaded = match command {
            Some(AgentCommand::Compact) => session.compact(&prompt),
            None => session.load(&prompt),
        };
        match loaded {
            Ok(updates) => {
                let more = self.apply(updates);
                reports.extend(more);
            }
            Err(e) => warn(&format!("{e:#}")),
        }
        reports.push(Report::State(AgentState::Working));
    }
}

impl Driver for Claude {
    type Event = ClaudeEvent;

    fn name(&self) -> &'static str {
        "claude"
    }

    fn open(&mut self, cx: &Context<'_>, tx: Sender<ClaudeEvent>) -> Result<Vec<Report>> {
        let mut watcher = DirWatcher::new(tx.clone(), || ClaudeEvent::Changed)?;
        watcher.watch(&cx.state.events_dir(cx.agent))?;
        // Claude Code's registry is the backstop for interrupts, which fire no hook.
        if let Some(sessions) = crate::claude_code::sessions_dir() {
            let made = std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(&sessions);
            if made.is_ok() {
                let _ = watcher.watch(&sessions);
            }
        }
        self.watcher = Some(watcher);
        if std::io::stdin().is_terminal() {
            self._raw = Some(RawMode::enter()?);
            let input = tx.clone();
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                let mut stdin = std::io::stdin();
                while let Ok(n) = std::io::Read::read(&mut stdin, &mut buf) {
                    if n == 0 || input.send(ClaudeEvent::Input(buf[..n].to_vec())).is_err() {
                        return;
                    }
                }
            });
        }
        self.tx = Some(tx);
        self.session_id = cx.session_id.map(str::to_owned);
        self.spawn(cx)
    }

    fn repaired(&mut self, cx: &Context<'_>) {
        if let Some(watcher) = &mut self.watcher {
            let events = cx.state.events_dir(cx.agent);
            watcher.unwatch(&events);
            if let Err(e) = watcher.watch(&events) {
                eprintln!("agent-wrap: {e:#}; hook events will not be seen");
            }
        }
    }

    fn can_start(&self) -> bool {
        // While Claude Code is down (restart backoff) tasks wait in the inbox.
        self.session.as_ref().is_some_and(Session::can_load)
    }

    fn runs_commands(&self) -> bool {
        true
    }

    fn resting_state(&self) -> AgentState {
        match &self.session {
            Some(s) if s.ready() => AgentState::Idle,
            _ => AgentState::Starting,
        }
    }

    fn interrupted(&mut self, prompt: String) {
        self.interrupted_prompt = Some(prompt);
    }

    fn start(
        &mut self,
        task: &TaskEnvelope,
        sink: OutputSink,
        _tx: &Sender<ClaudeEvent>,
    ) -> Result<Vec<Report>> {
        let session = self
            .session
            .as_mut()
            .context("Claude Code is not running")?;
        // The hosted Claude Code gets the task in its box; its hooks report the end, and
        // its streamed text goes to the log.
        let updates = match task.command {
            Some(AgentCommand::Compact) => session.compact(&task.prompt)?,
            None => session.load(&task.prompt)?,
        };
        self.task = Some(Task {
            id: task.id.clone(),
            prompt: task.prompt.clone(),
            command: task.command,
            sink,
            held: false,
            human_input: false,
            acked_at_us: None,
            turn_ended_at_us: None,
        });
        Ok(self.apply(updates))
    }

    fn stop(&mut self) -> Vec<Report> {
        // No Stop hook follows an interrupt (docs/claude-code.md#box-escape-interrupts):
        // the run ends now.
        let mut reports = match &mut self.session {
            Some(s) => {
                let updates = s.interrupt();
                self.apply(updates)
            }
            None => Vec::new(),
        };
        self.end(RunStatus::Stopped, Vec::new(), None, &mut reports);
        reports
    }

    fn kill(&mut self) {}

    fn on_event(&mut self, event: ClaudeEvent, cx: &Context<'_>) -> Vec<Report> {
        match event {
            ClaudeEvent::Input(bytes) => {
                let updates = match &mut self.session {
                    Some(s) => s.key(bytes),
                    None => return Vec::new(),
                };
                if self.task.as_ref().is_some_and(|t| t.held) {
                    // Only the last burst re-probes: a restart replaces the timer.
                    self.timers.start(Timer::Reprobe, REPROBE_QUIET);
                }
                self.apply(updates)
            }
            ClaudeEvent::Changed => {
                let mut reports = self.read_events(cx);
                if let Some(s) = &mut self.session {
                    let updates = s.registry_changed();
                    reports.extend(self.apply(updates));
                }
                reports
            }
            ClaudeEvent::Exited(how) => {
                debug(&format!("exited {how}"));
                let mut reports = Vec::new();
                let Some(session) = self.session.take() else {
                    return reports;
                };
                self.last_nonce = session.last_nonce();
                if let Some(t) = &self.task {
                    self.interrupted_prompt = Some(t.prompt.clone());
                }
                let reason = format!("Claude Code exited ({how}) during the task");
                self.end(RunStatus::Failed(reason), Vec::new(), None, &mut reports);
                if !self.closing {
                    reports.extend(self.schedule_restart(&how, session.ready()));
                }
                reports
            }
            other => {
                let updates = match &mut self.session {
                    Some(s) => s.thread_event(other),
                    None => return Vec::new(),
                };
                self.apply(updates)
            }
        }
    }

    fn next_timer(&self) -> Option<Instant> {
        let session = self.session.as_ref().and_then(Session::next_timer);
        [self.timers.next(), session].into_iter().flatten().min()
    }

    fn fire_timers(&mut self, cx: &Context<'_>) -> Vec<Report> {
        let mut reports = Vec::new();
        for timer in self.timers.take_due(Instant::now()) {
            match timer {
                Timer::Restart if self.session.is_none() && !self.closing => match self.spawn(cx) {
                    Ok(more) => reports.extend(more),
                    Err(e) => reports.extend(self.schedule_restart(&format!("{e:#}"), false)),
                },
                Timer::Reprobe => {
                    let held = self.task.as_ref().is_some_and(|t| t.held);
                    if held && self.can_start() {
                        self.load_held(&mut reports);
                    }
                }
                Timer::Restart => {}
                Timer::Usage => self.look_for_usage(&mut reports),
            }
        }
        if let Some(s) = &mut self.session {
            let updates = s.fire_timers();
            reports.extend(self.apply(updates));
        }
        reports
    }

    fn resize(&mut self) {
        if let Some(s) = &self.session {
            s.resize();
        }
    }

    fn close(&mut self) {
        self.closing = true;
        if let Some(s) = &mut self.session {
            s.kill();
        }
    }

    fn shutdown(&mut self) {
        // Give Claude Code a moment to exit and draw its last frame, so that the terminal
        // restore comes after it.
        if let Some(mut session) = self.session.take() {
            session.kill();
            let (tx, rx) = std::sync::mpsc::channel();
            if let Ok(_watch) = crate::process::notify_exit(session.pid as i32, tx, || ()) {
                let _ = rx.recv_timeout(Duration::from_millis(500));
            }
        }
    }
}

/// Raw mode on the agent's window while the hosted Claude Code owns it; restored on drop,
/// unwinding included.
struct RawMode(());

impl RawMode {
    fn enter() -> Result<Self> {
        crossterm::terminal::enable_raw_mode().context("failed to put the terminal in raw mode")?;
        Ok(Self(()))
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        // What Claude Code may have left on, had it no time to undo it: a hidden cursor,
        // bracketed paste, focus reporting.
        let mut out = std::io::stdout();
        let _ = out.write_all(b"\x1b[?25h\x1b[?2004l\x1b[?1004l\r\n");
        let _ = out.flush();
        let _ = crossterm::terminal::disable_raw_mode();
    }
}

/// With `AGENT_WRAP_DEBUG=PATH`, appends the hosted Claude Code's events and the updates
/// they cause to `PATH`, for diagnosing a delivery. A file, not stderr: stderr is the
/// window Claude Code draws in.
fn debug(msg: &str) {
    static LOG: std::sync::OnceLock<Option<PathBuf>> = std::sync::OnceLock::new();
    let log = LOG.get_or_init(|| {
        std::env::var_os("AGENT_WRAP_DEBUG")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    });
    if let Some(path) = log
        && let Ok(mut file) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
    {
        let _ = writeln!(file, "{} {msg}", now_us());
    }
}

/// Reports a problem on stderr without ever panicking (the terminal may be gone).
fn warn(msg: &str) {
    let _ = writeln!(std::io::stderr(), "agent-wrap: {msg}");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claude() -> Claude {
        Claude::new(ClaudeConfig {
            program: "claude".into(),
            extra_args: Vec::new(),
            fork_from: None,
            fullscreen: false,
        })
    }

    /// The pause of the restart just scheduled.
    fn pause(c: &Claude) -> Duration {
        let at = c.timers.next().expect("a restart is scheduled");
        at.saturating_duration_since(Instant::now())
    }

    #[test]
    fn restarts_back_off_then_the_host_gives_up_saying_why() {
        let mut c = claude();
        let mut pauses = Vec::new();
        for _ in 0..RESTART_LIMIT {
            let reports = c.schedule_restart("exit status 1", true);
            assert!(matches!(reports[..], [Report::State(AgentState::Starting)]));
            pauses.push(pause(&c));
        }
        // 0.5, 1, 2, 4 and 8 s (less the time the test took).
        for (i, p) in pauses.iter().enumerate() {
            let want = Duration::from_millis(500) * (1 << i);
            assert!(
                *p <= want && *p + Duration::from_millis(400) > want,
                "{i}: {p:?}"
            );
        }
        let reports = c.schedule_restart("exit status 1", true);
        let [Report::Fatal(why)] = &reports[..] else {
            panic!("{reports:?}")
        };
        assert_eq!(
            why,
            "Claude Code exited 5 times within a minute (last: exit status 1); agent-wrap stops"
        );
    }

    #[test]
    fn a_fork_keeps_its_own_session_id_when_claude_code_names_the_source() {
        let mut c = Claude::new(ClaudeConfig {
            program: "claude".into(),
            extra_args: Vec::new(),
            fork_from: Some("source".into()),
            fullscreen: false,
        });
        c.session_id = Some("copy".into());
        let ready = |id: &str| Update::Ready {
            session_id: id.into(),
        };
        let reports = c.apply(vec![ready("source")]);
        assert_eq!(c.session_id.as_deref(), Some("copy"));
        assert!(!reports.iter().any(|r| matches!(r, Report::SessionId(_))));
        assert!(matches!(reports[..], [Report::State(AgentState::Idle)]));
        // Any other id Claude Code reports (a `/clear`) is the agent's session now.
        let reports = c.apply(vec![ready("cleared")]);
        assert_eq!(c.session_id.as_deref(), Some("cleared"));
        assert!(matches!(&reports[0], Report::SessionId(Some(id)) if id == "cleared"));
    }

    #[test]
    fn two_deaths_before_ready_start_a_new_session() {
        let mut c = claude();
        c.session_id = Some("old".into());
        let reports = c.schedule_restart("exit status 1", false);
        assert!(!reports.iter().any(|r| matches!(r, Report::SessionId(_))));
        let reports = c.schedule_restart("exit status 1", false);
        assert!(matches!(reports[0], Report::SessionId(None)));
        assert_eq!(c.session_id, None);
        // A start that got ready counts the resume as working again.
        c.session_id = Some("new".into());
        c.schedule_restart("exit status 1", true);
        c.schedule_restart("exit status 1", false);
        assert_eq!(c.session_id.as_deref(), Some("new"));
    }

    /// The next task may end before the transcript has the last turn's tokens: each
    /// finished turn is looked for until found, not only the newest.
    #[test]
    fn tokens_of_a_turn_are_found_even_after_the_next_turn_ended() {
        let dir = tempfile::tempdir().unwrap();
        let transcript = dir.path().join("t.jsonl");
        let turn = |prompt: &str, id: &str, tokens: u64| {
            format!(
                "{{\"type\":\"user\",\"message\":{{\"content\":\"{prompt}\"}}}}\n\
                 {{\"type\":\"assistant\",\"message\":{{\"id\":\"{id}\",\"usage\":{{\"input_tokens\":{tokens}}}}}}}\n\
                 {{\"type\":\"system\",\"subtype\":\"turn_duration\"}}\n"
            )
        };
        std::fs::write(&transcript, "").unwrap();
        let mut c = claude();
        for (task, prompt) in [("t-1", "first"), ("t-2", "second")] {
            c.pending_usage.push(PendingUsage {
                task: crate::state::TaskId::parse(task).unwrap(),
                transcript: transcript.clone(),
                prompt: prompt.into(),
                tries: 0,
                due: Instant::now(),
            });
        }
        let mut reports = Vec::new();
        c.look_for_usage(&mut reports);
        assert!(reports.is_empty());
        assert_eq!(c.pending_usage.len(), 2);
        std::fs::write(
            &transcript,
            turn("first", "m1", 7) + &turn("second", "m2", 9),
        )
        .unwrap();
        for p in &mut c.pending_usage {
            p.due = Instant::now();
        }
        c.look_for_usage(&mut reports);
        let found: Vec<(String, u64)> = reports
            .iter()
            .filter_map(|r| match r {
                Report::Usage(id, t) => Some((id.to_string(), t.input_tokens)),
                _ => None,
            })
            .collect();
        assert_eq!(found, [("t-1".into(), 7), ("t-2".into(), 9)]);
        assert!(c.pending_usage.is_empty());
        assert!(c.timers.next().is_none());
    }
}
