//! Postmark webhooks (Delivery, Bounce, SpamComplaint).
//!
//! Postmark does not sign its webhooks; it authenticates them with HTTP basic auth
//! put in the webhook URL (`https://user:password@example.com/hooks/postmark`),
//! sent as the `Authorization: Basic …` header. [`PostmarkVerifier`] compares it
//! with the configured credentials in constant time (digests of both are compared,
//! so not even their lengths leak).
//!
//! The body is one JSON object. `RecordType`:
//! - `Delivery` → [`Delivered`](DeliveryKind::Delivered) (`Recipient`, `DeliveredAt`, `Details`);
//! - `Bounce` → by `Type`: `HardBounce`, `BadEmailAddress`, `ManuallyDeactivated`,
//!   `Unsubscribe`, `DMARCPolicy` → [`Bounced { hard: true }`](DeliveryKind::Bounced);
//!   `SpamComplaint` → [`Complained`](DeliveryKind::Complained); `SMTPApiError`,
//!   `TemplateRenderingFailed`, `InboundError` → [`Failed`](DeliveryKind::Failed);
//!   `AutoResponder`, `AddressChange`, `Subscribe`, `ChallengeVerification`,
//!   `OpenRelayTest` → no event (not a delivery outcome); any other type
//!   (`SoftBounce`, `Transient`, `DnsError`, `Blocked`, `Unknown`, …) →
//!   `Bounced { hard: false }`;
//! - `SpamComplaint` → [`Complained`](DeliveryKind::Complained);
//! - `Open`, `Click`, `SubscriptionChange` → no event.

use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq as _;

use crate::util::{
    base64_decode, malformed, nonempty_field, notification_id_in, parse_json, parse_rfc3339,
    str_field,
};
use crate::{
    DeliveryEvent, DeliveryEventError, DeliveryKind, Headers, Provider, Result, required_header,
};

/// The header carrying the basic-auth credentials.
pub const AUTHORIZATION_HEADER: &str = "Authorization";

/// Authenticates and parses Postmark webhooks.
///
/// ```
/// use notification_delivery_events::{DeliveryEventError, postmark::PostmarkVerifier};
///
/// let verifier = PostmarkVerifier::new("hooks", "s3cret");
/// let wrong = [("Authorization", "Basic aG9va3M6d3Jvbmc=")]; // hooks:wrong
/// assert_eq!(verifier.parse(b"{}", &wrong[..]), Err(DeliveryEventError::BadCredentials));
/// ```
#[derive(Clone)]
pub struct PostmarkVerifier {
    expected: [u8; 32],
}

impl std::fmt::Debug for PostmarkVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostmarkVerifier").finish_non_exhaustive()
    }
}

impl PostmarkVerifier {
    /// A verifier for the user and password put in the webhook URL.
    pub fn new(user: &str, password: &str) -> Self {
        PostmarkVerifier {
            expected: digest_credentials(format!("{user}:{password}").as_bytes()),
        }
    }

    /// Checks the `Authorization` header only.
    pub fn authenticate<H: Headers + ?Sized>(&self, headers: &H) -> Result<()> {
        let value = required_header(headers, AUTHORIZATION_HEADER)?;
        let (scheme, credentials) = value
            .trim()
            .split_once(' ')
            .ok_or(DeliveryEventError::BadCredentials)?;
        if !scheme.eq_ignore_ascii_case("basic") {
            return Err(DeliveryEventError::BadCredentials);
        }
        let decoded = base64_decode(credentials).ok_or(DeliveryEventError::BadCredentials)?;
        let given = digest_credentials(&decoded);
        if bool::from(given.ct_eq(&self.expected)) {
            Ok(())
        } else {
            Err(DeliveryEventError::BadCredentials)
        }
    }

    /// Authenticates and parses a webhook.
    pub fn parse<H: Headers + ?Sized>(
        &self,
        body: &[u8],
        headers: &H,
    ) -> Result<Vec<DeliveryEvent>> {
        self.authenticate(headers)?;
        parse_record(body)
    }
}

fn digest_credentials(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

fn parse_record(body: &[u8]) -> Result<Vec<DeliveryEvent>> {
    let value = parse_json(body)?;
    let record_type = str_field(&value, "RecordType").ok_or_else(|| malformed("no RecordType"))?;
    let (kind, recipient_field, time_field, reason) = match record_type {
        "Delivery" => (
            DeliveryKind::Delivered,
            "Recipient",
            "DeliveredAt",
            nonempty_field(&value, "Details"),
        ),
        "Bounce" => {
            let bounce_type = str_field(&value, "Type").unwrap_or("Unknown");
            let kind = match bounce_type {
                "HardBounce"
                | "BadEmailAddress"
                | "ManuallyDeactivated"
                | "Unsubscribe"
                | "DMARCPolicy" => DeliveryKind::Bounced { hard: true },
                "SpamComplaint" => DeliveryKind::Complained,
                "SMTPApiError" | "TemplateRenderingFailed" | "InboundError" => DeliveryKind::Failed,
                "AutoResponder"
                | "AddressChange"
                | "Subscribe"
                | "ChallengeVerification"
                | "OpenRelayTest" => return Ok(Vec::new()),
                _ => DeliveryKind::Bounced { hard: false },
            };
            (kind, "Email", "BouncedAt", bounce_reason(&value))
        }
        "SpamComplaint" => (
            DeliveryKind::Complained,
            "Email",
            "BouncedAt",
            bounce_reason(&value),
        ),
        _ => return Ok(Vec::new()),
    };
    let provider_message_id =
        nonempty_field(&value, "MessageID").ok_or_else(|| malformed("no MessageID"))?;
    let occurred_at = str_field(&value, time_field)
        .and_then(parse_rfc3339)
        .ok_or_else(|| malformed(format!("no or bad {time_field}")))?;
    Ok(vec![DeliveryEvent {
        provider: Provider::Postmark,
        provider_message_id,
        notification_id: notification_id_in(value.get("Metadata")),
        recipient: nonempty_field(&value, recipient_field),
        kind,
        reason,
        occurred_at,
    }])
}

fn bounce_reason(value: &serde_json::Value) -> Option<String> {
    match (
        nonempty_field(value, "Description"),
        nonempty_field(value, "Details"),
    ) {
        (Some(d), Some(details)) => Some(format!("{d} ({details})")),
        (d, details) => d.or(details),
    }
}
