//! Agents that change code each work on their own `git worktree` and branch.
//!
//! An agent started with `--worktree` (or `worktree = true` in the team config) gets a
//! worktree of the repository it starts in, on branch `agent/NAME` made from a base
//! (the current branch unless `--base` says otherwise), and its driver runs there. The
//! worktree and a small record describing it live in a durable place outside the main
//! checkout (see [`root`]), so a restart, a crash or a reboot brings the same worktree
//! and branch back. docs/worktrees.md is the user's description.
//!
//! - [`git`]: the one place that runs the `git` program.
//! - this file: where worktrees live, their [`Record`], creating and finding them.
//! - [`diff`]: what an agent changed (`diff NAME`, the per-task change count).
//! - [`merge`]: `merge NAME` and `sync NAME`, which never leave a half-merged tree.
//! - [`forget`]: removing a worktree only when nothing would be lost.

pub mod diff;
pub mod forget;
pub mod git;
pub mod merge;

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};

use crate::state::{AgentName, FORMAT_VERSION, read_json, write_json};
pub use git::Git;

/// Every agent branch is `agent/<name>`.
pub const BRANCH_PREFIX: &str = "agent/";

/// The directory name of the worktree root (see [`root`]).
pub const WORKTREES_DIR: &str = "worktrees";

/// `<root>/<repo-id>/<name>.json`: one agent's worktree, written when it is created.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Record {
    pub version: u32,
    pub agent: AgentName,
    /// The repository's main checkout (its main worktree's top level).
    pub repo: PathBuf,
    /// The agent's worktree.
    pub path: PathBuf,
    /// `agent/<name>`.
    pub branch: String,
    /// What the branch was made from, and what `diff`, `merge` and `sync` compare with:
    /// a branch name such as `main`, or any ref given to `--base`.
    pub base: String,
    /// The commit `base` named when the worktree was made (used if `base` is gone).
    pub base_commit: String,
    pub created_at_us: u64,
    /// The agent this one was forked from (`agent-wrap NAME2 --fork NAME --worktree`).
    #[serde(default)]
    pub forked_from: Option<AgentName>,
}

impl Record {
    pub fn git(&self) -> Git {
        Git::new(&self.path)
    }

    /// The commit the base names now, else the one it named at creation.
    pub fn base_commit_now(&self) -> Result<String> {
        Ok(self
            .git()
            .commit_of(&self.base)?
            .unwrap_or_else(|| self.base_commit.clone()))
    }

    /// Where the agent's changes start: the last commit the branch shares with its base.
    pub fn fork_point(&self) -> Result<String> {
        let base = self.base_commit_now()?;
        let out = self.git().output(["merge-base", &base, &self.branch])?;
        let mb = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        Ok(if out.status.success() && !mb.is_empty() {
            mb
        } else {
            base
        })
    }

    /// Commits on the branch that the base lacks, and commits on the base the branch
    /// lacks.
    pub fn ahead_behind(&self) -> Result<(u64, u64)> {
        let base = self.base_commit_now()?;
        let counts = self.git().run([
            "rev-list",
            "--left-right",
            "--count",
            &format!("{}...{base}", self.branch),
        ])?;
        let mut it = counts.split_whitespace().map(|n| n.parse().unwrap_or(0));
        Ok((it.next().unwrap_or(0), it.next().unwrap_or(0)))
    }
}

/// Where worktrees live: `$CLAUDE_AGENTS_DIR/worktrees` when the state directory is set
/// explicitly (tests, several teams), else `$XDG_STATE_HOME/claude-editor-hook/worktrees`
/// (default `~/.local/state/...`). Never under `$XDG_RUNTIME_DIR`, which a reboot empties.
pub fn root() -> Result<PathBuf> {
    Ok(crate::state::durable_home()?.join(WORKTREES_DIR))
}

/// The repository `dir` is in: its main checkout and its identifier under [`root`]
/// (`<name of the main checkout>-<hash of its git directory>`).
pub fn repository(dir: &Path) -> Result<(PathBuf, String)> {
    let git = Git::new(dir);
    let inside = git.output(["rev-parse", "--is-inside-work-tree"])?;
    if !inside.status.success() || String::from_utf8_lossy(&inside.stdout).trim() != "true" {
        bail!(
            "{} is not inside a git repository (a worktree needs one); run agent-wrap in \
             your project, or start the agent without --worktree",
            dir.display()
        );
    }
    let common = git.run(["rev-parse", "--path-format=absolute", "--git-common-dir"])?;
    let common = std::fs::canonicalize(&common).unwrap_or_else(|_| PathBuf::from(&common));
    // The first entry of `worktree list` is the main worktree.
    let list = git.run(["worktree", "list", "--porcelain"])?;
    let main = list
        .lines()
        .find_map(|l| l.strip_prefix("worktree "))
        .map(PathBuf::from)
        .context("`git worktree list` names no main worktree")?;
    let base = main
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "repo".into());
    let base: String = base
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .take(40)
        .collect();
    let id = format!(
        "{base}-{:016x}",
        fnv1a(common.as_os_str().as_encoded_bytes())
    );
    Ok((main, id))
}

/// A stable hash (the same on every build and machine, unlike `DefaultHasher`).
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

fn record_path(root: &Path, repo_id: &str, name: &AgentName) -> PathBuf {
    root.join(repo_id).join(format!("{name}.json"))
}

/// What `agent-wrap --worktree` asks for.
#[derive(Clone, Debug, Default)]
pub struct Request {
    /// `--base REF`; default: the current branch.
    pub base: Option<String>,
    /// `--fork NAME`: the agent this one continues from, whose branch is the default base
    /// and whose uncommitted changes it starts with.
    pub fork_of: Option<Record>,
}

/// The agent's worktree: the existing one (a restart), or a new one on `agent/NAME`.
/// Notes for the user (not errors) go to `note`.
pub fn prepare(
    name: &AgentName,
    cwd: &Path,
    req: &Request,
    note: &mut dyn FnMut(&str),
) -> Result<Record> {
    let (repo, repo_id) = repository(cwd)?;
    let root = root()?;
    let record_file = record_path(&root, &repo_id, name);
    let path = root.join(&repo_id).join(name.as_str());
    let branch = format!("{BRANCH_PREFIX}{name}");
    let git = Git::new(&repo);

    if let Some(rec) = read_json::<Record>(&record_file)? {
        if rec.version != FORMAT_VERSION {
            bail!(
                "{}: format version {} is not supported",
                record_file.display(),
                rec.version
            );
        }
        reopen(&rec, &git)?;
        if let Some(base) = &req.base
            && *base != rec.base
        {
            note(&format!(
                "keeping the existing worktree {} on {} (based on {}, not --base {base})",
                rec.path.display(),
                rec.branch,
                rec.base
            ));
        }
        return Ok(rec);
    }

    let base = match (&req.base, &req.fork_of) {
        (Some(base), _) => base.clone(),
        (None, Some(fork)) => fork.branch.clone(),
        (None, None) => Git::new(cwd).current_branch()?.with_context(|| {
            format!(
                "HEAD is detached in {}; pass --base BRANCH to say what {branch} starts from",
                cwd.display()
            )
        })?,
    };
    let base_commit = git.commit_of(&base)?.with_context(|| {
        format!(
            "--base {base}: no such branch or commit in {}",
            repo.display()
        )
    })?;
    if git.branch_exists(&branch)? {
        bail!(
            "branch {branch} already exists in {}; it is not a worktree of agent @{name} \
             that we know. Delete or rename that branch, or pick another agent name",
            repo.display()
        );
    }
    if std::fs::symlink_metadata(&path).is_ok() {
        bail!(
            "{} already exists but is not a worktree we made; move it away",
            path.display()
        );
    }
    let dirty = Git::new(cwd).dirty_paths()?;
    if !dirty.is_empty() && req.fork_of.is_none() {
        note(&format!(
            "{} uncommitted change(s) in {} stay there; {branch} starts from {base}",
            dirty.len(),
            cwd.display()
        ));
    }
    crate::state::ensure_private_dir(&root)?;
    crate::state::ensure_private_dir(&root.join(&repo_id))?;
    git.run([
        "worktree".as_ref(),
        "add".as_ref(),
        "--quiet".as_ref(),
        "-b".as_ref(),
        branch.as_ref(),
        path.as_os_str(),
        base_commit.as_ref(),
    ])?;
    let rec = Record {
        version: FORMAT_VERSION,
        agent: name.clone(),
        repo,
        path,
        branch,
        base,
        base_commit,
        created_at_us: crate::time::now_us(),
        forked_from: req.fork_of.as_ref().map(|f| f.agent.clone()),
    };
    // A fork starts with the uncommitted work of the agent it continues.
    if let Some(fork) = &req.fork_of {
        let carried =
            diff::Snapshot::take(&fork.path).and_then(|snap| diff::carry_into(&snap, &rec.path));
        if let Err(e) = carried {
            note(&format!(
                "could not carry @{}'s uncommitted changes: {e:#}",
                fork.agent
            ));
        }
    }
    write_json(&record_file, &rec)?;
    Ok(rec)
}

/// Checks a recorded worktree before it is used again, recreating it from its branch
/// when its directory went missing (the branch keeps every commit).
fn reopen(rec: &Record, git: &Git) -> Result<()> {
    if rec.path.is_dir() {
        let on = rec.git().current_branch()?;
        if on.as_deref() != Some(rec.branch.as_str()) {
            bail!(
                "the worktree {} of @{} is on {} instead of {}; check it out again there",
                rec.path.display(),
                rec.agent,
                on.as_deref().unwrap_or("a detached HEAD"),
                rec.branch
            );
        }
        return Ok(());
    }
    if !git.branch_exists(&rec.branch)? {
        bail!(
            "the worktree {} of @{} and its branch {} are both gone; \
             `claude-editor-hook forget {} --worktree --force` clears the record",
            rec.path.display(),
            rec.agent,
            rec.branch,
            rec.agent
        );
    }
    git.run(["worktree", "prune"])?;
    git.run([
        "worktree".as_ref(),
        "add".as_ref(),
        "--quiet".as_ref(),
        rec.path.as_os_str(),
        rec.branch.as_ref(),
    ])?;
    Ok(())
}

/// Agent `name`'s worktree record. With several repositories holding an agent of that
/// name, the one of the repository `cwd` is in.
pub fn find(name: &AgentName) -> Result<Record> {
    find_in(&root()?, name, std::env::current_dir().ok().as_deref())
}

/// Agent `name`'s worktree record, or `None` when it has none.
pub fn lookup(name: &AgentName) -> Result<Option<Record>> {
    let root = root()?;
    match find_in(&root, name, std::env::current_dir().ok().as_deref()) {
        Ok(rec) => Ok(Some(rec)),
        Err(_) if all_records(&root, name)?.is_empty() => Ok(None),
        Err(e) => Err(e),
    }
}

fn all_records(root: &Path, name: &AgentName) -> Result<Vec<(PathBuf, Record)>> {
    let Ok(dirs) = std::fs::read_dir(root) else {
        return Ok(Vec::new());
    };
    let mut found = Vec::new();
    for dir in dirs.flatten() {
        let file = dir.path().join(format!("{name}.json"));
        // A record is only ever the one of the agent it is named after.
        if let Some(rec) = read_json::<Record>(&file)?
            && rec.agent == *name
        {
            found.push((file, rec));
        }
    }
    Ok(found)
}

fn find_in(root: &Path, name: &AgentName, cwd: Option<&Path>) -> Result<Record> {
    let mut found = all_records(root, name)?;
    match found.len() {
        0 => bail!("agent @{name} has no worktree (start it with `agent-wrap {name} --worktree`)"),
        1 => Ok(found.remove(0).1),
        _ => {
            let here = cwd.and_then(|c| repository(c).ok()).map(|(repo, _)| repo);
            let n = found.len();
            found
                .into_iter()
                .map(|(_, rec)| rec)
                .find(|rec| Some(&rec.repo) == here.as_ref())
                .with_context(|| {
                    format!(
                        "agent @{name} has worktrees in {n} repositories; run this inside \
                         the one you mean"
                    )
                })
        }
    }
}

/// Removes the record file of `rec` (after its worktree is gone).
pub fn remove_record(rec: &Record) -> Result<()> {
    let root = root()?;
    for (file, other) in all_records(&root, &rec.agent)? {
        if other == *rec {
            std::fs::remove_file(&file)
                .with_context(|| format!("failed to remove {}", file.display()))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv1a_is_stable() {
        // The repository id is part of a path on disk: it must never change.
        assert_eq!(fnv1a(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
    }
}
