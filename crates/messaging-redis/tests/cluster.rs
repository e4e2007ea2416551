//! The backend on a real Redis Cluster (3 masters + 3 replicas on loopback,
//! `scripts/redis-cluster.sh start`; `REDIS_CLUSTER_URL` names it): the whole
//! conformance suite, then what only a cluster can get wrong (commands across
//! slots, topics spread over the masters, keys found by `SCAN` on the right node).

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use messaging_core::{Backend, BackendAdmin, MessageBackend};
use messaging_model::{Message, Topic};
use messaging_redis::{RedisBackend, RedisBackendConfig, Retention};
use serde_json::json;

async fn backend() -> Arc<dyn Backend> {
    connect(|config| config).await
}

/// Topics capped at `cap` messages, no settled history kept.
async fn capped(cap: usize) -> Arc<dyn Backend> {
    connect(|config| {
        config
            .with_topic_cap(cap)
            .with_retention(Retention::Settled { keep: 0 })
    })
    .await
}

async fn connect(
    configure: impl FnOnce(RedisBackendConfig) -> RedisBackendConfig,
) -> Arc<dyn Backend> {
    connect_cluster(configure).await
}

/// A backend on the cluster under a prefix of its own, trimming every 50 ms so
/// the suite runs with trims going on.
async fn connect_cluster(
    configure: impl FnOnce(RedisBackendConfig) -> RedisBackendConfig,
) -> Arc<RedisBackend> {
    let url = messaging_test_support::redis_cluster_url();
    let prefix = format!(
        "cluster-{:016x}{:08x}",
        fastrand::u64(..),
        std::process::id()
    );
    let config = configure(
        RedisBackendConfig::new(url.as_str())
            .with_key_prefix(prefix)
            .with_trim_interval(Duration::from_millis(50)),
    );
    let backend = RedisBackend::connect(config).await.unwrap_or_else(|error| {
        panic!("cannot reach the cluster at REDIS_CLUSTER_URL={url}: {error}")
    });
    Arc::new(backend)
}

messaging_core::backend_conformance_tests!(backend, capped: capped);

async fn schedules() -> (
    Arc<dyn messaging_core::schedule::ScheduleBackend>,
    Arc<dyn Backend>,
) {
    let backend = connect_cluster(|config| config).await;
    (backend.clone(), backend)
}

messaging_core::schedule_conformance_tests!(schedules);

/// A plain connection to the first seed node.
fn seed() -> redis::Connection {
    let url = messaging_test_support::redis_cluster_url();
    let seed = url
        .trim_start_matches("redis+cluster://")
        .split(',')
        .next()
        .unwrap()
        .to_owned();
    let client = redis::Client::open(format!("redis://{seed}")).unwrap();
    client.get_connection().unwrap()
}

/// The seed node's view: `slot range → master address`.
fn masters_by_slot() -> Vec<(u16, u16, String)> {
    let mut connection = seed();
    let slots: Vec<redis::Value> = redis::cmd("CLUSTER")
        .arg("SLOTS")
        .query(&mut connection)
        .unwrap();
    slots
        .into_iter()
        .map(|range| {
            let redis::Value::Array(items) = range else {
                panic!("CLUSTER SLOTS answered {range:?}")
            };
            let start: u16 = redis::from_redis_value(items[0].clone()).unwrap();
            let end: u16 = redis::from_redis_value(items[1].clone()).unwrap();
            let redis::Value::Array(master) = &items[2] else {
                panic!("CLUSTER SLOTS answered {items:?}")
            };
            let host: String = redis::from_redis_value(master[0].clone()).unwrap();
            let port: u16 = redis::from_redis_value(master[1].clone()).unwrap();
            (start, end, format!("{host}:{port}"))
        })
        .collect()
}

fn key_slot(key: &str) -> u16 {
    redis::cmd("CLUSTER")
        .arg("KEYSLOT")
        .arg(key)
        .query(&mut seed())
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn topics_spread_over_every_master_and_each_works() {
    let backend = connect_cluster(|config| config).await;
    let prefix = backend.config().key_prefix.clone();
    let ranges = masters_by_slot();
    let master_of = |key: &str| {
        let slot = key_slot(key);
        ranges
            .iter()
            .find(|(start, end, _)| (*start..=*end).contains(&slot))
            .map(|(_, _, master)| master.clone())
            .unwrap()
    };
    // 24 topics land on all three masters (the odds of missing one: 3 × (2/3)^24).
    let topics: Vec<Topic> = (0..24)
        .map(|i| Topic::new(format!("spread.t{i}")).unwrap())
        .collect();
    let masters: HashSet<String> = topics
        .iter()
        .map(|topic| master_of(&format!("{{{prefix}:{topic}}}:stream")))
        .collect();
    assert_eq!(
        masters.len(),
        3,
        "the topics' streams landed on {masters:?}"
    );

    for topic in &topics {
        backend.create_topic(topic).await.unwrap();
        backend
            .publish(&Message::new(topic.as_str(), json!({"on": topic.as_str()})).unwrap())
            .await
            .unwrap();
    }
    // The registry (one slot) lists topics of every slot; stats read each.
    let listed: HashSet<String> = backend
        .list_topics()
        .await
        .unwrap()
        .into_iter()
        .map(|topic| topic.to_string())
        .collect();
    for topic in &topics {
        assert!(
            listed.contains(topic.as_str()),
            "{topic} missing from {listed:?}"
        );
        let stats = backend.stats(topic).await.unwrap();
        assert_eq!(stats.length, 1, "{topic}");
    }
    for topic in &topics {
        assert!(backend.delete_topic(topic).await.unwrap());
    }
    assert!(backend.list_topics().await.unwrap().is_empty());
}
