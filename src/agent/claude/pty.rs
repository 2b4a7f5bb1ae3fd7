//! The hosted Claude Code's terminal: a PTY whose output is mirrored to the agent's
//! window by a thread, and whose exit is reported on the session's channel.

use std::io::{Read, Write};
use std::sync::mpsc::Sender;

use anyhow::Result;
use portable_pty::{ChildKiller, CommandBuilder, MasterPty, PtySize, native_pty_system};

/// A process on a PTY of ours.
pub struct Pty {
    master: Box<dyn MasterPty + Send>,
    writer: Box<dyn Write + Send>,
    killer: Box<dyn ChildKiller + Send + Sync>,
    pub pid: u32,
}

impl Pty {
    /// Starts `cmd` on a new PTY the size of the agent's window. Its screen goes to our
    /// stdout as it comes; when it exits, `on_exit(how)` is sent on `tx`.
    pub fn spawn<E: Send + 'static>(
        cmd: CommandBuilder,
        tx: Sender<E>,
        on_exit: fn(String) -> E,
    ) -> Result<Self> {
        let program = cmd.get_argv().first().cloned().unwrap_or_default();
        let pty = native_pty_system()
            .openpty(window_size())
            .map_err(|e| anyhow::anyhow!("failed to open a pty: {e}"))?;
        let mut child = pty
            .slave
            .spawn_command(cmd)
            .map_err(|e| anyhow::anyhow!("failed to start {}: {e}", program.to_string_lossy()))?;
        drop(pty.slave);
        let pid = child.process_id().unwrap_or(0);
        let killer = child.clone_killer();
        let mut reader = pty
            .master
            .try_clone_reader()
            .map_err(|e| anyhow::anyhow!("pty reader: {e}"))?;
        let writer = pty
            .master
            .take_writer()
            .map_err(|e| anyhow::anyhow!("pty writer: {e}"))?;
        std::thread::spawn(move || {
            let mut buf = [0u8; 16384];
            let mut out = std::io::stdout();
            while let Ok(n) = reader.read(&mut buf) {
                if n == 0 {
                    break;
                }
                let _ = out.write_all(&buf[..n]).and_then(|()| out.flush());
            }
        });
        std::thread::spawn(move || {
            let how = match child.wait() {
                Ok(s) if s.signal().is_some() => {
                    format!("killed by {}", s.signal().unwrap_or("a signal"))
                }
                Ok(s) => format!("exit status {}", s.exit_code()),
                Err(e) => format!("unknown status ({e})"),
            };
            let _ = tx.send(on_exit(how));
        });
        Ok(Self {
            master: pty.master,
            writer,
            killer,
            pid,
        })
    }

    pub fn write(&mut self, bytes: &[u8]) -> Result<()> {
        self.writer.write_all(bytes)?;
        self.writer.flush()?;
        Ok(())
    }

    /// Resizes the PTY to the agent's window.
    pub fn resize(&self) {
        let _ = self.master.resize(window_size());
    }

    /// Ends the process.
    pub fn kill(&mut self) {
        let _ = self.killer.kill();
    }
}

/// The agent window's size, or 200x50 without a terminal.
fn window_size() -> PtySize {
    let (cols, rows) = crossterm::terminal::size().unwrap_or((200, 50));
    PtySize {
        rows,
        cols,
        pixel_width: 0,
        pixel_height: 0,
    }
}
