//! Twilio status callbacks.
//!
//! Official vectors: Twilio's documented signature-validation example
//! (TwilioDevEd/api-snippets, security/signature_validation: auth token `12345`,
//! URL `https://mycompany.com/myapp.php?foo=1&bar=2`, params CallSid, Caller,
//! Digits, From, To). Its current version (Caller/From `+14158675310`) gives
//! `GvWf1cFY/Q7PnoempGyD5oXAezc=`, its older version (`+14158675309`) gives
//! `RSOYDt4T1cUTdK1PDd93/VVr8B8=`; both are reproduced here.
//! The status callback bodies (tests/fixtures/twilio_*.txt) follow the parameters
//! of Twilio's messaging status callback documentation, signed here with a test
//! auth token per the documented scheme.

mod common;

use common::at;
use notification_delivery_events::twilio::{SIGNATURE_HEADER, TwilioVerifier};
use notification_delivery_events::{DeliveryEventError, DeliveryKind, Provider};

const DOC_URL: &str = "https://mycompany.com/myapp.php?foo=1&bar=2";

fn doc_params(phone: &str) -> Vec<(&'static str, String)> {
    vec![
        ("CallSid", "CA1234567890ABCDE".to_owned()),
        ("Caller", phone.to_owned()),
        ("Digits", "1234".to_owned()),
        ("From", phone.to_owned()),
        ("To", "+18005551212".to_owned()),
    ]
}

#[test]
fn documented_vectors_are_reproduced() {
    assert_eq!(
        TwilioVerifier::sign("12345", DOC_URL, &doc_params("+14158675310")),
        "GvWf1cFY/Q7PnoempGyD5oXAezc="
    );
    assert_eq!(
        TwilioVerifier::sign("12345", DOC_URL, &doc_params("+14158675309")),
        "RSOYDt4T1cUTdK1PDd93/VVr8B8="
    );
}

#[test]
fn documented_vector_verifies_as_a_request() {
    // The same parameters as a form body, in an order other than the sorted one.
    let body = serde_urlencoded::to_string(
        doc_params("+14158675310")
            .into_iter()
            .rev()
            .collect::<Vec<_>>(),
    )
    .unwrap();
    let headers = [(SIGNATURE_HEADER, "GvWf1cFY/Q7PnoempGyD5oXAezc=")];
    let v = TwilioVerifier::new("12345");
    v.verify(DOC_URL, body.as_bytes(), &headers[..]).unwrap();
    // Another token, another URL, or another body: refused.
    assert_eq!(
        TwilioVerifier::new("12346").verify(DOC_URL, body.as_bytes(), &headers[..]),
        Err(DeliveryEventError::BadSignature)
    );
    assert_eq!(
        v.verify(
            "https://mycompany.com/myapp.php?foo=1&bar=3",
            body.as_bytes(),
            &headers[..]
        ),
        Err(DeliveryEventError::BadSignature)
    );
    let modified = body.replace("1234", "1235");
    assert_eq!(
        v.verify(DOC_URL, modified.as_bytes(), &headers[..]),
        Err(DeliveryEventError::BadSignature)
    );
    // As Twilio's libraries do, the URL with the default port is accepted too.
    v.verify(
        "https://mycompany.com:443/myapp.php?foo=1&bar=2",
        body.as_bytes(),
        &headers[..],
    )
    .unwrap();
}

const TOKEN: &str = "d0c1e2f3a4b5c6d7e8f9a0b1c2d3e4f5";
const URL: &str = "https://hooks.example.com/twilio/status?tenant=7";

fn signed_headers(body: &str) -> Vec<(String, String)> {
    let params: Vec<(String, String)> = serde_urlencoded::from_str(body).unwrap();
    vec![(
        SIGNATURE_HEADER.to_owned(),
        TwilioVerifier::sign(TOKEN, URL, &params),
    )]
}

#[test]
fn delivered_callback_is_parsed() {
    let body = common::fixture("twilio_delivered.txt");
    let events = TwilioVerifier::new(TOKEN)
        .parse_at(
            URL,
            body.as_bytes(),
            &signed_headers(&body),
            at(1_700_000_000),
        )
        .unwrap();
    assert_eq!(events.len(), 1);
    let e = &events[0];
    assert_eq!(e.provider, Provider::Twilio);
    assert_eq!(e.kind, DeliveryKind::Delivered);
    assert_eq!(e.provider_message_id, "SM1342fe1b2c904d1ab04f0fc7a58abca9");
    assert_eq!(e.recipient.as_deref(), Some("+15558675310"));
    assert_eq!(e.reason, None);
    assert_eq!(e.occurred_at, at(1_700_000_000));
}

#[test]
fn undelivered_callback_is_a_failure_with_its_error_code() {
    let body = common::fixture("twilio_undelivered.txt");
    let events = TwilioVerifier::new(TOKEN)
        .parse(URL, body.as_bytes(), &signed_headers(&body))
        .unwrap();
    assert_eq!(events[0].kind, DeliveryKind::Failed);
    assert_eq!(events[0].reason.as_deref(), Some("ErrorCode 30003"));
    assert_eq!(events[0].recipient.as_deref(), Some("+15558675311"));
}

#[test]
fn progress_statuses_yield_nothing() {
    let body = common::fixture("twilio_delivered.txt").replace("=delivered", "=sent");
    let events = TwilioVerifier::new(TOKEN)
        .parse(URL, body.as_bytes(), &signed_headers(&body))
        .unwrap();
    assert!(events.is_empty());
}

#[test]
fn forged_signature_is_refused() {
    let body = common::fixture("twilio_delivered.txt");
    let params: Vec<(String, String)> = serde_urlencoded::from_str(&body).unwrap();
    let forged = TwilioVerifier::sign("another token", URL, &params);
    let headers = [(SIGNATURE_HEADER, forged.as_str())];
    assert_eq!(
        TwilioVerifier::new(TOKEN).parse(URL, body.as_bytes(), &headers[..]),
        Err(DeliveryEventError::BadSignature)
    );
    let garbage = [(SIGNATURE_HEADER, "not base64 at all!")];
    assert_eq!(
        TwilioVerifier::new(TOKEN).parse(URL, body.as_bytes(), &garbage[..]),
        Err(DeliveryEventError::BadSignature)
    );
}

#[test]
fn modified_body_is_refused() {
    let body = common::fixture("twilio_undelivered.txt");
    let headers = signed_headers(&body);
    let modified = body.replace("=undelivered", "=delivered");
    assert_eq!(
        TwilioVerifier::new(TOKEN).parse(URL, modified.as_bytes(), &headers),
        Err(DeliveryEventError::BadSignature)
    );
    let added = format!("{body}&Extra=1");
    assert_eq!(
        TwilioVerifier::new(TOKEN).parse(URL, added.as_bytes(), &headers),
        Err(DeliveryEventError::BadSignature)
    );
}

#[test]
fn missing_header_is_refused() {
    let body = common::fixture("twilio_delivered.txt");
    let headers = [("Content-Type", "application/x-www-form-urlencoded")];
    assert_eq!(
        TwilioVerifier::new(TOKEN).parse(URL, body.as_bytes(), &headers[..]),
        Err(DeliveryEventError::MissingHeader(SIGNATURE_HEADER))
    );
}

#[test]
fn signed_but_incomplete_callbacks_are_malformed() {
    for body in ["To=%2B1555", "MessageStatus=delivered"] {
        let err = TwilioVerifier::new(TOKEN)
            .parse(URL, body.as_bytes(), &signed_headers(body))
            .unwrap_err();
        assert!(
            matches!(err, DeliveryEventError::Malformed(_)),
            "{body}: {err:?}"
        );
    }
}
