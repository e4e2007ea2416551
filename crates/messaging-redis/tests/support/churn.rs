//! Consumer churn, shared by `faults.rs` (one node) and `cluster_faults.rs`
//! (a cluster): consumers in child processes (the test binary run again) that
//! record each handling in Redis, killed with SIGKILL and restarted while
//! they work through a topic.
//!
//! The side effects live under one hash tag `{E}` (`E` = `EFFECTS`), so they
//! share a slot on a cluster: `{E}:handled` counts handlings per message,
//! `{E}:by` per message and consumer, `{E}:lost:<consumer>` the settlements
//! that lost ownership.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use messaging_core::testsuite::{FaultyBackend, Outcome};
use messaging_core::{
    BackendAdmin, HandlerError, MessageBackend, MessagingService, Settlement, StartFrom,
    SubscribeOptions,
};
use messaging_model::Message;
use messaging_redis::{RedisBackend, RedisBackendConfig};
use redis::aio::{ConnectionLike, MultiplexedConnection};
use redis::cluster_async::ClusterConnection;
use redis::{AsyncCommands, Cmd, RedisFuture, Value};
use serde_json::json;
use uuid::Uuid;

use super::{ChildProcess, wait_for};

/// How many handlings one consumer runs at once.
pub const CONCURRENCY: usize = 8;

/// Where the per-message handling counts are.
pub fn handled_key(effects: &str) -> String {
    format!("{{{effects}}}:handled")
}

/// Where the per-message-and-consumer handling counts are.
pub fn by_consumer_key(effects: &str) -> String {
    format!("{{{effects}}}:by")
}

/// Where `consumer`'s settlements that lost ownership are counted.
pub fn lost_key(effects: &str, consumer: &str) -> String {
    format!("{{{effects}}}:lost:{consumer}")
}

/// A plain connection to one node or to a cluster (`redis+cluster://` URLs),
/// not this library: what a test inspects and a handler records through.
#[derive(Clone)]
pub enum Raw {
    Single(MultiplexedConnection),
    Cluster(ClusterConnection),
}

impl Raw {
    pub async fn connect(url: &str) -> Self {
        match url.strip_prefix("redis+cluster://") {
            Some(nodes) => {
                let nodes: Vec<String> = nodes
                    .split(',')
                    .map(|node| format!("redis://{node}"))
                    .collect();
                let client = redis::cluster::ClusterClient::new(nodes).expect("cluster url");
                Self::Cluster(client.get_async_connection().await.expect("connect"))
            }
            None => Self::Single(super::raw(url).await),
        }
    }
}

impl ConnectionLike for Raw {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Self::Single(connection) => connection.req_packed_command(cmd),
            Self::Cluster(connection) => connection.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a redis::Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Self::Single(connection) => connection.req_packed_commands(pipeline, offset, count),
            Self::Cluster(connection) => connection.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Self::Single(connection) => connection.get_db(),
            Self::Cluster(connection) => connection.get_db(),
        }
    }
}

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("{name} not set for the child"))
}

/// What a consumer child (role `consumer`) reads from its environment.
pub struct ConsumerEnv<'a> {
    pub url: &'a str,
    pub prefix: &'a str,
    pub topic: &'a str,
    pub group: &'a str,
    pub consumer: &'a str,
    pub effects: &'a str,
    pub handle_ms: u64,
    pub visibility_ms: u64,
}

impl ConsumerEnv<'_> {
    pub fn vars(&self) -> Vec<(&'static str, String)> {
        vec![
            ("REDIS_URL", self.url.to_owned()),
            ("PREFIX", self.prefix.to_owned()),
            ("TOPIC", self.topic.to_owned()),
            ("GROUP", self.group.to_owned()),
            ("CONSUMER", self.consumer.to_owned()),
            ("EFFECTS", self.effects.to_owned()),
            ("HANDLE_MS", self.handle_ms.to_string()),
            ("VISIBILITY_MS", self.visibility_ms.to_string()),
        ]
    }
}

/// The body of a consumer child: a consumer of `TOPIC` in `GROUP` under a
/// stable name; each handling records its side effect after `HANDLE_MS`;
/// payloads with `poison` fail permanently. Never returns.
pub async fn consumer_child() {
    let url = env("REDIS_URL");
    let consumer = env("CONSUMER");
    let effects = env("EFFECTS");
    let handle = Duration::from_millis(env("HANDLE_MS").parse().expect("HANDLE_MS"));
    let visibility = Duration::from_millis(env("VISIBILITY_MS").parse().expect("VISIBILITY_MS"));
    let config = RedisBackendConfig::new(url.as_str()).with_key_prefix(env("PREFIX"));
    let backend = RedisBackend::connect(config).await.expect("connect");
    let side_effects = Raw::connect(&url).await;
    // Counts settlements that lost ownership, in Redis.
    let counting = Arc::new(FaultyBackend::new(Arc::new(backend)));
    let lost = side_effects.clone();
    let lost_key = lost_key(&effects, &consumer);
    counting.observe(move |_operation, outcome| {
        let mut lost = lost.clone();
        let lost_key = lost_key.clone();
        Box::pin(async move {
            if outcome == Outcome::Settled(Settlement::LostOwnership) {
                let _: Result<i64, _> = lost.incr(&lost_key, 1).await;
            }
        })
    });
    let service = MessagingService::new(counting);
    let options = SubscribeOptions::new(env("GROUP"))
        .with_consumer(consumer.clone())
        .with_concurrency(CONCURRENCY)
        .with_visibility_timeout(visibility)
        .with_block_timeout(Duration::from_millis(200));
    let handled = handled_key(&effects);
    let by = by_consumer_key(&effects);
    let handler = move |message: Message| {
        let mut redis = side_effects.clone();
        let (handled, by, consumer) = (handled.clone(), by.clone(), consumer.clone());
        async move {
            tokio::time::sleep(handle).await;
            let id = message.id.to_string();
            // One slot: a pipeline on a cluster too.
            let _: () = redis::pipe()
                .hincr(&handled, &id, 1)
                .ignore()
                .hincr(&by, format!("{id}:{consumer}"), 1)
                .ignore()
                .query_async(&mut redis)
                .await
                .map_err(HandlerError::retry)?;
            if message.payload.get("poison").is_some() {
                return Err(HandlerError::permanent("poison"));
            }
            Ok(())
        }
    };
    service
        .subscribe_with(&env("TOPIC"), options, handler)
        .await
        .expect("subscribe");
    futures::future::pending::<()>().await;
}

/// How a churn run went.
#[derive(Debug)]
pub struct Churned {
    pub kills: usize,
    pub duplicates: u64,
}

/// The churn scenario: `total` messages published to `topic` on `url`, three
/// consumer children (test entry `entry`, role `consumer`) handling them,
/// one of them killed with SIGKILL and restarted every 100-250 ms (up to
/// `max_kills` times) while work remains. Asserts every message was handled,
/// duplicates are at most what the killed consumers had in flight, and nothing
/// is left pending or dead-lettered.
pub async fn killed_consumers(
    url: &str,
    entry: &str,
    topic: &str,
    total: usize,
    max_kills: usize,
) -> Churned {
    const GROUP: &str = "workers";
    let prefix = super::unique_prefix();
    let backend = super::backend_with(RedisBackendConfig::new(url).with_key_prefix(&prefix)).await;
    let checked = super::topic(topic);
    backend
        .ensure_group(&checked, GROUP, StartFrom::Earliest)
        .await
        .expect("group");
    let messages: Vec<Message> = (0..total)
        .map(|i| Message::new(topic, json!({ "n": i })).expect("message"))
        .collect();
    for chunk in messages.chunks(500) {
        backend.publish_batch(chunk).await.expect("publish");
    }
    let ids: BTreeSet<Uuid> = messages.iter().map(|m| m.id).collect();

    let effects = format!("effects-{prefix}");
    let handled_key = handled_key(&effects);
    let mut consumers: Vec<ChildProcess> = (0..3)
        .map(|c| {
            let name = format!("c{c}");
            let vars = ConsumerEnv {
                url,
                prefix: &prefix,
                topic,
                group: GROUP,
                consumer: &name,
                effects: &effects,
                handle_ms: 4,
                visibility_ms: 2_000,
            }
            .vars();
            ChildProcess::spawn(entry, "consumer", &vars)
        })
        .collect();
    let mut redis = Raw::connect(url).await;
    let mut kills = 0usize;
    let started = Instant::now();
    // Kill a random consumer every 100-250 ms while work remains, restart it at once.
    loop {
        tokio::time::sleep(Duration::from_millis(100 + fastrand::u64(..150))).await;
        let handled: usize = redis.hlen(&handled_key).await.expect("hlen");
        if handled >= total * 95 / 100 || kills >= max_kills {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "no progress: {handled} handled"
        );
        let victim = fastrand::usize(..consumers.len());
        consumers[victim].restart();
        kills += 1;
    }
    wait_for(
        "every message handled and the pending list empty",
        Duration::from_secs(60),
        || {
            let mut redis = redis.clone();
            let backend = backend.clone();
            let (handled_key, checked) = (handled_key.clone(), checked.clone());
            async move {
                let handled: usize = redis.hlen(&handled_key).await.expect("hlen");
                let stats = backend.stats(&checked).await.expect("stats");
                let settled = stats.groups.iter().all(|g| g.pending == 0 && g.lag == 0);
                (handled == total && settled).then_some(())
            }
        },
    )
    .await;
    drop(consumers);

    let counts: HashMap<String, u64> = redis.hgetall(&handled_key).await.expect("hgetall");
    let handled: BTreeSet<Uuid> = counts.keys().map(|id| id.parse().expect("uuid")).collect();
    assert_eq!(handled, ids, "a message was never handled");
    let duplicates: u64 = counts.values().map(|n| n - 1).sum();
    eprintln!("{kills} kills, {duplicates} duplicate handlings of {total} messages");
    assert!(
        kills >= 3,
        "the consumers finished before they could be killed ({kills} kills)"
    );
    assert!(
        duplicates <= (kills * CONCURRENCY) as u64,
        "{duplicates} duplicates from {kills} kills of consumers holding at most {CONCURRENCY} each"
    );
    let stats = backend.stats(&checked).await.expect("stats");
    assert_eq!(stats.groups[0].pending, 0);
    assert_eq!(stats.dead_lettered, 0);
    let _: redis::RedisResult<i64> = redis.del(&[handled_key, by_consumer_key(&effects)]).await;
    let _ = backend.delete_topic(&checked).await;
    Churned { kills, duplicates }
}
