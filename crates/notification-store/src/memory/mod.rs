//! Stores kept in this process: the default for tests, demos and single-process
//! services, and recording-friendly for other crates' tests (read everything
//! back, wait for a condition, simulate an outage).

use chrono::{DateTime, Utc};

use crate::StoreError;

mod digests;
mod notifications;
mod preferences;
mod reports;
mod suppressions;
mod templates;

pub use digests::InMemoryDigestStore;
pub use notifications::InMemoryNotificationStore;
pub use preferences::InMemoryPreferenceStore;
pub use suppressions::InMemorySuppressionStore;
pub use templates::InMemoryTemplateStore;

fn unavailable() -> StoreError {
    StoreError::Unavailable {
        source: "the in-memory store was told to be unavailable".into(),
    }
}

/// Timestamps are kept to the microsecond, as PostgreSQL and
/// [`InboxCursor::encode`](crate::InboxCursor::encode) keep them, so cursors neither repeat nor skip a row.
fn micros(at: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(at.timestamp_micros()).unwrap_or(at)
}

/// Now, to the microsecond.
fn now() -> DateTime<Utc> {
    micros(Utc::now())
}
