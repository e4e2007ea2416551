//! Delivery events matched to what the worker sent, end to end: the real
//! binary sends to Postfix's smtp-sink, a provider callback is built from the
//! mail the sink received (signed as the provider signs it), verified and
//! applied with the library's applier on the worker's PostgreSQL schema, as a
//! webhook endpoint would.
//!
//! Run: `cargo test -p messaging-cli --test delivery_events`.

mod support;

use std::sync::Arc;

use messaging_model::NotificationKind;
use notification::store::{SuppressionReason, SuppressionStore};
use notification_delivery_events::DeliveryEventError;
use notification_delivery_events::apply::DeliveryEventApplier;
use notification_delivery_events::mailgun::MailgunVerifier;
use notification_delivery_events::postmark::PostmarkVerifier;
use notification_store_postgres::{PostgresStore, PostgresStoreConfig};
use serde_json::{Value, json};
use support::{DumpedMail, Env, PostfixSink};

const MAILGUN_KEY: &str = "key-e2e-signing";
const NO_HEADERS: &[(&str, &str)] = &[];

/// A store on the test's schema, migrated.
async fn store(env: &Env) -> PostgresStore {
    let store = PostgresStore::connect(
        PostgresStoreConfig::new(support::database_url()).with_schema(&env.schema),
    )
    .await
    .expect("PostgreSQL");
    store.migrate().await.expect("migrate");
    store
}

async fn publish_email(env: &Env, user: &str, to: &str) {
    let body = format!(r#"{{"user_id":"{user}","to":"{to}","subject":"Hello","text":"Hi"}}"#);
    let published = env
        .run(&["publish", "notification.email", "--json", &body])
        .await;
    assert_eq!(published.code, Some(0), "{}", published.stderr);
}

/// The user's notifications, newest first, once there are `count` and the
/// newest has an outcome.
async fn notifications(env: &Env, user: &str, count: usize) -> Vec<Value> {
    env.eventually("the notifications recorded with an outcome", || async {
        let inbox = env.json(&["inbox", user, "--attempts", "--json"]).await;
        let items = inbox["notifications"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        (items.len() == count && items[0]["status"] != "sending" && items[0]["status"] != "pending")
            .then_some(items)
    })
    .await
}

/// A Mailgun `failed` / `permanent` webhook for the message whose `Message-ID`
/// header was `message_id`, signed with `key` at the current time (the
/// format of Mailgun's webhook documentation).
fn mailgun_hard_bounce(key: &str, message_id: &str, recipient: &str) -> String {
    let now = chrono::Utc::now();
    let timestamp = now.timestamp().to_string();
    let token = uuid::Uuid::now_v7().simple().to_string();
    json!({
        "signature": {
            "timestamp": timestamp,
            "token": token,
            "signature": MailgunVerifier::sign(key, &timestamp, &token),
        },
        "event-data": {
            "id": "G9Bn5sl1TC6nu79C8C0bwg",
            "timestamp": now.timestamp_micros() as f64 / 1e6,
            "log-level": "error",
            "event": "failed",
            "severity": "permanent",
            "reason": "bounce",
            "delivery-status": {
                "attempt-no": 1,
                "code": 550,
                "message": "5.1.1 The email account that you tried to reach does not exist",
                "description": ""
            },
            "message": {
                "headers": {
                    "to": recipient,
                    "message-id": message_id,
                    "from": "noreply@e2e.invalid",
                    "subject": "Hello"
                }
            },
            "recipient": recipient,
            "recipient-domain": "example.com",
            "user-variables": {}
        }
    })
    .to_string()
}

/// The only mail the sink holds.
async fn the_mail(postfix: &PostfixSink) -> DumpedMail {
    let mut mails = postfix.wait_for_mails(1).await;
    assert_eq!(mails.len(), 1, "{mails:#?}");
    mails.remove(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mailgun_bounce_naming_the_message_id_the_sink_received_bounces_and_suppresses() {
    support::run(|env| Box::pin(message_id_scenario(env))).await;
}

async fn message_id_scenario(env: &Env) {
    let postfix = PostfixSink::start().await;
    env.send_mail_to(postfix.port());
    let worker = env.worker(&[]).await;
    publish_email(env, "u-jo", "jo@example.com").await;
    let mail = the_mail(&postfix).await;
    let sent = notifications(env, "u-jo", 1).await.remove(0);
    assert_eq!(sent["status"], "sent", "{sent:#}");
    let (code, output) = worker.terminate().await;
    assert_eq!(code, Some(0), "{output:?}");

    // Mailgun names the message by its Message-ID header, without brackets.
    let header = mail.header("Message-ID").expect("a Message-ID header");
    let message_id = header.trim().trim_matches(['<', '>']);
    assert_eq!(
        sent["attempt_log"][0]["provider_message_id"], message_id,
        "the attempt logged the id the relay received: {sent:#}"
    );
    let body = mailgun_hard_bounce(MAILGUN_KEY, message_id, "jo@example.com");
    let verifier = MailgunVerifier::new(MAILGUN_KEY);
    // Signed with another key: refused, nothing applied.
    let forged = mailgun_hard_bounce("not-the-key", message_id, "jo@example.com");
    assert_eq!(
        verifier.parse(forged.as_bytes(), NO_HEADERS),
        Err(DeliveryEventError::BadSignature)
    );
    let events = verifier
        .parse(body.as_bytes(), NO_HEADERS)
        .expect("a genuine callback");
    let store = store(env).await;
    let applier = DeliveryEventApplier::new(Arc::new(store.clone()), Arc::new(store.clone()));
    let applied = applier.apply_all(&events).await.expect("applied");
    let bounced = applied[0]
        .notification
        .clone()
        .expect("the event names the notification the worker sent");
    assert_eq!(bounced.id.to_string(), sent["id"].as_str().unwrap());
    let suppression = store
        .find_suppression(NotificationKind::Email, "jo@example.com")
        .await
        .unwrap()
        .expect("suppressed");
    assert_eq!(suppression.reason, SuppressionReason::HardBounce);
    store.close().await;
    let row = notifications(env, "u-jo", 1).await.remove(0);
    assert_eq!(row["status"], "bounced", "{row:#}");
    assert!(
        row["error"].as_str().is_some_and(|e| e.contains("5.1.1")),
        "{row:#}"
    );
    assert_eq!(
        row["attempt_log"][0]["report"]["status"], "bounced",
        "{row:#}"
    );

    // A new worker process: the next email to the address is not sent.
    let worker = env.worker(&[]).await;
    publish_email(env, "u-jo", "jo@example.com").await;
    let latest = notifications(env, "u-jo", 2).await.remove(0);
    assert_eq!(latest["status"], "suppressed", "{latest:#}");
    let (code, output) = worker.terminate().await;
    assert_eq!(code, Some(0), "{output:?}");
    assert_eq!(
        postfix.received(),
        [("jo@example.com".to_owned(), 1)].into_iter().collect(),
        "no second mail"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_postmark_bounce_finds_the_notification_by_the_metadata_header_of_the_relay() {
    support::run(|env| Box::pin(metadata_scenario(env))).await;
}

/// `provider = "postmark"`: the relay names the message by an id of its own,
/// so the event is matched by the notification id the channel sent in
/// `X-PM-Metadata-notification_id`, which Postmark returns as `Metadata`.
async fn metadata_scenario(env: &Env) {
    let postfix = PostfixSink::start().await;
    env.send_mail_to(postfix.port());
    env.edit_config(|text| text.replace("[smtp]\n", "[smtp]\nprovider = \"postmark\"\n"));
    let worker = env.worker(&[]).await;
    publish_email(env, "u-kim", "kim@example.com").await;
    let mail = the_mail(&postfix).await;
    let sent = notifications(env, "u-kim", 1).await.remove(0);
    assert_eq!(sent["status"], "sent", "{sent:#}");
    let (code, output) = worker.terminate().await;
    assert_eq!(code, Some(0), "{output:?}");

    let notification_id = mail
        .header("X-PM-Metadata-notification_id")
        .expect("the metadata header");
    assert_eq!(notification_id, sent["id"].as_str().unwrap());
    let body = json!({
        "RecordType": "Bounce",
        "ID": 4323372036854775807u64,
        "Type": "HardBounce",
        "TypeCode": 1,
        "Name": "Hard bounce",
        // Postmark's own id: no attempt logged it.
        "MessageID": "883953f4-6105-42a2-a16a-77a8eac79483",
        "Metadata": {"notification_id": notification_id},
        "Description": "The server was unable to deliver your message (ex: unknown user, mailbox not found).",
        "Details": "smtp;550 5.1.1 The email account that you tried to reach does not exist.",
        "Email": "kim@example.com",
        "From": "noreply@e2e.invalid",
        "BouncedAt": chrono::Utc::now().to_rfc3339(),
        "Subject": "Hello"
    })
    .to_string();
    let verifier = PostmarkVerifier::new("hooks", "s3cret");
    let wrong = [("Authorization", "Basic bm9wZTpub3Bl")];
    assert_eq!(
        verifier.parse(body.as_bytes(), &wrong[..]),
        Err(DeliveryEventError::BadCredentials)
    );
    let headers = [("Authorization", "Basic aG9va3M6czNjcmV0")];
    let events = verifier
        .parse(body.as_bytes(), &headers[..])
        .expect("a genuine callback");
    let store = store(env).await;
    let applier = DeliveryEventApplier::new(Arc::new(store.clone()), Arc::new(store.clone()));
    let applied = applier.apply_all(&events).await.expect("applied");
    assert_eq!(
        applied[0].notification.as_ref().map(|n| n.id.to_string()),
        Some(notification_id.clone())
    );
    store.close().await;
    let row = notifications(env, "u-kim", 1).await.remove(0);
    assert_eq!(row["status"], "bounced", "{row:#}");
    assert_eq!(
        row["attempt_log"][0]["report"]["status"], "bounced",
        "the accepted attempt holds the report: {row:#}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ses_bounce_without_tags_finds_the_notification_by_the_id_of_the_ses_reply() {
    support::run(|env| Box::pin(ses_scenario(env))).await;
}

/// `provider = "ses"`: the attempt records SES's id from its `250 Ok <id>`
/// reply (the project's sink answers in SES's form here), and an identity
/// notification, which carries no tags, names the message by it. The SNS
/// envelope's signature is the crate's own tests' business
/// (`notification-delivery-events/tests/ses.rs`): here the inner SES message
/// is parsed.
async fn ses_scenario(env: &Env) {
    use notification_delivery_events::ses::parse_ses_notification;
    use smtp_sink::{Reply, SmtpCommand};

    let ses_id = "0100018c3a6f1e2d-4c5b9a8f-7e6d-4c5b-9a21-7e6d5c4b3a21-000000";
    env.sink.fail_next(
        SmtpCommand::MessageEnd,
        1,
        Reply::new(250, format!("Ok {ses_id}")),
    );
    env.edit_config(|text| text.replace("[smtp]\n", "[smtp]\nprovider = \"ses\"\n"));
    let worker = env.worker(&[]).await;
    publish_email(env, "u-lee", "lee@example.com").await;
    let sent = notifications(env, "u-lee", 1).await.remove(0);
    assert_eq!(sent["status"], "sent", "{sent:#}");
    assert_eq!(
        sent["attempt_log"][0]["provider_message_id"], ses_id,
        "{sent:#}"
    );
    let (code, output) = worker.terminate().await;
    assert_eq!(code, Some(0), "{output:?}");

    let message = json!({
        "notificationType": "Bounce",
        "bounce": {
            "bounceType": "Permanent",
            "bounceSubType": "General",
            "bouncedRecipients": [{
                "emailAddress": "lee@example.com",
                "action": "failed",
                "status": "5.1.1",
                "diagnosticCode": "smtp; 550 5.1.1 user unknown"
            }],
            "timestamp": chrono::Utc::now().to_rfc3339(),
            "feedbackId": "0100018c3a6f1e2d-feedback-000000"
        },
        "mail": {
            "timestamp": chrono::Utc::now().to_rfc3339(),
            "source": "noreply@e2e.invalid",
            "messageId": ses_id,
            "destination": ["lee@example.com"]
        }
    })
    .to_string();
    let events = parse_ses_notification(&message).expect("an SES bounce");
    assert_eq!(events[0].notification_id, None, "no tags");
    let store = store(env).await;
    let applier = DeliveryEventApplier::new(Arc::new(store.clone()), Arc::new(store.clone()));
    let applied = applier.apply_all(&events).await.expect("applied");
    assert_eq!(
        applied[0].notification.as_ref().map(|n| n.id.to_string()),
        sent["id"].as_str().map(str::to_owned)
    );
    store.close().await;
    let row = notifications(env, "u-lee", 1).await.remove(0);
    assert_eq!(row["status"], "bounced", "{row:#}");
}
