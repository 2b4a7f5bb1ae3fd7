//! `merge NAME` (the agent's work into a branch) and `sync NAME` (the base's new commits
//! into the agent's branch).
//!
//! Neither ever leaves a half-merged tree. Every check runs first, without changing
//! anything: `git merge-tree --write-tree` computes the merge in the object store, so a
//! conflict is found and reported with both sides exactly as they were. Only a merge
//! known to be clean is then made for real; should git still stop (a hook, a race), it is
//! aborted the same way.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};

use super::diff::Snapshot;
use super::{Git, Record};

/// What `merge NAME` was asked.
#[derive(Clone, Debug, Default)]
pub struct MergeOptions {
    pub squash: bool,
    /// The branch to merge into; default: the main checkout's current branch.
    pub into: Option<String>,
    /// The agent's recent tasks (`t-…: title`), for the commit messages.
    pub tasks: Vec<String>,
}

/// What a merge or sync did.
#[derive(Clone, Debug)]
pub enum Outcome {
    /// Nothing to bring over.
    UpToDate { target: String },
    Merged {
        target: String,
        commit: String,
        files: Vec<String>,
        /// The commit made of the worktree's uncommitted changes, if there were any.
        committed_pending: Option<String>,
    },
}

/// The merge result: a clean tree, or the conflicting files.
enum Trial {
    Clean(String),
    Conflicts(Vec<String>),
}

/// `git merge-tree --write-tree OURS THEIRS`: merges in the object store only.
fn trial(git: &Git, ours: &str, theirs: &str) -> Result<Trial> {
    let out = git.output([
        "merge-tree",
        "--write-tree",
        "--name-only",
        "--no-messages",
        ours,
        theirs,
    ])?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let mut lines = stdout.lines();
    let tree = lines.next().unwrap_or("").trim().to_owned();
    match out.status.code() {
        Some(0) if !tree.is_empty() => Ok(Trial::Clean(tree)),
        Some(1) => {
            let mut files: Vec<String> = lines
                .take_while(|l| !l.is_empty())
                .map(str::to_owned)
                .collect();
            files.dedup();
            Ok(Trial::Conflicts(files))
        }
        _ => bail!(
            "`git merge-tree` failed (git 2.38 or newer is needed): {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ),
    }
}

fn is_ancestor(git: &Git, a: &str, b: &str) -> Result<bool> {
    git.test(["merge-base", "--is-ancestor", a, b])
}

/// The worktree that has `branch` checked out, if any.
fn checkout_of(git: &Git, branch: &str) -> Result<Option<PathBuf>> {
    let list = git.run(["worktree", "list", "--porcelain"])?;
    let want = format!("branch refs/heads/{branch}");
    let mut path = None;
    for line in list.lines() {
        if let Some(p) = line.strip_prefix("worktree ") {
            path = Some(PathBuf::from(p));
        } else if line == want {
            return Ok(path);
        }
    }
    Ok(None)
}

fn list(files: &[String]) -> String {
    const SHOWN: usize = 20;
    let mut text = files
        .iter()
        .take(SHOWN)
        .cloned()
        .collect::<Vec<_>>()
        .join(", ");
    if files.len() > SHOWN {
        text.push_str(&format!(" and {} more", files.len() - SHOWN));
    }
    text
}

fn plural(n: usize, one: &str) -> String {
    if n == 1 {
        format!("1 {one}")
    } else {
        format!("{n} {one}s")
    }
}

/// `-c user.name=… -c user.email=…` when git has no identity configured, so the commit
/// of an agent's work does not fail on a machine where nobody ran `git config`.
fn identity(git: &Git, rec: &Record) -> Result<Vec<String>> {
    if git.test(["config", "user.email"])? {
        return Ok(Vec::new());
    }
    Ok(vec![
        "-c".into(),
        format!("user.name=agent {}", rec.agent),
        "-c".into(),
        format!("user.email={}@claude-editor-hook.invalid", rec.agent),
    ])
}

fn pending_message(rec: &Record, tasks: &[String]) -> String {
    let mut msg = format!(
        "@{}: uncommitted work on {}\n\nCommitted by `claude-editor-hook merge {}`.",
        rec.agent, rec.branch, rec.agent
    );
    if !tasks.is_empty() {
        msg.push_str("\n\nTasks:\n");
        for t in tasks {
            msg.push_str(&format!("- {t}\n"));
        }
    }
    msg
}

/// Commits everything uncommitted in the agent's worktree; `None` when it is clean.
fn commit_pending(rec: &Record, tasks: &[String]) -> Result<Option<String>> {
    let git = rec.git();
    if git.dirty_paths()?.is_empty() {
        return Ok(None);
    }
    git.run(["add", "--all", "--", "."])?;
    let mut args = identity(&git, rec)?;
    args.extend([
        "commit".into(),
        "--quiet".into(),
        "-m".into(),
        pending_message(rec, tasks),
    ]);
    git.run(&args)?;
    Ok(Some(git.run(["rev-parse", "HEAD"])?))
}

/// Merges the agent's branch, uncommitted work included, into `opts.into` or the main
/// checkout's current branch.
pub fn merge(rec: &Record, opts: &MergeOptions) -> Result<Outcome> {
    let repo = Git::new(&rec.repo);
    let target = match &opts.into {
        Some(b) => b.clone(),
        None => repo.current_branch()?.with_context(|| {
            format!(
                "the main checkout {} has a detached HEAD; say where to merge with --into BRANCH",
                rec.repo.display()
            )
        })?,
    };
    if target == rec.branch {
        bail!("{} cannot be merged into itself", rec.branch);
    }
    let target_commit = repo
        .commit_of(&format!("refs/heads/{target}"))?
        .with_context(|| format!("--into {target}: no such branch"))?;

    // The branch as it would be with its uncommitted work committed: a commit object
    // nothing points to yet, so the checks below see the real result and change nothing.
    let wt = rec.git();
    let head = wt.run(["rev-parse", "HEAD"])?;
    let snap = Snapshot::take(&rec.path)?;
    let head_tree = wt.run(["rev-parse", "HEAD^{tree}"])?;
    let candidate = if snap.tree == head_tree {
        head.clone()
    } else {
        wt.run(["commit-tree", &snap.tree, "-p", &head, "-m", "candidate"])?
    };
    if is_ancestor(&repo, &candidate, &target_commit)? {
        return Ok(Outcome::UpToDate { target });
    }
    let merged_tree = match trial(&repo, &target_commit, &candidate)? {
        Trial::Clean(tree) => tree,
        Trial::Conflicts(files) => bail!(
            "merging {} into {target} would conflict in {}: {}. Nothing was changed: \
             run `claude-editor-hook sync {}` to resolve it in the agent's worktree {}, \
             then merge again",
            rec.branch,
            plural(files.len(), "file"),
            list(&files),
            rec.agent,
            rec.path.display()
        ),
    };
    let files = repo.lines(["diff", "--name-only", &target_commit, &merged_tree])?;
    if files.is_empty() {
        // The work is in the target already (say, squash-merged before).
        return Ok(Outcome::UpToDate { target });
    }
    let checkout = checkout_of(&repo, &target)?;
    if let Some(dir) = &checkout {
        let dirty = Git::new(dir).dirty_paths()?;
        let touched: Vec<String> = dirty.into_iter().filter(|p| files.contains(p)).collect();
        if !touched.is_empty() {
            bail!(
                "{} has uncommitted changes in {} the merge would change: {}. Commit or \
                 stash them, then merge again; nothing was changed",
                dir.display(),
                plural(touched.len(), "file"),
                list(&touched)
            );
        }
    }

    let committed_pending = commit_pending(rec, &opts.tasks)?;
    let mut msg = if opts.squash {
        format!("@{}'s work from {}", rec.agent, rec.branch)
    } else {
        format!("Merge {} (@{}) into {target}", rec.branch, rec.agent)
    };
    if !opts.tasks.is_empty() {
        msg.push_str("\n\nTasks:\n");
        for t in &opts.tasks {
            msg.push_str(&format!("- {t}\n"));
        }
    }
    let commit = match &checkout {
        Some(dir) => merge_in_checkout(rec, dir, opts.squash, &msg)?,
        // Not checked out anywhere: the merge commit is made from the trial's tree.
        None => {
            let tip = wt.run(["rev-parse", "HEAD"])?;
            let mut args = identity(&repo, rec)?;
            args.extend([
                "commit-tree".into(),
                merged_tree,
                "-p".into(),
                target_commit.clone(),
            ]);
            if !opts.squash {
                args.extend(["-p".into(), tip]);
            }
            args.extend(["-m".into(), msg]);
            let commit = repo.run(&args)?;
            repo.run([
                "update-ref",
                "-m",
                "claude-editor-hook merge",
                &format!("refs/heads/{target}"),
                &commit,
                &target_commit,
            ])?;
            commit
        }
    };
    if opts.squash {
        // The squashed work is in the target now; bring the target into the branch so
        // the agent's next diff starts from there instead of showing it again.
        let sync_msg = format!("Sync {} with {target} after a squash merge", rec.branch);
        let mut args = identity(&wt, rec)?;
        args.extend(["merge", "--quiet", "--no-edit", "-m", &sync_msg, &commit].map(String::from));
        if let Err(e) = wt.run(&args) {
            let _ = wt.run(["merge", "--abort"]);
            eprintln!("claude-editor-hook: the squash merge is done, but {e:#}");
        }
    }
    Ok(Outcome::Merged {
        target,
        commit,
        files,
        committed_pending,
    })
}

/// The real merge in the checkout of the target, aborted if git stops half-way.
fn merge_in_checkout(
    rec: &Record,
    dir: &std::path::Path,
    squash: bool,
    msg: &str,
) -> Result<String> {
    let git = Git::new(dir);
    let mut args = identity(&git, rec)?;
    if squash {
        args.extend(["merge", "--squash", "--quiet", &rec.branch].map(String::from));
    } else {
        args.extend(
            [
                "merge",
                "--no-ff",
                "--quiet",
                "--no-edit",
                "-m",
                msg,
                &rec.branch,
            ]
            .map(String::from),
        );
    }
    let result = git.run(&args).and_then(|_| {
        if squash {
            let mut commit = identity(&git, rec)?;
            commit.extend(["commit", "--quiet", "-m", msg].map(String::from));
            git.run(&commit)?;
        }
        Ok(())
    });
    if let Err(e) = result {
        let conflicts = git
            .lines(["diff", "--name-only", "--diff-filter=U"])
            .unwrap_or_default();
        // `reset --merge` undoes a squash (which has no MERGE_HEAD) as well as a merge,
        // and keeps unrelated uncommitted changes.
        let _ = git.run(["reset", "--merge"]);
        if conflicts.is_empty() {
            return Err(e.context("the merge stopped and was undone"));
        }
        bail!(
            "the merge conflicted in {} and was undone: {}",
            plural(conflicts.len(), "file"),
            list(&conflicts)
        );
    }
    git.run(["rev-parse", "HEAD"])
}

/// Brings the base's new commits into the agent's branch.
pub fn sync(rec: &Record) -> Result<Outcome> {
    let wt = rec.git();
    let base = rec.base_commit_now()?;
    let head = wt.run(["rev-parse", "HEAD"])?;
    if is_ancestor(&wt, &base, &head)? {
        return Ok(Outcome::UpToDate {
            target: rec.branch.clone(),
        });
    }
    let merged_tree = match trial(&wt, &head, &base)? {
        Trial::Clean(tree) => tree,
        Trial::Conflicts(files) => bail!(
            "bringing {} into {} would conflict in {}: {}. Nothing was changed: resolve it \
             in the agent's worktree {} (`git merge {}` there), or ask the agent to",
            rec.base,
            rec.branch,
            plural(files.len(), "file"),
            list(&files),
            rec.path.display(),
            rec.base
        ),
    };
    let files = wt.lines(["diff", "--name-only", &head, &merged_tree])?;
    let touched: Vec<String> = wt
        .dirty_paths()?
        .into_iter()
        .filter(|p| files.contains(p))
        .collect();
    if !touched.is_empty() {
        bail!(
            "the worktree {} has uncommitted changes in {} the sync would change: {}. \
             Commit them there (or `claude-editor-hook merge {}`), then sync again; \
             nothing was changed",
            rec.path.display(),
            plural(touched.len(), "file"),
            list(&touched),
            rec.agent
        );
    }
    let msg = format!("Sync {} with {}", rec.branch, rec.base);
    let mut args = identity(&wt, rec)?;
    args.extend(["merge", "--quiet", "--no-edit", "-m", &msg, &base].map(String::from));
    if let Err(e) = wt.run(&args) {
        let conflicts = wt
            .lines(["diff", "--name-only", "--diff-filter=U"])
            .unwrap_or_default();
        let _ = wt.run(["reset", "--merge"]);
        return Err(e.context(format!(
            "the sync stopped and was undone (conflicts: {})",
            list(&conflicts)
        )));
    }
    Ok(Outcome::Merged {
        target: rec.branch.clone(),
        commit: wt.run(["rev-parse", "HEAD"])?,
        files,
        committed_pending: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_file_lists_are_cut() {
        let files: Vec<String> = (0..25).map(|i| format!("f{i}")).collect();
        let text = list(&files);
        assert!(text.ends_with("f19 and 5 more"), "{text}");
        assert_eq!(plural(1, "file"), "1 file");
        assert_eq!(plural(2, "file"), "2 files");
    }
}
