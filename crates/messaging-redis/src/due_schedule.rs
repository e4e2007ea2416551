//! The local side of the due index: which topics have a delayed message due
//! soon (timers) and which were written to (trimming), and the wake-up of the
//! maintenance task. A leaf module: the backend's state holds it, the
//! maintenance task reads it.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::Notify;
use tokio::time::Instant;

/// What the background task has to do besides reading the due index.
#[derive(Default)]
pub(crate) struct Schedule {
    state: Mutex<State>,
    wake: Notify,
    closed: AtomicBool,
}

#[derive(Default)]
struct State {
    /// Local timers: topics with a delayed message this process knows of (it
    /// scheduled, retried or saw it while promoting), and when the earliest
    /// is due.
    timers: HashMap<String, Instant>,
    /// Topics with something to trim since their last trim.
    dirty: HashSet<String>,
}

impl Schedule {
    /// Whether the backend was dropped (the maintenance task stops).
    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::SeqCst)
    }

    /// Resolves when a timer or a write needs the maintenance task.
    pub(crate) fn woken(&self) -> tokio::sync::futures::Notified<'_> {
        self.wake.notified()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// A message of `topic` becomes due at `at`: promote it then.
    pub(crate) fn due_at(&self, topic: &str, at: DateTime<Utc>) {
        self.due_in(topic, (at - Utc::now()).to_std().unwrap_or(Duration::ZERO));
    }

    /// A message of `topic` becomes due after `wait`.
    pub(crate) fn due_in(&self, topic: &str, wait: Duration) {
        let when = Instant::now() + wait;
        let mut state = self.lock();
        let lowered = match state.timers.get_mut(topic) {
            Some(timer) if *timer <= when => false,
            Some(timer) => {
                *timer = when;
                true
            }
            None => {
                state.timers.insert(topic.to_owned(), when);
                true
            }
        };
        drop(state);
        if lowered {
            self.wake.notify_one();
        }
    }

    /// `topic` may have something to trim now (a write or a settlement).
    pub(crate) fn touched(&self, topic: &str) {
        let mut state = self.lock();
        if !state.dirty.contains(topic) {
            state.dirty.insert(topic.to_owned());
        }
    }

    pub(crate) fn forget(&self, topic: &str) {
        let mut state = self.lock();
        state.timers.remove(topic);
        state.dirty.remove(topic);
    }

    pub(crate) fn close(&self) {
        self.closed.store(true, Ordering::SeqCst);
        self.wake.notify_one();
    }

    /// Removes and returns the topics whose timer is due.
    pub(crate) fn take_due(&self, now: Instant) -> Vec<String> {
        let mut state = self.lock();
        let due: Vec<String> = state
            .timers
            .iter()
            .filter(|(_, at)| **at <= now)
            .map(|(topic, _)| topic.clone())
            .collect();
        for topic in &due {
            state.timers.remove(topic);
        }
        due
    }

    pub(crate) fn next_timer(&self) -> Option<Instant> {
        self.lock().timers.values().min().copied()
    }

    pub(crate) fn has_dirty(&self) -> bool {
        !self.lock().dirty.is_empty()
    }

    pub(crate) fn take_dirty(&self) -> Vec<String> {
        self.lock().dirty.drain().collect()
    }
}
