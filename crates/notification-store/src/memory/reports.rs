//! [`DeliveryReportStore`] for [`InMemoryNotificationStore`].

use async_trait::async_trait;
use messaging_model::{AttemptOutcome, DeliveryReport, Notification, NotificationStatus};
use uuid::Uuid;

use super::{InMemoryNotificationStore, micros};
use crate::{DeliveryReportStore, StoreError, check_delivery_report};

#[async_trait]
impl DeliveryReportStore for InMemoryNotificationStore {
    async fn find_by_provider_message_id(
        &self,
        provider_message_id: &str,
    ) -> Result<Option<Notification>, StoreError> {
        self.read(|state| {
            Ok(state
                .attempts
                .iter()
                .find(|(_, attempts)| {
                    attempts
                        .iter()
                        .any(|a| a.provider_message_id.as_deref() == Some(provider_message_id))
                })
                .and_then(|(id, _)| state.by_id.get(id).cloned()))
        })
    }

    async fn accepted_provider_message_id(
        &self,
        notification_id: Uuid,
    ) -> Result<Option<String>, StoreError> {
        self.read(|state| {
            Ok(state.attempts.get(&notification_id).and_then(|attempts| {
                attempts
                    .iter()
                    .rev()
                    .filter(|a| a.outcome == AttemptOutcome::Sent)
                    .find_map(|a| a.provider_message_id.clone())
            }))
        })
    }

    async fn record_delivery_report(
        &self,
        provider_message_id: &str,
        report: &DeliveryReport,
    ) -> Result<Option<Notification>, StoreError> {
        check_delivery_report(report)?;
        self.change(|state| {
            let Some((id, attempt)) = state.attempts.iter_mut().find_map(|(id, attempts)| {
                attempts
                    .iter_mut()
                    .find(|a| a.provider_message_id.as_deref() == Some(provider_message_id))
                    .map(|attempt| (*id, attempt))
            }) else {
                return Ok(None);
            };
            let Some(notification) = state.by_id.get_mut(&id) else {
                return Ok(None);
            };
            let recorded = attempt
                .report
                .as_ref()
                .map_or(0, |r| DeliveryReport::rank(r.status));
            if DeliveryReport::rank(report.status) < recorded {
                return Ok(Some(notification.clone()));
            }
            let mut kept = report.clone();
            kept.at = micros(kept.at);
            attempt.report = Some(kept);
            notification.status = report.status;
            notification.error = match report.status {
                NotificationStatus::Delivered => None,
                _ => report.reason.clone(),
            };
            Ok(Some(notification.clone()))
        })
    }
}
