//! A running `claude-editor-hook serve` (docs/web.md): started from a prepared command
//! (in the tests, `Env::cmd(HOOK)`, so with the test's state directory), its URL and
//! token read from its first stdout line, stopped by SIGTERM and reaped when dropped.
//!
//! It knows nothing of HTTP clients, so the API tests, the browser test and the
//! benchmark can each drive it with their own.

use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::process::{Child, ChildStdout, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::wait::wait_until_or;

/// How long the server may take to print its URL, and to exit after SIGTERM (it gives
/// requests in flight 5 s), before the helper gives up.
const START: Duration = Duration::from_secs(60);
const STOP: Duration = Duration::from_secs(20);

/// The first stdout line's prefix.
pub const BANNER: &str = "serving the team at ";

pub struct Serve {
    pub child: Child,
    /// `http://127.0.0.1:PORT`, without a slash at the end.
    pub base: String,
    pub addr: SocketAddr,
    pub token: String,
    /// The URL as printed: `BASE/?token=TOKEN`.
    pub url: String,
    /// Kept open, so that the server never writes to a closed pipe.
    _stdout: BufReader<ChildStdout>,
    stderr: Arc<Mutex<Vec<u8>>>,
}

impl Serve {
    /// Runs `cmd serve ARGS…` and waits for its URL.
    pub fn start(mut cmd: Command, args: &[&str]) -> Serve {
        let mut child = cmd
            .arg("serve")
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn claude-editor-hook serve");
        let stderr = Arc::new(Mutex::new(Vec::new()));
        {
            let mut pipe = child.stderr.take().expect("piped stderr");
            let sink = stderr.clone();
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                while let Ok(n) = pipe.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    sink.lock().unwrap().extend_from_slice(&buf[..n]);
                }
            });
        }
        // The first line, read on a thread so that a server that never prints fails the
        // test instead of hanging it.
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut reader = BufReader::new(stdout);
            let mut line = String::new();
            let got = reader.read_line(&mut line).map(|_| line);
            let _ = tx.send((got, reader));
        });
        let (line, reader) = match rx.recv_timeout(START) {
            Ok((Ok(line), reader)) => (line, reader),
            Ok((Err(e), _)) => panic!("reading serve's stdout: {e}"),
            Err(_) => {
                let _ = child.kill();
                panic!("serve printed no URL within {START:?}");
            }
        };
        let Some(url) = line.trim_end().strip_prefix(BANNER) else {
            let _ = child.kill();
            let _ = child.wait();
            let err = String::from_utf8_lossy(&stderr.lock().unwrap()).into_owned();
            panic!("serve's first line is not {BANNER:?}…: {line:?}; stderr: {err}");
        };
        let (base, token) = url
            .split_once("/?token=")
            .unwrap_or_else(|| panic!("no token in the URL {url:?}"));
        let addr: SocketAddr = base
            .strip_prefix("http://")
            .and_then(|a| a.parse().ok())
            .unwrap_or_else(|| panic!("no address in the URL {url:?}"));
        Serve {
            base: base.to_owned(),
            addr,
            token: token.to_owned(),
            url: url.to_owned(),
            child,
            _stdout: reader,
            stderr,
        }
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// What the server wrote to stderr so far.
    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.stderr.lock().unwrap()).into_owned()
    }

    /// Whether the process has exited (reaping it if so).
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().expect("try_wait on serve")
    }

    /// Sends `sig` to the server.
    pub fn signal(&self, sig: nix::sys::signal::Signal) {
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.pid()), sig);
    }

    /// SIGTERM, then waits up to `timeout` for the exit; `None` if it is still running.
    pub fn stop(&mut self, timeout: Duration) -> Option<ExitStatus> {
        if let Some(status) = self.exited() {
            return Some(status);
        }
        self.signal(nix::sys::signal::Signal::SIGTERM);
        wait_until_or(timeout, || self.exited())
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        if self.stop(STOP).is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
