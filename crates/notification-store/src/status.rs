//! [`StatusUpdate`]: a sender's report of how a delivery ended.

use chrono::{DateTime, Utc};

/// A change of a notification's delivery status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StatusUpdate {
    /// The provider accepted it.
    Sent {
        /// When.
        at: DateTime<Utc>,
    },
    /// It could not be sent.
    Failed {
        /// Why.
        error: String,
    },
}
