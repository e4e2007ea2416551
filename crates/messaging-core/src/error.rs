use std::time::Duration;

use messaging_model::ValidationError;
use thiserror::Error;

pub use messaging_model::BoxError;

/// A backend could not do what was asked.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum BackendError {
    /// The server could not be reached or the connection broke; retrying later may work.
    #[error("backend unavailable: {source}")]
    Unavailable {
        /// The driver's error.
        #[source]
        source: BoxError,
    },
    /// The server refused a command; retrying the same command will fail again.
    #[error("backend command failed: {source}")]
    Command {
        /// The driver's error.
        #[source]
        source: BoxError,
    },
    /// A stored entry could not be decoded.
    #[error("corrupt entry {entry_id} in topic {topic}: {reason}")]
    Corrupt {
        /// The topic holding it.
        topic: String,
        /// The backend's id of the entry.
        entry_id: String,
        /// What was wrong with it.
        reason: String,
    },
    /// The backend's configuration was rejected before connecting (a key
    /// prefix, a pool size, a URL out of range); fixing the settings, not
    /// retrying, helps.
    #[error("invalid {backend} backend configuration: {reason}")]
    InvalidConfig {
        /// The backend's name (`"redis"`).
        backend: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// The topic holds as many messages as its cap allows, so the publish was
    /// refused (backpressure: nothing is ever dropped to make room). A
    /// `publish` or `schedule` refused with it wrote nothing; a `publish_batch`
    /// wrote exactly its first `written` messages.
    ///
    /// Not transient: the same call keeps failing until consumers catch up and
    /// settled messages are trimmed, so it is for the caller to slow down.
    ///
    /// ```
    /// use messaging_core::BackendError;
    /// let error = BackendError::QueueFull { topic: "orders.placed".into(), cap: 1_000, written: 0 };
    /// assert!(!error.is_transient());
    /// assert_eq!(error.to_string(), "topic orders.placed is full: its cap is 1000 messages (0 messages of this call were written)");
    /// ```
    #[error(
        "topic {topic} is full: its cap is {cap} messages ({written} messages of this call were written)"
    )]
    QueueFull {
        /// The topic.
        topic: String,
        /// The most messages the topic holds (its stream and its delayed messages).
        cap: u64,
        /// How many messages of the call, from the first, were written before the
        /// refusal (0 for `publish` and `schedule`).
        written: usize,
    },
    /// A partition count outside 1 to 1023, or a partitioned topic asked of a
    /// backend (or a topic) that cannot have one.
    #[error("invalid partition count {requested}: {reason}")]
    InvalidPartitions {
        /// The count asked for.
        requested: u16,
        /// Why it was refused.
        reason: String,
    },
    /// The topic exists with another partition count (1: a plain topic that
    /// exists already); counts never change.
    ///
    /// ```
    /// use messaging_core::BackendError;
    /// let error = BackendError::PartitionsConflict { topic: "orders".into(), recorded: 4, requested: 6 };
    /// assert_eq!(error.to_string(), "topic orders has 4 partitions, not 6 (a partition count never changes)");
    /// ```
    #[error(
        "topic {topic} has {recorded} partitions, not {requested} (a partition count never changes)"
    )]
    PartitionsConflict {
        /// The topic.
        topic: String,
        /// The count it has.
        recorded: u16,
        /// The count asked for.
        requested: u16,
    },
    /// The topic is recorded with another layout than the one asked for (a
    /// priority topic against a partitioned or plain one); layouts never change.
    ///
    /// ```
    /// use messaging_core::BackendError;
    /// let error = BackendError::LayoutConflict {
    ///     topic: "emails".into(),
    ///     recorded: "a topic of 3 partitions".into(),
    ///     requested: "a priority topic (high, normal, low)".into(),
    /// };
    /// assert_eq!(error.to_string(), "topic emails is a topic of 3 partitions, not a priority topic (high, normal, low) (a topic's layout never changes)");
    /// ```
    #[error("topic {topic} is {recorded}, not {requested} (a topic's layout never changes)")]
    LayoutConflict {
        /// The topic.
        topic: String,
        /// What it is.
        recorded: String,
        /// What was asked for.
        requested: String,
    },
}

impl BackendError {
    /// Wraps a connection-level driver error.
    pub fn unavailable(source: impl Into<BoxError>) -> Self {
        Self::Unavailable {
            source: source.into(),
        }
    }

    /// Wraps a command-level driver error.
    pub fn command(source: impl Into<BoxError>) -> Self {
        Self::Command {
            source: source.into(),
        }
    }

    /// True when the same call may succeed later (the server was unreachable).
    ///
    /// ```
    /// use messaging_core::BackendError;
    /// let error = BackendError::unavailable(std::io::Error::other("connection refused"));
    /// assert!(error.is_transient());
    /// ```
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Unavailable { .. })
    }
}

/// An error of the [`crate::MessagingService`].
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum MessagingError {
    /// The topic, payload or retry count was rejected before anything was
    /// stored: the one variant for invalid input (a backend does not check a
    /// message again).
    #[error(transparent)]
    Validation(#[from] ValidationError),
    /// The backend failed.
    #[error(transparent)]
    Backend(#[from] BackendError),
    /// This service already has a subscription for the topic under that group.
    #[error("already subscribed to {topic} as group {group}")]
    AlreadySubscribed {
        /// The topic.
        topic: String,
        /// The consumer group.
        group: String,
    },
    /// This service has no subscription for the topic.
    #[error("not subscribed to {topic}")]
    NotSubscribed {
        /// The topic.
        topic: String,
    },
    /// No dead letter with that id in the topic's dead-letter queue.
    #[error("no dead letter {id} in topic {topic}")]
    DeadLetterNotFound {
        /// The topic.
        topic: String,
        /// The dead letter's id.
        id: String,
    },
    /// A subscription option is out of range.
    #[error("invalid subscription option: {0}")]
    InvalidOption(&'static str),
    /// The backend cannot do this (it does not implement the optional trait
    /// the operation needs, such as [`CancelBackend`](crate::CancelBackend)).
    #[error("the {backend} backend does not support {operation}")]
    Unsupported {
        /// The backend's name.
        backend: &'static str,
        /// The operation.
        operation: &'static str,
    },
}

/// How a handler failed, which decides what happens to the message next.
///
/// ```
/// use std::time::Duration;
/// use messaging_core::HandlerError;
///
/// let temporary = HandlerError::retry(std::io::Error::other("provider timed out"));
/// assert!(!temporary.is_permanent());
///
/// let bad_input = HandlerError::permanent("no such user");
/// assert!(bad_input.is_permanent());
///
/// let throttled = HandlerError::retry_after(Duration::from_secs(30), "rate limited");
/// assert_eq!(throttled.retry_delay(), Some(Duration::from_secs(30)));
/// ```
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum HandlerError {
    /// Try again after the retry policy's backoff, until `max_retry` is used up.
    #[error("{source}")]
    Retry {
        /// What went wrong.
        #[source]
        source: BoxError,
    },
    /// Try again after this delay instead of the policy's backoff.
    #[error("{source} (retry after {after:?})")]
    RetryAfter {
        /// The delay asked for.
        after: Duration,
        /// What went wrong.
        #[source]
        source: BoxError,
    },
    /// Do not retry: the message goes straight to the dead-letter queue.
    #[error("permanent failure: {source}")]
    Permanent {
        /// What went wrong.
        #[source]
        source: BoxError,
    },
}

impl HandlerError {
    /// A failure worth retrying with the policy's backoff.
    pub fn retry(source: impl Into<BoxError>) -> Self {
        Self::Retry {
            source: source.into(),
        }
    }

    /// A failure worth retrying after `after`.
    pub fn retry_after(after: Duration, source: impl Into<BoxError>) -> Self {
        Self::RetryAfter {
            after,
            source: source.into(),
        }
    }

    /// A failure that retrying cannot fix.
    pub fn permanent(source: impl Into<BoxError>) -> Self {
        Self::Permanent {
            source: source.into(),
        }
    }

    /// True when the message must not be retried.
    pub fn is_permanent(&self) -> bool {
        matches!(self, Self::Permanent { .. })
    }

    /// The delay the handler asked for, if any.
    pub fn retry_delay(&self) -> Option<Duration> {
        match self {
            Self::RetryAfter { after, .. } => Some(*after),
            _ => None,
        }
    }
}
