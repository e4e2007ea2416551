//! `POST /v1/webhooks/ses`: Amazon SES notifications through SNS against a
//! real server over Redis and PostgreSQL. The SNS envelopes are built and
//! signed here, as SNS documents it ("Verifying the signatures of Amazon SNS
//! messages", SignatureVersion 2: SHA256withRSA over the canonical string),
//! with an RSA key and a self-signed certificate made per run; the SES body
//! follows the SES developer guide's bounce example. The certificate is served
//! by a test `SnsCertificates` (SNS's own cannot be fetched here).

mod support;

use std::sync::{Arc, Mutex, OnceLock};

use base64::Engine as _;
use futures::future::BoxFuture;
use messaging_http::{DeliveryWebhook, SnsCertificates, Webhooks};
use messaging_model::NotificationKind;
use notification_delivery_events::apply::DeliveryEventApplier;
use notification_delivery_events::ses::SesVerifier;
use notification_store::SuppressionStore;
use rsa::pkcs8::EncodePrivateKey as _;
use serde_json::{Value, json};
use support::Server;

const CERT_URL: &str = "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-9c6465fa7f48f5cacd23014631ec1136.pem";
const TOPIC: &str = "arn:aws:sns:us-east-1:123456789012:ses-events";

struct Signer {
    key: rsa::PrivateKey,
    cert_pem: String,
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn new_signer() -> Signer {
    let key = rsa::PrivateKey::new(&mut getrandom::SysRng, 2048).unwrap();
    let der = key.to_pkcs8_der().unwrap();
    let body = b64(der.as_bytes());
    let lines: Vec<&str> = body
        .as_bytes()
        .chunks(64)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect();
    let pem = format!(
        "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n",
        lines.join("\n")
    );
    let key_pair =
        rcgen::KeyPair::from_pkcs8_pem_and_sign_algo(&pem, &rcgen::PKCS_RSA_SHA256).unwrap();
    let params = rcgen::CertificateParams::new(vec!["sns.amazonaws.com".to_owned()]).unwrap();
    let cert = params.self_signed(&key_pair).unwrap();
    Signer {
        key,
        cert_pem: cert.pem(),
    }
}

/// SNS's signer, and a forger with a key of its own.
fn signer() -> &'static Signer {
    static S: OnceLock<Signer> = OnceLock::new();
    S.get_or_init(new_signer)
}

fn forger() -> &'static Signer {
    static S: OnceLock<Signer> = OnceLock::new();
    S.get_or_init(new_signer)
}

/// The SNS canonical string of a notification, written out per the documentation.
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

fn signed(mut m: Value, by: &Signer) -> String {
    let signature = by
        .key
        .pkcs1v15_sign::<sha2::Sha256>(canonical(&m).as_bytes())
        .unwrap();
    m["SignatureVersion"] = json!("2");
    m["Signature"] = json!(b64(&signature));
    m.to_string()
}

fn envelope(kind: &str, message: &str) -> Value {
    let mut m = json!({
        "Type": kind,
        "MessageId": uuid::Uuid::now_v7().to_string(),
        "TopicArn": TOPIC,
        "Message": message,
        "Timestamp": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        "SigningCertURL": CERT_URL,
    });
    if kind == "SubscriptionConfirmation" {
        m["Token"] = json!(
            "2336412f37fb687f5d51e6e241d09c805a5a57b30d712f794cc5f6a988666d92768dd60a747ba6f3beb71854e285d6ad02428b09ceece29417f1f02d609c582afbacc99c583a916b9981dd2728f4ae6fdb82efd087cc3b7849e05798d2d2785c03b0879594eeac82c01f235d0e717736"
        );
        m["SubscribeURL"] = json!(
            "https://sns.us-east-1.amazonaws.com/?Action=ConfirmSubscription&TopicArn=arn:aws:sns:us-east-1:123456789012:ses-events&Token=2336412f37"
        );
    }
    m
}

const BOUNCE: &str = r#"{"notificationType":"Bounce","bounce":{"bounceType":"Permanent","bounceSubType":"General",
 "bouncedRecipients":[{"emailAddress":"jane@example.com","status":"5.1.1","action":"failed","diagnosticCode":"smtp; 550 5.1.1 <jane@example.com>... User"}],
 "timestamp":"2016-01-27T14:59:38.237Z","feedbackId":"00000138111222aa-33322211-cccc-cccc-cccc-ddddaaaa068a-000000"},
 "mail":{"timestamp":"2016-01-27T14:59:38.237Z","source":"john@example.com","messageId":"00000138111222aa-33322211-cccc-cccc-cccc-ddddaaaa0680-000000",
 "destination":["jane@example.com"]}}"#;

/// Serves `signer`'s certificate (or fails), counting the fetches.
struct Certificates {
    fail: bool,
    asked: Mutex<Vec<String>>,
}

impl SnsCertificates for Certificates {
    fn certificate<'a>(&'a self, url: &'a str) -> BoxFuture<'a, Result<Vec<u8>, String>> {
        self.asked.lock().unwrap().push(url.to_owned());
        let answer = if self.fail {
            Err("connection refused".to_owned())
        } else {
            Ok(signer().cert_pem.clone().into_bytes())
        };
        Box::pin(async move { answer })
    }
}

async fn server_taking_ses(certificates: Arc<Certificates>) -> Server {
    Server::start_configured(
        |config| config,
        move |store| {
            let store = Arc::new(store.clone());
            Webhooks::default().with_delivery(
                DeliveryWebhook::Ses {
                    verifier: SesVerifier::new().with_topic_arns([TOPIC]),
                    certificates,
                },
                DeliveryEventApplier::new(store.clone(), store),
            )
        },
    )
    .await
}

async fn post(server: &Server, body: String) -> (u16, Value) {
    support::send(
        server
            .http
            .post(server.url("/v1/webhooks/ses"))
            .header("content-type", "text/plain; charset=UTF-8")
            .header("x-amz-sns-message-type", "Notification")
            .body(body),
    )
    .await
}

async fn suppressed(server: &Server, address: &str) -> bool {
    server
        .store
        .find_suppression(NotificationKind::Email, address)
        .await
        .unwrap()
        .is_some()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signed_ses_bounce_is_applied_and_forged_or_foreign_ones_are_401() {
    let certificates = Arc::new(Certificates {
        fail: false,
        asked: Mutex::new(Vec::new()),
    });
    support::run_on(server_taking_ses(certificates.clone()).await, |server| {
        Box::pin(async move {
            // Signed by another key: refused, nothing applied.
            let (status, _) =
                post(server, signed(envelope("Notification", BOUNCE), forger())).await;
            assert_eq!(status, 401);
            assert!(!suppressed(server, "jane@example.com").await);
            // A certificate from anywhere but SNS: refused before it is fetched.
            let mut elsewhere = envelope("Notification", BOUNCE);
            elsewhere["SigningCertURL"] =
                json!("https://sns.us-east-1.amazonaws.com.evil.example/x.pem");
            let asked_before = certificates.asked.lock().unwrap().len();
            let (status, _) = post(server, signed(elsewhere, signer())).await;
            assert_eq!(status, 401);
            assert_eq!(certificates.asked.lock().unwrap().len(), asked_before);
            // Another topic than the configured one.
            let mut foreign = envelope("Notification", BOUNCE);
            foreign["TopicArn"] = json!("arn:aws:sns:us-east-1:999999999999:other");
            let (status, _) = post(server, signed(foreign, signer())).await;
            assert_eq!(status, 401);
            // Not an SNS message at all.
            let (status, _) = post(server, "not json".to_owned()).await;
            assert_eq!(status, 400);
            assert!(!suppressed(server, "jane@example.com").await);

            // SNS's own: the hard bounce suppresses the address.
            let (status, applied) =
                post(server, signed(envelope("Notification", BOUNCE), signer())).await;
            assert_eq!((status, applied), (200, json!({"applied": 1})));
            assert!(suppressed(server, "jane@example.com").await);
            assert!(
                certificates
                    .asked
                    .lock()
                    .unwrap()
                    .iter()
                    .all(|url| url == CERT_URL)
            );

            // A subscription's confirmation: answered, nothing applied.
            let (status, applied) = post(
                server,
                signed(
                    envelope("SubscriptionConfirmation", "You have chosen to subscribe"),
                    signer(),
                ),
            )
            .await;
            assert_eq!((status, applied), (200, json!({"applied": 0})));
        })
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ses_callback_whose_certificate_cannot_be_fetched_is_503_so_sns_retries() {
    let certificates = Arc::new(Certificates {
        fail: true,
        asked: Mutex::new(Vec::new()),
    });
    support::run_on(server_taking_ses(certificates.clone()).await, |server| {
        Box::pin(async move {
            let (status, _) =
                post(server, signed(envelope("Notification", BOUNCE), signer())).await;
            assert_eq!(status, 503);
            assert_eq!(certificates.asked.lock().unwrap().len(), 1);
            assert!(!suppressed(server, "jane@example.com").await);
        })
    })
    .await;
}
