//! The one place that reads and writes state files.
//!
//! Writes are atomic (temp file in the same directory, fsync, rename), so a reader or a
//! file watcher never sees half a file. Reads never follow symlinks and treat a missing
//! file as absent. JSON files carry a `version`, checked before the rest is parsed.

use std::fs::OpenOptions;
use std::io::{ErrorKind, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use anyhow::{Context, Result, bail};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::FORMAT_VERSION;

/// Prefix of our temp files; watchers ignore events for names that start with it.
pub const TEMP_PREFIX: &str = ".tmp-";

/// Largest state file we read. Prompts and answers are bounded by this too.
pub const MAX_FILE_BYTES: u64 = 64 << 20;

/// Returns true if and only if `path` names one of our temp files.
pub fn file_is_temp(path: &Path) -> bool {
    path.file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.starts_with(TEMP_PREFIX))
}

fn write_temp(path: &Path, bytes: &[u8], durable: bool) -> Result<tempfile::NamedTempFile> {
    let dir = path.parent().context("state file path has no parent")?;
    let mut tmp = tempfile::Builder::new()
        .prefix(TEMP_PREFIX)
        .tempfile_in(dir)
        .with_context(|| format!("failed to create a temp file in {}", dir.display()))?;
    tmp.write_all(bytes)
        .and_then(|()| {
            if durable {
                tmp.as_file().sync_all()
            } else {
                Ok(())
            }
        })
        .with_context(|| format!("failed to write {}", tmp.path().display()))?;
    Ok(tmp)
}

/// Whether a write must survive a power loss, or only be atomic for readers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Durability {
    /// fsync before the rename: for state files.
    Synced,
    /// No fsync: for files that only live until their reader has read them once, such
    /// as Claude Code's prompt file, where an fsync would only delay the chief.
    Volatile,
}

/// Replaces `path` with `bytes` atomically and durably. A symlink at `path` is
/// replaced, not followed.
pub fn atomic_write(path: &Path, bytes: &[u8]) -> Result<()> {
    atomic_write_with(path, bytes, Durability::Synced)
}

/// [`atomic_write`] with a choice of [`Durability`].
pub fn atomic_write_with(path: &Path, bytes: &[u8], durability: Durability) -> Result<()> {
    write_temp(path, bytes, durability == Durability::Synced)?
        .persist(path)
        .with_context(|| format!("failed to write {}", path.display()))?;
    Ok(())
}

/// Creates `path` with `bytes` atomically unless it already exists.
///
/// Returns true if and only if this call created the file. The `.done` signal is written
/// this way so that exactly one party (agent or coordinator) decides a task's outcome.
pub fn atomic_create(path: &Path, bytes: &[u8]) -> Result<bool> {
    match write_temp(path, bytes, true)?.persist_noclobber(path) {
        Ok(_) => Ok(true),
        Err(e) if e.error.kind() == ErrorKind::AlreadyExists => Ok(false),
        Err(e) => Err(e.error).with_context(|| format!("failed to create {}", path.display())),
    }
}

/// Reads a whole file without following a symlink. `Ok(None)` when it does not exist.
pub fn read_optional(path: &Path) -> Result<Option<Vec<u8>>> {
    let file = OpenOptions::new()
        .read(true)
        // O_NONBLOCK: a FIFO planted in place of a state file must not hang the reader.
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(path);
    let file = match file {
        Ok(f) => f,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) => {
            bail!("refusing to read {}: it is a symlink", path.display())
        }
        Err(e) => return Err(e).with_context(|| format!("failed to open {}", path.display())),
    };
    let is_file = file.metadata().map(|m| m.is_file()).unwrap_or(false);
    if !is_file {
        bail!(
            "refusing to read {}: it is not a regular file",
            path.display()
        );
    }
    let mut bytes = Vec::new();
    file.take(MAX_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .with_context(|| format!("failed to read {}", path.display()))?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        bail!("{} is larger than {MAX_FILE_BYTES} bytes", path.display());
    }
    Ok(Some(bytes))
}

#[derive(serde::Deserialize)]
struct VersionProbe {
    version: u32,
}

/// Reads a versioned JSON state file. A corrupt file or a foreign version is an error
/// naming the path; a missing file is `Ok(None)`.
pub fn read_json<T: DeserializeOwned>(path: &Path) -> Result<Option<T>> {
    let Some(bytes) = read_optional(path)? else {
        return Ok(None);
    };
    let probe: VersionProbe = serde_json::from_slice(&bytes)
        .with_context(|| format!("corrupt state file {}", path.display()))?;
    if probe.version != FORMAT_VERSION {
        bail!(
            "{} has format version {}, this build reads version {FORMAT_VERSION}",
            path.display(),
            probe.version
        );
    }
    let value = serde_json::from_slice(&bytes)
        .with_context(|| format!("corrupt state file {}", path.display()))?;
    Ok(Some(value))
}

/// The suffix of a file set aside by [`set_aside`].
pub const SET_ASIDE_SUFFIX: &str = ".corrupt";

/// Moves an unreadable state file out of the way (`<name>.corrupt-<µs>` beside it),
/// keeping it for inspection instead of deleting it, so that one bad file costs only
/// itself. Returns where it went.
pub fn set_aside(path: &Path) -> Result<std::path::PathBuf> {
    let name = path
        .file_name()
        .context("a state file path has a file name")?
        .to_string_lossy();
    let to = path.with_file_name(format!(
        "{name}{SET_ASIDE_SUFFIX}-{}",
        crate::time::now_us()
    ));
    std::fs::rename(path, &to)
        .with_context(|| format!("failed to set {} aside", path.display()))?;
    Ok(to)
}

/// Sets `path` aside because of `error` and returns the one line that says so (or why
/// it could not be moved).
pub fn set_aside_line(path: &Path, error: &anyhow::Error) -> String {
    match set_aside(path) {
        Ok(to) => format!("{error:#}; set aside as {}", to.display()),
        Err(e) => format!("{error:#}; and it could not be set aside: {e:#}"),
    }
}

/// Writes a JSON state file atomically.
pub fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<()> {
    let mut bytes = serde_json::to_vec_pretty(value).context("failed to encode JSON")?;
    bytes.push(b'\n');
    atomic_write(path, &bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Serialize, serde::Deserialize, PartialEq, Debug)]
    struct Doc {
        version: u32,
        x: u32,
    }

    #[test]
    fn atomic_write_replaces_and_leaves_no_temp_files() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.json");
        write_json(&p, &Doc { version: 1, x: 1 }).unwrap();
        write_json(&p, &Doc { version: 1, x: 2 }).unwrap();
        assert_eq!(
            read_json::<Doc>(&p).unwrap(),
            Some(Doc { version: 1, x: 2 })
        );
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(names.len(), 1, "temp files left behind");
    }

    #[test]
    fn atomic_create_is_exclusive() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("done.json");
        assert!(atomic_create(&p, b"first").unwrap());
        assert!(!atomic_create(&p, b"second").unwrap());
        assert_eq!(read_optional(&p).unwrap().unwrap(), b"first");
    }

    #[test]
    fn missing_is_absent_corrupt_and_foreign_version_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("s.json");
        assert_eq!(read_json::<Doc>(&p).unwrap(), None);
        std::fs::write(&p, b"{not json").unwrap();
        let err = format!("{:#}", read_json::<Doc>(&p).unwrap_err());
        assert!(
            err.contains("corrupt state file") && err.contains("s.json"),
            "{err}"
        );
        std::fs::write(&p, br#"{"version":99,"x":1}"#).unwrap();
        let err = format!("{:#}", read_json::<Doc>(&p).unwrap_err());
        assert!(err.contains("format version 99"), "{err}");
    }

    #[test]
    fn symlinks_are_not_followed() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("secret");
        std::fs::write(&target, b"x").unwrap();
        let link = dir.path().join("status.json");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        let err = format!("{:#}", read_optional(&link).unwrap_err());
        assert!(err.contains("symlink"), "{err}");
        // Writing replaces the link itself and leaves the target alone.
        atomic_write(&link, b"new").unwrap();
        assert_eq!(std::fs::read(&target).unwrap(), b"x");
        assert!(
            !std::fs::symlink_metadata(&link)
                .unwrap()
                .file_type()
                .is_symlink()
        );
    }
}
