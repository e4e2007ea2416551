//! The Redis backend through `MessagingService`, with the default
//! `SubscribeOptions`, beside a raw `redis` crate loop sending the same bytes
//! to the same server in the same run: the raw loop is the client's limit.
//!
//! The raw loop (issue 12's methodology): `XADD` pipelined 100 at a time for
//! publishing, bodies encoded before the clock starts; 4 consumers each
//! `XREADGROUP COUNT 100` and one `XACK` per batch, never decoding; 1 producer
//! and 4 consumers end to end. Payloads are 200 bytes of JSON. Each figure is
//! the median of `ROUNDS` rounds, the contenders taking turns, with the
//! client's CPU per message (`/proc/self/stat` utime + stime over the section).
//!
//! Run: `cargo bench -p messaging-redis --bench redis` (`make bench` runs it).
//! It starts a redis-server of its own on a free loopback port (the binary of
//! `REDIS_SERVER`, else `/usr/bin/redis-server`), so nothing else on the
//! machine shares the server. `BENCH_ONLY=publish,consume,e2e,latency,burst,costs,scale,idle`
//! picks sections; `BENCH_BACKEND_ONLY=1` skips the raw loops (for profiling).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use chrono::Utc;
use messaging_core::BackendAdmin as _;
use messaging_core::limit::{FlowLimit, LimitKey, Rate};
use messaging_core::{HandlerError, MessageBackend, MessagingService, StartFrom};
use messaging_model::Message;
use messaging_redis::{RedisBackend, RedisBackendConfig};
use redis::aio::MultiplexedConnection;
use serde_json::json;
use tokio::sync::{Mutex, Notify};

// The test harness's redis-server on a free loopback port.
#[path = "../tests/support/mod.rs"]
mod support;

/// Rounds of each comparison (`BENCH_ROUNDS` overrides it).
const ROUNDS: usize = 5;

fn rounds_wanted() -> usize {
    std::env::var("BENCH_ROUNDS")
        .ok()
        .and_then(|rounds| rounds.parse().ok())
        .filter(|rounds| *rounds > 0)
        .unwrap_or(ROUNDS)
}
const SINGLE: usize = 5_000;
const BATCHED: usize = 50_000;
const BATCH: usize = 100;
/// The raw consumers' `XREADGROUP COUNT`.
const READ_COUNT: usize = 100;
/// The backlog the consume-only section drains.
const BACKLOG: usize = 200_000;
const END_TO_END: usize = 50_000;
const CONSUMERS: usize = 4;
const RATE: u64 = 5_000;
const LATENCY_RUN: Duration = Duration::from_secs(4);
/// Delayed messages due at one instant.
const BURSTS: [usize; 2] = [5_000, 50_000];
/// Backlogs of the scale section: small, large, and how many of the large one
/// each round consumes.
const SCALE_SMALL: usize = 20_000;
const SCALE_LARGE: usize = 1_000_000;
const SCALE_TAKEN: usize = 100_000;
const SCALE_ROUNDS: usize = 3;
/// The backlog the worker-like child process drains for its peak RSS.
const RSS_BACKLOG: usize = 100_000;
/// How long the idle section watches each idle backend.
const IDLE_WINDOW: Duration = Duration::from_secs(10);
/// How long it watches the per-topic emulation of the design before the index.
const PER_TOPIC_WINDOW: Duration = Duration::from_secs(2);

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    if let Ok(mode) = std::env::var("BENCH_CHILD") {
        runtime.block_on(child(mode));
        return;
    }
    runtime.block_on(run());
}

struct Bench {
    url: String,
    prefix: String,
    backend: RedisBackend,
    plain: MultiplexedConnection,
    topics: Mutex<Vec<String>>,
    round: AtomicUsize,
}

/// CPU seconds (user + system) of a process so far, from /proc.
fn cpu_seconds(pid: &str) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let fields: Vec<&str> = stat[stat.rfind(')')? + 2..].split_whitespace().collect();
    let ticks = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    Some(ticks / 100.0)
}

/// One timed run: messages per second and client CPU per message.
#[derive(Clone, Copy)]
struct Run {
    rate: f64,
    cpu_us: f64,
    /// Wall time of the run, in ms.
    elapsed_ms: f64,
    /// Redis per message (the runs that measure it, else 0): CPU in µs,
    /// commands (those run by scripts included) and script calls.
    server: ServerPerMessage,
}

/// Redis's work per message over a run (`INFO`), zero where not measured.
#[derive(Clone, Copy, Default)]
struct ServerPerMessage {
    cpu_us: f64,
    commands: f64,
    evalsha: f64,
}

/// The wall clock and this process's CPU at the start of a run.
struct Clock {
    started: Instant,
    cpu: f64,
}

impl Clock {
    fn start() -> Self {
        Self {
            cpu: cpu_seconds("self").unwrap_or(f64::NAN),
            started: Instant::now(),
        }
    }

    fn stop(&self, messages: usize) -> Run {
        let elapsed = self.started.elapsed().as_secs_f64();
        let cpu = cpu_seconds("self").unwrap_or(f64::NAN) - self.cpu;
        Run {
            rate: messages as f64 / elapsed,
            cpu_us: cpu * 1e6 / messages as f64,
            elapsed_ms: elapsed * 1e3,
            server: ServerPerMessage::default(),
        }
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
        stream_key(&self.prefix, topic)
    }

    async fn plain_connection(&self) -> MultiplexedConnection {
        connect_plain(&self.url).await
    }

    fn service(&self) -> MessagingService {
        MessagingService::new(Arc::new(self.backend.clone()))
    }
}

fn stream_key(prefix: &str, topic: &str) -> String {
    format!("{{{prefix}:{topic}}}:stream")
}

async fn connect_plain(url: &str) -> MultiplexedConnection {
    redis::Client::open(url)
        .expect("url")
        .get_multiplexed_async_connection()
        .await
        .expect("connect")
}

/// A 200-byte JSON object.
fn payload(n: usize) -> serde_json::Value {
    json!({
        "order": n,
        "customer": "c-12345",
        "email": "ada.lovelace@example.com",
        "amount": 42.5,
        "currency": "EUR",
        "items": ["sku-1", "sku-2", "sku-3"],
        "note": "leave the parcel with the neighbour at number 12 please",
        "channel": "web"
    })
}

/// The JSON the backend stores for `count` messages of `topic`, made before
/// timing so the raw loop sends the same bytes without encoding them.
fn encoded(topic: &str, count: usize) -> Vec<Vec<u8>> {
    (0..count)
        .map(|n| {
            serde_json::to_vec(&Message::new(topic, payload(n)).expect("message")).expect("json")
        })
        .collect()
}

/// XADDs `bodies` to `key`, pipelined `BATCH` at a time.
async fn send_batched(redis: &mut MultiplexedConnection, key: &str, bodies: &[Vec<u8>]) {
    for chunk in bodies.chunks(BATCH) {
        let mut pipe = redis::pipe();
        for body in chunk {
            pipe.cmd("XADD").arg(key).arg("*").arg("m").arg(body);
        }
        let _: Vec<String> = pipe.query_async(redis).await.expect("pipeline");
    }
}

async fn run() {
    let server = support::RedisServer::start();
    let url = server.url();
    let prefix = format!("bench-{:016x}", fastrand::u64(..));
    let backend =
        RedisBackend::connect(RedisBackendConfig::new(url.as_str()).with_key_prefix(&prefix))
            .await
            .unwrap_or_else(|error| {
                panic!("cannot reach the bench's redis-server at {url}: {error}")
            });
    let plain = connect_plain(&url).await;
    let bench = Bench {
        url,
        prefix,
        backend,
        plain,
        topics: Mutex::new(Vec::new()),
        round: AtomicUsize::new(0),
    };
    println!(
        "messaging-redis bench: a redis-server of its own at {}; {} rounds each, median shown; load average at start: {}",
        bench.url,
        rounds_wanted(),
        support::load_average()
    );
    println!(
        "backend = MessagingService over RedisBackend, default SubscribeOptions; raw = redis crate loop (XADD x{BATCH} pipelined, pre-encoded; {CONSUMERS} consumers XREADGROUP COUNT {READ_COUNT} + one XACK per batch)"
    );
    let mut report = Report::default();
    let only = std::env::var("BENCH_ONLY").unwrap_or_default();
    let wanted = |section: &str| only.is_empty() || only.split(',').any(|s| s == section);

    if wanted("publish") {
        let figures = rounds(&[&|| Box::pin(publish_single(&bench)), &|| {
            Box::pin(raw_publish_single(&bench))
        }])
        .await;
        report.row("publish, one at a time", &figures, Target::None);
        let figures = rounds(&[&|| Box::pin(publish_batched(&bench)), &|| {
            Box::pin(raw_publish_batched(&bench))
        }])
        .await;
        report.row("publish, batches of 100", &figures, Target::Ratio(0.9));
    }
    if wanted("consume") {
        let figures = rounds(&[&|| Box::pin(consume(&bench, BACKLOG)), &|| {
            Box::pin(raw_consume(&bench, BACKLOG))
        }])
        .await;
        report.row(
            "consume only, 200,000 backlog, 4 consumers",
            &figures,
            Target::Ratio(0.8),
        );
    }
    if wanted("e2e") {
        let figures = rounds(&[&|| Box::pin(end_to_end(&bench)), &|| {
            Box::pin(raw_end_to_end(&bench))
        }])
        .await;
        report.row(
            "end to end, 1 producer 4 consumers",
            &figures,
            Target::Ratio(0.8),
        );
    }
    report.print();

    if wanted("latency") {
        let mut ours = Vec::new();
        let mut raw = Vec::new();
        for _ in 0..rounds_wanted() {
            ours.push(latency(&bench).await);
            raw.push(raw_latency(&bench).await);
        }
        let p = |runs: &Vec<(f64, f64)>, which: fn(&(f64, f64)) -> f64| {
            median(runs.iter().map(which).collect())
        };
        println!(
            "latency at {RATE} msg/s, one publish per message (ms): backend p50 {:.2} p99 {:.2}; raw p50 {:.2} p99 {:.2}",
            p(&ours, |r| r.0),
            p(&ours, |r| r.1),
            p(&raw, |r| r.0),
            p(&raw, |r| r.1)
        );
    }
    if wanted("burst") {
        for count in BURSTS {
            let burst = delayed_burst(&bench, count).await;
            let floor = raw_consume(&bench, count).await;
            let verdict = if burst.p99 <= 50.0 && burst.early == 0 {
                "met"
            } else {
                "MISSED"
            };
            println!(
                "delayed burst, {count} due at one instant: handler lateness p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms, early {}; all promoted {:.1} ms after the due time; the raw loop drains {count} already in the stream in {:.1} ms (p99 <= 50 ms, 0 early: {verdict})",
                burst.p50, burst.p99, burst.max, burst.early, burst.promoted_ms, floor.elapsed_ms
            );
        }
    }
    if wanted("costs") {
        costs(&bench).await;
    }
    if wanted("limits") {
        limits_section(&bench).await;
    }
    if wanted("priorities") {
        priorities_section(&bench).await;
    }
    if wanted("fairness") {
        fairness_section(&bench).await;
    }
    if wanted("scale") {
        scale(&bench).await;
        rss(&bench).await;
    }

    for topic in bench.topics.lock().await.iter() {
        let _ = bench.backend.delete_topic(&topic_of(topic)).await;
    }
    drop(bench);
    drop(server);
    if wanted("idle") {
        for line in idle_section().await {
            println!("{line}");
        }
    }
}

type Contender<'a> = &'a dyn Fn() -> std::pin::Pin<Box<dyn Future<Output = Run> + 'a>>;

/// The median rate and CPU of each contender over `ROUNDS` rounds, taking turns.
async fn rounds(contenders: &[Contender<'_>]) -> Vec<Run> {
    let contenders = if std::env::var_os("BENCH_BACKEND_ONLY").is_some() {
        &contenders[..1]
    } else {
        contenders
    };
    let mut runs = vec![Vec::new(); contenders.len()];
    for _ in 0..rounds_wanted() {
        for (contender, runs) in contenders.iter().zip(&mut runs) {
            runs.push(contender().await);
        }
    }
    runs.into_iter()
        .map(|runs: Vec<Run>| Run {
            rate: median(runs.iter().map(|r| r.rate).collect()),
            cpu_us: median(runs.iter().map(|r| r.cpu_us).collect()),
            elapsed_ms: median(runs.iter().map(|r| r.elapsed_ms).collect()),
            server: ServerPerMessage {
                cpu_us: median(runs.iter().map(|r| r.server.cpu_us).collect()),
                commands: median(runs.iter().map(|r| r.server.commands).collect()),
                evalsha: median(runs.iter().map(|r| r.server.evalsha).collect()),
            },
        })
        .collect()
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

// Publishing ------------------------------------------------------------------

async fn publish_single(bench: &Bench) -> Run {
    let topic = bench.topic("single");
    bench.used(&topic).await;
    let service = bench.service();
    let payloads: Vec<serde_json::Value> = (0..SINGLE).map(payload).collect();
    let clock = Clock::start();
    for payload in payloads {
        service.publish(&topic, payload).await.expect("publish");
    }
    clock.stop(SINGLE)
}

async fn raw_publish_single(bench: &Bench) -> Run {
    let topic = bench.topic("raw-single");
    let key = bench.used(&topic).await;
    let bodies = encoded(&topic, SINGLE);
    let mut redis = bench.plain.clone();
    let clock = Clock::start();
    for body in &bodies {
        let _: String = redis::cmd("XADD")
            .arg(&key)
            .arg("*")
            .arg("m")
            .arg(body)
            .query_async(&mut redis)
            .await
            .expect("xadd");
    }
    clock.stop(SINGLE)
}

async fn publish_batched(bench: &Bench) -> Run {
    let topic = bench.topic("batched");
    bench.used(&topic).await;
    let service = bench.service();
    let batches: Vec<Vec<serde_json::Value>> = (0..BATCHED)
        .collect::<Vec<_>>()
        .chunks(BATCH)
        .map(|chunk| chunk.iter().copied().map(payload).collect())
        .collect();
    let clock = Clock::start();
    for batch in batches {
        service.publish_batch(&topic, batch).await.expect("publish");
    }
    clock.stop(BATCHED)
}

async fn raw_publish_batched(bench: &Bench) -> Run {
    let topic = bench.topic("raw-batched");
    let key = bench.used(&topic).await;
    let bodies = encoded(&topic, BATCHED);
    let mut redis = bench.plain.clone();
    let clock = Clock::start();
    send_batched(&mut redis, &key, &bodies).await;
    clock.stop(BATCHED)
}

// Consuming -------------------------------------------------------------------

/// Counts handled messages and wakes the bench when `target` are in.
struct Counter {
    handled: AtomicUsize,
    target: usize,
    done: Notify,
}

impl Counter {
    fn new(target: usize) -> Arc<Self> {
        Arc::new(Self {
            handled: AtomicUsize::new(0),
            target,
            done: Notify::new(),
        })
    }

    fn add(&self, n: usize) {
        let before = self.handled.fetch_add(n, Ordering::Relaxed);
        if before < self.target && before + n >= self.target {
            self.done.notify_one();
        }
    }

    fn reached(&self) -> bool {
        self.handled.load(Ordering::Relaxed) >= self.target
    }
}

/// The service as it is, or, for exploring, with `BENCH_CONCURRENCY` and
/// `BENCH_BATCH` overriding the default options' handlers and read size.
fn tuned(service: MessagingService) -> MessagingService {
    let number = |name: &str| {
        std::env::var(name)
            .ok()
            .and_then(|v| v.parse::<usize>().ok())
    };
    let mut options = service.subscribe_defaults().clone();
    if let Some(concurrency) = number("BENCH_CONCURRENCY") {
        options = options.with_concurrency(concurrency);
    }
    if let Some(batch) = number("BENCH_BATCH") {
        options = options.with_batch_size(batch);
    }
    service.with_subscribe_defaults(options)
}

/// `CONSUMERS` services, each subscribed with the default options.
async fn subscribers(bench: &Bench, topic: &str, counter: &Arc<Counter>) -> Vec<MessagingService> {
    limited_subscribers(bench, topic, counter, &[]).await
}

/// [`subscribers`] with these flow limits.
async fn limited_subscribers(
    bench: &Bench,
    topic: &str,
    counter: &Arc<Counter>,
    limits: &[FlowLimit],
) -> Vec<MessagingService> {
    let backend: Arc<dyn messaging_core::Backend> = Arc::new(bench.backend.clone());
    let mut services = Vec::new();
    for _ in 0..CONSUMERS {
        let service = tuned(MessagingService::new(backend.clone()));
        let counter = counter.clone();
        let mut options = service.subscribe_defaults().clone();
        for limit in limits {
            options = options.with_limit(limit.clone());
        }
        service
            .subscribe_with(topic, options, move |_message: Message| {
                let counter = counter.clone();
                async move {
                    counter.add(1);
                    Ok::<(), HandlerError>(())
                }
            })
            .await
            .expect("subscribe");
        services.push(service);
    }
    services
}

/// Four default subscriptions drain `backlog` messages already in the stream.
async fn consume(bench: &Bench, backlog: usize) -> Run {
    consume_limited(bench, backlog, &[]).await
}

/// [`consume`] under these flow limits.
async fn consume_limited(bench: &Bench, backlog: usize, limits: &[FlowLimit]) -> Run {
    let topic = bench.topic("consume");
    let key = bench.used(&topic).await;
    send_batched(&mut bench.plain.clone(), &key, &encoded(&topic, backlog)).await;
    let counter = Counter::new(backlog);
    let mut info = bench.plain.clone();
    let before = server_work(&mut info).await;
    let clock = Clock::start();
    let services = limited_subscribers(bench, &topic, &counter, limits).await;
    counter.done.notified().await;
    let mut run = clock.stop(backlog);
    let work = server_work(&mut info).await - before;
    let per = backlog as f64;
    run.server = ServerPerMessage {
        cpu_us: work.cpu_seconds * 1e6 / per,
        commands: work.commands / per,
        evalsha: work.evalsha / per,
    };
    for service in services {
        service.shutdown().await;
    }
    run
}

/// The raw consumers: each `XREADGROUP COUNT 100` and one `XACK` per batch,
/// until `counter` is reached.
async fn raw_consumers(
    bench: &Bench,
    key: &str,
    counter: &Arc<Counter>,
) -> Vec<tokio::task::JoinHandle<()>> {
    let mut consumers = Vec::new();
    for consumer in 0..CONSUMERS {
        let mut connection = bench.plain_connection().await;
        let key = key.to_owned();
        let counter = counter.clone();
        consumers.push(tokio::spawn(async move {
            while !counter.reached() {
                let reply: Option<redis::streams::StreamReadReply> = redis::cmd("XREADGROUP")
                    .arg("GROUP")
                    .arg("bench")
                    .arg(format!("c{consumer}"))
                    .arg("COUNT")
                    .arg(READ_COUNT)
                    .arg("BLOCK")
                    .arg(100)
                    .arg("STREAMS")
                    .arg(&key)
                    .arg(">")
                    .query_async(&mut connection)
                    .await
                    .expect("xreadgroup");
                let ids: Vec<String> = reply
                    .into_iter()
                    .flat_map(|r| r.keys)
                    .flat_map(|s| s.ids)
                    .map(|entry| entry.id)
                    .collect();
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
                counter.add(ids.len());
            }
        }));
    }
    consumers
}

async fn create_group(bench: &Bench, key: &str) {
    let _: () = redis::cmd("XGROUP")
        .arg("CREATE")
        .arg(key)
        .arg("bench")
        .arg("0")
        .arg("MKSTREAM")
        .query_async(&mut bench.plain.clone())
        .await
        .expect("group");
}

async fn raw_consume(bench: &Bench, backlog: usize) -> Run {
    let topic = bench.topic("raw-consume");
    let key = bench.used(&topic).await;
    send_batched(&mut bench.plain.clone(), &key, &encoded(&topic, backlog)).await;
    create_group(bench, &key).await;
    let counter = Counter::new(backlog);
    let clock = Clock::start();
    let consumers = raw_consumers(bench, &key, &counter).await;
    counter.done.notified().await;
    let run = clock.stop(backlog);
    for consumer in consumers {
        consumer.await.expect("consumer");
    }
    run
}

// End to end ------------------------------------------------------------------

/// Four default subscriptions handle what one producer publishes in batches of 100.
async fn end_to_end(bench: &Bench) -> Run {
    let topic = bench.topic("e2e");
    bench.used(&topic).await;
    let counter = Counter::new(END_TO_END);
    let services = subscribers(bench, &topic, &counter).await;
    let producer = bench.service();
    let batches: Vec<Vec<serde_json::Value>> = (0..END_TO_END)
        .collect::<Vec<_>>()
        .chunks(BATCH)
        .map(|chunk| chunk.iter().copied().map(payload).collect())
        .collect();
    let clock = Clock::start();
    for batch in batches {
        producer
            .publish_batch(&topic, batch)
            .await
            .expect("publish");
    }
    counter.done.notified().await;
    let run = clock.stop(END_TO_END);
    for service in services {
        service.shutdown().await;
    }
    run
}

async fn raw_end_to_end(bench: &Bench) -> Run {
    let topic = bench.topic("raw-e2e");
    let key = bench.used(&topic).await;
    let bodies = encoded(&topic, END_TO_END);
    create_group(bench, &key).await;
    let counter = Counter::new(END_TO_END);
    let consumers = raw_consumers(bench, &key, &counter).await;
    let clock = Clock::start();
    send_batched(&mut bench.plain.clone(), &key, &bodies).await;
    counter.done.notified().await;
    let run = clock.stop(END_TO_END);
    for consumer in consumers {
        consumer.await.expect("consumer");
    }
    run
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

type Samples = Arc<std::sync::Mutex<Vec<f64>>>;

/// A handler recording, in ms, now minus the payload's `field` (µs).
fn recorder(
    samples: &Samples,
    field: &'static str,
) -> impl Fn(Message) -> std::future::Ready<Result<(), HandlerError>> + Send + Sync + 'static {
    let samples = samples.clone();
    move |message: Message| {
        let then = message.payload[field].as_i64().unwrap_or_default();
        samples
            .lock()
            .expect("samples")
            .push((now_micros() - then) as f64 / 1000.0);
        std::future::ready(Ok(()))
    }
}

async fn latency(bench: &Bench) -> (f64, f64) {
    let topic = bench.topic("latency");
    bench.used(&topic).await;
    let backend: Arc<dyn messaging_core::Backend> = Arc::new(bench.backend.clone());
    let samples: Samples = Arc::default();
    let mut services = Vec::new();
    for _ in 0..CONSUMERS {
        let service = MessagingService::new(backend.clone());
        service
            .subscribe(&topic, recorder(&samples, "sent"))
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

async fn raw_latency(bench: &Bench) -> (f64, f64) {
    let topic = bench.topic("raw-latency");
    let key = bench.used(&topic).await;
    let redis = bench.plain.clone();
    create_group(bench, &key).await;
    let samples: Samples = Arc::default();
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
                    .arg(READ_COUNT)
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

// Delayed bursts ----------------------------------------------------------------

struct Burst {
    p50: f64,
    p99: f64,
    max: f64,
    early: usize,
    /// When the delayed set was empty, in ms after the due time.
    promoted_ms: f64,
}

/// `count` delayed messages due at the same instant, four default
/// subscriptions: lateness = handled at minus due at.
async fn delayed_burst(bench: &Bench, count: usize) -> Burst {
    use futures::StreamExt;
    let topic = bench.topic("burst");
    bench.used(&topic).await;
    let delayed_key = format!("{{{}:{topic}}}:delayed", bench.prefix);
    let backend: Arc<dyn messaging_core::Backend> = Arc::new(bench.backend.clone());
    let samples: Samples = Arc::default();
    let mut services = Vec::new();
    for _ in 0..CONSUMERS {
        let service = MessagingService::new(backend.clone());
        service
            .subscribe(&topic, recorder(&samples, "due"))
            .await
            .expect("subscribe");
        services.push(service);
    }
    // Far enough ahead that every message is scheduled before it falls due.
    let lead = Duration::from_millis(1_000 + count as u64 / 10);
    let due = Utc::now() + chrono::Duration::from_std(lead).expect("lead");
    let producer = bench.service();
    futures::stream::iter(0..count)
        .for_each_concurrent(64, |_| {
            let producer = &producer;
            let topic = &topic;
            async move {
                producer
                    .publish_at(topic, json!({ "due": due.timestamp_micros() }), due)
                    .await
                    .expect("publish at");
            }
        })
        .await;
    assert!(
        Utc::now() < due,
        "scheduling the burst overran its due time"
    );
    // Watch the delayed set empty.
    let mut redis = bench.plain_connection().await;
    let wait = (due - Utc::now()).to_std().unwrap_or_default();
    tokio::time::sleep(wait.saturating_sub(Duration::from_millis(5))).await;
    loop {
        let left: usize = redis::cmd("ZCARD")
            .arg(&delayed_key)
            .query_async(&mut redis)
            .await
            .expect("zcard");
        if left == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let promoted_ms = (now_micros() - due.timestamp_micros()) as f64 / 1000.0;
    while samples.lock().expect("samples").len() < count {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    for service in services {
        service.shutdown().await;
    }
    let mut samples = samples.lock().expect("samples").clone();
    samples.sort_by(f64::total_cmp);
    Burst {
        p50: percentile(&samples, 0.50),
        p99: percentile(&samples, 0.99),
        max: samples[samples.len() - 1],
        early: samples.iter().filter(|late| **late < 0.0).count(),
        promoted_ms,
    }
}

// Scale -------------------------------------------------------------------------

/// Consume rate with a 1,000,000 backlog against a 20,000 one: four default
/// subscriptions of a fresh group each round; with the large backlog the
/// round takes the first `SCALE_TAKEN` (the stream is topped up to
/// `SCALE_LARGE` before each round, the group deleted after it).
async fn scale(bench: &Bench) {
    let large = bench.topic("scale-large");
    let large_key = bench.used(&large).await;
    let bodies = encoded(&large, SCALE_TAKEN);
    let mut redis = bench.plain.clone();
    let mut small_runs = Vec::new();
    let mut large_runs = Vec::new();
    let (mut small_ms, mut large_ms) = (Vec::new(), Vec::new());
    let (mut raw_small, mut raw_large) = (Vec::new(), Vec::new());
    for round in 0..SCALE_ROUNDS {
        // Small: a fresh topic of SCALE_SMALL.
        let small = consume(bench, SCALE_SMALL).await;
        small_runs.push(small.rate);
        small_ms.push(small.cpu_us);
        // Large: top the stream up to SCALE_LARGE.
        loop {
            let length: usize = redis::cmd("XLEN")
                .arg(&large_key)
                .query_async(&mut redis)
                .await
                .expect("xlen");
            if length >= SCALE_LARGE {
                break;
            }
            let missing = (SCALE_LARGE - length).min(bodies.len());
            send_batched(&mut redis, &large_key, &bodies[..missing]).await;
        }
        let group = format!("scale{round}");
        let counter = Counter::new(SCALE_TAKEN);
        let backend: Arc<dyn messaging_core::Backend> = Arc::new(bench.backend.clone());
        let clock = Clock::start();
        let mut services = Vec::new();
        for _ in 0..CONSUMERS {
            let service = MessagingService::new(backend.clone()).with_subscribe_defaults(
                messaging_core::SubscribeOptions::default().with_group(&group),
            );
            let counter = counter.clone();
            service
                .subscribe(&large, move |_message: Message| {
                    let counter = counter.clone();
                    async move {
                        counter.add(1);
                        Ok::<(), HandlerError>(())
                    }
                })
                .await
                .expect("subscribe");
            services.push(service);
        }
        counter.done.notified().await;
        let run = clock.stop(SCALE_TAKEN);
        for service in services {
            service.shutdown().await;
        }
        bench
            .backend
            .delete_group(&topic_of(&large), &group)
            .await
            .expect("delete group");
        large_runs.push(run.rate);
        large_ms.push(run.cpu_us);
        // The raw loop on both backlogs, for what Redis itself does with them.
        raw_small.push(raw_consume(bench, SCALE_SMALL).await.rate);
        create_group(bench, &large_key).await;
        let counter = Counter::new(SCALE_TAKEN);
        let clock = Clock::start();
        let consumers = raw_consumers(bench, &large_key, &counter).await;
        counter.done.notified().await;
        raw_large.push(clock.stop(SCALE_TAKEN).rate);
        for consumer in consumers {
            consumer.await.expect("consumer");
        }
        let _: i64 = redis::cmd("XGROUP")
            .arg("DESTROY")
            .arg(&large_key)
            .arg("bench")
            .query_async(&mut redis)
            .await
            .expect("destroy");
    }
    let (raw_small, raw_large) = (median(raw_small), median(raw_large));
    let (small, large) = (median(small_runs), median(large_runs));
    let verdict = if large / small >= 0.9 {
        "met"
    } else {
        "MISSED"
    };
    println!(
        "scale: consume rate, 4 default subscriptions, {SCALE_ROUNDS} rounds: {SCALE_SMALL} backlog {small:.0} msg/s ({:.1} us CPU/msg); {SCALE_LARGE} backlog (first {SCALE_TAKEN} of it) {large:.0} msg/s ({:.1} us CPU/msg); ratio {:.2} (>= 0.9: {verdict})",
        median(small_ms),
        median(large_ms),
        large / small
    );
    println!(
        "scale, the raw loop on the same backlogs: {SCALE_SMALL} {raw_small:.0} msg/s; {SCALE_LARGE} (first {SCALE_TAKEN}) {raw_large:.0} msg/s; ratio {:.2}",
        raw_large / raw_small
    );
}

/// Peak RSS (VmHWM) of a worker-like child process draining a 100,000 backlog
/// with one default subscription, beside a raw-loop child doing the same.
async fn rss(bench: &Bench) {
    let mut lines = Vec::new();
    for mode in ["backend", "raw"] {
        let topic = bench.topic("rss");
        let key = bench.used(&topic).await;
        send_batched(
            &mut bench.plain.clone(),
            &key,
            &encoded(&topic, RSS_BACKLOG),
        )
        .await;
        let output = std::process::Command::new(std::env::current_exe().expect("exe"))
            .env("BENCH_CHILD", mode)
            .env("BENCH_CHILD_URL", &bench.url)
            .env("BENCH_CHILD_PREFIX", &bench.prefix)
            .env("BENCH_CHILD_TOPIC", &topic)
            .output()
            .expect("child");
        assert!(
            output.status.success(),
            "the {mode} child failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        lines.push(format!(
            "{mode}: {}",
            String::from_utf8_lossy(&output.stdout).trim()
        ));
    }
    println!(
        "peak RSS of a child process draining a {RSS_BACKLOG} backlog at full rate (target: backend <= 64 MiB): {}",
        lines.join("; ")
    );
}

fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// The child of `rss`: drains its topic, prints its rate and peak RSS.
async fn child(mode: String) {
    let var = |name: &str| std::env::var(name).expect(name);
    let (url, prefix, topic) = (
        var("BENCH_CHILD_URL"),
        var("BENCH_CHILD_PREFIX"),
        var("BENCH_CHILD_TOPIC"),
    );
    let key = stream_key(&prefix, &topic);
    let counter = Counter::new(RSS_BACKLOG);
    let start_rss = peak_rss_kib();
    let clock = Clock::start();
    if mode == "backend" {
        let backend =
            RedisBackend::connect(RedisBackendConfig::new(url.as_str()).with_key_prefix(&prefix))
                .await
                .expect("connect");
        let service = MessagingService::new(Arc::new(backend));
        let handled = counter.clone();
        service
            .subscribe(&topic, move |_message: Message| {
                let counter = handled.clone();
                async move {
                    counter.add(1);
                    Ok::<(), HandlerError>(())
                }
            })
            .await
            .expect("subscribe");
        counter.done.notified().await;
        service.shutdown().await;
    } else {
        let mut connection = connect_plain(&url).await;
        let _: () = redis::cmd("XGROUP")
            .arg("CREATE")
            .arg(&key)
            .arg("bench")
            .arg("0")
            .query_async(&mut connection)
            .await
            .expect("group");
        while !counter.reached() {
            let reply: Option<redis::streams::StreamReadReply> = redis::cmd("XREADGROUP")
                .arg("GROUP")
                .arg("bench")
                .arg("c")
                .arg("COUNT")
                .arg(READ_COUNT)
                .arg("STREAMS")
                .arg(&key)
                .arg(">")
                .query_async(&mut connection)
                .await
                .expect("xreadgroup");
            let ids: Vec<String> = reply
                .into_iter()
                .flat_map(|r| r.keys)
                .flat_map(|s| s.ids)
                .map(|entry| entry.id)
                .collect();
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
            counter.add(ids.len());
        }
    }
    let run = clock.stop(RSS_BACKLOG);
    println!(
        "peak RSS {:.1} MiB ({:.1} MiB before connecting), {:.0} msg/s",
        peak_rss_kib() as f64 / 1024.0,
        start_rss as f64 / 1024.0,
        run.rate
    );
}

// What each layer costs ----------------------------------------------------------

/// A rung of the consume ladder, from the raw loop up to the backend without
/// the runtime.
#[derive(Clone, Copy, PartialEq)]
enum ConsumeRung {
    /// The raw loop, decoding every entry into a `Message` (serde).
    RawDecode,
    /// `RedisBackend::read` (blocking pool, decode, receipts), then a bare
    /// `XACK` of the batch: no fence.
    BackendReadBareAck,
    /// `RedisBackend::read`, then `RedisBackend::ack` per delivery (batched,
    /// fenced by `ack.lua`).
    BackendReadFencedAck,
}

const LADDER: usize = 100_000;

async fn consume_rung(bench: &Bench, rung: ConsumeRung) -> Run {
    use futures::StreamExt;
    let topic = bench.topic("rung");
    let key = bench.used(&topic).await;
    send_batched(&mut bench.plain.clone(), &key, &encoded(&topic, LADDER)).await;
    create_group(bench, &key).await;
    let counter = Counter::new(LADDER);
    let clock = Clock::start();
    let mut consumers = Vec::new();
    for consumer in 0..CONSUMERS {
        let mut connection = bench.plain_connection().await;
        let backend = bench.backend.clone();
        let (key, topic) = (key.clone(), topic.clone());
        let counter = counter.clone();
        consumers.push(tokio::spawn(async move {
            let name = format!("c{consumer}");
            while !counter.reached() {
                if rung == ConsumeRung::RawDecode {
                    let reply: Option<redis::streams::StreamReadReply> = redis::cmd("XREADGROUP")
                        .arg("GROUP")
                        .arg("bench")
                        .arg(&name)
                        .arg("COUNT")
                        .arg(READ_COUNT)
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
                        let body: Vec<u8> = entry.get("m").expect("field m");
                        let message: Message = serde_json::from_slice(&body).expect("message");
                        std::hint::black_box(message);
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
                    counter.add(ids.len());
                    continue;
                }
                let deliveries = backend
                    .read(
                        &consumer_of(&topic, "bench", &name),
                        &messaging_core::ReadOptions::new_entries(
                            READ_COUNT,
                            Duration::from_millis(100),
                        ),
                    )
                    .await
                    .expect("read");
                if deliveries.is_empty() {
                    continue;
                }
                let n = deliveries.len();
                if rung == ConsumeRung::BackendReadBareAck {
                    let ids: Vec<&str> = deliveries
                        .iter()
                        .map(|d| d.receipt.entry_id.as_str())
                        .collect();
                    let _: i64 = redis::cmd("XACK")
                        .arg(&key)
                        .arg("bench")
                        .arg(&ids)
                        .query_async(&mut connection)
                        .await
                        .expect("xack");
                } else {
                    futures::stream::iter(deliveries)
                        .for_each_concurrent(None, |delivery| {
                            let backend = &backend;
                            async move {
                                backend.ack(&delivery.receipt).await.expect("ack");
                            }
                        })
                        .await;
                }
                counter.add(n);
            }
        }));
    }
    counter.done.notified().await;
    let run = clock.stop(LADDER);
    for consumer in consumers {
        consumer.await.expect("consumer");
    }
    run
}

/// A rung of the publish ladder (batches of 100).
#[derive(Clone, Copy, PartialEq)]
enum PublishRung {
    /// The raw loop, serialising each `Message` in the loop.
    RawEncode,
    /// `lua/publish.lua` (the cap check, XLEN + ZCARD, then the XADDs) per
    /// batch, bodies pre-encoded, as EVALSHA.
    Script,
    /// `RedisBackend::publish_batch` with the messages built before timing:
    /// validation, encoding, the script and the registry's SADD.
    Backend,
}

async fn publish_rung(bench: &Bench, rung: PublishRung) -> Run {
    let topic = bench.topic("prung");
    let key = bench.used(&topic).await;
    let delayed = format!("{{{}:{topic}}}:delayed", bench.prefix);
    let messages: Vec<Message> = (0..BATCHED)
        .map(|n| Message::new(&topic, payload(n)).expect("message"))
        .collect();
    let bodies = encoded(&topic, BATCHED);
    let script = redis::Script::new(include_str!("../lua/publish.lua"));
    let mut redis = bench.plain.clone();
    let clock = Clock::start();
    match rung {
        PublishRung::RawEncode => {
            for chunk in messages.chunks(BATCH) {
                let mut pipe = redis::pipe();
                for message in chunk {
                    let body = serde_json::to_vec(message).expect("json");
                    pipe.cmd("XADD").arg(&key).arg("*").arg("m").arg(body);
                }
                let _: Vec<String> = pipe.query_async(&mut redis).await.expect("pipeline");
            }
        }
        PublishRung::Script => {
            for chunk in bodies.chunks(BATCH) {
                let mut invocation = script.key(&key);
                invocation.key(&delayed).arg(1_000_000);
                for body in chunk {
                    invocation.arg(body);
                }
                let _: Vec<String> = invocation.invoke_async(&mut redis).await.expect("script");
            }
        }
        PublishRung::Backend => {
            for chunk in messages.chunks(BATCH) {
                bench.backend.publish_batch(chunk).await.expect("publish");
            }
        }
    }
    clock.stop(BATCHED)
}

/// What a flow limit that is never reached costs: consuming a backlog with
/// no limit, then with a rate limit (keyed by the payload's customer: one bucket, the hottest case), a
/// concurrency limit, and both, each round taking turns.
async fn limits_section(bench: &Bench) {
    const LIMITED_BACKLOG: usize = 50_000;
    let rate = Rate::new(Rate::MAX_PERMITS, Duration::from_millis(1)).expect("rate");
    let by_tenant = || LimitKey::payload("/customer").expect("key");
    let rate_limit = FlowLimit::rate("bench-rate", by_tenant(), rate).expect("limit");
    let concurrency = FlowLimit::concurrency("bench-slots", by_tenant(), 100_000).expect("limit");
    let sets: [(&str, Vec<FlowLimit>); 3] = [
        ("a rate limit", vec![rate_limit.clone()]),
        ("a concurrency limit", vec![concurrency.clone()]),
        ("both", vec![concurrency, rate_limit]),
    ];
    for (name, limits) in &sets {
        let figures = rounds(&[
            &|| Box::pin(consume_limited(bench, LIMITED_BACKLOG, limits)),
            &|| Box::pin(consume(bench, LIMITED_BACKLOG)),
        ])
        .await;
        let ratio = figures[1..]
            .first()
            .map(|unlimited| figures[0].rate / unlimited.rate);
        let without = figures.get(1).copied();
        let costs = |run: &Run| {
            format!(
                "client CPU {:.1} µs, Redis CPU {:.1} µs, {:.3} Redis commands, {:.3} script calls per message",
                run.cpu_us, run.server.cpu_us, run.server.commands, run.server.evalsha
            )
        };
        println!(
            "flow limits never reached, consume {LIMITED_BACKLOG} backlog, {CONSUMERS} consumers, {name}: {:.0} msg/s against {:.0} without ({}; >= 0.80: {}); with: {}; without: {}",
            figures[0].rate,
            without.map_or(0.0, |run| run.rate),
            ratio.map_or("-".to_owned(), |ratio| format!("{ratio:.2}")),
            if ratio.is_some_and(|ratio| ratio >= 0.8) {
                "met"
            } else {
                "MISSED"
            },
            costs(&figures[0]),
            without.map_or("-".to_owned(), |run| costs(&run)),
        );
    }
}

/// The service over `Partitioned` (priority and partitioned topics).
fn partitioned_service(
    bench: &Bench,
) -> (
    MessagingService,
    Arc<messaging_core::Partitioned<RedisBackend>>,
) {
    let backend = Arc::new(messaging_core::Partitioned::new(bench.backend.clone()));
    (MessagingService::new(backend.clone()), backend)
}

/// Subscribes `CONSUMERS` default subscriptions to `topic` that record, for
/// messages whose payload has `sent_us`, the latency in ms under the
/// payload's `kind`, and count every message.
async fn latency_subscribers(
    backend: &Arc<messaging_core::Partitioned<RedisBackend>>,
    topic: &str,
    samples: &Arc<std::sync::Mutex<std::collections::HashMap<String, Vec<f64>>>>,
) -> Vec<MessagingService> {
    let mut services = Vec::new();
    for n in 0..CONSUMERS {
        let service = MessagingService::new(backend.clone());
        let samples = samples.clone();
        let options = service
            .subscribe_defaults()
            .clone()
            .with_consumer(format!("c{n}"));
        service
            .subscribe_with(topic, options, move |message: Message| {
                if let Some(sent) = message.payload["sent_us"].as_i64() {
                    let kind = message.payload["kind"]
                        .as_str()
                        .unwrap_or_default()
                        .to_owned();
                    let ms = (now_micros() - sent) as f64 / 1000.0;
                    samples
                        .lock()
                        .expect("samples")
                        .entry(kind)
                        .or_default()
                        .push(ms);
                }
                std::future::ready(Ok::<(), HandlerError>(()))
            })
            .await
            .expect("subscribe");
        services.push(service);
    }
    services
}

/// Waits until `count` samples of `kind` are in.
async fn samples_of(
    samples: &Arc<std::sync::Mutex<std::collections::HashMap<String, Vec<f64>>>>,
    kind: &str,
    count: usize,
) -> Vec<f64> {
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let got = samples
            .lock()
            .expect("samples")
            .get(kind)
            .cloned()
            .unwrap_or_default();
        if got.len() >= count || Instant::now() > deadline {
            return got;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Latency of high messages published while a backlog of 100,000 low ones
/// waits: on a priority topic, and on a plain topic (where they queue behind
/// the backlog), in the same run.
async fn priorities_section(bench: &Bench) {
    const BACKLOG_LOW: usize = 100_000;
    const HIGH: usize = 200;
    for prioritized in [true, false] {
        let (service, backend) = partitioned_service(bench);
        let topic = bench.topic(if prioritized {
            "priority"
        } else {
            "plain-priority"
        });
        if prioritized {
            service
                .create_priority_topic(&topic)
                .await
                .expect("priority topic");
        }
        let low: Vec<Message> = (0..BACKLOG_LOW)
            .map(|n| {
                messaging_core::priority::Priority::Low
                    .set_on(Message::new(topic.as_str(), payload(n)).expect("message"))
            })
            .collect();
        for chunk in low.chunks(1000) {
            service
                .publish_messages(chunk)
                .await
                .expect("publish the backlog");
        }
        let samples = Arc::default();
        let consumers = latency_subscribers(&backend, &topic, &samples).await;
        let started = Instant::now();
        for n in 0..HIGH {
            let message = messaging_core::priority::Priority::High.set_on(
                Message::new(
                    topic.as_str(),
                    json!({"kind": "high", "n": n, "sent_us": now_micros()}),
                )
                .expect("message"),
            );
            service
                .publish_message(&message)
                .await
                .expect("publish high");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let highs = samples_of(&samples, "high", HIGH).await;
        let publishing = started.elapsed();
        for consumer in consumers {
            consumer.shutdown().await;
        }
        let (p50, p99) = latency_figures(highs.clone());
        println!(
            "priorities, {HIGH} high published one per 5 ms ({publishing:.1?}) over a backlog of {BACKLOG_LOW} low, {CONSUMERS} consumers, {}: high latency p50 {p50:.1} ms, p99 {p99:.1} ms ({} handled)",
            if prioritized {
                "priority topic"
            } else {
                "plain topic (no priorities: the baseline)"
            },
            highs.len()
        );
        let _ = backend.delete_topic(&topic_of(&topic)).await;
    }
}

/// A small tenant's latency on a topic partitioned by tenant (8 partitions,
/// the tenants in different partitions) while a big tenant's 10,000 or
/// 100,000 wait, against the small tenant alone, and the same on a plain
/// topic, in the same run.
async fn fairness_section(bench: &Bench) {
    const BIG: usize = 10_000;
    const SMALL: usize = 10;
    const PARTITIONS: u16 = 8;
    let big_key = "tenant-big";
    let small_key = (0..)
        .map(|n| format!("tenant-small-{n}"))
        .find(|key| {
            messaging_core::partition::index_of(key, PARTITIONS)
                != messaging_core::partition::index_of(big_key, PARTITIONS)
        })
        .expect("a key in another partition");
    for (layout, big) in [
        ("partitioned by tenant", 0),
        ("partitioned by tenant", BIG),
        ("partitioned by tenant", 10 * BIG),
        ("plain", 0),
        ("plain", BIG),
        ("plain", 10 * BIG),
    ] {
        let (service, backend) = partitioned_service(bench);
        let topic = bench.topic("fairness");
        if layout != "plain" {
            service
                .create_partitioned_topic(&topic, PARTITIONS)
                .await
                .expect("partitioned topic");
        }
        // The big tenant's backlog, then at once the small tenant's messages,
        // then the consumers start (their start-up is in every run's figure).
        let backlog: Vec<Message> = (0..big)
            .map(|n| {
                Message::new(topic.as_str(), payload(n))
                    .expect("message")
                    .with_partition_key(big_key)
                    .expect("key")
            })
            .collect();
        for chunk in backlog.chunks(1000) {
            service
                .publish_messages(chunk)
                .await
                .expect("publish the backlog");
        }
        for n in 0..SMALL {
            let message = Message::new(
                topic.as_str(),
                json!({"kind": "small", "n": n, "sent_us": now_micros()}),
            )
            .expect("message")
            .with_partition_key(&small_key)
            .expect("key");
            service
                .publish_message(&message)
                .await
                .expect("publish small");
        }
        let samples = Arc::default();
        let consumers = latency_subscribers(&backend, &topic, &samples).await;
        let small = samples_of(&samples, "small", SMALL).await;
        for consumer in consumers {
            consumer.shutdown().await;
        }
        let (p50, p99) = latency_figures(small.clone());
        println!(
            "fairness, {layout} topic, small tenant's {SMALL} published right after the big tenant's {big}: small latency p50 {p50:.1} ms, p99 {p99:.1} ms ({} handled)",
            small.len()
        );
        let _ = backend.delete_topic(&topic_of(&topic)).await;
    }
}

/// The ladders: what each layer between the raw loop and the service costs.
async fn costs(bench: &Bench) {
    let publish = rounds(&[
        &|| Box::pin(raw_publish_batched(bench)),
        &|| Box::pin(publish_rung(bench, PublishRung::RawEncode)),
        &|| Box::pin(publish_rung(bench, PublishRung::Script)),
        &|| Box::pin(publish_rung(bench, PublishRung::Backend)),
        &|| Box::pin(publish_batched(bench)),
    ])
    .await;
    let consume = rounds(&[
        &|| Box::pin(raw_consume(bench, LADDER)),
        &|| Box::pin(consume_rung(bench, ConsumeRung::RawDecode)),
        &|| Box::pin(consume_rung(bench, ConsumeRung::BackendReadBareAck)),
        &|| Box::pin(consume_rung(bench, ConsumeRung::BackendReadFencedAck)),
        &|| Box::pin(consume(bench, LADDER)),
    ])
    .await;
    let print = |title: &str, names: &[&str], runs: &[Run]| {
        println!("{title}");
        println!(
            "| {:<62} | {:>9} | {:>6} | {:>8} | {:>9} |",
            "rung", "msg/s", "of raw", "CPU us", "+CPU us"
        );
        println!(
            "|{:-<64}|{:->11}|{:->8}|{:->10}|{:->11}|",
            "", "", "", "", ""
        );
        for (index, (name, run)) in names.iter().zip(runs).enumerate() {
            let added = index.checked_sub(1).map_or("-".to_owned(), |previous| {
                format!("{:+.2}", run.cpu_us - runs[previous].cpu_us)
            });
            println!(
                "| {name:<62} | {:>9.0} | {:>6.2} | {:>8.2} | {added:>9} |",
                run.rate,
                run.rate / runs[0].rate,
                run.cpu_us
            );
        }
    };
    print(
        "publish ladder, batches of 100 (each rung adds one layer):",
        &[
            "raw: XADD x100 pipelined, pre-encoded",
            "+ serde_json::to_vec(Message) in the loop",
            "publish.lua (cap check XLEN+ZCARD, XADDs), pre-encoded",
            "RedisBackend::publish_batch (validate, encode, script, SADD)",
            "MessagingService::publish_batch (build Message, traceparent)",
        ],
        &publish,
    );
    print(
        "consume ladder, 100,000 backlog, 4 consumers, reads of 100:",
        &[
            "raw: XREADGROUP COUNT 100 + XACK",
            "+ serde_json::from_slice::<Message> per entry",
            "RedisBackend::read + bare XACK (no fence)",
            "RedisBackend::read + RedisBackend::ack (fenced, ack.lua)",
            "MessagingService, default options (runtime: task, span, lease)",
        ],
        &consume,
    );
}

// Report ------------------------------------------------------------------------

enum Target {
    None,
    Ratio(f64),
}

/// Client CPU per message of the backend against the raw loop's, at most.
const CPU_RATIO_TARGET: f64 = 1.5;

#[derive(Default)]
struct Report {
    lines: Vec<String>,
    missed: usize,
}

impl Report {
    /// `runs`: the backend's, then the raw loop's (absent with BENCH_BACKEND_ONLY).
    fn row(&mut self, name: &str, runs: &[Run], target: Target) {
        let ours = runs[0];
        let raw = runs.get(1);
        let ratio = raw.map(|raw| ours.rate / raw.rate);
        let cpu_ratio = raw.map(|raw| ours.cpu_us / raw.cpu_us);
        let verdict = match target {
            Target::None => String::new(),
            Target::Ratio(min) => {
                let rate_met = ratio.is_some_and(|r| r >= min);
                let cpu_met = cpu_ratio.is_some_and(|r| r <= CPU_RATIO_TARGET);
                self.missed += usize::from(!rate_met) + usize::from(!cpu_met);
                format!(
                    "rate >= {min:.2}: {}; CPU <= {CPU_RATIO_TARGET:.1}x: {}",
                    if rate_met { "met" } else { "MISSED" },
                    if cpu_met { "met" } else { "MISSED" }
                )
            }
        };
        let figure = |value: Option<f64>, digits: usize| {
            value.map_or("-".to_owned(), |v| format!("{v:.digits$}"))
        };
        self.lines.push(format!(
            "| {name:<42} | {:>9.0} | {:>9} | {:>5} | {:>7.2} | {:>7} | {:>5} | {verdict} |",
            ours.rate,
            figure(raw.map(|r| r.rate), 0),
            figure(ratio, 2),
            ours.cpu_us,
            figure(raw.map(|r| r.cpu_us), 2),
            figure(cpu_ratio, 2),
        ));
    }

    fn print(&self) {
        if self.lines.is_empty() {
            return;
        }
        println!(
            "| {:<42} | {:>9} | {:>9} | {:>5} | {:>7} | {:>7} | {:>5} | targets |",
            "msg/s; client CPU us/msg", "backend", "raw loop", "ratio", "CPU", "raw CPU", "ratio"
        );
        println!(
            "|{:-<44}|{:->11}|{:->11}|{:->7}|{:->9}|{:->9}|{:->7}|---------|",
            "", "", "", "", "", "", ""
        );
        for line in &self.lines {
            println!("{line}");
        }
        if self.missed == 0 {
            println!("every throughput target met");
        } else {
            println!("{} throughput target(s) MISSED", self.missed);
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
                    .ensure_group(&topic_of(topic), "g", StartFrom::Earliest)
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
                        &consumer_of(topic, "g", "c"),
                        &messaging_core::ReadOptions::new_entries(10, Duration::ZERO),
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

/// A checked topic of a benchmark's name.
fn topic_of(name: impl AsRef<str>) -> messaging_model::Topic {
    messaging_model::Topic::new(name.as_ref()).expect("a valid topic")
}

/// Consumer `name` of `group` on `topic`.
fn consumer_of(topic: impl AsRef<str>, group: &str, name: &str) -> messaging_core::ConsumerId {
    messaging_core::ConsumerId::new(topic_of(topic), group, name)
}
