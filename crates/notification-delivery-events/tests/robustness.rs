//! No input makes a parser panic: garbage, truncated bodies, garbage headers, and
//! (past a valid signature) structurally random JSON and form bodies built from
//! the field names the parsers look at. Truncated or garbage bodies are refused.

mod common;

use std::sync::OnceLock;

use common::{at, b64, fixture};
use notification_delivery_events::mailgun::MailgunVerifier;
use notification_delivery_events::postmark::PostmarkVerifier;
use notification_delivery_events::sendgrid::{
    SIGNATURE_HEADER, SendGridVerifier, TIMESTAMP_HEADER,
};
use notification_delivery_events::ses::{SesVerifier, parse_ses_notification};
use notification_delivery_events::twilio::TwilioVerifier;
use p256::ecdsa::signature::Signer as _;
use p256::pkcs8::EncodePublicKey as _;
use proptest::prelude::*;
use serde_json::{Value, json};

const MAILGUN_KEY: &str = "mailgun-key";
const TWILIO_TOKEN: &str = "twilio-token";
const TWILIO_URL: &str = "https://hooks.example.com/twilio";
const NOW: i64 = 1_700_000_000;

fn sendgrid_key() -> &'static (p256::ecdsa::SigningKey, SendGridVerifier) {
    static K: OnceLock<(p256::ecdsa::SigningKey, SendGridVerifier)> = OnceLock::new();
    K.get_or_init(|| {
        let key = p256::ecdsa::SigningKey::from_slice(&[3; 32]).unwrap();
        let public = b64(key.verifying_key().to_public_key_der().unwrap().as_bytes());
        let verifier = SendGridVerifier::new(&public).unwrap();
        (key, verifier)
    })
}

fn sendgrid_headers(body: &[u8]) -> Vec<(String, String)> {
    let ts = NOW.to_string();
    let mut signed = ts.as_bytes().to_vec();
    signed.extend_from_slice(body);
    let sig: p256::ecdsa::Signature = sendgrid_key().0.sign(&signed);
    vec![
        (SIGNATURE_HEADER.to_owned(), b64(sig.to_der().as_bytes())),
        (TIMESTAMP_HEADER.to_owned(), ts),
    ]
}

fn postmark() -> (PostmarkVerifier, Vec<(String, String)>) {
    (
        PostmarkVerifier::new("u", "p"),
        vec![("Authorization".to_owned(), format!("Basic {}", b64(b"u:p")))],
    )
}

fn twilio_headers(body: &[u8]) -> Vec<(String, String)> {
    let params: Vec<(String, String)> = serde_urlencoded::from_bytes(body).unwrap_or_default();
    vec![(
        "X-Twilio-Signature".to_owned(),
        TwilioVerifier::sign(TWILIO_TOKEN, TWILIO_URL, &params),
    )]
}

fn mailgun_body(event_data: &Value) -> String {
    let ts = NOW.to_string();
    json!({
        "signature": {
            "timestamp": ts,
            "token": "tok",
            "signature": MailgunVerifier::sign(MAILGUN_KEY, &ts, "tok"),
        },
        "event-data": event_data,
    })
    .to_string()
}

const KEYS: &[&str] = &[
    "event",
    "event-data",
    "signature",
    "timestamp",
    "token",
    "severity",
    "message",
    "headers",
    "message-id",
    "recipient",
    "delivery-status",
    "description",
    "reason",
    "sg_message_id",
    "type",
    "email",
    "response",
    "RecordType",
    "Type",
    "MessageID",
    "Recipient",
    "DeliveredAt",
    "BouncedAt",
    "Email",
    "Details",
    "Description",
    "notificationType",
    "eventType",
    "mail",
    "messageId",
    "bounce",
    "bounceType",
    "bouncedRecipients",
    "emailAddress",
    "complaint",
    "complainedRecipients",
    "delivery",
    "recipients",
    "deliveryDelay",
    "delayedRecipients",
    "reject",
    "destination",
    "failure",
    "diagnosticCode",
    "smtpResponse",
];

const WORDS: &[&str] = &[
    "delivered",
    "failed",
    "permanent",
    "temporary",
    "complained",
    "rejected",
    "bounce",
    "blocked",
    "dropped",
    "spamreport",
    "deferred",
    "Delivery",
    "Bounce",
    "SpamComplaint",
    "HardBounce",
    "SoftBounce",
    "Complaint",
    "Permanent",
    "Transient",
    "Undetermined",
    "DeliveryDelay",
    "Reject",
    "Rendering Failure",
    "2016-01-27T14:59:38.237Z",
    "",
    "1700000000",
    "undelivered",
];

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        prop::sample::select(WORDS).prop_map(Value::from),
        ".{0,12}".prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::vec((prop::sample::select(KEYS), inner), 0..6).prop_map(|kv| {
                Value::Object(kv.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())
            }),
        ]
    })
}

fn form_body() -> impl Strategy<Value = String> {
    let key = prop::sample::select(
        &[
            "MessageStatus",
            "SmsStatus",
            "MessageSid",
            "SmsSid",
            "To",
            "ErrorCode",
            "ErrorMessage",
            "From",
            "x",
        ][..],
    );
    let value = prop_oneof![
        prop::sample::select(WORDS).prop_map(str::to_owned),
        ".{0,8}"
    ];
    prop::collection::vec((key, value), 0..6)
        .prop_map(|pairs| serde_urlencoded::to_string(pairs).unwrap())
}

fn garbage_headers() -> impl Strategy<Value = Vec<(String, String)>> {
    let name = prop::sample::select(
        &[
            "Authorization",
            SIGNATURE_HEADER,
            TIMESTAMP_HEADER,
            "X-Twilio-Signature",
            "Other",
        ][..],
    );
    prop::collection::vec((name.prop_map(str::to_owned), ".{0,40}"), 0..4)
}

/// Every provider entry point, on `body` with `headers`; all must refuse it.
fn all_refuse(body: &[u8], headers: &[(String, String)]) -> Result<(), TestCaseError> {
    let now = at(NOW);
    prop_assert!(
        MailgunVerifier::new(MAILGUN_KEY)
            .parse_at(body, headers, now)
            .is_err()
    );
    prop_assert!(sendgrid_key().1.parse_at(body, headers, now).is_err());
    prop_assert!(postmark().0.parse(body, headers).is_err());
    prop_assert!(
        TwilioVerifier::new(TWILIO_TOKEN)
            .parse_at(TWILIO_URL, body, headers, now)
            .is_err()
    );
    let cert = |_: &str| -> Result<Vec<u8>, String> { Ok(b"not a certificate".to_vec()) };
    prop_assert!(SesVerifier::new().parse_at(body, &cert, now).is_err());
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn garbage_is_refused(body in prop::collection::vec(any::<u8>(), 0..300), headers in garbage_headers()) {
        all_refuse(&body, &headers)?;
    }

    #[test]
    fn random_json_is_refused_unsigned(value in json_value(), headers in garbage_headers()) {
        all_refuse(value.to_string().as_bytes(), &headers)?;
    }

    #[test]
    fn signed_random_json_never_panics(value in json_value()) {
        let now = at(NOW);
        let body = value.to_string();
        let _ = sendgrid_key().1.parse_at(body.as_bytes(), &sendgrid_headers(body.as_bytes()), now);
        let array = format!("[{body}]");
        let _ = sendgrid_key().1.parse_at(array.as_bytes(), &sendgrid_headers(array.as_bytes()), now);
        let (pm, auth) = postmark();
        let _ = pm.parse(body.as_bytes(), &auth);
        let _ = MailgunVerifier::new(MAILGUN_KEY).parse_at(mailgun_body(&value).as_bytes(), &[] as &[(&str, &str)], now);
        let _ = parse_ses_notification(&body);
    }

    #[test]
    fn signed_random_forms_never_panic(body in form_body()) {
        let headers = twilio_headers(body.as_bytes());
        let _ = TwilioVerifier::new(TWILIO_TOKEN).parse_at(TWILIO_URL, body.as_bytes(), &headers, at(NOW));
    }

    #[test]
    fn random_signature_bytes_are_refused(sig in prop::collection::vec(any::<u8>(), 0..96)) {
        let now = at(NOW);
        let body = b"[]";
        let headers = [(SIGNATURE_HEADER, b64(&sig)), (TIMESTAMP_HEADER, NOW.to_string())];
        let headers: Vec<(&str, String)> = headers.into_iter().collect();
        prop_assert!(sendgrid_key().1.parse_at(body, &headers, now).is_err());
        let twilio = [("X-Twilio-Signature", b64(&sig))];
        prop_assert!(TwilioVerifier::new(TWILIO_TOKEN).parse_at(TWILIO_URL, b"MessageStatus=delivered&MessageSid=SM1", &twilio[..], now).is_err());
        let hex: String = sig.iter().map(|b| format!("{b:02x}")).collect();
        let mailgun = json!({"signature": {"timestamp": NOW.to_string(), "token": "tok", "signature": hex},
            "event-data": {"event": "delivered"}});
        prop_assert!(MailgunVerifier::new(MAILGUN_KEY).parse_at(mailgun.to_string().as_bytes(), &[] as &[(&str, &str)], now).is_err());
    }

    #[test]
    fn random_certificate_urls_never_panic(url in "(https?://)?[a-z0-9.:@/?#%_-]{0,60}") {
        let _ = notification_delivery_events::ses::validate_certificate_url(&url);
    }
}

/// Every strict prefix of a valid, authenticated body is refused, never a panic.
#[test]
fn truncated_valid_bodies_are_refused() {
    let now = at(NOW);
    let (pm, auth) = postmark();
    for name in [
        "postmark_delivery.json",
        "postmark_bounce_hard.json",
        "postmark_spam_complaint.json",
    ] {
        let body = fixture(name);
        assert!(pm.parse(body.as_bytes(), &auth).is_ok(), "{name}");
        for cut in 0..body.len() {
            assert!(
                pm.parse(&body.as_bytes()[..cut], &auth).is_err(),
                "{name} cut at {cut}"
            );
        }
    }

    let body = fixture("sendgrid_events.json");
    let headers = sendgrid_headers(body.as_bytes());
    assert!(
        sendgrid_key()
            .1
            .parse_at(body.as_bytes(), &headers, now)
            .is_ok()
    );
    for cut in 0..body.len() {
        assert!(
            sendgrid_key()
                .1
                .parse_at(&body.as_bytes()[..cut], &headers, now)
                .is_err()
        );
    }

    let value: Value = serde_json::from_str(&fixture("mailgun_delivered.json")).unwrap();
    let body = mailgun_body(&value["event-data"]);
    let mg = MailgunVerifier::new(MAILGUN_KEY);
    let no_headers: &[(&str, &str)] = &[];
    assert!(mg.parse_at(body.as_bytes(), no_headers, now).is_ok());
    for cut in 0..body.len() {
        assert!(
            mg.parse_at(&body.as_bytes()[..cut], no_headers, now)
                .is_err(),
            "cut at {cut}"
        );
    }

    let body = fixture("twilio_undelivered.txt");
    let headers = twilio_headers(body.as_bytes());
    let tw = TwilioVerifier::new(TWILIO_TOKEN);
    assert!(
        tw.parse_at(TWILIO_URL, body.as_bytes(), &headers, now)
            .is_ok()
    );
    for cut in 0..body.len() {
        assert!(
            tw.parse_at(TWILIO_URL, &body.as_bytes()[..cut], &headers, now)
                .is_err(),
            "cut at {cut}"
        );
    }

    for name in [
        "ses_bounce.json",
        "ses_complaint.json",
        "ses_delivery.json",
        "ses_event_delivery_delay.json",
    ] {
        let message = fixture(name);
        assert!(
            !parse_ses_notification(&message).unwrap().is_empty(),
            "{name}"
        );
        for cut in 0..message.len() {
            if message.is_char_boundary(cut) {
                assert!(
                    parse_ses_notification(&message[..cut]).is_err(),
                    "{name} cut at {cut}"
                );
            }
        }
    }
}
