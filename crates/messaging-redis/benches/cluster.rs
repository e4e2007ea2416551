//! Redis Cluster against one node, side by side in one run: the same work
//! through `MessagingService` (default `SubscribeOptions`) on a 3-master +
//! 3-replica cluster on loopback (`scripts/redis-cluster.sh`, appendonly) and on
//! one redis-server with the same persistence (appendonly, everysec).
//!
//! Two loads:
//! - **several topics**: `TOPICS` topics, which land on all three masters (the
//!   bench checks that), each with its own producer and one subscriber;
//! - **one topic**: one topic with `TOPICS` producers and one subscriber, plain
//!   on one node (the baseline) against the same topic in `TOPICS` partitions
//!   (`messaging_core::Partitioned`) on the cluster and on one node (what the
//!   partitioning itself costs).
//!
//! Run: `cargo bench -p messaging-redis --bench cluster` (`make bench` runs it).
//! `BENCH_ROUNDS` changes the rounds (default 3, median shown).

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use messaging_core::{HandlerError, MessagingService};
use messaging_model::{Message, Topic};
use messaging_redis::{RedisBackend, RedisBackendConfig};
use serde_json::json;
use tokio::sync::Notify;

#[path = "../tests/support/mod.rs"]
mod support;

const TOPICS: usize = 6;
/// Messages per topic in each section.
const PER_TOPIC: usize = 20_000;
const BATCH: usize = 100;
const PREFIX: &str = "bench";

fn rounds_wanted() -> usize {
    std::env::var("BENCH_ROUNDS")
        .ok()
        .and_then(|rounds| rounds.parse().ok())
        .filter(|rounds: &usize| *rounds > 0)
        .unwrap_or(3)
}

fn payload(n: usize) -> serde_json::Value {
    json!({"order": n, "customer": "c-00042", "note": "x".repeat(120)})
}

struct Target {
    name: &'static str,
    url: String,
    load: Load,
}

/// Each section's rounds over every target, then the medians and each
/// target's ratio to the first.
async fn compare(targets: &[Target]) {
    for (section, which) in [("publish", 0), ("end to end", 1)] {
        let mut rates = vec![Vec::new(); targets.len()];
        for round in 0..rounds_wanted() {
            for (target, rates) in targets.iter().zip(&mut rates) {
                let rate = if which == 0 {
                    publish(&target.url, target.load, round).await
                } else {
                    end_to_end(&target.url, target.load, round).await
                };
                rates.push(rate);
            }
        }
        let medians: Vec<f64> = rates.into_iter().map(median).collect();
        let shown: Vec<String> = targets
            .iter()
            .zip(&medians)
            .map(|(target, rate)| {
                format!("{} {rate:.0} msg/s ({:.2})", target.name, rate / medians[0])
            })
            .collect();
        println!("  {section}: {}", shown.join(", "));
    }
}

/// What a round loads.
#[derive(Clone, Copy)]
enum Load {
    /// `TOPICS` plain topics.
    Topics,
    /// One topic: plain (`None`) or in this many partitions.
    OneTopic(Option<u16>),
}

async fn service(url: &str, load: Load) -> MessagingService {
    // The servers are the bench's own; rounds use topics of their own.
    let backend = RedisBackend::connect(RedisBackendConfig::new(url).with_key_prefix(PREFIX))
        .await
        .unwrap_or_else(|error| panic!("cannot reach {url}: {error}"));
    match load {
        Load::OneTopic(Some(_)) => {
            MessagingService::new(Arc::new(messaging_core::Partitioned::new(backend)))
        }
        _ => MessagingService::new(Arc::new(backend)),
    }
}

fn topics(round: usize) -> Vec<Topic> {
    (0..TOPICS)
        .map(|i| Topic::new(format!("bench.r{round}.t{i}")).unwrap())
        .collect()
}

/// The topics of a round (created partitioned where the load says so) and, per
/// producer, the topic it publishes to.
async fn prepare(service: &MessagingService, load: Load, round: usize) -> (Vec<Topic>, Vec<Topic>) {
    match load {
        Load::Topics => {
            let topics = topics(round);
            (topics.clone(), topics)
        }
        Load::OneTopic(partitions) => {
            let topic = Topic::new(format!("bench.r{round}.one")).unwrap();
            if let Some(partitions) = partitions {
                service
                    .create_partitioned_topic(topic.as_str(), partitions)
                    .await
                    .expect("create the partitioned topic");
            }
            (vec![topic.clone()], vec![topic; TOPICS])
        }
    }
}

/// A producer per entry of `producers`, all at once, each publishing
/// `PER_TOPIC` messages in batches of `BATCH` (without partition keys).
async fn produce(service: &MessagingService, producers: &[Topic]) {
    futures::future::join_all(producers.iter().map(|topic| async move {
        for chunk in (0..PER_TOPIC).collect::<Vec<_>>().chunks(BATCH) {
            let batch: Vec<_> = chunk.iter().copied().map(payload).collect();
            service.publish_batch(topic, batch).await.expect("publish");
        }
    }))
    .await;
}

/// Every producer publishing its batches at once; messages/s.
async fn publish(url: &str, load: Load, round: usize) -> f64 {
    let service = service(url, load).await;
    let (topics, producers) = prepare(&service, load, round).await;
    let started = Instant::now();
    produce(&service, &producers).await;
    let rate = (TOPICS * PER_TOPIC) as f64 / started.elapsed().as_secs_f64();
    for topic in &topics {
        service.delete_topic(topic).await.expect("delete");
    }
    service.shutdown().await;
    rate
}

/// A subscriber per topic (default options) and the load's producers;
/// messages/s from the first publish to the last handled.
async fn end_to_end(url: &str, load: Load, round: usize) -> f64 {
    let service = service(url, load).await;
    let (topics, producers) = prepare(&service, load, round).await;
    let total = TOPICS * PER_TOPIC;
    let handled = Arc::new(AtomicUsize::new(0));
    let done = Arc::new(Notify::new());
    for topic in &topics {
        let (handled, done) = (handled.clone(), done.clone());
        service
            .subscribe(topic.as_str(), move |_message: Message| {
                let (handled, done) = (handled.clone(), done.clone());
                async move {
                    if handled.fetch_add(1, Ordering::Relaxed) + 1 == total {
                        done.notify_one();
                    }
                    Ok::<(), HandlerError>(())
                }
            })
            .await
            .expect("subscribe");
    }
    let started = Instant::now();
    produce(&service, &producers).await;
    done.notified().await;
    let rate = total as f64 / started.elapsed().as_secs_f64();
    service.shutdown().await;
    for topic in &topics {
        service.delete_topic(topic).await.expect("delete");
    }
    rate
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// How many masters the topics of each round live on (slot of each stream
/// key), at least.
fn masters_of_topics(seed_port: u16) -> usize {
    let client = redis::Client::open(format!("redis://127.0.0.1:{seed_port}")).unwrap();
    let mut connection = client.get_connection().unwrap();
    let nodes: String = redis::cmd("CLUSTER")
        .arg("NODES")
        .query(&mut connection)
        .unwrap();
    let ranges: Vec<(u16, u16, String)> = nodes
        .lines()
        .filter(|line| line.contains("master"))
        .flat_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let id = fields[0].to_owned();
            fields[8..]
                .iter()
                .filter_map(|range| {
                    let (start, end) = range.split_once('-').unwrap_or((range, range));
                    Some((start.parse().ok()?, end.parse().ok()?, id.clone()))
                })
                .collect::<Vec<_>>()
        })
        .collect();
    let mut master_of = |topic: &Topic| -> String {
        let slot: u16 = redis::cmd("CLUSTER")
            .arg("KEYSLOT")
            .arg(format!("{{{PREFIX}:{topic}}}:stream"))
            .query(&mut connection)
            .unwrap();
        ranges
            .iter()
            .find(|(start, end, _)| (*start..=*end).contains(&slot))
            .map(|(_, _, id)| id.clone())
            .unwrap()
    };
    (0..rounds_wanted())
        .map(|round| {
            topics(round)
                .iter()
                .map(&mut master_of)
                .collect::<HashSet<_>>()
                .len()
        })
        .min()
        .unwrap_or(0)
}

async fn run() {
    let (cluster, cluster_url) = tokio::task::spawn_blocking(|| support::OwnCluster::start(None))
        .await
        .expect("start the cluster");
    let single = support::RedisServer::start_with(&["--appendonly", "yes"]);
    let seed_port: u16 = support::first_seed(&cluster_url)
        .rsplit(':')
        .next()
        .and_then(|port| port.parse().ok())
        .expect("the cluster URL names its seed");
    println!(
        "messaging-redis cluster bench: {TOPICS} topics x {PER_TOPIC} messages, batches of {BATCH}; cluster {cluster_url} (3 masters + 3 replicas, appendonly) vs one redis-server {} (appendonly); {} rounds, median; load average {}",
        single.url(),
        rounds_wanted(),
        support::load_average()
    );
    println!(
        "each round's {TOPICS} topics: their streams spread over at least {} of 3 masters",
        masters_of_topics(seed_port)
    );
    let targets = [
        Target {
            name: "one node",
            url: single.url(),
            load: Load::Topics,
        },
        Target {
            name: "cluster",
            url: cluster_url.clone(),
            load: Load::Topics,
        },
    ];
    println!("several topics ({TOPICS}, a producer and a subscriber each):");
    compare(&targets).await;
    let partitions = TOPICS as u16;
    let targets = [
        Target {
            name: "one node, plain topic",
            url: single.url(),
            load: Load::OneTopic(None),
        },
        Target {
            name: "cluster, 6 partitions",
            url: cluster_url.clone(),
            load: Load::OneTopic(Some(partitions)),
        },
        Target {
            name: "one node, 6 partitions",
            url: single.url(),
            load: Load::OneTopic(Some(partitions)),
        },
    ];
    println!("one topic ({TOPICS} producers, one subscriber):");
    compare(&targets).await;
    drop(single);
    drop(cluster);
}

fn main() {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(run());
}
