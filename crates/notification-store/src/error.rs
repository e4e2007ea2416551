//! [`StoreError`]: what every store reports.

use thiserror::Error;
use uuid::Uuid;

pub use messaging_model::BoxError;

/// A store could not do what was asked.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum StoreError {
    /// No such row, or it belongs to another user (the two are never told apart).
    #[error("{entity} {key} not found")]
    NotFound {
        /// What was looked for (`"notification"`, `"template"`).
        entity: &'static str,
        /// The id or name looked for.
        key: String,
    },
    /// A unique key is taken (an idempotency key, a notification id).
    #[error("conflict: {what}")]
    Conflict {
        /// What collided.
        what: String,
    },
    /// The input breaks a rule of the store (a malformed cursor, an oversized page).
    #[error("invalid input: {reason}")]
    InvalidInput {
        /// What was wrong.
        reason: String,
    },
    /// The database could not be reached; retrying later may work.
    #[error("store unavailable: {source}")]
    Unavailable {
        /// The driver's error.
        #[source]
        source: BoxError,
    },
    /// The database refused a query for another reason.
    #[error("store query failed: {source}")]
    Query {
        /// The driver's error.
        #[source]
        source: BoxError,
    },
}

impl StoreError {
    /// A not-found error for a notification id.
    pub fn notification_not_found(id: Uuid) -> Self {
        Self::NotFound {
            entity: "notification",
            key: id.to_string(),
        }
    }

    /// A not-found error for a template name.
    pub fn template_not_found(name: &str) -> Self {
        Self::NotFound {
            entity: "template",
            key: name.to_owned(),
        }
    }

    /// True for [`StoreError::NotFound`].
    pub fn is_not_found(&self) -> bool {
        matches!(self, Self::NotFound { .. })
    }

    /// True for [`StoreError::Conflict`].
    pub fn is_conflict(&self) -> bool {
        matches!(self, Self::Conflict { .. })
    }

    /// True when retrying later may work.
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Unavailable { .. })
    }
}
