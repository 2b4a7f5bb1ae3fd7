//! Where a board lives, and the privacy checks on its directory and database file.
//!
//! Boards are durable state: `$XDG_STATE_HOME/claude-editor-hook/boards/` (default
//! `~/.local/state/claude-editor-hook/boards/`), never the tmpfs runtime directory the
//! agents use, so a board survives a reboot. With `CLAUDE_AGENTS_DIR` set (tests, or a
//! private team), boards go under `$CLAUDE_AGENTS_DIR/boards/` instead.
//!
//! Each board is a directory `boards/<key>/` holding `board.db` and SQLite's `-wal` and
//! `-shm` files; `claim --wait` watches that directory. The default key names the
//! project: the git top level of the current directory (or the directory itself outside
//! git), as `<basename>-<16 hex digits of a hash of the full path>`, so every terminal in
//! the same repository shares one board without configuration.

use std::fs;
use std::io::ErrorKind;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

use crate::state::{AgentName, ensure_private_dir};

/// The folder of boards inside the durable root.
pub const BOARDS_DIR: &str = "boards";
/// The database file inside a board's directory.
pub const DB_FILE: &str = "board.db";
/// A board's location: its directory and database file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BoardPath {
    dir: PathBuf,
    /// The project directory a default board belongs to, for messages.
    project: Option<PathBuf>,
}

impl BoardPath {
    /// The board `--board` names, or the current project's board without it.
    ///
    /// `spec` is a name (`[a-z0-9][a-z0-9_-]*`, a board under the boards folder) or a path
    /// (anything with a `/`, or ending in `.db`): a directory to hold the board, or the
    /// database file itself.
    pub fn resolve(spec: Option<&str>) -> Result<Self> {
        match spec.filter(|s| !s.is_empty()) {
            None => {
                let cwd =
                    std::env::current_dir().context("failed to read the current directory")?;
                Self::for_project(&cwd)
            }
            Some(s) if s.contains('/') || s.ends_with(".db") => {
                let path = PathBuf::from(s);
                let dir = if s.ends_with(".db") {
                    if path.file_name() != Some(DB_FILE.as_ref()) {
                        bail!("a board database file must be named {DB_FILE}: {s:?}");
                    }
                    path.parent().map(Path::to_path_buf).unwrap_or_default()
                } else {
                    path
                };
                let dir = if dir.as_os_str().is_empty() {
                    PathBuf::from(".")
                } else {
                    dir
                };
                Ok(Self { dir, project: None })
            }
            Some(name) => {
                if !AgentName::is_valid(name) {
                    bail!(
                        "invalid board name {name:?}: use 1-32 characters from a-z, 0-9, '_' \
                         and '-', or a path containing '/'"
                    );
                }
                Ok(Self {
                    dir: boards_root()?.join(name),
                    project: None,
                })
            }
        }
    }

    /// The default board of the project containing `dir`.
    pub fn for_project(dir: &Path) -> Result<Self> {
        let dir = fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
        let top = git_top_level(&dir).unwrap_or(dir);
        Ok(Self {
            dir: boards_root()?.join(project_key(&top)),
            project: Some(top),
        })
    }

    /// The board's directory (watched by waiters).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The database file.
    pub fn db(&self) -> PathBuf {
        self.dir.join(DB_FILE)
    }

    /// The project a default board belongs to.
    pub fn project(&self) -> Option<&Path> {
        self.project.as_deref()
    }

    /// Returns true if and only if the database file exists (a symlink counts, and is
    /// refused when opened).
    pub fn exists(&self) -> bool {
        fs::symlink_metadata(self.db()).is_ok()
    }

    /// Creates the board's directory (0700, with its parents), or checks the existing one.
    pub(crate) fn ensure_dir(&self) -> Result<()> {
        // The boards folder and the board's own folder are private; what lies above
        // them (e.g. ~/.local/state) is created as usual.
        let boards = self.dir.parent().filter(|p| p.ends_with(BOARDS_DIR));
        let top = boards.and_then(Path::parent).or(self.dir.parent());
        if let Some(top) = top
            && !top.as_os_str().is_empty()
            && fs::symlink_metadata(top).is_err()
        {
            fs::create_dir_all(top)
                .with_context(|| format!("failed to create {}", top.display()))?;
        }
        if let Some(boards) = boards {
            ensure_private_dir(boards)?;
        }
        ensure_private_dir(&self.dir)
    }

    /// Checks the existing database file: a regular file (never a symlink), owned by us,
    /// readable by nobody else. Creates it empty with mode 0600 when `create` and missing.
    /// Returns false when it is missing and not created.
    pub(crate) fn check_db_file(&self, create: bool) -> Result<bool> {
        let db = self.db();
        if create {
            match fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
                .open(&db)
            {
                Ok(_) => return Ok(true),
                Err(e) if e.kind() == ErrorKind::AlreadyExists => {}
                Err(e) => {
                    return Err(e).with_context(|| format!("failed to create {}", db.display()));
                }
            }
        }
        let meta = match fs::symlink_metadata(&db) {
            Ok(m) => m,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(e).with_context(|| format!("failed to stat {}", db.display())),
        };
        if meta.file_type().is_symlink() {
            bail!("refusing board database {}: it is a symlink", db.display());
        }
        if !meta.is_file() {
            bail!(
                "refusing board database {}: it is not a regular file",
                db.display()
            );
        }
        let uid = nix::unistd::geteuid().as_raw();
        if meta.uid() != uid {
            bail!(
                "refusing board database {}: owned by uid {}, not by you (uid {uid})",
                db.display(),
                meta.uid()
            );
        }
        if meta.mode() & 0o077 != 0 {
            bail!(
                "refusing board database {}: other users can access it (mode {:o}); run \
                 `chmod 600 {}`",
                db.display(),
                meta.mode() & 0o7777,
                db.display()
            );
        }
        Ok(true)
    }
}

impl std::fmt::Display for BoardPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.db().display())
    }
}

/// `boards/` in the durable state home ([`crate::state::durable_home`]):
/// `$CLAUDE_AGENTS_DIR/boards`, else `$XDG_STATE_HOME/claude-editor-hook/boards`, else
/// `~/.local/state/claude-editor-hook/boards`.
pub fn boards_root() -> Result<PathBuf> {
    Ok(crate::state::durable_home()?.join(BOARDS_DIR))
}

/// The nearest ancestor of `dir` (itself included) holding `.git` (a directory, or the
/// file of a worktree or submodule): what `git rev-parse --show-toplevel` prints, found
/// without starting git, which would cost a claim several milliseconds.
fn git_top_level(dir: &Path) -> Option<PathBuf> {
    dir.ancestors()
        .find(|d| fs::symlink_metadata(d.join(".git")).is_ok())
        .map(Path::to_path_buf)
}

/// `<basename>-<hash>`: readable in a listing, and distinct for two projects that share
/// a basename.
fn project_key(top: &Path) -> String {
    let base: String = top
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("root")
        .chars()
        .map(|c| c.to_ascii_lowercase())
        .filter(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-' || *c == '_')
        .take(24)
        .collect();
    let base = base.trim_start_matches(['-', '_']);
    let base = if base.is_empty() { "project" } else { base };
    format!("{base}-{:016x}", fnv1a(top.as_os_str().as_encoded_bytes()))
}

/// FNV-1a, 64 bits: stable across Rust releases (std's hasher is not), so a project
/// keeps its board after an upgrade.
fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn project_keys_are_readable_and_distinct() {
        let a = project_key(Path::new("/home/me/src/App"));
        let b = project_key(Path::new("/home/you/src/App"));
        assert!(a.starts_with("app-") && a.len() == 4 + 16, "{a}");
        assert_ne!(a, b);
        assert_eq!(a, project_key(Path::new("/home/me/src/App")));
        assert!(project_key(Path::new("/")).starts_with("root-"));
    }

    #[test]
    fn the_git_top_level_names_the_board() {
        let tmp = tempfile::tempdir().unwrap();
        let top = tmp.path().join("repo");
        fs::create_dir_all(top.join(".git")).unwrap();
        fs::create_dir_all(top.join("src/deep")).unwrap();
        assert_eq!(git_top_level(&top.join("src/deep")), Some(top.clone()));
        let outside = tmp.path().join("plain");
        fs::create_dir_all(&outside).unwrap();
        // The temp dir itself may sit inside a repository; only compare when it does not.
        if git_top_level(tmp.path()).is_none() {
            assert_eq!(git_top_level(&outside), None);
        }
    }

    #[test]
    fn specs_pick_names_and_paths() {
        let p = BoardPath::resolve(Some("/tmp/x/board.db")).unwrap();
        assert_eq!(p.dir(), Path::new("/tmp/x"));
        let p = BoardPath::resolve(Some("/tmp/y")).unwrap();
        assert_eq!(p.db(), Path::new("/tmp/y/board.db"));
        assert!(BoardPath::resolve(Some("Bad Name")).is_err());
        assert!(BoardPath::resolve(Some("/tmp/other.db")).is_err());
    }
}
