//! Directory watching with notify (inotify on Linux), feeding an event loop's channel.
//!
//! We watch directories, never single files: state files are replaced by rename, which
//! a watch on the old inode would miss (see notify's "Known Problems"). Events for our
//! own temp files are dropped here, so a loop wakes once per completed write.

use std::path::Path;
use std::sync::mpsc::Sender;

use anyhow::{Context, Result};
use notify::{RecommendedWatcher, RecursiveMode, Watcher};

use crate::state::file_is_temp;

/// Watches directories and sends `make()` on the channel for every relevant change.
pub struct DirWatcher {
    watcher: RecommendedWatcher,
}

impl DirWatcher {
    /// Creates a watcher that sends `make()` for each change under the watched dirs.
    pub fn new<E: Send + 'static>(
        tx: Sender<E>,
        make: impl Fn() -> E + Send + 'static,
    ) -> Result<Self> {
        let watcher = notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
            let relevant = match &res {
                Ok(event) => {
                    !event.paths.iter().all(|p| file_is_temp(p)) && !event.kind.is_access()
                }
                // A watcher error (e.g. queue overflow) means we may have missed events:
                // wake the loop so it re-reads the state.
                Err(_) => true,
            };
            if relevant {
                let _ = tx.send(make());
            }
        })
        .context("failed to create a file watcher")?;
        Ok(Self { watcher })
    }

    /// Starts watching `dir` (not recursively).
    pub fn watch(&mut self, dir: &Path) -> Result<()> {
        self.watcher
            .watch(dir, RecursiveMode::NonRecursive)
            .with_context(|| format!("failed to watch {}", dir.display()))
    }

    /// Stops watching `dir`; a directory that is already gone is not an error.
    pub fn unwatch(&mut self, dir: &Path) {
        let _ = self.watcher.unwatch(dir);
    }
}
