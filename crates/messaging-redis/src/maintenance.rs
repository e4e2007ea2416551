//! The background task of a backend: promotes due delayed messages of every
//! topic this backend has seen, and trims their streams.
//!
//! Messages this process schedules are promoted at their due time (the task
//! sleeps until the earliest one it knows); those scheduled elsewhere are found
//! by checking each known topic every `promote_interval`. Promotion itself is one
//! Lua script, so any number of processes may promote the same topic at once.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::Notify;
use tokio::time::Instant;
use tracing::warn;

use crate::backend::Inner;

/// Topics promoted or trimmed concurrently in one round.
const CONCURRENT_TOPICS: usize = 32;
/// Pause before trying a topic again after an error.
const ERROR_PAUSE: Duration = Duration::from_millis(500);

/// When each known topic is next due for promotion and trimming.
#[derive(Default)]
pub(crate) struct Schedule {
    topics: Mutex<HashMap<String, Timers>>,
    wake: Notify,
    closed: AtomicBool,
}

#[derive(Clone, Copy)]
struct Timers {
    promote: Instant,
    trim: Instant,
}

impl Schedule {
    fn lock(&self) -> MutexGuard<'_, HashMap<String, Timers>> {
        self.topics
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Starts looking after `topic` (promoting at once, trimming later).
    pub(crate) fn know(&self, topic: &str, trim_interval: Duration) {
        let mut topics = self.lock();
        if !topics.contains_key(topic) {
            let now = Instant::now();
            topics.insert(
                topic.to_owned(),
                Timers {
                    promote: now,
                    trim: now + trim_interval,
                },
            );
            drop(topics);
            self.wake.notify_one();
        }
    }

    /// A message of `topic` becomes due at `at`: promote it then.
    pub(crate) fn due_at(&self, topic: &str, at: DateTime<Utc>, trim_interval: Duration) {
        let when = Instant::now() + (at - Utc::now()).to_std().unwrap_or(Duration::ZERO);
        let mut topics = self.lock();
        let timers = topics.entry(topic.to_owned()).or_insert_with(|| Timers {
            promote: when,
            trim: Instant::now() + trim_interval,
        });
        if when < timers.promote {
            timers.promote = when;
            drop(topics);
            self.wake.notify_one();
        }
    }

    /// The next promotion of `topic` is due after `wait`.
    pub(crate) fn promote_after(&self, topic: &str, wait: Duration) {
        if let Some(timers) = self.lock().get_mut(topic) {
            timers.promote = Instant::now() + wait;
        }
    }

    /// How long until `topic` needs promoting again; `None` when it does now
    /// (or is not known yet).
    pub(crate) fn until_promote(&self, topic: &str) -> Option<Duration> {
        let promote = self.lock().get(topic)?.promote;
        promote
            .checked_duration_since(Instant::now())
            .filter(|wait| !wait.is_zero())
    }

    fn trim_after(&self, topic: &str, wait: Duration) {
        if let Some(timers) = self.lock().get_mut(topic) {
            timers.trim = Instant::now() + wait;
        }
    }

    pub(crate) fn forget(&self, topic: &str) {
        self.lock().remove(topic);
    }

    pub(crate) fn close(&self) {
        self.closed.store(true, Ordering::SeqCst);
        self.wake.notify_one();
    }

    /// Topics due for promotion and for trimming now, and when the next is due.
    fn due(&self, trimming: bool) -> (Vec<String>, Vec<String>, Option<Instant>) {
        let now = Instant::now();
        let topics = self.lock();
        let mut promote = Vec::new();
        let mut trim = Vec::new();
        let mut next: Option<Instant> = None;
        for (topic, timers) in topics.iter() {
            if timers.promote <= now {
                promote.push(topic.clone());
            } else {
                next = Some(next.map_or(timers.promote, |n| n.min(timers.promote)));
            }
            if trimming {
                if timers.trim <= now {
                    trim.push(topic.clone());
                } else {
                    next = Some(next.map_or(timers.trim, |n| n.min(timers.trim)));
                }
            }
        }
        (promote, trim, next)
    }
}

/// Runs until the backend is dropped.
pub(crate) async fn run(backend: Weak<Inner>, schedule: Arc<Schedule>) {
    loop {
        if schedule.closed.load(Ordering::SeqCst) {
            return;
        }
        let trimming = match backend.upgrade() {
            Some(inner) => inner.config.retention != messaging_core::Retention::KeepAll,
            None => return,
        };
        let (promote, trim, next) = schedule.due(trimming);
        if promote.is_empty() && trim.is_empty() {
            let sleep = async {
                match next {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => futures::future::pending().await,
                }
            };
            tokio::select! {
                () = sleep => {}
                () = schedule.wake.notified() => {}
            }
            continue;
        }
        let Some(inner) = backend.upgrade() else {
            return;
        };
        for chunk in promote.chunks(CONCURRENT_TOPICS) {
            let rounds = chunk.iter().map(|topic| {
                let inner = &inner;
                let schedule = &schedule;
                async move {
                    // promote() records the next due time itself.
                    if let Err(error) = inner.promote(topic).await {
                        warn!(%topic, %error, "promoting delayed messages failed; trying again shortly");
                        schedule.promote_after(topic, ERROR_PAUSE);
                    }
                }
            });
            futures::future::join_all(rounds).await;
        }
        for chunk in trim.chunks(CONCURRENT_TOPICS) {
            let rounds = chunk.iter().map(|topic| {
                let inner = &inner;
                let schedule = &schedule;
                async move {
                    match inner.trim(topic).await {
                        Ok(true) => schedule.trim_after(topic, Duration::ZERO),
                        Ok(false) => schedule.trim_after(topic, inner.config.trim_interval),
                        Err(error) => {
                            warn!(%topic, %error, "trimming failed; trying again later");
                            schedule.trim_after(topic, inner.config.trim_interval);
                        }
                    }
                }
            });
            futures::future::join_all(rounds).await;
        }
    }
}
