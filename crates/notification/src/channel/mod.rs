//! Channels: where a notification leaves the process.
//!
//! Each channel is a small object-safe trait with one required method, used as
//! `Arc<dyn …>` so the provider is chosen at run time:
//!
//! | trait | providers here | feature |
//! |---|---|---|
//! | [`EmailChannel`] | [`SmtpEmailChannel`] (lettre, pooled, TLS / STARTTLS / unencrypted) | `smtp` |
//! | [`SmsChannel`] | [`TwilioSmsProvider`], [`WebhookSmsProvider`] (reqwest) | `http` |
//! | [`PushChannel`] | [`FcmPushProvider`], [`WebhookPushProvider`] (reqwest) | `http` |
//! | every one | [`RecordingChannel`]: records what it is given and fails on demand, for tests | always |
//!
//! In-app (system) notifications have no channel: they are only recorded in the
//! [`NotificationStore`](crate::store::NotificationStore).
//!
//! Messages are checked once, by the service, before they are recorded
//! ([`EmailMessage::check`], [`SmsMessage::check`], [`PushMessage::check`]); a
//! channel sends what it is given and does not check again. Their recipients
//! are parsed values ([`EmailAddress`], [`PhoneNumber`], [`DeviceToken`]), so a
//! bad address cannot reach a channel at all. Call `check` yourself when you
//! hand a message to a channel directly.
//!
//! To add a provider, implement the trait and hand it to
//! [`NotificationService::with_sms`](crate::NotificationService::with_sms) (or
//! `with_email`, `with_push`); return errors whose
//! [`is_transient`](crate::NotificationError::is_transient) tells whether a
//! retry may help.

mod address;
mod breaker;
#[cfg(feature = "smtp")]
mod email;
mod failover;
#[cfg(feature = "http")]
mod http;
#[cfg(feature = "http")]
mod push;
mod recording;
mod retry;
#[cfg(feature = "http")]
mod sms;
#[cfg(feature = "http")]
mod webhook;

use std::collections::BTreeMap;

use async_trait::async_trait;

use crate::NotificationError;

pub use address::{DeviceToken, EmailAddress, PhoneNumber};
pub use breaker::{
    BreakerOpen, BreakerState, CircuitBreaker, CircuitBreakerConfig, Clock, ManualClock,
    SystemClock, Transition,
};
#[cfg(feature = "smtp")]
pub use email::{
    NOTIFICATION_ID_METADATA_KEY, SmtpConfig, SmtpCredentials, SmtpEmailChannel, SmtpProvider,
    SmtpSecurity,
};
pub(crate) use failover::describe_failures;
pub use failover::{
    FailoverEmailChannel, FailoverPushChannel, FailoverSmsChannel, ProviderFailure,
    proves_not_accepted,
};
#[cfg(feature = "http")]
pub use http::HttpClientConfig;
#[cfg(feature = "http")]
pub use push::{
    AccessTokenSource, FcmConfig, FcmPushProvider, StaticAccessToken, WebhookPushProvider,
};
pub use recording::{RecordingChannel, StubFailure};
pub use retry::ProviderRetryPolicy;
#[cfg(feature = "http")]
pub use sms::{TwilioConfig, TwilioSmsProvider, WebhookSmsProvider};
#[cfg(feature = "http")]
pub use webhook::WebhookConfig;

/// Longest SMS text accepted, in characters (ten concatenated segments).
pub const MAX_SMS_CHARS: usize = 1600;

/// An email ready to send.
///
/// ```
/// use notification::channel::{EmailAddress, EmailMessage};
/// let email = EmailMessage::new(EmailAddress::parse("ann@example.com").unwrap(), "Hello")
///     .with_text("Hi Ann")
///     .with_html("<p>Hi Ann</p>");
/// assert!(email.check().is_ok());
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct EmailMessage {
    /// The recipient.
    pub to: EmailAddress,
    /// The subject (kept on one line when sent).
    pub subject: String,
    /// The plain-text body.
    pub text: Option<String>,
    /// The HTML body.
    pub html: Option<String>,
    /// The notification this email carries, for the provider's logs.
    pub reference: Option<String>,
    /// `List-Unsubscribe` (and the RFC 8058 one-click `List-Unsubscribe-Post`).
    pub list_unsubscribe: Option<ListUnsubscribe>,
}

/// The unsubscribe links of an email (RFC 2369 `List-Unsubscribe`), sent with
/// `List-Unsubscribe-Post: List-Unsubscribe=One-Click` (RFC 8058): a mail
/// client POSTs `List-Unsubscribe=One-Click` to `https` to unsubscribe.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ListUnsubscribe {
    /// The HTTPS URL (with its token) that takes the one-click POST.
    pub https: String,
    /// A `mailto:` URL, when unsubscribing by mail is offered too.
    pub mailto: Option<String>,
}

impl ListUnsubscribe {
    /// Links to `https` (and `mailto`, if any). Refused unless `https` is an
    /// `https://` URL and `mailto` a `mailto:` URL, both without spaces,
    /// control characters or angle brackets (they go into a header between `<` `>`).
    pub fn new(
        https: impl Into<String>,
        mailto: Option<String>,
    ) -> Result<Self, NotificationError> {
        let https = https.into();
        let clean = |url: &str| {
            !url.chars()
                .any(|c| c.is_control() || c.is_whitespace() || c == '<' || c == '>' || c == ',')
        };
        if !https.starts_with("https://") || !clean(&https) {
            return Err(NotificationError::invalid_request(
                "a List-Unsubscribe URL must be https:// without spaces or control characters",
            ));
        }
        if let Some(mailto) = &mailto
            && (!mailto.starts_with("mailto:") || !clean(mailto))
        {
            return Err(NotificationError::invalid_request(
                "a List-Unsubscribe mailto must start with mailto: and have no spaces or control characters",
            ));
        }
        Ok(Self { https, mailto })
    }

    /// The `List-Unsubscribe` header's value: `<https://…>, <mailto:…>`.
    pub fn header_value(&self) -> String {
        match &self.mailto {
            Some(mailto) => format!("<{}>, <{mailto}>", self.https),
            None => format!("<{}>", self.https),
        }
    }
}

impl EmailMessage {
    /// An email with a subject and no body yet.
    pub fn new(to: EmailAddress, subject: impl Into<String>) -> Self {
        Self {
            to,
            subject: subject.into(),
            text: None,
            html: None,
            reference: None,
            list_unsubscribe: None,
        }
    }

    /// Sets the plain-text body.
    pub fn with_text(mut self, text: impl Into<String>) -> Self {
        self.text = Some(text.into());
        self
    }

    /// Sets the HTML body.
    pub fn with_html(mut self, html: impl Into<String>) -> Self {
        self.html = Some(html.into());
        self
    }

    /// Sets the reference.
    pub fn with_reference(mut self, reference: impl Into<String>) -> Self {
        self.reference = Some(reference.into());
        self
    }

    /// Sets the unsubscribe links.
    pub fn with_list_unsubscribe(mut self, links: ListUnsubscribe) -> Self {
        self.list_unsubscribe = Some(links);
        self
    }

    /// Checks there is a subject and a body.
    pub fn check(&self) -> Result<(), NotificationError> {
        if self.subject.trim().is_empty() {
            return Err(NotificationError::invalid_request(
                "the email subject is empty",
            ));
        }
        if self.text.is_none() && self.html.is_none() {
            return Err(NotificationError::invalid_request(
                "the email has neither a text nor an HTML body",
            ));
        }
        Ok(())
    }
}

/// A text message ready to send.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SmsMessage {
    /// The recipient.
    pub to: PhoneNumber,
    /// The text.
    pub text: String,
    /// The notification it carries: sent as the `Idempotency-Key` of webhook calls.
    pub reference: Option<String>,
}

impl SmsMessage {
    /// A text message.
    pub fn new(to: PhoneNumber, text: impl Into<String>) -> Self {
        Self {
            to,
            text: text.into(),
            reference: None,
        }
    }

    /// Sets the reference.
    pub fn with_reference(mut self, reference: impl Into<String>) -> Self {
        self.reference = Some(reference.into());
        self
    }

    /// Checks the text is not empty and at most [`MAX_SMS_CHARS`] characters.
    pub fn check(&self) -> Result<(), NotificationError> {
        if self.text.trim().is_empty() {
            return Err(NotificationError::invalid_request("the SMS text is empty"));
        }
        let chars = self.text.chars().count();
        if chars > MAX_SMS_CHARS {
            return Err(NotificationError::invalid_request(format!(
                "the SMS text has {chars} characters, more than {MAX_SMS_CHARS}"
            )));
        }
        Ok(())
    }
}

/// A push notification ready to send.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct PushMessage {
    /// The device registration token.
    pub device_token: DeviceToken,
    /// The title.
    pub title: String,
    /// The body.
    pub body: String,
    /// Extra key/value data delivered to the app.
    pub data: BTreeMap<String, String>,
    /// The notification it carries: sent as the `Idempotency-Key` of webhook calls.
    pub reference: Option<String>,
}

impl PushMessage {
    /// A push notification without data.
    pub fn new(
        device_token: DeviceToken,
        title: impl Into<String>,
        body: impl Into<String>,
    ) -> Self {
        Self {
            device_token,
            title: title.into(),
            body: body.into(),
            data: BTreeMap::new(),
            reference: None,
        }
    }

    /// Adds one data entry.
    pub fn with_data(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.data.insert(key.into(), value.into());
        self
    }

    /// Sets the reference.
    pub fn with_reference(mut self, reference: impl Into<String>) -> Self {
        self.reference = Some(reference.into());
        self
    }

    /// Checks that there is a title or a body (the token is checked when it
    /// is parsed).
    pub fn check(&self) -> Result<(), NotificationError> {
        if self.title.trim().is_empty() && self.body.trim().is_empty() {
            return Err(NotificationError::invalid_request(
                "the push notification has neither title nor body",
            ));
        }
        Ok(())
    }
}

/// What a provider said when it accepted a message.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SendReceipt {
    /// The provider (`"smtp"`, `"twilio"`, `"fcm"`, `"webhook"`, …).
    pub provider: String,
    /// The provider's id of the message, when it gave one.
    pub provider_message_id: Option<String>,
    /// The providers of a failover channel that refused the message before
    /// `provider` accepted it, in order (empty otherwise): each is logged as a
    /// failed attempt.
    pub failovers: Vec<ProviderFailure>,
}

impl SendReceipt {
    /// A receipt from `provider`.
    pub fn new(provider: impl Into<String>, provider_message_id: Option<String>) -> Self {
        Self {
            provider: provider.into(),
            provider_message_id,
            failovers: Vec::new(),
        }
    }
}

/// Sends emails.
#[async_trait]
pub trait EmailChannel: Send + Sync + 'static {
    /// Sends one email. Transient errors (SMTP 4xx, timeouts, connection
    /// failures) may succeed later; permanent ones (SMTP 5xx) will not.
    async fn send_email(&self, email: &EmailMessage) -> Result<SendReceipt, NotificationError>;

    /// The provider's name in the attempt log (`"smtp"`); `"email"` unless the
    /// implementation says otherwise.
    fn provider(&self) -> &str {
        "email"
    }
}

/// Sends text messages.
#[async_trait]
pub trait SmsChannel: Send + Sync + 'static {
    /// Sends one text message.
    async fn send_sms(&self, sms: &SmsMessage) -> Result<SendReceipt, NotificationError>;

    /// The provider's name in the attempt log (`"twilio"`, `"webhook"`); `"sms"`
    /// unless the implementation says otherwise.
    fn provider(&self) -> &str {
        "sms"
    }
}

/// Sends push notifications.
#[async_trait]
pub trait PushChannel: Send + Sync + 'static {
    /// Sends one push notification.
    async fn send_push(&self, push: &PushMessage) -> Result<SendReceipt, NotificationError>;

    /// The provider's name in the attempt log (`"fcm"`, `"webhook"`); `"push"`
    /// unless the implementation says otherwise.
    fn provider(&self) -> &str {
        "push"
    }
}
