//! `claude-editor-hook events [--follow] [--since T] [--json]`: reads the event log
//! (src/events/, docs/team-view.md).

use std::io::Write;
use std::sync::mpsc::channel;

use anyhow::{Result, bail};

use crate::events::{Entry, Follower, read_old};
use crate::state::StateDir;
use crate::watch::DirWatcher;

/// How many past events `--follow` prints first when no `--since` is given (as
/// `tail -f` does).
const FOLLOW_BACKLOG: usize = 10;

/// `--since T`: a duration ago (`30s`, `10m`, `2h`, `1d`) or microseconds since the
/// epoch.
pub fn parse_since(s: &str, now_us: u64) -> Result<u64> {
    if let Ok(us) = s.parse::<u64>()
        && us > 1_000_000_000_000
    {
        return Ok(us);
    }
    match super::board::parse_duration(s) {
        Ok(ago) => Ok(now_us.saturating_sub(ago.as_micros() as u64)),
        Err(why) => bail!(
            "--since {s:?}: {why}; give a duration ago (30s, 10m, 2h, 1d) or microseconds since the epoch"
        ),
    }
}

pub fn run(follow: bool, since: Option<&str>, json: bool) -> Result<i32> {
    let state = StateDir::from_env()?;
    let since = since
        .map(|s| parse_since(s, crate::time::now_us()))
        .transpose()?;
    let root = state.root().to_path_buf();
    // The watch comes first, so that no event falls between the history and the follow.
    let (tx, rx) = channel();
    let mut follower = Follower::new(&root, true);
    let _watcher = match follow {
        true => {
            let mut w = DirWatcher::new(tx, || ())?;
            w.watch(follower.dir()?)?;
            Some(w)
        }
        false => None,
    };
    let mut history = read_old(&root);
    history.extend(follower.read_new());
    let mut shown: Vec<Entry> = history
        .into_iter()
        .filter(|e| since.is_none_or(|s| e.event.at_us >= s))
        .collect();
    if follow && since.is_none() {
        let skip = shown.len().saturating_sub(FOLLOW_BACKLOG);
        shown.drain(..skip);
    }
    let mut out = std::io::stdout().lock();
    if print(&mut out, &shown, json).is_err() || !follow {
        return Ok(0);
    }
    while rx.recv().is_ok() {
        // Take every wake-up already queued: one read covers them.
        while rx.try_recv().is_ok() {}
        if print(&mut out, &follower.read_new(), json).is_err() {
            // The reader went away (a closed pipe): done.
            return Ok(0);
        }
    }
    Ok(0)
}

fn print(out: &mut impl Write, entries: &[Entry], json: bool) -> std::io::Result<()> {
    for e in entries {
        if json {
            writeln!(out, "{}", e.raw)?;
        } else {
            writeln!(
                out,
                "{}  {}",
                crate::events::clock(e.event.at_us),
                e.event.describe()
            )?;
        }
    }
    out.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_takes_a_duration_ago_or_a_time() {
        let now = 2_000_000_000_000_000;
        assert_eq!(parse_since("10s", now).unwrap(), now - 10_000_000);
        assert_eq!(
            parse_since("1900000000000000", now).unwrap(),
            1_900_000_000_000_000
        );
        assert!(parse_since("yesterday", now).is_err());
    }
}
