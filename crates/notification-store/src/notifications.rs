//! The [`NotificationStore`] trait: the history of notifications and their
//! delivery attempts, and the check every store makes before recording.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use messaging_model::{DeliveryAttempt, Notification};
use uuid::Uuid;

use crate::{InboxPage, InboxQuery, StatusUpdate, StoreError};

/// Checks what a store is asked to record: metadata nested no deeper than
/// [`messaging_model::MAX_JSON_DEPTH`] (deeper JSON is refused by JSON readers,
/// PostgreSQL's included on the way back, so one such row would make a whole
/// inbox unreadable). Every store calls it on `record` and `record_batch`.
///
/// ```
/// use messaging_model::{Notification, NotificationKind};
/// use notification_store::check_notification;
/// let mut deep = serde_json::json!(1);
/// for _ in 0..100 { deep = serde_json::json!([deep]); }
/// let n = Notification::new("u1", NotificationKind::System, "Hi", "x").with_metadata(deep);
/// assert!(check_notification(&n).is_err());
/// ```
pub fn check_notification(notification: &Notification) -> Result<(), StoreError> {
    if messaging_model::json_depth_exceeds(&notification.metadata, messaging_model::MAX_JSON_DEPTH)
    {
        return Err(StoreError::InvalidInput {
            reason: format!(
                "notification {} metadata nests deeper than {} levels",
                notification.id,
                messaging_model::MAX_JSON_DEPTH
            ),
        });
    }
    Ok(())
}

/// The history of notifications.
///
/// Every call that reads or changes a user's notifications takes the user id and
/// touches only that user's rows: another user's id is reported as
/// [`StoreError::NotFound`] and nothing changes. The calls without a user id,
/// [`update_status`](Self::update_status),
/// [`begin_attempt`](Self::begin_attempt),
/// [`record_attempt`](Self::record_attempt) and
/// [`purge_older_than`](Self::purge_older_than), are for the sender and for
/// retention jobs, never for requests made on a user's behalf.
///
/// Timestamps are kept to the microsecond (what PostgreSQL stores and
/// [`InboxCursor::encode`](crate::InboxCursor::encode) carries), so a cursor taken from a stored row finds
/// that row again exactly. The store conformance suite (`testsuite` feature) pins
/// down the rest of the contract.
#[async_trait]
pub trait NotificationStore: Send + Sync + 'static {
    /// Records a new notification. [`StoreError::Conflict`](crate::StoreError::Conflict) when its id, or its
    /// idempotency key for the same user, is taken.
    async fn record(&self, notification: &Notification) -> Result<(), StoreError>;

    /// Records several notifications at once (all or none: a repeated id or key is
    /// a [`StoreError::Conflict`](crate::StoreError::Conflict) and stores nothing).
    async fn record_batch(&self, notifications: &[Notification]) -> Result<(), StoreError>;

    /// Changes a notification's status: `sent` with `sent_at` (clearing any earlier
    /// error), `failed` with the error, `skipped` with the reason (only from
    /// `pending` or `scheduled`, else [`StoreError::Conflict`](crate::StoreError::Conflict)),
    /// or `suppressed` with the reason (only from `pending`, `scheduled` or
    /// `failed`, else [`StoreError::Conflict`](crate::StoreError::Conflict)).
    /// Returns the updated notification.
    async fn update_status(
        &self,
        id: Uuid,
        update: StatusUpdate,
    ) -> Result<Notification, StoreError>;

    /// Starts attempt `seen_attempts + 1` of a notification not yet sent: status
    /// `sending`, `attempts` one more, `last_attempt_at` = `at` (to the
    /// microsecond). A compare-and-set: when the notification is `sent`, or its
    /// attempt count is no longer `seen_attempts` (another process started an
    /// attempt meanwhile), nothing changes and the answer is
    /// [`StoreError::Conflict`](crate::StoreError::Conflict). Returns the updated notification.
    ///
    /// A sender calls this *before* handing the notification to its provider, so
    /// that a later delivery of the same event can tell "never handed over"
    /// (`pending`, `failed`) from "the outcome is unknown" (`sending`).
    async fn begin_attempt(
        &self,
        id: Uuid,
        seen_attempts: u32,
        at: DateTime<Utc>,
    ) -> Result<Notification, StoreError>;

    /// Appends `attempt` to the attempt log and sets its notification's status
    /// from the outcome, in one step:
    ///
    /// - `sent`: status `sent`, `sent_at` = the attempt's end, no error, whichever
    ///   attempt it was (a notification that reached its provider is sent);
    /// - `failed` / `unknown`: status `failed` / `unknown` with the attempt's
    ///   error, only when the attempt is the notification's latest
    ///   (`number == attempts`): a late report of an older attempt never
    ///   overwrites a newer one's state.
    ///
    /// A notification already `sent` stays `sent`; the attempt is logged all the
    /// same. Returns the updated notification; [`StoreError::NotFound`] when
    /// there is no such notification (nothing is logged then).
    async fn record_attempt(&self, attempt: &DeliveryAttempt) -> Result<Notification, StoreError>;

    /// The attempt log of one of the user's notifications, in attempt order
    /// (empty for a notification never attempted; [`StoreError::NotFound`] for
    /// another user's). Deleting or purging a notification deletes its attempts.
    async fn list_attempts(
        &self,
        user_id: &str,
        notification_id: Uuid,
    ) -> Result<Vec<DeliveryAttempt>, StoreError>;

    /// One of the user's notifications.
    async fn get_notification(&self, user_id: &str, id: Uuid) -> Result<Notification, StoreError>;

    /// The user's notification recorded with this idempotency key, if any.
    async fn find_by_idempotency_key(
        &self,
        user_id: &str,
        key: &str,
    ) -> Result<Option<Notification>, StoreError>;

    /// A page of the user's inbox, newest first.
    async fn list_for_user(
        &self,
        user_id: &str,
        query: &InboxQuery,
    ) -> Result<InboxPage, StoreError>;

    /// How many of the user's notifications are unread.
    async fn unread_count(&self, user_id: &str) -> Result<u64, StoreError>;

    /// Marks one of the user's notifications read (setting `read_at`; marking it
    /// again keeps the first read time).
    async fn mark_read(&self, user_id: &str, id: Uuid) -> Result<(), StoreError>;

    /// Marks one of the user's notifications unread (clearing `read_at`).
    async fn mark_unread(&self, user_id: &str, id: Uuid) -> Result<(), StoreError>;

    /// Marks every unread notification of the user read; returns how many changed.
    async fn mark_all_read(&self, user_id: &str) -> Result<u64, StoreError>;

    /// Deletes one of the user's notifications.
    async fn delete(&self, user_id: &str, id: Uuid) -> Result<(), StoreError>;

    /// Deletes every notification created before `cutoff`; returns how many.
    async fn purge_older_than(&self, cutoff: DateTime<Utc>) -> Result<u64, StoreError>;
}
