//! The delegations a server is waiting on. Each is a coordinator on a blocking thread;
//! its entry is the coordinator's event sender, removed by that thread when the wait
//! ends. When the caller goes away every entry gets [`Event::Cancel`], the same event
//! Esc sends in editor mode, and the server waits (bounded) until all have recorded
//! their end.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::Sender;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::Notify;

use crate::coordinator::Event;

/// The running delegations of one server.
#[derive(Clone, Default)]
pub struct Inflight {
    inner: Arc<Inner>,
}

#[derive(Default)]
struct Inner {
    waits: Mutex<HashMap<u64, Sender<Event>>>,
    next: AtomicU64,
    emptied: Notify,
}

/// One delegation's entry; dropping it (on the delegation's thread, when its wait has
/// ended) removes it.
pub struct Entry {
    inner: Arc<Inner>,
    id: u64,
}

impl Inflight {
    /// Registers a coordinator's sender.
    pub fn add(&self, tx: Sender<Event>) -> Entry {
        let id = self.inner.next.fetch_add(1, Ordering::Relaxed);
        self.lock().insert(id, tx);
        Entry {
            inner: self.inner.clone(),
            id,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Sender<Event>>> {
        self.inner
            .waits
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Cancels every delegation with `reason` and waits up to `grace` for them to end.
    pub async fn cancel_all(&self, reason: &str, grace: Duration) {
        for tx in self.lock().values() {
            let _ = tx.send(Event::Cancel(reason.to_owned()));
        }
        let _ = tokio::time::timeout(grace, async {
            loop {
                let emptied = self.inner.emptied.notified();
                if self.is_empty() {
                    return;
                }
                emptied.await;
            }
        })
        .await;
    }
}

impl Drop for Entry {
    fn drop(&mut self) {
        let mut waits = self
            .inner
            .waits
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        waits.remove(&self.id);
        if waits.is_empty() {
            self.inner.emptied.notify_waiters();
        }
    }
}
