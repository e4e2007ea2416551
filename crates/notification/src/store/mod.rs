//! Where notifications and templates are kept: the [`NotificationStore`] and
//! [`TemplateStore`] traits, implemented in memory here and in PostgreSQL by the
//! `notification-store-postgres` crate. Both implementations pass the same store
//! conformance suite (`testsuite` feature).

mod memory;
#[cfg(feature = "testsuite")]
pub mod testsuite;

pub use memory::{InMemoryNotificationStore, InMemoryTemplateStore};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use messaging_model::{DeliveryAttempt, MessageTemplate, Notification, NotificationKind};
use serde::{Deserialize, Serialize};
use thiserror::Error;
use uuid::Uuid;

/// A boxed driver error.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Largest inbox page a store returns.
pub const MAX_PAGE_SIZE: u32 = 100;
/// Inbox page size when the query does not set one.
pub const DEFAULT_PAGE_SIZE: u32 = 20;

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

/// Checks what a store is asked to record: metadata nested no deeper than
/// [`messaging_model::MAX_JSON_DEPTH`] (deeper JSON is refused by JSON readers,
/// PostgreSQL's included on the way back, so one such row would make a whole
/// inbox unreadable). Every store calls it on `record` and `record_batch`.
///
/// ```
/// use messaging_model::{Notification, NotificationKind};
/// use notification::store::check_notification;
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

/// Where an inbox page starts: just after this notification, in newest-first order.
///
/// Encoded as an opaque string for clients with [`InboxCursor::encode`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct InboxCursor {
    /// `created_at` of the last notification of the previous page.
    pub created_at: DateTime<Utc>,
    /// `id` of the last notification of the previous page (ties on `created_at`).
    pub id: Uuid,
}

impl InboxCursor {
    /// The cursor after `notification`.
    pub fn after(notification: &Notification) -> Self {
        Self {
            created_at: notification.created_at,
            id: notification.id,
        }
    }

    /// An opaque string for clients: `<microseconds since epoch>.<uuid>`.
    ///
    /// ```
    /// # use notification::store::InboxCursor;
    /// let cursor = InboxCursor { created_at: chrono::Utc::now(), id: uuid::Uuid::now_v7() };
    /// let decoded = InboxCursor::decode(&cursor.encode()).unwrap();
    /// assert_eq!(decoded.id, cursor.id);
    /// assert!(InboxCursor::decode("garbage").is_err());
    /// ```
    pub fn encode(&self) -> String {
        format!(
            "{}.{}",
            self.created_at.timestamp_micros(),
            self.id.simple()
        )
    }

    /// Parses [`InboxCursor::encode`]'s output.
    pub fn decode(text: &str) -> Result<Self, StoreError> {
        let invalid = || StoreError::InvalidInput {
            reason: format!("malformed inbox cursor {text:?}"),
        };
        let (micros, id) = text.split_once('.').ok_or_else(invalid)?;
        let micros: i64 = micros.parse().map_err(|_| invalid())?;
        let created_at = DateTime::from_timestamp_micros(micros).ok_or_else(invalid)?;
        let id = Uuid::parse_str(id).map_err(|_| invalid())?;
        Ok(Self { created_at, id })
    }
}

/// Which of a user's notifications to list.
///
/// ```
/// use notification::store::InboxQuery;
/// use messaging_model::NotificationKind;
/// let query = InboxQuery::default().with_kind(NotificationKind::Email).unread_only().with_limit(50);
/// assert_eq!(query.limit, 50);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct InboxQuery {
    /// Only this channel.
    pub kind: Option<NotificationKind>,
    /// Only unread notifications.
    pub unread_only: bool,
    /// Only notifications created at or after this time.
    pub since: Option<DateTime<Utc>>,
    /// Page size, 1 to [`MAX_PAGE_SIZE`].
    pub limit: u32,
    /// Continue after this cursor.
    pub cursor: Option<InboxCursor>,
}

impl Default for InboxQuery {
    fn default() -> Self {
        Self {
            kind: None,
            unread_only: false,
            since: None,
            limit: DEFAULT_PAGE_SIZE,
            cursor: None,
        }
    }
}

impl InboxQuery {
    /// Only this channel.
    pub fn with_kind(mut self, kind: NotificationKind) -> Self {
        self.kind = Some(kind);
        self
    }
    /// Only unread notifications.
    pub fn unread_only(mut self) -> Self {
        self.unread_only = true;
        self
    }
    /// Only notifications created at or after `since`.
    pub fn with_since(mut self, since: DateTime<Utc>) -> Self {
        self.since = Some(since);
        self
    }
    /// Page size.
    pub fn with_limit(mut self, limit: u32) -> Self {
        self.limit = limit;
        self
    }
    /// Continue after `cursor`.
    pub fn with_cursor(mut self, cursor: InboxCursor) -> Self {
        self.cursor = Some(cursor);
        self
    }

    /// Checks the page size: an error outside 1 to [`MAX_PAGE_SIZE`].
    pub fn check(&self) -> Result<(), StoreError> {
        if self.limit == 0 || self.limit > MAX_PAGE_SIZE {
            return Err(StoreError::InvalidInput {
                reason: format!("page size {} outside 1..={MAX_PAGE_SIZE}", self.limit),
            });
        }
        Ok(())
    }
}

/// One page of a user's inbox, newest first.
#[derive(Debug, Clone, PartialEq)]
pub struct InboxPage {
    /// The notifications, newest first (`created_at` then `id`, both descending).
    pub items: Vec<Notification>,
    /// Where the next page starts; `None` on the last page.
    pub next_cursor: Option<InboxCursor>,
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
/// [`InboxCursor::encode`] carries), so a cursor taken from a stored row finds
/// that row again exactly. The store conformance suite (`testsuite` feature) pins
/// down the rest of the contract.
#[async_trait]
pub trait NotificationStore: Send + Sync + 'static {
    /// Records a new notification. [`StoreError::Conflict`] when its id, or its
    /// idempotency key for the same user, is taken.
    async fn record(&self, notification: &Notification) -> Result<(), StoreError>;

    /// Records several notifications at once (all or none: a repeated id or key is
    /// a [`StoreError::Conflict`] and stores nothing).
    async fn record_batch(&self, notifications: &[Notification]) -> Result<(), StoreError>;

    /// Changes a notification's status: `sent` with `sent_at` (clearing any earlier
    /// error), or `failed` with the error. Returns the updated notification.
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
    /// [`StoreError::Conflict`]. Returns the updated notification.
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

/// Where templates are kept, one row per name and locale (`None`: the default;
/// an empty locale string is [`StoreError::InvalidInput`], so it can never shadow
/// the default). Template ids are unique across names and locales.
#[async_trait]
pub trait TemplateStore: Send + Sync + 'static {
    /// The template with this name and locale, active or not (the caller refuses
    /// inactive ones with a clear error); `None` when there is none.
    async fn get_template(
        &self,
        name: &str,
        locale: Option<&str>,
    ) -> Result<Option<MessageTemplate>, StoreError>;

    /// Inserts the template, or replaces the one with the same name and locale
    /// (keeping its id and `created_at`, bumping `updated_at`). Returns what is stored.
    async fn save(&self, template: &MessageTemplate) -> Result<MessageTemplate, StoreError>;

    /// Every template, by name then locale (default first).
    async fn list(&self) -> Result<Vec<MessageTemplate>, StoreError>;

    /// Marks a template inactive. [`StoreError::NotFound`] when there is none.
    async fn deactivate(&self, name: &str, locale: Option<&str>) -> Result<(), StoreError>;
}
