//! The one place that runs `git`: every other part of [`crate::worktree`] asks through
//! [`Git`], so the environment, the error messages and the quoting rules are in one spot.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use anyhow::{Context, Result, bail};

/// `git` run in one directory (`git -C DIR`).
#[derive(Clone, Debug)]
pub struct Git {
    dir: PathBuf,
    /// `GIT_INDEX_FILE` for every command: a private index, so a snapshot never touches
    /// the agent's own.
    index: Option<PathBuf>,
}

impl Git {
    pub fn new(dir: &Path) -> Self {
        Self {
            dir: dir.to_path_buf(),
            index: None,
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The same directory with its own index file.
    pub fn with_index(&self, index: &Path) -> Self {
        Self {
            dir: self.dir.clone(),
            index: Some(index.to_path_buf()),
        }
    }

    fn command<I, S>(&self, args: I) -> Command
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut cmd = Command::new("git");
        cmd.arg("-C").arg(&self.dir);
        // No pager, no editor, no prompt for credentials: this runs unattended, and its
        // output is ours to parse. Paths come out unquoted (`core.quotePath`).
        cmd.args([
            "-c",
            "core.quotePath=false",
            "-c",
            "advice.detachedHead=false",
        ])
        .args(args)
        .env("GIT_TERMINAL_PROMPT", "0")
        .env("GIT_EDITOR", "true")
        .env("GIT_PAGER", "cat")
        .env_remove("GIT_DIR")
        .env_remove("GIT_WORK_TREE")
        .stdin(Stdio::null());
        match &self.index {
            Some(index) => cmd.env("GIT_INDEX_FILE", index),
            None => cmd.env_remove("GIT_INDEX_FILE"),
        };
        cmd
    }

    /// Runs `git ARGS` and returns its output, whatever its exit status.
    pub fn output<I, S>(&self, args: I) -> Result<Output>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.command(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .output()
            .context("failed to run git (is it installed?)")
    }

    /// Runs `git ARGS`; its stdout, trimmed, or an error with git's own last line.
    pub fn run<I, S>(&self, args: I) -> Result<String>
    where
        I: IntoIterator<Item = S> + Clone,
        S: AsRef<OsStr>,
    {
        let out = self.output(args.clone())?;
        if !out.status.success() {
            bail!("{}", failure(&args_text(args), &out));
        }
        Ok(String::from_utf8_lossy(&out.stdout).trim_end().to_owned())
    }

    /// Runs `git ARGS`: true if it exits 0, false if 1, an error otherwise.
    pub fn test<I, S>(&self, args: I) -> Result<bool>
    where
        I: IntoIterator<Item = S> + Clone,
        S: AsRef<OsStr>,
    {
        let out = self.output(args.clone())?;
        match out.status.code() {
            Some(0) => Ok(true),
            Some(1) => Ok(false),
            _ => bail!("{}", failure(&args_text(args), &out)),
        }
    }

    /// Runs `git ARGS` with its output going straight to ours (a diff for the user).
    pub fn show<I, S>(&self, args: I) -> Result<()>
    where
        I: IntoIterator<Item = S> + Clone,
        S: AsRef<OsStr>,
    {
        let status = self
            .command(args.clone())
            .status()
            .context("failed to run git (is it installed?)")?;
        if !status.success() {
            bail!("`git {}` failed ({status})", args_text(args));
        }
        Ok(())
    }

    /// The commit `rev` names, or `None` when it names none.
    pub fn commit_of(&self, rev: &str) -> Result<Option<String>> {
        let out = self.output([
            "rev-parse",
            "--verify",
            "--quiet",
            &format!("{rev}^{{commit}}"),
        ])?;
        Ok(out
            .status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned()))
    }

    /// The branch checked out here (`main`), or `None` on a detached `HEAD`.
    pub fn current_branch(&self) -> Result<Option<String>> {
        let out = self.output(["symbolic-ref", "--quiet", "--short", "HEAD"])?;
        Ok(out
            .status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned()))
    }

    /// True when `refs/heads/BRANCH` exists.
    pub fn branch_exists(&self, branch: &str) -> Result<bool> {
        self.test([
            "show-ref",
            "--verify",
            "--quiet",
            &format!("refs/heads/{branch}"),
        ])
    }

    /// Paths with uncommitted changes (staged, unstaged or untracked, not ignored).
    pub fn dirty_paths(&self) -> Result<Vec<String>> {
        let out = self.run(["status", "--porcelain=v1", "-z", "--untracked-files=all"])?;
        let mut paths = Vec::new();
        let mut fields = out.split('\0').filter(|f| !f.is_empty());
        while let Some(entry) = fields.next() {
            let (code, path) = entry.split_at(entry.len().min(3));
            paths.push(path.to_owned());
            // A rename or copy is followed by its source path.
            if (code.starts_with('R') || code.starts_with('C'))
                && let Some(from) = fields.next()
            {
                paths.push(from.to_owned());
            }
        }
        Ok(paths)
    }

    /// The lines of `git ARGS`' output, empty lines dropped.
    pub fn lines<I, S>(&self, args: I) -> Result<Vec<String>>
    where
        I: IntoIterator<Item = S> + Clone,
        S: AsRef<OsStr>,
    {
        Ok(self
            .run(args)?
            .lines()
            .filter(|l| !l.is_empty())
            .map(str::to_owned)
            .collect())
    }
}

fn args_text<I, S>(args: I) -> String
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    args.into_iter()
        .map(|a| a.as_ref().to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join(" ")
}

/// `git ARGS failed: <git's last stderr line>`.
fn failure(args: &str, out: &Output) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr);
    let line = stderr
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .map(str::trim)
        .unwrap_or("no error output");
    format!("`git {args}` failed: {line}")
}
