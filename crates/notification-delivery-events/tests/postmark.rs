//! Postmark webhooks. The sample bodies (tests/fixtures/postmark_*.json) follow the
//! example payloads of Postmark's webhook documentation. Postmark authenticates
//! webhooks with HTTP basic auth only (no signature covers the body), so "a
//! modified body" cannot be detected by design: what is tested is that wrong,
//! missing or malformed credentials are refused.

mod common;

use common::{b64, fixture, rfc3339};
use notification_delivery_events::postmark::PostmarkVerifier;
use notification_delivery_events::{DeliveryEventError, DeliveryKind, Provider};

fn auth(user: &str, password: &str) -> Vec<(String, String)> {
    vec![(
        "Authorization".to_owned(),
        format!("Basic {}", b64(format!("{user}:{password}").as_bytes())),
    )]
}

fn verifier() -> PostmarkVerifier {
    PostmarkVerifier::new("postmark", "correct horse battery staple")
}

fn good() -> Vec<(String, String)> {
    auth("postmark", "correct horse battery staple")
}

#[test]
fn delivery_sample_is_parsed() {
    let events = verifier()
        .parse(fixture("postmark_delivery.json").as_bytes(), &good())
        .unwrap();
    assert_eq!(events.len(), 1);
    let e = &events[0];
    assert_eq!(e.provider, Provider::Postmark);
    assert_eq!(e.kind, DeliveryKind::Delivered);
    assert_eq!(
        e.provider_message_id,
        "883953f4-6105-42a2-a16a-77a8eac79483"
    );
    assert_eq!(e.recipient.as_deref(), Some("john@example.com"));
    assert_eq!(e.reason.as_deref(), Some("Test delivery webhook details"));
    assert_eq!(e.occurred_at, rfc3339("2019-11-05T16:33:54.9070259Z"));
}

#[test]
fn hard_bounce_sample_is_parsed() {
    let events = verifier()
        .parse(fixture("postmark_bounce_hard.json").as_bytes(), &good())
        .unwrap();
    let e = &events[0];
    assert_eq!(e.kind, DeliveryKind::Bounced { hard: true });
    assert_eq!(e.recipient.as_deref(), Some("john@example.com"));
    assert_eq!(
        e.reason.as_deref(),
        Some(
            "The server was unable to deliver your message (ex: unknown user, mailbox not found). (Test bounce details)"
        )
    );
}

#[test]
fn soft_bounce_sample_is_parsed() {
    let events = verifier()
        .parse(fixture("postmark_bounce_soft.json").as_bytes(), &good())
        .unwrap();
    assert_eq!(events[0].kind, DeliveryKind::Bounced { hard: false });
    assert_eq!(
        events[0].provider_message_id,
        "4b7c2e1a-0f3d-4e5b-9a8c-7d6e5f4a3b2c"
    );
}

#[test]
fn spam_complaint_sample_is_parsed() {
    let events = verifier()
        .parse(fixture("postmark_spam_complaint.json").as_bytes(), &good())
        .unwrap();
    assert_eq!(events[0].kind, DeliveryKind::Complained);
    assert_eq!(
        events[0].reason.as_deref(),
        Some("Test spam complaint details")
    );
}

#[test]
fn bounce_types_map_to_kinds() {
    let body = fixture("postmark_bounce_hard.json");
    for (ty, expected) in [
        ("Transient", Some(DeliveryKind::Bounced { hard: false })),
        ("DnsError", Some(DeliveryKind::Bounced { hard: false })),
        (
            "BadEmailAddress",
            Some(DeliveryKind::Bounced { hard: true }),
        ),
        ("SpamComplaint", Some(DeliveryKind::Complained)),
        ("SMTPApiError", Some(DeliveryKind::Failed)),
        ("AutoResponder", None),
    ] {
        let body = body.replace(r#""Type": "HardBounce""#, &format!(r#""Type": "{ty}""#));
        let events = verifier().parse(body.as_bytes(), &good()).unwrap();
        assert_eq!(events.first().map(|e| e.kind), expected, "{ty}");
    }
    let open = r#"{"RecordType":"Open","MessageID":"x","Recipient":"a@b.c","ReceivedAt":"2019-11-05T16:33:54Z"}"#;
    assert!(
        verifier()
            .parse(open.as_bytes(), &good())
            .unwrap()
            .is_empty()
    );
}

#[test]
fn wrong_credentials_are_refused() {
    let body = fixture("postmark_delivery.json");
    for headers in [
        auth("postmark", "wrong"),
        auth("someone", "correct horse battery staple"),
        auth("postmark", "correct horse battery staple "),
        auth("", ""),
        vec![("Authorization".to_owned(), "Bearer abc".to_owned())],
        vec![("Authorization".to_owned(), "Basic %%%".to_owned())],
        vec![("Authorization".to_owned(), "Basic".to_owned())],
    ] {
        assert_eq!(
            verifier().parse(body.as_bytes(), &headers),
            Err(DeliveryEventError::BadCredentials),
            "{headers:?}"
        );
    }
}

#[test]
fn missing_authorization_header_is_refused() {
    let body = fixture("postmark_delivery.json");
    let headers = [("Content-Type", "application/json")];
    assert_eq!(
        verifier().parse(body.as_bytes(), &headers[..]),
        Err(DeliveryEventError::MissingHeader("Authorization"))
    );
}

#[test]
fn authenticated_but_malformed_bodies_are_malformed() {
    for body in [
        &b"not json"[..],
        b"{}",
        br#"{"RecordType":"Delivery"}"#,
        br#"{"RecordType":"Delivery","MessageID":"x","DeliveredAt":"yesterday"}"#,
    ] {
        assert!(
            matches!(
                verifier().parse(body, &good()),
                Err(DeliveryEventError::Malformed(_))
            ),
            "{}",
            String::from_utf8_lossy(body)
        );
    }
}

/// The notification id the email channel sent in
/// `X-PM-Metadata-notification_id` comes back in `Metadata`; other metadata
/// (the documented sample's) gives no id, nor does a value that is not a UUID.
#[test]
fn metadata_carries_the_notification_id() {
    let id = "0190a5c2-7b3e-7c41-9d2a-5f1e8b6c4d3a";
    let body = fixture("postmark_bounce_hard.json").replace(
        r#""Metadata": {"a_key": "a_value", "b_key": "b_value"}"#,
        &format!(r#""Metadata": {{"a_key": "a_value", "notification_id": "{id}"}}"#),
    );
    assert!(body.contains(id));
    let events = verifier().parse(body.as_bytes(), &good()).unwrap();
    assert_eq!(events[0].notification_id, Some(id.parse().unwrap()));
    assert_eq!(
        events[0].provider_message_id,
        "883953f4-6105-42a2-a16a-77a8eac79483"
    );
    let plain = verifier()
        .parse(fixture("postmark_bounce_hard.json").as_bytes(), &good())
        .unwrap();
    assert_eq!(plain[0].notification_id, None);
    let not_a_uuid = body.replace(id, "order-42");
    let events = verifier().parse(not_a_uuid.as_bytes(), &good()).unwrap();
    assert_eq!(events[0].notification_id, None, "ignored, not an error");
    // Wrong credentials: refused, whatever it carries.
    assert_eq!(
        verifier().parse(body.as_bytes(), &auth("postmark", "wrong")),
        Err(DeliveryEventError::BadCredentials)
    );
}
