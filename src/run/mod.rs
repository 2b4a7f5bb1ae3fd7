//! Fully automatic runs: `claude-editor-hook run "GOAL" -w N` plans the goal into tasks,
//! puts them on a board of the run's own, runs them on N workers in parallel while
//! respecting their dependencies, shows progress, writes a report, and can be resumed
//! after a crash (docs/run.md).
//!
//! - [`plan`]: the planner's prompt, reading and validating a plan (also `--tasks`).
//! - [`scheduler`]: the pure state machine that decides which worker runs what, retries,
//!   timeouts, blocking and the end of the run.
//! - [`runner`]: the run's one event loop, which carries out the scheduler's effects.
//! - [`workers`]: the drivers: headless Claude Code with one session per worker, or any
//!   command (`--exec`); [`agents`]: existing persistent agents (`--agents`).
//! - [`progress`]: the terminal view, plain lines, or JSON lines.
//! - [`report`]: the markdown report.
//! - [`folder`]: the run folder (`runs/<id>/`), `--resume` and `--list`.
//!
//! A run is a board plus workers: the board is `boards/run-<id>/` in the durable state
//! root, so every board verb and `@board` work on it while it runs and after.

pub mod agents;
pub mod folder;
pub mod plan;
pub mod progress;
pub mod report;
pub mod runner;
pub mod scheduler;
pub mod workers;

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result, bail};

use crate::board::{Board, NewTask, Status};
use folder::{DriverSpec, RunFolder, RunMeta, RunState, WorkerMeta};
use progress::{Mode, Progress, RunEvent};
use scheduler::Outcome;
use workers::{Job, WorkerEvent};

/// The per-task timeout unless `--timeout` says otherwise.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30 * 60);
/// The most workers a run may have.
pub const MAX_WORKERS: usize = 256;

/// What `run "GOAL"` was asked for.
#[derive(Clone, Debug)]
pub struct Options {
    pub goal: Option<String>,
    pub workers: usize,
    /// `--tasks FILE` (with `--no-plan`): skip the planner.
    pub tasks: Option<PathBuf>,
    pub no_plan: bool,
    /// `--exec CMD`, else headless Claude Code.
    pub exec: Option<String>,
    /// `--agents a,b`: existing persistent agents are the workers.
    pub agents: Vec<String>,
    /// Extra arguments for `claude -p` (`--claude-arg`).
    pub claude_args: Vec<String>,
    pub timeout: Duration,
    pub retries: u32,
    pub json: bool,
    pub worktrees: bool,
}

/// `run "GOAL" …`: a new run. Returns the exit status: 0 all done, 1 failures, 130
/// cancelled.
pub fn start(opts: &Options) -> Result<i32> {
    if opts.workers == 0 {
        bail!("-w 0: a run needs at least one worker");
    }
    if opts.workers > MAX_WORKERS {
        bail!("-w {}: at most {MAX_WORKERS} workers", opts.workers);
    }
    if opts.timeout.is_zero() {
        bail!("--timeout 0: a task needs some time");
    }
    let tasks = match (&opts.tasks, opts.no_plan) {
        (Some(file), _) => Some(
            plan::validate(crate::board::import::read_tasks(file)?)
                .with_context(|| format!("refusing {}", file.display()))?,
        ),
        (None, true) => bail!("--no-plan needs the tasks: --tasks tasks.json"),
        (None, false) => None,
    };
    let goal = match (&opts.goal, &opts.tasks) {
        (Some(g), _) if g.trim().is_empty() => {
            bail!(
                "the goal is empty: say what the run should achieve, e.g. run \"Add a --verbose flag\" -w 2"
            )
        }
        (Some(g), _) => g.trim().to_owned(),
        (None, Some(file)) => format!("the tasks of {}", file.display()),
        (None, None) => bail!("a run needs a goal: run \"GOAL\" -w N (or --resume, --list)"),
    };
    let cwd = std::env::current_dir().context("failed to read the current directory")?;
    let project = std::fs::canonicalize(&cwd).unwrap_or(cwd);
    let driver = match (&opts.exec, opts.agents.is_empty()) {
        (Some(_), false) => bail!("--exec and --agents are two different workers: pick one"),
        (Some(cmd), _) if cmd.trim().is_empty() => bail!("--exec needs a command"),
        (Some(cmd), _) => DriverSpec::Exec {
            command: cmd.clone(),
        },
        (None, false) => {
            let mut seen = std::collections::HashSet::new();
            for a in &opts.agents {
                if !seen.insert(a) {
                    bail!("--agents names {a} twice");
                }
            }
            agents::check_agents(&opts.agents)?;
            DriverSpec::Agents {
                names: opts.agents.clone(),
                planner_bin: claude_program(),
            }
        }
        (None, true) => DriverSpec::Claude {
            bin: claude_program(),
            args: opts.claude_args.clone(),
        },
    };
    let is_claude = matches!(driver, DriverSpec::Claude { .. });
    if opts.worktrees && matches!(driver, DriverSpec::Agents { .. }) {
        bail!(
            "--worktrees is for the run's own workers; give an agent its worktree with \
             `agent-wrap NAME --worktree`"
        );
    }

    let folder = RunFolder::create()?;
    let _lock = folder.lock()?;
    let events = runner::Events::new()?;
    crate::board::lease::set_own_lock(&folder.lock_path());
    let names: Vec<String> = match &driver {
        DriverSpec::Agents { names, .. } => names.clone(),
        _ => (1..=opts.workers).map(|i| format!("w{i}")).collect(),
    };
    let mut workers = Vec::with_capacity(names.len());
    for name in names {
        workers.push(WorkerMeta {
            name,
            session: is_claude.then(|| uuid::Uuid::new_v4().to_string()),
            session_started: false,
            worktree: None,
            branch: None,
            base: None,
        });
    }
    let mut meta = RunMeta {
        version: folder::RUN_FORMAT,
        id: folder.id.clone(),
        goal: goal.clone(),
        project: project.clone(),
        driver,
        workers,
        timeout_ms: opts.timeout.as_millis() as u64,
        retries: opts.retries,
        state: RunState::Planning,
        created_at_us: crate::time::now_us(),
        finished_at_us: None,
        exit: None,
        planned: tasks.is_none(),
    };
    folder.write_meta(&meta)?;
    let mode = Mode::detect(opts.json);
    if mode != Mode::Json {
        eprintln!(
            "run {} (resume with `claude-editor-hook run --resume {}`)",
            folder.id, folder.id
        );
    }
    if opts.worktrees {
        prepare_worktrees(&folder, &mut meta)?;
        folder.write_meta(&meta)?;
    }
    let mut board = Board::create(&folder.board()?, &goal, None)?;
    let tasks = match tasks {
        Some(t) => t,
        None => match run_planner(&events, &folder, &meta, mode) {
            Ok(Some(t)) => t,
            Ok(None) => return cancelled_while_planning(&folder, &mut meta, mode),
            Err(e) => {
                meta.state = RunState::Failed;
                meta.exit = Some(1);
                meta.finished_at_us = Some(crate::time::now_us());
                folder.write_meta(&meta)?;
                return Err(e);
            }
        },
    };
    board.add_all(&tasks)?;
    meta.state = RunState::Running;
    folder.write_meta(&meta)?;
    execute(&events, &folder, &mut meta, &mut board, mode, false)
}

/// Ctrl-C while the planner ran: nothing was planned, `--resume` plans again.
fn cancelled_while_planning(folder: &RunFolder, meta: &mut RunMeta, mode: Mode) -> Result<i32> {
    let code = scheduler::Exit::Cancelled.code();
    meta.state = RunState::Cancelled;
    meta.exit = Some(code);
    meta.finished_at_us = Some(crate::time::now_us());
    folder.write_meta(meta)?;
    if mode == Mode::Json {
        println!(
            "{}",
            serde_json::json!({"event": "cancelled", "run": folder.id, "while": "planning"})
        );
    } else {
        eprintln!(
            "run {} cancelled while planning; `claude-editor-hook run --resume {}` plans again",
            folder.id, folder.id
        );
    }
    Ok(code)
}

/// `run --resume [RUN]`: continues a cancelled, crashed or finished run. Done tasks are
/// never run again; claims a dead run held are given back; failed, cancelled and
/// blocked tasks get another chance; workers resume their sessions.
pub fn resume(id: Option<&str>, json: bool) -> Result<i32> {
    let folder = RunFolder::open(id)?;
    let _lock = folder.lock()?;
    crate::board::lease::set_own_lock(&folder.lock_path());
    let events = runner::Events::new()?;
    let mut meta = folder.read_meta()?;
    let mode = Mode::detect(json);
    if mode != Mode::Json {
        eprintln!(
            "resuming run {} in {}: {}",
            folder.id,
            meta.project.display(),
            meta.goal.lines().next().unwrap_or("")
        );
    }
    let mut board = Board::open(&folder.board()?)?;
    runner::recover(&folder, &mut board)?;
    for t in board.tasks()? {
        if matches!(t.status, Status::Failed | Status::Cancelled) {
            board.retry(&t.id)?;
        }
    }
    if meta.worktrees_used() {
        prepare_worktrees(&folder, &mut meta)?;
    }
    if board.tasks()?.is_empty() {
        // The run died while planning: plan again.
        let Some(tasks) = run_planner(&events, &folder, &meta, mode)? else {
            return cancelled_while_planning(&folder, &mut meta, mode);
        };
        board.add_all(&tasks)?;
    }
    meta.state = RunState::Running;
    meta.finished_at_us = None;
    meta.exit = None;
    folder.write_meta(&meta)?;
    execute(&events, &folder, &mut meta, &mut board, mode, true)
}

/// Runs the tasks on the board, then writes and prints the report.
fn execute(
    events: &runner::Events,
    folder: &RunFolder,
    meta: &mut RunMeta,
    board: &mut Board,
    mode: Mode,
    resumed: bool,
) -> Result<i32> {
    let names: Vec<String> = meta.workers.iter().map(|w| w.name.clone()).collect();
    let views = board.views()?;
    let counts = report::Counts::of(&views);
    let mut progress = Progress::new(mode, names, views.len());
    progress.event(&RunEvent::Started {
        run: folder.id.clone(),
        goal: meta.goal.lines().next().unwrap_or("").to_owned(),
        board: folder.board_name(),
        tasks: counts.total,
        done: counts.done,
        workers: meta.workers.len(),
        resumed,
    });
    progress.set_counts(counts.done, counts.failed, counts.blocked);
    let t0 = std::time::Instant::now();
    let exit = runner::drive(events, folder, meta, board, &mut progress);
    progress.finish();
    let exit = exit?;
    meta.state = runner::final_state(exit);
    meta.exit = Some(exit.code());
    meta.finished_at_us = Some(crate::time::now_us());
    folder.write_meta(meta)?;
    let views = board.views()?;
    let counts = report::Counts::of(&views);
    let branches = branches(meta);
    let text = report::render(
        meta,
        &folder.board_name(),
        &views,
        &folder.attempts()?,
        &branches,
        t0.elapsed().as_micros() as u64,
    );
    crate::state::atomic_write(&folder.report_path(), text.as_bytes())?;
    // The team's event log, for `events`, `top` and the notifier.
    if let Ok(home) = crate::state::durable_home() {
        crate::events::append(
            &home,
            crate::events::What::RunFinished {
                run: folder.id.clone(),
                state: meta.state.as_str().into(),
                done: counts.done,
                failed: counts.failed,
                blocked: counts.blocked,
                total: counts.total,
            },
        );
    }
    progress.event(&RunEvent::Finished {
        run: folder.id.clone(),
        exit: exit.code(),
        state: meta.state.as_str().into(),
        done: counts.done,
        failed: counts.failed,
        blocked: counts.blocked,
        total: counts.total,
        elapsed_ms: t0.elapsed().as_millis() as u64,
        report: folder.report_path().display().to_string(),
    });
    if mode != Mode::Json {
        print!("{text}");
    }
    Ok(exit.code())
}

/// The planner turn, once more with the error if its plan is invalid. Its raw answers
/// stay in the run folder (`planner-1.txt`, `planner-2.txt`). `None`: cancelled.
fn run_planner(
    events: &runner::Events,
    folder: &RunFolder,
    meta: &RunMeta,
    mode: Mode,
) -> Result<Option<Vec<NewTask>>> {
    let first = plan::planner_prompt(&meta.goal, meta.workers.len());
    let session =
        matches!(meta.driver, DriverSpec::Claude { .. }).then(|| uuid::Uuid::new_v4().to_string());
    let mut error = String::new();
    for n in 1..=2 {
        let prompt = match (n, &session) {
            (1, _) => first.clone(),
            // Claude Code resumes the planner's session: it sees its first answer.
            (_, Some(_)) => plan::retry_prompt(&error),
            (_, None) => format!("{first}\n\n{}", plan::retry_prompt(&error)),
        };
        match mode {
            Mode::Json => println!(
                "{}",
                serde_json::json!({"event": "planning", "run": folder.id, "answer": n})
            ),
            _ => eprintln!("planning the goal (answer {n})…"),
        }
        let session = session.clone().map(|s| (s, n > 1));
        let Some(answer) = planner_turn(events, folder, meta, n, prompt, session)? else {
            return Ok(None);
        };
        crate::state::atomic_write(&folder.planner_path(n), answer.as_bytes())?;
        match plan::parse_answer(&answer) {
            Ok(tasks) => return Ok(Some(tasks)),
            Err(e) => {
                error = format!("{e:#}");
                if mode != Mode::Json {
                    eprintln!("the planner's plan is invalid: {error}");
                }
            }
        }
    }
    bail!(
        "the planner's plan was invalid twice: {error}; its answers are in {} and {}",
        folder.planner_path(1).display(),
        folder.planner_path(2).display()
    )
}

/// One planner turn through the run's driver, waited for on the run's channel (its loop
/// has not started): `None` when a signal cancelled it.
fn planner_turn(
    events: &runner::Events,
    folder: &RunFolder,
    meta: &RunMeta,
    n: usize,
    prompt: String,
    session: Option<(String, bool)>,
) -> Result<Option<String>> {
    let job = Job {
        run: meta.id.clone(),
        run_dir: folder.dir.clone(),
        worker: 0,
        worker_name: "planner".into(),
        task: "planner".into(),
        attempt: n as u32,
        prompt,
        cwd: meta.project.clone(),
        log: folder.dir.join(format!("planner-{n}.log")),
        board: folder.board()?.dir().to_path_buf(),
        session,
    };
    // Agents do the tasks; the plan is one Claude Code turn, as without them.
    let driver = match &meta.driver {
        DriverSpec::Agents { planner_bin, .. } => DriverSpec::Claude {
            bin: planner_bin.clone(),
            args: Vec::new(),
        },
        d => d.clone(),
    };
    let running = workers::spawn(&driver, &job, events.tx.clone(), runner::Event::Worker)?;
    let mut deadline = std::time::Instant::now() + Duration::from_millis(meta.timeout_ms);
    // How long a killed planner may take to be reaped.
    let grace = Duration::from_secs(5);
    let mut stop: Option<Result<Option<String>>> = None;
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match events.rx.recv_timeout(left) {
            Ok(runner::Event::Worker(WorkerEvent::Ended { report, .. })) => {
                return match (stop, report.outcome) {
                    (Some(stopped), _) => stopped,
                    (None, Outcome::Success(answer)) => Ok(Some(answer)),
                    (None, Outcome::Failure(why)) => bail!("the planner failed: {why}"),
                };
            }
            Ok(runner::Event::Worker(WorkerEvent::Line { .. }))
            | Ok(runner::Event::Signal(crate::signals::Signal::Resize)) => {}
            Ok(runner::Event::Signal(_)) if stop.is_none() => {
                running.kill();
                stop = Some(Ok(None));
                deadline = std::time::Instant::now() + grace;
            }
            Ok(runner::Event::Signal(_)) => {}
            Err(_) if stop.is_none() => {
                running.kill();
                stop = Some(Err(anyhow::anyhow!(
                    "the planner timed out after {}",
                    scheduler::human_ms(meta.timeout_ms)
                )));
                deadline = std::time::Instant::now() + grace;
            }
            // Killed, and still no end: give up waiting for it.
            Err(_) => return stop.expect("set above"),
        }
    }
}

/// Each worker's own git worktree and branch (`--worktrees`).
fn prepare_worktrees(folder: &RunFolder, meta: &mut RunMeta) -> Result<()> {
    for w in &mut meta.workers {
        let name = crate::state::AgentName::parse(&format!("r{}-{}", folder.id, w.name))
            .context("a run worker's worktree name")?;
        let rec = crate::worktree::prepare(
            &name,
            &meta.project,
            &crate::worktree::Request::default(),
            &mut |_| {},
        )?;
        w.worktree = Some(rec.path.clone());
        w.branch = Some(rec.branch.clone());
        w.base = Some(rec.base_commit.clone());
    }
    Ok(())
}

/// Each worker's branch with its diff stat against where it started.
fn branches(meta: &RunMeta) -> Vec<report::Branch> {
    meta.workers
        .iter()
        .filter_map(|w| {
            let (path, branch) = (w.worktree.as_ref()?, w.branch.as_ref()?);
            let git = crate::worktree::Git::new(path);
            // Committed and uncommitted work (new files too), as `diff NAME --stat`.
            let tree = crate::worktree::diff::Snapshot::take(path)
                .map(|s| s.tree)
                .unwrap_or_else(|_| "HEAD".into());
            let stat = git
                .run(["diff", "--stat", w.base.as_deref().unwrap_or("HEAD"), &tree])
                .unwrap_or_default();
            Some(report::Branch {
                worker: w.name.clone(),
                branch: branch.clone(),
                stat,
            })
        })
        .collect()
}

/// `run --list`: past runs, oldest first.
pub fn list(json: bool) -> Result<i32> {
    let root = folder::runs_root()?;
    let mut rows = Vec::new();
    for id in folder::list_ids(&root)? {
        let f = RunFolder::open(Some(&id))?;
        let Ok(meta) = f.read_meta() else {
            continue;
        };
        let live = crate::state::lock_holder(&f.lock_path())
            .ok()
            .flatten()
            .is_some();
        let (done, total) = match f.board().and_then(|b| Board::open(&b)) {
            Ok(mut b) => {
                let c = report::Counts::of(&b.views()?);
                (c.done, c.total)
            }
            Err(_) => (0, 0),
        };
        let state = if live {
            "running".to_owned()
        } else if matches!(meta.state, RunState::Running | RunState::Planning) {
            "interrupted".to_owned()
        } else {
            meta.state.as_str().to_owned()
        };
        rows.push(serde_json::json!({
            "id": id,
            "state": state,
            "done": done,
            "total": total,
            "workers": meta.workers.len(),
            "goal": meta.goal,
            "project": meta.project,
            "created_at_us": meta.created_at_us,
            "report": f.report_path().exists().then(|| f.report_path()),
        }));
    }
    if json {
        println!("{}", serde_json::json!({ "runs": rows }));
        return Ok(0);
    }
    if rows.is_empty() {
        println!("no runs yet; start one with `claude-editor-hook run \"GOAL\" -w N`");
        return Ok(0);
    }
    for r in rows {
        println!(
            "{}  {:<11}  {:>4}/{:<4}  {}",
            r["id"].as_str().unwrap_or(""),
            r["state"].as_str().unwrap_or(""),
            r["done"],
            r["total"],
            r["goal"]
                .as_str()
                .unwrap_or("")
                .lines()
                .next()
                .unwrap_or("")
        );
    }
    Ok(0)
}

/// The Claude Code program: `$CLAUDE_EDITOR_HOOK_CLAUDE`, else `claude` on the PATH.
fn claude_program() -> String {
    std::env::var(crate::team::config::CLAUDE_ENV)
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "claude".into())
}

impl RunMeta {
    /// True if the workers have worktrees of their own (`--worktrees`).
    pub fn worktrees_used(&self) -> bool {
        self.workers.iter().any(|w| w.worktree.is_some())
    }
}
