//! [`DigestStore`] for [`PostgresStore`]: tables `notification_digest_windows`
//! (at most one open window per user and key, by a unique partial index) and
//! `notification_digest_events` (each event once per user and key).
//!
//! An append runs in one transaction holding the open window's row lock, and a
//! close takes the same lock: an event is either in the window a close returns
//! or in the next window, never lost, never in both.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use notification_store::{DigestAppend, DigestStore, DigestWindow, StoreError, check_user_id};
use serde_json::Value;
use uuid::Uuid;

use crate::PostgresStore;
use crate::error::store_error;

const SEEN: &str = include_str!("../queries/digest_seen.sql");
const OPEN: &str = include_str!("../queries/digest_open.sql");
const LOCK_OPEN: &str = include_str!("../queries/digest_lock_open.sql");
const ADD_EVENT: &str = include_str!("../queries/digest_add_event.sql");
const COUNT: &str = include_str!("../queries/digest_count.sql");
const CLOSE: &str = include_str!("../queries/digest_close.sql");
const EVENTS: &str = include_str!("../queries/digest_events.sql");

/// How often an append starts over after losing a race (a close between its
/// open and its lock, or the same event appended concurrently).
const ATTEMPTS: usize = 8;

#[derive(sqlx::FromRow)]
struct WindowRow {
    id: Uuid,
    opened_by: String,
    opened_at: DateTime<Utc>,
    closed_at: Option<DateTime<Utc>>,
    count: i64,
}

#[derive(sqlx::FromRow)]
struct ClosedRow {
    id: Uuid,
    user_id: String,
    digest_key: String,
    opened_at: DateTime<Utc>,
    closed_at: Option<DateTime<Utc>>,
}

fn answer(row: &WindowRow, count: i64, event_id: &str) -> DigestAppend {
    DigestAppend::new(
        row.id,
        u32::try_from(count).unwrap_or(u32::MAX),
        row.opened_at,
        row.opened_by == event_id,
        row.closed_at.is_some(),
    )
}

fn floor_micros(at: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(at.timestamp_micros()).unwrap_or(at)
}

#[async_trait]
impl DigestStore for PostgresStore {
    async fn append_digest_event(
        &self,
        user_id: &str,
        digest_key: &str,
        event_id: &str,
        event: &Value,
        max_events: u32,
        at: DateTime<Utc>,
    ) -> Result<DigestAppend, StoreError> {
        check_user_id(user_id)?;
        let json = serde_json::to_string(event).map_err(|error| StoreError::InvalidInput {
            reason: format!("digest event {event_id:?}: {error}"),
        })?;
        for _ in 0..ATTEMPTS {
            let mut tx = self.pool.begin().await.map_err(store_error)?;
            let seen = sqlx::query_as::<_, WindowRow>(SEEN)
                .bind(user_id)
                .bind(digest_key)
                .bind(event_id)
                .fetch_optional(&mut *tx)
                .await
                .map_err(store_error)?;
            if let Some(row) = seen {
                tx.commit().await.map_err(store_error)?;
                return Ok(answer(&row, row.count, event_id));
            }
            sqlx::query(OPEN)
                .bind(Uuid::now_v7())
                .bind(user_id)
                .bind(digest_key)
                .bind(event_id)
                .bind(floor_micros(at))
                .execute(&mut *tx)
                .await
                .map_err(store_error)?;
            let Some(window) = sqlx::query_as::<_, WindowRow>(LOCK_OPEN)
                .bind(user_id)
                .bind(digest_key)
                .fetch_optional(&mut *tx)
                .await
                .map_err(store_error)?
            else {
                // Closed between our open and our lock: start over.
                continue;
            };
            let held: i64 = sqlx::query_scalar(COUNT)
                .bind(window.id)
                .fetch_one(&mut *tx)
                .await
                .map_err(store_error)?;
            if held >= i64::from(max_events.max(1)) {
                // Full: close it (under its lock) and open the next.
                sqlx::query(CLOSE)
                    .bind(user_id)
                    .bind(window.id)
                    .bind(floor_micros(at))
                    .execute(&mut *tx)
                    .await
                    .map_err(store_error)?;
                tx.commit().await.map_err(store_error)?;
                continue;
            }
            let added = sqlx::query(ADD_EVENT)
                .bind(window.id)
                .bind(user_id)
                .bind(digest_key)
                .bind(event_id)
                .bind(&json)
                .execute(&mut *tx)
                .await
                .map_err(store_error)?;
            if added.rows_affected() == 0 {
                // The same event was appended concurrently: read its answer.
                continue;
            }
            let count: i64 = sqlx::query_scalar(COUNT)
                .bind(window.id)
                .fetch_one(&mut *tx)
                .await
                .map_err(store_error)?;
            tx.commit().await.map_err(store_error)?;
            return Ok(answer(&window, count, event_id));
        }
        Err(StoreError::Unavailable {
            source: format!("digest append of {event_id:?} kept losing races").into(),
        })
    }

    async fn close_digest(
        &self,
        user_id: &str,
        window_id: Uuid,
        at: DateTime<Utc>,
    ) -> Result<Option<DigestWindow>, StoreError> {
        let mut tx = self.pool.begin().await.map_err(store_error)?;
        let Some(row) = sqlx::query_as::<_, ClosedRow>(CLOSE)
            .bind(user_id)
            .bind(window_id)
            .bind(floor_micros(at))
            .fetch_optional(&mut *tx)
            .await
            .map_err(store_error)?
        else {
            return Ok(None);
        };
        let texts: Vec<String> = sqlx::query_scalar(EVENTS)
            .bind(window_id)
            .fetch_all(&mut *tx)
            .await
            .map_err(store_error)?;
        tx.commit().await.map_err(store_error)?;
        let events = texts
            .iter()
            .map(|text| {
                serde_json::from_str(text).map_err(|error| StoreError::Query {
                    source: format!("notification_digest_events.event: {error}").into(),
                })
            })
            .collect::<Result<Vec<Value>, StoreError>>()?;
        Ok(Some(DigestWindow::new(
            row.id,
            row.user_id,
            row.digest_key,
            row.opened_at,
            row.closed_at,
            events,
        )))
    }
}
