//! [`NotificationStore`] for [`PostgresStore`].

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use messaging_model::{DeliveryAttempt, Notification};
use notification_store::{
    InboxCursor, InboxPage, InboxQuery, NotificationStore, StatusUpdate, StoreError,
    check_notification,
};
use sqlx::PgPool;
use uuid::Uuid;

use crate::PostgresStore;
use crate::error::store_error;
use crate::rows::{AttemptRow, NotificationColumns, NotificationRow, attempts_column};

const INSERT: &str = include_str!("../queries/notification_insert.sql");
const INSERT_BATCH: &str = include_str!("../queries/notification_insert_batch.sql");
const MARK_SENT: &str = include_str!("../queries/notification_mark_sent.sql");
const MARK_SKIPPED: &str = include_str!("../queries/notification_mark_skipped.sql");
const MARK_SUPPRESSED: &str = include_str!("../queries/notification_mark_suppressed.sql");
const MARK_FAILED: &str = include_str!("../queries/notification_mark_failed.sql");
const GET: &str = include_str!("../queries/notification_get.sql");
const FIND_BY_KEY: &str = include_str!("../queries/notification_find_by_idempotency_key.sql");
const INBOX_PAGE: &str = include_str!("../queries/inbox_page.sql");
const INBOX_PAGE_UNREAD: &str = include_str!("../queries/inbox_page_unread.sql");
const UNREAD_COUNT: &str = include_str!("../queries/unread_count.sql");
const MARK_READ: &str = include_str!("../queries/mark_read.sql");
const MARK_UNREAD: &str = include_str!("../queries/mark_unread.sql");
const MARK_ALL_READ: &str = include_str!("../queries/mark_all_read.sql");
const DELETE: &str = include_str!("../queries/delete.sql");
const PURGE: &str = include_str!("../queries/purge.sql");
const BEGIN_ATTEMPT: &str = include_str!("../queries/notification_begin_attempt.sql");
const EXISTS: &str = include_str!("../queries/notification_exists.sql");
const RECORD_ATTEMPT: &str = include_str!("../queries/attempt_record.sql");
const LIST_ATTEMPTS: &str = include_str!("../queries/attempt_list.sql");

/// `t` without its sub-microsecond part (PostgreSQL keeps microseconds; the driver
/// would truncate towards 2000-01-01, this floors, as [`InboxCursor`] does).
pub(crate) fn floor_micros(t: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(t.timestamp_micros()).unwrap_or(t)
}

/// `t` rounded up to the microsecond: `created_at >= since` over microsecond
/// values keeps the same rows as over exact ones.
fn ceil_micros(t: DateTime<Utc>) -> DateTime<Utc> {
    let floor = floor_micros(t);
    if floor == t {
        t
    } else {
        floor + chrono::Duration::microseconds(1)
    }
}

pub(crate) fn into_model(row: NotificationRow) -> Result<Notification, StoreError> {
    Notification::try_from(row)
}

#[async_trait]
impl NotificationStore for PostgresStore {
    async fn record(&self, n: &Notification) -> Result<(), StoreError> {
        check_notification(n)?;
        match &self.group {
            Some(group) => group.record(n.clone()).await,
            None => record_one(&self.pool, n).await,
        }
    }

    async fn record_batch(&self, notifications: &[Notification]) -> Result<(), StoreError> {
        if notifications.is_empty() {
            return Ok(());
        }
        for n in notifications {
            check_notification(n)?;
        }
        let c = NotificationColumns::new(notifications).floored_to_micros();
        // One statement: atomic, one round trip, whatever the batch size.
        sqlx::query(INSERT_BATCH)
            .bind(&c.ids)
            .bind(&c.user_ids)
            .bind(&c.kinds)
            .bind(&c.titles)
            .bind(&c.contents)
            .bind(&c.statuses)
            .bind(&c.is_reads)
            .bind(&c.metadata)
            .bind(&c.errors)
            .bind(&c.idempotency_keys)
            .bind(&c.created_ats)
            .bind(&c.read_ats)
            .bind(&c.sent_ats)
            .bind(&c.attempts)
            .bind(&c.last_attempt_ats)
            .execute(&self.pool)
            .await
            .map_err(store_error)?;
        Ok(())
    }

    async fn update_status(
        &self,
        id: Uuid,
        update: StatusUpdate,
    ) -> Result<Notification, StoreError> {
        let row = match update {
            StatusUpdate::Sent { at } => sqlx::query_as::<_, NotificationRow>(MARK_SENT)
                .bind(id)
                .bind(floor_micros(at))
                .fetch_optional(&self.pool)
                .await
                .map_err(store_error),
            StatusUpdate::Failed { error } => sqlx::query_as::<_, NotificationRow>(MARK_FAILED)
                .bind(id)
                .bind(error)
                .fetch_optional(&self.pool)
                .await
                .map_err(store_error),
            StatusUpdate::Skipped { reason } => {
                self.update_from(id, MARK_SKIPPED, reason, "pending or scheduled")
                    .await
            }
            StatusUpdate::Suppressed { reason } => {
                self.update_from(id, MARK_SUPPRESSED, reason, "pending, scheduled or failed")
                    .await
            }
        }?;
        row.map(into_model)
            .unwrap_or_else(|| Err(StoreError::notification_not_found(id)))
    }

    async fn begin_attempt(
        &self,
        id: Uuid,
        seen_attempts: u32,
        at: DateTime<Utc>,
    ) -> Result<Notification, StoreError> {
        match &self.group {
            Some(group) => group.begin_attempt(id, seen_attempts, at).await,
            None => begin_one(&self.pool, id, seen_attempts, at).await,
        }
    }

    async fn record_attempt(&self, attempt: &DeliveryAttempt) -> Result<Notification, StoreError> {
        match &self.group {
            Some(group) => group.record_attempt(attempt.clone()).await,
            None => record_attempt_one(&self.pool, attempt).await,
        }
    }

    async fn list_attempts(
        &self,
        user_id: &str,
        notification_id: Uuid,
    ) -> Result<Vec<DeliveryAttempt>, StoreError> {
        let rows = sqlx::query_as::<_, AttemptRow>(LIST_ATTEMPTS)
            .bind(user_id)
            .bind(notification_id)
            .fetch_all(&self.pool)
            .await
            .map_err(store_error)?;
        if rows.is_empty() {
            return Err(StoreError::notification_not_found(notification_id));
        }
        let mut attempts = Vec::with_capacity(rows.len());
        for row in rows {
            if let Some(attempt) = row.into_attempt()? {
                attempts.push(attempt);
            }
        }
        Ok(attempts)
    }

    async fn get_notification(&self, user_id: &str, id: Uuid) -> Result<Notification, StoreError> {
        sqlx::query_as::<_, NotificationRow>(GET)
            .bind(user_id)
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(store_error)?
            .map(into_model)
            .unwrap_or_else(|| Err(StoreError::notification_not_found(id)))
    }

    async fn find_by_idempotency_key(
        &self,
        user_id: &str,
        key: &str,
    ) -> Result<Option<Notification>, StoreError> {
        sqlx::query_as::<_, NotificationRow>(FIND_BY_KEY)
            .bind(user_id)
            .bind(key)
            .fetch_optional(&self.pool)
            .await
            .map_err(store_error)?
            .map(into_model)
            .transpose()
    }

    async fn list_for_user(
        &self,
        user_id: &str,
        query: &InboxQuery,
    ) -> Result<InboxPage, StoreError> {
        query.check()?;
        let limit = query.limit as usize;
        let sql = if query.unread_only {
            INBOX_PAGE_UNREAD
        } else {
            INBOX_PAGE
        };
        // One row more than the page: whether it comes back says whether another
        // page follows, so the last page never announces an empty one.
        let rows = sqlx::query_as::<_, NotificationRow>(sql)
            .bind(user_id)
            .bind(query.kind.map(|kind| kind.as_str()))
            .bind(query.since.map(ceil_micros))
            .bind(query.cursor.map(|c| c.created_at))
            .bind(query.cursor.map(|c| c.id))
            .bind(i64::from(query.limit) + 1)
            .fetch_all(&self.pool)
            .await
            .map_err(store_error)?;
        let mut items = rows
            .into_iter()
            .map(into_model)
            .collect::<Result<Vec<_>, _>>()?;
        let next_cursor = if items.len() > limit {
            items.truncate(limit);
            items.last().map(InboxCursor::after)
        } else {
            None
        };
        Ok(InboxPage { items, next_cursor })
    }

    async fn unread_count(&self, user_id: &str) -> Result<u64, StoreError> {
        let count: i64 = sqlx::query_scalar(UNREAD_COUNT)
            .bind(user_id)
            .fetch_one(&self.pool)
            .await
            .map_err(store_error)?;
        Ok(u64::try_from(count).unwrap_or(0))
    }

    async fn mark_read(&self, user_id: &str, id: Uuid) -> Result<(), StoreError> {
        self.change_one(MARK_READ, user_id, id).await
    }

    async fn mark_unread(&self, user_id: &str, id: Uuid) -> Result<(), StoreError> {
        self.change_one(MARK_UNREAD, user_id, id).await
    }

    async fn mark_all_read(&self, user_id: &str) -> Result<u64, StoreError> {
        let done = sqlx::query(MARK_ALL_READ)
            .bind(user_id)
            .execute(&self.pool)
            .await
            .map_err(store_error)?;
        Ok(done.rows_affected())
    }

    async fn delete(&self, user_id: &str, id: Uuid) -> Result<(), StoreError> {
        self.change_one(DELETE, user_id, id).await
    }

    async fn purge_older_than(&self, cutoff: DateTime<Utc>) -> Result<u64, StoreError> {
        // created_at < cutoff over microsecond values: round the cutoff up.
        let done = sqlx::query(PURGE)
            .bind(ceil_micros(cutoff))
            .execute(&self.pool)
            .await
            .map_err(store_error)?;
        Ok(done.rows_affected())
    }
}

impl PostgresStore {
    /// Runs `sql` (`$1` id, `$2` reason), an update guarded by the row's current
    /// status (`from` names the statuses it accepts): no row changed is a
    /// `Conflict` when the notification exists, else `NotFound` (`None`).
    async fn update_from(
        &self,
        id: Uuid,
        sql: &'static str,
        reason: String,
        from: &str,
    ) -> Result<Option<NotificationRow>, StoreError> {
        let row = sqlx::query_as::<_, NotificationRow>(sql)
            .bind(id)
            .bind(reason)
            .fetch_optional(&self.pool)
            .await
            .map_err(store_error)?;
        if row.is_none() {
            let exists: bool = sqlx::query_scalar(EXISTS)
                .bind(id)
                .fetch_one(&self.pool)
                .await
                .map_err(store_error)?;
            if exists {
                return Err(StoreError::Conflict {
                    what: format!("notification {id} is not {from}"),
                });
            }
        }
        Ok(row)
    }

    /// Runs `sql` (`$1` user_id, `$2` id) that changes at most one row of the user:
    /// no row changed is `NotFound`, whether the id is missing or another user's.
    async fn change_one(
        &self,
        sql: &'static str,
        user_id: &str,
        id: Uuid,
    ) -> Result<(), StoreError> {
        let done = sqlx::query(sql)
            .bind(user_id)
            .bind(id)
            .execute(&self.pool)
            .await
            .map_err(store_error)?;
        if done.rows_affected() == 0 {
            return Err(StoreError::notification_not_found(id));
        }
        Ok(())
    }
}

/// `record` as one statement of its own.
pub(crate) async fn record_one(pool: &PgPool, n: &Notification) -> Result<(), StoreError> {
    sqlx::query(INSERT)
        .bind(n.id)
        .bind(&n.user_id)
        .bind(n.kind.as_str())
        .bind(&n.title)
        .bind(&n.content)
        .bind(n.status.as_str())
        .bind(n.is_read)
        .bind(&n.metadata)
        .bind(n.error.as_deref())
        .bind(n.idempotency_key.as_deref())
        .bind(floor_micros(n.created_at))
        .bind(n.read_at.map(floor_micros))
        .bind(n.sent_at.map(floor_micros))
        .bind(attempts_column(n.attempts))
        .bind(n.last_attempt_at.map(floor_micros))
        .execute(pool)
        .await
        .map_err(store_error)?;
    Ok(())
}

/// `begin_attempt` as statements of its own.
pub(crate) async fn begin_one(
    pool: &PgPool,
    id: Uuid,
    seen_attempts: u32,
    at: DateTime<Utc>,
) -> Result<Notification, StoreError> {
    let row = sqlx::query_as::<_, NotificationRow>(BEGIN_ATTEMPT)
        .bind(id)
        .bind(attempts_column(seen_attempts))
        .bind(floor_micros(at))
        .fetch_optional(pool)
        .await
        .map_err(store_error)?;
    if let Some(row) = row {
        return into_model(row);
    }
    let exists: bool = sqlx::query_scalar(EXISTS)
        .bind(id)
        .fetch_one(pool)
        .await
        .map_err(store_error)?;
    Err(if exists {
        StoreError::Conflict {
            what: format!("notification {id} is sent or moved past attempt {seen_attempts}"),
        }
    } else {
        StoreError::notification_not_found(id)
    })
}

/// `record_attempt` as one statement of its own.
pub(crate) async fn record_attempt_one(
    pool: &PgPool,
    attempt: &DeliveryAttempt,
) -> Result<Notification, StoreError> {
    let duration_ms = attempt
        .duration_ms
        .map(|ms| i64::try_from(ms).unwrap_or(i64::MAX));
    sqlx::query_as::<_, NotificationRow>(RECORD_ATTEMPT)
        .bind(attempt.notification_id)
        .bind(attempts_column(attempt.number))
        .bind(attempt.kind.as_str())
        .bind(&attempt.provider)
        .bind(attempt.outcome.as_str())
        .bind(attempt.error.as_deref())
        .bind(floor_micros(attempt.started_at))
        .bind(duration_ms)
        .bind(floor_micros(attempt.finished_at()))
        .bind(attempt.provider_message_id.as_deref())
        .fetch_optional(pool)
        .await
        .map_err(store_error)?
        .map(into_model)
        .unwrap_or_else(|| Err(StoreError::notification_not_found(attempt.notification_id)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn micros_rounding() {
        let exact = DateTime::from_timestamp_micros(1_700_000_000_123_456).unwrap();
        let with_nanos = exact + chrono::Duration::nanoseconds(789);
        assert_eq!(floor_micros(with_nanos), exact);
        assert_eq!(
            ceil_micros(with_nanos),
            exact + chrono::Duration::microseconds(1)
        );
        assert_eq!(floor_micros(exact), exact);
        assert_eq!(ceil_micros(exact), exact);
    }
}
