//! The backend conformance suite: every [`MessageBackend`] must pass it.
//!
//! Each test is an async function taking a factory that returns a fresh backend.
//! A backend crate stamps them all out with one macro in an integration test:
//!
//! ```ignore
//! // crates/my-backend/tests/conformance.rs
//! async fn backend() -> std::sync::Arc<dyn messaging_core::MessageBackend> {
//!     std::sync::Arc::new(MyBackend::connect(/* own key prefix */).await.unwrap())
//! }
//! // A backend whose topics hold at most `cap` messages and keep no settled
//! // history (`Retention::Settled { keep: 0 }`), for the cap's tests.
//! async fn capped(cap: usize) -> std::sync::Arc<dyn messaging_core::MessageBackend> {
//!     std::sync::Arc::new(MyBackend::connect(/* own key prefix, cap */).await.unwrap())
//! }
//! messaging_core::backend_conformance_tests!(backend, capped: capped);
//! ```
//!
//! Tests use their own topic names and delete them at the end, so a shared server
//! is fine. They wait on conditions with a deadline, never on fixed sleeps, and
//! assert no timings except "never early", which holds however slow the machine.

mod faulty;
mod limits;
mod priorities;

pub use faulty::{FaultyBackend, Operation, Outcome};
pub use limits::*;
pub use priorities::*;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use messaging_model::{Message, Topic, ValidationError};
use serde_json::json;
use tokio::sync::watch;
use uuid::Uuid;

use crate::{
    Backend, BackendError, ConsumerId, Delivery, HandlerError, MessageHandler, MessagingError,
    MessagingService, RETRY_AT_KEY, RETRY_DELAY_MS_KEY, ReadOptions, Retention, RetryPolicy,
    Settlement, StartFrom, SubscribeOptions,
};

/// What every test of the suite takes: an async function (or closure) that
/// returns a fresh backend.
pub trait BackendFactory {
    /// A fresh backend.
    fn backend(&self) -> impl Future<Output = Arc<dyn Backend>>;
}

impl<F, Fut> BackendFactory for F
where
    F: Fn() -> Fut,
    Fut: Future<Output = Arc<dyn Backend>>,
{
    fn backend(&self) -> impl Future<Output = Arc<dyn Backend>> {
        self()
    }
}

/// What the cap's tests take: an async function (or closure) that returns a fresh
/// backend whose topics hold at most `cap` messages (stream and delayed
/// together) and that keeps no settled history ([`Retention::Settled`] with
/// `keep: 0`), so settled entries free their room.
pub trait CappedBackendFactory {
    /// A fresh backend with that cap.
    fn backend_with_cap(&self, cap: usize) -> impl Future<Output = Arc<dyn Backend>>;
}

impl<F, Fut> CappedBackendFactory for F
where
    F: Fn(usize) -> Fut,
    Fut: Future<Output = Arc<dyn Backend>>,
{
    fn backend_with_cap(&self, cap: usize) -> impl Future<Output = Arc<dyn Backend>> {
        self(cap)
    }
}

/// How long any wait in the suite may take before the test fails.
const DEADLINE: Duration = Duration::from_secs(60);

/// Every test of the suite, for the macro.
#[macro_export]
macro_rules! backend_conformance_tests {
    ($factory:path, capped: $capped:path) => {
        $crate::backend_conformance_tests!(@each $capped;
            topic_cap_refuses_publishing_with_queue_full
        );
        $crate::backend_conformance_tests!(@each $factory;
            delivers_every_message_intact,
            many_publishers_and_consumers_receive_everything,
            topics_do_not_cross_talk,
            every_consumer_group_receives_every_message,
            redelivers_after_handler_error,
            progresses_after_repeated_errors,
            nothing_lost_when_subscriber_closes_and_another_opens,
            concurrent_close_loses_nothing,
            a_closed_subscription_leaves_a_deleted_topic_deleted,
            reclaims_messages_of_a_dead_consumer,
            restarted_consumer_drains_its_own_pending_first,
            old_owner_cannot_settle_a_reclaimed_delivery,
            dead_letters_a_message_that_keeps_killing_its_consumers,
            delayed_messages_never_early_and_all_delivered,
            delayed_message_survives_service_restart,
            retry_timing_within_backoff_bounds,
            exhausted_messages_dead_lettered_once_and_replay_redelivers,
            dead_letters_page_on_after_the_last_id_each_once_and_are_found_by_id,
            permanent_error_skips_retries,
            handler_panic_counts_as_failure,
            unsubscribe_stops_delivery,
            rejects_invalid_topic_and_oversized_payload,
            batch_publish_keeps_order,
            publishing_before_any_group_loses_nothing,
            topics_are_created_listed_and_deleted,
            stats_count_pending_lag_scheduled_and_dead,
            fifty_concurrent_publishers_of_one_unique_key_publish_one_message,
            a_unique_key_is_held_until_handled_and_for_its_window_after,
            a_delayed_unique_message_holds_its_key_while_it_waits,
            a_dead_lettered_unique_message_holds_its_key_unless_told_otherwise,
            health_answers,
            a_handler_past_its_timeout_is_dropped_retried_then_dead_lettered,
            a_message_timeout_overrides_the_subscription,
            shutdown_cancels_the_token_and_the_message_is_redelivered_unretried,
            an_expired_message_is_dead_lettered_without_running_the_handler,
            an_expired_message_is_dropped_when_the_subscription_says_so,
            cancel_removes_waiting_and_scheduled_messages_but_not_delivered_ones,
            cancel_racing_delivery_removes_or_delivers_each_message_once,
            a_paused_group_takes_nothing_until_resumed_then_everything_once,
            a_handler_running_when_paused_finishes_and_is_acked,
            a_pause_by_one_service_holds_the_subscriptions_of_another,
            a_running_subscription_takes_nothing_once_it_has_seen_the_pause,
            limit_buckets_hand_out_permits_and_slots_as_the_contract_says,
            permits_taken_ahead_count_in_the_bucket_and_leave_half_its_burst,
            a_rate_limit_per_key_holds_across_consumers_and_never_counts_a_retry,
            a_fast_rate_limit_holds_with_permits_taken_together,
            a_concurrency_limit_per_key_holds_across_consumers,
            kept_concurrency_slots_count_in_the_limit_and_are_freed_at_shutdown,
            a_priority_topic_keeps_its_layout_and_bad_priorities_are_refused,
            high_priority_messages_are_taken_first_and_the_others_still_move
        );
    };
    (@each $factory:path; $($name:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                $crate::testsuite::$name($factory).await;
            }
        )*
    };
}

/// A message as a handler saw it, with when.
type Seen = (Message, DateTime<Utc>);

/// Records what handlers saw and lets a test wait for it.
#[derive(Clone)]
struct Recorder {
    seen: Arc<Mutex<Vec<Seen>>>,
    count: Arc<watch::Sender<usize>>,
}

impl Recorder {
    fn new() -> Self {
        Self {
            seen: Arc::new(Mutex::new(Vec::new())),
            count: Arc::new(watch::channel(0).0),
        }
    }

    fn record(&self, message: &Message) {
        let mut seen = self.seen.lock().expect("recorder lock");
        seen.push((message.clone(), Utc::now()));
        // Signalled under the lock, so the count never goes backwards.
        self.count.send_replace(seen.len());
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().expect("recorder lock").clone()
    }

    fn ids(&self) -> BTreeSet<Uuid> {
        self.seen().iter().map(|(m, _)| m.id).collect()
    }

    fn len(&self) -> usize {
        self.seen.lock().expect("recorder lock").len()
    }

    /// Waits until `done` holds for what was recorded, or fails the test.
    async fn wait_until(&self, what: &str, done: impl Fn(&[Seen]) -> bool) {
        let mut changes = self.count.subscribe();
        let waited = tokio::time::timeout(DEADLINE, async {
            loop {
                if done(&self.seen()) {
                    return;
                }
                if changes.changed().await.is_err() {
                    return;
                }
            }
        })
        .await;
        assert!(
            waited.is_ok() && done(&self.seen()),
            "timed out waiting for {what}; recorded {}",
            self.len()
        );
    }

    async fn wait_for_ids(&self, ids: &BTreeSet<Uuid>) {
        self.wait_until("every message", |seen| {
            let got: BTreeSet<Uuid> = seen.iter().map(|(m, _)| m.id).collect();
            ids.is_subset(&got)
        })
        .await;
    }

    /// A handler that records, then runs `outcome`.
    fn handler<F>(&self, outcome: F) -> Arc<dyn MessageHandler>
    where
        F: Fn(&Message) -> Result<(), HandlerError> + Send + Sync + 'static,
    {
        let recorder = self.clone();
        let outcome = Arc::new(outcome);
        Arc::new(move |message: Message| {
            let recorder = recorder.clone();
            let outcome = outcome.clone();
            async move {
                let result = outcome(&message);
                recorder.record(&message);
                result
            }
        })
    }

    fn succeeding(&self) -> Arc<dyn MessageHandler> {
        self.handler(|_| Ok(()))
    }
}

/// Polls `probe` until it returns `Some`, or fails the test.
async fn eventually<T, F, Fut>(what: &str, probe: F) -> T
where
    F: Fn() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let start = tokio::time::Instant::now();
    let mut pause = Duration::from_millis(5);
    loop {
        if let Some(value) = probe().await {
            return value;
        }
        assert!(start.elapsed() < DEADLINE, "timed out waiting for {what}");
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_millis(100));
    }
}

fn unique_topic(name: &str) -> Topic {
    let id = Uuid::now_v7().simple().to_string();
    Topic::new(format!("conformance.{name}.{}", &id[id.len() - 12..])).expect("a valid topic")
}

/// Consumer `name` of `group` on `topic`.
fn consumer(topic: &Topic, group: &str, name: &str) -> ConsumerId {
    ConsumerId::new(topic.clone(), group, name)
}

/// Options with short timeouts, so reclaiming and retrying happen quickly.
fn quick(group: &str) -> SubscribeOptions {
    SubscribeOptions::new(group)
        .with_visibility_timeout(Duration::from_millis(800))
        .with_block_timeout(Duration::from_millis(200))
        .with_retry(RetryPolicy::exponential(
            Duration::from_millis(20),
            Duration::from_millis(200),
        ))
        .with_shutdown_timeout(Duration::from_secs(5))
}

fn service(backend: &Arc<dyn Backend>) -> MessagingService {
    MessagingService::new(backend.clone())
}

async fn cleanup(backend: &Arc<dyn Backend>, topics: &[&Topic]) {
    for topic in topics {
        let _ = backend.delete_topic(topic).await;
    }
}

async fn publish_n(service: &MessagingService, topic: &str, n: usize) -> BTreeSet<Uuid> {
    let mut ids = BTreeSet::new();
    for i in 0..n {
        ids.insert(
            service
                .publish(topic, json!({ "n": i }))
                .await
                .expect("publish"),
        );
    }
    ids
}

/// Reads exactly `n` new deliveries of group `g` as `consumer` (and leaves them
/// pending), or fails the test at the deadline.
/// Publishes under a partition key: on a partitioned topic, messages of one key
/// keep the order they were published in (plain topics ignore the key).
async fn publish_keyed(
    service: &MessagingService,
    topic: &str,
    payload: serde_json::Value,
    key: &str,
) -> Uuid {
    let message = service
        .message(topic, payload)
        .expect("message")
        .with_partition_key(key)
        .expect("a valid partition key");
    service.publish_message(&message).await.expect("publish")
}

async fn take_new(
    backend: &Arc<dyn Backend>,
    topic: &Topic,
    name: &str,
    n: usize,
) -> Vec<Delivery> {
    let start = tokio::time::Instant::now();
    let mut taken = Vec::with_capacity(n);
    while taken.len() < n {
        assert!(
            start.elapsed() < DEADLINE,
            "timed out reading {n} deliveries"
        );
        taken.extend(
            backend
                .read(
                    &consumer(topic, "g", name),
                    &ReadOptions::new_entries(n - taken.len(), Duration::from_millis(100)),
                )
                .await
                .expect("read"),
        );
    }
    taken
}

async fn dead_letter_count(backend: &Arc<dyn Backend>, topic: &Topic) -> usize {
    backend
        .dead_letters(topic, 100_000)
        .await
        .expect("dead letters")
        .len()
}

/// Every published message arrives with its payload and metadata intact.
pub async fn delivers_every_message_intact(factory: impl BackendFactory) {
    let backend = factory.backend().await;
    let topic = unique_topic("intact");
    let service = service(&backend);
    let recorder = Recorder::new();
    service
        .subscribe_with(&topic, quick("g"), crate::Shared(recorder.succeeding()))
        .await
        .expect("subscribe");

    let mut sent = BTreeMap::new();
    for i in 0..40 {
        let message = Message::new(
            topic.as_str(),
            json!({ "n": i, "nested": { "list": [1, "two", null], "text": "ünïcødé \" \n" } }),
        )
        .expect("message")
        .with_metadata("traceparent", format!("00-{i:032x}-{i:016x}-01"))
        .with_metadata("tenant", "acme");
        service.publish_message(&message).await.expect("publish");
        sent.insert(message.id, message);
    }
    let batch: Vec<Message> = (0..40)
        .map(|i| {
            Message::new(topic.as_str(), json!({ "batch": i }))
                .expect("message")
                .with_metadata("k", i.to_string())
        })
        .collect();
    service
        .publish_messages(&batch)
        .await
        .expect("publish batch");
    sent.extend(batch.into_iter().map(|m| (m.id, m)));

    recorder.wait_for_ids(&sent.keys().copied().collect()).await;
    for (received, _) in recorder.seen() {
        let original = &sent[&received.id];
        assert_eq!(received.topic, original.topic);
        assert_eq!(received.payload, original.payload);
        // Intact, plus the `traceparent` the service stamps on messages without one.
        let mut expected = original.metadata.clone();
        if !expected.contains_key(crate::TRACEPARENT_KEY) {
            let stamped = received.metadata.get(crate::TRACEPARENT_KEY).cloned();
            expected.insert(
                crate::TRACEPARENT_KEY.to_owned(),
                stamped.expect("a traceparent stamped on publish"),
            );
        }
        assert_eq!(received.metadata, expected);
        assert_eq!(received.max_retry, original.max_retry);
        assert_eq!(received.retry, 0);
        assert_eq!(
            received.created_at.timestamp_micros(),
            original.created_at.timestamp_micros()
        );
    }
    service.shutdown().await;
    cleanup(&backend, &[&topic]).await;
}

/// Four publishers and three consumers of one group at once: all received, once.
pub async fn many_publishers_and_consumers_receive_everything(factory: impl BackendFactory) {
    let backend = factory.backend().await;
    let topic = unique_topic("many");
    let recorder = Recorder::new();
    let consumers: Vec<MessagingService> = (0..3).map(|_| service(&backend)).collect();
    for consumer in &consumers {
        consumer
            .subscribe_with(
                &topic,
                quick("workers").with_visibility_timeout(Duration::from_secs(10)),
                crate::Shared(recorder.succeeding()),
            )
            .await
            .expect("subscribe");
    }
    let publishers = (0..4).map(|p| {
        let publisher = service(&backend);
        let topic = topic.clone();
        tokio::spawn(async move {
            let mut ids = BTreeSet::new();
            for i in 0..150 {
                ids.insert(
                    publisher
                        .publish(&topic, json!({ "publisher": p, "n": i }))
                        .await
                        .expect("publish"),
                );
            }
            ids
        })
    });
    let mut ids = BTreeSet::new();
    for published in futures::future::join_all(publishers).await {
        ids.extend(published.expect("publisher task"));
    }
    assert_eq!(ids.len(), 600);
    recorder.wait_for_ids(&ids).await;
    for consumer in &consumers {
        consumer.shutdown().await;
    }
    assert_eq!(
        recorder.len(),
        600,
        "a healthy run delivers each message once"
    );
    cleanup(&backend, &[&topic]).await;
}

/// Subscribers of one topic never see another topic's messages.
pub async fn topics_do_not_cross_talk(factory: impl BackendFactory) {
    let backend = factory.backend().await;
    let service = service(&backend);
    let topics: Vec<Topic> = (0..3).map(|i| unique_topic(&format!("talk{i}"))).collect();
    let recorders: Vec<Recorder> = topics.iter().map(|_| Recorder::new()).collect();
    for (topic, recorder) in topics.iter().zip(&recorders) {
        service
            .subscribe_with(topic, quick("g"), crate::Shared(recorder.succeeding()))
            .await
            .expect("subscribe");
    }
    let mut expected = Vec::new();
    for topic in &topics {
        expected.push(publish_n(&service, topic, 30).await);
    }
    for ((topic, recorder), ids) in topics.iter().zip(&recorders).zip(&expected) {
        recorder.wait_for_ids(ids).await;
        assert_eq!(&recorder.ids(), ids, "{topic} received foreign messages");
        assert!(recorder.seen().iter().all(|(m, _)| &m.topic == topic));
    }
    service.shutdown().await;
    let names: Vec<&Topic> = topics.iter().collect();
    cleanup(&backend, &names).await;
}

/// Two consumer groups each receive every message.
pub async fn every_consumer_group_receives_every_message(factory: impl BackendFactory) {
    let backend = factory.backend().await;
    let topic = unique_topic("groups");
    let service = service(&backend);
    let (billing, mailer) = (Recorder::new(), Recorder::new());
    service
        .subscribe_with(
            &topic,
            quick("billing"),
            crate::Shared(billing.succeeding()),
        )
        .await
        .expect("subscribe");
    service
        .subscribe_with(&topic, quick("mailer"), crate::Shared(mailer.succeeding()))
        .await
        .expect("subscribe");
    let ids = publish_n(&service, &topic, 100).await;
    billing.wait_for_ids(&ids).await;
    mailer.wait_for_ids(&ids).await;
    service.shutdown().await;
    assert_eq!(billing.len(), 100);
    assert_eq!(mailer.len(), 100);
    cleanup(&backend, &[&topic]).await;
}

/// A message whose handler fails once is delivered again, with the error and retry count.
pub async fn redelivers_after_handler_error(factory: impl BackendFactory) {
    let backend = factory.backend().await;
    let topic = unique_topic("redeliver");
    let service = service(&backend);
    let recorder = Recorder::new();
    service
        .subscribe_with(
            &topic,
            quick("g"),
            crate::Shared(recorder.handler(|message| {
                if message.retry == 0 {
                    Err(HandlerError::retry("first attempt fails"))
                } else {
                    Ok(())
                }
            })),
        )
        .await
        .expect("subscribe");
    let ids = publish_n(&service, &topic, 20).await;
    recorder
        .wait_until("second attempts", |seen| {
            seen.iter().filter(|(m, _)| m.retry == 1).count() == 20
        })
        .await;
    service.shutdown().await;
    let seen = recorder.seen();
    for id in &ids {
        let attempts: Vec<&Message> = seen
            .iter()
            .filter(|(m, _)| m.id == *id)
            .map(|(m, _)| m)
            .collect();
        assert_eq!(
            attempts.len(),
            2,
            "message {id} attempted {} times",
            attempts.len()
        );
        assert_eq!(attempts[1].retry, 1);
        assert_eq!(attempts[1].error.as_deref(), Some("first attempt fails"));
    }
    assert_eq!(dead_letter_count(&backend, &topic).await, 0);
    cleanup(&backend, &[&topic]).await;
}

/// A message that keeps failing does not hold up the others.
pub async fn progresses_after_repeated_errors(factory: impl BackendFactory) {
    let backend = factory.backend().await;
    let topic = unique_topic("progress");
    let service = service(&backend);
    let recorder = Recorder::new();
    service
        .subscribe_with(
            &topic,
            quick("g").with_concurrency(1),
            crate::Shared(recorder.handler(|message| {
                if message.payload.get("poison").is_some() {
                    Err(HandlerError::retry("always fails"))
                } else {
                    Ok(())
                }
            })),
        )
        .await
        .expect("subscribe");
    let poison = Message::new(topic.as_str(), json!({ "poison": true }))
        .expect("message")
        .with_max_retry(4)
        .expect("max retry");
    service.publish_message(&poison).await.expect("publish");
    let ids = publish_n(&service, &topic, 50).await;
    recorder.wait_for_ids(&ids).await;
    let dead = eventually("the poison message dead-lettered", || async {
        let dead = backend
            .dead_letters(&topic, 10)
            .await
            .expect("dead letters");
        (!dead.is_empty()).then_some(dead)
    })
    .await;
    service.shutdown().await;
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].message.id, poison.id);
    assert_eq!(dead[0].attempts, 5);
    let poison_attempts = recorder
        .seen()
        .iter()
        .filter(|(m, _)| m.id == poison.id)
        .count();
    assert_eq!(poison_attempts, 5);
    cleanup(&backend, &[&topic]).await;
}

/// Messages a closed subscriber left unfinished go to the subscriber that replaces it.
pub async fn nothing_lost_when_subscriber_closes_and_another_opens(factory: impl BackendFactory) {
    let backend = factory.backend().await;
    let topic = unique_topic("handover");
    let first = service(&backend);
    let recorder = Recorder::new();
    let handled = Arc::new(AtomicUsize::new(0));
    // The first subscriber handles 20 messages, then hangs on every other one, so
    // closing it leaves deliveries unfinished.
    let hang_after = handled.clone();
    let first_recorder = recorder.clone();
    let first_handler: Arc<dyn MessageHandler> = Arc::new(move |message: Message| {
        let handled = hang_after.clone();
        let recorder = first_recorder.clone();
        async move {
            if handled.fetch_add(1, Ordering::SeqCst) >= 20 {
                futures::future::pending::<()>().await;
            }
            recorder.record(&message);
            Ok::<(), HandlerError>(())
        }
    });
    first
        .subscribe_with(
            &topic,
            quick("g")
                .with_concurrency(4)
                .with_shutdown_timeout(Duration::from_millis(100)),
            crate::Shared(first_handler),
        )
        .await
        .expect("subscribe");
    let ids = publish_n(&first, &topic, 200).await;
    recorder
        .wait_until("the first 20", |seen| seen.len() >= 20)
        .await;
    eventually("the first subscriber to hang", || async {
        (handled.load(Ordering::SeqCst) >= 24).then_some(())
    })
    .await;
    first.unsubscribe(&topic).await.expect("unsubscribe");

    let second = service(&backend);
    second
        .subscribe_with(&topic, quick("g"), crate::Shared(recorder.succeeding()))
        .await
        .expect("subscribe");
    recorder.wait_for_ids(&ids).await;
    second.shutdown().await;
    cleanup(&backend, &[&topic]).await;
}

/// Closing several subscribers at once, mid-stream, loses nothing.
pub async fn concurrent_close_loses_nothing(factory: impl BackendFactory) {
    let backend = factory.backend().await;
    let topic = unique_topic("close");
    let recorder = Recorder::new();
    let services: Vec<MessagingService> = (0..4).map(|_| service(&backend)).collect();
    for service in &services {
        service
            .subscribe_with(
                &topic,
                quick("g").with_shutdown_timeout(Duration::from_millis(50)),
                crate::Shared(recorder.succeeding()),
            )
            .await
            .expect("subscribe");
    }
    let ids = publish_n(&services[0], &topic, 300).await;
    recorder
        .wait_until("some progress", |seen| seen.len() >= 30)
        .await;
    let closes = services.iter().map(|service| service.unsubscribe(&topic));
    for closed in futures::future::join_all(closes).await {
        closed.expect("unsubscribe");
    }
    let fresh = service(&backend);
    fresh
        .subscribe_with(&topic, quick("g"), crate::Shared(recorder.succeeding()))
        .await
        .expect("subscribe");
    recorder.wait_for_ids(&ids).await;
    fresh.shutdown().await;
    cleanup(&backend, &[&topic]).await;
}

/// A consumer that took messages and died without acking has them reclaimed.
pub async fn reclaims_messages_of_a_dead_consumer(factory: impl BackendFactory) {
    let backend = factory.backend().await;
    let topic = unique_topic("reclaim");
    let service = service(&backend);
    backend
        .ensure_group(&topic, "g", StartFrom::Earliest)
        .await
        .expect("group");
    let ids = publish_n(&service, &topic, 10).await;
    take_new(&backend, &topic, "dead-consumer", 10).await;
    let recorder = Recorder::new();
    service
        .subscribe_with(
            &topic,
            quick("g").with_visibility_timeout(Duration::from_millis(300)),
            crate::Shared(recorder.succeeding()),
        )
        .await
        .expect("subscribe");
    recorder.wait_for_ids(&ids).await;
    eventually("the pending list to empty", || async {
        let stats = backend.stats(&topic).await.expect("stats");
        (stats.groups.iter().all(|g| g.pending == 0)).then_some(())
    })
    .await;
    service.shutdown().await;
    cleanup(&backend, &[&topic]).await;
}

/// A consumer restarted under the same name first gets what it left unfinished.
pub async fn restarted_consumer_drains_its_own_pending_first(factory: impl BackendFactory) {
    let backend = factory.backend().await;
    let topic = unique_topic("drain");
    let service = service(&backend);
    backend
        .ensure_group(&topic, "g", StartFrom::Earliest)
        .await
        .expect("group");
    let ids = publish_n(&service, &topic, 5).await;
    take_new(&backend, &topic, "replica-1", 5).await;
    // A visibility timeout far longer than the test: only draining can deliver them.
    let recorder = Recorder::new();
    service
        .subscribe_with(
            &topic,
            quick("g")
                .with_consumer("replica-1")
                .with_visibility_timeout(Duration::from_secs(3600)),
            crate::Shared(recorder.succeeding()),
        )
        .await
        .expect("subscribe");
    recorder.wait_for_ids(&ids).await;
    service.shutdown().await;
    cleanup(&backend, &[&topic]).await;
}

/// Once another consumer reclaimed a delivery, the old owner's ack, retry and
/// dead-letter change nothing.
pub async fn old_owner_cannot_settle_a_reclaimed_delivery(factory: impl BackendFactory) {
    let backend = factory.backend().await;
    let topic = unique_topic("fence");
    let service = service(&backend);
    backend
        .ensure_group(&topic, "g", StartFrom::Earliest)
        .await
        .expect("group");
    let id = service.publish(&topic, json!({})).await.expect("publish");
    let old = take_new(&backend, &topic, "old", 1).await.remove(0);
    assert_eq!(old.message.id, id);
    assert_eq!(old.receipt.delivery_count, 1);
    let new = eventually("the reclaim", || async {
        backend
            .reclaim_idle(&consumer(&topic, "g", "new"), Duration::ZERO, 10)
            .await
            .expect("reclaim")
            .pop()
    })
    .await;
    assert_eq!(new.message.id, id);
    assert_eq!(new.receipt.consumer.consumer, "new");
    assert_eq!(new.receipt.delivery_count, 2);

    let stale = &old.receipt;
    assert_eq!(
        backend.ack(stale).await.expect("ack"),
        Settlement::LostOwnership
    );
    assert_eq!(
        backend.extend_lease(stale).await.expect("lease"),
        Settlement::LostOwnership
    );
    let at = Utc::now();
    assert_eq!(
        backend
            .retry_at(stale, &old.message, at)
            .await
            .expect("retry"),
        Settlement::LostOwnership
    );
    assert_eq!(
        backend
            .dead_letter(stale, &old.message, "stale")
            .await
            .expect("dead letter"),
        Settlement::LostOwnership
    );
    assert_eq!(dead_letter_count(&backend, &topic).await, 0);
    let stats = backend.stats(&topic).await.expect("stats");
    assert_eq!(stats.scheduled, 0, "a fenced retry must not schedule");
    assert_eq!(stats.groups[0].pending, 1);

    assert_eq!(
        backend.ack(&new.receipt).await.expect("ack"),
        Settlement::Settled
    );
    let stats = backend.stats(&topic).await.expect("stats");
    assert_eq!(stats.groups[0].pending, 0);
    cleanup(&backend, &[&topic]).await;
}

/// An entry delivered more than `max_deliveries` times (its consumers keep dying)
/// is dead-lettered without running the handler again.
pub async fn dead_letters_a_message_that_keeps_killing_its_consumers(factory: impl BackendFactory) {
    let backend = factory.backend().await;
    let topic = unique_topic("killer");
    let service = service(&backend);
    backend
        .ensure_group(&topic, "g", StartFrom::Earliest)
        .await
        .expect("group");
    let id = service.publish(&topic, json!({})).await.expect("publish");
    take_new(&backend, &topic, "crashed-1", 1).await;
    eventually("a reclaim", || async {
        backend
            .reclaim_idle(&consumer(&topic, "g", "crashed-2"), Duration::ZERO, 1)
            .await
            .expect("reclaim")
            .pop()
    })
    .await;
    let recorder = Recorder::new();
    service
        .subscribe_with(
            &topic,
            quick("g")
                .with_visibility_timeout(Duration::from_millis(100))
                .with_max_deliveries(2),
            crate::Shared(recorder.succeeding()),
        )
        .await
        .expect("subscribe");
    let dead = eventually("the dead letter", || async {
        backend
            .dead_letters(&topic, 10)
            .await
            .expect("dead letters")
            .pop()
    })
    .await;
    service.shutdown().await;
    assert_eq!(dead.message.id, id);
    assert!(dead.error.contains("delivered 3 times"), "{}", dead.error);
    assert_eq!(recorder.len(), 0, "the handler must not run again");
    cleanup(&backend, &[&topic]).await;
}

/// Delayed messages all arrive, none before its time.
pub async fn delayed_messages_never_early_and_all_delivered(factory: impl BackendFactory) {
    let backend = factory.backend().await;
    let topic = unique_topic("delayed");
    let service = service(&backend);
    let recorder = Recorder::new();
    service
        .subscribe_with(&topic, quick("g"), crate::Shared(recorder.succeeding()))
        .await
        .expect("subscribe");
    let mut not_before = HashMap::new();
    for i in 0..30u64 {
        let delay = Duration::from_millis((i * 37) % 900);
        let earliest = Utc::now() + chrono::Duration::from_std(delay).expect("delay");
        let id = service
            .publish_delayed(&topic, json!({ "i": i }), delay)
            .await
            .expect("publish delayed");
        not_before.insert(id, earliest);
    }
    let past = Utc::now() - chrono::Duration::seconds(5);
    let id = service
        .publish_at(&topic, json!({ "past": true }), past)
        .await
        .expect("publish at");
    not_before.insert(id, past);

    recorder
        .wait_for_ids(&not_before.keys().copied().collect())
        .await;
    service.shutdown().await;
    for (message, received_at) in recorder.seen() {
        assert!(
            received_at >= not_before[&message.id],
            "message delivered {} early",
            not_before[&message.id] - received_at
        );
    }
    assert_eq!(
        recorder.len(),
        not_before.len(),
        "a delayed message arrived twice"
    );
    cleanup(&backend, &[&topic]).await;
}

/// A delayed message lives in the backend: a new service instance delivers it.
pub async fn delayed_message_survives_service_restart(factory: impl BackendFactory) {
    let backend = factory.backend().await;
    let topic = unique_topic("restart");
    let before = service(&backend);
    let earliest = Utc::now() + chrono::Duration::milliseconds(300);
    let id = before
        .publish_delayed(&topic, json!({}), Duration::from_millis(300))
        .await
        .expect("publish delayed");
    before.shutdown().await;
    drop(before);

    let after = service(&backend);
    let recorder = Recorder::new();
    after
        .subscribe_with(&topic, quick("g"), crate::Shared(recorder.succeeding()))
        .await
        .expect("subscribe");
    recorder.wait_for_ids(&BTreeSet::from([id])).await;
    after.shutdown().await;
    assert!(recorder.seen()[0].1 >= earliest);
    cleanup(&backend, &[&topic]).await;
}

/// Retry delays follow the backoff policy and no retry runs early.
pub async fn retry_timing_within_backoff_bounds(factory: impl BackendFactory) {
    let backend = factory.backend().await;
    let topic = unique_topic("backoff");
    let service = service(&backend);
    let policy = RetryPolicy::exponential(Duration::from_millis(40), Duration::from_millis(250))
        .with_jitter(0.5);
    let recorder = Recorder::new();
    service
        .subscribe_with(
            &topic,
            quick("g").with_retry(policy.clone()),
            crate::Shared(recorder.handler(|_| Err(HandlerError::retry("always")))),
        )
        .await
        .expect("subscribe");
    let message = Message::new(topic.as_str(), json!({}))
        .expect("message")
        .with_max_retry(4)
        .expect("max retry");
    service.publish_message(&message).await.expect("publish");
    eventually("the dead letter", || async {
        (dead_letter_count(&backend, &topic).await == 1).then_some(())
    })
    .await;
    service.shutdown().await;

    let attempts = recorder.seen();
    assert_eq!(attempts.len(), 5);
    for (attempt, (seen, received_at)) in attempts.iter().enumerate() {
        assert_eq!(seen.retry as usize, attempt);
        if attempt == 0 {
            continue;
        }
        let (low, high) = policy.bounds(attempt as u32);
        let delay_ms: u128 = seen.metadata[RETRY_DELAY_MS_KEY].parse().expect("delay");
        assert!(
            low.as_millis() <= delay_ms && delay_ms <= high.as_millis(),
            "retry {attempt}: {delay_ms} ms outside {low:?}..={high:?}"
        );
        let retry_at: DateTime<Utc> = seen.metadata[RETRY_AT_KEY].parse().expect("retry at");
        assert!(*received_at >= retry_at, "retry {attempt} ran early");
    }
    cleanup(&backend, &[&topic]).await;
}

/// `dead_letters_after` pages through every dead letter once, a page of
/// `limit` at a time from the last id of the page before, a short page
/// last; paging on from an id whose dead letter was replayed meanwhile
/// still works; an `after` that is no id is refused. `find_dead_letter`
/// finds each by its id, and nothing under a replayed id or one that is no id.
pub async fn dead_letters_page_on_after_the_last_id_each_once_and_are_found_by_id(
    factory: impl BackendFactory,
) {
    let backend = factory.backend().await;
    let topic = unique_topic("dlq-pages");
    let service = service(&backend);
    service
        .subscribe_with(&topic, quick("pager"), |_: Message| async {
            Err::<(), _>(HandlerError::permanent("refused"))
        })
        .await
        .expect("subscribe");
    let ids = publish_n(&service, &topic, 7).await;
    eventually("seven dead letters", || async {
        (dead_letter_count(&backend, &topic).await == 7).then_some(())
    })
    .await;
    service.shutdown().await;

    let mut seen = Vec::new();
    let mut sizes = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = backend
            .dead_letters_after(&topic, after.as_deref(), 3)
            .await
            .expect("a page");
        sizes.push(page.len());
        let Some(last) = page.last() else { break };
        after = Some(last.id.clone());
        seen.extend(page.iter().map(|dead| (dead.id.clone(), dead.message.id)));
        if page.len() < 3 {
            break;
        }
    }
    assert_eq!(sizes, vec![3, 3, 1], "pages of 3, the last short");
    let message_ids: BTreeSet<Uuid> = seen.iter().map(|(_, id)| *id).collect();
    assert_eq!(message_ids, ids, "every dead letter, each once");
    assert_eq!(seen.len(), 7);
    for (id, message_id) in &seen {
        let found = backend
            .find_dead_letter(&topic, id)
            .await
            .expect("a lookup")
            .unwrap_or_else(|| panic!("dead letter {id} found by its id"));
        assert_eq!(&found.id, id);
        assert_eq!(found.message.id, *message_id);
        assert_eq!(found.message.topic, topic);
        assert_eq!(found.error, "permanent failure: refused");
    }

    // Replay the dead letter a cursor names: paging on from it still works.
    let (cursor, _) = seen[2].clone();
    assert!(
        backend
            .replay_dead_letter(&topic, &cursor)
            .await
            .expect("replay")
    );
    assert_eq!(
        backend
            .find_dead_letter(&topic, &cursor)
            .await
            .expect("a lookup"),
        None,
        "a replayed dead letter is found no more"
    );
    for not_an_id in ["no such id", "", "0-0", "7:1-1"] {
        assert_eq!(
            backend
                .find_dead_letter(&topic, not_an_id)
                .await
                .expect("a lookup"),
            None,
            "{not_an_id:?}"
        );
    }
    let rest = backend
        .dead_letters_after(&topic, Some(&cursor), 10)
        .await
        .expect("the pages after a replayed cursor");
    let rest_ids: Vec<String> = rest.iter().map(|dead| dead.id.clone()).collect();
    let expected: Vec<String> = seen[3..].iter().map(|(id, _)| id.clone()).collect();
    assert_eq!(rest_ids, expected);

    let refused = backend
        .dead_letters_after(&topic, Some("no such id"), 10)
        .await
        .expect_err("an `after` that is no id");
    assert!(
        matches!(refused, BackendError::Command { .. }),
        "{refused:?}"
    );
    cleanup(&backend, &[&topic]).await;
}

/// Once a subscription has closed, nothing reads in its consumer's name any
/// more: a topic deleted after it stays deleted. (A partitioned topic's
/// blocking reads of its other partitions ran on after the close; on Redis
/// the deletion unblocked them with an error, and their recovery recreated
/// the group, the stream and the topic's registry entry.)
pub async fn a_closed_subscription_leaves_a_deleted_topic_deleted(factory: impl BackendFactory) {
    let backend = factory.backend().await;
    let topic = unique_topic("closed");
    let service = service(&backend);
    let recorder = Recorder::new();
    let block = Duration::from_millis(400);
    service
        .subscribe_with(
            &topic,
            quick("g").with_block_timeout(block),
            crate::Shared(recorder.succeeding()),
        )
        .await
        .expect("subscribe");
    let ids = publish_n(&service, &topic, 3).await;
    recorder.wait_for_ids(&ids).await;
    // The topic is drained: its reads block now, until `block` or a message.
    service.shutdown().await;
    assert!(backend.delete_topic(&topic).await.expect("delete"));
    // No signal can say that nothing happens: wait out three times the
    // longest a read left running could have blocked.
    tokio::time::sleep(block * 3).await;
    let topics = backend.list_topics().await.expect("topics");
    assert!(
        !topics.contains(&topic),
        "the deleted topic came back after its subscription closed: {topics:?}"
    );
    cleanup(&backend, &[&topic]).await;
}

/// Exhausted messages land in the dead-letter queue exactly once; replay hands
/// them to the group that gave up, and only to it.
pub async fn exhausted_messages_dead_lettered_once_and_replay_redelivers(
    factory: impl BackendFactory,
) {
    let backend = factory.backend().await;
    let topic = unique_topic("dlq");
    let service = service(&backend).with_max_retry(1).expect("max retry");
    let provider_down = Arc::new(AtomicBool::new(true));
    let failing = Recorder::new();
    let down = provider_down.clone();
    service
        .subscribe_with(
            &topic,
            quick("mailer"),
            crate::Shared(failing.handler(move |_| {
                if down.load(Ordering::SeqCst) {
                    Err(HandlerError::retry("provider down"))
                } else {
                    Ok(())
                }
            })),
        )
        .await
        .expect("subscribe");
    let healthy = Recorder::new();
    service
        .subscribe_with(
            &topic,
            quick("audit").with_concurrency(1),
            crate::Shared(healthy.succeeding()),
        )
        .await
        .expect("subscribe");
    let ids = publish_n(&service, &topic, 10).await;
    let dead = eventually("ten dead letters", || async {
        let dead = backend
            .dead_letters(&topic, 100)
            .await
            .expect("dead letters");
        (dead.len() >= 10).then_some(dead)
    })
    .await;
    let dead_ids: Vec<Uuid> = dead.iter().map(|d| d.message.id).collect();
    assert_eq!(dead_ids.iter().copied().collect::<BTreeSet<_>>(), ids);
    assert_eq!(dead_ids.len(), 10, "a message was dead-lettered twice");
    for letter in &dead {
        assert_eq!(letter.group, "mailer");
        assert_eq!(letter.attempts, 2);
        assert_eq!(letter.error, "provider down");
        assert_eq!(letter.message.error.as_deref(), Some("provider down"));
    }
    healthy.wait_for_ids(&ids).await;

    provider_down.store(false, Ordering::SeqCst);
    assert_eq!(
        service
            .replay_all_dead_letters(&topic)
            .await
            .expect("replay"),
        10
    );
    failing
        .wait_until("the replays", |seen| {
            seen.iter().filter(|(m, _)| m.retry == 0).count() == 20
        })
        .await;
    assert_eq!(dead_letter_count(&backend, &topic).await, 0);
    // A sentinel behind the replays: once the single-threaded audit group handled
    // it, it has passed the replays, which it must have skipped.
    let sentinel = service
        .publish(&topic, json!({ "sentinel": true }))
        .await
        .expect("publish");
    healthy.wait_for_ids(&BTreeSet::from([sentinel])).await;
    assert_eq!(
        healthy.len(),
        11,
        "replays went to a group that had succeeded"
    );

    // Replaying an unknown or already replayed dead letter is a typed error.
    let again = service.replay_dead_letter(&topic, &dead[0].id).await;
    assert!(matches!(
        again,
        Err(MessagingError::DeadLetterNotFound { .. })
    ));
    service.shutdown().await;
    cleanup(&backend, &[&topic]).await;
}

/// A permanent error dead-letters at once, without retries.
pub async fn permanent_error_skips_retries(factory: impl BackendFactory) {
    let backend = factory.backend().await;
    let topic = unique_topic("permanent");
    let service = service(&backend);
    let recorder = Recorder::new();
    service
        .subscribe_with(
            &topic,
            quick("g"),
            crate::Shared(recorder.handler(|_| Err(HandlerError::permanent("no such user")))),
        )
        .await
        .expect("subscribe");
    let id = service.publish(&topic, json!({})).await.expect("publish");
    let dead = eventually("the dead letter", || async {
        backend
            .dead_letters(&topic, 10)
            .await
            .expect("dead letters")
            .pop()
    })
    .await;
    service.shutdown().await;
    assert_eq!(dead.message.id, id);
    assert_eq!(dead.attempts, 1);
    assert_eq!(dead.error, "permanent failure: no such user");
    assert_eq!(recorder.len(), 1);
    assert_eq!(dead_letter_count(&backend, &topic).await, 1);
    assert_eq!(backend.purge_dead_letters(&topic).await.expect("purge"), 1);
    assert_eq!(dead_letter_count(&backend, &topic).await, 0);
    cleanup(&backend, &[&topic]).await;
}

/// A panicking handler is a failure: retried, then dead-lettered with the panic text.
pub async fn handler_panic_counts_as_failure(factory: impl BackendFactory) {
    let backend = factory.backend().await;
    let topic = unique_topic("panic");
    let service = service(&backend).with_max_retry(1).expect("max retry");
    let calls = Arc::new(AtomicU32::new(0));
    let counted = calls.clone();
    let handler: Arc<dyn MessageHandler> = Arc::new(move |_message: Message| {
        let calls = counted.clone();
        async move {
            calls.fetch_add(1, Ordering::SeqCst);
            if calls.load(Ordering::SeqCst) < 100 {
                panic!("handler bug");
            }
            Ok::<(), HandlerError>(())
        }
    });
    service
        .subscribe_with(&topic, quick("g"), crate::Shared(handler))
        .await
        .expect("subscribe");
    service.publish(&topic, json!({})).await.expect("publish");
    let dead = eventually("the dead letter", || async {
        backend
            .dead_letters(&topic, 10)
            .await
            .expect("dead letters")
            .pop()
    })
    .await;
    service.shutdown().await;
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    assert_eq!(dead.attempts, 2);
    assert!(dead.error.contains("handler bug"), "{}", dead.error);
    cleanup(&backend, &[&topic]).await;
}

/// After unsubscribe, the old handler gets nothing; a new subscriber of the group
/// gets what was published meanwhile.
pub async fn unsubscribe_stops_delivery(factory: impl BackendFactory) {
    let backend = factory.backend().await;
    let topic = unique_topic("unsubscribe");
    let service = service(&backend);
    let old = Recorder::new();
    service
        .subscribe_with(&topic, quick("g"), crate::Shared(old.succeeding()))
        .await
        .expect("subscribe");
    let first = publish_n(&service, &topic, 5).await;
    old.wait_for_ids(&first).await;
    service.unsubscribe(&topic).await.expect("unsubscribe");
    assert!(matches!(
        service.unsubscribe(&topic).await,
        Err(MessagingError::NotSubscribed { .. })
    ));
    let second = publish_n(&service, &topic, 5).await;
    let new = Recorder::new();
    service
        .subscribe_with(&topic, quick("g"), crate::Shared(new.succeeding()))
        .await
        .expect("subscribe");
    new.wait_for_ids(&second).await;
    service.shutdown().await;
    assert_eq!(old.ids(), first, "the unsubscribed handler kept receiving");
    assert_eq!(new.ids(), second);
    cleanup(&backend, &[&topic]).await;
}

/// Bad topic names and oversized payloads are typed errors and store nothing.
pub async fn rejects_invalid_topic_and_oversized_payload(factory: impl BackendFactory) {
    let backend = factory.backend().await;
    let service = service(&backend);
    let topic = unique_topic("limits");
    let before = backend.list_topics().await.expect("list");

    for bad in ["", "has space", "curly{brace}", "colon:name"] {
        assert!(
            matches!(
                service.publish(bad, json!({})).await,
                Err(MessagingError::Validation(
                    ValidationError::InvalidTopic { .. }
                ))
            ),
            "{bad:?} accepted"
        );
        assert!(matches!(
            service
                .subscribe(bad, |_m: Message| async { Ok::<(), HandlerError>(()) })
                .await,
            Err(MessagingError::Validation(
                ValidationError::InvalidTopic { .. }
            ))
        ));
    }
    let huge = json!({ "blob": "x".repeat(messaging_model::MAX_PAYLOAD_BYTES + 1) });
    assert!(matches!(
        service.publish(&topic, huge.clone()).await,
        Err(MessagingError::Validation(
            ValidationError::PayloadTooLarge { .. }
        ))
    ));
    assert!(matches!(
        service
            .publish_delayed(&topic, huge.clone(), Duration::from_secs(1))
            .await,
        Err(MessagingError::Validation(
            ValidationError::PayloadTooLarge { .. }
        ))
    ));
    assert!(matches!(
        service
            .publish_batch(&topic, vec![json!({ "ok": true }), huge])
            .await,
        Err(MessagingError::Validation(
            ValidationError::PayloadTooLarge { .. }
        ))
    ));
    assert!(matches!(
        service
            .publish(&topic, json!(["not", "an", "object"]))
            .await,
        Err(MessagingError::Validation(
            ValidationError::PayloadNotObject { .. }
        ))
    ));
    // A message built by hand cannot carry a forged topic: a `Topic` is checked
    // when it is made, decoded ones included, so the backend never sees one.
    assert!(matches!(
        Topic::try_from("forged topic"),
        Err(ValidationError::InvalidTopic { .. })
    ));
    let mut forged =
        serde_json::to_value(Message::new(topic.as_str(), json!({})).expect("message"))
            .expect("encode");
    forged["topic"] = json!("forged topic");
    assert!(serde_json::from_value::<Message>(forged).is_err());
    // A message changed by hand is checked once, on the publish path.
    let mut changed = Message::new(topic.as_str(), json!({})).expect("message");
    changed.payload = json!(["not", "an", "object"]);
    assert!(matches!(
        service.publish_message(&changed).await,
        Err(MessagingError::Validation(
            ValidationError::PayloadNotObject { .. }
        ))
    ));
    assert_eq!(
        backend.list_topics().await.expect("list"),
        before,
        "a rejected publish stored something"
    );
    let stats = backend.stats(&topic).await.expect("stats");
    assert_eq!((stats.length, stats.scheduled), (0, 0));
}

/// A batch is stored in order.
pub async fn batch_publish_keeps_order(factory: impl BackendFactory) {
    let backend = factory.backend().await;
    let topic = unique_topic("batch");
    let service = service(&backend);
    backend
        .ensure_group(&topic, "g", StartFrom::Earliest)
        .await
        .expect("group");
    let payloads = (0..100).map(|i| json!({ "i": i })).collect();
    let ids = service
        .publish_batch(&topic, payloads)
        .await
        .expect("publish batch");
    let mut read = Vec::new();
    let start = tokio::time::Instant::now();
    while read.len() < 100 && start.elapsed() < DEADLINE {
        for delivery in backend
            .read(
                &consumer(&topic, "g", "c"),
                &ReadOptions::new_entries(100, Duration::from_millis(100)),
            )
            .await
            .expect("read")
        {
            backend.ack(&delivery.receipt).await.expect("ack");
            read.push(delivery.message.id);
        }
    }
    assert_eq!(read, ids);
    cleanup(&backend, &[&topic]).await;
}

/// Messages published while a topic has no consumer group yet are all kept,
/// more of them than the default retention keeps once settled, and a group
/// created afterwards from the earliest entry receives every one.
pub async fn publishing_before_any_group_loses_nothing(factory: impl BackendFactory) {
    const COUNT: usize = 10_500;
    let backend = factory.backend().await;
    let topic = unique_topic("nogroup");
    assert_eq!(
        Retention::default(),
        Retention::Settled { keep: 10_000 },
        "COUNT must exceed what the default retention keeps"
    );
    let mut published = BTreeSet::new();
    for chunk in 0..COUNT / 500 {
        let batch: Vec<Message> = (0..500)
            .map(|i| {
                Message::new(topic.as_str(), json!({ "n": chunk * 500 + i })).expect("message")
            })
            .collect();
        backend.publish_batch(&batch).await.expect("publish batch");
        published.extend(batch.iter().map(|m| m.id));
    }
    assert_eq!(published.len(), COUNT);
    backend
        .ensure_group(&topic, "g", StartFrom::Earliest)
        .await
        .expect("group");
    let mut received = BTreeSet::new();
    let start = tokio::time::Instant::now();
    loop {
        let deliveries = backend
            .read(
                &consumer(&topic, "g", "c"),
                &ReadOptions::new_entries(1_000, Duration::from_millis(100)),
            )
            .await
            .expect("read");
        if deliveries.is_empty() {
            break;
        }
        for delivery in deliveries {
            received.insert(delivery.message.id);
            backend.ack(&delivery.receipt).await.expect("ack");
        }
        assert!(start.elapsed() < DEADLINE, "timed out reading");
    }
    assert_eq!(
        received.len(),
        COUNT,
        "the first group received {} of {COUNT} messages published before it",
        received.len()
    );
    assert_eq!(received, published);
    cleanup(&backend, &[&topic]).await;
}

fn assert_queue_full(error: BackendError, topic: &str, cap: usize, written: usize) {
    match error {
        BackendError::QueueFull {
            topic: full,
            cap: limit,
            written: done,
        } => {
            assert_eq!(full, topic);
            assert_eq!(limit, cap as u64);
            assert_eq!(done, written);
        }
        other => panic!("expected QueueFull for {topic}, got {other:?}"),
    }
}

/// A topic at its cap refuses the next publish, batch and delayed message with a
/// non-transient [`BackendError::QueueFull`] naming the topic and the cap, and
/// loses nothing it already accepted; a batch is all or nothing per run of one
/// topic and says how many were written. Once a group settles the messages,
/// publishing works again.
pub async fn topic_cap_refuses_publishing_with_queue_full(factory: impl CappedBackendFactory) {
    const CAP: usize = 20;
    let backend = factory.backend_with_cap(CAP).await;
    let topic = unique_topic("cap");
    let other = unique_topic("capother");
    // One partition key: on a partitioned topic the cap holds for each partition.
    let message = |topic: &str, n: usize| {
        Message::new(topic, json!({ "n": n }))
            .and_then(|m| m.with_partition_key("cap"))
            .expect("message")
    };

    let mut accepted = Vec::new();
    let first: Vec<Message> = (0..CAP - 5).map(|n| message(&topic, n)).collect();
    backend.publish_batch(&first).await.expect("publish batch");
    accepted.extend(first.iter().map(|m| m.id));
    // A batch that would overshoot the cap writes nothing.
    let over: Vec<Message> = (0..6).map(|n| message(&topic, 100 + n)).collect();
    assert_queue_full(
        backend
            .publish_batch(&over)
            .await
            .expect_err("batch past the cap"),
        &topic,
        CAP,
        0,
    );
    for n in CAP - 5..CAP {
        let m = message(&topic, n);
        backend.publish(&m).await.expect("publish up to the cap");
        accepted.push(m.id);
    }

    let error = backend
        .publish(&message(&topic, 999))
        .await
        .expect_err("publish past the cap");
    assert!(!error.is_transient(), "QueueFull must not be transient");
    let text = error.to_string();
    assert!(
        text.contains(topic.as_str()) && text.contains(&CAP.to_string()),
        "{text}"
    );
    assert_queue_full(error, &topic, CAP, 0);
    assert_queue_full(
        backend
            .schedule(&message(&topic, 998), Utc::now())
            .await
            .expect_err("schedule past the cap"),
        &topic,
        CAP,
        0,
    );
    // A run of another topic first is written; the full topic's run is not.
    let mixed = vec![message(&other, 0), message(&other, 1), message(&topic, 997)];
    assert_queue_full(
        backend
            .publish_batch(&mixed)
            .await
            .expect_err("mixed batch"),
        &topic,
        CAP,
        2,
    );
    assert_eq!(backend.stats(&other).await.expect("stats").length, 2);
    let stats = backend.stats(&topic).await.expect("stats");
    assert_eq!((stats.length, stats.scheduled), (CAP as u64, 0));

    // Nothing accepted was lost, nothing refused was written.
    backend
        .ensure_group(&topic, "g", StartFrom::Earliest)
        .await
        .expect("group");
    let deliveries = take_new(&backend, &topic, "c", CAP).await;
    let read: Vec<Uuid> = deliveries.iter().map(|d| d.message.id).collect();
    assert_eq!(read, accepted);
    assert!(
        backend
            .read(
                &consumer(&topic, "g", "c"),
                &ReadOptions::new_entries(10, Duration::from_millis(50))
            )
            .await
            .expect("read")
            .is_empty(),
        "a refused message was written"
    );
    // Still full while the group holds them.
    assert_queue_full(
        backend
            .publish(&message(&topic, 996))
            .await
            .expect_err("pending still count"),
        &topic,
        CAP,
        0,
    );
    // Settled messages free their room.
    for delivery in &deliveries {
        assert_eq!(
            backend.ack(&delivery.receipt).await.expect("ack"),
            Settlement::Settled
        );
    }
    let again = message(&topic, 1_000);
    backend
        .publish(&again)
        .await
        .expect("publish once the group settled");
    let next = take_new(&backend, &topic, "c", 1).await;
    assert_eq!(next[0].message.id, again.id);
    cleanup(&backend, &[&topic, &other]).await;
}

/// Topics are created, listed and deleted with everything in them.
pub async fn topics_are_created_listed_and_deleted(factory: impl BackendFactory) {
    let backend = factory.backend().await;
    let service = service(&backend);
    let topic = unique_topic("admin");
    service.create_topic(&topic).await.expect("create");
    service.create_topic(&topic).await.expect("create twice");
    assert!(service.list_topics().await.expect("list").contains(&topic));
    service.publish(&topic, json!({})).await.expect("publish");
    service
        .publish_delayed(&topic, json!({}), Duration::from_secs(3600))
        .await
        .expect("publish delayed");
    assert!(service.delete_topic(&topic).await.expect("delete"));
    assert!(!service.list_topics().await.expect("list").contains(&topic));
    let stats = service.stats(&topic).await.expect("stats");
    assert_eq!(
        (stats.length, stats.scheduled, stats.dead_lettered),
        (0, 0, 0)
    );
    assert!(!service.delete_topic(&topic).await.expect("delete again"));
    assert!(matches!(
        service.create_topic("not valid").await,
        Err(MessagingError::Validation(_))
    ));
}

/// Stats count retained, pending, lagging, scheduled and dead-lettered messages.
pub async fn stats_count_pending_lag_scheduled_and_dead(factory: impl BackendFactory) {
    let backend = factory.backend().await;
    let topic = unique_topic("stats");
    let service = service(&backend);
    backend
        .ensure_group(&topic, "g", StartFrom::Earliest)
        .await
        .expect("group");
    publish_n(&service, &topic, 5).await;
    service
        .publish_delayed(&topic, json!({}), Duration::from_secs(3600))
        .await
        .expect("publish delayed");
    let taken = take_new(&backend, &topic, "c", 2).await;
    let first = &taken[0];
    backend
        .dead_letter(&first.receipt, &first.message, "bad")
        .await
        .expect("dead letter");
    let stats = backend.stats(&topic).await.expect("stats");
    assert_eq!(stats.topic, topic);
    assert_eq!(stats.length, 5);
    assert_eq!(stats.scheduled, 1);
    assert_eq!(stats.dead_lettered, 1);
    assert_eq!(stats.groups.len(), 1);
    assert_eq!(stats.groups[0].name, "g");
    assert_eq!(stats.groups[0].pending, 1);
    assert_eq!(stats.groups[0].lag, 3);
    cleanup(&backend, &[&topic]).await;
}

/// Health answers with the backend's name.
pub async fn health_answers(factory: impl BackendFactory) {
    let backend = factory.backend().await;
    let service = service(&backend);
    let report = service.health().await.expect("health");
    assert_eq!(report.backend, backend.name());
    assert_eq!(report.subscriptions, 0);
}

// ---------------------------------------------------------------------------
// Timeouts, cancellation and expiry
// ---------------------------------------------------------------------------

/// Counts drops: a handler holds one while it runs, so a future the runtime
/// dropped at its deadline shows up here.
struct DropCounter(Arc<AtomicU32>);

impl Drop for DropCounter {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

/// A handler that never finishes by itself is cut off at the subscription's
/// timeout: its cancellation token is cancelled, its future dropped, and the
/// attempt counts as a failure, retried with backoff and then dead-lettered
/// with the error `timed out`.
pub async fn a_handler_past_its_timeout_is_dropped_retried_then_dead_lettered(
    factory: impl BackendFactory,
) {
    let backend = factory.backend().await;
    let topic = unique_topic("timeout");
    let service = service(&backend).with_max_retry(2).expect("max retry");
    let (started, dropped, cancelled) = (
        Arc::new(AtomicU32::new(0)),
        Arc::new(AtomicU32::new(0)),
        Arc::new(AtomicU32::new(0)),
    );
    let counters = (started.clone(), dropped.clone(), cancelled.clone());
    let handler: Arc<dyn MessageHandler> = Arc::new(move |_message: Message| {
        let (started, dropped, cancelled) = counters.clone();
        async move {
            started.fetch_add(1, Ordering::SeqCst);
            let _guard = DropCounter(dropped);
            // Work the handler spawned sees the token too.
            let token = crate::cancellation();
            tokio::spawn(async move {
                token.cancelled().await;
                cancelled.fetch_add(1, Ordering::SeqCst);
            });
            std::future::pending::<()>().await;
            Ok::<(), HandlerError>(())
        }
    });
    service
        .subscribe_with(
            &topic,
            quick("g").with_handler_timeout(Duration::from_millis(100)),
            crate::Shared(handler),
        )
        .await
        .expect("subscribe");
    let id = service.publish(&topic, json!({})).await.expect("publish");
    let dead = eventually("the dead letter", || async {
        backend
            .dead_letters(&topic, 10)
            .await
            .expect("dead letters")
            .pop()
    })
    .await;
    assert_eq!(dead.message.id, id);
    assert_eq!(dead.error, "timed out");
    assert_eq!(dead.attempts, 3, "the first attempt and two retries");
    assert_eq!(started.load(Ordering::SeqCst), 3);
    assert_eq!(
        dropped.load(Ordering::SeqCst),
        3,
        "each attempt's future was dropped at its deadline"
    );
    eventually("every attempt's token cancelled", || async {
        (cancelled.load(Ordering::SeqCst) == 3).then_some(())
    })
    .await;
    service.shutdown().await;
    assert_eq!(dead_letter_count(&backend, &topic).await, 1);
    cleanup(&backend, &[&topic]).await;
}

/// A message's `timeout_ms` metadata replaces the subscription's timeout: a
/// short one cuts off a handler the subscription would let run, a long one
/// lets a handler run past the subscription's. A bad value is refused at
/// publish.
pub async fn a_message_timeout_overrides_the_subscription(factory: impl BackendFactory) {
    let backend = factory.backend().await;
    let (short, long) = (unique_topic("timeout-short"), unique_topic("timeout-long"));
    let service = service(&backend).with_max_retry(0).expect("max retry");

    // No timeout on the subscription, 50 ms on the message.
    let never = Recorder::new();
    let pending: Arc<dyn MessageHandler> = {
        let never = never.clone();
        Arc::new(move |message: Message| {
            let never = never.clone();
            async move {
                never.record(&message);
                std::future::pending::<()>().await;
                Ok::<(), HandlerError>(())
            }
        })
    };
    service
        .subscribe_with(&short, quick("g"), crate::Shared(pending))
        .await
        .expect("subscribe");
    let message = service
        .message(&short, json!({}))
        .unwrap()
        .with_metadata(crate::HANDLER_TIMEOUT_KEY, "50");
    service.publish_message(&message).await.expect("publish");
    let dead = eventually("the dead letter", || async {
        backend
            .dead_letters(&short, 10)
            .await
            .expect("dead letters")
            .pop()
    })
    .await;
    assert_eq!(
        (dead.message.id, dead.error.as_str()),
        (message.id, "timed out")
    );

    // 50 ms on the subscription, 10 minutes on the message: the handler is
    // released only once it has run well past 50 ms.
    let release = Arc::new(tokio::sync::Notify::new());
    let running_since = Arc::new(Mutex::new(None::<tokio::time::Instant>));
    let done = Recorder::new();
    let slow: Arc<dyn MessageHandler> = {
        let (release, running_since, done) = (release.clone(), running_since.clone(), done.clone());
        Arc::new(move |message: Message| {
            let (release, running_since, done) =
                (release.clone(), running_since.clone(), done.clone());
            async move {
                let released = release.notified();
                tokio::pin!(released);
                released.as_mut().enable();
                *running_since.lock().unwrap() = Some(tokio::time::Instant::now());
                released.await;
                done.record(&message);
                Ok::<(), HandlerError>(())
            }
        })
    };
    service
        .subscribe_with(
            &long,
            quick("g").with_handler_timeout(Duration::from_millis(50)),
            crate::Shared(slow),
        )
        .await
        .expect("subscribe");
    let message = service
        .message(&long, json!({}))
        .unwrap()
        .with_metadata(crate::HANDLER_TIMEOUT_KEY, "600000");
    service.publish_message(&message).await.expect("publish");
    eventually("the handler running for 500 ms", || async {
        running_since
            .lock()
            .unwrap()
            .is_some_and(|since| since.elapsed() >= Duration::from_millis(500))
            .then_some(())
    })
    .await;
    release.notify_waiters();
    done.wait_until("the slow message handled", |seen| !seen.is_empty())
        .await;
    service.shutdown().await;
    assert_eq!(done.ids(), BTreeSet::from([message.id]));
    assert_eq!(dead_letter_count(&backend, &long).await, 0);

    for bad in ["0", "soon", "-5", "86400001"] {
        let message = service
            .message(&long, json!({}))
            .unwrap()
            .with_metadata(crate::HANDLER_TIMEOUT_KEY, bad);
        assert!(
            matches!(
                service.publish_message(&message).await,
                Err(MessagingError::Validation(
                    ValidationError::InvalidMetadata { .. }
                ))
            ),
            "{bad:?} is refused"
        );
    }
    cleanup(&backend, &[&short, &long]).await;
}

/// Shutting down cancels every running handler's token; a handler that stops
/// with an error then leaves its message pending, with no retry used up, and
/// the restarted consumer gets it again.
pub async fn shutdown_cancels_the_token_and_the_message_is_redelivered_unretried(
    factory: impl BackendFactory,
) {
    let backend = factory.backend().await;
    let topic = unique_topic("shutdown-token");
    let first = service(&backend);
    let saw_cancel = Arc::new(AtomicBool::new(false));
    let recorder = Recorder::new();
    let handler: Arc<dyn MessageHandler> = {
        let (saw_cancel, recorder) = (saw_cancel.clone(), recorder.clone());
        Arc::new(move |message: Message| {
            let (saw_cancel, recorder) = (saw_cancel.clone(), recorder.clone());
            async move {
                let token = crate::cancellation();
                recorder.record(&message);
                token.cancelled().await;
                saw_cancel.store(true, Ordering::SeqCst);
                Err::<(), _>(HandlerError::retry("stopped by shutdown"))
            }
        })
    };
    // A shutdown wait longer than any test: shutdown returns because the
    // handler stopped on its token, not because the wait ran out.
    let options = quick("g")
        .with_consumer("c1")
        .with_shutdown_timeout(DEADLINE * 2);
    first
        .subscribe_with(&topic, options.clone(), crate::Shared(handler))
        .await
        .expect("subscribe");
    let id = first.publish(&topic, json!({})).await.expect("publish");
    recorder
        .wait_until("the handler running", |seen| !seen.is_empty())
        .await;
    first.shutdown().await;
    assert!(saw_cancel.load(Ordering::SeqCst), "the token was cancelled");
    assert_eq!(dead_letter_count(&backend, &topic).await, 0);
    let stats = backend.stats(&topic).await.expect("stats");
    assert_eq!(stats.scheduled, 0, "not retried");
    assert_eq!(stats.groups[0].pending, 1, "left pending");

    let again = Recorder::new();
    let second = service(&backend);
    second
        .subscribe_with(&topic, options, crate::Shared(again.succeeding()))
        .await
        .expect("subscribe again");
    again
        .wait_until("the redelivery", |seen| !seen.is_empty())
        .await;
    second.shutdown().await;
    let (redelivered, _) = &again.seen()[0];
    assert_eq!(redelivered.id, id);
    assert_eq!(redelivered.retry, 0, "no retry was used up");
    cleanup(&backend, &[&topic]).await;
}

/// A message whose `expires_at` passed before an attempt started is not run:
/// it is dead-lettered with the error `expired`, whether it waited in the
/// stream or in the delay queue; one still valid is handled and carries its
/// expiry; replaying the expired dead letter runs it (the passed expiry is
/// cleared).
pub async fn an_expired_message_is_dead_lettered_without_running_the_handler(
    factory: impl BackendFactory,
) {
    let backend = factory.backend().await;
    let topic = unique_topic("expired");
    let service = service(&backend);
    let now = Utc::now();
    let expired = service
        .message(&topic, json!({"n": "expired"}))
        .unwrap()
        .with_expires_at(now - chrono::Duration::seconds(1));
    service.publish_message(&expired).await.expect("publish");
    // Due after its expiry, and never delivered early: expired on arrival.
    let late = service
        .message(&topic, json!({"n": "late"}))
        .unwrap()
        .with_expires_at(now + chrono::Duration::milliseconds(100));
    service
        .publish_message_at(&late, now + chrono::Duration::milliseconds(300))
        .await
        .expect("schedule");
    let live = service
        .publish_expiring(&topic, json!({"n": "live"}), Duration::from_secs(3600))
        .await
        .expect("publish");

    let recorder = Recorder::new();
    service
        .subscribe_with(&topic, quick("g"), crate::Shared(recorder.succeeding()))
        .await
        .expect("subscribe");
    let dead = eventually("two dead letters", || async {
        let dead = backend
            .dead_letters(&topic, 10)
            .await
            .expect("dead letters");
        (dead.len() >= 2).then_some(dead)
    })
    .await;
    recorder
        .wait_until("the live message", |seen| {
            seen.iter().any(|(m, _)| m.id == live)
        })
        .await;
    assert_eq!(
        dead.iter().map(|d| d.message.id).collect::<BTreeSet<_>>(),
        BTreeSet::from([expired.id, late.id])
    );
    assert!(dead.iter().all(|d| d.error == "expired"), "{dead:?}");
    assert_eq!(
        recorder.ids(),
        BTreeSet::from([live]),
        "no expired message reached the handler"
    );
    let (handled, _) = &recorder.seen()[0];
    let expires_at = handled
        .expires_at
        .expect("the expiry travels with the message");
    assert!(expires_at > now + chrono::Duration::minutes(59));

    let expired_dead = dead.iter().find(|d| d.message.id == expired.id).unwrap();
    assert!(
        backend
            .replay_dead_letter(&topic, &expired_dead.id)
            .await
            .expect("replay")
    );
    recorder
        .wait_until("the replayed message", |seen| {
            seen.iter().any(|(m, _)| m.id == expired.id)
        })
        .await;
    service.shutdown().await;
    assert_eq!(dead_letter_count(&backend, &topic).await, 1);
    cleanup(&backend, &[&topic]).await;
}

/// With `OnExpired::Drop` an expired message is acknowledged without running
/// the handler and leaves no dead letter.
pub async fn an_expired_message_is_dropped_when_the_subscription_says_so(
    factory: impl BackendFactory,
) {
    let backend = factory.backend().await;
    let topic = unique_topic("expired-drop");
    let service = service(&backend);
    let expired = service
        .message(&topic, json!({}))
        .unwrap()
        .with_expires_at(Utc::now() - chrono::Duration::seconds(1));
    service.publish_message(&expired).await.expect("publish");
    let live = service.publish(&topic, json!({})).await.expect("publish");
    let recorder = Recorder::new();
    service
        .subscribe_with(
            &topic,
            quick("g").with_on_expired(crate::OnExpired::Drop),
            crate::Shared(recorder.succeeding()),
        )
        .await
        .expect("subscribe");
    recorder
        .wait_until("the live message", |seen| !seen.is_empty())
        .await;
    eventually("both settled", || async {
        let stats = backend.stats(&topic).await.expect("stats");
        stats
            .groups
            .iter()
            .all(|g| g.pending == 0 && g.lag == 0)
            .then_some(())
    })
    .await;
    service.shutdown().await;
    assert_eq!(recorder.ids(), BTreeSet::from([live]));
    assert_eq!(dead_letter_count(&backend, &topic).await, 0);
    cleanup(&backend, &[&topic]).await;
}

/// Cancelling by id removes a delayed message, a message waiting for its
/// retry, and a stream entry no group has read (with or without groups); the
/// removed ones are never delivered. A delivered message, a handled one, a
/// cancelled one and an unknown id answer `false`.
pub async fn cancel_removes_waiting_and_scheduled_messages_but_not_delivered_ones(
    factory: impl BackendFactory,
) {
    let backend = factory.backend().await;
    let topic = unique_topic("cancel");
    let lonely = unique_topic("cancel-nogroup");
    let retried = unique_topic("cancel-retry");
    let service = service(&backend);

    // No group at all: every entry is waiting.
    let alone = service.publish(&lonely, json!({})).await.expect("publish");
    assert!(service.cancel(&lonely, alone).await.expect("cancel"));
    assert_eq!(backend.stats(&lonely).await.expect("stats").length, 0);

    backend
        .ensure_group(&topic, "g", StartFrom::Earliest)
        .await
        .expect("group");
    // One partition key: on a partitioned topic the three keep their order.
    let delivered = publish_keyed(&service, &topic, json!({"n": "delivered"}), "cancel").await;
    let waiting = publish_keyed(&service, &topic, json!({"n": "waiting"}), "cancel").await;
    let kept = publish_keyed(&service, &topic, json!({"n": "kept"}), "cancel").await;
    let taken = take_new(&backend, &topic, "manual", 1).await;
    assert_eq!(taken[0].message.id, delivered);
    assert!(
        !service.cancel(&topic, delivered).await.expect("cancel"),
        "a delivered message is not cancellable"
    );
    assert!(
        service
            .cancel(&topic, waiting)
            .await
            .expect("cancel waiting")
    );
    assert!(!service.cancel(&topic, waiting).await.expect("cancel again"));
    assert!(
        !service
            .cancel(&topic, Uuid::now_v7())
            .await
            .expect("cancel unknown")
    );
    assert_eq!(
        backend.ack(&taken[0].receipt).await.expect("ack"),
        Settlement::Settled
    );

    // Delayed: cancelled before its time; a later marker shows the time passed.
    let scheduled = service
        .publish_delayed(
            &topic,
            json!({"n": "scheduled"}),
            Duration::from_millis(300),
        )
        .await
        .expect("schedule");
    assert!(
        service
            .cancel(&topic, scheduled)
            .await
            .expect("cancel scheduled")
    );
    let marker = service
        .publish_delayed(&topic, json!({"n": "marker"}), Duration::from_millis(600))
        .await
        .expect("schedule marker");

    let recorder = Recorder::new();
    service
        .subscribe_with(&topic, quick("g"), crate::Shared(recorder.succeeding()))
        .await
        .expect("subscribe");
    recorder.wait_for_ids(&BTreeSet::from([kept, marker])).await;
    eventually("everything settled", || async {
        let stats = backend.stats(&topic).await.expect("stats");
        (stats.scheduled == 0 && stats.groups.iter().all(|g| g.pending == 0 && g.lag == 0))
            .then_some(())
    })
    .await;
    assert_eq!(
        recorder.ids(),
        BTreeSet::from([kept, marker]),
        "cancelled messages are never delivered"
    );
    assert!(!service.cancel(&topic, kept).await.expect("cancel handled"));

    // Waiting for a retry: the next attempt is cancelled.
    let failing = Recorder::new();
    service
        .subscribe_with(
            &retried,
            quick("g"),
            crate::Shared(failing.handler(|_| {
                Err(HandlerError::retry_after(
                    Duration::from_secs(3600),
                    "later",
                ))
            })),
        )
        .await
        .expect("subscribe");
    let retry = service.publish(&retried, json!({})).await.expect("publish");
    eventually("the retry scheduled", || async {
        (backend.stats(&retried).await.expect("stats").scheduled == 1).then_some(())
    })
    .await;
    assert!(service.cancel(&retried, retry).await.expect("cancel retry"));
    assert_eq!(backend.stats(&retried).await.expect("stats").scheduled, 0);
    service.shutdown().await;
    assert_eq!(failing.len(), 1);
    assert_eq!(dead_letter_count(&backend, &retried).await, 0);
    cleanup(&backend, &[&topic, &lonely, &retried]).await;
}

/// Cancels racing the promotion of due messages and a running consumer: each
/// message is either cancelled (and never delivered) or delivered (and its
/// cancel answered `false`), never both, never neither.
pub async fn cancel_racing_delivery_removes_or_delivers_each_message_once(
    factory: impl BackendFactory,
) {
    let backend = factory.backend().await;
    let topic = unique_topic("cancel-race");
    let service = Arc::new(service(&backend));
    let recorder = Recorder::new();
    service
        .subscribe_with(&topic, quick("g"), crate::Shared(recorder.succeeding()))
        .await
        .expect("subscribe");
    let mut ids = Vec::new();
    for i in 0..60u64 {
        let id = if i % 2 == 0 {
            service
                .publish(&topic, json!({"i": i}))
                .await
                .expect("publish")
        } else {
            service
                .publish_delayed(&topic, json!({"i": i}), Duration::from_millis(i * 2))
                .await
                .expect("schedule")
        };
        ids.push(id);
    }
    let cancels: Vec<_> = ids
        .iter()
        .map(|&id| {
            let (service, topic) = (service.clone(), topic.clone());
            tokio::spawn(async move { (id, service.cancel(&topic, id).await.expect("cancel")) })
        })
        .collect();
    let mut cancelled = BTreeSet::new();
    let mut not_cancelled = BTreeSet::new();
    for cancel in cancels {
        let (id, done) = cancel.await.expect("cancel task");
        if done {
            cancelled.insert(id);
        } else {
            not_cancelled.insert(id);
        }
    }
    recorder.wait_for_ids(&not_cancelled).await;
    eventually("everything settled", || async {
        let stats = backend.stats(&topic).await.expect("stats");
        (stats.scheduled == 0 && stats.groups.iter().all(|g| g.pending == 0 && g.lag == 0))
            .then_some(())
    })
    .await;
    service.shutdown().await;
    let delivered = recorder.ids();
    assert_eq!(
        delivered, not_cancelled,
        "delivered exactly the ones not cancelled"
    );
    assert!(delivered.is_disjoint(&cancelled));
    assert_eq!(recorder.len(), delivered.len(), "none delivered twice");
    assert_eq!(cancelled.len() + delivered.len(), ids.len());
    cleanup(&backend, &[&topic]).await;
}

// ---------------------------------------------------------------------------
// Schedules (periodic jobs)
// ---------------------------------------------------------------------------

/// What the schedule tests take: an async function returning one fresh backend
/// as both its [`ScheduleBackend`](crate::schedule::ScheduleBackend) and its
/// [`MessageBackend`] (the same object), e.g.
/// `|| async { let b = Arc::new(MyBackend::new()); (b.clone() as _, b as _) }`.
pub trait ScheduleBackendFactory {
    /// A fresh backend, twice.
    fn backends(
        &self,
    ) -> impl Future<Output = (Arc<dyn crate::schedule::ScheduleBackend>, Arc<dyn Backend>)>;
}

impl<F, Fut> ScheduleBackendFactory for F
where
    F: Fn() -> Fut,
    Fut: Future<Output = (Arc<dyn crate::schedule::ScheduleBackend>, Arc<dyn Backend>)>,
{
    fn backends(
        &self,
    ) -> impl Future<Output = (Arc<dyn crate::schedule::ScheduleBackend>, Arc<dyn Backend>)> {
        self()
    }
}

/// The stats of `group` on `topic`.
async fn group_stats(backend: &Arc<dyn Backend>, topic: &Topic, group: &str) -> crate::GroupStats {
    let stats = backend.stats(topic).await.expect("stats");
    stats
        .groups
        .into_iter()
        .find(|g| g.name == group)
        .unwrap_or_else(|| panic!("no group {group} in the stats"))
}

/// A group paused before its subscription starts takes nothing published while
/// paused, while another group of the topic consumes everything (the marker);
/// stats show the pause and the waiting lag; on resume the paused group gets
/// every message exactly once.
pub async fn a_paused_group_takes_nothing_until_resumed_then_everything_once(
    factory: impl BackendFactory,
) {
    let backend = factory.backend().await;
    let topic = unique_topic("paused");
    let service = service(&backend);
    assert!(service.pause(&topic, Some("held")).await.expect("pause"));
    assert!(
        !service
            .pause(&topic, Some("held"))
            .await
            .expect("pause again"),
        "already paused"
    );
    let (held, other) = (Recorder::new(), Recorder::new());
    service
        .subscribe_with(&topic, quick("held"), crate::Shared(held.succeeding()))
        .await
        .expect("subscribe held");
    service
        .subscribe_with(&topic, quick("other"), crate::Shared(other.succeeding()))
        .await
        .expect("subscribe other");
    let ids = publish_n(&service, &topic, 5).await;
    other.wait_for_ids(&ids).await;
    assert_eq!(held.len(), 0, "the paused group took nothing");
    let stats = backend.stats(&topic).await.expect("stats");
    assert!(!stats.paused, "only one group is paused");
    let held_stats = group_stats(&backend, &topic, "held").await;
    assert!(held_stats.paused);
    assert_eq!((held_stats.lag, held_stats.pending), (5, 0));
    assert!(!group_stats(&backend, &topic, "other").await.paused);

    assert!(service.resume(&topic, Some("held")).await.expect("resume"));
    assert!(
        !service
            .resume(&topic, Some("held"))
            .await
            .expect("resume again")
    );
    held.wait_for_ids(&ids).await;
    // A last message, once it is seen, shows nothing came twice before it.
    let last = service
        .publish(&topic, json!({"last": true}))
        .await
        .expect("publish");
    held.wait_for_ids(&BTreeSet::from([last])).await;
    other.wait_for_ids(&BTreeSet::from([last])).await;
    service.shutdown().await;
    assert_eq!(held.len(), 6, "every message exactly once");
    assert_eq!(other.len(), 6);
    assert!(!group_stats(&backend, &topic, "held").await.paused);
    cleanup(&backend, &[&topic]).await;
}

/// A handler running when its group is paused finishes, and its message is
/// acknowledged (not redelivered, not retried); resuming delivers what came
/// meanwhile.
pub async fn a_handler_running_when_paused_finishes_and_is_acked(factory: impl BackendFactory) {
    let backend = factory.backend().await;
    let topic = unique_topic("pause-running");
    let service = service(&backend);
    let recorder = Recorder::new();
    let (release, released) = watch::channel(false);
    let handler: Arc<dyn MessageHandler> = {
        let recorder = recorder.clone();
        Arc::new(move |message: Message| {
            let (recorder, mut released) = (recorder.clone(), released.clone());
            async move {
                recorder.record(&message);
                if message.payload.get("hold").is_some() {
                    let _ = released.wait_for(|go| *go).await;
                }
                Ok::<(), HandlerError>(())
            }
        })
    };
    service
        .subscribe_with(&topic, quick("g"), crate::Shared(handler))
        .await
        .expect("subscribe");
    let held = service
        .publish(&topic, json!({"hold": true}))
        .await
        .expect("publish");
    recorder
        .wait_until("the handler running", |seen| !seen.is_empty())
        .await;
    assert!(service.pause(&topic, Some("g")).await.expect("pause"));
    let stats = group_stats(&backend, &topic, "g").await;
    assert!(stats.paused);
    assert_eq!(stats.pending, 1, "still being handled");
    release.send_replace(true);
    eventually("the running message acknowledged", || async {
        (group_stats(&backend, &topic, "g").await.pending == 0).then_some(())
    })
    .await;
    let stats = backend.stats(&topic).await.expect("stats");
    assert_eq!(stats.scheduled, 0, "not retried");
    assert_eq!(dead_letter_count(&backend, &topic).await, 0);

    assert!(service.resume(&topic, Some("g")).await.expect("resume"));
    let after = service.publish(&topic, json!({})).await.expect("publish");
    recorder.wait_for_ids(&BTreeSet::from([after])).await;
    service.shutdown().await;
    let times_held = recorder.seen().iter().filter(|(m, _)| m.id == held).count();
    assert_eq!(
        times_held, 1,
        "the message handled during the pause was not redelivered"
    );
    cleanup(&backend, &[&topic]).await;
}

/// A subscription already running when its group is paused takes nothing
/// more once it has looked at the pause state (the signal: its backend,
/// observed, answered it paused), while messages keep arriving; resuming
/// delivers them once.
pub async fn a_running_subscription_takes_nothing_once_it_has_seen_the_pause(
    factory: impl BackendFactory,
) {
    let faulty = Arc::new(FaultyBackend::new(factory.backend().await));
    let backend: Arc<dyn Backend> = faulty.clone();
    let (topic, marker_topic) = (unique_topic("pause-live"), unique_topic("pause-live-mark"));
    let (saw_pause, mut seen) = watch::channel(false);
    faulty.observe(move |operation, outcome| {
        if operation == Operation::PauseState
            && matches!(&outcome, Outcome::Paused(state) if state.is_paused("g"))
        {
            saw_pause.send_replace(true);
        }
        Box::pin(async {})
    });
    let service = service(&backend);
    let (held, marker) = (Recorder::new(), Recorder::new());
    service
        .subscribe_with(&topic, quick("g"), crate::Shared(held.succeeding()))
        .await
        .expect("subscribe");
    service
        .subscribe_with(
            &marker_topic,
            quick("g"),
            crate::Shared(marker.succeeding()),
        )
        .await
        .expect("subscribe marker");
    let before = service.publish(&topic, json!({})).await.expect("publish");
    held.wait_for_ids(&BTreeSet::from([before])).await;

    assert!(service.pause(&topic, Some("g")).await.expect("pause"));
    // Only the subscription of `topic` reads a state pausing `g`.
    tokio::time::timeout(DEADLINE, seen.wait_for(|seen| *seen))
        .await
        .expect("the subscription looked at the pause state")
        .expect("observer alive");
    let ids = publish_n(&service, &topic, 3).await;
    let mark = service
        .publish(&marker_topic, json!({}))
        .await
        .expect("publish marker");
    marker.wait_for_ids(&BTreeSet::from([mark])).await;
    assert_eq!(held.len(), 1, "nothing taken once the pause was seen");
    // No lag or pending figure here: once the first entry is settled and
    // trimmed a Redis stream's group lag is an estimate, and on a partitioned
    // topic a blocking read of another partition started before the pause may
    // have fetched (made pending) an entry that is handed to the handler only
    // after the resume.
    assert!(group_stats(&backend, &topic, "g").await.paused);

    assert!(service.resume(&topic, Some("g")).await.expect("resume"));
    held.wait_for_ids(&ids).await;
    service.shutdown().await;
    assert_eq!(held.len(), 4, "each once");
    cleanup(&backend, &[&topic, &marker_topic]).await;
}

/// The pause lives in the backend: a topic paused (for every group) through
/// one service instance holds the subscriptions of another over the same
/// backend, which sees it in its stats; resuming one group does not lift the
/// topic's pause; resuming the topic lets the other instance take everything.
pub async fn a_pause_by_one_service_holds_the_subscriptions_of_another(
    factory: impl BackendFactory,
) {
    let backend = factory.backend().await;
    let (topic, marker_topic) = (unique_topic("pause-across"), unique_topic("pause-marker"));
    let operator = service(&backend);
    let worker = service(&backend);
    assert!(operator.pause(&topic, None).await.expect("pause the topic"));
    let state = worker.pause_state(&topic).await.expect("pause state");
    assert!(state.all && state.is_paused("g"));
    assert!(worker.stats(&topic).await.expect("stats").paused);

    let (held, marker) = (Recorder::new(), Recorder::new());
    worker
        .subscribe_with(&topic, quick("g"), crate::Shared(held.succeeding()))
        .await
        .expect("subscribe");
    worker
        .subscribe_with(
            &marker_topic,
            quick("g"),
            crate::Shared(marker.succeeding()),
        )
        .await
        .expect("subscribe marker");
    let ids = publish_n(&operator, &topic, 3).await;
    let mark = operator
        .publish(&marker_topic, json!({}))
        .await
        .expect("publish marker");
    marker.wait_for_ids(&BTreeSet::from([mark])).await;
    assert_eq!(held.len(), 0, "the paused topic gave nothing");
    let stats = worker.stats(&topic).await.expect("stats");
    assert!(stats.paused && stats.groups[0].paused);
    assert_eq!(stats.groups[0].lag, 3);

    assert!(
        !operator
            .resume(&topic, Some("g"))
            .await
            .expect("resume group"),
        "the group had no pause of its own"
    );
    assert!(
        worker
            .pause_state(&topic)
            .await
            .expect("state")
            .is_paused("g")
    );
    assert!(operator.resume(&topic, None).await.expect("resume topic"));
    held.wait_for_ids(&ids).await;
    worker.shutdown().await;
    assert_eq!(held.len(), 3);
    assert!(worker.pause_state(&topic).await.expect("state").is_empty());
    cleanup(&backend, &[&topic, &marker_topic]).await;
}

/// Stamps out the schedule tests for a [`ScheduleBackendFactory`].
#[macro_export]
macro_rules! schedule_conformance_tests {
    ($factory:path) => {
        $crate::backend_conformance_tests!(@each $factory;
            schedules_are_saved_listed_paused_and_removed,
            a_tick_is_published_once_however_many_claim_it,
            schedulers_over_one_backend_publish_each_tick_once
        );
    };
}

fn unique_schedule(name: &str) -> String {
    let id = Uuid::now_v7().simple().to_string();
    format!("conformance-{name}-{}", &id[id.len() - 12..])
}

/// Saving replaces by name; listing is by name with the marks; pausing and
/// removing answer whether the schedule existed.
pub async fn schedules_are_saved_listed_paused_and_removed(factory: impl ScheduleBackendFactory) {
    use crate::schedule::Schedule;
    let (schedules, backend) = factory.backends().await;
    let (a, b) = (unique_schedule("a"), unique_schedule("b"));
    let topic = unique_topic("sched");
    let first = Schedule::interval(&a, &topic, Duration::from_secs(60), json!({"v": 1})).unwrap();
    schedules.save_schedule(&first).await.expect("save a");
    let other = Schedule::cron(&b, &topic, "0 0 3 * * *", json!({}))
        .unwrap()
        .in_time_zone("Europe/Berlin")
        .unwrap();
    schedules.save_schedule(&other).await.expect("save b");
    let replaced =
        Schedule::interval(&a, &topic, Duration::from_secs(30), json!({"v": 2})).unwrap();
    schedules.save_schedule(&replaced).await.expect("replace a");

    let listed = schedules.schedules().await.expect("list");
    let ours: Vec<_> = listed
        .iter()
        .filter(|state| state.schedule.name == a || state.schedule.name == b)
        .collect();
    assert_eq!(ours.len(), 2, "{listed:?}");
    let found_a = ours.iter().find(|s| s.schedule.name == a).unwrap();
    assert_eq!(
        found_a.schedule, replaced,
        "saving replaces, and reads back whole"
    );
    assert_eq!(found_a.last_tick, None);
    assert_eq!(
        ours.iter().find(|s| s.schedule.name == b).unwrap().schedule,
        other
    );

    assert!(
        schedules
            .set_schedule_paused(&a, true)
            .await
            .expect("pause")
    );
    let paused = schedules.schedules().await.expect("list");
    assert!(
        paused
            .iter()
            .any(|s| s.schedule.name == a && s.schedule.paused)
    );
    assert!(
        !schedules
            .set_schedule_paused("conformance-none", true)
            .await
            .expect("pause unknown")
    );
    assert!(schedules.remove_schedule(&a).await.expect("remove"));
    assert!(!schedules.remove_schedule(&a).await.expect("remove again"));
    assert!(schedules.remove_schedule(&b).await.expect("remove b"));
    let left = schedules.schedules().await.expect("list");
    assert!(
        !left
            .iter()
            .any(|s| s.schedule.name == a || s.schedule.name == b)
    );
    // A backend that records something per topic (partition counts) forgets it.
    cleanup(&backend, &[&topic]).await;
}

/// Twenty claims of one tick publish it once; an older tick is never published
/// after a newer one; a skip moves the mark without publishing.
pub async fn a_tick_is_published_once_however_many_claim_it(factory: impl ScheduleBackendFactory) {
    use crate::schedule::Schedule;
    let (schedules, backend) = factory.backends().await;
    let topic = unique_topic("tick");
    let name = unique_schedule("once");
    let schedule =
        Schedule::interval(&name, &topic, Duration::from_secs(1), json!({"job": 1})).unwrap();
    schedules.save_schedule(&schedule).await.expect("save");
    let tick: DateTime<Utc> = "2030-01-01T00:00:10Z".parse().unwrap();
    let message = schedule.message_for(tick).unwrap();
    let claims: Vec<_> = (0..20)
        .map(|_| {
            let schedules = schedules.clone();
            let schedule = schedule.clone();
            let message = message.clone();
            tokio::spawn(async move { schedules.fire_tick(&schedule, tick, &message).await })
        })
        .collect();
    let mut published = 0;
    for claim in claims {
        if claim.await.expect("claim task").expect("fire_tick") {
            published += 1;
        }
    }
    assert_eq!(published, 1, "one claim of twenty publishes");
    assert_eq!(backend.stats(&topic).await.expect("stats").length, 1);

    let older: DateTime<Utc> = "2030-01-01T00:00:09Z".parse().unwrap();
    assert!(
        !schedules
            .fire_tick(&schedule, older, &schedule.message_for(older).unwrap())
            .await
            .expect("older tick")
    );
    let skipped: DateTime<Utc> = "2030-01-01T00:00:20Z".parse().unwrap();
    assert!(
        schedules
            .skip_to_tick(&schedule, skipped)
            .await
            .expect("skip")
    );
    assert!(
        !schedules
            .skip_to_tick(&schedule, skipped)
            .await
            .expect("skip again")
    );
    assert!(
        !schedules
            .fire_tick(&schedule, skipped, &schedule.message_for(skipped).unwrap())
            .await
            .expect("a skipped tick")
    );
    let newer: DateTime<Utc> = "2030-01-01T00:00:21Z".parse().unwrap();
    assert!(
        schedules
            .fire_tick(&schedule, newer, &schedule.message_for(newer).unwrap())
            .await
            .expect("newer tick")
    );
    assert_eq!(backend.stats(&topic).await.expect("stats").length, 2);
    let marks = schedules.schedules().await.expect("list");
    assert_eq!(
        marks
            .iter()
            .find(|s| s.schedule.name == name)
            .and_then(|s| s.last_tick),
        Some(newer)
    );
    schedules.remove_schedule(&name).await.expect("remove");
    cleanup(&backend, &[&topic]).await;
}

/// Three schedulers over one backend: every one-second tick arrives once, the
/// ticks are consecutive, and the schedulers' counts add up.
pub async fn schedulers_over_one_backend_publish_each_tick_once(
    factory: impl ScheduleBackendFactory,
) {
    use crate::schedule::{SCHEDULE_TICK_KEY, Schedule, Scheduler, SchedulerOptions};
    let (schedules, backend) = factory.backends().await;
    let topic = unique_topic("ticks");
    let name = unique_schedule("every-second");
    let schedule = Schedule::interval(
        &name,
        &topic,
        Duration::from_secs(1),
        json!({"job": "tick"}),
    )
    .unwrap();
    schedules.save_schedule(&schedule).await.expect("save");
    let options = SchedulerOptions::default().with_refresh(Duration::from_millis(200));
    let schedulers: Vec<Scheduler> = (0..3)
        .map(|_| Scheduler::start(schedules.clone(), options))
        .collect();
    let recorder = Recorder::new();
    let consumer = service(&backend);
    consumer
        .subscribe_with(
            &topic,
            quick("ticks").with_start_from(StartFrom::Earliest),
            crate::Shared(recorder.succeeding()),
        )
        .await
        .expect("subscribe");
    recorder
        .wait_until("four ticks", |seen| seen.len() >= 4)
        .await;
    let mut fired = 0;
    for scheduler in schedulers {
        fired += scheduler.stop().await.fired;
    }
    let stats = backend.stats(&topic).await.expect("stats");
    // Every published tick is delivered before the counts are compared.
    recorder
        .wait_until("every published tick", |seen| seen.len() as u64 >= fired)
        .await;
    let mut ticks: Vec<DateTime<Utc>> = recorder
        .seen()
        .iter()
        .map(|(m, _)| {
            m.metadata[SCHEDULE_TICK_KEY]
                .parse()
                .expect("an RFC 3339 tick")
        })
        .collect();
    ticks.sort();
    let distinct: BTreeSet<_> = ticks.iter().collect();
    assert_eq!(distinct.len(), ticks.len(), "no tick twice: {ticks:?}");
    for pair in ticks.windows(2) {
        assert_eq!(
            (pair[1] - pair[0]).num_milliseconds(),
            1_000,
            "no tick missing: {ticks:?}"
        );
    }
    assert_eq!(stats.length, fired, "each published tick is one entry");
    assert_eq!(ticks.len() as u64, fired);
    consumer.shutdown().await;
    schedules.remove_schedule(&name).await.expect("remove");
    cleanup(&backend, &[&topic]).await;
}

// ---------------------------------------------------------------------------
// Unique jobs
// ---------------------------------------------------------------------------

/// 50 publishers of one key at once: one message, 49 answers naming it.
pub async fn fifty_concurrent_publishers_of_one_unique_key_publish_one_message(
    factory: impl BackendFactory,
) {
    use crate::unique::{UniqueOptions, UniquePublish};
    let backend = factory.backend().await;
    let service = Arc::new(service(&backend));
    let topic = unique_topic("unique");
    let options = UniqueOptions::new(Duration::from_secs(3600));
    let publishers: Vec<_> = (0..50)
        .map(|i| {
            let service = service.clone();
            let topic = topic.clone();
            tokio::spawn(async move {
                service
                    .publish_unique(&topic, json!({"i": i}), "report:2026-12-01", options)
                    .await
            })
        })
        .collect();
    let mut published = Vec::new();
    let mut duplicates = Vec::new();
    for publisher in publishers {
        match publisher
            .await
            .expect("publisher task")
            .expect("publish_unique")
        {
            UniquePublish::Published(id) => published.push(id),
            UniquePublish::Duplicate(id) => duplicates.push(id),
        }
    }
    assert_eq!(published.len(), 1, "one of fifty publishes");
    assert!(
        duplicates.iter().all(|id| *id == published[0]),
        "the others name it"
    );
    assert_eq!(backend.stats(&topic).await.expect("stats").length, 1);
    assert_eq!(
        service
            .unique_holder(&topic, "report:2026-12-01")
            .await
            .expect("holder"),
        Some(published[0])
    );
    assert!(matches!(
        service
            .publish_unique(&topic, json!({}), "two words", options)
            .await,
        Err(MessagingError::Validation(_))
    ));
    cleanup(&backend, &[&topic]).await;
}

/// Held while waiting and being handled, and for the window after; a zero
/// window frees the key once the message is handled.
pub async fn a_unique_key_is_held_until_handled_and_for_its_window_after(
    factory: impl BackendFactory,
) {
    use crate::unique::{UniqueOptions, UniquePublish};
    let backend = factory.backend().await;
    let service = service(&backend);
    let topic = unique_topic("unique-window");
    let hour = UniqueOptions::new(Duration::from_secs(3600));
    let at_once = UniqueOptions::new(Duration::ZERO);
    let kept = service
        .publish_unique(&topic, json!({"k": "kept"}), "kept", hour)
        .await
        .expect("publish kept");
    let freed = service
        .publish_unique(&topic, json!({"k": "freed"}), "freed", at_once)
        .await
        .expect("publish freed");
    assert_eq!(
        service
            .publish_unique(&topic, json!({}), "freed", at_once)
            .await
            .expect("again"),
        UniquePublish::Duplicate(freed.id()),
        "held while waiting"
    );
    let recorder = Recorder::new();
    service
        .subscribe_with(
            &topic,
            quick("unique"),
            crate::Shared(recorder.succeeding()),
        )
        .await
        .expect("subscribe");
    recorder
        .wait_until("both handled", |seen| seen.len() >= 2)
        .await;
    eventually("the zero-window key freed", || async {
        service
            .unique_holder(&topic, "freed")
            .await
            .expect("holder")
            .is_none()
            .then_some(())
    })
    .await;
    assert!(matches!(
        service
            .publish_unique(&topic, json!({"k": "freed-2"}), "freed", at_once)
            .await
            .expect("after"),
        UniquePublish::Published(_)
    ));
    assert_eq!(
        service
            .publish_unique(&topic, json!({}), "kept", hour)
            .await
            .expect("kept again"),
        UniquePublish::Duplicate(kept.id()),
        "handled, and still within its window"
    );
    service.shutdown().await;
    cleanup(&backend, &[&topic]).await;
}

/// A delayed unique message holds its key while it waits.
pub async fn a_delayed_unique_message_holds_its_key_while_it_waits(factory: impl BackendFactory) {
    use crate::unique::{UniqueOptions, UniquePublish};
    let backend = factory.backend().await;
    let service = service(&backend);
    let topic = unique_topic("unique-delayed");
    let options = UniqueOptions::new(Duration::ZERO);
    let first = service
        .publish_unique_delayed(
            &topic,
            json!({}),
            "later",
            Duration::from_secs(3600),
            options,
        )
        .await
        .expect("publish delayed");
    assert!(matches!(first, UniquePublish::Published(_)));
    assert_eq!(backend.stats(&topic).await.expect("stats").scheduled, 1);
    assert_eq!(
        service
            .publish_unique(&topic, json!({}), "later", options)
            .await
            .expect("again"),
        UniquePublish::Duplicate(first.id())
    );
    assert_eq!(
        backend.stats(&topic).await.expect("stats").length,
        0,
        "nothing published"
    );
    cleanup(&backend, &[&topic]).await;
}

/// A dead letter keeps its key held by default; released when asked.
pub async fn a_dead_lettered_unique_message_holds_its_key_unless_told_otherwise(
    factory: impl BackendFactory,
) {
    use crate::unique::UniqueOptions;
    let backend = factory.backend().await;
    let service = service(&backend);
    let topic = unique_topic("unique-dead");
    let holding = service
        .publish_unique(
            &topic,
            json!({}),
            "held",
            UniqueOptions::new(Duration::ZERO),
        )
        .await
        .expect("publish held");
    service
        .publish_unique(
            &topic,
            json!({}),
            "released",
            UniqueOptions::new(Duration::ZERO).releasing_dead_letters(),
        )
        .await
        .expect("publish released");
    let recorder = Recorder::new();
    service
        .subscribe_with(
            &topic,
            quick("unique-dead"),
            crate::Shared(recorder.handler(|_| Err(HandlerError::permanent("no")))),
        )
        .await
        .expect("subscribe");
    eventually("both dead-lettered", || async {
        (backend.stats(&topic).await.ok()?.dead_lettered == 2).then_some(())
    })
    .await;
    eventually("the releasing key freed", || async {
        service
            .unique_holder(&topic, "released")
            .await
            .expect("holder")
            .is_none()
            .then_some(())
    })
    .await;
    assert_eq!(
        service.unique_holder(&topic, "held").await.expect("holder"),
        Some(holding.id()),
        "a dead letter keeps holding its key"
    );
    service.shutdown().await;
    cleanup(&backend, &[&topic]).await;
}
