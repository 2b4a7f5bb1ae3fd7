//! The run folder: `<durable root>/runs/<id>/`, what a run keeps on disk so that it can
//! be resumed after a crash, and `run --list`.
//!
//! | file | written by | holds |
//! |---|---|---|
//! | `run.json` | the run (atomically) | goal, project, driver, workers and their sessions, limits, state |
//! | `lock` | the run (a POSIX lock held while it runs) | proof that the run is alive |
//! | `planner-1.txt`, `planner-2.txt` | the planner turn | the planner's raw answers |
//! | `attempts.jsonl` | the run (appended) | one line per ended attempt: task, worker, times, outcome, tokens |
//! | `logs/<task>.<attempt>.log` | the worker's output | what the attempt printed |
//! | `report.md` | the run at its end | the report |
//!
//! The tasks themselves are on the run's own board, `boards/run-<id>/board.db`.

use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};

use crate::board::BoardPath;
use crate::state::{HostLock, ensure_private_dir, read_json, write_json};

/// The folder of runs inside the durable root.
pub const RUNS_DIR: &str = "runs";
/// The version of `run.json`.
pub const RUN_FORMAT: u32 = 1;

/// How the workers run their tasks.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum DriverSpec {
    /// Headless Claude Code (`claude -p`), one session per worker.
    Claude { bin: String, args: Vec<String> },
    /// `sh -c CMD` with the prompt on stdin and the result on stdout.
    Exec { command: String },
    /// Existing persistent agents, one worker each (`--agents a,b`); the planner is
    /// Claude Code (`planner_bin`).
    Agents {
        names: Vec<String>,
        planner_bin: String,
    },
}

/// Where a run stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RunState {
    Planning,
    Running,
    /// Every task done.
    Done,
    /// Ended with failed or blocked tasks.
    Failed,
    Cancelled,
}

impl RunState {
    pub fn as_str(self) -> &'static str {
        match self {
            RunState::Planning => "planning",
            RunState::Running => "running",
            RunState::Done => "done",
            RunState::Failed => "failed",
            RunState::Cancelled => "cancelled",
        }
    }
}

/// One worker of a run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WorkerMeta {
    /// `w1`, `w2`, …: the board's worker name.
    pub name: String,
    /// The Claude Code session to resume for the next task (the `claude` driver).
    pub session: Option<String>,
    /// True once a turn ran in `session`, so the next one resumes it.
    #[serde(default)]
    pub session_started: bool,
    /// The worker's own git worktree and branch (`--worktrees`).
    pub worktree: Option<PathBuf>,
    pub branch: Option<String>,
    /// The commit the worktree's branch started from, for the report's diff stat.
    #[serde(default)]
    pub base: Option<String>,
}

/// `run.json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunMeta {
    pub version: u32,
    pub id: String,
    pub goal: String,
    /// The working directory of the planner and the workers.
    pub project: PathBuf,
    pub driver: DriverSpec,
    pub workers: Vec<WorkerMeta>,
    pub timeout_ms: u64,
    pub retries: u32,
    pub state: RunState,
    pub created_at_us: u64,
    pub finished_at_us: Option<u64>,
    /// The exit status of the last session of the run.
    pub exit: Option<i32>,
    /// Planned (`false`: `--no-plan --tasks`).
    pub planned: bool,
}

/// One ended attempt, a line of `attempts.jsonl`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Attempt {
    pub task: String,
    pub attempt: u32,
    pub worker: String,
    pub started_at_us: u64,
    pub ended_at_us: u64,
    /// `done`, `retry`, `failed`, `cancelled` or `interrupted`.
    pub outcome: String,
    pub reason: Option<String>,
    /// Tokens, where Claude Code reported them.
    pub tokens: Option<Tokens>,
    pub cost_usd: Option<f64>,
}

/// Token counts of one turn (docs/claude-code.md#print-mode-session).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tokens {
    pub input: u64,
    pub output: u64,
    pub cache_creation: u64,
    pub cache_read: u64,
}

impl Tokens {
    pub fn add(&mut self, o: &Tokens) {
        self.input += o.input;
        self.output += o.output;
        self.cache_creation += o.cache_creation;
        self.cache_read += o.cache_read;
    }
}

/// An open run folder.
#[derive(Clone, Debug)]
pub struct RunFolder {
    pub id: String,
    pub dir: PathBuf,
}

/// `<durable root>/runs`.
pub fn runs_root() -> Result<PathBuf> {
    Ok(crate::state::durable_home()?.join(RUNS_DIR))
}

/// A run id is `YYYYMMDD-HHMMSS` (UTC), with `-2`, `-3`, … for runs started in the same
/// second: sortable, and short enough that `run-<id>` is a board name.
pub fn is_valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 24
        && id
            .bytes()
            .all(|b| b.is_ascii_digit() || b == b'-' || b.is_ascii_lowercase())
        && !id.starts_with('-')
}

impl RunFolder {
    /// Creates a new run folder with a fresh id.
    pub fn create() -> Result<Self> {
        let root = runs_root()?;
        if let Some(parent) = root.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("failed to create {}", parent.display()))?;
        }
        ensure_private_dir(&root)?;
        let base = utc_stamp(crate::time::now_us());
        for n in 1..1000 {
            let id = if n == 1 {
                base.clone()
            } else {
                format!("{base}-{n}")
            };
            let dir = root.join(&id);
            // Created exclusively (two runs in one second get two ids), and private.
            match std::fs::DirBuilder::new().mode(0o700).create(&dir) {
                Ok(()) => {
                    ensure_private_dir(&dir)?;
                    ensure_private_dir(&dir.join("logs"))?;
                    return Ok(Self { id, dir });
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => {
                    return Err(e).with_context(|| format!("failed to create {}", dir.display()));
                }
            }
        }
        bail!("too many runs started in one second")
    }

    /// Opens run `id`, or the newest run when `None`.
    pub fn open(id: Option<&str>) -> Result<Self> {
        let root = runs_root()?;
        let id = match id {
            Some(id) => {
                if !is_valid_id(id) {
                    bail!(
                        "invalid run id {id:?}: run ids look like 20260102-150405 (see `run --list`)"
                    );
                }
                id.to_owned()
            }
            None => list_ids(&root)?
                .pop()
                .context("there is no run to resume; start one with `run \"GOAL\" -w N`")?,
        };
        let dir = root.join(&id);
        if std::fs::symlink_metadata(dir.join("run.json")).is_err() {
            bail!(
                "no run {id} (in {}); `run --list` shows the runs",
                root.display()
            );
        }
        ensure_private_dir(&dir)?;
        Ok(Self { id, dir })
    }

    /// The run's board: `boards/run-<id>/`.
    pub fn board(&self) -> Result<BoardPath> {
        BoardPath::resolve(Some(&self.board_name()))
    }

    /// The name of the run's board, for `board --board NAME` and `CLAUDE_EDITOR_HOOK_BOARD`.
    pub fn board_name(&self) -> String {
        format!("run-{}", self.id)
    }

    pub fn meta_path(&self) -> PathBuf {
        self.dir.join("run.json")
    }

    pub fn lock_path(&self) -> PathBuf {
        self.dir.join("lock")
    }

    pub fn report_path(&self) -> PathBuf {
        self.dir.join("report.md")
    }

    pub fn attempts_path(&self) -> PathBuf {
        self.dir.join("attempts.jsonl")
    }

    pub fn planner_path(&self, n: usize) -> PathBuf {
        self.dir.join(format!("planner-{n}.txt"))
    }

    pub fn log_path(&self, task: &str, attempt: u32) -> PathBuf {
        self.dir.join("logs").join(format!("{task}.{attempt}.log"))
    }

    /// Takes the run's lock: refuses a run that another process is running.
    pub fn lock(&self) -> Result<HostLock> {
        match HostLock::acquire(&self.lock_path())? {
            Ok(lock) => Ok(lock),
            Err(pid) => bail!("run {} is running already (pid {pid})", self.id),
        }
    }

    pub fn read_meta(&self) -> Result<RunMeta> {
        let meta: RunMeta = read_json(&self.meta_path())?
            .with_context(|| format!("{} is missing", self.meta_path().display()))?;
        if meta.version > RUN_FORMAT {
            bail!(
                "{} is from a newer version (format {}); upgrade claude-editor-hook",
                self.meta_path().display(),
                meta.version
            );
        }
        Ok(meta)
    }

    pub fn write_meta(&self, meta: &RunMeta) -> Result<()> {
        write_json(&self.meta_path(), meta)
    }

    /// Appends one ended attempt to `attempts.jsonl` (one `write` of one line, with
    /// `O_APPEND`: a crash can cut only the last line, which the reader skips).
    pub fn record_attempt(&self, a: &Attempt) -> Result<()> {
        let mut line = serde_json::to_vec(a).expect("an attempt serializes");
        line.push(b'\n');
        let path = self.attempts_path();
        let mut f = OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(&path)
            .with_context(|| format!("failed to open {}", path.display()))?;
        f.write_all(&line)
            .with_context(|| format!("failed to write {}", path.display()))
    }

    /// Every recorded attempt, oldest first; lines that do not parse are skipped.
    pub fn attempts(&self) -> Result<Vec<Attempt>> {
        let Some(bytes) = crate::state::read_optional(&self.attempts_path())? else {
            return Ok(Vec::new());
        };
        Ok(bytes
            .split(|&b| b == b'\n')
            .filter_map(|l| serde_json::from_slice(l).ok())
            .collect())
    }
}

/// The run ids under `root`, oldest first.
pub fn list_ids(root: &Path) -> Result<Vec<String>> {
    let entries = match std::fs::read_dir(root) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e).with_context(|| format!("failed to read {}", root.display())),
    };
    let mut ids: Vec<String> = entries
        .flatten()
        .filter_map(|e| e.file_name().to_str().map(str::to_owned))
        .filter(|id| is_valid_id(id) && root.join(id).join("run.json").exists())
        .collect();
    ids.sort_by_key(|id| {
        // `-10` after `-9`: compare the base, then the number.
        let (base, n) = match id.get(15..).and_then(|t| t.strip_prefix('-')) {
            Some(n) => (id[..15].to_owned(), n.parse().unwrap_or(0u32)),
            None => (id.clone(), 1),
        };
        (base, n)
    });
    Ok(ids)
}

/// `YYYYMMDD-HHMMSS` in UTC.
pub fn utc_stamp(us: u64) -> String {
    let secs = us / 1_000_000;
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = civil_from_days(days as i64);
    format!(
        "{y:04}{m:02}{d:02}-{:02}{:02}{:02}",
        rem / 3600,
        (rem / 60) % 60,
        rem % 60
    )
}

/// Days since 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamps_are_utc_dates() {
        assert_eq!(utc_stamp(0), "19700101-000000");
        // 2026-12-01 23:45:19 UTC
        assert_eq!(utc_stamp(1_796_168_719_000_000), "20261201-234519");
        assert_eq!(utc_stamp(951_782_400_000_000), "20000229-000000");
    }

    #[test]
    fn ids_are_checked() {
        assert!(is_valid_id("20261201-234519"));
        assert!(is_valid_id("20261201-234519-2"));
        assert!(!is_valid_id("../etc"));
        assert!(!is_valid_id(""));
        assert!(!is_valid_id("A b"));
    }
}
