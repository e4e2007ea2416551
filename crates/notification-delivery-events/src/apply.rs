//! Acting on delivery events: [`DeliveryEventApplier`] updates the notification
//! a provider reports on (found by the notification id the event's metadata
//! carries, else by the provider message id its send logged) and keeps the
//! suppression list.
//!
//! ```
//! use std::sync::Arc;
//! use notification_delivery_events::apply::DeliveryEventApplier;
//! use notification_delivery_events::postmark::PostmarkVerifier;
//! use notification_store::{InMemoryNotificationStore, InMemorySuppressionStore, SuppressionStore};
//! use messaging_model::NotificationKind;
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let suppressions = InMemorySuppressionStore::new();
//! let applier = DeliveryEventApplier::new(
//!     Arc::new(InMemoryNotificationStore::new()),
//!     Arc::new(suppressions.clone()),
//! );
//! let body = br#"{"RecordType":"Bounce","Type":"HardBounce","MessageID":"883953f4",
//!   "Email":"john@example.com","BouncedAt":"2019-11-05T16:33:54Z","Description":"no such user"}"#;
//! let headers = [("Authorization", "Basic aG9va3M6czNjcmV0")];
//! let events = PostmarkVerifier::new("hooks", "s3cret").parse(body, &headers[..])?;
//! let applied = applier.apply_all(&events).await?;
//! assert!(applied[0].notification.is_none(), "no send of ours logged that id");
//! assert!(suppressions.find_suppression(NotificationKind::Email, "john@example.com").await?.is_some());
//! # Ok(()) }
//! ```

use std::sync::Arc;

use messaging_model::{DeliveryReport, Notification, NotificationKind, NotificationStatus};
use notification_store::{
    DeliveryReportStore, SoftBouncePolicy, StoreError, Suppression, SuppressionReason,
    SuppressionStore,
};

use crate::{DeliveryEvent, DeliveryKind, Provider};

/// Applying an event failed: a store could not be read or written. Retrying
/// the whole callback later is safe (every step is idempotent but the count of
/// a soft bounce), so answer the provider with a 5xx and let it retry.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ApplyError {
    /// The notification store or the suppression list failed.
    #[error("delivery event not applied: {0}")]
    Store(#[from] StoreError),
}

impl ApplyError {
    /// True when retrying later may work.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Store(error) => error.is_transient(),
        }
    }
}

/// What applying one event did.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Applied {
    /// The notification the event named, after the update; `None` when no send
    /// of ours logged its provider message id (a message sent by another
    /// system, or an event for a send whose id was not returned).
    pub notification: Option<Notification>,
    /// The suppression in force for the recipient afterwards, when the event
    /// was a bounce or a complaint and one is.
    pub suppression: Option<Suppression>,
}

/// Applies [`DeliveryEvent`]s to the stores:
///
/// | event | notification (by provider message id) | suppression list (channel, recipient) |
/// | --- | --- | --- |
/// | `Delivered` | `delivered` | — |
/// | `Bounced { hard: true }` | `bounced`, reason as error | suppressed (`hard_bounce`) |
/// | `Bounced { hard: false }` | `bounced`, reason as error | a soft bounce counted; suppressed (`soft_bounces`) at the [`SoftBouncePolicy`] threshold |
/// | `Complained` | `complained` | suppressed (`complaint`) |
/// | `Failed` | `failed`, reason as error | — |
/// | `Deferred` | — | — |
///
/// An event carrying a notification id ([`DeliveryEvent::notification_id`],
/// from the metadata header the email channel set for its relay) is matched by
/// it: the report goes to the attempt that notification's accepted send
/// logged. Otherwise, or when that notification has no accepted send, the
/// event's provider message id is looked up.
///
/// The attempt that logged the id gets the report too
/// ([`DeliveryAttempt::report`](messaging_model::DeliveryAttempt::report)).
/// The channel is SMS for Twilio events and email for the others; the
/// recipient is the event's, else the `to` the notification was sent to. A
/// suppression is kept even when no notification matched: it is a fact about
/// the address.
#[derive(Clone)]
pub struct DeliveryEventApplier {
    reports: Arc<dyn DeliveryReportStore>,
    suppressions: Arc<dyn SuppressionStore>,
    soft_bounces: SoftBouncePolicy,
}

impl std::fmt::Debug for DeliveryEventApplier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeliveryEventApplier")
            .field("soft_bounces", &self.soft_bounces)
            .finish_non_exhaustive()
    }
}

impl DeliveryEventApplier {
    /// An applier over these stores, with the default [`SoftBouncePolicy`]
    /// (3 in 7 days).
    pub fn new(
        reports: Arc<dyn DeliveryReportStore>,
        suppressions: Arc<dyn SuppressionStore>,
    ) -> Self {
        Self {
            reports,
            suppressions,
            soft_bounces: SoftBouncePolicy::default(),
        }
    }

    /// Sets when soft bounces suppress an address.
    pub fn with_soft_bounce_policy(mut self, policy: SoftBouncePolicy) -> Self {
        self.soft_bounces = policy;
        self
    }

    /// Applies each event in order; stops at the first store failure.
    pub async fn apply_all(&self, events: &[DeliveryEvent]) -> Result<Vec<Applied>, ApplyError> {
        let mut applied = Vec::with_capacity(events.len());
        for event in events {
            applied.push(self.apply(event).await?);
        }
        Ok(applied)
    }

    /// Applies one event, as the [type docs](Self) say.
    pub async fn apply(&self, event: &DeliveryEvent) -> Result<Applied, ApplyError> {
        let status = match event.kind {
            DeliveryKind::Delivered => Some(NotificationStatus::Delivered),
            DeliveryKind::Bounced { .. } => Some(NotificationStatus::Bounced),
            DeliveryKind::Complained => Some(NotificationStatus::Complained),
            DeliveryKind::Failed => Some(NotificationStatus::Failed),
            DeliveryKind::Deferred => None,
        };
        let notification = match status {
            Some(status) => {
                let mut report = DeliveryReport::new(status, event.occurred_at);
                report.reason.clone_from(&event.reason);
                let logged = self.logged_id_of(event).await?;
                let provider_message_id = logged.as_deref().unwrap_or(&event.provider_message_id);
                self.reports
                    .record_delivery_report(provider_message_id, &report)
                    .await?
            }
            None => None,
        };
        let channel = channel_of(event.provider);
        let recipient = event.recipient.clone().or_else(|| {
            notification
                .as_ref()
                .and_then(|n| n.metadata.get("to"))
                .and_then(|to| to.as_str())
                .map(str::to_owned)
        });
        let suppression = match (event.kind, recipient) {
            (DeliveryKind::Bounced { hard: true }, Some(to)) => Some(
                self.suppress(channel, &to, SuppressionReason::HardBounce, event)
                    .await?,
            ),
            (DeliveryKind::Complained, Some(to)) => Some(
                self.suppress(channel, &to, SuppressionReason::Complaint, event)
                    .await?,
            ),
            (DeliveryKind::Bounced { hard: false }, Some(to)) => {
                self.suppressions
                    .record_soft_bounce(channel, &to, event.occurred_at, self.soft_bounces)
                    .await?
            }
            _ => None,
        };
        if let Some(s) = &suppression {
            tracing::info!(
                provider = %event.provider,
                channel = s.channel.as_str(),
                reason = s.reason.as_str(),
                "recipient suppressed"
            );
        }
        if notification.is_none() && status.is_some() {
            tracing::debug!(
                provider = %event.provider,
                provider_message_id = %event.provider_message_id,
                "delivery event matches no logged send"
            );
        }
        Ok(Applied {
            notification,
            suppression,
        })
    }

    /// The provider message id the send of the event's notification logged,
    /// when the event names its notification (provider metadata) and that
    /// notification was accepted with an id: the event's own id is the
    /// relay's, which the send did not log.
    async fn logged_id_of(&self, event: &DeliveryEvent) -> Result<Option<String>, StoreError> {
        let Some(notification_id) = event.notification_id else {
            return Ok(None);
        };
        let logged = self
            .reports
            .accepted_provider_message_id(notification_id)
            .await?;
        if logged.is_none() {
            tracing::debug!(
                provider = %event.provider,
                %notification_id,
                "the event's notification id names no accepted send; matching by provider message id"
            );
        }
        Ok(logged)
    }

    async fn suppress(
        &self,
        channel: NotificationKind,
        to: &str,
        reason: SuppressionReason,
        event: &DeliveryEvent,
    ) -> Result<Suppression, StoreError> {
        let mut suppression = Suppression::new(channel, to, reason, event.occurred_at);
        suppression.detail = Some(match &event.reason {
            Some(why) => format!("{}: {why}", event.provider),
            None => event.provider.to_string(),
        });
        self.suppressions.suppress(&suppression).await
    }
}

/// The channel a provider's events are about.
fn channel_of(provider: Provider) -> NotificationKind {
    match provider {
        Provider::Twilio => NotificationKind::Sms,
        _ => NotificationKind::Email,
    }
}
