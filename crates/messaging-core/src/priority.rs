//! Priorities: a topic created as a priority topic has three lanes (high,
//! normal, low) and its consumers take high messages first, with a rule that
//! keeps the lower lanes moving.
//!
//! A priority topic is a [`Partitioned`](crate::Partitioned) topic of three
//! partitions (`T#0` high, `T#1` normal, `T#2` low) recorded with a priority
//! layout, so every process over the backend routes and reads it the same way:
//! [`MessagingService::create_priority_topic`](crate::MessagingService::create_priority_topic),
//! `messaging topics create T --priorities`. A message's lane is its
//! [`PRIORITY_KEY`] metadata ([`Priority::set_on`]); none means normal. Within
//! a lane, messages keep the order they were published in; delays, retries
//! (a retry stays in its lane), dead letters and leases are each lane's own,
//! and stats, dead letters and deletion answer for the whole topic.
//!
//! **Reading.** Each read of a consumer fills from the lanes in an order that
//! depends on how many reads it made before: of every
//! [`CYCLE`] reads, [`CYCLE`] − 2 start with high, one with normal and one
//! with low, each read going on to the next lanes while it has room. So under
//! a constant backlog in every lane, high gets at least 8 reads in 10, normal
//! and low at least one in 10 each: low never starves, and a high message
//! waits at most for the handlers already running, not for the backlog of the
//! other lanes.
//!
//! ```
//! use std::sync::Arc;
//! use messaging_core::priority::Priority;
//! use messaging_core::{InMemoryBackend, MessagingService, Partitioned};
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let service = MessagingService::new(Arc::new(Partitioned::new(InMemoryBackend::new())));
//! service.create_priority_topic("emails.send").await?;
//! let reset = Priority::High.set_on(service.message("emails.send", serde_json::json!({"to": "ann"}))?);
//! service.publish_message(&reset).await?;
//! assert_eq!(service.stats("emails.send").await?.length, 1);
//! # Ok(()) }
//! ```

use std::fmt;
use std::str::FromStr;

use messaging_model::Message;

/// Metadata key of a message's priority: `high`, `normal` or `low`.
pub const PRIORITY_KEY: &str = "priority";

/// Lanes of a priority topic.
pub const LANES: u16 = 3;

/// Reads in one cycle of the reading order (see the [module](self) docs).
pub const CYCLE: usize = 10;

/// A message's priority.
///
/// ```
/// use messaging_core::priority::Priority;
/// assert_eq!("high".parse::<Priority>(), Ok(Priority::High));
/// assert!("urgent".parse::<Priority>().is_err());
/// assert_eq!(Priority::default(), Priority::Normal);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub enum Priority {
    /// Taken first.
    High,
    /// The default.
    #[default]
    Normal,
    /// Taken last, but never starved.
    Low,
}

/// A priority value that is not `high`, `normal` or `low`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid priority {0:?}: high, normal or low")]
pub struct InvalidPriority(pub String);

impl Priority {
    /// The name, as stored in [`PRIORITY_KEY`].
    pub fn as_str(self) -> &'static str {
        match self {
            Self::High => "high",
            Self::Normal => "normal",
            Self::Low => "low",
        }
    }

    /// The lane (partition index) of this priority.
    pub fn lane(self) -> u16 {
        match self {
            Self::High => 0,
            Self::Normal => 1,
            Self::Low => 2,
        }
    }

    /// `message` with this priority.
    pub fn set_on(self, message: Message) -> Message {
        message.with_metadata(PRIORITY_KEY, self.as_str())
    }

    /// The priority `message` asks for: normal when it names none, or names one
    /// that is not valid (which [`MessagingService`](crate::MessagingService)
    /// refuses at publish; another producer's is read as normal).
    pub fn of(message: &Message) -> Self {
        message
            .metadata
            .get(PRIORITY_KEY)
            .and_then(|value| value.parse().ok())
            .unwrap_or_default()
    }
}

impl fmt::Display for Priority {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Priority {
    type Err = InvalidPriority;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "high" => Ok(Self::High),
            "normal" => Ok(Self::Normal),
            "low" => Ok(Self::Low),
            other => Err(InvalidPriority(other.chars().take(32).collect())),
        }
    }
}

/// The lane order of a consumer's `read`-th read (from 0): high first, except
/// one read in [`CYCLE`] that starts with normal and one that starts with low.
///
/// ```
/// use messaging_core::priority::lane_order;
/// let starts: Vec<u16> = (0..10).map(|read| lane_order(read)[0]).collect();
/// assert_eq!(starts, [0, 0, 0, 0, 1, 0, 0, 0, 0, 2]);
/// ```
pub fn lane_order(read: usize) -> [u16; 3] {
    match read % CYCLE {
        4 => [1, 0, 2],
        9 => [2, 0, 1],
        _ => [0, 1, 2],
    }
}
