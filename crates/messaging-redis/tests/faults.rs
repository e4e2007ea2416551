//! Fault tests: each starts its own redis-server on a free loopback port, and
//! some run consumers in child processes (this test binary run again, see
//! `fault_child`) to kill or stop them.
//!
//! They run one at a time (they load both cores) and take about a minute in all.

mod support;

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use messaging_core::{
    Backend, BackendAdmin, HandlerError, MessageBackend, MessagingService, RetryPolicy, StartFrom,
    SubscribeOptions,
};
use messaging_model::Message;
use messaging_redis::{RedisBackend, RedisBackendConfig};
use redis::AsyncCommands;
use serde_json::json;
use support::{CHILD_ROLE, ChildProcess, RedisServer, raw, wait_for};
use uuid::Uuid;

/// The fault tests share the machine's two cores: one at a time.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

const TOPIC: &str = "faults.orders";
const GROUP: &str = "workers";

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("{name} not set for the child"))
}

fn stream_key(prefix: &str, topic: &str) -> String {
    format!("{{{prefix}:{topic}}}:stream")
}

// ---------------------------------------------------------------------------
// Child processes.

/// Plays the role named in `MESSAGING_REDIS_TEST_CHILD` when this binary is run
/// again by a fault test; does nothing in a normal run.
#[test]
fn fault_child() {
    let Ok(role) = std::env::var(CHILD_ROLE) else {
        return;
    };
    if std::env::var_os("TEST_CHILD_LOGS").is_some() {
        tracing_subscriber::fmt()
            .with_writer(std::io::stderr)
            .init();
    }
    support::run_child(async {
        match role.as_str() {
            "consumer" => support::churn::consumer_child().await,
            "promoter" => promoter_child().await,
            other => panic!("unknown child role {other}"),
        }
    });
}

/// A backend that knows `TOPIC` (so its background task promotes it) and idles.
async fn promoter_child() {
    let config = RedisBackendConfig::new(env("REDIS_URL"))
        .with_key_prefix(env("PREFIX"))
        .with_promote_interval(Duration::from_millis(100));
    let backend = RedisBackend::connect(config).await.expect("connect");
    backend
        .create_topic(&support::topic(TOPIC))
        .await
        .expect("create topic");
    futures::future::pending::<()>().await;
}

fn consumer_env(
    server: &RedisServer,
    prefix: &str,
    consumer: &str,
    effects: &str,
    handle_ms: u64,
    visibility_ms: u64,
) -> Vec<(&'static str, String)> {
    support::churn::ConsumerEnv {
        url: &server.url(),
        prefix,
        topic: TOPIC,
        group: GROUP,
        consumer,
        effects,
        handle_ms,
        visibility_ms,
    }
    .vars()
}

async fn publish_all(
    backend: &RedisBackend,
    payloads: impl IntoIterator<Item = serde_json::Value>,
) -> Vec<Uuid> {
    let messages: Vec<Message> = payloads
        .into_iter()
        .map(|payload| Message::new(TOPIC, payload).expect("message"))
        .collect();
    for chunk in messages.chunks(500) {
        backend.publish_batch(chunk).await.expect("publish");
    }
    messages.iter().map(|m| m.id).collect()
}

async fn settled(backend: &RedisBackend) -> bool {
    let stats = backend.stats(&support::topic(TOPIC)).await.expect("stats");
    stats.groups.iter().all(|g| g.pending == 0 && g.lag == 0)
}

// ---------------------------------------------------------------------------
// 1. Consumers killed with SIGKILL while handling, and restarted.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_consumers_lose_nothing_and_duplicate_only_what_was_in_flight() {
    let _one = ONE_AT_A_TIME.lock().await;
    let server = RedisServer::start();
    support::churn::killed_consumers(&server.url(), "fault_child", TOPIC, 10_000, 40).await;
}

// ---------------------------------------------------------------------------
// 2. A consumer stopped past its visibility timeout, its messages reclaimed,
//    then continued: it changes nothing.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_consumer_cannot_settle_what_was_reclaimed_from_it() {
    let _one = ONE_AT_A_TIME.lock().await;
    let server = RedisServer::start();
    let prefix = support::unique_prefix();
    let backend =
        support::backend_with(RedisBackendConfig::new(server.url()).with_key_prefix(&prefix)).await;
    backend
        .ensure_group(&support::topic(TOPIC), GROUP, StartFrom::Earliest)
        .await
        .expect("group");
    const TOTAL: usize = 300;
    // Every 10th message is poison (dead-lettered at its first failure), so
    // stopped handlers hold some of them too.
    let payloads = (0..TOTAL).map(|i| {
        if i % 10 == 3 {
            json!({ "n": i, "poison": true })
        } else {
            json!({ "n": i })
        }
    });
    let ids = publish_all(&backend, payloads).await;
    let poison: BTreeSet<Uuid> = ids
        .iter()
        .enumerate()
        .filter(|(i, _)| i % 10 == 3)
        .map(|(_, id)| *id)
        .collect();

    let effects = "effects";
    let handled_key = support::churn::handled_key(effects);
    let visibility_ms = 1_000;
    let a = ChildProcess::spawn(
        "fault_child",
        "consumer",
        &consumer_env(&server, &prefix, "A", effects, 40, visibility_ms),
    );
    let mut redis = raw(&server.url()).await;
    wait_for("A to handle some messages", Duration::from_secs(30), || {
        let mut redis = redis.clone();
        async move {
            let handled: usize = redis
                .hlen(support::churn::handled_key(effects))
                .await
                .expect("hlen");
            (handled >= 24).then_some(())
        }
    })
    .await;
    a.signal("STOP");
    let stopped_at = Instant::now();
    // What A holds now stays with it until reclaimed (a blocked read may still
    // hand it more while it is stopped).
    let held_by_a = |mut redis: redis::aio::MultiplexedConnection, key: String| async move {
        let pending: Vec<(String, String, u64, u64)> = redis::cmd("XPENDING")
            .arg(&key)
            .arg(GROUP)
            .arg("-")
            .arg("+")
            .arg(1000)
            .arg("A")
            .query_async(&mut redis)
            .await
            .expect("xpending");
        pending.len()
    };
    let key = stream_key(&prefix, TOPIC);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let held_at_stop = held_by_a(redis.clone(), key.clone()).await;
    assert!(held_at_stop > 0, "A held nothing when stopped");

    let b = ChildProcess::spawn(
        "fault_child",
        "consumer",
        &consumer_env(&server, &prefix, "B", effects, 40, visibility_ms),
    );
    wait_for(
        "B to reclaim everything A held and finish",
        Duration::from_secs(60),
        || {
            let redis = redis.clone();
            let key = key.clone();
            let backend = backend.clone();
            async move {
                let handled: usize = redis
                    .clone()
                    .hlen(support::churn::handled_key(effects))
                    .await
                    .expect("hlen");
                (handled == TOTAL && held_by_a(redis, key).await == 0 && settled(&backend).await)
                    .then_some(())
            }
        },
    )
    .await;
    assert!(
        stopped_at.elapsed() > Duration::from_millis(visibility_ms),
        "reclaimed before the visibility timeout"
    );

    a.signal("CONT");
    let lost_key = support::churn::lost_key(effects, "A");
    let lost: u64 = wait_for(
        "A to try settling what it held",
        Duration::from_secs(30),
        || {
            let mut redis = redis.clone();
            let lost_key = lost_key.clone();
            async move {
                let lost: Option<u64> = redis.get(&lost_key).await.expect("get");
                lost.filter(|lost| *lost as usize >= held_at_stop.min(1))
            }
        },
    )
    .await;
    // Let A finish whatever it still had; it must not settle or re-run anything.
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    drop(b);
    drop(a);

    let by_consumer: HashMap<String, u64> = redis
        .hgetall(support::churn::by_consumer_key(effects))
        .await
        .expect("hgetall");
    for (key, count) in &by_consumer {
        assert_eq!(*count, 1, "{key} handled {count} times by one consumer");
    }
    let counts: HashMap<String, u64> = redis.hgetall(&handled_key).await.expect("hgetall");
    assert_eq!(counts.len(), TOTAL);
    let twice = counts.values().filter(|n| **n > 1).count();
    eprintln!(
        "A held {held_at_stop} when stopped; {twice} messages handled by both; {lost} settlements fenced"
    );
    assert!(counts.values().all(|n| *n <= 2));

    let dead = backend
        .dead_letters(&support::topic(TOPIC), 10_000)
        .await
        .expect("dead letters");
    let dead_ids: Vec<Uuid> = dead.iter().map(|d| d.message.id).collect();
    assert_eq!(
        dead_ids.len(),
        poison.len(),
        "a message was dead-lettered twice (or not at all)"
    );
    assert_eq!(dead_ids.into_iter().collect::<BTreeSet<_>>(), poison);
    assert!(settled(&backend).await);
    let stats = backend.stats(&support::topic(TOPIC)).await.expect("stats");
    assert_eq!(stats.scheduled, 0, "a stale settlement scheduled a retry");
}

// ---------------------------------------------------------------------------
// 3. redis-server killed while producing (AOF, fsync always), then restarted.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_acknowledged_publish_survives_a_redis_crash() {
    let _one = ONE_AT_A_TIME.lock().await;
    let server = RedisServer::start_with(&["--appendonly", "yes", "--appendfsync", "always"]);
    let config = RedisBackendConfig::new(server.url())
        .with_key_prefix(support::unique_prefix())
        .with_command_timeout(Duration::from_secs(2));
    let backend = Arc::new(support::backend_with(config).await);
    let service = Arc::new(MessagingService::new(backend.clone()));
    let received = Arc::new(Mutex::new(HashSet::new()));
    let seen = received.clone();
    service
        .subscribe_with(
            TOPIC,
            SubscribeOptions::new(GROUP)
                .with_visibility_timeout(Duration::from_millis(1_000))
                .with_block_timeout(Duration::from_millis(200)),
            move |message: Message| {
                let seen = seen.clone();
                async move {
                    seen.lock().expect("lock").insert(message.id);
                    Ok::<(), HandlerError>(())
                }
            },
        )
        .await
        .expect("subscribe");

    let acknowledged = Arc::new(Mutex::new(Vec::new()));
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let producer = {
        let service = service.clone();
        let acknowledged = acknowledged.clone();
        tokio::spawn(async move {
            let mut failures = 0u32;
            let mut n = 0u64;
            while !*stopped.borrow() {
                n += 1;
                match service.publish(TOPIC, json!({ "n": n })).await {
                    Ok(id) => acknowledged
                        .lock()
                        .expect("lock")
                        .push((id, Instant::now())),
                    Err(_) => {
                        failures += 1;
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                }
            }
            failures
        })
    };
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    let before_crash = acknowledged.lock().expect("lock").len();
    let mut server = tokio::task::spawn_blocking(move || {
        let mut server = server;
        server.kill();
        std::thread::sleep(Duration::from_millis(300));
        server.restart();
        server
    })
    .await
    .expect("restart");
    let restarted_at = Instant::now();
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    stop.send_replace(true);
    let failures = producer.await.expect("producer");
    let acknowledged = acknowledged.lock().expect("lock").clone();
    let after_restart = acknowledged
        .iter()
        .filter(|(_, at)| *at > restarted_at)
        .count();
    eprintln!(
        "{} publishes acknowledged ({before_crash} before the crash, {after_restart} after the restart), {failures} failed",
        acknowledged.len()
    );
    assert!(before_crash > 0);
    assert!(after_restart > 0, "the backend did not reconnect by itself");

    let expected: HashSet<Uuid> = acknowledged.iter().map(|(id, _)| *id).collect();
    wait_for(
        "every acknowledged message delivered",
        Duration::from_secs(60),
        || {
            let received = received.clone();
            let expected = &expected;
            async move {
                expected
                    .is_subset(&received.lock().expect("lock"))
                    .then_some(())
            }
        },
    )
    .await;
    service.shutdown().await;
    assert!(backend.health().await.is_ok());
    server.kill();
}

// ---------------------------------------------------------------------------
// 4. Poison messages land in the dead-letter queue once each; the rest flows.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poison_messages_are_dead_lettered_once_while_the_rest_flows() {
    let _one = ONE_AT_A_TIME.lock().await;
    let server = RedisServer::start();
    let backend: Arc<dyn Backend> = Arc::new(support::backend(&server.url()).await);
    const TOTAL: usize = 2_000;
    let is_poison = |n: u64| n % 100 == 42;
    let handled = Arc::new(Mutex::new(HashMap::<Uuid, u32>::new()));
    let services: Vec<MessagingService> = (0..2)
        .map(|_| {
            MessagingService::new(backend.clone())
                .with_max_retry(2)
                .expect("max retry")
        })
        .collect();
    for service in &services {
        let handled = handled.clone();
        let options = SubscribeOptions::new(GROUP)
            .with_concurrency(8)
            .with_visibility_timeout(Duration::from_secs(5))
            .with_block_timeout(Duration::from_millis(200))
            .with_retry(RetryPolicy::exponential(
                Duration::from_millis(10),
                Duration::from_millis(50),
            ));
        service
            .subscribe_with(TOPIC, options, move |message: Message| {
                let handled = handled.clone();
                async move {
                    *handled.lock().expect("lock").entry(message.id).or_default() += 1;
                    if is_poison(message.payload["n"].as_u64().unwrap_or_default()) {
                        return Err(HandlerError::retry("always fails"));
                    }
                    Ok(())
                }
            })
            .await
            .expect("subscribe");
    }
    let publisher = &services[0];
    let mut poison = BTreeSet::new();
    let mut good = BTreeSet::new();
    for chunk in (0..TOTAL as u64).collect::<Vec<_>>().chunks(200) {
        let ids = publisher
            .publish_batch(TOPIC, chunk.iter().map(|n| json!({ "n": n })).collect())
            .await
            .expect("publish");
        for (n, id) in chunk.iter().zip(ids) {
            if is_poison(*n) {
                poison.insert(id)
            } else {
                good.insert(id)
            };
        }
    }
    let dead = wait_for(
        "every good message handled and every poison dead-lettered",
        Duration::from_secs(60),
        || {
            let handled = handled.clone();
            let backend = backend.clone();
            let good = &good;
            let poison = &poison;
            async move {
                let all_good = good
                    .iter()
                    .all(|id| handled.lock().expect("lock").contains_key(id));
                let dead = backend
                    .dead_letters(&support::topic(TOPIC), 10_000)
                    .await
                    .expect("dead letters");
                (all_good && dead.len() >= poison.len()).then_some(dead)
            }
        },
    )
    .await;
    // Nothing more may arrive in the dead-letter queue.
    tokio::time::sleep(Duration::from_millis(300)).await;
    for service in &services {
        service.shutdown().await;
    }
    let dead_again = backend
        .dead_letters(&support::topic(TOPIC), 10_000)
        .await
        .expect("dead letters");
    assert_eq!(dead_again.len(), dead.len());
    let dead_ids: Vec<Uuid> = dead.iter().map(|d| d.message.id).collect();
    assert_eq!(
        dead_ids.len(),
        poison.len(),
        "a poison message was dead-lettered twice"
    );
    assert_eq!(dead_ids.iter().copied().collect::<BTreeSet<_>>(), poison);
    for letter in &dead {
        assert_eq!(letter.attempts, 3);
        assert_eq!(letter.group, GROUP);
        assert_eq!(letter.error, "always fails");
    }
    let handled = handled.lock().expect("lock").clone();
    for id in &poison {
        assert_eq!(
            handled[id], 3,
            "poison {id} attempted {} times",
            handled[id]
        );
    }
    for id in &good {
        assert_eq!(
            handled[id], 1,
            "good message {id} handled {} times",
            handled[id]
        );
    }
    let stats = backend.stats(&support::topic(TOPIC)).await.expect("stats");
    assert_eq!((stats.groups[0].pending, stats.scheduled), (0, 0));
}

// ---------------------------------------------------------------------------
// 5. Delayed messages promoted by two processes, one killed over and over.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delayed_messages_survive_a_promoter_killed_over_and_over() {
    let _one = ONE_AT_A_TIME.lock().await;
    let server = RedisServer::start();
    let prefix = support::unique_prefix();
    const TOTAL: usize = 1_500;
    let mut due = HashMap::new();
    {
        // Scheduled by a backend that is gone before anything is due, so only the
        // two promoter processes can move them.
        let scheduler =
            support::backend_with(RedisBackendConfig::new(server.url()).with_key_prefix(&prefix))
                .await;
        let start = Utc::now();
        for i in 0..TOTAL {
            let at = start + chrono::Duration::milliseconds(600 + fastrand::i64(0..4_000));
            let message = Message::new(TOPIC, json!({ "i": i })).expect("message");
            scheduler.schedule(&message, at).await.expect("schedule");
            due.insert(message.id, at);
        }
    }
    let env = vec![("REDIS_URL", server.url()), ("PREFIX", prefix.clone())];
    let mut flaky = ChildProcess::spawn("fault_child", "promoter", &env);
    let _steady = ChildProcess::spawn("fault_child", "promoter", &env);

    let key = stream_key(&prefix, TOPIC);
    let mut redis = raw(&server.url()).await;
    let mut received: Vec<(Uuid, DateTime<Utc>)> = Vec::new();
    let mut last_id = "0".to_owned();
    let mut next_kill = Instant::now() + Duration::from_millis(300);
    let mut kills = 0;
    let deadline = Instant::now() + Duration::from_secs(60);
    while received.len() < TOTAL && Instant::now() < deadline {
        if Instant::now() >= next_kill {
            flaky.restart();
            kills += 1;
            next_kill = Instant::now() + Duration::from_millis(200 + fastrand::u64(..400));
        }
        let reply: Option<redis::streams::StreamReadReply> = redis::cmd("XREAD")
            .arg("COUNT")
            .arg(500)
            .arg("BLOCK")
            .arg(50)
            .arg("STREAMS")
            .arg(&key)
            .arg(&last_id)
            .query_async(&mut redis)
            .await
            .expect("xread");
        let now = Utc::now();
        for stream in reply.map(|reply| reply.keys).unwrap_or_default() {
            for entry in stream.ids {
                let json: String = entry.get("m").expect("field m");
                let message: Message = serde_json::from_str(&json).expect("message");
                received.push((message.id, now));
                last_id = entry.id;
            }
        }
    }
    drop(flaky);
    // Anything promoted twice would show up now.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let length: usize = redis.xlen(&key).await.expect("xlen");
    let left: usize = redis
        .zcard(format!("{{{prefix}:{TOPIC}}}:delayed"))
        .await
        .expect("zcard");

    let distinct: HashSet<Uuid> = received.iter().map(|(id, _)| *id).collect();
    assert_eq!(left, 0, "{left} delayed messages were never promoted");
    assert_eq!(
        distinct.len(),
        TOTAL,
        "lost {} delayed messages",
        TOTAL - distinct.len()
    );
    assert_eq!(length, TOTAL, "a delayed message was promoted twice");
    let mut lateness: Vec<i64> = Vec::new();
    for (id, at) in &received {
        assert!(
            *at >= due[id],
            "message {id} promoted {} early",
            due[id] - *at
        );
        lateness.push((*at - due[id]).num_milliseconds());
    }
    lateness.sort_unstable();
    eprintln!(
        "{kills} promoter kills; lateness p50 {} ms, p99 {} ms, max {} ms",
        lateness[lateness.len() / 2],
        lateness[lateness.len() * 99 / 100],
        lateness[lateness.len() - 1]
    );
    assert!(kills >= 3, "the promoter was killed only {kills} times");
}
