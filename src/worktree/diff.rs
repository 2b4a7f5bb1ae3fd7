//! What an agent changed: `claude-editor-hook diff NAME`, and the count of files a task
//! changed for the answer's header.
//!
//! Both look at the worktree as it is on disk, committed or not, untracked files
//! included: a [`Snapshot`] writes the whole working tree as a git tree object through a
//! private index file, so the agent's own index is never touched.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use super::{Git, Record};

/// The working tree of a worktree at one moment, as a git tree id.
#[derive(Clone, Debug)]
pub struct Snapshot {
    pub dir: PathBuf,
    pub tree: String,
}

impl Snapshot {
    /// Writes the working tree of `dir` (minus ignored files) as a tree object.
    pub fn take(dir: &Path) -> Result<Self> {
        let git = Git::new(dir);
        let real_index = git.run(["rev-parse", "--path-format=absolute", "--git-path", "index"])?;
        let tmp = tempfile::Builder::new()
            .prefix("ceh-index-")
            .tempfile()
            .context("failed to create a temporary index")?;
        // Starting from a copy of the real index keeps its stat data, so `add -A` only
        // hashes the files that changed.
        let private = git.with_index(tmp.path());
        if std::fs::copy(&real_index, tmp.path()).is_err() {
            private.run(["read-tree", "HEAD"])?;
        }
        private.run(["add", "--all", "--", "."])?;
        let tree = private.run(["write-tree"])?;
        Ok(Self {
            dir: dir.to_path_buf(),
            tree,
        })
    }

    /// The files that differ between this snapshot and the worktree now.
    pub fn changed_since(&self) -> Result<Vec<String>> {
        let now = Snapshot::take(&self.dir)?;
        Git::new(&self.dir).lines(["diff", "--name-only", "--no-renames", &self.tree, &now.tree])
    }
}

/// Makes the working tree of the fresh worktree `dest` look like `snap` (the uncommitted
/// changes of the agent it forks), leaving them uncommitted there too.
pub fn carry_into(snap: &Snapshot, dest: &Path) -> Result<()> {
    let git = Git::new(dest);
    git.run(["read-tree", "--reset", "-u", &snap.tree])?;
    // Back to the branch's index: the carried changes are unstaged, new files untracked.
    git.run(["reset", "--quiet"])?;
    Ok(())
}

/// How `diff NAME` shows the changes.
#[derive(Clone, Copy, Debug, Default)]
pub struct DiffOptions {
    pub stat: bool,
    pub color: bool,
}

/// Prints the agent's changes against its base, committed and uncommitted.
pub fn show(rec: &Record, opts: DiffOptions) -> Result<()> {
    let from = rec.fork_point()?;
    let snap = Snapshot::take(&rec.path)?;
    let color = if opts.color {
        "--color=always"
    } else {
        "--color=never"
    };
    let mut args = vec!["diff", color];
    if opts.stat {
        args.push("--stat");
    }
    args.extend([from.as_str(), snap.tree.as_str()]);
    rec.git().show(args)
}

/// The files the agent changed against its base, committed and uncommitted.
pub fn changed_files(rec: &Record) -> Result<Vec<String>> {
    let from = rec.fork_point()?;
    let snap = Snapshot::take(&rec.path)?;
    rec.git().lines(["diff", "--name-only", &from, &snap.tree])
}

/// The host's snapshot of a worktree agent's tree at the start of a task; `None` without
/// a worktree, or when git fails (the task then just has no change count).
pub fn task_snapshot(worktree: Option<&crate::state::AgentWorktree>) -> Option<Snapshot> {
    Snapshot::take(&worktree?.path).ok()
}

/// What the task that started at `before` changed, for its `done.json`: `None` when it
/// changed no file.
pub fn task_changes(
    before: Option<&Snapshot>,
    worktree: Option<&crate::state::AgentWorktree>,
) -> Option<crate::state::TaskChanges> {
    let files = before?.changed_since().ok()?;
    (!files.is_empty()).then(|| crate::state::TaskChanges {
        branch: worktree.map(|w| w.branch.clone()).unwrap_or_default(),
        files: files.len() as u64,
    })
}
