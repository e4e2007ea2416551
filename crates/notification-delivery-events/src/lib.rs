//! Delivery status callbacks of email and SMS providers, verified and parsed into
//! typed [`DeliveryEvent`]s.
//!
//! Every provider module exposes a verifier configured with the provider's secret
//! (signing key, public key, basic-auth credentials, auth token, or trusted SNS
//! certificate source) and a `parse` method that takes the **raw request body bytes**
//! and the **request headers**, so any HTTP framework can call it:
//!
//! | provider | module | authenticated by |
//! | --- | --- | --- |
//! | Mailgun webhooks | [`mailgun`] | HMAC-SHA256 of `timestamp + token` in the body, stale timestamps refused |
//! | SendGrid Event Webhook | [`sendgrid`] | ECDSA P-256 over `timestamp header + body` |
//! | Postmark webhooks | [`postmark`] | HTTP basic auth, compared in constant time |
//! | Twilio status callbacks | [`twilio`] | `X-Twilio-Signature`, HMAC-SHA1 of URL + sorted params |
//! | Amazon SES via SNS | [`ses`] | SNS message signature (versions 1 and 2), certificate from a trusted URL |
//!
//! [`apply::DeliveryEventApplier`] acts on the events: it updates the
//! notification a provider reports on (matched by the provider message id its
//! send logged) and keeps the suppression list, through the
//! `notification-store` traits.
//!
//! Nothing here performs network I/O of its own: the SNS signing certificate is fetched by the
//! caller through a [`ses::CertificateSource`].
//!
//! Every failure is a [`DeliveryEventError`] the caller can match on (to answer 401
//! for a bad signature and 400 for a malformed body, say); no input makes these
//! functions panic.
//!
//! ```
//! use notification_delivery_events::{DeliveryKind, postmark::PostmarkVerifier};
//!
//! let verifier = PostmarkVerifier::new("hooks", "s3cret");
//! let body = br#"{"RecordType":"Delivery","MessageID":"883953f4-6105-42a2-a16a-77a8eac79483",
//!   "Recipient":"john@example.com","DeliveredAt":"2019-11-05T16:33:54.9070259Z",
//!   "Details":"Test delivery webhook details"}"#;
//! // "hooks:s3cret" in base64
//! let headers = [("Authorization", "Basic aG9va3M6czNjcmV0")];
//! let events = verifier.parse(body, &headers[..])?;
//! assert_eq!(events[0].kind, DeliveryKind::Delivered);
//! assert_eq!(events[0].recipient.as_deref(), Some("john@example.com"));
//! # Ok::<(), notification_delivery_events::DeliveryEventError>(())
//! ```

use std::collections::{BTreeMap, HashMap};
use std::fmt;

use chrono::{DateTime, Utc};

pub mod apply;
pub mod mailgun;
pub mod postmark;
pub mod sendgrid;
pub mod ses;
pub mod twilio;

mod util;

/// The key under which the email channel puts the notification id in a
/// provider's metadata header (`notification::channel::SmtpProvider`), and
/// under which the parsers look for it in events: SendGrid `unique_args` (top
/// level fields of each event), Postmark `Metadata`, SES message tags
/// (`mail.tags`), Mailgun `user-variables`.
pub const NOTIFICATION_ID_KEY: &str = "notification_id";

/// The provider a [`DeliveryEvent`] came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Provider {
    /// Mailgun webhooks.
    Mailgun,
    /// SendGrid (Twilio SendGrid) Event Webhook.
    SendGrid,
    /// Postmark webhooks.
    Postmark,
    /// Twilio Programmable Messaging status callbacks.
    Twilio,
    /// Amazon SES notifications delivered through Amazon SNS.
    AmazonSes,
}

impl fmt::Display for Provider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Provider::Mailgun => "mailgun",
            Provider::SendGrid => "sendgrid",
            Provider::Postmark => "postmark",
            Provider::Twilio => "twilio",
            Provider::AmazonSes => "amazon-ses",
        })
    }
}

/// What happened to a message, as far as the provider knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DeliveryKind {
    /// The receiving server (or carrier) accepted the message.
    Delivered,
    /// The receiving side refused the message. `hard` is a permanent failure (the
    /// address does not exist, is blocked for good): stop sending to it. A soft
    /// bounce (`hard: false`) is temporary (mailbox full, greylisting, a block
    /// that may lift).
    Bounced {
        /// Permanent (`true`) or temporary (`false`).
        hard: bool,
    },
    /// The recipient marked the message as spam (a feedback-loop complaint).
    Complained,
    /// The provider did not (or could not) deliver the message for a reason other
    /// than a bounce: dropped because of a suppression list, rejected, an SMS
    /// that failed or was undelivered.
    Failed,
    /// Delivery was delayed; the provider keeps retrying.
    Deferred,
}

/// One delivery status event of one message to one recipient.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryEvent {
    /// Who reported it.
    pub provider: Provider,
    /// The provider's id of the message (Mailgun `Message-Id`, SendGrid
    /// `sg_message_id`, Postmark `MessageID`, Twilio `MessageSid`, SES
    /// `mail.messageId`): what the send call returned.
    pub provider_message_id: String,
    /// The notification the message was sent for, when the event carries the
    /// id the email channel put in the provider's metadata header
    /// ([`NOTIFICATION_ID_KEY`]: SendGrid `unique_args`, Postmark `Metadata`,
    /// SES `mail.tags`, Mailgun `user-variables`). SMTP relays other than
    /// Mailgun name their own message id, not the `Message-ID` header the
    /// channel set, so this is how their events find the notification. Not
    /// part of what the provider signs for Mailgun (only timestamp and token
    /// are signed there) or Postmark (basic auth only): trust it as far as the
    /// provider's check goes.
    pub notification_id: Option<uuid::Uuid>,
    /// The recipient (email address or phone number), when the callback says.
    pub recipient: Option<String>,
    /// What happened.
    pub kind: DeliveryKind,
    /// The provider's own words (SMTP response, bounce description, error code).
    pub reason: Option<String>,
    /// When it happened, per the provider (Twilio callbacks carry no time: the
    /// time of parsing is used there).
    pub occurred_at: DateTime<Utc>,
}

/// Why a callback was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DeliveryEventError {
    /// The signature does not match the body (forged, modified, or the wrong key).
    #[error("bad signature")]
    BadSignature,
    /// Basic-auth credentials are wrong.
    #[error("bad credentials")]
    BadCredentials,
    /// A required request header is absent.
    #[error("missing header {0}")]
    MissingHeader(&'static str),
    /// The body (or a header) is not what the provider sends.
    #[error("malformed callback: {0}")]
    Malformed(String),
    /// The signed timestamp is further from now than the configured tolerance
    /// (a replayed or delayed callback).
    #[error("stale timestamp {timestamp} (tolerance {tolerance_secs}s)")]
    StaleTimestamp {
        /// The timestamp the callback carries, in seconds since the epoch.
        timestamp: i64,
        /// The configured tolerance in seconds.
        tolerance_secs: u64,
    },
    /// The SNS `SigningCertURL` is not an `https://sns.<region>.amazonaws.com/….pem` URL.
    #[error("untrusted certificate URL {0}")]
    UntrustedCertificateUrl(String),
    /// The certificate could not be fetched or read, or is not valid now.
    #[error("certificate: {0}")]
    Certificate(String),
    /// The SNS `SignatureVersion` is neither 1 nor 2.
    #[error("unsupported signature version {0}")]
    UnsupportedSignatureVersion(String),
    /// The SNS topic is not one of the configured topics.
    #[error("unexpected topic {0}")]
    UnexpectedTopic(String),
    /// A configured key or secret is unusable (a SendGrid public key that is not
    /// P-256 SubjectPublicKeyInfo, say).
    #[error("bad configuration: {0}")]
    BadConfig(String),
}

/// A shorthand for results of this crate.
pub type Result<T, E = DeliveryEventError> = std::result::Result<T, E>;

/// Request headers, looked up by case-insensitive name.
///
/// Implemented for slices and vectors of `(name, value)` pairs, [`HashMap`] and
/// [`BTreeMap`]; a framework's header map can be adapted with a small wrapper or
/// collected into a `Vec<(String, String)>`.
///
/// ```
/// use notification_delivery_events::Headers;
/// let headers = [("X-Twilio-Signature", "abc")];
/// assert_eq!(headers[..].header("x-twilio-signature"), Some("abc"));
/// ```
pub trait Headers {
    /// The value of the first header named `name` (ASCII case-insensitive).
    fn header(&self, name: &str) -> Option<&str>;
}

impl<K: AsRef<str>, V: AsRef<str>> Headers for [(K, V)] {
    fn header(&self, name: &str) -> Option<&str> {
        self.iter()
            .find(|(k, _)| k.as_ref().eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_ref())
    }
}

impl<K: AsRef<str>, V: AsRef<str>> Headers for Vec<(K, V)> {
    fn header(&self, name: &str) -> Option<&str> {
        self.as_slice().header(name)
    }
}

impl<K: AsRef<str>, V: AsRef<str>, S> Headers for HashMap<K, V, S> {
    fn header(&self, name: &str) -> Option<&str> {
        self.iter()
            .find(|(k, _)| k.as_ref().eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_ref())
    }
}

impl<K: AsRef<str>, V: AsRef<str>> Headers for BTreeMap<K, V> {
    fn header(&self, name: &str) -> Option<&str> {
        self.iter()
            .find(|(k, _)| k.as_ref().eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_ref())
    }
}

impl<H: Headers + ?Sized> Headers for &H {
    fn header(&self, name: &str) -> Option<&str> {
        (**self).header(name)
    }
}

pub(crate) fn required_header<'h, H: Headers + ?Sized>(
    headers: &'h H,
    name: &'static str,
) -> Result<&'h str> {
    headers
        .header(name)
        .ok_or(DeliveryEventError::MissingHeader(name))
}

/// docs/delivery.md's examples, compiled as doc tests so they cannot rot.
#[cfg(doctest)]
#[doc = include_str!("../../../docs/delivery.md")]
struct DeliveryDocDoctests;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_are_looked_up_case_insensitively_in_every_container() {
        let pairs = vec![("Content-Type".to_owned(), "a".to_owned())];
        let hash: HashMap<&str, &str> = [("X-Twilio-Signature", "b")].into();
        let tree: BTreeMap<String, String> = [("authorization".into(), "c".into())].into();
        assert_eq!(pairs.header("content-type"), Some("a"));
        assert_eq!(hash.header("x-twilio-SIGNATURE"), Some("b"));
        assert_eq!(tree.header("Authorization"), Some("c"));
        assert_eq!(required_header(&&tree, "missing").ok(), None);
        assert_eq!(
            required_header(&pairs, "X-Missing"),
            Err(DeliveryEventError::MissingHeader("X-Missing"))
        );
    }

    #[test]
    fn providers_display_as_short_names() {
        assert_eq!(Provider::AmazonSes.to_string(), "amazon-ses");
        assert_eq!(Provider::SendGrid.to_string(), "sendgrid");
    }
}
