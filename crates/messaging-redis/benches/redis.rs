//! The Redis backend beside a plain `redis` crate loop sending the same commands
//! to the same server in the same run: the plain loop is the limit.
//!
//! Both sides start from the same `Message` values. The plain loop does what a
//! hand-written producer and consumer of them must: serialise each message to
//! JSON and `XADD` it (pipelined for batches); `XREADGROUP COUNT 64`, decode
//! each entry back into a `Message`, one `XACK` per read. A second, "raw" loop
//! ships pre-encoded bytes and never decodes: Redis alone, for reference.
//!
//! Run: `REDIS_URL=redis://127.0.0.1:6379 cargo bench -p messaging-redis --bench redis`
//! (`make bench` runs it with the Makefile's REDIS_URL). Everything lives under
//! a fresh key prefix and is deleted at the end. Each figure is the median of
//! `ROUNDS` rounds, the backend and the plain loop taking turns.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use chrono::Utc;
use messaging_core::{HandlerError, MessageBackend, MessagingService, StartFrom, SubscribeOptions};
use messaging_model::Message;
use messaging_redis::{RedisBackend, RedisBackendConfig};
use redis::aio::MultiplexedConnection;
use serde_json::json;
use tokio::sync::{Mutex, Notify};

// The test harness's redis-server on a free loopback port, for the idle section.
#[path = "../tests/support/mod.rs"]
mod support;

const ROUNDS: usize = 5;
const SINGLE: usize = 5_000;
const BATCHED: usize = 50_000;
const BATCH: usize = 100;
const END_TO_END: usize = 50_000;
const CONSUMERS: usize = 4;
const RATE: u64 = 5_000;
const LATENCY_RUN: Duration = Duration::from_secs(4);
const DELAYED: usize = 2_000;
/// How long the idle section watches each idle backend.
const IDLE_WINDOW: Duration = Duration::from_secs(10);
/// How long it watches the per-topic emulation of the design before the index.
const PER_TOPIC_WINDOW: Duration = Duration::from_secs(2);

fn main() {
    let url = std::env::var("REDIS_URL").unwrap_or_else(|_| {
        eprintln!("REDIS_URL is not set: start a Redis server and run with REDIS_URL=redis://127.0.0.1:6379 (make bench does)");
        std::process::exit(2);
    });
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(run(url));
}

struct Bench {
    url: String,
    prefix: String,
    backend: RedisBackend,
    plain: MultiplexedConnection,
    topics: Mutex<Vec<String>>,
    round: AtomicUsize,
    /// The Redis server's process id, when it runs on this machine.
    server_pid: Option<String>,
    /// CPU microseconds per message (client, server) of each end-to-end run, by contender.
    cpu: std::sync::Mutex<std::collections::BTreeMap<&'static str, Vec<(f64, f64)>>>,
}

/// CPU seconds (user + system) of a process so far, from /proc.
fn cpu_seconds(pid: &str) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let fields: Vec<&str> = stat[stat.rfind(')')? + 2..].split_whitespace().collect();
    let ticks = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    Some(ticks / 100.0)
}

impl Bench {
    fn cpu_now(&self) -> (Option<f64>, Option<f64>) {
        (
            cpu_seconds("self"),
            self.server_pid.as_deref().and_then(cpu_seconds),
        )
    }

    /// Records the CPU spent per message since `before`.
    fn record_cpu(
        &self,
        contender: &'static str,
        before: (Option<f64>, Option<f64>),
        messages: usize,
    ) {
        let after = self.cpu_now();
        let per_message = |a: Option<f64>, b: Option<f64>| match (a, b) {
            (Some(a), Some(b)) => (a - b) * 1e6 / messages as f64,
            _ => f64::NAN,
        };
        let figures = (
            per_message(after.0, before.0),
            per_message(after.1, before.1),
        );
        self.cpu
            .lock()
            .expect("cpu")
            .entry(contender)
            .or_default()
            .push(figures);
    }
}

impl Bench {
    fn topic(&self, what: &str) -> String {
        format!(
            "bench.{what}.{}",
            self.round.fetch_add(1, Ordering::Relaxed)
        )
    }

    async fn used(&self, topic: &str) -> String {
        self.topics.lock().await.push(topic.to_owned());
        format!("{{{}:{topic}}}:stream", self.prefix)
    }

    async fn plain_connection(&self) -> MultiplexedConnection {
        redis::Client::open(self.url.as_str())
            .expect("url")
            .get_multiplexed_async_connection()
            .await
            .expect("connect")
    }
}

fn payload(n: usize) -> serde_json::Value {
    json!({ "order": n, "customer": "c-12345", "amount": 42.5, "currency": "EUR", "items": ["sku-1", "sku-2"] })
}

/// The JSON the backend would store, made before timing so the plain loop sends
/// the same bytes without paying for encoding.
fn encoded(topic: &str, count: usize) -> Vec<Vec<u8>> {
    (0..count)
        .map(|n| {
            serde_json::to_vec(&Message::new(topic, payload(n)).expect("message")).expect("json")
        })
        .collect()
}

async fn run(url: String) {
    let prefix = format!("bench-{:016x}", fastrand::u64(..));
    let backend =
        RedisBackend::connect(RedisBackendConfig::new(url.as_str()).with_key_prefix(&prefix))
            .await
            .unwrap_or_else(|error| panic!("cannot reach Redis at {url}: {error}"));
    let plain = redis::Client::open(url.as_str())
        .expect("url")
        .get_multiplexed_async_connection()
        .await
        .expect("connect");
    let info: String = redis::cmd("INFO")
        .arg("server")
        .query_async(&mut plain.clone())
        .await
        .expect("info");
    let server_pid = info
        .lines()
        .find_map(|line| line.strip_prefix("process_id:"))
        .map(|pid| pid.trim().to_owned())
        .filter(|pid| std::path::Path::new(&format!("/proc/{pid}")).exists());
    let bench = Bench {
        url,
        prefix,
        backend,
        plain,
        topics: Mutex::new(Vec::new()),
        round: AtomicUsize::new(0),
        server_pid,
        cpu: std::sync::Mutex::new(std::collections::BTreeMap::new()),
    };
    println!(
        "messaging-redis bench: {ROUNDS} rounds each, median shown; Redis at {}",
        bench.url
    );
    let mut report = Report::default();
    // BENCH_ONLY=publish,e2e,latency,delayed,idle picks sections.
    let only = std::env::var("BENCH_ONLY").unwrap_or_default();
    let wanted = |section: &str| only.is_empty() || only.split(',').any(|s| s == section);

    if wanted("publish") {
        let figures = rounds(&[
            &|| Box::pin(publish_single(&bench)),
            &|| Box::pin(plain_publish_single(&bench, Loop::Plain)),
            &|| Box::pin(plain_publish_single(&bench, Loop::Raw)),
        ])
        .await;
        report.row("publish, one at a time (msg/s)", &figures, Target::None);
        let figures = rounds(&[
            &|| Box::pin(publish_batched(&bench)),
            &|| Box::pin(plain_publish_batched(&bench, Loop::Plain)),
            &|| Box::pin(plain_publish_batched(&bench, Loop::Raw)),
        ])
        .await;
        report.row(
            "publish, batches of 100 (msg/s)",
            &figures,
            Target::RatioAtLeast(0.85),
        );
    }
    if wanted("e2e") {
        let figures = rounds(&[
            &|| Box::pin(end_to_end(&bench)),
            &|| Box::pin(plain_end_to_end(&bench, Loop::Plain)),
            &|| Box::pin(plain_end_to_end(&bench, Loop::Raw)),
        ])
        .await;
        report.row(
            "end to end, 1 producer 4 consumers (msg/s)",
            &figures,
            Target::RatioAtLeast(0.70),
        );
    }
    if wanted("latency") {
        let mut ours = Vec::new();
        let mut plain = Vec::new();
        for _ in 0..ROUNDS {
            ours.push(latency(&bench).await);
            plain.push(plain_latency_run(&bench).await);
        }
        let p = |runs: &Vec<(f64, f64)>, which: fn(&(f64, f64)) -> f64| {
            median(runs.iter().map(which).collect())
        };
        report.row(
            "end-to-end latency p50 at 5,000 msg/s (ms)",
            &[p(&ours, |r| r.0), p(&plain, |r| r.0)],
            Target::None,
        );
        report.row(
            "end-to-end latency p99 at 5,000 msg/s (ms)",
            &[p(&ours, |r| r.1), p(&plain, |r| r.1)],
            Target::None,
        );
    }
    if wanted("delayed") {
        let lateness = delayed_lateness(&bench).await;
        report.row(
            "delayed-message lateness p50 (ms)",
            &[lateness.0],
            Target::None,
        );
        report.row(
            "delayed-message lateness p99 (ms)",
            &[lateness.1],
            Target::AtMost(50.0),
        );
    }

    for topic in bench.topics.lock().await.iter() {
        let _ = bench.backend.delete_topic(topic).await;
    }
    let idle = if wanted("idle") {
        Some(idle_section().await)
    } else {
        None
    };
    report.print();
    if let Some(idle) = idle {
        for line in idle {
            println!("{line}");
        }
    }
    let cpu = bench.cpu.lock().expect("cpu");
    if !cpu.is_empty() {
        println!(
            "end to end, CPU per message (median of rounds; client = this process, server = redis-server):"
        );
        for (contender, runs) in cpu.iter() {
            let client = median(runs.iter().map(|r| r.0).collect());
            let server = median(runs.iter().map(|r| r.1).collect());
            println!("  {contender:<10} client {client:>6.1} us   server {server:>6.1} us");
        }
    }
}

type Run<'a> = &'a dyn Fn() -> std::pin::Pin<Box<dyn Future<Output = f64> + 'a>>;

/// The median of each contender over `ROUNDS` rounds, taking turns.
async fn rounds(contenders: &[Run<'_>]) -> Vec<f64> {
    // BENCH_BACKEND_ONLY=1 skips the loops (for profiling the backend alone).
    let contenders = if std::env::var_os("BENCH_BACKEND_ONLY").is_some() {
        &contenders[..1]
    } else {
        contenders
    };
    let mut figures = vec![Vec::new(); contenders.len()];
    for _ in 0..ROUNDS {
        for (run, figures) in contenders.iter().zip(&mut figures) {
            figures.push(run().await);
        }
    }
    figures.into_iter().map(median).collect()
}

/// Which hand-written loop.
#[derive(Clone, Copy, PartialEq)]
enum Loop {
    /// Serialises and decodes messages as a real producer and consumer must.
    Plain,
    /// Ships pre-encoded bytes and never decodes: Redis alone.
    Raw,
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

// Publishing ------------------------------------------------------------------

fn messages(topic: &str, count: usize) -> Vec<Message> {
    (0..count)
        .map(|n| Message::new(topic, payload(n)).expect("message"))
        .collect()
}

/// What the plain loop sends for each message: encoded in the loop, or before.
enum Bodies {
    Messages(Vec<Message>),
    Encoded(Vec<Vec<u8>>),
}

impl Bodies {
    fn new(topic: &str, count: usize, kind: Loop) -> Self {
        match kind {
            Loop::Plain => Self::Messages(messages(topic, count)),
            Loop::Raw => Self::Encoded(encoded(topic, count)),
        }
    }

    fn len(&self) -> usize {
        match self {
            Self::Messages(messages) => messages.len(),
            Self::Encoded(bodies) => bodies.len(),
        }
    }

    fn body(&self, index: usize) -> std::borrow::Cow<'_, [u8]> {
        match self {
            Self::Messages(messages) => serde_json::to_vec(&messages[index]).expect("json").into(),
            Self::Encoded(bodies) => bodies[index].as_slice().into(),
        }
    }

    /// Sends them in pipelines of `BATCH` XADDs.
    async fn send_batched(&self, redis: &mut MultiplexedConnection, key: &str) {
        for start in (0..self.len()).step_by(BATCH) {
            let mut pipe = redis::pipe();
            for index in start..(start + BATCH).min(self.len()) {
                pipe.cmd("XADD")
                    .arg(key)
                    .arg("*")
                    .arg("m")
                    .arg(self.body(index).as_ref());
            }
            let _: Vec<String> = pipe.query_async(redis).await.expect("pipeline");
        }
    }
}

async fn publish_single(bench: &Bench) -> f64 {
    let topic = bench.topic("single");
    bench.used(&topic).await;
    let messages = messages(&topic, SINGLE);
    let start = Instant::now();
    for message in &messages {
        bench.backend.publish(message).await.expect("publish");
    }
    SINGLE as f64 / start.elapsed().as_secs_f64()
}

async fn plain_publish_single(bench: &Bench, kind: Loop) -> f64 {
    let topic = bench.topic("plain-single");
    let key = bench.used(&topic).await;
    let bodies = Bodies::new(&topic, SINGLE, kind);
    let mut redis = bench.plain.clone();
    let start = Instant::now();
    for index in 0..bodies.len() {
        let _: String = redis::cmd("XADD")
            .arg(&key)
            .arg("*")
            .arg("m")
            .arg(bodies.body(index).as_ref())
            .query_async(&mut redis)
            .await
            .expect("xadd");
    }
    SINGLE as f64 / start.elapsed().as_secs_f64()
}

async fn publish_batched(bench: &Bench) -> f64 {
    let topic = bench.topic("batched");
    bench.used(&topic).await;
    let messages = messages(&topic, BATCHED);
    let start = Instant::now();
    for batch in messages.chunks(BATCH) {
        bench.backend.publish_batch(batch).await.expect("publish");
    }
    BATCHED as f64 / start.elapsed().as_secs_f64()
}

async fn plain_publish_batched(bench: &Bench, kind: Loop) -> f64 {
    let topic = bench.topic("plain-batched");
    let key = bench.used(&topic).await;
    let bodies = Bodies::new(&topic, BATCHED, kind);
    let mut redis = bench.plain.clone();
    let start = Instant::now();
    bodies.send_batched(&mut redis, &key).await;
    BATCHED as f64 / start.elapsed().as_secs_f64()
}

// End to end ------------------------------------------------------------------

/// Up to 64 deliveries per read and 64 handlers per consumer, as the plain loop
/// reads `COUNT 64`.
fn options(consumer: usize) -> SubscribeOptions {
    SubscribeOptions::new("bench")
        .with_consumer(format!("c{consumer}"))
        .with_batch_size(64)
        .with_concurrency(64)
        .with_block_timeout(Duration::from_millis(100))
        .with_start_from(StartFrom::Earliest)
}

/// Four subscribers of one group handle everything one producer publishes.
async fn end_to_end(bench: &Bench) -> f64 {
    let topic = bench.topic("e2e");
    bench.used(&topic).await;
    let handled = Arc::new(AtomicUsize::new(0));
    let done = Arc::new(Notify::new());
    let backend: Arc<dyn MessageBackend> = Arc::new(bench.backend.clone());
    let mut services = Vec::new();
    for consumer in 0..CONSUMERS {
        let service = MessagingService::new(backend.clone());
        let handled = handled.clone();
        let done = done.clone();
        service
            .subscribe_with(
                &topic,
                options(consumer),
                Arc::new(move |_message: Message| {
                    let handled = handled.clone();
                    let done = done.clone();
                    async move {
                        if handled.fetch_add(1, Ordering::Relaxed) + 1 == END_TO_END {
                            done.notify_one();
                        }
                        Ok::<(), HandlerError>(())
                    }
                }),
            )
            .await
            .expect("subscribe");
        services.push(service);
    }
    let messages = messages(&topic, END_TO_END);
    let cpu = bench.cpu_now();
    let start = Instant::now();
    for batch in messages.chunks(BATCH) {
        backend.publish_batch(batch).await.expect("publish");
    }
    done.notified().await;
    let rate = END_TO_END as f64 / start.elapsed().as_secs_f64();
    bench.record_cpu("backend", cpu, END_TO_END);
    for service in services {
        service.shutdown().await;
    }
    rate
}

/// The same with pipelined XADDs and four XREADGROUP/XACK loops.
async fn plain_end_to_end(bench: &Bench, kind: Loop) -> f64 {
    let topic = bench.topic("plain-e2e");
    let key = bench.used(&topic).await;
    let bodies = Bodies::new(&topic, END_TO_END, kind);
    let mut redis = bench.plain.clone();
    let _: () = redis::cmd("XGROUP")
        .arg("CREATE")
        .arg(&key)
        .arg("bench")
        .arg("0")
        .arg("MKSTREAM")
        .query_async(&mut redis)
        .await
        .expect("group");
    let handled = Arc::new(AtomicUsize::new(0));
    let mut consumers = Vec::new();
    for consumer in 0..CONSUMERS {
        let mut connection = bench.plain_connection().await;
        let key = key.clone();
        let handled = handled.clone();
        consumers.push(tokio::spawn(async move {
            while handled.load(Ordering::Relaxed) < END_TO_END {
                let reply: Option<redis::streams::StreamReadReply> = redis::cmd("XREADGROUP")
                    .arg("GROUP")
                    .arg("bench")
                    .arg(format!("c{consumer}"))
                    .arg("COUNT")
                    .arg(64)
                    .arg("BLOCK")
                    .arg(100)
                    .arg("STREAMS")
                    .arg(&key)
                    .arg(">")
                    .query_async(&mut connection)
                    .await
                    .expect("xreadgroup");
                let mut ids = Vec::new();
                for entry in reply.into_iter().flat_map(|r| r.keys).flat_map(|s| s.ids) {
                    if kind == Loop::Plain {
                        let body: Vec<u8> = entry.get("m").expect("field m");
                        let message: Message = serde_json::from_slice(&body).expect("message");
                        std::hint::black_box(message);
                    }
                    ids.push(entry.id);
                }
                if ids.is_empty() {
                    continue;
                }
                let _: i64 = redis::cmd("XACK")
                    .arg(&key)
                    .arg("bench")
                    .arg(&ids)
                    .query_async(&mut connection)
                    .await
                    .expect("xack");
                handled.fetch_add(ids.len(), Ordering::Relaxed);
            }
        }));
    }
    let cpu = bench.cpu_now();
    let start = Instant::now();
    bodies.send_batched(&mut redis, &key).await;
    for consumer in consumers {
        consumer.await.expect("consumer");
    }
    let rate = END_TO_END as f64 / start.elapsed().as_secs_f64();
    let contender = match kind {
        Loop::Plain => "plain loop",
        Loop::Raw => "raw loop",
    };
    bench.record_cpu(contender, cpu, END_TO_END);
    rate
}

// Latency at a fixed rate -------------------------------------------------------

fn now_micros() -> i64 {
    Utc::now().timestamp_micros()
}

/// Publishes `RATE` messages a second for `LATENCY_RUN`, one message per call,
/// calling `publish` with the send time in microseconds.
async fn paced<F, Fut>(publish: F) -> usize
where
    F: Fn(i64) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let per_tick = (RATE / 1000) as usize;
    let mut ticker = tokio::time::interval(Duration::from_millis(1));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let start = Instant::now();
    let mut sent = 0;
    let mut inflight = Vec::new();
    while start.elapsed() < LATENCY_RUN {
        ticker.tick().await;
        for _ in 0..per_tick {
            inflight.push(tokio::spawn(publish(now_micros())));
            sent += 1;
        }
        if inflight.len() > 1_000 {
            futures::future::join_all(inflight.drain(..)).await;
        }
    }
    futures::future::join_all(inflight).await;
    sent
}

fn latency_figures(mut samples: Vec<f64>) -> (f64, f64) {
    samples.sort_by(f64::total_cmp);
    (percentile(&samples, 0.50), percentile(&samples, 0.99))
}

async fn latency(bench: &Bench) -> (f64, f64) {
    let topic = bench.topic("latency");
    bench.used(&topic).await;
    let backend: Arc<dyn MessageBackend> = Arc::new(bench.backend.clone());
    let samples = Arc::new(std::sync::Mutex::new(Vec::new()));
    let mut services = Vec::new();
    for consumer in 0..CONSUMERS {
        let service = MessagingService::new(backend.clone());
        let samples = samples.clone();
        service
            .subscribe_with(
                &topic,
                options(consumer),
                Arc::new(move |message: Message| {
                    let samples = samples.clone();
                    async move {
                        let sent = message.payload["sent"].as_i64().unwrap_or_default();
                        let ms = (now_micros() - sent) as f64 / 1000.0;
                        samples.lock().expect("samples").push(ms);
                        Ok::<(), HandlerError>(())
                    }
                }),
            )
            .await
            .expect("subscribe");
        services.push(service);
    }
    let producer = Arc::new(MessagingService::new(backend.clone()));
    let sent = paced(|sent| {
        let producer = producer.clone();
        let topic = topic.clone();
        async move {
            producer
                .publish(&topic, json!({ "sent": sent }))
                .await
                .expect("publish");
        }
    })
    .await;
    while samples.lock().expect("samples").len() < sent {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    for service in services {
        service.shutdown().await;
    }
    let samples = samples.lock().expect("samples").clone();
    latency_figures(samples)
}

async fn plain_latency_run(bench: &Bench) -> (f64, f64) {
    let topic = bench.topic("plain-latency");
    let key = bench.used(&topic).await;
    let mut redis = bench.plain.clone();
    let _: () = redis::cmd("XGROUP")
        .arg("CREATE")
        .arg(&key)
        .arg("bench")
        .arg("$")
        .arg("MKSTREAM")
        .query_async(&mut redis)
        .await
        .expect("group");
    let samples = Arc::new(std::sync::Mutex::new(Vec::new()));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut consumers = Vec::new();
    for consumer in 0..CONSUMERS {
        let mut connection = bench.plain_connection().await;
        let key = key.clone();
        let samples = samples.clone();
        let stop = stop.clone();
        consumers.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let reply: Option<redis::streams::StreamReadReply> = redis::cmd("XREADGROUP")
                    .arg("GROUP")
                    .arg("bench")
                    .arg(format!("c{consumer}"))
                    .arg("COUNT")
                    .arg(64)
                    .arg("BLOCK")
                    .arg(100)
                    .arg("STREAMS")
                    .arg(&key)
                    .arg(">")
                    .query_async(&mut connection)
                    .await
                    .expect("xreadgroup");
                let mut ids = Vec::new();
                for entry in reply.into_iter().flat_map(|r| r.keys).flat_map(|s| s.ids) {
                    let body: String = entry.get("m").expect("field m");
                    let message: Message = serde_json::from_str(&body).expect("message");
                    let sent = message.payload["sent"].as_i64().unwrap_or_default();
                    samples
                        .lock()
                        .expect("samples")
                        .push((now_micros() - sent) as f64 / 1000.0);
                    ids.push(entry.id);
                }
                if !ids.is_empty() {
                    let _: i64 = redis::cmd("XACK")
                        .arg(&key)
                        .arg("bench")
                        .arg(&ids)
                        .query_async(&mut connection)
                        .await
                        .expect("xack");
                }
            }
        }));
    }
    let topic_for_messages = topic.clone();
    let sent = paced(|sent| {
        let mut redis = redis.clone();
        let key = key.clone();
        let topic = topic_for_messages.clone();
        async move {
            let message = Message::new(topic, json!({ "sent": sent })).expect("message");
            let body = serde_json::to_vec(&message).expect("json");
            let _: String = redis::cmd("XADD")
                .arg(&key)
                .arg("*")
                .arg("m")
                .arg(body)
                .query_async(&mut redis)
                .await
                .expect("xadd");
        }
    })
    .await;
    while samples.lock().expect("samples").len() < sent {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    stop.store(true, Ordering::Relaxed);
    for consumer in consumers {
        consumer.await.expect("consumer");
    }
    let samples = samples.lock().expect("samples").clone();
    latency_figures(samples)
}

// Delayed messages ----------------------------------------------------------------

/// Lateness of delayed messages (handled at minus due at), due over 2 s.
async fn delayed_lateness(bench: &Bench) -> (f64, f64) {
    let topic = bench.topic("delayed");
    bench.used(&topic).await;
    let service = MessagingService::new(Arc::new(bench.backend.clone()));
    let samples = Arc::new(std::sync::Mutex::new(Vec::new()));
    let recorded = samples.clone();
    service
        .subscribe_with(
            &topic,
            options(0),
            Arc::new(move |message: Message| {
                let samples = recorded.clone();
                async move {
                    let due = message.payload["due"].as_i64().unwrap_or_default();
                    samples
                        .lock()
                        .expect("samples")
                        .push((now_micros() - due) as f64 / 1000.0);
                    Ok::<(), HandlerError>(())
                }
            }),
        )
        .await
        .expect("subscribe");
    let start = Utc::now() + chrono::Duration::milliseconds(500);
    for _ in 0..DELAYED {
        let at = start + chrono::Duration::microseconds(fastrand::i64(0..2_000_000));
        service
            .publish_at(&topic, json!({ "due": at.timestamp_micros() }), at)
            .await
            .expect("publish at");
    }
    while samples.lock().expect("samples").len() < DELAYED {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    service.shutdown().await;
    let samples = samples.lock().expect("samples").clone();
    assert!(
        samples.iter().all(|late| *late >= 0.0),
        "a delayed message arrived early"
    );
    latency_figures(samples)
}

// Report ------------------------------------------------------------------------

enum Target {
    None,
    RatioAtLeast(f64),
    AtMost(f64),
}

#[derive(Default)]
struct Report {
    lines: Vec<String>,
    missed: usize,
}

impl Report {
    /// `figures`: the backend's, then the plain loop's, then the raw loop's.
    fn row(&mut self, name: &str, figures: &[f64], target: Target) {
        let ours = figures[0];
        let ratio = |other: Option<&f64>| other.map(|other| ours / other);
        let plain_ratio = ratio(figures.get(1));
        let (target_text, met) = match target {
            Target::None => (String::new(), true),
            Target::RatioAtLeast(min) => (
                format!("ratio >= {min:.2}"),
                plain_ratio.is_some_and(|r| r >= min),
            ),
            Target::AtMost(max) => (format!("<= {max:.0}"), ours <= max),
        };
        if !met {
            self.missed += 1;
        }
        let verdict = match (target_text.is_empty(), met) {
            (true, _) => String::new(),
            (false, true) => format!("{target_text}: met"),
            (false, false) => format!("{target_text}: MISSED"),
        };
        let figure = |value: Option<&f64>| value.map_or("-".to_owned(), |v| format!("{v:.1}"));
        let share = |value: Option<f64>| value.map_or("-".to_owned(), |v| format!("{v:.2}"));
        self.lines.push(format!(
            "| {name:<44} | {ours:>10.1} | {:>10} | {:>5} | {:>10} | {:>5} | {verdict} |",
            figure(figures.get(1)),
            share(plain_ratio),
            figure(figures.get(2)),
            share(ratio(figures.get(2))),
        ));
    }

    fn print(&self) {
        println!(
            "| {:<44} | {:>10} | {:>10} | {:>5} | {:>10} | {:>5} | target |",
            "figure", "backend", "plain loop", "ratio", "raw loop", "ratio"
        );
        println!(
            "|{:-<46}|{:->12}|{:->12}|{:->7}|{:->12}|{:->7}|--------|",
            "", "", "", "", "", ""
        );
        for line in &self.lines {
            println!("{line}");
        }
        if self.missed == 0 {
            println!("every target met");
        } else {
            println!("{} target(s) MISSED", self.missed);
        }
    }
}

// Idle topics -------------------------------------------------------------------

/// What a redis-server did over a window: commands (scripts' inner ones
/// included, `INFO` left out) and CPU (`used_cpu_sys` + `used_cpu_user`).
#[derive(Clone, Copy, Default)]
struct ServerWork {
    commands: f64,
    evalsha: f64,
    cpu_seconds: f64,
}

async fn server_work(redis: &mut MultiplexedConnection) -> ServerWork {
    let info: String = redis::cmd("INFO")
        .arg("all")
        .query_async(redis)
        .await
        .expect("info");
    let mut work = ServerWork::default();
    for line in info.lines() {
        if let Some((name, rest)) = line
            .strip_prefix("cmdstat_")
            .and_then(|l| l.split_once(':'))
        {
            let calls: f64 = rest
                .split(',')
                .find_map(|kv| kv.strip_prefix("calls="))
                .and_then(|c| c.parse().ok())
                .unwrap_or(0.0);
            if name != "info" {
                work.commands += calls;
            }
            if name == "evalsha" {
                work.evalsha += calls;
            }
        } else if let Some(value) = line
            .strip_prefix("used_cpu_sys:")
            .or_else(|| line.strip_prefix("used_cpu_user:"))
        {
            work.cpu_seconds += value.trim().parse::<f64>().unwrap_or(0.0);
        }
    }
    work
}

impl std::ops::Sub for ServerWork {
    type Output = ServerWork;
    fn sub(self, before: ServerWork) -> ServerWork {
        ServerWork {
            commands: self.commands - before.commands,
            evalsha: self.evalsha - before.evalsha,
            cpu_seconds: self.cpu_seconds - before.cpu_seconds,
        }
    }
}

/// Per second of `window`: commands, EVALSHA calls, server CPU ms, client CPU ms.
struct IdleFigures {
    commands: f64,
    evalsha: f64,
    server_cpu_ms: f64,
    client_cpu_ms: f64,
}

impl IdleFigures {
    fn of(work: ServerWork, client_cpu: f64, window: Duration) -> Self {
        let seconds = window.as_secs_f64();
        Self {
            commands: work.commands / seconds,
            evalsha: work.evalsha / seconds,
            server_cpu_ms: work.cpu_seconds * 1e3 / seconds,
            client_cpu_ms: client_cpu * 1e3 / seconds,
        }
    }
}

/// Sets up `topics` idle topics on a redis-server of their own (a group, two
/// messages read, acknowledged and trimmed, one delayed message an hour
/// ahead), then watches the backend (default settings but `keep: 0`) sit
/// still; then times one sweep, and for the many-topic case the per-topic
/// promotion of the design before the index, emulated with its script.
async fn idle_topics(
    topics: usize,
    emulate: bool,
) -> (IdleFigures, (ServerWork, Duration), Option<IdleFigures>) {
    use futures::StreamExt;
    let server = support::RedisServer::start();
    let prefix = format!("bench-idle-{:016x}", fastrand::u64(..));
    let mut redis = redis::Client::open(server.url())
        .expect("url")
        .get_multiplexed_async_connection()
        .await
        .expect("connect");
    let backend = RedisBackend::connect(
        RedisBackendConfig::new(server.url())
            .with_key_prefix(&prefix)
            .with_retention(messaging_core::Retention::Settled { keep: 0 }),
    )
    .await
    .expect("connect");
    let names: Vec<String> = (0..topics).map(|n| format!("idle.{n}")).collect();
    let later = Utc::now() + chrono::Duration::hours(1);
    futures::stream::iter(names.iter().enumerate())
        .for_each_concurrent(64, |(n, topic)| {
            let backend = &backend;
            async move {
                let message = |k: usize| Message::new(topic, payload(n * 10 + k)).expect("message");
                backend
                    .ensure_group(topic, "g", StartFrom::Earliest)
                    .await
                    .expect("group");
                backend
                    .publish_batch(&[message(0), message(1)])
                    .await
                    .expect("publish");
                backend
                    .schedule(&message(2), later)
                    .await
                    .expect("schedule");
                let taken = backend
                    .read(
                        topic,
                        "g",
                        "c",
                        messaging_core::ReadFrom::New,
                        10,
                        Duration::ZERO,
                    )
                    .await
                    .expect("read");
                for delivery in &taken {
                    backend.ack(&delivery.receipt).await.expect("ack");
                }
            }
        })
        .await;
    // Each topic is trimmed once (its first entry; the last delivered stays).
    loop {
        let mut pipe = redis::pipe();
        for topic in &names {
            pipe.xlen(format!("{{{prefix}:{topic}}}:stream"));
        }
        let lengths: Vec<u64> = pipe.query_async(&mut redis).await.expect("xlen");
        if lengths.iter().all(|&length| length == 1) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // One promote interval more, so the last trim round is over.
    tokio::time::sleep(Duration::from_millis(300)).await;

    let before = server_work(&mut redis).await;
    let client_before = cpu_seconds("self").unwrap_or(0.0);
    tokio::time::sleep(IDLE_WINDOW).await;
    let client = cpu_seconds("self").unwrap_or(0.0) - client_before;
    let idle = IdleFigures::of(server_work(&mut redis).await - before, client, IDLE_WINDOW);

    let before = server_work(&mut redis).await;
    let started = Instant::now();
    let repaired = backend.sweep_due_index().await.expect("sweep");
    let sweep = (server_work(&mut redis).await - before, started.elapsed());
    assert_eq!(repaired, 0, "the index was complete");
    drop(backend);

    let emulated = if emulate {
        // Before the index: every topic's promotion script, every 250 ms, 32
        // topics at a time (what maintenance.rs did for each known topic).
        let script = redis::Script::new(include_str!("../lua/promote.lua"));
        let before = server_work(&mut redis).await;
        let client_before = cpu_seconds("self").unwrap_or(0.0);
        let started = Instant::now();
        while started.elapsed() < PER_TOPIC_WINDOW {
            let round = Instant::now();
            futures::stream::iter(names.iter())
                .for_each_concurrent(32, |topic| {
                    let mut redis = redis.clone();
                    let script = &script;
                    let tag = format!("{{{prefix}:{topic}}}");
                    async move {
                        let _: (i64, i64, i64) = script
                            .key(format!("{tag}:delayed"))
                            .key(format!("{tag}:stream"))
                            .key(format!("{tag}:dlq"))
                            .arg(1_000)
                            .invoke_async(&mut redis)
                            .await
                            .expect("promote");
                    }
                })
                .await;
            tokio::time::sleep(Duration::from_millis(250).saturating_sub(round.elapsed())).await;
        }
        let window = started.elapsed();
        let client = cpu_seconds("self").unwrap_or(0.0) - client_before;
        Some(IdleFigures::of(
            server_work(&mut redis).await - before,
            client,
            window,
        ))
    } else {
        None
    };
    (idle, sweep, emulated)
}

async fn idle_section() -> Vec<String> {
    const FEW: usize = 10;
    const MANY: usize = 10_000;
    let (few, few_sweep, _) = idle_topics(FEW, false).await;
    let (many, many_sweep, emulated) = idle_topics(MANY, true).await;
    let mut lines = vec![
        format!(
            "idle topics (redis-server of its own, default intervals: promote 250 ms, trim 5 s, sweep 60 s; {} s each):",
            IDLE_WINDOW.as_secs()
        ),
        format!(
            "| {:<34} | {:>12} | {:>12} | {:>7} |",
            "per second, one idle backend", "10 topics", "10,000 topics", "ratio"
        ),
        format!("|{:-<36}|{:->14}|{:->14}|{:->9}|", "", "", "", ""),
    ];
    let row = |name: &str, a: f64, b: f64| {
        let ratio = if a > 0.0 {
            format!("{:.2}", b / a)
        } else {
            "-".to_owned()
        };
        format!("| {name:<34} | {a:>12.1} | {b:>12.1} | {ratio:>7} |")
    };
    lines.push(row("Redis commands", few.commands, many.commands));
    lines.push(row("EVALSHA calls", few.evalsha, many.evalsha));
    lines.push(row("Redis CPU (ms)", few.server_cpu_ms, many.server_cpu_ms));
    lines.push(row(
        "client CPU (ms)",
        few.client_cpu_ms,
        many.client_cpu_ms,
    ));
    for (topics, (work, took)) in [(FEW, few_sweep), (MANY, many_sweep)] {
        lines.push(format!(
            "one sweep of {topics} topics: {:.0} commands, {:.1} ms Redis CPU, {:.1} ms; over the 60 s sweep interval {:.1} commands/s",
            work.commands,
            work.cpu_seconds * 1e3,
            took.as_secs_f64() * 1e3,
            work.commands / 60.0
        ));
    }
    if let Some(emulated) = emulated {
        lines.push(format!(
            "before the index (emulated: promote.lua per topic every 250 ms, {MANY} topics, {} s): {:.0} commands/s, {:.0} EVALSHA/s, {:.1} ms/s Redis CPU, {:.1} ms/s client CPU",
            PER_TOPIC_WINDOW.as_secs(),
            emulated.commands,
            emulated.evalsha,
            emulated.server_cpu_ms,
            emulated.client_cpu_ms
        ));
    }
    lines
}
