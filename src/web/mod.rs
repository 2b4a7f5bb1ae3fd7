//! `claude-editor-hook serve`: the team from a browser (docs/web.md). An HTTP server
//! on axum and tokio (the only place the project runs an async HTTP stack; the Ctrl-G
//! path stays synchronous) with one page and a JSON API over the state the CLI uses.
//!
//! - [`auth`]: the token, the cookie, the Origin and Host rules (a pure `check`).
//! - [`api`]: the `/api/v1` handlers, each calling its CLI verb's library function.
//! - [`sse`]: the event stream: the log and team hubs, and each client's stream.
//! - `page/`: the page, its script and its style, compiled into the binary.
//!
//! One runtime, one listener; blocking work runs on tokio's blocking threads, and the
//! two hubs each have a thread woken by directory watches. Idle, nothing runs.

pub mod api;
pub mod auth;
pub mod sse;

use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::sync::atomic::AtomicUsize;
use std::time::Duration;

use anyhow::{Context, Result};
use axum::Router;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::sse::{KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use tokio::sync::watch;

use crate::mcp::inflight::Inflight;
use crate::state::StateDir;
use api::ApiError;
use auth::{Token, Verdict};

/// The largest request body.
pub const MAX_BODY: usize = 1 << 20;
/// How long requests in flight get to finish once a signal stops the server.
const GRACE: Duration = Duration::from_secs(5);
/// An idle event stream gets a comment this often, so that proxies keep it open.
const PING: Duration = Duration::from_secs(15);

/// Every route, as the OpenAPI document lists it (a unit test keeps the two equal).
pub const ROUTES: [(&str, &str); 21] = [
    ("GET", "/"),
    ("GET", "/favicon.ico"),
    ("GET", "/app.js"),
    ("GET", "/app.css"),
    ("GET", "/api/v1/openapi.json"),
    ("GET", "/api/v1/status"),
    ("GET", "/api/v1/tasks/{id}"),
    ("POST", "/api/v1/tasks/{id}/cancel"),
    ("GET", "/api/v1/agents/{name}/output"),
    ("GET", "/api/v1/events"),
    ("POST", "/api/v1/send"),
    ("POST", "/api/v1/results"),
    ("GET", "/api/v1/board/status"),
    ("GET", "/api/v1/board/report"),
    ("GET", "/api/v1/board/notes"),
    ("POST", "/api/v1/board/notes"),
    ("POST", "/api/v1/board/init"),
    ("POST", "/api/v1/board/tasks"),
    ("POST", "/api/v1/board/claim"),
    ("POST", "/api/v1/board/done"),
    ("POST", "/api/v1/board/fail"),
];

/// What every handler shares.
pub struct App {
    pub state: StateDir,
    pub token: Token,
    /// The server listens on loopback only (so the Host must name loopback).
    pub loopback: bool,
    pub log: sse::LogHub,
    pub team: sse::TeamHub,
    pub streams: Arc<AtomicUsize>,
    pub shutdown: watch::Receiver<bool>,
    /// The sends that wait for an answer, cancelled when the server stops.
    pub inflight: Inflight,
}

/// The server's options.
#[derive(Debug, Default)]
pub struct ServeOptions {
    /// Where to listen (default `127.0.0.1:0`, a free loopback port).
    pub listen: Option<String>,
    /// Open the page in the browser.
    pub open: bool,
}

const PAGE: &str = include_str!("page/index.html");
const SCRIPT: &str = include_str!("page/app.js");
const STYLE: &str = include_str!("page/app.css");
const OPENAPI: &str = include_str!("openapi.json");

const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; \
                   img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

fn asset(content_type: &'static str, body: &'static str) -> Response {
    ([(header::CONTENT_TYPE, content_type)], body).into_response()
}

/// The router, for a server (or a test) with `app`.
pub fn router(app: Arc<App>) -> Router {
    use api::*;
    let api = Router::new()
        .route(
            "/openapi.json",
            get(|| async { asset("application/json", OPENAPI) }),
        )
        .route("/status", get(status))
        .route("/tasks/{id}", get(task))
        .route("/tasks/{id}/cancel", post(cancel))
        .route("/agents/{name}/output", get(output))
        .route("/events", get(events))
        .route("/send", post(send))
        .route("/results", post(results))
        .route("/board/status", get(board_status))
        .route("/board/report", get(board_report))
        .route("/board/notes", get(board_notes).post(board_note))
        .route("/board/init", post(board_init))
        .route("/board/tasks", post(board_add))
        .route("/board/claim", post(board_claim))
        .route("/board/done", post(board_done))
        .route("/board/fail", post(board_fail));
    Router::new()
        .route(
            "/",
            get(|| async { asset("text/html; charset=utf-8", PAGE) }),
        )
        .route(
            "/app.js",
            get(|| async { asset("text/javascript; charset=utf-8", SCRIPT) }),
        )
        .route(
            "/app.css",
            get(|| async { asset("text/css; charset=utf-8", STYLE) }),
        )
        // The browser asks for it on every load; there is none (nothing external, and
        // the CSP allows no `data:` image), and "none" is not an error.
        .route("/favicon.ico", get(|| async { StatusCode::NO_CONTENT }))
        .nest("/api/v1", api)
        .fallback(|| async { ApiError::new(StatusCode::NOT_FOUND, "no such route") })
        .method_not_allowed_fallback(|| async {
            ApiError::new(StatusCode::METHOD_NOT_ALLOWED, "method not allowed here")
        })
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .layer(axum::middleware::from_fn_with_state(app.clone(), guard))
        .with_state(app)
}

/// Every request passes here: the token, Origin and Host rules, then the headers every
/// answer carries.
async fn guard(State(app): State<Arc<App>>, req: Request, next: Next) -> Response {
    let h = req.headers();
    let text = |name: HeaderName| h.get(name).and_then(|v| v.to_str().ok());
    let query = req.uri().query().unwrap_or("");
    let query_token = query.split('&').find_map(|kv| kv.strip_prefix("token="));
    let parts = auth::Parts {
        mutating: !matches!(*req.method(), Method::GET | Method::HEAD),
        authorization: text(header::AUTHORIZATION),
        cookie: text(header::COOKIE),
        query_token,
        origin: text(header::ORIGIN),
        host: text(header::HOST),
    };
    let mut resp = match auth::check(&app.token, app.loopback, &parts) {
        Verdict::Allow => next.run(without_token(req)).await,
        Verdict::SetCookie => {
            let rest = auth::strip_token(query);
            let to = match rest.is_empty() {
                true => req.uri().path().to_owned(),
                false => format!("{}?{rest}", req.uri().path()),
            };
            let mut r = StatusCode::SEE_OTHER.into_response();
            if let Ok(v) = HeaderValue::from_str(&to) {
                r.headers_mut().insert(header::LOCATION, v);
            }
            if let Ok(v) = HeaderValue::from_str(&auth::set_cookie(&app.token)) {
                r.headers_mut().insert(header::SET_COOKIE, v);
            }
            r
        }
        Verdict::Unauthorized => {
            ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized").into_response()
        }
        Verdict::BadOrigin => ApiError::new(
            StatusCode::FORBIDDEN,
            "a request that changes state must come from this server's own page (Origin)",
        )
        .into_response(),
        Verdict::BadHost => ApiError::new(
            StatusCode::MISDIRECTED_REQUEST,
            "this server answers only to a loopback Host",
        )
        .into_response(),
    };
    let headers = resp.headers_mut();
    for (name, value) in [
        (header::CACHE_CONTROL, "no-store"),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "same-origin"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::CONTENT_SECURITY_POLICY, CSP),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
    resp
}

/// The request without a `token` URL parameter, which is the guard's business only:
/// the handlers' queries then refuse unknown parameters without tripping on it.
fn without_token(mut req: Request) -> Request {
    let uri = req.uri();
    let Some(query) = uri
        .query()
        .filter(|q| q.split('&').any(|kv| kv.starts_with("token=")))
    else {
        return req;
    };
    let rest = auth::strip_token(query);
    let path_and_query = match rest.is_empty() {
        true => uri.path().to_owned(),
        false => format!("{}?{rest}", uri.path()),
    };
    if let Ok(pq) = path_and_query.parse() {
        let mut parts = uri.clone().into_parts();
        parts.path_and_query = Some(pq);
        if let Ok(new) = axum::http::Uri::from_parts(parts) {
            *req.uri_mut() = new;
        }
    }
    req
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventsQuery {
    #[serde(default)]
    pub backlog: Option<usize>,
    /// For a client that cannot send `Last-Event-ID`.
    #[serde(default)]
    pub last_event_id: Option<String>,
}

/// `GET events`: the team document, the backlog or the resume, then everything new.
async fn events(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    api::Query(q): api::Query<EventsQuery>,
) -> Result<Response, ApiError> {
    let backlog = q.backlog.unwrap_or(sse::DEFAULT_BACKLOG);
    if backlog > sse::MAX_BACKLOG {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("backlog {backlog} is over {}", sse::MAX_BACKLOG),
        ));
    }
    let slot = sse::StreamSlot::take(&app.streams).ok_or_else(|| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("{} event streams are open already", sse::MAX_STREAMS),
        )
    })?;
    let last_id = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .or(q.last_event_id);
    // Subscribe before reading the file: no line falls between the two.
    let log = app.log.subscribe();
    let root = app.state.root().to_path_buf();
    let start_root = root.clone();
    let (queued, pos, behind) =
        tokio::task::spawn_blocking(move || sse::start(&start_root, last_id.as_deref(), backlog))
            .await
            .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    let client = sse::Client {
        root,
        log,
        team: app.team_rx(),
        shutdown: app.shutdown.clone(),
        pos,
        queued,
        behind,
        sent_team: false,
        _slot: slot,
    };
    let stream = futures_util::stream::unfold(client, |mut c| async move {
        let ev = c.next().await?;
        Some((Ok::<_, std::convert::Infallible>(ev), c))
    });
    Ok(Sse::new(stream)
        .keep_alive(KeepAlive::new().interval(PING).text("ping"))
        .into_response())
}

impl App {
    fn team_rx(&self) -> watch::Receiver<Arc<str>> {
        self.team.receiver()
    }
}

/// Where to listen: `listen`, else a free loopback port. Returns the listener and
/// whether the address is loopback.
fn bind(listen: Option<&str>) -> Result<(TcpListener, bool)> {
    let spec = listen.unwrap_or("127.0.0.1:0");
    let addrs: Vec<SocketAddr> = std::net::ToSocketAddrs::to_socket_addrs(spec)
        .with_context(|| format!("--listen {spec:?}: not an address (HOST:PORT)"))?
        .collect();
    let listener =
        TcpListener::bind(&addrs[..]).with_context(|| format!("failed to listen on {spec}"))?;
    let loopback = listener.local_addr()?.ip().is_loopback();
    listener.set_nonblocking(true)?;
    Ok((listener, loopback))
}

/// Runs `serve` until a signal; returns the exit status.
pub fn serve(opts: &ServeOptions) -> Result<i32> {
    let state = StateDir::from_env()?;
    let token = Token::load_or_create(state.root())?;
    let (listener, loopback) = bind(opts.listen.as_deref())?;
    let addr = listener.local_addr()?;
    if !loopback {
        eprintln!(
            "claude-editor-hook serve: warning: listening on {addr}, which is not loopback: \
             anyone who can reach it and has the token can act as the chief"
        );
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("web")
        .enable_all()
        .build()
        .context("failed to start the web server's runtime")?;
    // The signals are ours before the URL is printed: whoever reads it may stop us at once.
    let (mut term, mut int, mut hup) = {
        use tokio::signal::unix::{SignalKind, signal};
        let _rt = rt.enter();
        (
            signal(SignalKind::terminate())?,
            signal(SignalKind::interrupt())?,
            signal(SignalKind::hangup())?,
        )
    };
    let (stop_tx, stop_rx) = watch::channel(false);
    let app = Arc::new(App {
        log: sse::LogHub::start(state.root().to_path_buf())?,
        team: sse::TeamHub::start(state.clone())?,
        state,
        token,
        loopback,
        streams: Arc::default(),
        shutdown: stop_rx,
        inflight: Inflight::default(),
    });
    let url = format!("http://{addr}/?token={}", app.token.as_str());
    {
        use std::io::Write;
        let mut out = std::io::stdout().lock();
        writeln!(out, "serving the team at {url}")?;
        out.flush()?;
    }
    if opts.open {
        open_browser(&url);
    }
    let inflight = app.inflight.clone();
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::from_std(listener)?;
        let mut stopping = stop_tx.subscribe();
        let server = axum::serve(listener, router(app))
            .with_graceful_shutdown(async move {
                let _ = stopping.wait_for(|s| *s).await;
            })
            .into_future();
        let server = tokio::spawn(server);
        let why = tokio::select! {
            _ = term.recv() => "SIGTERM",
            _ = int.recv() => "SIGINT",
            _ = hup.recv() => "SIGHUP",
        };
        eprintln!("claude-editor-hook serve: {why}: stopping");
        // Streams end, the listener closes, and the sends still waiting are cancelled
        // (recorded as such) before the process goes.
        let _ = stop_tx.send(true);
        inflight
            .cancel_all(&format!("the web server stopped ({why})"), GRACE)
            .await;
        let _ = tokio::time::timeout(GRACE, server).await;
        anyhow::Ok(0)
    })?;
    rt.shutdown_timeout(Duration::from_millis(100));
    Ok(0)
}

/// `--open`: `$BROWSER URL`, else `xdg-open URL`; a failure is one line, not an error.
fn open_browser(url: &str) {
    let program = std::env::var("BROWSER")
        .ok()
        .filter(|b| !b.is_empty())
        .unwrap_or_else(|| "xdg-open".into());
    let spawned = std::process::Command::new(&program)
        .arg(url)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn();
    if let Err(e) = spawned {
        eprintln!(
            "claude-editor-hook serve: --open: cannot run {program}: {e}; open the URL above"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The OpenAPI document describes exactly the routes the router has.
    #[test]
    fn the_openapi_document_lists_every_route() {
        let doc: serde_json::Value = serde_json::from_str(OPENAPI).unwrap();
        let mut listed: Vec<(String, String)> = Vec::new();
        for (path, item) in doc["paths"].as_object().unwrap() {
            for method in item.as_object().unwrap().keys() {
                listed.push((method.to_uppercase(), path.clone()));
            }
        }
        listed.sort();
        let mut routes: Vec<(String, String)> = ROUTES
            .iter()
            .filter(|(_, p)| p.starts_with("/api/"))
            .map(|(m, p)| (m.to_string(), p.to_string()))
            .collect();
        routes.sort();
        assert_eq!(listed, routes);
    }
}
