//! Removing an agent's worktree, only when nothing would be lost.

use anyhow::Result;

use super::Record;

/// What removing the worktree and its branch would throw away.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Loss {
    /// Uncommitted (or untracked) paths in the worktree.
    pub uncommitted: Vec<String>,
    /// Commits on the branch whose changes the base does not have.
    pub unmerged_commits: u64,
}

impl Loss {
    pub fn is_empty(&self) -> bool {
        self.uncommitted.is_empty() && self.unmerged_commits == 0
    }

    /// One line for the refusal: what would be lost.
    pub fn describe(&self, rec: &Record) -> String {
        let mut parts = Vec::new();
        if !self.uncommitted.is_empty() {
            let shown: Vec<&str> = self
                .uncommitted
                .iter()
                .take(10)
                .map(String::as_str)
                .collect();
            let more = self.uncommitted.len().saturating_sub(shown.len());
            let more = if more > 0 {
                format!(" and {more} more")
            } else {
                String::new()
            };
            parts.push(format!(
                "{} uncommitted file(s) in {} ({}{more})",
                self.uncommitted.len(),
                rec.path.display(),
                shown.join(", ")
            ));
        }
        if self.unmerged_commits > 0 {
            parts.push(format!(
                "{} commit(s) on {} that {} does not have",
                self.unmerged_commits, rec.branch, rec.base
            ));
        }
        parts.join(" and ")
    }
}

/// What removing `rec` would lose. A branch whose changes are all in its base already
/// (merged, squash-merged or cherry-picked) loses nothing.
pub fn loss(rec: &Record) -> Result<Loss> {
    let mut loss = Loss::default();
    if rec.path.is_dir() {
        loss.uncommitted = rec.git().dirty_paths()?;
    }
    let git = super::Git::new(&rec.repo);
    if !git.branch_exists(&rec.branch)? {
        return Ok(loss);
    }
    let base = rec.base_commit_now()?;
    let ahead: u64 = git
        .run(["rev-list", "--count", &format!("{base}..{}", rec.branch)])?
        .parse()
        .unwrap_or(0);
    if ahead == 0 {
        return Ok(loss);
    }
    // Commits the base lacks, but maybe only by id: would merging change the base?
    let out = git.output([
        "merge-tree",
        "--write-tree",
        "--no-messages",
        &base,
        &rec.branch,
    ])?;
    let tree = String::from_utf8_lossy(&out.stdout)
        .lines()
        .next()
        .unwrap_or("")
        .to_owned();
    let base_tree = git.run(["rev-parse", &format!("{base}^{{tree}}")])?;
    if !(out.status.success() && tree == base_tree) {
        loss.unmerged_commits = ahead;
    }
    Ok(loss)
}

/// Removes the worktree, its branch and its record. The caller checked [`loss`] (or was
/// told `--force`).
pub fn remove(rec: &Record) -> Result<()> {
    let git = super::Git::new(&rec.repo);
    if rec.path.is_dir() {
        git.run([
            "worktree".as_ref(),
            "remove".as_ref(),
            "--force".as_ref(),
            rec.path.as_os_str(),
        ])?;
    }
    git.run(["worktree", "prune"])?;
    if git.branch_exists(&rec.branch)? {
        git.run(["branch", "--quiet", "-D", &rec.branch])?;
    }
    super::remove_record(rec)
}
