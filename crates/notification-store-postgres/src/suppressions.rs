//! [`SuppressionStore`] for [`PostgresStore`].

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use messaging_model::NotificationKind;
use notification_store::{
    SoftBouncePolicy, StoreError, Suppression, SuppressionReason, SuppressionStore,
    normalize_address,
};

use crate::PostgresStore;
use crate::error::store_error;
use crate::notifications::floor_micros;
use crate::rows::unknown;

const INSERT: &str = include_str!("../queries/suppression_insert.sql");
const GET: &str = include_str!("../queries/suppression_get.sql");
const LIST: &str = include_str!("../queries/suppression_list.sql");
const DELETE: &str = include_str!("../queries/suppression_delete.sql");
const LOCK: &str = include_str!("../queries/soft_bounce_lock.sql");
const SOFT_BOUNCE: &str = include_str!("../queries/soft_bounce_record.sql");

/// A row of `suppressions`.
#[derive(sqlx::FromRow)]
struct SuppressionRow {
    channel: String,
    address: String,
    reason: String,
    detail: Option<String>,
    created_at: DateTime<Utc>,
}

impl TryFrom<SuppressionRow> for Suppression {
    type Error = StoreError;

    fn try_from(row: SuppressionRow) -> Result<Self, StoreError> {
        let channel = channel_of(&row.channel)?;
        let reason = SuppressionReason::from_name(&row.reason)
            .ok_or_else(|| unknown("suppressions.reason", &row.reason))?;
        let mut suppression = Suppression::new(channel, &row.address, reason, row.created_at);
        suppression.detail = row.detail;
        Ok(suppression)
    }
}

fn channel_of(text: &str) -> Result<NotificationKind, StoreError> {
    [
        NotificationKind::Email,
        NotificationKind::Sms,
        NotificationKind::Push,
    ]
    .into_iter()
    .find(|kind| kind.as_str() == text)
    .ok_or_else(|| unknown("suppressions.channel", text))
}

impl PostgresStore {
    async fn get_suppression<'e, E>(
        executor: E,
        channel: NotificationKind,
        address: &str,
    ) -> Result<Option<Suppression>, StoreError>
    where
        E: sqlx::PgExecutor<'e>,
    {
        sqlx::query_as::<_, SuppressionRow>(GET)
            .bind(channel.as_str())
            .bind(address)
            .fetch_optional(executor)
            .await
            .map_err(store_error)?
            .map(Suppression::try_from)
            .transpose()
    }
}

/// Inserts `s` unless its address is suppressed; the suppression in force.
async fn insert_or_get(
    conn: &mut sqlx::PgConnection,
    s: &Suppression,
) -> Result<Suppression, StoreError> {
    let address = normalize_address(s.channel, &s.address);
    let inserted = sqlx::query_as::<_, SuppressionRow>(INSERT)
        .bind(s.channel.as_str())
        .bind(&address)
        .bind(s.reason.as_str())
        .bind(s.detail.as_deref())
        .bind(floor_micros(s.created_at))
        .fetch_optional(&mut *conn)
        .await
        .map_err(store_error)?;
    if let Some(row) = inserted {
        return Suppression::try_from(row);
    }
    // Kept since: read it (a statement of its own, so a row committed by a
    // concurrent insert this one waited for is seen).
    PostgresStore::get_suppression(&mut *conn, s.channel, &address)
        .await?
        .ok_or_else(|| StoreError::Conflict {
            what: format!("suppression of {address} changed while suppressing it"),
        })
}

#[async_trait]
impl SuppressionStore for PostgresStore {
    async fn suppress(&self, suppression: &Suppression) -> Result<Suppression, StoreError> {
        let mut conn = self.pool.acquire().await.map_err(store_error)?;
        insert_or_get(&mut conn, suppression).await
    }

    async fn find_suppression(
        &self,
        channel: NotificationKind,
        address: &str,
    ) -> Result<Option<Suppression>, StoreError> {
        Self::get_suppression(&self.pool, channel, &normalize_address(channel, address)).await
    }

    async fn record_soft_bounce(
        &self,
        channel: NotificationKind,
        address: &str,
        at: DateTime<Utc>,
        policy: SoftBouncePolicy,
    ) -> Result<Option<Suppression>, StoreError> {
        let address = normalize_address(channel, address);
        let at = floor_micros(at);
        let mut tx = self.pool.begin().await.map_err(store_error)?;
        sqlx::query(LOCK)
            .bind(channel.as_str())
            .bind(&address)
            .execute(&mut *tx)
            .await
            .map_err(store_error)?;
        if let Some(existing) = Self::get_suppression(&mut *tx, channel, &address).await? {
            tx.commit().await.map_err(store_error)?;
            return Ok(Some(existing));
        }
        let start = floor_micros(policy.window_start(at));
        let in_window: i64 = sqlx::query_scalar(SOFT_BOUNCE)
            .bind(channel.as_str())
            .bind(&address)
            .bind(at)
            .bind(start)
            .fetch_one(&mut *tx)
            .await
            .map_err(store_error)?;
        let suppression = if in_window >= i64::from(policy.threshold.max(1)) {
            let s = Suppression::new(channel, &address, SuppressionReason::SoftBounces, at)
                .with_detail(format!(
                    "{in_window} soft bounces within {}s",
                    policy.window.as_secs()
                ));
            Some(insert_or_get(&mut tx, &s).await?)
        } else {
            None
        };
        tx.commit().await.map_err(store_error)?;
        Ok(suppression)
    }

    async fn list_suppressions(
        &self,
        channel: Option<NotificationKind>,
    ) -> Result<Vec<Suppression>, StoreError> {
        sqlx::query_as::<_, SuppressionRow>(LIST)
            .bind(channel.map(NotificationKind::as_str))
            .fetch_all(&self.pool)
            .await
            .map_err(store_error)?
            .into_iter()
            .map(Suppression::try_from)
            .collect()
    }

    async fn remove_suppression(
        &self,
        channel: NotificationKind,
        address: &str,
    ) -> Result<bool, StoreError> {
        let removed = sqlx::query(DELETE)
            .bind(channel.as_str())
            .bind(normalize_address(channel, address))
            .execute(&self.pool)
            .await
            .map_err(store_error)?;
        Ok(removed.rows_affected() > 0)
    }
}
