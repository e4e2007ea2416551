//! [`DeliveryReportStore`]: what providers report after accepting a message,
//! matched by the provider message id a send logged.

use async_trait::async_trait;
use messaging_model::{DeliveryReport, Notification};
use uuid::Uuid;

use crate::StoreError;

/// Finds notifications by the provider message id their attempt log holds and
/// records what the provider reported about them.
///
/// A send that a provider accepted logs the provider's message id with its
/// attempt ([`DeliveryAttempt::provider_message_id`](messaging_model::DeliveryAttempt::provider_message_id));
/// a delivery callback names the message by that id.
#[async_trait]
pub trait DeliveryReportStore: Send + Sync + 'static {
    /// The notification whose attempt log holds `provider_message_id`, if any.
    async fn find_by_provider_message_id(
        &self,
        provider_message_id: &str,
    ) -> Result<Option<Notification>, StoreError>;

    /// The provider message id logged by the latest accepted (`sent`) attempt of
    /// notification `notification_id`, if any: how an event that names the
    /// notification itself (provider metadata the email channel set, see
    /// `notification::channel::SmtpProvider`) finds the attempt to report on.
    /// `None` for an unknown notification, or one no provider accepted with an
    /// id.
    async fn accepted_provider_message_id(
        &self,
        notification_id: Uuid,
    ) -> Result<Option<String>, StoreError>;

    /// Records `report` on the attempt that logged `provider_message_id` and on
    /// its notification, whose status becomes the report's and whose error its
    /// reason (cleared for `delivered`). A report ranking lower
    /// ([`DeliveryReport::rank`]) than the one already recorded changes
    /// nothing (a late "delivered" never hides a bounce). Returns the
    /// notification afterwards; `None` when no attempt logged the id.
    /// [`StoreError::InvalidInput`] for a status a report cannot carry.
    async fn record_delivery_report(
        &self,
        provider_message_id: &str,
        report: &DeliveryReport,
    ) -> Result<Option<Notification>, StoreError>;
}

/// Refuses a report whose status is not one a provider reports
/// ([`DeliveryReport::is_valid_status`]): every store calls it first.
///
/// ```
/// use messaging_model::{DeliveryReport, NotificationStatus};
/// let pending = DeliveryReport::new(NotificationStatus::Pending, chrono::Utc::now());
/// assert!(notification_store::check_delivery_report(&pending).is_err());
/// ```
pub fn check_delivery_report(report: &DeliveryReport) -> Result<(), StoreError> {
    if DeliveryReport::is_valid_status(report.status) {
        Ok(())
    } else {
        Err(StoreError::InvalidInput {
            reason: format!(
                "a delivery report cannot set the status {}",
                report.status.as_str()
            ),
        })
    }
}
