//! The worker's end-to-end rate: `user.registered` events per second from publish
//! to a `sent` notification recorded in PostgreSQL, with the email channel
//! pointed at a local SMTP sink; and the worker's peak memory (VmHWM).
//!
//! Baselines, measured in the same run:
//! * the same pipeline (Redis, listeners, PostgreSQL store) run in this process
//!   with a no-op email channel: what SMTP and the worker process add;
//! * publishing the same events to Redis with nobody consuming: the ceiling
//!   the pipeline works under.
//!
//! Needs Redis and PostgreSQL (`REDIS_URL`, `DATABASE_URL`; local defaults).
//! Run: `cargo bench -p messaging-cli --bench worker` (or `make bench`).
//! `BENCH_EVENTS` sets the number of events (default 2000).

use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use messaging_core::{MessagingService, SubscribeOptions};
use messaging_redis::{RedisBackend, RedisBackendConfig};
use notification::NotificationService;
use notification::channel::{EmailMessage, RecordingChannel};
use notification::events::EventRules;
use notification_store_postgres::{PostgresStore, PostgresStoreConfig};
use serde_json::json;
use smtp_sink::SmtpSink;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

const DEADLINE: Duration = Duration::from_secs(120);
const CHUNK: usize = 200;

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    runtime.block_on(bench());
}

async fn bench() {
    let events: usize = std::env::var("BENCH_EVENTS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(2000);
    let redis = std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    let database = std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
    let id = uuid::Uuid::now_v7().simple().to_string();
    let prefix = format!("bench-worker-{id}");
    let schema = format!("bench_worker_{id}");

    let backend = RedisBackend::connect(RedisBackendConfig::new(&redis).with_key_prefix(&prefix))
        .await
        .unwrap_or_else(|error| {
            panic!("cannot reach Redis at {redis} ({error}): start one and set REDIS_URL")
        });
    let messaging = MessagingService::new(Arc::new(backend));
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(2)
        .connect(&database)
        .await
        .unwrap_or_else(|error| {
            panic!(
                "cannot reach PostgreSQL at {database} ({error}): start one and set DATABASE_URL"
            )
        });
    let sink = SmtpSink::start().await.expect("the SMTP sink starts");
    let config_file = std::env::temp_dir().join(format!("{prefix}.toml"));
    std::fs::write(
        &config_file,
        format!(
            "[worker]\nconcurrency = 32\n\n[smtp]\nhost = \"{}\"\nport = {}\nsecurity = \"none\"\nfrom = \"bench@messaging.invalid\"\n",
            sink.host(),
            sink.port()
        ),
    )
    .expect("the worker configuration is written");

    // Baseline 1: publishing the same events (ten times as many, for a stable
    // figure), nobody consuming.
    let baseline = publish_events(&messaging, "bench.baseline", events * 10).await;
    let baseline_rate = (events * 10) as f64 / baseline.as_secs_f64();

    // Baseline 2: the pipeline in this process, email channel a no-op.
    let (noop, noop_elapsed) = noop_pipeline(
        &redis,
        &database,
        &format!("{prefix}-noop"),
        &format!("{schema}_noop"),
        &pool,
        events,
    )
    .await;
    let noop_rate = events as f64 / noop_elapsed.as_secs_f64();
    assert_eq!(noop, events, "one no-op email per event");

    let mut worker = Command::new(env!("CARGO_BIN_EXE_messaging"))
        .args(["worker", "--no-metrics", "--config"])
        .arg(&config_file)
        .env("REDIS_URL", &redis)
        .env("MESSAGING_KEY_PREFIX", &prefix)
        .env("DATABASE_URL", &database)
        .env("MESSAGING_DB_SCHEMA", &schema)
        .env("MESSAGING_LOG", "error")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("the worker starts");
    let pid = worker.id().expect("the worker runs");
    let mut lines = BufReader::new(worker.stderr.take().expect("piped")).lines();
    loop {
        let line = tokio::time::timeout(DEADLINE, lines.next_line())
            .await
            .expect("the worker gets ready")
            .expect("the worker's stderr")
            .expect("the worker exited before it was ready");
        if line.contains("worker ready") {
            break;
        }
    }
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });

    let start = Instant::now();
    publish_events(&messaging, "user.registered", events).await;
    wait_for_sent(&pool, &schema, events, start).await;
    let elapsed = start.elapsed();
    let worker_rate = events as f64 / elapsed.as_secs_f64();
    let peak_kib = peak_memory_kib(pid);
    assert_eq!(sink.message_count(), events, "one email per event");

    let _ = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status();
    let _ = tokio::time::timeout(DEADLINE, worker.wait()).await;
    for topic in messaging.list_topics().await.unwrap_or_default() {
        let _ = messaging.delete_topic(&topic).await;
    }
    let drop = format!("DROP SCHEMA IF EXISTS {schema} CASCADE");
    let _ = sqlx::raw_sql(sqlx::AssertSqlSafe(drop))
        .execute(&pool)
        .await;
    let _ = std::fs::remove_file(&config_file);

    println!(
        "worker end-to-end ({events} user.registered events, SMTP sink, PostgreSQL store, concurrency 32):"
    );
    println!(
        "  publish → sent notification: {worker_rate:>9.0} events/s ({:.2} s)",
        elapsed.as_secs_f64()
    );
    println!(
        "  baseline, in-process pipeline, no-op email channel: {noop_rate:>9.0} events/s ({:.2} s)",
        noop_elapsed.as_secs_f64()
    );
    println!(
        "  baseline, publish only ({} events): {baseline_rate:>9.0} events/s ({:.2} s)",
        events * 10,
        baseline.as_secs_f64()
    );
    println!(
        "  ratio worker / no-op pipeline: {:.2}",
        worker_rate / noop_rate
    );
    println!(
        "  ratio worker / publish only:   {:.4}",
        worker_rate / baseline_rate
    );
    match peak_kib {
        Some(kib) => println!(
            "  worker peak memory (VmHWM):  {:.1} MiB",
            kib as f64 / 1024.0
        ),
        None => println!("  worker peak memory: unavailable (no /proc)"),
    }
}

/// The default listeners over Redis and PostgreSQL in this process, with an
/// email channel that only records: how many emails and how long until every
/// notification was recorded as sent.
async fn noop_pipeline(
    redis: &str,
    database: &str,
    prefix: &str,
    schema: &str,
    pool: &sqlx::PgPool,
    events: usize,
) -> (usize, Duration) {
    let backend = RedisBackend::connect(RedisBackendConfig::new(redis).with_key_prefix(prefix))
        .await
        .expect("Redis answers");
    let messaging = MessagingService::new(Arc::new(backend));
    let store = PostgresStore::connect(PostgresStoreConfig::new(database).with_schema(schema))
        .await
        .expect("PostgreSQL answers");
    store.migrate().await.expect("the migrations run");
    let shared = Arc::new(store.clone());
    let email = RecordingChannel::<EmailMessage>::new();
    let notifications = Arc::new(
        NotificationService::new(shared.clone(), shared).with_email(Arc::new(email.clone())),
    );
    notifications
        .install_default_templates()
        .await
        .expect("templates install");
    notifications
        .listen_to_events_with(
            &messaging,
            &EventRules::defaults(),
            SubscribeOptions::new("notification").with_concurrency(32),
        )
        .await
        .expect("the listeners subscribe");
    let start = Instant::now();
    publish_events(&messaging, "user.registered", events).await;
    wait_for_sent(pool, schema, events, start).await;
    let elapsed = start.elapsed();
    messaging.shutdown().await;
    for topic in messaging.list_topics().await.unwrap_or_default() {
        let _ = messaging.delete_topic(&topic).await;
    }
    store.close().await;
    let drop = format!("DROP SCHEMA IF EXISTS {schema} CASCADE");
    let _ = sqlx::raw_sql(sqlx::AssertSqlSafe(drop)).execute(pool).await;
    (email.sent().len(), elapsed)
}

/// Polls the notifications table until `events` are `sent`.
async fn wait_for_sent(pool: &sqlx::PgPool, schema: &str, events: usize, start: Instant) {
    let count = format!("SELECT count(*) FROM {schema}.notifications WHERE status = 'sent'");
    loop {
        let sent: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(count.clone()))
            .fetch_one(pool)
            .await
            .unwrap_or(0);
        if sent as usize >= events {
            return;
        }
        assert!(
            start.elapsed() < DEADLINE,
            "only {sent} of {events} notifications recorded"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Publishes `events` registration events to `topic` in batches; how long it took.
async fn publish_events(messaging: &MessagingService, topic: &str, events: usize) -> Duration {
    let start = Instant::now();
    let mut next = 0;
    while next < events {
        let payloads = (next..(next + CHUNK).min(events))
            .map(|i| json!({"user_id": format!("bench-{i}"), "email": format!("user{i}@example.com"), "name": format!("User {i}")}))
            .collect();
        messaging
            .publish_batch(topic, payloads)
            .await
            .expect("publishing works");
        next += CHUNK;
    }
    start.elapsed()
}

/// The peak resident set of a process, from `/proc/PID/status`.
fn peak_memory_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|line| line.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}
