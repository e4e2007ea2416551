//! Unique jobs: publish a message under a key at most once at a time.
//!
//! [`MessagingService::publish_unique`](crate::MessagingService::publish_unique)
//! claims the key and publishes in one atomic step of the backend. While the key
//! is held, another publish under it (from any process) publishes nothing and
//! answers the first message's id. The key is held:
//!
//! | state of the first message | held? |
//! |---|---|
//! | delayed (scheduled), waiting, being handled, waiting for a retry | yes, until it settles (at most [`UniqueOptions::hold`]) |
//! | handled (acknowledged) | for [`UniqueOptions::window`] after it was handled, then released |
//! | dead-lettered | until `hold` runs out when [`UniqueOptions::while_dead_lettered`] (the default); else for `window` after it was dead-lettered |
//!
//! `hold` (7 days by default) bounds every case: a key whose release was lost
//! (the process died between the acknowledgement and the release) frees itself
//! then. Consumers in other groups do not hold the key longer: the first group
//! to settle the message starts the window.

use std::time::Duration;

use messaging_model::Topic;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use messaging_model::Message;
use thiserror::Error;
use uuid::Uuid;

use crate::BackendError;

/// Metadata key of a unique message: its key.
pub const UNIQUE_KEY: &str = "unique_key";
/// Metadata key of a unique message: the window after it is handled, in ms.
pub const UNIQUE_WINDOW_MS_KEY: &str = "unique_window_ms";
/// Metadata key of a unique message: `1` when a dead letter keeps the key held.
pub const UNIQUE_WHILE_DEAD_KEY: &str = "unique_while_dead";

/// Longest unique key, in bytes.
pub const MAX_UNIQUE_KEY_LEN: usize = 256;

/// A unique key that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("invalid unique key {key:?}: 1 to 256 bytes, no whitespace or control characters")]
pub struct InvalidUniqueKey {
    /// The key given (cut).
    pub key: String,
}

/// Checks a unique key: 1 to [`MAX_UNIQUE_KEY_LEN`] bytes, no whitespace or
/// control characters.
///
/// ```
/// use messaging_core::unique::validate_unique_key;
/// assert!(validate_unique_key("welcome:user-42").is_ok());
/// assert!(validate_unique_key("two words").is_err());
/// ```
pub fn validate_unique_key(key: &str) -> Result<(), InvalidUniqueKey> {
    let valid = !key.is_empty()
        && key.len() <= MAX_UNIQUE_KEY_LEN
        && !key.chars().any(|c| c.is_whitespace() || c.is_control());
    if valid {
        Ok(())
    } else {
        Err(InvalidUniqueKey {
            key: key.chars().take(MAX_UNIQUE_KEY_LEN).collect(),
        })
    }
}

/// How long a unique key stays held.
///
/// ```
/// use std::time::Duration;
/// use messaging_core::unique::UniqueOptions;
/// let options = UniqueOptions::new(Duration::from_secs(3600)).releasing_dead_letters();
/// assert_eq!(options.window, Duration::from_secs(3600));
/// assert!(!options.while_dead_lettered);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct UniqueOptions {
    /// How long the key stays held after the message was handled.
    pub window: Duration,
    /// The longest the key is held at all (7 days by default; at least `window`).
    pub hold: Duration,
    /// Whether a dead-lettered message keeps holding its key (until `hold`).
    pub while_dead_lettered: bool,
}

impl UniqueOptions {
    /// Held until handled and for `window` after; dead letters keep holding it.
    pub fn new(window: Duration) -> Self {
        Self {
            window,
            hold: Duration::from_secs(7 * 24 * 3600).max(window),
            while_dead_lettered: true,
        }
    }

    /// Sets the longest the key is held (at least the window).
    pub fn with_hold(mut self, hold: Duration) -> Self {
        self.hold = hold.max(self.window).max(Duration::from_millis(1));
        self
    }

    /// A dead letter starts the window, as a handled message does.
    pub fn releasing_dead_letters(mut self) -> Self {
        self.while_dead_lettered = false;
        self
    }
}

/// What [`MessagingService::publish_unique`](crate::MessagingService::publish_unique) did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UniquePublish {
    /// The key was free: the message is published, with this id.
    Published(Uuid),
    /// The key is held by this message: nothing was published.
    Duplicate(Uuid),
}

impl UniquePublish {
    /// The id of the message holding the key (the new one or the first).
    pub fn id(self) -> Uuid {
        match self {
            Self::Published(id) | Self::Duplicate(id) => id,
        }
    }
}

/// Publishing under a unique key: an optional ability of a backend, reached
/// through [`MessageBackend::unique_backend`](crate::MessageBackend::unique_backend),
/// implemented by the in-memory and Redis backends.
#[async_trait]
pub trait UniqueBackend: Send + Sync {
    /// Claims `key` of the message's topic for `hold` and publishes the message
    /// (now, or delayed to `deliver_at`), in one atomic step; when the key is
    /// held already, publishes nothing and answers the holder's id. A full topic
    /// is [`BackendError::QueueFull`] and claims nothing.
    async fn publish_unique(
        &self,
        message: &Message,
        deliver_at: Option<DateTime<Utc>>,
        key: &str,
        hold: Duration,
    ) -> Result<Option<Uuid>, BackendError>;

    /// The id of the message holding `key` of `topic`, if it is held.
    async fn unique_holder(&self, topic: &Topic, key: &str) -> Result<Option<Uuid>, BackendError>;

    /// If `key` of `topic` is held by message `id`, keeps it held for `after`
    /// more (zero: frees it now); true when it was held by `id`.
    async fn release_unique(
        &self,
        topic: &Topic,
        key: &str,
        id: Uuid,
        after: Duration,
    ) -> Result<bool, BackendError>;
}
