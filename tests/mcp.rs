//! `claude-editor-hook mcp` from the official SDK's own client (rmcp), spawning the
//! real binary over stdio: the handshake, every tool's schema and call, a bad argument
//! for every tool, cancellation, the caller's exit, concurrency, and the refusals.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rmcp::model::{
    CallToolRequestParams, CallToolResult, ClientRequest, ProgressNotificationParam, Request,
};
use rmcp::service::{NotificationContext, PeerRequestOptions, RunningService};
use rmcp::transport::TokioChildProcess;
use rmcp::{ClientHandler, RoleClient, ServiceExt};
use serde_json::{Value, json};

use crate::fixture::*;
use crate::helper::wait::wait_until;

/// Every tool, by the CLI verb it is.
pub const TOOLS: [&str; 12] = ceh::mcp::TOOL_NAMES;

/// A client that records the progress notifications it gets.
#[derive(Clone, Default)]
pub struct Client {
    pub progress: Arc<Mutex<Vec<ProgressNotificationParam>>>,
}

impl ClientHandler for Client {
    async fn on_progress(
        &self,
        params: ProgressNotificationParam,
        _context: NotificationContext<RoleClient>,
    ) {
        self.progress.lock().unwrap().push(params);
    }
}

pub type Session = RunningService<RoleClient, Client>;

/// The server's environment: the test's state directory and a board of its own.
pub fn board_dir(env: &Env) -> PathBuf {
    env.dir.path().join("board")
}

/// Spawns `claude-editor-hook mcp` with `vars` and initializes a client session.
pub async fn connect(env: &Env, vars: &[(&str, &str)]) -> (Session, Client) {
    let mut cmd = tokio::process::Command::new(HOOK);
    cmd.arg("mcp")
        .env("CLAUDE_AGENTS_DIR", &env.state)
        .env("CLAUDE_EDITOR_HOOK_BOARD", board_dir(env))
        .env("XDG_CONFIG_HOME", env.dir.path().join("config"))
        .env_remove("CLAUDE_EDITOR_HOOK_AGENT")
        .env_remove("AGENT_WRAP_AGENT_DIR")
        .env_remove("AGENT_NAME")
        .env_remove("TMUX")
        .env_remove("TMUX_PANE");
    for (k, v) in vars {
        cmd.env(k, v);
    }
    let transport = TokioChildProcess::new(cmd).expect("spawn claude-editor-hook mcp");
    let client = Client::default();
    let session = client
        .clone()
        .serve(transport)
        .await
        .expect("initialize the MCP session");
    (session, client)
}

/// Calls `name` with `args` and returns the result (a tool error is a result too).
pub async fn call(session: &Session, name: &str, args: Value) -> CallToolResult {
    let args = args.as_object().cloned().expect("arguments are an object");
    session
        .call_tool(CallToolRequestParams::new(name.to_owned()).with_arguments(args))
        .await
        .unwrap_or_else(|e| panic!("calling {name}: {e}"))
}

/// The text of a result's content.
pub fn text_of(r: &CallToolResult) -> String {
    r.content
        .iter()
        .filter_map(|c| c.as_text().map(|t| t.text.clone()))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Asserts `r` succeeded and returns its structured content.
pub fn ok(name: &str, r: &CallToolResult) -> Value {
    assert_eq!(r.is_error, Some(false), "{name} failed: {}", text_of(r));
    r.structured_content
        .clone()
        .unwrap_or_else(|| panic!("{name} has no structured content"))
}

/// Asserts `r` is a tool error and returns its text.
pub fn tool_error(name: &str, r: &CallToolResult) -> String {
    assert_eq!(r.is_error, Some(true), "{name} should have failed: {r:?}");
    text_of(r)
}

pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// The CLI's stderr reason for `args`, without the program prefix.
fn cli_reason(env: &Env, args: &[&str]) -> String {
    let out = env
        .cmd(HOOK)
        .args(args)
        .env("CLAUDE_EDITOR_HOOK_BOARD", board_dir(env))
        .output()
        .unwrap();
    assert!(!out.status.success(), "{args:?} should fail");
    text(&out.stderr)
        .trim()
        .trim_start_matches("claude-editor-hook: ")
        .to_owned()
}

fn cli_json(env: &Env, args: &[&str]) -> Value {
    let out = env
        .cmd(HOOK)
        .args(args)
        .env("CLAUDE_EDITOR_HOOK_BOARD", board_dir(env))
        .output()
        .unwrap();
    assert!(out.status.success(), "{args:?}: {}", text(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn initialize_lists_every_tool_with_a_valid_schema() {
    let env = Env::new();
    runtime().block_on(async {
        let (session, _) = connect(&env, &[]).await;
        let info = session.peer_info().expect("the server's initialize result");
        assert_eq!(
            info.server_info.as_ref().unwrap().name,
            "claude-editor-hook"
        );
        assert!(info.capabilities.tools.is_some());
        let tools = session.list_all_tools().await.unwrap();
        let names: BTreeSet<&str> = tools.iter().map(|t| t.name.as_ref()).collect();
        assert_eq!(names, TOOLS.iter().copied().collect::<BTreeSet<_>>());
        for tool in &tools {
            let name = tool.name.as_ref();
            let description = tool.description.as_deref().unwrap_or_default();
            assert!(
                description.contains("CLI: `claude-editor-hook "),
                "{name}: the description names its CLI verb: {description}"
            );
            check_schema(name, &Value::Object((*tool.input_schema).clone()));
        }
        session.cancel().await.unwrap();
    });
}

/// A tool's input schema: a JSON Schema object whose every property has a type and
/// a description, whose required properties exist, and which refuses unknown ones.
fn check_schema(name: &str, schema: &Value) {
    assert_eq!(schema["type"], "object", "{name}: {schema}");
    assert_eq!(schema["additionalProperties"], false, "{name}: {schema}");
    let props = schema["properties"].as_object();
    let props = match props {
        Some(p) => p.clone(),
        None => {
            assert!(
                matches!(name, "results" | "team_status"),
                "{name} has no properties"
            );
            serde_json::Map::new()
        }
    };
    for (prop, s) in &props {
        assert!(
            s["type"].is_string() || s["type"].is_array(),
            "{name}.{prop} has a type: {s}"
        );
        assert!(
            s["description"].as_str().is_some_and(|d| !d.is_empty()),
            "{name}.{prop} has a description: {s}"
        );
        if s["type"] == "array" {
            assert_eq!(s["items"]["type"], "string", "{name}.{prop}: {s}");
        }
    }
    for req in schema["required"].as_array().into_iter().flatten() {
        let req = req.as_str().unwrap();
        assert!(
            props.contains_key(req),
            "{name}: required {req} is a property"
        );
    }
}

#[test]
fn every_tool_answers_as_its_cli_verb() {
    let env = Env::new();
    let _demo = env.agent("helper", &["--demo", "--demo-delay-ms", "0"]);
    runtime().block_on(async {
        let (s, client) = connect(&env, &[]).await;
        let init = ok(
            "board_init",
            &call(
                &s,
                "board_init",
                json!({"goal": "ship it", "plan": "# plan"}),
            )
            .await,
        );
        assert!(init["board"].as_str().unwrap().ends_with("board.db"));
        let first = ok(
            "board_add",
            &call(&s, "board_add", json!({"title": "design", "priority": 1})).await,
        );
        let t1 = first["id"].as_str().unwrap().to_owned();
        let second = call(
            &s,
            "board_add",
            json!({"title": "build", "body": "after the design", "deps": [t1]}),
        )
        .await;
        let t2 = ok("board_add", &second)["id"].as_str().unwrap().to_owned();
        assert_eq!(text_of(&second), t2, "the text is what `board add` prints");

        let claim = call(&s, "board_claim", json!({"worker": "w1"})).await;
        let claimed = ok("board_claim", &claim);
        assert_eq!(claimed["state"], "claimed");
        assert_eq!(claimed["claimed"]["task"]["id"], t1.as_str());
        assert!(
            claimed["claimed"]["goal"]
                .as_str()
                .unwrap()
                .contains("ship it"),
            "{claimed}"
        );
        assert!(
            text_of(&claim).contains("board_done"),
            "{}",
            text_of(&claim)
        );
        // The same exactly-once claim the CLI makes: nothing else is ready.
        let none = ok(
            "board_claim",
            &call(&s, "board_claim", json!({"worker": "w2"})).await,
        );
        assert_eq!(none["state"], "not_ready");
        assert!(none["claimed"].is_null());

        let done = call(
            &s,
            "board_done",
            json!({"id": t1, "result": "drawn", "worker": "w1"}),
        )
        .await;
        assert_eq!(text_of(&done), format!("task {t1} done"));
        assert_eq!(ok("board_done", &done)["status"], "done");
        let second_claim = ok(
            "board_claim",
            &call(&s, "board_claim", json!({"worker": "w2"})).await,
        );
        assert_eq!(second_claim["claimed"]["task"]["id"], t2.as_str());
        assert_eq!(second_claim["claimed"]["deps"][0]["result"], "drawn");
        let failed = call(
            &s,
            "board_fail",
            json!({"id": t2, "reason": "no parts", "worker": "w2"}),
        )
        .await;
        assert_eq!(text_of(&failed), format!("task {t2} failed"));

        let noted = ok(
            "board_note",
            &call(
                &s,
                "board_note",
                json!({"text": "parts are late", "worker": "w2"}),
            )
            .await,
        );
        assert_eq!(noted["author"], "w2");
        let notes = ok("board_notes", &call(&s, "board_notes", json!({})).await);
        assert_eq!(notes["notes"][0]["text"], "parts are late");
        assert_eq!(
            notes,
            json!({"notes": cli_json(&env, &["board", "notes", "--json"])["notes"]})
        );

        // Status and report are the CLI's documents.
        let status = ok("board_status", &call(&s, "board_status", json!({})).await);
        assert_eq!(status, cli_json(&env, &["board", "status", "--json"]));
        let report = ok("board_report", &call(&s, "board_report", json!({})).await);
        let cli_report = cli_json(&env, &["board", "report", "--json"]);
        assert_eq!(report["tasks"], cli_report["tasks"]);
        assert_eq!(report["goal"], cli_report["goal"]);

        let team = call(&s, "team_status", json!({})).await;
        let doc = ok("team_status", &team);
        assert_eq!(doc["agents"][0]["name"], "helper");
        assert!(text_of(&team).contains("helper"), "{}", text_of(&team));

        // A synchronous delegation: the demo agent's answer is the result, with progress.
        let answer = call(
            &s,
            "delegate",
            json!({"target": "helper", "prompt": "say hi"}),
        )
        .await;
        let out = ok("delegate", &answer);
        assert_eq!(out["outcome"], "ok");
        assert_eq!(out["agent"], "helper");
        assert!(text_of(&answer).contains("say hi"), "{}", text_of(&answer));
        assert!(
            !client.progress.lock().unwrap().is_empty(),
            "progress was notified while waiting"
        );
        // In the background: a ticket now, the answer through `results`, once.
        let ticket = ok(
            "delegate",
            &call(
                &s,
                "delegate",
                json!({"target": "helper", "prompt": "later", "background": true}),
            )
            .await,
        );
        let id = ticket["task_id"].as_str().unwrap().to_owned();
        wait_until(SECS, "the background task to end", || {
            env.state
                .join("tasks")
                .join(&id)
                .join("done.json")
                .exists()
                .then_some(())
        });
        let results = ok("results", &call(&s, "results", json!({})).await);
        assert_eq!(results["results"][0]["task_id"], id.as_str());
        assert!(
            results["results"][0]["answer"]
                .as_str()
                .unwrap()
                .contains("later")
        );
        let again = ok("results", &call(&s, "results", json!({})).await);
        assert_eq!(again["results"], json!([]), "delivered once");
        s.cancel().await.unwrap();
    });
}

#[test]
fn a_bad_argument_for_every_tool_is_the_clis_reason_and_the_server_carries_on() {
    let env = Env::new();
    runtime().block_on(async {
        let (s, _) = connect(&env, &[]).await;
        // Before the board exists, a board tool gives the CLI's reason.
        let e = tool_error("board_status", &call(&s, "board_status", json!({})).await);
        assert_eq!(e, cli_reason(&env, &["board", "status"]));
        ok(
            "board_init",
            &call(&s, "board_init", json!({"goal": "g"})).await,
        );
        let e = tool_error(
            "board_init",
            &call(&s, "board_init", json!({"goal": "again"})).await,
        );
        assert_eq!(e, cli_reason(&env, &["board", "init", "again"]));

        let bad: Vec<(&str, Value, Option<Vec<&str>>)> = vec![
            (
                "delegate",
                json!({"target": "../etc", "prompt": "x"}),
                Some(vec!["send", "../etc", "x"]),
            ),
            (
                "delegate",
                json!({"target": "nobody", "prompt": "x"}),
                Some(vec!["send", "nobody", "x"]),
            ),
            ("results", json!({"since": 1}), None),
            ("team_status", json!({"verbose": true}), None),
            (
                "board_add",
                json!({"title": "x", "deps": ["t99"]}),
                Some(vec!["board", "add", "x", "--dep", "t99"]),
            ),
            ("board_claim", json!({}), None),
            (
                "board_done",
                json!({"id": "t99", "worker": "w"}),
                Some(vec!["board", "--worker", "w", "done", "t99"]),
            ),
            (
                "board_fail",
                json!({"id": "t99", "reason": "r", "worker": "w"}),
                Some(vec!["board", "--worker", "w", "fail", "t99", "r"]),
            ),
            (
                "board_status",
                json!({"board": "no/such/../board"}),
                Some(vec!["board", "--board", "no/such/../board", "status"]),
            ),
            ("board_report", json!({"board": 7}), None),
            (
                "board_note",
                json!({"text": ""}),
                Some(vec!["board", "note", ""]),
            ),
            (
                "board_notes",
                json!({"board": "no/such/../board"}),
                Some(vec!["board", "--board", "no/such/../board", "notes"]),
            ),
            ("board_init", json!({}), None),
        ];
        let mut seen = BTreeSet::new();
        for (name, args, cli) in bad {
            seen.insert(name);
            let e = tool_error(name, &call(&s, name, args.clone()).await);
            assert!(
                !e.is_empty() && !e.contains('\n'),
                "{name}: one line: {e:?}"
            );
            if let Some(cli) = cli {
                assert_eq!(e, cli_reason(&env, &cli), "{name} {args}");
            }
            // Still serving.
            ok("board_status", &call(&s, "board_status", json!({})).await);
        }
        assert_eq!(
            seen,
            TOOLS.iter().copied().collect(),
            "every tool got a bad argument"
        );
        s.cancel().await.unwrap();
    });
}

#[test]
fn twenty_concurrent_calls_all_answer() {
    let env = Env::new();
    runtime().block_on(async {
        let (s, _) = connect(&env, &[]).await;
        ok(
            "board_init",
            &call(&s, "board_init", json!({"goal": "g"})).await,
        );
        let s = Arc::new(s);
        let mut calls = Vec::new();
        for i in 0..20 {
            let s = s.clone();
            calls.push(tokio::spawn(async move {
                let (name, args) = match i % 4 {
                    0 | 1 => ("board_add", json!({"title": format!("task {i}")})),
                    2 => ("board_status", json!({})),
                    _ => ("team_status", json!({})),
                };
                (name, call(&s, name, args).await)
            }));
        }
        let mut ids = BTreeSet::new();
        for c in calls {
            let (name, r) = c.await.unwrap();
            let v = ok(name, &r);
            if name == "board_add" {
                ids.insert(v["id"].as_str().unwrap().to_owned());
            }
        }
        assert_eq!(ids.len(), 10, "ten adds, ten distinct tasks: {ids:?}");
        let status = ok("board_status", &call(&s, "board_status", json!({})).await);
        assert_eq!(status["ready"], 10, "{status}");
    });
}

/// An exec agent that works until it is stopped, and the id of the task it works on.
fn slow_agent(env: &Env, name: &str) -> Agent {
    env.agent(name, &["--exec", "echo started; sleep 600", "--quiet"])
}

/// Waits (on a blocking thread) until agent `name` in state directory `state` works on
/// a task, and returns the task's id.
async fn working_task(state: &Path, name: &str) -> String {
    let path = state.join("agents").join(name).join("status.json");
    tokio::task::spawn_blocking(move || {
        wait_until(SECS, "the agent to work on the task", || {
            let s: Value = serde_json::from_slice(&std::fs::read(&path).ok()?).ok()?;
            (s["status"] == "working")
                .then(|| s["task"]["id"].as_str().map(str::to_owned))
                .flatten()
        })
    })
    .await
    .unwrap()
}

fn done_of(env: &Env, task: &str) -> Value {
    let path = env.state.join("tasks").join(task).join("done.json");
    wait_until(SECS, &format!("task {task} to end"), || {
        serde_json::from_slice(&std::fs::read(&path).ok()?).ok()
    })
}

#[test]
fn cancelling_a_waiting_delegate_cancels_its_task() {
    let env = Env::new();
    let _agent = slow_agent(&env, "slow");
    runtime().block_on(async {
        let (s, client) = connect(&env, &[]).await;
        let args = json!({"target": "slow", "prompt": "take your time"});
        let request = ClientRequest::CallToolRequest(Request::new(
            CallToolRequestParams::new("delegate")
                .with_arguments(args.as_object().unwrap().clone()),
        ));
        let handle = s
            .peer()
            .send_cancellable_request(request, PeerRequestOptions::no_options())
            .await
            .unwrap();
        let task = working_task(&env.state, "slow").await;
        // Progress reached the client while it waited.
        tokio::task::spawn_blocking({
            let progress = client.progress.clone();
            move || {
                wait_until(SECS, "a progress notification", || {
                    (!progress.lock().unwrap().is_empty()).then_some(())
                })
            }
        })
        .await
        .unwrap();
        handle
            .cancel(Some("the user changed their mind".into()))
            .await
            .unwrap();
        let done = done_of(&env, &task);
        assert_eq!(done["outcome"], "cancelled", "{done}");
        assert!(
            done["reason"]
                .as_str()
                .unwrap()
                .contains("cancelled the delegate tool call"),
            "{done}"
        );
        // The agent is free again, and the server still answers.
        env.wait_status("slow", "idle", |_| true);
        let r = call(&s, "team_status", json!({})).await;
        ok("team_status", &r);
        s.cancel().await.unwrap();
    });
}

#[test]
fn the_caller_going_away_cancels_its_delegation() {
    let env = Env::new();
    let _agent = slow_agent(&env, "slow");
    let rt = runtime();
    let (server_pid, task) = rt.block_on(async {
        let (s, _) = connect(&env, &[]).await;
        let peer = s.peer().clone();
        let pending = tokio::spawn(async move {
            let args = json!({"target": "slow", "prompt": "forever"});
            peer.call_tool(
                CallToolRequestParams::new("delegate")
                    .with_arguments(args.as_object().unwrap().clone()),
            )
            .await
        });
        let task = working_task(&env.state, "slow").await;
        let pid = server_pid_of(&env);
        // The client closes the connection, as an exiting Claude Code does: stdin
        // closes, then (after 3 s) SIGTERM.
        s.cancel().await.unwrap();
        pending.abort();
        (pid, task)
    });
    let done = done_of(&env, &task);
    assert_eq!(done["outcome"], "cancelled", "{done}");
    let reason = done["reason"].as_str().unwrap();
    assert!(
        reason.contains("went away") || reason.contains("SIGTERM"),
        "{done}"
    );
    wait_until(SECS, "the MCP server to exit", || {
        (!Path::new(&format!("/proc/{server_pid}")).exists()).then_some(())
    });
}

/// The pid of the MCP server: the requester recorded in the agent's task.
fn server_pid_of(env: &Env) -> u32 {
    let dir = std::fs::read_dir(env.state.join("tasks")).unwrap();
    let task = dir.flatten().next().unwrap().path().join("task.json");
    let v: Value = serde_json::from_slice(&std::fs::read(task).unwrap()).unwrap();
    v["requester"]["pid"].as_u64().unwrap() as u32
}

#[test]
fn an_agent_delegating_to_itself_is_refused_and_board_claim_defaults_to_it() {
    let env = Env::new();
    let _me = env.agent("solo", &["--demo", "--demo-delay-ms", "0"]);
    runtime().block_on(async {
        let (s, _) = connect(&env, &[("CLAUDE_EDITOR_HOOK_AGENT", "solo")]).await;
        let e = tool_error(
            "delegate",
            &call(&s, "delegate", json!({"target": "solo", "prompt": "x"})).await,
        );
        assert!(e.contains("cannot delegate to itself"), "{e}");
        let e = tool_error(
            "delegate",
            &call(
                &s,
                "delegate",
                json!({"target": "solo", "prompt": "x", "background": true}),
            )
            .await,
        );
        assert!(e.contains("cannot delegate to itself"), "{e}");
        assert!(
            !env.state.join("tasks").exists()
                || std::fs::read_dir(env.state.join("tasks"))
                    .unwrap()
                    .next()
                    .is_none(),
            "nothing was queued"
        );
        ok(
            "board_init",
            &call(&s, "board_init", json!({"goal": "g"})).await,
        );
        ok(
            "board_add",
            &call(&s, "board_add", json!({"title": "mine"})).await,
        );
        let c = ok("board_claim", &call(&s, "board_claim", json!({})).await);
        assert_eq!(c["claimed"]["task"]["worker"], "solo");
        // Held by the agent's host, as its own drain would hold it.
        assert!(c["claimed"]["task"]["host_pid"].is_number(), "{c}");
        ok(
            "board_done",
            &call(&s, "board_done", json!({"id": "t1", "result": "r"})).await,
        );
    });
}

#[test]
fn a_two_agent_cycle_is_refused_with_the_chain() {
    // @a's command asks @b (through the same `send` verb); @b's asks @a back, which
    // would wait for ever: refused, and the refusal is what @a gets back.
    let env = Env::new();
    let _a = env.agent(
        "a",
        &["--exec", &format!("{HOOK} send b 'ask a'"), "--quiet"],
    );
    let _b = env.agent(
        "b",
        &["--exec", &format!("{HOOK} send a 'back to a'"), "--quiet"],
    );
    runtime().block_on(async {
        let (s, _) = connect(&env, &[]).await;
        let r = call(&s, "delegate", json!({"target": "a", "prompt": "start"})).await;
        let e = tool_error("delegate", &r);
        assert!(e.contains("@a failed"), "{e}");
        assert!(
            e.contains("refused: a delegation cycle (@a waits on @b waits on @a)"),
            "{e}"
        );
    });
    // The chain is in the envelope @b's task was given.
    let tasks: Vec<Value> = std::fs::read_dir(env.state.join("tasks"))
        .unwrap()
        .flatten()
        .filter_map(|d| {
            serde_json::from_slice(&std::fs::read(d.path().join("task.json")).ok()?).ok()
        })
        .collect();
    let to_b = tasks
        .iter()
        .find(|t| t["agent"] == "b")
        .expect("a task for @b");
    assert_eq!(to_b["wait_chain"], json!(["a"]));
    assert_eq!(tasks.len(), 2, "the refused delegation queued nothing");
}

// ---- with the real Claude Code, offline against the fake Messages API ----

use crate::e2e_agent::{HostedAgent, host_agent_with_claude_args};
use crate::helper::claude::require_claude;
use crate::helper::fake_api::Reply;
use crate::helper::wait::output_with_timeout;

/// The arguments that give a Claude Code the team's tools, as `up` passes them.
fn team_args() -> Vec<String> {
    ceh::mcp::claude_args(Path::new(HOOK))
}

/// Hosts agent `name` (Claude Code under agent-wrap) with the team's tools.
fn hosted_with_tools(test: &str, env: &Env, name: &str) -> Option<HostedAgent> {
    let args = team_args();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    host_agent_with_claude_args(test, env, name, &args)
}

/// Runs a one-turn print-mode Claude Code with the team's tools on `agent`'s sandbox
/// (its HOME and fake API), as a chief; returns its stdout.
fn chief_turn(env: &Env, agent: &HostedAgent, claude: &Path, prompt: &str) -> String {
    let mut cmd = agent.sandbox.command(claude);
    cmd.env("CLAUDE_AGENTS_DIR", &env.state)
        .env("CLAUDE_EDITOR_HOOK_BOARD", board_dir(env))
        .arg("-p")
        .args(team_args())
        .arg(prompt);
    let out = output_with_timeout(&mut cmd, Duration::from_secs(120));
    assert!(out.status.success(), "the chief's turn failed: {out:?}");
    text(&out.stdout)
}

/// A tool result as the model saw it: the structured content's JSON (or, from a
/// client that gives the text instead, `{"text": ...}`).
fn tool_json(result: &str) -> Value {
    serde_json::from_str(result).unwrap_or_else(|_| json!({ "text": result }))
}

/// A tool call of the team's server, as the model makes it.
fn team_tool(tool: &str, input: Value) -> Reply {
    Reply::ToolUse {
        name: format!("mcp__team__{tool}"),
        input,
    }
}

#[cfg_attr(
    missing_claude,
    ignore = "needs Claude Code and tmux: see README, Tests"
)]
#[test]
fn a_chief_delegating_through_the_tool_gets_the_hosted_agents_answer() {
    let test = "a_chief_delegating_through_the_tool_gets_the_hosted_agents_answer";
    let env = Env::new();
    let Some(agent) = hosted_with_tools(test, &env, "helper") else {
        return;
    };
    let claude = require_claude(test).unwrap();
    // The chief's model delegates; the agent's model answers; the chief's model then
    // says what the tool returned.
    agent.sandbox.api.set_reply(|prompt| {
        if prompt.starts_with("CHIEF:") {
            team_tool(
                "delegate",
                json!({"target": "helper", "prompt": "AGENT: what is six times seven?"}),
            )
        } else if prompt.contains("AGENT: what is six times seven?") {
            Reply::Text("forty-two, says the helper".into())
        } else {
            Reply::Text(crate::helper::fake_api::default_reply(prompt))
        }
    });
    let out = chief_turn(&env, &agent, &claude, "CHIEF: ask the helper");
    // Claude Code hands the model the structured content when there is one
    // (docs/claude-code.md#mcp-tool-result): the answer is its `answer`.
    let result = tool_json(out.trim().trim_start_matches("FAKE-TOOL-DONE: "));
    assert_eq!(
        result["answer"], "forty-two, says the helper",
        "the chief's answer: {out}"
    );
    assert_eq!(result["agent"], "helper");
    let results: Vec<String> = agent
        .sandbox
        .api
        .requests()
        .iter()
        .flat_map(|r| r.tool_results.clone())
        .collect();
    assert!(
        results
            .iter()
            .any(|r| r.contains("forty-two, says the helper")),
        "the tool_result carried the agent's answer: {results:?}"
    );
    // The agent really did the task, sent by the chief's server.
    let done = env.wait_status("helper", "idle", |s| s["recent"][0]["outcome"] == "ok");
    assert!(
        done["recent"][0]["title"]
            .as_str()
            .unwrap()
            .contains("six times seven")
    );
}

#[cfg_attr(
    missing_claude,
    ignore = "needs Claude Code and tmux: see README, Tests"
)]
#[test]
fn an_agent_drains_a_task_with_board_claim_and_board_done_and_cannot_ask_itself() {
    let test = "an_agent_drains_a_task_with_board_claim_and_board_done_and_cannot_ask_itself";
    let env = Env::new();
    let board = board_dir(&env);
    let cli = |args: &[&str]| {
        let out = env
            .cmd(HOOK)
            .env("CLAUDE_EDITOR_HOOK_BOARD", &board)
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success(), "{args:?}: {}", text(&out.stderr));
        text(&out.stdout)
    };
    cli(&["board", "init", "build the thing"]);
    let id = cli(&["board", "add", "write the parser"]).trim().to_owned();
    // The hosted agent's server finds the board as every tool does: from the
    // environment its Claude Code inherited.
    let Some(agent) = hosted_with_board(test, &env, "worker", &board) else {
        return;
    };
    let id_for_reply = id.clone();
    agent.sandbox.api.set_reply(|prompt| {
        if prompt.contains("drain the board") {
            team_tool("board_claim", json!({}))
        } else if prompt.contains("ask yourself") {
            team_tool("delegate", json!({"target": "worker", "prompt": "loop"}))
        } else {
            Reply::Text(crate::helper::fake_api::default_reply(prompt))
        }
    });
    agent.sandbox.api.set_tool_reply(move |result| {
        let claimed = tool_json(result);
        if claimed["claimed"]["task"]["id"] == id_for_reply.as_str()
            || result.starts_with(&format!("claimed {id_for_reply} for worker"))
        {
            team_tool(
                "board_done",
                json!({"id": id_for_reply, "result": "parser written"}),
            )
        } else {
            Reply::Text(crate::helper::fake_api::tool_done_reply(result))
        }
    });
    // An interactive Claude Code connects its MCP servers after SessionStart: a task
    // delivered in that moment finds no team tools ("No such tool available"), and
    // nothing was claimed. Ask again until the tools are there.
    let out = crate::helper::wait::wait_until(Duration::from_secs(60), "the team tools", || {
        let out = env
            .cmd(HOOK)
            .args(["send", "worker", "drain the board"])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", text(&out.stderr));
        (!text(&out.stdout).contains("No such tool available")).then_some(out)
    });
    let done = tool_json(text(&out.stdout).trim_start_matches("FAKE-TOOL-DONE: "));
    assert_eq!(done["status"], "done", "board_done's result: {done}");
    let shown: Value = serde_json::from_str(&cli(&["board", "show", &id, "--json"])).unwrap();
    assert_eq!(shown["status"], "done", "{shown}");
    assert_eq!(
        shown["worker"], "worker",
        "the claim defaulted to the agent"
    );
    assert_eq!(shown["result"], "parser written");

    // Asking itself is refused, and the refusal is the tool's result.
    let out = env
        .cmd(HOOK)
        .args(["send", "worker", "ask yourself"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("refused: @worker cannot delegate to itself"),
        "{}",
        text(&out.stdout)
    );
}

/// [`hosted_with_tools`] with `CLAUDE_EDITOR_HOOK_BOARD` in the agent's environment.
fn hosted_with_board(test: &str, env: &Env, name: &str, board: &Path) -> Option<HostedAgent> {
    let mut args = team_args();
    // The hosted Claude Code gets agent-wrap's environment; the board rides along in
    // the server's own config instead, so the test does not depend on the tmux env.
    args[0] = format!(
        "--mcp-config={}",
        json!({"mcpServers": {"team": {"type": "stdio", "command": HOOK, "args": ["mcp"],
            "env": {"CLAUDE_EDITOR_HOOK_BOARD": board}}}})
    );
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    host_agent_with_claude_args(test, env, name, &args)
}

#[cfg_attr(
    missing_claude,
    ignore = "needs Claude Code and tmux: see README, Tests"
)]
#[test]
fn board_add_from_one_claude_code_is_claimable_by_another() {
    let test = "board_add_from_one_claude_code_is_claimable_by_another";
    let Some(claude) = require_claude(test) else {
        return;
    };
    let env = Env::new();
    let sandbox = crate::helper::claude::ClaudeSandbox::new();
    let board = board_dir(&env);
    let turn = |prompt: &str| {
        let mut cmd = sandbox.command(&claude);
        cmd.env("CLAUDE_AGENTS_DIR", &env.state)
            .env("CLAUDE_EDITOR_HOOK_BOARD", &board)
            .arg("-p")
            .args(team_args())
            .arg(prompt);
        let out = output_with_timeout(&mut cmd, Duration::from_secs(120));
        assert!(out.status.success(), "{out:?}");
        text(&out.stdout)
    };
    sandbox.api.set_reply(|prompt| match prompt {
        p if p.contains("plan") => team_tool("board_init", json!({"goal": "ship"})),
        p if p.contains("add") => team_tool(
            "board_add",
            json!({"title": "review the diff", "priority": 1}),
        ),
        p if p.contains("take") => team_tool("board_claim", json!({"worker": "second"})),
        p => Reply::Text(crate::helper::fake_api::default_reply(p)),
    });
    let seen = |out: String| tool_json(out.trim().trim_start_matches("FAKE-TOOL-DONE: "));
    assert_eq!(seen(turn("plan"))["goal"], "ship", "board_init");
    assert_eq!(seen(turn("add a task"))["id"], "t1");
    let claimed = seen(turn("take a task"));
    assert_eq!(
        claimed["claimed"]["task"]["id"], "t1",
        "the second instance claimed what the first added: {claimed}"
    );
    assert_eq!(claimed["claimed"]["task"]["worker"], "second");
}

#[cfg_attr(
    missing_claude,
    ignore = "needs Claude Code and tmux: see README, Tests"
)]
#[test]
fn a_two_claude_agent_cycle_is_refused_and_the_refusal_is_the_tool_result() {
    let test = "a_two_claude_agent_cycle_is_refused_and_the_refusal_is_the_tool_result";
    let env = Env::new();
    let Some(a) = hosted_with_tools(test, &env, "alpha") else {
        return;
    };
    let Some(b) = hosted_with_tools(test, &env, "beta") else {
        return;
    };
    // alpha asks beta; beta asks alpha back, who is waiting on beta: refused.
    a.sandbox.api.set_reply(|prompt| {
        if prompt.contains("start the chain") {
            team_tool(
                "delegate",
                json!({"target": "beta", "prompt": "ask alpha back"}),
            )
        } else {
            Reply::Text(crate::helper::fake_api::default_reply(prompt))
        }
    });
    b.sandbox.api.set_reply(|prompt| {
        if prompt.contains("ask alpha back") {
            team_tool("delegate", json!({"target": "alpha", "prompt": "loop"}))
        } else {
            Reply::Text(crate::helper::fake_api::default_reply(prompt))
        }
    });
    let out = env
        .cmd(HOOK)
        .args(["send", "alpha", "start the chain", "--timeout", "120"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let refused = b
        .sandbox
        .api
        .wait_for_request(|r| !r.tool_results.is_empty(), Duration::from_secs(5))
        .expect("beta's tool result");
    assert!(
        refused.tool_results[0]
            .contains("refused: a delegation cycle (@alpha waits on @beta waits on @alpha)"),
        "{:?}",
        refused.tool_results
    );
    // alpha got beta's answer (which reported the refusal) as its own tool result.
    let answer = tool_json(text(&out.stdout).trim_start_matches("FAKE-TOOL-DONE: "));
    assert_eq!(answer["agent"], "beta", "{answer}");
    assert!(
        answer["answer"]
            .as_str()
            .unwrap()
            .contains("refused: a delegation cycle"),
        "{answer}"
    );
}

#[test]
fn garbage_and_binary_on_stdin_cost_only_themselves() {
    // Beside the SDK's client: bytes no client would send, then a proper handshake.
    use std::io::{BufRead, BufReader, Write};
    let env = Env::new();
    let mut child = env
        .cmd(HOOK)
        .arg("mcp")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin
        .write_all(b"not json\n\xff\xfe\x00binary\n{\"jsonrpc\":\"2.0\"}\n")
        .unwrap();
    stdin.write_all(&vec![b'x'; 1 << 20]).unwrap();
    stdin.write_all(b"\n").unwrap();
    let init = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {},
        "clientInfo": {"name": "raw", "version": "0"}}});
    writeln!(stdin, "{init}").unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let answer: Value = loop {
        let line = lines.next().expect("an answer").unwrap();
        let v: Value = serde_json::from_str(&line).unwrap();
        if v["id"] == 1 {
            break v;
        }
    };
    assert_eq!(
        answer["result"]["serverInfo"]["name"], "claude-editor-hook",
        "{answer}"
    );
    drop(stdin);
    let status = wait_child(&mut child, SECS, "the server to exit after stdin closed");
    assert!(status.success(), "{status:?}");
}
