//! What the conformance suite cannot see: the Redis side of the backend. Most
//! tests use `REDIS_URL` under a key prefix of their own; those that change
//! server settings start a redis-server of their own.

mod support;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use messaging_core::BackendError;
use messaging_core::{BackendAdmin as _, ReadOptions};
use messaging_core::{MessageBackend, MessagingService, Settlement, StartFrom};
use messaging_model::Message;
use messaging_redis::{RedisBackend, RedisBackendConfig, Retention};
use redis::AsyncCommands;
use serde_json::json;
use support::{RedisServer, raw, wait_for};

async fn scan(redis: &mut redis::aio::MultiplexedConnection, prefix: &str) -> Vec<String> {
    use futures::StreamExt;
    let keys: Vec<redis::RedisResult<String>> = redis
        .scan_match::<_, String>(format!("*{prefix}*"))
        .await
        .expect("scan")
        .collect()
        .await;
    keys.into_iter()
        .map(|key| key.expect("scan item"))
        .collect()
}

fn message(topic: &str, n: u64) -> Message {
    Message::new(topic, json!({ "n": n })).expect("message")
}

async fn read_all(
    backend: &RedisBackend,
    topic: &str,
    group: &str,
    consumer: &str,
    want: usize,
) -> Vec<messaging_core::Delivery> {
    let mut got = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while got.len() < want && Instant::now() < deadline {
        got.extend(
            backend
                .read(
                    &support::consumer(topic, group, consumer),
                    &ReadOptions::new_entries(want - got.len(), Duration::from_millis(100)),
                )
                .await
                .expect("read"),
        );
    }
    got
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn undecodable_entries_go_to_the_dead_letter_queue_not_to_the_consumer() {
    let url = support::redis_url();
    let prefix = support::unique_prefix();
    let backend =
        support::backend_with(RedisBackendConfig::new(url.as_str()).with_key_prefix(&prefix)).await;
    let topic = "corrupt.entries";
    backend
        .ensure_group(&support::topic(topic), "g", StartFrom::Earliest)
        .await
        .expect("group");
    let mut redis = raw(&url).await;
    let stream = format!("{{{prefix}:{topic}}}:stream");
    let _: String = redis
        .xadd(&stream, "*", &[("m", "not json")])
        .await
        .expect("xadd");
    let _: String = redis
        .xadd(&stream, "*", &[("other", b"\xff".as_slice())])
        .await
        .expect("xadd");
    let good = message(topic, 1);
    backend.publish(&good).await.expect("publish");

    let deliveries = backend
        .read(
            &support::consumer(topic, "g", "c"),
            &ReadOptions::new_entries(10, Duration::from_millis(100)),
        )
        .await
        .expect("read");
    assert_eq!(
        deliveries.len(),
        1,
        "an undecodable entry was handed to the consumer"
    );
    assert_eq!(deliveries[0].message.id, good.id);

    let dead = backend
        .dead_letters(&support::topic(topic), 10)
        .await
        .expect("dead letters");
    assert_eq!(dead.len(), 2);
    assert!(
        dead[0].error.starts_with("field `m` is not JSON"),
        "{}",
        dead[0].error
    );
    assert_eq!(
        dead[0].message.payload["undecodable_entry"]["fields"],
        json!([["m", "not json"]])
    );
    assert_eq!(dead[1].error, "field `other` is not UTF-8 text");
    assert_eq!(
        dead[1].message.payload["undecodable_entry"]["fields"],
        json!([["other", {"hex": "ff"}]])
    );
    assert!(dead.iter().all(|d| d.group == "g" && d.attempts == 1));

    backend.ack(&deliveries[0].receipt).await.expect("ack");
    let stats = backend.stats(&support::topic(topic)).await.expect("stats");
    assert_eq!((stats.groups[0].pending, stats.groups[0].lag), (0, 0));
    backend
        .delete_topic(&support::topic(topic))
        .await
        .expect("delete");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reader_recreates_its_group_after_the_stream_was_deleted() {
    let url = support::redis_url();
    let prefix = support::unique_prefix();
    let backend =
        support::backend_with(RedisBackendConfig::new(url.as_str()).with_key_prefix(&prefix)).await;
    let topic = "nogroup.recovery";
    backend
        .ensure_group(&support::topic(topic), "g", StartFrom::Earliest)
        .await
        .expect("group");
    backend.publish(&message(topic, 1)).await.expect("publish");
    let _: i64 = raw(&url)
        .await
        .del(format!("{{{prefix}:{topic}}}:stream"))
        .await
        .expect("del");

    // NOGROUP: recovered, nothing to read yet.
    let first = backend
        .read(
            &support::consumer(topic, "g", "c"),
            &ReadOptions::new_entries(10, Duration::from_millis(50)),
        )
        .await
        .expect("read after NOGROUP");
    assert!(first.is_empty());
    let again = message(topic, 2);
    backend.publish(&again).await.expect("publish");
    let got = read_all(&backend, topic, "g", "c", 1).await;
    assert_eq!(got[0].message.id, again.id);
    backend
        .delete_topic(&support::topic(topic))
        .await
        .expect("delete");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trimming_keeps_every_entry_a_group_has_not_read_or_settled() {
    let url = support::redis_url();
    let prefix = support::unique_prefix();
    let config = RedisBackendConfig::new(url.as_str())
        .with_key_prefix(&prefix)
        .with_retention(Retention::Settled { keep: 5 })
        .with_trim_interval(Duration::from_millis(20));
    let backend = support::backend_with(config).await;
    let topic = "trim.safely";
    backend
        .ensure_group(&support::topic(topic), "g", StartFrom::Earliest)
        .await
        .expect("group");
    let messages: Vec<Message> = (0..20).map(|n| message(topic, n)).collect();
    backend.publish_batch(&messages).await.expect("publish");
    let stream = format!("{{{prefix}:{topic}}}:stream");
    let mut redis = raw(&url).await;

    // Nothing read: nothing may go.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(redis.xlen::<_, usize>(&stream).await.expect("xlen"), 20);

    // Read 10, settle the first 8: those 8 may go, the 2 pending and 10 unread stay.
    let taken = read_all(&backend, topic, "g", "c", 10).await;
    for delivery in &taken[..8] {
        assert_eq!(
            backend.ack(&delivery.receipt).await.expect("ack"),
            Settlement::Settled
        );
    }
    wait_for("the settled entries trimmed", Duration::from_secs(10), || {
        let mut redis = redis.clone();
        let stream = stream.clone();
        async move { (redis.xlen::<_, usize>(&stream).await.expect("xlen") <= 12).then_some(()) }
    })
    .await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(redis.xlen::<_, usize>(&stream).await.expect("xlen"), 12);
    for delivery in &taken[8..] {
        assert_eq!(
            backend.ack(&delivery.receipt).await.expect("ack"),
            Settlement::Settled
        );
    }
    let rest = read_all(&backend, topic, "g", "c", 10).await;
    let ids: Vec<_> = rest.iter().map(|d| d.message.id).collect();
    assert_eq!(ids, messages[10..].iter().map(|m| m.id).collect::<Vec<_>>());
    for delivery in &rest {
        backend.ack(&delivery.receipt).await.expect("ack");
    }
    wait_for(
        "the stream trimmed to keep",
        Duration::from_secs(10),
        || {
            let mut redis = redis.clone();
            let stream = stream.clone();
            async move { (redis.xlen::<_, usize>(&stream).await.expect("xlen") == 5).then_some(()) }
        },
    )
    .await;
    backend
        .delete_topic(&support::topic(topic))
        .await
        .expect("delete");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_key_of_a_topic_carries_its_hash_tag() {
    let url = support::redis_url();
    let prefix = support::unique_prefix();
    let backend =
        support::backend_with(RedisBackendConfig::new(url.as_str()).with_key_prefix(&prefix)).await;
    let topic = "layout.check";
    backend
        .ensure_group(&support::topic(topic), "g", StartFrom::Earliest)
        .await
        .expect("group");
    backend.publish(&message(topic, 1)).await.expect("publish");
    let later = Utc::now() + chrono::Duration::hours(1);
    backend
        .schedule(&message(topic, 2), later)
        .await
        .expect("schedule");
    let taken = read_all(&backend, topic, "g", "c", 1).await;
    backend
        .dead_letter(&taken[0].receipt, &taken[0].message, "bad")
        .await
        .expect("dead letter");

    let mut redis = raw(&url).await;
    let keys: BTreeSet<String> = scan(&mut redis, &prefix).await.into_iter().collect();
    let tag = format!("{{{prefix}:{topic}}}");
    let expected: BTreeSet<String> = [
        format!("{tag}:stream"),
        format!("{tag}:delayed"),
        format!("{tag}:dlq"),
        format!("{prefix}:topics"),
        // The due index, for the scheduled message.
        format!("{prefix}:due"),
    ]
    .into();
    // The sweep's lock (taken by the background task at start, expiring by
    // itself) is the prefix's one other key.
    let lock = format!("{prefix}:sweep");
    let keys: BTreeSet<String> = keys.into_iter().filter(|key| *key != lock).collect();
    assert_eq!(keys, expected);
    assert!(
        backend
            .delete_topic(&support::topic(topic))
            .await
            .expect("delete")
    );
    let left = scan(&mut redis, &prefix).await;
    assert!(
        left.iter().all(|key| *key == lock),
        "delete_topic left {left:?}"
    );
    if !left.is_empty() {
        let ttl: i64 = redis.pttl(&lock).await.expect("pttl");
        assert!(ttl > 0, "the sweep lock expires (pttl {ttl})");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_promoters_move_each_delayed_message_once() {
    let url = support::redis_url();
    let prefix = support::unique_prefix();
    let config = RedisBackendConfig::new(url.as_str()).with_key_prefix(&prefix);
    let scheduler = support::backend_with(config.clone()).await;
    let topic = "promote.race";
    let soon = Utc::now() + chrono::Duration::milliseconds(200);
    for n in 0..300 {
        scheduler
            .schedule(&message(topic, n), soon)
            .await
            .expect("schedule");
    }
    let promoters: Vec<RedisBackend> =
        futures::future::join_all((0..4).map(|_| support::backend_with(config.clone()))).await;
    let moved = futures::future::join_all(promoters.iter().map(|promoter| async move {
        let mut moved = 0;
        let deadline = Instant::now() + Duration::from_secs(2);
        while Instant::now() < deadline {
            moved += promoter.promote_due(topic).await.expect("promote");
        }
        moved
    }))
    .await;
    let stats = scheduler
        .stats(&support::topic(topic))
        .await
        .expect("stats");
    assert_eq!(stats.scheduled, 0);
    assert_eq!(stats.length, 300, "moved {moved:?}");
    scheduler
        .delete_topic(&support::topic(topic))
        .await
        .expect("delete");
}

/// A burst due at one instant, larger than one promotion call moves (1,000):
/// the background task moves it whole, by calls back to back, none early,
/// none twice, and leaves the due index at the next message still waiting.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_past_one_promotion_call_is_promoted_whole_and_never_early() {
    use futures::StreamExt;
    const BURST: u64 = 2_500;
    let url = support::redis_url();
    let prefix = support::unique_prefix();
    let backend =
        support::backend_with(RedisBackendConfig::new(url.as_str()).with_key_prefix(&prefix)).await;
    let topic = "promote.burst";
    backend
        .ensure_group(&support::topic(topic), "g", StartFrom::Earliest)
        .await
        .expect("group");
    let due = Utc::now() + chrono::Duration::seconds(3);
    futures::stream::iter(0..BURST)
        .for_each_concurrent(32, |n| {
            let backend = &backend;
            async move {
                backend
                    .schedule(&message(topic, n), due)
                    .await
                    .expect("schedule");
            }
        })
        .await;
    let later = Utc::now() + chrono::Duration::hours(1);
    backend
        .schedule(&message(topic, BURST), later)
        .await
        .expect("schedule later");

    let mut got = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while (got.len() as u64) < BURST && Instant::now() < deadline {
        got.extend(
            backend
                .read(
                    &support::consumer(topic, "g", "c"),
                    &ReadOptions::new_entries(1_000, Duration::from_millis(500)),
                )
                .await
                .expect("read"),
        );
    }
    assert_eq!(got.len() as u64, BURST, "the whole burst is promoted");
    let numbers: BTreeSet<u64> = got
        .iter()
        .map(|delivery| delivery.message.payload["n"].as_u64().expect("n"))
        .collect();
    assert_eq!(
        numbers,
        (0..BURST).collect(),
        "each message once, none lost"
    );
    // The entry id's time is when Redis added it: never before the due time
    // (rounded up to the millisecond, as the delayed set's score is).
    let due_ms = (due.timestamp_micros() + 999).div_euclid(1000);
    for delivery in &got {
        let added_ms: i64 = delivery
            .receipt
            .entry_id
            .split('-')
            .next()
            .and_then(|ms| ms.parse().ok())
            .expect("entry id");
        assert!(
            added_ms >= due_ms,
            "entry {} promoted early (due {due_ms})",
            delivery.receipt.entry_id
        );
    }
    let stats = backend.stats(&support::topic(topic)).await.expect("stats");
    assert_eq!(stats.scheduled, 1, "the later message still waits");
    let mut redis = raw(&url).await;
    let head: Vec<(String, f64)> = redis
        .zrange_withscores(format!("{{{prefix}:{topic}}}:delayed"), 0, 0)
        .await
        .expect("head");
    let indexed: Option<f64> = redis
        .zscore(format!("{prefix}:due"), topic)
        .await
        .expect("index");
    assert_eq!(
        indexed,
        Some(head[0].1),
        "the index points at the message left"
    );
    backend
        .delete_topic(&support::topic(topic))
        .await
        .expect("delete");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blocked_reader_wakes_for_a_message_another_process_delayed() {
    let url = support::redis_url();
    let prefix = support::unique_prefix();
    let config = RedisBackendConfig::new(url.as_str())
        .with_key_prefix(&prefix)
        .with_promote_interval(Duration::from_millis(100));
    let reader = support::backend_with(config.clone()).await;
    let topic = "delayed.elsewhere";
    reader
        .ensure_group(&support::topic(topic), "g", StartFrom::Earliest)
        .await
        .expect("group");
    let read = tokio::spawn({
        let reader = reader.clone();
        async move {
            let started = Instant::now();
            let got = reader
                .read(
                    &support::consumer(topic, "g", "c"),
                    &ReadOptions::new_entries(1, Duration::from_secs(10)),
                )
                .await
                .expect("read");
            (got, started.elapsed())
        }
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    {
        // Scheduled by a backend that is gone before the message is due.
        let other = support::backend_with(config).await;
        let due = Utc::now() + chrono::Duration::milliseconds(300);
        other
            .schedule(&message(topic, 1), due)
            .await
            .expect("schedule");
    }
    let (got, waited) = read.await.expect("reader");
    assert_eq!(got.len(), 1);
    assert!(waited < Duration::from_secs(2), "woke after {waited:?}");
    reader
        .delete_topic(&support::topic(topic))
        .await
        .expect("delete");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_letter_is_replayed_at_most_once_under_concurrent_replays() {
    let url = support::redis_url();
    let backend = support::backend(&url).await;
    let topic = "replay.race";
    backend
        .ensure_group(&support::topic(topic), "g", StartFrom::Earliest)
        .await
        .expect("group");
    backend.publish(&message(topic, 1)).await.expect("publish");
    let taken = read_all(&backend, topic, "g", "c", 1).await;
    backend
        .dead_letter(&taken[0].receipt, &taken[0].message, "bad")
        .await
        .expect("dead letter");
    let dead = backend
        .dead_letters(&support::topic(topic), 10)
        .await
        .expect("dead letters");
    let checked = support::topic(topic);
    let replays = futures::future::join_all(
        (0..8).map(|_| backend.replay_dead_letter(&checked, &dead[0].id)),
    )
    .await;
    let replayed = replays
        .into_iter()
        .filter(|r| *r.as_ref().expect("replay"))
        .count();
    assert_eq!(replayed, 1);
    assert_eq!(
        backend
            .stats(&support::topic(topic))
            .await
            .expect("stats")
            .length,
        2
    );
    assert!(
        !backend
            .replay_dead_letter(&support::topic(topic), "not-an-id")
            .await
            .expect("replay")
    );
    backend
        .delete_topic(&support::topic(topic))
        .await
        .expect("delete");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reclaiming_reaches_every_idle_entry_of_a_long_pending_list() {
    let url = support::redis_url();
    let backend = support::backend(&url).await;
    let topic = "reclaim.cursor";
    backend
        .ensure_group(&support::topic(topic), "g", StartFrom::Earliest)
        .await
        .expect("group");
    let messages: Vec<Message> = (0..60).map(|n| message(topic, n)).collect();
    backend.publish_batch(&messages).await.expect("publish");
    read_all(&backend, topic, "g", "dead", 60).await;
    let mut reclaimed = BTreeSet::new();
    for _ in 0..20 {
        for delivery in backend
            .reclaim_idle(&support::consumer(topic, "g", "alive"), Duration::ZERO, 7)
            .await
            .expect("reclaim")
        {
            assert!(delivery.receipt.delivery_count >= 2);
            backend.ack(&delivery.receipt).await.expect("ack");
            reclaimed.insert(delivery.message.id);
        }
    }
    assert_eq!(reclaimed, messages.iter().map(|m| m.id).collect());
    backend
        .delete_topic(&support::topic(topic))
        .await
        .expect("delete");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_group_drops_its_pending_list() {
    let url = support::redis_url();
    let backend = support::backend(&url).await;
    let topic = "group.delete";
    assert!(
        !backend
            .delete_group(&support::topic(topic), "g")
            .await
            .expect("no stream yet")
    );
    backend
        .ensure_group(&support::topic(topic), "g", StartFrom::Earliest)
        .await
        .expect("group");
    backend
        .ensure_group(&support::topic(topic), "g", StartFrom::Earliest)
        .await
        .expect("group twice");
    backend
        .ensure_group(&support::topic(topic), "other", StartFrom::Latest)
        .await
        .expect("group");
    backend.publish(&message(topic, 1)).await.expect("publish");
    read_all(&backend, topic, "g", "c", 1).await;
    assert!(
        backend
            .delete_group(&support::topic(topic), "g")
            .await
            .expect("delete")
    );
    assert!(
        !backend
            .delete_group(&support::topic(topic), "g")
            .await
            .expect("delete again")
    );
    let stats = backend.stats(&support::topic(topic)).await.expect("stats");
    assert_eq!(stats.groups.len(), 1);
    assert_eq!(
        (stats.groups[0].name.as_str(), stats.groups[0].lag),
        ("other", 1)
    );
    backend
        .delete_topic(&support::topic(topic))
        .await
        .expect("delete");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_is_not_there_is_a_transient_error() {
    let config = RedisBackendConfig::new(format!("redis://127.0.0.1:{}", support::free_port()))
        .with_connect_timeout(Duration::from_millis(200));
    let error = RedisBackend::connect(config)
        .await
        .expect_err("nothing listens there");
    assert!(error.is_transient(), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_configuration_is_refused_before_connecting() {
    for config in [
        RedisBackendConfig::default().with_key_prefix("a{b}"),
        RedisBackendConfig::default().with_topic_cap(0),
        RedisBackendConfig::new("http://not-redis"),
    ] {
        let error = RedisBackend::connect(config).await.expect_err("refused");
        assert!(!error.is_transient(), "{error}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_warns_about_eviction_and_missing_persistence() {
    let server = RedisServer::start();
    let backend = support::backend(&server.url()).await;
    let warnings = backend.health().await.expect("health").warnings;
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(warnings[0].contains("persistence is off"), "{warnings:?}");

    server.command(&["CONFIG", "SET", "appendonly", "yes"]);
    server.command(&["CONFIG", "SET", "maxmemory-policy", "allkeys-lru"]);
    let warnings = backend.health().await.expect("health").warnings;
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(
        warnings[0].contains("maxmemory-policy is allkeys-lru"),
        "{warnings:?}"
    );

    server.command(&["CONFIG", "SET", "maxmemory-policy", "noeviction"]);
    assert_eq!(
        backend.health().await.expect("health").warnings,
        Vec::<String>::new()
    );
    let service = MessagingService::new(Arc::new(backend));
    assert_eq!(service.health().await.expect("health").backend, "redis");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backend_reconnects_after_redis_restarts() {
    let mut server = RedisServer::start();
    let backend = support::backend(&server.url()).await;
    let topic = "reconnect";
    backend.publish(&message(topic, 1)).await.expect("publish");
    server = tokio::task::spawn_blocking(move || {
        server.restart();
        server
    })
    .await
    .expect("restart");
    // Without persistence everything is gone, the group too: it is recreated.
    wait_for(
        "a publish after the restart",
        Duration::from_secs(15),
        || {
            let backend = backend.clone();
            async move { backend.publish(&message(topic, 2)).await.ok() }
        },
    )
    .await;
    backend
        .ensure_group(&support::topic(topic), "g", StartFrom::Earliest)
        .await
        .expect("group");
    assert_eq!(read_all(&backend, topic, "g", "c", 1).await.len(), 1);
    drop(server);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batched_acks_are_fenced_one_by_one_however_long_the_pending_list() {
    let url = support::redis_url();
    let backend = support::backend(&url).await;
    let topic = "ack.batches";
    backend
        .ensure_group(&support::topic(topic), "g", StartFrom::Earliest)
        .await
        .expect("group");
    let messages: Vec<Message> = (0..300).map(|n| message(topic, n)).collect();
    backend.publish_batch(&messages).await.expect("publish");
    let taken = read_all(&backend, topic, "g", "c", 300).await;
    assert_eq!(taken.len(), 300);
    // Another consumer takes over the first ten.
    let stolen = backend
        .reclaim_idle(&support::consumer(topic, "g", "thief"), Duration::ZERO, 10)
        .await
        .expect("reclaim");
    assert_eq!(stolen.len(), 10);
    // Ack everything at once (so acks share script calls), the tail of a long
    // pending list included.
    let settlements =
        futures::future::join_all(taken.iter().map(|d| backend.ack(&d.receipt))).await;
    for (index, settlement) in settlements.into_iter().enumerate() {
        let expected = if index < 10 {
            Settlement::LostOwnership
        } else {
            Settlement::Settled
        };
        assert_eq!(settlement.expect("ack"), expected, "delivery {index}");
    }
    let stats = backend.stats(&support::topic(topic)).await.expect("stats");
    assert_eq!(
        stats.groups[0].pending, 10,
        "only the thief's deliveries stay pending"
    );
    for delivery in &stolen {
        assert_eq!(
            backend.ack(&delivery.receipt).await.expect("ack"),
            Settlement::Settled
        );
    }
    backend
        .delete_topic(&support::topic(topic))
        .await
        .expect("delete");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restricted_redis_user_from_the_url_can_do_everything() {
    let server = RedisServer::start();
    // The user docs/redis.md recommends: its own keys, no dangerous commands but CONFIG GET.
    let created = server.command(&[
        "ACL",
        "SETUSER",
        "shop",
        "on",
        ">s3cret",
        "~{shop:*",
        "~shop:*",
        "+@all",
        "-@dangerous",
        "+config|get",
    ]);
    assert!(created.contains("OK"), "{created}");
    let url = format!("redis://shop:s3cret@127.0.0.1:{}", server.port);
    let config = RedisBackendConfig::new(url.as_str())
        .with_key_prefix("shop")
        .with_retention(Retention::Settled { keep: 2 })
        .with_trim_interval(Duration::from_millis(20));
    let backend = support::backend_with(config).await;
    let topic = "orders.placed";
    backend
        .ensure_group(&support::topic(topic), "g", StartFrom::Earliest)
        .await
        .expect("group");
    let messages: Vec<Message> = (0..5).map(|n| message(topic, n)).collect();
    backend.publish_batch(&messages).await.expect("publish");
    backend
        .schedule(
            &message(topic, 9),
            Utc::now() + chrono::Duration::milliseconds(50),
        )
        .await
        .expect("schedule");
    let taken = read_all(&backend, topic, "g", "c", 6).await;
    assert_eq!(taken.len(), 6, "the delayed message is promoted too");
    for delivery in &taken[1..] {
        assert_eq!(
            backend.ack(&delivery.receipt).await.expect("ack"),
            Settlement::Settled
        );
    }
    backend
        .dead_letter(&taken[0].receipt, &taken[0].message, "bad")
        .await
        .expect("dead letter");
    let dead = backend
        .dead_letters(&support::topic(topic), 10)
        .await
        .expect("dead letters");
    assert!(
        backend
            .replay_dead_letter(&support::topic(topic), &dead[0].id)
            .await
            .expect("replay")
    );
    let warnings = backend.health().await.expect("health").warnings;
    assert_eq!(
        warnings.len(),
        1,
        "only the missing persistence: {warnings:?}"
    );
    let stats = backend.stats(&support::topic(topic)).await.expect("stats");
    assert_eq!(stats.groups[0].lag, 1, "the replay");
    assert!(
        backend
            .delete_topic(&support::topic(topic))
            .await
            .expect("delete")
    );

    let wrong = RedisBackendConfig::new(format!("redis://shop:wrong@127.0.0.1:{}", server.port))
        .with_key_prefix("shop");
    let error = RedisBackend::connect(wrong)
        .await
        .expect_err("wrong password");
    assert!(!error.is_transient(), "{error}");
}

/// Plays the TLS client for `rediss_urls_connect_over_tls` when this binary is
/// run again with `MESSAGING_REDIS_TEST_CHILD=tls-client` (and `SSL_CERT_FILE`
/// naming the test CA); does nothing in a normal run.
#[test]
fn tls_child() {
    if std::env::var(support::CHILD_ROLE).as_deref() != Ok("tls-client") {
        return;
    }
    support::run_child(async {
        let url = std::env::var("REDIS_TLS_URL").expect("REDIS_TLS_URL");
        let backend = support::backend(&url).await;
        let topic = "tls.roundtrip";
        backend
            .ensure_group(&support::topic(topic), "g", StartFrom::Earliest)
            .await
            .expect("group");
        let sent = message(topic, 1);
        backend.publish(&sent).await.expect("publish");
        let got = read_all(&backend, topic, "g", "c", 1).await;
        assert_eq!(got[0].message.id, sent.id);
        assert_eq!(
            backend.ack(&got[0].receipt).await.expect("ack"),
            Settlement::Settled
        );
        backend.health().await.expect("health");
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rediss_urls_connect_over_tls() {
    let dir = support::temp_dir("tls");
    support::make_test_certificates(&dir);
    let tls_port = support::free_port().to_string();
    let path = |name: &str| dir.join(name).to_string_lossy().into_owned();
    let (cert, key, ca) = (path("server.crt"), path("server.key"), path("ca.crt"));
    let server = RedisServer::start_with(&[
        "--tls-port",
        &tls_port,
        "--tls-cert-file",
        &cert,
        "--tls-key-file",
        &key,
        "--tls-ca-cert-file",
        &ca,
        "--tls-auth-clients",
        "no",
    ]);
    // The backend trusts the system's roots; the child is told to trust the test CA.
    let env = [
        ("REDIS_TLS_URL", format!("rediss://127.0.0.1:{tls_port}")),
        ("SSL_CERT_FILE", ca.clone()),
    ];
    let run = |env: Vec<(&'static str, String)>| {
        tokio::task::spawn_blocking(move || {
            support::ChildProcess::spawn("tls_child", "tls-client", &env)
                .wait_success(Duration::from_secs(60))
        })
    };
    let trusted = run(env.to_vec()).await.expect("wait");
    // Without the test CA the certificate must be refused: TLS is really checked.
    let empty = dir.join("no-roots.pem");
    std::fs::write(&empty, "").expect("write an empty root store");
    let untrusted = run(vec![
        env[0].clone(),
        ("SSL_CERT_FILE", empty.to_string_lossy().into_owned()),
    ])
    .await
    .expect("wait");
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        trusted,
        "the TLS client failed (rerun with TEST_CHILD_LOGS=1 to see why)"
    );
    assert!(
        !untrusted,
        "a server certificate from an unknown CA was accepted"
    );
}

/// Issue 10: 200,000 messages published while no group exists, with trims
/// running all along (every 10 ms), all reach the first group, which starts
/// from the earliest entry.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publishing_before_any_group_loses_nothing_while_trims_run() {
    const COUNT: u64 = 200_000;
    let url = support::redis_url();
    let prefix = support::unique_prefix();
    let config = RedisBackendConfig::new(url.as_str())
        .with_key_prefix(&prefix)
        .with_trim_interval(Duration::from_millis(10));
    let backend = support::backend_with(config).await;
    let topic = "nogroup.yet";
    let mut published = BTreeSet::new();
    for chunk in 0..COUNT / 1_000 {
        let batch: Vec<Message> = (0..1_000)
            .map(|n| message(topic, chunk * 1_000 + n))
            .collect();
        backend.publish_batch(&batch).await.expect("publish batch");
        published.extend(batch.iter().map(|m| m.id));
    }
    let stream = format!("{{{prefix}:{topic}}}:stream");
    let mut redis = raw(&url).await;
    assert_eq!(
        redis.xlen::<_, u64>(&stream).await.expect("xlen"),
        COUNT,
        "trimming removed entries no group has read"
    );
    backend
        .ensure_group(&support::topic(topic), "g", StartFrom::Earliest)
        .await
        .expect("group");
    let mut received = BTreeSet::new();
    loop {
        let deliveries = backend
            .read(
                &support::consumer(topic, "g", "c"),
                &ReadOptions::new_entries(1_000, Duration::from_millis(200)),
            )
            .await
            .expect("read");
        if deliveries.is_empty() {
            break;
        }
        for delivery in &deliveries {
            received.insert(delivery.message.id);
            backend.ack(&delivery.receipt).await.expect("ack");
        }
    }
    assert_eq!(received.len() as u64, COUNT);
    assert_eq!(received, published);
    // Settled now: trimmed down to the retention's 10,000.
    wait_for("the settled entries trimmed", Duration::from_secs(30), || {
        let mut redis = redis.clone();
        let stream = stream.clone();
        async move { (redis.xlen::<_, u64>(&stream).await.expect("xlen") == 10_000).then_some(()) }
    })
    .await;
    assert!(
        backend
            .delete_topic(&support::topic(topic))
            .await
            .expect("delete")
    );
}

/// Concurrent publishers and batches cannot take a topic past its cap: exactly
/// `cap` messages are accepted, every refusal is `QueueFull`, and the stream
/// holds exactly what was accepted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_publishers_cannot_overshoot_the_cap() {
    const CAP: usize = 100;
    let url = support::redis_url();
    let prefix = support::unique_prefix();
    let config = RedisBackendConfig::new(url.as_str())
        .with_key_prefix(&prefix)
        .with_topic_cap(CAP);
    let backend = Arc::new(support::backend_with(config).await);
    let topic = "capped.concurrent";
    let tasks: Vec<_> = (0..8u64)
        .map(|task| {
            let backend = backend.clone();
            tokio::spawn(async move {
                let mut accepted = Vec::new();
                for round in 0..10u64 {
                    // Singles and batches of 5, alternating.
                    let batch: Vec<Message> = (0..if round % 2 == 0 { 1 } else { 5 })
                        .map(|n| message(topic, task * 1_000 + round * 10 + n))
                        .collect();
                    match backend.publish_batch(&batch).await {
                        Ok(_) => accepted.extend(batch.iter().map(|m| m.id)),
                        Err(BackendError::QueueFull { written: 0, .. }) => {}
                        Err(other) => panic!("unexpected error: {other}"),
                    }
                }
                accepted
            })
        })
        .collect();
    let mut accepted = BTreeSet::new();
    for task in tasks {
        accepted.extend(task.await.expect("task"));
    }
    let stream = format!("{{{prefix}:{topic}}}:stream");
    let mut redis = raw(&url).await;
    let length: usize = redis.xlen(&stream).await.expect("xlen");
    assert!(length <= CAP, "{length} entries, cap {CAP}");
    assert_eq!(length, accepted.len());
    backend
        .ensure_group(&support::topic(topic), "g", StartFrom::Earliest)
        .await
        .expect("group");
    let got: BTreeSet<_> = read_all(&backend, topic, "g", "c", length)
        .await
        .iter()
        .map(|d| d.message.id)
        .collect();
    assert_eq!(got, accepted);
    assert!(
        backend
            .delete_topic(&support::topic(topic))
            .await
            .expect("delete")
    );
}

/// The lossy retention, chosen by name, does drop unread entries.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drop_unread_retention_trims_without_a_group() {
    let url = support::redis_url();
    let prefix = support::unique_prefix();
    let config = RedisBackendConfig::new(url.as_str())
        .with_key_prefix(&prefix)
        .with_retention(Retention::DropUnreadAfter { len: 5 })
        .with_trim_interval(Duration::from_millis(10));
    let backend = support::backend_with(config).await;
    let topic = "lossy.telemetry";
    let messages: Vec<Message> = (0..20).map(|n| message(topic, n)).collect();
    backend.publish_batch(&messages).await.expect("publish");
    let stream = format!("{{{prefix}:{topic}}}:stream");
    let redis = raw(&url).await;
    wait_for(
        "the unread entries dropped",
        Duration::from_secs(10),
        || {
            let mut redis = redis.clone();
            let stream = stream.clone();
            async move { (redis.xlen::<_, usize>(&stream).await.expect("xlen") == 5).then_some(()) }
        },
    )
    .await;
    backend
        .ensure_group(&support::topic(topic), "g", StartFrom::Earliest)
        .await
        .expect("group");
    let got: Vec<_> = read_all(&backend, topic, "g", "c", 5)
        .await
        .iter()
        .map(|d| d.message.id)
        .collect();
    assert_eq!(got, messages[15..].iter().map(|m| m.id).collect::<Vec<_>>());
    assert!(
        backend
            .delete_topic(&support::topic(topic))
            .await
            .expect("delete")
    );
}
