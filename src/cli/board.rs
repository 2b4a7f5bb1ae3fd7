//! `claude-editor-hook board VERB`: the team board from a shell. Each verb parses its
//! arguments, calls the library verb of the same name in [`crate::board`], and prints.
//!
//! Exit status: 0 done; 1 an error (one line on stderr); 3 `claim` found nothing that
//! can become ready for the worker (the board is finished for it); 4 `claim` without
//! `--wait` found nothing ready now, though something may become ready later.

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};

use crate::board::report::task_entry;
use crate::board::{
    Board, BoardPath, ClaimEnd, ClaimRequest, Claimed, DEFAULT_LEASE, Holder, NewTask, TaskView,
    claim_verb,
};
use crate::time::{human_us, now_us};

/// Exit status of `claim` when nothing can become ready for the worker.
pub const EXIT_FINISHED: i32 = 3;
/// Exit status of `claim` (without `--wait`) when nothing is ready yet.
pub const EXIT_NOTHING_READY: i32 = 4;

/// The team board: a goal, tasks with priorities and dependencies, exactly-once claims.
#[derive(Args, Debug)]
pub struct BoardArgs {
    /// The board: a name, or a path (a directory, or its board.db). Default: the board of
    /// this project (the git top level of the current directory).
    #[arg(
        long,
        global = true,
        env = "CLAUDE_EDITOR_HOOK_BOARD",
        value_name = "NAME|PATH"
    )]
    pub board: Option<String>,
    /// Who runs this command. Claimed tasks can only be ended by their claimer, and every
    /// command with --worker renews that worker's leases.
    #[arg(
        long,
        global = true,
        env = "CLAUDE_EDITOR_HOOK_WORKER",
        value_name = "WORKER"
    )]
    pub worker: Option<String>,
    #[command(subcommand)]
    pub verb: Verb,
}

#[derive(Subcommand, Debug)]
pub enum Verb {
    /// Start a board with its goal (and a master plan in markdown).
    Init {
        goal: String,
        #[arg(long, value_name = "FILE")]
        plan: Option<PathBuf>,
    },
    /// Add a task and print its id, or import tasks with --from.
    Add {
        #[arg(required_unless_present = "from", conflicts_with = "from")]
        title: Option<String>,
        /// Priority, 1 the highest.
        #[arg(short, long, value_name = "N")]
        priority: Option<i64>,
        /// A task this one depends on (repeatable).
        #[arg(short = 'd', long = "dep", value_name = "ID")]
        deps: Vec<String>,
        /// Only workers with this role (or none) take it.
        #[arg(long)]
        role: Option<String>,
        #[arg(long, conflicts_with = "body_file")]
        body: Option<String>,
        #[arg(long, value_name = "FILE")]
        body_file: Option<PathBuf>,
        /// Import a tasks.json (ours, or the seed's `id`/`description`/`priority`/
        /// `dependencies`/`context` shape), all or nothing.
        #[arg(long, value_name = "FILE")]
        from: Option<PathBuf>,
    },
    /// Every task with its status.
    List {
        #[arg(long)]
        json: bool,
    },
    /// One task in full.
    Show {
        id: String,
        #[arg(long)]
        json: bool,
    },
    /// Take the highest-priority ready task and print it with the goal and the results of
    /// its dependencies.
    Claim {
        worker: String,
        /// Only tasks with this role or none (repeatable).
        #[arg(long = "role", value_name = "ROLE")]
        roles: Vec<String>,
        /// Block until a task is ready; exit 3 when none can become ready.
        #[arg(long)]
        wait: bool,
        /// Give up waiting after this long (exit 4).
        #[arg(long, value_name = "DUR", requires = "wait", value_parser = parse_duration)]
        timeout: Option<Duration>,
        /// How long the claim holds without a renewal (e.g. 30m, 90s, 500ms).
        #[arg(long, value_name = "DUR", env = "CLAUDE_EDITOR_HOOK_BOARD_LEASE", value_parser = parse_duration)]
        lease: Option<Duration>,
        #[arg(long)]
        json: bool,
    },
    /// Mark a task done with its result (text, or --file).
    Done {
        id: String,
        #[arg(conflicts_with = "file")]
        result: Option<String>,
        #[arg(long, value_name = "FILE")]
        file: Option<PathBuf>,
    },
    /// Mark a task failed; its dependents are blocked until a retry.
    Fail { id: String, reason: String },
    /// Give a claimed task back to the queue.
    Release {
        id: String,
        /// Even if another worker holds it.
        #[arg(long)]
        force: bool,
    },
    /// Reopen a failed or cancelled task.
    Retry { id: String },
    /// Cancel a task; its dependents are blocked.
    Cancel {
        id: String,
        /// Even if another worker holds it.
        #[arg(long)]
        force: bool,
    },
    /// Extend the lease of a task you hold.
    Renew { id: String },
    /// Share a discovery with the board.
    Note { text: String },
    /// The discoveries.
    Notes {
        #[arg(long)]
        json: bool,
    },
    /// The goal, every task in dependency order with its outcome, then the failures.
    Report {
        #[arg(long)]
        json: bool,
    },
    /// Counts per status and the ready queue.
    Status {
        #[arg(long)]
        json: bool,
    },
}

/// Runs `board VERB`.
pub fn run(args: &BoardArgs) -> Result<i32> {
    let path = BoardPath::resolve(args.board.as_deref())?;
    if let Verb::Init { goal, plan } = &args.verb {
        let plan = plan.as_deref().map(read_text).transpose()?;
        let board = Board::create(&path, goal, plan.as_deref())?;
        println!("board {} ready", board.path());
        return Ok(0);
    }
    let mut board = Board::open(&path)?;
    let worker = match &args.verb {
        Verb::Claim { worker, .. } => Some(worker.as_str()),
        _ => args.worker.as_deref(),
    };
    board.set_worker(worker)?;
    let mut out = std::io::stdout().lock();
    match &args.verb {
        Verb::Init { .. } => unreachable!("handled above"),
        Verb::Add {
            title,
            priority,
            deps,
            role,
            body,
            body_file,
            from,
        } => {
            let ids = match (from, title) {
                (Some(file), _) => board.add_all(&crate::board::import::read_tasks(file)?)?,
                (None, Some(title)) => {
                    let body = match (body, body_file) {
                        (Some(b), _) => b.clone(),
                        (None, Some(f)) => read_text(f)?,
                        (None, None) => String::new(),
                    };
                    vec![board.add(&NewTask {
                        id: None,
                        title: title.clone(),
                        body,
                        priority: *priority,
                        deps: deps.clone(),
                        role: role.clone(),
                        context: None,
                    })?]
                }
                (None, None) => bail!("give a title, or --from FILE"),
            };
            for id in ids {
                writeln!(out, "{id}")?;
            }
        }
        Verb::List { json } => {
            let views = board.views()?;
            if *json {
                print_json(
                    &mut out,
                    &serde_json::json!({ "version": 1, "board": board.path().to_string(), "tasks": views }),
                )?;
            } else if views.is_empty() {
                writeln!(
                    out,
                    "no tasks on {} (add one with `board add TITLE`)",
                    board.path()
                )?;
            } else {
                writeln!(
                    out,
                    "{:<8} {:<9} {:>3} {:<10} {:<12} {:<14} TITLE",
                    "ID", "STATUS", "PRI", "ROLE", "WORKER", "DEPS"
                )?;
                for v in &views {
                    let t = &v.task;
                    writeln!(
                        out,
                        "{:<8} {:<9} {:>3} {:<10} {:<12} {:<14} {}",
                        t.id,
                        v.shown(),
                        t.priority,
                        t.role.as_deref().unwrap_or("-"),
                        t.worker.as_deref().unwrap_or("-"),
                        if t.deps.is_empty() {
                            "-".to_owned()
                        } else {
                            t.deps.join(",")
                        },
                        t.title
                    )?;
                }
            }
        }
        Verb::Show { id, json } => {
            let views = board.views()?;
            let v = views
                .iter()
                .find(|v| v.task.id == *id)
                .with_context(|| format!("no task {id:?} on the board at {}", board.path()))?;
            if *json {
                print_json(&mut out, v)?;
            } else {
                write!(out, "{}", show_text(v))?;
            }
        }
        Verb::Claim {
            worker,
            roles,
            wait,
            timeout,
            lease,
            json,
        } => {
            let req = ClaimRequest {
                worker: worker.clone(),
                roles: roles.clone(),
                holder: Holder::Lease(lease.unwrap_or(DEFAULT_LEASE)),
            };
            match claim_verb(&mut board, &req, *wait, *timeout)? {
                ClaimEnd::Claimed(c) => {
                    if *json {
                        print_json(&mut out, &c)?;
                    } else {
                        write!(out, "{}", claim_text(&c))?;
                    }
                }
                end @ (ClaimEnd::TimedOut | ClaimEnd::NotReady(_)) => {
                    eprintln!("claude-editor-hook: {}", end.reason(worker));
                    return Ok(EXIT_NOTHING_READY);
                }
                end @ ClaimEnd::Finished(_) => {
                    eprintln!("claude-editor-hook: {}", end.reason(worker));
                    out.flush()?;
                    return Ok(EXIT_FINISHED);
                }
            }
        }
        Verb::Done { id, result, file } => {
            let result = match (result, file) {
                (Some(r), _) => r.clone(),
                (None, Some(f)) => read_text(f)?,
                (None, None) => String::new(),
            };
            let t = board.done(id, &result)?;
            writeln!(out, "task {} done", t.id)?;
        }
        Verb::Fail { id, reason } => {
            let t = board.fail(id, reason)?;
            writeln!(out, "task {} failed", t.id)?;
        }
        Verb::Release { id, force } => {
            let t = board.release(id, *force)?;
            writeln!(out, "task {} is open again", t.id)?;
        }
        Verb::Retry { id } => {
            let t = board.retry(id)?;
            writeln!(
                out,
                "task {} is open again (attempts so far: {})",
                t.id, t.attempts
            )?;
        }
        Verb::Cancel { id, force } => {
            let t = board.cancel(id, *force)?;
            writeln!(out, "task {} cancelled", t.id)?;
        }
        Verb::Renew { id } => {
            let until = board.renew(id)?;
            let left = until
                .map(|u| human_us(u.saturating_sub(now_us())))
                .unwrap_or_else(|| "while its host lives".into());
            writeln!(out, "task {id}: lease renewed ({left})")?;
        }
        Verb::Note { text } => {
            board.note(&crate::board::note_author(args.worker.as_deref()), text)?;
        }
        Verb::Notes { json } => {
            let notes = board.notes()?;
            if *json {
                print_json(
                    &mut out,
                    &serde_json::json!({ "version": 1, "notes": notes }),
                )?;
            } else {
                for n in notes {
                    writeln!(
                        out,
                        "{} {}: {}",
                        crate::board::report::stamp(n.at_us),
                        n.author,
                        n.text
                    )?;
                }
            }
        }
        Verb::Report { json } => {
            let report = board.report()?;
            if *json {
                print_json(&mut out, &report)?;
            } else {
                write!(out, "{}", report.text())?;
            }
        }
        Verb::Status { json } => {
            let status = board.status()?;
            if *json {
                print_json(&mut out, &status)?;
            } else {
                write!(out, "{}", status.text())?;
            }
        }
    }
    out.flush()?;
    Ok(0)
}

fn print_json(out: &mut impl Write, value: &impl serde::Serialize) -> Result<()> {
    serde_json::to_writer_pretty(&mut *out, value)?;
    writeln!(out)?;
    Ok(())
}

/// What `claim` prints: a header line for the human, then the task as a prompt, then
/// how to end it.
fn claim_text(c: &Claimed) -> String {
    let t = &c.task;
    let worker = t.worker.as_deref().unwrap_or("?");
    let lease = t
        .lease_until_us
        .map(|u| format!(", lease {}", human_us(u.saturating_sub(now_us()))))
        .unwrap_or_default();
    format!(
        "claimed {} for {worker} (attempt {}{lease}): {}\n\n{}\nWhen finished: claude-editor-hook board done {} --worker {worker} \"RESULT\" (or `fail {} REASON`)\n",
        t.id,
        t.attempts,
        t.title,
        c.prompt(),
        t.id,
        t.id
    )
}

fn show_text(v: &TaskView) -> String {
    let t = &v.task;
    let mut out = task_entry(v);
    out.push_str(&format!("priority: {}\n", t.priority));
    if !t.deps.is_empty() {
        out.push_str(&format!("depends on: {}\n", t.deps.join(", ")));
    }
    if let Some(r) = &t.role {
        out.push_str(&format!("role: {r}\n"));
    }
    out.push_str(&format!("attempts: {}\n", t.attempts));
    if let Some(u) = t.lease_until_us {
        out.push_str(&format!(
            "lease: {} left\n",
            human_us(u.saturating_sub(now_us()))
        ));
    }
    if let Some(pid) = t.host_pid {
        out.push_str(&format!("held by agent-wrap pid {pid}\n"));
    }
    if let Some(r) = t
        .reason
        .as_deref()
        .filter(|_| t.status != crate::board::Status::Done)
    {
        out.push_str(&format!("reason: {r}\n"));
    }
    if !t.body.trim().is_empty() {
        out.push_str(&format!("\n{}\n", t.body.trim_end()));
    }
    if let Some(c) = &t.context {
        out.push_str(&format!("context: {c}\n"));
    }
    out
}

/// Reads a text file for a goal, body or result: UTF-8, within the board's limit.
fn read_text(path: &std::path::Path) -> Result<String> {
    let bytes = crate::state::read_optional(path)?
        .with_context(|| format!("{} does not exist", path.display()))?;
    if bytes.len() > crate::board::MAX_TEXT_BYTES {
        bail!(
            "{} is {} bytes, over the board's {}-byte limit; nothing was recorded",
            path.display(),
            bytes.len(),
            crate::board::MAX_TEXT_BYTES
        );
    }
    String::from_utf8(bytes).map_err(|_| anyhow::anyhow!("{} is not UTF-8 text", path.display()))
}

/// `30m`, `90s`, `500ms`, `2h`, `7d`, or plain seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: f64 = num
        .parse()
        .map_err(|_| format!("invalid duration {s:?}: use e.g. 30m, 90s, 500ms"))?;
    let secs = match unit {
        "" | "s" => n,
        "ms" => n / 1000.0,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        "d" => n * 86400.0,
        _ => {
            return Err(format!(
                "invalid duration {s:?}: the unit is ms, s, m, h or d"
            ));
        }
    };
    if !(secs > 0.0 && secs < 1e9) {
        return Err(format!("invalid duration {s:?}: it must be positive"));
    }
    Ok(Duration::from_secs_f64(secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30m").unwrap(), Duration::from_secs(1800));
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("2").unwrap(), Duration::from_secs(2));
        assert!(parse_duration("0").is_err());
        assert!(parse_duration("5 parsecs").is_err());
    }
}
