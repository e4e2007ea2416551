use std::time::Duration;

use messaging_model::{Notification, NotificationKind, TemplateKind};
use thiserror::Error;

use crate::store::{BoxError, StoreError};

/// Why a notification could not be sent, a template not created, or an event not
/// turned into a notification.
///
/// Ask the error what to do next instead of parsing its text:
/// [`is_transient`](Self::is_transient) (retrying later may work: SMTP 4xx,
/// HTTP 429/5xx, timeouts, unreachable servers, a store that is down) or
/// [`is_permanent`](Self::is_permanent) (retrying cannot help: bad input, a
/// missing template, SMTP 5xx, other HTTP 4xx).
///
/// ```
/// use notification::NotificationError;
/// let error = NotificationError::InvalidPhoneNumber { value: "123".into(), reason: "must start with +" };
/// assert!(error.is_permanent());
/// assert!(!error.is_transient());
/// ```
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum NotificationError {
    /// An email address could not be parsed.
    #[error("invalid email address {value:?}: {reason}")]
    InvalidEmailAddress {
        /// The rejected text.
        value: String,
        /// Why.
        reason: String,
    },
    /// A phone number is not in E.164 form (`+` then 8 to 15 digits).
    #[error("invalid phone number {value:?}: {reason} (E.164 expected, e.g. +14155550100)")]
    InvalidPhoneNumber {
        /// The rejected text.
        value: String,
        /// Why.
        reason: &'static str,
    },
    /// A push device token is empty, too long, or has spaces or control characters.
    #[error("invalid device token: {reason}")]
    InvalidDeviceToken {
        /// Why.
        reason: &'static str,
    },
    /// The request breaks a rule (empty subject, no body…).
    #[error("invalid request: {reason}")]
    InvalidRequest {
        /// What was wrong.
        reason: String,
    },
    /// No template with that name (in that locale or the default one).
    #[error("template {name:?} not found{}", locale_suffix(locale))]
    TemplateNotFound {
        /// The name looked for.
        name: String,
        /// The locale asked for.
        locale: Option<String>,
    },
    /// The template exists but is inactive.
    #[error("template {name:?}{} is inactive", locale_suffix(locale))]
    TemplateInactive {
        /// Its name.
        name: String,
        /// Its locale.
        locale: Option<String>,
    },
    /// The template is for another channel.
    #[error("template {name:?} is a {found} template, a {expected} template was needed", found = found.as_str(), expected = expected.as_str())]
    TemplateKindMismatch {
        /// Its name.
        name: String,
        /// The channel asked for.
        expected: TemplateKind,
        /// The template's channel.
        found: TemplateKind,
    },
    /// The template is not valid handlebars, or uses something refused here
    /// (partials, decorators, unescaped `{{{ }}}` output, unknown helpers).
    #[error("template {name:?} is invalid: {reason}")]
    InvalidTemplate {
        /// Its name.
        name: String,
        /// What is wrong, with line and column where known.
        reason: String,
    },
    /// The variables a template declares differ from those it uses.
    #[error(
        "template {name:?} variables do not match its declaration: {}",
        variable_mismatch(undeclared, unused)
    )]
    TemplateVariableMismatch {
        /// Its name.
        name: String,
        /// Used but not declared.
        undeclared: Vec<String>,
        /// Declared but not used.
        unused: Vec<String>,
    },
    /// Variables the template needs were not given (or were `null`): nothing is
    /// sent rather than a message with blanks.
    #[error("template {name:?} needs variables that were not given: {}", missing.join(", "))]
    MissingVariables {
        /// The template.
        name: String,
        /// What is missing.
        missing: Vec<String>,
    },
    /// Rendering failed (a nested value missing in strict mode, a helper error).
    #[error("template {name:?} could not be rendered: {reason}")]
    Render {
        /// The template.
        name: String,
        /// Why.
        reason: String,
    },
    /// A part of the template rendered to more than the renderer's limit
    /// ([`TemplateRenderer::with_max_rendered_bytes`](crate::template::TemplateRenderer::with_max_rendered_bytes));
    /// permanent: the same variables would do it again.
    #[error("template {name:?} rendered to more than {limit} bytes")]
    RenderedTooLarge {
        /// The template.
        name: String,
        /// The limit, in bytes.
        limit: usize,
    },
    /// No provider is configured for this channel.
    #[error("no {} channel is configured", kind.as_str())]
    ChannelNotConfigured {
        /// The channel.
        kind: NotificationKind,
    },
    /// A channel could not be built from its configuration.
    #[error("invalid {channel} configuration: {reason}")]
    Config {
        /// The channel (`"smtp"`, `"twilio"`…).
        channel: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// The SMTP server refused the message or could not be talked to.
    #[error("SMTP delivery failed{}: {source}", code.map(|c| format!(" ({c})")).unwrap_or_default())]
    Smtp {
        /// The SMTP reply code, when the server answered.
        code: Option<u16>,
        /// True for 4xx replies, timeouts and connection failures.
        transient: bool,
        /// lettre's error.
        #[source]
        source: BoxError,
    },
    /// An HTTP provider answered with an error status.
    #[error("{provider} answered HTTP {status}: {body}")]
    HttpStatus {
        /// The provider (`"twilio"`, `"fcm"`, `"webhook"`).
        provider: &'static str,
        /// The status code.
        status: u16,
        /// The start of the response body.
        body: String,
        /// The delay asked for by `Retry-After`, if any.
        retry_after: Option<Duration>,
    },
    /// An HTTP provider could not be reached, or did not answer in time.
    #[error("{provider} could not be reached{}: {source}", if *timeout { " (timed out)" } else { "" })]
    HttpTransport {
        /// The provider.
        provider: &'static str,
        /// True when the request timed out.
        timeout: bool,
        /// reqwest's error.
        #[source]
        source: BoxError,
    },
    /// Every provider of a failover channel refused the message before
    /// accepting it, or was skipped because its circuit breaker is open.
    #[error("no {} provider accepted it: {}", kind.as_str(), crate::channel::describe_failures(failures))]
    AllProvidersFailed {
        /// The channel.
        kind: NotificationKind,
        /// Each provider tried or skipped, in order.
        failures: Vec<crate::channel::ProviderFailure>,
    },
    /// A provider of a failover channel failed in a way that leaves it unknown
    /// whether it took the message (a timeout after the data was sent): not
    /// failed over, so it is never sent twice. Transient when `source` is.
    #[error("{provider}: {source}")]
    ProviderFailed {
        /// The provider's configured name.
        provider: String,
        /// The providers that refused it before, in order.
        refused_before: Vec<crate::channel::ProviderFailure>,
        /// Its error.
        #[source]
        source: Box<NotificationError>,
    },
    /// The notification store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A send with this idempotency key was made before and failed; the key
    /// returns that first result rather than sending again.
    #[error("an earlier send with idempotency key {:?} failed: {}", notification.idempotency_key.as_deref().unwrap_or_default(), notification.error.as_deref().unwrap_or("unknown error"))]
    PreviouslyFailed {
        /// The notification recorded by the first send.
        notification: Box<Notification>,
    },
    /// Another process started an attempt of this notification first (a
    /// redelivery raced the delivery it replaces); transient: try again once
    /// that attempt has ended.
    #[error("notification {} is being sent by another process ({})", notification.id, notification.status.as_str())]
    InProgress {
        /// The notification as stored when the race was lost.
        notification: Box<Notification>,
    },
    /// Subscribing to an event topic failed.
    #[error("subscribing to {topic} failed: {source}")]
    Subscribe {
        /// The topic.
        topic: String,
        /// The messaging error.
        #[source]
        source: messaging_core::MessagingError,
    },
    /// Publishing the delayed message of a notification held for quiet hours
    /// failed (the event is retried: its `scheduled` row publishes again).
    #[error("deferring a notification failed: {source}")]
    Defer {
        /// The messaging error.
        #[source]
        source: messaging_core::MessagingError,
    },
    /// An event's payload does not have the documented shape.
    #[error("invalid {topic} payload: {reason}")]
    InvalidPayload {
        /// The topic.
        topic: String,
        /// What is wrong.
        reason: String,
    },
}

fn locale_suffix(locale: &Option<String>) -> String {
    locale
        .as_deref()
        .map(|locale| format!(" (locale {locale:?})"))
        .unwrap_or_default()
}

fn variable_mismatch(undeclared: &[String], unused: &[String]) -> String {
    let mut parts = Vec::new();
    if !undeclared.is_empty() {
        parts.push(format!("used but not declared: {}", undeclared.join(", ")));
    }
    if !unused.is_empty() {
        parts.push(format!("declared but not used: {}", unused.join(", ")));
    }
    parts.join("; ")
}

impl NotificationError {
    /// True when the same send may succeed later: SMTP 4xx replies, SMTP
    /// connection failures and timeouts, HTTP 408/429/5xx, unreachable HTTP
    /// providers, a store that is unavailable, and a notification another
    /// process is sending ([`NotificationError::InProgress`]).
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Smtp { transient, .. } => *transient,
            Self::HttpStatus { status, .. } => is_transient_status(*status),
            Self::HttpTransport { .. } | Self::InProgress { .. } => true,
            Self::AllProvidersFailed { failures, .. } => failures.iter().any(|f| f.transient),
            Self::ProviderFailed { source, .. } => source.is_transient(),
            Self::Store(store) => store.is_transient(),
            Self::Subscribe {
                source: messaging_core::MessagingError::Backend(backend),
                ..
            } => backend.is_transient(),
            Self::Defer {
                source: messaging_core::MessagingError::Backend(backend),
            } => backend.is_transient(),
            _ => false,
        }
    }

    /// True when retrying cannot help.
    pub fn is_permanent(&self) -> bool {
        !self.is_transient()
    }

    /// The delay a provider asked for (HTTP `Retry-After`), if any.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::HttpStatus { retry_after, .. } => *retry_after,
            Self::ProviderFailed { source, .. } => source.retry_after(),
            _ => None,
        }
    }

    /// True for [`NotificationError::TemplateNotFound`].
    pub fn is_template_not_found(&self) -> bool {
        matches!(self, Self::TemplateNotFound { .. })
    }

    pub(crate) fn invalid_request(reason: impl Into<String>) -> Self {
        Self::InvalidRequest {
            reason: reason.into(),
        }
    }

    /// The longest provider `Retry-After` honoured as asked (1 hour): a longer
    /// one (`Retry-After: 18446744073709551615`) is cut to this in
    /// [`into_handler_error`](Self::into_handler_error). The worker caps every
    /// retry delay again with its `retry.max_retry_delay` setting.
    pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(3600);

    /// The matching [`messaging_core::HandlerError`]: transient errors retry
    /// (after `Retry-After` when given, at most
    /// [`MAX_RETRY_AFTER`](Self::MAX_RETRY_AFTER); otherwise with the
    /// subscriber's backoff), the rest go to the dead-letter queue.
    pub fn into_handler_error(self) -> messaging_core::HandlerError {
        use messaging_core::HandlerError;
        if self.is_permanent() {
            HandlerError::permanent(self)
        } else if let Some(after) = self.retry_after() {
            HandlerError::retry_after(after.min(Self::MAX_RETRY_AFTER), self)
        } else {
            HandlerError::retry(self)
        }
    }
}

/// HTTP statuses worth retrying: 408, 429 and every 5xx.
pub(crate) fn is_transient_status(status: u16) -> bool {
    status == 408 || status == 429 || (500..600).contains(&status)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_http_statuses() {
        let status = |status| NotificationError::HttpStatus {
            provider: "webhook",
            status,
            body: String::new(),
            retry_after: None,
        };
        for transient in [408, 429, 500, 502, 503] {
            assert!(status(transient).is_transient(), "{transient}");
        }
        for permanent in [400, 401, 403, 404, 422] {
            assert!(status(permanent).is_permanent(), "{permanent}");
        }
    }

    #[test]
    fn maps_to_handler_errors() {
        let throttled = NotificationError::HttpStatus {
            provider: "twilio",
            status: 429,
            body: String::new(),
            retry_after: Some(Duration::from_secs(7)),
        };
        let handler = throttled.into_handler_error();
        assert_eq!(handler.retry_delay(), Some(Duration::from_secs(7)));
        assert!(!handler.is_permanent());
        let missing = NotificationError::TemplateNotFound {
            name: "welcome_email".into(),
            locale: Some("fr".into()),
        };
        assert_eq!(
            missing.to_string(),
            "template \"welcome_email\" not found (locale \"fr\")"
        );
        assert!(missing.into_handler_error().is_permanent());
    }

    #[test]
    fn an_absurd_retry_after_is_capped() {
        // What `Retry-After: 18446744073709551615` parses to.
        let asked = Duration::from_secs(u64::MAX);
        let throttled = NotificationError::HttpStatus {
            provider: "webhook",
            status: 503,
            body: String::new(),
            retry_after: Some(asked),
        };
        assert_eq!(
            throttled.into_handler_error().retry_delay(),
            Some(NotificationError::MAX_RETRY_AFTER)
        );
    }
}
