//! An offline fake of the Anthropic Messages API, good enough for Claude Code.
//!
//! `FakeApi` listens on `127.0.0.1:<random port>` and answers
//! `POST /v1/messages?beta=true` the way Claude Code 2.1.x needs (see
//! `docs/claude-code.md#fake-api`):
//! streaming SSE with a unique message id per reply, a JSON answer for the
//! interactive title request, Anthropic error bodies, and a Bash `tool_use`
//! round trip. Every request is recorded so tests can wait for a prompt and
//! check the conversation that Claude Code sent.
//!
//! It is a small HTTP/1.1 server on std only: one thread per connection,
//! keep-alive, `Content-Length` or chunked request bodies. Every response has
//! a `Content-Length`, so keep-alive stays unambiguous for the client.

use std::collections::HashMap;
use std::io::{self, BufRead, BufReader, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// Longest first line of a prompt echoed back by the default reply.
const ECHO_MAX_CHARS: usize = 200;

/// What the fake answers to one prompt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// A normal assistant text answer (`stop_reason: end_turn`).
    Text(String),
    /// An HTTP error with an Anthropic error body and `x-should-retry: false`.
    Error {
        status: u16,
        kind: String,
        message: String,
    },
    /// A Bash `tool_use` block running `command`. Claude Code runs it and sends
    /// a second request with the `tool_result`; the fake answers that one with
    /// the text `FAKE-TOOL-DONE: <first line of the result>`.
    BashToolUse { command: String },
    /// One assistant message holding several text blocks, in order (for facts
    /// about which block Stop reports and how the transcript splits a reply).
    Texts(Vec<String>),
    /// A `tool_use` block for any tool Claude Code offers, e.g. an MCP tool
    /// (`mcp__team__delegate`) with its arguments. Claude Code calls it and sends the
    /// `tool_result`, which the tool-result script answers (see
    /// [`FakeApi::set_tool_reply`]).
    ToolUse { name: String, input: Value },
    /// A text answer streamed slowly, `pause` before each chunk but the first
    /// (issue 14: live output of a long answer): with `blocks`, each chunk is a text
    /// block of its own, else one `text_delta` of a single block.
    Paced {
        chunks: Vec<String>,
        pause: Duration,
        blocks: bool,
    },
}

/// A response, written in parts with `pause` before each part after the first.
struct Response {
    parts: Vec<Vec<u8>>,
    pause: Duration,
}

impl From<Vec<u8>> for Response {
    fn from(bytes: Vec<u8>) -> Self {
        Response {
            parts: vec![bytes],
            pause: Duration::ZERO,
        }
    }
}

/// What kind of request Claude Code sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestKind {
    /// A user prompt: the last user message ends with a text block.
    Prompt,
    /// The interactive session-title side request (structured output).
    Title,
    /// The follow-up that carries `tool_result` blocks.
    ToolResult,
}

/// One `POST /v1/messages` as the fake saw it.
#[derive(Debug, Clone)]
pub struct RecordedRequest {
    pub kind: RequestKind,
    /// The last text block of the last user message ("" if there is none).
    pub prompt: String,
    /// Length of the `messages` array, `role: "system"` entries included.
    pub n_messages: usize,
    /// The `X-Claude-Code-Session-Id` header, if sent.
    pub session_header: Option<String>,
    /// Text of each `tool_result` block in the last user message.
    pub tool_results: Vec<String>,
    /// The whole JSON request body, for checks the fields above do not cover.
    pub body: Value,
}

impl RecordedRequest {
    /// How many entries of `messages` have this `role` ("user", "assistant",
    /// "system"), for checks on the conversation context Claude Code sent.
    pub fn n_role(&self, role: &str) -> usize {
        self.body["messages"]
            .as_array()
            .map_or(0, |m| m.iter().filter(|m| m["role"] == role).count())
    }
}

type ReplyFn = dyn Fn(&str) -> Reply + Send + Sync;

struct Shared {
    requests: Mutex<Vec<RecordedRequest>>,
    recorded: Condvar,
    reply: Mutex<Arc<ReplyFn>>,
    /// Answers a request that carries a `tool_result`; gets that result's text.
    tool_reply: Mutex<Arc<ReplyFn>>,
    next_id: AtomicU64,
    stopping: AtomicBool,
    /// `METHOD path` of every request other than `POST /v1/messages`.
    other_requests: Mutex<Vec<String>>,
    /// Clones of live connections, shut down on drop to end their threads.
    connections: Mutex<Vec<TcpStream>>,
    /// The `usage` every reply reports, see [`FakeApi::set_usage`].
    usage: Mutex<Usage>,
    /// When each chunk of a [`Reply::Paced`] went out, see [`FakeApi::paced_sent`].
    paced_sent: Mutex<Vec<Instant>>,
}

/// Token counts the fake reports in `message_start` (and `output_tokens`
/// again in `message_delta`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Usage {
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cache_creation_input_tokens: u64,
    pub cache_read_input_tokens: u64,
}

impl Default for Usage {
    fn default() -> Self {
        Usage {
            input_tokens: 10,
            output_tokens: 10,
            cache_creation_input_tokens: 0,
            cache_read_input_tokens: 0,
        }
    }
}

/// A running fake Messages API; stops accepting when dropped.
pub struct FakeApi {
    addr: SocketAddr,
    shared: Arc<Shared>,
}

impl FakeApi {
    /// Starts the server on `127.0.0.1:0` with the default echo reply.
    pub fn start() -> FakeApi {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind fake api listener");
        let addr = listener.local_addr().expect("fake api local addr");
        let shared = Arc::new(Shared {
            requests: Mutex::new(Vec::new()),
            recorded: Condvar::new(),
            reply: Mutex::new(Arc::new(|prompt: &str| Reply::Text(default_reply(prompt)))),
            tool_reply: Mutex::new(Arc::new(|result: &str| {
                Reply::Text(tool_done_reply(result))
            })),
            next_id: AtomicU64::new(1),
            stopping: AtomicBool::new(false),
            other_requests: Mutex::new(Vec::new()),
            connections: Mutex::new(Vec::new()),
            usage: Mutex::new(Usage::default()),
            paced_sent: Mutex::new(Vec::new()),
        });
        let accept_shared = Arc::clone(&shared);
        thread::Builder::new()
            .name("fake-api-accept".into())
            .spawn(move || accept_loop(&listener, &accept_shared))
            .expect("spawn fake api accept thread");
        FakeApi { addr, shared }
    }

    /// `http://127.0.0.1:PORT`, the value for `ANTHROPIC_BASE_URL`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Replaces the reply script. `f` gets the newest prompt text. Title and
    /// tool-result requests are answered by the fake itself, not by `f`.
    pub fn set_reply(&self, f: impl Fn(&str) -> Reply + Send + Sync + 'static) {
        *lock(&self.shared.reply) = Arc::new(f);
    }

    /// Replaces the answer to a request carrying a `tool_result`: `f` gets the text of
    /// the first result and may call another tool. The default answers
    /// `FAKE-TOOL-DONE: <first line of the result>`.
    pub fn set_tool_reply(&self, f: impl Fn(&str) -> Reply + Send + Sync + 'static) {
        *lock(&self.shared.tool_reply) = Arc::new(f);
    }

    /// Makes every later reply report `usage` (distinct numbers let a test
    /// see each field arrive in the transcript).
    pub fn set_usage(&self, usage: Usage) {
        *lock(&self.shared.usage) = usage;
    }

    /// When each chunk of the [`Reply::Paced`] replies so far was written to the
    /// socket (and flushed), in order.
    pub fn paced_sent(&self) -> Vec<Instant> {
        lock(&self.shared.paced_sent).clone()
    }

    /// The prompts received so far (kind `Prompt` only), oldest first.
    pub fn prompts(&self) -> Vec<String> {
        let requests = lock(&self.shared.requests);
        requests
            .iter()
            .filter(|r| r.kind == RequestKind::Prompt)
            .map(|r| r.prompt.clone())
            .collect()
    }

    /// Every request received so far, titles and tool results included.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        lock(&self.shared.requests).clone()
    }

    /// `METHOD path` of every request that was not a Messages call, such as
    /// the `HEAD /` connection warm-up, oldest first.
    pub fn other_requests(&self) -> Vec<String> {
        lock(&self.shared.other_requests).clone()
    }

    /// Returns the first recorded request matching `pred`, waiting up to
    /// `timeout` for one to arrive; `None` on timeout.
    pub fn wait_for_request(
        &self,
        pred: impl Fn(&RecordedRequest) -> bool,
        timeout: Duration,
    ) -> Option<RecordedRequest> {
        let deadline = Instant::now() + timeout;
        let mut requests = lock(&self.shared.requests);
        loop {
            if let Some(found) = requests.iter().find(|r| pred(r)) {
                return Some(found.clone());
            }
            let left = deadline.checked_duration_since(Instant::now())?;
            requests = self
                .shared
                .recorded
                .wait_timeout(requests, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }

    /// Returns the first recorded prompt matching `pred`, waiting up to
    /// `timeout`; `None` on timeout.
    pub fn wait_for_prompt(
        &self,
        pred: impl Fn(&str) -> bool,
        timeout: Duration,
    ) -> Option<String> {
        self.wait_for_request(
            |r| r.kind == RequestKind::Prompt && pred(&r.prompt),
            timeout,
        )
        .map(|r| r.prompt)
    }
}

impl Drop for FakeApi {
    fn drop(&mut self) {
        self.shared.stopping.store(true, Ordering::SeqCst);
        // Wake the blocking accept() so the accept thread sees the flag.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        for conn in lock(&self.shared.connections).drain(..) {
            let _ = conn.shutdown(Shutdown::Both);
        }
    }
}

/// The default answer: `FAKE-REPLY: ` + the prompt's first line, truncated.
pub fn default_reply(prompt: &str) -> String {
    let first_line: String = prompt
        .lines()
        .next()
        .unwrap_or("")
        .chars()
        .take(ECHO_MAX_CHARS)
        .collect();
    format!("FAKE-REPLY: {first_line}")
}

/// The default answer to a tool result: `FAKE-TOOL-DONE: ` + its first line.
pub fn tool_done_reply(result: &str) -> String {
    format!("FAKE-TOOL-DONE: {}", result.lines().next().unwrap_or(""))
}

/// Locks `m`, ignoring poisoning: a panicking test thread must not hide the
/// recorded requests from the other threads.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn accept_loop(listener: &TcpListener, shared: &Arc<Shared>) {
    for stream in listener.incoming() {
        if shared.stopping.load(Ordering::SeqCst) {
            return;
        }
        let Ok(stream) = stream else { continue };
        if let Ok(clone) = stream.try_clone() {
            lock(&shared.connections).push(clone);
        }
        let shared = Arc::clone(shared);
        let _ = thread::Builder::new()
            .name("fake-api-conn".into())
            .spawn(move || {
                if let Err(err) = serve_connection(stream, &shared)
                    && !shared.stopping.load(Ordering::SeqCst)
                {
                    eprintln!("fake api: connection error: {err}");
                }
            });
    }
}

/// One parsed HTTP request.
struct HttpRequest {
    method: String,
    path: String,
    headers: HashMap<String, String>,
    body: Vec<u8>,
}

/// Serves requests on one keep-alive connection until the client closes it.
fn serve_connection(stream: TcpStream, shared: &Shared) -> io::Result<()> {
    let mut writer = stream.try_clone()?;
    let mut reader = BufReader::new(stream);
    while let Some(request) = read_request(&mut reader, &mut writer)? {
        let close = request
            .headers
            .get("connection")
            .is_some_and(|v| v.eq_ignore_ascii_case("close"));
        let response = route(&request, shared);
        for (i, part) in response.parts.iter().enumerate() {
            if i > 0 {
                thread::sleep(response.pause);
            }
            writer.write_all(part)?;
            writer.flush()?;
            // The chunks of a paced reply: every part between its head and its end.
            if i > 0 && i + 1 < response.parts.len() {
                lock(&shared.paced_sent).push(Instant::now());
            }
        }
        if close {
            break;
        }
    }
    Ok(())
}

/// Reads one request; `Ok(None)` when the client closed the connection.
fn read_request(
    reader: &mut impl BufRead,
    writer: &mut impl Write,
) -> io::Result<Option<HttpRequest>> {
    let mut line = String::new();
    if reader.read_line(&mut line)? == 0 {
        return Ok(None);
    }
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or("").to_string();
    let path = parts.next().unwrap_or("").to_string();
    let mut headers = HashMap::new();
    loop {
        line.clear();
        if reader.read_line(&mut line)? == 0 {
            return Ok(None);
        }
        let header = line.trim_end();
        if header.is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':') {
            headers.insert(name.trim().to_ascii_lowercase(), value.trim().to_string());
        }
    }
    if headers
        .get("expect")
        .is_some_and(|v| v.eq_ignore_ascii_case("100-continue"))
    {
        writer.write_all(b"HTTP/1.1 100 Continue\r\n\r\n")?;
    }
    let chunked = headers
        .get("transfer-encoding")
        .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"));
    let body = if chunked {
        read_chunked(reader)?
    } else {
        let len = headers
            .get("content-length")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let mut body = vec![0; len];
        reader.read_exact(&mut body)?;
        body
    };
    Ok(Some(HttpRequest {
        method,
        path,
        headers,
        body,
    }))
}

/// Reads a `Transfer-Encoding: chunked` body, trailers included.
fn read_chunked(reader: &mut impl BufRead) -> io::Result<Vec<u8>> {
    let mut body = Vec::new();
    let mut line = String::new();
    loop {
        line.clear();
        reader.read_line(&mut line)?;
        let size_hex = line.trim().split(';').next().unwrap_or("");
        let size = usize::from_str_radix(size_hex, 16).map_err(|_| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("bad chunk size {line:?}"),
            )
        })?;
        if size == 0 {
            // Trailer lines end with an empty line.
            loop {
                line.clear();
                if reader.read_line(&mut line)? == 0 || line.trim().is_empty() {
                    return Ok(body);
                }
            }
        }
        let start = body.len();
        body.resize(start + size, 0);
        reader.read_exact(&mut body[start..])?;
        let mut crlf = [0; 2];
        reader.read_exact(&mut crlf)?;
    }
}

/// Builds the full HTTP response for `request`.
fn route(request: &HttpRequest, shared: &Shared) -> Response {
    let path = request.path.split('?').next().unwrap_or("");
    match (request.method.as_str(), path) {
        ("POST", "/v1/messages") => return messages(request, shared),
        ("POST", "/v1/messages/count_tokens") => {
            lock(&shared.other_requests).push(format!("{} {}", request.method, request.path));
            return http_response(
                200,
                "application/json",
                &[],
                &json!({"input_tokens": 10}).to_string(),
            )
            .into();
        }
        _ => {}
    }
    lock(&shared.other_requests).push(format!("{} {}", request.method, request.path));
    match (request.method.as_str(), path) {
        // Claude Code warms up its connection with `HEAD <base url>` at start.
        ("HEAD" | "GET", "/") => http_response(200, "text/plain", &[], ""),
        _ => error_response(
            404,
            "not_found_error",
            &format!("fake api has no {} {}", request.method, request.path),
        ),
    }
    .into()
}

fn messages(request: &HttpRequest, shared: &Shared) -> Response {
    let body: Value = match serde_json::from_slice(&request.body) {
        Ok(body) => body,
        Err(err) => {
            return error_response(400, "invalid_request_error", &format!("bad json: {err}"))
                .into();
        }
    };
    let recorded = record(
        &body,
        request.headers.get("x-claude-code-session-id").cloned(),
    );
    let kind = recorded.kind;
    let prompt = recorded.prompt.clone();
    let first_result = recorded.tool_results.first().cloned().unwrap_or_default();
    {
        lock(&shared.requests).push(recorded);
        shared.recorded.notify_all();
    }
    let reply = match kind {
        RequestKind::Title => Reply::Text(r#"{"title":"t"}"#.to_string()),
        RequestKind::ToolResult => {
            let script = Arc::clone(&lock(&shared.tool_reply));
            script(&first_result)
        }
        RequestKind::Prompt => {
            let script = Arc::clone(&lock(&shared.reply));
            script(&prompt)
        }
    };
    let id = shared.next_id.fetch_add(1, Ordering::SeqCst);
    let model = body["model"].as_str().unwrap_or("claude-fake").to_string();
    let message = Message {
        id: format!("msg_fake_{id:06}"),
        model,
        reply,
        usage: *lock(&shared.usage),
    };
    if let Reply::Error {
        status,
        kind,
        message,
    } = &message.reply
    {
        return error_response(*status, kind, message).into();
    }
    let stream = body["stream"].as_bool() == Some(true);
    if let (
        Reply::Paced {
            chunks,
            pause,
            blocks,
        },
        true,
    ) = (&message.reply, stream)
    {
        return message.paced_sse(chunks, *pause, *blocks);
    }
    if stream {
        http_response(
            200,
            "text/event-stream",
            &[("cache-control", "no-cache")],
            &message.sse(),
        )
        .into()
    } else {
        http_response(200, "application/json", &[], &message.json().to_string()).into()
    }
}

/// Classifies and records a Messages request body.
fn record(body: &Value, session_header: Option<String>) -> RecordedRequest {
    let messages = body["messages"].as_array().map_or(&[][..], Vec::as_slice);
    let last_user = messages.iter().rev().find(|m| m["role"] == "user");
    let blocks: Vec<Value> = match last_user.map(|m| &m["content"]) {
        Some(Value::String(text)) => vec![json!({"type": "text", "text": text})],
        Some(Value::Array(blocks)) => blocks.clone(),
        _ => Vec::new(),
    };
    let prompt = blocks
        .iter()
        .rev()
        .find(|b| b["type"] == "text")
        .and_then(|b| b["text"].as_str())
        .unwrap_or("")
        .to_string();
    let tool_results: Vec<String> = blocks
        .iter()
        .filter(|b| b["type"] == "tool_result")
        .map(|b| block_text(&b["content"]))
        .collect();
    // The title request asks for structured output: `output_config.format`
    // with a JSON schema. Every request has an `output_config` (it holds
    // `effort`), so only `format` tells them apart.
    let is_title = !body["output_config"]["format"].is_null();
    let kind = if is_title {
        RequestKind::Title
    } else if !tool_results.is_empty() {
        RequestKind::ToolResult
    } else {
        RequestKind::Prompt
    };
    RecordedRequest {
        kind,
        prompt,
        n_messages: messages.len(),
        session_header,
        tool_results,
        body: body.clone(),
    }
}

/// The text of a `tool_result` content: a string or an array of text blocks.
fn block_text(content: &Value) -> String {
    match content {
        Value::String(text) => text.clone(),
        Value::Array(blocks) => blocks
            .iter()
            .filter_map(|b| b["text"].as_str())
            .collect::<Vec<_>>()
            .join("\n"),
        _ => String::new(),
    }
}

/// One assistant reply, rendered as SSE or as a plain JSON message.
struct Message {
    id: String,
    model: String,
    reply: Reply,
    usage: Usage,
}

impl Message {
    fn content_and_stop(&self) -> (Vec<Value>, &'static str) {
        match &self.reply {
            Reply::Text(text) => (vec![json!({"type": "text", "text": text})], "end_turn"),
            Reply::Paced { chunks, blocks, .. } => (
                match blocks {
                    true => chunks
                        .iter()
                        .map(|c| json!({"type": "text", "text": c}))
                        .collect(),
                    false => vec![json!({"type": "text", "text": chunks.concat()})],
                },
                "end_turn",
            ),
            Reply::Texts(texts) => (
                texts
                    .iter()
                    .map(|text| json!({"type": "text", "text": text}))
                    .collect(),
                "end_turn",
            ),
            Reply::BashToolUse { command } => (
                vec![json!({
                    "type": "tool_use",
                    "id": format!("toolu_{}", self.id),
                    "name": "Bash",
                    "input": {"command": command, "description": "fake tool call"},
                })],
                "tool_use",
            ),
            Reply::ToolUse { name, input } => (
                vec![json!({
                    "type": "tool_use",
                    "id": format!("toolu_{}", self.id),
                    "name": name,
                    "input": input,
                })],
                "tool_use",
            ),
            Reply::Error { .. } => unreachable!("errors are answered before rendering"),
        }
    }

    fn usage(&self) -> Value {
        let u = self.usage;
        json!({
            "input_tokens": u.input_tokens,
            "output_tokens": u.output_tokens,
            "cache_creation_input_tokens": u.cache_creation_input_tokens,
            "cache_read_input_tokens": u.cache_read_input_tokens,
        })
    }

    fn json(&self) -> Value {
        let (blocks, stop) = self.content_and_stop();
        json!({
            "id": self.id, "type": "message", "role": "assistant", "model": self.model,
            "content": blocks, "stop_reason": stop, "stop_sequence": null, "usage": self.usage(),
        })
    }

    /// One text block whose deltas come `pause` apart, in HTTP chunked encoding.
    fn paced_sse(&self, chunks: &[String], pause: Duration, blocks: bool) -> Response {
        let event = |e: Value| {
            let name = e["type"].as_str().unwrap_or("").to_owned();
            let data = format!("event: {name}\ndata: {e}\n\n");
            format!("{:x}\r\n{data}\r\n", data.len()).into_bytes()
        };
        let mut head = concat!(
            "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncache-control: no-cache\r\n",
            "transfer-encoding: chunked\r\nrequest-id: req_fake\r\n\r\n"
        )
        .as_bytes()
        .to_vec();
        head.extend(event(json!({"type": "message_start", "message": {
            "id": self.id, "type": "message", "role": "assistant", "model": self.model, "content": [],
            "stop_reason": null, "stop_sequence": null, "usage": self.usage()}})));
        let start = |index: usize| {
            event(json!({"type": "content_block_start", "index": index,
                "content_block": {"type": "text", "text": ""}}))
        };
        let stop = |index: usize| event(json!({"type": "content_block_stop", "index": index}));
        let mut parts = vec![head];
        let mut index = 0;
        for (n, chunk) in chunks.iter().enumerate() {
            let mut part = Vec::new();
            if n == 0 || blocks {
                index = if blocks { n } else { 0 };
                part.extend(start(index));
            }
            part.extend(event(json!({"type": "content_block_delta", "index": index,
                "delta": {"type": "text_delta", "text": chunk}})));
            if blocks {
                part.extend(stop(index));
            }
            parts.push(part);
        }
        let mut end = if blocks { Vec::new() } else { stop(0) };
        end.extend(event(json!({"type": "message_delta",
            "delta": {"stop_reason": "end_turn", "stop_sequence": null},
            "usage": {"output_tokens": self.usage.output_tokens}})));
        end.extend(event(json!({"type": "message_stop"})));
        end.extend_from_slice(b"0\r\n\r\n");
        parts.push(end);
        Response { parts, pause }
    }

    fn sse(&self) -> String {
        let (blocks, stop) = self.content_and_stop();
        let mut events = vec![json!({"type": "message_start", "message": {
            "id": self.id, "type": "message", "role": "assistant", "model": self.model, "content": [],
            "stop_reason": null, "stop_sequence": null, "usage": self.usage()}})];
        for (index, block) in blocks.iter().enumerate() {
            // The start event carries the block empty; its body follows as a delta.
            let (start_block, delta) = if block["type"] == "text" {
                (
                    json!({"type": "text", "text": ""}),
                    json!({"type": "text_delta", "text": block["text"]}),
                )
            } else {
                let mut start = block.clone();
                start["input"] = json!({});
                (
                    start,
                    json!({"type": "input_json_delta", "partial_json": block["input"].to_string()}),
                )
            };
            events.extend([
                json!({"type": "content_block_start", "index": index, "content_block": start_block}),
                json!({"type": "content_block_delta", "index": index, "delta": delta}),
                json!({"type": "content_block_stop", "index": index}),
            ]);
        }
        events.extend([
            json!({"type": "message_delta", "delta": {"stop_reason": stop, "stop_sequence": null},
                   "usage": {"output_tokens": self.usage.output_tokens}}),
            json!({"type": "message_stop"}),
        ]);
        let mut out = String::new();
        for event in events {
            let name = event["type"].as_str().unwrap_or("");
            // Writing to a String cannot fail.
            let _ = std::fmt::Write::write_fmt(
                &mut out,
                format_args!("event: {name}\ndata: {event}\n\n"),
            );
        }
        out
    }
}

/// An Anthropic-style error; `x-should-retry: false` stops Claude Code retrying.
fn error_response(status: u16, kind: &str, message: &str) -> Vec<u8> {
    let body = json!({"type": "error", "error": {"type": kind, "message": message}});
    http_response(
        status,
        "application/json",
        &[("x-should-retry", "false")],
        &body.to_string(),
    )
}

fn http_response(status: u16, content_type: &str, extra: &[(&str, &str)], body: &str) -> Vec<u8> {
    let reason = match status {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        404 => "Not Found",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        529 => "Overloaded",
        _ => "Status",
    };
    let mut head = format!(
        "HTTP/1.1 {status} {reason}\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\nrequest-id: req_fake\r\n",
        body.len()
    );
    for (name, value) in extra {
        head.push_str(name);
        head.push_str(": ");
        head.push_str(value);
        head.push_str("\r\n");
    }
    head.push_str("\r\n");
    let mut out = head.into_bytes();
    out.extend_from_slice(body.as_bytes());
    out
}
