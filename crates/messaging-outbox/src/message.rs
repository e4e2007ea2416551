//! [`OutboxMessage`]: a message as the outbox stores it, with its ordering key and delay.

use std::time::Duration;

use chrono::{DateTime, Utc};
use messaging_core::{RESERVED_METADATA_KEYS, TRACEPARENT_KEY, TraceContext};
use messaging_model::{Message, ValidationError};
use uuid::Uuid;

use crate::OutboxError;

/// The longest ordering key, in bytes.
pub const MAX_ORDERING_KEY_BYTES: usize = 256;

/// A message to write to the outbox: the [`Message`] the relay will publish
/// (its id is fixed now and kept by every publish), an optional ordering key and
/// an optional delivery time.
///
/// Built checked: an `OutboxMessage` always passes the checks
/// `MessagingService::publish_message` makes, so the relay never meets a row it
/// cannot publish because of its content.
///
/// ```
/// use std::time::Duration;
/// use messaging_outbox::OutboxMessage;
/// use serde_json::json;
///
/// let message = OutboxMessage::new("user.registered", json!({"user_id": 42}))?
///     .with_ordering_key("user-42")?
///     .with_metadata("tenant", "acme")?
///     .with_delay(Duration::from_secs(30))?;
/// assert_eq!(message.ordering_key(), Some("user-42"));
/// assert!(message.deliver_at().is_some());
/// # Ok::<(), messaging_outbox::OutboxError>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct OutboxMessage {
    pub(crate) message: Message,
    pub(crate) ordering_key: Option<String>,
    pub(crate) deliver_at: Option<DateTime<Utc>>,
    /// The payload's encoded size, measured by the check.
    pub(crate) size: usize,
}

impl OutboxMessage {
    /// A new message for `topic`, with a new id and a `traceparent` continuing
    /// the trace of the handler it is built in (a new trace otherwise).
    pub fn new(topic: impl AsRef<str>, payload: serde_json::Value) -> Result<Self, OutboxError> {
        let (message, size) = Message::new_sized(topic, payload)?;
        let trace = TraceContext::current().map_or_else(TraceContext::new_root, |c| c.child());
        Ok(Self {
            message: message.with_metadata(TRACEPARENT_KEY, trace.to_string()),
            ordering_key: None,
            deliver_at: None,
            size,
        })
    }

    /// A message built by the caller (its id, metadata and `max_retry` are
    /// kept), checked as `MessagingService::publish_message` checks it.
    pub fn from_message(message: Message) -> Result<Self, OutboxError> {
        let size = message.validate_sized()?;
        check_metadata_keys(&message)?;
        Ok(Self {
            message,
            ordering_key: None,
            deliver_at: None,
            size,
        })
    }

    /// Rows of one ordering key (a user id, an order id) are published in the
    /// order their transactions committed. Writers of one key wait for each
    /// other (until commit), which is what makes that order well defined.
    pub fn with_ordering_key(mut self, key: impl Into<String>) -> Result<Self, OutboxError> {
        let key = key.into();
        check_ordering_key(&key)?;
        self.ordering_key = Some(key);
        Ok(self)
    }

    /// Delivers the message `delay` after now (at most
    /// [`messaging_model::MAX_DELAY`]), never earlier: the relay hands it to the
    /// backend's delay queue.
    pub fn with_delay(mut self, delay: Duration) -> Result<Self, OutboxError> {
        messaging_model::validate_delay(delay)?;
        // Within MAX_DELAY both the conversion and the addition are in range.
        let delay = chrono::Duration::from_std(delay).unwrap_or(chrono::Duration::MAX);
        self.deliver_at = Some(Utc::now() + delay);
        Ok(self)
    }

    /// Delivers the message at `at`, never earlier (a time in the past means now).
    pub fn with_deliver_at(mut self, at: DateTime<Utc>) -> Result<Self, OutboxError> {
        if let Ok(ahead) = (at - Utc::now()).to_std() {
            messaging_model::validate_delay(ahead)?;
        }
        self.deliver_at = Some(at);
        Ok(self)
    }

    /// Adds one metadata entry (not one of the keys the runtime reserves).
    pub fn with_metadata(
        mut self,
        key: impl Into<String>,
        value: impl Into<String>,
    ) -> Result<Self, OutboxError> {
        self.message = self.message.with_metadata(key, value);
        check_metadata_keys(&self.message)?;
        Ok(self)
    }

    /// Sets how many retries consumers get before the message is dead-lettered.
    pub fn with_max_retry(mut self, max_retry: u32) -> Result<Self, OutboxError> {
        self.message = self.message.with_max_retry(max_retry)?;
        Ok(self)
    }

    /// The message id: what every publish of this row carries.
    pub fn id(&self) -> Uuid {
        self.message.id
    }

    /// The message the relay will publish.
    pub fn message(&self) -> &Message {
        &self.message
    }

    /// The ordering key, if any.
    pub fn ordering_key(&self) -> Option<&str> {
        self.ordering_key.as_deref()
    }

    /// When it is to be delivered, if delayed.
    pub fn deliver_at(&self) -> Option<DateTime<Utc>> {
        self.deliver_at
    }
}

fn check_ordering_key(key: &str) -> Result<(), OutboxError> {
    let reason = if key.is_empty() {
        "it is empty"
    } else if key.len() > MAX_ORDERING_KEY_BYTES {
        "it is longer than 256 bytes"
    } else if key.contains('\0') {
        "it holds a NUL byte"
    } else {
        return Ok(());
    };
    Err(OutboxError::InvalidOrderingKey { reason })
}

/// A message must not carry a key only the runtime writes (a forged
/// `x-target-group` would hide it from every other group).
pub(crate) fn check_metadata_keys(message: &Message) -> Result<(), OutboxError> {
    match RESERVED_METADATA_KEYS
        .iter()
        .find(|key| message.metadata.contains_key(**key))
    {
        Some(key) => Err(ValidationError::ReservedMetadataKey {
            key: (*key).to_owned(),
        }
        .into()),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn bad_input_is_an_error_not_a_panic() {
        assert!(matches!(
            OutboxMessage::new("bad topic", json!({})),
            Err(OutboxError::Validation(_))
        ));
        assert!(matches!(
            OutboxMessage::new("a.b", json!([1])),
            Err(OutboxError::Validation(_))
        ));
        let message = OutboxMessage::new("a.b", json!({})).unwrap();
        for key in ["", "a\0b", &"k".repeat(257)] {
            assert!(
                matches!(
                    message.clone().with_ordering_key(key),
                    Err(OutboxError::InvalidOrderingKey { .. })
                ),
                "{key:?}"
            );
        }
        assert!(matches!(
            message.clone().with_metadata("x-target-group", "g"),
            Err(OutboxError::Validation(
                ValidationError::ReservedMetadataKey { .. }
            ))
        ));
        assert!(matches!(
            message
                .clone()
                .with_delay(messaging_model::MAX_DELAY + Duration::from_secs(1)),
            Err(OutboxError::Validation(_))
        ));
        assert!(message.with_max_retry(1_000).is_err());
    }

    #[test]
    fn a_new_message_carries_a_trace_context() {
        let message = OutboxMessage::new("a.b", json!({"x": 1})).unwrap();
        let traceparent = &message.message().metadata[TRACEPARENT_KEY];
        assert!(TraceContext::parse(traceparent).is_some(), "{traceparent}");
    }
}
