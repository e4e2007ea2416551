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
///
/// A send moves `pending` → `sending` (recorded before the provider is called)
/// → `sent` or `failed`. A row found `sending` by a later delivery of the same
/// event belongs to a send whose process died with the outcome unknown: the
/// sender's policy either sends again or marks it `unknown`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NotificationStatus {
    /// The provider accepted it.
    Sent,
    /// Recorded, not yet handed to the provider.
    Pending,
    /// Being handed to the provider: the outcome is not recorded yet.
    Sending,
    /// The provider refused it or could not be reached.
    Failed,
    /// A send was interrupted after it may have reached the provider, and the
    /// policy was not to send again: whether it arrived is not known.
    Unknown,
    /// Not sent: the recipient's address is on the channel's suppression list
    /// (an earlier hard bounce, complaint or repeated soft bounces).
    Suppressed,
    /// Sent, and the provider later reported it delivered.
    Delivered,
    /// Sent, and the provider later reported a bounce (hard or soft; the error
    /// holds the provider's reason).
    Bounced,
    /// Sent, and the recipient later reported it as spam.
    Complained,
    /// Not sent, on purpose: the user's preferences opted out of it. The
    /// notification's `error` says why (`opted out: …`); it is never sent later.
    Skipped,
    /// Held back until a time the user accepts (quiet hours): sent then, by a
    /// durable delayed message. The notification's `metadata.scheduled_for`
    /// says when.
    Scheduled,
}

impl NotificationStatus {
    /// Every status, in the order of the enum.
    pub const ALL: [Self; 11] = [
        Self::Sent,
        Self::Pending,
        Self::Sending,
        Self::Failed,
        Self::Unknown,
        Self::Suppressed,
        Self::Delivered,
        Self::Bounced,
        Self::Complained,
        Self::Skipped,
        Self::Scheduled,
    ];

    /// The lowercase name, as stored and serialised.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Sent => "sent",
            Self::Pending => "pending",
            Self::Sending => "sending",
            Self::Failed => "failed",
            Self::Unknown => "unknown",
            Self::Suppressed => "suppressed",
            Self::Delivered => "delivered",
            Self::Bounced => "bounced",
            Self::Complained => "complained",
            Self::Skipped => "skipped",
            Self::Scheduled => "scheduled",
        }
    }

    /// True when the provider accepted the notification: `sent`, or one of the
    /// outcomes its provider reported afterwards (`delivered`, `bounced`,
    /// `complained`). Such a notification is never handed over again.
    pub fn was_accepted(self) -> bool {
        matches!(
            self,
            Self::Sent | Self::Delivered | Self::Bounced | Self::Complained
        )
    }

    /// The status named `name` ([`as_str`](Self::as_str)'s output), if any.
    ///
    /// ```
    /// use messaging_model::NotificationStatus;
    /// assert_eq!(NotificationStatus::from_name("sending"), Some(NotificationStatus::Sending));
    /// assert_eq!(NotificationStatus::from_name("lost"), None);
    /// ```
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|status| status.as_str() == name)
    }
}

/// How one attempt to hand a notification to its provider ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AttemptOutcome {
    /// The provider accepted it.
    Sent,
    /// The provider refused it or could not be reached.
    Failed,
    /// The process died during the attempt: it may or may not have arrived.
    Unknown,
}

impl AttemptOutcome {
    /// Every outcome.
    pub const ALL: [Self; 3] = [Self::Sent, Self::Failed, Self::Unknown];

    /// The lowercase name, as stored and serialised.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Sent => "sent",
            Self::Failed => "failed",
            Self::Unknown => "unknown",
        }
    }

    /// The outcome named `name`, if any.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|outcome| outcome.as_str() == name)
    }
}

/// One attempt to hand a notification to its provider, as kept in the attempt log.
///
/// ```
/// use messaging_model::{AttemptOutcome, DeliveryAttempt, Notification, NotificationKind};
/// let notification = Notification::new("user-1", NotificationKind::Email, "Hi", "Welcome");
/// let attempt = DeliveryAttempt::new(&notification, 1, "smtp", AttemptOutcome::Sent);
/// assert_eq!(attempt.notification_id, notification.id);
/// assert_eq!(attempt.error, None);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct DeliveryAttempt {
    /// The notification attempted.
    pub notification_id: Uuid,
    /// Its user.
    pub user_id: String,
    /// 1 for the first attempt, counting every attempt of the notification.
    pub number: u32,
    /// The channel.
    pub kind: NotificationKind,
    /// The provider (`"smtp"`, `"twilio"`, `"webhook"`, …).
    pub provider: String,
    /// How it ended.
    pub outcome: AttemptOutcome,
    /// The provider's error, or why the outcome is unknown.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// When the attempt started.
    pub started_at: DateTime<Utc>,
    /// How long it took, in milliseconds; `None` when the process died during it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<u64>,
    /// The provider's id of the message, when it accepted it and gave one
    /// (what its delivery callbacks name the message by).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider_message_id: Option<String>,
    /// What the provider reported later about the message this attempt handed
    /// over (delivered, bounced, …), once a delivery event named it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub report: Option<DeliveryReport>,
}

/// What a provider reported after accepting a message: the outcome a delivery
/// callback (webhook) told.
///
/// ```
/// use messaging_model::{DeliveryReport, NotificationStatus};
/// let report = DeliveryReport::new(NotificationStatus::Bounced, chrono::Utc::now())
///     .with_reason("550 5.1.1 no such user");
/// assert_eq!(report.reason.as_deref(), Some("550 5.1.1 no such user"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct DeliveryReport {
    /// The outcome: [`Delivered`](NotificationStatus::Delivered),
    /// [`Bounced`](NotificationStatus::Bounced),
    /// [`Complained`](NotificationStatus::Complained) or
    /// [`Failed`](NotificationStatus::Failed).
    pub status: NotificationStatus,
    /// The provider's reason (SMTP response, bounce description, error code).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// When the provider says it happened.
    pub at: DateTime<Utc>,
}

impl DeliveryReport {
    /// A report of `status` at `at`, without a reason.
    pub fn new(status: NotificationStatus, at: DateTime<Utc>) -> Self {
        Self {
            status,
            reason: None,
            at,
        }
    }

    /// Sets the reason.
    pub fn with_reason(mut self, reason: impl Into<String>) -> Self {
        self.reason = Some(reason.into());
        self
    }

    /// True for the statuses a report may carry (delivered, bounced,
    /// complained, failed).
    pub fn is_valid_status(status: NotificationStatus) -> bool {
        matches!(
            status,
            NotificationStatus::Delivered
                | NotificationStatus::Bounced
                | NotificationStatus::Complained
                | NotificationStatus::Failed
        )
    }

    /// How final a report is: a later report replaces an earlier one only when
    /// it ranks at least as high (a complaint after a delivery wins; a late
    /// "delivered" never hides a bounce or a complaint).
    pub fn rank(status: NotificationStatus) -> u8 {
        match status {
            NotificationStatus::Delivered => 1,
            NotificationStatus::Failed | NotificationStatus::Bounced => 2,
            NotificationStatus::Complained => 3,
            _ => 0,
        }
    }
}

impl DeliveryAttempt {
    /// Attempt `number` of `notification` through `provider`, started now, with
    /// no error and no duration yet.
    pub fn new(
        notification: &Notification,
        number: u32,
        provider: impl Into<String>,
        outcome: AttemptOutcome,
    ) -> Self {
        Self {
            notification_id: notification.id,
            user_id: notification.user_id.clone(),
            number,
            kind: notification.kind,
            provider: provider.into(),
            outcome,
            error: None,
            started_at: Utc::now(),
            duration_ms: None,
            provider_message_id: None,
            report: None,
        }
    }

    /// Sets the provider's id of the message.
    pub fn with_provider_message_id(mut self, id: impl Into<String>) -> Self {
        self.provider_message_id = Some(id.into());
        self
    }

    /// Sets the error.
    pub fn with_error(mut self, error: impl Into<String>) -> Self {
        self.error = Some(error.into());
        self
    }

    /// Sets the start time.
    pub fn with_started_at(mut self, started_at: DateTime<Utc>) -> Self {
        self.started_at = started_at;
        self
    }

    /// When the attempt ended: its start plus its duration (its start when the
    /// duration is unknown).
    pub fn finished_at(&self) -> DateTime<Utc> {
        let millis = i64::try_from(self.duration_ms.unwrap_or(0)).unwrap_or(i64::MAX);
        chrono::TimeDelta::try_milliseconds(millis)
            .and_then(|elapsed| self.started_at.checked_add_signed(elapsed))
            .unwrap_or(self.started_at)
    }

    /// Sets the duration.
    pub fn with_duration(mut self, duration: std::time::Duration) -> Self {
        self.duration_ms = Some(u64::try_from(duration.as_millis()).unwrap_or(u64::MAX));
        self
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
    /// How many times it was handed (or about to be handed) to its provider.
    #[serde(default)]
    pub attempts: u32,
    /// When the last attempt started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_attempt_at: Option<DateTime<Utc>>,
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
            attempts: 0,
            last_attempt_at: None,
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
        for status in NotificationStatus::ALL {
            assert_eq!(
                serde_json::to_value(status).unwrap(),
                json!(status.as_str())
            );
            assert_eq!(NotificationStatus::from_name(status.as_str()), Some(status));
        }
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
