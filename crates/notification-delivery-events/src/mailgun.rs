//! Mailgun webhooks (`delivered`, `failed`, `complained`, ...).
//!
//! Mailgun posts one JSON object per event:
//! `{"signature": {"timestamp", "token", "signature"}, "event-data": {...}}`, where
//! `signature` is the hex HMAC-SHA256, keyed with the domain's *HTTP webhook signing
//! key*, of `timestamp` followed by `token`. A timestamp further than the tolerance
//! (5 minutes by default) from now is refused as stale.
//!
//! Events mapped: `delivered` → [`Delivered`](DeliveryKind::Delivered); `failed`
//! with `severity` `permanent` → [`Bounced { hard: true }`](DeliveryKind::Bounced),
//! `temporary` → `Bounced { hard: false }`; `complained` →
//! [`Complained`](DeliveryKind::Complained); `rejected` →
//! [`Failed`](DeliveryKind::Failed). Engagement events (`opened`, `clicked`,
//! `unsubscribed`, `accepted`, `stored`) yield no event.
//!
//! Mailgun's tokens are single-use: to refuse replays within the tolerance window,
//! remember the tokens seen (see [`MailgunVerifier::verify_at`], which returns it).

use std::time::Duration;

use chrono::{DateTime, Utc};
use hmac::{Hmac, KeyInit, Mac};
use serde_json::Value;
use sha2::Sha256;

use crate::util::{
    check_fresh, from_unix_f64, malformed, nonempty_field, notification_id_in, parse_json,
    str_field, unhex,
};
use crate::{DeliveryEvent, DeliveryEventError, DeliveryKind, Headers, Provider, Result};

/// Verifies and parses Mailgun webhooks.
///
/// ```
/// use notification_delivery_events::{DeliveryKind, mailgun::MailgunVerifier};
///
/// let verifier = MailgunVerifier::new("key-signing");
/// let now = 1529006854;
/// let signature = MailgunVerifier::sign("key-signing", "1529006854", "a8ce0edb2dd8301d");
/// let body = format!(
///     r#"{{"signature": {{"timestamp": "1529006854", "token": "a8ce0edb2dd8301d",
///          "signature": "{signature}"}},
///        "event-data": {{"event": "delivered", "timestamp": 1529006854.32,
///          "recipient": "alice@example.com",
///          "message": {{"headers": {{"message-id": "20130503182626.18666.16540@example.org"}}}}}}}}"#
/// );
/// let now = chrono::DateTime::from_timestamp(now, 0).unwrap();
/// let events = verifier.parse_at(body.as_bytes(), &[] as &[(&str, &str)], now)?;
/// assert_eq!(events[0].kind, DeliveryKind::Delivered);
/// assert_eq!(events[0].provider_message_id, "20130503182626.18666.16540@example.org");
/// # Ok::<(), notification_delivery_events::DeliveryEventError>(())
/// ```
#[derive(Clone)]
pub struct MailgunVerifier {
    signing_key: Vec<u8>,
    tolerance: Duration,
}

impl std::fmt::Debug for MailgunVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MailgunVerifier")
            .field("signing_key", &"<redacted>")
            .field("tolerance", &self.tolerance)
            .finish()
    }
}

impl MailgunVerifier {
    /// The default tolerance between the signed timestamp and now: 5 minutes.
    pub const DEFAULT_TOLERANCE: Duration = Duration::from_secs(300);

    /// A verifier for the domain's HTTP webhook signing key.
    pub fn new(signing_key: impl AsRef<[u8]>) -> Self {
        MailgunVerifier {
            signing_key: signing_key.as_ref().to_vec(),
            tolerance: Self::DEFAULT_TOLERANCE,
        }
    }

    /// Sets how far the signed timestamp may be from now.
    pub fn with_tolerance(mut self, tolerance: Duration) -> Self {
        self.tolerance = tolerance;
        self
    }

    /// The hex signature Mailgun computes for `timestamp` and `token` (for tests and
    /// for sending test webhooks).
    ///
    /// ```
    /// # use notification_delivery_events::mailgun::MailgunVerifier;
    /// assert_eq!(MailgunVerifier::sign("k", "1", "t").len(), 64);
    /// ```
    pub fn sign(signing_key: impl AsRef<[u8]>, timestamp: &str, token: &str) -> String {
        let mut mac = hmac_for(signing_key.as_ref());
        mac.update(timestamp.as_bytes());
        mac.update(token.as_bytes());
        crate::util::hex(&mac.finalize().into_bytes())
    }

    /// Verifies and parses a webhook body, judging staleness against the clock.
    pub fn parse<H: Headers + ?Sized>(
        &self,
        body: &[u8],
        headers: &H,
    ) -> Result<Vec<DeliveryEvent>> {
        self.parse_at(body, headers, Utc::now())
    }

    /// As [`parse`](Self::parse), with `now` given. Mailgun's webhooks carry
    /// everything in the body: `headers` are not consulted.
    pub fn parse_at<H: Headers + ?Sized>(
        &self,
        body: &[u8],
        _headers: &H,
        now: DateTime<Utc>,
    ) -> Result<Vec<DeliveryEvent>> {
        let value = parse_json(body)?;
        self.verify_value(&value, now)?;
        let data = value
            .get("event-data")
            .ok_or_else(|| malformed("no event-data"))?;
        Ok(event_from(data)?.into_iter().collect())
    }

    /// Verifies the signature of a webhook body only; returns its token, to be
    /// remembered by callers that refuse replays.
    pub fn verify_at(&self, body: &[u8], now: DateTime<Utc>) -> Result<String> {
        let value = parse_json(body)?;
        self.verify_value(&value, now)
    }

    fn verify_value(&self, value: &Value, now: DateTime<Utc>) -> Result<String> {
        let sig = value
            .get("signature")
            .ok_or_else(|| malformed("no signature object"))?;
        let timestamp =
            str_field(sig, "timestamp").ok_or_else(|| malformed("no signature.timestamp"))?;
        let token = str_field(sig, "token").ok_or_else(|| malformed("no signature.token"))?;
        let signature =
            str_field(sig, "signature").ok_or_else(|| malformed("no signature.signature"))?;
        let expected = unhex(signature).ok_or(DeliveryEventError::BadSignature)?;
        let mut mac = hmac_for(&self.signing_key);
        mac.update(timestamp.as_bytes());
        mac.update(token.as_bytes());
        mac.verify_slice(&expected)
            .map_err(|_| DeliveryEventError::BadSignature)?;
        let ts: i64 = timestamp
            .parse()
            .map_err(|_| malformed("signature.timestamp is not an integer"))?;
        check_fresh(ts, now, self.tolerance)?;
        Ok(token.to_owned())
    }
}

fn hmac_for(key: &[u8]) -> Hmac<Sha256> {
    // HMAC takes keys of any length.
    <Hmac<Sha256> as KeyInit>::new_from_slice(key).unwrap_or_else(|_| unreachable_hmac())
}

#[cold]
fn unreachable_hmac() -> ! {
    unreachable!("HMAC accepts keys of any length")
}

fn event_from(data: &Value) -> Result<Option<DeliveryEvent>> {
    let event = str_field(data, "event").ok_or_else(|| malformed("no event-data.event"))?;
    let status = data.get("delivery-status");
    let kind = match event {
        "delivered" => DeliveryKind::Delivered,
        "failed" => match str_field(data, "severity") {
            Some("permanent") => DeliveryKind::Bounced { hard: true },
            Some("temporary") => DeliveryKind::Bounced { hard: false },
            other => {
                return Err(malformed(format!(
                    "failed event with severity {other:?} (neither permanent nor temporary)"
                )));
            }
        },
        "complained" => DeliveryKind::Complained,
        "rejected" => DeliveryKind::Failed,
        _ => return Ok(None),
    };
    let provider_message_id = data
        .get("message")
        .and_then(|m| m.get("headers"))
        .and_then(|h| nonempty_field(h, "message-id"))
        .ok_or_else(|| malformed("no event-data.message.headers.message-id"))?;
    let occurred_at = data
        .get("timestamp")
        .and_then(Value::as_f64)
        .and_then(from_unix_f64)
        .ok_or_else(|| malformed("no or bad event-data.timestamp"))?;
    let reason = status
        .and_then(|s| nonempty_field(s, "description").or_else(|| nonempty_field(s, "message")))
        .or_else(|| data.get("reject").and_then(|r| nonempty_field(r, "reason")))
        .or_else(|| nonempty_field(data, "reason"));
    Ok(Some(DeliveryEvent {
        provider: Provider::Mailgun,
        provider_message_id,
        notification_id: notification_id_in(data.get("user-variables")),
        recipient: nonempty_field(data, "recipient"),
        kind,
        reason,
        occurred_at,
    }))
}
