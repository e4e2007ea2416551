//! What trimming may remove from a topic, and how many messages a topic may hold.

/// Messages a topic may hold (its stream, settled entries not yet trimmed
/// included, plus its delayed messages) before `publish` is refused with
/// [`BackendError::QueueFull`](crate::BackendError::QueueFull): the default cap of
/// both backends.
pub const DEFAULT_TOPIC_CAP: usize = 1_000_000;

/// What a backend may remove from a topic's stream to bound its memory.
///
/// The default, [`Retention::Settled`], is lossless: only entries every consumer
/// group has read and settled are removed, and a topic no group has subscribed
/// to yet keeps everything, so the first subscriber (with
/// [`StartFrom::Earliest`](crate::StartFrom::Earliest)) receives every message
/// published before it came up. Memory is then bounded by the topic cap
/// ([`DEFAULT_TOPIC_CAP`]): a publish beyond it fails, nothing is dropped.
///
/// [`Retention::DropUnreadAfter`] is the one lossy choice, for topics whose old
/// messages are worthless (telemetry, presence): it drops entries no group has
/// read yet.
///
/// ```
/// use messaging_core::Retention;
/// assert_eq!(Retention::default(), Retention::Settled { keep: 10_000 });
/// assert!(!Retention::default().is_lossy());
/// assert!(Retention::DropUnreadAfter { len: 1_000 }.is_lossy());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Retention {
    /// Lossless (the default): trim the stream towards `keep` entries, removing
    /// only the oldest entries that every consumer group has read and settled.
    /// An entry a group has not read yet or still has pending is never removed,
    /// and with no group at all nothing is. The `keep` newest settled entries
    /// stay as history for a group created later with
    /// [`StartFrom::Earliest`](crate::StartFrom::Earliest).
    Settled {
        /// Entries kept once settled (default 10,000).
        keep: usize,
    },
    /// Lossless: never trim; the stream grows until the topic is deleted (or the
    /// topic cap refuses publishes).
    KeepAll,
    /// **Lossy**: trim the stream to `len` entries, dropping the oldest even when
    /// a group has not read them yet or no group exists: a consumer that falls
    /// behind, or subscribes late, misses them. Entries a consumer holds
    /// (pending) are still kept until settled.
    DropUnreadAfter {
        /// Entries kept, read or not.
        len: usize,
    },
}

impl Default for Retention {
    fn default() -> Self {
        Self::Settled { keep: 10_000 }
    }
}

impl Retention {
    /// True when this retention may drop messages no consumer has handled.
    pub fn is_lossy(&self) -> bool {
        matches!(self, Self::DropUnreadAfter { .. })
    }
}
