//! A running task's output: appended to `tasks/<id>/output.log`, where the waiting
//! coordinator reads the latest line, and echoed to the agent's window.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use anyhow::{Context, Result};

/// Appends output to the task's log and, if asked, to our stdout.
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
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(path)
            .with_context(|| format!("failed to open {}", path.display()))?;
        Ok(Self { log, echo })
    }

    /// Writes a chunk. Failures to echo (a closed terminal) are ignored; the log and the
    /// answer are what matter.
    pub fn write(&mut self, bytes: &[u8]) {
        let _ = self.log.write_all(bytes);
        if self.echo {
            let mut out = std::io::stdout().lock();
            let _ = out.write_all(bytes);
            let _ = out.flush();
        }
    }
}
