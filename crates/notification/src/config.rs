use messaging_model::NotificationKind;
use serde::{Deserialize, Serialize};

/// What to do with a notification whose last send was interrupted after it may
/// have reached the provider: a later delivery of the same event finds it
/// `sending`, because the process died between handing it over and recording
/// the outcome.
///
/// ```
/// use notification::InterruptedSendPolicy;
/// assert_eq!(InterruptedSendPolicy::default(), InterruptedSendPolicy::Resend);
/// let policy: InterruptedSendPolicy = serde_json::from_str("\"mark_unknown\"").unwrap();
/// assert_eq!(policy, InterruptedSendPolicy::MarkUnknown);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InterruptedSendPolicy {
    /// Send it again on the same row (the default): it arrives at least once,
    /// twice if the interrupted send had reached the provider. The provider sees
    /// the same reference (the notification id, and for email the same
    /// `Message-ID`) both times.
    #[default]
    Resend,
    /// Do not send again: the row ends `unknown` and an `unknown` attempt is
    /// logged, for an operator to check. Never a duplicate, but possibly never
    /// delivered.
    MarkUnknown,
}

impl InterruptedSendPolicy {
    /// The name used in configuration files (`resend`, `mark_unknown`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Resend => "resend",
            Self::MarkUnknown => "mark_unknown",
        }
    }
}

/// Settings of the [`NotificationService`](crate::NotificationService).
///
/// ```
/// use messaging_model::NotificationKind;
/// use notification::{InterruptedSendPolicy, NotificationConfig};
/// let config = NotificationConfig::default()
///     .with_batch_concurrency(32)
///     .with_interrupted_send(NotificationKind::Sms, InterruptedSendPolicy::MarkUnknown);
/// assert_eq!(config.batch_concurrency, 32);
/// assert_eq!(config.interrupted_send(NotificationKind::Sms), InterruptedSendPolicy::MarkUnknown);
/// assert_eq!(config.interrupted_send(NotificationKind::Email), InterruptedSendPolicy::Resend);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct NotificationConfig {
    /// Sends of one batch in flight at once. Match it to the SMTP pool size
    /// ([`SmtpConfig::pool_max_size`](crate::channel::SmtpConfig::pool_max_size))
    /// for batch email: more only waits for a connection.
    pub batch_concurrency: usize,
    /// [`InterruptedSendPolicy`] of the email channel.
    pub interrupted_email: InterruptedSendPolicy,
    /// [`InterruptedSendPolicy`] of the SMS channel.
    pub interrupted_sms: InterruptedSendPolicy,
    /// [`InterruptedSendPolicy`] of the push channel.
    pub interrupted_push: InterruptedSendPolicy,
    /// How long a template read from the store is reused before it is read
    /// again. Changes made through this service are seen at once; changes made
    /// by another process, within this. `Duration::ZERO` reads the store on
    /// every send.
    pub template_cache_ttl: std::time::Duration,
}

impl Default for NotificationConfig {
    /// 10 sends at once (the default SMTP pool size); interrupted sends are
    /// sent again on every channel; templates reused for 5 s.
    fn default() -> Self {
        Self {
            batch_concurrency: 10,
            interrupted_email: InterruptedSendPolicy::Resend,
            interrupted_sms: InterruptedSendPolicy::Resend,
            interrupted_push: InterruptedSendPolicy::Resend,
            template_cache_ttl: std::time::Duration::from_secs(5),
        }
    }
}

impl NotificationConfig {
    /// Sets the batch concurrency (at least 1).
    pub fn with_batch_concurrency(mut self, concurrency: usize) -> Self {
        self.batch_concurrency = concurrency.max(1);
        self
    }

    /// Sets how long templates read from the store are reused.
    pub fn with_template_cache_ttl(mut self, ttl: std::time::Duration) -> Self {
        self.template_cache_ttl = ttl;
        self
    }

    /// The policy for interrupted sends of `kind` (in-app notifications are
    /// recorded, never handed to a provider: always [`InterruptedSendPolicy::Resend`]).
    pub fn interrupted_send(&self, kind: NotificationKind) -> InterruptedSendPolicy {
        match kind {
            NotificationKind::Email => self.interrupted_email,
            NotificationKind::Sms => self.interrupted_sms,
            NotificationKind::Push => self.interrupted_push,
            NotificationKind::System => InterruptedSendPolicy::Resend,
        }
    }

    /// Sets the policy for interrupted sends of `kind` (ignored for
    /// [`NotificationKind::System`]).
    pub fn with_interrupted_send(
        mut self,
        kind: NotificationKind,
        policy: InterruptedSendPolicy,
    ) -> Self {
        match kind {
            NotificationKind::Email => self.interrupted_email = policy,
            NotificationKind::Sms => self.interrupted_sms = policy,
            NotificationKind::Push => self.interrupted_push = policy,
            NotificationKind::System => {}
        }
        self
    }
}
