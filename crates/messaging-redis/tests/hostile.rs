//! Entries and keys written by something other than this backend (a raw
//! connection, as `redis-cli` or another service would) must not stall a topic.
//! Each test uses `REDIS_URL` under a key prefix of its own and deletes its topic.

mod support;

use std::time::Duration;

use chrono::Utc;
use messaging_core::MessageBackend;
use messaging_core::{BackendAdmin as _, ReadOptions};
use messaging_model::Message;
use messaging_redis::RedisBackendConfig;
use redis::AsyncCommands;
use serde_json::json;
use support::raw;

#[tokio::test]
async fn a_malformed_delayed_member_is_moved_aside_and_promotion_goes_on() {
    let url = support::redis_url();
    let prefix = support::unique_prefix();
    let backend =
        support::backend_with(RedisBackendConfig::new(url.as_str()).with_key_prefix(&prefix)).await;
    let topic = "hostile.delayed";
    let message = Message::new(topic, json!({"n": 1})).unwrap();
    backend
        .schedule(&message, Utc::now() - chrono::Duration::seconds(1))
        .await
        .expect("schedule");
    // `ZADD {P:T}:delayed 0 garbage`: due at once, and no separator. It once
    // made the promotion script fail on every call, so nothing behind it moved.
    let delayed = format!("{{{prefix}:{topic}}}:delayed");
    let mut redis = raw(&url).await;
    let _: i64 = redis.zadd(&delayed, "garbage", 0).await.unwrap();

    // The backend's own promoter may run first: either way the script runs.
    tokio::time::timeout(Duration::from_secs(10), backend.promote_due(topic))
        .await
        .expect("promotion answers")
        .expect("promotion succeeds");
    let stats = backend
        .stats(&support::topic(topic))
        .await
        .expect("stats work");
    assert_eq!(stats.length, 1, "the real message reached the stream");
    assert_eq!(stats.scheduled, 0);
    assert_eq!(
        stats.dead_lettered, 1,
        "the malformed member was moved aside"
    );
    let dead: Vec<(String, Vec<(String, String)>)> = {
        let reply: redis::streams::StreamRangeReply = redis
            .xrange_all(format!("{{{prefix}:{topic}}}:dlq"))
            .await
            .unwrap();
        reply
            .ids
            .into_iter()
            .map(|entry| {
                let fields = entry
                    .map
                    .into_iter()
                    .map(|(key, value)| (key, redis::from_redis_value(value).unwrap()))
                    .collect();
                (entry.id, fields)
            })
            .collect()
    };
    let fields = &dead[0].1;
    assert!(
        fields.contains(&("m".to_owned(), "garbage".to_owned())),
        "{fields:?}"
    );
    assert!(
        fields
            .iter()
            .any(|(key, value)| key == "e" && value.contains("malformed")),
        "{fields:?}"
    );
    backend.delete_topic(&support::topic(topic)).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenants_on_one_redis_cannot_reach_each_other() {
    let server = support::RedisServer::start();
    // The ACL docs/redis.md documents for a tenant: its hash-tagged keys and
    // the keys of its whole prefix (registry, due index, sweep lock).
    for user in ["shop", "shop.eu"] {
        let created = server.command(&[
            "ACL",
            "SETUSER",
            user,
            "on",
            ">pw",
            &format!("~{{{user}:*"),
            &format!("~{user}:*"),
            "+@all",
            "-@dangerous",
            "+config|get",
        ]);
        assert!(created.contains("OK"), "{created}");
    }
    let url = |user: &str| format!("redis://{user}:pw@127.0.0.1:{}", server.port);

    // A prefix that would nest under another is refused.
    let nested = messaging_redis::RedisBackend::connect(
        RedisBackendConfig::new(url("shop")).with_key_prefix("shop:eu"),
    )
    .await;
    assert!(nested.is_err(), "prefix shop:eu accepted");

    let shop =
        support::backend_with(RedisBackendConfig::new(url("shop")).with_key_prefix("shop")).await;
    let eu =
        support::backend_with(RedisBackendConfig::new(url("shop.eu")).with_key_prefix("shop.eu"))
            .await;
    eu.publish(&Message::new("orders", json!({"secret": "eu"})).unwrap())
        .await
        .expect("eu publishes under its own ACL");
    shop.publish(&Message::new("orders", json!({"n": 1})).unwrap())
        .await
        .expect("shop publishes under its own ACL");

    // Names that once reached the other tenant through the trait cannot be
    // made: every trait method takes a `Topic`, checked when it is made.
    for forged in ["eu:orders", "{shop}:eu", "orders}"] {
        assert!(
            matches!(
                messaging_model::Topic::try_from(forged),
                Err(messaging_model::ValidationError::InvalidTopic { .. })
            ),
            "{forged:?} accepted"
        );
    }
    assert_eq!(shop.list_topics().await.unwrap(), vec!["orders"]);
    assert_eq!(
        eu.stats(&support::topic("orders")).await.unwrap().length,
        1,
        "eu's message is untouched"
    );

    // The documented ACL pattern of `shop` does not match `shop.eu`'s keys.
    let mut as_shop = raw(&url("shop")).await;
    let denied: redis::RedisResult<i64> = redis::cmd("XLEN")
        .arg("{shop.eu:orders}:stream")
        .query_async(&mut as_shop)
        .await;
    let error = denied.expect_err("shop read shop.eu's stream");
    assert!(
        error.to_string().to_lowercase().contains("noperm"),
        "{error}"
    );
    let own: i64 = redis::cmd("XLEN")
        .arg("{shop:orders}:stream")
        .query_async(&mut as_shop)
        .await
        .unwrap();
    assert_eq!(own, 1);
    // Nor the keys of shop.eu's whole prefix: its due index.
    let denied: redis::RedisResult<i64> = redis::cmd("ZADD")
        .arg("shop.eu:due")
        .arg(0)
        .arg("orders")
        .query_async(&mut as_shop)
        .await;
    let error = denied.expect_err("shop wrote shop.eu's due index");
    assert!(
        error.to_string().to_lowercase().contains("noperm"),
        "{error}"
    );
    // And each tenant schedules under its own: the index is written too.
    for (backend, prefix) in [(&shop, "shop"), (&eu, "shop.eu")] {
        backend
            .schedule(
                &Message::new("orders", json!({"later": true})).unwrap(),
                Utc::now() + chrono::Duration::hours(1),
            )
            .await
            .expect("schedule under the tenant's ACL");
        let mut admin = raw(&format!("redis://127.0.0.1:{}", server.port)).await;
        let score: Option<f64> = admin
            .zscore(format!("{prefix}:due"), "orders")
            .await
            .unwrap();
        assert!(score.is_some(), "{prefix}'s due index holds orders");
    }
}

/// The dead-letter stream's entries as field maps (text), oldest first.
async fn dead_letter_entries(
    redis: &mut redis::aio::MultiplexedConnection,
    prefix: &str,
    topic: &str,
) -> Vec<(String, std::collections::HashMap<String, Vec<u8>>)> {
    let reply: redis::streams::StreamRangeReply = redis
        .xrange_all(format!("{{{prefix}:{topic}}}:dlq"))
        .await
        .unwrap();
    reply
        .ids
        .into_iter()
        .map(|entry| {
            let fields = entry
                .map
                .into_iter()
                .map(|(key, value)| (key, redis::from_redis_value(value).unwrap()))
                .collect();
            (entry.id, fields)
        })
        .collect()
}

/// How many entries of the group are pending (delivered, not settled).
async fn pending_count(
    redis: &mut redis::aio::MultiplexedConnection,
    stream: &str,
    group: &str,
) -> i64 {
    let reply: redis::streams::StreamPendingReply = redis.xpending(stream, group).await.unwrap();
    reply.count() as i64
}

#[tokio::test]
async fn a_forged_delivery_count_is_dead_lettered_not_dropped() {
    use messaging_core::StartFrom;
    let url = support::redis_url();
    let prefix = support::unique_prefix();
    let backend =
        support::backend_with(RedisBackendConfig::new(url.as_str()).with_key_prefix(&prefix)).await;
    let topic = "hostile.retrycount";
    let stream = format!("{{{prefix}:{topic}}}:stream");
    backend
        .ensure_group(&support::topic(topic), "g", StartFrom::Earliest)
        .await
        .unwrap();
    let message = Message::new(topic, json!({"n": 1})).unwrap();
    backend.publish(&message).await.unwrap();
    let first = backend
        .read(
            &support::consumer(topic, "g", "c1"),
            &ReadOptions::new_entries(10, Duration::ZERO),
        )
        .await
        .unwrap();
    assert_eq!(first.len(), 1);

    // `XCLAIM … RETRYCOUNT 5000000000`: a delivery count past u32. Such an
    // entry was once dropped from every read (handled 0, no dead letter, no
    // log), and reclaimed again and again.
    let mut redis = raw(&url).await;
    let _: redis::Value = redis::cmd("XCLAIM")
        .arg(&stream)
        .arg("g")
        .arg("c1")
        .arg(0)
        .arg(&first[0].receipt.entry_id)
        .arg("RETRYCOUNT")
        .arg(5_000_000_000u64)
        .query_async(&mut redis)
        .await
        .unwrap();

    let reclaimed = backend
        .reclaim_idle(&support::consumer(topic, "g", "c2"), Duration::ZERO, 10)
        .await
        .unwrap();
    assert!(
        reclaimed.is_empty(),
        "an out-of-range count reached a consumer"
    );
    let dead = backend
        .dead_letters(&support::topic(topic), 10)
        .await
        .unwrap();
    assert_eq!(
        dead.len(),
        1,
        "the entry vanished instead of being dead-lettered"
    );
    assert_eq!(dead[0].message.id, message.id, "the message itself is kept");
    assert!(
        dead[0].error.contains("delivery count 5000000001"),
        "{}",
        dead[0].error
    );
    assert_eq!(dead[0].attempts, u32::MAX, "attempts saturate");
    assert_eq!(
        pending_count(&mut redis, &stream, "g").await,
        0,
        "settled: never reclaimed again"
    );
    backend.delete_topic(&support::topic(topic)).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_huge_undecodable_entry_is_dead_lettered_bounded_and_settled() {
    use messaging_core::StartFrom;
    // A server of its own whose limit for one value is 100 MB instead of
    // Redis's 512 MB: scaled down so the entry can be 60 MiB (CI memory; the
    // reported one was 90 MiB) and an escaped copy of it (6 × 60 MiB, as the
    // dead letter once was) is still past the limit, refused, and resets the
    // shared connection as it did.
    let server = support::RedisServer::start_with(&["--proto-max-bulk-len", "100mb"]);
    let url = server.url();
    let backend =
        support::backend_with(RedisBackendConfig::new(url.as_str()).with_key_prefix("huge")).await;
    let topic = "hostile.huge";
    let stream = format!("{{huge:{topic}}}:stream");
    backend
        .ensure_group(&support::topic(topic), "g", StartFrom::Earliest)
        .await
        .unwrap();
    let good: Vec<Message> = (0..2)
        .map(|n| Message::new(topic, json!({"n": n})).unwrap())
        .collect();
    backend.publish(&good[0]).await.unwrap();
    // Not JSON, and every byte escaped as `\u0001` in JSON text.
    const SIZE: usize = 60 * 1024 * 1024;
    let mut redis = raw(&url).await;
    let bad: String = redis
        .xadd(&stream, "*", &[("m", vec![1u8; SIZE])])
        .await
        .unwrap();
    backend.publish(&good[1]).await.unwrap();

    let deliveries = backend
        .read(
            &support::consumer(topic, "g", "c"),
            &ReadOptions::new_entries(10, Duration::ZERO),
        )
        .await
        .expect("the read succeeds");
    let ids: Vec<_> = deliveries.iter().map(|d| d.message.id).collect();
    assert_eq!(
        ids,
        vec![good[0].id, good[1].id],
        "the good entries are delivered"
    );
    for delivery in &deliveries {
        assert_eq!(
            backend.ack(&delivery.receipt).await.unwrap(),
            messaging_core::Settlement::Settled,
            "the shared connection still works"
        );
    }

    let dead = backend
        .dead_letters(&support::topic(topic), 10)
        .await
        .unwrap();
    assert_eq!(dead.len(), 1, "the huge entry is dead-lettered");
    assert!(
        dead[0].error.starts_with("field `m` is not JSON"),
        "{}",
        dead[0].error
    );
    assert_eq!(dead[0].attempts, 1);
    let entry = &dead[0].message.payload["undecodable_entry"];
    assert_eq!(entry["id"], bad.as_str());
    assert_eq!(entry["bytes"], SIZE + 1);
    assert_eq!(entry["fields"][0][1]["bytes"], SIZE);
    assert!(entry["fields"][0][1]["fnv1a64"].is_string());
    let stored = dead_letter_entries(&mut redis, "huge", topic).await;
    let size = stored[0].1["m"].len();
    assert!(size < 1024 * 1024, "the dead letter is {size} bytes");

    // Settled: nothing pending, nothing to reclaim, nothing dead-lettered twice.
    assert_eq!(pending_count(&mut redis, &stream, "g").await, 0);
    let again = backend
        .reclaim_idle(&support::consumer(topic, "g", "c2"), Duration::ZERO, 10)
        .await
        .unwrap();
    assert!(again.is_empty());
    assert_eq!(
        backend
            .stats(&support::topic(topic))
            .await
            .unwrap()
            .dead_lettered,
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn junk_ahead_of_real_dead_letters_does_not_hide_them() {
    use messaging_core::{MessagingService, StartFrom};
    let url = support::redis_url();
    let prefix = support::unique_prefix();
    let backend =
        support::backend_with(RedisBackendConfig::new(url.as_str()).with_key_prefix(&prefix)).await;
    let topic = "hostile.dlqjunk";
    backend
        .ensure_group(&support::topic(topic), "g", StartFrom::Earliest)
        .await
        .unwrap();
    // 600 entries in the dead-letter stream that are no dead letter, first.
    let mut redis = raw(&url).await;
    let mut pipe = redis::pipe();
    for n in 0..600 {
        pipe.cmd("XADD")
            .arg(format!("{{{prefix}:{topic}}}:dlq"))
            .arg("*")
            .arg("junk")
            .arg(n)
            .ignore();
    }
    let () = pipe.query_async(&mut redis).await.unwrap();
    // Then three real ones.
    let messages: Vec<Message> = (0..3)
        .map(|n| Message::new(topic, json!({"n": n})).unwrap())
        .collect();
    for message in &messages {
        backend.publish(message).await.unwrap();
    }
    let deliveries = backend
        .read(
            &support::consumer(topic, "g", "c"),
            &ReadOptions::new_entries(10, Duration::ZERO),
        )
        .await
        .unwrap();
    for delivery in &deliveries {
        backend
            .dead_letter(&delivery.receipt, &delivery.message, "boom")
            .await
            .unwrap();
    }

    // Listing pages past what it cannot decode.
    let listed = backend
        .dead_letters(&support::topic(topic), 100)
        .await
        .unwrap();
    let listed_ids: Vec<_> = listed.iter().map(|dead| dead.message.id).collect();
    let ids: Vec<_> = messages.iter().map(|message| message.id).collect();
    assert_eq!(listed_ids, ids, "the real dead letters are listed");
    assert_eq!(
        backend
            .dead_letters(&support::topic(topic), 2)
            .await
            .unwrap()
            .len(),
        2
    );
    // And reports it: page by page, every entry is either.
    let (mut dead, mut junk, mut after) = (Vec::new(), Vec::new(), None);
    loop {
        let page = backend
            .dead_letter_page(topic, after.as_deref(), 250)
            .await
            .unwrap();
        dead.extend(page.dead_letters);
        junk.extend(page.undecodable);
        match page.next {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    assert_eq!(dead.len(), 3);
    assert_eq!(junk.len(), 600);
    assert_eq!(junk[0].reason, "no `m` field");

    // Replaying all replays every real one and leaves the junk.
    let service = MessagingService::new(std::sync::Arc::new(backend.clone()));
    assert_eq!(service.replay_all_dead_letters(topic).await.unwrap(), 3);
    let replayed = backend
        .read(
            &support::consumer(topic, "g", "c"),
            &ReadOptions::new_entries(10, Duration::ZERO),
        )
        .await
        .unwrap();
    let replayed_ids: Vec<_> = replayed.iter().map(|d| d.message.id).collect();
    assert_eq!(replayed_ids, ids);
    assert_eq!(
        backend
            .stats(&support::topic(topic))
            .await
            .unwrap()
            .dead_lettered,
        600
    );
    backend.delete_topic(&support::topic(topic)).await.unwrap();
}
