//! Notifications held for quiet hours, sent later by a durable delayed message.
//!
//! When the preferences hold an event's notification (recorded `scheduled`,
//! `metadata.scheduled_for`), the listener publishes a [`Deferred`] to
//! [`DEFERRED_TOPIC`] for that time with the messaging backend's delayed
//! messages (durable: in Redis, a sorted set that survives a worker's restart),
//! then acknowledges the event. When it comes due, [`DeferredHandler`] sends the
//! action with [`NotificationService::execute_released`]: the `scheduled` row is
//! sent then, and the quiet hours are not applied again.
//!
//! Publishing after recording, and acknowledging after publishing: if the
//! worker dies in between, the event is redelivered, finds its `scheduled` row
//! and publishes again; a second delayed message finds the row sent (or being
//! sent) and sends nothing more.

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use messaging_core::{HandlerError, MessageHandler, MessagingService};
use messaging_model::Message;
use serde::{Deserialize, Serialize};

use crate::{NotificationAction, NotificationError, NotificationService};

/// The topic of notifications held for quiet hours.
pub const DEFERRED_TOPIC: &str = "notification.deferred";

/// The payload of a [`DEFERRED_TOPIC`] message: the action, its idempotency key
/// (the row it was recorded under) and when it is due.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Deferred {
    /// What to send.
    pub action: NotificationAction,
    /// The key of its `scheduled` row.
    pub key: String,
    /// When it is due.
    pub at: DateTime<Utc>,
}

/// Publishes `action` (recorded `scheduled` under `key`) for `at`.
pub async fn defer(
    publisher: &MessagingService,
    action: NotificationAction,
    key: &str,
    at: DateTime<Utc>,
) -> Result<(), NotificationError> {
    let payload = Deferred {
        action,
        key: key.to_owned(),
        at,
    };
    let payload = serde_json::to_value(&payload).map_err(|error| {
        NotificationError::invalid_request(format!("the deferred action is not JSON: {error}"))
    })?;
    publisher
        .publish_at(DEFERRED_TOPIC, payload, at)
        .await
        .map_err(|source| NotificationError::Defer { source })?;
    tracing::info!(%at, key, "notification deferred to the end of the user's quiet hours");
    Ok(())
}

/// Sends the actions of [`DEFERRED_TOPIC`] messages when they come due.
pub struct DeferredHandler {
    service: Arc<NotificationService>,
}

impl DeferredHandler {
    /// A handler sending through `service`.
    pub fn new(service: Arc<NotificationService>) -> Self {
        Self { service }
    }
}

#[async_trait]
impl MessageHandler for DeferredHandler {
    async fn handle(&self, message: Message) -> Result<(), HandlerError> {
        let deferred: Deferred =
            serde_json::from_value(message.payload.clone()).map_err(|error| {
                NotificationError::InvalidPayload {
                    topic: message.topic.to_string(),
                    reason: error.to_string(),
                }
                .into_handler_error()
            })?;
        self.service
            .execute_released(deferred.action, &deferred.key)
            .await
            .map_err(NotificationError::into_handler_error)?;
        Ok(())
    }
}
