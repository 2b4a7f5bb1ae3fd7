//! The tools. Each one is a CLI verb: its name is the verb's (`board claim` is
//! `board_claim`), it calls the library function the verb calls, and it answers with
//! the text the verb prints plus the same data as structured content. A failure is a
//! tool error (`isError`) whose text is the one line the verb prints on stderr; the
//! server itself never stops over a bad call.

use std::time::Duration;

use anyhow::Result;
use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{
    CallToolResult, ContentBlock, Implementation, ProgressNotificationParam, ServerCapabilities,
    ServerConfig,
};
use rmcp::service::RequestContext;
use rmcp::{ErrorData, RoleServer, ServerHandler, tool, tool_handler, tool_router};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Value, json};

use super::inflight::Inflight;
pub use crate::board::api::{
    AddArgs, BoardArg, ClaimArgs, DoneArgs, FailArgs, InitArgs, NoteArgs, Reply,
};
use crate::coordinator::caller::Caller;
use crate::coordinator::delegate::{Observer, Progress};
use crate::coordinator::send::{SendRequest, Sent, send};
use crate::coordinator::{CancelOnDrop, Coordinator};
use crate::state::StateDir;

/// The server: who called it, and the delegations it is waiting on.
#[derive(Clone)]
pub struct Team {
    caller: Caller,
    inflight: Inflight,
    tool_router: ToolRouter<Self>,
}

// ---- arguments: their doc comments are the schemas' descriptions ----

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DelegateArgs {
    /// An agent name, a role, or `any` (routed as `@NAME` in Ctrl-G).
    pub target: String,
    /// The task, as the agent should read it.
    pub prompt: String,
    /// Return a ticket at once; the answer arrives through `results` (and the chief's
    /// hooks), as with `@NAME&`.
    #[serde(default)]
    pub background: bool,
    /// Give up, cancelling the task, after this many seconds.
    #[serde(default)]
    pub timeout_s: Option<u64>,
}

#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NoArgs {}

// ---- results ----

/// A successful result: `text` for the model, `data` as structured content.
fn answer(text: impl Into<String>, data: Value) -> CallToolResult {
    let mut r = CallToolResult::structured(data);
    r.content = vec![ContentBlock::text(text)];
    r
}

/// A board verb's reply as a tool result.
fn reply(r: Reply) -> Result<CallToolResult> {
    Ok(answer(r.text, r.data))
}

/// A tool error with the CLI's one-line reason.
fn refuse(e: &anyhow::Error) -> CallToolResult {
    CallToolResult::error(vec![ContentBlock::text(format!("{e:#}"))])
}

/// Runs blocking `f` off the protocol's thread; its error becomes a tool error.
async fn blocking(
    f: impl FnOnce() -> Result<CallToolResult> + Send + 'static,
) -> Result<CallToolResult, ErrorData> {
    match tokio::task::spawn_blocking(f).await {
        Ok(Ok(r)) => Ok(r),
        Ok(Err(e)) => Ok(refuse(&e)),
        Err(e) => Err(ErrorData::internal_error(
            format!("the tool's thread failed: {e}"),
            None,
        )),
    }
}

/// Forwards the coordinator's progress (on its thread) to the tool (on the runtime):
/// one message per change of the agent's state, queue position or latest output line.
struct Forward {
    tx: tokio::sync::mpsc::UnboundedSender<String>,
    last: Option<String>,
}

impl Observer for Forward {
    fn update(&mut self, p: &Progress) {
        let ahead = match p.ahead {
            Some(n) if n > 0 => format!(", {n} ahead in the queue"),
            _ => String::new(),
        };
        let latest = p
            .latest_output
            .as_deref()
            .map(|l| format!(": {}", l.chars().take(200).collect::<String>()))
            .unwrap_or_default();
        let msg = format!(
            "@{} {} (task {}{ahead}){latest}",
            p.agent, p.agent_state, p.task
        );
        if self.last.as_deref() != Some(&msg) {
            let _ = self.tx.send(msg.clone());
            self.last = Some(msg);
        }
    }
}

impl Team {
    pub fn new(caller: Caller) -> Self {
        Self {
            caller,
            inflight: Inflight::default(),
            tool_router: Self::tool_router(),
        }
    }

    pub fn inflight(&self) -> Inflight {
        self.inflight.clone()
    }

    /// The worker a board tool acts as: the one given, else the calling agent.
    fn worker(&self, given: Option<String>) -> Option<String> {
        given
            .filter(|w| !w.is_empty())
            .or_else(|| self.caller.agent().map(|a| a.to_string()))
            .or_else(|| std::env::var("CLAUDE_EDITOR_HOOK_WORKER").ok())
            .filter(|w| !w.is_empty())
    }

    /// Waits for a synchronous delegation, forwarding its progress and its cancellation.
    async fn delegate_and_wait(
        &self,
        req: SendRequest,
        ctx: RequestContext<RoleServer>,
    ) -> Result<CallToolResult, ErrorData> {
        let state = match StateDir::from_env() {
            Ok(s) => s,
            Err(e) => return Ok(refuse(&e)),
        };
        let coordinator = Coordinator::new(state);
        let tx = coordinator.sender();
        let entry = self.inflight.add(tx.clone());
        let (progress_tx, mut progress_rx) = tokio::sync::mpsc::unbounded_channel();
        let caller = self.caller.clone();
        let token = ctx.meta.get_progress_token();
        // Only a caller that asked for progress gets the watches that feed it.
        let wants_progress = token.is_some();
        let mut handle = tokio::task::spawn_blocking(move || {
            let _entry = entry;
            let mut forward = Forward {
                tx: progress_tx,
                last: None,
            };
            let observer: Option<&mut dyn Observer> = if wants_progress {
                Some(&mut forward)
            } else {
                None
            };
            send(&coordinator, &caller, &req, observer)
        });
        let cancel = CancelOnDrop::new(tx, "the delegate tool call was cancelled");
        let mut step = 0.0;
        let mut cancelled = false;
        let outcome = loop {
            tokio::select! {
                r = &mut handle => break r,
                Some(msg) = progress_rx.recv() => {
                    if let Some(token) = &token {
                        step += 1.0;
                        let p = ProgressNotificationParam::new(token.clone(), step).with_message(msg);
                        let _ = ctx.peer.notify_progress(p).await;
                    }
                }
                _ = ctx.ct.cancelled(), if !cancelled => {
                    cancelled = true;
                    cancel.cancel("the caller cancelled the delegate tool call");
                }
            }
        };
        drop(cancel);
        match outcome {
            Err(e) => Err(ErrorData::internal_error(
                format!("the delegation's thread failed: {e}"),
                None,
            )),
            Ok(Err(e)) => Ok(refuse(&e)),
            Ok(Ok(sent)) => Ok(sent_result(&sent)),
        }
    }
}

/// A finished (or backgrounded) delegation as a tool result.
fn sent_result(sent: &Sent) -> CallToolResult {
    if let Some(why) = sent.failure() {
        let mut r = CallToolResult::error(vec![ContentBlock::text(why)]);
        if let Sent::Finished { agent, report } = sent {
            r.structured_content = Some(json!({
                "task_id": report.task, "agent": agent, "outcome": report.done.outcome,
                "reason": report.done.reason,
            }));
        }
        return r;
    }
    match sent {
        Sent::Background(task) => answer(
            format!(
                "task {} @{} in the background; call `results` for its answer",
                task.id, task.agent
            ),
            json!({ "task_id": task.id, "agent": task.agent, "background": true }),
        ),
        Sent::Finished { agent, report } => {
            let text = report.answer.clone().unwrap_or_default();
            answer(
                text.clone(),
                json!({
                    "task_id": report.task, "agent": agent, "outcome": report.done.outcome,
                    "answer": text, "elapsed_ms": report.elapsed.as_millis() as u64,
                }),
            )
        }
    }
}

#[tool_router]
impl Team {
    #[tool(
        description = "Delegate a task to an agent (a name, a role, or `any`) and wait for its answer, which is the result. With background=true, return a ticket at once and collect the answer later with `results`. CLI: `claude-editor-hook send TARGET PROMPT`."
    )]
    async fn delegate(
        &self,
        Parameters(args): Parameters<DelegateArgs>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<CallToolResult, ErrorData> {
        let req = SendRequest {
            target: args.target,
            prompt: args.prompt,
            timeout: args.timeout_s.filter(|&t| t > 0).map(Duration::from_secs),
            background: args.background,
            chief: None,
        };
        if !req.background {
            return self.delegate_and_wait(req, ctx).await;
        }
        let caller = self.caller.clone();
        blocking(move || {
            let coordinator = Coordinator::new(StateDir::from_env()?);
            Ok(sent_result(&send(&coordinator, &caller, &req, None)?))
        })
        .await
    }

    #[tool(
        description = "Your finished background results (from delegate with background=true), each delivered once, and how many still run. CLI: `claude-editor-hook results`."
    )]
    async fn results(
        &self,
        Parameters(_): Parameters<NoArgs>,
    ) -> Result<CallToolResult, ErrorData> {
        let caller = self.caller.clone();
        blocking(move || {
            let state = StateDir::from_env()?;
            let taken = crate::coordinator::results::collect(&state, &caller.outbox())?;
            Ok(answer(taken.text(), taken.json()))
        })
        .await
    }

    #[tool(
        description = "Every agent with its state (idle, working, ...), task, queue and window, the background tickets, and the board's progress. CLI: `claude-editor-hook status`."
    )]
    async fn team_status(
        &self,
        Parameters(_): Parameters<NoArgs>,
    ) -> Result<CallToolResult, ErrorData> {
        blocking(move || {
            let doc = crate::team::status::snapshot(&StateDir::from_env()?)?;
            Ok(answer(crate::team::status::text(&doc, true), doc))
        })
        .await
    }

    #[tool(
        description = "Start a board with its goal and, optionally, a master plan in markdown. CLI: `claude-editor-hook board init GOAL --plan FILE`."
    )]
    async fn board_init(
        &self,
        Parameters(args): Parameters<InitArgs>,
    ) -> Result<CallToolResult, ErrorData> {
        blocking(move || reply(crate::board::api::board_init(args)?)).await
    }

    #[tool(
        description = "Add a task to the board (title, body, priority 1 = highest, dependencies, role); returns its id. CLI: `claude-editor-hook board add TITLE`."
    )]
    async fn board_add(
        &self,
        Parameters(args): Parameters<AddArgs>,
    ) -> Result<CallToolResult, ErrorData> {
        blocking(move || reply(crate::board::api::board_add(args)?)).await
    }

    #[tool(
        description = "Claim the highest-priority ready task on the board, exactly once, and get it with the goal and its dependencies' results. When finished, call board_done (or board_fail). Returns claimed=null when nothing is ready. CLI: `claude-editor-hook board claim WORKER`."
    )]
    async fn board_claim(
        &self,
        Parameters(args): Parameters<ClaimArgs>,
    ) -> Result<CallToolResult, ErrorData> {
        let args = ClaimArgs {
            worker: self.worker(args.worker),
            ..args
        };
        let agent = self.caller.agent().cloned();
        blocking(move || reply(crate::board::api::board_claim(args, agent.as_ref())?)).await
    }

    #[tool(
        description = "Mark a task you claimed done, with its result (a summary the tasks that depend on it receive). CLI: `claude-editor-hook board done ID RESULT`."
    )]
    async fn board_done(
        &self,
        Parameters(args): Parameters<DoneArgs>,
    ) -> Result<CallToolResult, ErrorData> {
        let args = DoneArgs {
            worker: self.worker(args.worker),
            ..args
        };
        blocking(move || reply(crate::board::api::board_done(args)?)).await
    }

    #[tool(
        description = "Mark a task you claimed failed, with the reason; its dependents stay blocked until a retry. CLI: `claude-editor-hook board fail ID REASON`."
    )]
    async fn board_fail(
        &self,
        Parameters(args): Parameters<FailArgs>,
    ) -> Result<CallToolResult, ErrorData> {
        let args = FailArgs {
            worker: self.worker(args.worker),
            ..args
        };
        blocking(move || reply(crate::board::api::board_fail(args)?)).await
    }

    #[tool(
        description = "The board's counts per status and its ready queue. CLI: `claude-editor-hook board status`."
    )]
    async fn board_status(
        &self,
        Parameters(args): Parameters<BoardArg>,
    ) -> Result<CallToolResult, ErrorData> {
        blocking(move || reply(crate::board::api::board_status(args)?)).await
    }

    #[tool(
        description = "The board's goal, every task in dependency order with its outcome, then the failures. CLI: `claude-editor-hook board report`."
    )]
    async fn board_report(
        &self,
        Parameters(args): Parameters<BoardArg>,
    ) -> Result<CallToolResult, ErrorData> {
        blocking(move || reply(crate::board::api::board_report(args)?)).await
    }

    #[tool(
        description = "Share a discovery (a fact others on the board should know) with everyone on the board. CLI: `claude-editor-hook board note TEXT`."
    )]
    async fn board_note(
        &self,
        Parameters(args): Parameters<NoteArgs>,
    ) -> Result<CallToolResult, ErrorData> {
        let args = NoteArgs {
            worker: self.worker(args.worker),
            ..args
        };
        blocking(move || reply(crate::board::api::board_note(args)?)).await
    }

    #[tool(
        description = "The discoveries shared on the board, oldest first. CLI: `claude-editor-hook board notes`."
    )]
    async fn board_notes(
        &self,
        Parameters(args): Parameters<BoardArg>,
    ) -> Result<CallToolResult, ErrorData> {
        blocking(move || reply(crate::board::api::board_notes(args)?)).await
    }
}

#[tool_handler(router = self.tool_router)]
impl ServerHandler for Team {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(Implementation::new(
                "claude-editor-hook",
                env!("CARGO_PKG_VERSION"),
            ))
            .with_instructions(format!(
                "Coordination for a team of Claude Code agents (you are {}): delegate tasks to \
                 agents and collect results, see the team's status, and work through the \
                 shared board (claim a task, then board_done or board_fail).",
                self.caller.describe()
            ))
    }
}
