//! Amazon SES notifications delivered through Amazon SNS (HTTP/S subscription).
//!
//! SNS posts a JSON message (`Type` `Notification`, `SubscriptionConfirmation` or
//! `UnsubscribeConfirmation`) signed with RSA: `SignatureVersion` `1` is
//! SHA1withRSA, `2` SHA256withRSA, over the canonical string of the message's
//! fields (`Key\nValue\n` for `Message`, `MessageId`, `Subject` (when present),
//! `Timestamp`, `TopicArn`, `Type` of a notification; `Message`, `MessageId`,
//! `SubscribeURL`, `Timestamp`, `Token`, `TopicArn`, `Type` of a confirmation). The
//! signing certificate is at `SigningCertURL`.
//!
//! This module does no network I/O: the caller fetches the certificate, through a
//! [`CertificateSource`] (a closure will do; cache by URL, certificates rotate
//! rarely), but only after the URL passed [`validate_certificate_url`]: `https`,
//! host exactly `sns.<region>.amazonaws.com`, path ending `.pem`, no port, user,
//! query or fragment. Anything else is [`UntrustedCertificateUrl`] and is never
//! handed to the source. The certificate must be valid at the time of parsing.
//!
//! The `Message` of a notification is the SES notification JSON. By
//! `notificationType` (SES notifications) or `eventType` (configuration-set event
//! publishing), one event per recipient:
//! - `Bounce`: `bounceType` `Permanent` → [`Bounced { hard: true }`](DeliveryKind::Bounced),
//!   `Transient` and `Undetermined` → `Bounced { hard: false }`;
//! - `Complaint` → [`Complained`](DeliveryKind::Complained);
//! - `Delivery` → [`Delivered`](DeliveryKind::Delivered);
//! - `Reject` and `Rendering Failure` → [`Failed`](DeliveryKind::Failed);
//! - `DeliveryDelay` → [`Deferred`](DeliveryKind::Deferred);
//! - `Send`, `Open`, `Click`, `Subscription`, `AmazonSnsSubscriptionSucceeded` → no event.
//!
//! [`UntrustedCertificateUrl`]: DeliveryEventError::UntrustedCertificateUrl

use std::time::Duration;

use chrono::{DateTime, Utc};
use rsa::pkcs8::DecodePublicKey as _;
use serde_json::Value;
use x509_cert::der::{Decode as _, DecodePem as _, Encode as _};

use crate::util::{
    base64_decode, malformed, nonempty_field, notification_id_in, parse_json, parse_rfc3339,
    str_field,
};
use crate::{DeliveryEvent, DeliveryEventError, DeliveryKind, Provider, Result};

/// Fetches the signing certificate (PEM, or DER) at an already validated
/// `SigningCertURL`.
///
/// Implemented for closures `Fn(&str) -> Result<Vec<u8>, String>`.
pub trait CertificateSource {
    /// The certificate at `url`, or why it could not be had.
    fn certificate(&self, url: &str) -> std::result::Result<Vec<u8>, String>;
}

impl<F> CertificateSource for F
where
    F: Fn(&str) -> std::result::Result<Vec<u8>, String>,
{
    fn certificate(&self, url: &str) -> std::result::Result<Vec<u8>, String> {
        self(url)
    }
}

/// Refuses a `SigningCertURL` that is not `https://sns.<region>.amazonaws.com/….pem`.
///
/// ```
/// use notification_delivery_events::ses::validate_certificate_url;
/// assert!(validate_certificate_url(
///     "https://sns.us-west-2.amazonaws.com/SimpleNotificationService-f3ecfb7224c7233fe7bb5f59f96de52f.pem"
/// ).is_ok());
/// assert!(validate_certificate_url("https://sns.us-west-2.amazonaws.com.evil.example/x.pem").is_err());
/// assert!(validate_certificate_url("http://sns.us-west-2.amazonaws.com/x.pem").is_err());
/// ```
pub fn validate_certificate_url(url: &str) -> Result<()> {
    let untrusted = || DeliveryEventError::UntrustedCertificateUrl(url.to_owned());
    let parsed = url::Url::parse(url).map_err(|_| untrusted())?;
    if parsed.scheme() != "https"
        || !parsed.username().is_empty()
        || parsed.password().is_some()
        || parsed.port().is_some()
        || parsed.query().is_some()
        || parsed.fragment().is_some()
        || !parsed.path().ends_with(".pem")
    {
        return Err(untrusted());
    }
    let Some(url::Host::Domain(host)) = parsed.host() else {
        return Err(untrusted());
    };
    let region = host
        .strip_prefix("sns.")
        .and_then(|h| h.strip_suffix(".amazonaws.com"))
        .ok_or_else(untrusted)?;
    let region_ok = !region.is_empty()
        && region
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !region.starts_with('-')
        && !region.ends_with('-');
    if !region_ok {
        return Err(untrusted());
    }
    Ok(())
}

/// What a verified SNS message asks of the caller.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SnsCallback {
    /// A notification: the SES delivery events it holds (possibly none, for event
    /// types that are not delivery outcomes).
    Notification(Vec<DeliveryEvent>),
    /// A new subscription: visit `subscribe_url` (a GET) to confirm it.
    SubscriptionConfirmation {
        /// The topic subscribed to.
        topic_arn: String,
        /// The URL that confirms the subscription.
        subscribe_url: String,
        /// The token (for `ConfirmSubscription` through the API instead).
        token: String,
    },
    /// The subscription was removed; `subscribe_url` would subscribe again.
    UnsubscribeConfirmation {
        /// The topic.
        topic_arn: String,
        /// The URL that subscribes again.
        subscribe_url: String,
        /// The token.
        token: String,
    },
}

/// An SNS message, parsed but not yet verified: for callers that fetch the
/// certificate asynchronously, in two steps ([`SnsMessage::parse`], fetch
/// [`signing_cert_url`](SnsMessage::signing_cert_url), then
/// [`SesVerifier::verify_message`]).
#[derive(Debug, Clone)]
pub struct SnsMessage {
    value: Value,
    kind: SnsType,
    signing_cert_url: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SnsType {
    Notification,
    SubscriptionConfirmation,
    UnsubscribeConfirmation,
}

impl SnsMessage {
    /// Parses an SNS message body and validates its `SigningCertURL`.
    pub fn parse(body: &[u8]) -> Result<Self> {
        let value = parse_json(body)?;
        let kind = match str_field(&value, "Type") {
            Some("Notification") => SnsType::Notification,
            Some("SubscriptionConfirmation") => SnsType::SubscriptionConfirmation,
            Some("UnsubscribeConfirmation") => SnsType::UnsubscribeConfirmation,
            other => return Err(malformed(format!("SNS Type {other:?}"))),
        };
        let signing_cert_url = str_field(&value, "SigningCertURL")
            .ok_or_else(|| malformed("no SigningCertURL"))?
            .to_owned();
        validate_certificate_url(&signing_cert_url)?;
        Ok(SnsMessage {
            value,
            kind,
            signing_cert_url,
        })
    }

    /// The validated URL of the signing certificate.
    pub fn signing_cert_url(&self) -> &str {
        &self.signing_cert_url
    }

    /// The `TopicArn`.
    pub fn topic_arn(&self) -> Option<&str> {
        str_field(&self.value, "TopicArn")
    }

    fn field(&self, key: &str) -> Result<&str> {
        str_field(&self.value, key).ok_or_else(|| malformed(format!("no {key}")))
    }

    /// The string SNS signs.
    fn canonical(&self) -> Result<String> {
        let keys: &[&str] = match self.kind {
            SnsType::Notification => &[
                "Message",
                "MessageId",
                "Subject",
                "Timestamp",
                "TopicArn",
                "Type",
            ],
            _ => &[
                "Message",
                "MessageId",
                "SubscribeURL",
                "Timestamp",
                "Token",
                "TopicArn",
                "Type",
            ],
        };
        let mut out = String::new();
        for &key in keys {
            let value = match (key, str_field(&self.value, key)) {
                ("Subject", None) => continue,
                (_, Some(v)) => v,
                (_, None) => return Err(malformed(format!("no {key}"))),
            };
            out.push_str(key);
            out.push('\n');
            out.push_str(value);
            out.push('\n');
        }
        Ok(out)
    }
}

/// Verifies SNS messages and parses the SES notifications they carry.
///
/// ```no_run
/// use notification_delivery_events::ses::{SesVerifier, SnsCallback};
///
/// # fn fetch(url: &str) -> Result<Vec<u8>, String> { unimplemented!() }
/// # let body: &[u8] = b"";
/// let verifier = SesVerifier::new()
///     .with_topic_arns(["arn:aws:sns:us-east-1:123456789012:ses-events"]);
/// // `fetch` is the caller's HTTP GET (with a cache); it only ever sees
/// // https://sns.<region>.amazonaws.com/….pem URLs.
/// match verifier.parse(body, &fetch)? {
///     SnsCallback::Notification(events) => { /* record them */ }
///     SnsCallback::SubscriptionConfirmation { subscribe_url, .. } => { /* GET it */ }
///     _ => {}
/// }
/// # Ok::<(), notification_delivery_events::DeliveryEventError>(())
/// ```
#[derive(Debug, Clone, Default)]
pub struct SesVerifier {
    topic_arns: Vec<String>,
    max_age: Option<Duration>,
}

impl SesVerifier {
    /// A verifier accepting any topic and any message age.
    pub fn new() -> Self {
        Self::default()
    }

    /// Accepts only messages of these topics (recommended: anyone can point an SNS
    /// topic of their own at your endpoint, and its messages are validly signed).
    pub fn with_topic_arns<I, S>(mut self, arns: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.topic_arns = arns.into_iter().map(Into::into).collect();
        self
    }

    /// Refuses messages whose `Timestamp` is older than `max_age` (SNS retries
    /// for up to about an hour by default).
    pub fn with_max_age(mut self, max_age: Duration) -> Self {
        self.max_age = Some(max_age);
        self
    }

    /// Verifies a message body, fetching the certificate through `certificates`,
    /// and parses it.
    pub fn parse<C: CertificateSource + ?Sized>(
        &self,
        body: &[u8],
        certificates: &C,
    ) -> Result<SnsCallback> {
        self.parse_at(body, certificates, Utc::now())
    }

    /// As [`parse`](Self::parse), with `now` given (certificate validity and
    /// message age are judged against it).
    pub fn parse_at<C: CertificateSource + ?Sized>(
        &self,
        body: &[u8],
        certificates: &C,
        now: DateTime<Utc>,
    ) -> Result<SnsCallback> {
        let message = SnsMessage::parse(body)?;
        let cert = certificates
            .certificate(message.signing_cert_url())
            .map_err(DeliveryEventError::Certificate)?;
        self.verify_message_at(&message, &cert, now)
    }

    /// Verifies a parsed message with the certificate fetched from its
    /// [`signing_cert_url`](SnsMessage::signing_cert_url), and reads it.
    pub fn verify_message(&self, message: &SnsMessage, certificate: &[u8]) -> Result<SnsCallback> {
        self.verify_message_at(message, certificate, Utc::now())
    }

    /// As [`verify_message`](Self::verify_message), with `now` given.
    pub fn verify_message_at(
        &self,
        message: &SnsMessage,
        certificate: &[u8],
        now: DateTime<Utc>,
    ) -> Result<SnsCallback> {
        let key = public_key_of(certificate, now)?;
        let signature =
            base64_decode(message.field("Signature")?).ok_or(DeliveryEventError::BadSignature)?;
        let canonical = message.canonical()?;
        let verified = match message.field("SignatureVersion")? {
            "1" => key.pkcs1v15_verify::<sha1::Sha1>(canonical.as_bytes(), &signature),
            "2" => key.pkcs1v15_verify::<sha2::Sha256>(canonical.as_bytes(), &signature),
            other => {
                return Err(DeliveryEventError::UnsupportedSignatureVersion(
                    other.to_owned(),
                ));
            }
        };
        verified.map_err(|_| DeliveryEventError::BadSignature)?;

        let topic_arn = message.field("TopicArn")?;
        if !self.topic_arns.is_empty() && !self.topic_arns.iter().any(|t| t == topic_arn) {
            return Err(DeliveryEventError::UnexpectedTopic(topic_arn.to_owned()));
        }
        if let Some(max_age) = self.max_age {
            let sent = parse_rfc3339(message.field("Timestamp")?)
                .ok_or_else(|| malformed("bad Timestamp"))?;
            crate::util::check_fresh(sent.timestamp(), now, max_age)?;
        }
        match message.kind {
            SnsType::Notification => Ok(SnsCallback::Notification(parse_ses_notification(
                message.field("Message")?,
            )?)),
            kind => {
                let topic_arn = topic_arn.to_owned();
                let subscribe_url = message.field("SubscribeURL")?.to_owned();
                let token = message.field("Token")?.to_owned();
                Ok(if kind == SnsType::SubscriptionConfirmation {
                    SnsCallback::SubscriptionConfirmation {
                        topic_arn,
                        subscribe_url,
                        token,
                    }
                } else {
                    SnsCallback::UnsubscribeConfirmation {
                        topic_arn,
                        subscribe_url,
                        token,
                    }
                })
            }
        }
    }
}

/// The RSA public key of a PEM or DER certificate valid at `now`.
fn public_key_of(certificate: &[u8], now: DateTime<Utc>) -> Result<rsa::PublicKey> {
    let bad = |detail: String| DeliveryEventError::Certificate(detail);
    let cert = if certificate.trim_ascii_start().starts_with(b"-----BEGIN") {
        x509_cert::Certificate::from_pem(certificate).map_err(|e| bad(format!("bad PEM: {e}")))?
    } else {
        x509_cert::Certificate::from_der(certificate).map_err(|e| bad(format!("bad DER: {e}")))?
    };
    let validity = cert.tbs_certificate().validity();
    let now_secs = u64::try_from(now.timestamp()).unwrap_or(0);
    if now_secs < validity.not_before.to_unix_duration().as_secs()
        || now_secs > validity.not_after.to_unix_duration().as_secs()
    {
        return Err(bad("not valid now".into()));
    }
    let spki = cert
        .tbs_certificate()
        .subject_public_key_info()
        .to_der()
        .map_err(|e| bad(format!("bad public key: {e}")))?;
    rsa::PublicKey::from_public_key_der(&spki).map_err(|e| bad(format!("not an RSA key: {e}")))
}

/// Parses the SES notification JSON (the SNS `Message`) into delivery events.
///
/// ```
/// use notification_delivery_events::{DeliveryKind, ses::parse_ses_notification};
/// let events = parse_ses_notification(r#"{"notificationType":"Delivery",
///   "mail":{"timestamp":"2016-01-27T14:59:38.237Z","messageId":"0000014644fe5ef6-9a483358-9170-4cb4-a269-f5dcdf415321-000000"},
///   "delivery":{"timestamp":"2016-01-27T14:59:38.237Z","recipients":["jane@example.com"],
///     "smtpResponse":"250 ok:  Message 64111812 accepted"}}"#)?;
/// assert_eq!(events[0].kind, DeliveryKind::Delivered);
/// # Ok::<(), notification_delivery_events::DeliveryEventError>(())
/// ```
pub fn parse_ses_notification(message: &str) -> Result<Vec<DeliveryEvent>> {
    let value = parse_json(message.as_bytes())?;
    let kind = str_field(&value, "notificationType")
        .or_else(|| str_field(&value, "eventType"))
        .ok_or_else(|| malformed("SES message has neither notificationType nor eventType"))?;
    let mail = value.get("mail");
    let message_id = || {
        mail.and_then(|m| nonempty_field(m, "messageId"))
            .ok_or_else(|| malformed("no mail.messageId"))
    };
    let time_of = |section: &Value| -> Result<DateTime<Utc>> {
        str_field(section, "timestamp")
            .and_then(parse_rfc3339)
            .ok_or_else(|| malformed("no or bad timestamp"))
    };
    let event = |recipient: Option<String>, kind, reason, occurred_at| -> Result<DeliveryEvent> {
        Ok(DeliveryEvent {
            provider: Provider::AmazonSes,
            provider_message_id: message_id()?,
            // Message tags (X-SES-MESSAGE-TAGS), in event publishing records.
            notification_id: notification_id_in(mail.and_then(|m| m.get("tags"))),
            recipient,
            kind,
            reason,
            occurred_at,
        })
    };
    let section = |name: &str| {
        value
            .get(name)
            .ok_or_else(|| malformed(format!("no {name} object")))
    };
    let objects = |section: &Value, key: &str| -> Result<Vec<Value>> {
        match section.get(key) {
            Some(Value::Array(items)) => Ok(items.clone()),
            _ => Err(malformed(format!("no {key} array"))),
        }
    };
    let mail_destination = || -> Vec<Option<String>> {
        match mail
            .and_then(|m| m.get("destination"))
            .and_then(Value::as_array)
        {
            Some(d) if !d.is_empty() => d.iter().map(|v| v.as_str().map(str::to_owned)).collect(),
            _ => vec![None],
        }
    };
    let mut out = Vec::new();
    match kind {
        "Bounce" => {
            let bounce = section("bounce")?;
            let hard = match str_field(bounce, "bounceType") {
                Some("Permanent") => true,
                Some("Transient") | Some("Undetermined") => false,
                other => return Err(malformed(format!("bounceType {other:?}"))),
            };
            let at = time_of(bounce)?;
            let sub = nonempty_field(bounce, "bounceSubType");
            for r in objects(bounce, "bouncedRecipients")? {
                let reason = nonempty_field(&r, "diagnosticCode")
                    .or_else(|| nonempty_field(&r, "status"))
                    .or_else(|| sub.clone());
                out.push(event(
                    nonempty_field(&r, "emailAddress"),
                    DeliveryKind::Bounced { hard },
                    reason,
                    at,
                )?);
            }
        }
        "Complaint" => {
            let complaint = section("complaint")?;
            let at = time_of(complaint)?;
            let reason = nonempty_field(complaint, "complaintFeedbackType")
                .or_else(|| nonempty_field(complaint, "complaintSubType"));
            for r in objects(complaint, "complainedRecipients")? {
                out.push(event(
                    nonempty_field(&r, "emailAddress"),
                    DeliveryKind::Complained,
                    reason.clone(),
                    at,
                )?);
            }
        }
        "Delivery" => {
            let delivery = section("delivery")?;
            let at = time_of(delivery)?;
            let reason = nonempty_field(delivery, "smtpResponse");
            for r in objects(delivery, "recipients")? {
                out.push(event(
                    r.as_str().map(str::to_owned),
                    DeliveryKind::Delivered,
                    reason.clone(),
                    at,
                )?);
            }
        }
        "DeliveryDelay" => {
            let delay = section("deliveryDelay")?;
            let at = time_of(delay)?;
            let delay_type = nonempty_field(delay, "delayType");
            for r in objects(delay, "delayedRecipients")? {
                let reason = nonempty_field(&r, "diagnosticCode").or_else(|| delay_type.clone());
                out.push(event(
                    nonempty_field(&r, "emailAddress"),
                    DeliveryKind::Deferred,
                    reason,
                    at,
                )?);
            }
        }
        "Reject" | "Rendering Failure" => {
            let at = mail
                .ok_or_else(|| malformed("no mail object"))
                .and_then(time_of)?;
            let reason = value
                .get("reject")
                .and_then(|r| nonempty_field(r, "reason"))
                .or_else(|| {
                    value
                        .get("failure")
                        .and_then(|f| nonempty_field(f, "errorMessage"))
                });
            for recipient in mail_destination() {
                out.push(event(recipient, DeliveryKind::Failed, reason.clone(), at)?);
            }
        }
        _ => {}
    }
    Ok(out)
}
