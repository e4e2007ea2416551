//! The backend on a real Redis Cluster (3 masters + 3 replicas on loopback,
//! `scripts/redis-cluster.sh start`; `REDIS_CLUSTER_URL` names it): the whole
//! conformance suite, then what only a cluster can get wrong (commands across
//! slots, topics spread over the masters, keys found by `SCAN` on the right node).

mod support;

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
    support::suite_backend("REDIS_CLUSTER_URL", &url, "cluster", configure).await
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

/// The same suites with every topic in 6 partitions (recorded at a topic's
/// first use): a topic's streams `{P:T#0}` … `{P:T#5}` hash to slots spread
/// over the masters.
mod partitioned {
    use std::sync::Arc;

    use messaging_core::{Backend, Partitioned};
    use messaging_redis::{RedisBackend, Retention};

    fn partitioned(backend: Arc<RedisBackend>) -> Arc<Partitioned<RedisBackend>> {
        crate::support::partitioned(backend, 6)
    }

    async fn backend() -> Arc<dyn Backend> {
        partitioned(super::connect_cluster(|config| config).await)
    }

    async fn capped(cap: usize) -> Arc<dyn Backend> {
        partitioned(
            super::connect_cluster(|config| {
                config
                    .with_topic_cap(cap)
                    .with_retention(Retention::Settled { keep: 0 })
            })
            .await,
        )
    }

    messaging_core::backend_conformance_tests!(backend, capped: capped);

    async fn schedules() -> (
        Arc<dyn messaging_core::schedule::ScheduleBackend>,
        Arc<dyn Backend>,
    ) {
        let backend = partitioned(super::connect_cluster(|config| config).await);
        (backend.clone(), backend)
    }

    messaging_core::schedule_conformance_tests!(schedules);
}

/// The conformance suite again with every publish and schedule waiting for a
/// replica (`WAIT 1 …` after the script, on the master of the topic's slot).
mod with_replica_acks {
    use super::*;

    fn acks(config: RedisBackendConfig) -> RedisBackendConfig {
        config.with_replica_acks(1, Duration::from_millis(1_000))
    }

    async fn backend() -> Arc<dyn Backend> {
        connect_cluster(acks).await
    }

    async fn capped(cap: usize) -> Arc<dyn Backend> {
        connect_cluster(move |config| {
            acks(config)
                .with_topic_cap(cap)
                .with_retention(Retention::Settled { keep: 0 })
        })
        .await
    }

    messaging_core::backend_conformance_tests!(backend, capped: capped);
}

/// A plain connection to the first seed node.
fn seed() -> redis::Connection {
    let seed = support::first_seed(&messaging_test_support::redis_cluster_url());
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

/// Runs `args` on every node of the cluster (ACLs are per node: a cluster
/// does not propagate them).
fn on_every_node(args: &[&str]) {
    let mut connection = seed();
    let nodes: String = redis::cmd("CLUSTER")
        .arg("NODES")
        .query(&mut connection)
        .unwrap();
    for line in nodes.lines() {
        let address = line.split_whitespace().nth(1).unwrap();
        let address = address.split('@').next().unwrap();
        let client = redis::Client::open(format!("redis://{address}")).unwrap();
        let mut node = client.get_connection().unwrap();
        let mut command = redis::cmd(args[0]);
        for arg in &args[1..] {
            command.arg(*arg);
        }
        let _: redis::Value = command.query(&mut node).unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restricted_redis_user_in_the_cluster_url_can_do_everything() {
    let suffix = format!("{:08x}", fastrand::u32(..));
    let (user, prefix) = (format!("shop{suffix}"), format!("shop{suffix}"));
    let key_pattern = format!("~{{{prefix}:*");
    let plain_pattern = format!("~{prefix}:*");
    // The user docs/redis.md recommends for one server, unchanged: what the
    // cluster client needs (CLUSTER SLOTS) is not in @dangerous.
    on_every_node(&[
        "ACL",
        "SETUSER",
        &user,
        "on",
        ">s3cret",
        &key_pattern,
        &plain_pattern,
        "+@all",
        "-@dangerous",
        "+config|get",
    ]);
    let url = messaging_test_support::redis_cluster_url().replace(
        "redis+cluster://",
        &format!("redis+cluster://{user}:s3cret@"),
    );
    let backend =
        RedisBackend::connect(RedisBackendConfig::new(url.as_str()).with_key_prefix(&prefix))
            .await
            .expect("the restricted user connects");
    for i in 0..6 {
        let topic = Topic::new(format!("acl.t{i}")).unwrap();
        backend
            .ensure_group(&topic, "g", messaging_core::StartFrom::Earliest)
            .await
            .unwrap();
        backend
            .publish(&Message::new(topic.as_str(), json!({"n": i})).unwrap())
            .await
            .unwrap();
        backend
            .schedule(
                &Message::new(topic.as_str(), json!({"later": i})).unwrap(),
                chrono::Utc::now() + chrono::Duration::milliseconds(20),
            )
            .await
            .unwrap();
    }
    for i in 0..6 {
        let topic = Topic::new(format!("acl.t{i}")).unwrap();
        let consumer = messaging_core::ConsumerId::new(topic.clone(), "g", "c");
        let mut taken = Vec::new();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while taken.len() < 2 && tokio::time::Instant::now() < deadline {
            taken.extend(
                backend
                    .read(
                        &consumer,
                        &messaging_core::ReadOptions::new_entries(10, Duration::from_millis(200)),
                    )
                    .await
                    .unwrap(),
            );
        }
        assert_eq!(
            taken.len(),
            2,
            "{topic}: the message and the promoted delayed one"
        );
        for delivery in &taken {
            assert_eq!(
                backend.ack(&delivery.receipt).await.unwrap(),
                messaging_core::Settlement::Settled
            );
        }
        assert!(backend.delete_topic(&topic).await.unwrap());
    }
    backend.health().await.expect("health");
    drop(backend);
    let wrong =
        RedisBackendConfig::new(url.replace(":s3cret@", ":wrong@")).with_key_prefix(&prefix);
    let error = RedisBackend::connect(wrong)
        .await
        .expect_err("wrong password");
    assert!(!error.is_transient(), "{error}");
    on_every_node(&["ACL", "DELUSER", &user]);
}

/// Plays the TLS client for `rediss_cluster_urls_connect_over_tls` when this
/// binary is run again with the child role `tls-cluster-client` (and
/// `SSL_CERT_FILE` naming the roots to trust); does nothing in a normal run.
#[test]
fn tls_cluster_child() {
    if std::env::var(support::CHILD_ROLE).as_deref() != Ok("tls-cluster-client") {
        return;
    }
    support::run_child(async {
        let url = std::env::var("REDIS_TLS_CLUSTER_URL").expect("REDIS_TLS_CLUSTER_URL");
        let backend = support::backend(&url).await;
        // Topics on every master, each a full round trip.
        for i in 0..6 {
            let topic = Topic::new(format!("tls.t{i}")).unwrap();
            backend
                .ensure_group(&topic, "g", messaging_core::StartFrom::Earliest)
                .await
                .expect("group");
            let sent = Message::new(topic.as_str(), json!({"n": i})).unwrap();
            backend.publish(&sent).await.expect("publish");
            let consumer = messaging_core::ConsumerId::new(topic.clone(), "g", "c");
            let got = backend
                .read(
                    &consumer,
                    &messaging_core::ReadOptions::new_entries(1, Duration::from_secs(5)),
                )
                .await
                .expect("read");
            assert_eq!(got[0].message.id, sent.id);
            assert_eq!(
                backend.ack(&got[0].receipt).await.expect("ack"),
                messaging_core::Settlement::Settled
            );
            assert!(backend.delete_topic(&topic).await.expect("delete"));
        }
        backend.health().await.expect("health");
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rediss_cluster_urls_connect_over_tls() {
    let certificates = support::temp_dir("cluster-tls");
    support::make_test_certificates(&certificates);
    let (cluster, url) = tokio::task::spawn_blocking({
        let certificates = certificates.clone();
        move || support::OwnCluster::start(Some(&certificates))
    })
    .await
    .expect("start");
    assert!(url.starts_with("rediss+cluster://"), "{url}");
    let ca = certificates.join("ca.crt").to_string_lossy().into_owned();
    let run = |roots: String| {
        let url = url.clone();
        tokio::task::spawn_blocking(move || {
            support::ChildProcess::spawn(
                "tls_cluster_child",
                "tls-cluster-client",
                &[("REDIS_TLS_CLUSTER_URL", url), ("SSL_CERT_FILE", roots)],
            )
            .wait_success(Duration::from_secs(60))
        })
    };
    assert!(
        run(ca).await.expect("wait"),
        "the client trusting the test CA works on every master over TLS"
    );
    // Without the test CA the certificates must be refused: TLS is really checked.
    let empty = certificates.join("no-roots.pem");
    std::fs::write(&empty, "").expect("write an empty root store");
    assert!(
        !run(empty.to_string_lossy().into_owned())
            .await
            .expect("wait"),
        "a client that does not trust the CA must fail"
    );
    drop(cluster);
    let _ = std::fs::remove_dir_all(&certificates);
}

/// What `docs/scaling.md` ("Moving from one node to a cluster") tells operators
/// to do, done: a topic with a consumer group, unsettled deliveries, delayed
/// messages and a dead letter on one server, copied into a fresh cluster with
/// `redis-cli --cluster import … --cluster-copy`, then served from the cluster
/// by a backend given the cluster URL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_topic_moved_from_one_node_into_a_cluster_keeps_everything() {
    let single = support::RedisServer::start();
    let prefix = support::unique_prefix();
    let topic = Topic::new("moving.orders").unwrap();
    let old =
        support::backend_with(RedisBackendConfig::new(single.url()).with_key_prefix(&prefix)).await;
    old.ensure_group(&topic, "billing", messaging_core::StartFrom::Earliest)
        .await
        .unwrap();
    let published: Vec<Message> = (0..10)
        .map(|n| Message::new(topic.as_str(), json!({"n": n})).unwrap())
        .collect();
    old.publish_batch(&published).await.unwrap();
    let consumer = messaging_core::ConsumerId::new(topic.clone(), "billing", "old-worker");
    // Three delivered and left unsettled (the worker was stopped mid-flight),
    // one dead-lettered; six still waiting.
    let taken = old
        .read(
            &consumer,
            &messaging_core::ReadOptions::new_entries(4, Duration::ZERO),
        )
        .await
        .unwrap();
    assert_eq!(taken.len(), 4);
    old.dead_letter(&taken[3].receipt, &taken[3].message, "bad")
        .await
        .unwrap();
    let later = Message::new(topic.as_str(), json!({"later": true})).unwrap();
    // Due long after the move: still waiting on the cluster (the promoter on a
    // cluster is the conformance suite's).
    let due = chrono::Utc::now() + chrono::Duration::hours(1);
    old.schedule(&later, due).await.unwrap();
    drop(old);

    let (cluster, url) = tokio::task::spawn_blocking(|| support::OwnCluster::start(None))
        .await
        .unwrap();
    let seed = support::first_seed(&url);
    let imported = tokio::task::spawn_blocking({
        let source = format!("127.0.0.1:{}", single.port);
        move || {
            std::process::Command::new("redis-cli")
                .args([
                    "--cluster",
                    "import",
                    &seed,
                    "--cluster-from",
                    &source,
                    "--cluster-copy",
                ])
                .output()
                .expect("run redis-cli --cluster import")
        }
    })
    .await
    .unwrap();
    assert!(
        imported.status.success(),
        "import failed: {}{}",
        String::from_utf8_lossy(&imported.stdout),
        String::from_utf8_lossy(&imported.stderr)
    );

    let new =
        support::backend_with(RedisBackendConfig::new(url.as_str()).with_key_prefix(&prefix)).await;
    assert_eq!(new.list_topics().await.unwrap(), vec![topic.clone()]);
    let stats = new.stats(&topic).await.unwrap();
    assert_eq!(stats.length, 10, "{stats:?}");
    assert_eq!(stats.scheduled, 1, "{stats:?}");
    assert_eq!(stats.dead_lettered, 1, "{stats:?}");
    assert_eq!(stats.groups[0].pending, 3, "{stats:?}");
    assert_eq!(stats.groups[0].lag, 6, "{stats:?}");
    // The stopped worker's deliveries are reclaimed on the cluster and the
    // waiting ones read, each once.
    let fresh = messaging_core::ConsumerId::new(topic.clone(), "billing", "new-worker");
    let reclaimed = new.reclaim_idle(&fresh, Duration::ZERO, 10).await.unwrap();
    assert_eq!(reclaimed.len(), 3);
    for delivery in &reclaimed {
        new.ack(&delivery.receipt).await.unwrap();
    }
    let mut seen: HashSet<uuid::Uuid> = reclaimed.iter().map(|d| d.message.id).collect();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while seen.len() < 9 && tokio::time::Instant::now() < deadline {
        for delivery in new
            .read(
                &fresh,
                &messaging_core::ReadOptions::new_entries(10, Duration::from_millis(500)),
            )
            .await
            .unwrap()
        {
            seen.insert(delivery.message.id);
            new.ack(&delivery.receipt).await.unwrap();
        }
    }
    let expected: HashSet<uuid::Uuid> = published[..3]
        .iter()
        .chain(&published[4..])
        .map(|m| m.id)
        .collect();
    assert_eq!(seen, expected, "every waiting and unsettled message");
    let after = new.stats(&topic).await.unwrap();
    assert_eq!(
        (after.groups[0].pending, after.groups[0].lag),
        (0, 0),
        "{after:?}"
    );
    assert_eq!(
        after.scheduled, 1,
        "the delayed message still waits for its time"
    );
    let dead = new.dead_letters(&topic, 10).await.unwrap();
    assert_eq!(dead[0].message.id, published[3].id);
    drop(cluster);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_partitioned_topic_spreads_over_every_master() {
    let redis = connect_cluster(|config| config).await;
    let prefix = redis.config().key_prefix.clone();
    let backend = Arc::new(messaging_core::Partitioned::from_arc(redis));
    let ranges = masters_by_slot();
    let master_of = |key: &str| {
        let slot = key_slot(key);
        ranges
            .iter()
            .find(|(start, end, _)| (*start..=*end).contains(&slot))
            .map(|(_, _, master)| master.clone())
            .unwrap()
    };
    let topic = Topic::new("spread.partitioned").unwrap();
    // 24 partitions land on all three masters (the odds of missing one: 3 × (2/3)^24).
    backend.create_partitioned_topic(&topic, 24).await.unwrap();
    let service = messaging_core::MessagingService::new(backend.clone());
    for n in 0..240 {
        service
            .publish(topic.as_str(), json!({ "n": n }))
            .await
            .unwrap();
    }
    // Each partition's stream holds its share, on the master of its slot.
    let mut masters = HashSet::new();
    for index in 0..24 {
        let stream = format!("{{{prefix}:{}}}:stream", topic.partition(index).unwrap());
        let master = master_of(&stream);
        let mut node = redis::Client::open(format!("redis://{master}"))
            .unwrap()
            .get_connection()
            .unwrap();
        let length: u64 = redis::cmd("XLEN").arg(&stream).query(&mut node).unwrap();
        assert_eq!(length, 10, "{stream} on {master}");
        masters.insert(master);
    }
    assert_eq!(masters.len(), 3, "the partitions landed on {masters:?}");
    assert_eq!(backend.stats(&topic).await.unwrap().length, 240);
    assert_eq!(backend.list_topics().await.unwrap(), vec![topic.clone()]);

    // One consumer group drains every partition.
    let (count_tx, mut count) = tokio::sync::watch::channel(0usize);
    let seen = Arc::new(std::sync::Mutex::new(HashSet::new()));
    let record = seen.clone();
    service
        .subscribe_with(
            topic.as_str(),
            messaging_core::SubscribeOptions::new("g")
                .with_block_timeout(Duration::from_millis(200)),
            move |message: Message| {
                let record = record.clone();
                let count_tx = count_tx.clone();
                async move {
                    let mut seen = record.lock().unwrap();
                    seen.insert(message.payload["n"].as_u64().unwrap());
                    count_tx.send_replace(seen.len());
                    Ok::<(), messaging_core::HandlerError>(())
                }
            },
        )
        .await
        .unwrap();
    tokio::time::timeout(Duration::from_secs(60), count.wait_for(|n| *n >= 240))
        .await
        .expect("every message consumed")
        .unwrap();
    service.shutdown().await;
    assert!(backend.delete_topic(&topic).await.unwrap());
    assert!(backend.list_topics().await.unwrap().is_empty());
}
