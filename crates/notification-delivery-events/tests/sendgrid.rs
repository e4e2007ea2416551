//! SendGrid's signed Event Webhook.
//!
//! Official vector: the verification key, payload, timestamp and signature below
//! are the ones SendGrid's own helper libraries test their `EventWebhook` against
//! (sendgrid-python, sendgrid-nodejs, sendgrid-java, ... `1588788367`).
//! The event sample (tests/fixtures/sendgrid_events.json) follows SendGrid's Event
//! Webhook reference; it is signed here with a P-256 test key made from a fixed
//! scalar (ECDSA signing per RFC 6979 is deterministic), per the documented
//! scheme: ECDSA-SHA256 over timestamp header + raw body, base64 DER.

mod common;

use common::{at, b64, fixture};
use notification_delivery_events::sendgrid::{
    SIGNATURE_HEADER, SendGridVerifier, TIMESTAMP_HEADER,
};
use notification_delivery_events::{DeliveryEventError, DeliveryKind, Provider};
use p256::ecdsa::signature::Signer as _;
use p256::ecdsa::{Signature, SigningKey};
use p256::pkcs8::EncodePublicKey as _;

const OFFICIAL_KEY: &str = "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEEDr2LjtURuePQzplybdC+u4CwrqDqBaWjcMMsTbhdbcwHBcepxo7yAQGhHPTnlvFYPAZFceEu/1FwCM/QmGUhA==";
const OFFICIAL_PAYLOAD: &str =
    r#"{"category":"example_payload","event":"test_event","message_id":"message_id"}"#;
const OFFICIAL_SIGNATURE: &str = "MEUCIQCtIHJeH93Y+qpYeWrySphQgpNGNr/U+UyUlBkU6n7RAwIgJTz2C+8a8xonZGi6BpSzoQsbVRamr2nlxFDWYNH2j/0=";
const OFFICIAL_TIMESTAMP: &str = "1588788367";
/// The "bad key" of the same libraries' tests.
const OTHER_KEY: &str = "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEqTxd43gyp8IOEto2LdIfjRQrIbsd4SXZkLW6jDutdhXSJCWHw8REntlo7aNDthvj+y7GjUuFDb/R1NGe1OPzpA==";

fn headers(signature: &str, timestamp: &str) -> Vec<(String, String)> {
    vec![
        (SIGNATURE_HEADER.to_owned(), signature.to_owned()),
        (TIMESTAMP_HEADER.to_owned(), timestamp.to_owned()),
        ("Content-Type".to_owned(), "application/json".to_owned()),
    ]
}

fn test_key(seed: u8) -> SigningKey {
    SigningKey::from_slice(&[seed; 32]).unwrap()
}

fn public_key_b64(key: &SigningKey) -> String {
    b64(key.verifying_key().to_public_key_der().unwrap().as_bytes())
}

fn sign(key: &SigningKey, timestamp: &str, body: &[u8]) -> String {
    let mut signed = timestamp.as_bytes().to_vec();
    signed.extend_from_slice(body);
    let sig: Signature = key.sign(&signed);
    b64(sig.to_der().as_bytes())
}

#[test]
fn official_vector_verifies() {
    let v = SendGridVerifier::new(OFFICIAL_KEY).unwrap();
    let h = headers(OFFICIAL_SIGNATURE, OFFICIAL_TIMESTAMP);
    v.verify_at(OFFICIAL_PAYLOAD.as_bytes(), &h, at(1588788367 + 5))
        .unwrap();
    // Verified, but not an array of events: malformed, not a signature failure.
    assert!(matches!(
        v.parse_at(OFFICIAL_PAYLOAD.as_bytes(), &h, at(1588788367)),
        Err(DeliveryEventError::Malformed(_))
    ));
    // It is from 2020: stale against the real clock unless the check is off.
    assert!(matches!(
        v.verify(OFFICIAL_PAYLOAD.as_bytes(), &h),
        Err(DeliveryEventError::StaleTimestamp { .. })
    ));
    v.clone()
        .without_timestamp_check()
        .verify(OFFICIAL_PAYLOAD.as_bytes(), &h)
        .unwrap();
}

#[test]
fn official_vector_modified_or_wrong_key_is_refused() {
    let v = SendGridVerifier::new(OFFICIAL_KEY)
        .unwrap()
        .without_timestamp_check();
    let h = headers(OFFICIAL_SIGNATURE, OFFICIAL_TIMESTAMP);
    let modified = OFFICIAL_PAYLOAD.replace("test_event", "test_evenu");
    assert_eq!(
        v.verify(modified.as_bytes(), &h),
        Err(DeliveryEventError::BadSignature)
    );
    // The timestamp is signed too.
    let h2 = headers(OFFICIAL_SIGNATURE, "1388788367");
    assert_eq!(
        v.verify(OFFICIAL_PAYLOAD.as_bytes(), &h2),
        Err(DeliveryEventError::BadSignature)
    );
    let other = SendGridVerifier::new(OTHER_KEY)
        .unwrap()
        .without_timestamp_check();
    assert_eq!(
        other.verify(OFFICIAL_PAYLOAD.as_bytes(), &h),
        Err(DeliveryEventError::BadSignature)
    );
}

#[test]
fn signed_sample_is_parsed_into_events() {
    let key = test_key(7);
    let v = SendGridVerifier::new(&public_key_b64(&key)).unwrap();
    let body = fixture("sendgrid_events.json");
    let ts = "1513299600";
    let h = headers(&sign(&key, ts, body.as_bytes()), ts);
    let events = v.parse_at(body.as_bytes(), &h, at(1513299600)).unwrap();
    let kinds: Vec<_> = events.iter().map(|e| e.kind).collect();
    assert_eq!(
        kinds,
        [
            DeliveryKind::Deferred,
            DeliveryKind::Delivered,
            DeliveryKind::Bounced { hard: true },
            DeliveryKind::Bounced { hard: false },
            DeliveryKind::Failed,
            DeliveryKind::Complained,
        ]
    );
    assert!(events.iter().all(|e| e.provider == Provider::SendGrid));
    assert_eq!(events[0].reason.as_deref(), Some("400 try again later"));
    assert_eq!(events[1].reason.as_deref(), Some("250 OK"));
    assert_eq!(
        events[1].provider_message_id,
        "14c5d75ce93.dfd.64b469.filter0001.16648.5515E0B88.000000000000000000000"
    );
    assert_eq!(events[2].recipient.as_deref(), Some("bounced@test.com"));
    assert_eq!(events[2].reason.as_deref(), Some("500 unknown recipient"));
    assert_eq!(events[3].recipient.as_deref(), Some("blocked@test.com"));
    assert_eq!(events[4].reason.as_deref(), Some("Bounced Address"));
    assert_eq!(events[5].recipient.as_deref(), Some("complainer@test.com"));
    assert_eq!(events[5].occurred_at.timestamp(), 1513299572);
}

#[test]
fn pem_public_key_is_accepted() {
    let key = test_key(9);
    let pem = key
        .verifying_key()
        .to_public_key_pem(Default::default())
        .unwrap();
    let v = SendGridVerifier::new(&pem).unwrap();
    let body = b"[]";
    let h = headers(&sign(&key, "1700000000", body), "1700000000");
    assert_eq!(v.parse_at(body, &h, at(1700000000)).unwrap(), vec![]);
}

#[test]
fn forged_signature_is_refused() {
    let key = test_key(7);
    let forger = test_key(8);
    let v = SendGridVerifier::new(&public_key_b64(&key)).unwrap();
    let body = fixture("sendgrid_events.json");
    let h = headers(&sign(&forger, "1513299600", body.as_bytes()), "1513299600");
    assert_eq!(
        v.parse_at(body.as_bytes(), &h, at(1513299600)),
        Err(DeliveryEventError::BadSignature)
    );
    let h = headers("bm90IGEgc2lnbmF0dXJl", "1513299600");
    assert_eq!(
        v.parse_at(body.as_bytes(), &h, at(1513299600)),
        Err(DeliveryEventError::BadSignature)
    );
    let h = headers("%%% not base64", "1513299600");
    assert_eq!(
        v.parse_at(body.as_bytes(), &h, at(1513299600)),
        Err(DeliveryEventError::BadSignature)
    );
}

#[test]
fn modified_body_is_refused() {
    let key = test_key(7);
    let v = SendGridVerifier::new(&public_key_b64(&key)).unwrap();
    let body = fixture("sendgrid_events.json");
    let h = headers(&sign(&key, "1513299600", body.as_bytes()), "1513299600");
    let modified = body.replace(r#""event":"bounce""#, r#""event":"delivered""#);
    assert_ne!(modified, body);
    assert_eq!(
        v.parse_at(modified.as_bytes(), &h, at(1513299600)),
        Err(DeliveryEventError::BadSignature)
    );
    let with_space = format!("{body} ");
    assert_eq!(
        v.parse_at(with_space.as_bytes(), &h, at(1513299600)),
        Err(DeliveryEventError::BadSignature)
    );
}

#[test]
fn missing_headers_are_refused() {
    let key = test_key(7);
    let v = SendGridVerifier::new(&public_key_b64(&key)).unwrap();
    let body = b"[]";
    let sig = sign(&key, "1513299600", body);
    let only_ts = [(TIMESTAMP_HEADER, "1513299600")];
    assert_eq!(
        v.parse_at(body, &only_ts[..], at(1513299600)),
        Err(DeliveryEventError::MissingHeader(SIGNATURE_HEADER))
    );
    let only_sig = [(SIGNATURE_HEADER, sig.as_str())];
    assert_eq!(
        v.parse_at(body, &only_sig[..], at(1513299600)),
        Err(DeliveryEventError::MissingHeader(TIMESTAMP_HEADER))
    );
    // Header names are case-insensitive.
    let lower = [
        ("x-twilio-email-event-webhook-signature", sig.as_str()),
        ("x-twilio-email-event-webhook-timestamp", "1513299600"),
    ];
    assert!(v.parse_at(body, &lower[..], at(1513299600)).is_ok());
}

#[test]
fn stale_timestamp_is_refused() {
    let key = test_key(7);
    let v = SendGridVerifier::new(&public_key_b64(&key)).unwrap();
    let body = b"[]";
    let h = headers(&sign(&key, "1513299600", body), "1513299600");
    assert_eq!(
        v.parse_at(body, &h, at(1513299600 + 301)),
        Err(DeliveryEventError::StaleTimestamp {
            timestamp: 1513299600,
            tolerance_secs: 300
        })
    );
    let lenient = v.with_tolerance(std::time::Duration::from_secs(600));
    assert!(lenient.parse_at(body, &h, at(1513299600 + 301)).is_ok());
}

#[test]
fn bad_public_keys_are_configuration_errors() {
    assert!(matches!(
        SendGridVerifier::new("not base64 !"),
        Err(DeliveryEventError::BadConfig(_))
    ));
    assert!(matches!(
        SendGridVerifier::new("AAAA"),
        Err(DeliveryEventError::BadConfig(_))
    ));
}

/// The notification id the email channel sent as a unique argument
/// (`X-SMTPAPI: {"unique_args":{"notification_id":…}}`) comes back as a
/// top-level field of each event, beside SendGrid's own `sg_message_id`.
#[test]
fn unique_args_carry_the_notification_id() {
    let id = "0190a5c2-7b3e-7c41-9d2a-5f1e8b6c4d3a";
    let body = format!(
        r#"[{{"email":"bounced@test.com","timestamp":1513299569,"smtp-id":"<0190a5c27b3e7c419d2a5f1e8b6c4d3a@example.com>","event":"bounce","category":"cat facts","sg_event_id":"6g4ZI7SA-xmRDv57GoPIPw==","sg_message_id":"14c5d75ce93.dfd.64b469.filter0001.16648.5515E0B88.0","reason":"500 unknown recipient","status":"5.0.0","type":"bounce","notification_id":"{id}"}},
{{"email":"example@test.com","timestamp":1513299569,"event":"delivered","sg_message_id":"14c5d75ce93.dfd.64b469.filter0001.16648.5515E0B88.1","response":"250 OK"}}]"#
    );
    let key = test_key(7);
    let v = SendGridVerifier::new(&public_key_b64(&key)).unwrap();
    let ts = "1513299569";
    let h = headers(&sign(&key, ts, body.as_bytes()), ts);
    let events = v.parse_at(body.as_bytes(), &h, at(1513299569)).unwrap();
    assert_eq!(events.len(), 2);
    assert_eq!(events[0].notification_id, Some(id.parse().unwrap()));
    assert_eq!(events[0].kind, DeliveryKind::Bounced { hard: true });
    assert_eq!(events[1].notification_id, None);
    // Forged: signed by another key, or changed after signing.
    let forged = headers(&sign(&test_key(8), ts, body.as_bytes()), ts);
    assert_eq!(
        v.parse_at(body.as_bytes(), &forged, at(1513299569)),
        Err(DeliveryEventError::BadSignature)
    );
    let tampered = body.replace(id, "0190a5c2-7b3e-7c41-9d2a-000000000000");
    assert_eq!(
        v.parse_at(tampered.as_bytes(), &h, at(1513299569)),
        Err(DeliveryEventError::BadSignature)
    );
}
