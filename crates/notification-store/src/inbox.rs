//! The inbox: which of a user's notifications to list ([`InboxQuery`]), one
//! page of them ([`InboxPage`]) and where the next page starts ([`InboxCursor`]).

use chrono::{DateTime, Utc};
use messaging_model::{Notification, NotificationKind};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::StoreError;

/// Largest inbox page a store returns.
pub const MAX_PAGE_SIZE: u32 = 100;
/// Inbox page size when the query does not set one.
pub const DEFAULT_PAGE_SIZE: u32 = 20;

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
    /// # use notification_store::InboxCursor;
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
/// use notification_store::InboxQuery;
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
