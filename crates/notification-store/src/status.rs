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
    /// It is not to be sent after all (the user opted out while it waited for
    /// their quiet hours): status `skipped` with the reason in `error`. Only
    /// from `pending` or `scheduled`: a notification already handed over (or
    /// being handed over) is a [`StoreError::Conflict`](crate::StoreError::Conflict)
    /// and does not change.
    Skipped {
        /// Why.
        reason: String,
    },
    /// It is not to be sent: its recipient is on the suppression list (a
    /// redelivered event whose address was suppressed after an earlier
    /// attempt). Status `suppressed` with the reason in `error`. Only from
    /// `pending`, `scheduled` or `failed` (never handed over, or refused by
    /// every provider): a notification being handed over, or one a provider
    /// accepted, is a [`StoreError::Conflict`](crate::StoreError::Conflict)
    /// and does not change.
    Suppressed {
        /// Why (the suppression's reason and detail).
        reason: String,
    },
}
