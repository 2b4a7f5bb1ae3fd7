//! The host loop's timers: deadlines the loop waits for with `recv_timeout`, instead of
//! threads that sleep and then send. A timer runs at most once per key: starting it
//! again restarts it, and a cancelled timer never fires, so no event needs a guard
//! against a timer that outlived its purpose.

use std::time::{Duration, Instant};

/// Named deadlines.
#[derive(Debug)]
pub struct Timers<K> {
    due: Vec<(Instant, K)>,
}

impl<K> Default for Timers<K> {
    fn default() -> Self {
        Self { due: Vec::new() }
    }
}

impl<K: PartialEq + Copy> Timers<K> {
    /// Starts (or restarts) timer `key` to fire `after` from now.
    pub fn start(&mut self, key: K, after: Duration) {
        self.start_at(key, Instant::now() + after);
    }

    pub fn start_at(&mut self, key: K, at: Instant) {
        self.cancel(key);
        self.due.push((at, key));
    }

    /// Cancels timer `key`, if it runs.
    pub fn cancel(&mut self, key: K) {
        self.due.retain(|(_, k)| *k != key);
    }

    /// Returns true if and only if timer `key` runs.
    pub fn is_running(&self, key: K) -> bool {
        self.due.iter().any(|(_, k)| *k == key)
    }

    /// When the next timer fires.
    pub fn next(&self) -> Option<Instant> {
        self.due.iter().map(|(at, _)| *at).min()
    }

    /// Removes and returns the timers due at `now`, earliest first.
    pub fn take_due(&mut self, now: Instant) -> Vec<K> {
        let mut fired: Vec<(Instant, K)> = Vec::new();
        self.due.retain(|(at, k)| {
            let due = *at <= now;
            if due {
                fired.push((*at, *k));
            }
            !due
        });
        fired.sort_by_key(|(at, _)| *at);
        fired.into_iter().map(|(_, k)| k).collect()
    }
}

/// How long to wait for the earliest of `deadlines`; `None` is forever.
pub fn wait_for(deadlines: impl IntoIterator<Item = Option<Instant>>) -> Option<Duration> {
    let next = deadlines.into_iter().flatten().min()?;
    Some(next.saturating_duration_since(Instant::now()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timers_fire_in_order_once_and_restart_or_cancel_by_key() {
        let mut t = Timers::default();
        let now = Instant::now();
        t.start_at("b", now + Duration::from_millis(2));
        t.start_at("a", now + Duration::from_millis(1));
        t.start_at("c", now + Duration::from_millis(3));
        t.start_at("b", now + Duration::from_millis(10));
        t.cancel("c");
        assert_eq!(t.next(), Some(now + Duration::from_millis(1)));
        assert_eq!(t.take_due(now + Duration::from_millis(5)), vec!["a"]);
        assert!(t.is_running("b") && !t.is_running("c"));
        assert_eq!(t.take_due(now + Duration::from_millis(10)), vec!["b"]);
        assert!(t.take_due(now + Duration::from_secs(1)).is_empty());
        assert_eq!(t.next(), None);
    }
}
