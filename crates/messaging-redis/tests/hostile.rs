//! Entries and keys written by something other than this backend (a raw
//! connection, as `redis-cli` or another service would) must not stall a topic.
//! Each test uses `REDIS_URL` under a key prefix of its own and deletes its topic.

mod support;

use std::time::Duration;

use chrono::Utc;
use messaging_core::MessageBackend;
use messaging_model::Message;
use messaging_redis::RedisBackendConfig;
use redis::AsyncCommands;
use serde_json::json;

async fn raw(url: &str) -> redis::aio::MultiplexedConnection {
    redis::Client::open(url)
        .expect("redis url")
        .get_multiplexed_async_connection()
        .await
        .expect("connect")
}

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
    let stats = backend.stats(topic).await.expect("stats work");
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
    backend.delete_topic(topic).await.unwrap();
}
