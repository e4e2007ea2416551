use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// The channel a notification went through.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NotificationKind {
    /// Email over SMTP.
    Email,
    /// Text message through an SMS provider.
    Sms,
    /// Push notification through a push provider.
    Push,
    /// In-app notification, only recorded in the store.
    System,
}

impl NotificationKind {
    /// The lowercase name, as stored and serialised.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Email => "email",
            Self::Sms => "sms",
            Self::Push => "push",
            Self::System => "system",
        }
    }
}

/// Whether a notification reached its provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NotificationStatus {
    /// The provider accepted it.
    Sent,
    /// Recorded, not yet sent.
    Pending,
    /// The provider refused it or could not be reached.
    Failed,
}

impl NotificationStatus {
    /// The lowercase name, as stored and serialised.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Sent => "sent",
            Self::Pending => "pending",
            Self::Failed => "failed",
        }
    }
}

/// One notification to one user, as recorded in the history.
///
/// ```
/// use messaging_model::{Notification, NotificationKind, NotificationStatus};
/// let notification = Notification::new("user-1", NotificationKind::System, "Hi", "Welcome");
/// assert_eq!(notification.status, NotificationStatus::Pending);
/// assert!(!notification.is_read);
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Notification {
    /// Time-ordered unique id (UUIDv7).
    pub id: Uuid,
    /// The user it is for.
    pub user_id: String,
    /// The channel.
    pub kind: NotificationKind,
    /// Title or subject.
    pub title: String,
    /// Body.
    pub content: String,
    /// Whether it was sent.
    pub status: NotificationStatus,
    /// Whether the user has read it.
    pub is_read: bool,
    /// Free-form extra data (recipient address, provider message id, …).
    #[serde(default)]
    pub metadata: serde_json::Value,
    /// Why sending failed, when it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// A caller-chosen key, unique per user: a second send with the same key is a no-op.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idempotency_key: Option<String>,
    /// When it was recorded.
    pub created_at: DateTime<Utc>,
    /// When the user read it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read_at: Option<DateTime<Utc>>,
    /// When the provider accepted it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sent_at: Option<DateTime<Utc>>,
}

impl Notification {
    /// A new pending, unread notification.
    pub fn new(
        user_id: impl Into<String>,
        kind: NotificationKind,
        title: impl Into<String>,
        content: impl Into<String>,
    ) -> Self {
        Self {
            id: crate::new_id(),
            user_id: user_id.into(),
            kind,
            title: title.into(),
            content: content.into(),
            status: NotificationStatus::Pending,
            is_read: false,
            metadata: serde_json::Value::Object(Default::default()),
            error: None,
            idempotency_key: None,
            created_at: Utc::now(),
            read_at: None,
            sent_at: None,
        }
    }

    /// Sets the idempotency key.
    pub fn with_idempotency_key(mut self, key: impl Into<String>) -> Self {
        self.idempotency_key = Some(key.into());
        self
    }

    /// Replaces the metadata.
    pub fn with_metadata(mut self, metadata: serde_json::Value) -> Self {
        self.metadata = metadata;
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn enums_serialise_as_lowercase() {
        assert_eq!(
            serde_json::to_value(NotificationKind::System).unwrap(),
            json!("system")
        );
        assert_eq!(
            serde_json::to_value(NotificationStatus::Sent).unwrap(),
            json!("sent")
        );
        assert_eq!(
            serde_json::to_value(crate::TemplateKind::Push).unwrap(),
            json!("push")
        );
        for kind in [
            NotificationKind::Email,
            NotificationKind::Sms,
            NotificationKind::Push,
            NotificationKind::System,
        ] {
            assert_eq!(serde_json::to_value(kind).unwrap(), json!(kind.as_str()));
        }
    }
}
