//! The restart schedule: a growing pause between restarts, and a limit on how many come
//! close together. The hosted Claude Code (`agent/claude/driver.rs`) and `agent-wrap
//! --restart` ([`super::Machine`]) restart by the same rule.

use std::time::{Duration, Instant};

/// Restarts are counted over this window ...
pub const RESTART_WINDOW: Duration = Duration::from_secs(60);
/// ... and after this many in it, the next death is not restarted.
pub const RESTART_LIMIT: usize = 5;
/// The pause before the first restart in the window; each next one doubles it (0.5, 1,
/// 2, 4 and 8 s).
pub const FIRST_PAUSE: Duration = Duration::from_millis(500);

/// The restarts of the last [`RESTART_WINDOW`]. Pure: the caller says what time it is.
#[derive(Clone, Debug, Default)]
pub struct Backoff {
    recent: Vec<Instant>,
}

impl Backoff {
    /// Something died at `now`: the pause before restarting it, counted as a restart, or
    /// `None` when [`RESTART_LIMIT`] restarts came within the window already.
    pub fn next(&mut self, now: Instant) -> Option<Duration> {
        self.recent
            .retain(|t| now.saturating_duration_since(*t) < RESTART_WINDOW);
        if self.recent.len() >= RESTART_LIMIT {
            return None;
        }
        let pause = FIRST_PAUSE * (1 << self.recent.len());
        self.recent.push(now);
        Some(pause)
    }

    /// How many restarts the window holds (the one [`Backoff::next`] just granted
    /// included).
    pub fn count(&self) -> usize {
        self.recent.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pauses_double_up_to_the_limit_then_none() {
        let mut b = Backoff::default();
        let t0 = Instant::now();
        let pauses: Vec<_> = (0..RESTART_LIMIT)
            .map(|i| b.next(t0 + Duration::from_secs(i as u64)).unwrap())
            .collect();
        assert_eq!(
            pauses,
            [500, 1000, 2000, 4000, 8000].map(Duration::from_millis)
        );
        assert_eq!(b.count(), RESTART_LIMIT);
        assert_eq!(b.next(t0 + Duration::from_secs(10)), None);
    }

    #[test]
    fn restarts_older_than_the_window_no_longer_count() {
        let mut b = Backoff::default();
        let t0 = Instant::now();
        for i in 0..RESTART_LIMIT {
            b.next(t0 + Duration::from_secs(i as u64)).unwrap();
        }
        // A minute after the first, that one has left the window.
        let later = t0 + RESTART_WINDOW + Duration::from_millis(1);
        assert_eq!(b.next(later), Some(Duration::from_secs(8)));
        // Long after all of them, the schedule starts over.
        let much_later = t0 + RESTART_WINDOW * 3;
        assert_eq!(b.next(much_later), Some(FIRST_PAUSE));
        assert_eq!(b.count(), 1);
    }
}
