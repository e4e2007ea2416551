//! The worker's end-to-end rate: `user.registered` events per second from publish
//! to a `sent` notification recorded in PostgreSQL, with the email channel
//! pointed at a local SMTP sink; and the worker's peak memory (VmHWM).
//!
//! Baseline, measured in the same run: the rate of publishing the same events to
//! Redis with nobody consuming (what the pipeline costs on top of enqueueing).
//!
//! Needs Redis and PostgreSQL (`REDIS_URL`, `DATABASE_URL`; local defaults).
//! Run: `cargo bench -p messaging-cli --bench worker` (or `make bench`).
//! `BENCH_EVENTS` sets the number of events (default 2000).

use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use messaging_core::MessagingService;
use messaging_redis::{RedisBackend, RedisBackendConfig};
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
    let events: usize = std::env::var("BENCH_EVENTS").ok().and_then(|n| n.parse().ok()).unwrap_or(2000);
    let redis = std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    let database = std::env::var("DATABASE_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
    let id = uuid::Uuid::now_v7().simple().to_string();
    let prefix = format!("bench-worker-{id}");
    let schema = format!("bench_worker_{id}");

    let backend = RedisBackend::connect(RedisBackendConfig::new(&redis).with_key_prefix(&prefix))
        .await
        .unwrap_or_else(|error| panic!("cannot reach Redis at {redis} ({error}): start one and set REDIS_URL"));
    let messaging = MessagingService::new(Arc::new(backend));
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(2)
        .connect(&database)
        .await
        .unwrap_or_else(|error| panic!("cannot reach PostgreSQL at {database} ({error}): start one and set DATABASE_URL"));
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

    // Baseline: publishing the same events, nobody consuming.
    let baseline = publish_events(&messaging, "bench.baseline", events).await;
    let baseline_rate = events as f64 / baseline.as_secs_f64();

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
    let count = format!("SELECT count(*) FROM {schema}.notifications WHERE status = 'sent'");
    loop {
        let sent: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(count.clone()))
            .fetch_one(&pool)
            .await
            .unwrap_or(0);
        if sent as usize >= events {
            break;
        }
        assert!(start.elapsed() < DEADLINE, "only {sent} of {events} notifications recorded");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let elapsed = start.elapsed();
    let worker_rate = events as f64 / elapsed.as_secs_f64();
    let peak_kib = peak_memory_kib(pid);
    assert_eq!(sink.message_count(), events, "one email per event");

    let _ = std::process::Command::new("kill").args(["-TERM", &pid.to_string()]).status();
    let _ = tokio::time::timeout(DEADLINE, worker.wait()).await;
    for topic in messaging.list_topics().await.unwrap_or_default() {
        let _ = messaging.delete_topic(&topic).await;
    }
    let drop = format!("DROP SCHEMA IF EXISTS {schema} CASCADE");
    let _ = sqlx::raw_sql(sqlx::AssertSqlSafe(drop)).execute(&pool).await;
    let _ = std::fs::remove_file(&config_file);

    println!("worker end-to-end ({events} user.registered events, SMTP sink, PostgreSQL store, concurrency 32):");
    println!(
        "  publish → sent notification: {worker_rate:>9.0} events/s ({:.2} s)",
        elapsed.as_secs_f64()
    );
    println!(
        "  baseline, publish only:      {baseline_rate:>9.0} events/s ({:.2} s)",
        baseline.as_secs_f64()
    );
    println!("  ratio worker / publish-only:  {:.3}", worker_rate / baseline_rate);
    match peak_kib {
        Some(kib) => println!("  worker peak memory (VmHWM):  {:.1} MiB", kib as f64 / 1024.0),
        None => println!("  worker peak memory: unavailable (no /proc)"),
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
        messaging.publish_batch(topic, payloads).await.expect("publishing works");
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
