//! The board's schema, its version and its migrations, and the checks made before
//! anything is written to a database file.
//!
//! A board database is marked twice in its SQLite header: `application_id` is
//! [`APPLICATION_ID`] and `user_version` is the schema version. Before a connection is
//! opened, the header is read as plain bytes: a file that is not SQLite, or is another
//! program's database, or comes from a newer build, is refused with the path in the
//! message and is never opened for writing. Migrations run in one `BEGIN IMMEDIATE`
//! transaction, from the file's version up to [`SCHEMA_VERSION`].

use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use anyhow::{Context, Result, bail};
use rusqlite::Connection;

/// `PRAGMA application_id` of a board: "CEHB" in ASCII.
pub const APPLICATION_ID: i32 = 0x4345_4842;

/// The schema this build writes. Older boards are migrated; newer ones are refused.
pub const SCHEMA_VERSION: i32 = 1;

/// The SQLite file header's magic string.
const SQLITE_MAGIC: &[u8; 16] = b"SQLite format 3\0";

/// Each migration takes the schema from version `index` to `index + 1`.
const MIGRATIONS: &[&str] = &[
    // 0 -> 1: the first schema.
    "
    CREATE TABLE meta (
        key   TEXT PRIMARY KEY,
        value TEXT NOT NULL
    ) WITHOUT ROWID;
    CREATE TABLE tasks (
        seq            INTEGER PRIMARY KEY,
        id             TEXT NOT NULL UNIQUE,
        title          TEXT NOT NULL,
        body           TEXT NOT NULL DEFAULT '',
        priority       INTEGER NOT NULL DEFAULT 3,
        role           TEXT,
        context        TEXT,
        status         TEXT NOT NULL DEFAULT 'open'
                       CHECK (status IN ('open', 'claimed', 'done', 'failed', 'cancelled')),
        unmet          INTEGER NOT NULL DEFAULT 0,
        worker         TEXT,
        host_pid       INTEGER,
        host_lock      TEXT,
        lease_us       INTEGER,
        lease_until_us INTEGER,
        attempts       INTEGER NOT NULL DEFAULT 0,
        result         TEXT,
        reason         TEXT,
        created_at_us  INTEGER NOT NULL,
        claimed_at_us  INTEGER,
        finished_at_us INTEGER
    );
    CREATE INDEX tasks_ready ON tasks (status, unmet, priority, seq);
    CREATE INDEX tasks_worker ON tasks (worker) WHERE status = 'claimed';
    CREATE TABLE deps (
        task TEXT NOT NULL REFERENCES tasks (id),
        dep  TEXT NOT NULL REFERENCES tasks (id),
        PRIMARY KEY (task, dep)
    ) WITHOUT ROWID;
    CREATE INDEX deps_by_dep ON deps (dep);
    CREATE TABLE notes (
        seq    INTEGER PRIMARY KEY,
        author TEXT NOT NULL,
        text   TEXT NOT NULL,
        at_us  INTEGER NOT NULL
    );
    ",
];

/// What the header of an existing file says.
#[derive(Debug, PartialEq, Eq)]
pub enum Header {
    /// Zero bytes: a board being created (or whose creation was interrupted).
    Empty,
    /// A board database at this schema version.
    Board(i32),
}

/// Reads the first 100 bytes of `db` and checks that it is a board this build can read.
/// Nothing is written.
pub fn check_header(db: &Path) -> Result<Header> {
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC | libc::O_NONBLOCK)
        .open(db)
        .with_context(|| format!("failed to open board database {}", db.display()))?;
    let mut head = Vec::with_capacity(100);
    (&mut file)
        .take(100)
        .read_to_end(&mut head)
        .with_context(|| format!("failed to read board database {}", db.display()))?;
    if head.is_empty() {
        return Ok(Header::Empty);
    }
    if head.len() < 100 || &head[..16] != SQLITE_MAGIC {
        bail!(
            "{} is not a board database (not an SQLite file, or corrupt); nothing was \
             written to it — move it away or pass another --board",
            db.display()
        );
    }
    let be = |at: usize| i32::from_be_bytes(head[at..at + 4].try_into().expect("4 bytes"));
    let (user_version, application_id) = (be(60), be(68));
    if application_id != APPLICATION_ID {
        bail!(
            "{} is an SQLite database of another program (application id {application_id:#x}), \
             not a board; nothing was written to it",
            db.display()
        );
    }
    check_version(db, user_version)?;
    Ok(Header::Board(user_version))
}

fn check_version(db: &Path, version: i32) -> Result<()> {
    if version > SCHEMA_VERSION {
        bail!(
            "{} has board schema version {version}, this build reads up to version \
             {SCHEMA_VERSION}; upgrade claude-editor-hook (nothing was written)",
            db.display()
        );
    }
    Ok(())
}

/// Brings a freshly opened connection to [`SCHEMA_VERSION`]: creates the schema in an
/// empty file, migrates an older one. Re-checks the ids inside the transaction, where
/// no other process can change them.
pub fn migrate(conn: &mut Connection, db: &Path) -> Result<()> {
    let version: i32 = conn
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .with_context(|| format!("failed to read board database {}", db.display()))?;
    if version == SCHEMA_VERSION {
        return Ok(());
    }
    check_version(db, version)?;
    // The schema is created before WAL mode is switched on, so that the ids in the
    // header reach the main file at once: in WAL mode they would sit in the WAL until a
    // checkpoint, and another process's header check would read the file as foreign.
    let tx = conn
        .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
        .with_context(|| format!("failed to lock board database {}", db.display()))?;
    let (version, app): (i32, i32) = (
        tx.pragma_query_value(None, "user_version", |r| r.get(0))?,
        tx.pragma_query_value(None, "application_id", |r| r.get(0))?,
    );
    check_version(db, version)?;
    if version > 0 && app != APPLICATION_ID {
        bail!("{} is not a board database", db.display());
    }
    if version == 0 {
        let tables: i64 = tx.query_row("SELECT count(*) FROM sqlite_schema", [], |r| r.get(0))?;
        if tables > 0 {
            bail!(
                "{} is an SQLite database with tables but no board schema version; nothing \
                 was written to it",
                db.display()
            );
        }
    }
    for (from, sql) in MIGRATIONS.iter().enumerate().skip(version as usize) {
        tx.execute_batch(sql).with_context(|| {
            format!(
                "failed to migrate board {} from schema version {from}",
                db.display()
            )
        })?;
    }
    tx.pragma_update(None, "application_id", APPLICATION_ID)?;
    tx.pragma_update(None, "user_version", SCHEMA_VERSION)?;
    tx.commit()
        .with_context(|| format!("failed to write board database {}", db.display()))?;
    // WAL is persistent once set; journal_mode cannot change inside a transaction.
    conn.pragma_update(None, "journal_mode", "WAL")
        .with_context(|| format!("failed to set WAL mode on {}", db.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrations_reach_the_current_version() {
        assert_eq!(MIGRATIONS.len(), SCHEMA_VERSION as usize);
    }

    #[test]
    fn headers_of_foreign_files_are_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let p = tmp.path().join("board.db");
        std::fs::write(&p, b"").unwrap();
        assert_eq!(check_header(&p).unwrap(), Header::Empty);
        std::fs::write(&p, vec![b'x'; 4096]).unwrap();
        let err = check_header(&p).unwrap_err().to_string();
        assert!(
            err.contains("not a board database") && err.contains("board.db"),
            "{err}"
        );
        let conn = Connection::open(p.with_file_name("other.db")).unwrap();
        conn.execute_batch("CREATE TABLE t (x); PRAGMA application_id = 7;")
            .unwrap();
        drop(conn);
        let err = check_header(&p.with_file_name("other.db"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("another program"), "{err}");
    }
}
