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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenants_on_one_redis_cannot_reach_each_other() {
    use messaging_core::{BackendError, ReadFrom, StartFrom};
    let server = support::RedisServer::start();
    // The ACL docs/redis.md documents for a tenant: its hash-tagged keys and
    // its registry.
    for user in ["shop", "shop.eu"] {
        let created = server.command(&[
            "ACL",
            "SETUSER",
            user,
            "on",
            ">pw",
            &format!("~{{{user}:*"),
            &format!("~{user}:topics"),
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

    // Through the trait, names that once reached the other tenant are refused.
    let read = shop
        .read("eu:orders", "g", "c", ReadFrom::New, 10, Duration::ZERO)
        .await;
    assert!(matches!(read, Err(BackendError::Validation(_))), "{read:?}");
    assert!(matches!(
        shop.delete_topic("eu:orders").await,
        Err(BackendError::Validation(_))
    ));
    assert!(matches!(
        shop.ensure_group("eu:orders", "g", StartFrom::Earliest)
            .await,
        Err(BackendError::Validation(_))
    ));
    assert!(matches!(
        shop.stats("eu:orders").await,
        Err(BackendError::Validation(_))
    ));
    assert_eq!(shop.list_topics().await.unwrap(), vec!["orders".to_owned()]);
    assert_eq!(
        eu.stats("orders").await.unwrap().length,
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
}
