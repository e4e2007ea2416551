//! Idle topics cost nothing (issue 11 case 8): promotion reads one due index
//! per prefix instead of running a script per known topic, and trimming only
//! visits topics with writes or settlements since their last trim. Measured
//! through Redis itself (`INFO commandstats`) on a redis-server each test
//! starts on a free loopback port.

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::Utc;
use messaging_core::{BackendAdmin as _, ReadOptions};
use messaging_core::{MessageBackend, Retention, StartFrom};
use messaging_model::Message;
use messaging_redis::{RedisBackend, RedisBackendConfig};
use redis::AsyncCommands;
use redis::aio::MultiplexedConnection;
use serde_json::json;
use support::{RedisServer, raw, wait_for};

const PROMOTE_INTERVAL: Duration = Duration::from_millis(50);

fn message(topic: &str, n: u64) -> Message {
    Message::new(topic, json!({ "n": n })).expect("message")
}

/// Calls per command since the server started (`INFO commandstats`), the
/// test's own `INFO` left out. Commands run inside scripts count too.
async fn command_calls(redis: &mut MultiplexedConnection) -> BTreeMap<String, u64> {
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query_async(redis)
        .await
        .expect("info commandstats");
    info.lines()
        .filter_map(|line| {
            let (name, rest) = line.strip_prefix("cmdstat_")?.split_once(':')?;
            let calls = rest.split(',').find_map(|kv| kv.strip_prefix("calls="))?;
            let calls: u64 = calls.parse().ok()?;
            (name != "info").then(|| (name.to_owned(), calls))
        })
        .collect()
}

fn delta(before: &BTreeMap<String, u64>, after: &BTreeMap<String, u64>) -> BTreeMap<String, u64> {
    after
        .iter()
        .map(|(name, calls)| (name.clone(), calls - before.get(name).copied().unwrap_or(0)))
        .filter(|(_, calls)| *calls > 0)
        .collect()
}

/// Holds the prefix's sweep lock, as a process that swept a moment ago would,
/// so a test sees the steady state (the sweep's own cost is a separate test).
async fn hold_sweep_lock(redis: &mut MultiplexedConnection, prefix: &str) {
    let _: () = redis::cmd("SET")
        .arg(format!("{prefix}:sweep"))
        .arg("held by the test")
        .arg("PX")
        .arg(3_600_000)
        .query_async(redis)
        .await
        .expect("set the sweep lock");
}

/// Commands Redis ran while a backend that knows `topics` idle topics sat
/// still for `window`. Each topic has a consumer group, two messages that were
/// read, acknowledged and then trimmed (the first), and one delayed message an hour
/// ahead; the backend read every topic once.
async fn idle_commands(topics: usize, window: Duration) -> BTreeMap<String, u64> {
    let server = RedisServer::start();
    let prefix = support::unique_prefix();
    let mut redis = raw(&server.url()).await;
    hold_sweep_lock(&mut redis, &prefix).await;
    let config = RedisBackendConfig::new(server.url())
        .with_key_prefix(&prefix)
        .with_retention(Retention::Settled { keep: 0 })
        .with_promote_interval(PROMOTE_INTERVAL)
        .with_trim_interval(PROMOTE_INTERVAL);
    let backend = support::backend_with(config).await;
    let names: Vec<String> = (0..topics).map(|n| format!("idle.{n}")).collect();
    let later = Utc::now() + chrono::Duration::hours(1);
    for (n, topic) in names.iter().enumerate() {
        backend
            .ensure_group(&support::topic(topic), "g", StartFrom::Earliest)
            .await
            .expect("group");
        backend
            .publish_batch(&[message(topic, n as u64), message(topic, n as u64)])
            .await
            .expect("publish");
        backend
            .schedule(&message(topic, n as u64), later)
            .await
            .expect("schedule");
        let taken = backend
            .read(
                &support::consumer(topic, "g", "c"),
                &ReadOptions::new_entries(10, Duration::ZERO),
            )
            .await
            .expect("read");
        assert_eq!(taken.len(), 2);
        for delivery in &taken {
            backend.ack(&delivery.receipt).await.expect("ack");
        }
    }
    // Every topic was settled on, so each is trimmed once: wait for that
    // (the last delivered entry stays, see lua/trim.lua).
    wait_for("every stream trimmed", Duration::from_secs(60), || {
        let mut redis = redis.clone();
        let streams: Vec<String> = names
            .iter()
            .map(|topic| format!("{{{prefix}:{topic}}}:stream"))
            .collect();
        async move {
            let mut pipe = redis::pipe();
            for stream in &streams {
                pipe.xlen(stream);
            }
            let lengths: Vec<u64> = pipe.query_async(&mut redis).await.expect("xlen");
            lengths.iter().all(|&length| length == 1).then_some(())
        }
    })
    .await;
    let before = command_calls(&mut redis).await;
    tokio::time::sleep(window).await;
    let after = command_calls(&mut redis).await;
    let index: usize = redis.zcard(format!("{prefix}:due")).await.expect("zcard");
    assert_eq!(index, topics, "every topic's delayed message is indexed");
    drop(backend);
    delta(&before, &after)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_topics_cost_no_commands_per_topic() {
    // 20 promote intervals. The code before the index ran a promotion
    // script per known topic per interval: 2,000 × 20 = 40,000 calls here.
    let window = PROMOTE_INTERVAL * 20;
    let few = idle_commands(10, window).await;
    let many = idle_commands(2_000, window).await;
    let total = |calls: &BTreeMap<String, u64>| calls.values().sum::<u64>();
    println!(
        "idle for {window:?}: 10 topics {} commands {few:?}; 2,000 topics {} commands {many:?}",
        total(&few),
        total(&many)
    );
    // One index read per interval (a script: EVALSHA, TIME and two
    // ZRANGEBYSCOREs), whatever the number of topics; a few more when the
    // window's edges cut an interval.
    assert!(
        total(&many) <= total(&few) + 20,
        "2,000 idle topics cost {} commands against {} for 10",
        total(&many),
        total(&few)
    );
    assert!(
        total(&many) <= 4 * 25,
        "more than the index reads: {many:?}"
    );
}

/// A backend on `server` under `prefix` with a short promote interval.
async fn promoter(url: &str, prefix: &str) -> RedisBackend {
    support::backend_with(
        RedisBackendConfig::new(url)
            .with_key_prefix(prefix)
            .with_promote_interval(PROMOTE_INTERVAL),
    )
    .await
}

/// The messages in a topic's stream, by entry.
async fn stream_messages(redis: &mut MultiplexedConnection, stream: &str) -> Vec<Message> {
    let reply: redis::streams::StreamRangeReply = redis.xrange_all(stream).await.expect("xrange");
    reply
        .ids
        .iter()
        .map(|entry| {
            let json: String = entry.get("m").expect("field m");
            serde_json::from_str(&json).expect("message")
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_another_backend_delayed_or_retried_is_promoted_by_the_first() {
    let server = RedisServer::start();
    let prefix = support::unique_prefix();
    let mut redis = raw(&server.url()).await;
    // No sweep: only the index can show the first backend these messages.
    hold_sweep_lock(&mut redis, &prefix).await;
    // Never touches the topics.
    let first = promoter(&server.url(), &prefix).await;

    let (delayed_topic, retried_topic) = ("elsewhere.delayed", "elsewhere.retried");
    let due;
    {
        // Another process's view: schedules and retries, then is gone before
        // anything is due, its own timers with it.
        let other = promoter(&server.url(), &prefix).await;
        other
            .ensure_group(&support::topic(retried_topic), "g", StartFrom::Earliest)
            .await
            .expect("group");
        other
            .publish(&message(retried_topic, 1))
            .await
            .expect("publish");
        let taken = other
            .read(
                &support::consumer(retried_topic, "g", "c"),
                &ReadOptions::new_entries(1, Duration::ZERO),
            )
            .await
            .expect("read");
        due = Utc::now() + chrono::Duration::milliseconds(400);
        other
            .schedule(&message(delayed_topic, 2), due)
            .await
            .expect("schedule");
        other
            .retry_at(&taken[0].receipt, &taken[0].message, due)
            .await
            .expect("retry");
    }
    let delayed_stream = format!("{{{prefix}:{delayed_topic}}}:stream");
    let retried_stream = format!("{{{prefix}:{retried_topic}}}:stream");
    let index = format!("{prefix}:due");
    wait_for("both promoted", Duration::from_secs(10), || {
        let mut redis = redis.clone();
        let (delayed_stream, retried_stream) = (delayed_stream.clone(), retried_stream.clone());
        let index = index.clone();
        async move {
            let delayed: u64 = redis.xlen(&delayed_stream).await.expect("xlen");
            // The retried entry is acknowledged and stays until trimmed: the
            // promoted copy is the second entry.
            let retried: u64 = redis.xlen(&retried_stream).await.expect("xlen");
            // Nothing left to promote, so nothing left in the index.
            let indexed: u64 = redis.zcard(&index).await.expect("zcard");
            (delayed == 1 && retried == 2 && indexed == 0).then_some(())
        }
    })
    .await;
    let arrived = Utc::now();
    let delayed = stream_messages(&mut redis, &delayed_stream).await;
    assert_eq!(delayed[0].payload, json!({"n": 2}));
    let retried = stream_messages(&mut redis, &retried_stream).await;
    assert_eq!(retried[1].payload, json!({"n": 1}));
    // Never early: the server's clock (in sync with this one) passed `due`
    // before the entries were added (entry ids are the server's time).
    for stream in [&delayed_stream, &retried_stream] {
        let reply: redis::streams::StreamRangeReply =
            redis.xrevrange_count(stream, "+", "-", 1).await.unwrap();
        let id = &reply.ids[0].id;
        let ms: i64 = id.split('-').next().unwrap().parse().unwrap();
        assert!(ms >= due.timestamp_millis(), "{stream} promoted early");
    }
    assert!(arrived - due < chrono::Duration::seconds(10));
    first
        .delete_topic(&support::topic(delayed_topic))
        .await
        .unwrap();
    first
        .delete_topic(&support::topic(retried_topic))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_and_foreign_index_entries_do_no_harm() {
    let server = RedisServer::start();
    let prefix = support::unique_prefix();
    let mut redis = raw(&server.url()).await;
    hold_sweep_lock(&mut redis, &prefix).await;
    let index = format!("{prefix}:due");
    let backend = promoter(&server.url(), &prefix).await;

    // A topic whose delayed set was emptied (purged by hand, deleted) after
    // it was indexed, and one whose entry is earlier than its message.
    let emptied = "stale.emptied";
    backend
        .schedule(
            &message(emptied, 1),
            Utc::now() + chrono::Duration::hours(1),
        )
        .await
        .expect("schedule");
    let _: () = redis
        .del(format!("{{{prefix}:{emptied}}}:delayed"))
        .await
        .unwrap();
    let _: () = redis.zadd(&index, emptied, 0).await.unwrap();
    let early = "stale.early";
    let due = Utc::now() + chrono::Duration::milliseconds(600);
    backend
        .schedule(&message(early, 2), due)
        .await
        .expect("schedule");
    let _: () = redis.zadd(&index, early, 0).await.unwrap();
    // Names that are no topic (written by something else): never used as keys.
    for junk in ["eu:orders", "", "a b"] {
        let _: () = redis.zadd(&index, junk, 0).await.unwrap();
    }

    wait_for("the stale entries removed", Duration::from_secs(10), || {
        let mut redis = redis.clone();
        let index = index.clone();
        async move {
            let members: Vec<String> = redis.zrange(&index, 0, -1).await.unwrap();
            (members == vec![early.to_owned()]).then_some(())
        }
    })
    .await;
    // The early entry was raised to the message's time, and the message waits.
    let score: f64 = redis.zscore(&index, early).await.unwrap();
    assert!(score as i64 >= due.timestamp_millis(), "score {score}");
    let early_stream = format!("{{{prefix}:{early}}}:stream");
    wait_for(
        "the early topic's message promoted",
        Duration::from_secs(10),
        || {
            let mut redis = redis.clone();
            let early_stream = early_stream.clone();
            async move { (redis.xlen::<_, u64>(&early_stream).await.unwrap() == 1).then_some(()) }
        },
    )
    .await;
    let reply: redis::streams::StreamRangeReply = redis.xrange_all(&early_stream).await.unwrap();
    let ms: i64 = reply.ids[0].id.split('-').next().unwrap().parse().unwrap();
    assert!(ms >= due.timestamp_millis(), "promoted early");
    // Nothing appeared for the emptied topic or the junk names.
    let emptied_length: u64 = redis
        .xlen(format!("{{{prefix}:{emptied}}}:stream"))
        .await
        .unwrap();
    assert_eq!(emptied_length, 0);
    let keys: Vec<String> = redis.keys("{eu:*").await.unwrap();
    assert!(keys.is_empty(), "{keys:?}");
    backend
        .delete_topic(&support::topic(emptied))
        .await
        .unwrap();
    backend.delete_topic(&support::topic(early)).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sweep_indexes_delayed_messages_nobody_indexed() {
    let server = RedisServer::start();
    let prefix = support::unique_prefix();
    let mut redis = raw(&server.url()).await;
    let index = format!("{prefix}:due");
    let lock = format!("{prefix}:sweep");
    // What a process killed between its script and the index command leaves,
    // or a version from before the index: a delayed message, no index entry.
    let soon = Utc::now() + chrono::Duration::milliseconds(1_500);
    let later = Utc::now() + chrono::Duration::hours(1);
    let topics = [("sweep.a", soon), ("sweep.b", soon), ("sweep.later", later)];
    for (n, (topic, due)) in topics.iter().enumerate() {
        let member = format!(
            "{}|{}",
            uuid::Uuid::now_v7().simple(),
            serde_json::to_string(&message(topic, n as u64)).unwrap()
        );
        let _: () = redis
            .zadd(
                format!("{{{prefix}:{topic}}}:delayed"),
                member,
                due.timestamp_millis() + 1,
            )
            .await
            .unwrap();
        let _: () = redis.sadd(format!("{prefix}:topics"), topic).await.unwrap();
    }

    // Called explicitly (the background sweep held off): one entry per topic.
    hold_sweep_lock(&mut redis, &prefix).await;
    let tool = promoter(&server.url(), &prefix).await;
    assert_eq!(tool.sweep_due_index().await.expect("sweep"), 3);
    assert_eq!(tool.sweep_due_index().await.expect("sweep again"), 0);
    let score: f64 = redis.zscore(&index, "sweep.later").await.unwrap();
    assert_eq!(score as i64, later.timestamp_millis() + 1);
    drop(tool);
    let _: () = redis.del(&index).await.unwrap();

    // By itself: a backend starting with the sweep lock free sweeps at once.
    let _: () = redis.del(&lock).await.unwrap();
    let backend = promoter(&server.url(), &prefix).await;
    for topic in ["sweep.a", "sweep.b"] {
        let stream = format!("{{{prefix}:{topic}}}:stream");
        wait_for(
            "the unindexed message promoted",
            Duration::from_secs(10),
            || {
                let mut redis = redis.clone();
                let stream = stream.clone();
                async move { (redis.xlen::<_, u64>(&stream).await.unwrap() == 1).then_some(()) }
            },
        )
        .await;
        let reply: redis::streams::StreamRangeReply = redis.xrange_all(&stream).await.unwrap();
        let ms: i64 = reply.ids[0].id.split('-').next().unwrap().parse().unwrap();
        assert!(ms > soon.timestamp_millis(), "promoted early");
    }
    let score: Option<f64> = redis.zscore(&index, "sweep.later").await.unwrap();
    assert!(score.is_some(), "the later one is indexed, and waits");
    // The lock keeps other processes from sweeping again within the interval.
    let ttl: i64 = redis.pttl(&lock).await.unwrap();
    assert!(ttl > 0, "pttl {ttl}");
    for (topic, _) in topics {
        backend.delete_topic(&support::topic(topic)).await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consumer_in_another_process_trims_what_it_settled() {
    let server = RedisServer::start();
    let prefix = support::unique_prefix();
    let redis = raw(&server.url()).await;
    let config = RedisBackendConfig::new(server.url())
        .with_key_prefix(&prefix)
        .with_retention(Retention::Settled { keep: 0 })
        .with_trim_interval(Duration::from_millis(20));
    let topic = "trim.elsewhere";
    let publisher = support::backend_with(config.clone()).await;
    let consumer = support::backend_with(config).await;
    consumer
        .ensure_group(&support::topic(topic), "g", StartFrom::Earliest)
        .await
        .expect("group");
    let messages: Vec<Message> = (0..5).map(|n| message(topic, n)).collect();
    publisher.publish_batch(&messages).await.expect("publish");
    let stream = format!("{{{prefix}:{topic}}}:stream");
    let taken = consumer
        .read(
            &support::consumer(topic, "g", "c"),
            &ReadOptions::new_entries(10, Duration::ZERO),
        )
        .await
        .expect("read");
    for delivery in &taken {
        consumer.ack(&delivery.receipt).await.expect("ack");
    }
    // All but the last delivered entry, which trimming keeps.
    wait_for(
        "the settled entries trimmed",
        Duration::from_secs(10),
        || {
            let mut redis = redis.clone();
            let stream = stream.clone();
            async move { (redis.xlen::<_, u64>(&stream).await.unwrap() == 1).then_some(()) }
        },
    )
    .await;
    consumer.delete_topic(&support::topic(topic)).await.unwrap();
    drop(publisher);
}
