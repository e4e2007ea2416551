//! Event listeners on `MessagingService::in_memory()`: published events become
//! notifications; failures take the messaging retry and dead-letter path.

use std::sync::Arc;
use std::time::Duration;

use messaging_core::{DeadLetter, MessagingService, RetryPolicy, SubscribeOptions};
use messaging_model::{Message, NotificationKind, NotificationStatus, topics};
use notification::channel::{
    EmailMessage, ProviderRetryPolicy, RecordingChannel, SmsMessage, SmtpConfig, SmtpEmailChannel,
    StubFailure,
};
use notification::events::{EventRules, UserRegistered};
use notification::store::{InMemoryNotificationStore, InMemoryTemplateStore};
use notification::{
    NotificationAction, NotificationError, NotificationService, SystemNotificationRequest,
};
use serde_json::json;
use smtp_sink::{Reply, SmtpCommand, SmtpSink};

const WAIT: Duration = Duration::from_secs(10);

fn options() -> SubscribeOptions {
    SubscribeOptions::new("notification")
        .with_retry(RetryPolicy::exponential(
            Duration::from_millis(10),
            Duration::from_millis(40),
        ))
        .with_block_timeout(Duration::from_millis(50))
}

struct Setup {
    messaging: MessagingService,
    service: Arc<NotificationService>,
}

async fn listen(service: NotificationService, rules: EventRules) -> Setup {
    let service = Arc::new(service);
    service.install_default_templates().await.unwrap();
    let messaging = MessagingService::in_memory();
    service
        .listen_to_events_with(&messaging, &rules, options())
        .await
        .unwrap();
    Setup { messaging, service }
}

fn service_with_store() -> (NotificationService, InMemoryNotificationStore) {
    let store = InMemoryNotificationStore::new();
    let service = NotificationService::new(
        Arc::new(store.clone()),
        Arc::new(InMemoryTemplateStore::new()),
    );
    (service, store)
}

async fn smtp_channel(sink: &SmtpSink) -> Arc<SmtpEmailChannel> {
    Arc::new(
        SmtpEmailChannel::new(
            SmtpConfig::dangerous_unencrypted(sink.host())
                .with_port(sink.port())
                .with_from("noreply@example.com", Some("Example"))
                .with_retry(ProviderRetryPolicy::none()),
        )
        .unwrap(),
    )
}

async fn dead_letters(messaging: &MessagingService, topic: &str, n: usize) -> Vec<DeadLetter> {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let dead = messaging.dead_letters(topic, 100).await.unwrap();
        if dead.len() >= n {
            return dead;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no dead letter on {topic} in time"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn user_registered_sends_the_welcome_email() {
    let sink = SmtpSink::start().await.unwrap();
    let (service, store) = service_with_store();
    let service = service.with_email(smtp_channel(&sink).await);
    let Setup { messaging, .. } = listen(service, EventRules::defaults()).await;

    messaging
        .publish(
            topics::USER_REGISTERED,
            json!({"user_id": 42, "email": "ann@example.com", "name": "Ann"}),
        )
        .await
        .unwrap();

    let messages = sink.wait_for_messages(1, WAIT).await.unwrap();
    assert_eq!(messages[0].recipients, ["ann@example.com"]);
    assert_eq!(messages[0].subject().as_deref(), Some("Welcome, Ann!"));
    assert!(messages[0].text_body().unwrap().contains("Hi Ann"));
    let recorded = store
        .wait_for(WAIT, |all| {
            all.iter().any(|n| n.status == NotificationStatus::Sent)
        })
        .await
        .unwrap();
    assert_eq!(recorded[0].user_id, "42");
    assert_eq!(recorded[0].kind, NotificationKind::Email);
    assert!(recorded[0].sent_at.is_some());
    messaging.shutdown().await;
}

#[tokio::test]
async fn wallet_recharged_records_a_system_notification_and_sends_the_email() {
    let sink = SmtpSink::start().await.unwrap();
    let (service, store) = service_with_store();
    let service = service.with_email(smtp_channel(&sink).await);
    let Setup { messaging, .. } = listen(service, EventRules::defaults()).await;

    messaging
        .publish(
            topics::WALLET_RECHARGED,
            json!({"user_id": "u7", "email": "bob@example.com", "amount": "10.50", "currency": "EUR", "balance": "42.00"}),
        )
        .await
        .unwrap();

    let messages = sink.wait_for_messages(1, WAIT).await.unwrap();
    assert_eq!(messages[0].recipients, ["bob@example.com"]);
    assert_eq!(
        messages[0].subject().as_deref(),
        Some("Wallet recharged: 10.50 EUR")
    );
    assert!(
        messages[0]
            .text_body()
            .unwrap()
            .contains("New balance: 42.00 EUR")
    );
    let recorded = store
        .wait_for(WAIT, |all| {
            all.len() == 2 && all.iter().all(|n| n.status == NotificationStatus::Sent)
        })
        .await
        .unwrap();
    let system = recorded
        .iter()
        .find(|n| n.kind == NotificationKind::System)
        .unwrap();
    assert_eq!(system.user_id, "u7");
    assert_eq!(system.title, "Wallet recharged");
    assert!(system.content.contains("10.50 EUR"));
    messaging.shutdown().await;
}

#[tokio::test]
async fn a_failing_provider_is_retried_then_dead_lettered_and_replay_sends_once() {
    let email = RecordingChannel::<EmailMessage>::new();
    email.fail_always(StubFailure::Transient);
    let (service, store) = service_with_store();
    let service = service.with_email(Arc::new(email.clone()));
    let Setup { messaging, .. } = listen(service, EventRules::defaults()).await;

    let payload =
        serde_json::to_value(UserRegistered::new("u1", "ann@example.com", "Ann")).unwrap();
    messaging
        .publish(topics::USER_REGISTERED, payload)
        .await
        .unwrap();

    let dead = dead_letters(&messaging, topics::USER_REGISTERED, 1).await;
    // max_retry is 3: the first attempt and three retries.
    assert_eq!(email.attempts(), 4);
    assert_eq!(dead[0].attempts, 4);
    assert!(
        dead[0].error.contains("SMTP delivery failed (451)"),
        "{}",
        dead[0].error
    );
    let failed = store.all();
    // Every attempt updates one row: once, four rows (one per attempt).
    assert_eq!(failed.len(), 1, "one row per event: {failed:?}");
    assert_eq!(failed[0].status, NotificationStatus::Failed);

    // The provider recovers; replaying the dead letter sends exactly once.
    email.recover();
    messaging
        .replay_dead_letter(topics::USER_REGISTERED, &dead[0].id)
        .await
        .unwrap();
    let sent = email.wait_for(1, WAIT).await.unwrap();
    assert_eq!(sent[0].subject, "Welcome, Ann!");
    let after = store
        .wait_for(WAIT, |all| {
            all.iter()
                .filter(|n| n.status == NotificationStatus::Sent)
                .count()
                == 1
        })
        .await
        .unwrap();
    assert_eq!(after.len(), 1, "the replay sent on the same row");
    assert_eq!(after[0].id, failed[0].id);
    messaging.shutdown().await;
}

#[tokio::test]
async fn an_smtp_5xx_dead_letters_at_once() {
    let sink = SmtpSink::start().await.unwrap();
    sink.fail_next(
        SmtpCommand::Rcpt,
        usize::MAX,
        Reply::new(550, "5.1.1 no such user"),
    );
    let (service, store) = service_with_store();
    let service = service.with_email(smtp_channel(&sink).await);
    let Setup { messaging, .. } = listen(service, EventRules::defaults()).await;

    messaging
        .publish(
            topics::USER_REGISTERED,
            json!({"user_id": "u1", "email": "ghost@example.com", "name": "G"}),
        )
        .await
        .unwrap();
    let dead = dead_letters(&messaging, topics::USER_REGISTERED, 1).await;
    assert_eq!(dead[0].attempts, 1, "a permanent failure is not retried");
    assert!(
        dead[0].error.starts_with("permanent failure"),
        "{}",
        dead[0].error
    );
    assert_eq!(sink.command_count(SmtpCommand::Rcpt), 1);
    assert_eq!(store.all()[0].status, NotificationStatus::Failed);
    messaging.shutdown().await;
}

#[tokio::test]
async fn an_invalid_payload_is_dead_lettered_without_a_send() {
    let email = RecordingChannel::<EmailMessage>::new();
    let (service, store) = service_with_store();
    let service = service.with_email(Arc::new(email.clone()));
    let Setup { messaging, .. } = listen(service, EventRules::defaults()).await;

    messaging
        .publish(
            topics::USER_REGISTERED,
            json!({"user_id": "u1", "name": "no email"}),
        )
        .await
        .unwrap();
    let dead = dead_letters(&messaging, topics::USER_REGISTERED, 1).await;
    assert!(
        dead[0].error.contains("invalid user.registered payload"),
        "{}",
        dead[0].error
    );
    assert_eq!(email.attempts(), 0);
    assert!(store.is_empty());
    messaging.shutdown().await;
}

#[tokio::test]
async fn a_redelivered_event_does_not_send_twice() {
    let email = RecordingChannel::<EmailMessage>::new();
    let (service, store) = service_with_store();
    let service = service.with_email(Arc::new(email.clone()));
    let Setup { messaging, .. } = listen(service, EventRules::defaults()).await;

    let message = messaging
        .message(
            topics::USER_REGISTERED,
            json!({"user_id": "u1", "email": "ann@example.com", "name": "Ann"}),
        )
        .unwrap();
    messaging.publish_message(&message).await.unwrap();
    email.wait_for(1, WAIT).await.unwrap();
    // The same message (same id) delivered again, as after a consumer crash.
    messaging.publish_message(&message).await.unwrap();
    store
        .wait_for(WAIT, |all| {
            all.iter().filter(|n| n.user_id == "u1").count() == 1
        })
        .await
        .unwrap();
    // Let the second delivery be handled: wait until the topic has nothing pending.
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let stats = messaging.stats(topics::USER_REGISTERED).await.unwrap();
        if stats
            .groups
            .iter()
            .all(|group| group.pending == 0 && group.lag == 0)
        {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the redelivery was never handled"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(email.sent().len(), 1);
    assert_eq!(store.for_user("u1").len(), 1);
    messaging.shutdown().await;
}

#[tokio::test]
async fn notification_topics_turn_requests_into_sends() {
    let email = RecordingChannel::<EmailMessage>::new();
    let sms = RecordingChannel::<SmsMessage>::new();
    let (service, store) = service_with_store();
    let service = service
        .with_email(Arc::new(email.clone()))
        .with_sms(Arc::new(sms.clone()));
    let Setup { messaging, .. } = listen(service, EventRules::defaults()).await;

    messaging
        .publish(
            topics::NOTIFICATION_EMAIL,
            json!({"user_id": "u1", "to": "ann@example.com", "subject": "Direct", "text": "Plain", "html": "<b>Rich</b>"}),
        )
        .await
        .unwrap();
    messaging
        .publish(
            topics::NOTIFICATION_EMAIL,
            json!({"user_id": "u2", "to": "bob@example.com", "template": "welcome_email", "variables": {"name": "Bob", "email": "bob@example.com"}}),
        )
        .await
        .unwrap();
    messaging
        .publish(
            topics::NOTIFICATION_SMS,
            json!({"user_id": "u3", "to": "+14155550100", "text": "Code 12"}),
        )
        .await
        .unwrap();

    let emails = email.wait_for(2, WAIT).await.unwrap();
    let mut subjects: Vec<String> = emails.iter().map(|e| e.subject.clone()).collect();
    subjects.sort();
    assert_eq!(subjects, ["Direct", "Welcome, Bob!"]);
    let texts = sms.wait_for(1, WAIT).await.unwrap();
    assert_eq!(texts[0].text, "Code 12");
    store.wait_for(WAIT, |all| all.len() == 3).await.unwrap();
    messaging.shutdown().await;
}

#[tokio::test]
async fn an_application_adds_its_own_rule() {
    let (service, store) = service_with_store();
    let rules = EventRules::new().with_rule("order.shipped", |message: &Message| {
        let user_id = message.payload["user_id"].as_str().ok_or_else(|| {
            NotificationError::InvalidPayload {
                topic: message.topic.to_string(),
                reason: "user_id missing".into(),
            }
        })?;
        let order = message.payload["order"].as_str().unwrap_or("?");
        Ok(vec![NotificationAction::System(
            SystemNotificationRequest::new(
                user_id,
                "Order shipped",
                format!("Order {order} is on its way"),
            ),
        )])
    });
    let Setup {
        messaging, service, ..
    } = listen(service, rules).await;
    assert_eq!(
        messaging.subscriptions().await,
        [("order.shipped".to_owned(), "notification".to_owned())]
    );

    messaging
        .publish("order.shipped", json!({"user_id": "u9", "order": "A-1"}))
        .await
        .unwrap();
    let recorded = store.wait_for(WAIT, |all| !all.is_empty()).await.unwrap();
    assert_eq!(recorded[0].content, "Order A-1 is on its way");
    assert_eq!(service.notifications().unread_count("u9").await.unwrap(), 1);
    messaging.shutdown().await;
}
