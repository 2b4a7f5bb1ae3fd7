//! The board verbs with JSON arguments: what the MCP tools (src/mcp/tools.rs) and the
//! web API (src/web/api.rs) both call, so a verb has one argument type, one behaviour
//! and one answer at every layer. Each answer is the text the CLI prints plus the same
//! data as JSON; a failure is the CLI's one-line reason.

use std::time::Duration;

use anyhow::{Context, Result};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Value, json};

use super::{Board, BoardPath, ClaimEnd, ClaimRequest, Holder, NewTask};
use crate::state::{AgentName, StateDir, lock_holder};

/// A verb's answer: the text the CLI prints, and the same as JSON.
#[derive(Debug)]
pub struct Reply {
    pub text: String,
    pub data: Value,
}

impl Reply {
    fn new(text: impl Into<String>, data: Value) -> Self {
        Self {
            text: text.into(),
            data,
        }
    }
}

/// Which board; every board tool takes it.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BoardArg {
    /// The board: a name, or a path. Default: `$CLAUDE_EDITOR_HOOK_BOARD`, else the
    /// board of the project (the git top level of the working directory).
    #[serde(default)]
    pub board: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct InitArgs {
    /// The goal everyone works towards.
    pub goal: String,
    /// The master plan, in markdown.
    #[serde(default)]
    pub plan: Option<String>,
    /// The board: a name, or a path. Default: `$CLAUDE_EDITOR_HOOK_BOARD`, else the project's.
    #[serde(default)]
    pub board: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AddArgs {
    /// A one-line title.
    pub title: String,
    /// What to do, in full.
    #[serde(default)]
    pub body: Option<String>,
    /// 1 is the highest (default 3).
    #[serde(default)]
    pub priority: Option<i64>,
    /// Ids of tasks that must be done first.
    #[serde(default)]
    pub deps: Vec<String>,
    /// Only workers with this role (or none) take it.
    #[serde(default)]
    pub role: Option<String>,
    /// The board: a name, or a path. Default: `$CLAUDE_EDITOR_HOOK_BOARD`, else the project's.
    #[serde(default)]
    pub board: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ClaimArgs {
    /// Who claims. Default: the calling agent.
    #[serde(default)]
    pub worker: Option<String>,
    /// Only tasks with one of these roles, or none.
    #[serde(default)]
    pub roles: Vec<String>,
    /// For a worker that is not a hosted agent: how long the claim holds, in seconds
    /// (default 1800). A hosted agent's claim lasts as long as its agent-wrap.
    #[serde(default)]
    pub lease_s: Option<u64>,
    /// The board: a name, or a path. Default: `$CLAUDE_EDITOR_HOOK_BOARD`, else the project's.
    #[serde(default)]
    pub board: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DoneArgs {
    /// The task id, e.g. `t3`.
    pub id: String,
    /// The result: a summary other tasks build on.
    #[serde(default)]
    pub result: Option<String>,
    /// The claimer. Default: the calling agent.
    #[serde(default)]
    pub worker: Option<String>,
    /// The board: a name, or a path. Default: `$CLAUDE_EDITOR_HOOK_BOARD`, else the project's.
    #[serde(default)]
    pub board: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FailArgs {
    /// The task id, e.g. `t3`.
    pub id: String,
    /// Why it failed; its dependents stay blocked until a retry.
    pub reason: String,
    /// The claimer. Default: the calling agent.
    #[serde(default)]
    pub worker: Option<String>,
    /// The board: a name, or a path. Default: `$CLAUDE_EDITOR_HOOK_BOARD`, else the project's.
    #[serde(default)]
    pub board: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NoteArgs {
    /// The discovery, for everyone on the board.
    pub text: String,
    /// The author. Default: the calling agent.
    #[serde(default)]
    pub worker: Option<String>,
    /// The board: a name, or a path. Default: `$CLAUDE_EDITOR_HOOK_BOARD`, else the project's.
    #[serde(default)]
    pub board: Option<String>,
}

/// Opens the board `spec` names: a name or a path, else `$CLAUDE_EDITOR_HOOK_BOARD`,
/// else the project's.
fn open(spec: Option<&str>) -> Result<Board> {
    Board::open(&resolve(spec)?)
}

fn resolve(spec: Option<&str>) -> Result<BoardPath> {
    let env = std::env::var("CLAUDE_EDITOR_HOOK_BOARD").ok();
    let spec = spec.or(env.as_deref()).filter(|s| !s.is_empty());
    BoardPath::resolve(spec)
}

fn to_value(v: &impl serde::Serialize) -> Result<Value> {
    Ok(serde_json::to_value(v)?)
}

/// `board init GOAL --plan FILE`.
pub fn board_init(args: InitArgs) -> Result<Reply> {
    let path = resolve(args.board.as_deref())?;
    let board = Board::create(&path, &args.goal, args.plan.as_deref())?;
    Ok(Reply::new(
        format!("board {} ready", board.path()),
        json!({ "board": board.path().to_string(), "goal": args.goal }),
    ))
}

/// `board add TITLE`.
pub fn board_add(args: AddArgs) -> Result<Reply> {
    let mut board = open(args.board.as_deref())?;
    let id = board.add(&NewTask {
        id: None,
        title: args.title,
        body: args.body.unwrap_or_default(),
        priority: args.priority,
        deps: args.deps,
        role: args.role,
        context: None,
    })?;
    Ok(Reply::new(
        id.clone(),
        json!({ "id": id, "board": board.path().to_string() }),
    ))
}

/// `board claim WORKER`. `agent` is the calling hosted agent, if any: its own claim
/// lasts exactly as long as its agent-wrap, as when it drains the board itself.
pub fn board_claim(args: ClaimArgs, agent: Option<&AgentName>) -> Result<Reply> {
    let worker = args.worker.filter(|w| !w.is_empty()).context(
        "give a worker: this caller is not a hosted agent (or set CLAUDE_EDITOR_HOOK_WORKER)",
    )?;
    let mut board = open(args.board.as_deref())?;
    board.set_worker(Some(&worker))?;
    let host = match agent {
        Some(a) if a.as_str() == worker => {
            let state = StateDir::from_env()?;
            let lock = state.lock_path(a);
            lock_holder(&lock)?.map(|pid| Holder::Host { pid, lock })
        }
        _ => None,
    };
    let lease = args
        .lease_s
        .map(Duration::from_secs)
        .unwrap_or(super::DEFAULT_LEASE);
    let req = ClaimRequest {
        worker: worker.clone(),
        roles: args.roles,
        holder: host.unwrap_or(Holder::Lease(lease)),
    };
    let end = super::claim_verb(&mut board, &req, false, None)?;
    Ok(match &end {
        ClaimEnd::Claimed(c) => {
            let t = &c.task;
            let text = format!(
                "claimed {} for {worker} (attempt {}): {}\n\n{}\nWhen finished: call board_done with id \"{}\" and your result (or board_fail with a reason).",
                t.id,
                t.attempts,
                t.title,
                c.prompt(),
                t.id
            );
            Reply::new(text, json!({ "claimed": to_value(c)?, "state": "claimed" }))
        }
        ClaimEnd::NotReady(s) | ClaimEnd::Finished(s) => {
            let state = if matches!(end, ClaimEnd::Finished(_)) {
                "finished"
            } else {
                "not_ready"
            };
            Reply::new(
                end.reason(&worker),
                json!({ "claimed": null, "state": state, "summary": to_value(s)? }),
            )
        }
        ClaimEnd::TimedOut => Reply::new(
            end.reason(&worker),
            json!({ "claimed": null, "state": "not_ready" }),
        ),
    })
}

/// `board done ID RESULT`.
pub fn board_done(args: DoneArgs) -> Result<Reply> {
    let mut board = open(args.board.as_deref())?;
    board.set_worker(args.worker.as_deref())?;
    let t = board.done(&args.id, args.result.as_deref().unwrap_or(""))?;
    Ok(Reply::new(format!("task {} done", t.id), to_value(&t)?))
}

/// `board fail ID REASON`.
pub fn board_fail(args: FailArgs) -> Result<Reply> {
    let mut board = open(args.board.as_deref())?;
    board.set_worker(args.worker.as_deref())?;
    let t = board.fail(&args.id, &args.reason)?;
    Ok(Reply::new(format!("task {} failed", t.id), to_value(&t)?))
}

/// `board status`.
pub fn board_status(args: BoardArg) -> Result<Reply> {
    let status = open(args.board.as_deref())?.status()?;
    Ok(Reply::new(status.text(), to_value(&status)?))
}

/// `board report`.
pub fn board_report(args: BoardArg) -> Result<Reply> {
    let report = open(args.board.as_deref())?.report()?;
    Ok(Reply::new(report.text(), to_value(&report)?))
}

/// `board note TEXT`.
pub fn board_note(args: NoteArgs) -> Result<Reply> {
    let mut board = open(args.board.as_deref())?;
    board.set_worker(args.worker.as_deref())?;
    let author = super::note_author(args.worker.as_deref());
    board.note(&author, &args.text)?;
    Ok(Reply::new(
        format!("noted by {author}"),
        json!({ "author": author, "text": args.text }),
    ))
}

/// `board notes`.
pub fn board_notes(args: BoardArg) -> Result<Reply> {
    let notes = open(args.board.as_deref())?.notes()?;
    let text: Vec<String> = notes
        .iter()
        .map(|n| format!("{} {}: {}", super::report::stamp(n.at_us), n.author, n.text))
        .collect();
    let text = if text.is_empty() {
        "no notes yet".to_owned()
    } else {
        text.join("\n")
    };
    Ok(Reply::new(text, json!({ "notes": to_value(&notes)? })))
}
