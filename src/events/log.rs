//! The log file itself: appending, rotating and reading `events.jsonl`.
//!
//! Writers are every process that changes state (coordinators, hosts, board verbs), so
//! appending must be cheap and safe without coordination: each event is one line,
//! written with one `write(2)` on an `O_APPEND` descriptor, which the kernel appends
//! whole. Lines are kept short ([`super::MAX_TEXT`]). No lock is taken to append; the
//! only lock is a non-blocking `flock` for the rotation, which a writer that does not
//! get it simply skips.

use std::fs::{File, OpenOptions};
use std::io::{ErrorKind, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use super::{EVENT_VERSION, Event, What};

/// The log's folder in the durable part of the state directory.
pub const EVENTS_DIR: &str = "events";
/// The log.
pub const EVENTS_FILE: &str = "events.jsonl";
/// The previous generation, after a rotation.
pub const OLD_EVENTS_FILE: &str = "events.jsonl.1";
/// The log is rotated once it is larger than this: at most about twice this is kept.
pub const MAX_LOG_BYTES: u64 = 4 << 20;

/// Whether a failure to append was reported already: once per process is enough, and
/// the writer's own work goes on.
static REPORTED: AtomicBool = AtomicBool::new(false);

/// The log of the state whose durable part is `root`.
pub fn log_path(root: &Path) -> PathBuf {
    root.join(EVENTS_DIR).join(EVENTS_FILE)
}

/// Appends an event that happens now. Never fails and never blocks on a reader: a
/// failure is reported once on stderr, and the caller goes on.
pub fn append(root: &Path, what: What) {
    append_at(root, crate::time::now_us(), what);
}

/// Appends an event that happened at `at_us`.
pub fn append_at(root: &Path, at_us: u64, what: What) {
    let event = Event {
        version: EVENT_VERSION,
        at_us,
        what,
    };
    let Ok(mut line) = serde_json::to_vec(&event) else {
        return;
    };
    line.push(b'\n');
    if let Err(e) = write_line(root, &line)
        && !REPORTED.swap(true, Ordering::Relaxed)
    {
        let prog = std::env::args_os()
            .next()
            .map(PathBuf::from)
            .and_then(|p| Some(p.file_name()?.to_string_lossy().into_owned()))
            .unwrap_or_else(|| "claude-editor-hook".into());
        let _ = writeln!(
            std::io::stderr(),
            "{prog}: cannot append to the event log {}: {e} (reported once; the work goes on)",
            log_path(root).display()
        );
    }
}

fn open_for_append(path: &Path) -> std::io::Result<File> {
    OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o600)
        // Never through a planted symlink, never blocking on a planted FIFO.
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(path)
}

fn write_line(root: &Path, line: &[u8]) -> anyhow::Result<()> {
    let dir = root.join(EVENTS_DIR);
    let path = dir.join(EVENTS_FILE);
    let file = match open_for_append(&path) {
        Err(e) if e.kind() == ErrorKind::NotFound => {
            crate::state::ensure_private_dir(&dir)?;
            open_for_append(&path)?
        }
        other => other?,
    };
    let meta = file.metadata()?;
    if !meta.is_file() {
        anyhow::bail!("it is not a regular file");
    }
    let written = (&file).write(line)?;
    if written != line.len() {
        anyhow::bail!("short write ({written} of {} bytes)", line.len());
    }
    if meta.len() + line.len() as u64 > MAX_LOG_BYTES {
        rotate(file, &dir, &path);
    }
    Ok(())
}

/// Moves a full log to [`OLD_EVENTS_FILE`], if this writer gets the rotation lock and
/// the log is still the file it wrote to (another writer may have rotated it already).
fn rotate(file: File, dir: &Path, path: &Path) {
    use nix::fcntl::{Flock, FlockArg};
    let Ok(ino) = file.metadata().map(|m| m.ino()) else {
        return;
    };
    let Ok(_lock) = Flock::lock(file, FlockArg::LockExclusiveNonblock) else {
        return;
    };
    if std::fs::symlink_metadata(path).is_ok_and(|m| m.ino() == ino) {
        let _ = std::fs::rename(path, dir.join(OLD_EVENTS_FILE));
    }
}

/// One line read back: the event, and the line as it was written (for `--json`).
#[derive(Clone, Debug)]
pub struct Entry {
    pub event: Event,
    pub raw: String,
}

/// Every event kept, oldest first: the previous generation, then the log. Lines that
/// are not events (a line torn by a crash) are skipped.
pub fn read_all(root: &Path) -> Vec<Entry> {
    let dir = root.join(EVENTS_DIR);
    let mut entries = Vec::new();
    for name in [OLD_EVENTS_FILE, EVENTS_FILE] {
        if let Ok(Some(bytes)) = crate::state::read_optional(&dir.join(name)) {
            entries.extend(parse_lines(&bytes));
        }
    }
    entries
}

/// The events of the previous generation only (what a [`Follower`] started from the
/// log's beginning does not see).
pub fn read_old(root: &Path) -> Vec<Entry> {
    match crate::state::read_optional(&root.join(EVENTS_DIR).join(OLD_EVENTS_FILE)) {
        Ok(Some(bytes)) => parse_lines(&bytes).collect(),
        _ => Vec::new(),
    }
}

fn parse_lines(bytes: &[u8]) -> impl Iterator<Item = Entry> + '_ {
    bytes.split(|&b| b == b'\n').filter_map(parse_line)
}

fn parse_line(line: &[u8]) -> Option<Entry> {
    let raw = std::str::from_utf8(line).ok()?.trim();
    if raw.is_empty() {
        return None;
    }
    let event = serde_json::from_str::<Event>(raw).ok()?;
    Some(Entry {
        event,
        raw: raw.to_owned(),
    })
}

/// Reads the events appended since the last read, across rotations: the reader of
/// `events --follow`, `top` and notifications. Woken by a watch on [`Follower::dir`].
pub struct Follower {
    dir: PathBuf,
    file: Option<(File, u64)>,
    partial: Vec<u8>,
}

impl Follower {
    /// A follower of the log under `root`; with `from_start` it first returns what the
    /// log holds now, else only what comes next.
    pub fn new(root: &Path, from_start: bool) -> Self {
        let mut f = Self {
            dir: root.join(EVENTS_DIR),
            file: None,
            partial: Vec::new(),
        };
        f.reopen();
        if !from_start && let Some((file, _)) = &mut f.file {
            let _ = file.seek(SeekFrom::End(0));
        }
        f
    }

    /// The folder to watch (created if missing, so that it can be watched).
    pub fn dir(&self) -> anyhow::Result<&Path> {
        crate::state::ensure_private_dir(&self.dir)?;
        Ok(&self.dir)
    }

    fn reopen(&mut self) {
        let path = self.dir.join(EVENTS_FILE);
        self.file = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC)
            .open(path)
            .ok()
            .filter(|f| f.metadata().is_ok_and(|m| m.is_file()))
            .and_then(|f| Some((f.metadata().ok()?.ino(), f)))
            .map(|(ino, f)| (f, ino));
        self.partial.clear();
    }

    /// The events appended since the last call, oldest first.
    pub fn read_new(&mut self) -> Vec<Entry> {
        let mut out = Vec::new();
        self.drain(&mut out);
        // Rotated (or created, or removed and created again): finish the old file, then
        // read the new one from its start.
        let now = std::fs::symlink_metadata(self.dir.join(EVENTS_FILE))
            .ok()
            .map(|m| m.ino());
        let current = self.file.as_ref().map(|(_, ino)| *ino);
        if now.is_some() && now != current {
            self.reopen();
            self.drain(&mut out);
        }
        out
    }

    fn drain(&mut self, out: &mut Vec<Entry>) {
        let Some((file, _)) = &mut self.file else {
            return;
        };
        let mut buf = Vec::new();
        if file.read_to_end(&mut buf).is_err() {
            return;
        }
        self.partial.extend_from_slice(&buf);
        if let Some(end) = self.partial.iter().rposition(|&b| b == b'\n') {
            let rest = self.partial.split_off(end + 1);
            out.extend(parse_lines(&self.partial));
            self.partial = rest;
        }
    }
}

/// Where a reader is in the log: the file, by inode, and the byte just after the last
/// line it read. Its text form `INODE-OFFSET` is the id of an event in `serve`'s event
/// stream (docs/web.md), so that a client resumes right after the last event it saw,
/// across a rotation (the rotated file keeps its inode as [`OLD_EVENTS_FILE`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Position {
    pub ino: u64,
    pub offset: u64,
}

impl std::fmt::Display for Position {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}-{}", self.ino, self.offset)
    }
}

impl std::str::FromStr for Position {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> anyhow::Result<Self> {
        let parsed = s
            .split_once('-')
            .and_then(|(i, o)| Some((i.parse().ok()?, o.parse().ok()?)));
        match parsed {
            Some((ino, offset)) => Ok(Position { ino, offset }),
            None => anyhow::bail!("not an event id (INODE-OFFSET): {s:?}"),
        }
    }
}

/// A line read at a known place: where it starts and where the next one starts.
#[derive(Clone, Debug)]
pub struct Placed {
    pub start: Position,
    pub end: Position,
    pub entry: Entry,
}

/// The two generations of the log, opened once for a read: (file, inode, length).
fn open_generation(dir: &Path, name: &str) -> Option<(File, u64, u64)> {
    let f = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(dir.join(name))
        .ok()?;
    let m = f.metadata().ok().filter(|m| m.is_file())?;
    Some((f, m.ino(), m.len()))
}

/// The whole lines of `file` in `[from, from + max)`, placed; a line longer than `max`
/// (only a damaged file has one) is skipped, so a reader always moves on. With
/// `mid_line`, `from` may be inside a line, whose torn start is skipped.
fn read_lines_at(
    file: &mut File,
    ino: u64,
    from: u64,
    max: u64,
    mid_line: bool,
) -> (Vec<Placed>, u64) {
    let mut buf = Vec::new();
    if file.seek(SeekFrom::Start(from)).is_err() || file.take(max).read_to_end(&mut buf).is_err() {
        return (Vec::new(), from);
    }
    let whole = match buf.iter().rposition(|&b| b == b'\n') {
        Some(end) => end + 1,
        None if buf.len() as u64 == max => buf.len(),
        None => 0,
    };
    let mut out = Vec::new();
    let mut at = from;
    let mut lines = buf[..whole].split_inclusive(|&b| b == b'\n');
    if mid_line && let Some(torn) = lines.next() {
        at += torn.len() as u64;
    }
    for line in lines {
        let next = at + line.len() as u64;
        if let Some(entry) = parse_line(line) {
            out.push(Placed {
                start: Position { ino, offset: at },
                end: Position { ino, offset: next },
                entry,
            });
        }
        at = next;
    }
    (out, from + whole as u64)
}

/// The events after `from`, at most about `max` bytes of them, oldest first, and where
/// the next read goes on. A position in the previous generation finishes it and goes on
/// in the log. `None`: the log no longer holds `from` (rotated away twice, or removed).
pub fn read_after(root: &Path, from: Position, max: u64) -> Option<(Vec<Placed>, Position)> {
    let dir = root.join(EVENTS_DIR);
    let current = open_generation(&dir, EVENTS_FILE);
    if let Some((mut f, ino, len)) = current
        && ino == from.ino
    {
        if from.offset > len {
            return None;
        }
        let (lines, next) = read_lines_at(&mut f, ino, from.offset, max, false);
        return Some((lines, Position { ino, offset: next }));
    }
    let (mut old, ino, len) = open_generation(&dir, OLD_EVENTS_FILE)?;
    if ino != from.ino || from.offset > len {
        return None;
    }
    let (lines, next) = read_lines_at(&mut old, ino, from.offset, max, false);
    if next < len {
        return Some((lines, Position { ino, offset: next }));
    }
    // The old generation is finished: go on at the start of the log (which exists, or
    // the next append creates; an unknown inode then restarts the reader).
    let next = match open_generation(&dir, EVENTS_FILE) {
        Some((_, ino, _)) => Position { ino, offset: 0 },
        None => Position { ino, offset: len },
    };
    Some((lines, next))
}

/// The end of the log now: where a reader that wants only new events starts.
pub fn end_position(root: &Path) -> Option<Position> {
    let (_, ino, len) = open_generation(&root.join(EVENTS_DIR), EVENTS_FILE)?;
    Some(Position { ino, offset: len })
}

/// The last `n` events kept, oldest first, read from the end (at most about 1 KiB per
/// event is read, never the whole log).
pub fn tail(root: &Path, n: usize) -> Vec<Placed> {
    let dir = root.join(EVENTS_DIR);
    let want = (n as u64) * 1024 + 4096;
    let mut out: Vec<Placed> = Vec::new();
    for name in [EVENTS_FILE, OLD_EVENTS_FILE] {
        if out.len() >= n {
            break;
        }
        let Some((mut f, ino, len)) = open_generation(&dir, name) else {
            continue;
        };
        let from = len.saturating_sub(want);
        let (mut lines, _) = read_lines_at(&mut f, ino, from, len - from, from > 0);
        lines.append(&mut out);
        out = lines;
    }
    let skip = out.len().saturating_sub(n);
    out.drain(..skip);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::{AgentName, TaskId};

    fn delivered(n: u32) -> What {
        What::TaskDelivered {
            task: TaskId::parse(&format!("t-{n}")).unwrap(),
            agent: AgentName::parse("alice").unwrap(),
        }
    }

    #[test]
    fn appended_events_are_read_back_in_order_and_followed_across_a_rotation() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let mut follower = Follower::new(root, false);
        assert!(follower.read_new().is_empty());
        for n in 0..3 {
            append_at(root, n as u64, delivered(n));
        }
        let all = read_all(root);
        assert_eq!(all.len(), 3);
        assert_eq!(all[2].event.what, delivered(2));
        assert_eq!(follower.read_new().len(), 3);
        // A torn line (a crash mid-write of an older build) costs only itself.
        let log = log_path(root);
        std::fs::OpenOptions::new()
            .append(true)
            .open(&log)
            .unwrap()
            .write_all(b"{\"version\":1,\"at\n")
            .unwrap();
        append_at(root, 9, delivered(9));
        let new = follower.read_new();
        assert_eq!(new.len(), 1, "{new:?}");
        // Rotation: the follower finishes the old file and goes on with the new one.
        let big = std::fs::OpenOptions::new().append(true).open(&log).unwrap();
        big.set_len(MAX_LOG_BYTES).unwrap();
        drop(big);
        std::fs::OpenOptions::new()
            .append(true)
            .open(&log)
            .unwrap()
            .write_all(b"\n")
            .unwrap();
        append_at(root, 10, delivered(10));
        assert!(root.join(EVENTS_DIR).join(OLD_EVENTS_FILE).exists());
        append_at(root, 11, delivered(11));
        let new: Vec<_> = follower
            .read_new()
            .into_iter()
            .map(|e| e.event.at_us)
            .collect();
        assert_eq!(new, [10, 11]);
        let kept: Vec<_> = read_all(root).into_iter().map(|e| e.event.at_us).collect();
        assert_eq!(kept, [0, 1, 2, 9, 10, 11]);
        assert!(std::fs::metadata(&log).unwrap().len() < 1000);
    }

    #[test]
    fn positions_resume_right_after_an_event_across_a_rotation() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        assert!(end_position(root).is_none());
        assert!(tail(root, 5).is_empty());
        for n in 0..5 {
            append_at(root, n as u64, delivered(n));
        }
        let last = tail(root, 3);
        let at: Vec<_> = last.iter().map(|p| p.entry.event.at_us).collect();
        assert_eq!(at, [2, 3, 4]);
        assert_eq!(last[2].end, end_position(root).unwrap());
        let id = last[0].end.to_string();
        let from: Position = id.parse().unwrap();
        let (after, next) = read_after(root, from, 1 << 20).unwrap();
        let at: Vec<_> = after.iter().map(|p| p.entry.event.at_us).collect();
        assert_eq!(at, [3, 4]);
        assert_eq!(next, end_position(root).unwrap());
        // A small budget reads whole lines only, and goes on from there.
        let (one, next1) = read_after(root, from, 120).unwrap();
        assert_eq!(one.len(), 1);
        assert_eq!(read_after(root, next1, 1 << 20).unwrap().0.len(), 1);
        // Rotation: the old generation is finished, then the new one read from its start.
        let log = log_path(root);
        std::fs::OpenOptions::new()
            .append(true)
            .open(&log)
            .unwrap()
            .set_len(MAX_LOG_BYTES)
            .unwrap();
        let mut big = std::fs::OpenOptions::new().append(true).open(&log).unwrap();
        big.write_all(b"\n").unwrap();
        let before = end_position(root).unwrap();
        append_at(root, 5, delivered(5));
        append_at(root, 6, delivered(6));
        let (lines, next) = read_after(root, before, 1 << 20).unwrap();
        let at: Vec<_> = lines.iter().map(|p| p.entry.event.at_us).collect();
        assert_eq!(at, [5]);
        let (lines, _) = read_after(root, next, 1 << 20).unwrap();
        let at: Vec<_> = lines.iter().map(|p| p.entry.event.at_us).collect();
        assert_eq!(at, [6]);
        assert_eq!(tail(root, 2).len(), 2);
        // An id the log does not hold, or garbage.
        assert!(read_after(root, Position { ino: 1, offset: 0 }, 100).is_none());
        assert!("12".parse::<Position>().is_err());
        assert!("a-b".parse::<Position>().is_err());
    }

    #[test]
    fn a_failure_to_append_never_fails_the_writer() {
        let dir = tempfile::tempdir().unwrap();
        // The log's folder is a file: appending fails, quietly after the first report.
        std::fs::write(dir.path().join(EVENTS_DIR), b"").unwrap();
        append(dir.path(), delivered(1));
        append(dir.path(), delivered(2));
        assert!(read_all(dir.path()).is_empty());
    }
}
