//! The JSON API under `/api/v1` (docs/web.md, "The API"). Every handler calls the
//! library function of its CLI verb on tokio's blocking threads; the board handlers take
//! the MCP tools' argument types ([`crate::board::api`]). Errors are `{"error": "…"}`
//! with a 4xx status that says whose fault it is.

use std::io::{Read, Seek, SeekFrom};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, FromRequestParts, Request, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use super::App;
use crate::board::api::{AddArgs, BoardArg, ClaimArgs, DoneArgs, FailArgs, InitArgs, NoteArgs};
use crate::coordinator::caller::Caller;
use crate::coordinator::send::{SendRequest, Sent};
use crate::coordinator::{CancelOnDrop, Coordinator};
use crate::mcp::tools::DelegateArgs;
use crate::state::{AgentName, AgentStatus, ChiefId, Done, StateDir, TaskEnvelope, TaskId};

/// The chief whose outbox gets the tasks sent from the page.
pub const WEB_CHIEF: &str = "web";
/// The most output one `agents/NAME/output` call returns.
pub const OUTPUT_CHUNK: u64 = 256 << 10;
/// The most of a result `tasks/ID` returns (the whole is in `result.txt`, and `results`
/// delivers it whole).
pub const RESULT_CAP: u64 = 4 << 20;

/// An error answer: a status and one line.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
        }
    }

    /// A library error as the CLI would print it, with the status its words say: an
    /// unknown name or id is 404, an invalid one 400, anything else (a refusal, an
    /// offline agent, a finished task) 409.
    pub fn from_verb(e: &anyhow::Error) -> Self {
        let message = format!("{e:#}");
        let status = if [
            "unknown ",
            "no agent",
            "no task",
            "no board",
            "no background task",
        ]
        .iter()
        .any(|p| message.starts_with(p))
        {
            StatusCode::NOT_FOUND
        } else if message.starts_with("invalid ") || message.starts_with("give a ") {
            StatusCode::BAD_REQUEST
        } else {
            StatusCode::CONFLICT
        };
        Self { status, message }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(json!({ "error": self.message }))).into_response()
    }
}

type ApiResult = Result<Response, ApiError>;

/// A JSON body whose rejections are [`ApiError`]s: 415 without `application/json`, 413
/// over the cap, 400 for bad JSON or a missing, mistyped or unknown field.
pub struct Body<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Body<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let value = match Json::<Value>::from_request(req, state).await {
            Ok(Json(v)) => v,
            Err(rejection) => return Err(reject(rejection)),
        };
        // An object only: serde would read an array's items as the fields, in order.
        if !value.is_object() {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "the body must be a JSON object",
            ));
        }
        serde_json::from_value(value)
            .map(Body)
            .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, format!("bad body: {e}")))
    }
}

/// A query whose rejection is a JSON 400.
pub struct Query<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for Query<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Query(v)| Query(v))
            .map_err(|r| ApiError::new(StatusCode::BAD_REQUEST, r.body_text()))
    }
}

/// A path parameter whose rejection is a JSON 400.
pub struct Path<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for Path<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Path(v)| Path(v))
            .map_err(|r| ApiError::new(StatusCode::BAD_REQUEST, r.body_text()))
    }
}

fn reject(r: JsonRejection) -> ApiError {
    let status = match r.status() {
        StatusCode::UNPROCESSABLE_ENTITY => StatusCode::BAD_REQUEST,
        s => s,
    };
    let message = match status {
        StatusCode::PAYLOAD_TOO_LARGE => format!("the body is over {} bytes", super::MAX_BODY),
        StatusCode::UNSUPPORTED_MEDIA_TYPE => {
            "the body must be JSON (Content-Type: application/json)".to_owned()
        }
        _ => r.body_text(),
    };
    ApiError::new(status, message)
}

/// Runs blocking `f` (state files, SQLite, a coordinator's wait) off the runtime.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f).await.unwrap_or_else(|e| {
        Err(ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("the request's thread failed: {e}"),
        ))
    })
}

fn verb<T>(r: Result<T>) -> Result<T, ApiError> {
    r.map_err(|e| ApiError::from_verb(&e))
}

fn ok(v: Value) -> ApiResult {
    Ok(Json(v).into_response())
}

fn parse_task(id: &str) -> Result<TaskId, ApiError> {
    TaskId::parse(id).map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, format!("{e:#}")))
}

fn parse_agent(name: &str) -> Result<AgentName, ApiError> {
    AgentName::parse(name).map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, format!("{e:#}")))
}

/// How long the team hub keeps an agent's worktree document (ahead/behind, two git
/// runs): the document is recomputed up to 40 times a second while an agent streams its
/// output, and a branch moves far less often.
pub const WORKTREE_KEPT: Duration = Duration::from_secs(2);

/// The worktree documents the team hub keeps, each with when it was made.
#[derive(Default)]
pub struct Worktrees(std::collections::HashMap<AgentName, (std::time::Instant, Value)>);

impl Worktrees {
    fn get(&mut self, name: &AgentName) -> Value {
        self.get_at(name, std::time::Instant::now(), || {
            crate::team::status::worktree_json(name)
        })
    }

    /// The kept document of `name` at `now`, or a new one from `make`.
    fn get_at(
        &mut self,
        name: &AgentName,
        now: std::time::Instant,
        make: impl FnOnce() -> Value,
    ) -> Value {
        match self.0.get(name) {
            Some((at, doc)) if now.saturating_duration_since(*at) < WORKTREE_KEPT => doc.clone(),
            _ => {
                let doc = make();
                self.0.insert(name.clone(), (now, doc.clone()));
                doc
            }
        }
    }
}

/// The team as `GET status` and the `team` event show it: `status --json`, with the
/// agents in `top`'s order (those that need the human first) and each one's latest
/// output line. Also returns the directories whose changes change it. With `kept`,
/// worktree documents up to [`WORKTREE_KEPT`] old are used.
pub fn team_doc(state: &StateDir, kept: Option<&mut Worktrees>) -> (Value, Vec<PathBuf>) {
    let team = crate::view::model::load(state);
    let dirs = crate::view::model::watched_dirs(state, &team);
    let snapshot = match kept {
        Some(kept) => crate::team::status::snapshot_with(state, &mut |n| kept.get(n)),
        None => crate::team::status::snapshot(state),
    };
    let mut doc = match snapshot {
        Ok(doc) => doc,
        Err(e) => return (json!({ "version": 1, "error": format!("{e:#}") }), dirs),
    };
    if let Some(agents) = doc["agents"].as_array_mut() {
        let rank = |a: &Value| {
            team.rows
                .iter()
                .position(|r| a["name"] == r.name.as_str())
                .unwrap_or(usize::MAX)
        };
        agents.sort_by_key(rank);
        for a in agents.iter_mut() {
            let latest = team
                .rows
                .iter()
                .find(|r| a["name"] == r.name.as_str())
                .map(|r| r.latest.clone());
            a["latest"] = latest.into();
        }
    }
    (doc, dirs)
}

pub async fn status(State(app): State<Arc<App>>) -> ApiResult {
    let state = app.state.clone();
    ok(blocking(move || Ok(team_doc(&state, None).0)).await?)
}

/// `GET tasks/ID`: the envelope, the outcome and the result of one task.
pub async fn task(State(app): State<Arc<App>>, Path(id): Path<String>) -> ApiResult {
    let id = parse_task(&id)?;
    let state = app.state.clone();
    ok(blocking(move || {
        let envelope: TaskEnvelope = verb(crate::state::read_json(&state.task_path(&id)))?
            .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, format!("no task {id}")))?;
        let done: Option<Done> = verb(crate::state::read_json(&state.done_path(&id)))?;
        let (result, lossy, truncated) = match &done {
            Some(_) => read_capped(&state.result_path(&id), 0, RESULT_CAP)
                .map(|(text, lossy, _, more)| (Some(text), lossy, more))
                .unwrap_or((None, false, false)),
            None => (None, false, false),
        };
        Ok(json!({
            "id": id, "envelope": envelope, "done": done, "result": result,
            "result_lossy": lossy, "result_truncated": truncated,
        }))
    })
    .await?)
}

/// Reads at most `max` bytes of `path` from `from`: the text (invalid UTF-8 replaced),
/// whether any was, the bytes read, and whether more follows. Never through a symlink.
fn read_capped(path: &std::path::Path, from: u64, max: u64) -> Option<(String, bool, u64, bool)> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(path)
        .ok()?;
    let len = f.metadata().ok().filter(|m| m.is_file())?.len();
    f.seek(SeekFrom::Start(from.min(len))).ok()?;
    let mut buf = Vec::new();
    (&mut f).take(max).read_to_end(&mut buf).ok()?;
    let n = buf.len() as u64;
    let (text, lossy) = match String::from_utf8(buf) {
        Ok(s) => (s, false),
        Err(e) => (String::from_utf8_lossy(e.as_bytes()).into_owned(), true),
    };
    Some((text, lossy, n, from.min(len) + n < len))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutputQuery {
    #[serde(default)]
    pub since: u64,
}

/// `GET agents/NAME/output?since=N`: the output of the agent's current (or last) task
/// from byte `since`, as `tail NAME` prints it.
pub async fn output(
    State(app): State<Arc<App>>,
    Path(name): Path<String>,
    Query(q): Query<OutputQuery>,
) -> ApiResult {
    let agent = parse_agent(&name)?;
    let state = app.state.clone();
    ok(blocking(move || {
        let status = verb(AgentStatus::load(&state, &agent))?
            .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, format!("no agent @{agent}")))?;
        let Some(id) = status
            .task
            .map(|t| t.id)
            .or_else(|| status.recent.first().map(|t| t.id.clone()))
        else {
            return Ok(
                json!({ "agent": agent, "task": null, "since": q.since, "next": q.since,
                "text": "", "lossy": false, "done": true }),
            );
        };
        let done = state.done_path(&id).exists();
        let (text, lossy, n, _) =
            read_capped(&state.output_path(&id), q.since, OUTPUT_CHUNK).unwrap_or_default();
        Ok(
            json!({ "agent": agent, "task": id, "since": q.since, "next": q.since + n,
            "text": text, "lossy": lossy, "done": done }),
        )
    })
    .await?)
}

/// `POST send`: `send TARGET PROMPT`, in the background (202 and the ticket; the answer
/// goes to the chief `web`) or waiting for the answer.
pub async fn send(State(app): State<Arc<App>>, Body(args): Body<DelegateArgs>) -> ApiResult {
    let req = SendRequest {
        target: args.target,
        prompt: args.prompt,
        timeout: args.timeout_s.filter(|&t| t > 0).map(Duration::from_secs),
        background: args.background,
        chief: Some(ChiefId::parse(WEB_CHIEF).expect("a plain id")),
    };
    parse_agent(&req.target)?;
    let coordinator = Coordinator::new(app.state.clone());
    let tx = coordinator.sender();
    let entry = app.inflight.add(tx.clone());
    // The client going away (its connection closed) cancels the task it waited on, as
    // Esc does in Ctrl-G.
    let _cancel = (!req.background)
        .then(|| CancelOnDrop::new(tx, "the web client that sent the task went away"));
    let sent = blocking(move || {
        let _entry = entry;
        verb(crate::coordinator::send::send(
            &coordinator,
            &Caller::Chief,
            &req,
            None,
        ))
    })
    .await?;
    Ok(match sent {
        Sent::Background(task) => (
            StatusCode::ACCEPTED,
            Json(
                json!({ "task_id": task.id, "agent": task.agent, "background": true,
                "chief": WEB_CHIEF }),
            ),
        )
            .into_response(),
        Sent::Finished { agent, report } => Json(json!({
            "task_id": report.task, "agent": agent, "outcome": report.done.outcome,
            "answer": report.answer, "reason": report.done.reason,
            "elapsed_ms": report.elapsed.as_millis() as u64,
        }))
        .into_response(),
    })
}

/// `POST tasks/ID/cancel`: `cancel ID`.
pub async fn cancel(State(app): State<Arc<App>>, Path(id): Path<String>) -> ApiResult {
    let id = parse_task(&id)?;
    let state = app.state.clone();
    ok(blocking(move || {
        if !state.task_path(&id).exists() {
            return Err(ApiError::new(
                StatusCode::NOT_FOUND,
                format!("no task {id}"),
            ));
        }
        let done = verb(crate::coordinator::cancel::cancel_task(
            &state,
            &id,
            "cancelled from the web page",
        ))?;
        Ok(json!({ "task_id": id, "outcome": done.outcome, "reason": done.reason }))
    })
    .await?)
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResultsArgs {
    /// Whose results (default `web`, the page's).
    #[serde(default)]
    pub chief: Option<String>,
    /// Just this background task's result, whichever chief it belongs to.
    #[serde(default)]
    pub ticket: Option<String>,
}

/// `POST results`: `results --chief` (or `--ticket`): finished background results,
/// each delivered once.
pub async fn results(State(app): State<Arc<App>>, Body(args): Body<ResultsArgs>) -> ApiResult {
    let state = app.state.clone();
    ok(blocking(move || {
        let taken = match &args.ticket {
            Some(t) => verb(crate::coordinator::results::collect_ticket(
                &state,
                &parse_task(t)?,
            ))?,
            None => {
                let chief = ChiefId::parse(args.chief.as_deref().unwrap_or(WEB_CHIEF))
                    .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, format!("{e:#}")))?;
                verb(crate::coordinator::results::collect(&state, &chief))?
            }
        };
        Ok(taken.json())
    })
    .await?)
}

/// A board verb's data, or its error.
async fn board(
    f: impl FnOnce() -> Result<crate::board::api::Reply> + Send + 'static,
) -> Result<Value, ApiError> {
    blocking(move || verb(f()).map(|r| r.data)).await
}

pub async fn board_status(Query(args): Query<BoardArg>) -> ApiResult {
    ok(board(move || crate::board::api::board_status(args)).await?)
}

pub async fn board_report(Query(args): Query<BoardArg>) -> ApiResult {
    ok(board(move || crate::board::api::board_report(args)).await?)
}

pub async fn board_notes(Query(args): Query<BoardArg>) -> ApiResult {
    ok(board(move || crate::board::api::board_notes(args)).await?)
}

pub async fn board_init(Body(args): Body<InitArgs>) -> ApiResult {
    ok(board(move || crate::board::api::board_init(args)).await?)
}

pub async fn board_add(Body(args): Body<AddArgs>) -> ApiResult {
    let data = board(move || crate::board::api::board_add(args)).await?;
    Ok((StatusCode::CREATED, Json(data)).into_response())
}

pub async fn board_claim(Body(args): Body<ClaimArgs>) -> ApiResult {
    ok(board(move || crate::board::api::board_claim(args, None)).await?)
}

pub async fn board_done(Body(args): Body<DoneArgs>) -> ApiResult {
    ok(board(move || crate::board::api::board_done(args)).await?)
}

pub async fn board_fail(Body(args): Body<FailArgs>) -> ApiResult {
    ok(board(move || crate::board::api::board_fail(args)).await?)
}

pub async fn board_note(Body(args): Body<NoteArgs>) -> ApiResult {
    ok(board(move || crate::board::api::board_note(args)).await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_worktree_document_is_kept_two_seconds() {
        let mut kept = Worktrees::default();
        let a = AgentName::parse("a").unwrap();
        let t0 = std::time::Instant::now();
        assert_eq!(kept.get_at(&a, t0, || json!(1)), json!(1));
        let soon = t0 + Duration::from_millis(1999);
        assert_eq!(kept.get_at(&a, soon, || unreachable!("kept")), json!(1));
        let later = t0 + WORKTREE_KEPT;
        assert_eq!(kept.get_at(&a, later, || json!(2)), json!(2));
        let b = AgentName::parse("b").unwrap();
        assert_eq!(kept.get_at(&b, later, || json!(3)), json!(3));
    }

    #[test]
    fn verb_errors_say_whose_fault_by_their_status() {
        let s = |m: &str| ApiError::from_verb(&anyhow::anyhow!("{m}")).status;
        assert_eq!(
            s("unknown agent or role @x (agents: a; roles: none)"),
            StatusCode::NOT_FOUND
        );
        assert_eq!(s("no task t-1"), StatusCode::NOT_FOUND);
        assert_eq!(s("invalid task id \"..\""), StatusCode::BAD_REQUEST);
        assert_eq!(s("task t-1 already ended: ok"), StatusCode::CONFLICT);
    }
}
