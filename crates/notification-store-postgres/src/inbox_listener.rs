//! [`InboxListener`]: the notifications recorded in the store's schema, as
//! PostgreSQL announces them (`LISTEN`), from whichever process recorded them.

use messaging_model::Notification;
use notification_store::StoreError;
use serde::Deserialize;
use sqlx::PgPool;
use sqlx::postgres::PgListener;
use uuid::Uuid;

use crate::PostgresStore;
use crate::error::store_error;
use crate::notifications::into_model;
use crate::rows::NotificationRow;

const CHANNEL: &str = include_str!("../queries/inbox_channel.sql");
const RECORDED: &str = include_str!("../queries/inbox_recorded.sql");
const UNREAD_COUNTS: &str = include_str!("../queries/inbox_unread_counts.sql");

/// A notification just recorded, with its user's unread count read in the
/// same statement ([`InboxListener::recorded`]).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct RecordedNotification {
    /// The notification.
    pub notification: Notification,
    /// Its user's unread notifications when it was read.
    pub unread: u64,
}

#[derive(sqlx::FromRow)]
struct RecordedRow {
    #[sqlx(flatten)]
    row: NotificationRow,
    unread: i64,
}

/// What an [`InboxListener`] hears.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum InboxChange {
    /// A notification was recorded (its transaction committed) for `user_id`.
    Recorded {
        /// The user it is for.
        user_id: String,
        /// The notification's id: fetch it with
        /// [`NotificationStore::get_notification`](notification_store::NotificationStore::get_notification)
        /// when `notification` is `None`.
        id: Uuid,
        /// The notification as it was inserted, when the announcement carried
        /// it (a row of up to about 7,900 bytes as JSON, migration
        /// 20261204000003): no need to read it back. `None` for a bigger row
        /// (or one announced by an older trigger).
        notification: Option<Box<Notification>>,
    },
    /// The listening connection was lost and is listening again: what was
    /// recorded in between was not heard, so whoever shows inbox state should
    /// read it afresh (unread counts, the newest notifications).
    Reconnected,
}

/// The payload of `notifications_inbox_notify()` (migrations 20261204000001
/// and 20261204000003): the row is parsed apart, so a row this version cannot
/// read (a column changed by a later migration) still announces its id.
#[derive(Deserialize)]
struct Payload<'a> {
    user_id: String,
    id: Uuid,
    #[serde(borrow, default)]
    row: Option<&'a serde_json::value::RawValue>,
}

impl Payload<'_> {
    fn into_change(self, channel: &str) -> InboxChange {
        let notification = self.row.and_then(|row| {
            match serde_json::from_str::<NotificationRow>(row.get())
                .map_err(|error| error.to_string())
                .and_then(|row| into_model(row).map_err(|error| error.to_string()))
            {
                Ok(notification) if notification.id == self.id => Some(Box::new(notification)),
                Ok(_) => {
                    tracing::warn!(%channel, id = %self.id, "an inbox announcement's row is another notification; reading it instead");
                    None
                }
                Err(error) => {
                    tracing::warn!(%channel, id = %self.id, %error, "an inbox announcement's row is unreadable; reading it instead");
                    None
                }
            }
        });
        InboxChange::Recorded {
            user_id: self.user_id,
            id: self.id,
            notification,
        }
    }
}

/// What an announcement says: a change, or nothing (a foreign payload, logged).
fn parse_announcement(channel: &str, payload: &str) -> Option<InboxChange> {
    match serde_json::from_str::<Payload<'_>>(payload) {
        Ok(payload) => Some(payload.into_change(channel)),
        Err(error) => {
            tracing::warn!(%channel, %error, "ignoring a foreign inbox payload");
            None
        }
    }
}

/// Listens, on a connection of its own, to the notifications recorded in the
/// store's schema (the trigger of migration `20261204000001_inbox_notify`),
/// so one process can follow what every other process records.
///
/// One listener per process is enough: it hears every user's notifications,
/// and the caller fans them out.
///
/// ```no_run
/// use notification_store_postgres::{InboxChange, PostgresStore, PostgresStoreConfig};
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let store = PostgresStore::connect(PostgresStoreConfig::from_env()?).await?;
/// store.migrate().await?;
/// let mut listener = store.inbox_listener().await?;
/// if let InboxChange::Recorded { user_id, id, .. } = listener.recv().await? {
///     println!("{user_id} has a new notification {id}");
/// }
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct InboxListener {
    listener: PgListener,
    channel: String,
    pool: PgPool,
}

impl PostgresStore {
    /// Starts listening to the notifications recorded in this store's schema.
    /// The store must be migrated (the trigger is a migration).
    pub async fn inbox_listener(&self) -> Result<InboxListener, StoreError> {
        let channel: String = sqlx::query_scalar(CHANNEL)
            .bind(self.schema())
            .fetch_one(&self.pool)
            .await
            .map_err(store_error)?;
        let mut listener = PgListener::connect_with(&self.pool)
            .await
            .map_err(store_error)?;
        listener.listen(&channel).await.map_err(store_error)?;
        tracing::debug!(%channel, "listening to inbox changes");
        Ok(InboxListener {
            listener,
            channel,
            pool: self.pool.clone(),
        })
    }
}

impl InboxListener {
    /// The channel listened to (`inbox_<schema>`).
    pub fn channel(&self) -> &str {
        &self.channel
    }

    /// The next change. A lost connection is re-established here and reported
    /// once as [`InboxChange::Reconnected`]; an error means it could not be
    /// (calling again tries again). A payload that is not the trigger's (a
    /// `NOTIFY` sent by hand) is skipped.
    pub async fn recv(&mut self) -> Result<InboxChange, StoreError> {
        loop {
            let Some(notification) = self.listener.try_recv().await.map_err(store_error)? else {
                return Ok(InboxChange::Reconnected);
            };
            if let Some(change) = parse_announcement(&self.channel, notification.payload()) {
                return Ok(change);
            }
        }
    }

    /// The next changes: waits for one (as [`recv`](Self::recv)), then takes
    /// those already received behind it, up to `max` in all, in order. A
    /// [`InboxChange::Reconnected`] comes alone.
    pub async fn recv_batch(&mut self, max: usize) -> Result<Vec<InboxChange>, StoreError> {
        let first = self.recv().await?;
        let reconnected = first == InboxChange::Reconnected;
        let mut changes = vec![first];
        while !reconnected && changes.len() < max {
            let Some(notification) = self.listener.next_buffered() else {
                break;
            };
            changes.extend(parse_announcement(&self.channel, notification.payload()));
        }
        Ok(changes)
    }

    /// What reads the notifications this listener announces, apart from it
    /// (so one task can read while another listens).
    pub fn reader(&self) -> InboxReader {
        InboxReader {
            pool: self.pool.clone(),
        }
    }
}

/// Reads notifications just recorded for whoever shows them
/// ([`InboxListener::reader`]). Cheap to clone.
#[derive(Debug, Clone)]
pub struct InboxReader {
    pool: PgPool,
}

impl InboxReader {
    /// The notifications `ids` names, each with its user's unread count, in
    /// one statement: what the event streams of many users need after a
    /// batch of changes, read once instead of once per stream. Those deleted
    /// meanwhile are missing.
    pub async fn recorded(&self, ids: &[Uuid]) -> Result<Vec<RecordedNotification>, StoreError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let rows = sqlx::query_as::<_, RecordedRow>(RECORDED)
            .bind(ids)
            .fetch_all(&self.pool)
            .await
            .map_err(store_error)?;
        rows.into_iter()
            .map(|RecordedRow { row, unread }| {
                Ok(RecordedNotification {
                    notification: into_model(row)?,
                    unread: u64::try_from(unread).unwrap_or(0),
                })
            })
            .collect()
    }

    /// The unread count of each user `users` names (0 for one with none), in
    /// one statement, in the order given: what follows the notifications an
    /// announcement carried on their users' event streams.
    pub async fn unread_counts(&self, users: &[String]) -> Result<Vec<(String, u64)>, StoreError> {
        if users.is_empty() {
            return Ok(Vec::new());
        }
        let rows: Vec<(String, i64)> = sqlx::query_as(UNREAD_COUNTS)
            .bind(users)
            .fetch_all(&self.pool)
            .await
            .map_err(store_error)?;
        Ok(rows
            .into_iter()
            .map(|(user, unread)| (user, u64::try_from(unread).unwrap_or(0)))
            .collect())
    }
}
