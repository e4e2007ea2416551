//! Digests on `MessagingService` over in-memory backends: a window flushes by
//! count or by time, into exactly one email listing its events, also with two
//! workers and after a worker died mid-window.

use std::sync::Arc;
use std::time::Duration;

use messaging_core::{InMemoryBackend, MessagingService, RetryPolicy, SubscribeOptions};
use messaging_model::{Message, MessageTemplate, NotificationStatus, TemplateKind};
use notification::NotificationService;
use notification::channel::{EmailMessage, RecordingChannel};
use notification::digest::{DigestRule, Digests};
use notification::store::{
    DigestStore, InMemoryDigestStore, InMemoryNotificationStore, InMemoryTemplateStore,
};
use serde_json::json;

const WAIT: Duration = Duration::from_secs(10);
const TOPIC: &str = "comment.posted";

fn options() -> SubscribeOptions {
    SubscribeOptions::new("notification")
        .with_retry(RetryPolicy::exponential(
            Duration::from_millis(10),
            Duration::from_millis(40),
        ))
        .with_block_timeout(Duration::from_millis(50))
}

fn template() -> MessageTemplate {
    MessageTemplate::new(
        "comments_digest",
        TemplateKind::Email,
        "{{#each events}}[{{this.text}}]{{/each}}",
    )
    .with_subject("{{count}} new comments")
    .with_variables(["events", "count"])
}

/// One worker's service over the shared stores.
struct Shared {
    store: InMemoryNotificationStore,
    templates: InMemoryTemplateStore,
    digests: InMemoryDigestStore,
    outbox: RecordingChannel<EmailMessage>,
}

impl Shared {
    async fn new() -> Self {
        let shared = Self {
            store: InMemoryNotificationStore::new(),
            templates: InMemoryTemplateStore::new(),
            digests: InMemoryDigestStore::new(),
            outbox: RecordingChannel::new(),
        };
        shared.service().create_template(template()).await.unwrap();
        shared
    }

    fn service(&self) -> Arc<NotificationService> {
        Arc::new(
            NotificationService::new(
                Arc::new(self.store.clone()),
                Arc::new(self.templates.clone()),
            )
            .with_email(Arc::new(self.outbox.clone())),
        )
    }

    fn digests(&self, messaging: &MessagingService, rule: DigestRule) -> Digests {
        Digests::new(
            self.service(),
            Arc::new(self.digests.clone()),
            vec![rule],
            messaging,
        )
    }
}

fn comment(user: &str, text: &str) -> serde_json::Value {
    json!({"user_id": user, "email": format!("{user}@example.com"), "text": text})
}

/// The bodies sent, sorted.
fn bodies(outbox: &RecordingChannel<EmailMessage>) -> Vec<String> {
    let mut bodies: Vec<String> = outbox
        .sent()
        .into_iter()
        .map(|email| email.text.unwrap_or_default())
        .collect();
    bodies.sort();
    bodies
}

#[tokio::test]
async fn a_window_flushes_when_it_holds_max_count_events_into_one_email() {
    let shared = Shared::new().await;
    let messaging = MessagingService::in_memory();
    let rule = DigestRule::new(
        TOPIC,
        "comments",
        "comments_digest",
        3,
        Duration::from_secs(3600),
    );
    shared
        .digests(&messaging, rule)
        .listen(&messaging, options())
        .await
        .unwrap();
    for text in ["a", "b", "c", "d"] {
        messaging
            .publish(TOPIC, comment("ann", text))
            .await
            .unwrap();
    }
    let sent = shared.outbox.wait_for(1, WAIT).await.expect("one digest");
    assert_eq!(sent[0].subject, "3 new comments");
    assert_eq!(sent[0].text.as_deref(), Some("[a][b][c]"));
    assert_eq!(sent[0].to.address(), "ann@example.com");
    // "d" opened the next window, which waits for its hour (or two more).
    for text in ["e", "f"] {
        messaging
            .publish(TOPIC, comment("ann", text))
            .await
            .unwrap();
    }
    shared
        .outbox
        .wait_for(2, WAIT)
        .await
        .expect("a second digest");
    assert_eq!(bodies(&shared.outbox), ["[a][b][c]", "[d][e][f]"]);
    let rows = shared.store.all();
    assert_eq!(rows.len(), 2);
    assert!(rows.iter().all(|n| n.status == NotificationStatus::Sent));
    messaging.shutdown().await;
}

#[tokio::test]
async fn a_window_flushes_after_max_age_by_its_delayed_message_and_users_are_apart() {
    let shared = Shared::new().await;
    let messaging = MessagingService::in_memory();
    let rule = DigestRule::new(
        TOPIC,
        "comments",
        "comments_digest",
        100,
        Duration::from_millis(200),
    );
    shared
        .digests(&messaging, rule)
        .listen(&messaging, options())
        .await
        .unwrap();
    messaging.publish(TOPIC, comment("ann", "a")).await.unwrap();
    messaging.publish(TOPIC, comment("bob", "x")).await.unwrap();
    messaging.publish(TOPIC, comment("ann", "b")).await.unwrap();
    let sent = shared.outbox.wait_for(2, WAIT).await.expect("two digests");
    let mut got: Vec<(String, String)> = sent
        .iter()
        .map(|e| {
            (
                e.to.address().to_owned(),
                e.text.clone().unwrap_or_default(),
            )
        })
        .collect();
    got.sort();
    assert_eq!(
        got,
        [
            ("ann@example.com".to_owned(), "[a][b]".to_owned()),
            ("bob@example.com".to_owned(), "[x]".to_owned())
        ]
    );
    messaging.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_workers_send_exactly_one_digest_per_window() {
    let shared = Shared::new().await;
    let backend = Arc::new(InMemoryBackend::new());
    let workers: Vec<MessagingService> = (0..2)
        .map(|_| MessagingService::new(backend.clone()))
        .collect();
    for worker in &workers {
        let rule = DigestRule::new(
            TOPIC,
            "comments",
            "comments_digest",
            4,
            Duration::from_secs(3600),
        );
        shared
            .digests(worker, rule)
            .listen(worker, options())
            .await
            .unwrap();
    }
    for i in 0..8 {
        workers[0]
            .publish(TOPIC, comment("ann", &i.to_string()))
            .await
            .unwrap();
    }
    // Two windows of four: each flushed once, whichever worker saw its fourth event.
    let rows = shared
        .store
        .wait_for(WAIT, |all| {
            all.iter()
                .filter(|n| n.status == NotificationStatus::Sent)
                .count()
                == 2
        })
        .await
        .expect("two digests");
    assert_eq!(rows.len(), 2);
    let sent = shared.outbox.sent();
    assert_eq!(sent.len(), 2, "{sent:?}");
    let mut seen: Vec<char> = sent
        .iter()
        .flat_map(|e| {
            e.text
                .clone()
                .unwrap_or_default()
                .chars()
                .collect::<Vec<_>>()
        })
        .filter(char::is_ascii_digit)
        .collect();
    seen.sort();
    assert_eq!(
        seen,
        ['0', '1', '2', '3', '4', '5', '6', '7'],
        "every event once"
    );
    for worker in &workers {
        worker.shutdown().await;
    }
}

#[tokio::test]
async fn a_worker_killed_mid_window_leaves_a_window_that_is_flushed_once() {
    let shared = Shared::new().await;
    let messaging = MessagingService::in_memory();
    let rule = DigestRule::new(
        TOPIC,
        "comments",
        "comments_digest",
        100,
        Duration::from_millis(100),
    );
    let digests = shared.digests(&messaging, rule.clone());
    let first = Message::new(TOPIC, comment("ann", "a")).unwrap();

    // Worker 1 appended the opening event and died before publishing the
    // window's flush message (or acknowledging the event).
    let opened = shared
        .digests
        .append_digest_event(
            "ann",
            "comments",
            &first.id.to_string(),
            &first.payload,
            100,
            chrono::Utc::now(),
        )
        .await
        .unwrap();
    assert!(opened.opened_by_this_event);

    // Worker 2 gets the event again (redelivered): it publishes the flush
    // (and takes another event); once the flush message is consumed, the
    // window is sent once.
    digests.collect(&rule, &first).await.unwrap();
    let second = Message::new(TOPIC, comment("ann", "b")).unwrap();
    digests.collect(&rule, &second).await.unwrap();
    digests.listen(&messaging, options()).await.unwrap();
    let sent = shared.outbox.wait_for(1, WAIT).await.expect("the digest");
    assert_eq!(sent[0].text.as_deref(), Some("[a][b]"));

    // A worker that closed the next window and died before sending: the flush
    // is redelivered (twice, even; and the window's own delayed flush comes
    // too) and one digest is sent.
    let third = Message::new(TOPIC, comment("ann", "c")).unwrap();
    digests.collect(&rule, &third).await.unwrap();
    let window = shared
        .digests
        .append_digest_event(
            "ann",
            "comments",
            &third.id.to_string(),
            &third.payload,
            100,
            chrono::Utc::now(),
        )
        .await
        .unwrap()
        .window_id;
    shared
        .digests
        .close_digest("ann", window, chrono::Utc::now())
        .await
        .unwrap();
    let again = digests
        .flush("ann", "comments", window)
        .await
        .unwrap()
        .expect("sent");
    let twice = digests
        .flush("ann", "comments", window)
        .await
        .unwrap()
        .expect("the same");
    assert_eq!(again.id, twice.id);
    assert_eq!(twice.status, NotificationStatus::Sent);
    assert_eq!(shared.store.all().len(), 2);
    assert_eq!(bodies(&shared.outbox), ["[a][b]", "[c]"]);
    messaging.shutdown().await;
}

#[tokio::test]
async fn a_flush_of_an_unknown_window_sends_nothing() {
    let shared = Shared::new().await;
    let messaging = MessagingService::in_memory();
    let rule = DigestRule::new(
        TOPIC,
        "comments",
        "comments_digest",
        2,
        Duration::from_secs(60),
    );
    let digests = shared.digests(&messaging, rule);
    assert!(
        digests
            .flush("ann", "comments", uuid::Uuid::now_v7())
            .await
            .unwrap()
            .is_none()
    );
    assert!(shared.outbox.sent().is_empty());
    assert!(shared.store.all().is_empty());
}
