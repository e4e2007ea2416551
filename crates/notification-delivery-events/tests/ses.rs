//! Amazon SES via SNS.
//!
//! The SES notification bodies (tests/fixtures/ses_*.json) follow the examples of
//! the SES developer guide (notification contents and event publishing). The SNS
//! envelopes around them are built and signed here: an RSA-2048 key and a
//! self-signed certificate are generated per run (the `rsa` crate and `rcgen`), and
//! the canonical string is built in this file independently of the library, per
//! the SNS documentation ("Verifying the signatures of Amazon SNS messages"),
//! signed with SHA1withRSA (SignatureVersion 1) or SHA256withRSA (version 2).
//! No official AWS signed message is used: verifying one needs AWS's certificate,
//! which this test suite cannot fetch.

mod common;

use std::cell::RefCell;
use std::sync::OnceLock;

use chrono::{DateTime, Utc};
use common::{b64, fixture, rfc3339};
use notification_delivery_events::ses::{
    SesVerifier, SnsCallback, SnsMessage, parse_ses_notification, validate_certificate_url,
};
use notification_delivery_events::{DeliveryEventError, DeliveryKind, Provider};
use rsa::pkcs8::EncodePrivateKey as _;
use serde_json::{Value, json};

const CERT_URL: &str = "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-9c6465fa7f48f5cacd23014631ec1136.pem";
const TOPIC: &str = "arn:aws:sns:us-east-1:123456789012:ses-events";

struct Signer {
    key: rsa::PrivateKey,
    cert_pem: String,
}

fn pem(label: &str, der: &[u8]) -> String {
    let body = b64(der);
    let lines: Vec<&str> = body
        .as_bytes()
        .chunks(64)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect();
    format!(
        "-----BEGIN {label}-----\n{}\n-----END {label}-----\n",
        lines.join("\n")
    )
}

fn new_signer() -> Signer {
    let key = rsa::PrivateKey::new(&mut getrandom::SysRng, 2048).unwrap();
    let pkcs8 = key.to_pkcs8_der().unwrap();
    let key_pair = rcgen::KeyPair::from_pkcs8_pem_and_sign_algo(
        &pem("PRIVATE KEY", pkcs8.as_bytes()),
        &rcgen::PKCS_RSA_SHA256,
    )
    .unwrap();
    let params = rcgen::CertificateParams::new(vec!["sns.amazonaws.com".to_owned()]).unwrap();
    let cert = params.self_signed(&key_pair).unwrap();
    Signer {
        key,
        cert_pem: cert.pem(),
    }
}

/// AWS's signer, and a forger with a key and certificate of its own.
fn signer() -> &'static Signer {
    static S: OnceLock<Signer> = OnceLock::new();
    S.get_or_init(new_signer)
}

fn forger() -> &'static Signer {
    static S: OnceLock<Signer> = OnceLock::new();
    S.get_or_init(new_signer)
}

fn now() -> DateTime<Utc> {
    rfc3339("2016-01-27T15:00:00Z")
}

/// The SNS canonical string, written out per the documentation.
fn canonical(m: &Value) -> String {
    let keys: &[&str] = if m["Type"] == "Notification" {
        &[
            "Message",
            "MessageId",
            "Subject",
            "Timestamp",
            "TopicArn",
            "Type",
        ]
    } else {
        &[
            "Message",
            "MessageId",
            "SubscribeURL",
            "Timestamp",
            "Token",
            "TopicArn",
            "Type",
        ]
    };
    keys.iter()
        .filter_map(|k| {
            m.get(*k)
                .and_then(Value::as_str)
                .map(|v| format!("{k}\n{v}\n"))
        })
        .collect()
}

fn sign(m: &mut Value, version: &str, by: &Signer) {
    let data = canonical(m);
    let sig = match version {
        "1" => by.key.pkcs1v15_sign::<sha1::Sha1>(data.as_bytes()).unwrap(),
        _ => by
            .key
            .pkcs1v15_sign::<sha2::Sha256>(data.as_bytes())
            .unwrap(),
    };
    m["SignatureVersion"] = json!(version);
    m["Signature"] = json!(b64(&sig));
}

fn notification(message: &str, subject: Option<&str>) -> Value {
    let mut m = json!({
        "Type": "Notification",
        "MessageId": "22b80b92-fdea-4c2c-8f9d-bdfb0c7bf324",
        "TopicArn": TOPIC,
        "Message": message,
        "Timestamp": "2016-01-27T14:59:39.000Z",
        "SigningCertURL": CERT_URL,
        "UnsubscribeURL": "https://sns.us-east-1.amazonaws.com/?Action=Unsubscribe&SubscriptionArn=arn:aws:sns:us-east-1:123456789012:ses-events:c9135db0-26c4-47ec-8998-413945fb5a96",
    });
    if let Some(s) = subject {
        m["Subject"] = json!(s);
    }
    m
}

fn signed_notification(fixture_name: &str, version: &str) -> String {
    let mut m = notification(&fixture(fixture_name), None);
    sign(&mut m, version, signer());
    m.to_string()
}

/// A certificate source serving `signer`'s certificate and recording the URLs asked.
struct Source<'s> {
    by: &'s Signer,
    asked: RefCell<Vec<String>>,
}

impl notification_delivery_events::ses::CertificateSource for Source<'_> {
    fn certificate(&self, url: &str) -> Result<Vec<u8>, String> {
        self.asked.borrow_mut().push(url.to_owned());
        Ok(self.by.cert_pem.clone().into_bytes())
    }
}

fn source() -> Source<'static> {
    Source {
        by: signer(),
        asked: RefCell::new(Vec::new()),
    }
}

fn events(callback: SnsCallback) -> Vec<notification_delivery_events::DeliveryEvent> {
    match callback {
        SnsCallback::Notification(events) => events,
        other => panic!("not a notification: {other:?}"),
    }
}

#[test]
fn bounce_signed_with_version_1_is_parsed() {
    let body = signed_notification("ses_bounce.json", "1");
    let src = source();
    let events = events(
        SesVerifier::new()
            .parse_at(body.as_bytes(), &src, now())
            .unwrap(),
    );
    assert_eq!(*src.asked.borrow(), [CERT_URL]);
    assert_eq!(events.len(), 2);
    for e in &events {
        assert_eq!(e.provider, Provider::AmazonSes);
        assert_eq!(e.kind, DeliveryKind::Bounced { hard: true });
        assert_eq!(
            e.provider_message_id,
            "00000138111222aa-33322211-cccc-cccc-cccc-ddddaaaa0680-000000"
        );
        assert_eq!(e.occurred_at, rfc3339("2016-01-27T14:59:38.237Z"));
    }
    assert_eq!(events[0].recipient.as_deref(), Some("jane@example.com"));
    assert_eq!(
        events[0].reason.as_deref(),
        Some("smtp; 550 5.1.1 <jane@example.com>... User")
    );
    assert_eq!(events[1].recipient.as_deref(), Some("richard@example.com"));
}

#[test]
fn version_2_and_the_other_notification_types_are_parsed() {
    let verifier = SesVerifier::new().with_topic_arns([TOPIC]);
    let cases = [
        (
            "ses_bounce_transient.json",
            DeliveryKind::Bounced { hard: false },
            "mary@example.com",
        ),
        (
            "ses_complaint.json",
            DeliveryKind::Complained,
            "richard@example.com",
        ),
        (
            "ses_delivery.json",
            DeliveryKind::Delivered,
            "jane@example.com",
        ),
        (
            "ses_event_delivery_delay.json",
            DeliveryKind::Deferred,
            "recipient@example.com",
        ),
    ];
    for (name, kind, recipient) in cases {
        let body = signed_notification(name, "2");
        let events = events(
            verifier
                .parse_at(body.as_bytes(), &source(), now())
                .unwrap(),
        );
        assert_eq!(events.len(), 1, "{name}");
        assert_eq!(events[0].kind, kind, "{name}");
        assert_eq!(events[0].recipient.as_deref(), Some(recipient), "{name}");
    }
    let body = signed_notification("ses_delivery.json", "2");
    let e = &events(
        verifier
            .parse_at(body.as_bytes(), &source(), now())
            .unwrap(),
    )[0];
    assert_eq!(
        e.reason.as_deref(),
        Some("250 ok:  Message 64111812 accepted")
    );
    assert_eq!(
        e.provider_message_id,
        "0000014644fe5ef6-9a483358-9170-4cb4-a269-f5dcdf415321-000000"
    );
}

#[test]
fn subject_is_part_of_the_signed_string() {
    let mut m = notification(
        &fixture("ses_delivery.json"),
        Some("Amazon SES Email Event Notification"),
    );
    sign(&mut m, "2", signer());
    let body = m.to_string();
    assert!(
        SesVerifier::new()
            .parse_at(body.as_bytes(), &source(), now())
            .is_ok()
    );
    m["Subject"] = json!("Another subject");
    assert_eq!(
        SesVerifier::new().parse_at(m.to_string().as_bytes(), &source(), now()),
        Err(DeliveryEventError::BadSignature)
    );
}

#[test]
fn forged_signature_is_refused() {
    // Signed by another key, served our certificate.
    let mut m = notification(&fixture("ses_bounce.json"), None);
    sign(&mut m, "1", forger());
    assert_eq!(
        SesVerifier::new().parse_at(m.to_string().as_bytes(), &source(), now()),
        Err(DeliveryEventError::BadSignature)
    );
    // A signature made with SHA-256 but labelled version 1.
    let mut m = notification(&fixture("ses_bounce.json"), None);
    sign(&mut m, "2", signer());
    m["SignatureVersion"] = json!("1");
    assert_eq!(
        SesVerifier::new().parse_at(m.to_string().as_bytes(), &source(), now()),
        Err(DeliveryEventError::BadSignature)
    );
    m["Signature"] = json!("not base64 !!");
    assert_eq!(
        SesVerifier::new().parse_at(m.to_string().as_bytes(), &source(), now()),
        Err(DeliveryEventError::BadSignature)
    );
}

#[test]
fn modified_messages_are_refused() {
    let body = signed_notification("ses_bounce.json", "1");
    let mut m: Value = serde_json::from_str(&body).unwrap();
    let soft = m["Message"]
        .as_str()
        .unwrap()
        .replace("Permanent", "Transient");
    m["Message"] = json!(soft);
    assert_eq!(
        SesVerifier::new().parse_at(m.to_string().as_bytes(), &source(), now()),
        Err(DeliveryEventError::BadSignature)
    );
    for (field, value) in [
        ("MessageId", "other"),
        ("Timestamp", "2016-01-27T14:59:40.000Z"),
        ("TopicArn", "arn:aws:sns:us-east-1:123456789012:other"),
    ] {
        let mut m: Value = serde_json::from_str(&body).unwrap();
        m[field] = json!(value);
        assert_eq!(
            SesVerifier::new().parse_at(m.to_string().as_bytes(), &source(), now()),
            Err(DeliveryEventError::BadSignature),
            "{field}"
        );
    }
}

#[test]
fn missing_fields_are_refused() {
    let body = signed_notification("ses_bounce.json", "1");
    for field in [
        "Signature",
        "SignatureVersion",
        "SigningCertURL",
        "Message",
        "Type",
    ] {
        let mut m: Value = serde_json::from_str(&body).unwrap();
        m.as_object_mut().unwrap().remove(field);
        let err = SesVerifier::new()
            .parse_at(m.to_string().as_bytes(), &source(), now())
            .unwrap_err();
        assert!(
            matches!(err, DeliveryEventError::Malformed(_)),
            "{field}: {err:?}"
        );
    }
}

#[test]
fn untrusted_certificate_urls_are_refused_before_any_fetch() {
    let body = signed_notification("ses_bounce.json", "1");
    for url in [
        "http://sns.us-east-1.amazonaws.com/SimpleNotificationService-x.pem",
        "https://sns.us-east-1.amazonaws.com.evil.example/SimpleNotificationService-x.pem",
        "https://evil.example/sns.us-east-1.amazonaws.com/x.pem",
        "https://sns.amazonaws.com/x.pem",
        "https://s3.us-east-1.amazonaws.com/x.pem",
        "https://xsns.us-east-1.amazonaws.com/x.pem",
        "https://sns.us-east-1.amazonaws.com/x.pem.txt",
        "https://sns.us-east-1.amazonaws.com/x.crt",
        "https://sns.us-east-1.amazonaws.com:8443/x.pem",
        "https://user@sns.us-east-1.amazonaws.com/x.pem",
        "https://sns.us-east-1.amazonaws.com/x.pem?redirect=https://evil.example/",
        "https://sns.US_EAST.amazonaws.com/x.pem",
        "https://sns..amazonaws.com/x.pem",
        "https://52.94.0.1/x.pem",
        "file:///etc/passwd.pem",
        "not a url",
    ] {
        let mut m: Value = serde_json::from_str(&body).unwrap();
        m["SigningCertURL"] = json!(url);
        let src = source();
        assert_eq!(
            SesVerifier::new().parse_at(m.to_string().as_bytes(), &src, now()),
            Err(DeliveryEventError::UntrustedCertificateUrl(url.to_owned())),
            "{url}"
        );
        assert!(src.asked.borrow().is_empty(), "{url} was fetched");
        assert!(validate_certificate_url(url).is_err(), "{url}");
    }
    validate_certificate_url("https://sns.eu-west-1.amazonaws.com/SimpleNotificationService-a.pem")
        .unwrap();
    validate_certificate_url("https://sns.us-gov-west-1.amazonaws.com/a.pem").unwrap();
}

#[test]
fn subscription_confirmation_is_verified_and_returned() {
    let mut m = json!({
        "Type": "SubscriptionConfirmation",
        "MessageId": "165545c9-2a5c-472c-8df2-7ff2be2b3b1b",
        "Token": "2336412f37fb687f5d51e6e241d09c805a5a57b30d712f794cc5f6a988666d92768dd60a747ba6f3beb71854e285d6ad02428b09ceece29417f1f02d609c582afbacc99c583a916b9981dd2728f4ae6fdb82efd087cc3b7849e05798d2d2785c03b0879594eeac82c01f235d0e717736",
        "TopicArn": TOPIC,
        "Message": "You have chosen to subscribe to the topic arn:aws:sns:us-east-1:123456789012:ses-events.\nTo confirm the subscription, visit the SubscribeURL included in this message.",
        "SubscribeURL": "https://sns.us-east-1.amazonaws.com/?Action=ConfirmSubscription&TopicArn=arn:aws:sns:us-east-1:123456789012:ses-events&Token=2336412f37",
        "Timestamp": "2016-01-27T14:59:00.000Z",
        "SigningCertURL": CERT_URL,
    });
    sign(&mut m, "1", signer());
    match SesVerifier::new()
        .parse_at(m.to_string().as_bytes(), &source(), now())
        .unwrap()
    {
        SnsCallback::SubscriptionConfirmation {
            topic_arn,
            subscribe_url,
            token,
        } => {
            assert_eq!(topic_arn, TOPIC);
            assert!(subscribe_url.contains("Action=ConfirmSubscription"));
            assert!(token.starts_with("2336412f37fb687f"));
        }
        other => panic!("{other:?}"),
    }
    // The SubscribeURL is signed: redirecting it breaks the signature.
    m["SubscribeURL"] = json!("https://evil.example/");
    assert_eq!(
        SesVerifier::new().parse_at(m.to_string().as_bytes(), &source(), now()),
        Err(DeliveryEventError::BadSignature)
    );
}

#[test]
fn two_step_api_for_async_fetching() {
    let body = signed_notification("ses_complaint.json", "2");
    let message = SnsMessage::parse(body.as_bytes()).unwrap();
    assert_eq!(message.signing_cert_url(), CERT_URL);
    assert_eq!(message.topic_arn(), Some(TOPIC));
    let cert = signer().cert_pem.as_bytes();
    let events = events(
        SesVerifier::new()
            .verify_message_at(&message, cert, now())
            .unwrap(),
    );
    assert_eq!(events[0].kind, DeliveryKind::Complained);
    assert_eq!(events[0].reason.as_deref(), Some("abuse"));
    // The forger's certificate does not verify AWS's signature.
    assert_eq!(
        SesVerifier::new().verify_message_at(&message, forger().cert_pem.as_bytes(), now()),
        Err(DeliveryEventError::BadSignature)
    );
}

#[test]
fn topic_allowlist_max_age_and_versions() {
    let body = signed_notification("ses_delivery.json", "2");
    assert_eq!(
        SesVerifier::new()
            .with_topic_arns(["arn:aws:sns:us-east-1:123456789012:other"])
            .parse_at(body.as_bytes(), &source(), now()),
        Err(DeliveryEventError::UnexpectedTopic(TOPIC.to_owned()))
    );
    let strict = SesVerifier::new().with_max_age(std::time::Duration::from_secs(60));
    assert!(strict.parse_at(body.as_bytes(), &source(), now()).is_ok());
    assert!(matches!(
        strict.parse_at(body.as_bytes(), &source(), rfc3339("2016-01-27T16:00:00Z")),
        Err(DeliveryEventError::StaleTimestamp { .. })
    ));
    let mut m: Value = serde_json::from_str(&body).unwrap();
    m["SignatureVersion"] = json!("3");
    assert_eq!(
        SesVerifier::new().parse_at(m.to_string().as_bytes(), &source(), now()),
        Err(DeliveryEventError::UnsupportedSignatureVersion(
            "3".to_owned()
        ))
    );
}

#[test]
fn certificate_problems_are_refused() {
    let body = signed_notification("ses_delivery.json", "1");
    // Not valid yet (rcgen's certificates start in 1975).
    assert!(matches!(
        SesVerifier::new().parse_at(
            body.as_bytes(),
            &source(),
            DateTime::from_timestamp(0, 0).unwrap()
        ),
        Err(DeliveryEventError::Certificate(_))
    ));
    let failing = |_: &str| -> Result<Vec<u8>, String> { Err("connection refused".to_owned()) };
    assert_eq!(
        SesVerifier::new().parse_at(body.as_bytes(), &failing, now()),
        Err(DeliveryEventError::Certificate(
            "connection refused".to_owned()
        ))
    );
    let garbage = |_: &str| -> Result<Vec<u8>, String> {
        Ok(b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n".to_vec())
    };
    assert!(matches!(
        SesVerifier::new().parse_at(body.as_bytes(), &garbage, now()),
        Err(DeliveryEventError::Certificate(_))
    ));
    // DER is accepted as well as PEM.
    let der = {
        let pem = &signer().cert_pem;
        let b: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD.decode(b).unwrap()
    };
    let der_source = move |_: &str| -> Result<Vec<u8>, String> { Ok(der.clone()) };
    assert!(
        SesVerifier::new()
            .parse_at(body.as_bytes(), &der_source, now())
            .is_ok()
    );
}

#[test]
fn ses_messages_without_delivery_outcomes_yield_nothing() {
    let send = r#"{"eventType":"Send","mail":{"timestamp":"2016-01-27T14:59:38.237Z","messageId":"x"},"send":{}}"#;
    assert!(parse_ses_notification(send).unwrap().is_empty());
    let reject = r#"{"eventType":"Reject","mail":{"timestamp":"2016-01-27T14:59:38.237Z","messageId":"m1","destination":["a@example.com"]},"reject":{"reason":"Bad content"}}"#;
    let events = parse_ses_notification(reject).unwrap();
    assert_eq!(events[0].kind, DeliveryKind::Failed);
    assert_eq!(events[0].reason.as_deref(), Some("Bad content"));
    assert!(matches!(
        parse_ses_notification("Hello world!"),
        Err(DeliveryEventError::Malformed(_))
    ));
    assert!(matches!(
        parse_ses_notification(r#"{"notificationType":"Bounce","mail":{"messageId":"x"}}"#),
        Err(DeliveryEventError::Malformed(_))
    ));
}

#[test]
fn arbitrary_signature_bytes_are_refused() {
    let body = signed_notification("ses_delivery.json", "2");
    for len in [0usize, 1, 128, 255, 256, 257, 512] {
        for fill in [0x00u8, 0x01, 0x7f, 0xff] {
            let mut m: Value = serde_json::from_str(&body).unwrap();
            m["Signature"] = json!(b64(&vec![fill; len]));
            assert_eq!(
                SesVerifier::new().parse_at(m.to_string().as_bytes(), &source(), now()),
                Err(DeliveryEventError::BadSignature),
                "{len} bytes of {fill:#x}"
            );
        }
    }
}

/// The notification id the email channel sent as an SES message tag
/// (`X-SES-MESSAGE-TAGS`) comes back in an event publishing record's
/// `mail.tags`; the event keeps SES's own message id as its provider id.
#[test]
fn an_event_publishing_record_carries_the_notification_id_of_its_message_tags() {
    let body = signed_notification("ses_event_bounce_tagged.json", "2");
    let events = events(
        SesVerifier::new()
            .with_topic_arns([TOPIC])
            .parse_at(body.as_bytes(), &source(), now())
            .unwrap(),
    );
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].kind, DeliveryKind::Bounced { hard: true });
    assert_eq!(
        events[0].notification_id,
        Some("0190a5c2-7b3e-7c41-9d2a-5f1e8b6c4d3a".parse().unwrap())
    );
    assert_eq!(
        events[0].provider_message_id,
        "EXAMPLE7c191be45-e9aedb9a-02f9-4d12-a87d-dd0099a07f8a-000000"
    );
    // Identity notifications carry no tags: no notification id.
    let plain = signed_notification("ses_bounce.json", "2");
    let plain = events_of(&plain);
    assert!(plain.iter().all(|e| e.notification_id.is_none()));

    // Forged: the same record signed by another key is refused.
    let mut m = notification(&fixture("ses_event_bounce_tagged.json"), None);
    sign(&mut m, "2", forger());
    assert_eq!(
        SesVerifier::new().parse_at(m.to_string().as_bytes(), &source(), now()),
        Err(DeliveryEventError::BadSignature)
    );
    // And a tag swapped in after signing breaks the signature.
    let tampered = body.replace(
        "0190a5c2-7b3e-7c41-9d2a-5f1e8b6c4d3a",
        "0190a5c2-7b3e-7c41-9d2a-000000000000",
    );
    assert_ne!(tampered, body);
    assert_eq!(
        SesVerifier::new().parse_at(tampered.as_bytes(), &source(), now()),
        Err(DeliveryEventError::BadSignature)
    );
}

fn events_of(body: &str) -> Vec<notification_delivery_events::DeliveryEvent> {
    events(
        SesVerifier::new()
            .parse_at(body.as_bytes(), &source(), now())
            .unwrap(),
    )
}
