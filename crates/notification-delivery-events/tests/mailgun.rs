//! Mailgun webhooks. The sample bodies (tests/fixtures/mailgun_*.json) follow the
//! sample payloads of Mailgun's webhook documentation; their signatures are
//! computed here with a test signing key (Mailgun publishes no key for its
//! samples), per the documented scheme: hex HMAC-SHA256(key, timestamp + token).

mod common;

use common::{at, fixture};
use notification_delivery_events::mailgun::MailgunVerifier;
use notification_delivery_events::{DeliveryEventError, DeliveryKind, Provider};
use std::time::Duration;

const KEY: &str = "key-3ax6xnjp29jd6fds4gc373sgvjxteol0";
const NO_HEADERS: &[(&str, &str)] = &[];

/// The fixture with its signature computed with `key`, and its signed timestamp.
fn signed(name: &str, key: &str) -> (String, i64) {
    let body = fixture(name);
    let value: serde_json::Value = serde_json::from_str(&body).unwrap();
    let ts = value["signature"]["timestamp"].as_str().unwrap().to_owned();
    let token = value["signature"]["token"].as_str().unwrap();
    let sig = MailgunVerifier::sign(key, &ts, token);
    (body.replace("SIGNATURE", &sig), ts.parse().unwrap())
}

#[test]
fn delivered_sample_is_parsed() {
    let (body, ts) = signed("mailgun_delivered.json", KEY);
    let events = MailgunVerifier::new(KEY)
        .parse_at(body.as_bytes(), NO_HEADERS, at(ts + 10))
        .unwrap();
    assert_eq!(events.len(), 1);
    let e = &events[0];
    assert_eq!(e.provider, Provider::Mailgun);
    assert_eq!(e.kind, DeliveryKind::Delivered);
    assert_eq!(
        e.provider_message_id,
        "20130503182626.18666.16540@sandbox.mgsend.net"
    );
    assert_eq!(e.recipient.as_deref(), Some("alice@example.com"));
    assert_eq!(e.reason.as_deref(), Some("OK"));
    assert_eq!(e.occurred_at.timestamp(), 1521472262);
    assert_eq!(e.occurred_at.timestamp_subsec_micros(), 908181);
}

#[test]
fn permanent_failure_is_a_hard_bounce() {
    let (body, ts) = signed("mailgun_failed_permanent.json", KEY);
    let events = MailgunVerifier::new(KEY)
        .parse_at(body.as_bytes(), NO_HEADERS, at(ts))
        .unwrap();
    assert_eq!(events[0].kind, DeliveryKind::Bounced { hard: true });
    assert_eq!(
        events[0].reason.as_deref(),
        Some("Not delivering to previously bounced address")
    );
    assert_eq!(
        events[0].provider_message_id,
        "20130503192659.13651.20287@sandbox.mgsend.net"
    );
}

#[test]
fn temporary_failure_is_a_soft_bounce() {
    let (body, ts) = signed("mailgun_failed_temporary.json", KEY);
    let events = MailgunVerifier::new(KEY)
        .parse_at(body.as_bytes(), NO_HEADERS, at(ts))
        .unwrap();
    assert_eq!(events[0].kind, DeliveryKind::Bounced { hard: false });
    assert_eq!(
        events[0].reason.as_deref(),
        Some("4.2.2 The email account that you tried to reach is over quota.")
    );
}

#[test]
fn complaint_is_parsed() {
    let (body, ts) = signed("mailgun_complained.json", KEY);
    let events = MailgunVerifier::new(KEY)
        .parse_at(body.as_bytes(), NO_HEADERS, at(ts))
        .unwrap();
    assert_eq!(events[0].kind, DeliveryKind::Complained);
    assert_eq!(events[0].recipient.as_deref(), Some("alice@example.com"));
}

#[test]
fn engagement_events_yield_nothing() {
    let (body, ts) = signed("mailgun_delivered.json", KEY);
    let body = body.replace(r#""event": "delivered""#, r#""event": "opened""#);
    let events = MailgunVerifier::new(KEY)
        .parse_at(body.as_bytes(), NO_HEADERS, at(ts))
        .unwrap();
    assert!(events.is_empty());
}

#[test]
fn forged_signature_is_refused() {
    let (body, ts) = signed("mailgun_delivered.json", "key-of-someone-else");
    assert_eq!(
        MailgunVerifier::new(KEY).parse_at(body.as_bytes(), NO_HEADERS, at(ts)),
        Err(DeliveryEventError::BadSignature)
    );
    let (body, _) = signed("mailgun_delivered.json", KEY);
    let value: serde_json::Value = serde_json::from_str(&body).unwrap();
    let sig = value["signature"]["signature"].as_str().unwrap();
    let mut flipped = sig.to_owned().into_bytes();
    flipped[0] = if flipped[0] == b'0' { b'1' } else { b'0' };
    let body = body.replace(sig, std::str::from_utf8(&flipped).unwrap());
    assert_eq!(
        MailgunVerifier::new(KEY).parse_at(body.as_bytes(), NO_HEADERS, at(ts)),
        Err(DeliveryEventError::BadSignature)
    );
}

#[test]
fn modified_signed_fields_are_refused() {
    // Mailgun signs timestamp + token (not event-data): changing either breaks it.
    let (body, ts) = signed("mailgun_delivered.json", KEY);
    let new_ts = body.replace(
        r#""timestamp": "1521472262""#,
        r#""timestamp": "1521472263""#,
    );
    assert_ne!(new_ts, body);
    assert_eq!(
        MailgunVerifier::new(KEY).parse_at(new_ts.as_bytes(), NO_HEADERS, at(ts)),
        Err(DeliveryEventError::BadSignature)
    );
    let new_token = body.replace("a8ce0edb2dd8301dee6c", "a8ce0edb2dd8301dee6d");
    assert_ne!(new_token, body);
    assert_eq!(
        MailgunVerifier::new(KEY).parse_at(new_token.as_bytes(), NO_HEADERS, at(ts)),
        Err(DeliveryEventError::BadSignature)
    );
}

#[test]
fn missing_signature_is_refused() {
    let (body, ts) = signed("mailgun_delivered.json", KEY);
    let mut value: serde_json::Value = serde_json::from_str(&body).unwrap();
    value.as_object_mut().unwrap().remove("signature");
    let err = MailgunVerifier::new(KEY)
        .parse_at(value.to_string().as_bytes(), NO_HEADERS, at(ts))
        .unwrap_err();
    assert!(matches!(err, DeliveryEventError::Malformed(_)), "{err:?}");
}

#[test]
fn stale_timestamps_are_refused_with_configurable_tolerance() {
    let (body, ts) = signed("mailgun_delivered.json", KEY);
    let verifier = MailgunVerifier::new(KEY);
    assert_eq!(
        verifier.parse_at(body.as_bytes(), NO_HEADERS, at(ts + 301)),
        Err(DeliveryEventError::StaleTimestamp {
            timestamp: ts,
            tolerance_secs: 300
        })
    );
    // From the future too (a clock far ahead is as suspicious).
    assert!(
        verifier
            .parse_at(body.as_bytes(), NO_HEADERS, at(ts - 301))
            .is_err()
    );
    let lenient = MailgunVerifier::new(KEY).with_tolerance(Duration::from_secs(3600));
    assert!(
        lenient
            .parse_at(body.as_bytes(), NO_HEADERS, at(ts + 3000))
            .is_ok()
    );
    // The wall-clock entry point: the 2018 sample is stale today.
    assert!(matches!(
        verifier.parse(body.as_bytes(), NO_HEADERS),
        Err(DeliveryEventError::StaleTimestamp { .. })
    ));
}

#[test]
fn verify_at_returns_the_token_for_replay_checks() {
    let (body, ts) = signed("mailgun_delivered.json", KEY);
    let token = MailgunVerifier::new(KEY)
        .verify_at(body.as_bytes(), at(ts))
        .unwrap();
    assert_eq!(token, "a8ce0edb2dd8301dee6c2405235584e45aa91d1e9f979f3de0");
}

#[test]
fn signature_is_hmac_sha256_of_timestamp_then_token() {
    // Mailgun publishes no signing key for its samples, so the scheme is pinned to
    // RFC 4231's HMAC-SHA256 test case 2 (key "Jefe"), split into timestamp + token.
    assert_eq!(
        MailgunVerifier::sign("Jefe", "what do ya want ", "for nothing?"),
        "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
    );
}

/// The notification id the email channel sent in `X-Mailgun-Variables` comes
/// back in `user-variables`; other variables, or none, give no id.
#[test]
fn user_variables_carry_the_notification_id() {
    let (body, ts) = signed("mailgun_failed_permanent_variables.json", KEY);
    let events = MailgunVerifier::new(KEY)
        .parse_at(body.as_bytes(), NO_HEADERS, at(ts))
        .unwrap();
    assert_eq!(
        events[0].notification_id,
        Some("0190a5c2-7b3e-7c41-9d2a-5f1e8b6c4d3a".parse().unwrap())
    );
    assert_eq!(events[0].kind, DeliveryKind::Bounced { hard: true });
    let (plain, ts) = signed("mailgun_failed_permanent.json", KEY);
    let plain = MailgunVerifier::new(KEY)
        .parse_at(plain.as_bytes(), NO_HEADERS, at(ts))
        .unwrap();
    assert_eq!(plain[0].notification_id, None);
    // Signed with another key: refused, whatever it carries.
    let (forged, ts) = signed("mailgun_failed_permanent_variables.json", "another-key");
    assert_eq!(
        MailgunVerifier::new(KEY).parse_at(forged.as_bytes(), NO_HEADERS, at(ts)),
        Err(DeliveryEventError::BadSignature)
    );
}
