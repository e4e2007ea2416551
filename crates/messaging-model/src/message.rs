use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::Topic;
use crate::validation::{DEFAULT_MAX_RETRY, ValidationError, validate_max_retry};

/// String key/value pairs carried beside the payload (trace context, routing hints).
pub type Metadata = BTreeMap<String, String>;

/// Where a message is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MessageStatus {
    /// Published, not yet handled.
    Pending,
    /// Handed to a handler.
    Processing,
    /// Handled successfully.
    Completed,
    /// Retries exhausted or failed permanently; it sits in the dead-letter queue.
    Failed,
}

/// A message published to a topic.
///
/// `id` stays the same across retries and replays, so handlers can deduplicate on
/// it; `retry` counts the failed attempts so far and `max_retry` how many retries
/// are allowed before the message is dead-lettered.
///
/// ```
/// use messaging_model::Message;
/// let message = Message::new("wallet.recharged", serde_json::json!({"amount": 10}))
///     .unwrap()
///     .with_metadata("tenant", "acme")
///     .with_max_retry(5)
///     .unwrap();
/// assert_eq!(message.metadata["tenant"], "acme");
/// assert_eq!(message.retry, 0);
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Message {
    /// Time-ordered unique id (UUIDv7).
    pub id: Uuid,
    /// The topic it was published to.
    pub topic: Topic,
    /// The body: always a JSON object.
    pub payload: serde_json::Value,
    /// String key/value pairs beside the payload.
    #[serde(default)]
    pub metadata: Metadata,
    /// Where it is in its life.
    pub status: MessageStatus,
    /// Failed attempts so far.
    #[serde(default)]
    pub retry: u32,
    /// Retries allowed before it is dead-lettered.
    pub max_retry: u32,
    /// The last handler error, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// When it was first published.
    pub created_at: DateTime<Utc>,
    /// When any field last changed.
    pub updated_at: DateTime<Utc>,
    /// When a handler finished with it (success or final failure).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub processed_at: Option<DateTime<Utc>>,
    /// The time after which it must not be started: a delivery that finds it
    /// passed before an attempt begins is not handled but dead-lettered with
    /// the error `expired` (or dropped, as the subscription chooses). An
    /// attempt already running when it passes runs to its end. `None` (the
    /// default): it never expires.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<DateTime<Utc>>,
    /// The key choosing the partition of a partitioned topic (messages with one
    /// key go to one partition, in the order published); `None` (the default)
    /// spreads messages over the partitions. Plain topics ignore it. Set it
    /// with [`Message::with_partition_key`], which checks it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partition_key: Option<String>,
}

impl Message {
    /// A new pending message, after checking the topic name and payload.
    pub fn new(
        topic: impl AsRef<str>,
        payload: serde_json::Value,
    ) -> Result<Self, ValidationError> {
        Self::new_sized(topic, payload).map(|(message, _)| message)
    }

    /// A new pending message as [`new`](Self::new) makes it, with the size of
    /// the payload's JSON encoding (measured once, by the check).
    ///
    /// ```
    /// let (message, size) = messaging_model::Message::new_sized("a.b", serde_json::json!({"a": 1})).unwrap();
    /// assert_eq!((message.topic.as_str(), size), ("a.b", 7));
    /// ```
    pub fn new_sized(
        topic: impl AsRef<str>,
        payload: serde_json::Value,
    ) -> Result<(Self, usize), ValidationError> {
        Self::for_topic_sized(Topic::new(topic.as_ref())?, payload)
    }

    /// A new pending message for a topic already checked, after checking the
    /// payload; with the size of the payload's JSON encoding.
    ///
    /// ```
    /// use messaging_model::{Message, Topic};
    /// let topic: Topic = "a.b".parse().unwrap();
    /// let (message, size) = Message::for_topic_sized(topic, serde_json::json!({})).unwrap();
    /// assert_eq!((message.topic.as_str(), size), ("a.b", 2));
    /// ```
    pub fn for_topic_sized(
        topic: Topic,
        payload: serde_json::Value,
    ) -> Result<(Self, usize), ValidationError> {
        let size = crate::validation::payload_size_checked(&payload)?;
        let now = Utc::now();
        Ok((
            Self {
                id: crate::new_id(),
                topic,
                payload,
                metadata: Metadata::new(),
                status: MessageStatus::Pending,
                retry: 0,
                max_retry: DEFAULT_MAX_RETRY,
                error: None,
                created_at: now,
                updated_at: now,
                processed_at: None,
                expires_at: None,
                partition_key: None,
            },
            size,
        ))
    }

    /// Adds one metadata entry.
    pub fn with_metadata(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.metadata.insert(key.into(), value.into());
        self
    }

    /// Sets how many retries are allowed, within [`crate::MAX_RETRY_LIMIT`].
    pub fn with_max_retry(mut self, max_retry: u32) -> Result<Self, ValidationError> {
        validate_max_retry(max_retry)?;
        self.max_retry = max_retry;
        Ok(self)
    }

    /// Sets the time after which the message is not started any more
    /// ([`expires_at`](Self::expires_at)).
    ///
    /// ```
    /// use chrono::{Duration, Utc};
    /// let deadline = Utc::now() + Duration::minutes(5);
    /// let message = messaging_model::Message::new("otp.send", serde_json::json!({"code": "1234"}))
    ///     .unwrap()
    ///     .with_expires_at(deadline);
    /// assert!(!message.is_expired(Utc::now()));
    /// assert!(message.is_expired(deadline));
    /// ```
    pub fn with_expires_at(mut self, expires_at: DateTime<Utc>) -> Self {
        self.expires_at = Some(expires_at);
        self
    }

    /// Sets the key choosing this message's partition of a partitioned topic,
    /// checked by [`validate_partition_key`](crate::validate_partition_key).
    ///
    /// ```
    /// let message = messaging_model::Message::new("orders.placed", serde_json::json!({"order": 7}))
    ///     .unwrap()
    ///     .with_partition_key("customer-42")
    ///     .unwrap();
    /// assert_eq!(message.partition_key.as_deref(), Some("customer-42"));
    /// assert!(message.clone().with_partition_key("two words").is_err());
    /// ```
    pub fn with_partition_key(mut self, key: impl Into<String>) -> Result<Self, ValidationError> {
        let key = key.into();
        crate::validation::validate_partition_key(&key)?;
        self.partition_key = Some(key);
        Ok(self)
    }

    /// True when it has an expiry and `now` is at or past it.
    pub fn is_expired(&self, now: DateTime<Utc>) -> bool {
        self.expires_at.is_some_and(|expires_at| expires_at <= now)
    }

    /// Checks the limits of the fields a caller can change after construction
    /// (the payload and `max_retry`; the [`Topic`] was checked when it was
    /// made): for messages changed by hand. The publish path runs it once.
    ///
    /// ```
    /// let mut message = messaging_model::Message::new("a.b", serde_json::json!({})).unwrap();
    /// message.payload = serde_json::json!([1, 2]);
    /// assert!(message.validate().is_err());
    /// ```
    pub fn validate(&self) -> Result<(), ValidationError> {
        self.validate_sized().map(drop)
    }

    /// Checks every limit as [`validate`](Self::validate) does and returns the
    /// size of the payload's JSON encoding (for batch limits).
    pub fn validate_sized(&self) -> Result<usize, ValidationError> {
        let size = crate::validation::payload_size_checked(&self.payload)?;
        validate_max_retry(self.max_retry)?;
        if let Some(key) = &self.partition_key {
            crate::validation::validate_partition_key(key)?;
        }
        Ok(size)
    }

    /// True when another failed attempt is allowed.
    pub fn can_retry(&self) -> bool {
        self.retry < self.max_retry
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn status_serialises_as_lowercase() {
        for (status, text) in [
            (MessageStatus::Pending, "pending"),
            (MessageStatus::Processing, "processing"),
            (MessageStatus::Completed, "completed"),
            (MessageStatus::Failed, "failed"),
        ] {
            assert_eq!(serde_json::to_value(status).unwrap(), json!(text));
            assert_eq!(
                serde_json::from_value::<MessageStatus>(json!(text)).unwrap(),
                status
            );
        }
    }

    #[test]
    fn round_trips_through_json() {
        let message = Message::new("user.registered", json!({"user_id": 1, "email": "a@b.c"}))
            .unwrap()
            .with_metadata("traceparent", "00-abc-def-01");
        let decoded: Message =
            serde_json::from_str(&serde_json::to_string(&message).unwrap()).unwrap();
        assert_eq!(decoded, message);
    }

    #[test]
    fn expiry_round_trips_and_defaults_to_none() {
        let at: DateTime<Utc> = "2031-05-06T07:08:09.123456Z".parse().unwrap();
        let message = Message::new("a.b", json!({})).unwrap().with_expires_at(at);
        let text = serde_json::to_string(&message).unwrap();
        assert!(
            text.contains(r#""expires_at":"2031-05-06T07:08:09.123456Z""#),
            "{text}"
        );
        let decoded: Message = serde_json::from_str(&text).unwrap();
        assert_eq!(decoded.expires_at, Some(at));
        // Written before the field existed: no expiry, and none written back.
        let plain = Message::new("a.b", json!({})).unwrap();
        let text = serde_json::to_string(&plain).unwrap();
        assert!(!text.contains("expires_at"), "{text}");
        let decoded: Message = serde_json::from_str(&text).unwrap();
        assert_eq!(decoded.expires_at, None);
        assert!(!decoded.is_expired(Utc::now()));
    }

    #[test]
    fn ids_sort_by_creation() {
        let first = Message::new("a", json!({})).unwrap();
        let second = Message::new("a", json!({})).unwrap();
        assert!(first.id < second.id);
    }

    #[test]
    fn rejects_too_many_retries() {
        let message = Message::new("a", json!({})).unwrap();
        assert!(matches!(
            message.with_max_retry(101),
            Err(ValidationError::MaxRetryOutOfRange { value: 101, .. })
        ));
    }
}
