//! Plain data of the messaging and notification suite: no I/O, no async.
//!
//! * [`Message`]: what travels through a topic, with its retry bookkeeping.
//! * [`MessageTemplate`]: a stored email/SMS/push template.
//! * [`Notification`]: one notification sent (or attempted) to one user.
//! * [`Topic`]: a topic name, checked when it is made.
//! * [`topics`]: the predefined topic names.
//! * [`validate_topic`], [`validate_payload`], [`validate_max_retry`]: the limits
//!   every backend enforces, reported as [`ValidationError`].
//!
//! Enums serialise as lowercase strings (`"pending"`, `"email"`, …) and every id is
//! a UUIDv7, so ids sort by creation time.
//!
//! ```
//! use messaging_model::{topics, Message, MessageStatus};
//! use serde_json::json;
//!
//! let message = Message::new(topics::USER_REGISTERED, json!({"user_id": 42})).unwrap();
//! assert_eq!(message.status, MessageStatus::Pending);
//! assert_eq!(serde_json::to_value(message.status).unwrap(), "pending");
//!
//! // Bad input is a typed error, never a panic.
//! assert!(Message::new("no spaces allowed", json!({})).is_err());
//! ```

mod message;
mod notification;
mod redact;
mod template;
mod topic;
pub mod topics;
mod validation;

pub use message::{Message, MessageStatus, Metadata};
pub use notification::{
    AttemptOutcome, DeliveryAttempt, DeliveryReport, Notification, NotificationKind,
    NotificationStatus,
};
pub use redact::redact_url;
pub use template::{MessageTemplate, TemplateKind};
pub use topic::Topic;
pub use validation::{
    DEFAULT_MAX_RETRY, MAX_BATCH_BYTES, MAX_BATCH_MESSAGES, MAX_DELAY, MAX_JSON_DEPTH,
    MAX_PARTITION_KEY_LEN, MAX_PARTITIONS, MAX_PAYLOAD_BYTES, MAX_RETRY_LIMIT, MAX_TOPIC_LEN,
    ValidationError, json_depth_exceeds, payload_size_checked, validate_batch, validate_delay,
    validate_max_retry, validate_partition_key, validate_payload, validate_topic,
};

/// A boxed error from a driver, a handler or a store: the one definition of
/// the suite, re-exported by `messaging-core` and `notification-store`.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// A new time-ordered identifier (UUIDv7).
///
/// ```
/// let a = messaging_model::new_id();
/// let b = messaging_model::new_id();
/// assert!(a < b);
/// ```
pub fn new_id() -> uuid::Uuid {
    uuid::Uuid::now_v7()
}
