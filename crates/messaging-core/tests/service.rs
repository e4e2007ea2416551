//! `MessagingService` against the in-memory backend, and against a backend that
//! can be switched off to show how failures surface.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use messaging_core::testsuite::FaultyBackend;
use messaging_core::{
    Backend, BackendAdmin, ConsumerId, HandlerError, InMemoryBackend, MessageBackend,
    MessagingError, MessagingService, ReadOptions, StartFrom, SubscribeOptions, TRACEPARENT_KEY,
    TraceContext,
};
use messaging_model::{Message, Topic, ValidationError, topics};
use serde_json::json;
use tokio::sync::mpsc;

/// The in-memory backend behind a switch ([`FaultyBackend::set_down`]): while
/// down, every call fails as an unreachable server would.
fn switchable() -> (Arc<FaultyBackend>, MessagingService) {
    let backend =
        Arc::new(FaultyBackend::new(Arc::new(InMemoryBackend::new())).with_name("switchable"));
    let service = MessagingService::new(backend.clone());
    (backend, service)
}

fn down() -> (Arc<FaultyBackend>, MessagingService) {
    let (backend, service) = switchable();
    backend.set_down(true);
    (backend, service)
}

fn assert_unavailable<T: std::fmt::Debug>(result: Result<T, MessagingError>) {
    match result {
        Err(MessagingError::Backend(error)) => assert!(error.is_transient(), "{error}"),
        other => panic!("expected an unavailable backend, got {other:?}"),
    }
}

/// A handler that forwards every message to a channel.
fn forwarding() -> (
    Arc<dyn messaging_core::MessageHandler>,
    mpsc::UnboundedReceiver<Message>,
) {
    let (sender, receiver) = mpsc::unbounded_channel();
    let handler = Arc::new(move |message: Message| {
        let sender = sender.clone();
        async move { sender.send(message).map_err(HandlerError::permanent) }
    });
    (handler, receiver)
}

async fn next(receiver: &mut mpsc::UnboundedReceiver<Message>) -> Message {
    tokio::time::timeout(Duration::from_secs(30), receiver.recv())
        .await
        .expect("a message within the deadline")
        .expect("channel open")
}

#[test]
fn backends_handlers_and_the_service_are_send_and_sync() {
    fn assert_send_sync<T: Send + Sync + ?Sized>() {}
    assert_send_sync::<dyn MessageBackend>();
    assert_send_sync::<dyn BackendAdmin>();
    assert_send_sync::<dyn Backend>();
    assert_send_sync::<dyn messaging_core::MessageHandler>();
    assert_send_sync::<MessagingService>();
    assert_send_sync::<InMemoryBackend>();
}

#[tokio::test]
async fn publish_returns_the_message_id_and_stores_the_message() {
    let (backend, service) = switchable();
    let id = service
        .publish(topics::USER_REGISTERED, json!({"user_id": 1}))
        .await
        .unwrap();
    let stats = service.stats(topics::USER_REGISTERED).await.unwrap();
    assert_eq!(stats.length, 1);
    let topic = Topic::try_from(topics::USER_REGISTERED).unwrap();
    backend
        .ensure_group(&topic, "g", StartFrom::Earliest)
        .await
        .unwrap();
    let delivered = backend
        .read(
            &ConsumerId::new(topic, "g", "c"),
            &ReadOptions::new_entries(10, Duration::ZERO),
        )
        .await
        .unwrap();
    assert_eq!(delivered[0].message.id, id);
    assert!(delivered[0].message.metadata.contains_key(TRACEPARENT_KEY));
}

#[tokio::test]
async fn publish_fails_with_a_transient_error_when_the_backend_is_down() {
    let (_, service) = down();
    assert_unavailable(service.publish("a.b", json!({})).await);
}

#[tokio::test]
async fn publish_rejects_bad_input_before_touching_the_backend() {
    let (_, service) = down();
    assert!(matches!(
        service.publish("bad topic", json!({})).await,
        Err(MessagingError::Validation(
            ValidationError::InvalidTopic { .. }
        ))
    ));
    assert!(matches!(
        service.publish("a.b", json!(42)).await,
        Err(MessagingError::Validation(
            ValidationError::PayloadNotObject { .. }
        ))
    ));
}

#[tokio::test]
async fn publish_batch_returns_ids_in_order() {
    let (_, service) = switchable();
    let ids = service
        .publish_batch("a.b", (0..5).map(|i| json!({ "i": i })).collect())
        .await
        .unwrap();
    assert_eq!(ids.len(), 5);
    assert!(ids.windows(2).all(|w| w[0] < w[1]));
    assert_eq!(service.stats("a.b").await.unwrap().length, 5);
}

#[tokio::test]
async fn publish_batch_fails_when_the_backend_is_down() {
    let (_, service) = down();
    assert_unavailable(service.publish_batch("a.b", vec![json!({})]).await);
}

#[tokio::test]
async fn publish_delayed_waits_in_the_backend_instead_of_the_stream() {
    let (_, service) = switchable();
    service
        .publish_delayed("a.b", json!({}), Duration::from_secs(3600))
        .await
        .unwrap();
    let stats = service.stats("a.b").await.unwrap();
    assert_eq!((stats.length, stats.scheduled), (0, 1));
}

#[tokio::test]
async fn publish_delayed_fails_when_the_backend_is_down() {
    let (_, service) = down();
    assert_unavailable(
        service
            .publish_delayed("a.b", json!({}), Duration::from_secs(1))
            .await,
    );
}

#[tokio::test]
async fn subscribe_hands_published_messages_to_the_handler() {
    let (_, service) = switchable();
    let (handler, mut received) = forwarding();
    service
        .subscribe_with(
            topics::WALLET_RECHARGED,
            SubscribeOptions::new("billing"),
            messaging_core::Shared(handler),
        )
        .await
        .unwrap();
    let id = service
        .publish(topics::WALLET_RECHARGED, json!({"amount": 10}))
        .await
        .unwrap();
    let message = next(&mut received).await;
    assert_eq!(message.id, id);
    assert_eq!(message.payload["amount"], 10);
    service.shutdown().await;
}

#[tokio::test]
async fn subscribing_twice_with_one_group_is_rejected() {
    let (_, service) = switchable();
    let (handler, _received) = forwarding();
    service
        .subscribe_with(
            "a.b",
            SubscribeOptions::new("g"),
            messaging_core::Shared(handler.clone()),
        )
        .await
        .unwrap();
    assert!(matches!(
        service
            .subscribe_with(
                "a.b",
                SubscribeOptions::new("g"),
                messaging_core::Shared(handler.clone())
            )
            .await,
        Err(MessagingError::AlreadySubscribed { .. })
    ));
    service
        .subscribe_with(
            "a.b",
            SubscribeOptions::new("other"),
            messaging_core::Shared(handler),
        )
        .await
        .unwrap();
    assert_eq!(service.subscriptions().await.len(), 2);
    service.shutdown().await;
}

#[tokio::test]
async fn subscribe_fails_when_the_backend_is_down() {
    let (_, service) = down();
    let (handler, _received) = forwarding();
    assert_unavailable(
        service
            .subscribe_with(
                "a.b",
                SubscribeOptions::new("g"),
                messaging_core::Shared(handler),
            )
            .await,
    );
    assert!(service.subscriptions().await.is_empty());
}

#[tokio::test]
async fn subscribe_rejects_nonsense_options() {
    let (_, service) = switchable();
    let (handler, _received) = forwarding();
    for options in [
        SubscribeOptions::new("g").with_concurrency(0),
        SubscribeOptions::new("g").with_batch_size(0),
        SubscribeOptions::new("g").with_visibility_timeout(Duration::ZERO),
        SubscribeOptions::new("g").with_max_deliveries(0),
        SubscribeOptions::new(""),
        // Extreme values once made `subscribe_with` return Ok and its task panic.
        SubscribeOptions::new("g").with_concurrency(usize::MAX),
        SubscribeOptions::new("g").with_batch_size(usize::MAX),
        SubscribeOptions::new("g").with_visibility_timeout(Duration::MAX),
        SubscribeOptions::new("g").with_block_timeout(Duration::MAX),
        SubscribeOptions::new("g").with_shutdown_timeout(Duration::MAX),
        SubscribeOptions::new("g").with_max_retry_delay(Duration::MAX),
    ] {
        assert!(matches!(
            service
                .subscribe_with("a.b", options, messaging_core::Shared(handler.clone()))
                .await,
            Err(MessagingError::InvalidOption(_))
        ));
    }
}

#[tokio::test]
async fn a_subscription_rides_out_a_backend_outage() {
    let (backend, service) = switchable();
    let (handler, mut received) = forwarding();
    service
        .subscribe_with(
            "a.b",
            SubscribeOptions::new("g").with_block_timeout(Duration::from_millis(20)),
            messaging_core::Shared(handler),
        )
        .await
        .unwrap();
    backend.set_down(true);
    assert_unavailable(service.publish("a.b", json!({})).await);
    backend.set_down(false);
    let id = service.publish("a.b", json!({})).await.unwrap();
    assert_eq!(next(&mut received).await.id, id);
    service.shutdown().await;
}

#[tokio::test]
async fn unsubscribe_stops_the_subscription() {
    let (_, service) = switchable();
    let (handler, _received) = forwarding();
    service
        .subscribe_with(
            "a.b",
            SubscribeOptions::new("g"),
            messaging_core::Shared(handler),
        )
        .await
        .unwrap();
    service.unsubscribe("a.b").await.unwrap();
    assert!(service.subscriptions().await.is_empty());
}

#[tokio::test]
async fn unsubscribe_from_an_unknown_topic_is_an_error() {
    let (_, service) = switchable();
    assert!(matches!(
        service.unsubscribe("never.subscribed").await,
        Err(MessagingError::NotSubscribed { .. })
    ));
}

#[tokio::test]
async fn create_list_and_delete_topics() {
    let (_, service) = switchable();
    service.create_topic("b.topic").await.unwrap();
    service.create_topic("a.topic").await.unwrap();
    assert_eq!(
        service.list_topics().await.unwrap(),
        vec!["a.topic", "b.topic"]
    );
    assert!(service.delete_topic("a.topic").await.unwrap());
    assert!(!service.delete_topic("a.topic").await.unwrap());
    assert_eq!(service.list_topics().await.unwrap(), vec!["b.topic"]);
}

#[tokio::test]
async fn topic_administration_fails_when_the_backend_is_down() {
    let (_, service) = down();
    assert_unavailable(service.create_topic("a.b").await);
    assert_unavailable(service.delete_topic("a.b").await);
    assert_unavailable(service.list_topics().await);
}

#[tokio::test]
async fn topic_administration_rejects_invalid_names() {
    let (_, service) = switchable();
    assert!(matches!(
        service.create_topic("").await,
        Err(MessagingError::Validation(_))
    ));
    assert!(matches!(
        service.delete_topic("a b").await,
        Err(MessagingError::Validation(_))
    ));
}

#[tokio::test]
async fn health_reports_the_backend_and_subscriptions() {
    let (_, service) = switchable();
    let (handler, _received) = forwarding();
    service
        .subscribe_with(
            "a.b",
            SubscribeOptions::new("g"),
            messaging_core::Shared(handler),
        )
        .await
        .unwrap();
    let report = service.health().await.unwrap();
    assert_eq!(report.backend, "switchable");
    assert_eq!(report.subscriptions, 1);
    assert!(report.warnings.is_empty());
    service.shutdown().await;
}

#[tokio::test]
async fn health_fails_when_the_backend_is_down() {
    let (_, service) = down();
    assert_unavailable(service.health().await);
}

#[tokio::test]
async fn replaying_an_unknown_dead_letter_is_a_typed_error() {
    let (_, service) = switchable();
    assert!(matches!(
        service.replay_dead_letter("a.b", "nope").await,
        Err(MessagingError::DeadLetterNotFound { .. })
    ));
}

#[tokio::test]
async fn max_retry_above_the_limit_is_rejected() {
    assert!(matches!(
        MessagingService::in_memory().with_max_retry(1_000),
        Err(MessagingError::Validation(
            ValidationError::MaxRetryOutOfRange { .. }
        ))
    ));
}

#[tokio::test]
async fn a_message_published_by_a_handler_continues_the_trace() {
    let service = Arc::new(MessagingService::in_memory());
    let (handler, mut received) = forwarding();
    service
        .subscribe_with(
            "second.hop",
            SubscribeOptions::new("g"),
            messaging_core::Shared(handler),
        )
        .await
        .unwrap();
    let relay = service.clone();
    service
        .subscribe_with(
            "first.hop",
            SubscribeOptions::new("g"),
            move |message: Message| {
                let relay = relay.clone();
                async move {
                    relay
                        .publish("second.hop", message.payload)
                        .await
                        .map(|_| ())
                        .map_err(HandlerError::retry)
                }
            },
        )
        .await
        .unwrap();
    let origin = TraceContext::new_root();
    let message = Message::new("first.hop", json!({}))
        .unwrap()
        .with_metadata(TRACEPARENT_KEY, origin.to_string());
    service.publish_message(&message).await.unwrap();
    let relayed = next(&mut received).await;
    let context = TraceContext::parse(&relayed.metadata[TRACEPARENT_KEY]).unwrap();
    assert_eq!(context.trace_id, origin.trace_id);
    assert_ne!(context.span_id, origin.span_id);
    service.shutdown().await;
}

#[tokio::test]
async fn batch_and_delayed_messages_carry_a_traceparent() {
    let (backend, service) = switchable();
    service
        .publish_batch("traced.batch", vec![json!({}), json!({})])
        .await
        .unwrap();
    let built = Message::new("traced.batch", json!({})).unwrap();
    service.publish_messages(&[built]).await.unwrap();
    service
        .publish_at(
            "traced.batch",
            json!({}),
            Utc::now() - chrono::Duration::seconds(1),
        )
        .await
        .unwrap();
    let topic = Topic::try_from("traced.batch").unwrap();
    backend
        .ensure_group(&topic, "g", StartFrom::Earliest)
        .await
        .unwrap();
    let delivered = backend
        .read(
            &ConsumerId::new(topic, "g", "c"),
            &ReadOptions::new_entries(10, Duration::ZERO),
        )
        .await
        .unwrap();
    assert_eq!(delivered.len(), 4);
    for delivery in delivered {
        let header = &delivery.message.metadata[TRACEPARENT_KEY];
        assert!(TraceContext::parse(header).is_some(), "{header:?}");
    }
}

#[tokio::test]
async fn two_services_in_one_group_share_the_work() {
    let backend: Arc<dyn Backend> = Arc::new(InMemoryBackend::new());
    let (first, second) = (
        MessagingService::new(backend.clone()),
        MessagingService::new(backend.clone()),
    );
    let (handler, mut received) = forwarding();
    for service in [&first, &second] {
        service
            .subscribe_with(
                "shared.work",
                SubscribeOptions::new("workers"),
                messaging_core::Shared(handler.clone()),
            )
            .await
            .unwrap();
    }
    let ids: BTreeSet<_> = first
        .publish_batch("shared.work", (0..50).map(|i| json!({ "i": i })).collect())
        .await
        .unwrap()
        .into_iter()
        .collect();
    let mut got = BTreeSet::new();
    for _ in 0..50 {
        got.insert(next(&mut received).await.id);
    }
    assert_eq!(got, ids);
    first.shutdown().await;
    second.shutdown().await;
}

#[tokio::test]
async fn delays_past_the_maximum_are_typed_errors_and_store_nothing() {
    let (_, service) = switchable();
    for delay in [
        Duration::MAX,
        Duration::from_secs(u64::MAX),
        messaging_model::MAX_DELAY + Duration::from_secs(1),
    ] {
        assert!(matches!(
            service.publish_delayed("a.b", json!({}), delay).await,
            Err(MessagingError::Validation(
                ValidationError::DelayTooLong { .. }
            ))
        ));
    }
    let far = DateTime::<Utc>::MAX_UTC;
    assert!(matches!(
        service.publish_at("a.b", json!({}), far).await,
        Err(MessagingError::Validation(
            ValidationError::DelayTooLong { .. }
        ))
    ));
    let stats = service.stats("a.b").await.unwrap();
    assert_eq!((stats.length, stats.scheduled), (0, 0));
    // The longest accepted delay is accepted.
    service
        .publish_delayed("a.b", json!({}), messaging_model::MAX_DELAY)
        .await
        .unwrap();
    assert_eq!(service.stats("a.b").await.unwrap().scheduled, 1);
}

#[tokio::test]
async fn payloads_nested_past_the_depth_limit_are_refused_at_publish() {
    let (_, service) = switchable();
    let mut deep = json!({});
    for _ in 0..200 {
        deep = json!({ "x": deep });
    }
    assert!(matches!(
        service.publish("a.b", deep).await,
        Err(MessagingError::Validation(
            ValidationError::PayloadTooDeep { .. }
        ))
    ));
    assert_eq!(service.stats("a.b").await.unwrap().length, 0);
}

#[tokio::test]
async fn a_huge_retry_after_is_capped_instead_of_panicking() {
    let (_, service) = switchable();
    let (sender, mut received) = mpsc::unbounded_channel();
    let handler = Arc::new(move |message: Message| {
        let sender = sender.clone();
        async move {
            sender.send(message.retry).ok();
            if message.retry == 0 {
                // What a provider's `Retry-After: 18446744073709551615` becomes.
                Err(HandlerError::retry_after(
                    Duration::from_secs(u64::MAX),
                    "rate limited",
                ))
            } else {
                Ok(())
            }
        }
    });
    service
        .subscribe_with(
            "a.b",
            SubscribeOptions::new("g").with_max_retry_delay(Duration::from_millis(50)),
            messaging_core::Shared(handler),
        )
        .await
        .unwrap();
    service.publish("a.b", json!({})).await.unwrap();
    let deadline = Duration::from_secs(30);
    let first = tokio::time::timeout(deadline, received.recv())
        .await
        .unwrap();
    assert_eq!(first, Some(0));
    // The retry came back after the cap, not never (and nothing panicked).
    let second = tokio::time::timeout(deadline, received.recv())
        .await
        .unwrap();
    assert_eq!(second, Some(1));
    service.shutdown().await;
}

#[tokio::test]
async fn a_forged_retry_count_is_dead_lettered_not_overflowed() {
    let (_, service) = switchable();
    let handler = Arc::new(|_: Message| async { Err(HandlerError::retry("still failing")) });
    service
        .subscribe_with(
            "a.b",
            SubscribeOptions::new("g"),
            messaging_core::Shared(handler),
        )
        .await
        .unwrap();
    let mut message = Message::new("a.b", json!({})).unwrap();
    message.retry = u32::MAX;
    service.publish_message(&message).await.unwrap();
    let dead = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            let dead = service.dead_letters("a.b", 10).await.unwrap();
            if !dead.is_empty() {
                return dead;
            }
            // Dead-lettering has no signal to wait on: poll the queue.
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("dead-lettered within the deadline");
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].message.id, message.id);
    service.shutdown().await;
}

#[tokio::test]
async fn reserved_metadata_keys_are_refused_on_every_publish_path() {
    let (_, service) = switchable();
    for key in messaging_core::RESERVED_METADATA_KEYS {
        // A forged `x-target-group` once hid the message from every group.
        let message = Message::new("a.b", json!({}))
            .unwrap()
            .with_metadata(key, "billing");
        let refused = |result: Result<_, MessagingError>| {
            matches!(
                result,
                Err(MessagingError::Validation(ValidationError::ReservedMetadataKey { key: ref k })) if k == key
            )
        };
        assert!(refused(service.publish_message(&message).await.map(|_| ())));
        assert!(refused(
            service
                .publish_messages(std::slice::from_ref(&message))
                .await
                .map(|_| ())
        ));
        assert!(refused(
            service
                .publish_message_at(&message, Utc::now())
                .await
                .map(|_| ())
        ));
    }
    let stats = service.stats("a.b").await.unwrap();
    assert_eq!((stats.length, stats.scheduled), (0, 0));
}

#[tokio::test]
async fn batches_past_the_count_or_byte_limit_are_refused_whole() {
    let (_, service) = switchable();
    let too_many = vec![json!({}); messaging_model::MAX_BATCH_MESSAGES + 1];
    assert!(matches!(
        service.publish_batch("a.b", too_many).await,
        Err(MessagingError::Validation(
            ValidationError::BatchTooLarge { .. }
        ))
    ));
    // 20 payloads of 900 KiB: each within the payload limit, 18 MiB together.
    let big = json!({ "data": "x".repeat(900 * 1024) });
    let too_big = vec![big; 20];
    assert!(matches!(
        service.publish_batch("a.b", too_big.clone()).await,
        Err(MessagingError::Validation(
            ValidationError::BatchTooLarge { .. }
        ))
    ));
    let messages: Vec<Message> = too_big
        .into_iter()
        .map(|payload| Message::new("a.b", payload).unwrap())
        .collect();
    assert!(matches!(
        service.publish_messages(&messages).await,
        Err(MessagingError::Validation(
            ValidationError::BatchTooLarge { .. }
        ))
    ));
    assert_eq!(service.stats("a.b").await.unwrap().length, 0);
    // At the limit, the batch goes through.
    let at_limit = vec![json!({}); messaging_model::MAX_BATCH_MESSAGES];
    assert_eq!(
        service.publish_batch("a.b", at_limit).await.unwrap().len(),
        messaging_model::MAX_BATCH_MESSAGES
    );
}

#[tokio::test]
async fn the_subscribers_retry_budget_replaces_the_messages_max_retry() {
    let (_, service) = switchable();
    let (sender, mut received) = mpsc::unbounded_channel();
    let handler = Arc::new(move |message: Message| {
        let sender = sender.clone();
        async move {
            sender.send(message.retry).ok();
            if message.retry < 5 {
                Err(HandlerError::retry("provider outage"))
            } else {
                Ok(())
            }
        }
    });
    let options = SubscribeOptions::new("g")
        .with_retry(messaging_core::RetryPolicy::exponential(
            Duration::from_millis(1),
            Duration::from_millis(5),
        ))
        .with_max_retries(5);
    service
        .subscribe_with("a.b", options, messaging_core::Shared(handler))
        .await
        .unwrap();
    // Its publisher allows 1 retry; the subscriber's budget of 5 applies.
    let message = Message::new("a.b", json!({}))
        .unwrap()
        .with_max_retry(1)
        .unwrap();
    service.publish_message(&message).await.unwrap();
    for expected in 0..=5 {
        let retry = tokio::time::timeout(Duration::from_secs(30), received.recv())
            .await
            .unwrap();
        assert_eq!(retry, Some(expected));
    }
    assert!(service.dead_letters("a.b", 10).await.unwrap().is_empty());
    service.shutdown().await;
}
