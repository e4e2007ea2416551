//! SendGrid (Twilio SendGrid) signed Event Webhook.
//!
//! SendGrid posts a JSON array of events. With *Signed Event Webhook Requests*
//! enabled, each request carries `X-Twilio-Email-Event-Webhook-Signature` (base64 of
//! a DER ECDSA P-256/SHA-256 signature) over the bytes of the
//! `X-Twilio-Email-Event-Webhook-Timestamp` header followed by the raw body. The
//! verification key shown in SendGrid's settings is base64 DER
//! SubjectPublicKeyInfo, which is what [`SendGridVerifier::new`] takes.
//!
//! Events mapped: `delivered` → [`Delivered`](DeliveryKind::Delivered); `bounce`
//! with `type` `bounce` (or none) → [`Bounced { hard: true }`](DeliveryKind::Bounced),
//! `type` `blocked` → `Bounced { hard: false }`; `dropped` →
//! [`Failed`](DeliveryKind::Failed); `spamreport` →
//! [`Complained`](DeliveryKind::Complained); `deferred` →
//! [`Deferred`](DeliveryKind::Deferred). `processed`, `open`, `click`,
//! `unsubscribe`, `group_unsubscribe`, `group_resubscribe` yield no event.

use std::time::Duration;

use chrono::{DateTime, Utc};
use p256::ecdsa::signature::Verifier as _;
use p256::ecdsa::{Signature, VerifyingKey};
use p256::pkcs8::DecodePublicKey as _;
use serde_json::Value;

use crate::util::{
    base64_decode, check_fresh, from_unix, malformed, nonempty_field, notification_id_in,
    parse_json,
};
use crate::{
    DeliveryEvent, DeliveryEventError, DeliveryKind, Headers, Provider, Result, required_header,
};

/// The signature header.
pub const SIGNATURE_HEADER: &str = "X-Twilio-Email-Event-Webhook-Signature";
/// The timestamp header.
pub const TIMESTAMP_HEADER: &str = "X-Twilio-Email-Event-Webhook-Timestamp";

/// Verifies and parses SendGrid's signed Event Webhook.
///
/// ```
/// use notification_delivery_events::sendgrid::SendGridVerifier;
///
/// // The verification key and signed request of SendGrid's own helper libraries' tests.
/// let verifier = SendGridVerifier::new(
///     "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEEDr2LjtURuePQzplybdC+u4CwrqDqBaWjcMMsTbhdbcwHBcepxo7yAQGhHPTnlvFYPAZFceEu/1FwCM/QmGUhA==",
/// )?
/// .without_timestamp_check();
/// let body = br#"{"category":"example_payload","event":"test_event","message_id":"message_id"}"#;
/// let headers = [
///     ("X-Twilio-Email-Event-Webhook-Signature",
///      "MEUCIQCtIHJeH93Y+qpYeWrySphQgpNGNr/U+UyUlBkU6n7RAwIgJTz2C+8a8xonZGi6BpSzoQsbVRamr2nlxFDWYNH2j/0="),
///     ("X-Twilio-Email-Event-Webhook-Timestamp", "1588788367"),
/// ];
/// verifier.verify(body, &headers[..])?;
/// # Ok::<(), notification_delivery_events::DeliveryEventError>(())
/// ```
#[derive(Debug, Clone)]
pub struct SendGridVerifier {
    key: VerifyingKey,
    tolerance: Option<Duration>,
}

impl SendGridVerifier {
    /// The default tolerance between the timestamp header and now: 5 minutes.
    pub const DEFAULT_TOLERANCE: Duration = Duration::from_secs(300);

    /// A verifier for SendGrid's verification key (base64 DER SubjectPublicKeyInfo of
    /// a P-256 key, as the settings page shows it; a PEM `PUBLIC KEY` block is
    /// accepted too).
    pub fn new(public_key: &str) -> Result<Self> {
        let b64: String = public_key
            .lines()
            .filter(|l| !l.starts_with("-----"))
            .flat_map(|l| l.trim().chars())
            .collect();
        let der = base64_decode(&b64)
            .ok_or_else(|| DeliveryEventError::BadConfig("public key is not base64".into()))?;
        let key = VerifyingKey::from_public_key_der(&der).map_err(|e| {
            DeliveryEventError::BadConfig(format!("public key is not P-256 SPKI DER: {e}"))
        })?;
        Ok(SendGridVerifier {
            key,
            tolerance: Some(Self::DEFAULT_TOLERANCE),
        })
    }

    /// Sets how far the timestamp header may be from now.
    pub fn with_tolerance(mut self, tolerance: Duration) -> Self {
        self.tolerance = Some(tolerance);
        self
    }

    /// Accepts any timestamp (the signature still covers it). For replaying
    /// recorded requests; not for production.
    pub fn without_timestamp_check(mut self) -> Self {
        self.tolerance = None;
        self
    }

    /// Verifies the signature of a request, judging staleness against the clock.
    pub fn verify<H: Headers + ?Sized>(&self, body: &[u8], headers: &H) -> Result<()> {
        self.verify_at(body, headers, Utc::now())
    }

    /// As [`verify`](Self::verify), with `now` given.
    pub fn verify_at<H: Headers + ?Sized>(
        &self,
        body: &[u8],
        headers: &H,
        now: DateTime<Utc>,
    ) -> Result<()> {
        let signature = required_header(headers, SIGNATURE_HEADER)?;
        let timestamp = required_header(headers, TIMESTAMP_HEADER)?;
        let der = base64_decode(signature).ok_or(DeliveryEventError::BadSignature)?;
        let signature = Signature::from_der(&der).map_err(|_| DeliveryEventError::BadSignature)?;
        let mut signed = Vec::with_capacity(timestamp.len() + body.len());
        signed.extend_from_slice(timestamp.as_bytes());
        signed.extend_from_slice(body);
        self.key
            .verify(&signed, &signature)
            .map_err(|_| DeliveryEventError::BadSignature)?;
        if let Some(tolerance) = self.tolerance {
            let ts: i64 = timestamp
                .trim()
                .parse()
                .map_err(|_| malformed("timestamp header is not an integer"))?;
            check_fresh(ts, now, tolerance)?;
        }
        Ok(())
    }

    /// Verifies and parses a request, judging staleness against the clock.
    pub fn parse<H: Headers + ?Sized>(
        &self,
        body: &[u8],
        headers: &H,
    ) -> Result<Vec<DeliveryEvent>> {
        self.parse_at(body, headers, Utc::now())
    }

    /// As [`parse`](Self::parse), with `now` given.
    pub fn parse_at<H: Headers + ?Sized>(
        &self,
        body: &[u8],
        headers: &H,
        now: DateTime<Utc>,
    ) -> Result<Vec<DeliveryEvent>> {
        self.verify_at(body, headers, now)?;
        parse_events(body)
    }
}

/// Parses an (already verified) Event Webhook body.
fn parse_events(body: &[u8]) -> Result<Vec<DeliveryEvent>> {
    let value = parse_json(body)?;
    let events = value
        .as_array()
        .ok_or_else(|| malformed("body is not a JSON array of events"))?;
    let mut out = Vec::new();
    for (i, e) in events.iter().enumerate() {
        let name = e
            .get("event")
            .and_then(Value::as_str)
            .ok_or_else(|| malformed(format!("event {i} has no event name")))?;
        let kind = match name {
            "delivered" => DeliveryKind::Delivered,
            "bounce" => match e.get("type").and_then(Value::as_str) {
                Some("blocked") => DeliveryKind::Bounced { hard: false },
                _ => DeliveryKind::Bounced { hard: true },
            },
            "dropped" => DeliveryKind::Failed,
            "spamreport" => DeliveryKind::Complained,
            "deferred" => DeliveryKind::Deferred,
            _ => continue,
        };
        let provider_message_id = nonempty_field(e, "sg_message_id")
            .ok_or_else(|| malformed(format!("event {i} ({name}) has no sg_message_id")))?;
        let occurred_at = e
            .get("timestamp")
            .and_then(Value::as_i64)
            .and_then(from_unix)
            .ok_or_else(|| malformed(format!("event {i} ({name}) has no or a bad timestamp")))?;
        let reason = nonempty_field(e, "reason").or_else(|| nonempty_field(e, "response"));
        out.push(DeliveryEvent {
            provider: Provider::SendGrid,
            provider_message_id,
            // unique_args (X-SMTPAPI) and custom_args come back as top-level
            // fields of the event.
            notification_id: notification_id_in(Some(e)),
            recipient: nonempty_field(e, "email"),
            kind,
            reason,
            occurred_at,
        });
    }
    Ok(out)
}
