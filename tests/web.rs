//! `claude-editor-hook serve` over HTTP, with real processes (docs/web.md, issue #16):
//! every endpoint as documented and as its CLI verb answers; the token, Origin and Host
//! rules; bad input; property tests of the request bodies; the event stream (its first
//! event, its ids, resuming with `Last-Event-ID` across a rotation, the backlog); 100
//! streams under 500 tasks with a reader that never reads; the stream limit; stopping by
//! SIGTERM; and the CPU of idle streams.
//!
//! Every answer any test receives is also checked for the headers every answer carries,
//! and for the absence of any CORS header.

use std::collections::HashSet;
use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use ceh::web::ROUTES;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use serde_json::{Value, json};

use crate::fixture::*;
use crate::helper::serve::Serve;
use crate::helper::wait::{output_with_timeout, wait_until, wait_until_or};

const JSON: &str = "application/json";
const UNAUTHORIZED: &str = r#"{"error":"unauthorized"}"#;
const FOREIGN: &str = "http://evil.example";

/// `claude-editor-hook` in the test's state directory, run from its temporary folder
/// (so that the default board is nobody's project) with no board or worker from the
/// caller's environment.
fn hook(env: &Env) -> Command {
    let mut cmd = env.cmd(HOOK);
    cmd.current_dir(env.dir.path())
        .env_remove("CLAUDE_EDITOR_HOOK_BOARD")
        .env_remove("CLAUDE_EDITOR_HOOK_WORKER")
        .env_remove("CLAUDE_EDITOR_HOOK_CHIEF_ID");
    cmd
}

/// The HTTP client: statuses are answers, not errors; redirects are not followed; a
/// connection per request, because the server closes one whose request body it refused
/// unread (a 401, 403, 413 or 415), and a pooled client may write the next request into
/// it before it sees that.
fn client(timeout: Option<Duration>) -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .max_idle_connections(0)
        .max_idle_connections_per_host(0)
        .timeout_global(timeout)
        .build()
        .new_agent()
}

/// A state directory with a server on it. The server is stopped before the directory
/// goes (fields drop in order).
struct Web {
    serve: Serve,
    http: ureq::Agent,
    env: Env,
}

/// One answer, whole.
#[derive(Debug)]
struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Answer {
    fn new(mut resp: ureq::http::Response<ureq::Body>) -> Answer {
        let headers = header_list(resp.headers());
        let body = resp
            .body_mut()
            .with_config()
            .limit(64 << 20)
            .read_to_vec()
            .expect("read the body");
        let answer = Answer {
            status: resp.status().as_u16(),
            headers,
            body,
        };
        check_headers(&answer.headers, answer.status);
        answer
    }

    fn header(&self, name: &str) -> Option<&str> {
        header(&self.headers, name)
    }

    fn text(&self) -> String {
        text(&self.body)
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {} {}", self.status, self.text()))
    }

    /// The JSON body, after checking the status.
    fn ok(&self, status: u16) -> Value {
        assert_eq!(self.status, status, "{}", self.text());
        self.json()
    }

    /// The error's one line, after checking the status and that it is all the body says.
    fn error(&self, status: u16) -> String {
        assert_eq!(self.status, status, "{}", self.text());
        assert_eq!(
            self.header("content-type"),
            Some(JSON),
            "an error is JSON: {}",
            self.text()
        );
        let v = self.json();
        let obj = v.as_object().expect("an error object");
        assert_eq!(obj.len(), 1, "only `error`: {v}");
        obj["error"].as_str().expect("a string").to_owned()
    }
}

fn header_list(h: &ureq::http::HeaderMap) -> Vec<(String, String)> {
    h.iter()
        .map(|(k, v)| {
            (
                k.as_str().to_owned(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect()
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// What every answer carries, and that no answer ever speaks CORS.
fn check_headers(headers: &[(String, String)], status: u16) {
    for (k, _) in headers {
        assert!(
            !k.to_ascii_lowercase().starts_with("access-control-"),
            "a CORS header on a {status}: {headers:?}"
        );
    }
    for (name, value) in [
        ("cache-control", "no-store"),
        ("x-content-type-options", "nosniff"),
        ("referrer-policy", "same-origin"),
        ("x-frame-options", "DENY"),
    ] {
        assert_eq!(
            header(headers, name),
            Some(value),
            "{name} on a {status}: {headers:?}"
        );
    }
}

impl Web {
    fn new() -> Web {
        Web::on(Env::new())
    }

    fn on(env: Env) -> Web {
        Web {
            serve: Serve::start(hook(&env), &[]),
            http: client(Some(Duration::from_secs(120))),
            env,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.serve.base)
    }

    fn bearer(&self) -> String {
        format!("Bearer {}", self.serve.token)
    }

    fn cookie(&self) -> String {
        format!("ceh_token={}", self.serve.token)
    }

    /// The server's own origin.
    fn origin(&self) -> String {
        self.serve.base.clone()
    }

    /// `METHOD PATH` with exactly `headers` (no token unless given) and `body`.
    fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<Vec<u8>>,
    ) -> Answer {
        let mut req = ureq::http::Request::builder()
            .method(method)
            .uri(self.url(path));
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let resp = match body {
            Some(b) => self.http.run(req.body(b).unwrap()),
            None => self.http.run(req.body(()).unwrap()),
        };
        Answer::new(resp.unwrap_or_else(|e| panic!("{method} {path}: {e}")))
    }

    fn get(&self, path: &str) -> Answer {
        self.request("GET", path, &[("authorization", &self.bearer())], None)
    }

    fn post(&self, path: &str, body: &Value) -> Answer {
        self.post_bytes(path, Some(JSON), body.to_string().into_bytes())
    }

    fn post_bytes(&self, path: &str, content_type: Option<&str>, body: Vec<u8>) -> Answer {
        let bearer = self.bearer();
        let mut headers = vec![("authorization", bearer.as_str())];
        if let Some(t) = content_type {
            headers.push(("content-type", t));
        }
        self.request("POST", path, &headers, Some(body))
    }

    /// A CLI verb's JSON output.
    fn cli(&self, args: &[&str]) -> Value {
        let out = output_with_timeout(hook(&self.env).args(args), SECS);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{args:?}: {}",
            text(&out.stderr)
        );
        serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("{args:?} printed no JSON ({e}): {}", text(&out.stdout)))
    }

    /// Opens the event stream (`query` is `?…` or empty); the subscription is in place
    /// when this returns.
    fn stream(&self, query: &str, last_id: Option<&str>) -> Stream {
        self.try_stream(query, last_id)
            .unwrap_or_else(|a| panic!("the stream: {} {}", a.status, a.text()))
    }

    /// The event stream, or the answer that refused it.
    fn try_stream(&self, query: &str, last_id: Option<&str>) -> Result<Stream, Answer> {
        let resp = self.stream_response(query, last_id);
        if resp.status() != 200 {
            return Err(Answer::new(resp));
        }
        let (tx, rx) = mpsc::channel();
        let body = resp.into_body().into_reader();
        std::thread::spawn(move || read_sse(body, |e| tx.send(e).is_ok()));
        Ok(Stream { rx })
    }

    /// The event stream's response, its head checked, its body unread.
    fn stream_response(
        &self,
        query: &str,
        last_id: Option<&str>,
    ) -> ureq::http::Response<ureq::Body> {
        let mut req = client(None)
            .get(self.url(&format!("/api/v1/events{query}")))
            .header("authorization", &self.bearer());
        if let Some(id) = last_id {
            req = req.header("last-event-id", id);
        }
        let resp = req.call().expect("GET events");
        check_headers(&header_list(resp.headers()), resp.status().as_u16());
        if resp.status() == 200 {
            assert_eq!(
                resp.headers()
                    .get("content-type")
                    .and_then(|v| v.to_str().ok()),
                Some("text/event-stream")
            );
        }
        resp
    }

    /// Starts a demo agent that answers at once.
    fn quick_agent(&self, name: &str) -> Agent {
        self.env
            .agent(name, &["--demo", "--demo-delay-ms", "0", "--quiet"])
    }

    fn log_path(&self) -> std::path::PathBuf {
        self.env.state.join("events").join("events.jsonl")
    }
}

/// One server-sent event.
#[derive(Clone, Debug, Default)]
struct Ev {
    event: String,
    id: Option<String>,
    data: String,
}

impl Ev {
    fn json(&self) -> Value {
        serde_json::from_str(&self.data).unwrap_or_else(|e| panic!("{e}: {:?}", self.data))
    }
}

/// Reads server-sent events from `r`, calling `on` with each until it returns false or
/// the stream ends.
fn read_sse(r: impl Read, mut on: impl FnMut(Ev) -> bool) {
    let mut r = BufReader::new(r);
    let mut ev = Ev::default();
    let mut data: Vec<String> = Vec::new();
    let mut line = String::new();
    loop {
        line.clear();
        match r.read_line(&mut line) {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let l = line.trim_end_matches(['\r', '\n']);
        if l.is_empty() {
            if !data.is_empty() || !ev.event.is_empty() {
                ev.data = std::mem::take(&mut data).join("\n");
                if !on(std::mem::take(&mut ev)) {
                    return;
                }
            }
            continue;
        }
        if l.starts_with(':') {
            continue;
        }
        let (field, value) = match l.split_once(':') {
            Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
            None => (l, ""),
        };
        match field {
            "event" => ev.event = value.to_owned(),
            "id" => ev.id = Some(value.to_owned()),
            "data" => data.push(value.to_owned()),
            _ => {}
        }
    }
}

/// An open event stream, read on a thread of its own.
struct Stream {
    rx: mpsc::Receiver<Ev>,
}

impl Stream {
    /// The next event; `None` when the stream ended. Panics if none comes in time.
    fn next(&self) -> Option<Ev> {
        match self.rx.recv_timeout(SECS) {
            Ok(e) => Some(e),
            Err(mpsc::RecvTimeoutError::Disconnected) => None,
            Err(mpsc::RecvTimeoutError::Timeout) => panic!("no event within {SECS:?}"),
        }
    }

    /// The `log` events up to and including the first for which `last` holds.
    fn logs_until(&self, mut last: impl FnMut(&Ev) -> bool) -> Vec<Ev> {
        let mut out = Vec::new();
        loop {
            let e = self.next().expect("the stream ended");
            if e.event != "log" {
                continue;
            }
            let stop = last(&e);
            out.push(e);
            if stop {
                return out;
            }
        }
    }

    /// Waits for the end of the stream, skipping what comes before it.
    fn wait_end(&self) {
        while self.next().is_some() {}
    }
}

/// Appends a `board` event marking `task` to the log, as any writer does.
fn mark(web: &Web, task: &str) {
    ceh::events::append(
        &web.env.state,
        ceh::events::What::Board {
            board: "marks".into(),
            verb: "mark".into(),
            task: Some(task.into()),
        },
    );
}

fn is_mark(e: &Ev, task: &str) -> bool {
    let v = e.json();
    v["kind"] == "board" && v["task"] == task
}

/// The log's lines as the stream should send them: `(INODE-OFFSET after it, line)` for
/// each event line of `name` (the log or its previous generation) after byte `from`.
fn lines_in(web: &Web, name: &str, from: u64) -> Vec<(String, String)> {
    use std::os::unix::fs::MetadataExt;
    let path = web.log_path().with_file_name(name);
    let ino = fs::metadata(&path).unwrap().ino();
    let bytes = fs::read(&path).unwrap();
    let mut out = Vec::new();
    let mut at = 0u64;
    for line in bytes.split_inclusive(|&b| b == b'\n') {
        let end = at + line.len() as u64;
        let raw = String::from_utf8_lossy(line).trim().to_owned();
        if at >= from && serde_json::from_str::<Value>(&raw).is_ok() {
            out.push((format!("{ino}-{end}"), raw));
        }
        at = end;
    }
    out
}

fn id_and_data(events: &[Ev]) -> Vec<(String, String)> {
    events
        .iter()
        .map(|e| (e.id.clone().expect("a log event has an id"), e.data.clone()))
        .collect()
}

/// A route of [`ROUTES`] with its parameters filled in.
fn concrete(path: &str) -> String {
    path.replace("{id}", "t-1").replace("{name}", "w1")
}

fn post_routes() -> Vec<String> {
    ROUTES
        .iter()
        .filter(|(m, _)| *m == "POST")
        .map(|(_, p)| concrete(p))
        .collect()
}

/// `status --json` and `GET status` agree up to `latest` and the agents' order.
fn comparable_status(mut v: Value) -> Value {
    if let Some(agents) = v["agents"].as_array_mut() {
        for a in agents.iter_mut() {
            if let Some(o) = a.as_object_mut() {
                o.remove("latest");
            }
        }
        agents.sort_by(|a, b| a["name"].as_str().cmp(&b["name"].as_str()));
    }
    v
}

/// Waits until both sides of `pair` are equal (the state may still settle), and fails
/// with the last difference.
fn eventually_equal(what: &str, mut pair: impl FnMut() -> (Value, Value)) {
    let mut last = (Value::Null, Value::Null);
    let same = wait_until_or(SECS, || {
        last = pair();
        (last.0 == last.1).then_some(())
    });
    assert!(
        same.is_some(),
        "{what} differ:\n{:#}\n---\n{:#}",
        last.0,
        last.1
    );
}

fn task_dir(web: &Web, id: &str) -> std::path::PathBuf {
    web.env.state.join("tasks").join(id)
}

fn read_json(path: &std::path::Path) -> Value {
    serde_json::from_slice(&fs::read(path).unwrap()).unwrap()
}

// ---- the endpoints ----

#[test]
fn status_tasks_and_output_answer_as_documented_and_status_equals_status_json() {
    let web = Web::new();
    let _w1 = web.quick_agent("w1");
    let _w2 = web.quick_agent("w2");

    let status = web.get("/api/v1/status").ok(200);
    assert_eq!(status["version"], 1);
    let names: HashSet<&str> = status["agents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, HashSet::from(["w1", "w2"]));

    // A send that waits: the answer, then the task's files and the agent's output.
    let sent = web
        .post(
            "/api/v1/send",
            &json!({"target": "w1", "prompt": "count the stars"}),
        )
        .ok(200);
    let id = sent["task_id"].as_str().unwrap().to_owned();
    assert_eq!(sent["agent"], "w1");
    assert_eq!(sent["outcome"], "ok");
    assert!(sent["reason"].is_null(), "{sent}");
    assert!(sent["elapsed_ms"].is_u64(), "{sent}");
    let answer = sent["answer"].as_str().unwrap().to_owned();
    assert!(
        answer.starts_with("demo agent @w1 is working on: count the stars\n")
            && answer.contains("DEMO-ANSWER "),
        "{answer}"
    );

    let task = web.get(&format!("/api/v1/tasks/{id}")).ok(200);
    assert_eq!(task["id"], id.as_str());
    assert_eq!(
        task["envelope"],
        read_json(&task_dir(&web, &id).join("task.json"))
    );
    assert_eq!(
        task["done"],
        read_json(&task_dir(&web, &id).join("done.json"))
    );
    assert_eq!(task["done"]["outcome"], "ok");
    assert_eq!(task["result"], answer.as_str());
    assert_eq!(task["result_lossy"], false);
    assert_eq!(task["result_truncated"], false);

    let out = web.get("/api/v1/agents/w1/output").ok(200);
    let text = out["text"].as_str().unwrap().to_owned();
    let len = text.len() as u64;
    assert_eq!(
        out,
        json!({"agent": "w1", "task": id, "since": 0, "next": len, "text": text,
               "lossy": false, "done": true})
    );
    assert!(text.contains("DEMO-ANSWER "), "{text}");
    let rest = web.get("/api/v1/agents/w1/output?since=10").ok(200);
    assert_eq!(rest["text"], &text[10..]);
    assert_eq!(rest["since"], 10);
    assert_eq!(rest["next"], len);
    let end = web
        .get(&format!("/api/v1/agents/w1/output?since={len}"))
        .ok(200);
    assert_eq!(end["text"], "");
    assert_eq!(end["next"], len);
    // An agent with no task yet.
    let none = web.get("/api/v1/agents/w2/output").ok(200);
    assert_eq!(
        none,
        json!({"agent": "w2", "task": null, "since": 0, "next": 0, "text": "",
               "lossy": false, "done": true})
    );

    // GET status is `status --json`, with `latest` and in top's order.
    let status = web.get("/api/v1/status").ok(200);
    let w1 = status["agents"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["name"] == "w1")
        .unwrap();
    assert!(
        w1["latest"].as_str().unwrap().starts_with("DEMO-ANSWER "),
        "{w1}"
    );
    eventually_equal("GET status and status --json", || {
        (
            comparable_status(web.get("/api/v1/status").ok(200)),
            comparable_status(web.cli(&["status", "--json"])),
        )
    });
    // The OpenAPI document, as built in, describing every /api route.
    let doc = web.get("/api/v1/openapi.json").ok(200);
    let file: Value = serde_json::from_str(include_str!("../src/web/openapi.json")).unwrap();
    assert_eq!(doc, file);
    assert_eq!(doc["openapi"], "3.1.0");
    for (method, path) in ROUTES.iter().filter(|(_, p)| p.starts_with("/api/")) {
        assert!(
            doc["paths"][path][method.to_lowercase()]["responses"].is_object(),
            "{method} {path}"
        );
    }
}

#[test]
fn a_background_send_answers_202_with_a_ticket_and_results_delivers_it_once() {
    let web = Web::new();
    let _w1 = web.quick_agent("w1");
    let ticket = web
        .post(
            "/api/v1/send",
            &json!({"target": "w1", "prompt": "in the background", "background": true}),
        )
        .ok(202);
    let id = ticket["task_id"].as_str().unwrap().to_owned();
    assert_eq!(
        ticket,
        json!({"task_id": id, "agent": "w1", "background": true, "chief": "web"})
    );
    let listed = |state: &str| {
        let status = web.cli(&["status", "--json"]);
        status["background"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["task_id"] == id.as_str() && t["chief"] == "web" && t["state"] == state)
    };
    wait_until(SECS, "the ticket to be ready", || {
        listed("ready").then_some(())
    });

    let results = web.post("/api/v1/results", &json!({})).ok(200);
    assert_eq!(results["chief"], "web");
    assert_eq!(results["running"], 0);
    let items = results["results"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{results}");
    assert_eq!(items[0]["task_id"], id.as_str());
    assert_eq!(items[0]["agent"], "w1");
    assert_eq!(items[0]["outcome"], "ok");
    assert!(
        items[0]["answer"]
            .as_str()
            .unwrap()
            .contains("DEMO-ANSWER "),
        "{results}"
    );
    // Delivered once: no longer listed, and not again, through the API or the CLI.
    let status = web.cli(&["status", "--json"]);
    assert!(
        !status["background"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["task_id"] == id.as_str()),
        "{status}"
    );
    let again = web
        .post("/api/v1/results", &json!({"chief": "web"}))
        .ok(200);
    assert_eq!(again["results"], json!([]));
    assert_eq!(
        again,
        web.cli(&["results", "--json", "--chief", "web"]),
        "POST results is `results --json`"
    );

    // By ticket.
    let second = web
        .post(
            "/api/v1/send",
            &json!({"target": "w1", "prompt": "another one", "background": true}),
        )
        .ok(202);
    let id2 = second["task_id"].as_str().unwrap().to_owned();
    wait_until(SECS, "the second ticket to be ready", || {
        web.cli(&["status", "--json"])["background"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["task_id"] == id2.as_str() && t["state"] == "ready")
            .then_some(())
    });
    let by_ticket = web.post("/api/v1/results", &json!({"ticket": id2})).ok(200);
    assert_eq!(by_ticket["results"][0]["task_id"], id2.as_str());
    let twice = web
        .post("/api/v1/results", &json!({"ticket": id2}))
        .error(409);
    assert!(twice.contains("delivered already"), "{twice}");
    assert_eq!(
        web.post("/api/v1/results", &json!({"ticket": "t-0"}))
            .status,
        404
    );
}

#[test]
fn cancel_ends_a_task_on_a_slow_agent_as_cancelled() {
    let web = Web::new();
    let _slow = web
        .env
        .agent("slow", &["--demo", "--demo-delay-ms", "60000", "--quiet"]);
    let ticket = web
        .post(
            "/api/v1/send",
            &json!({"target": "slow", "prompt": "never mind", "background": true}),
        )
        .ok(202);
    let id = ticket["task_id"].as_str().unwrap().to_owned();
    web.env
        .wait_status("slow", "working", |s| s["task"]["id"] == id.as_str());
    assert!(web.get(&format!("/api/v1/tasks/{id}")).ok(200)["done"].is_null());

    let cancelled = web
        .post(&format!("/api/v1/tasks/{id}/cancel"), &json!({}))
        .ok(200);
    assert_eq!(cancelled["task_id"], id.as_str());
    assert_eq!(cancelled["outcome"], "cancelled", "{cancelled}");
    let task = web.get(&format!("/api/v1/tasks/{id}")).ok(200);
    assert_eq!(task["done"]["outcome"], "cancelled");
    assert_eq!(task["done"]["reason"], cancelled["reason"]);
    // Without a body too, and twice: the task has ended.
    let twice = web.request(
        "POST",
        &format!("/api/v1/tasks/{id}/cancel"),
        &[("authorization", &web.bearer())],
        None,
    );
    twice.error(409);
    web.env.wait_status("slow", "idle", |_| true);
}

#[test]
fn every_board_verb_answers_as_documented_and_as_its_cli_verb_does() {
    let web = Web::new();
    let b = "b1";
    let cli_board = |args: &[&str]| {
        let mut all = vec!["board", "--board", b];
        all.extend_from_slice(args);
        web.cli(&all)
    };
    let init = web
        .post(
            "/api/v1/board/init",
            &json!({"goal": "ship it", "plan": "# the plan", "board": b}),
        )
        .ok(200);
    assert_eq!(init["goal"], "ship it");
    let path = init["board"].as_str().unwrap().to_owned();
    assert!(path.contains("/boards/b1"), "{init}");
    web.post("/api/v1/board/init", &json!({"goal": "again", "board": b}))
        .error(409);

    let t1 = web
        .post(
            "/api/v1/board/tasks",
            &json!({"title": "first", "body": "do it", "priority": 1, "board": b}),
        )
        .ok(201);
    assert_eq!(t1, json!({"id": "t1", "board": path}));
    let t2 = web
        .post(
            "/api/v1/board/tasks",
            &json!({"title": "second", "deps": ["t1"], "role": "dev", "board": b}),
        )
        .ok(201);
    assert_eq!(t2["id"], "t2");
    web.post(
        "/api/v1/board/tasks",
        &json!({"title": "third", "deps": ["t9"], "board": b}),
    )
    .error(409);

    let status = web.get("/api/v1/board/status?board=b1").ok(200);
    assert_eq!(status["total"], 2);
    assert_eq!(status["ready"], 1);
    assert_eq!(status["queue"], json!(["t1"]));
    assert_eq!(status, cli_board(&["status", "--json"]));

    let claim = web
        .post(
            "/api/v1/board/claim",
            &json!({"worker": "alice", "board": b}),
        )
        .ok(200);
    assert_eq!(claim["state"], "claimed", "{claim}");
    assert_eq!(claim["claimed"]["task"]["id"], "t1");
    assert_eq!(claim["claimed"]["task"]["worker"], "alice");
    assert!(
        claim["claimed"]["goal"]
            .as_str()
            .unwrap()
            .contains("ship it")
    );
    let status = web.get("/api/v1/board/status?board=b1").ok(200);
    assert_eq!(status["claims"][0]["worker"], "alice");
    assert_eq!(status, cli_board(&["status", "--json"]));
    let nothing = web
        .post("/api/v1/board/claim", &json!({"worker": "bob", "board": b}))
        .ok(200);
    assert_eq!(nothing["state"], "not_ready", "{nothing}");
    assert!(nothing["claimed"].is_null());
    assert_eq!(nothing["summary"]["claimed"], 1);

    web.post(
        "/api/v1/board/done",
        &json!({"id": "t1", "result": "x", "worker": "bob", "board": b}),
    )
    .error(409);
    let done = web
        .post(
            "/api/v1/board/done",
            &json!({"id": "t1", "result": "done well", "worker": "alice", "board": b}),
        )
        .ok(200);
    assert_eq!(done["id"], "t1");
    assert_eq!(done["status"], "done");
    assert_eq!(done["result"], "done well");
    let mut shown = cli_board(&["show", "t1", "--json"]);
    let o = shown.as_object_mut().unwrap();
    o.remove("ready");
    o.remove("blocked");
    assert_eq!(done, shown, "the done task is `board show --json`'s task");
    web.post(
        "/api/v1/board/done",
        &json!({"id": "t1", "worker": "alice", "board": b}),
    )
    .error(409);

    let claim = web
        .post(
            "/api/v1/board/claim",
            &json!({"worker": "bob", "roles": ["dev"], "lease_s": 60, "board": b}),
        )
        .ok(200);
    assert_eq!(claim["claimed"]["task"]["id"], "t2", "{claim}");
    assert_eq!(claim["claimed"]["deps"][0]["result"], "done well");
    let failed = web
        .post(
            "/api/v1/board/fail",
            &json!({"id": "t2", "reason": "no luck", "worker": "bob", "board": b}),
        )
        .ok(200);
    assert_eq!(failed["status"], "failed");
    assert_eq!(failed["reason"], "no luck");
    let finished = web
        .post(
            "/api/v1/board/claim",
            &json!({"worker": "carol", "board": b}),
        )
        .ok(200);
    assert_eq!(finished["state"], "finished", "{finished}");

    let noted = web
        .post(
            "/api/v1/board/notes",
            &json!({"text": "a discovery", "worker": "alice", "board": b}),
        )
        .ok(200);
    assert_eq!(noted, json!({"author": "alice", "text": "a discovery"}));
    let notes = web.get("/api/v1/board/notes?board=b1").ok(200);
    assert_eq!(notes["notes"][0]["author"], "alice");
    assert_eq!(notes["notes"][0]["text"], "a discovery");
    assert_eq!(notes["notes"], cli_board(&["notes", "--json"])["notes"]);

    let report = web.get("/api/v1/board/report?board=b1").ok(200);
    assert_eq!(report["goal"], "ship it");
    assert_eq!(report["failures"][0]["id"], "t2");
    assert_eq!(report, cli_board(&["report", "--json"]));
    assert_eq!(
        web.get("/api/v1/board/status?board=b1").ok(200),
        cli_board(&["status", "--json"])
    );
    // A board that does not exist, and a name that is not one.
    assert!(
        web.get("/api/v1/board/status?board=nope")
            .error(404)
            .starts_with("no board")
    );
    web.get("/api/v1/board/status?board=Not%20A%20Name")
        .error(400);
}

// ---- the token, the Origin, the Host ----

#[test]
fn without_the_token_every_route_answers_401_unauthorized_and_nothing_else() {
    let web = Web::new();
    let wrong = format!("Bearer {}", "0".repeat(64));
    let wrong_cookie = format!("ceh_token={}", "0".repeat(64));
    let mut paths: Vec<String> = ROUTES.iter().map(|(_, p)| concrete(p)).collect();
    paths.extend(
        [
            "/nope",
            "/api/v1/nope",
            "/api/v2/status",
            "/api/v1/tasks/t-1/nope",
            "/.git/config",
        ]
        .map(String::from),
    );
    for path in &paths {
        for method in ["GET", "POST", "DELETE", "OPTIONS"] {
            for headers in [
                vec![],
                vec![("authorization", wrong.as_str())],
                vec![("authorization", "Bearer")],
                vec![("authorization", "Basic dXNlcjpwYXNz")],
                vec![("cookie", wrong_cookie.as_str())],
            ] {
                let body = (method == "POST").then(|| b"{}".to_vec());
                let mut headers = headers;
                if body.is_some() {
                    headers.push(("content-type", JSON));
                }
                let a = web.request(method, path, &headers, body);
                assert_eq!(a.status, 401, "{method} {path} {headers:?}: {}", a.text());
                assert_eq!(a.text(), UNAUTHORIZED, "{method} {path}");
                assert_eq!(a.header("content-type"), Some(JSON));
            }
        }
        // A wrong URL token is no token.
        let a = web.request("GET", &format!("{path}?token=abc"), &[], None);
        assert_eq!(a.text(), UNAUTHORIZED, "{path}?token=abc");
    }
    // With it, the same routes answer (unknown ones with a JSON 404).
    assert_eq!(web.get("/api/v1/nope").error(404), "no such route");
    assert_eq!(web.get("/nope").status, 404);
}

#[test]
fn the_url_token_becomes_an_http_only_cookie_by_a_303_and_the_cookie_then_works() {
    let web = Web::new();
    let token = web.serve.token.clone();
    let a = web.request("GET", &format!("/?token={token}"), &[], None);
    assert_eq!(a.status, 303, "{}", a.text());
    assert_eq!(a.header("location"), Some("/"));
    assert_eq!(
        a.header("set-cookie"),
        Some(format!("ceh_token={token}; HttpOnly; SameSite=Strict; Path=/").as_str())
    );
    // The other parameters stay; the token goes.
    let a = web.request(
        "GET",
        &format!("/api/v1/board/status?board=b&token={token}"),
        &[],
        None,
    );
    assert_eq!(a.status, 303);
    assert_eq!(a.header("location"), Some("/api/v1/board/status?board=b"));

    let cookie = web.cookie();
    let with_cookie = |path: &str| web.request("GET", path, &[("cookie", &cookie)], None);
    let page = with_cookie("/");
    assert_eq!(page.status, 200);
    assert!(
        page.header("content-type")
            .unwrap()
            .starts_with("text/html")
    );
    assert!(
        page.header("content-security-policy")
            .unwrap()
            .contains("default-src 'none'")
    );
    assert_eq!(with_cookie("/api/v1/status").ok(200)["version"], 1);
    assert_eq!(with_cookie("/app.js").status, 200);
    assert_eq!(with_cookie("/app.css").status, 200);
    // Among other cookies too.
    let a = web.request(
        "GET",
        "/api/v1/status",
        &[("cookie", &format!("a=1; {cookie}; b=2"))],
        None,
    );
    assert_eq!(a.status, 200);
    // The URL parameter never authorizes a change.
    let a = web.request(
        "POST",
        &format!("/api/v1/results?token={token}"),
        &[("content-type", JSON), ("origin", &web.origin())],
        Some(b"{}".to_vec()),
    );
    assert_eq!(a.text(), UNAUTHORIZED);
    // With the bearer, a stray URL token is ignored rather than refused.
    assert_eq!(
        web.get(&format!("/api/v1/status?token={token}")).status,
        200
    );
}

#[test]
fn the_token_file_is_private_in_the_state_dir_and_stays_across_restarts() {
    use std::os::unix::fs::PermissionsExt;
    let web = Web::new();
    let path = web.env.state.join("web").join("token");
    let meta = fs::symlink_metadata(&path).unwrap();
    assert!(meta.is_file());
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    let dir_mode = fs::metadata(path.parent().unwrap())
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(dir_mode & 0o077, 0, "the folder is private: {dir_mode:o}");
    let token = web.serve.token.clone();
    assert_eq!(token.len(), 64);
    assert!(token.bytes().all(|b| b.is_ascii_hexdigit()));
    assert_eq!(fs::read_to_string(&path).unwrap().trim(), token);

    let Web { serve, env, .. } = web;
    drop(serve);
    let web = Web::on(env);
    assert_eq!(web.serve.token, token, "the same token after a restart");
    assert_eq!(web.get("/api/v1/status").status, 200);
    // Two at once share it too.
    let other = Serve::start(hook(&web.env), &[]);
    assert_eq!(other.token, token);
    assert_ne!(other.base, web.serve.base);
}

/// One request on a fresh connection, written as given; the status and the answer.
fn raw(web: &Web, request: &str) -> (u16, String) {
    let mut s = TcpStream::connect(web.serve.addr).unwrap();
    s.set_read_timeout(Some(SECS)).unwrap();
    s.write_all(request.as_bytes()).unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    let out = text(&out);
    let status = out
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line: {out:?}"));
    (status, out)
}

#[test]
fn a_host_that_is_not_loopback_is_421_even_with_the_token() {
    let web = Web::new();
    let port = web.serve.addr.port();
    let token = &web.serve.token;
    let get = |host: &str| {
        raw(
            &web,
            &format!(
                "GET /api/v1/status HTTP/1.1\r\n{host}Authorization: Bearer {token}\r\n\
                 Connection: close\r\n\r\n"
            ),
        )
    };
    for host in [
        "evil.example".to_owned(),
        format!("evil.example:{port}"),
        format!("127.0.0.1.evil.example:{port}"),
        "10.0.0.1".to_owned(),
    ] {
        let (status, answer) = get(&format!("Host: {host}\r\n"));
        assert_eq!(status, 421, "{host}: {answer}");
        assert!(answer.contains(r#"{"error":"#), "{answer}");
    }
    for host in [
        format!("127.0.0.1:{port}"),
        format!("localhost:{port}"),
        format!("[::1]:{port}"),
        "127.0.0.1".to_owned(),
    ] {
        let (status, answer) = get(&format!("Host: {host}\r\n"));
        assert_eq!(status, 200, "{host}: {answer}");
    }
    // HTTP/1.0 without a Host at all.
    let (status, _) = raw(
        &web,
        &format!("GET /api/v1/status HTTP/1.0\r\nAuthorization: Bearer {token}\r\n\r\n"),
    );
    assert_eq!(status, 421);
}

#[test]
fn every_post_route_refuses_a_foreign_origin_and_a_cookie_without_the_own_origin() {
    let web = Web::new();
    let bearer = web.bearer();
    let cookie = web.cookie();
    let own = web.origin();
    let localhost = format!("http://localhost:{}", web.serve.addr.port());
    let posts = post_routes();
    assert_eq!(posts.len(), 9, "{posts:?}");
    for path in &posts {
        let post = |headers: &[(&str, &str)]| {
            let mut h = vec![("content-type", JSON)];
            h.extend_from_slice(headers);
            web.request("POST", path, &h, Some(b"{}".to_vec()))
        };
        for refused in [
            post(&[("authorization", &bearer), ("origin", FOREIGN)]),
            post(&[("authorization", &bearer), ("origin", "null")]),
            post(&[("authorization", &bearer), ("origin", &localhost)]),
            post(&[("cookie", &cookie)]),
            post(&[("cookie", &cookie), ("origin", FOREIGN)]),
            post(&[
                ("cookie", &cookie),
                ("origin", &format!("{own}.evil.example")),
            ]),
        ] {
            assert!(
                refused.error(403).contains("Origin"),
                "{path}: {}",
                refused.text()
            );
        }
        for allowed in [
            post(&[("cookie", &cookie), ("origin", &own)]),
            post(&[("authorization", &bearer), ("origin", &own)]),
            post(&[("authorization", &bearer)]),
        ] {
            assert!(
                ![401, 403].contains(&allowed.status),
                "{path}: {} {}",
                allowed.status,
                allowed.text()
            );
        }
    }
    // A GET needs no Origin, even with the cookie (the page's EventSource, its reads).
    let a = web.request("GET", "/api/v1/status", &[("cookie", &cookie)], None);
    assert_eq!(a.status, 200);
}

#[test]
fn no_answer_carries_a_cors_header_not_even_to_a_preflight() {
    // Every answer of every test is checked (`check_headers`); here the requests a
    // foreign page would make.
    let web = Web::new();
    let bearer = web.bearer();
    for (method, path) in ROUTES {
        let path = concrete(path);
        for auth in [None, Some(bearer.as_str())] {
            let mut h = vec![
                ("origin", FOREIGN),
                ("access-control-request-method", "POST"),
                (
                    "access-control-request-headers",
                    "authorization, content-type",
                ),
            ];
            if let Some(a) = auth {
                h.push(("authorization", a));
            }
            let pre = web.request("OPTIONS", &path, &h, None);
            // Refused before routing: without the token, or (a method that is not GET)
            // for its foreign Origin.
            let want = if auth.is_some() { 403 } else { 401 };
            assert_eq!(pre.status, want, "OPTIONS {path}: {}", pre.text());
            if path.ends_with("/events") && method == "GET" && auth.is_some() {
                // A stream: its head is checked by `stream_response`.
                continue;
            }
            let mut h = vec![("origin", FOREIGN)];
            if let Some(a) = auth {
                h.push(("authorization", a));
            }
            web.request(method, &path, &h, None);
        }
    }
    let resp = web.stream_response("?backlog=0", None);
    assert_eq!(resp.status(), 200);
}

// ---- bad input ----

#[test]
fn bad_input_is_a_4xx_with_a_json_error_and_the_server_goes_on() {
    let web = Web::new();
    let _w1 = web.quick_agent("w1");
    let send = |body: &str| web.post_bytes("/api/v1/send", Some(JSON), body.into());
    send(r#"{"target": "w1", "prompt": "#).error(400);
    send(r#"{"target": "w1", "prompt": "x", "bogus": 1}"#).error(400);
    send(r#"{"target": "w1"}"#).error(400);
    send(r#"{"target": 7, "prompt": "x"}"#).error(400);
    send(r#""w1""#).error(400);
    send("null").error(400);
    send("").error(400);
    send("\u{0}\u{1}garbage").error(400);
    web.post_bytes(
        "/api/v1/send",
        Some(JSON),
        vec![0xff, 0xfe, 0x00, 0x80, 0x7b, 0x22, 0xc3],
    )
    .error(400);
    let prompt_over = format!(
        r#"{{"target": "w1", "prompt": "{}"}}"#,
        "x".repeat(ceh::web::MAX_BODY)
    );
    send(&prompt_over).error(413);
    web.post_bytes(
        "/api/v1/send",
        Some("text/plain"),
        br#"{"target":"w1","prompt":"x"}"#.to_vec(),
    )
    .error(415);
    web.post_bytes(
        "/api/v1/send",
        None,
        br#"{"target":"w1","prompt":"x"}"#.to_vec(),
    )
    .error(415);
    web.post_bytes(
        "/api/v1/board/tasks",
        Some("application/x-www-form-urlencoded"),
        b"title=x".to_vec(),
    )
    .error(415);
    assert!(
        send(r#"{"target": "nobody", "prompt": "x"}"#)
            .error(404)
            .contains("nobody")
    );
    send(r#"{"target": "Not A Name!", "prompt": "x"}"#).error(400);
    // Task ids: unknown (of a valid form) and invalid.
    web.get("/api/v1/tasks/t-1").error(404);
    web.post("/api/v1/tasks/t-1/cancel", &json!({})).error(404);
    web.get("/api/v1/tasks/Not_An_Id").error(400);
    web.post("/api/v1/tasks/Not_An_Id/cancel", &json!({}))
        .error(400);
    web.get(&format!("/api/v1/tasks/{}", "a".repeat(65)))
        .error(400);
    // Agents.
    web.get("/api/v1/agents/nobody/output").error(404);
    web.get("/api/v1/agents/Not_A_Name/output").error(400);
    // Routes and methods.
    web.get("/api/v1/nope").error(404);
    web.get("/api/v1/send").error(405);
    web.post("/api/v1/status", &json!({})).error(405);
    // Results and board bodies.
    web.post("/api/v1/results", &json!({"chief": "Not A Chief"}))
        .error(400);
    web.post("/api/v1/results", &json!({"ticket": "Not_An_Id"}))
        .error(400);
    web.post("/api/v1/board/tasks", &json!({"board": "b"}))
        .error(400);
    web.post("/api/v1/board/init", &json!({"goal": "", "board": "b"}))
        .error(409);
    // The server still answers, and the agent still works.
    assert_eq!(web.get("/api/v1/status").status, 200);
    let sent = web
        .post(
            "/api/v1/send",
            &json!({"target": "w1", "prompt": "still there?"}),
        )
        .ok(200);
    assert_eq!(sent["outcome"], "ok");
}

#[test]
fn bad_query_parameters_are_a_400_with_a_json_error() {
    let web = Web::new();
    let _w1 = web.quick_agent("w1");
    web.get("/api/v1/agents/w1/output?since=abc").error(400);
    web.get("/api/v1/agents/w1/output?since=-1").error(400);
    web.get("/api/v1/agents/w1/output?bogus=1").error(400);
    web.get("/api/v1/board/status?bogus=1").error(400);
    web.get("/api/v1/events?backlog=lots").error(400);
    web.get("/api/v1/tasks/%FF%FE").error(400);
    assert_eq!(web.get("/api/v1/status").status, 200);
}

// ---- property tests of the request bodies ----

/// The fields the POST routes take, so that generated objects reach the handlers.
const FIELDS: [&str; 17] = [
    "target",
    "prompt",
    "background",
    "timeout_s",
    "chief",
    "ticket",
    "goal",
    "plan",
    "board",
    "title",
    "body",
    "priority",
    "deps",
    "role",
    "worker",
    "roles",
    "lease_s",
];

/// Text without `/`: a board named by a generated string stays a name, never a path
/// somewhere on this machine.
fn text_strategy() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::collection::vec(any::<char>(), 0..12),
        prop::collection::vec(
            prop::sample::select(vec!['a', 'b', '1', '-', '_', ' ', 'é', '\0', '"', '.']),
            0..12
        ),
        Just(vec![]),
    ]
    .prop_map(|chars| chars.into_iter().filter(|&c| c != '/').collect())
}

fn json_strategy() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        prop_oneof![Just(0u64), Just(1), Just(u64::MAX), Just(i64::MAX as u64)]
            .prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        text_strategy().prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 24, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec(
                (
                    prop_oneof![
                        prop::sample::select(FIELDS.to_vec()).prop_map(String::from),
                        text_strategy()
                    ],
                    inner
                ),
                0..6
            )
            .prop_map(|kv| Value::Object(kv.into_iter().collect())),
        ]
    })
}

/// A body: any JSON, an object of the routes' fields with any values, or any bytes.
fn body_strategy() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        json_strategy().prop_map(|v| v.to_string().into_bytes()),
        prop::collection::vec(
            (prop::sample::select(FIELDS.to_vec()), json_strategy()),
            0..8
        )
        .prop_map(|kv| {
            let obj: serde_json::Map<String, Value> =
                kv.into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
            Value::Object(obj).to_string().into_bytes()
        }),
        prop::collection::vec(any::<u8>(), 0..64),
    ]
}

fn runner(cases: u32) -> TestRunner {
    TestRunner::new(Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    })
}

/// An answer no input may give: a 5xx, a body that is not JSON, a 4xx without `error`.
fn check_answer(what: &str, a: &Answer) -> Result<(), TestCaseError> {
    prop_assert!(a.status < 500, "{what}: {} {}", a.status, a.text());
    let v: Value = serde_json::from_slice(&a.body)
        .map_err(|e| TestCaseError::fail(format!("{what}: not JSON ({e}): {}", a.text())))?;
    if a.status >= 400 {
        prop_assert!(v["error"].is_string(), "{what}: {} {v}", a.status);
    }
    Ok(())
}

#[test]
fn any_body_posted_to_any_post_route_gives_a_json_answer_and_never_a_5xx() {
    let mut web = Web::new();
    let posts = post_routes();
    let result = runner(64).run(&body_strategy(), |body| {
        for path in &posts {
            let a = web.post_bytes(path, Some(JSON), body.clone());
            check_answer(&format!("POST {path} {:?}", text(&body)), &a)?;
        }
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e}\nserver stderr:\n{}", web.serve.stderr());
    }
    assert!(web.serve.exited().is_none(), "{}", web.serve.stderr());
    assert_eq!(web.get("/api/v1/status").status, 200);
}

#[test]
fn any_task_id_agent_name_or_query_gives_a_json_answer_and_never_a_5xx() {
    let mut web = Web::new();
    let segment = prop::collection::vec(
        prop::sample::select(vec!['a', 'z', '0', '9', '-', '_', 'A', '.', '%', '~']),
        1..70,
    )
    .prop_map(|c| c.into_iter().collect::<String>());
    let query = prop::collection::vec(
        (
            prop::sample::select(vec!["since", "backlog", "board", "x", "token"]),
            prop::collection::vec(
                prop::sample::select(vec!['1', '0', '-', 'a', '+', '%']),
                0..25,
            ),
        ),
        0..3,
    );
    let result = runner(64).run(&(segment, query), |(seg, query)| {
        let q: Vec<String> = query
            .iter()
            .map(|(k, v)| format!("{k}={}", v.iter().collect::<String>()))
            .collect();
        let q = q.join("&");
        for path in [
            format!("/api/v1/tasks/{seg}"),
            format!("/api/v1/agents/{seg}/output?{q}"),
            format!("/api/v1/board/status?{q}"),
            format!("/api/v1/board/notes?{q}"),
        ] {
            let a = web.get(&path);
            check_answer(&format!("GET {path}"), &a)?;
        }
        let a = web.post(&format!("/api/v1/tasks/{seg}/cancel"), &json!({}));
        check_answer(&format!("POST tasks/{seg}/cancel"), &a)?;
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e}\nserver stderr:\n{}", web.serve.stderr());
    }
    assert!(web.serve.exited().is_none(), "{}", web.serve.stderr());
}

/// Numbers for the fields that are counts of seconds: any, the edges, and plausible ones.
fn seconds() -> impl Strategy<Value = u64> {
    prop_oneof![
        any::<u64>(),
        Just(0u64),
        Just(1),
        Just(u64::MAX),
        Just(i64::MAX as u64),
        0u64..10_000_000_000_000,
    ]
}

#[test]
fn any_lease_or_priority_in_the_board_verbs_leaves_the_board_readable() {
    let web = Web::new();
    let boards = std::sync::atomic::AtomicUsize::new(0);
    let result = runner(32).run(&(seconds(), any::<i64>()), |(lease_s, priority)| {
        let n = boards.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let b = format!("n{n}");
        web.post(
            "/api/v1/board/init",
            &json!({"goal": "numbers", "board": b}),
        )
        .ok(200);
        let a = web.post(
            "/api/v1/board/tasks",
            &json!({"title": "prioritised", "priority": priority, "board": b}),
        );
        check_answer(&format!("add with priority {priority}"), &a)?;
        web.post(
            "/api/v1/board/tasks",
            &json!({"title": "plain", "board": b}),
        )
        .ok(201);
        let a = web.post(
            "/api/v1/board/claim",
            &json!({"worker": "w", "lease_s": lease_s, "board": b}),
        );
        check_answer(&format!("claim with lease_s {lease_s}"), &a)?;
        prop_assert_eq!(
            a.status,
            200,
            "claim with lease_s {}: {}",
            lease_s,
            a.text()
        );
        // Any verb with the worker renews its leases.
        let a = web.post(
            "/api/v1/board/notes",
            &json!({"text": "still on it", "worker": "w", "board": b}),
        );
        check_answer(&format!("a note after a claim with lease_s {lease_s}"), &a)?;
        let s = web.get(&format!("/api/v1/board/status?board={b}"));
        prop_assert_eq!(
            s.status,
            200,
            "the board after a claim with lease_s {}: {}",
            lease_s,
            s.text()
        );
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e}\nserver stderr:\n{}", web.serve.stderr());
    }
}

#[test]
fn any_timeout_in_a_send_gives_an_answer_and_never_a_5xx() {
    let web = Web::new();
    let _w1 = web.quick_agent("w1");
    let result = runner(32).run(&(seconds(), any::<bool>()), |(timeout_s, background)| {
        let a = web.post(
            "/api/v1/send",
            &json!({"target": "w1", "prompt": "numbers", "timeout_s": timeout_s,
                    "background": background}),
        );
        check_answer(&format!("send with timeout_s {timeout_s}"), &a)?;
        prop_assert_eq!(a.status, if background { 202 } else { 200 });
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e}\nserver stderr:\n{}", web.serve.stderr());
    }
}

// ---- the event stream ----

#[test]
fn the_stream_starts_with_the_team_then_log_events_whose_ids_are_inode_offset() {
    use std::os::unix::fs::MetadataExt;
    let web = Web::new();
    for i in 0..5 {
        mark(&web, &format!("m{i}"));
    }
    let s = web.stream("?backlog=3", None);
    let first = s.next().unwrap();
    assert_eq!(first.event, "team");
    assert!(first.id.is_none());
    let team = first.json();
    assert_eq!(team["agents"], json!([]));
    assert_eq!(team, web.get("/api/v1/status").ok(200));

    mark(&web, "sentinel");
    let logs = s.logs_until(|e| is_mark(e, "sentinel"));
    let ino = fs::metadata(web.log_path()).unwrap().ino();
    let len = fs::metadata(web.log_path()).unwrap().len();
    let marks: Vec<Value> = logs.iter().map(|e| e.json()["task"].clone()).collect();
    assert_eq!(marks, ["m2", "m3", "m4", "sentinel"]);
    for e in &logs {
        let id = e.id.as_deref().unwrap();
        let (i, o) = id.split_once('-').unwrap();
        assert_eq!(i.parse::<u64>().unwrap(), ino, "{id}");
        assert!(o.parse::<u64>().unwrap() <= len, "{id}");
    }
    assert_eq!(logs.last().unwrap().id, Some(format!("{ino}-{len}")));
    let all = lines_in(&web, "events.jsonl", 0);
    assert_eq!(id_and_data(&logs), all[all.len() - 4..]);

    // An agent that starts now is in the next team documents.
    let _w1 = web.quick_agent("w1");
    loop {
        let e = s.next().unwrap();
        if e.event == "team" && e.json()["agents"][0]["status"] == "idle" {
            assert_eq!(e.json()["agents"][0]["name"], "w1");
            break;
        }
    }

    // A task's events come as they happen, each as `events --json` prints it.
    let sent = web
        .post("/api/v1/send", &json!({"target": "w1", "prompt": "hello"}))
        .ok(200);
    let id = sent["task_id"].as_str().unwrap();
    let logs = s.logs_until(|e| e.json()["kind"] == "task_finished");
    let kinds: Vec<Value> = logs
        .iter()
        .map(|e| e.json())
        .filter(|v| v["task"] == id && v["kind"] != "agent_status")
        .map(|v| v["kind"].clone())
        .collect();
    assert_eq!(kinds, ["task_queued", "task_delivered", "task_finished"]);
    let out = output_with_timeout(hook(&web.env).args(["events", "--json"]), SECS);
    let printed: Vec<&str> = std::str::from_utf8(&out.stdout).unwrap().lines().collect();
    for e in &logs {
        assert!(printed.contains(&e.data.as_str()), "{}", e.data);
    }
    // The team changes are sent too.
    loop {
        let e = s.next().unwrap();
        if e.event == "team" && e.json()["agents"][0]["recent"][0]["id"] == id {
            break;
        }
    }
}

#[test]
fn last_event_id_resumes_right_after_that_event_with_no_gap_and_no_duplicate() {
    let web = Web::new();
    for i in 0..10 {
        mark(&web, &format!("m{i}"));
    }
    let s = web.stream("?backlog=10", None);
    mark(&web, "live");
    let first = s.logs_until(|e| is_mark(e, "live"));
    assert_eq!(id_and_data(&first), lines_in(&web, "events.jsonl", 0));
    for (round, k) in [0usize, 4, 9, 10].into_iter().enumerate() {
        let id = first[k].id.clone().unwrap();
        let offset: u64 = id.split_once('-').unwrap().1.parse().unwrap();
        let again = web.stream("", Some(&id));
        assert_eq!(again.next().unwrap().event, "team");
        let sentinel = format!("s{round}");
        mark(&web, &sentinel);
        let got = again.logs_until(|e| is_mark(e, &sentinel));
        assert_eq!(
            id_and_data(&got),
            lines_in(&web, "events.jsonl", offset),
            "resumed after event {k} ({id})"
        );
    }
    // The same by the query parameter, for a client that cannot send the header.
    let id = first[7].id.clone().unwrap();
    let by_query = web.stream(&format!("?last_event_id={id}"), None);
    mark(&web, "q");
    let got = by_query.logs_until(|e| is_mark(e, "q"));
    assert_eq!(got[0].id, first[8].id);
    // An id the log does not hold: the backlog instead.
    let lost = web.stream("?backlog=2", Some("1-0"));
    mark(&web, "after-lost");
    let got = lost.logs_until(|e| is_mark(e, "after-lost"));
    assert_eq!(got.len(), 3, "{got:?}");
    let bad = web.stream("?backlog=1", Some("not-an-id"));
    mark(&web, "after-bad");
    assert_eq!(bad.logs_until(|e| is_mark(e, "after-bad")).len(), 2);
}

#[test]
fn last_event_id_resumes_across_a_rotation_of_the_log() {
    use ceh::events::MAX_LOG_BYTES;
    let web = Web::new();
    for i in 0..5 {
        mark(&web, &format!("m{i}"));
    }
    let live = web.stream("?backlog=5", None);
    mark(&web, "m5");
    let before = live.logs_until(|e| is_mark(e, "m5"));
    assert_eq!(before.len(), 6);
    // Fill the log to its limit cheaply (a hole of zeros, which no reader takes for an
    // event, closed by a newline): the next event rotates it.
    {
        let f = fs::OpenOptions::new()
            .append(true)
            .open(web.log_path())
            .unwrap();
        f.set_len(MAX_LOG_BYTES).unwrap();
        (&f).write_all(b"\n").unwrap();
    }
    mark(&web, "m6");
    let old = web.log_path().with_file_name("events.jsonl.1");
    wait_until(SECS, "the log to rotate", || old.exists().then_some(()));
    for i in 7..10 {
        mark(&web, &format!("m{i}"));
    }
    // The stream that was open goes on across the rotation.
    let after = live.logs_until(|e| is_mark(e, "m9"));
    let marks: Vec<Value> = after.iter().map(|e| e.json()["task"].clone()).collect();
    assert_eq!(marks, ["m6", "m7", "m8", "m9"]);
    let old_offset = |e: &Ev| -> u64 {
        e.id.as_deref()
            .unwrap()
            .split_once('-')
            .unwrap()
            .1
            .parse()
            .unwrap()
    };
    let expected = |k: usize| {
        let mut all = lines_in(&web, "events.jsonl.1", old_offset(&before[k]));
        all.extend(lines_in(&web, "events.jsonl", 0));
        all
    };
    assert_eq!(id_and_data(&after), expected(5));
    // Resuming from an event of the previous generation.
    for k in [1usize, 5] {
        let id = before[k].id.clone().unwrap();
        let again = web.stream("", Some(&id));
        let sentinel = format!("s{k}");
        mark(&web, &sentinel);
        let got = again.logs_until(|e| is_mark(e, &sentinel));
        assert_eq!(id_and_data(&got), expected(k), "resumed after {id}");
    }
}

#[test]
fn backlog_sends_that_many_past_events_at_most_200() {
    let web = Web::new();
    for i in 0..30 {
        mark(&web, &format!("m{i}"));
    }
    let count = |query: &str, sentinel: &str| {
        let s = web.stream(query, None);
        mark(&web, sentinel);
        s.logs_until(|e| is_mark(e, sentinel)).len() - 1
    };
    assert_eq!(count("?backlog=0", "a"), 0);
    assert_eq!(count("?backlog=5", "b"), 5);
    assert_eq!(count("", "c"), 20, "the default");
    assert_eq!(count("?backlog=200", "d"), 33, "everything there is");
    let refused = Answer::new(web.stream_response("?backlog=201", None));
    assert!(refused.error(400).contains("201"));
}

/// VmRSS of `pid`, in KiB.
fn rss_kib(pid: i32) -> u64 {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .expect("VmRSS")
}

/// utime + stime of `pid` (every thread), in milliseconds.
fn cpu_ms(pid: i32) -> f64 {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .unwrap()
        .1
        .split_whitespace()
        .collect();
    // Fields 14 and 15 of proc(5), counted from the state (field 3).
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    // SAFETY: sysconf only reads a configuration value.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    ticks as f64 * 1000.0 / hz
}

/// A stream opened on a raw socket that is then never read: the head is read, nothing
/// more. The socket's receive buffer is made small, so that the server's writes to it
/// soon block.
fn stalled_stream(web: &Web, query: &str) -> TcpStream {
    use std::os::fd::AsRawFd;
    let mut s = TcpStream::connect(web.serve.addr).unwrap();
    let small: libc::c_int = 4096;
    // SAFETY: a valid socket and a pointer to an int of the size given.
    let rc = unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVBUF,
            (&small as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    assert_eq!(rc, 0);
    s.set_read_timeout(Some(SECS)).unwrap();
    write!(
        s,
        "GET /api/v1/events{query} HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {}\r\n\r\n",
        web.serve.addr, web.serve.token
    )
    .unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        let n = s.read(&mut byte).expect("the stream's head");
        assert_eq!(n, 1, "the server closed the stream: {}", text(&head));
        head.push(byte[0]);
    }
    let head = text(&head);
    assert!(head.starts_with("HTTP/1.1 200 "), "{head}");
    s
}

#[test]
fn a_hundred_streams_each_get_all_500_task_finished_events_and_a_stalled_reader_blocks_none() {
    const CLIENTS: usize = 100;
    const TASKS: usize = 500;
    let started = Instant::now();
    let web = Web::new();
    let agents: Vec<Agent> = ["f1", "f2", "f3"]
        .iter()
        .map(|n| web.quick_agent(n))
        .collect();
    let (tx, rx) = mpsc::channel();
    for c in 0..CLIENTS {
        let resp = web.stream_response("?backlog=0", None);
        assert_eq!(resp.status(), 200);
        let tx = tx.clone();
        std::thread::spawn(move || {
            let mut finished: HashSet<String> = HashSet::new();
            let mut dups = 0usize;
            let mut all_idle = false;
            read_sse(resp.into_body().into_reader(), |e| {
                match e.event.as_str() {
                    "log" => {
                        let v = e.json();
                        if v["kind"] == "task_finished"
                            && !finished.insert(v["task"].as_str().unwrap().to_owned())
                        {
                            dups += 1;
                        }
                    }
                    "team" if finished.len() >= TASKS => {
                        let v = e.json();
                        let agents = v["agents"].as_array().unwrap();
                        all_idle =
                            agents.len() == 3 && agents.iter().all(|a| a["status"] == "idle");
                    }
                    _ => {}
                }
                !(finished.len() >= TASKS && all_idle)
            });
            let _ = tx.send((c, finished, dups, all_idle));
        });
    }
    drop(tx);
    let _stalled = stalled_stream(&web, "?backlog=0");
    let pid = web.serve.pid();
    let rss_before = rss_kib(pid);

    let mut sent: HashSet<String> = HashSet::new();
    let mut delivered: Vec<String> = Vec::new();
    let collect = |delivered: &mut Vec<String>| {
        let r = web.post("/api/v1/results", &json!({})).ok(200);
        for item in r["results"].as_array().unwrap() {
            assert_eq!(item["outcome"], "ok", "{item}");
            delivered.push(item["task_id"].as_str().unwrap().to_owned());
        }
    };
    for i in 0..TASKS {
        let target = ["f1", "f2", "f3"][i % 3];
        let t = web
            .post(
                "/api/v1/send",
                &json!({"target": target, "prompt": format!("task {i}"), "background": true}),
            )
            .ok(202);
        sent.insert(t["task_id"].as_str().unwrap().to_owned());
        // The page collects its results as they come; so does this test, which keeps
        // the team document (with its tickets) small.
        if i % 25 == 24 {
            collect(&mut delivered);
        }
    }
    let sent_at = started.elapsed();
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut reports = Vec::new();
    while reports.len() < CLIENTS {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(r) => reports.push(r),
            Err(_) => panic!(
                "{} of {CLIENTS} clients saw everything in time",
                reports.len()
            ),
        }
    }
    for (c, finished, dups, all_idle) in &reports {
        assert_eq!(dups, &0, "client {c} got a task_finished twice");
        assert_eq!(finished, &sent, "client {c}");
        assert!(
            all_idle,
            "client {c}: the last team document shows all idle"
        );
    }
    wait_until(SECS, "every result delivered", || {
        collect(&mut delivered);
        (delivered.len() >= TASKS).then_some(())
    });
    let unique: HashSet<&String> = delivered.iter().collect();
    assert_eq!(unique.len(), delivered.len(), "a result delivered twice");
    assert_eq!(unique.len(), TASKS);
    let rss_after = rss_kib(pid);
    eprintln!(
        "load: {TASKS} tasks sent in {sent_at:?}, all seen by {CLIENTS} streams after {:?}; \
         serve's RSS {} MiB before, {} MiB after",
        started.elapsed(),
        rss_before / 1024,
        rss_after / 1024
    );
    assert!(
        rss_after < 200 * 1024,
        "serve's RSS grew to {rss_after} KiB"
    );
    assert_eq!(web.get("/api/v1/status").status, 200);
    drop(agents);
}

#[test]
fn the_513th_event_stream_is_refused_with_503_until_one_closes() {
    let web = Web::new();
    let mut open: Vec<TcpStream> = (0..512)
        .map(|_| stalled_stream(&web, "?backlog=0"))
        .collect();
    let refused = Answer::new(web.stream_response("", None));
    assert!(refused.error(503).contains("512"), "{}", refused.text());
    // The rest of the API still answers.
    assert_eq!(web.get("/api/v1/status").status, 200);
    // A stream that goes frees its place.
    drop(open.pop());
    let s = wait_until(SECS, "a place for a new stream", || {
        web.try_stream("?backlog=0", None).ok()
    });
    assert_eq!(s.next().unwrap().event, "team");
}

#[test]
fn sigterm_ends_the_streams_cancels_a_waiting_send_and_exits_0() {
    let mut web = Web::new();
    let _slow = web
        .env
        .agent("slow", &["--demo", "--demo-delay-ms", "60000", "--quiet"]);
    let streams: Vec<Stream> = (0..3).map(|_| web.stream("", None)).collect();
    for s in &streams {
        assert_eq!(s.next().unwrap().event, "team");
    }
    let (tx, rx) = mpsc::channel();
    {
        let url = web.url("/api/v1/send");
        let bearer = web.bearer();
        std::thread::spawn(move || {
            let r = client(Some(Duration::from_secs(120)))
                .post(url)
                .header("authorization", &bearer)
                .header("content-type", JSON)
                .send(json!({"target": "slow", "prompt": "wait for me"}).to_string());
            let _ = tx.send(r.map(Answer::new));
        });
    }
    let status = web
        .env
        .wait_status("slow", "working", |s| s["task"]["id"].is_string());
    let id = status["task"]["id"].as_str().unwrap().to_owned();
    assert!(web.get(&format!("/api/v1/tasks/{id}")).ok(200)["done"].is_null());

    let t = Instant::now();
    let exit = web
        .serve
        .stop(Duration::from_secs(20))
        .expect("serve exits");
    let took = t.elapsed();
    assert_eq!(exit.code(), Some(0), "{}", web.serve.stderr());
    assert!(took < Duration::from_secs(6), "serve took {took:?} to stop");
    assert!(web.serve.stderr().contains("SIGTERM: stopping"));
    for s in &streams {
        s.wait_end();
    }
    let done = read_json(&task_dir(&web, &id).join("done.json"));
    assert_eq!(done["outcome"], "cancelled", "{done}");
    let reason = done["reason"].as_str().unwrap();
    assert!(reason.contains("web server"), "{reason}");
    // The waiting client got its answer, or at worst saw the connection close.
    match rx.recv_timeout(SECS).expect("the send returns") {
        Ok(a) => {
            let v = a.ok(200);
            assert_eq!(v["outcome"], "cancelled", "{v}");
            assert_eq!(v["task_id"], id.as_str());
        }
        Err(e) => eprintln!("the waiting send saw: {e}"),
    }
    web.env.wait_status("slow", "idle", |_| true);
}

#[test]
fn ten_idle_streams_cost_the_server_next_to_no_cpu() {
    let web = Web::new();
    let streams: Vec<Stream> = (0..10).map(|_| web.stream("", None)).collect();
    for s in &streams {
        assert_eq!(s.next().unwrap().event, "team");
    }
    let pid = web.serve.pid();
    let before = cpu_ms(pid);
    // The measurement window itself: nothing happens in it, by design.
    std::thread::sleep(Duration::from_secs(2));
    let used = cpu_ms(pid) - before;
    assert!(used < 100.0, "{used} ms of CPU in 2 s, idle");
}

#[test]
fn listening_elsewhere_on_purpose_warns_takes_any_host_and_open_runs_the_browser() {
    let env = Env::new();
    let opened = env.dir.path().join("opened");
    let browser = write_script(
        env.dir.path(),
        "browser",
        &format!(
            "echo \"$1\" > {}",
            ceh::shell::quote(&opened.display().to_string())
        ),
    );
    let mut cmd = hook(&env);
    cmd.env("BROWSER", &browser);
    let serve = Serve::start(cmd, &["--listen", "0.0.0.0:0", "--open"]);
    wait_until(SECS, "the warning on stderr", || {
        serve
            .stderr()
            .contains("which is not loopback: anyone who can reach it and has the token")
            .then_some(())
    });
    let got = wait_until(SECS, "the browser to get the URL", || {
        fs::read_to_string(&opened)
            .ok()
            .filter(|s| s.ends_with('\n'))
    });
    assert_eq!(got.trim(), serve.url);
    // Any Host: whoever reaches it names it as they like; the token still decides.
    let port = serve.addr.port();
    let get = |auth: &str| {
        let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.set_read_timeout(Some(SECS)).unwrap();
        write!(
            s,
            "GET /api/v1/status HTTP/1.1\r\nHost: box.lan:{port}\r\n{auth}Connection: close\r\n\r\n"
        )
        .unwrap();
        let mut out = Vec::new();
        let _ = s.read_to_end(&mut out);
        text(&out)
    };
    let with = get(&format!("Authorization: Bearer {}\r\n", serve.token));
    assert!(with.starts_with("HTTP/1.1 200"), "{with}");
    let without = get("");
    assert!(without.starts_with("HTTP/1.1 401"), "{without}");
    assert!(without.ends_with(UNAUTHORIZED), "{without}");
}
