//! A running task's output: appended to `tasks/<id>/output.log`, where the waiting
//! coordinator reads the latest line, and echoed to the agent's window.
//!
//! The echo goes through [`Echo`], one writer thread with a bounded queue, so a window
//! that stops reading (Ctrl-S, a stalled pipe) can never block the host's event loop or a
//! task's output pipe; what the window cannot take is dropped from the window only, never
//! from the log or the answer.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::OnceLock;
use std::sync::mpsc::{SyncSender, TrySendError, sync_channel};

use anyhow::{Context, Result, bail};

/// Chunks the echo queue holds before it drops output for the window.
const ECHO_QUEUE: usize = 1024;

enum EchoItem {
    Bytes(Vec<u8>),
    Flush(std::sync::mpsc::Sender<()>),
}

/// The agent window's writer.
pub struct Echo;

impl Echo {
    fn queue() -> &'static SyncSender<EchoItem> {
        static QUEUE: OnceLock<SyncSender<EchoItem>> = OnceLock::new();
        QUEUE.get_or_init(|| {
            let (tx, rx) = sync_channel::<EchoItem>(ECHO_QUEUE);
            std::thread::spawn(move || {
                for item in rx {
                    match item {
                        EchoItem::Bytes(chunk) => {
                            let mut out = std::io::stdout().lock();
                            // A window that is gone is not an error worth stopping for.
                            let _ = out.write_all(&chunk).and_then(|()| out.flush());
                        }
                        EchoItem::Flush(done) => {
                            let _ = done.send(());
                        }
                    }
                }
            });
            tx
        })
    }

    /// Queues `bytes` for stdout without blocking.
    pub fn write(bytes: &[u8]) {
        match Self::queue().try_send(EchoItem::Bytes(bytes.to_vec())) {
            Ok(()) | Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {}
        }
    }

    /// Waits up to `timeout` for what was queued to be written, before the process
    /// exits.
    pub fn flush(timeout: std::time::Duration) {
        let (tx, rx) = std::sync::mpsc::channel();
        if Self::queue().try_send(EchoItem::Flush(tx)).is_ok() {
            let _ = rx.recv_timeout(timeout);
        }
    }
}

/// Appends output to the task's log and, if asked, to the agent's window.
pub struct OutputSink {
    log: File,
    echo: bool,
}

impl OutputSink {
    pub fn create(path: &Path, echo: bool) -> Result<Self> {
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            // O_NONBLOCK: a FIFO planted as the log must not block the host's open.
            .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC)
            .open(path)
            .with_context(|| format!("failed to open {}", path.display()))?;
        if !log.metadata().map(|m| m.is_file()).unwrap_or(false) {
            bail!("refusing {}: it is not a regular file", path.display());
        }
        Ok(Self { log, echo })
    }

    /// Writes a chunk. Failures of the log are ignored: the answer is kept separately.
    pub fn write(&mut self, bytes: &[u8]) {
        let _ = self.log.write_all(bytes);
        if self.echo {
            Echo::write(bytes);
        }
    }
}
