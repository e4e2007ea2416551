//! What partitioned topics promise beyond the conformance suite (which runs on
//! them too, in tests/conformance.rs): per-key order, every partition served
//! while one is busy, fixed counts, admin answering for the whole topic.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use messaging_core::{
    BackendAdmin, BackendError, ConsumerId, HandlerError, InMemoryBackend, MessageBackend,
    MessagingService, Partitioned, ReadOptions, StartFrom, SubscribeOptions,
};
use messaging_model::{Message, Topic};
use serde_json::json;
use tokio::sync::watch;

fn topic(name: &str) -> Topic {
    Topic::new(name).unwrap()
}

fn partitioned() -> Arc<Partitioned<InMemoryBackend>> {
    Arc::new(Partitioned::new(InMemoryBackend::new()))
}

fn keyed(topic: &str, key: &str, n: usize) -> Message {
    Message::new(topic, json!({ "key": key, "n": n }))
        .unwrap()
        .with_partition_key(key)
        .unwrap()
}

/// Waits until `count` reaches `at_least`, failing after a minute.
async fn wait_for(count: &mut watch::Receiver<usize>, at_least: usize) {
    tokio::time::timeout(Duration::from_secs(60), count.wait_for(|n| *n >= at_least))
        .await
        .expect("timed out")
        .expect("recorder alive");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_of_one_key_stay_in_one_partition_and_arrive_in_order() {
    let backend = partitioned();
    let orders = topic("orders.placed");
    backend.create_partitioned_topic(&orders, 4).await.unwrap();
    let keys: Vec<String> = (0..8).map(|k| format!("customer-{k}")).collect();
    let mut batch = Vec::new();
    for n in 0..50 {
        for key in &keys {
            batch.push(keyed("orders.placed", key, n));
        }
    }
    // Half published one by one, half in batches mixing every key.
    let (single, batched) = batch.split_at(200);
    for message in single {
        backend.publish(message).await.unwrap();
    }
    for chunk in batched.chunks(25) {
        backend.publish_batch(chunk).await.unwrap();
    }

    let service = MessagingService::new(backend.clone());
    let seen: Arc<Mutex<Vec<(String, u64)>>> = Arc::default();
    let (count_tx, mut count) = watch::channel(0);
    let record = seen.clone();
    service
        .subscribe_with(
            "orders.placed",
            SubscribeOptions::new("billing").with_concurrency(1),
            move |message: Message| {
                let record = record.clone();
                let count_tx = count_tx.clone();
                async move {
                    let key = message.payload["key"].as_str().unwrap().to_owned();
                    let n = message.payload["n"].as_u64().unwrap();
                    assert_eq!(message.topic, "orders.placed", "handlers see the topic");
                    let mut seen = record.lock().unwrap();
                    seen.push((key, n));
                    count_tx.send_replace(seen.len());
                    Ok::<(), HandlerError>(())
                }
            },
        )
        .await
        .unwrap();
    wait_for(&mut count, 400).await;
    service.shutdown().await;

    let mut by_key: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for (key, n) in seen.lock().unwrap().iter() {
        by_key.entry(key.clone()).or_default().push(*n);
    }
    assert_eq!(by_key.len(), 8);
    for (key, ns) in &by_key {
        assert_eq!(ns, &(0..50).collect::<Vec<u64>>(), "order of {key}");
    }
    // The keys used more than one partition, each key exactly one.
    let mut used = BTreeSet::new();
    for index in 0..4 {
        let stats = backend
            .inner()
            .stats(&orders.partition(index).unwrap())
            .await
            .unwrap();
        if stats.length > 0 {
            used.insert(index);
        }
    }
    assert!(used.len() > 1, "8 keys landed in {used:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_partition_does_not_starve_the_others() {
    let backend = partitioned();
    let jobs = topic("jobs.run");
    backend.create_partitioned_topic(&jobs, 4).await.unwrap();
    backend
        .ensure_group(&jobs, "g", StartFrom::Earliest)
        .await
        .unwrap();
    // 2,000 waiting under one key, then one message under each of three keys
    // that land elsewhere.
    let busy = "busy";
    let busy_partition = messaging_core::partition::index_of(busy, 4);
    let backlog: Vec<Message> = (0..2_000).map(|n| keyed("jobs.run", busy, n)).collect();
    for chunk in backlog.chunks(500) {
        backend.publish_batch(chunk).await.unwrap();
    }
    let mut others = BTreeSet::new();
    let mut k = 0;
    while others.len() < 3 {
        let key = format!("other-{k}");
        let index = messaging_core::partition::index_of(&key, 4);
        if index != busy_partition && !others.iter().any(|(i, _)| *i == index) {
            let message = keyed("jobs.run", &key, 0);
            backend.publish(&message).await.unwrap();
            others.insert((index, message.id));
        }
        k += 1;
    }
    let wanted: BTreeSet<_> = others.iter().map(|(_, id)| *id).collect();

    // One consumer reading 10 at a time: the three arrive within a few reads,
    // long before the backlog is through.
    let consumer = ConsumerId::new(jobs.clone(), "g", "c");
    let mut busy_seen = 0;
    let mut found = BTreeSet::new();
    while found != wanted {
        let deliveries = backend
            .read(&consumer, &ReadOptions::new_entries(10, Duration::ZERO))
            .await
            .unwrap();
        assert!(!deliveries.is_empty(), "nothing read with messages waiting");
        for delivery in deliveries {
            if wanted.contains(&delivery.message.id) {
                found.insert(delivery.message.id);
            } else {
                busy_seen += 1;
            }
            backend.ack(&delivery.receipt).await.unwrap();
        }
    }
    assert!(
        busy_seen <= 40,
        "the other partitions waited for {busy_seen} of the busy one's messages"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partition_count_is_fixed_and_checked() {
    let backend = partitioned();
    let orders = topic("orders");
    assert!(matches!(
        backend.create_partitioned_topic(&orders, 0).await,
        Err(BackendError::InvalidPartitions { requested: 0, .. })
    ));
    assert!(matches!(
        backend.create_partitioned_topic(&orders, 1024).await,
        Err(BackendError::InvalidPartitions { .. })
    ));
    backend.create_partitioned_topic(&orders, 6).await.unwrap();
    backend.create_partitioned_topic(&orders, 6).await.unwrap();
    assert!(matches!(
        backend.create_partitioned_topic(&orders, 4).await,
        Err(BackendError::PartitionsConflict {
            recorded: 6,
            requested: 4,
            ..
        })
    ));
    assert_eq!(backend.partition_count(&orders).await.unwrap(), 6);
    // Another process (another wrapper over the same backend) agrees.
    let other = Partitioned::from_arc(backend.inner().clone());
    assert_eq!(other.partition_count(&orders).await.unwrap(), 6);

    // A plain topic that exists stays plain.
    let plain = topic("plain");
    backend
        .publish(&Message::new("plain", json!({})).unwrap())
        .await
        .unwrap();
    assert!(matches!(
        backend.create_partitioned_topic(&plain, 3).await,
        Err(BackendError::PartitionsConflict { recorded: 1, .. })
    ));
    // A partition is not a topic to partition.
    assert!(matches!(
        backend
            .create_partitioned_topic(&orders.partition(1).unwrap(), 3)
            .await,
        Err(BackendError::InvalidPartitions { .. })
    ));
    // A backend that is not wrapped has no partitions.
    let bare = InMemoryBackend::new();
    assert!(matches!(
        bare.create_partitioned_topic(&orders, 3).await,
        Err(BackendError::InvalidPartitions { .. })
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_answers_for_the_whole_topic() {
    let backend = partitioned();
    let mail = topic("mail.send");
    backend.create_partitioned_topic(&mail, 3).await.unwrap();
    backend
        .ensure_group(&mail, "g", StartFrom::Earliest)
        .await
        .unwrap();
    for n in 0..30 {
        backend
            .publish(&keyed("mail.send", &format!("user-{n}"), n))
            .await
            .unwrap();
    }
    backend
        .schedule(
            &Message::new("mail.send", json!({"later": true})).unwrap(),
            chrono::Utc::now() + chrono::Duration::hours(1),
        )
        .await
        .unwrap();
    assert_eq!(backend.list_topics().await.unwrap(), vec![mail.clone()]);
    let stats = backend.stats(&mail).await.unwrap();
    assert_eq!(
        (stats.topic.as_str(), stats.length, stats.scheduled),
        ("mail.send", 30, 1)
    );
    assert_eq!(stats.groups.len(), 1);
    assert_eq!((stats.groups[0].lag, stats.groups[0].pending), (30, 0));

    // Dead-letter three, from whichever partitions they are in.
    let consumer = ConsumerId::new(mail.clone(), "g", "c");
    let taken = backend
        .read(&consumer, &ReadOptions::new_entries(30, Duration::ZERO))
        .await
        .unwrap();
    assert_eq!(taken.len(), 30);
    let partitions: BTreeSet<&str> = taken
        .iter()
        .map(|d| d.receipt.entry_id.split_once(':').unwrap().0)
        .collect();
    assert_eq!(partitions.len(), 3, "30 keys over 3 partitions");
    for delivery in &taken[..3] {
        backend
            .dead_letter(&delivery.receipt, &delivery.message, "boom")
            .await
            .unwrap();
    }
    for delivery in &taken[3..] {
        backend.ack(&delivery.receipt).await.unwrap();
    }
    let dead = backend.dead_letters(&mail, 10).await.unwrap();
    assert_eq!(dead.len(), 3);
    assert!(dead.iter().all(|d| d.message.topic == "mail.send"));
    assert!(
        dead.windows(2).all(|w| w[0].dead_at <= w[1].dead_at),
        "oldest first"
    );
    assert_eq!(backend.stats(&mail).await.unwrap().dead_lettered, 3);
    assert!(
        backend
            .replay_dead_letter(&mail, &dead[0].id)
            .await
            .unwrap()
    );
    assert!(
        !backend
            .replay_dead_letter(&mail, &dead[0].id)
            .await
            .unwrap()
    );
    assert!(!backend.replay_dead_letter(&mail, "9:1").await.unwrap());
    assert!(
        !backend
            .replay_dead_letter(&mail, "no-partition")
            .await
            .unwrap()
    );
    let replayed = backend
        .read(
            &consumer,
            &ReadOptions::new_entries(10, Duration::from_millis(100)),
        )
        .await
        .unwrap();
    assert_eq!(replayed.len(), 1);
    assert_eq!(replayed[0].message.id, dead[0].message.id);
    assert_eq!(backend.purge_dead_letters(&mail).await.unwrap(), 2);

    assert!(backend.delete_topic(&mail).await.unwrap());
    assert!(backend.list_topics().await.unwrap().is_empty());
    assert_eq!(backend.partition_count(&mail).await.unwrap(), 1);
    assert!(!backend.delete_topic(&mail).await.unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_receipt_is_a_typed_error_not_a_panic() {
    let backend = partitioned();
    let orders = topic("orders");
    backend.create_partitioned_topic(&orders, 2).await.unwrap();
    let consumer = ConsumerId::new(orders.clone(), "g", "c");
    for entry_id in ["x:1", "70000:1", ":"] {
        let receipt = messaging_core::Receipt {
            consumer: consumer.clone(),
            entry_id: entry_id.to_owned(),
            delivery_count: 1,
        };
        let acked = backend.ack(&receipt).await;
        assert!(
            matches!(acked, Err(BackendError::Corrupt { .. })),
            "{entry_id}: {acked:?}"
        );
    }
    let after = ReadOptions::own_pending(Some("garbage".to_owned()), 10);
    assert!(matches!(
        backend.read(&consumer, &after).await,
        Err(BackendError::Corrupt { .. })
    ));
}

#[tokio::test(start_paused = true)]
async fn another_process_sees_a_topic_partitioned_or_deleted_after_its_recheck() {
    let shared = Arc::new(InMemoryBackend::new());
    let here = Partitioned::from_arc(shared.clone());
    let elsewhere = Partitioned::from_arc(shared);
    let orders = topic("orders");
    assert_eq!(
        here.partition_count(&orders).await.unwrap(),
        1,
        "plain so far"
    );
    elsewhere
        .create_partitioned_topic(&orders, 4)
        .await
        .unwrap();
    assert_eq!(here.partition_count(&orders).await.unwrap(), 1, "cached");
    tokio::time::advance(Duration::from_secs(5)).await;
    assert_eq!(here.partition_count(&orders).await.unwrap(), 4, "5 s later");

    assert!(elsewhere.delete_topic(&orders).await.unwrap());
    elsewhere
        .create_partitioned_topic(&orders, 2)
        .await
        .unwrap();
    assert_eq!(here.partition_count(&orders).await.unwrap(), 4, "cached");
    tokio::time::advance(Duration::from_secs(30)).await;
    assert_eq!(
        here.partition_count(&orders).await.unwrap(),
        2,
        "30 s later"
    );
}
