//! [`DeliveryReportStore`] for [`PostgresStore`].

use async_trait::async_trait;
use messaging_model::{DeliveryReport, Notification};
use notification_store::{DeliveryReportStore, StoreError, check_delivery_report};
use uuid::Uuid;

use crate::PostgresStore;
use crate::error::store_error;
use crate::notifications::{floor_micros, into_model};
use crate::rows::NotificationRow;

const FIND: &str = include_str!("../queries/report_find_notification.sql");
const ACCEPTED_ID: &str = include_str!("../queries/report_accepted_provider_message_id.sql");
const RECORD: &str = include_str!("../queries/report_record.sql");

#[async_trait]
impl DeliveryReportStore for PostgresStore {
    async fn find_by_provider_message_id(
        &self,
        provider_message_id: &str,
    ) -> Result<Option<Notification>, StoreError> {
        sqlx::query_as::<_, NotificationRow>(FIND)
            .bind(provider_message_id)
            .fetch_optional(&self.pool)
            .await
            .map_err(store_error)?
            .map(into_model)
            .transpose()
    }

    async fn accepted_provider_message_id(
        &self,
        notification_id: Uuid,
    ) -> Result<Option<String>, StoreError> {
        sqlx::query_scalar::<_, String>(ACCEPTED_ID)
            .bind(notification_id)
            .fetch_optional(&self.pool)
            .await
            .map_err(store_error)
    }

    async fn record_delivery_report(
        &self,
        provider_message_id: &str,
        report: &DeliveryReport,
    ) -> Result<Option<Notification>, StoreError> {
        check_delivery_report(report)?;
        sqlx::query_as::<_, NotificationRow>(RECORD)
            .bind(provider_message_id)
            .bind(report.status.as_str())
            .bind(report.reason.as_deref())
            .bind(floor_micros(report.at))
            .bind(i32::from(DeliveryReport::rank(report.status)))
            .fetch_optional(&self.pool)
            .await
            .map_err(store_error)?
            .map(into_model)
            .transpose()
    }
}
